//! The deploy function end to end, through the AWS SDK against moto server.

use std::sync::Arc;

use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, HealthCheck, KeyValuePair, LogConfiguration, LogDriver,
    NetworkMode, PortMapping, ProxyConfiguration, ProxyConfigurationType, RuntimePlatform, Secret,
    Tag, TaskDefinition, TaskDefinitionPlacementConstraint, TaskDefinitionPlacementConstraintType,
    Volume,
};
use chrono::{TimeDelta, Utc};
use deckhand::app::deploy::{DeployError, DeployFunction};
use deckhand::domain::state::DeploymentStatus;
use deckhand::ports::{StateStore, SystemClock};
use deckhand::report::{Action, Outcome};
use futures::future::join_all;
use serde_json::json;
use testkit::proxy::{FaultPlan, Proxy};

use crate::harness::{ACCOUNT, REGION, Role, Stack, sample_event};

const SECRET_VALUE: &str = "postgres://app:hunter2@db.internal/app";

/// A task definition with every field the spec promises to keep, two containers from two
/// repositories, an environment value and a secret.
async fn maximal_task_definition(stack: &Stack) -> String {
    let web = ContainerDefinition::builder()
        .name("web")
        .image(stack.image(":main-41"))
        .essential(true)
        .cpu(256)
        .memory(512)
        .port_mappings(
            PortMapping::builder()
                .container_port(8080)
                .host_port(0)
                .build(),
        )
        .environment(
            KeyValuePair::builder()
                .name("DATABASE_URL")
                .value(SECRET_VALUE)
                .build(),
        )
        .secrets(
            Secret::builder()
                .name("API_KEY")
                .value_from("arn:aws:secretsmanager:us-east-1:123456789012:secret:api-key")
                .build()
                .unwrap(),
        )
        .log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", "/ecs/web")
                .options("awslogs-region", REGION)
                .build()
                .unwrap(),
        )
        .health_check(
            HealthCheck::builder()
                .command("CMD-SHELL")
                .command("curl -f http://localhost:8080/health || exit 1")
                .interval(15)
                .retries(3)
                .build()
                .unwrap(),
        )
        .build();
    let envoy = ContainerDefinition::builder()
        .name("envoy")
        .image(format!(
            "{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/envoy:v1.30"
        ))
        .essential(true)
        .memory(128)
        .build();
    stack
        .register(
            stack
                .ecs
                .register_task_definition()
                .family(format!("web-{}", stack.id))
                .task_role_arn("arn:aws:iam::123456789012:role/web-task")
                .execution_role_arn("arn:aws:iam::123456789012:role/web-execution")
                .network_mode(NetworkMode::Bridge)
                .container_definitions(web)
                .container_definitions(envoy)
                .volumes(Volume::builder().name("scratch").build())
                .placement_constraints(
                    TaskDefinitionPlacementConstraint::builder()
                        .r#type(TaskDefinitionPlacementConstraintType::MemberOf)
                        .expression("attribute:ecs.instance-type =~ t3.*")
                        .build(),
                )
                .requires_compatibilities(Compatibility::Ec2)
                .cpu("512")
                .memory("1024")
                .proxy_configuration(
                    ProxyConfiguration::builder()
                        .r#type(ProxyConfigurationType::Appmesh)
                        .container_name("envoy")
                        .properties(
                            KeyValuePair::builder()
                                .name("AppPorts")
                                .value("8080")
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .ephemeral_storage(
                    aws_sdk_ecs::types::EphemeralStorage::builder()
                        .size_in_gib(30)
                        .build(),
                )
                .runtime_platform(
                    RuntimePlatform::builder()
                        .cpu_architecture(aws_sdk_ecs::types::CpuArchitecture::Arm64)
                        .operating_system_family(aws_sdk_ecs::types::OsFamily::Linux)
                        .build(),
                )
                .tags(Tag::builder().key("team").value("payments").build())
                .tags(Tag::builder().key("cost-centre").value("cc-42").build()),
        )
        .await
}

/// The fields that legitimately differ between two revisions, cleared.
fn comparable(mut td: TaskDefinition) -> TaskDefinition {
    td.task_definition_arn = None;
    td.revision = 0;
    td.registered_at = None;
    td.registered_by = None;
    td
}

#[tokio::test]
async fn push_deploys_then_completed_is_recorded() {
    let stack = Stack::new().await;
    let before_arn = maximal_task_definition(&stack).await;
    stack
        .create_service("web", &before_arn, &[("deckhand:deploy", "prefix=main-")])
        .await;
    let digest = stack.push_image("main-42").await;
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), stack.config());

    let summary = function
        .handle(&stack.push_event("push-1", Utc::now(), "main-42", &digest))
        .await
        .unwrap();

    // The summary says what happened
    assert_eq!(summary.outcome, Outcome::Deployed);
    let family = format!("web-{}", stack.id);
    assert_eq!(
        summary.services[0].from.as_deref(),
        Some(format!("{family}:1").as_str())
    );
    assert_eq!(
        summary.services[0].to.as_deref(),
        Some(format!("{family}:2").as_str())
    );
    assert_eq!(
        summary.services[0].reason,
        "tag main-42 matches prefix=main-"
    );

    // ECS runs a faithful clone with only the web image pinned by digest
    let after_arn = stack.running_task_definition("web").await;
    assert_ne!(after_arn, before_arn);
    let (before, before_tags) = stack.task_definition(&before_arn).await;
    let (after, after_tags) = stack.task_definition(&after_arn).await;
    assert_eq!(
        after.container_definitions()[0].image(),
        Some(stack.image(&format!("@{digest}")).as_str())
    );
    assert_eq!(
        after.container_definitions()[1].image(),
        before.container_definitions()[1].image()
    );
    let mut expected = comparable(before);
    expected.container_definitions.as_mut().unwrap()[0].image =
        Some(stack.image(&format!("@{digest}")));
    assert_eq!(comparable(after), expected);
    // The task definition's own tags, and deckhand's marks: the push and the revision cloned.
    let mut expected_tags = before_tags.clone();
    expected_tags.extend([
        Tag::builder().key("deckhand:event").value("push-1").build(),
        Tag::builder().key("deckhand:from").value("1").build(),
    ]);
    assert_eq!(before_tags.len(), 2);
    assert_eq!(after_tags, expected_tags);

    // The table holds the deployment and its history
    let key = stack.service_key("web");
    let state = stack.store().load(&key).await.unwrap();
    let deployment = state.deployment.clone().unwrap();
    assert_eq!(
        (deployment.from.as_str(), deployment.to.as_str()),
        (before_arn.as_str(), after_arn.as_str())
    );
    assert_eq!(deployment.status, DeploymentStatus::InProgress);
    assert_eq!(state.known_good.as_deref(), Some(before_arn.as_str()));
    let history = stack.store().history(&key, 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].action, Action::Deployed);
    assert_eq!(history[0].to.as_deref(), Some(after_arn.as_str()));

    // The topic holds deploy.started, per the schema, with filterable attributes
    let published = stack.notifications();
    assert_eq!(published.len(), 1);
    let (subject, body, attributes) = &published[0];
    assert!(subject.len() < 100 && subject.is_ascii(), "{subject}");
    assert_eq!(body["schema"], "deckhand.notification/1");
    assert_eq!(body["kind"], "deploy.started");
    assert_eq!(body["severity"], "info");
    assert_eq!(body["service"], key.to_string());
    assert_eq!(body["details"]["digest"], digest);
    assert!(chrono::DateTime::parse_from_rfc3339(body["at"].as_str().unwrap()).is_ok());
    assert_eq!(attributes["kind"]["Value"], "deploy.started");
    assert_eq!(attributes["severity"]["Value"], "info");
    assert_eq!(attributes["service"]["Value"], key.to_string());
    assert_eq!(attributes["environment"]["Value"], "staging");
    // The chat topic: the same attributes, the environment leading the title.
    let chat = stack.chat_notifications();
    assert_eq!(chat.len(), 1);
    let (_, message, chat_attributes) = &chat[0];
    assert_eq!(chat_attributes, attributes, "filterable alike");
    let title = message["content"]["title"].as_str().unwrap();
    assert!(title.starts_with("[staging] deploy started: "), "{title}");
    assert_eq!(
        message["metadata"]["additionalContext"]["environment"],
        "staging"
    );

    // ECS completes the deployment
    let completed = stack.deployment_event("ecs-deployment-completed", "ecs-1", "web", Utc::now());
    let summary = function.handle(&completed).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Completed);
    let state = stack.store().load(&key).await.unwrap();
    let deployment = state.deployment.unwrap();
    assert_eq!(deployment.status, DeploymentStatus::Completed);
    assert!(deployment.guard_until.unwrap() > Utc::now() + TimeDelta::minutes(29));
    assert_eq!(
        stack.notification_kinds(),
        ["deploy.started", "deploy.completed"]
    );

    // Nothing published carries a value from the task definition's environment
    for (subject, body, _) in stack.notifications() {
        assert!(!subject.contains("hunter2") && !body.to_string().contains("hunter2"));
    }
}

