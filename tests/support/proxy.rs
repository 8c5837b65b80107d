//! An HTTP proxy between the AWS SDK clients and the emulator. It logs every request by
//! service and operation, and injects faults at chosen rates per operation:
//!
//! - `Throttle`: answers `ThrottlingException` (HTTP 400) in the protocol of the service;
//! - `ServerError`: answers `InternalFailure` (HTTP 500);
//! - `Reset`: resets the connection before the request reaches the emulator;
//! - `LostResponse`: forwards the request, so the emulator applies it, then resets the
//!   connection instead of answering: the case that makes retries of non-idempotent calls
//!   dangerous;
//! - `Delay`: holds the request for a while, then forwards it;
//! - `Conflict`: answers DynamoDB's `TransactionConflictException` (HTTP 400), what a write
//!   meets while a transaction on the same item is under way (the emulator never does);
//! - `ConcurrentRevisions`: answers ECS's `ClientException` for two registrations in one family
//!   at once (the emulator never does).
//!
//! A plan may also add a fixed latency to every request, as the way to AWS does: without it the
//! emulator answers so fast that concurrent invocations hardly ever interleave. And it may
//! throttle operations with token buckets as AWS documents them (a burst, then a sustained
//! rate, per account): a request that finds its bucket empty gets `ThrottlingException`.
//!
//! Draws come from a seeded generator, so a failing run can be replayed with its seed (the
//! order of concurrent requests still varies).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderValue, TRANSFER_ENCODING};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the proxy may do to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    Throttle,
    ServerError,
    Reset,
    LostResponse,
    Delay,
    Conflict,
    ConcurrentRevisions,
}

/// The chance of each fault for one request; what is left forwards it untouched.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultRates {
    pub throttle: f64,
    pub server_error: f64,
    pub reset: f64,
    pub lost_response: f64,
    pub delay: f64,
    pub conflict: f64,
    pub concurrent_revisions: f64,
}

impl FaultRates {
    /// `rate` of requests fail, split evenly over throttling, server errors, resets and lost
    /// responses.
    pub fn failing(rate: f64) -> Self {
        let each = rate / 4.0;
        Self {
            throttle: each,
            server_error: each,
            reset: each,
            lost_response: each,
            delay: 0.0,
            conflict: 0.0,
            concurrent_revisions: 0.0,
        }
    }

    pub fn with_delays(self, rate: f64) -> Self {
        Self {
            delay: rate,
            ..self
        }
    }

    /// Always this fault.
    pub fn always(fault: Fault) -> Self {
        let mut rates = Self::default();
        *rates.slot(fault) = 1.0;
        rates
    }

    fn slot(&mut self, fault: Fault) -> &mut f64 {
        match fault {
            Fault::Throttle => &mut self.throttle,
            Fault::ServerError => &mut self.server_error,
            Fault::Reset => &mut self.reset,
            Fault::LostResponse => &mut self.lost_response,
            Fault::Delay => &mut self.delay,
            Fault::Conflict => &mut self.conflict,
            Fault::ConcurrentRevisions => &mut self.concurrent_revisions,
        }
    }

    fn draw(&self, roll: f64) -> Option<Fault> {
        let mut edge = 0.0;
        for (fault, rate) in [
            (Fault::Throttle, self.throttle),
            (Fault::ServerError, self.server_error),
            (Fault::Reset, self.reset),
            (Fault::LostResponse, self.lost_response),
            (Fault::Delay, self.delay),
            (Fault::Conflict, self.conflict),
            (Fault::ConcurrentRevisions, self.concurrent_revisions),
        ] {
            edge += rate;
            if roll < edge {
                return Some(fault);
            }
        }
        None
    }
}

/// The rates for every operation, with exceptions by operation name (`UpdateService`).
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    pub default: FaultRates,
    pub operations: HashMap<String, FaultRates>,
    /// How long a delayed request is held (up to).
    pub delay: Duration,
    /// Added to every request before it is forwarded.
    pub latency: Duration,
    /// Token buckets shared by the operations they name.
    pub buckets: Vec<Bucket>,
}

