//! The `rollback` function: a CloudWatch alarm that goes into ALARM inside the guard window
//! after a deckhand deployment rolls the service back to its last known-good revision and
//! quarantines the bad digest.

use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, stream};
use serde_json::{Value, json};
use tracing::{Instrument, error, info, info_span, warn};

use super::Ports;
use crate::config::Config;
use crate::domain::fleet::ServiceView;
use crate::domain::rollback::{Alarm, Guard, RollbackSettings, scaling_alarm};
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::settings::TagProblem;
use crate::domain::state::ServiceState;
use crate::domain::strategy::{RollbackPath, RollbackRoute};
use crate::events::EventError;
use crate::events::alarm::parse_alarm_event;
use crate::history::{HistoryRecord, ProcessedMark};
use crate::notification::{Kind, Notification, Severity};
use crate::ports::{Locked, PortError, PortErrorKind, TaggedService};
use crate::report::{Action, ServiceReport, Summary};

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("bad event: {0}")]
    BadEvent(#[from] EventError),
    /// Nothing was changed: the services the alarm guards could not be found.
    #[error("could not find the services the alarm guards: {0}")]
    Discovery(PortError),
    /// Some services could not be handled; the others were. A retry of the same event redoes
    /// only the failed ones.
    #[error("{}", .0.failure_message())]
    ServicesFailed(Summary),
    /// An operator's request that cannot be carried out; nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// A source of the alarm-to-service mapping failed in a way a retry may fix (throttled,
    /// unavailable); the services the others found were handled.
    #[error("{}", .0.problems.join("; "))]
    MappingFailed(Summary),
    /// A rollback waits for a CodeDeploy deployment deckhand did not start: nothing changed,
    /// and a later delivery of the alarm tries again while that is still useful.
    #[error("{}", waiting_message(.0))]
    Waiting(Summary),
}

impl RollbackError {
    /// The Lambda error type, for diagnostics and alarms.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::BadEvent(_) => "deckhand.BadEvent",
            Self::Discovery(_) => "deckhand.DiscoveryFailed",
            Self::ServicesFailed(_) => "deckhand.ServicesFailed",
            Self::Refused(_) => "deckhand.Refused",
            Self::MappingFailed(_) => "deckhand.MappingFailed",
            Self::Waiting(_) => "deckhand.RollbackWaiting",
        }
    }
}

/// One service's handling of one alarm, under the service's lock.
struct Case<'a> {
    key: &'a ServiceKey,
    alarm: &'a Alarm,
    locked: &'a Locked,
    /// Why the alarm guards the service, in words.
    guard: &'static str,
    /// Rehearsed (`would-roll-back`): the service's `deckhand:dry-run`, else the stack's.
    dry_run: bool,
}

/// The services named by tag: the alarm's `deckhand:service`, and the services with a
/// `deckhand:alarms` list (whether it names the alarm is read from the values).
struct NamedByTags {
    alarm_tag: Option<ServiceKey>,
    listed: Vec<TaggedService>,
    problems: Vec<MappingProblem>,
}

/// The services an alarm guards, the ones whose tags do not parse, and the sources of the
/// mapping that could not be read.
struct Mapping {
    guarded: Vec<Guarded>,
    invalid: Vec<(ServiceKey, TagProblem)>,
    problems: Vec<MappingProblem>,
}

/// Where deckhand looks to find the services an alarm guards, for the ones that can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MappingSource {
    /// The alarm's own `deckhand:service` tag (CloudWatch `ListTagsForResource`).
    AlarmTags,
    /// The services that carry `deckhand:alarms` (Resource Groups Tagging `GetResources`).
    ServiceAlarmTags,
    /// The alarm's actions, which tell a step scaling alarm (CloudWatch `DescribeAlarms`).
    AlarmActions,
}

impl MappingSource {
    fn describe(self) -> &'static str {
        match self {
            Self::AlarmTags => "the alarm's deckhand:service tag (ListTagsForResource)",
            Self::ServiceAlarmTags => "the services' deckhand:alarms tags (GetResources)",
            Self::AlarmActions => {
                "the alarm's actions (DescribeAlarms), which tell a step scaling alarm, so its metric alone rolled nothing back"
            }
        }
    }
}

struct MappingProblem {
    source: MappingSource,
    error: PortError,
}

