//! `deckhand approve` and `deckhand reject`: an operator's answer to a service deployment that
//! waits at an ECS pause hook, given with `ContinueServiceDeployment` under the service's lock.
//! ECS's `DescribeServiceDeployments` is the source of truth for what waits; the timeout is
//! ECS's own.

use super::{Operator, OperatorError};
use crate::app::locking::{acquire, owner_token, renew_before_acting};
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::state::{DeploymentStatus, RolledBack};
use crate::history::HistoryRecord;
use crate::report::{Action, ServiceReport};

impl Operator {
    /// The deployment waiting at a pause hook goes on (`CONTINUE`).
    pub async fn approve(&self, service: &ServiceKey) -> Result<ServiceReport, OperatorError> {
        self.answer_pause_hook(service, false).await
    }

    /// The deployment waiting at a pause hook is rolled back by ECS (`ROLLBACK`).
    pub async fn reject(&self, service: &ServiceKey) -> Result<ServiceReport, OperatorError> {
        self.answer_pause_hook(service, true).await
    }

    async fn answer_pause_hook(
        &self,
        service: &ServiceKey,
        roll_back: bool,
    ) -> Result<ServiceReport, OperatorError> {
        let view = self.described(service).await?;
        let Some(paused) = self.ports.ecs.paused_deployment(service).await? else {
            return Err(OperatorError::NothingAwaiting(service.clone()));
        };
        let now = self.ports.clock.now();
        let verb = if roll_back { "reject" } else { "approve" };
        let cause = self.cause(verb, now);
        let owner = owner_token(&cause);
        let mut locked = acquire(&*self.ports.store, &*self.ports.clock, service, &owner).await?;
        let answered =
            match renew_before_acting(&*self.ports.store, &*self.ports.clock, service, &mut locked)
                .await
            {
                Ok(()) => {
                    self.ports
                        .ecs
                        .continue_service_deployment(&paused, roll_back)
                        .await
                }
                Err(e) => Err(e),
            };
        if let Err(e) = answered {
            self.release_lock(service, &locked).await;
            return Err(e.into());
        }
        let mut state = locked.state.clone();
        let running = revision_name(&view.task_definition).to_owned();
        let (action, reason) = if roll_back {
            // deckhand's deployment of what runs is over: rolled back, by a person. Its digest
            // is not quarantined: a rejection is not evidence against the image.
            if let Some(d) = state.deployment.as_mut().filter(|d| {
                d.to == view.task_definition && d.status == DeploymentStatus::InProgress
            }) {
                d.status = DeploymentStatus::RolledBack;
                d.rollback = Some(RolledBack {
                    alarm: format!("rejected by {}", self.by),
                    at: now,
                    to: d.from.clone(),
                });
            }
            (
                Action::Rejected,
                format!(
                    "the deployment of {running}, which waited at a pause hook, rejected by {}: ECS rolls it back (ContinueServiceDeployment ROLLBACK); its digest is not quarantined",
                    self.by
                ),
            )
        } else {
            (
                Action::Approved,
                format!(
                    "the deployment of {running}, which waited at a pause hook, approved by {}: ECS goes on (ContinueServiceDeployment CONTINUE)",
                    self.by
                ),
            )
        };
        let record = HistoryRecord::new(service, now, action, reason.clone(), &cause);
        self.ports
            .store
            .commit(service, &locked, &state, &[record], None)
            .await?;
        Ok(ServiceReport::new(service, action, reason))
    }
}
