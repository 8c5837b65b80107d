//! Container image references and ECR repositories.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An ECR repository: the registry (account and region) and the repository name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Repository {
    pub account: String,
    pub region: String,
    pub name: String,
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.dkr.ecr.{}/{}", self.account, self.region, self.name)
    }
}

/// An image manifest digest, `sha256:` and 64 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a sha256 digest (sha256: and 64 hex digits)")]
pub struct DigestError(pub String);

impl Digest {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, the way registries abbreviate digests.
    pub fn short(&self) -> &str {
        self.0.get(7..19).unwrap_or(&self.0)
    }
}

impl std::str::FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| DigestError(s.to_owned()))?;
        if hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(DigestError(s.to_owned()))
        }
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> Self {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A container image reference as a task definition holds it: `[HOST/]NAME[:TAG][@DIGEST]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef<'a> {
    pub host: Option<&'a str>,
    pub name: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

impl<'a> ImageRef<'a> {
    pub fn parse(image: &'a str) -> Option<Self> {
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (image, None),
        };
        // The first path component is a registry host when it looks like one (Docker's rule).
        let (host, path) = match rest.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first), path)
            }
            _ => (None, rest),
        };
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match path[last_slash..].rfind(':') {
            Some(i) => (&path[..last_slash + i], Some(&path[last_slash + i + 1..])),
            None => (path, None),
        };
        (!name.is_empty()).then_some(Self {
            host,
            name,
            tag: tag.filter(|t| !t.is_empty()),
            digest: digest.filter(|d| !d.is_empty()),
        })
    }

    /// The ECR registry (account, region) of the host, for ECR hosts in every partition and
    /// for the FIPS and dual-stack endpoints.
    pub fn ecr_registry(&self) -> Option<(&'a str, &'a str)> {
        let host = self.host?;
        let (account, rest) = host.split_once('.')?;
        let region_and_domain = rest
            .strip_prefix("dkr.ecr.")
            .or_else(|| rest.strip_prefix("dkr.ecr-fips."))
            .or_else(|| rest.strip_prefix("dkr-ecr."))?;
        let (region, domain) = region_and_domain.split_once('.')?;
        let known_domain = domain.starts_with("amazonaws.com") || domain == "on.aws";
        (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && known_domain)
            .then_some((account, region))
    }

    /// Whether this image is in `repo`: same registry and same repository name, whatever the
    /// tag or digest.
    pub fn is_in(&self, repo: &Repository) -> bool {
        self.name == repo.name
            && self
                .ecr_registry()
                .is_some_and(|(account, region)| account == repo.account && region == repo.region)
    }

    /// The ECR repository the image is in; `None` for an image outside ECR.
    pub fn repository(&self) -> Option<Repository> {
        let (account, region) = self.ecr_registry()?;
        Some(Repository {
            account: account.to_owned(),
            region: region.to_owned(),
            name: self.name.to_owned(),
        })
    }

    /// The same image pinned to `digest`, on the same host string the task definition used.
    pub fn pinned(&self, digest: &Digest) -> String {
        match self.host {
            Some(host) => format!("{host}/{}@{digest}", self.name),
            None => format!("{}@{digest}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn repo(name: &str) -> Repository {
        Repository {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            name: name.into(),
        }
    }

    #[test]
    fn parses_tag_digest_and_nested_names() {
        let image = format!("{HOST}/team/web:main-42");
        let r = ImageRef::parse(&image).unwrap();
        assert_eq!(r.host, Some(HOST));
        assert_eq!(r.name, "team/web");
        assert_eq!(r.tag, Some("main-42"));
        assert_eq!(r.digest, None);

        let image = format!("{HOST}/web@{DIGEST}");
        let r = ImageRef::parse(&image).unwrap();
        assert_eq!((r.name, r.tag, r.digest), ("web", None, Some(DIGEST)));

        let r = ImageRef::parse("localhost:5000/web:1.0").unwrap();
        assert_eq!(
            (r.host, r.name, r.tag),
            (Some("localhost:5000"), "web", Some("1.0"))
        );

        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!((r.host, r.name, r.tag), (None, "nginx", None));
        assert!(ImageRef::parse("").is_none());
    }

    #[test]
    fn matches_same_registry_and_repository_only() {
        for image in [
            format!("{HOST}/web"),
            format!("{HOST}/web:1.2.3"),
            format!("{HOST}/web@{DIGEST}"),
            format!("{HOST}/web:1.2.3@{DIGEST}"),
            "123456789012.dkr.ecr-fips.eu-west-1.amazonaws.com/web:1".to_string(),
            "123456789012.dkr-ecr.eu-west-1.on.aws/web:1".to_string(),
        ] {
            assert!(
                ImageRef::parse(&image).unwrap().is_in(&repo("web")),
                "{image}"
            );
        }
        for image in [
            format!("{HOST}/web-api:1"),
            format!("{HOST}/team/web:1"),
            "999999999999.dkr.ecr.eu-west-1.amazonaws.com/web:1".to_string(),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1".to_string(),
            "docker.io/library/web:1".to_string(),
            "web:1".to_string(),
        ] {
            assert!(
                !ImageRef::parse(&image).unwrap().is_in(&repo("web")),
                "{image}"
            );
        }
    }

    #[test]
    fn pins_by_digest_and_drops_the_tag() {
        let digest: Digest = DIGEST.parse().unwrap();
        let image = format!("{HOST}/web:main-41");
        assert_eq!(
            ImageRef::parse(&image).unwrap().pinned(&digest),
            format!("{HOST}/web@{DIGEST}")
        );
    }

    #[test]
    fn digests_are_validated() {
        assert!(DIGEST.parse::<Digest>().is_ok());
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!(
            DIGEST
                .replace("sha256", "sha512")
                .parse::<Digest>()
                .is_err()
        );
        assert!(DIGEST.to_uppercase().parse::<Digest>().is_err());
        let d: Digest = DIGEST.parse().unwrap();
        assert_eq!(d.short(), "0123456789ab");
    }
}
