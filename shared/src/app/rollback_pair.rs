//! An alarm on either side of a pair behind one ALB, while its traffic moves or inside the
//! guard window that starts at 100%: the forward action goes back to the old side at once (one
//! ELB call, no ECS deployment), the new side's digest is quarantined.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::{Case, RollbackError, RollbackFunction, details};
use crate::app::locking::{acquire, owner_token, renew_before_acting};
use crate::domain::pair::PairSettings;
use crate::domain::pair_move::{PairMove, PairPhase};
use crate::domain::rollback::{Alarm, apply_rollback, excused};
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::state::ServiceState;
use crate::history::HistoryRecord;
use crate::notification::{Kind, Notification, Severity};
use crate::ports::PortError;
use crate::report::{Action, ServiceReport, Summary};

/// What an alarm does to a pair's move.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PairDecision {
    Flip {
        reason: String,
    },
    /// The new side waits at its traffic gate: no traffic to flip, its deployment fails.
    ShutGate {
        reason: String,
    },
    Skip(String),
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The decision for the pair whose move `state` (of its new side) holds.
pub fn decide_pair_rollback(
    alarm: &Alarm,
    enabled: bool,
    state: &ServiceState,
    m: &PairMove,
) -> PairDecision {
    use PairDecision::Skip;
    if !enabled {
        return Skip("rollback is off for this service (deckhand:rollback = off)".into());
    }
    if let Some(reason) = excused(alarm, state) {
        return Skip(reason);
    }
    let guard_until = state.deployment.as_ref().and_then(|d| d.guard_until);
    match m.phase {
        PairPhase::Deploying => Skip(format!(
            "no traffic moved to {} yet: ECS is still deploying it, and its own deployment decides",
            m.to
        )),
        PairPhase::FlippedBack | PairPhase::Reviving => Skip(format!(
            "the traffic already went back to {} (or is going back); one rollback per deployment",
            m.from
        )),
        PairPhase::Failed => Skip(format!(
            "the deployment of {} already failed and moved no traffic",
            m.to
        )),
        PairPhase::Gated => PairDecision::ShutGate {
            reason: format!(
                "alarm {} went into ALARM while {} waited at its traffic gate: {}",
                alarm.name, m.to, alarm.reason
            ),
        },
        _ if !m.flips_on_alarm(alarm.at, guard_until) => Skip(format!(
            "outside the guard window: all traffic has been on {} since {}{}",
            m.to,
            m.step_at.map_or_else(String::new, rfc3339),
            guard_until.map_or_else(String::new, |u| format!(", guarded until {}", rfc3339(u)))
        )),
        _ => PairDecision::Flip {
            reason: format!(
                "alarm {} went into ALARM with {}% of the traffic on {}: {}",
                alarm.name,
                m.percent(),
                m.to,
                alarm.reason
            ),
        },
    }
}

impl RollbackFunction {
    /// The side of a pair whose state holds the pair's move: the service itself, or the other
    /// side. `None` when the service is not tagged as a pair.
    pub(super) async fn pair_holder(
        &self,
        key: &ServiceKey,
        tags: &crate::domain::settings::Tags,
    ) -> Result<Option<ServiceKey>, PortError> {
        let settings = match PairSettings::from_tags(tags) {
            Ok(Some(settings)) => settings,
            Ok(None) => return Ok(None),
            // A side of a pair whose tags do not parse still never goes back by UpdateService:
            // its own state decides, which a broken pair never moved.
            Err(_) => return Ok(Some(key.clone())),
        };
        let partner = ServiceKey::new(key.cluster(), &settings.partner);
        let (own, theirs) =
            futures::try_join!(self.ports.store.load(key), self.ports.store.load(&partner))?;
        let moves_to = |state: &ServiceState, side: &ServiceKey| {
            state.pair.as_ref().is_some_and(|m| &m.to == side)
        };
        // The newer move wins when both sides hold one (the older is done).
        let started = |state: &ServiceState| state.deployment.as_ref().map(|d| d.started_at);
        Ok(Some(
            match (moves_to(&own, key), moves_to(&theirs, &partner)) {
                (true, true) if started(&theirs) > started(&own) => partner,
                (true, _) => key.clone(),
                (false, true) => partner,
                (false, false) => key.clone(),
            },
        ))
    }

