//! Property tests of every parser of outside input (the event shapes, the tag grammars,
//! durations, names and ARNs, the environment): whatever arrives, nothing panics and every
//! error names its field; and the laws the grammars promise, such as durations that print
//! back as they were read, and schedules whose next change is the first one.
//!
//! `make test` runs each property with proptest's default number of cases; `make fuzz` runs
//! them with many more (`PROPTEST_CASES`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::config::Config;
use crate::domain::duration::{format_duration, parse_duration};
use crate::domain::image::{Digest, ImageRef};
use crate::domain::policy::{DeployPolicy, parse_version};
use crate::domain::rollback::{AlarmState, RollbackSettings};
use crate::domain::schedule::{AwakeWindows, Schedule, parse_days_off, parse_timezone};
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::settings::{DeploySettings, ScheduleSettings};
use crate::events::alarm::parse_alarm_event;
use crate::events::dead_letter::{DeadLetter, describe_event, read_dead_letter, superseded};
use crate::events::scheduler::parse_scheduler_event;
use crate::events::{EventError, parse_deploy_event};

/// The characters AWS allows in tag values everywhere.
const TAG_CHARS: &str = "[A-Za-z0-9 +\\-=._:/@]{0,48}";

/// Words the parsers look for, so that random input reaches past the first check.
const WORDS: &[&str] = &[
    "ECR Image Action",
    "ECR Image Scan",
    "ECS Deployment State Change",
    "CloudWatch Alarm State Change",
    "Scheduled Event",
    "aws.ecr",
    "aws.ecs",
    "aws.cloudwatch",
    "aws.events",
    "aws.scheduler",
    "PUSH",
    "SUCCESS",
    "ALARM",
    "OK",
    "INSUFFICIENT_DATA",
    "SERVICE_DEPLOYMENT_COMPLETED",
    "SERVICE_DEPLOYMENT_FAILED",
    "SERVICE_DEPLOYMENT_IN_PROGRESS",
    "reconcile",
    "wake",
    "sleep",
    "demo/web",
    "2h",
    "0s",
    "99999999999d",
    "2026-11-23T10:00:00Z",
    "2026-02-30T10:00:00Z",
    "+275760-09-13T00:00:00Z",
    "2026-11-23T10:00:00.000+0000",
    "sha256:ec683470519a35c016846396d820fb3a649b33c827b4bacd85d75b879d6cbb8d",
    "arn:aws:ecs:us-east-1:123456789012:service/demo/web",
    "arn:aws:ecs:us-east-1:123456789012:service/web",
    "arn:aws:cloudwatch:us-east-1:123456789012:alarm:api-5xx",
    "arn:aws:ecr:us-east-1:123456789012:repository/web",
    "",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(WORDS).prop_map(str::to_owned),
        2 => TAG_CHARS,
        2 => any::<String>(),
    ]
}

/// Any JSON value, with object keys that the event shapes use now and then.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text().prop_map(Value::String),
    ];
    let key = prop_oneof![
        prop::sample::select(
            &[
                "version",
                "id",
                "detail-type",
                "source",
                "account",
                "time",
                "region",
                "resources",
                "detail",
                "action-type",
                "result",
                "repository-name",
                "image-digest",
                "image-tag",
                "eventName",
                "deploymentId",
                "updatedAt",
                "reason",
                "alarmName",
                "state",
                "value",
                "timestamp",
                "previousState",
                "configuration",
                "metrics",
                "alarmData",
                "Records",
                "Sns",
                "Message",
                "NewStateValue",
                "StateChangeTime",
                "Trigger",
                "Dimensions",
                "action",
                "at",
                "dryRun",
                "service",
                "for",
                "until",
                "scan-status",
                "finding-severity-counts",
            ][..]
        )
        .prop_map(str::to_owned),
        any::<String>(),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// The sample events and the payloads of the corpus as AWS sends them, read once.
fn samples() -> &'static [Value] {
    static SAMPLES: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    SAMPLES.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        paths.sort();
        let mut samples: Vec<Value> = paths
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter_map(|text| serde_json::from_str(&text).ok())
            .collect();
        // Every event of the corpus (its one manifest is not an event).
        samples.extend(
            crate::fixtures::ALL
                .iter()
                .filter(|(name, _)| *name != "ecr-image-index-manifest")
                .map(|(name, _)| crate::fixtures::aws(name)),
        );
        assert!(
            samples.len() >= 12,
            "the sample events in {}",
            dir.display()
        );
        samples
    })
}

