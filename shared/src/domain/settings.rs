//! What a service's `deckhand:*` tags ask for.

use std::collections::BTreeMap;
use std::fmt;

use chrono::TimeDelta;

use chrono_tz::Tz;

use super::duration::parse_duration;
use super::policy::DeployPolicy;
use super::schedule::{AwakeWindows, Schedule, parse_days_off, parse_timezone};

pub const TAG_DEPLOY: &str = "deckhand:deploy";
pub const TAG_CONTAINERS: &str = "deckhand:containers";
pub const TAG_GUARD: &str = "deckhand:guard";
pub const TAG_AWAKE: &str = "deckhand:awake";
pub const TAG_TIMEZONE: &str = "deckhand:timezone";
pub const TAG_ASLEEP_ON: &str = "deckhand:asleep-on";
pub const TAG_ASLEEP_COUNT: &str = "deckhand:asleep-count";
pub const TAG_ROLLBACK: &str = "deckhand:rollback";
pub const TAG_ALARMS: &str = "deckhand:alarms";
pub const TAG_KEEP_REVISIONS: &str = "deckhand:keep-revisions";
pub const TAG_DRY_RUN: &str = "deckhand:dry-run";

/// The service's own `deckhand:dry-run`: `Some(true)` rehearses its deploys and rollbacks while
/// the rest of the stack acts, `Some(false)` acts even in a stack in dry run, `None` follows
/// the stack.
pub fn dry_run_of(tags: &Tags) -> Result<Option<bool>, TagProblem> {
    match tags.get(TAG_DRY_RUN).map(|v| v.trim()) {
        None => Ok(None),
        Some("on") => Ok(Some(true)),
        Some("off") => Ok(Some(false)),
        Some(other) => Err(TagProblem {
            tag: TAG_DRY_RUN.into(),
            value: other.into(),
            message: "expected on or off".into(),
        }),
    }
}

/// The fewest revisions the tag may keep: the one running and one to go back to.
pub const MIN_KEEP_REVISIONS: usize = 2;

pub fn parse_keep_revisions(text: &str) -> Result<usize, String> {
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= MIN_KEEP_REVISIONS)
        .ok_or_else(|| {
            format!("`{text}` is not a whole number of revisions ({MIN_KEEP_REVISIONS} or more)")
        })
}

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
    /// Revisions of the family to keep once a deployment completes; `None`: keep all.
    pub keep_revisions: Option<usize>,
    /// The service's own `deckhand:dry-run` (`dry_run_of`).
    pub dry_run: Option<bool>,
}

impl DeploySettings {
    /// The guard window the service's tags give; the default when they give none or do not
    /// parse (a tag problem is reported by pushes, and deployments are still followed).
    pub fn guard_in(tags: &Tags, default_guard: TimeDelta) -> TimeDelta {
        Self::from_tags(tags, default_guard)
            .ok()
            .flatten()
            .map_or(default_guard, |s| s.guard)
    }

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
        let keep_revisions = tags.get(TAG_KEEP_REVISIONS).and_then(|value| {
            parse_keep_revisions(value)
                .map_err(|message| problems.push(problem(TAG_KEEP_REVISIONS, value, message)))
                .ok()
        });
        let dry_run = dry_run_of(tags)
            .map_err(|p| problems.push(p))
            .ok()
            .flatten();
        match (policy, guard) {
            (Some(policy), Some(guard)) if problems.is_empty() => Ok(Some(Self {
                policy,
                containers,
                guard,
                keep_revisions,
                dry_run,
            })),
            _ => Err(problems),
        }
    }
}

/// The value of a parsed tag, or `None` with the problem noted.
fn checked<T>(
    problems: &mut Vec<TagProblem>,
    tag: &str,
    value: &str,
    result: Result<T, String>,
) -> Option<T> {
    result
        .map_err(|message| {
            problems.push(TagProblem {
                tag: tag.to_owned(),
                value: value.to_owned(),
                message,
            })
        })
        .ok()
}

/// Everything the scheduler reads from a service's tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleSettings {
    pub schedule: Schedule,
    /// Desired count (and autoscaling min and max) while asleep.
    pub asleep_count: i32,
}

