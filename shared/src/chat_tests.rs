//! Golden renderings: one notification of each kind, with the details its builder writes, and
//! the chat message it becomes in `shared/golden/chat/KIND.json`. `DECKHAND_BLESS=1` rewrites
//! the files; the diff is then read like any other change.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;
use crate::notification::{Kind, Notification, Severity};

fn at() -> DateTime<Utc> {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

const DIGEST: &str = "sha256:5f0c6e8a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789";

fn push(from: Option<&str>, to: Option<&str>) -> Value {
    json!({
        "eventId": "0f5a2b9e-7c1d-4e8f-9a0b-1c2d3e4f5a6b",
        "repository": "web",
        "tag": "main-42",
        "digest": DIGEST,
        "pushedAt": "2026-11-23T09:58:12Z",
        "containers": ["app"],
        "from": from,
        "to": to,
    })
}

fn alarm(from: &str, to: &str) -> Value {
    json!({
        "alarm": "prod-web-5xx",
        "alarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:prod-web-5xx",
        "alarmState": "ALARM",
        "alarmAt": "2026-11-23T09:59:30Z",
        "alarmReason": "Threshold Crossed: 1 datapoint [12.0 (23/11/26 09:58:00)] was greater than the threshold (5.0).",
        "guardedBecause": "the deployment completed at 09:59:02, 30m guard",
        "from": from,
        "to": to,
        "digest": DIGEST,
        "reason": "the alarm went into ALARM 28 s after ECS completed web:42",
        "strategy": "rolling",
        "rolledBackBy": "UpdateService",
    })
}

/// One notification of every kind, as its builder in `app` writes it.
fn samples() -> Vec<Notification> {
    let n = |kind, severity, service: &str, summary: &str, details| {
        Notification::new(kind, severity, service, summary, at(), details)
    };
    let mut quarantined = push(None, None);
    quarantined["findingSeverityCounts"] = json!({"CRITICAL": 1, "HIGH": 3});
    vec![
        n(
            Kind::DeployStarted,
            Severity::Info,
            "prod/web",
            "Deploying web:main-42 to prod/web: web:41 -> web:42",
            push(Some("web:41"), Some("web:42")),
        ),
        n(
            Kind::DeployCompleted,
            Severity::Info,
            "prod/web",
            "ECS completed the deployment of web:42; it becomes known-good at 2026-11-23T10:29:02Z unless an alarm rolls it back",
            json!({
                "ecsDeploymentId": "ecs-svc/1234567890123456789", "repository": "web", "tag": "main-42", "digest": DIGEST,
                "from": "web:41", "to": "web:42", "guardUntil": "2026-11-23T10:29:02Z", "pushedAt": "2026-11-23T09:58:12Z",
                "leadTimeSeconds": 50,
            }),
        ),
        n(
            Kind::DeployFailed,
            Severity::Error,
            "prod/web",
            "ECS deployment of web:42 failed (the deployment circuit breaker rolled it back); digest sha256:5f0c6e8a1b2c is quarantined for this service",
            json!({
                "ecsDeploymentId": "ecs-svc/1234567890123456789", "repository": "web", "tag": "main-42", "digest": DIGEST,
                "from": "web:41", "to": "web:42", "guardUntil": null,
            }),
        ),
        n(
            Kind::DeploySkipped,
            Severity::Warning,
            "prod/web",
            "Not deploying web:main-42 to prod/web: deploys are paused by alice until 2026-11-24T09:00:00Z",
            push(Some("web:41"), None),
        ),
        n(
            Kind::DeployQuarantined,
            Severity::Warning,
            "prod/web",
            "Not deploying web:main-42 to prod/web: the ECR scan found 1 CRITICAL, 3 HIGH (gate: HIGH); the digest is quarantined for the service",
            quarantined,
        ),
        n(
            Kind::DeployAwaitingApproval,
            Severity::Warning,
            "prod/web",
            "prod/web waits for approval at POST_TEST_TRAFFIC_SHIFT",
            json!({
                "serviceDeployment": "arn:aws:ecs:eu-west-1:123456789012:service-deployment/prod/web/Xy12Ab34",
                "hookId": "hook-1", "hookIds": ["hook-1", "hook-2"], "awaiting": 2, "laterPauses": 1,
                "stage": "POST_TEST_TRAFFIC_SHIFT", "expiresAt": "2026-11-23T11:00:00Z",
                "timeoutAction": "ROLLBACK", "approve": "deckhand approve prod/web", "reject": "deckhand reject prod/web",
            }),
        ),
        {
            let mut held = push(Some("web:41"), Some("web:42"));
            held["deploymentGroup"] = json!("shop/web");
            held["behind"] = json!("d-A1B2C3D4E");
            n(
                Kind::DeployHeld,
                Severity::Info,
                "prod/web",
                "Holding web:main-42 for prod/web: CodeDeploy group shop/web runs deployment d-A1B2C3D4E",
                held,
            )
        },
        n(
            Kind::TrafficShifted,
            Severity::Info,
            "prod/web-green",
            "50% of the traffic on prod/web-green now, 50% on prod/web-blue: step 2 of 3",
            json!({
                "traffic": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2",
                "from": "prod/web-blue", "to": "prod/web-green", "percent": 50, "step": 2, "steps": [10, 50, 100],
                "weights": [],
            }),
        ),
        n(
            Kind::RollbackStarted,
            Severity::Warning,
            "prod/web",
            "Rolling back prod/web from web:42 to web:41 after alarm prod-web-5xx; digest sha256:5f0c6e8a1b2c is quarantined",
            alarm("web:42", "web:41"),
        ),
        n(
            Kind::RollbackSkipped,
            Severity::Warning,
            "prod/web",
            "Alarm prod-web-5xx fired for prod/web; not rolling back: the guard window of web:42 ended at 2026-11-23T10:29:02Z",
            json!({
                "alarm": "prod-web-5xx", "alarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:prod-web-5xx",
                "alarmState": "ALARM", "alarmAt": "2026-11-23T11:02:00Z", "from": "web:41", "to": "web:42", "digest": null,
                "reason": "the guard window of web:42 ended at 2026-11-23T10:29:02Z",
            }),
        ),
        n(
            Kind::ScaleAsleep,
            Severity::Info,
            "staging/api",
            "Put staging/api to sleep: outside Mon-Fri 07:00-19:00 (Europe/London); 3 task(s) saved, autoscaling 2-6 saved",
            json!({
                "cause": "operator alice", "reason": "outside Mon-Fri 07:00-19:00 (Europe/London)", "dryRun": false,
                "scale": {"desiredCount": 3, "minCapacity": 2, "maxCapacity": 6},
            }),
        ),
        n(
            Kind::ScaleAwake,
            Severity::Info,
            "staging/api",
            "Woke staging/api: inside Mon-Fri 07:00-19:00 (Europe/London); back to 3 task(s), autoscaling 2-6; 36.0 task-hours saved",
            json!({
                "cause": "operator alice", "reason": "inside Mon-Fri 07:00-19:00 (Europe/London)", "dryRun": false,
                "scale": {"desiredCount": 3, "minCapacity": 2, "maxCapacity": 6, "taskHoursSaved": 36.0},
            }),
        ),
        n(
            Kind::ScaleSkipped,
            Severity::Warning,
            "staging/api",
            "staging/api was scaled by hand while asleep: the saved record is closed (3 task(s), autoscaling 2-6)",
            json!({
                "cause": "reconcile@22:00", "reason": "scaled by hand to 2 while asleep", "dryRun": false,
            }),
        ),
        n(
            Kind::ScaleSummary,
            Severity::Info,
            "*",
            "Reconcile of Mon 2026-11-23 19:00 UTC: 12 put to sleep, 0 woken, 1 skipped, 0 failed",
            json!({
                "cause": "reconcile@19:00",
                "asleep": {"count": 12, "services": (1..=12).map(|i| format!("staging/svc-{i:02}")).collect::<Vec<_>>(), "more": 0},
                "woken": {"count": 0, "services": [], "more": 0},
                "skipped": {"count": 1, "services": ["staging/batch"], "more": 0},
                "failed": {"count": 0, "services": [], "more": 0},
                "taskHoursSaved": 0.0, "dryRun": false,
            }),
        ),
        n(
            Kind::ConfigInvalid,
            Severity::Warning,
            "staging/api",
            "deckhand tags on staging/api do not parse, so its schedule is not applied: deckhand:awake: no day range",
            json!({
                "problems": [{"tag": "deckhand:awake", "value": "Mon-Fry 07:00-19:00", "message": "unknown day Fry"}],
            }),
        ),
        n(
            Kind::Error,
            Severity::Error,
            "prod/web",
            "Could not deploy web:main-42 to prod/web: ECS UpdateService was throttled; the event is retried",
            json!({
                "eventId": "0f5a2b9e-7c1d-4e8f-9a0b-1c2d3e4f5a6b", "error": "ECS UpdateService: throttled (ThrottlingException)",
            }),
        ),
    ]
}

fn golden(kind: Kind) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("golden/chat")
        .join(format!("{}.json", kind.as_str()))
}

