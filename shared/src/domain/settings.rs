//! What a service's `deckhand:*` tags ask for.

use std::collections::BTreeMap;
use std::fmt;

use chrono::TimeDelta;

use super::duration::parse_duration;
use super::policy::DeployPolicy;

pub const TAG_DEPLOY: &str = "deckhand:deploy";
pub const TAG_CONTAINERS: &str = "deckhand:containers";
pub const TAG_GUARD: &str = "deckhand:guard";

pub type Tags = BTreeMap<String, String>;

/// A tag value that does not parse. The service is left alone and this is reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagProblem {
    pub tag: String,
    pub value: String,
    pub message: String,
}

impl fmt::Display for TagProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = \"{}\": {}", self.tag, self.value, self.message)
    }
}

/// Everything the deploy function reads from a service's tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploySettings {
    pub policy: DeployPolicy,
    /// `None`: every container whose image is in the pushed repository.
    pub containers: Option<Vec<String>>,
    pub guard: TimeDelta,
}

impl DeploySettings {
    /// `Ok(None)` when the service has not opted in to deploys.
    pub fn from_tags(
        tags: &Tags,
        default_guard: TimeDelta,
    ) -> Result<Option<Self>, Vec<TagProblem>> {
        let Some(policy_text) = tags.get(TAG_DEPLOY) else {
            return Ok(None);
        };
        let mut problems = Vec::new();
        let problem = |tag: &str, value: &str, message: String| TagProblem {
            tag: tag.to_owned(),
            value: value.to_owned(),
            message,
        };
        let policy = DeployPolicy::parse(policy_text)
            .map_err(|e| problems.push(problem(TAG_DEPLOY, policy_text, e.to_string())))
            .ok();
        let containers = match tags.get(TAG_CONTAINERS) {
            None => None,
            Some(value) => {
                let names: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
                if names.is_empty() {
                    problems.push(problem(
                        TAG_CONTAINERS,
                        value,
                        "the value is empty; name at least one container or remove the tag".into(),
                    ));
                }
                Some(names)
            }
        };
        let guard = match tags.get(TAG_GUARD) {
            None => Some(default_guard),
            Some(value) => parse_duration(value)
                .map_err(|e| problems.push(problem(TAG_GUARD, value, e.to_string())))
                .ok(),
        };
        match (policy, guard) {
            (Some(policy), Some(guard)) if problems.is_empty() => Ok(Some(Self {
                policy,
                containers,
                guard,
            })),
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn not_opted_in_without_the_deploy_tag() {
        let t = tags(&[("deckhand:containers", "web"), ("team", "a")]);
        assert_eq!(
            DeploySettings::from_tags(&t, TimeDelta::minutes(30)),
            Ok(None)
        );
    }

    #[test]
    fn reads_policy_containers_and_guard() {
        let t = tags(&[
            ("deckhand:deploy", "prefix=main-"),
            ("deckhand:containers", "web  sidecar"),
            ("deckhand:guard", "2h"),
        ]);
        let s = DeploySettings::from_tags(&t, TimeDelta::minutes(30))
            .unwrap()
            .unwrap();
        assert_eq!(s.policy.to_string(), "prefix=main-");
        assert_eq!(s.containers, Some(vec!["web".into(), "sidecar".into()]));
        assert_eq!(s.guard, TimeDelta::hours(2));

        let t = tags(&[("deckhand:deploy", "any")]);
        let s = DeploySettings::from_tags(&t, TimeDelta::minutes(30))
            .unwrap()
            .unwrap();
        assert_eq!((s.containers, s.guard), (None, TimeDelta::minutes(30)));
    }

    #[test]
    fn reports_every_invalid_tag_by_name() {
        let t = tags(&[
            ("deckhand:deploy", "main-*"),
            ("deckhand:containers", " "),
            ("deckhand:guard", "soon"),
        ]);
        let problems = DeploySettings::from_tags(&t, TimeDelta::minutes(30)).unwrap_err();
        let names: Vec<&str> = problems.iter().map(|p| p.tag.as_str()).collect();
        assert_eq!(
            names,
            ["deckhand:deploy", "deckhand:containers", "deckhand:guard"]
        );
        assert!(
            problems[0]
                .to_string()
                .starts_with("deckhand:deploy = \"main-*\": `main-*` is not a rule")
        );
    }
}
