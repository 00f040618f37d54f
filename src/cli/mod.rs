//! Command-line parsing, exit codes and the wiring of each subcommand.

pub mod check_config;
pub mod sim;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "patrol", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a simulated ISC tenant on loopback; the first stdout line is its base URL.
    Sim(sim::SimArgs),
    /// Validate the policy file and print the effective policy; makes no network call.
    CheckConfig(check_config::CheckConfigArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::CheckConfig(args) = &cli.command {
        return ExitCode::from(check_config::run(args, &mut std::io::stdout().lock()));
    }
    let runtime = tokio::runtime::Runtime::new().expect("failed to start the tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sim(args) => sim::run(args).await,
            Command::CheckConfig(_) => unreachable!("handled before the runtime starts"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}
