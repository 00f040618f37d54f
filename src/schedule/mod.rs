//! The daemon's scheduler: one loop that starts each tenant's runs at the cron occurrences
//! of `[schedule]`, in its time zone, without overlap and without backlog.
//!
//! Every tenant is a job with a [`Timetable`] and a [`Trigger`]. The loop wakes at the
//! next occurrence of any job, and at least every `wake_interval`. On each wake it reports
//! a heartbeat to the [`Observer`], which the daemon turns into `WATCHDOG=1` and the
//! `/healthz` heartbeat. Then it polls every timetable against the wall clock and fires
//! the trigger of each job that is due. Each job's runs happen in its own worker task, so a
//! slow tenant never delays the loop or another tenant. An occurrence that comes while the
//! job's previous run is still going is skipped, logged and reported to the observer.
//!
//! Sleeping uses tokio's monotonic clock, which stops while the machine is suspended, and
//! the occurrences use the wall clock. The bounded wake interval is what notices a resume
//! or a clock jump: the next wake compares the wall clock with the timetables, and the
//! occurrences missed in between collapse into one run.
//!
//! The scheduler decides when runs start; what a run does, and the tenants' clients, are
//! the daemon's.

mod timetable;
mod trigger;

pub use timetable::{BACKWARD_STEP_TOLERANCE, Tick, Timetable};
pub use trigger::{RunGuard, Trigger};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

use crate::config::Schedule;

/// Source of the wall-clock time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Receives what the loop does; the daemon maps it to health, systemd and metrics.
pub trait Observer: Send + Sync {
    /// Called by the loop on every wake, before it polls the timetables.
    fn heartbeat(&self);
    /// Reports the job's next occurrence and the time between its next two, after each poll.
    fn planned(&self, job: &str, next: Option<DateTime<Utc>>, interval: Option<TimeDelta>);
    /// Reports an occurrence skipped because the job's previous run was still going.
    fn skipped(&self, job: &str, occurrence: DateTime<Utc>);
}

/// A job as the daemon describes it: its name (the tenant's), its schedule and the trigger
/// its worker waits on.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub name: String,
    pub schedule: Schedule,
    pub trigger: Trigger,
}

/// One job as the loop follows it.
#[derive(Debug)]
struct Job {
    timetable: Timetable,
    trigger: Trigger,
    /// Fire at the next wake, for `run_on_start`.
    start_now: bool,
}

/// The scheduler loop and its jobs.
pub struct Scheduler<C: Clock> {
    clock: C,
    wake_interval: Duration,
    observer: Arc<dyn Observer>,
    jobs: BTreeMap<String, Job>,
}

impl<C: Clock> Scheduler<C> {
    /// Creates a scheduler that wakes at least every `wake_interval`.
    pub fn new(clock: C, wake_interval: Duration, observer: Arc<dyn Observer>) -> Self {
        Scheduler {
            clock,
            wake_interval,
            observer,
            jobs: BTreeMap::new(),
        }
    }

    /// Runs the loop until `stop` turns true or its sender drops. `jobs` contains the job
    /// list, and a new list (after a reload) replaces the old one at the next wake. Jobs of
    /// the first list whose schedule sets `run_on_start` start at once.
    pub async fn run(
        mut self,
        mut jobs: watch::Receiver<Vec<JobSpec>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let initial = jobs.borrow_and_update().clone();
        self.apply(initial, true);

        loop {
            if *stop.borrow_and_update() {
                break;
            }
            let now = self.clock.now();
            self.observer.heartbeat();
            for (name, job) in &mut self.jobs {
                poll_job(name, job, now, self.observer.as_ref());
            }

            let sleep = self.sleep_after(now);
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                changed = jobs.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let list = jobs.borrow_and_update().clone();
                    self.apply(list, false);
                }
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        tracing::debug!("scheduler stopped");
    }

    /// Replaces the job list. A job that stays keeps its timetable, so a new schedule
    /// applies from the instant already checked.
    fn apply(&mut self, specs: Vec<JobSpec>, initial: bool) {
        let now = self.clock.now();
        let mut jobs = BTreeMap::new();
        for spec in specs {
            let job = match self.jobs.remove(&spec.name) {
                Some(mut job) => {
                    job.timetable.set_schedule(spec.schedule);
                    job.trigger = spec.trigger;
                    job
                }
                None => Job {
                    start_now: initial && spec.schedule.run_on_start,
                    timetable: Timetable::new(spec.schedule, now),
                    trigger: spec.trigger,
                },
            };
            jobs.insert(spec.name, job);
        }
        self.jobs = jobs;
    }

