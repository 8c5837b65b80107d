//! Change calendars in memory: each OPEN until told otherwise, or unreadable; every read kept.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::guard;
use crate::domain::freeze::CalendarState;
use crate::ports::{ChangeCalendars, PortError, PortErrorKind, PortResult};

#[derive(Default)]
pub struct MemoryCalendars {
    states: Mutex<BTreeMap<String, Option<CalendarState>>>,
    reads: Mutex<Vec<(String, DateTime<Utc>)>>,
}

impl MemoryCalendars {
    pub fn set(&self, calendar: &str, state: CalendarState) {
        guard(&self.states).insert(calendar.to_owned(), Some(state));
    }

    /// The calendar cannot be read (a denied or failed `GetCalendarState`).
    pub fn unreadable(&self, calendar: &str) {
        guard(&self.states).insert(calendar.to_owned(), None);
    }

    pub fn reads(&self) -> Vec<(String, DateTime<Utc>)> {
        guard(&self.reads).clone()
    }
}

#[async_trait]
impl ChangeCalendars for MemoryCalendars {
    async fn state(&self, calendar: &str, at: DateTime<Utc>) -> PortResult<CalendarState> {
        guard(&self.reads).push((calendar.to_owned(), at));
        match guard(&self.states).get(calendar) {
            None => Ok(CalendarState::Open),
            Some(Some(state)) => Ok(*state),
            Some(None) => Err(PortError::new(
                "ssm:GetCalendarState",
                PortErrorKind::Other,
                format!("AccessDeniedException: not authorized to read {calendar}"),
            )),
        }
    }
}
