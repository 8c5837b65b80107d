//! A push to a pair of services behind one ALB, against in-memory ports.

use super::*;
use crate::adapters::memory::Weights;
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
    pair_tagged(steps, &[])
}

/// The same, the live side tagged with `extra` too.
fn pair_tagged(steps: &str, extra: &[(&str, &str)]) -> World {
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
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect::<Vec<_>>(),
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

const TEST_RULE: &str = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";

/// A pair whose traffic waits at `gate`, with a test rule that forwards to blue, the live side,
/// before the push.
fn gated(gate: &str) -> World {
    let w = pair_tagged(
        "100",
        &[
            ("deckhand:traffic-gate", gate),
            ("deckhand:test-traffic", TEST_RULE),
        ],
    );
    w.traffic.forward_to(TEST_RULE, &[(BLUE_TG, 1)]);
    w
}

fn kinds(w: &World) -> Vec<String> {
    w.notifier
        .published()
        .iter()
        .map(|n| n.kind.as_str().to_owned())
        .collect()
}

#[tokio::test]
async fn a_check_that_answers_success_opens_the_gate_after_the_test_rule_reached_the_new_side() {
    let w = gated("check=smoke");
    w.checks.answer("smoke", None, r#"{"success": true}"#);
    pushed_and_completed(&w).await;
    let questions = w.checks.questions();
    assert_eq!(questions.len(), 1);
    assert_eq!(questions[0].0, "smoke");
    assert_eq!(questions[0].1["service"], "demo/web-green");
    assert_eq!(questions[0].1["testTraffic"], TEST_RULE);
    assert_eq!(
        questions[0].1["taskDefinition"],
        w.ecs.revision_arn("web", 2)
    );
    // The test rule went to green before the check, and to blue, now idle, after the move.
    let test_moves: Vec<Weights> = w
        .traffic
        .changes()
        .into_iter()
        .filter(|(arn, _)| arn == TEST_RULE)
        .map(|(_, weights)| weights)
        .collect();
    assert_eq!(
        test_moves,
        [
            vec![(GREEN_TG.to_owned(), 1), (BLUE_TG.to_owned(), 0)],
            vec![(BLUE_TG.to_owned(), 1), (GREEN_TG.to_owned(), 0)],
        ]
    );
    assert_eq!(weights(&w), [(BLUE_TG.into(), 0), (GREEN_TG.into(), 100)]);
    let state = w.store.load(&green()).await.unwrap();
    assert_eq!(state.pair.unwrap().phase, PairPhase::Guarding);
    assert!(state.deployment.unwrap().guard_until.is_some());
    assert_eq!(
        kinds(&w),
        [
            "deploy.started",
            "deploy.completed",
            "deploy.awaiting-approval",
            "traffic.shifted"
        ]
    );
}

#[tokio::test]
async fn a_check_that_fails_moves_no_traffic_quarantines_the_digest_and_scales_the_new_side_back() {
    for (error, answer, why) in [
        (
            None,
            r#"{"success": false, "reason": "GET /health answered 503"}"#,
            "GET /health answered 503",
        ),
        (
            Some("Unhandled"),
            r#"{"errorMessage": "Task timed out after 60.00 seconds"}"#,
            "Task timed out",
        ),
    ] {
        let w = gated("check=smoke");
        w.checks.answer("smoke", error, answer);
        pushed(&w).await;
        w.clock.set(at(36));
        let s = w
            .function
            .handle(&green_event("c1", "SERVICE_DEPLOYMENT_COMPLETED", 36))
            .await
            .unwrap();
        assert_eq!(s.outcome, Outcome::Failed, "{s:?}");
        assert!(s.services[0].reason.contains(why), "{s:?}");
        assert_eq!(weights(&w), [(BLUE_TG.into(), 1), (GREEN_TG.into(), 0)]);
        assert_eq!(w.ecs.service(&green()).unwrap().desired_count, 0);
        let state = w.store.load(&green()).await.unwrap();
        assert_eq!(state.pair.as_ref().unwrap().phase, PairPhase::Failed);
        assert_eq!(state.quarantine.len(), 1, "{state:?}");
        assert!(kinds(&w).ends_with(&[
            "deploy.awaiting-approval".to_owned(),
            "deploy.failed".to_owned()
        ]));
    }
}

#[tokio::test]
async fn an_approval_gate_waits_for_its_operator_who_opens_or_shuts_it() {
    use crate::app::operator::Operator;
    for reject in [false, true] {
        let w = gated("approve");
        pushed_and_completed(&w).await;
        assert_eq!(
            weights(&w),
            [(BLUE_TG.into(), 1), (GREEN_TG.into(), 0)],
            "waits"
        );
        assert!(w.checks.questions().is_empty());
        let waiting = w.notifier.published().pop().unwrap();
        assert_eq!(waiting.kind.as_str(), "deploy.awaiting-approval");
        assert_eq!(
            waiting.details["approve"],
            "deckhand approve demo/web-green"
        );
        let operator = Operator::new(w.ports.clone(), "arn:aws:iam::123456789012:user/ops");
        // Either side's name finds the pair.
        let answered = if reject {
            operator.reject(&blue()).await.unwrap()
        } else {
            operator.approve(&blue()).await.unwrap()
        };
        let state = w.store.load(&green()).await.unwrap();
        if reject {
            assert_eq!(answered.action, Action::Rejected, "{answered:?}");
            assert!(
                answered
                    .reason
                    .contains("rejected by arn:aws:iam::123456789012:user/ops")
            );
            assert_eq!(weights(&w), [(BLUE_TG.into(), 1), (GREEN_TG.into(), 0)]);
            assert_eq!(w.ecs.service(&green()).unwrap().desired_count, 0);
            assert_eq!(state.pair.unwrap().phase, PairPhase::Failed);
        } else {
            assert_eq!(answered.action, Action::Approved, "{answered:?}");
            assert_eq!(weights(&w), [(BLUE_TG.into(), 0), (GREEN_TG.into(), 100)]);
            assert_eq!(state.pair.unwrap().phase, PairPhase::Guarding);
        }
        // Answered once: nothing waits any more.
        assert!(operator.approve(&green()).await.is_err());
    }
}

/// The deploy function died while its check ran: the gate stays closed with no verdict, and
/// the first reconcile ten minutes after it closed fails the deployment.
#[tokio::test]
async fn a_check_whose_answer_was_lost_fails_at_the_reconcile_after_it_lapsed() {
    use crate::app::scheduler::SchedulerFunction;
    let w = gated("check=smoke");
    pushed(&w).await;
    let mut state = w.store.load(&green()).await.unwrap();
    let m = state.pair.as_mut().unwrap();
    assert!(m.close_gate(at(36), chrono::TimeDelta::minutes(30)));
    w.store.put_state(&green(), state);
    let scheduler = SchedulerFunction::new(w.ports.clone(), config(false));
    let reconcile = |at: &str| json!({"action": "reconcile", "at": at});
    w.clock.set(at(45));
    let early = scheduler
        .handle(&reconcile("2026-11-23T10:45:00Z"))
        .await
        .unwrap();
    assert!(
        early.services.iter().all(|r| r.action != Action::Failed),
        "{early:?}"
    );
    assert_eq!(w.ecs.service(&green()).unwrap().desired_count, 4);
    w.clock.set(at(46));
    let lapsed = scheduler
        .handle(&reconcile("2026-11-23T10:46:00Z"))
        .await
        .unwrap();
    let failed: Vec<&str> = lapsed
        .services
        .iter()
        .filter(|r| r.action == Action::Failed)
        .map(|r| r.reason.as_str())
        .collect();
    assert_eq!(failed.len(), 1, "{lapsed:?}");
    assert!(
        failed[0].contains("gave no verdict within 10 minutes"),
        "{lapsed:?}"
    );
    assert_eq!(w.ecs.service(&green()).unwrap().desired_count, 0);
    assert_eq!(weights(&w), [(BLUE_TG.into(), 1), (GREEN_TG.into(), 0)]);
    assert!(
        w.checks.questions().is_empty(),
        "a lapsed check is not asked again"
    );
}
