//! The table in memory: service records with their locks and versions, history, processed
//! marks, the pace buckets and the repository index, with DynamoDB's conditional semantics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use super::guard;
use crate::domain::image::Repository;
use crate::domain::pace::{Rate, Reserved, reserve};
use crate::domain::service::ServiceKey;
use crate::domain::state::{Quarantine, ServiceState};
use crate::history::{HistoryRecord, ProcessedMark};
use crate::ports::{
    AtOnce, Clock, ImageIndex, IndexUpdate, IndexedService, KnownContainers, LockAttempt, Locked,
    Pace, PortError, PortErrorKind, PortResult, StateStore,
};

/// The table in memory, with the same lock and condition semantics as [`super::aws::DynamoStore`].
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Table>,
    /// When a lock is released, for the next holder (`Locked::released_at`); without a clock
    /// the store does not say.
    clock: Option<Arc<dyn Clock>>,
    /// The next lock is taken but its caller hears a failure, as when the answer is lost.
    lose_next_lock_answer: Mutex<bool>,
}

/// A lock: its owner and when its lease ends.
type Lease = Option<(String, DateTime<Utc>)>;

#[derive(Default)]
struct Table {
    states: BTreeMap<ServiceKey, (ServiceState, Lease)>,
    renewals: BTreeMap<ServiceKey, usize>,
    /// Writes of a state under a lock kept (`save`).
    saves: BTreeMap<ServiceKey, usize>,
    /// Attempts to take a lock alone (`lock`).
    locks: BTreeMap<ServiceKey, usize>,
    history: Vec<HistoryRecord>,
    processed: BTreeSet<(String, ServiceKey)>,
    containers: BTreeMap<ServiceKey, KnownContainers>,
    /// The repository index: each repository's services and the revision each was read from.
    repositories: BTreeMap<Repository, BTreeMap<ServiceKey, String>>,
    seen: BTreeSet<Repository>,
    /// The arrival time of each pace bucket.
    pace: BTreeMap<String, DateTime<Utc>>,
    /// Quarantines archived out of services' states.
    archived: BTreeMap<(ServiceKey, String), Quarantine>,
    /// When each service's lock was last released (with a clock).
    released: BTreeMap<ServiceKey, DateTime<Utc>>,
    /// The newest announcement of each upstream service, with when it proved itself.
    announcements: BTreeMap<String, (serde_json::Value, DateTime<Utc>)>,
}

impl MemoryStore {
    /// A store that tells each lock's holder when the one before released it.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock: Some(clock),
            ..Self::default()
        }
    }

    fn released(&self, table: &mut Table, service: &ServiceKey) {
        if let Some(clock) = &self.clock {
            table.released.insert(service.clone(), clock.now());
        }
    }

    pub fn all_history(&self) -> Vec<HistoryRecord> {
        guard(&self.inner).history.clone()
    }

    /// The services the repository index lists under the repository of this name (any
    /// registry), `None` until a pass through the whole fleet has seen it.
    pub fn listed(&self, name: &str) -> Option<Vec<String>> {
        let table = guard(&self.inner);
        let repository = table.seen.iter().find(|r| r.name == name)?;
        Some(
            table
                .repositories
                .get(repository)
                .into_iter()
                .flatten()
                .map(|(service, _)| service.to_string())
                .collect(),
        )
    }

    /// How often a lock was asked for alone (not with a pending record).
    pub fn locks(&self, service: &ServiceKey) -> usize {
        guard(&self.inner).locks.get(service).copied().unwrap_or(0)
    }

    /// How often a state was written under a lock that stayed held.
    pub fn saves(&self, service: &ServiceKey) -> usize {
        guard(&self.inner).saves.get(service).copied().unwrap_or(0)
    }

    /// How often a lease of this service's lock was renewed.
    pub fn renewals(&self, service: &ServiceKey) -> usize {
        guard(&self.inner)
            .renewals
            .get(service)
            .copied()
            .unwrap_or(0)
    }

    pub fn is_locked(&self, service: &ServiceKey) -> bool {
        guard(&self.inner)
            .states
            .get(service)
            .is_some_and(|(_, lock)| lock.is_some())
    }

    /// Takes the next lock asked for, then answers with a transient failure.
    pub fn lose_next_lock_answer(&self) {
        *guard(&self.lose_next_lock_answer) = true;
    }

    pub fn put_state(&self, service: &ServiceKey, state: ServiceState) {
        guard(&self.inner)
            .states
            .insert(service.clone(), (state, None));
    }
}

