//! Client-side pacing: at most `limit` requests in any span of `window`, and a pause of every
//! request after the service returned 429.
//!
//! The pacer keeps the send instants it handed out for the last `limit` requests, in order.
//! Request number k may start no earlier than request number k - limit plus the window plus a
//! safety margin of 1% of the window ([`margin_for`]). So no span of one window, anywhere,
//! contains more than `limit` of our send instants, and the service sees the same bound as
//! long as the delay from our send instant to its arrival instant varies by less than the
//! margin. A burst of N requests takes
//! `ceil(N / limit - 1)` windows (plus as many margins), which is as fast as that bound
//! allows. Token mints, lists, deletes and retries all pass through the same pacer.
//!
//! After a 429 the pacer holds every request until the (capped) `Retry-After` instant,
//! because the service keys its limit on the client id, not on the request. Requests that
//! were already waiting for a slot before the pause take a new slot after it.
//!
//! The pacer reserves an instant synchronously and then sleeps until it, so concurrent
//! callers are served in the order of their calls. A caller that is cancelled while sleeping
//! leaves its reservation in place, which only makes the pacer more conservative. Time is
//! `tokio::time`, so tests drive the pacer with paused time.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Returns the safety margin added to the window: 1% of it.
pub(crate) fn margin_for(window: Duration) -> Duration {
    window / 100
}

#[derive(Debug)]
pub(crate) struct Pacer {
    limit: usize,
    spacing: Duration,
    state: Mutex<PacerState>,
}

#[derive(Debug, Default)]
struct PacerState {
    /// Send instants handed out to the most recent requests, oldest first, at most `limit`.
    slots: VecDeque<Instant>,
    /// No request may start before this instant (set after a 429).
    paused_until: Option<Instant>,
}

/// The instant a request would be past its deadline before the pacer lets it start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PastDeadline;

impl Pacer {
    /// Creates a pacer for `limit` requests per `window`. `limit` must be at least 1.
    pub fn new(limit: u32, window: Duration) -> Self {
        Pacer {
            limit: limit.max(1) as usize,
            spacing: window + margin_for(window),
            state: Mutex::new(PacerState::default()),
        }
    }

    /// Reserves the earliest start instant at or after `now` that keeps the bound, unless
    /// that instant lies after `deadline`, in which case nothing is reserved.
    pub fn reserve(
        &self,
        now: Instant,
        deadline: Option<Instant>,
    ) -> Result<Instant, PastDeadline> {
        let mut state = self.state.lock().expect("pacer lock poisoned");

        let mut start = now;
        if let Some(paused_until) = state.paused_until {
            start = start.max(paused_until);
        }
        if state.slots.len() >= self.limit {
            let oldest = state.slots[state.slots.len() - self.limit];
            start = start.max(oldest + self.spacing);
        }
        if deadline.is_some_and(|deadline| start > deadline) {
            return Err(PastDeadline);
        }

        // Reserved instants never decrease (each is at least the previous `now` and at
        // least an older slot plus the spacing), so the queue stays sorted.
        let last = state.slots.back().copied();
        let start = last.map_or(start, |last| start.max(last));
        state.slots.push_back(start);
        while state.slots.len() > self.limit {
            state.slots.pop_front();
        }
        Ok(start)
    }

    /// Waits until the next request may start. Returns how long it waited.
    pub async fn acquire(&self, deadline: Option<Instant>) -> Result<Duration, PastDeadline> {
        let requested_at = Instant::now();
        loop {
            let now = Instant::now();
            let start = self.reserve(now, deadline)?;
            if start > now {
                tokio::time::sleep_until(start).await;
            }
            // A 429 may have paused the client while this request slept. Its slot is then
            // void (left in place, which only makes the pacer stricter) and it takes a new
            // one after the pause, so that the requests held back do not start all at once.
            if !self.is_paused_at(start) {
                return Ok(start - requested_at);
            }
        }
    }

    fn is_paused_at(&self, instant: Instant) -> bool {
        let state = self.state.lock().expect("pacer lock poisoned");
        state.paused_until.is_some_and(|until| until > instant)
    }

