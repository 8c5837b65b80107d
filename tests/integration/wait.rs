//! `deckhand wait` as a pipeline runs it after its push: each end (completed, failed, rolled
//! back, quarantined, timed out) read from the table while the functions handle the events.

use std::time::Duration;

use deckhand::app::deploy::DeployFunction;
use deckhand::app::rollback::RollbackFunction;
use deckhand::ports::StateStore as _;
use deckhand::report::Outcome;
use deckhand_cli::{CliError, exit_status};
use serde_json::Value;

use crate::cli::deckhand_run_as;
use crate::harness::{Role, Stack};
use crate::rollback::{alarm_event, metric_alarm, utc};

struct Waiting {
    stack: Stack,
    deploy: DeployFunction,
    web: String,
    digest: String,
}

/// `web` opted in, `main-42` pushed and deployed by deckhand.
async fn deployed() -> Waiting {
    deployed_with(None).await
}

/// The same; with `early`, the service's rolling deployments complete early at that percent.
async fn deployed_with(early: Option<i32>) -> Waiting {
    let stack = Stack::new().await;
    let td = stack
        .simple_task_definition(&format!("wait-{}", stack.id), "main-41")
        .await;
    stack
        .create_service("web", &td, &[("deckhand:deploy", "prefix=main-")])
        .await;
    if let Some(percent) = early {
        stack.set_early_success("web", percent).await;
    }
    let deploy = DeployFunction::new(stack.system_ports(Role::Deploy), stack.config());
    let digest = stack.push_image("main-42").await;
    let push = stack.push_event("push-42", utc("2026-11-23T10:00:00Z"), "main-42", &digest);
    assert_eq!(
        deploy.handle(&push).await.unwrap().outcome,
        Outcome::Deployed
    );
    Waiting {
        web: stack.service_key("web").to_string(),
        stack,
        deploy,
        digest,
    }
}

impl Waiting {
    /// `deckhand wait --json` for the digest, signed as the pipeline with the template's
    /// PipelinePolicy; its output and exit status.
    async fn wait(&self, digest: &str, timeout: &str) -> (Value, Result<(), CliError>) {
        let args = [
            "wait",
            &self.web,
            "--digest",
            digest,
            "--timeout",
            timeout,
            "--interval",
            "1s",
            "--json",
        ];
        let (out, ended) = deckhand_run_as(&self.stack, Role::Pipeline, &args).await;
        (serde_json::from_str(&out).unwrap_or(Value::Null), ended)
    }

    /// ECS reports on deckhand's deployment now (the functions here run on the real clock).
    async fn ecs(&self, sample: &str, id: &str) {
        let event = self
            .stack
            .deployment_event(sample, id, "web", chrono::Utc::now());
        self.deploy.handle(&event).await.unwrap();
    }
}

/// The pipeline waits while ECS rolls out; COMPLETED ends the wait with status 0.
#[tokio::test]
async fn a_wait_ends_when_ecs_completes_the_deployment() {
    let w = deployed().await;
    let completes = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        w.ecs("ecs-deployment-completed", "done").await;
    };
    let ((out, ended), ()) = tokio::join!(w.wait(&w.digest, "60s"), completes);
    assert_eq!(exit_status(&ended), 0, "{out} {ended:?}");
    assert_eq!(out["result"], "completed");
    assert!(out["polls"].as_u64().unwrap() >= 2, "it waited: {out}");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .starts_with("ECS completed the deployment of"),
        "{out}"
    );
}

/// A service whose rolling deployments complete early: ECS's COMPLETED, while the old tasks
/// still drain, ends the pipeline's wait (what early success is for) and says so; deckhand keeps
/// the deployment in progress, guarded, until the rollout settles.
#[tokio::test]
async fn an_early_completion_ends_the_wait_while_the_rollout_still_settles() {
    let w = deployed_with(Some(50)).await;
    w.ecs("ecs-deployment-completed", "done").await;
    let state = w
        .stack
        .store()
        .load(&w.stack.service_key("web"))
        .await
        .unwrap();
    let d = state.deployment.unwrap();
    assert_eq!(
        d.status,
        deckhand::domain::state::DeploymentStatus::InProgress
    );
    assert!(d.early_completed_at.is_some(), "{d:?}");
    let (out, ended) = w.wait(&w.digest, "60s").await;
    assert_eq!(exit_status(&ended), 0, "{out} {ended:?}");
    assert!(
        out["reason"].as_str().unwrap().contains("early, at"),
        "{out}"
    );
    assert!(
        w.stack.refused_calls().is_empty(),
        "{:?}",
        w.stack.refused_calls()
    );
}

