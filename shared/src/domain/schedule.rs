//! When a service should run: the `deckhand:awake` grammar, time zones and days off, and the
//! evaluation "should this service be awake at instant T".
//!
//! Windows are read on the wall clock of the service's time zone, so a 07:00 wake-up is 07:00
//! local on both sides of a daylight-saving change. Two rules make the changes behave as a
//! person expects: a boundary that falls into the hour skipped in spring takes effect when the
//! clock jumps over it, and during the hour repeated in autumn the state stays as it was at the
//! end of the first pass, so nothing flaps.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MINUTES_PER_DAY: u16 = 24 * 60;
/// How far ahead to look for the next change: beyond any list of days off.
const HORIZON_DAYS: u64 = 400;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("the value is empty: write windows like `Mon-Fri 07:00-19:00`")]
    Empty,
    #[error(
        "`{0}` is not a window: write DAYS HH:MM-HH:MM (e.g. `Mon-Fri 07:00-19:00`), windows joined by ` + `"
    )]
    Window(String),
    #[error(
        "`{0}` is not a day or day range: write Mon..Sun, a range like Mon-Fri or Fri-Mon, or daily"
    )]
    Days(String),
    #[error("`{0}` is not a time: write HH:MM from 00:00 to 23:59 (24:00 only as an end)")]
    Time(String),
    #[error("`{0}` starts and ends at the same time: for a whole day write 00:00-24:00")]
    EmptyWindow(String),
    #[error("`{0}` is not a date: write YYYY-MM-DD, dates separated by spaces")]
    Date(String),
    #[error("`{0}` is not an IANA time zone name such as Europe/London or America/New_York")]
    TimeZone(String),
}

/// Days of the week as a set, Monday first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DaySet([bool; 7]);

impl DaySet {
    fn contains(self, day: Weekday) -> bool {
        self.0[day.num_days_from_monday() as usize]
    }

    fn parse(text: &str) -> Result<Self, ScheduleError> {
        let err = || ScheduleError::Days(text.to_owned());
        if text.eq_ignore_ascii_case("daily") {
            return Ok(Self([true; 7]));
        }
        let day = |name: &str| {
            DAY_NAMES
                .iter()
                .position(|d| d.eq_ignore_ascii_case(name))
                .ok_or_else(err)
        };
        let mut days = [false; 7];
        match text.split_once('-') {
            None => days[day(text)?] = true,
            Some((first, last)) => {
                let (first, last) = (day(first)?, day(last)?);
                // A range may wrap past Sunday: Fri-Mon is Fri, Sat, Sun, Mon.
                let mut d = first;
                loop {
                    days[d] = true;
                    if d == last {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
        }
        Ok(Self(days))
    }
}

impl fmt::Display for DaySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.iter().filter(|d| **d).count();
        if count == 7 {
            return f.write_str("daily");
        }
        // Print the set as the one contiguous (possibly wrapping) range it was parsed from.
        let first = (0..7)
            .find(|&d| self.0[d] && !self.0[(d + 6) % 7])
            .unwrap_or(0);
        let last = (first + count - 1) % 7;
        if count == 1 {
            f.write_str(DAY_NAMES[first])
        } else {
            write!(f, "{}-{}", DAY_NAMES[first], DAY_NAMES[last])
        }
    }
}

/// One window: on these days, from `start` to `end` minutes after midnight. An end at or
/// before the start runs past midnight into the next day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    days: DaySet,
    start: u16,
    end: u16,
}

impl Window {
    fn overnight(&self) -> bool {
        self.end <= self.start
    }