    /// Returns the time until the earliest next occurrence, at most `wake_interval`.
    fn sleep_after(&self, now: DateTime<Utc>) -> Duration {
        self.jobs
            .values()
            .filter_map(|job| job.timetable.next())
            .map(|next| (next - now).to_std().unwrap_or(Duration::ZERO))
            .fold(self.wake_interval, Duration::min)
    }
}

fn poll_job(name: &str, job: &mut Job, now: DateTime<Utc>, observer: &dyn Observer) {
    if job.start_now {
        job.start_now = false;
        fire(name, job, now, observer);
    }

    match job.timetable.poll(now) {
        Tick::Idle => {}
        Tick::Due {
            occurrence,
            collapsed,
        } => {
            if collapsed > 0 {
                tracing::warn!(
                    tenant = name,
                    missed = collapsed,
                    %occurrence,
                    "occurrences passed while the scheduler was not running (suspend or \
                     clock jump); one run covers them"
                );
            }
            fire(name, job, occurrence, observer);
        }
        Tick::ClockBack { by, restarted } => {
            let seconds = by.num_seconds();
            if restarted {
                tracing::warn!(
                    tenant = name,
                    seconds,
                    "the wall clock went back; the schedule restarts from the new time"
                );
            } else {
                tracing::warn!(
                    tenant = name,
                    seconds,
                    "the wall clock went back; occurrences already handled are not run again"
                );
            }
        }
    }
    observer.planned(name, job.timetable.next(), job.timetable.interval());
}

fn fire(name: &str, job: &Job, occurrence: DateTime<Utc>, observer: &dyn Observer) {
    if job.trigger.fire(occurrence) {
        tracing::debug!(tenant = name, %occurrence, "run due");
    } else {
        tracing::warn!(
            tenant = name,
            %occurrence,
            "run skipped: the previous run of this tenant is still going"
        );
        observer.skipped(name, occurrence);
    }
}

#[cfg(test)]
mod tests {
    //! These tests run the loop on paused tokio time: sleeping advances the clock at once,
    //! and the test clock derives the wall-clock time from tokio's clock plus a jump the
    //! test can set. No socket is involved.

    use std::sync::Mutex;

    use super::*;

    #[derive(Clone)]
    struct TestClock {
        base: DateTime<Utc>,
        start: tokio::time::Instant,
        jump: Arc<Mutex<TimeDelta>>,
    }

    impl TestClock {
        fn at(text: &str) -> TestClock {
            TestClock {
                base: instant(text),
                start: tokio::time::Instant::now(),
                jump: Arc::default(),
            }
        }

        /// Moves the wall clock without moving tokio's clock, like a suspend or a clock
        /// step.
        fn jump(&self, by: TimeDelta) {
            *self.jump.lock().unwrap() += by;
        }
    }

    impl Clock for TestClock {
        fn now(&self) -> DateTime<Utc> {
            let elapsed = TimeDelta::from_std(self.start.elapsed()).unwrap();
            self.base + elapsed + *self.jump.lock().unwrap()
        }
    }

    /// A job's next occurrence and interval, as reported to the observer.
    type Plan = (Option<DateTime<Utc>>, Option<TimeDelta>);

    #[derive(Default)]
    struct Recorder {
        heartbeats: Mutex<usize>,
        skipped: Mutex<Vec<DateTime<Utc>>>,
        planned: Mutex<Vec<Plan>>,
    }

    impl Observer for Recorder {
        fn heartbeat(&self) {
            *self.heartbeats.lock().unwrap() += 1;
        }

        fn planned(&self, _job: &str, next: Option<DateTime<Utc>>, interval: Option<TimeDelta>) {
            self.planned.lock().unwrap().push((next, interval));
        }

        fn skipped(&self, _job: &str, occurrence: DateTime<Utc>) {
            self.skipped.lock().unwrap().push(occurrence);
        }
    }

    /// A scheduler with one job and a worker whose runs take `run_time` and record the
    /// wall-clock time at which each started.
    struct Harness {
        clock: TestClock,
        recorder: Arc<Recorder>,
        starts: Arc<Mutex<Vec<DateTime<Utc>>>>,
        stop: watch::Sender<bool>,
        _jobs: watch::Sender<Vec<JobSpec>>,
        wake_interval: Duration,
    }

