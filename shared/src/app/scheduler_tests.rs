//! The scheduler against in-memory ports: sleeps, wakes, hand changes, overrides, failures.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use super::*;
use crate::adapters::memory::{
    FixedClock, MemoryAutoscaling, MemoryEcr, MemoryEcs, MemoryNotifier, MemoryStore,
};
use crate::app::deploy::DeployFunction;
use crate::ports::StateStore as _;
use crate::report::{Action, Outcome};

const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
/// Office hours in London; in November London is on GMT, so local time is UTC.
const OFFICE: &[(&str, &str)] = &[
    ("deckhand:awake", "Mon-Fri 07:00-19:00"),
    ("deckhand:timezone", "Europe/London"),
];
const DAY: &str = "2026-11-23T12:00:00Z";
const NIGHT: &str = "2026-11-23T22:00:00Z";
const MORNING: &str = "2026-11-24T07:00:00Z";

struct World {
    ecs: Arc<MemoryEcs>,
    autoscaling: Arc<MemoryAutoscaling>,
    store: Arc<MemoryStore>,
    notifier: Arc<MemoryNotifier>,
    clock: Arc<FixedClock>,
    ecr: Arc<MemoryEcr>,
    announcer: Arc<crate::adapters::memory::MemoryAnnouncer>,
    ports: Ports,
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn config(dry_run: bool) -> Config {
    Config::for_tests(dry_run)
}

fn world() -> World {
    let ecs = Arc::new(MemoryEcs::new());
    let autoscaling = Arc::new(MemoryAutoscaling::default());
    let store = Arc::new(MemoryStore::default());
    let notifier = Arc::new(MemoryNotifier::default());
    let clock = Arc::new(FixedClock::new(utc(DAY)));
    let ecr = Arc::new(MemoryEcr::default());
    let announcer = Arc::new(crate::adapters::memory::MemoryAnnouncer::default());
    let ports = Ports {
        ecs: ecs.clone(),
        ecr: ecr.clone(),
        autoscaling: autoscaling.clone(),
        alarms: Arc::new(crate::adapters::memory::MemoryAlarms::default()),
        traffic: Arc::new(crate::adapters::memory::MemoryTraffic::default()),
        codedeploy: Arc::new(crate::adapters::memory::MemoryCodeDeploy::default()),
        checks: Arc::new(crate::adapters::memory::MemoryChecks::default()),
        announcer: announcer.clone(),
        calendars: Arc::new(crate::adapters::memory::MemoryCalendars::default()),
        store: store.clone(),
        images: store.clone(),
        pace: store.clone(),
        notifier: notifier.clone(),
        metrics: notifier.clone(),
        clock: clock.clone(),
    };
    World {
        ecs,
        autoscaling,
        store,
        notifier,
        clock,
        ecr,
        announcer,
        ports,
    }
}

impl World {
    fn scheduler(&self, dry_run: bool) -> SchedulerFunction {
        SchedulerFunction::new(self.ports.clone(), config(dry_run))
    }

    /// A service running 3 tasks, autoscaled between 2 and 6 when `scalable`.
    fn service(&self, name: &str, tags: &[(&str, &str)], scalable: bool) -> ServiceKey {
        let key = ServiceKey::new("staging", name);
        let td = self
            .ecs
            .add_task_definition(name, &[(name, &format!("{HOST}/{name}:main-1"))]);
        self.ecs.add_service(&key, &td, tags);
        self.ecs.scale_by_hand(&key, 3);
        if scalable {
            self.autoscaling.register(&key, Capacity::new(2, 6));
        }
        key
    }

    async fn reconcile(&self, at: &str) -> Summary {
        self.clock.set(utc(at));
        self.scheduler(false)
            .handle(&json!({"action": "reconcile", "at": at}))
            .await
            .unwrap()
    }

    /// A reconcile's plan at `at`: what it would do.
    async fn plan(&self, at: &str) -> Summary {
        self.clock.set(utc(at));
        self.scheduler(false)
            .handle(&json!({"action": "reconcile", "at": at, "dryRun": true}))
            .await
            .unwrap()
    }

    fn arn_of(&self, key: &ServiceKey) -> String {
        self.ecs.service(key).unwrap().task_definition
    }

