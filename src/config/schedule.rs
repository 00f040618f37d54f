//! The `[schedule]` section: when the daemon starts a run, and in which time zone.
//!
//! A cron pattern is a standard crontab line with 5 fields (minute, hour, day of month,
//! month, day of week), which gives minute granularity, or 6 fields with a leading seconds
//! field. croner 4 parses it with seconds optional and the year field disallowed, so a
//! 5-field pattern runs at second 0. croner's extensions (`L`, `W`, `#`, `+`, `@daily` and
//! the other nicknames) are accepted. The time zone is an IANA name known to `chrono-tz`.
//! Every occurrence is computed in that zone, so a daily run stays at the same wall-clock
//! time across daylight saving changes. Waiting for the next occurrence is left to the
//! daemon.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// The `[schedule]` of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The cron pattern as written in the file, trimmed.
    pub cron: String,
    /// The parsed pattern; see [`parse_cron`] for the accepted syntax.
    pub pattern: Cron,
    pub timezone: Tz,
    pub run_on_start: bool,
}

impl Schedule {
    /// Builds a schedule from text that is known to be valid, such as the defaults.
    ///
    /// # Panics
    ///
    /// Panics when `cron` or `timezone` is invalid.
    pub fn from_valid(cron: &str, timezone: &str, run_on_start: bool) -> Schedule {
        Schedule {
            cron: cron.trim().to_owned(),
            pattern: parse_cron(cron).expect("a valid cron pattern"),
            timezone: parse_timezone(timezone).expect("a valid time zone"),
            run_on_start,
        }
    }

    /// Returns the occurrences strictly after `instant`, in the schedule's time zone.
    ///
    /// A wall-clock time that a daylight saving change skips runs at the first instant
    /// after the gap, and one that the change repeats runs once. croner 4 decides both.
    pub fn runs_after(&self, instant: DateTime<Utc>) -> impl Iterator<Item = DateTime<Tz>> {
        self.pattern
            .iter_after(instant.with_timezone(&self.timezone))
    }
}

/// Returns the field names of a pattern with `count` fields, in order.
fn field_names(count: usize) -> &'static [&'static str] {
    const FIVE: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];
    const SIX: [&str; 6] = [
        "second",
        "minute",
        "hour",
        "day of month",
        "month",
        "day of week",
    ];
    match count {
        5 => &FIVE,
        6 => &SIX,
        _ => &[],
    }
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// Parses a cron pattern. The error names the invalid field when it can be found, and
/// always states what is expected.
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    let expected = "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with a \
                    leading seconds field, such as \"15 3 * * *\" for 03:15 every day";
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("empty cron pattern, {expected}"));
    }

    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    if !trimmed.starts_with('@') && !(5..=6).contains(&fields.len()) {
        return Err(format!(
            "invalid cron pattern \"{trimmed}\": it has {} field{}, {expected}",
            fields.len(),
            if fields.len() == 1 { "" } else { "s" }
        ));
    }

    let pattern = parser().parse(trimmed).map_err(|error| {
        let reason = match invalid_field(&fields) {
            Some((name, value)) => format!("the {name} field \"{value}\" is invalid ({error})"),
            None => error.to_string(),
        };
        format!("invalid cron pattern \"{trimmed}\": {reason}; {expected}")
    })?;

    // A pattern that no date satisfies (day 31 in February, say) parses, but croner then
    // searches for an occurrence until its search limit. Catching it here keeps the daemon
    // from starting with a schedule that never runs. The start instant is fixed so that
    // validation does not depend on the clock. Between 1901 and 2099 the calendar repeats
    // every 28 years, so a pattern without a year field that matches at all matches before
    // 2028.
    let start = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
    if let Some(start) = start
        && pattern.find_next_occurrence(&start, false).is_err()
    {
        return Err(format!(
            "cron pattern \"{trimmed}\" never matches: no date satisfies all of its fields \
             (such as day 31 in February)"
        ));
    }
    Ok(pattern)
}

/// Finds the first field that fails to parse on its own, with every other field set to
/// `*`, so the message can name it.
fn invalid_field<'a>(fields: &[&'a str]) -> Option<(&'static str, &'a str)> {
    let names = field_names(fields.len());
    (0..names.len()).find_map(|index| {
        let alone: Vec<&str> = (0..fields.len())
            .map(|other| if other == index { fields[index] } else { "*" })
            .collect();
        parser()
            .parse(&alone.join(" "))
            .is_err()
            .then(|| (names[index], fields[index]))
    })
}

/// Parses an IANA time zone name such as `Europe/Berlin`. The error suggests the right
/// spelling for a name that differs only in case or lacks its region.
pub fn parse_timezone(text: &str) -> Result<Tz, String> {
    let trimmed = text.trim();
    if let Ok(zone) = trimmed.parse::<Tz>() {
        return Ok(zone);
    }

    let lowercase = trimmed.to_ascii_lowercase();
    let suffix = format!("/{}", lowercase.replace(' ', "_"));
    let city = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|zone| zone.name().to_ascii_lowercase().ends_with(&suffix));
    // A typo of up to two letters, or any difference in case.
    let closest = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|zone| {
            (
                edit_distance(&zone.name().to_ascii_lowercase(), &lowercase),
                zone,
            )
        })
        .min_by_key(|(distance, _)| *distance)
        .filter(|(distance, _)| *distance <= 2)
        .map(|(_, zone)| zone);
    match closest.or(city) {
        Some(zone) if !trimmed.is_empty() => Err(format!(
            "unknown time zone \"{trimmed}\"; did you mean \"{}\"?",
            zone.name()
        )),
        _ => Err(format!(
            "unknown time zone \"{trimmed}\", expected an IANA time zone name such as \
             \"Europe/Berlin\" or \"UTC\""
        )),
    }
}

