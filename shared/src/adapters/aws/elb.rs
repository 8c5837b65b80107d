//! Elastic Load Balancing v2: the forward action of the listener or listener rule that carries
//! a pair's traffic. Weights are set by writing back the whole action list as it was read with
//! only the forward action's target group weights changed: `ModifyListener` and `ModifyRule`
//! replace the actions they are given, so anything left out would be lost. An
//! `authenticate-oidc` action is read without its client secret (ELB never returns it) and
//! written back with `UseExistingClientSecret`, which keeps the one ELB has: without it, ELB
//! refuses the write and the weights could never change, the alarm's flip back included.

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple,
};

use super::port_error;
use crate::domain::fleet::Source;
use crate::domain::pair::{DESIGNATED, Forward, TAG_TRAFFIC};
use crate::ports::{PortError, PortErrorKind, PortResult, Traffic};

pub struct ElbTraffic {
    client: aws_sdk_elasticloadbalancingv2::Client,
}

impl ElbTraffic {
    pub fn new(client: aws_sdk_elasticloadbalancingv2::Client) -> Self {
        Self { client }
    }
}

/// The actions as read, kept to be written back with new weights.
#[derive(Clone, Debug)]
struct ReadActions {
    rule: bool,
    actions: Vec<Action>,
}

fn is_rule(arn: &str) -> bool {
    arn.contains(":listener-rule/")
}

/// The forward action's target groups and weights: a `ForwardConfig`'s tuples (weight 1 where
/// none is given, as ELB does), or a plain `TargetGroupArn` with all the weight.
fn weights_of(actions: &[Action]) -> Option<Vec<(String, i32)>> {
    let forward = actions
        .iter()
        .find(|a| a.r#type() == Some(&ActionTypeEnum::Forward))?;
    match forward
        .forward_config()
        .filter(|c| !c.target_groups().is_empty())
    {
        Some(config) => Some(
            config
                .target_groups()
                .iter()
                .filter_map(|t| Some((t.target_group_arn()?.to_owned(), t.weight().unwrap_or(1))))
                .collect(),
        ),
        None => Some(vec![(forward.target_group_arn()?.to_owned(), 1)]),
    }
}

/// The action list with the forward action's weights set: named target groups get their new
/// weight, the others keep theirs, stickiness stays; a plain forward becomes a weighted one
/// (ELB takes a `TargetGroupArn` beside a `ForwardConfig` of that one group only).
fn with_weights(actions: &[Action], weights: &[(String, i32)]) -> Vec<Action> {
    actions
        .iter()
        .map(|action| {
            if action.r#type() != Some(&ActionTypeEnum::Forward) {
                return written_back(action);
            }
            let mut groups: Vec<(String, i32)> =
                weights_of(std::slice::from_ref(action)).unwrap_or_default();
            for (tg, weight) in weights {
                match groups.iter_mut().find(|(g, _)| g == tg) {
                    Some(entry) => entry.1 = *weight,
                    None => groups.push((tg.clone(), *weight)),
                }
            }
            let mut config = ForwardActionConfig::builder().set_target_groups(Some(
                groups
                    .iter()
                    .map(|(tg, w)| {
                        TargetGroupTuple::builder()
                            .target_group_arn(tg)
                            .weight(*w)
                            .build()
                    })
                    .collect(),
            ));
            if let Some(stickiness) = action
                .forward_config()
                .and_then(|c| c.target_group_stickiness_config())
            {
                config = config.target_group_stickiness_config(stickiness.clone());
            }
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .set_order(action.order())
                .forward_config(config.build())
                .build()
        })
        .collect()
}

/// An action other than the forward one, as it is written back: unchanged, but for an OIDC
/// action's secret, which the write says to keep (and never sends: it has none to send).
fn written_back(action: &Action) -> Action {
    let mut action = action.clone();
    if let Some(mut config) = action.authenticate_oidc_config.take() {
        config.client_secret = None;
        config.use_existing_client_secret = Some(true);
        action.authenticate_oidc_config = Some(config);
    }
    action
}

#[async_trait]
impl Traffic for ElbTraffic {
    async fn designated(&self, arn: &str) -> PortResult<bool> {
        let out = self
            .client
            .describe_tags()
            .resource_arns(arn)
            .send()
            .await
            .map_err(|e| port_error("DescribeTags", e))?;
        Ok(out
            .tag_descriptions()
            .iter()
            .filter(|d| d.resource_arn() == Some(arn))
            .flat_map(|d| d.tags())
            .any(|t| t.key() == Some(TAG_TRAFFIC) && t.value() == Some(DESIGNATED)))
    }

    async fn forward(&self, arn: &str) -> PortResult<Forward> {
        let (rule, actions) = if is_rule(arn) {
            let out = self
                .client
                .describe_rules()
                .rule_arns(arn)
                .send()
                .await
                .map_err(|e| port_error("DescribeRules", e))?;
            let rule = out.rules().iter().find(|r| r.rule_arn() == Some(arn));
            (true, rule.map(|r| r.actions().to_vec()))
        } else {
            let out = self
                .client
                .describe_listeners()
                .listener_arns(arn)
                .send()
                .await
                .map_err(|e| port_error("DescribeListeners", e))?;
            let listener = out
                .listeners()
                .iter()
                .find(|l| l.listener_arn() == Some(arn));
            (false, listener.map(|l| l.default_actions().to_vec()))
        };
        let operation = if rule {
            "DescribeRules"
        } else {
            "DescribeListeners"
        };
        let actions = actions.ok_or_else(|| {
            PortError::new(
                operation,
                PortErrorKind::NotFound,
                format!("{arn} does not exist"),
            )
        })?;
        let weights = weights_of(&actions).ok_or_else(|| {
            PortError::new(
                operation,
                PortErrorKind::Other,
                format!("{arn} has no forward action"),
            )
        })?;
        Ok(Forward {
            arn: arn.to_owned(),
            weights,
            source: Source::new(ReadActions { rule, actions }),
        })
    }

