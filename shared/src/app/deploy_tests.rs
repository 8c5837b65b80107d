//! The deploy use case against in-memory ports: every decision and what it leaves behind.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::*;
use crate::adapters::memory::{FixedClock, MemoryEcr, MemoryEcs, MemoryNotifier, MemoryStore};
use crate::domain::fleet::ImageChange;
use crate::domain::scan::FindingSeverity;
use crate::domain::state::DeploymentStatus;
use crate::ports::{Ecs as _, StateStore as _};
use crate::report::Outcome;

const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

struct World {
    ecs: Arc<MemoryEcs>,
    ecr: Arc<MemoryEcr>,
    traffic: Arc<crate::adapters::memory::MemoryTraffic>,
    codedeploy: Arc<crate::adapters::memory::MemoryCodeDeploy>,
    checks: Arc<crate::adapters::memory::MemoryChecks>,
    calendars: Arc<crate::adapters::memory::MemoryCalendars>,
    store: Arc<MemoryStore>,
    notifier: Arc<MemoryNotifier>,
    clock: Arc<FixedClock>,
    ports: Ports,
    function: DeployFunction,
}

fn config(dry_run: bool) -> Config {
    Config::for_tests(dry_run)
}

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, minute, 0).unwrap()
}

fn world_with(config: Config) -> World {
    let ecs = Arc::new(MemoryEcs::new());
    let ecr = Arc::new(MemoryEcr::default());
    let notifier = Arc::new(MemoryNotifier::default());
    let clock = Arc::new(FixedClock::new(at(30)));
    let store = Arc::new(MemoryStore::with_clock(clock.clone()));
    let traffic = Arc::new(crate::adapters::memory::MemoryTraffic::default());
    let codedeploy = Arc::new(crate::adapters::memory::MemoryCodeDeploy::default());
    let checks = Arc::new(crate::adapters::memory::MemoryChecks::default());
    let calendars = Arc::new(crate::adapters::memory::MemoryCalendars::default());
    let ports = Ports {
        ecs: ecs.clone(),
        ecr: ecr.clone(),
        autoscaling: Arc::new(crate::adapters::memory::MemoryAutoscaling::default()),
        alarms: Arc::new(crate::adapters::memory::MemoryAlarms::default()),
        traffic: traffic.clone(),
        codedeploy: codedeploy.clone(),
        checks: checks.clone(),
        announcer: Arc::new(crate::adapters::memory::MemoryAnnouncer::default()),
        calendars: calendars.clone(),
        store: store.clone(),
        images: store.clone(),
        pace: store.clone(),
        notifier: notifier.clone(),
        metrics: notifier.clone(),
        clock: clock.clone(),
    };
    World {
        ecs,
        ecr,
        traffic,
        codedeploy,
        checks,
        calendars,
        store,
        notifier,
        clock,
        function: DeployFunction::new(ports.clone(), config),
        ports,
    }
}

impl World {
    /// The event of a push ECR took: the registry holds the digest and the tag.
    fn pushed(&self, event: Value) -> Value {
        self.ecr.receive(&event);
        event
    }
}

/// `demo/web` runs `web:main-1` (family web, revision 1) with the given tags.
fn world(tags: &[(&str, &str)]) -> World {
    let w = world_with(config(false));
    let td = w.ecs.add_task_definition(
        "web",
        &[
            ("web", &format!("{HOST}/web:main-1")),
            ("envoy", &format!("{HOST}/envoy:1")),
        ],
    );
    w.ecs.add_service(&web(), &td, tags);
    w
}

fn web() -> ServiceKey {
    ServiceKey::new("demo", "web")
}

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn push_event(id: &str, minute: u32, tag: Option<&str>, d: char) -> Value {
    let mut detail = json!({"result": "SUCCESS", "repository-name": "web", "image-digest": digest(d), "action-type": "PUSH"});
    if let Some(tag) = tag {
        detail["image-tag"] = json!(tag);
    }
    json!({"version": "0", "id": id, "detail-type": "ECR Image Action", "source": "aws.ecr", "account": "123456789012",
           "time": at(minute).to_rfc3339(), "region": "eu-west-1", "resources": [], "detail": detail})
}

fn deployment_event(id: &str, name: &str, minute: u32) -> Value {
    json!({"version": "0", "id": id, "detail-type": "ECS Deployment State Change", "source": "aws.ecs",
           "account": "123456789012", "time": at(minute).to_rfc3339(), "region": "eu-west-1",
           "resources": ["arn:aws:ecs:eu-west-1:123456789012:service/demo/web"],
           "detail": {"eventType": "INFO", "eventName": name, "deploymentId": "ecs-svc/1", "updatedAt": at(minute).to_rfc3339(),
                      "reason": "circuit breaker: tasks failed to start"}})
}

fn running_image(w: &World, container: &str) -> String {
    let td = w
        .ecs
        .task_definition(&w.ecs.service(&web()).unwrap().task_definition)
        .unwrap();
    td.containers
        .into_iter()
        .find(|c| c.name == container)
        .unwrap()
        .image
}

fn kinds(w: &World) -> Vec<&'static str> {
    w.notifier
        .published()
        .iter()
        .map(|n| n.kind.as_str())
        .collect()
}

/// Each service of a summary with what was done to it.
fn by_service(summary: &Summary) -> Vec<(&str, Action)> {
    summary
        .services
        .iter()
        .map(|s| (s.service.as_str(), s.action))
        .collect()
}

fn actions(w: &World) -> Vec<Action> {
    w.store.all_history().iter().map(|r| r.action).collect()
}

