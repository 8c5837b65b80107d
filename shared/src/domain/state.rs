//! What deckhand remembers about a service between invocations.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::artifact::ManifestKind;
use super::image::{Digest, Repository};
use super::pair_move::PairMove;

/// The per-service record. Every change to it happens under the service's lock and is
/// committed conditionally on `version`, so concurrent invocations apply one at a time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceState {
    /// Incremented each time the lock is taken.
    pub version: u64,
    /// The task definition ARN to roll back to, as last settled: the revision running when
    /// deckhand first saw the service, later the newest deployment that completed and outlived
    /// its guard window without an alarm (`known_good_at` also counts one not settled yet), or
    /// an operator's choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_good: Option<String>,
    /// When the settled known-good revision proved itself (its deployment completed) or an
    /// operator named it; none for a baseline, which any proven deployment replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_good_since: Option<DateTime<Utc>>,
    /// The latest deployment deckhand started (in dry run: would have started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<Deployment>,
    /// The latest ECS deployment of the service that deckhand did not start, followed so that
    /// its revision can become known-good too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<SeenDeployment>,
    /// The newest push applied per repository, to recognise late and repeated deliveries.
    pub pushes: BTreeMap<String, AppliedPush>,
    /// Digests this service must not be moved to again, until an operator releases them: the
    /// newest [`QUARANTINE_KEPT`] here, the older ones archived as items of their own (the
    /// store's), so that the service's item stays far below DynamoDB's 400 KB.
    pub quarantine: BTreeMap<String, Quarantine>,
    /// Some quarantined digests are archived: one not found here may be there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quarantine_archived: bool,
    /// What deckhand saved when it put the service to sleep; present while it sleeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sleep: Option<Sleep>,
    /// When deckhand last woke the service: its alarms say nothing about the image until the
    /// tasks had time to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub woken_at: Option<DateTime<Utc>>,
    /// An operator's `wake` or `sleep`, honoured by reconciles until it expires.
    #[serde(rename = "override", skip_serializing_if = "Option::is_none")]
    pub operator_override: Option<OperatorOverride>,
    /// Scaled by hand while asleep: the schedule leaves the service alone until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_alone_until: Option<DateTime<Utc>>,
    /// The tag problem last reported by the scheduler, so that it is reported once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_problem: Option<String>,
    /// An operator froze automatic deploys: pushes are recorded as skipped until resumed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<Paused>,
    /// A revision registered for a push that did not reach the service (moving it failed):
    /// the retry of that push uses it instead of registering another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered: Option<Registered>,
    /// One side of a pair behind an ALB that the latest push deployed to: how its traffic
    /// moves from the other side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<PairMove>,
    /// Pushes held by the scan gate until their digest's scan decides, per repository.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub waiting: BTreeMap<String, WaitingPush>,
    /// The newest push that would deploy while the CodeDeploy deployment group was busy: it
    /// deploys when the group is free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<HeldPush>,
    /// The CodeDeploy deployment (not deckhand's) an alarm's rollback waits for: its
    /// `rollback.skipped` was sent once, the retries stay quiet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_waits_for: Option<String>,
    /// The digests ECS ran for rollback targets that name tags, by task definition ARN: a
    /// rollback to one registers a clone with them pinned (`domain::pin`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pinned: BTreeMap<String, PinnedRevision>,
    /// The ECR images (by digest) deckhand keeps for the revisions the service may run again,
    /// by task definition ARN: each carries the service's `deckhand-keep-` tag (`domain::keep`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kept: BTreeMap<String, Vec<String>>,
    /// A rollback that waits for ECR to restore archived images its target runs; the reconcile
    /// finishes it (`domain::restore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restoring: Option<PendingRollback>,
    /// The event whose `deploy.started` or `rollback.started` went out beside a commit that
    /// failed: the delivery that finishes the record does not announce it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced: Option<String>,
    /// A revision that proved itself and is not announced yet (`Deckhand Known-Good`): the
    /// reconcile puts the event on the bus, then clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unannounced: Option<Proven>,
}

/// A revision that proved itself: the deployment that ran its whole guard window without an
/// alarm, and when it completed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proven {
    pub revision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub event_id: String,
    /// The task definition ARN it was cloned from.
    pub from: String,
    pub task_definition: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paused {
    pub at: DateTime<Utc>,
    /// Who or what paused it.
    pub by: String,
}

