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

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, KeysAndAttributes, Put, PutRequest, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, WriteRequest,
};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};

use super::port_error;
use crate::domain::image::Repository;
use crate::domain::service::ServiceKey;
use crate::domain::state::{Quarantine, ServiceState};
use crate::history::{HistoryRecord, ProcessedMark};
use crate::ports::{
    Clock, ImageIndex, IndexUpdate, IndexedService, KnownContainers, LockAttempt, Locked,
    PortError, PortErrorKind, PortResult, StateStore, SystemClock,
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
}

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
        }
    }
}

fn service_pk(service: &ServiceKey) -> String {
    format!("service#{service}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn codec_error(operation: &'static str, e: serde_dynamo::Error) -> PortError {
    PortError::new(
        operation,
        PortErrorKind::Other,
        format!("record does not (de)serialise: {e}"),
    )
}

fn state_item(service: &ServiceKey, state: &ServiceState) -> PortResult<Item> {
    let mut item: Item = to_item(state).map_err(|e| codec_error("PutItem", e))?;
    item.extend(key(service_pk(service), STATE_SK));
    item.insert("service".into(), s(service.to_string()));
    Ok(item)
}

/// DynamoDB's limit of items in one `TransactWriteItems`.
const TRANSACTION_ITEMS: usize = 100;
/// Room left in a commit's transaction for the index's entries and the processed mark.
const TRANSACTION_RESERVED: usize = 20;

fn quarantine_sk(digest: &str) -> String {
    format!("quarantine#{digest}")
}

/// The state to write, and the quarantines it archives in the same transaction (as many as
/// the transaction has room for; the rest at the next write).
fn archiving(state: &ServiceState, records: usize) -> (ServiceState, Vec<(String, Quarantine)>) {
    let mut state = state.clone();
    let room = TRANSACTION_ITEMS.saturating_sub(TRANSACTION_RESERVED + 1 + records);
    let archived = state.archive_quarantines(room);
    (state, archived)
}

fn quarantine_items(
    table: &str,
    service: &ServiceKey,
    archived: Vec<(String, Quarantine)>,
) -> PortResult<Vec<TransactWriteItem>> {
    archived
        .into_iter()
        .map(|(digest, q)| {
            let mut item: Item = to_item(&q).map_err(|e| codec_error("PutItem", e))?;
            item.extend(key(service_pk(service), quarantine_sk(&digest)));
            put(table, item, None)
        })
        .collect()
}

/// History keys sort by time; the cause and a random nonce keep records of concurrent
/// invocations apart even within one millisecond.
fn history_items(records: &[HistoryRecord]) -> PortResult<Vec<Item>> {
    let nonce = RandomState::new().build_hasher().finish() as u32;
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let mut item: Item = to_item(record).map_err(|e| codec_error("PutItem", e))?;
            let at = record.at.to_rfc3339_opts(SecondsFormat::Millis, true);
            let sk = format!("history#{at}#{}#{nonce:08x}{i}", record.cause);
            item.extend(key(service_pk(&record.service), sk));
            Ok(item)
        })
        .collect()
}

fn processed_item(mark: &ProcessedMark) -> Item {
    let mut item = key(
        format!("event#{}", mark.event_id),
        service_pk(&mark.service),
    );
    item.insert(
        "at".into(),
        s(mark.at.to_rfc3339_opts(SecondsFormat::Secs, true)),
    );
    item.insert("ttl".into(), n(mark.expires().timestamp()));
    item
}

