//! Waiting for a service's lock.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::service::ServiceKey;
use crate::ports::{Clock, LockAttempt, Locked, PortError, PortErrorKind, StateStore};

/// How long a lock holder may take before others may take over. The lease is renewed right
/// before deckhand acts on ECS (`renew_before_acting`), so it must cover what follows: one ECS
/// call and the commit, each bounded by the SDK's operation timeout, with room to spare. A
/// holder that stops is replaced after this long, well before Lambda's first retry.
pub const LEASE: TimeDelta = TimeDelta::seconds(90);

const _: () = assert!(
    LEASE.num_seconds() > LEASE_TO_ACT.num_seconds(),
    "the lease must outlast one ECS call and the commit"
);

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

/// What must be left of a lease to act under it without renewing: one ECS call and the
/// commit, each bounded by the SDK's operation timeout, with room to spare.
pub const LEASE_TO_ACT: TimeDelta =
    TimeDelta::seconds(2 * crate::config::OPERATION_TIMEOUT.as_secs() as i64 + 10);

/// Renews the lease right before acting on ECS, when what is left of it may not cover the call
/// and the commit: what follows then runs under a fresh lease, and a lock another invocation
/// took meanwhile (a registration slowed by throttling past the lease) stops this one before
/// it changes anything. A lease with that much left cannot have been taken over (others take
/// a lock only once its lease has ended), so it is used as it is and costs no call.
pub async fn renew_before_acting(
    store: &dyn StateStore,
    clock: &dyn Clock,
    service: &ServiceKey,
    locked: &mut Locked,
) -> Result<(), PortError> {
    let now = clock.now();
    if locked.until - now >= LEASE_TO_ACT {
        return Ok(());
    }
    store.renew(service, locked, now, LEASE).await?;
    locked.until = now + LEASE;
    Ok(())
}

pub async fn acquire(
    store: &dyn StateStore,
    clock: &dyn Clock,
    service: &ServiceKey,
    owner: &str,
) -> Result<Locked, PortError> {
    Ok(acquire_noting_waits(store, clock, service, owner).await?.0)
}

/// How long before a read the lock must have been released for that read to have seen
/// whatever its holder did: room for the clocks of two Lambda hosts, which Amazon Time Sync
/// keeps far closer than this.
pub const CLOCK_MARGIN: TimeDelta = TimeDelta::seconds(1);

/// Whether a service read at `read_at`, before its lock was taken, may since have been moved by
/// another holder of the lock: unless the lock was free at the first attempt, taken from
/// nobody, and released before the read (with the clocks' margin), the read may be stale.
pub fn may_have_moved(locked: &Locked, waited: bool, read_at: DateTime<Utc>) -> bool {
    waited
        || locked.interrupted.is_some()
        || locked
            .released_at
            .is_none_or(|released| released + CLOCK_MARGIN > read_at)
}

/// `acquire`, and whether it had to wait for another holder.
pub async fn acquire_noting_waits(
    store: &dyn StateStore,
    clock: &dyn Clock,
    service: &ServiceKey,
    owner: &str,
) -> Result<(Locked, bool), PortError> {
    let taken = acquire_in(store, clock, service, owner, false).await?;
    taken.ok_or_else(|| {
        PortError::new(
            "lock",
            PortErrorKind::Conflict,
            format!("the lock of {service} was refused for want of a record"),
        )
    })
}

/// `acquire`, only for a service deckhand has a record of: `None`, with nothing written, when
/// it has none.
pub async fn acquire_recorded(
    store: &dyn StateStore,
    clock: &dyn Clock,
    service: &ServiceKey,
    owner: &str,
) -> Result<Option<Locked>, PortError> {
    let taken = acquire_in(store, clock, service, owner, true).await?;
    Ok(taken.map(|(locked, _)| locked))
}

