//! ECR: whether a digest exists, what tags point at it, and what its scan found.

use async_trait::async_trait;
use aws_sdk_ecr::types::ImageIdentifier;
use chrono::DateTime;

use super::port_error;
use crate::domain::artifact::{Manifest, read_manifest};
use crate::domain::image::{Digest, Repository};
use crate::domain::lifecycle::ListedImage;
use crate::domain::scan::ScanResult;
use crate::domain::trust::{ImageStatus, RegistryImage};
use crate::ports::{Ecr, PortError, PortErrorKind, PortResult};

/// What `BatchGetImage` may answer with: indexes and images as pushed.
const ACCEPTED_MANIFESTS: [&str; 6] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// ImageNotFoundException, RepositoryNotFoundException: there is no such image.
fn absent_is_none<T>(e: PortError) -> PortResult<Option<T>> {
    if e.kind == PortErrorKind::NotFound {
        Ok(None)
    } else {
        Err(e)
    }
}

pub struct EcrRegistry {
    client: aws_sdk_ecr::Client,
}

impl EcrRegistry {
    pub fn new(client: aws_sdk_ecr::Client) -> Self {
        Self { client }
    }

    /// What `DescribeImages` says of one image; nothing when ECR has no such image (or no such
    /// repository).
    async fn described(
        &self,
        repository: &Repository,
        id: ImageIdentifier,
    ) -> PortResult<Vec<aws_sdk_ecr::types::ImageDetail>> {
        let result = self
            .client
            .describe_images()
            .registry_id(&repository.account)
            .repository_name(&repository.name)
            .image_ids(id)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.image_details().to_vec()),
            Err(e) => Ok(absent_is_none(port_error("DescribeImages", e))?.unwrap_or_default()),
        }
    }

    /// The image as pushed (`BatchGetImage`); `NotFound` with ECR's reason when there is none.
    async fn pushed(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> PortResult<aws_sdk_ecr::types::Image> {
        let out = self
            .client
            .batch_get_image()
            .registry_id(&repository.account)
            .repository_name(&repository.name)
            .image_ids(
                ImageIdentifier::builder()
                    .image_digest(digest.as_str())
                    .build(),
            )
            // Without them ECR may answer with a converted manifest instead of the index.
            .set_accepted_media_types(Some(
                ACCEPTED_MANIFESTS.iter().map(|m| (*m).to_owned()).collect(),
            ))
            .send()
            .await
            .map_err(|e| port_error("BatchGetImage", e))?;
        match out.images().first() {
            Some(image) => Ok(image.clone()),
            None => {
                let why = out
                    .failures()
                    .first()
                    .and_then(|f| f.failure_reason())
                    .unwrap_or("no image with this digest");
                Err(PortError::new(
                    "BatchGetImage",
                    PortErrorKind::NotFound,
                    format!("{}: {why}", digest.short()),
                ))
            }
        }
    }
}

#[async_trait]
impl Ecr for EcrRegistry {
    async fn image(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> PortResult<Option<RegistryImage>> {
        let id = ImageIdentifier::builder()
            .image_digest(digest.as_str())
            .build();
        Ok(self
            .described(repository, id)
            .await?
            .iter()
            .find(|d| d.image_digest() == Some(digest.as_str()))
            .map(|d| RegistryImage {
                status: d
                    .image_status()
                    .map_or_else(Default::default, |s| ImageStatus::parse(s.as_str())),
                tags: d.image_tags().to_vec(),
                pushed_at: d
                    .image_pushed_at()
                    .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
            }))
    }

    async fn digest_of(&self, repository: &Repository, tag: &str) -> PortResult<Option<Digest>> {
        let id = ImageIdentifier::builder().image_tag(tag).build();
        Ok(self
            .described(repository, id)
            .await?
            .iter()
            .find(|d| d.image_tags().iter().any(|t| t == tag))
            .and_then(|d| d.image_digest()?.parse().ok()))
    }

    async fn restore(&self, repository: &Repository, digest: &Digest) -> PortResult<ImageStatus> {
        let out = self
            .client
            .update_image_storage_class()
            .registry_id(&repository.account)
            .repository_name(&repository.name)
            .image_id(
                ImageIdentifier::builder()
                    .image_digest(digest.as_str())
                    .build(),
            )
            .target_storage_class(aws_sdk_ecr::types::TargetStorageClass::Standard)
            .send()
            .await
            .map_err(|e| port_error("UpdateImageStorageClass", e))?;
        Ok(out
            .image_status()
            .map_or(ImageStatus::Activating, |s| ImageStatus::parse(s.as_str())))
    }

    async fn keep(&self, repository: &Repository, digest: &Digest, tag: &str) -> PortResult<()> {
        let image = self.pushed(repository, digest).await?;
        let result = self
            .client
            .put_image()
            .registry_id(&repository.account)
            .repository_name(&repository.name)
            .image_manifest(image.image_manifest().unwrap_or_default())
            .set_image_manifest_media_type(image.image_manifest_media_type().map(str::to_owned))
            .image_digest(digest.as_str())
            .image_tag(tag)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // The tag is on the image already.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_image_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(port_error("PutImage", e)),
        }
    }