/// Under `semver`, a service deckhand already moved runs a digest: the version it runs is read
/// from the tags ECR holds for that digest (DescribeImages), so an older push does not deploy.
#[tokio::test]
async fn semver_compares_with_the_tags_of_the_running_digest() {
    let stack = Stack::new().await;
    let td = stack
        .simple_task_definition(&format!("web-{}", stack.id), "v1.2.0")
        .await;
    stack
        .create_service("web", &td, &[("deckhand:deploy", "semver")])
        .await;
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), stack.config());
    let push = |id: &str, tag: &str, digest: &str| stack.push_event(id, Utc::now(), tag, digest);

    let newer = stack.push_image("v1.3.0").await;
    let summary = function
        .handle(&push("p1", "v1.3.0", &newer))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed, "{summary:?}");
    assert_eq!(
        stack.running_task_definition("web").await,
        format!(
            "arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web-{}:2",
            stack.id
        )
    );

    // The service now runs v1.3.0 by digest: only ECR knows its version.
    let older = stack.push_image("v1.2.5").await;
    let summary = function
        .handle(&push("p2", "v1.2.5", &older))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Ignored, "{summary:?}");
    assert_eq!(
        summary.services[0].reason,
        "tag v1.2.5 is not newer than the running 1.3.0 (semver)"
    );

    let newest = stack.push_image("v1.4.0").await;
    let summary = function
        .handle(&push("p3", "v1.4.0", &newest))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed, "{summary:?}");
}

