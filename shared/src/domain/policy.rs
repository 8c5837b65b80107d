//! The `deckhand:deploy` tag: which pushed tags deploy.
//!
//! Grammar: space-separated alternatives, any of which may match: `any`, `tag=NAME`,
//! `prefix=TEXT`, `semver`, `semver=major`, `semver=minor`, `semver=patch`; or `off` alone.

use std::fmt;

use semver::Version;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeployPolicy {
    Off,
    /// Non-empty; a push deploys when any rule matches.
    Rules(Vec<Rule>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    Any,
    Tag(String),
    Prefix(String),
    Semver(SemverScope),
}

/// How far a semantic-version upgrade may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SemverScope {
    /// Any greater version (`semver`, `semver=major`).
    Major,
    /// Same major version (`semver=minor`).
    Minor,
    /// Same major.minor (`semver=patch`).
    Patch,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the value is empty; write `off` to opt out")]
    Empty,
    #[error(
        "`{0}` is not a rule (any, tag=NAME, prefix=TEXT, semver, semver=major|minor|patch, off)"
    )]
    UnknownRule(String),
    #[error("`{0}` needs a value after `=`")]
    MissingValue(String),
    #[error("`off` cannot be combined with other rules")]
    OffWithRules,
}

/// The outcome of checking a pushed tag against a policy, with the reason in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Deploy(String),
    Skip(String),
}

impl DeployPolicy {
    pub fn parse(value: &str) -> Result<Self, PolicyError> {
        let words: Vec<&str> = value.split_whitespace().collect();
        if words.is_empty() {
            return Err(PolicyError::Empty);
        }
        if words.contains(&"off") {
            return if words.iter().all(|w| *w == "off") {
                Ok(Self::Off)
            } else {
                Err(PolicyError::OffWithRules)
            };
        }
        words
            .into_iter()
            .map(Rule::parse)
            .collect::<Result<_, _>>()
            .map(Self::Rules)
    }

    /// Whether deciding needs the version the container runs now.
    pub fn needs_running_version(&self) -> bool {
        matches!(self, Self::Rules(rules) if rules.iter().any(|r| matches!(r, Rule::Semver(_))))
    }

    /// Checks a pushed tag. `running` is the highest semantic version among the tags of the
    /// images the chosen containers run now, when known.
    pub fn check(&self, pushed_tag: Option<&str>, running: Option<&Version>) -> Verdict {
        let rules = match self {
            Self::Off => return Verdict::Skip("deckhand:deploy is off".into()),
            Self::Rules(rules) => rules,
        };
        // Untagged pushes are usually the per-platform manifests of a multi-arch image;
        // deploying one of them would pin a single platform.
        let Some(tag) = pushed_tag else {
            return Verdict::Skip("the push has no tag".into());
        };
        let mut reasons = Vec::new();
        for rule in rules {
            match rule.check(tag, running) {
                Verdict::Deploy(reason) => return Verdict::Deploy(reason),
                Verdict::Skip(reason) => reasons.push(reason),
            }
        }
        Verdict::Skip(reasons.join("; "))
    }
}

impl fmt::Display for DeployPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Rules(rules) => {
                let words: Vec<String> = rules.iter().map(Rule::to_string).collect();
                f.write_str(&words.join(" "))
            }
        }
    }
}

impl Rule {
    fn parse(word: &str) -> Result<Self, PolicyError> {
        let value_of = |prefix: &str| -> Result<Option<String>, PolicyError> {
            match word.strip_prefix(prefix) {
                Some("") => Err(PolicyError::MissingValue(word.to_owned())),
                Some(v) => Ok(Some(v.to_owned())),
                None => Ok(None),
            }
        };
        match word {
            "any" => return Ok(Self::Any),
            "semver" | "semver=major" => return Ok(Self::Semver(SemverScope::Major)),
            "semver=minor" => return Ok(Self::Semver(SemverScope::Minor)),
            "semver=patch" => return Ok(Self::Semver(SemverScope::Patch)),
            _ => {}
        }
        if let Some(name) = value_of("tag=")? {
            return Ok(Self::Tag(name));
        }
        if let Some(text) = value_of("prefix=")? {
            return Ok(Self::Prefix(text));
        }
        Err(PolicyError::UnknownRule(word.to_owned()))
    }

