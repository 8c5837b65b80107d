//! A pair's traffic gate at work. It closes when ECS completed the new side (the test rule on
//! it, `deploy.awaiting-approval` said), and its verdict settles it under the new side's lock:
//! opened, the first step of the traffic moves; shut, the deployment fails with no traffic
//! moved, the digest quarantined and the new side scaled back to 0. Verdicts come from the check
//! function's answer, an operator's approve or reject, an alarm, or a check that never answered.

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::warn;

use super::Ports;
use crate::app::locking::{acquire, owner_token, renew_before_acting};
use crate::app::pair_scale::scale_down;
use crate::app::traffic::{set_test_traffic, set_traffic, shifted};
use crate::domain::pair_gate::{
    CHECK_TIMEOUT, CheckVerdict, TrafficGate, check_question, fail_gated, read_check_answer,
};
use crate::domain::pair_move::{PairMove, PairPhase};
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::state::ServiceState;
use crate::history::HistoryRecord;
use crate::notification::{Kind, Notification, Severity};
use crate::ports::{Locked, PortError};
use crate::report::{Action, ServiceReport};

/// How a gate is settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The traffic may move; the words say who said so.
    Open(String),
    /// The deployment fails; the words say why.
    Shut(String),
}

/// Before the gate closes: the test rule on the new side, so that what the check or the
/// operator tries is the revision about to go live. Unlike a test rule set after a move, this
/// one must hold: an error leaves the event for a retry.
pub(crate) async fn close(ports: &Ports, m: &PairMove) -> Result<(), PortError> {
    match m.test_traffic_on(true) {
        Some(test) => set_test_traffic(ports, &test).await,
        None => Ok(()),
    }
}

/// `deploy.awaiting-approval` for a gate that closed on `holder`.
pub(crate) fn awaiting(
    holder: &ServiceKey,
    m: &PairMove,
    gate: &TrafficGate,
    at: DateTime<Utc>,
) -> Notification {
    let (approve, reject, function) = match gate {
        TrafficGate::Approve => (
            Some(format!("deckhand approve {holder}")),
            Some(format!("deckhand reject {holder}")),
            None,
        ),
        TrafficGate::Check { function } => (None, None, Some(function.clone())),
    };
    Notification::new(
        Kind::DeployAwaitingApproval,
        Severity::Warning,
        holder.to_string(),
        format!(
            "{holder} runs the new revision behind {}; no production traffic until {}",
            m.test_traffic.as_deref().unwrap_or("its target group"),
            gate.words(&holder.to_string())
        ),
        at,
        json!({
            "gate": gate,
            "testTraffic": m.test_traffic,
            "targetGroup": m.to_target_group,
            "live": m.from.to_string(),
            "approve": approve,
            "reject": reject,
            "function": function,
        }),
    )
}

/// Asks the check function and reads its answer. An invocation that fails or times out is a
/// verdict too: the deployment fails.
pub(crate) async fn ask_check(
    ports: &Ports,
    function: &str,
    m: &PairMove,
    state: &ServiceState,
) -> Verdict {
    let question = check_question(m, state);
    let timeout = CHECK_TIMEOUT
        .to_std()
        .unwrap_or(std::time::Duration::from_secs(60));
    match ports.checks.invoke(function, &question, timeout).await {
        Ok(answer) => {
            match read_check_answer(function, answer.function_error.as_deref(), &answer.payload) {
                CheckVerdict::Passed => {
                    Verdict::Open(format!("check function {function} answered success"))
                }
                CheckVerdict::Failed(why) => Verdict::Shut(why),
            }
        }
        Err(e) => Verdict::Shut(format!(
            "check function {function} could not be invoked: {e}"
        )),
    }
}

/// Settles the gate of the move `holder`'s state holds, taking its lock. `deployment` names the
/// revision the verdict is about: a gate that closed since on another deployment is not
/// settled by it.
pub(crate) async fn settle(
    ports: &Ports,
    holder: &ServiceKey,
    deployment: Option<&str>,
    verdict: Verdict,
    cause: &str,
) -> Result<ServiceReport, PortError> {
    let owner = owner_token(cause);
    let locked = acquire(&*ports.store, &*ports.clock, holder, &owner).await?;
    let waits = locked
        .state
        .pair
        .as_ref()
        .is_some_and(|m| m.phase == PairPhase::Gated)
        && deployment.is_none_or(|to| locked.state.deployment.as_ref().is_some_and(|d| d.to == to));
    if !waits {
        if let Err(e) = ports.store.release(holder, &locked.owner).await {
            warn!(error = %e, "could not give back the lock; it expires with its lease");
        }
        return Ok(ServiceReport::new(
            holder,
            Action::Skipped,
            "the pair's traffic gate no longer waits: another verdict settled it".to_owned(),
        ));
    }
    let owner = locked.owner.clone();
    let settled = settle_locked(ports, holder, locked, verdict, cause).await;
    if settled.is_err()
        && let Err(e) = ports.store.release(holder, &owner).await
    {
        warn!(error = %e, "could not give back the lock; it expires with its lease");
    }
    settled
}