    /// Under the lock of the pair's new side: flip the traffic back, or say why not.
    pub(super) async fn roll_back_pair(
        &self,
        alarm: &Alarm,
        holder: &ServiceKey,
        (enabled, dry_run): (bool, bool),
        guard: &'static str,
    ) -> ServiceReport {
        let owner = owner_token(&alarm.event_id);
        let locked = match acquire(&*self.ports.store, &*self.ports.clock, holder, &owner).await {
            Ok(locked) => locked,
            Err(e) => return self.failed(holder, alarm, e).await,
        };
        let case = Case {
            key: holder,
            alarm,
            locked: &locked,
            guard,
            dry_run,
        };
        let Some(m) = locked.state.pair.clone() else {
            let reason = "the pair has moved no traffic: nothing to roll back".to_owned();
            return self.skip(&case, &locked.state, reason).await;
        };
        match decide_pair_rollback(alarm, enabled, &locked.state, &m) {
            PairDecision::Skip(reason) => self.skip(&case, &locked.state, reason).await,
            PairDecision::Flip { reason } | PairDecision::ShutGate { reason } if case.dry_run => {
                let would = match m.phase {
                    PairPhase::Gated => "its deployment would fail".to_owned(),
                    _ => format!("the traffic would go back to {}", m.from),
                };
                let revisions = deployment_ends(&locked.state);
                self.skip_with(
                    &case,
                    &locked.state,
                    format!("dry run: {reason}; {would}"),
                    Action::WouldRollBack,
                    (&revisions.0, &revisions.1),
                )
                .await
            }
            PairDecision::Flip { reason } => self.flip(&case, &m, reason).await,
            PairDecision::ShutGate { reason } => {
                let verdict = crate::app::pair_gate::Verdict::Shut(reason);
                let cause = alarm.event_id.as_str();
                match crate::app::pair_gate::settle_locked(
                    &self.ports,
                    holder,
                    locked.clone(),
                    verdict,
                    cause,
                )
                .await
                {
                    Ok(report) => report,
                    Err(e) => self.failed_under_lock(holder, alarm, &locked, e).await,
                }
            }
        }
    }

    async fn flip(&self, case: &Case<'_>, m: &PairMove, reason: String) -> ServiceReport {
        let (key, alarm, locked) = (case.key, case.alarm, case.locked);
        let back = m.flip_back();
        let mut held = locked.clone();
        let flipped =
            match renew_before_acting(&*self.ports.store, &*self.ports.clock, key, &mut held).await
            {
                Ok(()) => crate::app::traffic::set_traffic(&self.ports, m, &back).await,
                Err(e) => Err(e),
            };
        if let Err(e) = flipped {
            return self.failed_under_lock(key, alarm, locked, e).await;
        }
        let now = self.ports.clock.now();
        let mut state = locked.state.clone();
        if let Some(p) = state.pair.as_mut() {
            p.shifted(&back, now);
        }
        let (from, to) = deployment_ends(&locked.state);
        // The new side's revision is undone: the old side's runs the traffic again.
        let digest = apply_rollback(&mut state, (&to, &from), &alarm.name, now, false);
        let mut record = HistoryRecord::new(key, now, Action::RolledBack, &reason, &alarm.event_id);
        record.alarm_at = Some(alarm.at);
        record.from = Some(to.clone()).filter(|t| !t.is_empty());
        record.to = Some(from.clone()).filter(|f| !f.is_empty());
        record.digest = digest.as_ref().map(ToString::to_string);
        if let Err(e) = self.commit(key, alarm, locked, &state, record).await {
            warn!(error = %e, "flipped the traffic back but could not record it");
            return self.failed(key, alarm, e).await;
        }
        info!(to = %m.from, "traffic flipped back");
        let digest_text = digest.as_ref().map_or("", |d| d.short());
        self.notify(Notification::new(
            Kind::RollbackStarted,
            Severity::Warning,
            key.to_string(),
            format!(
                "Traffic of {} back on {} after alarm {}; digest {digest_text} is quarantined",
                m.to, m.from, alarm.name
            ),
            now,
            details(
                alarm,
                (&to, &from),
                digest.as_ref().map(ToString::to_string),
                &reason,
                case.guard,
            ),
        ))
        .await;
        let why = format!("alarm {}", alarm.name);
        self.notify(crate::app::traffic::shifted(m, &back, &why, now))
            .await;
        let mut report = ServiceReport::new(key, Action::RolledBack, reason);
        report.from = Some(revision_name(&to).to_owned()).filter(|t| !t.is_empty());
        report.to = Some(revision_name(&from).to_owned()).filter(|f| !f.is_empty());
        report.digest = digest.map(|d| d.to_string());
        report
    }
}

