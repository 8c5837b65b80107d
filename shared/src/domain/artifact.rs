//! What a push to ECR put in the repository: a container image, an image index (several
//! platforms, or one platform with attestations, as buildx pushes by default), or something
//! that is not an image at all (a cosign signature, an attestation, a Helm chart).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::image::Digest;

/// The manifest media types of an image index: OCI's, and Docker's manifest list.
const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The manifest media types of a single image.
const IMAGE_TYPES: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// The config media types of a container image (ECR's `artifact-media-type`). Anything else
/// (Helm's `application/vnd.cncf.helm.config.v1.tar+json`, an SBOM, a sigstore bundle, OCI's
/// empty config of an artifact) is not something ECS can run.
const IMAGE_CONFIG_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// What the pushed manifest is, as far as its media type tells.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManifestKind {
    Image,
    Index,
    /// The event did not say (older events carry no media type).
    #[default]
    Unknown,
}

/// Classifies a push from its tag and the media types ECR's event carries. `Err` names why it
/// is not a container image to deploy, whatever a service's policy says.
pub fn classify_push(
    tag: Option<&str>,
    artifact_media_type: Option<&str>,
    manifest_media_type: Option<&str>,
) -> Result<ManifestKind, String> {
    if let Some(kind) = tag.and_then(signature_kind) {
        return Err(format!(
            "tag {} is a cosign {kind}, not an image",
            tag.unwrap_or_default()
        ));
    }
    if let Some(artifact) = artifact_media_type.filter(|a| !a.is_empty())
        && !IMAGE_CONFIG_TYPES.contains(&artifact)
    {
        return Err(format!(
            "the pushed artifact is of type {artifact}, not a container image"
        ));
    }
    match manifest_media_type.filter(|m| !m.is_empty()) {
        None => Ok(ManifestKind::Unknown),
        Some(m) if INDEX_TYPES.contains(&m) => Ok(ManifestKind::Index),
        Some(m) if IMAGE_TYPES.contains(&m) => Ok(ManifestKind::Image),
        Some(other) => Err(format!(
            "the pushed manifest is of type {other}, not a container image"
        )),
    }
}

/// cosign stores what it makes for an image in the image's repository under
/// `sha256-<hex>.sig` (signature), `.att` (attestation) and `.sbom` (SBOM).
fn signature_kind(tag: &str) -> Option<&'static str> {
    let (name, suffix) = tag.rsplit_once('.')?;
    let hex = name.strip_prefix("sha256-")?;
    let is_digest = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !is_digest {
        return None;
    }
    match suffix {
        "sig" => Some("signature"),
        "att" => Some("attestation"),
        "sbom" => Some("SBOM"),
        _ => None,
    }
}

/// A manifest as a registry returns it, read just enough to tell an index from an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manifest {
    /// One image: its scan is the one that counts.
    Image,
    /// An index: the digests of the image manifests it lists, attestation entries left out
    /// (buildx lists them with platform `unknown/unknown` and a `vnd.docker.reference.type`
    /// annotation). ECR scans each of these, never the index.
    Index { images: Vec<Digest> },
}

/// Reads a manifest's JSON. `media_type` is the one the registry reported, when it did.
pub fn read_manifest(text: &str, media_type: Option<&str>) -> Result<Manifest, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    let declared = value.get("mediaType").and_then(Value::as_str);
    let is_index = media_type
        .or(declared)
        .is_some_and(|m| INDEX_TYPES.contains(&m))
        || (declared.is_none() && value.get("manifests").is_some());
    if !is_index {
        return Ok(Manifest::Image);
    }
    let entries = value
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or("the index has no manifests list")?;
    let mut images = Vec::new();
    for entry in entries {
        let platform = entry.get("platform");
        let field = |name: &str| {
            platform
                .and_then(|p| p.get(name))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        let attestation = entry
            .get("annotations")
            .and_then(|a| a.get("vnd.docker.reference.type"))
            .and_then(Value::as_str)
            == Some("attestation-manifest");
        let unknown = field("os") == "unknown" || field("architecture") == "unknown";
        let image = entry
            .get("mediaType")
            .and_then(Value::as_str)
            .is_none_or(|m| IMAGE_TYPES.contains(&m));
        if attestation || unknown || !image {
            continue;
        }
        let digest = entry
            .get("digest")
            .and_then(Value::as_str)
            .ok_or("an index entry has no digest")?;
        images.push(digest.parse().map_err(|e| format!("{e}"))?);
    }
    Ok(Manifest::Index { images })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    const HEX: &str = "ee12edb4325bb84684913d51a825c393d5eb26136ba32ecdf18f13deb475f665";

    #[test]
    fn cosign_tags_and_other_artifacts_never_count_as_images() {
        for suffix in ["sig", "att", "sbom"] {
            let tag = format!("sha256-{HEX}.{suffix}");
            let why = classify_push(
                Some(&tag),
                Some("application/vnd.oci.image.config.v1+json"),
                Some("application/vnd.oci.image.manifest.v1+json"),
            )
            .unwrap_err();
            assert!(why.contains("cosign"), "{why}");
        }
        let why = classify_push(
            Some("web-1.4.0"),
            Some("application/vnd.cncf.helm.config.v1.tar+json"),
            Some("application/vnd.oci.image.manifest.v1+json"),
        )
        .unwrap_err();
        assert!(why.contains("helm"), "{why}");
        assert!(
            classify_push(
                Some("v1"),
                None,
                Some("application/vnd.oci.artifact.manifest.v1+json")
            )
            .is_err()
        );
    }

    #[test]
    fn lookalike_tags_images_and_indexes_are_images() {
        for tag in [
            format!("sha256-{HEX}"),
            format!("sha256-{}.sig", &HEX[..10]),
            format!("sha256-{HEX}.tar"),
            "main-42.sig".to_owned(),
        ] {
            assert_eq!(
                classify_push(Some(&tag), None, None),
                Ok(ManifestKind::Unknown),
                "{tag}"
            );
        }
        assert_eq!(
            classify_push(
                Some("main-44"),
                None,
                Some("application/vnd.oci.image.index.v1+json")
            ),
            Ok(ManifestKind::Index)
        );
        assert_eq!(
            classify_push(
                Some("main-43"),
                Some("application/vnd.docker.container.image.v1+json"),
                Some("application/vnd.docker.distribution.manifest.v2+json")
            ),
            Ok(ManifestKind::Image)
        );
    }

    #[test]
    fn an_index_lists_its_images_without_the_attestations() {
        let text = fixtures::aws("ecr-image-index-manifest").to_string();
        let Manifest::Index { images } = read_manifest(&text, None).unwrap() else {
            panic!("not an index")
        };
        let expected = [
            "sha256:302279f2c764a17e0704321e3e6efb40b05956ec800867ebdcaa80a21296122f",
            "sha256:dbe3bc64fc11d47358c5dae6b27630c69af8b17f503cb591d0eb355784d3d15a",
        ];
        assert_eq!(
            images.iter().map(Digest::as_str).collect::<Vec<_>>(),
            expected
        );
        let image = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
        assert_eq!(read_manifest(image, None), Ok(Manifest::Image));
        assert!(read_manifest("{", None).is_err());
        assert!(
            read_manifest(
                r#"{"manifests":[{"digest":"sha256:1"}]}"#,
                Some("application/vnd.oci.image.index.v1+json")
            )
            .is_err()
        );
    }
}
