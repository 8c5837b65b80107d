//! Scaling a side of a pair, its scalable target with it: the side that takes the traffic gets
//! the live side's min and max before ECS is asked for the tasks, and a side scaled down is held
//! at 0 so that the autoscaler does not undo it (domain::pair_capacity decides).

use super::Ports;
use crate::domain::pair_capacity::{held_down, taking_over};
use crate::domain::service::ServiceKey;
use crate::ports::PortError;

/// Gives `side` the scalable-target capacity of `live` (or room for `count` tasks), before it
/// is scaled up to `count` to take `live`'s traffic. Nothing is written for a side without a
/// scalable target, or one that has it already.
pub(crate) async fn capacity_to_take_over(
    ports: &Ports,
    side: &ServiceKey,
    live: &ServiceKey,
    count: i32,
) -> Result<(), PortError> {
    let targets = ports
        .autoscaling
        .scalable_targets(&[side.clone(), live.clone()])
        .await?;
    match taking_over(
        targets.get(side).copied(),
        targets.get(live).copied(),
        count,
    ) {
        Some(capacity) => ports.autoscaling.set_capacity(side, capacity).await,
        None => Ok(()),
    }
}

/// Scales `side` down to 0 tasks, its scalable target held at 0 first.
pub(crate) async fn scale_down(ports: &Ports, side: &ServiceKey) -> Result<(), PortError> {
    let targets = ports
        .autoscaling
        .scalable_targets(std::slice::from_ref(side))
        .await?;
    if let Some(capacity) = held_down(targets.get(side).copied()) {
        ports.autoscaling.set_capacity(side, capacity).await?;
    }
    ports.ecs.set_desired_count(side, 0).await
}
