//! One service rolled back under its lock: the decision on the state the lock returned, the
//! target made ready (pinned, restored, never quarantined), the fastest way its deployment
//! controller allows, and the record and `rollback.started`.

use std::collections::BTreeSet;

use tracing::{error, info, warn};

use super::{
    Blocked, Case, Guarded, Prepared, RollbackFunction, Rolled, details, pinned, with_route,
};
use crate::app::locking::{acquire, owner_token};
use crate::domain::codedeploy::running_revision;
use crate::domain::rollback::{Alarm, RollbackDecision, apply_rollback, decide_rollback, excused};
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::state::ServiceState;
use crate::domain::strategy::RollbackRoute;
use crate::history::HistoryRecord;
use crate::notification::{Kind, Notification, Severity};
use crate::report::{Action, ServiceReport};

impl RollbackFunction {
    pub(super) async fn roll_back(
        &self,
        alarm: &Alarm,
        mut guarded: Guarded,
        done: &BTreeSet<ServiceKey>,
    ) -> ServiceReport {
        let key = &guarded.service.key;
        let now = self.ports.clock.now();
        if done.contains(key) {
            let reason = "this alarm event was already handled for this service";
            let record = HistoryRecord::new(key, now, Action::Duplicate, reason, &alarm.event_id);
            if let Err(e) = self.ports.store.record(&[record], None).await {
                warn!(error = %e, "could not record a repeated delivery");
            }
            return ServiceReport::new(key, Action::Duplicate, reason);
        }
        // A side of a pair: the traffic flips back, under the lock of the side whose state
        // holds the pair's move; no ECS deployment.
        // Rehearsed by the service's own deckhand:dry-run, else by the stack's.
        let dry_run = guarded.settings.dry_run.unwrap_or(self.config.dry_run);
        let taken = guarded.locked.take();
        let holder = self.pair_holder(key, &guarded.service.tags).await;
        if let (Some(locked), Ok(Some(_)) | Err(_)) = (&taken, &holder) {
            self.give_back(key, locked).await;
        }
        match holder {
            Ok(None) => {}
            Ok(Some(holder)) => {
                let (enabled, why) = (guarded.settings.enabled, guarded.guard.describe());
                return self
                    .roll_back_pair(alarm, &holder, (enabled, dry_run), why)
                    .await;
            }
            Err(e) => return self.failed(key, alarm, e).await,
        }
        let locked = match taken {
            Some(locked) => locked,
            None => {
                let owner = owner_token(&alarm.event_id);
                match acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await {
                    Ok(locked) => locked,
                    Err(e) => return self.failed(key, alarm, e).await,
                }
            }
        };
        let deployed = locked.state.deployment.as_ref().map(|d| d.to.as_str());
        let running = running_revision(&guarded.service, deployed);
        let enabled = guarded.settings.enabled;
        let mut decision = decide_rollback(alarm, enabled, &locked.state, running, None, dry_run);
        // Never onto a quarantined digest, never a tag resolved again: look at the target.
        let mut prepared = None;
        if let RollbackDecision::RollBack { from, to, .. } = &decision {
            let ready =
                self.prepare_target(key, (from, to), &locked.state, &alarm.event_id, dry_run);
            match ready.await {
                Ok(Prepared::Ready {
                    quarantined: Some(digest),
                    ..
                }) => {
                    decision = decide_rollback(
                        alarm,
                        enabled,
                        &locked.state,
                        running,
                        Some(&digest),
                        dry_run,
                    );
                }
                Ok(Prepared::Unknown(why)) => decision = RollbackDecision::Skip(why),
                Ok(ready) => prepared = Some(ready),
                Err(e) => return self.failed_under_lock(key, alarm, &locked, e).await,
            }
        }
        // The alarm is evidence against what runs, unless deckhand itself caused it: the
        // deployment proving that revision, whoever made it, never becomes known-good.
        let mut state = locked.state.clone();
        // (When the service already runs the rollback target, the alarm was about the
        // deployment it left, not about what runs.)
        let finishing = matches!(decision, RollbackDecision::Finish { .. });
        let marked = (excused(alarm, &state).is_none() && !finishing)
            .then(|| state.mark_alarmed(&alarm.name, alarm.at, running))
            .flatten();
        let with_mark = |reason: String| match &marked {
            Some(revision) => format!(
                "{reason}; {revision} will not become known-good: the alarm fired inside its guard window"
            ),
            None => reason,
        };
        let case = Case {
            key,
            alarm,
            locked: &locked,
            guard: guarded.guard.describe(),
            dry_run,
        };
        match decision {
            RollbackDecision::Skip(reason) => self.skip(&case, &state, with_mark(reason)).await,
            RollbackDecision::RollBack { from, to, reason }
            | RollbackDecision::Finish { from, to, reason }
                if dry_run =>
            {
                let now = self.ports.clock.now();
                apply_rollback(&mut state, (&from, &to), &alarm.name, now, true);
                let reason = with_mark(format!("dry run: {reason}"));
                self.skip_with(&case, &state, reason, Action::WouldRollBack, (&from, &to))
                    .await
            }
            RollbackDecision::Finish { from, to, reason } => {
                warn!(to = %revision_name(&to), "the service already runs the rollback target; recording the rollback");
                self.record_rollback(&case, state, (&from, &to), with_mark(reason), None)
                    .await
            }
            RollbackDecision::RollBack { from, to, reason } => {
                let back_to = state.deployment.as_ref().map(|d| d.from.as_str());
                let back_to_target = back_to == Some(to.as_str());
                let (reason, to, images) = pinned(&mut state, prepared, reason, to);
                let route = match self
                    .roll_back_service(
                        &guarded.service,
                        (&from, &to),
                        back_to_target,
                        &locked,
                        images.as_deref(),
                    )
                    .await
                {
                    Ok(Rolled::Back(route)) => route,
                    Ok(Rolled::Restoring {
                        archived,
                        activating,
                    }) => {
                        let pending = (from.as_str(), to.as_str(), with_mark(reason));
                        return self
                            .restoring(&case, state, pending, &archived, &activating)
                            .await;
                    }
                    Ok(Rolled::Unpullable(why)) => {
                        let reason = with_mark(format!("{reason}; not rolled back: {why}"));
                        return self.skip(&case, &state, reason).await;
                    }
                    Ok(Rolled::Blocked {
                        deployment_id,
                        reason: why,
                        retry,
                    }) => {
                        let reason = with_mark(format!("{reason}; not rolled back: {why}"));
                        let blocked = Blocked {
                            deployment_id,
                            retry,
                        };
                        return self
                            .blocked(&case, state, reason, (&from, &to), blocked)
                            .await;
                    }
                    Err(e) => return self.failed_under_lock(key, alarm, &locked, e).await,
                };
                let reason = match route.words(&to) {
                    Some(words) => format!("{reason}; {words}"),
                    None => reason,
                };
                self.record_rollback(&case, state, (&from, &to), reason, Some(&route))
                    .await
            }
        }
    }

