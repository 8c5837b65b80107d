//! `deckhand rollback CLUSTER/SERVICE`: an operator's rollback to the known-good revision (or one
//! named), under the service's lock, as an alarm's would be, with the operator recorded.

use chrono::SecondsFormat;

use super::{Case, Prepared, RollbackError, RollbackFunction, Rolled, family, pinned};
use crate::app::locking::{acquire, owner_token};
use crate::domain::codedeploy::running_revision;
use crate::domain::rollback::{Alarm, RollbackDecision, decide_manual_rollback};
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::strategy::DeploymentController;
use crate::ports::PortErrorKind;
use crate::report::Summary;

impl RollbackFunction {
    /// An operator's rollback, through the same path as an alarm's (lock, quarantine, history,
    /// notification): to `to` (`family:revision` or an ARN) or else the known-good revision.
    pub async fn manual(
        &self,
        key: &ServiceKey,
        to: Option<&str>,
        by: &str,
    ) -> Result<Summary, RollbackError> {
        let now = self.ports.clock.now();
        let services = self
            .ports
            .ecs
            .describe_services(std::slice::from_ref(key))
            .await
            .map_err(RollbackError::Discovery)?;
        let Some(service) = services.into_iter().next() else {
            return Err(RollbackError::Refused(format!("{key} does not exist")));
        };
        if service.controller == DeploymentController::External {
            return Err(RollbackError::Refused(format!(
                "{key} uses the EXTERNAL deployment controller: its task sets belong to another tool"
            )));
        }
        let alarm = Alarm {
            event_id: format!(
                "rollback#{by}@{}",
                now.to_rfc3339_opts(SecondsFormat::Millis, true)
            ),
            name: format!("manual rollback by {by}"),
            arn: None,
            state: crate::domain::rollback::AlarmState::Alarm,
            previous: None,
            reason: "requested by an operator".into(),
            at: now,
            dimensions: Vec::new(),
            rule: None,
            description: None,
            actions: None,
        };
        // A side of a pair goes back by its traffic, never by a revision.
        if let Some(holder) = self
            .pair_holder(key, &service.tags)
            .await
            .map_err(RollbackError::Discovery)?
        {
            if to.is_some() {
                return Err(RollbackError::Refused(format!(
                    "{key} is a side of a pair: it is rolled back by its traffic, without --to"
                )));
            }
            return self.manual_pair(&holder, &alarm).await;
        }
        // An unknown revision is refused before anything is locked or written.
        let requested = match to {
            None => None,
            Some(to) => match self.ports.ecs.describe_task_definition(to).await {
                // Only what the service could have run: another family is another
                // application's task definition, with its roles and secrets.
                Ok(td) if family(&td.arn) != family(&service.task_definition) => {
                    return Err(RollbackError::Refused(format!(
                        "{} is not a revision of {key}'s family {}: a rollback goes back to what the service ran",
                        revision_name(&td.arn),
                        family(&service.task_definition)
                    )));
                }
                Ok(td) => Some(td.arn),
                Err(e)
                    if e.kind == PortErrorKind::NotFound
                        || e.message.contains("ClientException") =>
                {
                    return Err(RollbackError::Refused(format!(
                        "{to} is not a task definition revision ECS knows"
                    )));
                }
                Err(e) => return Err(RollbackError::Discovery(e)),
            },
        };
        let owner = owner_token(&alarm.event_id);
        let locked = acquire(&*self.ports.store, &*self.ports.clock, key, &owner)
            .await
            .map_err(RollbackError::Discovery)?;
        // During a CodeDeploy deployment the service runs deckhand's revision in a task set.
        let deployed = locked.state.deployment.as_ref().map(|d| d.to.as_str());
        let running = running_revision(&service, deployed);
        let requested = requested.as_deref();
        let mut decision = decide_manual_rollback(&locked.state, now, running, requested, None);
        let mut prepared = None;
        if let RollbackDecision::RollBack { from, to, .. } = &decision {
            let ready = self.prepare_target(
                key,
                (from, to),
                &locked.state,
                &alarm.event_id,
                self.config.dry_run,
            );
            match ready.await {
                Ok(Prepared::Ready {
                    quarantined: Some(digest),
                    ..
                }) => {
                    decision = decide_manual_rollback(
                        &locked.state,
                        now,
                        running,
                        requested,
                        Some(&digest),
                    );
                }
                Ok(Prepared::Unknown(why)) => decision = RollbackDecision::Skip(why),
                Ok(ready) => prepared = Some(ready),
                Err(e) => {
                    let report = self.failed_under_lock(key, &alarm, &locked, e).await;
                    return Err(RollbackError::ServicesFailed(Summary::of(
                        vec![report],
                        String::new,
                    )));
                }
            }
        }
        let case = Case {
            key,
            alarm: &alarm,
            locked: &locked,
            guard: "requested by an operator",
            dry_run: self.config.dry_run,
        };
        let report = match decision {
            RollbackDecision::Skip(reason) => self.skip(&case, &locked.state, reason).await,
            RollbackDecision::Finish { from, to, reason } => {
                let state = locked.state.clone();
                self.record_rollback(&case, state, (&from, &to), reason, None)
                    .await
            }
            RollbackDecision::RollBack { from, to, reason } => {
                let back_to = locked.state.deployment.as_ref().map(|d| d.from.as_str());
                let back_to_target = back_to == Some(to.as_str());
                let mut state = locked.state.clone();
                let (reason, to, images) = pinned(&mut state, prepared, reason, to);
                match self
                    .roll_back_service(
                        &service,
                        (&from, &to),
                        back_to_target,
                        &locked,
                        images.as_deref(),
                    )
                    .await
                {
                    Ok(Rolled::Restoring {
                        archived,
                        activating,
                    }) => {
                        let pending = (from.as_str(), to.as_str(), reason);
                        self.restoring(&case, state, pending, &archived, &activating)
                            .await
                    }
                    Ok(Rolled::Unpullable(why)) => {
                        self.skip(
                            &case,
                            &locked.state,
                            format!("{reason}; not rolled back: {why}"),
                        )
                        .await
                    }
                    Ok(Rolled::Back(route)) => {
                        let reason = match route.words(&to) {
                            Some(words) => format!("{reason}; {words}"),
                            None => reason,
                        };
                        self.record_rollback(&case, state, (&from, &to), reason, Some(&route))
                            .await
                    }
                    Ok(Rolled::Blocked { reason, .. }) => {
                        // An operator is told at once; nothing is retried behind their back.
                        self.release(key, &locked).await;
                        return Err(RollbackError::Refused(format!(
                            "{key} is not rolled back: {reason}"
                        )));
                    }
                    Err(e) => self.failed_under_lock(key, &alarm, &locked, e).await,
                }
            }
        };
        let summary = Summary::of(vec![report], String::new);
        if summary.failed_services().next().is_some() {
            return Err(RollbackError::ServicesFailed(summary));
        }
        Ok(summary)
    }
}
