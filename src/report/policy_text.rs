//! The effective policy in plain words, as `patrol check-config` prints it.
//!
//! [`render`] is a pure function of a validated [`Config`] and an instant. Every cutoff,
//! next run and exemption state is computed at `now`, so the same file gives the same text
//! at the same instant, and the output can be snapshot-tested. It shows where each client
//! secret comes from but never reads or shows a secret; checking that the secrets exist is
//! left to `check-config`.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::config::duration::format_duration;
use crate::config::{Config, Schedule, SecretSource, Tenant};
use crate::isc::model::DEFAULT_ACCESS_TOKEN_VALIDITY_SECONDS;
use crate::policy::{Action, LAST_USED_GRANULARITY, Rule};
use crate::safety::{Exemption, Settings};

/// The lifetime of an access token minted from a PAT when `accessTokenValiditySeconds` is
/// absent. ISC documents 43200 s (12 h) as both the default and the maximum, so every
/// token whose lastUsed is before the default cutoff is caught, whatever its validity.
const DEFAULT_ACCESS_TOKEN_VALIDITY: TimeDelta =
    TimeDelta::seconds(DEFAULT_ACCESS_TOKEN_VALIDITY_SECONDS as i64);

/// Number of upcoming runs listed under the schedule.
const NEXT_RUNS: usize = 3;

/// Width at which paragraphs are wrapped.
const WIDTH: usize = 92;

/// Renders the effective policy of `config` at `now` as plain text, one section per part
/// of the file, ending with a newline.
pub fn render(config: &Config, now: DateTime<Utc>) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Effective policy of {}, as of {}",
        config.path.display(),
        instant(now)
    );

    tenants(&mut text, &config.tenants);
    schedule(&mut text, &config.schedule, now);
    rules(&mut text, &config.policy.rules, now);
    protections(&mut text, config, now);
    grace_period(&mut text, config);
    limits(&mut text, &config.safety);
    dry_run(&mut text, config.safety.dry_run);
    exemptions(&mut text, &config.exemptions, now);
    metrics(&mut text, config);
    text
}

fn tenants(text: &mut String, tenants: &[Tenant]) {
    heading(text, "Tenants");
    for tenant in tenants {
        let _ = writeln!(text, "  {}", tenant.name);
        field(
            text,
            "API",
            &format!(
                "{}, version {}",
                tenant.api_url,
                tenant.api_version.as_str()
            ),
        );
        field(text, "client id", &tenant.client_id);
        field(
            text,
            "client secret",
            &format!("{} (value not shown)", secret_source(&tenant.secret)),
        );
        let owners = match &tenant.owner_id {
            Some(owner) => format!("only those owned by identity {owner}"),
            None => "those of every owner".to_owned(),
        };
        field(text, "tokens audited", &owners);
        field(
            text,
            "rate limit",
            &format!(
                "{} requests per {}; request timeout {}, run timeout {}",
                tenant.rate_limit_requests,
                std_duration(tenant.rate_limit_window),
                std_duration(tenant.request_timeout),
                std_duration(tenant.run_timeout)
            ),
        );
    }
}

fn schedule(text: &mut String, schedule: &Schedule, now: DateTime<Utc>) {
    heading(text, "Schedule");
    paragraph(
        text,
        "  ",
        &format!(
            "cron \"{}\": {}, in time zone {}.",
            schedule.cron,
            cron_in_words(schedule),
            schedule.timezone.name()
        ),
    );
    for (index, run) in schedule.runs_after(now).take(NEXT_RUNS).enumerate() {
        let label = if index == 0 { "next runs:" } else { "" };
        let _ = writeln!(text, "  {label:<11}{}", zoned_run(&run, now));
    }
    let start = if schedule.run_on_start {
        "the daemon runs once right away, then on the schedule"
    } else {
        "the daemon waits for the first scheduled run (run_on_start = false)"
    };
    let _ = writeln!(text, "  At start, {start}.");
}

