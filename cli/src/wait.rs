//! `deckhand wait`: a pipeline pushes its image and waits for deckhand's result, as it used to
//! wait for the service to be stable. It reads the table only: the service's state and history.

use std::time::Duration;

use chrono::SecondsFormat;
use deckhand::app::Ports;
use deckhand::domain::image::Digest;
use deckhand::domain::service::{ServiceKey, revision_name};
use deckhand::domain::state::{DeploymentStatus, ServiceState};
use deckhand::history::HistoryRecord;
use deckhand::ports::PortError;
use deckhand::report::Action;
use serde::Serialize;

/// How a push of the digest ended for the service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ending {
    /// ECS completed its deployment, or the service already ran it.
    Completed,
    /// Its deployment failed, was rolled back, or it will not be deployed (quarantined,
    /// paused, older than what was applied).
    Failed,
}

/// What the table says of a digest on a service at one reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    Pending(String),
    Ended(Ending, String),
}

fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Where the push of `digest` stands, from the service's state and its history (newest first).
/// A push whose tag the policy does not take is not an end: the same digest is often pushed
/// under several tags, of which one deploys.
pub fn progress(state: &ServiceState, history: &[HistoryRecord], digest: &Digest) -> Progress {
    use Progress::{Ended, Pending};
    let dry = |dry_run: bool| if dry_run { "dry run: " } else { "" };
    if let Some(d) = state.deployment.as_ref().filter(|d| &d.digest == digest) {
        let to = if d.dry_run {
            format!("the would-be deployment of {}", digest.short())
        } else {
            format!("the deployment of {}", revision_name(&d.to))
        };
        let from = revision_name(&d.from);
        return match d.status {
            // ECS completed it by its early success criteria: what a pipeline waits for, though
            // the rollout still settles (and deckhand still guards it).
            DeploymentStatus::InProgress if d.early_completed_at.is_some() => Ended(
                Ending::Completed,
                format!(
                    "{}ECS completed {to} (from {from}) early, at {}: the rollout still settles, and an alarm until then rolls it back",
                    dry(d.dry_run),
                    d.early_completed_at.map(rfc3339).unwrap_or_default()
                ),
            ),
            DeploymentStatus::InProgress => Pending(format!(
                "{}{to} (from {from}) is in progress since {}",
                dry(d.dry_run),
                rfc3339(d.started_at)
            )),
            DeploymentStatus::Completed => Ended(
                Ending::Completed,
                format!(
                    "{}ECS completed {to} (from {from}){}",
                    dry(d.dry_run),
                    d.guard_until
                        .map(|u| format!("; an alarm before {} rolls it back", rfc3339(u)))
                        .unwrap_or_default()
                ),
            ),
            DeploymentStatus::Failed => Ended(
                Ending::Failed,
                format!(
                    "{}{to} failed{}",
                    dry(d.dry_run),
                    state
                        .is_quarantined(digest)
                        .map(|q| format!(" ({}); the digest is quarantined", q.reason))
                        .unwrap_or_default()
                ),
            ),
            DeploymentStatus::RolledBack => Ended(
                Ending::Failed,
                format!(
                    "{}{to} was rolled back{}",
                    dry(d.dry_run),
                    d.rollback
                        .as_ref()
                        .map(|r| format!(
                            " to {} after alarm {} at {}",
                            revision_name(&r.to),
                            r.alarm,
                            rfc3339(r.at)
                        ))
                        .unwrap_or_default()
                ),
            ),
        };
    }
    if let Some(q) = state.is_quarantined(digest) {
        return Ended(
            Ending::Failed,
            format!(
                "digest {} is quarantined for this service since {} ({}); it is not deployed",
                digest.short(),
                rfc3339(q.at),
                q.reason
            ),
        );
    }
    if let Some(held) = state.held.as_ref().filter(|h| h.push.digest == *digest) {
        return Pending(format!(
            "the push of {} is held: the CodeDeploy deployment group {} runs {}",
            digest.short(),
            held.group,
            held.behind.as_deref().unwrap_or("another deployment")
        ));
    }
    if state.waiting.values().any(|w| w.digest == *digest) {
        return Pending(format!(
            "the push of {} waits for its scan (DECKHAND_REQUIRE_SCAN)",
            digest.short()
        ));
    }
    if state.pushes.values().any(|p| p.digest == *digest) {
        return Ended(
            Ending::Completed,
            format!("the service already runs digest {}", digest.short()),
        );
    }
    let newest = history
        .iter()
        .find(|r| r.digest.as_deref() == Some(digest.as_str()));
    match newest {
        Some(r) => match r.action {
            Action::Skipped | Action::Invalid | Action::Quarantined | Action::Failed => {
                Ended(Ending::Failed, format!("not deployed: {}", r.reason))
            }
            Action::Deployed | Action::WouldDeploy => Ended(
                Ending::Failed,
                "a later deployment replaced this one before ECS completed it".into(),
            ),
            Action::Error => Pending(format!("failed once and is retried: {}", r.reason)),
            _ => Pending(format!("{}: {}", action_word(r.action), r.reason)),
        },
        None => Pending(format!(
            "deckhand has not handled a push of {} for this service yet",
            digest.short()
        )),
    }
}

fn action_word(action: Action) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The end of a wait: the ending and its reason, or none when the time ran out (with the last
/// state seen).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Waited {
    pub service: String,
    pub digest: String,
    /// `completed`, `failed`, or `timed-out`.
    pub result: String,
    pub reason: String,
    pub polls: usize,
}

/// Reads the table every `interval` until the push of `digest` ended or `timeout` passed, the
/// last time at the deadline.
pub async fn wait(
    ports: &Ports,
    service: &ServiceKey,
    digest: &Digest,
    timeout: Duration,
    interval: Duration,
) -> Result<Waited, PortError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let sides = crate::wait_pair::sides(ports, service).await?;
    let mut polls = 0;
    loop {
        polls += 1;
        let mut readings = Vec::with_capacity(sides.len());
        for side in &sides {
            let (state, history) = tokio::try_join!(
                ports.store.load(side),
                ports.store.history(side, HISTORY_READ)
            )?;
            readings.push((
                crate::wait_pair::pair_progress(&state, digest),
                progress(&state, &history, digest),
            ));
        }
        let (result, reason) = match crate::wait_pair::combined(readings) {
            Progress::Ended(Ending::Completed, reason) => ("completed", reason),
            Progress::Ended(Ending::Failed, reason) => ("failed", reason),
            Progress::Pending(reason) if tokio::time::Instant::now() >= deadline => {
                ("timed-out", reason)
            }
            Progress::Pending(_) => {
                // The last poll falls on the deadline: a wait of 2 s waits the 2 s.
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                tokio::time::sleep(interval.min(left)).await;
                continue;
            }
        };
        return Ok(Waited {
            service: service.to_string(),
            digest: digest.to_string(),
            result: result.into(),
            reason,
            polls,
        });
    }
}

/// How much history one poll reads: the records of one push and its deployment, and what
/// happened to the service meanwhile.
const HISTORY_READ: usize = 25;

#[cfg(test)]
#[path = "wait_tests.rs"]
mod tests;
