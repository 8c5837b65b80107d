//! The scan gate (`DECKHAND_REQUIRE_SCAN`): a push that would deploy waits for the ECR scan of
//! its digest; findings at or above the gate's severity quarantine the digest, a clean scan lets
//! the push deploy, and a scan that failed or never ran leaves it undeployed.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

use super::image::{Digest, Repository};

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
    /// Complete, with counts of some severities only: Amazon Inspector's `Inspector2 Scan`
    /// event counts CRITICAL, HIGH and MEDIUM (leaving out a severity with no finding) and
    /// never LOW. A gate at an uncounted severity needs ECR's full findings.
    Counted {
        counts: BTreeMap<String, i64>,
        uncounted: Vec<FindingSeverity>,
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
        ScanResult::Counted { counts, uncounted } => {
            match judge_scan(
                &ScanResult::Complete {
                    counts: counts.clone(),
                },
                gate,
                digest,
            ) {
                ScanVerdict::Clean { .. } if uncounted.iter().any(|s| *s >= gate) => {
                    ScanVerdict::Pending
                }
                verdict => verdict,
            }
        }
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
    fn partial_counts_decide_only_what_they_count() {
        let inspector = ScanResult::Counted {
            counts: counts(&[("MEDIUM", 2)]),
            uncounted: vec![FindingSeverity::Low],
        };
        assert!(matches!(
            judge_scan(&inspector, FindingSeverity::High, &digest()),
            ScanVerdict::Clean { .. }
        ));
        assert!(matches!(
            judge_scan(&inspector, FindingSeverity::Medium, &digest()),
            ScanVerdict::Vulnerable { .. }
        ));
        let clean = ScanResult::Counted {
            counts: BTreeMap::new(),
            uncounted: vec![FindingSeverity::Low],
        };
        assert_eq!(
            judge_scan(&clean, FindingSeverity::Low, &digest()),
            ScanVerdict::Pending,
            "LOW findings are not counted: ECR's findings decide"
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
}
