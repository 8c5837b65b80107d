//! Configuration from the `DECKHAND_*` environment variables, read once at start.

use chrono::TimeDelta;
use chrono_tz::Tz;

use crate::domain::duration::parse_duration;
use crate::domain::freeze::is_calendar_name;
use crate::domain::promotion::{KNOWN_GOOD_DETAIL_TYPE, is_account};
use crate::domain::scan::{DEFAULT_SCAN_WAIT, FindingSeverity};
use crate::domain::schedule::parse_timezone;
use crate::events::origin::{Home, foreign_but};
use crate::events::{ECR_IMAGE_ACTION, ECR_IMAGE_SCAN, INSPECTOR2_SCAN};

/// How long one attempt of an AWS call may take, and one call with all its retries. The
/// bound on a call is what lets a service's lock lease cover what it guards
/// (`app::locking::LEASE`).
pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
pub const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub table: String,
    pub topic_arn: String,
    /// The chat topic (`DECKHAND_CHAT_TOPIC_ARN`): every notification again, in the format of
    /// Amazon Q Developer in chat applications. `None`: no chat.
    pub chat_topic_arn: Option<String>,
    /// `None`: every cluster.
    pub clusters: Option<Vec<String>>,
    /// Default for `deckhand:timezone`.
    pub timezone: Tz,
    pub guard: TimeDelta,
    /// How many services one invocation works on at once.
    pub concurrency: usize,
    /// The scan gate: pushes wait for their scan; findings at or above this hold them back.
    pub require_scan: Option<FindingSeverity>,
    /// How long a push waits for its scan event before deckhand asks ECR.
    pub scan_wait: TimeDelta,
    pub dry_run: bool,
    /// The environment the stack serves (`DECKHAND_ENVIRONMENT`, the stack's `EnvironmentName`):
    /// named in chat titles and context and in every message's attributes. `None`: unnamed.
    pub environment: Option<String>,
    /// Accounts besides the stack's own whose ECR events count (`DECKHAND_REGISTRY_ACCOUNTS`):
    /// a central registry.
    pub registry_accounts: Vec<String>,
    /// Accounts besides the stack's own whose `Deckhand Known-Good` announcements count
    /// (`DECKHAND_PROMOTE_FROM_ACCOUNTS`).
    pub promote_from_accounts: Vec<String>,
    /// The stack's Change Calendar (`DECKHAND_CHANGE_CALENDAR`): deploys are held while it is
    /// CLOSED, unless a service names its own (`deckhand:change-calendar`).
    pub change_calendar: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required but not set")]
    Missing(&'static str),
    #[error("{name} = \"{value}\": {message}")]
    Invalid {
        name: &'static str,
        value: String,
        message: String,
    },
}

