//! The lock a sleep or a wake holds outlasts what it guards: a scalable target's change slowed
//! past the lease (throttling, retries) while another invocation took the service's lock stops
//! the change before ECS is touched.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::*;
use crate::app::locking::LEASE;
use crate::ports::{Autoscaling, Clock as _, LockAttempt, PortResult};

/// Application Auto Scaling whose every change takes longer than the lease, while another
/// invocation takes the service's lock.
struct SlowTarget {
    autoscaling: Arc<MemoryAutoscaling>,
    store: Arc<MemoryStore>,
    clock: Arc<FixedClock>,
}

#[async_trait]
impl Autoscaling for SlowTarget {
    async fn scalable_targets(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, Capacity>> {
        self.autoscaling.scalable_targets(services).await
    }
    async fn set_capacity(&self, service: &ServiceKey, capacity: Capacity) -> PortResult<()> {
        self.autoscaling.set_capacity(service, capacity).await?;
        self.clock.advance(LEASE + TimeDelta::seconds(1));
        let taken = self
            .store
            .lock(service, "another-invocation#1", self.clock.now(), LEASE)
            .await?;
        assert!(matches!(taken, LockAttempt::Acquired(_)), "{taken:?}");
        Ok(())
    }
    async fn scheduled_actions(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, Vec<String>>> {
        self.autoscaling.scheduled_actions(services).await
    }
}

/// Every later change of a scalable target is slowed past the lease.
fn slow_targets(w: &mut World) {
    w.ports.autoscaling = Arc::new(SlowTarget {
        autoscaling: w.autoscaling.clone(),
        store: w.store.clone(),
        clock: w.clock.clone(),
    });
}

/// A reconcile whose service failed: the function returns the summary as its error.
async fn failing_reconcile(w: &World, at: &str) -> Summary {
    w.clock.set(utc(at));
    match w
        .scheduler(false)
        .handle(&json!({"action": "reconcile", "at": at}))
        .await
    {
        Err(SchedulerError::ServicesFailed(summary)) => summary,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_sleep_that_lost_its_lock_while_changing_the_target_leaves_the_desired_count() {
    let mut w = world();
    let api = w.service("api", OFFICE, true);
    slow_targets(&mut w);
    let night = failing_reconcile(&w, NIGHT).await;
    assert_eq!(action_of(&night, &api), Action::Error, "{night:?}");
    assert_eq!(
        night.services[0].reason,
        "UpdateItem failed: the lock was taken over"
    );
    assert_eq!(w.desired(&api), 3, "ECS was not touched under a lost lock");
}

#[tokio::test]
async fn a_wake_that_lost_its_lock_while_changing_the_target_leaves_the_desired_count() {
    let mut w = world();
    let api = w.service("api", OFFICE, true);
    assert_eq!(action_of(&w.reconcile(NIGHT).await, &api), Action::Asleep);
    slow_targets(&mut w);
    let morning = failing_reconcile(&w, MORNING).await;
    assert_eq!(action_of(&morning, &api), Action::Error, "{morning:?}");
    assert_eq!(w.desired(&api), 0, "ECS was not touched under a lost lock");
}
