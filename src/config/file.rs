//! The policy file exactly as written: serde types that reject unknown keys, and the
//! deserialization that turns a TOML syntax or schema error into one located problem.
//!
//! Values that need checking beyond their TOML type (durations, instants, regular
//! expressions, actions, addresses) are kept as spanned strings here, so that the
//! validation in `build` can report every problem with its line instead of stopping at the
//! first one. A syntax or schema error stops deserialization, so the file yields at most
//! one such problem.

use serde::Deserialize;
use serde_path_to_error::Segment;
use toml::Spanned;

use super::error::{Locator, Problem};

/// The map key under which `toml::Spanned` deserializes its value. It is not part of the
/// key path that the user wrote.
const SPANNED_VALUE_KEY: &str = "$__serde_spanned_private_value";

/// Sections written once as `[name]`.
const TABLE_SECTIONS: [&str; 5] = ["schedule", "safety", "metrics", "state", "log"];

/// Sections written as `[[name]]`, once per entry.
const ARRAY_SECTIONS: [&str; 3] = ["tenant", "rule", "exemption"];

/// Keys whose value is a duration string such as `"7d"`.
const DURATION_KEYS: [&str; 9] = [
    "rate_limit_window",
    "request_timeout",
    "run_timeout",
    "min_token_age",
    "grace_period",
    "max_clock_skew",
    "last_used_older_than",
    "created_older_than",
    "expires_within",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub tenant: Vec<Spanned<Tenant>>,
    #[serde(default)]
    pub schedule: Option<Spanned<Schedule>>,
    #[serde(default)]
    pub safety: Option<Spanned<Safety>>,
    #[serde(default)]
    pub metrics: Option<Spanned<Metrics>>,
    #[serde(default)]
    pub state: Option<Spanned<State>>,
    #[serde(default)]
    pub log: Option<Spanned<Log>>,
    #[serde(default)]
    pub rule: Vec<Spanned<Rule>>,
    #[serde(default)]
    pub exemption: Vec<Spanned<Exemption>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub name: Spanned<String>,
    pub api_url: Spanned<String>,
    pub api_version: Option<Spanned<String>>,
    pub client_id: Spanned<String>,
    pub client_secret_env: Option<Spanned<String>>,
    pub client_secret_file: Option<Spanned<String>>,
    pub client_secret_credential: Option<Spanned<String>>,
    pub owner_id: Option<Spanned<String>>,
    pub rate_limit: Option<Spanned<i64>>,
    pub rate_limit_window: Option<Spanned<String>>,
    pub request_timeout: Option<Spanned<String>>,
    pub run_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub cron: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub run_on_start: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Safety {
    pub dry_run: Option<bool>,
    pub protect_managed: Option<bool>,
    pub min_token_age: Option<Spanned<String>>,
    pub grace_period: Option<Spanned<String>>,
    pub max_deletions_per_run: Option<Spanned<i64>>,
    pub max_deletion_percent: Option<Spanned<f64>>,
    pub max_clock_skew: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    pub listen: Option<Spanned<String>>,
    pub max_token_series: Option<Spanned<i64>>,
    pub token_labels: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub dir: Option<Spanned<String>>,
    pub audit_log_max_bytes: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub level: Option<Spanned<String>>,
    pub format: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: Spanned<String>,
    pub action: Spanned<String>,
    pub description: Option<String>,
    pub last_used_older_than: Option<Spanned<String>>,
    pub never_used: Option<Spanned<bool>>,
    pub created_older_than: Option<Spanned<String>>,
    pub expires_within: Option<Spanned<String>>,
    pub expired: Option<Spanned<bool>>,
    pub never_expires: Option<Spanned<bool>>,
    pub scope_includes: Option<Spanned<Vec<String>>>,
    pub name_matches: Option<Spanned<String>>,
    pub owner_name_matches: Option<Spanned<String>>,
    pub owner_ids: Option<Spanned<Vec<String>>>,
    pub managed: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    pub token_id: Option<Spanned<String>>,
    pub owner_id: Option<Spanned<String>>,
    pub name_matches: Option<Spanned<String>>,
    pub reason: Option<Spanned<String>>,
    pub until: Option<Spanned<String>>,
}

/// Deserializes the policy text. A TOML syntax error or a value of the wrong type or at an
/// unknown key becomes one problem with its line, its dotted key and a plain message.
pub fn parse(text: &str, locator: &Locator<'_>) -> Result<File, Problem> {
    let deserializer = toml::Deserializer::parse(text).map_err(|error| {
        let (line, column) = position(&error, locator);
        let message = syntax_message(&error, text);
        Problem {
            line,
            column,
            key: key_at_line(text, line),
            message,
        }
    })?;

    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let segments: Vec<&Segment> = error.path().iter().collect();
        let message = error.inner().message().trim();
        let (key, rewritten) = schema_message(&segments, message);
        let (line, column) = position(error.inner(), locator);
        Problem {
            line,
            column,
            key,
            message: rewritten,
        }
    })
}

fn position(error: &toml::de::Error, locator: &Locator<'_>) -> (usize, usize) {
    error
        .span()
        .map_or((0, 0), |span| locator.position(span.start))
}

