//! Rollback driven by alarms as AWS sends them (tests/fixtures/aws), and by a mapping whose
//! sources fail one at a time.

use super::*;
use crate::fixtures;
use crate::ports::PortErrorKind;

const COMPOSITE_ARN: &str = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-unhealthy";

/// `demo/web` deployed from revision 1 to 2 at 10:00 and completed at 10:05: the corpus'
/// alarms change state at 10:08, inside the guard window.
async fn deployed_web(w: &World, tags: &[(&str, &str)]) -> ServiceKey {
    let web = w.service_in("demo", "web", tags);
    assert_eq!(
        w.push("p1", "web", 'b', START).await.outcome,
        Outcome::Deployed
    );
    w.completed("c1", &web, "2026-11-23T10:05:00Z").await;
    w.clock.set(utc("2026-11-23T10:08:01Z"));
    web
}

async fn handle(w: &World, fixture: &str) -> Summary {
    w.rollback
        .handle(&fixtures::aws(fixture))
        .await
        .unwrap_or_else(|e| panic!("{fixture}: {e}"))
}

fn reason(s: &Summary) -> &str {
    s.reason.as_deref().unwrap_or("")
}

#[tokio::test]
async fn every_alarm_of_the_corpus_rolls_back_the_service_it_guards() {
    for name in fixtures::alarms() {
        let w = world();
        let web = deployed_web(&w, &[]).await;
        // A composite alarm has no metric: its own tag names the service.
        w.alarms
            .tag(COMPOSITE_ARN, &[("deckhand:service", "demo/web")]);
        let s = handle(&w, name).await;
        assert_eq!(s.outcome, Outcome::RolledBack, "{name}: {s:?}");
        assert_eq!(w.running(&web), "web:1", "{name}");
        assert!(s.problems.is_empty(), "{name}: {s:?}");
        let state = w.store.load(&web).await.unwrap();
        let bad: crate::domain::image::Digest = digest('b').parse().unwrap();
        assert!(state.is_quarantined(&bad).is_some(), "{name}: {state:?}");
    }
}

#[tokio::test]
async fn a_composite_alarm_that_no_tag_maps_guards_nothing_and_says_how_to_map_it() {
    let w = world();
    let web = deployed_web(&w, &[]).await;
    let s = handle(&w, "alarm-composite-eventbridge").await;
    assert_eq!(s.outcome, Outcome::Ignored, "{s:?}");
    assert!(reason(&s).contains("composite alarm"), "{s:?}");
    assert_eq!(w.running(&web), "web:2");
}

#[tokio::test]
async fn a_composite_alarm_listed_in_deckhand_alarms_rolls_back() {
    let w = world();
    let web = deployed_web(&w, &[("deckhand:alarms", "web-unhealthy")]).await;
    let s = handle(&w, "alarm-composite-sns").await;
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert_eq!(w.running(&web), "web:1");
}

/// The alarm's tags cannot be read (denied, or an alarm of another account): the metric still
/// maps the service, which is rolled back; the failure is in the summary, in the service's
/// history and in an `error` notification, and is not retried (it would fail again).
#[tokio::test]
async fn denied_alarm_tags_do_not_stop_the_metric_mapping() {
    let w = world();
    let web = deployed_web(&w, &[]).await;
    w.alarms.refuse(Some(PortErrorKind::Other));
    let s = handle(&w, "alarm-metric-sns").await;
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert_eq!(w.running(&web), "web:1");
    assert_eq!(s.problems.len(), 1, "{s:?}");
    assert!(s.problems[0].contains("ListTagsForResource"), "{s:?}");
    let errors: Vec<_> = w
        .notifier
        .published()
        .into_iter()
        .filter(|n| n.kind == Kind::Error)
        .collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].service, "*");
    assert!(
        errors[0].summary.contains("web-memory-high"),
        "{:?}",
        errors[0]
    );
    let recorded = w
        .store
        .all_history()
        .into_iter()
        .filter(|r| r.service == web && r.action == Action::Error)
        .count();
    assert_eq!(recorded, 1);
}

/// GetResources is throttled past the SDK's retries: the service the metric names is rolled
/// back now, the invocation fails so that it is retried, and the retry finds it handled.
#[tokio::test]
async fn a_throttled_source_is_retried_without_a_second_rollback() {
    let w = world();
    let web = deployed_web(&w, &[]).await;
    w.ecs.fail("GetResources");
    let event = fixtures::aws("alarm-anomaly-eventbridge");
    let first = w.rollback.handle(&event).await;
    let Err(RollbackError::MappingFailed(summary)) = first else {
        panic!("{first:?}");
    };
    assert_eq!(summary.outcome, Outcome::RolledBack, "{summary:?}");
    assert!(summary.problems[0].contains("GetResources"), "{summary:?}");
    assert_eq!(w.running(&web), "web:1");
    w.ecs.heal("GetResources");
    let retry = w.rollback.handle(&event).await.unwrap();
    assert_eq!(retry.outcome, Outcome::Duplicate, "{retry:?}");
    assert_eq!(w.running(&web), "web:1");
    assert_eq!(
        w.notifier
            .published()
            .iter()
            .filter(|n| n.kind == Kind::RollbackStarted)
            .count(),
        1
    );
}

