//! Revision retention of the `deploy` function: once a deployment completes, the family's
//! older ACTIVE revisions beyond `deckhand:keep-revisions` that deckhand itself registered are
//! deregistered, never one that this or another opted-in service of the family runs, is moving
//! between, or may roll back to. A revision deckhand did not register (Terraform's, a CI
//! pipeline's, one a scheduled task or another account's job names) is never touched: deckhand
//! cannot see who else needs it.
//! It runs after the completion is committed, outside the service's lock: a concurrent push
//! only adds newer revisions, and moves from the running one, which is kept.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::{DeployFunction, lock_memo};
use crate::app::paced;
use crate::domain::fleet::ServiceView;
use crate::domain::pace::TASK_DEFINITION_WRITES;
use crate::domain::retention::{
    family_and_number, name_revisions, needed_by, revisions_to_deregister,
};
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::state::ServiceState;
use crate::history::HistoryRecord;
use crate::ports::PortError;
use crate::report::Action;

/// At most this many revisions are deregistered per completed deployment, oldest first, so a
/// family with a long history is trimmed over a few deployments, each a few calls, rather than
/// in one long invocation (ECS allows one task definition write a second, after a burst of 20).
const MAX_DEREGISTERED: usize = 5;
/// At most this many revisions are described per completed deployment to learn who registered
/// them; the process remembers the answers, so revisions others registered are passed over
/// quickly by the next events.
const MAX_DESCRIBED: usize = 20;

impl DeployFunction {
    /// Deregisters the revisions retention lets go and records them in the history. Returns
    /// what it did, for the summary. Housekeeping: a failure is logged and said, never retried
    /// by failing the event; the next completed deployment tries again.
    pub(super) async fn retire_revisions(
        &self,
        service: &ServiceView,
        state: &ServiceState,
        keep: usize,
        cause: &str,
    ) -> Option<String> {
        let key = &service.key;
        let current = state
            .deployment
            .as_ref()
            .map_or(service.task_definition.as_str(), |d| d.to.as_str());
        let family = family_and_number(current)?.0.to_owned();
        let now = self.ports.clock.now();
        let active = match self.ports.ecs.active_revisions(&family).await {
            Ok(active) => active,
            Err(e) => {
                warn!(error = %e, %family, "could not list the family's revisions");
                return Some(format!("could not list the revisions of {family}: {e}"));
            }
        };
        let mut needed = needed_by(state, Some(service), now);
        if revisions_to_deregister(&active, keep, &needed).is_empty() {
            return None;
        }
        match self.needed_by_others(key, &family, now).await {
            Ok(others) => needed.extend(others),
            Err(e) => {
                warn!(error = %e, %family, "could not read the other services of the family");
                return Some(format!(
                    "no revision deregistered: the other services of {family} could not be read ({e})"
                ));
            }
        }
        let candidates = revisions_to_deregister(&active, keep, &needed);
        let mut deregistered = Vec::new();
        let mut failed = Vec::new();
        let mut described = 0;
        // Oldest first; each deregistration is recorded as it is done, so that an invocation
        // stopped half-way leaves a true history.
        for arn in candidates {
            if deregistered.len() + failed.len() >= MAX_DEREGISTERED {
                break;
            }
            match self.registered_by_deckhand(&arn, &mut described).await {
                Ok(Some(true)) => {}
                Ok(Some(false)) => continue,
                // The description budget of this event is spent: the next one goes on.
                Ok(None) => break,
                Err(e) => {
                    warn!(error = %e, revision = revision_name(&arn), "could not read who registered it");
                    failed.push(format!("{} ({e})", revision_name(&arn)));
                    continue;
                }
            }
            // The same bucket as registrations: housekeeping never takes their slots for long.
            if let Err(e) = paced(&self.ports, TASK_DEFINITION_WRITES).await {
                info!(error = %e, "retention stops here for this event");
                break;
            }
            match self.ports.ecs.deregister_revision(&arn).await {
                Ok(()) => {
                    info!(revision = revision_name(&arn), "deregistered");
                    let reason = format!(
                        "deregistered {} (keeping the newest {keep} of {family} and every revision a service needs)",
                        revision_name(&arn)
                    );
                    let mut record = HistoryRecord::new(
                        key,
                        self.ports.clock.now(),
                        Action::Deregistered,
                        &reason,
                        cause,
                    );
                    record.deregistered = vec![arn.clone()];
                    if let Err(e) = self.ports.store.record(&[record], None).await {
                        warn!(error = %e, "could not record the deregistered revision");
                    }
                    deregistered.push(arn);
                }
                Err(e) => {
                    warn!(error = %e, revision = revision_name(&arn), "could not deregister");
                    failed.push(format!("{} ({e})", revision_name(&arn)));
                }
            }
        }
        let mut said = Vec::new();
        if !deregistered.is_empty() {
            said.push(format!(
                "deregistered {} (keeping the newest {keep} of {family} and every revision a service needs)",
                name_revisions(&deregistered)
            ));
        }
        if !failed.is_empty() {
            said.push(format!(
                "could not deregister {}; the next completed deployment tries again",
                failed.join(", ")
            ));
        }
        (!said.is_empty()).then(|| said.join("; "))
    }

    /// Whether deckhand registered this revision itself (it carries deckhand's `deckhand:event`
    /// tag, read with the revision's description; what the process read once it remembers).
    /// `None` once this event has described as many revisions as it may.
    async fn registered_by_deckhand(
        &self,
        arn: &str,
        described: &mut usize,
    ) -> Result<Option<bool>, PortError> {
        if let Some(ours) = lock_memo(&self.registered_by_us).get(arn) {
            return Ok(Some(*ours));
        }
        if *described >= MAX_DESCRIBED {
            return Ok(None);
        }
        *described += 1;
        let revision = self.ports.ecs.describe_task_definition(arn).await?;
        let ours = revision.registered_for.is_some();
        lock_memo(&self.registered_by_us).insert(arn.to_owned(), ours);
        Ok(Some(ours))
    }

    /// The revisions needed by the other opted-in services of the managed clusters whose
    /// deployments use the family: what they run and move between, and, from the table, what
    /// they may roll back to.
    async fn needed_by_others(
        &self,
        key: &ServiceKey,
        family: &str,
        now: DateTime<Utc>,
    ) -> Result<BTreeSet<String>, PortError> {
        let mut others = self.opted_in().await?;
        others.retain(|other| other != key);
        if others.is_empty() {
            return Ok(BTreeSet::new());
        }
        let in_family = |arn: &str| family_and_number(arn).is_some_and(|(f, _)| f == family);
        let sharing: Vec<ServiceView> = self
            .ports
            .ecs
            .describe_services(&others)
            .await?
            .into_iter()
            .filter(|s| {
                in_family(&s.task_definition)
                    || s.deployments.iter().any(|d| in_family(&d.task_definition))
            })
            .collect();
        if sharing.is_empty() {
            return Ok(BTreeSet::new());
        }
        let keys: Vec<ServiceKey> = sharing.iter().map(|s| s.key.clone()).collect();
        let states: BTreeMap<ServiceKey, ServiceState> = self.ports.store.load_many(&keys).await?;
        let none = ServiceState::default();
        Ok(sharing
            .iter()
            .flat_map(|s| needed_by(states.get(&s.key).unwrap_or(&none), Some(s), now))
            .collect())
    }
}
