//! Rollback on alarm through the real SDK against moto server: the story of a bad deploy, the
//! guard window, repeated and flapping alarms, the three ways an alarm guards a service, and
//! the calls one rollback makes.

use std::sync::Arc;

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic, Tag};
use chrono::{DateTime, Utc};
use deckhand::adapters::memory::FixedClock;
use deckhand::app::deploy::DeployFunction;
use deckhand::app::rollback::RollbackFunction;
use deckhand::app::scheduler::SchedulerFunction;
use deckhand::domain::state::DeploymentStatus;
use deckhand::ports::StateStore as _;
use deckhand::report::{Action, Outcome, Summary};
use serde_json::{Value, json};

use crate::harness::{ACCOUNT, REGION, Role, Stack, sample_event};

const PUSHED: &str = "2026-11-23T10:00:00Z";
const COMPLETED: &str = "2026-11-23T10:05:00Z";
/// Eight minutes after ECS completed the deployment: inside the 30-minute guard.
pub(crate) const ALARMED: &str = "2026-11-23T10:13:00Z";

pub(crate) fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

pub(crate) struct Guarded {
    pub(crate) stack: Stack,
    pub(crate) clock: Arc<FixedClock>,
    deploy: DeployFunction,
    rollback: RollbackFunction,
    pub(crate) digest: String,
}

impl Guarded {
    /// Services (name, extra tags) running `web:main-41`, each deployed to `main-42` at 10:00
    /// and completed at 10:05.
    pub(crate) async fn deployed(services: &[(&str, &[(&str, &str)])]) -> Self {
        let stack = Stack::new().await;
        let clock = Arc::new(FixedClock::new(utc(PUSHED)));
        for (name, tags) in services {
            let td = stack
                .simple_task_definition(&format!("{name}-{}", stack.id), "main-41")
                .await;
            let mut all = vec![("deckhand:deploy", "prefix=main-")];
            all.extend_from_slice(tags);
            stack.create_service(name, &td, &all).await;
        }
        let digest = stack.push_image("main-42").await;
        let deploy = DeployFunction::new(stack.ports(Role::Deploy, clock.clone()), stack.config());
        let rollback =
            RollbackFunction::new(stack.ports(Role::Rollback, clock.clone()), stack.config());
        let s = deploy
            .handle(&stack.push_event("push-42", utc(PUSHED), "main-42", &digest))
            .await
            .unwrap();
        assert_eq!(s.outcome, Outcome::Deployed, "{s:?}");
        clock.set(utc(COMPLETED));
        for (name, _) in services {
            let event = stack.deployment_event(
                "ecs-deployment-completed",
                &format!("done-{name}"),
                name,
                utc(COMPLETED),
            );
            assert_eq!(
                deploy.handle(&event).await.unwrap().outcome,
                Outcome::Completed
            );
        }
        Self {
            stack,
            clock,
            deploy,
            rollback,
            digest,
        }
    }

    pub(crate) async fn alarm(
        &self,
        name: &str,
        metric_of: Option<&str>,
        tags: &[(&str, &str)],
    ) -> String {
        metric_alarm(&self.stack, name, metric_of, tags).await
    }

    pub(crate) fn event(
        &self,
        id: &str,
        arn: &str,
        value: &str,
        previous: &str,
        at: &str,
        metric_of: Option<&str>,
    ) -> Value {
        alarm_event(&self.stack, id, arn, value, previous, at, metric_of)
    }

    /// Hands the rollback function an alarm in any of its shapes, the clock set to `at`.
    pub(crate) async fn handle_at(
        &self,
        event: &Value,
        at: &str,
    ) -> Result<Summary, deckhand::app::rollback::RollbackError> {
        self.clock.set(utc(at));
        self.rollback.handle(event).await
    }

    async fn handle(&self, event: &Value) -> Summary {
        self.clock.set(utc(event["time"].as_str().unwrap()));
        self.rollback.handle(event).await.unwrap()
    }

    pub(crate) async fn revision(&self, service: &str) -> String {
        let arn = self.stack.running_task_definition(service).await;
        arn.rsplit(':').next().unwrap().to_owned()
    }

