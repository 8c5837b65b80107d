use chrono::TimeZone;

use super::*;
use crate::domain::fleet::{Container, EcsDeployment, Source};
use crate::domain::state::Quarantine;

const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

fn digest(c: char) -> Digest {
    format!("sha256:{}", c.to_string().repeat(64))
        .parse()
        .unwrap()
}

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, minute, 0).unwrap()
}

fn push(id: &str, minute: u32, d: char) -> Push {
    Push {
        event_id: id.into(),
        at: at(minute),
        repository: Repository {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            name: "web".into(),
        },
        digest: digest(d),
        tag: Some(format!("main-{minute}")),
        manifest: ManifestKind::Image,
        promoted: None,
    }
}

fn td(containers: &[(&str, &str)]) -> TaskDefinitionView {
    TaskDefinitionView {
        arn: "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:7".into(),
        family: "web".into(),
        revision: 7,
        containers: containers
            .iter()
            .map(|(n, i)| Container {
                name: (*n).into(),
                image: (*i).into(),
            })
            .collect(),
        registered_for: None,
        source: Source::default(),
    }
}

fn web_td() -> TaskDefinitionView {
    td(&[
        ("web", &format!("{HOST}/web:main-1")),
        ("worker", &format!("{HOST}/web:main-1")),
        ("proxy", &format!("{HOST}/envoy:1.30")),
    ])
}

#[test]
fn chooses_every_container_of_the_repository_by_default() {
    let changes = choose_containers(&push("e", 1, 'b'), &web_td(), None).unwrap();
    let names: Vec<&str> = changes.iter().map(|c| c.container.as_str()).collect();
    assert_eq!(names, ["web", "worker"]);
    assert_eq!(changes[0].to, format!("{HOST}/web@{}", digest('b')));
    assert_eq!(changes[0].from, format!("{HOST}/web:main-1"));
}

#[test]
fn deckhand_containers_narrows_the_choice() {
    let named = vec!["worker".to_string(), "proxy".to_string()];
    let changes = choose_containers(&push("e", 1, 'b'), &web_td(), Some(&named)).unwrap();
    let names: Vec<&str> = changes.iter().map(|c| c.container.as_str()).collect();
    assert_eq!(
        names,
        ["worker"],
        "proxy runs another repository and is not touched"
    );

    let named = vec!["proxy".to_string()];
    assert!(
        choose_containers(&push("e", 1, 'b'), &web_td(), Some(&named))
            .unwrap()
            .is_empty()
    );

    let named = vec!["web".to_string(), "api".to_string()];
    let problem = choose_containers(&push("e", 1, 'b'), &web_td(), Some(&named)).unwrap_err();
    assert_eq!(problem.tag, "deckhand:containers");
    assert!(problem.message.contains("`api`"), "{}", problem.message);
}

#[test]
fn running_versions_come_from_tags() {
    assert_eq!(running_tag(&format!("{HOST}/web:v1.2.3")), Some("v1.2.3"));
    assert_eq!(running_tag(&format!("{HOST}/web@{}", digest('a'))), None);
    assert_eq!(
        running_digest(&format!("{HOST}/web@{}", digest('a'))),
        Some(digest('a').as_str())
    );
    assert_eq!(
        highest_version(["latest", "v1.2.3", "1.10.0", "1.9.9"]),
        Some(Version::new(1, 10, 0))
    );
    assert_eq!(highest_version(["latest"]), None);
}

fn changes_for(p: &Push) -> Vec<ImageChange> {
    choose_containers(p, &web_td(), None).unwrap()
}

#[test]
fn a_new_push_deploys() {
    let p = push("e2", 2, 'b');
    assert_eq!(
        decide_push(&p, &changes_for(&p), &ServiceState::default(), &web_td()),
        PushDecision::Deploy
    );
}

#[test]
fn the_same_event_again_is_a_duplicate() {
    let p = push("e2", 2, 'b');
    let mut state = ServiceState::default();
    record_push(&mut state, &p);
    assert_eq!(
        decide_push(&p, &changes_for(&p), &state, &web_td()),
        PushDecision::Duplicate
    );
}

