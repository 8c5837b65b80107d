//! The load balancer port through the real SDK against moto's ELBv2: the forward action of a
//! listener (a plain target group) and of a rule (weighted, with stickiness) read and set,
//! everything else of the actions kept. moto's ModifyListener does not check the target groups
//! it is given: every weight is asserted as read back, not as sent.

use std::sync::Arc;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, ForwardActionConfig, RuleCondition,
    TargetGroupStickinessConfig, TargetGroupTuple,
};
use deckhand::ports::SystemClock;

use crate::harness::{Role, Stack};

#[tokio::test]
async fn a_listeners_forward_action_is_read_and_its_weights_set() {
    let stack = Stack::new().await;
    let alb = stack.alb("shop").await;
    let ports = stack.ports(Role::Deploy, Arc::new(SystemClock));
    let read = ports.traffic.forward(&alb.listener).await.unwrap();
    assert_eq!(
        read.weights,
        [(alb.blue.clone(), 100), (alb.green.clone(), 0)]
    );

    let weights = [(alb.blue.clone(), 90), (alb.green.clone(), 10)];
    ports.traffic.set_weights(&read, &weights).await.unwrap();
    let shifted = ports.traffic.forward(&alb.listener).await.unwrap();
    assert_eq!(shifted.weights, weights);
    assert_eq!(shifted.percent_of(&alb.green), 10);
    // Again, with the same weights: harmless.
    ports.traffic.set_weights(&shifted, &weights).await.unwrap();
    assert_eq!(
        ports.traffic.forward(&alb.listener).await.unwrap().weights,
        weights
    );

    let missing = ports
        .traffic
        .forward(&alb.listener.replace("/app/", "/app/gone"))
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("DescribeListeners"),
        "{missing}"
    );
}

#[tokio::test]
async fn a_rules_forward_action_keeps_its_stickiness_its_other_groups_and_its_conditions() {
    let stack = Stack::new().await;
    let alb = stack.alb("rules").await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&stack.sdk);
    let canary = alb.green.clone();
    let forward = Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(
            ForwardActionConfig::builder()
                .target_groups(
                    TargetGroupTuple::builder()
                        .target_group_arn(&alb.blue)
                        .weight(100)
                        .build(),
                )
                .target_groups(
                    TargetGroupTuple::builder()
                        .target_group_arn(&canary)
                        .weight(0)
                        .build(),
                )
                .target_group_stickiness_config(
                    TargetGroupStickinessConfig::builder()
                        .enabled(true)
                        .duration_seconds(600)
                        .build(),
                )
                .build(),
        )
        .build();
    let rule = elb
        .create_rule()
        .listener_arn(&alb.listener)
        .tags(crate::harness::designated())
        .priority(10)
        .conditions(
            RuleCondition::builder()
                .field("path-pattern")
                .values("/shop/*")
                .build(),
        )
        .actions(forward)
        .send()
        .await
        .unwrap();
    let rule_arn = rule.rules()[0].rule_arn().unwrap().to_owned();
    let ports = stack.ports(Role::Rollback, Arc::new(SystemClock));
    let read = ports.traffic.forward(&rule_arn).await.unwrap();
    assert_eq!(read.weights, [(alb.blue.clone(), 100), (canary.clone(), 0)]);
    ports
        .traffic
        .set_weights(&read, &[(alb.blue.clone(), 50), (canary.clone(), 50)])
        .await
        .unwrap();
    let described = elb
        .describe_rules()
        .rule_arns(&rule_arn)
        .send()
        .await
        .unwrap();
    let rule = &described.rules()[0];
    assert_eq!(rule.conditions()[0].values(), ["/shop/*"]);
    let config = rule.actions()[0].forward_config().unwrap();
    let weights: Vec<(Option<&str>, Option<i32>)> = config
        .target_groups()
        .iter()
        .map(|t| (t.target_group_arn(), t.weight()))
        .collect();
    assert_eq!(
        weights,
        [
            (Some(alb.blue.as_str()), Some(50)),
            (Some(canary.as_str()), Some(50))
        ]
    );
    let stickiness = config.target_group_stickiness_config().unwrap();
    assert_eq!(
        (stickiness.enabled(), stickiness.duration_seconds()),
        (Some(true), Some(600))
    );

    // A listener whose default action is not a forward has nothing to shift.
    elb.modify_listener()
        .listener_arn(&alb.listener)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    FixedResponseActionConfig::builder()
                        .status_code("404")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let e = ports.traffic.forward(&alb.listener).await.unwrap_err();
    assert!(e.to_string().contains("has no forward action"), "{e}");
}