#[tokio::test]
async fn a_failed_deployment_ends_the_wait_with_status_1() {
    let w = deployed().await;
    w.ecs("ecs-deployment-failed", "failed").await;
    let (out, ended) = w.wait(&w.digest, "60s").await;
    assert!(matches!(ended, Err(CliError::DeployFailed(_))), "{ended:?}");
    assert_eq!(exit_status(&ended), 1);
    assert_eq!(out["result"], "failed");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("the digest is quarantined"),
        "{out}"
    );
}

#[tokio::test]
async fn a_rollback_and_a_quarantined_repush_end_the_wait_with_status_1() {
    let w = deployed().await;
    w.ecs("ecs-deployment-completed", "done").await;
    let arn = metric_alarm(
        &w.stack,
        &format!("wait-5xx-{}", w.stack.id),
        Some("web"),
        &[],
    )
    .await;
    let rollback = RollbackFunction::new(w.stack.system_ports(Role::Rollback), w.stack.config());
    // The real clock: the alarm fires now, inside the guard window of the deployment recorded now.
    let now = (chrono::Utc::now() + chrono::TimeDelta::seconds(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let alarm = alarm_event(&w.stack, "alarm-1", &arn, "ALARM", "OK", &now, Some("web"));
    assert_eq!(
        rollback.handle(&alarm).await.unwrap().outcome,
        Outcome::RolledBack
    );
    let (out, ended) = w.wait(&w.digest, "60s").await;
    assert_eq!(exit_status(&ended), 1, "{out}");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("was rolled back to"),
        "{out}"
    );

    // The fixed image deploys; CI then pushes the bad one again: the push is skipped as
    // quarantined, and so ends its wait, while the fixed one's wait runs on.
    let fixed = w.stack.push_image("main-43").await;
    let push = w
        .stack
        .push_event("push-43", utc("2026-11-23T11:00:00Z"), "main-43", &fixed);
    assert_eq!(
        w.deploy.handle(&push).await.unwrap().outcome,
        Outcome::Deployed
    );
    let again = w.stack.push_event(
        "push-42-again",
        utc("2026-11-23T11:05:00Z"),
        "main-42",
        &w.digest,
    );
    assert_eq!(
        w.deploy.handle(&again).await.unwrap().outcome,
        Outcome::Skipped
    );
    let (out, ended) = w.wait(&w.digest, "60s").await;
    assert_eq!(exit_status(&ended), 1, "{out}");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("is quarantined for this service"),
        "{out}"
    );
    let (fixed_out, fixed_ended) = w.wait(&fixed, "2s").await;
    assert_eq!(exit_status(&fixed_ended), 2, "{fixed_out}");
    assert!(
        fixed_out["reason"]
            .as_str()
            .unwrap()
            .contains("is in progress"),
        "{fixed_out}"
    );
}

/// A digest deckhand never handles: the wait runs out with status 2 and says where it stood.
#[tokio::test]
async fn a_wait_that_runs_out_of_time_ends_with_status_2() {
    let w = deployed().await;
    let never = w.stack.push_image("feature-x").await;
    let (out, ended) = w.wait(&never, "3s").await;
    assert!(matches!(ended, Err(CliError::TimedOut(_))), "{ended:?}");
    assert_eq!(exit_status(&ended), 2);
    assert_eq!(out["result"], "timed-out");
    assert!(
        out["reason"]
            .as_str()
            .unwrap()
            .contains("has not handled a push"),
        "{out}"
    );
    assert!(
        out["polls"].as_u64().unwrap() >= 2,
        "it polled until the timeout: {out}"
    );
    // Not a digest at all: refused before anything is read.
    let (_, bad) = w.wait("latest", "3s").await;
    assert!(matches!(bad, Err(CliError::Argument { .. })), "{bad:?}");
}
