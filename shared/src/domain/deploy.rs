//! Deploy on push and the ECS deployment lifecycle: pure decisions.

use chrono::{DateTime, TimeDelta, Utc};
use semver::Version;

use super::fleet::{ImageChange, ServiceView, TaskDefinitionView};
use super::image::{Digest, ImageRef, Repository};
use super::policy::parse_version;
use super::service::{ServiceKey, revision_name};
use super::settings::{TAG_CONTAINERS, TagProblem};
use super::state::{AppliedPush, Deployment, DeploymentStatus, ServiceState};

/// A successful image push to ECR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    pub event_id: String,
    /// When ECR accepted the push (the event's `time`): orders late deliveries.
    pub at: DateTime<Utc>,
    pub repository: Repository,
    pub digest: Digest,
    pub tag: Option<String>,
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
    if let Some(names) = named {
        if let Some(missing) = names
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
    tags.into_iter().filter_map(parse_version).max_by(|a, b| a.cmp_precedence(b))
}

#[derive(Clone, Debug, PartialEq)]
pub enum PushDecision {
    /// This event was already applied to this service: nothing to do, nothing to record.
    Duplicate,
    Skip { reason: String, notify: bool },
    Deploy,
}

/// Decides, under the service's lock, whether a push that passed its policy deploys.
pub fn decide_push(push: &Push, changes: &[ImageChange], state: &ServiceState) -> PushDecision {
    let applied = state.pushes.get(&push.repository_key());
    if applied.is_some_and(|a| a.event_id == push.event_id)
        || state.deployment.as_ref().is_some_and(|d| d.id == push.event_id)
    {
        return PushDecision::Duplicate;
    }
    if let Some(newer) = applied.filter(|a| a.at > push.at) {
        return PushDecision::Skip {
            reason: format!(
                "a newer push ({} at {}) was already applied; this one is from {}",
                newer.digest.short(),
                newer.at.to_rfc3339(),
                push.at.to_rfc3339()
            ),
            notify: true,
        };
    }
    if let Some(q) = state.is_quarantined(&push.digest) {
        return PushDecision::Skip {
            reason: format!(
                "digest {} is quarantined for this service since {} ({}); release it to deploy it again",
                push.digest.short(),
                q.at.to_rfc3339(),
                q.reason
            ),
            notify: true,
        };
    }
    if changes
        .iter()
        .all(|c| running_digest(&c.from) == Some(push.digest.as_str()))
    {
        return PushDecision::Skip {
            reason: format!("the service already runs digest {}", push.digest.short()),
            notify: false,
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
    state.deployment = Some(Deployment {
        id: push.event_id.clone(),
        repository: push.repository.name.clone(),
        digest: push.digest.clone(),
        tag: push.tag.clone(),
        containers: changes.iter().map(|c| c.container.clone()).collect(),
        from: from.to_owned(),
        to: to.to_owned(),
        started_at: now,
        status: DeploymentStatus::InProgress,
        ecs_deployment_id,
        finished_at: None,
        guard_until: None,
    });
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
    Completed { guard_until: DateTime<Utc> },
    Failed { reason: String },
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
    let listed = service.deployments.iter().find(|d| d.id == event.ecs_deployment_id);
    let matches = match (&ours.ecs_deployment_id, listed) {
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
        (DeploymentEventKind::Completed, DeploymentStatus::InProgress) => D::Completed {
            guard_until: event.at + guard,
        },
        (DeploymentEventKind::Failed, DeploymentStatus::InProgress | DeploymentStatus::Completed) => {
            D::Failed {
                reason: event
                    .reason
                    .clone()
                    .unwrap_or_else(|| "ECS reported the deployment failed".into()),
            }
        }
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
    ours.ecs_deployment_id.get_or_insert_with(|| event.ecs_deployment_id.clone());
    match decision {
        DeploymentEventDecision::Completed { guard_until } => {
            ours.status = DeploymentStatus::Completed;
            ours.finished_at = Some(event.at);
            ours.guard_until = Some(*guard_until);
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
