//! Change calendars through Systems Manager's `GetCalendarState`, asked for the state at the
//! function's own clock (`AtTime`), so that a freeze is judged at the instant deckhand decides.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};

use super::port_error;
use crate::app::Ports;
use crate::domain::freeze::CalendarState;
use crate::ports::{ChangeCalendars, PortError, PortErrorKind, PortResult};

/// `ports` that read change calendars through Systems Manager, with a client of `sdk` (the
/// deploy function's, and the command line's).
pub fn with_calendars(ports: Ports, sdk: &aws_config::SdkConfig) -> Ports {
    Ports {
        calendars: std::sync::Arc::new(SsmCalendars::new(aws_sdk_ssm::Client::new(sdk))),
        ..ports
    }
}

/// The ports of a function that reads no calendar (rollback, scheduler): asked anyway, it
/// fails, and a push it would deploy is held for the deploy function to decide.
pub struct NoCalendars;

#[async_trait]
impl ChangeCalendars for NoCalendars {
    async fn state(&self, calendar: &str, _at: DateTime<Utc>) -> PortResult<CalendarState> {
        Err(PortError::new(
            "ssm:GetCalendarState",
            PortErrorKind::Other,
            format!(
                "this function reads no change calendar such as {calendar}; the deploy function does"
            ),
        ))
    }
}

pub struct SsmCalendars {
    client: aws_sdk_ssm::Client,
}

impl SsmCalendars {
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl ChangeCalendars for SsmCalendars {
    async fn state(&self, calendar: &str, at: DateTime<Utc>) -> PortResult<CalendarState> {
        let out = self
            .client
            .get_calendar_state()
            .calendar_names(calendar)
            .at_time(at.to_rfc3339_opts(SecondsFormat::Secs, true))
            .send()
            .await
            .map_err(|e| port_error("ssm:GetCalendarState", e))?;
        match out.state() {
            Some(aws_sdk_ssm::types::CalendarState::Open) => Ok(CalendarState::Open),
            Some(aws_sdk_ssm::types::CalendarState::Closed) => Ok(CalendarState::Closed),
            other => Err(PortError::new(
                "ssm:GetCalendarState",
                PortErrorKind::Other,
                format!("{calendar}: a state deckhand does not know ({other:?})"),
            )),
        }
    }
}
