//! The scan gate against moto: pushes wait for the ECR scan of their digest, which decides.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use deckhand::adapters::memory::FixedClock;
use deckhand::app::deploy::DeployFunction;
use deckhand::config::Config;
use deckhand::domain::scan::FindingSeverity;
use deckhand::ports::StateStore;
use deckhand::report::{Action, Outcome, Summary};
use serde_json::{Value, json};

use crate::harness::{Role, Stack};

/// The stack's configuration with the gate holding back HIGH and CRITICAL findings.
fn gated(stack: &Stack) -> Config {
    let mut config = stack.config();
    config.require_scan = Some(FindingSeverity::High);
    config
}

/// A service `name` of its own family, running `main-1` from the stack's repository.
async fn service(stack: &Stack, name: &str) -> (String, String) {
    let family = format!("{name}-{}", stack.id);
    let td = stack.simple_task_definition(&family, "main-1").await;
    stack
        .create_service(name, &td, &[("deckhand:deploy", "prefix=main-")])
        .await;
    (family, td)
}

async fn send(function: &DeployFunction, event: &Value) -> Summary {
    function
        .handle(event)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn running_image(stack: &Stack, service: &str) -> String {
    let arn = stack.running_task_definition(service).await;
    let (td, _) = stack.task_definition(&arn).await;
    td.container_definitions()[0]
        .image()
        .unwrap_or_default()
        .to_owned()
}

async fn actions(stack: &Stack, service: &str) -> Vec<Action> {
    let mut history = stack
        .store()
        .history(&stack.service_key(service), 50)
        .await
        .unwrap();
    history.reverse();
    history.iter().map(|r| r.action).collect()
}

/// The digests of the pushes the service holds for their scan, from its state.
async fn waiting_digests(stack: &Stack, service: &str) -> Vec<String> {
    let key = stack.service_key(service);
    let state = stack.store().load(&key).await.unwrap();
    state
        .waiting
        .values()
        .map(|w| w.digest.to_string())
        .collect()
}

fn minutes(t0: DateTime<Utc>, n: i64) -> DateTime<Utc> {
    t0 + TimeDelta::minutes(n)
}

#[tokio::test]
async fn a_gated_push_waits_for_its_scan_and_a_clean_scan_deploys_it() {
    let stack = Stack::new().await;
    let (family, td) = service(&stack, "web").await;
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), gated(&stack));
    let digest = stack.push_image("main-2").await;
    let t0 = Utc::now();

    let waiting = send(
        &function,
        &stack.push_event("push-1", t0, "main-2", &digest),
    )
    .await;
    assert_eq!(waiting.outcome, Outcome::Waiting, "{waiting:?}");
    assert!(
        waiting.services[0]
            .reason
            .contains("waiting for the ECR scan")
    );
    assert_eq!(stack.running_task_definition("web").await, td);
    assert_eq!(stack.revisions(&family).await, 1);
    assert!(
        stack.notifications().is_empty(),
        "no deploy.skipped while waiting"
    );
    let key = stack.service_key("web");
    assert_eq!(waiting_digests(&stack, "web").await, [digest.as_str()]);
    assert_eq!(stack.store().waiting().await.unwrap(), vec![key.clone()]);

    let counts = json!({"MEDIUM": 2, "LOW": 4});
    stack.scan(&digest, counts.clone()).await;
    let scan = stack.scan_event("scan-1", minutes(t0, 1), &digest, "COMPLETE", counts);
    let clean = send(&function, &scan).await;
    assert_eq!(clean.outcome, Outcome::Deployed, "{clean:?}");
    assert!(
        clean.services[0]
            .reason
            .starts_with("scan clean (2 MEDIUM, 4 LOW)"),
        "{}",
        clean.services[0].reason
    );
    assert_eq!(
        running_image(&stack, "web").await,
        stack.image(&format!("@{digest}"))
    );
    assert_eq!(stack.revisions(&family).await, 2);
    assert!(stack.store().load(&key).await.unwrap().waiting.is_empty());
    assert!(stack.store().waiting().await.unwrap().is_empty());
    assert_eq!(stack.notification_kinds(), ["deploy.started"]);
    assert_eq!(
        actions(&stack, "web").await,
        [Action::Waiting, Action::Deployed]
    );

    // The scan event delivered again finds nobody waiting.
    assert_eq!(send(&function, &scan).await.outcome, Outcome::Ignored);
    assert_eq!(stack.revisions(&family).await, 2);
}

