//! The sequential peer a reconcile is compared with: what a plain Lambda written without
//! deckhand does at night, one call after another, with no state, no lock, no history and no
//! notification. It lists each cluster's services, reads them ten at a time with their tags,
//! sets the scalable target of an autoscaled one to zero and its desired count to zero. It
//! saves nothing, so it cannot wake them as they were; it is the floor of the work, not a
//! tool anyone should run.

use std::time::{Duration, Instant};

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use aws_sdk_ecs::types::ServiceField;

/// How long the night took.
pub async fn sleep_the_fleet(sdk: &aws_config::SdkConfig, clusters: &[String]) -> Duration {
    let ecs = aws_sdk_ecs::Client::new(sdk);
    let scaling = aws_sdk_applicationautoscaling::Client::new(sdk);
    let started = Instant::now();
    for cluster in clusters {
        let mut arns = Vec::new();
        let mut pages = ecs
            .list_services()
            .cluster(cluster)
            .max_results(100)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            arns.extend(page.expect("ListServices").service_arns.unwrap_or_default());
        }
        let mut scheduled = Vec::new();
        for chunk in arns.chunks(10) {
            let out = ecs
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk.to_vec()))
                .include(ServiceField::Tags)
                .send()
                .await
                .expect("DescribeServices");
            for service in out.services.unwrap_or_default() {
                let on_schedule = service
                    .tags()
                    .iter()
                    .any(|t| t.key() == Some("deckhand:awake"));
                if on_schedule && let Some(name) = service.service_name {
                    scheduled.push(name);
                }
            }
        }
        let ids: Vec<String> = scheduled
            .iter()
            .map(|name| format!("service/{cluster}/{name}"))
            .collect();
        let mut autoscaled = std::collections::BTreeSet::new();
        for chunk in ids.chunks(50) {
            let out = scaling
                .describe_scalable_targets()
                .service_namespace(ServiceNamespace::Ecs)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .set_resource_ids(Some(chunk.to_vec()))
                .send()
                .await
                .expect("DescribeScalableTargets");
            autoscaled.extend(
                out.scalable_targets
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| t.resource_id),
            );
        }
        for (name, id) in scheduled.iter().zip(&ids) {
            if autoscaled.contains(id) {
                scaling
                    .register_scalable_target()
                    .service_namespace(ServiceNamespace::Ecs)
                    .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                    .resource_id(id)
                    .min_capacity(0)
                    .max_capacity(0)
                    .send()
                    .await
                    .expect("RegisterScalableTarget");
            }
            ecs.update_service()
                .cluster(cluster)
                .service(name)
                .desired_count(0)
                .send()
                .await
                .expect("UpdateService");
        }
    }
    started.elapsed()
}
