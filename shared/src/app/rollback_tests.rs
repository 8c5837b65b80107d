//! The rollback use case against in-memory ports, with the deploy function making the
//! deployments it guards.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use super::*;
use crate::adapters::memory::{
    FixedClock, MemoryAlarms, MemoryAutoscaling, MemoryEcr, MemoryEcs, MemoryNotifier, MemoryStore,
};
use crate::app::deploy::DeployFunction;
use crate::domain::state::DeploymentStatus;
use crate::ports::StateStore as _;
use crate::report::Outcome;

const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
const START: &str = "2026-11-23T10:00:00Z";

struct World {
    ecs: Arc<MemoryEcs>,
    alarms: Arc<MemoryAlarms>,
    store: Arc<MemoryStore>,
    notifier: Arc<MemoryNotifier>,
    clock: Arc<FixedClock>,
    codedeploy: Arc<crate::adapters::memory::MemoryCodeDeploy>,
    ecr: Arc<MemoryEcr>,
    deploy: DeployFunction,
    rollback: RollbackFunction,
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn config(dry_run: bool) -> Config {
    Config::for_tests(dry_run)
}

fn world_with(dry_run: bool) -> World {
    world_of(false, dry_run)
}

/// A trial: every function in dry run.
fn trial() -> World {
    world_of(true, true)
}

fn world_of(deploy_dry_run: bool, dry_run: bool) -> World {
    let ecs = Arc::new(MemoryEcs::new());
    let alarms = Arc::new(MemoryAlarms::default());
    let store = Arc::new(MemoryStore::default());
    let notifier = Arc::new(MemoryNotifier::default());
    let clock = Arc::new(FixedClock::new(utc(START)));
    let codedeploy = Arc::new(crate::adapters::memory::MemoryCodeDeploy::default());
    let ecr = Arc::new(MemoryEcr::default());
    let ports = Ports {
        ecs: ecs.clone(),
        ecr: ecr.clone(),
        autoscaling: Arc::new(MemoryAutoscaling::default()),
        alarms: alarms.clone(),
        traffic: Arc::new(crate::adapters::memory::MemoryTraffic::default()),
        codedeploy: codedeploy.clone(),
        checks: Arc::new(crate::adapters::memory::MemoryChecks::default()),
        announcer: Arc::new(crate::adapters::memory::MemoryAnnouncer::default()),
        calendars: Arc::new(crate::adapters::memory::MemoryCalendars::default()),
        store: store.clone(),
        images: store.clone(),
        pace: store.clone(),
        notifier: notifier.clone(),
        metrics: notifier.clone(),
        clock: clock.clone(),
    };
    World {
        deploy: DeployFunction::new(ports.clone(), config(deploy_dry_run)),
        rollback: RollbackFunction::new(ports, config(dry_run)),
        ecs,
        alarms,
        store,
        notifier,
        clock,
        codedeploy,
        ecr,
    }
}

fn world() -> World {
    world_with(false)
}

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

impl World {
    /// `prod/NAME` running `NAME@sha256:aaa...` (revision 1), deployed by pushes of `NAME`.
    fn service(&self, name: &str, tags: &[(&str, &str)]) -> ServiceKey {
        self.service_in("prod", name, tags)
    }

    /// `CLUSTER/NAME` running `NAME@sha256:aaa...` (revision 1), deployed by pushes of `NAME`.
    fn service_in(&self, cluster: &str, name: &str, tags: &[(&str, &str)]) -> ServiceKey {
        let image = format!("{HOST}/{name}@{}", digest('a'));
        self.service_of(cluster, name, &image, tags)
    }

    /// `CLUSTER/NAME` running `IMAGE` (revision 1), deployed by pushes of `NAME`.
    fn service_of(
        &self,
        cluster: &str,
        name: &str,
        image: &str,
        tags: &[(&str, &str)],
    ) -> ServiceKey {
        let key = ServiceKey::new(cluster, name);
        // The image was pushed before the revision that runs it was registered.
        if let Some(digest) = image.split_once('@').and_then(|(_, d)| d.parse().ok()) {
            self.ecr.tag(name, &digest, &["41"]);
        }
        let td = self.ecs.add_task_definition(name, &[(name, image)]);
        let mut all = vec![("deckhand:deploy", "any")];
        all.extend_from_slice(tags);
        self.ecs.add_service(&key, &td, &all);
        key
    }

