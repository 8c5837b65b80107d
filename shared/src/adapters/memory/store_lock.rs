//! The in-memory store's locks taken at once and given back, as the DynamoDB store's.

use chrono::{DateTime, TimeDelta, Utc};

use super::{MemoryStore, guard};
use crate::domain::pace::{Rate, reserve};
use crate::domain::service::ServiceKey;
use crate::ports::{AtOnce, Locked, PortError, PortErrorKind, PortResult};

impl MemoryStore {
    /// `StateStore::lock_at_once`: the memory store always knows the record as it is.
    pub(super) fn take_at_once(
        &self,
        service: &ServiceKey,
        owner: &str,
        (now, lease): (DateTime<Utc>, TimeDelta),
        pace: Option<(&str, Rate)>,
        event: &str,
    ) -> AtOnce {
        let mut table = guard(&self.inner);
        let handled = table
            .processed
            .contains(&(event.to_owned(), service.clone()));
        if handled {
            return AtOnce::Handled;
        }
        if !matches!(table.states.get(service), Some((_, None))) {
            return AtOnce::Refused;
        }
        let slot = pace.map(|(bucket, rate)| {
            let reserved = reserve(table.pace.get(bucket).copied(), now, rate, 1);
            table.pace.insert(bucket.to_owned(), reserved.arrival);
            reserved
        });
        *table.locks.entry(service.clone()).or_default() += 1;
        let released_at = table.released.get(service).copied();
        let Some((state, lock)) = table.states.get_mut(service) else {
            return AtOnce::Refused;
        };
        *lock = Some((owner.to_owned(), now + lease));
        state.version += 1;
        AtOnce::Taken {
            locked: Box::new(Locked {
                owner: owner.to_owned(),
                until: now + lease,
                state: state.clone(),
                interrupted: None,
                released_at,
            }),
            slot,
        }
    }

    /// Gives back `owner`'s lock; with `announced`, noting that event's announcement.
    pub(super) fn release_noting(
        &self,
        service: &ServiceKey,
        owner: &str,
        announced: Option<&str>,
    ) -> PortResult<()> {
        let mut table = guard(&self.inner);
        match table.states.get_mut(service) {
            Some((state, lock)) if lock.as_ref().is_some_and(|(o, _)| o == owner) => {
                *lock = None;
                if let Some(cause) = announced {
                    state.announced = Some(cause.to_owned());
                }
                self.released(&mut table, service);
                Ok(())
            }
            _ => Err(PortError::new(
                "UpdateItem",
                PortErrorKind::Conflict,
                "the lock was no longer ours",
            )),
        }
    }
}
