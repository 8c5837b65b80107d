//! The scan gate of the `deploy` function: pushes that would deploy wait for the scans of what
//! they pushed (the image, or every image of an index); a scan event (`ECR Image Scan`, or
//! `Inspector2 Scan` with enhanced scanning) says when to read ECR's findings, which decide, as they
//! do once the wait runs out.
//! A wait that cannot be decided when it runs out ends undeployed, with the reason said.

use std::collections::BTreeMap;

use futures::{StreamExt, stream};
use tracing::{Instrument, info_span, warn};

use super::wait::Holders;
use super::{CONCURRENCY, DeployError, DeployFunction, report};
use crate::domain::artifact::Manifest;
use crate::domain::deploy::Push;
use crate::domain::image::{Digest, Repository};
use crate::domain::scan::{FindingSeverity, ScanEvent, ScanResult, ScanVerdict, judge_scan};
use crate::domain::scan_wait::waiting_for;
use crate::domain::service::ServiceKey;
use crate::domain::state::ServiceState;
use crate::domain::state::WaitingPush;
use crate::ports::{PortError, PortErrorKind};
use crate::report::{Action, ServiceReport, Summary};

impl DeployFunction {
    /// The wait a gated push starts. An index (or a push whose event does not say what it is)
    /// is read first: ECR scans the images it lists, never the index. If it cannot be read
    /// now, it is read again when the wait runs out.
    pub(super) async fn wait_for_scans(&self, push: &Push) -> WaitingPush {
        let mut waiting = WaitingPush::new(push, self.ports.clock.now());
        if let Err(e) = self.read_images(&mut waiting).await {
            warn!(error = %e, "could not read the pushed manifest; it is read again when the wait runs out");
        }
        waiting
    }

    async fn read_images(&self, waiting: &mut WaitingPush) -> Result<(), PortError> {
        if !waiting.needs_manifest() {
            return Ok(());
        }
        let manifest = self
            .ports
            .ecr
            .manifest(&waiting.repository, &waiting.digest)
            .await?;
        waiting.read(match manifest {
            Manifest::Image => None,
            Manifest::Index { images } => Some(images),
        });
        Ok(())
    }

