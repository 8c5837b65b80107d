//! A push to a pair of services behind one ALB goes to the idle side: cloned from the live
//! side's revision, with the live side's count; the traffic moves when ECS completed it. The
//! pair is read and checked (both sides, the forward action) before anything changes.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use tracing::info;

use super::{DeployFunction, PairTarget, Target};
use crate::domain::deploy::DeploymentEventDecision;
use crate::domain::deploy::Push;
use crate::domain::pair::{PairSettings, resolve_pair};
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
        now: DateTime<Utc>,
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
                let Some(shift) = m.first_step().filter(|_| !at_zero) else {
                    return Ok(Some(PairProgress {
                        words: format!("{key} runs no tasks: no traffic moves to it"),
                        shifted: None,
                    }));
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
                }))
            }
            DeploymentEventDecision::Failed { .. } => {
                crate::app::pair_scale::scale_down(&self.ports, key).await?;
                if let Some(p) = state.pair.as_mut() {
                    p.phase = PairPhase::Failed;
                }
                Ok(Some(PairProgress {
                    words: format!("no traffic moved; {key} is scaled back to 0 tasks"),
                    shifted: None,
                }))
            }
            _ => Ok(None),
        }
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
            // Decided with the live side's tags, which say whether it is rehearsed.
            rehearsed: false,
        })
    }
}
