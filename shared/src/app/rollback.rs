//! The `rollback` function: a CloudWatch alarm that goes into ALARM inside the guard window
//! after a deckhand deployment rolls the service back to its last known-good revision and
//! quarantines the bad digest.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, stream};
use serde_json::{Value, json};
use tracing::{Instrument, error, info, info_span, warn};

use super::Ports;
use super::locking::{acquire, owner_token};
use crate::config::Config;
use crate::domain::codedeploy::running_revision;
use crate::domain::fleet::ServiceView;
use crate::domain::rollback::{
    ALARM_TAG_SERVICE, Alarm, Guard, RollbackDecision, RollbackSettings, apply_rollback,
    decide_manual_rollback, decide_rollback, excused, guard_of, lists_alarm, scaling_alarm,
};
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::settings::{TAG_ALARMS, TagProblem};
use crate::domain::state::ServiceState;
use crate::domain::strategy::DeploymentController;
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
}

/// The services an alarm guards, the ones whose tags do not parse, and the sources of the
/// mapping that could not be read.
/// The services named by tag: the alarm's `deckhand:service`, and the services with a
/// `deckhand:alarms` list (whether it names the alarm is read from the values).
struct NamedByTags {
    alarm_tag: Option<ServiceKey>,
    listed: Vec<TaggedService>,
    problems: Vec<MappingProblem>,
}

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

    /// An operator's rollback, through the same path as an alarm's (lock, quarantine, history,
    /// notification): to `to` (`family:revision` or an ARN) or else the known-good revision.
    pub async fn manual(
        &self,
        key: &ServiceKey,
        to: Option<&str>,
        by: &str,
    ) -> Result<Summary, RollbackError> {
        let now = self.ports.clock.now();
        let services = self
            .ports
            .ecs
            .describe_services(std::slice::from_ref(key))
            .await
            .map_err(RollbackError::Discovery)?;
        let Some(service) = services.into_iter().next() else {
            return Err(RollbackError::Refused(format!("{key} does not exist")));
        };
        if service.controller == DeploymentController::External {
            return Err(RollbackError::Refused(format!(
                "{key} uses the EXTERNAL deployment controller: its task sets belong to another tool"
            )));
        }
        let alarm = Alarm {
            event_id: format!(
                "rollback#{by}@{}",
                now.to_rfc3339_opts(SecondsFormat::Millis, true)
            ),
            name: format!("manual rollback by {by}"),
            arn: None,
            state: crate::domain::rollback::AlarmState::Alarm,
            previous: None,
            reason: "requested by an operator".into(),
            at: now,
            dimensions: Vec::new(),
            rule: None,
            description: None,
            actions: None,
        };
        // A side of a pair goes back by its traffic, never by a revision.
        if let Some(holder) = self
            .pair_holder(key, &service.tags)
            .await
            .map_err(RollbackError::Discovery)?
        {
            if to.is_some() {
                return Err(RollbackError::Refused(format!(
                    "{key} is a side of a pair: it is rolled back by its traffic, without --to"
                )));
            }
            return self.manual_pair(&holder, &alarm).await;
        }
        // An unknown revision is refused before anything is locked or written.
        let requested = match to {
            None => None,
            Some(to) => match self.ports.ecs.describe_task_definition(to).await {
                // Only what the service could have run: another family is another
                // application's task definition, with its roles and secrets.
                Ok(td) if family(&td.arn) != family(&service.task_definition) => {
                    return Err(RollbackError::Refused(format!(
                        "{} is not a revision of {key}'s family {}: a rollback goes back to what the service ran",
                        revision_name(&td.arn),
                        family(&service.task_definition)
                    )));
                }
                Ok(td) => Some(td.arn),
                Err(e)
                    if e.kind == PortErrorKind::NotFound
                        || e.message.contains("ClientException") =>
                {
                    return Err(RollbackError::Refused(format!(
                        "{to} is not a task definition revision ECS knows"
                    )));
                }
                Err(e) => return Err(RollbackError::Discovery(e)),
            },
        };
        let owner = owner_token(&alarm.event_id);
        let locked = acquire(&*self.ports.store, &*self.ports.clock, key, &owner)
            .await
            .map_err(RollbackError::Discovery)?;
        // During a CodeDeploy deployment the service runs deckhand's revision in a task set.
        let deployed = locked.state.deployment.as_ref().map(|d| d.to.as_str());
        let running = running_revision(&service, deployed);
        let requested = requested.as_deref();
        let mut decision = decide_manual_rollback(&locked.state, now, running, requested, None);
        let mut prepared = None;
        if let RollbackDecision::RollBack { from, to, .. } = &decision {
            let ready = self.prepare_target(key, (from, to), &locked.state, &alarm.event_id);
            match ready.await {
                Ok(Prepared::Ready {
                    quarantined: Some(digest),
                    ..
                }) => {
                    decision = decide_manual_rollback(
                        &locked.state,
                        now,
                        running,
                        requested,
                        Some(&digest),
                    );
                }
                Ok(Prepared::Unknown(why)) => decision = RollbackDecision::Skip(why),
                Ok(ready) => prepared = Some(ready),
                Err(e) => {
                    let report = self.failed_under_lock(key, &alarm, &locked, e).await;
                    return Err(RollbackError::ServicesFailed(Summary::of(
                        vec![report],
                        String::new,
                    )));
                }
            }
        }
        let case = Case {
            key,
            alarm: &alarm,
            locked: &locked,
            guard: "requested by an operator",
        };
        let report = match decision {
            RollbackDecision::Skip(reason) => self.skip(&case, &locked.state, reason).await,
            RollbackDecision::Finish { from, to, reason } => {
                let state = locked.state.clone();
                self.record_rollback(&case, state, (&from, &to), reason, None)
                    .await
            }
            RollbackDecision::RollBack { from, to, reason } => {
                let back_to = locked.state.deployment.as_ref().map(|d| d.from.as_str());
                let back_to_target = back_to == Some(to.as_str());
                let mut state = locked.state.clone();
                let (reason, to, images) = pinned(&mut state, prepared, reason, to);
                match self
                    .roll_back_service(
                        &service,
                        (&from, &to),
                        back_to_target,
                        &locked,
                        images.as_deref(),
                    )
                    .await
                {
                    Ok(Rolled::Restoring {
                        archived,
                        activating,
                    }) => {
                        let pending = (from.as_str(), to.as_str(), reason);
                        self.restoring(&case, state, pending, &archived, &activating)
                            .await
                    }
                    Ok(Rolled::Unpullable(why)) => {
                        self.skip(
                            &case,
                            &locked.state,
                            format!("{reason}; not rolled back: {why}"),
                        )
                        .await
                    }
                    Ok(Rolled::Back(route)) => {
                        let reason = match route.words(&to) {
                            Some(words) => format!("{reason}; {words}"),
                            None => reason,
                        };
                        self.record_rollback(&case, state, (&from, &to), reason, Some(&route))
                            .await
                    }
                    Ok(Rolled::Blocked { reason, .. }) => {
                        // An operator is told at once; nothing is retried behind their back.
                        self.release(key, &locked).await;
                        return Err(RollbackError::Refused(format!(
                            "{key} is not rolled back: {reason}"
                        )));
                    }
                    Err(e) => self.failed_under_lock(key, &alarm, &locked, e).await,
                }
            }
        };
        let summary = Summary::of(vec![report], String::new);
        if summary.failed_services().next().is_some() {
            return Err(RollbackError::ServicesFailed(summary));
        }
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
            .guarded(alarm, named)
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

    /// The alarm with its actions, when its metric alone would map a service and the event did
    /// not say whether it is a step scaling alarm (only SNS messages carry the actions). If they
    /// cannot be read, its metric maps nothing: a rollback on a scaling alarm is worse than none.
    async fn with_actions(&self, alarm: &Alarm) -> (Alarm, Option<MappingProblem>) {
        let mut alarm = alarm.clone();
        let maps_by_metric = alarm
            .metric_services()
            .iter()
            .any(|k| self.config.manages_cluster(k.cluster()));
        if alarm.actions.is_some() || scaling_alarm(&alarm).is_some() || !maps_by_metric {
            return (alarm, None);
        }
        match self.ports.alarms.alarm_actions(&alarm.name).await {
            Ok(actions) => {
                alarm.actions = actions;
                (alarm, None)
            }
            Err(error) => {
                warn!(%error, "could not read the alarm's actions; its metric maps nothing");
                alarm.dimensions.clear();
                let problem = MappingProblem {
                    source: MappingSource::AlarmActions,
                    error,
                };
                (alarm, Some(problem))
            }
        }
    }

    /// What names services by tag: the alarm's own `deckhand:service` tag and the services
    /// whose `deckhand:alarms` list it (with the tag values, from one search). Each source fails
    /// on its own: the other still counts, and the failure is returned with it.
    async fn named_by_tags(&self, alarm: &Alarm) -> NamedByTags {
        let alarm_tags = async {
            let arn = alarm.arn.as_ref()?;
            Some(self.ports.alarms.alarm_tags(arn).await)
        };
        let (alarm_tags, listed) =
            futures::join!(alarm_tags, self.ports.ecs.find_services(TAG_ALARMS));
        let mut problems = Vec::new();
        let alarm_tag = match alarm_tags {
            None => None,
            Some(Ok(tags)) => tags.get(ALARM_TAG_SERVICE).and_then(|v| {
                v.trim()
                    .parse::<ServiceKey>()
                    .map_err(|e| warn!(error = %e, "the alarm's deckhand:service tag does not name a service"))
                    .ok()
            }),
            // A deleted alarm has no tags; the other mappings still hold.
            Some(Err(e)) if e.kind == PortErrorKind::NotFound => None,
            Some(Err(error)) => {
                warn!(%error, "could not read the alarm's tags; the other mappings still count");
                problems.push(MappingProblem {
                    source: MappingSource::AlarmTags,
                    error,
                });
                None
            }
        };
        let listed = match listed {
            Ok(listed) => listed,
            Err(error) => {
                warn!(%error, "could not find the services that list alarms; the other mappings still count");
                problems.push(MappingProblem {
                    source: MappingSource::ServiceAlarmTags,
                    error,
                });
                Vec::new()
            }
        };
        NamedByTags {
            alarm_tag,
            listed,
            problems,
        }
    }

    /// The services the alarm guards, in the ways the spec allows (its tags, the services'
    /// tags, its metric), and those whose `deckhand:rollback` tag does not parse.
    async fn guarded(&self, alarm: &Alarm, named: NamedByTags) -> Result<Mapping, PortError> {
        let NamedByTags {
            alarm_tag,
            listed,
            problems,
        } = named;
        // Only the services whose list names this alarm: the tag values came with the search.
        let keys: Vec<ServiceKey> = listed
            .iter()
            .filter(|found| lists_alarm(&found.value, &alarm.name))
            .filter_map(|found| ServiceKey::from_arn(&found.arn))
            .chain(alarm_tag.clone())
            .chain(alarm.metric_services())
            .filter(|key| self.config.manages_cluster(key.cluster()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut mapping = Mapping {
            guarded: Vec::new(),
            invalid: Vec::new(),
            problems,
        };
        if keys.is_empty() {
            return Ok(mapping);
        }
        for service in self.ports.ecs.describe_services(&keys).await? {
            match RollbackSettings::from_tags(&service.tags) {
                Ok(settings) => {
                    if let Some(guard) =
                        guard_of(alarm, &service.key, &settings, alarm_tag.as_ref())
                    {
                        mapping.guarded.push(Guarded {
                            service,
                            settings,
                            guard,
                        });
                    }
                }
                Err(problem) => mapping.invalid.push((service.key, problem)),
            }
        }
        Ok(mapping)
    }

    /// A source of the mapping failed: recorded in the history of every service the alarm
    /// still reached, and notified once, so nobody takes silence for "nothing was guarded".
    async fn mapping_failed(
        &self,
        alarm: &Alarm,
        problem: &MappingProblem,
        reached: &[ServiceKey],
    ) {
        let now = self.ports.clock.now();
        let reason = format!(
            "alarm {}: {}; services only it names were not checked",
            alarm.name,
            problem.describe()
        );
        let records: Vec<HistoryRecord> = reached
            .iter()
            .map(|key| {
                let mut record =
                    HistoryRecord::new(key, now, Action::Error, reason.clone(), &alarm.event_id);
                record.alarm_at = Some(alarm.at);
                record
            })
            .collect();
        if !records.is_empty()
            && let Err(e) = self.ports.store.record(&records, None).await
        {
            warn!(error = %e, "could not record the failed mapping");
        }
        self.notify(Notification::new(
            Kind::Error,
            Severity::Error,
            "*".to_owned(),
            format!(
                "Alarm {} fired; {}, so a service that only it names may not have been rolled back",
                alarm.name,
                problem.describe()
            ),
            now,
            json!({
                "alarm": alarm.name,
                "alarmArn": alarm.arn,
                "source": problem.source.describe(),
                "error": problem.error.to_string(),
                "servicesReached": reached.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        ))
        .await;
    }

    async fn roll_back(
        &self,
        alarm: &Alarm,
        guarded: Guarded,
        done: &BTreeSet<ServiceKey>,
    ) -> ServiceReport {
        let key = &guarded.service.key;
        let now = self.ports.clock.now();
        if done.contains(key) {
            let reason = "this alarm event was already handled for this service";
            let record = HistoryRecord::new(key, now, Action::Duplicate, reason, &alarm.event_id);
            if let Err(e) = self.ports.store.record(&[record], None).await {
                warn!(error = %e, "could not record a repeated delivery");
            }
            return ServiceReport::new(key, Action::Duplicate, reason);
        }
        // A side of a pair: the traffic flips back, under the lock of the side whose state
        // holds the pair's move; no ECS deployment.
        match self.pair_holder(key, &guarded.service.tags).await {
            Ok(None) => {}
            Ok(Some(holder)) => {
                let (enabled, why) = (guarded.settings.enabled, guarded.guard.describe());
                return self.roll_back_pair(alarm, &holder, enabled, why).await;
            }
            Err(e) => return self.failed(key, alarm, e).await,
        }
        let owner = owner_token(&alarm.event_id);
        let locked = match acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await {
            Ok(locked) => locked,
            Err(e) => return self.failed(key, alarm, e).await,
        };
        let deployed = locked.state.deployment.as_ref().map(|d| d.to.as_str());
        let running = running_revision(&guarded.service, deployed);
        let enabled = guarded.settings.enabled;
        let dry_run = self.config.dry_run;
        let mut decision = decide_rollback(alarm, enabled, &locked.state, running, None, dry_run);
        // Never onto a quarantined digest, never a tag resolved again: look at the target.
        let mut prepared = None;
        if let RollbackDecision::RollBack { from, to, .. } = &decision {
            let ready = self.prepare_target(key, (from, to), &locked.state, &alarm.event_id);
            match ready.await {
                Ok(Prepared::Ready {
                    quarantined: Some(digest),
                    ..
                }) => {
                    decision = decide_rollback(
                        alarm,
                        enabled,
                        &locked.state,
                        running,
                        Some(&digest),
                        dry_run,
                    );
                }
                Ok(Prepared::Unknown(why)) => decision = RollbackDecision::Skip(why),
                Ok(ready) => prepared = Some(ready),
                Err(e) => return self.failed_under_lock(key, alarm, &locked, e).await,
            }
        }
        // The alarm is evidence against what runs, unless deckhand itself caused it: the
        // deployment proving that revision, whoever made it, never becomes known-good.
        let mut state = locked.state.clone();
        // (When the service already runs the rollback target, the alarm was about the
        // deployment it left, not about what runs.)
        let finishing = matches!(decision, RollbackDecision::Finish { .. });
        let marked = (excused(alarm, &state).is_none() && !finishing)
            .then(|| state.mark_alarmed(&alarm.name, alarm.at, running))
            .flatten();
        let with_mark = |reason: String| match &marked {
            Some(revision) => format!(
                "{reason}; {revision} will not become known-good: the alarm fired inside its guard window"
            ),
            None => reason,
        };
        let case = Case {
            key,
            alarm,
            locked: &locked,
            guard: guarded.guard.describe(),
        };
        match decision {
            RollbackDecision::Skip(reason) => self.skip(&case, &state, with_mark(reason)).await,
            RollbackDecision::RollBack { from, to, reason }
            | RollbackDecision::Finish { from, to, reason }
                if dry_run =>
            {
                let now = self.ports.clock.now();
                apply_rollback(&mut state, (&from, &to), &alarm.name, now, true);
                let reason = with_mark(format!("dry run: {reason}"));
                self.skip_with(&case, &state, reason, Action::WouldRollBack, (&from, &to))
                    .await
            }
            RollbackDecision::Finish { from, to, reason } => {
                warn!(to = %revision_name(&to), "the service already runs the rollback target; recording the rollback");
                self.record_rollback(&case, state, (&from, &to), with_mark(reason), None)
                    .await
            }
            RollbackDecision::RollBack { from, to, reason } => {
                let back_to = state.deployment.as_ref().map(|d| d.from.as_str());
                let back_to_target = back_to == Some(to.as_str());
                let (reason, to, images) = pinned(&mut state, prepared, reason, to);
                let route = match self
                    .roll_back_service(
                        &guarded.service,
                        (&from, &to),
                        back_to_target,
                        &locked,
                        images.as_deref(),
                    )
                    .await
                {
                    Ok(Rolled::Back(route)) => route,
                    Ok(Rolled::Restoring {
                        archived,
                        activating,
                    }) => {
                        let pending = (from.as_str(), to.as_str(), with_mark(reason));
                        return self
                            .restoring(&case, state, pending, &archived, &activating)
                            .await;
                    }
                    Ok(Rolled::Unpullable(why)) => {
                        let reason = with_mark(format!("{reason}; not rolled back: {why}"));
                        return self.skip(&case, &state, reason).await;
                    }
                    Ok(Rolled::Blocked {
                        deployment_id,
                        reason: why,
                        retry,
                    }) => {
                        let reason = with_mark(format!("{reason}; not rolled back: {why}"));
                        let blocked = Blocked {
                            deployment_id,
                            retry,
                        };
                        return self
                            .blocked(&case, state, reason, (&from, &to), blocked)
                            .await;
                    }
                    Err(e) => return self.failed_under_lock(key, alarm, &locked, e).await,
                };
                let reason = match route.words(&to) {
                    Some(words) => format!("{reason}; {words}"),
                    None => reason,
                };
                self.record_rollback(&case, state, (&from, &to), reason, Some(&route))
                    .await
            }
        }
    }

    async fn record_rollback(
        &self,
        case: &Case<'_>,
        mut state: ServiceState,
        (from, to): (&str, &str),
        reason: String,
        route: Option<&RollbackRoute>,
    ) -> ServiceReport {
        let Case {
            key,
            alarm,
            locked,
            guard,
        } = *case;
        let now = self.ports.clock.now();
        let digest = apply_rollback(&mut state, (from, to), &alarm.name, now, false);
        state.rollback_waits_for = None;
        let mut record = self.record(key, alarm, now, Action::RolledBack, &reason, (from, to));
        record.digest = digest.as_ref().map(ToString::to_string);
        if let Err(e) = self.commit(key, alarm, locked, &state, record).await {
            // ECS already runs the target; a retry finds the service off deckhand's deployment.
            error!(error = %e, "rolled back but could not record it");
            return self.failed(key, alarm, e).await;
        }
        info!(from = %revision_name(from), to = %revision_name(to), "rolled back");
        let digest_text = digest.as_ref().map_or("", |d| d.short());
        self.notify(Notification::new(
            Kind::RollbackStarted,
            Severity::Warning,
            key.to_string(),
            format!(
                "Rolling back {key} from {} to {} after alarm {}; digest {digest_text} is quarantined",
                revision_name(from),
                revision_name(to),
                alarm.name
            ),
            now,
            with_route(
                details(alarm, (from, to), digest.as_ref().map(ToString::to_string), &reason, guard),
                route,
            ),
        ))
        .await;
        let mut report = ServiceReport::new(key, Action::RolledBack, reason);
        report.from = Some(revision_name(from).to_owned());
        report.to = Some(revision_name(to).to_owned());
        report.digest = digest.map(|d| d.to_string());
        report
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
        } = *case;
        let now = self.ports.clock.now();
        let mut record = self.record(key, alarm, now, action, &reason, revisions);
        record.dry_run = self.config.dry_run;
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

    async fn notify(&self, notification: Notification) {
        super::publish(&self.ports, notification).await;
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
