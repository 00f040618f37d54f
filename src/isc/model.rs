//! The personal access token as the list endpoint returns it.
//!
//! Only `id`, `name`, `owner` and `created` are required by the API description. `scope`,
//! `lastUsed` and `expirationDate` may be null or absent in every API version, because the
//! service behind all versions is one and never-expiring tokens predate some schema texts.
//! Timestamps accept any number of fraction digits and any UTC offset, and are kept in UTC.
//! Unknown fields are ignored so that additions within a version do not break parsing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Lifetime of access tokens minted from a PAT when the API does not state it (12 hours).
pub const DEFAULT_ACCESS_TOKEN_VALIDITY_SECONDS: u32 = 43_200;

/// One personal access token, as listed by `GET /v3/personal-access-tokens` and its
/// equivalents in the other API versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub id: String,
    pub name: String,
    #[serde(default, deserialize_with = "exact_list")]
    pub scope: Option<Vec<String>>,
    pub owner: Owner,
    #[serde(deserialize_with = "instant")]
    pub created: DateTime<Utc>,
    #[serde(default, deserialize_with = "optional_instant")]
    pub last_used: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "null_as_false")]
    pub managed: bool,
    #[serde(default)]
    pub access_token_validity_seconds: Option<u32>,
    #[serde(default, deserialize_with = "optional_instant")]
    pub expiration_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub user_aware_token_never_expires: Option<bool>,
}

/// The identity that owns a token. The API marks none of its fields as required. Its
/// `type` is always `IDENTITY` and is not kept: a large tenant would hold a copy per token.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Owner {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// The id and last use of a listed token: what a filtered listing contributes once the full
/// listing has the tokens themselves.
///
/// Deserializing one reads the whole object and requires the fields the API requires of a
/// token (`id`, `name`, `owner`, `created`, with valid timestamps), but skips the other
/// fields without building them, which makes a filtered listing several times cheaper.
/// NOTE: a wrong type in such a skipped field goes unnoticed here. The full listing, which
/// parses every token in full, catches it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "SummaryFields")]
pub struct TokenSummary {
    pub id: String,
    pub last_used: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SummaryFields {
    id: String,
    #[serde(rename = "name")]
    _name: serde::de::IgnoredAny,
    #[serde(rename = "owner")]
    _owner: serde::de::IgnoredAny,
    #[serde(rename = "created", deserialize_with = "instant")]
    _created: DateTime<Utc>,
    #[serde(default, deserialize_with = "optional_instant")]
    last_used: Option<DateTime<Utc>>,
    #[serde(
        default,
        rename = "expirationDate",
        deserialize_with = "optional_instant"
    )]
    _expiration_date: Option<DateTime<Utc>>,
}

impl From<SummaryFields> for TokenSummary {
    fn from(fields: SummaryFields) -> Self {
        TokenSummary {
            id: fields.id,
            last_used: fields.last_used,
        }
    }
}

impl From<Token> for TokenSummary {
    fn from(token: Token) -> Self {
        TokenSummary {
            id: token.id,
            last_used: token.last_used,
        }
    }
}

impl Token {
    /// Seconds an access token minted from this PAT stays valid, with the API's default
    /// when the field is absent.
    pub fn access_token_validity_seconds(&self) -> u32 {
        self.access_token_validity_seconds
            .unwrap_or(DEFAULT_ACCESS_TOKEN_VALIDITY_SECONDS)
    }

    /// Whether the token expires at all: a null or absent `expirationDate` means never.
    pub fn never_expires(&self) -> bool {
        self.expiration_date.is_none()
    }
}

/// An instant that deserializes as chrono's `DateTime<Utc>` does, through [`instant`]'s
/// fast path. It serves files with many instants besides the listings, such as the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadInstant(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for ReadInstant {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        instant(deserializer).map(ReadInstant)
    }
}

