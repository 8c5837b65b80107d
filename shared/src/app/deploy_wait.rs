//! The scan gate's waits under the service's lock: a push held, a clean scan sending it down
//! the push path again, a verdict ending it undeployed, an index's progress kept.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use tracing::{Instrument, info_span, warn};

use super::pair::Paired;
use super::{DeployFunction, Gate, push_details, push_name, push_record, report, rfc3339};
use crate::app::locking::{acquire, owner_token};
use crate::domain::artifact::ManifestKind;
use crate::domain::deploy::Push;
use crate::domain::scan::describe_counts;
use crate::domain::scan_wait::{Hold, end_wait, hold_for_scan, wait_of};
use crate::domain::service::ServiceKey;
use crate::domain::state::WaitingPush;
use crate::domain::state::{Quarantine, ServiceState};
use crate::history::{HistoryRecord, ProcessedMark};
use crate::notification::{Kind, Notification, Severity};
use crate::ports::{Locked, PortError};
use crate::report::{Action, ServiceReport};

/// The services holding a push of one digest, with the push each holds.
pub(super) type Holders = Vec<(ServiceKey, WaitingPush)>;

impl DeployFunction {
    /// A clean scan: each held push goes through the push path again (policy, ordering,
    /// quarantine, already running), now past the gate.
    pub(super) async fn release_clean(
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
            let plain = match self.plain_target(service).await {
                Ok(target) => target,
                Err(e) => {
                    reports.push(report(&key, Action::Error, e.to_string()));
                    continue;
                }
            };
            // The wait of a pair is held on its idle side: the push goes there again.
            let target = match self.paired(&push, plain, &none).await {
                Paired::Alone(t) | Paired::Deploy(t) => t,
                Paired::ThroughLive => continue,
                Paired::Reported(r) => {
                    reports.push(r);
                    continue;
                }
            };
            let span = info_span!("service", service = %key);
            let mut r = self
                .push_to_service(&push, target, &none, Gate::Passed, &Default::default())
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
        gate: Gate<'_>,
    ) -> ServiceReport {
        let now = record.at;
        let (Gate::Hold(waiting), Some(severity)) = (gate, self.config.require_scan) else {
            return report(key, Action::Error, "hold called without a gate");
        };
        let mut records = Vec::new();
        let scans = match (waiting.manifest, &waiting.images) {
            (ManifestKind::Image, _) => format!("the ECR scan of {}", push.digest.short()),
            (_, Some(images)) => format!(
                "the ECR scans of the {} images of the index {}",
                images.len(),
                push.digest.short()
            ),
            (_, None) => format!(
                "the ECR scan of {} (its manifest is read again when the wait runs out)",
                push.digest.short()
            ),
        };
        let (action, reason) = match hold_for_scan(&mut state, waiting.clone()) {
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
                    format!("waiting for {scans} (the gate holds back {severity} and above)"),
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

    /// An index some of whose images were scanned clean: kept, so that the scans still to
    /// come decide with them. No history record: nothing was decided.
    pub(super) async fn record_progress(
        &self,
        key: &ServiceKey,
        held: &WaitingPush,
    ) -> ServiceReport {
        let push = held.push();
        let owner = owner_token(&format!("scan-progress:{}", push.event_id));
        let saved = async {
            let locked = acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await?;
            let mut state = locked.state.clone();
            let Some(current) = wait_of(&state, &push).cloned() else {
                self.ports.store.release(key, &locked.owner).await?;
                return Ok(false);
            };
            let mut merged = current;
            merged.images = merged.images.or_else(|| held.images.clone());
            merged.manifest = held.manifest;
            for (digest, counts) in &held.clean {
                merged.clean.insert(digest.clone(), counts.clone());
            }
            state.waiting.insert(push.repository.to_string(), merged);
            self.ports
                .store
                .commit(key, &locked, &state, &[], None)
                .await
                .map(|()| true)
        };
        match saved.await {
            Ok(true) => {
                let mut r = report(key, Action::Waiting, held.progress());
                r.digest = Some(push.digest.to_string());
                r
            }
            Ok(false) => report(
                key,
                Action::Duplicate,
                "the scan of this push was already decided",
            ),
            Err(e) => report(key, Action::Error, e.to_string()),
        }
    }

    /// Ends a wait the push path did not end itself (it decided outside the lock).
    async fn end_wait_only(&self, key: &ServiceKey, push: &Push) -> Result<(), PortError> {
        let owner = owner_token(&format!("scan-end:{}", push.event_id));
        let locked = acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await?;
        let mut state = locked.state.clone();
        if wait_of(&state, push).is_none() {
            return self.ports.store.release(key, &locked.owner).await;
        }
        end_wait(&mut state, &push.repository);
        self.ports
            .store
            .commit(key, &locked, &state, &[], None)
            .await
    }

    /// Ends a wait without deploying: quarantined by its findings, or no usable scan.
    pub(super) async fn end_held(
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
        if wait_of(&state, &push).is_none() {
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
pub(super) enum Ending<'a> {
    Quarantine(&'a String, &'a BTreeMap<String, i64>),
    Unscanned(&'a String),
}