/// The rendering is the golden file's text; with `bless`, it becomes it.
fn matches_golden(message: &ChatMessage, path: &std::path::Path, bless: bool) {
    let rendered = serde_json::to_string_pretty(message).unwrap() + "\n";
    if bless {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &rendered).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (DECKHAND_BLESS=1 writes it)", path.display()));
    assert_eq!(
        rendered,
        expected,
        "{} differs from its golden file",
        path.display()
    );
}

#[test]
fn every_kind_renders_as_its_golden_file() {
    let bless = std::env::var_os("DECKHAND_BLESS").is_some();
    let mut kinds = std::collections::BTreeSet::new();
    for n in samples() {
        kinds.insert(n.kind.as_str());
        matches_golden(&render(&n, None), &golden(n.kind), bless);
    }
    assert_eq!(kinds.len(), 16, "one sample per kind: {kinds:?}");
}

#[test]
fn the_title_says_what_happened_to_which_revision() {
    let started = render(&samples()[0], None);
    assert_eq!(
        started.content.title,
        "deploy started: prod/web web:41 -> web:42 (main-42)"
    );
    assert_eq!(
        started.content.next_steps[0],
        "roll back: `deckhand rollback prod/web`"
    );
    assert_eq!(started.metadata.thread_id, "prod/web");
    assert_eq!(started.metadata.event_type, "deploy.started");
    assert_eq!(started.content.text_type, "client-markdown");
    let body: Value = serde_json::from_str(&started.body()).unwrap();
    assert_eq!(body["version"], "1.0");
    assert_eq!(body["source"], "custom");
}

