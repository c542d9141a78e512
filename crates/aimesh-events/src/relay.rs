//! The relay: numbers committed events in the order they became visible, publishes them to
//! NATS JetStream when a server is configured, and prunes them after their retention.
//!
//! Processes that run a job worker or serve WatchEvents run one. Numbering is serialised across processes (an advisory lock on
//! PostgreSQL), and so is publishing (the replica that holds the lock publishes, the others
//! skip), so events reach JetStream in their order. An event is published with its id as the
//! message id (`Nats-Msg-Id`) and marked published only once JetStream acknowledged it: a relay
//! that dies between the two publishes it again, and the stream drops the copy as a duplicate
//! within its duplicate window.

use std::time::Duration;

use aimesh_kit::db::Db;
use async_nats::jetstream::{self, context::PublishAckFuture};
use bytes::Bytes;
use prost::Message;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    outbox::{PENDING, PENDING_CHANNEL},
    service::Events,
    store::{BATCH, PublishError, StoredEvent},
};

/// How often the relay prunes events past their retention.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// The relay's settings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The NATS server (`nats://host:4222`); `None`: events stay in the outbox (and on
    /// WatchEvents) and nothing is published.
    pub nats_url: Option<String>,
    /// The JetStream stream the events go to (created when missing).
    pub stream: String,
    /// The subjects' prefix: an event of type `notes.note.created` goes to
    /// `<prefix>.notes.note.created`.
    pub subject_prefix: String,
    /// How long events are kept: in the outbox (once published, when publishing) and in the
    /// stream it creates.
    pub retention: Duration,
    /// The stream's duplicate window: a message id seen within it is dropped as a duplicate.
    pub duplicate_window: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            nats_url: None,
            stream: "AIMESH_EVENTS".to_owned(),
            subject_prefix: "aimesh.events".to_owned(),
            retention: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: Duration::from_secs(20 * 60),
        }
    }
}

/// Why a relay step failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The database failed.
    #[error("database error")]
    Db(#[from] sqlx::Error),
    /// NATS or JetStream failed.
    #[error("JetStream: {0}")]
    Nats(String),
}

impl From<PublishError<RelayError>> for RelayError {
    fn from(error: PublishError<RelayError>) -> Self {
        match error {
            PublishError::Db(error) => RelayError::Db(error),
            PublishError::Publish(error) => error,
        }
    }
}

