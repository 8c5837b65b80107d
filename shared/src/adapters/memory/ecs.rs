//! ECS in memory: services, task definitions and their revisions, service deployments and
//! what a test sets up of them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use super::guard;
use crate::domain::fleet::{Container, RegisteredFor, ServiceView, Source, TaskDefinitionView};
use crate::domain::service::ServiceKey;
use crate::domain::strategy::DeploymentController;
use crate::ports::{PortError, PortErrorKind, PortResult};

const TASK_DEFINITION_ARN_PREFIX: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/";

/// ECS in memory: services and task definition revisions per family.
#[derive(Default)]
pub struct MemoryEcs {
    pub(super) inner: Mutex<EcsWorld>,
}

#[derive(Default)]
pub(super) struct EcsWorld {
    pub(super) services: BTreeMap<ServiceKey, ServiceView>,
    pub(super) task_definitions: BTreeMap<String, TaskDefinitionView>,
    /// Deregistered revisions: still described, never moved onto again.
    pub(super) inactive: BTreeSet<String>,
    pub(super) calls: BTreeMap<&'static str, usize>,
    /// Every service `DescribeServices` was asked about, as often as it was.
    pub(super) described: Vec<ServiceKey>,
    /// Services whose batch of `DescribeServices` fails.
    pub(super) unreadable: BTreeSet<ServiceKey>,
    pub(super) fail: BTreeSet<&'static str>,
    pub(super) stall: BTreeSet<&'static str>,
    /// The service deployment in progress per service, and the revision it replaced.
    pub(super) service_deployments: BTreeMap<ServiceKey, String>,
    pub(super) previous_revision: BTreeMap<ServiceKey, String>,
    pub(super) ended_deployments: usize,
    /// Service deployments that wait at a pause hook, by service.
    pub(super) paused: BTreeMap<ServiceKey, crate::domain::pause::PausedDeployment>,
    /// Pause hooks someone else answers just before deckhand does.
    pub(super) answered_elsewhere: BTreeSet<String>,
    /// What ECS resolved the images of a service's revision to (its service revision).
    pub(super) resolved: BTreeMap<(ServiceKey, String), BTreeMap<String, String>>,
}

impl MemoryEcs {
    pub fn new() -> Self {
        Self::default()
    }

    /// ECS deployed `task_definition` on the service with these digests (container to digest):
    /// its service revision says so.
    pub fn resolve(&self, key: &ServiceKey, task_definition: &str, digests: &[(&str, &str)]) {
        guard(&self.inner).resolved.insert(
            (key.clone(), task_definition.to_owned()),
            digests
                .iter()
                .map(|(c, d)| ((*c).to_owned(), (*d).to_owned()))
                .collect(),
        );
    }

    /// Registers revision 1.. of a family with these containers and returns its ARN.
    pub fn add_task_definition(&self, family: &str, containers: &[(&str, &str)]) -> String {
        let mut world = guard(&self.inner);
        let containers = containers
            .iter()
            .map(|(name, image)| Container {
                name: (*name).to_owned(),
                image: (*image).to_owned(),
            })
            .collect();
        world.register(family, containers)
    }

    pub fn add_service(&self, key: &ServiceKey, task_definition: &str, tags: &[(&str, &str)]) {
        let view = ServiceView {
            key: key.clone(),
            arn: format!("arn:aws:ecs:eu-west-1:123456789012:service/{key}"),
            task_definition: task_definition.to_owned(),
            desired_count: 2,
            running_count: 2,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            deployments: Vec::new(),
            controller: Default::default(),
            target_groups: Vec::new(),
            strategy: Default::default(),
            load_balanced: None,
            task_sets: Vec::new(),
            placement: Default::default(),
            early_success: None,
            service_revisions: Vec::new(),
        };
        guard(&self.inner).services.insert(key.clone(), view);
    }

    /// Puts the service behind these load balancer target groups.
    pub fn set_target_groups(&self, key: &ServiceKey, target_groups: &[&str]) {
        if let Some(view) = guard(&self.inner).services.get_mut(key) {
            view.target_groups = target_groups.iter().map(|t| (*t).to_owned()).collect();
        }
    }

