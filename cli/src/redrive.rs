//! `deckhand redrive`: every message of the failure queue sent back to the function it was
//! for, as the event itself (Lambda's on-failure records unwrapped), and deleted once the
//! function handled it. What fails again, and what cannot be read, stays in the queue.
//!
//! A message is a claim too: only the stack's own three functions, named by the operator from
//! the stack's outputs and never by the message, are ever invoked (`refused` otherwise), and an
//! operator's `sleep` or `wake` or a pause hook's wait more than an hour old is left for the
//! operator (`stale`).
//!
//! Redriving is safe because the functions are idempotent: a push already deployed, an event
//! already handled or an older push after a newer one changes nothing. A reconcile is the one
//! event not sent back (see [`superseded`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deckhand::events::dead_letter::{describe_event, read_dead_letter, stale, superseded};
use deckhand::ports::PortError;
use serde::Serialize;
use serde_json::Value;

/// How long a received message stays hidden from other readers while it is redriven: longer
/// than ten invocations of the slowest function, so that a batch never reappears mid-run. A
/// message not deleted is made visible again before the command ends.
pub const HOLD: Duration = Duration::from_secs(3600);

/// One message of the failure queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: String,
    /// The handle that deletes or releases this receipt of the message.
    pub receipt: String,
    pub body: String,
    /// The string message attributes (`TARGET_ARN`, `RULE_ARN`, ...).
    pub attributes: BTreeMap<String, String>,
}

/// The failure queue (SQS).
#[async_trait]
pub trait FailureQueue: Send + Sync {
    /// Up to ten messages, each hidden from other readers for `hold`; none once it is empty.
    async fn receive(&self, hold: Duration) -> Result<Vec<QueuedMessage>, PortError>;
    async fn delete(&self, receipt: &str) -> Result<(), PortError>;
    /// Makes a received message visible again at once.
    async fn release(&self, receipt: &str) -> Result<(), PortError>;
}

/// What a function answered.
#[derive(Clone, Debug, PartialEq)]
pub enum Invoked {
    /// It returned: deckhand's summary.
    Returned(Value),
    /// It failed: the error type and message it reported.
    Failed { error_type: String, message: String },
}

/// The functions (Lambda), invoked synchronously.
#[async_trait]
pub trait Functions: Send + Sync {
    async fn invoke(&self, function: &str, event: &Value) -> Result<Invoked, PortError>;
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Say what would be sent, send and delete nothing.
    pub dry_run: bool,
    /// At most this many messages.
    pub limit: Option<usize>,
    /// The stack's functions (its outputs' ARNs): the only ones a message is sent to.
    pub functions: Vec<String>,
    pub now: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Disposition {
    /// Sent back, handled, deleted.
    Redriven,
    /// Sent back and failed again: left in the queue.
    FailedAgain,
    /// Not sent back, deleted (a reconcile).
    Dropped,
    /// Not something deckhand can send back: left in the queue.
    Unreadable,
    /// For a function that is not one of the stack's: left in the queue.
    Refused,
    /// An operator's or a pause hook's event too old to replay: left in the queue.
    Stale,
    WouldRedrive,
    WouldDrop,
}

impl Disposition {
    pub fn word(self) -> &'static str {
        match self {
            Disposition::Redriven => "redriven",
            Disposition::FailedAgain => "failed-again",
            Disposition::Dropped => "dropped",
            Disposition::Unreadable => "unreadable",
            Disposition::Refused => "refused",
            Disposition::Stale => "stale",
            Disposition::WouldRedrive => "would-redrive",
            Disposition::WouldDrop => "would-drop",
        }
    }

    /// Whether the message is still in the queue after a real run.
    pub fn left_in_queue(self) -> bool {
        matches!(
            self,
            Disposition::FailedAgain
                | Disposition::Unreadable
                | Disposition::Refused
                | Disposition::Stale
        )
    }
}

/// What happened to one message.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Redriven {
    pub message_id: String,
    pub disposition: Disposition,
    /// The function's ARN, when the message names one.
    pub function: Option<String>,
    /// What the event is, in a few words.
    pub event: Option<String>,
    /// How it ended in the queue.
    pub origin: Option<String>,
    /// The function's answer, the error, or why it was not sent.
    pub detail: String,
}

