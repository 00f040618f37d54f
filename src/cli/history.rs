//! `patrol history`: what happened to a token, or in a tenant, over time, read from the
//! audit log (rotated files included) without calling the API.
//!
//! With `--token`, the output starts with the token's last recorded metadata and ends, for
//! a deleted token, with the create request its owner can send to make a token with the
//! same name, scopes and lifetime. `--format json` writes the matching records as JSON Lines
//! instead.
//! Records that cannot be read are listed as such, and `patrol verify-log` reports why.
//!
//! Exit codes: 0, 66 (`EX_NOINPUT`) when `--token` names a token that no record mentions,
//! 74 (`EX_IOERR`) when the log cannot be read, and 64 and 78 as elsewhere.

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use clap::ValueEnum;

use super::exit;
use super::report::select_tenants;
use crate::config::DEFAULT_CONFIG_PATH;
use crate::config::duration::format_duration;
use crate::report::instant;
use crate::state::{DeleteStatus, EventKind, LogEntry, Record, TokenRecord, read_log};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Policy file; it names the tenants and the state directory.
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_PATH, value_name = "FILE")]
    pub config: PathBuf,
    /// Show only this tenant (its `name` in the policy file).
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
    /// Show only the records about this token id.
    #[arg(long, value_name = "ID")]
    pub token: Option<String>,
    /// Output format: a line per record, or the records as JSON Lines.
    #[arg(long, value_enum, default_value = "table")]
    pub format: HistoryFormat,
    /// State directory, overriding `[state] dir`.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Runs the command and returns the exit code.
pub fn run(args: &HistoryArgs, out: &mut dyn Write) -> u8 {
    let selection = match select_tenants(
        &args.config,
        args.tenant.as_deref(),
        args.state_dir.as_deref(),
    ) {
        Ok(selection) => selection,
        Err(code) => return code,
    };

    let mut worst = exit::OK;
    let mut found = false;
    for (index, tenant) in selection.tenants.iter().enumerate() {
        let dir = selection.config.state_dir.join(tenant);
        let entries = match read_log(&dir) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::error!(tenant = %tenant, "{error}");
                worst = exit::worst(worst, exit::IO_ERROR);
                continue;
            }
        };
        let entries: Vec<LogEntry> = entries
            .into_iter()
            .filter(|entry| match (&args.token, &entry.record) {
                (Some(id), Ok(record)) => record.token.as_ref().is_some_and(|t| t.id == *id),
                _ => true,
            })
            .collect();
        if args.token.is_some() && entries.iter().all(|entry| entry.record.is_err()) {
            continue;
        }
        found = true;

        let written = match args.format {
            HistoryFormat::Json => write_json(&entries, out),
            HistoryFormat::Table => {
                if index > 0 {
                    let _ = writeln!(out);
                }
                write_table(tenant, args.token.as_deref(), &entries, out)
            }
        };
        if let Err(error) = written {
            return exit::worst(worst, exit::output_error(&error, "the history"));
        }
    }

    if let Some(id) = &args.token
        && !found
    {
        tracing::error!("no audit record mentions token {id}");
        worst = exit::worst(worst, exit::NOT_FOUND);
    }
    worst
}