    async fn push(&self, id: &str, repository: &str, d: char, at: &str) -> Summary {
        self.clock.set(utc(at));
        let event = json!({"version": "0", "id": id, "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "123456789012", "time": at, "region": "eu-west-1", "resources": [],
            "detail": {"result": "SUCCESS", "repository-name": repository, "image-digest": digest(d),
                       "action-type": "PUSH", "image-tag": "42"}});
        self.ecr.receive(&event);
        self.deploy.handle(&event).await.unwrap()
    }

    async fn completed(&self, id: &str, key: &ServiceKey, at: &str) {
        self.clock.set(utc(at));
        let event = json!({"version": "0", "id": id, "detail-type": "ECS Deployment State Change",
            "source": "aws.ecs", "account": "123456789012", "time": at, "region": "eu-west-1",
            "resources": [format!("arn:aws:ecs:eu-west-1:123456789012:service/{key}")],
            "detail": {"eventType": "INFO", "eventName": "SERVICE_DEPLOYMENT_COMPLETED",
                       "deploymentId": "ecs-svc/1", "updatedAt": at}});
        let s = self.deploy.handle(&event).await.unwrap();
        assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    }

    /// `api` deployed from revision 1 to 2 at 10:00, completed at 10:05 (guard until 10:35).
    async fn deployed_api(&self, tags: &[(&str, &str)]) -> ServiceKey {
        let api = self.service("api", tags);
        assert_eq!(
            self.push("p1", "api", 'b', START).await.outcome,
            Outcome::Deployed
        );
        self.completed("c1", &api, "2026-11-23T10:05:00Z").await;
        api
    }

    async fn alarm(
        &self,
        id: &str,
        value: &str,
        previous: &str,
        at: &str,
    ) -> Result<Summary, RollbackError> {
        self.alarm_event(alarm_event(
            id,
            "api-5xx",
            value,
            previous,
            at,
            Some(("prod", "api")),
        ))
        .await
    }

    async fn alarm_event(&self, event: Value) -> Result<Summary, RollbackError> {
        if let Some(at) = event["time"].as_str() {
            self.clock.set(utc(at));
        }
        self.rollback.handle(&event).await
    }

    /// Asserts the service runs `api:1` with digest `b` quarantined, and returns its state.
    async fn rolled_back_to_api_1(&self, key: &ServiceKey) -> ServiceState {
        assert_eq!(self.running(key), "api:1");
        let state = self.store.load(key).await.unwrap();
        let bad: crate::domain::image::Digest = digest('b').parse().unwrap();
        assert!(state.is_quarantined(&bad).is_some(), "{state:?}");
        state
    }

    fn running(&self, key: &ServiceKey) -> String {
        revision_name(&self.ecs.service(key).unwrap().task_definition).to_owned()
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.notifier
            .published()
            .iter()
            .map(|n| n.kind.as_str())
            .filter(|k| k.starts_with("rollback"))
            .collect()
    }

    fn actions(&self, key: &ServiceKey) -> Vec<Action> {
        self.store
            .all_history()
            .iter()
            .filter(|r| &r.service == key && r.cause.starts_with('a'))
            .map(|r| r.action)
            .collect()
    }
}

/// An EventBridge alarm event for `name`, optionally naming a service in its metric.
fn alarm_event(
    id: &str,
    name: &str,
    value: &str,
    previous: &str,
    at: &str,
    metric: Option<(&str, &str)>,
) -> Value {
    let mut event: Value =
        serde_json::from_str(include_str!("../../../events/alarm-eventbridge.json")).unwrap();
    let stamp = utc(at).format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string();
    event["id"] = json!(id);
    event["time"] = json!(at);
    event["resources"] = json!([format!(
        "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{name}"
    )]);
    event["detail"]["alarmName"] = json!(name);
    event["detail"]["state"]["value"] = json!(value);
    event["detail"]["state"]["timestamp"] = json!(stamp);
    event["detail"]["previousState"]["value"] = json!(previous);
    let dimensions = match metric {
        Some((cluster, service)) => json!({"ClusterName": cluster, "ServiceName": service}),
        None => json!({"LoadBalancer": "app/web/1"}),
    };
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] =
        dimensions;
    event
}

