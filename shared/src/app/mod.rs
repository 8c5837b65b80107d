//! The use cases: parse an event, ask the domain, apply the plan through the ports.

pub(crate) mod codedeploy;
pub mod deploy;
pub mod locking;
pub mod operator;
pub(crate) mod pair_gate;
pub(crate) mod pair_scale;
pub(crate) mod pins;
pub mod rollback;
pub mod scheduler;
pub(crate) mod traffic;

use std::sync::Arc;

use crate::notification::Notification;
use crate::ports::{
    Alarms, Announcer, Autoscaling, ChangeCalendars, CheckFunctions, Clock, CodeDeploy, Ecr, Ecs,
    ImageIndex, Metrics, Notifier, Pace, PortError, StateStore, Traffic,
};

/// The ports a function works through, built once per process.
#[derive(Clone)]
pub struct Ports {
    pub ecs: Arc<dyn Ecs>,
    pub ecr: Arc<dyn Ecr>,
    pub autoscaling: Arc<dyn Autoscaling>,
    pub alarms: Arc<dyn Alarms>,
    pub traffic: Arc<dyn Traffic>,
    pub codedeploy: Arc<dyn CodeDeploy>,
    pub checks: Arc<dyn CheckFunctions>,
    pub announcer: Arc<dyn Announcer>,
    pub calendars: Arc<dyn ChangeCalendars>,
    pub store: Arc<dyn StateStore>,
    pub images: Arc<dyn ImageIndex>,
    pub pace: Arc<dyn Pace>,
    pub notifier: Arc<dyn Notifier>,
    pub metrics: Arc<dyn Metrics>,
    pub clock: Arc<dyn Clock>,
}

/// The longest deckhand waits for a slot of a bucket: beyond, the write is left for a retry of
/// the event (the lock's lease must cover the wait, the call and the commit).
pub const MAX_PACE_WAIT: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// Waits for a slot of the bucket before an AWS write, at the pace the account is allowed
/// (`domain::pace`). Returns how long it waited. A slot too far ahead is an error the event is
/// retried for; a pace record that cannot be read or written paces nothing (pacing only spares
/// throttling, which the SDK's retry handles too).
pub(crate) async fn paced(
    ports: &Ports,
    (bucket, rate): (&str, crate::domain::pace::Rate),
) -> Result<chrono::TimeDelta, PortError> {
    let now = ports.clock.now();
    let reserved = match ports.pace.reserve(bucket, rate, 1, now).await {
        Ok(reserved) => reserved,
        Err(e) => {
            tracing::warn!(error = %e, bucket, "could not reserve a slot; going unpaced");
            return Ok(chrono::TimeDelta::zero());
        }
    };
    wait_for_slot(bucket, reserved, now).await
}

/// Waits until a reserved slot starts; a slot further ahead than deckhand waits is an error
/// worth a retry of the event.
pub(crate) async fn wait_for_slot(
    bucket: &str,
    reserved: crate::domain::pace::Reserved,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::TimeDelta, PortError> {
    let wait = reserved.first - now;
    if wait > MAX_PACE_WAIT {
        return Err(PortError::new(
            "pace",
            crate::ports::PortErrorKind::Transient,
            format!(
                "{bucket} is booked {} s ahead, longer than deckhand waits; the event is retried",
                wait.num_seconds()
            ),
        ));
    }
    if let Ok(duration) = wait.to_std()
        && !duration.is_zero()
    {
        tracing::info!(
            bucket,
            wait_ms = wait.num_milliseconds(),
            "waiting for a slot"
        );
        tokio::time::sleep(duration).await;
    }
    Ok(wait.max(chrono::TimeDelta::zero()))
}

/// Publishing is best effort: the action and its record stand even if the topic is down. What
/// the notification counts goes to the metrics first, whatever the topic does. Whether the
/// topic took it.
pub(crate) async fn publish(ports: &Ports, notification: Notification) -> bool {
    if let Some(measurements) = crate::metrics::of_notification(&notification) {
        ports.metrics.put(&measurements);
    }
    match ports.notifier.publish(&notification).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, kind = notification.kind.as_str(), "could not publish the notification");
            false
        }
    }
}
