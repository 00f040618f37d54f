//! `patrol verify-log`: checks the hash chain of each tenant's audit log, rotated files
//! included, and names the first broken record.
//!
//! Writes one line per tenant to stdout. Exit codes: 0 when every selected log is intact,
//! 65 (`EX_DATAERR`) when a record is broken or the log of a tenant with state is missing,
//! 74 (`EX_IOERR`) when a file cannot be read, and 64 and 78 as elsewhere. A tenant that
//! was never audited has no log and passes.

use std::io::Write;
use std::path::PathBuf;

use super::exit;
use super::report::select_tenants;
use crate::config::DEFAULT_CONFIG_PATH;
use crate::state::{Verification, verify};

#[derive(Debug, clap::Args)]
pub struct VerifyLogArgs {
    /// Policy file; it names the tenants and the state directory.
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_PATH, value_name = "FILE")]
    pub config: PathBuf,
    /// Verify only this tenant's log (its `name` in the policy file).
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
    /// State directory, overriding `[state] dir`.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Runs the command and returns the exit code.
pub fn run(args: &VerifyLogArgs, out: &mut dyn Write) -> u8 {
    let selection = match select_tenants(
        &args.config,
        args.tenant.as_deref(),
        args.state_dir.as_deref(),
    ) {
        Ok(selection) => selection,
        Err(code) => return code,
    };

    let mut worst = exit::OK;
    for tenant in &selection.tenants {
        let dir = selection.config.state_dir.join(tenant);
        let (code, line) = match verify(&dir) {
            Ok(verification) => describe(tenant, &dir, &verification),
            Err(error) => (exit::IO_ERROR, format!("{tenant}: cannot verify: {error}")),
        };
        worst = exit::worst(worst, code);
        if let Err(error) = writeln!(out, "{line}") {
            return exit::worst(worst, exit::output_error(&error, "the result"));
        }
    }
    worst
}

/// Describes one tenant's verification: its exit code and its line of output.
fn describe(tenant: &str, dir: &std::path::Path, verification: &Verification) -> (u8, String) {
    if let Some(broken) = &verification.broken {
        return (exit::DATA_ERROR, format!("{tenant}: broken at {broken}"));
    }
    if verification.files.is_empty() {
        if dir.join("state.json").exists() {
            return (
                exit::DATA_ERROR,
                format!(
                    "{tenant}: the audit log is missing from {}, although the tenant has a state \
                     file: it was removed or moved",
                    dir.display()
                ),
            );
        }
        return (exit::OK, format!("{tenant}: no audit log yet"));
    }

    let mut line = format!(
        "{tenant}: intact, {} records in {} file{}",
        verification.records,
        verification.files.len(),
        if verification.files.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    if let Some(hash) = &verification.last_hash {
        line.push_str(&format!(", last hash {hash}"));
    }
    if verification.incomplete_tail > 0 {
        line.push_str(&format!(
            "; the last {} bytes of {} are an unfinished record and were not checked",
            verification.incomplete_tail,
            verification
                .files
                .last()
                .map_or(String::new(), |path| path.display().to_string())
        ));
    }
    (exit::OK, line)
}
