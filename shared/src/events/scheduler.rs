//! What reaches the `scheduler` function: the Scheduler's input, a legacy scheduled event, or
//! an operator's request.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::envelope::{EventError, parse_at};
use crate::domain::duration::parse_duration;
use crate::domain::service::ServiceKey;

#[derive(Clone, Debug, PartialEq)]
pub enum SchedulerEvent {
    /// Make every opted-in service match its schedule at `at` (default: now).
    Reconcile {
        at: Option<DateTime<Utc>>,
        dry_run: bool,
        /// The scheduled event's id, when there is one.
        event_id: Option<String>,
    },
    /// Keep a service awake (`awake`) or asleep until the expiry.
    Override {
        service: ServiceKey,
        awake: bool,
        until: Option<Expiry>,
        dry_run: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    For(TimeDelta),
    Until(DateTime<Utc>),
}

impl Expiry {
    pub fn at(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::For(d) => now + d,
            Self::Until(t) => t,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    action: String,
    #[serde(default)]
    at: Option<DateTime<Utc>>,
    #[serde(default, rename = "dryRun")]
    dry_run: bool,
    #[serde(default)]
    service: Option<String>,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    until: Option<DateTime<Utc>>,
}

/// The envelope of a scheduled event; `detail` is ignored (the Scheduler sends it as the
/// string `"{}"`).
#[derive(Deserialize)]
struct ScheduledEvent {
    id: String,
    time: DateTime<Utc>,
}

pub fn parse_scheduler_event(value: &Value) -> Result<SchedulerEvent, EventError> {
    let Some(object) = value.as_object() else {
        return Err(EventError::new("(event)", "expected a JSON object"));
    };
    if object.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        let event: ScheduledEvent = parse_at(value, "")?;
        return Ok(SchedulerEvent::Reconcile {
            at: Some(event.time),
            dry_run: false,
            event_id: Some(event.id),
        });
    }
    let request: Request = parse_at(value, "")?;
    let service = |action: &str| -> Result<ServiceKey, EventError> {
        let text = request.service.as_deref().ok_or_else(|| {
            EventError::new(
                "service",
                format!("missing: {action} needs CLUSTER/SERVICE"),
            )
        })?;
        text.parse()
            .map_err(|e: crate::domain::service::ServiceKeyError| {
                EventError::new("service", e.to_string())
            })
    };
    let expiry = || -> Result<Option<Expiry>, EventError> {
        match (&request.for_, request.until) {
            (Some(_), Some(_)) => Err(EventError::new("for", "give either for or until, not both")),
            (Some(text), None) => parse_duration(text)
                .ok()
                .filter(|d| *d > TimeDelta::zero())
                .map(|d| Some(Expiry::For(d)))
                .ok_or_else(|| {
                    EventError::new(
                        "for",
                        format!("`{text}` is not a duration such as 30m, 2h or 1d"),
                    )
                }),
            (None, Some(until)) => Ok(Some(Expiry::Until(until))),
            (None, None) => Ok(None),
        }
    };
    let reject = |field: &str, present: bool, action: &str| {
        if present {
            Err(EventError::new(field, format!("not used by {action}")))
        } else {
            Ok(())
        }
    };
    match request.action.as_str() {
        "reconcile" => {
            reject("service", request.service.is_some(), "reconcile")?;
            reject("for", request.for_.is_some(), "reconcile")?;
            reject("until", request.until.is_some(), "reconcile")?;
            Ok(SchedulerEvent::Reconcile {
                at: request.at,
                dry_run: request.dry_run,
                event_id: None,
            })
        }
        action @ ("wake" | "sleep") => {
            reject("at", request.at.is_some(), action)?;
            let service = service(action)?;
            let until = expiry()?;
            if action == "wake" && until.is_none() {
                return Err(EventError::new(
                    "for",
                    "missing: wake needs for (e.g. 2h) or until (RFC 3339)",
                ));
            }
            Ok(SchedulerEvent::Override {
                service,
                awake: action == "wake",
                until,
                dry_run: request.dry_run,
            })
        }
        other => Err(EventError::new(
            "action",
            format!("`{other}` is not an action: expected reconcile, wake or sleep"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample(name: &str) -> Value {
        let text = match name {
            "reconcile" => include_str!("../../../events/schedule-reconcile.json"),
            "legacy" => include_str!("../../../events/schedule-legacy.json"),
            "wake" => include_str!("../../../events/schedule-wake.json"),
            "sleep" => include_str!("../../../events/schedule-sleep.json"),
            _ => unreachable!(),
        };
        serde_json::from_str(text).unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn the_sample_events_parse() {
        assert_eq!(
            parse_scheduler_event(&sample("reconcile")),
            Ok(SchedulerEvent::Reconcile {
                at: Some(utc("2026-11-23T19:00:00Z")),
                dry_run: false,
                event_id: None
            })
        );
        assert!(matches!(
            parse_scheduler_event(&sample("legacy")),
            Ok(SchedulerEvent::Reconcile {
                at: Some(_),
                event_id: Some(_),
                ..
            })
        ));
        assert_eq!(
            parse_scheduler_event(&sample("wake")),
            Ok(SchedulerEvent::Override {
                service: ServiceKey::new("demo", "web"),
                awake: true,
                until: Some(Expiry::For(TimeDelta::hours(2))),
                dry_run: false
            })
        );
        assert!(matches!(
            parse_scheduler_event(&sample("sleep")),
            Ok(SchedulerEvent::Override {
                awake: false,
                until: None,
                ..
            })
        ));
    }

    #[test]
    fn the_scheduler_without_input_and_a_plain_reconcile() {
        let e = json!({"version": "0", "id": "e1", "detail-type": "Scheduled Event",
            "source": "aws.scheduler", "account": "123456789012", "time": "2026-11-23T19:00:00Z",
            "region": "us-east-1", "resources": [], "detail": "{}"});
        assert!(matches!(
            parse_scheduler_event(&e),
            Ok(SchedulerEvent::Reconcile { at: Some(at), .. }) if at == utc("2026-11-23T19:00:00Z")
        ));
        assert_eq!(
            parse_scheduler_event(&json!({"action": "reconcile", "dryRun": true})),
            Ok(SchedulerEvent::Reconcile {
                at: None,
                dry_run: true,
                event_id: None
            })
        );
        assert_eq!(
            parse_scheduler_event(
                &json!({"action": "sleep", "service": "a/b", "until": "2026-11-24T07:00:00Z"})
            ),
            Ok(SchedulerEvent::Override {
                service: ServiceKey::new("a", "b"),
                awake: false,
                until: Some(Expiry::Until(utc("2026-11-24T07:00:00Z"))),
                dry_run: false
            })
        );
    }

    #[test]
    fn bad_requests_name_the_field() {
        for (event, field) in [
            (json!([]), "(event)"),
            (json!({}), "action"),
            (json!({"action": 3}), "action"),
            (json!({"action": "snooze"}), "action"),
            (json!({"action": "reconcile", "at": "tonight"}), "at"),
            (json!({"action": "reconcile", "dryRun": "yes"}), "dryRun"),
            (json!({"action": "reconcile", "service": "a/b"}), "service"),
            (json!({"action": "reconcile", "colour": "red"}), "colour"),
            (json!({"action": "wake", "for": "2h"}), "service"),
            (
                json!({"action": "wake", "service": "web", "for": "2h"}),
                "service",
            ),
            (json!({"action": "wake", "service": "a/b"}), "for"),
            (
                json!({"action": "wake", "service": "a/b", "for": "two hours"}),
                "for",
            ),
            (
                json!({"action": "wake", "service": "a/b", "for": "0m"}),
                "for",
            ),
            (
                json!({"action": "wake", "service": "a/b", "for": "2h", "until": "2026-11-24T07:00:00Z"}),
                "for",
            ),
            (
                json!({"action": "sleep", "service": "a/b", "until": 5}),
                "until",
            ),
            (
                json!({"action": "sleep", "service": "a/b", "at": "2026-11-24T07:00:00Z"}),
                "at",
            ),
            (
                json!({"detail-type": "Scheduled Event", "id": "e1"}),
                "time",
            ),
        ] {
            match parse_scheduler_event(&event) {
                Err(e) => assert_eq!(e.field, field, "{event}: {e}"),
                Ok(ok) => panic!("{event}: parsed as {ok:?}"),
            }
        }
    }
}