fn write_json(entries: &[LogEntry], out: &mut dyn Write) -> std::io::Result<()> {
    for entry in entries {
        if let Ok(record) = &entry.record {
            serde_json::to_writer(&mut *out, record)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

fn write_table(
    tenant: &str,
    token_id: Option<&str>,
    entries: &[LogEntry],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let latest = entries
        .iter()
        .rev()
        .find_map(|entry| entry.record.as_ref().ok()?.token.as_ref());
    match (token_id, latest) {
        (Some(_), Some(token)) => describe_token(tenant, token, out)?,
        _ => writeln!(out, "tenant {tenant}: {} records", entries.len())?,
    }
    writeln!(out)?;

    for entry in entries {
        match &entry.record {
            Ok(record) => writeln!(
                out,
                "{}  {}  {}",
                record.at.format("%Y-%m-%dT%H:%M:%SZ"),
                record.run_id,
                describe(record, token_id.is_none())
            )?,
            Err(reason) => writeln!(
                out,
                "{} line {}: unreadable record ({reason}); run `patrol verify-log`",
                entry.path.display(),
                entry.line
            )?,
        }
    }

    let deleted = entries.iter().rev().find_map(|entry| {
        let record = entry.record.as_ref().ok()?;
        (record.event == EventKind::DeleteResult
            && matches!(
                record.result,
                Some(DeleteStatus::Deleted | DeleteStatus::Gone)
            ))
        .then_some(record.token.as_ref()?)
    });
    if let (Some(_), Some(token)) = (token_id, deleted) {
        writeln!(out)?;
        writeln!(
            out,
            "The token is deleted. To replace it, its owner creates a token with this request \
             body (the new token gets a new id and secret):"
        )?;
        let request = create_request(token, Utc::now());
        writeln!(out, "  {}", request.body)?;
        if let Some(note) = request.note {
            writeln!(out, "{note}")?;
        }
    }
    Ok(())
}

fn describe_token(tenant: &str, token: &TokenRecord, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "tenant {tenant}, token {} {:?}, owned by {} ({})",
        token.id,
        token.name,
        token
            .owner
            .name
            .as_deref()
            .map_or("(no name)".into(), crate::report::printable),
        token
            .owner
            .id
            .as_deref()
            .map_or("no id".into(), crate::report::printable)
    )?;
    let scope = token
        .scope
        .as_ref()
        .map_or("null".to_owned(), |scope| format!("[{}]", scope.join(", ")));
    writeln!(
        out,
        "  scope {scope}; created {}; lastUsed {}; expirationDate {}; \
         userAwareTokenNeverExpires {}; accessTokenValiditySeconds {}; managed {}",
        instant(token.created),
        token.last_used.map_or("null".to_owned(), instant),
        token.expiration_date.map_or("null".to_owned(), instant),
        token
            .user_aware_token_never_expires
            .map_or("null".to_owned(), |never| never.to_string()),
        token
            .access_token_validity_seconds
            .map_or("null".to_owned(), |seconds| seconds.to_string()),
        token.managed
    )
}

/// Describes a record in one line. With `with_token`, the line starts with the token.
fn describe(record: &Record, with_token: bool) -> String {
    let rules = record
        .rules
        .as_ref()
        .filter(|rules| !rules.is_empty())
        .map(|rules| rules.join(", "));
    let mut text = match record.event {
        EventKind::RunStarted => format!(
            "run started{}{}",
            match record.dry_run {
                Some(true) => " (dry run)",
                Some(false) => " (deletion enabled)",
                None => "",
            },
            record
                .as_of
                .map_or(String::new(), |as_of| format!(", as of {}", instant(as_of)))
        ),
        EventKind::RunFinished => match &record.counts {
            Some(counts) => {
                let outcomes: Vec<String> = counts
                    .by_outcome
                    .iter()
                    .filter(|(outcome, _)| outcome.as_str() != "none")
                    .map(|(outcome, count)| format!("{count} {outcome}"))
                    .collect();
                format!(
                    "run finished: {} listed{}{}",
                    counts.listed,
                    if outcomes.is_empty() {
                        String::new()
                    } else {
                        format!(", {}", outcomes.join(", "))
                    },
                    match record.open_intents {
                        Some(open) if open > 0 => format!(", {open} deletes without result"),
                        _ => String::new(),
                    }
                )
            }
            None => "run finished".to_owned(),
        },
        EventKind::RunFailed => format!(
            "run failed: {}",
            record.error.as_deref().unwrap_or("no cause recorded")
        ),
        EventKind::BreakerTripped => format!(
            "breaker tripped ({}): {}",
            record.breaker.as_deref().unwrap_or("unknown"),
            record.message.as_deref().unwrap_or("")
        ),
        EventKind::TokenFlagged => format!(
            "flagged for deletion by {}; grace period until {}",
            rules.as_deref().unwrap_or("(no rule recorded)"),
            record
                .grace_until
                .map_or("(not recorded)".to_owned(), instant)
        ),
        EventKind::FlagCleared => format!(
            "no longer flagged for deletion (outcome {})",
            record.outcome.as_deref().unwrap_or("unknown")
        ),
        EventKind::ExemptionApplied | EventKind::ExemptionExpired => {
            let verb = if record.event == EventKind::ExemptionApplied {
                "exemption applies"
            } else {
                "exemption expired"
            };
            match &record.exemption {
                Some(exemption) => format!(
                    "{verb}: {}{}: {}",
                    exemption.selector,
                    exemption
                        .until
                        .map_or(String::new(), |until| format!(", until {}", instant(until))),
                    exemption.reason
                ),
                None => verb.to_owned(),
            }
        }
        EventKind::DeleteIntent => format!(
            "delete intent (rules {})",
            rules.as_deref().unwrap_or("none recorded")
        ),
        EventKind::DeleteResult => {
            let mut text = match record.result {
                Some(DeleteStatus::Deleted) => "deleted".to_owned(),
                Some(DeleteStatus::Gone) => "already deleted (the API answered 404)".to_owned(),
                Some(DeleteStatus::Failed) => format!(
                    "delete failed: {}",
                    record.error.as_deref().unwrap_or("no cause recorded")
                ),
                Some(DeleteStatus::NotDeleted) => "not deleted, still listed".to_owned(),
                None => "delete result not recorded".to_owned(),
            };
            if let Some(intent_run) = &record.intent_run_id {
                text.push_str(&format!(" (reconciled, intent of run {intent_run})"));
            }
            text
        }
        EventKind::Unknown => "an event this version of patrol does not know".to_owned(),
    };
    if with_token && let Some(token) = &record.token {
        text = format!("token {} {:?}: {text}", token.id, token.name);
    }
    text
}

/// The create request for a token like a deleted one.
struct CreateRequest {
    /// The JSON body.
    body: String,
    /// The reason the body differs from the deleted token, when it does.
    note: Option<String>,
}

/// Builds the body of a create request for a token like `token`: name, scopes, and the
/// lifetime settings when they were recorded. The API accepts only an `expirationDate` in
/// the future, so a recorded one that has passed by `now` is replaced by `now` plus the
/// deleted token's lifetime, and the note explains the change.
fn create_request(token: &TokenRecord, now: DateTime<Utc>) -> CreateRequest {
    let mut body = serde_json::Map::new();
    let mut note = None;
    body.insert("name".into(), token.name.clone().into());
    body.insert(
        "scope".into(),
        token
            .scope
            .clone()
            .map_or(serde_json::Value::Null, Into::into),
    );
    if let Some(seconds) = token.access_token_validity_seconds {
        body.insert("accessTokenValiditySeconds".into(), seconds.into());
    }
    match token.expiration_date {
        Some(expiry) if expiry > now => {
            body.insert("expirationDate".into(), instant(expiry).into());
        }
        Some(expiry) => {
            let lifetime = expiry - token.created;
            if lifetime > TimeDelta::zero() {
                let renewed = now + lifetime;
                let renewed = DateTime::from_timestamp(renewed.timestamp(), 0).unwrap_or(renewed);
                body.insert("expirationDate".into(), instant(renewed).into());
                note = Some(format!(
                    "The deleted token's expirationDate {} has passed, and the API accepts only \
                     one in the future. The body gives the new token the same lifetime, {}, \
                     counted from now. Change it if the new token should live longer or shorter.",
                    instant(expiry),
                    format_duration(lifetime)
                ));
            } else {
                note = Some(format!(
                    "The deleted token's expirationDate {} has passed, and the API accepts only \
                     one in the future. Add an expirationDate to the body, or \
                     \"userAwareTokenNeverExpires\": true for a token that never expires.",
                    instant(expiry)
                ));
            }
        }
        None => {}
    }
    if let Some(never) = token.user_aware_token_never_expires {
        body.insert("userAwareTokenNeverExpires".into(), never.into());
    }
    CreateRequest {
        body: serde_json::Value::Object(body).to_string(),
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::OwnerRecord;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn token(expiration_date: Option<&str>) -> TokenRecord {
        TokenRecord {
            id: "t1".to_owned(),
            name: "ci".to_owned(),
            owner: OwnerRecord {
                id: Some("o1".to_owned()),
                name: Some("Owner".to_owned()),
            },
            scope: Some(vec!["sp:scopes:all".to_owned()]),
            created: at("2026-01-01T00:00:00Z"),
            last_used: None,
            expiration_date: expiration_date.map(at),
            access_token_validity_seconds: Some(900),
            user_aware_token_never_expires: Some(false),
            managed: false,
        }
    }

    fn body(request: &CreateRequest) -> serde_json::Value {
        serde_json::from_str(&request.body).unwrap()
    }

    #[test]
    fn future_expiration_is_kept() {
        let request = create_request(
            &token(Some("2027-01-01T00:00:00Z")),
            at("2026-12-05T10:00:00Z"),
        );
        assert_eq!(body(&request)["expirationDate"], "2027-01-01T00:00:00Z");
        assert_eq!(body(&request)["accessTokenValiditySeconds"], 900);
        assert_eq!(request.note, None);
    }

    #[test]
    fn passed_expiration_keeps_lifetime() {
        let request = create_request(
            &token(Some("2026-07-01T00:00:00Z")),
            at("2026-12-05T10:00:00.5Z"),
        );
        // 181 days from January 1 to July 1, counted from now, to the second.
        assert_eq!(body(&request)["expirationDate"], "2027-06-04T10:00:00Z");
        let note = request.note.unwrap();
        assert!(note.contains("2026-07-01T00:00:00Z has passed"), "{note}");
        assert!(
            note.contains("same lifetime, 181d, counted from now"),
            "{note}"
        );
    }

    #[test]
    fn lifetime_under_a_day_is_named_in_hours() {
        let mut short = token(Some("2026-11-02T00:00:00Z"));
        short.created = at("2026-11-01T12:00:00Z");
        let request = create_request(&short, at("2026-12-05T10:00:00Z"));
        assert_eq!(body(&request)["expirationDate"], "2026-12-05T22:00:00Z");
        let note = request.note.unwrap();
        assert!(note.contains("same lifetime, 12h, counted"), "{note}");
    }

    #[test]
    fn expiration_before_creation_is_left_out() {
        let request = create_request(
            &token(Some("2025-12-01T00:00:00Z")),
            at("2026-12-05T10:00:00Z"),
        );
        assert!(body(&request).get("expirationDate").is_none());
        let note = request.note.unwrap();
        assert!(note.contains("Add an expirationDate"), "{note}");
    }

    #[test]
    fn never_expiring_token_has_no_note() {
        let mut never = token(None);
        never.user_aware_token_never_expires = Some(true);
        let request = create_request(&never, at("2026-12-05T10:00:00Z"));
        assert!(body(&request).get("expirationDate").is_none());
        assert_eq!(body(&request)["userAwareTokenNeverExpires"], true);
        assert_eq!(request.note, None);
    }
}
