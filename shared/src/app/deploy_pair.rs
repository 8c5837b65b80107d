//! A push to a pair of services behind one ALB goes to the idle side: cloned from the live
//! side's revision, with the live side's count; the traffic moves when ECS completed it. The
//! pair is read and checked (both sides, the forward action) before anything changes.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use tracing::info;

use super::{DeployFunction, PairTarget, Target};
use crate::app::pair_gate;
use crate::domain::deploy::DeploymentEventDecision;
use crate::domain::deploy::Push;
use crate::domain::pair::{PairSettings, resolve_pair};
use crate::domain::pair_gate::TrafficGate;
use crate::domain::pair_move::{PairMove, PairPhase, Shift};
use crate::domain::service::ServiceKey;
use crate::domain::state::ServiceState;
use crate::ports::PortError;
use crate::report::ServiceReport;

/// What a target of a push is, seen as a possible side of a pair.
pub(super) enum Paired {
    /// Not a side of a pair.
    Alone(Target),
    /// The pair's push: to its idle side, cloned from its live side.
    Deploy(Target),
    /// The idle side of a pair whose live side is a target of the same push, which deploys it.
    ThroughLive,
    /// The pair is broken or could not be read: reported.
    Reported(ServiceReport),
}

/// What an ECS event of the new side did to its pair's move.
pub(super) struct PairProgress {
    pub words: String,
    /// The shift to announce once the state is committed.
    pub shifted: Option<(PairMove, Shift)>,
    /// The traffic gate that closed: announced, and asked when it is a check, once the state
    /// is committed.
    pub gated: Option<(PairMove, TrafficGate)>,
}

impl DeployFunction {
    /// The pair's move after ECS reported on the new side's deployment: completed, the first
    /// step of its traffic is set (the guard window starts only at 100%); failed, the new side
    /// is scaled back to 0 and no traffic moves. Changes `state` to match.
    pub(super) async fn pair_after_event(
        &self,
        key: &ServiceKey,
        decision: &DeploymentEventDecision,
        state: &mut ServiceState,
        (now, guard): (DateTime<Utc>, chrono::TimeDelta),
    ) -> Result<Option<PairProgress>, PortError> {
        let Some(m) = state
            .pair
            .clone()
            .filter(|m| m.phase == PairPhase::Deploying)
        else {
            return Ok(None);
        };
        match decision {
            DeploymentEventDecision::Completed { .. } => {
                let at_zero = state.deployment.as_ref().is_some_and(|d| d.at_zero_tasks);
                if at_zero {
                    return Ok(Some(PairProgress {
                        words: format!("{key} runs no tasks: no traffic moves to it"),
                        shifted: None,
                        gated: None,
                    }));
                }
                if let Some(gate) = m.gate.clone() {
                    crate::app::pair_gate::close(&self.ports, &m).await?;
                    let mut gated = m.clone();
                    gated.close_gate(now, guard);
                    if let Some(d) = state.deployment.as_mut() {
                        // No traffic yet: the guard window starts when all of it moved.
                        d.guard_until = None;
                    }
                    state.pair = Some(gated.clone());
                    let words = format!(
                        "the traffic waits at its gate: {}",
                        gate.words(&key.to_string())
                    );
                    return Ok(Some(PairProgress {
                        words,
                        shifted: None,
                        gated: Some((gated, gate)),
                    }));
                }
                let Some(shift) = m.first_step() else {
                    return Ok(None);
                };
                crate::app::traffic::set_traffic(&self.ports, &m, &shift).await?;
                let mut moved = m.clone();
                moved.shifted(&shift, now);
                if let Some(d) = state.deployment.as_mut().filter(|_| shift.percent < 100) {
                    // The guard window starts when all the traffic is on the new side.
                    d.guard_until = None;
                }
                let words = format!(
                    "{}% of the traffic moved to {key} (step 1 of {})",
                    shift.percent,
                    m.steps.len()
                );
                state.pair = Some(moved.clone());
                Ok(Some(PairProgress {
                    words,
                    shifted: Some((moved, shift)),
                    gated: None,
                }))
            }
            DeploymentEventDecision::Failed { .. } => {
                let had = crate::app::pair_scale::scale_down(&self.ports, key).await?;
                if let Some(p) = state.pair.as_mut() {
                    p.phase = PairPhase::Failed;
                    p.save_capacity(key, had);
                }
                Ok(Some(PairProgress {
                    words: format!("no traffic moved; {key} is scaled back to 0 tasks"),
                    shifted: None,
                    gated: None,
                }))
            }
            _ => Ok(None),
        }
    }

