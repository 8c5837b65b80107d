//! A sleep or a wake must be on record as pending before ECS is touched. When the reconcile's
//! batch read the state, the decision is made on it and the lock is taken together with the
//! pending record in one conditional write: the write holds only if the record is still as
//! read, so the decision still holds. Otherwise the lock is taken as usual and the decision
//! made again under it.

use super::{Job, Mode, SchedulerFunction};
use crate::app::locking::LEASE;
use crate::domain::sleep::{ScaleDecision, decide_scale, sleep_record};
use crate::domain::state::{ServiceState, Sleep};
use crate::ports::Locked;

/// The state a decision is made on: the operator's override set or expired, a pretend sleep
/// from dry run dropped once deckhand acts for real, the tag problem cleared.
pub(super) fn prepared(mut state: ServiceState, job: &Job<'_>, mode: Mode) -> ServiceState {
    if let Some(o) = job.set_override.clone() {
        state.operator_override = Some(o);
    }
    if state
        .operator_override
        .as_ref()
        .is_some_and(|o| o.until <= job.at)
    {
        state.operator_override = None;
    }
    if !mode.dry_run && state.sleep.as_ref().is_some_and(|s| s.dry_run) {
        state.sleep = None;
    }
    state.tag_problem = None;
    state
}

impl SchedulerFunction {
    /// The lock, taken with the pending sleep or wake the read state calls for; `None` when
    /// there is no such decision or the record moved since it was read.
    pub(super) async fn lock_saving_pending(
        &self,
        job: &Job<'_>,
        mode: Mode,
        owner: &str,
    ) -> Option<Locked> {
        let read = job.read.filter(|_| !mode.dry_run)?;
        let state = prepared(read.clone(), job, mode);
        let saved = match decide_scale(job.settings, &job.observed, &state, job.at, false) {
            // Finishing an interrupted sleep keeps the values saved before it began.
            ScaleDecision::Sleep { asleep_count, .. } => state
                .sleep
                .clone()
                .filter(|s| s.pending)
                .unwrap_or_else(|| {
                    sleep_record(&job.observed, asleep_count, job.at, false, job.cause)
                }),
            ScaleDecision::Wake { saved, .. } => saved,
            _ => return None,
        };
        let pending = ServiceState {
            sleep: Some(Sleep {
                pending: true,
                ..saved
            }),
            ..state
        };
        let now = self.ports.clock.now();
        match self
            .ports
            .store
            .lock_saving(job.key, owner, now, LEASE, read, &pending)
            .await
        {
            Ok(locked) => locked,
            Err(e) => {
                tracing::warn!(error = %e, "could not take the lock with the pending record; taking it alone");
                None
            }
        }
    }
}
