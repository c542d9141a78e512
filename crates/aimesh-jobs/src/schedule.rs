//! Recurring jobs: periodic sweeps (purging, retention, pruning) registered with
//! [`Jobs::schedule`](crate::Jobs::schedule).
//!
//! A schedule is a row of `job_schedules`: a name, the job it submits (kind, payload, attempt
//! budget), its [`Cadence`] and when it is next due. Each replica's engine runs a scheduler
//! for the schedules it registered. When a tick is due the scheduler fires it in one
//! transaction: a conditional update moves the schedule's next run on — only one replica's
//! update applies — and the job is submitted under [`SYSTEM_OWNER`] with an idempotency key of
//! the schedule's name and the tick's time. A tick thus runs once across replicas; a tick
//! missed while no replica ran fires once, late, and the schedule goes on from the present.
//! A scheduled job's `run_after` is the time its tick was due.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, SecondsFormat, Utc};
use croner::Cron;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    error::{JobsError, JobsResult},
    model::now,
    store::JobStore,
};

/// The owner of scheduled jobs: list or watch them as this user.
pub const SYSTEM_OWNER: &str = "system";

/// Longest a schedule name may be, in bytes.
pub const MAX_SCHEDULE_NAME_LEN: usize = 100;

/// Longest the scheduler sleeps without looking at its schedules again.
const LONGEST_NAP: Duration = Duration::from_secs(60);

/// How long the scheduler waits before trying a tick again after a database error.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// When a schedule's jobs run.
#[derive(Clone, PartialEq, Eq)]
pub struct Cadence(Every);

#[derive(Clone, PartialEq, Eq)]
enum Every {
    /// At the times a cron expression matches, in UTC.
    Cron(Box<Cron>),
    /// At a fixed interval.
    Interval(Duration),
}

impl Cadence {
    /// At the times a cron expression matches, in UTC: five fields (minute, hour, day of
    /// month, month, day of week), or six with seconds first, e.g. `0 3 * * *` (daily at
    /// 03:00) or `*/10 * * * * *` (every ten seconds).
    pub fn cron(expression: &str) -> JobsResult<Self> {
        let cron: Cron = expression
            .parse()
            .map_err(|error| invalid("cadence", format!("is not a cron expression: {error}")))?;
        Ok(Self(Every::Cron(Box::new(cron))))
    }

    /// Every `interval` (at least a millisecond), from registration on.
    pub fn every(interval: Duration) -> JobsResult<Self> {
        if interval < Duration::from_millis(1) {
            return Err(invalid(
                "cadence",
                "the interval must be at least 1 ms".into(),
            ));
        }
        Ok(Self(Every::Interval(interval)))
    }

    /// The first tick after `time`.
    fn next_after(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.0 {
            Every::Cron(cron) => cron.find_next_occurrence(&time, false).ok(),
            Every::Interval(interval) => {
                chrono::Duration::from_std(*interval).ok().map(|i| time + i)
            }
        }
    }

    /// The first tick after `now` of the ticks that follow `due`: those of a cron expression,
    /// or `due` plus whole intervals.
    fn next_after_tick(&self, due: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.0 {
            Every::Cron(_) => self.next_after(now.max(due)),
            Every::Interval(interval) => {
                let interval = chrono::Duration::from_std(*interval).ok()?;
                let behind = (now - due).max(chrono::Duration::zero());
                let ticks = behind.num_microseconds()? / interval.num_microseconds()?.max(1) + 1;
                due.checked_add_signed(interval.checked_mul(i32::try_from(ticks).ok()?)?)
            }
        }
    }
}

impl fmt::Display for Cadence {
    /// The cadence as stored: `cron <expression>` or `every <milliseconds>ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Every::Cron(cron) => write!(f, "cron {}", cron.as_str()),
            Every::Interval(interval) => write!(f, "every {}ms", interval.as_millis()),
        }
    }
}

impl fmt::Debug for Cadence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cadence({self})")
    }
}

fn invalid(field: &str, description: String) -> JobsError {
    JobsError::InvalidArgument(vec![aimesh_kit::FieldViolation::new(field, description)])
}

/// A schedule this replica fires.
struct Registered {
    cadence: Cadence,
    /// When it is next due, as last read.
    next_run: DateTime<Utc>,
}

/// Fires the schedules registered with one engine.
#[derive(Clone)]
pub(crate) struct Scheduler {
    store: JobStore,
    schedules: Arc<Mutex<HashMap<String, Registered>>>,
    /// Wakes the firing loop when a schedule is registered.
    registered: Arc<Notify>,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler").finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Starts the firing loop (which idles until a schedule is registered), until `shutdown`.
    pub(crate) fn start(store: JobStore, shutdown: CancellationToken) -> Self {
        let scheduler = Self {
            store,
            schedules: Arc::new(Mutex::new(HashMap::new())),
            registered: Arc::new(Notify::new()),
        };
        tokio::spawn(scheduler.clone().run(shutdown));
        scheduler
    }