    fn parse(text: &str) -> Result<Self, ScheduleError> {
        let mut parts = text.split_whitespace();
        let (Some(days), Some(times), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ScheduleError::Window(text.to_owned()));
        };
        let days = DaySet::parse(days)?;
        let (start, end) = times
            .split_once('-')
            .ok_or_else(|| ScheduleError::Window(text.to_owned()))?;
        let start = parse_time(start, false)?;
        let end = parse_time(end, true)?;
        if start == end {
            return Err(ScheduleError::EmptyWindow(text.to_owned()));
        }
        Ok(Self { days, start, end })
    }

    /// Whether this window holds local time `minute` of `date`, given which days are off.
    fn holds(&self, date: NaiveDate, minute: u16, day_off: impl Fn(NaiveDate) -> bool) -> bool {
        if !self.overnight() {
            return self.days.contains(date.weekday()) && self.start <= minute && minute < self.end;
        }
        let today = self.days.contains(date.weekday()) && minute >= self.start;
        // The part after midnight belongs to the window that began the day before, which
        // does not run if that day was off.
        let from_yesterday = date.pred_opt().is_some_and(|yesterday| {
            self.days.contains(yesterday.weekday()) && !day_off(yesterday) && minute < self.end
        });
        today || from_yesterday
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{} {}-{}", self.days, hm(self.start), hm(self.end))
    }
}

/// `HH:MM` (or `H:MM`) as minutes after midnight; `24:00` only where an end is allowed.
fn parse_time(text: &str, is_end: bool) -> Result<u16, ScheduleError> {
    let err = || ScheduleError::Time(text.to_owned());
    let (h, m) = text.split_once(':').ok_or_else(err)?;
    let digits = |s: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, 1..=2) || !digits(m, 2..=2) {
        return Err(err());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
    match (h, m) {
        (24, 0) if is_end => Ok(MINUTES_PER_DAY),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(err()),
    }
}

/// The `deckhand:awake` value: windows joined by ` + `.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwakeWindows(Vec<Window>);

impl AwakeWindows {
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        if text.trim().is_empty() {
            return Err(ScheduleError::Empty);
        }
        text.split('+')
            .map(|w| Window::parse(w.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    fn holds(&self, date: NaiveDate, minute: u16, day_off: impl Fn(NaiveDate) -> bool) -> bool {
        !day_off(date) && self.0.iter().any(|w| w.holds(date, minute, &day_off))
    }
}

impl fmt::Display for AwakeWindows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, w) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" + ")?;
            }
            write!(f, "{w}")?;
        }
        Ok(())
    }
}

/// `deckhand:asleep-on`: whole days off, as dates of the service's time zone.
pub fn parse_days_off(text: &str) -> Result<BTreeSet<NaiveDate>, ScheduleError> {
    text.split_whitespace()
        .map(|d| {
            let ok = d.len() == 10 && d.as_bytes().get(4) == Some(&b'-');
            NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .ok()
                .filter(|_| ok)
                .ok_or_else(|| ScheduleError::Date(d.to_owned()))
        })
        .collect()
}

pub fn parse_timezone(text: &str) -> Result<Tz, ScheduleError> {
    text.trim()
        .parse::<Tz>()
        .map_err(|_| ScheduleError::TimeZone(text.to_owned()))
}

/// A service's whole schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub awake: AwakeWindows,
    pub timezone: Tz,
    pub days_off: BTreeSet<NaiveDate>,
}

impl Schedule {
    pub fn is_awake(&self, at: DateTime<Utc>) -> bool {
        let wall = self.effective_wall_time(at);
        self.awake_on_wall_clock(wall)
    }

    fn awake_on_wall_clock(&self, wall: NaiveDateTime) -> bool {
        let minute = (wall.hour() * 60 + wall.minute()) as u16;
        self.awake
            .holds(wall.date(), minute, |d| self.days_off.contains(&d))
    }