    fn desired(&self, key: &ServiceKey) -> i32 {
        self.ecs.service(key).unwrap().desired_count
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.notifier
            .published()
            .iter()
            .map(|n| n.kind.as_str())
            .collect()
    }

    fn actions(&self, key: &ServiceKey) -> Vec<Action> {
        self.store
            .all_history()
            .iter()
            .filter(|r| &r.service == key)
            .map(|r| r.action)
            .collect()
    }
}

fn action_of(summary: &Summary, key: &ServiceKey) -> Action {
    summary
        .services
        .iter()
        .find(|s| s.service == key.to_string())
        .unwrap_or_else(|| panic!("{key} not in {summary:?}"))
        .action
}

#[tokio::test]
async fn night_saves_and_morning_restores_count_and_capacity_exactly() {
    let w = world();
    let api = w.service("api", OFFICE, true);
    let worker = w.service("worker", OFFICE, false);

    let night = w.reconcile(NIGHT).await;
    assert_eq!(night.outcome, Outcome::Asleep);
    assert_eq!(action_of(&night, &api), Action::Asleep);
    assert_eq!((w.desired(&api), w.desired(&worker)), (0, 0));
    // Scheduled scaling is suspended while asleep.
    assert_eq!(
        w.autoscaling.capacity(&api),
        Some(Capacity::new(2, 6).asleep(0))
    );
    assert!(w.autoscaling.capacity(&api).unwrap().suspended.scheduled);
    assert_eq!(
        w.autoscaling.capacity(&worker),
        None,
        "no target is created"
    );
    let saved = w.store.load(&api).await.unwrap().sleep.unwrap();
    assert_eq!(
        (saved.desired_count, saved.scalable, saved.pending),
        (3, Some(Capacity::new(2, 6)), false)
    );

    let morning = w.reconcile(MORNING).await;
    assert_eq!(action_of(&morning, &api), Action::Awake);
    assert_eq!((w.desired(&api), w.desired(&worker)), (3, 3));
    assert_eq!(w.autoscaling.capacity(&api), Some(Capacity::new(2, 6)));
    assert_eq!(w.store.load(&api).await.unwrap().sleep, None);
    assert_eq!(w.actions(&api), [Action::Asleep, Action::Awake]);
    let woke = w
        .store
        .all_history()
        .into_iter()
        .find(|r| r.service == api && r.action == Action::Awake)
        .unwrap();
    // Three tasks for nine hours.
    assert_eq!(woke.scale.unwrap().task_hours_saved, Some(27.0));
    // One message a reconcile, not one a service.
    assert_eq!(w.kinds(), ["scale.summary", "scale.summary"]);
    let published = w.notifier.published();
    assert_eq!(published[0].details["asleep"]["count"], 2);
    assert_eq!(
        published[1].details["woken"]["services"],
        json!(["staging/api", "staging/worker"])
    );
    assert_eq!(published[1].details["taskHoursSaved"], 54.0);
    assert_eq!(published[1].service, "*");
}

#[tokio::test]
async fn a_second_reconcile_changes_nothing() {
    let w = world();
    let api = w.service("api", OFFICE, true);
    w.reconcile(NIGHT).await;
    let history = w.store.all_history().len();
    let published = w.notifier.published().len();
    let again = w.reconcile("2026-11-23T22:05:00Z").await;
    assert_eq!(again.outcome, Outcome::Unchanged);
    assert!(
        again.services[0]
            .reason
            .starts_with("asleep since 2026-11-23T22:00:00Z"),
        "{again:?}"
    );
    assert_eq!(w.desired(&api), 0);
    assert_eq!(w.store.all_history().len(), history);
    assert_eq!(w.notifier.published().len(), published);
    let day = w.reconcile(DAY).await;
    assert_eq!(day.outcome, Outcome::Awake);
    assert_eq!(
        w.reconcile("2026-11-23T12:05:00Z").await.outcome,
        Outcome::Unchanged
    );
}

#[tokio::test]
async fn scaled_by_hand_while_asleep_is_left_alone_until_the_next_wake() {
    let w = world();
    let api = w.service("api", OFFICE, false);
    w.reconcile(NIGHT).await;
    w.ecs.scale_by_hand(&api, 1);

    let s = w.reconcile("2026-11-23T23:00:00Z").await;
    assert_eq!(action_of(&s, &api), Action::Skipped);
    assert!(s.services[0].reason.contains("scaled by hand"), "{s:?}");
    assert_eq!(w.desired(&api), 1, "left as the person set it");
    let state = w.store.load(&api).await.unwrap();
    assert_eq!(state.sleep, None, "the saved record is closed");
    assert_eq!(state.left_alone_until, Some(utc(MORNING)));
    assert_eq!(w.kinds().last(), Some(&"scale.summary"));
    let last = w.notifier.published().last().cloned().unwrap();
    assert_eq!(last.details["skipped"]["services"], json!(["staging/api"]));

    assert_eq!(
        w.reconcile("2026-11-24T02:00:00Z").await.outcome,
        Outcome::Unchanged
    );
    let morning = w.reconcile(MORNING).await;
    assert_eq!(
        morning.outcome,
        Outcome::Unchanged,
        "deckhand wakes only what it put to sleep"
    );
    assert_eq!(w.desired(&api), 1);
    let evening = w.reconcile("2026-11-24T19:00:00Z").await;
    assert_eq!(
        evening.outcome,
        Outcome::Asleep,
        "the schedule applies again"
    );
    assert_eq!(w.desired(&api), 0);
    assert_eq!(
        w.actions(&api),
        [Action::Asleep, Action::Skipped, Action::Asleep]
    );
}

#[tokio::test]
async fn a_wake_override_survives_reconciles_until_it_expires() {
    let w = world();
    let api = w.service("api", OFFICE, true);
    w.reconcile(NIGHT).await;
    w.clock.set(utc("2026-11-23T22:30:00Z"));
    let woke = w
        .scheduler(false)
        .handle(&json!({"action": "wake", "service": "staging/api", "for": "2h"}))
        .await
        .unwrap();
    assert_eq!(woke.outcome, Outcome::Awake);
    assert!(
        woke.services[0]
            .reason
            .contains("kept awake by an operator until 2026-11-24T00:30:00Z"),
        "{woke:?}"
    );
    assert_eq!(w.desired(&api), 3);
    assert_eq!(w.autoscaling.capacity(&api), Some(Capacity::new(2, 6)));

    for at in ["2026-11-23T23:00:00Z", "2026-11-24T00:25:00Z"] {
        assert_eq!(w.reconcile(at).await.outcome, Outcome::Unchanged, "{at}");
        assert_eq!(w.desired(&api), 3);
    }
    let expired = w.reconcile("2026-11-24T00:30:00Z").await;
    assert_eq!(expired.outcome, Outcome::Asleep);
    assert_eq!(w.desired(&api), 0);
    assert_eq!(w.store.load(&api).await.unwrap().operator_override, None);
}

#[tokio::test]
async fn an_operator_sleep_lasts_until_the_next_scheduled_wake() {
    let w = world();
    let api = w.service("api", OFFICE, false);
    w.clock.set(utc(DAY));
    let slept = w
        .scheduler(false)
        .handle(&json!({"action": "sleep", "service": "staging/api"}))
        .await
        .unwrap();
    assert_eq!(slept.outcome, Outcome::Asleep);
    assert!(
        slept.services[0]
            .reason
            .contains("kept asleep by an operator until 2026-11-24T07:00:00Z"),
        "{slept:?}"
    );
    assert_eq!(w.desired(&api), 0);
    assert_eq!(
        w.reconcile("2026-11-23T15:00:00Z").await.outcome,
        Outcome::Unchanged
    );
    assert_eq!(w.reconcile(MORNING).await.outcome, Outcome::Awake);
    assert_eq!(w.desired(&api), 3);
}

#[tokio::test]
async fn operator_requests_for_unknown_or_unscheduled_services_change_nothing() {
    let w = world();
    w.service("plain", &[("team", "a")], false);
    let s = w
        .scheduler(false)
        .handle(&json!({"action": "wake", "service": "staging/plain", "for": "1h"}))
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::Ignored);
    assert!(s.reason.unwrap().contains("no deckhand:awake tag"));
    let s = w
        .scheduler(false)
        .handle(&json!({"action": "wake", "service": "staging/ghost", "for": "1h"}))
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::Ignored);
    let api = w.service("api", OFFICE, false);
    let e = w
        .scheduler(false)
        .handle(
            &json!({"action": "sleep", "service": "staging/api", "until": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert!(
        matches!(&e, Err(SchedulerError::BadEvent(b)) if b.field == "until"),
        "{e:?}"
    );
    assert_eq!(w.desired(&api), 3);
    assert!(w.store.all_history().is_empty());
    assert!(w.notifier.published().is_empty());
}

#[tokio::test]
async fn a_deployment_in_progress_keeps_the_service_up_for_an_hour_at_most() {
    let w = world();
    let web = w.service(
        "web",
        &[
            ("deckhand:awake", "Mon-Fri 07:00-19:00"),
            ("deckhand:deploy", "any"),
        ],
        false,
    );
    w.clock.set(utc("2026-11-23T21:55:00Z"));
    let deploy = DeployFunction::new(w.ports.clone(), config(false));
    let push = json!({"version": "0", "id": "p1", "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": "123456789012", "time": "2026-11-23T21:55:00Z", "region": "eu-west-1", "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": "web", "image-digest": format!("sha256:{}", "b".repeat(64)),
                   "action-type": "PUSH", "image-tag": "main-2"}});
    w.ecr.receive(&push);
    assert_eq!(
        deploy.handle(&push).await.unwrap().outcome,
        Outcome::Deployed
    );

    let s = w.reconcile(NIGHT).await;
    assert_eq!(action_of(&s, &web), Action::Skipped);
    assert!(
        s.services[0]
            .reason
            .contains("is in progress since 2026-11-23T21:55:00Z"),
        "{s:?}"
    );
    assert_eq!(w.desired(&web), 3);
    assert_eq!(w.kinds().last(), Some(&"scale.summary"));
    // ECS never said the deployment ended: an hour after it started, the schedule applies.
    assert_eq!(
        w.reconcile("2026-11-23T22:56:00Z").await.outcome,
        Outcome::Asleep
    );
}

#[tokio::test]
async fn a_push_to_a_sleeping_service_deploys_without_waking_it() {
    let w = world();
    let web = w.service(
        "web",
        &[
            ("deckhand:awake", "Mon-Fri 07:00-19:00"),
            ("deckhand:deploy", "any"),
        ],
        true,
    );
    w.reconcile(NIGHT).await;
    w.clock.set(utc("2026-11-23T23:00:00Z"));
    let deploy = DeployFunction::new(w.ports.clone(), config(false));
    let push = json!({"version": "0", "id": "p1", "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": "123456789012", "time": "2026-11-23T23:00:00Z", "region": "eu-west-1", "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": "web", "image-digest": format!("sha256:{}", "b".repeat(64)),
                   "action-type": "PUSH", "image-tag": "main-2"}});
    w.ecr.receive(&push);
    let deployed = deploy.handle(&push).await.unwrap();
    assert_eq!(deployed.outcome, Outcome::Deployed);
    assert!(
        deployed.services[0]
            .reason
            .contains("sleeps and runs it when woken"),
        "{deployed:?}"
    );
    assert_eq!(w.desired(&web), 0, "not woken");
    let state = w.store.load(&web).await.unwrap();
    assert!(state.sleep.is_some(), "the saved record is kept");
    assert!(state.deployment.as_ref().unwrap().at_zero_tasks);
    let new_revision = w.ecs.service(&web).unwrap().task_definition;
    assert!(new_revision.ends_with("web:2"), "{new_revision}");

    // ECS completes the 0-task deployment, which proves nothing about the image.
    let completed = json!({"version": "0", "id": "c1", "detail-type": "ECS Deployment State Change", "source": "aws.ecs",
        "account": "123456789012", "time": "2026-11-23T23:01:00Z", "region": "eu-west-1",
        "resources": ["arn:aws:ecs:eu-west-1:123456789012:service/staging/web"],
        "detail": {"eventType": "INFO", "eventName": "SERVICE_DEPLOYMENT_COMPLETED", "deploymentId": "ecs-svc/1",
                   "updatedAt": "2026-11-23T23:01:00Z"}});
    w.clock.set(utc("2026-11-23T23:01:00Z"));
    assert_eq!(
        deploy.handle(&completed).await.unwrap().outcome,
        Outcome::Completed
    );

    let morning = w.reconcile(MORNING).await;
    assert_eq!(morning.outcome, Outcome::Awake);
    let service = w.ecs.service(&web).unwrap();
    assert_eq!(
        (service.desired_count, service.task_definition),
        (3, new_revision)
    );
    assert_eq!(w.autoscaling.capacity(&web), Some(Capacity::new(2, 6)));
    // The wake runs it: its guard window starts now, after the tasks' margin (15 minutes), and
    // it becomes known-good only once that window passed.
    assert!(
        morning.services[0].reason.ends_with(
            "the deployment of web:2, done while it slept, is guarded until 2026-11-24T07:45:00Z"
        ),
        "{morning:?}"
    );
    let state = w.store.load(&web).await.unwrap();
    assert!(
        state
            .known_good_at(utc("2026-11-24T07:44:59Z"))
            .unwrap()
            .ends_with("web:1"),
        "{state:?}"
    );
    assert!(
        state
            .known_good_at(utc("2026-11-24T07:45:00Z"))
            .unwrap()
            .ends_with("web:2"),
        "{state:?}"
    );
}

