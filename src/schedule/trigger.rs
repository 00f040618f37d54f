//! The hand-over between the scheduler and the worker that runs one job.
//!
//! A [`Trigger`] is either idle or busy. The scheduler fires it, and firing a busy trigger
//! fails. So an occurrence that comes while the previous run is still going is skipped
//! instead of queued. The worker waits in [`Trigger::started`] and holds the
//! returned [`RunGuard`] for the whole run, so the trigger stays busy until the guard
//! drops, even if the run panics or its future is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

/// Starts one job's runs, one at a time. Clones share the state.
#[derive(Debug, Clone, Default)]
pub struct Trigger {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    busy: AtomicBool,
    closed: AtomicBool,
    /// The occurrence of the run the worker has not picked up yet.
    pending: Mutex<Option<DateTime<Utc>>>,
    notify: Notify,
}

/// Held by the worker while its run goes on; the trigger is idle again when it drops.
#[derive(Debug)]
pub struct RunGuard {
    trigger: Trigger,
    /// The occurrence that started this run.
    pub occurrence: DateTime<Utc>,
}

impl Trigger {
    pub fn new() -> Trigger {
        Trigger::default()
    }

    /// Starts a run for `occurrence`. Returns `false`, and starts nothing, while the
    /// previous run is still going or after [`Trigger::close`].
    pub fn fire(&self, occurrence: DateTime<Utc>) -> bool {
        if self.shared.closed.load(Ordering::Acquire)
            || self.shared.busy.swap(true, Ordering::AcqRel)
        {
            return false;
        }
        *self
            .shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(occurrence);
        self.shared.notify.notify_one();
        true
    }

    /// Checks whether a run is going, or fired and not yet picked up.
    pub fn is_busy(&self) -> bool {
        self.shared.busy.load(Ordering::Acquire)
    }

    /// Stops the trigger: the worker's wait returns `None` once the current run, if any,
    /// is over, and `fire` starts nothing.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.notify.notify_one();
    }

    /// Waits for the next run. Returns `None` after [`Trigger::close`].
    pub async fn started(&self) -> Option<RunGuard> {
        loop {
            let pending = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(occurrence) = pending {
                return Some(RunGuard {
                    trigger: self.clone(),
                    occurrence,
                });
            }
            if self.shared.closed.load(Ordering::Acquire) {
                return None;
            }
            self.shared.notify.notified().await;
        }
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.trigger.shared.busy.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instant(second: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + i64::from(second), 0).unwrap()
    }

    #[tokio::test]
    async fn busy_trigger_does_not_fire() {
        let trigger = Trigger::new();
        assert!(trigger.fire(instant(0)));
        assert!(!trigger.fire(instant(1)), "fired while the run was pending");

        let guard = trigger.started().await.unwrap();
        assert_eq!(guard.occurrence, instant(0));
        assert!(!trigger.fire(instant(2)), "fired while the run was going");

        drop(guard);
        assert!(!trigger.is_busy());
        assert!(trigger.fire(instant(3)));
        assert_eq!(trigger.started().await.unwrap().occurrence, instant(3));
    }

    #[tokio::test]
    async fn closed_trigger_ends_the_wait() {
        let trigger = Trigger::new();
        let waiter = tokio::spawn({
            let trigger = trigger.clone();
            async move { trigger.started().await.map(|guard| guard.occurrence) }
        });
        trigger.close();
        assert_eq!(waiter.await.unwrap(), None);
        assert!(!trigger.fire(instant(0)));
    }

    #[tokio::test]
    async fn run_fired_before_close_is_still_picked_up() {
        let trigger = Trigger::new();
        assert!(trigger.fire(instant(0)));
        trigger.close();
        assert_eq!(trigger.started().await.unwrap().occurrence, instant(0));
        assert!(trigger.started().await.is_none());
    }
}