#[tokio::test]
async fn a_failed_deployment_quarantines_its_digest_and_only_a_new_digest_deploys() {
    let stack = Stack::new().await;
    let family = format!("api-{}", stack.id);
    let td = stack.simple_task_definition(&family, "main-1").await;
    stack
        .create_service("api", &td, &[("deckhand:deploy", "prefix=main-")])
        .await;
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), stack.config());
    let bad = stack.push_image("main-2").await;

    let t0 = Utc::now();
    function
        .handle(&stack.push_event("push-bad", t0, "main-2", &bad))
        .await
        .unwrap();
    let failed = stack.deployment_event("ecs-deployment-failed", "ecs-failed", "api", Utc::now());
    let summary = function.handle(&failed).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Failed);
    let state = stack.store().load(&stack.service_key("api")).await.unwrap();
    assert_eq!(state.deployment.unwrap().status, DeploymentStatus::Failed);
    assert!(state.quarantine.contains_key(&bad));
    let failure = &stack.notifications()[1];
    assert_eq!(failure.1["kind"], "deploy.failed");
    assert_eq!(failure.1["severity"], "error");
    assert!(
        failure.1["summary"]
            .as_str()
            .unwrap()
            .contains("circuit breaker")
    );

    // ECS's circuit breaker put the old revision back; the same digest pushed again stays out
    stack
        .ecs
        .update_service()
        .cluster(&stack.cluster)
        .service("api")
        .task_definition(&td)
        .send()
        .await
        .unwrap();
    stack.retag(&bad, "main-2-retry").await;
    let summary = function
        .handle(&stack.push_event(
            "push-again",
            t0 + TimeDelta::seconds(60),
            "main-2-retry",
            &bad,
        ))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Skipped);
    assert!(summary.services[0].reason.contains("quarantined"));
    assert_eq!(stack.running_task_definition("api").await, td);
    assert_eq!(stack.revisions(&family).await, 2);

    // a fixed image deploys
    let fixed = stack.push_image("main-3").await;
    let summary = function
        .handle(&stack.push_event("push-fixed", t0 + TimeDelta::seconds(120), "main-3", &fixed))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed);
    assert_eq!(stack.revisions(&family).await, 3);
    assert_eq!(
        stack.notification_kinds(),
        [
            "deploy.started",
            "deploy.failed",
            "deploy.skipped",
            "deploy.started"
        ]
    );
}