impl MappingProblem {
    fn describe(&self) -> String {
        format!(
            "could not read {}: {}",
            self.source.describe(),
            self.error.message
        )
    }
}

fn guards_nothing(alarm: &Alarm, failed_sources: usize) -> String {
    let composite = if alarm.rule.is_some() {
        " (a composite alarm names no metric: tag it deckhand:service or list it in a service's deckhand:alarms)"
    } else {
        ""
    };
    let scaling = match scaling_alarm(alarm) {
        Some(why) if !alarm.metric_services().is_empty() => format!(
            " ({why}: it goes into ALARM whenever the service scales, so its metric alone never \
             rolls back; list it in the service's deckhand:alarms to make it count)"
        ),
        _ => String::new(),
    };
    match failed_sources {
        0 => format!(
            "alarm {} guards no service that deckhand manages{composite}{scaling}",
            alarm.name
        ),
        n => format!(
            "alarm {} guards no service that deckhand could find; {n} source(s) of the mapping could not be read{composite}{scaling}",
            alarm.name
        ),
    }
}

/// A service the alarm guards, as described.
struct Guarded {
    service: ServiceView,
    settings: RollbackSettings,
    guard: Guard,
    /// Its lock, when it was taken beside the read (a service named by tag).
    locked: Option<Locked>,
}

pub struct RollbackFunction {
    ports: Ports,
    config: Config,
}

impl RollbackFunction {
    pub fn new(ports: Ports, config: Config) -> Self {
        Self { ports, config }
    }

    pub async fn handle(&self, event: &Value) -> Result<Summary, RollbackError> {
        if let Some(reason) = self.config.foreign(event) {
            warn!(%reason, "an alarm of another account or region changes nothing");
            return Ok(Summary::ignored(reason));
        }
        let alarm = parse_alarm_event(event)?;
        let span = info_span!("alarm", alarm = %alarm.name, state = alarm.state.as_str(), event_id = %alarm.event_id);
        let mut summary = self.on_alarm(&alarm).instrument(span).await?;
        summary.dry_run = self.config.dry_run;
        if summary.failed_services().next().is_some() {
            return Err(RollbackError::ServicesFailed(summary));
        }
        if summary.services.iter().any(|s| s.action == Action::Waiting) {
            return Err(RollbackError::Waiting(summary));
        }
        info!(outcome = ?summary.outcome, services = summary.services.len(), "handled");
        Ok(summary)
    }

    async fn on_alarm(&self, alarm: &Alarm) -> Result<Summary, RollbackError> {
        if !alarm.fired() {
            let from = alarm
                .previous
                .map_or(String::new(), |p| format!(" from {}", p.as_str()));
            return Ok(Summary::ignored(format!(
                "alarm {} went to {}{from}: only a transition into ALARM acts",
                alarm.name,
                alarm.state.as_str()
            )));
        }
        // Independent reads, side by side: the processed marks, the alarm's actions, and the
        // two sources that name services by tag.
        let (done, (alarm, actions_problem), named) = futures::join!(
            self.ports.store.processed(&alarm.event_id),
            self.with_actions(alarm),
            self.named_by_tags(alarm)
        );
        let alarm = &alarm;
        let done = done.map_err(RollbackError::Discovery)?;
        let Mapping {
            guarded,
            invalid,
            mut problems,
        } = self
            .guarded(alarm, named, &done)
            .await
            .map_err(RollbackError::Discovery)?;
        problems.extend(actions_problem);
        let mut reports = Vec::new();
        for (key, problem) in invalid {
            reports.push(self.invalid(&key, alarm, &problem).await);
        }
        let reached: Vec<ServiceKey> = guarded.iter().map(|g| g.service.key.clone()).collect();
        let handled: Vec<ServiceReport> = stream::iter(guarded)
            .map(|g| {
                let span = info_span!("service", service = %g.service.key, guard = ?g.guard);
                self.roll_back(alarm, g, &done).instrument(span)
            })
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;
        reports.extend(handled);
        let mut summary = if reports.is_empty() {
            Summary::ignored(guards_nothing(alarm, problems.len()))
        } else {
            Summary::of(reports, || {
                format!("alarm {} guards no service", alarm.name)
            })
        };
        for problem in &problems {
            self.mapping_failed(alarm, problem, &reached).await;
        }
        summary.problems = problems.iter().map(MappingProblem::describe).collect();
        // A source that may answer later is worth a retry: the services already handled are
        // recognised as such, the others get their turn.
        if problems
            .iter()
            .any(|p| p.error.kind == PortErrorKind::Transient)
        {
            return Err(RollbackError::MappingFailed(summary));
        }
        Ok(summary)
    }

