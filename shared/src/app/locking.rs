//! Waiting for a service's lock.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use chrono::TimeDelta;

use crate::domain::service::ServiceKey;
use crate::ports::{Clock, LockAttempt, Locked, PortError, PortErrorKind, StateStore};

/// How long a lock holder may take before others may take over: far more than one
/// register-and-update, less than the function's timeout.
pub const LEASE: TimeDelta = TimeDelta::seconds(60);

/// How long to wait for a busy lock before giving the event back for a retry.
const MAX_WAIT: Duration = Duration::from_secs(20);
const FIRST_DELAY: Duration = Duration::from_millis(20);
const MAX_DELAY: Duration = Duration::from_millis(400);

/// A random token, unique per lock attempt, so that two deliveries of one event never share
/// a lock.
pub fn owner_token(cause: &str) -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write(cause.as_bytes());
    format!("{cause}#{:016x}", hasher.finish())
}

/// The cause an owner token was made for.
pub fn owner_cause(owner: &str) -> &str {
    owner.rsplit_once('#').map_or(owner, |(cause, _)| cause)
}

pub async fn acquire(
    store: &dyn StateStore,
    clock: &dyn Clock,
    service: &ServiceKey,
    owner: &str,
) -> Result<Locked, PortError> {
    let started = tokio::time::Instant::now();
    let mut delay = FIRST_DELAY;
    loop {
        match store.lock(service, owner, clock.now(), LEASE).await? {
            LockAttempt::Acquired(locked) => {
                if let Some(holder) = &locked.interrupted {
                    tracing::warn!(%holder, "took over a lock whose holder stopped half-way");
                }
                return Ok(*locked);
            }
            LockAttempt::Busy { until } => {
                if started.elapsed() >= MAX_WAIT {
                    return Err(PortError::new(
                        "lock",
                        PortErrorKind::Transient,
                        format!(
                            "{service} stayed locked by another invocation (lease until {until})"
                        ),
                    ));
                }
                // Jitter keeps waiters from retrying in lockstep.
                let jitter =
                    RandomState::new().build_hasher().finish() % (delay.as_millis() as u64 + 1);
                tokio::time::sleep(delay + Duration::from_millis(jitter)).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
    }
}
