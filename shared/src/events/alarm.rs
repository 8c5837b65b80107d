//! What reaches the `rollback` function: a CloudWatch alarm's state change in one of three
//! shapes, parsed into one [`Alarm`].

use std::collections::BTreeMap;

use aws_lambda_events::event::cloudwatch_alarms::{CloudWatchAlarm, CloudWatchAlarmData};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sns::{CloudWatchAlarmPayload, SnsEvent};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::{EventError, parse_at};
use crate::domain::rollback::{Alarm, AlarmState};

pub const ALARM_STATE_CHANGE: &str = "CloudWatch Alarm State Change";

/// The metric part of an alarm's configuration, as the EventBridge event and the alarm
/// action carry it.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Configuration {
    #[serde(default)]
    metrics: Vec<MetricQuery>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricQuery {
    #[serde(default)]
    metric_stat: Option<MetricStat>,
}

#[derive(Deserialize)]
struct MetricStat {
    metric: Metric,
}

#[derive(Deserialize)]
struct Metric {
    #[serde(default)]
    dimensions: BTreeMap<String, String>,
}

fn state(text: &str, field: &str) -> Result<AlarmState, EventError> {
    AlarmState::parse(text).ok_or_else(|| {
        EventError::new(
            field,
            format!("`{text}` is not OK, ALARM or INSUFFICIENT_DATA"),
        )
    })
}

/// The state value as aws_lambda_events spells it, back in CloudWatch's words.
fn state_word(value: &Value, field: &str) -> Result<AlarmState, EventError> {
    match value.as_str() {
        Some(text) => state(text, field),
        None => Err(EventError::new(field, "expected a string")),
    }
}

fn from_alarm_data(
    data: CloudWatchAlarmData<Value, Value>,
    event_id: String,
    arn: Option<String>,
    prefix: &str,
) -> Result<Alarm, EventError> {
    let current = data
        .state
        .ok_or_else(|| EventError::new(format!("{prefix}.state"), "missing"))?;
    let current_value = serde_json::to_value(&current.value).unwrap_or(Value::Null);
    let previous = match &data.previous_state {
        Some(p) => Some(state_word(
            &serde_json::to_value(&p.value).unwrap_or(Value::Null),
            &format!("{prefix}.previousState.value"),
        )?),
        None => None,
    };
    let configuration: Configuration = if data.configuration.is_null() {
        Configuration::default()
    } else {
        parse_at(&data.configuration, &format!("{prefix}.configuration"))?
    };
    if data.alarm_name.trim().is_empty() {
        return Err(EventError::new(format!("{prefix}.alarmName"), "empty"));
    }
    Ok(Alarm {
        event_id,
        name: data.alarm_name,
        arn,
        state: state_word(&current_value, &format!("{prefix}.state.value"))?,
        previous,
        reason: current.reason,
        at: current.timestamp,
        dimensions: configuration
            .metrics
            .into_iter()
            .filter_map(|m| m.metric_stat.map(|s| s.metric.dimensions))
            .collect(),
    })
}

fn from_eventbridge(value: &Value) -> Result<Alarm, EventError> {
    let event: EventBridgeEvent<CloudWatchAlarmData<Value, Value>> = parse_at(value, "")?;
    if event.source != "aws.cloudwatch" {
        return Err(EventError::new(
            "source",
            format!(
                "`{}` does not send `{ALARM_STATE_CHANGE}` (expected `aws.cloudwatch`)",
                event.source
            ),
        ));
    }
    let id = event
        .id
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| EventError::new("id", "missing"))?;
    let arn = event.resources.unwrap_or_default().into_iter().next();
    from_alarm_data(event.detail, id, arn, "detail")
}

fn from_alarm_action(value: &Value) -> Result<Alarm, EventError> {
    let event: CloudWatchAlarm<Value, Value> = parse_at(value, "")?;
    // An alarm action carries no event id: the alarm and the time of its change name it.
    let timestamp = event
        .alarm_data
        .state
        .as_ref()
        .map(|s| s.timestamp.to_rfc3339())
        .unwrap_or_else(|| event.time.to_rfc3339());
    let id = format!(
        "{}@{timestamp}",
        event
            .alarm_arn
            .as_deref()
            .unwrap_or(&event.alarm_data.alarm_name)
    );
    from_alarm_data(event.alarm_data, id, event.alarm_arn, "alarmData")
}

