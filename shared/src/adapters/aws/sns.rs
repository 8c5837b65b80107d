//! SNS: one message per notification, with attributes for subscription filter policies; and,
//! with a chat topic, the same notification rendered for Amazon Q Developer in chat
//! applications, published beside it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;

use super::port_error;
use crate::notification::Notification;
use crate::ports::{Notifier, PortError, PortErrorKind, PortResult};

pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
    chat_topic_arn: Option<String>,
    environment: Option<String>,
}

impl SnsNotifier {
    pub fn new(
        client: aws_sdk_sns::Client,
        topic_arn: &str,
        chat_topic_arn: Option<&str>,
        environment: Option<&str>,
    ) -> Self {
        Self {
            client,
            topic_arn: topic_arn.to_owned(),
            chat_topic_arn: chat_topic_arn.map(str::to_owned),
            environment: environment.map(str::to_owned),
        }
    }

    /// `kind`, `severity`, `service` and, when the stack names one, `environment`: what a
    /// subscription's filter policy selects on, on both topics.
    fn attributes(
        &self,
        n: &Notification,
    ) -> Result<HashMap<String, MessageAttributeValue>, PortError> {
        // SNS rejects empty attribute values.
        let service = if n.service.is_empty() {
            "-"
        } else {
            n.service.as_str()
        };
        let mut attributes = HashMap::from([
            ("kind".to_owned(), attribute(n.kind.as_str())?),
            ("severity".to_owned(), attribute(n.severity.as_str())?),
            ("service".to_owned(), attribute(service)?),
        ]);
        if let Some(environment) = &self.environment {
            attributes.insert("environment".to_owned(), attribute(environment)?);
        }
        Ok(attributes)
    }

    async fn publish_json(&self, n: &Notification) -> PortResult<()> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(n.subject())
            .message(n.body())
            .set_message_attributes(Some(self.attributes(n)?))
            .send()
            .await
            .map_err(|e| port_error("Publish", e))?;
        Ok(())
    }

    /// Amazon Q reads the message only; the attributes are for the topic's filter policies.
    async fn publish_chat(&self, topic_arn: &str, n: &Notification) -> PortResult<()> {
        self.client
            .publish()
            .topic_arn(topic_arn)
            .message(crate::chat::render(n, self.environment.as_deref()).body())
            .set_message_attributes(Some(self.attributes(n)?))
            .send()
            .await
            .map_err(|e| port_error("Publish (chat topic)", e))?;
        Ok(())
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
    /// Both at once; each best effort: a chat topic that is down keeps no JSON message back.
    async fn publish(&self, n: &Notification) -> PortResult<()> {
        let chat = async {
            match &self.chat_topic_arn {
                Some(topic) => self.publish_chat(topic, n).await,
                None => Ok(()),
            }
        };
        let (json, chat) = futures::join!(self.publish_json(n), chat);
        json.and(chat)
    }
}
