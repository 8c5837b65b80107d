//! CodeDeploy in memory: deployment groups and the deployments created in them, which stay in
//! progress until a test ends them.

use std::sync::Mutex;

use async_trait::async_trait;

use super::guard;
use crate::domain::codedeploy::{DeploymentGroup, GroupView};
use crate::domain::codedeploy_busy::{
    ROLLBACK_CREATOR, RunningDeployment, appspec_task_definition,
};
use crate::domain::service::ServiceKey;
use crate::ports::{CodeDeploy, PortError, PortErrorKind, PortResult};

/// A deployment as CodeDeploy keeps it: id, group, AppSpec and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryDeployment {
    pub id: String,
    pub group: DeploymentGroup,
    pub appspec: String,
    pub status: String,
    pub stopped_with_rollback: bool,
    /// `user` for deployments made through the port or a test, `codeDeployRollback` for
    /// CodeDeploy's own rollbacks.
    pub creator: String,
    /// The deployment a rollback deployment rolls back.
    pub rolls_back: Option<String>,
}

#[derive(Default)]
pub struct MemoryCodeDeploy {
    groups: Mutex<Vec<GroupView>>,
    deployments: Mutex<Vec<MemoryDeployment>>,
}

impl MemoryCodeDeploy {
    /// A deployment group of an ECS application that deploys these services.
    pub fn add_group(&self, application: &str, name: &str, services: &[ServiceKey]) {
        guard(&self.groups).push(GroupView {
            group: DeploymentGroup::new(application, name),
            services: services.to_vec(),
        });
    }

    pub fn deployments(&self) -> Vec<MemoryDeployment> {
        guard(&self.deployments).clone()
    }

    /// Ends a deployment with this status (`Succeeded`, `Failed`).
    pub fn end(&self, id: &str, status: &str) {
        for d in guard(&self.deployments).iter_mut().filter(|d| d.id == id) {
            d.status = status.to_owned();
        }
    }

    /// A deployment deckhand did not start (a pipeline's), of the task definition `deploys`
    /// (`None`: its AppSpec is not shown); returns its id.
    pub fn start_elsewhere(&self, group: &DeploymentGroup, deploys: Option<&str>) -> String {
        self.start(group, deploys, "user", None)
    }

    /// CodeDeploy's own rollback of `of`, which fails: a deployment of `back_to`.
    pub fn roll_back_elsewhere(&self, of: &str, back_to: &str) -> String {
        let group = {
            let mut deployments = guard(&self.deployments);
            let Some(d) = deployments.iter_mut().find(|d| d.id == of) else {
                return String::new();
            };
            d.status = "Failed".into();
            d.group.clone()
        };
        self.start(&group, Some(back_to), ROLLBACK_CREATOR, Some(of))
    }

    fn start(
        &self,
        group: &DeploymentGroup,
        deploys: Option<&str>,
        creator: &str,
        rolls_back: Option<&str>,
    ) -> String {
        let mut deployments = guard(&self.deployments);
        let id = format!("d-MEM{:06}", deployments.len() + 1);
        deployments.push(MemoryDeployment {
            id: id.clone(),
            group: group.clone(),
            appspec: deploys.map_or_else(String::new, |td| {
                format!(r#"{{"Resources":[{{"TargetService":{{"Properties":{{"TaskDefinition":"{td}"}}}}}}]}}"#)
            }),
            status: "InProgress".into(),
            stopped_with_rollback: false,
            creator: creator.into(),
            rolls_back: rolls_back.map(str::to_owned),
        });
        id
    }
}

#[async_trait]
impl CodeDeploy for MemoryCodeDeploy {
    async fn group(&self, group: &DeploymentGroup) -> PortResult<Option<GroupView>> {
        Ok(guard(&self.groups)
            .iter()
            .find(|g| &g.group == group)
            .cloned())
    }

    async fn groups_deploying(&self, service: &ServiceKey) -> PortResult<Vec<GroupView>> {
        Ok(guard(&self.groups)
            .iter()
            .filter(|g| g.services.contains(service))
            .cloned()
            .collect())
    }

    async fn create_deployment(
        &self,
        group: &DeploymentGroup,
        appspec: &str,
        _description: &str,
    ) -> PortResult<String> {
        let mut deployments = guard(&self.deployments);
        if let Some(active) = deployments
            .iter()
            .find(|d| &d.group == group && crate::domain::codedeploy::in_progress(&d.status))
        {
            return Err(PortError::new(
                "CreateDeployment",
                PortErrorKind::Conflict,
                format!(
                    "DeploymentLimitExceededException: the deployment group {group} already has an active deployment {}",
                    active.id
                ),
            ));
        }
        let id = format!("d-MEM{:06}", deployments.len() + 1);
        deployments.push(MemoryDeployment {
            id: id.clone(),
            group: group.clone(),
            appspec: appspec.to_owned(),
            status: "InProgress".into(),
            stopped_with_rollback: false,
            creator: "user".into(),
            rolls_back: None,
        });
        Ok(id)
    }

    async fn deployment(&self, deployment_id: &str) -> PortResult<Option<RunningDeployment>> {
        Ok(guard(&self.deployments)
            .iter()
            .find(|d| d.id == deployment_id)
            .map(|d| RunningDeployment {
                id: d.id.clone(),
                task_definition: appspec_task_definition(&d.appspec),
                rolls_back: d.rolls_back.clone(),
                creator: Some(d.creator.clone()),
            }))
    }

    async fn deployment_in_progress(&self, group: &DeploymentGroup) -> PortResult<Option<String>> {
        Ok(guard(&self.deployments)
            .iter()
            .find(|d| &d.group == group && crate::domain::codedeploy::in_progress(&d.status))
            .map(|d| d.id.clone()))
    }

    async fn stop_deployment(&self, deployment_id: &str) -> PortResult<()> {
        let mut deployments = guard(&self.deployments);
        let Some(d) = deployments.iter_mut().find(|d| d.id == deployment_id) else {
            return Err(PortError::new(
                "StopDeployment",
                PortErrorKind::NotFound,
                format!("DeploymentDoesNotExistException: {deployment_id}"),
            ));
        };
        if !crate::domain::codedeploy::in_progress(&d.status) {
            return Err(PortError::new(
                "StopDeployment",
                PortErrorKind::Other,
                format!("DeploymentAlreadyCompletedException: {deployment_id}"),
            ));
        }
        d.status = "Stopped".into();
        d.stopped_with_rollback = true;
        Ok(())
    }
}