    fn check(&self, tag: &str, running: Option<&Version>) -> Verdict {
        match self {
            Self::Any => Verdict::Deploy(format!("tag {tag} matches any")),
            Self::Tag(name) if name == tag => Verdict::Deploy(format!("tag {tag} matches {self}")),
            Self::Prefix(p) if tag.starts_with(p.as_str()) => {
                Verdict::Deploy(format!("tag {tag} matches {self}"))
            }
            Self::Tag(_) | Self::Prefix(_) => {
                Verdict::Skip(format!("tag {tag} does not match {self}"))
            }
            Self::Semver(scope) => check_semver(*scope, self, tag, running),
        }
    }
}

fn check_semver(scope: SemverScope, rule: &Rule, tag: &str, running: Option<&Version>) -> Verdict {
    let Some(pushed) = parse_version(tag) else {
        return Verdict::Skip(format!("tag {tag} is not a semantic version ({rule})"));
    };
    if !pushed.pre.is_empty() {
        return Verdict::Skip(format!("tag {tag} is a pre-release ({rule})"));
    }
    let Some(running) = running else {
        return Verdict::Skip(format!(
            "the running image has no semantic-version tag to compare {tag} with ({rule})"
        ));
    };
    // Precedence ignores build metadata: 1.2.3+a is not newer than 1.2.3.
    if pushed.cmp_precedence(running) != std::cmp::Ordering::Greater {
        return Verdict::Skip(format!(
            "tag {tag} is not newer than the running {running} ({rule})"
        ));
    }
    let in_scope = match scope {
        SemverScope::Major => true,
        SemverScope::Minor => pushed.major == running.major,
        SemverScope::Patch => pushed.major == running.major && pushed.minor == running.minor,
    };
    if in_scope {
        Verdict::Deploy(format!(
            "tag {tag} is newer than the running {running} ({rule})"
        ))
    } else {
        Verdict::Skip(format!(
            "tag {tag} leaves the range of the running {running} allowed by {rule}"
        ))
    }
}

