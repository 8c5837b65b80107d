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
mod tests {
    use chrono_tz::Tz;

    use super::*;
    use crate::domain::settings::Tags;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn settings(asleep_count: &str) -> ScheduleSettings {
        let tags: Tags = [
            ("deckhand:awake", "Mon-Fri 07:00-19:00"),
            ("deckhand:timezone", "Europe/London"),
            ("deckhand:asleep-count", asleep_count),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        ScheduleSettings::from_tags(&tags, Tz::UTC)
            .unwrap()
            .unwrap()
    }

    // Monday 23 November 2026, London is on GMT.
    const DAY: &str = "2026-11-23T12:00:00Z";
    const NIGHT: &str = "2026-11-23T20:00:00Z";

    fn running(desired_count: i32, scalable: Option<(i32, i32)>) -> Observed {
        Observed {
            pair_moving: None,
            desired_count,
            scalable: scalable.map(|(min, max)| Capacity::new(min, max)),
        }
    }

    fn asleep_state(desired: i32, scalable: Option<(i32, i32)>, dry_run: bool) -> ServiceState {
        ServiceState {
            sleep: Some(sleep_record(
                &running(desired, scalable),
                0,
                utc("2026-11-23T19:00:00Z"),
                dry_run,
                "reconcile",
            )),
            ..Default::default()
        }
    }

    #[test]
    fn sleeps_at_night_and_wakes_in_the_morning() {
        let s = settings("0");
        let d = decide_scale(
            Some(&s),
            &running(3, Some((2, 6))),
            &ServiceState::default(),
            utc(NIGHT),
            false,
        );
        assert!(
            matches!(&d, ScaleDecision::Sleep { asleep_count: 0, reason } if reason.contains("outside Mon-Fri 07:00-19:00")),
            "{d:?}"
        );
        let state = asleep_state(3, Some((2, 6)), false);
        let d = decide_scale(
            Some(&s),
            &running(0, Some((0, 0))),
            &state,
            utc(NIGHT),
            false,
        );
        assert!(matches!(d, ScaleDecision::Unchanged { .. }), "{d:?}");
        let morning = utc("2026-11-24T07:00:00Z");
        match decide_scale(Some(&s), &running(0, Some((0, 0))), &state, morning, false) {
            ScaleDecision::Wake { saved, .. } => {
                assert_eq!(saved.desired_count, 3);
                assert_eq!(saved.scalable, Some(Capacity::new(2, 6)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            task_hours_saved(state.sleep.as_ref().unwrap(), morning),
            36.0
        );
    }

    #[test]
    fn awake_in_the_day_is_unchanged() {
        let d = decide_scale(
            Some(&settings("0")),
            &running(3, None),
            &ServiceState::default(),
            utc(DAY),
            false,
        );
        assert!(
            matches!(&d, ScaleDecision::Unchanged { reason } if reason.starts_with("awake: Mon 12:00 inside")),
            "{d:?}"
        );
    }

    #[test]
    fn only_services_deckhand_put_to_sleep_are_woken() {
        // At 0 tasks in the morning, but not by deckhand: left alone.
        let d = decide_scale(
            Some(&settings("0")),
            &running(0, None),
            &ServiceState::default(),
            utc(DAY),
            false,
        );
        assert!(matches!(d, ScaleDecision::Unchanged { .. }), "{d:?}");
        // Already at the asleep count at night: nothing to save, nothing to wake later.
        let d = decide_scale(
            Some(&settings("0")),
            &running(0, None),
            &ServiceState::default(),
            utc(NIGHT),
            false,
        );
        assert!(
            matches!(&d, ScaleDecision::Unchanged { reason } if reason.contains("nothing to save")),
            "{d:?}"
        );
    }

    #[test]
    fn scaled_by_hand_while_asleep_is_left_until_the_next_wake() {
        let s = settings("0");
        let state = asleep_state(3, Some((2, 6)), false);
        for observed in [
            running(2, Some((0, 0))),
            running(0, Some((1, 4))),
            running(0, None),
        ] {
            match decide_scale(Some(&s), &observed, &state, utc(NIGHT), false) {
                ScaleDecision::HandScaled { until, reason, .. } => {
                    assert_eq!(until, Some(utc("2026-11-24T07:00:00Z")), "{observed:?}");
                    assert!(reason.contains("scaled by hand"), "{reason}");
                }
                other => panic!("{observed:?}: {other:?}"),
            }
        }
        // At the wake-up, a hand-scaled service is not restored over the person's choice.
        let d = decide_scale(
            Some(&s),
            &running(5, Some((0, 0))),
            &state,
            utc("2026-11-24T07:00:00Z"),
            false,
        );
        assert!(
            matches!(d, ScaleDecision::HandScaled { until: None, .. }),
            "{d:?}"
        );
        // After the record is closed the service is left alone until the wake-up, then the
        // schedule applies again the next evening.
        let closed = ServiceState {
            left_alone_until: Some(utc("2026-11-24T07:00:00Z")),
            ..Default::default()
        };
        let d = decide_scale(
            Some(&s),
            &running(2, None),
            &closed,
            utc("2026-11-23T23:00:00Z"),
            false,
        );
        assert!(
            matches!(&d, ScaleDecision::Unchanged { reason } if reason.starts_with("left as scaled by hand")),
            "{d:?}"
        );
        let d = decide_scale(
            Some(&s),
            &running(2, None),
            &closed,
            utc("2026-11-24T19:00:00Z"),
            false,
        );
        assert!(matches!(d, ScaleDecision::Sleep { .. }), "{d:?}");
    }

    #[test]
    fn a_deployment_in_progress_or_in_its_guard_window_postpones_the_sleep() {
        let state = ServiceState {
            deployment: Some(Deployment {
                id: "e".into(),
                repository: "web".into(),
                digest: format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
                tag: None,
                containers: vec!["web".into()],
                from: "web:1".into(),
                to: "web:2".into(),
                started_at: utc("2026-11-23T19:55:00Z"),
                pushed_at: None,
                status: DeploymentStatus::InProgress,
                ecs_deployment_id: None,
                finished_at: None,
                guard_until: None,
                at_zero_tasks: false,
                rollback: None,
                dry_run: false,
                alarmed: None,
                early_completed_at: None,
                from_images: Vec::new(),
            }),
            ..Default::default()
        };
        let s = settings("0");
        let d = decide_scale(Some(&s), &running(2, None), &state, utc(NIGHT), false);
        assert!(matches!(d, ScaleDecision::Postpone { .. }), "{d:?}");
        let mut asked = state.clone();
        asked.operator_override = Some(OperatorOverride {
            awake: false,
            until: utc("2026-11-24T07:00:00Z"),
            at: utc(NIGHT),
            cause: "sleep".into(),
        });
        let d = decide_scale(Some(&s), &running(2, None), &asked, utc(NIGHT), false);
        assert!(
            matches!(d, ScaleDecision::Sleep { .. }),
            "an operator's sleep: {d:?}"
        );
        // A rollout that never reported its end holds the schedule back an hour at most.
        let d = decide_scale(
            Some(&s),
            &running(2, None),
            &state,
            utc("2026-11-23T20:50:00Z"),
            false,
        );
        assert!(
            matches!(&d, ScaleDecision::Postpone { reason } if reason.contains("in progress since")),
            "{d:?}"
        );
        let d = decide_scale(
            Some(&s),
            &running(2, None),
            &state,
            utc("2026-11-23T20:56:00Z"),
            false,
        );
        assert!(matches!(d, ScaleDecision::Sleep { .. }), "{d:?}");

        // Completed: the guard window keeps it awake until it closes, so that its alarms can
        // still roll it back; a deployment already rolled back or failed holds nothing back.
        let mut completed = state.clone();
        if let Some(d) = completed.deployment.as_mut() {
            d.status = DeploymentStatus::Completed;
            d.finished_at = Some(utc("2026-11-23T19:58:00Z"));
            d.guard_until = Some(utc("2026-11-23T20:28:00Z"));
        }
        let d = decide_scale(Some(&s), &running(2, None), &completed, utc(NIGHT), false);
        assert!(
            matches!(&d, ScaleDecision::Postpone { reason } if reason.contains("open until 2026-11-23T20:28:00Z")),
            "{d:?}"
        );
        let d = decide_scale(
            Some(&s),
            &running(2, None),
            &completed,
            utc("2026-11-23T20:28:00Z"),
            false,
        );
        assert!(matches!(d, ScaleDecision::Sleep { .. }), "{d:?}");
        let mut rolled_back = completed.clone();
        if let Some(d) = rolled_back.deployment.as_mut() {
            d.status = DeploymentStatus::RolledBack;
        }
        let d = decide_scale(Some(&s), &running(2, None), &rolled_back, utc(NIGHT), false);
        assert!(matches!(d, ScaleDecision::Sleep { .. }), "{d:?}");
    }

    #[test]
    fn operator_overrides_win_until_they_expire() {
        let s = settings("1");
        let mut state = asleep_state(3, None, false);
        state.sleep.as_mut().unwrap().asleep_count = 1;
        state.operator_override = Some(OperatorOverride {
            awake: true,
            until: utc("2026-11-23T23:00:00Z"),
            at: utc("2026-11-23T21:00:00Z"),
            cause: "wake".into(),
        });
        let d = decide_scale(
            Some(&s),
            &running(1, None),
            &state,
            utc("2026-11-23T21:00:00Z"),
            false,
        );
        assert!(
            matches!(&d, ScaleDecision::Wake { reason, .. } if reason.contains("kept awake by an operator until 2026-11-23T23:00:00Z")),
            "{d:?}"
        );
        let awake = ServiceState {
            operator_override: state.operator_override.clone(),
            ..Default::default()
        };
        let d = decide_scale(
            Some(&s),
            &running(3, None),
            &awake,
            utc("2026-11-23T22:59:00Z"),
            false,
        );
        assert!(matches!(d, ScaleDecision::Unchanged { .. }), "{d:?}");
        let d = decide_scale(
            Some(&s),
            &running(3, None),
            &awake,
            utc("2026-11-23T23:00:00Z"),
            false,
        );
        assert!(
            matches!(
                &d,
                ScaleDecision::Sleep {
                    asleep_count: 1,
                    ..
                }
            ),
            "expired: {d:?}"
        );
        let kept_asleep = ServiceState {
            operator_override: Some(OperatorOverride {
                awake: false,
                until: utc("2026-11-24T10:00:00Z"),
                at: utc(DAY),
                cause: "sleep".into(),
            }),
            ..Default::default()
        };
        let d = decide_scale(Some(&s), &running(3, None), &kept_asleep, utc(DAY), false);
        assert!(matches!(d, ScaleDecision::Sleep { .. }), "{d:?}");
    }

    #[test]
    fn an_interrupted_change_is_finished_not_taken_for_a_hand_change() {
        let s = settings("0");
        let mut state = asleep_state(3, Some((2, 6)), false);
        state.sleep.as_mut().unwrap().pending = true;
        // Capacity set, desired count not yet: finish the sleep.
        let half = running(3, Some((0, 0)));
        let d = decide_scale(Some(&s), &half, &state, utc(NIGHT), false);
        assert!(
            matches!(
                d,
                ScaleDecision::Sleep {
                    asleep_count: 0,
                    ..
                }
            ),
            "{d:?}"
        );
        // Capacity restored, desired count not yet: finish the wake.
        let half = running(0, Some((2, 6)));
        let morning = utc("2026-11-24T07:30:00Z");
        let d = decide_scale(Some(&s), &half, &state, morning, false);
        assert!(
            matches!(&d, ScaleDecision::Wake { saved, .. } if saved.desired_count == 3),
            "{d:?}"
        );
    }

    #[test]
    fn a_removed_schedule_wakes_what_deckhand_put_to_sleep() {
        let state = asleep_state(2, None, false);
        let d = decide_scale(None, &running(0, None), &state, utc(NIGHT), false);
        assert!(
            matches!(&d, ScaleDecision::Wake { reason, .. } if reason.contains("removed")),
            "{d:?}"
        );
    }

    #[test]
    fn dry_run_records_count_only_in_dry_run() {
        let s = settings("0");
        let pretend = asleep_state(3, None, true);
        // In dry run the pretend sleep stands and is never taken for a hand change.
        let d = decide_scale(Some(&s), &running(3, None), &pretend, utc(NIGHT), true);
        assert!(matches!(d, ScaleDecision::Unchanged { .. }), "{d:?}");
        let d = decide_scale(Some(&s), &running(3, None), &pretend, utc(DAY), true);
        assert!(matches!(d, ScaleDecision::Wake { .. }), "{d:?}");
        // Out of dry run it is as if the service never slept.
        let d = decide_scale(Some(&s), &running(3, None), &pretend, utc(NIGHT), false);
        assert!(matches!(d, ScaleDecision::Sleep { .. }), "{d:?}");
    }
}