fn from_sns(value: &Value) -> Result<Alarm, EventError> {
    let event: SnsEvent = parse_at(value, "")?;
    let Some(record) = event.records.into_iter().next() else {
        return Err(EventError::new("Records", "empty"));
    };
    let message: Value = serde_json::from_str(&record.sns.message).map_err(|e| {
        EventError::new(
            "Records[0].Sns.Message",
            format!("not a CloudWatch alarm message (not JSON: {e})"),
        )
    })?;
    let prefix = "Records[0].Sns.Message";
    let payload: CloudWatchAlarmPayload = parse_at(&message, prefix)?;
    let at = DateTime::parse_from_str(&payload.state_change_time, "%Y-%m-%dT%H:%M:%S%.f%z")
        .map(|t| t.to_utc())
        .map_err(|e| EventError::new(format!("{prefix}.StateChangeTime"), e.to_string()))?;
    let mut dimensions: Vec<BTreeMap<String, String>> = Vec::new();
    let direct: BTreeMap<String, String> = payload
        .trigger
        .dimensions
        .iter()
        .map(|d| (d.name.clone(), d.value.clone()))
        .collect();
    if !direct.is_empty() {
        dimensions.push(direct);
    }
    if payload.alarm_name.trim().is_empty() {
        return Err(EventError::new(format!("{prefix}.AlarmName"), "empty"));
    }
    Ok(Alarm {
        event_id: record.sns.message_id,
        name: payload.alarm_name,
        arn: Some(payload.alarm_arn).filter(|a| !a.is_empty()),
        state: state(&payload.new_state_value, &format!("{prefix}.NewStateValue"))?,
        previous: Some(state(
            &payload.old_state_value,
            &format!("{prefix}.OldStateValue"),
        )?),
        reason: payload.new_state_reason,
        at: at.with_timezone(&Utc),
        dimensions,
    })
}

pub fn parse_alarm_event(value: &Value) -> Result<Alarm, EventError> {
    let Some(object) = value.as_object() else {
        return Err(EventError::new("(event)", "expected a JSON object"));
    };
    if object.contains_key("Records") {
        from_sns(value)
    } else if object.contains_key("alarmData") {
        from_alarm_action(value)
    } else if let Some(detail_type) = object.get("detail-type") {
        match detail_type.as_str() {
            Some(ALARM_STATE_CHANGE) => from_eventbridge(value),
            _ => Err(EventError::new(
                "detail-type",
                format!(
                    "{detail_type} is not handled by rollback (expected `{ALARM_STATE_CHANGE}`)"
                ),
            )),
        }
    } else {
        Err(EventError::new(
            "(event)",
            "not a CloudWatch alarm: expected an EventBridge `CloudWatch Alarm State Change`, an alarm \
             action payload (alarmData) or an SNS notification (Records)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
            assert_eq!(
                alarm.at,
                DateTime::parse_from_rfc3339("2026-11-23T10:08:00Z")
                    .unwrap()
                    .to_utc()
            );
            assert_eq!(
                alarm.metric_services(),
                [crate::domain::service::ServiceKey::new("demo", "web")],
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
            serde_json::from_str(bad_time["Records"][0]["Sns"]["Message"].as_str().unwrap())
                .unwrap();
        message["StateChangeTime"] = json!("yesterday");
        bad_time["Records"][0]["Sns"]["Message"] = json!(message.to_string());
        let mut wrong_source = sample("eventbridge");
        wrong_source["source"] = json!("aws.ecs");
        for (event, field) in [
            (json!(null), "(event)"),
            (json!({"hello": 1}), "(event)"),
            (json!({"detail-type": "ECR Image Action"}), "detail-type"),
            (no_name, "detail.alarmName"),
            (bad_state, "alarmData.state.value"),
            (bad_message, "Records[0].Sns.Message"),
            (bad_time, "Records[0].Sns.Message.StateChangeTime"),
            (json!({"Records": []}), "Records"),
            (wrong_source, "source"),
        ] {
            match parse_alarm_event(&event) {
                Err(e) => assert_eq!(e.field, field, "{event}: {e}"),
                Ok(a) => panic!("{event}: parsed as {a:?}"),
            }
        }
    }
}