#[tokio::test]
async fn a_matching_push_deploys_the_pinned_image() {
    let w = world(&[("deckhand:deploy", "prefix=main-")]);
    let summary = w
        .function
        .handle(&w.pushed(push_event("e1", 1, Some("main-42"), 'b')))
        .await
        .unwrap();

    assert_eq!(summary.outcome, Outcome::Deployed);
    let s = &summary.services[0];
    assert_eq!(
        (s.from.as_deref(), s.to.as_deref()),
        (Some("web:1"), Some("web:2"))
    );
    assert_eq!(s.reason, "tag main-42 matches prefix=main-");
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('b'))
    );
    assert_eq!(
        running_image(&w, "envoy"),
        format!("{HOST}/envoy:1"),
        "other repositories untouched"
    );

    let state = w.store.load(&web()).await.unwrap();
    assert_eq!(
        state.known_good.as_deref(),
        Some("arn:aws:ecs:eu-west-1:123456789012:task-definition/web:1")
    );
    let deployment = state.deployment.unwrap();
    assert_eq!(deployment.status, DeploymentStatus::InProgress);
    assert_eq!(deployment.tag.as_deref(), Some("main-42"));
    assert!(!w.store.is_locked(&web()));
    assert_eq!(actions(&w), [Action::Deployed]);
    assert_eq!(kinds(&w), ["deploy.started"]);
    let n = &w.notifier.published()[0];
    assert_eq!(n.service, "demo/web");
    assert_eq!(n.details["to"], "web:2");
}

#[tokio::test]
async fn an_untracked_tag_is_ignored_and_recorded_without_notification() {
    let w = world(&[("deckhand:deploy", "prefix=main-")]);
    let summary = w
        .function
        .handle(&w.pushed(push_event("e1", 1, Some("feature-x"), 'b')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Ignored);
    assert_eq!(
        summary.reason.as_deref(),
        Some("tag feature-x matches no service's deploy policy")
    );
    assert_eq!(
        summary.services[0].reason,
        "tag feature-x does not match prefix=main-"
    );
    assert_eq!(w.ecs.revisions(), 1);
    assert_eq!(actions(&w), [Action::Ignored]);
    assert!(kinds(&w).is_empty());
}

#[tokio::test]
async fn a_push_to_a_repository_nobody_runs_is_ignored() {
    let w = world(&[("deckhand:deploy", "any")]);
    let mut event = push_event("e1", 1, Some("main-42"), 'b');
    event["detail"]["repository-name"] = json!("billing");
    let summary = w.function.handle(&w.pushed(event)).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Ignored);
    assert_eq!(
        summary.reason.as_deref(),
        Some("no opted-in service runs an image from billing")
    );
    assert!(summary.services.is_empty());
    assert!(actions(&w).is_empty());
}

