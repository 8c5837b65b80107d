//! In-memory implementations of every port, with the same semantics as the AWS ones (locks,
//! conditional commits, revisions), for fast tests of the use cases.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::artifact::{Manifest, read_manifest};
use crate::domain::fleet::{
    Container, DeploymentController, ImageChange, RegisteredFor, ServiceView, Source,
    TaskDefinitionView,
};
use crate::domain::image::{Digest, Repository};
use crate::domain::pace::{Rate, Reserved, reserve};
use crate::domain::pair::Forward;
use crate::domain::scan::ScanResult;
use crate::domain::service::ServiceKey;
use crate::domain::settings::Tags;
use crate::domain::state::{Capacity, Quarantine, ServiceState};
use crate::domain::trust::{ImageStatus, RegistryImage};
use crate::history::{HistoryRecord, ProcessedMark};
use crate::metrics::{Measurements, Metric};
use crate::notification::Notification;
use crate::ports::{
    Alarms, Autoscaling, Clock, Described, Ecr, Ecs, ImageIndex, IndexUpdate, IndexedService,
    KnownContainers, LockAttempt, Locked, Metrics, Notifier, Pace, PortError, PortErrorKind,
    PortResult, StateStore, TaggedService, Traffic,
};

pub use super::memory_codedeploy::{MemoryCodeDeploy, MemoryDeployment};

pub(super) fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A clock that stands still until told to move.
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *guard(&self.0) = at;
    }

    pub fn advance(&self, by: TimeDelta) {
        *guard(&self.0) += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *guard(&self.0)
    }
}

const TASK_DEFINITION_ARN_PREFIX: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/";

/// ECS in memory: services and task definition revisions per family.
#[derive(Default)]
pub struct MemoryEcs {
    inner: Mutex<EcsWorld>,
}

#[derive(Default)]
struct EcsWorld {
    services: BTreeMap<ServiceKey, ServiceView>,
    task_definitions: BTreeMap<String, TaskDefinitionView>,
    /// Deregistered revisions: still described, never moved onto again.
    inactive: BTreeSet<String>,
    calls: BTreeMap<&'static str, usize>,
    /// Every service `DescribeServices` was asked about, as often as it was.
    described: Vec<ServiceKey>,
    /// Services whose batch of `DescribeServices` fails.
    unreadable: BTreeSet<ServiceKey>,
    fail: BTreeSet<&'static str>,
    stall: BTreeSet<&'static str>,
    /// The service deployment in progress per service, and the revision it replaced.
    service_deployments: BTreeMap<ServiceKey, String>,
    previous_revision: BTreeMap<ServiceKey, String>,
    ended_deployments: usize,
    /// Service deployments that wait at a pause hook, by service.
    paused: BTreeMap<ServiceKey, crate::domain::pause::PausedDeployment>,
    /// Pause hooks someone else answers just before deckhand does.
    answered_elsewhere: BTreeSet<String>,
    /// What ECS resolved the images of a service's revision to (its service revision).
    resolved: BTreeMap<(ServiceKey, String), BTreeMap<String, String>>,
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

    async fn stall_point(&self, operation: &'static str) {
        if guard(&self.inner).stall.contains(operation) {
            std::future::pending::<()>().await;
        }
    }

