//! A notification as a chat channel shows it: the custom-notification format of Amazon Q
//! Developer in chat applications (AWS Chatbot), published to the chat topic beside the JSON
//! message. Chatbot renders only the AWS events it knows and this format: a plain JSON message
//! on a topic it is subscribed to shows nothing in Slack or Teams.
//!
//! Everything here is read from the notification's summary and details, which never carry a
//! task definition's environment, secrets or credentials (the rule of the JSON body).

use std::collections::BTreeMap;

use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::Value;

use crate::notification::{Kind, Notification};

/// Slack cuts a message's text at 3,000 characters per section; a description longer than that
/// would end mid-word in the channel.
const DESCRIPTION_MAX: usize = 3_000;
const TITLE_MAX: usize = 250;
/// Names listed per group of a reconcile's summary; the rest are counted.
const NAMES_SHOWN: usize = 10;
/// The thread of the reconcile's digest, which is about no one service.
const RECONCILE_THREAD: &str = "deckhand/reconcile";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChatMessage {
    pub version: &'static str,
    pub source: &'static str,
    pub content: Content,
    pub metadata: Metadata,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    pub text_type: &'static str,
    pub title: String,
    pub description: String,
    pub next_steps: Vec<String>,
    pub keywords: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// One service's started, completed and rolled-back messages stay in one thread.
    pub thread_id: String,
    pub summary: String,
    pub event_type: &'static str,
    pub related_resources: Vec<String>,
    pub additional_context: BTreeMap<String, String>,
}

impl ChatMessage {
    pub fn body(&self) -> String {
        // Strings, vectors and string maps always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The chat message of `n`, its title led by the stack's environment when it names one.
pub fn render(n: &Notification, environment: Option<&str>) -> ChatMessage {
    let d = &n.details;
    let title = match environment {
        Some(environment) => format!("[{}] {}", inert(environment), title(n)),
        None => title(n),
    };
    ChatMessage {
        version: "1.0",
        source: "custom",
        content: Content {
            text_type: "client-markdown",
            title: cut(&title, TITLE_MAX),
            description: cut(&description(n), DESCRIPTION_MAX),
            next_steps: next_steps(n),
            keywords: keywords(n),
        },
        metadata: Metadata {
            thread_id: thread(n),
            summary: cut(&inert(&n.summary), TITLE_MAX),
            event_type: n.kind.as_str(),
            related_resources: scalars(d)
                .filter(|(_, v)| v.starts_with("arn:"))
                .map(|(_, v)| v)
                .collect(),
            additional_context: scalars(d)
                .chain([
                    ("severity".to_owned(), n.severity.as_str().to_owned()),
                    (
                        "at".to_owned(),
                        n.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    ),
                ])
                .chain(environment.map(|e| ("environment".to_owned(), inert(e))))
                .collect(),
        },
    }
}

fn words(kind: Kind) -> &'static str {
    match kind {
        Kind::DeployStarted => "deploy started",
        Kind::DeployCompleted => "deploy completed",
        Kind::DeployFailed => "deploy failed",
        Kind::DeploySkipped => "deploy skipped",
        Kind::DeployQuarantined => "image quarantined",
        Kind::DeployAwaitingApproval => "waiting for approval",
        Kind::DeployHeld => "deploy held",
        Kind::TrafficShifted => "traffic shifted",
        Kind::RollbackStarted => "rollback started",
        Kind::RollbackSkipped => "rollback skipped",
        Kind::ScaleAsleep => "asleep",
        Kind::ScaleAwake => "awake",
        Kind::ScaleSkipped => "scale skipped",
        Kind::ScaleSummary => "reconcile",
        Kind::ConfigInvalid => "invalid configuration",
        Kind::Error => "error",
    }
}

fn text<'a>(d: &'a Value, key: &str) -> Option<&'a str> {
    d.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `deploy started: prod/web web:41 -> web:42 (main-42)`.
fn title(n: &Notification) -> String {
    let d = &n.details;
    let mut t = format!("{}: ", words(n.kind));
    if n.kind == Kind::ScaleSummary {
        t.push_str(&counts(d));
        return t;
    }
    t.push_str(&inert(&n.service));
    match (text(d, "from"), text(d, "to")) {
        (Some(from), Some(to)) if from != to && n.kind != Kind::TrafficShifted => {
            t.push_str(&format!(" {} -> {}", inert(from), inert(to)));
        }
        (_, Some(to)) if n.kind != Kind::TrafficShifted => t.push_str(&format!(" {}", inert(to))),
        _ => {}
    }
    if let Some(percent) = d.get("percent").and_then(Value::as_u64) {
        t.push_str(&format!(" {percent}%"));
    }
    if let Some(tag) = text(d, "tag") {
        t.push_str(&format!(" ({})", inert(tag)));
    } else if let Some(alarm) = text(d, "alarm") {
        t.push_str(&format!(" (alarm {})", inert(alarm)));
    }
    t
}

