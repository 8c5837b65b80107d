//! A push to a pair of services behind one ALB, against in-memory ports.

use super::*;
use crate::domain::pair_move::PairPhase;

const LISTENER: &str = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2";
const BLUE_TG: &str = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/blue/1";
const GREEN_TG: &str = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/green/2";

fn blue() -> ServiceKey {
    ServiceKey::new("demo", "web-blue")
}

fn green() -> ServiceKey {
    ServiceKey::new("demo", "web-green")
}

/// `demo/web-blue` live with 4 tasks on web:1, `demo/web-green` idle at 0 on web:1, steps as
/// given, deployed by pushes of `main-*` (the live side's policy; green's says `off`).
fn pair(steps: &str) -> World {
    let w = world_with(config(false));
    let td = w
        .ecs
        .add_task_definition("web", &[("web", &format!("{HOST}/web:main-1"))]);
    w.ecs.add_service(
        &blue(),
        &td,
        &[
            ("deckhand:deploy", "prefix=main-"),
            ("deckhand:pair", "web-green"),
            ("deckhand:traffic", LISTENER),
            ("deckhand:traffic-steps", steps),
        ],
    );
    w.ecs.add_service(
        &green(),
        &td,
        &[
            ("deckhand:deploy", "off"),
            ("deckhand:pair", "web-blue"),
            ("deckhand:traffic", LISTENER),
        ],
    );
    w.ecs.set_target_groups(&blue(), &[BLUE_TG]);
    w.ecs.set_target_groups(&green(), &[GREEN_TG]);
    w.ecs.scale_by_hand(&blue(), 4);
    w.ecs.scale_by_hand(&green(), 0);
    w.traffic
        .forward_to(LISTENER, &[(BLUE_TG, 1), (GREEN_TG, 0)]);
    w
}

fn green_event(id: &str, name: &str, minute: u32) -> Value {
    let mut event = deployment_event(id, name, minute);
    event["resources"] = json!(["arn:aws:ecs:eu-west-1:123456789012:service/demo/web-green"]);
    event
}

/// `main-42` pushed at 10:31 (deployed to green).
async fn pushed(w: &World) -> Summary {
    w.function
        .handle(&w.pushed(push_event("p1", 31, Some("main-42"), 'b')))
        .await
        .unwrap()
}

/// `main-42` pushed at 10:31 and green's deployment completed at 10:36: the first step set.
async fn pushed_and_completed(w: &World) {
    pushed(w).await;
    w.clock.set(at(36));
    w.function
        .handle(&green_event("c1", "SERVICE_DEPLOYMENT_COMPLETED", 36))
        .await
        .unwrap();
}

fn weights(w: &World) -> Vec<(String, i32)> {
    w.traffic.weights(LISTENER)
}

#[tokio::test]
async fn a_push_goes_to_the_idle_side_and_completed_moves_the_first_step() {
    let w = pair("10 50 100");
    let s = w
        .function
        .handle(&w.pushed(push_event("p1", 31, Some("main-42"), 'b')))
        .await
        .unwrap();
    assert_eq!(
        by_service(&s),
        [("demo/web-green", Action::Deployed)],
        "{s:?}"
    );
    assert!(
        s.services[0].reason.contains("idle side of its pair"),
        "{s:?}"
    );
    let green_now = w.ecs.service(&green()).unwrap();
    assert_eq!(green_now.desired_count, 4, "the live side's count");
    assert_eq!(revision_name(&green_now.task_definition), "web:2");
    let blue_now = w.ecs.service(&blue()).unwrap();
    assert_eq!(
        revision_name(&blue_now.task_definition),
        "web:1",
        "the live side is untouched"
    );
    assert_eq!(
        weights(&w),
        [(BLUE_TG.into(), 1), (GREEN_TG.into(), 0)],
        "no traffic yet"
    );

    let done = w
        .function
        .handle(&green_event("c1", "SERVICE_DEPLOYMENT_COMPLETED", 36))
        .await
        .unwrap();
    assert_eq!(done.outcome, Outcome::Completed, "{done:?}");
    assert!(
        done.services[0]
            .reason
            .contains("10% of the traffic moved to demo/web-green (step 1 of 3)"),
        "{done:?}"
    );
    assert_eq!(weights(&w), [(BLUE_TG.into(), 90), (GREEN_TG.into(), 10)]);
    let state = w.store.load(&green()).await.unwrap();
    let m = state.pair.clone().unwrap();
    assert_eq!((m.phase, m.percent()), (PairPhase::Shifting, 10));
    assert_eq!(m.from, blue());
    assert_eq!(
        state.deployment.unwrap().guard_until,
        None,
        "the guard window starts at 100%"
    );
    assert_eq!(
        kinds(&w),
        ["deploy.started", "deploy.completed", "traffic.shifted"]
    );
    // A redelivered COMPLETED moves nothing more.
    let again = w
        .function
        .handle(&green_event("c1", "SERVICE_DEPLOYMENT_COMPLETED", 36))
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Duplicate);
    assert_eq!(w.traffic.changes().len(), 1);
}