#[tokio::test]
async fn invalid_tags_skip_that_service_and_the_others_proceed() {
    let w = world(&[("deckhand:deploy", "main-*")]);
    let td = w
        .ecs
        .add_task_definition("api", &[("api", &format!("{HOST}/web:main-1"))]);
    let api = ServiceKey::new("demo", "api");
    w.ecs.add_service(&api, &td, &[("deckhand:deploy", "any")]);

    let summary = w
        .function
        .handle(&w.pushed(push_event("e1", 1, Some("main-42"), 'b')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed);
    assert_eq!(
        by_service(&summary),
        [
            ("demo/api", Action::Deployed),
            ("demo/web", Action::Invalid)
        ]
    );
    assert!(
        summary.services[1]
            .reason
            .contains("deckhand:deploy = \"main-*\"")
    );
    assert_eq!(running_image(&w, "web"), format!("{HOST}/web:main-1"));
    let mut k = kinds(&w);
    k.sort();
    assert_eq!(k, ["config.invalid", "deploy.started"]);
}

#[tokio::test]
async fn a_container_list_naming_a_missing_container_is_invalid() {
    let w = world(&[
        ("deckhand:deploy", "any"),
        ("deckhand:containers", "web api"),
    ]);
    let summary = w
        .function
        .handle(&w.pushed(push_event("e1", 1, Some("main-42"), 'b')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Invalid);
    assert!(summary.services[0].reason.contains("`api`"));
    assert_eq!(w.ecs.revisions(), 1);
    assert_eq!(kinds(&w), ["config.invalid"]);
}

#[tokio::test]
async fn the_same_event_twice_deploys_once() {
    let w = world(&[("deckhand:deploy", "any")]);
    let event = w.pushed(push_event("e1", 1, Some("main-42"), 'b'));
    w.function.handle(&event).await.unwrap();
    let again = w.function.handle(&event).await.unwrap();
    assert_eq!(again.outcome, Outcome::Duplicate);
    assert_eq!(w.ecs.revisions(), 2);
    assert_eq!(w.ecs.calls("UpdateService"), 1);
    assert_eq!(
        actions(&w),
        [Action::Deployed, Action::Duplicate],
        "the repeat is on record, the deployment once"
    );
    assert_eq!(kinds(&w), ["deploy.started"]);
}

#[tokio::test]
async fn an_older_push_after_a_newer_one_changes_nothing() {
    let w = world(&[("deckhand:deploy", "any")]);
    w.function
        .handle(&w.pushed(push_event("new", 5, Some("main-5"), 'c')))
        .await
        .unwrap();
    let summary = w
        .function
        .handle(&w.pushed(push_event("old", 3, Some("main-3"), 'b')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Skipped);
    assert!(
        summary.services[0].reason.contains("a newer push"),
        "{}",
        summary.services[0].reason
    );
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('c'))
    );
    assert_eq!(actions(&w), [Action::Deployed, Action::Skipped]);
    assert_eq!(kinds(&w), ["deploy.started", "deploy.skipped"]);
}

#[tokio::test]
async fn a_digest_already_running_is_skipped_without_notification() {
    let w = world(&[("deckhand:deploy", "any")]);
    w.function
        .handle(&w.pushed(push_event("e1", 1, Some("main-42"), 'b')))
        .await
        .unwrap();
    // the same image pushed again under another tag
    let summary = w
        .function
        .handle(&w.pushed(push_event("e2", 2, Some("main-42b"), 'b')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Skipped);
    assert!(
        summary.services[0]
            .reason
            .starts_with("the service already runs digest")
    );
    assert_eq!(w.ecs.revisions(), 2);
    assert_eq!(kinds(&w), ["deploy.started"]);
}

#[tokio::test]
async fn a_failed_deployment_quarantines_its_digest_until_a_new_one_comes() {
    let w = world(&[("deckhand:deploy", "any")]);
    w.function
        .handle(&w.pushed(push_event("e1", 1, Some("main-1b"), 'b')))
        .await
        .unwrap();
    let failed = w
        .function
        .handle(&deployment_event("ecs-1", "SERVICE_DEPLOYMENT_FAILED", 34))
        .await
        .unwrap();
    assert_eq!(failed.outcome, Outcome::Failed);
    assert!(failed.services[0].reason.contains("is quarantined"));
    let state = w.store.load(&web()).await.unwrap();
    assert_eq!(state.deployment.unwrap().status, DeploymentStatus::Failed);
    assert!(state.quarantine.contains_key(&digest('b')));

    // a re-push of the same digest, under a new tag: not deployed
    w.ecs
        .update_service(
            &web(),
            "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:1",
        )
        .await
        .unwrap();
    let again = w
        .function
        .handle(&w.pushed(push_event("e2", 5, Some("main-1c"), 'b')))
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Skipped);
    assert!(again.services[0].reason.contains("quarantined"));
    assert_eq!(w.ecs.revisions(), 2);

    // a fixed image deploys
    let fixed = w
        .function
        .handle(&w.pushed(push_event("e3", 6, Some("main-2"), 'c')))
        .await
        .unwrap();
    assert_eq!(fixed.outcome, Outcome::Deployed);
    assert_eq!(
        kinds(&w),
        [
            "deploy.started",
            "deploy.failed",
            "deploy.skipped",
            "deploy.started"
        ]
    );
}

#[tokio::test]
async fn completion_is_recorded_once_and_sets_the_guard_window() {
    let w = world(&[("deckhand:deploy", "any"), ("deckhand:guard", "1h")]);
    w.function
        .handle(&w.pushed(push_event("e1", 1, Some("main-1b"), 'b')))
        .await
        .unwrap();
    let event = deployment_event("ecs-1", "SERVICE_DEPLOYMENT_COMPLETED", 31);
    let done = w.function.handle(&event).await.unwrap();
    assert_eq!(done.outcome, Outcome::Completed);
    let state = w.store.load(&web()).await.unwrap();
    let d = state.deployment.clone().unwrap();
    assert_eq!(d.status, DeploymentStatus::Completed);
    assert_eq!(d.guard_until, Some(at(31) + chrono::TimeDelta::hours(1)));
    assert_eq!(
        state.known_good_at(at(59)),
        Some("arn:aws:ecs:eu-west-1:123456789012:task-definition/web:1")
    );
    assert_eq!(
        state.known_good_at(at(31) + chrono::TimeDelta::hours(1)),
        Some(d.to.as_str())
    );

    assert_eq!(
        w.function.handle(&event).await.unwrap().outcome,
        Outcome::Duplicate
    );
    let other_delivery = deployment_event("ecs-2", "SERVICE_DEPLOYMENT_COMPLETED", 32);
    assert_eq!(
        w.function.handle(&other_delivery).await.unwrap().outcome,
        Outcome::Duplicate
    );
    assert_eq!(kinds(&w), ["deploy.started", "deploy.completed"]);
}

/// A service deckhand never deployed is still followed: what its pipeline deployed becomes
/// known-good once it ran its guard window.
#[tokio::test]
async fn deployment_events_for_services_deckhand_never_deployed_are_followed() {
    let w = world(&[("deckhand:deploy", "any")]);
    let summary = w
        .function
        .handle(&deployment_event(
            "ecs-1",
            "SERVICE_DEPLOYMENT_COMPLETED",
            31,
        ))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Recorded, "{summary:?}");
    assert!(
        summary.services[0]
            .reason
            .contains("which deckhand did not start; it becomes known-good at"),
        "{summary:?}"
    );
    let state = w.store.load(&web()).await.unwrap();
    let seen = state.seen.clone().unwrap();
    assert_eq!(seen.ecs_deployment_id, "ecs-svc/1");
    assert_eq!(seen.status, DeploymentStatus::Completed);
    let running = w.ecs.service(&web()).unwrap().task_definition;
    assert_eq!(seen.task_definition, running);
    assert_eq!(
        state.known_good_at(seen.guard_until.unwrap()),
        Some(running.as_str())
    );
    assert!(kinds(&w).is_empty(), "followed, not announced");

    let untagged = world(&[]);
    let summary = untagged
        .function
        .handle(&deployment_event(
            "ecs-1",
            "SERVICE_DEPLOYMENT_COMPLETED",
            31,
        ))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Ignored);
    assert!(summary.reason.unwrap().contains("has not opted in"));
    assert!(!untagged.store.is_locked(&web()));
    assert!(kinds(&untagged).is_empty());
}

#[tokio::test]
async fn dry_run_decides_records_and_notifies_but_changes_nothing() {
    let w = world_with(config(true));
    let td = w
        .ecs
        .add_task_definition("web", &[("web", &format!("{HOST}/web:main-1"))]);
    w.ecs
        .add_service(&web(), &td, &[("deckhand:deploy", "any")]);
    let summary = w
        .function
        .handle(&w.pushed(push_event("e1", 1, Some("main-42"), 'b')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::WouldDeploy);
    assert!(summary.dry_run);
    assert_eq!(w.ecs.revisions(), 1);
    assert_eq!(w.ecs.calls("UpdateService"), 0);
    assert_eq!(running_image(&w, "web"), format!("{HOST}/web:main-1"));
    let history = w.store.all_history();
    assert_eq!(
        (history[0].action, history[0].dry_run),
        (Action::WouldDeploy, true)
    );
    assert_eq!(kinds(&w), ["deploy.skipped"]);
    // The would-be deployment is on record, so that an alarm can be decided as for real.
    let deployment = w.store.load(&web()).await.unwrap().deployment.unwrap();
    assert!(deployment.dry_run);
    assert_eq!(deployment.status, DeploymentStatus::InProgress);
    assert_eq!(
        (deployment.from.as_str(), deployment.to.as_str()),
        (td.as_str(), td.as_str())
    );
    assert_eq!(deployment.digest.to_string(), digest('b'));
    // The same digest pushed again would already run.
    let again = w
        .function
        .handle(&w.pushed(push_event("e2", 2, Some("release-1"), 'b')))
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Skipped, "{again:?}");
    assert!(
        again.services[0]
            .reason
            .contains("would-be deployment already runs")
    );
}

