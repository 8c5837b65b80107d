//! A deployment waiting at an ECS pause hook (`ECS Hook State Change`, `HOOK_AWAITING_ACTION`) is
//! reported as `deploy.awaiting-approval`, with who answers how. The event only names the service:
//! `DescribeServiceDeployments` says whether, where and until when it waits.

use chrono::SecondsFormat;
use serde_json::json;

use super::{DeployError, DeployFunction, report};
use crate::domain::settings::TAG_DEPLOY;
use crate::domain::strategy::HookAwaiting;
use crate::history::{HistoryRecord, ProcessedMark};
use crate::notification::{Kind, Notification, Severity};
use crate::report::{Action, Summary};

impl DeployFunction {
    pub(super) async fn on_hook_awaiting(
        &self,
        event: &HookAwaiting,
    ) -> Result<Summary, DeployError> {
        let key = &event.service;
        if let Some(summary) = self.not_to_handle(key, &event.event_id).await? {
            return Ok(summary);
        }
        let services = self
            .ports
            .ecs
            .describe_services(std::slice::from_ref(key))
            .await
            .map_err(DeployError::Discovery)?;
        if !services.iter().any(|s| s.tags.contains_key(TAG_DEPLOY)) {
            return Ok(Summary::ignored(format!(
                "{key} does not exist or has not opted in to deckhand deploys"
            )));
        }
        let Some(paused) = self
            .ports
            .ecs
            .paused_deployment(key)
            .await
            .map_err(DeployError::Discovery)?
        else {
            return Ok(Summary::ignored(format!(
                "no deployment of {key} waits at a pause hook now (DescribeServiceDeployments)"
            )));
        };
        let stage = paused.stage.as_deref().unwrap_or("its pause hook");
        let first = paused.first_timeout();
        let expires_at = first.and_then(|h| h.expires_at);
        let timeout_action = first.and_then(|h| h.timeout_action.clone());
        let timeout = match (&expires_at, &timeout_action) {
            (Some(at), Some(action)) => format!(
                "; at {} ECS takes {action}",
                at.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            (Some(at), None) => format!(
                "; it times out at {}",
                at.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            _ => String::new(),
        };
        let hooks = match paused.hooks.len() {
            1 => String::new(),
            n => format!(" ({n} pause hooks, every one to be answered)"),
        };
        let later = match paused.later_pauses {
            0 => String::new(),
            1 => "; one more pause hook at a later stage will ask again".to_owned(),
            n => format!("; {n} more pause hooks at later stages will ask again"),
        };
        let reason = format!(
            "the deployment waits for approval at {stage}{hooks}{timeout}: `deckhand approve {key}` continues it, `deckhand reject {key}` rolls it back (OperatorPolicy){later}"
        );
        // The hook the event announced, when it is one of those that wait.
        let announced = event
            .hook_id
            .as_deref()
            .filter(|id| paused.hooks.iter().any(|h| h.hook_id == *id))
            .or(paused.hooks.first().map(|h| h.hook_id.as_str()));
        let now = self.ports.clock.now();
        let record = HistoryRecord::new(key, now, Action::Recorded, &reason, &event.event_id);
        let mark = ProcessedMark {
            event_id: event.event_id.clone(),
            service: key.clone(),
            at: now,
        };
        self.ports
            .store
            .record(&[record], Some(&mark))
            .await
            .map_err(DeployError::Discovery)?;
        self.notify(Notification::new(
            Kind::DeployAwaitingApproval,
            Severity::Warning,
            key.to_string(),
            format!("{key} waits for approval at {stage}"),
            now,
            json!({
                "serviceDeployment": paused.service_deployment_arn,
                "hookId": announced,
                "hookIds": paused.hooks.iter().map(|h| h.hook_id.as_str()).collect::<Vec<_>>(),
                "awaiting": paused.hooks.len(),
                "laterPauses": paused.later_pauses,
                "stage": paused.stage,
                "expiresAt": expires_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                "timeoutAction": timeout_action,
                "approve": format!("deckhand approve {key}"),
                "reject": format!("deckhand reject {key}"),
            }),
        ))
        .await;
        Ok(Summary::of(
            vec![report(key, Action::Recorded, reason)],
            String::new,
        ))
    }
}
