//! The repository index: a push reads the services its repository lists, not the fleet; a
//! repository never seen is looked for in the whole fleet once; entries follow the services.

use super::*;
use crate::ports::ImageIndex;

#[tokio::test]
async fn after_one_look_through_the_fleet_a_push_reads_only_the_services_its_repository_lists() {
    let w = fleet();
    assert_eq!(w.store.listed("web"), None, "never seen");
    w.function
        .handle(&w.pushed(push_event("e1", 1, Some("main-1"), 'b')))
        .await
        .unwrap();
    assert_eq!(w.ecs.calls("GetResources"), 1);
    assert_eq!(w.store.listed("web"), Some(vec!["demo/web".to_owned()]));
    assert_eq!(w.store.listed("envoy"), Some(vec!["demo/web".to_owned()]));
    assert_eq!(w.store.listed("app-3"), Some(vec!["demo/app-3".to_owned()]));

    // A new process: no listing of the fleet, one service read.
    let cold = DeployFunction::new(w.function.ports.clone(), config(false));
    let read_before = w.ecs.described().len();
    let summary = cold
        .handle(&w.pushed(push_event("e2", 2, Some("main-2"), 'c')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed);
    assert_eq!(w.ecs.calls("GetResources"), 1, "no listing of the fleet");
    assert!(
        w.ecs.described()[read_before..].iter().all(|s| *s == web()),
        "only web is read: {:?}",
        w.ecs.described()
    );
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('c'))
    );
}

#[tokio::test]
async fn a_service_tagged_on_a_repository_never_seen_is_found_by_the_look_through_the_fleet() {
    let w = fleet();
    w.function
        .handle(&w.pushed(push_event("e1", 1, Some("main-1"), 'b')))
        .await
        .unwrap();
    // Seconds ago: a new service of a new repository, seen by no pass yet.
    let td = w
        .ecs
        .add_task_definition("billing", &[("billing", &format!("{HOST}/billing:1"))]);
    let billing = ServiceKey::new("demo", "billing");
    w.ecs
        .add_service(&billing, &td, &[("deckhand:deploy", "any")]);
    let mut push = push_event("e2", 2, Some("v2"), 'c');
    push["detail"]["repository-name"] = json!("billing");
    let summary = w.function.handle(&w.pushed(push)).await.unwrap();
    assert_eq!(by_service(&summary), [("demo/billing", Action::Deployed)]);
    assert_eq!(w.ecs.calls("GetResources"), 2);
    assert_eq!(
        w.store.listed("billing"),
        Some(vec!["demo/billing".to_owned()])
    );
}

#[tokio::test]
async fn a_push_to_a_repository_no_service_runs_looks_through_the_fleet_once() {
    let w = fleet();
    let mut push = push_event("e1", 1, Some("v1"), 'b');
    push["detail"]["repository-name"] = json!("base-image");
    let summary = w.function.handle(&w.pushed(push.clone())).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Ignored);
    push["id"] = json!("e2");
    let summary = w.function.handle(&push).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Ignored);
    assert_eq!(
        w.ecs.calls("GetResources"),
        1,
        "the second push reads the index"
    );
    assert_eq!(w.store.listed("base-image"), Some(vec![]));
}

