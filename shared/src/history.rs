//! Records kept in the table: history (kept forever) and processed-event marks (TTL).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::service::ServiceKey;
use crate::report::Action;

/// How long a processed-event mark is kept: longer than EventBridge and Lambda retry.
pub const PROCESSED_TTL: TimeDelta = TimeDelta::days(7);

/// One decision about one service, acted on or not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRecord {
    pub service: ServiceKey,
    pub at: DateTime<Utc>,
    pub action: Action,
    pub reason: String,
    /// The event (or request) that led to the decision.
    pub cause: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Task definition ARNs before and after, where a revision changed or would have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs_deployment_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// For rollbacks: when the alarm changed state, to measure how fast deckhand answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_at: Option<DateTime<Utc>>,
    /// For sleeps and wakes: what was saved, set or restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleRecord>,
    /// Task definition ARNs deregistered by revision retention.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deregistered: Vec<String>,
}

/// The numbers of a sleep or a wake.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleRecord {
    /// The desired count and capacity the service ran with before it slept.
    pub desired_count: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_capacity: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_capacity: Option<i32>,
    pub asleep_count: i32,
    /// On a wake: tasks times hours not run while asleep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_hours_saved: Option<f64>,
    /// An operator override's or a hand change's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

impl HistoryRecord {
    pub fn new(
        service: &ServiceKey,
        at: DateTime<Utc>,
        action: Action,
        reason: impl Into<String>,
        cause: &str,
    ) -> Self {
        Self {
            service: service.clone(),
            at,
            action,
            reason: reason.into(),
            cause: cause.to_owned(),
            repository: None,
            digest: None,
            tag: None,
            from: None,
            to: None,
            ecs_deployment_id: None,
            dry_run: false,
            alarm_at: None,
            scale: None,
            deregistered: Vec::new(),
        }
    }
}

/// Marks an event as fully handled for one service, so a redelivery changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessedMark {
    pub event_id: String,
    pub service: ServiceKey,
    pub at: DateTime<Utc>,
}

impl ProcessedMark {
    pub fn expires(&self) -> DateTime<Utc> {
        self.at + PROCESSED_TTL
    }
}
