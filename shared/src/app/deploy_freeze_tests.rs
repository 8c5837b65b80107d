//! Change freezes: a push while the calendar is CLOSED is held, the newest one per service, and
//! deploys when the calendar opens; an operator may release it through the freeze.

use super::*;
use crate::domain::freeze::CalendarState;

/// `demo/web` (`prefix=main-`) in a stack whose change calendar is `freeze`.
fn frozen(tags: &[(&str, &str)]) -> World {
    let w = world_with(Config {
        change_calendar: Some("freeze".into()),
        ..config(false)
    });
    let td = w
        .ecs
        .add_task_definition("web", &[("web", &format!("{HOST}/web:main-1"))]);
    let mut all = vec![("deckhand:deploy", "prefix=main-")];
    all.extend_from_slice(tags);
    w.ecs.add_service(&web(), &td, &all);
    w
}

/// SSM's `Calendar State Change` (the corpus's, AWS's example) for the `freeze` calendar.
fn calendar_event(id: &str, state: &str) -> Value {
    let mut event = crate::fixtures::aws(match state {
        "OPEN" => "ssm-calendar-state-change-open",
        _ => "ssm-calendar-state-change-closed",
    });
    event["id"] = json!(id);
    event["resources"] = json!(["arn:aws:ssm:eu-west-1:123456789012:document/freeze"]);
    event
}

/// The deploy function's round of held pushes.
async fn round(w: &World) -> Summary {
    w.function
        .handle(&json!({"action": "release-held"}))
        .await
        .unwrap()
}

async fn push(w: &World, id: &str, minute: u32, tag: &str, d: char) -> Summary {
    w.function
        .handle(&w.pushed(push_event(id, minute, Some(tag), d)))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_push_while_the_calendar_is_closed_is_held_and_the_newest_deploys_when_it_opens() {
    let w = frozen(&[]);
    w.calendars.set("freeze", CalendarState::Closed);
    let held = push(&w, "e1", 1, "main-2", 'b').await;
    assert_eq!(held.outcome, Outcome::Held, "{held:?}");
    assert!(
        held.services[0]
            .reason
            .contains("change calendar freeze is CLOSED"),
        "{held:?}"
    );
    assert_eq!(kinds(&w), ["deploy.held"]);
    assert_eq!(running_image(&w, "web"), format!("{HOST}/web:main-1"));
    // A newer push takes its place; the older is recorded as superseded.
    let newer = push(&w, "e2", 3, "main-3", 'c').await;
    assert_eq!(newer.outcome, Outcome::Held);
    let history = w.store.history(&web(), 10).await.unwrap();
    assert!(
        history.iter().any(|r| r.action == Action::Skipped
            && r.cause == "e1"
            && r.reason.contains("the newer push e2 is held instead")),
        "{history:?}"
    );
    // A late delivery of an older push does not displace it.
    let late = push(&w, "e0", 2, "main-1b", 'd').await;
    assert_eq!(late.outcome, Outcome::Skipped, "{late:?}");
    assert!(
        late.services[0]
            .reason
            .contains("the newer push e2 is held")
    );
    // The round while still closed keeps it, quietly.
    let records = w.store.all_history().len();
    let released = round(&w).await;
    assert_eq!(released.outcome, Outcome::Held, "{released:?}");
    assert_eq!(w.store.all_history().len(), records);
    assert_eq!(w.ecs.calls("UpdateService"), 0);
    // A calendar that closes releases nothing; one that opens releases the newest push.
    let closing = w
        .function
        .handle(&calendar_event("c1", "CLOSED"))
        .await
        .unwrap();
    assert_eq!(closing.outcome, Outcome::Ignored);
    w.calendars.set("freeze", CalendarState::Open);
    let opened = w
        .function
        .handle(&calendar_event("c2", "OPEN"))
        .await
        .unwrap();
    assert_eq!(opened.outcome, Outcome::Deployed, "{opened:?}");
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('c'))
    );
    assert!(w.store.load(&web()).await.unwrap().held.is_none());
    // The calendar was read at the function's clock.
    assert!(
        w.calendars
            .reads()
            .iter()
            .all(|(c, t)| c == "freeze" && *t == at(30))
    );
}

#[tokio::test]
async fn the_round_of_held_pushes_deploys_once_the_calendar_is_open() {
    let w = frozen(&[]);
    w.calendars.set("freeze", CalendarState::Closed);
    push(&w, "e1", 1, "main-2", 'b').await;
    w.calendars.set("freeze", CalendarState::Open);
    // No calendar event came (EventBridge's are best effort): the round deploys it.
    let released = round(&w).await;
    assert_eq!(released.outcome, Outcome::Deployed, "{released:?}");
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('b'))
    );
    let nothing = round(&w).await;
    assert_eq!(nothing.outcome, Outcome::Ignored);
}

#[tokio::test]
async fn a_calendar_that_cannot_be_read_holds_and_a_tag_names_the_services_own() {
    let w = frozen(&[("deckhand:change-calendar", "web-freeze")]);
    w.calendars.set("freeze", CalendarState::Closed);
    w.calendars.unreadable("web-freeze");
    let held = push(&w, "e1", 1, "main-2", 'b').await;
    assert_eq!(held.outcome, Outcome::Held, "{held:?}");
    assert!(
        held.services[0]
            .reason
            .contains("change calendar web-freeze could not be read"),
        "{held:?}"
    );
    // The stack's calendar, closed, is not this service's: once its own opens, it deploys.
    w.calendars.set("web-freeze", CalendarState::Open);
    let released = round(&w).await;
    assert_eq!(released.outcome, Outcome::Deployed, "{released:?}");
    // A tag that names no calendar leaves the service alone.
    let w = frozen(&[("deckhand:change-calendar", "x")]);
    let invalid = push(&w, "e1", 1, "main-2", 'b').await;
    assert_eq!(invalid.services[0].action, Action::Invalid, "{invalid:?}");
    assert_eq!(w.ecs.calls("UpdateService"), 0);
}

#[tokio::test]
async fn an_operator_releases_a_held_push_through_the_freeze() {
    let w = frozen(&[]);
    w.calendars.set("freeze", CalendarState::Closed);
    push(&w, "e1", 1, "main-2", 'b').await;
    let mut state = w.store.load(&web()).await.unwrap();
    if let Some(held) = state.held.as_mut() {
        held.lifted_by = Some("arn:aws:iam::123456789012:user/alice".into());
    }
    w.store.put_state(&web(), state);
    let released = w.function.release_held(Some(&web())).await;
    assert_eq!(released[0].action, Action::Deployed, "{released:?}");
    assert!(
        released[0].reason.contains("user/alice released it"),
        "{released:?}"
    );
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('b'))
    );
}