#[tokio::test]
async fn ten_concurrent_pushes_end_on_the_newest_and_record_every_decision() {
    let stack = Stack::new().await;
    let family = format!("burst-{}", stack.id);
    let td = stack.simple_task_definition(&family, "main-0").await;
    stack
        .create_service("burst", &td, &[("deckhand:deploy", "any")])
        .await;
    let mut events = Vec::new();
    // Pushed over the last ten seconds: a push's time is never ahead of its confirmation.
    let t0 = Utc::now() - TimeDelta::seconds(11);
    let mut newest = String::new();
    for i in 1..=10 {
        let digest = stack.push_image(&format!("main-{i}")).await;
        events.push(stack.push_event(
            &format!("push-{i}"),
            t0 + TimeDelta::seconds(i),
            &format!("main-{i}"),
            &digest,
        ));
        newest = digest;
    }
    // Separate function instances, as separate Lambda invocations would be
    let functions: Vec<DeployFunction> = (0..10)
        .map(|_| DeployFunction::new(stack.system_ports(Role::Deploy), stack.config()))
        .collect();
    let results = join_all(
        events
            .iter()
            .rev()
            .zip(&functions)
            .map(|(e, f)| f.handle(e)),
    )
    .await;
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }

    let running = stack.running_task_definition("burst").await;
    let (td, _) = stack.task_definition(&running).await;
    assert_eq!(
        td.container_definitions()[0].image(),
        Some(stack.image(&format!("@{newest}")).as_str())
    );
    let history = stack
        .store()
        .history(&stack.service_key("burst"), 100)
        .await
        .unwrap();
    assert_eq!(history.len(), 10, "{history:#?}");
    let mut causes: Vec<&str> = history.iter().map(|r| r.cause.as_str()).collect();
    causes.sort();
    causes.dedup();
    assert_eq!(causes.len(), 10, "one decision per push");
    let deployed = history
        .iter()
        .filter(|r| r.action == Action::Deployed)
        .count();
    let skipped = history
        .iter()
        .filter(|r| r.action == Action::Skipped)
        .count();
    assert_eq!(deployed + skipped, 10);
    assert_eq!(stack.revisions(&family).await, 1 + deployed);
    let state = stack
        .store()
        .load(&stack.service_key("burst"))
        .await
        .unwrap();
    assert_eq!(state.deployment.unwrap().to, running);
}

#[tokio::test]
async fn the_same_event_delivered_five_times_deploys_once() {
    let stack = Stack::new().await;
    let family = format!("dup-{}", stack.id);
    let td = stack.simple_task_definition(&family, "main-0").await;
    stack
        .create_service("dup", &td, &[("deckhand:deploy", "any")])
        .await;
    let digest = stack.push_image("main-1").await;
    let event = stack.push_event("push-once", Utc::now(), "main-1", &digest);
    let functions: Vec<DeployFunction> = (0..5)
        .map(|_| DeployFunction::new(stack.system_ports(Role::Deploy), stack.config()))
        .collect();
    let results = join_all(functions.iter().map(|f| f.handle(&event))).await;
    let outcomes: Vec<Outcome> = results.into_iter().map(|r| r.unwrap().outcome).collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Deployed).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Outcome::Duplicate)
            .count(),
        4,
        "{outcomes:?}"
    );
    assert_eq!(stack.revisions(&family).await, 2);
    let history = stack
        .store()
        .history(&stack.service_key("dup"), 100)
        .await
        .unwrap();
    let actions: Vec<Action> = history.iter().map(|r| r.action).collect();
    assert_eq!(
        actions.iter().filter(|a| **a == Action::Deployed).count(),
        1
    );
    assert_eq!(
        actions.iter().filter(|a| **a == Action::Duplicate).count(),
        4,
        "every delivery is on record, the deployment once"
    );
    assert_eq!(stack.notification_kinds(), ["deploy.started"]);

    // and once more, later, sequentially
    let summary = functions[0].handle(&event).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Duplicate);
    assert_eq!(stack.revisions(&family).await, 2);
}

