//! An event is a claim: what a push event says is checked against what ECR holds before it
//! changes anything. Whoever may put an event in front of the function (a rule of the account,
//! the failure queue, `lambda:InvokeFunction`) could otherwise deploy any digest of a tracked
//! repository, or stamp a push in the future so that every real push after it looks older.

use chrono::{DateTime, SubsecRound, Utc};

use super::deploy::Push;

/// What ECR holds for a digest (`DescribeImages`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryImage {
    /// The tags on the digest now.
    pub tags: Vec<String>,
    /// When the digest was first pushed. A re-tag of an older image keeps it, so it never
    /// bounds a push's time from below.
    pub pushed_at: Option<DateTime<Utc>>,
    /// Whether it can be pulled (ECR's `imageStatus`).
    pub status: ImageStatus,
}

/// ECR's `imageStatus`: an image in the archive storage class cannot be pulled until it is
/// restored, which takes ECR a while (ACTIVATING).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImageStatus {
    #[default]
    Active,
    Archived,
    Activating,
}

impl ImageStatus {
    /// ECR's word; an absent one (older registries) is ACTIVE.
    pub fn parse(text: &str) -> Self {
        match text {
            "ARCHIVED" => Self::Archived,
            "ACTIVATING" => Self::Activating,
            _ => Self::Active,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Archived => "ARCHIVED",
            Self::Activating => "ACTIVATING",
        }
    }
}

/// What a push event's claim comes to once ECR answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushClaim {
    /// ECR holds the digest with the tag on it: the push, its time capped at `now`.
    Confirmed(Push),
    /// ECR has no such digest in the repository: the event changes nothing.
    Unknown { reason: String },
    /// The tag has moved to another digest since: a later push superseded this one.
    Superseded { reason: String },
}

/// Checks a push against what ECR answered at `now`. A push is ordered by the event's time
/// capped at `now` (to the second), so a forged time in the future orders nothing ahead of later real pushes.
pub fn check_push(push: &Push, image: Option<&RegistryImage>, now: DateTime<Utc>) -> PushClaim {
    let Some(image) = image else {
        return PushClaim::Unknown {
            reason: format!(
                "ECR has no image {}@{}: the event claims a push ECR does not confirm",
                push.repository.name,
                push.digest.short()
            ),
        };
    };
    if let Some(tag) = &push.tag
        && !image.tags.iter().any(|t| t == tag)
    {
        return PushClaim::Superseded {
            reason: format!(
                "tag {tag} is no longer on {} in ECR: a later push superseded this one",
                push.digest.short()
            ),
        };
    }
    let mut confirmed = push.clone();
    // To the second, as events are stamped: a real push in the same second is not older.
    confirmed.at = confirmed.at.min(now.trunc_subsecs(0));
    PushClaim::Confirmed(confirmed)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::artifact::ManifestKind;
    use crate::domain::image::Repository;

    fn push(tag: Option<&str>, at: DateTime<Utc>) -> Push {
        Push {
            event_id: "e1".into(),
            at,
            repository: Repository {
                account: "123456789012".into(),
                region: "eu-west-1".into(),
                name: "web".into(),
            },
            digest: format!("sha256:{}", "b".repeat(64)).parse().unwrap(),
            tag: tag.map(str::to_owned),
            manifest: ManifestKind::Image,
            promoted: None,
        }
    }

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 5, hour, 0, 0).unwrap()
    }

    fn image(tags: &[&str], pushed: DateTime<Utc>) -> RegistryImage {
        RegistryImage {
            status: ImageStatus::Active,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            pushed_at: Some(pushed),
        }
    }

    #[test]
    fn a_digest_ecr_lacks_is_not_a_push() {
        let claim = check_push(&push(Some("main-1"), at(9)), None, at(10));
        let PushClaim::Unknown { reason } = claim else {
            panic!("{claim:?}")
        };
        assert!(
            reason.starts_with("ECR has no image web@bbbbbbbbbbbb:"),
            "{reason}"
        );
    }

    #[test]
    fn a_tag_that_moved_is_a_superseded_push() {
        let claim = check_push(
            &push(Some("main-1"), at(9)),
            Some(&image(&["old"], at(8))),
            at(10),
        );
        assert!(
            matches!(&claim, PushClaim::Superseded { reason } if reason.starts_with("tag main-1 is no longer on")),
            "{claim:?}"
        );
    }

    #[test]
    fn a_time_in_the_future_is_capped_at_the_confirmation() {
        let year_2099 = Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap();
        let claim = check_push(
            &push(Some("main-1"), year_2099),
            Some(&image(&["main-1"], at(8))),
            at(10),
        );
        assert_eq!(claim, PushClaim::Confirmed(push(Some("main-1"), at(10))));
    }

    #[test]
    fn a_retag_of_an_older_image_keeps_its_own_time() {
        // ECR's imagePushedAt is the digest's first push, long before this re-tag.
        let claim = check_push(
            &push(Some("release"), at(9)),
            Some(&image(&["main-1", "release"], at(1))),
            at(10),
        );
        assert_eq!(claim, PushClaim::Confirmed(push(Some("release"), at(9))));
    }

    #[test]
    fn an_untagged_push_needs_only_the_digest() {
        let claim = check_push(&push(None, at(9)), Some(&image(&[], at(9))), at(10));
        assert_eq!(claim, PushClaim::Confirmed(push(None, at(9))));
    }
}
