use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::*;
use crate::domain::deploy::{DeploymentEvent, DeploymentEventKind};
use crate::domain::fleet::{EcsDeployment, ServiceView};
use crate::domain::service::ServiceKey;
use crate::domain::state::{Deployment, DeploymentStatus, ServiceState, Sleep};
use crate::domain::strategy::DeploymentController;

const GUARD: TimeDelta = TimeDelta::minutes(30);

fn arn(revision: u32) -> String {
    format!("arn:aws:ecs:eu-west-1:123456789012:task-definition/web:{revision}")
}

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap() + TimeDelta::minutes(minute)
}

fn service(running: u32, listed: &[(&str, u32)]) -> ServiceView {
    ServiceView {
        key: ServiceKey::new("prod", "web"),
        arn: "arn:aws:ecs:eu-west-1:123456789012:service/prod/web".into(),
        task_definition: arn(running),
        desired_count: 2,
        running_count: 2,
        tags: BTreeMap::new(),
        deployments: listed
            .iter()
            .map(|(id, revision)| EcsDeployment {
                id: (*id).into(),
                task_definition: arn(*revision),
                status: "PRIMARY".into(),
                rollout_state: None,
            })
            .collect(),
        controller: DeploymentController::Ecs,
        target_groups: Vec::new(),
        strategy: Default::default(),
        load_balanced: None,
        task_sets: Vec::new(),
        placement: Default::default(),
        early_success: None,
        service_revisions: Vec::new(),
    }
}

/// A service whose old deployment still drains beside the new one.
fn rolling(running: u32) -> ServiceView {
    let mut svc = service(running, &[("ecs-svc/new", running), ("ecs-svc/old", 1)]);
    svc.deployments[1].status = "ACTIVE".into();
    svc
}

fn event(kind: DeploymentEventKind, id: &str, minute: i64) -> DeploymentEvent {
    DeploymentEvent {
        event_id: format!("{id}-{minute}"),
        service: ServiceKey::new("prod", "web"),
        kind,
        ecs_deployment_id: id.into(),
        at: at(minute),
        reason: None,
    }
}

/// Follows the event into the state, as the deploy function does.
fn follow(state: &mut ServiceState, e: &DeploymentEvent, service: &ServiceView) -> String {
    match follow_deployment(e, state, service, GUARD) {
        SeenDecision::Follow { seen, reason } => {
            apply_seen(state, seen, e.at);
            reason
        }
        SeenDecision::Unchanged(reason) => format!("unchanged: {reason}"),
    }
}

fn ours(from: u32, to: u32, status: DeploymentStatus, started: i64) -> Deployment {
    let completed = status != DeploymentStatus::InProgress;
    Deployment {
        id: "push".into(),
        repository: "web".into(),
        digest: format!("sha256:{}", "b".repeat(64)).parse().unwrap(),
        tag: Some("main-2".into()),
        containers: vec!["web".into()],
        from: arn(from),
        to: arn(to),
        started_at: at(started),
        pushed_at: None,
        status,
        ecs_deployment_id: Some("ecs-svc/ours".into()),
        finished_at: completed.then(|| at(started + 5)),
        guard_until: completed.then(|| at(started + 5) + GUARD),
        at_zero_tasks: false,
        rollback: None,
        dry_run: false,
        alarmed: None,
        early_completed_at: None,
        from_images: Vec::new(),
    }
}

fn baseline(revision: u32) -> ServiceState {
    let mut state = ServiceState::default();
    state.adopt_baseline(&arn(revision));
    state
}

/// A pipeline's `update-service` to web:2: followed from its events, it becomes known-good
/// once its whole guard window passed, and not a second before.
#[test]
fn a_deployment_deckhand_did_not_start_becomes_known_good_after_its_guard_window() {
    let mut state = baseline(1);
    let svc = service(2, &[("ecs-svc/ci", 2)]);
    let started = follow(
        &mut state,
        &event(DeploymentEventKind::InProgress, "ecs-svc/ci", 0),
        &svc,
    );
    assert!(
        started.contains("is in progress; deckhand did not start it"),
        "{started}"
    );
    let done = follow(
        &mut state,
        &event(DeploymentEventKind::Completed, "ecs-svc/ci", 5),
        &svc,
    );
    assert!(
        done.contains("becomes known-good at 2026-11-23T10:35:00Z"),
        "{done}"
    );
    assert_eq!(state.known_good_at(at(34)), Some(arn(1).as_str()));
    assert_eq!(state.known_good_at(at(35)), Some(arn(2).as_str()));
    // Settled, and when: a later claim must be newer to win.
    assert_eq!(state.settle(at(35)), Some((Some(arn(1)), arn(2))));
    assert_eq!(state.known_good_since, Some(at(5)));
    assert_eq!(state.settle(at(36)), None);
}