#[tokio::test]
async fn one_failing_service_does_not_stop_the_others_and_the_next_reconcile_finishes_it() {
    let w = world();
    let api = w.service("api", OFFICE, true);
    let worker = w.service("worker", OFFICE, true);
    w.autoscaling.fail_for(&api);

    let failed = w
        .scheduler(false)
        .handle(&json!({"action": "reconcile", "at": NIGHT}))
        .await;
    let Err(SchedulerError::ServicesFailed(summary)) = failed else {
        panic!("{failed:?}");
    };
    assert_eq!(action_of(&summary, &api), Action::Error);
    assert_eq!(action_of(&summary, &worker), Action::Asleep);
    assert_eq!(w.desired(&api), 3, "nothing changed for api");
    let pending = w.store.load(&api).await.unwrap().sleep.unwrap();
    assert!(pending.pending, "saved before acting");
    assert!(!w.store.is_locked(&api));

    w.autoscaling.heal(&api);
    let s = w.reconcile("2026-11-23T22:05:00Z").await;
    assert_eq!(action_of(&s, &api), Action::Asleep);
    assert_eq!(w.desired(&api), 0);
    let saved = w.store.load(&api).await.unwrap().sleep.unwrap();
    assert_eq!(
        (saved.desired_count, saved.scalable, saved.pending),
        (3, Some(Capacity::new(2, 6)), false)
    );
    w.reconcile(MORNING).await;
    assert_eq!(
        (w.desired(&api), w.autoscaling.capacity(&api)),
        (3, Some(Capacity::new(2, 6)))
    );
}

