use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn schedule(awake: &str, tz: &str, days_off: &str) -> Schedule {
    Schedule {
        awake: AwakeWindows::parse(awake).unwrap(),
        timezone: parse_timezone(tz).unwrap(),
        days_off: parse_days_off(days_off).unwrap(),
    }
}

#[test]
fn every_form_parses_and_prints_canonically() {
    for (text, canonical) in [
        ("Mon-Fri 07:00-19:00", "Mon-Fri 07:00-19:00"),
        ("daily 7:00-19:30", "daily 07:00-19:30"),
        ("DAILY 00:00-24:00", "daily 00:00-24:00"),
        ("Sat 10:00-12:00", "Sat 10:00-12:00"),
        ("fri-mon 22:00-06:00", "Fri-Mon 22:00-06:00"),
        ("Mon-Sun 08:00-09:00", "daily 08:00-09:00"),
        (
            "Mon-Fri 07:00-12:00  +  Mon-Fri 13:00-19:00 + Sun 20:00-02:00",
            "Mon-Fri 07:00-12:00 + Mon-Fri 13:00-19:00 + Sun 20:00-02:00",
        ),
    ] {
        let parsed = AwakeWindows::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(parsed.to_string(), canonical, "{text}");
        assert_eq!(AwakeWindows::parse(canonical).unwrap(), parsed);
    }
}

#[test]
fn invalid_values_say_what_is_wrong() {
    for (text, expected) in [
        ("", ScheduleError::Empty),
        ("  ", ScheduleError::Empty),
        ("Mon-Fri", ScheduleError::Window("Mon-Fri".into())),
        (
            "Mon-Fri 07:00-19:00 extra",
            ScheduleError::Window("Mon-Fri 07:00-19:00 extra".into()),
        ),
        ("Mon-Fry 07:00-19:00", ScheduleError::Days("Mon-Fry".into())),
        (
            "Weekdays 07:00-19:00",
            ScheduleError::Days("Weekdays".into()),
        ),
        ("Mon-Fri 7-19", ScheduleError::Time("7".into())),
        ("Mon-Fri 07:00-25:00", ScheduleError::Time("25:00".into())),
        ("Mon-Fri 07:60-19:00", ScheduleError::Time("07:60".into())),
        ("Mon-Fri 24:00-06:00", ScheduleError::Time("24:00".into())),
        ("Mon-Fri 7:0-19:00", ScheduleError::Time("7:0".into())),
        (
            "Mon-Fri 07:00-07:00",
            ScheduleError::EmptyWindow("Mon-Fri 07:00-07:00".into()),
        ),
        (
            "Mon-Fri 07:00-19:00 +",
            ScheduleError::Window(String::new()),
        ),
        (
            "Mon-Fri,Sat 07:00-19:00",
            ScheduleError::Days("Mon-Fri,Sat".into()),
        ),
    ] {
        assert_eq!(AwakeWindows::parse(text), Err(expected), "{text:?}");
    }
    assert_eq!(
        parse_days_off("2026-12-25 2026-13-01"),
        Err(ScheduleError::Date("2026-13-01".into()))
    );
    assert_eq!(
        parse_days_off("25/12/2026"),
        Err(ScheduleError::Date("25/12/2026".into()))
    );
    assert_eq!(
        parse_timezone("Europe/Londres"),
        Err(ScheduleError::TimeZone("Europe/Londres".into()))
    );
    assert_eq!(parse_days_off("").unwrap().len(), 0);
}

#[test]
fn office_hours_in_utc() {
    let s = schedule("Mon-Fri 07:00-19:00", "UTC", "");
    // 2026-11-23 is a Monday.
    assert!(!s.is_awake(utc("2026-11-23T06:59:59Z")));
    assert!(s.is_awake(utc("2026-11-23T07:00:00Z")));
    assert!(s.is_awake(utc("2026-11-23T18:59:59Z")));
    assert!(!s.is_awake(utc("2026-11-23T19:00:00Z")));
    assert!(!s.is_awake(utc("2026-11-28T12:00:00Z")), "Saturday");
    assert_eq!(
        s.next_change(utc("2026-11-27T12:00:00Z")),
        Some(utc("2026-11-27T19:00:00Z"))
    );
    assert_eq!(
        s.next_wake(utc("2026-11-27T12:00:00Z")),
        Some(utc("2026-11-30T07:00:00Z")),
        "after Friday comes Monday"
    );
}

