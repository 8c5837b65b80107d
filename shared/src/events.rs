//! Parsing the payloads that reach the functions into domain types, one file per source; every
//! failure names the field at fault. This file only sends each event to its parser.

use serde_json::Value;

pub mod alarm;
pub mod calendar;
pub mod codedeploy;
pub mod dead_letter;
pub mod deploy_event;
pub mod ecr;
pub mod ecs;
pub mod envelope;
pub mod known_good;
pub mod origin;
pub mod scan;
pub mod scheduler;
pub mod tags;

pub use codedeploy::CODEDEPLOY_DEPLOYMENT_STATE_CHANGE;
pub use deploy_event::DeployEvent;
pub use ecr::ECR_IMAGE_ACTION;
pub use ecs::{ECS_DEPLOYMENT_STATE_CHANGE, ECS_HOOK_STATE_CHANGE};
pub use envelope::{EventError, parse_at};
pub use scan::{ECR_IMAGE_SCAN, INSPECTOR2_SCAN};
pub use tags::{TAG_CHANGE_ON_RESOURCE, TagChanged};

use crate::domain::promotion::KNOWN_GOOD_DETAIL_TYPE;
use calendar::CALENDAR_STATE_CHANGE;

/// The input of the deploy function's schedule: deploy the held pushes that may go.
pub const RELEASE_HELD: &str = "release-held";
use envelope::detail_type;

/// Reads an event sent to the `deploy` function.
pub fn parse_deploy_event(value: &Value) -> Result<DeployEvent, EventError> {
    // The deploy function's own round of held pushes, from its schedule.
    if value.get("detail-type").is_none() && value.get("action").is_some() {
        return match value["action"].as_str() {
            Some(RELEASE_HELD) => Ok(DeployEvent::ReleaseHeld),
            _ => Err(EventError::new(
                "action",
                format!("expected `{RELEASE_HELD}`, the deploy function's only action"),
            )),
        };
    }
    match detail_type(value)? {
        ECR_IMAGE_ACTION => ecr::parse_push(value),
        ECS_DEPLOYMENT_STATE_CHANGE => ecs::parse_deployment(value),
        ECR_IMAGE_SCAN => scan::parse_ecr_scan(value),
        INSPECTOR2_SCAN => scan::parse_inspector_scan(value),
        CODEDEPLOY_DEPLOYMENT_STATE_CHANGE => codedeploy::parse_codedeploy(value),
        ECS_HOOK_STATE_CHANGE => ecs::parse_hook(value),
        TAG_CHANGE_ON_RESOURCE => tags::parse_tag_change(value),
        KNOWN_GOOD_DETAIL_TYPE => known_good::parse_known_good(value),
        CALENDAR_STATE_CHANGE => calendar::parse_calendar_change(value),
        other => Err(EventError::new(
            "detail-type",
            format!(
                "`{other}` is not handled by deploy (expected `{ECR_IMAGE_ACTION}`, `{ECS_DEPLOYMENT_STATE_CHANGE}`, `{ECR_IMAGE_SCAN}`, `{INSPECTOR2_SCAN}`, `{CODEDEPLOY_DEPLOYMENT_STATE_CHANGE}`, `{ECS_HOOK_STATE_CHANGE}`, `{TAG_CHANGE_ON_RESOURCE}`, `{KNOWN_GOOD_DETAIL_TYPE}` or `{CALENDAR_STATE_CHANGE}`)"
            ),
        )),
    }
}

#[cfg(test)]
#[path = "events/deploy_event_tests.rs"]
pub(crate) mod tests;