fn put(table: &str, item: Item, condition: Option<(&str, Item)>) -> PortResult<TransactWriteItem> {
    let mut put = Put::builder().table_name(table).set_item(Some(item));
    if let Some((expression, values)) = condition {
        put = put
            .condition_expression(expression)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        // DynamoDB refuses an empty map of values.
        if !values.is_empty() {
            put = put.set_expression_attribute_values(Some(values));
        }
    }
    let put = put
        .build()
        .map_err(|e| PortError::new("TransactWriteItems", PortErrorKind::Other, e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// Keeps an index of services (`pk` = `index`) in step with the state: an item while
/// `listed` holds for the service, none otherwise.
fn index_item(
    table: &str,
    index: &str,
    service: &ServiceKey,
    listed: impl Fn(&ServiceState) -> bool,
    before: &ServiceState,
    after: &ServiceState,
) -> PortResult<Option<TransactWriteItem>> {
    let key = key(index.to_owned(), service_pk(service));
    if listed(after) {
        let mut item = key;
        item.insert("service".into(), s(service.to_string()));
        put(table, item, None).map(Some)
    } else if listed(before) {
        let delete = Delete::builder()
            .table_name(table)
            .set_key(Some(key))
            .build()
            .map_err(|e| {
                PortError::new("TransactWriteItems", PortErrorKind::Other, e.to_string())
            })?;
        Ok(Some(TransactWriteItem::builder().delete(delete).build()))
    } else {
        Ok(None)
    }
}

/// The indexes of services the state puts on a list: sleeping ones (woken by the schedule),
/// those with pushes waiting for their scan (looked at when a scan or the wait ends), and those
/// with a push held while their CodeDeploy group is busy (looked at by each reconcile).
fn index_items(
    table: &str,
    service: &ServiceKey,
    before: &ServiceState,
    after: &ServiceState,
) -> PortResult<Vec<TransactWriteItem>> {
    let sleeping = |s: &ServiceState| s.sleep.is_some();
    let waiting = |s: &ServiceState| !s.waiting.is_empty();
    let held = |s: &ServiceState| s.held.is_some();
    Ok([
        index_item(table, SLEEPING_PK, service, sleeping, before, after)?,
        index_item(table, WAITING_PK, service, waiting, before, after)?,
        index_item(table, HELD_PK, service, held, before, after)?,
    ]
    .into_iter()
    .flatten()
    .collect())
}

/// The state under the lock's condition: the holder and the version it was given.
fn locked_put(
    table: &str,
    service: &ServiceKey,
    locked: &Locked,
    state: &ServiceState,
    released: Option<DateTime<Utc>>,
) -> PortResult<TransactWriteItem> {
    // The version stays the one the lock gave out; the condition proves nobody took the
    // lock in between. Writing the item without lock attributes releases the lock.
    let state = ServiceState {
        version: locked.state.version,
        ..state.clone()
    };
    let mut item = state_item(service, &state)?;
    match released {
        Some(at) => {
            item.insert(LOCK_RELEASED.into(), n(millis(at)));
        }
        None => {
            item.insert(LOCK_OWNER.into(), s(&locked.owner));
            item.insert(LOCK_UNTIL.into(), n(millis(locked.until)));
        }
    }
    let condition = HashMap::from([
        (":owner".to_owned(), s(&locked.owner)),
        (":version".to_owned(), n(locked.state.version)),
    ]);
    put(
        table,
        item,
        Some((
            &format!("{LOCK_OWNER} = :owner AND version = :version"),
            condition,
        )),
    )
}

/// A conditional write on the lock: a failed condition means another holder (`Conflict`).
fn lock_update(
    result: Result<(), SdkError<UpdateItemError, HttpResponse>>,
    lost: &str,
) -> PortResult<()> {
    match result {
        Ok(()) => Ok(()),
        Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
            Err(PortError::new("UpdateItem", PortErrorKind::Conflict, lost))
        }
        Err(e) => Err(port_error("UpdateItem", e)),
    }
}

fn unprocessed_backoff(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis(50 << attempt.min(5))
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn item_service(item: &Item) -> Option<ServiceKey> {
    item.get("service")
        .and_then(|v| v.as_s().ok())
        .and_then(|k| k.parse::<ServiceKey>().ok())
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
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(service_pk(service), STATE_SK)))
            .update_expression(
                "SET #owner = :owner, #until = :until, #version = if_not_exists(#version, :zero) + :one, \
                 #service = :service, #pushes = if_not_exists(#pushes, :empty), \
                 #quarantine = if_not_exists(#quarantine, :empty)",
            )
            // The same owner again: a retry of this request after its answer was lost.
            .condition_expression("attribute_not_exists(#owner) OR #until < :now OR #owner = :owner")
            .expression_attribute_names("#owner", LOCK_OWNER)
            .expression_attribute_names("#until", LOCK_UNTIL)
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#service", "service")
            .expression_attribute_names("#pushes", "pushes")
            .expression_attribute_names("#quarantine", "quarantine")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":until", n(millis(now + lease)))
            .expression_attribute_values(":now", n(millis(now)))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":service", s(service.to_string()))
            .expression_attribute_values(":empty", AttributeValue::M(HashMap::new()))
            // The item as it was, to see who held the lock before; the new state is that
            // with the version incremented, as the update wrote it.
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let old = out.attributes.unwrap_or_default();
                let interrupted = old
                    .get(LOCK_OWNER)
                    .and_then(|v| v.as_s().ok())
                    .filter(|holder| *holder != owner)
                    .cloned();
                let released_at = old
                    .get(LOCK_RELEASED)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|ms| ms.parse::<i64>().ok())
                    .and_then(DateTime::from_timestamp_millis);
                let mut state: ServiceState =
                    from_item(old).map_err(|e| codec_error("UpdateItem", e))?;
                state.version += 1;
                Ok(LockAttempt::Acquired(Box::new(Locked {
                    owner: owner.to_owned(),
                    until: now + lease,
                    state,
                    interrupted,
                    released_at,
                })))
            }
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                let old = match se.err() {
                    UpdateItemError::ConditionalCheckFailedException(failed) => failed.item(),
                    _ => None,
                };
                let until = old
                    .and_then(|old| old.get(LOCK_UNTIL))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|ms| ms.parse::<i64>().ok())
                    .and_then(DateTime::from_timestamp_millis)
                    .unwrap_or(now + lease);
                Ok(LockAttempt::Busy { until })
            }
            // The holder's commit (a transaction on this item) is under way: the lock is
            // busy for a moment more, and nothing was written.
            Err(SdkError::ServiceError(se))
                if matches!(se.err(), UpdateItemError::TransactionConflictException(_)) =>
            {
                Ok(LockAttempt::Busy { until: now })
            }
            Err(e) => Err(port_error("UpdateItem", e)),
        }
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
        let mut items = self.commit_items(service, locked, state, records, processed)?;
        for request in index_requests(index, false)? {
            items.push(transact_item(&self.table, request)?);
        }
        self.transact(items).await
    }

    async fn commit(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
        records: &[HistoryRecord],
        processed: Option<&ProcessedMark>,
    ) -> PortResult<()> {
        let items = self.commit_items(service, locked, state, records, processed)?;
        self.transact(items).await
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
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(service_pk(service), STATE_SK)))
            .update_expression("REMOVE #owner, #until SET #released = :now")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", LOCK_OWNER)
            .expression_attribute_names("#until", LOCK_UNTIL)
            .expression_attribute_names("#released", LOCK_RELEASED)
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":now", n(millis(self.clock.now())))
            .send()
            .await;
        lock_update(result.map(|_| ()), "the lock was no longer ours")
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

