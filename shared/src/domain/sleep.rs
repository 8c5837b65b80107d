//! Sleep and wake decisions: what a reconcile (or an operator's wake or sleep) does to one
//! service, from its schedule, what ECS and Application Auto Scaling report, and its state.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

use super::service::revision_name;
use super::settings::ScheduleSettings;
use super::state::{Capacity, Deployment, DeploymentStatus, OperatorOverride, ServiceState, Sleep};

/// How long a deployment still in progress keeps its service awake: a sleep would cut the
/// rollout short, and the alarms of a service deckhand put to sleep roll nothing back. Past
/// this, an ECS deployment that never reported its end no longer holds the schedule back.
pub const ROLLOUT_HOLD: TimeDelta = TimeDelta::hours(1);

/// What the service runs with now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub desired_count: i32,
    /// The scalable target, when Application Auto Scaling manages the service.
    pub scalable: Option<Capacity>,
    /// The service is a side of a pair whose traffic moves (or whose new side is inside its
    /// guard window): why, in words. A sleep would take the tasks of a side that has traffic.
    pub pair_moving: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ScaleDecision {
    /// Save what it runs with and set the asleep count.
    Sleep { reason: String, asleep_count: i32 },
    /// Restore exactly what was saved.
    Wake { reason: String, saved: Sleep },
    /// Someone changed the count or the scaling while it slept: close the saved record and
    /// leave the service as they set it until `until` (the next scheduled wake-up).
    HandScaled {
        reason: String,
        saved: Sleep,
        until: Option<DateTime<Utc>>,
    },
    /// It should sleep, but not now.
    Postpone { reason: String },
    /// Already as it should be.
    Unchanged { reason: String },
}

impl ScaleDecision {
    pub fn reason(&self) -> &str {
        match self {
            Self::Sleep { reason, .. }
            | Self::Wake { reason, .. }
            | Self::HandScaled { reason, .. }
            | Self::Postpone { reason }
            | Self::Unchanged { reason } => reason,
        }
    }
}

/// Whether the service should run at `at`, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Want {
    Awake(String),
    Asleep(String),
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The operator's override, if it still runs at `at`.
pub fn active_override(state: &ServiceState, at: DateTime<Utc>) -> Option<&OperatorOverride> {
    state.operator_override.as_ref().filter(|o| o.until > at)
}

fn want(settings: Option<&ScheduleSettings>, state: &ServiceState, at: DateTime<Utc>) -> Want {
    if let Some(o) = active_override(state, at) {
        let until = rfc3339(o.until);
        return if o.awake {
            Want::Awake(format!("kept awake by an operator until {until}"))
        } else {
            Want::Asleep(format!("kept asleep by an operator until {until}"))
        };
    }
    match settings {
        None => Want::Awake("deckhand:awake was removed while it slept".into()),
        Some(s) if s.schedule.is_awake(at) => Want::Awake(s.schedule.explain(at)),
        Some(s) => Want::Asleep(s.schedule.explain(at)),
    }
}

/// The sleep record this run acts on: a dry-run record counts only in dry run.
fn sleeping(state: &ServiceState, dry_run: bool) -> Option<&Sleep> {
    state.sleep.as_ref().filter(|s| dry_run || !s.dry_run)
}

/// Whether the service no longer runs with what deckhand set when it put it to sleep.
fn scaled_by_hand(saved: &Sleep, observed: &Observed) -> bool {
    if saved.dry_run || saved.pending {
        return false;
    }
    // Min and max only: what deckhand suspended while asleep is its own doing.
    let set = saved
        .scalable
        .map(|_| (saved.asleep_count, saved.asleep_count));
    observed.desired_count != saved.asleep_count || observed.scalable.map(|c| (c.min, c.max)) != set
}

fn describe(observed: &Observed) -> String {
    match observed.scalable {
        Some(c) => format!(
            "desired count {}, autoscaling min {} max {}",
            observed.desired_count, c.min, c.max
        ),
        None => format!("desired count {}", observed.desired_count),
    }
}