    pub(super) async fn record_rollback(
        &self,
        case: &Case<'_>,
        mut state: ServiceState,
        (from, to): (&str, &str),
        reason: String,
        route: Option<&RollbackRoute>,
    ) -> ServiceReport {
        let Case {
            key,
            alarm,
            locked,
            guard,
            ..
        } = *case;
        let now = self.ports.clock.now();
        let announced = locked.state.announced.as_deref() == Some(alarm.event_id.as_str());
        state.announced = None;
        let digest = apply_rollback(&mut state, (from, to), &alarm.name, now, false);
        state.rollback_waits_for = None;
        let mut record = self.record(key, alarm, now, Action::RolledBack, &reason, (from, to));
        record.digest = digest.as_ref().map(ToString::to_string);
        let digest_text = digest.as_ref().map_or("", |d| d.short());
        let started = Notification::new(
            Kind::RollbackStarted,
            Severity::Warning,
            key.to_string(),
            format!(
                "Rolling back {key} from {} to {} after alarm {}; digest {digest_text} is quarantined",
                revision_name(from),
                revision_name(to),
                alarm.name
            ),
            now,
            with_route(
                details(
                    alarm,
                    (from, to),
                    digest.as_ref().map(ToString::to_string),
                    &reason,
                    guard,
                ),
                route,
            ),
        );
        // Announced beside the commit, not after it: ECS or the listener already changed.
        let announce = async { !announced && self.notify(started).await };
        let (committed, published) =
            futures::join!(self.commit(key, alarm, locked, &state, record), announce);
        if let Err(e) = committed {
            // ECS already runs the target; a retry finds the service off deckhand's deployment
            // and finishes the record, announcing it unless the lock's release noted the
            // announcement made here.
            error!(error = %e, "rolled back but could not record it");
            if published
                && let Err(release) = self
                    .ports
                    .store
                    .release_announced(key, &locked.owner, &alarm.event_id)
                    .await
            {
                warn!(error = %release, "could not note the announcement; the next delivery announces it again");
            }
            return self.failed(key, alarm, e).await;
        }
        info!(from = %revision_name(from), to = %revision_name(to), "rolled back");
        let mut report = ServiceReport::new(key, Action::RolledBack, reason);
        report.from = Some(revision_name(from).to_owned());
        report.to = Some(revision_name(to).to_owned());
        report.digest = digest.map(|d| d.to_string());
        report
    }
}