#[tokio::test]
async fn invalid_tags_are_reported_every_time_and_notified_once() {
    let w = world();
    let bad = w.service("bad", &[("deckhand:awake", "weekdays 9-5")], false);
    let good = w.service("good", OFFICE, false);
    for at in [NIGHT, "2026-11-23T22:05:00Z"] {
        let s = w.reconcile(at).await;
        assert_eq!(action_of(&s, &bad), Action::Invalid);
        assert!(
            s.services
                .iter()
                .any(|r| r.reason.contains("deckhand:awake = \"weekdays 9-5\""))
        );
    }
    assert_eq!(w.desired(&bad), 3);
    assert_eq!(w.desired(&good), 0);
    assert_eq!(w.kinds(), ["config.invalid", "scale.summary"]);
    assert_eq!(w.actions(&bad), [Action::Invalid]);
}

#[tokio::test]
async fn a_plan_writes_nothing() {
    let w = world();
    let api = w.service("api", OFFICE, true);
    let plan = w.plan(NIGHT).await;
    assert_eq!(plan.outcome, Outcome::WouldSleep);
    assert!(plan.dry_run);
    assert!(
        plan.services[0]
            .reason
            .contains("would save desired count 3, autoscaling min 2 max 6 and set 0"),
        "{plan:?}"
    );
    assert_eq!(w.desired(&api), 3);
    assert!(w.store.all_history().is_empty());
    assert!(w.notifier.published().is_empty());
    assert_eq!(w.store.load(&api).await.unwrap(), ServiceState::default());
}

