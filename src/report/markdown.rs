//! The Markdown review pack of a run: every flagged token grouped by owner, why it was
//! flagged, what the run did, when it will be deleted, and an `[[exemption]]` block that
//! keeps it when pasted into the policy file.
//!
//! The pack is meant to be pasted into a ticket or a chat, so every value that comes from
//! the tenant (token and owner names) is escaped or put in a code span, and cannot add
//! headings, links or HTML. Exemption blocks are valid TOML that passes validation as they
//! stand: the reason is a placeholder to replace, and `until` is [`EXEMPTION_DAYS`] days
//! after the run's as-of instant. Kept tokens only appear in the counts.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use chrono::{DateTime, TimeDelta, Utc};

use crate::audit::{Run, TokenResult};
use crate::config::Schedule;
use crate::policy::Action;
use crate::safety::Outcome;
use crate::state::DeleteStatus;

use super::{Instant, days_between, instant};

/// How long a suggested exemption lasts, from the run's as-of instant.
pub const EXEMPTION_DAYS: i64 = 90;

/// The reason written into suggested exemptions. It passes validation, so the block works
/// as pasted, and it names what the reviewer should write there.
pub const REASON_PLACEHOLDER: &str = "REPLACE: why this token is still needed, and who agreed";

/// Bytes of token sections gathered before they are written out.
const PAGE_BYTES: usize = 64 * 1024;

/// Writes the review pack of `run`. With `schedule`, a token in its grace period also gets
/// the first scheduled run from the end of its grace period.
pub fn render_markdown(
    run: &Run,
    schedule: Option<&Schedule>,
    out: &mut dyn Write,
) -> io::Result<()> {
    header(run, out)?;

    let flagged: Vec<TokenResult<'_>> = run
        .tokens
        .iter()
        .filter(|result| result.verdict != Action::Keep)
        .collect();
    if flagged.is_empty() {
        writeln!(out, "{}", super::no_flagged_tokens(run))?;
    } else {
        writeln!(
            out,
            "To keep a token, paste its `[[exemption]]` block into the policy file, replace \
             the reason with why the token is still needed and who agreed, and adjust \
             `until`."
        )?;
        // Sections are built in one reused buffer and written in large pieces: a pack of
        // 100,000 tokens is tens of megabytes.
        let mut page = String::with_capacity(PAGE_BYTES + 4096);
        for (owner, tokens) in by_owner(flagged) {
            page.push_str("\n## ");
            page.push_str(&owner);
            page.push('\n');
            for result in tokens {
                page.push('\n');
                token_section(run, result, schedule, &mut page);
                if page.len() >= PAGE_BYTES {
                    out.write_all(page.as_bytes())?;
                    page.clear();
                }
            }
        }
        out.write_all(page.as_bytes())?;
    }

    if !run.recovered.is_empty() {
        writeln!(out)?;
        writeln!(out, "## Deletes of an interrupted run")?;
        writeln!(out)?;
        writeln!(
            out,
            "An earlier run stopped after announcing these deletes and before recording their \
             result. This run reconciled them from the listing."
        )?;
        writeln!(out)?;
        for entry in &run.recovered {
            let result = match entry.status {
                DeleteStatus::Deleted => "no longer listed, recorded as deleted",
                _ => "still listed, not deleted; it stays a candidate",
            };
            writeln!(
                out,
                "- {} ({}) of {}, run {}: {result}",
                code(&entry.token.name),
                code(&entry.token.id),
                owner_label(
                    entry.token.owner.id.as_deref(),
                    entry.token.owner.name.as_deref()
                ),
                code(&entry.intent_run_id),
            )?;
        }
    }
    Ok(())
}

fn header(run: &Run, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "# Token review: tenant {}", escape(&run.tenant))?;
    writeln!(out)?;
    let mode = if run.forecast {
        "forecast, dry run"
    } else if run.dry_run {
        "dry run"
    } else {
        "deletion enabled"
    };
    writeln!(
        out,
        "Run {}, evaluated at {} ({mode}).",
        code(&run.run_id),
        instant(run.as_of)
    )?;
    let tally = run.tally();
    writeln!(out, "{}.", super::verdict_counts(run, &tally))?;
    let outcomes = super::outcome_counts(&tally);
    if !outcomes.is_empty() {
        writeln!(out, "Outcomes: {}.", outcomes.join(", "))?;
    }
    if let Some(breaker) = &run.breaker {
        writeln!(out)?;
        writeln!(
            out,
            "**Breaker tripped ({}):** {}. Nothing was deleted.",
            breaker.kind(),
            escape(&breaker.to_string())
        )?;
    }
    if run.dry_run {
        writeln!(out)?;
        writeln!(
            out,
            "**Dry run:** nothing is deleted until deletion is enabled (`--apply`, or \
             `dry_run = false` under `[safety]`)."
        )?;
    }
    writeln!(out)
}

