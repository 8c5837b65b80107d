use chrono::{DateTime, TimeDelta, Utc};
use deckhand::domain::state::{AppliedPush, Deployment, RolledBack};

use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn digest(c: char) -> Digest {
    format!("sha256:{}", c.to_string().repeat(64))
        .parse()
        .unwrap()
}

const OLD: &str = "arn:aws:ecs:eu-west-1:1:task-definition/web:1";
const NEW: &str = "arn:aws:ecs:eu-west-1:1:task-definition/web:2";

fn deployed(status: DeploymentStatus) -> ServiceState {
    let started = utc("2026-11-23T10:00:00Z");
    ServiceState {
        known_good: Some(OLD.into()),
        deployment: Some(Deployment {
            id: "push".into(),
            repository: "web".into(),
            digest: digest('b'),
            tag: Some("main-42".into()),
            containers: vec!["web".into()],
            from: OLD.into(),
            to: NEW.into(),
            started_at: started,
            pushed_at: None,
            status,
            ecs_deployment_id: None,
            finished_at: None,
            guard_until: Some(started + TimeDelta::minutes(35)),
            at_zero_tasks: false,
            rollback: None,
            dry_run: false,
            alarmed: None,
            early_completed_at: None,
            from_images: Vec::new(),
        }),
        ..Default::default()
    }
}

fn record(action: Action, d: char, reason: &str) -> HistoryRecord {
    let key: ServiceKey = "prod/web".parse().unwrap();
    let mut r = HistoryRecord::new(&key, utc("2026-11-23T10:00:00Z"), action, reason, "push");
    r.digest = Some(digest(d).to_string());
    r
}

fn ended(p: Progress) -> (Ending, String) {
    match p {
        Progress::Ended(ending, reason) => (ending, reason),
        other => panic!("{other:?}"),
    }
}

#[test]
fn each_end_of_a_deployment() {
    let b = digest('b');
    assert!(matches!(
        progress(&deployed(DeploymentStatus::InProgress), &[], &b),
        Progress::Pending(reason) if reason.starts_with("the deployment of web:2 (from web:1) is in progress")
    ));
    let (ending, reason) = ended(progress(&deployed(DeploymentStatus::Completed), &[], &b));
    assert_eq!(ending, Ending::Completed);
    assert!(
        reason.contains("an alarm before 2026-11-23T10:35:00Z rolls it back"),
        "{reason}"
    );

    let mut failed = deployed(DeploymentStatus::Failed);
    failed.quarantine(
        &b,
        "deployment failed: circuit breaker".into(),
        utc("2026-11-23T10:09:00Z"),
        None,
    );
    let (ending, reason) = ended(progress(&failed, &[], &b));
    assert_eq!(ending, Ending::Failed);
    assert!(
        reason.contains("failed (deployment failed: circuit breaker); the digest is quarantined"),
        "{reason}"
    );

    let mut rolled = deployed(DeploymentStatus::RolledBack);
    rolled.deployment.as_mut().unwrap().rollback = Some(RolledBack {
        alarm: "web-5xx".into(),
        at: utc("2026-11-23T10:12:00Z"),
        to: OLD.into(),
    });
    let (ending, reason) = ended(progress(&rolled, &[], &b));
    assert_eq!(ending, Ending::Failed);
    assert!(
        reason.contains("rolled back to web:1 after alarm web-5xx"),
        "{reason}"
    );
}

