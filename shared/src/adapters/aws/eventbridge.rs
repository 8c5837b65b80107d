//! Known-good announcements on the account's default event bus (`PutEvents`). PutEvents
//! answers 200 with the entries it could not put counted in `FailedEntryCount`: an entry that
//! failed is an error here.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::port_error;
use crate::app::Ports;
use crate::domain::promotion::{Announcement, KNOWN_GOOD_DETAIL_TYPE, KNOWN_GOOD_SOURCE};
use crate::ports::{Announcer, PortError, PortErrorKind, PortResult};

/// `ports` that announce on EventBridge, with a client of `sdk` (the scheduler's).
pub fn with_announcer(ports: Ports, sdk: &aws_config::SdkConfig) -> Ports {
    Ports {
        announcer: std::sync::Arc::new(EventBridgeAnnouncer::new(
            aws_sdk_eventbridge::Client::new(sdk),
        )),
        ..ports
    }
}

/// The ports of a function that never announces (deploy, rollback, the command line): asked
/// anyway, it refuses, and the announcement waits for the scheduler.
pub struct NoAnnouncer;

#[async_trait]
impl Announcer for NoAnnouncer {
    async fn known_good(&self, announcement: &Announcement) -> PortResult<()> {
        Err(PortError::new(
            "events:PutEvents",
            PortErrorKind::Other,
            format!(
                "this process does not announce known-good revisions such as {}",
                announcement.revision
            ),
        ))
    }
}

pub struct EventBridgeAnnouncer {
    client: aws_sdk_eventbridge::Client,
}

impl EventBridgeAnnouncer {
    pub fn new(client: aws_sdk_eventbridge::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Announcer for EventBridgeAnnouncer {
    async fn known_good(&self, announcement: &Announcement) -> PortResult<()> {
        let entry = PutEventsRequestEntry::builder()
            .source(KNOWN_GOOD_SOURCE)
            .detail_type(KNOWN_GOOD_DETAIL_TYPE)
            .detail(announcement.detail().to_string())
            .resources(&announcement.service_arn)
            .event_bus_name("default")
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| port_error("events:PutEvents", e))?;
        if out.failed_entry_count() == 0 {
            return Ok(());
        }
        let why = out
            .entries()
            .iter()
            .filter_map(|e| {
                Some(format!(
                    "{}: {}",
                    e.error_code()?,
                    e.error_message().unwrap_or("")
                ))
            })
            .collect::<Vec<_>>()
            .join("; ");
        // EventBridge's own failures (InternalFailure, ThrottlingException) pass; the rest
        // (a policy that denies, a detail too large) stay.
        let kind = if why.contains("InternalFailure") || why.contains("Throttl") {
            PortErrorKind::Transient
        } else {
            PortErrorKind::Other
        };
        Err(PortError::new("events:PutEvents", kind, why))
    }
}
