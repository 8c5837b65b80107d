//! The known-good revision: the newest one that ran a whole guard window without an alarm,
//! whoever deployed it. deckhand follows its own deployments and, through the ECS deployment
//! events of every opted-in service, those of a pipeline, Terraform or a person
//! (`SeenDeployment`), so that the revision a rollback goes to is never a stale one.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

use super::deploy::{DeploymentEvent, DeploymentEventKind, status_word};
use super::fleet::ServiceView;
use super::service::revision_name;
use super::state::{Alarmed, DeploymentStatus, Proven, SeenDeployment, ServiceState, WAKE_MARGIN};

/// A deployment, deckhand's or another's, as a claim that its revision is good.
struct Claim<'a> {
    revision: &'a str,
    /// ECS's id of the deployment, when known.
    deployment: Option<&'a str>,
    status: DeploymentStatus,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    guard_until: Option<DateTime<Utc>>,
    at_zero_tasks: bool,
    alarmed: bool,
}

impl Claim<'_> {
    /// When the claim proved itself at `now`: completed with tasks, its whole guard window
    /// passed, no alarm in it. Ordered by completion, so that the newest proven one wins.
    fn proven_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let until = self.guard_until?;
        (self.status == DeploymentStatus::Completed
            && !self.at_zero_tasks
            && !self.alarmed
            && until <= now)
            .then(|| self.finished_at.unwrap_or(until))
    }

    /// Whether an alarm at `at` says something about this revision: it runs, it is rolling
    /// out or inside its guard window.
    fn open_at(&self, at: DateTime<Utc>) -> bool {
        at >= self.started_at
            && match self.status {
                DeploymentStatus::InProgress => true,
                DeploymentStatus::Completed => {
                    !self.at_zero_tasks && self.guard_until.is_some_and(|u| at < u)
                }
                DeploymentStatus::Failed | DeploymentStatus::RolledBack => false,
            }
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl ServiceState {
    /// deckhand's own deployment as a claim; a dry run's proves nothing.
    fn ours_claim(&self) -> Option<Claim<'_>> {
        let d = self.deployment.as_ref().filter(|d| !d.dry_run)?;
        Some(Claim {
            revision: &d.to,
            deployment: d.ecs_deployment_id.as_deref(),
            status: d.status,
            started_at: d.started_at,
            finished_at: d.finished_at,
            guard_until: d.guard_until,
            at_zero_tasks: d.at_zero_tasks,
            alarmed: d.alarmed.is_some(),
        })
    }

    /// The deployment deckhand saw someone else make, as a claim.
    fn seen_claim(&self) -> Option<Claim<'_>> {
        let s = self.seen.as_ref()?;
        Some(Claim {
            revision: &s.task_definition,
            deployment: Some(s.ecs_deployment_id.as_str())
                .filter(|id| !id.starts_with("reconcile@")),
            status: s.status,
            started_at: s.started_at,
            finished_at: s.finished_at,
            guard_until: s.guard_until,
            at_zero_tasks: s.at_zero_tasks,
            alarmed: s.alarmed.is_some(),
        })
    }

    fn claims(&self) -> impl Iterator<Item = Claim<'_>> {
        self.ours_claim().into_iter().chain(self.seen_claim())
    }

    /// The newest proven claim and when it completed.
    fn newest_proven(&self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, &str)> {
        self.newest_proven_claim(now)
            .map(|(at, c)| (at, c.revision))
    }

    fn newest_proven_claim(&self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, Claim<'_>)> {
        self.claims()
            .filter_map(|c| Some((c.proven_at(now)?, c)))
            .max_by_key(|(at, _)| *at)
    }

    /// The known-good revision at `now`: the newest deployment, whoever started it, that
    /// completed and outlived its guard window without an alarm; else what was settled (a
    /// baseline, an earlier proven one, an operator's choice), whichever is newer.
    pub fn known_good_at(&self, now: DateTime<Utc>) -> Option<&str> {
        let settled = self
            .known_good
            .as_deref()
            .map(|k| (self.known_good_since.unwrap_or(DateTime::<Utc>::MIN_UTC), k));
        match (self.newest_proven(now), settled) {
            (Some(proven), Some(settled)) if settled.0 >= proven.0 => Some(settled.1),
            (Some(proven), _) => Some(proven.1),
            (None, settled) => settled.map(|(_, k)| k),
        }
    }

    /// Takes the revision running when deckhand first sees the service as the baseline: the
    /// oldest claim there is, which any proven deployment replaces. Not when deckhand follows
    /// the deployment of that very revision: what its guard window says decides.
    pub fn adopt_baseline(&mut self, running_task_definition: &str) {
        let followed = self
            .seen
            .as_ref()
            .is_some_and(|s| s.task_definition == running_task_definition);
        if self.known_good.is_none() && self.deployment.is_none() && !followed {
            self.known_good = Some(running_task_definition.to_owned());
            self.known_good_since = None;
        }
    }

    /// Folds a deployment that proved itself into `known_good` before it is replaced, to be
    /// announced. Returns the revisions before and after when it changed.
    pub fn settle(&mut self, now: DateTime<Utc>) -> Option<(Option<String>, String)> {
        let good = self.known_good_at(now)?.to_owned();
        if self.known_good.as_deref() == Some(good.as_str()) {
            return None;
        }
        // What changes it is always a proven claim: a settled one is what it already holds.
        let proven = self.newest_proven_claim(now).map(|(at, c)| Proven {
            revision: c.revision.to_owned(),
            deployment: c.deployment.map(str::to_owned),
            at,
        });
        let since = proven.as_ref().map(|p| p.at);
        self.unannounced = proven;
        let before = self.known_good.replace(good.clone());
        self.known_good_since = since;
        self.prune_pins();
        Some((before, good))
    }

    /// An operator names the known-good revision: it holds until a deployment completed later
    /// proves itself.
    pub fn set_known_good(&mut self, task_definition: &str, now: DateTime<Utc>) {
        self.known_good = Some(task_definition.to_owned());
        self.known_good_since = Some(now);
    }

    /// An alarm that guards the service went into ALARM at `at` while `running` ran: the
    /// deployment proving that revision never becomes known-good. Returns the revision it
    /// marked, once (the first alarm is kept).
    pub fn mark_alarmed(
        &mut self,
        alarm: &str,
        at: DateTime<Utc>,
        running: &str,
    ) -> Option<String> {
        let open = |c: Option<Claim<'_>>| c.is_some_and(|c| c.revision == running && c.open_at(at));
        let (ours_open, seen_open) = (open(self.ours_claim()), open(self.seen_claim()));
        let mark = Alarmed {
            alarm: alarm.to_owned(),
            at,
        };
        let mut marked = None;
        if let Some(d) = self
            .deployment
            .as_mut()
            .filter(|d| ours_open && d.alarmed.is_none())
        {
            d.alarmed = Some(mark.clone());
            marked = Some(revision_name(&d.to).to_owned());
        }
        if let Some(s) = self
            .seen
            .as_mut()
            .filter(|s| seen_open && s.alarmed.is_none())
        {
            s.alarmed = Some(mark);
            marked = Some(revision_name(&s.task_definition).to_owned());
        }
        marked
    }

    /// deckhand puts the service to sleep at `at`: a guard window still open is cut short, and
    /// starts again when the service is woken.
    pub fn interrupt_by_sleep(&mut self, at: DateTime<Utc>) {
        let cut = |status: DeploymentStatus, until: Option<DateTime<Utc>>| {
            status == DeploymentStatus::Completed && until.is_some_and(|u| u > at)
        };
        if let Some(d) = self
            .deployment
            .as_mut()
            .filter(|d| cut(d.status, d.guard_until))
        {
            d.at_zero_tasks = true;
        }
        if let Some(s) = self.seen.as_mut().filter(|s| cut(s.status, s.guard_until)) {
            s.at_zero_tasks = true;
        }
    }

    /// deckhand woke the service at `at`. A deployment done (or cut short) while it slept ran
    /// on no task, so ECS completing it proved nothing: its guard window starts now, after the
    /// tasks' margin, and lasts the service's `guard`. Returns the revision and that window's
    /// end when there is one.
    pub fn mark_woken(
        &mut self,
        at: DateTime<Utc>,
        guard: TimeDelta,
    ) -> Option<(String, DateTime<Utc>)> {
        self.woken_at = Some(at);
        let until = at + WAKE_MARGIN + guard;
        let mut guarded = None;
        if let Some(s) = self
            .seen
            .as_mut()
            .filter(|s| s.at_zero_tasks && s.status == DeploymentStatus::Completed)
        {
            s.at_zero_tasks = false;
            s.guard_until = Some(until);
            guarded = Some((revision_name(&s.task_definition).to_owned(), until));
        }
        if let Some(d) = self
            .deployment
            .as_mut()
            .filter(|d| d.at_zero_tasks && d.status == DeploymentStatus::Completed)
        {
            d.at_zero_tasks = false;
            d.guard_until = Some(until);
            guarded = Some((revision_name(&d.to).to_owned(), until));
        }
        guarded
    }
}

