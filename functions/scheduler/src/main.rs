//! The `scheduler` function: reconciles from the schedule, and operators' wake and sleep.

use deckhand::app::scheduler::SchedulerFunction;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    deckhand::lambda::init_tracing();
    let (config, ports) = deckhand::lambda::start_announcing().await?;
    let function = &SchedulerFunction::new(ports, config);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = deckhand::lambda::deadline(&event.context);
        function
            .handle_within(&event.payload, deadline)
            .await
            .map_err(Diagnostic::from)
    }))
    .await
}
