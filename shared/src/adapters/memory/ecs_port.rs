//! The ECS port over the in-memory services: what deckhand reads and changes, with ECS's
//! semantics (revisions, deployments, rollbacks of a deployment in progress).

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::ecs::{EcsWorld, MemoryEcs};
use crate::domain::fleet::{ImageChange, RegisteredFor, ServiceView, TaskDefinitionView};
use crate::domain::service::ServiceKey;
use crate::domain::strategy::DeploymentController;
use crate::ports::{Described, Ecs, PortError, PortErrorKind, PortResult, TaggedService};

#[async_trait]
impl Ecs for MemoryEcs {
    async fn find_services(&self, tag_key: &str) -> PortResult<Vec<TaggedService>> {
        let world = self.enter("GetResources")?;
        Ok(world
            .services
            .values()
            .filter_map(|s| {
                Some(TaggedService {
                    arn: s.arn.clone(),
                    value: s.tags.get(tag_key)?.clone(),
                })
            })
            .collect())
    }

    async fn describe_services_partly(&self, services: &[ServiceKey]) -> PortResult<Described> {
        let mut world = self.enter("DescribeServices")?;
        world.described.extend(services.iter().cloned());
        let mut described = Described::default();
        for key in services {
            if world.unreadable.contains(key) {
                let e = PortError::new(
                    "DescribeServices",
                    PortErrorKind::Transient,
                    "injected fault",
                );
                described.failed.push((key.clone(), e));
            } else if let Some(service) = world.services.get(key) {
                described.services.push(service.clone());
            }
        }
        Ok(described)
    }

    async fn resolved_images(
        &self,
        service: &ServiceView,
    ) -> PortResult<Option<BTreeMap<String, String>>> {
        let world = self.enter("DescribeServiceRevisions")?;
        Ok(world
            .resolved
            .get(&(service.key.clone(), service.task_definition.clone()))
            .cloned())
    }

    async fn describe_task_definition(&self, arn: &str) -> PortResult<TaskDefinitionView> {
        let world = self.enter("DescribeTaskDefinition")?;
        world
            .task_definitions
            .get(arn)
            .cloned()
            .ok_or_else(|| PortError::new("DescribeTaskDefinition", PortErrorKind::NotFound, arn))
    }

    async fn register_revision(
        &self,
        base: &TaskDefinitionView,
        changes: &[ImageChange],
        event_id: &str,
    ) -> PortResult<String> {
        self.stall_point("RegisterTaskDefinition").await;
        let mut world = self.enter("RegisterTaskDefinition")?;
        let containers = base.containers_with(changes);
        let registered_for = RegisteredFor {
            event_id: event_id.to_owned(),
            cloned_from: base.revision,
        };
        Ok(world.register_for(&base.family, containers, Some(registered_for)))
    }

    async fn registered_for(
        &self,
        base: &TaskDefinitionView,
        event_id: &str,
    ) -> PortResult<Option<String>> {
        let world = self.enter("ListTaskDefinitions")?;
        Ok(world
            .task_definitions
            .values()
            .filter(|td| td.family == base.family && td.revision > base.revision)
            .find(|td| {
                td.registered_for
                    .as_ref()
                    .is_some_and(|r| r.event_id == event_id && r.cloned_from == base.revision)
            })
            .map(|td| td.arn.clone()))
    }

    async fn active_revisions(&self, family: &str) -> PortResult<Vec<String>> {
        let world = self.enter("ListTaskDefinitions")?;
        Ok(world
            .task_definitions
            .values()
            .filter(|td| td.family == family && !world.inactive.contains(&td.arn))
            .map(|td| td.arn.clone())
            .collect())
    }

    async fn deregister_revision(&self, arn: &str) -> PortResult<()> {
        let mut world = self.enter("DeregisterTaskDefinition")?;
        if !world.task_definitions.contains_key(arn) {
            return Err(PortError::new(
                "DeregisterTaskDefinition",
                PortErrorKind::NotFound,
                arn,
            ));
        }
        world.inactive.insert(arn.to_owned());
        Ok(())
    }