#[test]
fn a_push_that_never_deploys_ends_and_an_unmatched_tag_does_not() {
    let c = digest('c');
    let state = deployed(DeploymentStatus::Completed);
    // Quarantined before (an earlier rollback), so the push was skipped.
    let mut quarantined = state.clone();
    quarantined.quarantine(
        &c,
        "rolled back after alarm web-5xx".into(),
        utc("2026-11-22T10:00:00Z"),
        None,
    );
    assert_eq!(ended(progress(&quarantined, &[], &c)).0, Ending::Failed);
    // Paused: skipped.
    let paused = [record(
        Action::Skipped,
        'c',
        "deploys of this service are paused",
    )];
    let (ending, reason) = ended(progress(&state, &paused, &c));
    assert_eq!(
        (ending, reason.as_str()),
        (
            Ending::Failed,
            "not deployed: deploys of this service are paused"
        )
    );
    // The same digest under a tag outside the policy: another tag of it may still deploy.
    let ignored = [record(
        Action::Ignored,
        'c',
        "tag latest does not match prefix=main-",
    )];
    assert!(
        matches!(progress(&state, &ignored, &c), Progress::Pending(r) if r.contains("tag latest"))
    );
    // Nothing yet.
    assert!(
        matches!(progress(&state, &[], &c), Progress::Pending(r) if r.contains("has not handled"))
    );
    // Already running: the push was applied without a deployment.
    let mut running = state.clone();
    running.pushes.insert(
        "web".into(),
        AppliedPush {
            at: utc("2026-11-23T11:00:00Z"),
            digest: c.clone(),
            event_id: "p2".into(),
        },
    );
    assert_eq!(ended(progress(&running, &[], &c)).0, Ending::Completed);
    // A transient failure is retried, not an end.
    let error = [record(
        Action::Error,
        'c',
        "UpdateService failed: throttled",
    )];
    assert!(matches!(progress(&state, &error, &c), Progress::Pending(_)));
}

/// ECS completed the deployment early: what the pipeline waits for, said as such; a push held
/// for a busy CodeDeploy group is still pending.
#[test]
fn an_early_completion_ends_the_wait_and_a_held_push_does_not() {
    let mut state = deployed(DeploymentStatus::InProgress);
    if let Some(d) = state.deployment.as_mut() {
        d.early_completed_at = Some(utc("2026-11-23T10:04:00Z"));
    }
    let (ending, reason) = ended(progress(&state, &[], &digest('b')));
    assert_eq!(ending, Ending::Completed);
    assert!(
        reason.contains(
            "ECS completed the deployment of web:2 (from web:1) early, at 2026-11-23T10:04:00Z"
        ),
        "{reason}"
    );

    let mut held = ServiceState::default();
    let push = deckhand::domain::deploy::Push {
        event_id: "p".into(),
        at: utc("2026-11-23T10:00:00Z"),
        repository: deckhand::domain::image::Repository {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            name: "web".into(),
        },
        digest: digest('c'),
        tag: None,
        manifest: Default::default(),
        promoted: None,
    };
    held.held = Some(deckhand::domain::state::HeldPush {
        push: deckhand::domain::state::WaitingPush::new(&push, utc("2026-11-23T10:00:00Z")),
        behind: Some("d-A1B2C3D4E".into()),
        group: "shop/web".into(),
        calendar: None,
        lifted_by: None,
    });
    match progress(&held, &[], &digest('c')) {
        Progress::Pending(reason) => assert_eq!(
            reason,
            "the push of cccccccccccc is held: the CodeDeploy deployment group shop/web runs d-A1B2C3D4E"
        ),
        other => panic!("{other:?}"),
    }
}

/// Ports in memory: a table that holds nothing for the service, so its push stays pending.
fn memory_ports() -> Ports {
    use deckhand::adapters::memory::{
        FixedClock, MemoryAlarms, MemoryAutoscaling, MemoryCodeDeploy, MemoryEcr, MemoryEcs,
        MemoryNotifier, MemoryStore, MemoryTraffic,
    };
    use std::sync::Arc;
    let store = Arc::new(MemoryStore::default());
    let notifier = Arc::new(MemoryNotifier::default());
    Ports {
        ecs: Arc::new(MemoryEcs::new()),
        ecr: Arc::new(MemoryEcr::default()),
        autoscaling: Arc::new(MemoryAutoscaling::default()),
        alarms: Arc::new(MemoryAlarms::default()),
        traffic: Arc::new(MemoryTraffic::default()),
        codedeploy: Arc::new(MemoryCodeDeploy::default()),
        checks: Arc::new(deckhand::adapters::memory::MemoryChecks::default()),
        announcer: Arc::new(deckhand::adapters::memory::MemoryAnnouncer::default()),
        calendars: Arc::new(deckhand::adapters::memory::MemoryCalendars::default()),
        store: store.clone(),
        images: store.clone(),
        pace: store,
        notifier: notifier.clone(),
        metrics: notifier,
        clock: Arc::new(FixedClock::new(utc("2026-11-23T10:00:00Z"))),
    }
}

