//! One push applied to one service: its policy, its containers, its deployment controller, and
//! under its lock the decision. A service that moved to another revision while the push waited
//! for its lock (another push, a rollback, a person) is read again and the push starts over
//! from what it runs now, so that no push clones a revision the service no longer runs.

use std::collections::BTreeSet;

use chrono::TimeDelta;
use tracing::{info, warn};

use super::ahead::{Taken, TakenAhead};
use super::{
    DeployFunction, Gate, Moved, Target, push_details, push_name, push_record, report, skipped,
};
use crate::app::codedeploy::codedeploy_target;
use crate::app::locking::{acquire_noting_waits, may_have_moved, owner_token};
use crate::app::paced;
use crate::domain::deploy::{
    Push, PushDecision, choose_containers, controller_problem, decide_dry_run_push, decide_push,
    highest_version, record_push, running_digest, running_tag, start_dry_run_deployment,
};
use crate::domain::fleet::{ImageChange, ServiceView};
use crate::domain::freeze::{FreezeVerdict, calendar_of};
use crate::domain::image::Digest;
use crate::domain::pace::TASK_DEFINITION_WRITES;
use crate::domain::policy::{DeployPolicy, Verdict};
use crate::domain::promotion::{PromotionVerdict, promote_from_of, promotion_verdict};
use crate::domain::scan_wait::{end_wait, wait_of};
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::settings::DeploySettings;
use crate::domain::strategy::DeploymentController;
use crate::notification::{Kind, Notification, Severity};
use crate::ports::{Locked, PortError, PortErrorKind};
use crate::report::{Action, ServiceReport};

/// How many times one push starts over because the service kept moving under it; beyond, the
/// event is given back for a retry.
const MAX_ROUNDS: usize = 3;

/// What one attempt at a push ended with.
pub(super) enum Round {
    Done(ServiceReport),
    /// The service no longer runs the revision the push was read against: it runs this.
    Moved(Box<ServiceView>),
}

impl DeployFunction {
    pub(super) async fn push_to_service(
        &self,
        push: &Push,
        mut target: Target,
        done: &BTreeSet<ServiceKey>,
        gate: Gate<'_>,
        ahead: &TakenAhead,
    ) -> ServiceReport {
        let key = target.service.key.clone();
        if done.contains(&key) {
            let reason = "this event was already handled for this service";
            return self.duplicate(&key, &push.event_id, reason, None).await;
        }
        for _ in 0..MAX_ROUNDS {
            let service = match self.push_round(push, &target, gate, ahead).await {
                Round::Done(report) => return report,
                Round::Moved(service) => *service,
            };
            info!(
                read = %revision_name(&target.task_definition.arn),
                runs = %revision_name(&service.task_definition),
                "the service moved while this push waited for its lock; starting over from what it runs now"
            );
            if target.pair.is_some() {
                // The idle side of a pair moved under the push: the next delivery resolves
                // the pair again.
                let e = PortError::new(
                    "deploy",
                    PortErrorKind::Transient,
                    format!(
                        "{key}, the idle side of its pair, moved while this push waited for its lock"
                    ),
                );
                return self.failed(&key, push, None, e).await;
            }
            match self
                .ports
                .ecs
                .describe_task_definition(&service.task_definition)
                .await
            {
                Ok(task_definition) => target = Target::plain(service, task_definition),
                Err(e) => return self.failed(&key, push, None, e).await,
            }
        }
        let e = PortError::new(
            "deploy",
            PortErrorKind::Transient,
            format!(
                "{key} moved to another revision {MAX_ROUNDS} times while this push waited for its lock"
            ),
        );
        self.failed(&key, push, None, e).await
    }