/// The same, under a lock already held (an alarm's rollback takes it to decide).
pub(crate) async fn settle_locked(
    ports: &Ports,
    holder: &ServiceKey,
    mut locked: Locked,
    verdict: Verdict,
    cause: &str,
) -> Result<ServiceReport, PortError> {
    let Some(m) = locked
        .state
        .pair
        .clone()
        .filter(|m| m.phase == PairPhase::Gated)
    else {
        if let Err(e) = ports.store.release(holder, &locked.owner).await {
            warn!(error = %e, "could not give back the lock; it expires with its lease");
        }
        return Ok(ServiceReport::new(
            holder,
            Action::Skipped,
            "the pair's traffic gate is not closed".to_owned(),
        ));
    };
    renew_before_acting(&*ports.store, &*ports.clock, holder, &mut locked).await?;
    let mut state = locked.state.clone();
    let (from, to) = state
        .deployment
        .as_ref()
        .map(|d| (d.from.clone(), d.to.clone()))
        .unwrap_or_default();
    let mut quarantined = None;
    let (action, reason, notification) = match verdict {
        Verdict::Open(by) => {
            let Some(shift) = m.open_gate() else {
                return Err(PortError::new(
                    "settle",
                    crate::ports::PortErrorKind::Other,
                    "a closed gate has a first step",
                ));
            };
            set_traffic(ports, &m, &shift).await?;
            let now = ports.clock.now();
            let mut moved = m.clone();
            moved.shifted(&shift, now);
            if let Some(d) = state.deployment.as_mut() {
                // The guard window starts when all the traffic is on the new side.
                d.guard_until = (shift.percent >= 100).then_some(now + m.gate_guard());
            }
            state.pair = Some(moved.clone());
            let reason = format!(
                "{by}: {}% of the traffic moved to {holder} (step 1 of {})",
                shift.percent,
                m.steps.len()
            );
            (Action::Shifted, reason, shifted(&moved, &shift, &by, now))
        }
        Verdict::Shut(why) => {
            let had = scale_down(ports, holder).await?;
            let now = ports.clock.now();
            let digest = fail_gated(&mut state, &why, now);
            if let Some(p) = state.pair.as_mut() {
                p.save_capacity(holder, had);
            }
            quarantined = digest.as_ref().map(ToString::to_string);
            let short = digest.as_ref().map_or("", |d| d.short());
            let reason = format!(
                "{why}: no traffic moved; {holder} is scaled back to 0 tasks and digest {short} is quarantined for it"
            );
            let notification = Notification::new(
                Kind::DeployFailed,
                Severity::Error,
                holder.to_string(),
                format!(
                    "The traffic gate of {holder} refused {}: {why}",
                    revision_name(&to)
                ),
                now,
                json!({
                    "from": revision_name(&from),
                    "to": revision_name(&to),
                    "digest": digest.as_ref().map(ToString::to_string),
                    "gate": m.gate,
                    "reason": why,
                }),
            );
            (Action::Failed, reason, notification)
        }
    };
    let now = ports.clock.now();
    let mut record = HistoryRecord::new(holder, now, action, reason.clone(), cause);
    record.from = Some(from.clone()).filter(|f| !f.is_empty());
    record.to = Some(to.clone()).filter(|t| !t.is_empty());
    record.digest.clone_from(&quarantined);
    ports
        .store
        .commit(holder, &locked, &state, &[record], None)
        .await?;
    super::publish(ports, notification).await;
    let mut report = ServiceReport::new(holder, action, reason);
    report.from = Some(revision_name(&from).to_owned()).filter(|f| !f.is_empty());
    report.to = Some(revision_name(&to).to_owned()).filter(|t| !t.is_empty());
    report.digest = quarantined;
    Ok(report)
}
