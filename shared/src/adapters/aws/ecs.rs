//! ECS (and the Resource Groups Tagging API, to find tagged services in one paged call).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::{
    ContainerDefinition, Service, ServiceField, Tag, TaskDefinition, TaskDefinitionField,
};
use aws_sdk_resourcegroupstagging::types::TagFilter;
use futures::{StreamExt, stream};

use super::{backoff, may_have_been_applied, port_error};
use crate::domain::fleet::{
    AwsVpc, CapacityProviderItem, Container, EarlySuccess, EcsDeployment, ImageChange,
    LoadBalancedContainer, Placement, RegisteredFor, ServiceView, Source, TAG_CLONED_FROM,
    TAG_REGISTERED_FOR, TaskDefinitionView,
};
use crate::domain::pause::{ConfiguredPause, PauseHook, PausedDeployment, later_pauses};
use crate::domain::service::ServiceKey;
use crate::domain::strategy::DeploymentController;
use crate::domain::strategy::Strategy;
use crate::ports::{Described, Ecs, PortError, PortErrorKind, PortResult, TaggedService};

/// DescribeServices takes at most ten services per call.
const DESCRIBE_BATCH: usize = 10;
const DESCRIBE_CONCURRENCY: usize = 4;
/// Attempts at registering one revision, as many as the SDK makes of other calls.
const REGISTER_ATTEMPTS: u32 = 5;
/// What ECS answers (a `ClientException`) when two revisions of one family are registered at
/// once, for instance two services of the family deployed by one push.
const CONCURRENT_REVISIONS: &str = "Too many concurrent attempts to create a new revision";
/// The most tags ECS accepts on a task definition.
const MAX_TAGS: usize = 50;
/// How many of the family's newest revisions to look through for one registered for a push.
const RECENT_REVISIONS: usize = 10;

pub struct EcsCluster {
    ecs: aws_sdk_ecs::Client,
    tagging: aws_sdk_resourcegroupstagging::Client,
}

impl EcsCluster {
    pub fn new(ecs: aws_sdk_ecs::Client, tagging: aws_sdk_resourcegroupstagging::Client) -> Self {
        Self { ecs, tagging }
    }
}

/// What the adapter keeps of a described task definition, to clone it faithfully.
struct Snapshot {
    task_definition: TaskDefinition,
    tags: Vec<Tag>,
}

/// A new revision of `td`: every field that `RegisterTaskDefinition` accepts, copied as
/// described (tags included), with only the images of `changes` replaced.
pub fn clone_revision(
    builder: RegisterTaskDefinitionFluentBuilder,
    td: &TaskDefinition,
    tags: &[Tag],
    changes: &[ImageChange],
) -> RegisterTaskDefinitionFluentBuilder {
    let containers: Option<Vec<ContainerDefinition>> =
        td.container_definitions.as_ref().map(|defs| {
            defs.iter()
                .map(|c| {
                    let change = changes
                        .iter()
                        .find(|ch| c.name.as_deref() == Some(ch.container.as_str()));
                    match change {
                        Some(change) => {
                            let mut c = c.clone();
                            c.image = Some(change.to.clone());
                            c
                        }
                        None => c.clone(),
                    }
                })
                .collect()
        });
    // Inference accelerators are retired by ECS but still round-trip on old task definitions.
    #[allow(deprecated)]
    let builder = builder.set_inference_accelerators(td.inference_accelerators.clone());
    builder
        .set_family(td.family.clone())
        .set_task_role_arn(td.task_role_arn.clone())
        .set_execution_role_arn(td.execution_role_arn.clone())
        .set_network_mode(td.network_mode.clone())
        .set_container_definitions(containers)
        .set_volumes(td.volumes.clone())
        .set_placement_constraints(td.placement_constraints.clone())
        .set_requires_compatibilities(td.requires_compatibilities.clone())
        .set_cpu(td.cpu.clone())
        .set_memory(td.memory.clone())
        .set_tags((!tags.is_empty()).then(|| tags.to_vec()))
        .set_pid_mode(td.pid_mode.clone())
        .set_ipc_mode(td.ipc_mode.clone())
        .set_proxy_configuration(td.proxy_configuration.clone())
        .set_ephemeral_storage(td.ephemeral_storage.clone())
        .set_runtime_platform(td.runtime_platform.clone())
        .set_enable_fault_injection(td.enable_fault_injection)
}

