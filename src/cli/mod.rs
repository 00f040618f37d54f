//! Command-line parsing, exit codes, logging set-up and the wiring of each subcommand.
//!
//! Nothing here decides anything about tokens: each subcommand module loads what it needs,
//! calls the library, and maps the result to an exit code from [`exit`].

pub mod audit;
pub mod check_config;
pub mod demo;
pub mod exit;
pub mod history;
pub mod report;
pub mod run;
pub mod sim;
pub mod verify_log;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::logging::{self, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "patrol",
    version,
    about = "Audits the personal access tokens of SailPoint ISC tenants and removes the stale ones.",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr; auto means journald under systemd, else text. Overrides
    /// `[log] format`.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Audit each tenant once: list, judge, report, and delete with --apply.
    Audit(audit::AuditArgs),
    /// Validate the policy file and print the effective policy; makes no network call.
    CheckConfig(check_config::CheckConfigArgs),
    /// Run one dry-run audit of a simulated tenant with a bundled token set.
    Demo(demo::DemoArgs),
    /// Show what happened to a token, or in a tenant, over time, from the audit log.
    History(history::HistoryArgs),
    /// Show each tenant's last run, or a kept run, from the state directory; makes no network
    /// call.
    Report(report::ReportArgs),
    /// Run the daemon: audit on the schedule, serve /metrics, reload on SIGHUP.
    Run(run::RunArgs),
    /// Serve a simulated ISC tenant on loopback; the first stdout line is its base URL.
    Sim(sim::SimArgs),
    /// Check the hash chain of each tenant's audit log and name the first broken record.
    VerifyLog(verify_log::VerifyLogArgs),
}

/// Parses the command line, runs the subcommand, and returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    if let Command::Run(args) = &cli.command {
        // The daemon sets up logging after reading [log] from its configuration.
        return ExitCode::from(run::run(args, cli.log_format));
    }
    let (level, format) = log_settings(&cli.command);
    logging::init(cli.log_format.or(format).unwrap_or(LogFormat::Auto), &level);
    // Commands that only read files run without the async runtime, and an audit starts
    // the runtime its runs need once it has read the policy.
    let code = match cli.command {
        Command::Audit(args) => audit::run(args),
        Command::CheckConfig(args) => check_config::run(&args, &mut std::io::stdout().lock()),
        Command::History(args) => history::run(&args, &mut std::io::stdout().lock()),
        Command::Report(args) => report::run(&args, &mut std::io::stdout().lock()),
        Command::VerifyLog(args) => verify_log::run(&args, &mut std::io::stdout().lock()),
        Command::Demo(args) => on_runtime(demo::run(args)),
        Command::Sim(args) => on_runtime(async {
            match sim::run(args).await {
                Ok(()) => exit::OK,
                Err(error) => {
                    tracing::error!("{error:#}");
                    sim::exit_code(&error)
                }
            }
        }),
        Command::Run(_) => unreachable!("run starts its own runtime"),
    };
    ExitCode::from(code)
}

/// Runs `command` to its end on a multi-threaded runtime and returns its exit code.
fn on_runtime(command: impl std::future::Future<Output = u8>) -> u8 {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(command),
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            exit::SOFTWARE
        }
    }
}

/// Reads `[log] level` and `format` from the policy file a command names, before the file
/// is validated, so that the command logs as configured. A file that cannot be read, or a
/// value that is not valid, leaves the default; the command's own validation reports it.
fn log_settings(command: &Command) -> (String, Option<LogFormat>) {
    let path = match command {
        Command::Audit(args) => &args.config,
        Command::CheckConfig(args) => &args.config,
        Command::History(args) => &args.config,
        Command::Report(args) => &args.config,
        Command::VerifyLog(args) => &args.config,
        _ => return ("info".to_owned(), None),
    };
    let table: Option<toml::Table> = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| toml::from_str(&text).ok());
    let log = table
        .as_ref()
        .and_then(|table| table.get("log"))
        .and_then(|log| log.as_table());
    let level = log
        .and_then(|log| log.get("level"))
        .and_then(|level| level.as_str())
        .filter(|level| tracing_subscriber::EnvFilter::try_new(level).is_ok())
        .unwrap_or("info")
        .to_owned();
    let format = log
        .and_then(|log| log.get("format"))
        .and_then(|format| format.as_str())
        .and_then(LogFormat::parse);
    (level, format)
}
