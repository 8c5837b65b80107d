//! `Deckhand Known-Good` (source `deckhand`): an upstream stack announces a revision that proved
//! itself. Parsed strictly; whether it counts is the domain's question (`domain::promotion`).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::deploy_event::DeployEvent;
use super::envelope::{EventError, envelope, parse_at, required_text};
use crate::domain::image::ImageRef;
use crate::domain::promotion::{
    AnnouncedImage, KNOWN_GOOD_DETAIL_TYPE, KNOWN_GOOD_SOURCE, KnownGood,
};
use crate::domain::service::{Arn, ServiceKey};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    service: String,
    revision: String,
    images: Vec<Image>,
    at: DateTime<Utc>,
    #[serde(default)]
    deployment: Option<String>,
}

#[derive(Deserialize)]
struct Image {
    container: String,
    image: String,
}

/// The image of `images[i]`: an ECR image pinned by digest, nothing else.
fn announced_image(i: usize, image: Image) -> Result<AnnouncedImage, EventError> {
    let field = format!("detail.images[{i}].image");
    let reference = ImageRef::parse(&image.image)
        .ok_or_else(|| EventError::new(&field, "not an image reference"))?;
    let repository = reference
        .repository()
        .ok_or_else(|| EventError::new(&field, "not an image in ECR"))?;
    let digest = reference
        .digest
        .ok_or_else(|| EventError::new(&field, "not pinned by digest (REPOSITORY@sha256:...)"))?
        .parse()
        .map_err(|e: crate::domain::image::DigestError| EventError::new(&field, e.to_string()))?;
    if image.container.trim().is_empty() {
        return Err(EventError::new(
            format!("detail.images[{i}].container"),
            "empty",
        ));
    }
    Ok(AnnouncedImage {
        container: image.container,
        repository,
        digest,
    })
}

pub(super) fn parse_known_good(value: &Value) -> Result<DeployEvent, EventError> {
    let envelope = envelope(value, KNOWN_GOOD_DETAIL_TYPE, KNOWN_GOOD_SOURCE)?;
    let detail: Detail = parse_at(&envelope.detail, "detail")?;
    let arn = Arn::parse(&detail.service).filter(|a| a.service == "ecs");
    let (Some(arn), Some(service)) = (arn, ServiceKey::from_arn(&detail.service)) else {
        return Err(EventError::new(
            "detail.service",
            "not an ECS service ARN (arn:PARTITION:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE)",
        ));
    };
    if detail
        .revision
        .split_once(':')
        .is_none_or(|(family, n)| family.is_empty() || n.parse::<u32>().is_err())
    {
        return Err(EventError::new("detail.revision", "expected FAMILY:N"));
    }
    if detail.images.is_empty() {
        return Err(EventError::new("detail.images", "empty"));
    }
    let images = detail
        .images
        .into_iter()
        .enumerate()
        .map(|(i, image)| announced_image(i, image))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DeployEvent::KnownGood(KnownGood {
        event_id: envelope.id,
        account: required_text(envelope.account, "account")?,
        time: envelope.time,
        service_account: arn.account.to_owned(),
        service,
        revision: detail.revision,
        images,
        deployment: detail.deployment.filter(|d| !d.trim().is_empty()),
        at: detail.at,
    }))
}
