//! What one push and one rollback cost: their AWS calls, and the sequential stages they take
//! through a proxy that adds a network's latency to each call (calls made side by side
//! overlap, as on the way to AWS). SPEC, "Fleet cost".

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use deckhand::adapters::memory::FixedClock;
use deckhand::app::deploy::DeployFunction;
use deckhand::app::rollback::RollbackFunction;
use deckhand::ports::Clock;
use deckhand::report::Outcome;
use testkit::proxy::{FaultPlan, Proxy, call_stages, stages};

use crate::harness::{Role, Stack};
use crate::rollback::{ALARMED, Guarded, utc};

#[tokio::test]
async fn the_proxy_sees_every_call_of_a_deploy_by_service_and_operation() {
    // A server of its own: the first push pages through every opted-in service on it, and the
    // other tests' services would add pages.
    let stack = Stack::isolated().await;
    let td = stack
        .simple_task_definition(&format!("proxied-{}", stack.id), "main-0")
        .await;
    stack
        .create_service("proxied", &td, &[("deckhand:deploy", "any")])
        .await;
    let digest = stack.push_image("main-1").await;
    // Latency as on the way to AWS: calls made side by side overlap, and the stages show.
    let proxy = Proxy::start(
        stack.emulator_url(),
        FaultPlan::none().with_latency(Duration::from_millis(20)),
    )
    .await;
    let clock = Arc::new(FixedClock::new(Utc::now()));
    let ports = stack
        .ports_through(Role::Deploy, &proxy, clock.clone())
        .await;
    let function = DeployFunction::new(ports, stack.config());

    let event = stack.push_event("push-proxied", Utc::now(), "main-1", &digest);
    assert_eq!(
        function.handle(&event).await.unwrap().outcome,
        Outcome::Deployed
    );
    let sorted = |names: &[&str]| {
        let mut names: Vec<String> = names.iter().map(|c| (*c).to_owned()).collect();
        names.sort();
        names
    };
    // The first push of the repository looks through the fleet, reads the revision and fills
    // the index; the process knows no record of the service, so its lock and pace slot are
    // taken alone, and the processed marks read; the lock was never released before, so under
    // it the service is read again. Calls of one stage run side by side: compared sorted.
    let first = [
        "dynamodb.Query",
        "ecr.DescribeImages",
        "tagging.GetResources",
        "ecs.DescribeServices",
        "dynamodb.Query",
        "dynamodb.BatchGetItem",
        "ecs.DescribeTaskDefinition",
        "dynamodb.BatchWriteItem",
        "dynamodb.UpdateItem",
        "dynamodb.UpdateItem",
        "ecs.DescribeServices",
        "ecs.RegisterTaskDefinition",
        "ecs.UpdateService",
        "dynamodb.TransactWriteItems",
        "sns.Publish",
    ];
    let mut called = proxy.call_names();
    called.sort();
    assert_eq!(called, sorted(&first));
    assert!(proxy.calls().iter().all(|c| c.fault.is_none()));

    // Minutes later, the next push: the index lists the service, and its lock was released
    // long before this push read it, so it is not read again under the lock.
    clock.advance(chrono::TimeDelta::minutes(5));
    let digest = stack.push_image("main-2").await;
    proxy.clear();
    let event = stack.push_event("push-proxied-2", clock.now(), "main-2", &digest);
    assert_eq!(
        function.handle(&event).await.unwrap().outcome,
        Outcome::Deployed
    );
    // The index and ECR side by side; the service read beside one transaction of its lock,
    // its pace slot and the check that the event is new to it (the process committed the
    // service's record, and knows it); the revision the last push registered known without
    // describing it; the announcement beside the commit: eight calls in five stages.
    let warm = [
        "dynamodb.Query",
        "ecr.DescribeImages",
        "ecs.DescribeServices",
        "dynamodb.TransactWriteItems",
        "ecs.RegisterTaskDefinition",
        "ecs.UpdateService",
        "dynamodb.TransactWriteItems",
        "sns.Publish",
    ];
    let mut called = proxy.call_names();
    called.sort();
    assert_eq!(called, sorted(&warm));
    assert_eq!(stages(&proxy.calls()), 5, "{:?}", proxy.calls());
}

/// The calls of one invocation in the order of its stages; calls of one stage run side by
/// side, so the log is compared in sorted order.
fn sorted(calls: &[&str]) -> Vec<String> {
    let mut calls: Vec<String> = calls.iter().map(|c| (*c).to_owned()).collect();
    calls.sort();
    calls
}

