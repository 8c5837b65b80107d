//! Application Auto Scaling: the scalable targets of ECS services.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use futures::{StreamExt, TryStreamExt, stream};

use super::port_error;
use crate::domain::service::ServiceKey;
use crate::domain::state::Capacity;
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
                        let (min, max) = (target.min_capacity(), target.max_capacity());
                        targets.push((service, Capacity { min, max }));
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
            .send()
            .await
            .map_err(|e| port_error("RegisterScalableTarget", e))?;
        Ok(())
    }
}
