//! The state store on one DynamoDB table (`pk`, `sk`, TTL on `ttl`).
//!
//! | item | pk | sk |
//! |---|---|---|
//! | service state and lock | `service#CLUSTER/SERVICE` | `state` |
//! | history record | `service#CLUSTER/SERVICE` | `history#AT#CAUSE#NONCE` |
//! | processed event | `event#ID` | `service#CLUSTER/SERVICE` (with `ttl`) |
//! | a service deckhand keeps asleep | `sleeping` | `service#CLUSTER/SERVICE` |
//! | a service with a push waiting for its scan | `waiting` | `service#CLUSTER/SERVICE` |
//! | the images of the service's task definition | `service#CLUSTER/SERVICE` | `containers` |
//! | a service with such an entry | `indexed` | `service#CLUSTER/SERVICE` |
//! | a service whose revision runs an image of the repository | `repo#REGISTRY/NAME` | `service#CLUSTER/SERVICE` |
//! | a repository a whole-fleet discovery was made for | `repo#REGISTRY/NAME` | `seen` |

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValue, TransactWriteItem, WriteRequest,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde_dynamo::aws_sdk_dynamodb_1::from_item;

use super::port_error;
use crate::domain::pace::Rate;
use crate::domain::service::ServiceKey;
use crate::domain::state::{Quarantine, ServiceState};
use crate::history::{HistoryRecord, ProcessedMark};
use crate::ports::{
    AtOnce, Clock, IndexUpdate, LockAttempt, Locked, PortError, PortErrorKind, PortResult,
    StateStore, SystemClock,
};

type Item = HashMap<String, AttributeValue>;

const STATE_SK: &str = "state";
const SLEEPING_PK: &str = "sleeping";
const WAITING_PK: &str = "waiting";
const HELD_PK: &str = "held";
/// BatchGetItem takes at most 100 keys.
const BATCH_GET: usize = 100;
/// BatchWriteItem takes at most 25 requests.
const BATCH_WRITE: usize = 25;
const UNPROCESSED_ATTEMPTS: u32 = 8;
const CONTAINERS_SK: &str = "containers";
const INDEXED_PK: &str = "indexed";
const SEEN_SK: &str = "seen";
const LOCK_OWNER: &str = "lockOwner";
const LOCK_UNTIL: &str = "lockUntil";
/// When the lock was last released, by the store's clock (milliseconds).
const LOCK_RELEASED: &str = "lockReleasedAt";

pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// The arrival time of each pace bucket this process last saw, to guess which of the two
    /// updates applies (`pace`).
    pace_seen: std::sync::Mutex<HashMap<String, DateTime<Utc>>>,
    /// When a lock is released, for the next holder (`Locked::released_at`).
    clock: Arc<dyn Clock>,
    /// Each service's record as this process last committed it, and when that released its
    /// lock: what `lock_at_once` takes the lock on, if the record is still at that version.
    known: std::sync::Mutex<HashMap<ServiceKey, KnownRecord>>,
}

/// A service's record as a commit wrote it, and when that commit released the lock.
type KnownRecord = (ServiceState, DateTime<Utc>);

impl DynamoStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str) -> Self {
        Self::with_clock(client, table, Arc::new(SystemClock))
    }

    pub fn with_clock(
        client: aws_sdk_dynamodb::Client,
        table: &str,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            client,
            table: table.to_owned(),
            pace_seen: std::sync::Mutex::default(),
            clock,
            known: std::sync::Mutex::default(),
        }
    }
}