/// Reads a timestamp the way chrono's `Deserialize` does (`DateTime<FixedOffset>`'s
/// `FromStr`), with a fast path for the form the API sends, `YYYY-MM-DDTHH:MM:SS.sssZ`.
/// A large listing has three of them per token, and chrono's general parser was a tenth of
/// the time spent reading one.
fn instant<'de, D>(deserializer: D) -> Result<DateTime<Utc>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    deserializer.deserialize_str(InstantVisitor)
}

fn optional_instant<'de, D>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    deserializer.deserialize_option(OptionalInstantVisitor)
}

struct InstantVisitor;

impl serde::de::Visitor<'_> for InstantVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an RFC 3339 timestamp")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        if let Some(instant) = parse_utc_fast(text) {
            return Ok(instant);
        }
        text.parse::<DateTime<chrono::FixedOffset>>()
            .map(|instant| instant.with_timezone(&Utc))
            .map_err(E::custom)
    }
}

struct OptionalInstantVisitor;

impl<'de> serde::de::Visitor<'de> for OptionalInstantVisitor {
    type Value = Option<DateTime<Utc>>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an RFC 3339 timestamp or null")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        instant(deserializer).map(Some)
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` exactly; returns `None` for any other text,
/// which then goes to chrono's parser.
pub(super) fn parse_utc_fast(text: &str) -> Option<DateTime<Utc>> {
    parse_utc_fast_bytes(text.as_bytes())
}

/// Parses like [`parse_utc_fast`], from bytes. Every byte it accepts is an ASCII digit or
/// one of `-T:.Z`.
pub(super) fn parse_utc_fast_bytes(bytes: &[u8]) -> Option<DateTime<Utc>> {
    if bytes.len() < 20 || bytes.len() > 30 || *bytes.last()? != b'Z' {
        return None;
    }

    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, byte)| bytes[at] != byte) {
        return None;
    }
    let digit = |at: usize| {
        let value = bytes[at].wrapping_sub(b'0');
        (value < 10).then_some(u32::from(value))
    };
    let pair = |at: usize| Some(digit(at)? * 10 + digit(at + 1)?);

    let (year, month, day) = (pair(0)? * 100 + pair(2)?, pair(5)?, pair(8)?);
    let (hour, minute, second) = (pair(11)?, pair(14)?, pair(17)?);
    let nanos = match &bytes[19..bytes.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let mut fraction = 0;
            for at in 20..20 + digits.len() {
                fraction = fraction * 10 + digit(at)?;
            }
            fraction * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };

    // Leap seconds and out-of-range fields go to chrono, which implements their rules.
    if second > 59 {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = chrono::NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    Some(date.and_time(time).and_utc())
}

/// Reads a list of strings without spare capacity: a list parsed from JSON grows by
/// doubling from four, and a large tenant keeps one scope list per token.
fn exact_list<'de, D>(deserializer: D) -> Result<Option<Vec<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let mut list = Option::<Vec<String>>::deserialize(deserializer)?;
    if let Some(list) = &mut list {
        list.shrink_to_fit();
    }
    Ok(list)
}

fn null_as_false<'de, D>(deserializer: D) -> Result<bool, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_parses_minimal_fields() {
        let token: Token = serde_json::from_str(
            r#"{"id":"a","name":"n","owner":{"type":"IDENTITY","id":"o","name":"Owner"},
                "created":"2026-01-10T09:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(token.scope, None);
        assert_eq!(token.last_used, None);
        assert_eq!(token.expiration_date, None);
        assert!(!token.managed);
        assert_eq!(token.access_token_validity_seconds(), 43_200);
    }

    #[test]
    fn token_parses_nulls_offsets_and_fractions() {
        let token: Token = serde_json::from_str(
            r#"{"id":"a","name":"n","scope":null,"owner":{"id":"o"},
                "created":"2025-12-01T10:00:00.000+02:00",
                "lastUsed":"2026-05-01T10:00:00.123456789Z",
                "expirationDate":null,"managed":null,"somethingNew":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(token.created.to_rfc3339(), "2025-12-01T08:00:00+00:00");
        assert_eq!(
            token.last_used.unwrap().timestamp_subsec_nanos(),
            123_456_789
        );
        assert!(token.never_expires());
        assert!(!token.managed);
    }

    #[test]
    fn fast_timestamps_match_chrono() {
        let texts = [
            "2026-05-01T10:00:00Z",
            "2026-05-01T10:00:00.1Z",
            "2026-05-01T10:00:00.123Z",
            "2026-05-01T10:00:00.123456Z",
            "2026-05-01T10:00:00.123456789Z",
            "2024-02-29T23:59:59.999Z",
            "0001-01-01T00:00:00Z",
        ];
        for text in texts {
            let chrono: DateTime<Utc> = text
                .parse::<DateTime<chrono::FixedOffset>>()
                .unwrap()
                .with_timezone(&Utc);
            assert_eq!(parse_utc_fast(text), Some(chrono), "{text}");
        }
    }

    #[test]
    fn fast_timestamps_leave_other_forms_to_chrono() {
        let texts = [
            "2026-05-01T10:00:00+02:00",
            "2026-05-01 10:00:00Z",
            "2026-05-01T10:00:00.Z",
            "2026-05-01T10:00:00.1234567891Z",
            "2026-02-30T10:00:00Z",
            "2026-05-01T24:00:00Z",
            "2016-12-31T23:59:60Z",
            "2026-5-01T10:00:00Z",
            "+2026-05-01T10:00:00Z",
        ];
        for text in texts {
            assert_eq!(parse_utc_fast(text), None, "{text}");
        }
    }

    #[test]
    fn token_timestamps_keep_chrono_forms() {
        let token: Token = serde_json::from_str(
            r#"{"id":"a","name":"n","owner":{},
                "created":"2016-12-31T23:59:60Z",
                "lastUsed":"2026-05-01 10:00:00.5+01:00",
                "expirationDate":"2027-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(token.created.to_rfc3339(), "2016-12-31T23:59:60+00:00");
        assert_eq!(
            token.last_used.unwrap().to_rfc3339(),
            "2026-05-01T09:00:00.500+00:00"
        );
        let invalid: Result<Token, _> = serde_json::from_str(
            r#"{"id":"a","name":"n","owner":{},"created":"2026-02-30T10:00:00Z"}"#,
        );
        assert!(invalid.is_err());
    }

    #[test]
    fn summary_reads_id_and_last_use() {
        let summary: TokenSummary = serde_json::from_str(
            r#"{"id":"a","name":"n","scope":["x"],"owner":{"id":"o"},"managed":false,
                "created":"2025-12-01T10:00:00Z","lastUsed":"2026-05-01T10:00:00.5Z",
                "expirationDate":null}"#,
        )
        .unwrap();
        assert_eq!(summary.id, "a");
        assert_eq!(
            summary.last_used.unwrap().to_rfc3339(),
            "2026-05-01T10:00:00.500+00:00"
        );
    }

    #[test]
    fn summary_requires_token_fields() {
        let invalid = [
            r#"{"name":"n","owner":{},"created":"2025-12-01T10:00:00Z"}"#,
            r#"{"id":"a","owner":{},"created":"2025-12-01T10:00:00Z"}"#,
            r#"{"id":"a","name":"n","created":"2025-12-01T10:00:00Z"}"#,
            r#"{"id":"a","name":"n","owner":{}}"#,
            r#"{"id":"a","name":"n","owner":{},"created":"yesterday"}"#,
            r#"{"id":"a","name":"n","owner":{},"created":"2025-12-01T10:00:00Z","lastUsed":"soon"}"#,
        ];
        for text in invalid {
            assert!(
                serde_json::from_str::<TokenSummary>(text).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn token_without_created_is_rejected() {
        let parsed: Result<Token, _> = serde_json::from_str(r#"{"id":"a","name":"n","owner":{}}"#);
        assert!(parsed.is_err());
    }
}
