//! One service acted on under its lock: the decision taken again on what the lock returned,
//! the saved capacity on record before ECS is touched, then the scalable target, ECS, the
//! state, the history and the notification; a tag problem or a failure reported.

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::{error, info, warn};

use super::{Job, Mode, SchedulerFunction, prepared, rfc3339};
use crate::app::locking::{acquire, owner_token, renew_before_acting};
use crate::domain::service::ServiceKey;
use crate::domain::settings::TagProblem;
use crate::domain::sleep::{Observed, ScaleDecision, decide_scale, sleep_record, task_hours_saved};
use crate::domain::state::{Capacity, ServiceState, Sleep};
use crate::history::{HistoryRecord, ScaleRecord};
use crate::notification::{Kind, Notification, Severity};
use crate::ports::{Locked, PortError};
use crate::report::{Action, ServiceReport};

impl SchedulerFunction {
    /// Decides again under the service's lock (the state may have moved since it was read)
    /// and applies the decision: state on record before ECS is touched, then ECS and
    /// Application Auto Scaling, then the state, the history and the notification.
    pub(super) async fn act(&self, job: Job<'_>, mode: Mode) -> ServiceReport {
        let key = job.key;
        let owner = owner_token(job.cause);
        // Taken with the pending record, the lock guards the state the batch read: the
        // decision is made on that (the record it saved is this invocation's, not one left
        // half-way by another).
        let (locked, decided_on) = match self.lock_saving_pending(&job, mode, &owner).await {
            Some(locked) => (Ok(locked), job.read.cloned()),
            None => (
                acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await,
                None,
            ),
        };
        let mut locked = match locked {
            Ok(locked) => locked,
            Err(e) => return self.failed(key, job.cause, e).await,
        };
        let operator = job.set_override.is_some();
        let mut state = prepared(
            decided_on.unwrap_or_else(|| locked.state.clone()),
            &job,
            mode,
        );
        let decision = decide_scale(job.settings, &job.observed, &state, job.at, mode.dry_run);
        let now = self.ports.clock.now();
        let mut record = HistoryRecord::new(key, now, Action::Unchanged, "", job.cause);
        record.dry_run = mode.dry_run;
        let notification = match decision {
            ScaleDecision::Sleep {
                reason,
                asleep_count,
            } => {
                // Finishing an interrupted sleep keeps the values saved before it began.
                let saved = match state.sleep.clone().filter(|s| s.pending) {
                    Some(saved) => saved,
                    None => {
                        sleep_record(&job.observed, asleep_count, job.at, mode.dry_run, job.cause)
                    }
                };
                if !mode.dry_run
                    && let Err(e) = self
                        .put_to_sleep(key, &mut locked, &mut state, &saved, &job.observed)
                        .await
                {
                    return self
                        .failed_under_lock(key, &locked, &state, job.cause, e)
                        .await;
                }
                if !mode.dry_run {
                    state.interrupt_by_sleep(job.at);
                }
                state.sleep = Some(Sleep {
                    pending: false,
                    ..saved.clone()
                });
                state.left_alone_until = None;
                record.action = if mode.dry_run {
                    Action::WouldSleep
                } else {
                    Action::Asleep
                };
                record.reason = format!("{reason}; {}", sleep_words(&saved));
                record.scale = Some(scale_record(&saved, None, None));
                let (kind, summary) = if mode.dry_run {
                    (
                        Kind::ScaleSkipped,
                        format!("Dry run: would put {key} to sleep: {}", record.reason),
                    )
                } else {
                    (
                        Kind::ScaleAsleep,
                        format!("Put {key} to sleep: {}", record.reason),
                    )
                };
                Some((kind, Severity::Info, summary))
            }
            ScaleDecision::Wake { reason, saved } => {
                if !mode.dry_run
                    && let Err(e) = self.wake(key, &mut locked, &mut state, &saved).await
                {
                    return self
                        .failed_under_lock(key, &locked, &state, job.cause, e)
                        .await;
                }
                state.sleep = None;
                state.left_alone_until = None;
                let guarded = if mode.dry_run {
                    None
                } else {
                    state.mark_woken(now, job.guard)
                };
                let hours = task_hours_saved(&saved, job.at);
                record.action = if mode.dry_run {
                    Action::WouldWake
                } else {
                    Action::Awake
                };
                record.reason = format!("{reason}; {}", wake_words(&saved, hours));
                if let Some((revision, until)) = guarded {
                    record.reason = format!(
                        "{}; the deployment of {revision}, done while it slept, is guarded until {}",
                        record.reason,
                        rfc3339(until)
                    );
                }
                record.scale = Some(scale_record(&saved, Some(hours), None));
                let (kind, summary) = if mode.dry_run {
                    (
                        Kind::ScaleSkipped,
                        format!("Dry run: would wake {key}: {}", record.reason),
                    )
                } else {
                    (Kind::ScaleAwake, format!("Woke {key}: {}", record.reason))
                };
                Some((kind, Severity::Info, summary))
            }
            ScaleDecision::HandScaled {
                reason,
                saved,
                until,
            } => {
                state.sleep = None;
                state.left_alone_until = until;
                record.action = Action::Skipped;
                record.reason = format!(
                    "{reason}; the saved record is closed ({})",
                    saved_words(&saved)
                );
                record.scale = Some(scale_record(&saved, None, until));
                Some((
                    Kind::ScaleSkipped,
                    Severity::Warning,
                    format!("{key} was scaled by hand while asleep: {}", record.reason),
                ))
            }
            ScaleDecision::Postpone { reason } => {
                record.action = Action::Skipped;
                record.reason = reason.clone();
                Some((
                    Kind::ScaleSkipped,
                    Severity::Info,
                    format!("Not putting {key} to sleep yet: {reason}"),
                ))
            }
            ScaleDecision::Unchanged { reason } => {
                record.reason = reason;
                None
            }
        };
        // A reconcile that changed nothing leaves no history; an operator's request always does.
        let records = if record.action == Action::Unchanged && !operator {
            Vec::new()
        } else {
            if let Some(o) = state.operator_override.as_ref().filter(|_| operator) {
                let scale = record.scale.get_or_insert_with(|| ScaleRecord {
                    desired_count: job.observed.desired_count,
                    min_capacity: job.observed.scalable.map(|c| c.min),
                    max_capacity: job.observed.scalable.map(|c| c.max),
                    asleep_count: job.settings.map_or(0, |s| s.asleep_count),
                    task_hours_saved: None,
                    until: None,
                });
                scale.until = Some(o.until);
            }
            vec![record.clone()]
        };
        if let Err(e) = self
            .ports
            .store
            .commit(key, &locked, &state, &records, None)
            .await
        {
            error!(error = %e, "could not record the change");
            return self.failed(key, job.cause, e).await;
        }
        // A reconcile tells in one `scale.summary` at its end; an operator's request here.
        if let Some((kind, severity, summary)) = notification.filter(|_| operator) {
            let details = json!({
                "cause": job.cause,
                "reason": record.reason,
                "scale": record.scale,
                "dryRun": mode.dry_run,
            });
            crate::app::publish(
                &self.ports,
                Notification::new(kind, severity, key.to_string(), summary, now, details),
            )
            .await;
        }
        info!(action = ?record.action, reason = %record.reason, "reconciled");
        ServiceReport::new(key, record.action, record.reason)
    }