#[tokio::test]
async fn malformed_events_are_refused_by_field_and_the_next_good_one_deploys() {
    let stack = Stack::new().await;
    let family = format!("bad-{}", stack.id);
    let td = stack.simple_task_definition(&family, "main-0").await;
    stack
        .create_service("bad", &td, &[("deckhand:deploy", "any")])
        .await;
    let digest = stack.push_image("main-1").await;
    let good = stack.push_event("push-good", Utc::now(), "main-1", &digest);
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), stack.config());

    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut e = good.clone();
        edit(&mut e);
        e
    };
    let cases = [
        ("(event)", json!(null)),
        ("(event)", json!("")),
        ("detail-type", json!({})),
        (
            "detail-type",
            with(&|e| e["detail-type"] = json!("Object Created")),
        ),
        ("source", with(&|e| e["source"] = json!("aws.ecs"))),
        ("id", with(&|e| e["id"] = json!(""))),
        ("time", with(&|e| e["time"] = json!(12))),
        (
            "region",
            with(&|e| {
                e.as_object_mut()
                    .unwrap()
                    .remove("region")
                    .map(drop)
                    .unwrap_or(())
            }),
        ),
        (
            "detail",
            with(&|e| {
                e.as_object_mut()
                    .unwrap()
                    .remove("detail")
                    .map(drop)
                    .unwrap_or(())
            }),
        ),
        (
            "detail.repository-name",
            with(&|e| e["detail"]["repository-name"] = json!(["web"])),
        ),
        (
            "detail.image-digest",
            with(&|e| e["detail"]["image-digest"] = json!("latest")),
        ),
        (
            "detail.result",
            with(&|e| {
                e["detail"]
                    .as_object_mut()
                    .unwrap()
                    .remove("result")
                    .map(drop)
                    .unwrap_or(())
            }),
        ),
        ("detail.eventName", {
            let mut e = stack.deployment_event("ecs-deployment-completed", "x", "bad", Utc::now());
            e["detail"]["eventName"] = json!(7);
            e
        }),
    ];
    for (field, event) in &cases {
        match function.handle(event).await {
            Err(DeployError::BadEvent(e)) => assert_eq!(&e.field, field, "{event}: {e}"),
            other => panic!("{event}: expected an error naming {field}, got {other:?}"),
        }
    }
    assert_eq!(stack.running_task_definition("bad").await, td);
    assert_eq!(stack.revisions(&family).await, 1);
    assert!(stack.notifications().is_empty());

    let summary = function.handle(&good).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed);
}

#[tokio::test]
async fn the_sample_events_drive_the_function() {
    // events/ecr-push-untracked-tag.json against a service whose policy does not take it
    let stack = Stack::new().await;
    let td = stack
        .simple_task_definition(&format!("sample-{}", stack.id), "main-0")
        .await;
    stack
        .create_service("sample", &td, &[("deckhand:deploy", "prefix=main-")])
        .await;
    let mut event = sample_event("ecr-push-untracked-tag");
    event["detail"]["repository-name"] = json!(stack.repository);
    // ECR holds what the sample pushed.
    let tag = event["detail"]["image-tag"].as_str().unwrap().to_owned();
    event["detail"]["image-digest"] = json!(stack.push_image(&tag).await);
    let function = DeployFunction::new(
        stack.ports(Role::Deploy, Arc::new(deckhand::ports::SystemClock)),
        stack.config(),
    );
    let summary = function.handle(&event).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Ignored);
    assert_eq!(
        summary.reason.as_deref(),
        Some("tag feature-login matches no service's deploy policy")
    );
    assert_eq!(stack.running_task_definition("sample").await, td);
    assert!(stack.notifications().is_empty());
}

/// Log lines of the threads that asked for them.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

thread_local! {
    static CAPTURING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A process-wide subscriber at `trace` level that keeps only the events of threads that set
/// `CAPTURING`. Tracing's per-callsite interest is process-wide: a subscriber set for one
/// thread misses events whose callsites other tests' threads registered first.
fn captured_logs() -> &'static Captured {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::{Layer, filter};
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .with_writer(move || writer.clone())
            .with_filter(filter::filter_fn(|_| CAPTURING.with(|c| c.get())));
        let subscriber = tracing_subscriber::registry()
            .with(filter::LevelFilter::TRACE)
            .with(layer);
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        captured
    })
}

