//! `patrol audit --explain TOKEN_ID`: why one token got its verdict and outcome.

use std::io::{self, Write};

use crate::audit::{Run, TokenResult};
use crate::config::Config;
use crate::config::duration::format_duration;
use crate::policy::explain_rule;

use super::{instant, printable, reason};

/// Writes, for one token, each rule with whether it matched and why, the protections, the
/// exemptions, the grace state and the outcome. `as_of_given` is true when the run
/// evaluates an instant given with `--as-of` instead of the present.
pub fn render_explanation(
    config: &Config,
    run: &Run,
    result: TokenResult<'_>,
    as_of_given: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    let token = &result.token;
    writeln!(
        out,
        "token {} \"{}\"",
        printable(&token.id),
        printable(&token.name)
    )?;
    writeln!(
        out,
        "  owner {} ({})",
        token
            .owner
            .name
            .as_deref()
            .map_or("(no name)".into(), printable),
        token
            .owner
            .id
            .as_deref()
            .map_or("(no id)".into(), printable)
    )?;
    writeln!(out, "  created {}", instant(token.created))?;
    match token.last_used {
        Some(last_used) => writeln!(out, "  lastUsed {}", instant(last_used))?,
        None => writeln!(out, "  lastUsed null (never used)")?,
    }
    match token.expiration_date {
        Some(expiry) => writeln!(out, "  expirationDate {}", instant(expiry))?,
        None => writeln!(out, "  expirationDate null (never expires)")?,
    }
    writeln!(
        out,
        "  accessTokenValiditySeconds {}, managed {}, scope {}",
        token.access_token_validity_seconds(),
        token.managed,
        token
            .scope
            .as_ref()
            .map_or("null".to_owned(), |scope| format!("[{}]", scope.join(", ")))
    )?;
    if as_of_given {
        writeln!(
            out,
            "evaluated at {}, a forecast: \"now\" and \"ago\" below refer to this instant",
            instant(run.as_of)
        )?;
    } else {
        writeln!(out, "evaluated at {}", instant(run.as_of))?;
    }

    writeln!(out)?;
    writeln!(out, "rules (strongest matching action wins):")?;
    if config.policy.rules.is_empty() {
        writeln!(out, "  (no rules: every token is kept)")?;
    }
    for rule in &config.policy.rules {
        let conditions = explain_rule(rule, token, run.as_of);
        let matched = conditions.iter().all(|condition| condition.matched);
        writeln!(
            out,
            "  {} {} (action {})",
            if matched { "MATCH   " } else { "no match" },
            rule.name,
            rule.action
        )?;
        for condition in conditions {
            writeln!(
                out,
                "      [{}] {}: {}",
                if condition.matched { "x" } else { " " },
                condition.matcher,
                condition.detail
            )?;
        }
    }
    writeln!(out, "verdict: {}", result.verdict)?;

    writeln!(out)?;
    let settings = &config.safety;
    writeln!(out, "protections:")?;
    writeln!(
        out,
        "  self: {}",
        yes_no(token.id == run_client_id(config, run))
    )?;
    writeln!(
        out,
        "  managed: {} (protect_managed = {})",
        yes_no(token.managed && settings.protect_managed),
        settings.protect_managed
    )?;
    writeln!(
        out,
        "  young: {} (never-used tokens younger than min_token_age = {})",
        yes_no(token.last_used.is_none() && token.created > run.as_of - settings.min_token_age),
        format_duration(settings.min_token_age)
    )?;

    writeln!(out, "exemptions:")?;
    let mut any = false;
    for exemption in &config.exemptions {
        if !exemption.selects(token) {
            continue;
        }
        any = true;
        let state = if exemption.is_active(run.as_of) {
            "active"
        } else {
            "expired"
        };
        let until = exemption.until.map_or("no end".to_owned(), instant);
        writeln!(
            out,
            "  {state} ({}), until {until}: {}",
            exemption.selector(),
            exemption.reason
        )?;
    }
    if !any {
        writeln!(out, "  none selects this token")?;
    }

    writeln!(out, "grace:")?;
    match (result.first_flagged, result.grace_until) {
        (Some(first), Some(until)) => writeln!(
            out,
            "  first flagged {}, grace period {}, deletion due from {}",
            instant(first),
            format_duration(settings.grace_period),
            instant(until)
        )?,
        (Some(first), None) => writeln!(
            out,
            "  first flagged {}, grace period {} is over",
            instant(first),
            format_duration(settings.grace_period)
        )?,
        _ => writeln!(out, "  not flagged for deletion")?,
    }

    writeln!(out)?;
    writeln!(out, "outcome: {}", result.outcome)?;
    writeln!(out, "  {}", reason(run, result))?;
    Ok(())
}

fn run_client_id<'a>(config: &'a Config, run: &Run) -> &'a str {
    config
        .tenant(&run.tenant)
        .map_or("", |tenant| tenant.client_id.as_str())
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}
