//! Images deckhand may need stay in ECR: each digest a service may run again (what it runs, what
//! it wakes on, what a rollback goes back to) carries an ECR tag beginning `deckhand-keep-`, so
//! that a lifecycle rule of the highest priority on that prefix keeps ECR from expiring or
//! archiving it. The tag is removed when no revision of the service needs the digest any more.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest as _, Sha256};

use super::fleet::Container;
use super::image::{Digest, ImageRef, Repository};
use super::service::ServiceKey;
use super::state::PinnedRevision;
use super::state::ServiceState;

/// What every keep tag begins with: the pattern of the lifecycle rule that protects them.
pub const KEEP_PREFIX: &str = "deckhand-keep-";

/// The keep tag of a digest for one service: the digest's first 12 hex digits and a hash of the
/// service, so that two services keeping one digest each hold a tag of their own, and a tag
/// never moves (an immutable repository accepts a new tag, never a moved one).
pub fn keep_tag(service: &ServiceKey, digest: &Digest) -> String {
    let hash = Sha256::digest(service.to_string().as_bytes());
    let short: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{KEEP_PREFIX}{}-{short}", digest.short())
}

/// One ECR image a service needs kept: its repository and digest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeptImage {
    pub repository: Repository,
    pub digest: Digest,
}

impl KeptImage {
    /// The ECR image a reference pinned by digest names; `None` outside ECR or without a digest.
    /// The image by digest on the repository's standard ECR host: what `of` reads back.
    pub fn reference(&self) -> String {
        format!(
            "{}.dkr.ecr.{}.amazonaws.com/{}@{}",
            self.repository.account, self.repository.region, self.repository.name, self.digest
        )
    }

    pub fn of(image: &str) -> Option<Self> {
        let image = ImageRef::parse(image)?;
        Some(Self {
            repository: image.repository()?,
            digest: image.digest?.parse().ok()?,
        })
    }
}

/// The ECR images by digest a revision runs: those it names by digest, and the digests pinned
/// for its tags (`domain::pin`). A tag whose digest is unknown keeps nothing.
pub fn images_of(containers: &[Container], pins: Option<&PinnedRevision>) -> Vec<String> {
    let mut images: BTreeSet<String> = containers
        .iter()
        .filter(|c| KeptImage::of(&c.image).is_some())
        .map(|c| c.image.clone())
        .collect();
    images.extend(
        pins.into_iter()
            .flat_map(|p| p.images.values())
            .filter(|i| KeptImage::of(i).is_some())
            .cloned(),
    );
    images.into_iter().collect()
}

/// The revisions whose images the service needs kept: what it runs (and so wakes on, or serves
/// as a pair's live side) and every revision a rollback may go to.
pub fn needed_revisions<'a>(state: &'a ServiceState, running: &'a str) -> BTreeSet<&'a str> {
    let mut revisions = state.rollback_targets();
    revisions.insert(running);
    revisions
}

/// What changes in ECR: tags to add, tags to remove, and the record that follows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeepPlan {
    pub add: BTreeSet<String>,
    pub remove: BTreeSet<String>,
    pub kept: BTreeMap<String, Vec<String>>,
}

impl KeepPlan {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// From what is kept (revision to images) to what is needed: an image is released only when no
/// needed revision runs it any more.
pub fn plan_keep(
    kept: &BTreeMap<String, Vec<String>>,
    needed: BTreeMap<String, Vec<String>>,
) -> KeepPlan {
    let before: BTreeSet<&String> = kept.values().flatten().collect();
    let after: BTreeSet<&String> = needed.values().flatten().collect();
    KeepPlan {
        add: after.difference(&before).map(|s| (*s).clone()).collect(),
        remove: before.difference(&after).map(|s| (*s).clone()).collect(),
        kept: needed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

    fn image(c: char) -> String {
        format!("{HOST}/web@sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn a_kept_image_reads_back_from_its_reference() {
        let kept = KeptImage::of(&image('a')).unwrap();
        assert_eq!(KeptImage::of(&kept.reference()), Some(kept.clone()));
        assert_eq!(kept.reference(), image('a'));
    }

    #[test]
    fn a_tag_per_service_and_digest_that_fits_ecr() {
        let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let web = keep_tag(&ServiceKey::new("prod", "web"), &digest);
        let api = keep_tag(&ServiceKey::new("prod", "api"), &digest);
        assert!(web.starts_with("deckhand-keep-aaaaaaaaaaaa-"), "{web}");
        assert_ne!(web, api);
        assert_eq!(web, keep_tag(&ServiceKey::new("prod", "web"), &digest));
        assert!(web.len() <= 128);
        assert!(
            web.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        );
    }

    #[test]
    fn an_image_is_released_only_when_no_revision_needs_it() {
        let kept = BTreeMap::from([
            ("web:1".to_string(), vec![image('a')]),
            ("web:2".to_string(), vec![image('b')]),
        ]);
        // web:2 became known-good, web:3 runs the same image as web:1.
        let needed = BTreeMap::from([
            ("web:2".to_string(), vec![image('b')]),
            ("web:3".to_string(), vec![image('a')]),
        ]);
        let plan = plan_keep(&kept, needed.clone());
        assert!(plan.is_empty(), "{plan:?}");
        let later = BTreeMap::from([("web:4".to_string(), vec![image('c')])]);
        let plan = plan_keep(&needed, later);
        assert_eq!(plan.add, BTreeSet::from([image('c')]));
        assert_eq!(plan.remove, BTreeSet::from([image('a'), image('b')]));
    }

    #[test]
    fn only_ecr_images_by_digest_are_kept() {
        let containers = [
            Container {
                name: "web".into(),
                image: image('a'),
            },
            Container {
                name: "log".into(),
                image: "fluent/fluent-bit@sha256:".to_string() + &"f".repeat(64),
            },
            Container {
                name: "side".into(),
                image: format!("{HOST}/side:latest"),
            },
        ];
        let pins = PinnedRevision {
            images: BTreeMap::from([(
                "side".to_string(),
                format!("{HOST}/side@sha256:{}", "d".repeat(64)),
            )]),
            by: super::super::state::PinSource::ServiceRevision,
            at: chrono::DateTime::<chrono::Utc>::MIN_UTC,
        };
        assert_eq!(
            images_of(&containers, Some(&pins)),
            vec![format!("{HOST}/side@sha256:{}", "d".repeat(64)), image('a'),]
        );
    }
}
