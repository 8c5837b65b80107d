//! deckhand under real concurrency: two function instances at once, through the tests' proxy
//! with the latency of a call to AWS, so that their calls interleave as they do in an account.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ecs::types::ContainerDefinition;
use chrono::Utc;
use deckhand::app::deploy::DeployFunction;
use deckhand::domain::service::revision_name;
use deckhand::ports::{LockAttempt, StateStore, SystemClock};
use deckhand::report::{Action, Outcome};
use serde_json::{Value, json};
use testkit::proxy::{Fault, FaultPlan, FaultRates, Proxy};

use crate::harness::{ACCOUNT, REGION, Role, Stack};

/// What a call to AWS from Lambda takes, roughly.
const LATENCY: Duration = Duration::from_millis(20);
const ROUNDS: usize = 12;

/// Pushes an image to `repository` and returns its digest.
async fn push_to(stack: &Stack, repository: &str, tag: &str) -> String {
    let layer = format!("sha256:{:064x}", fxhash(&format!("{repository}:{tag}")));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 100, "digest": layer},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100, "digest": layer}],
    });
    stack
        .ecr
        .put_image()
        .repository_name(repository)
        .image_manifest(manifest.to_string())
        .image_tag(tag)
        .send()
        .await
        .expect("put image")
        .image()
        .and_then(|i| i.image_id())
        .and_then(|id| id.image_digest())
        .expect("digest")
        .to_owned()
}

fn fxhash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn push_event(id: &str, repository: &str, tag: &str, digest: &str) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": ACCOUNT, "time": Utc::now().to_rfc3339(), "region": REGION,
        "resources": [format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repository}")],
        "detail": {"result": "SUCCESS", "repository-name": repository, "image-digest": digest,
                   "action-type": "PUSH", "image-tag": tag}
    })
}

fn image_of(containers: &[ContainerDefinition], name: &str) -> String {
    containers
        .iter()
        .find(|c| c.name() == Some(name))
        .and_then(|c| c.image())
        .unwrap_or_default()
        .to_owned()
}

/// A service whose task definition runs an app and its proxy from two repositories, pushed by
/// one CI run at the same moment: two function instances get the two pushes at once, round
/// after round. Every round both images land, on two new revisions, the second built on the
/// first, and the history tells exactly that.
#[tokio::test]
async fn two_pushes_to_one_service_at_once_both_land_every_round() {
    let stack = Stack::new().await;
    let proxy_repository = format!("proxy-{}", stack.id);
    stack
        .ecr
        .create_repository()
        .repository_name(&proxy_repository)
        .send()
        .await
        .expect("create repository");
    let family = format!("shop-{}", stack.id);
    let registry = stack.image("");
    let registry = registry.trim_end_matches(&stack.repository);
    let td = stack
        .register(
            stack
                .ecs
                .register_task_definition()
                .family(&family)
                .container_definitions(
                    ContainerDefinition::builder()
                        .name("app")
                        .image(stack.image(":main-0"))
                        .memory(256)
                        .build(),
                )
                .container_definitions(
                    ContainerDefinition::builder()
                        .name("proxy")
                        .image(format!("{registry}{proxy_repository}:1"))
                        .memory(128)
                        .build(),
                ),
        )
        .await;
    stack
        .create_service("shop", &td, &[("deckhand:deploy", "any")])
        .await;
    let key = stack.service_key("shop");
    let proxy = Proxy::start(
        stack.emulator_url(),
        FaultPlan::none().with_latency(LATENCY),
    )
    .await;
    let instance = async || {
        let ports = stack
            .ports_through(Role::Deploy, &proxy, Arc::new(SystemClock))
            .await;
        DeployFunction::new(ports, stack.config())
    };
    let (first, second) = (instance().await, instance().await);

    let mut revision = 1;
    let mut rebased = 0;
    let mut restarts = 0;
    for round in 1..=ROUNDS {
        let app = push_to(&stack, &stack.repository, &format!("main-{round}")).await;
        let side = push_to(&stack, &proxy_repository, &format!("{}", round + 1)).await;
        let (app_tag, side_tag) = (format!("main-{round}"), format!("{}", round + 1));
        let app_event = push_event(&format!("app-{round}"), &stack.repository, &app_tag, &app);
        let side_event = push_event(
            &format!("proxy-{round}"),
            &proxy_repository,
            &side_tag,
            &side,
        );

        proxy.clear();
        let (a, b) = tokio::join!(first.handle(&app_event), second.handle(&side_event));
        // Each push reads the service twice (to find it, then under the lock); once more when
        // it found the service moved under it and started over.
        let reads = proxy
            .call_names()
            .iter()
            .filter(|c| *c == "ecs.DescribeServices")
            .count();
        restarts += reads.saturating_sub(4);

        let (a, b) = (a.expect("the app's push"), b.expect("the proxy's push"));
        assert_eq!(a.outcome, Outcome::Deployed, "round {round}: {a:?}");
        assert_eq!(b.outcome, Outcome::Deployed, "round {round}: {b:?}");
        let running = stack.running_task_definition("shop").await;
        let (definition, _) = stack.task_definition(&running).await;
        let containers = definition.container_definitions();
        assert_eq!(
            image_of(containers, "app"),
            stack.image(&format!("@{app}")),
            "round {round}"
        );
        assert_eq!(
            image_of(containers, "proxy"),
            format!("{registry}{proxy_repository}@{side}"),
            "round {round}: the proxy's image is not undone"
        );
        assert_eq!(
            revision_name(&running),
            format!("{family}:{}", revision + 2),
            "round {round}: two revisions, no more"
        );
        // The history: the two moves of the round, chained.
        let history = stack.store().history(&key, 2 * ROUNDS + 10).await.unwrap();
        let mut moves: Vec<(String, String)> = history
            .iter()
            .filter(|r| r.action == Action::Deployed)
            .filter(|r| r.cause == format!("app-{round}") || r.cause == format!("proxy-{round}"))
            .map(|r| {
                let name =
                    |arn: &Option<String>| arn.as_deref().map_or("", revision_name).to_owned();
                (name(&r.from), name(&r.to))
            })
            .collect();
        moves.sort_by_key(|(from, _)| from.rsplit(':').next().and_then(|n| n.parse::<u32>().ok()));
        let at = |n: usize| format!("{family}:{n}");
        assert_eq!(
            moves,
            [
                (at(revision), at(revision + 1)),
                (at(revision + 1), at(revision + 2))
            ],
            "round {round}: {history:#?}"
        );
        // Which one waited for the other's lock varies: both orders occur.
        if a.services[0].from.as_deref() != Some(at(revision).as_str()) {
            rebased += 1;
        }
        revision += 2;
    }
    let free = stack
        .store()
        .lock(&key, "check#1", Utc::now(), chrono::TimeDelta::seconds(1))
        .await
        .unwrap();
    assert!(
        matches!(free, LockAttempt::Acquired(_)),
        "no lock left behind: {free:?}"
    );
    eprintln!(
        "{ROUNDS} rounds, both pushes landed every round; the app's push came second in {rebased}; \
         {restarts} pushes found the service moved under them and started over"
    );
    assert!(restarts > 0, "the two pushes never raced");
}

