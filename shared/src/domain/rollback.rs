//! Rollback on alarm: which services an alarm guards, and whether it rolls one back.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use super::image::Digest;
use super::service::{ServiceKey, revision_name};
use super::settings::{TAG_ALARMS, TAG_DEPLOY, TAG_ROLLBACK, TagProblem, Tags};
use super::state::{DeploymentStatus, RolledBack, ServiceState, WAKE_MARGIN};

/// Alarm tag naming the service it guards.
pub const ALARM_TAG_SERVICE: &str = "deckhand:service";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "OK" => Some(Self::Ok),
            "ALARM" => Some(Self::Alarm),
            "INSUFFICIENT_DATA" => Some(Self::InsufficientData),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// A state change of a CloudWatch alarm, whatever shape it arrived in.
#[derive(Clone, Debug, PartialEq)]
pub struct Alarm {
    /// Identifies this delivery, so that a repeated one is recognised.
    pub event_id: String,
    pub name: String,
    pub arn: Option<String>,
    pub state: AlarmState,
    pub previous: Option<AlarmState>,
    pub reason: String,
    /// When the alarm changed state.
    pub at: DateTime<Utc>,
    /// The dimensions of each metric the alarm watches.
    pub dimensions: Vec<BTreeMap<String, String>>,
    /// A composite alarm's rule: it watches other alarms, no metric of its own.
    pub rule: Option<String>,
    pub description: Option<String>,
    /// The ARNs the alarm acts on in ALARM, when the event says (only SNS messages do).
    pub actions: Option<Vec<String>>,
}

impl Alarm {
    /// Only a transition into ALARM acts.
    pub fn fired(&self) -> bool {
        self.state == AlarmState::Alarm && self.previous != Some(AlarmState::Alarm)
    }

    /// The service a metric names with `ClusterName` and `ServiceName`.
    pub fn metric_services(&self) -> Vec<ServiceKey> {
        self.dimensions
            .iter()
            .filter_map(|d| {
                Some(ServiceKey::new(
                    d.get("ClusterName")?,
                    d.get("ServiceName")?,
                ))
            })
            .collect()
    }
}

/// Why an alarm is Application Auto Scaling's: such alarms go into ALARM whenever the service
/// needs more (or fewer) tasks, which says nothing about the image it runs.
pub fn scaling_alarm(alarm: &Alarm) -> Option<&'static str> {
    // Target tracking: Application Auto Scaling creates the alarms, names them
    // `TargetTracking-...` and describes them as belonging to the policy.
    if alarm.name.starts_with("TargetTracking-") {
        return Some("a target tracking alarm of Application Auto Scaling (by its name)");
    }
    if alarm
        .description
        .as_deref()
        .is_some_and(|d| d.contains("For TargetTrackingScaling policy"))
    {
        return Some("a target tracking alarm of Application Auto Scaling (by its description)");
    }
    // Step scaling: an alarm of one's own whose action is a scaling policy.
    let scaling_policy =
        |arn: &String| arn.contains(":autoscaling:") && arn.contains(":scalingPolicy:");
    if alarm.actions.iter().flatten().any(scaling_policy) {
        return Some("a step scaling alarm (its action is a scaling policy)");
    }
    None
}

/// What a service's tags say about rollback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackSettings {
    pub enabled: bool,
    pub alarms: Vec<String>,
    /// The service's own `deckhand:dry-run` (`settings::dry_run_of`).
    pub dry_run: Option<bool>,
}

impl RollbackSettings {
    pub fn from_tags(tags: &Tags) -> Result<Self, TagProblem> {
        let enabled = match tags.get(TAG_ROLLBACK).map(|v| v.trim()) {
            None => tags.contains_key(TAG_DEPLOY),
            Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(TagProblem {
                    tag: TAG_ROLLBACK.into(),
                    value: other.into(),
                    message: "expected on or off".into(),
                });
            }
        };
        let alarms = tags
            .get(TAG_ALARMS)
            .map(|v| alarm_names(v).map(str::to_owned).collect())
            .unwrap_or_default();
        let dry_run = super::settings::dry_run_of(tags)?;
        Ok(Self {
            enabled,
            alarms,
            dry_run,
        })
    }
}

/// The alarm names a `deckhand:alarms` value lists.
fn alarm_names(value: &str) -> impl Iterator<Item = &str> {
    value.split_whitespace()
}

/// Whether a `deckhand:alarms` value lists the alarm.
pub fn lists_alarm(value: &str, alarm: &str) -> bool {
    alarm_names(value).any(|name| name == alarm)
}

/// Why an alarm concerns a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Guard {
    /// The service lists the alarm in `deckhand:alarms`.
    ServiceTag,
    /// The alarm carries `deckhand:service`.
    AlarmTag,
    /// The alarm's metric names the service's cluster and name.
    Metric,
}

impl Guard {
    pub fn describe(self) -> &'static str {
        match self {
            Self::ServiceTag => "listed in the service's deckhand:alarms",
            Self::AlarmTag => "the alarm's deckhand:service tag names it",
            Self::Metric => "the alarm's metric names its cluster and service",
        }
    }
}

