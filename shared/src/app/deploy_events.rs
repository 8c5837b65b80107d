//! ECS `Deployment State Change` events: they close the loop of deckhand's deployments
//! (completed starts the guard window, failed quarantines the digest).

use chrono::SecondsFormat;
use serde_json::{Value, json};

use super::pair::PairProgress;
use super::{DeployError, DeployFunction, report, rfc3339};
use crate::app::locking::{acquire, owner_token};
use crate::domain::deploy::{
    DeploymentEvent, DeploymentEventDecision, apply_deployment_event, decide_deployment_event,
};
use crate::domain::fleet::ServiceView;
use crate::domain::known_good::{SeenDecision, apply_seen, follow_deployment};
use crate::domain::service::revision_name;
use crate::domain::settings::{DeploySettings, TAG_DEPLOY};
use crate::history::HistoryRecord;
use crate::notification::{Kind, Notification, Severity};
use crate::report::{Action, ServiceReport, Summary};

impl DeployFunction {
    pub(super) async fn on_deployment_event(
        &self,
        event: &DeploymentEvent,
    ) -> Result<Summary, DeployError> {
        let key = &event.service;
        if let Some(summary) = self.not_to_handle(key, &event.event_id).await? {
            return Ok(summary);
        }
        let service = match self.opted_in_service(key).await? {
            Ok(service) => service,
            Err(ignored) => return Ok(ignored),
        };
        // Whoever deployed it (deckhand, Terraform, a person), the index follows the service.
        let _ = self
            .index_fleet(std::slice::from_ref(&service), false)
            .await;
        // A tag problem is reported by pushes; the deployment is still recorded, with the
        // default guard, and no revision is deregistered.
        let settings = DeploySettings::from_tags(&service.tags, self.config.guard)
            .ok()
            .flatten();
        let guard = settings.as_ref().map_or(self.config.guard, |s| s.guard);
        let keep = settings.and_then(|s| s.keep_revisions);
        let report = self
            .deployment_event_locked(event, &service, guard, keep)
            .await;
        Ok(Summary::of(vec![report], || {
            "not deckhand's deployment".into()
        }))
    }

    /// The service as ECS has it, if it exists and opted in to deploys; otherwise the summary
    /// of an event about it that there is nothing to do for.
    pub(super) async fn opted_in_service(
        &self,
        key: &crate::domain::service::ServiceKey,
    ) -> Result<Result<ServiceView, Summary>, DeployError> {
        let services = self
            .ports
            .ecs
            .describe_services(std::slice::from_ref(key))
            .await
            .map_err(DeployError::Discovery)?;
        let Some(service) = services.into_iter().next() else {
            return Ok(Err(Summary::ignored(format!(
                "service {key} does not exist"
            ))));
        };
        if !service.tags.contains_key(TAG_DEPLOY) {
            return Ok(Err(Summary::ignored(format!(
                "{key} has not opted in to deckhand deploys"
            ))));
        }
        Ok(Ok(service))
    }

    /// The summary of an ECS event about one service that needs no handling: its cluster is not
    /// deckhand's, or the event was already handled for it.
    pub(super) async fn not_to_handle(
        &self,
        key: &crate::domain::service::ServiceKey,
        event_id: &str,
    ) -> Result<Option<Summary>, DeployError> {
        if !self.config.manages_cluster(key.cluster()) {
            return Ok(Some(Summary::ignored(format!(
                "cluster {} is not managed by deckhand",
                key.cluster()
            ))));
        }
        let done = self
            .ports
            .store
            .processed(event_id)
            .await
            .map_err(DeployError::Discovery)?;
        if done.contains(key) {
            let reason = "this event was already handled";
            let report = self.duplicate(key, event_id, reason, None).await;
            return Ok(Some(Summary::of(vec![report], String::new)));
        }
        Ok(None)
    }