/// What an ECS deployment event that is not about deckhand's own deployment means.
#[derive(Clone, Debug, PartialEq)]
pub enum SeenDecision {
    /// Nothing to follow: already recorded, older than what is, or a revision that can never
    /// be known-good.
    Unchanged(String),
    Follow {
        seen: SeenDeployment,
        reason: String,
    },
}

/// Follows a deployment deckhand did not start, from its ECS event. The revision is the one
/// ECS lists for that deployment, else what the service runs, but never for an event older
/// than deckhand's latest deployment (the service may have moved since); a revision whose
/// deckhand deployment failed or was rolled back is never followed.
pub fn follow_deployment(
    event: &DeploymentEvent,
    state: &ServiceState,
    service: &ServiceView,
    guard: TimeDelta,
) -> SeenDecision {
    use SeenDecision::Unchanged;
    let id = &event.ecs_deployment_id;
    let same = state.seen.as_ref().filter(|s| &s.ecs_deployment_id == id);
    if let Some(newer) = state
        .seen
        .as_ref()
        .filter(|s| &s.ecs_deployment_id != id && s.started_at > event.at)
    {
        return Unchanged(format!(
            "ECS deployment {id} is older than deployment {} of {}, the latest deckhand follows",
            newer.ecs_deployment_id,
            revision_name(&newer.task_definition)
        ));
    }
    let ours = state.deployment.as_ref().filter(|d| !d.dry_run);
    let listed = service.deployments.iter().find(|d| &d.id == id);
    let task_definition = match (same, listed) {
        (Some(s), _) => s.task_definition.clone(),
        (None, Some(listed)) => listed.task_definition.clone(),
        (None, None) if ours.is_some_and(|d| event.at < d.started_at) => {
            return Unchanged(format!(
                "ECS deployment {id} is older than deckhand's latest deployment and ECS no longer lists it"
            ));
        }
        (None, None) => service.task_definition.clone(),
    };
    let revision = revision_name(&task_definition).to_owned();
    if let Some(d) = ours.filter(|d| {
        d.to == task_definition
            && matches!(
                d.status,
                DeploymentStatus::Failed | DeploymentStatus::RolledBack
            )
    }) {
        return Unchanged(format!(
            "ECS deployment {id} runs {revision}, whose deckhand deployment {}; it never becomes known-good",
            status_word(d.status)
        ));
    }
    if let Some(s) = same.filter(|s| {
        s.status != DeploymentStatus::InProgress || event.kind == DeploymentEventKind::InProgress
    }) {
        return Unchanged(format!(
            "ECS deployment {id} of {revision} is already recorded as {}",
            status_word(s.status)
        ));
    }
    let mut seen = same.cloned().unwrap_or_else(|| SeenDeployment {
        ecs_deployment_id: id.clone(),
        task_definition,
        started_at: event.at,
        status: DeploymentStatus::InProgress,
        finished_at: None,
        guard_until: None,
        at_zero_tasks: false,
        alarmed: None,
    });
    let reason = match event.kind {
        DeploymentEventKind::InProgress => format!(
            "ECS deployment {id} of {revision} is in progress; deckhand did not start it and follows it: {revision} becomes known-good once it runs a whole guard window without an alarm"
        ),
        DeploymentEventKind::Completed => {
            let until = event.at + guard;
            seen.status = DeploymentStatus::Completed;
            seen.finished_at = Some(event.at);
            seen.guard_until = Some(until);
            let asleep = state.sleep.as_ref().is_some_and(|s| !s.dry_run);
            seen.at_zero_tasks = asleep || service.desired_count == 0;
            if seen.at_zero_tasks {
                format!(
                    "ECS completed deployment {id} of {revision}, which deckhand did not start, at zero tasks; its guard window starts when the service runs again"
                )
            } else {
                format!(
                    "ECS completed deployment {id} of {revision}, which deckhand did not start; it becomes known-good at {} unless an alarm fires",
                    rfc3339(until)
                )
            }
        }
        DeploymentEventKind::Failed => {
            seen.status = DeploymentStatus::Failed;
            seen.finished_at = Some(event.at);
            format!(
                "ECS deployment {id} of {revision}, which deckhand did not start, failed ({}); it never becomes known-good",
                event
                    .reason
                    .as_deref()
                    .unwrap_or("ECS reported the deployment failed")
            )
        }
    };
    SeenDecision::Follow { seen, reason }
}

