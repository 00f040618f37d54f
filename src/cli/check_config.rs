//! `patrol check-config`: validates the policy file and prints the effective policy.
//!
//! The command makes no network call. It reads and validates the file, checks that each
//! tenant's client secret can be read (the value is dropped at once and never printed),
//! and prints the policy in plain words. Everything goes to the writer it is given, so the
//! command can be tested without a terminal. Exit codes follow sysexits(3):
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | the file is valid and every client secret is present |
//! | 66 (`EX_NOINPUT`) | the file does not exist or cannot be read |
//! | 74 (`EX_IOERR`) | the output could not be written |
//! | 78 (`EX_CONFIG`) | the file is invalid, or a client secret is missing, unreadable or empty |

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::config::duration::parse_instant;
use crate::config::{self, Config, ConfigError, Problem};
use crate::report::policy_text;

/// The file is valid and every client secret is present.
pub const EXIT_VALID: u8 = 0;
/// The file does not exist or cannot be read (sysexits `EX_NOINPUT`).
pub const EXIT_NO_INPUT: u8 = 66;
/// Writing the output failed (sysexits `EX_IOERR`).
pub const EXIT_IO_ERROR: u8 = 74;
/// The file is invalid or a client secret is missing (sysexits `EX_CONFIG`).
pub const EXIT_INVALID: u8 = 78;

#[derive(Debug, Clone, clap::Args)]
pub struct CheckConfigArgs {
    /// Policy file to check.
    #[arg(long, value_name = "PATH", default_value = config::DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,

    /// Show the policy as it applies at instant T (RFC 3339, or YYYY-MM-DD for midnight
    /// UTC): cutoffs, the next runs after T and which exemptions have expired by then.
    /// Defaults to now.
    #[arg(long, value_name = "T", value_parser = parse_as_of)]
    pub as_of: Option<DateTime<Utc>>,
}

fn parse_as_of(text: &str) -> Result<DateTime<Utc>, String> {
    parse_instant(text)
}

/// Runs the command and returns its exit code.
pub fn run(args: &CheckConfigArgs, out: &mut dyn Write) -> u8 {
    let now = args.as_of.unwrap_or_else(Utc::now);
    check(args, now, out).unwrap_or(EXIT_IO_ERROR)
}

fn check(args: &CheckConfigArgs, now: DateTime<Utc>, out: &mut dyn Write) -> std::io::Result<u8> {
    let path = &args.config;
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(ConfigError::Read { source, .. })
            if source.kind() != std::io::ErrorKind::InvalidData =>
        {
            writeln!(
                out,
                "{}: cannot read the configuration file: {source}; pass another one with \
                 --config PATH",
                path.display()
            )?;
            return Ok(EXIT_NO_INPUT);
        }
        Err(ConfigError::Read { .. }) => {
            writeln!(
                out,
                "{}: invalid configuration: not UTF-8 text",
                path.display()
            )?;
            return Ok(EXIT_INVALID);
        }
        Err(error) => {
            write_problems(out, path, error.problems())?;
            return Ok(EXIT_INVALID);
        }
    };

    let (missing, unchecked) = config.check_secrets();
    if !missing.is_empty() {
        write_problems(out, path, &missing)?;
        return Ok(EXIT_INVALID);
    }

    if unchecked.is_empty() {
        writeln!(
            out,
            "{}: valid, and the client secret of every tenant is present (values not shown).\n",
            path.display()
        )?;
    } else {
        writeln!(
            out,
            "{}: valid. The systemd credentials of {} can be read only inside the service \
             ($CREDENTIALS_DIRECTORY is not set here), so they were not checked; every other \
             client secret is present (values not shown).\n",
            path.display(),
            unchecked.join(", ")
        )?;
    }
    for exemption in config
        .exemptions
        .iter()
        .filter(|e| e.has_placeholder_reason())
    {
        writeln!(
            out,
            "{}: warning: the exemption {} keeps the review pack's placeholder reason; \
             replace it with why the token is still needed and who agreed.\n",
            path.display(),
            exemption.selector()
        )?;
    }
    write!(out, "{}", policy_text::render(&config, now))?;
    Ok(EXIT_VALID)
}

fn write_problems(
    out: &mut dyn Write,
    path: &std::path::Path,
    problems: &[Problem],
) -> std::io::Result<()> {
    for problem in problems {
        writeln!(out, "{}", problem.display_in(path))?;
    }
    writeln!(
        out,
        "{}: invalid configuration: {} problem{}",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    )
}
