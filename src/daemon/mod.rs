//! `patrol run`: the long-running daemon that audits every tenant on the schedule.
//!
//! Start-up, in order: signal handlers (so an early SIGHUP cannot kill the process), the
//! tenants' secrets and clients, the metrics listener and one worker per tenant, then
//! `READY=1`, then the HTTP server and the scheduler loop, whose first `WATCHDOG=1` thus
//! follows `READY=1`. An unreadable secret, an invalid client setting or a listen address
//! that cannot be bound exits with EX_CONFIG before `READY=1`, and the log names the cause.
//!
//! SIGHUP reloads: the file is read and validated and the secrets are read again. A valid
//! configuration replaces the running one between runs (`RELOADING=1`, then `READY=1`),
//! keeping each tenant's client when its connection settings did not change. An invalid
//! one is rejected with the error logged and counted, and the old one keeps running.
//! `[metrics] listen` and `[log] format` apply only at the next start.
//!
//! SIGTERM or SIGINT stops: `STOPPING=1`, no new run or delete starts, the deletes in
//! flight finish and are recorded, each run saves its state, and the process exits 0.
//! If the runs have not ended after [`DRAIN_TIMEOUT`], it exits with EX_TEMPFAIL instead,
//! so that systemd's `TimeoutStopSec=30s` never has to kill it.
//!
//! The schedule itself is [`crate::schedule`]'s, the endpoint [`crate::http`]'s and the
//! series [`crate::metrics`]'.

mod notify;
mod worker;

pub use notify::Notifier;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cli::exit;
use crate::config::{Config, Tenant};
use crate::http::{self, AppState, Health};
use crate::isc::{Client, ClientSettings};
use crate::logging::LogHandle;
use crate::metrics::Metrics;
use crate::schedule::{JobSpec, Observer, Scheduler, SystemClock, Trigger};
use worker::{Generation, Shared};

/// Maximum time the scheduler loop sleeps without a watchdog. It bounds how late a run
/// starts after a suspend or a clock jump, and sets how stale `/healthz` may get.
pub const DEFAULT_WAKE_INTERVAL: Duration = Duration::from_secs(60);

