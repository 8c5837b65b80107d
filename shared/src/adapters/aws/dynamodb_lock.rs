//! The service's lock on its state item: taken (optionally only on a recorded service, or at
//! once with a pace slot on a record this process committed) and given back, with the release
//! stamped by the store's clock.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde_dynamo::aws_sdk_dynamodb_1::from_item;
use std::collections::HashMap;
use std::sync::PoisonError;

use super::items::{codec_error, key, lock_update, millis, n, s, service_pk};
use super::pace::{ARRIVAL, PACE_PK};
use super::{DynamoStore, KnownRecord, LOCK_OWNER, LOCK_RELEASED, LOCK_UNTIL, STATE_SK};
use crate::adapters::aws::port_error;
use crate::domain::pace::{Rate, reserve};
use crate::domain::service::ServiceKey;
use crate::domain::state::ServiceState;
use crate::ports::{AtOnce, LockAttempt, Locked, PortError, PortErrorKind, PortResult};

/// How many services' records the process keeps; past that, it starts over.
const KNOWN_KEPT: usize = 256;

fn built(e: aws_sdk_dynamodb::error::BuildError) -> PortError {
    PortError::new("TransactWriteItems", PortErrorKind::Other, e.to_string())
}

impl DynamoStore {
    /// The service's record as this process just committed it (and when the commit released
    /// its lock), or forgotten.
    pub(super) fn know(&self, service: &ServiceKey, known: Option<KnownRecord>) {
        let mut memo = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        match known {
            Some(known) => {
                // A reconcile commits a whole fleet: what a push uses is the last few.
                if memo.len() >= KNOWN_KEPT {
                    memo.clear();
                }
                memo.insert(service.clone(), known);
            }
            None => {
                memo.remove(service);
            }
        }
    }

