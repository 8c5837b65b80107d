//! An ECR push: the index and ECR's word on the push side by side, then the services read with
//! the likely deployers' locks taken beside (`deploy_ahead`), the push confirmed, and each
//! service concerned handled (`deploy_push`).

use std::collections::BTreeSet;

use futures::{FutureExt, StreamExt, stream};
use tracing::{Instrument, info, info_span, warn};

use super::ahead::TakenAhead;
use super::pair::Paired;
use super::{CONCURRENCY, DeployError, DeployFunction, Discovered, Gate};
use crate::domain::deploy::Push;
use crate::domain::promotion::TAKES_ONLY;
use crate::domain::service::ServiceKey;
use crate::domain::trust::{PushClaim, check_push};
use crate::ports::PortError;
use crate::report::{Outcome, ServiceReport, Summary};

impl DeployFunction {
    pub(super) async fn on_push(&self, claimed: &Push) -> Result<Summary, DeployError> {
        // Independent reads, side by side: the repository index, and what ECR holds of the
        // pushed digest.
        let (listed, registered) = futures::join!(
            self.ports.images.repository(&claimed.repository),
            self.ports.ecr.image(&claimed.repository, &claimed.digest)
        );
        // What ECR says of the push, decided once; the services concerned are read with the
        // locks of the likely deployers taken beside, for a confirmed push only.
        let claim = registered
            .map(|registered| check_push(claimed, registered.as_ref(), self.ports.clock.now()));
        let confirmed = match &claim {
            Ok(PushClaim::Confirmed(push)) => Some(push),
            _ => None,
        };
        let entries = listed.as_ref().ok().and_then(Option::as_deref);
        let likely = self.ahead_of(confirmed, entries);
        // Which services this event was already handled for: read beside, unless every
        // service the index lists is a likely deployer, whose lock, taken at once, says so.
        let every_one_likely = entries.is_some_and(|listed| {
            listed
                .iter()
                .map(|l| &l.service)
                .filter(|key| self.config.manages_cluster(key.cluster()))
                .all(|key| likely.contains(key))
        });
        let marks = async {
            if every_one_likely {
                None
            } else {
                Some(self.ports.store.processed(&claimed.event_id).await)
            }
        };
        let (discovered, ahead, marks) = futures::join!(
            self.discover(claimed, entries, listed.as_ref().err()),
            self.take_ahead(confirmed, likely.clone()),
            marks
        );
        let done = match (marks, ahead.handled_of(&likely)) {
            (Some(done), _) => done,
            (None, Some(handled)) => Ok(handled),
            (None, None) => self.ports.store.processed(&claimed.event_id).await,
        };
        let handled = self
            .on_discovered(claimed, done, discovered, claim, &ahead)
            .await;
        self.give_back_ahead(ahead).await;
        handled
    }

    /// The push once its services were read: confirmed with ECR, then applied to each.
    async fn on_discovered(
        &self,
        claimed: &Push,
        done: Result<BTreeSet<ServiceKey>, PortError>,
        discovered: Result<Discovered, PortError>,
        claim: Result<PushClaim, PortError>,
        ahead: &TakenAhead,
    ) -> Result<Summary, DeployError> {
        let done = done.map_err(DeployError::Discovery)?;
        let discovered = discovered.map_err(DeployError::Discovery)?;
        let Discovered {
            targets,
            unreadable,
        } = discovered;
        if targets.is_empty() && unreadable.is_empty() {
            return Ok(Summary::ignored(format!(
                "no opted-in service runs an image from {}",
                claimed.repository.name
            )));
        }
        // Nothing is changed on the event's word alone.
        let push = match claim.map_err(DeployError::Unconfirmed)? {
            PushClaim::Confirmed(push) => push,
            PushClaim::Unknown { reason } => {
                warn!(%reason, "a push ECR does not confirm changes nothing");
                return Ok(Summary::ignored(reason));
            }
            PushClaim::Superseded { reason } => {
                info!(%reason, "a superseded push changes nothing");
                return Ok(Summary::whole(Outcome::Skipped, reason));
            }
        };
        let push = &push;
        let mut reports = Vec::new();
        for (key, e) in unreadable {
            reports.push(self.failed(&key, push, None, e).await);
        }
        // A pair's push goes to its idle side, once.
        let keys: std::collections::BTreeSet<ServiceKey> =
            targets.iter().map(|t| t.service.key.clone()).collect();
        let mut resolved = Vec::new();
        for target in targets {
            match self.paired(push, target, &keys).await {
                Paired::Alone(t) | Paired::Deploy(t) => resolved.push(t),
                Paired::ThroughLive => {}
                Paired::Reported(r) => reports.push(r),
            }
        }
        let targets = resolved;
        if targets.is_empty() && reports.is_empty() {
            return Ok(Summary::ignored(format!(
                "no opted-in service runs an image from {}",
                push.repository.name
            )));
        }
        let waiting = match self.config.require_scan {
            Some(_) if !targets.is_empty() => Some(self.wait_for_scans(push).await),
            _ => None,
        };
        let gate = waiting.as_ref().map_or(Gate::Off, Gate::Hold);
        let handled: Vec<(ServiceKey, ServiceReport)> = stream::iter(targets)
            .map(|target| {
                let key = target.service.key.clone();
                let span = info_span!("service", service = %key);
                self.push_to_service(push, target, &done, gate, ahead)
                    .instrument(span)
                    .map(move |r| (key, r))
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let handled = match &waiting {
            Some(waiting) => self.decide_if_scanned(waiting, handled).await,
            None => handled,
        };
        reports.extend(handled.into_iter().map(|(_, r)| r));
        // Services that take promotions only say best why a push left them alone.
        let only = reports
            .iter()
            .all(|r| r.reason.starts_with(TAKES_ONLY))
            .then(|| reports.first().map(|r| r.reason.clone()))
            .flatten();
        Ok(Summary::of(reports, || {
            match (only, &push.promoted, &push.tag) {
                (Some(reason), _, _) => reason,
                (None, Some(p), _) => {
                    format!("no service here takes promotions from {}", p.upstream())
                }
                (None, None, Some(tag)) => format!("tag {tag} matches no service's deploy policy"),
                (None, None, None) => "the push has no tag".into(),
            }
        }))
    }
}
