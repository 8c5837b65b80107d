//! CloudWatch metrics, as embedded-metric-format (EMF) lines in the function's log: Lambda
//! sends its output to CloudWatch Logs, which turns each such line into metric data, with no
//! PutMetricData call, no permission and no time added to an invocation.
//!
//! A small writer rather than a `metrics` facade backend: eight metrics, each known where its
//! notification is built, need no global recorder, no flush at the end of an invocation, and
//! none of the HTTP layer `metrics_cloudwatch_embedded` pulls in by default.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::notification::{Kind, Notification};

pub const NAMESPACE: &str = "deckhand";
/// The dimension of the values a person reads per service ([`Metric::per_service`]); each is
/// also put without it, for the fleet's totals.
pub const SERVICE_DIMENSION: &str = "Service";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// A deployment deckhand started.
    Deployments,
    /// A deployment ECS failed (or rolled back by its circuit breaker).
    DeploymentFailures,
    Rollbacks,
    /// From the push event to ECS completing the deployment.
    LeadTimeSeconds,
    /// From the alarm's state change to deckhand moving the service back.
    TimeToRollbackSeconds,
    /// After each reconcile: how many services are asleep.
    ServicesAsleep,
    /// What the services woken had saved while they slept.
    TaskHoursSaved,
    /// deckhand's own failures (an AWS call that failed, a record not written).
    Errors,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::Deployments,
        Metric::DeploymentFailures,
        Metric::Rollbacks,
        Metric::LeadTimeSeconds,
        Metric::TimeToRollbackSeconds,
        Metric::ServicesAsleep,
        Metric::TaskHoursSaved,
        Metric::Errors,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Deployments => "Deployments",
            Self::DeploymentFailures => "DeploymentFailures",
            Self::Rollbacks => "Rollbacks",
            Self::LeadTimeSeconds => "LeadTimeSeconds",
            Self::TimeToRollbackSeconds => "TimeToRollbackSeconds",
            Self::ServicesAsleep => "ServicesAsleep",
            Self::TaskHoursSaved => "TaskHoursSaved",
            Self::Errors => "Errors",
        }
    }

    /// Whether the metric is also put per service. CloudWatch bills each metric name and
    /// dimension value as a metric of its own, so only what a person reads per service is: how
    /// often it deployed, failed and rolled back, and how long its deployments took. The rest is
    /// read for the fleet; a service's own are in its history.
    pub fn per_service(self) -> bool {
        matches!(
            self,
            Self::Deployments | Self::DeploymentFailures | Self::Rollbacks | Self::LeadTimeSeconds
        )
    }

    fn unit(self) -> &'static str {
        match self {
            Self::LeadTimeSeconds | Self::TimeToRollbackSeconds => "Seconds",
            Self::TaskHoursSaved => "None",
            _ => "Count",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub metric: Metric,
    pub value: f64,
}

impl Measurement {
    pub fn new(metric: Metric, value: f64) -> Self {
        Self { metric, value }
    }
}

/// The values of one moment, for one service (`None`: the fleet).
#[derive(Clone, Debug, PartialEq)]
pub struct Measurements {
    pub service: Option<String>,
    pub at: DateTime<Utc>,
    pub values: Vec<Measurement>,
}

/// What a notification counts. Dry runs change nothing and count nothing.
pub fn of_notification(n: &Notification) -> Option<Measurements> {
    let d = &n.details;
    if d.get("dryRun").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let seconds = |key: &str| d.get(key).and_then(Value::as_f64).filter(|s| *s >= 0.0);
    let mut values = Vec::new();
    match n.kind {
        Kind::DeployStarted => values.push(Measurement::new(Metric::Deployments, 1.0)),
        Kind::DeployCompleted => {
            if let Some(lead) = seconds("leadTimeSeconds") {
                values.push(Measurement::new(Metric::LeadTimeSeconds, lead));
            }
        }
        Kind::DeployFailed => values.push(Measurement::new(Metric::DeploymentFailures, 1.0)),
        Kind::RollbackStarted => {
            values.push(Measurement::new(Metric::Rollbacks, 1.0));
            let alarm_at = d
                .get("alarmAt")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
            if let Some(alarm_at) = alarm_at {
                let took = (n.at - alarm_at.to_utc()).num_milliseconds() as f64 / 1000.0;
                if took >= 0.0 {
                    values.push(Measurement::new(Metric::TimeToRollbackSeconds, took));
                }
            }
        }
        // An operator's wake; a reconcile puts its own (`app::scheduler`), and its summary
        // counts nothing again.
        Kind::ScaleAwake => {
            let hours = d
                .get("scale")
                .and_then(|s| s.get("taskHoursSaved"))
                .and_then(Value::as_f64);
            if let Some(hours) = hours {
                values.push(Measurement::new(Metric::TaskHoursSaved, hours));
            }
        }
        Kind::Error => values.push(Measurement::new(Metric::Errors, 1.0)),
        Kind::DeploySkipped
        | Kind::DeployQuarantined
        | Kind::DeployAwaitingApproval
        | Kind::DeployHeld
        | Kind::TrafficShifted
        | Kind::RollbackSkipped
        | Kind::ScaleAsleep
        | Kind::ScaleSkipped
        | Kind::ScaleSummary
        | Kind::ConfigInvalid => {}
    }
    if values.is_empty() {
        return None;
    }
    let service = match n.service.as_str() {
        "" | "-" | "*" => None,
        s => Some(s.to_owned()),
    };
    Some(Measurements {
        service,
        at: n.at,
        values,
    })
}

/// One EMF document: the values as root members, described under `_aws`. For a service, the
/// metrics read per service with the dimension sets `[Service]` and `[]` (the same value counted
/// in the fleet's total), the others with `[]` alone.
pub fn emf_line(m: &Measurements) -> String {
    let mut root = Map::new();
    if let Some(service) = &m.service {
        root.insert(SERVICE_DIMENSION.into(), json!(service));
    }
    // One value per metric name in a document: a name twice would be one metric with two
    // definitions.
    let (mut per_service, mut fleet) = (Vec::new(), Vec::new());
    for v in &m.values {
        let name = v.metric.name();
        if root.contains_key(name) {
            continue;
        }
        root.insert(name.into(), json!(v.value));
        let definition = json!({"Name": name, "Unit": v.metric.unit()});
        match m.service.is_some() && v.metric.per_service() {
            true => per_service.push(definition),
            false => fleet.push(definition),
        }
    }
    let mut directives = Vec::new();
    for (dimensions, metrics) in [
        (json!([[SERVICE_DIMENSION], []]), per_service),
        (json!([[]]), fleet),
    ] {
        if !metrics.is_empty() {
            directives.push(json!({
                "Namespace": NAMESPACE,
                "Dimensions": dimensions,
                "Metrics": metrics,
            }));
        }
    }
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": m.at.timestamp_millis(),
            "CloudWatchMetrics": directives,
        }),
    );
    Value::Object(root).to_string()
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
