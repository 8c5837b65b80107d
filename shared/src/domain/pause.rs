//! ECS pause hooks: a service deployment stops at a lifecycle stage that has `PAUSE` hooks and
//! waits for `ContinueServiceDeployment`. A service may have up to ten lifecycle hooks, several at
//! one stage: the deployment goes on only when every hook at that stage is continued, and one
//! `ROLLBACK` rolls it back. Pause hooks apply to rolling deployments as well as to blue/green,
//! linear and canary ones (ECS Developer Guide, "Pause hooks for Amazon ECS service deployments").

use chrono::{DateTime, Utc};

/// The lifecycle stages a hook can run at, in the order a deployment passes them. A rolling
/// deployment shifts no traffic, so it never reaches the traffic stages.
pub const STAGES: [&str; 7] = [
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
];

fn is_traffic_stage(stage: &str) -> bool {
    stage.contains("TRAFFIC_SHIFT")
}

/// One pause hook that awaits its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PauseHook {
    pub hook_id: String,
    /// When ECS takes the hook's timeout action.
    pub expires_at: Option<DateTime<Utc>>,
    pub timeout_action: Option<String>,
}

/// A service deployment that waits at its pause hooks for `ContinueServiceDeployment`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PausedDeployment {
    pub service_deployment_arn: String,
    /// Every pause hook awaiting action now, in ECS's order.
    pub hooks: Vec<PauseHook>,
    /// The lifecycle stage it waits at (`POST_TEST_TRAFFIC_SHIFT`, ...).
    pub stage: Option<String>,
    /// How many more pauses the service's hooks make at the later stages of this deployment.
    pub later_pauses: usize,
}

impl PausedDeployment {
    /// The hook whose timeout comes first: ECS takes its action then, whatever the others say.
    pub fn first_timeout(&self) -> Option<&PauseHook> {
        self.hooks
            .iter()
            .filter(|h| h.expires_at.is_some())
            .min_by_key(|h| h.expires_at)
            .or(self.hooks.first())
    }
}

/// A `PAUSE` hook of the service's `deploymentConfiguration.lifecycleHooks`: its stages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfiguredPause {
    pub stages: Vec<String>,
}

/// How many times the configured pause hooks stop the deployment after `stage`: each hook once
/// at each of its stages that comes later; a rolling deployment passes no traffic stage. An
/// unknown current stage counts nothing (deckhand cannot tell what lies ahead).
pub fn later_pauses(stage: Option<&str>, configured: &[ConfiguredPause], rolling: bool) -> usize {
    let Some(position) = stage.and_then(|s| STAGES.iter().position(|known| *known == s)) else {
        return 0;
    };
    configured
        .iter()
        .flat_map(|hook| hook.stages.iter())
        .filter(|s| !(rolling && is_traffic_stage(s)))
        .filter_map(|s| STAGES.iter().position(|known| known == s))
        .filter(|p| *p > position)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(stages: &[&[&str]]) -> Vec<ConfiguredPause> {
        stages
            .iter()
            .map(|s| ConfiguredPause {
                stages: s.iter().map(|x| (*x).to_owned()).collect(),
            })
            .collect()
    }

    #[test]
    fn later_pauses_count_each_hook_at_each_later_stage() {
        let configured = hooks(&[
            &["POST_SCALE_UP"],
            &["POST_TEST_TRAFFIC_SHIFT"],
            &["POST_TEST_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT"],
        ]);
        assert_eq!(later_pauses(Some("POST_SCALE_UP"), &configured, false), 3);
        assert_eq!(
            later_pauses(Some("POST_TEST_TRAFFIC_SHIFT"), &configured, false),
            1
        );
        assert_eq!(
            later_pauses(Some("POST_PRODUCTION_TRAFFIC_SHIFT"), &configured, false),
            0
        );
        // A rolling deployment shifts no traffic: the traffic stages never come.
        assert_eq!(later_pauses(Some("PRE_SCALE_UP"), &configured, true), 1);
        assert_eq!(later_pauses(None, &configured, false), 0);
        assert_eq!(later_pauses(Some("SOMETHING_NEW"), &configured, false), 0);
    }

    #[test]
    fn the_first_timeout_decides() {
        let at =
            |h: u32| Some(chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 4, h, 0, 0).unwrap());
        let paused = PausedDeployment {
            service_deployment_arn: "arn".into(),
            hooks: vec![
                PauseHook {
                    hook_id: "a".into(),
                    expires_at: at(12),
                    timeout_action: Some("CONTINUE".into()),
                },
                PauseHook {
                    hook_id: "b".into(),
                    expires_at: at(11),
                    timeout_action: Some("ROLLBACK".into()),
                },
                PauseHook {
                    hook_id: "c".into(),
                    expires_at: None,
                    timeout_action: None,
                },
            ],
            stage: None,
            later_pauses: 0,
        };
        assert_eq!(
            paused.first_timeout().map(|h| h.hook_id.as_str()),
            Some("b")
        );
    }
}
