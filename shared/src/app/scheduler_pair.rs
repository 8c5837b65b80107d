//! The reconcile moves pairs on: the next step of the traffic once the current one held for
//! `deckhand:step-wait` (an alarm would have flipped it back already), and, once all traffic
//! passed its guard window on the new side, the old side scaled down (or kept warm).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use tracing::{Instrument, info_span, warn};

use super::SchedulerFunction;
use crate::app::locking::{acquire, owner_token, renew_before_acting};
use crate::app::traffic::{set_traffic, shifted};
use crate::domain::fleet::ServiceView;
use crate::domain::pair::Standby;
use crate::domain::pair_move::{PairMove, PairPhase, Shift};
use crate::domain::service::ServiceKey;
use crate::domain::settings::DeploySettings;
use crate::domain::state::ServiceState;
use crate::history::HistoryRecord;
use crate::report::{Action, ServiceReport};

/// What a pair's move is due for at `at`.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum PairDue {
    Step(Shift),
    /// The guard window at 100% passed.
    Done,
    /// The old side, scaled up for an operator's rollback, runs its tasks: the traffic goes
    /// back to it.
    Revived(Shift),
    /// The traffic gate's check never gave a verdict: the deployment fails.
    CheckLapsed,
}

/// `old_side_runs`: ECS runs all the tasks the old side wants (and it wants some).
pub(super) fn pair_due(
    state: &ServiceState,
    at: DateTime<Utc>,
    old_side_runs: bool,
) -> Option<PairDue> {
    let m = state.pair.as_ref()?;
    match m.phase {
        PairPhase::Reviving if old_side_runs => Some(PairDue::Revived(m.flip_back())),
        PairPhase::Shifting => m.next_step(at).map(PairDue::Step),
        PairPhase::Gated => m.check_lapsed(at).then_some(PairDue::CheckLapsed),
        PairPhase::Guarding => {
            let until = state.deployment.as_ref().and_then(|d| d.guard_until)?;
            (until <= at).then_some(PairDue::Done)
        }
        _ => None,
    }
}

impl SchedulerFunction {
    /// Advances every pair due at `at`; in a plan, says what would happen and writes nothing.
    pub(super) async fn advance_pairs(
        &self,
        services: &[ServiceView],
        states: &BTreeMap<ServiceKey, ServiceState>,
        at: DateTime<Utc>,
        plan: bool,
        cause: &str,
    ) -> Vec<ServiceReport> {
        let runs = |key: &ServiceKey| {
            services
                .iter()
                .find(|s| &s.key == key)
                .is_some_and(|s| s.desired_count > 0 && s.running_count >= s.desired_count)
        };
        let due: Vec<(&ServiceView, PairDue, bool)> = services
            .iter()
            .filter_map(|s| {
                let state = states.get(&s.key)?;
                let old_runs = state.pair.as_ref().is_some_and(|m| runs(&m.from));
                Some((s, pair_due(state, at, old_runs)?, old_runs))
            })
            .collect();
        if plan {
            return due
                .into_iter()
                .map(|(s, due, _)| {
                    let words = match due {
                        PairDue::Step(shift) => {
                            format!("would move {}% of the traffic to it", shift.percent)
                        }
                        PairDue::Done => {
                            "its guard window passed: would end the pair's move".into()
                        }
                        PairDue::Revived(_) => {
                            "the old side runs: would move the traffic back to it".into()
                        }
                        PairDue::CheckLapsed => {
                            "its traffic gate's check gave no verdict: would fail its deployment"
                                .into()
                        }
                    };
                    ServiceReport::new(&s.key, Action::Shifted, words)
                })
                .collect();
        }
        stream::iter(due)
            .map(|(service, _, old_runs)| {
                let span = info_span!("pair", service = %service.key);
                self.advance_pair(service, at, old_runs, cause)
                    .instrument(span)
            })
            .buffer_unordered(self.config.concurrency)
            .filter_map(|r| async { r })
            .collect()
            .await
    }

