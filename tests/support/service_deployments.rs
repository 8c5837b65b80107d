//! A stack's services deployed by ECS's own strategies, as the emulator models them
//! (scripts/emulator_deployments.py): the strategy set, the service deployments listed, and a
//! deployment ended as ECS ends one after its bake time.

use aws_sdk_ecs::types::{DeploymentConfiguration, DeploymentStrategy, ServiceDeploymentStatus};
use serde_json::json;

use crate::harness::{Stack, emulator_post};

impl Stack {
    /// Sets the service's `deploymentConfiguration.strategy` (`BLUE_GREEN`, `LINEAR`, `CANARY`).
    pub async fn set_strategy(&self, service: &str, strategy: &str) {
        self.set_deployment_configuration(
            service,
            DeploymentConfiguration::builder()
                .strategy(DeploymentStrategy::from(strategy))
                .build(),
        )
        .await;
    }

    async fn set_deployment_configuration(
        &self,
        service: &str,
        configuration: DeploymentConfiguration,
    ) {
        self.ecs
            .update_service()
            .cluster(&self.cluster)
            .service(service)
            .deployment_configuration(configuration)
            .send()
            .await
            .expect("update service with a deployment configuration");
    }

    /// A rolling service whose deployments complete early (`earlySuccessCriteria`): at
    /// `healthy_percent` of its tasks healthy, the old tasks cleaned up after (`DEFERRED`).
    pub async fn set_early_success(&self, service: &str, healthy_percent: i32) {
        use aws_sdk_ecs::types::{DeploymentEarlySuccessCriteria, ServiceRevisionCleanup};
        self.set_deployment_configuration(
            service,
            DeploymentConfiguration::builder()
                .strategy(DeploymentStrategy::Rolling)
                .early_success_criteria(
                    DeploymentEarlySuccessCriteria::builder()
                        .enable(true)
                        .healthy_percent(healthy_percent)
                        .source_service_revision_cleanup(ServiceRevisionCleanup::Deferred)
                        .build(),
                )
                .build(),
        )
        .await;
    }

    /// Sets the strategy with a pause hook after the test traffic shift, timing out in 60
    /// minutes with ROLLBACK, as the ECS Developer Guide's example.
    pub async fn set_strategy_with_pause_hook(&self, service: &str, strategy: &str) {
        self.set_strategy_with_pause_hooks(service, strategy, &[&["POST_TEST_TRAFFIC_SHIFT"]])
            .await;
    }

    /// Sets the strategy with one pause hook per entry of `hooks`, at the stages it names, each
    /// timing out in 60 minutes with ROLLBACK.
    pub async fn set_strategy_with_pause_hooks(
        &self,
        service: &str,
        strategy: &str,
        hooks: &[&[&str]],
    ) {
        use aws_sdk_ecs::types::{
            DeploymentLifecycleHook, DeploymentLifecycleHookAction, DeploymentLifecycleHookStage,
            DeploymentLifecycleHookTargetType, DeploymentLifecycleHookTimeoutConfiguration,
        };
        let hooks = hooks.iter().map(|stages| {
            DeploymentLifecycleHook::builder()
                .target_type(DeploymentLifecycleHookTargetType::Pause)
                .set_lifecycle_stages(Some(
                    stages
                        .iter()
                        .map(|s| DeploymentLifecycleHookStage::from(*s))
                        .collect(),
                ))
                .timeout_configuration(
                    DeploymentLifecycleHookTimeoutConfiguration::builder()
                        .timeout_in_minutes(60)
                        .action(DeploymentLifecycleHookAction::Rollback)
                        .build(),
                )
                .build()
        });
        self.set_deployment_configuration(
            service,
            DeploymentConfiguration::builder()
                .strategy(DeploymentStrategy::from(strategy))
                .set_lifecycle_hooks(Some(hooks.collect()))
                .build(),
        )
        .await;
    }

    /// The stage the service's newest deployment waits at and the pause hooks awaiting action
    /// there, as `DescribeServiceDeployments` says.
    pub async fn awaiting_hooks(&self, service: &str) -> (Option<String>, Vec<String>) {
        use aws_sdk_ecs::types::DeploymentLifecycleHookStatus;
        let (arn, _, _) = self.service_deployments(service).await.remove(0);
        let out = self
            .ecs
            .describe_service_deployments()
            .service_deployment_arns(arn)
            .send()
            .await
            .expect("describe service deployments");
        let deployment = &out.service_deployments()[0];
        (
            deployment.lifecycle_stage().map(|s| s.as_str().to_owned()),
            deployment
                .lifecycle_hook_details()
                .iter()
                .filter(|h| h.status() == Some(&DeploymentLifecycleHookStatus::AwaitingAction))
                .filter_map(|h| h.hook_id().map(str::to_owned))
                .collect(),
        )
    }

    /// The service's deployments, newest first: (ARN, status, target revision ARN).
    pub async fn service_deployments(&self, service: &str) -> Vec<(String, String, String)> {
        let out = self
            .ecs
            .list_service_deployments()
            .cluster(&self.cluster)
            .service(service)
            .send()
            .await
            .expect("list service deployments");
        out.service_deployments()
            .iter()
            .map(|d| {
                (
                    d.service_deployment_arn().unwrap_or_default().to_owned(),
                    d.status()
                        .map_or("", ServiceDeploymentStatus::as_str)
                        .to_owned(),
                    d.target_service_revision_arn()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    /// Ends a service deployment SUCCESSFUL, as ECS does once its bake time passed.
    pub fn complete_service_deployment(&self, arn: &str) {
        emulator_post(
            self.emulator_url(),
            "/_deckhand/ecs/service-deployments/complete",
            &json!({"serviceDeploymentArn": arn}),
        );
    }
}
