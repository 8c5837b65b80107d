//! A rollback held off by a CodeDeploy deployment deckhand did not start
//! (`domain::codedeploy_busy`): recorded and announced, and, when that deployment may yet end
//! with the bad revision still running, left for the alarm's next delivery to try again.

use serde_json::json;

use super::{Case, RollbackFunction, details};
use crate::domain::state::ServiceState;
use crate::notification::{Kind, Notification, Severity};
use crate::report::{Action, ServiceReport, Summary};

/// The CodeDeploy deployment that held a rollback off, and whether it is worth waiting for.
pub(super) struct Blocked {
    pub(super) deployment_id: String,
    pub(super) retry: bool,
}

/// What a `RollbackError::Waiting` says: each service that waits, and for what.
pub(super) fn waiting_message(summary: &Summary) -> String {
    summary
        .services
        .iter()
        .filter(|s| s.action == Action::Waiting)
        .map(|s| format!("{}: {}", s.service, s.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

impl RollbackFunction {
    /// A rollback held off by a CodeDeploy deployment deckhand did not start: nothing changed.
    /// A moot one is recorded and notified as any skip. One worth retrying is recorded without
    /// the event's processed mark and reported `waiting`, so that the invocation fails and the
    /// alarm is delivered again; it is notified once per deployment it waits for.
    pub(super) async fn blocked(
        &self,
        case: &Case<'_>,
        mut state: ServiceState,
        reason: String,
        revisions: (&str, &str),
        blocked: Blocked,
    ) -> ServiceReport {
        let Case {
            key,
            alarm,
            locked,
            guard,
            ..
        } = *case;
        let now = self.ports.clock.now();
        let mut details = details(alarm, revisions, None, &reason, guard);
        details["codeDeployDeployment"] = json!(blocked.deployment_id);
        details["retried"] = json!(blocked.retry);
        let announced = state.rollback_waits_for.as_deref() == Some(blocked.deployment_id.as_str());
        let (action, committed) = if blocked.retry {
            state.rollback_waits_for = Some(blocked.deployment_id.clone());
            let record = self.record(key, alarm, now, Action::Waiting, &reason, revisions);
            let committed = self
                .ports
                .store
                .commit(key, locked, &state, &[record], None)
                .await;
            (Action::Waiting, committed)
        } else {
            let record = self.record(key, alarm, now, Action::Skipped, &reason, revisions);
            (
                Action::Skipped,
                self.commit(key, alarm, locked, &state, record).await,
            )
        };
        if let Err(e) = committed {
            return self.failed(key, alarm, e).await;
        }
        if !(blocked.retry && announced) {
            self.notify(Notification::new(
                Kind::RollbackSkipped,
                Severity::Warning,
                key.to_string(),
                format!(
                    "Alarm {} fired for {key}; not rolled back: CodeDeploy deployment {} holds the deployment group",
                    alarm.name, blocked.deployment_id
                ),
                now,
                details,
            ))
            .await;
        }
        ServiceReport::new(key, action, reason)
    }
}
