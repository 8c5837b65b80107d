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
