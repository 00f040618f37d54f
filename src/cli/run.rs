//! `patrol run`: load the configuration, set up logging from it, and run the daemon on a
//! small runtime until SIGTERM.
//!
//! The runtime has two worker threads. One would be enough, but a run appends to the audit
//! log with a synchronous `fsync` per delete, and the second thread keeps the scheduler
//! loop, the watchdog and `/metrics` responsive meanwhile. Idle, both threads sleep until
//! the next timer or connection.

use std::path::PathBuf;
use std::time::Duration;

use super::exit;
use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::logging::{self, LogFormat};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Policy file.
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_PATH, value_name = "FILE")]
    pub config: PathBuf,
}

/// Runs the daemon and returns its exit code. `log_format` is `--log-format`, which wins
/// over `[log] format`.
pub fn run(args: &RunArgs, log_format: Option<LogFormat>) -> u8 {
    // SIGHUP reads the file again, so a relative path must not depend on a later cwd.
    let path = std::path::absolute(&args.config).unwrap_or_else(|_| args.config.clone());
    let loaded = Config::load(&path);
    let log_settings = loaded
        .as_ref()
        .map(|config| config.log.clone())
        .unwrap_or_default();
    let log = logging::init(
        log_format.unwrap_or(log_settings.format),
        &log_settings.level,
    );
    let config = match loaded {
        Ok(config) => config,
        Err(error) => {
            tracing::error!("{error}");
            return exit::CONFIG;
        }
    };
    config.warn_about_placeholder_reasons();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .thread_name("patrol")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return exit::SOFTWARE;
        }
    };
    let code = runtime.block_on(crate::daemon::run(config, log));
    // Blocking tasks (a metrics rendering, a DNS lookup) get one second to end, then the
    // process exits anyway.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}