#[tokio::test]
async fn an_alarm_in_the_guard_window_rolls_back_and_quarantines() {
    let w = world();
    let api = w.deployed_api(&[]).await;
    assert_eq!(w.running(&api), "api:2");

    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z")
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    let r = &s.services[0];
    assert_eq!(
        (r.from.as_deref(), r.to.as_deref()),
        (Some("api:2"), Some("api:1"))
    );
    assert_eq!(r.digest.as_deref(), Some(digest('b').as_str()));
    let state = w.rolled_back_to_api_1(&api).await;
    assert_eq!(
        state.deployment.unwrap().status,
        DeploymentStatus::RolledBack
    );
    let started = w
        .notifier
        .published()
        .into_iter()
        .find(|n| n.kind == Kind::RollbackStarted)
        .unwrap();
    assert_eq!(started.details["alarm"], "api-5xx");
    assert_eq!(
        (
            started.details["from"].as_str(),
            started.details["to"].as_str()
        ),
        (Some("api:2"), Some("api:1"))
    );

    // The same alarm again a minute later: nothing changes, and the notification says why.
    let again = w
        .alarm("a2", "ALARM", "OK", "2026-11-23T10:14:00Z")
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Skipped);
    assert!(
        again.services[0]
            .reason
            .contains("already rolled back after alarm api-5xx"),
        "{again:?}"
    );
    assert_eq!(w.running(&api), "api:1");
    assert_eq!(w.kinds(), ["rollback.started", "rollback.skipped"]);

    // A re-push of the bad digest is not deployed; a fixed image is.
    let repush = w.push("p2", "api", 'b', "2026-11-23T10:20:00Z").await;
    assert_eq!(repush.outcome, Outcome::Skipped, "{repush:?}");
    assert_eq!(w.running(&api), "api:1");
    assert_eq!(
        w.push("p3", "api", 'c', "2026-11-23T10:30:00Z")
            .await
            .outcome,
        Outcome::Deployed
    );
    assert_eq!(w.running(&api), "api:3");
}

#[tokio::test]
async fn outside_the_window_nothing_changes_and_people_are_told_why() {
    let w = world();
    let api = w.deployed_api(&[]).await;
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:40:00Z")
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::Skipped);
    assert!(
        s.services[0].reason.starts_with("outside the guard window"),
        "{s:?}"
    );
    assert_eq!(w.running(&api), "api:2");
    assert_eq!(w.kinds(), ["rollback.skipped"]);
    assert_eq!(w.actions(&api), [Action::Skipped]);
}

#[tokio::test]
async fn only_a_transition_into_alarm_acts() {
    let w = world();
    let api = w.deployed_api(&[]).await;
    for (value, previous) in [
        ("OK", "ALARM"),
        ("INSUFFICIENT_DATA", "OK"),
        ("ALARM", "ALARM"),
    ] {
        let s = w
            .alarm("a1", value, previous, "2026-11-23T10:13:00Z")
            .await
            .unwrap();
        assert_eq!(s.outcome, Outcome::Ignored, "{value} from {previous}");
    }
    assert_eq!(w.running(&api), "api:2");
    assert!(w.kinds().is_empty());
}

#[tokio::test]
async fn a_repeated_or_flapping_alarm_rolls_back_once() {
    let w = world();
    let api = w.deployed_api(&[]).await;
    for _ in 0..5 {
        w.alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z")
            .await
            .unwrap();
    }
    w.alarm("a2", "OK", "ALARM", "2026-11-23T10:15:00Z")
        .await
        .unwrap();
    w.alarm("a3", "ALARM", "OK", "2026-11-23T10:16:00Z")
        .await
        .unwrap();
    assert_eq!(
        w.actions(&api),
        [
            Action::RolledBack,
            Action::Duplicate,
            Action::Duplicate,
            Action::Duplicate,
            Action::Duplicate,
            Action::Skipped
        ]
    );
    assert_eq!(
        w.ecs.calls("UpdateService"),
        2,
        "the deploy and one rollback"
    );
    assert_eq!(w.kinds(), ["rollback.started", "rollback.skipped"]);
}

