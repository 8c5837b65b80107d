//! A reconcile of a fleet bigger than one invocation or one read: near the end of its
//! invocation it starts no new change and says which services it left, the next reconcile goes
//! on with them; wakes come before sleeps; a batch that cannot be read fails only its services.

use super::*;

#[tokio::test]
async fn a_reconcile_at_its_deadline_starts_nothing_and_the_next_one_goes_on() {
    let w = world();
    let api = w.service("api", OFFICE, true);
    let worker = w.service("worker", OFFICE, false);
    w.reconcile(NIGHT).await;
    assert_eq!((w.desired(&api), w.desired(&worker)), (0, 0));

    // The invocation is at its end (Lambda's deadline is wall-clock time, whatever instant the
    // clock port says).
    w.clock.set(utc(MORNING));
    let deadline = Utc::now();
    let late = w
        .scheduler(false)
        .handle_within(
            &json!({"action": "reconcile", "at": MORNING}),
            Some(deadline),
        )
        .await
        .expect("leaving work for the next reconcile is no failure");
    for key in [&api, &worker] {
        let report = late
            .services
            .iter()
            .find(|s| s.service == key.to_string())
            .unwrap();
        assert_eq!(report.action, Action::Skipped, "{late:?}");
        assert!(
            report.reason.contains("the next reconcile goes on"),
            "{report:?}"
        );
    }
    assert_eq!(
        (w.desired(&api), w.desired(&worker)),
        (0, 0),
        "nothing started"
    );
    assert_eq!(w.actions(&api), [Action::Asleep]);

    // With time left, the same reconcile wakes them.
    let deadline = Utc::now() + chrono::TimeDelta::minutes(5);
    let next = w
        .scheduler(false)
        .handle_within(
            &json!({"action": "reconcile", "at": MORNING}),
            Some(deadline),
        )
        .await
        .unwrap();
    assert_eq!(next.outcome, Outcome::Awake, "{next:?}");
    assert_eq!((w.desired(&api), w.desired(&worker)), (3, 3));
}

#[test]
fn services_asleep_come_first_and_the_rest_keep_their_order() {
    let subject = |name: &str, asleep: bool| {
        let key = ServiceKey::new("staging", name);
        let mut state = ServiceState::default();
        if asleep {
            state.sleep = Some(crate::domain::state::Sleep {
                since: utc(NIGHT),
                desired_count: 2,
                scalable: None,
                asleep_count: 0,
                dry_run: false,
                pending: false,
                cause: "night".into(),
            });
        }
        Subject {
            pair_moving: None,
            service: ServiceView {
                arn: format!("arn:aws:ecs:eu-west-1:1:service/{key}"),
                key,
                task_definition: "arn:aws:ecs:eu-west-1:1:task-definition/x:1".into(),
                desired_count: 2,
                running_count: 2,
                tags: Default::default(),
                deployments: Vec::new(),
                controller: Default::default(),
                target_groups: Vec::new(),
                strategy: Default::default(),
                load_balanced: None,
                task_sets: Vec::new(),
                placement: Default::default(),
                early_success: None,
                service_revisions: Vec::new(),
            },
            capacity: None,
            state,
        }
    };
    let mut subjects = vec![
        subject("a", false),
        subject("b", true),
        subject("c", false),
        subject("d", true),
    ];
    most_urgent_first(&mut subjects);
    let order: Vec<&str> = subjects.iter().map(|s| s.service.key.service()).collect();
    assert_eq!(order, ["b", "d", "a", "c"]);
}

/// A batch of services that cannot be read fails those services only: the others are
/// reconciled now, and the next reconcile finishes.
#[tokio::test]
async fn a_batch_that_cannot_be_read_leaves_its_services_to_the_next_reconcile() {
    let w = world();
    let api = w.service("api", OFFICE, true);
    let worker = w.service("worker", OFFICE, false);
    w.ecs.fail_describing(&worker);
    w.clock.set(utc(NIGHT));
    let night = w
        .scheduler(false)
        .handle(&json!({"action": "reconcile", "at": NIGHT}))
        .await;
    let Err(SchedulerError::ServicesFailed(summary)) = night else {
        panic!("{night:?}");
    };
    assert_eq!(action_of(&summary, &api), Action::Asleep);
    assert_eq!(action_of(&summary, &worker), Action::Error);
    assert_eq!((w.desired(&api), w.desired(&worker)), (0, 3));

    w.ecs.heal_describing(&worker);
    let next = w.reconcile(NIGHT).await;
    assert_eq!(action_of(&next, &worker), Action::Asleep);
    assert_eq!(action_of(&next, &api), Action::Unchanged);
    assert_eq!(w.desired(&worker), 0);
}
