//! The CSV rendering of runs: a header row, then one row per listed token of each run.
//!
//! Rows follow RFC 4180: fields that hold a comma, a quote or a line break are quoted,
//! quotes are doubled, and lines end with CRLF. A field that a spreadsheet would take for a
//! formula (it starts with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading
//! `'`, because token and owner names come from the tenant's users. Lists (rules,
//! protections, scopes) are joined with `;`.

use std::io::{self, Write};

use crate::audit::Run;

use super::{days_between, instant, reason};

const COLUMNS: [&str; 23] = [
    "tenant",
    "run_id",
    "as_of",
    "id",
    "name",
    "owner_id",
    "owner_name",
    "scope",
    "created",
    "last_used",
    "last_used_days",
    "expiration_date",
    "access_token_validity_seconds",
    "managed",
    "verdict",
    "outcome",
    "rules",
    "protections",
    "first_flagged",
    "grace_until",
    "exemption",
    "error",
    "reason",
];

/// Writes one header row, then every token of each run as one row.
pub fn render_csv(runs: &[Run], out: &mut dyn Write) -> io::Result<()> {
    write_row(out, COLUMNS.iter().map(|column| column.to_string()))?;
    for run in runs {
        write_rows(run, out)?;
    }
    Ok(())
}

fn write_rows(run: &Run, out: &mut dyn Write) -> io::Result<()> {
    for result in &run.tokens {
        let token = &result.token;
        let exemption = result.exemption.as_ref().map(|exemption| {
            let state = if exemption.expired {
                "expired"
            } else {
                "active"
            };
            format!("{state}: {}: {}", exemption.selector, exemption.reason)
        });
        let protections: Vec<&str> = result.protections.iter().map(|p| p.as_str()).collect();
        let row = [
            run.tenant.clone(),
            run.run_id.clone(),
            instant(run.as_of),
            token.id.clone(),
            token.name.clone(),
            token.owner.id.clone().unwrap_or_default(),
            token.owner.name.clone().unwrap_or_default(),
            token.scope.clone().unwrap_or_default().join(";"),
            instant(token.created),
            token.last_used.map(instant).unwrap_or_default(),
            token
                .last_used
                .map(|last_used| days_between(last_used, run.as_of).to_string())
                .unwrap_or_default(),
            token.expiration_date.map(instant).unwrap_or_default(),
            token.access_token_validity_seconds().to_string(),
            token.managed.to_string(),
            result.verdict.to_string(),
            result.outcome.to_string(),
            result.rules.join(";"),
            protections.join(";"),
            result.first_flagged.map(instant).unwrap_or_default(),
            result.grace_until.map(instant).unwrap_or_default(),
            exemption.unwrap_or_default(),
            result.error.as_deref().unwrap_or_default().to_owned(),
            reason(run, result),
        ];
        write_row(out, row.into_iter())?;
    }
    Ok(())
}

fn write_row(out: &mut dyn Write, fields: impl Iterator<Item = String>) -> io::Result<()> {
    let line: Vec<String> = fields.map(|field| quote(&field)).collect();
    write!(out, "{}\r\n", line.join(","))
}

fn quote(field: &str) -> String {
    let guarded = if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{field}")
    } else {
        field.to_owned()
    };
    if guarded.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_follows_rfc_4180() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn quote_defuses_spreadsheet_formulas() {
        assert_eq!(quote("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(quote("+1"), "'+1");
        assert_eq!(quote("@sum"), "'@sum");
        assert_eq!(quote("-ci"), "'-ci");
        assert_eq!(quote("2026-12-01T00:00:00Z"), "2026-12-01T00:00:00Z");
    }
}
