//! Scan events that decide the pushes the scan gate holds: `ECR Image Scan` (basic scanning)
//! and `Inspector2 Scan` (enhanced scanning, sent by Amazon Inspector, not by ECR).

use std::collections::BTreeMap;

use aws_lambda_events::event::ecr_scan::EcrScanEventFindingSeverityCounts;
use serde::Deserialize;
use serde_json::Value;

use super::deploy_event::DeployEvent;
use super::ecr::ecr_image;
use super::envelope::{Envelope, EventError, envelope, parse_at};
use crate::domain::image::Repository;
use crate::domain::scan::{FindingSeverity, ScanEvent, ScanResult};
use crate::domain::service::Arn;

pub const ECR_IMAGE_SCAN: &str = "ECR Image Scan";
pub const INSPECTOR2_SCAN: &str = "Inspector2 Scan";

/// `detail` of `ECR Image Scan`. Counts and tags may be absent from a failed scan's event.
#[derive(Deserialize)]
struct EcrImageScan {
    #[serde(rename = "scan-status")]
    scan_status: String,
    #[serde(rename = "repository-name")]
    repository_name: String,
    #[serde(rename = "image-digest")]
    image_digest: String,
    #[serde(rename = "finding-severity-counts", default)]
    counts: EcrScanEventFindingSeverityCounts,
}

pub(super) fn parse_ecr_scan(value: &Value) -> Result<DeployEvent, EventError> {
    let envelope = envelope(value, ECR_IMAGE_SCAN, "aws.ecr")?;
    let detail: EcrImageScan = parse_at(&envelope.detail, "detail")?;
    let c = detail.counts;
    let counts = [
        ("CRITICAL", c.critical),
        ("HIGH", c.high),
        ("MEDIUM", c.medium),
        ("LOW", c.low),
        ("INFORMATIONAL", c.informational),
        ("UNDEFINED", c.undefined),
    ]
    .into_iter()
    .filter_map(|(name, n)| Some((name.to_owned(), n?)))
    .collect();
    let result = match detail.scan_status.as_str() {
        "COMPLETE" => ScanResult::Complete { counts },
        "IN_PROGRESS" | "PENDING" => ScanResult::InProgress,
        status => ScanResult::Unusable {
            status: status.to_owned(),
            description: String::new(),
        },
    };
    let repository = (
        envelope.account.clone(),
        envelope.region.clone(),
        detail.repository_name,
    );
    scan_event(envelope, repository, &detail.image_digest, result)
}

/// `detail` of `Inspector2 Scan`. The same detail-type comes for EC2 instances and Lambda
/// functions, without an image digest.
#[derive(Deserialize)]
struct InspectorScan {
    #[serde(rename = "scan-status")]
    scan_status: String,
    /// The repository's ARN, not its name as in ECR's events.
    #[serde(rename = "repository-name", default)]
    repository_arn: Option<String>,
    #[serde(rename = "image-digest", default)]
    image_digest: Option<String>,
    #[serde(rename = "finding-severity-counts", default)]
    counts: BTreeMap<String, i64>,
}

pub(super) fn parse_inspector_scan(value: &Value) -> Result<DeployEvent, EventError> {
    let envelope = envelope(value, INSPECTOR2_SCAN, "aws.inspector2")?;
    let detail: InspectorScan = parse_at(&envelope.detail, "detail")?;
    let (Some(arn), Some(image_digest)) = (detail.repository_arn, detail.image_digest) else {
        return Ok(DeployEvent::NotForDeckhand(
            "an Amazon Inspector scan of something other than an ECR image".into(),
        ));
    };
    let repository = repository_from_arn(&arn).ok_or_else(|| {
        EventError::new(
            "detail.repository-name",
            format!("`{arn}` is not an ECR repository ARN"),
        )
    })?;
    // Inspector counts CRITICAL, HIGH and MEDIUM, leaving out a severity without findings,
    // and a TOTAL that is not a severity; LOW is never counted.
    let counts: BTreeMap<String, i64> = detail
        .counts
        .into_iter()
        .filter(|(severity, _)| severity != "TOTAL")
        .collect();
    let result = match detail.scan_status.as_str() {
        "INITIAL_SCAN_COMPLETE" => ScanResult::Counted {
            counts,
            uncounted: vec![FindingSeverity::Low],
        },
        // Not documented: the check against ECR when the wait runs out decides.
        _ => ScanResult::InProgress,
    };
    let repository = (
        Some(repository.account),
        Some(repository.region),
        repository.name,
    );
    scan_event(envelope, repository, &image_digest, result)
}