    async fn set_weights(&self, forward: &Forward, weights: &[(String, i32)]) -> PortResult<()> {
        let read = forward.source.get::<ReadActions>().ok_or_else(|| {
            PortError::new(
                "ModifyListener",
                PortErrorKind::Other,
                "the forward action was not read through this adapter",
            )
        })?;
        let actions = with_weights(&read.actions, weights);
        if read.rule {
            self.client
                .modify_rule()
                .rule_arn(&forward.arn)
                .set_actions(Some(actions))
                .send()
                .await
                .map_err(|e| port_error("ModifyRule", e))?;
        } else {
            self.client
                .modify_listener()
                .listener_arn(&forward.arn)
                .set_default_actions(Some(actions))
                .send()
                .await
                .map_err(|e| port_error("ModifyListener", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_elasticloadbalancingv2::types::{
        FixedResponseActionConfig, TargetGroupStickinessConfig,
    };

    use super::*;

    fn tuple(tg: &str, weight: Option<i32>) -> TargetGroupTuple {
        TargetGroupTuple::builder()
            .target_group_arn(tg)
            .set_weight(weight)
            .build()
    }

    #[test]
    fn weights_keep_every_other_part_of_the_actions() {
        let authenticate = Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .order(1)
            .fixed_response_config(
                FixedResponseActionConfig::builder()
                    .status_code("503")
                    .build(),
            )
            .build();
        let forward = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .order(2)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(tuple("blue", Some(100)))
                    .target_groups(tuple("green", None))
                    .target_groups(tuple("canary", Some(5)))
                    .target_group_stickiness_config(
                        TargetGroupStickinessConfig::builder()
                            .enabled(true)
                            .duration_seconds(300)
                            .build(),
                    )
                    .build(),
            )
            .build();
        let actions = vec![authenticate.clone(), forward];
        assert_eq!(
            weights_of(&actions),
            Some(vec![
                ("blue".into(), 100),
                ("green".into(), 1),
                ("canary".into(), 5)
            ])
        );
        let set = with_weights(&actions, &[("blue".into(), 90), ("green".into(), 10)]);
        assert_eq!(set[0], authenticate);
        assert_eq!(set[1].order(), Some(2));
        assert_eq!(
            weights_of(&set),
            Some(vec![
                ("blue".into(), 90),
                ("green".into(), 10),
                ("canary".into(), 5)
            ])
        );
        let stickiness = set[1]
            .forward_config()
            .and_then(|c| c.target_group_stickiness_config());
        assert_eq!(stickiness.and_then(|s| s.duration_seconds()), Some(300));
    }

    #[test]
    fn an_oidc_action_keeps_the_secret_elb_has_and_a_cognito_one_is_written_as_read() {
        use aws_sdk_elasticloadbalancingv2::types::{
            AuthenticateCognitoActionConfig, AuthenticateOidcActionConfig,
        };
        let oidc = Action::builder()
            .r#type(ActionTypeEnum::AuthenticateOidc)
            .order(1)
            .authenticate_oidc_config(
                AuthenticateOidcActionConfig::builder()
                    .issuer("https://idp.example.com")
                    .authorization_endpoint("https://idp.example.com/authorize")
                    .token_endpoint("https://idp.example.com/token")
                    .user_info_endpoint("https://idp.example.com/userinfo")
                    .client_id("deckhand")
                    .scope("openid email")
                    .session_timeout(3600)
                    .build(),
            )
            .build();
        let cognito = Action::builder()
            .r#type(ActionTypeEnum::AuthenticateCognito)
            .order(2)
            .authenticate_cognito_config(
                AuthenticateCognitoActionConfig::builder()
                    .user_pool_arn(
                        "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_abc",
                    )
                    .user_pool_client_id("client")
                    .user_pool_domain("shop")
                    .build(),
            )
            .build();
        let forward = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .order(3)
            .target_group_arn("blue")
            .build();
        let set = with_weights(
            &[oidc.clone(), cognito.clone(), forward],
            &[("blue".into(), 100)],
        );
        let written = set[0].authenticate_oidc_config().unwrap();
        assert_eq!(written.use_existing_client_secret(), Some(true));
        assert_eq!(written.client_secret(), None);
        let read = oidc.authenticate_oidc_config().unwrap();
        assert_eq!(
            (
                written.issuer(),
                written.client_id(),
                written.scope(),
                written.session_timeout()
            ),
            (
                read.issuer(),
                read.client_id(),
                read.scope(),
                read.session_timeout()
            )
        );
        assert_eq!(set[0].order(), Some(1));
        assert_eq!(set[1], cognito);
    }

    #[test]
    fn a_plain_forward_becomes_a_weighted_one() {
        let plain = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn("blue")
            .build();
        assert_eq!(
            weights_of(std::slice::from_ref(&plain)),
            Some(vec![("blue".into(), 1)])
        );
        let set = with_weights(&[plain], &[("blue".into(), 0), ("green".into(), 100)]);
        assert_eq!(set[0].target_group_arn(), None);
        assert_eq!(
            weights_of(&set),
            Some(vec![("blue".into(), 0), ("green".into(), 100)])
        );
    }
}