#[test]
fn one_services_messages_share_a_thread_and_the_digest_has_its_own() {
    let all: Vec<ChatMessage> = samples().iter().map(|n| render(n, None)).collect();
    let prod_web: Vec<&str> = all
        .iter()
        .filter(|m| m.metadata.thread_id == "prod/web")
        .map(|m| m.metadata.event_type)
        .collect();
    for kind in ["deploy.started", "deploy.completed", "rollback.started"] {
        assert!(
            prod_web.contains(&kind),
            "{kind} not in the thread: {prod_web:?}"
        );
    }
    let summary = all
        .iter()
        .find(|m| m.metadata.event_type == "scale.summary")
        .unwrap();
    assert_eq!(summary.metadata.thread_id, "deckhand/reconcile");
    assert_eq!(
        summary.content.title,
        "reconcile: 12 asleep, 0 woken, 1 skipped, 0 failed"
    );
    assert!(
        summary
            .content
            .description
            .contains("`staging/svc-10` and 2 more"),
        "{}",
        summary.content.description
    );
}

#[test]
fn a_fleets_summary_stays_within_what_slack_shows() {
    let names: Vec<String> = (0..2_000)
        .map(|i| format!("staging/{}-{i}", "x".repeat(60)))
        .collect();
    let n = Notification::new(
        Kind::ScaleSummary,
        Severity::Info,
        "*",
        "Reconcile: 2000 put to sleep",
        at(),
        json!({"asleep": {"count": 2_000, "services": names, "more": 0}, "taskHoursSaved": 0.0}),
    );
    let m = render(&n, None);
    assert!(m.content.description.chars().count() <= DESCRIPTION_MAX);
    assert!(
        m.content.description.contains("and 1990 more"),
        "{}",
        m.content.description
    );
    assert!(m.content.title.chars().count() <= TITLE_MAX);
}

