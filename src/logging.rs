//! Logging set-up for every command: where log records go, in which format, at which level.
//!
//! Records go to one of three outputs. Under systemd, when `JOURNAL_STREAM` names the
//! file that stderr is, records are sent to journald with native fields (`TENANT=acme`,
//! `PRIORITY=` from the level), so `journalctl -u patrol TENANT=acme` works. Otherwise
//! they are human-readable lines on stderr, or one JSON object per line with
//! `--log-format json`. The level is `RUST_LOG` when it is set, else the `[log] level` of
//! the policy file, else `info`. A [`LogHandle`] changes it later (on SIGHUP), unless
//! `RUST_LOG` fixed it. The output is chosen once per process.
//!
//! Which events are logged, and never with a secret, is the callers' business.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// Destination and format of the log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    // Plain comments, not doc comments: clap would print each as a paragraph of --help.
    // journald when stderr is connected to the journal, otherwise text.
    Auto,
    // Human-readable lines on stderr.
    Text,
    // One JSON object per line on stderr.
    Json,
}

impl LogFormat {
    /// Parses the `[log] format` value of the policy file.
    pub fn parse(text: &str) -> Option<LogFormat> {
        match text.trim() {
            "auto" => Some(LogFormat::Auto),
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// Checks a level such as `info`, `debug` or `patrol=debug,warn` (the `RUST_LOG` syntax).
/// Unlike `RUST_LOG`, a bare word must be a level: `RUST_LOG=inof` would enable every
/// event of a target named `inof`, which in a policy file is a typo.
pub fn parse_level(text: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let text = text.trim();
    let invalid = |reason: String| {
        format!(
            "invalid log level \"{text}\" ({reason}); expected error, warn, info, debug or \
             trace, or a RUST_LOG filter such as \"patrol=debug,info\""
        )
    };
    for directive in text.split(',').map(str::trim) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(invalid(format!("\"{level}\" is not a level")));
        }
    }
    EnvFilter::try_new(text)
        .map(drop)
        .map_err(|error| invalid(error.to_string()))
}

/// Changes the level of the installed subscriber.
#[derive(Debug)]
pub struct LogHandle {
    filter: Option<reload::Handle<EnvFilter, Registry>>,
    /// Whether `RUST_LOG` set the level, which then wins over the policy file.
    fixed_by_env: bool,
}

impl LogHandle {
    /// Sets the level from the policy file, unless `RUST_LOG` fixed it. Returns whether the
    /// level changed.
    pub fn set_level(&self, level: &str) -> Result<bool, String> {
        let Some(handle) = &self.filter else {
            return Ok(false);
        };
        if self.fixed_by_env {
            return Ok(false);
        }
        let filter = EnvFilter::try_new(level.trim()).map_err(|error| error.to_string())?;
        let changed = handle
            .with_current(|current| current.to_string() != filter.to_string())
            .unwrap_or(true);
        if changed {
            handle.reload(filter).map_err(|error| error.to_string())?;
        }
        Ok(changed)
    }
}

/// Installs the global subscriber. `format` comes from `--log-format` or `[log] format`;
/// `level` from `[log] level` and is overridden by `RUST_LOG`. A second call does nothing
/// and returns a handle that changes nothing.
pub fn init(format: LogFormat, level: &str) -> LogHandle {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty());
    let filter = match &from_env {
        Some(value) => EnvFilter::try_new(value).unwrap_or_else(|_| EnvFilter::new("info")),
        None => EnvFilter::try_new(level.trim()).unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let (filter, handle) = reload::Layer::new(filter);

    let journald = match format {
        // Without a prefix, fields keep their names in upper case (TENANT=acme); none of
        // patrol's field names is one of journald's own.
        LogFormat::Auto if stderr_is_journal() => tracing_journald::layer()
            .ok()
            .map(|layer| layer.with_field_prefix(None)),
        _ => None,
    };
    let output = match (format, &journald) {
        (_, Some(_)) => LogFormat::Auto,
        (LogFormat::Json, None) => LogFormat::Json,
        _ => LogFormat::Text,
    };
    let text = (output == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
    });
    let json = (output == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
    });

    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(text)
        .with(json)
        .try_init()
        .is_ok();
    LogHandle {
        filter: installed.then_some(handle),
        fixed_by_env: from_env.is_some(),
    }
}

/// Checks whether stderr is the stream that systemd connected to the journal. systemd sets
/// `JOURNAL_STREAM=<device>:<inode>` for that stream. A child whose stderr was redirected
/// inherits the variable, so the file itself is compared.
fn stderr_is_journal() -> bool {
    let Some(expected) = std::env::var("JOURNAL_STREAM")
        .ok()
        .and_then(|value| parse_journal_stream(&value))
    else {
        return false;
    };
    stderr_identity().is_some_and(|identity| identity == expected)
}

/// Parses `JOURNAL_STREAM`, which is `<device>:<inode>` in decimal.
fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (device, inode) = value.trim().split_once(':')?;
    Some((device.parse().ok()?, inode.parse().ok()?))
}

/// Returns the device and inode of the file open as stderr.
fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;

    let duplicate = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let metadata = std::fs::File::from(duplicate).metadata().ok()?;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_is_device_and_inode() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream(" 64769:2\n"), Some((64769, 2)));
        assert_eq!(parse_journal_stream("8"), None);
        assert_eq!(parse_journal_stream("8:x"), None);
        assert_eq!(parse_journal_stream(""), None);
    }

    #[test]
    fn stderr_identity_is_the_file_behind_descriptor_two() {
        use std::os::unix::fs::MetadataExt;

        let behind = std::fs::metadata("/proc/self/fd/2").expect("procfs is mounted");
        assert_eq!(stderr_identity(), Some((behind.dev(), behind.ino())));
    }

    #[test]
    fn log_format_names() {
        assert_eq!(LogFormat::parse("auto"), Some(LogFormat::Auto));
        assert_eq!(LogFormat::parse("text"), Some(LogFormat::Text));
        assert_eq!(LogFormat::parse(" json "), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("journald"), None);
    }

    #[test]
    fn level_accepts_rust_log_syntax() {
        assert!(parse_level("info").is_ok());
        assert!(parse_level("DEBUG").is_ok());
        assert!(parse_level("patrol=debug,warn").is_ok());
        let error = parse_level("patrol=loud").unwrap_err();
        assert!(
            error.contains(r#"invalid log level "patrol=loud""#),
            "{error}"
        );
        assert!(error.contains(r#""loud" is not a level"#), "{error}");
    }

    #[test]
    fn level_rejects_a_bare_target_name() {
        let error = parse_level("inof").unwrap_err();
        assert!(error.contains(r#""inof" is not a level"#), "{error}");
        assert!(parse_level("").is_err());
    }
}
