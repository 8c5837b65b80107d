//! Parsing the payloads that reach the functions into domain types. Every failure names the
//! field at fault.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::domain::deploy::{DeploymentEvent, DeploymentEventKind, Push};
use crate::domain::image::{Digest, Repository};
use crate::domain::service::ServiceKey;

pub const ECR_IMAGE_ACTION: &str = "ECR Image Action";
pub const ECR_IMAGE_SCAN: &str = "ECR Image Scan";
pub const ECS_DEPLOYMENT_STATE_CHANGE: &str = "ECS Deployment State Change";

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

/// What reaches the `deploy` function.
#[derive(Debug, Clone, PartialEq)]
pub enum DeployEvent {
    Push(Push),
    Deployment(DeploymentEvent),
    /// `ECR Image Scan`: handled by the scan gate.
    Scan { event_id: String },
    /// Well-formed, but not something deckhand acts on.
    NotForDeckhand(String),
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
        let message = if missing.is_some() { "missing".to_owned() } else { inner };
        EventError::new(field, message)
    })
}

/// The EventBridge envelope with the fields deckhand requires.
struct Envelope {
    id: String,
    time: DateTime<Utc>,
    account: Option<String>,
    region: Option<String>,
    resources: Vec<String>,
    detail: Value,
}

fn envelope(value: &Value, detail_type: &str, source: &str) -> Result<Envelope, EventError> {
    let event: EventBridgeEvent<Value> = parse_at(value, "")?;
    if event.source != source {
        return Err(EventError::new(
            "source",
            format!("`{}` does not go with detail-type `{detail_type}` (expected `{source}`)", event.source),
        ));
    }
    let id = event
        .id
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| EventError::new("id", "missing"))?;
    let time = event.time.ok_or_else(|| EventError::new("time", "missing"))?;
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

fn detail_type(value: &Value) -> Result<&str, EventError> {
    if !value.is_object() {
        return Err(EventError::new("(event)", "expected a JSON object"));
    }
    match value.get("detail-type") {
        None | Some(Value::Null) => Err(EventError::new("detail-type", "missing")),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(EventError::new("detail-type", format!("expected a string, got {other}"))),
    }
}

/// `detail` of `ECR Image Action`; aws_lambda_events has no type for it.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct EcrImageAction {
    action_type: String,
    result: String,
    repository_name: String,
    image_digest: String,
    #[serde(default)]
    image_tag: Option<String>,
}

/// `detail` of `ECS Deployment State Change`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EcsDeploymentStateChange {
    event_name: String,
    deployment_id: String,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    reason: Option<String>,
}

pub fn parse_deploy_event(value: &Value) -> Result<DeployEvent, EventError> {
    match detail_type(value)? {
        ECR_IMAGE_ACTION => parse_push(value),
        ECS_DEPLOYMENT_STATE_CHANGE => parse_deployment(value),
        ECR_IMAGE_SCAN => {
            let envelope = envelope(value, ECR_IMAGE_SCAN, "aws.ecr")?;
            Ok(DeployEvent::Scan { event_id: envelope.id })
        }
        other => Err(EventError::new(
            "detail-type",
            format!(
                "`{other}` is not handled by deploy (expected `{ECR_IMAGE_ACTION}`, `{ECS_DEPLOYMENT_STATE_CHANGE}` or `{ECR_IMAGE_SCAN}`)"
            ),
        )),
    }
}

fn required_text(value: Option<String>, field: &str) -> Result<String, EventError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| EventError::new(field, "missing"))
}

fn parse_push(value: &Value) -> Result<DeployEvent, EventError> {
    let envelope = envelope(value, ECR_IMAGE_ACTION, "aws.ecr")?;
    let detail: EcrImageAction = parse_at(&envelope.detail, "detail")?;
    if detail.action_type != "PUSH" || detail.result != "SUCCESS" {
        return Ok(DeployEvent::NotForDeckhand(format!(
            "ECR {} with result {} is not a successful push",
            detail.action_type, detail.result
        )));
    }
    if detail.repository_name.trim().is_empty() {
        return Err(EventError::new("detail.repository-name", "empty"));
    }
    let digest: Digest = detail
        .image_digest
        .parse()
        .map_err(|e: crate::domain::image::DigestError| EventError::new("detail.image-digest", e.to_string()))?;
    Ok(DeployEvent::Push(Push {
        event_id: envelope.id,
        at: envelope.time,
        repository: Repository {
            account: required_text(envelope.account, "account")?,
            region: required_text(envelope.region, "region")?,
            name: detail.repository_name,
        },
        digest,
        tag: detail.image_tag.filter(|t| !t.is_empty()),
    }))
}

fn parse_deployment(value: &Value) -> Result<DeployEvent, EventError> {
    let envelope = envelope(value, ECS_DEPLOYMENT_STATE_CHANGE, "aws.ecs")?;
    let detail: EcsDeploymentStateChange = parse_at(&envelope.detail, "detail")?;
    let kind = match detail.event_name.as_str() {
        "SERVICE_DEPLOYMENT_IN_PROGRESS" => DeploymentEventKind::InProgress,
        "SERVICE_DEPLOYMENT_COMPLETED" => DeploymentEventKind::Completed,
        "SERVICE_DEPLOYMENT_FAILED" => DeploymentEventKind::Failed,
        other => {
            return Err(EventError::new(
                "detail.eventName",
                format!("`{other}` is not a SERVICE_DEPLOYMENT_* event"),
            ));
        }
    };
    if detail.deployment_id.trim().is_empty() {
        return Err(EventError::new("detail.deploymentId", "empty"));
    }
    let service = envelope
        .resources
        .iter()
        .find_map(|arn| ServiceKey::from_arn(arn))
        .ok_or_else(|| EventError::new("resources", "no ECS service ARN (arn:...:service/CLUSTER/SERVICE)"))?;
    Ok(DeployEvent::Deployment(DeploymentEvent {
        event_id: envelope.id,
        service,
        kind,
        ecs_deployment_id: detail.deployment_id,
        at: detail.updated_at.unwrap_or(envelope.time),
        reason: detail.reason,
    }))
}
