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
        // While the deployment rolls out, `deckhand status` says the known-good revision names
        // a tag, and shows the digest that ran.
        let status =
            crate::cli::deckhand_json(&stack, &["status", "--cluster", &stack.cluster]).await;
        let web = stack.service_key("web").to_string();
        let row = status
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["service"] == web.as_str())
            .unwrap();
        assert_eq!(
            row["knownGoodPinned"]["images"][0],
            format!("web={}@{}", stack.repository, &good[..19]),
            "{row}"
        );
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

/// What `deckhand check` finds wrong with the service (other tests' services share the emulator).
async fn check_problems(stack: &Stack, service: &str) -> String {
    let (out, _) = crate::cli::deckhand_run(stack, &["check", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let key = stack.service_key(service).to_string();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == key.as_str());
    row.map(|r| r["problems"].to_string()).unwrap_or_default()
}

/// docs/rollback.md's lifecycle rule on `deckhand-keep-*` first, then a rule of the most common kind:
/// keep the newest image, expire the rest.
fn keep_newest_policy(with_keep_rule: bool) -> serde_json::Value {
    let keep = serde_json::json!({"rulePriority": 1, "description": "images deckhand may deploy again",
        "selection": {"tagStatus": "tagged", "tagPatternList": ["deckhand-keep-*"],
                      "countType": "imageCountMoreThan", "countNumber": 9999},
        "action": {"type": "expire"}});
    let newest = serde_json::json!({"rulePriority": 10, "selection": {"tagStatus": "any",
        "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}});
    let rules = if with_keep_rule {
        vec![keep, newest]
    } else {
        vec![newest]
    };
    serde_json::json!({"rules": rules})
}

#[tokio::test]
async fn a_lifecycle_expiry_spares_the_images_deckhand_keeps() {
    let g = crate::rollback::Guarded::deployed(&[("api", &[])]).await;
    let stack = &g.stack;
    let baseline = stack.push_image("main-41").await;
    // Immutable tags: a keep tag is a new tag on an image, never a moved one.
    stack
        .ecr
        .put_image_tag_mutability()
        .repository_name(&stack.repository)
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Immutable)
        .send()
        .await
        .unwrap();
    let scheduler = deckhand::app::scheduler::SchedulerFunction::new(
        stack.ports(Role::Scheduler, g.clock.clone()),
        stack.config(),
    );
    scheduler
        .handle(&serde_json::json!({"action": "reconcile", "at": "2026-11-23T10:20:00Z"}))
        .await
        .unwrap();
    // What runs (main-42) and what a rollback goes back to (main-41) carry the service's tag.
    for digest in [&g.digest, &baseline] {
        let tags = stack.tags_of(digest).await.unwrap();
        assert!(
            tags.iter().any(|t| t.starts_with("deckhand-keep-")),
            "{digest}: {tags:?}"
        );
    }
    let history = stack
        .store()
        .history(&stack.service_key("api"), 5)
        .await
        .unwrap();
    assert!(history[0].reason.contains("kept web-"), "{:?}", history[0]);
    // CI builds on; the policy keeps only the newest, and the keep rule comes first.
    let other = stack.push_build("main-43", "x").await;
    let newest = stack.push_build("main-44", "y").await;
    stack.put_lifecycle_policy(&keep_newest_policy(true)).await;
    assert_eq!(check_problems(stack, "api").await, "[]");
    let (expired, _) = stack.run_lifecycle();
    assert!(expired.contains(&other), "{expired:?}");
    for digest in [&g.digest, &baseline, &newest] {
        assert!(
            stack.tags_of(digest).await.is_some(),
            "{digest} was expired"
        );
    }
    // Without the rule the same policy expires the rollback target, and `deckhand check` says
    // so before it happens.
    stack.put_lifecycle_policy(&keep_newest_policy(false)).await;
    let problems = check_problems(stack, "api").await;
    assert!(
        problems.contains(&format!("image {} may be needed again", &baseline[..19]))
            && problems.contains("would expire it now"),
        "{problems}"
    );
    let (expired, _) = stack.run_lifecycle();
    assert!(expired.contains(&baseline), "{expired:?}");
}

#[tokio::test]
async fn a_rollback_to_an_archived_image_waits_restores_and_completes() {
    let g = crate::rollback::Guarded::deployed(&[("api", &[])]).await;
    let stack = &g.stack;
    let baseline = stack.push_image("main-41").await;
    stack.archive(&baseline).await;
    let arn = g.alarm("api-5xx", Some("api"), &[]).await;
    let event = g.event("alarm-1", &arn, "ALARM", "OK", ALARMED, Some("api"));
    let s = g.handle_at(&event, ALARMED).await.unwrap();
    assert_eq!(s.outcome, Outcome::Restoring, "{s:?}");
    assert!(
        s.services[0].reason.contains("which ECR keeps archived"),
        "{s:?}"
    );
    // Nothing moved: ECS could not pull the target yet. ECR restores it.
    assert_eq!(g.revision("api").await, "2");
    let status = |out: aws_sdk_ecr::operation::describe_images::DescribeImagesOutput| {
        out.image_details()[0]
            .image_status()
            .map(|s| s.as_str().to_owned())
    };
    let describe = || {
        stack
            .ecr
            .describe_images()
            .repository_name(&stack.repository)
            .image_ids(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_digest(&baseline)
                    .build(),
            )
            .send()
    };
    assert_eq!(
        status(describe().await.unwrap()).as_deref(),
        Some("ACTIVATING")
    );
    assert_eq!(
        stack.notification_kinds().last().map(String::as_str),
        Some("rollback.started")
    );
    // A repeated alarm while ECR restores changes nothing.
    let again = g.event(
        "alarm-2",
        &arn,
        "ALARM",
        "OK",
        "2026-11-23T10:14:00Z",
        Some("api"),
    );
    let s = g.handle_at(&again, "2026-11-23T10:14:00Z").await.unwrap();
    assert_eq!(s.services[0].action, Action::Skipped, "{s:?}");
    assert!(s.services[0].reason.contains("waits since"), "{s:?}");

    let scheduler = deckhand::app::scheduler::SchedulerFunction::new(
        stack.ports(Role::Scheduler, g.clock.clone()),
        stack.config(),
    );
    let reconcile = |at: &str| serde_json::json!({"action": "reconcile", "at": at});
    g.clock.set(utc("2026-11-23T10:20:00Z"));
    scheduler
        .handle(&reconcile("2026-11-23T10:20:00Z"))
        .await
        .unwrap();
    assert_eq!(g.revision("api").await, "2", "still restoring");

    stack.finish_restore(&baseline);
    g.clock.set(utc("2026-11-23T10:35:00Z"));
    let s = scheduler
        .handle(&reconcile("2026-11-23T10:35:00Z"))
        .await
        .unwrap();
    let api = stack.service_key("api").to_string();
    let row = s.services.iter().find(|r| r.service == api).unwrap();
    assert_eq!(row.action, Action::RolledBack, "{s:?}");
    assert!(row.reason.contains("ECR has restored"), "{row:?}");
    assert_eq!(g.revision("api").await, "1");
    let state = stack.store().load(&stack.service_key("api")).await.unwrap();
    assert!(state.restoring.is_none());
    assert!(state.is_quarantined(&g.digest.parse().unwrap()).is_some());
    assert_eq!(
        state.deployment.unwrap().status,
        deckhand::domain::state::DeploymentStatus::RolledBack
    );
    let kinds = stack.notification_kinds();
    assert_eq!(
        kinds.iter().filter(|k| *k == "rollback.started").count(),
        2,
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_wake_onto_an_archived_image_waits_for_its_restore() {
    let g =
        crate::rollback::Guarded::deployed(&[("api", &[("deckhand:awake", "daily 07:00-19:00")])])
            .await;
    let stack = &g.stack;
    let scheduler = deckhand::app::scheduler::SchedulerFunction::new(
        stack.ports(Role::Scheduler, g.clock.clone()),
        stack.config(),
    );
    let reconcile = |at: &'static str| {
        g.clock.set(utc(at));
        let event = serde_json::json!({"action": "reconcile", "at": at});
        let scheduler = &scheduler;
        async move { scheduler.handle(&event).await }
    };
    reconcile("2026-11-23T10:20:00Z").await.unwrap();
    reconcile("2026-11-23T20:00:00Z").await.unwrap();
    assert_eq!(stack.desired_count("api").await, 0);
    // Overnight the image the service wakes on is archived.
    stack.archive(&g.digest).await;
    let s = reconcile("2026-11-24T07:05:00Z").await.unwrap();
    let api = stack.service_key("api").to_string();
    let row = s.services.iter().find(|r| r.service == api).unwrap();
    assert_eq!(row.action, Action::Restoring, "{s:?}");
    assert!(row.reason.contains("not woken yet"), "{row:?}");
    assert_eq!(
        stack.desired_count("api").await,
        0,
        "not woken onto what cannot be pulled"
    );

    stack.finish_restore(&g.digest);
    let s = reconcile("2026-11-24T07:10:00Z").await.unwrap();
    let row = s.services.iter().find(|r| r.service == api).unwrap();
    assert_eq!(row.action, Action::Awake, "{s:?}");
    assert_eq!(stack.desired_count("api").await, 2);
}
