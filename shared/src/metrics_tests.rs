use serde_json::json;

use super::*;
use crate::notification::Severity;

fn at() -> DateTime<Utc> {
    "2026-11-23T10:00:30Z".parse().unwrap()
}

fn n(kind: Kind, service: &str, details: Value) -> Notification {
    Notification::new(kind, Severity::Info, service, "s", at(), details)
}

fn values(m: &Measurements) -> Vec<(&'static str, f64)> {
    m.values
        .iter()
        .map(|v| (v.metric.name(), v.value))
        .collect()
}

#[test]
fn each_notification_counts_what_it_reports() {
    let started = of_notification(&n(Kind::DeployStarted, "prod/web", json!({}))).unwrap();
    assert_eq!(started.service.as_deref(), Some("prod/web"));
    assert_eq!(values(&started), [("Deployments", 1.0)]);
    let completed = of_notification(&n(
        Kind::DeployCompleted,
        "prod/web",
        json!({"leadTimeSeconds": 50.5}),
    ))
    .unwrap();
    assert_eq!(values(&completed), [("LeadTimeSeconds", 50.5)]);
    let failed = of_notification(&n(Kind::DeployFailed, "prod/web", json!({}))).unwrap();
    assert_eq!(values(&failed), [("DeploymentFailures", 1.0)]);
    let rolled_back = of_notification(&n(
        Kind::RollbackStarted,
        "prod/web",
        json!({"alarmAt": "2026-11-23T09:59:30Z"}),
    ))
    .unwrap();
    assert_eq!(
        values(&rolled_back),
        [("Rollbacks", 1.0), ("TimeToRollbackSeconds", 60.0)]
    );
    let woken = of_notification(&n(
        Kind::ScaleAwake,
        "staging/api",
        json!({"scale": {"taskHoursSaved": 36.0}, "dryRun": false}),
    ))
    .unwrap();
    assert_eq!(values(&woken), [("TaskHoursSaved", 36.0)]);
    let error = of_notification(&n(Kind::Error, "-", json!({}))).unwrap();
    assert_eq!(
        (error.service.clone(), values(&error)),
        (None, vec![("Errors", 1.0)])
    );
}

#[test]
fn dry_runs_skips_and_the_digest_count_nothing() {
    for (kind, details) in [
        (
            Kind::ScaleAwake,
            json!({"scale": {"taskHoursSaved": 3.0}, "dryRun": true}),
        ),
        (Kind::DeploySkipped, json!({})),
        (Kind::ScaleSummary, json!({"taskHoursSaved": 12.0})),
        (Kind::RollbackSkipped, json!({})),
        // A completion without a push time (deployed before deckhand kept it) has no lead time.
        (Kind::DeployCompleted, json!({"leadTimeSeconds": null})),
    ] {
        assert_eq!(
            of_notification(&n(kind, "prod/web", details)),
            None,
            "{kind:?}"
        );
    }
}

#[test]
fn an_emf_line_puts_what_a_person_reads_per_service_per_service_and_everything_for_the_fleet() {
    let line = emf_line(&Measurements {
        service: Some("prod/web".into()),
        at: at(),
        values: vec![
            Measurement::new(Metric::Rollbacks, 1.0),
            Measurement::new(Metric::TimeToRollbackSeconds, 60.0),
        ],
    });
    assert!(!line.contains('\n'));
    let doc: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        doc,
        json!({
            "_aws": {"Timestamp": 1_795_428_030_000_i64, "CloudWatchMetrics": [{
                "Namespace": "deckhand",
                "Dimensions": [["Service"], []],
                "Metrics": [{"Name": "Rollbacks", "Unit": "Count"}],
            }, {
                "Namespace": "deckhand",
                "Dimensions": [[]],
                "Metrics": [{"Name": "TimeToRollbackSeconds", "Unit": "Seconds"}],
            }]},
            "Service": "prod/web",
            "Rollbacks": 1.0,
            "TimeToRollbackSeconds": 60.0,
        })
    );
    let fleet: Value = serde_json::from_str(&emf_line(&Measurements {
        service: None,
        at: at(),
        values: vec![Measurement::new(Metric::ServicesAsleep, 12.0)],
    }))
    .unwrap();
    assert_eq!(
        fleet["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([[]])
    );
    assert_eq!(fleet.get("Service"), None);
    assert_eq!(fleet["ServicesAsleep"], 12.0);
}

#[test]
fn four_metrics_are_put_per_service() {
    let per_service: Vec<&str> = Metric::ALL
        .iter()
        .filter(|m| m.per_service())
        .map(|m| m.name())
        .collect();
    assert_eq!(
        per_service,
        [
            "Deployments",
            "DeploymentFailures",
            "Rollbacks",
            "LeadTimeSeconds"
        ]
    );
    // An error of one service counts for the fleet only.
    let line: Value = serde_json::from_str(&emf_line(&Measurements {
        service: Some("prod/web".into()),
        at: at(),
        values: vec![Measurement::new(Metric::Errors, 1.0)],
    }))
    .unwrap();
    assert_eq!(
        line["_aws"]["CloudWatchMetrics"],
        json!([{"Namespace": "deckhand", "Dimensions": [[]], "Metrics": [{"Name": "Errors", "Unit": "Count"}]}])
    );
}

#[test]
fn every_metric_of_the_spec_has_a_name_and_a_unit() {
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    assert_eq!(
        names,
        [
            "Deployments",
            "DeploymentFailures",
            "Rollbacks",
            "LeadTimeSeconds",
            "TimeToRollbackSeconds",
            "ServicesAsleep",
            "TaskHoursSaved",
            "Errors"
        ]
    );
}