impl RollbackFunction {
    /// An operator's rollback of a pair: the traffic goes back to the old side at once when it
    /// still runs tasks; when it was scaled down after the move, it is scaled up to the new
    /// side's count first and the traffic follows once ECS runs them (the reconcile flips it).
    /// Either way the new side's digest is quarantined.
    pub(super) async fn manual_pair(
        &self,
        holder: &ServiceKey,
        alarm: &Alarm,
    ) -> Result<Summary, RollbackError> {
        let owner = owner_token(&alarm.event_id);
        let locked = acquire(&*self.ports.store, &*self.ports.clock, holder, &owner)
            .await
            .map_err(RollbackError::Discovery)?;
        let owner = locked.owner.clone();
        let refuse = |why: String| async move {
            if let Err(e) = self.ports.store.release(holder, &owner).await {
                warn!(error = %e, "could not give back the lock; it expires with its lease");
            }
            Err(RollbackError::Refused(why))
        };
        let Some(m) = locked.state.pair.clone() else {
            return refuse(format!(
                "{holder} is a side of a pair that moved no traffic: nothing to roll back"
            ))
            .await;
        };
        let case = Case {
            key: holder,
            alarm,
            locked: &locked,
            guard: "requested by an operator",
            dry_run: self.config.dry_run,
        };
        let reason = format!("rolled back by hand: the traffic goes back to {}", m.from);
        let report = match m.phase {
            PairPhase::Shifting | PairPhase::Guarding => self.flip(&case, &m, reason).await,
            PairPhase::Done => {
                let old = self
                    .ports
                    .ecs
                    .describe_services(std::slice::from_ref(&m.from))
                    .await
                    .map_err(RollbackError::Discovery)?;
                match old.first() {
                    Some(old) if old.desired_count > 0 => self.flip(&case, &m, reason).await,
                    Some(_) => self.revive(&case, &m).await,
                    None => {
                        return refuse(format!("{}, the old side, no longer exists", m.from)).await;
                    }
                }
            }
            phase => {
                return refuse(format!(
                    "the pair's move is {}: there is no traffic on {} to take back",
                    serde_json::to_value(phase)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    m.to
                ))
                .await;
            }
        };
        let summary = Summary::of(vec![report], String::new);
        if summary.failed_services().next().is_some() {
            return Err(RollbackError::ServicesFailed(summary));
        }
        Ok(summary)
    }

