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
use crate::app::Ports;
use crate::ports::{CheckFunctions, Invoked, PortError, PortErrorKind, PortResult};

/// `ports` that ask check functions through Lambda, with a client of `sdk`.
pub fn with_checks(ports: Ports, sdk: &aws_config::SdkConfig) -> Ports {
    Ports {
        checks: std::sync::Arc::new(LambdaChecks::new(aws_sdk_lambda::Client::new(sdk))),
        ..ports
    }
}

/// The ports of a function that never asks a check (the rollback and scheduler functions, the
/// command line): asked anyway, it refuses, so a gate fails rather than opens.
pub struct NoChecks;

#[async_trait]
impl CheckFunctions for NoChecks {
    async fn invoke(
        &self,
        function: &str,
        _question: &Value,
        _timeout: Duration,
    ) -> PortResult<Invoked> {
        Err(PortError::new(
            "Invoke",
            PortErrorKind::Other,
            format!("this process does not invoke check functions such as {function}"),
        ))
    }
}

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
