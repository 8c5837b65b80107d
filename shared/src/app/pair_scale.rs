//! Scaling a side of a pair, its scalable target with it: a side scaled down is held at 0 so
//! that the autoscaler does not undo it, and what it had is handed back to be saved; the side
//! that takes the traffic gets that back (or the live side's) before ECS is asked for the tasks
//! (domain::pair_capacity decides).

use super::Ports;
use crate::domain::pair_capacity::{held_down, taking_over};
use crate::domain::service::ServiceKey;
use crate::domain::state::Capacity;
use crate::ports::PortError;

/// Gives `side` the scalable-target capacity `saved` when deckhand held it at 0, else `live`'s
/// (or room for `count` tasks), before it is scaled up to `count` to take `live`'s traffic.
/// Nothing is written for a side without a scalable target, or one that has it already.
pub(crate) async fn capacity_to_take_over(
    ports: &Ports,
    (side, saved): (&ServiceKey, Option<Capacity>),
    live: &ServiceKey,
    count: i32,
) -> Result<(), PortError> {
    let targets = ports
        .autoscaling
        .scalable_targets(&[side.clone(), live.clone()])
        .await?;
    let (own, theirs) = (targets.get(side).copied(), targets.get(live).copied());
    match taking_over(own, (saved, theirs), count) {
        Some(capacity) => ports.autoscaling.set_capacity(side, capacity).await,
        None => Ok(()),
    }
}

/// Scales `side` down to 0 tasks, its scalable target held at 0 first. Returns what the target
/// had, to be saved, when this call held it (`None` without a target, or when it was held).
pub(crate) async fn scale_down(
    ports: &Ports,
    side: &ServiceKey,
) -> Result<Option<Capacity>, PortError> {
    let targets = ports
        .autoscaling
        .scalable_targets(std::slice::from_ref(side))
        .await?;
    let had = targets.get(side).copied();
    let held = held_down(had);
    if let Some(capacity) = held {
        ports.autoscaling.set_capacity(side, capacity).await?;
    }
    ports.ecs.set_desired_count(side, 0).await?;
    Ok(had.filter(|_| held.is_some()))
}
