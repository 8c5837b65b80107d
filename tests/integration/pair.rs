//! Blue/green with a pair of services behind one ALB, through the real SDK against moto's ECS
//! and ELBv2: the push goes to the idle side, ECS's COMPLETED moves the first step. moto's
//! ModifyListener does not check the target groups it is given: every weight is asserted as
//! read back from the listener.

use std::sync::Arc;

use deckhand::adapters::memory::FixedClock;
use deckhand::app::deploy::DeployFunction;
use deckhand::domain::pair_move::PairPhase;
use deckhand::domain::service::revision_name;
use deckhand::ports::StateStore as _;
use deckhand::report::{Action, Outcome, Summary};
use serde_json::json;

use crate::harness::{Alb, Role, Stack};
use crate::rollback::utc;

pub(crate) struct Pair {
    pub(crate) stack: Stack,
    pub(crate) alb: Alb,
    pub(crate) clock: Arc<FixedClock>,
    pub(crate) deploy: DeployFunction,
    pub(crate) family: String,
}

impl Pair {
    /// `web-blue` live with 2 tasks, `web-green` idle at 0, both on `main-41`, behind one
    /// listener that forwards everything to blue.
    pub(crate) async fn new(steps: &str) -> Self {
        Self::with(steps, &[]).await
    }

    /// The same, both sides with these tags too.
    pub(crate) async fn with(steps: &str, extra: &[(&str, &str)]) -> Self {
        let stack = Stack::new().await;
        let alb = stack.alb("pair").await;
        let family = format!("pair-{}", stack.id);
        let td = stack.simple_task_definition(&family, "main-41").await;
        let tags = |partner: &str| {
            let mut tags = vec![
                ("deckhand:deploy", "prefix=main-".to_owned()),
                ("deckhand:pair", partner.to_owned()),
                ("deckhand:traffic", alb.listener.clone()),
                ("deckhand:traffic-steps", steps.to_owned()),
                ("deckhand:step-wait", "5m".to_owned()),
            ];
            tags.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
            tags
        };
        for (name, partner, tg) in [
            ("web-blue", "web-green", &alb.blue),
            ("web-green", "web-blue", &alb.green),
        ] {
            let owned = tags(partner);
            let tags: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
            stack.create_service_behind(name, &td, tg, &tags).await;
        }
        stack.set_desired_count("web-green", 0).await;
        let clock = Arc::new(FixedClock::new(utc("2026-11-23T10:00:00Z")));
        let deploy = DeployFunction::new(stack.ports(Role::Deploy, clock.clone()), stack.config());
        Self {
            stack,
            alb,
            clock,
            deploy,
            family,
        }
    }

    /// Pushes `tag` (a new image) and hands deploy the event.
    pub(crate) async fn push(&self, id: &str, tag: &str, at: &str) -> Summary {
        let digest = self.stack.push_image(tag).await;
        self.push_again(id, tag, &digest, at).await
    }

    /// An ECR push event of an image already in the repository.
    pub(crate) async fn push_again(&self, id: &str, tag: &str, digest: &str, at: &str) -> Summary {
        self.clock.set(utc(at));
        let event = self.stack.push_event(id, utc(at), tag, digest);
        self.deploy.handle(&event).await.unwrap()
    }

    /// `main-42` pushed at 10:00 (deployed to green) and green's deployment completed at 10:05:
    /// the first step set. Returns the push's summary.
    pub(crate) async fn pushed_and_completed(&self) -> Summary {
        let pushed = self
            .push("push-42", "main-42", "2026-11-23T10:00:00Z")
            .await;
        let done = self.green_completed().await;
        assert_eq!(done.outcome, Outcome::Completed, "{done:?}");
        pushed
    }

    /// ECS completes green's deployment at 10:05; the summary of that event.
    pub(crate) async fn green_completed(&self) -> Summary {
        self.ecs(
            "web-green",
            "ecs-deployment-completed",
            "done-42",
            "2026-11-23T10:05:00Z",
        )
        .await
    }

