//! A `CODE_DEPLOY` service rolled back through CodeDeploy: its own rollback of deckhand's
//! deployment while it runs (`StopDeployment`), else a new deployment of the known-good revision.

use super::*;
use crate::domain::fleet::DeploymentController;

impl World {
    /// `prod/api` deployed by CodeDeploy (group `shop/api`), container `api` on port 80.
    fn codedeploy_api(&self) -> ServiceKey {
        let api = self.service("api", &[]);
        self.ecs
            .set_controller(&api, DeploymentController::CodeDeploy);
        self.ecs.set_load_balanced(&api, "api", 80);
        self.codedeploy
            .add_group("shop", "api", std::slice::from_ref(&api));
        api
    }

    async fn codedeploy_succeeded(&self, deployment_id: &str, at: &str) {
        self.clock.set(utc(at));
        let event = json!({"version": "0", "id": format!("cd-{deployment_id}"),
            "detail-type": "CodeDeploy Deployment State-change Notification", "source": "aws.codedeploy",
            "account": "123456789012", "time": at, "region": "eu-west-1", "resources": [],
            "detail": {"application": "shop", "deploymentGroup": "api", "deploymentId": deployment_id,
                       "state": "SUCCESS", "region": "eu-west-1", "instanceGroupId": "x"}});
        let s = self.deploy.handle(&event).await.unwrap();
        assert_eq!(s.outcome, Outcome::Completed, "{s:?}");
    }
}

#[tokio::test]
async fn an_alarm_while_codedeploy_deploys_stops_it_with_its_own_rollback() {
    let w = world();
    let api = w.codedeploy_api();
    assert_eq!(
        w.push("p1", "api", 'b', START).await.outcome,
        Outcome::Deployed
    );
    // CodeDeploy runs the new revision in a task set beside the primary one.
    let to = w.store.load(&api).await.unwrap().deployment.unwrap().to;
    let from = w.ecs.service(&api).unwrap().task_definition;
    w.ecs.set_task_sets(&api, &[&from, &to]);
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:03:00Z")
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert!(
        s.services[0]
            .reason
            .contains("CodeDeploy's own rollback of its deployment d-MEM000001 in progress (StopDeployment with auto-rollback), the traffic back on api:1"),
        "{s:?}"
    );
    let deployments = w.codedeploy.deployments();
    assert_eq!(deployments.len(), 1, "no new deployment");
    assert_eq!(deployments[0].status, "Stopped");
    assert!(deployments[0].stopped_with_rollback);
    assert_eq!(w.ecs.calls("UpdateService"), 0);
    let state = w.store.load(&api).await.unwrap();
    assert_eq!(
        state.deployment.as_ref().unwrap().status,
        DeploymentStatus::RolledBack
    );
    let bad: crate::domain::image::Digest = digest('b').parse().unwrap();
    assert!(state.is_quarantined(&bad).is_some(), "quarantined");
}

#[tokio::test]
async fn an_alarm_after_codedeploy_completed_deploys_the_known_good_revision() {
    let w = world();
    let api = w.codedeploy_api();
    w.push("p1", "api", 'b', START).await;
    let id = w.codedeploy.deployments()[0].id.clone();
    w.codedeploy.end(&id, "Succeeded");
    // CodeDeploy's new task set became the primary one.
    let to = w.store.load(&api).await.unwrap().deployment.unwrap().to;
    w.ecs.set_primary_task_set(&api, &to);
    w.codedeploy_succeeded(&id, "2026-11-23T10:05:00Z").await;
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z")
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert!(
        s.services[0].reason.contains(
            "a new CodeDeploy deployment of api:1 (CreateDeployment): no CodeDeploy deployment in progress to stop"
        ),
        "{s:?}"
    );
    let deployments = w.codedeploy.deployments();
    assert_eq!(deployments.len(), 2);
    let spec: Value = serde_json::from_str(&deployments[1].appspec).unwrap();
    let target = &spec["Resources"][0]["TargetService"]["Properties"]["TaskDefinition"];
    assert_eq!(target.as_str().map(revision_name), Some("api:1"));
    assert_eq!(w.ecs.calls("UpdateService"), 0);
    assert_eq!(w.codedeploy.deployments()[1].status, "InProgress");
}