/// Whether the alarm guards a service, from the ways the spec allows. A metric alone guards
/// only services with rollback on, and never through an alarm of Application Auto Scaling; an
/// explicit mapping is honoured (and a rollback that is off is reported).
pub fn guard_of(
    alarm: &Alarm,
    service: &ServiceKey,
    settings: &RollbackSettings,
    alarm_tag: Option<&ServiceKey>,
) -> Option<Guard> {
    if settings.alarms.contains(&alarm.name) {
        Some(Guard::ServiceTag)
    } else if alarm_tag == Some(service) {
        Some(Guard::AlarmTag)
    } else if settings.enabled
        && scaling_alarm(alarm).is_none()
        && alarm.metric_services().contains(service)
    {
        Some(Guard::Metric)
    } else {
        None
    }
}

/// What an alarm of the account means for one service (`deckhand check`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlarmMeaning {
    /// It guards the service: going into ALARM inside a guard window rolls it back.
    Guards(Guard),
    /// Its metric names the service, but Application Auto Scaling owns it: never a rollback.
    IgnoredScaling(&'static str),
}

pub fn alarm_meaning(
    alarm: &Alarm,
    service: &ServiceKey,
    settings: &RollbackSettings,
    alarm_tag: Option<&ServiceKey>,
) -> Option<AlarmMeaning> {
    if let Some(guard) = guard_of(alarm, service, settings, alarm_tag) {
        return Some(AlarmMeaning::Guards(guard));
    }
    scaling_alarm(alarm)
        .filter(|_| alarm.metric_services().contains(service))
        .map(AlarmMeaning::IgnoredScaling)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RollbackDecision {
    RollBack {
        /// Task definition ARNs: what runs now and the known-good target.
        from: String,
        to: String,
        reason: String,
    },
    /// ECS already runs the target: record the rollback (quarantine, history, announcement)
    /// without changing anything in ECS.
    Finish {
        from: String,
        to: String,
        reason: String,
    },
    Skip(String),
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Why an alarm says nothing about the image, if it does not: deckhand itself took the tasks
/// away (or is bringing them back), and health and error alarms then fire whatever the image.
pub fn excused(alarm: &Alarm, state: &ServiceState) -> Option<String> {
    if let Some(sleep) = state.sleep.as_ref().filter(|s| !s.dry_run) {
        let doing = if sleep.pending {
            "deckhand is putting the service to sleep"
        } else {
            "deckhand put the service to sleep"
        };
        return Some(format!(
            "{doing} at {}; its alarms while it sleeps say nothing about its image",
            rfc3339(sleep.since)
        ));
    }
    state
        .woken_at
        .filter(|w| alarm.at < *w + WAKE_MARGIN)
        .map(|woken| {
            format!(
                "deckhand woke the service at {} and its tasks get {} minutes to start; the alarm changed state at {}",
                rfc3339(woken),
                WAKE_MARGIN.num_minutes(),
                rfc3339(alarm.at)
            )
        })
}

/// The decision for one service guarded by an alarm that fired. `running` is the task
/// definition the service runs; `target_quarantined` names a quarantined digest that the
/// known-good revision runs, if any. In dry run (`dry_run`) a would-be deployment is decided
/// as the deployment it stands for: the service never ran it, but deckhand would have.
pub fn decide_rollback(
    alarm: &Alarm,
    enabled: bool,
    state: &ServiceState,
    running: &str,
    target_quarantined: Option<&str>,
    dry_run: bool,
) -> RollbackDecision {
    use RollbackDecision::Skip;
    if !enabled {
        return Skip("rollback is off for this service (deckhand:rollback = off)".into());
    }
    if let Some(reason) = excused(alarm, state) {
        return Skip(reason);
    }
    if let Some(pending) = &state.restoring {
        return Skip(format!("{}; it goes on by itself", pending.describe()));
    }
    let Some(d) = state.deployment.as_ref().filter(|d| dry_run || !d.dry_run) else {
        let trial = if state.deployment.is_some() {
            " (its latest deployment was a dry run's)"
        } else {
            ""
        };
        return Skip(format!(
            "deckhand has not deployed this service{trial}, so there is nothing to roll back"
        ));
    };
    let to = if d.dry_run {
        format!(
            "{} (would be cloned from {})",
            d.digest.short(),
            revision_name(&d.to)
        )
    } else {
        revision_name(&d.to).to_owned()
    };
    match d.status {
        DeploymentStatus::RolledBack => {
            let by = d
                .rollback
                .as_ref()
                .map(|r| format!(" after alarm {} at {}", r.alarm, rfc3339(r.at)))
                .unwrap_or_default();
            let would = if d.dry_run { " (dry run)" } else { "" };
            return Skip(format!(
                "the deployment of {to} was already rolled back{would}{by}; one rollback per deployment"
            ));
        }
        DeploymentStatus::Failed => {
            return Skip(format!(
                "the deployment of {to} already failed and its digest is quarantined"
            ));
        }
        DeploymentStatus::Completed => match d.guard_until {
            Some(until) if alarm.at < until => {}
            until => {
                let ended = until.map_or(String::new(), |u| {
                    format!(", its guard window ended at {}", rfc3339(u))
                });
                return Skip(format!(
                    "outside the guard window: the deployment of {to} completed{ended}, before the alarm at {}",
                    rfc3339(alarm.at)
                ));
            }
        },
        DeploymentStatus::InProgress => {
            // No ECS deployment followed the would-be one: its window counts from the push.
            if let Some(until) = d.guard_until.filter(|u| d.dry_run && alarm.at >= *u) {
                return Skip(format!(
                    "outside the guard window: the would-be deployment of {to}, which no ECS deployment followed, was guarded until {}, before the alarm at {}",
                    rfc3339(until),
                    rfc3339(alarm.at)
                ));
            }
        }
    }
    if alarm.at < d.started_at {
        return Skip(format!(
            "the alarm changed state at {}, before the deployment of {to} started",
            rfc3339(alarm.at)
        ));
    }
    // A would-be deployment runs a revision that was never registered: any known-good one,
    // the one it would have been cloned from included, is a target.
    let target = state
        .known_good_at(alarm.at)
        .filter(|k| d.dry_run || *k != d.to);
    if !d.dry_run && running != d.to {
        if let Some(target) = target.filter(|t| *t == running && target_quarantined.is_none()) {
            // What this alarm's rollback would do is done: an earlier attempt whose record
            // was lost after ECS accepted it (or a person as quick). The alarm inside the
            // window is the same evidence as ever; only the record is missing.
            return RollbackDecision::Finish {
                from: d.to.clone(),
                to: target.to_owned(),
                reason: format!(
                    "alarm {} went into ALARM inside the guard window of {to}: {}; the service already runs the known-good revision {}, so the rollback is recorded without changing ECS (an earlier attempt rolled it back and its record was lost)",
                    alarm.name,
                    alarm.reason,
                    revision_name(target)
                ),
            };
        }
        return Skip(format!(
            "the service runs {}, not deckhand's deployment {to}; nothing of deckhand's to roll back",
            revision_name(running)
        ));
    }
    let Some(target) = target else {
        return Skip("there is no known-good revision to roll back to".into());
    };
    if let Some(digest) = target_quarantined {
        return Skip(format!(
            "the known-good revision {} runs quarantined digest {digest}; not rolling back onto it",
            revision_name(target)
        ));
    }
    let when = match d.status {
        DeploymentStatus::InProgress => "while the deployment was in progress".to_owned(),
        _ => format!(
            "inside the guard window (until {})",
            d.guard_until.map_or_else(String::new, rfc3339)
        ),
    };
    let what = if d.dry_run {
        format!(
            "; the would-be deployment of {to} would go back to {}",
            revision_name(target)
        )
    } else {
        String::new()
    };
    RollbackDecision::RollBack {
        from: d.to.clone(),
        to: target.to_owned(),
        reason: format!(
            "alarm {} went into ALARM {when}: {}{what}",
            alarm.name, alarm.reason
        ),
    }
}

/// The state after a rollback from `from` to `to` (in dry run, one that would have been):
/// deckhand's deployment of `from` is marked rolled back, and for real its digest quarantined.
/// A rollback from elsewhere (by hand, off deckhand's revision) leaves deckhand's record of its
/// deployment as it was. Returns the digest of the deployment undone.
pub fn apply_rollback(
    state: &mut ServiceState,
    (from, to): (&str, &str),
    alarm: &str,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Option<Digest> {
    let d = state.deployment.as_mut().filter(|d| d.to == from)?;
    d.status = DeploymentStatus::RolledBack;
    d.finished_at.get_or_insert(now);
    d.rollback = Some(RolledBack {
        alarm: alarm.to_owned(),
        at: now,
        to: to.to_owned(),
    });
    let (digest, id) = (d.digest.clone(), d.id.clone());
    if !dry_run {
        let reason = format!("rolled back after alarm {alarm}");
        state.quarantine(&digest, reason, now, Some(id));
    }
    Some(digest)
}

/// An operator's rollback: to `requested` (a task definition ARN) or else the known-good
/// revision, whatever the guard window says. Never onto a quarantined digest.
pub fn decide_manual_rollback(
    state: &ServiceState,
    now: DateTime<Utc>,
    running: &str,
    requested: Option<&str>,
    target_quarantined: Option<&str>,
) -> RollbackDecision {
    use RollbackDecision::Skip;
    if let Some(pending) = &state.restoring {
        return Skip(format!("{}; it goes on by itself", pending.describe()));
    }
    let Some(target) = requested.or(state.known_good_at(now)) else {
        return Skip("there is no known-good revision; name one with --to".into());
    };
    if target == running {
        return Skip(format!(
            "the service already runs {}",
            revision_name(target)
        ));
    }
    if let Some(digest) = target_quarantined {
        return Skip(format!(
            "{} runs quarantined digest {digest}; release it first",
            revision_name(target)
        ));
    }
    RollbackDecision::RollBack {
        from: running.to_owned(),
        to: target.to_owned(),
        reason: format!("rolled back by hand to {}", revision_name(target)),
    }
}

#[cfg(test)]
#[path = "rollback_tests.rs"]
mod tests;
