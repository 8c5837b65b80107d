//! The short form `make test` runs, so that the benchmark cannot rot unseen: one fleet of 100
//! services, one warm push, one rollback and one night's reconcile, through the same binaries,
//! Runtime API and proxy as the full run. Its AWS calls and stages are checked against what
//! docs/performance.md records as reached; a change that needs more fails the run. Timings are
//! printed, never checked: they depend on the machine.

use std::time::Duration;

use testkit::proxy::{Call, call_stages};

use crate::table::{Row, count};
use crate::{Args, RECONCILE_PER_SERVICE, Started, acting_call, measured_calls, outcome};

const FLEET: usize = 100;

/// Reached, as docs/performance.md records it: the AWS calls and sequential stages of a warm
/// push that deploys one service (SPEC: 8 calls in 5 stages), and of the first rollback of a
/// fleet, whose known-good revision is older than the deployment's start (SPEC: 10 calls in 5
/// stages), with the stage in which it changes ECS (SPEC: the fourth at the latest).
const PUSH_REACHED: (usize, usize) = (8, 5);
const ROLLBACK_REACHED: (usize, usize) = (11, 6);
const ROLLBACK_CHANGE_REACHED: usize = 5;

/// The calls that change what ECS runs or where the listener sends traffic.
pub fn changes_traffic(call: &Call) -> bool {
    matches!(
        call.name().as_str(),
        "ecs.UpdateService"
            | "ecs.StopServiceDeployment"
            | "elasticloadbalancing.ModifyListener"
            | "elasticloadbalancing.ModifyRule"
            | "codedeploy.CreateDeployment"
            | "codedeploy.StopDeployment"
    )
}

/// Runs the short form; returns the rows, and the lines of the checks that failed.
pub async fn run(args: &Args) -> (Vec<Row>, Vec<String>) {
    let Started {
        fleet,
        proxy,
        functions: [deploy, rollback, scheduler],
        ..
    } = Started::new(args, FLEET, "logs-short").await;
    let mut rows = Vec::new();

    // The repository's first push fills the index; the next is the one measured, as pushes
    // to one service come, not within a second of the last (`crate::APART`).
    let (summary, _) = deploy.invoke(&fleet.push().await).await;
    assert_eq!(outcome(&summary), "deployed", "{summary}");
    tokio::time::sleep(crate::APART).await;
    let (summary, latency, calls) = measured_calls(&proxy, &deploy, &fleet.push().await).await;
    assert_eq!(outcome(&summary), "deployed", "{summary}");
    let what = ("deploy", "a warm push deploys 1 service");
    checked(&mut rows, what, latency, &calls, PUSH_REACHED);

    let (summary, latency, calls) = measured_calls(&proxy, &rollback, &fleet.alarm(0)).await;
    assert_eq!(outcome(&summary), "rolled-back", "{summary}");
    let what = ("rollback", "an alarm rolls 1 service back");
    let stage = checked(&mut rows, what, latency, &calls, ROLLBACK_REACHED);
    let change = calls
        .iter()
        .zip(&stage)
        .filter(|(c, _)| changes_traffic(c))
        .map(|(_, s)| *s)
        .min()
        .unwrap_or(usize::MAX);
    let measure = "stage of the change to ECS";
    rows.push(calls_row(measure, what, change, ROLLBACK_CHANGE_REACHED));

    let (summary, latency, calls) =
        measured_calls(&proxy, &scheduler, &fleet.reconcile(fleet.night)).await;
    let asleep = summary["services"]
        .as_array()
        .map_or(0, |s| s.iter().filter(|s| s["action"] == "asleep").count());
    assert_eq!(asleep, FLEET, "every service asleep: {summary}");
    let what = format!("the night's reconcile puts {} to sleep", count(FLEET));
    rows.push(Row::latency(
        "latency",
        "scheduler",
        Some(FLEET),
        &what,
        latency,
    ));
    let acting = calls.iter().filter(|c| acting_call(&c.name())).count();
    rows.push(Row::per_service(
        FLEET,
        acting as f64 / FLEET as f64,
        RECONCILE_PER_SERVICE,
    ));
    let messages = calls.iter().filter(|c| c.name() == "sns.Publish").count();
    rows.push(calls_row("SNS messages", ("scheduler", &what), messages, 1));

    let failed = rows.iter().filter(|r| r.missed()).map(Row::line).collect();
    (rows, failed)
}

/// The latency, calls and stages of one invocation, the calls and stages checked against what
/// was reached; returns each call's stage.
fn checked(
    rows: &mut Vec<Row>,
    (function, what): (&str, &str),
    latency: Duration,
    calls: &[Call],
    (most_calls, most_stages): (usize, usize),
) -> Vec<usize> {
    let stage = call_stages(calls);
    let stages = stage.iter().copied().max().unwrap_or(0);
    // `DECKHAND_BENCH_TRACE=1 make bench-short` prints each call with its stage.
    if std::env::var_os("DECKHAND_BENCH_TRACE").is_some() {
        for (call, stage) in calls.iter().zip(&stage) {
            eprintln!("{function}: stage {stage}: {}", call.name());
        }
    }
    rows.push(Row::latency(
        "latency",
        function,
        Some(FLEET),
        what,
        latency,
    ));
    rows.push(calls_row(
        "AWS calls",
        (function, what),
        calls.len(),
        most_calls,
    ));
    rows.push(calls_row(
        "sequential stages",
        (function, what),
        stages,
        most_stages,
    ));
    stage
}

fn calls_row(measure: &str, (function, what): (&str, &str), n: usize, most: usize) -> Row {
    Row::calls(measure, function, FLEET, what, n, n, Some(most))
}
