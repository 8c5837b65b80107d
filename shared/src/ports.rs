//! The outbound ports: one small trait per dependency. AWS adapters live in
//! [`crate::adapters::aws`], in-memory ones for tests in [`crate::adapters::memory`].

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::codedeploy::{DeploymentGroup, GroupView};
use crate::domain::fleet::{Container, ImageChange, ServiceView, TaskDefinitionView};
use crate::domain::image::{Digest, Repository};
use crate::domain::pace::{Rate, Reserved};
use crate::domain::pause::PausedDeployment;
use crate::domain::service::ServiceKey;
use crate::domain::state::{Capacity, ServiceState};

#[path = "ports_lock.rs"]
mod lock;
use crate::history::{HistoryRecord, ProcessedMark};
use crate::metrics::Measurements;
use crate::notification::Notification;
pub use lock::{AtOnce, LockAttempt, Locked};

/// A failed call to a dependency.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct PortError {
    pub operation: &'static str,
    pub message: String,
    pub kind: PortErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortErrorKind {
    /// Throttled or a server fault after the SDK's own retries: a later attempt may succeed.
    Transient,
    /// The thing asked for does not exist.
    NotFound,
    /// A conditional write lost a race.
    Conflict,
    Other,
}

impl PortError {
    pub fn new(operation: &'static str, kind: PortErrorKind, message: impl Into<String>) -> Self {
        Self {
            operation,
            message: message.into(),
            kind,
        }
    }
}

pub type PortResult<T> = Result<T, PortError>;

/// What a partial read of services found: the services, and those of the batches that failed.
#[derive(Clone, Debug, Default)]
pub struct Described {
    pub services: Vec<ServiceView>,
    pub failed: Vec<(ServiceKey, PortError)>,
}

/// A service found by a tag: its ARN and the tag's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggedService {
    pub arn: String,
    pub value: String,
}

#[async_trait]
pub trait Ecs: Send + Sync {
    /// The services that carry the tag key, across clusters, all pages, with the tag's value.
    async fn find_services(&self, tag_key: &str) -> PortResult<Vec<TaggedService>>;
    /// Services with their tags and deployments, read in batches: a batch that fails leaves
    /// out only its own services, which come back with the error. Unknown and deleted services
    /// are left out.
    async fn describe_services_partly(&self, services: &[ServiceKey]) -> PortResult<Described>;
    /// The same, all or nothing: the first failed batch fails the whole.
    async fn describe_services(&self, services: &[ServiceKey]) -> PortResult<Vec<ServiceView>> {
        let described = self.describe_services_partly(services).await?;
        match described.failed.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(described.services),
        }
    }
    async fn describe_task_definition(&self, arn: &str) -> PortResult<TaskDefinitionView>;
    /// The digest each container's image resolved to when ECS deployed what the service runs
    /// (its current service revision's `containerImages`, `DescribeServiceRevisions`);
    /// `None` when ECS keeps no service revision of it.
    async fn resolved_images(
        &self,
        service: &ServiceView,
    ) -> PortResult<Option<BTreeMap<String, String>>>;
    /// Registers a new revision of `base` with only the given images changed, marked as
    /// registered for `event_id`, and returns its ARN. Registered once however the call is
    /// retried: after a failure that may have been applied, it looks before trying again.
    async fn register_revision(
        &self,
        base: &TaskDefinitionView,
        changes: &[ImageChange],
        event_id: &str,
    ) -> PortResult<String>;
    /// The revision of `base`'s family that was registered from `base` for `event_id`, if any.
    async fn registered_for(
        &self,
        base: &TaskDefinitionView,
        event_id: &str,
    ) -> PortResult<Option<String>>;
    /// The ACTIVE revisions of exactly this family (ARNs), all pages.
    async fn active_revisions(&self, family: &str) -> PortResult<Vec<String>>;
    /// Deregisters a revision: it becomes INACTIVE, its tasks keep running, but no service can
    /// be moved onto it again.
    async fn deregister_revision(&self, arn: &str) -> PortResult<()>;
    /// Points the service at a task definition. Returns the id of the ECS deployment this
    /// started, when ECS reports one.
    async fn update_service(
        &self,
        service: &ServiceKey,
        task_definition: &str,
    ) -> PortResult<Option<String>>;
    /// Sets the service's desired count, nothing else.
    async fn set_desired_count(&self, service: &ServiceKey, count: i32) -> PortResult<()>;
    /// The ARN of the service deployment ECS runs for the service now (`PENDING` or
    /// `IN_PROGRESS`, `ListServiceDeployments`): a traffic-shifting deployment is in progress
    /// until its bake time ends.
    async fn deployment_in_progress(&self, service: &ServiceKey) -> PortResult<Option<String>>;
    /// Stops a service deployment with `ROLLBACK`: ECS moves the traffic back to the revision
    /// it kept running.
    async fn stop_service_deployment(&self, service_deployment_arn: &str) -> PortResult<()>;
    /// The service's deployment in progress that waits at pause hooks (its
    /// `lifecycleHookDetails` in `DescribeServiceDeployments`, `AWAITING_ACTION`), if any, with
    /// every hook that waits and the pauses its configuration still holds.
    async fn paused_deployment(&self, service: &ServiceKey)
    -> PortResult<Option<PausedDeployment>>;
    /// `ContinueServiceDeployment` on one hook: `CONTINUE`, or `ROLLBACK` when `roll_back`.
    async fn continue_service_deployment(
        &self,
        service_deployment_arn: &str,
        hook_id: &str,
        roll_back: bool,
    ) -> PortResult<()>;
    /// Points the service at a task definition and sets its desired count: the idle side of a
    /// pair gets the new revision with the live side's count.
    async fn update_service_scaled(
        &self,
        service: &ServiceKey,
        task_definition: &str,
        count: i32,
    ) -> PortResult<Option<String>> {
        let id = self.update_service(service, task_definition).await?;
        self.set_desired_count(service, count).await?;
        Ok(id)
    }
}