    /// ECS reports on deckhand's latest deployment of `service`, by the id UpdateService
    /// answered with.
    pub(crate) async fn ecs(&self, service: &str, sample: &str, id: &str, at: &str) -> Summary {
        self.clock.set(utc(at));
        let state = self
            .stack
            .store()
            .load(&self.stack.service_key(service))
            .await
            .unwrap();
        let deployment = state
            .deployment
            .and_then(|d| d.ecs_deployment_id)
            .unwrap_or_else(|| format!("ecs-svc/{id}"));
        let mut event = self.stack.deployment_event(sample, id, service, utc(at));
        event["detail"]["deploymentId"] = json!(deployment);
        self.deploy.handle(&event).await.unwrap()
    }

    /// A reconcile at `at`, as the schedule sends it.
    pub(crate) async fn reconcile(&self, at: &str) -> Summary {
        use deckhand::app::scheduler::SchedulerFunction;
        self.clock.set(utc(at));
        let scheduler = SchedulerFunction::new(
            self.stack.ports(Role::Scheduler, self.clock.clone()),
            self.stack.config(),
        );
        scheduler
            .handle(&json!({"action": "reconcile", "at": at}))
            .await
            .unwrap()
    }

    /// An alarm on green's metric, which guards green; its ARN.
    pub(crate) async fn green_alarm(&self) -> String {
        crate::rollback::metric_alarm(
            &self.stack,
            &format!("green-5xx-{}", self.stack.id),
            Some("web-green"),
            &[],
        )
        .await
    }

    /// The event of that alarm going into ALARM at `at` (the clock set to it).
    pub(crate) fn green_alarm_event(&self, arn: &str, id: &str, at: &str) -> serde_json::Value {
        self.clock.set(utc(at));
        crate::rollback::alarm_event(&self.stack, id, arn, "ALARM", "OK", at, Some("web-green"))
    }

    /// The weights of the listener's forward action, read back from ELB.
    pub(crate) async fn weights(&self) -> Vec<(String, i32)> {
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&self.stack.sdk);
        crate::pair_setup::forward_of(&elb, &self.alb.listener).await
    }

    pub(crate) fn split(&self, blue: i32, green: i32) -> Vec<(String, i32)> {
        vec![
            (self.alb.blue.clone(), blue),
            (self.alb.green.clone(), green),
        ]
    }

    pub(crate) async fn revision(&self, service: &str) -> String {
        revision_name(&self.stack.running_task_definition(service).await).to_owned()
    }
}

#[tokio::test]
async fn a_push_goes_to_the_idle_side_and_traffic_moves_when_ecs_completes_it() {
    let p = Pair::new("10 50 100").await;
    let pushed = p.push("push-42", "main-42", "2026-11-23T10:00:00Z").await;
    let green = p.stack.service_key("web-green").to_string();
    let moved: Vec<(&str, Action)> = pushed
        .services
        .iter()
        .map(|s| (s.service.as_str(), s.action))
        .collect();
    assert_eq!(moved, [(green.as_str(), Action::Deployed)], "{pushed:?}");
    assert_eq!(p.revision("web-green").await, format!("{}:2", p.family));
    assert_eq!(p.revision("web-blue").await, format!("{}:1", p.family));
    assert_eq!(
        p.stack.desired_count("web-green").await,
        2,
        "the live side's count"
    );
    assert_eq!(
        p.weights().await,
        p.split(100, 0),
        "no traffic before ECS completes"
    );

    let done = p
        .ecs(
            "web-green",
            "ecs-deployment-completed",
            "done-42",
            "2026-11-23T10:05:00Z",
        )
        .await;
    assert_eq!(done.outcome, Outcome::Completed, "{done:?}");
    assert_eq!(p.weights().await, p.split(90, 10));
    let state = p
        .stack
        .store()
        .load(&p.stack.service_key("web-green"))
        .await
        .unwrap();
    assert_eq!(state.pair.unwrap().phase, PairPhase::Shifting);
    let kinds = p.stack.notification_kinds();
    assert_eq!(
        kinds,
        ["deploy.started", "deploy.completed", "traffic.shifted"]
    );
    // ECS delivers the COMPLETED again: no second step.
    let again = p
        .ecs(
            "web-green",
            "ecs-deployment-completed",
            "done-42",
            "2026-11-23T10:05:00Z",
        )
        .await;
    assert_eq!(again.outcome, Outcome::Duplicate);
    assert_eq!(p.weights().await, p.split(90, 10));
}