/// Groups tokens by owner (by id, then name), owners sorted by name, and sorts each group
/// by urgency.
fn by_owner(flagged: Vec<TokenResult<'_>>) -> Vec<(String, Vec<TokenResult<'_>>)> {
    type Key<'a> = (Cow<'a, str>, &'a str, &'a str);
    let mut groups: BTreeMap<Key<'_>, Vec<TokenResult<'_>>> = BTreeMap::new();
    for result in flagged {
        let owner = &result.token.owner;
        let name = owner.name.as_deref().unwrap_or_default();
        let folded = if name
            .bytes()
            .any(|byte| !byte.is_ascii() || byte.is_ascii_uppercase())
        {
            Cow::Owned(name.to_lowercase())
        } else {
            Cow::Borrowed(name)
        };
        let key = (folded, name, owner.id.as_deref().unwrap_or_default());
        groups.entry(key).or_default().push(result);
    }
    groups
        .into_iter()
        .map(|((_, name, id), mut tokens)| {
            tokens.sort_by(|a, b| {
                urgency(a.outcome)
                    .cmp(&urgency(b.outcome))
                    .then(a.grace_until.cmp(&b.grace_until))
                    .then(a.token.name.cmp(&b.token.name))
                    .then(a.token.id.cmp(&b.token.id))
            });
            let label = owner_label(
                (!id.is_empty()).then_some(id),
                (!name.is_empty()).then_some(name),
            );
            (format!("Owner {label}"), tokens)
        })
        .collect()
}

/// Orders outcomes from what needs attention first to what needs none.
fn urgency(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Failed => 0,
        Outcome::Deleted | Outcome::Gone => 1,
        Outcome::Due | Outcome::DryRun => 2,
        Outcome::Held | Outcome::Deferred => 3,
        Outcome::Grace => 4,
        Outcome::Reported => 5,
        Outcome::Exempt => 6,
        Outcome::Protected => 7,
        Outcome::None => 8,
    }
}

fn token_section(
    run: &Run,
    result: TokenResult<'_>,
    schedule: Option<&Schedule>,
    out: &mut String,
) {
    let token = &result.token;
    out.push_str("### ");
    push_code(out, &token.name);
    out.push_str(" (");
    push_code(out, &token.id);
    out.push_str(")\n\n- Why: ");
    out.push_str(result.verdict.as_str());
    out.push_str(" by ");
    push_list(out, &result.rules);
    match token.last_used {
        Some(last_used) => {
            out.push_str("; last used ");
            push_days(out, days_between(last_used, run.as_of));
            out.push_str(" before this run (");
            Instant(last_used).push_onto(out);
        }
        None => {
            out.push_str("; never used, created ");
            push_days(out, days_between(token.created, run.as_of));
            out.push_str(" before this run (");
            Instant(token.created).push_onto(out);
        }
    }
    out.push_str(")\n- Outcome: ");
    out.push_str(&outcome_text(run, result));
    out.push_str("\n- Deletion: ");
    out.push_str(&deletion_text(run, result, schedule));
    out.push_str("\n- Token: scope ");
    match &token.scope {
        Some(scopes) if !scopes.is_empty() => push_list(out, scopes),
        _ => out.push_str("none listed"),
    }
    out.push_str("; created ");
    Instant(token.created).push_onto(out);
    out.push_str("; expires ");
    match token.expiration_date {
        Some(expires) => Instant(expires).push_onto(out),
        None => out.push_str("never"),
    }
    out.push_str("; access tokens valid ");
    push_number(out, i64::from(token.access_token_validity_seconds()));
    out.push_str(" s; managed ");
    out.push_str(if token.managed { "yes\n" } else { "no\n" });

    if suggests_exemption(result) {
        out.push('\n');
        exemption_block(run, result, out);
    }
}

