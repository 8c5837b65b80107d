//! The reconcile's check of the repository index: it fills the index from the fleet it reads,
//! repairs entries that fell behind, and takes out services gone or opted out.

use super::*;
use crate::ports::{Ecs as _, ImageIndex};
use crate::report::IndexCheck;

#[tokio::test]
async fn a_reconcile_fills_the_index_repairs_what_drifted_and_takes_out_what_left() {
    let w = world();
    let deploy = [("deckhand:deploy", "any")];
    let web = w.service("web", &deploy, false);
    let api = w.service("api", &deploy, false);
    w.service("asleep-only", OFFICE, false);

    let s = w.reconcile(DAY).await;
    assert_eq!(
        s.index,
        Some(IndexCheck {
            checked: 2,
            repaired: 2,
            removed: 0
        })
    );
    assert_eq!(w.store.listed("web"), Some(vec!["staging/web".to_owned()]));
    assert_eq!(w.store.listed("api"), Some(vec!["staging/api".to_owned()]));
    assert_eq!(
        w.store.listed("asleep-only"),
        None,
        "not opted in to deploys"
    );

    // Nothing changed: nothing written.
    let s = w.reconcile(DAY).await;
    assert_eq!(s.index.map(|i| i.repaired + i.removed), Some(0));

    // Behind deckhand's back, with no event: api moves onto `web`'s image, web opts out.
    let moved = w
        .ecs
        .add_task_definition("api", &[("api", &format!("{HOST}/web:main-1"))]);
    w.ecs.update_service(&api, &moved).await.unwrap();
    let running = w.arn_of(&web);
    w.ecs.add_service(&web, &running, &[]);
    let s = w.reconcile(DAY).await;
    assert_eq!(
        s.index,
        Some(IndexCheck {
            checked: 1,
            repaired: 1,
            removed: 1
        })
    );
    assert_eq!(w.store.listed("web"), Some(vec!["staging/api".to_owned()]));
    assert_eq!(w.store.listed("api"), Some(vec![]));
}

#[tokio::test]
async fn a_reconcile_that_could_not_read_every_service_marks_no_repository_seen() {
    let w = world();
    let deploy = [("deckhand:deploy", "any")];
    w.service("web", &deploy, false);
    let api = w.service("api", &deploy, false);
    w.ecs.fail_describing(&api);
    let failed = w
        .scheduler(false)
        .handle(&json!({"action": "reconcile", "at": DAY}))
        .await;
    assert!(
        matches!(failed, Err(SchedulerError::ServicesFailed(_))),
        "api is reported: {failed:?}"
    );
    // web's entry is written, but a push to `web` still looks through the fleet: api, unread,
    // might run it too.
    assert_eq!(w.store.listed("web"), None);
    let entry = w
        .store
        .containers(&[ServiceKey::new("staging", "web")])
        .await
        .unwrap();
    assert_eq!(entry.len(), 1);
}