    /// The digests quarantined for the service.
    async fn quarantined(&self, service: &str) -> Vec<String> {
        let state = self
            .stack
            .store()
            .load(&self.stack.service_key(service))
            .await
            .unwrap();
        state.quarantine.keys().map(ToString::to_string).collect()
    }

    async fn alarm_actions(&self, service: &str) -> Vec<Action> {
        let key = self.stack.service_key(service);
        let mut history = self.stack.store().history(&key, 50).await.unwrap();
        history.reverse();
        history
            .into_iter()
            .filter(|r| !r.cause.starts_with("push") && !r.cause.starts_with("done"))
            .map(|r| r.action)
            .collect()
    }

    fn rollback_kinds(&self) -> Vec<String> {
        self.stack
            .notification_kinds()
            .into_iter()
            .filter(|k| k.starts_with("rollback"))
            .collect()
    }
}

/// Creates the alarm in CloudWatch, watching the given service's metric when one is named,
/// and returns its ARN.
pub(crate) async fn metric_alarm(
    stack: &Stack,
    name: &str,
    metric_of: Option<&str>,
    tags: &[(&str, &str)],
) -> String {
    let client = aws_sdk_cloudwatch::Client::new(&stack.sdk);
    let mut request = client
        .put_metric_alarm()
        .alarm_name(name)
        .namespace("Storefront")
        .metric_name("HTTPCode_5XX")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold);
    if let Some(service) = metric_of {
        request = request
            .dimensions(
                Dimension::builder()
                    .name("ClusterName")
                    .value(&stack.cluster)
                    .build(),
            )
            .dimensions(
                Dimension::builder()
                    .name("ServiceName")
                    .value(service)
                    .build(),
            );
    }
    for (k, v) in tags {
        request = request.tags(Tag::builder().key(*k).value(*v).build());
    }
    request.send().await.unwrap();
    format!("arn:aws:cloudwatch:{REGION}:{}:alarm:{name}", stack.account)
}

/// The EventBridge event of the alarm changing state, from events/alarm-eventbridge.json.
pub(crate) fn alarm_event(
    stack: &Stack,
    id: &str,
    arn: &str,
    value: &str,
    previous: &str,
    at: &str,
    metric_of: Option<&str>,
) -> Value {
    let name = arn.rsplit(':').next().unwrap();
    let mut event = sample_event("alarm-eventbridge");
    event["id"] = json!(id);
    event["time"] = json!(at);
    event["resources"] = json!([arn]);
    event["detail"]["alarmName"] = json!(name);
    event["detail"]["state"]["value"] = json!(value);
    event["detail"]["state"]["timestamp"] =
        json!(utc(at).format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string());
    event["detail"]["previousState"]["value"] = json!(previous);
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] =
        match metric_of {
            Some(service) => json!({"ClusterName": stack.cluster, "ServiceName": service}),
            None => json!({"LoadBalancer": "app/storefront/1"}),
        };
    event
}

