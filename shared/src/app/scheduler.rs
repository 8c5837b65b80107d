//! The `scheduler` function: reconcile puts opted-in services to sleep off-hours and wakes
//! them exactly as they were; operators keep one awake or asleep for a while.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use futures::{StreamExt, stream};
use serde_json::{Value, json};
use tracing::{Instrument, error, info, info_span, warn};

use super::Ports;
use super::deploy::DeployFunction;
use super::locking::{acquire, owner_token, renew_before_acting};
use crate::config::Config;
use crate::domain::fleet::ServiceView;
use crate::domain::service::ServiceKey;
use crate::domain::settings::{
    DeploySettings, ScheduleSettings, TAG_AWAKE, TAG_DEPLOY, TagProblem,
};
use crate::domain::sleep::{Observed, ScaleDecision, decide_scale, sleep_record, task_hours_saved};
use crate::domain::state::{Capacity, OperatorOverride, ServiceState, Sleep};
use crate::events::EventError;
use crate::events::scheduler::{Expiry, SchedulerEvent, parse_scheduler_event};
use crate::history::{HistoryRecord, ScaleRecord};
use crate::notification::{Kind, Notification, Severity};
use crate::ports::{Locked, PortError, TaggedService};
use crate::report::{Action, ServiceReport, Summary};

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("bad event: {0}")]
    BadEvent(#[from] EventError),
    /// Nothing was changed: the services could not be listed or described.
    #[error("could not find the services: {0}")]
    Discovery(PortError),
    /// Some services could not be handled; the others were. The next reconcile retries them.
    #[error("{}", .0.failure_message())]
    ServicesFailed(Summary),
}

impl SchedulerError {
    /// The Lambda error type, for diagnostics and alarms.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::BadEvent(_) => "deckhand.BadEvent",
            Self::Discovery(_) => "deckhand.DiscoveryFailed",
            Self::ServicesFailed(_) => "deckhand.ServicesFailed",
        }
    }
}

/// How long a change started just before the deadline may still take: a lock, a scalable
/// target, a desired count and a commit under throttling, well inside one minute; and never
/// more than a fifth of the invocation (a short timeout, as `cargo lambda watch` gives).
const CHANGE_IN_FLIGHT: std::time::Duration = std::time::Duration::from_secs(60);

/// The instant after which no change starts, for an invocation that times out at `deadline`
/// (Lambda's, in wall-clock time). Measured on the monotonic clock from now: the clock port
/// may be set to any instant (a test, a replayed event), Lambda's deadline is real time.
fn stop_starting_at(deadline: DateTime<Utc>) -> tokio::time::Instant {
    let remaining = (deadline - Utc::now()).to_std().unwrap_or_default();
    let margin = CHANGE_IN_FLIGHT.min(remaining / 5);
    tokio::time::Instant::now() + remaining.saturating_sub(margin)
}
/// The reason given for a service the reconcile left for the next one.
const DEFERRED: &str = "not started: this reconcile reached the end of its invocation; the next reconcile goes on with it";

/// Services asleep first: when a fleet takes longer than one invocation, waking late costs
/// people their morning, sleeping late only money. Otherwise in the order found.
fn most_urgent_first(subjects: &mut [Subject]) {
    subjects.sort_by_key(|s| s.state.sleep.is_none());
}

/// How an invocation may act.
#[derive(Clone, Copy, Debug)]
struct Mode {
    /// `DECKHAND_DRY_RUN`: decide, record and notify, change nothing in ECS.
    dry_run: bool,
    /// `dryRun` in the request: decide and report, write nothing at all.
    plan: bool,
    /// After this instant no new change starts: the invocation's deadline less the time a
    /// change in flight may still need.
    stop_starting_at: Option<tokio::time::Instant>,
}

/// Both sides of every pair whose traffic moves, or whose new side is in its guard window,
/// with why in words: neither side sleeps meanwhile.
fn pairs_moving(states: &BTreeMap<ServiceKey, ServiceState>) -> BTreeMap<ServiceKey, String> {
    use crate::domain::pair_move::PairPhase;
    let mut moving = BTreeMap::new();
    for m in states.values().filter_map(|s| s.pair.as_ref()) {
        if matches!(
            m.phase,
            PairPhase::Shifting | PairPhase::Guarding | PairPhase::Reviving
        ) {
            let why = format!(
                "the traffic of its pair moves from {} to {} ({}% on {}); not put to sleep before the move ends",
                m.from,
                m.to,
                m.percent(),
                m.to
            );
            moving.insert(m.from.clone(), why.clone());
            moving.insert(m.to.clone(), why);
        }
    }
    moving
}