#[tokio::test]
async fn semver_compares_with_the_running_digest_tags_from_ecr() {
    let w = world(&[("deckhand:deploy", "semver=minor")]);
    // first deploy by exact tag comparison: running main-1 is no version, so nothing happens
    let summary = w
        .function
        .handle(&w.pushed(push_event("e1", 1, Some("1.2.0"), 'b')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Ignored);

    // the service runs a digest whose tag ECR knows
    let running = format!("{HOST}/web@{}", digest('a'));
    let td = w.ecs.add_task_definition("web", &[("web", &running)]);
    w.ecs.update_service(&web(), &td).await.unwrap();
    w.ecr
        .tag("web", &digest('a').parse().unwrap(), &["v1.2.3", "latest"]);

    let older = w
        .function
        .handle(&w.pushed(push_event("e2", 2, Some("1.2.2"), 'c')))
        .await
        .unwrap();
    assert_eq!(older.outcome, Outcome::Ignored);
    assert!(
        older.services[0]
            .reason
            .contains("not newer than the running 1.2.3")
    );
    let major = w
        .function
        .handle(&w.pushed(push_event("e3", 3, Some("v2.0.0"), 'd')))
        .await
        .unwrap();
    assert_eq!(major.outcome, Outcome::Ignored);
    let minor = w
        .function
        .handle(&w.pushed(push_event("e4", 4, Some("v1.3.0"), 'e')))
        .await
        .unwrap();
    assert_eq!(minor.outcome, Outcome::Deployed);
    assert_eq!(
        minor.services[0].reason,
        "tag v1.3.0 is newer than the running 1.2.3 (semver=minor)"
    );
}

#[tokio::test]
async fn a_failure_in_ecs_is_reported_released_and_retried_cleanly() {
    let w = world(&[("deckhand:deploy", "any")]);
    w.ecs.fail("UpdateService");
    let event = w.pushed(push_event("e1", 1, Some("main-42"), 'b'));
    let err = w.function.handle(&event).await.unwrap_err();
    assert!(
        matches!(&err, DeployError::ServicesFailed(s) if s.services[0].action == Action::Error)
    );
    assert_eq!(err.error_type(), "deckhand.ServicesFailed");
    assert!(
        err.to_string().contains("demo/web: UpdateService failed"),
        "{err}"
    );
    assert!(!w.store.is_locked(&web()));
    assert_eq!(actions(&w), [Action::Error]);
    assert_eq!(kinds(&w), ["error"]);
    assert_eq!(running_image(&w, "web"), format!("{HOST}/web:main-1"));
    assert_eq!(w.ecs.revisions(), 2, "the revision was registered");

    // The retry moves the service onto the revision the failed attempt registered.
    w.ecs.heal("UpdateService");
    let summary = w.function.handle(&event).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed);
    assert_eq!(summary.services[0].to.as_deref(), Some("web:2"));
    assert_eq!(w.ecs.revisions(), 2, "no second revision");
    assert_eq!(w.ecs.calls("RegisterTaskDefinition"), 1);
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('b'))
    );
    assert_eq!(actions(&w), [Action::Error, Action::Deployed]);
    let state = w.store.load(&web()).await.unwrap();
    assert_eq!(state.registered, None);
    assert_eq!(
        state.known_good.as_deref(),
        Some(w.ecs.revision_arn("web", 1).as_str())
    );
}

#[tokio::test]
async fn a_crash_between_register_and_update_leaves_one_revision_after_the_retry() {
    let w = world(&[("deckhand:deploy", "any")]);
    let event = w.pushed(push_event("e1", 1, Some("main-42"), 'b'));
    // The invocation dies while UpdateService is in flight: no answer, no record, the lock
    // still held.
    w.ecs.stall("UpdateService");
    let crashed = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        w.function.handle(&event),
    )
    .await;
    assert!(crashed.is_err(), "the invocation never finished");
    assert!(w.store.is_locked(&web()));
    assert_eq!(w.ecs.revisions(), 2);
    assert!(actions(&w).is_empty());

    // Lambda retries the event once the lease has run out.
    w.ecs.heal("UpdateService");
    w.clock
        .advance(crate::app::locking::LEASE + chrono::TimeDelta::seconds(1));
    let summary = w.function.handle(&event).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed);
    assert_eq!(
        (
            summary.services[0].from.as_deref(),
            summary.services[0].to.as_deref()
        ),
        (Some("web:1"), Some("web:2"))
    );
    assert_eq!(w.ecs.revisions(), 2, "one revision");
    assert_eq!(w.ecs.calls("RegisterTaskDefinition"), 1);
    assert_eq!(w.ecs.calls("ListTaskDefinitions"), 1, "looked for it once");
    assert_eq!(actions(&w), [Action::Deployed], "one deployment");
    assert_eq!(kinds(&w), ["deploy.started"]);
    assert!(!w.store.is_locked(&web()));
}

#[tokio::test]
async fn a_crash_after_the_update_is_recorded_by_the_retry() {
    let w = world(&[("deckhand:deploy", "any")]);
    let event = w.pushed(push_event("e1", 1, Some("main-42"), 'b'));
    // What an invocation that died after UpdateService leaves: the service on the revision
    // registered for the push, nothing in the table.
    let base = w
        .ecs
        .task_definition(&w.ecs.revision_arn("web", 1))
        .unwrap();
    let changes = vec![ImageChange {
        container: "web".into(),
        from: format!("{HOST}/web:main-1"),
        to: format!("{HOST}/web@{}", digest('b')),
    }];
    let new = w
        .ecs
        .register_revision(&base, &changes, "e1")
        .await
        .unwrap();
    w.ecs.update_service(&web(), &new).await.unwrap();

    let summary = w.function.handle(&event).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed);
    assert_eq!(
        (
            summary.services[0].from.as_deref(),
            summary.services[0].to.as_deref()
        ),
        (Some("web:1"), Some("web:2"))
    );
    assert_eq!(w.ecs.revisions(), 2);
    assert_eq!(
        w.ecs.calls("RegisterTaskDefinition"),
        1,
        "only the first attempt's"
    );
    let state = w.store.load(&web()).await.unwrap();
    let deployment = state.deployment.unwrap();
    assert_eq!(
        (deployment.id.as_str(), deployment.to.as_str()),
        ("e1", new.as_str())
    );
    assert_eq!(
        state.known_good.as_deref(),
        Some(w.ecs.revision_arn("web", 1).as_str()),
        "the revision it came from is the rollback target, not the new one"
    );
    assert_eq!(actions(&w), [Action::Deployed]);
    assert_eq!(kinds(&w), ["deploy.started"]);
}