#[tokio::test]
async fn dry_run_records_and_notifies_each_change_once_and_touches_nothing() {
    let w = world();
    let api = w.service("api", OFFICE, true);
    for at in [NIGHT, "2026-11-23T22:05:00Z", MORNING] {
        w.clock.set(utc(at));
        w.scheduler(true)
            .handle(&json!({"action": "reconcile", "at": at}))
            .await
            .unwrap();
        assert_eq!(w.desired(&api), 3);
        assert_eq!(w.autoscaling.capacity(&api), Some(Capacity::new(2, 6)));
    }
    assert_eq!(w.actions(&api), [Action::WouldSleep, Action::WouldWake]);
    assert_eq!(w.kinds(), ["scale.summary", "scale.summary"]);
    assert!(
        w.notifier
            .published()
            .iter()
            .all(|n| n.details["dryRun"] == true)
    );
    // Out of dry run, deckhand acts for real.
    assert_eq!(
        w.reconcile("2026-11-24T19:30:00Z").await.outcome,
        Outcome::Asleep
    );
    assert_eq!(w.desired(&api), 0);
}

#[tokio::test]
async fn a_service_whose_schedule_was_removed_while_asleep_is_woken() {
    let w = world();
    let api = w.service("api", OFFICE, false);
    w.reconcile(NIGHT).await;
    w.ecs.add_service(
        &api,
        &w.ecs.service(&api).unwrap().task_definition,
        &[("team", "a")],
    );
    w.ecs.scale_by_hand(&api, 0);
    let s = w.reconcile("2026-11-23T22:05:00Z").await;
    assert_eq!(action_of(&s, &api), Action::Awake);
    assert!(
        s.services[0].reason.contains("deckhand:awake was removed"),
        "{s:?}"
    );
    assert_eq!(w.desired(&api), 3);
    assert_eq!(w.store.sleeping().await.unwrap(), Vec::<ServiceKey>::new());
}

