//! `deckhand init`: the state of every opted-in service recorded before deckhand acts on it,
//! its baseline the revision it runs.

use std::io::Write;

use crate::CliError;
use crate::print::print_json;
use deckhand::adapters::aws::Clients;
use serde_json::json;

pub(crate) async fn init(
    clients: &Clients,
    table: &str,
    topic: &str,
    json_output: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TimeToLiveSpecification,
    };
    let setup = |e: &dyn std::fmt::Display| CliError::Setup(e.to_string());
    let ddb = &clients.dynamodb;
    let exists = ddb.describe_table().table_name(table).send().await.is_ok();
    if !exists {
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        ddb.create_table()
            .table_name(table)
            .key_schema(key("pk", KeyType::Hash).map_err(|e| setup(&e))?)
            .key_schema(key("sk", KeyType::Range).map_err(|e| setup(&e))?)
            .attribute_definitions(attribute("pk").map_err(|e| setup(&e))?)
            .attribute_definitions(attribute("sk").map_err(|e| setup(&e))?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(|e| setup(&aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        ddb.update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("ttl")
                    .build()
                    .map_err(|e| setup(&e))?,
            )
            .send()
            .await
            .map_err(|e| setup(&aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
    }
    // CreateTopic is idempotent: it returns the existing topic of that name.
    let topic_arn = clients
        .sns
        .create_topic()
        .name(topic)
        .send()
        .await
        .map_err(|e| setup(&aws_sdk_sns::error::DisplayErrorContext(e)))?
        .topic_arn
        .unwrap_or_default();
    if json_output {
        let value = json!({"table": table, "tableCreated": !exists, "topicArn": topic_arn});
        print_json(out, &value)?;
    } else {
        let table_state = if exists { "exists" } else { "created" };
        writeln!(out, "table {table} {table_state}; topic {topic_arn}")?;
        writeln!(
            out,
            "export DECKHAND_TABLE={table} DECKHAND_TOPIC_ARN={topic_arn}"
        )?;
    }
    Ok(())
}
