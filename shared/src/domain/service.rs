//! Which ECS service a thing is about.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A service named the way deckhand names it everywhere: `CLUSTER/SERVICE`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceKey {
    cluster: String,
    service: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not CLUSTER/SERVICE")]
pub struct ServiceKeyError(pub String);

impl ServiceKey {
    pub fn new(cluster: impl Into<String>, service: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
            service: service.into(),
        }
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// Parses a service ARN in the long format
    /// (`arn:PARTITION:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE`). The short format that
    /// predates 2018 carries no cluster name and cannot be placed, so it gives `None`.
    pub fn from_arn(arn: &str) -> Option<Self> {
        let arn = Arn::parse(arn).filter(|a| a.service == "ecs")?;
        let rest = arn.resource.strip_prefix("service/")?;
        let (cluster, service) = rest.split_once('/')?;
        (!cluster.is_empty() && !service.is_empty() && !service.contains('/'))
            .then(|| Self::new(cluster, service))
    }

    /// The service of a service deployment ARN (`...:service-deployment/CLUSTER/SERVICE/ID`).
    pub fn from_service_deployment_arn(arn: &str) -> Option<Self> {
        let arn = Arn::parse(arn).filter(|a| a.service == "ecs")?;
        let rest = arn.resource.strip_prefix("service-deployment/")?;
        let mut parts = rest.split('/');
        let (cluster, service, id) = (parts.next()?, parts.next()?, parts.next()?);
        (!cluster.is_empty() && !service.is_empty() && !id.is_empty() && parts.next().is_none())
            .then(|| Self::new(cluster, service))
    }
}

/// The parts of an ARN, `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE` (the resource may
/// hold colons and slashes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut parts = text.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return None;
        };
        Some(Self {
            partition,
            service,
            region,
            account,
            resource,
        })
    }
}

impl std::str::FromStr for ServiceKey {
    type Err = ServiceKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((cluster, service))
                if !cluster.is_empty() && !service.is_empty() && !service.contains('/') =>
            {
                Ok(Self::new(cluster, service))
            }
            _ => Err(ServiceKeyError(s.to_owned())),
        }
    }
}

impl TryFrom<String> for ServiceKey {
    type Error = ServiceKeyError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<ServiceKey> for String {
    fn from(key: ServiceKey) -> Self {
        key.to_string()
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.cluster, self.service)
    }
}

/// `family:revision`, the short name people use for a task definition revision.
pub fn revision_name(task_definition_arn: &str) -> &str {
    task_definition_arn
        .rsplit_once("task-definition/")
        .map_or(task_definition_arn, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_long_service_arns_and_rejects_others() {
        let key = ServiceKey::from_arn("arn:aws:ecs:eu-west-1:123456789012:service/demo/web");
        assert_eq!(key, Some(ServiceKey::new("demo", "web")));
        assert_eq!(
            ServiceKey::from_arn("arn:aws:ecs:eu-west-1:123456789012:service/web"),
            None
        );
        assert_eq!(
            ServiceKey::from_arn("arn:aws:ecs:eu-west-1:1:task-definition/web:3"),
            None
        );
        assert_eq!(ServiceKey::from_arn("not an arn"), None);
    }

    #[test]
    fn parses_and_prints_cluster_slash_service() {
        let key: ServiceKey = "prod/api".parse().unwrap();
        assert_eq!(key.cluster(), "prod");
        assert_eq!(key.to_string(), "prod/api");
        assert!("prod".parse::<ServiceKey>().is_err());
        assert!("/api".parse::<ServiceKey>().is_err());
        assert!("a/b/c".parse::<ServiceKey>().is_err());
    }

    #[test]
    fn revision_name_is_family_and_revision() {
        assert_eq!(
            revision_name("arn:aws:ecs:us-east-1:1:task-definition/web:7"),
            "web:7"
        );
        assert_eq!(revision_name("web:7"), "web:7");
    }
}
