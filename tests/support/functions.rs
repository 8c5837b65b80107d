//! deckhand's three functions, run in the test process behind the emulator's Lambda Invoke
//! (`scripts/emulator_lambda.py`): an invocation of a stack's function reaches the same
//! handler the Lambda binary runs, with the ports of the function's role, and answers as
//! Lambda does (a summary, or the error object the runtime reports).

use std::convert::Infallible;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use deckhand::app::deploy::DeployFunction;
use deckhand::app::rollback::RollbackFunction;
use deckhand::app::scheduler::SchedulerFunction;
use deckhand::ports::Clock;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use lambda_runtime::Diagnostic;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::harness::{Role, Stack};

struct Handlers {
    deploy: DeployFunction,
    rollback: RollbackFunction,
    scheduler: SchedulerFunction,
}

/// The functions of one stack, served until dropped.
pub struct FunctionHost {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FunctionHost {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl FunctionHost {
    /// Serves `stack`'s functions on a free loopback port and tells the emulator where they run.
    ///
    /// On a thread of their own, one invocation after another as one Lambda instance runs
    /// them: the scheduler's handler is not `Send` (nor need it be, for Lambda's runtime), so
    /// it cannot run on the test's own multi-task runtime.
    pub fn start(stack: &Stack, clock: Arc<dyn Clock>) -> Self {
        let config = stack.config();
        let handlers = Handlers {
            deploy: DeployFunction::new(stack.ports(Role::Deploy, clock.clone()), config.clone()),
            rollback: RollbackFunction::new(
                stack.ports(Role::Rollback, clock.clone()),
                config.clone(),
            ),
            scheduler: SchedulerFunction::new(stack.ports(Role::Scheduler, clock), config),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free loopback port for the functions");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let address = listener.local_addr().expect("the functions' address");
        for role in [Role::Deploy, Role::Rollback, Role::Scheduler] {
            stack.run_function_at(role, &format!("http://{address}/{}", role.name()));
        }
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the functions");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("a tokio listener");
                let handlers = Rc::new(handlers);
                loop {
                    let stream = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                    };
                    let handlers = handlers.clone();
                    let service = hyper::service::service_fn(move |request| {
                        let handlers = handlers.clone();
                        async move { invoke(&handlers, request).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            });
        });
        Self {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

async fn invoke(
    handlers: &Handlers,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let function = request.uri().path().trim_start_matches('/').to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let answer: Result<Value, Diagnostic> = match serde_json::from_slice::<Value>(&body) {
        // Lambda's runtime refuses a payload that is not JSON before the handler sees it.
        Err(e) => Err(Diagnostic {
            error_type: "Runtime.UnmarshalError".into(),
            error_message: e.to_string(),
        }),
        Ok(event) => match function.as_str() {
            "deploy" => handlers
                .deploy
                .handle(&event)
                .await
                .map(|s| json!(s))
                .map_err(Diagnostic::from),
            "rollback" => handlers
                .rollback
                .handle(&event)
                .await
                .map(|s| json!(s))
                .map_err(Diagnostic::from),
            "scheduler" => handlers
                .scheduler
                .handle(&event)
                .await
                .map(|s| json!(s))
                .map_err(Diagnostic::from),
            other => Err(Diagnostic {
                error_type: "Runtime.HandlerNotFound".into(),
                error_message: format!("no function {other}"),
            }),
        },
    };
    let mut response = Response::builder().header("Content-Type", "application/json");
    let body = match answer {
        Ok(summary) => summary.to_string(),
        Err(d) => {
            response = response.header("X-Function-Error", "Unhandled");
            json!({"errorType": d.error_type, "errorMessage": d.error_message}).to_string()
        }
    };
    Ok(response
        .body(Full::new(Bytes::from(body)))
        .expect("a response"))
}
