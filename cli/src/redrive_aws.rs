//! The failure queue in SQS and the functions in Lambda, for `deckhand redrive`.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use deckhand::adapters::aws::port_error;
use deckhand::ports::{PortError, PortErrorKind};
use serde_json::Value;

use crate::redrive::{FailureQueue, Functions, Invoked, QueuedMessage};

pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

#[async_trait]
impl FailureQueue for SqsQueue {
    async fn receive(&self, hold: Duration) -> Result<Vec<QueuedMessage>, PortError> {
        let answer = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            // A short long-poll: it asks every server of the queue, so an empty answer means
            // an empty queue, which a short poll (a sample of servers) does not.
            .wait_time_seconds(1)
            .visibility_timeout(i32::try_from(hold.as_secs()).unwrap_or(i32::MAX))
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| port_error("sqs:ReceiveMessage", e))?;
        Ok(answer
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let attributes = m
                    .message_attributes
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v.string_value?)))
                    .collect();
                Some(QueuedMessage {
                    id: m.message_id?,
                    receipt: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                    attributes,
                })
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<(), PortError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| port_error("sqs:DeleteMessage", e))?;
        Ok(())
    }

    async fn release(&self, receipt: &str) -> Result<(), PortError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| port_error("sqs:ChangeMessageVisibility", e))?;
        Ok(())
    }
}

pub struct LambdaFunctions {
    client: aws_sdk_lambda::Client,
}

impl LambdaFunctions {
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Functions for LambdaFunctions {
    async fn invoke(&self, function: &str, event: &Value) -> Result<Invoked, PortError> {
        let answer = self
            .client
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(event.to_string()))
            .send()
            .await
            .map_err(|e| port_error("lambda:Invoke", e))?;
        let payload = answer.payload.map(Blob::into_inner).unwrap_or_default();
        let value: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
        // An error the function reported comes back as HTTP 200 with this header set.
        if let Some(kind) = answer.function_error {
            let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
            return Ok(Invoked::Failed {
                error_type: field("errorType").unwrap_or(kind),
                message: field("errorMessage")
                    .unwrap_or_else(|| String::from_utf8_lossy(&payload).into_owned()),
            });
        }
        if value.is_null() && !payload.is_empty() {
            return Err(PortError::new(
                "lambda:Invoke",
                PortErrorKind::Other,
                format!("{function} answered what is not JSON"),
            ));
        }
        Ok(Invoked::Returned(value))
    }
}
