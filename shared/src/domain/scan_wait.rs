//! A push held by the scan gate until the scans of what it pushed decide: the pushed image's
//! own scan, or, for an image index, the scans of every image it lists (ECR scans those, never
//! the index).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

use super::artifact::ManifestKind;
use super::deploy::Push;
use super::image::{Digest, Repository};
use super::scan::{ScanVerdict, describe_counts};
use super::state::{ServiceState, WaitingPush};

impl WaitingPush {
    pub fn new(push: &Push, since: DateTime<Utc>) -> Self {
        Self {
            event_id: push.event_id.clone(),
            pushed_at: push.at,
            repository: push.repository.clone(),
            digest: push.digest.clone(),
            tag: push.tag.clone(),
            since,
            manifest: push.manifest,
            images: None,
            clean: BTreeMap::new(),
            promoted: push.promoted.as_deref().cloned(),
        }
    }

    /// The push it holds, to deploy exactly as the push would have.
    pub fn push(&self) -> Push {
        Push {
            event_id: self.event_id.clone(),
            at: self.pushed_at,
            repository: self.repository.clone(),
            digest: self.digest.clone(),
            tag: self.tag.clone(),
            manifest: self.manifest,
            promoted: self.promoted.clone().map(Box::new),
        }
    }

    /// Whether the manifest must be read before the scans can be asked for: an index (its
    /// images are scanned) or a push whose event did not say what it is.
    pub fn needs_manifest(&self) -> bool {
        self.manifest != ManifestKind::Image && self.images.is_none()
    }

    /// What reading the manifest told: an image, or an index listing these images.
    pub fn read(&mut self, images: Option<Vec<Digest>>) {
        match images {
            None => self.manifest = ManifestKind::Image,
            Some(images) => {
                self.manifest = ManifestKind::Index;
                self.images = Some(images);
            }
        }
    }

    /// The digests whose scans are still to be judged; `None` while the manifest is unread.
    pub fn unjudged(&self) -> Option<Vec<Digest>> {
        match (self.manifest, &self.images) {
            (ManifestKind::Image, _) => Some(vec![self.digest.clone()]),
            (_, Some(images)) => Some(
                images
                    .iter()
                    .filter(|d| !self.clean.contains_key(*d))
                    .cloned()
                    .collect(),
            ),
            (_, None) => None,
        }
    }

    /// Whether a scan of `digest` is one this push waits for.
    pub fn awaits(&self, digest: &Digest) -> bool {
        match (self.manifest, &self.images) {
            (ManifestKind::Image, _) => &self.digest == digest,
            (_, Some(images)) => images.contains(digest),
            // An index not read yet: only its own digest is known.
            (_, None) => &self.digest == digest,
        }
    }

    /// Takes the verdict of the scan of `digest` and concludes what it can: for an image its
    /// scan decides; for an index the first image with findings or without a usable scan
    /// decides, and only when every image is clean is the index clean. An undecided index
    /// remembers the images found clean.
    pub fn judge(&mut self, digest: &Digest, verdict: ScanVerdict) -> ScanVerdict {
        if self.manifest == ManifestKind::Image || (self.images.is_none() && *digest == self.digest)
        {
            return verdict;
        }
        let Some(images) = self.images.clone() else {
            return ScanVerdict::Pending;
        };
        if images.is_empty() {
            return ScanVerdict::Unscanned {
                reason: format!(
                    "the index {} lists no image that ECR scans; the digest is not deployed",
                    self.digest.short()
                ),
            };
        }
        if !images.contains(digest) {
            return ScanVerdict::Pending;
        }
        let of_index = format!(", an image of the index {}", self.digest.short());
        match verdict {
            ScanVerdict::Vulnerable { counts, reason } => ScanVerdict::Vulnerable {
                counts,
                reason: format!("{reason}{of_index}"),
            },
            ScanVerdict::Unscanned { reason } => ScanVerdict::Unscanned {
                reason: format!("{reason}{of_index}"),
            },
            ScanVerdict::Pending => ScanVerdict::Pending,
            ScanVerdict::Clean { counts } => {
                self.clean.insert(digest.clone(), counts);
                if images.iter().all(|d| self.clean.contains_key(d)) {
                    let mut total: BTreeMap<String, i64> = BTreeMap::new();
                    for counts in self.clean.values() {
                        for (severity, n) in counts {
                            *total.entry(severity.clone()).or_default() += n;
                        }
                    }
                    ScanVerdict::Clean { counts: total }
                } else {
                    ScanVerdict::Pending
                }
            }
        }
    }

