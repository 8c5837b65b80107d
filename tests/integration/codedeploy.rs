//! `CODE_DEPLOY` services through the real SDK against the emulator's model of CodeDeploy
//! (scripts/emulator_codedeploy.py), each call signed as its role of template.yaml: a push is a
//! CodeDeploy deployment of the new revision, CodeDeploy's events close its loop, and an alarm
//! goes back through CodeDeploy.

use std::sync::Arc;

use deckhand::adapters::memory::FixedClock;
use deckhand::app::deploy::DeployFunction;
use deckhand::app::rollback::RollbackFunction;
use deckhand::domain::state::DeploymentStatus;
use deckhand::ports::StateStore as _;
use deckhand::report::{Outcome, Summary};

use crate::harness::{Role, Stack};
use crate::rollback::{alarm_event, metric_alarm, utc};

const PUSHED: &str = "2026-11-23T10:00:00Z";
const COMPLETED: &str = "2026-11-23T10:05:00Z";

/// `api` on `FAMILY:1`, deployed by CodeDeploy group `api`, pushed to `main-42` at 10:00.
pub(crate) struct ByCodeDeploy {
    pub(crate) stack: Stack,
    pub(crate) clock: Arc<FixedClock>,
    pub(crate) deploy: DeployFunction,
    pub(crate) family: String,
    pub(crate) digest: String,
    pub(crate) pushed: Summary,
}

impl ByCodeDeploy {
    /// `tagged`: the group is named by `deckhand:codedeploy` rather than found.
    pub(crate) async fn pushed(tagged: bool) -> Self {
        Self::pushed_placed(tagged, false).await
    }

    /// `placed`: the service runs on FARGATE_SPOT, platform 1.4.0, in a VPC of its own
    /// (`Stack::create_codedeploy_service_placed`).
    async fn pushed_placed(tagged: bool, placed: bool) -> Self {
        let stack = Stack::new().await;
        let clock = Arc::new(FixedClock::new(utc(PUSHED)));
        let family = format!("api-{}", stack.id);
        let td = stack.simple_task_definition(&family, "main-41").await;
        let group = format!("{}/api", stack.codedeploy_application());
        let mut tags = vec![("deckhand:deploy", "prefix=main-")];
        if tagged {
            tags.push(("deckhand:codedeploy", group.as_str()));
        }
        stack
            .create_codedeploy_service_placed("api", "api", &td, &tags, placed)
            .await;
        let digest = stack.push_image("main-42").await;
        let deploy = DeployFunction::new(stack.ports(Role::Deploy, clock.clone()), stack.config());
        let pushed = deploy
            .handle(&stack.push_event("push-42", utc(PUSHED), "main-42", &digest))
            .await
            .unwrap();
        Self {
            stack,
            clock,
            deploy,
            family,
            digest,
            pushed,
        }
    }

    pub(crate) fn revision(&self, n: u32) -> String {
        format!(
            "arn:aws:ecs:us-east-1:123456789012:task-definition/{}:{n}",
            self.family
        )
    }

    /// CodeDeploy ends its deployment with `status` and says so with `state`.
    pub(crate) async fn ended(&self, status: &str, state: &str) -> Summary {
        let id = self.stack.codedeploy_running("api").await.remove(0);
        self.stack.end_codedeploy_deployment(&id, status);
        self.clock.set(utc(COMPLETED));
        let event =
            self.stack
                .codedeploy_event(&format!("end-{id}"), "api", &id, state, utc(COMPLETED));
        self.deploy.handle(&event).await.unwrap()
    }

    /// The alarm of `api` fires at `at`: the summary and the AWS calls of the rollback.
    pub(crate) async fn alarm(&self, at: &str) -> (Summary, Vec<String>) {
        let arn = metric_alarm(&self.stack, "api-5xx", Some("api"), &[]).await;
        let (mut ports, log) = self.stack.counted_ports(Role::Rollback);
        ports.clock = self.clock.clone();
        let rollback = RollbackFunction::new(ports, self.stack.config());
        self.clock.set(utc(at));
        let event = alarm_event(&self.stack, "alarm-1", &arn, "ALARM", "OK", at, Some("api"));
        (rollback.handle(&event).await.unwrap(), log.calls())
    }

    pub(crate) async fn state(&self) -> deckhand::domain::state::ServiceState {
        let key = deckhand::domain::service::ServiceKey::new(&self.stack.cluster, "api");
        self.stack.store().load(&key).await.unwrap()
    }
}

