//! A task definition revision cloned for a push: every field `RegisterTaskDefinition` accepts,
//! copied as described, with only the pushed images replaced, and deckhand's tags that find the
//! revision again after an interrupted attempt.

use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::{ContainerDefinition, Tag, TaskDefinition};

use crate::domain::fleet::{ImageChange, RegisteredFor, TAG_CLONED_FROM, TAG_REGISTERED_FOR};

/// The most tags ECS accepts on a task definition.
const MAX_TAGS: usize = 50;

/// A new revision of `td`: every field that `RegisterTaskDefinition` accepts, copied as
/// described (tags included), with only the images of `changes` replaced.
pub fn clone_revision(
    builder: RegisterTaskDefinitionFluentBuilder,
    td: &TaskDefinition,
    tags: &[Tag],
    changes: &[ImageChange],
) -> RegisterTaskDefinitionFluentBuilder {
    let containers: Option<Vec<ContainerDefinition>> =
        td.container_definitions.as_ref().map(|defs| {
            defs.iter()
                .map(|c| {
                    let change = changes
                        .iter()
                        .find(|ch| c.name.as_deref() == Some(ch.container.as_str()));
                    match change {
                        Some(change) => {
                            let mut c = c.clone();
                            c.image = Some(change.to.clone());
                            c
                        }
                        None => c.clone(),
                    }
                })
                .collect()
        });
    // Inference accelerators are retired by ECS but still round-trip on old task definitions.
    #[allow(deprecated)]
    let builder = builder.set_inference_accelerators(td.inference_accelerators.clone());
    builder
        .set_family(td.family.clone())
        .set_task_role_arn(td.task_role_arn.clone())
        .set_execution_role_arn(td.execution_role_arn.clone())
        .set_network_mode(td.network_mode.clone())
        .set_container_definitions(containers)
        .set_volumes(td.volumes.clone())
        .set_placement_constraints(td.placement_constraints.clone())
        .set_requires_compatibilities(td.requires_compatibilities.clone())
        .set_cpu(td.cpu.clone())
        .set_memory(td.memory.clone())
        .set_tags((!tags.is_empty()).then(|| tags.to_vec()))
        .set_pid_mode(td.pid_mode.clone())
        .set_ipc_mode(td.ipc_mode.clone())
        .set_proxy_configuration(td.proxy_configuration.clone())
        .set_ephemeral_storage(td.ephemeral_storage.clone())
        .set_runtime_platform(td.runtime_platform.clone())
        .set_enable_fault_injection(td.enable_fault_injection)
}

/// The base's tags with deckhand's marks for this push in place of the ones the base
/// carries. A base with no room left for them keeps its own tags only: that revision cannot
/// be found again after an interrupted attempt, but it deploys.
pub(super) fn tags_for_push(base: &[Tag], event_id: &str, cloned_from: i32) -> Vec<Tag> {
    let mut tags: Vec<Tag> = base
        .iter()
        .filter(|t| !matches!(t.key(), Some(TAG_REGISTERED_FOR | TAG_CLONED_FROM)))
        .cloned()
        .collect();
    if tags.len() + 2 <= MAX_TAGS {
        tags.push(
            Tag::builder()
                .key(TAG_REGISTERED_FOR)
                .value(event_id)
                .build(),
        );
        tags.push(
            Tag::builder()
                .key(TAG_CLONED_FROM)
                .value(cloned_from.to_string())
                .build(),
        );
    } else {
        tracing::warn!(
            tags = tags.len(),
            "the task definition has no room for deckhand's tags; a retry may register the revision again"
        );
    }
    tags
}

pub(super) fn registered_for(tags: &[Tag]) -> Option<RegisteredFor> {
    let value = |key: &str| {
        tags.iter()
            .find(|t| t.key() == Some(key))
            .and_then(Tag::value)
    };
    Some(RegisteredFor {
        event_id: value(TAG_REGISTERED_FOR)?.to_owned(),
        cloned_from: value(TAG_CLONED_FROM)?.parse().ok()?,
    })
}

/// `family` and revision of a task definition ARN (`...:task-definition/FAMILY:REVISION`).
pub(super) fn family_revision(arn: &str) -> Option<(&str, i32)> {
    let (family, revision) = arn.rsplit('/').next()?.rsplit_once(':')?;
    Some((family, revision.parse().ok()?))
}
