//! The `deckhand` command line against moto server: output parsed, state checked.

use std::ffi::OsString;

use chrono::{DateTime, Utc};
use deckhand::app::deploy::DeployFunction;
use deckhand::ports::StateStore as _;
use deckhand::report::Outcome;
use deckhand_cli::CliError;
use serde_json::Value;

use crate::harness::{Role, Stack};
use crate::rollback::metric_alarm;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// Runs `deckhand ARGS` against the stack's table and topic, signed as an operator with the
/// template's OperatorPolicy; returns what it printed, and how it ended.
pub(crate) async fn deckhand_run(stack: &Stack, args: &[&str]) -> (String, Result<(), CliError>) {
    deckhand_run_as(stack, Role::Operator, args).await
}

/// The same, signed as `role`.
pub(crate) async fn deckhand_run_as(
    stack: &Stack,
    role: Role,
    args: &[&str],
) -> (String, Result<(), CliError>) {
    let mut argv: Vec<OsString> = vec![
        "deckhand".into(),
        "--table".into(),
        stack.table.clone().into(),
    ];
    argv.extend(["--topic-arn".into(), stack.topic_arn.clone().into()]);
    argv.extend([
        "--chat-topic-arn".into(),
        stack.chat_topic_arn.clone().into(),
    ]);
    argv.extend(args.iter().map(OsString::from));
    let mut out = Vec::new();
    let sdk = stack.sdk_as(role, &stack.config());
    let ended = deckhand_cli::run(argv, &sdk, &mut out).await;
    (String::from_utf8(out).unwrap(), ended)
}

/// Runs `deckhand ARGS`; returns what it printed.
pub(crate) async fn deckhand(stack: &Stack, args: &[&str]) -> Result<String, CliError> {
    let (out, ended) = deckhand_run(stack, args).await;
    ended.map(|()| out)
}

pub(crate) async fn deckhand_json(stack: &Stack, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let text = deckhand(stack, &args)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
}

/// A service `web` deployed by pushes of `main-*`, and the deploy function.
async fn web(stack: &Stack, tags: &[(&str, &str)]) -> (String, DeployFunction) {
    let td = stack
        .simple_task_definition(&format!("cli-{}", stack.id), "main-41")
        .await;
    let mut all = vec![("deckhand:deploy", "prefix=main-")];
    all.extend_from_slice(tags);
    stack.create_service("web", &td, &all).await;
    // The command line records with the machine's clock; so does the function here.
    let deploy = DeployFunction::new(stack.system_ports(Role::Deploy), stack.config());
    (stack.service_key("web").to_string(), deploy)
}

#[tokio::test]
async fn pause_skips_pushes_until_resume_and_history_shows_it() {
    let stack = Stack::new().await;
    let (web, deploy) = web(&stack, &[]).await;
    let digest = stack.push_image("main-42").await;

    let paused = deckhand_json(&stack, &["pause", &web]).await;
    assert_eq!(paused[0]["action"], "paused");
    let push = stack.push_event("p1", utc("2026-11-23T10:00:00Z"), "main-42", &digest);
    let s = deploy.handle(&push).await.unwrap();
    assert_eq!(s.outcome, Outcome::Skipped, "{s:?}");
    assert!(stack.running_task_definition("web").await.ends_with(":1"));

    assert_eq!(
        deckhand_json(&stack, &["resume", &web]).await[0]["action"],
        "resumed"
    );
    let push = stack.push_event("p2", utc("2026-11-23T10:05:00Z"), "main-42", &digest);
    assert_eq!(
        deploy.handle(&push).await.unwrap().outcome,
        Outcome::Deployed
    );

    let history = deckhand_json(&stack, &["history", &web, "--limit", "10"]).await;
    let actions: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["deployed", "resumed", "skipped", "paused"]);
    let text = deckhand(&stack, &["history", &web]).await.unwrap();
    assert!(text.lines().next().unwrap().contains("deployed"), "{text}");
    // The operator on record is whoever AWS says signed the command, not a name from the
    // environment.
    let sdk = stack.sdk_as(Role::Operator, &stack.config());
    let identity = aws_sdk_sts::Client::new(&sdk)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    let me = identity.arn().unwrap();
    assert!(me.starts_with("arn:aws:"), "{me}");
    assert!(text.contains(&format!("deploys paused by {me}")), "{text}");
}

