//! A rollback target that names tags (`REPO:latest`) is pinned to what ran. ECS resolves a tag
//! again each time it deploys, so redeploying such a revision runs whatever the tag names now:
//! after a bad push of `latest`, the bad image. deckhand records the digests ECS resolved for a
//! revision while it ran, and a rollback to it registers a clone with those digests.

use std::collections::{BTreeMap, BTreeSet};

use super::fleet::{Container, ImageChange};
use super::image::{Digest, ImageRef};
use super::service::revision_name;
use super::state::{PinSource, PinnedRevision, ServiceState};

impl PinSource {
    pub fn describe(self) -> &'static str {
        match self {
            Self::ServiceRevision => "ECS's service revision",
            Self::Registry => "ECR, when deckhand first saw the revision running",
            Self::Unknown => "nowhere: neither ECS nor ECR said",
        }
    }
}

/// The containers whose image names a tag and no digest.
pub fn tagged(containers: &[Container]) -> impl Iterator<Item = &Container> {
    containers
        .iter()
        .filter(|c| ImageRef::parse(&c.image).is_some_and(|i| i.digest.is_none()))
}

/// What the digests resolved for the tagged containers make of them: each container's image
/// pinned, for those a digest was found for.
pub fn pins_of(
    containers: &[Container],
    digests: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    tagged(containers)
        .filter_map(|c| {
            let digest: Digest = digests.get(&c.name)?.parse().ok()?;
            Some((c.name.clone(), ImageRef::parse(&c.image)?.pinned(&digest)))
        })
        .collect()
}

/// How a rollback reaches a target revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPins {
    /// Every image that differs from the bad revision is pinned by digest: deploy it as it is.
    AsIs,
    /// Register a clone of the target with these images pinned, and deploy that.
    Clone(Vec<ImageChange>),
    /// A tag whose digest deckhand never learned: deploying it would run whatever it names now.
    Unknown(String),
}

/// The target's images as a rollback must deploy them. Only what differs from the bad revision
/// matters: a sidecar on the same tag in both is not what is being rolled back, and the bad
/// revision runs it as the tag resolves too.
pub fn pin_target(
    target: &str,
    target_containers: &[Container],
    bad_containers: &[Container],
    pins: Option<&PinnedRevision>,
) -> TargetPins {
    let mut changes = Vec::new();
    for c in tagged(target_containers) {
        let pinned = pins.and_then(|p| p.images.get(&c.name));
        match pinned {
            Some(to) => changes.push(ImageChange {
                container: c.name.clone(),
                from: c.image.clone(),
                to: to.clone(),
            }),
            None if bad_containers.contains(c) => {}
            None => {
                return TargetPins::Unknown(format!(
                    "the rollback target {} names image {} for container {} and deckhand never learned the digest it ran (ECS kept no service revision of it); redeploying it would run whatever the tag names now",
                    revision_name(target),
                    c.image,
                    c.name
                ));
            }
        }
    }
    if changes.is_empty() {
        TargetPins::AsIs
    } else {
        TargetPins::Clone(changes)
    }
}

/// The digests a revision runs: those it names, and those pinned for its tags.
pub fn digests_of(containers: &[Container], pins: Option<&PinnedRevision>) -> Vec<String> {
    let named = containers
        .iter()
        .filter_map(|c| Some(ImageRef::parse(&c.image)?.digest?.to_owned()));
    let pinned = pins
        .into_iter()
        .flat_map(|p| p.images.values())
        .filter_map(|image| Some(ImageRef::parse(image)?.digest?.to_owned()));
    let mut seen = BTreeSet::new();
    named
        .chain(pinned)
        .filter(|d| seen.insert(d.clone()))
        .collect()
}

impl ServiceState {
    /// The revisions a rollback may go to, whose digests are worth keeping: the known-good
    /// one, what deckhand's deployment started from, and the deployment it follows.
    pub fn rollback_targets(&self) -> BTreeSet<&str> {
        let mut targets: BTreeSet<&str> = self.known_good.as_deref().into_iter().collect();
        if let Some(d) = &self.deployment {
            targets.insert(&d.from);
        }
        if let Some(s) = &self.seen {
            targets.insert(&s.task_definition);
        }
        targets
    }