/// `2 asleep, 1 woken, 0 skipped, 0 failed`, from a reconcile's summary.
fn counts(d: &Value) -> String {
    ["asleep", "woken", "skipped", "failed"]
        .iter()
        .map(|group| format!("{} {group}", group_count(d, group)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn group_count(d: &Value, group: &str) -> u64 {
    d.get(group)
        .and_then(|g| g.get("count"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

fn description(n: &Notification) -> String {
    let d = &n.details;
    let mut lines = vec![inert(&n.summary)];
    let mut fact = |name: &str, value: String| lines.push(format!("*{name}:* {value}"));
    if let Some(repository) = text(d, "repository") {
        let image = match (text(d, "tag"), text(d, "digest")) {
            (Some(tag), Some(digest)) => {
                format!(
                    "{} ({})",
                    code(&format!("{repository}:{tag}")),
                    code(short(digest))
                )
            }
            (None, Some(digest)) => code(&format!("{repository}@{}", short(digest))),
            _ => code(repository),
        };
        fact("Image", image);
    } else if let Some(digest) = text(d, "digest") {
        fact("Digest", code(short(digest)));
    }
    match (text(d, "from"), text(d, "to")) {
        (Some(from), Some(to)) if n.kind == Kind::TrafficShifted => {
            fact("Services", format!("{} -> {}", code(from), code(to)))
        }
        (Some(from), Some(to)) => fact("Revision", format!("{} -> {}", code(from), code(to))),
        (None, Some(to)) => fact("Revision", code(to)),
        (Some(from), None) => fact("Running", code(from)),
        (None, None) => {}
    }
    if let Some(alarm) = text(d, "alarm") {
        let mut value = code(alarm);
        if let Some(state) = text(d, "alarmState") {
            value.push_str(&format!(" {}", inert(state)));
        }
        if let Some(at) = text(d, "alarmAt") {
            value.push_str(&format!(" at {}", inert(at)));
        }
        fact("Alarm", value);
    }
    for (key, name) in [
        ("reason", "Reason"),
        ("guardUntil", "Guarded until"),
        ("stage", "Stage"),
        ("expiresAt", "Expires"),
        ("rolledBackBy", "Rolled back by"),
        ("error", "Error"),
        ("tag", "Tag"),
    ] {
        if key == "tag" && text(d, "repository").is_some() {
            continue;
        }
        if let Some(value) = text(d, key) {
            fact(name, inert(value));
        }
    }
    for problem in d
        .get("problems")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (tag, message) = (text(problem, "tag"), text(problem, "message"));
        if let (Some(tag), Some(message)) = (tag, message) {
            fact("Tag", format!("{}: {}", code(tag), inert(message)));
        }
    }
    if n.kind == Kind::ScaleSummary {
        for group in ["asleep", "woken", "skipped", "failed"] {
            let names = d
                .get(group)
                .and_then(|g| g.get("services"))
                .and_then(Value::as_array)
                .map(|names| names.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                .unwrap_or_default();
            let count = group_count(d, group);
            if count == 0 {
                continue;
            }
            let mut listed = names
                .iter()
                .take(NAMES_SHOWN)
                .map(|s| code(s))
                .collect::<Vec<_>>()
                .join(", ");
            let unlisted = count.saturating_sub(names.len().min(NAMES_SHOWN) as u64);
            if unlisted > 0 {
                listed.push_str(&format!(" and {unlisted} more"));
            }
            fact(&capitalised(group), format!("{count}: {listed}"));
        }
        if let Some(hours) = d.get("taskHoursSaved").and_then(Value::as_f64)
            && hours > 0.0
        {
            fact("Task-hours saved", format!("{hours:.1}"));
        }
    }
    lines.join("\n")
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// What a person does next, as the exact `deckhand` command.
fn next_steps(n: &Notification) -> Vec<String> {
    let d = &n.details;
    let service = n.service.as_str();
    if service.is_empty() || service == "*" || service == "-" {
        return vec!["see every service: `deckhand status`".into()];
    }
    let history = format!("see why: `deckhand history {service}`");
    let rollback = format!("roll back: `deckhand rollback {service}`");
    let release = text(d, "digest").map(|digest| {
        format!("deploy this digest again once it is fixed: `deckhand release {service} {digest}`")
    });
    match n.kind {
        Kind::DeployStarted | Kind::DeployCompleted | Kind::TrafficShifted => {
            vec![rollback, format!("follow: `deckhand history {service}`")]
        }
        Kind::DeployFailed | Kind::DeployQuarantined | Kind::RollbackStarted => {
            std::iter::once(history).chain(release).collect()
        }
        // A pair's check function decides by itself: its answer is in the history.
        Kind::DeployAwaitingApproval if text(d, "function").is_some() => vec![format!(
            "check function {} decides; its answer: `deckhand history {service}`",
            text(d, "function").unwrap_or_default()
        )],
        Kind::DeployAwaitingApproval => vec![
            format!("let it go on: `deckhand approve {service}`"),
            format!("roll it back: `deckhand reject {service}`"),
        ],
        Kind::RollbackSkipped => vec![
            history,
            format!("roll back by hand: `deckhand rollback {service}`"),
        ],
        Kind::ScaleAsleep => vec![format!(
            "wake it for two hours: `deckhand wake {service} --for 2h`"
        )],
        Kind::ScaleAwake => vec![format!("put it back to sleep: `deckhand sleep {service}`")],
        Kind::DeploySkipped | Kind::ScaleSkipped | Kind::Error => vec![history],
        Kind::DeployHeld => vec![history, "see what waits: `deckhand status`".into()],
        Kind::ConfigInvalid => vec![
            "fix the tag named above".into(),
            "see every service's tag problems: `deckhand status`".into(),
        ],
        Kind::ScaleSummary => vec!["see every service: `deckhand status`".into()],
    }
}

fn keywords(n: &Notification) -> Vec<String> {
    let mut words = vec![n.kind.as_str().to_owned(), n.severity.as_str().to_owned()];
    if let Some((cluster, _)) = n.service.split_once('/') {
        words.push(cluster.to_owned());
    }
    words
}

fn thread(n: &Notification) -> String {
    match n.service.as_str() {
        "*" => RECONCILE_THREAD.into(),
        "" | "-" => "deckhand".into(),
        service => service.into(),
    }
}

/// The details' strings, numbers and booleans, by key: what Chatbot keeps as context.
fn scalars(d: &Value) -> impl Iterator<Item = (String, String)> + '_ {
    d.as_object().into_iter().flatten().filter_map(|(k, v)| {
        let value = match v {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(x) => x.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return None,
        };
        Some((k.clone(), value))
    })
}

/// Text from outside (alarm names and reasons, descriptions, tag values, errors) as plain text
/// in client-markdown: no link, mention, code span or emphasis comes from it, in Slack or
/// Teams. `&` and `<` become entities (Slack's own escapes: `<!channel>`, `<@U1>` and
/// `<https://...|text>` are then nothing). The characters that open markup become look-alikes
/// that no client reads as markup (`*` U+2217, a backtick U+02CB, `@` U+FF20, and `_` and `~`
/// where they could open emphasis: at a word's edge, as U+FF3F and U+223C). A zero-width space
/// after `]` and inside `://`, and between a dot and the letters of a domain, keeps a link or a
/// bare address from forming. Names people copy are shown in code spans ([`code`]) instead.
pub fn inert(text: &str) -> String {
    const ZWSP: char = '\u{200b}';
    let chars: Vec<char> = text.chars().collect();
    let word = |i: Option<usize>| {
        i.and_then(|i| chars.get(i))
            .is_some_and(|c| c.is_alphanumeric())
    };
    let mut out = String::with_capacity(text.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        let (before, after) = (word(i.checked_sub(1)), word(Some(i + 1)));
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '*' => out.push('\u{2217}'),
            '`' => out.push('\u{2cb}'),
            '@' => out.push('\u{ff20}'),
            '_' if !(before && after) => out.push('\u{ff3f}'),
            '~' if !(before && after) => out.push('\u{223c}'),
            ']' => {
                out.push(c);
                out.push(ZWSP);
            }
            '.' if before && chars.get(i + 1).is_some_and(|c| c.is_alphabetic()) => {
                out.push(c);
                out.push(ZWSP);
            }
            _ => out.push(c),
        }
    }
    out.replace("://", &format!(":{ZWSP}//"))
}

/// A name from outside in a code span, where no markup counts; a backtick in it, which would
/// end the span, becomes a look-alike (U+02CB).
pub fn code(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('`', "\u{2cb}");
    format!("`{escaped}`")
}

/// `sha256:` and the first 12 hex digits, as `docker images` shows a digest.
fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 3).collect();
    out.push_str("...");
    out
}

#[cfg(test)]
#[path = "chat_tests.rs"]
mod tests;
