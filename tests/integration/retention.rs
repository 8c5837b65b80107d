//! Revision retention against moto: `deckhand:keep-revisions` deregisters what no service
//! needs once each deployment completes, and the rollback target stays usable.

use std::sync::Arc;

use aws_sdk_ecs::types::TaskDefinitionStatus;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use deckhand::adapters::memory::FixedClock;
use deckhand::app::deploy::DeployFunction;
use deckhand::app::rollback::RollbackFunction;
use deckhand::domain::service::revision_name;
use deckhand::ports::StateStore as _;
use deckhand::report::{Action, Outcome};

use crate::harness::{Role, Stack};
use crate::rollback::{alarm_event, metric_alarm};

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[tokio::test]
async fn keeping_three_over_ten_deploys_keeps_the_newest_three_and_an_older_known_good_one() {
    let stack = Stack::new().await;
    let family = format!("shop-{}", stack.id);
    let td = stack.simple_task_definition(&family, "main-1").await;
    stack
        .create_service(
            "shop",
            &td,
            &[
                ("deckhand:deploy", "prefix=main-"),
                ("deckhand:keep-revisions", "3"),
            ],
        )
        .await;
    let t0 = Utc::now();
    let clock = Arc::new(FixedClock::new(t0));
    let deploy = DeployFunction::new(stack.ports(Role::Deploy, clock.clone()), stack.config());

    // main-2 (revision 2) outlives its 30-minute guard window and becomes known-good; the
    // nine deploys after it come two minutes apart, too close for any of them to.
    let mut done_at = t0;
    for n in 2..=11_i64 {
        let start = match n {
            2 => t0,
            _ => t0 + TimeDelta::hours(1) + TimeDelta::minutes(2 * (n - 3)),
        };
        clock.set(start);
        let tag = format!("main-{n}");
        let digest = stack.push_image(&tag).await;
        let push = stack.push_event(&format!("push-{n}"), start, &tag, &digest);
        let pushed = deploy.handle(&push).await.unwrap();
        assert_eq!(pushed.outcome, Outcome::Deployed, "{pushed:?}");
        done_at = start + TimeDelta::minutes(1);
        clock.set(done_at);
        let completed = stack.deployment_event(
            "ecs-deployment-completed",
            &format!("done-{n}"),
            "shop",
            done_at,
        );
        let summary = deploy.handle(&completed).await.unwrap();
        assert_eq!(summary.outcome, Outcome::Completed, "{summary:?}");
    }

    // ECS keeps the newest three of deckhand's revisions, the known-good one and revision 1,
    // which the test registered (as Terraform or a pipeline would): deckhand cannot know who
    // else needs it. The rest are INACTIVE.
    assert_eq!(
        stack
            .revision_numbers(&family, TaskDefinitionStatus::Active)
            .await,
        [1, 2, 9, 10, 11]
    );
    assert_eq!(
        stack
            .revision_numbers(&family, TaskDefinitionStatus::Inactive)
            .await,
        [3, 4, 5, 6, 7, 8]
    );
    let key = stack.service_key("shop");
    let state = stack.store().load(&key).await.unwrap();
    let known_good = state.known_good.clone().unwrap();
    assert_eq!(revision_name(&known_good), format!("{family}:2"));
    assert_eq!(
        revision_name(&stack.running_task_definition("shop").await),
        format!("{family}:11")
    );

    // The history says what was deregistered, and when.
    let history = stack.store().history(&key, 100).await.unwrap();
    let mut deregistered: Vec<String> = history
        .iter()
        .filter(|r| r.action == Action::Deregistered)
        .flat_map(|r| {
            r.deregistered
                .iter()
                .map(|arn| revision_name(arn).to_owned())
        })
        .collect();
    deregistered.sort_by_key(|name| name.rsplit(':').next().and_then(|n| n.parse::<i32>().ok()));
    let expected: Vec<String> = [3, 4, 5, 6, 7, 8]
        .iter()
        .map(|n| format!("{family}:{n}"))
        .collect();
    assert_eq!(deregistered, expected);
    assert!(
        history
            .iter()
            .filter(|r| r.action == Action::Deregistered)
            .all(|r| r.cause.starts_with("done-") && r.reason.contains("keeping the newest 3"))
    );

    // The rollback target is still there to roll back to.
    let arn = metric_alarm(&stack, &format!("shop-5xx-{}", stack.id), Some("shop"), &[]).await;
    let alarmed = done_at + TimeDelta::minutes(5);
    clock.set(alarmed);
    let rollback =
        RollbackFunction::new(stack.ports(Role::Rollback, clock.clone()), stack.config());
    let event = alarm_event(
        &stack,
        "alarm-1",
        &arn,
        "ALARM",
        "OK",
        &rfc3339(alarmed),
        Some("shop"),
    );
    let rolled = rollback.handle(&event).await.unwrap();
    assert_eq!(rolled.outcome, Outcome::RolledBack, "{rolled:?}");
    assert_eq!(stack.running_task_definition("shop").await, known_good);
}