/// Time the runs in progress get to finish after SIGTERM.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// Runs the daemon until SIGTERM or SIGINT and returns the exit code.
pub async fn run(config: Config, log: LogHandle) -> u8 {
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(error) => {
            tracing::error!(%error, "cannot install the signal handlers");
            return exit::SOFTWARE;
        }
    };

    let clients = match connect(&config, None) {
        Ok(clients) => clients,
        Err(problems) => {
            tracing::error!("{problems}");
            return exit::CONFIG;
        }
    };
    let listener = match TcpListener::bind(config.metrics.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(
                address = %config.metrics.listen,
                %error,
                "cannot listen for metrics scrapes; change [metrics] listen or free the address"
            );
            return exit::CONFIG;
        }
    };
    let address = listener.local_addr().unwrap_or(config.metrics.listen);

    let notifier = Notifier::from_env();
    let wake_interval = wake_interval(notifier.watchdog_timeout());
    let health = Arc::new(Health::new(wake_interval));
    let metrics = Arc::new(Metrics::new(&config));
    for (name, (_, client)) in &clients {
        metrics.set_client(name, client.clone());
    }

    let config = Arc::new(config);
    let (stop, stop_receiver) = watch::channel(false);
    let (generation, generation_receiver) = watch::channel(Arc::new(Generation {
        config: Arc::clone(&config),
        clients,
    }));
    let shared = Arc::new(Shared {
        generation: generation_receiver,
        metrics: Arc::clone(&metrics),
        notifier: notifier.clone(),
        status: Mutex::default(),
        stop: stop_receiver.clone(),
    });

    let mut daemon = Daemon {
        generation,
        jobs: watch::channel(Vec::new()).0,
        triggers: BTreeMap::new(),
        workers: JoinSet::new(),
        shared,
        stop,
        log,
    };
    daemon.update_workers(&config);
    let jobs_receiver = daemon.jobs.subscribe();

    // Ready before the loop starts, so that its first WATCHDOG=1 and the status of a
    // run on start follow READY=1.
    health.set_ready(true);
    let status = format!(
        "watching {} tenant{}, no run yet",
        config.tenants.len(),
        if config.tenants.len() == 1 { "" } else { "s" }
    );
    notifier.ready(&status);
    tracing::info!(
        address = %address,
        tenants = config.tenants.len(),
        cron = %config.schedule.cron,
        timezone = %config.schedule.timezone,
        dry_run = config.safety.dry_run,
        watchdog_ms = notifier.watchdog_timeout().map(|timeout| timeout.as_millis() as u64),
        "patrol is running; metrics at http://{address}/metrics"
    );

    let server = tokio::spawn(http::serve(
        listener,
        AppState {
            metrics: Arc::clone(&metrics),
            health: Arc::clone(&health),
        },
    ));
    let observer = Arc::new(LoopObserver {
        health: Arc::clone(&health),
        notifier: notifier.clone(),
        metrics: Arc::clone(&metrics),
    });
    let scheduler = Scheduler::new(SystemClock, wake_interval, observer);
    let mut scheduler = tokio::spawn(scheduler.run(jobs_receiver, stop_receiver));

    let reason = loop {
        tokio::select! {
            _ = signals.hangup.recv() => daemon.reload(),
            _ = signals.terminate.recv() => break "SIGTERM",
            _ = signals.interrupt.recv() => break "SIGINT",
            ended = &mut scheduler => {
                tracing::error!(?ended, "the scheduler loop ended unexpectedly; stopping");
                daemon.stop.send_replace(true);
                server.abort();
                return exit::SOFTWARE;
            }
        }
    };

    health.set_ready(false);
    notifier.stopping("stopping: finishing the runs in progress");
    tracing::info!(
        signal = reason,
        "stopping: no new run or delete starts; the ones in progress finish"
    );
    let code = daemon.drain().await;
    server.abort();
    code
}

/// Returns the scheduler's wake interval, which is half the watchdog timeout when systemd
/// set one and never more than [`DEFAULT_WAKE_INTERVAL`].
fn wake_interval(watchdog: Option<Duration>) -> Duration {
    match watchdog {
        Some(timeout) => (timeout / 2).clamp(Duration::from_millis(1), DEFAULT_WAKE_INTERVAL),
        None => DEFAULT_WAKE_INTERVAL,
    }
}

/// The daemon's handles on its workers and channels.
struct Daemon {
    generation: watch::Sender<Arc<Generation>>,
    jobs: watch::Sender<Vec<JobSpec>>,
    triggers: BTreeMap<String, Trigger>,
    workers: JoinSet<()>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    log: LogHandle,
}

impl Daemon {
    /// Starts a worker for each new tenant, closes the triggers of the removed ones, and
    /// publishes the job list to the scheduler.
    fn update_workers(&mut self, config: &Config) {
        // Reap the workers of tenants removed earlier.
        while self.workers.try_join_next().is_some() {}
        self.triggers.retain(|name, trigger| {
            let keep = config.tenant(name).is_some();
            if !keep {
                trigger.close();
            }
            keep
        });
        self.shared
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|name, _| config.tenant(name).is_some());