    pub(super) async fn deployment_event_locked(
        &self,
        event: &DeploymentEvent,
        service: &ServiceView,
        guard: chrono::TimeDelta,
        keep_revisions: Option<usize>,
    ) -> ServiceReport {
        let key = &service.key;
        let owner = owner_token(&event.event_id);
        let locked = match acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await {
            Ok(locked) => locked,
            Err(e) => return report(key, Action::Error, e.to_string()),
        };
        let decision = decide_deployment_event(event, &locked.state, service, guard);
        let mut state = locked.state.clone();
        apply_deployment_event(&mut state, event, &decision);
        let now = self.ports.clock.now();
        let deployment = locked.state.deployment.as_ref();
        let dry_run = deployment.is_some_and(|d| d.dry_run);
        // Someone else's deployment is followed, so that its revision can become known-good; in
        // dry run every deployment is, since the would-be one only stands for it.
        let seen = (dry_run || matches!(decision, DeploymentEventDecision::NotOurs(_)))
            .then(|| follow_deployment(event, &locked.state, service, guard));
        let seen_reason = match seen {
            Some(SeenDecision::Follow { seen, reason }) => {
                apply_seen(&mut state, seen, event.at);
                Some((true, reason))
            }
            Some(SeenDecision::Unchanged(reason)) => Some((false, reason)),
            None => None,
        };
        let (action, reason, notification) = match &decision {
            DeploymentEventDecision::Duplicate(reason) => {
                return self
                    .duplicate(key, &event.event_id, reason, Some(&locked))
                    .await;
            }
            DeploymentEventDecision::NotOurs(reason) => match &seen_reason {
                Some((true, followed)) => (Action::Recorded, followed.clone(), None),
                Some((false, why)) => (Action::Ignored, format!("{reason}; {why}"), None),
                None => (Action::Ignored, reason.clone(), None),
            },
            DeploymentEventDecision::InProgress => (
                Action::Recorded,
                format!("ECS deployment {} is in progress", event.ecs_deployment_id),
                None,
            ),
            DeploymentEventDecision::Completed { guard_until } if dry_run => (
                Action::Completed,
                format!(
                    "dry run: ECS deployment {} completed after the push; the would-be deployment of {} is guarded until {}",
                    event.ecs_deployment_id,
                    deployment.map_or("", |d| d.digest.short()),
                    rfc3339(*guard_until)
                ),
                None,
            ),
            DeploymentEventDecision::Failed { reason } if dry_run => (
                Action::Failed,
                format!(
                    "dry run: ECS deployment {} failed after the push ({reason}); the would-be deployment of {} counts as failed",
                    event.ecs_deployment_id,
                    deployment.map_or("", |d| d.digest.short()),
                ),
                None,
            ),
            DeploymentEventDecision::Completed { guard_until } => {
                let to = deployment.map_or("", |d| revision_name(&d.to));
                let reason = format!(
                    "ECS completed the deployment of {to}; it becomes known-good at {} unless an alarm rolls it back",
                    guard_until.to_rfc3339_opts(SecondsFormat::Secs, true)
                );
                (
                    Action::Completed,
                    reason.clone(),
                    Some((Kind::DeployCompleted, Severity::Info, reason)),
                )
            }
            DeploymentEventDecision::CompletedEarly { criteria } => {
                let to = deployment.map_or("", |d| revision_name(&d.to));
                let reason = format!(
                    "ECS completed the deployment of {to} early ({}) while it still rolls out; ECS's circuit breaker and alarm rollback no longer act, so until the rollout settles an alarm rolls it back as during any rollout, and its guard window starts then",
                    criteria.describe()
                );
                (
                    Action::Completed,
                    reason.clone(),
                    Some((Kind::DeployCompleted, Severity::Info, reason)),
                )
            }
            DeploymentEventDecision::Failed { reason } => {
                let (to, digest) =
                    deployment.map_or(("", ""), |d| (revision_name(&d.to), d.digest.short()));
                let text = format!(
                    "ECS deployment of {to} failed ({reason}); digest {digest} is quarantined for this service"
                );
                (
                    Action::Failed,
                    text.clone(),
                    Some((Kind::DeployFailed, Severity::Error, text)),
                )
            }
        };
        // A pair's new side: its traffic moves (or, failed, it is scaled back to 0).
        let progress = match self
            .pair_after_event(key, &decision, &mut state, (now, guard))
            .await
        {
            Ok(progress) => progress,
            Err(e) => return self.failed_event(key, &locked, event, e).await,
        };
        let reason = match (&progress, &decision) {
            // A pair's new side: its guard window starts when all the traffic moved, not now.
            (Some(p), DeploymentEventDecision::Completed { .. }) => {
                let to = deployment.map_or("", |d| revision_name(&d.to));
                let guarded = state
                    .deployment
                    .as_ref()
                    .and_then(|d| d.guard_until)
                    .map(|u| format!("; all the traffic on it, guarded until {}", rfc3339(u)))
                    .unwrap_or_default();
                format!("ECS completed the deployment of {to}; {}{guarded}", p.words)
            }
            (Some(p), _) => format!("{reason}; {}", p.words),
            (None, _) => reason,
        };
        // The notification of a pair's completion says what its history says.
        let notification = match (&progress, &decision) {
            (Some(_), DeploymentEventDecision::Completed { .. }) => {
                notification.map(|(kind, severity, _)| (kind, severity, reason.clone()))
            }
            _ => notification,
        };
        let followed = matches!(seen_reason, Some((true, _)));
        // In dry run, what the pipeline's deployment means for known-good is said too.
        let reason = match (&decision, seen_reason) {
            (DeploymentEventDecision::NotOurs(_), _) | (_, None) => reason,
            (_, Some((_, seen))) => format!("{reason}; {seen}"),
        };
        let followed_only = matches!(decision, DeploymentEventDecision::NotOurs(_));
        let mut record = HistoryRecord::new(key, now, action, reason.clone(), &event.event_id);
        record.ecs_deployment_id = Some(event.ecs_deployment_id.clone());
        record.dry_run = dry_run && !followed_only;
        if followed_only {
            record.to = state
                .seen
                .as_ref()
                .filter(|_| followed)
                .map(|s| s.task_definition.clone());
        } else if let Some(d) = deployment {
            record.repository = Some(d.repository.clone());
            record.digest = Some(d.digest.to_string());
            record.tag = d.tag.clone();
            record.from = Some(d.from.clone());
            record.to = Some(d.to.clone());
        }
        let record_to = record.to.clone();
        if let Err(e) = self
            .commit(key, &locked, &state, record, &event.event_id)
            .await
        {
            return report(key, Action::Error, e.to_string());
        }
        if let Some((kind, severity, summary)) = notification {
            let mut details = deployment.map_or(Value::Null, |d| {
                json!({
                    "ecsDeploymentId": event.ecs_deployment_id,
                    "repository": d.repository,
                    "tag": d.tag,
                    "digest": d.digest,
                    "from": revision_name(&d.from),
                    "to": revision_name(&d.to),
                    "guardUntil": state.deployment.as_ref().and_then(|d| d.guard_until).map(rfc3339),
                    "pushedAt": d.pushed_at.map(rfc3339),
                    // Push to ECS completed: the lead time of the change.
                    "leadTimeSeconds": d.pushed_at
                        .filter(|_| kind == Kind::DeployCompleted)
                        .map(|pushed| (event.at - pushed).num_milliseconds() as f64 / 1000.0),
                })
            });
            if matches!(decision, DeploymentEventDecision::CompletedEarly { .. }) {
                details["completedEarly"] = json!(true);
            }
            self.notify(Notification::new(
                kind,
                severity,
                key.to_string(),
                summary,
                now,
                details,
            ))
            .await;
        }
        let gated = match progress {
            Some(PairProgress {
                shifted: Some((m, shift)),
                ..
            }) => {
                let why = format!("ECS completed the deployment of {key}");
                self.notify(crate::app::traffic::shifted(&m, &shift, &why, now))
                    .await;
                None
            }
            Some(PairProgress {
                gated: Some((m, gate)),
                ..
            }) => {
                self.notify(crate::app::pair_gate::awaiting(key, &m, &gate, now))
                    .await;
                self.ask_gate_check(key, &m, &gate, &state, &event.event_id)
                    .await
            }
            _ => None,
        };
        let retired = match (&decision, keep_revisions) {
            (DeploymentEventDecision::Completed { .. }, Some(keep))
                if !self.rehearses(&service.tags) =>
            {
                self.retire_revisions(service, &state, keep, &event.event_id)
                    .await
            }
            _ => None,
        };
        let reason = match retired {
            Some(retired) => format!("{reason}; {retired}"),
            None => reason,
        };
        let (action, reason) = match gated {
            Some(settled) if settled.action == Action::Failed => {
                (Action::Failed, format!("{reason}; {}", settled.reason))
            }
            Some(settled) => (action, format!("{reason}; {}", settled.reason)),
            None => (action, reason),
        };
        let mut r = report(key, action, reason);
        if followed_only {
            r.to = record_to.map(|to| revision_name(&to).to_owned());
        } else {
            r.from = deployment.map(|d| revision_name(&d.from).to_owned());
            r.to = deployment.map(|d| revision_name(&d.to).to_owned());
            r.digest = deployment.map(|d| d.digest.to_string());
        }
        r
    }

    /// Acting on the event failed: on record, the lock given back, the event retried.
    async fn failed_event(
        &self,
        key: &crate::domain::service::ServiceKey,
        locked: &crate::ports::Locked,
        event: &DeploymentEvent,
        e: crate::ports::PortError,
    ) -> ServiceReport {
        let now = self.ports.clock.now();
        let record = HistoryRecord::new(key, now, Action::Error, e.to_string(), &event.event_id);
        if let Err(commit_error) = self
            .ports
            .store
            .commit(key, locked, &locked.state, &[record], None)
            .await
        {
            tracing::warn!(error = %commit_error, "could not record the failure; the lock expires with its lease");
        }
        report(key, Action::Error, e.to_string())
    }
}
