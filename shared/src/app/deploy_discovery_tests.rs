//! Discovery that survives a failed batch: the services of a batch that cannot be read are
//! reported failed (the push is retried for them), the others deploy.

use super::*;

#[tokio::test]
async fn a_batch_that_cannot_be_read_fails_its_services_only_and_the_retry_finishes() {
    let w = world(&[("deckhand:deploy", "any")]);
    let td = w
        .ecs
        .add_task_definition("api", &[("api", &format!("{HOST}/web:main-1"))]);
    let api = ServiceKey::new("demo", "api");
    w.ecs.add_service(&api, &td, &[("deckhand:deploy", "any")]);
    w.ecs.fail_describing(&api);

    let event = w.pushed(push_event("e1", 1, Some("main-42"), 'b'));
    let failed = w.function.handle(&event).await;
    let Err(DeployError::ServicesFailed(summary)) = failed else {
        panic!("the unread service is retried: {failed:?}");
    };
    assert_eq!(
        by_service(&summary),
        [("demo/api", Action::Error), ("demo/web", Action::Deployed)]
    );
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('b'))
    );

    // Lambda's retry: the batch reads, the service deploys, the other one is not touched again.
    w.ecs.heal_describing(&api);
    let retried = w.function.handle(&event).await.unwrap();
    assert_eq!(
        by_service(&retried),
        [
            ("demo/api", Action::Deployed),
            ("demo/web", Action::Duplicate)
        ]
    );
    assert_eq!(w.ecs.calls("RegisterTaskDefinition"), 2);
}
