//! Known-good follows every deployment, whoever made it, and a trial in dry run rehearses the
//! rollback: through the real SDK against moto server, with the pipeline's `update-service`
//! made as a person would, and ECS's deployment events sent as ECS sends them.

use std::sync::Arc;

use deckhand::adapters::memory::FixedClock;
use deckhand::app::deploy::DeployFunction;
use deckhand::app::rollback::RollbackFunction;
use deckhand::app::scheduler::SchedulerFunction;
use deckhand::config::Config;
use deckhand::domain::service::revision_name;
use deckhand::domain::state::DeploymentStatus;
use deckhand::ports::StateStore as _;
use deckhand::report::{Action, Outcome, Summary};
use serde_json::{Value, json};

use crate::cli::deckhand_json;
use crate::harness::{Role, Stack};
use crate::rollback::{alarm_event, metric_alarm, utc};

struct Pipeline {
    stack: Stack,
    clock: Arc<FixedClock>,
    deploy: DeployFunction,
    rollback: RollbackFunction,
    family: String,
    alarm_arn: String,
}

impl Pipeline {
    /// `web` running `main-41`, opted in to deckhand, with an alarm on its metric; deckhand's
    /// functions in dry run when `trial`.
    async fn new(trial: bool) -> Self {
        let stack = Stack::new().await;
        let clock = Arc::new(FixedClock::new(utc("2026-11-23T09:00:00Z")));
        let family = format!("kg-{}", stack.id);
        let td = stack.simple_task_definition(&family, "main-41").await;
        stack
            .create_service("web", &td, &[("deckhand:deploy", "prefix=main-")])
            .await;
        let alarm_arn =
            metric_alarm(&stack, &format!("web-5xx-{}", stack.id), Some("web"), &[]).await;
        let config = Config {
            dry_run: trial,
            ..stack.config()
        };
        Self {
            deploy: DeployFunction::new(
                stack.ports_with(Role::Deploy, &config, clock.clone()),
                config.clone(),
            ),
            rollback: RollbackFunction::new(
                stack.ports_with(Role::Rollback, &config, clock.clone()),
                config,
            ),
            stack,
            clock,
            family,
            alarm_arn,
        }
    }

    /// The pipeline registers `family:N` with the image and updates the service itself.
    async fn deploys(&self, reference: &str) -> String {
        // A pipeline pushes the image before it deploys the tag.
        if let Some(tag) = reference.strip_prefix(':') {
            self.stack.push_image(tag).await;
        }
        let td = self
            .stack
            .register(
                self.stack
                    .ecs
                    .register_task_definition()
                    .family(&self.family)
                    .container_definitions(
                        aws_sdk_ecs::types::ContainerDefinition::builder()
                            .name("web")
                            .image(self.stack.image(reference))
                            .memory(256)
                            .build(),
                    ),
            )
            .await;
        self.stack
            .ecs
            .update_service()
            .cluster(&self.stack.cluster)
            .service("web")
            .task_definition(&td)
            .send()
            .await
            .unwrap();
        td
    }

    /// ECS reports a deployment of `web` (`in-progress` or `completed`) at `at`.
    async fn ecs(&self, state: &str, deployment: &str, at: &str) -> Summary {
        self.clock.set(utc(at));
        let mut event = self.stack.deployment_event(
            "ecs-deployment-completed",
            &format!("{deployment}-{state}"),
            "web",
            utc(at),
        );
        if state == "in-progress" {
            event["detail"]["eventName"] = json!("SERVICE_DEPLOYMENT_IN_PROGRESS");
        }
        event["detail"]["deploymentId"] = json!(deployment);
        self.deploy.handle(&event).await.unwrap()
    }

    async fn push(&self, id: &str, tag: &str, digest: &str, at: &str) -> Summary {
        self.clock.set(utc(at));
        let event = self.stack.push_event(id, utc(at), tag, digest);
        self.deploy.handle(&event).await.unwrap()
    }

    async fn alarm(&self, id: &str, at: &str) -> Summary {
        self.clock.set(utc(at));
        let event: Value = alarm_event(
            &self.stack,
            id,
            &self.alarm_arn,
            "ALARM",
            "OK",
            at,
            Some("web"),
        );
        self.rollback.handle(&event).await.unwrap()
    }

    async fn running(&self) -> String {
        revision_name(&self.stack.running_task_definition("web").await).to_owned()
    }

    fn name(&self, revision: u32) -> String {
        format!("{}:{revision}", self.family)
    }
}

