use std::sync::Mutex;

use deckhand::ports::PortErrorKind;
use serde_json::json;

use super::*;

/// A queue with SQS's visibility: a received message is hidden until it is deleted or
/// released (holds never run out within a test).
#[derive(Default)]
struct MemoryQueue {
    messages: Mutex<Vec<(QueuedMessage, bool)>>,
    receipts: Mutex<u32>,
    fail_receiving_after: Option<usize>,
    received: Mutex<usize>,
}

impl MemoryQueue {
    fn with(messages: Vec<QueuedMessage>) -> Self {
        Self {
            messages: Mutex::new(messages.into_iter().map(|m| (m, false)).collect()),
            ..Self::default()
        }
    }

    /// The ids of the messages in the queue, hidden or not.
    fn ids(&self) -> Vec<String> {
        let messages = self.messages.lock().unwrap();
        messages.iter().map(|(m, _)| m.id.clone()).collect()
    }

    fn hidden(&self) -> usize {
        let messages = self.messages.lock().unwrap();
        messages.iter().filter(|(_, hidden)| *hidden).count()
    }
}

#[async_trait]
impl FailureQueue for MemoryQueue {
    async fn receive(&self, _hold: Duration) -> Result<Vec<QueuedMessage>, PortError> {
        let mut received = self.received.lock().unwrap();
        if self.fail_receiving_after.is_some_and(|n| *received >= n) {
            return Err(PortError::new(
                "sqs:ReceiveMessage",
                PortErrorKind::Transient,
                "ThrottlingException: slow down",
            ));
        }
        *received += 1;
        let mut messages = self.messages.lock().unwrap();
        let mut receipts = self.receipts.lock().unwrap();
        let mut batch = Vec::new();
        for (message, hidden) in messages.iter_mut().filter(|(_, h)| !*h).take(10) {
            *hidden = true;
            *receipts += 1;
            // Each receipt has a handle of its own, as in SQS.
            message.receipt = format!("{}#{}", message.id, *receipts);
            batch.push(message.clone());
        }
        Ok(batch)
    }

    async fn delete(&self, receipt: &str) -> Result<(), PortError> {
        self.messages
            .lock()
            .unwrap()
            .retain(|(m, _)| m.receipt != receipt);
        Ok(())
    }

    async fn release(&self, receipt: &str) -> Result<(), PortError> {
        for (m, hidden) in self.messages.lock().unwrap().iter_mut() {
            if m.receipt == receipt {
                *hidden = false;
            }
        }
        Ok(())
    }
}

/// Functions that record each event they get, and fail the events that `fails` picks.
struct MemoryFunctions {
    calls: Mutex<Vec<(String, Value)>>,
    fails: fn(&Value) -> bool,
}

impl MemoryFunctions {
    fn failing(fails: fn(&Value) -> bool) -> Self {
        Self {
            calls: Mutex::new(Vec::new()),
            fails,
        }
    }

    fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Functions for MemoryFunctions {
    async fn invoke(&self, function: &str, event: &Value) -> Result<Invoked, PortError> {
        self.calls
            .lock()
            .unwrap()
            .push((function.to_owned(), event.clone()));
        if (self.fails)(event) {
            return Ok(Invoked::Failed {
                error_type: "deckhand.Transient".into(),
                message: "ecs DescribeServices: Rate exceeded".into(),
            });
        }
        Ok(Invoked::Returned(json!({
            "outcome": "deployed",
            "services": [{"service": "demo/web", "action": "deployed", "reason": "matches"}],
        })))
    }
}

/// A payload of the corpus as AWS sends it (tests/fixtures/aws, sources in its README).
fn aws(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/aws")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A message of the corpus, as the queue holds it.
fn corpus_message(name: &str) -> QueuedMessage {
    let m = aws(name);
    QueuedMessage {
        id: m["MessageId"].as_str().unwrap().to_owned(),
        receipt: String::new(),
        body: m["Body"].as_str().unwrap().to_owned(),
        attributes: m["MessageAttributes"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v["StringValue"].as_str().unwrap().to_owned()))
            .collect(),
    }
}

fn plain(id: &str, body: &str) -> QueuedMessage {
    QueuedMessage {
        id: id.into(),
        receipt: String::new(),
        body: body.into(),
        attributes: BTreeMap::new(),
    }
}

fn the_corpus_and_a_stranger() -> Vec<QueuedMessage> {
    vec![
        corpus_message("lambda-on-failure-record"),
        corpus_message("eventbridge-rule-dead-letter"),
        corpus_message("scheduler-dead-letter"),
        plain("stranger", "hello"),
    ]
}

const DEPLOY: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:deckhand-DeployFunction-4mVdLqPZ7E2b";
const SCHEDULER: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:deckhand-SchedulerFunction-9XkR2pLm3QwE";

/// The stack the corpus's messages are for, half an hour after they failed.
fn stack() -> Options {
    Options {
        functions: vec![
            DEPLOY.to_owned(),
            "arn:aws:lambda:us-east-1:123456789012:function:deckhand-RollbackFunction-2bTq"
                .to_owned(),
            SCHEDULER.to_owned(),
        ],
        now: chrono::DateTime::parse_from_rfc3339("2026-11-23T10:30:00Z")
            .unwrap()
            .to_utc(),
        ..Options::default()
    }
}

fn by_id<'a>(done: &'a [Redriven], id: &str) -> &'a Redriven {
    done.iter().find(|r| r.message_id == id).unwrap()
}

