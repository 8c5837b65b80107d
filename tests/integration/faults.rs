//! deckhand under faults: the functions' use cases through the real SDK, with the fault-
//! injecting proxy between the SDK and the emulator. Each scenario asserts the end state in
//! ECS, the table and the topic. The proxy prints its seed; `DECKHAND_FAULT_SEED` replays it.

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use aws_sdk_ecs::error::ProvideErrorMetadata;
use chrono::{SecondsFormat, Utc};
use deckhand::adapters::memory::FixedClock;
use deckhand::app::deploy::DeployFunction;
use deckhand::app::rollback::RollbackFunction;
use deckhand::app::scheduler::{SchedulerError, SchedulerFunction};
use deckhand::config::Config;
use deckhand::domain::fleet::{ImageChange, TaskDefinitionView};
use deckhand::domain::service::ServiceKey;
use deckhand::domain::state::DeploymentStatus;
use deckhand::history::HistoryRecord;
use deckhand::ports::{Clock, Described, Ecs, PortResult, StateStore, SystemClock, TaggedService};
use deckhand::report::{Action, Outcome, Summary};
use futures::{StreamExt, stream};
use serde_json::json;
use testkit::proxy::{Fault, FaultPlan, FaultRates, Proxy};

use crate::harness::{Role, Stack, sdk_config};
use crate::rollback::{ALARMED, Guarded, utc};

/// Every fault reaches the SDK as AWS would send it: throttling and server errors parsed as
/// the service's own error codes in each protocol, resets and lost responses as connection
/// failures, all retried by the functions' retry policy (five attempts).
#[tokio::test]
async fn each_fault_reaches_the_sdk_as_aws_would_send_it() {
    let stack = Stack::new().await;
    let proxy = Proxy::start(stack.emulator_url(), FaultPlan::none()).await;
    // The functions' retry policy with a short backoff: this test is about what the SDK sees.
    let sdk = sdk_config(&proxy.url())
        .await
        .into_builder()
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(5)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .build();
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let sns = aws_sdk_sns::Client::new(&sdk);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);

    for (fault, code) in [
        (Fault::Throttle, Some("ThrottlingException")),
        (Fault::ServerError, Some("InternalFailure")),
        (Fault::Reset, None),
        (Fault::LostResponse, None),
    ] {
        proxy.set_plan(FaultPlan::everywhere(FaultRates::always(fault)));
        proxy.clear();
        // awsJson (ECS), awsQuery (SNS) and RPC v2 CBOR (CloudWatch).
        let ecs_error = ecs
            .describe_clusters()
            .clusters(&stack.cluster)
            .send()
            .await
            .unwrap_err();
        let sns_error = sns
            .publish()
            .topic_arn(&stack.topic_arn)
            .message("faulted")
            .send()
            .await
            .unwrap_err();
        let cloudwatch_error = cloudwatch.describe_alarms().send().await.unwrap_err();
        assert_eq!(ecs_error.code(), code, "{fault:?} on ECS: {ecs_error:?}");
        assert_eq!(sns_error.code(), code, "{fault:?} on SNS: {sns_error:?}");
        assert_eq!(
            cloudwatch_error.code(),
            code,
            "{fault:?} on CloudWatch: {cloudwatch_error:?}"
        );
        assert_eq!(
            proxy.call_names(),
            [
                ["ecs.DescribeClusters"; 5].as_slice(),
                &["sns.Publish"; 5],
                &["monitoring.DescribeAlarms"; 5]
            ]
            .concat(),
            "{fault:?}: five attempts of each call"
        );
    }

    // A delayed call and an untouched one succeed.
    proxy.set_plan(FaultPlan::everywhere(FaultRates::always(Fault::Delay)));
    ecs.describe_clusters().send().await.unwrap();
    proxy.set_plan(FaultPlan::none());
    ecs.describe_clusters().send().await.unwrap();
}

/// 20% of calls fail (throttled, 500, reset, answer lost) and 5% more are delayed.
fn twenty_percent() -> FaultPlan {
    FaultPlan::everywhere(FaultRates::failing(0.20).with_delays(0.05))
}

