//! A trial for one service beside a live one, in one stack: `deckhand:dry-run` = `on` rehearses
//! the service's deploys while its pipeline still deploys it, and `deckhand report --trial`
//! shows what deckhand would have done beside what happened.

use chrono::{TimeDelta, Utc};
use deckhand::app::deploy::DeployFunction;
use deckhand::ports::SystemClock;
use deckhand::report::{Action, Outcome};
use std::sync::Arc;

use crate::cli::{deckhand, deckhand_json};
use crate::harness::{Role, Stack};

#[tokio::test]
async fn a_service_on_trial_is_rehearsed_beside_a_live_one_and_the_report_shows_both() {
    let stack = Stack::new().await;
    let live_td = stack
        .simple_task_definition(&format!("live-{}", stack.id), "main-1")
        .await;
    let trial_td = stack
        .simple_task_definition(&format!("trial-{}", stack.id), "main-1")
        .await;
    stack
        .create_service("live", &live_td, &[("deckhand:deploy", "any")])
        .await;
    stack
        .create_service(
            "trial",
            &trial_td,
            &[("deckhand:deploy", "any"), ("deckhand:dry-run", "on")],
        )
        .await;
    let deploy = DeployFunction::new(
        stack.ports(Role::Deploy, Arc::new(SystemClock)),
        stack.config(),
    );

    let digest = stack.push_image("main-2").await;
    let pushed_at = Utc::now() - TimeDelta::minutes(10);
    let summary = deploy
        .handle(&stack.push_event("push-2", pushed_at, "main-2", &digest))
        .await
        .unwrap();
    let mut actions: Vec<(String, Action)> = summary
        .services
        .iter()
        .map(|s| (s.service.clone(), s.action))
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            (stack.service_key("live").to_string(), Action::Deployed),
            (stack.service_key("trial").to_string(), Action::WouldDeploy)
        ],
        "{summary:?}"
    );
    assert_ne!(
        stack.running_task_definition("live").await,
        live_td,
        "live moved"
    );
    assert_eq!(
        stack.running_task_definition("trial").await,
        trial_td,
        "the trial's service is left to its pipeline"
    );

    // Its pipeline deploys the same image, and ECS reports it completed.
    let pipeline_td = stack
        .web_task_definition(&format!("trial-{}", stack.id), &format!("@{digest}"))
        .await;
    stack
        .ecs
        .update_service()
        .cluster(&stack.cluster)
        .service("trial")
        .task_definition(&pipeline_td)
        .send()
        .await
        .expect("the pipeline's update");
    let completed = stack.deployment_event(
        "ecs-deployment-completed",
        "pipeline-done",
        "trial",
        Utc::now(),
    );
    let followed = deploy.handle(&completed).await.unwrap();
    assert_eq!(followed.outcome, Outcome::Completed, "{followed:?}");

    let report = deckhand_json(&stack, &["report", "--trial", "--since", "1d"]).await;
    let row = |name: &str| {
        report["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["service"] == stack.service_key(name).to_string())
            .cloned()
            .unwrap()
    };
    let trial = row("trial");
    assert_eq!(trial["wouldDeploy"], 1, "{report}");
    assert_eq!(trial["deployments"], 0, "{report}");
    assert_eq!(trial["deploymentsCompleted"], 1, "{report}");
    let events: Vec<&str> = trial["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"would deploy"), "{report}");
    assert!(
        events.iter().any(|e| e.ends_with("completed")),
        "the pipeline's deployment it followed: {report}"
    );
    let live = row("live");
    assert_eq!(
        (live["deployments"].as_u64(), live["wouldDeploy"].as_u64()),
        (Some(1), Some(0)),
        "{report}"
    );

    let screen = deckhand(&stack, &["report", "--trial", "--since", "1d"])
        .await
        .unwrap();
    assert!(screen.contains("would deploy 1"), "{screen}");
    assert!(screen.contains("ECS deployments: 1 completed"), "{screen}");
    eprintln!("{screen}");
}
