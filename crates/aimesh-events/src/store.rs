//! The outbox table: numbering committed events, reading them in that order, marking them
//! published and pruning them — the same SQL on SQLite and PostgreSQL.

use aimesh_kit::{
    db::{Db, Migrations},
    with_db,
};
use aimesh_proto::events::v1 as pb;
use chrono::{DateTime, Utc};
use prost::Message;
use sqlx::QueryBuilder;
use uuid::Uuid;

/// The events' migrations (the outbox every service writes to: apply them before theirs).
pub const MIGRATIONS: Migrations = aimesh_kit::migrations!("events");

/// Events numbered or published per statement.
pub(crate) const BATCH: i64 = 500;

/// The advisory lock key of the sequencer (PostgreSQL): one numbers events at a time.
const SEQUENCER_LOCK: i64 = 0x6169_6d65_7368_0001;
/// The advisory lock key of the publisher (PostgreSQL): one replica publishes at a time, so
/// events reach JetStream in their order.
const PUBLISHER_LOCK: i64 = 0x6169_6d65_7368_0002;

/// The PostgreSQL channel on which newly numbered events wake every process's watchers.
pub(crate) const SEQUENCED_CHANNEL: &str = "aimesh_events";

/// An event as stored, numbered.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Its id.
    pub id: Uuid,
    /// Its place in the order events became visible.
    pub seq: i64,
    /// Its type.
    pub event_type: String,
    /// The account it belongs to.
    pub owner_id: String,
    /// The resource it is about.
    pub subject_id: String,
    /// `aimesh.events.v1.EventPayload`, encoded.
    pub payload: Vec<u8>,
    /// The `traceparent` of the change.
    pub traceparent: Option<String>,
    /// When the change was made.
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: Uuid,
    seq: i64,
    #[sqlx(rename = "type")]
    event_type: String,
    owner_id: String,
    subject_id: String,
    payload: Vec<u8>,
    traceparent: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<EventRow> for StoredEvent {
    fn from(row: EventRow) -> Self {
        Self {
            id: row.id,
            seq: row.seq,
            event_type: row.event_type,
            owner_id: row.owner_id,
            subject_id: row.subject_id,
            payload: row.payload,
            traceparent: row.traceparent,
            created_at: row.created_at,
        }
    }
}

impl StoredEvent {
    /// The event as the API sends it (a payload that no longer decodes is sent empty).
    pub fn to_proto(&self) -> pb::Event {
        pb::Event {
            id: self.id.to_string(),
            sequence: self.seq,
            r#type: self.event_type.clone(),
            time: Some(aimesh_kit::proto::timestamp(self.created_at)),
            owner_id: self.owner_id.clone(),
            subject_id: self.subject_id.clone(),
            traceparent: self.traceparent.clone().unwrap_or_default(),
            payload: pb::EventPayload::decode(self.payload.as_slice()).ok(),
        }
    }
}

const COLUMNS: &str = "id, seq, type, owner_id, subject_id, payload, traceparent, created_at";

/// Which events a read returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// One account's (`None`: every account's).
    pub owner_id: Option<String>,
    /// Types, each matching itself and the types it is a dotted prefix of (empty: all).
    pub types: Vec<String>,
}

/// Adds an [`EventFilter`]'s conditions to a `WHERE` clause being built (a macro: the
/// builder's type differs per backend).
macro_rules! push_filter {
    ($sql:expr, $filter:expr) => {{
        let filter: &EventFilter = $filter;
        if let Some(owner) = &filter.owner_id {
            $sql.push(" AND owner_id = ").push_bind(owner.clone());
        }
        if !filter.types.is_empty() {
            $sql.push(" AND (");
            for (i, prefix) in filter.types.iter().enumerate() {
                if i > 0 {
                    $sql.push(" OR ");
                }
                let dotted = format!("{prefix}.");
                $sql.push("type = ")
                    .push_bind(prefix.clone())
                    .push(" OR substr(type, 1, ")
                    .push_bind(dotted.len() as i32)
                    .push(") = ")
                    .push_bind(dotted);
            }
            $sql.push(")");
        }
    }};
}

