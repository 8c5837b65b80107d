//! Three accounts side by side, as an organisation runs them: a registry account holding the
//! images, a staging stack and a production stack promoted from it. Each stack's rules and bus
//! policies come from template.yaml with its own parameters; EventBridge carries staging's
//! announcement to production as AWS does (scripts/emulator_events.py), and ECR serves the
//! registry's images only as its repository policy allows (scripts/emulator_accounts.py).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deckhand::adapters::memory::FixedClock;
use deckhand::app::deploy::DeployFunction;
use deckhand::app::rollback::RollbackFunction;
use deckhand::app::scheduler::SchedulerFunction;
use deckhand::report::{Outcome, Summary};
use serde_json::{Value, json};

use crate::cli::deckhand_json;
use crate::harness::{REGION, Role, Stack};
use crate::rollback::{alarm_event, metric_alarm, utc};

const PUSHED: &str = "2026-12-05T10:00:00Z";
const COMPLETED: &str = "2026-12-05T10:05:00Z";
/// The default guard (30 minutes) after the completion.
const PROVEN: &str = "2026-12-05T10:40:00Z";

/// Accounts of their own for each test: EventBridge's default bus is one per account.
fn accounts() -> (String, String, String) {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    (
        format!("3000000{n:05}"),
        format!("1000000{n:05}"),
        format!("2000000{n:05}"),
    )
}

/// One account's deckhand: its stack and its three functions on one clock.
struct Deckhand {
    stack: Stack,
    deploy: DeployFunction,
    rollback: RollbackFunction,
    scheduler: SchedulerFunction,
}

impl Deckhand {
    async fn new(account: &str, parameters: Value, clock: &Arc<FixedClock>) -> Self {
        let stack = Stack::in_account(account, parameters).await;
        stack.install_rules().await;
        let config = stack.config();
        Self {
            deploy: DeployFunction::new(stack.ports(Role::Deploy, clock.clone()), config.clone()),
            rollback: RollbackFunction::new(
                stack.ports(Role::Rollback, clock.clone()),
                config.clone(),
            ),
            scheduler: SchedulerFunction::new(stack.ports(Role::Scheduler, clock.clone()), config),
            stack,
        }
    }

    /// `web` running `image`, with `tags`.
    async fn service(&self, image: &str, tags: &[(&str, &str)]) {
        let td = self
            .stack
            .register(
                self.stack
                    .ecs
                    .register_task_definition()
                    .family(format!("web-{}", self.stack.id))
                    .container_definitions(
                        aws_sdk_ecs::types::ContainerDefinition::builder()
                            .name("web")
                            .image(image)
                            .memory(256)
                            .build(),
                    ),
            )
            .await;
        self.stack.create_service("web", &td, tags).await;
    }

    async fn image(&self) -> String {
        self.stack.running_image("web").await
    }

    /// ECS completes the service's deployment.
    async fn completed(&self, id: &str, at: &str) -> Summary {
        let event = self
            .stack
            .deployment_event("ecs-deployment-completed", id, "web", utc(at));
        self.deploy.handle(&event).await.unwrap()
    }

    async fn reconcile(&self, at: &str) -> Summary {
        self.scheduler
            .handle(&json!({"action": "reconcile", "at": at}))
            .await
            .unwrap()
    }

    /// Hands each event EventBridge delivered to the deploy function's rules to it.
    async fn receive(&self) -> Vec<Summary> {
        let mut summaries = Vec::new();
        for event in self.stack.delivered_events().await {
            summaries.push(self.deploy.handle(&event).await.unwrap());
        }
        summaries
    }
}

/// The registry, staging promoting to production, production promoted from staging.
struct Organisation {
    clock: Arc<FixedClock>,
    registry: Stack,
    staging: Deckhand,
    production: Deckhand,
}