    /// Whether the revision is a rollback target whose tagged images still need their digests.
    pub fn needs_pins(&self, revision: &str, containers: &[Container]) -> bool {
        self.rollback_targets().contains(revision)
            && self
                .pinned
                .get(revision)
                .is_none_or(|p| p.by == PinSource::Unknown)
            && tagged(containers).next().is_some()
    }

    /// Keeps the pins of the revisions a rollback may still go to, and drops the others.
    pub fn prune_pins(&mut self) {
        let targets: BTreeSet<String> = self
            .rollback_targets()
            .into_iter()
            .map(str::to_owned)
            .collect();
        self.pinned.retain(|revision, _| targets.contains(revision));
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    const GOOD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const BAD: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn container(name: &str, image: &str) -> Container {
        Container {
            name: name.into(),
            image: image.into(),
        }
    }

    fn pins(images: &[(&str, &str)]) -> PinnedRevision {
        PinnedRevision {
            images: images
                .iter()
                .map(|(c, i)| (c.to_string(), i.to_string()))
                .collect(),
            by: PinSource::ServiceRevision,
            at: DateTime::<Utc>::MIN_UTC,
        }
    }

    #[test]
    fn a_target_on_latest_is_cloned_with_the_digest_it_ran() {
        let target = [
            container("web", &format!("{HOST}/web:latest")),
            container("log", "fluent/fluent-bit:3"),
        ];
        let bad = [
            container("web", &format!("{HOST}/web@{BAD}")),
            container("log", "fluent/fluent-bit:3"),
        ];
        let resolved = BTreeMap::from([("web".to_string(), GOOD.to_string())]);
        let pinned = pins_of(&target, &resolved);
        assert_eq!(pinned["web"], format!("{HOST}/web@{GOOD}"));
        let p = PinnedRevision {
            images: pinned,
            ..pins(&[])
        };
        match pin_target("arn:x:task-definition/web:3", &target, &bad, Some(&p)) {
            TargetPins::Clone(changes) => {
                assert_eq!(
                    changes.len(),
                    1,
                    "the sidecar on the same tag stays as it is"
                );
                assert_eq!(changes[0].to, format!("{HOST}/web@{GOOD}"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(digests_of(&target, Some(&p)), vec![GOOD.to_string()]);
    }

    #[test]
    fn a_target_whose_tag_was_never_resolved_is_not_deployed_blind() {
        let target = [container("web", &format!("{HOST}/web:latest"))];
        let bad = [container("web", &format!("{HOST}/web@{BAD}"))];
        match pin_target("arn:x:task-definition/web:3", &target, &bad, None) {
            TargetPins::Unknown(why) => {
                assert!(why.contains("web:3"), "{why}");
                assert!(why.contains("never learned the digest"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        // A target pinned by digest needs nothing.
        let pinned = [container("web", &format!("{HOST}/web@{GOOD}"))];
        assert_eq!(
            pin_target("arn:x:task-definition/web:2", &pinned, &bad, None),
            TargetPins::AsIs
        );
    }

    #[test]
    fn only_rollback_targets_keep_their_pins() {
        let mut state = ServiceState {
            known_good: Some("web:3".into()),
            ..Default::default()
        };
        let tagged_web = [container("web", &format!("{HOST}/web:latest"))];
        assert!(state.needs_pins("web:3", &tagged_web));
        assert!(!state.needs_pins("web:4", &tagged_web), "not a target");
        state.pinned.insert("web:3".into(), pins(&[("web", "x")]));
        state.pinned.insert("web:1".into(), pins(&[("web", "y")]));
        assert!(!state.needs_pins("web:3", &tagged_web), "already pinned");
        state.prune_pins();
        assert_eq!(state.pinned.keys().collect::<Vec<_>>(), vec!["web:3"]);
    }
}