/// A wait polls every interval and once more on the deadline, however the two compare: a
/// timeout shorter than the interval waits the whole timeout.
#[tokio::test(start_paused = true)]
async fn a_wait_polls_every_interval_and_once_more_at_the_deadline() {
    let ports = memory_ports();
    let service: ServiceKey = "prod/web".parse().unwrap();
    // (timeout, interval, polls): at 0 and 2 s; at 0, 10, 20 and 25 s.
    for (timeout, interval, polls) in [(2, 5, 2), (25, 10, 4)] {
        let started = tokio::time::Instant::now();
        let (timeout, interval) = (Duration::from_secs(timeout), Duration::from_secs(interval));
        let waited = wait(&ports, &service, &digest('b'), timeout, interval)
            .await
            .unwrap();
        assert_eq!(waited.result, "timed-out");
        assert_eq!(waited.polls, polls, "{timeout:?} every {interval:?}");
        assert_eq!(started.elapsed(), timeout);
    }
}

/// A pair's move, from the state of its new side (green), which holds it.
fn moved_to_green(phase: deckhand::domain::pair_move::PairPhase) -> ServiceState {
    use deckhand::domain::pair::{Pair, PairSettings, Side, Standby};
    use deckhand::domain::pair_move::PairMove;
    let side = |name: &str| Side {
        service: ServiceKey::new("prod", name),
        target_group: format!("tg-{name}"),
    };
    let mut m = PairMove::start(&Pair {
        live: side("web-blue"),
        idle: side("web-green"),
        settings: PairSettings {
            partner: "web-green".into(),
            traffic: "listener".into(),
            steps: vec![10, 100],
            step_wait: TimeDelta::minutes(5),
            standby: Standby::ScaleDown,
            test_traffic: None,
            gate: None,
        },
    });
    m.phase = phase;
    m.step = Some(0);
    ServiceState {
        pair: Some(m),
        ..deployed(DeploymentStatus::Completed)
    }
}

#[test]
fn a_pair_ends_at_all_the_traffic_or_at_a_move_that_failed_or_went_back() {
    use crate::wait_pair::{combined, pair_progress};
    use deckhand::domain::pair_move::PairPhase;
    let b = digest('b');
    let ended = |phase| match pair_progress(&moved_to_green(phase), &b) {
        Some(Progress::Ended(ending, _)) => Some(ending),
        Some(Progress::Pending(_)) => None,
        None => panic!("the move of b is in this state"),
    };
    for phase in [PairPhase::Deploying, PairPhase::Gated, PairPhase::Shifting] {
        assert_eq!(
            ended(phase),
            None,
            "{phase:?}: ECS completing green is not the end"
        );
    }
    assert_eq!(ended(PairPhase::Guarding), Some(Ending::Completed));
    assert_eq!(ended(PairPhase::Done), Some(Ending::Completed));
    for phase in [
        PairPhase::FlippedBack,
        PairPhase::Reviving,
        PairPhase::Failed,
    ] {
        assert_eq!(ended(phase), Some(Ending::Failed), "{phase:?}");
    }
    assert_eq!(
        pair_progress(&moved_to_green(PairPhase::Done), &digest('c')),
        None
    );
    // The pair's reading wins over the other side's, which knows nothing of the push.
    let unknown = Progress::Pending("deckhand has not handled a push of bbbb".into());
    let shifting = pair_progress(&moved_to_green(PairPhase::Shifting), &b);
    assert!(matches!(
        combined(vec![(None, unknown.clone()), (shifting, unknown)]),
        Progress::Pending(reason) if reason.starts_with("10% of the traffic")
    ));
}