#[tokio::test]
async fn an_alarm_that_guards_nothing_is_ignored() {
    let w = world();
    let api = w.deployed_api(&[]).await;
    let s = w
        .alarm_event(alarm_event(
            "a1",
            "db-slow",
            "ALARM",
            "OK",
            "2026-11-23T10:13:00Z",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::Ignored);
    assert_eq!(
        s.reason.as_deref(),
        Some("alarm db-slow guards no service that deckhand manages")
    );
    assert_eq!(w.running(&api), "api:2");
    assert!(
        w.notifier
            .published()
            .iter()
            .all(|n| !n.kind.as_str().starts_with("rollback"))
    );
}

/// Rollback off changes nothing in ECS; the alarm still says the deployment is bad, so it never
/// becomes known-good.
#[tokio::test]
async fn rollback_off_changes_nothing() {
    let w = world();
    // Listed explicitly, so the alarm is reported; by metric alone it would guard nothing.
    let api = w
        .deployed_api(&[("deckhand:rollback", "off"), ("deckhand:alarms", "api-5xx")])
        .await;
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z")
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::Skipped);
    assert!(s.services[0].reason.contains("rollback is off"), "{s:?}");
    assert!(
        s.services[0]
            .reason
            .contains("api:2 will not become known-good"),
        "{s:?}"
    );
    assert_eq!(w.running(&api), "api:2");
    let state = w.store.load(&api).await.unwrap();
    assert_eq!(
        state
            .known_good_at(utc("2026-11-24T10:00:00Z"))
            .map(revision_name),
        Some("api:1")
    );

    let w = world();
    let api = w.deployed_api(&[("deckhand:rollback", "off")]).await;
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z")
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::Ignored);
    assert_eq!(w.running(&api), "api:2");
}