/// CloudWatch alarms.
#[async_trait]
pub trait Alarms: Send + Sync {
    /// The tags of an alarm.
    async fn alarm_tags(&self, arn: &str) -> PortResult<crate::domain::settings::Tags>;
    /// What a metric alarm does in ALARM (its `AlarmActions`); none for an alarm that no longer
    /// exists.
    async fn alarm_actions(&self, name: &str) -> PortResult<Option<Vec<String>>>;
    /// Every metric and composite alarm of the account and region, all pages, as alarms in
    /// their current state (for `deckhand check`).
    async fn all_alarms(&self) -> PortResult<Vec<crate::domain::rollback::Alarm>>;
}

/// The ALB listener or listener rule that carries a pair's production traffic.
#[async_trait]
pub trait Traffic: Send + Sync {
    /// The forward action of a listener's default actions (`listener/...` ARN) or of a listener
    /// rule (`listener-rule/...`): its target groups and their weights.
    async fn forward(&self, arn: &str) -> PortResult<crate::domain::pair::Forward>;
    /// Sets the weights of the forward action's target groups (ARN, weight), keeping every
    /// other part of the actions as `forward` read them: the other actions, their order,
    /// stickiness, target groups not named. Setting the weights it already has is harmless.
    async fn set_weights(
        &self,
        forward: &crate::domain::pair::Forward,
        weights: &[(String, i32)],
    ) -> PortResult<()>;
    /// Whether the listener or rule is designated for deckhand (its tag `deckhand:traffic` =
    /// `managed`, `DescribeTags`): the template lets deckhand's roles change only those.
    async fn designated(&self, arn: &str) -> PortResult<bool>;
}

/// What a function answered: its error type when it failed (`X-Amz-Function-Error`), and its
/// payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invoked {
    pub function_error: Option<String>,
    pub payload: Vec<u8>,
}

/// Lambda, for the check function of a pair's traffic gate.
#[async_trait]
pub trait CheckFunctions: Send + Sync {
    /// Invokes `function` (name or ARN) with `question` and waits for its answer, at most
    /// `timeout`, without retrying: a check that does not answer in time fails.
    async fn invoke(
        &self,
        function: &str,
        question: &serde_json::Value,
        timeout: std::time::Duration,
    ) -> PortResult<Invoked>;
}

/// EventBridge, for announcing known-good revisions to the stacks promoted from them.
#[async_trait]
pub trait Announcer: Send + Sync {
    /// Puts a `Deckhand Known-Good` event on the account's default event bus.
    async fn known_good(
        &self,
        announcement: &crate::domain::promotion::Announcement,
    ) -> PortResult<()>;
}

/// Systems Manager Change Calendar, for change freezes.
#[async_trait]
pub trait ChangeCalendars: Send + Sync {
    /// The calendar's state at `at` (`GetCalendarState` with `AtTime`).
    async fn state(
        &self,
        calendar: &str,
        at: DateTime<Utc>,
    ) -> PortResult<crate::domain::freeze::CalendarState>;
}

