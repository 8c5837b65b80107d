//! The check function of a pair's traffic gate, invoked through Lambda's `Invoke`
//! (RequestResponse): once, bounded by the gate's timeout, never retried.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde_json::Value;

use super::port_error;
use crate::ports::{CheckFunctions, Invoked, PortResult};

pub struct LambdaChecks {
    client: aws_sdk_lambda::Client,
}

impl LambdaChecks {
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl CheckFunctions for LambdaChecks {
    async fn invoke(
        &self,
        function: &str,
        question: &Value,
        timeout: Duration,
    ) -> PortResult<Invoked> {
        // The process's bounds (seconds an attempt, retries) fit AWS's own APIs, not a smoke
        // test: one attempt, as long as the gate allows.
        let bounded = aws_sdk_lambda::config::Builder::default()
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(timeout)
                    .operation_attempt_timeout(timeout)
                    .read_timeout(timeout)
                    .build(),
            )
            .retry_config(RetryConfig::disabled());
        let answer = self
            .client
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(question.to_string()))
            .customize()
            .config_override(bounded)
            .send()
            .await
            .map_err(|e| port_error("Invoke", e))?;
        Ok(Invoked {
            function_error: answer.function_error,
            payload: answer.payload.map(Blob::into_inner).unwrap_or_default(),
        })
    }
}
