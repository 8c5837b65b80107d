//! `CodeDeploy Deployment State-change Notification` (source `aws.codedeploy`): closes the loop
//! of a deployment of a `CODE_DEPLOY` service.

use serde::Deserialize;
use serde_json::Value;

use super::deploy_event::DeployEvent;
use super::envelope::{EventError, envelope, parse_at};
use crate::domain::codedeploy::{CodeDeployEvent, DeploymentGroup};

pub const CODEDEPLOY_DEPLOYMENT_STATE_CHANGE: &str =
    "CodeDeploy Deployment State-change Notification";

/// `detail` of `CodeDeploy Deployment State-change Notification`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CodeDeployStateChange {
    application: String,
    deployment_group: String,
    deployment_id: String,
    state: String,
}

pub(super) fn parse_codedeploy(value: &Value) -> Result<DeployEvent, EventError> {
    let envelope = envelope(value, CODEDEPLOY_DEPLOYMENT_STATE_CHANGE, "aws.codedeploy")?;
    let detail: CodeDeployStateChange = parse_at(&envelope.detail, "detail")?;
    for (field, text) in [
        ("detail.application", &detail.application),
        ("detail.deploymentGroup", &detail.deployment_group),
        ("detail.deploymentId", &detail.deployment_id),
    ] {
        if text.trim().is_empty() {
            return Err(EventError::new(field, "empty"));
        }
    }
    Ok(DeployEvent::CodeDeploy(CodeDeployEvent {
        event_id: envelope.id,
        group: DeploymentGroup::new(detail.application, detail.deployment_group),
        deployment_id: detail.deployment_id,
        state: detail.state,
        at: envelope.time,
    }))
}