#[async_trait]
impl ImageIndex for DynamoStore {
    async fn containers(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, KnownContainers>> {
        self.batch_get(services, CONTAINERS_SK).await
    }

    /// Plain puts and deletes: an entry states a fact about a revision, so racing writers
    /// cannot make it wrong, only older (and an older revision is simply not the one the
    /// service runs, which every reader checks).
    async fn update(&self, updates: &[IndexUpdate], complete: bool) -> PortResult<()> {
        // One request per item in a batch: the last update of a service wins, and each
        // repository is marked seen once.
        let last: BTreeMap<&ServiceKey, &IndexUpdate> =
            updates.iter().map(|u| (&u.service, u)).collect();
        let mut requests = Vec::new();
        let mut seen = BTreeSet::new();
        for update in last.into_values() {
            requests.extend(index_requests(update, complete)?);
            if complete && let Some(now) = &update.now {
                seen.extend(now.repositories());
            }
        }
        for repository in &seen {
            requests.push(put_request(key(repository_pk(repository), SEEN_SK))?);
        }
        self.batch_write(requests).await
    }

    async fn repository(&self, repository: &Repository) -> PortResult<Option<Vec<IndexedService>>> {
        let mut listed = Vec::new();
        let mut seen = false;
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(repository_pk(repository)))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| port_error("Query", e))?;
            seen |= item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| sk == SEEN_SK);
            let task_definition = item.get("taskDefinition").and_then(|v| v.as_s().ok());
            if let (Some(service), Some(task_definition)) = (item_service(&item), task_definition) {
                listed.push(IndexedService {
                    service,
                    task_definition: task_definition.clone(),
                });
            }
        }
        Ok(seen.then_some(listed))
    }

    async fn seen(&self, repository: &Repository) -> PortResult<()> {
        let item = key(repository_pk(repository), SEEN_SK);
        self.batch_write(vec![put_request(item)?]).await
    }

    async fn indexed(&self) -> PortResult<Vec<ServiceKey>> {
        self.services_under(INDEXED_PK.to_owned()).await
    }
}

