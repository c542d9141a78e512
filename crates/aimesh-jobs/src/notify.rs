//! Job change notifications.
//!
//! Every change to a job is published as a [`JobEvent`]. On SQLite (one process) events go
//! straight to an in-process broadcast. On PostgreSQL they go through `pg_notify` on the
//! `aimesh_jobs` channel and every replica's listener re-broadcasts what it hears — its own
//! events included — so a WatchJob served by one replica sees progress made on another, and
//! idle workers everywhere wake up when a job is queued.
//!
//! The hot statements of the store (submitting, claiming, progress, finishing) notify from
//! inside the statement itself ([`pg_notify!`]), so a change and its event are one round trip
//! and one commit, and the event is delivered exactly when the change becomes visible; the
//! caller then only calls [`Notifier::committed`], which broadcasts in process on SQLite.

use std::str::FromStr;

use aimesh_kit::db::Db;
use tokio::sync::broadcast;
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

/// The SQL call notifying an event about the job row `$row` (a table or CTE alias with `id`,
/// `kind` and `owner_id` columns), `$kind` being an SQL expression for the event kind's name.
/// Its payload is [`JobEvent`]'s encoding. Used in a `FROM` list, so that it runs once per row:
/// `SELECT changed.id FROM changed, pg_notify!("'changed'", "changed")`.
macro_rules! pg_notify {
    ($kind:literal, $row:literal) => {
        concat!(
            "pg_notify('",
            $crate::notify::channel!(),
            "', ",
            $kind,
            " || ' ' || ",
            $row,
            ".id::text || ' ' || ",
            $row,
            ".kind || ' ' || ",
            $row,
            ".owner_id)"
        )
    };
}
pub(crate) use pg_notify;

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
    local: broadcast::Sender<JobEvent>,
}

impl Notifier {
    /// Creates a notifier; on PostgreSQL it also starts the listener (stopped by `shutdown`).
    pub async fn start(db: Db, shutdown: CancellationToken) -> Result<Self, sqlx::Error> {
        let (local, _) = broadcast::channel(4096);
        if let Db::Postgres(pool) = &db {
            let local = local.clone();
            aimesh_kit::db::listen(pool, CHANNEL, shutdown, move |payload| {
                let event = match payload {
                    Some(payload) => JobEvent::decode(payload),
                    // Events may have been lost: watchers re-read what they watch.
                    None => Some(JobEvent::resync()),
                };
                if let Some(event) = event {
                    let _ = local.send(event);
                }
            })
            .await?;
        }
        Ok(Self { db, local })
    }

    /// Publishes an event. Failing to notify never fails the change itself: watchers and
    /// workers also poll.
    pub async fn publish(&self, event: JobEvent) {
        match &self.db {
            Db::Sqlite(_) => {
                let _ = self.local.send(event);
            }
            Db::Postgres(pool) => {
                if let Err(error) = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(event.encode())
                    .execute(pool)
                    .await
                {
                    tracing::warn!(%error, "failed to publish a job event");
                    let _ = self.local.send(event);
                }
            }
        }
    }

    /// Announces a change the store has committed with its notification inside the statement
    /// (see the module docs): on PostgreSQL the event is already on its way through the
    /// listener; on SQLite it is broadcast here.
    pub fn committed(&self, event: JobEvent) {
        if let Db::Sqlite(_) = &self.db {
            let _ = self.local.send(event);
        }
    }

    /// Returns how many subscriptions are open (each watch stream holds one).
    pub fn subscriber_count(&self) -> usize {
        self.local.receiver_count()
    }

    /// Subscribes to every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.local.subscribe()
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
}
