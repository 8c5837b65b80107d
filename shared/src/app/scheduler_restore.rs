//! The reconcile finishes the rollbacks that waited for ECR to restore archived images
//! (`domain::restore`): once ECR reports every image ACTIVE, the service is moved to the
//! rollback's target as the rollback function would have, and the rollback is recorded and
//! announced. A service someone moved meanwhile, or an image ECR no longer has, ends the wait.

use std::collections::BTreeMap;

use futures::{StreamExt, stream};
use serde_json::json;
use tracing::{Instrument, info, info_span, warn};

use super::SchedulerFunction;
use crate::app::codedeploy::{codedeploy_target_or_error, deploy_through_codedeploy};
use crate::app::locking::{acquire, owner_token, renew_before_acting};
use crate::app::pins::pullable_now;
use crate::domain::fleet::ServiceView;
use crate::domain::keep::KeptImage;
use crate::domain::restore::{Pullable, names};
use crate::domain::rollback::apply_rollback;
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::state::PendingRollback;
use crate::domain::state::ServiceState;
use crate::domain::strategy::DeploymentController;
use crate::history::HistoryRecord;
use crate::notification::{Kind, Notification, Severity};
use crate::ports::{Locked, PortError};
use crate::report::{Action, ServiceReport};

impl SchedulerFunction {
    /// Before a wake: the images the service wakes on, as deckhand keeps them, must be
    /// pullable. An archived one is restored and the wake waits for the next reconcile; one ECR
    /// no longer has is said, and the service woken all the same (the schedule wants it).
    pub(super) async fn restore_before_wake(
        &self,
        subject: &super::Subject,
        cause: &str,
    ) -> Option<ServiceReport> {
        let key = &subject.service.key;
        let images: Vec<KeptImage> = subject
            .state
            .kept
            .get(&subject.service.task_definition)?
            .iter()
            .filter_map(|i| KeptImage::of(i))
            .collect();
        let (archived, activating) = match pullable_now(&self.ports, images).await {
            Ok(Pullable::Restoring {
                archived,
                activating,
            }) => (archived, activating),
            Ok(Pullable::Gone(gone)) => {
                warn!(images = %names(&gone), "ECR no longer has images the service wakes on");
                return None;
            }
            Ok(Pullable::Ready) => return None,
            Err(e) => {
                warn!(error = %e, "could not ask ECR whether the images are archived; waking");
                return None;
            }
        };
        for image in &archived {
            if let Err(e) = self
                .ports
                .ecr
                .restore(&image.repository, &image.digest)
                .await
            {
                return Some(self.failed(key, cause, e).await);
            }
        }
        let all: Vec<KeptImage> = archived.iter().chain(&activating).cloned().collect();
        let reason = format!(
            "not woken yet: it runs {}, which ECR keeps archived; ECR restores it (UpdateImageStorageClass) and a reconcile wakes the service once it is ACTIVE",
            names(&all)
        );
        let record = HistoryRecord::new(
            key,
            self.ports.clock.now(),
            Action::Restoring,
            reason.clone(),
            cause,
        );
        if let Err(e) = self.ports.store.record(&[record], None).await {
            warn!(error = %e, "could not record the wait for ECR");
        }
        Some(ServiceReport::new(key, Action::Restoring, reason))
    }

    /// Each service with a pending rollback: ECR asked about its images, the rollback finished
    /// when they are ACTIVE.
    pub(super) async fn finish_restores(
        &self,
        services: &[ServiceView],
        states: &BTreeMap<ServiceKey, ServiceState>,
        cause: &str,
    ) -> Vec<ServiceReport> {
        let due: Vec<(&ServiceView, PendingRollback)> = services
            .iter()
            .filter_map(|s| Some((s, states.get(&s.key)?.restoring.clone()?)))
            .collect();
        stream::iter(due)
            .map(|(service, pending)| {
                let span = info_span!("restore", service = %service.key);
                self.finish_restore(service, pending, cause)
                    .instrument(span)
            })
            .buffer_unordered(self.config.concurrency)
            .filter_map(|r| async { r })
            .collect()
            .await
    }

