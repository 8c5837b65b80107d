//! The end-to-end benchmark: the release binaries of the three functions, each run as Lambda
//! runs a custom runtime (under a Runtime API written for the benchmark), against moto server
//! through a call-counting proxy. It measures cold start (process start to the first
//! `/invocation/next`), the latency of a first and of warm invocations, peak memory, the AWS
//! calls of a deploy, a rollback and a reconcile for fleets of 10, 100 and 1,000 services, and
//! the artifacts' sizes; and prints them with the micro-benchmarks (criterion) as one table.

// A benchmark driver: a failed unwrap is a failed run, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod artifacts;
mod baseline;
mod fleet;
mod runtime_api;
mod short;
mod table;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;
use testkit::proxy::{Call, FaultPlan, Proxy, call_stages};

use crate::fleet::Fleet;
use crate::runtime_api::{Outcome, RuntimeApi};
use crate::table::{Row, Table};

const FUNCTIONS: [&str; 3] = ["deploy", "rollback", "scheduler"];
/// How long a function may take to start before the run fails.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(about = "deckhand's end-to-end benchmark; `make bench` builds what it needs and runs it")]
struct Args {
    /// Where the binaries of the functions are: `NAME/bootstrap` under it, as `cargo lambda
    /// build --release` puts them, or `NAME`, as cargo does (`--bin-dir target/debug`).
    #[arg(long, default_value = "target/lambda")]
    bin_dir: PathBuf,
    /// Fleet sizes to measure; a fleet of 1 is where the deploy's calls meet their floor.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
    fleets: Vec<usize>,
    /// Process starts per function for the cold start.
    #[arg(long, default_value_t = 20)]
    cold_starts: usize,
    /// Warm invocations measured after the first one (reconciles of 1,000 services: fewer).
    #[arg(long, default_value_t = 5)]
    warm: usize,
    /// Criterion's results, to include in the table.
    #[arg(long, default_value = "target/criterion")]
    criterion_dir: PathBuf,
    /// Where to write the table as well.
    #[arg(long, default_value = "target/bench/report.md")]
    out: PathBuf,
    /// A label for the build measured (`release`, or a variant of the profile).
    #[arg(long, default_value = "release")]
    build: String,
    /// Added to every AWS call by the proxy: what a real call costs in network and service
    /// time, so that work done side by side overlaps as it would on AWS.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// The short form `make test` runs: one fleet of 100, one warm push, one rollback, one
    /// reconcile, their calls and stages checked against what was reached; no sizes, cold
    /// starts or micro-benchmarks. Any binaries will do (`--bin-dir target/debug`).
    #[arg(long)]
    short: bool,
}

/// A function's binary under `bin_dir`: `NAME/bootstrap` (cargo lambda) or `NAME` (cargo).
fn binary(bin_dir: &Path, name: &str) -> PathBuf {
    let bootstrap = bin_dir.join(name).join("bootstrap");
    if bootstrap.is_file() {
        bootstrap
    } else {
        bin_dir.join(name)
    }
}

/// A fleet on its own emulator, the proxy in front of it, and the three functions started
/// against it, each waiting for its first invocation.
struct Started {
    fleet: Fleet,
    proxy: Proxy,
    logs: PathBuf,
    functions: [Function; 3],
}

impl Started {
    async fn new(args: &Args, size: usize, logs: &str) -> Self {
        let fleet = Fleet::create(size).await;
        let latency = Duration::from_millis(args.latency_ms);
        let proxy = Proxy::start(
            fleet.stack.emulator_url(),
            FaultPlan::none().with_latency(latency),
        )
        .await;
        let logs = args.out.with_file_name(logs);
        std::fs::create_dir_all(&logs).expect("a log directory");
        let env = |name| fleet.environment(name, &proxy.url());
        let mut functions = Vec::new();
        for name in FUNCTIONS {
            let function = Function::spawn(&args.bin_dir, name, &env(name), &logs).await;
            function.cold_start().await;
            functions.push(function);
        }
        let Ok(functions) = functions.try_into() else {
            unreachable!("one process per function")
        };
        Self {
            fleet,
            proxy,
            logs,
            functions,
        }
    }
}

/// One function process under its own Runtime API.
struct Function {
    name: &'static str,
    child: Child,
    api: RuntimeApi,
    started: Instant,
}

impl Function {
    async fn spawn(
        bin_dir: &Path,
        name: &'static str,
        env: &[(String, String)],
        logs: &Path,
    ) -> Self {
        let api = RuntimeApi::start().await;
        let log = std::fs::File::create(logs.join(format!("{name}.log"))).expect("a log file");
        let binary = binary(bin_dir, name);
        let started = Instant::now();
        let child = Command::new(&binary)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        Self {
            name,
            child,
            api,
            started,
        }
    }