/// The state after following a deployment: an older one that proved itself is settled first.
pub fn apply_seen(state: &mut ServiceState, seen: SeenDeployment, now: DateTime<Utc>) {
    state.settle(now);
    state.seen = Some(seen);
}

/// What a reconcile finds about a service's known-good revision at `now`.
#[derive(Clone, Debug, PartialEq)]
pub enum KnownGoodCheck {
    /// Nothing to change.
    Holds,
    /// The known-good revision proved itself (settled elsewhere) and is not announced yet.
    Unannounced,
    /// A deployment proved itself since the known-good revision was last settled.
    Proven {
        before: Option<String>,
        after: String,
    },
    /// The service runs a revision no deployment deckhand knows of moved it to (an event that
    /// never arrived): followed from now, so that it too needs a whole guard window.
    Unaccounted(SeenDeployment),
    /// ECS says the rollout of the revision a deployment still recorded in progress completed,
    /// but no COMPLETED event arrived: it completes now, and its guard window starts now. Until
    /// then an alarm on it would have counted as one during its rollout, however late.
    RolloutEnded {
        revision: String,
        guard_until: DateTime<Utc>,
        /// ECS had completed it early (early success criteria): the rollout has settled since.
        early: bool,
    },
}

/// The reconcile's check of one service: a rollout whose end no event told of, its proven
/// deployment settled, or the revision it runs followed when nothing accounts for it.
pub fn check_known_good(
    state: &ServiceState,
    service: &ServiceView,
    now: DateTime<Utc>,
    guard: TimeDelta,
) -> KnownGoodCheck {
    let running = &service.task_definition;
    if service.rollout_completed() && state.sleep.is_none() {
        let rolling = |revision: &str, status| {
            status == DeploymentStatus::InProgress && revision == running.as_str()
        };
        let ours = state
            .deployment
            .as_ref()
            .filter(|d| !d.dry_run && rolling(&d.to, d.status));
        // Completed early by ECS: the rollout ends when every desired task runs the revision.
        let early = ours.is_some_and(|d| d.early_completed_at.is_some());
        let ours = ours.is_some() && (!early || service.rollout_settled());
        let seen = state
            .seen
            .as_ref()
            .is_some_and(|s| rolling(&s.task_definition, s.status));
        if ours || seen {
            return KnownGoodCheck::RolloutEnded {
                revision: running.clone(),
                guard_until: now + guard,
                early,
            };
        }
    }
    let accounted = state.known_good.as_deref() == Some(running.as_str())
        || state.claims().any(|c| c.revision == running)
        || state.deployment.as_ref().is_some_and(|d| {
            d.from == *running || d.rollback.as_ref().is_some_and(|r| r.to == *running)
        });
    if !accounted && state.sleep.is_none() {
        let rolling_out = service.rolling_out();
        let status = if rolling_out {
            DeploymentStatus::InProgress
        } else {
            DeploymentStatus::Completed
        };
        return KnownGoodCheck::Unaccounted(SeenDeployment {
            ecs_deployment_id: format!("reconcile@{}", rfc3339(now)),
            task_definition: running.clone(),
            started_at: now,
            status,
            finished_at: (!rolling_out).then_some(now),
            guard_until: (!rolling_out).then(|| now + guard),
            at_zero_tasks: service.desired_count == 0,
            alarmed: None,
        });
    }
    let mut settled = state.clone();
    match settled.settle(now) {
        Some((before, after)) => KnownGoodCheck::Proven { before, after },
        None if state.unannounced.is_some() => KnownGoodCheck::Unannounced,
        None => KnownGoodCheck::Holds,
    }
}

/// The state after a check found that ECS completed a rollout no event reported: the
/// deployment recorded in progress on `revision`, deckhand's or another's, completes at `now`.
pub fn end_rollout(
    state: &mut ServiceState,
    revision: &str,
    now: DateTime<Utc>,
    guard_until: DateTime<Utc>,
) {
    if let Some(d) = state
        .deployment
        .as_mut()
        .filter(|d| !d.dry_run && d.to == revision && d.status == DeploymentStatus::InProgress)
    {
        d.status = DeploymentStatus::Completed;
        d.finished_at = Some(now);
        d.guard_until = Some(guard_until);
    }
    if let Some(s) = state
        .seen
        .as_mut()
        .filter(|s| s.task_definition == revision && s.status == DeploymentStatus::InProgress)
    {
        s.status = DeploymentStatus::Completed;
        s.finished_at = Some(now);
        s.guard_until = Some(guard_until);
    }
}

#[cfg(test)]
#[path = "known_good_tests.rs"]
mod tests;