#[tokio::test]
async fn a_failed_idle_deployment_moves_no_traffic_and_scales_the_idle_side_back() {
    let p = Pair::new("100").await;
    let pushed = p.push("push-42", "main-42", "2026-11-23T10:00:00Z").await;
    let failed = p
        .ecs(
            "web-green",
            "ecs-deployment-failed",
            "failed-42",
            "2026-11-23T10:06:00Z",
        )
        .await;
    assert_eq!(failed.outcome, Outcome::Failed, "{failed:?}");
    assert_eq!(p.stack.desired_count("web-green").await, 0);
    assert_eq!(p.weights().await, p.split(100, 0));
    // The same image again is quarantined for the pair's new side.
    let digest = pushed.services[0].digest.clone().unwrap();
    let again = p
        .push_again("push-42-again", "main-42", &digest, "2026-11-23T11:00:00Z")
        .await;
    assert_eq!(again.outcome, Outcome::Skipped, "{again:?}");
}

#[tokio::test]
async fn a_broken_pair_is_reported_and_nothing_changes() {
    let p = Pair::new("100").await;
    // Someone points the listener at both target groups evenly.
    let ports = p.stack.ports(Role::Deploy, p.clock.clone());
    let read = ports.traffic.forward(&p.alb.listener).await.unwrap();
    ports
        .traffic
        .set_weights(&read, &p.split(1, 1))
        .await
        .unwrap();
    let pushed = p.push("push-42", "main-42", "2026-11-23T10:00:00Z").await;
    assert_eq!(pushed.outcome, Outcome::Invalid, "{pushed:?}");
    assert!(
        pushed
            .services
            .iter()
            .all(|s| s.reason.contains("cannot tell the live side")),
        "{pushed:?}"
    );
    assert_eq!(p.stack.revisions(&p.family).await, 1, "nothing registered");
    assert_eq!(p.stack.desired_count("web-green").await, 0);
    assert!(
        p.stack
            .notification_kinds()
            .iter()
            .all(|k| k == "config.invalid")
    );
}

/// An alarm on the new side while it has 10% of the traffic: the listener goes back to the old
/// side at once, in one ELB change and no ECS deployment; the digest is quarantined; a second
/// alarm changes nothing more.
#[tokio::test]
async fn an_alarm_while_traffic_moves_flips_it_back_at_once() {
    use deckhand::app::rollback::RollbackFunction;

    let p = Pair::new("10 50 100").await;
    let pushed = p.pushed_and_completed().await;
    assert_eq!(p.weights().await, p.split(90, 10));
    let arn = p.green_alarm().await;
    let (ports, log) = p.stack.counted_ports(Role::Rollback);
    let ports = deckhand::app::Ports {
        clock: p.clock.clone(),
        ..ports
    };
    let rollback = RollbackFunction::new(ports, p.stack.config());
    let alarm = p.green_alarm_event(&arn, "alarm-1", "2026-11-23T10:07:00Z");
    let flipped = rollback.handle(&alarm).await.unwrap();
    assert_eq!(flipped.outcome, Outcome::RolledBack, "{flipped:?}");
    assert!(
        flipped.services[0]
            .reason
            .contains("with 10% of the traffic on"),
        "{flipped:?}"
    );
    assert_eq!(p.weights().await, p.split(100, 0));
    let calls = log.calls();
    println!("one flip: {} AWS calls: {calls:?}", calls.len());
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("Elastic Load Balancing v2.Modify"))
            .count(),
        1,
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c == "ECS.UpdateService"), "{calls:?}");
    assert_eq!(p.revision("web-blue").await, format!("{}:1", p.family));
    let green = p.stack.service_key("web-green");
    let state = p.stack.store().load(&green).await.unwrap();
    assert_eq!(state.pair.as_ref().unwrap().phase, PairPhase::FlippedBack);
    let digest = pushed.services[0].digest.clone().unwrap();
    assert!(state.is_quarantined(&digest.parse().unwrap()).is_some());
    let kinds = p.stack.notification_kinds();
    assert!(
        kinds.ends_with(&["rollback.started".to_owned(), "traffic.shifted".to_owned()]),
        "{kinds:?}"
    );

    let again = p.green_alarm_event(&arn, "alarm-2", "2026-11-23T10:09:00Z");
    let skipped = rollback.handle(&again).await.unwrap();
    assert_eq!(skipped.outcome, Outcome::Skipped, "{skipped:?}");
    assert!(
        skipped.services[0].reason.contains("already went back"),
        "{skipped:?}"
    );
    assert_eq!(p.weights().await, p.split(100, 0));
}