/// Lambda retries a failed asynchronous invocation; the scenarios deliver until the function
/// reports success, and fail if it has not after this many.
const MAX_DELIVERIES: usize = 8;
/// Lambda's first retry comes a minute later: by then the lease of a lock the failed attempt
/// could not give back has run out.
const REDELIVERY_DELAY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// Delivers an event until the function reports success, a minute apart on `clock`, running
/// `after_each` after every delivery. Returns the final summary and how many deliveries it
/// took.
async fn deliver_until_done<E: std::fmt::Display>(
    clock: &FixedClock,
    mut deliver: impl AsyncFnMut() -> Result<Summary, E>,
    mut after_each: impl AsyncFnMut(),
) -> (Summary, usize) {
    for delivery in 1..=MAX_DELIVERIES {
        if delivery > 1 {
            clock.advance(REDELIVERY_DELAY);
        }
        let result = deliver().await;
        after_each().await;
        match result {
            Ok(summary) => return (summary, delivery),
            Err(e) => eprintln!("delivery {delivery}: {e}"),
        }
    }
    panic!("still failing after {MAX_DELIVERIES} deliveries");
}

fn count(history: &[HistoryRecord], action: Action) -> usize {
    history.iter().filter(|r| r.action == action).count()
}

/// Whatever the table says deckhand deployed for this push, ECS runs; no service has more
/// than one `deployed` record.
async fn assert_deploys_match_ecs(stack: &Stack, services: &[String], event_id: &str) {
    let store = stack.store();
    for name in services {
        let key = stack.service_key(name);
        let state = store.load(&key).await.unwrap();
        if let Some(d) = state.deployment.as_ref().filter(|d| d.id == event_id) {
            assert_eq!(
                stack.running_task_definition(name).await,
                d.to,
                "{name}: the table claims a deployment ECS did not get"
            );
        }
        let history = store.history(&key, 100).await.unwrap();
        assert!(
            count(&history, Action::Deployed) <= 1,
            "{name}: {history:#?}"
        );
    }
}

/// Services `{prefix}-0..n`, each with a family of its own running `web:main-0`, deploying any
/// push.
pub(crate) async fn deployable(stack: &Stack, prefix: &str, n: usize) -> Vec<String> {
    let services: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for name in &services {
        let td = stack
            .simple_task_definition(&format!("{name}-{}", stack.id), "main-0")
            .await;
        stack
            .create_service(name, &td, &[("deckhand:deploy", "any")])
            .await;
    }
    services
}

