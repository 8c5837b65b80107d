//! CodeDeploy, for services with the `CODE_DEPLOY` deployment controller: which deployment
//! group deploys a service, a deployment of a revision through an AppSpec, and the stop of one
//! in progress with CodeDeploy's own rollback.

use async_trait::async_trait;
use aws_sdk_codedeploy::types::{
    AppSpecContent, ComputePlatform, DeploymentStatus, RevisionLocation, RevisionLocationType,
};

use super::port_error;
use crate::domain::codedeploy::{DeploymentGroup, GroupView};
use crate::domain::codedeploy_busy::{RunningDeployment, appspec_task_definition};
use crate::domain::service::ServiceKey;
use crate::ports::{CodeDeploy, PortError, PortErrorKind, PortResult};

/// BatchGetApplications takes at most 100 names.
const APPLICATIONS_PER_BATCH: usize = 100;

pub struct CodeDeployGroups {
    client: aws_sdk_codedeploy::Client,
}

impl CodeDeployGroups {
    pub fn new(client: aws_sdk_codedeploy::Client) -> Self {
        Self { client }
    }

    async fn ecs_applications(&self) -> PortResult<Vec<String>> {
        let names = all_pages(|token| async move {
            let page = self
                .client
                .list_applications()
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| port_error("ListApplications", e))?;
            Ok((
                page.applications().to_vec(),
                page.next_token().map(str::to_owned),
            ))
        })
        .await?;
        let mut ecs = Vec::new();
        for batch in names.chunks(APPLICATIONS_PER_BATCH) {
            let described = self
                .client
                .batch_get_applications()
                .set_application_names(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| port_error("BatchGetApplications", e))?;
            ecs.extend(
                described
                    .applications_info()
                    .iter()
                    .filter(|a| a.compute_platform() == Some(&ComputePlatform::Ecs))
                    .filter_map(|a| a.application_name().map(str::to_owned)),
            );
        }
        Ok(ecs)
    }

    async fn group_names(&self, application: &str) -> PortResult<Vec<String>> {
        all_pages(|token| async move {
            let page = self
                .client
                .list_deployment_groups()
                .application_name(application)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| port_error("ListDeploymentGroups", e))?;
            Ok((
                page.deployment_groups().to_vec(),
                page.next_token().map(str::to_owned),
            ))
        })
        .await
    }
}

/// Every item of a paged listing. An empty token ends it as none does (moto sends one on every
/// page).
async fn all_pages<F, Fut>(mut page: F) -> PortResult<Vec<String>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = PortResult<(Vec<String>, Option<String>)>>,
{
    let mut items = Vec::new();
    let mut token = None;
    loop {
        let (found, next) = page(token).await?;
        items.extend(found);
        token = next.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(items);
        }
    }
}

#[async_trait]
impl CodeDeploy for CodeDeployGroups {
    async fn group(&self, group: &DeploymentGroup) -> PortResult<Option<GroupView>> {
        let answer = self
            .client
            .get_deployment_group()
            .application_name(&group.application)
            .deployment_group_name(&group.name)
            .send()
            .await;
        let info = match answer {
            Ok(answer) => answer.deployment_group_info,
            Err(e)
                if e.as_service_error().is_some_and(|e| {
                    e.is_application_does_not_exist_exception()
                        || e.is_deployment_group_does_not_exist_exception()
                }) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(port_error("GetDeploymentGroup", e)),
        };
        let services = info
            .iter()
            .flat_map(|i| i.ecs_services())
            .filter_map(|s| Some(ServiceKey::new(s.cluster_name()?, s.service_name()?)))
            .collect();
        Ok(Some(GroupView {
            group: group.clone(),
            services,
        }))
    }

    async fn groups_deploying(&self, service: &ServiceKey) -> PortResult<Vec<GroupView>> {
        let mut found = Vec::new();
        for application in self.ecs_applications().await? {
            for name in self.group_names(&application).await? {
                let group = DeploymentGroup::new(application.clone(), name);
                if let Some(view) = self.group(&group).await?
                    && view.services.contains(service)
                {
                    found.push(view);
                }
            }
        }
        Ok(found)
    }

    async fn create_deployment(
        &self,
        group: &DeploymentGroup,
        appspec: &str,
        description: &str,
    ) -> PortResult<String> {
        let revision = RevisionLocation::builder()
            .revision_type(RevisionLocationType::AppSpecContent)
            .app_spec_content(AppSpecContent::builder().content(appspec).build())
            .build();
        let created = self
            .client
            .create_deployment()
            .application_name(&group.application)
            .deployment_group_name(&group.name)
            .revision(revision)
            .description(description)
            .send()
            .await
            .map_err(|e| {
                let busy = e
                    .as_service_error()
                    .is_some_and(|e| e.is_deployment_limit_exceeded_exception());
                let mut error = port_error("CreateDeployment", e);
                if busy {
                    // The group runs another deployment: one at a time.
                    error.kind = PortErrorKind::Conflict;
                }
                error
            })?;
        created.deployment_id.ok_or_else(|| {
            PortError::new(
                "CreateDeployment",
                PortErrorKind::Other,
                "CodeDeploy answered without a deployment id",
            )
        })
    }

    async fn deployment_in_progress(&self, group: &DeploymentGroup) -> PortResult<Option<String>> {
        let listed = self
            .client
            .list_deployments()
            .application_name(&group.application)
            .deployment_group_name(&group.name)
            .set_include_only_statuses(Some(vec![
                DeploymentStatus::Created,
                DeploymentStatus::Queued,
                DeploymentStatus::InProgress,
                DeploymentStatus::Baking,
                DeploymentStatus::Ready,
            ]))
            .send()
            .await
            .map_err(|e| port_error("ListDeployments", e))?;
        // An ECS deployment group runs one deployment at a time.
        Ok(listed.deployments().first().cloned())
    }

    async fn deployment(&self, deployment_id: &str) -> PortResult<Option<RunningDeployment>> {
        let answer = self
            .client
            .get_deployment()
            .deployment_id(deployment_id)
            .send()
            .await;
        let info = match answer {
            Ok(answer) => answer.deployment_info,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_deployment_does_not_exist_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(port_error("GetDeployment", e)),
        };
        Ok(info.map(|info| RunningDeployment {
            id: deployment_id.to_owned(),
            task_definition: info
                .revision()
                .and_then(|r| r.app_spec_content())
                .and_then(|a| a.content())
                .and_then(appspec_task_definition),
            rolls_back: info
                .rollback_info()
                .and_then(|r| r.rollback_triggering_deployment_id())
                .map(str::to_owned),
            creator: info.creator().map(|c| c.as_str().to_owned()),
        }))
    }

    async fn stop_deployment(&self, deployment_id: &str) -> PortResult<()> {
        self.client
            .stop_deployment()
            .deployment_id(deployment_id)
            .auto_rollback_enabled(true)
            .send()
            .await
            .map_err(|e| port_error("StopDeployment", e))?;
        Ok(())
    }
}
