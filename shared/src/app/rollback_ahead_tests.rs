//! The locks an alarm's rollback takes beside the read of the services: only on services
//! named by tag, or known to deckhand, and none left held.

use super::*;

/// A service deckhand never touched, whose metric the alarm names and whose rollback is off:
/// no lock, and so no record written for it.
#[tokio::test]
async fn a_service_deckhand_never_touched_gets_no_record_from_an_alarm_on_its_metric() {
    let w = world();
    let api = w.service("api", &[("deckhand:rollback", "off")]);
    let summary = w.alarm("a1", "ALARM", "OK", START).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Ignored, "{summary:?}");
    assert_eq!(w.store.locks(&api), 0);
    assert!(!w.store.is_locked(&api));
    assert_eq!(w.store.load(&api).await.unwrap(), ServiceState::default());
}

/// A service named by its `deckhand:alarms` tag is locked beside the read; deckhand never
/// deployed it, so the alarm is recorded as skipped, and the lock is given back.
#[tokio::test]
async fn a_service_named_by_tag_is_locked_once_and_given_back() {
    let w = world();
    let api = w.service("api", &[("deckhand:alarms", "api-5xx")]);
    let event = alarm_event("a1", "api-5xx", "ALARM", "OK", START, None);
    let summary = w.alarm_event(event).await.unwrap();
    assert_eq!(summary.outcome, Outcome::Skipped, "{summary:?}");
    assert!(
        summary.services[0].reason.contains("has not deployed"),
        "{summary:?}"
    );
    assert_eq!(w.store.locks(&api), 1);
    assert!(!w.store.is_locked(&api));
    assert_eq!(w.actions(&api), [Action::Skipped]);
}

/// A service named by tag whose `deckhand:rollback` tag does not parse: its lock, taken beside
/// the read, is given back, and nothing else is written under it.
#[tokio::test]
async fn a_lock_taken_for_a_service_whose_tags_do_not_parse_is_given_back() {
    let w = world();
    let api = w.service(
        "api",
        &[
            ("deckhand:alarms", "api-5xx"),
            ("deckhand:rollback", "maybe"),
        ],
    );
    let event = alarm_event("a1", "api-5xx", "ALARM", "OK", START, None);
    let summary = w.alarm_event(event).await.unwrap();
    assert_eq!(summary.services[0].action, Action::Invalid, "{summary:?}");
    assert!(!w.store.is_locked(&api));
    assert_eq!(w.store.load(&api).await.unwrap().deployment, None);
}
