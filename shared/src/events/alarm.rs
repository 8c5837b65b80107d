//! What reaches the `rollback` function: a CloudWatch alarm's state change in one of three
//! shapes, parsed into one [`Alarm`].
//!
//! AWS sends more variety than any one typed model admits: `"AlarmDescription": null` by
//! default, `"Unit": null`, composite alarms with an `AlarmRule` and no `Trigger`, metric-math and
//! anomaly-detection alarms whose metrics sit in `Trigger.Metrics` and that have a
//! `ThresholdMetricId` instead of a `Threshold`. So only the alarm's name, its new state and the
//! time of the change are required; everything else is read where it is and skipped where it is
//! not (tests/fixtures/aws holds a payload of every kind in every shape).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::envelope::EventError;
use crate::domain::rollback::{Alarm, AlarmState};

pub const ALARM_STATE_CHANGE: &str = "CloudWatch Alarm State Change";

pub fn parse_alarm_event(value: &Value) -> Result<Alarm, EventError> {
    let Some(object) = value.as_object() else {
        return Err(EventError::new("(event)", "expected a JSON object"));
    };
    if object.contains_key("Records") {
        from_sns(object)
    } else if object.contains_key("alarmData") {
        from_alarm_action(object)
    } else if let Some(detail_type) = object.get("detail-type") {
        match detail_type.as_str() {
            Some(ALARM_STATE_CHANGE) => from_eventbridge(object),
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

/// `CloudWatch Alarm State Change` from EventBridge: the alarm in `detail`.
fn from_eventbridge(event: &Map<String, Value>) -> Result<Alarm, EventError> {
    match optional_text(event, "source", "")? {
        Some("aws.cloudwatch") => {}
        other => {
            return Err(EventError::new(
                "source",
                format!(
                    "`{}` does not send `{ALARM_STATE_CHANGE}` (expected `aws.cloudwatch`)",
                    other.unwrap_or("")
                ),
            ));
        }
    }
    let id = required_text(event, "id", "")?.to_owned();
    let envelope_time = optional_text(event, "time", "")?;
    let arn = match event.get("resources") {
        Some(Value::Array(resources)) => resources.iter().find_map(Value::as_str),
        _ => None,
    };
    let detail = object_at(event, "detail", "")?;
    from_alarm_data(detail, id, arn.map(str::to_owned), envelope_time, "detail")
}

/// The payload CloudWatch sends when an alarm action invokes a Lambda function directly. It
/// carries no event id: the alarm and the time of its change name the delivery.
fn from_alarm_action(event: &Map<String, Value>) -> Result<Alarm, EventError> {
    let data = object_at(event, "alarmData", "")?;
    let arn = optional_text(event, "alarmArn", "")?.map(str::to_owned);
    let envelope_time = optional_text(event, "time", "")?;
    let name = required_text(data, "alarmName", "alarmData")?;
    let state = object_at(data, "state", "alarmData")?;
    let changed = optional_text(state, "timestamp", "alarmData.state")?
        .or(envelope_time)
        .unwrap_or("");
    let id = format!("{}@{changed}", arn.as_deref().unwrap_or(name));
    from_alarm_data(data, id, arn, envelope_time, "alarmData")
}

/// The shared part of the EventBridge event and the alarm action: `alarmName`, `state`,
/// `previousState` and `configuration` (`metrics` of a metric alarm, `alarmRule` of a
/// composite one).
fn from_alarm_data(
    data: &Map<String, Value>,
    event_id: String,
    arn: Option<String>,
    envelope_time: Option<&str>,
    prefix: &str,
) -> Result<Alarm, EventError> {
    let name = required_text(data, "alarmName", prefix)?.to_owned();
    let state_path = format!("{prefix}.state");
    let state = object_at(data, "state", prefix)?;
    let value = required_text(state, "value", &state_path)?;
    let current = alarm_state(value, &format!("{state_path}.value"))?;
    let previous = match data.get("previousState") {
        None | Some(Value::Null) => None,
        Some(_) => {
            let previous_path = format!("{prefix}.previousState");
            let previous = object_at(data, "previousState", prefix)?;
            match optional_text(previous, "value", &previous_path)? {
                Some(value) => Some(alarm_state(value, &format!("{previous_path}.value"))?),
                None => None,
            }
        }
    };
    let at = match optional_text(state, "timestamp", &state_path)? {
        Some(text) => timestamp(text, &format!("{state_path}.timestamp"))?,
        None => match envelope_time {
            Some(text) => timestamp(text, "time")?,
            None => {
                return Err(EventError::new(
                    format!("{state_path}.timestamp"),
                    "missing",
                ));
            }
        },
    };
    let configuration = data.get("configuration").and_then(Value::as_object);
    let dimensions = configuration
        .and_then(|c| c.get("metrics"))
        .map(metric_dimensions)
        .unwrap_or_default();
    let rule = configuration
        .and_then(|c| c.get("alarmRule"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let description = configuration
        .and_then(|c| c.get("description"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Alarm {
        event_id,
        name,
        arn,
        state: current,
        previous,
        reason: optional_text(state, "reason", &state_path)?
            .unwrap_or_default()
            .to_owned(),
        at,
        dimensions,
        rule,
        description,
        // Neither EventBridge nor the alarm action says what the alarm's actions are.
        actions: None,
    })
}

/// An SNS notification whose message is a classic CloudWatch alarm message.
fn from_sns(event: &Map<String, Value>) -> Result<Alarm, EventError> {
    let record = match event.get("Records") {
        Some(Value::Array(records)) => match records.first() {
            Some(Value::Object(record)) => record,
            Some(_) => return Err(EventError::new("Records[0]", "expected an object")),
            None => return Err(EventError::new("Records", "empty")),
        },
        _ => return Err(EventError::new("Records", "expected an array")),
    };
    let sns = object_at(record, "Sns", "Records[0]")?;
    let message_id = required_text(sns, "MessageId", "Records[0].Sns")?.to_owned();
    let prefix = "Records[0].Sns.Message";
    let text = required_text(sns, "Message", "Records[0].Sns")?;
    let message: Value = serde_json::from_str(text).map_err(|e| {
        EventError::new(
            prefix,
            format!("not a CloudWatch alarm message (not JSON: {e})"),
        )
    })?;
    let Some(message) = message.as_object() else {
        return Err(EventError::new(
            prefix,
            "not a CloudWatch alarm message (not a JSON object)",
        ));
    };
    let name = required_text(message, "AlarmName", prefix)?.to_owned();
    let state = alarm_state(
        required_text(message, "NewStateValue", prefix)?,
        &format!("{prefix}.NewStateValue"),
    )?;
    let previous = match optional_text(message, "OldStateValue", prefix)? {
        Some(value) => Some(alarm_state(value, &format!("{prefix}.OldStateValue"))?),
        None => None,
    };
    let at = match optional_text(message, "StateChangeTime", prefix)? {
        Some(text) => timestamp(text, &format!("{prefix}.StateChangeTime"))?,
        None => timestamp(
            required_text(sns, "Timestamp", "Records[0].Sns")
                .map_err(|_| EventError::new(format!("{prefix}.StateChangeTime"), "missing"))?,
            "Records[0].Sns.Timestamp",
        )?,
    };
    // A metric alarm names its dimensions in `Trigger.Dimensions`; a metric-math or anomaly
    // detection alarm in each `Trigger.Metrics[].MetricStat.Metric.Dimensions`.
    let trigger = message.get("Trigger").and_then(Value::as_object);
    let mut dimensions = Vec::new();
    if let Some(direct) = trigger.and_then(|t| t.get("Dimensions")) {
        let direct = dimension_list(direct);
        if !direct.is_empty() {
            dimensions.push(direct);
        }
    }
    if let Some(metrics) = trigger.and_then(|t| t.get("Metrics")) {
        dimensions.extend(metric_dimensions(metrics));
    }
    Ok(Alarm {
        event_id: message_id,
        name,
        arn: optional_text(message, "AlarmArn", prefix)?
            .filter(|a| !a.is_empty())
            .map(str::to_owned),
        state,
        previous,
        reason: optional_text(message, "NewStateReason", prefix)?
            .unwrap_or_default()
            .to_owned(),
        at,
        dimensions,
        rule: message
            .get("AlarmRule")
            .and_then(Value::as_str)
            .map(str::to_owned),
        description: message
            .get("AlarmDescription")
            .and_then(Value::as_str)
            .map(str::to_owned),
        actions: match message.get("AlarmActions") {
            Some(Value::Array(actions)) => Some(
                actions
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            ),
            _ => None,
        },
    })
}

/// The dimensions of each metric in a list of metric queries, in either spelling: the
/// EventBridge and alarm action shape (`metricStat.metric.dimensions`, an object) or the SNS
/// shape (`MetricStat.Metric.Dimensions`, a list of `name`/`value` pairs). Expressions and
/// anything unreadable are skipped: they name no service.
fn metric_dimensions(metrics: &Value) -> Vec<BTreeMap<String, String>> {
    let Some(metrics) = metrics.as_array() else {
        return Vec::new();
    };
    metrics
        .iter()
        .filter_map(|query| {
            let stat = field(query, &["metricStat", "MetricStat"])?;
            let metric = field(stat, &["metric", "Metric"])?;
            let dimensions = dimension_list(field(metric, &["dimensions", "Dimensions"])?);
            (!dimensions.is_empty()).then_some(dimensions)
        })
        .collect()
}

/// Dimensions as an object (`{"ClusterName": "demo"}`) or as a list of pairs
/// (`[{"name": "ClusterName", "value": "demo"}]`); entries that are not text are skipped.
fn dimension_list(value: &Value) -> BTreeMap<String, String> {
    match value {
        Value::Object(map) => map
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect(),
        Value::Array(pairs) => pairs
            .iter()
            .filter_map(|pair| {
                let name = field(pair, &["name", "Name"])?.as_str()?;
                let value = field(pair, &["value", "Value"])?.as_str()?;
                Some((name.to_owned(), value.to_owned()))
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn field<'a>(value: &'a Value, names: &[&str]) -> Option<&'a Value> {
    let object = value.as_object()?;
    names.iter().find_map(|n| object.get(*n))
}

fn path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn object_at<'a>(
    parent: &'a Map<String, Value>,
    name: &str,
    prefix: &str,
) -> Result<&'a Map<String, Value>, EventError> {
    match parent.get(name) {
        Some(Value::Object(object)) => Ok(object),
        None | Some(Value::Null) => Err(EventError::new(path(prefix, name), "missing")),
        Some(_) => Err(EventError::new(path(prefix, name), "expected an object")),
    }
}

/// A text field that may be absent or null.
fn optional_text<'a>(
    parent: &'a Map<String, Value>,
    name: &str,
    prefix: &str,
) -> Result<Option<&'a str>, EventError> {
    match parent.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(EventError::new(
            path(prefix, name),
            format!("expected a string, got {other}"),
        )),
    }
}

fn required_text<'a>(
    parent: &'a Map<String, Value>,
    name: &str,
    prefix: &str,
) -> Result<&'a str, EventError> {
    match optional_text(parent, name, prefix)? {
        Some(text) if !text.trim().is_empty() => Ok(text),
        Some(_) => Err(EventError::new(path(prefix, name), "empty")),
        None => Err(EventError::new(path(prefix, name), "missing")),
    }
}

fn alarm_state(text: &str, field: &str) -> Result<AlarmState, EventError> {
    AlarmState::parse(text).ok_or_else(|| {
        EventError::new(
            field,
            format!("`{text}` is not OK, ALARM or INSUFFICIENT_DATA"),
        )
    })
}

/// CloudWatch writes `2026-11-23T10:08:00.005+0000` (no colon in the offset); EventBridge's
/// envelope writes RFC 3339.
fn timestamp(text: &str, field: &str) -> Result<DateTime<Utc>, EventError> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|t| t.to_utc())
        .map_err(|e| EventError::new(field, format!("`{text}` is not a timestamp ({e})")))
}

#[cfg(test)]
#[path = "alarm_tests.rs"]
mod tests;