/// The decision for one service at `at`. `settings` is `None` when the service lost its
/// `deckhand:awake` tag (it is still considered while deckhand keeps it asleep).
pub fn decide_scale(
    settings: Option<&ScheduleSettings>,
    observed: &Observed,
    state: &ServiceState,
    at: DateTime<Utc>,
    dry_run: bool,
) -> ScaleDecision {
    let want = want(settings, state, at);
    let asleep = sleeping(state, dry_run);
    if let Some(saved) = asleep.filter(|saved| scaled_by_hand(saved, observed)) {
        let until = match &want {
            Want::Awake(_) => None,
            Want::Asleep(_) => match active_override(state, at) {
                Some(o) => Some(o.until),
                None => settings.and_then(|s| s.schedule.next_wake(at)),
            },
        };
        let left = until.map_or(String::new(), |u| {
            format!("; the schedule applies again from {}", rfc3339(u))
        });
        return ScaleDecision::HandScaled {
            reason: format!(
                "scaled by hand while asleep (now {}; deckhand set {}), left as it is{left}",
                describe(observed),
                saved.asleep_count
            ),
            saved: saved.clone(),
            until,
        };
    }
    match (want, asleep) {
        (Want::Awake(why), Some(saved)) => ScaleDecision::Wake {
            reason: why,
            saved: saved.clone(),
        },
        (Want::Awake(why), None) => ScaleDecision::Unchanged {
            reason: format!("awake: {why}"),
        },
        // Interrupted half-way: finish putting it to sleep with the values saved before.
        (Want::Asleep(why), Some(saved)) if saved.pending => ScaleDecision::Sleep {
            reason: format!("{why} (finishing an interrupted change)"),
            asleep_count: saved.asleep_count,
        },
        (Want::Asleep(why), Some(saved)) => ScaleDecision::Unchanged {
            reason: format!("asleep since {}: {why}", rfc3339(saved.since)),
        },
        (Want::Asleep(why), None) => {
            let asleep_count = settings.map_or(0, |s| s.asleep_count);
            if let Some(until) = state.left_alone_until.filter(|u| *u > at) {
                return ScaleDecision::Unchanged {
                    reason: format!("left as scaled by hand until {}: {why}", rfc3339(until)),
                };
            }
            // An operator who asks for a sleep gets it, deployment or not.
            let by_operator = active_override(state, at).is_some();
            if let Some(reason) = state
                .deployment
                .as_ref()
                .filter(|d| !by_operator && (dry_run || !d.dry_run))
                .and_then(|d| guarding(d, at))
            {
                return ScaleDecision::Postpone { reason };
            }
            if let Some(reason) = observed.pair_moving.clone().filter(|_| !by_operator) {
                return ScaleDecision::Postpone { reason };
            }
            let at_asleep_level = observed.desired_count == asleep_count
                && observed
                    .scalable
                    .is_none_or(|c| c.min == asleep_count && c.max == asleep_count);
            if at_asleep_level {
                return ScaleDecision::Unchanged {
                    reason: format!("already runs {asleep_count} task(s), nothing to save: {why}"),
                };
            }
            ScaleDecision::Sleep {
                reason: why,
                asleep_count,
            }
        }
    }
}

/// Why the deployment still needs the service awake at `at`: a rollout in progress, or a guard
/// window still open. Its alarms must be able to roll it back, and a sleep would silence them.
fn guarding(d: &Deployment, at: DateTime<Utc>) -> Option<String> {
    let to = revision_name(&d.to);
    match d.status {
        DeploymentStatus::InProgress if d.started_at + ROLLOUT_HOLD > at => Some(format!(
            "the deployment of {to} is in progress since {}; not put to sleep before it ends",
            rfc3339(d.started_at)
        )),
        DeploymentStatus::Completed => d.guard_until.filter(|u| *u > at).map(|until| {
            format!(
                "the guard window of the deployment of {to} is open until {}; not put to sleep before it closes",
                rfc3339(until)
            )
        }),
        _ => None,
    }
}

/// The sleep record for a service put to sleep now.
pub fn sleep_record(
    observed: &Observed,
    asleep_count: i32,
    at: DateTime<Utc>,
    dry_run: bool,
    cause: &str,
) -> Sleep {
    Sleep {
        since: at,
        desired_count: observed.desired_count,
        scalable: observed.scalable,
        asleep_count,
        dry_run,
        pending: false,
        cause: cause.to_owned(),
    }
}

/// Tasks times hours that a sleep saved, for reporting.
pub fn task_hours_saved(saved: &Sleep, woken_at: DateTime<Utc>) -> f64 {
    let tasks = f64::from((saved.desired_count - saved.asleep_count).max(0));
    let hours = (woken_at - saved.since).num_seconds().max(0) as f64 / 3600.0;
    (tasks * hours * 100.0).round() / 100.0
}

#[cfg(test)]
#[path = "sleep_tests.rs"]
mod tests;