    /// The old side was scaled down after the move: scale it up to the new side's count, undo
    /// the deployment now, and leave the flip to the reconcile once ECS runs the tasks.
    async fn revive(&self, case: &Case<'_>, m: &PairMove) -> ServiceReport {
        let (key, alarm, locked) = (case.key, case.alarm, case.locked);
        let count = match self
            .ports
            .ecs
            .describe_services(std::slice::from_ref(key))
            .await
        {
            Ok(services) => services.first().map_or(1, |s| s.desired_count.max(1)),
            Err(e) => return self.failed_under_lock(key, alarm, locked, e).await,
        };
        let mut held = locked.clone();
        let scaled =
            match renew_before_acting(&*self.ports.store, &*self.ports.clock, key, &mut held).await
            {
                Ok(()) => {
                    match crate::app::pair_scale::capacity_to_take_over(
                        &self.ports,
                        (&m.from, m.saved_capacity(&m.from)),
                        &m.to,
                        count,
                    )
                    .await
                    {
                        Ok(()) => self.ports.ecs.set_desired_count(&m.from, count).await,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
        if let Err(e) = scaled {
            return self.failed_under_lock(key, alarm, locked, e).await;
        }
        let now = self.ports.clock.now();
        let mut state = locked.state.clone();
        if let Some(p) = state.pair.as_mut() {
            p.phase = PairPhase::Reviving;
        }
        let (from, to) = deployment_ends(&locked.state);
        let digest = apply_rollback(&mut state, (&to, &from), &alarm.name, now, false);
        let reason = format!(
            "rolled back by hand: {} is scaled up to {count} task(s) first; the traffic goes back to it once ECS runs them",
            m.from
        );
        let mut record = HistoryRecord::new(key, now, Action::Recorded, &reason, &alarm.event_id);
        record.from = Some(to.clone()).filter(|t| !t.is_empty());
        record.to = Some(from.clone()).filter(|f| !f.is_empty());
        record.digest = digest.as_ref().map(ToString::to_string);
        if let Err(e) = self.commit(key, alarm, locked, &state, record).await {
            return self.failed(key, alarm, e).await;
        }
        self.notify(Notification::new(
            Kind::RollbackStarted,
            Severity::Warning,
            key.to_string(),
            format!(
                "Rolling {} back by hand: {} scales up to {count} task(s), the traffic follows",
                m.to, m.from
            ),
            now,
            details(
                alarm,
                (&to, &from),
                digest.as_ref().map(ToString::to_string),
                &reason,
                case.guard,
            ),
        ))
        .await;
        let mut report = ServiceReport::new(key, Action::Recorded, reason);
        report.digest = digest.map(|d| d.to_string());
        report
    }
}

/// The revisions deckhand's deployment on the new side moved between: the old side's (from)
/// and the new one (to).
fn deployment_ends(state: &ServiceState) -> (String, String) {
    state
        .deployment
        .as_ref()
        .map(|d| (d.from.clone(), d.to.clone()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeDelta;

    use super::*;
    use crate::domain::rollback::AlarmState;
    use crate::domain::state::Sleep;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .to_utc()
            + TimeDelta::minutes(minute)
    }

    fn alarm(minute: i64) -> Alarm {
        Alarm {
            event_id: "a".into(),
            name: "green-5xx".into(),
            arn: None,
            state: AlarmState::Alarm,
            previous: Some(AlarmState::Ok),
            reason: "Threshold Crossed".into(),
            at: at(minute),
            dimensions: vec![BTreeMap::new()],
            rule: None,
            description: None,
            actions: None,
        }
    }

    fn moving(phase: PairPhase) -> PairMove {
        let mut m = crate::domain::pair_move::blue_to_green(&[10, 100]);
        m.phase = phase;
        m.step = Some(0);
        m
    }

    #[test]
    fn a_pair_flips_back_only_while_its_traffic_moves_or_inside_its_window() {
        let state = ServiceState::default();
        let flips = |m: &PairMove, state: &ServiceState, minute| {
            matches!(
                decide_pair_rollback(&alarm(minute), true, state, m),
                PairDecision::Flip { .. }
            )
        };
        assert!(flips(&moving(PairPhase::Shifting), &state, 7));
        for phase in [
            PairPhase::Deploying,
            PairPhase::FlippedBack,
            PairPhase::Reviving,
            PairPhase::Failed,
            PairPhase::Done,
        ] {
            assert!(!flips(&moving(phase), &state, 7), "{phase:?}");
        }
        assert!(
            flips(&moving(PairPhase::Guarding), &state, 7),
            "a window not recorded yet counts as open"
        );
        let asleep = ServiceState {
            sleep: Some(Sleep {
                since: at(1),
                desired_count: 2,
                scalable: None,
                asleep_count: 0,
                dry_run: false,
                pending: false,
                cause: "reconcile".into(),
            }),
            ..ServiceState::default()
        };
        assert!(
            !flips(&moving(PairPhase::Shifting), &asleep, 7),
            "deckhand's own sleep"
        );
        assert!(matches!(
            decide_pair_rollback(&alarm(7), false, &state, &moving(PairPhase::Shifting)),
            PairDecision::Skip(reason) if reason.contains("rollback is off")
        ));
    }

    #[test]
    fn an_alarm_while_the_gate_waits_fails_the_deployment_unless_rollback_is_off() {
        let state = ServiceState::default();
        let gated = moving(PairPhase::Gated);
        assert!(matches!(
            decide_pair_rollback(&alarm(7), true, &state, &gated),
            PairDecision::ShutGate { reason } if reason.contains("waited at its traffic gate")
        ));
        assert!(matches!(
            decide_pair_rollback(&alarm(7), false, &state, &gated),
            PairDecision::Skip(_)
        ));
    }
}
