//! A `CODE_DEPLOY` service in memory: the push becomes a CodeDeploy deployment through the
//! group that deploys the service, and CodeDeploy's events (as AWS sends them) close its loop.

use super::*;
use crate::domain::codedeploy::TAG_CODEDEPLOY;
use crate::domain::fleet::DeploymentController;
use crate::fixtures;

const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const IMAGE: &str = "sha256:7fdcc95c288da93aab630fc3791d8d8edf8edb18ef54a0443a6ebdb908e55617";

/// `demo/web` deployed by CodeDeploy, its container `web` behind a load balancer on 8080.
fn codedeploy_world(tags: &[(&str, &str)]) -> World {
    let w = world_with(config(false));
    let td = w
        .ecs
        .add_task_definition("web", &[("web", &format!("{REGISTRY}/web:main-1"))]);
    let mut all = vec![("deckhand:deploy", "any")];
    all.extend_from_slice(tags);
    w.ecs.add_service(&web(), &td, &all);
    w.ecs
        .set_controller(&web(), DeploymentController::CodeDeploy);
    w.ecs.set_load_balanced(&web(), "web", 8080);
    w.clock
        .set(Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 30).unwrap());
    w
}

fn codedeploy_event(name: &str, deployment_id: &str) -> Value {
    let mut event = fixtures::aws(name);
    event["detail"]["deploymentId"] = json!(deployment_id);
    event["id"] = json!(format!("{name}-{deployment_id}"));
    event
}

#[tokio::test]
async fn a_push_becomes_a_codedeploy_deployment_of_the_new_revision() {
    let w = codedeploy_world(&[]);
    w.codedeploy
        .add_group("demo", "api", &[ServiceKey::new("demo", "api")]);
    w.codedeploy.add_group("demo", "web", &[web()]);
    let s = send(&w, &fixtures::aws("ecr-push-image")).await;
    assert_eq!(s.outcome, Outcome::Deployed, "{s:?}");
    assert!(
        s.services[0]
            .reason
            .contains("through CodeDeploy (demo/web)"),
        "{s:?}"
    );
    assert_eq!(w.ecs.calls("UpdateService"), 0);
    let created = w.codedeploy.deployments();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].group.to_string(), "demo/web");
    let spec: Value = serde_json::from_str(&created[0].appspec).unwrap();
    let properties = &spec["Resources"][0]["TargetService"]["Properties"];
    let registered = w.store.load(&web()).await.unwrap().deployment.unwrap();
    assert_eq!(properties["TaskDefinition"], json!(registered.to));
    assert_eq!(properties["LoadBalancerInfo"]["ContainerPort"], 8080);
    assert_eq!(
        registered.ecs_deployment_id.as_deref(),
        Some(created[0].id.as_str())
    );
    let image = &w.ecs.task_definition(&registered.to).unwrap().containers[0].image;
    assert_eq!(image, &format!("{REGISTRY}/web@{IMAGE}"));

    let done = send(
        &w,
        &codedeploy_event("codedeploy-deployment-success", &created[0].id),
    )
    .await;
    assert_eq!(done.outcome, Outcome::Completed, "{done:?}");
    let state = w.store.load(&web()).await.unwrap();
    assert_eq!(
        state.deployment.unwrap().guard_until,
        Some(Utc.with_ymd_and_hms(2026, 11, 23, 10, 35, 0).unwrap())
    );
}

#[tokio::test]
async fn a_failed_codedeploy_deployment_quarantines_the_digest() {
    let w = codedeploy_world(&[(TAG_CODEDEPLOY, "demo/web")]);
    w.codedeploy.add_group("demo", "web", &[web()]);
    send(&w, &fixtures::aws("ecr-push-image")).await;
    let id = w.codedeploy.deployments()[0].id.clone();
    // Another deployment's events are not deckhand's.
    let other = send(
        &w,
        &codedeploy_event("codedeploy-deployment-failure", "d-OTHER"),
    )
    .await;
    assert_ne!(other.outcome, Outcome::Failed, "{other:?}");
    let failed = send(&w, &codedeploy_event("codedeploy-deployment-failure", &id)).await;
    assert_eq!(failed.outcome, Outcome::Failed, "{failed:?}");
    assert!(failed.services[0].reason.contains("FAILURE"), "{failed:?}");
    let state = w.store.load(&web()).await.unwrap();
    assert!(state.is_quarantined(&IMAGE.parse().unwrap()).is_some());
    assert_eq!(kinds(&w), vec!["deploy.started", "deploy.failed"]);
}

#[tokio::test]
async fn a_service_no_group_deploys_is_reported_before_anything_is_registered() {
    for (tags, group_of, expected) in [
        (
            vec![],
            "api",
            "no CodeDeploy deployment group names demo/web",
        ),
        (
            vec![(TAG_CODEDEPLOY, "demo/api")],
            "api",
            "deploys demo/api, not demo/web",
        ),
        (vec![(TAG_CODEDEPLOY, "demo")], "web", "APPLICATION/GROUP"),
    ] {
        let w = codedeploy_world(&tags);
        let deployed = ServiceKey::new("demo", group_of);
        w.codedeploy.add_group("demo", group_of, &[deployed]);
        let s = send(&w, &fixtures::aws("ecr-push-image")).await;
        assert_eq!(s.outcome, Outcome::Invalid, "{s:?}");
        assert!(s.services[0].reason.contains(expected), "{s:?}");
        assert_eq!(w.ecs.calls("RegisterTaskDefinition"), 0);
        assert!(w.codedeploy.deployments().is_empty());
        assert_eq!(kinds(&w), vec!["config.invalid"]);
    }
}

#[tokio::test]
async fn codedeploy_states_that_end_nothing_are_ignored() {
    let w = codedeploy_world(&[]);
    w.codedeploy.add_group("demo", "web", &[web()]);
    send(&w, &fixtures::aws("ecr-push-image")).await;
    let mut start = fixtures::aws("codedeploy-deployment-success");
    start["detail"]["state"] = json!("START");
    let s = send(&w, &start).await;
    assert_eq!(s.outcome, Outcome::Ignored, "{s:?}");
    let state = w.store.load(&web()).await.unwrap();
    assert_eq!(
        state.deployment.unwrap().status,
        crate::domain::state::DeploymentStatus::InProgress
    );
}