    impl Harness {
        fn start(cron: &str, zone: &str, at: &str, run_on_start: bool, run_time: Duration) -> Self {
            let clock = TestClock::at(at);
            let recorder = Arc::new(Recorder::default());
            let starts = Arc::new(Mutex::new(Vec::new()));
            let trigger = Trigger::new();
            let wake_interval = Duration::from_secs(60);

            let worker_trigger = trigger.clone();
            let worker_clock = clock.clone();
            let worker_starts = Arc::clone(&starts);
            tokio::spawn(async move {
                while let Some(guard) = worker_trigger.started().await {
                    worker_starts.lock().unwrap().push(worker_clock.now());
                    tokio::time::sleep(run_time).await;
                    drop(guard);
                }
            });

            let spec = JobSpec {
                name: "acme".to_owned(),
                schedule: Schedule::from_valid(cron, zone, run_on_start),
                trigger,
            };
            let (jobs, jobs_receiver) = watch::channel(vec![spec]);
            let (stop, stop_receiver) = watch::channel(false);
            let scheduler = Scheduler::new(
                clock.clone(),
                wake_interval,
                Arc::clone(&recorder) as Arc<dyn Observer>,
            );
            tokio::spawn(scheduler.run(jobs_receiver, stop_receiver));
            Harness {
                clock,
                recorder,
                starts,
                stop,
                _jobs: jobs,
                wake_interval,
            }
        }

        fn starts(&self) -> Vec<String> {
            self.starts
                .lock()
                .unwrap()
                .iter()
                .map(|start| start.to_rfc3339())
                .collect()
        }

        fn skipped(&self) -> Vec<String> {
            self.recorder
                .skipped
                .lock()
                .unwrap()
                .iter()
                .map(|occurrence| occurrence.to_rfc3339())
                .collect()
        }
    }