#[test]
fn windows_past_midnight_belong_to_the_day_they_start() {
    let s = schedule("Mon-Fri 22:00-06:00", "UTC", "");
    assert!(
        !s.is_awake(utc("2026-11-23T03:00:00Z")),
        "Monday early: Sunday is off"
    );
    assert!(s.is_awake(utc("2026-11-23T22:00:00Z")));
    assert!(s.is_awake(utc("2026-11-24T05:59:00Z")));
    assert!(!s.is_awake(utc("2026-11-24T06:00:00Z")));
    assert!(
        s.is_awake(utc("2026-11-28T05:00:00Z")),
        "Saturday morning ends Friday's night"
    );
    assert!(!s.is_awake(utc("2026-11-28T22:00:00Z")));
    let s = schedule("daily 00:00-24:00", "UTC", "");
    assert!(s.is_awake(utc("2026-11-28T23:59:59Z")));
    assert_eq!(s.next_change(utc("2026-11-28T12:00:00Z")), None);
}

#[test]
fn day_ranges_wrap_around_sunday() {
    let s = schedule("Fri-Mon 10:00-16:00", "UTC", "");
    for (day, awake) in [
        ("2026-11-23", true),  // Mon
        ("2026-11-24", false), // Tue
        ("2026-11-26", false), // Thu
        ("2026-11-27", true),  // Fri
        ("2026-11-28", true),  // Sat
        ("2026-11-29", true),  // Sun
    ] {
        assert_eq!(s.is_awake(utc(&format!("{day}T12:00:00Z"))), awake, "{day}");
    }
}

#[test]
fn days_off_are_asleep_all_day_including_the_night_they_start() {
    let s = schedule(
        "Mon-Fri 07:00-19:00 + Fri 22:00-02:00",
        "Europe/London",
        "2026-12-25 2026-12-28",
    );
    assert!(
        !s.is_awake(utc("2026-12-25T12:00:00Z")),
        "Christmas, a Friday"
    );
    assert!(!s.is_awake(utc("2026-12-25T23:00:00Z")));
    assert!(
        !s.is_awake(utc("2026-12-26T01:00:00Z")),
        "the night of a day off"
    );
    assert!(s.is_awake(utc("2026-12-24T12:00:00Z")));
    assert!(!s.is_awake(utc("2026-12-28T12:00:00Z")), "Monday off");
    assert_eq!(
        s.next_wake(utc("2026-12-24T20:00:00Z")),
        Some(utc("2026-12-29T07:00:00Z"))
    );
    assert!(
        s.explain(utc("2026-12-25T12:00:00Z"))
            .contains("2026-12-25 is a day off")
    );
}

#[test]
fn seven_am_is_seven_local_on_both_sides_of_london_changes() {
    let s = schedule("daily 07:00-19:00", "Europe/London", "");
    // Clocks go forward on 29 March 2026 (GMT -> BST) and back on 25 October 2026.
    assert!(s.is_awake(utc("2026-03-28T07:00:00Z")));
    assert!(!s.is_awake(utc("2026-03-28T06:59:00Z")));
    assert!(s.is_awake(utc("2026-03-29T06:00:00Z")), "07:00 BST");
    assert!(!s.is_awake(utc("2026-03-29T05:59:00Z")));
    assert!(!s.is_awake(utc("2026-03-29T18:00:00Z")), "19:00 BST");
    assert!(s.is_awake(utc("2026-10-24T06:00:00Z")), "07:00 BST");
    assert!(!s.is_awake(utc("2026-10-25T06:00:00Z")), "06:00 GMT");
    assert!(s.is_awake(utc("2026-10-25T07:00:00Z")), "07:00 GMT");
    assert_eq!(
        s.next_wake(utc("2026-03-28T20:00:00Z")),
        Some(utc("2026-03-29T06:00:00Z"))
    );
    assert_eq!(
        s.next_wake(utc("2026-10-24T20:00:00Z")),
        Some(utc("2026-10-25T07:00:00Z"))
    );
    assert!(
        s.explain(utc("2026-03-29T06:00:00Z"))
            .ends_with("(Europe/London BST)")
    );
}