        let mut specs = Vec::with_capacity(config.tenants.len());
        for tenant in &config.tenants {
            let trigger = self
                .triggers
                .entry(tenant.name.clone())
                .or_insert_with(|| {
                    let trigger = Trigger::new();
                    self.workers.spawn(worker::run_worker(
                        tenant.name.clone(),
                        trigger.clone(),
                        Arc::clone(&self.shared),
                    ));
                    trigger
                })
                .clone();
            specs.push(JobSpec {
                name: tenant.name.clone(),
                schedule: config.schedule.clone(),
                trigger,
            });
        }
        self.jobs.send_replace(specs);
    }

    /// Reads the policy file again and switches to it if it is valid.
    fn reload(&mut self) {
        let notifier = self.shared.notifier.clone();
        notifier.reloading();
        let current = Arc::clone(&self.generation.borrow());
        let path = current.config.path.clone();
        tracing::info!(path = %path.display(), "SIGHUP: reloading the configuration");

        let loaded = Config::load(&path)
            .map_err(|error| error.to_string())
            .and_then(|config| {
                let clients = connect(&config, Some(&current))?;
                Ok((config, clients))
            });
        let (config, clients) = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(
                    path = %path.display(),
                    "configuration reload rejected, the running configuration stays in use: {error}"
                );
                self.shared.metrics.record_reload(false);
                notifier.ready("reload rejected; running the previous configuration");
                return;
            }
        };

        config.warn_about_placeholder_reasons();
        let old = &current.config;
        if config.metrics.listen != old.metrics.listen {
            tracing::warn!(
                running = %old.metrics.listen,
                configured = %config.metrics.listen,
                "[metrics] listen changed; the new address applies at the next start"
            );
        }
        if config.log.format != old.log.format {
            tracing::warn!("[log] format changed; the new format applies at the next start");
        }
        match self.log.set_level(&config.log.level) {
            Ok(true) => tracing::info!(level = %config.log.level, "log level changed"),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "cannot change the log level"),
        }

        let metrics = Arc::clone(&self.shared.metrics);
        metrics.set_config(&config);
        for (name, (settings, client)) in &clients {
            let reused = current
                .clients
                .get(name)
                .is_some_and(|(old, _)| same_settings(old, settings));
            if !reused {
                metrics.set_client(name, client.clone());
            }
        }

        let config = Arc::new(config);
        self.generation.send_replace(Arc::new(Generation {
            config: Arc::clone(&config),
            clients,
        }));
        self.update_workers(&config);
        metrics.record_reload(true);
        tracing::info!(
            tenants = config.tenants.len(),
            cron = %config.schedule.cron,
            timezone = %config.schedule.timezone,
            dry_run = config.safety.dry_run,
            "configuration reloaded; each tenant's next run uses it"
        );
        notifier.ready("configuration reloaded");
        self.shared.publish_status();
    }

    /// Stops the scheduler and the workers and waits for the runs in progress.
    async fn drain(mut self) -> u8 {
        self.stop.send_replace(true);
        for trigger in self.triggers.values() {
            trigger.close();
        }
        let busy: Vec<&str> = self
            .triggers
            .iter()
            .filter(|(_, trigger)| trigger.is_busy())
            .map(|(name, _)| name.as_str())
            .collect();
        if !busy.is_empty() {
            tracing::info!(tenants = %busy.join(", "), "waiting for the runs in progress");
        }

        let workers = &mut self.workers;
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            let busy: Vec<&str> = self
                .triggers
                .iter()
                .filter(|(_, trigger)| trigger.is_busy())
                .map(|(name, _)| name.as_str())
                .collect();
            tracing::error!(
                tenants = %busy.join(", "),
                timeout_s = DRAIN_TIMEOUT.as_secs(),
                "runs still going after the drain timeout; exiting anyway. A delete that was \
                 in flight may have an intent without a result in the audit log, which the \
                 next run reconciles with the tenant's listing"
            );
            return exit::INCOMPLETE;
        }
        tracing::info!("stopped");
        exit::OK
    }
}