impl Organisation {
    async fn new() -> Self {
        let (registry, staging, production) = accounts();
        let clock = Arc::new(FixedClock::new(utc(PUSHED)));
        let registry_stack = Stack::in_account(&registry, json!({})).await;
        let staging_deckhand = Deckhand::new(
            &staging,
            json!({"RegistryAccounts": registry, "PromoteToAccounts": production}),
            &clock,
        )
        .await;
        let production_deckhand = Deckhand::new(
            &production,
            json!({"RegistryAccounts": registry, "PromoteFromAccounts": staging}),
            &clock,
        )
        .await;
        // The registry opens its repository to both workload accounts, as docs/organisations.md
        // shows.
        let policy = json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "deckhand", "Effect": "Allow",
            "Principal": {"AWS": [format!("arn:aws:iam::{staging}:root"), format!("arn:aws:iam::{production}:root")]},
            "Action": ["ecr:DescribeImages", "ecr:BatchGetImage", "ecr:DescribeImageScanFindings",
                       "ecr:GetRepositoryPolicy"]}]});
        registry_stack
            .ecr
            .set_repository_policy()
            .repository_name(&registry_stack.repository)
            .policy_text(policy.to_string())
            .send()
            .await
            .unwrap();
        let first = registry_stack.push_image("v1").await;
        let image = registry_stack.image(&format!("@{first}"));
        staging_deckhand
            .service(&image, &[("deckhand:deploy", "any")])
            .await;
        let upstream = format!(
            "{}/{}/web",
            staging_deckhand.stack.account, staging_deckhand.stack.cluster
        );
        production_deckhand
            .service(
                &image,
                &[
                    ("deckhand:deploy", "any"),
                    ("deckhand:promote-from", &upstream),
                ],
            )
            .await;
        Self {
            clock,
            registry: registry_stack,
            staging: staging_deckhand,
            production: production_deckhand,
        }
    }

    /// A push of `tag` in the registry, handed to both accounts' deploy functions as their rules
    /// for the registry's events would.
    async fn push(&self, id: &str, tag: &str, at: &str) -> (String, Summary, Summary) {
        self.clock.set(utc(at));
        let digest = self.registry.push_image(tag).await;
        let event = self.registry.push_event(id, utc(at), tag, &digest);
        let staging = self.staging.deploy.handle(&event).await.unwrap();
        let production = self.production.deploy.handle(&event).await.unwrap();
        (digest, staging, production)
    }

    fn pinned(&self, digest: &str) -> String {
        self.registry.image(&format!("@{digest}"))
    }
}

#[tokio::test]
async fn a_digest_proven_in_staging_is_promoted_to_production_and_only_then() {
    let org = Organisation::new().await;
    // A push in the registry deploys to staging only.
    let (digest, staging, production) = org.push("push-v2", "v2", PUSHED).await;
    assert_eq!(staging.outcome, Outcome::Deployed, "{staging:?}");
    assert_eq!(production.outcome, Outcome::Ignored, "{production:?}");
    assert!(
        production.services[0]
            .reason
            .contains("takes only digests that"),
        "{production:?}"
    );
    assert_eq!(org.staging.image().await, org.pinned(&digest));
    let first = org.production.image().await;
    assert_ne!(first, org.pinned(&digest));

    // Staging's deployment completes; inside its guard window nothing is announced.
    org.clock.set(utc(COMPLETED));
    let completed = org.staging.completed("ecs-v2", COMPLETED).await;
    assert_eq!(completed.outcome, Outcome::Completed, "{completed:?}");
    org.clock.set(utc("2026-12-05T10:20:00Z"));
    org.staging.reconcile("2026-12-05T10:20:00Z").await;
    assert!(org.production.receive().await.is_empty());

    // The window passes without an alarm: staging announces, EventBridge carries it to
    // production's bus, production's rule takes it, and production deploys the digest.
    org.clock.set(utc(PROVEN));
    let settled = org.staging.reconcile(PROVEN).await;
    assert!(
        settled.services[0]
            .reason
            .contains("announced as known-good"),
        "{settled:?}"
    );
    let delivered = org.production.stack.delivered_events().await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let announcement = &delivered[0];
    assert_eq!(announcement["account"], json!(org.staging.stack.account));
    assert_eq!(announcement["detail-type"], json!("Deckhand Known-Good"));
    assert_eq!(
        announcement["detail"]["images"][0]["image"],
        json!(org.pinned(&digest))
    );
    let promoted = org.production.deploy.handle(announcement).await.unwrap();
    assert_eq!(promoted.outcome, Outcome::Deployed, "{promoted:?}");
    assert!(
        promoted.services[0].reason.contains("promoted: "),
        "{promoted:?}"
    );
    assert_eq!(org.production.image().await, org.pinned(&digest));
    // Announced once.
    org.staging.reconcile("2026-12-05T10:45:00Z").await;
    assert!(org.production.receive().await.is_empty());
}

