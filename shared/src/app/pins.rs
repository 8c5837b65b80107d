//! Learning the digests a revision that names tags runs with, while it runs: ECS's service
//! revision first, else what the tag names in ECR at first sight (`domain::pin`); and whether
//! the images a revision runs can be pulled now (`domain::restore`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::Ports;
use crate::domain::fleet::{Container, ServiceView};
use crate::domain::image::{ImageRef, Repository};
use crate::domain::pin::{pins_of, tagged};
use crate::domain::state::{PinSource, PinnedRevision};
use crate::ports::PortError;

/// The digests the service's running revision runs with, for its containers that name tags.
/// A tag in `moved` (a repository and tag just pushed) is never read from ECR: it names the
/// new image now, not the one that ran. `None` when nothing could be learned.
pub(crate) async fn learn_pins(
    ports: &Ports,
    service: &ServiceView,
    containers: &[Container],
    moved: Option<(&Repository, &str)>,
    now: DateTime<Utc>,
) -> Result<Option<PinnedRevision>, PortError> {
    if let Some(resolved) = ports.ecs.resolved_images(service).await? {
        let images = pins_of(containers, &resolved);
        if !images.is_empty() {
            return Ok(Some(PinnedRevision {
                images,
                by: PinSource::ServiceRevision,
                at: now,
            }));
        }
    }
    let mut digests = BTreeMap::new();
    for c in tagged(containers) {
        let Some(image) = ImageRef::parse(&c.image) else {
            continue;
        };
        let (Some(repository), Some(tag)) = (image.repository(), image.tag) else {
            continue;
        };
        if moved.is_some_and(|(r, t)| *r == repository && t == tag) {
            continue;
        }
        if let Some(digest) = ports.ecr.digest_of(&repository, tag).await? {
            digests.insert(c.name.clone(), digest.to_string());
        }
    }
    let images = pins_of(containers, &digests);
    Ok((!images.is_empty()).then_some(PinnedRevision {
        images,
        by: PinSource::Registry,
        at: now,
    }))
}

/// Records the pins of the running revision in `state` when it is about to be left (`leaving`)
/// or is a rollback target that has none yet. A failure is logged and changes nothing: the
/// service still moves, and a rollback to a revision without pins is skipped with why.
pub(crate) async fn pin_running(
    ports: &Ports,
    service: &ServiceView,
    containers: &[Container],
    state: &mut crate::domain::state::ServiceState,
    leaving: bool,
    moved: Option<(&Repository, &str)>,
) {
    let running = service.task_definition.as_str();
    let learned = state
        .pinned
        .get(running)
        .is_some_and(|p| p.by != PinSource::Unknown);
    let wanted = if leaving {
        !learned && tagged(containers).next().is_some()
    } else {
        state.needs_pins(running, containers)
    };
    if !wanted {
        return;
    }
    match learn_pins(ports, service, containers, moved, ports.clock.now()).await {
        Ok(Some(pinned)) => {
            info!(revision = running, by = ?pinned.by, "recorded the digests the revision runs with");
            state.pinned.insert(running.to_owned(), pinned);
        }
        Ok(None) => {
            warn!(
                revision = running,
                "the revision names tags and neither ECS nor ECR says which digests it runs"
            );
            unknown(state, running, ports.clock.now());
        }
        Err(e) => {
            warn!(error = %e, revision = running, "could not learn the digests the revision runs with");
            unknown(state, running, ports.clock.now());
        }
    }
}

/// On record that the revision names tags whose digests are unknown: a rollback to it reads
/// it, and finds nothing to pin it with, rather than redeploying it blind.
fn unknown(state: &mut crate::domain::state::ServiceState, running: &str, now: DateTime<Utc>) {
    state
        .pinned
        .entry(running.to_owned())
        .or_insert_with(|| PinnedRevision {
            images: BTreeMap::new(),
            by: PinSource::Unknown,
            at: now,
        });
}

/// Whether these ECR images can be pulled now: ECR's status of each (`DescribeImages`).
pub(crate) async fn pullable_now(
    ports: &Ports,
    images: Vec<crate::domain::keep::KeptImage>,
) -> Result<crate::domain::restore::Pullable, PortError> {
    let statuses = futures::future::try_join_all(images.into_iter().map(|image| async move {
        let found = ports.ecr.image(&image.repository, &image.digest).await?;
        Ok::<_, PortError>((image, found.map(|f| f.status)))
    }))
    .await?;
    Ok(crate::domain::restore::pullable(statuses))
}