/// The base's tags with deckhand's marks for this push in place of the ones the base
/// carries. A base with no room left for them keeps its own tags only: that revision cannot
/// be found again after an interrupted attempt, but it deploys.
fn tags_for_push(base: &[Tag], event_id: &str, cloned_from: i32) -> Vec<Tag> {
    let mut tags: Vec<Tag> = base
        .iter()
        .filter(|t| !matches!(t.key(), Some(TAG_REGISTERED_FOR | TAG_CLONED_FROM)))
        .cloned()
        .collect();
    if tags.len() + 2 <= MAX_TAGS {
        tags.push(
            Tag::builder()
                .key(TAG_REGISTERED_FOR)
                .value(event_id)
                .build(),
        );
        tags.push(
            Tag::builder()
                .key(TAG_CLONED_FROM)
                .value(cloned_from.to_string())
                .build(),
        );
    } else {
        tracing::warn!(
            tags = tags.len(),
            "the task definition has no room for deckhand's tags; a retry may register the revision again"
        );
    }
    tags
}

fn registered_for(tags: &[Tag]) -> Option<RegisteredFor> {
    let value = |key: &str| {
        tags.iter()
            .find(|t| t.key() == Some(key))
            .and_then(Tag::value)
    };
    Some(RegisteredFor {
        event_id: value(TAG_REGISTERED_FOR)?.to_owned(),
        cloned_from: value(TAG_CLONED_FROM)?.parse().ok()?,
    })
}

/// `family` and revision of a task definition ARN (`...:task-definition/FAMILY:REVISION`).
fn family_revision(arn: &str) -> Option<(&str, i32)> {
    let (family, revision) = arn.rsplit('/').next()?.rsplit_once(':')?;
    Some((family, revision.parse().ok()?))
}

fn service_view(service: &Service) -> Option<ServiceView> {
    let key = ServiceKey::from_arn(service.service_arn()?)?;
    Some(ServiceView {
        key,
        arn: service.service_arn()?.to_owned(),
        task_definition: service.task_definition()?.to_owned(),
        desired_count: service.desired_count(),
        running_count: service.running_count(),
        tags: service
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect(),
        deployments: service
            .deployments()
            .iter()
            .filter_map(|d| {
                Some(EcsDeployment {
                    id: d.id()?.to_owned(),
                    task_definition: d.task_definition()?.to_owned(),
                    status: d.status().unwrap_or_default().to_owned(),
                    rollout_state: d.rollout_state().map(|r| r.as_str().to_owned()),
                })
            })
            .collect(),
        controller: service
            .deployment_controller()
            .map_or(DeploymentController::Ecs, |c| {
                DeploymentController::parse(c.r#type().as_str())
            }),
        target_groups: service
            .load_balancers()
            .iter()
            .filter_map(|lb| lb.target_group_arn().map(str::to_owned))
            .collect(),
        strategy: service
            .deployment_configuration()
            .and_then(|c| c.strategy())
            .map_or_else(Default::default, |s| Strategy::parse(s.as_str())),
        load_balanced: service.load_balancers().iter().find_map(|lb| {
            Some(LoadBalancedContainer {
                name: lb.container_name()?.to_owned(),
                port: lb.container_port()?,
            })
        }),
        task_sets: service
            .task_sets()
            .iter()
            .filter_map(|t| t.task_definition().map(str::to_owned))
            .collect(),
        placement: placement_of(service),
        early_success: service
            .deployment_configuration()
            .and_then(|c| c.early_success_criteria())
            .filter(|e| e.enable())
            .map(|e| EarlySuccess {
                healthy_percent: e.healthy_percent(),
                deferred_cleanup: e.source_service_revision_cleanup()
                    == Some(&aws_sdk_ecs::types::ServiceRevisionCleanup::Deferred),
            }),
        service_revisions: service
            .current_service_revisions()
            .iter()
            .filter_map(|r| r.arn().map(str::to_owned))
            .collect(),
    })
}

/// Where the service's tasks run: its primary task set's capacity provider strategy, platform
/// version and network when it has task sets (`CODE_DEPLOY`, `EXTERNAL`), else the service's.
fn placement_of(service: &Service) -> Placement {
    use aws_sdk_ecs::types::{CapacityProviderStrategyItem, NetworkConfiguration};
    let read = |strategy: &[CapacityProviderStrategyItem],
                platform: Option<&str>,
                network: Option<&NetworkConfiguration>| Placement {
        capacity_provider_strategy: strategy
            .iter()
            .map(|i| CapacityProviderItem {
                capacity_provider: i.capacity_provider().to_owned(),
                weight: i.weight(),
                base: i.base(),
            })
            .collect(),
        platform_version: platform.map(str::to_owned),
        network: network
            .and_then(|n| n.awsvpc_configuration())
            .map(|a| AwsVpc {
                subnets: a.subnets().to_vec(),
                security_groups: a.security_groups().to_vec(),
                assign_public_ip: a.assign_public_ip().map(|p| p.as_str().to_owned()),
            }),
    };
    match service
        .task_sets()
        .iter()
        .find(|t| t.status() == Some("PRIMARY"))
    {
        Some(primary) => read(
            primary.capacity_provider_strategy(),
            primary.platform_version(),
            primary.network_configuration(),
        ),
        None => read(
            service.capacity_provider_strategy(),
            service.platform_version(),
            service.network_configuration(),
        ),
    }
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
        Ok(TaskDefinitionView {
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
            registered_for: out.tags.as_deref().and_then(registered_for),
            source: Source::new(Snapshot {
                task_definition: td,
                tags: out.tags.unwrap_or_default(),
            }),
        })
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
                    return out
                        .task_definition()
                        .and_then(|td| td.task_definition_arn())
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            PortError::new(
                                "RegisterTaskDefinition",
                                PortErrorKind::Other,
                                "no ARN in the response",
                            )
                        });
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