/// Each service runs the digest, on one new revision, known to the table with one
/// `deployed` record and a `deploy.started` notification.
pub(crate) async fn assert_deployed_once(stack: &Stack, services: &[String], digest: &str) {
    for name in services {
        let key = stack.service_key(name);
        let running = stack.running_task_definition(name).await;
        let (td, _) = stack.task_definition(&running).await;
        assert_eq!(
            td.container_definitions()[0].image(),
            Some(stack.image(&format!("@{digest}")).as_str()),
            "{name} runs the pushed digest"
        );
        assert_eq!(
            stack.revisions(&format!("{name}-{}", stack.id)).await,
            2,
            "{name}: one new revision, however often the push was delivered"
        );
        let history = stack.store().history(&key, 100).await.unwrap();
        let deployed: Vec<_> = history
            .iter()
            .filter(|r| r.action == Action::Deployed)
            .collect();
        assert_eq!(deployed.len(), 1, "{name}: {history:#?}");
        assert_eq!(deployed[0].to.as_deref(), Some(running.as_str()));
        let state = stack.store().load(&key).await.unwrap();
        assert_eq!(state.deployment.map(|d| d.to), Some(running), "{name}");
        assert_eq!(state.registered, None, "{name}");
    }
    let started: BTreeSet<String> = stack
        .notifications()
        .iter()
        .filter(|(_, body, _)| body["kind"] == "deploy.started")
        .map(|(_, body, _)| body["service"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(started.len(), services.len(), "deploy.started for each");
}

#[tokio::test]
async fn a_push_under_faults_deploys_every_service_once() {
    let stack = Stack::new().await;
    let services = deployable(&stack, "push", 6).await;
    let digest = stack.push_image("main-1").await;
    let proxy = Proxy::start(stack.emulator_url(), twenty_percent()).await;
    eprintln!("fault seed {}", proxy.seed());
    let clock = Arc::new(FixedClock::new(Utc::now()));
    let ports = stack
        .ports_through(Role::Deploy, &proxy, clock.clone())
        .await;
    let function = DeployFunction::new(ports, stack.config());
    let event = stack.push_event("push-faulted", clock.now(), "main-1", &digest);

    let (summary, deliveries) = deliver_until_done(
        &clock,
        async || function.handle(&event).await,
        async || assert_deploys_match_ecs(&stack, &services, "push-faulted").await,
    )
    .await;
    eprintln!("{deliveries} deliveries, faults {:?}", proxy.fault_counts());
    assert!(proxy.fault_counts().values().sum::<usize>() > 0);
    assert!(
        summary
            .services
            .iter()
            .all(|s| matches!(s.action, Action::Deployed | Action::Duplicate)),
        "{summary:?}"
    );
    assert_deployed_once(&stack, &services, &digest).await;

    // One more delivery, still under faults, changes nothing.
    let (again, _) = deliver_until_done(
        &clock,
        async || function.handle(&event).await,
        async || assert_deploys_match_ecs(&stack, &services, "push-faulted").await,
    )
    .await;
    assert_eq!(again.outcome, Outcome::Duplicate, "{again:?}");
    assert_deployed_once(&stack, &services, &digest).await;
}

/// `RegisterTaskDefinition` takes no idempotency token: a retry after a lost answer would
/// register a second revision. Every answer lost, still one revision.
#[tokio::test]
async fn lost_answers_to_register_task_definition_leave_one_revision() {
    let stack = Stack::new().await;
    let services = deployable(&stack, "lost", 1).await;
    let digest = stack.push_image("main-1").await;
    let plan = FaultPlan::none().on(
        "RegisterTaskDefinition",
        FaultRates::always(Fault::LostResponse),
    );
    let proxy = Proxy::start(stack.emulator_url(), plan).await;
    let ports = stack
        .ports_through(Role::Deploy, &proxy, Arc::new(SystemClock))
        .await;
    let function = DeployFunction::new(ports, stack.config());
    let event = stack.push_event("push-lost", Utc::now(), "main-1", &digest);

    let summary = function.handle(&event).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed);
    assert_deployed_once(&stack, &services, &digest).await;
    let calls = proxy.call_names();
    let registered = calls
        .iter()
        .filter(|c| *c == "ecs.RegisterTaskDefinition")
        .count();
    assert_eq!(
        registered, 1,
        "looked instead of registering again: {calls:?}"
    );
    assert!(calls.contains(&"ecs.ListTaskDefinitions".to_owned()));
}

/// `UpdateService` fails through every retry after the revision was registered; the
/// redelivery moves the service onto that revision.
#[tokio::test]
async fn a_failed_update_is_finished_by_the_redelivery_on_the_same_revision() {
    let stack = Stack::new().await;
    let services = deployable(&stack, "failing", 1).await;
    let digest = stack.push_image("main-1").await;
    let plan = FaultPlan::none().on("UpdateService", FaultRates::always(Fault::ServerError));
    let proxy = Proxy::start(stack.emulator_url(), plan).await;
    let ports = stack
        .ports_through(Role::Deploy, &proxy, Arc::new(SystemClock))
        .await;
    let function = DeployFunction::new(ports, stack.config());
    let event = stack.push_event("push-failing", Utc::now(), "main-1", &digest);

    let error = function.handle(&event).await.unwrap_err();
    assert_eq!(error.error_type(), "deckhand.ServicesFailed", "{error}");
    let key = stack.service_key(&services[0]);
    assert_eq!(
        stack.running_task_definition(&services[0]).await,
        format!(
            "arn:aws:ecs:us-east-1:123456789012:task-definition/{}-{}:1",
            services[0], stack.id
        ),
        "not moved"
    );
    let state = stack.store().load(&key).await.unwrap();
    assert!(state.deployment.is_none(), "the table claims nothing");
    assert!(
        state.registered.is_some(),
        "the revision is kept for the retry"
    );
    assert_eq!(
        stack.notification_kinds(),
        ["error"],
        "the failure is reported"
    );

    proxy.set_plan(FaultPlan::none());
    let summary = function.handle(&event).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed);
    assert_deployed_once(&stack, &services, &digest).await;
    let history = stack.store().history(&key, 10).await.unwrap();
    assert_eq!(
        history.iter().rev().map(|r| r.action).collect::<Vec<_>>(),
        [Action::Error, Action::Deployed]
    );
}

