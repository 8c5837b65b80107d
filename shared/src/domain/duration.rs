//! Durations as tags and variables write them: `90s`, `30m`, `2h`, `1d`.

use chrono::TimeDelta;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a duration: write a whole number and one unit of s, m, h or d (90s, 30m, 2h, 1d)"
)]
pub struct DurationError(pub String);

pub fn parse_duration(text: &str) -> Result<TimeDelta, DurationError> {
    let err = || DurationError(text.to_owned());
    // The unit is the last character, which need not be one byte.
    let (unit_at, _) = text.char_indices().next_back().ok_or_else(err)?;
    let (number, unit) = text.split_at(unit_at);
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let n: i64 = number.parse().map_err(|_| err())?;
    let seconds = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3_600),
        "d" => n.checked_mul(86_400),
        _ => None,
    };
    // Ten years is far beyond any sensible guard or wake; larger numbers are typos.
    seconds
        .filter(|s| *s <= 10 * 366 * 86_400)
        .and_then(TimeDelta::try_seconds)
        .ok_or_else(err)
}

/// Prints a duration in the largest unit that divides it exactly, the inverse of
/// [`parse_duration`].
pub fn format_duration(d: TimeDelta) -> String {
    let s = d.num_seconds();
    match s {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("90s"), Ok(TimeDelta::seconds(90)));
        assert_eq!(parse_duration("30m"), Ok(TimeDelta::minutes(30)));
        assert_eq!(parse_duration("2h"), Ok(TimeDelta::hours(2)));
        assert_eq!(parse_duration("1d"), Ok(TimeDelta::days(1)));
        assert_eq!(parse_duration("0m"), Ok(TimeDelta::zero()));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "m",
            "30",
            "-5m",
            "1.5h",
            "30 m",
            "30min",
            "2H",
            "1w",
            "+3m",
            "99999999999999999999d",
            "4000d",
            "؆",
            "3ص",
            "30 分",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_back() {
        for text in ["90s", "30m", "2h", "1d", "0s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