#[tokio::test]
async fn one_alarm_guards_two_services_by_tag() {
    let w = world();
    let api = w.deployed_api(&[("deckhand:alarms", "shared-5xx")]).await;
    let web = w.service("web", &[("deckhand:alarms", "latency shared-5xx")]);
    assert_eq!(
        w.push("p9", "web", 'd', START).await.outcome,
        Outcome::Deployed
    );
    let s = w
        .alarm_event(alarm_event(
            "a1",
            "shared-5xx",
            "ALARM",
            "OK",
            "2026-11-23T10:03:00Z",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert_eq!(s.services.len(), 2);
    assert_eq!(
        (w.running(&api), w.running(&web)),
        ("api:1".into(), "web:1".into())
    );
}

/// An alarm storm in a fleet where many services list alarms: each alarm describes only the
/// services whose list names it (the tag values come with the search), not every service
/// that lists some alarm.
#[tokio::test]
async fn an_alarm_describes_only_the_services_that_list_it() {
    let w = world();
    let api = w
        .deployed_api(&[("deckhand:alarms", "api-5xx api-latency")])
        .await;
    for i in 0..30 {
        w.service(
            &format!("other-{i}"),
            &[("deckhand:alarms", &format!("other-{i}-5xx api-5xx-old"))],
        );
    }
    let before = w.ecs.described().len();
    let s = w
        .alarm_event(alarm_event(
            "a1",
            "api-5xx",
            "ALARM",
            "OK",
            "2026-11-23T10:06:00Z",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    let described: Vec<ServiceKey> = w.ecs.described()[before..].to_vec();
    assert!(described.iter().all(|k| *k == api), "{described:?}");
    assert!(!described.is_empty());
}

#[tokio::test]
async fn the_alarm_tag_names_the_service() {
    let w = world();
    let api = w.deployed_api(&[]).await;
    w.alarms.tag(
        "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:checkout-errors",
        &[("deckhand:service", "prod/api")],
    );
    let s = w
        .alarm_event(alarm_event(
            "a1",
            "checkout-errors",
            "ALARM",
            "OK",
            "2026-11-23T10:13:00Z",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert_eq!(w.running(&api), "api:1");
}

#[tokio::test]
async fn dry_run_records_and_notifies_but_changes_nothing() {
    let w = world_with(true);
    let api = w.deployed_api(&[]).await;
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z")
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::WouldRollBack, "{s:?}");
    assert!(s.dry_run);
    assert_eq!(w.running(&api), "api:2");
    assert_eq!(w.kinds(), ["rollback.skipped"]);
    let state = w.store.load(&api).await.unwrap();
    assert!(state.quarantine.is_empty());
}

/// A rehearsed push of `api` at the start, then alarm api-5xx inside its window: the alarm's
/// summary, a rehearsed rollback.
async fn rehearsed(w: &World) -> Summary {
    assert_eq!(
        w.push("p1", "api", 'b', START).await.outcome,
        Outcome::WouldDeploy
    );
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z")
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::WouldRollBack, "{s:?}");
    s
}

/// A trial in dry run: the push records a would-be deployment, and the alarm inside its window
/// is decided as the real path would: `would-roll-back`, once, and nothing in ECS changes.
#[tokio::test]
async fn a_trial_rehearses_the_rollback_a_push_would_lead_to() {
    let w = trial();
    let api = w.service("api", &[]);
    let s = rehearsed(&w).await;
    let r = &s.services[0];
    assert_eq!(r.to.as_deref(), Some("api:1"));
    assert!(
        r.reason.starts_with(
            "dry run: alarm api-5xx went into ALARM while the deployment was in progress"
        ),
        "{r:?}"
    );
    assert!(r.reason.contains("would go back to api:1"), "{r:?}");
    let again = w
        .alarm("a2", "ALARM", "OK", "2026-11-23T10:16:00Z")
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Skipped, "{again:?}");
    assert!(
        again.services[0]
            .reason
            .contains("already rolled back (dry run) after alarm api-5xx"),
        "{again:?}"
    );
    assert_eq!(w.running(&api), "api:1");
    assert_eq!(w.ecs.calls("UpdateService"), 0);
    assert!(w.store.load(&api).await.unwrap().quarantine.is_empty());

    // With no ECS deployment after it, a would-be deployment is guarded for `guard` from its push.
    let w = trial();
    w.service("api", &[]);
    w.push("p1", "api", 'b', START).await;
    let late = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:31:00Z")
        .await
        .unwrap();
    assert_eq!(late.outcome, Outcome::Skipped, "{late:?}");
    assert!(
        late.services[0]
            .reason
            .contains("which no ECS deployment followed"),
        "{late:?}"
    );

    // Once the trial ends, a would-be deployment is not deckhand's: nothing to roll back.
    let w = world_of(true, false);
    w.service("api", &[]);
    w.push("p1", "api", 'b', START).await;
    let live = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z")
        .await
        .unwrap();
    assert!(
        live.services[0]
            .reason
            .contains("its latest deployment was a dry run's"),
        "{live:?}"
    );
}

#[tokio::test]
async fn never_onto_a_quarantined_digest_nor_without_a_known_good_revision() {
    let w = world();
    let api = w.deployed_api(&[]).await;
    // The baseline became known-good pinned to a digest that was later quarantined.
    let mut state = w.store.load(&api).await.unwrap();
    let pinned = w
        .ecs
        .add_task_definition("api", &[("api", &format!("{HOST}/api@{}", digest('e')))]);
    state.known_good = Some(pinned);
    state.quarantine(
        &digest('e').parse().unwrap(),
        "failed".into(),
        utc(START),
        None,
    );
    w.store.put_state(&api, state);
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z")
        .await
        .unwrap();
    assert!(
        s.services[0].reason.contains("runs quarantined digest"),
        "{s:?}"
    );
    assert_eq!(w.running(&api), "api:2");
    assert!(!w.store.is_locked(&api));
}

#[tokio::test]
async fn a_failed_update_is_reported_and_the_retry_rolls_back() {
    let w = world();
    let api = w.deployed_api(&[]).await;
    w.ecs.fail("UpdateService");
    let e = w.alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z").await;
    assert!(matches!(e, Err(RollbackError::ServicesFailed(_))), "{e:?}");
    assert_eq!(w.running(&api), "api:2");
    w.ecs.heal("UpdateService");
    w.clock.advance(TimeDelta::seconds(30));
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z")
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack);
    assert_eq!(w.running(&api), "api:1");
}

#[tokio::test]
async fn bad_events_name_the_field_and_change_nothing() {
    let w = world();
    let api = w.deployed_api(&[]).await;
    for event in [
        json!(null),
        json!({"alarmData": {}}),
        json!({"Records": [{}]}),
        json!({"detail-type": 5}),
    ] {
        let e = w.rollback.handle(&event).await;
        assert!(
            matches!(e, Err(RollbackError::BadEvent(_))),
            "{event}: {e:?}"
        );
    }
    assert_eq!(w.running(&api), "api:2");
}

#[tokio::test]
async fn a_push_of_the_bad_digest_racing_the_rollback_never_undoes_it() {
    let w = world();
    let api = w.deployed_api(&[]).await;
    w.clock.set(utc("2026-11-23T10:13:00Z"));
    let alarm = alarm_event(
        "a1",
        "api-5xx",
        "ALARM",
        "OK",
        "2026-11-23T10:13:00Z",
        Some(("prod", "api")),
    );
    let push = json!({"version": "0", "id": "p2", "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": "123456789012", "time": "2026-11-23T10:13:00Z", "region": "eu-west-1", "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": "api", "image-digest": digest('b'),
                   "action-type": "PUSH", "image-tag": "42"}});
    let (rolled, pushed) = tokio::join!(w.rollback.handle(&alarm), w.deploy.handle(&push));
    assert_eq!(rolled.unwrap().outcome, Outcome::RolledBack);
    assert_eq!(pushed.unwrap().outcome, Outcome::Skipped);
    assert_eq!(w.running(&api), "api:1");
    // Later pushes of it stay out too.
    assert_eq!(
        w.push("p3", "api", 'b', "2026-11-23T11:00:00Z")
            .await
            .outcome,
        Outcome::Skipped
    );
    assert_eq!(w.running(&api), "api:1");
}

#[tokio::test]
async fn a_manual_rollback_takes_the_alarm_path_and_an_unknown_revision_changes_nothing() {
    let w = world();
    let api = w.deployed_api(&[]).await;
    let e = w
        .rollback
        .manual(&api, Some("api:9"), "alice")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "api:9 is not a task definition revision ECS knows"
    );
    assert_eq!(w.running(&api), "api:2");
    assert!(w.store.load(&api).await.unwrap().quarantine.is_empty());

    // Another family, which ECS knows: another application's task definition.
    let other = w.service("billing", &[]);
    let billing = w.ecs.service(&other).unwrap().task_definition;
    let e = w
        .rollback
        .manual(&api, Some(&billing), "alice")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "billing:1 is not a revision of prod/api's family api: a rollback goes back to what the service ran"
    );
    assert_eq!(w.running(&api), "api:2");

    let s = w.rollback.manual(&api, None, "alice").await.unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    let state = w.rolled_back_to_api_1(&api).await;
    assert_eq!(
        state.deployment.unwrap().rollback.unwrap().alarm,
        "manual rollback by alice"
    );
    assert_eq!(w.kinds(), ["rollback.started"]);
    let again = w.rollback.manual(&api, None, "alice").await.unwrap();
    assert_eq!(again.outcome, Outcome::Skipped);
    assert!(
        again.services[0].reason.contains("already runs"),
        "{again:?}"
    );
}