#[tokio::test]
async fn clusters_outside_deckhand_clusters_are_left_alone() {
    let w = world_with(Config {
        clusters: Some(vec!["prod".into()]),
        ..config(false)
    });
    let td = w
        .ecs
        .add_task_definition("web", &[("web", &format!("{HOST}/web:main-1"))]);
    w.ecs
        .add_service(&web(), &td, &[("deckhand:deploy", "any")]);
    let summary = w
        .function
        .handle(&w.pushed(push_event("e1", 1, Some("main-42"), 'b')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Ignored);
    assert_eq!(w.ecs.calls("DescribeServices"), 0);
    let summary = w
        .function
        .handle(&deployment_event("x", "SERVICE_DEPLOYMENT_COMPLETED", 2))
        .await
        .unwrap();
    assert_eq!(
        summary.reason.as_deref(),
        Some("cluster demo is not managed by deckhand")
    );
}

#[tokio::test]
async fn bad_events_change_nothing_and_the_next_good_one_works() {
    let w = world(&[("deckhand:deploy", "any")]);
    for (field, event) in crate::events::tests::malformed() {
        match w.function.handle(&event).await {
            Err(DeployError::BadEvent(e)) => assert_eq!(e.field, field),
            other => panic!("{event}: {other:?}"),
        }
    }
    assert_eq!(w.ecs.revisions(), 1);
    assert!(actions(&w).is_empty());
    assert!(kinds(&w).is_empty());
    w.clock.advance(chrono::TimeDelta::minutes(1));
    let summary = w
        .function
        .handle(&w.pushed(push_event("e1", 1, Some("main-42"), 'b')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed);
}

#[tokio::test]
async fn an_unreadable_task_definition_fails_only_its_service() {
    let w = world(&[("deckhand:deploy", "any")]);
    let broken = ServiceKey::new("demo", "broken");
    w.ecs.add_service(
        &broken,
        "arn:aws:ecs:eu-west-1:123456789012:task-definition/gone:1",
        &[("deckhand:deploy", "any")],
    );
    let err = w
        .function
        .handle(&w.pushed(push_event("e1", 1, Some("main-42"), 'b')))
        .await
        .unwrap_err();
    let DeployError::ServicesFailed(summary) = err else {
        panic!("{err:?}")
    };
    let by_service: Vec<(&str, Action)> = summary
        .services
        .iter()
        .map(|s| (s.service.as_str(), s.action))
        .collect();
    assert_eq!(
        by_service,
        [
            ("demo/broken", Action::Error),
            ("demo/web", Action::Deployed)
        ]
    );
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('b'))
    );

    // the retry redoes only what failed
    let err = w
        .function
        .handle(&w.pushed(push_event("e1", 1, Some("main-42"), 'b')))
        .await
        .unwrap_err();
    let DeployError::ServicesFailed(summary) = err else {
        panic!("{err:?}")
    };
    let by_service: Vec<(&str, Action)> = summary
        .services
        .iter()
        .map(|s| (s.service.as_str(), s.action))
        .collect();
    assert_eq!(
        by_service,
        [
            ("demo/broken", Action::Error),
            ("demo/web", Action::Duplicate)
        ]
    );
    assert_eq!(w.ecs.revisions(), 2);
}

/// `web` beside thirty opted-in services, each on its own family and repository.
fn fleet() -> World {
    let w = world(&[("deckhand:deploy", "any")]);
    for i in 0..30 {
        let td = w.ecs.add_task_definition(
            &format!("app-{i}"),
            &[("app", &format!("{HOST}/app-{i}:1"))],
        );
        w.ecs.add_service(
            &ServiceKey::new("demo", format!("app-{i}")),
            &td,
            &[("deckhand:deploy", "any")],
        );
    }
    w
}