/// ECS takes the new revision, then the commit that records it fails (throttled past the
/// SDK's retries) while `deploy.started`, sent beside it, goes out: the redelivery finds the
/// service on the revision registered for the push and records it, without announcing it a
/// second time.
#[tokio::test]
async fn a_push_whose_record_was_lost_is_recorded_by_the_redelivery_and_announced_once() {
    let stack = Stack::new().await;
    let services = deployable(&stack, "unrecorded", 1).await;
    let digest = stack.push_image("main-1").await;
    let plan = FaultPlan::none().on("TransactWriteItems", FaultRates::always(Fault::Throttle));
    let proxy = Proxy::start(stack.emulator_url(), plan).await;
    let ports = stack
        .ports_through(Role::Deploy, &proxy, Arc::new(SystemClock))
        .await;
    let function = DeployFunction::new(ports, stack.config());
    let event = stack.push_event("push-unrecorded", Utc::now(), "main-1", &digest);

    let error = function.handle(&event).await.unwrap_err();
    assert_eq!(error.error_type(), "deckhand.ServicesFailed", "{error}");
    let key = stack.service_key(&services[0]);
    let state = stack.store().load(&key).await.unwrap();
    assert!(state.deployment.is_none(), "the record was lost");
    assert_eq!(state.announced.as_deref(), Some("push-unrecorded"));
    let mut kinds = stack.notification_kinds();
    kinds.sort();
    assert_eq!(kinds, ["deploy.started", "error"]);

    proxy.set_plan(FaultPlan::none());
    let summary = function.handle(&event).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed, "{summary:?}");
    assert_deployed_once(&stack, &services, &digest).await;
    let started = stack
        .notification_kinds()
        .into_iter()
        .filter(|k| k == "deploy.started")
        .count();
    assert_eq!(started, 1, "announced once");
    let state = stack.store().load(&key).await.unwrap();
    assert_eq!(state.announced, None);
}

/// An ECS port whose `UpdateService` never answers while `crash` is set: the invocation dies
/// between registering the revision and moving the service.
struct CrashBeforeUpdate {
    ecs: Arc<dyn Ecs>,
    crash: AtomicBool,
}

#[async_trait]
impl Ecs for CrashBeforeUpdate {
    async fn find_services(&self, tag_key: &str) -> PortResult<Vec<TaggedService>> {
        self.ecs.find_services(tag_key).await
    }
    async fn describe_services_partly(&self, services: &[ServiceKey]) -> PortResult<Described> {
        self.ecs.describe_services_partly(services).await
    }
    async fn resolved_images(
        &self,
        service: &deckhand::domain::fleet::ServiceView,
    ) -> PortResult<Option<std::collections::BTreeMap<String, String>>> {
        self.ecs.resolved_images(service).await
    }
    async fn describe_task_definition(&self, arn: &str) -> PortResult<TaskDefinitionView> {
        self.ecs.describe_task_definition(arn).await
    }
    async fn register_revision(
        &self,
        base: &TaskDefinitionView,
        changes: &[ImageChange],
        event_id: &str,
    ) -> PortResult<String> {
        self.ecs.register_revision(base, changes, event_id).await
    }
    async fn registered_for(
        &self,
        base: &TaskDefinitionView,
        event_id: &str,
    ) -> PortResult<Option<String>> {
        self.ecs.registered_for(base, event_id).await
    }
    async fn active_revisions(&self, family: &str) -> PortResult<Vec<String>> {
        self.ecs.active_revisions(family).await
    }
    async fn deregister_revision(&self, arn: &str) -> PortResult<()> {
        self.ecs.deregister_revision(arn).await
    }
    async fn update_service(
        &self,
        service: &ServiceKey,
        task_definition: &str,
    ) -> PortResult<Option<String>> {
        if self.crash.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.ecs.update_service(service, task_definition).await
    }
    async fn set_desired_count(&self, service: &ServiceKey, count: i32) -> PortResult<()> {
        self.ecs.set_desired_count(service, count).await
    }
    async fn deployment_in_progress(&self, service: &ServiceKey) -> PortResult<Option<String>> {
        self.ecs.deployment_in_progress(service).await
    }
    async fn stop_service_deployment(&self, arn: &str) -> PortResult<()> {
        self.ecs.stop_service_deployment(arn).await
    }

    async fn paused_deployment(
        &self,
        service: &ServiceKey,
    ) -> PortResult<Option<deckhand::domain::pause::PausedDeployment>> {
        self.ecs.paused_deployment(service).await
    }

    async fn continue_service_deployment(
        &self,
        service_deployment_arn: &str,
        hook_id: &str,
        roll_back: bool,
    ) -> PortResult<()> {
        self.ecs
            .continue_service_deployment(service_deployment_arn, hook_id, roll_back)
            .await
    }
}