/// CodeDeploy starts the new task set where the AppSpec says: deckhand repeats where the
/// service runs, so a FARGATE_SPOT service stays on FARGATE_SPOT, on its platform version, in its
/// subnets.
#[tokio::test]
async fn the_new_task_set_runs_where_the_service_runs() {
    let c = ByCodeDeploy::pushed_placed(false, true).await;
    assert_eq!(c.pushed.outcome, Outcome::Deployed, "{:?}", c.pushed);
    let (subnets, security_group) = crate::harness::default_network(c.stack.emulator_url());
    assert_eq!(
        c.stack.task_set_placement("api", &c.revision(2)).await,
        serde_json::json!({
            "capacityProviderStrategy": ["FARGATE_SPOT:3:0", "FARGATE:1:1"],
            "platformVersion": "1.4.0",
            "launchType": null,
            "subnets": subnets.len(),
            "securityGroups": [security_group],
            "assignPublicIp": "DISABLED",
        })
    );
    assert!(
        c.stack.refused_calls().is_empty(),
        "{:?}",
        c.stack.refused_calls()
    );
}

#[tokio::test]
async fn a_push_is_a_codedeploy_deployment_of_the_new_revision_and_success_completes_it() {
    let c = ByCodeDeploy::pushed(false).await;
    assert_eq!(c.pushed.outcome, Outcome::Deployed, "{:?}", c.pushed);
    let reason = &c.pushed.services[0].reason;
    assert!(
        reason.contains(&format!(
            "through CodeDeploy ({}/api)",
            c.stack.codedeploy_application()
        )),
        "{reason}"
    );
    // CodeDeploy runs the new revision in a task set beside the primary one, which still
    // names the old revision.
    let running = c.stack.codedeploy_running("api").await;
    assert_eq!(running.len(), 1);
    assert!(running[0].starts_with("d-"), "{running:?}");
    assert!(c.stack.task_sets("api").await.contains(&c.revision(2)));
    assert_eq!(c.stack.running_task_definition("api").await, c.revision(1));
    assert_eq!(
        c.state()
            .await
            .deployment
            .unwrap()
            .ecs_deployment_id
            .as_deref(),
        Some(running[0].as_str())
    );

    let done = c.ended("Succeeded", "SUCCESS").await;
    assert_eq!(done.outcome, Outcome::Completed, "{done:?}");
    assert_eq!(c.stack.running_task_definition("api").await, c.revision(2));
    let registered = c.state().await.deployment.unwrap().to;
    assert_eq!(registered, c.revision(2));
    assert!(
        c.stack.refused_calls().is_empty(),
        "{:?}",
        c.stack.refused_calls()
    );
}

#[tokio::test]
async fn a_failed_codedeploy_deployment_quarantines_the_digest() {
    let c = ByCodeDeploy::pushed(false).await;
    let failed = c.ended("Failed", "FAILURE").await;
    assert_eq!(failed.outcome, Outcome::Failed, "{failed:?}");
    assert!(failed.services[0].reason.contains("FAILURE"), "{failed:?}");
    assert_eq!(c.stack.running_task_definition("api").await, c.revision(1));
    assert!(
        c.state()
            .await
            .is_quarantined(&c.digest.parse().unwrap())
            .is_some()
    );
}

