//! How deckhand's records are written as items of the table: keys, encoding, the state under
//! its lock, quarantines archived beside it, history records, processed marks, the repository
//! index's entries, and the items of one commit's transaction.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, Put, PutRequest, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, WriteRequest,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_dynamo::aws_sdk_dynamodb_1::to_item;

use super::{
    CONTAINERS_SK, DynamoStore, HELD_PK, INDEXED_PK, Item, KnownRecord, LOCK_OWNER, LOCK_RELEASED,
    LOCK_UNTIL, SLEEPING_PK, STATE_SK, WAITING_PK,
};
use crate::adapters::aws::port_error;
use crate::domain::image::Repository;
use crate::domain::service::ServiceKey;
use crate::domain::state::{Quarantine, ServiceState};
use crate::history::{HistoryRecord, ProcessedMark};
use crate::ports::{IndexUpdate, KnownContainers, Locked, PortError, PortErrorKind, PortResult};

pub(super) fn service_pk(service: &ServiceKey) -> String {
    format!("service#{service}")
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub(super) fn codec_error(operation: &'static str, e: serde_dynamo::Error) -> PortError {
    PortError::new(
        operation,
        PortErrorKind::Other,
        format!("record does not (de)serialise: {e}"),
    )
}

pub(super) fn state_item(service: &ServiceKey, state: &ServiceState) -> PortResult<Item> {
    let mut item: Item = to_item(state).map_err(|e| codec_error("PutItem", e))?;
    item.extend(key(service_pk(service), STATE_SK));
    item.insert("service".into(), s(service.to_string()));
    Ok(item)
}

/// DynamoDB's limit of items in one `TransactWriteItems`.
pub(super) const TRANSACTION_ITEMS: usize = 100;
/// Room left in a commit's transaction for the index's entries and the processed mark.
pub(super) const TRANSACTION_RESERVED: usize = 20;

pub(super) fn quarantine_sk(digest: &str) -> String {
    format!("quarantine#{digest}")
}

/// The state to write, and the quarantines it archives in the same transaction (as many as
/// the transaction has room for; the rest at the next write).
pub(super) fn archiving(
    state: &ServiceState,
    records: usize,
) -> (ServiceState, Vec<(String, Quarantine)>) {
    let mut state = state.clone();
    let room = TRANSACTION_ITEMS.saturating_sub(TRANSACTION_RESERVED + 1 + records);
    let archived = state.archive_quarantines(room);
    (state, archived)
}

pub(super) fn quarantine_items(
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
pub(super) fn history_items(records: &[HistoryRecord]) -> PortResult<Vec<Item>> {
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

pub(super) fn processed_item(mark: &ProcessedMark) -> Item {
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

pub(super) fn put(
    table: &str,
    item: Item,
    condition: Option<(&str, Item)>,
) -> PortResult<TransactWriteItem> {
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
pub(super) fn index_item(
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
pub(super) fn index_items(
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
pub(super) fn locked_put(
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
pub(super) fn lock_update(
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

pub(super) fn unprocessed_backoff(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis(50 << attempt.min(5))
}

pub(super) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(super) fn item_service(item: &Item) -> Option<ServiceKey> {
    item.get("service")
        .and_then(|v| v.as_s().ok())
        .and_then(|k| k.parse::<ServiceKey>().ok())
}

pub(super) fn repository_pk(repository: &Repository) -> String {
    format!("repo#{repository}")
}

/// A batch's write as an item of a transaction.
pub(super) fn transact_item(table: &str, request: WriteRequest) -> PortResult<TransactWriteItem> {
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

pub(super) fn put_request(item: Item) -> PortResult<WriteRequest> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| PortError::new("BatchWriteItem", PortErrorKind::Other, e.to_string()))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

pub(super) fn delete_request(key: Item) -> PortResult<WriteRequest> {
    let delete = DeleteRequest::builder()
        .set_key(Some(key))
        .build()
        .map_err(|e| PortError::new("BatchWriteItem", PortErrorKind::Other, e.to_string()))?;
    Ok(WriteRequest::builder().delete_request(delete).build())
}

/// The writes of one service's index change: its entry (`containers`), its place in the list
/// of indexed services, and one item under each repository it runs; deletes for the rest.
pub(super) fn index_requests(
    update: &IndexUpdate,
    complete: bool,
) -> PortResult<Vec<WriteRequest>> {
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
    pub(super) fn commit_items(
        &self,
        service: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
        records: &[HistoryRecord],
        processed: Option<&ProcessedMark>,
    ) -> PortResult<(Vec<TransactWriteItem>, KnownRecord)> {
        let (state, archived) = archiving(state, records.len());
        let released = self.clock.now();
        let mut items = vec![locked_put(
            &self.table,
            service,
            locked,
            &state,
            Some(released),
        )?];
        items.extend(quarantine_items(&self.table, service, archived)?);
        items.extend(index_items(&self.table, service, &locked.state, &state)?);
        for item in history_items(records)? {
            items.push(put(&self.table, item, None)?);
        }
        if let Some(mark) = processed {
            items.push(put(&self.table, processed_item(mark), None)?);
        }
        // The record as the commit writes it.
        let known = ServiceState {
            version: locked.state.version,
            ..state
        };
        Ok((items, (known, released)))
    }
}
