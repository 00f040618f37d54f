//! The JSON report of `patrol audit --format json`.
//!
//! One object per tenant run: tenant, as-of instant, dry-run flag, the effective cutoffs,
//! a summary of counts, and `tokens` with one entry per listed token. Field names are a
//! contract that other tools rely on; add fields, never rename them.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;
use serde_json::{Value, json};

use crate::audit::{Decision, Run, TokenResult};
use crate::isc::Token;
use crate::policy::Action;
use crate::safety::{Breaker, Outcome, Protection};

use super::json_token::push_token;
use super::line_format::LineFormatter;
use super::reason::Reason;
use super::{Instant, instant};

fn serialize_display<S: serde::Serializer>(
    value: &impl std::fmt::Display,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

// The report is serialized straight from these borrowed views instead of through a
// `serde_json::Value` tree, which for a tenant of 100,000 tokens cost several hundred MiB
// and most of the run's CPU time. Fields are declared in alphabetical order, the order a
// `Value` object (a `BTreeMap`) writes them in, so the output stays the same byte for byte.

#[derive(Serialize)]
struct Report<'a> {
    as_of: String,
    breaker: Option<Value>,
    cutoffs: Vec<CutoffView<'a>>,
    dry_run: bool,
    duration_seconds: f64,
    forecast: bool,
    listing: ListingView<'a>,
    max_deletions_per_run: usize,
    recovered: Vec<Value>,
    requests: RequestsView,
    run_id: &'a str,
    started_at: String,
    summary: Summary,
    tenant: &'a str,
    /// Left out by [`render_json`], which writes the entries itself after the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens: Option<Tokens<'a>>,
}

#[derive(Serialize)]
struct CutoffView<'a> {
    cutoff: String,
    last_used_before_default_validity: String,
    last_used_older_than: &'a str,
    rule: &'a str,
}

#[derive(Serialize)]
struct ListingView<'a> {
    clock_skew_seconds: Option<i64>,
    duplicates: usize,
    filter_disagreements: usize,
    judged: usize,
    last_used_le: Option<String>,
    last_used_le_count: Option<usize>,
    listed: usize,
    never_used_count: Option<usize>,
    problem: Option<&'a str>,
}

#[derive(Serialize)]
struct RequestsView {
    rate_limit_wait_seconds: f64,
    rate_limited: u64,
    retries: u64,
}

#[derive(Serialize)]
struct Summary {
    by_outcome: BTreeMap<&'static str, usize>,
    by_verdict: BTreeMap<&'static str, usize>,
    listed: usize,
}

/// The token entries, serialized one at a time as the array is written.
struct Tokens<'a>(&'a Run);

impl Serialize for Tokens<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.0
                .tokens
                .iter()
                .map(|result| TokenView::new(self.0, result)),
        )
    }
}

#[derive(Serialize)]
struct TokenView<'a> {
    access_token_validity_seconds: u32,
    created: Instant,
    error: Option<&'a str>,
    exemption: Option<ExemptionView<'a>>,
    expiration_date: Option<Instant>,
    first_flagged: Option<Instant>,
    grace_until: Option<Instant>,
    id: &'a str,
    last_used: Option<Instant>,
    managed: bool,
    name: &'a str,
    outcome: Outcome,
    owner: OwnerView<'a>,
    protections: &'a [Protection],
    #[serde(serialize_with = "serialize_display")]
    reason: Reason<'a>,
    rules: &'a [String],
    scope: Option<&'a [String]>,
    verdict: Action,
}

#[derive(Serialize)]
struct ExemptionView<'a> {
    expired: bool,
    reason: &'a str,
    selector: &'a str,
    until: Option<Instant>,
}

#[derive(Serialize)]
struct OwnerView<'a> {
    id: Option<&'a str>,
    name: Option<&'a str>,
}

impl<'a> TokenView<'a> {
    fn new(run: &'a Run, result: TokenResult<'a>) -> Self {
        let token: &'a Token = result.token;
        let decision: &'a Decision = result.decision;
        TokenView {
            access_token_validity_seconds: token.access_token_validity_seconds(),
            created: Instant(token.created),
            error: decision.error.as_deref(),
            exemption: decision.exemption.as_ref().map(|exemption| ExemptionView {
                expired: exemption.expired,
                reason: &exemption.reason,
                selector: &exemption.selector,
                until: exemption.until.map(Instant),
            }),
            expiration_date: token.expiration_date.map(Instant),
            first_flagged: decision.first_flagged.map(Instant),
            grace_until: decision.grace_until.map(Instant),
            id: &token.id,
            last_used: token.last_used.map(Instant),
            managed: token.managed,
            name: &token.name,
            outcome: decision.outcome,
            owner: OwnerView {
                id: token.owner.id.as_deref(),
                name: token.owner.name.as_deref(),
            },
            protections: &decision.protections,
            reason: Reason { run, result },
            rules: &decision.rules,
            scope: token.scope.as_deref(),
            verdict: decision.verdict,
        }
    }
}