/// Describes the pattern in words: a sentence of patrol's own for a daily run at a fixed
/// time, croner's description for anything else.
fn cron_in_words(schedule: &Schedule) -> String {
    let fields: Vec<&str> = schedule.cron.split_whitespace().collect();
    let number = |field: &str| field.parse::<u32>().ok();
    let daily = match fields.as_slice() {
        [minute, hour, "*", "*", "*"] => number(minute)
            .zip(number(hour))
            .map(|(minute, hour)| format!("{hour:02}:{minute:02}")),
        [second, minute, hour, "*", "*", "*"] => number(second)
            .zip(number(minute))
            .zip(number(hour))
            .map(|((second, minute), hour)| format!("{hour:02}:{minute:02}:{second:02}")),
        _ => None,
    };
    if let Some(time) = daily {
        return format!("every day at {time}");
    }

    let described = schedule.pattern.describe();
    let described = described.trim().trim_end_matches('.');
    let mut characters = described.chars();
    match characters.next() {
        Some(first) => first.to_lowercase().chain(characters).collect(),
        None => described.to_owned(),
    }
}

fn zoned_run(run: &DateTime<Tz>, now: DateTime<Utc>) -> String {
    let utc = run.with_timezone(&Utc);
    format!(
        "{} ({}, in {})",
        run.format("%Y-%m-%d %H:%M:%S %Z"),
        instant(utc),
        format_duration(utc - now)
    )
}

fn rules(text: &mut String, rules: &[Rule], now: DateTime<Utc>) {
    heading(text, "Rules");
    paragraph(
        text,
        "  ",
        "In file order. A rule matches a token when all of its conditions hold. A token's \
         verdict is the strongest action among the rules that match it (delete over report \
         over keep), and a token that no rule matches is kept.",
    );
    if rules.is_empty() {
        let _ = writeln!(text, "  No rules: every token is kept.");
    }
    for (index, rule) in rules.iter().enumerate() {
        let _ = writeln!(
            text,
            "  {}. \"{}\": {}",
            index + 1,
            rule.name,
            action_in_words(rule.action)
        );
        if let Some(description) = &rule.description {
            paragraph(text, "     ", description);
        }
        for condition in conditions(rule, now) {
            paragraph(text, "     - ", &condition);
        }
    }
}

fn action_in_words(action: Action) -> &'static str {
    match action {
        Action::Delete => "delete, once the protections, exemptions and grace period allow it",
        Action::Report => "report",
        Action::Keep => "keep (records a reason; it cannot override report or delete)",
    }
}

