//! The reconcile's one notification, `scale.summary`: what it put to sleep, woke, skipped and
//! failed, with their names and the task-hours saved. A fleet's night is one message, not one
//! per service; an operator's `wake` and `sleep` and each failure keep their own.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use std::collections::BTreeSet;

use crate::metrics::{Measurement, Measurements, Metric};
use crate::notification::{Kind, Notification, Severity};
use crate::report::{Action, ServiceReport};

/// The names a summary lists, in characters, before it says how many more: SNS takes 256 KB.
const NAMES_BUDGET: usize = 200_000;

/// `None` when the reconcile changed nothing and skipped or failed nothing.
pub fn scale_summary(
    reports: &[ServiceReport],
    task_hours_saved: f64,
    at: DateTime<Utc>,
    cause: &str,
    dry_run: bool,
) -> Option<Notification> {
    let named = |actions: &[Action]| -> Vec<&str> {
        reports
            .iter()
            .filter(|r| actions.contains(&r.action))
            .map(|r| r.service.as_str())
            .collect()
    };
    let asleep = named(&[Action::Asleep, Action::WouldSleep]);
    let woken = named(&[Action::Awake, Action::WouldWake]);
    let skipped = named(&[Action::Skipped]);
    let failed = named(&[Action::Error]);
    if asleep.len() + woken.len() + skipped.len() + failed.len() == 0 {
        return None;
    }
    let mut budget = NAMES_BUDGET;
    let mut group = |names: Vec<&str>| -> Value {
        let mut listed = Vec::new();
        for name in &names {
            if name.len() > budget {
                break;
            }
            budget -= name.len();
            listed.push(*name);
        }
        json!({"count": names.len(), "services": listed, "more": names.len() - listed.len()})
    };
    let counts = format!(
        "{} put to sleep, {} woken, {} skipped, {} failed",
        asleep.len(),
        woken.len(),
        skipped.len(),
        failed.len()
    );
    let severity = if failed.is_empty() {
        Severity::Info
    } else {
        Severity::Error
    };
    let when = at.format("%a %Y-%m-%d %H:%M UTC");
    let summary = if dry_run {
        format!("Dry run: the reconcile of {when} would have {counts}")
    } else if woken.is_empty() {
        format!("Reconcile of {when}: {counts}")
    } else {
        format!(
            "Reconcile of {when}: {counts}; {task_hours_saved:.1} task-hours saved by the services woken"
        )
    };
    let details = json!({
        "cause": cause,
        "asleep": group(asleep),
        "woken": group(woken),
        "skipped": group(skipped),
        "failed": group(failed),
        "taskHoursSaved": task_hours_saved,
        "dryRun": dry_run,
    });
    Some(Notification::new(
        Kind::ScaleSummary,
        severity,
        "*",
        summary,
        at,
        details,
    ))
}

/// What a reconcile measures: the task-hours each service it woke saved, and how many
/// services are asleep once it is done (those asleep before that it did not wake or find
/// gone, and those it put to sleep), put every reconcile so that the graph has no gaps.
pub fn reconcile_measurements(
    reports: &[ServiceReport],
    asleep_before: &BTreeSet<String>,
    woken: &[(&str, f64)],
    at: DateTime<Utc>,
) -> Vec<Measurements> {
    let mut asleep: BTreeSet<&str> = asleep_before.iter().map(String::as_str).collect();
    for r in reports {
        match r.action {
            Action::Asleep => {
                asleep.insert(r.service.as_str());
            }
            // Woken or gone. A record closed after a hand change still counts until the
            // next reconcile, which reads it closed: a skip says too little to tell.
            Action::Awake | Action::Ignored if asleep_before.contains(&r.service) => {
                asleep.remove(r.service.as_str());
            }
            _ => {}
        }
    }
    let mut out: Vec<Measurements> = woken
        .iter()
        .map(|(service, hours)| Measurements {
            service: Some((*service).to_owned()),
            at,
            values: vec![Measurement::new(
                Metric::TaskHoursSaved,
                (hours * 100.0).round() / 100.0,
            )],
        })
        .collect();
    out.push(Measurements {
        service: None,
        at,
        values: vec![Measurement::new(
            Metric::ServicesAsleep,
            asleep.len() as f64,
        )],
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        "2026-11-23T22:00:00Z".parse().unwrap()
    }

    #[test]
    fn one_message_counts_and_names_each_outcome() {
        let reports = [
            ServiceReport::new("staging/a", Action::Asleep, ""),
            ServiceReport::new("staging/b", Action::Asleep, ""),
            ServiceReport::new("staging/c", Action::Skipped, "scaled by hand"),
            ServiceReport::new("staging/d", Action::Error, "throttled"),
            ServiceReport::new("staging/e", Action::Unchanged, ""),
        ];
        let n = scale_summary(&reports, 0.0, at(), "reconcile@22:00", false).unwrap();
        assert_eq!(n.kind, Kind::ScaleSummary);
        assert_eq!(n.service, "*");
        assert_eq!(n.severity, Severity::Error, "a failure makes it an error");
        assert_eq!(
            n.summary,
            "Reconcile of Mon 2026-11-23 22:00 UTC: 2 put to sleep, 0 woken, 1 skipped, 1 failed"
        );
        assert_eq!(
            n.details["asleep"]["services"],
            json!(["staging/a", "staging/b"])
        );
        assert_eq!(n.details["skipped"]["count"], 1);
        assert_eq!(n.details["failed"]["services"], json!(["staging/d"]));
        assert_eq!(n.details["woken"]["count"], 0);
    }

    #[test]
    fn nothing_done_is_no_message_and_a_huge_fleet_stays_under_the_limit() {
        let unchanged = [ServiceReport::new("staging/a", Action::Unchanged, "")];
        assert!(scale_summary(&unchanged, 0.0, at(), "r", false).is_none());

        let name = "x".repeat(250);
        let many: Vec<ServiceReport> = (0..2000)
            .map(|i| ServiceReport::new(format!("c/{name}-{i}"), Action::Awake, ""))
            .collect();
        let n = scale_summary(&many, 12.5, at(), "r", false).unwrap();
        let size = serde_json::to_string(&n).unwrap().len();
        assert!(size < 256 * 1024, "{size} bytes");
        assert_eq!(n.details["woken"]["count"], 2000);
        let listed = n.details["woken"]["services"].as_array().unwrap().len();
        assert_eq!(n.details["woken"]["more"], 2000 - listed);
        assert!(listed > 500);
    }

    #[test]
    fn a_reconcile_measures_the_services_asleep_after_it_and_each_wakes_hours() {
        let reports = [
            ServiceReport::new("staging/a", Action::Asleep, ""),
            ServiceReport::new("staging/b", Action::Awake, ""),
            ServiceReport::new("staging/c", Action::Unchanged, ""),
            ServiceReport::new("staging/d", Action::Ignored, "gone"),
            ServiceReport::new("staging/e", Action::Error, "throttled"),
        ];
        let before: BTreeSet<String> = ["staging/b", "staging/c", "staging/d", "staging/e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let measured = reconcile_measurements(&reports, &before, &[("staging/b", 12.345)], at());
        assert_eq!(measured.len(), 2);
        assert_eq!(measured[0].service.as_deref(), Some("staging/b"));
        assert_eq!(
            measured[0].values,
            [Measurement::new(Metric::TaskHoursSaved, 12.35)]
        );
        // a put to sleep; c and e still asleep; b woken; d gone.
        assert_eq!(measured[1].service, None);
        assert_eq!(
            measured[1].values,
            [Measurement::new(Metric::ServicesAsleep, 3.0)]
        );
    }
}
