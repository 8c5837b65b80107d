//! A pair's traffic gate against the emulator: a check function (the team's smoke test, served
//! behind the emulator's Lambda Invoke and designated for deckhand by its tag) decides whether
//! production traffic moves to the new side, or an operator approves it with `deckhand approve`.
//! Every forward action is read back from the emulator's ELB.

use aws_sdk_elasticloadbalancingv2::Client as Elb;
use deckhand::domain::pair_move::PairPhase;
use deckhand::ports::StateStore as _;
use deckhand::report::Outcome;
use serde_json::{Value, json};
use testkit::check_function::CheckFunction;

use crate::pair::Pair;
use crate::pair_setup::{all_on, as_built, forward_of, tag_both};

/// A pair as the team built it (plain forward to blue, a `/green*` test rule) whose traffic
/// waits at `gate`; the test rule's ARN.
async fn gated(gate: &str) -> (Pair, String) {
    let p = Pair::new("100").await;
    let rule = as_built(&p).await;
    tag_both(&p, "deckhand:traffic-gate", gate).await;
    (p, rule)
}

fn designated() -> Value {
    json!({"deckhand:traffic-gate": "check"})
}

/// A smoke test that passes only when the test rule it is given reaches the target group it is
/// told to test, as a team's `curl https://shop.example.com/green/health` would.
fn smoke_test(
    stack: &crate::harness::Stack,
) -> impl FnMut(&Value) -> (Value, bool) + Send + 'static {
    let sdk = stack.sdk.clone();
    move |question: &Value| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let rule = question["testTraffic"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let weights = runtime.block_on(forward_of(&Elb::new(&sdk), &rule));
        let reaches = all_on(&weights).as_deref() == question["targetGroup"].as_str();
        let answer = if reaches {
            json!({"success": true})
        } else {
            json!({"success": false, "reason": format!("the test rule reaches {weights:?}")})
        };
        (answer, false)
    }
}

#[tokio::test]
async fn a_check_that_passes_behind_the_test_rule_moves_the_traffic() {
    let name = format!("smoke-{}", std::process::id());
    let (p, rule) = gated(&format!("check={name}")).await;
    let check = CheckFunction::serve(&p.stack, (&name, &designated()), smoke_test(&p.stack));
    let elb = Elb::new(&p.stack.sdk);
    // Left on the live side by hand: deckhand must point it at green before the check runs.
    elb.modify_rule()
        .rule_arn(&rule)
        .actions(
            aws_sdk_elasticloadbalancingv2::types::Action::builder()
                .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::Forward)
                .target_group_arn(&p.alb.blue)
                .build(),
        )
        .send()
        .await
        .unwrap();

    p.pushed_and_completed().await;
    let questions = check.questions();
    assert_eq!(questions.len(), 1, "{questions:?}");
    assert_eq!(
        questions[0]["service"],
        p.stack.service_key("web-green").to_string()
    );
    assert_eq!(questions[0]["testTraffic"], rule);
    assert_eq!(
        all_on(&forward_of(&elb, &p.alb.listener).await),
        Some(p.alb.green.clone()),
        "the check passed: all the traffic on green"
    );
    assert_eq!(
        all_on(&forward_of(&elb, &rule).await),
        Some(p.alb.blue.clone())
    );
    let kinds = p.stack.notification_kinds();
    assert!(
        kinds.ends_with(&[
            "deploy.awaiting-approval".to_owned(),
            "traffic.shifted".to_owned()
        ]),
        "{kinds:?}"
    );
    assert!(p.stack.take_refused_calls().is_empty());
}

#[tokio::test]
async fn a_check_that_fails_moves_no_traffic_and_scales_the_idle_side_back() {
    let name = format!("smoke-failing-{}", std::process::id());
    let (p, rule) = gated(&format!("check={name}")).await;
    let _check = CheckFunction::serve(&p.stack, (&name, &designated()), |_| {
        (
            json!({"success": false, "reason": "GET /green/health answered 503"}),
            false,
        )
    });
    let elb = Elb::new(&p.stack.sdk);
    let pushed = p.push("push-42", "main-42", "2026-11-23T10:00:00Z").await;
    let done = p.green_completed().await;
    assert_eq!(done.outcome, Outcome::Failed, "{done:?}");
    assert!(done.services[0].reason.contains("answered 503"), "{done:?}");
    assert_eq!(
        forward_of(&elb, &p.alb.listener).await,
        [(p.alb.blue.clone(), 1)]
    );
    assert_eq!(
        all_on(&forward_of(&elb, &rule).await),
        Some(p.alb.green.clone())
    );
    assert_eq!(p.stack.desired_count("web-green").await, 0);
    let green = p.stack.service_key("web-green");
    let state = p.stack.store().load(&green).await.unwrap();
    assert_eq!(state.pair.unwrap().phase, PairPhase::Failed);
    let digest = pushed.services[0].digest.clone().unwrap();
    assert!(
        state.quarantine.contains_key(&digest),
        "{:?}",
        state.quarantine
    );
    assert!(
        p.stack
            .notification_kinds()
            .ends_with(&["deploy.failed".to_owned()])
    );
}