impl DynamoStore {
    /// The item under sort key `sk` of each of these services that has one, decoded; read
    /// consistently, 100 keys a call; keys DynamoDB leaves unprocessed under load are asked for
    /// again, with backoff.
    async fn batch_get<T: serde::de::DeserializeOwned>(
        &self,
        services: &[ServiceKey],
        sk: &str,
    ) -> PortResult<BTreeMap<ServiceKey, T>> {
        let mut items = Vec::new();
        for chunk in services.chunks(BATCH_GET) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|service| key(service_pk(service), sk))
                .collect();
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| PortError::new("BatchGetItem", PortErrorKind::Other, e.to_string()))?;
            for attempt in 0u32.. {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| port_error("BatchGetItem", e))?;
                items.extend(
                    out.responses
                        .and_then(|mut r| r.remove(&self.table))
                        .unwrap_or_default(),
                );
                match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    Some(rest) if !rest.keys().is_empty() => {
                        if attempt >= UNPROCESSED_ATTEMPTS {
                            return Err(PortError::new(
                                "BatchGetItem",
                                PortErrorKind::Transient,
                                "keys stayed unprocessed after 8 attempts",
                            ));
                        }
                        tokio::time::sleep(unprocessed_backoff(attempt)).await;
                        request = rest;
                    }
                    _ => break,
                }
            }
        }
        let mut decoded = BTreeMap::new();
        for item in items {
            if let Some(service) = item_service(&item) {
                let value = from_item(item).map_err(|e| codec_error("BatchGetItem", e))?;
                decoded.insert(service, value);
            }
        }
        Ok(decoded)
    }

    /// The services named by the sort keys (`service#CLUSTER/SERVICE`) under one partition
    /// key, all pages, read consistently.
    async fn services_under(&self, pk: String) -> PortResult<Vec<ServiceKey>> {
        let mut services = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| port_error("Query", e))?;
            if let Some(service) = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .and_then(|sk| sk.strip_prefix("service#"))
                .and_then(|k| k.parse().ok())
            {
                services.push(service);
            }
        }
        Ok(services)
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> PortResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let reasons = |code: &str| {
                    matches!(
                        e.as_service_error(),
                        Some(TransactWriteItemsError::TransactionCanceledException(tc))
                            if tc.cancellation_reasons().iter().any(|r| r.code() == Some(code))
                    )
                };
                let (lost_race, met_another) = (
                    reasons("ConditionalCheckFailed"),
                    reasons("TransactionConflict"),
                );
                let mut error = port_error("TransactWriteItems", e);
                if lost_race {
                    error.kind = PortErrorKind::Conflict;
                    error.message = "the service's lock or version changed underneath".into();
                } else if met_another {
                    // Another write on the same item at that moment: nothing was written.
                    error.kind = PortErrorKind::Transient;
                }
                Err(error)
            }
        }
    }
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn remember_announcement(
        &self,
        upstream: &str,
        event: &serde_json::Value,
        proven_at: DateTime<Utc>,
    ) -> PortResult<()> {
        self.put_announcement(upstream, event, proven_at).await
    }

    async fn announcement(&self, upstream: &str) -> PortResult<Option<serde_json::Value>> {
        self.get_announcement(upstream).await
    }

    async fn processed(&self, event_id: &str) -> PortResult<BTreeSet<ServiceKey>> {
        let services = self.services_under(format!("event#{event_id}")).await?;
        Ok(services.into_iter().collect())
    }

    async fn lock(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<LockAttempt> {
        let attempt = self.lock_item(service, owner, now, lease, false).await?;
        // Only a lock on a recorded service is refused for want of a record.
        Ok(attempt.unwrap_or(LockAttempt::Busy { until: now + lease }))
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
        self.lock_known(service, owner, now, lease, pace, event)
            .await
    }

    async fn lock_recorded(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<Option<LockAttempt>> {
        self.lock_item(service, owner, now, lease, true).await
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
        let until = now + lease;
        let state = ServiceState {
            version: read.version + 1,
            ..state.clone()
        };
        let mut item = state_item(service, &state)?;
        item.insert(LOCK_OWNER.into(), s(owner));
        item.insert(LOCK_UNTIL.into(), n(millis(until)));
        // A record never written has no item; any other has a version (the first lock sets 1).
        let put = if read.version == 0 {
            put(
                &self.table,
                item,
                Some(("attribute_not_exists(pk)", HashMap::new())),
            )?
        } else {
            let values = HashMap::from([(":version".to_owned(), n(read.version))]);
            put(
                &self.table,
                item,
                Some((
                    &format!("version = :version AND attribute_not_exists({LOCK_OWNER})"),
                    values,
                )),
            )?
        };
        let mut items = vec![put];
        items.extend(index_items(&self.table, service, read, &state)?);
        match self.transact(items).await {
            Ok(()) => Ok(Some(Locked {
                owner: owner.to_owned(),
                until,
                state,
                interrupted: None,
                // Taken with a record written as read: nothing was released in between.
                released_at: None,
            })),
            // Moved since it was read, locked, or written at this moment by a holder's commit.
            Err(e) if matches!(e.kind, PortErrorKind::Conflict | PortErrorKind::Transient) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn archived_quarantine(
        &self,
        service: &ServiceKey,
        digest: &str,
    ) -> PortResult<Option<Quarantine>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(service_pk(service), quarantine_sk(digest))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("GetItem", e))?;
        out.item
            .map(|item| from_item(item).map_err(|e| codec_error("GetItem", e)))
            .transpose()
    }

    async fn release_archived_quarantine(
        &self,
        service: &ServiceKey,
        digest: &str,
    ) -> PortResult<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(service_pk(service), quarantine_sk(digest))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| port_error("DeleteItem", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
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
        let (mut items, known) = self.commit_items(service, locked, state, records, processed)?;
        for request in index_requests(index, false)? {
            items.push(transact_item(&self.table, request)?);
        }
        self.transact(items).await?;
        self.know(service, Some(known));
        Ok(())
    }

    async fn commit(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
        records: &[HistoryRecord],
        processed: Option<&ProcessedMark>,
    ) -> PortResult<()> {
        let (items, known) = self.commit_items(service, locked, state, records, processed)?;
        self.transact(items).await?;
        self.know(service, Some(known));
        Ok(())
    }

    async fn save(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
    ) -> PortResult<()> {
        let (state, archived) = archiving(state, 0);
        let state = &state;
        let mut items = vec![locked_put(&self.table, service, locked, state, None)?];
        items.extend(quarantine_items(&self.table, service, archived)?);
        items.extend(index_items(&self.table, service, &locked.state, state)?);
        self.transact(items).await
    }

    async fn renew(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<()> {
        // Owner and version: the lock is still the one handed out (taking it over changes both).
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(service_pk(service), STATE_SK)))
            .update_expression("SET #until = :until")
            .condition_expression("#owner = :owner AND #version = :version")
            .expression_attribute_names("#owner", LOCK_OWNER)
            .expression_attribute_names("#until", LOCK_UNTIL)
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":owner", s(&locked.owner))
            .expression_attribute_values(":version", n(locked.state.version))
            .expression_attribute_values(":until", n(millis(now + lease)))
            .send()
            .await;
        lock_update(result.map(|_| ()), "the lock was taken over")
    }

    async fn release(&self, service: &ServiceKey, owner: &str) -> PortResult<()> {
        self.release_item(service, owner, None).await
    }

    async fn release_announced(
        &self,
        service: &ServiceKey,
        owner: &str,
        cause: &str,
    ) -> PortResult<()> {
        self.release_item(service, owner, Some(cause)).await
    }

    async fn record(
        &self,
        records: &[HistoryRecord],
        processed: Option<&ProcessedMark>,
    ) -> PortResult<()> {
        let mut items = Vec::new();
        for item in history_items(records)? {
            items.push(put(&self.table, item, None)?);
        }
        if let Some(mark) = processed {
            items.push(put(&self.table, processed_item(mark), None)?);
        }
        self.transact(items).await
    }

    async fn load(&self, service: &ServiceKey) -> PortResult<ServiceState> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(service_pk(service), STATE_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("GetItem", e))?;
        match out.item {
            Some(item) => from_item(item).map_err(|e| codec_error("GetItem", e)),
            None => Ok(ServiceState::default()),
        }
    }

    async fn load_many(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, ServiceState>> {
        self.batch_get(services, STATE_SK).await
    }

    async fn sleeping(&self) -> PortResult<Vec<ServiceKey>> {
        self.services_under(SLEEPING_PK.to_owned()).await
    }

    async fn waiting(&self) -> PortResult<Vec<ServiceKey>> {
        self.services_under(WAITING_PK.to_owned()).await
    }

    async fn held(&self) -> PortResult<Vec<ServiceKey>> {
        self.services_under(HELD_PK.to_owned()).await
    }

    async fn history(&self, service: &ServiceKey, limit: usize) -> PortResult<Vec<HistoryRecord>> {
        let mut records = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(service_pk(service)))
            .expression_attribute_values(":prefix", s("history#"))
            .scan_index_forward(false)
            .into_paginator()
            .items()
            .send();
        while records.len() < limit {
            let Some(item) = pages.next().await else {
                break;
            };
            let item = item.map_err(|e| port_error("Query", e))?;
            records.push(from_item(item).map_err(|e| codec_error("Query", e))?);
        }
        Ok(records)
    }
}

