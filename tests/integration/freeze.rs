//! Change freezes through Systems Manager: a Change Calendar created as AWS documents it
//! (DocumentType ChangeCalendar, DocumentFormat TEXT, iCalendar), read by the deploy function's
//! role with `GetCalendarState` at its own clock (scripts/emulator_calendar.py answers from the
//! calendar's events). A push while it is CLOSED is held and deploys when it opens; a rollback
//! is never held; an operator deploys a held push through the freeze.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deckhand::adapters::memory::FixedClock;
use deckhand::app::deploy::DeployFunction;
use deckhand::app::rollback::RollbackFunction;
use deckhand::report::{Outcome, Summary};
use serde_json::json;

use crate::cli::deckhand_json;
use crate::harness::{ACCOUNT, Role, Stack};
use crate::rollback::{alarm_event, metric_alarm, utc};

/// A freeze from 10:00 to 12:00 UTC on 2026-12-05, in a calendar open by default.
fn calendar(name: &str) -> String {
    [
        "BEGIN:VCALENDAR",
        "PRODID:-//AWS//Change Calendar 1.0//EN",
        "VERSION:2.0",
        "X-CALENDAR-TYPE:DEFAULT_OPEN",
        &format!("X-WR-CALDESC:{name}"),
        "BEGIN:VEVENT",
        "DTSTAMP:20261201T090000Z",
        &format!("UID:{name}-freeze"),
        "DTSTART:20261205T100000Z",
        "DTEND:20261205T120000Z",
        "SUMMARY:release freeze",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    .join("\r\n")
}

struct Frozen {
    stack: Stack,
    clock: Arc<FixedClock>,
    deploy: DeployFunction,
    rollback: RollbackFunction,
}

impl Frozen {
    /// `web` (`prefix=main-`, guarded two hours) in a stack whose `ChangeCalendar` freezes
    /// 10:00 to 12:00.
    async fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let name = format!("freeze-{}", NEXT.fetch_add(1, Ordering::SeqCst));
        let stack = Stack::in_account(ACCOUNT, json!({"ChangeCalendar": name})).await;
        aws_sdk_ssm::Client::new(&stack.sdk)
            .create_document()
            .name(&name)
            .document_type(aws_sdk_ssm::types::DocumentType::ChangeCalendar)
            .document_format(aws_sdk_ssm::types::DocumentFormat::Text)
            .content(calendar(&name))
            .send()
            .await
            .unwrap();
        let td = stack
            .simple_task_definition(&format!("freeze-{}", stack.id), "main-41")
            .await;
        stack
            .create_service(
                "web",
                &td,
                &[
                    ("deckhand:deploy", "prefix=main-"),
                    ("deckhand:guard", "2h"),
                ],
            )
            .await;
        let clock = Arc::new(FixedClock::new(utc("2026-12-05T09:00:00Z")));
        Self {
            deploy: DeployFunction::new(stack.ports(Role::Deploy, clock.clone()), stack.config()),
            rollback: RollbackFunction::new(
                stack.ports(Role::Rollback, clock.clone()),
                stack.config(),
            ),
            stack,
            clock,
        }
    }

    async fn push(&self, tag: &str, at: &str) -> (String, Summary) {
        self.clock.set(utc(at));
        let digest = self.stack.push_image(tag).await;
        let event = self
            .stack
            .push_event(&format!("push-{tag}"), utc(at), tag, &digest);
        (digest, self.deploy.handle(&event).await.unwrap())
    }

    async fn round(&self, at: &str) -> Summary {
        self.clock.set(utc(at));
        self.deploy
            .handle(&json!({"action": "release-held"}))
            .await
            .unwrap()
    }

    async fn image(&self) -> String {
        self.stack.running_image("web").await
    }
}

#[tokio::test]
async fn a_push_in_a_closed_calendar_is_held_a_rollback_is_not_and_the_opening_deploys() {
    let f = Frozen::new().await;
    // Before the freeze: deployed, and completed.
    let (_, before) = f.push("main-42", "2026-12-05T09:00:00Z").await;
    assert_eq!(before.outcome, Outcome::Deployed, "{before:?}");
    f.clock.set(utc("2026-12-05T09:05:00Z"));
    let completed = f.stack.deployment_event(
        "ecs-deployment-completed",
        "done-42",
        "web",
        utc("2026-12-05T09:05:00Z"),
    );
    f.deploy.handle(&completed).await.unwrap();
    let deployed = f.stack.running_task_definition("web").await;

    // Inside the freeze an alarm still rolls back: rollbacks are never held.
    let arn = metric_alarm(
        &f.stack,
        &format!("web-5xx-{}", f.stack.id),
        Some("web"),
        &[],
    )
    .await;
    let at = "2026-12-05T10:10:00Z";
    f.clock.set(utc(at));
    let alarm = alarm_event(&f.stack, "alarm-1", &arn, "ALARM", "OK", at, Some("web"));
    let rolled = f.rollback.handle(&alarm).await.unwrap();
    assert_eq!(rolled.outcome, Outcome::RolledBack, "{rolled:?}");
    assert_ne!(f.stack.running_task_definition("web").await, deployed);

    // A push inside the freeze is held, and said so.
    let (digest, held) = f.push("main-43", "2026-12-05T10:30:00Z").await;
    assert_eq!(held.outcome, Outcome::Held, "{held:?}");
    assert!(held.services[0].reason.contains("is CLOSED"), "{held:?}");
    assert!(
        f.stack
            .notification_kinds()
            .contains(&"deploy.held".to_owned())
    );
    let frozen_image = f.image().await;
    // Still closed at 11:00: the round keeps it.
    assert_eq!(f.round("2026-12-05T11:00:00Z").await.outcome, Outcome::Held);
    assert_eq!(f.image().await, frozen_image);
    // Open at 12:05: the round deploys it.
    let opened = f.round("2026-12-05T12:05:00Z").await;
    assert_eq!(opened.outcome, Outcome::Deployed, "{opened:?}");
    assert_eq!(f.image().await, f.stack.image(&format!("@{digest}")));
}

#[tokio::test]
async fn an_operator_deploys_a_held_push_through_the_freeze_and_is_named() {
    let f = Frozen::new().await;
    let (digest, held) = f.push("main-42", "2026-12-05T10:30:00Z").await;
    assert_eq!(held.outcome, Outcome::Held, "{held:?}");
    let web = f.stack.service_key("web").to_string();
    let out = deckhand_json(&f.stack, &["deploy-held", &web]).await;
    assert_eq!(out[0]["action"], json!("recorded"), "{out}");
    assert_eq!(out[1]["action"], json!("deployed"), "{out}");
    assert!(
        out[1]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("released it (deckhand deploy-held)"),
        "{out}"
    );
    assert_eq!(f.image().await, f.stack.image(&format!("@{digest}")));
    // Nothing is held any more.
    let again = crate::cli::deckhand(&f.stack, &["deploy-held", &web]).await;
    assert!(again.is_err());
}