#[tokio::test]
async fn a_critical_scan_quarantines_every_waiting_service_and_a_later_clean_digest_deploys() {
    let stack = Stack::new().await;
    let (api_family, api_td) = service(&stack, "api").await;
    let (worker_family, worker_td) = service(&stack, "worker").await;
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), gated(&stack));
    let bad = stack.push_image("main-2").await;
    let t0 = Utc::now();

    let waiting = send(&function, &stack.push_event("push-bad", t0, "main-2", &bad)).await;
    assert_eq!(waiting.outcome, Outcome::Waiting);
    assert_eq!(waiting.services.len(), 2);
    let counts = json!({"CRITICAL": 1, "HIGH": 3, "LOW": 7});
    stack.scan(&bad, counts.clone()).await;
    let critical = send(
        &function,
        &stack.scan_event("scan-bad", minutes(t0, 1), &bad, "COMPLETE", counts),
    )
    .await;
    assert_eq!(critical.outcome, Outcome::Quarantined, "{critical:?}");
    assert_eq!(critical.services.len(), 2);
    for report in &critical.services {
        assert_eq!(report.action, Action::Quarantined);
        assert!(
            report.reason.contains("1 CRITICAL, 3 HIGH"),
            "{}",
            report.reason
        );
    }
    for (name, family, td) in [
        ("api", &api_family, &api_td),
        ("worker", &worker_family, &worker_td),
    ] {
        assert_eq!(stack.running_task_definition(name).await, *td);
        assert_eq!(stack.revisions(family).await, 1);
        let state = stack.store().load(&stack.service_key(name)).await.unwrap();
        assert!(state.quarantine.contains_key(&bad), "{name}: {state:?}");
        assert!(state.waiting.is_empty());
    }
    let published = stack.notifications();
    assert_eq!(published.len(), 2);
    for (_, body, attributes) in &published {
        assert_eq!(body["kind"], "deploy.quarantined");
        assert_eq!(body["severity"], "warning");
        assert_eq!(body["details"]["digest"], bad);
        assert_eq!(body["details"]["findingSeverityCounts"]["CRITICAL"], 1);
        assert_eq!(attributes["kind"]["Value"], "deploy.quarantined");
    }

    // The bad digest is refused at once when pushed again; a fixed image waits and deploys.
    let again = send(
        &function,
        &stack.push_event("push-bad-again", minutes(t0, 2), "main-2b", &bad),
    )
    .await;
    assert_eq!(again.outcome, Outcome::Skipped, "{again:?}");
    let good = stack.push_image("main-3").await;
    let waiting = send(
        &function,
        &stack.push_event("push-good", minutes(t0, 3), "main-3", &good),
    )
    .await;
    assert_eq!(waiting.outcome, Outcome::Waiting);
    stack.scan(&good, json!({"LOW": 1})).await;
    let clean = send(
        &function,
        &stack.scan_event(
            "scan-good",
            minutes(t0, 4),
            &good,
            "COMPLETE",
            json!({"LOW": 1}),
        ),
    )
    .await;
    assert_eq!(clean.outcome, Outcome::Deployed, "{clean:?}");
    for name in ["api", "worker"] {
        assert_eq!(
            running_image(&stack, name).await,
            stack.image(&format!("@{good}"))
        );
    }
}

