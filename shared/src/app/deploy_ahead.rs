//! Locks taken beside the read of the services a push concerns, before anything is decided: a
//! push that deploys then holds its lock and its pace slot when its decision is ready, a stage
//! sooner. Only for a push ECR confirmed, and only for the services this process last read
//! with tags whose policy takes the push (a guess: the read decides, and a lock the push does
//! not use is given back at the end of the invocation). On a record this process committed,
//! the lock, the pace slot and the check that the event was not handled for the service are
//! one conditional write (`StateStore::lock_at_once`), so that a warm push reads no processed
//! marks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use chrono::TimeDelta;
use futures::{StreamExt, stream};
use tracing::warn;

use super::{CONCURRENCY, DeployFunction, lock_memo};
use crate::app::locking::{LEASE, acquire_noting_waits, owner_token};
use crate::app::{paced, wait_for_slot};
use crate::domain::deploy::Push;
use crate::domain::pace::TASK_DEFINITION_WRITES;
use crate::domain::pair::TAG_PAIR;
use crate::domain::policy::Verdict;
use crate::domain::service::ServiceKey;
use crate::domain::settings::DeploySettings;
use crate::ports::{AtOnce, IndexedService, Locked, PortError};

/// A lock taken ahead, whether its holder waited for it, and the pace slot reserved beside it
/// (when the push would register a revision).
pub(super) struct Taken {
    pub(super) locked: Locked,
    pub(super) waited: bool,
    pub(super) slot: Option<Result<TimeDelta, PortError>>,
}

/// What taking one service's lock ahead found.
enum Found {
    /// The lock; `true` when taking it proved the event not handled for the service.
    Taken(Box<Taken>, bool),
    /// The event was handled for the service already: no lock.
    Handled,
    /// No lock: taking it failed, and the push takes it itself.
    Nothing,
}

/// The locks one invocation took ahead, each used at most once, and what taking them showed
/// of the event: handled for some services, not for others.
#[derive(Default)]
pub(super) struct TakenAhead {
    taken: Mutex<BTreeMap<ServiceKey, Taken>>,
    unhandled: BTreeSet<ServiceKey>,
    handled: BTreeSet<ServiceKey>,
}

impl TakenAhead {
    /// The service's lock taken ahead, if any; it is this caller's to use or give back.
    pub(super) fn take(&self, key: &ServiceKey) -> Option<Taken> {
        lock_memo(&self.taken).remove(key)
    }

    /// The services this event was handled for, when taking the locks ahead showed it for
    /// every one of `keys`.
    pub(super) fn handled_of(&self, keys: &[ServiceKey]) -> Option<BTreeSet<ServiceKey>> {
        keys.iter()
            .all(|key| self.unhandled.contains(key) || self.handled.contains(key))
            .then(|| self.handled.clone())
    }
}

impl DeployFunction {
    /// The services whose locks a push takes ahead: those the index lists under the pushed
    /// repository whose tags, as this process read them before this push, take it. None for a
    /// push ECR did not confirm or that waits for its scans.
    pub(super) fn ahead_of(
        &self,
        push: Option<&Push>,
        listed: Option<&[IndexedService]>,
    ) -> Vec<ServiceKey> {
        let (Some(push), Some(listed)) = (push, listed) else {
            return Vec::new();
        };
        if self.config.require_scan.is_some() {
            return Vec::new();
        }
        listed
            .iter()
            .map(|l| &l.service)
            .filter(|key| self.config.manages_cluster(key.cluster()))
            .filter(|key| self.would_take(key, push))
            .cloned()
            .collect()
    }

    /// Takes the locks (and pace slots) of these services for the push: at once where the
    /// store can, else each alone.
    pub(super) async fn take_ahead(
        &self,
        push: Option<&Push>,
        keys: Vec<ServiceKey>,
    ) -> TakenAhead {
        let Some(push) = push.filter(|_| !keys.is_empty()) else {
            return TakenAhead::default();
        };
        let found: Vec<(ServiceKey, Found)> = stream::iter(keys)
            .map(|key| async move {
                let found = self.take_one_ahead(&key, push).await;
                (key, found)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut ahead = TakenAhead::default();
        let mut taken = BTreeMap::new();
        for (key, found) in found {
            match found {
                Found::Taken(t, unhandled) => {
                    if unhandled {
                        ahead.unhandled.insert(key.clone());
                    }
                    taken.insert(key, *t);
                }
                Found::Handled => {
                    ahead.handled.insert(key);
                }
                Found::Nothing => {}
            }
        }
        ahead.taken = Mutex::new(taken);
        ahead
    }

    async fn take_one_ahead(&self, key: &ServiceKey, push: &Push) -> Found {
        let (store, clock) = (&*self.ports.store, &*self.ports.clock);
        let owner = owner_token(&push.event_id);
        let pace = (!self.config.dry_run).then_some(TASK_DEFINITION_WRITES);
        let now = clock.now();
        match store
            .lock_at_once(key, &owner, now, LEASE, pace, &push.event_id)
            .await
        {
            Ok(AtOnce::Taken { locked, slot }) => {
                let slot = match (slot, pace) {
                    (Some(reserved), Some((bucket, _))) => {
                        Some(wait_for_slot(bucket, reserved, now).await)
                    }
                    _ => None,
                };
                let waited = false;
                return Found::Taken(
                    Box::new(Taken {
                        locked: *locked,
                        waited,
                        slot,
                    }),
                    true,
                );
            }
            Ok(AtOnce::Handled) => return Found::Handled,
            Ok(AtOnce::Refused) => {}
            // Taken all the same, the lock is this owner's to take again below.
            Err(e) => {
                warn!(service = %key, error = %e, "could not take the lock at once; taking it alone")
            }
        }
        let reserve = async {
            match pace {
                Some(pace) => Some(paced(&self.ports, pace).await),
                None => None,
            }
        };
        let (locked, slot) =
            futures::join!(acquire_noting_waits(store, clock, key, &owner), reserve);
        match locked {
            Ok((locked, waited)) => Found::Taken(
                Box::new(Taken {
                    locked,
                    waited,
                    slot,
                }),
                false,
            ),
            Err(e) => {
                warn!(service = %key, error = %e, "could not take the lock ahead; the push takes it itself");
                Found::Nothing
            }
        }
    }

    /// Whether the service's tags, as this process last read them, take the push: opted in,
    /// not a side of a pair, a policy that decides without the running version and deploys.
    fn would_take(&self, key: &ServiceKey, push: &Push) -> bool {
        let memo = lock_memo(&self.tags);
        let Some(tags) = memo.get(key) else {
            return false;
        };

        if tags.contains_key(TAG_PAIR) {
            return false;
        }
        match DeploySettings::from_tags(tags, self.config.guard) {
            Ok(Some(settings)) => {
                !settings.policy.needs_running_version()
                    && matches!(
                        settings.policy.check(push.tag.as_deref(), None),
                        Verdict::Deploy(_)
                    )
            }
            _ => false,
        }
    }

    /// Gives back the locks taken ahead that no push used.
    pub(super) async fn give_back_ahead(&self, ahead: TakenAhead) {
        let rest = ahead
            .taken
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        stream::iter(rest)
            .for_each_concurrent(CONCURRENCY, |(key, taken)| async move {
                if let Err(e) = self.ports.store.release(&key, &taken.locked.owner).await {
                    warn!(service = %key, error = %e, "could not give back a lock taken ahead; it expires with its lease");
                }
            })
            .await;
    }
}
