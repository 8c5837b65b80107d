//! Pairs as teams built them by hand: a production listener whose forward action names the live
//! side's target group alone (the usual `TargetGroupArn` switch), and a test rule (`/green*`)
//! the smoke tests use. deckhand moves the production traffic, adding the idle side's target
//! group, and keeps the test rule on the idle side after every flip and flip-back. Every
//! forward action is read back from the emulator's ELB.

use aws_sdk_elasticloadbalancingv2::Client as Elb;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, PathPatternConditionConfig, RuleCondition,
};
use deckhand::app::rollback::RollbackFunction;
use deckhand::report::Outcome;

use crate::harness::{Role, designated};
use crate::pair::Pair;

/// A forward action as ELB holds it: target group and weight (a plain forward has weight 1).
pub(crate) async fn forward_of(elb: &Elb, arn: &str) -> Vec<(String, i32)> {
    let actions = if arn.contains(":listener-rule/") {
        let out = elb.describe_rules().rule_arns(arn).send().await.unwrap();
        out.rules()[0].actions().to_vec()
    } else {
        let out = elb
            .describe_listeners()
            .listener_arns(arn)
            .send()
            .await
            .unwrap();
        out.listeners()[0].default_actions().to_vec()
    };
    let action = &actions[0];
    match action
        .forward_config()
        .filter(|c| !c.target_groups().is_empty())
    {
        Some(config) => config
            .target_groups()
            .iter()
            .map(|t| {
                (
                    t.target_group_arn().unwrap().to_owned(),
                    t.weight().unwrap_or(1),
                )
            })
            .collect(),
        None => vec![(action.target_group_arn().unwrap().to_owned(), 1)],
    }
}

fn plain_forward(target_group: &str) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(target_group)
        .build()
}

/// The pair as the team built it: the listener forwards to blue alone, and a rule for
/// `/green*` forwards to green, designated for deckhand and named in both sides'
/// `deckhand:test-traffic`. Returns the rule's ARN.
pub(crate) async fn as_built(p: &Pair) -> String {
    let elb = Elb::new(&p.stack.sdk);
    elb.modify_listener()
        .listener_arn(&p.alb.listener)
        .default_actions(plain_forward(&p.alb.blue))
        .send()
        .await
        .unwrap();
    let rule = elb
        .create_rule()
        .listener_arn(&p.alb.listener)
        .priority(10)
        .conditions(
            RuleCondition::builder()
                .field("path-pattern")
                .path_pattern_config(
                    PathPatternConditionConfig::builder()
                        .values("/green*")
                        .build(),
                )
                .build(),
        )
        .actions(plain_forward(&p.alb.green))
        .tags(designated())
        .send()
        .await
        .unwrap();
    let rule = rule.rules()[0].rule_arn().unwrap().to_owned();
    tag_both(p, "deckhand:test-traffic", &rule).await;
    rule
}