#[tokio::test]
async fn a_scan_for_a_digest_nobody_waits_for_is_ignored() {
    let stack = Stack::new().await;
    let (family, td) = service(&stack, "web").await;
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), gated(&stack));
    let digest = stack.push_image("main-2").await;
    let counts = json!({"CRITICAL": 4});
    stack.scan(&digest, counts.clone()).await;

    let summary = send(
        &function,
        &stack.scan_event("scan-1", Utc::now(), &digest, "COMPLETE", counts),
    )
    .await;
    assert_eq!(summary.outcome, Outcome::Ignored);
    assert!(
        summary
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("no push waits"),
        "{summary:?}"
    );
    assert_eq!(stack.running_task_definition("web").await, td);
    assert_eq!(stack.revisions(&family).await, 1);
    assert!(actions(&stack, "web").await.is_empty());
    assert!(stack.notifications().is_empty());
    let state = stack.store().load(&stack.service_key("web")).await.unwrap();
    assert!(state.quarantine.is_empty());
}

#[tokio::test]
async fn scan_events_out_of_order_with_their_pushes_deploy_the_newest_clean_digest() {
    let stack = Stack::new().await;
    let (family, _) = service(&stack, "web").await;
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), gated(&stack));
    let t0 = Utc::now();

    // A scan that overtakes its push: nobody waits yet, so it is ignored; the push then finds
    // the completed scan in ECR and deploys without waiting.
    let first = stack.push_image("main-2").await;
    stack.scan(&first, json!({"LOW": 1})).await;
    let early = stack.scan_event("scan-first", t0, &first, "COMPLETE", json!({"LOW": 1}));
    assert_eq!(send(&function, &early).await.outcome, Outcome::Ignored);
    let push = send(
        &function,
        &stack.push_event("push-first", t0, "main-2", &first),
    )
    .await;
    assert_eq!(push.outcome, Outcome::Deployed, "{push:?}");
    assert_eq!(push.services.len(), 1);
    assert!(push.services[0].reason.starts_with("scan clean (1 LOW)"));
    assert_eq!(
        running_image(&stack, "web").await,
        stack.image(&format!("@{first}"))
    );

    // Two pushes wait in turn (the newer replaces the older); their scans arrive newest first.
    let older = stack.push_image("main-3").await;
    let newer = stack.push_image("main-4").await;
    send(
        &function,
        &stack.push_event("push-older", minutes(t0, 1), "main-3", &older),
    )
    .await;
    let replaced = send(
        &function,
        &stack.push_event("push-newer", minutes(t0, 2), "main-4", &newer),
    )
    .await;
    assert_eq!(replaced.outcome, Outcome::Waiting);
    assert_eq!(waiting_digests(&stack, "web").await, [newer.as_str()]);
    stack.scan(&newer, json!({})).await;
    let newest = send(
        &function,
        &stack.scan_event("scan-newer", minutes(t0, 3), &newer, "COMPLETE", json!({})),
    )
    .await;
    assert_eq!(newest.outcome, Outcome::Deployed, "{newest:?}");
    stack.scan(&older, json!({})).await;
    let late = send(
        &function,
        &stack.scan_event("scan-older", minutes(t0, 4), &older, "COMPLETE", json!({})),
    )
    .await;
    assert_eq!(late.outcome, Outcome::Ignored, "{late:?}");
    assert_eq!(
        running_image(&stack, "web").await,
        stack.image(&format!("@{newer}"))
    );
    assert_eq!(stack.revisions(&family).await, 3);
    assert_eq!(
        actions(&stack, "web").await,
        [
            Action::Waiting,
            Action::Deployed,
            Action::Waiting,
            Action::Waiting,
            Action::Skipped,
            Action::Deployed
        ]
    );
    assert_eq!(
        stack.notification_kinds(),
        ["deploy.started", "deploy.started"]
    );
}