#[test]
fn seven_am_is_seven_local_on_both_sides_of_new_york_changes() {
    let s = schedule("Mon-Fri 07:00-19:00", "America/New_York", "");
    // Clocks go forward on 8 March 2026 (EST -> EDT) and back on 1 November 2026.
    assert!(s.is_awake(utc("2026-03-06T12:00:00Z")), "Friday 07:00 EST");
    assert!(s.is_awake(utc("2026-03-09T11:00:00Z")), "Monday 07:00 EDT");
    assert!(!s.is_awake(utc("2026-03-09T10:59:00Z")));
    assert!(s.is_awake(utc("2026-10-30T11:00:00Z")), "Friday 07:00 EDT");
    assert!(!s.is_awake(utc("2026-11-02T11:00:00Z")), "Monday 06:00 EST");
    assert!(s.is_awake(utc("2026-11-02T12:00:00Z")), "Monday 07:00 EST");
    assert_eq!(
        s.next_wake(utc("2026-03-06T23:00:00Z")),
        Some(utc("2026-03-09T11:00:00Z"))
    );
    assert_eq!(
        s.next_change(utc("2026-11-02T12:00:00Z")),
        Some(utc("2026-11-03T00:00:00Z")),
        "19:00 EST"
    );
}

#[test]
fn a_boundary_in_the_skipped_hour_takes_effect_when_the_clock_jumps() {
    // New York skips 02:00-03:00 on 8 March 2026 (07:00 UTC).
    let s = schedule("daily 02:30-05:00", "America/New_York", "");
    assert!(!s.is_awake(utc("2026-03-08T06:59:59Z")), "01:59:59 EST");
    assert!(s.is_awake(utc("2026-03-08T07:00:00Z")), "03:00 EDT");
    assert_eq!(
        s.next_change(utc("2026-03-08T05:00:00Z")),
        Some(utc("2026-03-08T07:00:00Z"))
    );
}

#[test]
fn the_repeated_hour_does_not_flap() {
    // London repeats 01:00-02:00 on 25 October 2026: 00:00-01:00 UTC is BST, 01:00-02:00
    // UTC is GMT.
    let starts = schedule("daily 01:30-06:00", "Europe/London", "");
    assert!(!starts.is_awake(utc("2026-10-25T00:29:00Z")), "01:29 BST");
    assert!(starts.is_awake(utc("2026-10-25T00:30:00Z")), "01:30 BST");
    assert!(
        starts.is_awake(utc("2026-10-25T01:10:00Z")),
        "01:10 GMT, second pass"
    );
    assert_eq!(
        starts.next_change(utc("2026-10-25T00:00:00Z")),
        Some(utc("2026-10-25T00:30:00Z"))
    );
    assert_eq!(
        starts.next_change(utc("2026-10-25T00:30:00Z")),
        Some(utc("2026-10-25T06:00:00Z"))
    );
    let ends = schedule("daily 20:00-01:30", "Europe/London", "");
    assert!(ends.is_awake(utc("2026-10-25T00:29:00Z")));
    assert!(
        !ends.is_awake(utc("2026-10-25T00:30:00Z")),
        "ends at the first 01:30"
    );
    assert!(
        !ends.is_awake(utc("2026-10-25T01:10:00Z")),
        "stays asleep in the second pass"
    );
    let ends_after = schedule("daily 20:00-02:00", "Europe/London", "");
    assert!(
        ends_after.is_awake(utc("2026-10-25T01:59:00Z")),
        "01:59 GMT"
    );
    assert!(
        !ends_after.is_awake(utc("2026-10-25T02:00:00Z")),
        "02:00 GMT"
    );
}