#[tokio::test]
async fn bad_requests_change_nothing() {
    let w = world();
    let api = w.service("api", OFFICE, false);
    for event in [
        json!({"action": "nap"}),
        json!({"action": "wake", "service": "staging/api"}),
        json!("reconcile"),
        Value::Null,
    ] {
        let e = w.scheduler(false).handle(&event).await;
        assert!(
            matches!(e, Err(SchedulerError::BadEvent(_))),
            "{event}: {e:?}"
        );
    }
    assert_eq!(w.desired(&api), 3);
    assert!(w.store.all_history().is_empty());
}

/// The reconcile keeps known-good honest for services it does not schedule: a revision no
/// event told of is followed from the reconcile that finds it, and becomes known-good, with a
/// history record, once a reconcile finds its whole guard window passed.
#[tokio::test]
async fn the_reconcile_follows_and_settles_known_good_revisions() {
    let w = world();
    let api = w.service("api", &[("deckhand:deploy", "prefix=main-")], false);
    let first = w.arn_of(&api);
    let plan = w.plan(DAY).await;
    assert_eq!(plan.services[0].action, Action::Recorded, "{plan:?}");
    assert!(w.store.all_history().is_empty(), "a plan writes nothing");

    let found = w.reconcile(DAY).await;
    assert_eq!(found.services.len(), 1, "{found:?}");
    assert!(
        found.services[0]
            .reason
            .contains("of which deckhand saw no ECS deployment event"),
        "{found:?}"
    );
    let state = w.store.load(&api).await.unwrap();
    assert_eq!(state.known_good_at(utc(DAY)), None);
    // Nothing to say while its window runs.
    assert!(
        w.reconcile("2026-11-23T12:15:00Z")
            .await
            .services
            .is_empty()
    );
    let settled = w.reconcile("2026-11-23T12:30:00Z").await;
    assert_eq!(settled.outcome, Outcome::KnownGood, "{settled:?}");
    assert!(
        settled.services[0]
            .reason
            .starts_with("api:1 ran its whole guard window without an alarm"),
        "{settled:?}"
    );
    let state = w.store.load(&api).await.unwrap();
    assert_eq!(state.known_good.as_deref(), Some(first.as_str()));
    assert!(
        w.reconcile("2026-11-23T12:45:00Z")
            .await
            .services
            .is_empty()
    );
    assert_eq!(w.actions(&api), [Action::Recorded, Action::KnownGood]);
    assert!(w.kinds().is_empty(), "bookkeeping is not announced");
}

