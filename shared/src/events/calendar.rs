//! `Calendar State Change` (source `aws.ssm`): a Change Calendar opened or closed. The
//! calendar is named by its document ARN in `resources`.

use serde::Deserialize;
use serde_json::Value;

use super::deploy_event::DeployEvent;
use super::envelope::{EventError, envelope, parse_at};
use crate::domain::freeze::CalendarState;

pub const CALENDAR_STATE_CHANGE: &str = "Calendar State Change";

#[derive(Deserialize)]
struct Detail {
    state: String,
}

/// A calendar's change of state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalendarChanged {
    pub event_id: String,
    /// The document's name.
    pub calendar: String,
    pub state: CalendarState,
}

pub(super) fn parse_calendar_change(value: &Value) -> Result<DeployEvent, EventError> {
    let envelope = envelope(value, CALENDAR_STATE_CHANGE, "aws.ssm")?;
    let detail: Detail = parse_at(&envelope.detail, "detail")?;
    let state = match detail.state.as_str() {
        "OPEN" => CalendarState::Open,
        "CLOSED" => CalendarState::Closed,
        other => {
            return Err(EventError::new(
                "detail.state",
                format!("`{other}` is neither OPEN nor CLOSED"),
            ));
        }
    };
    let calendar = envelope
        .resources
        .iter()
        .find_map(|arn| {
            arn.split_once(":document/")
                .map(|(_, name)| name.to_owned())
        })
        .filter(|name| !name.is_empty())
        .ok_or_else(|| EventError::new("resources", "names no Systems Manager document"))?;
    Ok(DeployEvent::CalendarChanged(CalendarChanged {
        event_id: envelope.id,
        calendar,
        state,
    }))
}
