//! ECR in memory: images, tags, manifests, scans, storage classes and lifecycle policies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::guard;
use crate::domain::artifact::{Manifest, read_manifest};
use crate::domain::image::{Digest, Repository};
use crate::domain::scan::ScanResult;
use crate::domain::trust::{ImageStatus, RegistryImage};
use crate::ports::{Ecr, PortError, PortErrorKind, PortResult};

/// ECR in memory: tags, scans and manifests per digest.
#[derive(Default)]
pub struct MemoryEcr {
    tags: Mutex<HashMap<(String, String), Vec<String>>>,
    scans: Mutex<HashMap<(String, String), ScanResult>>,
    /// Manifests by digest; a digest without one is an image.
    manifests: Mutex<HashMap<(String, String), String>>,
    /// Calls of each operation, and the operations that fail.
    calls: Mutex<BTreeMap<&'static str, usize>>,
    fail: Mutex<BTreeSet<&'static str>>,
    /// Images not ACTIVE, by repository and digest.
    status: Mutex<HashMap<(String, String), ImageStatus>>,
    /// Lifecycle policies by repository.
    lifecycle: Mutex<HashMap<String, String>>,
    /// Repository policies by repository.
    policies: Mutex<HashMap<String, String>>,
}

impl MemoryEcr {
    /// ECR moves the image to another storage class (ARCHIVED, or ACTIVE once restored).
    pub fn set_status(&self, repository: &str, digest: &Digest, status: ImageStatus) {
        guard(&self.status).insert((repository.to_owned(), digest.to_string()), status);
    }

    /// The repository's lifecycle policy.
    pub fn set_repository_policy(&self, repository: &str, policy: &str) {
        guard(&self.policies).insert(repository.to_owned(), policy.to_owned());
    }

    pub fn set_lifecycle_policy(&self, repository: &str, policy: &str) {
        guard(&self.lifecycle).insert(repository.to_owned(), policy.to_owned());
    }