fn report(run: &Run, with_tokens: bool) -> Report<'_> {
    let tally = run.tally();
    let by_verdict: BTreeMap<&str, usize> = [Action::Keep, Action::Report, Action::Delete]
        .into_iter()
        .map(|verdict| (verdict.as_str(), tally.verdict(verdict)))
        .collect();
    // `due` is listed only when some token is still due.
    let by_outcome: BTreeMap<&str, usize> = Outcome::ALL
        .into_iter()
        .filter(|outcome| *outcome != Outcome::Due || tally.outcome(*outcome) > 0)
        .map(|outcome| (outcome.as_str(), tally.outcome(outcome)))
        .collect();

    Report {
        as_of: instant(run.as_of),
        breaker: run.breaker.as_ref().map(breaker_json),
        cutoffs: run
            .cutoffs
            .iter()
            .map(|cutoff| CutoffView {
                cutoff: instant(cutoff.cutoff),
                last_used_before_default_validity: instant(
                    cutoff.last_used_before_default_validity,
                ),
                last_used_older_than: &cutoff.last_used_older_than,
                rule: &cutoff.rule,
            })
            .collect(),
        dry_run: run.dry_run,
        duration_seconds: run.duration.as_secs_f64(),
        forecast: run.forecast,
        listing: ListingView {
            clock_skew_seconds: run.listing.clock_skew_seconds,
            duplicates: run.listing.duplicates,
            filter_disagreements: run.listing.filter_disagreements,
            judged: run.listing.judged,
            last_used_le: run.listing.last_used_le.map(instant),
            last_used_le_count: run.listing.last_used_le_count,
            listed: run.listing.listed,
            never_used_count: run.listing.never_used_count,
            problem: run.listing.problem.as_deref(),
        },
        max_deletions_per_run: run.max_deletions_per_run,
        recovered: run
            .recovered
            .iter()
            .map(|entry| {
                json!({
                    "id": entry.token.id,
                    "name": entry.token.name,
                    "owner": { "id": entry.token.owner.id, "name": entry.token.owner.name },
                    "scope": entry.token.scope,
                    "created": instant(entry.token.created),
                    "last_used": entry.token.last_used.map(instant),
                    "expiration_date": entry.token.expiration_date.map(instant),
                    "access_token_validity_seconds": entry.token.access_token_validity_seconds,
                    "managed": entry.token.managed,
                    "intent_run_id": entry.intent_run_id,
                    "intent_at": instant(entry.intent_at),
                    "rules": entry.rules,
                    "result": entry.status.as_str(),
                })
            })
            .collect(),
        requests: RequestsView {
            rate_limit_wait_seconds: run.requests.rate_limit_wait.as_secs_f64(),
            rate_limited: run.requests.rate_limited,
            retries: run.requests.retries,
        },
        run_id: &run.run_id,
        started_at: instant(run.started_at),
        summary: Summary {
            by_outcome,
            by_verdict,
            listed: run.listing.listed,
        },
        tenant: &run.tenant,
        tokens: with_tokens.then_some(Tokens(run)),
    }
}

/// Describes a breaker by kind and message, plus the values it compared, so that a stored
/// report can be read back into the same breaker.
fn breaker_json(breaker: &Breaker) -> Value {
    let mut value = json!({
        "kind": breaker.kind(),
        "message": breaker.to_string(),
    });
    let details = match breaker {
        Breaker::DeletionPercent {
            due,
            listed,
            max_percent,
        } => json!({ "due": due, "listed": listed, "max_percent": max_percent }),
        Breaker::ClockSkew { skew, max } => json!({
            "skew_seconds": skew.num_seconds(),
            "max_skew_seconds": max.num_seconds(),
        }),
        Breaker::IncompleteListing { reason } | Breaker::StateReset { reason } => {
            json!({ "reason": reason })
        }
    };
    if let (Some(object), Value::Object(details)) = (value.as_object_mut(), details) {
        object.extend(details);
    }
    value
}

/// Builds the JSON report of a run as a value.
pub fn to_json(run: &Run) -> Value {
    serde_json::to_value(report(run, true)).expect("the report serializes to JSON")
}

/// Bytes of token entries gathered before they are written out.
const PAGE_BYTES: usize = 64 * 1024;