/// One change to a JSON document: the node at a pre-order position is removed (from its
/// object or array), replaced, or, if it is a string holding JSON, changed inside.
#[derive(Clone, Debug)]
enum Mutation {
    Remove(usize),
    Replace(usize, Value),
    /// A string that holds JSON (an SNS message) parsed, changed and written back.
    Inner(usize, Box<Mutation>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let outer = prop_oneof![
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), json()).prop_map(|(at, v)| Mutation::Replace(at, v)),
    ];
    outer.prop_recursive(2, 4, 1, |inner| {
        (any::<usize>(), inner).prop_map(|(at, m)| Mutation::Inner(at, Box::new(m)))
    })
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Applies `mutation` to the node at `target` (pre-order, counting from `*seen`). Returns
/// whether it was applied.
fn apply(value: &mut Value, target: usize, seen: &mut usize, mutation: &Mutation) -> bool {
    let children: Vec<String> = match value {
        Value::Object(map) => map.keys().cloned().collect(),
        Value::Array(items) => (0..items.len()).map(|i| i.to_string()).collect(),
        _ => Vec::new(),
    };
    for child in children {
        *seen += 1;
        let here = *seen == target;
        let node = match value {
            Value::Object(map) => map.get_mut(&child),
            Value::Array(items) => child.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        };
        let Some(node) = node else { continue };
        if here {
            match mutation {
                Mutation::Remove(_) => match value {
                    Value::Object(map) => {
                        map.remove(&child);
                    }
                    Value::Array(items) => {
                        if let Ok(i) = child.parse::<usize>() {
                            items.remove(i);
                        }
                    }
                    _ => {}
                },
                Mutation::Replace(_, new) => *node = new.clone(),
                Mutation::Inner(_, inner) => {
                    if let Some(mut parsed) = node
                        .as_str()
                        .and_then(|s| serde_json::from_str::<Value>(s).ok())
                    {
                        mutate(&mut parsed, inner);
                        *node = Value::String(parsed.to_string());
                    }
                }
            }
            return true;
        }
        if apply(node, target, seen, mutation) {
            return true;
        }
    }
    false
}

fn mutate(value: &mut Value, mutation: &Mutation) {
    let at = match mutation {
        Mutation::Remove(at) | Mutation::Replace(at, _) | Mutation::Inner(at, _) => *at,
    };
    let nodes = count_nodes(value);
    // Position 0 is the document itself.
    let target = at % nodes;
    if target == 0 {
        if let Mutation::Replace(_, new) = mutation {
            *value = new.clone();
        }
        return;
    }
    apply(value, target, &mut 0, mutation);
}

/// Every function's parser on one payload: no panic, and an error names a field.
fn parse_everywhere(event: &Value) -> Result<(), TestCaseError> {
    let named = |e: EventError| -> Result<(), TestCaseError> {
        prop_assert!(!e.field.is_empty(), "error without a field: {e:?}");
        Ok(())
    };
    if let Err(e) = parse_deploy_event(event) {
        named(e)?;
    }
    if let Err(e) = parse_alarm_event(event) {
        named(e)?;
    }
    if let Err(e) = parse_scheduler_event(event) {
        named(e)?;
    }
    // As a message of the failure queue: the whole of it as a body, and its own body and
    // attributes if it has them.
    if let Err(e) = read_dead_letter(&event.to_string(), &BTreeMap::new()) {
        named(e)?;
    }
    match as_queue_message(event) {
        Some(Ok(letter)) => {
            let _ = superseded(&letter);
            let _ = describe_event(&letter.event);
        }
        Some(Err(e)) => named(e)?,
        None => {}
    }
    Ok(())
}

/// A message of the failure queue as ReceiveMessage returns it (`Body`, `MessageAttributes`),
/// read; `None` for what is not one.
fn as_queue_message(message: &Value) -> Option<Result<DeadLetter, EventError>> {
    let body = message.get("Body")?.as_str()?;
    let attributes = message
        .get("MessageAttributes")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.get("StringValue")?.as_str()?.to_owned())))
        .collect();
    Some(read_dead_letter(body, &attributes))
}

fn tz() -> impl Strategy<Value = Tz> {
    // Zones with daylight saving north and south, half-hour and 45-minute offsets, a
    // 30-minute DST shift, and a zone that dropped DST.
    prop::sample::select(
        &[
            Tz::UTC,
            Tz::Europe__London,
            Tz::Europe__Berlin,
            Tz::America__New_York,
            Tz::America__Sao_Paulo,
            Tz::Australia__Sydney,
            Tz::Australia__Lord_Howe,
            Tz::Asia__Kathmandu,
            Tz::Pacific__Chatham,
            Tz::Asia__Tehran,
        ][..],
    )
}

