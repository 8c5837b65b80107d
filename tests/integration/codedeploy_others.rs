//! CodeDeploy deployments deckhand did not start, in the group of a `CODE_DEPLOY` service: a
//! pipeline's, and CodeDeploy's own rollback (scripts/emulator_codedeploy.py). The group runs one
//! deployment at a time: a push waits for it, an alarm does what the deployment calls for.

use std::sync::Arc;

use deckhand::adapters::memory::FixedClock;
use deckhand::app::deploy::DeployFunction;
use deckhand::report::Outcome;
use serde_json::json;

use crate::codedeploy::ByCodeDeploy;
use crate::harness::{Role, Stack};
use crate::rollback::utc;

const PUSHED: &str = "2026-11-23T10:00:00Z";

/// `api` on `FAMILY:1`, whose group runs the pipeline's deployment of `FAMILY:1` when `main-42`
/// is pushed at 10:00: the push's summary, the function and the pipeline's deployment.
async fn pushed_behind_the_pipeline() -> (Stack, Arc<FixedClock>, DeployFunction, Outcome, String) {
    let stack = Stack::new().await;
    let clock = Arc::new(FixedClock::new(utc(PUSHED)));
    let td = stack
        .simple_task_definition(&format!("api-{}", stack.id), "main-41")
        .await;
    stack
        .create_codedeploy_service("api", "api", &td, &[("deckhand:deploy", "prefix=main-")])
        .await;
    let theirs = stack.deploy_elsewhere("api", &td).await;
    let digest = stack.push_image("main-42").await;
    let deploy = DeployFunction::new(stack.ports(Role::Deploy, clock.clone()), stack.config());
    let held = deploy
        .handle(&stack.push_event("push-42", utc(PUSHED), "main-42", &digest))
        .await
        .unwrap();
    assert!(
        held.services[0]
            .reason
            .contains(&format!("runs deployment {theirs}")),
        "{held:?}"
    );
    let announced: Vec<_> = stack
        .notifications()
        .into_iter()
        .filter(|(_, b, _)| b["kind"] == "deploy.held")
        .map(|(_, b, _)| b["details"]["behind"].clone())
        .collect();
    assert_eq!(announced, [json!(theirs)]);
    (stack, clock, deploy, held.outcome, theirs)
}

#[tokio::test]
async fn a_push_behind_the_pipelines_deployment_deploys_at_its_end() {
    let (stack, clock, deploy, outcome, theirs) = pushed_behind_the_pipeline().await;
    assert_eq!(outcome, Outcome::Held);
    assert_eq!(
        stack.codedeploy_running("api").await,
        std::slice::from_ref(&theirs)
    );
    stack.end_codedeploy_deployment(&theirs, "Succeeded");
    clock.set(utc("2026-11-23T10:20:00Z"));
    let event = stack.codedeploy_event(
        "end-theirs",
        "api",
        &theirs,
        "SUCCESS",
        utc("2026-11-23T10:20:00Z"),
    );
    let done = deploy.handle(&event).await.unwrap();
    assert_eq!(done.outcome, Outcome::Deployed, "{done:?}");
    let ours = stack.codedeploy_running("api").await;
    assert_eq!(ours.len(), 1);
    assert_ne!(ours[0], theirs);
    assert!(
        stack
            .task_sets("api")
            .await
            .iter()
            .any(|t| t.ends_with(&format!("api-{}:2", stack.id))),
        "{:?}",
        stack.task_sets("api").await
    );
    assert!(
        stack.refused_calls().is_empty(),
        "{:?}",
        stack.refused_calls()
    );
}

/// The pipeline's deployment ended and its event never came: the deploy function's round of
/// held pushes, on its schedule, deploys the held push.
#[tokio::test]
async fn the_round_deploys_the_push_held_behind_a_deployment_whose_end_was_not_heard() {
    let (stack, clock, _, _, theirs) = pushed_behind_the_pipeline().await;
    stack.end_codedeploy_deployment(&theirs, "Failed");
    clock.set(utc("2026-11-23T10:30:00Z"));
    let deploy = DeployFunction::new(stack.ports(Role::Deploy, clock.clone()), stack.config());
    let s = deploy
        .handle(&json!({"action": "release-held"}))
        .await
        .unwrap();
    assert!(
        s.services
            .iter()
            .any(|r| r.service.ends_with("/api") && r.action == deckhand::report::Action::Deployed),
        "{s:?}"
    );
    assert_eq!(stack.codedeploy_running("api").await.len(), 1);
    assert!(
        stack.refused_calls().is_empty(),
        "{:?}",
        stack.refused_calls()
    );
}

/// CodeDeploy's own rollback of deckhand's deployment holds the group when the alarm fires: it
/// takes the service back already; nothing is stopped or created.
#[tokio::test]
async fn an_alarm_while_codedeploy_rolls_our_deployment_back_adds_nothing() {
    let c = ByCodeDeploy::pushed(true).await;
    let ours = c.stack.codedeploy_running("api").await.remove(0);
    let theirs = c.stack.fail_with_codedeploy_rollback(&ours);
    let (s, calls) = c.alarm("2026-11-23T10:03:00Z").await;
    let count = |op: &str| calls.iter().filter(|c| *c == op).count();
    assert_eq!(
        (
            count("CodeDeploy.StopDeployment"),
            count("CodeDeploy.CreateDeployment")
        ),
        (0, 0),
        "{calls:?}"
    );
    assert_eq!(count("CodeDeploy.GetDeployment"), 1, "{calls:?}");
    let reason = &s.services[0].reason;
    assert!(
        reason.contains(&format!(
            "not rolled back: CodeDeploy's own rollback deployment {theirs} (of {ours}) takes the service back"
        )),
        "{s:?}"
    );
    assert_eq!(c.stack.codedeploy_running("api").await, [theirs]);
    assert!(
        c.stack.refused_calls().is_empty(),
        "{:?}",
        c.stack.refused_calls()
    );
}

/// The pipeline deploys the revision an alarm is about: CodeDeploy's rollback of that
/// deployment, with StopDeployment.
#[tokio::test]
async fn an_alarm_stops_the_pipelines_deployment_of_the_bad_revision() {
    let c = ByCodeDeploy::pushed(true).await;
    let ours = c.stack.codedeploy_running("api").await.remove(0);
    c.ended("Succeeded", "SUCCESS").await;
    let theirs = c.stack.deploy_elsewhere("api", &c.revision(2)).await;
    let (s, calls) = c.alarm("2026-11-23T10:13:00Z").await;
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert!(
        calls.contains(&"CodeDeploy.StopDeployment".to_owned()),
        "{calls:?}"
    );
    assert!(
        s.services[0].reason.contains(&format!(
            "CodeDeploy's own rollback of {theirs}, a deployment deckhand did not start that deploys the bad revision"
        )),
        "{s:?}"
    );
    assert!(c.stack.codedeploy_running("api").await.is_empty());
    assert_ne!(ours, theirs);
    assert!(
        c.stack.refused_calls().is_empty(),
        "{:?}",
        c.stack.refused_calls()
    );
}
