//! The newest known-good announcement of each upstream service, one item per upstream
//! (`pk = promotion#ACCOUNT/CLUSTER/SERVICE`, `sk = known-good`): the event as received, and
//! when it proved itself, which orders late deliveries (a conditional put keeps the newest).

use aws_sdk_dynamodb::error::SdkError;
use chrono::{DateTime, Utc};

use super::{DynamoStore, key, millis, n, s};
use crate::adapters::aws::port_error;
use crate::ports::{PortError, PortErrorKind, PortResult};

const SK: &str = "known-good";
const PROVEN: &str = "provenAt";
const EVENT: &str = "event";

fn pk(upstream: &str) -> String {
    format!("promotion#{upstream}")
}

impl DynamoStore {
    pub(super) async fn put_announcement(
        &self,
        upstream: &str,
        event: &serde_json::Value,
        proven_at: DateTime<Utc>,
    ) -> PortResult<()> {
        let mut item = key(pk(upstream), SK);
        item.insert(PROVEN.into(), n(millis(proven_at)));
        item.insert(EVENT.into(), s(event.to_string()));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #proven < :proven")
            .expression_attribute_names("#proven", PROVEN)
            .expression_attribute_values(":proven", n(millis(proven_at)))
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            // A newer one is kept already.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(port_error("PutItem", e)),
        }
    }

    pub(super) async fn get_announcement(
        &self,
        upstream: &str,
    ) -> PortResult<Option<serde_json::Value>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk(upstream), SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error("GetItem", e))?;
        let Some(text) = out
            .item
            .as_ref()
            .and_then(|item| item.get(EVENT))
            .and_then(|v| v.as_s().ok())
        else {
            return Ok(None);
        };
        serde_json::from_str(text).map(Some).map_err(|e| {
            PortError::new(
                "GetItem",
                PortErrorKind::Other,
                format!("a kept announcement does not parse: {e}"),
            )
        })
    }
}
