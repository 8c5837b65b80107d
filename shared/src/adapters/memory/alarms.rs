//! CloudWatch alarms in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::guard;
use crate::domain::settings::Tags;
use crate::ports::{Alarms, PortError, PortErrorKind, PortResult};

/// CloudWatch alarms in memory: tags per alarm ARN, actions per alarm name (none unless set).
#[derive(Default)]
pub struct MemoryAlarms {
    tags: Mutex<HashMap<String, Tags>>,
    refuse: Mutex<Option<PortErrorKind>>,
    actions: Mutex<HashMap<String, Vec<String>>>,
    refuse_describing: Mutex<Option<PortErrorKind>>,
    described: Mutex<Vec<String>>,
    defined: Mutex<Vec<crate::domain::rollback::Alarm>>,
}

impl MemoryAlarms {
    /// Makes every later read of tags fail: `Other` as a denied call or an alarm of another
    /// account does, `Transient` as throttling does.
    pub fn refuse(&self, kind: Option<PortErrorKind>) {
        *guard(&self.refuse) = kind;
    }

    /// Makes every later `DescribeAlarms` fail.
    pub fn refuse_describing(&self, kind: Option<PortErrorKind>) {
        *guard(&self.refuse_describing) = kind;
    }

    /// What the alarm named `name` does in ALARM.
    pub fn act(&self, name: &str, actions: &[&str]) {
        guard(&self.actions).insert(
            name.to_owned(),
            actions.iter().map(|a| (*a).to_owned()).collect(),
        );
    }

    /// An alarm of the account, as `all_alarms` lists it.
    pub fn define(&self, alarm: crate::domain::rollback::Alarm) {
        guard(&self.defined).push(alarm);
    }

    /// The alarms whose actions were read, in order.
    pub fn described(&self) -> Vec<String> {
        guard(&self.described).clone()
    }

    pub fn tag(&self, arn: &str, tags: &[(&str, &str)]) {
        guard(&self.tags).insert(
            arn.to_owned(),
            tags.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
    }
}

#[async_trait]
impl Alarms for MemoryAlarms {
    async fn alarm_tags(&self, arn: &str) -> PortResult<Tags> {
        if let Some(kind) = *guard(&self.refuse) {
            return Err(PortError::new(
                "ListTagsForResource",
                kind,
                "AccessDeniedException: not authorized to perform cloudwatch:ListTagsForResource",
            ));
        }
        guard(&self.tags)
            .get(arn)
            .cloned()
            .ok_or_else(|| PortError::new("ListTagsForResource", PortErrorKind::NotFound, arn))
    }

    async fn alarm_actions(&self, name: &str) -> PortResult<Option<Vec<String>>> {
        if let Some(kind) = *guard(&self.refuse_describing) {
            return Err(PortError::new(
                "DescribeAlarms",
                kind,
                "AccessDeniedException: not authorized to perform cloudwatch:DescribeAlarms",
            ));
        }
        guard(&self.described).push(name.to_owned());
        Ok(Some(
            guard(&self.actions).get(name).cloned().unwrap_or_default(),
        ))
    }

    async fn all_alarms(&self) -> PortResult<Vec<crate::domain::rollback::Alarm>> {
        if let Some(kind) = *guard(&self.refuse_describing) {
            return Err(PortError::new(
                "DescribeAlarms",
                kind,
                "AccessDeniedException: not authorized to perform cloudwatch:DescribeAlarms",
            ));
        }
        Ok(guard(&self.defined).clone())
    }
}
