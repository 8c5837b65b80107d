//! The scan gate of the `deploy` function: pushes that would deploy wait for the scan of their
//! digest; the scan event (or, once the wait runs out, ECR's findings) decides.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, stream};
use serde_json::json;
use tracing::{Instrument, info_span, warn};

use super::{
    CONCURRENCY, DeployError, DeployFunction, Gate, Target, push_details, push_name, push_record,
    report, rfc3339,
};
use crate::app::locking::{acquire, owner_token};
use crate::domain::deploy::Push;
use crate::domain::image::{Digest, Repository};
use crate::domain::scan::{
    FindingSeverity, Hold, ScanEvent, ScanResult, ScanVerdict, WaitingPush, describe_counts,
    end_wait, hold_for_scan, judge_scan, waiting_for,
};
use crate::domain::service::ServiceKey;
use crate::domain::state::{Quarantine, ServiceState};
use crate::history::{HistoryRecord, ProcessedMark};
use crate::notification::{Kind, Notification, Severity};
use crate::ports::{Locked, PortError};
use crate::report::{Action, ServiceReport, Summary};

/// The services holding a push of one digest, with the push each holds.
type Holders = Vec<(ServiceKey, WaitingPush)>;

impl DeployFunction {
    /// An `ECR Image Scan` event: decides the pushes waiting for this digest's scan.
    pub(super) async fn on_scan(&self, scan: &ScanEvent) -> Result<Summary, DeployError> {
        let Some(gate) = self.config.require_scan else {
            return Ok(Summary::ignored(
                "no scan gate is configured (DECKHAND_REQUIRE_SCAN is not set)",
            ));
        };
        let waiting = self.waiting().await.map_err(DeployError::Discovery)?;
        let holders: Holders = waiting
            .iter()
            .filter_map(|(key, state)| {
                let held = waiting_for(state, &scan.repository, &scan.digest)?;
                Some((key.clone(), held.clone()))
            })
            .collect();
        if holders.is_empty() {
            return Ok(Summary::ignored(format!(
                "no push waits for the scan of {} in {}",
                scan.digest.short(),
                scan.repository.name
            )));
        }
        let verdict = judge_scan(&scan.result, gate, &scan.digest);
        let reports = self.settle(holders, &verdict, &scan.event_id).await;
        Ok(Summary::of(reports, String::new))
    }

    /// A push whose digest ECR has already scanned is decided at once rather than after the
    /// wait: its scan event came first, or the tag names an image scanned before (a retag
    /// starts no new scan). Replaces the `waiting` reports of the services it decided.
    pub(super) async fn decide_if_scanned(
        &self,
        push: &Push,
        gate: FindingSeverity,
        handled: Vec<(ServiceKey, ServiceReport)>,
    ) -> Vec<(ServiceKey, ServiceReport)> {
        let now = self.ports.clock.now();
        let holders: Holders = handled
            .iter()
            .filter(|(_, r)| r.action == Action::Waiting)
            .map(|(key, _)| (key.clone(), WaitingPush::new(push, now)))
            .collect();
        if holders.is_empty() {
            return handled;
        }
        let result = match self
            .ports
            .ecr
            .scan_findings(&push.repository, &push.digest)
            .await
        {
            Ok(result) => result,
            Err(e) => {
                warn!(error = %e, "could not read the scan findings; the push waits for its scan event");
                return handled;
            }
        };
        // Not started yet or still running: the scan event decides.
        if matches!(result, ScanResult::InProgress | ScanResult::NotRun) {
            return handled;
        }
        let verdict = judge_scan(&result, gate, &push.digest);
        let cause = format!("scan-check:{}", push.event_id);
        let mut decided: BTreeMap<String, ServiceReport> = self
            .settle(holders, &verdict, &cause)
            .await
            .into_iter()
            .map(|r| (r.service.clone(), r))
            .collect();
        handled
            .into_iter()
            .map(|(key, r)| {
                let r = match decided.remove(&key.to_string()) {
                    Some(settled) if r.action == Action::Waiting => settled,
                    _ => r,
                };
                (key, r)
            })
            .collect()
    }

    /// Waits that ran out: ECR is asked for each digest's findings, which decide as the scan
    /// event would have. Reports only the services whose wait ended or could not be checked.
    pub(super) async fn settle_overdue(&self) -> Vec<ServiceReport> {
        let Some(gate) = self.config.require_scan else {
            return Vec::new();
        };
        let waiting = match self.waiting().await {
            Ok(waiting) => waiting,
            Err(e) => {
                warn!(error = %e, "could not read the pushes waiting for their scan");
                return Vec::new();
            }
        };
        let now = self.ports.clock.now();
        let mut overdue: BTreeMap<(Repository, Digest), Holders> = BTreeMap::new();
        for (key, state) in &waiting {
            for held in state.waiting.values() {
                if held.is_overdue(now, self.config.scan_wait) {
                    overdue
                        .entry((held.repository.clone(), held.digest.clone()))
                        .or_default()
                        .push((key.clone(), held.clone()));
                }
            }
        }
        let mut reports = Vec::new();
        for ((repository, digest), holders) in overdue {
            let verdict = match self.ports.ecr.scan_findings(&repository, &digest).await {
                Ok(result) => judge_scan(&result, gate, &digest),
                Err(e) => {
                    warn!(error = %e, %digest, "could not read the scan findings; the push keeps waiting");
                    continue;
                }
            };
            if verdict == ScanVerdict::Pending {
                continue;
            }
            // One cause per digest and wait, so a retried check is recognised as the same.
            let cause = format!("scan-check:{}", holders[0].1.event_id);
            reports.extend(self.settle(holders, &verdict, &cause).await);
        }
        reports
    }

