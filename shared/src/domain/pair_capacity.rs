//! A pair's sides and their scalable targets (Application Auto Scaling). A side deckhand scales
//! down is held at 0 as sleep holds a service (min and max 0, scheduled scaling suspended), so
//! that neither a scale-out nor a scheduled business-hours minimum undoes it, and what it had is
//! saved; when the side takes the traffic again it gets that back, exactly. A side with nothing
//! saved (the first move) gets the live side's min and max, as it gets its desired count.
//! Pure: `None` means nothing to write.

use super::state::{Capacity, Suspended};

/// The capacity a side gets when it is scaled up to `count` tasks to take the traffic from the
/// live side: what was saved when deckhand held it at 0; else the live side's; else, when the
/// live side has no scalable target, its own widened to hold `count`, with scheduled scaling
/// running again.
pub fn taking_over(
    side: Option<Capacity>,
    (saved, live): (Option<Capacity>, Option<Capacity>),
    count: i32,
) -> Option<Capacity> {
    let side = side?;
    let wanted = match (saved, live) {
        (Some(saved), _) => saved,
        (None, Some(live)) => live,
        (None, None) => Capacity {
            min: side.min.min(count),
            max: side.max.max(count),
            suspended: Suspended {
                scheduled: false,
                ..side.suspended
            },
        },
    };
    (wanted != side).then_some(wanted)
}

/// The capacity of a side scaled down to 0 tasks; `None` when it has none to hold, or is held
/// already (what it had is then the capacity saved before).
pub fn held_down(side: Option<Capacity>) -> Option<Capacity> {
    let side = side?;
    let held = side.asleep(0);
    (held != side).then_some(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_side_taking_the_traffic_gets_the_live_sides_capacity() {
        let held = Capacity::new(2, 10).asleep(0);
        let live = Some(Capacity::new(3, 12));
        assert_eq!(taking_over(Some(held), (None, live), 4), live);
        assert_eq!(taking_over(live, (None, live), 4), None);
        assert_eq!(taking_over(None, (None, live), 4), None, "no target");
        // No target on the live side: its own range, widened to the count, scheduled scaling
        // running again.
        assert_eq!(
            taking_over(Some(held), (None, None), 4),
            Some(Capacity::new(0, 4))
        );
        assert_eq!(
            taking_over(Some(Capacity::new(1, 8)), (None, None), 4),
            None
        );
    }

    #[test]
    fn a_side_held_at_zero_gets_back_exactly_what_it_had() {
        let had = Capacity::new(2, 10);
        let held = held_down(Some(had)).unwrap();
        assert_eq!(
            taking_over(Some(held), (Some(had), Some(Capacity::new(3, 12))), 4),
            Some(had),
            "what was saved, not the live side's"
        );
    }

    #[test]
    fn a_side_scaled_down_is_held_at_zero_against_scale_out_and_schedules() {
        let held = held_down(Some(Capacity::new(2, 10))).unwrap();
        assert_eq!((held.min, held.max), (0, 0));
        assert!(held.suspended.scheduled);
        assert_eq!(held_down(Some(held)), None, "already held");
        assert_eq!(held_down(None), None);
    }
}
