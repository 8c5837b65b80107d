//! Promotion between environments: a service tagged `deckhand:promote-from` takes only the
//! digests its upstream service proved (a whole guard window without an alarm), as the
//! upstream stack's `Deckhand Known-Good` announcement says, and no push of its own. What an
//! announcement claims is checked here before anything is read: who put it (EventBridge sets
//! `account`; nobody can forge it across accounts), and that it speaks of its own service.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::artifact::ManifestKind;
use super::deploy::Push;
use super::fleet::Container;
use super::image::{Digest, ImageRef, Repository};
use super::service::{ServiceKey, revision_name};
use super::settings::{TagProblem, Tags};
use super::state::Proven;

pub const TAG_PROMOTE_FROM: &str = "deckhand:promote-from";
/// The announcement: its EventBridge source and detail-type.
pub const KNOWN_GOOD_SOURCE: &str = "deckhand";
pub const KNOWN_GOOD_DETAIL_TYPE: &str = "Deckhand Known-Good";
/// How a promoted service's refusal of a push begins.
pub const TAKES_ONLY: &str = "it takes only digests that";

/// The service a promoted service follows: `CLUSTER/SERVICE` of the stack's own account, or
/// `ACCOUNT/CLUSTER/SERVICE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub account: Option<String>,
    pub service: ServiceKey,
}

pub(crate) fn is_account(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

impl Upstream {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let parts: Vec<&str> = value.split('/').collect();
        let (account, cluster, service) = match parts.as_slice() {
            [cluster, service] => (None, *cluster, *service),
            [account, cluster, service] if is_account(account) => {
                (Some((*account).to_owned()), *cluster, *service)
            }
            [account, _, _] => {
                return Err(format!(
                    "`{account}` is not an AWS account ID (12 digits); expected CLUSTER/SERVICE or ACCOUNT/CLUSTER/SERVICE"
                ));
            }
            _ => return Err("expected CLUSTER/SERVICE or ACCOUNT/CLUSTER/SERVICE".into()),
        };
        if cluster.is_empty() || service.is_empty() {
            return Err("expected CLUSTER/SERVICE or ACCOUNT/CLUSTER/SERVICE".into());
        }
        Ok(Self {
            account,
            service: ServiceKey::new(cluster, service),
        })
    }

    /// Whether `service` of `account` is this upstream, for a stack in `home`.
    pub fn is(&self, account: &str, service: &ServiceKey, home: &str) -> bool {
        self.account.as_deref().unwrap_or(home) == account && &self.service == service
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.account {
            Some(account) => write!(f, "{account}/{}", self.service),
            None => write!(f, "{}", self.service),
        }
    }
}

/// The service's `deckhand:promote-from`, parsed.
pub fn promote_from_of(tags: &Tags) -> Result<Option<Upstream>, TagProblem> {
    let Some(value) = tags.get(TAG_PROMOTE_FROM) else {
        return Ok(None);
    };
    Upstream::parse(value)
        .map(Some)
        .map_err(|message| TagProblem {
            tag: TAG_PROMOTE_FROM.into(),
            value: value.clone(),
            message,
        })
}

/// What a promoted push carries: who proved the digest, with which revision, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    pub account: String,
    pub service: ServiceKey,
    /// The upstream's revision (`FAMILY:N`) that proved the digest.
    pub revision: String,
    pub proven_at: DateTime<Utc>,
}

impl Promotion {
    /// `ACCOUNT/CLUSTER/SERVICE`.
    pub fn upstream(&self) -> String {
        format!("{}/{}", self.account, self.service)
    }
}

/// One container's image in an announcement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnouncedImage {
    pub container: String,
    pub repository: Repository,
    pub digest: Digest,
}

/// A `Deckhand Known-Good` event, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownGood {
    pub event_id: String,
    /// The account that put the event (EventBridge's `account`).
    pub account: String,
    /// When EventBridge received it.
    pub time: DateTime<Utc>,
    /// The upstream service: its ARN's account and its name.
    pub service_account: String,
    pub service: ServiceKey,
    pub revision: String,
    pub images: Vec<AnnouncedImage>,
    /// The deployment that proved it, when the announcement names it.
    pub deployment: Option<String>,
    /// When the revision became known-good.
    pub at: DateTime<Utc>,
}

/// Why an announcement counts for nothing here, if it does not: it must come from the stack's
/// own account or one it takes promotions from, and speak of a service of that very account.
pub fn check_announcement(
    known_good: &KnownGood,
    home: &str,
    trusted: &[String],
) -> Option<String> {
    let from = known_good.account.as_str();
    if from != home && !trusted.iter().any(|a| a == from) {
        return Some(format!(
            "a known-good announcement from account {from}, which the stack does not take promotions from (PromoteFromAccounts)"
        ));
    }
    if known_good.service_account != from {
        return Some(format!(
            "a known-good announcement put by account {from} about a service of account {}: a stack announces only its own services",
            known_good.service_account
        ));
    }
    None
}