/// Every `PAUSE` hook of the deployment that awaits action, and the pauses its configuration
/// still holds at later stages; None when no hook waits.
fn paused_at_hooks(
    arn: &str,
    deployment: &aws_sdk_ecs::types::ServiceDeployment,
) -> Option<PausedDeployment> {
    use aws_sdk_ecs::types::{
        DeploymentLifecycleHookStatus as Status, DeploymentLifecycleHookTargetType as Target,
        DeploymentStrategy,
    };
    let hooks: Vec<PauseHook> = deployment
        .lifecycle_hook_details()
        .iter()
        .filter(|h| {
            h.target_type() == Some(&Target::Pause) && h.status() == Some(&Status::AwaitingAction)
        })
        .filter_map(|h| {
            Some(PauseHook {
                hook_id: h.hook_id()?.to_owned(),
                expires_at: h
                    .expires_at()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                timeout_action: h.timeout_action().map(|a| a.as_str().to_owned()),
            })
        })
        .collect();
    if hooks.is_empty() {
        return None;
    }
    let configuration = deployment.deployment_configuration();
    let configured: Vec<ConfiguredPause> = configuration
        .map(|c| c.lifecycle_hooks())
        .unwrap_or_default()
        .iter()
        .filter(|h| h.target_type() == Some(&Target::Pause))
        .map(|h| ConfiguredPause {
            stages: h
                .lifecycle_stages()
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
        })
        .collect();
    let rolling = configuration
        .and_then(|c| c.strategy())
        .is_none_or(|s| *s == DeploymentStrategy::Rolling);
    let stage = deployment.lifecycle_stage().map(|s| s.as_str().to_owned());
    Some(PausedDeployment {
        service_deployment_arn: arn.to_owned(),
        later_pauses: later_pauses(stage.as_deref(), &configured, rolling),
        hooks,
        stage,
    })
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
mod tests {
    use aws_sdk_ecs::types::{
        Compatibility, ContainerCondition, ContainerDependency, CpuArchitecture,
        EfsVolumeConfiguration, EphemeralStorage, HealthCheck, KeyValuePair, LogConfiguration,
        LogDriver, NetworkMode, OsFamily, PortMapping, ProxyConfiguration, ProxyConfigurationType,
        RuntimePlatform, Secret, TaskDefinitionPlacementConstraint,
        TaskDefinitionPlacementConstraintType, Volume,
    };

    use super::*;

    const APP: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:main-41";
    const SIDECAR: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/envoy:v1.30";
    const PINNED: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web@sha256:97981bd7144a472103576073091e95ce92d542e16987942124c4ef9904aa33f3";

    fn maximal() -> TaskDefinition {
        let app = ContainerDefinition::builder()
            .name("web")
            .image(APP)
            .essential(true)
            .cpu(256)
            .memory_reservation(512)
            .port_mappings(PortMapping::builder().container_port(8080).build())
            .environment(
                KeyValuePair::builder()
                    .name("DATABASE_URL")
                    .value("postgres://user:hunter2@db/app")
                    .build(),
            )
            .secrets(
                Secret::builder()
                    .name("API_KEY")
                    .value_from("arn:aws:secretsmanager:eu-west-1:123456789012:secret:api")
                    .build()
                    .unwrap(),
            )
            .log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .options("awslogs-group", "/ecs/web")
                    .build()
                    .unwrap(),
            )
            .health_check(
                HealthCheck::builder()
                    .command("CMD-SHELL")
                    .command("curl -f localhost:8080/health")
                    .interval(10)
                    .build()
                    .unwrap(),
            )
            .depends_on(
                ContainerDependency::builder()
                    .container_name("envoy")
                    .condition(ContainerCondition::Healthy)
                    .build()
                    .unwrap(),
            )
            .build();
        let sidecar = ContainerDefinition::builder()
            .name("envoy")
            .image(SIDECAR)
            .essential(true)
            .build();
        TaskDefinition::builder()
            .task_definition_arn("arn:aws:ecs:eu-west-1:123456789012:task-definition/web:41")
            .family("web")
            .revision(41)
            .task_role_arn("arn:aws:iam::123456789012:role/web-task")
            .execution_role_arn("arn:aws:iam::123456789012:role/web-exec")
            .network_mode(NetworkMode::Awsvpc)
            .container_definitions(app)
            .container_definitions(sidecar)
            .volumes(
                Volume::builder()
                    .name("data")
                    .efs_volume_configuration(
                        EfsVolumeConfiguration::builder()
                            .file_system_id("fs-1234")
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .placement_constraints(
                TaskDefinitionPlacementConstraint::builder()
                    .r#type(TaskDefinitionPlacementConstraintType::MemberOf)
                    .expression("attribute:ecs.availability-zone in [eu-west-1a]")
                    .build(),
            )
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("512")
            .memory("1024")
            .pid_mode(aws_sdk_ecs::types::PidMode::Task)
            .ipc_mode(aws_sdk_ecs::types::IpcMode::None)
            .proxy_configuration(
                ProxyConfiguration::builder()
                    .r#type(ProxyConfigurationType::Appmesh)
                    .container_name("envoy")
                    .properties(
                        KeyValuePair::builder()
                            .name("AppPorts")
                            .value("8080")
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .ephemeral_storage(EphemeralStorage::builder().size_in_gib(50).build())
            .runtime_platform(
                RuntimePlatform::builder()
                    .cpu_architecture(CpuArchitecture::Arm64)
                    .operating_system_family(OsFamily::Linux)
                    .build(),
            )
            .enable_fault_injection(true)
            .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .build()
    }

    fn client() -> aws_sdk_ecs::Client {
        let config = aws_sdk_ecs::Config::builder()
            .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
            .region(aws_sdk_ecs::config::Region::new("eu-west-1"))
            .build();
        aws_sdk_ecs::Client::from_conf(config)
    }

    #[test]
    fn a_clone_changes_only_the_chosen_image() {
        let td = maximal();
        let tags = vec![Tag::builder().key("team").value("payments").build()];
        let changes = vec![ImageChange {
            container: "web".into(),
            from: APP.into(),
            to: PINNED.into(),
        }];
        let builder = clone_revision(client().register_task_definition(), &td, &tags, &changes);
        let input = builder.as_input();

        assert_eq!(input.get_family(), &td.family);
        assert_eq!(input.get_task_role_arn(), &td.task_role_arn);
        assert_eq!(input.get_execution_role_arn(), &td.execution_role_arn);
        assert_eq!(input.get_network_mode(), &td.network_mode);
        assert_eq!(input.get_volumes(), &td.volumes);
        assert_eq!(input.get_placement_constraints(), &td.placement_constraints);
        assert_eq!(
            input.get_requires_compatibilities(),
            &td.requires_compatibilities
        );
        assert_eq!(input.get_cpu(), &td.cpu);
        assert_eq!(input.get_memory(), &td.memory);
        assert_eq!(input.get_pid_mode(), &td.pid_mode);
        assert_eq!(input.get_ipc_mode(), &td.ipc_mode);
        assert_eq!(input.get_proxy_configuration(), &td.proxy_configuration);
        assert_eq!(input.get_ephemeral_storage(), &td.ephemeral_storage);
        assert_eq!(input.get_runtime_platform(), &td.runtime_platform);
        assert_eq!(
            input.get_enable_fault_injection(),
            &td.enable_fault_injection
        );
        assert_eq!(input.get_tags(), &Some(tags));

        let containers = input.get_container_definitions().as_ref().unwrap();
        let original = td.container_definitions.as_ref().unwrap();
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[0].image(), Some(PINNED));
        let mut expected_app = original[0].clone();
        expected_app.image = Some(PINNED.into());
        assert_eq!(
            containers[0], expected_app,
            "every other field of the changed container survives"
        );
        assert_eq!(containers[1], original[1], "other containers are untouched");
    }

    #[test]
    fn absent_fields_stay_absent() {
        let td = TaskDefinition::builder()
            .family("bare")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("web")
                    .image(APP)
                    .build(),
            )
            .build();
        let builder = clone_revision(client().register_task_definition(), &td, &[], &[]);
        let input = builder.as_input();
        assert_eq!(input.get_volumes(), &None);
        assert_eq!(input.get_tags(), &None);
        assert_eq!(input.get_cpu(), &None);
        assert_eq!(
            input.get_container_definitions().as_ref().unwrap()[0].image(),
            Some(APP)
        );
    }
}
