//! What every event parser shares: the error that names the field at fault, deserialisation
//! that reports the field's path, and the EventBridge envelope with the fields deckhand requires.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// An event that cannot be parsed, naming the field at fault (a dotted path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EventError {
    pub field: String,
    pub message: String,
}

impl EventError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Deserialises `value` as `T`, reporting the path of the field at fault under `prefix`.
pub fn parse_at<T: DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, EventError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // A missing field is reported at its parent; name the field itself.
        let missing = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let local = match (missing, path.as_str()) {
            (Some(name), ".") => name.to_owned(),
            (Some(name), parent) => format!("{parent}.{name}"),
            (None, ".") => String::new(),
            (None, path) => path.to_owned(),
        };
        let field = match (prefix, local.as_str()) {
            ("", "") => "(event)".to_owned(),
            ("", local) => local.to_owned(),
            (prefix, "") => prefix.to_owned(),
            (prefix, local) => format!("{prefix}.{local}"),
        };
        let message = if missing.is_some() {
            "missing".to_owned()
        } else {
            inner
        };
        EventError::new(field, message)
    })
}

/// The EventBridge envelope with the fields deckhand requires.
pub(crate) struct Envelope {
    pub(crate) id: String,
    pub(crate) time: DateTime<Utc>,
    pub(crate) account: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) resources: Vec<String>,
    pub(crate) detail: Value,
}

pub(crate) fn envelope(
    value: &Value,
    detail_type: &str,
    source: &str,
) -> Result<Envelope, EventError> {
    let event: EventBridgeEvent<Value> = parse_at(value, "")?;
    if event.source != source {
        return Err(EventError::new(
            "source",
            format!(
                "`{}` does not go with detail-type `{detail_type}` (expected `{source}`)",
                event.source
            ),
        ));
    }
    let id = event
        .id
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| EventError::new("id", "missing"))?;
    let time = event
        .time
        .ok_or_else(|| EventError::new("time", "missing"))?;
    if !event.detail.is_object() {
        return Err(EventError::new("detail", "expected an object"));
    }
    Ok(Envelope {
        id,
        time,
        account: event.account,
        region: event.region,
        resources: event.resources.unwrap_or_default(),
        detail: event.detail,
    })
}

pub(crate) fn detail_type(value: &Value) -> Result<&str, EventError> {
    if !value.is_object() {
        return Err(EventError::new("(event)", "expected a JSON object"));
    }
    match value.get("detail-type") {
        None | Some(Value::Null) => Err(EventError::new("detail-type", "missing")),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(EventError::new(
            "detail-type",
            format!("expected a string, got {other}"),
        )),
    }
}

pub(crate) fn required_text(value: Option<String>, field: &str) -> Result<String, EventError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| EventError::new(field, "missing"))
}