#[tokio::test]
async fn an_alarm_in_staging_inside_the_window_keeps_production_where_it_is() {
    let org = Organisation::new().await;
    let (digest, staging, _) = org.push("push-v2", "v2", PUSHED).await;
    assert_eq!(staging.outcome, Outcome::Deployed, "{staging:?}");
    org.clock.set(utc(COMPLETED));
    org.staging.completed("ecs-v2", COMPLETED).await;
    let before = org.production.image().await;
    // The alarm that guards staging's web goes off inside the window: staging rolls back.
    let stack = &org.staging.stack;
    let arn = metric_alarm(stack, &format!("web-5xx-{}", stack.id), Some("web"), &[]).await;
    let at = "2026-12-05T10:15:00Z";
    org.clock.set(utc(at));
    let mut alarm = alarm_event(stack, "alarm-1", &arn, "ALARM", "OK", at, Some("web"));
    alarm["account"] = json!(stack.account);
    alarm["region"] = json!(REGION);
    let rolled = org.staging.rollback.handle(&alarm).await.unwrap();
    assert_eq!(rolled.outcome, Outcome::RolledBack, "{rolled:?}");
    // Long past the window, nothing was proven and nothing reaches production.
    org.clock.set(utc(PROVEN));
    org.staging.reconcile(PROVEN).await;
    org.clock.set(utc("2026-12-05T12:00:00Z"));
    org.staging.reconcile("2026-12-05T12:00:00Z").await;
    assert!(org.production.stack.delivered_events().await.is_empty());
    assert_eq!(org.production.image().await, before);
    assert_ne!(before, org.pinned(&digest));
}

