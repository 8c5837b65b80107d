//! The `deploy` function: ECR pushes and ECS deployment state changes.

use deckhand::app::deploy::DeployFunction;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    deckhand::lambda::init_tracing();
    let (config, ports) = deckhand::lambda::start_deploy().await?;
    let function = &DeployFunction::new(ports, config);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        function
            .handle(&event.payload)
            .await
            .map_err(Diagnostic::from)
    }))
    .await
}
