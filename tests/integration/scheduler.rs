//! The scheduler through the real SDK against moto server: sleep and wake with Application
//! Auto Scaling, hand changes, overrides, sleep-aware deploys, and a fleet of 1,000 services.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use deckhand::adapters::memory::FixedClock;
use deckhand::app::deploy::DeployFunction;
use deckhand::app::scheduler::SchedulerFunction;
use deckhand::ports::StateStore as _;
use deckhand::report::{Action, Outcome, Summary};
use futures::{StreamExt, stream};
use serde_json::{Value, json};

use crate::harness::{Role, Stack, sample_event};

/// Office hours in London, which is on GMT in November: local time is UTC.
const OFFICE: &[(&str, &str)] = &[
    ("deckhand:awake", "Mon-Fri 07:00-19:00"),
    ("deckhand:timezone", "Europe/London"),
];
const NIGHT: &str = "2026-11-23T22:00:00Z";
const MORNING: &str = "2026-11-24T07:00:00Z";

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn reconcile_at(at: &str) -> Value {
    json!({"action": "reconcile", "at": at})
}

struct Scheduled {
    stack: Stack,
    clock: Arc<FixedClock>,
    scheduler: SchedulerFunction,
}

impl Scheduled {
    async fn new() -> Self {
        let stack = Stack::new().await;
        let clock = Arc::new(FixedClock::new(utc(NIGHT)));
        let scheduler =
            SchedulerFunction::new(stack.ports(Role::Scheduler, clock.clone()), stack.config());
        Self {
            stack,
            clock,
            scheduler,
        }
    }

    async fn service(&self, name: &str, tags: &[(&str, &str)]) {
        let td = self
            .stack
            .simple_task_definition(&format!("{name}-{}", self.stack.id), "main-1")
            .await;
        self.stack.create_service(name, &td, tags).await;
    }

    /// `api` on office hours, autoscaled between `min` and `max`, put to sleep at night.
    async fn asleep_api(min: i32, max: i32) -> Self {
        let s = Self::new().await;
        s.service("api", OFFICE).await;
        s.stack.autoscale("api", min, max).await;
        s.reconcile(NIGHT).await;
        s
    }

    async fn state(&self, service: &str) -> deckhand::domain::state::ServiceState {
        let key = self.stack.service_key(service);
        self.stack.store().load(&key).await.unwrap()
    }

    async fn reconcile(&self, at: &str) -> Summary {
        self.clock.set(utc(at));
        self.scheduler.handle(&reconcile_at(at)).await.unwrap()
    }

    async fn actions(&self, service: &str) -> Vec<Action> {
        let store = self.stack.store();
        let mut history = store
            .history(&self.stack.service_key(service), 100)
            .await
            .unwrap();
        history.reverse();
        history.into_iter().map(|r| r.action).collect()
    }
}

#[tokio::test]
async fn sleep_then_wake_restores_desired_count_and_autoscaling_exactly() {
    let s = Scheduled::new().await;
    s.service("api", OFFICE).await;
    s.stack.autoscale("api", 2, 6).await;
    s.stack.set_desired_count("api", 4).await;
    s.service("plain", &[("team", "a")]).await;

    let night = s.reconcile(NIGHT).await;
    assert_eq!(night.outcome, Outcome::Asleep, "{night:?}");
    assert_eq!(
        night.services.len(),
        1,
        "only the scheduled service: {night:?}"
    );
    assert_eq!(s.stack.desired_count("api").await, 0);
    assert_eq!(s.stack.capacity("api").await, Some((0, 0)));
    assert_eq!(s.stack.desired_count("plain").await, 2);

    let morning = s.reconcile(MORNING).await;
    assert_eq!(morning.outcome, Outcome::Awake, "{morning:?}");
    assert_eq!(s.stack.desired_count("api").await, 4);
    assert_eq!(s.stack.capacity("api").await, Some((2, 6)));
    assert_eq!(s.actions("api").await, [Action::Asleep, Action::Awake]);

    let notifications = s.stack.notifications();
    let kinds: Vec<&str> = notifications
        .iter()
        .map(|(_, body, _)| body["kind"].as_str().unwrap())
        .collect();
    // One summary a reconcile; what was saved and restored is in the history.
    assert_eq!(kinds, ["scale.summary", "scale.summary"]);
    let (subject, awake, attributes) = &notifications[1];
    assert!(subject.starts_with("deckhand scale.summary "), "{subject}");
    assert_eq!(awake["schema"], "deckhand.notification/1");
    assert_eq!(awake["service"], "*");
    let api = s.stack.service_key("api").to_string();
    assert_eq!(
        awake["details"]["woken"]["services"],
        serde_json::json!([api])
    );
    assert_eq!(awake["details"]["woken"]["count"], 1);
    assert_eq!(awake["details"]["taskHoursSaved"], 36.0);
    assert_eq!(attributes["kind"]["Value"], "scale.summary");
    let asleep = &notifications[0].1;
    assert_eq!(
        asleep["details"]["asleep"]["services"],
        serde_json::json!([api])
    );
}

