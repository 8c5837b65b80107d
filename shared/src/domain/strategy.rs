//! How ECS deploys a service, and so how deckhand rolls it back the fastest way it allows. With
//! the ECS controller, `deploymentConfiguration.strategy` says who shifts the traffic: a rolling
//! deployment replaces tasks, while blue/green, linear and canary deployments run a second set of
//! tasks and move the traffic themselves, bake time included, so ECS can move it back
//! (`StopServiceDeployment` with `ROLLBACK`) faster than a new deployment would.

use super::service::revision_name;

/// Who deploys the service (`deploymentController.type`). Only with `ECS` does ECS accept a
/// new task definition through `UpdateService`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeploymentController {
    #[default]
    Ecs,
    CodeDeploy,
    External,
}

impl DeploymentController {
    /// ECS's word for it; an absent or unknown one is ECS's default.
    pub fn parse(text: &str) -> Self {
        match text {
            "CODE_DEPLOY" => Self::CodeDeploy,
            "EXTERNAL" => Self::External,
            _ => Self::Ecs,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ecs => "ECS",
            Self::CodeDeploy => "CODE_DEPLOY",
            Self::External => "EXTERNAL",
        }
    }
}

/// `deploymentConfiguration.strategy` of an ECS-controlled service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    #[default]
    Rolling,
    BlueGreen,
    Linear,
    Canary,
}

impl Strategy {
    /// ECS's word for it; an absent or unknown one is ECS's default, rolling.
    pub fn parse(text: &str) -> Self {
        match text {
            "BLUE_GREEN" => Self::BlueGreen,
            "LINEAR" => Self::Linear,
            "CANARY" => Self::Canary,
            _ => Self::Rolling,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rolling => "ROLLING",
            Self::BlueGreen => "BLUE_GREEN",
            Self::Linear => "LINEAR",
            Self::Canary => "CANARY",
        }
    }

    /// ECS shifts the traffic between two sets of tasks, and can shift it back.
    pub fn shifts_traffic(self) -> bool {
        self != Self::Rolling
    }
}

/// How a rollback that deckhand decided is carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RollbackPath {
    /// `UpdateService` to the known-good revision: a new deployment.
    Redeploy,
    /// `StopServiceDeployment` with `ROLLBACK`: ECS moves the traffic back to the tasks it kept.
    StopServiceDeployment { service_deployment_arn: String },
    /// `StopDeployment` with auto-rollback: CodeDeploy moves the traffic back to the task set
    /// it kept.
    StopCodeDeployDeployment { deployment_id: String },
    /// The same, of a deployment deckhand did not start that deploys the bad revision: the
    /// service goes back to what ran before it.
    StopOtherCodeDeployDeployment { deployment_id: String },
    /// `CreateDeployment` of the known-good revision: a new CodeDeploy deployment.
    CodeDeployRedeploy,
}

/// `ECS Hook State Change` with `HOOK_AWAITING_ACTION`: a deployment of the service waits at a
/// pause hook. The service and the hook it announces are taken from it;
/// `DescribeServiceDeployments` says the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookAwaiting {
    pub event_id: String,
    pub service: super::service::ServiceKey,
    /// The hook the event announces (`detail.hookId`), when it names one.
    pub hook_id: Option<String>,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The rollback as it ran: the strategy of the service and the path taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackRoute {
    pub strategy: Strategy,
    pub path: RollbackPath,
}

impl RollbackRoute {
    /// The AWS call that moved the service back.
    pub fn call(&self) -> &'static str {
        match self.path {
            RollbackPath::Redeploy => "UpdateService",
            RollbackPath::StopServiceDeployment { .. } => "StopServiceDeployment",
            RollbackPath::StopCodeDeployDeployment { .. }
            | RollbackPath::StopOtherCodeDeployDeployment { .. } => "StopDeployment",
            RollbackPath::CodeDeployRedeploy => "CreateDeployment",
        }
    }

    /// What the summary and history add to the reason; nothing for a rolling service, whose
    /// only path is the redeploy the reason already names.
    pub fn words(&self, to: &str) -> Option<String> {
        let strategy = self.strategy.as_str();
        match self.path {
            RollbackPath::StopCodeDeployDeployment { ref deployment_id } => {
                return Some(format!(
                    "CodeDeploy's own rollback of its deployment {deployment_id} in progress (StopDeployment with auto-rollback), the traffic back on {}",
                    revision_name(to)
                ));
            }
            RollbackPath::StopOtherCodeDeployDeployment { ref deployment_id } => {
                return Some(format!(
                    "CodeDeploy's own rollback of {deployment_id}, a deployment deckhand did not start that deploys the bad revision (StopDeployment with auto-rollback): the traffic goes back to what ran before it"
                ));
            }
            RollbackPath::CodeDeployRedeploy => {
                return Some(format!(
                    "a new CodeDeploy deployment of {} (CreateDeployment): no CodeDeploy deployment in progress to stop",
                    revision_name(to)
                ));
            }
            _ if !self.strategy.shifts_traffic() => return None,
            _ => {}
        }
        Some(match self.path {
            RollbackPath::StopServiceDeployment { .. } => format!(
                "ECS's own rollback of its {strategy} deployment in progress (StopServiceDeployment), the traffic back on {}",
                revision_name(to)
            ),
            _ => format!(
                "a new deployment of {} (UpdateService): no {strategy} deployment of ECS in progress to stop",
                revision_name(to)
            ),
        })
    }
}