    /// The push against one reading of the service: its settings, containers and policy, then
    /// the decision under the lock.
    async fn push_round(
        &self,
        push: &Push,
        target: &Target,
        gate: Gate<'_>,
        ahead: &TakenAhead,
    ) -> Round {
        let key = &target.service.key;
        let settings = match DeploySettings::from_tags(target.policy_tags(), self.config.guard) {
            Ok(Some(settings)) => settings,
            Ok(None) => {
                return Round::Done(report(key, Action::Ignored, "the service has not opted in"));
            }
            Err(problems) => {
                return Round::Done(self.invalid(key, &push.event_id, &problems).await);
            }
        };
        let promoted = match self.promotion(key, push, target).await {
            Ok(promoted) => promoted,
            Err(report) => return Round::Done(report),
        };
        // Rehearsed by the service's own deckhand:dry-run, else by the stack's.
        let rehearsed = settings.dry_run.unwrap_or(self.config.dry_run);
        let calendar =
            match calendar_of(target.policy_tags(), self.config.change_calendar.as_deref()) {
                Ok(calendar) => calendar,
                Err(problem) => {
                    return Round::Done(self.invalid(key, &push.event_id, &[problem]).await);
                }
            };
        let target = &Target {
            rehearsed,
            calendar,
            ..target.clone()
        };
        let changes = match choose_containers(
            push,
            &target.task_definition,
            settings.containers.as_deref(),
        ) {
            Ok(changes) if changes.is_empty() => {
                let reason = format!(
                    "no container named in deckhand:containers runs an image from {}",
                    push.repository.name
                );
                return Round::Done(self.ignore(key, push, reason).await);
            }
            Ok(changes) => changes,
            Err(problem) => {
                return Round::Done(self.invalid(key, &push.event_id, &[problem]).await);
            }
        };
        let running = if settings.policy.needs_running_version() && promoted.is_none() {
            match self.running_tags(push, &changes).await {
                Ok(tags) => highest_version(tags.iter().map(String::as_str)),
                Err(e) => return Round::Done(self.failed(key, push, None, e).await),
            }
        } else {
            None
        };
        let verdict = match promoted {
            // The upstream's policy chose the digest; only `off` still holds it here.
            Some(reason) if settings.policy != DeployPolicy::Off => Verdict::Deploy(reason),
            _ => settings.policy.check(push.tag.as_deref(), running.as_ref()),
        };
        match (verdict, controller_problem(&target.service)) {
            (Verdict::Skip(reason), _) => Round::Done(self.ignore(key, push, reason).await),
            (Verdict::Deploy(_), Some(problem)) => {
                Round::Done(self.invalid(key, &push.event_id, &[problem]).await)
            }
            (Verdict::Deploy(reason), None)
                if target.service.controller == DeploymentController::CodeDeploy =>
            {
                // Which group deploys it is known before anything is registered.
                let resolved = match codedeploy_target(&self.ports, &target.service).await {
                    Ok(Ok(resolved)) => resolved,
                    Ok(Err(problem)) => {
                        return Round::Done(self.invalid(key, &push.event_id, &[problem]).await);
                    }
                    Err(e) => return Round::Done(self.failed(key, push, None, e).await),
                };
                let reason = format!("{reason}; deployed through CodeDeploy ({})", resolved.group);
                let target = Target {
                    codedeploy: Some(resolved),
                    ..target.clone()
                };
                self.deploy_locked(push, &target, &changes, reason, gate, ahead)
                    .await
            }
            (Verdict::Deploy(reason), None) => {
                self.deploy_locked(push, target, &changes, reason, gate, ahead)
                    .await
            }
        }
    }

    /// What the push is to a service given its `deckhand:promote-from`: `Ok(None)` for its deploy
    /// policy to decide, `Ok(Some(reason))` for a promotion it takes, `Err` with the report of
    /// one it does not. A promotion reaching a service that takes none leaves no record: every
    /// announcement reaches every service of the repository.
    async fn promotion(
        &self,
        key: &ServiceKey,
        push: &Push,
        target: &Target,
    ) -> Result<Option<String>, ServiceReport> {
        let upstream = match promote_from_of(target.policy_tags()) {
            Ok(upstream) => upstream,
            Err(problem) => return Err(self.invalid(key, &push.event_id, &[problem]).await),
        };
        let home = self.config.home().map(|h| h.account).unwrap_or_default();
        match promotion_verdict(upstream.as_ref(), push.promoted.as_deref(), &home) {
            PromotionVerdict::Policy => Ok(None),
            PromotionVerdict::Deploy(reason) => Ok(Some(reason)),
            PromotionVerdict::Ignore(reason) if upstream.is_none() => {
                Err(report(key, Action::Ignored, reason))
            }
            PromotionVerdict::Ignore(reason) => Err(self.ignore(key, push, reason).await),
        }
    }

    /// Tags of the images the containers run: the tag in the image reference, or the tags ECR
    /// holds for the running digest.
    pub(super) async fn running_tags(
        &self,
        push: &Push,
        changes: &[ImageChange],
    ) -> Result<Vec<String>, PortError> {
        let mut tags = Vec::new();
        for change in changes {
            if let Some(tag) = running_tag(&change.from) {
                tags.push(tag.to_owned());
            } else if let Some(digest) =
                running_digest(&change.from).and_then(|d| d.parse::<Digest>().ok())
            {
                tags.extend(self.ports.ecr.image_tags(&push.repository, &digest).await?);
            }
        }
        Ok(tags)
    }