impl ScheduleSettings {
    /// `Ok(None)` when the service has no `deckhand:awake` tag.
    pub fn from_tags(tags: &Tags, default_timezone: Tz) -> Result<Option<Self>, Vec<TagProblem>> {
        let Some(awake_text) = tags.get(TAG_AWAKE) else {
            return Ok(None);
        };
        let mut problems = Vec::new();
        let awake = checked(
            &mut problems,
            TAG_AWAKE,
            awake_text,
            AwakeWindows::parse(awake_text).map_err(|e| e.to_string()),
        );
        let timezone = match tags.get(TAG_TIMEZONE) {
            None => Some(default_timezone),
            Some(v) => checked(
                &mut problems,
                TAG_TIMEZONE,
                v,
                parse_timezone(v).map_err(|e| e.to_string()),
            ),
        };
        let days_off = match tags.get(TAG_ASLEEP_ON) {
            None => Some(Default::default()),
            Some(v) => checked(
                &mut problems,
                TAG_ASLEEP_ON,
                v,
                parse_days_off(v).map_err(|e| e.to_string()),
            ),
        };
        let asleep_count = match tags.get(TAG_ASLEEP_COUNT) {
            None => Some(0),
            Some(v) => checked(
                &mut problems,
                TAG_ASLEEP_COUNT,
                v,
                v.trim()
                    .parse::<i32>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| format!("`{v}` is not a whole number of tasks (0 or more)")),
            ),
        };
        match (awake, timezone, days_off, asleep_count) {
            (Some(awake), Some(timezone), Some(days_off), Some(asleep_count)) => Ok(Some(Self {
                schedule: Schedule {
                    awake,
                    timezone,
                    days_off,
                },
                asleep_count,
            })),
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_revisions_is_a_whole_number_of_two_or_more() {
        assert_eq!(parse_keep_revisions("3"), Ok(3));
        assert_eq!(parse_keep_revisions(" 2 "), Ok(2));
        for bad in ["1", "0", "-3", "two", "", "2.5", "99999999999999999999999"] {
            let message = parse_keep_revisions(bad).unwrap_err();
            assert!(message.contains("2 or more"), "{bad}: {message}");
        }
    }

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
            ("deckhand:keep-revisions", "5"),
        ]);
        let s = DeploySettings::from_tags(&t, TimeDelta::minutes(30))
            .unwrap()
            .unwrap();
        assert_eq!(s.policy.to_string(), "prefix=main-");
        assert_eq!(s.keep_revisions, Some(5));
        assert_eq!(s.containers, Some(vec!["web".into(), "sidecar".into()]));
        assert_eq!(s.guard, TimeDelta::hours(2));

        let t = tags(&[("deckhand:deploy", "any")]);
        let s = DeploySettings::from_tags(&t, TimeDelta::minutes(30))
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.containers, s.guard, s.keep_revisions),
            (None, TimeDelta::minutes(30), None)
        );
    }

    #[test]
    fn reads_the_schedule_tags() {
        let t = tags(&[
            ("deckhand:awake", "Mon-Fri 07:00-19:00"),
            ("deckhand:timezone", "Europe/London"),
            ("deckhand:asleep-on", "2026-12-25 2026-12-26"),
            ("deckhand:asleep-count", "1"),
        ]);
        let s = ScheduleSettings::from_tags(&t, Tz::UTC).unwrap().unwrap();
        assert_eq!(s.schedule.timezone, Tz::Europe__London);
        assert_eq!(s.schedule.days_off.len(), 2);
        assert_eq!(s.asleep_count, 1);
        let t = tags(&[("deckhand:awake", "daily 08:00-18:00")]);
        let s = ScheduleSettings::from_tags(&t, Tz::America__New_York)
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.schedule.timezone, s.asleep_count),
            (Tz::America__New_York, 0)
        );
        assert_eq!(ScheduleSettings::from_tags(&tags(&[]), Tz::UTC), Ok(None));
    }

    #[test]
    fn reports_every_invalid_schedule_tag_by_name() {
        let t = tags(&[
            ("deckhand:awake", "weekdays 9-5"),
            ("deckhand:timezone", "London"),
            ("deckhand:asleep-on", "Christmas"),
            ("deckhand:asleep-count", "-1"),
        ]);
        let problems = ScheduleSettings::from_tags(&t, Tz::UTC).unwrap_err();
        let names: Vec<&str> = problems.iter().map(|p| p.tag.as_str()).collect();
        assert_eq!(
            names,
            [
                "deckhand:awake",
                "deckhand:timezone",
                "deckhand:asleep-on",
                "deckhand:asleep-count"
            ]
        );
    }

    #[test]
    fn reports_every_invalid_tag_by_name() {
        let t = tags(&[
            ("deckhand:deploy", "main-*"),
            ("deckhand:containers", " "),
            ("deckhand:guard", "soon"),
            ("deckhand:keep-revisions", "1"),
        ]);
        let problems = DeploySettings::from_tags(&t, TimeDelta::minutes(30)).unwrap_err();
        let names: Vec<&str> = problems.iter().map(|p| p.tag.as_str()).collect();
        assert_eq!(
            names,
            [
                "deckhand:deploy",
                "deckhand:containers",
                "deckhand:guard",
                "deckhand:keep-revisions"
            ]
        );
        assert!(
            problems[0]
                .to_string()
                .starts_with("deckhand:deploy = \"main-*\": `main-*` is not a rule")
        );
    }
}