/// Describes the outcome of a token, starting with the outcome's name.
fn outcome_text(run: &Run, result: TokenResult<'_>) -> Cow<'static, str> {
    let mut text: Cow<'static, str> = match result.outcome {
        Outcome::None => "none: kept".into(),
        Outcome::Reported => "reported for review".into(),
        Outcome::Exempt => match &result.exemption {
            Some(exemption) => format!(
                "exempt by {}{}: {}",
                escape(&exemption.selector),
                exemption
                    .until
                    .map_or(String::new(), |until| format!(", until {}", Instant(until))),
                escape(&exemption.reason)
            )
            .into(),
            None => "exempt".into(),
        },
        Outcome::Protected => {
            let protections: Vec<&str> = result.protections.iter().map(|p| p.as_str()).collect();
            format!("protected ({})", protections.join(", ")).into()
        }
        Outcome::Grace => match result.grace_until {
            Some(until) => format!("grace period until {}", Instant(until)).into(),
            None => "grace period".into(),
        },
        Outcome::Deferred => "deferred: over the per-run budget".into(),
        Outcome::Held => match &run.breaker {
            Some(breaker) => format!("held by the {} breaker", breaker.kind()).into(),
            None => "held by a breaker".into(),
        },
        Outcome::DryRun => "dry run: would have been deleted".into(),
        Outcome::Due => "due for deletion".into(),
        Outcome::Deleted => "deleted by this run".into(),
        Outcome::Gone => "gone: already deleted (the API answered 404)".into(),
        Outcome::Failed => format!(
            "failed: {}",
            escape(result.error.as_deref().unwrap_or("unknown cause"))
        )
        .into(),
    };
    if let Some(exemption) = &result.exemption
        && exemption.expired
    {
        text.to_mut().push_str(&format!(
            "; an exemption expired {}: {}",
            exemption.until.map(instant).unwrap_or_default(),
            escape(&exemption.reason)
        ));
    }
    text
}

fn deletion_text(
    run: &Run,
    result: TokenResult<'_>,
    schedule: Option<&Schedule>,
) -> Cow<'static, str> {
    let enabled = if run.dry_run {
        " once deletion is enabled"
    } else {
        ""
    };
    match result.outcome {
        Outcome::Grace => {
            let Some(until) = result.grace_until else {
                return format!("after the grace period{enabled}").into();
            };
            let mut text = format!("by the first run from {}{enabled}", Instant(until));
            if let Some(next) = schedule.and_then(|schedule| first_run_from(schedule, until)) {
                text.push_str(&format!(
                    "; the first scheduled run then is {next} ({})",
                    schedule.map_or("", |schedule| schedule.timezone.name())
                ));
            }
            text.into()
        }
        Outcome::DryRun | Outcome::Due if run.dry_run => {
            "due now; by the next run once deletion is enabled".into()
        }
        Outcome::DryRun | Outcome::Due => "due now; by the next run".into(),
        Outcome::Deferred => format!(
            "due now; over the budget of {} deletions per run, it goes first in the next run",
            run.max_deletions_per_run
        )
        .into(),
        Outcome::Held => "due now; by the next run whose breakers do not trip".into(),
        Outcome::Failed => "the next run tries again".into(),
        Outcome::Deleted | Outcome::Gone => "done".into(),
        Outcome::Reported => "none: the matching rules only report it".into(),
        Outcome::Exempt => "none while the exemption applies".into(),
        Outcome::Protected => "none: patrol never deletes a protected token".into(),
        Outcome::None => "none".into(),
    }
}

/// Returns the first scheduled run at or after `instant`, as RFC 3339 in the schedule's zone.
fn first_run_from(schedule: &Schedule, instant: DateTime<Utc>) -> Option<String> {
    schedule
        .runs_after(instant - TimeDelta::seconds(1))
        .next()
        .map(|run| run.to_rfc3339())
}

/// Returns whether a token gets an exemption block: it is flagged, not deleted, and not
/// already kept by an active exemption or a protection.
fn suggests_exemption(result: TokenResult<'_>) -> bool {
    !matches!(
        result.outcome,
        Outcome::None | Outcome::Exempt | Outcome::Protected | Outcome::Deleted | Outcome::Gone
    )
}

fn exemption_block(run: &Run, result: TokenResult<'_>, out: &mut String) {
    let token = &result.token;
    let until = (run.as_of + TimeDelta::days(EXEMPTION_DAYS)).date_naive();
    let owner = token
        .owner
        .name
        .as_deref()
        .or(token.owner.id.as_deref())
        .unwrap_or("no owner");
    out.push_str("```toml\n[[exemption]]\n# ");
    out.push_str(&comment_text(&token.name));
    out.push_str(", owned by ");
    out.push_str(&comment_text(owner));
    out.push_str("\ntoken_id = ");
    push_toml_string(out, &token.id);
    out.push_str("\nreason = ");
    push_toml_string(out, REASON_PLACEHOLDER);
    // A date's `Display` is `%Y-%m-%d`, without the cost of parsing a format string.
    write!(out, "\nuntil = \"{until}\"\n```\n").expect("writing to a String cannot fail");
}

