//! A minimal Lambda Runtime API for one function process: the protocol Lambda speaks to a
//! custom runtime (`GET /2018-06-01/runtime/invocation/next`, `POST .../{id}/response`,
//! `POST .../{id}/error`, `POST .../init/error`), enough to run the release binaries as Lambda
//! would and time them.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

const PREFIX: &str = "/2018-06-01/runtime";

/// What the function answered.
#[derive(Debug)]
pub enum Outcome {
    Response(Value),
    Error(String),
}

struct Invocation {
    id: String,
    event: Bytes,
    answered: oneshot::Sender<(Outcome, Instant)>,
    handed_out: oneshot::Sender<Instant>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Invocation>,
    waiting: HashMap<String, oneshot::Sender<(Outcome, Instant)>>,
    first_poll: Option<Instant>,
    init_error: Option<String>,
    next_id: u64,
}

struct Shared {
    state: Mutex<State>,
    queued: Notify,
    polled: Notify,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port for the runtime API");
        let address = listener.local_addr().expect("its address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            queued: Notify::new(),
            polled: Notify::new(),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Self {
            address,
            shared,
            accept,
        }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// When the function first asked for an invocation: the end of its cold start.
    pub async fn first_poll(&self, timeout: Duration) -> Result<Instant, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let polled = self.shared.polled.notified();
            {
                let state = lock(&self.shared.state);
                if let Some(error) = &state.init_error {
                    return Err(format!("init error: {error}"));
                }
                if let Some(at) = state.first_poll {
                    return Ok(at);
                }
            }
            if tokio::time::timeout_at(deadline, polled).await.is_err() {
                return Err("the function never asked for an invocation".into());
            }
        }
    }

    /// Hands `event` to the function and waits for its answer. The latency runs from the
    /// moment the event is handed out to the moment the answer arrives.
    pub async fn invoke(&self, event: &Value) -> (Outcome, Duration) {
        let (answered, answer) = oneshot::channel();
        let (handed_out, handed) = oneshot::channel();
        {
            let mut state = lock(&self.shared.state);
            state.next_id += 1;
            let id = format!("bench-{}", state.next_id);
            state.queue.push_back(Invocation {
                id,
                event: Bytes::from(event.to_string()),
                answered,
                handed_out,
            });
        }
        self.shared.queued.notify_waiters();
        self.shared.queued.notify_one();
        let started = handed.await.expect("the event was handed out");
        let (outcome, at) = answer.await.expect("the function answered");
        (outcome, at - started)
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, hyper::Error>(route(&shared, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

async fn route(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let arrived = Instant::now();
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().strip_prefix(PREFIX).unwrap_or_default();
    match (&parts.method, path) {
        (&Method::GET, "/invocation/next") => next(shared, arrived).await,
        (&Method::POST, "/init/error") => {
            lock(&shared.state).init_error = Some(String::from_utf8_lossy(&body).into_owned());
            shared.polled.notify_waiters();
            answer(StatusCode::ACCEPTED, Bytes::new())
        }
        (&Method::POST, path) => {
            let Some((id, kind)) = path
                .strip_prefix("/invocation/")
                .and_then(|rest| rest.rsplit_once('/'))
            else {
                return answer(StatusCode::NOT_FOUND, Bytes::new());
            };
            let outcome = match kind {
                "response" => {
                    Outcome::Response(serde_json::from_slice(&body).unwrap_or(Value::Null))
                }
                "error" => Outcome::Error(String::from_utf8_lossy(&body).into_owned()),
                _ => return answer(StatusCode::NOT_FOUND, Bytes::new()),
            };
            if let Some(waiter) = lock(&shared.state).waiting.remove(id) {
                let _ = waiter.send((outcome, arrived));
            }
            answer(StatusCode::ACCEPTED, Bytes::new())
        }
        _ => answer(StatusCode::NOT_FOUND, Bytes::new()),
    }
}

/// Long-polls until an invocation is queued, as Lambda does.
async fn next(shared: &Shared, arrived: Instant) -> Response<Full<Bytes>> {
    {
        let mut state = lock(&shared.state);
        state.first_poll.get_or_insert(arrived);
    }
    shared.polled.notify_waiters();
    loop {
        let queued = shared.queued.notified();
        let invocation = lock(&shared.state).queue.pop_front();
        if let Some(invocation) = invocation {
            lock(&shared.state)
                .waiting
                .insert(invocation.id.clone(), invocation.answered);
            let deadline = chrono::Utc::now().timestamp_millis() + 900_000;
            let mut response = answer(StatusCode::OK, invocation.event);
            let headers = response.headers_mut();
            let header = |v: &str| v.parse().expect("a header value");
            headers.insert("lambda-runtime-aws-request-id", header(&invocation.id));
            headers.insert("lambda-runtime-deadline-ms", header(&deadline.to_string()));
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                header("arn:aws:lambda:us-east-1:123456789012:function:deckhand-bench"),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                header("Root=1-00000000-000000000000000000000000"),
            );
            let _ = invocation.handed_out.send(Instant::now());
            return response;
        }
        queued.await;
    }
}
