//! A `CODE_DEPLOY` service rolled back through CodeDeploy: its own rollback of deckhand's
//! deployment while it runs (`StopDeployment`), else a new deployment of the known-good revision.

use super::*;
use crate::domain::strategy::DeploymentController;

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

impl World {
    /// `prod/api` on CodeDeploy, pushed to digest `b` (`api:2`), CodeDeploy's deployment
    /// succeeded at 10:05: the guard window is open. Returns the service and `api:2`'s ARN.
    async fn codedeploy_completed(&self) -> (ServiceKey, String) {
        let api = self.codedeploy_api();
        self.push("p1", "api", 'b', START).await;
        let id = self.codedeploy.deployments()[0].id.clone();
        self.codedeploy.end(&id, "Succeeded");
        let to = self.store.load(&api).await.unwrap().deployment.unwrap().to;
        self.ecs.set_primary_task_set(&api, &to);
        self.codedeploy_succeeded(&id, "2026-11-23T10:05:00Z").await;
        (api, to)
    }
}

/// A pipeline's deployment of the bad revision holds the group: stopping it with CodeDeploy's
/// rollback takes the service off the bad revision; no deployment of deckhand's own is tried.
#[tokio::test]
async fn someone_elses_deployment_of_the_bad_revision_is_stopped_with_its_rollback() {
    let w = world();
    let (_, bad) = w.codedeploy_completed().await;
    let group = crate::domain::codedeploy::DeploymentGroup::new("shop", "api");
    let theirs = w.codedeploy.start_elsewhere(&group, Some(&bad));
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z")
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert!(
        s.services[0].reason.contains(&format!(
            "CodeDeploy's own rollback of {theirs}, a deployment deckhand did not start that deploys the bad revision"
        )),
        "{s:?}"
    );
    let deployments = w.codedeploy.deployments();
    assert_eq!(deployments.len(), 2, "no deployment of deckhand's own");
    assert!(deployments[1].stopped_with_rollback, "{deployments:?}");
    let started = w
        .notifier
        .published()
        .into_iter()
        .find(|n| n.kind == Kind::RollbackStarted)
        .unwrap();
    assert_eq!(started.details["codeDeployDeployment"], json!(theirs));
}

/// CodeDeploy's own rollback of deckhand's deployment holds the group: it takes the service
/// back already, so nothing more is done and nothing is retried.
#[tokio::test]
async fn codedeploys_own_rollback_of_our_deployment_makes_ours_moot() {
    let w = world();
    let api = w.codedeploy_api();
    w.push("p1", "api", 'b', START).await;
    let ours = w.codedeploy.deployments()[0].id.clone();
    let from = w.ecs.service(&api).unwrap().task_definition;
    let to = w.store.load(&api).await.unwrap().deployment.unwrap().to;
    // The new revision still runs in its task set while CodeDeploy rolls back.
    w.ecs.set_task_sets(&api, &[&from, &to]);
    let theirs = w.codedeploy.roll_back_elsewhere(&ours, &from);
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:03:00Z")
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::Skipped, "{s:?}");
    assert!(
        s.services[0].reason.contains(&format!(
            "not rolled back: CodeDeploy's own rollback deployment {theirs} (of {ours}) takes the service back from api:2 already"
        )),
        "{s:?}"
    );
    assert_eq!(w.codedeploy.deployments().len(), 2);
    assert!(!w.codedeploy.deployments()[1].stopped_with_rollback);
    assert_eq!(w.kinds(), ["rollback.skipped"]);
    let skipped = &w.notifier.published()[w.notifier.published().len() - 1];
    assert_eq!(skipped.details["codeDeployDeployment"], json!(theirs));
    assert_eq!(skipped.details["retried"], json!(false));
    // The event is handled: a redelivery is a duplicate.
    let again = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:04:00Z")
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Duplicate, "{again:?}");
}

/// A deployment whose AppSpec CodeDeploy does not show holds the group: the rollback waits,
/// says so once, is retried by the alarm's redeliveries while it runs, and rolls back once
/// the group is free and the bad revision still runs.
#[tokio::test]
async fn a_rollback_behind_an_unknown_deployment_is_retried_until_the_group_is_free() {
    let w = world();
    let (api, _) = w.codedeploy_completed().await;
    let group = crate::domain::codedeploy::DeploymentGroup::new("shop", "api");
    let theirs = w.codedeploy.start_elsewhere(&group, None);
    for minute in [13, 14] {
        let e = w
            .alarm("a1", "ALARM", "OK", &format!("2026-11-23T10:{minute}:00Z"))
            .await
            .unwrap_err();
        let RollbackError::Waiting(summary) = &e else {
            panic!("{e:?}");
        };
        assert_eq!(e.error_type(), "deckhand.RollbackWaiting");
        assert_eq!(summary.services[0].action, Action::Waiting, "{summary:?}");
        assert!(
            e.to_string().contains(&format!(
                "CodeDeploy deployment {theirs} (by user) runs in the deployment group"
            )),
            "{e}"
        );
        assert!(!w.store.is_locked(&api));
    }
    assert_eq!(w.kinds(), ["rollback.skipped"], "announced once");
    assert_eq!(w.codedeploy.deployments().len(), 2);
    w.codedeploy.end(&theirs, "Failed");
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:16:00Z")
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert_eq!(w.codedeploy.deployments().len(), 3, "a deployment of api:1");
    assert_eq!(w.kinds(), ["rollback.skipped", "rollback.started"]);
    assert_eq!(w.store.load(&api).await.unwrap().rollback_waits_for, None);
}