/// A scalable target's capacity (Application Auto Scaling), and the scaling it is told not
/// to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    pub min: i32,
    pub max: i32,
    #[serde(default, skip_serializing_if = "Suspended::is_none")]
    pub suspended: Suspended,
}

impl Capacity {
    pub fn new(min: i32, max: i32) -> Self {
        Self {
            min,
            max,
            suspended: Suspended::default(),
        }
    }

    /// What a sleep sets: min and max at the asleep count, and scheduled scaling suspended,
    /// so that a scheduled action (a business-hours minimum at 07:00) can neither wake the
    /// service nor be taken for a hand change. Dynamic scaling stays as it was.
    pub fn asleep(self, count: i32) -> Self {
        Self {
            min: count,
            max: count,
            suspended: Suspended {
                scheduled: true,
                ..self.suspended
            },
        }
    }
}

/// The `SuspendedState` of a scalable target: which scaling activities are suspended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suspended {
    #[serde(default)]
    pub dynamic_in: bool,
    #[serde(default)]
    pub dynamic_out: bool,
    #[serde(default)]
    pub scheduled: bool,
}

impl Suspended {
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }
}

/// What a service ran with before deckhand put it to sleep, and what it set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sleep {
    pub since: DateTime<Utc>,
    pub desired_count: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scalable: Option<Capacity>,
    /// The count (and min and max) deckhand set.
    pub asleep_count: i32,
    /// Saved in dry run: nothing was changed in ECS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Saved before acting and not yet confirmed: ECS may be half-way. The next reconcile
    /// applies whatever the schedule wants from these values.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// The reconcile or request that put it to sleep.
    pub cause: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorOverride {
    pub awake: bool,
    pub until: DateTime<Utc>,
    pub at: DateTime<Utc>,
    pub cause: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedPush {
    pub at: DateTime<Utc>,
    pub digest: Digest,
    pub event_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quarantine {
    pub reason: String,
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// deckhand's id for it: the id of the event that caused it.
    pub id: String,
    pub repository: String,
    pub digest: Digest,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub containers: Vec<String>,
    /// Task definition ARNs before and after.
    pub from: String,
    pub to: String,
    pub started_at: DateTime<Utc>,
    /// When the push that caused it happened (its event's time): the lead time runs from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<DateTime<Utc>>,
    pub status: DeploymentStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecs_deployment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Until when an alarm still rolls a completed deployment back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard_until: Option<DateTime<Utc>>,
    /// Done while the service slept, or its window was cut by a sleep: ECS completing it
    /// proves nothing about the image; its window starts again at the wake.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub at_zero_tasks: bool,
    /// The rollback that undid it, if one did (in dry run: would have).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RolledBack>,
    /// When ECS completed it early (early success criteria) while it still rolled out: it stays
    /// in progress for deckhand until the rollout settles, and its guard window starts then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_completed_at: Option<DateTime<Utc>>,
    /// Recorded in dry run: nothing was registered and the service was not moved; `from` and
    /// `to` both name the revision it would have been cloned from.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// An alarm that fired inside its window and did not roll it back (rollback off, no
    /// target): it never becomes known-good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarmed: Option<Alarmed>,
    /// The ECR images by digest the revision it left runs (its tags pinned): what a rollback
    /// to `from` pulls, known without reading the revision again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_images: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolledBack {
    /// The alarm (or operator request) that caused it.
    pub alarm: String,
    pub at: DateTime<Utc>,
    /// The task definition ARN rolled back to.
    pub to: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentStatus {
    InProgress,
    Completed,
    Failed,
    RolledBack,
}

/// An ECS deployment of the service that deckhand did not start: a pipeline's
/// `update-service`, a `terraform apply`, a person, ECS rolling back on its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeenDeployment {
    /// ECS's id (`ecs-svc/...`), or `reconcile@TIME` for a revision a reconcile found running
    /// that no event had told of.
    pub ecs_deployment_id: String,
    /// The task definition ARN it deploys.
    pub task_definition: String,
    pub started_at: DateTime<Utc>,
    pub status: DeploymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_until: Option<DateTime<Utc>>,
    /// Completed at zero tasks, or its window was cut by a sleep: it restarts at the wake.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub at_zero_tasks: bool,
    /// The alarm that fired inside its window: it never becomes known-good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarmed: Option<Alarmed>,
}

/// An alarm that guards the service went into ALARM while a revision was proving itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alarmed {
    pub alarm: String,
    pub at: DateTime<Utc>,
}

/// A push that would deploy, held until its scans decide.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitingPush {
    pub event_id: String,
    /// When ECR accepted the push.
    pub pushed_at: DateTime<Utc>,
    pub repository: Repository,
    pub digest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// When deckhand started waiting.
    pub since: DateTime<Utc>,
    /// An image, an index, or not known until the manifest is read.
    #[serde(default)]
    pub manifest: ManifestKind,
    /// The images an index lists whose scans decide; `None` until the index was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<Digest>>,
    /// The images of the index whose scans were clean so far, with their finding counts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clean: BTreeMap<Digest, BTreeMap<String, i64>>,
    /// A promotion, not a push: what the upstream proved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted: Option<super::promotion::Promotion>,
}