    async fn skip(&self, case: &Case<'_>, state: &ServiceState, reason: String) -> ServiceReport {
        let revisions = case
            .locked
            .state
            .deployment
            .as_ref()
            .map(|d| (d.from.clone(), d.to.clone()))
            .unwrap_or_default();
        self.skip_with(
            case,
            state,
            reason,
            Action::Skipped,
            (&revisions.0, &revisions.1),
        )
        .await
    }

    /// The alarm fired and nothing was rolled back: recorded with `state` (what the alarm
    /// says about the deployments), and notified with the reason.
    async fn skip_with(
        &self,
        case: &Case<'_>,
        state: &ServiceState,
        reason: String,
        action: Action,
        revisions: (&str, &str),
    ) -> ServiceReport {
        let Case {
            key,
            alarm,
            locked,
            guard,
            ..
        } = *case;
        let now = self.ports.clock.now();
        let mut record = self.record(key, alarm, now, action, &reason, revisions);
        record.dry_run = case.dry_run;
        if let Err(e) = self.commit(key, alarm, locked, state, record).await {
            return self.failed(key, alarm, e).await;
        }
        let summary = match action {
            Action::WouldRollBack => format!(
                "Dry run: alarm {} would roll back {key}: {reason}",
                alarm.name
            ),
            _ => format!(
                "Alarm {} fired for {key}; not rolling back: {reason}",
                alarm.name
            ),
        };
        self.notify(Notification::new(
            Kind::RollbackSkipped,
            Severity::Warning,
            key.to_string(),
            summary,
            now,
            details(alarm, revisions, None, &reason, guard),
        ))
        .await;
        let mut report = ServiceReport::new(key, action, reason);
        if action == Action::WouldRollBack {
            report.from = Some(revision_name(revisions.0).to_owned());
            report.to = Some(revision_name(revisions.1).to_owned());
        }
        report
    }

    fn record(
        &self,
        key: &ServiceKey,
        alarm: &Alarm,
        at: DateTime<Utc>,
        action: Action,
        reason: &str,
        (from, to): (&str, &str),
    ) -> HistoryRecord {
        let mut record = HistoryRecord::new(key, at, action, reason, &alarm.event_id);
        record.alarm_at = Some(alarm.at);
        record.from = Some(from.to_owned()).filter(|f| !f.is_empty());
        record.to = Some(to.to_owned()).filter(|t| !t.is_empty());
        record
    }

    async fn release(&self, key: &ServiceKey, locked: &Locked) {
        if let Err(e) = self.ports.store.release(key, &locked.owner).await {
            warn!(error = %e, "could not release the lock; it expires with its lease");
        }
    }

    async fn commit(
        &self,
        key: &ServiceKey,
        alarm: &Alarm,
        locked: &Locked,
        state: &ServiceState,
        record: HistoryRecord,
    ) -> Result<(), PortError> {
        let mark = ProcessedMark {
            event_id: alarm.event_id.clone(),
            service: key.clone(),
            at: record.at,
        };
        self.ports
            .store
            .commit(key, locked, state, &[record], Some(&mark))
            .await
    }

    async fn invalid(
        &self,
        key: &ServiceKey,
        alarm: &Alarm,
        problem: &TagProblem,
    ) -> ServiceReport {
        let now = self.ports.clock.now();
        let reason = problem.to_string();
        let record = HistoryRecord::new(key, now, Action::Invalid, reason.clone(), &alarm.event_id);
        if let Err(e) = self.ports.store.record(&[record], None).await {
            warn!(error = %e, "could not record the tag problem");
        }
        self.notify(Notification::new(
            Kind::ConfigInvalid,
            Severity::Warning,
            key.to_string(),
            format!(
                "Alarm {} fired, but the deckhand tags on {key} do not parse, so nothing is rolled back: {reason}",
                alarm.name
            ),
            now,
            json!({"alarm": alarm.name, "problems": [{"tag": problem.tag, "value": problem.value, "message": problem.message}]}),
        ))
        .await;
        ServiceReport::new(key, Action::Invalid, reason)
    }

