//! The worker of one tenant: waits for the scheduler's trigger, runs one audit with the
//! configuration and client current at that moment, and records the result.
//!
//! Each tenant has its own worker task and its own [`Client`], with its own rate budget
//! and token cache kept across runs, so a slow or failing tenant delays no other. A
//! reload takes effect at the next run, because the worker reads the configuration when a
//! run starts. On stop the run in progress stops starting deletes (see
//! [`RunOptions::stop`]), finishes the ones in flight, saves the state, and the worker
//! ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::notify::Notifier;
use crate::audit::{Run, RunError, RunOptions, run_tenant};
use crate::config::Config;
use crate::isc::{Client, ClientSettings};
use crate::metrics::{Metrics, RunResult};
use crate::policy::Action;
use crate::safety::Outcome;
use crate::schedule::Trigger;

/// Deletes in flight at once within one run, as in `patrol audit`; the client's pacing
/// still bounds the request rate.
const DELETE_CONCURRENCY: usize = 8;

/// A configuration and the clients built for it, swapped as a whole on reload.
#[derive(Debug)]
pub struct Generation {
    pub config: Arc<Config>,
    /// Each tenant's client and the settings it was built with.
    pub clients: BTreeMap<String, (ClientSettings, Client)>,
}

/// State that every worker shares with the daemon.
#[derive(Debug)]
pub struct Shared {
    pub generation: watch::Receiver<Arc<Generation>>,
    pub metrics: Arc<Metrics>,
    pub notifier: Notifier,
    /// The last `STATUS=` part of each tenant.
    pub status: Mutex<BTreeMap<String, String>>,
    pub stop: watch::Receiver<bool>,
}

impl Shared {
    /// Sends the status of every tenant as one line.
    pub fn publish_status(&self) {
        let line = {
            let status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
            status.values().cloned().collect::<Vec<_>>().join("; ")
        };
        if !line.is_empty() {
            self.notifier.status(&line);
        }
    }
}

/// Runs the tenant's audits until its trigger closes or the daemon stops.
pub async fn run_worker(tenant: String, trigger: Trigger, shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    loop {
        let guard = tokio::select! {
            guard = trigger.started() => match guard {
                Some(guard) => guard,
                None => break,
            },
            _ = stop.wait_for(|stopping| *stopping) => break,
        };
        if *stop.borrow() {
            break;
        }

        let generation = Arc::clone(&shared.generation.borrow());
        let (Some(settings), Some((_, client))) = (
            generation.config.tenant(&tenant),
            generation.clients.get(&tenant),
        ) else {
            // Removed by a reload after the scheduler fired.
            break;
        };
        let config = &generation.config;
        let options = RunOptions {
            now: whole_seconds_now(),
            forecast: false,
            dry_run: config.safety.dry_run,
            delete_concurrency: DELETE_CONCURRENCY,
            stop: Some(shared.stop.clone()),
        };

        let started = tokio::time::Instant::now();
        let result = run_tenant(config, settings, client, &options).await;
        let duration = started.elapsed();
        let ended = Utc::now();

        if let Err(error) = &result {
            tracing::error!(tenant = %tenant, result = RunResult::of(&result).as_str(), "run failed: {error}");
        }
        shared.metrics.record_run(&tenant, &result, ended, duration);
        shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tenant.clone(), status_of(&tenant, &result, ended));
        shared.publish_status();
        drop(guard);
    }
    tracing::debug!(tenant = %tenant, "worker stopped");
}

/// Formats the `STATUS=` part of a run, such as `acme: 25 listed, 5 to report, 13 to delete, 0
/// deleted, 0 failed (dry run) at 03:15:04 UTC`.
pub fn status_of(tenant: &str, result: &Result<Run, RunError>, ended: DateTime<Utc>) -> String {
    let at = ended.format("%Y-%m-%d %H:%M:%S UTC");
    match result {
        Ok(run) => {
            let tally = run.tally();
            let mut line = format!(
                "{tenant}: {} listed, {} to report, {} to delete, {} deleted, {} failed",
                run.listing.listed,
                tally.verdict(Action::Report),
                tally.verdict(Action::Delete),
                tally.outcome(Outcome::Deleted) + tally.outcome(Outcome::Gone),
                tally.outcome(Outcome::Failed),
            );
            if let Some(breaker) = &run.breaker {
                line.push_str(&format!(", breaker {} tripped", breaker.kind()));
            }
            if run.dry_run {
                line.push_str(" (dry run)");
            }
            line.push_str(&format!(" at {at}"));
            line
        }
        Err(_) => format!(
            "{tenant}: run failed ({}) at {at}",
            RunResult::of(result).as_str()
        ),
    }
}

/// Now, to the second, like the instants of `patrol audit`.
fn whole_seconds_now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isc::IscError;

    #[test]
    fn failed_run_status_names_the_result() {
        let ended = DateTime::from_timestamp(1_796_181_304, 0).unwrap();
        let failure: Result<Run, RunError> = Err(RunError::Unreachable {
            tenant: "acme".to_owned(),
            source: IscError::Network {
                message: "connection refused".to_owned(),
            },
        });
        assert_eq!(
            status_of("acme", &failure, ended),
            "acme: run failed (unreachable) at 2026-12-02 03:15:04 UTC"
        );
    }
}
