//! The use cases: parse an event, ask the domain, apply the plan through the ports.

pub mod deploy;
pub mod locking;
pub mod operator;
pub mod rollback;
pub mod scheduler;

use std::sync::Arc;

use crate::notification::Notification;
use crate::ports::{Alarms, Autoscaling, Clock, Ecr, Ecs, ImageIndex, Notifier, StateStore};

/// The ports a function works through, built once per process.
#[derive(Clone)]
pub struct Ports {
    pub ecs: Arc<dyn Ecs>,
    pub ecr: Arc<dyn Ecr>,
    pub autoscaling: Arc<dyn Autoscaling>,
    pub alarms: Arc<dyn Alarms>,
    pub store: Arc<dyn StateStore>,
    pub images: Arc<dyn ImageIndex>,
    pub notifier: Arc<dyn Notifier>,
    pub clock: Arc<dyn Clock>,
}

/// Publishing is best effort: the action and its record stand even if the topic is down.
pub(crate) async fn publish(notifier: &dyn Notifier, notification: Notification) {
    if let Err(e) = notifier.publish(&notification).await {
        tracing::error!(error = %e, kind = notification.kind.as_str(), "could not publish the notification");
    }
}