/// The pushes an announcement stands for: one per image, by digest, with no tag.
pub fn promoted_pushes(known_good: &KnownGood) -> Vec<Push> {
    let promotion = Promotion {
        account: known_good.account.clone(),
        service: known_good.service.clone(),
        revision: known_good.revision.clone(),
        proven_at: known_good.at,
    };
    let mut pushes: Vec<Push> = Vec::new();
    for image in &known_good.images {
        let seen = pushes
            .iter()
            .any(|p| p.repository == image.repository && p.digest == image.digest);
        if seen {
            continue;
        }
        pushes.push(Push {
            event_id: format!("{}:{}", known_good.event_id, image.repository.name),
            at: known_good.time,
            repository: image.repository.clone(),
            digest: image.digest.clone(),
            tag: None,
            manifest: ManifestKind::Unknown,
            promoted: Some(Box::new(promotion.clone())),
        });
    }
    pushes
}

/// What a push is to a service, given its `deckhand:promote-from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromotionVerdict {
    /// Neither promoted nor taking promotions: the service's deploy policy decides.
    Policy,
    /// A promotion from its upstream: it deploys, for this reason.
    Deploy(String),
    /// Not for this service, for this reason.
    Ignore(String),
}

pub fn promotion_verdict(
    upstream: Option<&Upstream>,
    promoted: Option<&Promotion>,
    home: &str,
) -> PromotionVerdict {
    match (upstream, promoted) {
        (None, None) => PromotionVerdict::Policy,
        (Some(upstream), None) => PromotionVerdict::Ignore(format!(
            "{TAKES_ONLY} {upstream} proved (deckhand:promote-from): a push does not deploy it"
        )),
        (None, Some(p)) => PromotionVerdict::Ignore(format!(
            "{} proved this digest, but the service takes no promotions (no deckhand:promote-from)",
            p.upstream()
        )),
        (Some(upstream), Some(p)) if !upstream.is(&p.account, &p.service, home) => {
            PromotionVerdict::Ignore(format!(
                "{} proved this digest, but the service takes promotions from {upstream}",
                p.upstream()
            ))
        }
        (Some(_), Some(p)) => PromotionVerdict::Deploy(format!(
            "promoted: {} proved it with {} (known-good since {})",
            p.upstream(),
            p.revision,
            p.proven_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
    }
}

/// What a stack announces when a revision of one of its services becomes known-good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    pub service_arn: String,
    /// `FAMILY:N`.
    pub revision: String,
    /// Each container's ECR image by digest, `(container, REPOSITORY@sha256:...)`.
    pub images: Vec<(String, String)>,
    pub deployment: Option<String>,
    pub at: DateTime<Utc>,
}

impl Announcement {
    /// The event's `detail`, as `events::known_good` reads it.
    pub fn detail(&self) -> serde_json::Value {
        let images: Vec<serde_json::Value> = self
            .images
            .iter()
            .map(|(container, image)| serde_json::json!({"container": container, "image": image}))
            .collect();
        let mut detail = serde_json::json!({
            "service": self.service_arn,
            "revision": self.revision,
            "images": images,
            "at": self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        if let Some(deployment) = &self.deployment {
            detail["deployment"] = serde_json::json!(deployment);
        }
        detail
    }
}

/// The announcement of a proven revision from its containers: each ECR image by digest, the
/// revision's own or the one ECS resolved its tag to (`pinned`, container to image). A
/// container whose digest is not known is left out, since downstream deploys only digests;
/// `Err` says why there is nothing to announce.
pub fn announcement(
    service_arn: &str,
    proven: &Proven,
    containers: &[Container],
    pinned: Option<&BTreeMap<String, String>>,
) -> Result<Announcement, String> {
    let by_digest = |image: &str| {
        ImageRef::parse(image)
            .filter(|r| r.repository().is_some())
            .and_then(|r| r.digest.and_then(|d| d.parse::<Digest>().ok()))
            .is_some()
    };
    let images: Vec<(String, String)> = containers
        .iter()
        .filter_map(|c| {
            let image = Some(c.image.as_str())
                .filter(|i| by_digest(i))
                .or_else(|| {
                    pinned?
                        .get(&c.name)
                        .map(String::as_str)
                        .filter(|i| by_digest(i))
                })?;
            Some((c.name.clone(), image.to_owned()))
        })
        .collect();
    if images.is_empty() {
        return Err(format!(
            "no container of {} runs an ECR image whose digest deckhand knows: nothing to promote",
            revision_name(&proven.revision)
        ));
    }
    Ok(Announcement {
        service_arn: service_arn.to_owned(),
        revision: revision_name(&proven.revision).to_owned(),
        images,
        deployment: proven.deployment.clone(),
        at: proven.at,
    })
}

#[cfg(test)]
#[path = "promotion_tests.rs"]
mod tests;
