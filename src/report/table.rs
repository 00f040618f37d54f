//! The readable table of `patrol audit`: flagged tokens first, then the counts.

use std::io::{self, Write};

use crate::audit::Run;
use crate::policy::Action;

use super::{days_between, instant, printable};

/// Writes the flagged tokens of a run as aligned columns, then a summary.
pub fn render_table(run: &Run, out: &mut dyn Write) -> io::Result<()> {
    let mode = if run.forecast {
        "forecast, dry run"
    } else if run.dry_run {
        "dry run"
    } else {
        "apply"
    };
    writeln!(
        out,
        "tenant {} at {} ({mode})",
        run.tenant,
        instant(run.as_of)
    )?;
    if let Some(breaker) = &run.breaker {
        writeln!(
            out,
            "BREAKER TRIPPED ({}): {breaker}; nothing was deleted",
            breaker.kind()
        )?;
    }
    writeln!(out)?;

    let mut rows: Vec<[String; 7]> = Vec::new();
    let mut flagged: Vec<_> = run
        .tokens
        .iter()
        .filter(|t| t.verdict != Action::Keep)
        .collect();
    flagged.sort_by(|a, b| {
        b.verdict
            .cmp(&a.verdict)
            .then(a.outcome.cmp(&b.outcome))
            .then(a.token.last_used.cmp(&b.token.last_used))
    });
    for result in &flagged {
        let token = &result.token;
        let last_used = match token.last_used {
            Some(last_used) => format!("{}d ago", days_between(last_used, run.as_of)),
            None => "never".to_owned(),
        };
        let mut outcome = result.outcome.to_string();
        if let Some(until) = result.grace_until {
            outcome = format!("grace until {}", until.format("%Y-%m-%d %H:%M"));
        }
        if !result.protections.is_empty() {
            let names: Vec<&str> = result.protections.iter().map(|p| p.as_str()).collect();
            outcome = format!("{outcome} ({})", names.join(", "));
        }
        let owner = token.owner.name.as_ref().or(token.owner.id.as_ref());
        rows.push([
            printable(&token.id).into_owned(),
            printable(&token.name).into_owned(),
            owner.map_or_else(String::new, |owner| printable(owner).into_owned()),
            last_used,
            result.verdict.to_string(),
            outcome,
            printable(&result.rules.join(", ")).into_owned(),
        ]);
    }

    if rows.is_empty() {
        writeln!(out, "{}", super::no_flagged_tokens(run))?;
    } else {
        let header = [
            "ID",
            "NAME",
            "OWNER",
            "LAST USED",
            "VERDICT",
            "OUTCOME",
            "RULES",
        ]
        .map(str::to_owned);
        let mut widths = header.clone().map(|cell| cell.chars().count());
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&header).chain(rows.iter()) {
            let mut line = String::new();
            for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
                if index + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  "));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
    }

    writeln!(out)?;
    let tally = run.tally();
    writeln!(out, "{}", super::verdict_counts(run, &tally))?;
    let outcomes = super::outcome_counts(&tally);
    if !outcomes.is_empty() {
        writeln!(out, "outcomes: {}", outcomes.join(", "))?;
    }
    if run.dry_run && !run.forecast {
        writeln!(
            out,
            "Dry run: nothing was deleted. Use --apply or [safety] dry_run = false to delete."
        )?;
    }
    Ok(())
}
