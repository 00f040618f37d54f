//! `patrol report`: the last run of each tenant, or one kept run, from its state directory,
//! in any format.
//!
//! The command reads `<state>/<tenant>/reports/last.json`, which every run except a
//! forecast writes, or with `--run ID` the report that run `ID` kept, and renders it
//! without calling the API, so it works when the tenant is down and never needs a secret.
//! Runs store only their JSON report, so the table, CSV and the Markdown review pack are
//! rendered here. `--owner` keeps the tokens of one owner; the counts are then those of
//! that owner's tokens.
//!
//! Exit codes: 0 when every selected tenant has a report, 66 (`EX_NOINPUT`) when one has
//! none yet or no selected tenant keeps run `ID`, 65 (`EX_DATAERR`) when one cannot be
//! read, and 64, 74 and 78 as elsewhere.

use std::io::Write;
use std::path::PathBuf;

use clap::ValueEnum;

use super::exit;
use crate::audit::Run;
use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::state::reports::{KEPT_RUNS, kept_runs, read_last_report, read_run_report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
    Markdown,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Policy file; it names the tenants and the state directory.
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_PATH, value_name = "FILE")]
    pub config: PathBuf,
    /// Show only this tenant (its `name` in the policy file).
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
    /// Show only the tokens of this owner (identity id).
    #[arg(long, value_name = "ID")]
    pub owner: Option<String>,
    /// Show this kept run instead of the last one (its `run_id`, as in the JSON report and
    /// the `run finished` log line).
    #[arg(long = "run", value_name = "RUN_ID")]
    pub run_id: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
    /// State directory, overriding `[state] dir`.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// The policy file and the tenants a command works on.
pub(super) struct Selection {
    pub config: Config,
    pub tenants: Vec<String>,
}

/// Loads the policy file and picks the tenants: `tenant` alone, or all of them. Logs the
/// problem and returns the exit code when the file is invalid or the tenant unknown.
pub(super) fn select_tenants(
    config_path: &std::path::Path,
    tenant: Option<&str>,
    state_dir: Option<&std::path::Path>,
) -> Result<Selection, u8> {
    let mut config = Config::load(config_path).map_err(|error| {
        tracing::error!("{error}");
        exit::CONFIG
    })?;
    if let Some(dir) = state_dir {
        config.state_dir = dir.to_owned();
    }
    let tenants = match tenant {
        Some(name) if config.tenant(name).is_some() => vec![name.to_owned()],
        Some(name) => {
            let known: Vec<&str> = config.tenants.iter().map(|t| t.name.as_str()).collect();
            tracing::error!(
                "no tenant named {name:?} in {}; configured: {}",
                config_path.display(),
                known.join(", ")
            );
            return Err(exit::USAGE);
        }
        None => config.tenants.iter().map(|t| t.name.clone()).collect(),
    };
    Ok(Selection { config, tenants })
}

/// Runs the command and returns the exit code.
pub fn run(args: &ReportArgs, out: &mut dyn Write) -> u8 {
    let selection = match select_tenants(
        &args.config,
        args.tenant.as_deref(),
        args.state_dir.as_deref(),
    ) {
        Ok(selection) => selection,
        Err(code) => return code,
    };

    let loaded = match &args.run_id {
        Some(run_id) => load_kept_run(&selection, run_id).map(|run| vec![Ok(run)]),
        None => Ok(selection
            .tenants
            .iter()
            .map(|tenant| load_last_run(&selection.config, tenant))
            .collect()),
    };
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };

    let mut worst = exit::OK;
    let mut runs = Vec::new();
    for result in loaded {
        match result {
            Ok(mut run) => {
                if let Some(owner) = &args.owner {
                    run.tokens
                        .retain(|result| result.token.owner.id.as_deref() == Some(owner));
                    run.recovered
                        .retain(|entry| entry.token.owner.id.as_deref() == Some(owner));
                    run.listing.listed = run.tokens.len();
                    run.listing.judged = run.tokens.len();
                }
                runs.push(run);
            }
            Err(code) => worst = exit::worst(worst, code),
        }
    }

    let written = render(&selection.config, &runs, args.format, out).and_then(|()| out.flush());
    if let Err(error) = written {
        return exit::worst(worst, exit::output_error(&error, "the report"));
    }
    worst
}

fn load_last_run(config: &Config, tenant: &str) -> Result<Run, u8> {
    let dir = config.state_dir.join(tenant);
    let bytes = match read_last_report(&dir) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            tracing::error!(
                tenant,
                "no run report in {}: run `patrol audit` first (a forecast with --as-of writes none)",
                dir.display()
            );
            return Err(exit::NOT_FOUND);
        }
        Err(error) => {
            tracing::error!(tenant, "{error}");
            return Err(exit::IO_ERROR);
        }
    };
    crate::report::run_from_json(&bytes).map_err(|error| {
        tracing::error!(
            tenant,
            "cannot read the last run report of tenant {tenant}: {error}"
        );
        exit::DATA_ERROR
    })
}

/// Loads the report of run `run_id` from the first selected tenant that keeps it. Run ids
/// end in a random part, so at most one tenant has a given run.
fn load_kept_run(selection: &Selection, run_id: &str) -> Result<Run, u8> {
    let mut kept_lists = Vec::new();
    for tenant in &selection.tenants {
        let dir = selection.config.state_dir.join(tenant);
        let bytes = match read_run_report(&dir, run_id) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                if let Ok(runs) = kept_runs(&dir)
                    && !runs.is_empty()
                {
                    kept_lists.push(format!(
                        "Kept runs of {tenant}, newest first: {}.",
                        newest_runs(&runs)
                    ));
                }
                continue;
            }
            Err(error) => {
                tracing::error!(tenant = %tenant, "{error}");
                return Err(exit::IO_ERROR);
            }
        };
        return crate::report::run_from_json(&bytes).map_err(|error| {
            tracing::error!(
                tenant = %tenant,
                "cannot read the report of run {run_id} of tenant {tenant}: {error}"
            );
            exit::DATA_ERROR
        });
    }
    let kept = if kept_lists.is_empty() {
        "No tenant keeps a run yet.".to_owned()
    } else {
        kept_lists.join(" ")
    };
    tracing::error!(
        "report of run {run_id:?} not found in {}. Pass one of the kept ids to --run, or \
         leave out --run for the last run. {kept} Only the newest {KEPT_RUNS} runs of a tenant \
         are kept, and a run's id is in its JSON report and in its `run finished` log line.",
        selection.config.state_dir.display()
    );
    Err(exit::NOT_FOUND)
}

/// Formats the ids of the newest kept runs, newest first. `runs` lists them oldest first.
fn newest_runs(runs: &[String]) -> String {
    const LISTED: usize = 10;
    let mut text = runs
        .iter()
        .rev()
        .take(LISTED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if runs.len() > LISTED {
        text.push_str(&format!(" and {} older", runs.len() - LISTED));
    }
    text
}

fn render(
    config: &Config,
    runs: &[Run],
    format: ReportFormat,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if format == ReportFormat::Csv {
        return crate::report::render_csv(runs, out);
    }
    for (index, run) in runs.iter().enumerate() {
        match format {
            ReportFormat::Table => {
                if index > 0 {
                    writeln!(out)?;
                }
                crate::report::render_table(run, out)?;
            }
            ReportFormat::Json => crate::report::render_json(run, out)?,
            ReportFormat::Markdown => {
                if index > 0 {
                    writeln!(out)?;
                }
                crate::report::render_markdown(run, Some(&config.schedule), out)?;
            }
            ReportFormat::Csv => unreachable!("CSV is written above"),
        }
    }
    Ok(())
}
