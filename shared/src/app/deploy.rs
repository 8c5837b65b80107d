//! The `deploy` function: ECR pushes move opted-in services onto the pushed image; ECS
//! deployment state changes close the loop.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::{FutureExt, StreamExt, stream};
use serde_json::{Value, json};
use tracing::{Instrument, error, info, info_span, warn};

use super::Ports;
use super::locking::{acquire, owner_cause, owner_token};
use crate::config::Config;
use crate::domain::deploy::{
    DeploymentEvent, DeploymentEventDecision, Push, PushDecision, apply_deployment_event,
    choose_containers, decide_deployment_event, decide_push, highest_version, record_push,
    reusable_revision, running_digest, running_tag, start_deployment,
};
use crate::domain::fleet::{Container, ImageChange, ServiceView, TaskDefinitionView};
use crate::domain::image::{Digest, ImageRef};
use crate::domain::policy::Verdict;
use crate::domain::scan::{FindingSeverity, end_wait, waiting_for};
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::settings::{DeploySettings, TAG_DEPLOY, TagProblem};
use crate::domain::state::{Registered, ServiceState};
use crate::events::{DeployEvent, EventError, parse_deploy_event};
use crate::history::{HistoryRecord, ProcessedMark};
use crate::notification::{Kind, Notification, Severity};
use crate::ports::{KnownContainers, Locked, PortError};
use crate::report::{Action, ServiceReport, Summary};

/// How many services one invocation works on at once.
const CONCURRENCY: usize = 8;
/// Up to this many unread task definitions are described at once; beyond, the image index
/// is asked first, which costs one call per 100 services.
const DESCRIBE_DIRECTLY: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("bad event: {0}")]
    BadEvent(#[from] EventError),
    /// Nothing was changed: the services concerned could not be found.
    #[error("could not find the services concerned: {0}")]
    Discovery(PortError),
    /// Some services could not be handled; the others were. A retry of the same event redoes
    /// only the failed ones.
    #[error("{}", .0.failure_message())]
    ServicesFailed(Summary),
}

impl DeployError {
    /// The Lambda error type, for diagnostics and alarms.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::BadEvent(_) => "deckhand.BadEvent",
            Self::Discovery(_) => "deckhand.DiscoveryFailed",
            Self::ServicesFailed(_) => "deckhand.ServicesFailed",
        }
    }
}

pub struct DeployFunction {
    ports: Ports,
    config: Config,
    /// The containers of every revision this process has read: revisions never change, so
    /// warm invocations need not read them again.
    containers: Mutex<HashMap<String, Vec<Container>>>,
}

type ContainersMemo = Mutex<HashMap<String, Vec<Container>>>;

fn lock_memo(memo: &ContainersMemo) -> MutexGuard<'_, HashMap<String, Vec<Container>>> {
    memo.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The service moved from one revision to another.
struct Moved {
    from: String,
    to: String,
    ecs_deployment_id: Option<String>,
}

/// Whether the scan gate stands between a push and its deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    /// No gate configured.
    Off,
    /// A push that would deploy waits for its scan.
    Hold(FindingSeverity),
    /// The digest's scan found nothing at or above the gate: deploy as the push would.
    Passed,
}

/// A service that uses the pushed repository, with what deckhand read of it.
struct Target {
    service: ServiceView,
    task_definition: TaskDefinitionView,
}

#[derive(Default)]
struct Discovered {
    targets: Vec<Target>,
    unreadable: Vec<(ServiceKey, PortError)>,
}

impl DeployFunction {
    pub fn new(ports: Ports, config: Config) -> Self {
        Self {
            ports,
            config,
            containers: Mutex::default(),
        }
    }

