//! Scaling a side of a pair, its scalable target with it: a side scaled down is held at 0 so
//! that the autoscaler does not undo it, and what it had is handed back to be saved; the side
//! that takes the traffic gets that back (or the live side's) before ECS is asked for the tasks
//! (domain::pair_capacity decides).

use super::Ports;
use crate::domain::pair_capacity::{held_down, taking_over};
use crate::domain::service::ServiceKey;
use crate::domain::state::Capacity;
use crate::ports::PortError;

/// Gives `side` what it had when deckhand held it at 0, else `live`'s capacity (or room for
/// `count` tasks), before it is scaled up to `count` to take `live`'s traffic. `saved` is what
/// the caller's state kept; a side held at 0 without it was held by the move that took the
/// traffic from it, which the live side's state keeps (read only then). Nothing is written for
/// a side without a scalable target, or one that has it already.
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
    let Some(own) = targets.get(side).copied() else {
        return Ok(());
    };
    let held = held_down(Some(own)).is_none();
    let saved = match saved {
        Some(saved) => Some(saved),
        None if held => ports
            .store
            .load(live)
            .await?
            .pair
            .filter(|m| &m.from == side)
            .and_then(|m| m.saved_capacity(side)),
        None => None,
    };
    match taking_over(Some(own), (saved, targets.get(live).copied()), count) {
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
