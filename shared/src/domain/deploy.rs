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
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::fleet::{Container, EcsDeployment, Source};
    use crate::domain::state::Quarantine;

    const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 10, minute, 0).unwrap()
    }

    fn push(id: &str, minute: u32, d: char) -> Push {
        Push {
            event_id: id.into(),
            at: at(minute),
            repository: Repository {
                account: "123456789012".into(),
                region: "eu-west-1".into(),
                name: "web".into(),
            },
            digest: digest(d),
            tag: Some(format!("main-{minute}")),
            manifest: ManifestKind::Image,
        }
    }

    fn td(containers: &[(&str, &str)]) -> TaskDefinitionView {
        TaskDefinitionView {
            arn: "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:7".into(),
            family: "web".into(),
            revision: 7,
            containers: containers
                .iter()
                .map(|(n, i)| Container {
                    name: (*n).into(),
                    image: (*i).into(),
                })
                .collect(),
            registered_for: None,
            source: Source::default(),
        }
    }

    fn web_td() -> TaskDefinitionView {
        td(&[
            ("web", &format!("{HOST}/web:main-1")),
            ("worker", &format!("{HOST}/web:main-1")),
            ("proxy", &format!("{HOST}/envoy:1.30")),
        ])
    }

    #[test]
    fn chooses_every_container_of_the_repository_by_default() {
        let changes = choose_containers(&push("e", 1, 'b'), &web_td(), None).unwrap();
        let names: Vec<&str> = changes.iter().map(|c| c.container.as_str()).collect();
        assert_eq!(names, ["web", "worker"]);
        assert_eq!(changes[0].to, format!("{HOST}/web@{}", digest('b')));
        assert_eq!(changes[0].from, format!("{HOST}/web:main-1"));
    }

    #[test]
    fn deckhand_containers_narrows_the_choice() {
        let named = vec!["worker".to_string(), "proxy".to_string()];
        let changes = choose_containers(&push("e", 1, 'b'), &web_td(), Some(&named)).unwrap();
        let names: Vec<&str> = changes.iter().map(|c| c.container.as_str()).collect();
        assert_eq!(
            names,
            ["worker"],
            "proxy runs another repository and is not touched"
        );

        let named = vec!["proxy".to_string()];
        assert!(
            choose_containers(&push("e", 1, 'b'), &web_td(), Some(&named))
                .unwrap()
                .is_empty()
        );

        let named = vec!["web".to_string(), "api".to_string()];
        let problem = choose_containers(&push("e", 1, 'b'), &web_td(), Some(&named)).unwrap_err();
        assert_eq!(problem.tag, "deckhand:containers");
        assert!(problem.message.contains("`api`"), "{}", problem.message);
    }

    #[test]
    fn running_versions_come_from_tags() {
        assert_eq!(running_tag(&format!("{HOST}/web:v1.2.3")), Some("v1.2.3"));
        assert_eq!(running_tag(&format!("{HOST}/web@{}", digest('a'))), None);
        assert_eq!(
            running_digest(&format!("{HOST}/web@{}", digest('a'))),
            Some(digest('a').as_str())
        );
        assert_eq!(
            highest_version(["latest", "v1.2.3", "1.10.0", "1.9.9"]),
            Some(Version::new(1, 10, 0))
        );
        assert_eq!(highest_version(["latest"]), None);
    }

    fn changes_for(p: &Push) -> Vec<ImageChange> {
        choose_containers(p, &web_td(), None).unwrap()
    }

    #[test]
    fn a_new_push_deploys() {
        let p = push("e2", 2, 'b');
        assert_eq!(
            decide_push(&p, &changes_for(&p), &ServiceState::default(), &web_td()),
            PushDecision::Deploy
        );
    }

    #[test]
    fn the_same_event_again_is_a_duplicate() {
        let p = push("e2", 2, 'b');
        let mut state = ServiceState::default();
        record_push(&mut state, &p);
        assert_eq!(
            decide_push(&p, &changes_for(&p), &state, &web_td()),
            PushDecision::Duplicate
        );
    }

    #[test]
    fn an_older_push_after_a_newer_one_is_skipped() {
        let newer = push("e5", 5, 'c');
        let older = push("e3", 3, 'b');
        let mut state = ServiceState::default();
        record_push(&mut state, &newer);
        match decide_push(&older, &changes_for(&older), &state, &web_td()) {
            PushDecision::Skip {
                reason,
                notify: true,
            } => assert!(reason.contains("newer push"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // same second is not older: the later arrival wins
        let same = push("e5b", 5, 'd');
        assert_eq!(
            decide_push(&same, &changes_for(&same), &state, &web_td()),
            PushDecision::Deploy
        );
    }

    #[test]
    fn a_quarantined_digest_is_skipped() {
        let p = push("e2", 2, 'b');
        let mut state = ServiceState::default();
        state.quarantine.insert(
            p.digest.to_string(),
            Quarantine {
                reason: "deployment failed".into(),
                at: at(1),
                deployment: None,
            },
        );
        match decide_push(&p, &changes_for(&p), &state, &web_td()) {
            PushDecision::Skip {
                reason,
                notify: true,
            } => assert!(reason.contains("quarantined"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let fixed = push("e3", 3, 'c');
        assert_eq!(
            decide_push(&fixed, &changes_for(&fixed), &state, &web_td()),
            PushDecision::Deploy
        );
    }

    #[test]
    fn a_paused_service_skips_every_push_until_resumed() {
        let p = push("e2", 2, 'b');
        let mut state = ServiceState {
            paused: Some(crate::domain::state::Paused {
                at: at(1),
                by: "alice".into(),
            }),
            ..Default::default()
        };
        match decide_push(&p, &changes_for(&p), &state, &web_td()) {
            PushDecision::Skip {
                reason,
                notify: false,
            } => assert!(
                reason.starts_with("deploys of this service are paused"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        state.paused = None;
        assert_eq!(
            decide_push(&p, &changes_for(&p), &state, &web_td()),
            PushDecision::Deploy
        );
    }

    #[test]
    fn a_digest_already_running_is_skipped_quietly() {
        let p = push("e2", 2, 'b');
        let pinned = format!("{HOST}/web@{}", p.digest);
        let running = td(&[("web", &pinned), ("worker", &pinned)]);
        let changes = choose_containers(&p, &running, None).unwrap();
        assert_eq!(
            decide_push(&p, &changes, &ServiceState::default(), &web_td()),
            PushDecision::AlreadyRunning {
                reason: format!("the service already runs digest {}", p.digest.short()),
            }
        );
        // one container still on another digest: deploy
        let mixed = td(&[("web", &pinned), ("worker", &format!("{HOST}/web:main-1"))]);
        let changes = choose_containers(&p, &mixed, None).unwrap();
        assert_eq!(
            decide_push(&p, &changes, &ServiceState::default(), &web_td()),
            PushDecision::Deploy
        );
    }

    #[test]
    fn starting_a_deployment_keeps_the_baseline_and_promotes_a_proven_one() {
        let p1 = push("e1", 1, 'b');
        let mut state = ServiceState::default();
        start_deployment(
            &mut state,
            &p1,
            &changes_for(&p1),
            "web:7",
            "web:8",
            None,
            at(1),
        );
        assert_eq!(state.known_good.as_deref(), Some("web:7"));
        let d = state.deployment.as_ref().unwrap();
        assert_eq!(
            (d.from.as_str(), d.to.as_str(), d.status),
            ("web:7", "web:8", DeploymentStatus::InProgress)
        );
        assert_eq!(d.containers, ["web", "worker"]);

        // web:8 completes and outlives its guard; the next deployment makes it known-good
        let done = DeploymentEvent {
            event_id: "ecs1".into(),
            service: ServiceKey::new("demo", "web"),
            kind: DeploymentEventKind::Completed,
            ecs_deployment_id: "ecs-svc/1".into(),
            at: at(3),
            reason: None,
        };
        apply_deployment_event(
            &mut state,
            &done,
            &DeploymentEventDecision::Completed {
                guard_until: at(33),
            },
        );
        let p2 = push("e2", 40, 'c');
        start_deployment(
            &mut state,
            &p2,
            &changes_for(&p2),
            "web:8",
            "web:9",
            None,
            at(40),
        );
        assert_eq!(state.known_good.as_deref(), Some("web:8"));
    }

    fn service_on(task_definition: &str, deployments: &[(&str, &str)]) -> ServiceView {
        ServiceView {
            key: ServiceKey::new("demo", "web"),
            arn: "arn:aws:ecs:eu-west-1:123456789012:service/demo/web".into(),
            task_definition: task_definition.into(),
            desired_count: 2,
            running_count: 2,
            tags: Default::default(),
            deployments: deployments
                .iter()
                .map(|(id, td)| EcsDeployment {
                    id: (*id).into(),
                    task_definition: (*td).into(),
                    status: "PRIMARY".into(),
                    rollout_state: None,
                })
                .collect(),
            controller: Default::default(),
            target_groups: Vec::new(),
            strategy: Default::default(),
            load_balanced: None,
            task_sets: Vec::new(),
            placement: Default::default(),
            early_success: None,
            service_revisions: Vec::new(),
        }
    }

    fn deployed_state(ecs_id: Option<&str>) -> ServiceState {
        let p = push("e1", 1, 'b');
        let mut state = ServiceState::default();
        start_deployment(
            &mut state,
            &p,
            &changes_for(&p),
            "web:7",
            "web:8",
            ecs_id.map(Into::into),
            at(1),
        );
        state
    }

    fn event(kind: DeploymentEventKind, id: &str, minute: u32) -> DeploymentEvent {
        DeploymentEvent {
            event_id: format!("ev-{id}-{minute}"),
            service: ServiceKey::new("demo", "web"),
            kind,
            ecs_deployment_id: id.into(),
            at: at(minute),
            reason: Some("ECS deployment circuit breaker: tasks failed to start.".into()),
        }
    }

    const GUARD: TimeDelta = TimeDelta::minutes(30);

    #[test]
    fn deployment_events_match_by_known_ecs_id() {
        let state = deployed_state(Some("ecs-svc/8"));
        let svc = service_on("web:8", &[]);
        let ok = event(DeploymentEventKind::Completed, "ecs-svc/8", 5);
        assert_eq!(
            decide_deployment_event(&ok, &state, &svc, GUARD),
            DeploymentEventDecision::Completed {
                guard_until: at(35)
            }
        );
        let other = event(DeploymentEventKind::Completed, "ecs-svc/other", 5);
        assert!(matches!(
            decide_deployment_event(&other, &state, &svc, GUARD),
            DeploymentEventDecision::NotOurs(_)
        ));
    }

    #[test]
    fn deployment_events_match_by_listed_deployment_then_by_revision_and_time() {
        let state = deployed_state(None);
        // ECS still lists the deployment: its task definition decides
        let listed = service_on("web:8", &[("ecs-svc/8", "web:8"), ("ecs-svc/x", "web:5")]);
        assert!(matches!(
            decide_deployment_event(
                &event(DeploymentEventKind::Completed, "ecs-svc/8", 5),
                &state,
                &listed,
                GUARD
            ),
            DeploymentEventDecision::Completed { .. }
        ));
        assert!(matches!(
            decide_deployment_event(
                &event(DeploymentEventKind::Completed, "ecs-svc/x", 5),
                &state,
                &listed,
                GUARD
            ),
            DeploymentEventDecision::NotOurs(_)
        ));
        // nothing listed: the service must run our revision and the event be newer
        let bare = service_on("web:8", &[]);
        assert!(matches!(
            decide_deployment_event(
                &event(DeploymentEventKind::Completed, "ecs-svc/8", 5),
                &state,
                &bare,
                GUARD
            ),
            DeploymentEventDecision::Completed { .. }
        ));
        assert!(matches!(
            decide_deployment_event(
                &event(DeploymentEventKind::Completed, "ecs-svc/8", 0),
                &state,
                &bare,
                GUARD
            ),
            DeploymentEventDecision::NotOurs(_)
        ));
        let elsewhere = service_on("web:5", &[]);
        assert!(matches!(
            decide_deployment_event(
                &event(DeploymentEventKind::Completed, "ecs-svc/8", 5),
                &state,
                &elsewhere,
                GUARD
            ),
            DeploymentEventDecision::NotOurs(_)
        ));
        // a failure may come after ECS already rolled the service back
        assert!(matches!(
            decide_deployment_event(
                &event(DeploymentEventKind::Failed, "ecs-svc/8", 5),
                &state,
                &service_on("web:7", &[]),
                GUARD
            ),
            DeploymentEventDecision::Failed { .. }
        ));
    }

    #[test]
    fn failure_quarantines_the_digest_and_repeats_are_duplicates() {
        let mut state = deployed_state(Some("ecs-svc/8"));
        let svc = service_on("web:7", &[]);
        let failed = event(DeploymentEventKind::Failed, "ecs-svc/8", 5);
        let decision = decide_deployment_event(&failed, &state, &svc, GUARD);
        assert!(
            matches!(&decision, DeploymentEventDecision::Failed { reason } if reason.contains("circuit breaker"))
        );
        apply_deployment_event(&mut state, &failed, &decision);
        assert_eq!(
            state.deployment.as_ref().unwrap().status,
            DeploymentStatus::Failed
        );
        assert!(state.is_quarantined(&digest('b')).is_some());
        assert_eq!(state.known_good.as_deref(), Some("web:7"));
        assert!(matches!(
            decide_deployment_event(&failed, &state, &svc, GUARD),
            DeploymentEventDecision::Duplicate(_)
        ));
    }

    #[test]
    fn no_deckhand_deployment_means_not_ours() {
        let svc = service_on("web:8", &[]);
        assert!(matches!(
            decide_deployment_event(
                &event(DeploymentEventKind::Completed, "x", 5),
                &ServiceState::default(),
                &svc,
                GUARD
            ),
            DeploymentEventDecision::NotOurs(_)
        ));
    }

    #[test]
    fn in_progress_records_the_ecs_id() {
        let mut state = deployed_state(None);
        let svc = service_on("web:8", &[]);
        let ev = event(DeploymentEventKind::InProgress, "ecs-svc/8", 2);
        let decision = decide_deployment_event(&ev, &state, &svc, GUARD);
        assert_eq!(decision, DeploymentEventDecision::InProgress);
        apply_deployment_event(&mut state, &ev, &decision);
        assert_eq!(
            state.deployment.unwrap().ecs_deployment_id.as_deref(),
            Some("ecs-svc/8")
        );
    }

    #[test]
    fn a_revision_registered_for_the_push_is_recovered_or_reused_never_registered_again() {
        let p = push("e1", 5, 'b');
        // The service runs a revision deckhand registered for this very push, cloned from
        // web:6: an earlier attempt moved it and stopped before recording.
        let mut running = web_td();
        running.registered_for = Some(crate::domain::fleet::RegisteredFor {
            event_id: "e1".into(),
            cloned_from: 6,
        });
        assert_eq!(
            decide_push(&p, &changes_for(&p), &ServiceState::default(), &running),
            PushDecision::Recover {
                from: "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:6".into()
            }
        );
        // Registered for another push: a normal deploy.
        running.registered_for.as_mut().unwrap().event_id = "e0".into();
        assert_eq!(
            decide_push(&p, &changes_for(&p), &ServiceState::default(), &running),
            PushDecision::Deploy
        );

        // Moving the service failed after the revision was registered: the retry of the same
        // push from the same base reuses it; another push, or a base changed since, does not.
        let base = web_td().arn;
        let mut state = ServiceState {
            registered: Some(crate::domain::state::Registered {
                event_id: "e1".into(),
                from: base.clone(),
                task_definition: "web:8".into(),
            }),
            ..Default::default()
        };
        assert_eq!(reusable_revision(&state, &p, &base), Some("web:8"));
        assert_eq!(reusable_revision(&state, &push("e2", 6, 'c'), &base), None);
        assert_eq!(reusable_revision(&state, &p, "web:9"), None);
        start_deployment(
            &mut state,
            &p,
            &changes_for(&p),
            &base,
            "web:8",
            None,
            at(6),
        );
        assert_eq!(state.registered, None, "a deployment clears it");
    }
}