#[tokio::test]
async fn a_bad_deploy_is_rolled_back_its_digest_quarantined_and_a_fixed_image_deploys() {
    let g = Guarded::deployed(&[("api", &[])]).await;
    let arn = g.alarm("api-5xx", Some("api"), &[]).await;
    assert_eq!(g.revision("api").await, "2");

    let s = g
        .handle(&g.event("alarm-1", &arn, "ALARM", "OK", ALARMED, Some("api")))
        .await;
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert_eq!(g.revision("api").await, "1");
    let key = g.stack.service_key("api");
    let state = g.stack.store().load(&key).await.unwrap();
    assert!(state.is_quarantined(&g.digest.parse().unwrap()).is_some());
    let deployment = state.deployment.unwrap();
    assert_eq!(deployment.status, DeploymentStatus::RolledBack);
    assert_eq!(deployment.rollback.unwrap().alarm, "api-5xx");

    let (subject, body, attributes) = g
        .stack
        .notifications()
        .into_iter()
        .find(|(_, b, _)| b["kind"] == "rollback.started")
        .unwrap();
    assert!(subject.len() < 100 && subject.is_ascii(), "{subject}");
    assert_eq!(body["severity"], "warning");
    assert_eq!(body["details"]["alarm"], "api-5xx");
    assert_eq!(body["details"]["alarmArn"], arn);
    assert_eq!(body["details"]["digest"], g.digest);
    assert!(body["details"]["from"].as_str().unwrap().ends_with(":2"));
    assert!(body["details"]["to"].as_str().unwrap().ends_with(":1"));
    assert!(
        body["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("inside the guard window")
    );
    assert_eq!(attributes["kind"]["Value"], "rollback.started");

    // A minute later the same alarm fires again: nothing changes, and the reason is published.
    let again = g
        .handle(&g.event(
            "alarm-2",
            &arn,
            "ALARM",
            "OK",
            "2026-11-23T10:14:00Z",
            Some("api"),
        ))
        .await;
    assert_eq!(again.outcome, Outcome::Skipped);
    assert_eq!(g.revision("api").await, "1");
    assert_eq!(g.rollback_kinds(), ["rollback.started", "rollback.skipped"]);

    // A re-push of the rolled-back digest is not deployed; a fixed image is.
    g.clock.set(utc("2026-11-23T10:20:00Z"));
    let repush = g
        .deploy
        .handle(&g.stack.push_event(
            "push-42-again",
            utc("2026-11-23T10:20:00Z"),
            "main-42",
            &g.digest,
        ))
        .await
        .unwrap();
    assert_eq!(repush.outcome, Outcome::Skipped, "{repush:?}");
    assert!(
        repush.services[0].reason.contains("quarantined"),
        "{repush:?}"
    );
    assert_eq!(g.revision("api").await, "1");
    let fixed = g.stack.push_image("main-43").await;
    g.clock.set(utc("2026-11-23T10:30:00Z"));
    let s = g
        .deploy
        .handle(
            &g.stack
                .push_event("push-43", utc("2026-11-23T10:30:00Z"), "main-43", &fixed),
        )
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::Deployed, "{s:?}");
    assert_eq!(g.revision("api").await, "3");
}

#[tokio::test]
async fn an_alarm_outside_the_guard_window_changes_nothing() {
    let g = Guarded::deployed(&[("api", &[])]).await;
    let arn = g.alarm("api-5xx", Some("api"), &[]).await;
    let s = g
        .handle(&g.event(
            "late",
            &arn,
            "ALARM",
            "OK",
            "2026-11-23T10:40:00Z",
            Some("api"),
        ))
        .await;
    assert_eq!(s.outcome, Outcome::Skipped);
    assert!(
        s.services[0].reason.starts_with("outside the guard window"),
        "{s:?}"
    );
    assert_eq!(g.revision("api").await, "2");
    assert_eq!(g.rollback_kinds(), ["rollback.skipped"]);
}

#[tokio::test]
async fn five_deliveries_and_a_flapping_alarm_roll_back_exactly_once() {
    let g = Guarded::deployed(&[("api", &[])]).await;
    let arn = g.alarm("api-5xx", Some("api"), &[]).await;
    let first = g.event("alarm-1", &arn, "ALARM", "OK", ALARMED, Some("api"));
    for _ in 0..5 {
        g.handle(&first).await;
    }
    let ok = g
        .handle(&g.event(
            "ok-1",
            &arn,
            "OK",
            "ALARM",
            "2026-11-23T10:15:00Z",
            Some("api"),
        ))
        .await;
    assert_eq!(ok.outcome, Outcome::Ignored);
    g.handle(&g.event(
        "alarm-2",
        &arn,
        "ALARM",
        "OK",
        "2026-11-23T10:16:00Z",
        Some("api"),
    ))
    .await;
    // The five deliveries share one instant on the test clock, so only their count is ordered.
    let mut actions = g.alarm_actions("api").await;
    assert_eq!(
        actions.pop(),
        Some(Action::Skipped),
        "the second ALARM comes last"
    );
    actions.sort();
    assert_eq!(
        actions,
        [
            Action::RolledBack,
            Action::Duplicate,
            Action::Duplicate,
            Action::Duplicate,
            Action::Duplicate
        ]
    );
    assert_eq!(g.revision("api").await, "1");
    assert_eq!(g.rollback_kinds(), ["rollback.started", "rollback.skipped"]);
}

