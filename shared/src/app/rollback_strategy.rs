//! Carrying out a rollback the fastest way the service's strategy allows: ECS's own rollback
//! of a blue/green, linear or canary deployment still in progress (`StopServiceDeployment`),
//! else `UpdateService` to the known-good revision; for a `CODE_DEPLOY` service, CodeDeploy's
//! own rollback of deckhand's deployment in progress (`StopDeployment`), else a new CodeDeploy
//! deployment of the known-good revision. Only a service ECS shifts the traffic of costs the
//! `ListServiceDeployments` that tells the two apart (`ListDeployments` for CodeDeploy).

use super::RollbackFunction;
use crate::app::codedeploy::{codedeploy_target_or_error, deploy_through_codedeploy};
use crate::app::locking::renew_before_acting;
use crate::domain::fleet::{DeploymentController, ServiceView};
use crate::domain::strategy::{RollbackPath, RollbackRoute, rollback_path};
use crate::ports::{Locked, PortError};

impl RollbackFunction {
    /// Moves the service back to `to` under a freshly renewed lease, and says how.
    /// `back_to_target`: the revision ECS would go back to (the one the deployment in progress
    /// started from) is `to`.
    pub(super) async fn roll_back_service(
        &self,
        service: &ServiceView,
        to: &str,
        back_to_target: bool,
        locked: &Locked,
    ) -> Result<RollbackRoute, PortError> {
        let codedeploy = match service.controller {
            DeploymentController::CodeDeploy => {
                Some(codedeploy_target_or_error(&self.ports, service).await?)
            }
            _ => None,
        };
        let (in_progress, back_to_target) = match &codedeploy {
            // CodeDeploy's rollback goes back to where its deployment started: only deckhand's
            // own deployment started from the revision deckhand recorded.
            Some(target) => {
                let running = self
                    .ports
                    .codedeploy
                    .deployment_in_progress(&target.group)
                    .await?;
                let ours = locked
                    .state
                    .deployment
                    .as_ref()
                    .and_then(|d| d.ecs_deployment_id.as_deref());
                let back = back_to_target && running.is_some() && running.as_deref() == ours;
                (running, back)
            }
            None if service.strategy.shifts_traffic()
                && service.controller == DeploymentController::Ecs =>
            {
                let running = self.ports.ecs.deployment_in_progress(&service.key).await?;
                (running, back_to_target)
            }
            None => (None, back_to_target),
        };
        let route = RollbackRoute {
            strategy: service.strategy,
            path: rollback_path(
                service.controller,
                service.strategy,
                in_progress.as_deref(),
                back_to_target,
            ),
        };
        let mut held = locked.clone();
        renew_before_acting(
            &*self.ports.store,
            &*self.ports.clock,
            &service.key,
            &mut held,
        )
        .await?;
        match &route.path {
            RollbackPath::Redeploy => self.ports.ecs.update_service(&service.key, to).await?,
            RollbackPath::StopServiceDeployment {
                service_deployment_arn,
            } => {
                self.ports
                    .ecs
                    .stop_service_deployment(service_deployment_arn)
                    .await?;
                None
            }
            RollbackPath::StopCodeDeployDeployment { deployment_id } => {
                self.ports.codedeploy.stop_deployment(deployment_id).await?;
                None
            }
            RollbackPath::CodeDeployRedeploy => {
                let target = codedeploy.as_ref().ok_or_else(|| {
                    PortError::new(
                        "CreateDeployment",
                        crate::ports::PortErrorKind::Other,
                        "no CodeDeploy deployment group for the service",
                    )
                })?;
                let why = format!("rollback of {}", service.key);
                Some(deploy_through_codedeploy(&self.ports, target, to, &why).await?)
            }
        };
        Ok(route)
    }
}