/// Reads every tenant's secret and builds its client, reusing a client of `previous`
/// whose settings are unchanged. Returns every problem at once.
fn connect(
    config: &Config,
    previous: Option<&Generation>,
) -> Result<BTreeMap<String, (ClientSettings, Client)>, String> {
    let mut clients = BTreeMap::new();
    let mut problems = Vec::new();
    for tenant in &config.tenants {
        let secret = match tenant.secret.load() {
            Ok(secret) => secret,
            Err(error) => {
                problems.push(format!(
                    "tenant {}: cannot read the client secret ({}): {error}",
                    tenant.name,
                    tenant.secret.key()
                ));
                continue;
            }
        };
        let settings = client_settings(tenant, secret);
        let reusable = previous
            .and_then(|generation| generation.clients.get(&tenant.name))
            .filter(|(old, _)| same_settings(old, &settings));
        let client = match reusable {
            Some((_, client)) => client.clone(),
            None => match Client::new(settings.clone()) {
                Ok(client) => client,
                Err(error) => {
                    problems.push(format!("tenant {}: {error}", tenant.name));
                    continue;
                }
            },
        };
        clients.insert(tenant.name.clone(), (settings, client));
    }
    if problems.is_empty() {
        Ok(clients)
    } else {
        Err(format!(
            "invalid configuration {}: {}",
            config.path.display(),
            problems.join("; ")
        ))
    }
}

fn client_settings(tenant: &Tenant, secret: secrecy::SecretString) -> ClientSettings {
    let mut settings = ClientSettings::new(
        &tenant.api_url,
        tenant.api_version,
        &tenant.client_id,
        secret,
    );
    settings.rate_limit_requests = tenant.rate_limit_requests;
    settings.rate_limit_window = tenant.rate_limit_window;
    settings.request_timeout = tenant.request_timeout;
    settings
}

/// Checks whether a client built with `old` can serve a tenant configured as `new`.
fn same_settings(old: &ClientSettings, new: &ClientSettings) -> bool {
    old.api_url == new.api_url
        && old.api_version == new.api_version
        && old.client_id == new.client_id
        && old.client_secret.expose_secret() == new.client_secret.expose_secret()
        && old.rate_limit_requests == new.rate_limit_requests
        && old.rate_limit_window == new.rate_limit_window
        && old.connect_timeout == new.connect_timeout
        && old.request_timeout == new.request_timeout
        && old.max_retries == new.max_retries
        && old.max_retry_after == new.max_retry_after
}

/// Maps what the scheduler loop does to the health endpoint, systemd and the metrics.
struct LoopObserver {
    health: Arc<Health>,
    notifier: Notifier,
    metrics: Arc<Metrics>,
}

impl Observer for LoopObserver {
    fn heartbeat(&self) {
        self.health.beat();
        self.notifier.watchdog();
    }

    fn planned(&self, job: &str, next: Option<DateTime<Utc>>, interval: Option<TimeDelta>) {
        self.metrics.set_schedule(job, next, interval);
    }

    fn skipped(&self, job: &str, _occurrence: DateTime<Utc>) {
        self.metrics.record_skip(job);
    }
}

/// The signals the daemon handles.
struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::isc::ApiVersion;

    fn settings(secret: &str) -> ClientSettings {
        ClientSettings::new(
            "https://acme.api.identitynow.com",
            ApiVersion::V3,
            "aaaa0000000000000000000000000001",
            SecretString::from(secret.to_owned()),
        )
    }

    #[test]
    fn wake_interval_halves_the_watchdog() {
        assert_eq!(wake_interval(None), DEFAULT_WAKE_INTERVAL);
        assert_eq!(
            wake_interval(Some(Duration::from_secs(30))),
            Duration::from_secs(15)
        );
        assert_eq!(
            wake_interval(Some(Duration::from_secs(600))),
            DEFAULT_WAKE_INTERVAL
        );
        assert_eq!(
            wake_interval(Some(Duration::from_micros(1))),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn client_is_reused_only_with_the_same_settings() {
        assert!(same_settings(&settings("one"), &settings("one")));
        assert!(!same_settings(&settings("one"), &settings("two")));
        let mut faster = settings("one");
        faster.rate_limit_requests = 50;
        assert!(!same_settings(&settings("one"), &faster));
        let mut elsewhere = settings("one");
        elsewhere.api_url = "https://globex.api.identitynow.com".to_owned();
        assert!(!same_settings(&settings("one"), &elsewhere));
    }
}