/// A semantic version from an image tag, with an optional leading `v`.
pub fn parse_version(tag: &str) -> Option<Version> {
    Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::Tag(name) => write!(f, "tag={name}"),
            Self::Prefix(text) => write!(f, "prefix={text}"),
            Self::Semver(SemverScope::Major) => f.write_str("semver"),
            Self::Semver(SemverScope::Minor) => f.write_str("semver=minor"),
            Self::Semver(SemverScope::Patch) => f.write_str("semver=patch"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(s: &str) -> DeployPolicy {
        DeployPolicy::parse(s).unwrap()
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn deploys(p: &str, tag: &str, running: Option<&str>) -> bool {
        let running = running.map(v);
        matches!(
            policy(p).check(Some(tag), running.as_ref()),
            Verdict::Deploy(_)
        )
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(policy("off"), DeployPolicy::Off);
        assert_eq!(policy("  off  "), DeployPolicy::Off);
        assert_eq!(
            policy("any tag=latest prefix=main- semver semver=major semver=minor semver=patch"),
            DeployPolicy::Rules(vec![
                Rule::Any,
                Rule::Tag("latest".into()),
                Rule::Prefix("main-".into()),
                Rule::Semver(SemverScope::Major),
                Rule::Semver(SemverScope::Major),
                Rule::Semver(SemverScope::Minor),
                Rule::Semver(SemverScope::Patch),
            ])
        );
        assert_eq!(
            policy("prefix=release/v"),
            DeployPolicy::Rules(vec![Rule::Prefix("release/v".into())])
        );
    }

    #[test]
    fn rejects_invalid_values() {
        assert_eq!(DeployPolicy::parse(""), Err(PolicyError::Empty));
        assert_eq!(DeployPolicy::parse("   "), Err(PolicyError::Empty));
        assert_eq!(
            DeployPolicy::parse("off any"),
            Err(PolicyError::OffWithRules)
        );
        assert_eq!(
            DeployPolicy::parse("tag="),
            Err(PolicyError::MissingValue("tag=".into()))
        );
        assert_eq!(
            DeployPolicy::parse("prefix="),
            Err(PolicyError::MissingValue("prefix=".into()))
        );
        for bad in [
            "main-*",
            "semver=huge",
            "tags=main",
            "ANY",
            "on",
            "prefix",
            "tag",
        ] {
            assert!(
                matches!(DeployPolicy::parse(bad), Err(PolicyError::UnknownRule(w)) if w == bad),
                "{bad}"
            );
        }
        assert!(
            matches!(DeployPolicy::parse("any main-*"), Err(PolicyError::UnknownRule(w)) if w == "main-*")
        );
    }

    #[test]
    fn prints_back_in_the_grammar() {
        for text in [
            "off",
            "any",
            "tag=latest prefix=main-",
            "semver",
            "semver=minor semver=patch",
        ] {
            assert_eq!(policy(text).to_string(), text);
        }
    }

    #[test]
    fn tag_prefix_and_any() {
        assert!(deploys("any", "whatever", None));
        assert!(deploys("tag=latest", "latest", None));
        assert!(!deploys("tag=latest", "latest2", None));
        assert!(deploys("prefix=main-", "main-42", None));
        assert!(!deploys("prefix=main-", "feature-x", None));
        assert!(deploys("prefix=main- tag=hotfix", "hotfix", None));
        assert!(!deploys("off", "main-42", None));
    }

    #[test]
    fn the_reason_names_the_rule() {
        assert_eq!(
            policy("prefix=main-").check(Some("main-42"), None),
            Verdict::Deploy("tag main-42 matches prefix=main-".into())
        );
        assert_eq!(
            policy("prefix=main- tag=x").check(Some("dev-1"), None),
            Verdict::Skip(
                "tag dev-1 does not match prefix=main-; tag dev-1 does not match tag=x".into()
            )
        );
    }

    #[test]
    fn untagged_pushes_never_deploy() {
        assert!(
            matches!(policy("any").check(None, None), Verdict::Skip(r) if r.contains("no tag"))
        );
    }

    #[test]
    fn semver_deploys_only_strictly_greater_versions() {
        assert!(deploys("semver", "1.2.4", Some("1.2.3")));
        assert!(deploys("semver", "v2.0.0", Some("1.9.9")));
        assert!(deploys("semver=major", "2.0.0", Some("1.0.0")));
        // equal versions, downgrades, and equal precedence with other build metadata
        assert!(!deploys("semver", "1.2.3", Some("1.2.3")));
        assert!(!deploys("semver", "v1.2.3", Some("1.2.3")));
        assert!(!deploys("semver", "1.2.2", Some("1.2.3")));
        assert!(!deploys("semver", "1.2.3+build.7", Some("1.2.3+build.6")));
        // not versions at all
        assert!(!deploys("semver", "latest", Some("1.2.3")));
        assert!(!deploys("semver", "1.2", Some("1.2.3")));
        assert!(!deploys("semver", "V1.2.4", Some("1.2.3")));
    }

    #[test]
    fn semver_skips_pre_releases_and_unknown_running_versions() {
        assert!(!deploys("semver", "1.3.0-rc.1", Some("1.2.3")));
        assert!(deploys("semver", "1.3.0", Some("1.3.0-rc.1")));
        assert!(matches!(
            policy("semver").check(Some("1.0.0"), None),
            Verdict::Skip(r) if r.contains("no semantic-version tag")
        ));
    }

    #[test]
    fn semver_scopes_keep_major_or_minor() {
        assert!(deploys("semver=minor", "1.3.0", Some("1.2.3")));
        assert!(deploys("semver=minor", "1.2.4", Some("1.2.3")));
        assert!(!deploys("semver=minor", "2.0.0", Some("1.2.3")));
        assert!(deploys("semver=patch", "1.2.4", Some("1.2.3")));
        assert!(!deploys("semver=patch", "1.3.0", Some("1.2.3")));
        assert!(!deploys("semver=patch", "2.2.4", Some("1.2.3")));
        // alternatives: a wider rule rescues what a narrower one refuses
        assert!(deploys("semver=patch tag=2.0.0", "2.0.0", Some("1.2.3")));
    }

    #[test]
    fn knows_when_the_running_version_matters() {
        assert!(policy("prefix=x semver=patch").needs_running_version());
        assert!(!policy("any tag=x").needs_running_version());
        assert!(!policy("off").needs_running_version());
    }
}
