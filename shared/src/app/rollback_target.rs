//! What a rollback deploys: the target revision as it is when its images are pinned by
//! digest, else a clone of it with the digests it ran (`domain::pin`); never onto a quarantined
//! digest, and never a tag whose digest is unknown.

use super::RollbackFunction;
use crate::domain::keep::images_of;
use crate::domain::pin::{TargetPins, digests_of, pin_target, tagged};
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::state::ServiceState;
use crate::ports::PortError;

/// The target made ready for a rollback.
pub(super) enum Prepared {
    /// Deploy `deploy` (the target, or its pinned clone).
    Ready {
        deploy: String,
        /// A quarantined digest the target runs: not rolled back onto.
        quarantined: Option<String>,
        /// The ECR images by digest it runs, when known without another read.
        images: Option<Vec<String>>,
    },
    /// Its tags' digests are unknown: not deployed.
    Unknown(String),
}

impl Prepared {
    /// Why the target was pinned, for the rollback's reason.
    pub(super) fn words(&self, to: &str) -> Option<String> {
        match self {
            Self::Ready { deploy, .. } if deploy != to => Some(format!(
                "{} names image tags, which ECS would resolve again to whatever they name now: rolled back to {}, a clone of it with the digests it ran",
                revision_name(to),
                revision_name(deploy)
            )),
            _ => None,
        }
    }
}

impl RollbackFunction {
    /// Reads the target only when it may matter: it names tags (pins on record), it is not the
    /// revision deckhand's deployment started from (whose tags were looked at then), or some
    /// digest is quarantined. In dry run nothing is registered.
    pub(super) async fn prepare_target(
        &self,
        key: &ServiceKey,
        (from, to): (&str, &str),
        state: &ServiceState,
        event_id: &str,
        dry_run: bool,
    ) -> Result<Prepared, PortError> {
        let pins = state.pinned.get(to);
        let recorded = state.deployment.as_ref().filter(|d| d.from == to);
        let quarantine = !state.quarantine.is_empty() || state.quarantine_archived;
        let ready = |deploy: &str, images: Option<Vec<String>>| Prepared::Ready {
            deploy: deploy.to_owned(),
            quarantined: None,
            images,
        };
        // The revision deckhand's deployment left named no tag without pins: it deploys as it
        // is, and what it runs was recorded then.
        if let Some(d) = recorded.filter(|_| pins.is_none()) {
            if !d.from_images.is_empty() {
                let images = d.from_images.clone();
                if quarantine
                    && let Some(digest) = self.first_quarantined(key, &images, state).await?
                {
                    return Ok(Prepared::Ready {
                        deploy: to.to_owned(),
                        quarantined: Some(digest),
                        images: None,
                    });
                }
                return Ok(ready(to, Some(images)));
            }
            if !quarantine {
                return Ok(ready(to, None));
            }
        }
        let target = self.ports.ecs.describe_task_definition(to).await?;
        let images = images_of(&target.containers, pins);
        if quarantine {
            let digests = digests_of(&target.containers, pins);
            if let Some(digest) = self.first_quarantined(key, &digests, state).await? {
                return Ok(Prepared::Ready {
                    deploy: to.to_owned(),
                    quarantined: Some(digest),
                    images: None,
                });
            }
        }
        if tagged(&target.containers).next().is_none() {
            return Ok(ready(to, Some(images)));
        }
        let bad = self.ports.ecs.describe_task_definition(from).await?;
        match pin_target(to, &target.containers, &bad.containers, pins) {
            TargetPins::AsIs => Ok(ready(to, Some(images))),
            TargetPins::Unknown(why) => Ok(Prepared::Unknown(why)),
            TargetPins::Clone(_) if dry_run => Ok(ready(to, Some(images))),
            TargetPins::Clone(changes) => {
                let ecs = &self.ports.ecs;
                let deploy = ecs.register_revision(&target, &changes, event_id).await?;
                Ok(ready(&deploy, Some(images)))
            }
        }
    }

    /// The first of these digests (or images by digest) the service's quarantine holds.
    async fn first_quarantined(
        &self,
        key: &ServiceKey,
        digests: &[String],
        state: &ServiceState,
    ) -> Result<Option<String>, PortError> {
        for item in digests {
            let digest = item.rsplit_once('@').map_or(item.as_str(), |(_, d)| d);
            if self.is_quarantined(key, digest, state).await? {
                return Ok(Some(digest.to_owned()));
            }
        }
        Ok(None)
    }

    /// Whether the service's quarantine holds the digest, in its state or archived.
    async fn is_quarantined(
        &self,
        key: &ServiceKey,
        digest: &str,
        state: &ServiceState,
    ) -> Result<bool, PortError> {
        if state.quarantine.contains_key(digest) {
            return Ok(true);
        }
        Ok(state.quarantine_archived
            && self
                .ports
                .store
                .archived_quarantine(key, digest)
                .await?
                .is_some())
    }
}
