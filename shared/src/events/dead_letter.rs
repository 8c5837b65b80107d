//! What the failure queue holds, read back as the event and the function it was for.
//!
//! Two kinds of message reach it. A function's on-failure destination receives Lambda's
//! invocation record once the function failed every attempt (or the event grew too old): the
//! event is the record's `requestPayload`, the function its `requestContext.functionArn`. A
//! rule's or the schedule's dead-letter queue receives the event itself when EventBridge could
//! not invoke the function at all; the function is the message attribute `TARGET_ARN`.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::envelope::{EventError, parse_at};
use super::scheduler::{SchedulerEvent, parse_scheduler_event};

/// One event to send back to its function.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// The function's ARN, with the qualifier Lambda named (`:$LATEST`) if any.
    pub function: String,
    pub event: Value,
    pub origin: Origin,
    /// When it failed (Lambda's record) or happened (the event's `time`), when either says.
    pub at: Option<DateTime<Utc>>,
}

/// How the event ended in the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The function ran and failed every attempt, or the event waited too long.
    OnFailure {
        /// `RetriesExhausted` or `EventAgeExceeded`.
        condition: String,
        attempts: Option<u64>,
        /// The error type the function's last attempt returned.
        error: Option<String>,
    },
    /// A rule or the schedule could not invoke the function.
    Undelivered {
        /// The rule's or the schedule's ARN.
        from: Option<String>,
        error: Option<String>,
    },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::OnFailure {
                condition,
                attempts,
                error,
            } => {
                write!(f, "failed in the function ({condition}")?;
                if let Some(n) = attempts {
                    write!(f, ", {n} attempts")?;
                }
                if let Some(e) = error {
                    write!(f, ", {e}")?;
                }
                write!(f, ")")
            }
            Origin::Undelivered { from, error } => {
                write!(f, "never delivered")?;
                if let Some(from) = from {
                    write!(f, " by {}", from.rsplit(['/', ':']).next().unwrap_or(from))?;
                }
                if let Some(e) = error {
                    write!(f, " ({e})")?;
                }
                Ok(())
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvocationRecord {
    #[serde(default)]
    timestamp: Option<DateTime<Utc>>,
    request_context: RequestContext,
    request_payload: Value,
    #[serde(default)]
    response_payload: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext {
    function_arn: String,
    condition: String,
    #[serde(default)]
    approximate_invoke_count: Option<u64>,
}

/// Reads one message of the failure queue: its body and its string message attributes.
pub fn read_dead_letter(
    body: &str,
    attributes: &BTreeMap<String, String>,
) -> Result<DeadLetter, EventError> {
    let value: Value = serde_json::from_str(body)
        .map_err(|e| EventError::new("(body)", format!("not JSON: {e}")))?;
    if let Some(target) = attributes.get("TARGET_ARN") {
        let function = lambda_function(target).ok_or_else(|| {
            EventError::new("TARGET_ARN", format!("`{target}` is not a Lambda function"))
        })?;
        let from = attributes
            .get("RULE_ARN")
            .or_else(|| attributes.get("SCHEDULE_ARN"))
            .cloned();
        let error = match (
            attributes.get("ERROR_CODE"),
            attributes.get("ERROR_MESSAGE"),
        ) {
            (Some(code), Some(message)) => Some(format!("{code}: {message}")),
            (code, message) => code.or(message).cloned(),
        };
        return Ok(DeadLetter {
            function,
            at: event_time(&value),
            event: value,
            origin: Origin::Undelivered { from, error },
        });
    }
    if value.get("requestContext").is_none() {
        return Err(EventError::new(
            "requestContext",
            "missing: neither Lambda's on-failure record (requestContext, requestPayload) nor a \
             dead letter (message attribute TARGET_ARN)",
        ));
    }
    let record: InvocationRecord = parse_at(&value, "")?;
    let function = lambda_function(&record.request_context.function_arn).ok_or_else(|| {
        EventError::new(
            "requestContext.functionArn",
            format!(
                "`{}` is not a Lambda function",
                record.request_context.function_arn
            ),
        )
    })?;
    let error = record
        .response_payload
        .as_ref()
        .and_then(|r| r.get("errorType"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(DeadLetter {
        function,
        at: record
            .timestamp
            .or_else(|| event_time(&record.request_payload)),
        event: record.request_payload,
        origin: Origin::OnFailure {
            condition: record.request_context.condition,
            attempts: record.request_context.approximate_invoke_count,
            error,
        },
    })
}

/// `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`, as given.
fn lambda_function(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    let well_formed = matches!(parts.as_slice(),
        ["arn", partition, "lambda", region, account, "function", name, rest @ ..]
            if !partition.is_empty() && !region.is_empty() && !account.is_empty()
                && !name.is_empty() && rest.len() <= 1 && rest.iter().all(|q| !q.is_empty()));
    well_formed.then(|| arn.to_owned())
}

/// Why an event is not sent back, if it should not be: a reconcile applies the schedule of the
/// instant it names, so replaying one hours later would apply an old schedule now, and the
/// next scheduled reconcile does its work anyway.
pub fn superseded(letter: &DeadLetter) -> Option<String> {
    match parse_scheduler_event(&letter.event) {
        Ok(SchedulerEvent::Reconcile { at, .. }) => Some(format!(
            "a reconcile{} is not replayed: the scheduled reconciles since have done its work, and \
             a replay would apply that instant's schedule now",
            at.map(|t| format!(
                " of {}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ))
            .unwrap_or_default()
        )),
        _ => None,
    }
}

fn event_time(event: &Value) -> Option<DateTime<Utc>> {
    let time = event.get("time")?.as_str()?;
    DateTime::parse_from_rfc3339(time).ok().map(|t| t.to_utc())
}

/// How old a redriven `sleep`, `wake` or pause-hook event may be and still be replayed.
pub const STALE_AFTER: TimeDelta = TimeDelta::hours(1);

/// Why an event is left for the operator rather than replayed, if it is: a `sleep` or `wake`
/// asked for more than an hour ago, or a pause hook's wait reported as long ago, would act on
/// what someone wanted then, not now. One that says nothing of its age is as stale.
pub fn stale(letter: &DeadLetter, now: DateTime<Utc>) -> Option<String> {
    let what = match parse_scheduler_event(&letter.event) {
        Ok(SchedulerEvent::Override { .. }) => "an operator's sleep or wake",
        _ if letter.event.get("detail-type").and_then(Value::as_str)
            == Some("ECS Hook State Change") =>
        {
            "a pause hook's wait"
        }
        _ => return None,
    };
    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match letter.at {
        Some(at) if now - at <= STALE_AFTER => None,
        Some(at) => Some(format!(
            "left in the queue: {what} of {} is more than an hour old; replaying it would act on what was wanted then (do it again if it still holds)",
            fmt(at)
        )),
        None => Some(format!(
            "left in the queue: {what} whose age is unknown is not replayed"
        )),
    }
}

/// A few words on what the event is: `ECR Image Action 6f2c...`, `alarm web-5xx`, `reconcile`.
pub fn describe_event(event: &Value) -> String {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    if let Some(kind) = event.get("detail-type").and_then(text) {
        let id = event.get("id").and_then(text).unwrap_or_default();
        let alarm = event.pointer("/detail/alarmName").and_then(text);
        return match alarm {
            Some(name) => format!("{kind} {name}"),
            None => format!("{kind} {id}").trim_end().to_owned(),
        };
    }
    if let Some(name) = event.pointer("/alarmData/alarmName").and_then(text) {
        return format!("alarm {name}");
    }
    if let Some(message) = event.pointer("/Records/0/Sns/Subject").and_then(text) {
        return message;
    }
    if let Some(action) = event.get("action").and_then(text) {
        let service = event.get("service").and_then(text).unwrap_or_default();
        return format!("{action} {service}").trim_end().to_owned();
    }
    "event".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::aws;

    /// A message of the corpus as ReceiveMessage returns it: its body and string attributes.
    pub(crate) fn message(name: &str) -> (String, BTreeMap<String, String>) {
        let m = aws(name);
        let body = m["Body"].as_str().unwrap_or_default().to_owned();
        let attributes = m["MessageAttributes"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v["StringValue"].as_str()?.to_owned())))
            .collect();
        (body, attributes)
    }

    #[test]
    fn an_on_failure_record_gives_its_request_payload_to_its_function() {
        let (body, attributes) = message("lambda-on-failure-record");
        let letter = read_dead_letter(&body, &attributes).unwrap();
        assert_eq!(
            letter.function,
            "arn:aws:lambda:us-east-1:123456789012:function:deckhand-DeployFunction-4mVdLqPZ7E2b:$LATEST"
        );
        assert_eq!(letter.event, aws("ecr-push-image"));
        assert_eq!(
            letter.origin,
            Origin::OnFailure {
                condition: "RetriesExhausted".into(),
                attempts: Some(3),
                error: Some("deckhand.Transient".into()),
            }
        );
        assert_eq!(
            letter.origin.to_string(),
            "failed in the function (RetriesExhausted, 3 attempts, deckhand.Transient)"
        );
        assert_eq!(
            describe_event(&letter.event),
            format!(
                "ECR Image Action {}",
                aws("ecr-push-image")["id"].as_str().unwrap()
            )
        );
        assert_eq!(superseded(&letter), None);
    }

    #[test]
    fn a_rule_dead_letter_is_the_event_itself_for_its_target() {
        let (body, attributes) = message("eventbridge-rule-dead-letter");
        let letter = read_dead_letter(&body, &attributes).unwrap();
        assert_eq!(
            letter.function,
            "arn:aws:lambda:us-east-1:123456789012:function:deckhand-DeployFunction-4mVdLqPZ7E2b"
        );
        assert_eq!(letter.event, aws("ecs-deployment-completed"));
        assert!(
            matches!(&letter.origin, Origin::Undelivered { from: Some(rule), error: Some(e) }
                if rule.ends_with("rule/deckhand-DeployFunctionEcsDeployment-1QZ3Z4X5Y6W7") && e.starts_with("THROTTLING")),
            "{:?}",
            letter.origin
        );
        assert!(
            letter
                .origin
                .to_string()
                .starts_with("never delivered by deckhand-DeployFunctionEcsDeployment")
        );
        assert_eq!(superseded(&letter), None);
    }

    #[test]
    fn a_schedule_dead_letter_is_a_reconcile_that_is_not_replayed() {
        let (body, attributes) = message("scheduler-dead-letter");
        let letter = read_dead_letter(&body, &attributes).unwrap();
        assert!(
            letter
                .function
                .ends_with(":function:deckhand-SchedulerFunction-9XkR2pLm3QwE")
        );
        assert!(
            matches!(&letter.origin, Origin::Undelivered { from: Some(s), .. } if s.contains(":schedule/"))
        );
        let why = superseded(&letter).unwrap();
        assert!(
            why.starts_with("a reconcile of 2026-11-23T19:00:00Z is not replayed"),
            "{why}"
        );
    }

    #[test]
    fn what_is_neither_is_refused_naming_the_field() {
        let none = BTreeMap::new();
        let err = |body: &str, attributes: &BTreeMap<String, String>| {
            read_dead_letter(body, attributes).unwrap_err().field
        };
        assert_eq!(err("not json", &none), "(body)");
        assert_eq!(
            err(r#"{"detail-type":"ECR Image Action"}"#, &none),
            "requestContext"
        );
        assert_eq!(
            err(
                r#"{"requestContext":{"condition":"RetriesExhausted"},"requestPayload":{}}"#,
                &none
            ),
            "requestContext.functionArn"
        );
        assert_eq!(
            err(
                r#"{"requestContext":{"functionArn":"arn:aws:sqs:us-east-1:123456789012:q","condition":"RetriesExhausted"},"requestPayload":{}}"#,
                &none
            ),
            "requestContext.functionArn"
        );
        assert_eq!(
            err(
                r#"{"requestContext":{"functionArn":"arn:aws:lambda:us-east-1:123456789012:function:f","condition":"RetriesExhausted"}}"#,
                &none
            ),
            "requestPayload"
        );
        let target: BTreeMap<String, String> = [(
            "TARGET_ARN".to_owned(),
            "arn:aws:states:us-east-1:123456789012:stateMachine:s".to_owned(),
        )]
        .into();
        assert_eq!(err("{}", &target), "TARGET_ARN");
    }

    #[test]
    fn function_arns_are_checked_for_their_parts() {
        for good in [
            "arn:aws:lambda:us-east-1:123456789012:function:f",
            "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST",
            "arn:aws-cn:lambda:cn-north-1:123456789012:function:f:live",
        ] {
            assert_eq!(lambda_function(good).as_deref(), Some(good));
        }
        for bad in [
            "",
            "f",
            "arn:aws:lambda:us-east-1:123456789012:function:",
            "arn:aws:lambda:us-east-1:123456789012:function:f:",
            "arn:aws:lambda:us-east-1:123456789012:function:f:1:2",
            "arn:aws:lambda:us-east-1:123456789012:layer:l",
        ] {
            assert_eq!(lambda_function(bad), None, "{bad}");
        }
    }
}