#[tokio::test]
async fn a_fleet_is_read_once_then_from_the_index_and_the_memo() {
    let w = fleet();
    let described = || w.ecs.calls("DescribeTaskDefinition");
    let summary = w
        .function
        .handle(&w.pushed(push_event("e1", 1, Some("main-1"), 'b')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed);
    assert_eq!(described(), 31, "a first push reads every revision");

    // Another process (a cold start) finds them in the index: only the target is described.
    let cold = DeployFunction::new(w.function.ports.clone(), config(false));
    let summary = cold
        .handle(&w.pushed(push_event("e2", 2, Some("main-2"), 'c')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed);
    assert_eq!(described(), 32);
    // The same process again (warm) knows them already.
    cold.handle(&w.pushed(push_event("e3", 3, Some("main-3"), 'd')))
        .await
        .unwrap();
    assert_eq!(described(), 33);

    // A service moved behind deckhand's back onto a revision that runs `web`: the index
    // follows it from ECS's deployment event, so the next push deploys it too.
    let moved = w
        .ecs
        .add_task_definition("app-7", &[("app", &format!("{HOST}/web:main-1"))]);
    w.ecs
        .update_service(&ServiceKey::new("demo", "app-7"), &moved)
        .await
        .unwrap();
    let mut moved_event = deployment_event("ecs-app-7", "SERVICE_DEPLOYMENT_IN_PROGRESS", 5);
    moved_event["resources"] = json!(["arn:aws:ecs:eu-west-1:123456789012:service/demo/app-7"]);
    cold.handle(&moved_event).await.unwrap();
    assert_eq!(described(), 34, "the event reads app-7's new revision once");
    let summary = cold
        .handle(&w.pushed(push_event("e4", 4, Some("main-4"), 'e')))
        .await
        .unwrap();
    let deployed: Vec<&str> = summary
        .services
        .iter()
        .filter(|s| s.action == Action::Deployed)
        .map(|s| s.service.as_str())
        .collect();
    assert_eq!(deployed, ["demo/app-7", "demo/web"]);
    assert_eq!(
        described(),
        36,
        "the revisions of app-7 and web, for their clones"
    );
    assert_eq!(
        w.ecs
            .task_definition(
                &w.ecs
                    .service(&ServiceKey::new("demo", "app-7"))
                    .unwrap()
                    .task_definition
            )
            .unwrap()
            .containers[0]
            .image,
        format!("{HOST}/web@{}", digest('e'))
    );
}

// The scan gate.

/// What `DescribeImageScanFindings` says of the digest: one severity, `n` findings.
fn ecr_found(w: &World, d: char, severity: &str, n: i64) {
    let counts = [(severity.to_owned(), n)].into_iter().collect();
    let result = crate::domain::scan::ScanResult::Complete { counts };
    w.ecr.scanned("web", &digest(d).parse().unwrap(), result);
}

/// Delivers an event AWS sent: what it reports, ECR holds.
async fn send(w: &World, event: &Value) -> Summary {
    w.ecr.receive(event);
    w.function
        .handle(event)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn gated_world(tags: &[(&str, &str)]) -> World {
    let mut config = config(false);
    config.require_scan = Some(FindingSeverity::High);
    let w = world_with(config);
    let td = w.ecs.add_task_definition(
        "web",
        &[
            ("web", &format!("{HOST}/web:main-1")),
            ("envoy", &format!("{HOST}/envoy:1")),
        ],
    );
    w.ecs.add_service(&web(), &td, tags);
    w
}

fn scan_event(id: &str, minute: u32, d: char, status: &str, counts: Value) -> Value {
    json!({"version": "0", "id": id, "detail-type": "ECR Image Scan", "source": "aws.ecr", "account": "123456789012",
           "time": at(minute).to_rfc3339(), "region": "eu-west-1", "resources": [],
           "detail": {"scan-status": status, "repository-name": "web", "image-digest": digest(d),
                      "finding-severity-counts": counts, "image-tags": []}})
}

#[tokio::test]
async fn a_gated_push_waits_and_its_clean_scan_deploys_it() {
    let w = gated_world(&[("deckhand:deploy", "prefix=main-")]);
    let waiting = send(&w, &w.pushed(push_event("p1", 1, Some("main-42"), 'b'))).await;
    assert_eq!(waiting.outcome, Outcome::Waiting, "{waiting:?}");
    assert!(
        waiting.services[0]
            .reason
            .contains("waiting for the ECR scan")
    );
    assert_eq!(running_image(&w, "web"), format!("{HOST}/web:main-1"));
    assert!(kinds(&w).is_empty(), "no deploy.skipped while waiting");
    assert_eq!(w.store.waiting().await.unwrap(), vec![web()]);

    let clean = send(
        &w,
        &scan_event("s1", 2, 'b', "COMPLETE", json!({"MEDIUM": 3})),
    )
    .await;
    assert_eq!(clean.outcome, Outcome::Deployed, "{clean:?}");
    assert!(
        clean.services[0]
            .reason
            .starts_with("scan clean (3 MEDIUM)")
    );
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('b'))
    );
    assert!(w.store.waiting().await.unwrap().is_empty());
    assert_eq!(kinds(&w), vec!["deploy.started"]);
    assert_eq!(
        actions(&w),
        vec![Action::Waiting, Action::Deployed],
        "history, oldest first"
    );

    // The scan delivered again: nobody waits any more.
    let again = send(
        &w,
        &scan_event("s1", 2, 'b', "COMPLETE", json!({"MEDIUM": 3})),
    )
    .await;
    assert_eq!(again.outcome, Outcome::Ignored);
    assert_eq!(w.ecs.revisions(), 2);
}

#[tokio::test]
async fn findings_at_the_gate_quarantine_the_digest_and_a_later_clean_digest_deploys() {
    let w = gated_world(&[("deckhand:deploy", "prefix=main-")]);
    send(&w, &w.pushed(push_event("p1", 1, Some("main-42"), 'b'))).await;
    let critical = send(
        &w,
        &scan_event(
            "s1",
            2,
            'b',
            "COMPLETE",
            json!({"CRITICAL": 2, "HIGH": 1, "LOW": 9}),
        ),
    )
    .await;
    assert_eq!(critical.outcome, Outcome::Quarantined, "{critical:?}");
    assert!(critical.services[0].reason.contains("2 CRITICAL, 1 HIGH"));
    assert_eq!(running_image(&w, "web"), format!("{HOST}/web:main-1"));
    let state = w.store.load(&web()).await.unwrap();
    assert!(
        state
            .is_quarantined(&digest('b').parse().unwrap())
            .is_some()
    );
    assert!(state.waiting.is_empty());
    let published = w.notifier.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].kind.as_str(), "deploy.quarantined");
    assert_eq!(published[0].details["findingSeverityCounts"]["CRITICAL"], 2);

    // The same digest pushed again is refused before it waits; a new digest waits and deploys.
    let again = send(&w, &w.pushed(push_event("p2", 3, Some("main-43"), 'b'))).await;
    assert_eq!(again.outcome, Outcome::Skipped);
    send(&w, &w.pushed(push_event("p3", 4, Some("main-44"), 'c'))).await;
    let clean = send(&w, &scan_event("s2", 5, 'c', "COMPLETE", json!({"LOW": 1}))).await;
    assert_eq!(clean.outcome, Outcome::Deployed, "{clean:?}");
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('c'))
    );
}

#[tokio::test]
async fn a_scan_nobody_waits_for_is_ignored_and_changes_nothing() {
    let w = gated_world(&[("deckhand:deploy", "prefix=main-")]);
    let summary = send(
        &w,
        &scan_event("s1", 2, 'b', "COMPLETE", json!({"CRITICAL": 5})),
    )
    .await;
    assert_eq!(summary.outcome, Outcome::Ignored);
    assert!(summary.reason.unwrap().contains("no push waits"));
    assert!(w.store.all_history().is_empty());
    assert!(kinds(&w).is_empty());
    assert!(w.store.load(&web()).await.unwrap().quarantine.is_empty());
}

#[tokio::test]
async fn a_newer_push_replaces_the_waiting_one_and_an_older_one_does_not() {
    let w = gated_world(&[("deckhand:deploy", "prefix=main-")]);
    send(&w, &w.pushed(push_event("p1", 1, Some("main-1"), 'b'))).await;
    send(&w, &w.pushed(push_event("p2", 3, Some("main-2"), 'c'))).await;
    let late = send(&w, &w.pushed(push_event("p0", 0, Some("main-0"), 'd'))).await;
    assert_eq!(late.outcome, Outcome::Skipped, "{late:?}");
    // The superseded push's scan finds nobody; the newer one's deploys.
    let old_scan = send(&w, &scan_event("s1", 4, 'b', "COMPLETE", json!({}))).await;
    assert_eq!(old_scan.outcome, Outcome::Ignored);
    let scan = send(&w, &scan_event("s2", 4, 'c', "COMPLETE", json!({}))).await;
    assert_eq!(scan.outcome, Outcome::Deployed);
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('c'))
    );
}