    async fn failed_under_lock(
        &self,
        key: &ServiceKey,
        alarm: &Alarm,
        locked: &Locked,
        e: PortError,
    ) -> ServiceReport {
        let record = HistoryRecord::new(
            key,
            self.ports.clock.now(),
            Action::Error,
            e.to_string(),
            &alarm.event_id,
        );
        if let Err(commit_error) = self
            .ports
            .store
            .commit(key, locked, &locked.state, &[record], None)
            .await
        {
            warn!(error = %commit_error, "could not record the failure; the lock expires with its lease");
        }
        self.failed(key, alarm, e).await
    }

    async fn failed(&self, key: &ServiceKey, alarm: &Alarm, e: PortError) -> ServiceReport {
        error!(error = %e, "rollback failed");
        self.notify(Notification::new(
            Kind::Error,
            Severity::Error,
            key.to_string(),
            format!(
                "Handling alarm {} for {key} failed and will be retried: {e}",
                alarm.name
            ),
            self.ports.clock.now(),
            json!({"alarm": alarm.name, "error": e.to_string()}),
        ))
        .await;
        ServiceReport::new(key, Action::Error, e.to_string())
    }

    /// Whether the topic took it.
    async fn notify(&self, notification: Notification) -> bool {
        super::publish(&self.ports, notification).await
    }
}

/// Names, revisions and digests only.
fn details(
    alarm: &Alarm,
    (from, to): (&str, &str),
    digest: Option<String>,
    reason: &str,
    guard: &str,
) -> Value {
    json!({
        "alarm": alarm.name,
        "alarmArn": alarm.arn,
        "alarmState": alarm.state.as_str(),
        "alarmAt": alarm.at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "alarmReason": alarm.reason,
        "guardedBecause": guard,
        "from": (!from.is_empty()).then(|| revision_name(from)),
        "to": (!to.is_empty()).then(|| revision_name(to)),
        "digest": digest,
        "reason": reason,
    })
}

/// The strategy of the service and the call that moved it back.
/// `web` of `arn:...:task-definition/web:42`.
fn family(arn: &str) -> &str {
    let name = revision_name(arn);
    name.rsplit_once(':').map_or(name, |(family, _)| family)
}

/// How the service went back; none when it already ran the target (a lost record finished).
fn with_route(mut details: Value, route: Option<&RollbackRoute>) -> Value {
    let Some(route) = route else {
        details["rolledBackBy"] = json!("already done");
        return details;
    };
    details["strategy"] = json!(route.strategy.as_str());
    details["rolledBackBy"] = json!(route.call());
    match &route.path {
        RollbackPath::StopServiceDeployment {
            service_deployment_arn,
        } => details["serviceDeployment"] = json!(service_deployment_arn),
        RollbackPath::StopCodeDeployDeployment { deployment_id }
        | RollbackPath::StopOtherCodeDeployDeployment { deployment_id } => {
            details["codeDeployDeployment"] = json!(deployment_id);
        }
        RollbackPath::Redeploy | RollbackPath::CodeDeployRedeploy => {}
    }
    details
}

#[path = "rollback_manual.rs"]
mod manual;

#[path = "rollback_mapping.rs"]
mod mapping;

#[path = "rollback_service.rs"]
mod service;

#[path = "rollback_blocked.rs"]
mod blocked;
use blocked::{Blocked, waiting_message};

#[path = "rollback_strategy.rs"]
mod strategy;
use strategy::Rolled;

#[path = "rollback_pair.rs"]
mod pair;

#[path = "rollback_target.rs"]
mod target;

#[path = "rollback_restore.rs"]
mod restore;
use target::Prepared;

/// The revision a rollback deploys and its reason: the target, or its clone pinned to the
/// digests it ran, which then stands for it as the known-good revision.
fn pinned(
    state: &mut ServiceState,
    prepared: Option<Prepared>,
    reason: String,
    to: String,
) -> (String, String, Option<Vec<String>>) {
    let Some(prepared) = prepared else {
        return (reason, to, None);
    };
    let reason = match prepared.words(&to) {
        Some(words) => format!("{reason}; {words}"),
        None => reason,
    };
    let Prepared::Ready { deploy, images, .. } = prepared else {
        return (reason, to, None);
    };
    if state.known_good.as_deref() == Some(to.as_str()) {
        state.known_good = Some(deploy.clone());
    }
    (reason, deploy, images)
}

#[cfg(test)]
#[path = "rollback_tests.rs"]
mod tests;