    pub(super) async fn deploy_locked(
        &self,
        push: &Push,
        target: &Target,
        changes: &[ImageChange],
        matched: String,
        gate: Gate<'_>,
        ahead: &TakenAhead,
    ) -> Round {
        let key = &target.service.key;
        let owner = owner_token(&push.event_id);
        // The slot of ECS's task definition writes that a deploying push uses is reserved
        // beside the lock, not after it: a push that ends up not registering (a duplicate, a
        // quarantined digest) leaves one slot of the bucket unused, which costs nothing.
        let registers = !matches!(gate, Gate::Hold(_)) && !target.rehearsed;
        let reserve = async {
            if registers {
                Some(paced(&self.ports, TASK_DEFINITION_WRITES).await)
            } else {
                None
            }
        };
        // Taken ahead beside the read, or now.
        let (locked, slot) = match ahead.take(key) {
            Some(Taken {
                locked,
                waited,
                slot,
            }) => {
                let slot = match slot {
                    Some(slot) => Some(slot),
                    None => reserve.await,
                };
                (Ok((locked, waited)), slot)
            }
            None => futures::join!(
                acquire_noting_waits(&*self.ports.store, &*self.ports.clock, key, &owner),
                reserve
            ),
        };
        let (mut locked, waited) = match locked {
            Ok(locked) => locked,
            Err(e) => return Round::Done(self.failed(key, push, None, e).await),
        };
        let slot = match slot.transpose() {
            Ok(slot) => slot,
            Err(e) => {
                let running = target.task_definition.arn.as_str();
                return Round::Done(self.not_moved(push, key, running, &locked, None, e).await);
            }
        };
        // A quarantine old enough to be archived out of the state still holds.
        if locked.state.quarantine_archived && locked.state.is_quarantined(&push.digest).is_none() {
            match self
                .ports
                .store
                .archived_quarantine(key, push.digest.as_str())
                .await
            {
                Ok(None) => {}
                Ok(Some(q)) => {
                    locked.state.quarantine.insert(push.digest.to_string(), q);
                }
                Err(e) => {
                    let running = target.task_definition.arn.as_str();
                    return Round::Done(self.not_moved(push, key, running, &locked, None, e).await);
                }
            }
        }
        let mut decision = decide_push(push, changes, &locked.state, &target.task_definition);
        if target.rehearsed {
            decision = decide_dry_run_push(decision, &locked.state, push);
        }
        let moves = matches!(decision, PushDecision::Deploy)
            && !matches!(gate, Gate::Hold(_))
            && !target.rehearsed;
        let stale = target
            .read_at
            .is_none_or(|read_at| may_have_moved(&locked, waited, read_at));
        if moves && stale {
            // What the push was read against may be stale: another push or a rollback may
            // have moved the service between the read and the lock, so it is read again. (A
            // lock found free, taken from nobody and released before the read needs no second
            // read: whatever its last holder did, the read saw.)
            match self.moved_since_read(target).await {
                Ok(None) => {}
                Ok(Some(service)) => {
                    if let Err(e) = self.ports.store.release(key, &locked.owner).await {
                        warn!(error = %e, "could not give back the lock; it expires with its lease");
                    }
                    return Round::Moved(Box::new(service));
                }
                Err(e) => {
                    let running = target.task_definition.arn.as_str();
                    return Round::Done(self.not_moved(push, key, running, &locked, None, e).await);
                }
            }
        }
        // A change freeze holds what would move the service; nothing else it decides.
        let mut matched = matched;
        if moves {
            match self.freeze(push, target, &locked).await {
                FreezeVerdict::Proceed => {}
                FreezeVerdict::Lifted(why) => matched = format!("{matched}; {why}"),
                FreezeVerdict::Hold(why) => {
                    return Round::Done(
                        self.hold_for_freeze(push, target, changes, locked, why)
                            .await,
                    );
                }
            }
        }
        Round::Done(
            self.decided(
                push,
                target,
                changes,
                matched,
                gate,
                (locked, slot),
                decision,
            )
            .await,
        )
    }