#[tokio::test]
async fn a_wait_that_runs_out_is_decided_from_ecr_on_the_next_event() {
    let w = gated_world(&[("deckhand:deploy", "prefix=main-")]);
    send(&w, &w.pushed(push_event("p1", 1, Some("main-42"), 'b'))).await;
    ecr_found(&w, 'b', "LOW", 2);
    // Before the wait runs out, another event leaves it alone.
    let early = send(
        &w,
        &deployment_event("d1", "SERVICE_DEPLOYMENT_IN_PROGRESS", 5),
    )
    .await;
    assert!(early.services.iter().all(|s| s.action != Action::Deployed));
    assert_eq!(running_image(&w, "web"), format!("{HOST}/web:main-1"));
    // 30 minutes after it started waiting.
    w.clock.set(at(30) + chrono::TimeDelta::minutes(30));
    let late = send(
        &w,
        &deployment_event("d2", "SERVICE_DEPLOYMENT_IN_PROGRESS", 6),
    )
    .await;
    assert!(
        late.services.iter().any(|s| s.action == Action::Deployed),
        "{late:?}"
    );
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('b'))
    );
}

#[tokio::test]
async fn an_overdue_wait_that_cannot_be_settled_never_fails_an_unrelated_event() {
    let w = gated_world(&[("deckhand:deploy", "prefix=main-")]);
    send(&w, &w.pushed(push_event("p1", 1, Some("main-42"), 'b'))).await;
    w.clock.set(at(30) + chrono::TimeDelta::minutes(30));
    w.ecr.fail("DescribeImageScanFindings");
    // An event about something else: it is handled, the wait's failure only reported.
    let unrelated = w
        .function
        .handle(&deployment_event("d1", "SERVICE_DEPLOYMENT_IN_PROGRESS", 6))
        .await;
    let unrelated = unrelated.expect("housekeeping never fails the event");
    assert!(
        unrelated
            .services
            .iter()
            .any(|s| s.action == Action::Waiting),
        "still waiting, to be checked again: {unrelated:?}"
    );
    assert_eq!(running_image(&w, "web"), format!("{HOST}/web:main-1"));
    // The next event settles it.
    w.ecr.heal("DescribeImageScanFindings");
    ecr_found(&w, 'b', "LOW", 2);
    let next = send(
        &w,
        &deployment_event("d2", "SERVICE_DEPLOYMENT_IN_PROGRESS", 7),
    )
    .await;
    assert!(
        next.services.iter().any(|s| s.action == Action::Deployed),
        "{next:?}"
    );
}

#[tokio::test]
async fn a_scan_that_never_ran_leaves_the_digest_undeployed_and_says_so() {
    let w = gated_world(&[("deckhand:deploy", "prefix=main-")]);
    send(&w, &w.pushed(push_event("p1", 1, Some("main-42"), 'b'))).await;
    w.clock.set(at(30) + chrono::TimeDelta::minutes(45));
    let summary = send(
        &w,
        &deployment_event("d1", "SERVICE_DEPLOYMENT_IN_PROGRESS", 6),
    )
    .await;
    let ended = summary
        .services
        .iter()
        .find(|s| s.action == Action::Skipped)
        .unwrap_or_else(|| panic!("{summary:?}"));
    assert!(ended.reason.contains("ECR has no scan"), "{}", ended.reason);
    assert!(w.store.waiting().await.unwrap().is_empty());
    assert_eq!(kinds(&w), vec!["deploy.skipped"]);
    assert_eq!(running_image(&w, "web"), format!("{HOST}/web:main-1"));
}

#[tokio::test]
async fn the_round_of_held_pushes_decides_a_wait_that_ran_out_from_ecr() {
    let w = gated_world(&[("deckhand:deploy", "prefix=main-")]);
    send(&w, &w.pushed(push_event("p1", 1, Some("main-42"), 'b'))).await;
    ecr_found(&w, 'b', "CRITICAL", 1);
    let round = json!({"action": "release-held"});
    let early = send(&w, &round).await;
    assert!(early.services.is_empty(), "{early:?}");
    w.clock.advance(chrono::TimeDelta::minutes(31));
    let late = send(&w, &round).await;
    assert_eq!(late.outcome, Outcome::Quarantined, "{late:?}");
    assert!(w.store.waiting().await.unwrap().is_empty());
    assert_eq!(kinds(&w), vec!["deploy.quarantined"]);
    assert_eq!(running_image(&w, "web"), format!("{HOST}/web:main-1"));
}

#[tokio::test]
async fn a_push_whose_scan_came_first_is_decided_at_once_from_ecr() {
    let w = gated_world(&[("deckhand:deploy", "prefix=main-")]);
    // The scan event overtakes its push: nobody waits yet.
    ecr_found(&w, 'b', "MEDIUM", 1);
    let early = send(
        &w,
        &scan_event("s1", 1, 'b', "COMPLETE", json!({"MEDIUM": 1})),
    )
    .await;
    assert_eq!(early.outcome, Outcome::Ignored);
    let push = send(&w, &w.pushed(push_event("p1", 1, Some("main-42"), 'b'))).await;
    assert_eq!(push.outcome, Outcome::Deployed, "{push:?}");
    assert_eq!(push.services.len(), 1, "one report per service: {push:?}");
    assert!(push.services[0].reason.starts_with("scan clean (1 MEDIUM)"));
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('b'))
    );
    assert!(w.store.waiting().await.unwrap().is_empty());
    assert_eq!(actions(&w), vec![Action::Waiting, Action::Deployed]);

    // A retag of an image ECR found vulnerable is quarantined without waiting.
    ecr_found(&w, 'c', "HIGH", 2);
    let bad = send(&w, &w.pushed(push_event("p2", 2, Some("main-43"), 'c'))).await;
    assert_eq!(bad.outcome, Outcome::Quarantined, "{bad:?}");
    assert!(w.store.waiting().await.unwrap().is_empty());
    assert_eq!(kinds(&w), vec!["deploy.started", "deploy.quarantined"]);

    // Still scanning: the push waits for its scan event.
    w.ecr.scanned(
        "web",
        &digest('d').parse().unwrap(),
        crate::domain::scan::ScanResult::InProgress,
    );
    let pending = send(&w, &w.pushed(push_event("p3", 3, Some("main-44"), 'd'))).await;
    assert_eq!(pending.outcome, Outcome::Waiting, "{pending:?}");
}

