//! The reconcile's check of the repository index: it reads every opted-in service anyway, so
//! it brings each entry up to what the service runs and takes out the services that are gone
//! or opted out. Pushes trust the index; this is what repairs any drift they cannot see.

use std::collections::BTreeSet;

use tracing::{info, warn};

use super::SchedulerFunction;
use crate::app::deploy::DeployFunction;
use crate::domain::fleet::ServiceView;
use crate::domain::service::ServiceKey;
use crate::ports::{IndexUpdate, KnownContainers};
use crate::report::IndexCheck;

impl SchedulerFunction {
    /// `deployed` are the opted-in services this reconcile read; `complete` when it read every
    /// one it found (no batch failed), so that the repositories they run count as seen and an
    /// entry of a service it did not read can be taken out.
    pub(super) async fn check_index(&self, deployed: &[ServiceView], complete: bool) -> IndexCheck {
        let deploy = DeployFunction::new(self.ports.clone(), self.config.clone());
        let (_, repaired) = deploy.index_fleet(deployed, complete).await;
        let removed = if complete {
            self.remove_unlisted(deployed).await
        } else {
            0
        };
        let check = IndexCheck {
            checked: deployed.len(),
            repaired,
            removed,
        };
        if repaired + removed > 0 {
            info!(
                checked = check.checked,
                repaired, removed, "the repository index had drifted from the fleet; repaired"
            );
        }
        check
    }

    /// Services the index has an entry for that are not among the opted-in ones read.
    async fn remove_unlisted(&self, deployed: &[ServiceView]) -> usize {
        let opted_in: BTreeSet<&ServiceKey> = deployed.iter().map(|s| &s.key).collect();
        let indexed = match self.ports.images.indexed().await {
            Ok(indexed) => indexed,
            Err(e) => {
                warn!(error = %e, "could not list the index's services");
                return 0;
            }
        };
        let gone: Vec<ServiceKey> = indexed
            .into_iter()
            .filter(|k| self.config.manages_cluster(k.cluster()) && !opted_in.contains(k))
            .collect();
        if gone.is_empty() {
            return 0;
        }
        let entries = match self.ports.images.containers(&gone).await {
            Ok(entries) => entries,
            Err(e) => {
                warn!(error = %e, "could not read the entries of services no longer opted in");
                return 0;
            }
        };
        let updates: Vec<IndexUpdate> = gone
            .into_iter()
            .map(|k| {
                let before = entries
                    .get(&k)
                    .map(KnownContainers::repositories)
                    .unwrap_or_default();
                IndexUpdate::removal(k, before)
            })
            .collect();
        match self.ports.images.update(&updates, false).await {
            Ok(()) => updates.len(),
            Err(e) => {
                warn!(error = %e, "could not take services no longer opted in out of the index");
                0
            }
        }
    }
}
