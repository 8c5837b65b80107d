//! The `deploy` function: ECR pushes move opted-in services onto the pushed image; ECS
//! deployment state changes close the loop.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tracing::{Instrument, error, info, info_span, warn};

use super::Ports;
use crate::config::Config;
use crate::domain::codedeploy::CodeDeployTarget;
use crate::domain::deploy::Push;
use crate::domain::fleet::{Container, ImageChange, ServiceView, TaskDefinitionView};
use crate::domain::pair::Pair;
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::settings::{TagProblem, Tags, dry_run_of};
use crate::domain::state::ServiceState;
use crate::domain::state::WaitingPush;
use crate::events::{DeployEvent, EventError, parse_deploy_event};
use crate::history::{HistoryRecord, ProcessedMark};
use crate::notification::{Kind, Notification, Severity};
use crate::ports::{Locked, PortError};
use crate::report::{Action, ServiceReport, Summary};

/// How many services one invocation works on at once.
const CONCURRENCY: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("bad event: {0}")]
    BadEvent(#[from] EventError),
    /// Nothing was changed: the services concerned could not be found.
    #[error("could not find the services concerned: {0}")]
    Discovery(PortError),
    /// Nothing was changed: ECR could not be asked whether the push is real.
    #[error("could not confirm the push with ECR: {0}")]
    Unconfirmed(PortError),
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
            Self::Unconfirmed(_) => "deckhand.PushUnconfirmed",
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
    /// Whether deckhand registered a revision (retention asks); a revision's tags that say so
    /// are set at registration.
    registered_by_us: Mutex<HashMap<String, bool>>,
    /// The tags of each service as this process last read them: which locks a push takes
    /// ahead (`deploy_ahead`), never what it decides.
    tags: Mutex<HashMap<ServiceKey, Tags>>,
}

fn lock_memo<T>(memo: &Mutex<T>) -> MutexGuard<'_, T> {
    memo.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The service moved from one revision to another.
struct Moved {
    from: String,
    to: String,
    ecs_deployment_id: Option<String>,
}

/// Whether the scan gate stands between a push and its deployment.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Gate<'a> {
    /// No gate configured.
    Off,
    /// A push that would deploy waits for its scans: this wait, with what the manifest told.
    Hold(&'a WaitingPush),
    /// The scans found nothing at or above the gate: deploy as the push would.
    Passed,
}

/// A service that uses the pushed repository, with what deckhand read of it.
#[derive(Clone)]
struct Target {
    /// The service the push moves.
    service: ServiceView,
    /// The revision the new one is cloned from: what the service runs, or, for the idle side
    /// of a pair, what the live side runs.
    task_definition: TaskDefinitionView,
    /// The pair the service is the idle side of, with the live side's tags (whose
    /// `deckhand:deploy` decides) and desired count (which the idle side takes).
    pair: Option<PairTarget>,
    /// The deployment group and AppSpec parts of a `CODE_DEPLOY` service, once resolved.
    codedeploy: Option<CodeDeployTarget>,
    /// No later than when `service` was read from ECS, when known: under the lock, it is read
    /// again only if the service may have moved since (`locking::may_have_moved`).
    read_at: Option<DateTime<Utc>>,
    /// Its deploys are rehearsed (`would-deploy`): its `deckhand:dry-run`, else the stack's.
    rehearsed: bool,
    /// The change calendar whose freeze holds its deploys, once the tags were read.
    calendar: Option<String>,
}

#[derive(Clone)]
struct PairTarget {
    pair: Pair,
    live_tags: Tags,
    live_count: i32,
}

impl DeployFunction {
    /// The service as it runs now, with the revision it runs, for a push held back earlier.
    async fn plain_target(&self, service: ServiceView) -> Result<Target, PortError> {
        let task_definition = self
            .ports
            .ecs
            .describe_task_definition(&service.task_definition)
            .await?;
        Ok(Target::plain(service, task_definition))
    }
}

impl DeployFunction {
    /// Whether the service's deploys are rehearsed: its own `deckhand:dry-run`, else the
    /// stack's. (A tag that does not parse is reported by the push, which then acts on nothing.)
    fn rehearses(&self, tags: &Tags) -> bool {
        dry_run_of(tags)
            .ok()
            .flatten()
            .unwrap_or(self.config.dry_run)
    }
}