/// Describes each condition of `rule` in one sentence, with the cutoffs it implies at
/// `now`.
fn conditions(rule: &Rule, now: DateTime<Utc>) -> Vec<String> {
    let m = &rule.matchers;
    let mut found = Vec::new();

    if let Some(age) = m.last_used_older_than {
        let margin = LAST_USED_GRANULARITY + DEFAULT_ACCESS_TOKEN_VALIDITY;
        found.push(format!(
            "not used for {age}: lastUsed + {granularity} (lastUsed moves at most once a day) \
             + the token's access token validity ({validity} by default) is more than {age} \
             ago. With the default validity: lastUsed before {cutoff} (now - {total}). A token \
             with a shorter validity is caught up to {validity} sooner. A never-used token \
             does not match this condition.",
            age = format_duration(age),
            granularity = format_duration(LAST_USED_GRANULARITY),
            validity = format_duration(DEFAULT_ACCESS_TOKEN_VALIDITY),
            cutoff = instant(now - age - margin),
            total = format_duration(age + margin),
        ));
    }
    match m.never_used {
        Some(true) => found.push("never used (lastUsed is null)".to_owned()),
        Some(false) => found.push("used at least once (lastUsed is set)".to_owned()),
        None => {}
    }
    if let Some(age) = m.created_older_than {
        found.push(format!(
            "created more than {} ago: created before {}",
            format_duration(age),
            instant(now - age)
        ));
    }
    if let Some(window) = m.expires_within {
        found.push(format!(
            "expires within {}: expirationDate after now and at or before {}; tokens that \
             have already expired do not match this condition",
            format_duration(window),
            instant(now + window)
        ));
    }
    match m.expired {
        Some(true) => found.push(format!(
            "expired: expirationDate at or before now ({})",
            instant(now)
        )),
        Some(false) => {
            found.push("not expired: no expirationDate, or one after now".to_owned());
        }
        None => {}
    }
    match m.never_expires {
        Some(true) => found.push("never expires (expirationDate is null)".to_owned()),
        Some(false) => found.push("has an expirationDate".to_owned()),
        None => {}
    }
    if let Some(scopes) = &m.scope_includes {
        found.push(format!("has any of the scopes {}", scopes.join(", ")));
    }
    if let Some(pattern) = &m.name_matches {
        found.push(format!(
            "token name matches the regular expression /{}/",
            pattern.as_str()
        ));
    }
    if let Some(pattern) = &m.owner_name_matches {
        found.push(format!(
            "owner name matches the regular expression /{}/ (a token without an owner name \
             does not match)",
            pattern.as_str()
        ));
    }
    if let Some(ids) = &m.owner_ids {
        found.push(format!("owner id is one of {}", ids.join(", ")));
    }
    match m.managed {
        Some(true) => {
            found.push("managed (created by the platform for Workflows)".to_owned());
        }
        Some(false) => found.push("not managed".to_owned()),
        None => {}
    }
    found
}

fn protections(text: &mut String, config: &Config, now: DateTime<Utc>) {
    let settings = &config.safety;
    heading(text, "Protections");
    paragraph(
        text,
        "  ",
        "A protected token is never deleted. Self and managed tokens can still be reported.",
    );
    let ids: Vec<String> = config
        .tenants
        .iter()
        .map(|tenant| format!("{} in {}", tenant.client_id, tenant.name))
        .collect();
    paragraph(
        text,
        "  self:    ",
        &format!(
            "the token patrol authenticates with, whose id is the client id ({})",
            ids.join(", ")
        ),
    );
    let managed = if settings.protect_managed {
        "on (protect_managed = true): tokens the platform manages for Workflows are never \
         deleted"
    } else {
        "off (protect_managed = false): managed tokens can be deleted like any other"
    };
    paragraph(text, "  managed: ", managed);
    paragraph(
        text,
        "  young:   ",
        &format!(
            "never-used tokens younger than {} (created after {}) are neither reported nor deleted: their outcome is protected",
            format_duration(settings.min_token_age),
            instant(now - settings.min_token_age)
        ),
    );
}

fn grace_period(text: &mut String, config: &Config) {
    heading(text, "Grace period");
    if config.safety.grace_period.is_zero() {
        paragraph(
            text,
            "  ",
            "WARNING: the grace period is 0s, so a token is deleted in the same run that first \
             flags it, before anyone can review it. Set [safety] grace_period (default 7d) \
             unless this is intended.",
        );
        return;
    }
    paragraph(
        text,
        "  ",
        &format!(
            "A token with the verdict delete is deleted only once it was first flagged for \
             deletion at least {} ago, in an earlier run. First-flagged times are kept in \
             {}, so a restart does not reset them.",
            format_duration(config.safety.grace_period),
            config.state_dir.display()
        ),
    );
}

