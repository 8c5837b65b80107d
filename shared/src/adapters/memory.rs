//! In-memory implementations of every port, with the same semantics as the AWS ones (locks,
//! conditional commits, revisions), for fast tests of the use cases.

use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

use crate::ports::Clock;

mod alarms;
mod announcer;
mod autoscaling;
mod calendars;
mod checks;
mod codedeploy;
mod ecr;
mod ecs;
mod ecs_port;
mod notifier;
mod store;
mod traffic;

pub use alarms::MemoryAlarms;
pub use announcer::MemoryAnnouncer;
pub use autoscaling::MemoryAutoscaling;
pub use calendars::MemoryCalendars;
pub use checks::MemoryChecks;
pub use codedeploy::{MemoryCodeDeploy, MemoryDeployment};
pub use ecr::MemoryEcr;
pub use ecs::MemoryEcs;
pub use notifier::MemoryNotifier;
pub use store::MemoryStore;
pub use traffic::{MemoryTraffic, Weights};

pub(super) fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A clock that stands still until told to move.
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *guard(&self.0) = at;
    }

    pub fn advance(&self, by: TimeDelta) {
        *guard(&self.0) += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *guard(&self.0)
    }
}