#[tokio::test]
async fn each_event_goes_back_to_its_function_unwrapped_and_only_what_succeeded_is_deleted() {
    let queue = MemoryQueue::with(the_corpus_and_a_stranger());
    let functions = MemoryFunctions::failing(|_| false);
    let done = redrive(&queue, &functions, stack()).await.unwrap();

    // The push inside the record and the deployment event of the dead letter, each to its
    // function as the stack names it; never the record itself, never the reconcile.
    assert_eq!(
        functions.calls(),
        vec![
            (DEPLOY.to_owned(), aws("ecr-push-image")),
            (DEPLOY.to_owned(), aws("ecs-deployment-completed")),
        ]
    );
    let record = &aws("lambda-on-failure-record")["MessageId"];
    assert_eq!(
        by_id(&done, record.as_str().unwrap()).disposition,
        Disposition::Redriven
    );
    assert_eq!(
        by_id(&done, record.as_str().unwrap()).detail,
        "deployed: demo/web deployed"
    );
    let reconcile = by_id(&done, "c81e728d-9d4c-4f63-8e1b-5a2f3c4d6e7f");
    assert_eq!(reconcile.disposition, Disposition::Dropped);
    assert!(
        reconcile.detail.contains("not replayed"),
        "{}",
        reconcile.detail
    );
    let stranger = by_id(&done, "stranger");
    assert_eq!(stranger.disposition, Disposition::Unreadable);
    assert!(
        stranger.detail.contains("(body): not JSON"),
        "{}",
        stranger.detail
    );
    // Only the stranger is left, and visible again for whoever looks next.
    assert_eq!(queue.ids(), vec!["stranger".to_owned()]);
    assert_eq!(queue.hidden(), 0);
}

#[tokio::test]
async fn an_event_that_fails_again_stays_in_the_queue_with_the_error() {
    let queue = MemoryQueue::with(the_corpus_and_a_stranger());
    let functions = MemoryFunctions::failing(|e| e["detail-type"] == "ECS Deployment State Change");
    let done = redrive(&queue, &functions, stack()).await.unwrap();
    let failed = by_id(&done, "2f6d9a41-7c3b-4e85-b0d2-6a9e8f1c3d57");
    assert_eq!(failed.disposition, Disposition::FailedAgain);
    assert_eq!(
        failed.detail,
        "deckhand.Transient: ecs DescribeServices: Rate exceeded"
    );
    assert_eq!(
        queue.ids(),
        vec![
            "2f6d9a41-7c3b-4e85-b0d2-6a9e8f1c3d57".to_owned(),
            "stranger".to_owned()
        ]
    );
    assert_eq!(queue.hidden(), 0, "what stays is visible again");
}

#[tokio::test]
async fn a_dry_run_sends_and_deletes_nothing() {
    let queue = MemoryQueue::with(the_corpus_and_a_stranger());
    let functions = MemoryFunctions::failing(|_| false);
    let options = Options {
        dry_run: true,
        ..stack()
    };
    let done = redrive(&queue, &functions, options).await.unwrap();
    let words: Vec<&str> = done.iter().map(|r| r.disposition.word()).collect();
    assert_eq!(
        words,
        ["would-redrive", "would-redrive", "would-drop", "unreadable"]
    );
    assert!(functions.calls().is_empty());
    assert_eq!(queue.ids().len(), 4);
    assert_eq!(queue.hidden(), 0);
}

