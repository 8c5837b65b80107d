//! The reconcile: every opted-in service found, read in batches, decided against its schedule
//! at one instant, and acted on under its lock, most urgent first, within the invocation.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use tracing::{Instrument, info, info_span, warn};

use super::{
    DEFERRED, Job, Mode, SchedulerError, SchedulerFunction, Subject, most_urgent_first,
    pairs_moving, planned, reconcile_measurements, scale_summary,
};
use crate::domain::fleet::ServiceView;
use crate::domain::service::ServiceKey;
use crate::domain::settings::{DeploySettings, ScheduleSettings, TAG_DEPLOY};
use crate::domain::sleep::{Observed, ScaleDecision, decide_scale, task_hours_saved};
use crate::domain::state::{Capacity, ServiceState, Sleep};
use crate::report::{Action, ServiceReport, Summary};

impl SchedulerFunction {
    pub(super) async fn reconcile(
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
                crate::app::publish(&self.ports, n).await;
            }
        }
        Ok(summary)
    }

    /// A plan says which services have scheduled scaling on their scalable target: deckhand
    /// suspends it while they sleep, and restores it when they wake.
    pub(super) async fn tell_scheduled_scaling(
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

    pub(super) async fn reconcile_service(
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
}

/// The scheduled actions of a target, and what deckhand does with them.
pub fn scheduled_scaling_words(actions: &[String]) -> String {
    format!(
        "scheduled scaling {} is suspended while deckhand keeps it asleep",
        actions.join(", ")
    )
}
