//! Each row of the spec's table of deployment strategies, through the real SDK against the
//! emulator's model of ECS service deployments: how deckhand deploys the service and how an
//! alarm inside the guard window rolls it back.

use std::sync::Arc;

use deckhand::adapters::memory::FixedClock;
use deckhand::app::deploy::DeployFunction;
use deckhand::app::operator::{Operator, OperatorError};
use deckhand::app::rollback::RollbackFunction;
use deckhand::domain::state::DeploymentStatus;
use deckhand::ports::StateStore as _;
use deckhand::report::{Action, Outcome, Summary};

use crate::harness::{Role, Stack};
use crate::rollback::{alarm_event, metric_alarm, utc};

const PUSHED: &str = "2026-11-23T10:00:00Z";
const COMPLETED: &str = "2026-11-23T10:05:00Z";
const ALARMED: &str = "2026-11-23T10:13:00Z";

/// `api` on `web:1` with `strategy`, pushed to `main-42` (`web:2`) at 10:00.
struct Native {
    stack: Stack,
    clock: Arc<FixedClock>,
    deploy: DeployFunction,
    family: String,
    digest: String,
}

impl Native {
    async fn pushed(strategy: &str) -> Self {
        Self::pushed_with(strategy, false).await
    }

    /// With a pause hook, the deployment waits for an answer as soon as it starts.
    async fn pushed_with(strategy: &str, pause_hook: bool) -> Self {
        let hooks: &[&[&str]] = if pause_hook {
            &[&["POST_TEST_TRAFFIC_SHIFT"]]
        } else {
            &[]
        };
        Self::pushed_with_hooks(strategy, hooks).await
    }

    /// With pause hooks at the stages of each entry: the deployment waits at the first.
    async fn pushed_with_hooks(strategy: &str, hooks: &[&[&str]]) -> Self {
        let stack = Stack::new().await;
        let clock = Arc::new(FixedClock::new(utc(PUSHED)));
        let family = format!("api-{}", stack.id);
        let td = stack.simple_task_definition(&family, "main-41").await;
        stack
            .create_service("api", &td, &[("deckhand:deploy", "prefix=main-")])
            .await;
        if hooks.is_empty() {
            stack.set_strategy("api", strategy).await;
        } else {
            stack
                .set_strategy_with_pause_hooks("api", strategy, hooks)
                .await;
        }
        let digest = stack.push_image("main-42").await;
        let deploy = DeployFunction::new(stack.ports(Role::Deploy, clock.clone()), stack.config());
        let pushed = deploy
            .handle(&stack.push_event("push-42", utc(PUSHED), "main-42", &digest))
            .await
            .unwrap();
        assert_eq!(pushed.outcome, Outcome::Deployed, "{pushed:?}");
        Self {
            stack,
            clock,
            deploy,
            family,
            digest,
        }
    }

    /// ECS's `HOOK_AWAITING_ACTION` for the newest deployment of `api`, with `detail` added,
    /// handled by the deploy function.
    async fn hook_awaits(&self, id: &str, detail: serde_json::Value) -> Summary {
        let (arn, _, _) = self.stack.service_deployments("api").await.remove(0);
        let mut event = serde_json::json!({"version": "0", "id": id, "detail-type": "ECS Hook State Change",
            "source": "aws.ecs", "account": "123456789012", "time": "2026-11-23T10:01:00Z", "region": "us-east-1",
            "resources": [arn], "detail": {"eventType": "INFO", "eventName": "HOOK_AWAITING_ACTION"}});
        if let (Some(all), Some(more)) = (event["detail"].as_object_mut(), detail.as_object()) {
            all.extend(more.clone());
        }
        self.deploy.handle(&event).await.unwrap()
    }

    /// The details of every `deploy.awaiting-approval` published.
    fn awaiting_approval(&self) -> Vec<serde_json::Value> {
        self.stack
            .notifications()
            .into_iter()
            .filter(|(_, b, _)| b["kind"] == "deploy.awaiting-approval")
            .map(|(_, b, _)| b["details"].clone())
            .collect()
    }

    /// ECS ends its deployment after the bake time and says so.
    async fn completed(&self) {
        let (arn, _, _) = self.stack.service_deployments("api").await.remove(0);
        self.stack.complete_service_deployment(&arn);
        self.clock.set(utc(COMPLETED));
        let event = self.stack.deployment_event(
            "ecs-deployment-completed",
            "done-api",
            "api",
            utc(COMPLETED),
        );
        let done = self.deploy.handle(&event).await.unwrap();
        assert_eq!(done.outcome, Outcome::Completed, "{done:?}");
    }

