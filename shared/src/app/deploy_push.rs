//! One push applied to one service: its policy, its containers, its deployment controller, and
//! under its lock the decision and the move onto a new revision.

use std::collections::BTreeSet;

use tracing::{error, info, warn};

use super::{
    DeployFunction, Gate, Moved, Target, push_details, push_name, push_record, report, skipped,
};
use crate::app::locking::{acquire, owner_cause, owner_token, renew_before_acting};
use crate::domain::deploy::{
    Push, PushDecision, choose_containers, controller_problem, decide_push, highest_version,
    record_push, reusable_revision, running_digest, running_tag, start_deployment,
};
use crate::domain::fleet::ImageChange;
use crate::domain::image::Digest;
use crate::domain::policy::Verdict;
use crate::domain::scan_wait::{end_wait, wait_of};
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::settings::DeploySettings;
use crate::domain::state::{Registered, ServiceState};
use crate::notification::{Kind, Notification, Severity};
use crate::ports::{Locked, PortError};
use crate::report::{Action, ServiceReport};

impl DeployFunction {
    pub(super) async fn push_to_service(
        &self,
        push: &Push,
        target: Target,
        done: &BTreeSet<ServiceKey>,
        gate: Gate<'_>,
    ) -> ServiceReport {
        let key = target.service.key.clone();
        if done.contains(&key) {
            let reason = "this event was already handled for this service";
            return self.duplicate(&key, &push.event_id, reason, None).await;
        }
        let settings = match DeploySettings::from_tags(&target.service.tags, self.config.guard) {
            Ok(Some(settings)) => settings,
            Ok(None) => return report(&key, Action::Ignored, "the service has not opted in"),
            Err(problems) => return self.invalid(&key, &push.event_id, &problems).await,
        };
        let changes = match choose_containers(
            push,
            &target.task_definition,
            settings.containers.as_deref(),
        ) {
            Ok(changes) if changes.is_empty() => {
                let reason = format!(
                    "no container named in deckhand:containers runs an image from {}",
                    push.repository.name
                );
                return self.ignore(&key, push, reason).await;
            }
            Ok(changes) => changes,
            Err(problem) => return self.invalid(&key, &push.event_id, &[problem]).await,
        };
        let running = if settings.policy.needs_running_version() {
            match self.running_tags(push, &changes).await {
                Ok(tags) => highest_version(tags.iter().map(String::as_str)),
                Err(e) => return self.failed(&key, push, None, e).await,
            }
        } else {
            None
        };
        let verdict = settings.policy.check(push.tag.as_deref(), running.as_ref());
        match (verdict, controller_problem(&target.service)) {
            (Verdict::Skip(reason), _) => self.ignore(&key, push, reason).await,
            (Verdict::Deploy(_), Some(problem)) => {
                self.invalid(&key, &push.event_id, &[problem]).await
            }
            (Verdict::Deploy(reason), None) => {
                self.deploy_locked(push, &target, &changes, reason, gate)
                    .await
            }
        }
    }

    /// Tags of the images the containers run: the tag in the image reference, or the tags ECR
    /// holds for the running digest.
    pub(super) async fn running_tags(
        &self,
        push: &Push,
        changes: &[ImageChange],
    ) -> Result<Vec<String>, PortError> {
        let mut tags = Vec::new();
        for change in changes {
            if let Some(tag) = running_tag(&change.from) {
                tags.push(tag.to_owned());
            } else if let Some(digest) =
                running_digest(&change.from).and_then(|d| d.parse::<Digest>().ok())
            {
                tags.extend(self.ports.ecr.image_tags(&push.repository, &digest).await?);
            }
        }
        Ok(tags)
    }

