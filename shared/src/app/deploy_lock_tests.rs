//! The lock a deployment holds outlasts what it guards: a registration slowed past the lease
//! (throttling, retries) loses the lock to another invocation, and then changes nothing in ECS.

use async_trait::async_trait;

use super::*;
use crate::app::locking::LEASE;
use crate::domain::fleet::TaskDefinitionView;
use crate::ports::{Clock as _, Described, Ecs, LockAttempt, PortResult, TaggedService};

/// ECS whose registration takes `slow_by`; when that is longer than the lease, another
/// invocation takes the service's lock meanwhile.
struct SlowRegistration {
    ecs: Arc<MemoryEcs>,
    store: Arc<MemoryStore>,
    clock: Arc<FixedClock>,
    slow_by: chrono::TimeDelta,
}

#[async_trait]
impl Ecs for SlowRegistration {
    async fn find_services(&self, tag_key: &str) -> PortResult<Vec<TaggedService>> {
        self.ecs.find_services(tag_key).await
    }
    async fn describe_services_partly(&self, services: &[ServiceKey]) -> PortResult<Described> {
        self.ecs.describe_services_partly(services).await
    }
    async fn resolved_images(
        &self,
        service: &ServiceView,
    ) -> PortResult<Option<std::collections::BTreeMap<String, String>>> {
        self.ecs.resolved_images(service).await
    }
    async fn describe_task_definition(&self, arn: &str) -> PortResult<TaskDefinitionView> {
        self.ecs.describe_task_definition(arn).await
    }
    async fn register_revision(
        &self,
        base: &TaskDefinitionView,
        changes: &[ImageChange],
        event_id: &str,
    ) -> PortResult<String> {
        let arn = self.ecs.register_revision(base, changes, event_id).await?;
        self.clock.advance(self.slow_by);
        if self.slow_by <= LEASE {
            return Ok(arn);
        }
        let taken = self
            .store
            .lock(&web(), "another-invocation#1", self.clock.now(), LEASE)
            .await?;
        assert!(matches!(taken, LockAttempt::Acquired(_)), "{taken:?}");
        Ok(arn)
    }
    async fn registered_for(
        &self,
        base: &TaskDefinitionView,
        event_id: &str,
    ) -> PortResult<Option<String>> {
        self.ecs.registered_for(base, event_id).await
    }
    async fn active_revisions(&self, family: &str) -> PortResult<Vec<String>> {
        self.ecs.active_revisions(family).await
    }
    async fn deregister_revision(&self, arn: &str) -> PortResult<()> {
        self.ecs.deregister_revision(arn).await
    }
    async fn update_service(
        &self,
        service: &ServiceKey,
        task_definition: &str,
    ) -> PortResult<Option<String>> {
        self.ecs.update_service(service, task_definition).await
    }
    async fn set_desired_count(&self, service: &ServiceKey, count: i32) -> PortResult<()> {
        self.ecs.set_desired_count(service, count).await
    }
    async fn deployment_in_progress(&self, service: &ServiceKey) -> PortResult<Option<String>> {
        self.ecs.deployment_in_progress(service).await
    }
    async fn stop_service_deployment(&self, arn: &str) -> PortResult<()> {
        self.ecs.stop_service_deployment(arn).await
    }

    async fn paused_deployment(
        &self,
        service: &ServiceKey,
    ) -> PortResult<Option<crate::domain::pause::PausedDeployment>> {
        self.ecs.paused_deployment(service).await
    }

    async fn continue_service_deployment(
        &self,
        service_deployment_arn: &str,
        hook_id: &str,
        roll_back: bool,
    ) -> PortResult<()> {
        self.ecs
            .continue_service_deployment(service_deployment_arn, hook_id, roll_back)
            .await
    }
}

fn slow_ports(w: &World, slow_by: chrono::TimeDelta) -> Ports {
    Ports {
        ecs: Arc::new(SlowRegistration {
            ecs: w.ecs.clone(),
            store: w.store.clone(),
            clock: w.clock.clone(),
            slow_by,
        }),
        ecr: w.ecr.clone(),
        autoscaling: Arc::new(crate::adapters::memory::MemoryAutoscaling::default()),
        alarms: Arc::new(crate::adapters::memory::MemoryAlarms::default()),
        traffic: Arc::new(crate::adapters::memory::MemoryTraffic::default()),
        codedeploy: Arc::new(crate::adapters::memory::MemoryCodeDeploy::default()),
        checks: Arc::new(crate::adapters::memory::MemoryChecks::default()),
        announcer: Arc::new(crate::adapters::memory::MemoryAnnouncer::default()),
        calendars: Arc::new(crate::adapters::memory::MemoryCalendars::default()),
        store: w.store.clone(),
        images: w.store.clone(),
        pace: w.store.clone(),
        notifier: w.notifier.clone(),
        metrics: w.notifier.clone(),
        clock: w.clock.clone(),
    }
}

#[tokio::test]
async fn a_deployment_that_lost_its_lock_while_registering_changes_nothing() {
    let w = world(&[("deckhand:deploy", "any")]);
    let ports = slow_ports(&w, LEASE + chrono::TimeDelta::seconds(1));
    let function = DeployFunction::new(ports, config(false));
    let failed = function
        .handle(&w.pushed(push_event("e1", 1, Some("main-42"), 'b')))
        .await;
    assert!(
        matches!(&failed, Err(DeployError::ServicesFailed(s)) if s.services[0].reason.contains("taken over")),
        "{failed:?}"
    );
    assert_eq!(w.ecs.calls("UpdateService"), 0, "the service was not moved");
    assert_eq!(running_image(&w, "web"), format!("{HOST}/web:main-1"));
    assert!(
        w.store.is_locked(&web()),
        "the other invocation still holds it"
    );
    assert!(actions(&w).iter().all(|a| *a != Action::Deployed));
}

#[tokio::test]
async fn a_deployment_renews_its_lease_before_moving_the_service_when_little_is_left() {
    // A registration slowed by 30 s leaves 60 s of the 90 s lease: less than an ECS call and
    // the commit may take.
    let w = world(&[("deckhand:deploy", "any")]);
    let function = DeployFunction::new(
        slow_ports(&w, chrono::TimeDelta::seconds(30)),
        config(false),
    );
    let summary = function
        .handle(&w.pushed(push_event("e1", 1, Some("main-42"), 'b')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed, "{summary:?}");
    assert_eq!(w.store.renewals(&web()), 1);

    // A quick one acts under the lease it took: no call to renew it.
    let w = world(&[("deckhand:deploy", "any")]);
    let summary = w
        .function
        .handle(&w.pushed(push_event("e1", 1, Some("main-42"), 'b')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Deployed, "{summary:?}");
    assert_eq!(w.store.renewals(&web()), 0);
}