/// `arn:PARTITION:ecr:REGION:ACCOUNT:repository/NAME` (NAME may hold slashes).
fn repository_from_arn(arn: &str) -> Option<Repository> {
    let arn = Arn::parse(arn).filter(|a| a.service == "ecr")?;
    let name = arn.resource.strip_prefix("repository/")?;
    (!arn.region.is_empty() && !arn.account.is_empty() && !name.is_empty()).then(|| Repository {
        account: arn.account.to_owned(),
        region: arn.region.to_owned(),
        name: name.to_owned(),
    })
}

/// The scan event of an image: its repository and digest checked, its result judged later.
fn scan_event(
    envelope: Envelope,
    repository: (Option<String>, Option<String>, String),
    image_digest: &str,
    result: ScanResult,
) -> Result<DeployEvent, EventError> {
    let (account, region, name) = repository;
    let (repository, digest) = ecr_image(account, region, name, image_digest)?;
    Ok(DeployEvent::Scan(ScanEvent {
        event_id: envelope.id,
        at: envelope.time,
        repository,
        digest,
        result,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::parse_deploy_event;
    use crate::fixtures;

    #[test]
    fn an_inspector_scan_of_an_image_counts_what_it_counts() {
        let DeployEvent::Scan(scan) =
            parse_deploy_event(&fixtures::aws("inspector2-scan-ecr-image")).unwrap()
        else {
            panic!()
        };
        assert_eq!(scan.repository.name, "web");
        assert_eq!(scan.repository.account, "123456789012");
        assert_eq!(scan.repository.region, "us-east-1");
        assert_eq!(
            scan.digest.as_str(),
            "sha256:7fdcc95c288da93aab630fc3791d8d8edf8edb18ef54a0443a6ebdb908e55617"
        );
        let ScanResult::Counted { counts, uncounted } = scan.result else {
            panic!("{:?}", scan.result)
        };
        assert_eq!(counts.get("CRITICAL"), Some(&1));
        assert_eq!(counts.get("TOTAL"), None);
        assert_eq!(uncounted, [FindingSeverity::Low]);
    }

    #[test]
    fn an_inspector_scan_of_an_instance_is_not_for_deckhand() {
        assert!(matches!(
            parse_deploy_event(&fixtures::aws("inspector2-scan-ec2-instance")),
            Ok(DeployEvent::NotForDeckhand(_))
        ));
    }

    #[test]
    fn a_scan_of_an_image_of_an_index_names_that_image() {
        let DeployEvent::Scan(scan) =
            parse_deploy_event(&fixtures::aws("ecr-scan-image-manifest")).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            scan.digest.as_str(),
            "sha256:302279f2c764a17e0704321e3e6efb40b05956ec800867ebdcaa80a21296122f"
        );
        assert!(matches!(scan.result, ScanResult::Complete { .. }));
    }

    #[test]
    fn bad_inspector_events_name_the_field() {
        let mut bad_arn = fixtures::aws("inspector2-scan-ecr-image");
        bad_arn["detail"]["repository-name"] = json!("web");
        let mut bad_digest = fixtures::aws("inspector2-scan-ecr-image");
        bad_digest["detail"]["image-digest"] = json!("latest");
        let mut bad_counts = fixtures::aws("inspector2-scan-ecr-image");
        bad_counts["detail"]["finding-severity-counts"] = json!({"HIGH": "many"});
        let mut wrong_source = fixtures::aws("inspector2-scan-ecr-image");
        wrong_source["source"] = json!("aws.ecr");
        for (event, field) in [
            (bad_arn, "detail.repository-name"),
            (bad_digest, "detail.image-digest"),
            (bad_counts, "detail.finding-severity-counts.HIGH"),
            (wrong_source, "source"),
        ] {
            match parse_deploy_event(&event) {
                Err(e) => assert_eq!(e.field, field, "{e}"),
                Ok(parsed) => panic!("{event}: {parsed:?}"),
            }
        }
        assert!(
            repository_from_arn("arn:aws:ecr:us-east-1:1:repository/team/web")
                .is_some_and(|r| r.name == "team/web")
        );
        assert!(repository_from_arn("arn:aws:s3:::bucket").is_none());
    }
}
