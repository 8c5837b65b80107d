//! The scan gate (`DECKHAND_REQUIRE_SCAN`): a push that would deploy waits for the ECR scan of
//! its digest; findings at or above the gate's severity quarantine the digest, a clean scan lets
//! the push deploy, and a scan that failed or never ran leaves it undeployed.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::deploy::Push;
use super::image::{Digest, Repository};
use super::state::ServiceState;

/// How long a push waits for its scan event before deckhand asks ECR for the findings.
pub const DEFAULT_SCAN_WAIT: TimeDelta = TimeDelta::minutes(30);

/// The severities of ECR findings that can hold a push back, least first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingSeverity {
    Low,
    Medium,
    High,
    Critical,
}

impl FindingSeverity {
    pub const ALL: [FindingSeverity; 4] = [Self::Critical, Self::High, Self::Medium, Self::Low];

    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "CRITICAL" => Some(Self::Critical),
            "HIGH" => Some(Self::High),
            "MEDIUM" => Some(Self::Medium),
            "LOW" => Some(Self::Low),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "CRITICAL",
            Self::High => "HIGH",
            Self::Medium => "MEDIUM",
            Self::Low => "LOW",
        }
    }
}

impl fmt::Display for FindingSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a scan of one digest found, as ECR reports it (severity name -> count; ECR also
/// reports INFORMATIONAL and UNDEFINED, which never hold a push back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanResult {
    Complete {
        counts: BTreeMap<String, i64>,
    },
    /// Still running: keep waiting.
    InProgress,
    /// Failed, unsupported image, findings unavailable, eligibility expired.
    Unusable {
        status: String,
        description: String,
    },
    /// ECR has no scan of this digest.
    NotRun,
}

/// An `ECR Image Scan` event.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanEvent {
    pub event_id: String,
    pub at: DateTime<Utc>,
    pub repository: Repository,
    pub digest: Digest,
    pub result: ScanResult,
}

/// What the gate concludes from a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanVerdict {
    /// No finding at or above the gate's severity: deploy as the push would have.
    Clean { counts: BTreeMap<String, i64> },
    /// Findings at or above the gate's severity: quarantine the digest.
    Vulnerable {
        counts: BTreeMap<String, i64>,
        reason: String,
    },
    /// No usable scan: the digest stays undeployed and the wait ends.
    Unscanned { reason: String },
    /// The scan is not finished: keep waiting.
    Pending,
}

/// Judges a scan against the gate's severity.
pub fn judge_scan(result: &ScanResult, gate: FindingSeverity, digest: &Digest) -> ScanVerdict {
    match result {
        ScanResult::Complete { counts } => {
            let blocking: Vec<String> = FindingSeverity::ALL
                .iter()
                .filter(|s| **s >= gate)
                .filter_map(|s| {
                    let n = count_of(counts, *s);
                    (n > 0).then(|| format!("{n} {s}"))
                })
                .collect();
            if blocking.is_empty() {
                ScanVerdict::Clean {
                    counts: counts.clone(),
                }
            } else {
                ScanVerdict::Vulnerable {
                    counts: counts.clone(),
                    reason: format!(
                        "the scan of {} found {} (the gate holds back {gate} and above)",
                        digest.short(),
                        blocking.join(", ")
                    ),
                }
            }
        }
        ScanResult::InProgress => ScanVerdict::Pending,
        ScanResult::Unusable {
            status,
            description,
        } => {
            let detail = if description.trim().is_empty() {
                String::new()
            } else {
                format!(" ({})", description.trim())
            };
            ScanVerdict::Unscanned {
                reason: format!(
                    "the scan of {} ended {status}{detail}; the digest is not deployed",
                    digest.short()
                ),
            }
        }
        ScanResult::NotRun => ScanVerdict::Unscanned {
            reason: format!(
                "ECR has no scan of {}; the digest is not deployed (is scan on push on for the repository?)",
                digest.short()
            ),
        },
    }
}

fn count_of(counts: &BTreeMap<String, i64>, severity: FindingSeverity) -> i64 {
    counts
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(severity.as_str()))
        .map(|(_, n)| *n)
        .sum()
}

/// The severity counts as one short text, most severe first: `2 CRITICAL, 1 HIGH`.
pub fn describe_counts(counts: &BTreeMap<String, i64>) -> String {
    let order = [
        "CRITICAL",
        "HIGH",
        "MEDIUM",
        "LOW",
        "INFORMATIONAL",
        "UNDEFINED",
    ];
    let mut parts: Vec<String> = order
        .iter()
        .filter_map(|name| {
            let n = counts
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, n)| *n)
                .sum::<i64>();
            (n > 0).then(|| format!("{n} {name}"))
        })
        .collect();
    if parts.is_empty() {
        parts.push("no findings".into());
    }
    parts.join(", ")
}

/// A push that would deploy, held until its digest's scan decides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitingPush {
    pub event_id: String,
    /// When ECR accepted the push.
    pub pushed_at: DateTime<Utc>,
    pub repository: Repository,
    pub digest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// When deckhand started waiting.
    pub since: DateTime<Utc>,
}