#[tokio::test]
async fn an_alarm_that_guards_nothing_is_ignored() {
    let g = Guarded::deployed(&[("api", &[])]).await;
    let arn = g.alarm("db-slow", None, &[]).await;
    let s = g
        .handle(&g.event("alarm-1", &arn, "ALARM", "OK", ALARMED, None))
        .await;
    assert_eq!(s.outcome, Outcome::Ignored);
    assert_eq!(
        s.reason.as_deref(),
        Some("alarm db-slow guards no service that deckhand manages")
    );
    assert_eq!(g.revision("api").await, "2");
    assert!(g.rollback_kinds().is_empty());
}

/// A CPU target tracking policy's alarm goes into ALARM on every scale-out: eight minutes into
/// the guard window of a good deployment, it rolls nothing back and quarantines nothing.
#[tokio::test]
async fn a_target_tracking_alarm_inside_the_guard_window_rolls_nothing_back() {
    let g = Guarded::deployed(&[("api", &[])]).await;
    let resource = format!("service/{}/api", g.stack.cluster);
    let name = format!("TargetTracking-{resource}-AlarmHigh-5c0f7f7a-2b7e-4b5e-9c1d-8e2f6a3b4c5d");
    let arn = g.alarm(&name, Some("api"), &[]).await;
    let mut event = g.event("scale-out-1", &arn, "ALARM", "OK", ALARMED, Some("api"));
    event["detail"]["configuration"]["description"] = json!(format!(
        "DO NOT EDIT OR DELETE. For TargetTrackingScaling policy arn:aws:autoscaling:{REGION}:{ACCOUNT}:\
         scalingPolicy:7d9c2f4e-1a3b-4c5d-8e9f-0a1b2c3d4e5f:resource/ecs/{resource}:policyName/cpu-75."
    ));
    let s = g.handle(&event).await;
    assert_eq!(s.outcome, Outcome::Ignored, "{s:?}");
    assert!(
        s.reason
            .as_deref()
            .unwrap_or("")
            .contains("a target tracking alarm of Application Auto Scaling"),
        "{s:?}"
    );
    assert_eq!(g.revision("api").await, "2");
    assert!(g.quarantined("api").await.is_empty());
    assert!(g.rollback_kinds().is_empty());
    // The same metric under an alarm of the team's own still rolls back.
    let own = g.alarm("api-cpu-saturated", Some("api"), &[]).await;
    let s = g
        .handle(&g.event("alarm-2", &own, "ALARM", "OK", ALARMED, Some("api")))
        .await;
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert_eq!(g.revision("api").await, "1");
}

