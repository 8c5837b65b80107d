//! Deploy on push and the ECS deployment lifecycle: pure decisions.

use chrono::{DateTime, TimeDelta, Utc};
use semver::Version;

use super::artifact::ManifestKind;
use super::fleet::{ImageChange, ServiceView, TaskDefinitionView};
use super::image::{Digest, ImageRef, Repository};
use super::policy::parse_version;
use super::service::{ServiceKey, revision_name};
use super::settings::{TAG_CONTAINERS, TAG_DEPLOY, TagProblem};
use super::state::{AppliedPush, Deployment, DeploymentStatus, ServiceState};
use super::strategy::DeploymentController;

/// A successful image push to ECR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    pub event_id: String,
    /// When ECR accepted the push (the event's `time`): orders late deliveries.
    pub at: DateTime<Utc>,
    pub repository: Repository,
    pub digest: Digest,
    pub tag: Option<String>,
    /// An image or an index of images, as the event's media type says.
    pub manifest: ManifestKind,
    /// Not pushed but promoted: an upstream service proved the digest (`domain::promotion`).
    pub promoted: Option<Box<super::promotion::Promotion>>,
}

impl Push {
    fn repository_key(&self) -> String {
        self.repository.to_string()
    }
}

/// The containers a push moves, with their new images. An empty list means the service does
/// not use the pushed repository; a container named in `deckhand:containers` that the task
/// definition lacks is a tag problem.
pub fn choose_containers(
    push: &Push,
    task_definition: &TaskDefinitionView,
    named: Option<&[String]>,
) -> Result<Vec<ImageChange>, TagProblem> {
    if let Some(names) = named
        && let Some(missing) = names
            .iter()
            .find(|n| !task_definition.containers.iter().any(|c| &&c.name == n))
    {
        return Err(TagProblem {
            tag: TAG_CONTAINERS.into(),
            value: names.join(" "),
            message: format!(
                "names container `{missing}`, which {}:{} does not have",
                task_definition.family, task_definition.revision
            ),
        });
    }
    Ok(task_definition
        .containers
        .iter()
        .filter(|c| named.is_none_or(|names| names.contains(&c.name)))
        .filter_map(|c| {
            let image = ImageRef::parse(&c.image)?;
            image.is_in(&push.repository).then(|| ImageChange {
                container: c.name.clone(),
                from: c.image.clone(),
                to: image.pinned(&push.digest),
            })
        })
        .collect())
}

/// Why deckhand cannot deploy this service, if it cannot: ECS accepts a new task definition
/// through `UpdateService` only when ECS itself deploys the service, and deckhand drives
/// CodeDeploy for a `CODE_DEPLOY` one (`domain::codedeploy`). With `EXTERNAL` a third-party
/// controller deploys it, with task sets. Reported as a problem of `deckhand:deploy`, before
/// anything is registered.
pub fn controller_problem(service: &ServiceView) -> Option<TagProblem> {
    let why = match service.controller {
        DeploymentController::Ecs | DeploymentController::CodeDeploy => return None,
        DeploymentController::External => {
            "the service uses the EXTERNAL deployment controller, whose task sets another tool manages"
        }
    };
    Some(TagProblem {
        tag: TAG_DEPLOY.into(),
        value: service.tags.get(TAG_DEPLOY).cloned().unwrap_or_default(),
        message: format!(
            "{why}; ECS refuses a new task definition through UpdateService there, so deckhand cannot deploy it"
        ),
    })
}

/// The tag a running image names, if it is pinned by tag rather than by digest alone.
pub fn running_tag(image: &str) -> Option<&str> {
    ImageRef::parse(image).and_then(|r| r.tag)
}

/// The running digest, if the image is pinned by digest.
pub fn running_digest(image: &str) -> Option<&str> {
    ImageRef::parse(image).and_then(|r| r.digest)
}

/// The highest semantic version among tags known for the images running now.
pub fn highest_version<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<Version> {
    tags.into_iter()
        .filter_map(parse_version)
        .max_by(|a, b| a.cmp_precedence(b))
}

#[derive(Clone, Debug, PartialEq)]
pub enum PushDecision {
    /// This event was already applied to this service: nothing to do, nothing to record.
    Duplicate,
    /// The service already runs the revision deckhand registered for this push: an earlier
    /// attempt moved it and stopped before recording. The deployment is recorded now.
    Recover {
        /// The task definition ARN the running revision was cloned from.
        from: String,
    },
    Skip {
        reason: String,
        notify: bool,
    },
    /// Every chosen container runs the pushed digest: the push counts as applied.
    AlreadyRunning {
        reason: String,
    },
    Deploy,
}