    /// The alarm of `api` fires at ALARMED; the summary and the AWS calls the rollback made.
    async fn alarm(&self) -> (Summary, Vec<String>) {
        let arn = metric_alarm(&self.stack, "api-5xx", Some("api"), &[]).await;
        let (mut ports, log) = self.stack.counted_ports(Role::Rollback);
        ports.clock = self.clock.clone();
        let rollback = RollbackFunction::new(ports, self.stack.config());
        self.clock.set(utc(ALARMED));
        let event = alarm_event(
            &self.stack,
            "alarm-1",
            &arn,
            "ALARM",
            "OK",
            ALARMED,
            Some("api"),
        );
        let summary = rollback.handle(&event).await.unwrap();
        (summary, log.calls())
    }

    /// The operator's front end, signed as the template's OperatorPolicy.
    fn operator(&self) -> Operator {
        Operator::new(
            self.stack.ports(Role::Operator, self.clock.clone()),
            "alice",
        )
    }

    /// FAMILY:REVISION of what the service runs.
    async fn running(&self) -> String {
        let arn = self.stack.running_task_definition("api").await;
        arn.rsplit('/').next().unwrap_or_default().to_owned()
    }

    fn revision(&self, n: u32) -> String {
        format!("{}:{n}", self.family)
    }

    /// The details of the one rollback.started notification.
    fn rollback_details(&self) -> serde_json::Value {
        let started: Vec<_> = self
            .stack
            .notifications()
            .into_iter()
            .filter(|(_, b, _)| b["kind"] == "rollback.started")
            .map(|(_, b, _)| b["details"].clone())
            .collect();
        assert_eq!(started.len(), 1, "{started:?}");
        started[0].clone()
    }
}

