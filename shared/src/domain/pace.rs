//! Pacing AWS writes to the rate AWS allows the whole account, shared by every invocation.
//!
//! ECS throttles each operation with a token bucket per account and Region: a burst, then a
//! sustained rate (`RegisterTaskDefinition`: a burst of 20, then one a second). deckhand keeps
//! one shared record per bucket, the *theoretical arrival time* of the generic cell rate
//! algorithm (GCRA, the token bucket seen from the clock): each call reserves the next slot, and
//! waits until then. Slots never overlap, however many invocations reserve at once, so a push to
//! 50 services, or 50 pushes at once, go at the rate ECS grants instead of into its throttling.

use chrono::{DateTime, TimeDelta, Utc};

/// A token bucket as AWS documents it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Calls that may go at once.
    pub burst: u32,
    /// Calls a second, sustained.
    pub per_second: f64,
}

impl Rate {
    /// The time one call's token takes to come back.
    pub fn interval(&self) -> TimeDelta {
        TimeDelta::microseconds((1_000_000.0 / self.per_second.max(0.001)) as i64)
    }

    /// How far ahead of the clock the reservations may run before a call must wait.
    fn tolerance(&self) -> TimeDelta {
        self.interval() * (self.burst.max(1) as i32 - 1)
    }
}

/// What a reservation of calls got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserved {
    /// When the first of the calls may start; the next ones follow one interval apart.
    pub first: DateTime<Utc>,
    /// The bucket's new theoretical arrival time, to store.
    pub arrival: DateTime<Utc>,
}

/// Reserves `calls` slots at `now` in a bucket whose theoretical arrival time is `arrival`
/// (none: the bucket is full).
pub fn reserve(
    arrival: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    rate: Rate,
    calls: u32,
) -> Reserved {
    let base = arrival.map_or(now, |a| a.max(now));
    Reserved {
        first: (base - rate.tolerance()).max(now),
        arrival: base + rate.interval() * calls.max(1) as i32,
    }
}

/// When call `i` (from 0) of a reservation may start.
pub fn start_of(reserved: &Reserved, rate: Rate, i: u32) -> DateTime<Utc> {
    reserved.first + rate.interval() * i as i32
}

/// Task definition writes in ECS (`RegisterTaskDefinition`, `DeregisterTaskDefinition`). ECS
/// grants the account a burst of 20, then one a second; deckhand takes the sustained rate but
/// half the burst, leaving the rest to the account's other callers (Terraform, pipelines) and
/// to its own calls that leave later than their slot and so bunch up with the next ones.
pub const TASK_DEFINITION_WRITES: (&str, Rate) = (
    "ecs:task-definition-writes",
    Rate {
        burst: 10,
        per_second: 1.0,
    },
);

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap() + TimeDelta::seconds(seconds)
    }

    /// ECS's own bucket for task definition writes.
    const ECS: Rate = Rate {
        burst: 20,
        per_second: 1.0,
    };

    /// 50 calls reserved one by one at the same instant: the first 20 go at once, the rest one
    /// a second, as ECS's bucket grants them.
    #[test]
    fn a_burst_goes_at_once_then_one_a_second() {
        let mut arrival = None;
        let starts: Vec<i64> = (0..50)
            .map(|_| {
                let r = reserve(arrival, t(0), ECS, 1);
                arrival = Some(r.arrival);
                (r.first - t(0)).num_seconds()
            })
            .collect();
        assert!(starts[..20].iter().all(|s| *s == 0), "{starts:?}");
        assert_eq!(&starts[20..23], [1, 2, 3]);
        assert_eq!(starts[49], 30);
    }

    /// The bucket refills while nobody calls: after 30 quiet seconds, a burst of 20 again.
    #[test]
    fn an_idle_bucket_refills() {
        let mut arrival = None;
        for _ in 0..40 {
            arrival = Some(reserve(arrival, t(0), ECS, 1).arrival);
        }
        assert_eq!(reserve(arrival, t(0), ECS, 1).first, t(21));
        let later = reserve(arrival, t(60), ECS, 1);
        assert_eq!(later.first, t(60));
        assert_eq!(later.arrival, t(61));
    }

    /// A reservation of several calls is the same as as many single ones.
    #[test]
    fn many_at_once_is_one_by_one() {
        let together = reserve(Some(t(25)), t(0), ECS, 5);
        let mut arrival = Some(t(25));
        let mut starts = Vec::new();
        for _ in 0..5 {
            let r = reserve(arrival, t(0), ECS, 1);
            starts.push(r.first);
            arrival = Some(r.arrival);
        }
        assert_eq!(together.arrival, arrival.unwrap());
        let spread: Vec<_> = (0..5).map(|i| start_of(&together, ECS, i)).collect();
        assert_eq!(spread, starts);
        assert_eq!(together.first, t(6));
    }
}