    /// The services with a push waiting, and their states.
    async fn waiting(&self) -> Result<BTreeMap<ServiceKey, ServiceState>, PortError> {
        let keys = self.ports.store.waiting().await?;
        if keys.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.ports.store.load_many(&keys).await
    }

    /// Applies a scan's verdict to every service holding a push of the digest.
    async fn settle(
        &self,
        holders: Holders,
        verdict: &ScanVerdict,
        cause: &str,
    ) -> Vec<ServiceReport> {
        match verdict {
            ScanVerdict::Pending => holders
                .iter()
                .map(|(key, held)| {
                    let mut r = report(
                        key,
                        Action::Waiting,
                        format!("the scan of {} is still running", held.digest.short()),
                    );
                    r.digest = Some(held.digest.to_string());
                    r
                })
                .collect(),
            ScanVerdict::Clean { counts } => self.release_clean(holders, counts).await,
            ScanVerdict::Vulnerable { reason, counts } => {
                stream::iter(holders)
                    .map(|(key, held)| {
                        let span = info_span!("service", service = %key);
                        self.end_held(key, held, cause, Ending::Quarantine(reason, counts))
                            .instrument(span)
                    })
                    .buffer_unordered(CONCURRENCY)
                    .collect()
                    .await
            }
            ScanVerdict::Unscanned { reason } => {
                stream::iter(holders)
                    .map(|(key, held)| {
                        let span = info_span!("service", service = %key);
                        self.end_held(key, held, cause, Ending::Unscanned(reason))
                            .instrument(span)
                    })
                    .buffer_unordered(CONCURRENCY)
                    .collect()
                    .await
            }
        }
    }

    /// A clean scan: each held push goes through the push path again (policy, ordering,
    /// quarantine, already running), now past the gate.
    async fn release_clean(
        &self,
        holders: Holders,
        counts: &BTreeMap<String, i64>,
    ) -> Vec<ServiceReport> {
        let found = describe_counts(counts);
        let keys: Vec<ServiceKey> = holders.iter().map(|(k, _)| k.clone()).collect();
        let services = match self.ports.ecs.describe_services(&keys).await {
            Ok(services) => services,
            Err(e) => {
                return keys
                    .iter()
                    .map(|k| report(k, Action::Error, e.to_string()))
                    .collect();
            }
        };
        let held: BTreeMap<ServiceKey, WaitingPush> = holders.into_iter().collect();
        let none = BTreeSet::new();
        let mut reports = Vec::new();
        for service in services {
            let Some(waiting) = held.get(&service.key) else {
                continue;
            };
            let push = waiting.push();
            let key = service.key.clone();
            let task_definition = match self
                .ports
                .ecs
                .describe_task_definition(&service.task_definition)
                .await
            {
                Ok(td) => td,
                Err(e) => {
                    reports.push(report(&key, Action::Error, e.to_string()));
                    continue;
                }
            };
            let target = Target {
                service,
                task_definition,
            };
            let span = info_span!("service", service = %key);
            let mut r = self
                .push_to_service(&push, target, &none, Gate::Passed)
                .instrument(span)
                .await;
            // Decided outside the lock (the policy no longer takes it, bad tags): the wait
            // still has to end.
            if matches!(r.action, Action::Ignored | Action::Invalid)
                && let Err(e) = self.end_wait_only(&key, &push).await
            {
                r = report(&key, Action::Error, e.to_string());
            }
            if r.action == Action::Deployed {
                r.reason = format!("scan clean ({found}); {}", r.reason);
            }
            reports.push(r);
        }
        // Held by services that no longer exist: nothing to deploy to, the wait ends.
        for (key, waiting) in &held {
            if !reports.iter().any(|r| r.service == key.to_string()) {
                let push = waiting.push();
                if let Err(e) = self.end_wait_only(key, &push).await {
                    reports.push(report(key, Action::Error, e.to_string()));
                } else {
                    reports.push(report(key, Action::Ignored, "the service no longer exists"));
                }
            }
        }
        reports
    }

