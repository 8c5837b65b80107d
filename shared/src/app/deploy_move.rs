//! The move of one service onto a new revision, under its lock: the revision registered (or
//! the one an earlier attempt registered), the lease renewed, the service updated, and the
//! deployment recorded with its history in one commit.

use tracing::{error, info, warn};

use super::{DeployFunction, Moved, Target, push_details, push_name, push_record};
use crate::app::codedeploy::deploy_through_codedeploy;
use crate::app::locking::{owner_cause, renew_before_acting};
use crate::app::paced;
use crate::app::pins::pin_running;
use crate::domain::deploy::{Push, reusable_revision, start_deployment};
use crate::domain::fleet::ImageChange;
use crate::domain::keep::images_of;
use crate::domain::pace::TASK_DEFINITION_WRITES;
use crate::domain::pair_move::{PairMove, PairPhase};
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::state::{Registered, ServiceState};
use crate::history::ProcessedMark;
use crate::notification::{Kind, Notification, Severity};
use crate::ports::{Locked, PortError, PortErrorKind};
use crate::report::{Action, ServiceReport};
use chrono::TimeDelta;

impl DeployFunction {
    pub(super) async fn deploy(
        &self,
        push: &Push,
        target: &Target,
        changes: &[ImageChange],
        matched: String,
        (mut locked, slot): (Locked, Option<TimeDelta>),
        mut state: ServiceState,
    ) -> ServiceReport {
        let key = &target.service.key;
        let from = target.task_definition.arn.as_str();
        // What it leaves is what a rollback goes back to: if it names tags, the digests it ran
        // are learned now, while ECS still runs it. A side of a pair goes back by its traffic.
        if target.pair.is_none() {
            let moved = push.tag.as_deref().map(|tag| (&push.repository, tag));
            let containers = &target.task_definition.containers;
            pin_running(
                &self.ports,
                &target.service,
                containers,
                &mut state,
                true,
                moved,
            )
            .await;
        }
        let to = match self
            .revision_for(push, target, changes, &mut locked, slot)
            .await
        {
            Ok(to) => to,
            Err(e) => return self.not_moved(push, key, from, &locked, None, e).await,
        };
        // The lease renewed first: a lock taken over while the revision was registered stops
        // the move here, and the other invocation decides.
        let store = &*self.ports.store;
        let moved = match renew_before_acting(store, &*self.ports.clock, key, &mut locked).await {
            Ok(()) => match (&target.pair, &target.codedeploy) {
                // The idle side of a pair runs as many tasks as the live side before any
                // traffic reaches it.
                (Some(p), _) => {
                    // What it had before its own last move failed, if that held it at 0.
                    let saved = state
                        .pair
                        .as_ref()
                        .filter(|m| &m.to == key && m.phase == PairPhase::Failed)
                        .and_then(|m| m.saved_capacity(key));
                    let (live, count) = (&p.pair.live.service, p.live_count);
                    match crate::app::pair_scale::capacity_to_take_over(
                        &self.ports,
                        (key, saved),
                        live,
                        count,
                    )
                    .await
                    {
                        Ok(()) => {
                            let ecs = &self.ports.ecs;
                            ecs.update_service_scaled(key, &to, count).await
                        }
                        Err(e) => Err(e),
                    }
                }
                // CodeDeploy's deployment id stands for ECS's: its events name it.
                (None, Some(cd)) => {
                    let why = format!("push of {}", push_name(push));
                    deploy_through_codedeploy(&self.ports, cd, &to, &why)
                        .await
                        .map(Some)
                }
                (None, None) => self.ports.ecs.update_service(key, &to).await,
            },
            Err(e) => Err(e),
        };
        let ecs_deployment_id = match moved {
            Ok(id) => id,
            Err(e) => {
                // Keep the revision for the retry of this push, so it registers no other.
                let registered = Registered {
                    event_id: push.event_id.clone(),
                    from: from.to_owned(),
                    task_definition: to,
                };
                if target.codedeploy.is_some() && e.kind == PortErrorKind::Conflict {
                    // The group runs another deployment: held until it is free.
                    // On the heap: a rare path, kept out of every push's future.
                    return Box::pin(
                        self.hold_for_group(push, target, changes, &locked, state, registered, &e),
                    )
                    .await;
                }
                return self
                    .not_moved(push, key, from, &locked, Some(registered), e)
                    .await;
            }
        };
        let moved = Moved {
            from: from.to_owned(),
            to,
            ecs_deployment_id,
        };
        self.record_deployment(push, target, changes, matched, locked, state, moved)
            .await
    }

    /// The revision to move the service to: the one an earlier attempt at this push
    /// registered, if it got that far, else a new one.
    pub(super) async fn revision_for(
        &self,
        push: &Push,
        target: &Target,
        changes: &[ImageChange],
        locked: &mut Locked,
        slot: Option<TimeDelta>,
    ) -> Result<String, PortError> {
        let base = &target.task_definition;
        if let Some(arn) = reusable_revision(&locked.state, push, &base.arn) {
            info!(%arn, "using the revision an earlier attempt registered");
            return Ok(arn.to_owned());
        }
        let interrupted_here = locked
            .interrupted
            .as_deref()
            .is_some_and(|holder| owner_cause(holder) == push.event_id);
        if interrupted_here
            && let Some(arn) = self.ports.ecs.registered_for(base, &push.event_id).await?
        {
            info!(%arn, "using the revision an interrupted attempt registered");
            return Ok(arn);
        }
        // At the pace ECS allows the account, shared with every other invocation (the slot was
        // mostly reserved beside the lock); a wait spent holding the lock is given back to the
        // lease.
        let waited = match slot {
            Some(waited) => waited,
            None => paced(&self.ports, TASK_DEFINITION_WRITES).await?,
        };
        if waited > TimeDelta::zero() {
            renew_before_acting(
                &*self.ports.store,
                &*self.ports.clock,
                &target.service.key,
                locked,
            )
            .await?;
        }
        self.ports
            .ecs
            .register_revision(base, changes, &push.event_id)
            .await
    }