/// `deckhand:awake` values near the grammar: day sets, times (some out of range), windows
/// joined by ` + `.
fn awake_value() -> impl Strategy<Value = String> {
    let days = prop_oneof![
        prop::sample::select(
            &[
                "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "daily", "Mon-Fri", "Fri-Mon",
                "Sat-Sun", "Sun-Sat", "mon", "Monday", "Mon-", "-Fri", ""
            ][..]
        )
        .prop_map(str::to_owned),
        TAG_CHARS,
    ];
    let time = prop_oneof![
        (0u32..=25, 0u32..=61).prop_map(|(h, m)| format!("{h:02}:{m:02}")),
        (0u32..=9, 0u32..=59).prop_map(|(h, m)| format!("{h}:{m:02}")),
        Just("24:00".to_owned()),
        TAG_CHARS,
    ];
    let window = (days, time.clone(), time).prop_map(|(d, a, b)| format!("{d} {a}-{b}"));
    prop::collection::vec(window, 1..4).prop_map(|w| w.join(" + "))
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 2000 to 2100: the zones' rules change over the years.
    (946_684_800i64..4_102_444_800)
        .prop_map(|s| Utc.timestamp_opt(s, 0).single().unwrap_or_default())
}

fn days_off() -> impl Strategy<Value = std::collections::BTreeSet<NaiveDate>> {
    prop::collection::btree_set(
        (2000i32..2100, 1u32..=12, 1u32..=28)
            .prop_filter_map("a date", |(y, m, d)| NaiveDate::from_ymd_opt(y, m, d)),
        0..4,
    )
}

