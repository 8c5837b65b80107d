//! Application Auto Scaling in memory: scalable targets and their suspended activities.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::guard;
use crate::domain::service::ServiceKey;
use crate::domain::state::Capacity;
use crate::ports::{Autoscaling, PortError, PortErrorKind, PortResult};

/// A scheduled action in memory: its name, its schedule expression and the capacity it sets.
type ScheduledAction = (String, String, Capacity);

/// Application Auto Scaling in memory: one scalable target per service at most, and its
/// scheduled actions.
#[derive(Default)]
pub struct MemoryAutoscaling {
    targets: Mutex<BTreeMap<ServiceKey, Capacity>>,
    scheduled: Mutex<BTreeMap<ServiceKey, Vec<ScheduledAction>>>,
    fail: Mutex<BTreeSet<ServiceKey>>,
}

impl MemoryAutoscaling {
    /// A scheduled action on the service's target: at `schedule`, min and max become those
    /// of `capacity` (see `run_scheduled`).
    pub fn schedule(&self, service: &ServiceKey, name: &str, schedule: &str, capacity: Capacity) {
        guard(&self.scheduled)
            .entry(service.clone())
            .or_default()
            .push((name.to_owned(), schedule.to_owned(), capacity));
    }

    /// Runs the scheduled actions now, as Application Auto Scaling does at their time: each
    /// sets min and max, unless scheduled scaling is suspended on the target.
    pub fn run_scheduled(&self) {
        let scheduled = guard(&self.scheduled).clone();
        let mut targets = guard(&self.targets);
        for (service, actions) in scheduled {
            if let Some(target) = targets.get_mut(&service)
                && !target.suspended.scheduled
            {
                for (_, _, capacity) in actions {
                    target.min = capacity.min;
                    target.max = capacity.max;
                }
            }
        }
    }

    pub fn register(&self, service: &ServiceKey, capacity: Capacity) {
        guard(&self.targets).insert(service.clone(), capacity);
    }

    pub fn deregister(&self, service: &ServiceKey) {
        guard(&self.targets).remove(service);
    }

    pub fn capacity(&self, service: &ServiceKey) -> Option<Capacity> {
        guard(&self.targets).get(service).copied()
    }

    /// Makes every later change to this service's target fail as a server fault would.
    pub fn fail_for(&self, service: &ServiceKey) {
        guard(&self.fail).insert(service.clone());
    }

    /// Ends an injected fault.
    pub fn heal(&self, service: &ServiceKey) {
        guard(&self.fail).remove(service);
    }
}

#[async_trait]
impl Autoscaling for MemoryAutoscaling {
    async fn scalable_targets(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, Capacity>> {
        let targets = guard(&self.targets);
        Ok(services
            .iter()
            .filter_map(|s| targets.get(s).map(|c| (s.clone(), *c)))
            .collect())
    }

    async fn set_capacity(&self, service: &ServiceKey, capacity: Capacity) -> PortResult<()> {
        if guard(&self.fail).contains(service) {
            return Err(PortError::new(
                "RegisterScalableTarget",
                PortErrorKind::Transient,
                "injected fault",
            ));
        }
        guard(&self.targets).insert(service.clone(), capacity);
        Ok(())
    }

    async fn scheduled_actions(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, Vec<String>>> {
        let scheduled = guard(&self.scheduled);
        Ok(services
            .iter()
            .filter_map(|s| {
                let actions = scheduled.get(s)?;
                Some((
                    s.clone(),
                    actions
                        .iter()
                        .map(|(name, schedule, _)| format!("{name} ({schedule})"))
                        .collect(),
                ))
            })
            .collect())
    }
}
