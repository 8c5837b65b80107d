//! A rollback whose target runs archived images: ECR is asked to restore them, the rollback is
//! recorded pending (`ServiceState::restoring`) and announced, and the reconcile finishes it
//! once ECR reports them ACTIVE (`domain::restore`). Nothing changes in ECS meanwhile.

use serde_json::json;
use tracing::warn;

use super::{Case, RollbackFunction, details};
use crate::domain::keep::KeptImage;
use crate::domain::restore::names;
use crate::domain::service::revision_name;
use crate::domain::state::PendingRollback;
use crate::domain::state::ServiceState;
use crate::notification::{Kind, Notification, Severity};
use crate::report::{Action, ServiceReport};

impl RollbackFunction {
    pub(super) async fn restoring(
        &self,
        case: &Case<'_>,
        mut state: ServiceState,
        (from, to, reason): (&str, &str, String),
        archived: &[KeptImage],
        activating: &[KeptImage],
    ) -> ServiceReport {
        let Case {
            key,
            alarm,
            locked,
            guard,
            ..
        } = *case;
        for image in archived {
            if let Err(e) = self
                .ports
                .ecr
                .restore(&image.repository, &image.digest)
                .await
            {
                return self.failed_under_lock(key, alarm, locked, e).await;
            }
        }
        let now = self.ports.clock.now();
        let all: Vec<KeptImage> = archived.iter().chain(activating).cloned().collect();
        let reason = format!(
            "{reason}; {} runs {}, which ECR keeps archived: restoring it first (UpdateImageStorageClass), and a reconcile rolls back once ECR reports it ACTIVE",
            revision_name(to),
            names(&all)
        );
        state.restoring = Some(PendingRollback {
            alarm: alarm.name.clone(),
            alarm_at: alarm.at,
            event_id: alarm.event_id.clone(),
            from: from.to_owned(),
            to: to.to_owned(),
            reason: reason.clone(),
            images: all.iter().map(KeptImage::reference).collect(),
            since: now,
        });
        let record = self.record(key, alarm, now, Action::Restoring, &reason, (from, to));
        if let Err(e) = self.commit(key, alarm, locked, &state, record).await {
            warn!(error = %e, "asked ECR to restore but could not record the pending rollback");
            return self.failed(key, alarm, e).await;
        }
        let mut details = details(alarm, (from, to), None, &reason, guard);
        details["restoring"] = json!(state.restoring.as_ref().map(|p| &p.images));
        self.notify(Notification::new(
            Kind::RollbackStarted,
            Severity::Warning,
            key.to_string(),
            format!(
                "Rolling back {key} from {} to {} after alarm {} once ECR has restored {}",
                revision_name(from),
                revision_name(to),
                alarm.name,
                names(&all)
            ),
            now,
            details,
        ))
        .await;
        let mut report = ServiceReport::new(key, Action::Restoring, reason);
        report.from = Some(revision_name(from).to_owned());
        report.to = Some(revision_name(to).to_owned());
        report
    }
}
