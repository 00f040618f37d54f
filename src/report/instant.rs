//! Instants as reports write them: RFC 3339 in UTC with `Z`, and 3, 6 or 9 fraction digits
//! when there is a fraction, as few as hold it (chrono's `SecondsFormat::AutoSi`).
//!
//! Reports write several instants per token, so this formats into a buffer on the stack
//! instead of through chrono's general formatter, which took a tenth of the time spent
//! writing a large report. Years outside 0 to 9999 and leap seconds go to chrono.

use std::fmt;

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::{Serialize, Serializer};

/// Formats an instant as RFC 3339 in UTC with `Z`, keeping fraction digits only when set.
pub fn instant(value: DateTime<Utc>) -> String {
    Instant(value).to_string()
}

/// An instant that displays and serializes as [`instant`] formats it, without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Instant(pub DateTime<Utc>);

impl Instant {
    /// Appends the instant to `text`.
    pub fn push_onto(self, text: &mut String) {
        self.with_text(|instant| text.push_str(instant));
    }

    fn with_text<R>(self, use_text: impl FnOnce(&str) -> R) -> R {
        let mut buffer = [0u8; 30];
        match write_fast(self.0, &mut buffer) {
            Some(length) => {
                use_text(std::str::from_utf8(&buffer[..length]).expect("digits are ASCII"))
            }
            None => use_text(&self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_text(|text| formatter.write_str(text))
    }
}

impl Serialize for Instant {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_text(|text| serializer.serialize_str(text))
    }
}

/// Serializes an instant as chrono's `Serialize` does (RFC 3339, `Z`, `AutoSi` fraction),
/// but through [`Instant`]. It serves `#[serde(serialize_with = ...)]` on the instants of
/// large files.
pub fn serialize_instant<S: Serializer>(
    value: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    Instant(*value).serialize(serializer)
}

/// Serializes an optional instant as [`serialize_instant`] does, or `null` when absent.
pub fn serialize_optional_instant<S: Serializer>(
    value: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serializer.serialize_some(&Instant(*value)),
        None => serializer.serialize_none(),
    }
}

/// Writes `value` into `buffer` and returns its length, or `None` for a year outside 0 to
/// 9999 or a leap second.
fn write_fast(value: DateTime<Utc>, buffer: &mut [u8; 30]) -> Option<usize> {
    let (year, nanos) = (value.year(), value.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    let mut length = 0;
    let mut push = |value: u32, width: usize, after: Option<u8>| {
        let mut rest = value;
        for index in (0..width).rev() {
            buffer[length + index] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        length += width;
        if let Some(separator) = after {
            buffer[length] = separator;
            length += 1;
        }
    };
    push(year as u32, 4, Some(b'-'));
    push(value.month(), 2, Some(b'-'));
    push(value.day(), 2, Some(b'T'));
    push(value.hour(), 2, Some(b':'));
    push(value.minute(), 2, Some(b':'));
    if nanos == 0 {
        push(value.second(), 2, Some(b'Z'));
    } else {
        push(value.second(), 2, Some(b'.'));
        if nanos % 1_000_000 == 0 {
            push(nanos / 1_000_000, 3, Some(b'Z'));
        } else if nanos % 1_000 == 0 {
            push(nanos / 1_000, 6, Some(b'Z'));
        } else {
            push(nanos, 9, Some(b'Z'));
        }
    }
    Some(length)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn chrono_text(value: DateTime<Utc>) -> String {
        value.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    #[test]
    fn matches_chrono_at_the_edges() {
        let base = Utc.with_ymd_and_hms(2026, 3, 9, 7, 5, 4).unwrap();
        for nano in [
            0,
            1,
            999,
            1_000,
            120_000,
            5_000_000,
            500_000_000,
            999_999_999,
        ] {
            let value = base + chrono::TimeDelta::nanoseconds(nano);
            assert_eq!(instant(value), chrono_text(value), "{nano} ns");
        }
        for value in [
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
        ] {
            assert_eq!(instant(value), chrono_text(value), "{value:?}");
        }
    }

    #[test]
    fn serializes_as_a_json_string() {
        let value = Utc.with_ymd_and_hms(2026, 12, 1, 3, 15, 0).unwrap();
        let json = serde_json::to_string(&Instant(value)).unwrap();
        assert_eq!(json, "\"2026-12-01T03:15:00Z\"");
    }

    proptest! {
        #[test]
        fn matches_chrono(seconds in -70_000_000_000i64..300_000_000_000, nanos in 0u32..1_000_000_000) {
            let value = DateTime::from_timestamp(seconds, nanos).unwrap();
            prop_assert_eq!(instant(value), chrono_text(value));
        }

        #[test]
        fn serializes_as_chrono_does(seconds in -70_000_000_000i64..300_000_000_000, nanos in 0u32..1_000_000_000) {
            #[derive(Serialize)]
            struct Fast {
                #[serde(serialize_with = "serialize_instant")]
                at: DateTime<Utc>,
                #[serde(serialize_with = "serialize_optional_instant")]
                maybe: Option<DateTime<Utc>>,
                #[serde(serialize_with = "serialize_optional_instant")]
                never: Option<DateTime<Utc>>,
            }
            #[derive(Serialize)]
            struct Chrono {
                at: DateTime<Utc>,
                maybe: Option<DateTime<Utc>>,
                never: Option<DateTime<Utc>>,
            }
            let value = DateTime::from_timestamp(seconds, nanos).unwrap();
            let fast = serde_json::to_string(&Fast { at: value, maybe: Some(value), never: None }).unwrap();
            let chrono = serde_json::to_string(&Chrono { at: value, maybe: Some(value), never: None }).unwrap();
            prop_assert_eq!(fast, chrono);
        }
    }
}