/// The services a reconcile looks at.
struct Discovered {
    /// Scheduled (`deckhand:awake`) or kept asleep: their schedule is applied.
    scheduled: BTreeSet<ServiceKey>,
    /// Deployed by deckhand (`deckhand:deploy`): their known-good revision is checked.
    deployed: BTreeSet<ServiceKey>,
}

/// One service as the reconcile found it.
pub(super) struct Subject {
    service: ServiceView,
    capacity: Option<Capacity>,
    state: ServiceState,
    /// The traffic of the pair it is a side of moves: why, in words.
    pair_moving: Option<String>,
}

/// What to do under the lock, for one service.
struct Job<'a> {
    key: &'a ServiceKey,
    settings: Option<&'a ScheduleSettings>,
    observed: Observed,
    at: DateTime<Utc>,
    cause: &'a str,
    /// An operator's wake or sleep, to store with the decision.
    set_override: Option<OperatorOverride>,
    /// The service's guard window, for a deployment done while it slept that a wake runs.
    guard: TimeDelta,
    /// The state the reconcile read in its batch, when it did.
    read: Option<&'a ServiceState>,
}

pub struct SchedulerFunction {
    ports: Ports,
    config: Config,
}

impl SchedulerFunction {
    pub fn new(ports: Ports, config: Config) -> Self {
        Self { ports, config }
    }

    pub async fn handle(&self, event: &Value) -> Result<Summary, SchedulerError> {
        self.handle_within(event, None).await
    }