    /// A scan event: decides the pushes waiting for this digest's scan.
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
        // The event only says that a scan ended: what it found is read from ECR (Inspector's
        // findings included), never taken from the counts the event carries.
        let claimed = judge_scan(&scan.result, gate, &scan.digest);
        let verdict = match self
            .ports
            .ecr
            .scan_findings(&scan.repository, &scan.digest)
            .await
        {
            // ECR has no scan of it (yet): the wait goes on, and runs out as any other.
            Ok(ScanResult::NotRun) => ScanVerdict::Pending,
            Ok(result) => judge_scan(&result, gate, &scan.digest),
            Err(e) => {
                warn!(error = %e, "could not read the findings; the push keeps waiting");
                ScanVerdict::Pending
            }
        };
        if verdict != ScanVerdict::Pending && !same_kind(&claimed, &verdict) {
            warn!(event = ?claimed, ecr = ?verdict, "the scan event says otherwise than ECR's findings; ECR's decide");
        }
        let reports = self
            .judge_holders(holders, &scan.digest, verdict, &scan.event_id)
            .await;
        Ok(Summary::of(reports, String::new))
    }

    /// Each holder takes the verdict of the scan of `digest`: a decided wait is settled, an
    /// index with images still to be scanned keeps what was found clean.
    async fn judge_holders(
        &self,
        holders: Holders,
        digest: &Digest,
        verdict: ScanVerdict,
        cause: &str,
    ) -> Vec<ServiceReport> {
        let mut decided: Vec<(ScanVerdict, Holders)> = Vec::new();
        let mut reports = Vec::new();
        for (key, mut held) in holders {
            let before = held.clean.len();
            match held.judge(digest, verdict.clone()) {
                ScanVerdict::Pending if held.clean.len() > before => {
                    reports.push(self.record_progress(&key, &held).await);
                }
                ScanVerdict::Pending => {
                    let mut r = report(&key, Action::Waiting, held.progress());
                    r.digest = Some(held.digest.to_string());
                    reports.push(r);
                }
                verdict => match decided.iter_mut().find(|(v, _)| *v == verdict) {
                    Some((_, holders)) => holders.push((key, held)),
                    None => decided.push((verdict, vec![(key, held)])),
                },
            }
        }
        for (verdict, holders) in decided {
            reports.extend(self.settle(holders, &verdict, cause).await);
        }
        reports
    }

    /// What ECR's findings say of a held push, asking for each image not judged yet. `Pending`
    /// while a scan runs; a scan that never ran counts only once the wait is `overdue` (before,
    /// its event may still be on the way).
    async fn check_with_ecr(
        &self,
        held: &mut WaitingPush,
        gate: FindingSeverity,
        overdue: bool,
    ) -> Result<ScanVerdict, PortError> {
        self.read_images(held).await?;
        let unjudged = held.unjudged().unwrap_or_default();
        if unjudged.is_empty() {
            // An index that lists no image: nothing will ever be scanned.
            let own = held.digest.clone();
            return Ok(held.judge(&own, ScanVerdict::Pending));
        }
        let mut verdict = ScanVerdict::Pending;
        for digest in unjudged {
            let result = self
                .ports
                .ecr
                .scan_findings(&held.repository, &digest)
                .await?;
            let judged = judge_scan(&result, gate, &digest);
            if judged == ScanVerdict::Pending || (!overdue && result == ScanResult::NotRun) {
                continue;
            }
            verdict = held.judge(&digest, judged);
            if verdict != ScanVerdict::Pending {
                break;
            }
        }
        Ok(verdict)
    }

    /// A push whose images ECR has already scanned is decided at once rather than after the
    /// wait: their scan events came first, or the tag names an image scanned before (a retag
    /// starts no new scan). Replaces the `waiting` reports of the services it decided.
    pub(super) async fn decide_if_scanned(
        &self,
        waiting: &WaitingPush,
        handled: Vec<(ServiceKey, ServiceReport)>,
    ) -> Vec<(ServiceKey, ServiceReport)> {
        let Some(gate) = self.config.require_scan else {
            return handled;
        };
        let holders: Holders = handled
            .iter()
            .filter(|(_, r)| r.action == Action::Waiting)
            .map(|(key, _)| (key.clone(), waiting.clone()))
            .collect();
        if holders.is_empty() {
            return handled;
        }
        let verdict = match self.check_with_ecr(&mut waiting.clone(), gate, false).await {
            Ok(verdict) => verdict,
            Err(e) => {
                warn!(error = %e, "could not read the scan findings; the push waits for its scan events");
                return handled;
            }
        };
        if verdict == ScanVerdict::Pending {
            return handled;
        }
        let cause = format!("scan-check:{}", waiting.event_id);
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

    /// Waits that ran out are decided from ECR's findings, as the scan events would have
    /// decided them. One that still cannot be decided (the scan never ran or did not finish,
    /// the findings or the manifest cannot be read) ends undeployed, with the reason notified:
    /// a push never waits unseen. Reports only the services whose wait ended.
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
        for (_, holders) in overdue {
            let mut first = holders[0].1.clone();
            let verdict = match self.check_with_ecr(&mut first, gate, true).await {
                Ok(ScanVerdict::Pending) => ScanVerdict::Unscanned {
                    reason: format!(
                        "{} when the wait of {} minutes ran out; the digest is not deployed (push it again once ECR has scanned it)",
                        undecided(&first),
                        self.config.scan_wait.num_minutes()
                    ),
                },
                Ok(verdict) => verdict,
                // Best effort: a throttled or failed read is tried again by the next event or
                // reconcile, for as long again as the wait itself, before the push is given up.
                Err(e)
                    if e.kind == PortErrorKind::Transient
                        && !first.is_overdue(now, self.config.scan_wait * 2) =>
                {
                    warn!(error = %e, digest = %first.digest, "could not check an overdue scan; the next event tries again");
                    ScanVerdict::Pending
                }
                Err(e) => ScanVerdict::Unscanned {
                    reason: format!(
                        "the scan of {} could not be checked when its wait ran out ({e}); the digest is not deployed (push it again to retry)",
                        first.digest.short()
                    ),
                },
            };
            // One cause per digest and wait, so a retried check is recognised as the same.
            let cause = format!("scan-check:{}", first.event_id);
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

    /// Applies a decided verdict to every service holding the push.
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
                    let mut r = report(key, Action::Waiting, held.progress());
                    r.digest = Some(held.digest.to_string());
                    r
                })
                .collect(),
            ScanVerdict::Clean { counts } => self.release_clean(holders, counts).await,
            ScanVerdict::Vulnerable { reason, counts } => {
                stream::iter(holders)
                    .map(|(key, held)| {
                        let span = info_span!("service", service = %key);
                        self.end_held(
                            key,
                            held,
                            cause,
                            super::wait::Ending::Quarantine(reason, counts),
                        )
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
                        self.end_held(key, held, cause, super::wait::Ending::Unscanned(reason))
                            .instrument(span)
                    })
                    .buffer_unordered(CONCURRENCY)
                    .collect()
                    .await
            }
        }
    }
}

fn same_kind(a: &ScanVerdict, b: &ScanVerdict) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// What a wait still lacked when it ran out.
fn undecided(held: &WaitingPush) -> String {
    match held.unjudged() {
        None => format!("the manifest of {} was never read", held.digest.short()),
        Some(images) if images.len() > 1 || images.first() != Some(&held.digest) => format!(
            "{}; not yet scanned: {}",
            held.progress(),
            images
                .iter()
                .map(Digest::short)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(_) => format!("the scan of {} had not finished", held.digest.short()),
    }
}
