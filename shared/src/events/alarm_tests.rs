use chrono::DateTime;
use serde_json::json;

use super::*;
use crate::domain::service::ServiceKey;
use crate::fixtures;

fn sample(name: &str) -> Value {
    let text = match name {
        "eventbridge" => include_str!("../../../events/alarm-eventbridge.json"),
        "direct" => include_str!("../../../events/alarm-direct.json"),
        "sns" => include_str!("../../../events/alarm-sns.json"),
        "ok" => include_str!("../../../events/alarm-ok.json"),
        _ => unreachable!(),
    };
    serde_json::from_str(text).unwrap()
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

#[test]
fn the_three_shapes_parse_into_one_alarm() {
    let parsed: Vec<Alarm> = ["eventbridge", "direct", "sns"]
        .iter()
        .map(|n| parse_alarm_event(&sample(n)).unwrap_or_else(|e| panic!("{n}: {e}")))
        .collect();
    for alarm in &parsed {
        assert_eq!(alarm.name, "web-5xx");
        assert_eq!(alarm.state, AlarmState::Alarm);
        assert_eq!(alarm.previous, Some(AlarmState::Ok));
        assert!(alarm.fired());
        assert_eq!(
            alarm.arn.as_deref(),
            Some("arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-5xx")
        );
        assert_eq!(alarm.at, utc("2026-11-23T10:08:00Z"));
        assert_eq!(
            alarm.metric_services(),
            [ServiceKey::new("demo", "web")],
            "{alarm:?}"
        );
        assert!(
            alarm.reason.starts_with("Threshold Crossed"),
            "{}",
            alarm.reason
        );
    }
    let ids: std::collections::BTreeSet<&str> =
        parsed.iter().map(|a| a.event_id.as_str()).collect();
    assert_eq!(ids.len(), 3);
    let ok = parse_alarm_event(&sample("ok")).unwrap();
    assert_eq!(
        (ok.state, ok.previous),
        (AlarmState::Ok, Some(AlarmState::Alarm))
    );
    assert!(!ok.fired());
}

/// Every kind of alarm in every shape, as AWS sends it: the same alarm whatever the shape,
/// the service found from the dimensions wherever the shape keeps them, none for a composite.
#[test]
fn every_alarm_of_the_corpus_parses_with_its_service() {
    let web = ServiceKey::new("demo", "web");
    for name in fixtures::alarms() {
        let alarm =
            parse_alarm_event(&fixtures::aws(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(alarm.state, AlarmState::Alarm, "{name}");
        assert!(alarm.fired(), "{name}");
        assert!(!alarm.reason.is_empty(), "{name}");
        let expected_name = match name {
            n if n.starts_with("alarm-metric-math") => "web-5xx-rate",
            n if n.starts_with("alarm-metric") => "web-memory-high",
            n if n.starts_with("alarm-anomaly") => "web-latency-anomaly",
            n if n.starts_with("alarm-composite") => "web-unhealthy",
            other => panic!("unexpected fixture {other}"),
        };
        assert_eq!(alarm.name, expected_name, "{name}");
        assert_eq!(
            alarm.arn.as_deref(),
            Some(
                format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{expected_name}").as_str()
            ),
            "{name}"
        );
        if name.starts_with("alarm-composite") {
            assert!(alarm.metric_services().is_empty(), "{name}: {alarm:?}");
            assert_eq!(
                alarm.rule.as_deref(),
                Some("ALARM(web-5xx-rate) OR ALARM(web-latency-anomaly)"),
                "{name}"
            );
            assert_eq!(alarm.at, utc("2026-11-23T10:08:00.640Z"), "{name}");
        } else {
            assert!(
                alarm.metric_services().iter().all(|s| *s == web)
                    && !alarm.metric_services().is_empty(),
                "{name}: {alarm:?}"
            );
            assert_eq!(alarm.rule, None, "{name}");
            assert_eq!(alarm.at, utc("2026-11-23T10:08:00.005Z"), "{name}");
        }
    }
}

#[test]
fn a_metric_math_alarm_names_the_dimensions_of_each_metric_but_not_its_expressions() {
    for shape in ["eventbridge", "lambda", "sns"] {
        let alarm =
            parse_alarm_event(&fixtures::aws(&format!("alarm-metric-math-{shape}"))).unwrap();
        assert_eq!(alarm.dimensions.len(), 2, "{shape}: {:?}", alarm.dimensions);
    }
}

#[test]
fn null_description_unit_and_missing_threshold_are_not_errors() {
    let mut event = fixtures::aws("alarm-metric-sns");
    let mut message: Value =
        serde_json::from_str(event["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
    assert_eq!(message["AlarmDescription"], Value::Null);
    assert_eq!(message["Trigger"]["Unit"], Value::Null);
    message["Trigger"]
        .as_object_mut()
        .unwrap()
        .remove("Threshold");
    message["OldStateValue"] = Value::Null;
    message["AlarmArn"] = Value::Null;
    event["Records"][0]["Sns"]["Message"] = json!(message.to_string());
    let alarm = parse_alarm_event(&event).unwrap();
    assert_eq!(alarm.previous, None);
    assert_eq!(alarm.arn, None);
    assert!(alarm.fired());
}

#[test]
fn the_time_falls_back_to_the_envelope_when_the_state_has_none() {
    let mut event = fixtures::aws("alarm-metric-eventbridge");
    event["detail"]["state"]
        .as_object_mut()
        .unwrap()
        .remove("timestamp");
    assert_eq!(
        parse_alarm_event(&event).unwrap().at,
        utc("2026-11-23T10:08:00Z")
    );
}

#[test]
fn bad_payloads_name_the_field() {
    let mut no_name = sample("eventbridge");
    no_name["detail"]
        .as_object_mut()
        .unwrap()
        .remove("alarmName");
    let mut bad_state = sample("direct");
    bad_state["alarmData"]["state"]["value"] = json!("RED");
    let mut bad_message = sample("sns");
    bad_message["Records"][0]["Sns"]["Message"] = json!("{not json");
    let mut bad_time = sample("sns");
    let mut message: Value =
        serde_json::from_str(bad_time["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
    message["StateChangeTime"] = json!("yesterday");
    bad_time["Records"][0]["Sns"]["Message"] = json!(message.to_string());
    let mut no_state = sample("sns");
    let mut message: Value =
        serde_json::from_str(no_state["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
    message["NewStateValue"] = Value::Null;
    no_state["Records"][0]["Sns"]["Message"] = json!(message.to_string());
    let mut wrong_source = sample("eventbridge");
    wrong_source["source"] = json!("aws.ecs");
    let mut null_state = sample("eventbridge");
    null_state["detail"]["state"] = Value::Null;
    let mut numeric_name = sample("direct");
    numeric_name["alarmData"]["alarmName"] = json!(42);
    for (event, field) in [
        (json!(null), "(event)"),
        (json!({"hello": 1}), "(event)"),
        (json!({"detail-type": "ECR Image Action"}), "detail-type"),
        (no_name, "detail.alarmName"),
        (bad_state, "alarmData.state.value"),
        (bad_message, "Records[0].Sns.Message"),
        (bad_time, "Records[0].Sns.Message.StateChangeTime"),
        (no_state, "Records[0].Sns.Message.NewStateValue"),
        (json!({"Records": []}), "Records"),
        (json!({"Records": "x"}), "Records"),
        (wrong_source, "source"),
        (null_state, "detail.state"),
        (numeric_name, "alarmData.alarmName"),
    ] {
        match parse_alarm_event(&event) {
            Err(e) => assert_eq!(e.field, field, "{event}: {e}"),
            Ok(a) => panic!("{event}: parsed as {a:?}"),
        }
    }
}

/// What says an alarm is Application Auto Scaling's: the description wherever the shape keeps
/// it, the actions only in the SNS message.
#[test]
fn scaling_alarms_keep_their_description_and_actions() {
    let tracking =
        parse_alarm_event(&fixtures::aws("scaling-target-tracking-eventbridge")).unwrap();
    assert!(
        tracking
            .name
            .starts_with("TargetTracking-service/demo/web-AlarmHigh-")
    );
    assert!(tracking.description.as_deref().unwrap().starts_with(
        "DO NOT EDIT OR DELETE. For TargetTrackingScaling policy arn:aws:autoscaling:"
    ));
    assert_eq!(tracking.actions, None);
    assert_eq!(
        tracking.metric_services(),
        vec![ServiceKey::new("demo", "web")]
    );
    let step = parse_alarm_event(&fixtures::aws("scaling-step-sns")).unwrap();
    assert_eq!(step.actions.as_deref().map(<[String]>::len), Some(1));
    assert!(step.actions.unwrap()[0].contains(":scalingPolicy:"));
    // A null description is none, as in the corpus' plain alarms.
    let plain = parse_alarm_event(&fixtures::aws("alarm-metric-sns")).unwrap();
    assert_eq!(plain.description, None);
    assert_eq!(
        plain.actions,
        Some(vec![
            "arn:aws:sns:us-east-1:123456789012:deckhand-alarms".to_owned()
        ])
    );
}
