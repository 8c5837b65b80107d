//! `deckhand approve` and `deckhand reject`: an operator's answer to a service deployment that
//! waits at ECS pause hooks, given with `ContinueServiceDeployment` under the service's lock.
//! ECS's `DescribeServiceDeployments` is the source of truth for what waits; the timeout is
//! ECS's own. A deployment goes on only when every hook of its stage is continued, so approve
//! answers each one; one `ROLLBACK` rolls it back, so reject answers the first that still waits.

use super::{Operator, OperatorError};
use crate::app::locking::{acquire, owner_token, renew_before_acting};
use crate::app::pair_gate::{Verdict, settle};
use crate::domain::pair::PairSettings;
use crate::domain::pair_gate::TrafficGate;
use crate::domain::pair_move::PairPhase;
use crate::domain::pause::PausedDeployment;
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::state::{DeploymentStatus, RolledBack};
use crate::history::HistoryRecord;
use crate::ports::{PortError, PortErrorKind};
use crate::report::{Action, ServiceReport};

/// What the answers did: hooks this call answered, hooks someone else answered first, and the
/// error that stopped the rest.
#[derive(Default)]
struct Answered {
    ours: usize,
    already: usize,
    stopped_by: Option<PortError>,
}

impl Operator {
    /// The deployment waiting at pause hooks goes on (`CONTINUE` on each); a pair waiting at
    /// its approval gate moves its traffic.
    pub async fn approve(&self, service: &ServiceKey) -> Result<ServiceReport, OperatorError> {
        if let Some(holder) = self.gated_pair(service).await? {
            return self.answer_pair_gate(&holder, false).await;
        }
        self.answer_pause_hooks(service, false).await
    }

    /// The deployment waiting at pause hooks is rolled back by ECS (`ROLLBACK`); a pair waiting
    /// at its approval gate fails its deployment (no traffic moved, the new side scaled back).
    pub async fn reject(&self, service: &ServiceKey) -> Result<ServiceReport, OperatorError> {
        if let Some(holder) = self.gated_pair(service).await? {
            return self.answer_pair_gate(&holder, true).await;
        }
        self.answer_pause_hooks(service, true).await
    }