#[tokio::test]
async fn when_the_only_mapping_fails_nothing_is_rolled_back_and_people_are_told() {
    let w = world();
    let web = deployed_web(&w, &[]).await;
    w.alarms
        .tag(COMPOSITE_ARN, &[("deckhand:service", "demo/web")]);
    w.alarms.refuse(Some(PortErrorKind::Other));
    let s = handle(&w, "alarm-composite-lambda").await;
    assert_eq!(s.outcome, Outcome::Ignored, "{s:?}");
    assert!(reason(&s).contains("could not be read"), "{s:?}");
    assert_eq!(s.problems.len(), 1);
    assert_eq!(w.running(&web), "web:2");
    assert!(
        w.notifier
            .published()
            .iter()
            .any(|n| n.kind == Kind::Error && n.service == "*")
    );
}

#[tokio::test]
async fn a_manual_rollback_of_a_service_another_tool_deploys_is_refused() {
    let w = world();
    let web = deployed_web(&w, &[]).await;
    w.ecs.set_controller(
        &web,
        crate::domain::strategy::DeploymentController::External,
    );
    let e = w.rollback.manual(&web, None, "alice").await.unwrap_err();
    assert!(e.to_string().contains("EXTERNAL"), "{e}");
    assert_eq!(w.running(&web), "web:2");
    assert_eq!(w.ecs.calls("UpdateService"), 1, "only the deployment's");
}

/// Application Auto Scaling's alarms go into ALARM on every scale-out: inside the guard window
/// of a good deployment, their metric alone must not roll it back.
#[tokio::test]
async fn a_scaling_alarm_on_the_services_metric_never_rolls_back() {
    for (fixture, why) in [
        ("scaling-target-tracking-eventbridge", "target tracking"),
        ("scaling-step-sns", "step scaling"),
    ] {
        let w = world();
        let web = deployed_web(&w, &[]).await;
        let s = handle(&w, fixture).await;
        assert_eq!(s.outcome, Outcome::Ignored, "{fixture}: {s:?}");
        assert!(reason(&s).contains(why), "{fixture}: {s:?}");
        assert!(reason(&s).contains("deckhand:alarms"), "{fixture}: {s:?}");
        assert_eq!(w.running(&web), "web:2", "{fixture}");
        let state = w.store.load(&web).await.unwrap();
        assert!(state.quarantine.is_empty(), "{fixture}: {state:?}");
    }
}

/// An explicit mapping wins: a team that wants its scaling alarm to guard the service lists it.
#[tokio::test]
async fn a_scaling_alarm_listed_in_deckhand_alarms_rolls_back() {
    let w = world();
    let web = deployed_web(&w, &[("deckhand:alarms", "web-cpu-step-out")]).await;
    let s = handle(&w, "scaling-step-sns").await;
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    assert_eq!(w.running(&web), "web:1");
}

const STEP_OUT: &str = "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:2a4c6e8f-0b1d-4f3a-9c5e-7b9d1f3a5c7e:resource/ecs/service/demo/web:policyName/web-step-out";

/// EventBridge and the alarm action do not say what an alarm does: before its metric alone
/// rolls a service back, deckhand reads the alarm's actions, and a scaling policy among them
/// makes it a step scaling alarm.
#[tokio::test]
async fn a_metric_alarm_whose_action_is_a_scaling_policy_never_rolls_back() {
    let w = world();
    let web = deployed_web(&w, &[]).await;
    w.alarms.act("web-memory-high", &[STEP_OUT]);
    let s = handle(&w, "alarm-metric-eventbridge").await;
    assert_eq!(s.outcome, Outcome::Ignored, "{s:?}");
    assert!(reason(&s).contains("step scaling"), "{s:?}");
    assert_eq!(w.running(&web), "web:2");
    assert_eq!(w.alarms.described(), ["web-memory-high"]);

    // An SNS message carries the actions: nothing more to read.
    let w = world();
    deployed_web(&w, &[]).await;
    assert_eq!(
        handle(&w, "alarm-metric-sns").await.outcome,
        Outcome::RolledBack
    );
    assert!(w.alarms.described().is_empty());
}

/// When the actions cannot be read, nobody can tell a scaling alarm: its metric rolls nothing
/// back, the summary says why, and a passing failure is retried.
#[tokio::test]
async fn unreadable_actions_roll_nothing_back_by_metric_and_say_so() {
    let w = world();
    let web = deployed_web(&w, &[]).await;
    w.alarms.refuse_describing(Some(PortErrorKind::Other));
    let s = handle(&w, "alarm-metric-eventbridge").await;
    assert_eq!(s.outcome, Outcome::Ignored, "{s:?}");
    assert_eq!(s.problems.len(), 1, "{s:?}");
    assert!(s.problems[0].contains("DescribeAlarms"), "{s:?}");
    assert_eq!(w.running(&web), "web:2");

    let w = world();
    let web = deployed_web(&w, &[]).await;
    w.alarms.refuse_describing(Some(PortErrorKind::Transient));
    let err = w
        .rollback
        .handle(&fixtures::aws("alarm-metric-eventbridge"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "deckhand.MappingFailed");
    assert_eq!(w.running(&web), "web:2");
    // Once it can be read, the retry rolls back.
    w.alarms.refuse_describing(None);
    let s = handle(&w, "alarm-metric-eventbridge").await;
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
}
