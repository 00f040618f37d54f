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
pub mod sim;
pub mod verify_log;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Show the last run of each tenant from the state directory; makes no network call.
    Report(report::ReportArgs),
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
    init_logging();
    // Commands that only read files run without the async runtime.
    let file_only = match &cli.command {
        Command::CheckConfig(args) => Some(check_config::run(args, &mut std::io::stdout().lock())),
        Command::History(args) => Some(history::run(args, &mut std::io::stdout().lock())),
        Command::Report(args) => Some(report::run(args, &mut std::io::stdout().lock())),
        Command::VerifyLog(args) => Some(verify_log::run(args, &mut std::io::stdout().lock())),
        _ => None,
    };
    if let Some(code) = file_only {
        return ExitCode::from(code);
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Audit(args) => audit::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::CheckConfig(_)
            | Command::History(_)
            | Command::Report(_)
            | Command::VerifyLog(_) => {
                unreachable!("file-only commands run before the runtime starts")
            }
            Command::Sim(args) => match sim::run(args).await {
                Ok(()) => exit::OK,
                Err(error) => {
                    tracing::error!("{error:#}");
                    exit::SOFTWARE
                }
            },
        }
    });
    ExitCode::from(code)
}

/// Sends logs to stderr, at the level of `RUST_LOG` or INFO.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