/// Tags both sides of the pair.
pub(crate) async fn tag_both(p: &Pair, key: &str, value: &str) {
    for side in ["web-blue", "web-green"] {
        let described = p
            .stack
            .ecs
            .describe_services()
            .cluster(&p.stack.cluster)
            .services(side)
            .send()
            .await
            .unwrap();
        let arn = described.services()[0].service_arn().unwrap().to_owned();
        p.stack
            .ecs
            .tag_resource()
            .resource_arn(arn)
            .tags(
                aws_sdk_ecs::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
}

/// Which target group a forward action sends all its traffic to, if one.
pub(crate) fn all_on(weights: &[(String, i32)]) -> Option<String> {
    let live: Vec<&(String, i32)> = weights.iter().filter(|(_, w)| *w > 0).collect();
    match live.as_slice() {
        [(tg, _)] => Some(tg.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn a_listener_forwarding_to_the_live_side_alone_moves_and_flips_back_and_the_test_rule_follows_the_idle_side()
 {
    let p = Pair::new("100").await;
    let rule = as_built(&p).await;
    let elb = Elb::new(&p.stack.sdk);
    assert_eq!(
        forward_of(&elb, &p.alb.listener).await,
        [(p.alb.blue.clone(), 1)]
    );

    // What deckhand will change, and what keeps Terraform from undoing it, before any push.
    let (text, ended) =
        crate::cli::deckhand_run(&p.stack, &["check", "--cluster", &p.stack.cluster]).await;
    assert!(ended.is_ok(), "{text}");
    let blue = p.stack.service_key("web-blue").to_string();
    for said in [
        format!(
            "{blue}  a pair with web-green: {blue} is live (100% of {})",
            p.alb.listener
        ),
        format!(
            "deckhand adds {} at weight 0 when it first moves traffic",
            p.alb.green
        ),
        format!("test traffic through {rule} follows the idle side"),
        "in Terraform, ignore_changes = [default_action] on the aws_lb_listener of".to_owned(),
        "[action] on the aws_lb_listener_rule of the test traffic".to_owned(),
    ] {
        assert!(text.contains(&said), "{said}\n{text}");
    }

    // The push goes to green; ECS completes it; all the traffic moves, green's target group
    // added to the forward action, and the test rule now reaches blue, the idle side.
    let pushed = p.pushed_and_completed().await;
    assert_eq!(pushed.outcome, Outcome::Deployed, "{pushed:?}");
    let production = forward_of(&elb, &p.alb.listener).await;
    assert_eq!(
        all_on(&production),
        Some(p.alb.green.clone()),
        "{production:?}"
    );
    assert!(
        production
            .iter()
            .any(|(tg, w)| tg == &p.alb.blue && *w == 0),
        "{production:?}"
    );
    let test = forward_of(&elb, &rule).await;
    assert_eq!(all_on(&test), Some(p.alb.blue.clone()), "{test:?}");

    // An alarm on green inside its guard window: production back on blue at once, and the
    // test rule back on green, the idle side again.
    let arn = p.green_alarm().await;
    let rollback = RollbackFunction::new(
        p.stack.ports(Role::Rollback, p.clock.clone()),
        p.stack.config(),
    );
    let alarm = p.green_alarm_event(&arn, "alarm-1", "2026-11-23T10:07:00Z");
    let flipped = rollback.handle(&alarm).await.unwrap();
    assert_eq!(flipped.outcome, Outcome::RolledBack, "{flipped:?}");
    assert_eq!(
        all_on(&forward_of(&elb, &p.alb.listener).await),
        Some(p.alb.blue.clone())
    );
    assert_eq!(
        all_on(&forward_of(&elb, &rule).await),
        Some(p.alb.green.clone())
    );
    assert!(p.stack.take_refused_calls().is_empty());
}

/// Both sides autoscaled: the side scaled down after the guard window is held at 0 (min and
/// max), so that no scale-out or scheduled minimum brings it back, and gets exactly what it had
/// back when it takes the traffic again; a side with nothing saved gets the live side's.
#[tokio::test]
async fn autoscaled_sides_take_the_live_sides_capacity_and_a_side_scaled_down_is_held_at_zero() {
    let p = Pair::new("100").await;
    p.stack.autoscale("web-blue", 2, 4).await;
    p.stack.autoscale("web-green", 0, 0).await;

    p.pushed_and_completed().await;
    assert_eq!(p.stack.capacity("web-green").await, Some((2, 4)));
    assert_eq!(p.stack.desired_count("web-green").await, 2);
    // All the traffic on green from 10:05, guarded until 10:35; then blue is scaled down.
    p.reconcile("2026-11-23T10:40:00Z").await;
    assert_eq!(p.stack.desired_count("web-blue").await, 0);
    assert_eq!(p.stack.capacity("web-blue").await, Some((0, 0)));

    // The team widens green meanwhile; the next push goes to blue, which gets back what it had
    // (not green's), then green's count.
    p.stack.autoscale("web-green", 3, 6).await;
    let next = p.push("push-43", "main-43", "2026-11-23T12:00:00Z").await;
    assert_eq!(next.outcome, Outcome::Deployed, "{next:?}");
    assert_eq!(p.stack.capacity("web-blue").await, Some((2, 4)));
    assert_eq!(p.stack.desired_count("web-blue").await, 2);
    let done = p
        .ecs(
            "web-blue",
            "ecs-deployment-completed",
            "done-43",
            "2026-11-23T12:05:00Z",
        )
        .await;
    assert_eq!(done.outcome, Outcome::Completed, "{done:?}");
    p.reconcile("2026-11-23T12:40:00Z").await;
    assert_eq!(p.stack.desired_count("web-green").await, 0);
    assert_eq!(p.stack.capacity("web-green").await, Some((0, 0)));
    assert!(p.stack.take_refused_calls().is_empty());
}