    async fn release(
        &self,
        repository: &Repository,
        digest: &Digest,
        tag: &str,
    ) -> PortResult<bool> {
        let Some(image) = self.image(repository, digest).await? else {
            return Ok(true);
        };
        if !image.tags.iter().any(|t| t == tag) {
            return Ok(true);
        }
        if image.tags.len() == 1 {
            // Its last tag: ECR would delete the image with it. deckhand deletes no image.
            return Ok(false);
        }
        self.client
            .batch_delete_image()
            .registry_id(&repository.account)
            .repository_name(&repository.name)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await
            .map_err(|e| port_error("BatchDeleteImage", e))?;
        Ok(true)
    }

    async fn lifecycle_policy(&self, repository: &Repository) -> PortResult<Option<String>> {
        let result = self
            .client
            .get_lifecycle_policy()
            .registry_id(&repository.account)
            .repository_name(&repository.name)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.lifecycle_policy_text().map(str::to_owned)),
            // LifecyclePolicyNotFoundException: no policy, nothing expires.
            Err(e) => absent_is_none(port_error("GetLifecyclePolicy", e)),
        }
    }

    async fn repository_policy(&self, repository: &Repository) -> PortResult<Option<String>> {
        let result = self
            .client
            .get_repository_policy()
            .registry_id(&repository.account)
            .repository_name(&repository.name)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.policy_text().map(str::to_owned)),
            // RepositoryPolicyNotFoundException: no policy, no other account may read it.
            Err(e) => absent_is_none(port_error("GetRepositoryPolicy", e)),
        }
    }

    async fn images(&self, repository: &Repository) -> PortResult<Vec<ListedImage>> {
        let mut pages = self
            .client
            .describe_images()
            .registry_id(&repository.account)
            .repository_name(&repository.name)
            .into_paginator()
            .send();
        let mut images = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error("DescribeImages", e))?;
            let at = |t: Option<&aws_sdk_ecr::primitives::DateTime>| {
                t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
            };
            images.extend(page.image_details().iter().filter_map(|d| {
                Some(ListedImage {
                    digest: d.image_digest()?.to_owned(),
                    tags: d.image_tags().to_vec(),
                    pushed_at: at(d.image_pushed_at()),
                    pulled_at: at(d.last_recorded_pull_time()),
                })
            }));
        }
        Ok(images)
    }

    async fn image_tags(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> PortResult<Vec<String>> {
        // An image deleted since it was deployed simply has no tags to compare with.
        Ok(self
            .image(repository, digest)
            .await?
            .map(|image| image.tags)
            .unwrap_or_default())
    }
    async fn manifest(&self, repository: &Repository, digest: &Digest) -> PortResult<Manifest> {
        let image = self.pushed(repository, digest).await?;
        let text = image.image_manifest().unwrap_or_default();
        read_manifest(text, image.image_manifest_media_type())
            .map_err(|e| PortError::new("BatchGetImage", PortErrorKind::Other, e))
    }

    async fn scan_findings(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> PortResult<ScanResult> {
        let result = self
            .client
            .describe_image_scan_findings()
            .registry_id(&repository.account)
            .repository_name(&repository.name)
            .image_id(
                ImageIdentifier::builder()
                    .image_digest(digest.as_str())
                    .build(),
            )
            .max_results(1)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                let e = port_error("DescribeImageScanFindings", e);
                // ScanNotFoundException: the digest was never scanned.
                return if e.kind == PortErrorKind::NotFound {
                    Ok(ScanResult::NotRun)
                } else {
                    Err(e)
                };
            }
        };
        let status = out.image_scan_status();
        let code = status
            .and_then(|s| s.status())
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        let description = status
            .and_then(|s| s.description())
            .unwrap_or_default()
            .to_owned();
        Ok(match code.as_str() {
            // ACTIVE: enhanced scanning keeps the image under continuous scan, findings current.
            "COMPLETE" | "ACTIVE" => ScanResult::Complete {
                counts: out
                    .image_scan_findings()
                    .and_then(|f| f.finding_severity_counts())
                    .map(|counts| {
                        counts
                            .iter()
                            .map(|(severity, n)| (severity.as_str().to_owned(), i64::from(*n)))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            "IN_PROGRESS" | "PENDING" => ScanResult::InProgress,
            "" => ScanResult::NotRun,
            other => ScanResult::Unusable {
                status: other.to_owned(),
                description,
            },
        })
    }
}
