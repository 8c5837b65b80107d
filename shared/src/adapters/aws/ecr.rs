//! ECR: what tags point at a digest.

use async_trait::async_trait;
use aws_sdk_ecr::types::ImageIdentifier;

use super::port_error;
use crate::domain::image::{Digest, Repository};
use crate::ports::{Ecr, PortErrorKind, PortResult};

pub struct EcrRegistry {
    client: aws_sdk_ecr::Client,
}

impl EcrRegistry {
    pub fn new(client: aws_sdk_ecr::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Ecr for EcrRegistry {
    async fn image_tags(
        &self,
        repository: &Repository,
        digest: &Digest,
    ) -> PortResult<Vec<String>> {
        let result = self
            .client
            .describe_images()
            .registry_id(&repository.account)
            .repository_name(&repository.name)
            .image_ids(
                ImageIdentifier::builder()
                    .image_digest(digest.as_str())
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(out) => Ok(out
                .image_details()
                .iter()
                .flat_map(|d| d.image_tags().iter().cloned())
                .collect()),
            Err(e) => {
                let e = port_error("DescribeImages", e);
                // An image deleted since it was deployed simply has no tags to compare with.
                if e.kind == PortErrorKind::NotFound {
                    Ok(Vec::new())
                } else {
                    Err(e)
                }
            }
        }
    }
}