    pub async fn handle(&self, event: &Value) -> Result<Summary, DeployError> {
        let mut summary = match parse_deploy_event(event)? {
            DeployEvent::NotForDeckhand(reason) => Summary::ignored(reason),
            DeployEvent::Scan(scan) => {
                let span = info_span!("scan", event_id = %scan.event_id, repository = %scan.repository.name,
                    digest = %scan.digest);
                self.on_scan(&scan).instrument(span).await?
            }
            DeployEvent::Push(push) => {
                let span = info_span!("push", event_id = %push.event_id, repository = %push.repository.name,
                    tag = push.tag.as_deref().unwrap_or(""), digest = %push.digest);
                self.on_push(&push).instrument(span).await?
            }
            DeployEvent::Deployment(event) => {
                let span = info_span!("ecs_deployment", event_id = %event.event_id, service = %event.service,
                    ecs_deployment_id = %event.ecs_deployment_id);
                self.on_deployment_event(&event).instrument(span).await?
            }
        };
        if self.config.require_scan.is_some() {
            // Scan events are best effort: every event also settles the waits that ran out.
            let overdue = self.settle_overdue().await;
            summary = summary.with(overdue);
        }
        summary.dry_run = self.config.dry_run;
        if summary.failed_services().next().is_some() {
            return Err(DeployError::ServicesFailed(summary));
        }
        info!(outcome = ?summary.outcome, services = summary.services.len(), "handled");
        Ok(summary)
    }

    /// Decides the pushes whose wait for their scan ran out, from ECR's findings: what the
    /// scheduler's reconcile does too, so a wait ends even when no event comes.
    pub async fn settle_scan_waits(&self) -> Vec<ServiceReport> {
        self.settle_overdue().await
    }