#[tokio::test]
async fn a_crash_between_register_and_update_then_the_retry_makes_one_revision_and_one_deployment()
{
    let stack = Stack::new().await;
    let services = deployable(&stack, "crash", 1).await;
    let digest = stack.push_image("main-1").await;
    let proxy = Proxy::start(stack.emulator_url(), FaultPlan::none()).await;
    let clock = Arc::new(FixedClock::new(Utc::now()));
    let mut ports = stack
        .ports_through(Role::Deploy, &proxy, clock.clone())
        .await;
    let crashing = Arc::new(CrashBeforeUpdate {
        ecs: ports.ecs.clone(),
        crash: AtomicBool::new(true),
    });
    ports.ecs = crashing.clone();
    let function = DeployFunction::new(ports, stack.config());
    let event = stack.push_event("push-crash", clock.now(), "main-1", &digest);

    let crashed = tokio::time::timeout(Duration::from_secs(5), function.handle(&event)).await;
    assert!(crashed.is_err(), "the invocation died in UpdateService");
    let family = format!("{}-{}", services[0], stack.id);
    assert_eq!(
        stack.revisions(&family).await,
        2,
        "registered before the crash"
    );
    let key = stack.service_key(&services[0]);
    assert!(stack.store().history(&key, 10).await.unwrap().is_empty());

    // Lambda runs the event again after the lock's lease has run out.
    crashing.crash.store(false, Ordering::SeqCst);
    clock.advance(deckhand::app::locking::LEASE + chrono::TimeDelta::seconds(1));
    proxy.clear();
    let summary = function.handle(&event).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed, "{summary:?}");
    assert_deployed_once(&stack, &services, &digest).await;
    let calls = proxy.call_names();
    assert!(
        !calls.contains(&"ecs.RegisterTaskDefinition".to_owned()),
        "found the revision instead: {calls:?}"
    );
    assert_eq!(
        stack.notification_kinds(),
        ["deploy.started"],
        "one deployment"
    );
}

#[tokio::test]
async fn an_alarm_under_faults_rolls_back_once() {
    let g = Guarded::deployed(&[("api", &[]), ("cart", &[])]).await;
    let arn = g.alarm("api-5xx", Some("api"), &[]).await;
    let proxy = Proxy::start(g.stack.emulator_url(), twenty_percent()).await;
    eprintln!("fault seed {}", proxy.seed());
    let ports = g
        .stack
        .ports_through(Role::Rollback, &proxy, g.clock.clone())
        .await;
    let rollback = RollbackFunction::new(ports, g.stack.config());
    g.clock.set(utc(ALARMED));
    let key = g.stack.service_key("api");
    let check = async || {
        let state = g.stack.store().load(&key).await.unwrap();
        let running = g.stack.running_task_definition("api").await;
        if let Some(rolled_back) = state.deployment.as_ref().and_then(|d| d.rollback.as_ref()) {
            assert_eq!(
                running, rolled_back.to,
                "the table claims a rollback ECS did not get"
            );
        }
        let history = g.stack.store().history(&key, 50).await.unwrap();
        assert!(count(&history, Action::RolledBack) <= 1, "{history:#?}");
        assert_eq!(g.revision("cart").await, "2", "cart is not guarded by it");
    };

    let alarm = g.event("alarm-1", &arn, "ALARM", "OK", ALARMED, Some("api"));
    let (summary, deliveries) =
        deliver_until_done(&g.clock, async || rollback.handle(&alarm).await, check).await;
    eprintln!("{deliveries} deliveries, faults {:?}", proxy.fault_counts());
    assert!(
        matches!(summary.outcome, Outcome::RolledBack | Outcome::Duplicate),
        "{summary:?}"
    );
    assert_eq!(g.revision("api").await, "1", "on its known-good revision");
    let state = g.stack.store().load(&key).await.unwrap();
    assert_eq!(
        state.deployment.as_ref().map(|d| d.status),
        Some(DeploymentStatus::RolledBack)
    );
    assert!(state.is_quarantined(&g.digest.parse().unwrap()).is_some());

    // The same alarm again, and the alarm flapping, under faults: no second rollback.
    let (again, _) =
        deliver_until_done(&g.clock, async || rollback.handle(&alarm).await, check).await;
    assert_eq!(again.outcome, Outcome::Duplicate, "{again:?}");
    let flap = g.event("alarm-2", &arn, "ALARM", "OK", ALARMED, Some("api"));
    let (flapped, deliveries) =
        deliver_until_done(&g.clock, async || rollback.handle(&flap).await, check).await;
    // A delivery whose skip was recorded but whose answer was lost is answered by the next
    // one as a duplicate.
    assert!(
        flapped.outcome == Outcome::Skipped
            || (deliveries > 1 && flapped.outcome == Outcome::Duplicate),
        "{flapped:?} after {deliveries} deliveries"
    );
    let history = g.stack.store().history(&key, 50).await.unwrap();
    assert_eq!(count(&history, Action::RolledBack), 1);
    assert_eq!(g.revision("api").await, "1");
    let started = g
        .stack
        .notification_kinds()
        .into_iter()
        .filter(|k| k == "rollback.started")
        .count();
    assert!(started >= 1, "rollback.started was published");
}

