//! CloudWatch: the tags of alarms, which may name the service they guard, their actions,
//! which tell a step scaling alarm, and every alarm for `deckhand check`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{AlarmType, CompositeAlarm, Dimension, MetricAlarm};
use chrono::{DateTime, Utc};

use super::port_error;
use crate::domain::rollback::{Alarm, AlarmState};
use crate::domain::settings::Tags;
use crate::ports::{Alarms, PortResult};

pub struct CloudWatchAlarms {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchAlarms {
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Alarms for CloudWatchAlarms {
    async fn alarm_tags(&self, arn: &str) -> PortResult<Tags> {
        let out = self
            .client
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|e| port_error("ListTagsForResource", e))?;
        Ok(out
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect())
    }

    async fn alarm_actions(&self, name: &str) -> PortResult<Option<Vec<String>>> {
        let out = self
            .client
            .describe_alarms()
            .alarm_names(name)
            .alarm_types(aws_sdk_cloudwatch::types::AlarmType::MetricAlarm)
            .send()
            .await
            .map_err(|e| port_error("DescribeAlarms", e))?;
        Ok(out
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(name))
            .map(|a| a.alarm_actions().to_vec()))
    }

    async fn all_alarms(&self) -> PortResult<Vec<Alarm>> {
        let mut pages = self
            .client
            .describe_alarms()
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .into_paginator()
            .send();
        let mut alarms = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error("DescribeAlarms", e))?;
            alarms.extend(page.metric_alarms().iter().map(metric_alarm));
            alarms.extend(page.composite_alarms().iter().map(composite_alarm));
        }
        Ok(alarms)
    }
}

fn dimensions(list: &[Dimension]) -> BTreeMap<String, String> {
    list.iter()
        .filter_map(|d| Some((d.name()?.to_owned(), d.value()?.to_owned())))
        .collect()
}

fn state_of(value: Option<&aws_sdk_cloudwatch::types::StateValue>) -> AlarmState {
    value
        .and_then(|s| AlarmState::parse(s.as_str()))
        .unwrap_or(AlarmState::InsufficientData)
}

fn state_time(at: Option<&aws_sdk_cloudwatch::primitives::DateTime>) -> DateTime<Utc> {
    at.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_default()
}

/// A metric alarm as the domain reads alarms: the dimensions of its metric, or of each metric
/// of a metric-math alarm.
fn metric_alarm(a: &MetricAlarm) -> Alarm {
    let mut all = vec![dimensions(a.dimensions())];
    all.extend(a.metrics().iter().filter_map(|m| {
        let metric = m.metric_stat()?.metric()?;
        Some(dimensions(metric.dimensions()))
    }));
    all.retain(|d| !d.is_empty());
    Alarm {
        event_id: String::new(),
        name: a.alarm_name().unwrap_or_default().to_owned(),
        arn: a.alarm_arn().map(str::to_owned),
        state: state_of(a.state_value()),
        previous: None,
        reason: a.state_reason().unwrap_or_default().to_owned(),
        at: state_time(a.state_updated_timestamp()),
        dimensions: all,
        rule: None,
        description: a.alarm_description().map(str::to_owned),
        actions: Some(a.alarm_actions().to_vec()),
    }
}

fn composite_alarm(a: &CompositeAlarm) -> Alarm {
    Alarm {
        event_id: String::new(),
        name: a.alarm_name().unwrap_or_default().to_owned(),
        arn: a.alarm_arn().map(str::to_owned),
        state: state_of(a.state_value()),
        previous: None,
        reason: a.state_reason().unwrap_or_default().to_owned(),
        at: state_time(a.state_updated_timestamp()),
        dimensions: Vec::new(),
        rule: a.alarm_rule().map(str::to_owned),
        description: a.alarm_description().map(str::to_owned),
        actions: Some(a.alarm_actions().to_vec()),
    }
}