    async fn on_push(&self, push: &Push) -> Result<Summary, DeployError> {
        let gate = match self.config.require_scan {
            Some(severity) => Gate::Hold(severity),
            None => Gate::Off,
        };
        let done = self
            .ports
            .store
            .processed(&push.event_id)
            .await
            .map_err(DeployError::Discovery)?;
        let Discovered {
            targets,
            unreadable,
        } = self.discover(push).await.map_err(DeployError::Discovery)?;
        let mut reports = Vec::new();
        for (key, e) in unreadable {
            reports.push(self.failed(&key, push, None, e).await);
        }
        if targets.is_empty() && reports.is_empty() {
            return Ok(Summary::ignored(format!(
                "no opted-in service runs an image from {}",
                push.repository.name
            )));
        }
        let handled: Vec<(ServiceKey, ServiceReport)> = stream::iter(targets)
            .map(|target| {
                let key = target.service.key.clone();
                let span = info_span!("service", service = %key);
                self.push_to_service(push, target, &done, gate)
                    .instrument(span)
                    .map(move |r| (key, r))
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let handled = match gate {
            Gate::Hold(severity) => self.decide_if_scanned(push, severity, handled).await,
            Gate::Off | Gate::Passed => handled,
        };
        reports.extend(handled.into_iter().map(|(_, r)| r));
        Ok(Summary::of(reports, || match &push.tag {
            Some(tag) => format!("tag {tag} matches no service's deploy policy"),
            None => "the push has no tag".into(),
        }))
    }

    /// Opted-in services, in the managed clusters, whose task definition has a container from
    /// the pushed repository; and the services whose task definition could not be read, which
    /// may or may not be concerned.
    async fn discover(&self, push: &Push) -> Result<Discovered, PortError> {
        let keys = self.opted_in().await?;
        if keys.is_empty() {
            return Ok(Discovered::default());
        }
        let services: Vec<ServiceView> = self
            .ports
            .ecs
            .describe_services(&keys)
            .await?
            .into_iter()
            .filter(|s| s.tags.contains_key(TAG_DEPLOY))
            .collect();
        let mut described = self.read_containers(&services).await;
        let uses_repository = |containers: &[Container]| {
            containers
                .iter()
                .any(|c| ImageRef::parse(&c.image).is_some_and(|i| i.is_in(&push.repository)))
        };
        let mut found = Discovered::default();
        for service in services {
            let arn = service.task_definition.clone();
            let concerned = match described.get(&arn) {
                Some(Ok(td)) => uses_repository(&td.containers),
                Some(Err(e)) => {
                    found.unreadable.push((service.key, e.clone()));
                    continue;
                }
                None => self
                    .known_containers(&arn)
                    .is_some_and(|c| uses_repository(&c)),
            };
            if !concerned {
                continue;
            }
            // Known from the memo or the index: the clone needs the whole definition.
            if !described.contains_key(&arn) {
                let td = self.ports.ecs.describe_task_definition(&arn).await;
                described.insert(arn.clone(), td);
            }
            match described.get(&arn) {
                Some(Ok(td)) => found.targets.push(Target {
                    task_definition: td.clone(),
                    service,
                }),
                Some(Err(e)) => found.unreadable.push((service.key, e.clone())),
                None => {}
            }
        }
        Ok(found)
    }

    /// The services tagged `deckhand:deploy` in the managed clusters, each once.
    async fn opted_in(&self) -> Result<Vec<ServiceKey>, PortError> {
        Ok(self
            .ports
            .ecs
            .find_services(TAG_DEPLOY)
            .await?
            .iter()
            .filter_map(|arn| ServiceKey::from_arn(arn))
            .filter(|key| self.config.manages_cluster(key.cluster()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    /// What the services' task definitions run. Revisions this process has read are known
    /// from its memo; when more than a few are not, the image index is asked first; the rest
    /// are described (and, when the index was asked, added to it). Returns the full
    /// descriptions of the revisions it described.
    async fn read_containers(
        &self,
        services: &[ServiceView],
    ) -> BTreeMap<String, Result<TaskDefinitionView, PortError>> {
        let unknown: Vec<&ServiceView> = {
            let memo = lock_memo(&self.containers);
            services
                .iter()
                .filter(|s| !memo.contains_key(&s.task_definition))
                .collect()
        };
        let distinct = |list: &[&ServiceView]| {
            list.iter()
                .map(|s| s.task_definition.as_str())
                .collect::<BTreeSet<_>>()
                .len()
        };
        let use_index = distinct(&unknown) > DESCRIBE_DIRECTLY;
        let mut to_describe = unknown;
        if use_index {
            let keys: Vec<ServiceKey> = to_describe.iter().map(|s| s.key.clone()).collect();
            match self.ports.images.containers(&keys).await {
                Ok(indexed) => {
                    let mut memo = lock_memo(&self.containers);
                    to_describe.retain(|s| match indexed.get(&s.key) {
                        Some(known) if known.task_definition == s.task_definition => {
                            memo.insert(known.task_definition.clone(), known.containers.clone());
                            false
                        }
                        _ => true,
                    });
                }
                Err(e) => {
                    warn!(error = %e, "could not read the image index; describing every task definition")
                }
            }
        }
        let arns: BTreeSet<&str> = to_describe
            .iter()
            .map(|s| s.task_definition.as_str())
            .collect();
        let described: BTreeMap<String, Result<TaskDefinitionView, PortError>> = stream::iter(arns)
            .map(|arn| async move {
                let td = self.ports.ecs.describe_task_definition(arn).await;
                (arn.to_owned(), td)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        {
            let mut memo = lock_memo(&self.containers);
            for (arn, td) in &described {
                if let Ok(td) = td {
                    memo.insert(arn.clone(), td.containers.clone());
                }
            }
        }
        if use_index {
            let entries: Vec<(ServiceKey, KnownContainers)> = to_describe
                .iter()
                .filter_map(|s| {
                    let td = described.get(&s.task_definition)?.as_ref().ok()?;
                    Some((
                        s.key.clone(),
                        KnownContainers {
                            task_definition: td.arn.clone(),
                            containers: td.containers.clone(),
                        },
                    ))
                })
                .collect();
            if let Err(e) = self.ports.images.remember(&entries).await {
                warn!(error = %e, "could not add to the image index; the next push describes them again");
            }
        }
        described
    }

    fn known_containers(&self, arn: &str) -> Option<Vec<Container>> {
        lock_memo(&self.containers).get(arn).cloned()
    }

    async fn push_to_service(
        &self,
        push: &Push,
        target: Target,
        done: &BTreeSet<ServiceKey>,
        gate: Gate,
    ) -> ServiceReport {
        let key = target.service.key.clone();
        if done.contains(&key) {
            let reason = "this event was already handled for this service";
            return self.duplicate(&key, &push.event_id, reason, None).await;
        }
        let settings = match DeploySettings::from_tags(&target.service.tags, self.config.guard) {
            Ok(Some(settings)) => settings,
            Ok(None) => return report(&key, Action::Ignored, "the service has not opted in"),
            Err(problems) => return self.invalid(&key, &push.event_id, &problems).await,
        };
        let changes = match choose_containers(
            push,
            &target.task_definition,
            settings.containers.as_deref(),
        ) {
            Ok(changes) if changes.is_empty() => {
                let reason = format!(
                    "no container named in deckhand:containers runs an image from {}",
                    push.repository.name
                );
                return self.ignore(&key, push, reason).await;
            }
            Ok(changes) => changes,
            Err(problem) => return self.invalid(&key, &push.event_id, &[problem]).await,
        };
        let running = if settings.policy.needs_running_version() {
            match self.running_tags(push, &changes).await {
                Ok(tags) => highest_version(tags.iter().map(String::as_str)),
                Err(e) => return self.failed(&key, push, None, e).await,
            }
        } else {
            None
        };
        match settings.policy.check(push.tag.as_deref(), running.as_ref()) {
            Verdict::Skip(reason) => self.ignore(&key, push, reason).await,
            Verdict::Deploy(reason) => {
                self.deploy_locked(push, &target, &changes, reason, gate)
                    .await
            }
        }
    }

    /// Tags of the images the containers run: the tag in the image reference, or the tags ECR
    /// holds for the running digest.
    async fn running_tags(
        &self,
        push: &Push,
        changes: &[ImageChange],
    ) -> Result<Vec<String>, PortError> {
        let mut tags = Vec::new();
        for change in changes {
            if let Some(tag) = running_tag(&change.from) {
                tags.push(tag.to_owned());
            } else if let Some(digest) =
                running_digest(&change.from).and_then(|d| d.parse::<Digest>().ok())
            {
                tags.extend(self.ports.ecr.image_tags(&push.repository, &digest).await?);
            }
        }
        Ok(tags)
    }

    async fn deploy_locked(
        &self,
        push: &Push,
        target: &Target,
        changes: &[ImageChange],
        matched: String,
        gate: Gate,
    ) -> ServiceReport {
        let key = &target.service.key;
        let owner = owner_token(&push.event_id);
        let locked = match acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await {
            Ok(locked) => locked,
            Err(e) => return self.failed(key, push, None, e).await,
        };
        let running = target.task_definition.arn.as_str();
        let mut state = locked.state.clone();
        state.adopt_baseline(running);
        if gate == Gate::Passed && waiting_for(&state, &push.repository, &push.digest).is_some() {
            // Whatever the push decides now, its wait is over.
            end_wait(&mut state, &push.repository);
        }
        let now = self.ports.clock.now();
        let mut record = push_record(key, push, now, Action::Skipped, String::new());
        record.from = Some(running.to_owned());

        match decide_push(push, changes, &locked.state, &target.task_definition) {
            PushDecision::Duplicate => {
                let reason = "this event was already applied to this service";
                self.duplicate(key, &push.event_id, reason, Some(&locked))
                    .await
            }
            PushDecision::Recover { from } => {
                warn!(%from, "an earlier attempt at this push moved the service and stopped before recording it");
                let moved = Moved {
                    from,
                    to: running.to_owned(),
                    ecs_deployment_id: None,
                };
                // The running revision is the new one: the baseline is the one it came from.
                let mut state = locked.state.clone();
                if gate == Gate::Passed {
                    end_wait(&mut state, &push.repository);
                }
                self.record_deployment(push, target, changes, matched, locked, state, moved)
                    .await
            }
            PushDecision::AlreadyRunning { reason } => {
                record_push(&mut state, push);
                record.reason = reason.clone();
                if let Err(e) = self
                    .commit(key, &locked, &state, record, &push.event_id)
                    .await
                {
                    return self.failed(key, push, None, e).await;
                }
                skipped(key, push, reason)
            }
            PushDecision::Skip { reason, notify } => {
                record.reason = reason.clone();
                if let Err(e) = self
                    .commit(key, &locked, &state, record, &push.event_id)
                    .await
                {
                    return self.failed(key, push, None, e).await;
                }
                if notify {
                    self.notify(Notification::new(
                        Kind::DeploySkipped,
                        Severity::Warning,
                        key.to_string(),
                        format!("Not deploying {} to {key}: {reason}", push_name(push)),
                        now,
                        push_details(push, changes, Some(running), None),
                    ))
                    .await;
                }
                skipped(key, push, reason)
            }
            PushDecision::Deploy if matches!(gate, Gate::Hold(_)) => {
                self.hold(push, key, &locked, state, record, gate).await
            }
            PushDecision::Deploy if self.config.dry_run => {
                let reason = format!("dry run: {matched}");
                record.action = Action::WouldDeploy;
                record.reason = reason.clone();
                record.dry_run = true;
                if let Err(e) = self
                    .commit(key, &locked, &state, record, &push.event_id)
                    .await
                {
                    return self.failed(key, push, None, e).await;
                }
                self.notify(Notification::new(
                    Kind::DeploySkipped,
                    Severity::Info,
                    key.to_string(),
                    format!("Dry run: would deploy {} to {key}", push_name(push)),
                    now,
                    push_details(push, changes, Some(running), None),
                ))
                .await;
                let mut r = report(key, Action::WouldDeploy, reason);
                r.from = Some(revision_name(running).to_owned());
                r.digest = Some(push.digest.to_string());
                r
            }
            PushDecision::Deploy => {
                self.deploy(push, target, changes, matched, locked, state)
                    .await
            }
        }
    }

    async fn deploy(
        &self,
        push: &Push,
        target: &Target,
        changes: &[ImageChange],
        matched: String,
        locked: Locked,
        state: ServiceState,
    ) -> ServiceReport {
        let key = &target.service.key;
        let from = target.task_definition.arn.as_str();
        let to = match self.revision_for(push, target, changes, &locked).await {
            Ok(to) => to,
            Err(e) => return self.not_moved(push, key, from, &locked, None, e).await,
        };
        let ecs_deployment_id = match self.ports.ecs.update_service(key, &to).await {
            Ok(id) => id,
            Err(e) => {
                // Keep the revision for the retry of this push, so it registers no other.
                let registered = Registered {
                    event_id: push.event_id.clone(),
                    from: from.to_owned(),
                    task_definition: to,
                };
                return self
                    .not_moved(push, key, from, &locked, Some(registered), e)
                    .await;
            }
        };
        let moved = Moved {
            from: from.to_owned(),
            to,
            ecs_deployment_id,
        };
        self.record_deployment(push, target, changes, matched, locked, state, moved)
            .await
    }

    /// The revision to move the service to: the one an earlier attempt at this push
    /// registered, if it got that far, else a new one.
    async fn revision_for(
        &self,
        push: &Push,
        target: &Target,
        changes: &[ImageChange],
        locked: &Locked,
    ) -> Result<String, PortError> {
        let base = &target.task_definition;
        if let Some(arn) = reusable_revision(&locked.state, push, &base.arn) {
            info!(%arn, "using the revision an earlier attempt registered");
            return Ok(arn.to_owned());
        }
        let interrupted_here = locked
            .interrupted
            .as_deref()
            .is_some_and(|holder| owner_cause(holder) == push.event_id);
        if interrupted_here
            && let Some(arn) = self.ports.ecs.registered_for(base, &push.event_id).await?
        {
            info!(%arn, "using the revision an interrupted attempt registered");
            return Ok(arn);
        }
        self.ports
            .ecs
            .register_revision(base, changes, &push.event_id)
            .await
    }

    /// The service was not moved: give the lock back with the failure on record (and the
    /// revision registered for the retry, if there is one); a retry redoes the rest.
    async fn not_moved(
        &self,
        push: &Push,
        key: &ServiceKey,
        from: &str,
        locked: &Locked,
        registered: Option<Registered>,
        e: PortError,
    ) -> ServiceReport {
        let now = self.ports.clock.now();
        let mut record = push_record(key, push, now, Action::Error, e.to_string());
        record.from = Some(from.to_owned());
        record.to = registered.as_ref().map(|r| r.task_definition.clone());
        let state = ServiceState {
            registered: registered.or_else(|| locked.state.registered.clone()),
            ..locked.state.clone()
        };
        if let Err(commit_error) = self
            .ports
            .store
            .commit(key, locked, &state, &[record], None)
            .await
        {
            warn!(error = %commit_error, "could not record the failure");
        }
        self.failed(key, push, Some(from), e).await
    }

    /// Records a deployment that moved the service: state, history and processed mark in one
    /// commit, then `deploy.started`.
    #[allow(clippy::too_many_arguments)]
    async fn record_deployment(
        &self,
        push: &Push,
        target: &Target,
        changes: &[ImageChange],
        matched: String,
        locked: Locked,
        mut state: ServiceState,
        moved: Moved,
    ) -> ServiceReport {
        let key = &target.service.key;
        let Moved {
            from,
            to,
            ecs_deployment_id,
        } = moved;
        let from = from.as_str();
        let now = self.ports.clock.now();
        start_deployment(
            &mut state,
            push,
            changes,
            from,
            &to,
            ecs_deployment_id.clone(),
            now,
        );
        let asleep = target.service.desired_count == 0;
        if let Some(deployment) = state.deployment.as_mut() {
            deployment.at_zero_tasks = asleep;
        }
        // A sleeping service gets the revision without being woken: its count stays as the
        // scheduler left it, and the wake-up runs the new revision.
        let matched = match &state.sleep {
            Some(_) if asleep => format!("{matched}; the service sleeps and runs it when woken"),
            _ if asleep => format!("{matched}; the service runs no tasks"),
            _ => matched,
        };
        let mut record = push_record(key, push, now, Action::Deployed, matched.clone());
        record.from = Some(from.to_owned());
        record.to = Some(to.clone());
        record.ecs_deployment_id = ecs_deployment_id.clone();
        if let Err(e) = self
            .commit(key, &locked, &state, record, &push.event_id)
            .await
        {
            // ECS has the new revision; the record of it is not written. A redelivery finds
            // the service on the revision registered for this push and records it then.
            error!(error = %e, to = %to, "deployed but could not record the deployment");
            return self.failed(key, push, Some(from), e).await;
        }
        info!(from = %revision_name(from), to = %revision_name(&to), "deployed");
        self.notify(Notification::new(
            Kind::DeployStarted,
            Severity::Info,
            key.to_string(),
            format!(
                "Deploying {} to {key}: {} -> {}",
                push_name(push),
                revision_name(from),
                revision_name(&to)
            ),
            now,
            push_details(push, changes, Some(from), Some(&to)),
        ))
        .await;
        ServiceReport {
            service: key.to_string(),
            action: Action::Deployed,
            from: Some(revision_name(from).to_owned()),
            to: Some(revision_name(&to).to_owned()),
            digest: Some(push.digest.to_string()),
            reason: matched,
        }
    }

    async fn on_deployment_event(&self, event: &DeploymentEvent) -> Result<Summary, DeployError> {
        let key = &event.service;
        if !self.config.manages_cluster(key.cluster()) {
            return Ok(Summary::ignored(format!(
                "cluster {} is not managed by deckhand",
                key.cluster()
            )));
        }
        let done = self
            .ports
            .store
            .processed(&event.event_id)
            .await
            .map_err(DeployError::Discovery)?;
        if done.contains(key) {
            let reason = "this event was already handled";
            let report = self.duplicate(key, &event.event_id, reason, None).await;
            return Ok(Summary::of(vec![report], String::new));
        }
        let services = self
            .ports
            .ecs
            .describe_services(std::slice::from_ref(key))
            .await
            .map_err(DeployError::Discovery)?;
        let Some(service) = services.into_iter().next() else {
            return Ok(Summary::ignored(format!("service {key} does not exist")));
        };
        if !service.tags.contains_key(TAG_DEPLOY) {
            return Ok(Summary::ignored(format!(
                "{key} has not opted in to deckhand deploys"
            )));
        }
        // A tag problem is reported by pushes; the deployment is still recorded, with the
        // default guard, and no revision is deregistered.
        let settings = DeploySettings::from_tags(&service.tags, self.config.guard)
            .ok()
            .flatten();
        let guard = settings.as_ref().map_or(self.config.guard, |s| s.guard);
        let keep = settings.and_then(|s| s.keep_revisions);
        let report = self
            .deployment_event_locked(event, &service, guard, keep)
            .await;
        Ok(Summary::of(vec![report], || {
            "not deckhand's deployment".into()
        }))
    }

    async fn deployment_event_locked(
        &self,
        event: &DeploymentEvent,
        service: &ServiceView,
        guard: chrono::TimeDelta,
        keep_revisions: Option<usize>,
    ) -> ServiceReport {
        let key = &service.key;
        let owner = owner_token(&event.event_id);
        let locked = match acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await {
            Ok(locked) => locked,
            Err(e) => return report(key, Action::Error, e.to_string()),
        };
        let decision = decide_deployment_event(event, &locked.state, service, guard);
        let mut state = locked.state.clone();
        apply_deployment_event(&mut state, event, &decision);
        let now = self.ports.clock.now();
        let deployment = locked.state.deployment.as_ref();
        let (action, reason, notification) = match &decision {
            DeploymentEventDecision::Duplicate(reason) => {
                return self
                    .duplicate(key, &event.event_id, reason, Some(&locked))
                    .await;
            }
            DeploymentEventDecision::NotOurs(reason) => (Action::Ignored, reason.clone(), None),
            DeploymentEventDecision::InProgress => (
                Action::Recorded,
                format!("ECS deployment {} is in progress", event.ecs_deployment_id),
                None,
            ),
            DeploymentEventDecision::Completed { guard_until } => {
                let to = deployment.map_or("", |d| revision_name(&d.to));
                let reason = format!(
                    "ECS completed the deployment of {to}; it becomes known-good at {} unless an alarm rolls it back",
                    guard_until.to_rfc3339_opts(SecondsFormat::Secs, true)
                );
                (
                    Action::Completed,
                    reason.clone(),
                    Some((Kind::DeployCompleted, Severity::Info, reason)),
                )
            }
            DeploymentEventDecision::Failed { reason } => {
                let (to, digest) =
                    deployment.map_or(("", ""), |d| (revision_name(&d.to), d.digest.short()));
                let text = format!(
                    "ECS deployment of {to} failed ({reason}); digest {digest} is quarantined for this service"
                );
                (
                    Action::Failed,
                    text.clone(),
                    Some((Kind::DeployFailed, Severity::Error, text)),
                )
            }
        };
        let mut record = HistoryRecord::new(key, now, action, reason.clone(), &event.event_id);
        record.ecs_deployment_id = Some(event.ecs_deployment_id.clone());
        if let Some(d) = deployment.filter(|_| action != Action::Ignored) {
            record.repository = Some(d.repository.clone());
            record.digest = Some(d.digest.to_string());
            record.tag = d.tag.clone();
            record.from = Some(d.from.clone());
            record.to = Some(d.to.clone());
        }
        if let Err(e) = self
            .commit(key, &locked, &state, record, &event.event_id)
            .await
        {
            return report(key, Action::Error, e.to_string());
        }
        if let Some((kind, severity, summary)) = notification {
            let details = deployment.map_or(Value::Null, |d| {
                json!({
                    "ecsDeploymentId": event.ecs_deployment_id,
                    "repository": d.repository,
                    "tag": d.tag,
                    "digest": d.digest,
                    "from": revision_name(&d.from),
                    "to": revision_name(&d.to),
                    "guardUntil": state.deployment.as_ref().and_then(|d| d.guard_until).map(rfc3339),
                })
            });
            self.notify(Notification::new(
                kind,
                severity,
                key.to_string(),
                summary,
                now,
                details,
            ))
            .await;
        }
        let retired = match (&decision, keep_revisions) {
            (DeploymentEventDecision::Completed { .. }, Some(keep)) if !self.config.dry_run => {
                self.retire_revisions(service, &state, keep, &event.event_id)
                    .await
            }
            _ => None,
        };
        let reason = match retired {
            Some(retired) => format!("{reason}; {retired}"),
            None => reason,
        };
        let mut r = report(key, action, reason);
        if action != Action::Ignored {
            r.from = deployment.map(|d| revision_name(&d.from).to_owned());
            r.to = deployment.map(|d| revision_name(&d.to).to_owned());
            r.digest = deployment.map(|d| d.digest.to_string());
        }
        r
    }

    async fn commit(
        &self,
        key: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
        record: HistoryRecord,
        event_id: &str,
    ) -> Result<(), PortError> {
        let mark = ProcessedMark {
            event_id: event_id.to_owned(),
            service: key.clone(),
            at: record.at,
        };
        self.ports
            .store
            .commit(
                key,
                locked,
                state,
                std::slice::from_ref(&record),
                Some(&mark),
            )
            .await
    }

    /// A repeated delivery: recorded as such (the original decision stays the only one of its
    /// kind), the lock given back, nothing else changed.
    async fn duplicate(
        &self,
        key: &ServiceKey,
        cause: &str,
        reason: &str,
        locked: Option<&Locked>,
    ) -> ServiceReport {
        let record = HistoryRecord::new(
            key,
            self.ports.clock.now(),
            Action::Duplicate,
            reason,
            cause,
        );
        let written = match locked {
            Some(locked) => {
                let store = &self.ports.store;
                store
                    .commit(key, locked, &locked.state, &[record], None)
                    .await
            }
            None => self.ports.store.record(&[record], None).await,
        };
        if let Err(e) = written {
            warn!(error = %e, "could not record a repeated delivery");
            if let Some(locked) = locked
                && let Err(e) = self.ports.store.release(key, &locked.owner).await
            {
                warn!(error = %e, "could not release the lock; it expires with its lease");
            }
        }
        report(key, Action::Duplicate, reason)
    }

    /// A push the service's policy does not take: recorded, not notified.
    async fn ignore(&self, key: &ServiceKey, push: &Push, reason: String) -> ServiceReport {
        let now = self.ports.clock.now();
        let record = push_record(key, push, now, Action::Ignored, reason.clone());
        let mark = ProcessedMark {
            event_id: push.event_id.clone(),
            service: key.clone(),
            at: now,
        };
        if let Err(e) = self.ports.store.record(&[record], Some(&mark)).await {
            return report(key, Action::Error, e.to_string());
        }
        report(key, Action::Ignored, reason)
    }

    async fn invalid(
        &self,
        key: &ServiceKey,
        cause: &str,
        problems: &[TagProblem],
    ) -> ServiceReport {
        let now = self.ports.clock.now();
        let reason = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        warn!(%reason, "invalid deckhand tags");
        let record = HistoryRecord::new(key, now, Action::Invalid, reason.clone(), cause);
        let mark = ProcessedMark {
            event_id: cause.to_owned(),
            service: key.clone(),
            at: now,
        };
        if let Err(e) = self.ports.store.record(&[record], Some(&mark)).await {
            return report(key, Action::Error, e.to_string());
        }
        let details = json!({
            "problems": problems.iter().map(|p| json!({"tag": p.tag, "value": p.value, "message": p.message})).collect::<Vec<_>>(),
        });
        self.notify(Notification::new(
            Kind::ConfigInvalid,
            Severity::Warning,
            key.to_string(),
            format!("deckhand tags on {key} do not parse, so deckhand leaves it alone: {reason}"),
            now,
            details,
        ))
        .await;
        report(key, Action::Invalid, reason)
    }

    async fn failed(
        &self,
        key: &ServiceKey,
        push: &Push,
        from: Option<&str>,
        e: PortError,
    ) -> ServiceReport {
        error!(error = %e, "deploy failed");
        let now = self.ports.clock.now();
        let mut details = push_details(push, &[], from, None);
        details["error"] = json!(e.to_string());
        self.notify(Notification::new(
            Kind::Error,
            Severity::Error,
            key.to_string(),
            format!(
                "Deploying {} to {key} failed and will be retried: {e}",
                push_name(push)
            ),
            now,
            details,
        ))
        .await;
        report(key, Action::Error, e.to_string())
    }

    async fn notify(&self, notification: Notification) {
        super::publish(&*self.ports.notifier, notification).await;
    }
}

fn report(key: &ServiceKey, action: Action, reason: impl Into<String>) -> ServiceReport {
    ServiceReport::new(key, action, reason)
}

fn skipped(key: &ServiceKey, push: &Push, reason: String) -> ServiceReport {
    let mut r = report(key, Action::Skipped, reason);
    r.digest = Some(push.digest.to_string());
    r
}

fn push_record(
    key: &ServiceKey,
    push: &Push,
    at: DateTime<Utc>,
    action: Action,
    reason: String,
) -> HistoryRecord {
    let mut record = HistoryRecord::new(key, at, action, reason, &push.event_id);
    record.repository = Some(push.repository.name.clone());
    record.digest = Some(push.digest.to_string());
    record.tag = push.tag.clone();
    record
}

/// `REPO:TAG` or `REPO@sha256:abbreviated`, how people name a pushed image.
fn push_name(push: &Push) -> String {
    match &push.tag {
        Some(tag) => format!("{}:{tag}", push.repository.name),
        None => format!("{}@{}", push.repository.name, push.digest.short()),
    }
}

/// Names, revisions, digests and tags only: never anything else from a task definition.
fn push_details(
    push: &Push,
    changes: &[ImageChange],
    from: Option<&str>,
    to: Option<&str>,
) -> Value {
    json!({
        "eventId": push.event_id,
        "repository": push.repository.name,
        "tag": push.tag,
        "digest": push.digest,
        "pushedAt": rfc3339(push.at),
        "containers": changes.iter().map(|c| c.container.as_str()).collect::<Vec<_>>(),
        "from": from.map(revision_name),
        "to": to.map(revision_name),
    })
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[path = "deploy_gate.rs"]
mod gate;

#[path = "deploy_retention.rs"]
mod retention;

#[cfg(test)]
#[path = "deploy_tests.rs"]
mod tests;
