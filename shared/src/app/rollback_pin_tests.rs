//! A baseline that names `REPO:latest`: the rollback runs the digest that ran, never the tag
//! resolved again (`domain::pin`).

use super::*;

impl World {
    /// `prod/api` on `api:latest`, which ECS resolved to digest `a` (when `ecs_knows`), and a
    /// push of `latest` on digest `b` deployed at 10:00, completed at 10:05.
    async fn deployed_on_latest(&self, ecs_knows: bool) -> ServiceKey {
        let api = self.service_of("prod", "api", &format!("{HOST}/api:latest"), &[]);
        let baseline = self.ecs.service(&api).unwrap().task_definition;
        if ecs_knows {
            self.ecs.resolve(&api, &baseline, &[("api", &digest('a'))]);
        }
        // The first build, untagged since latest moved on to the push below.
        self.ecr.tag("api", &digest('a').parse().unwrap(), &[]);
        self.clock.set(utc(START));
        let event = json!({"version": "0", "id": "p1", "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "123456789012", "time": START, "region": "eu-west-1", "resources": [],
            "detail": {"result": "SUCCESS", "repository-name": "api", "image-digest": digest('b'),
                       "action-type": "PUSH", "image-tag": "latest"}});
        self.ecr.receive(&event);
        let s = self.deploy.handle(&event).await.unwrap();
        assert_eq!(s.outcome, Outcome::Deployed, "{s:?}");
        self.completed("c1", &api, "2026-11-23T10:05:00Z").await;
        api
    }
}

#[tokio::test]
async fn a_rollback_to_a_baseline_on_latest_runs_the_digest_that_ran() {
    let w = world();
    let api = w.deployed_on_latest(true).await;
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z")
        .await
        .unwrap();
    assert_eq!(s.services[0].action, Action::RolledBack, "{s:?}");
    assert!(
        s.services[0]
            .reason
            .contains("a clone of it with the digests it ran"),
        "{s:?}"
    );
    // Not api:1 (ECS would resolve latest again, to b): a clone of it pinned to a.
    let running = w.ecs.service(&api).unwrap().task_definition;
    assert_eq!(revision_name(&running), "api:3");
    let td = w.ecs.task_definition(&running).unwrap();
    assert_eq!(
        td.containers[0].image,
        format!("{HOST}/api@{}", digest('a'))
    );
    let state = w.store.load(&api).await.unwrap();
    assert!(
        state
            .is_quarantined(&digest('b').parse().unwrap())
            .is_some()
    );
    assert_eq!(state.known_good.as_deref(), Some(running.as_str()));
    assert_eq!(w.kinds(), vec!["rollback.started"]);
}

#[tokio::test]
async fn a_baseline_whose_digest_is_unknown_is_not_redeployed_blind() {
    let w = world();
    // ECS kept no service revision, and ECR's latest already names the pushed image.
    let api = w.deployed_on_latest(false).await;
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z")
        .await
        .unwrap();
    assert_eq!(s.services[0].action, Action::Skipped, "{s:?}");
    assert!(
        s.services[0]
            .reason
            .contains("never learned the digest it ran"),
        "{s:?}"
    );
    assert_eq!(
        w.running(&api),
        "api:2",
        "left on the deployment, not on the tag"
    );
    assert_eq!(w.kinds(), vec!["rollback.skipped"]);
}