#[tokio::test]
async fn all_at_once_starts_the_guard_window_and_a_failed_idle_deployment_moves_nothing() {
    let w = pair("100");
    pushed_and_completed(&w).await;
    assert_eq!(weights(&w), [(BLUE_TG.into(), 0), (GREEN_TG.into(), 100)]);
    let state = w.store.load(&green()).await.unwrap();
    assert_eq!(state.pair.unwrap().phase, PairPhase::Guarding);
    assert_eq!(
        state.deployment.unwrap().guard_until,
        Some(at(36) + chrono::TimeDelta::minutes(30))
    );

    let w = pair("10 100");
    pushed(&w).await;
    let failed = w
        .function
        .handle(&green_event("f1", "SERVICE_DEPLOYMENT_FAILED", 40))
        .await
        .unwrap();
    assert_eq!(failed.outcome, Outcome::Failed, "{failed:?}");
    assert!(
        failed.services[0].reason.contains("scaled back to 0 tasks"),
        "{failed:?}"
    );
    assert_eq!(w.ecs.service(&green()).unwrap().desired_count, 0);
    assert!(w.traffic.changes().is_empty(), "no traffic moved");
    let state = w.store.load(&green()).await.unwrap();
    assert_eq!(state.pair.as_ref().unwrap().phase, PairPhase::Failed);
    assert!(
        state
            .is_quarantined(&digest('b').parse().unwrap())
            .is_some()
    );
}

/// A pair that does not hold together is a tag problem of each side, before anything changes.
#[tokio::test]
async fn a_broken_pair_is_reported_before_anything_changes() {
    let w = pair("10 100");
    w.traffic
        .forward_to(LISTENER, &[(BLUE_TG, 1), (GREEN_TG, 1)]);
    let s = w
        .function
        .handle(&w.pushed(push_event("p1", 31, Some("main-42"), 'b')))
        .await
        .unwrap();
    assert_eq!(
        by_service(&s),
        [
            ("demo/web-blue", Action::Invalid),
            ("demo/web-green", Action::Invalid)
        ],
        "{s:?}"
    );
    assert!(
        s.services[0].reason.contains("cannot tell the live side"),
        "{s:?}"
    );
    assert_eq!(w.ecs.revisions(), 1);
    assert_eq!(w.ecs.calls("UpdateService"), 0);
    assert!(kinds(&w).iter().all(|k| *k == "config.invalid"));
}

/// An operator's rollback of a pair: while the traffic moves it flips back at once; after the
/// move, with the old side scaled down, the old side scales up first and the reconcile flips
/// the traffic once ECS runs its tasks.
#[tokio::test]
async fn an_operators_rollback_flips_back_or_scales_the_old_side_up_first() {
    use crate::app::rollback::RollbackFunction;
    use crate::app::scheduler::SchedulerFunction;

    let w = pair("10 100");
    pushed_and_completed(&w).await;
    let rollback = RollbackFunction::new(w.ports.clone(), config(false));
    let refused = rollback
        .manual(&blue(), Some("web:1"), "alice")
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("rolled back by its traffic"),
        "{refused}"
    );
    let s = rollback.manual(&blue(), None, "alice").await.unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert_eq!(weights(&w), [(BLUE_TG.into(), 100), (GREEN_TG.into(), 0)]);
    let state = w.store.load(&green()).await.unwrap();
    assert_eq!(state.pair.as_ref().unwrap().phase, PairPhase::FlippedBack);
    assert!(
        state
            .is_quarantined(&digest('b').parse().unwrap())
            .is_some()
    );

    // The whole move again, to its end: blue scaled down after green's window.
    let w = pair("100");
    pushed_and_completed(&w).await;
    let scheduler = SchedulerFunction::new(w.ports.clone(), config(false));
    let reconcile = |at: &str| json!({"action": "reconcile", "at": at});
    w.clock.set(at(36) + chrono::TimeDelta::minutes(31));
    scheduler
        .handle(&reconcile("2026-11-23T11:07:00Z"))
        .await
        .unwrap();
    assert_eq!(w.ecs.service(&blue()).unwrap().desired_count, 0);
    let rollback = RollbackFunction::new(w.ports.clone(), config(false));
    let s = rollback.manual(&green(), None, "alice").await.unwrap();
    assert!(
        s.services[0]
            .reason
            .contains("scaled up to 4 task(s) first"),
        "{s:?}"
    );
    assert_eq!(w.ecs.service(&blue()).unwrap().desired_count, 4);
    assert_eq!(
        weights(&w),
        [(BLUE_TG.into(), 0), (GREEN_TG.into(), 100)],
        "not before blue runs"
    );
    w.ecs.set_running(&blue(), 1);
    scheduler
        .handle(&reconcile("2026-11-23T11:10:00Z"))
        .await
        .unwrap();
    assert_eq!(
        weights(&w),
        [(BLUE_TG.into(), 0), (GREEN_TG.into(), 100)],
        "1 of 4 tasks"
    );
    w.ecs.set_running(&blue(), 4);
    let back = scheduler
        .handle(&reconcile("2026-11-23T11:12:00Z"))
        .await
        .unwrap();
    assert!(
        back.services
            .iter()
            .any(|r| r.reason.contains("all the traffic went back to it")),
        "{back:?}"
    );
    assert_eq!(weights(&w), [(BLUE_TG.into(), 100), (GREEN_TG.into(), 0)]);
    let state = w.store.load(&green()).await.unwrap();
    assert_eq!(state.pair.as_ref().unwrap().phase, PairPhase::FlippedBack);
    assert!(
        state
            .is_quarantined(&digest('b').parse().unwrap())
            .is_some()
    );
}
