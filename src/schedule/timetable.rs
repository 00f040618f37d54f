//! The timetable of one job: which cron occurrences passed since the scheduler last
//! looked, and which one is next.
//!
//! Occurrences are instants, computed by [`Schedule::runs_after`] in the schedule's time
//! zone, so daylight saving changes move them in UTC as they should. The timetable keeps
//! the wall-clock instant it last checked. Everything between that instant and now is
//! due, and several due occurrences (after a suspend or a forward clock jump) collapse
//! into one run. When the clock steps back by at most [`BACKWARD_STEP_TOLERANCE`], the
//! occurrences already handled are not run again. A larger step back restarts the
//! timetable at the new time, so a clock that was set far into the future and then
//! corrected does not stop the schedule for that long.
//!
//! Pure: the current instant is a parameter.

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::Schedule;

/// Largest step back of the wall clock after which occurrences already handled are
/// skipped rather than run again.
pub const BACKWARD_STEP_TOLERANCE: TimeDelta = TimeDelta::hours(1);

/// Most due occurrences counted in one poll. A per-second schedule after a week of
/// suspend has 604 800 of them, and their number only goes into a log line.
const MAX_COUNTED: usize = 10_000;

/// Result of one poll of a timetable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// No occurrence since the last poll.
    Idle,
    /// At least one occurrence came since the last poll; they all collapse into one run.
    Due {
        /// The latest due occurrence.
        occurrence: DateTime<Utc>,
        /// Due occurrences before `occurrence` that get no run of their own, at most
        /// `MAX_COUNTED - 1`.
        collapsed: usize,
    },
    /// The wall clock went back since the last poll.
    ClockBack {
        by: TimeDelta,
        /// Whether the timetable restarted at the new time; otherwise it waits until the
        /// clock passes the instant it had reached.
        restarted: bool,
    },
}

/// One job's schedule and how far it has been followed.
#[derive(Debug, Clone)]
pub struct Timetable {
    schedule: Schedule,
    /// Occurrences up to this instant are handled.
    checked: DateTime<Utc>,
    /// Set while the clock is behind `checked` after a small step back.
    behind: bool,
    /// The first two occurrences after `checked`, kept until `checked` passes the first,
    /// so that a wake with nothing due does not search the calendar.
    upcoming: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
}

