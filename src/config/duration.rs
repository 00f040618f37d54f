//! Durations and instants as the policy file writes them.
//!
//! A duration is one or more `<integer><unit>` groups with units `s`, `m`, `h`, `d` and
//! `w`, largest unit first (`90d`, `12h`, `1d12h`, `30s`). Months and years are rejected
//! because their length varies. An instant is RFC 3339 or a bare `YYYY-MM-DD`, which means
//! midnight UTC.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

const UNITS: [(char, i64); 5] = [
    ('w', 7 * 86_400),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

/// Parses a policy duration such as `90d` or `1d12h`.
///
/// The error is a sentence that says what is expected, to be shown after the key.
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let expected = "expected a duration such as \"90d\", \"12h\" or \"1d12h\" \
                    (units: s, m, h, d, w)";
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("empty duration, {expected}"));
    }

    let mut seconds: i64 = 0;
    let mut digits = String::new();
    let mut last_unit_rank = None;
    for character in trimmed.chars() {
        if character.is_ascii_digit() {
            digits.push(character);
            continue;
        }
        let Some(rank) = UNITS.iter().position(|(unit, _)| *unit == character) else {
            return Err(format!("invalid duration \"{text}\", {expected}"));
        };
        if digits.is_empty() || last_unit_rank.is_some_and(|last| rank <= last) {
            return Err(format!("invalid duration \"{text}\", {expected}"));
        }
        let value: i64 = digits
            .parse()
            .map_err(|_| format!("duration \"{text}\" is too large"))?;
        seconds = value
            .checked_mul(UNITS[rank].1)
            .and_then(|part| seconds.checked_add(part))
            .ok_or_else(|| format!("duration \"{text}\" is too large"))?;
        digits.clear();
        last_unit_rank = Some(rank);
    }
    if !digits.is_empty() {
        return Err(format!("duration \"{text}\" has no unit, {expected}"));
    }
    // Cap at 100 years so that instant arithmetic cannot overflow.
    if seconds > 100 * 365 * 86_400 {
        return Err(format!("duration \"{text}\" is too large (over 100 years)"));
    }
    Ok(TimeDelta::seconds(seconds))
}

/// Formats a duration in the largest units that divide it, as the policy file writes it.
pub fn format_duration(duration: TimeDelta) -> String {
    let mut seconds = duration.num_seconds();
    if seconds == 0 {
        return "0s".to_owned();
    }
    let mut text = String::new();
    if seconds < 0 {
        text.push('-');
        seconds = -seconds;
    }
    for (unit, size) in UNITS.iter().skip(1) {
        if seconds >= *size {
            text.push_str(&format!("{}{unit}", seconds / size));
            seconds %= size;
        }
    }
    text
}

/// Parses an instant written as RFC 3339 or as `YYYY-MM-DD` (midnight UTC).
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    let trimmed = text.trim();
    if let Ok(instant) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(instant.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc());
    }
    Err(format!(
        "invalid instant \"{text}\", expected RFC 3339 such as \"2027-03-01T00:00:00Z\" \
         or a date such as \"2027-03-01\" (midnight UTC)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_accepts_each_unit_and_combinations() {
        assert_eq!(parse_duration("90d").unwrap(), TimeDelta::days(90));
        assert_eq!(parse_duration("12h").unwrap(), TimeDelta::hours(12));
        assert_eq!(parse_duration("5m").unwrap(), TimeDelta::minutes(5));
        assert_eq!(parse_duration("30s").unwrap(), TimeDelta::seconds(30));
        assert_eq!(parse_duration("2w").unwrap(), TimeDelta::days(14));
        assert_eq!(parse_duration("1d12h").unwrap(), TimeDelta::hours(36));
        assert_eq!(parse_duration("0s").unwrap(), TimeDelta::zero());
    }

    #[test]
    fn duration_rejects_malformed_text() {
        for text in [
            "", "90", "d", "90 days", "3mo", "1y", "12h1d", "1d1d", "-5d", "1.5d",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn duration_rejects_overflow() {
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(parse_duration("999999w").is_err());
    }

    #[test]
    fn duration_formats_back_to_policy_syntax() {
        assert_eq!(format_duration(TimeDelta::days(90)), "90d");
        assert_eq!(format_duration(TimeDelta::hours(36)), "1d12h");
        assert_eq!(format_duration(TimeDelta::seconds(3_601)), "1h1s");
        assert_eq!(format_duration(TimeDelta::zero()), "0s");
    }

    #[test]
    fn instant_accepts_rfc3339_and_dates() {
        assert_eq!(
            parse_instant("2027-03-01").unwrap().to_rfc3339(),
            "2027-03-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_instant("2027-03-01T02:00:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2027-03-01T00:00:00+00:00"
        );
        assert!(parse_instant("2027-13-01").is_err());
        assert!(parse_instant("next week").is_err());
    }
}
