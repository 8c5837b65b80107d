//! SNS: one message per notification, with attributes for subscription filter policies.

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;

use super::port_error;
use crate::notification::Notification;
use crate::ports::{Notifier, PortError, PortErrorKind, PortResult};

pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: &str) -> Self {
        Self {
            client,
            topic_arn: topic_arn.to_owned(),
        }
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, PortError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| PortError::new("Publish", PortErrorKind::Other, e.to_string()))
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn publish(&self, n: &Notification) -> PortResult<()> {
        // SNS rejects empty attribute values.
        let service = if n.service.is_empty() {
            "-"
        } else {
            n.service.as_str()
        };
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(n.subject())
            .message(n.body())
            .message_attributes("kind", attribute(n.kind.as_str())?)
            .message_attributes("severity", attribute(n.severity.as_str())?)
            .message_attributes("service", attribute(service)?)
            .send()
            .await
            .map_err(|e| port_error("Publish", e))?;
        Ok(())
    }
}