    /// Under the lock of the pair's new side, decides again on its state and acts.
    async fn advance_pair(
        &self,
        service: &ServiceView,
        at: DateTime<Utc>,
        old_side_runs: bool,
        cause: &str,
    ) -> Option<ServiceReport> {
        let key = &service.key;
        let owner = owner_token(&format!("{cause}#pair"));
        let mut locked = match acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await {
            Ok(locked) => locked,
            Err(e) => return Some(self.failed(key, cause, e).await),
        };
        let (Some(due), Some(m)) = (
            pair_due(&locked.state, at, old_side_runs),
            locked.state.pair.clone(),
        ) else {
            if let Err(e) = self.ports.store.release(key, &locked.owner).await {
                warn!(error = %e, "could not give back the lock; it expires with its lease");
            }
            return None;
        };
        if due == PairDue::CheckLapsed {
            let why = format!(
                "its traffic gate's check gave no verdict within {} minutes of ECS completing it",
                crate::domain::pair_gate::CHECK_LAPSE.num_minutes()
            );
            let verdict = crate::app::pair_gate::Verdict::Shut(why);
            let settled = crate::app::pair_gate::settle_locked(
                &self.ports,
                key,
                locked.clone(),
                verdict,
                cause,
            )
            .await;
            return Some(match settled {
                Ok(report) => report,
                Err(e) => {
                    self.failed_under_lock(key, &locked, &locked.state, cause, e)
                        .await
                }
            });
        }
        let acted =
            match renew_before_acting(&*self.ports.store, &*self.ports.clock, key, &mut locked)
                .await
            {
                Ok(()) => match &due {
                    PairDue::Step(shift) | PairDue::Revived(shift) => {
                        set_traffic(&self.ports, &m, shift).await.map(|()| None)
                    }
                    PairDue::Done if m.standby == Standby::ScaleDown => {
                        crate::app::pair_scale::scale_down(&self.ports, &m.from).await
                    }
                    PairDue::Done | PairDue::CheckLapsed => Ok(None),
                },
                Err(e) => Err(e),
            };
        let had = match acted {
            Ok(had) => had,
            Err(e) => {
                return Some(
                    self.failed_under_lock(key, &locked, &locked.state, cause, e)
                        .await,
                );
            }
        };
        let now = self.ports.clock.now();
        let mut state = locked.state.clone();
        let reason = match &due {
            PairDue::Step(shift) => {
                let mut moved = m.clone();
                moved.shifted(shift, now);
                let step = shift.step.map_or(0, |s| s + 1);
                let mut words = format!(
                    "{}% of the traffic on {key} (step {step} of {}), {}% on {}",
                    shift.percent,
                    m.steps.len(),
                    100 - shift.percent,
                    m.from
                );
                if moved.phase == PairPhase::Guarding {
                    let guard = DeploySettings::guard_in(&service.tags, self.config.guard);
                    let until = now + guard;
                    if let Some(d) = state.deployment.as_mut() {
                        d.guard_until = Some(until);
                    }
                    words = format!(
                        "{words}; guarded until {}",
                        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    );
                }
                state.pair = Some(moved);
                words
            }
            PairDue::Revived(shift) => {
                if let Some(p) = state.pair.as_mut() {
                    p.shifted(shift, now);
                }
                format!(
                    "{} runs its tasks again: all the traffic went back to it from {key}",
                    m.from
                )
            }
            // Settled above, through the gate.
            PairDue::CheckLapsed => return None,
            PairDue::Done => {
                if let Some(p) = state.pair.as_mut() {
                    p.phase = PairPhase::Done;
                    p.save_capacity(&m.from, had);
                }
                match m.standby {
                    Standby::ScaleDown => format!(
                        "{key} passed its guard window with all the traffic: {} is scaled down to 0 tasks, its revision kept for the next push",
                        m.from
                    ),
                    Standby::Keep => format!(
                        "{key} passed its guard window with all the traffic: {} stays warm (deckhand:standby = keep)",
                        m.from
                    ),
                }
            }
        };
        let record = HistoryRecord::new(key, now, Action::Shifted, reason.clone(), cause);
        if let Err(e) = self
            .ports
            .store
            .commit(key, &locked, &state, &[record], None)
            .await
        {
            return Some(self.failed(key, cause, e).await);
        }
        if let PairDue::Step(shift) | PairDue::Revived(shift) = &due {
            let why = match shift.step {
                Some(step) => format!("step {} of {}", step + 1, m.steps.len()),
                None => "rolled back by hand".to_owned(),
            };
            super::super::publish(&self.ports, shifted(&m_after(&state, &m), shift, &why, now))
                .await;
        }
        Some(ServiceReport::new(key, Action::Shifted, reason))
    }
}

/// The move as committed, for the notification.
fn m_after(state: &ServiceState, before: &PairMove) -> PairMove {
    state.pair.clone().unwrap_or_else(|| before.clone())
}