/// CodeDeploy, for the services it deploys (deployment controller `CODE_DEPLOY`).
#[async_trait]
pub trait CodeDeploy: Send + Sync {
    /// The deployment group with the ECS services it deploys; `None` when CodeDeploy has no
    /// such application or group.
    async fn group(&self, group: &DeploymentGroup) -> PortResult<Option<GroupView>>;
    /// The ECS deployment groups of every application whose `ecsServices` name the service.
    async fn groups_deploying(&self, service: &ServiceKey) -> PortResult<Vec<GroupView>>;
    /// `CreateDeployment` with the AppSpec as `AppSpecContent`; returns the deployment's id. A
    /// group that runs another deployment refuses it (`Conflict`).
    async fn create_deployment(
        &self,
        group: &DeploymentGroup,
        appspec: &str,
        description: &str,
    ) -> PortResult<String>;
    /// The id of the group's deployment still running (`ListDeployments`), if any.
    async fn deployment_in_progress(&self, group: &DeploymentGroup) -> PortResult<Option<String>>;
    /// What CodeDeploy says of a deployment (`GetDeployment`): what its AppSpec deploys, whether
    /// it is CodeDeploy's own rollback of another, who started it; `None` when there is none.
    async fn deployment(
        &self,
        deployment_id: &str,
    ) -> PortResult<Option<crate::domain::codedeploy_busy::RunningDeployment>>;
    /// `StopDeployment` with auto-rollback: CodeDeploy puts the traffic back on the task set it
    /// kept.
    async fn stop_deployment(&self, deployment_id: &str) -> PortResult<()>;
}

