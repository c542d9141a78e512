//! Cache invalidation fan-out. Writers (request handlers, background jobs) publish the keys
//! that changed; every cache subscribes and evicts them. On PostgreSQL the bus is bridged
//! through `LISTEN/NOTIFY` on the `aimesh_invalidations` channel, so a write in one process
//! (another replica, or a separate worker) evicts the key in every process.

use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// The PostgreSQL channel invalidations travel on.
pub const CHANNEL: &str = "aimesh_invalidations";

/// A changed key under a topic, e.g. topic `"notes"`, key the note's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    /// What kind of resource changed.
    pub topic: String,
    /// Which one.
    pub key: String,
}

/// A broadcast of invalidations, process-wide or (with PostgreSQL) cluster-wide.
///
/// A subscriber that falls behind by more than the capacity receives `Lagged` and must
/// assume anything changed (clear its cache).
#[derive(Debug, Clone)]
pub struct InvalidationBus {
    sender: broadcast::Sender<Invalidation>,
    postgres: Option<PgPool>,
}

impl InvalidationBus {
    /// Creates an in-process bus that buffers up to `capacity` invalidations per subscriber.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self {
            sender,
            postgres: None,
        }
    }

    /// Bridges the bus through PostgreSQL: publications are also sent with `pg_notify`, and
    /// those of other processes are re-published here, until `shutdown`.
    pub async fn bridge_postgres(
        mut self,
        pool: PgPool,
        shutdown: CancellationToken,
    ) -> Result<Self, sqlx::Error> {
        let sender = self.sender.clone();
        crate::db::listen(&pool, CHANNEL, shutdown, move |payload| {
            let invalidation = match payload {
                Some(payload) => payload.split_once(' ').map(|(topic, key)| Invalidation {
                    topic: topic.to_owned(),
                    key: key.to_owned(),
                }),
                // Notifications may have been missed: evict everything.
                None => Some(Invalidation {
                    topic: "*".into(),
                    key: String::new(),
                }),
            };
            if let Some(invalidation) = invalidation {
                let _ = sender.send(invalidation);
            }
        })
        .await?;
        self.postgres = Some(pool);
        Ok(self)
    }

    /// Publishes through PostgreSQL without listening: for a short-lived command (`aimesh
    /// admin grant`) whose writes the serving processes must hear of.
    pub fn publishing_to(mut self, pool: PgPool) -> Self {
        self.postgres = Some(pool);
        self
    }

    /// Publishes an invalidation; it is dropped when nobody subscribes. With PostgreSQL it
    /// returns once the notification is sent, so a writer that reports success afterwards (a
    /// job that completes, a response) has already told every process; failing to send is
    /// logged, not returned (the write itself stands, and cache entries expire).
    pub async fn publish(&self, topic: &str, key: impl Into<String>) {
        let key = key.into();
        if let Some(pool) = &self.postgres
            && let Err(error) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(format!("{topic} {key}"))
                .execute(pool)
                .await
        {
            tracing::warn!(%error, "failed to publish an invalidation");
        }
        let _ = self.sender.send(Invalidation {
            topic: topic.to_owned(),
            key,
        });
    }

    /// Subscribes to every invalidation published from now on. A topic of `*` means
    /// "everything may have changed".
    pub fn subscribe(&self) -> broadcast::Receiver<Invalidation> {
        self.sender.subscribe()
    }
}

impl Default for InvalidationBus {
    fn default() -> Self {
        Self::new(1024)
    }
}