/// A lock asked for while its holder's commit (a transaction on the same item) is under way
/// meets DynamoDB's `TransactionConflictException`: the lock is busy for a moment, not broken,
/// so the push waits and deploys.
#[tokio::test]
async fn a_lock_that_meets_the_holders_commit_waits_for_it() {
    let stack = Stack::new().await;
    let td = stack
        .simple_task_definition(&format!("conflict-{}", stack.id), "main-0")
        .await;
    stack
        .create_service("conflict", &td, &[("deckhand:deploy", "any")])
        .await;
    let digest = stack.push_image("main-1").await;
    let conflicts = FaultPlan::none().on("UpdateItem", FaultRates::always(Fault::Conflict));
    let proxy = Proxy::start(stack.emulator_url(), conflicts).await;
    let ports = stack
        .ports_through(Role::Deploy, &proxy, Arc::new(SystemClock))
        .await;
    let function = DeployFunction::new(ports, stack.config());
    let event = stack.push_event("push-conflict", Utc::now(), "main-1", &digest);
    let commit_ends = async {
        for _ in 0..1000 {
            if proxy
                .fault_counts()
                .get(&Fault::Conflict)
                .copied()
                .unwrap_or(0)
                >= 3
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        proxy.set_plan(FaultPlan::none());
    };

    let (summary, ()) = tokio::join!(function.handle(&event), commit_ends);

    let summary = summary.expect("the push deploys once the item is free");
    assert_eq!(summary.outcome, Outcome::Deployed, "{summary:?}");
    assert!(proxy.fault_counts()[&Fault::Conflict] >= 3);
    let running = stack.running_task_definition("conflict").await;
    let (definition, _) = stack.task_definition(&running).await;
    assert_eq!(
        definition.container_definitions()[0].image(),
        Some(stack.image(&format!("@{digest}")).as_str())
    );
}

/// Two services of one family deployed by one push register at the same moment; ECS refuses
/// one with "Too many concurrent attempts to create a new revision": nothing was registered,
/// so the registration is tried again, and the push deploys with one revision.
#[tokio::test]
async fn a_registration_refused_for_a_concurrent_one_is_tried_again() {
    let stack = Stack::new().await;
    let family = format!("busy-{}", stack.id);
    let td = stack.simple_task_definition(&family, "main-0").await;
    stack
        .create_service("busy", &td, &[("deckhand:deploy", "any")])
        .await;
    let digest = stack.push_image("main-1").await;
    let refused = FaultPlan::none().on(
        "RegisterTaskDefinition",
        FaultRates::always(Fault::ConcurrentRevisions),
    );
    let proxy = Proxy::start(stack.emulator_url(), refused).await;
    let ports = stack
        .ports_through(Role::Deploy, &proxy, Arc::new(SystemClock))
        .await;
    let function = DeployFunction::new(ports, stack.config());
    let event = stack.push_event("push-busy", Utc::now(), "main-1", &digest);
    let other_registration_ends = async {
        for _ in 0..1000 {
            if proxy
                .fault_counts()
                .contains_key(&Fault::ConcurrentRevisions)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        proxy.set_plan(FaultPlan::none());
    };

    let (summary, ()) = tokio::join!(function.handle(&event), other_registration_ends);

    let summary = summary.expect("the push deploys on the next attempt");
    assert_eq!(summary.outcome, Outcome::Deployed, "{summary:?}");
    assert_eq!(proxy.fault_counts()[&Fault::ConcurrentRevisions], 1);
    assert_eq!(stack.revisions(&family).await, 2, "one new revision");
}

/// A push to 50 services under ECS's documented throttling of `RegisterTaskDefinition` (a
/// burst of 20, then one a second, for the account): deckhand registers at that pace, shared
/// through the table, so every service deploys, once, in the deliveries Lambda makes (the
/// first and two retries).
#[tokio::test]
async fn a_push_to_fifty_services_under_ecs_throttling_deploys_every_one() {
    let stack = Stack::new().await;
    let services = crate::faults::deployable(&stack, "paced", 50).await;
    let digest = stack.push_image("main-1").await;
    let throttled = FaultPlan::none()
        .with_bucket(&["RegisterTaskDefinition"], 20, 1.0)
        .with_latency(LATENCY);
    let proxy = Proxy::start(stack.emulator_url(), throttled).await;
    let ports = stack
        .ports_through(Role::Deploy, &proxy, Arc::new(SystemClock))
        .await;
    let function = DeployFunction::new(ports, stack.config());
    let event = stack.push_event("push-paced", Utc::now(), "main-1", &digest);

    let started = std::time::Instant::now();
    let mut deliveries = 0;
    let summary = loop {
        deliveries += 1;
        match function.handle(&event).await {
            Ok(summary) => break summary,
            Err(e) if deliveries < 3 => eprintln!("delivery {deliveries}: {e}"),
            Err(e) => panic!("still failing after Lambda's last retry: {e}"),
        }
    };
    let took = started.elapsed();

    assert!(
        summary
            .services
            .iter()
            .all(|s| matches!(s.action, Action::Deployed | Action::Duplicate)),
        "{summary:?}"
    );
    crate::faults::assert_deployed_once(&stack, &services, &digest).await;
    let calls = proxy.calls();
    let registrations = calls
        .iter()
        .filter(|c| c.operation == "RegisterTaskDefinition")
        .count();
    let throttled = calls
        .iter()
        .filter(|c| c.operation == "RegisterTaskDefinition" && c.fault == Some(Fault::Throttle))
        .count();
    eprintln!(
        "50 services: {deliveries} delivery(ies), {} calls ({registrations} RegisterTaskDefinition, \
         {throttled} of them throttled), {:.1} s",
        calls.len(),
        took.as_secs_f64()
    );
    assert_eq!(deliveries, 1, "paced, the first delivery deploys them all");
}

/// A process knows the service's record as it last committed it, and takes the lock, the pace
/// slot and the processed mark's check in one transaction on that record. Once another process
/// moved the service in between, the record is at another version: DynamoDB refuses the
/// transaction, nothing is written, and the push takes the lock alone, on the record as it is.
#[tokio::test]
async fn a_push_from_a_process_that_knows_an_older_record_takes_the_lock_alone() {
    let stack = Stack::new().await;
    let td = stack
        .simple_task_definition(&format!("older-{}", stack.id), "main-0")
        .await;
    stack
        .create_service("older", &td, &[("deckhand:deploy", "any")])
        .await;
    let key = stack.service_key("older");
    let (ports, log) = stack.counted_ports(Role::Deploy);
    let a = DeployFunction::new(ports, stack.config());
    let b = DeployFunction::new(
        stack.ports(Role::Deploy, Arc::new(SystemClock)),
        stack.config(),
    );
    let push = async |function: &DeployFunction, n: u32| {
        let digest = push_to(&stack, &stack.repository, &format!("main-{n}")).await;
        let event = push_event(
            &format!("older-{n}"),
            &stack.repository,
            &format!("main-{n}"),
            &digest,
        );
        let summary = function.handle(&event).await.expect("push");
        assert_eq!(summary.outcome, Outcome::Deployed, "{summary:?}");
        stack.running_task_definition("older").await
    };
    push(&a, 1).await;
    let moved_by_b = push(&b, 2).await;
    log.clear();
    let running = push(&a, 3).await;

    let calls = log.calls();
    let transactions = calls
        .iter()
        .filter(|c| *c == "DynamoDB.TransactWriteItems")
        .count();
    assert_eq!(
        transactions, 2,
        "the refused lock and the commit: {calls:?}"
    );
    assert!(
        calls.contains(&"DynamoDB.UpdateItem".to_owned()),
        "the lock taken alone: {calls:?}"
    );
    let state = stack.store().load(&key).await.unwrap();
    let deployment = state.deployment.expect("recorded");
    assert_eq!(deployment.from, moved_by_b, "from what process b deployed");
    assert_eq!(deployment.to, running);
}