impl Timetable {
    /// Starts a timetable at `now`: only occurrences after `now` are due.
    pub fn new(schedule: Schedule, now: DateTime<Utc>) -> Timetable {
        let mut timetable = Timetable {
            schedule,
            checked: now,
            behind: false,
            upcoming: (None, None),
        };
        timetable.refresh();
        timetable
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Replaces the schedule. Occurrences of the new schedule up to the instant already
    /// checked are not due.
    pub fn set_schedule(&mut self, schedule: Schedule) {
        self.schedule = schedule;
        self.refresh();
    }

    /// Looks at the clock: reports the occurrences since the last poll and moves past them.
    pub fn poll(&mut self, now: DateTime<Utc>) -> Tick {
        if now < self.checked {
            let by = self.checked - now;
            if by > BACKWARD_STEP_TOLERANCE {
                self.checked = now;
                self.behind = false;
                self.refresh();
                return Tick::ClockBack {
                    by,
                    restarted: true,
                };
            }
            if self.behind {
                return Tick::Idle;
            }
            self.behind = true;
            return Tick::ClockBack {
                by,
                restarted: false,
            };
        }
        self.behind = false;
        if self.upcoming.0.is_none_or(|next| now < next) {
            self.checked = now;
            return Tick::Idle;
        }

        let mut latest = None;
        let mut count = 0;
        for occurrence in self
            .schedule
            .runs_after(self.checked)
            .map(|occurrence| occurrence.to_utc())
            .take_while(|occurrence| *occurrence <= now)
            .take(MAX_COUNTED)
        {
            latest = Some(occurrence);
            count += 1;
        }
        self.checked = now;
        self.refresh();
        match latest {
            None => Tick::Idle,
            Some(occurrence) => Tick::Due {
                occurrence,
                collapsed: count - 1,
            },
        }
    }

    /// The next occurrence that will be due, if the pattern has one.
    pub fn next(&self) -> Option<DateTime<Utc>> {
        self.upcoming.0
    }

    /// Returns the time between the next two occurrences.
    pub fn interval(&self) -> Option<TimeDelta> {
        let (first, second) = self.upcoming;
        Some(second? - first?)
    }

    fn refresh(&mut self) {
        let mut upcoming = self
            .schedule
            .runs_after(self.checked)
            .map(|occurrence| occurrence.to_utc());
        let first = upcoming.next();
        self.upcoming = (first, first.and(upcoming.next()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instant(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn timetable(cron: &str, zone: &str, now: &str) -> Timetable {
        Timetable::new(Schedule::from_valid(cron, zone, false), instant(now))
    }

    #[test]
    fn nothing_is_due_before_the_first_occurrence() {
        let mut table = timetable("15 3 * * *", "UTC", "2026-12-01T00:00:00Z");
        assert_eq!(table.poll(instant("2026-12-01T03:14:59Z")), Tick::Idle);
        assert_eq!(table.next(), Some(instant("2026-12-01T03:15:00Z")));
    }

    #[test]
    fn occurrence_is_due_at_its_instant_once() {
        let mut table = timetable("15 3 * * *", "UTC", "2026-12-01T00:00:00Z");
        assert_eq!(
            table.poll(instant("2026-12-01T03:15:00Z")),
            Tick::Due {
                occurrence: instant("2026-12-01T03:15:00Z"),
                collapsed: 0
            }
        );
        assert_eq!(table.poll(instant("2026-12-01T03:15:00Z")), Tick::Idle);
        assert_eq!(table.next(), Some(instant("2026-12-02T03:15:00Z")));
    }

    #[test]
    fn missed_occurrences_collapse_into_one() {
        let mut table = timetable("0 * * * *", "UTC", "2026-12-01T00:30:00Z");
        assert_eq!(
            table.poll(instant("2026-12-01T05:10:00Z")),
            Tick::Due {
                occurrence: instant("2026-12-01T05:00:00Z"),
                collapsed: 4
            }
        );
        assert_eq!(table.next(), Some(instant("2026-12-01T06:00:00Z")));
    }

    #[test]
    fn collapsed_count_is_bounded() {
        let mut table = timetable("* * * * * *", "UTC", "2026-12-01T00:00:00Z");
        let Tick::Due { collapsed, .. } = table.poll(instant("2026-12-08T00:00:00Z")) else {
            panic!("a week of per-second occurrences is due");
        };
        assert_eq!(collapsed, MAX_COUNTED - 1);
        assert_eq!(table.next(), Some(instant("2026-12-08T00:00:01Z")));
    }

    #[test]
    fn small_step_back_does_not_repeat_occurrences() {
        let mut table = timetable("*/10 * * * *", "UTC", "2026-12-01T00:00:00Z");
        assert!(matches!(
            table.poll(instant("2026-12-01T00:10:00Z")),
            Tick::Due { .. }
        ));
        assert_eq!(
            table.poll(instant("2026-12-01T00:05:00Z")),
            Tick::ClockBack {
                by: TimeDelta::minutes(5),
                restarted: false
            }
        );
        // 00:10 was handled before the step back, so it is not due again.
        assert_eq!(table.poll(instant("2026-12-01T00:10:00Z")), Tick::Idle);
        assert_eq!(
            table.poll(instant("2026-12-01T00:20:00Z")),
            Tick::Due {
                occurrence: instant("2026-12-01T00:20:00Z"),
                collapsed: 0
            }
        );
    }

    #[test]
    fn step_back_is_reported_once() {
        let mut table = timetable("0 3 * * *", "UTC", "2026-12-01T12:00:00Z");
        assert!(matches!(
            table.poll(instant("2026-12-01T11:30:00Z")),
            Tick::ClockBack { .. }
        ));
        assert_eq!(table.poll(instant("2026-12-01T11:31:00Z")), Tick::Idle);
    }

    #[test]
    fn large_step_back_restarts_the_timetable() {
        let mut table = timetable("0 3 * * *", "UTC", "2027-06-01T12:00:00Z");
        assert_eq!(
            table.poll(instant("2026-12-01T12:00:00Z")),
            Tick::ClockBack {
                by: TimeDelta::days(182),
                restarted: true
            }
        );
        assert_eq!(table.next(), Some(instant("2026-12-02T03:00:00Z")));
    }

    #[test]
    fn interval_spans_daylight_saving_change() {
        // Berlin moves to UTC+2 on 2026-03-29, so that day is 23 hours long.
        let table = timetable("15 3 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z");
        assert_eq!(table.next(), Some(instant("2026-03-29T01:15:00Z")));
        assert_eq!(table.interval(), Some(TimeDelta::hours(24)));
        let table = timetable("15 3 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z");
        assert_eq!(table.next(), Some(instant("2026-03-28T02:15:00Z")));
        assert_eq!(table.interval(), Some(TimeDelta::hours(23)));
    }

    #[test]
    fn new_schedule_keeps_the_checked_instant() {
        let mut table = timetable("0 3 * * *", "UTC", "2026-12-01T04:00:00Z");
        table.set_schedule(Schedule::from_valid("30 3 * * *", "UTC", false));
        // 03:30 today passed before the change, so the next run is tomorrow.
        assert_eq!(table.next(), Some(instant("2026-12-02T03:30:00Z")));
        assert_eq!(table.poll(instant("2026-12-01T04:00:01Z")), Tick::Idle);
    }
}