/// Decides, under the service's lock, whether a push that passed its policy deploys.
/// `running` is the task definition the service runs.
pub fn decide_push(
    push: &Push,
    changes: &[ImageChange],
    state: &ServiceState,
    running: &TaskDefinitionView,
) -> PushDecision {
    let applied = state.pushes.get(&push.repository_key());
    if applied.is_some_and(|a| a.event_id == push.event_id)
        || state
            .deployment
            .as_ref()
            .is_some_and(|d| d.id == push.event_id)
    {
        return PushDecision::Duplicate;
    }
    if let Some(registered) = running
        .registered_for
        .as_ref()
        .filter(|r| r.event_id == push.event_id)
    {
        return PushDecision::Recover {
            from: running.revision_arn(registered.cloned_from),
        };
    }
    if let Some(p) = &state.paused {
        return PushDecision::Skip {
            reason: format!(
                "deploys of this service are paused since {} by {}; resume to deploy",
                p.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                p.by
            ),
            notify: false,
        };
    }
    if let Some(newer) = applied.filter(|a| a.at > push.at) {
        return PushDecision::Skip {
            reason: format!(
                "a newer push ({} at {}) was already applied; this one is from {}",
                newer.digest.short(),
                newer.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                push.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            notify: true,
        };
    }
    if let Some(q) = state.is_quarantined(&push.digest) {
        return PushDecision::Skip {
            reason: format!(
                "digest {} is quarantined for this service since {} ({}); release it to deploy it again",
                push.digest.short(),
                q.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                q.reason
            ),
            notify: true,
        };
    }
    if changes
        .iter()
        .all(|c| running_digest(&c.from) == Some(push.digest.as_str()))
    {
        return PushDecision::AlreadyRunning {
            reason: format!("the service already runs digest {}", push.digest.short()),
        };
    }
    PushDecision::Deploy
}

/// Remembers that a push was applied (deployed, or found already running).
pub fn record_push(state: &mut ServiceState, push: &Push) {
    state.pushes.insert(
        push.repository_key(),
        AppliedPush {
            at: push.at,
            digest: push.digest.clone(),
            event_id: push.event_id.clone(),
        },
    );
}

/// The revision an earlier attempt at this push registered from the revision the service
/// still runs, if moving the service failed then.
pub fn reusable_revision<'a>(state: &'a ServiceState, push: &Push, base: &str) -> Option<&'a str> {
    state
        .registered
        .as_ref()
        .filter(|r| r.event_id == push.event_id && r.from == base)
        .map(|r| r.task_definition.as_str())
}

/// The state after deckhand moved the service from `from` to `to`.
pub fn start_deployment(
    state: &mut ServiceState,
    push: &Push,
    changes: &[ImageChange],
    from: &str,
    to: &str,
    ecs_deployment_id: Option<String>,
    now: DateTime<Utc>,
) {
    state.adopt_baseline(from);
    state.settle(now);
    record_push(state, push);
    state.registered = None;
    state.deployment = Some(Deployment {
        id: push.event_id.clone(),
        repository: push.repository.name.clone(),
        digest: push.digest.clone(),
        tag: push.tag.clone(),
        containers: changes.iter().map(|c| c.container.clone()).collect(),
        from: from.to_owned(),
        to: to.to_owned(),
        started_at: now,
        pushed_at: Some(push.at),
        status: DeploymentStatus::InProgress,
        ecs_deployment_id,
        finished_at: None,
        guard_until: None,
        at_zero_tasks: false,
        rollback: None,
        dry_run: false,
        alarmed: None,
        early_completed_at: None,
        from_images: Vec::new(),
    });
    state.prune_pins();
}

/// In dry run, a push that would deploy the digest the would-be deployment already runs counts
/// as running it, as it would on a service deckhand had really moved.
pub fn decide_dry_run_push(
    decision: PushDecision,
    state: &ServiceState,
    push: &Push,
) -> PushDecision {
    let would_run = state.deployment.as_ref().is_some_and(|d| {
        d.dry_run
            && d.digest == push.digest
            && matches!(
                d.status,
                DeploymentStatus::InProgress | DeploymentStatus::Completed
            )
    });
    match decision {
        PushDecision::Deploy if would_run => PushDecision::AlreadyRunning {
            reason: format!(
                "dry run: the would-be deployment already runs digest {}",
                push.digest.short()
            ),
        },
        other => other,
    }
}

/// The state after a push that would deploy, in dry run: nothing is registered and the service
/// is not moved, but the would-be deployment is on record, so that an alarm is decided as it
/// would be for real (`would-roll-back`). It completes with the next ECS deployment of the
/// service; without one (nobody deploys during the trial), its guard window counts from the
/// push.
pub fn start_dry_run_deployment(
    state: &mut ServiceState,
    push: &Push,
    changes: &[ImageChange],
    running: &str,
    now: DateTime<Utc>,
    guard: TimeDelta,
) {
    start_deployment(state, push, changes, running, running, None, now);
    if let Some(d) = state.deployment.as_mut() {
        d.dry_run = true;
        d.guard_until = Some(now + guard);
    }
}