/// The whole story in steps: 10% when ECS completes, 50% and 100% from reconciles once each
/// step held five minutes, never a step early or twice; the guard window from 100%; then the
/// old side scaled to 0, its revision kept.
#[tokio::test]
async fn steps_move_by_reconciles_and_the_old_side_is_scaled_down_after_the_window() {
    let p = Pair::new("10 50 100").await;
    p.pushed_and_completed().await;
    let green = p.stack.service_key("web-green").to_string();
    let shifts = |s: &Summary| -> Vec<String> {
        s.services
            .iter()
            .filter(|r| r.action == Action::Shifted)
            .map(|r| r.reason.clone())
            .collect()
    };
    assert!(
        shifts(&p.reconcile("2026-11-23T10:08:00Z").await).is_empty(),
        "step 1 held 3 minutes"
    );
    assert_eq!(p.weights().await, p.split(90, 10));
    let second = p.reconcile("2026-11-23T10:10:00Z").await;
    assert_eq!(shifts(&second).len(), 1, "{second:?}");
    assert!(
        shifts(&second)[0].starts_with(&format!("50% of the traffic on {green} (step 2 of 3)"))
    );
    assert_eq!(p.weights().await, p.split(50, 50));
    // The same instant again: no step twice.
    assert!(shifts(&p.reconcile("2026-11-23T10:10:00Z").await).is_empty());
    let third = p.reconcile("2026-11-23T10:16:00Z").await;
    assert!(
        shifts(&third)
            .first()
            .is_some_and(|r| r.contains("guarded until 2026-11-23T10:46:00Z")),
        "{third:?}"
    );
    assert_eq!(p.weights().await, p.split(0, 100));
    assert_eq!(
        p.stack.desired_count("web-blue").await,
        2,
        "warm until the window passed"
    );
    assert!(shifts(&p.reconcile("2026-11-23T10:45:00Z").await).is_empty());
    let done = p.reconcile("2026-11-23T10:46:00Z").await;
    assert!(
        shifts(&done)
            .first()
            .is_some_and(|r| r.contains("is scaled down to 0 tasks")),
        "{done:?}"
    );
    assert_eq!(p.stack.desired_count("web-blue").await, 0);
    assert_eq!(
        p.revision("web-blue").await,
        format!("{}:1", p.family),
        "its revision kept"
    );
    let state = p
        .stack
        .store()
        .load(&p.stack.service_key("web-green"))
        .await
        .unwrap();
    assert_eq!(state.pair.unwrap().phase, PairPhase::Done);
    let moved: Vec<String> = p
        .stack
        .notifications()
        .into_iter()
        .filter(|(_, b, _)| b["kind"] == "traffic.shifted")
        .map(|(_, b, _)| b["details"]["percent"].to_string())
        .collect();
    assert_eq!(moved, ["10", "50", "100"]);

    // The next push goes to blue, now the idle side, cloned from green's revision.
    let next = p.push("push-43", "main-43", "2026-11-23T12:00:00Z").await;
    let blue = p.stack.service_key("web-blue").to_string();
    assert_eq!(next.services[0].service, blue, "{next:?}");
    assert_eq!(
        next.services[0].from.as_deref(),
        Some(format!("{}:2", p.family).as_str())
    );
    assert_eq!(p.stack.desired_count("web-blue").await, 2);
}

