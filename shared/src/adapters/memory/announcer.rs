//! The event bus in memory: keeps every announcement, or refuses as told.

use std::sync::Mutex;

use async_trait::async_trait;

use super::guard;
use crate::domain::promotion::Announcement;
use crate::ports::{Announcer, PortError, PortErrorKind, PortResult};

#[derive(Default)]
pub struct MemoryAnnouncer {
    announced: Mutex<Vec<Announcement>>,
    refusing: Mutex<bool>,
}

impl MemoryAnnouncer {
    pub fn announced(&self) -> Vec<Announcement> {
        guard(&self.announced).clone()
    }

    /// From now on, every announcement fails (`true`) or goes through (`false`).
    pub fn refuse(&self, refusing: bool) {
        *guard(&self.refusing) = refusing;
    }
}

#[async_trait]
impl Announcer for MemoryAnnouncer {
    async fn known_good(&self, announcement: &Announcement) -> PortResult<()> {
        if *guard(&self.refusing) {
            return Err(PortError::new(
                "events:PutEvents",
                PortErrorKind::Transient,
                "the event bus is unavailable",
            ));
        }
        guard(&self.announced).push(announcement.clone());
        Ok(())
    }
}
