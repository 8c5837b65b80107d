//! What must hold before a pair's production traffic moves to its new side
//! (`deckhand:traffic-gate`): an operator's approval (`deckhand approve`), or a check function
//! (the team's smoke test, a Lambda function) that answers success. Until then the new side runs
//! its tasks behind the test rule only. A refusal, a failed or silent check, a `deckhand reject`
//! or an alarm meanwhile fails the deployment: no traffic moved, the digest quarantined, the new
//! side scaled back to 0. Pure: the tag, the check's question and how its answer is read.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::image::Digest;
use super::pair_move::PairMove;
use super::state::{DeploymentStatus, ServiceState};

pub const TAG_TRAFFIC_GATE: &str = "deckhand:traffic-gate";

/// How long deckhand waits for a check function's answer (it invokes it synchronously).
pub const CHECK_TIMEOUT: TimeDelta = TimeDelta::seconds(60);

/// A check still without a verdict this long after the gate closed (its invocation was lost
/// with the process that made it) fails at the next reconcile.
pub const CHECK_LAPSE: TimeDelta = TimeDelta::minutes(10);

/// The gate of a pair's traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum TrafficGate {
    /// An operator's `deckhand approve` opens it, `deckhand reject` fails the deployment.
    Approve,
    /// The Lambda function (name or ARN) must answer `{"success": true}`.
    Check { function: String },
}

/// `approve` or `check=FUNCTION`, FUNCTION a Lambda function's name or ARN.
pub fn parse_gate(text: &str) -> Result<TrafficGate, String> {
    let text = text.trim();
    if text == "approve" {
        return Ok(TrafficGate::Approve);
    }
    let Some(function) = text.strip_prefix("check=").map(str::trim) else {
        return Err(
            "expected `approve` or `check=FUNCTION` (a Lambda function's name or ARN)".into(),
        );
    };
    if is_function_name(function) || is_function_arn(function) {
        Ok(TrafficGate::Check {
            function: function.to_owned(),
        })
    } else {
        Err(format!(
            "`{function}` is not a Lambda function's name (letters, digits, - and _, at most 64) or ARN"
        ))
    }
}

fn is_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`.
fn is_function_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        [
            "arn",
            partition,
            "lambda",
            region,
            account,
            "function",
            name,
            rest @ ..,
        ] => {
            partition.starts_with("aws")
                && !region.is_empty()
                && account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && is_function_name(name)
                && rest.len() <= 1
                && rest.iter().all(|q| is_function_name(q) || *q == "$LATEST")
        }
        _ => false,
    }
}

impl TrafficGate {
    /// Who opens it, in words for the history and the notification.
    pub fn words(&self, holder: &str) -> String {
        match self {
            Self::Approve => format!(
                "`deckhand approve {holder}` moves the traffic, `deckhand reject {holder}` fails the deployment (OperatorPolicy)"
            ),
            Self::Check { function } => format!(
                "check function {function} must answer success within {} s",
                CHECK_TIMEOUT.num_seconds()
            ),
        }
    }
}

/// What the check function is asked: which side about to go live, on which revision and
/// digest, behind which test rule and target group.
pub fn check_question(m: &PairMove, state: &ServiceState) -> Value {
    let deployment = state.deployment.as_ref();
    json!({
        "source": "deckhand",
        "check": "traffic-gate",
        "service": m.to.to_string(),
        "live": m.from.to_string(),
        "taskDefinition": deployment.map(|d| d.to.clone()),
        "digest": deployment.map(|d| d.digest.to_string()),
        "repository": deployment.map(|d| d.repository.clone()),
        "tag": deployment.and_then(|d| d.tag.clone()),
        "targetGroup": m.to_target_group,
        "testTraffic": m.test_traffic,
        "traffic": m.traffic,
    })
}

/// The check's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckVerdict {
    Passed,
    Failed(String),
}

/// Reads a check function's answer: `{"success": true}` passes; anything else fails, with the
/// function's own `reason` (or error) when it gave one. At most 300 characters of it are kept.
pub fn read_check_answer(
    function: &str,
    function_error: Option<&str>,
    payload: &[u8],
) -> CheckVerdict {
    let answer: Option<Value> = serde_json::from_slice(payload).ok();
    let said = |field: &str| {
        answer
            .as_ref()
            .and_then(|a| a.get(field))
            .and_then(Value::as_str)
            .map(|s| s.chars().take(300).collect::<String>())
    };
    if let Some(kind) = function_error {
        let message = said("errorMessage").unwrap_or_default();
        return CheckVerdict::Failed(format!(
            "check function {function} failed ({kind}): {message}"
        ));
    }
    match answer.as_ref().and_then(|a| a.get("success")) {
        Some(Value::Bool(true)) => CheckVerdict::Passed,
        Some(Value::Bool(false)) => CheckVerdict::Failed(format!(
            "check function {function} answered failure: {}",
            said("reason").unwrap_or_else(|| "no reason given".into())
        )),
        _ => CheckVerdict::Failed(format!(
            "check function {function} did not answer {{\"success\": true}}"
        )),
    }
}

/// The deployment of a gated pair's new side fails: nothing moved, the digest is quarantined
/// for the new side. Returns the digest.
pub fn fail_gated(state: &mut ServiceState, why: &str, now: DateTime<Utc>) -> Option<Digest> {
    let d = state.deployment.as_mut()?;
    d.status = DeploymentStatus::Failed;
    d.finished_at.get_or_insert(now);
    d.guard_until = None;
    let (digest, id) = (d.digest.clone(), d.id.clone());
    state.quarantine(
        &digest,
        format!("the traffic gate refused it: {why}"),
        now,
        Some(id),
    );
    if let Some(m) = state.pair.as_mut() {
        m.phase = super::pair_move::PairPhase::Failed;
    }
    Some(digest)
}

#[cfg(test)]
#[path = "pair_gate_tests.rs"]
mod tests;
