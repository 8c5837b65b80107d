//! What the state store hands out when it locks a service.

use chrono::{DateTime, Utc};

use crate::domain::state::ServiceState;

/// The service's lock as the store handed it out.
#[derive(Debug, Clone, PartialEq)]
pub struct Locked {
    pub owner: String,
    /// When the lease ends.
    pub until: DateTime<Utc>,
    pub state: ServiceState,
    /// The holder whose lease ran out without a release: an invocation that stopped half-way,
    /// whose work may be partly done.
    pub interrupted: Option<String>,
    /// When the holder before released the lock (its commit or its release), by the store's
    /// clock; `None` when the store does not say. Whatever that holder did to the service, it
    /// did before then.
    pub released_at: Option<DateTime<Utc>>,
}

/// What `StateStore::lock_at_once` found.
#[derive(Debug, Clone, PartialEq)]
pub enum AtOnce {
    /// The lock, with the slot reserved in the pace bucket when one was asked for.
    Taken {
        locked: Box<Locked>,
        slot: Option<crate::domain::pace::Reserved>,
    },
    /// The event was handled for the service already; nothing was written.
    Handled,
    /// Not at once: the record is not known as it is, or the bucket moved; nothing was
    /// written.
    Refused,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LockAttempt {
    Acquired(Box<Locked>),
    Busy { until: DateTime<Utc> },
}
