//! The reconcile keeps in ECR the images each deployed service may run again (`domain::keep`):
//! what it runs (and so wakes on, or serves as a pair's live side) and what a rollback goes back
//! to carry the service's `deckhand-keep-` tag; images no such revision runs any more lose it.
//! A service whose revisions did not change since the last pass costs no call.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, stream};
use tracing::{Instrument, info, info_span, warn};

use super::SchedulerFunction;
use crate::app::locking::{acquire, owner_token};
use crate::domain::fleet::ServiceView;
use crate::domain::keep::{KeptImage, images_of, keep_tag, needed_revisions, plan_keep};
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::state::ServiceState;
use crate::history::HistoryRecord;
use crate::ports::PortErrorKind;
use crate::report::{Action, ServiceReport};

/// Whether the revisions the service needs kept differ from those kept.
fn due(state: &ServiceState, running: &str) -> bool {
    let needed = needed_revisions(state, running);
    let kept: BTreeSet<&str> = state.kept.keys().map(String::as_str).collect();
    needed != kept
}

impl SchedulerFunction {
    /// Tags and releases images for the services whose revisions changed. Only failures are
    /// reported; what changed is in each service's history.
    pub(super) async fn keep_images(
        &self,
        services: &[ServiceView],
        states: &BTreeMap<ServiceKey, ServiceState>,
        cause: &str,
    ) -> Vec<ServiceReport> {
        let due: Vec<&ServiceView> = services
            .iter()
            .filter(|s| {
                let state = states.get(&s.key);
                state.is_some_and(|state| due(state, &s.task_definition))
            })
            .collect();
        stream::iter(due)
            .map(|service| {
                let span = info_span!("keep", service = %service.key);
                self.keep_service(service, cause).instrument(span)
            })
            .buffer_unordered(self.config.concurrency)
            .filter_map(|r| async { r })
            .collect()
            .await
    }

    async fn keep_service(&self, service: &ServiceView, cause: &str) -> Option<ServiceReport> {
        let key = &service.key;
        let owner = owner_token(&format!("{cause}#keep"));
        let locked = match acquire(&*self.ports.store, &*self.ports.clock, key, &owner).await {
            Ok(locked) => locked,
            Err(e) => return Some(self.failed(key, cause, e).await),
        };
        let mut state = locked.state.clone();
        if !due(&state, &service.task_definition) {
            if let Err(e) = self.ports.store.release(key, &locked.owner).await {
                warn!(error = %e, "could not give back the lock; it expires with its lease");
            }
            return None;
        }
        let revisions: Vec<String> = needed_revisions(&state, &service.task_definition)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut needed = BTreeMap::new();
        for revision in revisions {
            if let Some(images) = state.kept.get(&revision) {
                needed.insert(revision, images.clone());
                continue;
            }
            match self.ports.ecs.describe_task_definition(&revision).await {
                Ok(td) => {
                    let mut images = images_of(&td.containers, state.pinned.get(&revision));
                    // Another account's registry (a central one) keeps its images by its own
                    // lifecycle policy: deckhand tags only its own account's.
                    if let Some(home) = self.config.home() {
                        images.retain(|i| {
                            KeptImage::of(i).is_none_or(|k| k.repository.account == home.account)
                        });
                    }
                    needed.insert(revision, images);
                }
                Err(e) => {
                    return Some(self.failed_under_lock(key, &locked, &state, cause, e).await);
                }
            }
        }
        let plan = plan_keep(&state.kept, needed);
        let mut words = Vec::new();
        for image in plan.add.iter().filter_map(|i| KeptImage::of(i)) {
            let tag = keep_tag(key, &image.digest);
            match self
                .ports
                .ecr
                .keep(&image.repository, &image.digest, &tag)
                .await
            {
                Ok(()) => words.push(format!(
                    "kept {}@{} ({tag})",
                    image.repository.name,
                    image.digest.short()
                )),
                Err(e) if e.kind == PortErrorKind::NotFound => words.push(format!(
                    "could not keep {}@{}: ECR no longer has it",
                    image.repository.name,
                    image.digest.short()
                )),
                Err(e) => {
                    return Some(self.failed_under_lock(key, &locked, &state, cause, e).await);
                }
            }
        }
        for image in plan.remove.iter().filter_map(|i| KeptImage::of(i)) {
            let tag = keep_tag(key, &image.digest);
            match self
                .ports
                .ecr
                .release(&image.repository, &image.digest, &tag)
                .await
            {
                Ok(true) => words.push(format!("released {}@{}", image.repository.name, image.digest.short())),
                Ok(false) => words.push(format!(
                    "left {tag} on {}@{}: it is the image's only tag, and ECR would delete the image with it",
                    image.repository.name,
                    image.digest.short()
                )),
                Err(e) => {
                    return Some(self.failed_under_lock(key, &locked, &state, cause, e).await);
                }
            }
        }
        let revisions: Vec<&str> = plan.kept.keys().map(|r| revision_name(r)).collect();
        // Nothing placed or taken away (no image by digest in ECR): no history to write.
        let records: Vec<HistoryRecord> = (!words.is_empty())
            .then(|| {
                let reason = format!(
                    "{} in ECR: the images of {}, which the service may run again",
                    words.join("; "),
                    revisions.join(", ")
                );
                info!(%reason, "images kept");
                HistoryRecord::new(key, self.ports.clock.now(), Action::Recorded, reason, cause)
            })
            .into_iter()
            .collect();
        state.kept = plan.kept;
        if let Err(e) = self
            .ports
            .store
            .commit(key, &locked, &state, &records, None)
            .await
        {
            return Some(self.failed(key, cause, e).await);
        }
        None
    }
}