/// Appends `count` days, as `1 day` or `N days`.
fn push_days(out: &mut String, count: i64) {
    push_number(out, count);
    out.push_str(if count == 1 { " day" } else { " days" });
}

fn push_number(out: &mut String, number: i64) {
    write!(out, "{number}").expect("writing to a String cannot fail");
}

/// Appends `items` as code spans separated by commas.
fn push_list(out: &mut String, items: &[String]) {
    for (position, item) in items.iter().enumerate() {
        if position > 0 {
            out.push_str(", ");
        }
        push_code(out, item);
    }
}

fn owner_label(id: Option<&str>, name: Option<&str>) -> String {
    match (name, id) {
        (Some(name), Some(id)) => format!("{} ({})", escape(name), code(id)),
        (Some(name), None) => format!("{} (no id)", escape(name)),
        (None, Some(id)) => code(id),
        (None, None) => "unknown".to_owned(),
    }
}

/// Returns whether `text` is ASCII without control characters or any of `special`, so it
/// can be written as it is. Most names and ids are, and skip the slower paths.
fn plain(text: &str, special: &[u8]) -> bool {
    text.bytes()
        .all(|byte| (b' '..0x7f).contains(&byte) && !special.contains(&byte))
}

/// Puts `text` in a code span, with a fence longer than any backtick run in it. Control
/// characters become spaces, so the span stays on one line.
fn code(text: &str) -> String {
    let mut span = String::with_capacity(text.len() + 2);
    push_code(&mut span, text);
    span
}

/// Appends [`code`] of `text`.
fn push_code(out: &mut String, text: &str) {
    if plain(text, b"`") && !text.starts_with(' ') && !text.ends_with(' ') {
        out.push('`');
        out.push_str(text);
        out.push('`');
        return;
    }
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if longest > 0 || text.starts_with(' ') || text.ends_with(' ') {
        " "
    } else {
        ""
    };
    for piece in [fence.as_str(), pad, text.as_str(), pad, fence.as_str()] {
        out.push_str(piece);
    }
}

/// The characters that [`escape`] puts a backslash before.
const MARKUP: &[u8] = b"\\`*_[]<>#|~!&{}";

/// Escapes Markdown and HTML syntax in running text, and turns control characters into
/// spaces.
fn escape(text: &str) -> Cow<'_, str> {
    if plain(text, MARKUP) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            c if c.is_ascii() && MARKUP.contains(&(c as u8)) => {
                escaped.push('\\');
                escaped.push(c);
            }
            c if c.is_control() => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

/// Text safe on a TOML comment line: control characters become spaces.
fn comment_text(text: &str) -> Cow<'_, str> {
    if plain(text, b"") {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
    )
}

/// Quotes `text` as a TOML basic string.
#[cfg(test)]
fn toml_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    push_toml_string(&mut quoted, text);
    quoted
}

/// Appends `text` quoted as a TOML basic string.
fn push_toml_string(out: &mut String, text: &str) {
    out.push('"');
    if plain(text, b"\"\\") {
        out.push_str(text);
    } else {
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    write!(out, "\\u{:04X}", c as u32).expect("writing to a String cannot fail");
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_span_survives_backticks_and_newlines() {
        assert_eq!(code("plain"), "`plain`");
        assert_eq!(code("a`b"), "`` a`b ``");
        assert_eq!(code("two\nlines"), "`two lines`");
    }

    #[test]
    fn placeholder_reason_is_recognized() {
        assert!(REASON_PLACEHOLDER.starts_with(crate::safety::PLACEHOLDER_PREFIX));
    }

    #[test]
    fn escape_neutralizes_markup() {
        assert_eq!(
            escape("<img src=x> [link](u) *bold* # h"),
            "\\<img src=x\\> \\[link\\](u) \\*bold\\* \\# h"
        );
        assert_eq!(escape("line\nbreak"), "line break");
    }

    #[test]
    fn toml_string_round_trips_through_toml() {
        for text in [
            "plain",
            "quote \" and \\ backslash",
            "tab\tand\nnewline",
            "ünïcode",
        ] {
            let document = format!("value = {}", toml_string(text));
            let parsed: toml::Table = toml::from_str(&document).unwrap();
            assert_eq!(parsed["value"].as_str(), Some(text), "{document}");
        }
    }
}
