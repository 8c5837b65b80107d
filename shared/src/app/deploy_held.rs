//! A push to a `CODE_DEPLOY` service while its deployment group runs another deployment (a
//! pipeline's, CodeDeploy's own rollback): CodeDeploy refuses it (one deployment per group at
//! a time), and retrying the event would give up long before a blue/green deployment with its
//! wait times ends. The push is held instead, with the revision it registered, and deploys
//! when the group is free: at the CodeDeploy event that ends the deployment in the way, or at
//! the deploy function's next round of held pushes (`release-held`) if that event never comes. A
//! newer held push replaces an older one.

use std::collections::BTreeSet;

use futures::{StreamExt, stream};
use serde_json::json;
use tracing::{Instrument, info_span, warn};

use super::{DeployFunction, Target, push_details, push_name, push_record, report};
use crate::domain::codedeploy_busy::active_deployment_in;
use crate::domain::deploy::Push;
use crate::domain::fleet::ImageChange;
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::state::HeldPush;
use crate::domain::state::WaitingPush;
use crate::domain::state::{Registered, ServiceState};
use crate::notification::{Kind, Notification, Severity};
use crate::ports::{Locked, PortError};
use crate::report::{Action, ServiceReport};

/// How many held pushes one reconcile or event releases at once.
const CONCURRENCY: usize = 4;

impl DeployFunction {
    /// The push met a busy deployment group: kept, with its revision, and announced.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn hold_for_group(
        &self,
        push: &Push,
        target: &Target,
        changes: &[ImageChange],
        locked: &Locked,
        mut state: ServiceState,
        registered: Registered,
        refused: &PortError,
    ) -> ServiceReport {
        let key = &target.service.key;
        // Held already (a release that met the group still busy): kept quietly.
        let again = locked
            .state
            .held
            .as_ref()
            .is_some_and(|h| h.push.event_id == push.event_id);
        let group = target
            .codedeploy
            .as_ref()
            .map_or_else(String::new, |cd| cd.group.to_string());
        let behind = active_deployment_in(&refused.message);
        let now = self.ports.clock.now();
        let (from, to) = (registered.from.clone(), registered.task_definition.clone());
        state.registered = Some(registered);
        state.held = Some(HeldPush {
            push: WaitingPush::new(push, now),
            behind: behind.clone(),
            group: group.clone(),
            calendar: None,
            lifted_by: None,
        });
        let other = behind.as_deref().map_or_else(
            || "another deployment".to_owned(),
            |d| format!("deployment {d}"),
        );
        let reason = format!(
            "the CodeDeploy deployment group {group} runs {other} and takes one at a time: the push is held and deploys when the group is free (at the end of that deployment, or the next round of held pushes)"
        );
        let mut r = report(key, Action::Held, reason.clone());
        r.from = Some(revision_name(&from).to_owned());
        r.to = Some(revision_name(&to).to_owned());
        r.digest = Some(push.digest.to_string());
        if again {
            if let Err(e) = self
                .ports
                .store
                .commit(key, locked, &state, &[], None)
                .await
            {
                return self.failed(key, push, None, e).await;
            }
            return r;
        }
        let mut record = push_record(key, push, now, Action::Held, reason);
        record.from = Some(from.clone());
        record.to = Some(to.clone());
        if let Err(e) = self
            .commit(key, locked, &state, record, &push.event_id)
            .await
        {
            return self.failed(key, push, None, e).await;
        }
        let mut details = push_details(push, changes, Some(&from), Some(&to));
        details["deploymentGroup"] = json!(group);
        details["behind"] = json!(behind);
        self.notify(Notification::new(
            Kind::DeployHeld,
            Severity::Info,
            key.to_string(),
            format!(
                "Holding {} for {key}: CodeDeploy group {group} runs {other}",
                push_name(push)
            ),
            now,
            details,
        ))
        .await;
        r
    }

    /// Deploys the held pushes, of `only` or of every service that has one: each as its push
    /// would, from what the service runs now (CodeDeploy says whether the group is free: one
    /// whose group is still busy is held again, quietly). Reports only the services that had a
    /// push held.
    pub async fn release_held(&self, only: Option<&ServiceKey>) -> Vec<ServiceReport> {
        self.release_held_where(only, |_| true).await
    }

    /// The same, for the held pushes `which` picks.
    pub(super) async fn release_held_where(
        &self,
        only: Option<&ServiceKey>,
        which: impl Fn(&HeldPush) -> bool,
    ) -> Vec<ServiceReport> {
        let keys = match only {
            Some(key) => vec![key.clone()],
            None => match self.ports.store.held().await {
                Ok(keys) => keys,
                Err(e) => {
                    warn!(error = %e, "could not list the held pushes; the next round tries again");
                    return Vec::new();
                }
            },
        };
        if keys.is_empty() {
            return Vec::new();
        }
        let states = match self.ports.store.load_many(&keys).await {
            Ok(states) => states,
            Err(e) => {
                warn!(error = %e, "could not read the held pushes; the next round tries again");
                return Vec::new();
            }
        };
        let held: Vec<(ServiceKey, HeldPush)> = states
            .into_iter()
            .filter_map(|(key, state)| state.held.filter(|h| which(h)).map(|h| (key, h)))
            .collect();
        stream::iter(held)
            .map(|(key, held)| {
                let span = info_span!("held", service = %key, event_id = %held.push.event_id);
                self.release(key, held).instrument(span)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await
    }

    async fn release(&self, key: ServiceKey, held: HeldPush) -> ServiceReport {
        let push = held.push.push();
        let service = match self
            .ports
            .ecs
            .describe_services(std::slice::from_ref(&key))
            .await
        {
            Ok(services) => services.into_iter().find(|s| s.key == key),
            Err(e) => return report(&key, Action::Error, e.to_string()),
        };
        let Some(service) = service else {
            return report(&key, Action::Error, format!("{key} no longer exists"));
        };
        let target = match self.plain_target(service).await {
            Ok(target) => target,
            Err(e) => return report(&key, Action::Error, e.to_string()),
        };
        let none = BTreeSet::new();
        // On the heap: the whole push is a large future, and a reconcile or an event's handling
        // holds it only in this rare case.
        Box::pin(self.push_to_service(
            &push,
            target,
            &none,
            super::Gate::Passed,
            &Default::default(),
        ))
        .await
    }
}
