//! Two pushes to one service at once (an app and its proxy, pushed by one CI run): the one
//! that gets the lock second was read before the first moved the service, and must not clone
//! the revision the service no longer runs.

use async_trait::async_trait;
use chrono::TimeDelta;
use tokio::sync::{Mutex as AsyncMutex, oneshot};

use super::*;
use crate::domain::fleet::TaskDefinitionView;
use crate::ports::{Described, Ecs, PortResult, TaggedService};

/// ECS where this invocation, having read which revision the service runs, waits while
/// another invocation's whole push runs.
struct AnotherPushMeanwhile {
    ecs: Arc<MemoryEcs>,
    /// Says "read", then waits for "the other push is done".
    meanwhile: AsyncMutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

#[async_trait]
impl Ecs for AnotherPushMeanwhile {
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
        let read = self.ecs.describe_task_definition(arn).await;
        if let Some((read, done)) = self.meanwhile.lock().await.take() {
            read.send(()).expect("the other push waits for this read");
            done.await.expect("the other push finishes");
        }
        read
    }
    async fn register_revision(
        &self,
        base: &TaskDefinitionView,
        changes: &[ImageChange],
        event_id: &str,
    ) -> PortResult<String> {
        self.ecs.register_revision(base, changes, event_id).await
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

fn envoy_push(id: &str, minute: u32, d: char) -> Value {
    let mut event = push_event(id, minute, Some("2"), d);
    event["detail"]["repository-name"] = json!("envoy");
    event
}

fn revision(arn: &str) -> &str {
    revision_name(arn)
}

#[tokio::test]
async fn a_push_read_before_another_moved_the_service_deploys_on_top_of_it() {
    let w = world(&[("deckhand:deploy", "any")]);
    let plain = |ecs: Arc<dyn Ecs>| Ports {
        ecs,
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
    };
    let (read_tx, read_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    let proxy_push = DeployFunction::new(plain(w.ecs.clone()), config(false));
    let app_push = DeployFunction::new(
        plain(Arc::new(AnotherPushMeanwhile {
            ecs: w.ecs.clone(),
            meanwhile: AsyncMutex::new(Some((read_tx, done_rx))),
        })),
        config(false),
    );
    let other = async {
        read_rx.await.expect("the app's push reads the service");
        let other = proxy_push
            .handle(&w.pushed(envoy_push("e-envoy", 1, 'c')))
            .await;
        done_tx.send(()).expect("the app's push waits");
        other
    };

    let app_event = w.pushed(push_event("e-web", 1, Some("main-42"), 'b'));
    let (summary, other) = tokio::join!(app_push.handle(&app_event), other);

    let other = other.unwrap();
    assert_eq!(other.services[0].to.as_deref(), Some("web:2"), "{other:?}");
    let summary = summary.unwrap();

    assert_eq!(summary.outcome, Outcome::Deployed, "{summary:?}");
    let report = &summary.services[0];
    assert_eq!(report.from.as_deref(), Some("web:2"), "{report:?}");
    assert_eq!(report.to.as_deref(), Some("web:3"), "{report:?}");
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('b'))
    );
    assert_eq!(
        running_image(&w, "envoy"),
        format!("{HOST}/envoy@{}", digest('c')),
        "the proxy's push is not undone"
    );
    let moves: Vec<(String, String)> = w
        .store
        .all_history()
        .iter()
        .filter(|r| r.action == Action::Deployed)
        .map(|r| {
            let from = r.from.as_deref().map_or("", revision).to_owned();
            let to = r.to.as_deref().map_or("", revision).to_owned();
            (from, to)
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("web:1".to_owned(), "web:2".to_owned()),
            ("web:2".to_owned(), "web:3".to_owned())
        ]
    );
    assert_eq!(
        w.ecs.calls("RegisterTaskDefinition"),
        2,
        "no revision from a stale base"
    );
}

/// Under its lock the service is read again only when it may have moved since the push read
/// it: when the lock's last holder released it less than the clocks' margin before that read.
#[tokio::test]
async fn the_service_is_read_again_under_its_lock_only_when_it_may_have_moved() {
    let w = world(&[("deckhand:deploy", "any")]);
    let push =
        |id: &str, minute: u32, tag: &str, d: char| w.pushed(push_event(id, minute, Some(tag), d));
    let reads = || w.ecs.calls("DescribeServices");
    // The first push of the repository looks through the fleet; the lock was never released.
    let first = w.function.handle(&push("e1", 1, "main-2", 'b')).await;
    assert_eq!(first.unwrap().outcome, Outcome::Deployed);

    // Ten minutes later the lock was released long before the read: one read.
    w.clock.advance(TimeDelta::minutes(10));
    let before = reads();
    let later = w.function.handle(&push("e2", 2, "main-3", 'c')).await;
    assert_eq!(later.unwrap().outcome, Outcome::Deployed);
    assert_eq!(reads() - before, 1, "read once, through the index");

    // Right after, at the same instant as that release: read again under the lock.
    let before = reads();
    let right_after = w.function.handle(&push("e3", 3, "main-4", 'd')).await;
    let right_after = right_after.unwrap();
    assert_eq!(right_after.outcome, Outcome::Deployed, "{right_after:?}");
    assert_eq!(reads() - before, 2, "read again under the lock");
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('d'))
    );
}
