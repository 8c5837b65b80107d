//! The notifications deckhand publishes: schema `deckhand.notification/1`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

pub const SCHEMA: &str = "deckhand.notification/1";
/// SNS documents subjects of fewer than 100 characters (it has been seen to take 100; the
/// documented limit is the one to keep).
const SUBJECT_MAX: usize = 99;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Kind {
    #[serde(rename = "deploy.started")]
    DeployStarted,
    #[serde(rename = "deploy.completed")]
    DeployCompleted,
    #[serde(rename = "deploy.failed")]
    DeployFailed,
    #[serde(rename = "deploy.skipped")]
    DeploySkipped,
    #[serde(rename = "deploy.quarantined")]
    DeployQuarantined,
    #[serde(rename = "deploy.awaiting-approval")]
    DeployAwaitingApproval,
    #[serde(rename = "deploy.held")]
    DeployHeld,
    #[serde(rename = "traffic.shifted")]
    TrafficShifted,
    #[serde(rename = "rollback.started")]
    RollbackStarted,
    #[serde(rename = "rollback.skipped")]
    RollbackSkipped,
    #[serde(rename = "scale.asleep")]
    ScaleAsleep,
    #[serde(rename = "scale.awake")]
    ScaleAwake,
    #[serde(rename = "scale.skipped")]
    ScaleSkipped,
    /// One per reconcile that changed anything: counts and names, task-hours saved.
    #[serde(rename = "scale.summary")]
    ScaleSummary,
    #[serde(rename = "config.invalid")]
    ConfigInvalid,
    #[serde(rename = "error")]
    Error,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeployStarted => "deploy.started",
            Self::DeployCompleted => "deploy.completed",
            Self::DeployFailed => "deploy.failed",
            Self::DeploySkipped => "deploy.skipped",
            Self::DeployQuarantined => "deploy.quarantined",
            Self::DeployAwaitingApproval => "deploy.awaiting-approval",
            Self::DeployHeld => "deploy.held",
            Self::TrafficShifted => "traffic.shifted",
            Self::RollbackStarted => "rollback.started",
            Self::RollbackSkipped => "rollback.skipped",
            Self::ScaleAsleep => "scale.asleep",
            Self::ScaleAwake => "scale.awake",
            Self::ScaleSkipped => "scale.skipped",
            Self::ScaleSummary => "scale.summary",
            Self::ConfigInvalid => "config.invalid",
            Self::Error => "error",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// One message on the topic. `details` must never carry task definition environment values,
/// secrets or credentials: builders put only names, revisions, digests and tags in it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notification {
    pub schema: &'static str,
    pub kind: Kind,
    pub severity: Severity,
    pub service: String,
    pub summary: String,
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    pub details: serde_json::Value,
}

fn rfc3339<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Secs, true))
}

impl Notification {
    pub fn new(
        kind: Kind,
        severity: Severity,
        service: impl Into<String>,
        summary: impl Into<String>,
        at: DateTime<Utc>,
        details: serde_json::Value,
    ) -> Self {
        Self {
            schema: SCHEMA,
            kind,
            severity,
            service: service.into(),
            summary: summary.into(),
            at,
            details,
        }
    }

    /// At most 99 printable ASCII characters: SNS requires fewer than 100, and no control
    /// characters or line breaks.
    pub fn subject(&self) -> String {
        let text = format!(
            "deckhand {} {}: {}",
            self.kind.as_str(),
            self.service,
            self.summary
        );
        let printable: String = text
            .chars()
            .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
            .collect();
        if printable.len() <= SUBJECT_MAX {
            printable
        } else {
            format!("{}...", &printable[..SUBJECT_MAX - 3])
        }
    }

    pub fn body(&self) -> String {
        // Serialising plain strings, enums and JSON values cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// docs/notifications.md's Notifications section names every kind the functions publish, and no other.
    #[test]
    fn the_docs_name_every_notification_kind() {
        use Kind::*;
        let all = [
            DeployStarted,
            DeployCompleted,
            DeployFailed,
            DeploySkipped,
            DeployQuarantined,
            DeployAwaitingApproval,
            DeployHeld,
            TrafficShifted,
            RollbackStarted,
            RollbackSkipped,
            ScaleAsleep,
            ScaleAwake,
            ScaleSkipped,
            ScaleSummary,
            ConfigInvalid,
            Error,
        ];
        for kind in &all {
            // Fails to compile when a kind is added without being listed above.
            match kind {
                DeployStarted
                | DeployCompleted
                | DeployFailed
                | DeploySkipped
                | DeployQuarantined
                | DeployAwaitingApproval
                | DeployHeld
                | TrafficShifted
                | RollbackStarted
                | RollbackSkipped
                | ScaleAsleep
                | ScaleAwake
                | ScaleSkipped
                | ScaleSummary
                | ConfigInvalid
                | Error => {}
            }
        }
        let page = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/notifications.md"),
        )
        .unwrap();
        let section = page
            .split("\n## Notifications")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .unwrap();
        let named: std::collections::BTreeSet<&str> = section
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|w| {
                *w == "error"
                    || ["deploy.", "traffic.", "rollback.", "scale.", "config."]
                        .iter()
                        .any(|p| w.starts_with(p))
            })
            .collect();
        let kinds: std::collections::BTreeSet<&str> = all.iter().map(|k| k.as_str()).collect();
        assert_eq!(named, kinds);
    }

    fn sample(summary: &str) -> Notification {
        Notification::new(
            Kind::DeployStarted,
            Severity::Info,
            "demo/web",
            summary,
            DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
                .unwrap()
                .to_utc(),
            json!({"to": "web:8"}),
        )
    }

    #[test]
    fn body_follows_the_schema() {
        let body: serde_json::Value =
            serde_json::from_str(&sample("Deploying web:8").body()).unwrap();
        assert_eq!(
            body,
            json!({"schema": "deckhand.notification/1", "kind": "deploy.started", "severity": "info",
                   "service": "demo/web", "summary": "Deploying web:8", "at": "2026-11-23T10:00:00Z",
                   "details": {"to": "web:8"}})
        );
    }

    #[test]
    fn subject_is_short_printable_ascii() {
        let s = sample(&"é\u{7}x".repeat(80)).subject();
        assert_eq!(s.len(), 99, "{s}");
        assert!(s.chars().all(|c| (' '..='~').contains(&c)), "{s}");
        assert!(s.starts_with("deckhand deploy.started demo/web: ??x"));
        assert!(s.ends_with("..."));
        assert_eq!(
            sample("ok").subject(),
            "deckhand deploy.started demo/web: ok"
        );
    }

    #[test]
    fn kind_names_match_their_serialisation() {
        for kind in [
            Kind::DeployStarted,
            Kind::ScaleSkipped,
            Kind::ConfigInvalid,
            Kind::Error,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
        }
    }
}