#[tokio::test]
async fn release_lets_a_quarantined_digest_deploy_and_a_wrong_release_fails_clearly() {
    let stack = Stack::new().await;
    let (web, deploy) = web(&stack, &[]).await;
    let digest = stack.push_image("main-42").await;
    let key = stack.service_key("web");
    let store = stack.store();
    let locked = match store
        .lock(
            &key,
            "t",
            utc("2026-11-23T09:00:00Z"),
            chrono::TimeDelta::seconds(5),
        )
        .await
        .unwrap()
    {
        deckhand::ports::LockAttempt::Acquired(l) => *l,
        busy => panic!("{busy:?}"),
    };
    let mut state = locked.state.clone();
    state.quarantine(
        &digest.parse().unwrap(),
        "rolled back after alarm x".into(),
        utc("2026-11-23T09:00:00Z"),
        None,
    );
    store
        .commit(&key, &locked, &state, &[], None)
        .await
        .unwrap();

    let other = format!("sha256:{}", "0".repeat(64));
    let e = deckhand(&stack, &["release", &web, &other])
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("digest {other} is not quarantined for {web}")
    );
    let e = deckhand(&stack, &["release", &web, "latest"])
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("`latest` is not a digest"), "{e}");
    assert_eq!(
        store.load(&key).await.unwrap().quarantine.len(),
        1,
        "nothing changed"
    );

    let released = deckhand_json(&stack, &["release", &web, &digest]).await;
    assert_eq!(released[0]["action"], "released");
    let push = stack.push_event("p1", utc("2026-11-23T10:00:00Z"), "main-42", &digest);
    assert_eq!(
        deploy.handle(&push).await.unwrap().outcome,
        Outcome::Deployed
    );
}

#[tokio::test]
async fn wake_sleep_plan_status_and_check() {
    let stack = Stack::new().await;
    let (web, _) = web(
        &stack,
        &[
            ("deckhand:awake", "daily 00:00-24:00"),
            ("deckhand:timezone", "Europe/London"),
        ],
    )
    .await;
    let td = stack
        .simple_task_definition(&format!("bad-{}", stack.id), "main-1")
        .await;
    stack
        .create_service("bad", &td, &[("deckhand:awake", "weekdays 9-5")])
        .await;

    // Always awake by schedule; an operator sleep keeps it at 0 until the expiry.
    let slept = deckhand_json(&stack, &["sleep", &web, "--for", "2h"]).await;
    assert_eq!(slept["outcome"], "asleep", "{slept}");
    assert_eq!(stack.desired_count("web").await, 0);
    let woke = deckhand_json(&stack, &["wake", &web, "--for", "1h"]).await;
    assert_eq!(woke["outcome"], "awake", "{woke}");
    assert_eq!(stack.desired_count("web").await, 2);

    let status = deckhand_json(&stack, &["status", "--cluster", &stack.cluster]).await;
    let rows = status.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{status}");
    let web_row = rows.iter().find(|r| r["service"] == web).unwrap();
    assert_eq!(web_row["policy"], "prefix=main-");
    let baseline = stack.push_image("main-41").await;
    assert_eq!(
        web_row["images"][0],
        format!("web={}@{}", stack.repository, &baseline[..19])
    );
    assert_eq!(web_row["override"]["awake"], true);
    let bad_row = rows.iter().find(|r| r["service"] != web).unwrap();
    assert!(
        bad_row["tagProblems"][0]
            .as_str()
            .unwrap()
            .starts_with("deckhand:awake")
    );

    let cluster = stack.cluster.clone();
    let plan = deckhand_json(
        &stack,
        &[
            "plan",
            "--cluster",
            &cluster,
            "--at",
            "2026-11-23T12:00:00Z",
        ],
    )
    .await;
    assert_eq!(plan["dryRun"], true, "{plan}");
    let planned: Vec<(&str, &str)> = plan["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap(),
                s["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(planned.len(), 3, "{plan}");
    assert!(planned.contains(&(web.as_str(), "unchanged")), "{plan}");
    assert!(planned.iter().any(|(_, a)| *a == "invalid"), "{plan}");
    // The reconcile would also start following the revision web runs, of which no event told.
    assert!(planned.contains(&(web.as_str(), "recorded")), "{plan}");

    let e = deckhand(&stack, &["check", "--cluster", &cluster])
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("1 service(s) have deckhand tags that do not parse"),
        "{e}"
    );
    let e = deckhand(&stack, &["wake", &web]).await.unwrap_err();
    assert!(matches!(e, CliError::Usage(_)), "{e}");
    let e = deckhand(&stack, &["pause", "no-slash"]).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "`no-slash` is not a service: write CLUSTER/SERVICE"
    );
}