    /// `StateStore::lock_at_once`: one transaction of the lock (the record still at the version
    /// this process committed, so nobody took the lock since), the pace slot (the bucket full)
    /// and the check that no processed mark of the event exists for the service.
    pub(super) async fn lock_known(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
        pace: Option<(&str, Rate)>,
        event: &str,
    ) -> PortResult<AtOnce> {
        let known = self
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(service)
            .cloned();
        let Some((state, released_at)) = known else {
            return Ok(AtOnce::Refused);
        };
        let version = state.version;
        let lock = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(service_pk(service), STATE_SK)))
            .update_expression("SET #owner = :owner, #until = :until, #version = :next")
            .condition_expression("#version = :version AND attribute_not_exists(#owner)")
            .expression_attribute_names("#owner", LOCK_OWNER)
            .expression_attribute_names("#until", LOCK_UNTIL)
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":until", n(millis(now + lease)))
            .expression_attribute_values(":next", n(version + 1))
            .expression_attribute_values(":version", n(version))
            .build()
            .map_err(built)?;
        let mut items = vec![TransactWriteItem::builder().update(lock).build()];
        let mut slot = None;
        if let Some((bucket, rate)) = pace {
            // The bucket as this process last saw it: still behind at that very arrival time,
            // or full.
            let seen = self
                .pace_seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(bucket)
                .copied()
                .filter(|arrival| *arrival > now);
            let reserved = reserve(seen, now, rate, 1);
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(PACE_PK.to_owned(), bucket)))
                .update_expression("SET #arrival = :arrival")
                .expression_attribute_names("#arrival", ARRIVAL)
                .expression_attribute_values(":arrival", n(millis(reserved.arrival)));
            let update = match seen {
                Some(arrival) => update
                    .condition_expression("#arrival = :seen")
                    .expression_attribute_values(":seen", n(millis(arrival))),
                None => update
                    .condition_expression("attribute_not_exists(#arrival) OR #arrival <= :now")
                    .expression_attribute_values(":now", n(millis(now))),
            };
            items.push(
                TransactWriteItem::builder()
                    .update(update.build().map_err(built)?)
                    .build(),
            );
            slot = Some((bucket, reserved));
        }
        let unhandled = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(format!("event#{event}"), service_pk(service))))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(built)?;
        items.push(
            TransactWriteItem::builder()
                .condition_check(unhandled)
                .build(),
        );
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        // Whatever happened, the record is no longer at the version known.
        self.know(service, None);
        match result {
            Ok(_) => {
                if let Some((bucket, reserved)) = slot {
                    self.pace_seen
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(bucket.to_owned(), reserved.arrival);
                }
                Ok(AtOnce::Taken {
                    locked: Box::new(Locked {
                        owner: owner.to_owned(),
                        until: now + lease,
                        state: ServiceState {
                            version: version + 1,
                            ..state
                        },
                        interrupted: None,
                        released_at: Some(released_at),
                    }),
                    slot: slot.map(|(_, reserved)| reserved),
                })
            }
            Err(SdkError::ServiceError(se)) => match se.err() {
                // One reason per item, in order: the processed mark's check is the last.
                TransactWriteItemsError::TransactionCanceledException(canceled) => {
                    let handled = canceled
                        .cancellation_reasons()
                        .last()
                        .is_some_and(|r| r.code() == Some("ConditionalCheckFailed"));
                    Ok(if handled {
                        AtOnce::Handled
                    } else {
                        AtOnce::Refused
                    })
                }
                _ => Err(port_error("TransactWriteItems", SdkError::ServiceError(se))),
            },
            Err(e) => Err(port_error("TransactWriteItems", e)),
        }
    }

    /// Takes the lock unless another holder's lease still runs; with `recorded_only`, only on
    /// an item that exists (`None` when it does not, and nothing is written).
    pub(super) async fn lock_item(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
        recorded_only: bool,
    ) -> PortResult<Option<LockAttempt>> {
        // The same owner again: a retry of this request after its answer was lost.
        let free = "(attribute_not_exists(#owner) OR #until < :now OR #owner = :owner)";
        let condition = if recorded_only {
            format!("attribute_exists(pk) AND {free}")
        } else {
            free.to_owned()
        };
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
            .condition_expression(condition)
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
                self.know(service, None);
                Ok(Some(LockAttempt::Acquired(Box::new(Locked {
                    owner: owner.to_owned(),
                    until: now + lease,
                    state,
                    interrupted,
                    released_at,
                }))))
            }
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                let old = match se.err() {
                    UpdateItemError::ConditionalCheckFailedException(failed) => failed.item(),
                    _ => None,
                };
                if recorded_only && old.is_none_or(|old| old.is_empty()) {
                    return Ok(None);
                }
                let until = old
                    .and_then(|old| old.get(LOCK_UNTIL))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|ms| ms.parse::<i64>().ok())
                    .and_then(DateTime::from_timestamp_millis)
                    .unwrap_or(now + lease);
                Ok(Some(LockAttempt::Busy { until }))
            }
            // The holder's commit (a transaction on this item) is under way: the lock is
            // busy for a moment more, and nothing was written.
            Err(SdkError::ServiceError(se))
                if matches!(se.err(), UpdateItemError::TransactionConflictException(_)) =>
            {
                Ok(Some(LockAttempt::Busy { until: now }))
            }
            Err(e) => Err(port_error("UpdateItem", e)),
        }
    }

    /// Gives back `owner`'s lock, stamping when; with `announced`, noting that event's
    /// announcement in the state.
    pub(super) async fn release_item(
        &self,
        service: &ServiceKey,
        owner: &str,
        announced: Option<&str>,
    ) -> PortResult<()> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(service_pk(service), STATE_SK)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", LOCK_OWNER)
            .expression_attribute_names("#until", LOCK_UNTIL)
            .expression_attribute_names("#released", LOCK_RELEASED)
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":now", n(millis(self.clock.now())));
        let update = match announced {
            None => update.update_expression("REMOVE #owner, #until SET #released = :now"),
            Some(cause) => update
                .update_expression(
                    "REMOVE #owner, #until SET #released = :now, #announced = :cause",
                )
                .expression_attribute_names("#announced", "announced")
                .expression_attribute_values(":cause", s(cause)),
        };
        let result = update.send().await;
        lock_update(result.map(|_| ()), "the lock was no longer ours")
    }
}