/// A step scaling alarm of the team's own: EventBridge does not say what it does, so deckhand
/// reads its actions, finds the scaling policy, and rolls nothing back.
#[tokio::test]
async fn a_step_scaling_alarm_inside_the_guard_window_rolls_nothing_back() {
    let g = Guarded::deployed(&[("api", &[])]).await;
    let arn = g.alarm("api-cpu-step-out", Some("api"), &[]).await;
    let policy = format!(
        "arn:aws:autoscaling:{REGION}:{ACCOUNT}:scalingPolicy:2a4c6e8f-0b1d-4f3a-9c5e-7b9d1f3a5c7e:\
         resource/ecs/service/{}/api:policyName/api-step-out",
        g.stack.cluster
    );
    aws_sdk_cloudwatch::Client::new(&g.stack.sdk)
        .put_metric_alarm()
        .alarm_name("api-cpu-step-out")
        .namespace("AWS/ECS")
        .metric_name("CPUUtilization")
        .dimensions(
            Dimension::builder()
                .name("ClusterName")
                .value(&g.stack.cluster)
                .build(),
        )
        .dimensions(
            Dimension::builder()
                .name("ServiceName")
                .value("api")
                .build(),
        )
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(2)
        .threshold(80.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .alarm_actions(&policy)
        .send()
        .await
        .unwrap();
    let s = g
        .handle(&g.event("step-out-1", &arn, "ALARM", "OK", ALARMED, Some("api")))
        .await;
    assert_eq!(s.outcome, Outcome::Ignored, "{s:?}");
    assert!(
        s.reason.as_deref().unwrap_or("").contains("step scaling"),
        "{s:?}"
    );
    assert_eq!(g.revision("api").await, "2");
    assert!(g.quarantined("api").await.is_empty());
    assert!(g.rollback_kinds().is_empty());
}

/// Health alarms of a service deckhand put to sleep (an operator's sleep inside the guard
/// window), and of its tasks starting again after the wake, roll nothing back; once the tasks
/// had their time, the guard window counts again.
#[tokio::test]
async fn health_alarms_while_asleep_or_waking_roll_nothing_back() {
    let g = Guarded::deployed(&[("api", &[("deckhand:awake", "Mon-Sun 07:00-19:00")])]).await;
    let scheduler = SchedulerFunction::new(
        g.stack.ports(Role::Scheduler, g.clock.clone()),
        g.stack.config(),
    );
    let service = g.stack.service_key("api").to_string();
    let arn = g.alarm("api-unhealthy", Some("api"), &[]).await;

    g.clock.set(utc("2026-11-23T10:10:00Z"));
    let slept = scheduler
        .handle(&json!({"action": "sleep", "service": service, "for": "1h"}))
        .await
        .unwrap();
    assert_eq!(slept.outcome, Outcome::Asleep, "{slept:?}");
    let s = g
        .handle(&g.event(
            "unhealthy-1",
            &arn,
            "ALARM",
            "OK",
            "2026-11-23T10:12:00Z",
            Some("api"),
        ))
        .await;
    assert_eq!(s.outcome, Outcome::Skipped, "{s:?}");
    assert!(
        s.services[0]
            .reason
            .starts_with("deckhand put the service to sleep at 2026-11-23T10:10:00Z"),
        "{s:?}"
    );

    g.clock.set(utc("2026-11-23T10:14:00Z"));
    let woke = scheduler
        .handle(&json!({"action": "wake", "service": service, "for": "2h"}))
        .await
        .unwrap();
    assert_eq!(woke.outcome, Outcome::Awake, "{woke:?}");
    let s = g
        .handle(&g.event(
            "unhealthy-2",
            &arn,
            "ALARM",
            "OK",
            "2026-11-23T10:20:00Z",
            Some("api"),
        ))
        .await;
    assert_eq!(s.outcome, Outcome::Skipped, "{s:?}");
    assert!(
        s.services[0]
            .reason
            .starts_with("deckhand woke the service at 2026-11-23T10:14:00Z"),
        "{s:?}"
    );
    assert_eq!(g.revision("api").await, "2");
    assert!(g.quarantined("api").await.is_empty());

    // Fifteen minutes after the wake, still inside the guard window (10:35): a real alarm.
    let s = g
        .handle(&g.event(
            "unhealthy-3",
            &arn,
            "ALARM",
            "OK",
            "2026-11-23T10:30:00Z",
            Some("api"),
        ))
        .await;
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert_eq!(g.revision("api").await, "1");
}

#[tokio::test]
async fn rollback_off_changes_nothing() {
    let g = Guarded::deployed(&[(
        "api",
        &[("deckhand:rollback", "off"), ("deckhand:alarms", "api-5xx")],
    )])
    .await;
    let arn = g.alarm("api-5xx", Some("api"), &[]).await;
    let s = g
        .handle(&g.event("alarm-1", &arn, "ALARM", "OK", ALARMED, Some("api")))
        .await;
    assert_eq!(s.outcome, Outcome::Skipped);
    assert!(s.services[0].reason.contains("rollback is off"), "{s:?}");
    assert_eq!(g.revision("api").await, "2");
    assert!(g.quarantined("api").await.is_empty());
}

#[tokio::test]
async fn one_alarm_guards_two_services() {
    let g = Guarded::deployed(&[
        ("api", &[("deckhand:alarms", "storefront-5xx")]),
        (
            "worker",
            &[("deckhand:alarms", "queue-depth storefront-5xx")],
        ),
        ("other", &[]),
    ])
    .await;
    let arn = g.alarm("storefront-5xx", None, &[]).await;
    let s = g
        .handle(&g.event("alarm-1", &arn, "ALARM", "OK", ALARMED, None))
        .await;
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert_eq!(s.services.len(), 2);
    assert_eq!(g.revision("api").await, "1");
    assert_eq!(g.revision("worker").await, "1");
    assert_eq!(g.revision("other").await, "2");
}

#[tokio::test]
async fn the_alarm_tag_names_the_service_it_guards() {
    let g = Guarded::deployed(&[("api", &[])]).await;
    let service = g.stack.service_key("api").to_string();
    let arn = g
        .alarm("checkout-errors", None, &[("deckhand:service", &service)])
        .await;
    let s = g
        .handle(&g.event("alarm-1", &arn, "ALARM", "OK", ALARMED, None))
        .await;
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert_eq!(g.revision("api").await, "1");
}

#[tokio::test]
async fn the_direct_and_sns_shapes_roll_back_and_ok_is_ignored() {
    for sample in ["alarm-direct", "alarm-sns"] {
        let g = Guarded::deployed(&[("web", &[])]).await;
        let arn = g.alarm("web-5xx", Some("web"), &[]).await;
        let mut event = sample_event(sample);
        let cluster = g.stack.cluster.clone();
        if sample == "alarm-direct" {
            event["alarmArn"] = json!(arn);
            event["alarmData"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"]
                ["ClusterName"] = json!(cluster);
        } else {
            let text = event["Records"][0]["Sns"]["Message"].as_str().unwrap();
            let mut message: Value = serde_json::from_str(text).unwrap();
            message["AlarmArn"] = json!(arn);
            message["Trigger"]["Dimensions"][0]["value"] = json!(cluster);
            event["Records"][0]["Sns"]["Message"] = json!(message.to_string());
        }
        // The samples fired at 10:08, three minutes into the guard window.
        g.clock.set(utc("2026-11-23T10:08:00Z"));
        let s = g.rollback.handle(&event).await.unwrap();
        assert_eq!(s.outcome, Outcome::RolledBack, "{sample}: {s:?}");
        assert_eq!(g.revision("web").await, "1", "{sample}");
    }
    let g = Guarded::deployed(&[("web", &[])]).await;
    let s = g.rollback.handle(&sample_event("alarm-ok")).await.unwrap();
    assert_eq!(s.outcome, Outcome::Ignored);
    assert_eq!(g.revision("web").await, "2");
}

#[tokio::test]
async fn one_rollback_makes_ten_aws_calls() {
    let g = Guarded::deployed(&[("api", &[])]).await;
    let arn = g.alarm("api-5xx", Some("api"), &[]).await;
    // A quarantined digest from earlier makes deckhand look at what the target runs: the
    // images its deployment recorded of it, which ECR confirms are not archived before ECS
    // pulls them (DescribeImages), so the revision is not read again.
    let key = g.stack.service_key("api");
    let (ports, log) = g.stack.counted_ports(Role::Rollback);
    let mut ports = ports;
    ports.clock = g.clock.clone();
    let rollback = RollbackFunction::new(ports, g.stack.config());
    let mut state = g.stack.store().load(&key).await.unwrap();
    state.quarantine(
        &format!("sha256:{}", "e".repeat(64)).parse().unwrap(),
        "failed".into(),
        utc(PUSHED),
        None,
    );
    let store = g.stack.store();
    let locked = match store
        .lock(&key, "test", utc(PUSHED), chrono::TimeDelta::seconds(5))
        .await
        .unwrap()
    {
        deckhand::ports::LockAttempt::Acquired(locked) => *locked,
        busy => panic!("{busy:?}"),
    };
    store
        .commit(&key, &locked, &state, &[], None)
        .await
        .unwrap();

    g.clock.set(utc(ALARMED));
    let s = rollback
        .handle(&g.event("alarm-1", &arn, "ALARM", "OK", ALARMED, Some("api")))
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack);
    let mut calls = log.calls();
    calls.sort();
    assert_eq!(
        calls,
        [
            "CloudWatch.DescribeAlarms",
            "CloudWatch.ListTagsForResource",
            "DynamoDB.Query",
            "DynamoDB.TransactWriteItems",
            "DynamoDB.UpdateItem",
            "ECR.DescribeImages",
            "ECS.DescribeServices",
            "ECS.UpdateService",
            "Resource Groups Tagging API.GetResources",
            "SNS.Publish",
        ]
    );
}
