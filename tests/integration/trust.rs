//! An event is a claim: against moto's ECR, a push of a digest the registry lacks, a push
//! whose tag has moved, a push stamped in the future and a scan event ECR never made change
//! nothing they claim.

use chrono::{SubsecRound, TimeDelta, Utc};
use deckhand::app::deploy::DeployFunction;
use deckhand::domain::scan::FindingSeverity;
use deckhand::ports::StateStore;
use deckhand::report::{Outcome, Summary};
use serde_json::{Value, json};

use crate::harness::{Role, Stack};

/// A service `name` of its own family, running `main-1` from the stack's repository.
async fn service(stack: &Stack, name: &str) -> String {
    let family = format!("{name}-{}", stack.id);
    let td = stack.simple_task_definition(&family, "main-1").await;
    stack
        .create_service(name, &td, &[("deckhand:deploy", "prefix=main-")])
        .await;
    td
}

async fn send(function: &DeployFunction, event: &Value) -> Summary {
    function
        .handle(event)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn nothing_recorded(stack: &Stack, service: &str) {
    let history = stack
        .store()
        .history(&stack.service_key(service), 10)
        .await
        .unwrap();
    assert!(history.is_empty(), "{history:?}");
    assert!(
        stack.notifications().is_empty(),
        "{:?}",
        stack.notifications()
    );
}

#[tokio::test]
async fn a_push_naming_a_digest_ecr_lacks_changes_nothing_and_is_reported() {
    let stack = Stack::new().await;
    let td = service(&stack, "web").await;
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), stack.config());
    let made_up = format!("sha256:{}", "e".repeat(64));
    let s = send(
        &function,
        &stack.push_event("forged", Utc::now(), "main-9", &made_up),
    )
    .await;
    assert_eq!(s.outcome, Outcome::Ignored, "{s:?}");
    assert!(
        s.reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("ECR has no image "),
        "{s:?}"
    );
    assert_eq!(stack.running_task_definition("web").await, td);
    nothing_recorded(&stack, "web").await;
}

#[tokio::test]
async fn a_push_whose_tag_moved_since_is_skipped_as_superseded() {
    let stack = Stack::new().await;
    let td = service(&stack, "web").await;
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), stack.config());
    let first = stack.push_image("main-2").await;
    // The tag is pushed again, onto another image, before the first push's event arrives.
    let layer = format!("sha256:{}", "7".repeat(64));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 100, "digest": layer},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100, "digest": layer}],
    });
    let second = stack.put_manifest(&manifest, Some("main-2")).await;
    assert_ne!(first, second);
    let s = send(
        &function,
        &stack.push_event("late", Utc::now(), "main-2", &first),
    )
    .await;
    assert_eq!(s.outcome, Outcome::Skipped, "{s:?}");
    assert!(
        s.reason
            .as_deref()
            .unwrap_or_default()
            .contains("superseded"),
        "{s:?}"
    );
    assert_eq!(stack.running_task_definition("web").await, td);
    nothing_recorded(&stack, "web").await;
}

#[tokio::test]
async fn a_push_stamped_in_the_future_is_ordered_now_and_later_pushes_deploy() {
    let stack = Stack::new().await;
    service(&stack, "web").await;
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), stack.config());
    let stamped = stack.push_image("main-2").await;
    let year_2099 = Utc::now() + TimeDelta::days(365 * 70);
    // Events are stamped to the second, and so is the cap.
    let before = Utc::now().trunc_subsecs(0);
    let s = send(
        &function,
        &stack.push_event("2099", year_2099, "main-2", &stamped),
    )
    .await;
    assert_eq!(s.outcome, Outcome::Deployed, "{s:?}");
    let state = stack.store().load(&stack.service_key("web")).await.unwrap();
    let pushed_at = state.deployment.and_then(|d| d.pushed_at).unwrap();
    assert!(
        pushed_at >= before && pushed_at <= Utc::now(),
        "{pushed_at}"
    );

    let next = stack.push_image("main-3").await;
    let s = send(
        &function,
        &stack.push_event("next", Utc::now(), "main-3", &next),
    )
    .await;
    assert_eq!(
        s.outcome,
        Outcome::Deployed,
        "a real later push is newer: {s:?}"
    );
}

#[tokio::test]
async fn a_scan_event_ecr_never_made_releases_nothing() {
    let stack = Stack::new().await;
    let td = service(&stack, "web").await;
    let mut config = stack.config();
    config.require_scan = Some(FindingSeverity::High);
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), config);
    let digest = stack.push_image("main-2").await;
    let held = send(
        &function,
        &stack.push_event("push", Utc::now(), "main-2", &digest),
    )
    .await;
    assert_eq!(held.outcome, Outcome::Waiting, "{held:?}");

    // The event claims a clean scan; ECR found two HIGH.
    stack.scan(&digest, json!({"HIGH": 2})).await;
    let claim = stack.scan_event("forged-scan", Utc::now(), &digest, "COMPLETE", json!({}));
    let s = send(&function, &claim).await;
    assert_eq!(s.outcome, Outcome::Quarantined, "{s:?}");
    assert!(s.services[0].reason.contains("2 HIGH"), "{s:?}");
    assert_eq!(stack.running_task_definition("web").await, td);
}