/// The AWS calls of one rollback of a traffic-shifting service, in order: the same ten
/// either way, the call that moves the service back aside (the lease the lock took covers it:
/// no renewal).
fn calls_of_a_rollback(moved_by: &str) -> Vec<String> {
    [
        "DynamoDB.Query",
        "CloudWatch.DescribeAlarms",
        "CloudWatch.ListTagsForResource",
        "Resource Groups Tagging API.GetResources",
        "ECS.DescribeServices",
        "DynamoDB.UpdateItem",
        "ECS.ListServiceDeployments",
        moved_by,
        "DynamoDB.TransactWriteItems",
        "SNS.Publish",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Blue/green, linear and canary while ECS still runs the deployment (bake time included):
/// ECS's own rollback, no new deployment; the service is back on the revision ECS kept.
#[tokio::test]
async fn a_traffic_shifting_deployment_in_progress_is_stopped_with_rollback() {
    for strategy in ["BLUE_GREEN", "LINEAR", "CANARY"] {
        let n = Native::pushed(strategy).await;
        let deployments = n.stack.service_deployments("api").await;
        assert_eq!(deployments.len(), 1, "{deployments:?}");
        assert_eq!(deployments[0].1, "IN_PROGRESS");
        let (summary, calls) = n.alarm().await;
        assert_eq!(summary.outcome, Outcome::RolledBack, "{summary:?}");
        let report = &summary.services[0];
        assert_eq!(report.action, Action::RolledBack);
        assert!(
            report.reason.contains(&format!(
                "ECS's own rollback of its {strategy} deployment in progress (StopServiceDeployment), the traffic back on {}",
                n.revision(1)
            )),
            "{report:?}"
        );
        let after = n.stack.service_deployments("api").await;
        assert_eq!(after.len(), 1, "no new deployment: {after:?}");
        assert_eq!(after[0].1, "ROLLBACK_SUCCESSFUL");
        assert_eq!(n.running().await, n.revision(1));
        assert_eq!(calls, calls_of_a_rollback("ECS.StopServiceDeployment"));
        let details = n.rollback_details();
        assert_eq!(details["strategy"], strategy);
        assert_eq!(details["rolledBackBy"], "StopServiceDeployment");
        assert_eq!(details["serviceDeployment"], after[0].0.as_str());
        let state = n
            .stack
            .store()
            .load(&n.stack.service_key("api"))
            .await
            .unwrap();
        assert!(
            state.quarantine.contains_key(n.digest.as_str()),
            "the digest is quarantined"
        );
        let history = n
            .stack
            .store()
            .history(&n.stack.service_key("api"), 10)
            .await
            .unwrap();
        assert!(
            history
                .iter()
                .any(|r| r.action == Action::RolledBack
                    && r.reason.contains("StopServiceDeployment")),
            "{history:?}"
        );
    }
}

/// Once ECS completed the deployment, inside the guard window: a new deployment of the
/// known-good revision, which ECS runs with the service's strategy.
#[tokio::test]
async fn after_its_deployment_completed_a_native_service_is_redeployed_to_known_good() {
    let n = Native::pushed("BLUE_GREEN").await;
    n.completed().await;
    let (summary, calls) = n.alarm().await;
    assert_eq!(summary.outcome, Outcome::RolledBack, "{summary:?}");
    assert!(
        summary.services[0].reason.contains(&format!(
            "a new deployment of {} (UpdateService): no BLUE_GREEN deployment of ECS in progress to stop",
            n.revision(1)
        )),
        "{summary:?}"
    );
    let after = n.stack.service_deployments("api").await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after[0].1, "IN_PROGRESS");
    assert!(after[0].2.ends_with(&format!("/{}", n.revision(1))));
    assert_eq!(after[1].1, "SUCCESSFUL");
    // A new deployment pulls the known-good images: ECR says first that none is archived.
    let mut expected = calls_of_a_rollback("ECS.UpdateService");
    expected.insert(7, "ECR.DescribeImages".to_owned());
    assert_eq!(calls, expected);
    let details = n.rollback_details();
    assert_eq!(details["strategy"], "BLUE_GREEN");
    assert_eq!(details["rolledBackBy"], "UpdateService");
}

/// A rolling service never asks ECS for its service deployments: the redeploy is its only path.
#[tokio::test]
async fn a_rolling_service_is_redeployed_without_listing_its_deployments() {
    let n = Native::pushed("ROLLING").await;
    let (summary, calls) = n.alarm().await;
    assert_eq!(summary.outcome, Outcome::RolledBack, "{summary:?}");
    assert!(
        !summary.services[0].reason.contains("ROLLING"),
        "{summary:?}"
    );
    assert!(
        !calls.iter().any(|c| c.contains("ServiceDeployment")),
        "{calls:?}"
    );
    assert_eq!(n.running().await, n.revision(1));
    let details = n.rollback_details();
    assert_eq!(details["strategy"], "ROLLING");
    assert_eq!(details["rolledBackBy"], "UpdateService");
}

/// The approval story: a blue/green deployment waits at its pause hook; `deckhand approve`
/// lets it go on, ECS completes it, and there is nothing left to approve.
#[tokio::test]
async fn a_deployment_waiting_at_a_pause_hook_goes_on_when_approved() {
    let n = Native::pushed_with("BLUE_GREEN", true).await;
    let key = n.stack.service_key("api");
    // ECS says a hook awaits action, naming the service deployment: reported for approval.
    let (arn, _, _) = n.stack.service_deployments("api").await.remove(0);
    let waiting = n.hook_awaits("hook-1", serde_json::json!({})).await;
    assert_eq!(waiting.outcome, Outcome::Recorded, "{waiting:?}");
    assert!(
        waiting.services[0]
            .reason
            .contains("waits for approval at POST_TEST_TRAFFIC_SHIFT"),
        "{waiting:?}"
    );
    let published = n.awaiting_approval();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["serviceDeployment"], serde_json::json!(arn));
    assert!(
        published[0]["hookId"]
            .as_str()
            .is_some_and(|h| h.starts_with("ecs-pause-")),
        "{published:?}"
    );
    assert_eq!(published[0]["timeoutAction"], "ROLLBACK");
    assert!(
        n.stack.refused_calls().is_empty(),
        "{:?}",
        n.stack.refused_calls()
    );
    let approved = n.operator().approve(&key).await.unwrap();
    assert_eq!(approved.action, Action::Approved, "{approved:?}");
    assert!(
        approved.reason.contains(&format!(
            "the deployment of {}, which waited at POST_TEST_TRAFFIC_SHIFT, approved by alice: ECS goes on",
            n.revision(2)
        )),
        "{approved:?}"
    );
    let deployments = n.stack.service_deployments("api").await;
    assert_eq!(
        deployments[0].1, "IN_PROGRESS",
        "ECS goes on: {deployments:?}"
    );
    assert_eq!(n.running().await, n.revision(2));
    match n.operator().approve(&key).await {
        Err(OperatorError::NothingAwaiting(k)) => assert_eq!(k, key),
        other => panic!("a second approval: {other:?}"),
    }
    n.completed().await;
    let history = n.stack.store().history(&key, 10).await.unwrap();
    assert!(
        history.iter().any(|r| r.action == Action::Approved),
        "{history:?}"
    );
}