/// Application Auto Scaling for ECS services (dimension `ecs:service:DesiredCount`).
#[async_trait]
pub trait Autoscaling: Send + Sync {
    /// The scalable targets of these services; services without one are left out.
    async fn scalable_targets(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, Capacity>>;
    /// Sets an existing target's min and max capacity and which scaling is suspended.
    async fn set_capacity(&self, service: &ServiceKey, capacity: Capacity) -> PortResult<()>;
    /// The scheduled actions on these services' scalable targets, as `NAME (SCHEDULE)`;
    /// services without any are left out.
    async fn scheduled_actions(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, Vec<String>>>;
}

#[async_trait]
pub trait Ecr: Send + Sync {
    /// The digest as ECR holds it in the repository (`DescribeImages`); `None` when ECR has no
    /// such image (or no such repository).
    async fn image(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> PortResult<Option<crate::domain::trust::RegistryImage>>;
    /// The digest a tag names now; `None` when ECR has no such tag.
    async fn digest_of(&self, repository: &Repository, tag: &str) -> PortResult<Option<Digest>>;
    /// Restores an archived image to ECR's standard storage class (`UpdateImageStorageClass`
    /// to STANDARD): ACTIVATING until ECR has restored it.
    async fn restore(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> PortResult<crate::domain::trust::ImageStatus>;
    /// Tags the digest with `tag` (`PutImage` of its manifest as ECR holds it): a new tag on an
    /// image, never a moved one, which an immutable repository accepts. Tagging it again is
    /// harmless. `NotFound` when ECR no longer has the image.
    async fn keep(&self, repository: &Repository, digest: &Digest, tag: &str) -> PortResult<()>;
    /// Takes `tag` off the digest (`BatchDeleteImage` by tag). ECR deletes an image whose last
    /// tag goes: when `tag` is its only one it is left in place, and `false` says so.
    async fn release(
        &self,
        repository: &Repository,
        digest: &Digest,
        tag: &str,
    ) -> PortResult<bool>;
    /// The repository's lifecycle policy text, if it has one.
    async fn lifecycle_policy(&self, repository: &Repository) -> PortResult<Option<String>>;
    /// The repository's policy text (who else may use it), if it has one.
    async fn repository_policy(&self, repository: &Repository) -> PortResult<Option<String>>;
    /// Every image of the repository, all pages.
    async fn images(
        &self,
        repository: &Repository,
    ) -> PortResult<Vec<crate::domain::lifecycle::ListedImage>>;
    /// The tags that point at a digest now.
    async fn image_tags(&self, repository: &Repository, digest: &Digest)
    -> PortResult<Vec<String>>;
    /// Reads a pushed manifest: one image, or an index and the images it lists.
    async fn manifest(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> PortResult<crate::domain::artifact::Manifest>;
    /// The latest scan of a digest and its finding counts; `NotRun` when ECR has none.
    async fn scan_findings(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> PortResult<crate::domain::scan::ScanResult>;
}

#[async_trait]
pub trait StateStore: Send + Sync {
    /// The services for which this event was already fully handled.
    async fn processed(&self, event_id: &str) -> PortResult<BTreeSet<ServiceKey>>;

    /// Takes the service's lock for `lease` unless another holder's lease is still running.
    /// Creates the record on first use and increments its version. Taking it again with the
    /// same owner succeeds (a retried request whose first answer was lost).
    async fn lock(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<LockAttempt>;

    /// In one conditional write: the service's lock, a slot of the `pace` bucket (the bucket
    /// full, or as this process last saw it) and the check that `event` was not handled for
    /// the service; only when the store knows the record as it is (its own last commit of it,
    /// in this process). A retry after a lost answer takes the lock with the same owner
    /// (`lock` lets it).
    async fn lock_at_once(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
        pace: Option<(&str, crate::domain::pace::Rate)>,
        event: &str,
    ) -> PortResult<AtOnce>;

    /// `lock`, only for a service deckhand has a record of: `None`, with nothing written, when
    /// it has none.
    async fn lock_recorded(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<Option<LockAttempt>>;

    /// Takes the service's lock and writes `state` with it, in one conditional write, when the
    /// record is still as `read` found it (same version, never created when `read` is the
    /// default) and nobody holds its lock: what must be on record before acting (a pending
    /// sleep) costs no call of its own. `None` when the record moved or the lock is held;
    /// the caller then takes the lock as usual and decides again.
    async fn lock_saving(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
        read: &ServiceState,
        state: &ServiceState,
    ) -> PortResult<Option<Locked>>;

    /// A quarantine the service's state archived (`ServiceState::archive_quarantines`, which
    /// `commit` and `save` apply), if any.
    async fn archived_quarantine(
        &self,
        service: &ServiceKey,
        digest: &str,
    ) -> PortResult<Option<crate::domain::state::Quarantine>>;

    /// Removes an archived quarantine (an operator's release); whether there was one.
    async fn release_archived_quarantine(
        &self,
        service: &ServiceKey,
        digest: &str,
    ) -> PortResult<bool>;

    /// Writes the new state, the history records and the processed mark in one transaction and
    /// releases the lock; fails with `Conflict` if the lock or version is no longer ours. The
    /// oldest quarantines beyond what the state keeps are archived in the same transaction.
    async fn commit(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
        records: &[HistoryRecord],
        processed: Option<&ProcessedMark>,
    ) -> PortResult<()>;

    /// Writes the state and keeps the lock: what must be on record before acting (the
    /// capacity saved before a sleep). Fails with `Conflict` if the lock is no longer ours.
    /// `commit`, with the service's entry of the repository index written in the same
    /// transaction: a deployment moves the service onto a revision deckhand registered, and
    /// the index follows it in the one write that records it.
    #[allow(clippy::too_many_arguments)]
    async fn commit_indexed(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
        records: &[HistoryRecord],
        processed: Option<&ProcessedMark>,
        index: &IndexUpdate,
    ) -> PortResult<()>;

    async fn save(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
    ) -> PortResult<()>;

    /// Extends the lease of a lock still held (same owner, same version) to `now + lease`;
    /// `Conflict` when another invocation took it meanwhile. Called right before acting on ECS,
    /// so that what follows runs under a fresh lease, and never under a lost one.
    async fn renew(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<()>;

    /// Releases `owner`'s lock without changing the state; a lock held by another owner is
    /// left alone (`Conflict`).
    async fn release(&self, service: &ServiceKey, owner: &str) -> PortResult<()>;

    /// `release`, after a commit that failed while the action's announcement went out: the
    /// state notes `cause` as announced (`ServiceState::announced`).
    async fn release_announced(
        &self,
        service: &ServiceKey,
        owner: &str,
        cause: &str,
    ) -> PortResult<()>;

    /// Keeps the newest known-good announcement of an upstream service
    /// (`ACCOUNT/CLUSTER/SERVICE`), as it was received and checked, by when it proved itself:
    /// what `deckhand promote` deploys again and `deckhand status` compares with.
    async fn remember_announcement(
        &self,
        upstream: &str,
        event: &serde_json::Value,
        proven_at: DateTime<Utc>,
    ) -> PortResult<()>;

    /// The announcement kept for `upstream`, if any.
    async fn announcement(&self, upstream: &str) -> PortResult<Option<serde_json::Value>>;

    /// Records decisions that needed no lock.
    async fn record(
        &self,
        records: &[HistoryRecord],
        processed: Option<&ProcessedMark>,
    ) -> PortResult<()>;

    async fn load(&self, service: &ServiceKey) -> PortResult<ServiceState>;

    /// The states of many services at once; services never seen are left out.
    async fn load_many(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, ServiceState>>;

    /// The services deckhand keeps asleep, whatever their tags say now.
    async fn sleeping(&self) -> PortResult<Vec<ServiceKey>>;

    /// The services with pushes the scan gate holds.
    async fn waiting(&self) -> PortResult<Vec<ServiceKey>>;

    /// The services with a push held while their CodeDeploy deployment group was busy.
    async fn held(&self) -> PortResult<Vec<ServiceKey>>;

    /// History of a service, newest first.
    async fn history(&self, service: &ServiceKey, limit: usize) -> PortResult<Vec<HistoryRecord>>;
}

/// What deckhand last read of each service's task definition: which revision, and the images
/// of its containers. A revision never changes, so an entry holds as long as the service runs
/// that revision; it spares a fleet's pushes a `DescribeTaskDefinition` per service.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KnownContainers {
    pub task_definition: String,
    pub containers: Vec<Container>,
    /// Set by the index when a pass that read the whole fleet listed the service under the
    /// repositories it runs; other entries (older than the repository index, or written from
    /// one event) are written again by the next such pass.
    #[serde(default)]
    pub listed: bool,
}

impl KnownContainers {
    /// The ECR repositories its containers run images from.
    pub fn repositories(&self) -> BTreeSet<Repository> {
        self.containers
            .iter()
            .filter_map(|c| crate::domain::image::ImageRef::parse(&c.image)?.repository())
            .collect()
    }
}

/// A service the repository index lists under a repository, with the revision it was read
/// from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedService {
    pub service: ServiceKey,
    pub task_definition: String,
}

/// One service's change to the index: its entry, and its place under each repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexUpdate {
    pub service: ServiceKey,
    /// Repositories it was listed under: it leaves those `now` does not run.
    pub before: BTreeSet<Repository>,
    /// What it runs now; `None` takes the service out of the index.
    pub now: Option<KnownContainers>,
}

impl IndexUpdate {
    pub fn entry(
        service: ServiceKey,
        before: Option<&KnownContainers>,
        now: KnownContainers,
    ) -> Self {
        Self {
            service,
            before: before
                .map(KnownContainers::repositories)
                .unwrap_or_default(),
            now: Some(now),
        }
    }

    pub fn removal(service: ServiceKey, before: BTreeSet<Repository>) -> Self {
        Self {
            service,
            before,
            now: None,
        }
    }
}

/// What deckhand knows of the images its services run: per service, the revision last read
/// and its containers; per repository, the services whose revision runs an image from it.
/// A push reads its repository's list instead of the whole fleet.
#[async_trait]
pub trait ImageIndex: Send + Sync {
    /// The entries of these services; services never indexed are left out.
    async fn containers(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, KnownContainers>>;
    /// Writes each service's entry and its places under repositories, or removes them.
    /// `complete` when the updates come from a pass that read every opted-in service: the
    /// repositories they run are then recorded as seen, and the entries as listed.
    async fn update(&self, updates: &[IndexUpdate], complete: bool) -> PortResult<()>;
    /// The services listed under a repository; `None` until a pass that read the whole
    /// fleet recorded the repository as seen (until then its list may be partial).
    async fn repository(&self, repository: &Repository) -> PortResult<Option<Vec<IndexedService>>>;
    /// Records that a discovery of the whole fleet was made for the repository: from now on
    /// an empty list means that no service runs it.
    async fn seen(&self, repository: &Repository) -> PortResult<()>;
    /// Every service the index has an entry for.
    async fn indexed(&self) -> PortResult<Vec<ServiceKey>>;
}

/// The shared pace of AWS writes, one record per token bucket (`domain::pace`).
#[async_trait]
pub trait Pace: Send + Sync {
    /// Reserves `calls` slots of the bucket at `now`, for every invocation of the account.
    async fn reserve(
        &self,
        bucket: &str,
        rate: Rate,
        calls: u32,
        now: DateTime<Utc>,
    ) -> PortResult<Reserved>;
}

#[async_trait]
pub trait Notifier: Send + Sync {
    async fn publish(&self, notification: &Notification) -> PortResult<()>;
}

/// Where the metrics go: the function's log as EMF lines in Lambda. Writing one cannot fail in
/// a way deckhand could act on.
pub trait Metrics: Send + Sync {
    fn put(&self, measurements: &Measurements);
}

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The clock of the machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
