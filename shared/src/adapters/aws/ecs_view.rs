//! What deckhand reads of a service as ECS describes it: its revision, tags, deployments,
//! controller and strategy, load balancers and placement, and a deployment waiting at its pause
//! hooks.

use aws_sdk_ecs::types::Service;

use crate::domain::fleet::{
    AwsVpc, CapacityProviderItem, EarlySuccess, EcsDeployment, LoadBalancedContainer, Placement,
    ServiceView,
};
use crate::domain::pause::{ConfiguredPause, PauseHook, PausedDeployment, later_pauses};
use crate::domain::service::ServiceKey;
use crate::domain::strategy::{DeploymentController, Strategy};

pub(super) fn service_view(service: &Service) -> Option<ServiceView> {
    let key = ServiceKey::from_arn(service.service_arn()?)?;
    Some(ServiceView {
        key,
        arn: service.service_arn()?.to_owned(),
        task_definition: service.task_definition()?.to_owned(),
        desired_count: service.desired_count(),
        running_count: service.running_count(),
        tags: service
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect(),
        deployments: service
            .deployments()
            .iter()
            .filter_map(|d| {
                Some(EcsDeployment {
                    id: d.id()?.to_owned(),
                    task_definition: d.task_definition()?.to_owned(),
                    status: d.status().unwrap_or_default().to_owned(),
                    rollout_state: d.rollout_state().map(|r| r.as_str().to_owned()),
                })
            })
            .collect(),
        controller: service
            .deployment_controller()
            .map_or(DeploymentController::Ecs, |c| {
                DeploymentController::parse(c.r#type().as_str())
            }),
        target_groups: service
            .load_balancers()
            .iter()
            .filter_map(|lb| lb.target_group_arn().map(str::to_owned))
            .collect(),
        strategy: service
            .deployment_configuration()
            .and_then(|c| c.strategy())
            .map_or_else(Default::default, |s| Strategy::parse(s.as_str())),
        load_balanced: service.load_balancers().iter().find_map(|lb| {
            Some(LoadBalancedContainer {
                name: lb.container_name()?.to_owned(),
                port: lb.container_port()?,
            })
        }),
        task_sets: service
            .task_sets()
            .iter()
            .filter_map(|t| t.task_definition().map(str::to_owned))
            .collect(),
        placement: placement_of(service),
        early_success: service
            .deployment_configuration()
            .and_then(|c| c.early_success_criteria())
            .filter(|e| e.enable())
            .map(|e| EarlySuccess {
                healthy_percent: e.healthy_percent(),
                deferred_cleanup: e.source_service_revision_cleanup()
                    == Some(&aws_sdk_ecs::types::ServiceRevisionCleanup::Deferred),
            }),
        service_revisions: service
            .current_service_revisions()
            .iter()
            .filter_map(|r| r.arn().map(str::to_owned))
            .collect(),
    })
}

/// Where the service's tasks run: its primary task set's capacity provider strategy, platform
/// version and network when it has task sets (`CODE_DEPLOY`, `EXTERNAL`), else the service's.
fn placement_of(service: &Service) -> Placement {
    use aws_sdk_ecs::types::{CapacityProviderStrategyItem, NetworkConfiguration};
    let read = |strategy: &[CapacityProviderStrategyItem],
                platform: Option<&str>,
                network: Option<&NetworkConfiguration>| Placement {
        capacity_provider_strategy: strategy
            .iter()
            .map(|i| CapacityProviderItem {
                capacity_provider: i.capacity_provider().to_owned(),
                weight: i.weight(),
                base: i.base(),
            })
            .collect(),
        platform_version: platform.map(str::to_owned),
        network: network
            .and_then(|n| n.awsvpc_configuration())
            .map(|a| AwsVpc {
                subnets: a.subnets().to_vec(),
                security_groups: a.security_groups().to_vec(),
                assign_public_ip: a.assign_public_ip().map(|p| p.as_str().to_owned()),
            }),
    };
    match service
        .task_sets()
        .iter()
        .find(|t| t.status() == Some("PRIMARY"))
    {
        Some(primary) => read(
            primary.capacity_provider_strategy(),
            primary.platform_version(),
            primary.network_configuration(),
        ),
        None => read(
            service.capacity_provider_strategy(),
            service.platform_version(),
            service.network_configuration(),
        ),
    }
}

/// Every `PAUSE` hook of the deployment that awaits action, and the pauses its configuration
/// still holds at later stages; None when no hook waits.
pub(super) fn paused_at_hooks(
    arn: &str,
    deployment: &aws_sdk_ecs::types::ServiceDeployment,
) -> Option<PausedDeployment> {
    use aws_sdk_ecs::types::{
        DeploymentLifecycleHookStatus as Status, DeploymentLifecycleHookTargetType as Target,
        DeploymentStrategy,
    };
    let hooks: Vec<PauseHook> = deployment
        .lifecycle_hook_details()
        .iter()
        .filter(|h| {
            h.target_type() == Some(&Target::Pause) && h.status() == Some(&Status::AwaitingAction)
        })
        .filter_map(|h| {
            Some(PauseHook {
                hook_id: h.hook_id()?.to_owned(),
                expires_at: h
                    .expires_at()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                timeout_action: h.timeout_action().map(|a| a.as_str().to_owned()),
            })
        })
        .collect();
    if hooks.is_empty() {
        return None;
    }
    let configuration = deployment.deployment_configuration();
    let configured: Vec<ConfiguredPause> = configuration
        .map(|c| c.lifecycle_hooks())
        .unwrap_or_default()
        .iter()
        .filter(|h| h.target_type() == Some(&Target::Pause))
        .map(|h| ConfiguredPause {
            stages: h
                .lifecycle_stages()
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
        })
        .collect();
    let rolling = configuration
        .and_then(|c| c.strategy())
        .is_none_or(|s| *s == DeploymentStrategy::Rolling);
    let stage = deployment.lifecycle_stage().map(|s| s.as_str().to_owned());
    Some(PausedDeployment {
        service_deployment_arn: arn.to_owned(),
        later_pauses: later_pauses(stage.as_deref(), &configured, rolling),
        hooks,
        stage,
    })
}
