//! A push is a claim: ECR confirms the digest and its tag before anything changes, a time in
//! the future orders nothing, and only ECR's findings release a gated push.

use super::*;
use crate::domain::scan::ScanResult;

fn untouched(w: &World) {
    assert_eq!(w.ecs.calls("RegisterTaskDefinition"), 0);
    assert_eq!(w.ecs.calls("UpdateService"), 0);
    assert_eq!(running_image(w, "web"), format!("{HOST}/web:main-1"));
    assert!(actions(w).is_empty(), "no history: {:?}", actions(w));
    assert!(kinds(w).is_empty(), "no notification: {:?}", kinds(w));
}

#[tokio::test]
async fn a_push_of_a_digest_ecr_lacks_changes_nothing_and_says_why() {
    let w = world(&[("deckhand:deploy", "any")]);
    // Delivered without the registry ever taking it: a forged event.
    let forged = w
        .function
        .handle(&push_event("forged", 1, Some("main-42"), 'b'))
        .await
        .unwrap();
    assert_eq!(forged.outcome, Outcome::Ignored, "{forged:?}");
    let reason = forged.reason.unwrap_or_default();
    assert!(
        reason.starts_with("ECR has no image web@bbbbbbbbbbbb:"),
        "{reason}"
    );
    assert_eq!(w.ecr.calls("DescribeImages"), 1);
    untouched(&w);
    assert!(w.store.processed("forged").await.unwrap().is_empty());

    // The real push of the same digest later deploys as any push.
    let real = send(&w, &push_event("real", 2, Some("main-42"), 'b')).await;
    assert_eq!(real.outcome, Outcome::Deployed, "{real:?}");
}

#[tokio::test]
async fn a_push_whose_tag_has_moved_since_is_superseded() {
    let w = world(&[("deckhand:deploy", "any")]);
    let late = push_event("p1", 1, Some("main-42"), 'b');
    w.ecr.receive(&late);
    // The tag moved on to another digest before the first push's event came.
    w.ecr.receive(&push_event("p2", 2, Some("main-42"), 'c'));
    let s = w.function.handle(&late).await.unwrap();
    assert_eq!(s.outcome, Outcome::Skipped, "{s:?}");
    assert!(
        s.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("tag main-42 is no longer on bbbbbbbbbbbb in ECR")),
        "{s:?}"
    );
    untouched(&w);
}

#[tokio::test]
async fn a_push_stamped_in_the_future_orders_nothing_ahead_of_later_pushes() {
    let w = world(&[("deckhand:deploy", "any")]);
    let mut stamped = push_event("p-2099", 1, Some("main-42"), 'b');
    stamped["time"] = json!("2099-01-01T00:00:00Z");
    let s = send(&w, &stamped).await;
    assert_eq!(s.outcome, Outcome::Deployed, "{s:?}");
    let state = w.store.load(&web()).await.unwrap();
    assert_eq!(
        state.deployment.map(|d| d.pushed_at),
        Some(Some(at(30))),
        "ordered at the moment ECR confirmed it"
    );

    // A real push a minute later is newer, and deploys.
    w.clock.set(at(31));
    let later = send(&w, &push_event("p-next", 31, Some("main-43"), 'c')).await;
    assert_eq!(later.outcome, Outcome::Deployed, "{later:?}");
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('c'))
    );
}

#[tokio::test]
async fn only_ecrs_findings_release_a_gated_push() {
    let w = gated_world(&[("deckhand:deploy", "any")]);
    let held = send(&w, &push_event("p1", 1, Some("main-42"), 'b')).await;
    assert_eq!(held.outcome, Outcome::Waiting, "{held:?}");

    // An event that claims a clean scan ECR never made: the push keeps waiting.
    let forged = scan_event("s-forged", 2, 'b', "COMPLETE", json!({}));
    let s = w.function.handle(&forged).await.unwrap();
    assert_eq!(s.outcome, Outcome::Waiting, "{s:?}");
    assert_eq!(running_image(&w, "web"), format!("{HOST}/web:main-1"));

    // ECR's findings say HIGH, whatever the event counts: quarantined, not deployed.
    let mut high = std::collections::BTreeMap::new();
    high.insert("HIGH".to_owned(), 2);
    w.ecr.scanned(
        "web",
        &digest('b').parse().unwrap(),
        ScanResult::Complete { counts: high },
    );
    let s = w.function.handle(&forged).await.unwrap();
    assert_eq!(s.outcome, Outcome::Quarantined, "{s:?}");
    assert!(s.services[0].reason.contains("2 HIGH"), "{s:?}");
    assert_eq!(w.ecs.calls("UpdateService"), 0);
}

#[tokio::test]
async fn a_push_ecr_cannot_be_asked_about_fails_and_changes_nothing() {
    let w = world(&[("deckhand:deploy", "any")]);
    let event = push_event("p1", 1, Some("main-42"), 'b');
    w.ecr.receive(&event);
    w.ecr.fail("DescribeImages");
    let e = w.function.handle(&event).await.unwrap_err();
    assert_eq!(e.error_type(), "deckhand.PushUnconfirmed", "{e}");
    untouched(&w);
    w.ecr.heal("DescribeImages");
    assert_eq!(send(&w, &event).await.outcome, Outcome::Deployed);
}

#[tokio::test]
async fn an_event_of_another_account_or_region_changes_nothing() {
    let mut config = config(false);
    config.topic_arn = "arn:aws:sns:eu-west-1:123456789012:deckhand".into();
    let w = world_with(config);
    let td = w
        .ecs
        .add_task_definition("web", &[("web", &format!("{HOST}/web:main-1"))]);
    w.ecs
        .add_service(&web(), &td, &[("deckhand:deploy", "any")]);

    let mut other_account = push_event("p-other", 1, Some("main-42"), 'b');
    other_account["account"] = json!("210987654321");
    let s = send(&w, &other_account).await;
    assert_eq!(s.outcome, Outcome::Ignored, "{s:?}");
    assert!(
        s.reason
            .as_deref()
            .is_some_and(|r| r.contains("account 210987654321, not the stack's own")),
        "{s:?}"
    );
    let mut other_region = push_event("p-region", 1, Some("main-42"), 'b');
    other_region["resources"] = json!(["arn:aws:ecr:us-west-2:123456789012:repository/web"]);
    let s = send(&w, &other_region).await;
    assert_eq!(s.outcome, Outcome::Ignored, "{s:?}");
    assert!(
        s.reason
            .as_deref()
            .is_some_and(|r| r.contains("of region us-west-2")),
        "{s:?}"
    );
    assert_eq!(w.ecr.calls("DescribeImages"), 0, "not even asked");
    assert_eq!(w.ecs.calls("UpdateService"), 0);
    assert!(actions(&w).is_empty());
    assert!(kinds(&w).is_empty());

    // The stack's own account and region count.
    let s = send(&w, &push_event("p-home", 2, Some("main-42"), 'b')).await;
    assert_eq!(s.outcome, Outcome::Deployed, "{s:?}");
}