/// A token bucket: `burst` tokens, refilled at `per_second`; each request of one of its
/// operations takes one.
#[derive(Clone, Debug)]
pub struct Bucket {
    pub operations: Vec<String>,
    pub burst: f64,
    pub per_second: f64,
}

impl FaultPlan {
    /// No faults: the proxy only counts.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn everywhere(rates: FaultRates) -> Self {
        Self {
            default: rates,
            operations: HashMap::new(),
            delay: Duration::from_millis(150),
            latency: Duration::ZERO,
            buckets: Vec::new(),
        }
    }

    pub fn with_latency(self, latency: Duration) -> Self {
        Self { latency, ..self }
    }

    /// Throttles these operations together with a token bucket.
    pub fn with_bucket(mut self, operations: &[&str], burst: u32, per_second: f64) -> Self {
        self.buckets.push(Bucket {
            operations: operations.iter().map(|o| (*o).to_owned()).collect(),
            burst: f64::from(burst),
            per_second,
        });
        self
    }

    pub fn on(mut self, operation: &str, rates: FaultRates) -> Self {
        self.operations.insert(operation.to_owned(), rates);
        self
    }

    fn rates(&self, operation: &str) -> &FaultRates {
        self.operations.get(operation).unwrap_or(&self.default)
    }
}

/// One request as the proxy saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The signing name of the service: `dynamodb`, `ecs`, `sns`, ...
    pub service: String,
    pub operation: String,
    pub fault: Option<Fault>,
    /// When the request reached the proxy.
    pub arrived: Instant,
    /// When the proxy answered it (or dropped it); `None` while it is in flight.
    pub answered: Option<Instant>,
}

impl Call {
    /// `service.Operation`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.service, self.operation)
    }
}

/// The stage of each call, in the order given: 1 for a call that arrived before any other was
/// answered, else one more than the deepest call answered before it arrived. Calls made side by
/// side share a stage; a call that had to wait for an answer starts a new one. Every answered
/// call could have been waited for, so this is the most the caller can have waited in sequence.
pub fn call_stages(calls: &[Call]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..calls.len()).collect();
    order.sort_by_key(|&i| calls[i].arrived);
    let mut stage = vec![0; calls.len()];
    for (n, &i) in order.iter().enumerate() {
        let before = order[..n]
            .iter()
            .filter(|&&j| calls[j].answered.is_some_and(|a| a <= calls[i].arrived))
            .map(|&j| stage[j])
            .max()
            .unwrap_or(0);
        stage[i] = before + 1;
    }
    stage
}

/// The sequential stages of a set of calls (see [`call_stages`]).
pub fn stages(calls: &[Call]) -> usize {
    call_stages(calls).into_iter().max().unwrap_or(0)
}

