//! The reconcile's look at known-good revisions, for every service with `deckhand:deploy`: a
//! deployment (deckhand's or another's) that ran its whole guard window without an alarm is
//! settled as known-good and recorded, and a revision that no deployment deckhand knows of
//! accounts for (an ECS event that never arrived) is followed from now, so that it too must run
//! a whole guard window before a rollback may go to it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use tracing::{Instrument, info, info_span, warn};

use super::SchedulerFunction;
use crate::app::locking::{acquire, owner_token};
use crate::domain::fleet::ServiceView;
use crate::domain::known_good::{KnownGoodCheck, check_known_good, end_rollout};
use crate::domain::promotion::announcement;
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::settings::DeploySettings;
use crate::domain::state::ServiceState;
use crate::history::HistoryRecord;
use crate::report::{Action, ServiceReport};

/// What a service's check comes to, in words.
fn words(check: &KnownGoodCheck, guard: chrono::TimeDelta) -> Option<(Action, String)> {
    match check {
        KnownGoodCheck::Holds => None,
        // What is said is what announcing did (`announce`).
        KnownGoodCheck::Unannounced => Some((Action::Recorded, String::new())),
        KnownGoodCheck::Proven { before, after } => Some((
            Action::KnownGood,
            format!(
                "{} ran its whole guard window without an alarm: it is the known-good revision{}",
                revision_name(after),
                before
                    .as_deref()
                    .map(|b| format!(" (was {})", revision_name(b)))
                    .unwrap_or_default()
            ),
        )),
        KnownGoodCheck::RolloutEnded {
            revision,
            guard_until,
            early: true,
        } => Some((
            Action::Recorded,
            format!(
                "the rollout of {}, which ECS completed early, has settled (every desired task runs it, no other deployment): guarded until {}",
                revision_name(revision),
                guard_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        )),
        KnownGoodCheck::RolloutEnded {
            revision,
            guard_until,
            early: false,
        } => Some((
            Action::Recorded,
            format!(
                "ECS reports the rollout of {} completed, but no COMPLETED event reached deckhand: it completes now and is guarded until {}",
                revision_name(revision),
                guard_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        )),
        KnownGoodCheck::Unaccounted(seen) => Some((
            Action::Recorded,
            format!(
                "the service runs {}, of which deckhand saw no ECS deployment event; followed from now: it becomes known-good once it runs {} without an alarm",
                revision_name(&seen.task_definition),
                crate::domain::duration::format_duration(guard)
            ),
        )),
    }
}

impl SchedulerFunction {
    /// Checks each service's known-good revision at `at`; in a plan, says what would change and
    /// writes nothing. Only the services that change are reported.
    pub(super) async fn check_known_good(
        &self,
        services: &[ServiceView],
        states: &BTreeMap<ServiceKey, ServiceState>,
        at: DateTime<Utc>,
        plan: bool,
        cause: &str,
    ) -> Vec<ServiceReport> {
        let due: Vec<(&ServiceView, chrono::TimeDelta, KnownGoodCheck)> = services
            .iter()
            .filter_map(|s| {
                let guard = DeploySettings::guard_in(&s.tags, self.config.guard);
                let state = states.get(&s.key).cloned().unwrap_or_default();
                let check = check_known_good(&state, s, at, guard);
                // A stack in dry run announces nothing: what it settles waits.
                let due = match check {
                    KnownGoodCheck::Holds => false,
                    KnownGoodCheck::Unannounced => !self.config.dry_run,
                    _ => true,
                };
                due.then_some((s, guard, check))
            })
            .collect();
        if plan {
            return due
                .into_iter()
                .filter_map(|(s, guard, check)| {
                    let (action, reason) = words(&check, guard)?;
                    Some(ServiceReport::new(&s.key, action, reason))
                })
                .collect();
        }
        stream::iter(due)
            .map(|(service, guard, _)| {
                let span = info_span!("known-good", service = %service.key);
                self.settle_known_good(service, guard, at, cause)
                    .instrument(span)
            })
            .buffer_unordered(self.config.concurrency)
            .filter_map(|r| async { r })
            .collect()
            .await
    }

    /// Under the service's lock, decides again on the state as it is now and records it.
    async fn settle_known_good(
        &self,
        service: &ServiceView,
        guard: chrono::TimeDelta,
        at: DateTime<Utc>,
        cause: &str,
    ) -> Option<ServiceReport> {
        let key = &service.key;
        let owner = owner_token(&format!("{cause}#known-good"));
        let locked = match acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await {
            Ok(locked) => locked,
            Err(e) => return Some(self.failed(key, cause, e).await),
        };
        let check = check_known_good(&locked.state, service, at, guard);
        let mut state = locked.state.clone();
        let Some((action, reason)) = words(&check, guard) else {
            if let Err(e) = self.ports.store.release(key, &locked.owner).await {
                warn!(error = %e, "could not give back the lock; it expires with its lease");
            }
            return None;
        };
        let mut record =
            HistoryRecord::new(key, self.ports.clock.now(), action, reason.clone(), cause);
        match check {
            KnownGoodCheck::Holds | KnownGoodCheck::Unannounced => {}
            KnownGoodCheck::Proven { before, .. } => {
                state.settle(at);
                record.from = before;
                record.to = state.known_good.clone();
            }
            KnownGoodCheck::RolloutEnded {
                revision,
                guard_until,
                ..
            } => {
                record.to = Some(revision.clone());
                end_rollout(&mut state, &revision, at, guard_until);
            }
            KnownGoodCheck::Unaccounted(seen) => {
                record.to = Some(seen.task_definition.clone());
                crate::domain::known_good::apply_seen(&mut state, seen, at);
            }
        }
        self.pin_if_needed(service, &mut state).await;
        if let Some(announced) = self.announce(service, &mut state).await {
            record.reason = [record.reason.as_str(), announced.as_str()]
                .into_iter()
                .filter(|r| !r.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
        }
        let reason = record.reason.clone();
        if let Err(e) = self
            .ports
            .store
            .commit(key, &locked, &state, &[record], None)
            .await
        {
            return Some(self.failed(key, cause, e).await);
        }
        let mut report = ServiceReport::new(key, action, reason);
        report.to = state
            .known_good
            .as_deref()
            .filter(|_| action == Action::KnownGood)
            .map(|k| revision_name(k).to_owned());
        Some(report)
    }

    /// Announces the revision that proved itself (`Deckhand Known-Good`), so that the stacks
    /// promoted from the service deploy its digests; says what came of it. Announced or never
    /// to be (no digest to announce), it is cleared; a bus that refused keeps it for the next
    /// reconcile. A stack in dry run announces nothing.
    async fn announce(&self, service: &ServiceView, state: &mut ServiceState) -> Option<String> {
        let proven = state.unannounced.clone()?;
        if self.config.dry_run {
            return None;
        }
        let name = revision_name(&proven.revision).to_owned();
        let containers = match self
            .ports
            .ecs
            .describe_task_definition(&proven.revision)
            .await
        {
            Ok(td) => td.containers,
            Err(e) => {
                warn!(error = %e, "could not read the revision to announce");
                return Some(format!(
                    "{name} not announced yet ({e}); the next reconcile tries again"
                ));
            }
        };
        let pinned = state.pinned.get(&proven.revision).map(|p| &p.images);
        let announcement = match announcement(&service.arn, &proven, &containers, pinned) {
            Ok(announcement) => announcement,
            Err(why) => {
                state.unannounced = None;
                return Some(format!("{name} not announced: {why}"));
            }
        };
        match self.ports.announcer.known_good(&announcement).await {
            Ok(()) => {
                state.unannounced = None;
                info!(revision = %name, "announced known-good");
                Some(format!(
                    "{name} announced as known-good (Deckhand Known-Good), for the services promoted from this one"
                ))
            }
            Err(e) => {
                warn!(error = %e, "could not announce the known-good revision");
                Some(format!(
                    "{name} not announced yet ({e}); the next reconcile tries again"
                ))
            }
        }
    }

    /// A revision the service runs that became a rollback target (known-good, or followed to
    /// become it) and names image tags: the digests ECS resolved for it are learned while it
    /// runs (`domain::pin`). Only a revision someone else registered, without pins on record,
    /// is read.
    async fn pin_if_needed(&self, service: &ServiceView, state: &mut ServiceState) {
        let running = service.task_definition.as_str();
        let targets = state.rollback_targets();
        let learned = state
            .pinned
            .get(running)
            .is_some_and(|p| p.by != crate::domain::state::PinSource::Unknown);
        // A revision deckhand registered pins what it deployed; another's may name tags.
        let registered_by_deckhand = state
            .deployment
            .as_ref()
            .is_some_and(|d| !d.dry_run && d.to == running);
        if !targets.contains(running) || learned || registered_by_deckhand {
            return;
        }
        match self.ports.ecs.describe_task_definition(running).await {
            Ok(td) => {
                crate::app::pins::pin_running(
                    &self.ports,
                    service,
                    &td.containers,
                    state,
                    false,
                    None,
                )
                .await;
            }
            Err(e) => warn!(error = %e, "could not read the revision to learn its digests"),
        }
    }
}
