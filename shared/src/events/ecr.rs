//! `ECR Image Action` (source `aws.ecr`): a push, checked and classified.

use serde::Deserialize;
use serde_json::Value;

use super::deploy_event::DeployEvent;
use super::envelope::{EventError, envelope, parse_at, required_text};
use crate::domain::artifact::classify_push;
use crate::domain::deploy::Push;
use crate::domain::image::{Digest, Repository};

pub const ECR_IMAGE_ACTION: &str = "ECR Image Action";

/// `detail` of `ECR Image Action`; aws_lambda_events has no type for it.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct EcrImageAction {
    action_type: String,
    result: String,
    repository_name: String,
    image_digest: String,
    #[serde(default)]
    image_tag: Option<String>,
    #[serde(default)]
    artifact_media_type: Option<String>,
    #[serde(default)]
    manifest_media_type: Option<String>,
}

/// The repository (from the envelope's account and region and the detail's name) and the
/// digest of an ECR event, checked.
pub(super) fn ecr_image(
    account: Option<String>,
    region: Option<String>,
    repository_name: String,
    image_digest: &str,
) -> Result<(Repository, Digest), EventError> {
    if repository_name.trim().is_empty() {
        return Err(EventError::new("detail.repository-name", "empty"));
    }
    let digest = image_digest
        .parse()
        .map_err(|e: crate::domain::image::DigestError| {
            EventError::new("detail.image-digest", e.to_string())
        })?;
    let repository = Repository {
        account: required_text(account, "account")?,
        region: required_text(region, "region")?,
        name: repository_name,
    };
    Ok((repository, digest))
}

pub(super) fn parse_push(value: &Value) -> Result<DeployEvent, EventError> {
    let envelope = envelope(value, ECR_IMAGE_ACTION, "aws.ecr")?;
    let detail: EcrImageAction = parse_at(&envelope.detail, "detail")?;
    if detail.action_type != "PUSH" || detail.result != "SUCCESS" {
        return Ok(DeployEvent::NotForDeckhand(format!(
            "ECR {} with result {} is not a successful push",
            detail.action_type, detail.result
        )));
    }
    let (repository, digest) = ecr_image(
        envelope.account,
        envelope.region,
        detail.repository_name,
        &detail.image_digest,
    )?;
    let tag = detail.image_tag.filter(|t| !t.is_empty());
    // Signatures, attestations and other artifacts share the image's repository; none is
    // something ECS can run, whatever a service's policy says.
    let manifest = match classify_push(
        tag.as_deref(),
        detail.artifact_media_type.as_deref(),
        detail.manifest_media_type.as_deref(),
    ) {
        Ok(manifest) => manifest,
        Err(why) => {
            return Ok(DeployEvent::NotForDeckhand(format!(
                "{why}: nothing deploys it"
            )));
        }
    };
    Ok(DeployEvent::Push(Push {
        event_id: envelope.id,
        at: envelope.time,
        repository,
        digest,
        tag,
        manifest,
        promoted: None,
    }))
}
