//! Job change notifications.
//!
//! Every change to a job is published as a [`JobEvent`]. On SQLite (one process) events go
//! straight to an in-process broadcast. On PostgreSQL they go through `pg_notify` on the
//! `aimesh_jobs` channel and every replica's listener re-broadcasts what it hears — its own
//! events included — so a WatchJob served by one replica sees progress made on another, and
//! idle workers everywhere wake up when a job is queued.
//!
//! The hot statements of the store (submitting, claiming, progress, finishing) notify from
//! inside the statement itself ([`pg_notify_each!`]), so a change and its events are one round
//! trip and one commit, and the event is delivered exactly when the change becomes visible; the
//! caller then only calls [`Notifier::committed`], which broadcasts in process on SQLite.

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{Arc, Mutex},
};

use aimesh_kit::db::Db;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// [`CHANNEL`] as a literal, for SQL built with `concat!`.
macro_rules! channel {
    () => {
        "aimesh_jobs"
    };
}
pub(crate) use channel;

/// The PostgreSQL channel job events travel on.
pub const CHANNEL: &str = channel!();

/// A CTE, `notified`, notifying an event about each row of `$rows` (a table or CTE alias with
/// `id`, `kind` and `owner_id` columns), `$kind` being an SQL expression for the event kind's
/// name. Events go several to a notification, one [`JobEvent`] encoding per line, in payloads
/// kept well under PostgreSQL's 8,000-byte limit: each notification costs the server a queue
/// entry and the listener a message, so a statement changing a hundred jobs sends one or two.
/// PostgreSQL evaluates a CTE only as far as it is read, so the statement must read all of
/// it; [`notified!`] is the condition that does:
/// `WITH changed AS (...), pg_notify_each!("'changed'", "changed") SELECT changed.id
/// FROM changed WHERE notified!()`.
macro_rules! pg_notify_each {
    ($kind:literal, $rows:literal) => {
        concat!(
            "notified AS (SELECT pg_notify('",
            $crate::notify::channel!(),
            "', string_agg(event, chr(10))) FROM (SELECT event, \
             sum(octet_length(event) + 1) OVER (ROWS UNBOUNDED PRECEDING) / 4000 AS chunk \
             FROM (SELECT ",
            $kind,
            " || ' ' || ",
            $rows,
            ".id::text || ' ' || ",
            $rows,
            ".kind || ' ' || ",
            $rows,
            ".owner_id AS event FROM ",
            $rows,
            ") events) lines GROUP BY chunk)"
        )
    };
}
pub(crate) use pg_notify_each;

/// The condition making a statement send the notifications of its [`pg_notify_each!`] CTE.
macro_rules! notified {
    () => {
        "(SELECT count(*) FROM notified) > 0"
    };
}
pub(crate) use notified;

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// It became claimable (submitted, retried, released).
    Queued,
    /// Its state, progress or result changed.
    Changed,
    /// Cancellation was requested while it runs.
    CancelRequested,
    /// Events may have been lost (a listener reconnected): re-read everything watched.
    Resync,
}

impl EventKind {
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

/// A change to a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    /// What happened.
    pub kind: EventKind,
    /// The job.
    pub job_id: Uuid,
    /// Its owner.
    pub owner_id: String,
    /// Its handler kind.
    pub job_kind: String,
}

impl JobEvent {
    /// The event `kind` about `job`.
    pub fn of(kind: EventKind, job: &crate::model::Job) -> Self {
        Self {
            kind,
            job_id: job.id,
            owner_id: job.owner_id.clone(),
            job_kind: job.kind.clone(),
        }
    }

    fn encode(&self) -> String {
        format!(
            "{} {} {} {}",
            self.kind.as_str(),
            self.job_id,
            self.job_kind,
            self.owner_id
        )
    }

    fn decode(payload: &str) -> Option<Self> {
        let mut parts = payload.splitn(4, ' ');
        Some(Self {
            kind: parts.next()?.parse().ok()?,
            job_id: Uuid::try_parse(parts.next()?).ok()?,
            job_kind: parts.next()?.to_owned(),
            owner_id: parts.next()?.to_owned(),
        })
    }

