//! ECS's own events (source `aws.ecs`): a service deployment's state, and a lifecycle hook that
//! waits for an answer.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::deploy_event::DeployEvent;
use super::envelope::{EventError, envelope, parse_at};
use crate::domain::deploy::{DeploymentEvent, DeploymentEventKind};
use crate::domain::service::ServiceKey;
use crate::domain::strategy::HookAwaiting;

pub const ECS_DEPLOYMENT_STATE_CHANGE: &str = "ECS Deployment State Change";
pub const ECS_HOOK_STATE_CHANGE: &str = "ECS Hook State Change";

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

pub(super) fn parse_deployment(value: &Value) -> Result<DeployEvent, EventError> {
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
        .ok_or_else(|| {
            EventError::new(
                "resources",
                "no ECS service ARN (arn:...:service/CLUSTER/SERVICE)",
            )
        })?;
    Ok(DeployEvent::Deployment(DeploymentEvent {
        event_id: envelope.id,
        service,
        kind,
        ecs_deployment_id: detail.deployment_id,
        at: detail.updated_at.unwrap_or(envelope.time),
        reason: detail.reason,
    }))
}

/// AWS documents this event's detail-type and event name, not its fields: the service is taken
/// from any ECS service or service deployment ARN among its resources or in its detail.
pub(super) fn parse_hook(value: &Value) -> Result<DeployEvent, EventError> {
    let envelope = envelope(value, ECS_HOOK_STATE_CHANGE, "aws.ecs")?;
    let name = match envelope.detail.get("eventName") {
        Some(Value::String(name)) => name.as_str(),
        None | Some(Value::Null) => return Err(EventError::new("detail.eventName", "missing")),
        Some(other) => {
            return Err(EventError::new(
                "detail.eventName",
                format!("expected a string, got {other}"),
            ));
        }
    };
    if name != "HOOK_AWAITING_ACTION" {
        return Ok(DeployEvent::NotForDeckhand(format!(
            "ECS hook event {name}: only HOOK_AWAITING_ACTION asks for an answer"
        )));
    }
    let service_of = |arn: &str| {
        ServiceKey::from_arn(arn).or_else(|| ServiceKey::from_service_deployment_arn(arn))
    };
    let mut texts = Vec::new();
    strings_in(&envelope.detail, &mut texts);
    let service = envelope
        .resources
        .iter()
        .map(String::as_str)
        .chain(texts)
        .find_map(service_of)
        .ok_or_else(|| {
            EventError::new(
                "resources",
                "no ECS service or service deployment ARN in the event",
            )
        })?;
    let hook_id = match envelope.detail.get("hookId") {
        Some(Value::String(id)) => Some(id.clone()),
        _ => None,
    };
    Ok(DeployEvent::HookAwaiting(HookAwaiting {
        event_id: envelope.id,
        service,
        hook_id,
        at: envelope.time,
    }))
}

/// Every string in a JSON value, depth first.
fn strings_in<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings_in(v, out)),
        Value::Object(fields) => fields.values().for_each(|v| strings_in(v, out)),
        _ => {}
    }
}
