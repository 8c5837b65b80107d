//! What every function's `main` shares: logging, configuration, SDK clients, error mapping.

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_async::rt::sleep::default_async_sleep;
use aws_smithy_async::time::{SharedTimeSource, SystemTimeSource};
use aws_smithy_http_client::tls;
use lambda_runtime::Diagnostic;
use tracing_subscriber::filter::LevelFilter;

use crate::app::Ports;
use crate::app::deploy::DeployError;
use crate::app::rollback::RollbackError;
use crate::app::scheduler::SchedulerError;
use crate::config::{ATTEMPT_TIMEOUT, Config, ConfigError, OPERATION_TIMEOUT};

/// JSON logs when Lambda asks for them (`AWS_LAMBDA_LOG_FORMAT=JSON`), text otherwise, at the
/// level Lambda's log level says (`AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO). A level
/// only: per-module directives would bring a regular-expression engine into every function.
pub fn init_tracing() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|level| level.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let logs = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_max_level(level);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}

/// Attempts per AWS call: the SDK's standard retry (backoff with jitter on throttling and
/// server faults) with room for a reconcile of a whole fleet.
const MAX_ATTEMPTS: u32 = 5;

/// One HTTPS client for every AWS client: rustls on ring.
fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

fn timeout_config() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// The standard AWS configuration with deckhand's HTTPS client, retry and timeout policy: what
/// the command line loads (profiles, SSO and the rest of aws-config's chain), and the tests,
/// with an endpoint of theirs.
pub fn sdk_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
}

/// The AWS configuration of a function in Lambda, with the same client and policy, from what
/// Lambda puts in its environment: the region (`AWS_REGION`), the role's credentials
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and, in the local loop,
/// an endpoint (`AWS_ENDPOINT_URL`). aws-config's loader would also link its chain of credential
/// providers (profiles, SSO, web identity through STS, container and instance metadata), which a
/// function never uses.
pub fn lambda_sdk_config() -> Result<aws_config::SdkConfig, ConfigError> {
    let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let region = var("AWS_REGION").ok_or(ConfigError::Missing("AWS_REGION"))?;
    let credentials = aws_config::environment::EnvironmentVariableCredentialsProvider::new();
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(https_client())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .sleep_impl(default_async_sleep().ok_or(ConfigError::Missing("an async runtime"))?)
        .time_source(SharedTimeSource::new(SystemTimeSource::new()));
    Ok(match var("AWS_ENDPOINT_URL") {
        Some(endpoint) => config.endpoint_url(endpoint).build(),
        None => config.build(),
    })
}

/// When the invocation times out, as Lambda says (milliseconds since the epoch). A deadline
/// already passed when the invocation starts is no deadline Lambda gives: `cargo lambda watch`
/// sends the timeout itself (600000) in that header; then none is assumed.
pub fn deadline(context: &lambda_runtime::Context) -> Option<chrono::DateTime<chrono::Utc>> {
    i64::try_from(context.deadline)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .filter(|deadline| *deadline > chrono::Utc::now())
}

/// Reads the configuration and builds the AWS ports once, at cold start.
pub async fn start() -> Result<(Config, Ports), lambda_runtime::Error> {
    Ok(started()?.0)
}

/// The same, with the check functions of pairs' traffic gates and the change calendars (the
/// deploy function's).
pub async fn start_deploy() -> Result<(Config, Ports), lambda_runtime::Error> {
    let ((config, ports), sdk) = started()?;
    Ok((config, crate::adapters::aws::deploy_ports(ports, &sdk)))
}

/// The same, announcing known-good revisions on EventBridge (the scheduler's).
pub async fn start_announcing() -> Result<(Config, Ports), lambda_runtime::Error> {
    let ((config, ports), sdk) = started()?;
    Ok((config, crate::adapters::aws::with_announcer(ports, &sdk)))
}

fn started() -> Result<((Config, Ports), aws_config::SdkConfig), lambda_runtime::Error> {
    let config = Config::from_env()?;
    let sdk = lambda_sdk_config()?;
    let mut ports = crate::adapters::aws::Clients::new(&sdk).ports(&config);
    ports.metrics = std::sync::Arc::new(crate::adapters::emf::EmfLog);
    Ok(((config, ports), sdk))
}

impl From<DeployError> for Diagnostic {
    fn from(error: DeployError) -> Self {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

impl From<SchedulerError> for Diagnostic {
    fn from(error: SchedulerError) -> Self {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

impl From<RollbackError> for Diagnostic {
    fn from(error: RollbackError) -> Self {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(deadline: u64) -> lambda_runtime::Context {
        let mut context = lambda_runtime::Context::default();
        context.deadline = deadline;
        context
    }

    #[test]
    fn a_deadline_is_read_from_lambda_and_a_local_runtimes_timeout_is_not_taken_for_one() {
        let in_five_minutes = chrono::Utc::now() + chrono::TimeDelta::minutes(5);
        let ms = u64::try_from(in_five_minutes.timestamp_millis()).unwrap_or_default();
        assert_eq!(
            deadline(&context(ms)).map(|d| d.timestamp_millis()),
            Some(in_five_minutes.timestamp_millis())
        );
        // What `cargo lambda watch` sends: the timeout, not an instant.
        assert_eq!(deadline(&context(600_000)), None);
        assert_eq!(deadline(&context(0)), None);
    }
}