/// A rolling service with three pause hooks, two before ECS starts the new tasks and one
/// after: the deployment waits at each stage until every hook there is continued, and deckhand
/// says so at every step.
#[tokio::test]
async fn every_pause_hook_of_a_stage_is_answered_and_rolling_deployments_wait_too() {
    let n = Native::pushed_with_hooks(
        "ROLLING",
        &[&["PRE_SCALE_UP"], &["PRE_SCALE_UP", "POST_SCALE_UP"]],
    )
    .await;
    let key = n.stack.service_key("api");
    let (stage, hooks) = n.stack.awaiting_hooks("api").await;
    assert_eq!((stage.as_deref(), hooks.len()), (Some("PRE_SCALE_UP"), 2));
    let waiting = n
        .hook_awaits(
            "hook-2",
            serde_json::json!({"hookId": hooks[1], "lifecycleStage": "PRE_SCALE_UP"}),
        )
        .await;
    let reason = &waiting.services[0].reason;
    assert!(
        reason.contains(
            "waits for approval at PRE_SCALE_UP (2 pause hooks, every one to be answered)"
        ),
        "{reason}"
    );
    assert!(
        reason.ends_with("one more pause hook at a later stage will ask again"),
        "{reason}"
    );
    let details = n.awaiting_approval();
    assert_eq!(
        details[0]["hookId"],
        serde_json::json!(hooks[1]),
        "the hook announced"
    );
    assert_eq!(details[0]["hookIds"], serde_json::json!(hooks));
    assert_eq!(
        (
            details[0]["awaiting"].as_u64(),
            details[0]["laterPauses"].as_u64()
        ),
        (Some(2), Some(1))
    );

    let approved = n.operator().approve(&key).await.unwrap();
    assert!(
        approved.reason.contains(
            "which waited at PRE_SCALE_UP, approved by alice: 2 of its 2 pause hooks there continued (ContinueServiceDeployment CONTINUE); ECS goes on; one more pause hook at a later stage will ask again"
        ),
        "{approved:?}"
    );
    let (stage, hooks) = n.stack.awaiting_hooks("api").await;
    assert_eq!((stage.as_deref(), hooks.len()), (Some("POST_SCALE_UP"), 1));
    let approved = n.operator().approve(&key).await.unwrap();
    assert!(
        approved
            .reason
            .ends_with("which waited at POST_SCALE_UP, approved by alice: ECS goes on (ContinueServiceDeployment CONTINUE)"),
        "{approved:?}"
    );
    assert_eq!(n.stack.awaiting_hooks("api").await.1, Vec::<String>::new());
    assert_eq!(n.stack.service_deployments("api").await[0].1, "IN_PROGRESS");
    match n.operator().approve(&key).await {
        Err(OperatorError::NothingAwaiting(k)) => assert_eq!(k, key),
        other => panic!("a third approval: {other:?}"),
    }
    assert!(
        n.stack.refused_calls().is_empty(),
        "{:?}",
        n.stack.refused_calls()
    );
}

/// `deckhand reject`: ECS rolls the waiting deployment back to the revision it kept; deckhand
/// records its deployment rolled back, and quarantines nothing.
#[tokio::test]
async fn a_rejected_deployment_is_rolled_back_by_ecs_and_quarantines_nothing() {
    let n = Native::pushed_with("CANARY", true).await;
    let key = n.stack.service_key("api");
    let rejected = n.operator().reject(&key).await.unwrap();
    assert_eq!(rejected.action, Action::Rejected, "{rejected:?}");
    let deployments = n.stack.service_deployments("api").await;
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    assert_eq!(deployments[0].1, "ROLLBACK_SUCCESSFUL");
    assert_eq!(n.running().await, n.revision(1));
    let state = n.stack.store().load(&key).await.unwrap();
    let d = state.deployment.unwrap();
    assert_eq!(d.status, DeploymentStatus::RolledBack);
    assert_eq!(d.rollback.unwrap().alarm, "rejected by alice");
    assert!(state.quarantine.is_empty(), "{:?}", state.quarantine);
}

/// An alarm while the deployment waits at its pause hook rolls it back, as any alarm while a
/// traffic-shifting deployment is in progress.
#[tokio::test]
async fn an_alarm_while_a_deployment_waits_for_approval_rolls_it_back() {
    let n = Native::pushed_with("LINEAR", true).await;
    let (summary, calls) = n.alarm().await;
    assert_eq!(summary.outcome, Outcome::RolledBack, "{summary:?}");
    assert_eq!(calls, calls_of_a_rollback("ECS.StopServiceDeployment"));
    assert_eq!(
        n.stack.service_deployments("api").await[0].1,
        "ROLLBACK_SUCCESSFUL"
    );
    assert_eq!(n.running().await, n.revision(1));
    match n.operator().approve(&n.stack.service_key("api")).await {
        Err(OperatorError::NothingAwaiting(_)) => {}
        other => panic!("approving a rolled-back deployment: {other:?}"),
    }
}
