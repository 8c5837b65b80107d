//! Change freezes: a Systems Manager Change Calendar (the service's `deckhand:change-calendar`,
//! else the stack's `ChangeCalendar`) that is CLOSED holds a push or a promotion that would
//! deploy; the newest one held per service deploys once the calendar is OPEN. A calendar that
//! cannot be read holds too: a freeze nobody can see is still a freeze. Rollbacks and sleep are
//! never held; an operator may deploy a held push through a freeze (`deckhand deploy-held`).

use chrono::{DateTime, Utc};

use super::settings::{TagProblem, Tags};

pub const TAG_CHANGE_CALENDAR: &str = "deckhand:change-calendar";

/// What `GetCalendarState` says of a calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalendarState {
    Open,
    Closed,
}

/// A Systems Manager document name (3 to 128 of letters, digits, `_`, `-`, `.`), or a
/// document's ARN for a calendar shared from another account.
pub fn is_calendar_name(value: &str) -> bool {
    let name = value
        .strip_prefix("arn:")
        .and_then(|rest| rest.rsplit_once(":document/").map(|(_, name)| name))
        .unwrap_or(value);
    (3..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The calendar that freezes the service's deploys: its tag, else the stack's.
pub fn calendar_of(tags: &Tags, stack: Option<&str>) -> Result<Option<String>, TagProblem> {
    match tags.get(TAG_CHANGE_CALENDAR) {
        None => Ok(stack.map(str::to_owned)),
        Some(value) if is_calendar_name(value.trim()) => Ok(Some(value.trim().to_owned())),
        Some(value) => Err(TagProblem {
            tag: TAG_CHANGE_CALENDAR.into(),
            value: value.clone(),
            message: "expected the name of a Change Calendar (3 to 128 letters, digits, _ - .) or its document ARN".into(),
        }),
    }
}

/// Whether a push that would deploy goes ahead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FreezeVerdict {
    Proceed,
    /// Deploys through a freeze an operator lifted for this push: said in the record.
    Lifted(String),
    Hold(String),
}

/// The freeze's word on a held push an operator released (`deckhand deploy-held`): it goes,
/// said with the freeze it was held by, if one held it.
pub fn lifted(operator: &str, held_by: Option<&str>) -> FreezeVerdict {
    let through = held_by
        .map(|c| format!(" through the freeze of change calendar {c}"))
        .unwrap_or_default();
    FreezeVerdict::Lifted(format!(
        "deployed{through}: {operator} released it (deckhand deploy-held)"
    ))
}

/// The freeze's word on a push that would deploy, from the calendar's state as read (or why it
/// could not be).
pub fn freeze_verdict(
    calendar: Option<&str>,
    state: Option<Result<CalendarState, String>>,
) -> FreezeVerdict {
    let Some(calendar) = calendar else {
        return FreezeVerdict::Proceed;
    };
    match state {
        None | Some(Ok(CalendarState::Open)) => FreezeVerdict::Proceed,
        Some(Ok(CalendarState::Closed)) => FreezeVerdict::Hold(format!(
            "change calendar {calendar} is CLOSED: the push is held, and deploys when the calendar opens unless a newer one replaces it"
        )),
        Some(Err(why)) => FreezeVerdict::Hold(format!(
            "change calendar {calendar} could not be read ({why}): the push is held until it can be, and deploys once the calendar is OPEN"
        )),
    }
}

/// Of a push held already and a newer one, which is held: the one ECR accepted last. The
/// other is superseded (`true` when the new one is).
pub fn superseded_by_held(held_pushed_at: DateTime<Utc>, new_pushed_at: DateTime<Utc>) -> bool {
    new_pushed_at < held_pushed_at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_names_a_calendar_or_the_stacks_holds() {
        let tags: Tags = [(TAG_CHANGE_CALENDAR.to_owned(), " prod-freeze ".to_owned())].into();
        assert_eq!(
            calendar_of(&tags, Some("stack")),
            Ok(Some("prod-freeze".into()))
        );
        assert_eq!(
            calendar_of(&Tags::new(), Some("stack")),
            Ok(Some("stack".into()))
        );
        assert_eq!(calendar_of(&Tags::new(), None), Ok(None));
        let arn: Tags = [(
            TAG_CHANGE_CALENDAR.to_owned(),
            "arn:aws:ssm:eu-west-1:111111111111:document/org-freeze".to_owned(),
        )]
        .into();
        assert!(calendar_of(&arn, None).unwrap().is_some());
        for bad in ["x", "no spaces here", "a/b", &"c".repeat(129)] {
            let tags: Tags = [(TAG_CHANGE_CALENDAR.to_owned(), bad.to_owned())].into();
            let problem = calendar_of(&tags, None).unwrap_err();
            assert_eq!(problem.tag, TAG_CHANGE_CALENDAR, "{bad}");
        }
    }

    #[test]
    fn a_closed_or_unreadable_calendar_holds_and_an_operator_lifts_it_for_one_push() {
        let open = Some(Ok(CalendarState::Open));
        let closed = Some(Ok(CalendarState::Closed));
        assert_eq!(freeze_verdict(None, closed.clone()), FreezeVerdict::Proceed);
        assert_eq!(freeze_verdict(Some("f"), open), FreezeVerdict::Proceed);
        let FreezeVerdict::Hold(why) = freeze_verdict(Some("f"), closed) else {
            panic!("a closed calendar lets a push through");
        };
        assert!(why.contains("change calendar f is CLOSED"), "{why}");
        let FreezeVerdict::Hold(why) = freeze_verdict(Some("f"), Some(Err("denied".into()))) else {
            panic!("an unreadable calendar lets a push through");
        };
        assert!(why.contains("could not be read (denied)"), "{why}");
        let FreezeVerdict::Lifted(why) = lifted("alice", Some("f")) else {
            panic!("an operator's release is not honoured");
        };
        assert!(
            why.contains("through the freeze of change calendar f: alice released it"),
            "{why}"
        );
        let FreezeVerdict::Lifted(why) = lifted("alice", None) else {
            panic!("an operator's release is not honoured");
        };
        assert_eq!(why, "deployed: alice released it (deckhand deploy-held)");
    }

    #[test]
    fn the_push_ecr_accepted_last_is_the_one_held() {
        let at = |m: i64| DateTime::<Utc>::from_timestamp(m * 60, 0).unwrap();
        assert!(!superseded_by_held(at(1), at(2)));
        assert!(superseded_by_held(at(2), at(1)));
    }
}