/// A listener that authenticates (OIDC) before it forwards, and a rule that authenticates with
/// Cognito: ELB never returns the client secret, and refuses a write that neither sends one nor
/// says to keep it (the emulator as ELB, scripts/emulator_elb.py).
#[tokio::test]
async fn a_listener_behind_authentication_keeps_it_and_its_secret_when_its_weights_change() {
    use aws_sdk_elasticloadbalancingv2::types::{
        AuthenticateCognitoActionConfig, AuthenticateOidcActionConfig,
    };
    let stack = Stack::new().await;
    let alb = stack.alb("oidc").await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&stack.sdk);
    let oidc = |secret: Option<&str>| {
        Action::builder()
            .r#type(ActionTypeEnum::AuthenticateOidc)
            .order(1)
            .authenticate_oidc_config(
                AuthenticateOidcActionConfig::builder()
                    .issuer("https://idp.example.com")
                    .authorization_endpoint("https://idp.example.com/authorize")
                    .token_endpoint("https://idp.example.com/token")
                    .user_info_endpoint("https://idp.example.com/userinfo")
                    .client_id("shop")
                    .set_client_secret(secret.map(str::to_owned))
                    .build(),
            )
            .build()
    };
    let forward = |blue: i32| {
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .order(2)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn(&alb.blue)
                            .weight(blue)
                            .build(),
                    )
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn(&alb.green)
                            .weight(100 - blue)
                            .build(),
                    )
                    .build(),
            )
            .build()
    };
    elb.modify_listener()
        .listener_arn(&alb.listener)
        .default_actions(oidc(Some("s3cret")))
        .default_actions(forward(100))
        .send()
        .await
        .unwrap();
    // The emulator is ELB here: no secret in what it describes, and a write of the actions as
    // read (no secret, nothing said of it) refused.
    let described = elb
        .describe_listeners()
        .listener_arns(&alb.listener)
        .send()
        .await
        .unwrap();
    let read = described.listeners()[0].default_actions()[0]
        .authenticate_oidc_config()
        .unwrap();
    assert_eq!(
        (read.client_id(), read.client_secret()),
        (Some("shop"), None)
    );
    let refused = elb
        .modify_listener()
        .listener_arn(&alb.listener)
        .default_actions(oidc(None))
        .default_actions(forward(50))
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{refused:?}").contains("client secret"),
        "{refused:?}"
    );

    let ports = stack.ports(Role::Rollback, Arc::new(SystemClock));
    let read = ports.traffic.forward(&alb.listener).await.unwrap();
    let weights = [(alb.blue.clone(), 0), (alb.green.clone(), 100)];
    ports.traffic.set_weights(&read, &weights).await.unwrap();
    let shifted = elb
        .describe_listeners()
        .listener_arns(&alb.listener)
        .send()
        .await
        .unwrap();
    let actions = shifted.listeners()[0].default_actions();
    assert_eq!(actions.len(), 2);
    let kept = actions[0].authenticate_oidc_config().unwrap();
    assert_eq!(
        (actions[0].order(), kept.issuer(), kept.client_id()),
        (Some(1), Some("https://idp.example.com"), Some("shop"))
    );
    assert_eq!(
        stack.elb_client_secrets(&alb.listener),
        serde_json::json!(["s3cret"])
    );
    assert_eq!(
        ports.traffic.forward(&alb.listener).await.unwrap().weights,
        weights
    );

    // A rule behind Cognito: its action carries no secret and is written back as it was read.
    let cognito = Action::builder()
        .r#type(ActionTypeEnum::AuthenticateCognito)
        .order(1)
        .authenticate_cognito_config(
            AuthenticateCognitoActionConfig::builder()
                .user_pool_arn("arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_shop")
                .user_pool_client_id("shop-client")
                .user_pool_domain("shop")
                .build(),
        )
        .build();
    let rule = elb
        .create_rule()
        .listener_arn(&alb.listener)
        .tags(crate::harness::designated())
        .priority(5)
        .conditions(
            RuleCondition::builder()
                .field("path-pattern")
                .values("/admin/*")
                .build(),
        )
        .actions(cognito.clone())
        .actions(forward(100))
        .send()
        .await
        .unwrap();
    let rule_arn = rule.rules()[0].rule_arn().unwrap().to_owned();
    let read = ports.traffic.forward(&rule_arn).await.unwrap();
    ports.traffic.set_weights(&read, &weights).await.unwrap();
    let described = elb
        .describe_rules()
        .rule_arns(&rule_arn)
        .send()
        .await
        .unwrap();
    let actions = described.rules()[0].actions();
    assert_eq!(
        actions[0].authenticate_cognito_config(),
        cognito.authenticate_cognito_config()
    );
    assert_eq!(
        ports.traffic.forward(&rule_arn).await.unwrap().weights,
        weights
    );
}