/// Writes the JSON report of a run followed by a newline: the outer levels indented, each
/// token and each deeper value on one line (see [`LineFormatter`]). The members before
/// `tokens` go through serde, and the token entries are written by hand (see
/// [`json_token`](super::json_token)) in pages of about 64 KiB.
pub fn render_json(run: &Run, out: &mut dyn Write) -> io::Result<()> {
    let mut head = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut head, LineFormatter::new());
    report(run, false).serialize(&mut serializer)?;
    // `tokens` sorts last, so its member goes where the object closes.
    let open = head
        .strip_suffix(b"\n}")
        .expect("the report object has members and ends with a closing brace");
    out.write_all(open)?;
    out.write_all(b",\n  \"tokens\": [")?;

    let mut page = String::with_capacity(PAGE_BYTES + 4096);
    for (index, result) in run.tokens.iter().enumerate() {
        page.push_str(if index == 0 { "\n    " } else { ",\n    " });
        push_token(run, result, &mut page);
        if page.len() >= PAGE_BYTES {
            out.write_all(page.as_bytes())?;
            page.clear();
        }
    }
    page.push_str(if run.tokens.is_empty() {
        "]\n}\n"
    } else {
        "\n  ]\n}\n"
    });
    out.write_all(page.as_bytes())
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    use super::*;
    use crate::audit::ExemptionNote;
    use crate::isc::Owner;

    /// Renders the report as serde_json writes the whole value with the report's layout.
    fn through_serde(run: &Run) -> Vec<u8> {
        let mut expected = Vec::new();
        let mut serializer =
            serde_json::Serializer::with_formatter(&mut expected, LineFormatter::new());
        to_json(run).serialize(&mut serializer).unwrap();
        expected.push(b'\n');
        expected
    }

    fn rendered(run: &Run) -> Vec<u8> {
        let mut out = Vec::new();
        render_json(run, &mut out).unwrap();
        out
    }

    /// Returns a run whose members before `tokens` need escaping and a fraction.
    fn run(tokens: Vec<(Token, Decision)>) -> Run {
        let example = Run::example(tokens);
        Run {
            tenant: "acme \"prod\"".to_owned(),
            dry_run: true,
            started_at: example.started_at + chrono::TimeDelta::microseconds(5),
            ..example
        }
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9-]{0,12}",
            "[a-z\"\\\\\n\t\u{0}\u{1f}é😀 ]{0,12}",
            any::<String>(),
        ]
    }

    fn when() -> impl Strategy<Value = DateTime<Utc>> {
        let nanos = prop_oneof![
            Just(0u32),
            Just(531_000_000),
            Just(123_456_000),
            0..1_000_000_000u32
        ];
        (-100_000_000_000i64..300_000_000_000, nanos)
            .prop_map(|(seconds, nanos)| DateTime::from_timestamp(seconds, nanos).unwrap())
    }

    prop_compose! {
        fn token_result()(
            id in text(),
            name in text(),
            owner_id in proptest::option::of(text()),
            owner_name in proptest::option::of(text()),
            scope in proptest::option::of(proptest::collection::vec(text(), 0..3)),
            created in when(),
            last_used in proptest::option::of(when()),
            expiration_date in proptest::option::of(when()),
            validity in proptest::option::of(any::<u32>()),
            managed in any::<bool>(),
            verdict in prop_oneof![Just(Action::Keep), Just(Action::Report), Just(Action::Delete)],
            outcome in proptest::sample::select(Outcome::ALL.to_vec()),
            rules in proptest::collection::vec(text(), 0..3),
            protections in proptest::sample::subsequence(
                vec![Protection::SelfToken, Protection::Managed, Protection::Young], 0..=3),
            exemption in proptest::option::of(
                (text(), text(), proptest::option::of(when()), any::<bool>())),
            first_flagged in proptest::option::of(when()),
            grace_until in proptest::option::of(when()),
            error in proptest::option::of(text()),
        ) -> (Token, Decision) {
            (
                Token {
                    id,
                    name,
                    scope,
                    owner: Owner { id: owner_id, name: owner_name },
                    created,
                    last_used,
                    managed,
                    access_token_validity_seconds: validity,
                    expiration_date,
                    user_aware_token_never_expires: None,
                },
                Decision {
                    verdict,
                    outcome,
                    rules: rules.into(),
                    protections: protections.into(),
                    exemption: exemption.map(|(selector, reason, until, expired)| {
                        Box::new(ExemptionNote { selector, reason, until, expired })
                    }),
                    first_flagged,
                    grace_until,
                    error: error.map(String::into_boxed_str),
                },
            )
        }
    }

    #[test]
    fn empty_report_matches_serde() {
        let run = run(Vec::new());
        assert_eq!(
            String::from_utf8(rendered(&run)).unwrap(),
            String::from_utf8(through_serde(&run)).unwrap()
        );
    }

    proptest! {
        #[test]
        fn token_lines_match_serde(tokens in proptest::collection::vec(token_result(), 1..4)) {
            let run = run(tokens);
            prop_assert_eq!(
                String::from_utf8(rendered(&run)).unwrap(),
                String::from_utf8(through_serde(&run)).unwrap()
            );
        }
    }
}