    /// The service as ECS has it now, if it no longer runs the revision the push was read
    /// against (for the idle side of a pair: what it ran when the pair was read).
    async fn moved_since_read(&self, target: &Target) -> Result<Option<ServiceView>, PortError> {
        let key = &target.service.key;
        let service = self
            .ports
            .ecs
            .describe_services(std::slice::from_ref(key))
            .await?
            .into_iter()
            .find(|s| &s.key == key)
            .ok_or_else(|| {
                PortError::new(
                    "ecs:DescribeServices",
                    PortErrorKind::NotFound,
                    format!("{key} no longer exists"),
                )
            })?;
        let read = match &target.pair {
            Some(_) => &target.service.task_definition,
            None => &target.task_definition.arn,
        };
        Ok((service.task_definition != *read).then_some(service))
    }

    /// Carries out what the push decided under the lock, and gives the lock back.
    #[allow(clippy::too_many_arguments)]
    async fn decided(
        &self,
        push: &Push,
        target: &Target,
        changes: &[ImageChange],
        matched: String,
        gate: Gate<'_>,
        (locked, slot): (Locked, Option<TimeDelta>),
        decision: PushDecision,
    ) -> ServiceReport {
        let key = &target.service.key;
        let running = target.task_definition.arn.as_str();
        let mut state = locked.state.clone();
        state.adopt_baseline(running);
        if state
            .held
            .as_ref()
            .is_some_and(|h| h.push.event_id == push.event_id)
        {
            // Whatever the held push decides now, it is held no more (a busy group holds it
            // again).
            state.held = None;
        }
        if gate == Gate::Passed && wait_of(&state, push).is_some() {
            // Whatever the push decides now, its wait is over.
            end_wait(&mut state, &push.repository);
        }
        let now = self.ports.clock.now();
        let mut record = push_record(key, push, now, Action::Skipped, String::new());
        record.from = Some(running.to_owned());

        match decision {
            PushDecision::Duplicate => {
                let reason = "this event was already applied to this service";
                self.duplicate(key, &push.event_id, reason, Some(&locked))
                    .await
            }
            PushDecision::Recover { from } => {
                warn!(%from, "an earlier attempt at this push moved the service and stopped before recording it");
                let moved = Moved {
                    from,
                    to: running.to_owned(),
                    ecs_deployment_id: None,
                };
                // The running revision is the new one: the baseline is the one it came from.
                let mut state = locked.state.clone();
                state.held = None;
                if gate == Gate::Passed {
                    end_wait(&mut state, &push.repository);
                }
                self.record_deployment(push, target, changes, matched, locked, state, moved)
                    .await
            }
            PushDecision::AlreadyRunning { reason } => {
                record_push(&mut state, push);
                record.reason = reason.clone();
                if let Err(e) = self
                    .commit(key, &locked, &state, record, &push.event_id)
                    .await
                {
                    return self.failed(key, push, None, e).await;
                }
                skipped(key, push, reason)
            }
            PushDecision::Skip { reason, notify } => {
                record.reason = reason.clone();
                if let Err(e) = self
                    .commit(key, &locked, &state, record, &push.event_id)
                    .await
                {
                    return self.failed(key, push, None, e).await;
                }
                if notify {
                    self.notify(Notification::new(
                        Kind::DeploySkipped,
                        Severity::Warning,
                        key.to_string(),
                        format!("Not deploying {} to {key}: {reason}", push_name(push)),
                        now,
                        push_details(push, changes, Some(running), None),
                    ))
                    .await;
                }
                skipped(key, push, reason)
            }
            PushDecision::Deploy if matches!(gate, Gate::Hold(_)) => {
                self.hold(push, key, &locked, state, record, gate).await
            }
            PushDecision::Deploy if target.rehearsed => {
                let reason = format!("dry run: {matched}");
                let guard = DeploySettings::guard_in(&target.service.tags, self.config.guard);
                start_dry_run_deployment(&mut state, push, changes, running, now, guard);
                record.action = Action::WouldDeploy;
                record.reason = reason.clone();
                record.dry_run = true;
                if let Err(e) = self
                    .commit(key, &locked, &state, record, &push.event_id)
                    .await
                {
                    return self.failed(key, push, None, e).await;
                }
                self.notify(Notification::new(
                    Kind::DeploySkipped,
                    Severity::Info,
                    key.to_string(),
                    format!("Dry run: would deploy {} to {key}", push_name(push)),
                    now,
                    push_details(push, changes, Some(running), None),
                ))
                .await;
                let mut r = report(key, Action::WouldDeploy, reason);
                r.from = Some(revision_name(running).to_owned());
                r.digest = Some(push.digest.to_string());
                r
            }
            PushDecision::Deploy => {
                self.deploy(push, target, changes, matched, (locked, slot), state)
                    .await
            }
        }
    }
}
