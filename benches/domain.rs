//! Micro-benchmarks of the pure parts on every invocation's path: parsing the events,
//! matching a push against a deploy policy, and evaluating schedules.

// A benchmark of fixed inputs: a failed expect is a broken benchmark, with its message.
#![allow(clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use criterion::{Criterion, criterion_group, criterion_main};
use deckhand::domain::policy::{DeployPolicy, parse_version};
use deckhand::domain::settings::ScheduleSettings;
use deckhand::domain::sleep::{Observed, decide_scale};
use deckhand::domain::state::ServiceState;
use deckhand::events::alarm::parse_alarm_event;
use deckhand::events::parse_deploy_event;
use deckhand::events::scheduler::parse_scheduler_event;
use serde_json::Value;

fn sample(text: &str) -> Value {
    serde_json::from_str(text).expect("a sample event")
}

fn parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    // From the JSON text, as the runtime hands it over, to the domain type.
    let deploy_events = [
        ("ecr-push", include_str!("../events/ecr-push.json")),
        (
            "ecs-deployment-completed",
            include_str!("../events/ecs-deployment-completed.json"),
        ),
    ];
    for (name, text) in deploy_events {
        group.bench_function(name, |b| {
            b.iter(|| parse_deploy_event(&sample(black_box(text))).expect("parses"))
        });
    }
    let alarms = [
        (
            "alarm-eventbridge",
            include_str!("../events/alarm-eventbridge.json"),
        ),
        ("alarm-direct", include_str!("../events/alarm-direct.json")),
        ("alarm-sns", include_str!("../events/alarm-sns.json")),
    ];
    for (name, text) in alarms {
        group.bench_function(name, |b| {
            b.iter(|| parse_alarm_event(&sample(black_box(text))).expect("parses"))
        });
    }
    let reconcile = include_str!("../events/schedule-reconcile.json");
    group.bench_function("schedule-reconcile", |b| {
        b.iter(|| parse_scheduler_event(&sample(black_box(reconcile))).expect("parses"))
    });
    group.finish();
}

fn policies(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy");
    let running = parse_version("v1.4.2");
    group.bench_function("semver=minor, parse and check", |b| {
        b.iter(|| {
            let policy = DeployPolicy::parse(black_box("semver=minor")).expect("parses");
            policy.check(Some(black_box("v1.5.0")), running.as_ref())
        })
    });
    let policy = DeployPolicy::parse("tag=release prefix=main- semver=patch").expect("parses");
    group.bench_function("three alternatives, check", |b| {
        b.iter(|| policy.check(Some(black_box("main-4711")), running.as_ref()))
    });
    group.finish();
}

fn schedules(c: &mut Criterion) {
    let mut group = c.benchmark_group("schedule");
    let tags: BTreeMap<String, String> = [
        ("deckhand:awake", "Mon-Fri 07:00-19:00 + Sat 09:00-13:00"),
        ("deckhand:timezone", "Europe/London"),
        ("deckhand:asleep-on", "2026-12-25 2026-12-26 2027-01-01"),
        ("deckhand:asleep-count", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    group.bench_function("settings from tags", |b| {
        b.iter(|| ScheduleSettings::from_tags(black_box(&tags), Tz::UTC))
    });
    let settings = ScheduleSettings::from_tags(&tags, Tz::UTC)
        .expect("valid tags")
        .expect("a schedule");
    // The Friday before the clocks go back in London, at night.
    let at = Utc
        .with_ymd_and_hms(2026, 10, 23, 22, 0, 0)
        .single()
        .expect("a time");
    group.bench_function("is awake", |b| {
        b.iter(|| settings.schedule.is_awake(black_box(at)))
    });
    group.bench_function("next change, across the clock change", |b| {
        b.iter(|| settings.schedule.next_change(black_box(at)))
    });
    let observed = Observed {
        desired_count: 3,
        scalable: None,
        pair_moving: None,
    };
    let state = ServiceState::default();
    group.bench_function("decide one service", |b| {
        b.iter(|| decide_scale(Some(&settings), black_box(&observed), &state, at, false))
    });
    group.finish();
}

criterion_group!(benches, parsing, policies, schedules);
criterion_main!(benches);
