//! An image in ECR's archive storage class cannot be pulled until it is restored (ECR User
//! Guide, "Archiving an image"): a rollback onto it would start tasks that never run. The
//! rollback restores what it needs first (`UpdateImageStorageClass` to STANDARD), is recorded
//! pending, and the reconcile finishes it once ECR reports every image ACTIVE.

use chrono::SecondsFormat;

use super::keep::KeptImage;
use super::service::revision_name;
use super::state::PendingRollback;
use super::trust::ImageStatus;

impl PendingRollback {
    pub fn describe(&self) -> String {
        format!(
            "a rollback to {} waits since {} for ECR to restore {}",
            revision_name(&self.to),
            self.since.to_rfc3339_opts(SecondsFormat::Secs, true),
            names(
                &self
                    .images
                    .iter()
                    .filter_map(|i| KeptImage::of(i))
                    .collect::<Vec<_>>()
            )
        )
    }
}

/// Whether the images a revision runs can be pulled now, from what ECR says of each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pullable {
    Ready,
    /// Some are archived (to restore) or being restored.
    Restoring {
        archived: Vec<KeptImage>,
        activating: Vec<KeptImage>,
    },
    /// ECR no longer has some: nothing can bring them back.
    Gone(Vec<KeptImage>),
}

/// `statuses`: each image and its status in ECR, `None` when ECR has no such image.
pub fn pullable(statuses: Vec<(KeptImage, Option<ImageStatus>)>) -> Pullable {
    let mut archived = Vec::new();
    let mut activating = Vec::new();
    let mut gone = Vec::new();
    for (image, status) in statuses {
        match status {
            Some(ImageStatus::Active) => {}
            Some(ImageStatus::Archived) => archived.push(image),
            Some(ImageStatus::Activating) => activating.push(image),
            None => gone.push(image),
        }
    }
    if !gone.is_empty() {
        Pullable::Gone(gone)
    } else if archived.is_empty() && activating.is_empty() {
        Pullable::Ready
    } else {
        Pullable::Restoring {
            archived,
            activating,
        }
    }
}

/// `REPO@sha256:abbreviated` of each image.
pub fn names(images: &[KeptImage]) -> String {
    images
        .iter()
        .map(|i| format!("{}@{}", i.repository.name, i.digest.short()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(c: char) -> KeptImage {
        KeptImage::of(&format!(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:{}",
            c.to_string().repeat(64)
        ))
        .unwrap()
    }

    #[test]
    fn archived_images_are_restored_and_gone_ones_cannot_be() {
        assert_eq!(
            pullable(vec![(image('a'), Some(ImageStatus::Active))]),
            Pullable::Ready
        );
        assert_eq!(
            pullable(vec![
                (image('a'), Some(ImageStatus::Archived)),
                (image('b'), Some(ImageStatus::Activating)),
            ]),
            Pullable::Restoring {
                archived: vec![image('a')],
                activating: vec![image('b')],
            }
        );
        assert_eq!(
            pullable(vec![
                (image('a'), Some(ImageStatus::Archived)),
                (image('c'), None),
            ]),
            Pullable::Gone(vec![image('c')])
        );
        assert_eq!(names(&[image('a')]), "web@aaaaaaaaaaaa");
    }
}