    /// Process start to the first `/invocation/next`.
    async fn cold_start(&self) -> Duration {
        let polled = self
            .api
            .first_poll(START_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        polled - self.started
    }

    async fn invoke(&self, event: &Value) -> (Value, Duration) {
        match self.api.invoke(event).await {
            (Outcome::Response(summary), latency) => (summary, latency),
            (Outcome::Error(error), _) => panic!("{} failed: {error}", self.name),
        }
    }

    /// Peak resident memory so far (VmHWM), in bytes.
    fn peak_memory(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the process's status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .expect("VmHWM in /proc/PID/status")
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn outcome(summary: &Value) -> &str {
    summary["outcome"].as_str().unwrap_or_default()
}

/// Runs one invocation with the proxy's record cleared first; returns the summary, the latency
/// and the AWS calls it made.
async fn measured_calls(
    proxy: &Proxy,
    function: &Function,
    event: &Value,
) -> (Value, Duration, Vec<Call>) {
    proxy.clear();
    let (summary, latency) = function.invoke(event).await;
    (summary, latency, proxy.calls())
}

/// The same, with the number of calls.
async fn measured(proxy: &Proxy, function: &Function, event: &Value) -> (Value, Duration, usize) {
    let (summary, latency, calls) = measured_calls(proxy, function, event).await;
    (summary, latency, calls.len())
}

/// What the reconcile's per-service target leaves out: Application Auto Scaling's calls, the
/// reads in batches and lists (and the revisions the index check reads), the index's batched
/// writes, and the one `scale.summary`, counted on its own.
fn acting_call(name: &str) -> bool {
    let batched = [
        "tagging.GetResources",
        "ecs.DescribeServices",
        "ecs.DescribeTaskDefinition",
        "dynamodb.BatchGetItem",
        "dynamodb.Query",
        "dynamodb.BatchWriteItem",
        "sns.Publish",
    ];
    !name.starts_with("application-autoscaling.") && !batched.contains(&name)
}

/// The invocations of one kind: the first, then `warm` more; checks each outcome.
#[derive(Default)]
struct Series {
    first: Duration,
    first_calls: usize,
    warm: Vec<Duration>,
    warm_calls: Vec<usize>,
    /// Sequential stages of each warm invocation, and the stage of its first change to ECS or
    /// the listener.
    warm_stages: Vec<usize>,
    warm_changes: Vec<usize>,
}

impl Series {
    fn record(&mut self, n: usize, latency: Duration, calls: &[Call]) {
        if n == 0 {
            self.first = latency;
            self.first_calls = calls.len();
        } else {
            let stages = call_stages(calls);
            self.warm.push(latency);
            self.warm_calls.push(calls.len());
            self.warm_stages
                .push(stages.iter().copied().max().unwrap_or(0));
            if let Some(change) = calls
                .iter()
                .zip(&stages)
                .filter(|(c, _)| short::changes_traffic(c))
                .map(|(_, s)| *s)
                .min()
            {
                self.warm_changes.push(change);
            }
        }
    }

    /// `targets`: the most AWS calls and sequential stages a warm invocation may take, and
    /// whether the stage of its first change to ECS is shown, with the latest it may come in.
    fn rows(
        &self,
        table: &mut Table,
        (function, fleet, what): (&str, usize, &str),
        (calls, stages, change): (Option<usize>, Option<usize>, Option<Option<usize>>),
    ) {
        let warm = format!("warm invocation (median of {})", self.warm.len());
        table.push(Row::latency(
            "first invocation",
            function,
            Some(fleet),
            what,
            self.first,
        ));
        table.push(Row::latency(
            &warm,
            function,
            Some(fleet),
            what,
            median(self.warm.clone()),
        ));
        let first = self.first_calls;
        table.push(Row::calls(
            "AWS calls, first invocation",
            function,
            fleet,
            what,
            first,
            first,
            None,
        ));
        let range = |v: &[usize]| {
            (
                v.iter().min().copied().unwrap_or_default(),
                v.iter().max().copied().unwrap_or_default(),
            )
        };
        let (least, most) = range(&self.warm_calls);
        table.push(Row::calls(
            "AWS calls, warm invocation",
            function,
            fleet,
            what,
            least,
            most,
            calls,
        ));
        let (least, most) = range(&self.warm_stages);
        table.push(Row::calls(
            "sequential stages, warm invocation",
            function,
            fleet,
            what,
            least,
            most,
            stages,
        ));
        if let Some(latest) = change
            && !self.warm_changes.is_empty()
        {
            let (least, most) = range(&self.warm_changes);
            table.push(Row::calls(
                "stage of the change to ECS, warm invocation",
                function,
                fleet,
                what,
                least,
                most,
                latest,
            ));
        }
    }
}

async fn bench_fleet(args: &Args, size: usize, table: &mut Table) {
    eprintln!("fleet of {size}: creating it");
    let setup = Instant::now();
    let Started {
        fleet,
        proxy,
        logs,
        functions: [deploy, rollback, scheduler],
    } = Started::new(args, size, &format!("logs-{size}")).await;
    eprintln!("fleet of {size}: created in {:.0?}", setup.elapsed());
    let env = |name| fleet.environment(name, &proxy.url());

    // Deploy: a push of a new digest for service 0, each time. The first push is the first
    // the repository has seen: it looks through the fleet and fills the repository index.
    let mut deploys = Series::default();
    for n in 0..=args.warm {
        if n > 0 {
            tokio::time::sleep(APART).await;
        }
        let (summary, latency, calls) = measured_calls(&proxy, &deploy, &fleet.push().await).await;
        assert_eq!(outcome(&summary), "deployed", "{summary}");
        deploys.record(n, latency, &calls);
    }
    let target = Some(if size == 1 {
        DEPLOY_ALONE
    } else {
        DEPLOY_IN_A_FLEET
    });
    let what = "a push deploys 1 service";
    let targets = (target, Some(SPEC_STAGES), Some(None));
    deploys.rows(table, ("deploy", size, what), targets);
    // What Lambda does most: a new execution environment, for a fleet it has seen before.
    let fresh = Function::spawn(&args.bin_dir, "deploy", &env("deploy"), &logs).await;
    fresh.cold_start().await;
    let (summary, latency, calls) = measured(&proxy, &fresh, &fleet.push().await).await;
    assert_eq!(outcome(&summary), "deployed", "{summary}");
    let what = "a push deploys 1 service; a new process, the index filled";
    table.push(Row::latency(
        "first invocation",
        "deploy",
        Some(size),
        what,
        latency,
    ));
    table.push(Row::calls(
        "AWS calls, first invocation",
        "deploy",
        size,
        what,
        calls,
        calls,
        target,
    ));
    drop(fresh);
    // The same, as pushes come in a real account: a new execution environment mostly meets a
    // pace bucket that refilled since the last push (one a second), and guesses it right.
    tokio::time::sleep(PACE_REFILLED).await;
    let fresh = Function::spawn(&args.bin_dir, "deploy", &env("deploy"), &logs).await;
    fresh.cold_start().await;
    let (summary, _, calls) = measured(&proxy, &fresh, &fleet.push().await).await;
    assert_eq!(outcome(&summary), "deployed", "{summary}");
    table.push(Row::calls(
        "AWS calls, first invocation",
        "deploy",
        size,
        &format!(
            "a push deploys 1 service; a new process, {} s after the last push",
            PACE_REFILLED.as_secs()
        ),
        calls,
        calls,
        target,
    ));
    drop(fresh);
    eprintln!("fleet of {size}: deploys measured");

    // Rollback: each alarm follows a fresh deployment of service 0.
    let mut rollbacks = Series::default();
    for n in 0..=args.warm {
        let (summary, _) = deploy.invoke(&fleet.push().await).await;
        assert_eq!(outcome(&summary), "deployed", "{summary}");
        let (summary, latency, calls) = measured_calls(&proxy, &rollback, &fleet.alarm(n)).await;
        assert_eq!(outcome(&summary), "rolled-back", "{summary}");
        rollbacks.record(n, latency, &calls);
    }
    let what = "an alarm rolls 1 service back";
    let targets = (
        Some(ROLLBACK_CALLS),
        Some(SPEC_STAGES),
        Some(Some(ROLLBACK_CHANGE_STAGE)),
    );
    rollbacks.rows(table, ("rollback", size, what), targets);
    eprintln!("fleet of {size}: rollbacks measured");

    // Reconcile: the whole fleet to sleep, then awake, and so on.
    let mut reconciles = Series::default();
    let mut night = None;
    let warm = if size >= 1000 {
        args.warm.min(2)
    } else {
        args.warm
    };
    for n in 0..=warm {
        let at = if n % 2 == 0 {
            fleet.night
        } else {
            fleet.morning
        };
        let (summary, latency, calls) =
            measured_calls(&proxy, &scheduler, &fleet.reconcile(at)).await;
        if n == 0 {
            night = Some((latency, calls.iter().map(Call::name).collect::<Vec<_>>()));
        }
        let expected = if n % 2 == 0 { "asleep" } else { "awake" };
        let acted = summary["services"]
            .as_array()
            .map_or(0, |s| s.iter().filter(|s| s["action"] == expected).count());
        assert_eq!(acted, size, "every service {expected}: {summary}");
        reconciles.record(n, latency, &calls);
        eprintln!("fleet of {size}: reconcile {n} took {latency:.1?}");
    }
    let what = format!("a reconcile sleeps or wakes all {}", table::count(size));
    reconciles.rows(table, ("scheduler", size, &what), (None, None, None));
    if let Some((deckhand, calls)) = night {
        let acting = calls.iter().filter(|c| acting_call(c)).count();
        table.push(Row::per_service(
            size,
            acting as f64 / size as f64,
            RECONCILE_PER_SERVICE,
        ));
        let messages = calls.iter().filter(|c| *c == "sns.Publish").count();
        table.push(Row::calls(
            "SNS messages",
            "scheduler",
            size,
            "the night's reconcile: one scale.summary",
            messages,
            messages,
            Some(1),
        ));
        // The peer, on the same fleet through the same proxy (it sets zero again where
        // deckhand already did: it reads no state).
        let sdk = testkit::harness::sdk_config(&proxy.url()).await;
        proxy.clear();
        let peer = baseline::sleep_the_fleet(&sdk, &fleet.clusters).await;
        let peer_calls = proxy.calls().len();
        table.push(Row::latency(
            "sequential peer",
            "(benchmark)",
            Some(size),
            &format!(
                "a plain Lambda puts all {} to sleep, one call after another, no state ({peer_calls} calls)",
                table::count(size)
            ),
            peer,
        ));
        // The target is the fleet's: for a few services, discovery outweighs the changes.
        let target = (size >= 1000).then_some(RECONCILE_RATIO);
        table.push(Row::ratio(size, deckhand, peer, target));
    }

    for function in [&deploy, &rollback, &scheduler] {
        table.push(Row::memory(function.name, size, function.peak_memory()));
    }
}

/// The most AWS calls a push that deploys one service may make, warm or from a new process:
/// whatever the fleet, and alone (docs/performance.md).
const DEPLOY_IN_A_FLEET: usize = 12;
const DEPLOY_ALONE: usize = 8;
/// The SPEC's bounds: a push and a rollback in at most 5 sequential stages, a rollback in at
/// most 10 calls, its change to ECS or the listener in the fourth stage at the latest.
const SPEC_STAGES: usize = 5;
const ROLLBACK_CALLS: usize = 10;
const ROLLBACK_CHANGE_STAGE: usize = 4;
/// A reconcile that changes N services: at most 3N calls beyond Application Auto Scaling's and
/// the batched reads, and at most this share of the sequential peer's time.
const RECONCILE_PER_SERVICE: f64 = 3.0;
const RECONCILE_RATIO: f64 = 0.35;
/// Pushes to one service measured as they come in an account, not within a second of the last
/// release of its lock: a push that comes sooner reads the service again under the lock
/// (`app::locking::may_have_moved`), one call more.
pub const APART: Duration = Duration::from_millis(1500);
/// Long enough for the pace bucket of task definition writes to refill after the pushes
/// measured before (one slot a second, docs/deploys.md, "Pacing").
const PACE_REFILLED: Duration = Duration::from_secs(12);

#[tokio::main]
async fn main() {
    let args = Args::parse();
    for name in FUNCTIONS {
        let path = binary(&args.bin_dir, name);
        assert!(
            path.exists(),
            "{} is missing: run make bench",
            path.display()
        );
    }
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).expect("the report's directory");
    }
    if args.short {
        let (rows, failed) = short::run(&args).await;
        for row in &rows {
            println!("{}", row.line());
        }
        if !failed.is_empty() {
            eprintln!("the short benchmark needs more than docs/performance.md records:");
            for line in &failed {
                eprintln!("  {line}");
            }
            std::process::exit(1);
        }
        return;
    }
    let mut table = Table::new(&args.build, args.latency_ms);
    artifacts::sizes(&args, &mut table);
    artifacts::cold_starts(&args, &mut table).await;
    for &size in &args.fleets {
        bench_fleet(&args, size, &mut table).await;
    }
    table.micro_benchmarks(&args.criterion_dir);
    let markdown = table.markdown();
    std::fs::write(&args.out, &markdown).expect("write the report");
    println!("{markdown}");
    eprintln!("written to {}", args.out.display());
}
