//! Renderings of a run: a readable table, the JSON report, CSV and the Markdown review pack.
//!
//! Renderers are pure functions of a [`Run`](crate::audit::Run) that write to a writer, so
//! they can be snapshot-tested and never touch the network or the state. [`run_from_json`]
//! reads a stored JSON report back into a run, so a past run renders in every format.

mod csv;
mod explain;
mod instant;
mod json;
mod json_token;
mod line_format;
mod load;
mod markdown;
pub mod policy_text;
mod reason;
mod table;

pub use csv::render_csv;
pub use explain::render_explanation;
pub use instant::{Instant, instant, serialize_instant, serialize_optional_instant};
pub use json::{render_json, to_json};
pub(crate) use json_token::{
    push_instant, push_number, push_optional_string, push_string, push_strings,
};
pub use load::{LoadError, run_from_json};
pub use markdown::{EXEMPTION_DAYS, REASON_PLACEHOLDER, render_markdown};
pub use reason::reason;
pub use table::render_table;

use std::borrow::Cow;

use chrono::{DateTime, Utc};

/// Whole days between two instants, rounded down.
pub fn days_between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> i64 {
    (later - earlier).num_days()
}

/// Returns the line printed in place of the list of flagged tokens when there are none. A run
/// whose listing failed judged no token, which is not the same as flagging none.
/// Returns `text` with each control character written as its escape (`\n`, `\u{1b}`), for
/// text output to a terminal. Token names and owners come from the token's owner, and a raw
/// control character would break a table or send an escape sequence to the terminal.
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        if character.is_control() {
            escaped.extend(character.escape_default());
        } else {
            escaped.push(character);
        }
    }
    Cow::Owned(escaped)
}

pub(crate) fn no_flagged_tokens(run: &crate::audit::Run) -> &'static str {
    if run.tokens.is_empty() && run.listing.problem.is_some() {
        "No token was judged, because the listing failed."
    } else {
        "No token is flagged."
    }
}

/// Formats the listed and verdict counts of a run, such as `25 tokens listed: 15 keep, 5
/// report, 5 delete`.
pub(crate) fn verdict_counts(run: &crate::audit::Run, tally: &crate::audit::Tally) -> String {
    let noun = if run.listing.listed == 1 {
        "token"
    } else {
        "tokens"
    };
    format!(
        "{} {noun} listed: {} keep, {} report, {} delete",
        run.listing.listed,
        tally.verdict(crate::policy::Action::Keep),
        tally.verdict(crate::policy::Action::Report),
        tally.verdict(crate::policy::Action::Delete)
    )
}

/// Lists the non-zero outcome counts of a run, such as `8 grace`, in the order of
/// [`Outcome::ALL`], leaving out kept tokens.
pub(crate) fn outcome_counts(tally: &crate::audit::Tally) -> Vec<String> {
    crate::safety::Outcome::ALL
        .iter()
        .filter(|outcome| **outcome != crate::safety::Outcome::None)
        .filter_map(|outcome| {
            let count = tally.outcome(*outcome);
            (count > 0).then(|| format!("{count} {outcome}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Run;
    use crate::policy::Action;

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(printable("ci-export é 😀"), "ci-export é 😀");
        assert_eq!(printable("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(printable("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(printable("del\u{7f} c1\u{9b}"), "del\\u{7f} c1\\u{9b}");
    }

    #[test]
    fn table_shows_control_characters_escaped() {
        let token: crate::isc::Token = serde_json::from_value(serde_json::json!({
            "id": "a1", "name": "evil\u{1b}]0;title\u{7}\nname",
            "owner": {"id": "o1", "name": "own\rer"},
            "created": "2026-01-01T00:00:00Z",
        }))
        .unwrap();
        let decision = crate::audit::Decision {
            verdict: Action::Report,
            outcome: crate::safety::Outcome::Reported,
            rules: vec!["unused-90d".to_owned()].into(),
            protections: Box::default(),
            exemption: None,
            first_flagged: None,
            grace_until: None,
            error: None,
        };
        let run = Run::example(vec![(token, decision)]);
        let mut table = Vec::new();
        render_table(&run, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(!table.contains('\u{1b}'), "{table}");
        assert!(!table.contains('\r'), "{table}");
        assert!(
            table.contains("evil\\u{1b}]0;title\\u{7}\\nname"),
            "{table}"
        );
        assert!(table.contains("own\\rer"), "{table}");
        assert!(table.contains("\n1 token listed: "), "{table}");
    }

    #[test]
    fn failed_listing_is_not_called_clean() {
        let mut run = Run::example(Vec::new());
        assert_eq!(no_flagged_tokens(&run), "No token is flagged.");

        run.listing.problem = Some("the full listing failed: connection reset".to_owned());
        let mut table = Vec::new();
        render_table(&run, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(
            table.contains("No token was judged, because the listing failed."),
            "{table}"
        );
        assert!(!table.contains("No token is flagged."), "{table}");
    }
}