    /// Registers (or updates) a schedule and fires it from now on.
    pub(crate) async fn register(
        &self,
        name: &str,
        cadence: Cadence,
        kind: &str,
        payload: Vec<u8>,
    ) -> JobsResult<()> {
        if name.is_empty() || name.len() > MAX_SCHEDULE_NAME_LEN {
            return Err(invalid(
                "name",
                format!("must be 1 to {MAX_SCHEDULE_NAME_LEN} bytes"),
            ));
        }
        if kind.is_empty() {
            return Err(invalid("kind", "must not be empty".into()));
        }
        let now = now();
        let first_run = cadence
            .next_after(now)
            .ok_or_else(|| invalid("cadence", "never runs".into()))?;
        let max_attempts = crate::model::SubmitOptions::default().max_attempts;
        let next_run = self
            .store
            .register_schedule(
                name,
                kind,
                &payload,
                max_attempts,
                &cadence.to_string(),
                first_run,
                now,
            )
            .await?;
        tracing::info!(schedule = name, %cadence, kind, %next_run, "job schedule registered");
        self.schedules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), Registered { cadence, next_run });
        self.registered.notify_one();
        Ok(())
    }

    /// Fires due ticks until `shutdown`, sleeping until the next one is due.
    async fn run(self, shutdown: CancellationToken) {
        loop {
            let wake = self.fire_due().await;
            let nap = (wake - now()).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.registered.notified() => {}
                _ = tokio::time::sleep(nap.min(LONGEST_NAP)) => {}
            }
        }
    }

    /// Fires every due schedule's tick; returns when the next one is due.
    async fn fire_due(&self) -> DateTime<Utc> {
        let due: Vec<(String, Cadence)> = {
            let now = now();
            let schedules = self.schedules.lock().unwrap_or_else(|e| e.into_inner());
            schedules
                .iter()
                .filter(|(_, schedule)| schedule.next_run <= now)
                .map(|(name, schedule)| (name.clone(), schedule.cadence.clone()))
                .collect()
        };
        for (name, cadence) in due {
            let next_run = match self.fire(&name, &cadence).await {
                Ok(next_run) => next_run,
                Err(error) => {
                    tracing::warn!(%error, schedule = name, "firing a job schedule failed");
                    now() + RETRY_AFTER_ERROR
                }
            };
            if let Some(schedule) = self
                .schedules
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&name)
            {
                schedule.next_run = next_run;
            }
        }
        let schedules = self.schedules.lock().unwrap_or_else(|e| e.into_inner());
        schedules
            .values()
            .map(|schedule| schedule.next_run)
            .min()
            .unwrap_or_else(|| now() + LONGEST_NAP)
    }

    /// Fires a schedule's tick if it is due and no other replica took it; returns when the
    /// schedule is next due.
    async fn fire(&self, name: &str, cadence: &Cadence) -> JobsResult<DateTime<Utc>> {
        let Some(due) = self.store.schedule_next_run(name).await? else {
            tracing::warn!(schedule = name, "job schedule not found: register it again");
            return Ok(now() + LONGEST_NAP);
        };
        let now = now();
        if due > now {
            return Ok(due); // another replica fired it
        }
        let next = cadence
            .next_after_tick(due, now)
            .unwrap_or(now + LONGEST_NAP);
        let key = format!(
            "schedule:{name}:{}",
            due.to_rfc3339_opts(SecondsFormat::Micros, true)
        );
        if let Some(job) = self
            .store
            .fire_schedule(name, due, next, SYSTEM_OWNER, key, now)
            .await?
        {
            tracing::info!(schedule = name, job_id = %job.id, kind = job.kind, %due, "scheduled job queued");
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, s)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn cron_cadences_tick_at_the_matching_times() {
        let daily = Cadence::cron("0 3 * * *").expect("a cron expression");
        assert_eq!(daily.next_after(at(2, 0, 0)), Some(at(3, 0, 0)));
        assert_eq!(
            daily.next_after(at(3, 0, 0)),
            Some(at(3, 0, 0) + chrono::Duration::days(1))
        );
        // A tick missed for hours fires once, then the schedule goes on from the present.
        assert_eq!(
            daily.next_after_tick(at(3, 0, 0) - chrono::Duration::days(2), at(1, 0, 0)),
            Some(at(3, 0, 0))
        );
        let seconds = Cadence::cron("*/10 * * * * *").expect("with seconds");
        assert_eq!(seconds.next_after(at(1, 0, 1)), Some(at(1, 0, 10)));
        assert_eq!(daily.to_string(), "cron 0 3 * * *");
        assert!(Cadence::cron("every tuesday").is_err());
    }

    #[test]
    fn interval_cadences_keep_their_grid() {
        let every = Cadence::every(Duration::from_secs(60)).expect("an interval");
        assert_eq!(
            every.next_after_tick(at(1, 0, 0), at(1, 0, 0)),
            Some(at(1, 1, 0))
        );
        // Behind by several intervals: the next tick on the same grid after now.
        assert_eq!(
            every.next_after_tick(at(1, 0, 0), at(1, 5, 30)),
            Some(at(1, 6, 0))
        );
        assert_eq!(every.to_string(), "every 60000ms");
        assert!(Cadence::every(Duration::ZERO).is_err());
    }
}
