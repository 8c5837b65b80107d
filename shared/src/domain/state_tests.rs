use chrono::TimeDelta;

use super::*;

fn digest() -> Digest {
    format!("sha256:{}", "a".repeat(64)).parse().unwrap()
}

fn completed(guard_until: DateTime<Utc>) -> Deployment {
    Deployment {
        id: "e1".into(),
        repository: "web".into(),
        digest: digest(),
        tag: Some("main-2".into()),
        containers: vec!["web".into()],
        from: "web:1".into(),
        to: "web:2".into(),
        started_at: guard_until - TimeDelta::hours(1),
        pushed_at: None,
        status: DeploymentStatus::Completed,
        ecs_deployment_id: None,
        finished_at: Some(guard_until - TimeDelta::minutes(30)),
        guard_until: Some(guard_until),
        at_zero_tasks: false,
        rollback: None,
        dry_run: false,
        alarmed: None,
        early_completed_at: None,
        from_images: Vec::new(),
    }
}

#[test]
fn a_completed_deployment_becomes_known_good_when_its_guard_passes() {
    let until = Utc::now();
    let mut state = ServiceState::default();
    state.adopt_baseline("web:1");
    state.deployment = Some(completed(until));
    assert_eq!(
        state.known_good_at(until - TimeDelta::seconds(1)),
        Some("web:1")
    );
    assert_eq!(state.known_good_at(until), Some("web:2"));
    state.settle(until);
    assert_eq!(state.known_good.as_deref(), Some("web:2"));
}

#[test]
fn failed_or_rolled_back_deployments_never_become_known_good() {
    let until = Utc::now();
    for status in [
        DeploymentStatus::Failed,
        DeploymentStatus::RolledBack,
        DeploymentStatus::InProgress,
    ] {
        let mut state = ServiceState {
            known_good: Some("web:1".into()),
            ..Default::default()
        };
        state.deployment = Some(Deployment {
            status,
            ..completed(until)
        });
        assert_eq!(
            state.known_good_at(until + TimeDelta::days(1)),
            Some("web:1")
        );
    }
}

#[test]
fn a_deployment_done_asleep_never_becomes_known_good() {
    let until = Utc::now();
    let mut state = ServiceState {
        known_good: Some("web:1".into()),
        ..Default::default()
    };
    state.deployment = Some(Deployment {
        at_zero_tasks: true,
        rollback: None,
        ..completed(until)
    });
    assert_eq!(
        state.known_good_at(until + TimeDelta::days(1)),
        Some("web:1")
    );
    state.settle(until + TimeDelta::days(1));
    assert_eq!(state.known_good.as_deref(), Some("web:1"));
}

/// Woken by deckhand, a deployment done asleep is guarded from the wake on, and proves
/// itself once that window passes; any other deployment keeps its window.
#[test]
fn a_deployment_done_asleep_is_guarded_from_the_wake() {
    let finished = Utc::now();
    let mut state = ServiceState {
        known_good: Some("web:1".into()),
        ..Default::default()
    };
    state.deployment = Some(Deployment {
        at_zero_tasks: true,
        ..completed(finished)
    });
    let woken = finished + TimeDelta::hours(9);
    let until = state.mark_woken(woken, TimeDelta::minutes(30));
    assert_eq!(
        until,
        Some(("web:2".into(), woken + TimeDelta::minutes(45)))
    );
    assert_eq!(state.woken_at, Some(woken));
    assert_eq!(
        state.known_good_at(woken + TimeDelta::minutes(44)),
        Some("web:1")
    );
    assert_eq!(
        state.known_good_at(woken + TimeDelta::minutes(45)),
        Some("web:2")
    );
    // Woken again later: nothing left to re-guard.
    assert_eq!(
        state.mark_woken(woken + TimeDelta::days(1), TimeDelta::minutes(30)),
        None
    );
    let mut awake_deployment = ServiceState {
        deployment: Some(completed(finished)),
        ..Default::default()
    };
    assert_eq!(
        awake_deployment.mark_woken(woken, TimeDelta::minutes(30)),
        None
    );
    assert_eq!(
        awake_deployment.deployment.and_then(|d| d.guard_until),
        completed(finished).guard_until
    );
}

#[test]
fn the_baseline_is_taken_once() {
    let mut state = ServiceState::default();
    state.adopt_baseline("web:1");
    state.adopt_baseline("web:9");
    assert_eq!(state.known_good.as_deref(), Some("web:1"));
}

#[test]
fn quarantine_keeps_the_first_reason() {
    let mut state = ServiceState::default();
    let now = Utc::now();
    state.quarantine(&digest(), "failed".into(), now, Some("e1".into()));
    state.quarantine(&digest(), "again".into(), now, None);
    assert_eq!(
        state.is_quarantined(&digest()).map(|q| q.reason.as_str()),
        Some("failed")
    );
}
