//! Rollback targets that are real (SPEC "Rollback targets"): a baseline on `REPO:latest` is
//! rolled back to the digest it ran, never to whatever `latest` names by then.

use std::sync::Arc;

use deckhand::adapters::memory::FixedClock;
use deckhand::app::deploy::DeployFunction;
use deckhand::app::rollback::RollbackFunction;
use deckhand::ports::StateStore as _;
use deckhand::report::{Action, Outcome};

use crate::harness::{Role, Stack};
use crate::rollback::{ALARMED, alarm_event, metric_alarm, utc};

const PUSHED: &str = "2026-11-23T10:00:00Z";
const COMPLETED: &str = "2026-11-23T10:05:00Z";

/// `web` on a task definition that names `web:latest` (as Terraform registers it), running
/// the first build; CI then pushes a bad build as `latest` and deckhand deploys it.
struct OnLatest {
    stack: Stack,
    clock: Arc<FixedClock>,
    rollback: RollbackFunction,
    good: String,
    bad: String,
}

impl OnLatest {
    async fn deployed() -> Self {
        let stack = Stack::new().await;
        let clock = Arc::new(FixedClock::new(utc(PUSHED)));
        let good = stack.push_build("latest", "1").await;
        let td = stack
            .tagged_task_definition(&format!("web-{}", stack.id), "latest")
            .await;
        stack
            .create_service("web", &td, &[("deckhand:deploy", "tag=latest")])
            .await;
        let bad = stack.push_build("latest", "2").await;
        assert_ne!(good, bad);
        let deploy = DeployFunction::new(stack.ports(Role::Deploy, clock.clone()), stack.config());
        let s = deploy
            .handle(&stack.push_event("push-2", utc(PUSHED), "latest", &bad))
            .await
            .unwrap();
        assert_eq!(s.outcome, Outcome::Deployed, "{s:?}");
        clock.set(utc(COMPLETED));
        let event =
            stack.deployment_event("ecs-deployment-completed", "done", "web", utc(COMPLETED));
        assert_eq!(
            deploy.handle(&event).await.unwrap().outcome,
            Outcome::Completed
        );
        let rollback =
            RollbackFunction::new(stack.ports(Role::Rollback, clock.clone()), stack.config());
        Self {
            stack,
            clock,
            rollback,
            good,
            bad,
        }
    }

    /// The digest the service's task definition runs.
    async fn running_image(&self) -> String {
        let arn = self.stack.running_task_definition("web").await;
        let (td, _) = self.stack.task_definition(&arn).await;
        td.container_definitions()[0].image().unwrap().to_owned()
    }
}

#[tokio::test]
async fn a_baseline_on_latest_is_rolled_back_to_the_digest_it_ran_not_to_the_tag() {
    let w = OnLatest::deployed().await;
    assert!(w.running_image().await.ends_with(&format!("@{}", w.bad)));
    let arn = metric_alarm(&w.stack, "web-5xx", Some("web"), &[]).await;
    w.clock.set(utc(ALARMED));
    let event = alarm_event(
        &w.stack,
        "alarm-1",
        &arn,
        "ALARM",
        "OK",
        ALARMED,
        Some("web"),
    );
    let s = w.rollback.handle(&event).await.unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert!(
        s.services[0]
            .reason
            .contains("a clone of it with the digests it ran"),
        "{s:?}"
    );

    // The service runs the first build by digest: a clone of the baseline, tagged as deckhand
    // tags what it registers; `latest` still names the bad build.
    let running = w.stack.running_task_definition("web").await;
    assert!(running.ends_with(":3"), "{running}");
    assert_eq!(
        w.running_image().await,
        w.stack.image(&format!("@{}", w.good))
    );
    let (_, tags) = w.stack.task_definition(&running).await;
    assert!(
        tags.iter()
            .any(|t| t.key() == Some("deckhand:event") && t.value() == Some("alarm-1")),
        "{tags:?}"
    );
    let state = w
        .stack
        .store()
        .load(&w.stack.service_key("web"))
        .await
        .unwrap();
    assert!(state.is_quarantined(&w.bad.parse().unwrap()).is_some());
    assert_eq!(state.known_good.as_deref(), Some(running.as_str()));
    let history = w
        .stack
        .store()
        .history(&w.stack.service_key("web"), 10)
        .await
        .unwrap();
    assert_eq!(history[0].action, Action::RolledBack);
    assert_eq!(
        w.stack.notification_kinds().last().map(String::as_str),
        Some("rollback.started")
    );
}