#[tokio::test]
async fn a_push_seconds_after_the_last_makes_nine_aws_calls() {
    let stack = Stack::new().await;
    let td = stack
        .simple_task_definition(&format!("calls-{}", stack.id), "main-0")
        .await;
    stack
        .create_service("calls", &td, &[("deckhand:deploy", "any")])
        .await;
    // The first push the repository ever sees looks through the fleet and fills the index.
    let digest = stack.push_image("main-1").await;
    let (ports, log) = stack.counted_ports(Role::Deploy);
    let function = DeployFunction::new(ports, stack.config());
    let event = stack.push_event("push-first", Utc::now(), "main-1", &digest);
    assert_eq!(
        function.handle(&event).await.unwrap().outcome,
        Outcome::Deployed
    );
    let first = log.calls();
    assert!(
        first.contains(&"Resource Groups Tagging API.GetResources".to_owned()),
        "{first:?}"
    );

    // Every later push: no call that grows with the fleet, and the revision the push before
    // registered known without describing it. (The same process: a new one knows neither the
    // revision nor the service's record, and pays for both, docs/performance.md.)
    let digest = stack.push_image("main-2").await;
    log.clear();
    let event = stack.push_event("push-calls", Utc::now(), "main-2", &digest);
    assert_eq!(
        function.handle(&event).await.unwrap().outcome,
        Outcome::Deployed
    );
    let mut calls = log.calls();
    calls.sort();
    assert_eq!(
        calls,
        sorted(&[
            "DynamoDB.Query",              // the services the repository index lists; beside:
            "ECR.DescribeImages",          // is the digest there, the tag still on it?
            "ECS.DescribeServices",        // their task definitions and tags; beside:
            "DynamoDB.TransactWriteItems", // its lock, a pace slot, the event new to it
            "ECS.DescribeServices",        // released a moment ago: still on the revision read?
            "ECS.RegisterTaskDefinition",  // the new revision
            "ECS.UpdateService",           // move the service (the lease still covers it)
            "DynamoDB.TransactWriteItems", // state, history, processed mark, index; unlock
            "SNS.Publish",                 // deploy.started, beside the commit
        ])
    );

    // A redelivery is recorded and stops there: the lock's transaction finds the event's
    // processed mark, and nothing is locked, changed or published.
    log.clear();
    assert_eq!(
        function.handle(&event).await.unwrap().outcome,
        Outcome::Duplicate
    );
    let mut calls = log.calls();
    calls.sort();
    assert_eq!(
        calls,
        sorted(&[
            "DynamoDB.Query",
            "ECR.DescribeImages",
            "ECS.DescribeServices",
            "DynamoDB.TransactWriteItems",
            "DynamoDB.TransactWriteItems"
        ])
    );
}

/// An alarm on a metric of a service deckhand deployed and knows: its lock is taken beside the
/// read of the service, ECS is changed in the fourth stage, and `rollback.started` goes out
/// beside the commit, in the fifth.
#[tokio::test]
async fn an_alarm_changes_ecs_in_its_fourth_stage() {
    let g = Guarded::deployed(&[("api", &[])]).await;
    let arn = g.alarm("api-5xx", Some("api"), &[]).await;
    let proxy = Proxy::start(
        g.stack.emulator_url(),
        FaultPlan::none().with_latency(Duration::from_millis(20)),
    )
    .await;
    let ports = g
        .stack
        .ports_through(Role::Rollback, &proxy, g.clock.clone())
        .await;
    let rollback = RollbackFunction::new(ports, g.stack.config());
    g.clock.set(utc(ALARMED));
    let alarm = g.event("alarm-1", &arn, "ALARM", "OK", ALARMED, Some("api"));
    let rolled = rollback.handle(&alarm).await.unwrap();
    assert_eq!(rolled.outcome, Outcome::RolledBack, "{rolled:?}");

    let calls = proxy.calls();
    let stage = call_stages(&calls);
    let stages_of = |name: &str| -> Vec<usize> {
        calls
            .iter()
            .zip(&stage)
            .filter(|(c, _)| c.name() == name)
            .map(|(_, s)| *s)
            .collect()
    };
    assert_eq!(stages_of("ecs.DescribeServices"), [2], "{calls:?}");
    assert_eq!(
        stages_of("dynamodb.UpdateItem"),
        [2],
        "the lock beside the read"
    );
    assert_eq!(stages_of("ecs.UpdateService"), [4], "{calls:?}");
    assert_eq!(stages_of("sns.Publish"), [5], "beside the commit");
    assert_eq!(stages_of("dynamodb.TransactWriteItems"), [5]);
    assert_eq!(stages(&calls), 5);
    assert!(calls.len() <= 10, "{} calls: {calls:?}", calls.len());
}