fn limits(text: &mut String, settings: &Settings) {
    heading(text, "Limits of one run");
    let deletions = match settings.max_deletions_per_run {
        0 => "0: no token is deleted".to_owned(),
        count => format!(
            "{count}, the longest unused first (by lastUsed, or by creation for never-used \
             tokens); the rest wait for the next run"
        ),
    };
    paragraph(text, "  max deletions per run: ", &deletions);
    paragraph(
        text,
        "  max deletion percent:  ",
        &format!(
            "{percent}%: when more than {percent}% of the tenant's tokens are due for \
             deletion, the run deletes nothing",
            percent = settings.max_deletion_percent
        ),
    );
    paragraph(
        text,
        "  max clock skew:        ",
        &format!(
            "{}: when the local clock and the API's Date header differ by more, the run \
             deletes nothing",
            format_duration(settings.max_clock_skew)
        ),
    );
    paragraph(
        text,
        "  ",
        "A run also deletes nothing when a listing fails or comes back incomplete, or when \
         the state file was unreadable.",
    );
}

fn dry_run(text: &mut String, dry_run: bool) {
    if dry_run {
        heading(text, "Dry run: on");
        paragraph(
            text,
            "  ",
            "Runs report what they would delete and delete nothing. To delete, set dry_run = \
             false in [safety], or run `patrol audit --apply` once.",
        );
    } else {
        heading(text, "Dry run: off");
        paragraph(
            text,
            "  ",
            "Tokens due for deletion are deleted. To only report, set dry_run = true in \
             [safety], or run `patrol audit --dry-run` once.",
        );
    }
}

fn exemptions(text: &mut String, exemptions: &[Exemption], now: DateTime<Utc>) {
    heading(text, "Exemptions");
    if exemptions.is_empty() {
        let _ = writeln!(text, "  None.");
        return;
    }
    paragraph(
        text,
        "  ",
        "An active exemption keeps every token it selects, whatever the rules say. One past \
         its end date no longer applies and is shown as expired.",
    );
    for (index, exemption) in exemptions.iter().enumerate() {
        let state = match exemption.until {
            None => "active, no end date".to_owned(),
            Some(until) if exemption.is_active(now) => format!(
                "active until {} (in {})",
                instant(until),
                format_duration(until - now)
            ),
            Some(until) => format!(
                "EXPIRED on {} ({} ago), no longer applies",
                instant(until),
                format_duration(now - until)
            ),
        };
        paragraph(
            text,
            &format!("  {}. ", index + 1),
            &format!("{}: {state}", exemption.selector()),
        );
        paragraph(text, "     reason: ", &exemption.reason);
        if let Some(other) = same_token_before(exemptions, index) {
            paragraph(
                text,
                "     note: ",
                &format!(
                    "exemption {} selects the same token_id; the first active one applies",
                    other + 1
                ),
            );
        }
    }
}

/// Finds the first exemption before `index` with the same `token_id`.
fn same_token_before(exemptions: &[Exemption], index: usize) -> Option<usize> {
    let token_id = exemptions[index].token_id.as_ref()?;
    exemptions[..index]
        .iter()
        .position(|other| other.token_id.as_ref() == Some(token_id))
}

fn metrics(text: &mut String, config: &Config) {
    heading(text, "Metrics");
    let labels = if config.metrics.token_labels {
        "with token and owner names as labels"
    } else {
        "without token and owner names (token_labels = false)"
    };
    paragraph(
        text,
        "  ",
        &format!(
            "Served on http://{}/metrics, at most {} per-token series, {labels}.",
            config.metrics.listen, config.metrics.max_token_series
        ),
    );
}

fn heading(text: &mut String, title: &str) {
    let _ = writeln!(text, "\n{title}");
}

fn field(text: &mut String, label: &str, value: &str) {
    paragraph(text, &format!("    {:<16}", format!("{label}:")), value);
}

/// Writes `body` after `prefix`, wrapped at [`WIDTH`], with continuation lines indented to
/// the width of the prefix.
fn paragraph(text: &mut String, prefix: &str, body: &str) {
    let indent = " ".repeat(prefix.chars().count());
    let mut line = prefix.to_owned();
    let mut line_has_word = false;
    for word in body.split_whitespace() {
        let fits = line.chars().count() + 1 + word.chars().count() <= WIDTH;
        if line_has_word && !fits {
            text.push_str(line.trim_end());
            text.push('\n');
            line = indent.clone();
        } else if line_has_word {
            line.push(' ');
        }
        line.push_str(word);
        line_has_word = true;
    }
    text.push_str(line.trim_end());
    text.push('\n');
}