    /// Hands the service's deployments to another controller (`deploymentController.type`).
    /// Gives the service task sets running these task definitions, as CodeDeploy does.
    pub fn set_task_sets(&self, key: &ServiceKey, task_definitions: &[&str]) {
        if let Some(view) = guard(&self.inner).services.get_mut(key) {
            view.task_sets = task_definitions.iter().map(|t| (*t).to_owned()).collect();
        }
    }

    /// Makes the task set of this task definition the primary one, as CodeDeploy does when
    /// its deployment succeeds.
    pub fn set_primary_task_set(&self, key: &ServiceKey, task_definition: &str) {
        if let Some(view) = guard(&self.inner).services.get_mut(key) {
            view.task_definition = task_definition.to_owned();
            view.task_sets = vec![task_definition.to_owned()];
        }
    }

    /// Puts the service's container `name` behind a load balancer on `port`.
    pub fn set_load_balanced(&self, key: &ServiceKey, name: &str, port: i32) {
        if let Some(view) = guard(&self.inner).services.get_mut(key) {
            view.load_balanced = Some(crate::domain::fleet::LoadBalancedContainer {
                name: name.to_owned(),
                port,
            });
        }
    }

    pub fn set_controller(&self, key: &ServiceKey, controller: DeploymentController) {
        if let Some(view) = guard(&self.inner).services.get_mut(key) {
            view.controller = controller;
        }
    }

    /// ECS ends the service's deployment in progress (its bake time passed).
    pub fn end_service_deployment(&self, key: &ServiceKey) {
        let mut world = guard(&self.inner);
        if world.service_deployments.remove(key).is_some() {
            world.ended_deployments += 1;
        }
    }

    /// The service's deployment in progress reaches a pause hook and waits.
    pub fn pause_service_deployment(&self, key: &ServiceKey) {
        self.pause_service_deployment_at_hooks(key, 1, 0);
    }

    /// The service's deployment in progress reaches `hooks` pause hooks at one stage and waits;
    /// its configuration has `later_pauses` more at later stages.
    pub fn pause_service_deployment_at_hooks(
        &self,
        key: &ServiceKey,
        hooks: usize,
        later_pauses: usize,
    ) {
        use crate::domain::pause::{PauseHook, PausedDeployment};
        let mut world = guard(&self.inner);
        if let Some(arn) = world.service_deployments.get(key).cloned() {
            world.paused.insert(
                key.clone(),
                PausedDeployment {
                    service_deployment_arn: arn,
                    hooks: (0..hooks)
                        .map(|i| PauseHook {
                            hook_id: if i == 0 {
                                format!("ecs-pause-{key}")
                            } else {
                                format!("ecs-pause-{key}-{i}")
                            },
                            expires_at: None,
                            timeout_action: Some("ROLLBACK".into()),
                        })
                        .collect(),
                    stage: Some("POST_TEST_TRAFFIC_SHIFT".into()),
                    later_pauses,
                },
            );
        }
    }

    /// Someone answers the pause hook (the console, a pipeline) just before deckhand's own
    /// `ContinueServiceDeployment` on it, which ECS then refuses with `ConflictException`.
    pub fn answer_hook_elsewhere(&self, hook_id: &str) {
        guard(&self.inner)
            .answered_elsewhere
            .insert(hook_id.to_owned());
    }

    /// How ECS deploys the service (`deploymentConfiguration.strategy`).
    pub fn set_strategy(&self, key: &ServiceKey, strategy: crate::domain::strategy::Strategy) {
        if let Some(view) = guard(&self.inner).services.get_mut(key) {
            view.strategy = strategy;
        }
    }

    /// ECS's early success criteria for the service's rolling deployments.
    pub fn set_early_success(&self, key: &ServiceKey, healthy_percent: i32, deferred: bool) {
        if let Some(view) = guard(&self.inner).services.get_mut(key) {
            view.early_success = Some(crate::domain::fleet::EarlySuccess {
                healthy_percent: Some(healthy_percent),
                deferred_cleanup: deferred,
            });
        }
    }

    /// ECS's rollout of what the service runs has settled: one PRIMARY deployment, COMPLETED,
    /// every desired task running.
    pub fn settle_rollout(&self, key: &ServiceKey) {
        if let Some(view) = guard(&self.inner).services.get_mut(key) {
            view.deployments = vec![crate::domain::fleet::EcsDeployment {
                id: "ecs-svc/settled".into(),
                task_definition: view.task_definition.clone(),
                status: "PRIMARY".into(),
                rollout_state: Some("COMPLETED".into()),
            }];
            view.running_count = view.desired_count;
        }
    }