#[test]
fn an_alarm_inside_the_window_keeps_a_revision_from_becoming_known_good() {
    let mut state = baseline(1);
    let svc = service(2, &[("ecs-svc/ci", 2)]);
    follow(
        &mut state,
        &event(DeploymentEventKind::Completed, "ecs-svc/ci", 5),
        &svc,
    );
    // An alarm while another revision runs, or after the window, says nothing about web:2.
    assert_eq!(state.mark_alarmed("web-5xx", at(10), &arn(3)), None);
    assert_eq!(state.mark_alarmed("web-5xx", at(40), &arn(2)), None);
    assert_eq!(
        state.mark_alarmed("web-5xx", at(10), &arn(2)),
        Some("web:2".into())
    );
    // The first alarm is kept.
    assert_eq!(state.mark_alarmed("web-latency", at(12), &arn(2)), None);
    assert_eq!(
        state
            .seen
            .as_ref()
            .and_then(|s| s.alarmed.as_ref())
            .map(|a| a.alarm.as_str()),
        Some("web-5xx")
    );
    assert_eq!(state.known_good_at(at(24 * 60)), Some(arn(1).as_str()));
    // Nor does a first push take it as the baseline.
    let mut first_seen = ServiceState::default();
    follow(
        &mut first_seen,
        &event(DeploymentEventKind::Completed, "ecs-svc/ci", 5),
        &svc,
    );
    first_seen.mark_alarmed("web-5xx", at(10), &arn(2));
    first_seen.adopt_baseline(&arn(2));
    assert_eq!(first_seen.known_good_at(at(24 * 60)), None);
    // deckhand's own deployment that an alarm did not roll back (rollback off) is marked too.
    let mut own = baseline(1);
    own.deployment = Some(ours(1, 2, DeploymentStatus::Completed, 0));
    assert_eq!(
        own.mark_alarmed("web-5xx", at(20), &arn(2)),
        Some("web:2".into())
    );
    assert_eq!(own.known_good_at(at(24 * 60)), Some(arn(1).as_str()));
}

#[test]
fn the_newest_proven_deployment_wins_whoever_started_it() {
    let mut state = baseline(1);
    state.deployment = Some(ours(1, 2, DeploymentStatus::Completed, 0));
    // Terraform moved it to web:3 an hour later.
    let svc = service(3, &[("ecs-svc/tf", 3)]);
    follow(
        &mut state,
        &event(DeploymentEventKind::Completed, "ecs-svc/tf", 60),
        &svc,
    );
    assert_eq!(state.known_good_at(at(50)), Some(arn(2).as_str()));
    assert_eq!(state.known_good_at(at(90)), Some(arn(3).as_str()));
    // An operator's choice holds over what completed before it, not over what completes after.
    state.set_known_good(&arn(1), at(100));
    assert_eq!(state.known_good_at(at(101)), Some(arn(1).as_str()));
    let svc = service(4, &[("ecs-svc/later", 4)]);
    follow(
        &mut state,
        &event(DeploymentEventKind::Completed, "ecs-svc/later", 120),
        &svc,
    );
    assert_eq!(state.known_good_at(at(130)), Some(arn(1).as_str()));
    assert_eq!(state.known_good_at(at(150)), Some(arn(4).as_str()));
    // Replacing the seen deployment settled the proven one before it: nothing is lost.
    assert_eq!(state.known_good.as_deref(), Some(arn(1).as_str()));
}