    async fn update_service(
        &self,
        service: &ServiceKey,
        task_definition: &str,
    ) -> PortResult<Option<String>> {
        self.stall_point("UpdateService").await;
        let mut world = self.enter("UpdateService")?;
        if !world.task_definitions.contains_key(task_definition) {
            return Err(PortError::new(
                "UpdateService",
                PortErrorKind::Other,
                "unknown task definition",
            ));
        }
        // As ECS: a service cannot be moved onto a deregistered revision.
        if world.inactive.contains(task_definition) {
            return Err(PortError::new(
                "UpdateService",
                PortErrorKind::Other,
                "the task definition is inactive",
            ));
        }
        let view = world.services.get_mut(service).ok_or_else(|| {
            PortError::new(
                "UpdateService",
                PortErrorKind::NotFound,
                service.to_string(),
            )
        })?;
        // As ECS: only a service ECS deploys takes a new task definition this way.
        if view.controller != DeploymentController::Ecs {
            return Err(PortError::new(
                "UpdateService",
                PortErrorKind::Other,
                format!(
                    "InvalidParameterException: Unable to update task definition on services with a {} deployment controller.",
                    view.controller.as_str()
                ),
            ));
        }
        let previous = std::mem::replace(&mut view.task_definition, task_definition.to_owned());
        // As ECS: every change of revision is a service deployment, in progress until it ends.
        let number = world.service_deployments.len() + world.ended_deployments + 1;
        world.service_deployments.insert(
            service.clone(),
            format!("arn:aws:ecs:eu-west-1:123456789012:service-deployment/{service}/{number}"),
        );
        world.previous_revision.insert(service.clone(), previous);
        Ok(None)
    }

    async fn deployment_in_progress(&self, service: &ServiceKey) -> PortResult<Option<String>> {
        let world = self.enter("ListServiceDeployments")?;
        Ok(world.service_deployments.get(service).cloned())
    }

    async fn stop_service_deployment(&self, arn: &str) -> PortResult<()> {
        let mut world = self.enter("StopServiceDeployment")?;
        let Some(key) = world
            .service_deployments
            .iter()
            .find(|(_, a)| a.as_str() == arn)
            .map(|(k, _)| k.clone())
        else {
            return Err(PortError::new(
                "StopServiceDeployment",
                PortErrorKind::NotFound,
                format!("ServiceDeploymentNotFoundException: {arn}"),
            ));
        };
        roll_back_service_deployment(&mut world, &key);
        Ok(())
    }

    async fn paused_deployment(
        &self,
        service: &ServiceKey,
    ) -> PortResult<Option<crate::domain::pause::PausedDeployment>> {
        let world = self.enter("DescribeServiceDeployments")?;
        Ok(world.paused.get(service).cloned())
    }

    async fn continue_service_deployment(
        &self,
        service_deployment_arn: &str,
        hook_id: &str,
        roll_back: bool,
    ) -> PortResult<()> {
        let mut world = self.enter("ContinueServiceDeployment")?;
        let Some(key) = world
            .paused
            .iter()
            .find(|(_, p)| {
                p.service_deployment_arn == service_deployment_arn
                    && p.hooks.iter().any(|h| h.hook_id == hook_id)
            })
            .map(|(k, _)| k.clone())
        else {
            return Err(PortError::new(
                "ContinueServiceDeployment",
                PortErrorKind::Conflict,
                format!("ConflictException: {hook_id} awaits no action"),
            ));
        };
        if world.answered_elsewhere.remove(hook_id) {
            if let Some(paused) = world.paused.get_mut(&key) {
                paused.hooks.retain(|h| h.hook_id != hook_id);
            }
            return Err(PortError::new(
                "ContinueServiceDeployment",
                PortErrorKind::Conflict,
                format!("ConflictException: {hook_id} awaits no action"),
            ));
        }
        if roll_back {
            world.paused.remove(&key);
            roll_back_service_deployment(&mut world, &key);
            return Ok(());
        }
        // The deployment goes on once every hook of its stage is continued.
        if let Some(paused) = world.paused.get_mut(&key) {
            paused.hooks.retain(|h| h.hook_id != hook_id);
            if paused.hooks.is_empty() {
                world.paused.remove(&key);
            }
        }
        Ok(())
    }

    async fn set_desired_count(&self, service: &ServiceKey, count: i32) -> PortResult<()> {
        let mut world = self.enter("UpdateService")?;
        let view = world.services.get_mut(service).ok_or_else(|| {
            PortError::new(
                "UpdateService",
                PortErrorKind::NotFound,
                service.to_string(),
            )
        })?;
        view.desired_count = count;
        Ok(())
    }
}

/// ECS's own rollback of the service's deployment in progress: the service goes back to the
/// revision it ran before.
fn roll_back_service_deployment(world: &mut EcsWorld, key: &ServiceKey) {
    world.service_deployments.remove(key);
    world.paused.remove(key);
    world.ended_deployments += 1;
    if let Some(previous) = world.previous_revision.get(key).cloned()
        && let Some(view) = world.services.get_mut(key)
    {
        view.task_definition = previous;
    }
}
