//! Messages to systemd over `$NOTIFY_SOCKET` (sd_notify(3)): `READY=1`, `RELOADING=1`,
//! `STOPPING=1`, `STATUS=…` and `WATCHDOG=1`.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd, or `Type=` is not `notify`) every
//! message is a no-op. A failed send is logged once as a warning and otherwise ignored:
//! the daemon's work does not depend on the service manager hearing it, and systemd's own
//! timeouts catch a daemon that never reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

/// Sends state changes to the service manager.
#[derive(Debug, Clone)]
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
    failure_logged: Arc<AtomicBool>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, and `WATCHDOG_USEC` with `WATCHDOG_PID`.
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some_and(|socket| !socket.is_empty()),
            watchdog: sd_notify::watchdog_enabled().filter(|timeout| !timeout.is_zero()),
            failure_logged: Arc::default(),
        }
    }

    /// Returns the watchdog timeout (`WatchdogSec=`) when systemd expects `WATCHDOG=1` from
    /// this process.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Reports that the configuration is valid, the secrets are read and the listener is
    /// bound.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// Reports that a reload began, which `ready` ends. systemd expects the monotonic time
    /// with it.
    pub fn reloading(&self) {
        if !self.enabled {
            return;
        }
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    /// Sets the line that `systemctl status` shows.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// Tells the watchdog the daemon is alive, when one is set.
    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send(&[NotifyState::Watchdog]);
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(error) = sd_notify::notify(states)
            && !self.failure_logged.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(%error, "cannot notify systemd through $NOTIFY_SOCKET; further failures are not logged");
        }
    }
}
