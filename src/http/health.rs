//! Liveness and readiness, as `/healthz` and `/readyz` report them.
//!
//! Liveness is the scheduler loop's heartbeat: the loop beats on every wake, and it wakes
//! at least every wake interval, so a heartbeat older than twice that interval means the
//! loop is stuck. Readiness is set by the daemon once the configuration is loaded and the
//! listener bound, and cleared when it starts stopping.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Liveness and readiness of the daemon.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    /// Milliseconds from `started` to the last heartbeat.
    heartbeat_ms: AtomicU64,
    /// The loop counts as alive while its last heartbeat is at most this old.
    max_silence: Duration,
    ready: AtomicBool,
}

impl Health {
    /// Creates the health of a loop that wakes at least every `wake_interval`. It counts
    /// as alive from now, and is not ready yet.
    pub fn new(wake_interval: Duration) -> Health {
        Health {
            started: Instant::now(),
            heartbeat_ms: AtomicU64::new(0),
            max_silence: wake_interval.saturating_mul(2),
            ready: AtomicBool::new(false),
        }
    }

    /// Records a heartbeat of the scheduler loop.
    pub fn beat(&self) {
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heartbeat_ms.store(elapsed, Ordering::Release);
    }

    /// Time since the last heartbeat.
    pub fn silence(&self) -> Duration {
        self.silence_at(Instant::now())
    }

    /// Checks whether the scheduler loop beat recently enough.
    pub fn is_alive(&self) -> bool {
        self.is_alive_at(Instant::now())
    }

    fn is_alive_at(&self, now: Instant) -> bool {
        self.silence_at(now) <= self.max_silence
    }

    fn silence_at(&self, now: Instant) -> Duration {
        let last = self.started + Duration::from_millis(self.heartbeat_ms.load(Ordering::Acquire));
        now.saturating_duration_since(last)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_longer_than_twice_the_interval_is_dead() {
        let health = Health::new(Duration::from_secs(60));
        health.beat();
        let beat =
            health.started + Duration::from_millis(health.heartbeat_ms.load(Ordering::Acquire));
        assert!(health.is_alive_at(beat + Duration::from_secs(120)));
        assert!(!health.is_alive_at(beat + Duration::from_secs(121)));
    }

    #[test]
    fn fresh_heartbeat_is_alive() {
        let health = Health::new(Duration::from_secs(60));
        assert!(health.is_alive());
        health.beat();
        assert!(health.silence() < Duration::from_secs(60));
        assert!(health.is_alive());
    }

    #[test]
    fn readiness_is_set_and_cleared() {
        let health = Health::new(Duration::from_secs(60));
        assert!(!health.is_ready());
        health.set_ready(true);
        assert!(health.is_ready());
        health.set_ready(false);
        assert!(!health.is_ready());
    }
}