    /// The service was not moved: give the lock back with the failure on record (and the
    /// revision registered for the retry, if there is one); a retry redoes the rest.
    pub(super) async fn not_moved(
        &self,
        push: &Push,
        key: &ServiceKey,
        from: &str,
        locked: &Locked,
        registered: Option<Registered>,
        e: PortError,
    ) -> ServiceReport {
        let now = self.ports.clock.now();
        let mut record = push_record(key, push, now, Action::Error, e.to_string());
        record.from = Some(from.to_owned());
        record.to = registered.as_ref().map(|r| r.task_definition.clone());
        let state = ServiceState {
            registered: registered.or_else(|| locked.state.registered.clone()),
            ..locked.state.clone()
        };
        if let Err(commit_error) = self
            .ports
            .store
            .commit(key, locked, &state, &[record], None)
            .await
        {
            warn!(error = %commit_error, "could not record the failure");
        }
        self.failed(key, push, Some(from), e).await
    }

    /// Records a deployment that moved the service: state, history and processed mark in one
    /// commit, with `deploy.started` beside it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn record_deployment(
        &self,
        push: &Push,
        target: &Target,
        changes: &[ImageChange],
        matched: String,
        locked: Locked,
        mut state: ServiceState,
        moved: Moved,
    ) -> ServiceReport {
        let key = &target.service.key;
        let Moved {
            from,
            to,
            ecs_deployment_id,
        } = moved;
        let from = from.as_str();
        let now = self.ports.clock.now();
        let announced = locked.state.announced.as_deref() == Some(push.event_id.as_str());
        state.announced = None;
        start_deployment(
            &mut state,
            push,
            changes,
            from,
            &to,
            ecs_deployment_id.clone(),
            now,
        );
        // The idle side of a pair was given the live side's count.
        let asleep = target
            .pair
            .as_ref()
            .map_or(target.service.desired_count, |p| p.live_count)
            == 0;
        let from_images = images_of(&target.task_definition.containers, state.pinned.get(from));
        if let Some(deployment) = state.deployment.as_mut() {
            deployment.at_zero_tasks = asleep;
            deployment.from_images = from_images;
        }
        state.pair = target.pair.as_ref().map(|p| PairMove::start(&p.pair));
        // A sleeping service gets the revision without being woken: its count stays as the
        // scheduler left it, and the wake-up runs the new revision.
        let matched = match &state.sleep {
            Some(_) if asleep => format!("{matched}; the service sleeps and runs it when woken"),
            _ if asleep => format!("{matched}; the service runs no tasks"),
            _ => matched,
        };
        let matched = match &state.pair {
            Some(m) => format!(
                "{matched}; {key} is the idle side of its pair with {}: traffic moves to it ({}) when ECS completes this deployment",
                m.from,
                steps_words(&m.steps)
            ),
            None => matched,
        };
        let mut record = push_record(key, push, now, Action::Deployed, matched.clone());
        record.from = Some(from.to_owned());
        record.to = Some(to.clone());
        record.ecs_deployment_id = ecs_deployment_id.clone();
        // The index follows the service onto its new revision, in the same write.
        let index = self.index_deployed(key, &target.task_definition, changes, &to);
        let mark = ProcessedMark {
            event_id: push.event_id.clone(),
            service: key.clone(),
            at: record.at,
        };
        let started = Notification::new(
            Kind::DeployStarted,
            Severity::Info,
            key.to_string(),
            format!(
                "Deploying {} to {key}: {} -> {}",
                push_name(push),
                revision_name(from),
                revision_name(&to)
            ),
            now,
            push_details(push, changes, Some(from), Some(&to)),
        );
        // Announced beside the commit, not after it: ECS already runs the new revision.
        let announce = async { !announced && self.notify(started).await };
        let records = [record];
        let (committed, published) = futures::join!(
            self.ports
                .store
                .commit_indexed(key, &locked, &state, &records, Some(&mark), &index),
            announce
        );
        if let Err(e) = committed {
            // ECS has the new revision; the record of it is not written. A redelivery finds
            // the service on the revision registered for this push and records it; it
            // announces it unless the lock's release noted the announcement made here.
            error!(error = %e, to = %to, "deployed but could not record the deployment");
            if published
                && let Err(release) = self
                    .ports
                    .store
                    .release_announced(key, &locked.owner, &push.event_id)
                    .await
            {
                warn!(error = %release, "could not note the announcement; the next delivery announces it again");
            }
            return self.failed(key, push, Some(from), e).await;
        }
        info!(from = %revision_name(from), to = %revision_name(&to), "deployed");
        ServiceReport {
            service: key.to_string(),
            action: Action::Deployed,
            from: Some(revision_name(from).to_owned()),
            to: Some(revision_name(&to).to_owned()),
            digest: Some(push.digest.to_string()),
            reason: matched,
        }
    }
}

/// `10% then 50% then 100%`, or `all at once`.
pub(super) fn steps_words(steps: &[u8]) -> String {
    match steps {
        [100] => "all at once".into(),
        steps => steps
            .iter()
            .map(|s| format!("{s}%"))
            .collect::<Vec<_>>()
            .join(" then "),
    }
}