impl WaitingPush {
    pub fn new(push: &Push, since: DateTime<Utc>) -> Self {
        Self {
            event_id: push.event_id.clone(),
            pushed_at: push.at,
            repository: push.repository.clone(),
            digest: push.digest.clone(),
            tag: push.tag.clone(),
            since,
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

/// Holds `push` in the state until its scan decides. A newer push of the same repository
/// replaces an older waiting one, as a newer applied push wins over an older one.
pub fn hold_for_scan(state: &mut ServiceState, push: &Push, now: DateTime<Utc>) -> Hold {
    let key = push.repository.to_string();
    if let Some(waiting) = state.waiting.get(&key)
        && waiting.pushed_at > push.at
    {
        return Hold::NewerWaiting(waiting.clone());
    }
    Hold::Held {
        replaced: state.waiting.insert(key, WaitingPush::new(push, now)),
    }
}

/// The push waiting in this state for `digest` of `repository`, if any.
pub fn waiting_for<'a>(
    state: &'a ServiceState,
    repository: &Repository,
    digest: &Digest,
) -> Option<&'a WaitingPush> {
    state
        .waiting
        .get(&repository.to_string())
        .filter(|w| &w.digest == digest)
}

/// Ends the wait of `repository`'s push.
pub fn end_wait(state: &mut ServiceState, repository: &Repository) -> Option<WaitingPush> {
    state.waiting.remove(&repository.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        format!("sha256:{}", "ab".repeat(32))
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

    fn push(id: &str, minute: u32, digest: Digest) -> Push {
        Push {
            event_id: id.into(),
            at: format!("2026-11-23T10:{minute:02}:00Z")
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
            repository: web(),
            digest,
            tag: Some("main-1".into()),
        }
    }

    #[test]
    fn findings_at_or_above_the_gate_hold_the_digest_back() {
        let found = ScanResult::Complete {
            counts: counts(&[("HIGH", 1), ("LOW", 4)]),
        };
        match judge_scan(&found, FindingSeverity::High, &digest()) {
            ScanVerdict::Vulnerable { reason, .. } => {
                assert!(reason.contains("1 HIGH"), "{reason}");
                assert!(!reason.contains("LOW"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            judge_scan(&found, FindingSeverity::Critical, &digest()),
            ScanVerdict::Clean { .. }
        ));
        assert!(matches!(
            judge_scan(&found, FindingSeverity::Low, &digest()),
            ScanVerdict::Vulnerable { .. }
        ));
    }

    #[test]
    fn informational_and_undefined_findings_never_hold_a_push_back() {
        let found = ScanResult::Complete {
            counts: counts(&[("INFORMATIONAL", 12), ("UNDEFINED", 3)]),
        };
        assert!(matches!(
            judge_scan(&found, FindingSeverity::Low, &digest()),
            ScanVerdict::Clean { .. }
        ));
    }

    #[test]
    fn a_failed_or_missing_scan_leaves_the_digest_undeployed_and_a_running_one_waits() {
        let failed = ScanResult::Unusable {
            status: "FAILED".into(),
            description: "UnsupportedImageError".into(),
        };
        match judge_scan(&failed, FindingSeverity::High, &digest()) {
            ScanVerdict::Unscanned { reason } => {
                assert!(
                    reason.contains("FAILED (UnsupportedImageError)"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            judge_scan(&ScanResult::NotRun, FindingSeverity::High, &digest()),
            ScanVerdict::Unscanned { .. }
        ));
        assert_eq!(
            judge_scan(&ScanResult::InProgress, FindingSeverity::High, &digest()),
            ScanVerdict::Pending
        );
    }

    #[test]
    fn counts_are_described_most_severe_first() {
        assert_eq!(
            describe_counts(&counts(&[("LOW", 2), ("CRITICAL", 1), ("HIGH", 0)])),
            "1 CRITICAL, 2 LOW"
        );
        assert_eq!(describe_counts(&BTreeMap::new()), "no findings");
    }

    #[test]
    fn a_newer_push_replaces_the_waiting_one_and_an_older_one_is_not_held() {
        let now = "2026-11-23T11:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let other: Digest = format!("sha256:{}", "cd".repeat(32))
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut state = ServiceState::default();
        assert_eq!(
            hold_for_scan(&mut state, &push("a", 5, digest()), now),
            Hold::Held { replaced: None }
        );
        match hold_for_scan(&mut state, &push("b", 6, other.clone()), now) {
            Hold::Held {
                replaced: Some(older),
            } => assert_eq!(older.event_id, "a"),
            other => panic!("{other:?}"),
        }
        match hold_for_scan(&mut state, &push("c", 4, digest()), now) {
            Hold::NewerWaiting(newer) => assert_eq!(newer.event_id, "b"),
            other => panic!("{other:?}"),
        }
        let repository = web();
        assert!(waiting_for(&state, &repository, &digest()).is_none());
        assert_eq!(
            waiting_for(&state, &repository, &other).map(|w| w.push().event_id),
            Some("b".into())
        );
    }

    #[test]
    fn a_wait_is_overdue_once_the_wait_time_has_passed() {
        let since: DateTime<Utc> = "2026-11-23T10:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let waiting = WaitingPush::new(&push("a", 0, digest()), since);
        assert!(!waiting.is_overdue(since + TimeDelta::minutes(29), DEFAULT_SCAN_WAIT));
        assert!(waiting.is_overdue(since + TimeDelta::minutes(30), DEFAULT_SCAN_WAIT));
    }
}