#[tokio::test]
async fn a_wait_that_runs_out_is_decided_from_ecr_findings_on_the_next_event() {
    let stack = Stack::new().await;
    let (family, td) = service(&stack, "web").await;
    let t0 = Utc::now();
    let clock = Arc::new(FixedClock::new(t0));
    let function = DeployFunction::new(stack.ports(Role::Deploy, clock.clone()), gated(&stack));
    let bad = stack.push_image("main-2").await;
    let waiting = send(&function, &stack.push_event("push-1", t0, "main-2", &bad)).await;
    assert_eq!(waiting.outcome, Outcome::Waiting);
    // The scan ran but its event was lost.
    stack.scan(&bad, json!({"HIGH": 2})).await;

    // Before the wait runs out, the next event leaves the push waiting.
    clock.advance(TimeDelta::minutes(10));
    let pr = stack.push_image("pr-7").await;
    let unrelated = stack.push_event("push-pr", minutes(t0, 10), "pr-7", &pr);
    let early = send(&function, &unrelated).await;
    assert_eq!(early.outcome, Outcome::Ignored, "{early:?}");
    assert_eq!(stack.store().waiting().await.unwrap().len(), 1);

    // After it, the next event asks ECR, whose findings quarantine the digest.
    clock.advance(TimeDelta::minutes(21));
    let pr = stack.push_image("pr-8").await;
    let unrelated = stack.push_event("push-pr-2", minutes(t0, 31), "pr-8", &pr);
    let late = send(&function, &unrelated).await;
    let decided = late
        .services
        .iter()
        .find(|s| s.action == Action::Quarantined)
        .unwrap_or_else(|| panic!("{late:?}"));
    assert!(decided.reason.contains("2 HIGH"), "{}", decided.reason);
    assert!(stack.store().waiting().await.unwrap().is_empty());
    let state = stack.store().load(&stack.service_key("web")).await.unwrap();
    assert!(state.quarantine.contains_key(&bad));
    assert_eq!(stack.running_task_definition("web").await, td);
    assert_eq!(stack.revisions(&family).await, 1);
    assert_eq!(stack.notification_kinds(), ["deploy.quarantined"]);
}

#[tokio::test]
async fn the_round_of_held_pushes_settles_waits_that_ran_out_from_ecr() {
    let stack = Stack::new().await;
    let (family, td) = service(&stack, "web").await;
    let t0 = Utc::now();
    let clock = Arc::new(FixedClock::new(t0));
    let function = DeployFunction::new(stack.ports(Role::Deploy, clock.clone()), gated(&stack));
    // The deploy function's own schedule (`release-held`), the backstop of scan events.
    let round = json!({"action": "release-held"});

    // A scan that never ran: after the wait, the digest stays undeployed and this is said.
    let unscanned = stack.push_image("main-2").await;
    send(
        &function,
        &stack.push_event("push-1", t0, "main-2", &unscanned),
    )
    .await;
    clock.advance(TimeDelta::minutes(29));
    let early = function.handle(&round).await.unwrap();
    assert!(early.services.is_empty(), "{early:?}");
    clock.advance(TimeDelta::minutes(2));
    let late = function.handle(&round).await.unwrap();
    assert_eq!(late.outcome, Outcome::Skipped, "{late:?}");
    assert!(
        late.services[0].reason.contains("ECR has no scan"),
        "{}",
        late.services[0].reason
    );
    assert_eq!(stack.running_task_definition("web").await, td);
    assert_eq!(stack.notification_kinds(), ["deploy.skipped"]);

    // A clean scan whose event never came: the round after the wait deploys it.
    let clean = stack.push_image("main-3").await;
    send(
        &function,
        &stack.push_event("push-2", minutes(t0, 32), "main-3", &clean),
    )
    .await;
    stack.scan(&clean, json!({"MEDIUM": 1})).await;
    clock.advance(TimeDelta::minutes(31));
    let deployed = function.handle(&round).await.unwrap();
    assert_eq!(deployed.outcome, Outcome::Deployed, "{deployed:?}");
    assert_eq!(
        running_image(&stack, "web").await,
        stack.image(&format!("@{clean}"))
    );
    assert_eq!(stack.revisions(&family).await, 2);
    assert!(stack.store().waiting().await.unwrap().is_empty());
    assert_eq!(
        stack.notification_kinds(),
        ["deploy.skipped", "deploy.started"]
    );
}