/// The fastest way the service allows: ECS's own rollback while a traffic-shifting deployment
/// is in progress (its bake time included), else a redeploy of the known-good revision; for a
/// `CODE_DEPLOY` service the same through CodeDeploy.
/// `in_progress` is the ARN of the service deployment ECS reports in progress (for a
/// `CODE_DEPLOY` service, the id of the CodeDeploy deployment in progress), if any;
/// `back_to_target` says the revision ECS would go back to (the one the deployment started
/// from) is the known-good target: otherwise only a redeploy reaches the target.
pub fn rollback_path(
    controller: DeploymentController,
    strategy: Strategy,
    in_progress: Option<&str>,
    back_to_target: bool,
) -> RollbackPath {
    match (controller, in_progress) {
        (DeploymentController::Ecs, Some(arn)) if strategy.shifts_traffic() && back_to_target => {
            RollbackPath::StopServiceDeployment {
                service_deployment_arn: arn.to_owned(),
            }
        }
        (DeploymentController::CodeDeploy, Some(id)) if back_to_target => {
            RollbackPath::StopCodeDeployDeployment {
                deployment_id: id.to_owned(),
            }
        }
        (DeploymentController::CodeDeploy, _) => RollbackPath::CodeDeployRedeploy,
        _ => RollbackPath::Redeploy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:ecs:eu-west-1:123456789012:service-deployment/prod/web/1a2b3c";

    #[test]
    fn every_row_of_the_table_chooses_its_path() {
        for strategy in [Strategy::BlueGreen, Strategy::Linear, Strategy::Canary] {
            assert_eq!(
                rollback_path(DeploymentController::Ecs, strategy, Some(ARN), true),
                RollbackPath::StopServiceDeployment {
                    service_deployment_arn: ARN.into()
                },
                "{strategy:?} in progress"
            );
            assert_eq!(
                rollback_path(DeploymentController::Ecs, strategy, None, true),
                RollbackPath::Redeploy,
                "{strategy:?} completed"
            );
        }
        assert_eq!(
            rollback_path(
                DeploymentController::Ecs,
                Strategy::Rolling,
                Some(ARN),
                true
            ),
            RollbackPath::Redeploy
        );
        // ECS would go back to a revision that is not the known-good one: only a redeploy
        // reaches it.
        assert_eq!(
            rollback_path(
                DeploymentController::Ecs,
                Strategy::BlueGreen,
                Some(ARN),
                false
            ),
            RollbackPath::Redeploy
        );
    }

    #[test]
    fn a_code_deploy_service_goes_back_through_code_deploy() {
        let cd = DeploymentController::CodeDeploy;
        let stop = rollback_path(cd, Strategy::Rolling, Some("d-1"), true);
        assert_eq!(
            stop,
            RollbackPath::StopCodeDeployDeployment {
                deployment_id: "d-1".into()
            }
        );
        let route = RollbackRoute {
            strategy: Strategy::Rolling,
            path: stop,
        };
        assert_eq!(route.call(), "StopDeployment");
        assert!(
            route
                .words("arn:aws:ecs:r:1:task-definition/web:1")
                .unwrap()
                .contains("web:1")
        );
        for (in_progress, back) in [(None, true), (Some("d-1"), false), (None, false)] {
            let path = rollback_path(cd, Strategy::Rolling, in_progress, back);
            assert_eq!(
                path,
                RollbackPath::CodeDeployRedeploy,
                "{in_progress:?} {back}"
            );
            let route = RollbackRoute {
                strategy: Strategy::Rolling,
                path,
            };
            assert_eq!(route.call(), "CreateDeployment");
        }
        assert_eq!(
            rollback_path(
                DeploymentController::External,
                Strategy::Rolling,
                Some("x"),
                true
            ),
            RollbackPath::Redeploy
        );
    }

    #[test]
    fn strategies_read_as_ecs_writes_them() {
        for s in [
            Strategy::Rolling,
            Strategy::BlueGreen,
            Strategy::Linear,
            Strategy::Canary,
        ] {
            assert_eq!(Strategy::parse(s.as_str()), s);
        }
        assert_eq!(Strategy::parse(""), Strategy::Rolling);
    }
}