fn secret_source(source: &SecretSource) -> String {
    match source {
        SecretSource::Env(name) => format!("environment variable {name}"),
        SecretSource::File(path) => format!("file {}", path.display()),
        SecretSource::Credential(name) => {
            format!("systemd credential {name} (in $CREDENTIALS_DIRECTORY)")
        }
    }
}

fn std_duration(duration: std::time::Duration) -> String {
    TimeDelta::from_std(duration).map_or_else(|_| format!("{duration:?}"), format_duration)
}

fn instant(value: DateTime<Utc>) -> String {
    value.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const CONTRACT: &str = include_str!("../../tests/fixtures/policy.toml");

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn render_text(text: &str) -> String {
        let config = Config::parse(text, Path::new("patrol.toml")).unwrap();
        render(&config, now())
    }

    #[test]
    fn unused_cutoff_includes_granularity_and_validity() {
        let text = render_text(CONTRACT);
        // 2026-12-01 minus 90 days minus 1 day minus 12 hours.
        assert!(
            text.contains("lastUsed before 2026-08-31T12:00:00Z (now - 91d12h)"),
            "{text}"
        );
    }

    #[test]
    fn expired_exemption_is_marked() {
        let text = render_text(CONTRACT);
        assert!(
            text.contains("EXPIRED on 2026-11-01T00:00:00Z (30d ago)"),
            "{text}"
        );
        assert!(
            text.contains("active until 2027-03-01T00:00:00Z (in 90d)"),
            "{text}"
        );
    }

    #[test]
    fn next_runs_are_in_the_configured_zone() {
        let text = render_text(CONTRACT);
        assert!(
            text.contains("2026-12-01 03:15:00 CET (2026-12-01T02:15:00Z, in 2h15m)"),
            "{text}"
        );
        assert!(text.contains("2026-12-03 03:15:00 CET"), "{text}");
        assert!(!text.contains("2026-12-04 03:15:00 CET"), "{text}");
    }

    #[test]
    fn secret_source_is_named_but_not_read() {
        let text = render_text(CONTRACT);
        assert!(
            text.contains("environment variable PATROL_ACME_CLIENT_SECRET (value not shown)"),
            "{text}"
        );
    }

    #[test]
    fn dry_run_off_names_the_setting() {
        let text = render_text(&CONTRACT.replace("dry_run = true", "dry_run = false"));
        assert!(text.contains("Dry run: off"), "{text}");
        assert!(text.contains("set dry_run = true"), "{text}");
    }

    #[test]
    fn duplicate_token_exemption_gets_a_note() {
        let duplicate = format!(
            "{CONTRACT}\n[[exemption]]\ntoken_id = \"bbbb0000000000000000000000000014\"\n\
             reason = \"Renewed for the cut-over\"\nuntil = \"2027-01-15\"\n"
        );
        let text = render_text(&duplicate);
        assert!(
            text.contains("exemption 2 selects the same token_id"),
            "{text}"
        );
    }

    #[test]
    fn daily_cron_is_described_in_words() {
        let text = render_text(CONTRACT);
        assert!(
            text.contains("cron \"15 3 * * *\": every day at 03:15, in time zone Europe/Berlin"),
            "{text}"
        );
        let weekly = render_text(&CONTRACT.replace("15 3 * * *", "0 4 * * MON"));
        assert!(weekly.contains("at 04:00, on Monday"), "{weekly}");
    }

    #[test]
    fn paragraph_wraps_under_its_prefix() {
        let mut text = String::new();
        let body = "word ".repeat(40);
        paragraph(&mut text, "  - ", &body);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|line| line.chars().count() <= WIDTH));
        assert!(lines[1].starts_with("    word"));
    }
}