#[tokio::test]
async fn a_function_not_designated_for_deckhand_is_never_invoked() {
    let name = format!("smoke-undesignated-{}", std::process::id());
    let (p, _rule) = gated(&format!("check={name}")).await;
    let check = CheckFunction::serve(&p.stack, (&name, &json!({})), |_| {
        (json!({"success": true}), false)
    });
    let done = p.push("push-42", "main-42", "2026-11-23T10:00:00Z").await;
    assert_eq!(done.outcome, Outcome::Deployed, "{done:?}");
    let completed = p.green_completed().await;
    assert_eq!(completed.outcome, Outcome::Failed, "{completed:?}");
    assert!(
        completed.services[0]
            .reason
            .contains("could not be invoked"),
        "{completed:?}"
    );
    assert!(
        check.questions().is_empty(),
        "IAM refused the call before the function"
    );
    let refused = p.stack.take_refused_calls();
    assert!(
        refused.iter().any(|r| r.contains("lambda:InvokeFunction")),
        "{refused:#?}"
    );
}

#[tokio::test]
async fn an_approval_gate_waits_and_deckhand_approve_moves_the_traffic() {
    let (p, rule) = gated("approve").await;
    let elb = Elb::new(&p.stack.sdk);
    p.pushed_and_completed().await;
    assert_eq!(
        forward_of(&elb, &p.alb.listener).await,
        [(p.alb.blue.clone(), 1)],
        "waits"
    );
    assert_eq!(
        all_on(&forward_of(&elb, &rule).await),
        Some(p.alb.green.clone())
    );
    let green = p.stack.service_key("web-green").to_string();
    let (text, ended) = crate::cli::deckhand_run(&p.stack, &["approve", &green]).await;
    assert!(ended.is_ok(), "{text}");
    assert!(text.contains("approved by"), "{text}");
    assert_eq!(
        all_on(&forward_of(&elb, &p.alb.listener).await),
        Some(p.alb.green.clone())
    );
    assert_eq!(
        all_on(&forward_of(&elb, &rule).await),
        Some(p.alb.blue.clone())
    );
    let (again, ended) = crate::cli::deckhand_run(&p.stack, &["approve", &green]).await;
    assert!(ended.is_err(), "nothing waits any more: {again}");
    assert!(p.stack.take_refused_calls().is_empty());
}

/// `deckhand wait` as the pipeline runs it (PipelinePolicy), by either side's name, on a pair
/// whose traffic moves in two steps: still waiting at 10%, done only at 100%.
#[tokio::test]
async fn a_wait_on_either_side_of_a_pair_ends_only_when_all_the_traffic_moved() {
    use crate::harness::Role;
    let p = Pair::new("10 100").await;
    let pushed = p.pushed_and_completed().await;
    let digest = pushed.services[0].digest.clone().unwrap();
    let wait = |side: &'static str| {
        let (stack, key) = (&p.stack, p.stack.service_key(side).to_string());
        let digest = digest.clone();
        async move {
            let args = [
                "wait",
                key.as_str(),
                "--digest",
                &digest,
                "--timeout",
                "1s",
                "--interval",
                "1s",
                "--json",
            ];
            let (out, ended) = crate::cli::deckhand_run_as(stack, Role::Pipeline, &args).await;
            (
                serde_json::from_str::<Value>(&out).unwrap_or(Value::Null),
                ended.is_ok(),
            )
        }
    };
    for side in ["web-blue", "web-green"] {
        let (waited, ok) = wait(side).await;
        assert!(!ok, "{waited}");
        assert_eq!(waited["result"], "timed-out", "{waited}");
        assert!(
            waited["reason"]
                .as_str()
                .unwrap()
                .starts_with("10% of the traffic on"),
            "{waited}"
        );
    }
    p.reconcile("2026-11-23T10:11:00Z").await;
    for side in ["web-blue", "web-green"] {
        let (waited, ok) = wait(side).await;
        assert!(ok, "{waited}");
        assert_eq!(waited["result"], "completed", "{waited}");
        assert!(
            waited["reason"]
                .as_str()
                .unwrap()
                .starts_with("all the traffic on"),
            "{waited}"
        );
    }
    assert!(p.stack.take_refused_calls().is_empty());
}