    fn instant(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    async fn advance(duration: TimeDelta) {
        tokio::time::sleep(duration.to_std().unwrap()).await;
    }

    #[tokio::test(start_paused = true)]
    async fn berlin_spring_forward_runs_after_the_gap() {
        // 02:30 does not exist in Berlin on 2026-03-29: clocks jump from 02:00 to 03:00.
        let harness = Harness::start(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-28T12:00:00Z",
            false,
            Duration::from_secs(5),
        );
        advance(TimeDelta::days(3)).await;
        assert_eq!(
            harness.starts(),
            [
                "2026-03-29T01:00:00+00:00",
                "2026-03-30T00:30:00+00:00",
                "2026-03-31T00:30:00+00:00",
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn berlin_fall_back_runs_once() {
        // 02:30 happens twice in Berlin on 2026-10-25: clocks go back from 03:00 to 02:00.
        let harness = Harness::start(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-24T12:00:00Z",
            false,
            Duration::from_secs(5),
        );
        advance(TimeDelta::days(2)).await;
        assert_eq!(
            harness.starts(),
            ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn new_york_spring_forward_keeps_wall_clock_time() {
        // New York moves from UTC-5 to UTC-4 on 2026-03-08 at 02:00; 02:30 does not exist.
        let harness = Harness::start(
            "30 2 * * *",
            "America/New_York",
            "2026-03-07T12:00:00Z",
            false,
            Duration::from_secs(5),
        );
        advance(TimeDelta::days(3)).await;
        assert_eq!(
            harness.starts(),
            [
                // 03:00 EDT, the first instant after the gap.
                "2026-03-08T07:00:00+00:00",
                // 02:30 EDT on the next days.
                "2026-03-09T06:30:00+00:00",
                "2026-03-10T06:30:00+00:00",
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn new_york_fall_back_runs_fixed_time_once() {
        // New York goes back from UTC-4 to UTC-5 on 2026-11-01 at 02:00, so 01:30 happens
        // twice. A job at one fixed time of day runs at the first of the two.
        let harness = Harness::start(
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T12:00:00Z",
            false,
            Duration::from_secs(5),
        );
        advance(TimeDelta::days(2)).await;
        assert_eq!(
            harness.starts(),
            ["2026-11-01T05:30:00+00:00", "2026-11-02T06:30:00+00:00"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn new_york_fall_back_repeats_interval_job() {
        // A job with several hours (croner calls it an interval job) runs at both
        // instants of a repeated wall-clock time, so the hourly rhythm goes on in UTC.
        let harness = Harness::start(
            "30 * * * *",
            "America/New_York",
            "2026-11-01T04:00:00Z",
            false,
            Duration::from_secs(5),
        );
        advance(TimeDelta::hours(4)).await;
        assert_eq!(
            harness.starts(),
            [
                "2026-11-01T04:30:00+00:00",
                "2026-11-01T05:30:00+00:00",
                "2026-11-01T06:30:00+00:00",
                "2026-11-01T07:30:00+00:00",
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn overlapping_occurrence_is_skipped() {
        // Every minute, with runs of 150 s: the run of 00:01 is still going at 00:02 and
        // 00:03, so the next run starts at 00:04.
        let harness = Harness::start(
            "* * * * *",
            "UTC",
            "2026-12-01T00:00:30Z",
            false,
            Duration::from_secs(150),
        );
        advance(TimeDelta::seconds(420)).await;
        assert_eq!(
            harness.starts(),
            [
                "2026-12-01T00:01:00+00:00",
                "2026-12-01T00:04:00+00:00",
                "2026-12-01T00:07:00+00:00",
            ]
        );
        assert_eq!(
            harness.skipped(),
            [
                "2026-12-01T00:02:00+00:00",
                "2026-12-01T00:03:00+00:00",
                "2026-12-01T00:05:00+00:00",
                "2026-12-01T00:06:00+00:00",
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn clock_jump_gives_one_catch_up_run() {
        let harness = Harness::start(
            "0 3 * * *",
            "UTC",
            "2026-12-01T02:00:00Z",
            false,
            Duration::from_secs(5),
        );
        advance(TimeDelta::hours(2)).await;
        assert_eq!(harness.starts(), ["2026-12-01T03:00:00+00:00"]);

        // Three days pass on the wall clock while tokio's clock does not move, as in a
        // suspend: the occurrences of 2, 3 and 4 December are all missed.
        harness.clock.jump(TimeDelta::days(3));
        advance(TimeDelta::from_std(harness.wake_interval).unwrap()).await;
        let starts = harness.starts();
        assert_eq!(starts.len(), 2, "{starts:?}");
        assert!(
            starts[1].starts_with("2026-12-04T04:0"),
            "the catch-up run starts at the first wake after the jump: {starts:?}"
        );

        advance(TimeDelta::days(1)).await;
        assert_eq!(harness.starts()[2], "2026-12-05T03:00:00+00:00");
        assert_eq!(harness.starts().len(), 3);
        assert!(harness.skipped().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn run_on_start_runs_at_once() {
        let harness = Harness::start(
            "0 3 * * *",
            "UTC",
            "2026-12-01T12:00:00Z",
            true,
            Duration::from_secs(5),
        );
        advance(TimeDelta::seconds(1)).await;
        assert_eq!(harness.starts(), ["2026-12-01T12:00:00+00:00"]);
    }

    #[tokio::test(start_paused = true)]
    async fn loop_wakes_at_least_every_wake_interval() {
        let harness = Harness::start(
            "0 3 1 1 *",
            "UTC",
            "2026-12-01T12:00:00Z",
            false,
            Duration::from_secs(5),
        );
        advance(TimeDelta::minutes(10) + TimeDelta::seconds(1)).await;
        let heartbeats = *harness.recorder.heartbeats.lock().unwrap();
        // One at start, then one per minute.
        assert_eq!(heartbeats, 11);
        let planned = harness.recorder.planned.lock().unwrap().last().copied();
        assert_eq!(
            planned,
            Some((
                Some(instant("2027-01-01T03:00:00Z")),
                Some(TimeDelta::days(365))
            ))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_the_loop() {
        let harness = Harness::start(
            "* * * * *",
            "UTC",
            "2026-12-01T00:00:30Z",
            false,
            Duration::from_secs(1),
        );
        advance(TimeDelta::seconds(90)).await;
        harness.stop.send(true).unwrap();
        advance(TimeDelta::minutes(5)).await;
        assert_eq!(harness.starts(), ["2026-12-01T00:01:00+00:00"]);
    }

    #[tokio::test(start_paused = true)]
    async fn new_job_list_changes_the_next_run() {
        let clock = TestClock::at("2026-12-01T00:00:00Z");
        let recorder = Arc::new(Recorder::default());
        let trigger = Trigger::new();
        let spec = |cron: &str| JobSpec {
            name: "acme".to_owned(),
            schedule: Schedule::from_valid(cron, "UTC", false),
            trigger: trigger.clone(),
        };
        let (jobs, jobs_receiver) = watch::channel(vec![spec("0 3 * * *")]);
        let (_stop, stop_receiver) = watch::channel(false);
        let scheduler = Scheduler::new(
            clock.clone(),
            Duration::from_secs(60),
            Arc::clone(&recorder) as Arc<dyn Observer>,
        );
        tokio::spawn(scheduler.run(jobs_receiver, stop_receiver));
        advance(TimeDelta::seconds(1)).await;
        let next = |recorder: &Recorder| recorder.planned.lock().unwrap().last().unwrap().0;
        assert_eq!(next(&recorder), Some(instant("2026-12-01T03:00:00Z")));

        jobs.send(vec![spec("0 1 * * *")]).unwrap();
        advance(TimeDelta::seconds(1)).await;
        assert_eq!(next(&recorder), Some(instant("2026-12-01T01:00:00Z")));
        advance(TimeDelta::hours(1)).await;
        assert!(trigger.is_busy(), "the new schedule did not fire at 01:00");
    }
}