    pub(super) async fn deploy_locked(
        &self,
        push: &Push,
        target: &Target,
        changes: &[ImageChange],
        matched: String,
        gate: Gate<'_>,
    ) -> ServiceReport {
        let key = &target.service.key;
        let owner = owner_token(&push.event_id);
        let locked = match acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await {
            Ok(locked) => locked,
            Err(e) => return self.failed(key, push, None, e).await,
        };
        let running = target.task_definition.arn.as_str();
        let mut state = locked.state.clone();
        state.adopt_baseline(running);
        if gate == Gate::Passed && wait_of(&state, push).is_some() {
            // Whatever the push decides now, its wait is over.
            end_wait(&mut state, &push.repository);
        }
        let now = self.ports.clock.now();
        let mut record = push_record(key, push, now, Action::Skipped, String::new());
        record.from = Some(running.to_owned());

        match decide_push(push, changes, &locked.state, &target.task_definition) {
            PushDecision::Duplicate => {
                let reason = "this event was already applied to this service";
                self.duplicate(key, &push.event_id, reason, Some(&locked))
                    .await
            }
            PushDecision::Recover { from } => {
                warn!(%from, "an earlier attempt at this push moved the service and stopped before recording it");
                let moved = Moved {
                    from,
                    to: running.to_owned(),
                    ecs_deployment_id: None,
                };
                // The running revision is the new one: the baseline is the one it came from.
                let mut state = locked.state.clone();
                if gate == Gate::Passed {
                    end_wait(&mut state, &push.repository);
                }
                self.record_deployment(push, target, changes, matched, locked, state, moved)
                    .await
            }
            PushDecision::AlreadyRunning { reason } => {
                record_push(&mut state, push);
                record.reason = reason.clone();
                if let Err(e) = self
                    .commit(key, &locked, &state, record, &push.event_id)
                    .await
                {
                    return self.failed(key, push, None, e).await;
                }
                skipped(key, push, reason)
            }
            PushDecision::Skip { reason, notify } => {
                record.reason = reason.clone();
                if let Err(e) = self
                    .commit(key, &locked, &state, record, &push.event_id)
                    .await
                {
                    return self.failed(key, push, None, e).await;
                }
                if notify {
                    self.notify(Notification::new(
                        Kind::DeploySkipped,
                        Severity::Warning,
                        key.to_string(),
                        format!("Not deploying {} to {key}: {reason}", push_name(push)),
                        now,
                        push_details(push, changes, Some(running), None),
                    ))
                    .await;
                }
                skipped(key, push, reason)
            }
            PushDecision::Deploy if matches!(gate, Gate::Hold(_)) => {
                self.hold(push, key, &locked, state, record, gate).await
            }
            PushDecision::Deploy if self.config.dry_run => {
                let reason = format!("dry run: {matched}");
                record.action = Action::WouldDeploy;
                record.reason = reason.clone();
                record.dry_run = true;
                if let Err(e) = self
                    .commit(key, &locked, &state, record, &push.event_id)
                    .await
                {
                    return self.failed(key, push, None, e).await;
                }
                self.notify(Notification::new(
                    Kind::DeploySkipped,
                    Severity::Info,
                    key.to_string(),
                    format!("Dry run: would deploy {} to {key}", push_name(push)),
                    now,
                    push_details(push, changes, Some(running), None),
                ))
                .await;
                let mut r = report(key, Action::WouldDeploy, reason);
                r.from = Some(revision_name(running).to_owned());
                r.digest = Some(push.digest.to_string());
                r
            }
            PushDecision::Deploy => {
                self.deploy(push, target, changes, matched, locked, state)
                    .await
            }
        }
    }

    pub(super) async fn deploy(
        &self,
        push: &Push,
        target: &Target,
        changes: &[ImageChange],
        matched: String,
        mut locked: Locked,
        state: ServiceState,
    ) -> ServiceReport {
        let key = &target.service.key;
        let from = target.task_definition.arn.as_str();
        let to = match self.revision_for(push, target, changes, &locked).await {
            Ok(to) => to,
            Err(e) => return self.not_moved(push, key, from, &locked, None, e).await,
        };
        // The lease renewed first: a lock taken over while the revision was registered stops
        // the move here, and the other invocation decides.
        let store = &*self.ports.store;
        let moved = match renew_before_acting(store, &*self.ports.clock, key, &mut locked).await {
            Ok(()) => self.ports.ecs.update_service(key, &to).await,
            Err(e) => Err(e),
        };
        let ecs_deployment_id = match moved {
            Ok(id) => id,
            Err(e) => {
                // Keep the revision for the retry of this push, so it registers no other.
                let registered = Registered {
                    event_id: push.event_id.clone(),
                    from: from.to_owned(),
                    task_definition: to,
                };
                return self
                    .not_moved(push, key, from, &locked, Some(registered), e)
                    .await;
            }
        };
        let moved = Moved {
            from: from.to_owned(),
            to,
            ecs_deployment_id,
        };
        self.record_deployment(push, target, changes, matched, locked, state, moved)
            .await
    }

