//! What every function's `main` shares: logging, configuration, SDK clients, error mapping.

use lambda_runtime::Diagnostic;

use crate::app::Ports;
use crate::app::deploy::DeployError;
use crate::app::rollback::RollbackError;
use crate::app::scheduler::SchedulerError;
use crate::config::Config;

/// JSON logs when Lambda asks for them (`AWS_LAMBDA_LOG_FORMAT=JSON`), text otherwise.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Attempts per AWS call: the SDK's standard retry (backoff with jitter on throttling and
/// server faults) with room for a reconcile of a whole fleet.
const MAX_ATTEMPTS: u32 = 5;

/// How long one attempt of an AWS call may take, and one call with all its retries. The
/// bound on a call is what lets a service's lock lease cover what it guards
/// (`app::locking::LEASE`).
pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
pub const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The standard AWS configuration with deckhand's retry and timeout policy; the tests load it
/// too, with an endpoint of theirs.
pub fn sdk_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
}

/// When the invocation times out, as Lambda says (milliseconds since the epoch).
pub fn deadline(context: &lambda_runtime::Context) -> Option<chrono::DateTime<chrono::Utc>> {
    i64::try_from(context.deadline)
        .ok()
        .filter(|ms| *ms > 0)
        .and_then(chrono::DateTime::from_timestamp_millis)
}

/// Reads the configuration and builds the AWS ports once, at cold start.
pub async fn start() -> Result<(Config, Ports), lambda_runtime::Error> {
    let config = Config::from_env()?;
    let sdk = sdk_loader().load().await;
    let ports = crate::adapters::aws::Clients::new(&sdk).ports(&config);
    Ok((config, ports))
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
