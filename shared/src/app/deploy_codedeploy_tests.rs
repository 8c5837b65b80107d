//! A `CODE_DEPLOY` service in memory: the push becomes a CodeDeploy deployment through the
//! group that deploys the service, and CodeDeploy's events (as AWS sends them) close its loop.

use super::*;
use crate::domain::codedeploy::TAG_CODEDEPLOY;
use crate::domain::strategy::DeploymentController;
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

/// The fixture's push with another id, digest and time.
fn push_of(id: &str, digest: char, at: &str) -> Value {
    let mut event = fixtures::aws("ecr-push-image");
    event["id"] = json!(id);
    event["time"] = json!(at);
    event["detail"]["image-digest"] = json!(format!("sha256:{}", digest.to_string().repeat(64)));
    event["detail"]["image-tag"] = json!(format!("main-{id}"));
    event
}

/// A push while a pipeline's deployment holds the group: held with its revision (not retried,
/// not lost) and said once; the CodeDeploy event of that deployment's end deploys it.
#[tokio::test]
async fn a_push_meeting_a_busy_group_is_held_and_deploys_when_the_group_is_free() {
    let w = codedeploy_world(&[]);
    w.codedeploy.add_group("demo", "web", &[web()]);
    let group = crate::domain::codedeploy::DeploymentGroup::new("demo", "web");
    let running = w.ecs.service(&web()).unwrap().task_definition;
    let theirs = w.codedeploy.start_elsewhere(&group, Some(&running));
    let s = send(&w, &fixtures::aws("ecr-push-image")).await;
    assert_eq!(s.outcome, Outcome::Held, "{s:?}");
    assert!(
        s.services[0].reason.starts_with(&format!(
            "the CodeDeploy deployment group demo/web runs deployment {theirs} and takes one at a time"
        )),
        "{s:?}"
    );
    let state = w.store.load(&web()).await.unwrap();
    let held = state.held.clone().expect("held");
    assert_eq!(held.behind.as_deref(), Some(theirs.as_str()));
    let registered = state.registered.clone().expect("its revision kept");
    assert_eq!(kinds(&w), ["deploy.held"]);
    let revisions = w.ecs.revisions();

    // A reconcile while the group is still busy: held again, quietly, no second revision.
    let again = w.function.release_held(None).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].action, Action::Held, "{again:?}");
    assert_eq!(kinds(&w), ["deploy.held"]);
    assert_eq!(w.ecs.revisions(), revisions);
    assert_eq!(w.store.held().await.unwrap(), [web()]);

    // The pipeline's deployment ends: its event frees the group and the push deploys.
    w.codedeploy.end(&theirs, "Succeeded");
    let done = send(
        &w,
        &codedeploy_event("codedeploy-deployment-success", &theirs),
    )
    .await;
    assert_eq!(done.outcome, Outcome::Deployed, "{done:?}");
    let deployments = w.codedeploy.deployments();
    assert_eq!(deployments.len(), 2);
    let spec: Value = serde_json::from_str(&deployments[1].appspec).unwrap();
    assert_eq!(
        spec["Resources"][0]["TargetService"]["Properties"]["TaskDefinition"],
        json!(registered.task_definition),
        "the revision registered when the push was held"
    );
    assert_eq!(w.ecs.revisions(), revisions);
    let state = w.store.load(&web()).await.unwrap();
    assert!(state.held.is_none(), "{state:?}");
    assert_eq!(
        state.deployment.unwrap().ecs_deployment_id,
        Some(deployments[1].id.clone())
    );
    assert!(w.store.held().await.unwrap().is_empty());
    assert_eq!(kinds(&w), ["deploy.held", "deploy.started"]);
}

/// The newest held push is the one that deploys, by the reconcile when the event of the group's
/// end never came; the older one it replaced is skipped as older.
#[tokio::test]
async fn a_reconcile_deploys_the_newest_held_push() {
    let w = codedeploy_world(&[]);
    w.codedeploy.add_group("demo", "web", &[web()]);
    let group = crate::domain::codedeploy::DeploymentGroup::new("demo", "web");
    let theirs = w.codedeploy.start_elsewhere(&group, None);
    let first = send(&w, &push_of("p1", 'b', "2026-11-23T10:00:00Z")).await;
    let second = send(&w, &push_of("p2", 'c', "2026-11-23T10:01:00Z")).await;
    assert_eq!(
        (first.outcome, second.outcome),
        (Outcome::Held, Outcome::Held)
    );
    let state = w.store.load(&web()).await.unwrap();
    assert_eq!(state.held.unwrap().push.event_id, "p2");
    w.codedeploy.end(&theirs, "Failed");
    let released = w.function.release_held(None).await;
    assert_eq!(released.len(), 1, "{released:?}");
    assert_eq!(released[0].action, Action::Deployed, "{released:?}");
    assert_eq!(
        released[0].digest.as_deref(),
        Some(format!("sha256:{}", "c".repeat(64)).as_str())
    );
    assert!(w.function.release_held(None).await.is_empty());
    assert_eq!(kinds(&w), ["deploy.held", "deploy.held", "deploy.started"]);
}