#[test]
fn an_older_push_after_a_newer_one_is_skipped() {
    let newer = push("e5", 5, 'c');
    let older = push("e3", 3, 'b');
    let mut state = ServiceState::default();
    record_push(&mut state, &newer);
    match decide_push(&older, &changes_for(&older), &state, &web_td()) {
        PushDecision::Skip {
            reason,
            notify: true,
        } => assert!(reason.contains("newer push"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // same second is not older: the later arrival wins
    let same = push("e5b", 5, 'd');
    assert_eq!(
        decide_push(&same, &changes_for(&same), &state, &web_td()),
        PushDecision::Deploy
    );
}

#[test]
fn a_quarantined_digest_is_skipped() {
    let p = push("e2", 2, 'b');
    let mut state = ServiceState::default();
    state.quarantine.insert(
        p.digest.to_string(),
        Quarantine {
            reason: "deployment failed".into(),
            at: at(1),
            deployment: None,
        },
    );
    match decide_push(&p, &changes_for(&p), &state, &web_td()) {
        PushDecision::Skip {
            reason,
            notify: true,
        } => assert!(reason.contains("quarantined"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let fixed = push("e3", 3, 'c');
    assert_eq!(
        decide_push(&fixed, &changes_for(&fixed), &state, &web_td()),
        PushDecision::Deploy
    );
}

#[test]
fn a_paused_service_skips_every_push_until_resumed() {
    let p = push("e2", 2, 'b');
    let mut state = ServiceState {
        paused: Some(crate::domain::state::Paused {
            at: at(1),
            by: "alice".into(),
        }),
        ..Default::default()
    };
    match decide_push(&p, &changes_for(&p), &state, &web_td()) {
        PushDecision::Skip {
            reason,
            notify: false,
        } => assert!(
            reason.starts_with("deploys of this service are paused"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    state.paused = None;
    assert_eq!(
        decide_push(&p, &changes_for(&p), &state, &web_td()),
        PushDecision::Deploy
    );
}

#[test]
fn a_digest_already_running_is_skipped_quietly() {
    let p = push("e2", 2, 'b');
    let pinned = format!("{HOST}/web@{}", p.digest);
    let running = td(&[("web", &pinned), ("worker", &pinned)]);
    let changes = choose_containers(&p, &running, None).unwrap();
    assert_eq!(
        decide_push(&p, &changes, &ServiceState::default(), &web_td()),
        PushDecision::AlreadyRunning {
            reason: format!("the service already runs digest {}", p.digest.short()),
        }
    );
    // one container still on another digest: deploy
    let mixed = td(&[("web", &pinned), ("worker", &format!("{HOST}/web:main-1"))]);
    let changes = choose_containers(&p, &mixed, None).unwrap();
    assert_eq!(
        decide_push(&p, &changes, &ServiceState::default(), &web_td()),
        PushDecision::Deploy
    );
}

#[test]
fn starting_a_deployment_keeps_the_baseline_and_promotes_a_proven_one() {
    let p1 = push("e1", 1, 'b');
    let mut state = ServiceState::default();
    start_deployment(
        &mut state,
        &p1,
        &changes_for(&p1),
        "web:7",
        "web:8",
        None,
        at(1),
    );
    assert_eq!(state.known_good.as_deref(), Some("web:7"));
    let d = state.deployment.as_ref().unwrap();
    assert_eq!(
        (d.from.as_str(), d.to.as_str(), d.status),
        ("web:7", "web:8", DeploymentStatus::InProgress)
    );
    assert_eq!(d.containers, ["web", "worker"]);

    // web:8 completes and outlives its guard; the next deployment makes it known-good
    let done = DeploymentEvent {
        event_id: "ecs1".into(),
        service: ServiceKey::new("demo", "web"),
        kind: DeploymentEventKind::Completed,
        ecs_deployment_id: "ecs-svc/1".into(),
        at: at(3),
        reason: None,
    };
    apply_deployment_event(
        &mut state,
        &done,
        &DeploymentEventDecision::Completed {
            guard_until: at(33),
        },
    );
    let p2 = push("e2", 40, 'c');
    start_deployment(
        &mut state,
        &p2,
        &changes_for(&p2),
        "web:8",
        "web:9",
        None,
        at(40),
    );
    assert_eq!(state.known_good.as_deref(), Some("web:8"));
}

fn service_on(task_definition: &str, deployments: &[(&str, &str)]) -> ServiceView {
    ServiceView {
        key: ServiceKey::new("demo", "web"),
        arn: "arn:aws:ecs:eu-west-1:123456789012:service/demo/web".into(),
        task_definition: task_definition.into(),
        desired_count: 2,
        running_count: 2,
        tags: Default::default(),
        deployments: deployments
            .iter()
            .map(|(id, td)| EcsDeployment {
                id: (*id).into(),
                task_definition: (*td).into(),
                status: "PRIMARY".into(),
                rollout_state: None,
            })
            .collect(),
        controller: Default::default(),
        target_groups: Vec::new(),
        strategy: Default::default(),
        load_balanced: None,
        task_sets: Vec::new(),
        placement: Default::default(),
        early_success: None,
        service_revisions: Vec::new(),
    }
}

fn deployed_state(ecs_id: Option<&str>) -> ServiceState {
    let p = push("e1", 1, 'b');
    let mut state = ServiceState::default();
    start_deployment(
        &mut state,
        &p,
        &changes_for(&p),
        "web:7",
        "web:8",
        ecs_id.map(Into::into),
        at(1),
    );
    state
}

fn event(kind: DeploymentEventKind, id: &str, minute: u32) -> DeploymentEvent {
    DeploymentEvent {
        event_id: format!("ev-{id}-{minute}"),
        service: ServiceKey::new("demo", "web"),
        kind,
        ecs_deployment_id: id.into(),
        at: at(minute),
        reason: Some("ECS deployment circuit breaker: tasks failed to start.".into()),
    }
}

const GUARD: TimeDelta = TimeDelta::minutes(30);

#[test]
fn deployment_events_match_by_known_ecs_id() {
    let state = deployed_state(Some("ecs-svc/8"));
    let svc = service_on("web:8", &[]);
    let ok = event(DeploymentEventKind::Completed, "ecs-svc/8", 5);
    assert_eq!(
        decide_deployment_event(&ok, &state, &svc, GUARD),
        DeploymentEventDecision::Completed {
            guard_until: at(35)
        }
    );
    let other = event(DeploymentEventKind::Completed, "ecs-svc/other", 5);
    assert!(matches!(
        decide_deployment_event(&other, &state, &svc, GUARD),
        DeploymentEventDecision::NotOurs(_)
    ));
}

#[test]
fn deployment_events_match_by_listed_deployment_then_by_revision_and_time() {
    let state = deployed_state(None);
    // ECS still lists the deployment: its task definition decides
    let listed = service_on("web:8", &[("ecs-svc/8", "web:8"), ("ecs-svc/x", "web:5")]);
    assert!(matches!(
        decide_deployment_event(
            &event(DeploymentEventKind::Completed, "ecs-svc/8", 5),
            &state,
            &listed,
            GUARD
        ),
        DeploymentEventDecision::Completed { .. }
    ));
    assert!(matches!(
        decide_deployment_event(
            &event(DeploymentEventKind::Completed, "ecs-svc/x", 5),
            &state,
            &listed,
            GUARD
        ),
        DeploymentEventDecision::NotOurs(_)
    ));
    // nothing listed: the service must run our revision and the event be newer
    let bare = service_on("web:8", &[]);
    assert!(matches!(
        decide_deployment_event(
            &event(DeploymentEventKind::Completed, "ecs-svc/8", 5),
            &state,
            &bare,
            GUARD
        ),
        DeploymentEventDecision::Completed { .. }
    ));
    assert!(matches!(
        decide_deployment_event(
            &event(DeploymentEventKind::Completed, "ecs-svc/8", 0),
            &state,
            &bare,
            GUARD
        ),
        DeploymentEventDecision::NotOurs(_)
    ));
    let elsewhere = service_on("web:5", &[]);
    assert!(matches!(
        decide_deployment_event(
            &event(DeploymentEventKind::Completed, "ecs-svc/8", 5),
            &state,
            &elsewhere,
            GUARD
        ),
        DeploymentEventDecision::NotOurs(_)
    ));
    // a failure may come after ECS already rolled the service back
    assert!(matches!(
        decide_deployment_event(
            &event(DeploymentEventKind::Failed, "ecs-svc/8", 5),
            &state,
            &service_on("web:7", &[]),
            GUARD
        ),
        DeploymentEventDecision::Failed { .. }
    ));
}

#[test]
fn failure_quarantines_the_digest_and_repeats_are_duplicates() {
    let mut state = deployed_state(Some("ecs-svc/8"));
    let svc = service_on("web:7", &[]);
    let failed = event(DeploymentEventKind::Failed, "ecs-svc/8", 5);
    let decision = decide_deployment_event(&failed, &state, &svc, GUARD);
    assert!(
        matches!(&decision, DeploymentEventDecision::Failed { reason } if reason.contains("circuit breaker"))
    );
    apply_deployment_event(&mut state, &failed, &decision);
    assert_eq!(
        state.deployment.as_ref().unwrap().status,
        DeploymentStatus::Failed
    );
    assert!(state.is_quarantined(&digest('b')).is_some());
    assert_eq!(state.known_good.as_deref(), Some("web:7"));
    assert!(matches!(
        decide_deployment_event(&failed, &state, &svc, GUARD),
        DeploymentEventDecision::Duplicate(_)
    ));
}

#[test]
fn no_deckhand_deployment_means_not_ours() {
    let svc = service_on("web:8", &[]);
    assert!(matches!(
        decide_deployment_event(
            &event(DeploymentEventKind::Completed, "x", 5),
            &ServiceState::default(),
            &svc,
            GUARD
        ),
        DeploymentEventDecision::NotOurs(_)
    ));
}

#[test]
fn in_progress_records_the_ecs_id() {
    let mut state = deployed_state(None);
    let svc = service_on("web:8", &[]);
    let ev = event(DeploymentEventKind::InProgress, "ecs-svc/8", 2);
    let decision = decide_deployment_event(&ev, &state, &svc, GUARD);
    assert_eq!(decision, DeploymentEventDecision::InProgress);
    apply_deployment_event(&mut state, &ev, &decision);
    assert_eq!(
        state.deployment.unwrap().ecs_deployment_id.as_deref(),
        Some("ecs-svc/8")
    );
}

#[test]
fn a_revision_registered_for_the_push_is_recovered_or_reused_never_registered_again() {
    let p = push("e1", 5, 'b');
    // The service runs a revision deckhand registered for this very push, cloned from
    // web:6: an earlier attempt moved it and stopped before recording.
    let mut running = web_td();
    running.registered_for = Some(crate::domain::fleet::RegisteredFor {
        event_id: "e1".into(),
        cloned_from: 6,
    });
    assert_eq!(
        decide_push(&p, &changes_for(&p), &ServiceState::default(), &running),
        PushDecision::Recover {
            from: "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:6".into()
        }
    );
    // Registered for another push: a normal deploy.
    running.registered_for.as_mut().unwrap().event_id = "e0".into();
    assert_eq!(
        decide_push(&p, &changes_for(&p), &ServiceState::default(), &running),
        PushDecision::Deploy
    );

    // Moving the service failed after the revision was registered: the retry of the same
    // push from the same base reuses it; another push, or a base changed since, does not.
    let base = web_td().arn;
    let mut state = ServiceState {
        registered: Some(crate::domain::state::Registered {
            event_id: "e1".into(),
            from: base.clone(),
            task_definition: "web:8".into(),
        }),
        ..Default::default()
    };
    assert_eq!(reusable_revision(&state, &p, &base), Some("web:8"));
    assert_eq!(reusable_revision(&state, &push("e2", 6, 'c'), &base), None);
    assert_eq!(reusable_revision(&state, &p, "web:9"), None);
    start_deployment(
        &mut state,
        &p,
        &changes_for(&p),
        &base,
        "web:8",
        None,
        at(6),
    );
    assert_eq!(state.registered, None, "a deployment clears it");
}