#[tokio::test]
async fn no_log_line_carries_a_task_definition_value() {
    let stack = Stack::new().await;
    let before_arn = maximal_task_definition(&stack).await;
    stack
        .create_service("web", &before_arn, &[("deckhand:deploy", "any")])
        .await;
    let digest = stack.push_image("main-42").await;
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), stack.config());

    // Everything deckhand and the SDK log, at the most verbose level an operator might set.
    // The test runs on one thread (tokio's current-thread runtime), the SDK's tasks included.
    let captured = captured_logs();
    CAPTURING.with(|c| c.set(true));
    let summary = function
        .handle(&stack.push_event("push-log", Utc::now(), "main-42", &digest))
        .await
        .unwrap();
    CAPTURING.with(|c| c.set(false));
    assert_eq!(summary.outcome, Outcome::Deployed);
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("\"deployed\""),
        "the capture works: {logs:.500}"
    );
    assert!(
        logs.contains("RegisterTaskDefinition"),
        "the SDK's own trace is captured too"
    );
    assert!(!logs.contains("hunter2"), "a secret value reached the logs");
    assert!(
        !logs.contains("DATABASE_URL"),
        "an environment name reached the logs"
    );
}

/// The first push of a repository looks through the fleet once and fills the index; a push
/// from another process then reads only the services the repository lists: no listing of the
/// fleet, one service described.
#[tokio::test]
async fn a_fleet_is_looked_through_once_then_a_push_reads_only_its_repositorys_services() {
    // A server of its own: the Tagging API pages through every opted-in service on it.
    let stack = Stack::isolated().await;
    let family = format!("indexed-{}", stack.id);
    let td = stack.simple_task_definition(&family, "main-0").await;
    stack
        .create_service("indexed", &td, &[("deckhand:deploy", "any")])
        .await;
    for i in 0..14 {
        let other = stack
            .register(
                stack
                    .ecs
                    .register_task_definition()
                    .family(format!("{family}-other-{i}"))
                    .container_definitions(
                        ContainerDefinition::builder()
                            .name("app")
                            .image(format!(
                                "{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/other-{i}:1"
                            ))
                            .memory(128)
                            .build(),
                    ),
            )
            .await;
        stack
            .create_service(&format!("other-{i}"), &other, &[("deckhand:deploy", "any")])
            .await;
    }
    let proxy = Proxy::start(stack.emulator_url(), FaultPlan::none()).await;
    let described = |calls: &[String]| {
        calls
            .iter()
            .filter(|c| *c == "ecs.DescribeTaskDefinition")
            .count()
    };
    let count = |calls: &[String], name: &str| calls.iter().filter(|c| *c == name).count();
    for (event, tag, expected) in [("index-1", "main-1", 15), ("index-2", "main-2", 1)] {
        // A new process each time: nothing remembered but what the table holds.
        let ports = stack
            .ports_through(Role::Deploy, &proxy, Arc::new(SystemClock))
            .await;
        let function = DeployFunction::new(ports, stack.config());
        let digest = stack.push_image(tag).await;
        proxy.clear();
        let summary = function
            .handle(&stack.push_event(event, Utc::now(), tag, &digest))
            .await
            .unwrap();
        assert_eq!(summary.outcome, Outcome::Deployed, "{summary:?}");
        let calls = proxy.call_names();
        assert_eq!(described(&calls), expected, "{calls:?}");
        let first = event == "index-1";
        assert_eq!(
            count(&calls, "tagging.GetResources"),
            usize::from(first),
            "{calls:?}"
        );
        assert_eq!(
            count(&calls, "dynamodb.BatchGetItem"),
            usize::from(first),
            "{calls:?}"
        );
        // 15 services by 10, then once under the lock; one, then once under the lock.
        let read = if first { 3 } else { 2 };
        assert_eq!(count(&calls, "ecs.DescribeServices"), read, "{calls:?}");
    }
    assert_eq!(stack.revisions(&family).await, 3);
}