/// Builds the message of a syntax error, naming the key where the parser reports only
/// "duplicate key".
fn syntax_message(error: &toml::de::Error, text: &str) -> String {
    let message = error.message().trim();
    let repeated = error
        .span()
        .and_then(|span| text.get(span))
        .map(str::trim)
        .filter(|key| !key.is_empty() && !key.contains('\n'));
    match repeated {
        Some(key) if message == "duplicate key" => {
            format!("duplicate key `{key}`: each key may appear once per table")
        }
        _ => format!("invalid TOML: {message}"),
    }
}

/// Builds the dotted key of a schema error and rewrites serde's type names into TOML terms.
fn schema_message(segments: &[&Segment], message: &str) -> (String, String) {
    let mut key = String::new();
    for segment in segments {
        match segment {
            Segment::Map { key: name } if name == SPANNED_VALUE_KEY => {}
            Segment::Map { key: name } | Segment::Enum { variant: name } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
            }
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Unknown => key.push_str(".?"),
        }
    }

    if let Some(field) = missing_field(message) {
        let parent = key.clone();
        key = if parent.is_empty() {
            field.to_owned()
        } else {
            format!("{parent}.{field}")
        };
        return (key, format!("missing required key `{field}` in {parent}"));
    }

    let section = key.split(['.', '[']).next().unwrap_or_default().to_owned();
    let is_section_itself = key == section || key == format!("{section}[0]");
    if is_section_itself && message.starts_with("invalid type") {
        if TABLE_SECTIONS.contains(&section.as_str()) {
            return (
                section.clone(),
                format!("must be a single table: write [{section}] once, not [[{section}]]"),
            );
        }
        if ARRAY_SECTIONS.contains(&section.as_str()) && key == section {
            return (
                section.clone(),
                format!("must be an array of tables: write [[{section}]] once per entry"),
            );
        }
    }
    let mut message = toml_type_names(message);
    let field = key.rsplit('.').next().unwrap_or_default();
    if DURATION_KEYS.contains(&field) && message.ends_with("expected a string") {
        message.push_str(" such as \"7d\": durations are quoted");
    }
    (key, message)
}

/// Returns the field name in serde's "missing field `name`".
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")?
        .split('`')
        .next()
        .filter(|field| !field.is_empty())
}

fn toml_type_names(message: &str) -> String {
    let mut message = message
        .replace(" as i128", "")
        .replace("unknown field", "unknown key")
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number")
        .replace("expected a sequence", "expected an array")
        .replace("invalid type: map", "invalid type: table")
        .replace("invalid type: sequence", "invalid type: array");
    if message.starts_with("invalid type: integer") && message.ends_with("expected an integer") {
        // serde reports an integer outside i64 as "invalid type: integer `…` as i128".
        message = format!("{message} between -2^63 and 2^63-1");
    }
    message
}

/// Returns the dotted key that a line of the file sets, for syntax errors, where the parser
/// gives only a position. The key is the enclosing `[table]` or `[[array]]` (with its
/// index) and the bare key at the start of that line. Headers with quoted or dotted names
/// are used as written.
fn key_at_line(text: &str, line: usize) -> String {
    let mut table = String::new();
    let mut array_counts: Vec<(String, usize)> = Vec::new();
    for (index, content) in text.lines().enumerate() {
        let content = content.trim();
        let header = table_header(content, &mut array_counts);
        if index + 1 == line {
            if let Some(header) = header {
                return header;
            }
            let bare_key = content.split('=').next().map(str::trim).filter(|key| {
                content.contains('=')
                    && !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
            return match (bare_key, table.is_empty()) {
                (Some(bare_key), true) => bare_key.to_owned(),
                (Some(bare_key), false) => format!("{table}.{bare_key}"),
                (None, _) => table,
            };
        }
        if let Some(header) = header {
            table = header;
        }
    }
    table
}

/// Returns the key of a `[table]` or `[[array]]` header line, counting the entries of each
/// array seen so far in `array_counts`, or `None` for any other line.
fn table_header(content: &str, array_counts: &mut Vec<(String, usize)>) -> Option<String> {
    if let Some(rest) = content.strip_prefix("[[") {
        let name = rest.split("]]").next().unwrap_or(rest).trim().to_owned();
        let index = match array_counts.iter_mut().find(|(seen, _)| *seen == name) {
            Some((_, count)) => {
                *count += 1;
                *count - 1
            }
            None => {
                array_counts.push((name.clone(), 1));
                0
            }
        };
        return Some(format!("{name}[{index}]"));
    }
    content
        .strip_prefix('[')
        .map(|rest| rest.split(']').next().unwrap_or(rest).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_at_line_names_table_and_key() {
        let text =
            "a = 1\n[safety]\ndry_run = true\n[[rule]]\nname = \"x\"\n[[rule]]\nname = \"y\n";
        assert_eq!(key_at_line(text, 1), "a");
        assert_eq!(key_at_line(text, 2), "safety");
        assert_eq!(key_at_line(text, 3), "safety.dry_run");
        assert_eq!(key_at_line(text, 5), "rule[0].name");
        assert_eq!(key_at_line(text, 6), "rule[1]");
        assert_eq!(key_at_line(text, 7), "rule[1].name");
    }

    #[test]
    fn key_at_line_without_key_is_the_table() {
        assert_eq!(key_at_line("[safety]\n= 3\n", 2), "safety");
        assert_eq!(key_at_line("= 3\n", 1), "");
    }
}
