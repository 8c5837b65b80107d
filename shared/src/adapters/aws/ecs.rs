//! ECS (and the Resource Groups Tagging API, to find tagged services in one paged call).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use aws_sdk_ecs::types::{ServiceField, Tag, TaskDefinition, TaskDefinitionField};
use aws_sdk_resourcegroupstagging::types::TagFilter;
use futures::{StreamExt, stream};

use super::{backoff, may_have_been_applied, port_error};

#[path = "ecs_clone.rs"]
mod clone;
#[path = "ecs_view.rs"]
mod view;

use crate::domain::fleet::{Container, ImageChange, ServiceView, Source, TaskDefinitionView};
use crate::domain::pause::PausedDeployment;
use crate::domain::service::ServiceKey;
use crate::ports::{Described, Ecs, PortError, PortErrorKind, PortResult, TaggedService};
pub use clone::clone_revision;
use clone::{family_revision, registered_for, tags_for_push};
use view::{paused_at_hooks, service_view};

/// DescribeServices takes at most ten services per call.
const DESCRIBE_BATCH: usize = 10;
const DESCRIBE_CONCURRENCY: usize = 4;
/// Attempts at registering one revision, as many as the SDK makes of other calls.
const REGISTER_ATTEMPTS: u32 = 5;
/// What ECS answers (a `ClientException`) when two revisions of one family are registered at
/// once, for instance two services of the family deployed by one push.
const CONCURRENT_REVISIONS: &str = "Too many concurrent attempts to create a new revision";
/// How many of the family's newest revisions to look through for one registered for a push.
const RECENT_REVISIONS: usize = 10;

pub struct EcsCluster {
    ecs: aws_sdk_ecs::Client,
    tagging: aws_sdk_resourcegroupstagging::Client,
    /// The revisions this process described or registered, by ARN: a revision never changes
    /// (its tags, which deckhand sets when it registers one, aside), so a warm invocation
    /// reads none twice, and a push finds the revision the one before it registered.
    revisions: Mutex<HashMap<String, TaskDefinitionView>>,
}

/// How many revisions the process keeps; past that, it starts over.
const REVISIONS_KEPT: usize = 256;

impl EcsCluster {
    pub fn new(ecs: aws_sdk_ecs::Client, tagging: aws_sdk_resourcegroupstagging::Client) -> Self {
        Self {
            ecs,
            tagging,
            revisions: Mutex::default(),
        }
    }

    fn known_revision(&self, arn: &str) -> Option<TaskDefinitionView> {
        self.revisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(arn)
            .cloned()
    }

    fn keep_revision(&self, td: &TaskDefinitionView) {
        let mut kept = self
            .revisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if kept.len() >= REVISIONS_KEPT {
            kept.clear();
        }
        kept.insert(td.arn.clone(), td.clone());
    }
}

/// The view of a task definition as ECS described or registered it, with its tags.
fn revision_view(td: TaskDefinition, tags: Vec<Tag>, arn: &str) -> TaskDefinitionView {
    TaskDefinitionView {
        arn: td.task_definition_arn().unwrap_or(arn).to_owned(),
        family: td.family().unwrap_or_default().to_owned(),
        revision: td.revision(),
        containers: td
            .container_definitions()
            .iter()
            .map(|c| Container {
                name: c.name().unwrap_or_default().to_owned(),
                image: c.image().unwrap_or_default().to_owned(),
            })
            .collect(),
        registered_for: registered_for(&tags),
        source: Source::new(Snapshot {
            task_definition: td,
            tags,
        }),
    }
}

/// What the adapter keeps of a described task definition, to clone it faithfully.
struct Snapshot {
    task_definition: TaskDefinition,
    tags: Vec<Tag>,
}