    /// The tags on a digest.
    pub fn tags_of(&self, repository: &str, digest: &Digest) -> Vec<String> {
        guard(&self.tags)
            .get(&(repository.to_owned(), digest.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    fn status_of(&self, repository: &str, digest: &str) -> ImageStatus {
        guard(&self.status)
            .get(&(repository.to_owned(), digest.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    /// The manifest `BatchGetImage` returns for the digest.
    pub fn put_manifest(&self, repository: &str, digest: &Digest, manifest: &str) {
        guard(&self.manifests).insert(
            (repository.to_owned(), digest.to_string()),
            manifest.to_owned(),
        );
    }

    /// Makes every later call of `operation` fail as throttling past the SDK's retries does.
    pub fn fail(&self, operation: &'static str) {
        guard(&self.fail).insert(operation);
    }

    pub fn heal(&self, operation: &'static str) {
        guard(&self.fail).remove(operation);
    }

    pub fn calls(&self, operation: &str) -> usize {
        guard(&self.calls).get(operation).copied().unwrap_or(0)
    }

    fn enter(&self, operation: &'static str) -> PortResult<()> {
        *guard(&self.calls).entry(operation).or_default() += 1;
        if guard(&self.fail).contains(operation) {
            return Err(PortError::new(
                operation,
                PortErrorKind::Transient,
                "ThrottlingException: Rate exceeded",
            ));
        }
        Ok(())
    }

    /// What a scan of the digest found, as `DescribeImageScanFindings` will say.
    pub fn scanned(&self, repository: &str, digest: &Digest, result: ScanResult) {
        guard(&self.scans).insert((repository.to_owned(), digest.to_string()), result);
    }

    /// A push as ECR takes it: the digest exists in the repository, and the tag moves onto it
    /// from whichever digest had it.
    pub fn push(&self, repository: &str, digest: &Digest, tag: Option<&str>) {
        let mut images = guard(&self.tags);
        if let Some(tag) = tag {
            for ((repo, _), tags) in images.iter_mut() {
                if repo == repository {
                    tags.retain(|t| t != tag);
                }
            }
        }
        let tags = images
            .entry((repository.to_owned(), digest.to_string()))
            .or_default();
        tags.extend(tag.map(str::to_owned));
    }

    /// Takes what an event of ECR or Inspector reports as done before the event was sent: a
    /// push (`ECR Image Action`) or a finished scan (`ECR Image Scan`, `Inspector2 Scan`; one
    /// already recorded with `scanned` stays). Tests deliver through here the events AWS
    /// would send; a forged event is one that skips it. Other events are left alone.
    pub fn receive(&self, event: &serde_json::Value) {
        let detail = &event["detail"];
        // Inspector names the repository by its ARN.
        let repository = detail["repository-name"]
            .as_str()
            .map(|name| name.rsplit_once("repository/").map_or(name, |(_, n)| n));
        let digest = detail["image-digest"].as_str().map(str::parse::<Digest>);
        let (Some(repository), Some(Ok(digest))) = (repository, digest) else {
            return;
        };
        match event["detail-type"].as_str() {
            Some("ECR Image Action") if detail["action-type"] == "PUSH" => {
                self.push(repository, &digest, detail["image-tag"].as_str());
            }
            Some("ECR Image Scan" | "Inspector2 Scan") => {
                let status = detail["scan-status"].as_str().unwrap_or_default();
                if !matches!(
                    status,
                    "COMPLETE" | "INITIAL_SCAN_COMPLETE" | "SCAN_COMPLETE"
                ) {
                    return;
                }
                let counts = detail["finding-severity-counts"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(severity, _)| *severity != "TOTAL")
                    .filter_map(|(severity, n)| Some((severity.clone(), n.as_i64()?)))
                    .collect();
                guard(&self.scans)
                    .entry((repository.to_owned(), digest.to_string()))
                    .or_insert(ScanResult::Complete { counts });
            }
            _ => {}
        }
    }

    /// Sets the tags of a digest, which exists from then on.
    pub fn tag(&self, repository: &str, digest: &Digest, tags: &[&str]) {
        guard(&self.tags).insert(
            (repository.to_owned(), digest.to_string()),
            tags.iter().map(|t| (*t).to_owned()).collect(),
        );
    }
}

#[async_trait]
impl Ecr for MemoryEcr {
    async fn image(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> PortResult<Option<RegistryImage>> {
        self.enter("DescribeImages")?;
        Ok(guard(&self.tags)
            .get(&(repository.name.clone(), digest.to_string()))
            .map(|tags| RegistryImage {
                tags: tags.clone(),
                pushed_at: None,
                status: self.status_of(&repository.name, digest.as_str()),
            }))
    }

    async fn digest_of(&self, repository: &Repository, tag: &str) -> PortResult<Option<Digest>> {
        self.enter("DescribeImages")?;
        Ok(guard(&self.tags)
            .iter()
            .find(|((repo, _), tags)| *repo == repository.name && tags.iter().any(|t| t == tag))
            .and_then(|((_, digest), _)| digest.parse().ok()))
    }

    async fn restore(&self, repository: &Repository, digest: &Digest) -> PortResult<ImageStatus> {
        self.enter("UpdateImageStorageClass")?;
        let key = (repository.name.clone(), digest.to_string());
        let mut status = guard(&self.status);
        match status.get(&key).copied().unwrap_or_default() {
            ImageStatus::Archived => {
                status.insert(key, ImageStatus::Activating);
                Ok(ImageStatus::Activating)
            }
            other => Err(PortError::new(
                "UpdateImageStorageClass",
                PortErrorKind::Other,
                format!(
                    "ImageStorageClassUpdateNotSupportedException: the image is {}",
                    other.as_str()
                ),
            )),
        }
    }

    async fn keep(&self, repository: &Repository, digest: &Digest, tag: &str) -> PortResult<()> {
        self.enter("PutImage")?;
        let mut images = guard(&self.tags);
        let Some(tags) = images.get_mut(&(repository.name.clone(), digest.to_string())) else {
            return Err(PortError::new(
                "BatchGetImage",
                PortErrorKind::NotFound,
                format!("ECR has no image {}", digest.short()),
            ));
        };
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
        }
        Ok(())
    }

    async fn release(
        &self,
        repository: &Repository,
        digest: &Digest,
        tag: &str,
    ) -> PortResult<bool> {
        self.enter("BatchDeleteImage")?;
        let mut images = guard(&self.tags);
        let Some(tags) = images.get_mut(&(repository.name.clone(), digest.to_string())) else {
            return Ok(true);
        };
        if tags.len() == 1 && tags[0] == tag {
            return Ok(false);
        }
        tags.retain(|t| t != tag);
        Ok(true)
    }

    async fn lifecycle_policy(&self, repository: &Repository) -> PortResult<Option<String>> {
        self.enter("GetLifecyclePolicy")?;
        Ok(guard(&self.lifecycle).get(&repository.name).cloned())
    }

    async fn repository_policy(&self, repository: &Repository) -> PortResult<Option<String>> {
        self.enter("GetRepositoryPolicy")?;
        Ok(guard(&self.policies).get(&repository.name).cloned())
    }

    async fn images(
        &self,
        repository: &Repository,
    ) -> PortResult<Vec<crate::domain::lifecycle::ListedImage>> {
        self.enter("DescribeImages")?;
        Ok(guard(&self.tags)
            .iter()
            .filter(|((repo, _), _)| *repo == repository.name)
            .map(
                |((_, digest), tags)| crate::domain::lifecycle::ListedImage {
                    digest: digest.clone(),
                    tags: tags.clone(),
                    pushed_at: None,
                    pulled_at: None,
                },
            )
            .collect())
    }

    async fn image_tags(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> PortResult<Vec<String>> {
        Ok(guard(&self.tags)
            .get(&(repository.name.clone(), digest.to_string()))
            .cloned()
            .unwrap_or_default())
    }

    async fn manifest(&self, repository: &Repository, digest: &Digest) -> PortResult<Manifest> {
        self.enter("BatchGetImage")?;
        match guard(&self.manifests).get(&(repository.name.clone(), digest.to_string())) {
            None => Ok(Manifest::Image),
            Some(text) => read_manifest(text, None)
                .map_err(|e| PortError::new("BatchGetImage", PortErrorKind::Other, e)),
        }
    }

    async fn scan_findings(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> PortResult<ScanResult> {
        self.enter("DescribeImageScanFindings")?;
        Ok(guard(&self.scans)
            .get(&(repository.name.clone(), digest.to_string()))
            .cloned()
            .unwrap_or(ScanResult::NotRun))
    }
}
