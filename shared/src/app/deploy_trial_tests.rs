//! A trial for one service (`deckhand:dry-run`): its deploys are rehearsed while the rest of the
//! stack acts, and a service tagged `off` acts in a stack in dry run.

use super::*;

/// `demo/web` and `demo/shop` both run `web:main-1`; `web` carries `tags`.
fn two_services(config: Config, tags: &[(&str, &str)]) -> World {
    let w = world_with(config);
    let td = w
        .ecs
        .add_task_definition("web", &[("web", &format!("{HOST}/web:main-1"))]);
    let mut web_tags = vec![("deckhand:deploy", "any")];
    web_tags.extend_from_slice(tags);
    w.ecs.add_service(&web(), &td, &web_tags);
    w.ecs
        .add_service(&shop(), &td, &[("deckhand:deploy", "any")]);
    w
}

/// `main-2` pushed: the summary, and each service's action in order of name.
async fn pushed_main_2(w: &World) -> (Summary, Vec<(String, Action)>) {
    let summary = w
        .function
        .handle(&w.pushed(push_event("e1", 1, Some("main-2"), 'b')))
        .await
        .unwrap();
    let mut actions: Vec<(String, Action)> = by_service(&summary)
        .into_iter()
        .map(|(s, a)| (s.to_owned(), a))
        .collect();
    actions.sort();
    (summary, actions)
}

fn shop() -> ServiceKey {
    ServiceKey::new("demo", "shop")
}

fn image_of(w: &World, key: &ServiceKey) -> String {
    let running = w.ecs.service(key).unwrap().task_definition;
    w.ecs.task_definition(&running).unwrap().containers[0]
        .image
        .clone()
}

#[tokio::test]
async fn a_service_on_trial_is_rehearsed_while_the_rest_of_the_stack_deploys() {
    let w = two_services(config(false), &[("deckhand:dry-run", "on")]);
    let (summary, actions) = pushed_main_2(&w).await;
    assert_eq!(
        actions,
        [
            ("demo/shop".to_owned(), Action::Deployed),
            ("demo/web".to_owned(), Action::WouldDeploy)
        ],
        "{summary:?}"
    );
    assert_eq!(image_of(&w, &web()), format!("{HOST}/web:main-1"));
    assert_eq!(image_of(&w, &shop()), format!("{HOST}/web@{}", digest('b')));
    let web_state = w.store.load(&web()).await.unwrap();
    assert!(
        web_state.deployment.unwrap().dry_run,
        "a would-be deployment"
    );
    let shop_state = w.store.load(&shop()).await.unwrap();
    assert!(!shop_state.deployment.unwrap().dry_run);
    let mut kinds = kinds(&w);
    kinds.sort();
    assert_eq!(kinds, ["deploy.skipped", "deploy.started"]);
}

#[tokio::test]
async fn a_service_tagged_off_acts_in_a_stack_in_dry_run() {
    let w = two_services(config(true), &[("deckhand:dry-run", "off")]);
    let (summary, actions) = pushed_main_2(&w).await;
    assert_eq!(
        actions,
        [
            ("demo/shop".to_owned(), Action::WouldDeploy),
            ("demo/web".to_owned(), Action::Deployed)
        ],
        "{summary:?}"
    );
    assert_eq!(image_of(&w, &web()), format!("{HOST}/web@{}", digest('b')));
    assert_eq!(image_of(&w, &shop()), format!("{HOST}/web:main-1"));
}

#[tokio::test]
async fn a_dry_run_tag_that_does_not_parse_is_reported_and_changes_nothing() {
    let w = two_services(config(false), &[("deckhand:dry-run", "maybe")]);
    let (summary, _) = pushed_main_2(&w).await;
    let web_report = summary
        .services
        .iter()
        .find(|s| s.service == "demo/web")
        .unwrap();
    assert_eq!(web_report.action, Action::Invalid, "{summary:?}");
    assert!(
        web_report.reason.contains("deckhand:dry-run"),
        "{web_report:?}"
    );
    assert_eq!(image_of(&w, &web()), format!("{HOST}/web:main-1"));
    assert!(kinds(&w).contains(&"config.invalid"));
}