/// Redrives the failure queue: reads it to the end (or to `options.limit`), sends each event to
/// its function, deletes what succeeded and releases the rest. A failed read stops the run
/// after releasing what it holds.
pub async fn redrive(
    queue: &dyn FailureQueue,
    functions: &dyn Functions,
    options: Options,
) -> Result<Vec<Redriven>, PortError> {
    let mut done: Vec<Redriven> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut to_release = Vec::new();
    let limit = options.limit.unwrap_or(usize::MAX);
    let outcome = async {
        while done.len() < limit {
            let batch = queue.receive(HOLD).await?;
            if batch.is_empty() {
                break;
            }
            for message in batch {
                if done.len() >= limit || !seen.insert(message.id.clone()) {
                    // Past the limit, or a second copy of one already handled (SQS delivers at
                    // least once): leave it as it is.
                    to_release.push(message.receipt);
                    continue;
                }
                let one = redrive_one(queue, functions, &message, &options).await;
                if options.dry_run || one.disposition.left_in_queue() {
                    to_release.push(message.receipt.clone());
                }
                done.push(one);
            }
        }
        Ok(())
    }
    .await;
    for receipt in &to_release {
        // A message not released reappears when its hold ends: no harm beyond the wait.
        let _ = queue.release(receipt).await;
    }
    outcome.map(|()| done)
}

async fn redrive_one(
    queue: &dyn FailureQueue,
    functions: &dyn Functions,
    message: &QueuedMessage,
    options: &Options,
) -> Redriven {
    let dry_run = options.dry_run;
    let mut one = Redriven {
        message_id: message.id.clone(),
        disposition: Disposition::Unreadable,
        function: None,
        event: None,
        origin: None,
        detail: String::new(),
    };
    let letter = match read_dead_letter(&message.body, &message.attributes) {
        Ok(letter) => letter,
        Err(e) => {
            one.detail = format!("left in the queue: {e}");
            return one;
        }
    };
    one.function = Some(letter.function.clone());
    one.event = Some(describe_event(&letter.event));
    one.origin = Some(letter.origin.to_string());
    let Some(target) = stack_function(&options.functions, &letter.function) else {
        one.disposition = Disposition::Refused;
        one.detail = format!(
            "left in the queue: {} is not one of the stack's functions",
            letter.function
        );
        return one;
    };
    if let Some(why) = stale(&letter, options.now) {
        one.disposition = Disposition::Stale;
        one.detail = why;
        return one;
    }
    if let Some(why) = superseded(&letter) {
        one.detail = why;
        one.disposition = if dry_run {
            Disposition::WouldDrop
        } else {
            Disposition::Dropped
        };
        if !dry_run && let Err(e) = queue.delete(&message.receipt).await {
            one.detail = format!("{}; still in the queue: {e}", one.detail);
        }
        return one;
    }
    if dry_run {
        one.disposition = Disposition::WouldRedrive;
        one.detail = "not sent (dry run)".to_owned();
        return one;
    }
    match functions.invoke(target, &letter.event).await {
        Ok(Invoked::Returned(summary)) => {
            one.disposition = Disposition::Redriven;
            one.detail = summary_words(&summary);
            if let Err(e) = queue.delete(&message.receipt).await {
                // Sent and handled: a later redrive sends it again, which changes nothing.
                one.detail = format!("{}; still in the queue: {e}", one.detail);
            }
        }
        Ok(Invoked::Failed {
            error_type,
            message,
        }) => {
            one.disposition = Disposition::FailedAgain;
            one.detail = format!("{error_type}: {message}");
        }
        Err(e) => {
            one.disposition = Disposition::FailedAgain;
            one.detail = e.to_string();
        }
    }
    one
}

/// The stack's function a message names (its qualifier, Lambda's `$LATEST`, aside): the
/// stack's own ARN, which is what is invoked.
fn stack_function<'a>(functions: &'a [String], named: &str) -> Option<&'a str> {
    let unqualified = |arn: &str| arn.splitn(8, ':').take(7).collect::<Vec<_>>().join(":");
    let named = unqualified(named);
    functions
        .iter()
        .find(|f| unqualified(f) == named)
        .map(String::as_str)
}

/// The function's name from its ARN: `deckhand-DeployFunction-4mVd` of
/// `arn:aws:lambda:...:function:deckhand-DeployFunction-4mVd:$LATEST`.
pub fn function_name(arn: &str) -> &str {
    arn.split(':').nth(6).unwrap_or(arn)
}

/// deckhand's summary in a few words: the outcome, then the first services and what happened.
fn summary_words(summary: &Value) -> String {
    let outcome = summary
        .get("outcome")
        .and_then(Value::as_str)
        .unwrap_or("handled");
    let services: Vec<String> = summary
        .get("services")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| {
            Some(format!(
                "{} {}",
                s.get("service")?.as_str()?,
                s.get("action")?.as_str()?
            ))
        })
        .collect();
    let mut words = outcome.to_owned();
    if services.is_empty() {
        if let Some(reason) = summary.get("reason").and_then(Value::as_str) {
            words = format!("{words}: {reason}");
        }
    } else {
        let shown = services
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        words = format!("{words}: {shown}");
        if services.len() > 3 {
            words = format!("{words} and {} more", services.len() - 3);
        }
    }
    words
}

#[cfg(test)]
#[path = "redrive_tests.rs"]
mod tests;