    /// Where an index stands: how many of its images were scanned clean.
    pub fn progress(&self) -> String {
        match &self.images {
            Some(images) if self.manifest == ManifestKind::Index => format!(
                "{} of the {} images of the index {} scanned clean ({})",
                self.clean.len(),
                images.len(),
                self.digest.short(),
                describe_counts(&self.clean.values().fold(BTreeMap::new(), |mut all, c| {
                    for (k, n) in c {
                        *all.entry(k.clone()).or_default() += n;
                    }
                    all
                }))
            ),
            _ => format!("the scan of {} is still running", self.digest.short()),
        }
    }

    /// Waited longer than `wait`: time to ask ECR instead of waiting for the event.
    pub fn is_overdue(&self, now: DateTime<Utc>, wait: TimeDelta) -> bool {
        now - self.since >= wait
    }

    pub fn describe(&self) -> String {
        format!(
            "{}{} ({}), waiting since {}",
            self.repository.name,
            self.tag
                .as_deref()
                .map(|t| format!(":{t}"))
                .unwrap_or_default(),
            self.digest.short(),
            self.since.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }
}

/// What holding a push did.
#[derive(Clone, Debug, PartialEq)]
pub enum Hold {
    /// The push waits, in place of the older one of its repository that waited, if any.
    Held { replaced: Option<WaitingPush> },
    /// A newer push of the repository waits already: this one is not held.
    NewerWaiting(WaitingPush),
}

/// Holds `waiting` in the state until its scans decide. A newer push of the same repository
/// replaces an older waiting one, as a newer applied push wins over an older one.
pub fn hold_for_scan(state: &mut ServiceState, waiting: WaitingPush) -> Hold {
    let key = waiting.repository.to_string();
    if let Some(held) = state.waiting.get(&key)
        && held.pushed_at > waiting.pushed_at
    {
        return Hold::NewerWaiting(held.clone());
    }
    Hold::Held {
        replaced: state.waiting.insert(key, waiting),
    }
}

/// The push waiting in this state for a scan of `digest` in `repository`, if any.
pub fn waiting_for<'a>(
    state: &'a ServiceState,
    repository: &Repository,
    digest: &Digest,
) -> Option<&'a WaitingPush> {
    state
        .waiting
        .get(&repository.to_string())
        .filter(|w| w.awaits(digest))
}

/// The wait of this very push (matched by its digest, whatever scans it waits for).
pub fn wait_of<'a>(state: &'a ServiceState, push: &Push) -> Option<&'a WaitingPush> {
    state
        .waiting
        .get(&push.repository.to_string())
        .filter(|w| w.digest == push.digest)
}