#[tokio::test]
async fn init_creates_the_table_and_topic_once() {
    let stack = Stack::new().await;
    // `init` creates a table and a topic: it runs with the set-up's rights, not an operator's.
    let table = format!("init-{}", stack.id);
    let mut out = Vec::new();
    let args = |json: bool| {
        let mut a: Vec<OsString> = ["deckhand", "init", "--table", &table, "--topic", &table]
            .iter()
            .map(OsString::from)
            .collect();
        if json {
            a.push("--json".into());
        }
        a
    };
    deckhand_cli::run(args(true), &stack.sdk, &mut out)
        .await
        .unwrap();
    let first: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(first["tableCreated"], true);
    assert!(
        first["topicArn"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{table}"))
    );
    let mut out = Vec::new();
    deckhand_cli::run(args(false), &stack.sdk, &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with(&format!("table {table} exists")), "{text}");
    assert!(
        text.contains(&format!("export DECKHAND_TABLE={table}")),
        "{text}"
    );
}

#[tokio::test]
async fn rollback_by_hand_and_to_an_unknown_revision() {
    let stack = Stack::new().await;
    let (web, deploy) = web(&stack, &[]).await;
    let digest = stack.push_image("main-42").await;
    let push = stack.push_event("p1", utc("2026-11-23T10:00:00Z"), "main-42", &digest);
    assert_eq!(
        deploy.handle(&push).await.unwrap().outcome,
        Outcome::Deployed
    );
    let deployed = stack.running_task_definition("web").await;

    let family = format!("cli-{}", stack.id);
    let e = deckhand(&stack, &["rollback", &web, "--to", &format!("{family}:9")])
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{family}:9 is not a task definition revision ECS knows")
    );
    assert_eq!(
        stack.running_task_definition("web").await,
        deployed,
        "nothing changed"
    );

    let rolled = deckhand_json(&stack, &["rollback", &web, "--to", &format!("{family}:1")]).await;
    assert_eq!(rolled["outcome"], "rolled-back", "{rolled}");
    assert!(
        stack
            .running_task_definition("web")
            .await
            .ends_with(&format!("{family}:1"))
    );
    assert!(
        stack
            .notification_kinds()
            .contains(&"rollback.started".to_owned())
    );
    let state = stack.store().load(&stack.service_key("web")).await.unwrap();
    assert!(state.is_quarantined(&digest.parse().unwrap()).is_some());

    let report = deckhand_json(&stack, &["report", "--since", "1d"]).await;
    let row = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == web)
        .cloned()
        .unwrap();
    assert_eq!(
        (row["deployments"].as_u64(), row["rollbacks"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
    assert!(
        row["medianSecondsFromAlarmToRollback"].as_i64().unwrap() < 60,
        "{report}"
    );
    let e = deckhand(&stack, &["report", "--since", "a while"])
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "`a while` is not a duration such as 7d, 30d or 12h"
    );
}

#[tokio::test]
async fn check_says_what_valid_tags_mean() {
    let stack = Stack::new().await;
    let (web, _) = web(
        &stack,
        &[
            ("deckhand:awake", "Mon-Fri 07:00-19:00"),
            ("deckhand:timezone", "Europe/London"),
        ],
    )
    .await;
    let text = deckhand(&stack, &["check", "--cluster", &stack.cluster])
        .await
        .unwrap();
    assert!(
        text.contains(&format!(
            "{web}  deploys pushes matching prefix=main- (guard 30m)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{web}  awake Mon-Fri 07:00-19:00 Europe/London; next "
        )),
        "{text}"
    );
    let json = deckhand_json(&stack, &["check", "--cluster", &stack.cluster]).await;
    assert_eq!(json[0]["valid"], true, "{json}");

    // A scheduled action on the scalable target is named, with what the sleep does to it.
    stack.autoscale("web", 2, 6).await;
    stack
        .schedule_scaling("web", "business-hours", "cron(0 7 ? * MON-FRI *)", 2)
        .await;
    let text = deckhand(&stack, &["check", "--cluster", &stack.cluster])
        .await
        .unwrap();
    assert!(
        text.contains(&format!(
            "{web}  scheduled scaling business-hours (cron(0 7 ? * MON-FRI *)) is suspended \
             while deckhand keeps it asleep"
        )),
        "{text}"
    );
}

/// `check` says which alarms guard each service and why, which scaling alarms it ignores, and
/// when nothing guards a service at all: read from CloudWatch as the operator's policy allows.
#[tokio::test]
async fn check_names_the_alarms_that_guard_each_service_and_the_scaling_ones_it_ignores() {
    let stack = Stack::new().await;
    let (web, _) = web(&stack, &[]).await;
    let td = stack
        .simple_task_definition(&format!("cli-api-{}", stack.id), "main-41")
        .await;
    stack
        .create_service("api", &td, &[("deckhand:deploy", "prefix=main-")])
        .await;
    let id = stack.id;
    let alb = format!("web-alb-5xx-{id}");
    let cpu = format!("web-errors-{id}");
    let scaling = format!(
        "TargetTracking-service/{}/web-AlarmHigh-{id}",
        stack.cluster
    );
    metric_alarm(&stack, &alb, None, &[("deckhand:service", web.as_str())]).await;
    metric_alarm(&stack, &cpu, Some("web"), &[]).await;
    metric_alarm(&stack, &scaling, Some("web"), &[]).await;

    let text = deckhand(&stack, &["check", "--cluster", &stack.cluster])
        .await
        .unwrap();
    for line in [
        format!("{web}  guarded by alarm {alb}: the alarm's deckhand:service tag names it"),
        format!("{web}  guarded by alarm {cpu}: the alarm's metric names its cluster and service"),
        format!(
            "{web}  ignores alarm {scaling}: a target tracking alarm of Application Auto Scaling (by its name)"
        ),
        format!("{}  no alarm guards it", stack.service_key("api")),
    ] {
        assert!(text.contains(&line), "{line}\n{text}");
    }
    let json = deckhand_json(&stack, &["check", "--cluster", &stack.cluster]).await;
    let row = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == web.as_str())
        .unwrap();
    let alarms: Vec<(&str, bool)> = row["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["alarm"].as_str().unwrap(), a["guards"] == true))
        .collect();
    assert!(alarms.contains(&(alb.as_str(), true)), "{row}");
    assert!(alarms.contains(&(scaling.as_str(), false)), "{row}");
}
