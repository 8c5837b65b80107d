//! What every function's `main` shares: logging, configuration, SDK clients, error mapping.

use lambda_runtime::Diagnostic;

use crate::app::Ports;
use crate::app::deploy::DeployError;
use crate::config::Config;

/// JSON logs when Lambda asks for them (`AWS_LAMBDA_LOG_FORMAT=JSON`), text otherwise.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Reads the configuration and builds the AWS ports once, at cold start.
pub async fn start() -> Result<(Config, Ports), lambda_runtime::Error> {
    let config = Config::from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
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