/// ECS completed the deployment early (early success criteria, DEFERRED cleanup): its circuit
/// breaker and alarm rollback stop there, so deckhand's protection goes on until the rollout
/// settles; an alarm long after the guard would have ended rolls it back.
#[tokio::test]
async fn an_alarm_while_an_early_completion_still_rolls_out_rolls_back() {
    let w = world();
    let api = w.service("api", &[]);
    w.ecs.set_early_success(&api, 50, true);
    assert_eq!(
        w.push("p1", "api", 'b', START).await.outcome,
        Outcome::Deployed
    );
    w.clock.set(utc("2026-11-23T10:05:00Z"));
    let event = json!({"version": "0", "id": "done", "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs", "account": "123456789012", "time": "2026-11-23T10:05:00Z", "region": "eu-west-1",
        "resources": [format!("arn:aws:ecs:eu-west-1:123456789012:service/{api}")],
        "detail": {"eventType": "INFO", "eventName": "SERVICE_DEPLOYMENT_COMPLETED",
                   "deploymentId": "ecs-svc/1", "updatedAt": "2026-11-23T10:05:00Z"}});
    let done = w.deploy.handle(&event).await.unwrap();
    assert_eq!(done.outcome, Outcome::Completed, "{done:?}");
    assert!(
        done.services[0].reason.contains(
            "completed the deployment of api:2 early (early success criteria: complete at 50% of the tasks healthy, the old tasks cleaned up after it (DEFERRED))"
        ),
        "{done:?}"
    );
    let d = w.store.load(&api).await.unwrap().deployment.unwrap();
    assert_eq!(
        (d.status, d.guard_until, d.early_completed_at),
        (
            DeploymentStatus::InProgress,
            None,
            Some(utc("2026-11-23T10:05:00Z"))
        )
    );
    let completed = w
        .notifier
        .published()
        .into_iter()
        .find(|n| n.kind == Kind::DeployCompleted)
        .unwrap();
    assert_eq!(completed.details["completedEarly"], json!(true));
    // Long past a 30-minute window counted from ECS's completion: the rollout still settles.
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T11:00:00Z")
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    w.rolled_back_to_api_1(&api).await;
}