    /// Decodes a notification's payload: one event per line (see [`pg_notify_each!`]);
    /// lines that are not events are skipped.
    fn decode_all(payload: &str) -> impl Iterator<Item = Self> + '_ {
        payload.lines().filter_map(Self::decode)
    }

    fn resync() -> Self {
        Self {
            kind: EventKind::Resync,
            job_id: Uuid::nil(),
            owner_id: String::new(),
            job_kind: String::new(),
        }
    }
}

/// Publishes and distributes job events.
#[derive(Debug, Clone)]
pub struct Notifier {
    db: Db,
    fanout: Arc<Fanout>,
}

/// Hands events to those who wait for them: every event to the watch streams' broadcast,
/// and to workers only what they act on — a wake-up for their kind when a job is queued, and
/// cancellation requests — so that the stream of progress events does not wake every worker.
#[derive(Debug)]
struct Fanout {
    all: broadcast::Sender<JobEvent>,
    cancellations: broadcast::Sender<JobEvent>,
    queued: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Fanout {
    fn queued(&self, kind: &str) -> Arc<Notify> {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = queued.get(kind) {
            return notify.clone();
        }
        queued.entry(kind.to_owned()).or_default().clone()
    }

    fn dispatch(&self, event: JobEvent) {
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

impl Notifier {
    /// Creates a notifier; on PostgreSQL it also starts the listener (stopped by `shutdown`).
    pub async fn start(db: Db, shutdown: CancellationToken) -> Result<Self, sqlx::Error> {
        let fanout = Arc::new(Fanout {
            all: broadcast::channel(4096).0,
            cancellations: broadcast::channel(256).0,
            queued: Mutex::new(HashMap::new()),
        });
        if let Db::Postgres(pool) = &db {
            let fanout = fanout.clone();
            aimesh_kit::db::listen(pool, CHANNEL, shutdown, move |payload| {
                match payload {
                    // One event per line (see `pg_notify_each!`).
                    Some(payload) => JobEvent::decode_all(payload).for_each(|e| fanout.dispatch(e)),
                    // Events may have been lost: watchers re-read what they watch.
                    None => fanout.dispatch(JobEvent::resync()),
                }
            })
            .await?;
        }
        Ok(Self { db, fanout })
    }

    /// Publishes an event. Failing to notify never fails the change itself: watchers and
    /// workers also poll.
    pub async fn publish(&self, event: JobEvent) {
        match &self.db {
            Db::Sqlite(_) => self.fanout.dispatch(event),
            Db::Postgres(pool) => {
                if let Err(error) = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(event.encode())
                    .execute(pool)
                    .await
                {
                    tracing::warn!(%error, "failed to publish a job event");
                    self.fanout.dispatch(event);
                }
            }
        }
    }

    /// Announces a change the store has committed with its notification inside the statement
    /// (see the module docs): on PostgreSQL the event is already on its way through the
    /// listener; on SQLite it is dispatched here.
    pub fn committed(&self, event: JobEvent) {
        if let Db::Sqlite(_) = &self.db {
            self.fanout.dispatch(event);
        }
    }

    /// Returns how many subscriptions are open (each watch stream holds one).
    pub fn subscriber_count(&self) -> usize {
        self.fanout.all.receiver_count()
    }

    /// Subscribes to every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.fanout.all.subscribe()
    }

    /// Subscribes to cancellation requests (and [`EventKind::Resync`]) only.
    pub fn subscribe_cancellations(&self) -> broadcast::Receiver<JobEvent> {
        self.fanout.cancellations.subscribe()
    }

    /// Returns what is notified (`notify_waiters`) when a job of `kind` is queued, or when
    /// events may have been lost.
    pub fn queued(&self, kind: &str) -> Arc<Notify> {
        self.fanout.queued(kind)
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