/// A revision that proved itself is announced once, by the digests it runs, so that the stacks
/// promoted from the service deploy them; a bus that refuses keeps it for the next reconcile,
/// and a stack in dry run announces nothing.
#[tokio::test]
async fn a_proven_revision_is_announced_once_by_digest() {
    let w = world();
    let api = w.service("api", &[("deckhand:deploy", "prefix=main-")], false);
    let running = w.arn_of(&api);
    let digest = format!("sha256:{}", "c".repeat(64));
    w.ecs.resolve(&api, &running, &[("api", &digest)]);
    w.reconcile(DAY).await;
    // In dry run, the window ends and nothing goes out.
    w.clock.set(utc("2026-11-23T12:30:00Z"));
    let rehearsed = w
        .scheduler(true)
        .handle(&json!({"action": "reconcile", "at": "2026-11-23T12:30:00Z"}))
        .await
        .unwrap();
    assert_eq!(rehearsed.outcome, Outcome::KnownGood, "{rehearsed:?}");
    assert!(w.announcer.announced().is_empty());
    assert!(w.store.load(&api).await.unwrap().unannounced.is_some());
    // The bus refuses: said, and kept.
    w.announcer.refuse(true);
    let refused = w.reconcile("2026-11-23T12:35:00Z").await;
    assert!(
        refused.services[0]
            .reason
            .contains("api:1 not announced yet"),
        "{refused:?}"
    );
    assert!(w.store.load(&api).await.unwrap().unannounced.is_some());
    w.announcer.refuse(false);
    let announced = w.reconcile("2026-11-23T12:40:00Z").await;
    assert!(
        announced.services[0]
            .reason
            .contains("api:1 announced as known-good"),
        "{announced:?}"
    );
    let sent = w.announcer.announced();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].revision, "api:1");
    assert_eq!(sent[0].service_arn, w.ecs.service(&api).unwrap().arn);
    assert_eq!(
        sent[0].images,
        vec![("api".to_owned(), format!("{HOST}/api@{digest}"))]
    );
    assert_eq!(sent[0].at, utc("2026-11-23T12:00:00Z"));
    // Once.
    assert!(
        w.reconcile("2026-11-23T12:45:00Z")
            .await
            .services
            .is_empty()
    );
    assert_eq!(w.announcer.announced().len(), 1);
    assert_eq!(w.store.load(&api).await.unwrap().unannounced, None);
}

/// A revision someone else deployed that names a tag becomes a rollback target when the
/// reconcile follows it: the digest ECS resolved for it is recorded then, while it runs.
#[tokio::test]
async fn a_followed_revision_that_names_a_tag_is_pinned_to_the_digest_it_runs() {
    let w = world();
    let api = w.service("api", &[("deckhand:deploy", "prefix=main-")], false);
    let running = w.arn_of(&api);
    let digest = format!("sha256:{}", "c".repeat(64));
    w.ecs.resolve(&api, &running, &[("api", &digest)]);
    w.reconcile(DAY).await;
    let state = w.store.load(&api).await.unwrap();
    let pinned = state.pinned.get(&running).expect("pinned");
    assert_eq!(pinned.images["api"], format!("{HOST}/api@{digest}"));
    assert_eq!(pinned.by, crate::domain::state::PinSource::ServiceRevision);
    // Learned once: the next reconcile reads nothing more for it.
    let described = w.ecs.calls("DescribeServiceRevisions");
    w.reconcile("2026-11-23T12:30:00Z").await;
    assert_eq!(w.ecs.calls("DescribeServiceRevisions"), described);
}

#[path = "scheduler_scaling_tests.rs"]
mod scaling;

#[path = "scheduler_lock_tests.rs"]
mod lock;

#[path = "scheduler_deadline_tests.rs"]
mod deadline;

#[path = "scheduler_index_tests.rs"]
mod index;
