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

    /// Sets the strategy with a pause hook after the test traffic shift, timing out in 60
    /// minutes with ROLLBACK, as the ECS Developer Guide's example.
    pub async fn set_strategy_with_pause_hook(&self, service: &str, strategy: &str) {
        use aws_sdk_ecs::types::{
            DeploymentLifecycleHook, DeploymentLifecycleHookAction, DeploymentLifecycleHookStage,
            DeploymentLifecycleHookTargetType, DeploymentLifecycleHookTimeoutConfiguration,
        };
        let hook = DeploymentLifecycleHook::builder()
            .target_type(DeploymentLifecycleHookTargetType::Pause)
            .lifecycle_stages(DeploymentLifecycleHookStage::PostTestTrafficShift)
            .timeout_configuration(
                DeploymentLifecycleHookTimeoutConfiguration::builder()
                    .timeout_in_minutes(60)
                    .action(DeploymentLifecycleHookAction::Rollback)
                    .build(),
            )
            .build();
        self.set_deployment_configuration(
            service,
            DeploymentConfiguration::builder()
                .strategy(DeploymentStrategy::from(strategy))
                .lifecycle_hooks(hook)
                .build(),
        )
        .await;
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