fn repository_pk(repository: &Repository) -> String {
    format!("repo#{repository}")
}

/// A batch's write as an item of a transaction.
fn transact_item(table: &str, request: WriteRequest) -> PortResult<TransactWriteItem> {
    let failed = |e: aws_sdk_dynamodb::error::BuildError| {
        PortError::new("TransactWriteItems", PortErrorKind::Other, e.to_string())
    };
    if let Some(written) = request.put_request {
        return put(table, written.item, None);
    }
    let key = request.delete_request.map(|d| d.key).unwrap_or_default();
    let delete = Delete::builder()
        .table_name(table)
        .set_key(Some(key))
        .build()
        .map_err(failed)?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

fn put_request(item: Item) -> PortResult<WriteRequest> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| PortError::new("BatchWriteItem", PortErrorKind::Other, e.to_string()))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

fn delete_request(key: Item) -> PortResult<WriteRequest> {
    let delete = DeleteRequest::builder()
        .set_key(Some(key))
        .build()
        .map_err(|e| PortError::new("BatchWriteItem", PortErrorKind::Other, e.to_string()))?;
    Ok(WriteRequest::builder().delete_request(delete).build())
}

/// The writes of one service's index change: its entry (`containers`), its place in the list
/// of indexed services, and one item under each repository it runs; deletes for the rest.
fn index_requests(update: &IndexUpdate, complete: bool) -> PortResult<Vec<WriteRequest>> {
    let service = &update.service;
    let listed = |repository: &Repository| key(repository_pk(repository), service_pk(service));
    let mut requests = Vec::new();
    let now = update
        .now
        .as_ref()
        .map(KnownContainers::repositories)
        .unwrap_or_default();
    for gone in update.before.difference(&now) {
        requests.push(delete_request(listed(gone))?);
    }
    match &update.now {
        Some(entry) => {
            let entry = KnownContainers {
                listed: complete,
                ..entry.clone()
            };
            let mut item: Item = to_item(&entry).map_err(|e| codec_error("BatchWriteItem", e))?;
            item.extend(key(service_pk(service), CONTAINERS_SK));
            item.insert("service".into(), s(service.to_string()));
            requests.push(put_request(item)?);
            let mut member = key(INDEXED_PK.to_owned(), service_pk(service));
            member.insert("service".into(), s(service.to_string()));
            requests.push(put_request(member)?);
            for repository in &now {
                let mut item = listed(repository);
                item.insert("service".into(), s(service.to_string()));
                item.insert("taskDefinition".into(), s(&entry.task_definition));
                requests.push(put_request(item)?);
            }
        }
        None => {
            requests.push(delete_request(key(service_pk(service), CONTAINERS_SK))?);
            requests.push(delete_request(key(
                INDEXED_PK.to_owned(),
                service_pk(service),
            ))?);
        }
    }
    Ok(requests)
}

impl DynamoStore {
    /// What a commit writes: the state (its oldest quarantines archived beside it), the
    /// indexes it is listed in, the history records and the processed mark.
    fn commit_items(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
        records: &[HistoryRecord],
        processed: Option<&ProcessedMark>,
    ) -> PortResult<Vec<TransactWriteItem>> {
        let (state, archived) = archiving(state, records.len());
        let released = Some(self.clock.now());
        let mut items = vec![locked_put(&self.table, service, locked, &state, released)?];
        items.extend(quarantine_items(&self.table, service, archived)?);
        items.extend(index_items(&self.table, service, &locked.state, &state)?);
        for item in history_items(records)? {
            items.push(put(&self.table, item, None)?);
        }
        if let Some(mark) = processed {
            items.push(put(&self.table, processed_item(mark), None)?);
        }
        Ok(items)
    }

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

#[path = "dynamodb_pace.rs"]
mod pace;
