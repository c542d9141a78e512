//! `aimesh-bench events`: domain events through the relay to NATS JetStream. Writers record
//! events as services do (each in its own committed transaction); the relay numbers and
//! publishes them while they are written; a JetStream consumer receives them. Prints the write
//! rate beside the rate at which the consumer received them, and the latency from an event's
//! writing to its arrival.

use std::time::{Duration, Instant};

use aimesh_events::{Events, NewEvent, Outbox, Relay, RelayConfig, pb};
use aimesh_kit::{
    db::{Db, DbOptions},
    with_db,
};
use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use hdrhistogram::Histogram;
use prost::Message;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

/// Options of the events benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// Events to write.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Concurrent writers (each event in its own transaction).
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// The database: an empty PostgreSQL database (its events table is created and emptied),
    /// or `sqlite` for a throwaway SQLite file.
    #[arg(
        long,
        env = "AIMESH_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/aimesh_bench"
    )]
    database_url: String,
    /// The NATS server (JetStream enabled).
    #[arg(long, env = "AIMESH_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
}

pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = if options.database_url == "sqlite" {
        format!("sqlite://{}/bench.db?mode=rwc", dir.path().display())
    } else {
        crate::jobs::ensure_database(&options.database_url).await?;
        options.database_url.clone()
    };
    let db = Db::connect(
        &SecretString::from(url),
        &DbOptions {
            max_connections: (options.writers + 4) as u32,
            ..DbOptions::default()
        },
    )
    .await?;
    db.migrate(&aimesh_events::MIGRATIONS).await?;
    if let Db::Postgres(pool) = &db {
        sqlx::query("TRUNCATE events").execute(pool).await?;
    }
    let shutdown = CancellationToken::new();
    let events = Events::new(db.clone());
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let config = RelayConfig {
        nats_url: Some(options.nats_url.clone()),
        stream: format!("BENCH_{tag}"),
        subject_prefix: format!("bench.{tag}.events"),
        ..RelayConfig::default()
    };
    let js = jetstream::new(async_nats::connect(&options.nats_url).await?);
    // The stream exists before the consumer: one relay step on an empty outbox creates it.
    let mut relay = Relay::new(events.clone(), config.clone()).await?;
    relay.step().await?;
    let consumer = js
        .get_stream(&config.stream)
        .await?
        .create_consumer(pull::Config {
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await?;
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));

    let total = options.events;
    let receiver = tokio::spawn(async move {
        let mut messages = consumer.messages().await?;
        let mut lag = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
        let mut received = 0;
        let mut last_sequence = 0;
        while received < total {
            let Some(message) = messages.next().await else {
                break;
            };
            let message = message?;
            let event = pb::Event::decode(message.payload.clone())?;
            anyhow::ensure!(event.sequence > last_sequence, "events out of order");
            last_sequence = event.sequence;
            if let Some(time) = event.time {
                let made = chrono::DateTime::from_timestamp(time.seconds, time.nanos as u32)
                    .unwrap_or_default();
                let micros = (chrono::Utc::now() - made).num_microseconds().unwrap_or(0);
                lag.record(micros.clamp(1, 600_000_000) as u64)?;
            }
            received += 1;
        }
        anyhow::Ok((received, Instant::now(), lag))
    });

    let begin = Instant::now();
    let per = total.div_ceil(options.writers);
    let writers: Vec<_> = (0..options.writers)
        .map(|w| {
            let db = db.clone();
            let count = per.min(total.saturating_sub(w * per));
            tokio::spawn(async move {
                for i in 0..count {
                    let event = NewEvent::new(
                        &format!("user{w}"),
                        uuid::Uuid::now_v7(),
                        pb::NoteCreated {
                            title: format!("note {i}"),
                            language: "en".into(),
                        },
                    );
                    with_db!(&db, |pool| async {
                        let mut tx = pool.begin().await?;
                        tx.record(&event).await?;
                        tx.commit().await
                    }
                    .await)?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    let written = begin.elapsed();
    let (received, finished, lag) =
        tokio::time::timeout(Duration::from_secs(600), receiver).await???;
    let delivered = finished - begin;
    shutdown.cancel();
    let _ = relay_task.await;
    js.delete_stream(&config.stream).await?;

    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "events: {} on {}, {} writers; relay to JetStream ({}), one pull consumer",
        total,
        db.backend(),
        options.writers,
        options.nats_url
    );
    println!("{:<44} {:>12} {:>10}", "", "events/s", "seconds");
    println!(
        "{:<44} {:>12.0} {:>10.2}",
        "written (each in its own transaction)",
        rate(total, written),
        written.as_secs_f64()
    );
    println!(
        "{:<44} {:>12.0} {:>10.2}",
        "received by the JetStream consumer",
        rate(received, delivered),
        delivered.as_secs_f64()
    );
    println!(
        "written to received: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lag.value_at_quantile(0.5) as f64 / 1000.0,
        lag.value_at_quantile(0.99) as f64 / 1000.0,
        lag.max() as f64 / 1000.0
    );
    anyhow::ensure!(received == total, "received {received} of {total} events");
    Ok(())
}