// Revision retention.

/// An event of the deploy tests at `when` rather than at a minute of the test hour.
fn timed(mut event: Value, when: DateTime<Utc>) -> Value {
    event["time"] = json!(when.to_rfc3339());
    if event["detail"]["updatedAt"].is_string() {
        event["detail"]["updatedAt"] = json!(when.to_rfc3339());
    }
    event
}

/// Pushes `main-N` with digest `d` at `start` and has ECS complete it a minute later.
async fn deploy_and_complete(w: &World, n: usize, d: char, start: DateTime<Utc>) -> Summary {
    w.clock.set(start);
    let push = w.pushed(push_event(
        &format!("push-{n}"),
        0,
        Some(&format!("main-{n}")),
        d,
    ));
    let pushed = send(w, &timed(push, start)).await;
    assert_eq!(pushed.outcome, Outcome::Deployed, "{pushed:?}");
    let done = start + chrono::TimeDelta::minutes(1);
    w.clock.set(done);
    let completed = deployment_event(&format!("done-{n}"), "SERVICE_DEPLOYMENT_COMPLETED", 0);
    let summary = send(w, &timed(completed, done)).await;
    assert_eq!(summary.outcome, Outcome::Completed, "{summary:?}");
    summary
}

#[tokio::test]
async fn retention_keeps_the_newest_revisions_the_known_good_one_and_those_deckhand_did_not_register()
 {
    let w = world(&[
        ("deckhand:deploy", "prefix=main-"),
        ("deckhand:keep-revisions", "3"),
    ]);
    let t0 = at(0);
    // web:2 outlives its guard window and becomes known-good; the nine deploys after it follow
    // each other too closely for any of them to.
    deploy_and_complete(&w, 2, 'b', t0).await;
    let mut last = None;
    for (i, d) in "cdef01234".chars().enumerate() {
        let start = t0 + chrono::TimeDelta::minutes(60 + 2 * i as i64);
        last = Some(deploy_and_complete(&w, i + 3, d, start).await);
    }
    // web:1 was registered by hand, not by deckhand: whoever registered it may still need it.
    assert_eq!(w.ecs.active("web"), [1, 2, 9, 10, 11]);
    let state = w.store.load(&web()).await.unwrap();
    assert_eq!(
        state.known_good.as_deref(),
        Some(w.ecs.revision_arn("web", 2).as_str())
    );
    let last = last.unwrap();
    assert!(
        last.services[0].reason.contains("deregistered web:8"),
        "{}",
        last.services[0].reason
    );
    let deregistered: Vec<String> = w
        .store
        .all_history()
        .iter()
        .filter(|r| r.action == Action::Deregistered)
        .flat_map(|r| {
            r.deregistered
                .iter()
                .map(|arn| revision_name(arn).to_owned())
        })
        .collect();
    assert_eq!(
        deregistered,
        ["web:3", "web:4", "web:5", "web:6", "web:7", "web:8"]
    );
    // Housekeeping tells nobody.
    assert!(!kinds(&w).contains(&"deploy.deregistered"));
}

#[tokio::test]
async fn retention_spares_what_another_service_of_the_family_runs_and_retries_after_a_failure() {
    let w = world(&[
        ("deckhand:deploy", "prefix=main-"),
        ("deckhand:keep-revisions", "2"),
    ]);
    let t0 = at(0);
    let hour = chrono::TimeDelta::hours(1);
    deploy_and_complete(&w, 2, 'b', t0).await;
    // demo/api is moved onto web:2, one of deckhand's revisions; its policy takes none of
    // these pushes.
    let api = ServiceKey::new("demo", "api");
    w.ecs.add_service(
        &api,
        &w.ecs.revision_arn("web", 2),
        &[("deckhand:deploy", "prefix=release-")],
    );
    deploy_and_complete(&w, 3, 'c', t0 + hour).await;
    deploy_and_complete(&w, 4, 'd', t0 + hour * 2).await;
    assert_eq!(
        w.ecs.active("web"),
        [1, 2, 3, 4],
        "web:1 is not deckhand's, web:2 runs demo/api"
    );

    w.ecs.fail("DeregisterTaskDefinition");
    let failed = deploy_and_complete(&w, 5, 'e', t0 + hour * 3).await;
    assert!(
        failed.services[0]
            .reason
            .contains("could not deregister web:3"),
        "{}",
        failed.services[0].reason
    );
    assert_eq!(w.ecs.active("web"), [1, 2, 3, 4, 5]);
    w.ecs.heal("DeregisterTaskDefinition");
    deploy_and_complete(&w, 6, 'f', t0 + hour * 4).await;
    assert_eq!(w.ecs.active("web"), [1, 2, 5, 6]);
    assert_eq!(
        w.ecs.service(&api).unwrap().task_definition,
        w.ecs.revision_arn("web", 2)
    );
}

#[path = "deploy_aws_tests.rs"]
mod aws;

#[path = "deploy_codedeploy_tests.rs"]
mod codedeploy;

#[path = "deploy_pair_tests.rs"]
mod pair;

#[path = "deploy_lock_tests.rs"]
mod lock;

#[path = "deploy_race_tests.rs"]
mod race;

#[path = "deploy_retention_tests.rs"]
mod retention_steps;

#[path = "deploy_discovery_tests.rs"]
mod discovery_faults;

#[path = "deploy_index_tests.rs"]
mod index;

#[path = "deploy_trust_tests.rs"]
mod trust;

#[path = "deploy_ahead_tests.rs"]
mod ahead;

#[path = "deploy_trial_tests.rs"]
mod trial;

#[path = "deploy_promotion_tests.rs"]
mod promotion;

#[path = "deploy_freeze_tests.rs"]
mod freeze;