/// The relay of one process.
pub struct Relay {
    events: Events,
    config: RelayConfig,
    jetstream: Option<jetstream::Context>,
    stream_ready: bool,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.config)
            .field("stream_ready", &self.stream_ready)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay for `events`; with a NATS URL it connects (in the background when the server is
    /// not up yet: events wait in the outbox meanwhile).
    pub async fn new(events: Events, config: RelayConfig) -> Result<Self, RelayError> {
        let jetstream = match &config.nats_url {
            None => None,
            Some(url) => {
                let client = async_nats::ConnectOptions::new()
                    .name("aimesh-events-relay")
                    .retry_on_initial_connect()
                    .connect(url.as_str())
                    .await
                    .map_err(|error| RelayError::Nats(error.to_string()))?;
                Some(jetstream::new(client))
            }
        };
        Ok(Self {
            events,
            config,
            jetstream,
            stream_ready: false,
        })
    }

    /// The subject an event of `event_type` is published on.
    pub fn subject(&self, event_type: &str) -> String {
        format!("{}.{event_type}", self.config.subject_prefix)
    }

    /// Creates the stream when missing.
    async fn ensure_stream(&mut self) -> Result<(), RelayError> {
        let Some(jetstream) = &self.jetstream else {
            return Ok(());
        };
        if self.stream_ready {
            return Ok(());
        }
        jetstream
            .get_or_create_stream(jetstream::stream::Config {
                name: self.config.stream.clone(),
                subjects: vec![format!("{}.>", self.config.subject_prefix)],
                duplicate_window: self.config.duplicate_window,
                max_age: self.config.retention,
                ..Default::default()
            })
            .await
            .map_err(|error| RelayError::Nats(error.to_string()))?;
        self.stream_ready = true;
        Ok(())
    }

    /// Publishes `events` to JetStream in order and returns once it acknowledged them all
    /// (the publications are pipelined). Does nothing without a NATS server.
    pub async fn publish(&self, events: &[StoredEvent]) -> Result<(), RelayError> {
        let Some(jetstream) = &self.jetstream else {
            return Ok(());
        };
        let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(events.len());
        for event in events {
            let mut message = jetstream::message::PublishMessage::build()
                .payload(Bytes::from(event.to_proto().encode_to_vec()))
                .message_id(event.id.to_string())
                .header("Content-Type", "application/x-protobuf")
                .header("Aimesh-Event-Type", event.event_type.as_str());
            if let Some(traceparent) = &event.traceparent {
                message = message.header("traceparent", traceparent.as_str());
            }
            let ack = jetstream
                .send_publish(self.subject(&event.event_type), message)
                .await
                .map_err(|error| RelayError::Nats(error.to_string()))?;
            acks.push(ack);
        }
        let mut duplicates = 0u64;
        for ack in acks {
            let ack = ack
                .await
                .map_err(|error| RelayError::Nats(error.to_string()))?;
            duplicates += u64::from(ack.duplicate);
        }
        metrics::counter!("aimesh_events_published_total").increment(events.len() as u64);
        if duplicates > 0 {
            tracing::info!(duplicates, "JetStream dropped events it already had");
        }
        Ok(())
    }

    /// Publishes every numbered, unpublished event (when this replica holds the publisher's
    /// turn) and marks them published; returns how many.
    pub async fn publish_pending(&self) -> Result<usize, RelayError> {
        if self.jetstream.is_none() {
            return Ok(0);
        }
        let mut total = 0;
        loop {
            let published = self
                .events
                .store()
                .publish_pending(BATCH, |events| async move { self.publish(&events).await })
                .await?;
            match published {
                Some(count) if count as i64 == BATCH => total += count,
                Some(count) => return Ok(total + count),
                None => return Ok(total),
            }
        }
    }

    /// One round: number what committed, publish what is numbered.
    pub async fn step(&mut self) -> Result<(), RelayError> {
        self.events.sequence_pending().await?;
        self.ensure_stream().await?;
        self.publish_pending().await?;
        Ok(())
    }

    /// Deletes events past their retention (only published ones when publishing).
    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        let Ok(retention) = chrono::Duration::from_std(self.config.retention) else {
            return Ok(0);
        };
        let before = aimesh_kit::db::now() - retention;
        self.events
            .store()
            .prune(before, self.jetstream.is_some())
            .await
    }

    /// Runs until `shutdown`: a round whenever an event is recorded (in this process, or in
    /// any on PostgreSQL) and at least every second; failures are logged and retried with
    /// back-off, the events waiting in the outbox.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let db = self.events.store().db().clone();
        if let Db::Postgres(pool) = &db
            && let Err(error) =
                aimesh_kit::db::listen(pool, PENDING_CHANNEL, shutdown.clone(), |_| {
                    PENDING.notify_one()
                })
                .await
        {
            tracing::warn!(%error, "the events relay cannot listen for new events; polling");
        }
        // SQLite hears of an event before its transaction commits: look again soon.
        let poll = match db {
            Db::Sqlite(_) => Duration::from_millis(250),
            Db::Postgres(_) => Duration::from_secs(1),
        };
        let mut backoff = Duration::ZERO;
        let mut next_prune = Instant::now();
        loop {
            match self.step().await {
                Ok(()) => backoff = Duration::ZERO,
                Err(error) => {
                    backoff = (backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
                    tracing::warn!(error = %aimesh_kit::error::CauseChain(&error), retry_in = ?backoff, "events relay step failed");
                }
            }
            if Instant::now() >= next_prune {
                match self.prune().await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::info!(pruned, "events past their retention pruned"),
                    Err(error) => tracing::warn!(%error, "pruning events failed"),
                }
                next_prune = Instant::now() + PRUNE_EVERY;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = PENDING.notified(), if backoff.is_zero() => {
                    // Let the recording transaction commit.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                _ = tokio::time::sleep(if backoff.is_zero() { poll } else { backoff }) => {}
            }
        }
        // A last round, so events of the final moments are numbered (and published).
        if let Err(error) = self.step().await {
            tracing::warn!(%error, "the events relay's last round failed");
        }
    }
}
