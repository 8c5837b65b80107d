//! The shared pace of AWS writes in the table: one item per token bucket (`pk = pace`,
//! `sk = BUCKET`) holding the bucket's theoretical arrival time in milliseconds. A reservation
//! is one conditional update: an atomic addition while the bucket is behind (its arrival time
//! in the future), a plain set while it is full; the one that does not apply says which of the
//! two the bucket is in, so two attempts at most, whatever the contention.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use super::{DynamoStore, key, millis, n};
use crate::adapters::aws::port_error;
use crate::domain::pace::{Rate, Reserved, reserve};
use crate::ports::{Pace, PortError, PortErrorKind, PortResult};

pub(super) const PACE_PK: &str = "pace";
pub(super) const ARRIVAL: &str = "arrival";

/// What one conditional update found.
enum Attempt {
    Reserved(Reserved),
    /// The bucket was not in the state the update assumed: it is at this arrival time.
    Moved(Option<DateTime<Utc>>),
}

impl DynamoStore {
    /// The bucket is behind: add the calls' intervals to its arrival time, if still ahead of
    /// `now`.
    async fn add_to_arrival(
        &self,
        bucket: &str,
        rate: Rate,
        calls: u32,
        now: DateTime<Utc>,
    ) -> PortResult<Attempt> {
        let added = rate.interval() * calls.max(1) as i32;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(PACE_PK.to_owned(), bucket)))
            .update_expression("SET #arrival = #arrival + :added")
            .condition_expression("#arrival > :now")
            .expression_attribute_names("#arrival", ARRIVAL)
            .expression_attribute_values(":added", n(added.num_milliseconds()))
            .expression_attribute_values(":now", n(millis(now)))
            .return_values(ReturnValue::UpdatedOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let before = out.attributes().and_then(arrival_of);
                Ok(Attempt::Reserved(reserve(before, now, rate, calls)))
            }
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(Attempt::Moved(found(se.err())))
            }
            Err(e) => Err(port_error("UpdateItem", e)),
        }
    }

    /// The bucket is full: its arrival time becomes `now` plus the calls' intervals, if it is
    /// not ahead of `now`.
    async fn set_arrival(
        &self,
        bucket: &str,
        rate: Rate,
        calls: u32,
        now: DateTime<Utc>,
    ) -> PortResult<Attempt> {
        let reserved = reserve(None, now, rate, calls);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(PACE_PK.to_owned(), bucket)))
            .update_expression("SET #arrival = :arrival")
            .condition_expression("attribute_not_exists(#arrival) OR #arrival <= :now")
            .expression_attribute_names("#arrival", ARRIVAL)
            .expression_attribute_values(":arrival", n(millis(reserved.arrival)))
            .expression_attribute_values(":now", n(millis(now)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Attempt::Reserved(reserved)),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(Attempt::Moved(found(se.err())))
            }
            Err(e) => Err(port_error("UpdateItem", e)),
        }
    }
}

/// The arrival time in the item a failed condition returned.
fn found(error: &UpdateItemError) -> Option<DateTime<Utc>> {
    match error {
        UpdateItemError::ConditionalCheckFailedException(failed) => {
            failed.item().and_then(arrival_of)
        }
        _ => None,
    }
}

fn arrival_of(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> Option<DateTime<Utc>> {
    item.get(ARRIVAL)
        .and_then(|v| v.as_n().ok())
        .and_then(|ms| ms.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_millis)
}

#[async_trait]
impl Pace for DynamoStore {
    async fn reserve(
        &self,
        bucket: &str,
        rate: Rate,
        calls: u32,
        now: DateTime<Utc>,
    ) -> PortResult<Reserved> {
        // Guess from what the process saw last; each failed guess tells the right one.
        let mut behind = self
            .pace_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(bucket)
            .is_some_and(|arrival| *arrival > now);
        for _ in 0..4 {
            let attempt = if behind {
                self.add_to_arrival(bucket, rate, calls, now).await?
            } else {
                self.set_arrival(bucket, rate, calls, now).await?
            };
            match attempt {
                Attempt::Reserved(reserved) => {
                    self.pace_seen
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(bucket.to_owned(), reserved.arrival);
                    return Ok(reserved);
                }
                Attempt::Moved(arrival) => behind = arrival.is_some_and(|a| a > now),
            }
        }
        Err(PortError::new(
            "UpdateItem",
            PortErrorKind::Conflict,
            format!("the pace of {bucket} kept changing underneath"),
        ))
    }
}