/// A business-hours scheduled action on the scalable target: a plan names it, the sleep
/// suspends scheduled scaling (keeping the dynamic scaling that was suspended before), and the
/// wake restores the target's `SuspendedState` exactly.
#[tokio::test]
async fn sleep_suspends_scheduled_scaling_and_wake_restores_it_and_a_plan_says_so() {
    use aws_sdk_applicationautoscaling::types::{
        ScalableDimension, ServiceNamespace, SuspendedState,
    };
    let s = Scheduled::new().await;
    s.service("api", OFFICE).await;
    let autoscaling = aws_sdk_applicationautoscaling::Client::new(&s.stack.sdk);
    let resource = format!("service/{}/api", s.stack.cluster);
    autoscaling
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .resource_id(&resource)
        .min_capacity(2)
        .max_capacity(6)
        .suspended_state(
            SuspendedState::builder()
                .dynamic_scaling_in_suspended(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    s.stack
        .schedule_scaling("api", "business-hours", "cron(0 5 ? * MON-FRI *)", 2)
        .await;
    let suspended = || async {
        let out = autoscaling
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_ids(&resource)
            .send()
            .await
            .unwrap();
        let target = &out.scalable_targets()[0];
        let state = target.suspended_state().unwrap();
        (
            (target.min_capacity(), target.max_capacity()),
            state.dynamic_scaling_in_suspended(),
            state.dynamic_scaling_out_suspended(),
            state.scheduled_scaling_suspended(),
        )
    };

    s.clock.set(utc(NIGHT));
    let plan = s
        .scheduler
        .handle(&json!({"action": "reconcile", "at": NIGHT, "dryRun": true}))
        .await
        .unwrap();
    assert!(plan.dry_run, "{plan:?}");
    assert!(
        plan.services[0].reason.contains(
            "scheduled scaling business-hours (cron(0 5 ? * MON-FRI *)) is suspended while \
             deckhand keeps it asleep"
        ),
        "{plan:?}"
    );
    assert_eq!(
        suspended().await,
        ((2, 6), Some(true), None, None),
        "a plan changes nothing"
    );

    let night = s.reconcile(NIGHT).await;
    assert_eq!(night.outcome, Outcome::Asleep, "{night:?}");
    assert_eq!(
        suspended().await,
        ((0, 0), Some(true), Some(false), Some(true))
    );
    let saved = s.state("api").await.sleep.unwrap().scalable.unwrap();
    assert!(
        saved.suspended.dynamic_in && !saved.suspended.scheduled,
        "{saved:?}"
    );

    let morning = s.reconcile(MORNING).await;
    assert_eq!(morning.outcome, Outcome::Awake, "{morning:?}");
    assert_eq!(
        suspended().await,
        ((2, 6), Some(true), Some(false), Some(false))
    );
    assert_eq!(s.stack.desired_count("api").await, 2);
}

#[tokio::test]
async fn a_second_reconcile_is_a_no_op() {
    let s = Scheduled::asleep_api(1, 3).await;
    let again = s.reconcile("2026-11-23T22:05:00Z").await;
    assert_eq!(again.outcome, Outcome::Unchanged, "{again:?}");
    assert_eq!(s.stack.desired_count("api").await, 0);
    assert_eq!(s.stack.capacity("api").await, Some((0, 0)));
    assert_eq!(s.actions("api").await, [Action::Asleep]);
    assert_eq!(
        s.stack.notification_kinds(),
        ["scale.summary"],
        "nothing new to tell"
    );
    let state = s.state("api").await;
    assert_eq!(state.sleep.map(|z| z.desired_count), Some(2));
}

#[tokio::test]
async fn a_service_scaled_by_hand_while_asleep_is_left_alone() {
    let s = Scheduled::new().await;
    s.service("api", OFFICE).await;
    s.reconcile(NIGHT).await;
    s.stack.set_desired_count("api", 1).await;

    let left = s.reconcile("2026-11-23T23:00:00Z").await;
    assert_eq!(left.services[0].action, Action::Skipped, "{left:?}");
    assert!(
        left.services[0].reason.contains("scaled by hand"),
        "{left:?}"
    );
    assert_eq!(s.stack.desired_count("api").await, 1);
    let state = s.state("api").await;
    assert_eq!(state.sleep, None);
    assert_eq!(state.left_alone_until, Some(utc(MORNING)));
    assert!(s.stack.store().sleeping().await.unwrap().is_empty());

    assert_eq!(s.reconcile(MORNING).await.outcome, Outcome::Unchanged);
    assert_eq!(
        s.stack.desired_count("api").await,
        1,
        "not woken over the person's choice"
    );
    assert_eq!(
        s.stack.notification_kinds(),
        ["scale.summary", "scale.summary"]
    );
}

#[tokio::test]
async fn a_wake_override_survives_reconciles_until_it_expires_then_sleeps() {
    let s = Scheduled::asleep_api(2, 4).await;

    s.clock.set(utc("2026-11-23T22:30:00Z"));
    let mut wake = sample_event("schedule-wake");
    wake["service"] = json!(s.stack.service_key("api").to_string());
    let woke = s.scheduler.handle(&wake).await.unwrap();
    assert_eq!(woke.outcome, Outcome::Awake, "{woke:?}");
    assert_eq!(s.stack.desired_count("api").await, 2);
    assert_eq!(s.stack.capacity("api").await, Some((2, 4)));

    for at in ["2026-11-23T23:00:00Z", "2026-11-24T00:29:00Z"] {
        assert_eq!(s.reconcile(at).await.outcome, Outcome::Unchanged, "{at}");
        assert_eq!(s.stack.desired_count("api").await, 2, "{at}");
    }
    assert_eq!(
        s.reconcile("2026-11-24T00:30:00Z").await.outcome,
        Outcome::Asleep
    );
    assert_eq!(s.stack.desired_count("api").await, 0);
    assert_eq!(s.stack.capacity("api").await, Some((0, 0)));
    assert_eq!(
        s.actions("api").await,
        [Action::Asleep, Action::Awake, Action::Asleep]
    );
}

#[tokio::test]
async fn a_sleeping_service_gets_a_push_and_wakes_on_the_new_revision() {
    let s = Scheduled::new().await;
    let mut tags = OFFICE.to_vec();
    tags.push(("deckhand:deploy", "prefix=main-"));
    s.service("web", &tags).await;
    s.stack.autoscale("web", 2, 6).await;
    let before = s.stack.running_task_definition("web").await;
    s.reconcile(NIGHT).await;

    let digest = s.stack.push_image("main-2").await;
    s.clock.set(utc("2026-11-23T23:00:00Z"));
    let deploy = DeployFunction::new(
        s.stack.ports(Role::Deploy, s.clock.clone()),
        s.stack.config(),
    );
    let push = s
        .stack
        .push_event("p1", utc("2026-11-23T23:00:00Z"), "main-2", &digest);
    let deployed = deploy.handle(&push).await.unwrap();
    assert_eq!(deployed.outcome, Outcome::Deployed, "{deployed:?}");
    let after = s.stack.running_task_definition("web").await;
    assert_ne!(after, before);
    assert_eq!(
        s.stack.desired_count("web").await,
        0,
        "the push does not wake it"
    );
    assert_eq!(s.stack.capacity("web").await, Some((0, 0)));
    let state = s.state("web").await;
    assert!(state.sleep.is_some(), "the saved record is kept");
    assert!(state.deployment.unwrap().at_zero_tasks);

    let morning = s.reconcile(MORNING).await;
    assert_eq!(morning.outcome, Outcome::Awake, "{morning:?}");
    assert_eq!(s.stack.running_task_definition("web").await, after);
    assert_eq!(s.stack.desired_count("web").await, 2);
    assert_eq!(s.stack.capacity("web").await, Some((2, 6)));
}

#[tokio::test]
async fn the_sample_scheduler_events_drive_the_function() {
    let s = Scheduled::new().await;
    s.service("web", OFFICE).await;
    let key = s.stack.service_key("web").to_string();
    // schedule-reconcile.json: 19:00 on a Monday, the end of office hours.
    let event = sample_event("schedule-reconcile");
    s.clock.set(utc(event["at"].as_str().unwrap()));
    assert_eq!(
        s.scheduler.handle(&event).await.unwrap().outcome,
        Outcome::Asleep
    );
    // schedule-wake.json, then schedule-sleep.json: asleep until the next scheduled wake.
    for (sample, outcome) in [
        ("schedule-wake", Outcome::Awake),
        ("schedule-sleep", Outcome::Asleep),
    ] {
        let mut event = sample_event(sample);
        event["service"] = json!(key);
        assert_eq!(
            s.scheduler.handle(&event).await.unwrap().outcome,
            outcome,
            "{sample}"
        );
    }
    // schedule-legacy.json: a scheduled event at 07:00 on Tuesday.
    let event = sample_event("schedule-legacy");
    s.clock.set(utc(event["time"].as_str().unwrap()));
    let woke = s.scheduler.handle(&event).await.unwrap();
    assert_eq!(woke.outcome, Outcome::Awake, "{woke:?}");
    assert_eq!(s.stack.desired_count("web").await, 2);
}

/// 1,000 services in 10 clusters, every tenth autoscaled, 20 with a tag that does not parse,
/// put to sleep and woken by one reconcile each.
#[tokio::test]
async fn a_fleet_of_a_thousand_services_in_ten_clusters_reconciles() {
    const CLUSTERS: usize = 10;
    const PER_CLUSTER: usize = 100;
    let stack = Stack::isolated().await;
    let clusters = stack.create_clusters("fleet", CLUSTERS).await;
    let td = stack
        .simple_task_definition(&format!("fleet-{}", stack.id), "main-1")
        .await;
    let services: Vec<(String, String)> = clusters
        .iter()
        .flat_map(|c| (0..PER_CLUSTER).map(move |i| (c.clone(), format!("svc-{i:03}"))))
        .collect();
    // Which services carry a broken schedule, and which are autoscaled.
    let invalid = |i: usize| i % 50 == 7;
    let scaled = |i: usize| i.is_multiple_of(10);
    let (stack_ref, td_ref) = (&stack, &td);
    stream::iter(services.iter().cloned())
        .for_each_concurrent(16, |(cluster, name)| async move {
            let i: usize = name[4..].parse().unwrap();
            let awake = if invalid(i) {
                "weekdays 9-5"
            } else {
                "Mon-Fri 07:00-19:00"
            };
            let tags = [
                ("deckhand:awake", awake),
                ("deckhand:timezone", "Europe/London"),
            ];
            stack_ref
                .create_service_in(&cluster, &name, td_ref, 2, &tags)
                .await;
            if scaled(i) {
                stack_ref.autoscale_in(&cluster, &name, 1, 5).await;
            }
        })
        .await;
    let config = deckhand::config::Config {
        clusters: Some(clusters.clone()),
        ..stack.config()
    };
    let (mut ports, log) = stack.counted_ports_with(Role::Scheduler, &config);
    let clock = Arc::new(FixedClock::new(utc(NIGHT)));
    ports.clock = clock.clone();
    let scheduler = SchedulerFunction::new(ports, config);
    let total = services.len();
    let broken = services
        .iter()
        .filter(|(_, n)| invalid(n[4..].parse().unwrap()))
        .count();
    let autoscaled = services
        .iter()
        .filter(|(_, n)| {
            let i = n[4..].parse().unwrap();
            scaled(i) && !invalid(i)
        })
        .count();

    let started = Instant::now();
    let night = scheduler.handle(&reconcile_at(NIGHT)).await.unwrap();
    let night_took = started.elapsed();
    let night_calls = count(&log.calls());
    log.clear();

    let by_action = |summary: &Summary| {
        summary.services.iter().fold(BTreeMap::new(), |mut m, s| {
            *m.entry(s.action).or_insert(0usize) += 1;
            m
        })
    };
    assert_eq!(night.services.len(), total);
    assert_eq!(
        by_action(&night),
        BTreeMap::from([(Action::Asleep, total - broken), (Action::Invalid, broken)])
    );
    for (cluster, name) in services.iter().step_by(37) {
        let i: usize = name[4..].parse().unwrap();
        let expected = if invalid(i) { 2 } else { 0 };
        let service = stack.describe_service(cluster, name).await;
        assert_eq!(service.desired_count(), expected, "{cluster}/{name}");
    }

    clock.set(utc(MORNING));
    let started = Instant::now();
    let morning = scheduler.handle(&reconcile_at(MORNING)).await.unwrap();
    let morning_took = started.elapsed();
    let morning_calls = count(&log.calls());
    assert_eq!(
        by_action(&morning),
        BTreeMap::from([(Action::Awake, total - broken), (Action::Invalid, broken)])
    );
    for (cluster, name) in services
        .iter()
        .filter(|(_, n)| scaled(n[4..].parse().unwrap()))
        .step_by(7)
    {
        let capacity = stack.capacity_in(cluster, name).await;
        assert_eq!(capacity, Some((1, 5)), "{cluster}/{name}");
        let service = stack.describe_service(cluster, name).await;
        assert_eq!(service.desired_count(), 2, "{cluster}/{name}");
    }

    // The calls that scale with the fleet, per service put to sleep or woken.
    let acting = total - broken;
    assert_eq!(night_calls["ECS.UpdateService"], acting);
    assert_eq!(
        night_calls["Application Auto Scaling.RegisterScalableTarget"],
        autoscaled
    );
    // Per service acted on: its lock taken with the pending record, its commit; the lease it
    // took covers the target and ECS. A service with a tag problem takes its lock alone.
    assert_eq!(night_calls["DynamoDB.UpdateItem"], broken);
    assert_eq!(
        night_calls["DynamoDB.TransactWriteItems"],
        2 * acting + broken
    );
    assert_eq!(
        night_calls["SNS.Publish"],
        broken + 1,
        "each tag problem once, and one scale.summary"
    );
    assert_eq!(night_calls["ECS.DescribeServices"], total / 10);
    assert_eq!(night_calls["DynamoDB.BatchGetItem"], total / 100);
    assert_eq!(
        night_calls["Application Auto Scaling.DescribeScalableTargets"],
        total / 50
    );
    assert_eq!(morning_calls["ECS.UpdateService"], acting);
    assert_eq!(
        morning_calls["SNS.Publish"], 1,
        "one scale.summary; tag problems are notified once"
    );
    println!(
        "fleet of {total} services in {CLUSTERS} clusters ({autoscaled} autoscaled, {broken} invalid): \
         night reconcile {:.1} s, {} calls {night_calls:?}; morning reconcile {:.1} s, {} calls {morning_calls:?}",
        night_took.as_secs_f64(),
        night_calls.values().sum::<usize>(),
        morning_took.as_secs_f64(),
        morning_calls.values().sum::<usize>(),
    );
}

fn count(calls: &[String]) -> BTreeMap<String, usize> {
    calls.iter().fold(BTreeMap::new(), |mut m, c| {
        *m.entry(c.clone()).or_insert(0) += 1;
        m
    })
}

/// A listing of services by tag is whole although services are created between its pages, as
/// the other tests on the server do all the time: the emulator's pages once resumed a walk
/// over its live dictionary of services, and a service created between two pages ended the
/// listing early without an error, so a reconcile missed services.
#[tokio::test]
async fn services_created_between_two_pages_never_cut_a_listing_short() {
    use aws_sdk_resourcegroupstagging::types::TagFilter;
    let s = Scheduled::new().await;
    for name in ["a", "b", "c"] {
        s.service(name, OFFICE).await;
    }
    let tagging = aws_sdk_resourcegroupstagging::Client::new(&s.stack.sdk);
    let page = |token: Option<String>| {
        tagging
            .get_resources()
            .resource_type_filters("ecs:service")
            .tag_filters(TagFilter::builder().key("deckhand:awake").build())
            .resources_per_page(1)
            .set_pagination_token(token)
            .send()
    };
    let mut listed = Vec::new();
    let mut token = None;
    let mut created = 0;
    loop {
        let answer = page(token).await.expect("a page of GetResources");
        listed.extend(
            answer
                .resource_tag_mapping_list()
                .iter()
                .filter_map(|m| m.resource_arn())
                .filter(|arn| arn.contains(&format!("/{}/", s.stack.cluster)))
                .map(|arn| arn.rsplit('/').next().unwrap_or_default().to_owned()),
        );
        token = answer
            .pagination_token()
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if token.is_none() {
            break;
        }
        created += 1;
        s.service(&format!("new-{created}"), OFFICE).await;
    }
    listed.retain(|name| !name.starts_with("new-"));
    listed.sort();
    assert_eq!(
        listed,
        ["a", "b", "c"],
        "{created} services created between pages"
    );
}