proptest! {
    #[test]
    fn any_json_is_parsed_or_refused_by_field(event in json()) {
        parse_everywhere(&event)?;
    }

    #[test]
    fn changed_sample_events_are_parsed_or_refused_by_field(
        sample in 0usize..64,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let samples = samples();
        let mut event = samples[sample % samples.len()].clone();
        for m in &mutations {
            mutate(&mut event, m);
        }
        parse_everywhere(&event)?;
    }

    #[test]
    fn any_text_in_a_tag_or_name_is_read_or_refused(value in text()) {
        let _ = DeployPolicy::parse(&value);
        let _ = AwakeWindows::parse(&value);
        let _ = parse_days_off(&value);
        let _ = parse_timezone(&value);
        let _ = parse_duration(&value);
        let _ = parse_version(&value);
        let _ = AlarmState::parse(&value);
        let _ = ServiceKey::from_arn(&value);
        let _ = ServiceKey::from_str(&value);
        let _ = Digest::from_str(&value);
        let _ = revision_name(&value);
        if let Some(image) = ImageRef::parse(&value) {
            let _ = image.ecr_registry();
        }
    }

    #[test]
    fn tags_of_any_value_give_settings_or_problems_naming_the_tag(
        tags in prop::collection::btree_map(
            prop::sample::select(&[
                "deckhand:deploy", "deckhand:containers", "deckhand:guard", "deckhand:awake",
                "deckhand:timezone", "deckhand:asleep-on", "deckhand:asleep-count",
                "deckhand:rollback", "deckhand:alarms", "deckhand:keep-revisions", "deckhand:dry-run",
                "team",
            ][..]).prop_map(str::to_owned),
            prop_oneof![text(), awake_value()],
            0..8,
        ),
        zone in tz(),
    ) {
        let tags: BTreeMap<String, String> = tags;
        if let Err(problems) = DeploySettings::from_tags(&tags, TimeDelta::minutes(30)) {
            for p in problems {
                prop_assert!(tags.contains_key(&p.tag), "{p:?}");
            }
        }
        if let Err(problems) = ScheduleSettings::from_tags(&tags, zone) {
            for p in problems {
                prop_assert!(tags.contains_key(&p.tag), "{p:?}");
            }
        }
        if let Err(p) = RollbackSettings::from_tags(&tags) {
            prop_assert!(tags.contains_key(&p.tag), "{p:?}");
        }
    }

    #[test]
    fn a_policy_decides_any_pushed_tag_against_any_running_version(
        policy in prop_oneof![
            prop::collection::vec(prop::sample::select(&[
                "any", "tag=main", "prefix=main-", "prefix=", "semver", "semver=major",
                "semver=minor", "semver=patch", "off", "semver=", "tag=",
            ][..]), 1..4).prop_map(|w| w.join(" ")),
            TAG_CHARS,
        ],
        pushed in prop::option::of(prop_oneof![
            text(),
            (0u64..3, 0u64..3, 0u64..3, prop::option::of("[a-z0-9.]{1,6}")).prop_map(|(a, b, c, pre)| {
                match pre {
                    Some(pre) => format!("v{a}.{b}.{c}-{pre}"),
                    None => format!("{a}.{b}.{c}"),
                }
            }),
        ]),
        running in prop::option::of((0u64..3, 0u64..3, 0u64..3)),
    ) {
        if let Ok(policy) = DeployPolicy::parse(&policy) {
            let running = running.map(|(a, b, c)| semver::Version::new(a, b, c));
            let _ = policy.check(pushed.as_deref(), running.as_ref());
            // What a policy prints reads back as the same policy.
            prop_assert_eq!(DeployPolicy::parse(&policy.to_string()), Ok(policy));
        }
    }

    #[test]
    fn durations_read_back_as_they_print(n in 0i64..=400_000_000, unit in prop::sample::select(&["s", "m", "h", "d"][..])) {
        let seconds = n.checked_mul(match unit { "s" => 1, "m" => 60, "h" => 3_600, _ => 86_400 });
        let text = format!("{n}{unit}");
        match parse_duration(&text) {
            Ok(d) => {
                prop_assert_eq!(Some(d.num_seconds()), seconds);
                prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
            }
            Err(_) => prop_assert!(seconds.is_none_or(|s| s > 10 * 366 * 86_400)),
        }
    }

    #[test]
    fn the_environment_gives_a_config_or_an_error_naming_the_variable(
        values in prop::collection::btree_map(
            prop::sample::select(&[
                "DECKHAND_TABLE", "DECKHAND_TOPIC_ARN", "DECKHAND_CLUSTERS", "DECKHAND_TIMEZONE",
                "DECKHAND_GUARD", "DECKHAND_REQUIRE_SCAN", "DECKHAND_DRY_RUN",
                "DECKHAND_CONCURRENCY",
            ][..]),
            text(),
            0..8,
        ),
    ) {
        // Values are read trimmed; a blank one counts as unset.
        let given = |name: &str| values.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        match Config::from_lookup(|name| values.get(name).cloned()) {
            Ok(_) => {}
            Err(crate::config::ConfigError::Missing(name)) => prop_assert_eq!(given(name), None),
            Err(crate::config::ConfigError::Invalid { name, value, .. }) => {
                prop_assert_eq!(given(name), Some(value.as_str()));
            }
        }
    }

    /// The schedule laws: the next change is a change, and nothing changes before it; the
    /// next wake is awake. Across zones with daylight saving, at any instant of a century.
    #[test]
    fn a_schedules_next_change_is_the_first_change(
        awake in awake_value(),
        zone in tz(),
        days_off in days_off(),
        at in instant(),
        probes in prop::collection::vec(0.0f64..1.0, 8),
    ) {
        let Ok(awake) = AwakeWindows::parse(&awake) else { return Ok(()) };
        let schedule = Schedule { awake, timezone: zone, days_off };
        let now_awake = schedule.is_awake(at);
        let _ = schedule.explain(at);
        let until = match schedule.next_change(at) {
            Some(change) => {
                prop_assert!(change > at);
                prop_assert_ne!(schedule.is_awake(change), now_awake, "{} at {}", schedule.awake, change);
                change
            }
            // No change within the horizon: none in the next weeks either.
            None => at + TimeDelta::days(30),
        };
        let span = (until - at).num_seconds();
        for p in probes {
            let probe = at + TimeDelta::seconds(((span - 1) as f64 * p) as i64);
            prop_assert_eq!(
                schedule.is_awake(probe), now_awake,
                "{} in {}: changes at {} before its next change {}", schedule.awake, zone, probe, until
            );
        }
        if let Some(wake) = schedule.next_wake(at) {
            prop_assert!(wake > at && schedule.is_awake(wake));
        }
    }
}

#[test]
fn the_sample_events_parse() {
    for sample in samples() {
        let parsed = parse_deploy_event(sample).is_ok()
            || parse_alarm_event(sample).is_ok()
            || parse_scheduler_event(sample).is_ok()
            || as_queue_message(sample).is_some_and(|m| m.is_ok());
        assert!(parsed, "{sample}");
    }
    // The SNS sample holds the alarm as a JSON string: the mutations reach inside it.
    let sns = samples()
        .iter()
        .find(|s| s.pointer("/Records/0/Sns/Message").is_some())
        .cloned();
    let mut sns = sns.expect("an SNS sample");
    let before = sns.clone();
    let position = (1..count_nodes(&sns))
        .find(|&at| {
            let mut probe = sns.clone();
            let inner = Mutation::Inner(at, Box::new(Mutation::Remove(1)));
            mutate(&mut probe, &inner);
            probe != sns
        })
        .expect("a position holding JSON");
    mutate(
        &mut sns,
        &Mutation::Inner(position, Box::new(Mutation::Remove(1))),
    );
    assert_ne!(sns, before);
}