/// Where the digests of a revision came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinSource {
    /// The service revision ECS recorded when it deployed the revision (`containerImages`).
    ServiceRevision,
    /// The digest the tag named in ECR when deckhand first saw the revision running, for what
    /// ECS kept no service revision of.
    Registry,
    /// Neither said: the revision names tags whose digests deckhand does not know.
    Unknown,
}

/// The digests a revision that names tags ran with, per container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PinnedRevision {
    /// Container name to its image pinned by digest (`HOST/NAME@sha256:...`).
    pub images: BTreeMap<String, String>,
    pub by: PinSource,
    pub at: DateTime<Utc>,
}

/// A rollback that waits for ECR to restore the images its target runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRollback {
    /// The alarm (or operator) that asked for it, and when.
    pub alarm: String,
    pub alarm_at: DateTime<Utc>,
    pub event_id: String,
    /// Task definition ARNs: what runs (the bad revision) and what the rollback deploys.
    pub from: String,
    pub to: String,
    pub reason: String,
    /// The images being restored (`KeptImage::reference`).
    pub images: Vec<String>,
    pub since: DateTime<Utc>,
}

/// A push that would deploy, held while another deployment holds the service's CodeDeploy
/// deployment group; deployed once the group is free.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldPush {
    pub push: WaitingPush,
    /// The deployment that held the group when the push was refused, when CodeDeploy said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behind: Option<String>,
    /// The CodeDeploy deployment group that was busy; empty for a push held by a freeze.
    #[serde(default)]
    pub group: String,
    /// The change calendar whose freeze holds the push (`domain::freeze`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// The operator who released it through the freeze (`deckhand deploy-held`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted_by: Option<String>,
}

/// After deckhand wakes a service, how long its alarms are not taken as evidence against the
/// image: tasks must be placed, pull, start and pass the load balancer's health checks, and
/// the alarms must see enough datapoints to return to OK.
pub const WAKE_MARGIN: TimeDelta = TimeDelta::minutes(15);

impl ServiceState {
    pub fn quarantine(
        &mut self,
        digest: &Digest,
        reason: String,
        at: DateTime<Utc>,
        deployment: Option<String>,
    ) {
        let reason = match reason.char_indices().nth(QUARANTINE_REASON_MAX) {
            Some((cut, _)) => format!("{}...", &reason[..cut]),
            None => reason,
        };
        self.quarantine
            .entry(digest.to_string())
            .or_insert(Quarantine {
                reason,
                at,
                deployment,
            });
    }

    pub fn is_quarantined(&self, digest: &Digest) -> Option<&Quarantine> {
        self.quarantine.get(digest.as_str())
    }

    /// Takes the oldest quarantines beyond [`QUARANTINE_KEPT`] out of the state (at most `max`
    /// of them), to be archived with it: a quarantine is moved, never dropped.
    pub fn archive_quarantines(&mut self, max: usize) -> Vec<(String, Quarantine)> {
        let over = self
            .quarantine
            .len()
            .saturating_sub(QUARANTINE_KEPT)
            .min(max);
        if over == 0 {
            return Vec::new();
        }
        let mut oldest: Vec<(DateTime<Utc>, String)> = self
            .quarantine
            .iter()
            .map(|(digest, q)| (q.at, digest.clone()))
            .collect();
        oldest.sort();
        self.quarantine_archived = true;
        oldest
            .into_iter()
            .take(over)
            .filter_map(|(_, digest)| {
                let q = self.quarantine.remove(&digest)?;
                Some((digest, q))
            })
            .collect()
    }
}

/// Quarantined digests a service's state keeps itself; older ones are archived. At about 250
/// bytes each (a reason of a sentence), 100 keep the item under 30 KB.
pub const QUARANTINE_KEPT: usize = 100;

/// A quarantine's reason as the state keeps it: the history has the whole text.
pub const QUARANTINE_REASON_MAX: usize = 300;

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
