//! Application Auto Scaling: the scalable targets of ECS services.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace, SuspendedState};
use futures::{StreamExt, TryStreamExt, stream};

use super::port_error;
use crate::domain::service::ServiceKey;
use crate::domain::state::{Capacity, Suspended};
use crate::ports::{Autoscaling, PortResult};

/// DescribeScalableTargets takes at most 50 resource ids per call.
const DESCRIBE_BATCH: usize = 50;
const DESCRIBE_CONCURRENCY: usize = 4;

pub struct ApplicationAutoscaling {
    client: aws_sdk_applicationautoscaling::Client,
}

impl ApplicationAutoscaling {
    pub fn new(client: aws_sdk_applicationautoscaling::Client) -> Self {
        Self { client }
    }
}

fn resource_id(service: &ServiceKey) -> String {
    format!("service/{}/{}", service.cluster(), service.service())
}

#[async_trait]
impl Autoscaling for ApplicationAutoscaling {
    async fn scalable_targets(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, Capacity>> {
        let batches: Vec<Vec<String>> = services
            .chunks(DESCRIBE_BATCH)
            .map(|chunk| chunk.iter().map(resource_id).collect())
            .collect();
        let found: Vec<Vec<(ServiceKey, Capacity)>> = stream::iter(batches)
            .map(|ids| async move {
                let mut pages = self
                    .client
                    .describe_scalable_targets()
                    .service_namespace(ServiceNamespace::Ecs)
                    .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                    .set_resource_ids(Some(ids))
                    .into_paginator()
                    .items()
                    .send();
                let mut targets = Vec::new();
                while let Some(target) = pages.next().await {
                    let target = target.map_err(|e| port_error("DescribeScalableTargets", e))?;
                    let service = target
                        .resource_id()
                        .strip_prefix("service/")
                        .and_then(|id| id.parse::<ServiceKey>().ok());
                    if let Some(service) = service {
                        let suspended =
                            target
                                .suspended_state()
                                .map_or_else(Suspended::default, |s| Suspended {
                                    dynamic_in: s.dynamic_scaling_in_suspended().unwrap_or(false),
                                    dynamic_out: s.dynamic_scaling_out_suspended().unwrap_or(false),
                                    scheduled: s.scheduled_scaling_suspended().unwrap_or(false),
                                });
                        targets.push((
                            service,
                            Capacity {
                                min: target.min_capacity(),
                                max: target.max_capacity(),
                                suspended,
                            },
                        ));
                    }
                }
                Ok::<_, crate::ports::PortError>(targets)
            })
            .buffer_unordered(DESCRIBE_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn set_capacity(&self, service: &ServiceKey, capacity: Capacity) -> PortResult<()> {
        self.client
            .register_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .resource_id(resource_id(service))
            .min_capacity(capacity.min)
            .max_capacity(capacity.max)
            // All three, always: what is left out would keep whatever it was.
            .suspended_state(
                SuspendedState::builder()
                    .dynamic_scaling_in_suspended(capacity.suspended.dynamic_in)
                    .dynamic_scaling_out_suspended(capacity.suspended.dynamic_out)
                    .scheduled_scaling_suspended(capacity.suspended.scheduled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| port_error("RegisterScalableTarget", e))?;
        Ok(())
    }

    async fn scheduled_actions(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, Vec<String>>> {
        let wanted: std::collections::BTreeSet<&ServiceKey> = services.iter().collect();
        // One paged listing of the namespace: a filter takes one resource at a time.
        let mut pages = self
            .client
            .describe_scheduled_actions()
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .into_paginator()
            .items()
            .send();
        let mut found: BTreeMap<ServiceKey, Vec<String>> = BTreeMap::new();
        while let Some(action) = pages.next().await {
            let action = action.map_err(|e| port_error("DescribeScheduledActions", e))?;
            let service = action
                .resource_id()
                .strip_prefix("service/")
                .and_then(|id| id.parse::<ServiceKey>().ok());
            if let Some(service) = service.filter(|s| wanted.contains(s)) {
                found.entry(service).or_default().push(format!(
                    "{} ({})",
                    action.scheduled_action_name(),
                    action.schedule()
                ));
            }
        }
        Ok(found)
    }
}
