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

/// A store under which an operator's `wake` lands between the reconcile's batch read and its
/// lock.
struct WokenMeanwhile {
    store: Arc<MemoryStore>,
    clock: Arc<FixedClock>,
}

#[async_trait]
impl crate::ports::StateStore for WokenMeanwhile {
    async fn remember_announcement(
        &self,
        upstream: &str,
        event: &serde_json::Value,
        proven_at: chrono::DateTime<chrono::Utc>,
    ) -> PortResult<()> {
        self.store
            .remember_announcement(upstream, event, proven_at)
            .await
    }
    async fn announcement(&self, upstream: &str) -> PortResult<Option<serde_json::Value>> {
        self.store.announcement(upstream).await
    }
    async fn archived_quarantine(
        &self,
        service: &ServiceKey,
        digest: &str,
    ) -> PortResult<Option<crate::domain::state::Quarantine>> {
        self.store.archived_quarantine(service, digest).await
    }
    async fn release_archived_quarantine(
        &self,
        service: &ServiceKey,
        digest: &str,
    ) -> PortResult<bool> {
        self.store
            .release_archived_quarantine(service, digest)
            .await
    }
    async fn commit_indexed(
        &self,
        service: &ServiceKey,
        locked: &crate::ports::Locked,
        state: &ServiceState,
        records: &[crate::history::HistoryRecord],
        processed: Option<&crate::history::ProcessedMark>,
        index: &crate::ports::IndexUpdate,
    ) -> PortResult<()> {
        self.store
            .commit_indexed(service, locked, state, records, processed, index)
            .await
    }
    async fn processed(
        &self,
        event_id: &str,
    ) -> PortResult<std::collections::BTreeSet<ServiceKey>> {
        self.store.processed(event_id).await
    }
    async fn lock(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<LockAttempt> {
        self.store.lock(service, owner, now, lease).await
    }
    async fn lock_saving(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
        read: &ServiceState,
        state: &ServiceState,
    ) -> PortResult<Option<crate::ports::Locked>> {
        self.store
            .lock_saving(service, owner, now, lease, read, state)
            .await
    }
    async fn commit(
        &self,
        service: &ServiceKey,
        locked: &crate::ports::Locked,
        state: &ServiceState,
        records: &[crate::history::HistoryRecord],
        processed: Option<&crate::history::ProcessedMark>,
    ) -> PortResult<()> {
        self.store
            .commit(service, locked, state, records, processed)
            .await
    }
    async fn save(
        &self,
        service: &ServiceKey,
        locked: &crate::ports::Locked,
        state: &ServiceState,
    ) -> PortResult<()> {
        self.store.save(service, locked, state).await
    }
    async fn renew(
        &self,
        service: &ServiceKey,
        locked: &crate::ports::Locked,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<()> {
        self.store.renew(service, locked, now, lease).await
    }
    async fn release(&self, service: &ServiceKey, owner: &str) -> PortResult<()> {
        self.store.release(service, owner).await
    }
    async fn lock_at_once(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: chrono::DateTime<chrono::Utc>,
        lease: chrono::TimeDelta,
        pace: Option<(&str, crate::domain::pace::Rate)>,
        event: &str,
    ) -> PortResult<crate::ports::AtOnce> {
        self.store
            .lock_at_once(service, owner, now, lease, pace, event)
            .await
    }
    async fn lock_recorded(
        &self,
        service: &ServiceKey,
        owner: &str,
        now: chrono::DateTime<chrono::Utc>,
        lease: chrono::TimeDelta,
    ) -> PortResult<Option<LockAttempt>> {
        self.store.lock_recorded(service, owner, now, lease).await
    }
    async fn release_announced(
        &self,
        service: &ServiceKey,
        owner: &str,
        cause: &str,
    ) -> PortResult<()> {
        self.store.release_announced(service, owner, cause).await
    }
    async fn record(
        &self,
        records: &[crate::history::HistoryRecord],
        processed: Option<&crate::history::ProcessedMark>,
    ) -> PortResult<()> {
        self.store.record(records, processed).await
    }
    async fn load(&self, service: &ServiceKey) -> PortResult<ServiceState> {
        self.store.load(service).await
    }
    async fn load_many(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, ServiceState>> {
        let read = self.store.load_many(services).await?;
        for service in services {
            let now = self.clock.now();
            let LockAttempt::Acquired(locked) =
                self.store.lock(service, "operator#1", now, LEASE).await?
            else {
                panic!("the operator's lock is free");
            };
            let state = ServiceState {
                operator_override: Some(crate::domain::state::OperatorOverride {
                    awake: true,
                    until: now + TimeDelta::hours(4),
                    at: now,
                    cause: "wake#test".into(),
                }),
                ..locked.state.clone()
            };
            self.store
                .commit(service, &locked, &state, &[], None)
                .await?;
        }
        Ok(read)
    }
    async fn sleeping(&self) -> PortResult<Vec<ServiceKey>> {
        self.store.sleeping().await
    }
    async fn waiting(&self) -> PortResult<Vec<ServiceKey>> {
        self.store.waiting().await
    }
    async fn held(&self) -> PortResult<Vec<ServiceKey>> {
        self.store.held().await
    }
    async fn history(
        &self,
        service: &ServiceKey,
        limit: usize,
    ) -> PortResult<Vec<crate::history::HistoryRecord>> {
        self.store.history(service, limit).await
    }
}

#[tokio::test]
async fn a_sleep_decided_on_the_batch_read_is_taken_with_its_lock_only_if_nothing_moved() {
    // Nothing moved: the lock and the pending record are one write, no save of its own.
    let w = world();
    let api = w.service("api", OFFICE, true);
    let night = w.reconcile(NIGHT).await;
    assert_eq!(action_of(&night, &api), Action::Asleep);
    assert!(
        !night.services[0].reason.contains("interrupted"),
        "{night:?}"
    );
    assert_eq!(w.desired(&api), 0);
    assert_eq!(w.store.saves(&api), 0, "saved with the lock");
    let morning = w.reconcile(MORNING).await;
    assert_eq!(action_of(&morning, &api), Action::Awake);
    assert_eq!(w.desired(&api), 3);
    assert_eq!(w.store.saves(&api), 0, "the wake's pending record too");

    // An operator's wake lands between the read and the lock: the write finds the record
    // moved, the lock is taken alone and the decision made again, honouring the wake.
    let mut w = world();
    let api = w.service("api", OFFICE, true);
    w.ports.store = Arc::new(WokenMeanwhile {
        store: w.store.clone(),
        clock: w.clock.clone(),
    });
    let night = w.reconcile(NIGHT).await;
    assert_ne!(action_of(&night, &api), Action::Asleep, "{night:?}");
    assert_eq!(w.desired(&api), 3, "kept awake as the operator asked");
}

#[tokio::test]
async fn a_service_put_to_sleep_is_not_locked_again_for_its_known_good_revision() {
    // Opted in to deploys, never deployed by deckhand: its revision is unaccounted for, but
    // the sleep just wrote its state; the check waits for the next reconcile's fresh read.
    let w = world();
    let tags = [
        ("deckhand:awake", "Mon-Fri 07:00-19:00"),
        ("deckhand:timezone", "Europe/London"),
        ("deckhand:deploy", "any"),
    ];
    let api = w.service("api", &tags, false);
    let night = w.reconcile(NIGHT).await;
    assert_eq!(action_of(&night, &api), Action::Asleep, "{night:?}");
    assert_eq!(
        w.store.locks(&api),
        0,
        "one write took the lock with the pending sleep"
    );
    assert_eq!(w.actions(&api), [Action::Asleep]);
}