    fn enter(&self, operation: &'static str) -> PortResult<MutexGuard<'_, EcsWorld>> {
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
    fn register(&mut self, family: &str, containers: Vec<Container>) -> String {
        self.register_for(family, containers, None)
    }

    fn register_for(
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

/// CloudWatch alarms in memory: tags per alarm ARN, actions per alarm name (none unless set).
#[derive(Default)]
pub struct MemoryAlarms {
    tags: Mutex<HashMap<String, Tags>>,
    refuse: Mutex<Option<PortErrorKind>>,
    actions: Mutex<HashMap<String, Vec<String>>>,
    refuse_describing: Mutex<Option<PortErrorKind>>,
    described: Mutex<Vec<String>>,
    defined: Mutex<Vec<crate::domain::rollback::Alarm>>,
}

impl MemoryAlarms {
    /// Makes every later read of tags fail: `Other` as a denied call or an alarm of another
    /// account does, `Transient` as throttling does.
    pub fn refuse(&self, kind: Option<PortErrorKind>) {
        *guard(&self.refuse) = kind;
    }

    /// Makes every later `DescribeAlarms` fail.
    pub fn refuse_describing(&self, kind: Option<PortErrorKind>) {
        *guard(&self.refuse_describing) = kind;
    }

    /// What the alarm named `name` does in ALARM.
    pub fn act(&self, name: &str, actions: &[&str]) {
        guard(&self.actions).insert(
            name.to_owned(),
            actions.iter().map(|a| (*a).to_owned()).collect(),
        );
    }

    /// An alarm of the account, as `all_alarms` lists it.
    pub fn define(&self, alarm: crate::domain::rollback::Alarm) {
        guard(&self.defined).push(alarm);
    }

    /// The alarms whose actions were read, in order.
    pub fn described(&self) -> Vec<String> {
        guard(&self.described).clone()
    }

    pub fn tag(&self, arn: &str, tags: &[(&str, &str)]) {
        guard(&self.tags).insert(
            arn.to_owned(),
            tags.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
    }
}

#[async_trait]
impl Alarms for MemoryAlarms {
    async fn alarm_tags(&self, arn: &str) -> PortResult<Tags> {
        if let Some(kind) = *guard(&self.refuse) {
            return Err(PortError::new(
                "ListTagsForResource",
                kind,
                "AccessDeniedException: not authorized to perform cloudwatch:ListTagsForResource",
            ));
        }
        guard(&self.tags)
            .get(arn)
            .cloned()
            .ok_or_else(|| PortError::new("ListTagsForResource", PortErrorKind::NotFound, arn))
    }

    async fn alarm_actions(&self, name: &str) -> PortResult<Option<Vec<String>>> {
        if let Some(kind) = *guard(&self.refuse_describing) {
            return Err(PortError::new(
                "DescribeAlarms",
                kind,
                "AccessDeniedException: not authorized to perform cloudwatch:DescribeAlarms",
            ));
        }
        guard(&self.described).push(name.to_owned());
        Ok(Some(
            guard(&self.actions).get(name).cloned().unwrap_or_default(),
        ))
    }

    async fn all_alarms(&self) -> PortResult<Vec<crate::domain::rollback::Alarm>> {
        if let Some(kind) = *guard(&self.refuse_describing) {
            return Err(PortError::new(
                "DescribeAlarms",
                kind,
                "AccessDeniedException: not authorized to perform cloudwatch:DescribeAlarms",
            ));
        }
        Ok(guard(&self.defined).clone())
    }
}

/// Target group ARNs and their weights.
pub type Weights = Vec<(String, i32)>;

/// Listeners and rules in memory: the forward action's weights per ARN, and every change made.
#[derive(Default)]
pub struct MemoryTraffic {
    forwards: Mutex<HashMap<String, Weights>>,
    changes: Mutex<Vec<(String, Weights)>>,
    failing: Mutex<bool>,
    /// Listeners and rules without the tag that designates them; every other one has it.
    undesignated: Mutex<BTreeSet<String>>,
}

impl MemoryTraffic {
    /// A listener or rule forwarding to these target groups with these weights.
    pub fn forward_to(&self, arn: &str, weights: &[(&str, i32)]) {
        guard(&self.forwards).insert(
            arn.to_owned(),
            weights.iter().map(|(t, w)| ((*t).to_owned(), *w)).collect(),
        );
    }

    /// The weights the forward action has now.
    pub fn weights(&self, arn: &str) -> Weights {
        guard(&self.forwards).get(arn).cloned().unwrap_or_default()
    }

    /// Every `set_weights`, in order.
    pub fn changes(&self) -> Vec<(String, Weights)> {
        guard(&self.changes).clone()
    }

    /// Makes every later change fail (throttled), or heals it.
    pub fn fail(&self, failing: bool) {
        *guard(&self.failing) = failing;
    }

    /// Takes the designation (`deckhand:traffic` = `managed`) off a listener or rule.
    pub fn undesignate(&self, arn: &str) {
        guard(&self.undesignated).insert(arn.to_owned());
    }
}

#[async_trait]
impl Traffic for MemoryTraffic {
    async fn designated(&self, arn: &str) -> PortResult<bool> {
        Ok(!guard(&self.undesignated).contains(arn))
    }

    async fn forward(&self, arn: &str) -> PortResult<Forward> {
        let weights = guard(&self.forwards)
            .get(arn)
            .cloned()
            .ok_or_else(|| PortError::new("DescribeListeners", PortErrorKind::NotFound, arn))?;
        Ok(Forward {
            arn: arn.to_owned(),
            weights,
            source: Source::default(),
        })
    }

    async fn set_weights(&self, forward: &Forward, weights: &[(String, i32)]) -> PortResult<()> {
        if *guard(&self.failing) {
            return Err(PortError::new(
                "ModifyListener",
                PortErrorKind::Transient,
                "Throttling: Rate exceeded",
            ));
        }
        let mut forwards = guard(&self.forwards);
        let current = forwards.entry(forward.arn.clone()).or_default();
        for (tg, weight) in weights {
            match current.iter_mut().find(|(t, _)| t == tg) {
                Some(entry) => entry.1 = *weight,
                None => current.push((tg.clone(), *weight)),
            }
        }
        guard(&self.changes).push((forward.arn.clone(), weights.to_vec()));
        Ok(())
    }
}

/// A scheduled action in memory: its name, its schedule expression and the capacity it sets.
type ScheduledAction = (String, String, Capacity);

/// Application Auto Scaling in memory: one scalable target per service at most, and its
/// scheduled actions.
#[derive(Default)]
pub struct MemoryAutoscaling {
    targets: Mutex<BTreeMap<ServiceKey, Capacity>>,
    scheduled: Mutex<BTreeMap<ServiceKey, Vec<ScheduledAction>>>,
    fail: Mutex<BTreeSet<ServiceKey>>,
}

impl MemoryAutoscaling {
    /// A scheduled action on the service's target: at `schedule`, min and max become those
    /// of `capacity` (see `run_scheduled`).
    pub fn schedule(&self, service: &ServiceKey, name: &str, schedule: &str, capacity: Capacity) {
        guard(&self.scheduled)
            .entry(service.clone())
            .or_default()
            .push((name.to_owned(), schedule.to_owned(), capacity));
    }

    /// Runs the scheduled actions now, as Application Auto Scaling does at their time: each
    /// sets min and max, unless scheduled scaling is suspended on the target.
    pub fn run_scheduled(&self) {
        let scheduled = guard(&self.scheduled).clone();
        let mut targets = guard(&self.targets);
        for (service, actions) in scheduled {
            if let Some(target) = targets.get_mut(&service)
                && !target.suspended.scheduled
            {
                for (_, _, capacity) in actions {
                    target.min = capacity.min;
                    target.max = capacity.max;
                }
            }
        }
    }

    pub fn register(&self, service: &ServiceKey, capacity: Capacity) {
        guard(&self.targets).insert(service.clone(), capacity);
    }

    pub fn deregister(&self, service: &ServiceKey) {
        guard(&self.targets).remove(service);
    }

    pub fn capacity(&self, service: &ServiceKey) -> Option<Capacity> {
        guard(&self.targets).get(service).copied()
    }

    /// Makes every later change to this service's target fail as a server fault would.
    pub fn fail_for(&self, service: &ServiceKey) {
        guard(&self.fail).insert(service.clone());
    }

    /// Ends an injected fault.
    pub fn heal(&self, service: &ServiceKey) {
        guard(&self.fail).remove(service);
    }
}

#[async_trait]
impl Autoscaling for MemoryAutoscaling {
    async fn scalable_targets(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, Capacity>> {
        let targets = guard(&self.targets);
        Ok(services
            .iter()
            .filter_map(|s| targets.get(s).map(|c| (s.clone(), *c)))
            .collect())
    }

    async fn set_capacity(&self, service: &ServiceKey, capacity: Capacity) -> PortResult<()> {
        if guard(&self.fail).contains(service) {
            return Err(PortError::new(
                "RegisterScalableTarget",
                PortErrorKind::Transient,
                "injected fault",
            ));
        }
        guard(&self.targets).insert(service.clone(), capacity);
        Ok(())
    }

    async fn scheduled_actions(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, Vec<String>>> {
        let scheduled = guard(&self.scheduled);
        Ok(services
            .iter()
            .filter_map(|s| {
                let actions = scheduled.get(s)?;
                Some((
                    s.clone(),
                    actions
                        .iter()
                        .map(|(name, schedule, _)| format!("{name} ({schedule})"))
                        .collect(),
                ))
            })
            .collect())
    }
}

/// ECR in memory: tags, scans and manifests per digest.
#[derive(Default)]
pub struct MemoryEcr {
    tags: Mutex<HashMap<(String, String), Vec<String>>>,
    scans: Mutex<HashMap<(String, String), ScanResult>>,
    /// Manifests by digest; a digest without one is an image.
    manifests: Mutex<HashMap<(String, String), String>>,
    /// Calls of each operation, and the operations that fail.
    calls: Mutex<BTreeMap<&'static str, usize>>,
    fail: Mutex<BTreeSet<&'static str>>,
    /// Images not ACTIVE, by repository and digest.
    status: Mutex<HashMap<(String, String), ImageStatus>>,
    /// Lifecycle policies by repository.
    lifecycle: Mutex<HashMap<String, String>>,
}

impl MemoryEcr {
    /// ECR moves the image to another storage class (ARCHIVED, or ACTIVE once restored).
    pub fn set_status(&self, repository: &str, digest: &Digest, status: ImageStatus) {
        guard(&self.status).insert((repository.to_owned(), digest.to_string()), status);
    }

    /// The repository's lifecycle policy.
    pub fn set_lifecycle_policy(&self, repository: &str, policy: &str) {
        guard(&self.lifecycle).insert(repository.to_owned(), policy.to_owned());
    }

    /// The tags on a digest.
    pub fn tags_of(&self, repository: &str, digest: &Digest) -> Vec<String> {
        guard(&self.tags)
            .get(&(repository.to_owned(), digest.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    fn status_of(&self, repository: &str, digest: &str) -> ImageStatus {
        guard(&self.status)
            .get(&(repository.to_owned(), digest.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    /// The manifest `BatchGetImage` returns for the digest.
    pub fn put_manifest(&self, repository: &str, digest: &Digest, manifest: &str) {
        guard(&self.manifests).insert(
            (repository.to_owned(), digest.to_string()),
            manifest.to_owned(),
        );
    }

    /// Makes every later call of `operation` fail as throttling past the SDK's retries does.
    pub fn fail(&self, operation: &'static str) {
        guard(&self.fail).insert(operation);
    }

    pub fn heal(&self, operation: &'static str) {
        guard(&self.fail).remove(operation);
    }

    pub fn calls(&self, operation: &str) -> usize {
        guard(&self.calls).get(operation).copied().unwrap_or(0)
    }

    fn enter(&self, operation: &'static str) -> PortResult<()> {
        *guard(&self.calls).entry(operation).or_default() += 1;
        if guard(&self.fail).contains(operation) {
            return Err(PortError::new(
                operation,
                PortErrorKind::Transient,
                "ThrottlingException: Rate exceeded",
            ));
        }
        Ok(())
    }

    /// What a scan of the digest found, as `DescribeImageScanFindings` will say.
    pub fn scanned(&self, repository: &str, digest: &Digest, result: ScanResult) {
        guard(&self.scans).insert((repository.to_owned(), digest.to_string()), result);
    }

    /// A push as ECR takes it: the digest exists in the repository, and the tag moves onto it
    /// from whichever digest had it.
    pub fn push(&self, repository: &str, digest: &Digest, tag: Option<&str>) {
        let mut images = guard(&self.tags);
        if let Some(tag) = tag {
            for ((repo, _), tags) in images.iter_mut() {
                if repo == repository {
                    tags.retain(|t| t != tag);
                }
            }
        }
        let tags = images
            .entry((repository.to_owned(), digest.to_string()))
            .or_default();
        tags.extend(tag.map(str::to_owned));
    }

    /// Takes what an event of ECR or Inspector reports as done before the event was sent: a
    /// push (`ECR Image Action`) or a finished scan (`ECR Image Scan`, `Inspector2 Scan`; one
    /// already recorded with `scanned` stays). Tests deliver through here the events AWS
    /// would send; a forged event is one that skips it. Other events are left alone.
    pub fn receive(&self, event: &serde_json::Value) {
        let detail = &event["detail"];
        // Inspector names the repository by its ARN.
        let repository = detail["repository-name"]
            .as_str()
            .map(|name| name.rsplit_once("repository/").map_or(name, |(_, n)| n));
        let digest = detail["image-digest"].as_str().map(str::parse::<Digest>);
        let (Some(repository), Some(Ok(digest))) = (repository, digest) else {
            return;
        };
        match event["detail-type"].as_str() {
            Some("ECR Image Action") if detail["action-type"] == "PUSH" => {
                self.push(repository, &digest, detail["image-tag"].as_str());
            }
            Some("ECR Image Scan" | "Inspector2 Scan") => {
                let status = detail["scan-status"].as_str().unwrap_or_default();
                if !matches!(
                    status,
                    "COMPLETE" | "INITIAL_SCAN_COMPLETE" | "SCAN_COMPLETE"
                ) {
                    return;
                }
                let counts = detail["finding-severity-counts"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(severity, _)| *severity != "TOTAL")
                    .filter_map(|(severity, n)| Some((severity.clone(), n.as_i64()?)))
                    .collect();
                guard(&self.scans)
                    .entry((repository.to_owned(), digest.to_string()))
                    .or_insert(ScanResult::Complete { counts });
            }
            _ => {}
        }
    }

    /// Sets the tags of a digest, which exists from then on.
    pub fn tag(&self, repository: &str, digest: &Digest, tags: &[&str]) {
        guard(&self.tags).insert(
            (repository.to_owned(), digest.to_string()),
            tags.iter().map(|t| (*t).to_owned()).collect(),
        );
    }
}

#[async_trait]
impl Ecr for MemoryEcr {
    async fn image(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> PortResult<Option<RegistryImage>> {
        self.enter("DescribeImages")?;
        Ok(guard(&self.tags)
            .get(&(repository.name.clone(), digest.to_string()))
            .map(|tags| RegistryImage {
                tags: tags.clone(),
                pushed_at: None,
                status: self.status_of(&repository.name, digest.as_str()),
            }))
    }

    async fn digest_of(&self, repository: &Repository, tag: &str) -> PortResult<Option<Digest>> {
        self.enter("DescribeImages")?;
        Ok(guard(&self.tags)
            .iter()
            .find(|((repo, _), tags)| *repo == repository.name && tags.iter().any(|t| t == tag))
            .and_then(|((_, digest), _)| digest.parse().ok()))
    }

    async fn restore(&self, repository: &Repository, digest: &Digest) -> PortResult<ImageStatus> {
        self.enter("UpdateImageStorageClass")?;
        let key = (repository.name.clone(), digest.to_string());
        let mut status = guard(&self.status);
        match status.get(&key).copied().unwrap_or_default() {
            ImageStatus::Archived => {
                status.insert(key, ImageStatus::Activating);
                Ok(ImageStatus::Activating)
            }
            other => Err(PortError::new(
                "UpdateImageStorageClass",
                PortErrorKind::Other,
                format!(
                    "ImageStorageClassUpdateNotSupportedException: the image is {}",
                    other.as_str()
                ),
            )),
        }
    }

    async fn keep(&self, repository: &Repository, digest: &Digest, tag: &str) -> PortResult<()> {
        self.enter("PutImage")?;
        let mut images = guard(&self.tags);
        let Some(tags) = images.get_mut(&(repository.name.clone(), digest.to_string())) else {
            return Err(PortError::new(
                "BatchGetImage",
                PortErrorKind::NotFound,
                format!("ECR has no image {}", digest.short()),
            ));
        };
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
        }
        Ok(())
    }

    async fn release(
        &self,
        repository: &Repository,
        digest: &Digest,
        tag: &str,
    ) -> PortResult<bool> {
        self.enter("BatchDeleteImage")?;
        let mut images = guard(&self.tags);
        let Some(tags) = images.get_mut(&(repository.name.clone(), digest.to_string())) else {
            return Ok(true);
        };
        if tags.len() == 1 && tags[0] == tag {
            return Ok(false);
        }
        tags.retain(|t| t != tag);
        Ok(true)
    }

    async fn lifecycle_policy(&self, repository: &Repository) -> PortResult<Option<String>> {
        self.enter("GetLifecyclePolicy")?;
        Ok(guard(&self.lifecycle).get(&repository.name).cloned())
    }

    async fn images(
        &self,
        repository: &Repository,
    ) -> PortResult<Vec<crate::domain::lifecycle::ListedImage>> {
        self.enter("DescribeImages")?;
        Ok(guard(&self.tags)
            .iter()
            .filter(|((repo, _), _)| *repo == repository.name)
            .map(
                |((_, digest), tags)| crate::domain::lifecycle::ListedImage {
                    digest: digest.clone(),
                    tags: tags.clone(),
                    pushed_at: None,
                    pulled_at: None,
                },
            )
            .collect())
    }

    async fn image_tags(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> PortResult<Vec<String>> {
        Ok(guard(&self.tags)
            .get(&(repository.name.clone(), digest.to_string()))
            .cloned()
            .unwrap_or_default())
    }

    async fn manifest(&self, repository: &Repository, digest: &Digest) -> PortResult<Manifest> {
        self.enter("BatchGetImage")?;
        match guard(&self.manifests).get(&(repository.name.clone(), digest.to_string())) {
            None => Ok(Manifest::Image),
            Some(text) => read_manifest(text, None)
                .map_err(|e| PortError::new("BatchGetImage", PortErrorKind::Other, e)),
        }
    }

    async fn scan_findings(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> PortResult<ScanResult> {
        self.enter("DescribeImageScanFindings")?;
        Ok(guard(&self.scans)
            .get(&(repository.name.clone(), digest.to_string()))
            .cloned()
            .unwrap_or(ScanResult::NotRun))
    }
}

/// The table in memory, with the same lock and condition semantics as [`super::aws::DynamoStore`].
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Table>,
    /// The next lock is taken but its caller hears a failure, as when the answer is lost.
    lose_next_lock_answer: Mutex<bool>,
}

/// A lock: its owner and when its lease ends.
type Lease = Option<(String, DateTime<Utc>)>;

#[derive(Default)]
struct Table {
    states: BTreeMap<ServiceKey, (ServiceState, Lease)>,
    renewals: BTreeMap<ServiceKey, usize>,
    /// Writes of a state under a lock kept (`save`).
    saves: BTreeMap<ServiceKey, usize>,
    /// Attempts to take a lock alone (`lock`).
    locks: BTreeMap<ServiceKey, usize>,
    history: Vec<HistoryRecord>,
    processed: BTreeSet<(String, ServiceKey)>,
    containers: BTreeMap<ServiceKey, KnownContainers>,
    /// The repository index: each repository's services and the revision each was read from.
    repositories: BTreeMap<Repository, BTreeMap<ServiceKey, String>>,
    seen: BTreeSet<Repository>,
    /// The arrival time of each pace bucket.
    pace: BTreeMap<String, DateTime<Utc>>,
    /// Quarantines archived out of services' states.
    archived: BTreeMap<(ServiceKey, String), Quarantine>,
}

impl MemoryStore {
    pub fn all_history(&self) -> Vec<HistoryRecord> {
        guard(&self.inner).history.clone()
    }

    /// The services the repository index lists under the repository of this name (any
    /// registry), `None` until a pass through the whole fleet has seen it.
    pub fn listed(&self, name: &str) -> Option<Vec<String>> {
        let table = guard(&self.inner);
        let repository = table.seen.iter().find(|r| r.name == name)?;
        Some(
            table
                .repositories
                .get(repository)
                .into_iter()
                .flatten()
                .map(|(service, _)| service.to_string())
                .collect(),
        )
    }

    /// How often a lock was asked for alone (not with a pending record).
    pub fn locks(&self, service: &ServiceKey) -> usize {
        guard(&self.inner).locks.get(service).copied().unwrap_or(0)
    }

    /// How often a state was written under a lock that stayed held.
    pub fn saves(&self, service: &ServiceKey) -> usize {
        guard(&self.inner).saves.get(service).copied().unwrap_or(0)
    }

    /// How often a lease of this service's lock was renewed.
    pub fn renewals(&self, service: &ServiceKey) -> usize {
        guard(&self.inner)
            .renewals
            .get(service)
            .copied()
            .unwrap_or(0)
    }

    pub fn is_locked(&self, service: &ServiceKey) -> bool {
        guard(&self.inner)
            .states
            .get(service)
            .is_some_and(|(_, lock)| lock.is_some())
    }

    /// Takes the next lock asked for, then answers with a transient failure.
    pub fn lose_next_lock_answer(&self) {
        *guard(&self.lose_next_lock_answer) = true;
    }

    pub fn put_state(&self, service: &ServiceKey, state: ServiceState) {
        guard(&self.inner)
            .states
            .insert(service.clone(), (state, None));
    }
}

/// What `commit` and `save` archive, as the DynamoDB store does (every quarantine beyond
/// what the state keeps; no transaction limit in memory).
fn archive_into(
    archived: &mut BTreeMap<(ServiceKey, String), Quarantine>,
    service: &ServiceKey,
    state: &mut ServiceState,
) {
    for (digest, q) in state.archive_quarantines(usize::MAX) {
        archived.insert((service.clone(), digest), q);
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn archived_quarantine(
        &self,
        service: &ServiceKey,
        digest: &str,
    ) -> PortResult<Option<Quarantine>> {
        Ok(guard(&self.inner)
            .archived
            .get(&(service.clone(), digest.to_owned()))
            .cloned())
    }

    async fn release_archived_quarantine(
        &self,
        service: &ServiceKey,
        digest: &str,
    ) -> PortResult<bool> {
        Ok(guard(&self.inner)
            .archived
            .remove(&(service.clone(), digest.to_owned()))
            .is_some())
    }

    async fn commit_indexed(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
        records: &[HistoryRecord],
        processed: Option<&ProcessedMark>,
        index: &IndexUpdate,
    ) -> PortResult<()> {
        // In memory one after the other; the DynamoDB store writes both in one transaction.
        self.commit(service, locked, state, records, processed)
            .await?;
        ImageIndex::update(self, std::slice::from_ref(index), false).await
    }

    async fn processed(&self, event_id: &str) -> PortResult<BTreeSet<ServiceKey>> {
        Ok(guard(&self.inner)
            .processed
            .iter()
            .filter(|(id, _)| id == event_id)
            .map(|(_, key)| key.clone())
            .collect())
    }

    async fn lock(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<LockAttempt> {
        let mut table = guard(&self.inner);
        *table.locks.entry(service.clone()).or_default() += 1;
        let (state, lock) = table.states.entry(service.clone()).or_default();
        if let Some((holder, until)) = lock
            && *until >= now
            && holder != owner
        {
            return Ok(LockAttempt::Busy { until: *until });
        }
        let previous = lock.replace((owner.to_owned(), now + lease));
        state.version += 1;
        if std::mem::take(&mut *guard(&self.lose_next_lock_answer)) {
            return Err(PortError::new(
                "UpdateItem",
                PortErrorKind::Transient,
                "connection reset",
            ));
        }
        Ok(LockAttempt::Acquired(Box::new(Locked {
            owner: owner.to_owned(),
            until: now + lease,
            state: state.clone(),
            interrupted: previous.map(|(holder, _)| holder).filter(|h| h != owner),
        })))
    }

    async fn lock_saving(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
        read: &ServiceState,
        state: &ServiceState,
    ) -> PortResult<Option<Locked>> {
        let mut table = guard(&self.inner);
        let as_read = match table.states.get(service) {
            None => read.version == 0,
            Some((current, lock)) => current.version == read.version && lock.is_none(),
        };
        if !as_read {
            return Ok(None);
        }
        let state = ServiceState {
            version: read.version + 1,
            ..state.clone()
        };
        let until = now + lease;
        table.states.insert(
            service.clone(),
            (state.clone(), Some((owner.to_owned(), until))),
        );
        Ok(Some(Locked {
            owner: owner.to_owned(),
            until,
            state,
            interrupted: None,
        }))
    }

    async fn commit(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
        records: &[HistoryRecord],
        processed: Option<&ProcessedMark>,
    ) -> PortResult<()> {
        let mut table = guard(&self.inner);
        let holds = table.states.get(service).is_some_and(|(current, lock)| {
            current.version == locked.state.version
                && lock.as_ref().is_some_and(|(o, _)| *o == locked.owner)
        });
        if !holds {
            return Err(PortError::new(
                "TransactWriteItems",
                PortErrorKind::Conflict,
                "lock lost",
            ));
        }
        let mut state = ServiceState {
            version: locked.state.version,
            ..state.clone()
        };
        archive_into(&mut table.archived, service, &mut state);
        table.states.insert(service.clone(), (state, None));
        table.history.extend(records.iter().cloned());
        if let Some(mark) = processed {
            table
                .processed
                .insert((mark.event_id.clone(), mark.service.clone()));
        }
        Ok(())
    }

    async fn save(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
    ) -> PortResult<()> {
        let mut table = guard(&self.inner);
        *table.saves.entry(service.clone()).or_default() += 1;
        match table.states.get_mut(service) {
            Some((current, lock))
                if current.version == locked.state.version
                    && lock.as_ref().is_some_and(|(o, _)| *o == locked.owner) =>
            {
                let mut state = ServiceState {
                    version: locked.state.version,
                    ..state.clone()
                };
                archive_into(&mut table.archived, service, &mut state);
                if let Some((current, _)) = table.states.get_mut(service) {
                    *current = state;
                }
                Ok(())
            }
            _ => Err(PortError::new(
                "TransactWriteItems",
                PortErrorKind::Conflict,
                "lock lost",
            )),
        }
    }

    async fn renew(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<()> {
        let mut table = guard(&self.inner);
        match table.states.get_mut(service) {
            Some((current, Some((owner, until))))
                if current.version == locked.state.version && *owner == locked.owner =>
            {
                *until = now + lease;
                *table.renewals.entry(service.clone()).or_default() += 1;
                Ok(())
            }
            _ => Err(PortError::new(
                "UpdateItem",
                PortErrorKind::Conflict,
                "the lock was taken over",
            )),
        }
    }

    async fn release(&self, service: &ServiceKey, owner: &str) -> PortResult<()> {
        let mut table = guard(&self.inner);
        match table.states.get_mut(service) {
            Some((_, lock)) if lock.as_ref().is_some_and(|(o, _)| o == owner) => {
                *lock = None;
                Ok(())
            }
            _ => Err(PortError::new(
                "UpdateItem",
                PortErrorKind::Conflict,
                "the lock was no longer ours",
            )),
        }
    }

    async fn record(
        &self,
        records: &[HistoryRecord],
        processed: Option<&ProcessedMark>,
    ) -> PortResult<()> {
        let mut table = guard(&self.inner);
        table.history.extend(records.iter().cloned());
        if let Some(mark) = processed {
            table
                .processed
                .insert((mark.event_id.clone(), mark.service.clone()));
        }
        Ok(())
    }

    async fn load(&self, service: &ServiceKey) -> PortResult<ServiceState> {
        Ok(guard(&self.inner)
            .states
            .get(service)
            .map(|(state, _)| state.clone())
            .unwrap_or_default())
    }

    async fn load_many(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, ServiceState>> {
        let table = guard(&self.inner);
        Ok(services
            .iter()
            .filter_map(|s| {
                table
                    .states
                    .get(s)
                    .map(|(state, _)| (s.clone(), state.clone()))
            })
            .collect())
    }

    async fn sleeping(&self) -> PortResult<Vec<ServiceKey>> {
        Ok(guard(&self.inner)
            .states
            .iter()
            .filter(|(_, (state, _))| state.sleep.is_some())
            .map(|(key, _)| key.clone())
            .collect())
    }

    async fn waiting(&self) -> PortResult<Vec<ServiceKey>> {
        Ok(guard(&self.inner)
            .states
            .iter()
            .filter(|(_, (state, _))| !state.waiting.is_empty())
            .map(|(key, _)| key.clone())
            .collect())
    }

    async fn held(&self) -> PortResult<Vec<ServiceKey>> {
        Ok(guard(&self.inner)
            .states
            .iter()
            .filter(|(_, (state, _))| state.held.is_some())
            .map(|(key, _)| key.clone())
            .collect())
    }

    async fn history(&self, service: &ServiceKey, limit: usize) -> PortResult<Vec<HistoryRecord>> {
        let table = guard(&self.inner);
        let mut records: Vec<HistoryRecord> = table
            .history
            .iter()
            .filter(|r| &r.service == service)
            .cloned()
            .collect();
        records.sort_by_key(|r| std::cmp::Reverse(r.at));
        records.truncate(limit);
        Ok(records)
    }
}

#[async_trait]
impl Pace for MemoryStore {
    async fn reserve(
        &self,
        bucket: &str,
        rate: Rate,
        calls: u32,
        now: DateTime<Utc>,
    ) -> PortResult<Reserved> {
        let mut table = guard(&self.inner);
        let reserved = reserve(table.pace.get(bucket).copied(), now, rate, calls);
        table.pace.insert(bucket.to_owned(), reserved.arrival);
        Ok(reserved)
    }
}

#[async_trait]
impl ImageIndex for MemoryStore {
    async fn containers(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, KnownContainers>> {
        let table = guard(&self.inner);
        Ok(services
            .iter()
            .filter_map(|k| Some((k.clone(), table.containers.get(k)?.clone())))
            .collect())
    }

    async fn update(&self, updates: &[IndexUpdate], complete: bool) -> PortResult<()> {
        let mut table = guard(&self.inner);
        for update in updates {
            let now = update
                .now
                .as_ref()
                .map(KnownContainers::repositories)
                .unwrap_or_default();
            for gone in update.before.difference(&now) {
                if let Some(listed) = table.repositories.get_mut(gone) {
                    listed.remove(&update.service);
                }
            }
            match &update.now {
                Some(entry) => {
                    if complete {
                        table.seen.extend(now.iter().cloned());
                    }
                    for repository in now {
                        table
                            .repositories
                            .entry(repository)
                            .or_default()
                            .insert(update.service.clone(), entry.task_definition.clone());
                    }
                    let entry = KnownContainers {
                        listed: complete,
                        ..entry.clone()
                    };
                    table.containers.insert(update.service.clone(), entry);
                }
                None => {
                    table.containers.remove(&update.service);
                }
            }
        }
        Ok(())
    }

    async fn repository(&self, repository: &Repository) -> PortResult<Option<Vec<IndexedService>>> {
        let table = guard(&self.inner);
        let listed: Vec<IndexedService> = table
            .repositories
            .get(repository)
            .into_iter()
            .flatten()
            .map(|(service, task_definition)| IndexedService {
                service: service.clone(),
                task_definition: task_definition.clone(),
            })
            .collect();
        Ok(table.seen.contains(repository).then_some(listed))
    }

    async fn seen(&self, repository: &Repository) -> PortResult<()> {
        guard(&self.inner).seen.insert(repository.clone());
        Ok(())
    }

    async fn indexed(&self) -> PortResult<Vec<ServiceKey>> {
        Ok(guard(&self.inner).containers.keys().cloned().collect())
    }
}

/// A topic in memory that keeps what was published, and the metrics put beside it.
#[derive(Default)]
pub struct MemoryNotifier {
    published: Mutex<Vec<Notification>>,
    measured: Mutex<Vec<Measurements>>,
}

impl MemoryNotifier {
    pub fn published(&self) -> Vec<Notification> {
        guard(&self.published).clone()
    }

    pub fn measured(&self) -> Vec<Measurements> {
        guard(&self.measured).clone()
    }

    /// Every value of `metric` put, in order.
    pub fn values(&self, metric: Metric) -> Vec<(Option<String>, f64)> {
        guard(&self.measured)
            .iter()
            .flat_map(|m| {
                m.values
                    .iter()
                    .filter(|v| v.metric == metric)
                    .map(|v| (m.service.clone(), v.value))
            })
            .collect()
    }
}

impl Metrics for MemoryNotifier {
    fn put(&self, measurements: &Measurements) {
        guard(&self.measured).push(measurements.clone());
    }
}

#[async_trait]
impl Notifier for MemoryNotifier {
    async fn publish(&self, notification: &Notification) -> PortResult<()> {
        guard(&self.published).push(notification.clone());
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
