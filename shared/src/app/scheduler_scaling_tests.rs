//! Scheduled scaling and the sleep: a business-hours scheduled action on the scalable target
//! neither wakes a sleeping service nor is taken for a hand change, and it is back in force
//! after the wake exactly as it was.

use super::*;
use crate::domain::state::Suspended;

/// `staging/api`, autoscaled between 2 and 6, with a scheduled action that sets min 2 max 6
/// at 05:00, in the middle of the night.
fn scheduled_world() -> (World, ServiceKey) {
    let w = world();
    let api = w.service("api", OFFICE, true);
    w.autoscaling.schedule(
        &api,
        "business-hours",
        "cron(0 5 ? * MON-FRI *)",
        Capacity::new(2, 6),
    );
    (w, api)
}

#[tokio::test]
async fn a_scheduled_action_at_night_neither_wakes_the_service_nor_counts_as_a_hand_change() {
    let (w, api) = scheduled_world();
    w.reconcile(NIGHT).await;
    assert!(w.autoscaling.capacity(&api).unwrap().suspended.scheduled);
    // 05:00: Application Auto Scaling runs the action, which the suspension holds back.
    w.autoscaling.run_scheduled();
    assert_eq!(
        (
            w.autoscaling.capacity(&api).map(|c| (c.min, c.max)),
            w.desired(&api)
        ),
        (Some((0, 0)), 0)
    );
    let later = w.reconcile("2026-11-24T05:05:00Z").await;
    assert_eq!(action_of(&later, &api), Action::Unchanged, "{later:?}");
    let morning = w.reconcile(MORNING).await;
    assert_eq!(action_of(&morning, &api), Action::Awake, "{morning:?}");
    assert_eq!(
        w.autoscaling.capacity(&api),
        Some(Capacity::new(2, 6)),
        "min, max and scheduled scaling as they were"
    );
    assert_eq!(w.desired(&api), 3);
}

/// Without the suspension the action would have set min 2 at 05:00: deckhand would have taken
/// it for a hand change and never woken the service as it was.
#[tokio::test]
async fn without_the_suspension_the_action_would_count_as_a_hand_change() {
    let (w, api) = scheduled_world();
    w.reconcile(NIGHT).await;
    let mut asleep = w.autoscaling.capacity(&api).unwrap();
    asleep.suspended = Suspended::default();
    w.autoscaling.register(&api, asleep);
    w.autoscaling.run_scheduled();
    let later = w.reconcile("2026-11-24T05:05:00Z").await;
    assert_eq!(action_of(&later, &api), Action::Skipped, "{later:?}");
    assert!(later.services[0].reason.contains("scaled by hand"));
}

#[tokio::test]
async fn what_was_suspended_before_the_sleep_is_restored_by_the_wake() {
    let w = world();
    let api = w.service("api", OFFICE, true);
    let before = Capacity {
        suspended: Suspended {
            dynamic_in: true,
            dynamic_out: false,
            scheduled: true,
        },
        ..Capacity::new(2, 6)
    };
    w.autoscaling.register(&api, before);
    w.reconcile(NIGHT).await;
    assert_eq!(w.autoscaling.capacity(&api), Some(before.asleep(0)));
    w.reconcile(MORNING).await;
    assert_eq!(w.autoscaling.capacity(&api), Some(before));
}

#[tokio::test]
async fn a_plan_says_which_scheduled_scaling_a_sleep_suspends() {
    let (w, api) = scheduled_world();
    let plan = w.plan(NIGHT).await;
    let reason = &plan
        .services
        .iter()
        .find(|s| s.service == api.to_string())
        .unwrap()
        .reason;
    assert!(
        reason.contains(
            "scheduled scaling business-hours (cron(0 5 ? * MON-FRI *)) is suspended while deckhand keeps it asleep"
        ),
        "{reason}"
    );
    assert_eq!(
        w.autoscaling.capacity(&api),
        Some(Capacity::new(2, 6)),
        "a plan changes nothing"
    );
}