/// What `commit` and `save` archive, as the DynamoDB store does (every quarantine beyond
/// what the state keeps; no transaction limit in memory).
fn archive_into(
    archived: &mut BTreeMap<(ServiceKey, String), Quarantine>,
    service: &ServiceKey,
    state: &mut ServiceState,
) {
    for (digest, q) in state.archive_quarantines(usize::MAX) {
        archived.insert((service.clone(), digest), q);
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn remember_announcement(
        &self,
        upstream: &str,
        event: &serde_json::Value,
        proven_at: DateTime<Utc>,
    ) -> PortResult<()> {
        let mut table = guard(&self.inner);
        let newer = table
            .announcements
            .get(upstream)
            .is_none_or(|(_, at)| *at < proven_at);
        if newer {
            table
                .announcements
                .insert(upstream.to_owned(), (event.clone(), proven_at));
        }
        Ok(())
    }

    async fn announcement(&self, upstream: &str) -> PortResult<Option<serde_json::Value>> {
        Ok(guard(&self.inner)
            .announcements
            .get(upstream)
            .map(|(event, _)| event.clone()))
    }

    async fn archived_quarantine(
        &self,
        service: &ServiceKey,
        digest: &str,
    ) -> PortResult<Option<Quarantine>> {
        Ok(guard(&self.inner)
            .archived
            .get(&(service.clone(), digest.to_owned()))
            .cloned())
    }

    async fn release_archived_quarantine(
        &self,
        service: &ServiceKey,
        digest: &str,
    ) -> PortResult<bool> {
        Ok(guard(&self.inner)
            .archived
            .remove(&(service.clone(), digest.to_owned()))
            .is_some())
    }

    async fn commit_indexed(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
        records: &[HistoryRecord],
        processed: Option<&ProcessedMark>,
        index: &IndexUpdate,
    ) -> PortResult<()> {
        // In memory one after the other; the DynamoDB store writes both in one transaction.
        self.commit(service, locked, state, records, processed)
            .await?;
        ImageIndex::update(self, std::slice::from_ref(index), false).await
    }

    async fn processed(&self, event_id: &str) -> PortResult<BTreeSet<ServiceKey>> {
        Ok(guard(&self.inner)
            .processed
            .iter()
            .filter(|(id, _)| id == event_id)
            .map(|(_, key)| key.clone())
            .collect())
    }

    async fn lock(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<LockAttempt> {
        let mut table = guard(&self.inner);
        *table.locks.entry(service.clone()).or_default() += 1;
        let (state, lock) = table.states.entry(service.clone()).or_default();
        if let Some((holder, until)) = lock
            && *until >= now
            && holder != owner
        {
            return Ok(LockAttempt::Busy { until: *until });
        }
        let previous = lock.replace((owner.to_owned(), now + lease));
        state.version += 1;
        let state = state.clone();
        let released_at = table.released.get(service).copied();
        if std::mem::take(&mut *guard(&self.lose_next_lock_answer)) {
            return Err(PortError::new(
                "UpdateItem",
                PortErrorKind::Transient,
                "connection reset",
            ));
        }
        Ok(LockAttempt::Acquired(Box::new(Locked {
            owner: owner.to_owned(),
            until: now + lease,
            state,
            interrupted: previous.map(|(holder, _)| holder).filter(|h| h != owner),
            released_at,
        })))
    }

    async fn lock_at_once(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
        pace: Option<(&str, Rate)>,
        event: &str,
    ) -> PortResult<AtOnce> {
        Ok(self.take_at_once(service, owner, (now, lease), pace, event))
    }

    async fn lock_recorded(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<Option<LockAttempt>> {
        if !guard(&self.inner).states.contains_key(service) {
            return Ok(None);
        }
        Ok(Some(self.lock(service, owner, now, lease).await?))
    }

    async fn lock_saving(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
        read: &ServiceState,
        state: &ServiceState,
    ) -> PortResult<Option<Locked>> {
        let mut table = guard(&self.inner);
        let as_read = match table.states.get(service) {
            None => read.version == 0,
            Some((current, lock)) => current.version == read.version && lock.is_none(),
        };
        if !as_read {
            return Ok(None);
        }
        let state = ServiceState {
            version: read.version + 1,
            ..state.clone()
        };
        let until = now + lease;
        table.states.insert(
            service.clone(),
            (state.clone(), Some((owner.to_owned(), until))),
        );
        Ok(Some(Locked {
            owner: owner.to_owned(),
            until,
            state,
            interrupted: None,
            released_at: None,
        }))
    }

    async fn commit(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
        records: &[HistoryRecord],
        processed: Option<&ProcessedMark>,
    ) -> PortResult<()> {
        let mut table = guard(&self.inner);
        let holds = table.states.get(service).is_some_and(|(current, lock)| {
            current.version == locked.state.version
                && lock.as_ref().is_some_and(|(o, _)| *o == locked.owner)
        });
        if !holds {
            return Err(PortError::new(
                "TransactWriteItems",
                PortErrorKind::Conflict,
                "lock lost",
            ));
        }
        let mut state = ServiceState {
            version: locked.state.version,
            ..state.clone()
        };
        archive_into(&mut table.archived, service, &mut state);
        table.states.insert(service.clone(), (state, None));
        self.released(&mut table, service);
        table.history.extend(records.iter().cloned());
        if let Some(mark) = processed {
            table
                .processed
                .insert((mark.event_id.clone(), mark.service.clone()));
        }
        Ok(())
    }

    async fn save(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
    ) -> PortResult<()> {
        let mut table = guard(&self.inner);
        *table.saves.entry(service.clone()).or_default() += 1;
        match table.states.get_mut(service) {
            Some((current, lock))
                if current.version == locked.state.version
                    && lock.as_ref().is_some_and(|(o, _)| *o == locked.owner) =>
            {
                let mut state = ServiceState {
                    version: locked.state.version,
                    ..state.clone()
                };
                archive_into(&mut table.archived, service, &mut state);
                if let Some((current, _)) = table.states.get_mut(service) {
                    *current = state;
                }
                Ok(())
            }
            _ => Err(PortError::new(
                "TransactWriteItems",
                PortErrorKind::Conflict,
                "lock lost",
            )),
        }
    }

    async fn renew(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<()> {
        let mut table = guard(&self.inner);
        match table.states.get_mut(service) {
            Some((current, Some((owner, until))))
                if current.version == locked.state.version && *owner == locked.owner =>
            {
                *until = now + lease;
                *table.renewals.entry(service.clone()).or_default() += 1;
                Ok(())
            }
            _ => Err(PortError::new(
                "UpdateItem",
                PortErrorKind::Conflict,
                "the lock was taken over",
            )),
        }
    }

    async fn release(&self, service: &ServiceKey, owner: &str) -> PortResult<()> {
        self.release_noting(service, owner, None)
    }

    async fn release_announced(
        &self,
        service: &ServiceKey,
        owner: &str,
        cause: &str,
    ) -> PortResult<()> {
        self.release_noting(service, owner, Some(cause))
    }

    async fn record(
        &self,
        records: &[HistoryRecord],
        processed: Option<&ProcessedMark>,
    ) -> PortResult<()> {
        let mut table = guard(&self.inner);
        table.history.extend(records.iter().cloned());
        if let Some(mark) = processed {
            table
                .processed
                .insert((mark.event_id.clone(), mark.service.clone()));
        }
        Ok(())
    }

    async fn load(&self, service: &ServiceKey) -> PortResult<ServiceState> {
        Ok(guard(&self.inner)
            .states
            .get(service)
            .map(|(state, _)| state.clone())
            .unwrap_or_default())
    }

    async fn load_many(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, ServiceState>> {
        let table = guard(&self.inner);
        Ok(services
            .iter()
            .filter_map(|s| {
                table
                    .states
                    .get(s)
                    .map(|(state, _)| (s.clone(), state.clone()))
            })
            .collect())
    }

    async fn sleeping(&self) -> PortResult<Vec<ServiceKey>> {
        Ok(guard(&self.inner)
            .states
            .iter()
            .filter(|(_, (state, _))| state.sleep.is_some())
            .map(|(key, _)| key.clone())
            .collect())
    }

    async fn waiting(&self) -> PortResult<Vec<ServiceKey>> {
        Ok(guard(&self.inner)
            .states
            .iter()
            .filter(|(_, (state, _))| !state.waiting.is_empty())
            .map(|(key, _)| key.clone())
            .collect())
    }

    async fn held(&self) -> PortResult<Vec<ServiceKey>> {
        Ok(guard(&self.inner)
            .states
            .iter()
            .filter(|(_, (state, _))| state.held.is_some())
            .map(|(key, _)| key.clone())
            .collect())
    }

    async fn history(&self, service: &ServiceKey, limit: usize) -> PortResult<Vec<HistoryRecord>> {
        let table = guard(&self.inner);
        let mut records: Vec<HistoryRecord> = table
            .history
            .iter()
            .filter(|r| &r.service == service)
            .cloned()
            .collect();
        records.sort_by_key(|r| std::cmp::Reverse(r.at));
        records.truncate(limit);
        Ok(records)
    }
}

#[async_trait]
impl Pace for MemoryStore {
    async fn reserve(
        &self,
        bucket: &str,
        rate: Rate,
        calls: u32,
        now: DateTime<Utc>,
    ) -> PortResult<Reserved> {
        let mut table = guard(&self.inner);
        let reserved = reserve(table.pace.get(bucket).copied(), now, rate, calls);
        table.pace.insert(bucket.to_owned(), reserved.arrival);
        Ok(reserved)
    }
}

#[async_trait]
impl ImageIndex for MemoryStore {
    async fn containers(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, KnownContainers>> {
        let table = guard(&self.inner);
        Ok(services
            .iter()
            .filter_map(|k| Some((k.clone(), table.containers.get(k)?.clone())))
            .collect())
    }

    async fn update(&self, updates: &[IndexUpdate], complete: bool) -> PortResult<()> {
        let mut table = guard(&self.inner);
        for update in updates {
            let now = update
                .now
                .as_ref()
                .map(KnownContainers::repositories)
                .unwrap_or_default();
            for gone in update.before.difference(&now) {
                if let Some(listed) = table.repositories.get_mut(gone) {
                    listed.remove(&update.service);
                }
            }
            match &update.now {
                Some(entry) => {
                    if complete {
                        table.seen.extend(now.iter().cloned());
                    }
                    for repository in now {
                        table
                            .repositories
                            .entry(repository)
                            .or_default()
                            .insert(update.service.clone(), entry.task_definition.clone());
                    }
                    let entry = KnownContainers {
                        listed: complete,
                        ..entry.clone()
                    };
                    table.containers.insert(update.service.clone(), entry);
                }
                None => {
                    table.containers.remove(&update.service);
                }
            }
        }
        Ok(())
    }

    async fn repository(&self, repository: &Repository) -> PortResult<Option<Vec<IndexedService>>> {
        let table = guard(&self.inner);
        let listed: Vec<IndexedService> = table
            .repositories
            .get(repository)
            .into_iter()
            .flatten()
            .map(|(service, task_definition)| IndexedService {
                service: service.clone(),
                task_definition: task_definition.clone(),
            })
            .collect();
        Ok(table.seen.contains(repository).then_some(listed))
    }

    async fn seen(&self, repository: &Repository) -> PortResult<()> {
        guard(&self.inner).seen.insert(repository.clone());
        Ok(())
    }

    async fn indexed(&self) -> PortResult<Vec<ServiceKey>> {
        Ok(guard(&self.inner).containers.keys().cloned().collect())
    }
}

#[path = "store_lock.rs"]
mod lock;