/// An alarm named and described by whoever may create alarms, and tag values as anyone who may
/// tag a service writes them: nothing of theirs links, mentions, formats or opens a code span.
fn hostile() -> Vec<Notification> {
    const NAME: &str = "<!channel> *urgent* `rm -rf /` [docs](https://evil.example) @here";
    const REASON: &str = "Threshold Crossed <https://evil.example/login|sign in again> _now_ ~gone~ www.evil.example <@U012AB3CD>";
    let mut details = alarm("web:42", "web:41");
    details["alarm"] = json!(NAME);
    details["reason"] = json!(REASON);
    details["alarmState"] = json!("ALARM *bold*");
    let rollback = Notification::new(
        Kind::RollbackStarted,
        Severity::Warning,
        "prod/web",
        format!("Rolling back prod/web from web:42 to web:41 after alarm {NAME}: {REASON}"),
        at(),
        details,
    );
    let invalid = Notification::new(
        Kind::ConfigInvalid,
        Severity::Warning,
        "prod/web",
        "deckhand tags on prod/web do not parse: deckhand:awake = @channel_*x*_",
        at(),
        json!({"problems": [{"tag": "deckhand:awake", "value": "@channel_*x*_",
                             "message": "unknown day `@channel_*x*_` see https://evil.example"}]}),
    );
    vec![rollback, invalid]
}

#[test]
fn text_from_outside_is_inert_in_chat() {
    let bless = std::env::var_os("DECKHAND_BLESS").is_some();
    for n in hostile() {
        let message = render(&n, None);
        let shown = format!(
            "{}\n{}\n{}",
            message.content.title, message.content.description, message.metadata.summary
        );
        // Slack reads its escapes even in code spans.
        for forbidden in ["<!channel>", "<https://", "<@U"] {
            assert!(!shown.contains(forbidden), "{forbidden:?} in:\n{shown}");
        }
        // Outside deckhand's code spans (where nothing is markup), no markup at all.
        let outside: String = shown.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        for forbidden in [
            "*urgent*", "](https", "https://", "www.evil", "@here", "@channel", "_now_", "~gone~",
            "*bold*", "*x*",
        ] {
            assert!(!outside.contains(forbidden), "{forbidden:?} in:\n{outside}");
        }
        // The only code spans are deckhand's own, whole: an even number of backticks per line.
        for line in message.content.description.lines() {
            assert_eq!(line.matches('`').count() % 2, 0, "{line}");
        }
        // Read as text, it says what it said.
        let read: String = shown
            .replace('\u{200b}', "")
            .replace("&lt;", "<")
            .replace("&amp;", "&")
            .chars()
            .map(|c| match c {
                '\u{2217}' => '*',
                '\u{2cb}' => '`',
                '\u{ff20}' => '@',
                '\u{ff3f}' => '_',
                '\u{223c}' => '~',
                c => c,
            })
            .collect();
        assert!(read.contains(&n.summary), "{read}");
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("golden/chat/hostile")
            .join(format!("{}.json", n.kind.as_str()));
        matches_golden(&message, &path, bless);
    }
}

/// The stack's environment leads the title and is in the context, escaped like any text from
/// outside.
#[test]
fn the_environment_leads_the_title_and_is_in_the_context() {
    let n = samples()[0].clone();
    let plain = render(&n, None);
    let named = render(&n, Some("staging"));
    assert_eq!(
        named.content.title,
        format!("[staging] {}", plain.content.title)
    );
    assert_eq!(
        named
            .metadata
            .additional_context
            .get("environment")
            .map(String::as_str),
        Some("staging")
    );
    assert!(
        !plain
            .metadata
            .additional_context
            .contains_key("environment")
    );
    let odd = render(&n, Some("*prod*"));
    assert!(
        !odd.content.title.contains("*prod*"),
        "{}",
        odd.content.title
    );
}

#[test]
fn a_pairs_check_gate_says_the_function_decides_and_an_approval_gate_who_answers() {
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
        .unwrap()
        .to_utc();
    let gate = |details: Value| {
        let n = Notification::new(
            Kind::DeployAwaitingApproval,
            Severity::Warning,
            "prod/web-green",
            "prod/web-green runs the new revision behind its test rule",
            at,
            details,
        );
        render(&n, None).content.next_steps
    };
    assert_eq!(
        gate(
            json!({"gate": {"kind": "check", "function": "shop-smoke"}, "function": "shop-smoke"})
        ),
        ["check function shop-smoke decides; its answer: `deckhand history prod/web-green`"]
    );
    assert_eq!(
        gate(json!({"gate": {"kind": "approve"}, "approve": "deckhand approve prod/web-green"}))[0],
        "let it go on: `deckhand approve prod/web-green`"
    );
}