#[test]
fn what_is_followed_and_what_is_not() {
    let mut state = baseline(1);
    // Not listed by ECS: the revision the service runs.
    let svc = service(2, &[]);
    follow(
        &mut state,
        &event(DeploymentEventKind::InProgress, "ecs-svc/a", 0),
        &svc,
    );
    assert_eq!(
        state.seen.as_ref().map(|s| s.task_definition.clone()),
        Some(arn(2))
    );
    // Listed: what ECS lists, whatever the service runs now.
    let listed = service(9, &[("ecs-svc/a", 2)]);
    let again = follow(
        &mut state,
        &event(DeploymentEventKind::InProgress, "ecs-svc/a", 1),
        &listed,
    );
    assert!(
        again.starts_with("unchanged: ECS deployment ecs-svc/a of web:2 is already recorded"),
        "{again}"
    );
    follow(
        &mut state,
        &event(DeploymentEventKind::Completed, "ecs-svc/a", 5),
        &listed,
    );
    // An IN_PROGRESS arriving after its COMPLETED changes nothing.
    let late = follow(
        &mut state,
        &event(DeploymentEventKind::InProgress, "ecs-svc/a", 2),
        &listed,
    );
    assert!(late.starts_with("unchanged"), "{late}");
    assert_eq!(
        state.seen.as_ref().map(|s| s.status),
        Some(DeploymentStatus::Completed)
    );
    // An older deployment's event after a newer one's.
    let older = follow(
        &mut state,
        &event(DeploymentEventKind::Completed, "ecs-svc/old", -30),
        &svc,
    );
    assert!(
        older.contains("is older than deployment ecs-svc/a"),
        "{older}"
    );

    // An event older than deckhand's latest deployment, no longer listed: its revision is unknown.
    let mut state = baseline(1);
    state.deployment = Some(ours(1, 2, DeploymentStatus::InProgress, 10));
    let stale = follow(
        &mut state,
        &event(DeploymentEventKind::Completed, "ecs-svc/x", 5),
        &service(2, &[]),
    );
    assert!(
        stale.contains("older than deckhand's latest deployment"),
        "{stale}"
    );
    assert!(state.seen.is_none());
    // ECS rolling back onto the revision of deckhand's failed deployment is never followed.
    state.deployment = Some(ours(1, 2, DeploymentStatus::Failed, 10));
    let bad = follow(
        &mut state,
        &event(DeploymentEventKind::Completed, "ecs-svc/y", 20),
        &service(2, &[]),
    );
    assert!(bad.contains("whose deckhand deployment failed"), "{bad}");
    // A failed deployment of someone else's is followed as failed: never known-good.
    let failed = follow(
        &mut state,
        &event(DeploymentEventKind::Failed, "ecs-svc/z", 30),
        &service(5, &[("ecs-svc/z", 5)]),
    );
    assert!(
        failed.contains("failed (ECS reported the deployment failed); it never becomes known-good"),
        "{failed}"
    );
    assert_eq!(state.known_good_at(at(24 * 60)), Some(arn(1).as_str()));
}

/// A sleep cuts a guard window short; the wake starts it again, after the tasks' margin.
#[test]
fn a_sleep_cuts_the_window_and_the_wake_starts_it_again() {
    let mut state = baseline(1);
    let svc = service(2, &[("ecs-svc/ci", 2)]);
    follow(
        &mut state,
        &event(DeploymentEventKind::Completed, "ecs-svc/ci", 0),
        &svc,
    );
    state.interrupt_by_sleep(at(10));
    state.sleep = Some(Sleep {
        since: at(10),
        desired_count: 2,
        scalable: None,
        asleep_count: 0,
        dry_run: false,
        pending: false,
        cause: "reconcile".into(),
    });
    assert_eq!(state.known_good_at(at(600)), Some(arn(1).as_str()));
    state.sleep = None;
    let woken = at(600);
    assert_eq!(
        state.mark_woken(woken, GUARD),
        Some(("web:2".into(), woken + TimeDelta::minutes(45)))
    );
    assert_eq!(
        state.known_good_at(woken + TimeDelta::minutes(44)),
        Some(arn(1).as_str())
    );
    assert_eq!(
        state.known_good_at(woken + TimeDelta::minutes(45)),
        Some(arn(2).as_str())
    );
    // Completed while deckhand keeps it asleep: at zero tasks, guarded from the wake.
    let mut asleep = baseline(1);
    asleep.sleep = Some(Sleep {
        since: at(-60),
        desired_count: 2,
        scalable: None,
        asleep_count: 0,
        dry_run: false,
        pending: false,
        cause: "reconcile".into(),
    });
    let text = follow(
        &mut asleep,
        &event(DeploymentEventKind::Completed, "ecs-svc/n", 0),
        &svc,
    );
    assert!(text.contains("at zero tasks"), "{text}");
    assert_eq!(asleep.known_good_at(at(24 * 60)), Some(arn(1).as_str()));
}