impl DynamoStore {
    /// BatchWriteItem, 25 requests a call; items DynamoDB leaves unprocessed under load are
    /// written again, with backoff.
    async fn batch_write(&self, all: Vec<WriteRequest>) -> PortResult<()> {
        for chunk in all.chunks(BATCH_WRITE) {
            let mut requests = chunk.to_vec();
            for attempt in 0u32.. {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| port_error("BatchWriteItem", e))?;
                match out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                {
                    Some(rest) if !rest.is_empty() => {
                        if attempt >= UNPROCESSED_ATTEMPTS {
                            return Err(PortError::new(
                                "BatchWriteItem",
                                PortErrorKind::Transient,
                                "items stayed unprocessed after 8 attempts",
                            ));
                        }
                        tokio::time::sleep(unprocessed_backoff(attempt)).await;
                        requests = rest;
                    }
                    _ => break,
                }
            }
        }
        Ok(())
    }
}

#[path = "dynamodb_items.rs"]
mod items;
use items::{
    archiving, codec_error, history_items, index_items, index_requests, item_service, key,
    lock_update, locked_put, millis, n, processed_item, put, quarantine_items, quarantine_sk, s,
    service_pk, state_item, transact_item, unprocessed_backoff,
};

#[path = "dynamodb_index.rs"]
mod index;

#[path = "dynamodb_pace.rs"]
mod pace;

#[path = "dynamodb_promotion.rs"]
mod promotion;

#[path = "dynamodb_lock.rs"]
mod lock;
