//! The in-process side of job change notifications.
//!
//! Every change to a job is announced as a [`JobEvent`] on a [`Fanout`]. On SQLite (one
//! process) the store dispatches the events of a write once it committed. On PostgreSQL each
//! writing statement notifies its own changes with `pg_notify` on the [`CHANNEL`] (the
//! `notified` CTE written out in each of `queries/postgres/*.sql`), so a change and its events
//! are one round trip and one commit and an event is delivered exactly when its change becomes
//! visible; every replica's listener dispatches what it hears, its own events included, so a
//! watch served by one replica sees progress made on another, and idle workers everywhere wake
//! up when a job is queued.

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{Arc, Mutex},
};

use aimesh_kit::db::Db;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::model::{EventKind, JobEvent};

/// The PostgreSQL channel job events travel on (named in each notifying statement).
pub(crate) const CHANNEL: &str = "aimesh_jobs";

impl EventKind {
    /// The name of the kind in a notification (and in the statements' `notified` CTEs).
    #[cfg(test)]
    fn as_str(self) -> &'static str {
        match self {
            EventKind::Queued => "queued",
            EventKind::Changed => "changed",
            EventKind::CancelRequested => "cancel",
            EventKind::Resync => "resync",
        }
    }
}

impl FromStr for EventKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => EventKind::Queued,
            "changed" => EventKind::Changed,
            "cancel" => EventKind::CancelRequested,
            "resync" => EventKind::Resync,
            _ => return Err(()),
        })
    }
}

impl JobEvent {
    /// Encodes the event as a notification line: `<event> <id> <kind> <owner>`.
    #[cfg(test)]
    fn encode(&self) -> String {
        format!(
            "{} {} {} {}",
            self.kind.as_str(),
            self.job_id,
            self.job_kind,
            self.owner_id
        )
    }

    fn decode(line: &str) -> Option<Self> {
        let mut parts = line.splitn(4, ' ');
        Some(Self {
            kind: parts.next()?.parse().ok()?,
            job_id: Uuid::try_parse(parts.next()?).ok()?,
            job_kind: parts.next()?.to_owned(),
            owner_id: parts.next()?.to_owned(),
        })
    }

    /// Decodes a notification's payload: one event per line; lines that are not events are
    /// skipped.
    fn decode_all(payload: &str) -> impl Iterator<Item = Self> + '_ {
        payload.lines().filter_map(Self::decode)
    }
}

/// Hands events to those who wait for them: every event to the watch streams' broadcast,
/// and to workers only what they act on — a wake-up for their kind when a job is queued, and
/// cancellation requests — so that the stream of progress events does not wake every worker.
#[derive(Debug)]
pub(crate) struct Fanout {
    all: broadcast::Sender<JobEvent>,
    cancellations: broadcast::Sender<JobEvent>,
    queued: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Fanout {
    /// Creates a fanout; on PostgreSQL it also starts the listener that dispatches what the
    /// channel carries (stopped by `shutdown`).
    pub(crate) async fn start(
        db: &Db,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, sqlx::Error> {
        let fanout = Arc::new(Fanout {
            all: broadcast::channel(4096).0,
            cancellations: broadcast::channel(256).0,
            queued: Mutex::new(HashMap::new()),
        });
        if let Db::Postgres(pool) = db {
            let fanout = fanout.clone();
            aimesh_kit::db::listen(pool, CHANNEL, shutdown, move |payload| {
                match payload {
                    Some(payload) => JobEvent::decode_all(payload).for_each(|e| fanout.dispatch(e)),
                    // Events may have been lost: watchers re-read what they watch.
                    None => fanout.dispatch(JobEvent::resync()),
                }
            })
            .await?;
        }
        Ok(fanout)
    }

    /// Returns what is notified (`notify_waiters`) when a job of `kind` is queued, or when
    /// events may have been lost.
    pub(crate) fn queued(&self, kind: &str) -> Arc<Notify> {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = queued.get(kind) {
            return notify.clone();
        }
        queued.entry(kind.to_owned()).or_default().clone()
    }

    /// Subscribes to every event from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.all.subscribe()
    }

    /// Subscribes to cancellation requests (and [`EventKind::Resync`]) only.
    pub(crate) fn subscribe_cancellations(&self) -> broadcast::Receiver<JobEvent> {
        self.cancellations.subscribe()
    }

    /// Returns how many subscriptions to every event are open (each watch stream holds one).
    pub(crate) fn subscriber_count(&self) -> usize {
        self.all.receiver_count()
    }

    /// Hands an event to those who wait for it.
    pub(crate) fn dispatch(&self, event: JobEvent) {
        match event.kind {
            EventKind::Queued => {
                let notify = self
                    .queued
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&event.job_kind)
                    .cloned();
                if let Some(notify) = notify {
                    notify.notify_waiters();
                }
            }
            EventKind::CancelRequested => {
                let _ = self.cancellations.send(event.clone());
            }
            EventKind::Resync => {
                for notify in self
                    .queued
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                {
                    notify.notify_waiters();
                }
                let _ = self.cancellations.send(event.clone());
            }
            EventKind::Changed => {}
        }
        let _ = self.all.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_payload() {
        let event = JobEvent {
            kind: EventKind::CancelRequested,
            job_id: Uuid::now_v7(),
            owner_id: "owner with spaces".into(),
            job_kind: "notes.translate".into(),
        };
        assert_eq!(JobEvent::decode(&event.encode()), Some(event));
        assert_eq!(JobEvent::decode("nonsense"), None);
    }

    #[test]
    fn a_payload_carries_one_event_per_line() {
        let events: Vec<JobEvent> = [EventKind::Queued, EventKind::Changed]
            .into_iter()
            .map(|kind| JobEvent {
                kind,
                job_id: Uuid::now_v7(),
                owner_id: "owner".into(),
                job_kind: "bench.noop".into(),
            })
            .collect();
        let payload = format!("{}\nnonsense\n{}", events[0].encode(), events[1].encode());
        assert_eq!(JobEvent::decode_all(&payload).collect::<Vec<_>>(), events);
    }
}