async fn acquire_in(
    store: &dyn StateStore,
    clock: &dyn Clock,
    service: &ServiceKey,
    owner: &str,
    recorded_only: bool,
) -> Result<Option<(Locked, bool)>, PortError> {
    let mut waited = false;
    let started = tokio::time::Instant::now();
    let mut delay = FIRST_DELAY;
    loop {
        let now = clock.now();
        let attempt = if recorded_only {
            store.lock_recorded(service, owner, now, LEASE).await
        } else {
            store.lock(service, owner, now, LEASE).await.map(Some)
        };
        let attempt = match attempt {
            Ok(Some(attempt)) => attempt,
            Ok(None) => return Ok(None),
            Err(e) => {
                // The lock may have been taken all the same (the answer lost): give it back
                // rather than leave it to its lease. Only this owner's lock is released.
                if e.kind == PortErrorKind::Transient
                    && let Err(release) = store.release(service, owner).await
                    && release.kind != PortErrorKind::Conflict
                {
                    tracing::warn!(error = %release, "could not give back a lock that may have been taken; it expires with its lease");
                }
                return Err(e);
            }
        };
        match attempt {
            LockAttempt::Acquired(locked) => {
                if let Some(holder) = &locked.interrupted {
                    tracing::warn!(%holder, "took over a lock whose holder stopped half-way");
                }
                return Ok(Some((*locked, waited)));
            }
            LockAttempt::Busy { until } => {
                waited = true;
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

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::adapters::memory::{FixedClock, MemoryStore};

    fn locked(released_at: Option<DateTime<Utc>>, interrupted: Option<&str>) -> Locked {
        Locked {
            owner: "e1#1".into(),
            until: Utc.with_ymd_and_hms(2026, 11, 23, 22, 1, 30).unwrap(),
            state: crate::domain::state::ServiceState::default(),
            interrupted: interrupted.map(str::to_owned),
            released_at,
        }
    }

    #[test]
    fn a_read_is_stale_unless_the_lock_was_free_and_released_a_margin_before_it() {
        let read = Utc.with_ymd_and_hms(2026, 11, 23, 22, 0, 0).unwrap();
        let long_before = Some(read - TimeDelta::minutes(5));
        assert!(!may_have_moved(&locked(long_before, None), false, read));
        // A holder was waited for, or taken over: it may have moved the service.
        assert!(may_have_moved(&locked(long_before, None), true, read));
        assert!(may_have_moved(
            &locked(long_before, Some("e0#1")),
            false,
            read
        ));
        // Released within the clocks' margin of the read, or after it, or nobody knows when.
        let just_before = Some(read - CLOCK_MARGIN + TimeDelta::milliseconds(1));
        assert!(may_have_moved(&locked(just_before, None), false, read));
        assert!(may_have_moved(
            &locked(Some(read + TimeDelta::seconds(3)), None),
            false,
            read
        ));
        assert!(may_have_moved(&locked(None, None), false, read));
    }

    #[tokio::test]
    async fn a_lock_whose_answer_was_lost_is_given_back() {
        let store = MemoryStore::default();
        let clock = FixedClock::new(Utc.with_ymd_and_hms(2026, 11, 23, 22, 0, 0).unwrap());
        let service = ServiceKey::new("demo", "web");
        store.lose_next_lock_answer();
        let error = acquire(&store, &clock, &service, "e1#1").await.unwrap_err();
        assert_eq!(error.kind, PortErrorKind::Transient);
        assert!(!store.is_locked(&service), "not left to its lease");
        // The next invocation takes it at once.
        let locked = acquire(&store, &clock, &service, "e2#1").await.unwrap();
        assert_eq!(locked.interrupted, None);
    }

    #[tokio::test]
    async fn a_lock_is_taken_again_by_its_owner_and_over_from_a_holder_that_stopped() {
        let store = MemoryStore::default();
        let clock = FixedClock::new(Utc.with_ymd_and_hms(2026, 11, 23, 22, 0, 0).unwrap());
        let service = ServiceKey::new("demo", "web");
        let first = acquire(&store, &clock, &service, "e1#1").await.unwrap();
        // A retry of the same request whose answer was lost.
        let again = acquire(&store, &clock, &service, "e1#1").await.unwrap();
        assert_eq!(again.state.version, first.state.version + 1);
        assert_eq!(again.interrupted, None);
        // The holder stops; after its lease another invocation takes over and is told.
        clock.advance(LEASE + TimeDelta::seconds(1));
        let taken = acquire(&store, &clock, &service, "e1#2").await.unwrap();
        assert_eq!(taken.interrupted.as_deref(), Some("e1#1"));
        assert_eq!(owner_cause("e1#2"), "e1");
    }
}