/// ECS takes the rollback, then the commit that records it fails (throttled past the SDK's
/// retries) while `rollback.started`, sent beside it, goes out: the redelivered alarm finds the
/// service on its known-good revision already and finishes the record, with no second change
/// to ECS and no second announcement.
#[tokio::test]
async fn a_rollback_whose_record_was_lost_is_finished_by_the_next_delivery() {
    let g = Guarded::deployed(&[("api", &[])]).await;
    let arn = g.alarm("api-5xx", Some("api"), &[]).await;
    let plan = FaultPlan::none().on("TransactWriteItems", FaultRates::always(Fault::Throttle));
    let proxy = Proxy::start(g.stack.emulator_url(), plan).await;
    let ports = g
        .stack
        .ports_through(Role::Rollback, &proxy, g.clock.clone())
        .await;
    let rollback = RollbackFunction::new(ports, g.stack.config());
    g.clock.set(utc(ALARMED));
    let alarm = g.event("alarm-1", &arn, "ALARM", "OK", ALARMED, Some("api"));
    let first = rollback.handle(&alarm).await;
    assert!(first.is_err(), "{first:?}");
    assert_eq!(g.revision("api").await, "1", "ECS took the rollback");
    let key = g.stack.service_key("api");
    let lost = g.stack.store().load(&key).await.unwrap();
    assert_ne!(
        lost.deployment.as_ref().map(|d| d.status),
        Some(DeploymentStatus::RolledBack),
        "the record was lost"
    );
    assert!(lost.is_quarantined(&g.digest.parse().unwrap()).is_none());

    // Lambda's retry, once the first attempt's lease ran out.
    proxy.set_plan(FaultPlan::none());
    proxy.clear();
    g.clock.set(utc(ALARMED) + chrono::TimeDelta::minutes(2));
    let finished = rollback.handle(&alarm).await.unwrap();
    assert_eq!(finished.outcome, Outcome::RolledBack, "{finished:?}");
    assert!(
        finished.services[0].reason.contains("its record was lost"),
        "{finished:?}"
    );
    let calls = proxy.call_names();
    assert!(
        !calls.iter().any(|c| c.ends_with("UpdateService")),
        "ECS is not changed again: {calls:?}"
    );
    let state = g.stack.store().load(&key).await.unwrap();
    assert_eq!(
        state.deployment.as_ref().map(|d| d.status),
        Some(DeploymentStatus::RolledBack)
    );
    assert!(state.is_quarantined(&g.digest.parse().unwrap()).is_some());
    let history = g.stack.store().history(&key, 50).await.unwrap();
    assert_eq!(count(&history, Action::RolledBack), 1);
    let started: Vec<_> = g
        .stack
        .notifications()
        .into_iter()
        .filter(|(_, body, _)| body["kind"] == "rollback.started")
        .collect();
    assert_eq!(started.len(), 1, "announced once");
    // By the first delivery, which made the change.
    assert_eq!(started[0].1["details"]["rolledBackBy"], "UpdateService");
    assert_eq!(g.revision("api").await, "1");
}