    async fn finish_restore(
        &self,
        service: &ServiceView,
        pending: PendingRollback,
        cause: &str,
    ) -> Option<ServiceReport> {
        let key = &service.key;
        let images: Vec<KeptImage> = pending
            .images
            .iter()
            .filter_map(|i| KeptImage::of(i))
            .collect();
        let pull = match pullable_now(&self.ports, images).await {
            Ok(pull) => pull,
            Err(e) => return Some(self.failed(key, cause, e).await),
        };
        let gone = match pull {
            Pullable::Restoring { archived, .. } => {
                // Still restoring; one archived again (or never restored) is asked for again.
                for image in &archived {
                    if let Err(e) = self
                        .ports
                        .ecr
                        .restore(&image.repository, &image.digest)
                        .await
                    {
                        warn!(error = %e, "could not ask ECR again to restore an archived image");
                    }
                }
                return None;
            }
            Pullable::Gone(gone) => Some(gone),
            Pullable::Ready => None,
        };
        let owner = owner_token(&format!("{cause}#restore"));
        let mut locked = match acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await {
            Ok(locked) => locked,
            Err(e) => return Some(self.failed(key, cause, e).await),
        };
        let mut state = locked.state.clone();
        if state.restoring.as_ref() != Some(&pending) {
            // Finished or ended by another invocation since it was read.
            self.give_back(key, &locked).await;
            return None;
        }
        state.restoring = None;
        let now = self.ports.clock.now();
        let moot = if let Some(gone) = gone {
            Some(format!(
                "{} runs {}, which ECR no longer has: no task could pull it",
                revision_name(&pending.to),
                names(&gone)
            ))
        } else if service.task_definition != pending.from
            && service.controller != DeploymentController::CodeDeploy
        {
            Some(format!(
                "the service runs {} now, not {}: the pending rollback is moot",
                revision_name(&service.task_definition),
                revision_name(&pending.from)
            ))
        } else {
            None
        };
        if let Some(why) = moot {
            let reason = format!("{}; not rolled back: {why}", pending.reason);
            return Some(
                self.end_pending(
                    key,
                    &locked,
                    &state,
                    &pending,
                    Action::Skipped,
                    reason,
                    cause,
                )
                .await,
            );
        }
        if let Err(e) = self.move_back(service, &pending, &mut locked).await {
            return Some(
                self.failed_under_lock(key, &locked, &locked.state, cause, e)
                    .await,
            );
        }
        apply_rollback(
            &mut state,
            (&pending.from, &pending.to),
            &pending.alarm,
            now,
            false,
        );
        let reason = format!(
            "{}; ECR has restored {}: rolled back",
            pending.reason,
            restored(&pending)
        );
        info!(to = %revision_name(&pending.to), "rolled back once ECR restored the images");
        Some(
            self.end_pending(
                key,
                &locked,
                &state,
                &pending,
                Action::RolledBack,
                reason,
                cause,
            )
            .await,
        )
    }

    /// The service moved to the rollback's target, as the rollback function moves it.
    async fn move_back(
        &self,
        service: &ServiceView,
        pending: &PendingRollback,
        locked: &mut Locked,
    ) -> Result<(), PortError> {
        let ports = &self.ports;
        renew_before_acting(&*ports.store, &*ports.clock, &service.key, locked).await?;
        match service.controller {
            DeploymentController::CodeDeploy => {
                let target = codedeploy_target_or_error(ports, service).await?;
                let why = format!("rollback of {} after alarm {}", service.key, pending.alarm);
                deploy_through_codedeploy(ports, &target, &pending.to, &why).await?;
            }
            _ => {
                ports.ecs.update_service(&service.key, &pending.to).await?;
            }
        }
        Ok(())
    }

    /// Records how the pending rollback ended and says so.
    #[allow(clippy::too_many_arguments)]
    async fn end_pending(
        &self,
        key: &ServiceKey,
        locked: &Locked,
        state: &ServiceState,
        pending: &PendingRollback,
        action: Action,
        reason: String,
        cause: &str,
    ) -> ServiceReport {
        let now = self.ports.clock.now();
        let mut record = HistoryRecord::new(key, now, action, reason.clone(), cause);
        record.from = Some(pending.from.clone());
        record.to = Some(pending.to.clone());
        record.alarm_at = Some(pending.alarm_at);
        if let Err(e) = self
            .ports
            .store
            .commit(key, locked, state, &[record], None)
            .await
        {
            return self.failed(key, cause, e).await;
        }
        let (kind, summary) = match action {
            Action::RolledBack => (
                Kind::RollbackStarted,
                format!(
                    "Rolled back {key} from {} to {} after alarm {}: ECR has restored {}",
                    revision_name(&pending.from),
                    revision_name(&pending.to),
                    pending.alarm,
                    restored(pending)
                ),
            ),
            _ => (
                Kind::RollbackSkipped,
                format!(
                    "The pending rollback of {key} after alarm {} ended: {reason}",
                    pending.alarm
                ),
            ),
        };
        crate::app::publish(
            &self.ports,
            Notification::new(
                kind,
                Severity::Warning,
                key.to_string(),
                summary,
                now,
                json!({
                    "alarm": pending.alarm,
                    "from": revision_name(&pending.from),
                    "to": revision_name(&pending.to),
                    "restored": pending.images,
                    "reason": reason,
                    "rolledBackBy": "UpdateService after ECR restored the images",
                }),
            ),
        )
        .await;
        let mut report = ServiceReport::new(key, action, reason);
        report.from = Some(revision_name(&pending.from).to_owned());
        report.to = Some(revision_name(&pending.to).to_owned());
        report
    }

    async fn give_back(&self, key: &ServiceKey, locked: &Locked) {
        if let Err(e) = self.ports.store.release(key, &locked.owner).await {
            warn!(error = %e, "could not give back the lock; it expires with its lease");
        }
    }
}

/// `REPO@sha256:abbreviated` of the images the rollback waited for.
fn restored(pending: &PendingRollback) -> String {
    let images: Vec<KeptImage> = pending
        .images
        .iter()
        .filter_map(|i| KeptImage::of(i))
        .collect();
    names(&images)
}