    /// The revision to move the service to: the one an earlier attempt at this push
    /// registered, if it got that far, else a new one.
    pub(super) async fn revision_for(
        &self,
        push: &Push,
        target: &Target,
        changes: &[ImageChange],
        locked: &Locked,
    ) -> Result<String, PortError> {
        let base = &target.task_definition;
        if let Some(arn) = reusable_revision(&locked.state, push, &base.arn) {
            info!(%arn, "using the revision an earlier attempt registered");
            return Ok(arn.to_owned());
        }
        let interrupted_here = locked
            .interrupted
            .as_deref()
            .is_some_and(|holder| owner_cause(holder) == push.event_id);
        if interrupted_here
            && let Some(arn) = self.ports.ecs.registered_for(base, &push.event_id).await?
        {
            info!(%arn, "using the revision an interrupted attempt registered");
            return Ok(arn);
        }
        self.ports
            .ecs
            .register_revision(base, changes, &push.event_id)
            .await
    }

    /// The service was not moved: give the lock back with the failure on record (and the
    /// revision registered for the retry, if there is one); a retry redoes the rest.
    pub(super) async fn not_moved(
        &self,
        push: &Push,
        key: &ServiceKey,
        from: &str,
        locked: &Locked,
        registered: Option<Registered>,
        e: PortError,
    ) -> ServiceReport {
        let now = self.ports.clock.now();
        let mut record = push_record(key, push, now, Action::Error, e.to_string());
        record.from = Some(from.to_owned());
        record.to = registered.as_ref().map(|r| r.task_definition.clone());
        let state = ServiceState {
            registered: registered.or_else(|| locked.state.registered.clone()),
            ..locked.state.clone()
        };
        if let Err(commit_error) = self
            .ports
            .store
            .commit(key, locked, &state, &[record], None)
            .await
        {
            warn!(error = %commit_error, "could not record the failure");
        }
        self.failed(key, push, Some(from), e).await
    }

    /// Records a deployment that moved the service: state, history and processed mark in one
    /// commit, then `deploy.started`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn record_deployment(
        &self,
        push: &Push,
        target: &Target,
        changes: &[ImageChange],
        matched: String,
        locked: Locked,
        mut state: ServiceState,
        moved: Moved,
    ) -> ServiceReport {
        let key = &target.service.key;
        let Moved {
            from,
            to,
            ecs_deployment_id,
        } = moved;
        let from = from.as_str();
        let now = self.ports.clock.now();
        start_deployment(
            &mut state,
            push,
            changes,
            from,
            &to,
            ecs_deployment_id.clone(),
            now,
        );
        let asleep = target.service.desired_count == 0;
        if let Some(deployment) = state.deployment.as_mut() {
            deployment.at_zero_tasks = asleep;
        }
        // A sleeping service gets the revision without being woken: its count stays as the
        // scheduler left it, and the wake-up runs the new revision.
        let matched = match &state.sleep {
            Some(_) if asleep => format!("{matched}; the service sleeps and runs it when woken"),
            _ if asleep => format!("{matched}; the service runs no tasks"),
            _ => matched,
        };
        let mut record = push_record(key, push, now, Action::Deployed, matched.clone());
        record.from = Some(from.to_owned());
        record.to = Some(to.clone());
        record.ecs_deployment_id = ecs_deployment_id.clone();
        if let Err(e) = self
            .commit(key, &locked, &state, record, &push.event_id)
            .await
        {
            // ECS has the new revision; the record of it is not written. A redelivery finds
            // the service on the revision registered for this push and records it then.
            error!(error = %e, to = %to, "deployed but could not record the deployment");
            return self.failed(key, push, Some(from), e).await;
        }
        info!(from = %revision_name(from), to = %revision_name(&to), "deployed");
        self.notify(Notification::new(
            Kind::DeployStarted,
            Severity::Info,
            key.to_string(),
            format!(
                "Deploying {} to {key}: {} -> {}",
                push_name(push),
                revision_name(from),
                revision_name(&to)
            ),
            now,
            push_details(push, changes, Some(from), Some(&to)),
        ))
        .await;
        ServiceReport {
            service: key.to_string(),
            action: Action::Deployed,
            from: Some(revision_name(from).to_owned()),
            to: Some(revision_name(&to).to_owned()),
            digest: Some(push.digest.to_string()),
            reason: matched,
        }
    }
}