impl Target {
    fn plain(service: ServiceView, task_definition: TaskDefinitionView) -> Self {
        Self {
            service,
            task_definition,
            pair: None,
            codedeploy: None,
            read_at: None,
            rehearsed: false,
            calendar: None,
        }
    }

    /// The same, read no earlier than `read_at`.
    fn read(
        service: ServiceView,
        task_definition: TaskDefinitionView,
        read_at: DateTime<Utc>,
    ) -> Self {
        Self {
            read_at: Some(read_at),
            ..Self::plain(service, task_definition)
        }
    }

    /// The tags whose deploy policy decides: the live side's, for a pair.
    fn policy_tags(&self) -> &Tags {
        self.pair
            .as_ref()
            .map_or(&self.service.tags, |p| &p.live_tags)
    }
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
            registered_by_us: Mutex::default(),
            tags: Mutex::default(),
        }
    }

    pub async fn handle(&self, event: &Value) -> Result<Summary, DeployError> {
        if let Some(reason) = self.config.foreign(event) {
            warn!(%reason, "an event of another account or region changes nothing");
            return Ok(Summary::ignored(reason));
        }
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
            DeployEvent::CodeDeploy(event) => {
                let span = info_span!("codedeploy_deployment", event_id = %event.event_id,
                    group = %event.group, deployment_id = %event.deployment_id, state = %event.state);
                self.on_codedeploy_event(&event).instrument(span).await?
            }
            DeployEvent::HookAwaiting(event) => {
                let span = info_span!("hook_awaiting", event_id = %event.event_id, service = %event.service);
                self.on_hook_awaiting(&event).instrument(span).await?
            }
            DeployEvent::KnownGood(known_good) => {
                let span = info_span!("known_good", event_id = %known_good.event_id,
                    upstream = %known_good.service, account = %known_good.account);
                self.on_known_good(&known_good, event)
                    .instrument(span)
                    .await?
            }
            DeployEvent::CalendarChanged(changed) => {
                let span = info_span!("calendar", event_id = %changed.event_id, calendar = %changed.calendar);
                self.on_calendar(&changed).instrument(span).await
            }
            DeployEvent::ReleaseHeld => {
                // The round of the stack's schedule: held pushes that may go (a group free
                // again, a calendar open), and the scan gate's waits that ran out (below).
                let span = info_span!("release_held");
                let reports = self.release_held(None).instrument(span).await;
                Summary::of(reports, || "no push is held".into())
            }
            DeployEvent::Tagged(event) => {
                let span =
                    info_span!("tag_change", event_id = %event.event_id, service = %event.service);
                self.on_tag_change(&event).instrument(span).await?
            }
        };
        // Only this event's own services decide whether it failed (and is retried).
        let failed = summary.failed_services().next().is_some();
        if self.config.require_scan.is_some() {
            // Scan events are best effort: every event also settles the waits that ran out.
            // Housekeeping: what fails here is reported and tried again by the next event or
            // reconcile, never by failing this one.
            let overdue = self.settle_overdue().await;
            if overdue.iter().any(|r| r.action == Action::Error) {
                warn!("some overdue scan waits could not be settled; the next event tries again");
            }
            summary = summary.with(overdue);
        }
        summary.dry_run = self.config.dry_run;
        if failed {
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

    /// Whether the topic took it.
    async fn notify(&self, notification: Notification) -> bool {
        super::publish(&self.ports, notification).await
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

#[path = "deploy_ahead.rs"]
mod ahead;

#[path = "deploy_approval.rs"]
mod approval;

#[path = "deploy_tags.rs"]
mod tags;

#[path = "deploy_codedeploy.rs"]
mod codedeploy_events;

#[path = "deploy_discovery.rs"]
mod discovery;

#[path = "deploy_events.rs"]
mod events;

#[path = "deploy_gate.rs"]
mod gate;

#[path = "deploy_freeze.rs"]
mod freeze;

#[path = "deploy_held.rs"]
mod held;

#[path = "deploy_move.rs"]
mod moving;

#[path = "deploy_pair.rs"]
mod pair;

#[path = "deploy_push.rs"]
mod push;

#[path = "deploy_pushed.rs"]
mod pushed;

#[path = "deploy_promoted.rs"]
mod promoted;

#[path = "deploy_retention.rs"]
mod retention;

#[path = "deploy_wait.rs"]
mod wait;

#[cfg(test)]
#[path = "deploy_tests.rs"]
mod tests;