#[tokio::test]
async fn a_limit_stops_early_and_releases_what_it_did_not_touch() {
    let many: Vec<QueuedMessage> = (0..25)
        .map(|i| {
            let mut m = corpus_message("lambda-on-failure-record");
            m.id = format!("m{i:02}");
            m
        })
        .collect();
    let queue = MemoryQueue::with(many);
    let functions = MemoryFunctions::failing(|_| false);
    let options = Options {
        limit: Some(12),
        ..stack()
    };
    let done = redrive(&queue, &functions, options).await.unwrap();
    assert_eq!(done.len(), 12);
    assert_eq!(functions.calls().len(), 12);
    assert_eq!(queue.ids().len(), 13);
    assert_eq!(queue.hidden(), 0);
}

#[tokio::test]
async fn a_failed_read_releases_what_it_holds_and_says_so() {
    let mut queue = MemoryQueue::with(the_corpus_and_a_stranger());
    queue.fail_receiving_after = Some(1);
    let functions = MemoryFunctions::failing(|e| e["detail-type"] == "ECS Deployment State Change");
    let err = redrive(&queue, &functions, stack()).await.unwrap_err();
    assert_eq!(err.operation, "sqs:ReceiveMessage");
    // The first batch was handled: what succeeded is gone, the rest is visible again.
    assert_eq!(
        queue.ids(),
        vec![
            "2f6d9a41-7c3b-4e85-b0d2-6a9e8f1c3d57".to_owned(),
            "stranger".to_owned()
        ]
    );
    assert_eq!(queue.hidden(), 0);
}

#[test]
fn names_and_summaries_read_in_a_few_words() {
    assert_eq!(
        function_name("arn:aws:lambda:us-east-1:123456789012:function:deckhand-Deploy:$LATEST"),
        "deckhand-Deploy"
    );
    assert_eq!(function_name("odd"), "odd");
    let many = json!({"outcome": "slept", "services": (0..5).map(|i| json!({"service": format!("c/s{i}"), "action": "asleep"})).collect::<Vec<_>>()});
    assert_eq!(
        summary_words(&many),
        "slept: c/s0 asleep, c/s1 asleep, c/s2 asleep and 2 more"
    );
    assert_eq!(
        summary_words(&json!({"outcome": "ignored", "reason": "not for deckhand"})),
        "ignored: not for deckhand"
    );
}

/// A message is a claim: it may name any function, and only the stack's are invoked.
#[tokio::test]
async fn a_message_for_a_function_outside_the_stack_is_refused_and_left() {
    let mut other = corpus_message("eventbridge-rule-dead-letter");
    other.id = "elsewhere".into();
    other.attributes.insert(
        "TARGET_ARN".into(),
        "arn:aws:lambda:us-east-1:123456789012:function:payments-admin".into(),
    );
    let queue = MemoryQueue::with(vec![other]);
    let functions = MemoryFunctions::failing(|_| false);
    let done = redrive(&queue, &functions, stack()).await.unwrap();
    let refused = by_id(&done, "elsewhere");
    assert_eq!(refused.disposition, Disposition::Refused);
    assert!(
        refused
            .detail
            .contains("function:payments-admin is not one of the stack's functions"),
        "{}",
        refused.detail
    );
    assert!(functions.calls().is_empty());
    assert_eq!(queue.ids(), ["elsewhere"]);
    assert_eq!(queue.hidden(), 0);
}

fn wake_record(id: &str, failed_at: &str) -> QueuedMessage {
    let record = json!({
        "version": "1.0", "timestamp": failed_at,
        "requestContext": {"requestId": id, "functionArn": format!("{SCHEDULER}:$LATEST"),
                           "condition": "RetriesExhausted", "approximateInvokeCount": 1},
        "requestPayload": {"action": "wake", "service": "staging/api", "for": "2h"},
    });
    plain(id, &record.to_string())
}

#[tokio::test]
async fn an_operators_wake_older_than_an_hour_is_left_as_stale() {
    let queue = MemoryQueue::with(vec![
        wake_record("old", "2026-11-23T09:00:00.000Z"),
        wake_record("fresh", "2026-11-23T10:00:00.000Z"),
    ]);
    let functions = MemoryFunctions::failing(|_| false);
    let done = redrive(&queue, &functions, stack()).await.unwrap();
    let old = by_id(&done, "old");
    assert_eq!(old.disposition, Disposition::Stale);
    assert!(
        old.detail.contains("more than an hour old"),
        "{}",
        old.detail
    );
    assert_eq!(by_id(&done, "fresh").disposition, Disposition::Redriven);
    assert_eq!(functions.calls().len(), 1);
    assert_eq!(functions.calls()[0].0, SCHEDULER);
    assert_eq!(queue.ids(), ["old"]);
}
