//! Token events of the audit log, written straight from the listed token.
//!
//! A first run of a large tenant appends one `token_flagged` record per token flagged for
//! deletion: about 35,000 in the benchmark's tenant of 100,000 tokens. Building each as a
//! [`Record`] copied the token's strings and rule names only to serialize them once. [`TokenEvent`] borrows them
//! and serializes to the same bytes as the [`Record`] with the same content, which a test
//! checks, so readers of the log see no difference.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::log::{EventKind, ExemptionRecord};
use crate::isc::Token;
use crate::report::{
    Instant, push_instant, push_number, push_optional_string, push_string, push_strings,
    serialize_instant, serialize_optional_instant,
};

/// A record about one token, borrowing what it records. Its members are those of
/// [`Record`](super::Record) for a token event, in the same order.
#[derive(Debug, Serialize)]
pub struct TokenEvent<'a> {
    pub event: EventKind,
    pub run_id: &'a str,
    pub tenant: &'a str,
    #[serde(serialize_with = "serialize_instant")]
    pub at: DateTime<Utc>,
    pub token: TokenView<'a>,
    pub rules: &'a [String],
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_optional_instant"
    )]
    pub first_flagged: Option<DateTime<Utc>>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_optional_instant"
    )]
    pub grace_until: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemption: Option<ExemptionRecord>,
    /// Hash of the record before this one, set by
    /// [`AuditLog::append_token_event`](super::AuditLog::append_token_event).
    pub(super) prev: &'a str,
}

impl<'a> TokenEvent<'a> {
    /// Creates a record of `event` about `token`, which `rules` match, written now.
    pub fn new(
        event: EventKind,
        run_id: &'a str,
        tenant: &'a str,
        token: &'a Token,
        rules: &'a [String],
    ) -> Self {
        TokenEvent {
            event,
            run_id,
            tenant,
            at: Utc::now(),
            token: TokenView(token),
            rules,
            first_flagged: None,
            grace_until: None,
            outcome: None,
            exemption: None,
            prev: "",
        }
    }
}

impl TokenEvent<'_> {
    /// Appends the record as one line of JSON, with `prev` as its `prev` member. The bytes
    /// are those serde_json writes for the record, which a test checks. A first run over
    /// 100,000 tokens appends about 35,000 records, and serde_json's serializer took about 8%
    /// of its CPU.
    pub(super) fn push_json(&self, prev: &str, out: &mut String) {
        out.push_str("{\"event\":\"");
        out.push_str(self.event.as_str());
        out.push_str("\",\"run_id\":");
        push_string(out, self.run_id);
        out.push_str(",\"tenant\":");
        push_string(out, self.tenant);
        out.push_str(",\"at\":");
        push_instant(out, Some(Instant(self.at)));

        let token = self.token.0;
        out.push_str(",\"token\":{\"id\":");
        push_string(out, &token.id);
        out.push_str(",\"name\":");
        push_string(out, &token.name);
        out.push_str(",\"owner\":{\"id\":");
        push_optional_string(out, token.owner.id.as_deref());
        out.push_str(",\"name\":");
        push_optional_string(out, token.owner.name.as_deref());
        out.push_str("},\"scope\":");
        match &token.scope {
            Some(scopes) => push_strings(out, scopes),
            None => out.push_str("null"),
        }
        out.push_str(",\"created\":");
        push_instant(out, Some(Instant(token.created)));
        out.push_str(",\"lastUsed\":");
        push_instant(out, token.last_used.map(Instant));
        out.push_str(",\"expirationDate\":");
        push_instant(out, token.expiration_date.map(Instant));
        out.push_str(",\"accessTokenValiditySeconds\":");
        match token.access_token_validity_seconds {
            Some(seconds) => push_number(out, seconds),
            None => out.push_str("null"),
        }
        out.push_str(",\"userAwareTokenNeverExpires\":");
        out.push_str(match token.user_aware_token_never_expires {
            Some(true) => "true",
            Some(false) => "false",
            None => "null",
        });
        out.push_str(",\"managed\":");
        out.push_str(if token.managed { "true" } else { "false" });

        out.push_str("},\"rules\":");
        push_strings(out, self.rules);
        if let Some(first_flagged) = self.first_flagged {
            out.push_str(",\"first_flagged\":");
            push_instant(out, Some(Instant(first_flagged)));
        }
        if let Some(grace_until) = self.grace_until {
            out.push_str(",\"grace_until\":");
            push_instant(out, Some(Instant(grace_until)));
        }
        if let Some(outcome) = self.outcome {
            out.push_str(",\"outcome\":");
            push_string(out, outcome);
        }
        if let Some(exemption) = &self.exemption {
            // Few records carry an exemption, so serde_json writes it.
            out.push_str(",\"exemption\":");
            out.push_str(&serde_json::to_string(exemption).expect("an exemption serializes"));
        }
        out.push_str(",\"prev\":");
        push_string(out, prev);
        out.push('}');
    }
}