    /// How many tasks ECS runs for the service.
    pub fn set_running(&self, key: &ServiceKey, count: i32) {
        if let Some(view) = guard(&self.inner).services.get_mut(key) {
            view.running_count = count;
        }
    }

    /// Changes a service's desired count behind deckhand's back, as a person would.
    pub fn scale_by_hand(&self, key: &ServiceKey, count: i32) {
        if let Some(view) = guard(&self.inner).services.get_mut(key) {
            view.desired_count = count;
        }
    }

    pub fn service(&self, key: &ServiceKey) -> Option<ServiceView> {
        guard(&self.inner).services.get(key).cloned()
    }

    pub fn task_definition(&self, arn: &str) -> Option<TaskDefinitionView> {
        guard(&self.inner).task_definitions.get(arn).cloned()
    }

    /// The ARN the in-memory world gives revision `revision` of `family`.
    pub fn revision_arn(&self, family: &str, revision: i32) -> String {
        format!("{TASK_DEFINITION_ARN_PREFIX}{family}:{revision}")
    }

    /// The revision numbers of a family that are still ACTIVE, in order.
    pub fn active(&self, family: &str) -> Vec<i32> {
        let world = guard(&self.inner);
        let mut numbers: Vec<i32> = world
            .task_definitions
            .values()
            .filter(|td| td.family == family && !world.inactive.contains(&td.arn))
            .map(|td| td.revision)
            .collect();
        numbers.sort_unstable();
        numbers
    }

    pub fn revisions(&self) -> usize {
        guard(&self.inner).task_definitions.len()
    }

    pub fn calls(&self, operation: &str) -> usize {
        guard(&self.inner)
            .calls
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Makes the batch of `DescribeServices` that holds this service fail, as a throttled
    /// batch does past the SDK's retries (the memory adapter's batches are of one service).
    pub fn fail_describing(&self, service: &ServiceKey) {
        guard(&self.inner).unreadable.insert(service.clone());
    }

    pub fn heal_describing(&self, service: &ServiceKey) {
        guard(&self.inner).unreadable.remove(service);
    }

    /// The services `DescribeServices` was asked about so far.
    pub fn described(&self) -> Vec<ServiceKey> {
        guard(&self.inner).described.clone()
    }

    /// Makes every later call of `operation` fail as a server fault would.
    pub fn fail(&self, operation: &'static str) {
        guard(&self.inner).fail.insert(operation);
    }

    /// Ends an injected fault or stall.
    pub fn heal(&self, operation: &'static str) {
        let mut world = guard(&self.inner);
        world.fail.remove(operation);
        world.stall.remove(operation);
    }

    /// Makes every later call of `operation` hang, as a call does when the process running it
    /// dies: the caller never hears back.
    pub fn stall(&self, operation: &'static str) {
        guard(&self.inner).stall.insert(operation);
    }

    pub(super) async fn stall_point(&self, operation: &'static str) {
        if guard(&self.inner).stall.contains(operation) {
            std::future::pending::<()>().await;
        }
    }

    pub(super) fn enter(&self, operation: &'static str) -> PortResult<MutexGuard<'_, EcsWorld>> {
        let mut world = guard(&self.inner);
        *world.calls.entry(operation).or_default() += 1;
        if world.fail.contains(operation) {
            return Err(PortError::new(
                operation,
                PortErrorKind::Transient,
                "injected fault",
            ));
        }
        Ok(world)
    }
}

impl EcsWorld {
    pub(super) fn register(&mut self, family: &str, containers: Vec<Container>) -> String {
        self.register_for(family, containers, None)
    }

    pub(super) fn register_for(
        &mut self,
        family: &str,
        containers: Vec<Container>,
        registered_for: Option<RegisteredFor>,
    ) -> String {
        let revision = self
            .task_definitions
            .values()
            .filter(|td| td.family == family)
            .count() as i32
            + 1;
        let arn = format!("{TASK_DEFINITION_ARN_PREFIX}{family}:{revision}");
        self.task_definitions.insert(
            arn.clone(),
            TaskDefinitionView {
                arn: arn.clone(),
                family: family.to_owned(),
                revision,
                containers,
                registered_for,
                source: Source::default(),
            },
        );
        arn
    }
}