/// Beside a pipeline that deploys web:2 itself, deckhand follows the deployment; once it ran
/// its guard window, the first rollback of deckhand's own deployment goes to web:2, not to the
/// revision deckhand saw first.
#[tokio::test]
async fn a_deployment_deckhand_did_not_start_becomes_known_good_and_a_rollback_goes_to_it() {
    let p = Pipeline::new(false).await;
    p.deploys(":ci-7").await;
    let started = p
        .ecs("in-progress", "ecs-svc/ci", "2026-11-23T09:00:00Z")
        .await;
    assert_eq!(started.outcome, Outcome::Recorded, "{started:?}");
    let done = p
        .ecs("completed", "ecs-svc/ci", "2026-11-23T09:05:00Z")
        .await;
    assert_eq!(done.outcome, Outcome::Recorded, "{done:?}");
    assert!(
        done.services[0].reason.contains(
            "which deckhand did not start; it becomes known-good at 2026-11-23T09:35:00Z"
        ),
        "{done:?}"
    );
    let key = p.stack.service_key("web");
    let state = p.stack.store().load(&key).await.unwrap();
    assert_eq!(state.known_good_at(utc("2026-11-23T09:34:00Z")), None);
    assert_eq!(
        state
            .known_good_at(utc("2026-11-23T09:35:00Z"))
            .map(revision_name),
        Some(p.name(2).as_str())
    );

    // An hour later CI pushes main-42 and deckhand deploys it from web:2; the alarm rolls it
    // back to what web:2 ran: web:2 names the tag ci-7, so a clone of it pinned to ci-7's
    // digest (web:4).
    let ci7 = p.stack.push_image("ci-7").await;
    let digest = p.stack.push_image("main-42").await;
    let pushed = p
        .push("push-42", "main-42", &digest, "2026-11-23T10:00:00Z")
        .await;
    assert_eq!(pushed.outcome, Outcome::Deployed, "{pushed:?}");
    assert_eq!(pushed.services[0].from.as_deref(), Some(p.name(2).as_str()));
    p.ecs("completed", "ecs-svc/deckhand", "2026-11-23T10:05:00Z")
        .await;
    let rolled = p.alarm("alarm-1", "2026-11-23T10:13:00Z").await;
    assert_eq!(rolled.outcome, Outcome::RolledBack, "{rolled:?}");
    assert_eq!(rolled.services[0].to.as_deref(), Some(p.name(4).as_str()));
    assert_eq!(p.running().await, p.name(4));
    let running = p.stack.running_task_definition("web").await;
    let (td, _) = p.stack.task_definition(&running).await;
    assert_eq!(
        td.container_definitions()[0].image(),
        Some(p.stack.image(&format!("@{ci7}")).as_str())
    );
    let history = p.stack.store().history(&key, 10).await.unwrap();
    let followed: Vec<(Action, Option<String>)> = history
        .iter()
        .filter(|r| r.cause.starts_with("ecs-svc/ci"))
        .map(|r| {
            (
                r.action,
                r.to.as_deref().map(revision_name).map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        followed,
        [
            (Action::Recorded, Some(p.name(2))),
            (Action::Recorded, Some(p.name(2)))
        ]
    );
}

/// An alarm inside the window of the pipeline's deployment keeps it from becoming known-good:
/// deckhand's own deployment made from it later has no target, until an operator names one.
#[tokio::test]
async fn an_alarm_inside_a_pipeline_deployments_window_keeps_it_from_becoming_known_good() {
    let p = Pipeline::new(false).await;
    p.deploys(":ci-7").await;
    p.ecs("completed", "ecs-svc/ci", "2026-11-23T09:05:00Z")
        .await;
    let alarmed = p.alarm("alarm-ci", "2026-11-23T09:10:00Z").await;
    assert_eq!(alarmed.outcome, Outcome::Skipped, "{alarmed:?}");
    let reason = &alarmed.services[0].reason;
    assert!(
        reason.starts_with("deckhand has not deployed this service"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("{} will not become known-good", p.name(2))),
        "{reason}"
    );
    assert_eq!(
        p.running().await,
        p.name(2),
        "nothing deckhand's to roll back"
    );

    let digest = p.stack.push_image("main-42").await;
    p.push("push-42", "main-42", &digest, "2026-11-23T10:00:00Z")
        .await;
    p.ecs("completed", "ecs-svc/deckhand", "2026-11-23T10:05:00Z")
        .await;
    let no_target = p.alarm("alarm-1", "2026-11-23T10:13:00Z").await;
    assert!(
        no_target.services[0]
            .reason
            .contains("there is no known-good revision"),
        "{no_target:?}"
    );
    assert_eq!(p.running().await, p.name(3));

    // The operator names web:1; the alarm still firing inside the window now rolls back to it.
    let web = p.stack.service_key("web").to_string();
    let named = deckhand_json(&p.stack, &["known-good", &web, &p.name(1)]).await;
    assert_eq!(named[0]["action"], "known-good", "{named}");
    let rolled = p.alarm("alarm-2", "2026-11-23T10:16:00Z").await;
    assert_eq!(rolled.outcome, Outcome::RolledBack, "{rolled:?}");
    assert_eq!(p.running().await, p.name(1));
    let key = p.stack.service_key("web");
    let history = p.stack.store().history(&key, 20).await.unwrap();
    assert!(
        history
            .iter()
            .any(|r| r.action == Action::KnownGood && r.reason.contains("set to"))
    );
}

/// A week's trial in dry run beside the pipeline: the push is a would-be deployment, the
/// pipeline's deployment of the same image completes it, and the alarm inside its window is
/// `would-roll-back`, once, while ECS keeps running what the pipeline deployed.
#[tokio::test]
async fn a_trial_beside_the_pipeline_reports_would_roll_back_and_changes_nothing() {
    let p = Pipeline::new(true).await;
    let digest = p.stack.push_image("main-42").await;
    let would = p
        .push("push-42", "main-42", &digest, "2026-11-23T10:00:00Z")
        .await;
    assert_eq!(would.outcome, Outcome::WouldDeploy, "{would:?}");
    p.deploys(&format!("@{digest}")).await;
    p.ecs("in-progress", "ecs-svc/ci", "2026-11-23T10:01:00Z")
        .await;
    let done = p
        .ecs("completed", "ecs-svc/ci", "2026-11-23T10:06:00Z")
        .await;
    assert_eq!(done.outcome, Outcome::Completed, "{done:?}");
    assert!(
        done.services[0]
            .reason
            .starts_with("dry run: ECS deployment ecs-svc/ci completed"),
        "{done:?}"
    );

    let rolled = p.alarm("alarm-1", "2026-11-23T10:14:00Z").await;
    assert_eq!(rolled.outcome, Outcome::WouldRollBack, "{rolled:?}");
    assert!(rolled.dry_run);
    let r = &rolled.services[0];
    assert_eq!(r.to.as_deref(), Some(p.name(1).as_str()), "{r:?}");
    assert!(
        r.reason
            .contains("inside the guard window (until 2026-11-23T10:36:00Z)"),
        "{r:?}"
    );
    let again = p.alarm("alarm-2", "2026-11-23T10:15:00Z").await;
    assert_eq!(again.outcome, Outcome::Skipped, "{again:?}");
    assert!(
        again.services[0]
            .reason
            .contains("already rolled back (dry run)"),
        "{again:?}"
    );

    assert_eq!(
        p.running().await,
        p.name(2),
        "ECS runs what the pipeline deployed"
    );
    assert_eq!(
        p.stack.revisions(&p.family).await,
        2,
        "deckhand registered nothing"
    );
    let key = p.stack.service_key("web");
    let state = p.stack.store().load(&key).await.unwrap();
    assert!(state.quarantine.is_empty());
    let d = state.deployment.unwrap();
    assert!(d.dry_run);
    assert_eq!(d.status, DeploymentStatus::RolledBack);
    let seen = state.seen.unwrap();
    assert!(
        seen.alarmed.is_some(),
        "the pipeline's web:2 is not known-good either"
    );
    let kinds = p.stack.notification_kinds();
    assert!(
        kinds
            .iter()
            .all(|k| k != "rollback.started" && k != "deploy.started"),
        "{kinds:?}"
    );
    let (_, body, _) = p
        .stack
        .notifications()
        .into_iter()
        .find(|(_, b, _)| b["kind"] == "rollback.skipped")
        .unwrap();
    assert!(
        body["summary"]
            .as_str()
            .unwrap()
            .starts_with("Dry run: alarm"),
        "{body}"
    );
}

/// A reconcile settles what proved itself and follows a revision no event told of.
#[tokio::test]
async fn the_reconcile_settles_known_good_for_services_it_does_not_schedule() {
    let p = Pipeline::new(false).await;
    let scheduler = SchedulerFunction::new(
        p.stack.ports(Role::Scheduler, p.clock.clone()),
        p.stack.config(),
    );
    let reconcile = |at: &'static str| {
        let scheduler = &scheduler;
        let clock = p.clock.clone();
        async move {
            clock.set(utc(at));
            scheduler
                .handle(&json!({"action": "reconcile", "at": at}))
                .await
                .unwrap()
        }
    };
    // No event of this pipeline's deployment ever arrived.
    p.deploys(":ci-7").await;
    let found = reconcile("2026-11-23T12:00:00Z").await;
    let web = found
        .services
        .iter()
        .find(|r| r.service.ends_with("/web"))
        .unwrap();
    assert_eq!(web.action, Action::Recorded, "{found:?}");
    let settled = reconcile("2026-11-23T12:30:00Z").await;
    let web = settled
        .services
        .iter()
        .find(|r| r.service.ends_with("/web"))
        .unwrap();
    assert_eq!(web.action, Action::KnownGood, "{settled:?}");
    assert_eq!(web.to.as_deref(), Some(p.name(2).as_str()));
    let key = p.stack.service_key("web");
    let state = p.stack.store().load(&key).await.unwrap();
    assert_eq!(
        state.known_good.as_deref().map(revision_name),
        Some(p.name(2).as_str())
    );
    let web = key.to_string();
    let status = deckhand_json(&p.stack, &["status", "--cluster", &p.stack.cluster]).await;
    let row = status
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == web.as_str())
        .unwrap();
    assert_eq!(row["knownGood"], p.name(2));
    assert_eq!(row["seen"]["revision"], p.name(2), "{row}");
    assert_eq!(row["seen"]["status"], "completed", "{row}");
}
