//! The `deckhand` command line over the same library, state and use cases as the functions: no
//! decision or state logic of its own. AWS access comes from the standard configuration
//! (profiles, region, `AWS_ENDPOINT_URL`).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;

use aws_config::SdkConfig;
use clap::{Parser, Subcommand};
use deckhand::adapters::aws::Clients;
use deckhand::app::Ports;
use deckhand::app::operator::{Operator, OperatorError};
use deckhand::app::rollback::{RollbackError, RollbackFunction};
use deckhand::app::scheduler::{SchedulerError, SchedulerFunction};
use deckhand::config::{Config, ConfigError};
use deckhand::domain::image::Digest;
use deckhand::domain::service::ServiceKey;
use deckhand::domain::settings::{TAG_AWAKE, TAG_DEPLOY};
use deckhand::ports::PortError;
use serde_json::json;

mod init;
mod print;
mod report;
mod status;

use print::{print_history, print_json, print_redriven, print_reports, print_summary};
mod check;
mod check_pair;
mod check_registry;
pub mod redrive;
pub mod redrive_aws;
pub mod wait;
pub(crate) mod wait_pair;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Help, version, or a command line that does not parse: clap prints it.
    #[error("{0}")]
    Usage(#[from] clap::Error),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("`{value}` is not {what}")]
    Argument { value: String, what: &'static str },
    #[error("{0}")]
    Operator(#[from] OperatorError),
    #[error("{0}")]
    Scheduler(#[from] SchedulerError),
    #[error("{0}")]
    Rollback(#[from] RollbackError),
    #[error("{0}")]
    Aws(#[from] PortError),
    #[error("{0}")]
    Setup(String),
    /// `redrive` sent back what it could; these messages failed again or could not be read.
    #[error("{0} message(s) left in the failure queue")]
    LeftInQueue(usize),
    /// `wait`: the push ended without a completed deployment (exit status 1).
    #[error("{0}")]
    DeployFailed(String),
    /// `wait`: the time ran out first (exit status 2).
    #[error("timed out: {0}")]
    TimedOut(String),
    #[error("could not write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// The process's exit status for what `run` returned: 0 for success (and help), 2 for a
/// command line that does not parse and for `wait` running out of time, 1 for anything else
/// (`wait`: the push failed, was rolled back or will not deploy).
pub fn exit_status(result: &Result<(), CliError>) -> u8 {
    match result {
        Ok(()) => 0,
        Err(CliError::Usage(e)) if !e.use_stderr() => 0,
        Err(CliError::Usage(_) | CliError::TimedOut(_)) => 2,
        Err(_) => 1,
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "deckhand",
    version,
    about = "Operate deckhand: what it did, and its levers"
)]
struct Cli {
    /// The DynamoDB table deckhand keeps its state in.
    #[arg(
        long,
        env = "DECKHAND_TABLE",
        default_value = "deckhand",
        global = true
    )]
    table: String,
    /// The SNS topic deckhand publishes to (needed by wake and sleep, which notify).
    #[arg(long, env = "DECKHAND_TOPIC_ARN", global = true)]
    topic_arn: Option<String>,
    /// The chat topic of the Slack channel (the stack's ChatTopicArn output): what the command
    /// notifies goes there too, as the functions' notifications do.
    #[arg(long, env = "DECKHAND_CHAT_TOPIC_ARN", global = true)]
    chat_topic_arn: Option<String>,
    /// Only this cluster (default: DECKHAND_CLUSTERS, else every cluster).
    #[arg(long, global = true)]
    cluster: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// The AWS profile to sign in with: SSO (after `aws sso login`), `credential_process`,
    /// role or keys (default: AWS_PROFILE, else the standard chain).
    #[arg(long, global = true)]
    profile: Option<String>,
    /// The AWS region (default: AWS_REGION, else the profile's).
    #[arg(long, global = true)]
    region: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// The AWS configuration the command line runs with: the standard chain, with the profile and
/// region the arguments name. Arguments that do not parse leave it standard: `run` reports them.
pub async fn load_sdk(args: &[OsString]) -> SdkConfig {
    // Every call bounded as the functions bound theirs: the same retries and timeouts.
    let mut loader = deckhand::lambda::sdk_loader();
    if let Ok(cli) = Cli::try_parse_from(args) {
        if let Some(profile) = cli.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = cli.region {
            loader = loader.region(aws_config::Region::new(region));
        }
    }
    loader.load().await
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Every opted-in service: policy, running image, known-good revision, latest deployment,
    /// asleep or awake, quarantined digests, tag problems.
    Status,
    /// A service's decisions and actions, newest first.
    History {
        service: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Roll a service back by hand, through the same path as an alarm: to REVISION
    /// (family:revision or an ARN) or its known-good revision; the digest it ran is quarantined.
    Rollback {
        service: String,
        #[arg(long)]
        to: Option<String>,
    },
    /// Freeze automatic deploys of a service: pushes are recorded as skipped.
    Pause { service: String },
    /// Unfreeze automatic deploys.
    Resume { service: String },
    /// Let a service deployment waiting at an ECS pause hook go on (ContinueServiceDeployment
    /// CONTINUE), or move the traffic of a pair waiting at its traffic gate (either side's name).
    Approve { service: String },
    /// Roll back a service deployment waiting at an ECS pause hook (ContinueServiceDeployment
    /// ROLLBACK), or fail the deployment of a pair waiting at its traffic gate.
    Reject { service: String },
    /// Name the revision rollbacks go to (family:revision or an ARN), until a deployment
    /// completed later proves itself.
    KnownGood { service: String, revision: String },
    /// Wait for deckhand's result of a push: exit 0 once ECS completed the digest's deployment
    /// (or the service already ran it), 1 when it failed, was rolled back or will not deploy
    /// (quarantined, paused), 2 when the time runs out.
    Wait {
        service: String,
        /// The pushed digest (`docker push` and `aws ecr` print it).
        #[arg(long)]
        digest: String,
        #[arg(long, default_value = "20m")]
        timeout: String,
        /// How often to read the table.
        #[arg(long, default_value = "10s")]
        interval: String,
    },
    /// Lift the quarantine of a digest so that its next push deploys.
    Release { service: String, digest: String },
    /// Deploy the push held for a service now, through its change calendar's freeze (recorded
    /// with your name); every other gate still applies.
    DeployHeld { service: String },
    /// Deploy to a service tagged deckhand:promote-from the known-good revision its upstream
    /// last announced, by hand (recorded with your name); every gate still applies.
    Promote { service: String },
    /// Keep a service awake until the expiry, whatever its schedule says.
    Wake {
        service: String,
        #[arg(
            long = "for",
            conflicts_with = "until",
            required_unless_present = "until"
        )]
        duration: Option<String>,
        #[arg(long)]
        until: Option<String>,
    },
    /// Put a service to sleep until the expiry (default: its next scheduled wake-up).
    Sleep {
        service: String,
        #[arg(long = "for", conflicts_with = "until")]
        duration: Option<String>,
        #[arg(long)]
        until: Option<String>,
    },
    /// What a reconcile would do at that instant, changing nothing.
    Plan {
        #[arg(long)]
        at: Option<String>,
    },
    /// Check every opted-in service's tags and say what they mean.
    Check,
    /// Deployments, failures, rollbacks, what a trial would have done (would-deploy,
    /// would-roll-back), time from alarm to rollback, and task-hours saved by sleeping, per
    /// service and in total.
    Report {
        #[arg(long, default_value = "30d")]
        since: String,
        /// Per service, what deckhand would have done (a trial: `deckhand:dry-run` or the
        /// stack's DryRun) beside what actually happened.
        #[arg(long)]
        trial: bool,
    },
    /// Send every event of the failure queue back to its function (Lambda's on-failure records
    /// unwrapped), and delete what it handled; what fails again stays. A reconcile is not
    /// replayed: it is deleted, the next scheduled one does its work.
    Redrive {
        /// The failure queue (the stack's output FailureQueueUrl).
        #[arg(long, env = "DECKHAND_FAILURE_QUEUE_URL")]
        queue_url: String,
        /// The stack's three functions (its outputs DeployFunctionArn, RollbackFunctionArn,
        /// SchedulerFunctionArn): a message for any other is refused and left in the queue.
        #[arg(long, env = "DECKHAND_FUNCTIONS", value_delimiter = ' ', num_args = 1.., required = true)]
        functions: Vec<String>,
        /// Say what would be sent; send and delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// At most this many messages.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Create the table and the topic (for a local emulator or a first try without the template).
    Init {
        #[arg(long, default_value = "deckhand")]
        topic: String,
    },
}

pub async fn run(
    args: impl IntoIterator<Item = OsString>,
    sdk: &SdkConfig,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let cli = Cli::try_parse_from(args)?;
    let clients = Clients::new(sdk);
    let config = |topic_required: bool| -> Result<Config, CliError> {
        let topic = match (&cli.topic_arn, topic_required) {
            (Some(t), _) => t.clone(),
            (None, false) => "unused".into(),
            (None, true) => {
                return Err(CliError::Setup(
                    "--topic-arn or DECKHAND_TOPIC_ARN is required: this command notifies".into(),
                ));
            }
        };
        Ok(Config::from_lookup(|name| match name {
            "DECKHAND_TABLE" => Some(cli.table.clone()),
            "DECKHAND_TOPIC_ARN" => Some(topic.clone()),
            "DECKHAND_CHAT_TOPIC_ARN" => cli.chat_topic_arn.clone(),
            "DECKHAND_CLUSTERS" => cli
                .cluster
                .clone()
                .or_else(|| std::env::var("DECKHAND_CLUSTERS").ok()),
            other => std::env::var(other).ok(),
        })?)
    };
    match &cli.command {
        Command::Init { topic } => init::init(&clients, &cli.table, topic, cli.json, out).await,
        Command::Redrive {
            queue_url,
            functions: stack_functions,
            dry_run,
            limit,
        } => {
            let queue = redrive_aws::SqsQueue::new(aws_sdk_sqs::Client::new(sdk), queue_url);
            let functions = redrive_aws::LambdaFunctions::new(aws_sdk_lambda::Client::new(sdk));
            let options = redrive::Options {
                dry_run: *dry_run,
                limit: *limit,
                functions: stack_functions.clone(),
                now: chrono::Utc::now(),
            };
            let done = redrive::redrive(&queue, &functions, options).await?;
            print_redriven(&done, cli.json, out)?;
            let left = done
                .iter()
                .filter(|r| r.disposition.left_in_queue())
                .count();
            if left > 0 && !dry_run {
                return Err(CliError::LeftInQueue(left));
            }
            Ok(())
        }
        Command::History { service, limit } => {
            let ports = clients.ports(&config(false)?);
            let records = ports.store.history(&key(service)?, *limit).await?;
            print_history(&records, cli.json, out)
        }
        Command::Rollback { service, to } => {
            let key = key(service)?;
            let config = config(true)?;
            let rollback = RollbackFunction::new(clients.ports(&config), config);
            let summary = rollback
                .manual(&key, to.as_deref(), &operator_name(sdk).await?)
                .await?;
            print_summary(&summary, cli.json, out)
        }
        Command::Pause { service } => {
            let operator = Operator::new(clients.ports(&config(false)?), operator_name(sdk).await?);
            let report = operator.pause(&key(service)?).await?;
            print_reports(&[report], cli.json, out)
        }
        Command::Resume { service } => {
            let operator = Operator::new(clients.ports(&config(false)?), operator_name(sdk).await?);
            let report = operator.resume(&key(service)?).await?;
            print_reports(&[report], cli.json, out)
        }
        Command::Approve { service } => {
            let operator = Operator::new(clients.ports(&config(false)?), operator_name(sdk).await?);
            let report = operator.approve(&key(service)?).await?;
            print_reports(&[report], cli.json, out)
        }
        Command::Reject { service } => {
            let operator = Operator::new(clients.ports(&config(false)?), operator_name(sdk).await?);
            let report = operator.reject(&key(service)?).await?;
            print_reports(&[report], cli.json, out)
        }
        Command::KnownGood { service, revision } => {
            let operator = Operator::new(clients.ports(&config(false)?), operator_name(sdk).await?);
            let report = operator.known_good(&key(service)?, revision).await?;
            print_reports(&[report], cli.json, out)
        }
        Command::Wait {
            service,
            digest,
            timeout,
            interval,
        } => {
            let key = key(service)?;
            let digest = parse_digest(digest)?;
            let duration = |text: &str| {
                deckhand::domain::duration::parse_duration(text)
                    .ok()
                    .and_then(|d| d.to_std().ok())
                    .ok_or_else(|| CliError::Argument {
                        value: text.to_owned(),
                        what: "a duration such as 90s, 20m or 1h",
                    })
            };
            let (timeout, interval) = (duration(timeout)?, duration(interval)?);
            let ports = clients.ports(&config(false)?);
            let waited = wait::wait(&ports, &key, &digest, timeout, interval).await?;
            if cli.json {
                print_json(out, &waited)?;
            } else {
                writeln!(
                    out,
                    "{}  {}: {}",
                    waited.service, waited.result, waited.reason
                )?;
            }
            match waited.result.as_str() {
                "completed" => Ok(()),
                "failed" => Err(CliError::DeployFailed(waited.reason)),
                _ => Err(CliError::TimedOut(waited.reason)),
            }
        }
        Command::Promote { service } => {
            let config = config(true)?;
            let operator = Operator::new(clients.ports(&config), operator_name(sdk).await?);
            let reports = operator.promote(&key(service)?, config).await?;
            print_reports(&reports, cli.json, out)
        }
        Command::DeployHeld { service } => {
            // It deploys: the topic hears of it.
            let config = config(true)?;
            let operator = Operator::new(clients.ports(&config), operator_name(sdk).await?);
            let reports = operator.deploy_held(&key(service)?, config).await?;
            print_reports(&reports, cli.json, out)
        }
        Command::Release { service, digest } => {
            let digest = parse_digest(digest)?;
            let operator = Operator::new(clients.ports(&config(false)?), operator_name(sdk).await?);
            let report = operator.release(&key(service)?, &digest).await?;
            print_reports(&[report], cli.json, out)
        }
        Command::Wake {
            service,
            duration,
            until,
        }
        | Command::Sleep {
            service,
            duration,
            until,
        } => {
            let action = if matches!(cli.command, Command::Wake { .. }) {
                "wake"
            } else {
                "sleep"
            };
            key(service)?;
            let mut request = json!({"action": action, "service": service});
            if let Some(d) = duration {
                request["for"] = json!(d);
            }
            if let Some(u) = until {
                request["until"] = json!(u);
            }
            let scheduler = SchedulerFunction::new(clients.ports(&config(true)?), config(true)?);
            let summary = scheduler.handle(&request).await?;
            print_summary(&summary, cli.json, out)
        }
        Command::Plan { at } => {
            let mut request = json!({"action": "reconcile", "dryRun": true});
            if let Some(at) = at {
                request["at"] = json!(at);
            }
            // A plan publishes nothing; any topic will do.
            let config = config(false)?;
            let scheduler = SchedulerFunction::new(clients.ports(&config), config);
            let summary = scheduler.handle(&request).await?;
            print_summary(&summary, cli.json, out)
        }
        Command::Status => {
            let config = config(false)?;
            let ports = clients.ports(&config);
            status::status(&ports, &config, cli.json, out).await
        }
        Command::Report { since, trial } => {
            let since = deckhand::domain::duration::parse_duration(since).map_err(|_| {
                CliError::Argument {
                    value: since.clone(),
                    what: "a duration such as 7d, 30d or 12h",
                }
            })?;
            let config = config(false)?;
            let ports = clients.ports(&config);
            report::report(&ports, &config, since, (*trial, cli.json), out).await
        }
        Command::Check => {
            let config = config(false)?;
            let ports = clients.ports(&config);
            // This account: the stack's, or the one the operator signs in.
            let account = match config.home() {
                Some(home) => home.account,
                None => operator_name(sdk)
                    .await?
                    .split(':')
                    .nth(4)
                    .unwrap_or_default()
                    .to_owned(),
            };
            check::check(&ports, &config, &account, cli.json, out).await
        }
    }
}

fn key(service: &str) -> Result<ServiceKey, CliError> {
    service.parse().map_err(|_| CliError::Argument {
        value: service.to_owned(),
        what: "a service: write CLUSTER/SERVICE",
    })
}

fn parse_digest(digest: &str) -> Result<Digest, CliError> {
    digest.parse().map_err(|_| CliError::Argument {
        value: digest.to_owned(),
        what: "a digest (sha256: and 64 hex digits)",
    })
}

/// Who runs the command, as AWS knows them (`sts:GetCallerIdentity`, which needs no
/// permission): the ARN recorded as the operator. A name from the environment (`$USER`) is
/// whatever the person typed, and says nothing AWS would stand by.
async fn operator_name(sdk: &SdkConfig) -> Result<String, CliError> {
    let identity = aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| {
            CliError::Setup(format!(
                "could not tell who you are (sts:GetCallerIdentity), which deckhand records as the operator: {}",
                aws_sdk_sts::error::DisplayErrorContext(&e)
            ))
        })?;
    identity
        .arn()
        .map(str::to_owned)
        .ok_or_else(|| CliError::Setup("sts:GetCallerIdentity answered without an ARN".into()))
}

/// Services in the managed clusters that carry a deckhand tag.
pub(crate) async fn opted_in(
    ports: &Ports,
    config: &Config,
) -> Result<Vec<deckhand::domain::fleet::ServiceView>, CliError> {
    let mut keys = BTreeSet::new();
    for tag in [TAG_DEPLOY, TAG_AWAKE] {
        for found in ports.ecs.find_services(tag).await? {
            if let Some(key) = ServiceKey::from_arn(&found.arn)
                && config.manages_cluster(key.cluster())
            {
                keys.insert(key);
            }
        }
    }
    let keys: Vec<ServiceKey> = keys.into_iter().collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut services = ports.ecs.describe_services(&keys).await?;
    services.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(services)
}

#[cfg(test)]
mod sdk_tests {
    use super::*;

    /// Every call of the command line is bounded as the functions' are: a command never hangs
    /// on a throttled or unreachable endpoint longer than a function would.
    #[tokio::test]
    async fn the_command_line_bounds_every_call_as_the_functions_do() {
        let sdk = load_sdk(&[
            "deckhand".into(),
            "--region".into(),
            "eu-west-1".into(),
            "status".into(),
        ])
        .await;
        let timeouts = sdk.timeout_config().expect("a timeout configuration");
        assert_eq!(
            timeouts.operation_timeout(),
            Some(deckhand::config::OPERATION_TIMEOUT)
        );
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(deckhand::config::ATTEMPT_TIMEOUT)
        );
        assert_eq!(sdk.retry_config().map(|r| r.max_attempts()), Some(5));
        assert_eq!(
            sdk.region().map(ToString::to_string).as_deref(),
            Some("eu-west-1")
        );
    }
}
