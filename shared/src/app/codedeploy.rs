//! The CodeDeploy side of a `CODE_DEPLOY` service, shared by the deploy, the rollback and the
//! operator: which deployment group deploys it, and a deployment of a revision through it.

use super::Ports;
use crate::domain::codedeploy::{
    CodeDeployTarget, DeploymentGroup, TAG_CODEDEPLOY, appspec, choose_target,
};
use crate::domain::fleet::ServiceView;
use crate::domain::service::revision_name;
use crate::domain::settings::TagProblem;
use crate::ports::{PortError, PortErrorKind};

/// The deployment group, container and hooks of a `CODE_DEPLOY` service: the tagged group
/// (one `GetDeploymentGroup`), else a search of the ECS applications' groups for the one whose
/// `ecsServices` name it. A set-up that cannot deploy is a tag problem; a failed read, an error.
pub(crate) async fn codedeploy_target(
    ports: &Ports,
    service: &ServiceView,
) -> Result<Result<CodeDeployTarget, TagProblem>, PortError> {
    let groups = match service
        .tags
        .get(TAG_CODEDEPLOY)
        .map(|v| DeploymentGroup::from_tag(v))
    {
        Some(Err(problem)) => return Ok(Err(problem)),
        Some(Ok(group)) => ports.codedeploy.group(&group).await?.into_iter().collect(),
        None => ports.codedeploy.groups_deploying(&service.key).await?,
    };
    Ok(choose_target(service, &groups))
}

/// The same, where a tag problem can only be reported as the failure of the action.
pub(crate) async fn codedeploy_target_or_error(
    ports: &Ports,
    service: &ServiceView,
) -> Result<CodeDeployTarget, PortError> {
    codedeploy_target(ports, service).await?.map_err(|problem| {
        PortError::new(
            "CreateDeployment",
            PortErrorKind::Other,
            problem.to_string(),
        )
    })
}

/// `CreateDeployment` of `task_definition` in the service's group; returns the deployment id.
pub(crate) async fn deploy_through_codedeploy(
    ports: &Ports,
    target: &CodeDeployTarget,
    task_definition: &str,
    why: &str,
) -> Result<String, PortError> {
    let description = format!("deckhand: {why} ({})", revision_name(task_definition));
    ports
        .codedeploy
        .create_deployment(
            &target.group,
            &appspec(task_definition, target),
            &description,
        )
        .await
}
