//! CloudWatch: the tags of alarms, which may name the service they guard, and their actions,
//! which tell a step scaling alarm.

use async_trait::async_trait;

use super::port_error;
use crate::domain::settings::Tags;
use crate::ports::{Alarms, PortResult};

pub struct CloudWatchAlarms {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchAlarms {
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Alarms for CloudWatchAlarms {
    async fn alarm_tags(&self, arn: &str) -> PortResult<Tags> {
        let out = self
            .client
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|e| port_error("ListTagsForResource", e))?;
        Ok(out
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect())
    }

    async fn alarm_actions(&self, name: &str) -> PortResult<Option<Vec<String>>> {
        let out = self
            .client
            .describe_alarms()
            .alarm_names(name)
            .alarm_types(aws_sdk_cloudwatch::types::AlarmType::MetricAlarm)
            .send()
            .await
            .map_err(|e| port_error("DescribeAlarms", e))?;
        Ok(out
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(name))
            .map(|a| a.alarm_actions().to_vec()))
    }
}
