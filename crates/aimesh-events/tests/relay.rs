//! The relay against a real NATS server with JetStream (`AIMESH_TEST_NATS_URL`, default
//! `nats://127.0.0.1:4222`), on SQLite and PostgreSQL: every committed event reaches the stream
//! once, in order, on its type's subject, and none of a rolled-back transaction does; a relay
//! that dies between publishing and marking publishes again and JetStream drops the copies.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aimesh_events::{Events, NewEvent, Outbox, Relay, RelayConfig, pb, store::EventFilter};
use aimesh_kit::{
    backend_tests,
    db::{Db, DbOptions},
    testing::{Backend, TestDatabase},
    with_db,
};
use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use prost::Message;
use tokio_util::sync::CancellationToken;

fn nats_url() -> String {
    std::env::var("AIMESH_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// Records `events` in one transaction, committed or rolled back.
async fn record(db: &Db, events: &[NewEvent], commit: bool) {
    with_db!(db, |pool| async {
        let mut tx = pool.begin().await?;
        for event in events {
            tx.record(event).await?;
        }
        if commit {
            tx.commit().await
        } else {
            tx.rollback().await
        }
    }
    .await)
    .unwrap();
}

fn note(owner: &str, title: &str) -> NewEvent {
    NewEvent::new(
        owner,
        uuid::Uuid::now_v7(),
        pb::NoteCreated {
            title: title.into(),
            language: "en".into(),
        },
    )
}

/// Every message of the stream, in stream order, decoded, with its subject.
async fn stream_messages(js: &jetstream::Context, stream: &str) -> Vec<(String, pb::Event)> {
    let stream = js.get_stream(stream).await.unwrap();
    let consumer = stream
        .create_consumer(pull::Config {
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = consumer
        .batch()
        .max_messages(1000)
        .expires(Duration::from_millis(500))
        .messages()
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(message) = batch.next().await {
        let message = message.unwrap();
        let event = pb::Event::decode(message.payload.clone()).unwrap();
        seen.push((message.subject.to_string(), event));
    }
    seen
}

async fn committed_events_reach_jetstream_once_in_order(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let db = Db::connect(&database.url.clone().into(), &DbOptions::default())
        .await
        .unwrap();
    db.migrate(&aimesh_events::MIGRATIONS).await.unwrap();
    let shutdown = CancellationToken::new();
    let events = Events::new(db.clone());
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let config = RelayConfig {
        nats_url: Some(nats_url()),
        stream: format!("TEST_{tag}"),
        subject_prefix: format!("test.{tag}.events"),
        retention: Duration::from_secs(3600),
        duplicate_window: Duration::from_secs(600),
    };
    let mut relay = Relay::new(events.clone(), config.clone()).await.unwrap();
    let client = async_nats::connect(nats_url())
        .await
        .expect("a NATS server with JetStream (AIMESH_TEST_NATS_URL)");
    let js = jetstream::new(client);

    // Three committed, one rolled back, two more committed: five reach the stream.
    let first = [note("u1", "a"), note("u2", "b"), note("u1", "c")];
    record(&db, &first, true).await;
    record(&db, &[note("u1", "rolled back")], false).await;
    let second = [
        NewEvent::new("u2", "img", pb::ImageTrashed {}),
        note("u1", "d"),
    ];
    record(&db, &second, true).await;
    relay.step().await.unwrap();

    let expected: Vec<&NewEvent> = first.iter().chain(&second).collect();
    let seen = stream_messages(&js, &config.stream).await;
    assert_eq!(
        seen.iter().map(|(_, e)| e.id.clone()).collect::<Vec<_>>(),
        expected
            .iter()
            .map(|e| e.id.to_string())
            .collect::<Vec<_>>(),
        "each committed event once, in commit order"
    );
    for ((subject, event), recorded) in seen.iter().zip(&expected) {
        assert_eq!(
            subject,
            &format!("{}.{}", config.subject_prefix, recorded.event_type)
        );
        assert_eq!(event.r#type, recorded.event_type);
        assert_eq!(event.owner_id, recorded.owner_id);
        assert_eq!(
            event.payload.as_ref().unwrap().kind.as_ref(),
            Some(&recorded.payload)
        );
    }
    assert!(seen.windows(2).all(|p| p[0].1.sequence < p[1].1.sequence));
    assert_eq!(events.store().unpublished().await.unwrap(), 0);

    // The relay dies after JetStream has the next events but before they are marked: the
    // next relay publishes them again, and the stream keeps one copy of each.
    let third = [note("u1", "e"), note("u3", "f")];
    record(&db, &third, true).await;
    events.sequence_pending().await.unwrap();
    let last = seen.last().unwrap().1.sequence;
    let pending = events
        .store()
        .after(last, &EventFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(pending.len(), 2);
    relay.publish(&pending).await.unwrap();
    drop(relay);
    assert_eq!(events.store().unpublished().await.unwrap(), 2);
    let mut restarted = Relay::new(events.clone(), config.clone()).await.unwrap();
    restarted.step().await.unwrap();
    assert_eq!(events.store().unpublished().await.unwrap(), 0);
    let seen = stream_messages(&js, &config.stream).await;
    assert_eq!(seen.len(), 7, "no duplicates: {seen:#?}");
    assert_eq!(
        seen[5..]
            .iter()
            .map(|(_, e)| e.id.clone())
            .collect::<Vec<_>>(),
        third.iter().map(|e| e.id.to_string()).collect::<Vec<_>>()
    );

    // Published events past their retention are pruned.
    let mut short = config.clone();
    short.retention = Duration::from_secs(0);
    let pruner = Relay::new(events.clone(), short).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(pruner.prune().await.unwrap(), 7);

    js.delete_stream(&config.stream).await.unwrap();
    shutdown.cancel();
}

async fn without_nats_events_are_numbered_and_kept(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let db = Db::connect(&database.url.clone().into(), &DbOptions::default())
        .await
        .unwrap();
    db.migrate(&aimesh_events::MIGRATIONS).await.unwrap();
    let events = Events::new(db.clone());
    let mut relay = Relay::new(events.clone(), RelayConfig::default())
        .await
        .unwrap();
    // Numbers follow the order events became visible, not their ids: an event made first but
    // committed last comes last.
    let early = note("u1", "made first");
    let late = note("u1", "made second");
    record(&db, std::slice::from_ref(&late), true).await;
    relay.step().await.unwrap();
    record(&db, std::slice::from_ref(&early), true).await;
    relay.step().await.unwrap();
    let all = events
        .store()
        .after(0, &EventFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.id).collect::<Vec<_>>(),
        [late.id, early.id]
    );
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(events.store().last_seq().await.unwrap(), 2);
    // Kept (nothing publishes them) until their retention.
    assert_eq!(events.store().unpublished().await.unwrap(), 2);
}

backend_tests!(
    committed_events_reach_jetstream_once_in_order,
    without_nats_events_are_numbered_and_kept,
);
