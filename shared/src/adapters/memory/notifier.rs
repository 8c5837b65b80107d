//! Notifications and metrics in memory, kept for tests to read.

use std::sync::Mutex;

use async_trait::async_trait;

use super::guard;
use crate::metrics::{Measurements, Metric};
use crate::notification::Notification;
use crate::ports::{Metrics, Notifier, PortResult};

/// A topic in memory that keeps what was published, and the metrics put beside it.
#[derive(Default)]
pub struct MemoryNotifier {
    published: Mutex<Vec<Notification>>,
    measured: Mutex<Vec<Measurements>>,
}

impl MemoryNotifier {
    pub fn published(&self) -> Vec<Notification> {
        guard(&self.published).clone()
    }

    pub fn measured(&self) -> Vec<Measurements> {
        guard(&self.measured).clone()
    }

    /// Every value of `metric` put, in order.
    pub fn values(&self, metric: Metric) -> Vec<(Option<String>, f64)> {
        guard(&self.measured)
            .iter()
            .flat_map(|m| {
                m.values
                    .iter()
                    .filter(|v| v.metric == metric)
                    .map(|v| (m.service.clone(), v.value))
            })
            .collect()
    }
}

impl Metrics for MemoryNotifier {
    fn put(&self, measurements: &Measurements) {
        guard(&self.measured).push(measurements.clone());
    }
}

#[async_trait]
impl Notifier for MemoryNotifier {
    async fn publish(&self, notification: &Notification) -> PortResult<()> {
        guard(&self.published).push(notification.clone());
        Ok(())
    }
}
