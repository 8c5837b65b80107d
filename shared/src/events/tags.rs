//! `Tag Change on Resource` (source `aws.tag`): a service's `deckhand:deploy` changed, so the
//! repository index learns of it before any push or reconcile.

use serde::Deserialize;
use serde_json::Value;

use super::deploy_event::DeployEvent;
use super::envelope::{EventError, envelope, parse_at};
use crate::domain::service::ServiceKey;
use crate::domain::settings::TAG_DEPLOY;

pub const TAG_CHANGE_ON_RESOURCE: &str = "Tag Change on Resource";

/// A service whose tags changed.
#[derive(Clone, Debug, PartialEq)]
pub struct TagChanged {
    pub event_id: String,
    pub service: ServiceKey,
}

/// The detail of `Tag Change on Resource` (source `aws.tag`), as the Tagging documentation shows
/// it; deckhand reads which service, and whether `deckhand:deploy` is among the keys changed.
#[derive(Deserialize)]
struct TagChangeDetail {
    #[serde(rename = "changed-tag-keys", default)]
    changed_tag_keys: Vec<String>,
    service: String,
    #[serde(rename = "resource-type")]
    resource_type: String,
}

pub(super) fn parse_tag_change(value: &Value) -> Result<DeployEvent, EventError> {
    let envelope = envelope(value, TAG_CHANGE_ON_RESOURCE, "aws.tag")?;
    let detail: TagChangeDetail = parse_at(&envelope.detail, "detail")?;
    if detail.service != "ecs" || detail.resource_type != "service" {
        return Ok(DeployEvent::NotForDeckhand(format!(
            "a tag change of a {} {}, not of an ECS service",
            detail.service, detail.resource_type
        )));
    }
    if !detail.changed_tag_keys.iter().any(|k| k == TAG_DEPLOY) {
        return Ok(DeployEvent::NotForDeckhand(
            "the tags changed do not include deckhand:deploy".into(),
        ));
    }
    let service = envelope
        .resources
        .iter()
        .find_map(|arn| ServiceKey::from_arn(arn))
        .ok_or_else(|| EventError::new("resources", "no ECS service ARN in the event"))?;
    Ok(DeployEvent::Tagged(TagChanged {
        event_id: envelope.id,
        service,
    }))
}