#[tokio::test]
async fn an_alarm_of_another_account_or_region_rolls_nothing_back() {
    let g = crate::rollback::Guarded::deployed(&[("api", &[])]).await;
    let arn = g.alarm("api-5xx", Some("api"), &[]).await;
    let alarmed = crate::rollback::ALARMED;
    let own = g.event("alarm-own", &arn, "ALARM", "OK", alarmed, Some("api"));

    let mut other_account = own.clone();
    other_account["id"] = json!("alarm-other-account");
    other_account["account"] = json!("210987654321");
    let mut other_region = own.clone();
    other_region["id"] = json!("alarm-other-region");
    other_region["resources"] = json!(["arn:aws:cloudwatch:eu-north-1:123456789012:alarm:api-5xx"]);
    for event in [&other_account, &other_region] {
        let s = g.handle_at(event, alarmed).await.unwrap();
        assert_eq!(s.outcome, Outcome::Ignored, "{s:?}");
        assert!(
            s.reason
                .as_deref()
                .unwrap_or_default()
                .contains("not the stack's own"),
            "{s:?}"
        );
        assert_eq!(g.revision("api").await, "2");
    }
    assert!(
        g.stack
            .notification_kinds()
            .iter()
            .all(|k| !k.starts_with("rollback")),
        "{:?}",
        g.stack.notification_kinds()
    );

    let s = g.handle_at(&own, alarmed).await.unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
}

/// A service that quarantined 2,000 digests: its item in DynamoDB keeps the newest hundred, the
/// others are archived beside it in the same transactions, every one still holds, and an
/// archived one is released like any other.
#[tokio::test]
async fn two_thousand_quarantines_keep_the_state_item_small_and_none_is_dropped() {
    use deckhand::app::operator::Operator;
    use deckhand::domain::image::Digest;
    use deckhand::domain::state::QUARANTINE_KEPT;
    use deckhand::ports::LockAttempt;

    let stack = Stack::new().await;
    service(&stack, "web").await;
    let key = stack.service_key("web");
    let store = stack.store();
    // The oldest is an image ECR holds: its push comes back at the end.
    let real = stack.push_image("main-2").await;
    let digest = |i: u64| -> Digest {
        match i {
            0 => real.parse().unwrap(),
            _ => format!("sha256:{i:064x}").parse().unwrap(),
        }
    };
    let t0 = Utc::now() - TimeDelta::days(30);
    // Seventy failures between two writes, as a busy service might have them.
    for batch in 0..29_u64 {
        let LockAttempt::Acquired(locked) = store
            .lock(
                &key,
                &format!("test#{batch}"),
                Utc::now(),
                TimeDelta::seconds(90),
            )
            .await
            .unwrap()
        else {
            panic!("the lock is free");
        };
        let mut state = locked.state.clone();
        for i in batch * 70..(batch * 70 + 70).min(2_000) {
            let reason = format!(
                "the deployment of web:{i} failed: ECS deployment circuit breaker: tasks failed to start"
            );
            let at = t0 + TimeDelta::minutes(i64::try_from(i).unwrap());
            state.quarantine(&digest(i), reason, at, None);
        }
        store
            .commit(&key, &locked, &state, &[], None)
            .await
            .unwrap();
    }
    let stored = store.load(&key).await.unwrap();
    assert!(
        stored.quarantine.len() <= QUARANTINE_KEPT,
        "{}",
        stored.quarantine.len()
    );
    assert!(stored.quarantine_archived);
    let size = serde_json::to_vec(&stored).unwrap().len();
    assert!(size < 40_000, "the state item is about {size} bytes");
    let mut archived = 0;
    for i in 0..2_000 {
        let d = digest(i);
        if stored.quarantine.contains_key(d.as_str()) {
            continue;
        }
        assert!(
            store
                .archived_quarantine(&key, d.as_str())
                .await
                .unwrap()
                .is_some(),
            "quarantine {i} was dropped"
        );
        archived += 1;
    }
    assert_eq!(archived + stored.quarantine.len(), 2_000);

    // The oldest, archived long ago, still keeps its digest out; released, it deploys.
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), stack.config());
    let s = send(
        &function,
        &stack.push_event("p-1", Utc::now(), "main-2", &real),
    )
    .await;
    assert_eq!(s.outcome, Outcome::Skipped, "{s:?}");
    assert!(s.services[0].reason.contains("quarantined"), "{s:?}");
    let operator = Operator::new(
        stack.system_ports(Role::Operator),
        "arn:aws:sts::123456789012:assumed-role/ops/alice",
    );
    operator.release(&key, &digest(0)).await.unwrap();
    assert!(
        store
            .archived_quarantine(&key, &real)
            .await
            .unwrap()
            .is_none()
    );
    let s = send(
        &function,
        &stack.push_event("p-2", Utc::now(), "main-2", &real),
    )
    .await;
    assert_eq!(s.outcome, Outcome::Deployed, "{s:?}");
}