/// Events in a database.
#[derive(Debug, Clone)]
pub struct EventStore {
    db: Db,
}

impl EventStore {
    /// A store on a migrated database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Returns the database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Numbers up to `limit` committed events that have no number yet, in id order, after
    /// every number handed out before; returns how many it numbered. One sequencer at a time
    /// (an advisory lock on PostgreSQL; SQLite has one writer).
    pub async fn sequence(&self, limit: i64) -> Result<u64, sqlx::Error> {
        with_db!(&self.db, UPDATE "events", |pool| async {
            let mut tx = pool.begin().await?;
            if self.db.backend() == "postgres" {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(SEQUENCER_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let numbered = sqlx::query(
                "UPDATE events SET seq = (SELECT last FROM event_sequence WHERE id = 1) + \
                 pending.n FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM events \
                 WHERE seq IS NULL ORDER BY id LIMIT $1) AS pending \
                 WHERE events.id = pending.id",
            )
            .bind(limit)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if numbered > 0 {
                let numbered = numbered as i64;
                sqlx::query("UPDATE event_sequence SET last = last + $1 WHERE id = 1")
                    .bind(numbered)
                    .execute(&mut *tx)
                    .await?;
                if self.db.backend() == "postgres" {
                    sqlx::query("SELECT pg_notify($1, '')")
                        .bind(SEQUENCED_CHANNEL)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(numbered)
        }.await)
    }

    /// The last number handed out: events numbered later have larger ones.
    pub async fn last_seq(&self) -> Result<i64, sqlx::Error> {
        with_db!(&self.db, SELECT "event_sequence", |pool| {
            sqlx::query_scalar("SELECT last FROM event_sequence WHERE id = 1")
                .fetch_one(pool)
                .await
        })
    }

    /// The number and owner of a retained, numbered event.
    pub async fn position(&self, id: Uuid) -> Result<Option<(i64, String)>, sqlx::Error> {
        with_db!(&self.db, SELECT "events", |pool| {
            sqlx::query_as("SELECT seq, owner_id FROM events WHERE id = $1 AND seq IS NOT NULL")
                .bind(id)
                .fetch_optional(pool)
                .await
        })
    }

    /// Up to `limit` numbered events after `after`, in order.
    pub async fn after(
        &self,
        after: i64,
        filter: &EventFilter,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let rows: Vec<EventRow> = with_db!(&self.db, SELECT "events", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(COLUMNS)
                .push(" FROM events WHERE seq > ")
                .push_bind(after);
            push_filter!(sql, filter);
            sql.push(" ORDER BY seq LIMIT ").push_bind(limit);
            sql.build_query_as().fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Up to `limit` numbered events before `before` (`None`: the newest), newest first.
    pub async fn before(
        &self,
        before: Option<i64>,
        filter: &EventFilter,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let rows: Vec<EventRow> = with_db!(&self.db, SELECT "events", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(COLUMNS)
                .push(" FROM events WHERE seq < ")
                .push_bind(before.unwrap_or(i64::MAX));
            push_filter!(sql, filter);
            sql.push(" ORDER BY seq DESC LIMIT ").push_bind(limit);
            sql.build_query_as().fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Publishes numbered, unpublished events in order, `limit` at a time, through
    /// `publish` (which returns once the broker has them all), then marks them published —
    /// as one replica at a time on PostgreSQL (the others skip: returns `None`; SQLite has one
    /// process). Returns how many it published.
    pub async fn publish_pending<F, Fut, E>(
        &self,
        limit: i64,
        publish: F,
    ) -> Result<Option<usize>, PublishError<E>>
    where
        F: FnOnce(Vec<StoredEvent>) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        // Reads a batch, publishes it, marks it: `$conn` is the pool (SQLite) or the
        // transaction holding the publisher's lock (PostgreSQL).
        macro_rules! publish_batch {
            ($conn:expr) => {{
                let rows: Vec<EventRow> = sqlx::query_as(
                    "SELECT id, seq, type, owner_id, subject_id, payload, traceparent, \
                     created_at FROM events WHERE published_at IS NULL AND seq IS NOT NULL \
                     ORDER BY seq LIMIT $1",
                )
                .bind(limit)
                .fetch_all($conn)
                .await?;
                if rows.is_empty() {
                    return Ok(Some(0));
                }
                let events: Vec<StoredEvent> = rows.into_iter().map(Into::into).collect();
                let last = events.last().map_or(0, |event| event.seq);
                let first = events.first().map_or(0, |event| event.seq);
                let count = events.len();
                publish(events).await.map_err(PublishError::Publish)?;
                sqlx::query(
                    "UPDATE events SET published_at = $1 WHERE seq >= $2 AND seq <= $3 \
                     AND published_at IS NULL",
                )
                .bind(aimesh_kit::db::now())
                .bind(first)
                .bind(last)
                .execute($conn)
                .await?;
                count
            }};
        }
        let span = aimesh_kit::db::query_span(&self.db, "UPDATE", "events", "UPDATE events");
        let work = async {
            match &self.db {
                // One process, one relay: no lock, and no read transaction held while
                // JetStream answers (its snapshot would refuse the marking once writers moved on).
                Db::Sqlite(pool) => Ok(Some(publish_batch!(pool))),
                Db::Postgres(pool) => {
                    let mut tx = pool.begin().await?;
                    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                        .bind(PUBLISHER_LOCK)
                        .fetch_one(&mut *tx)
                        .await?;
                    if !locked {
                        return Ok(None);
                    }
                    let count = publish_batch!(&mut *tx);
                    tx.commit().await?;
                    Ok(Some(count))
                }
            }
        };
        tracing::Instrument::instrument(work, span).await
    }

    /// Deletes numbered events made before `before`: only published ones when `published`
    /// is set (a relay is configured), else any. Returns how many went.
    pub async fn prune(&self, before: DateTime<Utc>, published: bool) -> Result<u64, sqlx::Error> {
        let sql = if published {
            "DELETE FROM events WHERE created_at < $1 AND seq IS NOT NULL \
             AND published_at IS NOT NULL"
        } else {
            "DELETE FROM events WHERE created_at < $1 AND seq IS NOT NULL"
        };
        with_db!(&self.db, DELETE "events", |pool| {
            sqlx::query(sql)
                .bind(before)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
    }

    /// How many events wait to be published.
    pub async fn unpublished(&self) -> Result<i64, sqlx::Error> {
        with_db!(&self.db, SELECT "events", |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE published_at IS NULL")
                .fetch_one(pool)
                .await
        })
    }

    /// Deletes every event of `owner`'s; returns how many went.
    pub async fn delete_owner(&self, owner: &str) -> Result<u64, sqlx::Error> {
        with_db!(&self.db, DELETE "events", |pool| {
            sqlx::query("DELETE FROM events WHERE owner_id = $1")
                .bind(owner)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
    }

    /// Every retained event of `owner`'s, numbered or not, in id order.
    pub async fn of_owner(&self, owner: &str) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let rows: Vec<EventRow> = with_db!(&self.db, SELECT "events", |pool| {
            sqlx::query_as(
                "SELECT id, COALESCE(seq, 0) AS seq, type, owner_id, subject_id, payload, \
                 traceparent, created_at FROM events WHERE owner_id = $1 ORDER BY id",
            )
            .bind(owner)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError<E> {
    /// The database failed.
    #[error("database error")]
    Db(#[from] sqlx::Error),
    /// The broker failed (nothing was marked).
    #[error("publishing failed: {0}")]
    Publish(E),
}