/// The group named by `deckhand:codedeploy`; an alarm while CodeDeploy deploys stops the
/// deployment with CodeDeploy's own rollback: no new deployment, the new task set gone.
#[tokio::test]
async fn an_alarm_while_codedeploy_deploys_stops_it_with_its_own_rollback() {
    let c = ByCodeDeploy::pushed(true).await;
    assert_eq!(c.pushed.outcome, Outcome::Deployed, "{:?}", c.pushed);
    let (s, calls) = c.alarm("2026-11-23T10:03:00Z").await;
    // The group named by its tag costs one GetDeploymentGroup; then ListDeployments finds the
    // deployment in progress and StopDeployment ends it.
    assert_eq!(
        calls,
        [
            "DynamoDB.Query",
            "CloudWatch.DescribeAlarms",
            "CloudWatch.ListTagsForResource",
            "Resource Groups Tagging API.GetResources",
            "ECS.DescribeServices",
            "DynamoDB.UpdateItem",
            "CodeDeploy.GetDeploymentGroup",
            "CodeDeploy.ListDeployments",
            "CodeDeploy.StopDeployment",
            "DynamoDB.TransactWriteItems",
            "SNS.Publish",
        ]
    );
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    let reason = &s.services[0].reason;
    assert!(
        reason.contains("(StopDeployment with auto-rollback)"),
        "{reason}"
    );
    assert!(c.stack.codedeploy_running("api").await.is_empty());
    assert_eq!(
        c.stack.codedeploy_deployments("api").await.len(),
        1,
        "no new deployment"
    );
    assert_eq!(c.stack.task_sets("api").await, Vec::<String>::new());
    assert_eq!(c.stack.running_task_definition("api").await, c.revision(1));
    let state = c.state().await;
    assert_eq!(
        state.deployment.as_ref().unwrap().status,
        DeploymentStatus::RolledBack
    );
    assert!(state.is_quarantined(&c.digest.parse().unwrap()).is_some());
    // CodeDeploy's STOP event that follows changes nothing.
    let id = c.stack.codedeploy_deployments("api").await.remove(0);
    let stop = c
        .stack
        .codedeploy_event("stop-1", "api", &id, "STOP", utc("2026-11-23T10:04:00Z"));
    let after = c.deploy.handle(&stop).await.unwrap();
    assert_ne!(after.outcome, Outcome::Failed, "{after:?}");
    assert!(
        c.stack.refused_calls().is_empty(),
        "{:?}",
        c.stack.refused_calls()
    );
}

/// After CodeDeploy completed, an alarm inside the guard window is a new CodeDeploy deployment
/// of the known-good revision.
#[tokio::test]
async fn an_alarm_after_codedeploy_completed_deploys_the_known_good_revision() {
    let c = ByCodeDeploy::pushed(false).await;
    assert_eq!(
        c.ended("Succeeded", "SUCCESS").await.outcome,
        Outcome::Completed
    );
    let (s, calls) = c.alarm("2026-11-23T10:13:00Z").await;
    // Without the tag the group is searched for (every ECS application of the account, here
    // those of the other tests too); no ECS deployment is asked for.
    let count = |op: &str| calls.iter().filter(|c| *c == op).count();
    assert_eq!(count("CodeDeploy.ListApplications"), 1, "{calls:?}");
    assert_eq!(count("CodeDeploy.CreateDeployment"), 1, "{calls:?}");
    assert_eq!(count("CodeDeploy.StopDeployment"), 0, "{calls:?}");
    assert_eq!(count("ECS.UpdateService"), 0, "{calls:?}");
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    let reason = &s.services[0].reason;
    assert!(
        reason.contains(&format!(
            "a new CodeDeploy deployment of {}:1 (CreateDeployment)",
            c.family
        )),
        "{reason}"
    );
    assert_eq!(c.stack.codedeploy_running("api").await.len(), 1);
    assert!(c.stack.task_sets("api").await.contains(&c.revision(1)));
    let id = c.stack.codedeploy_running("api").await.remove(0);
    c.stack.end_codedeploy_deployment(&id, "Succeeded");
    assert_eq!(c.stack.running_task_definition("api").await, c.revision(1));
    assert!(
        c.stack.refused_calls().is_empty(),
        "{:?}",
        c.stack.refused_calls()
    );
}

/// `deckhand rollback`, signed as OperatorPolicy, takes CodeDeploy's own rollback of the
/// deployment in progress, as the function does.
#[tokio::test]
async fn a_manual_rollback_of_a_codedeploy_service_stops_its_deployment() {
    let c = ByCodeDeploy::pushed(true).await;
    let key = deckhand::domain::service::ServiceKey::new(&c.stack.cluster, "api");
    c.clock.set(utc("2026-11-23T10:02:00Z"));
    let rollback = RollbackFunction::new(
        c.stack.ports(Role::Operator, c.clock.clone()),
        c.stack.config(),
    );
    let s = rollback.manual(&key, None, "alice").await.unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert!(
        s.services[0]
            .reason
            .contains("(StopDeployment with auto-rollback)"),
        "{s:?}"
    );
    assert!(c.stack.codedeploy_running("api").await.is_empty());
    assert_eq!(c.stack.codedeploy_deployments("api").await.len(), 1);
    assert_eq!(c.stack.running_task_definition("api").await, c.revision(1));
    assert!(
        c.stack.refused_calls().is_empty(),
        "{:?}",
        c.stack.refused_calls()
    );
}
