//! The `rollback` function: CloudWatch alarms, in their three shapes.

use deckhand::app::rollback::RollbackFunction;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    deckhand::lambda::init_tracing();
    let (config, ports) = deckhand::lambda::start().await?;
    let function = &RollbackFunction::new(ports, config);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        function
            .handle(&event.payload)
            .await
            .map_err(Diagnostic::from)
    }))
    .await
}