pub const DEFAULT_GUARD: TimeDelta = TimeDelta::minutes(30);
pub const DEFAULT_CONCURRENCY: usize = 16;
/// The longest environment name: it leads every chat title.
pub const ENVIRONMENT_MAX: usize = 32;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let invalid = |name: &'static str, value: &str, message: String| ConfigError::Invalid {
            name,
            value: value.to_owned(),
            message,
        };

        let guard = match get("DECKHAND_GUARD") {
            None => DEFAULT_GUARD,
            Some(v) => {
                parse_duration(&v).map_err(|e| invalid("DECKHAND_GUARD", &v, e.to_string()))?
            }
        };
        let require_scan = match get("DECKHAND_REQUIRE_SCAN") {
            None => None,
            Some(v) => Some(FindingSeverity::parse(&v).ok_or_else(|| {
                invalid(
                    "DECKHAND_REQUIRE_SCAN",
                    &v,
                    "expected CRITICAL, HIGH, MEDIUM or LOW".into(),
                )
            })?),
        };
        let scan_wait = match get("DECKHAND_SCAN_WAIT") {
            None => DEFAULT_SCAN_WAIT,
            Some(v) => {
                parse_duration(&v).map_err(|e| invalid("DECKHAND_SCAN_WAIT", &v, e.to_string()))?
            }
        };
        let timezone = match get("DECKHAND_TIMEZONE") {
            None => Tz::UTC,
            Some(v) => {
                parse_timezone(&v).map_err(|e| invalid("DECKHAND_TIMEZONE", &v, e.to_string()))?
            }
        };
        let concurrency = match get("DECKHAND_CONCURRENCY") {
            None => DEFAULT_CONCURRENCY,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| {
                    invalid(
                        "DECKHAND_CONCURRENCY",
                        &v,
                        "expected a whole number from 1 to 64".into(),
                    )
                })?,
        };
        let chat_topic_arn = match get("DECKHAND_CHAT_TOPIC_ARN") {
            None => None,
            Some(v) if is_topic_arn(&v) => Some(v),
            Some(v) => {
                return Err(invalid(
                    "DECKHAND_CHAT_TOPIC_ARN",
                    &v,
                    "expected an SNS topic ARN (arn:PARTITION:sns:REGION:ACCOUNT:NAME)".into(),
                ));
            }
        };
        let environment = match get("DECKHAND_ENVIRONMENT").map(|v| v.trim().to_owned()) {
            None => None,
            Some(v) if v.is_empty() => None,
            Some(v) if v.chars().count() <= ENVIRONMENT_MAX && !v.chars().any(char::is_control) => {
                Some(v)
            }
            Some(v) => {
                return Err(invalid(
                    "DECKHAND_ENVIRONMENT",
                    &v,
                    format!("expected a name of at most {ENVIRONMENT_MAX} characters, on one line"),
                ));
            }
        };
        let dry_run = match get("DECKHAND_DRY_RUN") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
            Some(v) => {
                return Err(invalid(
                    "DECKHAND_DRY_RUN",
                    &v,
                    "expected true or false".into(),
                ));
            }
        };
        let accounts = |name: &'static str| -> Result<Vec<String>, ConfigError> {
            let Some(v) = get(name) else {
                return Ok(Vec::new());
            };
            let listed: Vec<String> = v
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect();
            match listed.iter().find(|a| !is_account(a)) {
                Some(bad) => Err(invalid(
                    name,
                    &v,
                    format!("`{bad}` is not an AWS account ID (12 digits)"),
                )),
                None => Ok(listed),
            }
        };
        let change_calendar = match get("DECKHAND_CHANGE_CALENDAR") {
            None => None,
            Some(v) if is_calendar_name(&v) => Some(v),
            Some(v) => {
                return Err(invalid(
                    "DECKHAND_CHANGE_CALENDAR",
                    &v,
                    "expected the name of a Change Calendar (3 to 128 letters, digits, _ - .) or its document ARN".into(),
                ));
            }
        };
        Ok(Self {
            change_calendar,
            registry_accounts: accounts("DECKHAND_REGISTRY_ACCOUNTS")?,
            promote_from_accounts: accounts("DECKHAND_PROMOTE_FROM_ACCOUNTS")?,
            table: required("DECKHAND_TABLE")?,
            topic_arn: required("DECKHAND_TOPIC_ARN")?,
            chat_topic_arn,
            clusters: get("DECKHAND_CLUSTERS")
                .map(|v| v.split_whitespace().map(str::to_owned).collect()),
            timezone,
            guard,
            concurrency,
            require_scan,
            scan_wait,
            dry_run,
            environment,
        })
    }

    /// Defaults for tests of the use cases: every cluster, UTC, the default guard.
    #[cfg(test)]
    pub(crate) fn for_tests(dry_run: bool) -> Self {
        Self {
            table: "t".into(),
            topic_arn: "arn".into(),
            chat_topic_arn: None,
            clusters: None,
            timezone: Tz::UTC,
            guard: DEFAULT_GUARD,
            concurrency: DEFAULT_CONCURRENCY,
            require_scan: None,
            scan_wait: DEFAULT_SCAN_WAIT,
            dry_run,
            environment: None,
            registry_accounts: Vec::new(),
            promote_from_accounts: Vec::new(),
            change_calendar: None,
        }
    }

    /// The stack's own account and region: those of its topic, which the stack creates.
    pub fn home(&self) -> Option<Home> {
        Home::of_arn(&self.topic_arn)
    }

    /// Why an event does not count, when it names another account or region than the stack's.
    pub fn foreign(&self, event: &serde_json::Value) -> Option<String> {
        // A central registry's ECR events, an upstream stack's announcements: their accounts
        // count for those events only.
        let also: &[String] = match event["detail-type"].as_str() {
            Some(ECR_IMAGE_ACTION | ECR_IMAGE_SCAN | INSPECTOR2_SCAN) => &self.registry_accounts,
            Some(KNOWN_GOOD_DETAIL_TYPE) => &self.promote_from_accounts,
            _ => &[],
        };
        foreign_but(event, &self.home()?, also)
    }

    pub fn manages_cluster(&self, cluster: &str) -> bool {
        self.clusters
            .as_ref()
            .is_none_or(|clusters| clusters.iter().any(|c| c == cluster))
    }
}