/// Office hours in London (GMT in November: local time is UTC), and a night shift.
const OFFICE: &str = "Mon-Fri 07:00-19:00";
const NIGHT_SHIFT: &str = "daily 20:00-23:30";
const NIGHT: &str = "2026-11-23T22:00:00Z";
const MORNING: &str = "2026-11-24T07:00:00Z";
const RECONCILE_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(15);
const DESIRED: i32 = 2;
const CAPACITY: (i32, i32) = (1, 5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shift {
    Office,
    Night,
    /// No deckhand tags: never touched.
    Untagged,
}

#[derive(Clone, Debug)]
struct Member {
    cluster: String,
    name: String,
    shift: Shift,
    autoscaled: bool,
}

/// Services across clusters on three shifts, a third of the office ones autoscaled.
struct Fleet {
    stack: Stack,
    clusters: Vec<String>,
    members: Vec<Member>,
}

impl Fleet {
    async fn create(stack: Stack, clusters: usize, per_cluster: usize) -> Self {
        let clusters = stack.create_clusters("shifts", clusters).await;
        let td = stack
            .simple_task_definition(&format!("shifts-{}", stack.id), "main-1")
            .await;
        let members: Vec<Member> = clusters
            .iter()
            .flat_map(|cluster| {
                (0..per_cluster).map(move |i| {
                    let shift = match i % 10 {
                        9 => Shift::Untagged,
                        8 => Shift::Night,
                        _ => Shift::Office,
                    };
                    Member {
                        cluster: cluster.clone(),
                        name: format!("svc-{i:03}"),
                        shift,
                        autoscaled: shift == Shift::Office && i % 3 == 0,
                    }
                })
            })
            .collect();
        let (stack_ref, td_ref) = (&stack, &td);
        stream::iter(members.clone())
            .for_each_concurrent(16, |m| async move {
                let awake = match m.shift {
                    Shift::Office => Some(OFFICE),
                    Shift::Night => Some(NIGHT_SHIFT),
                    Shift::Untagged => None,
                };
                let tags: Vec<(&str, &str)> = awake
                    .into_iter()
                    .flat_map(|awake| {
                        [
                            ("deckhand:awake", awake),
                            ("deckhand:timezone", "Europe/London"),
                        ]
                    })
                    .collect();
                stack_ref
                    .create_service_in(&m.cluster, &m.name, td_ref, DESIRED, &tags)
                    .await;
                if m.autoscaled {
                    stack_ref
                        .autoscale_in(&m.cluster, &m.name, CAPACITY.0, CAPACITY.1)
                        .await;
                }
            })
            .await;
        Self {
            stack,
            clusters,
            members,
        }
    }

    fn config(&self) -> Config {
        Config {
            clusters: Some(self.clusters.clone()),
            ..self.stack.config()
        }
    }

    /// Checks every member against the table and ECS: a sleep on record (not pending) is what
    /// ECS runs; no record means ECS runs what it ran before; untagged services and those the
    /// schedule wants awake are never asleep. With `settled`, the whole fleet is as its
    /// schedule wants at `at`. Returns how many are asleep.
    async fn check(&self, at: &str, settled: bool) -> usize {
        let at_night = utc(at).time() >= utc(NIGHT).time();
        let asleep: Vec<bool> = stream::iter(self.members.iter())
            .map(|m| async move {
                let key = ServiceKey::new(&m.cluster, &m.name);
                let state = self.stack.store().load(&key).await.unwrap();
                let desired = self
                    .stack
                    .describe_service(&m.cluster, &m.name)
                    .await
                    .desired_count();
                let capacity = self.stack.capacity_in(&m.cluster, &m.name).await;
                let original = m.autoscaled.then_some(CAPACITY);
                let wants_asleep = match m.shift {
                    Shift::Office => at_night,
                    Shift::Night => !at_night,
                    Shift::Untagged => false,
                };
                let history = self.stack.store().history(&key, 50).await.unwrap();
                assert!(
                    count(&history, Action::Asleep) <= 1 && count(&history, Action::Awake) <= 1,
                    "{m:?}: {history:#?}"
                );
                match state.sleep.as_ref() {
                    Some(sleep) if sleep.pending => {
                        assert!(!settled, "{m:?}: still half-way");
                        assert!(wants_asleep || !at_night, "{m:?}: half asleep wrongly");
                        return false;
                    }
                    Some(sleep) => {
                        // Asleep against the schedule only while a wake is still to come.
                        let phase_began = utc(if at_night { NIGHT } else { MORNING });
                        let slept_before = sleep.since < phase_began;
                        assert!(
                            m.shift != Shift::Untagged
                                && (wants_asleep || (!settled && slept_before)),
                            "{m:?} was put to sleep wrongly: {sleep:?}"
                        );
                        assert_eq!(
                            (desired, capacity),
                            (0, original.map(|_| (0, 0))),
                            "{m:?}: the table claims a sleep ECS did not get"
                        );
                        assert_eq!(
                            (sleep.desired_count, sleep.scalable.map(|c| (c.min, c.max))),
                            (DESIRED, original),
                            "{m:?}: saved what it ran"
                        );
                        return true;
                    }
                    None => {
                        assert_eq!(
                            (desired, capacity),
                            (DESIRED, original),
                            "{m:?}: runs as before with no sleep on record"
                        );
                        assert!(!(settled && wants_asleep), "{m:?} should be asleep");
                    }
                }
                false
            })
            .buffer_unordered(16)
            .collect()
            .await;
        asleep.into_iter().filter(|a| *a).count()
    }

    fn expected_asleep(&self, at: &str) -> usize {
        let shift = if utc(at).time() >= utc(NIGHT).time() {
            Shift::Office
        } else {
            Shift::Night
        };
        self.members.iter().filter(|m| m.shift == shift).count()
    }
}

#[tokio::test]
async fn reconciles_under_faults_sleep_and_wake_exactly_and_nothing_else() {
    let fleet = Fleet::create(Stack::new().await, 1, 12).await;
    let proxy = Proxy::start(fleet.stack.emulator_url(), twenty_percent()).await;
    eprintln!("fault seed {}", proxy.seed());
    let clock = Arc::new(FixedClock::new(utc(NIGHT)));
    let ports = fleet
        .stack
        .ports_through(Role::Scheduler, &proxy, clock.clone())
        .await;
    let scheduler = SchedulerFunction::new(ports, fleet.config());

    for at in [NIGHT, MORNING] {
        clock.set(utc(at));
        let event = json!({"action": "reconcile", "at": at});
        let (_, deliveries) = deliver_until_done(
            &clock,
            async || scheduler.handle(&event).await,
            async || {
                fleet.check(at, false).await;
            },
        )
        .await;
        eprintln!(
            "{at}: {deliveries} deliveries, faults {:?}",
            proxy.fault_counts()
        );
        assert_eq!(fleet.check(at, true).await, fleet.expected_asleep(at));
        // The same reconcile again changes nothing.
        let (again, _) =
            deliver_until_done(&clock, async || scheduler.handle(&event).await, async || {}).await;
        assert!(
            again.services.iter().all(|s| s.action == Action::Unchanged),
            "{again:?}"
        );
        assert_eq!(fleet.check(at, true).await, fleet.expected_asleep(at));
    }
}

/// Twenty percent of the calls faulted: the fleet is right after at most two reconciles that
/// reached its services (one whose discovery ran out of time changes nothing and is retried).
#[tokio::test]
async fn a_fleet_of_two_hundred_under_faults_is_right_after_at_most_two_reconciles() {
    // A server of its own: the Tagging API pages through every service on it.
    let fleet = Fleet::create(Stack::isolated().await, 2, 100).await;
    assert_eq!(fleet.members.len(), 200);
    let proxy = Proxy::start(fleet.stack.emulator_url(), twenty_percent()).await;
    eprintln!("fault seed {}", proxy.seed());
    let clock = Arc::new(FixedClock::new(utc(NIGHT)));
    let ports = fleet
        .stack
        .ports_through(Role::Scheduler, &proxy, clock.clone())
        .await;
    let scheduler = SchedulerFunction::new(ports, fleet.config());

    for first in [NIGHT, MORNING] {
        // A reconcile whose discovery failed (its retries ran out of time) reached no service
        // and does not count: at most two that reached the services, three in all.
        let mut reached = 0;
        for reconciles in 1..=3 {
            // Reconciles run every 15 minutes.
            let at = (utc(first) + RECONCILE_EVERY * (reconciles - 1))
                .to_rfc3339_opts(SecondsFormat::Secs, true);
            let at = at.as_str();
            clock.set(utc(at));
            let event = json!({"action": "reconcile", "at": at});
            proxy.clear();
            let result = scheduler.handle(&event).await;
            let failed = match &result {
                Ok(_) => 0,
                Err(SchedulerError::ServicesFailed(s)) => s.failed_services().count(),
                // Nothing was done; the next reconcile does it all.
                Err(e) => {
                    eprintln!("{at}: {e}");
                    fleet.members.len()
                }
            };
            if !matches!(&result, Err(e) if !matches!(e, SchedulerError::ServicesFailed(_))) {
                reached += 1;
            }
            let calls = proxy.calls();
            eprintln!(
                "{at}: reconcile {reconciles}: {} calls, {} faulted, {failed} services failed",
                calls.len(),
                calls.iter().filter(|c| c.fault.is_some()).count()
            );
            fleet.check(at, false).await;
            if result.is_ok() {
                assert_eq!(fleet.check(at, true).await, fleet.expected_asleep(at));
                break;
            }
            assert!(
                reached < 2 && reconciles < 3,
                "{at}: not right after two reconciles that reached the services"
            );
        }
    }
}