/// A listed token, serialized with the members of [`TokenRecord`](super::TokenRecord) in
/// their order.
#[derive(Debug, Clone, Copy)]
pub struct TokenView<'a>(pub &'a Token);

impl Serialize for TokenView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;

        /// The owner's id and name, as `OwnerRecord` has them.
        #[derive(Serialize)]
        struct OwnerView<'a> {
            id: Option<&'a str>,
            name: Option<&'a str>,
        }

        struct OptionalInstant(Option<DateTime<Utc>>);

        impl Serialize for OptionalInstant {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serialize_optional_instant(&self.0, serializer)
            }
        }

        struct RequiredInstant(DateTime<Utc>);

        impl Serialize for RequiredInstant {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serialize_instant(&self.0, serializer)
            }
        }

        let token = self.0;
        let owner = OwnerView {
            id: token.owner.id.as_deref(),
            name: token.owner.name.as_deref(),
        };
        let mut record = serializer.serialize_struct("TokenRecord", 10)?;
        record.serialize_field("id", &token.id)?;
        record.serialize_field("name", &token.name)?;
        record.serialize_field("owner", &owner)?;
        record.serialize_field("scope", &token.scope)?;
        record.serialize_field("created", &RequiredInstant(token.created))?;
        record.serialize_field("lastUsed", &OptionalInstant(token.last_used))?;
        record.serialize_field("expirationDate", &OptionalInstant(token.expiration_date))?;
        record.serialize_field(
            "accessTokenValiditySeconds",
            &token.access_token_validity_seconds,
        )?;
        record.serialize_field(
            "userAwareTokenNeverExpires",
            &token.user_aware_token_never_expires,
        )?;
        record.serialize_field("managed", &token.managed)?;
        record.end()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::isc::Owner;
    use crate::state::Record;

    fn token(full: bool) -> Token {
        let instant = |day| Utc.with_ymd_and_hms(2026, 3, day, 8, 30, 0).unwrap();
        Token {
            id: "2c9180835d2e5168015d32f890ca1581".to_owned(),
            name: "ci \"export\" é".to_owned(),
            scope: full.then(|| vec!["sp:scopes:all".to_owned(), "idn:sources:read".to_owned()]),
            owner: Owner {
                id: full.then(|| "2c918084".to_owned()),
                name: full.then(|| "svc-ci".to_owned()),
            },
            created: instant(1),
            last_used: full.then(|| instant(2)),
            managed: full,
            access_token_validity_seconds: full.then_some(600),
            expiration_date: full.then(|| instant(3)),
            user_aware_token_never_expires: full.then_some(false),
        }
    }

    /// Serializes `event` and the `Record` with the same content, both with `prev` set.
    fn both(event: &TokenEvent) -> (String, String) {
        let record = Record {
            at: event.at,
            first_flagged: event.first_flagged,
            grace_until: event.grace_until,
            outcome: event.outcome.map(str::to_owned),
            exemption: event.exemption.clone(),
            prev: event.prev.to_owned(),
            ..Record::for_token(
                event.event,
                event.run_id,
                event.tenant,
                event.token.0,
                event.rules.to_vec(),
            )
        };
        (
            serde_json::to_string(event).unwrap(),
            serde_json::to_string(&record).unwrap(),
        )
    }

    #[test]
    fn token_event_serializes_like_record() {
        let rules = vec!["unused-90d".to_owned(), "expired".to_owned()];
        for full in [true, false] {
            let token = token(full);
            let flagged = TokenEvent {
                first_flagged: Some(token.created),
                grace_until: token.last_used,
                prev: "00ff",
                ..TokenEvent::new(EventKind::TokenFlagged, "run-1", "acme", &token, &rules)
            };
            let cleared = TokenEvent {
                outcome: Some("grace"),
                ..TokenEvent::new(EventKind::FlagCleared, "run-1", "acme", &token, &[])
            };
            let exempted = TokenEvent {
                exemption: Some(ExemptionRecord {
                    selector: "token_id = \"x\"".to_owned(),
                    reason: "kept by the security team".to_owned(),
                    until: token.expiration_date,
                }),
                ..TokenEvent::new(EventKind::ExemptionApplied, "run-2", "acme", &token, &rules)
            };
            for event in [flagged, cleared, exempted] {
                let (view, record) = both(&event);
                assert_eq!(view, record, "full token: {full}");

                let mut by_hand = String::new();
                event.push_json(event.prev, &mut by_hand);
                assert_eq!(by_hand, view, "full token: {full}");
            }
        }
    }
}