/// Ends the wait of `repository`'s push.
pub fn end_wait(state: &mut ServiceState, repository: &Repository) -> Option<WaitingPush> {
    state.waiting.remove(&repository.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::scan::DEFAULT_SCAN_WAIT;

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn counts(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
        pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
    }

    fn web() -> Repository {
        Repository {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            name: "web".into(),
        }
    }

    fn push(id: &str, minute: u32, digest: Digest, manifest: ManifestKind) -> Push {
        Push {
            event_id: id.into(),
            at: format!("2026-11-23T10:{minute:02}:00Z")
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
            repository: web(),
            digest,
            tag: Some("main-1".into()),
            manifest,
            promoted: None,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-23T11:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn held(id: &str, minute: u32, d: Digest) -> WaitingPush {
        WaitingPush::new(&push(id, minute, d, ManifestKind::Image), now())
    }

    #[test]
    fn a_newer_push_replaces_the_waiting_one_and_an_older_one_is_not_held() {
        let mut state = ServiceState::default();
        assert_eq!(
            hold_for_scan(&mut state, held("a", 5, digest('a'))),
            Hold::Held { replaced: None }
        );
        match hold_for_scan(&mut state, held("b", 6, digest('c'))) {
            Hold::Held {
                replaced: Some(older),
            } => assert_eq!(older.event_id, "a"),
            other => panic!("{other:?}"),
        }
        match hold_for_scan(&mut state, held("c", 4, digest('a'))) {
            Hold::NewerWaiting(newer) => assert_eq!(newer.event_id, "b"),
            other => panic!("{other:?}"),
        }
        assert!(waiting_for(&state, &web(), &digest('a')).is_none());
        assert_eq!(
            waiting_for(&state, &web(), &digest('c')).map(|w| w.push().event_id),
            Some("b".into())
        );
    }

    #[test]
    fn a_wait_is_overdue_once_the_wait_time_has_passed() {
        let since: DateTime<Utc> = "2026-11-23T10:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let waiting = WaitingPush::new(&push("a", 0, digest('a'), ManifestKind::Image), since);
        assert!(!waiting.is_overdue(since + TimeDelta::minutes(29), DEFAULT_SCAN_WAIT));
        assert!(waiting.is_overdue(since + TimeDelta::minutes(30), DEFAULT_SCAN_WAIT));
    }

    fn index() -> WaitingPush {
        let mut w = WaitingPush::new(&push("i", 5, digest('f'), ManifestKind::Index), now());
        assert!(w.needs_manifest());
        assert_eq!(w.unjudged(), None);
        w.read(Some(vec![digest('1'), digest('2')]));
        w
    }

    #[test]
    fn an_index_is_clean_once_every_image_it_lists_is_clean() {
        let mut w = index();
        assert!(w.awaits(&digest('1')) && w.awaits(&digest('2')));
        assert!(!w.awaits(&digest('f')), "ECR never scans the index itself");
        let clean = |pairs: &[(&str, i64)]| ScanVerdict::Clean {
            counts: counts(pairs),
        };
        assert_eq!(
            w.judge(&digest('1'), clean(&[("LOW", 2)])),
            ScanVerdict::Pending
        );
        assert_eq!(w.unjudged(), Some(vec![digest('2')]));
        assert!(
            w.progress().starts_with("1 of the 2 images"),
            "{}",
            w.progress()
        );
        // A repeated scan of the same image changes nothing.
        assert_eq!(
            w.judge(&digest('1'), clean(&[("LOW", 2)])),
            ScanVerdict::Pending
        );
        assert_eq!(
            w.judge(&digest('2'), clean(&[("LOW", 1), ("MEDIUM", 1)])),
            ScanVerdict::Clean {
                counts: counts(&[("LOW", 3), ("MEDIUM", 1)])
            }
        );
    }

    #[test]
    fn one_image_with_findings_or_without_a_scan_decides_the_index() {
        let mut w = index();
        let verdict = w.judge(
            &digest('2'),
            ScanVerdict::Vulnerable {
                counts: counts(&[("HIGH", 1)]),
                reason: "the scan of 222222222222 found 1 HIGH".into(),
            },
        );
        match verdict {
            ScanVerdict::Vulnerable { reason, .. } => {
                assert!(
                    reason.ends_with("an image of the index ffffffffffff"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        let mut w = index();
        assert!(matches!(
            w.judge(
                &digest('1'),
                ScanVerdict::Unscanned {
                    reason: "ECR has no scan".into()
                }
            ),
            ScanVerdict::Unscanned { .. }
        ));
        let mut empty = WaitingPush::new(&push("e", 5, digest('e'), ManifestKind::Index), now());
        empty.read(Some(Vec::new()));
        assert!(matches!(
            empty.judge(&digest('e'), ScanVerdict::Pending),
            ScanVerdict::Unscanned { .. }
        ));
    }

    #[test]
    fn a_push_of_unknown_kind_is_an_image_or_an_index_once_read() {
        let mut w = WaitingPush::new(&push("u", 5, digest('c'), ManifestKind::Unknown), now());
        assert!(w.needs_manifest());
        w.read(None);
        assert_eq!(w.manifest, ManifestKind::Image);
        assert_eq!(w.unjudged(), Some(vec![digest('c')]));
        assert!(!w.needs_manifest());
    }
}