/// `arn:aws:sns:eu-west-1:123456789012:deckhand-chat`: six fields, the service sns.
fn is_topic_arn(value: &str) -> bool {
    let fields: Vec<&str> = value.split(':').collect();
    fields.len() == 6
        && fields[0] == "arn"
        && fields[2] == "sns"
        && fields.iter().all(|f| !f.is_empty())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn names_the_missing_variable() {
        assert_eq!(config(&[]), Err(ConfigError::Missing("DECKHAND_TABLE")));
        assert_eq!(
            config(&[("DECKHAND_TABLE", "t")]),
            Err(ConfigError::Missing("DECKHAND_TOPIC_ARN"))
        );
        assert_eq!(
            config(&[("DECKHAND_TABLE", " "), ("DECKHAND_TOPIC_ARN", "arn")]),
            Err(ConfigError::Missing("DECKHAND_TABLE"))
        );
    }

    #[test]
    fn reads_every_variable() {
        let c = config(&[
            ("DECKHAND_TABLE", "deckhand"),
            (
                "DECKHAND_TOPIC_ARN",
                "arn:aws:sns:eu-west-1:123456789012:deckhand",
            ),
            ("DECKHAND_CLUSTERS", "staging  prod"),
            ("DECKHAND_TIMEZONE", "Europe/London"),
            ("DECKHAND_GUARD", "1h"),
            ("DECKHAND_REQUIRE_SCAN", "high"),
            ("DECKHAND_SCAN_WAIT", "45m"),
            ("DECKHAND_DRY_RUN", "TRUE"),
            ("DECKHAND_REGISTRY_ACCOUNTS", "999999999999"),
            (
                "DECKHAND_PROMOTE_FROM_ACCOUNTS",
                "111111111111, 333333333333",
            ),
            (
                "DECKHAND_CHAT_TOPIC_ARN",
                "arn:aws:sns:eu-west-1:123456789012:deckhand-chat",
            ),
        ])
        .unwrap();
        assert_eq!(
            c.chat_topic_arn.as_deref(),
            Some("arn:aws:sns:eu-west-1:123456789012:deckhand-chat")
        );
        assert_eq!(c.require_scan, Some(FindingSeverity::High));
        assert_eq!(c.scan_wait, TimeDelta::minutes(45));
        assert_eq!(c.clusters, Some(vec!["staging".into(), "prod".into()]));
        assert_eq!(c.guard, TimeDelta::hours(1));
        assert_eq!(c.timezone, Tz::Europe__London);
        assert!(c.dry_run);
        assert!(c.manages_cluster("prod") && !c.manages_cluster("dev"));
        assert_eq!(c.registry_accounts, vec!["999999999999".to_owned()]);
        assert_eq!(
            c.promote_from_accounts,
            vec!["111111111111".to_owned(), "333333333333".to_owned()]
        );

        let named = |value: &str| {
            config(&[
                ("DECKHAND_TABLE", "t"),
                ("DECKHAND_TOPIC_ARN", "a"),
                ("DECKHAND_ENVIRONMENT", value),
            ])
        };
        assert_eq!(
            named(" staging ").unwrap().environment.as_deref(),
            Some("staging")
        );
        assert_eq!(named("").unwrap().environment, None);
        let long = "x".repeat(ENVIRONMENT_MAX + 1);
        assert!(
            matches!(
                named(&long),
                Err(ConfigError::Invalid {
                    name: "DECKHAND_ENVIRONMENT",
                    ..
                })
            ),
            "{:?}",
            named(&long)
        );
        let c = config(&[("DECKHAND_TABLE", "t"), ("DECKHAND_TOPIC_ARN", "a")]).unwrap();
        assert_eq!(c.environment, None);
        assert_eq!(
            (
                c.clusters,
                c.guard,
                c.require_scan,
                c.dry_run,
                c.chat_topic_arn
            ),
            (None, DEFAULT_GUARD, None, false, None)
        );
        assert!(
            Config {
                clusters: None,
                ..config(&[("DECKHAND_TABLE", "t"), ("DECKHAND_TOPIC_ARN", "a")]).unwrap()
            }
            .manages_cluster("any")
        );
    }

    #[test]
    fn other_accounts_count_only_for_their_kind_of_event() {
        let c = config(&[
            ("DECKHAND_TABLE", "t"),
            ("DECKHAND_TOPIC_ARN", "arn:aws:sns:eu-west-1:123456789012:t"),
            ("DECKHAND_REGISTRY_ACCOUNTS", "999999999999"),
            ("DECKHAND_PROMOTE_FROM_ACCOUNTS", "111111111111"),
        ])
        .unwrap();
        let event = |detail_type: &str, account: &str| {
            serde_json::json!({"detail-type": detail_type, "account": account, "region": "eu-west-1",
                "resources": [format!("arn:aws:ecr:eu-west-1:{account}:repository/web")]})
        };
        assert_eq!(c.foreign(&event("ECR Image Action", "999999999999")), None);
        assert_eq!(c.foreign(&event("ECR Image Scan", "999999999999")), None);
        assert!(
            c.foreign(&event("ECR Image Action", "111111111111"))
                .is_some()
        );
        assert_eq!(
            c.foreign(&event("Deckhand Known-Good", "111111111111")),
            None
        );
        assert!(
            c.foreign(&event("Deckhand Known-Good", "999999999999"))
                .is_some()
        );
        assert!(
            c.foreign(&event("ECS Deployment State Change", "999999999999"))
                .is_some()
        );
        assert!(
            c.foreign(&event("ECS Deployment State Change", "111111111111"))
                .is_some()
        );
        assert_eq!(c.foreign(&event("ECR Image Action", "123456789012")), None);
    }

    #[test]
    fn names_the_invalid_variable() {
        let base = [("DECKHAND_TABLE", "t"), ("DECKHAND_TOPIC_ARN", "a")];
        for (name, value) in [
            ("DECKHAND_GUARD", "soon"),
            ("DECKHAND_REQUIRE_SCAN", "SEVERE"),
            ("DECKHAND_REQUIRE_SCAN", "INFORMATIONAL"),
            ("DECKHAND_SCAN_WAIT", "half an hour"),
            ("DECKHAND_DRY_RUN", "maybe"),
            ("DECKHAND_TIMEZONE", "Mars/Olympus"),
            ("DECKHAND_CONCURRENCY", "0"),
            ("DECKHAND_REGISTRY_ACCOUNTS", "registry"),
            ("DECKHAND_PROMOTE_FROM_ACCOUNTS", "111111111111 12345"),
            ("DECKHAND_CHAT_TOPIC_ARN", "deckhand-chat"),
            (
                "DECKHAND_CHAT_TOPIC_ARN",
                "arn:aws:sqs:eu-west-1:123456789012:chat",
            ),
        ] {
            let mut vars = base.to_vec();
            vars.push((name, value));
            match config(&vars) {
                Err(ConfigError::Invalid { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }
}
