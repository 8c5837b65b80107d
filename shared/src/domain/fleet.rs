//! What deckhand sees of ECS: services and task definitions, without AWS types.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use super::service::ServiceKey;
use super::settings::Tags;
use super::strategy::{DeploymentController, Strategy};

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceView {
    pub key: ServiceKey,
    pub arn: String,
    pub task_definition: String,
    pub desired_count: i32,
    pub running_count: i32,
    pub tags: Tags,
    pub deployments: Vec<EcsDeployment>,
    pub controller: DeploymentController,
    /// The target groups of its load balancers (`loadBalancers[].targetGroupArn`).
    pub target_groups: Vec<String>,
    /// How ECS deploys it (`deploymentConfiguration.strategy`), with the ECS controller.
    pub strategy: Strategy,
    /// The container and port its first load balancer sends traffic to: what an AppSpec of
    /// a CodeDeploy deployment names.
    pub load_balanced: Option<LoadBalancedContainer>,
    /// The task definitions of its task sets (`taskSets`, `CODE_DEPLOY` and `EXTERNAL`
    /// services): during a CodeDeploy deployment the new revision runs in a task set of its
    /// own while `taskDefinition` still names the primary one.
    pub task_sets: Vec<String>,
    /// Where its tasks run, as ECS describes it: what a CodeDeploy deployment must carry over.
    pub placement: Placement,
    /// ECS's early success criteria for its rolling deployments, when enabled.
    pub early_success: Option<EarlySuccess>,
    /// The ARNs of its current service revisions (`currentServiceRevisions`): what ECS resolved
    /// each container's image to when it deployed them.
    pub service_revisions: Vec<String>,
}

/// `deploymentConfiguration.earlySuccessCriteria` of a rolling service (ECS Developer Guide,
/// "Complete Amazon ECS rolling deployments early with early success criteria"): ECS completes a
/// deployment once `healthy_percent` of the desired tasks run the new revision, starts the rest
/// outside the deployment, and with `DEFERRED` cleanup removes the old tasks after completing.
/// Its circuit breaker and alarm rollback no longer act once it completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EarlySuccess {
    pub healthy_percent: Option<i32>,
    /// `sourceServiceRevisionCleanup` is `DEFERRED`: the old tasks still run, and drain, after
    /// ECS completed.
    pub deferred_cleanup: bool,
}

impl EarlySuccess {
    pub fn describe(&self) -> String {
        let healthy = self
            .healthy_percent
            .map_or_else(|| "part".to_owned(), |p| format!("{p}%"));
        let cleanup = if self.deferred_cleanup {
            "the old tasks cleaned up after it (DEFERRED)"
        } else {
            "the old tasks cleaned up before it (BLOCKING)"
        };
        format!("early success criteria: complete at {healthy} of the tasks healthy, {cleanup}")
    }
}

/// Where a service's tasks run: its capacity provider strategy, Fargate platform version and
/// awsvpc network (for a `CODE_DEPLOY` service, those of its primary task set). A CodeDeploy
/// deployment that does not repeat them runs the new task set with other ones: no capacity
/// provider strategy (FARGATE_SPOT becomes FARGATE), the `LATEST` platform version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    pub capacity_provider_strategy: Vec<CapacityProviderItem>,
    pub platform_version: Option<String>,
    pub network: Option<AwsVpc>,
}

/// One entry of a capacity provider strategy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapacityProviderItem {
    pub capacity_provider: String,
    pub weight: i32,
    pub base: i32,
}

/// `networkConfiguration.awsvpcConfiguration`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsVpc {
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    /// `ENABLED` or `DISABLED`, when ECS says.
    pub assign_public_ip: Option<String>,
}

/// `loadBalancers[].containerName` and `containerPort` of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadBalancedContainer {
    pub name: String,
    pub port: i32,
}

/// One entry of a service's `deployments` as ECS reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcsDeployment {
    pub id: String,
    pub task_definition: String,
    pub status: String,
    /// `rolloutState`: `IN_PROGRESS`, `COMPLETED` or `FAILED`, when ECS says.
    pub rollout_state: Option<String>,
}

impl ServiceView {
    /// ECS lists more than the PRIMARY deployment: a rollout is going on (or draining).
    pub fn rolling_out(&self) -> bool {
        self.deployments.len() > 1
    }

    /// The rollout has settled: completed, as below, and every desired task running. After an
    /// early success, ECS's COMPLETED comes before this.
    pub fn rollout_settled(&self) -> bool {
        self.rollout_completed() && self.running_count >= self.desired_count
    }

    /// ECS says the rollout of what the service runs has completed: one deployment left, the
    /// PRIMARY, on the service's revision, its `rolloutState` COMPLETED.
    pub fn rollout_completed(&self) -> bool {
        match self.deployments.as_slice() {
            [only] => {
                only.status == "PRIMARY"
                    && only.task_definition == self.task_definition
                    && only.rollout_state.as_deref() == Some("COMPLETED")
            }
            _ => false,
        }
    }
}

/// The tags deckhand puts on each revision it registers: the push it is for and the revision
/// it was cloned from. They let a retry find what an interrupted attempt registered, since
/// `RegisterTaskDefinition` takes no idempotency token.
pub const TAG_REGISTERED_FOR: &str = "deckhand:event";
pub const TAG_CLONED_FROM: &str = "deckhand:from";

#[derive(Clone, Debug, PartialEq)]
pub struct TaskDefinitionView {
    pub arn: String,
    pub family: String,
    pub revision: i32,
    pub containers: Vec<Container>,
    /// Registered by deckhand for a push: its event id and the revision number it was cloned
    /// from (the `deckhand:event` and `deckhand:from` tags).
    pub registered_for: Option<RegisteredFor>,
    /// The adapter's full description, kept so that a new revision is cloned from exactly what
    /// was read. Opaque to the domain, and never printed: it holds environment and secrets.
    pub source: Source,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredFor {
    pub event_id: String,
    pub cloned_from: i32,
}

impl TaskDefinitionView {
    /// Its containers with the images the changes give them: what a revision cloned from this
    /// one with those changes runs.
    pub fn containers_with(&self, changes: &[ImageChange]) -> Vec<Container> {
        self.containers
            .iter()
            .map(|c| Container {
                name: c.name.clone(),
                image: changes
                    .iter()
                    .find(|change| change.container == c.name)
                    .map_or_else(|| c.image.clone(), |change| change.to.clone()),
            })
            .collect()
    }

    /// The ARN of another revision of this family.
    pub fn revision_arn(&self, revision: i32) -> String {
        let base = self
            .arn
            .rsplit_once(':')
            .map_or(self.arn.as_str(), |(base, _)| base);
        format!("{base}:{revision}")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Container {
    pub name: String,
    pub image: String,
}

/// An adapter's own copy of something it described.
#[derive(Clone, Default)]
pub struct Source(pub Option<Arc<dyn Any + Send + Sync>>);

impl Source {
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Self(Some(Arc::new(value)))
    }

    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.as_deref().and_then(|v| v.downcast_ref())
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Source(..)")
    }
}

/// Two views are equal when they describe the same revision; the source is a cache of it.
impl PartialEq for Source {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A container's image before and after a deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageChange {
    pub container: String,
    pub from: String,
    pub to: String,
}