/// `ECS Deployment State Change`, the part deckhand reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentEvent {
    pub event_id: String,
    pub service: ServiceKey,
    pub kind: DeploymentEventKind,
    pub ecs_deployment_id: String,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeploymentEventKind {
    InProgress,
    Completed,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeploymentEventDecision {
    /// Not about deckhand's latest deployment of this service.
    NotOurs(String),
    /// This state was already recorded.
    Duplicate(String),
    InProgress,
    Completed {
        guard_until: DateTime<Utc>,
    },
    /// ECS completed it by its early success criteria while the service still rolls out (old
    /// tasks draining, or not every new task started): still in progress for deckhand, whose
    /// guard window starts once the rollout settles. ECS's own circuit breaker and alarm
    /// rollback stop here, so until then an alarm rolls it back as during any rollout.
    CompletedEarly {
        criteria: super::fleet::EarlySuccess,
    },
    Failed {
        reason: String,
    },
}

/// Matches an ECS deployment event to deckhand's latest deployment of the service and decides
/// what it means. The ECS deployment id decides when deckhand knows it (from `UpdateService`)
/// or ECS still lists the deployment; otherwise the event must be newer than the deployment
/// and, unless it failed (ECS may already have rolled back), the service must run its revision.
pub fn decide_deployment_event(
    event: &DeploymentEvent,
    state: &ServiceState,
    service: &ServiceView,
    guard: TimeDelta,
) -> DeploymentEventDecision {
    use DeploymentEventDecision as D;
    let Some(ours) = &state.deployment else {
        return D::NotOurs("deckhand has not deployed this service".into());
    };
    let listed = service
        .deployments
        .iter()
        .find(|d| d.id == event.ecs_deployment_id);
    let matches = match (&ours.ecs_deployment_id, listed) {
        // A would-be deployment stands in for the first ECS deployment after its push: in a
        // trial beside a pipeline, the pipeline's deployment of the same image.
        _ if ours.dry_run => {
            event.at >= ours.started_at
                && ours
                    .ecs_deployment_id
                    .as_ref()
                    .is_none_or(|id| *id == event.ecs_deployment_id)
        }
        (Some(id), _) => *id == event.ecs_deployment_id,
        (None, Some(listed)) => listed.task_definition == ours.to,
        (None, None) => {
            event.at >= ours.started_at
                && (event.kind == DeploymentEventKind::Failed || service.task_definition == ours.to)
        }
    };
    if !matches {
        return D::NotOurs(format!(
            "ECS deployment {} is not deckhand's deployment of {}",
            event.ecs_deployment_id,
            revision_name(&ours.to)
        ));
    }
    match (event.kind, ours.status) {
        (DeploymentEventKind::InProgress, DeploymentStatus::InProgress) => D::InProgress,
        (DeploymentEventKind::Completed, DeploymentStatus::InProgress)
            if ours.early_completed_at.is_some() =>
        {
            D::Duplicate(format!(
                "ECS already completed the deployment of {} early; its rollout still settles",
                revision_name(&ours.to)
            ))
        }
        (DeploymentEventKind::Completed, DeploymentStatus::InProgress) => {
            // A pair's side moves its traffic when ECS completes it, whatever the criteria.
            let pair = service.tags.contains_key(super::pair::TAG_PAIR);
            match &service.early_success {
                Some(criteria) if !ours.dry_run && !pair && !service.rollout_settled() => {
                    D::CompletedEarly {
                        criteria: criteria.clone(),
                    }
                }
                _ => D::Completed {
                    guard_until: event.at + guard,
                },
            }
        }
        (
            DeploymentEventKind::Failed,
            DeploymentStatus::InProgress | DeploymentStatus::Completed,
        ) => D::Failed {
            reason: event
                .reason
                .clone()
                .unwrap_or_else(|| "ECS reported the deployment failed".into()),
        },
        (_, status) => D::Duplicate(format!(
            "the deployment of {} is already {}",
            revision_name(&ours.to),
            status_word(status)
        )),
    }
}

pub fn status_word(status: DeploymentStatus) -> &'static str {
    match status {
        DeploymentStatus::InProgress => "in progress",
        DeploymentStatus::Completed => "completed",
        DeploymentStatus::Failed => "failed",
        DeploymentStatus::RolledBack => "rolled back",
    }
}

/// The state after a deployment event that matched.
pub fn apply_deployment_event(
    state: &mut ServiceState,
    event: &DeploymentEvent,
    decision: &DeploymentEventDecision,
) {
    let Some(ours) = state.deployment.as_mut() else {
        return;
    };
    ours.ecs_deployment_id
        .get_or_insert_with(|| event.ecs_deployment_id.clone());
    match decision {
        DeploymentEventDecision::Completed { guard_until } => {
            ours.status = DeploymentStatus::Completed;
            ours.finished_at = Some(event.at);
            ours.guard_until = Some(*guard_until);
        }
        DeploymentEventDecision::CompletedEarly { .. } => {
            ours.early_completed_at = Some(event.at);
        }
        DeploymentEventDecision::Failed { .. } if ours.dry_run => {
            ours.status = DeploymentStatus::Failed;
            ours.finished_at = Some(event.at);
        }
        DeploymentEventDecision::Failed { reason } => {
            ours.status = DeploymentStatus::Failed;
            ours.finished_at = Some(event.at);
            let (digest, id) = (ours.digest.clone(), ours.id.clone());
            state.quarantine(
                &digest,
                format!("deployment failed: {reason}"),
                event.at,
                Some(id),
            );
        }
        _ => {}
    }
}

#[cfg(test)]
#[path = "deploy_tests.rs"]
mod tests;