#[tokio::test]
async fn a_known_good_forged_in_production_deploys_nothing() {
    let org = Organisation::new().await;
    let digest = org.registry.push_image("v9").await;
    let staging = &org.staging.stack;
    let service = format!(
        "arn:aws:ecs:{REGION}:{}:service/{}/web",
        staging.account, staging.cluster
    );
    let detail = json!({"service": service, "revision": format!("web-{}:1", staging.id),
        "images": [{"container": "web", "image": org.pinned(&digest)}], "at": PUSHED});
    // Put on production's own bus by someone in production, claiming staging's word.
    let production = &org.production.stack;
    aws_sdk_eventbridge::Client::new(&production.sdk)
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .source("deckhand")
                .detail_type("Deckhand Known-Good")
                .resources(&service)
                .detail(detail.to_string())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let before = org.production.image().await;
    let summaries = org.production.receive().await;
    assert_eq!(
        summaries.len(),
        1,
        "production's rule matches its own account"
    );
    assert_eq!(summaries[0].outcome, Outcome::Ignored, "{:?}", summaries[0]);
    assert!(
        summaries[0]
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("only its own services"),
        "{:?}",
        summaries[0]
    );
    assert_eq!(org.production.image().await, before);
    // Sent on by a rule of the registry's account, which production takes no promotions from:
    // production's bus policy refuses it (and its rule would not match the account anyway).
    let events = aws_sdk_eventbridge::Client::new(&org.registry.sdk);
    let rule = format!("forward-{}", org.registry.id);
    events
        .put_rule()
        .name(&rule)
        .event_pattern(json!({"source": ["deckhand"]}).to_string())
        .send()
        .await
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&org.registry.sdk);
    let refused = sqs
        .create_queue()
        .queue_name(format!("refused-{}", org.registry.id))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    events
        .put_targets()
        .rule(&rule)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("production")
                .arn(format!(
                    "arn:aws:events:{REGION}:{}:event-bus/default",
                    production.account
                ))
                .dead_letter_config(
                    aws_sdk_eventbridge::types::DeadLetterConfig::builder()
                        .arn(format!(
                            "arn:aws:sqs:{REGION}:{}:refused-{}",
                            org.registry.account, org.registry.id
                        ))
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let registry_service = service.replace(&staging.account, &org.registry.account);
    events
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .source("deckhand")
                .detail_type("Deckhand Known-Good")
                .resources(&registry_service)
                .detail(
                    detail
                        .to_string()
                        .replace(&staging.account, &org.registry.account),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(org.production.receive().await.is_empty());
    assert_eq!(org.production.image().await, before);
    // Refused by production's bus policy, as EventBridge reports a failed delivery: into the
    // sending rule's dead-letter queue.
    let dead = sqs
        .receive_message()
        .queue_url(&refused)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(dead.len(), 1, "{dead:?}");
}

#[tokio::test]
async fn production_keeps_what_staging_proved_and_an_operator_promotes_it_by_hand() {
    let org = Organisation::new().await;
    let production = &org.production.stack;
    let web = production.service_key("web").to_string();
    // Deploys in production are paused when staging's announcement comes.
    deckhand_json(production, &["pause", &web]).await;
    let (digest, _, _) = org.push("push-v2", "v2", PUSHED).await;
    org.clock.set(utc(COMPLETED));
    org.staging.completed("ecs-v2", COMPLETED).await;
    org.clock.set(utc(PROVEN));
    org.staging.reconcile(PROVEN).await;
    let summaries = org.production.receive().await;
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].outcome, Outcome::Skipped, "{:?}", summaries[0]);
    // Status says what waits to be promoted.
    let status = deckhand_json(production, &["status", "--cluster", &production.cluster]).await;
    let promotion = &status[0]["promotion"];
    assert_eq!(
        promotion["from"],
        json!(format!(
            "{}/{}/web",
            org.staging.stack.account, org.staging.stack.cluster
        ))
    );
    assert_eq!(
        promotion["announced"],
        json!(format!("web-{}:2", org.staging.stack.id))
    );
    assert_eq!(promotion["running"], json!(false), "{status}");
    // Resumed, the operator promotes it by hand.
    deckhand_json(production, &["resume", &web]).await;
    let promoted = deckhand_json(production, &["promote", &web]).await;
    assert_eq!(promoted[0]["action"], json!("recorded"), "{promoted}");
    assert_eq!(promoted[1]["action"], json!("deployed"), "{promoted}");
    assert_eq!(org.production.image().await, org.pinned(&digest));
    let status = deckhand_json(production, &["status", "--cluster", &production.cluster]).await;
    assert_eq!(status[0]["promotion"]["running"], json!(true), "{status}");
    // A service that takes no promotions has nothing to promote.
    let staging_web = org.staging.stack.service_key("web").to_string();
    let refused = crate::cli::deckhand(&org.staging.stack, &["promote", &staging_web]).await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn deckhand_check_says_what_the_registry_policy_lacks() {
    let org = Organisation::new().await;
    let production = &org.production.stack;
    let (checked, ended) = crate::cli::deckhand_run(production, &["check", "--json"]).await;
    assert!(ended.is_ok(), "{checked}");
    // The registry's owners narrow the policy to pulls: deckhand could no longer confirm a push.
    let pulls = json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "pulls", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{}:root", production.account)},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:GetRepositoryPolicy"]}]});
    org.registry
        .ecr
        .set_repository_policy()
        .repository_name(&org.registry.repository)
        .policy_text(pulls.to_string())
        .send()
        .await
        .unwrap();
    let (text, ended) = crate::cli::deckhand_run(production, &["check"]).await;
    assert!(ended.is_err(), "{text}");
    assert!(
        text.contains(&format!(
            "ECR repository {}/{}'s policy does not let account {} ecr:DescribeImages, ecr:DescribeImageScanFindings",
            org.registry.account, org.registry.repository, production.account
        )),
        "{text}"
    );
}