    /// The side of a pair whose move waits at an approval gate: the service named, or the other
    /// side of its pair. `None` when the service is no side of such a pair.
    async fn gated_pair(&self, service: &ServiceKey) -> Result<Option<ServiceKey>, OperatorError> {
        let view = self.described(service).await?;
        let Ok(Some(settings)) = PairSettings::from_tags(&view.tags) else {
            return Ok(None);
        };
        let partner = ServiceKey::new(service.cluster(), &settings.partner);
        for key in [service.clone(), partner] {
            let state = self.ports.store.load(&key).await?;
            let waits = state.pair.as_ref().is_some_and(|m| {
                m.phase == PairPhase::Gated && m.gate == Some(TrafficGate::Approve)
            });
            if waits {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    async fn answer_pair_gate(
        &self,
        holder: &ServiceKey,
        reject: bool,
    ) -> Result<ServiceReport, OperatorError> {
        let now = self.ports.clock.now();
        let (verb, verdict) = if reject {
            ("reject", Verdict::Shut(format!("rejected by {}", self.by)))
        } else {
            ("approve", Verdict::Open(format!("approved by {}", self.by)))
        };
        let cause = self.cause(verb, now);
        let settled = settle(&self.ports, holder, None, verdict, &cause).await?;
        let action = match settled.action {
            Action::Shifted => Action::Approved,
            Action::Failed => Action::Rejected,
            _ => return Err(OperatorError::NothingAwaiting(holder.clone())),
        };
        Ok(ServiceReport { action, ..settled })
    }

    async fn answer_pause_hooks(
        &self,
        service: &ServiceKey,
        roll_back: bool,
    ) -> Result<ServiceReport, OperatorError> {
        let view = self.described(service).await?;
        let Some(paused) = self.ports.ecs.paused_deployment(service).await? else {
            return Err(OperatorError::NothingAwaiting(service.clone()));
        };
        let now = self.ports.clock.now();
        let verb = if roll_back { "reject" } else { "approve" };
        let cause = self.cause(verb, now);
        let owner = owner_token(&cause);
        let mut locked = acquire(&*self.ports.store, &*self.ports.clock, service, &owner).await?;
        let answered =
            match renew_before_acting(&*self.ports.store, &*self.ports.clock, service, &mut locked)
                .await
            {
                Ok(()) => self.answer(&paused, roll_back).await,
                Err(e) => Err(e),
            };
        let answered = match answered {
            Ok(a) if a.ours > 0 => a,
            Ok(_) => {
                // Every hook was answered by someone else in the meantime.
                self.release_lock(service, &locked).await;
                return Err(OperatorError::NothingAwaiting(service.clone()));
            }
            Err(e) => {
                self.release_lock(service, &locked).await;
                return Err(e.into());
            }
        };
        let mut state = locked.state.clone();
        let running = revision_name(&view.task_definition).to_owned();
        let stage = paused.stage.as_deref().unwrap_or("its pause hook");
        let (action, reason) = if roll_back {
            // deckhand's deployment of what runs is over: rolled back, by a person. Its digest
            // is not quarantined: a rejection is not evidence against the image.
            if let Some(d) = state.deployment.as_mut().filter(|d| {
                d.to == view.task_definition && d.status == DeploymentStatus::InProgress
            }) {
                d.status = DeploymentStatus::RolledBack;
                d.rollback = Some(RolledBack {
                    alarm: format!("rejected by {}", self.by),
                    at: now,
                    to: d.from.clone(),
                });
            }
            (
                Action::Rejected,
                format!(
                    "the deployment of {running}, which waited at {stage}, rejected by {}: ECS rolls it back (ContinueServiceDeployment ROLLBACK); its digest is not quarantined",
                    self.by
                ),
            )
        } else {
            (
                Action::Approved,
                format!(
                    "the deployment of {running}, which waited at {stage}, approved by {}: {}",
                    self.by,
                    approval_words(&paused, &answered)
                ),
            )
        };
        let record = HistoryRecord::new(service, now, action, reason.clone(), &cause);
        self.ports
            .store
            .commit(service, &locked, &state, &[record], None)
            .await?;
        Ok(ServiceReport::new(service, action, reason))
    }

    /// `ContinueServiceDeployment` on the hooks that wait: each with `CONTINUE`, or the first
    /// that still waits with `ROLLBACK`. A hook someone answered first (`ConflictException`) is
    /// counted and passed over.
    async fn answer(
        &self,
        paused: &PausedDeployment,
        roll_back: bool,
    ) -> Result<Answered, PortError> {
        let mut answered = Answered::default();
        for hook in &paused.hooks {
            let result = self
                .ports
                .ecs
                .continue_service_deployment(
                    &paused.service_deployment_arn,
                    &hook.hook_id,
                    roll_back,
                )
                .await;
            match result {
                Ok(()) if roll_back => {
                    answered.ours = 1;
                    return Ok(answered);
                }
                Ok(()) => answered.ours += 1,
                Err(e) if e.kind == PortErrorKind::Conflict => answered.already += 1,
                Err(e) if answered.ours == 0 => return Err(e),
                Err(e) => {
                    answered.stopped_by = Some(e);
                    break;
                }
            }
        }
        Ok(answered)
    }
}

/// What an approval did, in words: how many hooks it continued, what is left at this stage,
/// and the pauses still to come.
fn approval_words(paused: &PausedDeployment, answered: &Answered) -> String {
    let total = paused.hooks.len();
    let mut words = match total {
        1 => "ECS goes on (ContinueServiceDeployment CONTINUE)".to_owned(),
        _ => format!(
            "{} of its {total} pause hooks there continued (ContinueServiceDeployment CONTINUE)",
            answered.ours
        ),
    };
    if answered.already > 0 {
        words.push_str(&format!(
            ", {} answered by someone else first",
            answered.already
        ));
    }
    let left = total - answered.ours - answered.already;
    if let Some(e) = &answered.stopped_by {
        words.push_str(&format!(
            "; {left} still wait{}, ECS goes on only once they are answered: {e}; run `deckhand approve` again",
            if left == 1 { "s" } else { "" }
        ));
    } else if total > 1 {
        words.push_str("; ECS goes on");
    }
    match paused.later_pauses {
        0 => {}
        1 => words.push_str("; one more pause hook at a later stage will ask again"),
        n => words.push_str(&format!(
            "; {n} more pause hooks at later stages will ask again"
        )),
    }
    words
}

#[cfg(test)]
mod tests {
    use super::super::tests::{push, world};
    use super::*;
    use crate::domain::strategy::Strategy;
    use crate::ports::Ecs as _;
    use crate::report::Outcome;

    /// `web` deploys with blue/green and its deployment waits at `hooks` pause hooks, with
    /// `later` more pauses to come.
    async fn waiting(hooks: usize, later: usize) -> super::super::tests::World {
        let w = world();
        w.ecs.set_strategy(&w.web, Strategy::BlueGreen);
        let s = w
            .deploy
            .handle(&w.pushed(push("p1", 'b', 1)))
            .await
            .unwrap();
        assert_eq!(s.outcome, Outcome::Deployed, "{s:?}");
        w.ecs
            .pause_service_deployment_at_hooks(&w.web, hooks, later);
        w
    }

    #[tokio::test]
    async fn approval_continues_every_hook_of_the_stage_and_says_what_comes_later() {
        let w = waiting(3, 2).await;
        let approved = w.operator.approve(&w.web).await.unwrap();
        assert_eq!(approved.action, Action::Approved);
        assert!(
            approved.reason.ends_with(
                "approved by alice: 3 of its 3 pause hooks there continued (ContinueServiceDeployment CONTINUE); ECS goes on; 2 more pause hooks at later stages will ask again"
            ),
            "{approved:?}"
        );
        assert_eq!(w.ecs.calls("ContinueServiceDeployment"), 3);
        assert!(w.ecs.paused_deployment(&w.web).await.unwrap().is_none());
        assert!(!w.store.is_locked(&w.web));
    }

    #[tokio::test]
    async fn a_hook_answered_elsewhere_is_passed_over_and_all_of_them_is_nothing_to_approve() {
        let w = waiting(3, 0).await;
        w.ecs.answer_hook_elsewhere("ecs-pause-prod/web-1");
        let approved = w.operator.approve(&w.web).await.unwrap();
        assert!(
            approved.reason.ends_with(
                "2 of its 3 pause hooks there continued (ContinueServiceDeployment CONTINUE), 1 answered by someone else first; ECS goes on"
            ),
            "{approved:?}"
        );

        let w = waiting(2, 0).await;
        w.ecs.answer_hook_elsewhere("ecs-pause-prod/web");
        w.ecs.answer_hook_elsewhere("ecs-pause-prod/web-1");
        match w.operator.approve(&w.web).await {
            Err(OperatorError::NothingAwaiting(k)) => assert_eq!(k, w.web),
            other => panic!("{other:?}"),
        }
        assert!(!w.store.is_locked(&w.web));
        let records: Vec<Action> = w.store.all_history().iter().map(|r| r.action).collect();
        assert!(!records.contains(&Action::Approved), "{records:?}");
    }

    #[tokio::test]
    async fn one_rollback_rejects_the_deployment_and_a_failed_answer_changes_nothing() {
        let w = waiting(2, 1).await;
        w.ecs.answer_hook_elsewhere("ecs-pause-prod/web");
        let rejected = w.operator.reject(&w.web).await.unwrap();
        assert_eq!(rejected.action, Action::Rejected, "{rejected:?}");
        // The first hook was answered elsewhere; the second one's ROLLBACK is enough.
        assert_eq!(w.ecs.calls("ContinueServiceDeployment"), 2);
        assert!(w.ecs.paused_deployment(&w.web).await.unwrap().is_none());

        let w = waiting(2, 0).await;
        w.ecs.fail("ContinueServiceDeployment");
        let e = w.operator.approve(&w.web).await.unwrap_err();
        assert!(e.to_string().contains("injected fault"), "{e}");
        assert!(!w.store.is_locked(&w.web));
        assert_eq!(
            w.ecs
                .paused_deployment(&w.web)
                .await
                .unwrap()
                .map(|p| p.hooks.len()),
            Some(2)
        );
    }
}
