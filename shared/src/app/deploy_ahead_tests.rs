//! Locks a push takes beside the read of its services, on this process's last reading of their
//! tags: used by the push that deploys, given back when the service's tags no longer take the
//! push, never taken for a push ECR does not confirm.

use super::*;

/// `demo/web` deployed once by a push of `main-1`, so this process has read its tags.
async fn deployed_once(tags: &[(&str, &str)]) -> World {
    let w = world(tags);
    let summary = w
        .function
        .handle(&w.pushed(push_event("e1", 1, Some("main-1"), 'b')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed, "{summary:?}");
    assert_eq!(w.store.locks(&web()), 1);
    w
}

#[tokio::test]
async fn the_next_push_deploys_under_the_lock_it_took_ahead() {
    let w = deployed_once(&[("deckhand:deploy", "prefix=main-")]).await;
    let summary = w
        .function
        .handle(&w.pushed(push_event("e2", 2, Some("main-2"), 'c')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed, "{summary:?}");
    assert_eq!(w.store.locks(&web()), 2, "one lock per push");
    assert!(!w.store.is_locked(&web()));
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('c'))
    );
}

#[tokio::test]
async fn a_lock_taken_ahead_for_a_service_whose_tags_changed_is_given_back() {
    let w = deployed_once(&[("deckhand:deploy", "prefix=main-")]).await;
    // The team moves the service to release tags; this process still remembers `main-`.
    let running = w.ecs.service(&web()).unwrap().task_definition;
    w.ecs
        .add_service(&web(), &running, &[("deckhand:deploy", "prefix=release-")]);
    let summary = w
        .function
        .handle(&w.pushed(push_event("e2", 2, Some("main-2"), 'c')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Ignored, "{summary:?}");
    assert_eq!(w.store.locks(&web()), 2, "taken ahead on the old tags");
    assert!(!w.store.is_locked(&web()), "and given back");
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('b'))
    );
}

#[tokio::test]
async fn a_push_ecr_does_not_confirm_takes_no_lock() {
    let w = deployed_once(&[("deckhand:deploy", "prefix=main-")]).await;
    // Never pushed: ECR holds no such digest.
    let summary = w
        .function
        .handle(&push_event("forged", 2, Some("main-2"), 'f'))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Ignored, "{summary:?}");
    assert_eq!(w.store.locks(&web()), 1, "no lock beyond the first push's");
    assert!(!w.store.is_locked(&web()));
}
