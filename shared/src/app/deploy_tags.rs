//! `Tag Change on Resource` of an ECS service whose `deckhand:deploy` changed: the repository
//! index lists a service opted in seconds ago under the repositories it runs, so the next push
//! of any of them deploys it, without waiting for the reconcile. EventBridge delivers these
//! events on a best-effort basis; the reconcile's check stays the backstop.

use super::{DeployError, DeployFunction, report};
use crate::domain::service::revision_name;
use crate::events::TagChanged;
use crate::report::{Action, Summary};

impl DeployFunction {
    pub(super) async fn on_tag_change(&self, event: &TagChanged) -> Result<Summary, DeployError> {
        let key = &event.service;
        if !self.config.manages_cluster(key.cluster()) {
            return Ok(Summary::ignored(format!(
                "cluster {} is not managed by deckhand",
                key.cluster()
            )));
        }
        // A service no longer opted in leaves the index when a push of its repositories or the
        // reconcile reads it.
        let service = match self.opted_in_service(key).await? {
            Ok(service) => service,
            Err(ignored) => return Ok(ignored),
        };
        let (described, _) = self
            .index_fleet(std::slice::from_ref(&service), false)
            .await;
        if let Some(Err(e)) = described.get(&service.task_definition) {
            let reason = format!("could not read the revision it runs: {e}");
            return Ok(Summary::of(
                vec![report(key, Action::Error, reason)],
                String::new,
            ));
        }
        let reason = format!(
            "opted in to deckhand deploys: the repository index lists it under the repositories {} runs",
            revision_name(&service.task_definition)
        );
        Ok(Summary::of(
            vec![report(key, Action::Recorded, reason)],
            String::new,
        ))
    }
}
