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
    #[serde(default)]
    pub scope: Option<Vec<String>>,
    pub owner: Owner,
    pub created: DateTime<Utc>,
    #[serde(default)]
    pub last_used: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "null_as_false")]
    pub managed: bool,
    #[serde(default)]
    pub access_token_validity_seconds: Option<u32>,
    #[serde(default)]
    pub expiration_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub user_aware_token_never_expires: Option<bool>,
}

/// The identity that owns a token. The API marks none of its fields as required.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Owner {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
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
    fn token_without_created_is_rejected() {
        let parsed: Result<Token, _> = serde_json::from_str(r#"{"id":"a","name":"n","owner":{}}"#);
        assert!(parsed.is_err());
    }
}