struct Shared {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    plan: Mutex<FaultPlan>,
    /// Tokens left in each of the plan's buckets, and when they were counted.
    tokens: Mutex<Vec<(f64, std::time::Instant)>>,
    rng: Mutex<fastrand::Rng>,
    calls: Mutex<Vec<Call>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    seed: u64,
    accept: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Proxy {
    /// A proxy on a free loopback port in front of `upstream` (`http://host:port`), with a
    /// random seed (see [`Proxy::seed`]).
    pub async fn start(upstream: &str, plan: FaultPlan) -> Self {
        let seed = std::env::var("DECKHAND_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| fastrand::u64(..));
        Self::start_seeded(upstream, plan, seed).await
    }

    pub async fn start_seeded(upstream: &str, plan: FaultPlan, seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port for the proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            tokens: Mutex::new(Vec::new()),
            plan: Mutex::new(plan),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            calls: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Self {
            address,
            shared,
            seed,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The seed of the draws; `DECKHAND_FAULT_SEED` replays it.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn set_plan(&self, plan: FaultPlan) {
        *lock(&self.shared.plan) = plan;
        lock(&self.shared.tokens).clear();
    }

    /// Every request so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.shared.calls).clone()
    }

    /// The names (`service.Operation`) of the requests so far.
    pub fn call_names(&self) -> Vec<String> {
        self.calls().iter().map(Call::name).collect()
    }

    pub fn clear(&self) {
        lock(&self.shared.calls).clear();
    }

    /// How many requests met each fault.
    pub fn fault_counts(&self) -> HashMap<Fault, usize> {
        let mut counts = HashMap::new();
        for fault in self.calls().iter().filter_map(|c| c.fault) {
            *counts.entry(fault).or_default() += 1;
        }
        counts
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // Closing a connection sends a reset, as a dropped connection does on the way to AWS.
        let _ = stream.set_zero_linger();
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { handle(&shared, request).await }
            });
            // A connection the proxy resets on purpose ends here with an error.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Why the proxy ends a connection without an answer.
#[derive(Debug)]
enum Dropped {
    /// On purpose: a reset or a lost response.
    Fault(Fault),
    /// The request or the emulator's answer could not be read.
    Upstream(String),
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fault(fault) => write!(f, "connection dropped on purpose ({fault:?})"),
            Self::Upstream(e) => write!(f, "the emulator could not be reached: {e}"),
        }
    }
}

impl std::error::Error for Dropped {}

fn upstream(e: impl std::fmt::Display) -> Dropped {
    Dropped::Upstream(e.to_string())
}

type Answer = Result<Response<Full<Bytes>>, Dropped>;

async fn handle(shared: &Shared, request: Request<Incoming>) -> Answer {
    let arrived = Instant::now();
    let mut recorded = None;
    let answer = answer(shared, request, arrived, &mut recorded).await;
    if let Some(index) = recorded
        // A record cleared meanwhile holds other calls at that place.
        && let Some(call) = lock(&shared.calls).get_mut(index).filter(|c| c.arrived == arrived)
    {
        call.answered = Some(Instant::now());
    }
    answer
}

/// Answers one request; `recorded` is where its call went in the record.
async fn answer(
    shared: &Shared,
    request: Request<Incoming>,
    arrived: Instant,
    recorded: &mut Option<usize>,
) -> Answer {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(upstream)?.to_bytes();
    let target = Target::of(&parts, &body);
    let (fault, delay, latency) = {
        let plan = lock(&shared.plan);
        let roll = lock(&shared.rng).f64();
        let fault = match plan.rates(&target.operation).draw(roll) {
            None if !take_token(shared, &plan, &target.operation) => Some(Fault::Throttle),
            drawn => drawn,
        };
        let delay = plan.delay.mul_f64(lock(&shared.rng).f64());
        (fault, delay, plan.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    {
        let mut calls = lock(&shared.calls);
        *recorded = Some(calls.len());
        calls.push(Call {
            service: target.service.clone(),
            operation: target.operation.clone(),
            fault,
            arrived,
            answered: None,
        });
    }
    match fault {
        Some(Fault::Throttle) => Ok(target.error(
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Rate exceeded",
        )),
        Some(Fault::ServerError) => Ok(target.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "The request processing has failed because of an unknown error",
        )),
        Some(Fault::Reset) => Err(Dropped::Fault(Fault::Reset)),
        Some(Fault::LostResponse) => {
            forward(shared, parts, body).await?;
            Err(Dropped::Fault(Fault::LostResponse))
        }
        Some(Fault::Conflict) => Ok(target.error(
            StatusCode::BAD_REQUEST,
            "TransactionConflictException",
            "Transaction is ongoing for the item",
        )),
        Some(Fault::ConcurrentRevisions) => Ok(target.error(
            StatusCode::BAD_REQUEST,
            "ClientException",
            "Too many concurrent attempts to create a new revision of the specified family.",
        )),
        Some(Fault::Delay) => {
            tokio::time::sleep(delay).await;
            forward(shared, parts, body).await
        }
        None => forward(shared, parts, body).await,
    }
}

/// Takes a token from the bucket of the operation, if it has one: false when it is empty.
fn take_token(shared: &Shared, plan: &FaultPlan, operation: &str) -> bool {
    let Some(index) = plan
        .buckets
        .iter()
        .position(|b| b.operations.iter().any(|o| o == operation))
    else {
        return true;
    };
    let bucket = &plan.buckets[index];
    let now = std::time::Instant::now();
    let mut tokens = lock(&shared.tokens);
    if tokens.len() < plan.buckets.len() {
        tokens.resize(plan.buckets.len(), (f64::NAN, now));
    }
    let (left, counted) = &mut tokens[index];
    if left.is_nan() {
        *left = bucket.burst;
    }
    *left =
        (*left + now.duration_since(*counted).as_secs_f64() * bucket.per_second).min(bucket.burst);
    *counted = now;
    if *left >= 1.0 {
        *left -= 1.0;
        true
    } else {
        false
    }
}

async fn forward(shared: &Shared, parts: hyper::http::request::Parts, body: Bytes) -> Answer {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::builder()
        .method(parts.method)
        .uri(format!("{}{path}", shared.upstream))
        .body(Full::new(body))
        .map_err(upstream)?;
    for (name, value) in &parts.headers {
        if name != CONNECTION && name != HOST {
            request.headers_mut().append(name, value.clone());
        }
    }
    let response = shared.client.request(request).await.map_err(upstream)?;
    let (mut parts, body) = response.into_parts();
    let body = body.collect().await.map_err(upstream)?.to_bytes();
    parts.headers.remove(TRANSFER_ENCODING);
    parts.headers.remove(CONNECTION);
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// The wire protocols deckhand's clients speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// awsJson 1.0/1.1: DynamoDB, ECS, ECR, Tagging, Application Auto Scaling.
    Json,
    /// awsQuery: SNS.
    Query,
    /// Smithy RPC v2 CBOR: CloudWatch.
    Cbor,
}

/// What a request is, read from its headers, path and body.
struct Target {
    protocol: Protocol,
    service: String,
    operation: String,
}

impl Target {
    fn of(parts: &hyper::http::request::Parts, body: &[u8]) -> Self {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        // `Credential=KEY/DATE/REGION/SERVICE/aws4_request`: the signing name.
        let service = header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(3))
            .unwrap_or("unknown")
            .to_owned();
        let (protocol, operation) = if let Some(target) = header("x-amz-target") {
            let operation = target.rsplit('.').next().unwrap_or(target);
            (Protocol::Json, operation.to_owned())
        } else if let Some(operation) = parts.uri.path().split("/operation/").nth(1) {
            (Protocol::Cbor, operation.to_owned())
        } else {
            let action = String::from_utf8_lossy(body)
                .split('&')
                .find_map(|pair| pair.strip_prefix("Action=").map(str::to_owned))
                .unwrap_or_else(|| "unknown".to_owned());
            (Protocol::Query, action)
        };
        Self {
            protocol,
            service,
            operation,
        }
    }

    /// An error answer the SDK reads as the service's own.
    fn error(&self, status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
        let (content_type, body) = match self.protocol {
            Protocol::Json => (
                "application/x-amz-json-1.1",
                Bytes::from(format!(r#"{{"__type":"{code}","message":"{message}"}}"#)),
            ),
            Protocol::Query => (
                "text/xml",
                Bytes::from(format!(
                    "<ErrorResponse><Error><Type>{}</Type><Code>{code}</Code><Message>{message}</Message></Error>\
                     <RequestId>fault</RequestId></ErrorResponse>",
                    if status.is_server_error() {
                        "Receiver"
                    } else {
                        "Sender"
                    }
                )),
            ),
            Protocol::Cbor => (
                "application/cbor",
                Bytes::from(cbor_map(&[("__type", code), ("message", message)])),
            ),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(value) = HeaderValue::from_str(code) {
            response.headers_mut().insert("x-amzn-errortype", value);
        }
        if self.protocol == Protocol::Cbor {
            response
                .headers_mut()
                .insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
        }
        response
    }
}

/// A CBOR map of text keys to text values (RFC 8949 major types 5 and 3).
fn cbor_map(entries: &[(&str, &str)]) -> Vec<u8> {
    fn head(out: &mut Vec<u8>, major: u8, len: usize) {
        let major = major << 5;
        match len {
            0..=23 => out.push(major | len as u8),
            24..=0xff => out.extend([major | 24, len as u8]),
            _ => {
                out.push(major | 25);
                out.extend((len.min(0xffff) as u16).to_be_bytes());
            }
        }
    }
    let mut out = Vec::new();
    head(&mut out, 5, entries.len());
    for (key, value) in entries {
        for text in [key, value] {
            head(&mut out, 3, text.len());
            out.extend(text.as_bytes());
        }
    }
    out
}