/// Computes the Levenshtein distance between two strings, counted in characters.
fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (row, left_char) in left.chars().enumerate() {
        let mut current = vec![row + 1];
        for (column, right_char) in right.iter().enumerate() {
            let substitution = previous[column] + usize::from(left_char != *right_char);
            let deletion = previous[column + 1] + 1;
            let insertion = current[column] + 1;
            current.push(substitution.min(deletion).min(insertion));
        }
        previous = current;
    }
    previous[right.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instant(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn runs(cron: &str, zone: &str, after: &str, count: usize) -> Vec<String> {
        Schedule::from_valid(cron, zone, false)
            .runs_after(instant(after))
            .take(count)
            .map(|run| run.to_rfc3339())
            .collect()
    }

    #[test]
    fn five_fields_mean_minute_granularity() {
        assert_eq!(
            runs("15 3 * * *", "UTC", "2026-12-01T00:00:00Z", 2),
            ["2026-12-01T03:15:00+00:00", "2026-12-02T03:15:00+00:00"]
        );
    }

    #[test]
    fn six_fields_start_with_seconds() {
        assert_eq!(
            runs("30 15 3 * * *", "UTC", "2026-12-01T00:00:00Z", 1),
            ["2026-12-01T03:15:30+00:00"]
        );
    }

    #[test]
    fn runs_follow_daylight_saving_time() {
        // Berlin moves from UTC+1 to UTC+2 on 2026-03-29.
        assert_eq!(
            runs("15 3 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z", 2),
            ["2026-03-28T03:15:00+01:00", "2026-03-29T03:15:00+02:00"]
        );
    }

    #[test]
    fn skipped_time_runs_after_the_gap() {
        // 02:30 does not exist in Berlin on 2026-03-29: clocks jump from 02:00 to 03:00.
        assert_eq!(
            runs("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]
        );
    }

    #[test]
    fn repeated_time_runs_once() {
        // 02:30 happens twice in Berlin on 2026-10-25: clocks go back from 03:00 to 02:00.
        assert_eq!(
            runs("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
        );
    }

    #[test]
    fn seven_fields_are_rejected() {
        let error = parse_cron("0 15 3 * * * 2027").unwrap_err();
        assert!(error.contains("7 fields"), "{error}");
    }

    #[test]
    fn wrong_field_count_is_rejected() {
        let error = parse_cron("15 3 * *").unwrap_err();
        assert!(error.contains("4 fields"), "{error}");
    }

    #[test]
    fn invalid_field_is_named() {
        let error = parse_cron("15 25 * * *").unwrap_err();
        assert!(error.contains("hour field \"25\""), "{error}");
        let error = parse_cron("0 15 3 * * FUNDAY").unwrap_err();
        assert!(error.contains("day of week field"), "{error}");
    }

    #[test]
    fn impossible_date_is_rejected() {
        let error = parse_cron("0 0 31 2 *").unwrap_err();
        assert!(error.contains("never matches"), "{error}");
        assert!(parse_cron("0 0 29 2 *").is_ok());
        // 29 February on a Monday: only in 2016 between 2000 and 2027.
        assert!(parse_cron("0 0 29 2 +MON").is_ok());
    }

    #[test]
    fn nicknames_and_extensions_are_accepted() {
        for pattern in [
            "@daily",
            "@weekly",
            "0 3 L * *",
            "0 3 * * 5#L",
            "*/30 * * * *",
        ] {
            assert!(parse_cron(pattern).is_ok(), "{pattern} was rejected");
        }
    }

    #[test]
    fn timezone_accepts_iana_names() {
        assert_eq!(parse_timezone("Europe/Berlin").unwrap(), Tz::Europe__Berlin);
        assert_eq!(parse_timezone("UTC").unwrap(), Tz::UTC);
    }

    #[test]
    fn timezone_suggests_the_right_spelling() {
        let error = parse_timezone("europe/berlin").unwrap_err();
        assert!(error.contains("did you mean \"Europe/Berlin\""), "{error}");
        let error = parse_timezone("Berlin").unwrap_err();
        assert!(error.contains("did you mean \"Europe/Berlin\""), "{error}");
        let error = parse_timezone("Europe/Berln").unwrap_err();
        assert!(error.contains("did you mean \"Europe/Berlin\""), "{error}");
        let error = parse_timezone("Mars/Olympus").unwrap_err();
        assert!(error.contains("\"Europe/Berlin\" or \"UTC\""), "{error}");
        let error = parse_timezone("").unwrap_err();
        assert!(error.contains("\"Europe/Berlin\" or \"UTC\""), "{error}");
    }
}