    /// Saves what the service runs with, then sets the asleep count: the scalable target
    /// first, so that the autoscaler cannot scale the service back up.
    pub(super) async fn put_to_sleep(
        &self,
        key: &ServiceKey,
        locked: &mut Locked,
        state: &mut ServiceState,
        saved: &Sleep,
        observed: &Observed,
    ) -> Result<(), PortError> {
        state.sleep = Some(Sleep {
            pending: true,
            ..saved.clone()
        });
        // Saved already when the lock was taken with it.
        if locked.state.sleep != state.sleep {
            self.ports.store.save(key, locked, state).await?;
        }
        let n = saved.asleep_count;
        if let Some(capacity) = observed.scalable {
            self.ports
                .autoscaling
                .set_capacity(key, capacity.asleep(n))
                .await?;
            self.renew_after_the_target(key, locked).await?;
        }
        self.ports.ecs.set_desired_count(key, n).await
    }

    /// A scalable target's change may have been slowed (throttling, retries) while another
    /// invocation took the lock: the lease is renewed, which proves it is still this one's,
    /// before ECS is changed, as a deployment does.
    pub(super) async fn renew_after_the_target(
        &self,
        key: &ServiceKey,
        locked: &mut Locked,
    ) -> Result<(), PortError> {
        renew_before_acting(&*self.ports.store, &*self.ports.clock, key, locked).await
    }

    /// Restores what was saved: the scalable target first (its capacity and the scaling that
    /// was suspended before the sleep), so that the restored count is inside its bounds. With
    /// a target that is two calls, so the state is saved as pending first.
    pub(super) async fn wake(
        &self,
        key: &ServiceKey,
        locked: &mut Locked,
        state: &mut ServiceState,
        saved: &Sleep,
    ) -> Result<(), PortError> {
        // On record as half-way before ECS is touched, with or without a scalable target: a
        // wake whose answer is lost must be finished by the next reconcile, not taken for a
        // hand change of a sleeping service.
        state.sleep = Some(Sleep {
            pending: true,
            ..saved.clone()
        });
        if locked.state.sleep != state.sleep {
            self.ports.store.save(key, locked, state).await?;
        }
        if let Some(capacity) = saved.scalable {
            self.ports.autoscaling.set_capacity(key, capacity).await?;
            self.renew_after_the_target(key, locked).await?;
        }
        self.ports
            .ecs
            .set_desired_count(key, saved.desired_count)
            .await
    }