/// A pair sleeps and wakes by its live side; the idle side at 0 stays at 0; and neither sleeps
/// while its traffic moves.
#[tokio::test]
async fn a_pair_sleeps_by_its_live_side_and_not_while_its_traffic_moves() {
    let p = Pair::with("10 100", &[("deckhand:awake", "Mon-Fri 07:00-19:00")]).await;
    p.push("push-42", "main-42", "2026-11-23T18:50:00Z").await;
    p.ecs(
        "web-green",
        "ecs-deployment-completed",
        "done-42",
        "2026-11-23T18:55:00Z",
    )
    .await;
    let night = p.reconcile("2026-11-23T19:00:00Z").await;
    let postponed: Vec<&str> = night
        .services
        .iter()
        .filter(|r| r.action == Action::Skipped)
        .map(|r| r.reason.as_str())
        .collect();
    assert_eq!(postponed.len(), 2, "{night:?}");
    assert!(
        postponed
            .iter()
            .all(|r| r.contains("the traffic of its pair moves")),
        "{night:?}"
    );
    assert_eq!(p.stack.desired_count("web-blue").await, 2);
    assert_eq!(p.stack.desired_count("web-green").await, 2);
    // The move ends: 100% at 19:05, guarded until 19:35, blue scaled down at 19:40.
    p.reconcile("2026-11-23T19:05:00Z").await;
    p.reconcile("2026-11-23T19:40:00Z").await;
    assert_eq!(p.stack.desired_count("web-blue").await, 0);
    let late = p.reconcile("2026-11-23T22:00:00Z").await;
    let by: Vec<(String, Action)> = late
        .services
        .iter()
        .map(|r| (r.service.rsplit('/').next().unwrap().to_owned(), r.action))
        .collect();
    assert!(
        by.contains(&("web-green".to_owned(), Action::Asleep)),
        "{late:?}"
    );
    assert!(
        !by.contains(&("web-blue".to_owned(), Action::Asleep)),
        "{late:?}"
    );
    assert_eq!(p.stack.desired_count("web-green").await, 0);
    p.reconcile("2026-11-24T07:00:00Z").await;
    assert_eq!(
        p.stack.desired_count("web-green").await,
        2,
        "the live side wakes"
    );
    assert_eq!(
        p.stack.desired_count("web-blue").await,
        0,
        "the idle side stays at 0"
    );
}

/// `deckhand rollback` on a side of a pair while its traffic moves: the listener goes back, as
/// the operator's policy allows.
#[tokio::test]
async fn an_operator_rolls_a_pair_back_by_its_traffic() {
    let p = Pair::new("10 100").await;
    p.pushed_and_completed().await;
    assert_eq!(p.weights().await, p.split(90, 10));
    let blue = p.stack.service_key("web-blue").to_string();
    let rolled = crate::cli::deckhand_json(&p.stack, &["rollback", &blue]).await;
    assert_eq!(rolled["outcome"], "rolled-back", "{rolled}");
    assert_eq!(p.weights().await, p.split(100, 0));
    assert_eq!(p.revision("web-blue").await, format!("{}:1", p.family));
}

/// The template lets deckhand change only listeners and rules tagged `deckhand:traffic` =
/// `managed`: an undesignated one is refused to every role, and `deckhand check` says so.
#[tokio::test]
async fn a_listener_not_designated_for_deckhand_is_never_changed_and_check_says_so() {
    let p = Pair::new("100").await;
    let (text, ended) =
        crate::cli::deckhand_run(&p.stack, &["check", "--cluster", &p.stack.cluster]).await;
    assert!(ended.is_ok(), "{text}");
    assert!(!text.contains("not designated"), "{text}");

    aws_sdk_elasticloadbalancingv2::Client::new(&p.stack.sdk)
        .remove_tags()
        .resource_arns(&p.alb.listener)
        .tag_keys("deckhand:traffic")
        .send()
        .await
        .unwrap();
    let (text, ended) =
        crate::cli::deckhand_run(&p.stack, &["check", "--cluster", &p.stack.cluster]).await;
    assert!(ended.is_err(), "{text}");
    let blue = p.stack.service_key("web-blue").to_string();
    assert!(
        text.contains(&format!(
            "{blue}  INVALID deckhand:traffic: {} is not designated for deckhand; tag it deckhand:traffic = managed",
            p.alb.listener
        )),
        "{text}"
    );

    // Whatever a function of the stack tries, IAM refuses the change.
    for role in [Role::Deploy, Role::Rollback, Role::Scheduler] {
        let ports = p.stack.ports(role, p.clock.clone());
        let forward = ports.traffic.forward(&p.alb.listener).await.unwrap();
        let e = ports
            .traffic
            .set_weights(&forward, &p.split(0, 100))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("AccessDenied"), "{e}");
    }
    assert_eq!(p.weights().await, p.split(100, 0));
    let refused = p.stack.take_refused_calls();
    assert_eq!(refused.len(), 3, "{refused:#?}");
    assert!(
        refused
            .iter()
            .all(|r| r.contains("elasticloadbalancing:ModifyListener")),
        "{refused:#?}"
    );
}
