//! The writing side of domain events: a service records an event in the same transaction as
//! the change it tells of ([`Outbox::record`]), so the event commits or rolls back with it.
//!
//! ```ignore
//! with_db!(&self.db, INSERT "notes", |pool| async {
//!     let mut tx = pool.begin().await?;
//!     sqlx::query("INSERT INTO notes ...").execute(&mut *tx).await?;
//!     tx.record(&NewEvent::new(owner, id, pb::NoteCreated { .. })).await?;
//!     tx.commit().await
//! }.await)
//! ```
//!
//! A recorded event has no place in the order of events yet: the relay's sequencer numbers
//! events once they are committed ([`crate::store::EventStore::sequence`]), so a watcher that
//! has seen number `n` never misses an event that commits later with a smaller id.

use std::sync::LazyLock;

use aimesh_proto::events::v1::{self as pb, event_payload::Kind};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use prost::Message;
use sqlx::{PgConnection, SqliteConnection};
use tokio::sync::Notify;
use uuid::Uuid;

/// The PostgreSQL channel on which a committed event wakes the sequencer of every process.
pub(crate) const PENDING_CHANNEL: &str = "aimesh_events_pending";

/// Woken when an event is recorded in this process (before its transaction commits: the
/// sequencer looks again shortly after, see [`crate::relay`]).
pub(crate) static PENDING: LazyLock<Notify> = LazyLock::new(Notify::new);

/// An event about to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Its id (UUIDv7).
    pub id: Uuid,
    /// Its type, `<service>.<entity>.<what happened>`; follows from the payload.
    pub event_type: &'static str,
    /// The account the change belongs to.
    pub owner_id: String,
    /// The resource that changed.
    pub subject_id: String,
    /// What happened.
    pub payload: Kind,
    /// The `traceparent` of the span it was made in.
    pub traceparent: Option<String>,
    /// When.
    pub time: DateTime<Utc>,
}

impl NewEvent {
    /// An event of `owner`'s about `subject`, made now in the current span.
    pub fn new(owner_id: &str, subject_id: impl ToString, payload: impl Payload) -> Self {
        let payload = payload.into_kind();
        Self {
            id: Uuid::now_v7(),
            event_type: event_type(&payload),
            owner_id: owner_id.to_owned(),
            subject_id: subject_id.to_string(),
            payload,
            traceparent: aimesh_kit::telemetry::current_traceparent(),
            time: aimesh_kit::db::now(),
        }
    }

    /// Sets the time of the change (when the caller already has it).
    pub fn at(mut self, time: DateTime<Utc>) -> Self {
        self.time = time;
        self
    }

    fn encoded_payload(&self) -> Vec<u8> {
        pb::EventPayload {
            kind: Some(self.payload.clone()),
        }
        .encode_to_vec()
    }
}

/// A connection (or transaction) an event can be recorded on.
pub trait Outbox {
    /// Inserts `event` into the outbox; it becomes visible when the transaction commits.
    fn record<'a>(&'a mut self, event: &'a NewEvent) -> BoxFuture<'a, Result<(), sqlx::Error>>;
}

const INSERT: &str = "INSERT INTO events (id, type, owner_id, subject_id, payload, traceparent, \
                      created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

impl Outbox for SqliteConnection {
    fn record<'a>(&'a mut self, event: &'a NewEvent) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            sqlx::query(INSERT)
                .bind(event.id)
                .bind(event.event_type)
                .bind(&event.owner_id)
                .bind(&event.subject_id)
                .bind(event.encoded_payload())
                .bind(event.traceparent.as_deref())
                .bind(event.time)
                .execute(&mut *self)
                .await?;
            PENDING.notify_one();
            Ok(())
        })
    }
}

impl Outbox for PgConnection {
    fn record<'a>(&'a mut self, event: &'a NewEvent) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            // The notification is delivered when the transaction commits, to every process.
            sqlx::query(
                "WITH inserted AS (INSERT INTO events (id, type, owner_id, subject_id, payload, \
                 traceparent, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING 1) \
                 SELECT pg_notify($8, '') FROM inserted",
            )
            .bind(event.id)
            .bind(event.event_type)
            .bind(&event.owner_id)
            .bind(&event.subject_id)
            .bind(event.encoded_payload())
            .bind(event.traceparent.as_deref())
            .bind(event.time)
            .bind(PENDING_CHANNEL)
            .execute(&mut *self)
            .await?;
            Ok(())
        })
    }
}

/// A payload message of an event (`pb::NoteCreated`, ...).
pub trait Payload {
    /// The payload as the variant of `EventPayload.kind` it is.
    fn into_kind(self) -> Kind;
}

impl Payload for Kind {
    fn into_kind(self) -> Kind {
        self
    }
}

/// The event types, one per payload message: [`event_type`], [`EVENT_TYPES`] and the
/// [`Payload`] of each message, from one list.
macro_rules! event_types {
    ($($message:ident => $name:literal,)*) => {
        /// The type of an event with this payload.
        pub fn event_type(payload: &Kind) -> &'static str {
            match payload {
                $(Kind::$message(_) => $name,)*
            }
        }

        /// Every event type, for documentation and validation of type filters.
        pub const EVENT_TYPES: &[&str] = &[$($name,)*];

        $(
            impl Payload for pb::$message {
                fn into_kind(self) -> Kind {
                    Kind::$message(self)
                }
            }
        )*
    };
}

event_types! {
    NoteCreated => "notes.note.created",
    NoteUpdated => "notes.note.updated",
    NoteDeleted => "notes.note.deleted",
    NoteTranslated => "notes.note.translated",
    DocumentUploaded => "processing.document.uploaded",
    DocumentProcessed => "processing.document.processed",
    DocumentDeleted => "processing.document.deleted",
    TaskFinished => "processing.task.finished",
    QuizSubmitted => "processing.quiz.submitted",
    MessageAnswered => "conversation.message.answered",
    ImageCreated => "gallery.image.created",
    ImageTrashed => "gallery.image.trashed",
    ImageRestored => "gallery.image.restored",
    ImageDeleted => "gallery.image.deleted",
    TranscriptionFinished => "speech.transcription.finished",
    AudioGenerated => "speech.audio.generated",
    ReportFinished => "reports.report.finished",
    AccountCreated => "identity.account.created",
    AccountDeleted => "identity.account.deleted",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_listed_once_and_named_after_its_service() {
        let mut seen = std::collections::HashSet::new();
        for name in EVENT_TYPES {
            assert!(seen.insert(name), "{name} twice");
            assert_eq!(name.split('.').count(), 3, "{name}");
        }
        let event = NewEvent::new("u1", "n1", pb::NoteDeleted {});
        assert_eq!(event.event_type, "notes.note.deleted");
        assert!(EVENT_TYPES.contains(&event.event_type));
    }
}