    /// A tag problem: the service is left alone; reported each time, recorded and notified
    /// once per distinct problem.
    pub(super) async fn invalid(
        &self,
        key: &ServiceKey,
        state: &ServiceState,
        problems: &[TagProblem],
        mode: Mode,
        cause: &str,
    ) -> ServiceReport {
        let reason = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if mode.plan || state.tag_problem.as_deref() == Some(reason.as_str()) {
            return ServiceReport::new(key, Action::Invalid, reason);
        }
        warn!(%reason, "invalid deckhand tags");
        let owner = owner_token(cause);
        let locked = match acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await {
            Ok(locked) => locked,
            Err(e) => return self.failed(key, cause, e).await,
        };
        let now = self.ports.clock.now();
        let new_state = ServiceState {
            tag_problem: Some(reason.clone()),
            ..locked.state.clone()
        };
        let record = HistoryRecord::new(key, now, Action::Invalid, reason.clone(), cause);
        if let Err(e) = self
            .ports
            .store
            .commit(key, &locked, &new_state, &[record], None)
            .await
        {
            return self.failed(key, cause, e).await;
        }
        let details = json!({
            "problems": problems.iter().map(|p| json!({"tag": p.tag, "value": p.value, "message": p.message})).collect::<Vec<_>>(),
        });
        crate::app::publish(
            &self.ports,
            Notification::new(
                Kind::ConfigInvalid,
                Severity::Warning,
                key.to_string(),
                format!(
                    "deckhand tags on {key} do not parse, so its schedule is not applied: {reason}"
                ),
                now,
                details,
            ),
        )
        .await;
        ServiceReport::new(key, Action::Invalid, reason)
    }

    /// Acting failed half-way: keep what is on record (a pending sleep record lets the next
    /// reconcile finish the job), note the failure, give the lock back.
    pub(super) async fn failed_under_lock(
        &self,
        key: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
        cause: &str,
        e: PortError,
    ) -> ServiceReport {
        let record = HistoryRecord::new(
            key,
            self.ports.clock.now(),
            Action::Error,
            e.to_string(),
            cause,
        );
        if let Err(commit_error) = self
            .ports
            .store
            .commit(key, locked, state, &[record], None)
            .await
        {
            warn!(error = %commit_error, "could not record the failure; the lock expires with its lease");
        }
        self.failed(key, cause, e).await
    }

    pub(super) async fn failed(
        &self,
        key: &ServiceKey,
        cause: &str,
        e: PortError,
    ) -> ServiceReport {
        error!(error = %e, "scheduling failed");
        crate::app::publish(
            &self.ports,
            Notification::new(
                Kind::Error,
                Severity::Error,
                key.to_string(),
                format!("Scheduling {key} failed; the next reconcile retries it: {e}"),
                self.ports.clock.now(),
                json!({"cause": cause, "error": e.to_string()}),
            ),
        )
        .await;
        ServiceReport::new(key, Action::Error, e.to_string())
    }
}

/// What a decision would do, for a plan.
pub(super) fn planned(
    key: &ServiceKey,
    decision: &ScaleDecision,
    observed: &Observed,
) -> ServiceReport {
    let (action, reason) = match decision {
        ScaleDecision::Sleep {
            reason,
            asleep_count,
        } => (
            Action::WouldSleep,
            format!(
                "{reason}; would save {} and set {asleep_count}",
                observed_words(observed)
            ),
        ),
        ScaleDecision::Wake { reason, saved } => (
            Action::WouldWake,
            format!("{reason}; would restore {}", saved_words(saved)),
        ),
        ScaleDecision::HandScaled { reason, .. } | ScaleDecision::Postpone { reason } => {
            (Action::Skipped, reason.clone())
        }
        ScaleDecision::Unchanged { reason } => (Action::Unchanged, reason.clone()),
    };
    ServiceReport::new(key, action, reason)
}

fn capacity_words(desired: i32, scalable: Option<Capacity>) -> String {
    match scalable {
        Some(c) => format!(
            "desired count {desired}, autoscaling min {} max {}",
            c.min, c.max
        ),
        None => format!("desired count {desired}"),
    }
}

fn observed_words(observed: &Observed) -> String {
    capacity_words(observed.desired_count, observed.scalable)
}

fn saved_words(saved: &Sleep) -> String {
    capacity_words(saved.desired_count, saved.scalable)
}

fn sleep_words(saved: &Sleep) -> String {
    format!("saved {}, set {}", saved_words(saved), saved.asleep_count)
}

fn wake_words(saved: &Sleep, task_hours: f64) -> String {
    format!(
        "restored {}; asleep since {}, {task_hours} task-hours saved",
        saved_words(saved),
        rfc3339(saved.since)
    )
}

fn scale_record(
    saved: &Sleep,
    task_hours: Option<f64>,
    until: Option<DateTime<Utc>>,
) -> ScaleRecord {
    ScaleRecord {
        desired_count: saved.desired_count,
        min_capacity: saved.scalable.map(|c| c.min),
        max_capacity: saved.scalable.map(|c| c.max),
        asleep_count: saved.asleep_count,
        task_hours_saved: task_hours,
        until,
    }
}
