//! CodeDeploy's `Deployment State-change Notification` events close the loop of deployments
//! of `CODE_DEPLOY` services as ECS's deployment events do for the others: `SUCCESS` completes
//! (the guard window starts), `FAILURE` and `STOP` fail. The event names the deployment group;
//! the group's `ecsServices` name the service. Any deployment's end frees the group: a push held
//! while it ran deploys then.

use super::{DeployError, DeployFunction};
use crate::domain::codedeploy::{CodeDeployEvent, CodeDeployState};
use crate::domain::deploy::{DeploymentEvent, DeploymentEventKind};
use crate::report::{Action, Summary};

impl DeployFunction {
    pub(super) async fn on_codedeploy_event(
        &self,
        event: &CodeDeployEvent,
    ) -> Result<Summary, DeployError> {
        let kind = match CodeDeployState::parse(&event.state) {
            CodeDeployState::Succeeded => DeploymentEventKind::Completed,
            CodeDeployState::Failed => DeploymentEventKind::Failed,
            CodeDeployState::Other => {
                return Ok(Summary::ignored(format!(
                    "CodeDeploy deployment {} is {}: only SUCCESS, FAILURE and STOP end a deployment",
                    event.deployment_id, event.state
                )));
            }
        };
        let Some(group) = self
            .ports
            .codedeploy
            .group(&event.group)
            .await
            .map_err(DeployError::Discovery)?
        else {
            return Ok(Summary::ignored(format!(
                "CodeDeploy has no deployment group {}",
                event.group
            )));
        };
        // An ECS deployment group deploys exactly one service.
        let Some(service) = group.services.into_iter().next() else {
            return Ok(Summary::ignored(format!(
                "the deployment group {} deploys no ECS service",
                event.group
            )));
        };
        let reason = match kind {
            DeploymentEventKind::Failed => Some(format!(
                "CodeDeploy reported deployment {} {}",
                event.deployment_id, event.state
            )),
            _ => None,
        };
        let deployment = DeploymentEvent {
            event_id: event.event_id.clone(),
            service: service.clone(),
            kind,
            ecs_deployment_id: event.deployment_id.clone(),
            at: event.at,
            reason,
        };
        let summary = self.on_deployment_event(&deployment).await?;
        // A deployment of the group ended, so the group is free: a push held for it goes now.
        // Housekeeping: what fails here was notified, and the next round of held pushes tries
        // again; it never fails this event.
        let released: Vec<_> = self
            .release_held(Some(&service))
            .await
            .into_iter()
            .filter(|r| r.action != Action::Error)
            .collect();
        Ok(summary.with(released))
    }
}