    /// Holds every request that has not started yet until `until`.
    pub fn pause_until(&self, until: Instant) {
        let mut state = self.state.lock().expect("pacer lock poisoned");
        state.paused_until = Some(
            state
                .paused_until
                .map_or(until, |current| current.max(until)),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Asserts that no span shorter than `window` contains more than `limit` of `starts`.
    fn assert_window_bound(starts: &[Instant], limit: usize, window: Duration) {
        let mut sorted = starts.to_vec();
        sorted.sort();
        for pair in sorted.windows(limit + 1) {
            let span = pair[limit] - pair[0];
            assert!(
                span >= window,
                "{} requests within {span:?}, limit {limit} per {window:?}",
                limit + 1
            );
        }
    }

    #[test]
    fn margin_is_one_percent_of_window() {
        assert_eq!(
            margin_for(Duration::from_secs(10)),
            Duration::from_millis(100)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_spreads_250_requests_over_two_windows() {
        let window = Duration::from_secs(10);
        let pacer = Arc::new(Pacer::new(100, window));
        let begin = Instant::now();

        let mut tasks = Vec::new();
        for _ in 0..250 {
            let pacer = Arc::clone(&pacer);
            tasks.push(tokio::spawn(async move {
                pacer.acquire(None).await.unwrap();
                Instant::now()
            }));
        }
        let mut starts = Vec::new();
        for task in tasks {
            starts.push(task.await.unwrap());
        }

        // Paused time wakes sleepers on the timer's millisecond ticks, so allow one tick.
        let elapsed = *starts.iter().max().unwrap() - begin;
        let expected = 2 * (window + margin_for(window));
        assert!(elapsed >= expected, "{elapsed:?}");
        assert!(
            elapsed <= expected + Duration::from_millis(1),
            "{elapsed:?}"
        );
        assert_window_bound(&starts, 100, window);
        // The bound is reached, not undershot: the first window contains exactly the limit.
        let first_window = starts
            .iter()
            .filter(|start| **start - begin < window)
            .count();
        assert_eq!(first_window, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_keeps_bound_across_bursts() {
        let window = Duration::from_secs(10);
        let pacer = Pacer::new(5, window);
        let mut starts = Vec::new();
        for burst in 0..6u64 {
            for _ in 0..4 {
                pacer.acquire(None).await.unwrap();
                starts.push(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(2_700 + 100 * burst)).await;
        }
        assert_window_bound(&starts, 5, window);
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_lets_requests_through_without_waiting_below_limit() {
        let pacer = Pacer::new(100, Duration::from_secs(10));
        for _ in 0..100 {
            assert_eq!(pacer.acquire(None).await.unwrap(), Duration::ZERO);
        }
        let waited = pacer.acquire(None).await.unwrap();
        assert_eq!(waited, Duration::from_millis(10_100));
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_pause_holds_every_request() {
        let pacer = Pacer::new(100, Duration::from_secs(10));
        let now = Instant::now();
        pacer.pause_until(now + Duration::from_secs(7));
        // A shorter pause does not shorten the longer one.
        pacer.pause_until(now + Duration::from_secs(3));

        assert_eq!(pacer.reserve(now, None), Ok(now + Duration::from_secs(7)));
        let waited = pacer.acquire(None).await.unwrap();
        assert_eq!(waited, Duration::from_secs(7));
        assert_eq!(pacer.acquire(None).await.unwrap(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_pause_moves_requests_already_waiting() {
        let window = Duration::from_secs(10);
        let pacer = Arc::new(Pacer::new(2, window));
        let begin = Instant::now();

        let mut tasks = Vec::new();
        for _ in 0..4 {
            let pacer = Arc::clone(&pacer);
            tasks.push(tokio::spawn(async move {
                pacer.acquire(None).await.unwrap();
                Instant::now()
            }));
        }
        // Two requests start at once, two wait for the next window. A 429 at 1 s pauses
        // the client for 30 s, past the instant the waiting two had reserved.
        tokio::time::sleep(Duration::from_secs(1)).await;
        pacer.pause_until(begin + Duration::from_secs(31));

        let mut starts = Vec::new();
        for task in tasks {
            starts.push(task.await.unwrap());
        }
        starts.sort();
        assert!(starts[1] - begin < Duration::from_millis(1));
        for start in &starts[2..] {
            assert!(
                *start - begin >= Duration::from_secs(31),
                "{:?}",
                *start - begin
            );
        }
        assert_window_bound(&starts, 2, window);
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_rejects_start_past_deadline() {
        let pacer = Pacer::new(1, Duration::from_secs(10));
        let now = Instant::now();
        assert_eq!(pacer.reserve(now, Some(now)), Ok(now));

        let deadline = now + Duration::from_secs(5);
        assert_eq!(pacer.acquire(Some(deadline)).await, Err(PastDeadline));
        // Nothing was waited for and nothing was reserved.
        assert_eq!(Instant::now(), now);
        assert_eq!(
            pacer.reserve(now, None),
            Ok(now + Duration::from_millis(10_100))
        );
    }
}