    /// Handles an event in an invocation that ends at `deadline` (Lambda's timeout): a
    /// reconcile starts no change in its last minute, and says which services it left for the
    /// next one.
    pub async fn handle_within(
        &self,
        event: &Value,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<Summary, SchedulerError> {
        if let Some(reason) = self.config.foreign(event) {
            warn!(%reason, "an event of another account or region changes nothing");
            return Ok(Summary::ignored(reason));
        }
        let now = self.ports.clock.now();
        let stop_starting_at = deadline.map(stop_starting_at);
        let failed;
        let mut summary = match parse_scheduler_event(event)? {
            SchedulerEvent::Reconcile {
                at,
                dry_run,
                event_id,
            } => {
                let at = at.unwrap_or(now);
                let cause = event_id.unwrap_or_else(|| format!("reconcile@{}", rfc3339(at)));
                let span =
                    info_span!("reconcile", at = %rfc3339(at), cause = %cause, plan = dry_run);
                let mode = Mode {
                    stop_starting_at,
                    ..self.mode(dry_run)
                };
                let summary = self.reconcile(at, mode, &cause).instrument(span).await?;
                failed = summary.failed_services().next().is_some();
                if dry_run {
                    summary
                } else {
                    // Housekeeping, whose failures the next reconcile or event tries again:
                    // pushes held while their CodeDeploy group was busy, whose end event may
                    // never have come, and pushes still waiting for a scan event.
                    let deploy = DeployFunction::new(self.ports.clone(), self.config.clone());
                    let held = Box::pin(deploy.release_held(None)).await;
                    let summary = summary.with(held);
                    if self.config.require_scan.is_some() {
                        summary.with(Box::pin(deploy.settle_scan_waits()).await)
                    } else {
                        summary
                    }
                }
            }
            SchedulerEvent::Override {
                service,
                awake,
                until,
                dry_run,
            } => {
                let action = if awake { "wake" } else { "sleep" };
                let cause = format!("{action}#{service}@{}", rfc3339(now));
                let span = info_span!("override", %service, action, cause = %cause);
                let summary = self
                    .operator(&service, awake, until, self.mode(dry_run), &cause)
                    .instrument(span)
                    .await?;
                failed = summary.failed_services().next().is_some();
                summary
            }
        };
        summary.dry_run = self.config.dry_run || summary.dry_run;
        if failed {
            return Err(SchedulerError::ServicesFailed(summary));
        }
        info!(outcome = ?summary.outcome, services = summary.services.len(), "handled");
        Ok(summary)
    }

    fn mode(&self, plan: bool) -> Mode {
        Mode {
            dry_run: self.config.dry_run,
            plan,
            stop_starting_at: None,
        }
    }

    /// Services with a schedule in the managed clusters, and every service deckhand keeps
    /// asleep: a changed tag or cluster list never strands a sleeping service. Beside them, the
    /// services deckhand deploys, whose known-good revisions the reconcile checks.
    async fn discover(&self) -> Result<Discovered, PortError> {
        let (tagged, deployed, sleeping) = futures::try_join!(
            self.ports.ecs.find_services(TAG_AWAKE),
            self.ports.ecs.find_services(TAG_DEPLOY),
            self.ports.store.sleeping()
        )?;
        let managed = |found: &Vec<TaggedService>| -> BTreeSet<ServiceKey> {
            found
                .iter()
                .filter_map(|found| ServiceKey::from_arn(&found.arn))
                .filter(|key| self.config.manages_cluster(key.cluster()))
                .collect()
        };
        let mut scheduled = managed(&tagged);
        scheduled.extend(sleeping);
        Ok(Discovered {
            deployed: managed(&deployed),
            scheduled,
        })
    }

    async fn reconcile(
        &self,
        at: DateTime<Utc>,
        mode: Mode,
        cause: &str,
    ) -> Result<Summary, SchedulerError> {
        let discovered = self.discover().await.map_err(SchedulerError::Discovery)?;
        if discovered.scheduled.is_empty() && discovered.deployed.is_empty() {
            let mut summary = Summary::ignored("no service has a deckhand:awake tag");
            summary.dry_run = mode.plan;
            return Ok(summary);
        }
        let keys: Vec<ServiceKey> = discovered
            .scheduled
            .union(&discovered.deployed)
            .cloned()
            .collect();
        let scheduled_keys: Vec<ServiceKey> = discovered.scheduled.iter().cloned().collect();
        let (read, capacities, mut states) = futures::try_join!(
            self.ports.ecs.describe_services_partly(&keys),
            self.ports.autoscaling.scalable_targets(&scheduled_keys),
            self.ports.store.load_many(&keys),
        )
        .map_err(SchedulerError::Discovery)?;
        let read_all = read.failed.is_empty();
        let (services, deployed): (Vec<ServiceView>, Vec<ServiceView>) = read
            .services
            .into_iter()
            .partition(|s| discovered.scheduled.contains(&s.key));
        // Known-good is checked on what was read before this reconcile changed anything, and
        // decided again under each service's lock.
        let deployed: Vec<ServiceView> = services
            .iter()
            .cloned()
            .chain(deployed)
            .filter(|s| s.tags.contains_key(TAG_DEPLOY))
            .collect();
        let deployed_states: BTreeMap<ServiceKey, ServiceState> = deployed
            .iter()
            .filter_map(|s| Some((s.key.clone(), states.get(&s.key)?.clone())))
            .collect();
        // A batch that could not be read fails its services only; the next reconcile reads
        // them again, and the rest are reconciled now.
        let unread: BTreeSet<&ServiceKey> = read.failed.iter().map(|(k, _)| k).collect();
        let found: BTreeSet<&ServiceKey> = services.iter().map(|s| &s.key).collect();
        let mut reports: Vec<ServiceReport> = Vec::new();
        for (key, e) in &read.failed {
            reports.push(self.failed(key, cause, e.clone()).await);
        }
        reports.extend(
            scheduled_keys
                .iter()
                .filter(|k| !found.contains(k) && !unread.contains(k))
                .map(|k| {
                    ServiceReport::new(
                        k,
                        Action::Ignored,
                        "deckhand put it to sleep, but the service no longer exists",
                    )
                }),
        );
        let moving = pairs_moving(&states);
        // What the sleeping services saved, for the task-hours of those this reconcile wakes.
        let sleeps: BTreeMap<ServiceKey, Sleep> = states
            .iter()
            .filter_map(|(k, s)| Some((k.clone(), s.sleep.clone()?)))
            .collect();
        let mut subjects: Vec<Subject> = services
            .into_iter()
            .map(|service| Subject {
                capacity: capacities.get(&service.key).copied(),
                state: states.remove(&service.key).unwrap_or_default(),
                pair_moving: moving.get(&service.key).cloned(),
                service,
            })
            .collect();
        most_urgent_first(&mut subjects);
        let handling = stream::iter(subjects)
            .map(|subject| {
                let span = info_span!("service", service = %subject.service.key);
                self.reconcile_service(subject, at, mode, cause)
                    .instrument(span)
            })
            .buffer_unordered(self.config.concurrency)
            .collect::<Vec<ServiceReport>>();
        // The index check needs only what was read: it runs beside the changes.
        let checking = async {
            if mode.plan {
                None
            } else {
                Some(self.check_index(&deployed, read_all).await)
            }
        };
        let (handled, index) = futures::join!(handling, checking);
        let deferred = handled.iter().filter(|r| r.reason == DEFERRED).count();
        if deferred > 0 {
            warn!(
                deferred,
                "the reconcile reached the end of its invocation; the next one goes on"
            );
        }
        reports.extend(handled);
        if mode.plan {
            self.tell_scheduled_scaling(&mut reports, &capacities).await;
        }
        let near_deadline = mode
            .stop_starting_at
            .is_some_and(|stop| tokio::time::Instant::now() >= stop);
        if !near_deadline {
            // A service this reconcile put to sleep or woke was written under its lock since
            // the batch read it, so what was read no longer holds for it: the next reconcile
            // checks its known-good revision on a fresh read (locking it again now would only
            // find that the sleep changed the answer, and give the lock back).
            let acted: BTreeSet<&str> = reports
                .iter()
                .filter(|r| matches!(r.action, Action::Asleep | Action::Awake))
                .map(|r| r.service.as_str())
                .collect();
            let unchanged: Vec<ServiceView> = deployed
                .iter()
                .filter(|s| !acted.contains(s.key.to_string().as_str()))
                .cloned()
                .collect();
            reports.extend(
                self.check_known_good(&unchanged, &deployed_states, at, mode.plan, cause)
                    .await,
            );
            // Pairs move their traffic for real only: a dry run never deployed to one.
            if !mode.dry_run || mode.plan {
                reports.extend(
                    self.advance_pairs(&deployed, &deployed_states, at, mode.plan, cause)
                        .await,
                );
            }
            if !mode.dry_run && !mode.plan {
                let finished = self.finish_restores(&deployed, &deployed_states, cause);
                reports.extend(finished.await);
                // What this reconcile put to sleep or woke is kept by the next one.
                reports.extend(self.keep_images(&unchanged, &deployed_states, cause).await);
            }
        }
        let mut summary = Summary::of(reports, || "no service to reconcile".into());
        summary.dry_run = mode.plan;
        summary.index = index;
        if !mode.plan {
            let woken: Vec<(&str, f64)> = summary
                .services
                .iter()
                .filter(|r| r.action == Action::Awake)
                .filter_map(|r| {
                    let saved = sleeps.get(&r.service.parse::<ServiceKey>().ok()?)?;
                    Some((r.service.as_str(), task_hours_saved(saved, at)))
                })
                .collect();
            let hours: f64 = woken.iter().map(|(_, h)| h).sum();
            let hours = (hours * 100.0).round() / 100.0;
            if !mode.dry_run {
                let asleep_before: BTreeSet<String> = sleeps
                    .iter()
                    .filter(|(_, s)| !s.pending)
                    .map(|(k, _)| k.to_string())
                    .collect();
                for m in reconcile_measurements(&summary.services, &asleep_before, &woken, at) {
                    self.ports.metrics.put(&m);
                }
            }
            if let Some(n) = scale_summary(&summary.services, hours, at, cause, mode.dry_run) {
                super::publish(&self.ports, n).await;
            }
        }
        Ok(summary)
    }

    /// A plan says which services have scheduled scaling on their scalable target: deckhand
    /// suspends it while they sleep, and restores it when they wake.
    async fn tell_scheduled_scaling(
        &self,
        reports: &mut [ServiceReport],
        capacities: &BTreeMap<ServiceKey, Capacity>,
    ) {
        let targets: Vec<ServiceKey> = capacities.keys().cloned().collect();
        if targets.is_empty() {
            return;
        }
        let scheduled = match self.ports.autoscaling.scheduled_actions(&targets).await {
            Ok(scheduled) => scheduled,
            Err(e) => {
                warn!(error = %e, "could not list the scheduled actions");
                return;
            }
        };
        for report in reports.iter_mut() {
            let actions = report
                .service
                .parse::<ServiceKey>()
                .ok()
                .and_then(|key| scheduled.get(&key));
            if let Some(actions) = actions {
                report.reason = format!("{}; {}", report.reason, scheduled_scaling_words(actions));
            }
        }
    }

    async fn reconcile_service(
        &self,
        subject: Subject,
        at: DateTime<Utc>,
        mode: Mode,
        cause: &str,
    ) -> ServiceReport {
        let key = &subject.service.key;
        let settings =
            match ScheduleSettings::from_tags(&subject.service.tags, self.config.timezone) {
                Ok(settings) => settings,
                Err(problems) => {
                    return self
                        .invalid(key, &subject.state, &problems, mode, cause)
                        .await;
                }
            };
        let observed = Observed {
            desired_count: subject.service.desired_count,
            scalable: subject.capacity,
            pair_moving: subject.pair_moving.clone(),
        };
        let decision = decide_scale(
            settings.as_ref(),
            &observed,
            &subject.state,
            at,
            mode.dry_run,
        );
        match decision {
            ScaleDecision::Unchanged { reason } => {
                ServiceReport::new(key, Action::Unchanged, reason)
            }
            decision if mode.plan => planned(key, &decision, &observed),
            _ if mode
                .stop_starting_at
                .is_some_and(|stop| tokio::time::Instant::now() >= stop) =>
            {
                info!("not started: the invocation is near its deadline");
                ServiceReport::new(key, Action::Skipped, DEFERRED)
            }
            decision => {
                // Its tasks pull what it runs: an archived image is restored first.
                let wakes = matches!(decision, ScaleDecision::Wake { .. });
                if wakes
                    && !mode.dry_run
                    && !subject.state.kept.is_empty()
                    && let Some(report) = self.restore_before_wake(&subject, cause).await
                {
                    return report;
                }
                let job = Job {
                    key,
                    settings: settings.as_ref(),
                    observed,
                    at,
                    cause,
                    set_override: None,
                    guard: DeploySettings::guard_in(&subject.service.tags, self.config.guard),
                    read: Some(&subject.state),
                };
                self.act(job, mode).await
            }
        }
    }

    /// An operator's `wake` or `sleep`: stored as an override that later reconciles honour,
    /// and applied at once.
    async fn operator(
        &self,
        key: &ServiceKey,
        awake: bool,
        until: Option<Expiry>,
        mode: Mode,
        cause: &str,
    ) -> Result<Summary, SchedulerError> {
        let now = self.ports.clock.now();
        let one = std::slice::from_ref(key);
        let (services, capacities, state) = futures::try_join!(
            self.ports.ecs.describe_services(one),
            self.ports.autoscaling.scalable_targets(one),
            self.ports.store.load(key),
        )
        .map_err(SchedulerError::Discovery)?;
        let Some(service) = services.into_iter().next() else {
            return Ok(Summary::ignored(format!("service {key} does not exist")));
        };
        if !service.tags.contains_key(TAG_AWAKE) && state.sleep.is_none() {
            return Ok(Summary::ignored(format!(
                "{key} has no {TAG_AWAKE} tag: deckhand does not schedule it"
            )));
        }
        // Tags that do not parse leave the schedule unknown; the operator's word still holds.
        let settings = ScheduleSettings::from_tags(&service.tags, self.config.timezone)
            .ok()
            .flatten();
        let until = match until {
            Some(expiry) => expiry.at(now),
            None => settings
                .as_ref()
                .and_then(|s| s.schedule.next_wake(now))
                .ok_or_else(|| {
                    EventError::new(
                        "for",
                        "missing: the service has no valid schedule to wake it; give for or until",
                    )
                })?,
        };
        if until <= now {
            return Err(EventError::new(
                "until",
                format!("{} is not in the future", rfc3339(until)),
            )
            .into());
        }
        // An operator's sleep is not held back by a pair's move.
        let observed = Observed {
            desired_count: service.desired_count,
            scalable: capacities.get(key).copied(),
            pair_moving: None,
        };
        let set_override = OperatorOverride {
            awake,
            until,
            at: now,
            cause: cause.to_owned(),
        };
        let report = if mode.plan {
            let state = ServiceState {
                operator_override: Some(set_override),
                ..state
            };
            let decision = decide_scale(settings.as_ref(), &observed, &state, now, mode.dry_run);
            planned(key, &decision, &observed)
        } else {
            let job = Job {
                key,
                settings: settings.as_ref(),
                observed,
                at: now,
                cause,
                set_override: Some(set_override),
                guard: DeploySettings::guard_in(&service.tags, self.config.guard),
                read: None,
            };
            self.act(job, mode).await
        };
        let mut summary = Summary::of(vec![report], String::new);
        summary.dry_run = mode.plan;
        Ok(summary)
    }

    /// Decides again under the service's lock (the state may have moved since it was read)
    /// and applies the decision: state on record before ECS is touched, then ECS and
    /// Application Auto Scaling, then the state, the history and the notification.
    async fn act(&self, job: Job<'_>, mode: Mode) -> ServiceReport {
        let key = job.key;
        let owner = owner_token(job.cause);
        // Taken with the pending record, the lock guards the state the batch read: the
        // decision is made on that (the record it saved is this invocation's, not one left
        // half-way by another).
        let (locked, decided_on) = match self.lock_saving_pending(&job, mode, &owner).await {
            Some(locked) => (Ok(locked), job.read.cloned()),
            None => (
                acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await,
                None,
            ),
        };
        let mut locked = match locked {
            Ok(locked) => locked,
            Err(e) => return self.failed(key, job.cause, e).await,
        };
        let operator = job.set_override.is_some();
        let mut state = prepared(
            decided_on.unwrap_or_else(|| locked.state.clone()),
            &job,
            mode,
        );
        let decision = decide_scale(job.settings, &job.observed, &state, job.at, mode.dry_run);
        let now = self.ports.clock.now();
        let mut record = HistoryRecord::new(key, now, Action::Unchanged, "", job.cause);
        record.dry_run = mode.dry_run;
        let notification = match decision {
            ScaleDecision::Sleep {
                reason,
                asleep_count,
            } => {
                // Finishing an interrupted sleep keeps the values saved before it began.
                let saved = match state.sleep.clone().filter(|s| s.pending) {
                    Some(saved) => saved,
                    None => {
                        sleep_record(&job.observed, asleep_count, job.at, mode.dry_run, job.cause)
                    }
                };
                if !mode.dry_run
                    && let Err(e) = self
                        .put_to_sleep(key, &mut locked, &mut state, &saved, &job.observed)
                        .await
                {
                    return self
                        .failed_under_lock(key, &locked, &state, job.cause, e)
                        .await;
                }
                if !mode.dry_run {
                    state.interrupt_by_sleep(job.at);
                }
                state.sleep = Some(Sleep {
                    pending: false,
                    ..saved.clone()
                });
                state.left_alone_until = None;
                record.action = if mode.dry_run {
                    Action::WouldSleep
                } else {
                    Action::Asleep
                };
                record.reason = format!("{reason}; {}", sleep_words(&saved));
                record.scale = Some(scale_record(&saved, None, None));
                let (kind, summary) = if mode.dry_run {
                    (
                        Kind::ScaleSkipped,
                        format!("Dry run: would put {key} to sleep: {}", record.reason),
                    )
                } else {
                    (
                        Kind::ScaleAsleep,
                        format!("Put {key} to sleep: {}", record.reason),
                    )
                };
                Some((kind, Severity::Info, summary))
            }
            ScaleDecision::Wake { reason, saved } => {
                if !mode.dry_run
                    && let Err(e) = self.wake(key, &mut locked, &mut state, &saved).await
                {
                    return self
                        .failed_under_lock(key, &locked, &state, job.cause, e)
                        .await;
                }
                state.sleep = None;
                state.left_alone_until = None;
                let guarded = if mode.dry_run {
                    None
                } else {
                    state.mark_woken(now, job.guard)
                };
                let hours = task_hours_saved(&saved, job.at);
                record.action = if mode.dry_run {
                    Action::WouldWake
                } else {
                    Action::Awake
                };
                record.reason = format!("{reason}; {}", wake_words(&saved, hours));
                if let Some((revision, until)) = guarded {
                    record.reason = format!(
                        "{}; the deployment of {revision}, done while it slept, is guarded until {}",
                        record.reason,
                        rfc3339(until)
                    );
                }
                record.scale = Some(scale_record(&saved, Some(hours), None));
                let (kind, summary) = if mode.dry_run {
                    (
                        Kind::ScaleSkipped,
                        format!("Dry run: would wake {key}: {}", record.reason),
                    )
                } else {
                    (Kind::ScaleAwake, format!("Woke {key}: {}", record.reason))
                };
                Some((kind, Severity::Info, summary))
            }
            ScaleDecision::HandScaled {
                reason,
                saved,
                until,
            } => {
                state.sleep = None;
                state.left_alone_until = until;
                record.action = Action::Skipped;
                record.reason = format!(
                    "{reason}; the saved record is closed ({})",
                    saved_words(&saved)
                );
                record.scale = Some(scale_record(&saved, None, until));
                Some((
                    Kind::ScaleSkipped,
                    Severity::Warning,
                    format!("{key} was scaled by hand while asleep: {}", record.reason),
                ))
            }
            ScaleDecision::Postpone { reason } => {
                record.action = Action::Skipped;
                record.reason = reason.clone();
                Some((
                    Kind::ScaleSkipped,
                    Severity::Info,
                    format!("Not putting {key} to sleep yet: {reason}"),
                ))
            }
            ScaleDecision::Unchanged { reason } => {
                record.reason = reason;
                None
            }
        };
        // A reconcile that changed nothing leaves no history; an operator's request always does.
        let records = if record.action == Action::Unchanged && !operator {
            Vec::new()
        } else {
            if let Some(o) = state.operator_override.as_ref().filter(|_| operator) {
                let scale = record.scale.get_or_insert_with(|| ScaleRecord {
                    desired_count: job.observed.desired_count,
                    min_capacity: job.observed.scalable.map(|c| c.min),
                    max_capacity: job.observed.scalable.map(|c| c.max),
                    asleep_count: job.settings.map_or(0, |s| s.asleep_count),
                    task_hours_saved: None,
                    until: None,
                });
                scale.until = Some(o.until);
            }
            vec![record.clone()]
        };
        if let Err(e) = self
            .ports
            .store
            .commit(key, &locked, &state, &records, None)
            .await
        {
            error!(error = %e, "could not record the change");
            return self.failed(key, job.cause, e).await;
        }
        // A reconcile tells in one `scale.summary` at its end; an operator's request here.
        if let Some((kind, severity, summary)) = notification.filter(|_| operator) {
            let details = json!({
                "cause": job.cause,
                "reason": record.reason,
                "scale": record.scale,
                "dryRun": mode.dry_run,
            });
            super::publish(
                &self.ports,
                Notification::new(kind, severity, key.to_string(), summary, now, details),
            )
            .await;
        }
        info!(action = ?record.action, reason = %record.reason, "reconciled");
        ServiceReport::new(key, record.action, record.reason)
    }

    /// Saves what the service runs with, then sets the asleep count: the scalable target
    /// first, so that the autoscaler cannot scale the service back up.
    async fn put_to_sleep(
        &self,
        key: &ServiceKey,
        locked: &mut Locked,
        state: &mut ServiceState,
        saved: &Sleep,
        observed: &Observed,
    ) -> Result<(), PortError> {
        state.sleep = Some(Sleep {
            pending: true,
            ..saved.clone()
        });
        // Saved already when the lock was taken with it.
        if locked.state.sleep != state.sleep {
            self.ports.store.save(key, locked, state).await?;
        }
        let n = saved.asleep_count;
        if let Some(capacity) = observed.scalable {
            self.ports
                .autoscaling
                .set_capacity(key, capacity.asleep(n))
                .await?;
            self.renew_after_the_target(key, locked).await?;
        }
        self.ports.ecs.set_desired_count(key, n).await
    }

    /// A scalable target's change may have been slowed (throttling, retries) while another
    /// invocation took the lock: the lease is renewed, which proves it is still this one's,
    /// before ECS is changed, as a deployment does.
    async fn renew_after_the_target(
        &self,
        key: &ServiceKey,
        locked: &mut Locked,
    ) -> Result<(), PortError> {
        renew_before_acting(&*self.ports.store, &*self.ports.clock, key, locked).await
    }

    /// Restores what was saved: the scalable target first (its capacity and the scaling that
    /// was suspended before the sleep), so that the restored count is inside its bounds. With
    /// a target that is two calls, so the state is saved as pending first.
    async fn wake(
        &self,
        key: &ServiceKey,
        locked: &mut Locked,
        state: &mut ServiceState,
        saved: &Sleep,
    ) -> Result<(), PortError> {
        // On record as half-way before ECS is touched, with or without a scalable target: a
        // wake whose answer is lost must be finished by the next reconcile, not taken for a
        // hand change of a sleeping service.
        state.sleep = Some(Sleep {
            pending: true,
            ..saved.clone()
        });
        if locked.state.sleep != state.sleep {
            self.ports.store.save(key, locked, state).await?;
        }
        if let Some(capacity) = saved.scalable {
            self.ports.autoscaling.set_capacity(key, capacity).await?;
            self.renew_after_the_target(key, locked).await?;
        }
        self.ports
            .ecs
            .set_desired_count(key, saved.desired_count)
            .await
    }

    /// A tag problem: the service is left alone; reported each time, recorded and notified
    /// once per distinct problem.
    async fn invalid(
        &self,
        key: &ServiceKey,
        state: &ServiceState,
        problems: &[TagProblem],
        mode: Mode,
        cause: &str,
    ) -> ServiceReport {
        let reason = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if mode.plan || state.tag_problem.as_deref() == Some(reason.as_str()) {
            return ServiceReport::new(key, Action::Invalid, reason);
        }
        warn!(%reason, "invalid deckhand tags");
        let owner = owner_token(cause);
        let locked = match acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await {
            Ok(locked) => locked,
            Err(e) => return self.failed(key, cause, e).await,
        };
        let now = self.ports.clock.now();
        let new_state = ServiceState {
            tag_problem: Some(reason.clone()),
            ..locked.state.clone()
        };
        let record = HistoryRecord::new(key, now, Action::Invalid, reason.clone(), cause);
        if let Err(e) = self
            .ports
            .store
            .commit(key, &locked, &new_state, &[record], None)
            .await
        {
            return self.failed(key, cause, e).await;
        }
        let details = json!({
            "problems": problems.iter().map(|p| json!({"tag": p.tag, "value": p.value, "message": p.message})).collect::<Vec<_>>(),
        });
        super::publish(
            &self.ports,
            Notification::new(
                Kind::ConfigInvalid,
                Severity::Warning,
                key.to_string(),
                format!(
                    "deckhand tags on {key} do not parse, so its schedule is not applied: {reason}"
                ),
                now,
                details,
            ),
        )
        .await;
        ServiceReport::new(key, Action::Invalid, reason)
    }

    /// Acting failed half-way: keep what is on record (a pending sleep record lets the next
    /// reconcile finish the job), note the failure, give the lock back.
    async fn failed_under_lock(
        &self,
        key: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
        cause: &str,
        e: PortError,
    ) -> ServiceReport {
        let record = HistoryRecord::new(
            key,
            self.ports.clock.now(),
            Action::Error,
            e.to_string(),
            cause,
        );
        if let Err(commit_error) = self
            .ports
            .store
            .commit(key, locked, state, &[record], None)
            .await
        {
            warn!(error = %commit_error, "could not record the failure; the lock expires with its lease");
        }
        self.failed(key, cause, e).await
    }

    async fn failed(&self, key: &ServiceKey, cause: &str, e: PortError) -> ServiceReport {
        error!(error = %e, "scheduling failed");
        super::publish(
            &self.ports,
            Notification::new(
                Kind::Error,
                Severity::Error,
                key.to_string(),
                format!("Scheduling {key} failed; the next reconcile retries it: {e}"),
                self.ports.clock.now(),
                json!({"cause": cause, "error": e.to_string()}),
            ),
        )
        .await;
        ServiceReport::new(key, Action::Error, e.to_string())
    }
}

/// The scheduled actions of a target, and what deckhand does with them.
pub fn scheduled_scaling_words(actions: &[String]) -> String {
    format!(
        "scheduled scaling {} is suspended while deckhand keeps it asleep",
        actions.join(", ")
    )
}

/// What a decision would do, for a plan.
fn planned(key: &ServiceKey, decision: &ScaleDecision, observed: &Observed) -> ServiceReport {
    let (action, reason) = match decision {
        ScaleDecision::Sleep {
            reason,
            asleep_count,
        } => (
            Action::WouldSleep,
            format!(
                "{reason}; would save {} and set {asleep_count}",
                observed_words(observed)
            ),
        ),
        ScaleDecision::Wake { reason, saved } => (
            Action::WouldWake,
            format!("{reason}; would restore {}", saved_words(saved)),
        ),
        ScaleDecision::HandScaled { reason, .. } | ScaleDecision::Postpone { reason } => {
            (Action::Skipped, reason.clone())
        }
        ScaleDecision::Unchanged { reason } => (Action::Unchanged, reason.clone()),
    };
    ServiceReport::new(key, action, reason)
}

fn capacity_words(desired: i32, scalable: Option<Capacity>) -> String {
    match scalable {
        Some(c) => format!(
            "desired count {desired}, autoscaling min {} max {}",
            c.min, c.max
        ),
        None => format!("desired count {desired}"),
    }
}

fn observed_words(observed: &Observed) -> String {
    capacity_words(observed.desired_count, observed.scalable)
}

fn saved_words(saved: &Sleep) -> String {
    capacity_words(saved.desired_count, saved.scalable)
}

fn sleep_words(saved: &Sleep) -> String {
    format!("saved {}, set {}", saved_words(saved), saved.asleep_count)
}

fn wake_words(saved: &Sleep, task_hours: f64) -> String {
    format!(
        "restored {}; asleep since {}, {task_hours} task-hours saved",
        saved_words(saved),
        rfc3339(saved.since)
    )
}

fn scale_record(
    saved: &Sleep,
    task_hours: Option<f64>,
    until: Option<DateTime<Utc>>,
) -> ScaleRecord {
    ScaleRecord {
        desired_count: saved.desired_count,
        min_capacity: saved.scalable.map(|c| c.min),
        max_capacity: saved.scalable.map(|c| c.max),
        asleep_count: saved.asleep_count,
        task_hours_saved: task_hours,
        until,
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[path = "scheduler_known_good.rs"]
mod known_good;

#[path = "scheduler_pair.rs"]
mod pair;

#[path = "scheduler_index.rs"]
mod index;

#[path = "scheduler_keep.rs"]
mod keep;

#[path = "scheduler_restore.rs"]
mod restore;

#[path = "scheduler_lock.rs"]
mod lock_saving;
use lock_saving::prepared;

#[path = "scheduler_summary.rs"]
mod digest;
use digest::{reconcile_measurements, scale_summary};

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
