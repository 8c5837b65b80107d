//! Carrying out a rollback the fastest way the service's strategy allows: ECS's own rollback
//! of a blue/green, linear or canary deployment still in progress (`StopServiceDeployment`),
//! else `UpdateService` to the known-good revision. Only a service ECS shifts the traffic of
//! costs the `ListServiceDeployments` that tells the two apart.

use super::RollbackFunction;
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
        let in_progress = if service.controller == DeploymentController::Ecs
            && service.strategy.shifts_traffic()
        {
            self.ports.ecs.deployment_in_progress(&service.key).await?
        } else {
            None
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
        };
        Ok(route)
    }
}