    /// The wall time that decides the state at `at`. In the second pass of an hour repeated
    /// when clocks go back, that is the last wall time of the first pass.
    fn effective_wall_time(&self, at: DateTime<Utc>) -> NaiveDateTime {
        let wall = at.with_timezone(&self.timezone).naive_local();
        let LocalResult::Ambiguous(first, _) = self.timezone.from_local_datetime(&wall) else {
            return wall;
        };
        let first = first.with_timezone(&Utc);
        if first == at {
            return wall;
        }
        // `at` is in the second pass: find when it began (the offset changed) by bisection.
        let offset_at = at.with_timezone(&self.timezone).offset().fix();
        let second_pass = first_second_where(first, at, |t| {
            t.with_timezone(&self.timezone).offset().fix() == offset_at
        });
        (second_pass - TimeDelta::seconds(1))
            .with_timezone(&self.timezone)
            .naive_local()
    }

    /// The first instant at which the wall clock shows `wall` or later: `wall` itself, the
    /// first of two when it repeats, the moment the clock jumps over it when it is skipped.
    fn first_instant_at_or_after(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.timezone.from_local_datetime(&wall) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
            LocalResult::None => {
                // Skipped: the wall clock passes `wall` between these two instants.
                let before = self
                    .timezone
                    .from_local_datetime(&(wall - TimeDelta::hours(3)))
                    .earliest()?
                    .offset()
                    .fix();
                let hi = wall.and_utc() - TimeDelta::seconds(i64::from(before.local_minus_utc()));
                let lo = hi - TimeDelta::hours(3);
                Some(first_second_where(lo, hi, |t| {
                    t.with_timezone(&self.timezone).naive_local() >= wall
                }))
            }
        }
    }

    /// The next instant after `after` at which the service should change state, within
    /// about a year.
    pub fn next_change(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let now_awake = self.is_awake(after);
        let start = after
            .with_timezone(&self.timezone)
            .date_naive()
            .pred_opt()?;
        let mut boundaries: BTreeSet<u16> = BTreeSet::from([0]);
        for w in &self.awake.0 {
            boundaries.insert(w.start);
            boundaries.insert(w.end % MINUTES_PER_DAY);
        }
        for offset in 0..HORIZON_DAYS {
            let date = start.checked_add_days(Days::new(offset))?;
            let mut candidates: Vec<DateTime<Utc>> = boundaries
                .iter()
                .filter_map(|m| {
                    let time = NaiveTime::from_hms_opt(u32::from(m / 60), u32::from(m % 60), 0)?;
                    self.first_instant_at_or_after(date.and_time(time))
                })
                .filter(|t| *t > after)
                .collect();
            candidates.sort();
            if let Some(change) = candidates
                .into_iter()
                .find(|t| self.is_awake(*t) != now_awake)
            {
                return Some(change);
            }
        }
        None
    }

    /// The next instant after `after` at which the service goes from asleep to awake.
    pub fn next_wake(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let change = self.next_change(after)?;
        if self.is_awake(change) {
            Some(change)
        } else {
            self.next_change(change)
        }
    }

    /// Why the service should be awake or asleep at `at`, in words.
    pub fn explain(&self, at: DateTime<Utc>) -> String {
        let wall = self.effective_wall_time(at);
        if self.days_off.contains(&wall.date()) {
            return format!(
                "{} is a day off in {} (deckhand:asleep-on)",
                wall.date(),
                self.timezone
            );
        }
        let inside = if self.awake_on_wall_clock(wall) {
            "inside"
        } else {
            "outside"
        };
        format!(
            "{} {} {} ({} {})",
            wall.format("%a %H:%M"),
            inside,
            self.awake,
            self.timezone,
            at.with_timezone(&self.timezone).format("%Z")
        )
    }
}

/// The first whole second in `(lo, hi]` where `holds` is true, given that it is false at `lo`,
/// true at `hi`, and changes once in between.
fn first_second_where(
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
    holds: impl Fn(DateTime<Utc>) -> bool,
) -> DateTime<Utc> {
    let (mut lo, mut hi) = (lo.timestamp(), hi.timestamp());
    let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap_or_default();
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if holds(at(mid)) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    at(hi)
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