    /// A push that would deploy, held for its scan: recorded as waiting, no notification.
    pub(super) async fn hold(
        &self,
        push: &Push,
        key: &ServiceKey,
        locked: &Locked,
        mut state: ServiceState,
        mut record: HistoryRecord,
        gate: Gate,
    ) -> ServiceReport {
        let now = record.at;
        let Gate::Hold(severity) = gate else {
            return report(key, Action::Error, "hold called without a gate");
        };
        let mut records = Vec::new();
        let (action, reason) = match hold_for_scan(&mut state, push, now) {
            Hold::Held { replaced } => {
                if let Some(older) = replaced {
                    let mut superseded = push_record(
                        key,
                        &older.push(),
                        now,
                        Action::Skipped,
                        format!(
                            "superseded while waiting for its scan by the newer push {}",
                            push_name(push)
                        ),
                    );
                    superseded.cause = older.event_id.clone();
                    records.push(superseded);
                }
                (
                    Action::Waiting,
                    format!(
                        "waiting for the ECR scan of {} (the gate holds back {severity} and above)",
                        push.digest.short()
                    ),
                )
            }
            Hold::NewerWaiting(newer) => (
                Action::Skipped,
                format!(
                    "a newer push ({}) is waiting for its scan; this one is from {}",
                    newer.describe(),
                    rfc3339(push.at)
                ),
            ),
        };
        record.action = action;
        record.reason = reason.clone();
        records.insert(0, record);
        let mark = ProcessedMark {
            event_id: push.event_id.clone(),
            service: key.clone(),
            at: now,
        };
        if let Err(e) = self
            .ports
            .store
            .commit(key, locked, &state, &records, Some(&mark))
            .await
        {
            return self.failed(key, push, None, e).await;
        }
        let mut r = report(key, action, reason);
        r.digest = Some(push.digest.to_string());
        r
    }

    /// Ends a wait the push path did not end itself (it decided outside the lock).
    async fn end_wait_only(&self, key: &ServiceKey, push: &Push) -> Result<(), PortError> {
        let owner = owner_token(&format!("scan-end:{}", push.event_id));
        let locked = acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await?;
        let mut state = locked.state.clone();
        if waiting_for(&state, &push.repository, &push.digest).is_none() {
            return self.ports.store.release(key, &locked.owner).await;
        }
        end_wait(&mut state, &push.repository);
        self.ports
            .store
            .commit(key, &locked, &state, &[], None)
            .await
    }

    /// Ends a wait without deploying: quarantined by its findings, or no usable scan.
    async fn end_held(
        &self,
        key: ServiceKey,
        held: WaitingPush,
        cause: &str,
        ending: Ending<'_>,
    ) -> ServiceReport {
        let push = held.push();
        let key = &key;
        let locked = match acquire(
            &*self.ports.store,
            &*self.ports.clock,
            key,
            &owner_token(cause),
        )
        .await
        {
            Ok(locked) => locked,
            Err(e) => return self.failed(key, &push, None, e).await,
        };
        let mut state = locked.state.clone();
        if waiting_for(&state, &push.repository, &push.digest).is_none() {
            // Settled meanwhile by another event.
            if let Err(e) = self.ports.store.release(key, &locked.owner).await {
                warn!(error = %e, "could not release the lock; it expires with its lease");
            }
            return report(
                key,
                Action::Duplicate,
                "the scan of this push was already decided",
            );
        }
        end_wait(&mut state, &push.repository);
        let now = self.ports.clock.now();
        let (action, reason, kind, summary, details) = match ending {
            Ending::Quarantine(reason, counts) => {
                state.quarantine.insert(
                    push.digest.to_string(),
                    Quarantine {
                        reason: reason.clone(),
                        at: now,
                        deployment: None,
                    },
                );
                let mut details = push_details(&push, &[], None, None);
                details["findingSeverityCounts"] = json!(counts);
                (
                    Action::Quarantined,
                    reason.clone(),
                    Kind::DeployQuarantined,
                    format!(
                        "Not deploying {} to {key}: {reason}; the digest is quarantined for the service",
                        push_name(&push)
                    ),
                    details,
                )
            }
            Ending::Unscanned(reason) => (
                Action::Skipped,
                reason.clone(),
                Kind::DeploySkipped,
                format!("Not deploying {} to {key}: {reason}", push_name(&push)),
                push_details(&push, &[], None, None),
            ),
        };
        let record = push_record(key, &push, now, action, reason.clone());
        let mark = ProcessedMark {
            event_id: cause.to_owned(),
            service: key.clone(),
            at: now,
        };
        if let Err(e) = self
            .ports
            .store
            .commit(key, &locked, &state, &[record], Some(&mark))
            .await
        {
            return self.failed(key, &push, None, e).await;
        }
        self.notify(Notification::new(
            kind,
            Severity::Warning,
            key.to_string(),
            summary,
            now,
            details,
        ))
        .await;
        let mut r = report(key, action, reason);
        r.digest = Some(push.digest.to_string());
        r
    }
}

/// How a wait ends when the push does not deploy.
enum Ending<'a> {
    Quarantine(&'a String, &'a BTreeMap<String, i64>),
    Unscanned(&'a String),
}