#[async_trait]
impl Ecs for EcsCluster {
    async fn find_services(&self, tag_key: &str) -> PortResult<Vec<TaggedService>> {
        let mut pages = self
            .tagging
            .get_resources()
            .resource_type_filters("ecs:service")
            // The largest page the API allows: 10 pages for a fleet of 1,000.
            .resources_per_page(100)
            .tag_filters(TagFilter::builder().key(tag_key).build())
            .into_paginator()
            .items()
            .send();
        let mut arns = Vec::new();
        while let Some(mapping) = pages.next().await {
            let mapping = mapping.map_err(|e| port_error("GetResources", e))?;
            let value = mapping
                .tags()
                .iter()
                .find(|t| t.key() == tag_key)
                .map_or("", |t| t.value())
                .to_owned();
            if let Some(arn) = mapping.resource_arn() {
                arns.push(TaggedService {
                    arn: arn.to_owned(),
                    value,
                });
            }
        }
        Ok(arns)
    }

    async fn describe_services_partly(&self, services: &[ServiceKey]) -> PortResult<Described> {
        let mut by_cluster: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for key in services {
            by_cluster
                .entry(key.cluster().to_owned())
                .or_default()
                .push(key.service().to_owned());
        }
        let batches: Vec<(String, Vec<String>)> = by_cluster
            .into_iter()
            .flat_map(|(cluster, names)| {
                names
                    .chunks(DESCRIBE_BATCH)
                    .map(|chunk| (cluster.clone(), chunk.to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let batches: Vec<(Vec<ServiceKey>, Result<Vec<ServiceView>, PortError>)> =
            stream::iter(batches)
                .map(|(cluster, names)| async move {
                    let keys: Vec<ServiceKey> = names
                        .iter()
                        .map(|name| ServiceKey::new(&cluster, name))
                        .collect();
                    let out = self
                        .ecs
                        .describe_services()
                        .cluster(cluster)
                        .set_services(Some(names))
                        .include(ServiceField::Tags)
                        .send()
                        .await
                        .map_err(|e| port_error("DescribeServices", e));
                    // Services that are gone come back as failures; deleted ones as INACTIVE.
                    let views = out.map(|out| {
                        out.services()
                            .iter()
                            .filter(|s| s.status() != Some("INACTIVE"))
                            .filter_map(service_view)
                            .collect()
                    });
                    (keys, views)
                })
                .buffer_unordered(DESCRIBE_CONCURRENCY)
                .collect()
                .await;
        let mut described = Described::default();
        for (keys, views) in batches {
            match views {
                Ok(views) => described.services.extend(views),
                Err(e) => described
                    .failed
                    .extend(keys.into_iter().map(|key| (key, e.clone()))),
            }
        }
        Ok(described)
    }

    async fn resolved_images(
        &self,
        service: &ServiceView,
    ) -> PortResult<Option<BTreeMap<String, String>>> {
        if service.service_revisions.is_empty() {
            return Ok(None);
        }
        let out = self
            .ecs
            .describe_service_revisions()
            .set_service_revision_arns(Some(service.service_revisions.clone()))
            .send()
            .await
            .map_err(|e| port_error("DescribeServiceRevisions", e))?;
        // The newest revision of what the service runs: a forced deployment resolves again.
        let revision = out
            .service_revisions()
            .iter()
            .filter(|r| r.task_definition() == Some(service.task_definition.as_str()))
            .max_by_key(|r| r.created_at().map(|t| (t.secs(), t.subsec_nanos())));
        Ok(revision.map(|r| {
            r.container_images()
                .iter()
                .filter_map(|c| {
                    Some((c.container_name()?.to_owned(), c.image_digest()?.to_owned()))
                })
                .collect()
        }))
    }

    async fn describe_task_definition(&self, arn: &str) -> PortResult<TaskDefinitionView> {
        if let Some(known) = self.known_revision(arn) {
            return Ok(known);
        }
        let out = self
            .ecs
            .describe_task_definition()
            .task_definition(arn)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .map_err(|e| port_error("DescribeTaskDefinition", e))?;
        let td = out.task_definition.ok_or_else(|| {
            PortError::new("DescribeTaskDefinition", PortErrorKind::NotFound, arn)
        })?;
        let view = revision_view(td, out.tags.unwrap_or_default(), arn);
        self.keep_revision(&view);
        Ok(view)
    }

    async fn register_revision(
        &self,
        base: &TaskDefinitionView,
        changes: &[ImageChange],
        event_id: &str,
    ) -> PortResult<String> {
        let snapshot = base.source.get::<Snapshot>().ok_or_else(|| {
            PortError::new(
                "RegisterTaskDefinition",
                PortErrorKind::Other,
                format!("{} was not described by this adapter", base.arn),
            )
        })?;
        let tags = tags_for_push(&snapshot.tags, event_id, base.revision);
        // Retried here rather than by the SDK: a retry after a lost answer would register a
        // second revision, so an attempt that may have been applied is looked for first.
        let mut attempt = 1;
        loop {
            let result = clone_revision(
                self.ecs.register_task_definition(),
                &snapshot.task_definition,
                &tags,
                changes,
            )
            .customize()
            .config_override(
                aws_sdk_ecs::config::Builder::default()
                    .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled()),
            )
            .send()
            .await;
            let err = match result {
                Ok(out) => {
                    let registered = out
                        .task_definition
                        .filter(|td| td.task_definition_arn().is_some())
                        .ok_or_else(|| {
                            PortError::new(
                                "RegisterTaskDefinition",
                                PortErrorKind::Other,
                                "no ARN in the response",
                            )
                        })?;
                    // The tags it was registered with: the response need not carry them.
                    let view = revision_view(registered, tags.clone(), "");
                    self.keep_revision(&view);
                    return Ok(view.arn);
                }
                Err(err) => err,
            };
            let unclear = may_have_been_applied(&err);
            let mut error = port_error("RegisterTaskDefinition", err);
            if error.message.contains(CONCURRENT_REVISIONS) {
                // Another registration in the family at the same moment: nothing was
                // registered, and the next attempt usually goes through.
                error.kind = PortErrorKind::Transient;
            }
            if unclear && let Some(arn) = self.registered_for(base, event_id).await? {
                tracing::info!(%arn, "the revision was registered although the answer was lost");
                return Ok(arn);
            }
            if error.kind != PortErrorKind::Transient || attempt >= REGISTER_ATTEMPTS {
                return Err(error);
            }
            attempt += 1;
            tokio::time::sleep(backoff(attempt)).await;
        }
    }

    async fn registered_for(
        &self,
        base: &TaskDefinitionView,
        event_id: &str,
    ) -> PortResult<Option<String>> {
        // The family's newest revisions; `familyPrefix` also matches longer family names.
        let out = self
            .ecs
            .list_task_definitions()
            .family_prefix(&base.family)
            .sort(aws_sdk_ecs::types::SortOrder::Desc)
            .send()
            .await
            .map_err(|e| port_error("ListTaskDefinitions", e))?;
        let mut newer: Vec<(i32, &str)> = out
            .task_definition_arns()
            .iter()
            .filter_map(|arn| {
                let (family, revision) = family_revision(arn)?;
                (family == base.family && revision > base.revision)
                    .then_some((revision, arn.as_str()))
            })
            .collect();
        newer.sort_unstable_by(|a, b| b.cmp(a));
        for (_, arn) in newer.into_iter().take(RECENT_REVISIONS) {
            let candidate = self.describe_task_definition(arn).await?;
            if candidate
                .registered_for
                .as_ref()
                .is_some_and(|r| r.event_id == event_id && r.cloned_from == base.revision)
            {
                return Ok(Some(candidate.arn));
            }
        }
        Ok(None)
    }

    async fn active_revisions(&self, family: &str) -> PortResult<Vec<String>> {
        let mut pages = self
            .ecs
            .list_task_definitions()
            .family_prefix(family)
            .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .into_paginator()
            .items()
            .send();
        let mut arns = Vec::new();
        while let Some(arn) = pages.next().await {
            let arn = arn.map_err(|e| port_error("ListTaskDefinitions", e))?;
            // `familyPrefix` also matches longer family names.
            if family_revision(&arn).is_some_and(|(f, _)| f == family) {
                arns.push(arn);
            }
        }
        Ok(arns)
    }

    async fn deregister_revision(&self, arn: &str) -> PortResult<()> {
        self.ecs
            .deregister_task_definition()
            .task_definition(arn)
            .send()
            .await
            .map_err(|e| port_error("DeregisterTaskDefinition", e))?;
        Ok(())
    }

    async fn update_service(
        &self,
        service: &ServiceKey,
        task_definition: &str,
    ) -> PortResult<Option<String>> {
        self.update(service, task_definition, None).await
    }

    async fn update_service_scaled(
        &self,
        service: &ServiceKey,
        task_definition: &str,
        count: i32,
    ) -> PortResult<Option<String>> {
        self.update(service, task_definition, Some(count)).await
    }

    async fn deployment_in_progress(&self, service: &ServiceKey) -> PortResult<Option<String>> {
        self.service_deployments_in_progress(service).await
    }

    async fn stop_service_deployment(&self, arn: &str) -> PortResult<()> {
        self.ecs
            .stop_service_deployment()
            .service_deployment_arn(arn)
            .stop_type(aws_sdk_ecs::types::StopServiceDeploymentStopType::Rollback)
            .send()
            .await
            .map_err(|e| port_error("StopServiceDeployment", e))?;
        Ok(())
    }

    async fn paused_deployment(
        &self,
        service: &ServiceKey,
    ) -> PortResult<Option<PausedDeployment>> {
        let Some(arn) = self.service_deployments_in_progress(service).await? else {
            return Ok(None);
        };
        let out = self
            .ecs
            .describe_service_deployments()
            .service_deployment_arns(&arn)
            .send()
            .await
            .map_err(|e| port_error("DescribeServiceDeployments", e))?;
        Ok(out
            .service_deployments()
            .first()
            .and_then(|deployment| paused_at_hooks(&arn, deployment)))
    }

    async fn continue_service_deployment(
        &self,
        service_deployment_arn: &str,
        hook_id: &str,
        roll_back: bool,
    ) -> PortResult<()> {
        use aws_sdk_ecs::types::DeploymentLifecycleHookAction as HookAction;
        self.ecs
            .continue_service_deployment()
            .service_deployment_arn(service_deployment_arn)
            .hook_id(hook_id)
            .action(if roll_back {
                HookAction::Rollback
            } else {
                HookAction::Continue
            })
            .send()
            .await
            .map_err(|e| port_error("ContinueServiceDeployment", e))?;
        Ok(())
    }

    async fn set_desired_count(&self, service: &ServiceKey, count: i32) -> PortResult<()> {
        self.ecs
            .update_service()
            .cluster(service.cluster())
            .service(service.service())
            .desired_count(count)
            .send()
            .await
            .map_err(|e| port_error("UpdateService", e))?;
        Ok(())
    }
}

impl EcsCluster {
    async fn service_deployments_in_progress(
        &self,
        service: &ServiceKey,
    ) -> PortResult<Option<String>> {
        use aws_sdk_ecs::types::ServiceDeploymentStatus;
        let out = self
            .ecs
            .list_service_deployments()
            .cluster(service.cluster())
            .service(service.service())
            .status(ServiceDeploymentStatus::Pending)
            .status(ServiceDeploymentStatus::InProgress)
            .send()
            .await
            .map_err(|e| port_error("ListServiceDeployments", e))?;
        // Newest first: the one ECS runs now.
        Ok(out
            .service_deployments()
            .iter()
            .max_by_key(|d| d.created_at().map(|t| (t.secs(), t.subsec_nanos())))
            .and_then(|d| d.service_deployment_arn())
            .map(str::to_owned))
    }

    /// One `UpdateService` to a task definition (and a desired count); returns the id of the
    /// ECS deployment it started, when ECS reports one.
    async fn update(
        &self,
        service: &ServiceKey,
        task_definition: &str,
        count: Option<i32>,
    ) -> PortResult<Option<String>> {
        let out = self
            .ecs
            .update_service()
            .cluster(service.cluster())
            .service(service.service())
            .task_definition(task_definition)
            .set_desired_count(count)
            .send()
            .await
            .map_err(|e| port_error("UpdateService", e))?;
        Ok(out.service().and_then(|s| {
            s.deployments()
                .iter()
                .find(|d| {
                    d.status() == Some("PRIMARY") && d.task_definition() == Some(task_definition)
                })
                .and_then(|d| d.id())
                .map(str::to_owned)
        }))
    }
}

#[cfg(test)]
#[path = "ecs_tests.rs"]
mod tests;