#[test]
fn the_reconcile_settles_what_proved_itself_and_follows_what_nothing_accounts_for() {
    let mut state = baseline(1);
    state.deployment = Some(ours(1, 2, DeploymentStatus::Completed, 0));
    let svc = service(2, &[]);
    assert_eq!(
        check_known_good(&state, &svc, at(20), GUARD),
        KnownGoodCheck::Holds
    );
    assert_eq!(
        check_known_good(&state, &svc, at(40), GUARD),
        KnownGoodCheck::Proven {
            before: Some(arn(1)),
            after: arn(2)
        }
    );
    // web:7 runs and no event told of it: followed from now, a whole window ahead of it.
    match check_known_good(&state, &service(7, &[]), at(40), GUARD) {
        KnownGoodCheck::Unaccounted(seen) => {
            assert_eq!(seen.task_definition, arn(7));
            assert_eq!(seen.status, DeploymentStatus::Completed);
            assert_eq!(seen.guard_until, Some(at(70)));
        }
        other => panic!("{other:?}"),
    }
    match check_known_good(&state, &rolling(7), at(40), GUARD) {
        KnownGoodCheck::Unaccounted(seen) => {
            assert_eq!(seen.status, DeploymentStatus::InProgress);
            assert_eq!(seen.guard_until, None);
        }
        other => panic!("{other:?}"),
    }
    // A rollout ECS says completed, of which no event arrived, completes now.
    let mut rolling_state = baseline(1);
    rolling_state.deployment = Some(ours(1, 2, DeploymentStatus::InProgress, 0));
    let mut done = service(2, &[("ecs-svc/ours", 2)]);
    done.deployments[0].rollout_state = Some("COMPLETED".into());
    assert_eq!(
        check_known_good(
            &rolling_state,
            &service(2, &[("ecs-svc/ours", 2)]),
            at(90),
            GUARD
        ),
        KnownGoodCheck::Holds,
        "no rollout state: nothing said"
    );
    match check_known_good(&rolling_state, &done, at(90), GUARD) {
        KnownGoodCheck::RolloutEnded {
            revision,
            guard_until,
            early: false,
        } => {
            assert_eq!((revision.as_str(), guard_until), (arn(2).as_str(), at(120)));
            end_rollout(&mut rolling_state, &revision, at(90), guard_until);
        }
        other => panic!("{other:?}"),
    }
    let d = rolling_state.deployment.as_ref().unwrap();
    assert_eq!(
        (d.status, d.guard_until),
        (DeploymentStatus::Completed, Some(at(120)))
    );
    assert_eq!(rolling_state.known_good_at(at(120)), Some(arn(2).as_str()));
    // What deckhand deployed from, or rolled back to, is accounted for.
    assert_eq!(
        check_known_good(&state, &service(1, &[]), at(20), GUARD),
        KnownGoodCheck::Holds
    );
}

/// A deployment ECS completed early (early success criteria) stays in progress until its
/// rollout settles: every desired task on its revision, no other deployment left. Its guard
/// window starts then, and only then can it become known-good.
#[test]
fn a_deployment_completed_early_is_guarded_from_when_its_rollout_settles() {
    let mut state = baseline(1);
    let mut d = ours(1, 2, DeploymentStatus::InProgress, 0);
    d.early_completed_at = Some(at(5));
    state.deployment = Some(d);
    // ECS completed the new deployment; the old one still drains (DEFERRED cleanup).
    let mut draining = service(2, &[("ecs-svc/ours", 2), ("ecs-svc/old", 1)]);
    draining.deployments[0].rollout_state = Some("COMPLETED".into());
    assert_eq!(
        check_known_good(&state, &draining, at(60), GUARD),
        KnownGoodCheck::Holds
    );
    // The old tasks are gone, but not every new task runs yet (healthyPercent below 100).
    let mut starting = service(2, &[("ecs-svc/ours", 2)]);
    starting.deployments[0].rollout_state = Some("COMPLETED".into());
    starting.running_count = starting.desired_count - 1;
    assert_eq!(
        check_known_good(&state, &starting, at(70), GUARD),
        KnownGoodCheck::Holds
    );
    assert_eq!(state.known_good_at(at(200)), Some(arn(1).as_str()));
    // Settled: the guard window starts now.
    starting.running_count = starting.desired_count;
    assert_eq!(
        check_known_good(&state, &starting, at(80), GUARD),
        KnownGoodCheck::RolloutEnded {
            revision: arn(2),
            guard_until: at(110),
            early: true,
        }
    );
}