    /// The check of a gate that just closed: asked outside the lock (a smoke test takes a
    /// while), its verdict settled under it. `None` for an approval, which waits for its
    /// operator. A verdict that cannot be applied leaves the gate closed: the reconcile fails a
    /// check without a verdict once it lapsed.
    pub(super) async fn ask_gate_check(
        &self,
        key: &ServiceKey,
        m: &PairMove,
        gate: &TrafficGate,
        state: &ServiceState,
        event_id: &str,
    ) -> Option<ServiceReport> {
        let TrafficGate::Check { function } = gate else {
            return None;
        };
        let verdict = pair_gate::ask_check(&self.ports, function, m, state).await;
        info!(service = %key, ?verdict, "the traffic gate's check answered");
        let to = state.deployment.as_ref().map(|d| d.to.clone());
        let cause = format!("{event_id}#gate");
        Some(
            match pair_gate::settle(&self.ports, key, to.as_deref(), verdict, &cause).await {
                Ok(settled) => settled,
                Err(e) => ServiceReport::new(
                    key,
                    crate::report::Action::Error,
                    format!(
                        "the check's verdict could not be applied ({e}); the gate stays closed until the check lapses"
                    ),
                ),
            },
        )
    }

    /// Resolves a target that carries `deckhand:pair`: its partner and the forward action are
    /// read, and the push becomes one to the idle side. `among` are the push's other targets.
    pub(super) async fn paired(
        &self,
        push: &Push,
        target: Target,
        among: &BTreeSet<ServiceKey>,
    ) -> Paired {
        let key = target.service.key.clone();
        let settings = match PairSettings::from_tags(&target.service.tags) {
            Ok(None) => return Paired::Alone(target),
            Ok(Some(settings)) => settings,
            Err(problems) => {
                return Paired::Reported(self.invalid(&key, &push.event_id, &problems).await);
            }
        };
        let partner_key = ServiceKey::new(key.cluster(), &settings.partner);
        let (partner, forward) = futures::join!(
            self.ports
                .ecs
                .describe_services(std::slice::from_ref(&partner_key)),
            self.ports.traffic.forward(&settings.traffic)
        );
        let (partner, forward) = match (partner, forward) {
            (Ok(partner), Ok(forward)) => (partner.into_iter().next(), forward),
            (Err(e), _) | (_, Err(e)) => {
                return Paired::Reported(self.failed(&key, push, None, e).await);
            }
        };
        let pair = match resolve_pair(&target.service, partner.as_ref(), &forward) {
            Ok(pair) => pair,
            Err(problem) => {
                return Paired::Reported(self.invalid(&key, &push.event_id, &[problem]).await);
            }
        };
        let Some(partner) = partner else {
            // resolve_pair refuses a missing partner; nothing to deploy either way.
            return Paired::ThroughLive;
        };
        if pair.idle.service == key && among.contains(&pair.live.service) {
            return Paired::ThroughLive;
        }
        let (live, idle, live_task_definition) = if pair.live.service == key {
            (target.service, partner, target.task_definition)
        } else {
            match self
                .ports
                .ecs
                .describe_task_definition(&partner.task_definition)
                .await
            {
                Ok(td) => (partner, target.service, td),
                Err(e) => return Paired::Reported(self.failed(&key, push, None, e).await),
            }
        };
        info!(live = %live.key, idle = %idle.key, "the push goes to the idle side of the pair");
        Paired::Deploy(Target {
            service: idle,
            task_definition: live_task_definition,
            pair: Some(PairTarget {
                pair,
                live_tags: live.tags,
                live_count: live.desired_count,
            }),
            codedeploy: None,
            read_at: target.read_at,
            // Decided with the live side's tags, which say whether it is rehearsed and frozen.
            rehearsed: false,
            calendar: None,
        })
    }
}