#[path = "rollback_aws_tests.rs"]
mod aws;

/// A blue/green service of ECS's own: while its deployment is in progress (bake time included)
/// the alarm stops it with ROLLBACK, and ECS moves the traffic back; once it completed, the
/// rollback is a new deployment of the known-good revision.
#[tokio::test]
async fn a_native_blue_green_service_is_rolled_back_by_ecs_while_its_deployment_runs() {
    use crate::domain::strategy::Strategy;

    let w = world();
    let api = w.service("api", &[]);
    w.ecs.set_strategy(&api, Strategy::BlueGreen);
    w.push("p1", "api", 'b', START).await;
    w.completed("c1", &api, "2026-11-23T10:05:00Z").await;
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z")
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert!(
        s.services[0].reason.contains(
            "ECS's own rollback of its BLUE_GREEN deployment in progress (StopServiceDeployment)"
        ),
        "{s:?}"
    );
    assert_eq!(w.running(&api), "api:1");
    assert_eq!(w.ecs.calls("StopServiceDeployment"), 1);
    assert_eq!(w.ecs.calls("UpdateService"), 1, "the deploy's only");
    w.rolled_back_to_api_1(&api).await;

    // The same service once ECS ended its deployment: a redeploy, said so.
    let w = world();
    let api = w.service("api", &[]);
    w.ecs.set_strategy(&api, Strategy::Canary);
    w.push("p1", "api", 'b', START).await;
    w.completed("c1", &api, "2026-11-23T10:05:00Z").await;
    w.ecs.end_service_deployment(&api);
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z")
        .await
        .unwrap();
    assert!(
        s.services[0].reason.contains(
            "a new deployment of api:1 (UpdateService): no CANARY deployment of ECS in progress to stop"
        ),
        "{s:?}"
    );
    assert_eq!(w.ecs.calls("StopServiceDeployment"), 0);
    assert_eq!(w.running(&api), "api:1");
}

#[path = "rollback_codedeploy_tests.rs"]
mod codedeploy;

#[path = "rollback_pin_tests.rs"]
mod pin;

#[path = "rollback_ahead_tests.rs"]
mod ahead;

#[path = "rollback_trial_tests.rs"]
mod trial;