#[tokio::test]
async fn a_service_that_left_its_repository_or_opted_out_leaves_its_list() {
    let w = fleet();
    w.function
        .handle(&w.pushed(push_event("e1", 1, Some("main-1"), 'b')))
        .await
        .unwrap();
    // app-3 moves onto `web` behind deckhand's back and no event tells; web opts out.
    let running = w.ecs.service(&web()).unwrap().task_definition;
    w.ecs.add_service(&web(), &running, &[]);
    let summary = w
        .function
        .handle(&w.pushed(push_event("e2", 2, Some("main-2"), 'c')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Ignored, "{summary:?}");
    assert_eq!(w.store.listed("web"), Some(vec![]));
    assert_eq!(w.ecs.calls("GetResources"), 1);
}

#[tokio::test]
async fn a_service_on_another_revision_is_read_again_and_its_entries_moved() {
    let w = fleet();
    w.function
        .handle(&w.pushed(push_event("e1", 1, Some("main-1"), 'b')))
        .await
        .unwrap();
    // A person moves web onto a revision without envoy.
    let alone = w
        .ecs
        .add_task_definition("web", &[("web", &format!("{HOST}/web:main-1"))]);
    w.ecs.update_service(&web(), &alone).await.unwrap();
    let summary = w
        .function
        .handle(&w.pushed(push_event("e2", 2, Some("main-2"), 'c')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed);
    assert_eq!(
        w.store.listed("envoy"),
        Some(vec![]),
        "no longer runs envoy"
    );
    let entry = w.store.containers(&[web()]).await.unwrap();
    assert_eq!(
        entry[&web()].task_definition,
        w.ecs.service(&web()).unwrap().task_definition,
        "the entry follows the deployment"
    );
}

fn tagged(service: &str) -> Value {
    let mut event = crate::fixtures::aws("tag-change-on-resource");
    event["region"] = json!("eu-west-1");
    event["resources"] = json!([format!(
        "arn:aws:ecs:eu-west-1:123456789012:service/demo/{service}"
    )]);
    event
}

#[tokio::test]
async fn a_service_tagged_on_a_repository_already_seen_is_listed_from_its_tag_change() {
    let w = fleet();
    w.function
        .handle(&w.pushed(push_event("e1", 1, Some("main-1"), 'b')))
        .await
        .unwrap();
    // A canary of web, tagged now: `web` is seen, so a push reads its list, not the fleet.
    let td = w
        .ecs
        .add_task_definition("canary", &[("web", &format!("{HOST}/web:main-1"))]);
    let canary = ServiceKey::new("demo", "canary");
    w.ecs
        .add_service(&canary, &td, &[("deckhand:deploy", "any")]);
    let summary = w.function.handle(&tagged("canary")).await.unwrap();
    assert_eq!(by_service(&summary), [("demo/canary", Action::Recorded)]);
    assert_eq!(
        w.store.listed("web"),
        Some(vec!["demo/canary".to_owned(), "demo/web".to_owned()])
    );
    let summary = w
        .function
        .handle(&w.pushed(push_event("e2", 2, Some("main-2"), 'c')))
        .await
        .unwrap();
    assert_eq!(
        by_service(&summary),
        [
            ("demo/canary", Action::Deployed),
            ("demo/web", Action::Deployed)
        ]
    );
    assert_eq!(
        w.ecs.calls("GetResources"),
        1,
        "found without a look through the fleet"
    );
}

#[tokio::test]
async fn tag_changes_of_other_keys_other_resources_or_services_not_opted_in_change_nothing() {
    let w = fleet();
    let mut other_key = tagged("web");
    other_key["detail"]["changed-tag-keys"] = json!(["team"]);
    let mut instance = tagged("web");
    instance["detail"]["service"] = json!("ec2");
    instance["detail"]["resource-type"] = json!("instance");
    for event in [other_key, instance] {
        let summary = w.function.handle(&event).await.unwrap();
        assert_eq!(summary.outcome, Outcome::Ignored, "{summary:?}");
    }
    let running = w.ecs.service(&web()).unwrap().task_definition;
    w.ecs.add_service(&web(), &running, &[]);
    let summary = w.function.handle(&tagged("web")).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Ignored, "{summary:?}");
    assert_eq!(w.store.listed("web"), None);

    let mut no_service = tagged("web");
    no_service["resources"] = json!([]);
    let failed = w.function.handle(&no_service).await;
    assert!(
        matches!(&failed, Err(DeployError::BadEvent(e)) if e.to_string().contains("resources")),
        "{failed:?}"
    );
}
