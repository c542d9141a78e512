//! One store test suite, run on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)]

use aimesh_kit::testing::{Backend, TestDatabase};
use aimesh_speech::{
    MIGRATIONS, SpeechStore,
    domain::{Audio, AudioFormat, ListQuery, Segment, Status, Transcribed, Transcription, now},
};
use uuid::Uuid;

async fn store(backend: Backend) -> (SpeechStore, TestDatabase) {
    let database = TestDatabase::create(backend).await;
    let db = database.connect().await;
    db.migrate(&aimesh_events::MIGRATIONS)
        .await
        .expect("events migrations apply");
    db.migrate(&MIGRATIONS).await.expect("migrations apply");
    db.migrate(&MIGRATIONS)
        .await
        .expect("migrations are idempotent");
    (SpeechStore::new(db), database)
}

fn transcription(owner: &str, size: i64) -> Transcription {
    let at = now();
    let id = Uuid::now_v7();
    Transcription {
        id,
        owner_id: owner.into(),
        filename: "talk.wav".into(),
        content_type: "audio/wav".into(),
        size_bytes: size,
        blob: Some(format!("{:064x}", id.as_u128())),
        status: Status::Pending,
        failure_reason: None,
        language: "en".into(),
        language_probability: None,
        engine: None,
        duration_seconds: 0.0,
        text: None,
        segments: Vec::new(),
        job_id: None,
        created_at: at,
        updated_at: at,
    }
}

fn audio(owner: &str, key: &str, size: i64) -> Audio {
    let id = Uuid::now_v7();
    Audio {
        id,
        owner_id: owner.into(),
        request_key: key.into(),
        text: "Hello".into(),
        voice: "gmw/en-US".into(),
        format: AudioFormat::Wav,
        words_per_minute: 0,
        sample_rate: 22_050,
        size_bytes: size,
        duration_seconds: 1.5,
        engine: "espeak-ng".into(),
        blob: format!("{:064x}", id.as_u128()),
        created_at: now(),
        last_used_at: now(),
    }
}

async fn transcripts_are_stored_listed_and_deleted(backend: Backend) {
    let (store, _db) = store(backend).await;
    let first = transcription("alice", 100);
    let second = transcription("alice", 50);
    store.insert_transcription(&first).await.unwrap();
    store.insert_transcription(&second).await.unwrap();
    store
        .insert_transcription(&transcription("bob", 7))
        .await
        .unwrap();
    assert_eq!(store.usage("alice").await.unwrap(), 150);

    let done = Transcribed {
        engine: "whisper-base".into(),
        language: "es".into(),
        language_probability: Some(0.93),
        duration_seconds: 42.5,
        text: "Hello there. Goodbye.".into(),
        segments: vec![
            Segment {
                start: 0.0,
                end: 1.5,
                text: "Hello there.".into(),
            },
            Segment {
                start: 31.0,
                end: 32.0,
                text: "Goodbye.".into(),
            },
        ],
    };
    assert!(
        store
            .store_transcript(first.id, &done, now())
            .await
            .unwrap()
    );
    let got = store.get_transcription(first.id).await.unwrap().unwrap();
    assert_eq!(got.status, Status::Ready);
    assert_eq!(got.segments, done.segments);
    assert_eq!(got.text.as_deref(), Some("Hello there. Goodbye."));
    assert_eq!(got.duration_seconds, 42.5);
    assert_eq!(
        (got.language.as_str(), got.language_probability),
        ("es", Some(0.93)),
        "the detected language replaces the one asked for"
    );

    let page = store
        .list_transcriptions(
            "alice",
            &ListQuery {
                page_size: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items[0].id, second.id, "newest first");
    assert!(page.items[0].text.is_none(), "lists carry no transcript");
    let next = store
        .list_transcriptions(
            "alice",
            &ListQuery {
                page_size: 1,
                after: page.next_after,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(next.items[0].id, first.id);
    assert!(next.next_after.is_none());
    let ready = store
        .list_transcriptions(
            "alice",
            &ListQuery {
                page_size: 10,
                status: Some(Status::Ready),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ready.items.len(), 1);

    assert_eq!(
        store.delete_transcription("bob", first.id).await.unwrap(),
        None
    );
    assert_eq!(
        store.delete_transcription("alice", first.id).await.unwrap(),
        Some(first.blob.clone())
    );
    assert!(store.get_transcription(first.id).await.unwrap().is_none());
}

async fn finished_recordings_expire(backend: Backend) {
    let (store, _db) = store(backend).await;
    let pending = transcription("alice", 10);
    let failed = transcription("alice", 20);
    store.insert_transcription(&pending).await.unwrap();
    store.insert_transcription(&failed).await.unwrap();
    store
        .set_status(failed.id, Status::Failed, Some("bad".into()), now())
        .await
        .unwrap();
    let later = now() + chrono::Duration::seconds(1);
    let expired = store.expired_recordings(later, 10).await.unwrap();
    assert_eq!(expired.len(), 1, "only finished transcriptions expire");
    assert_eq!(expired[0].id, failed.id);
    let earlier = now() - chrono::Duration::hours(1);
    assert!(
        store
            .expired_recordings(earlier, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.clear_recording(failed.id, now()).await.unwrap();
    assert!(
        store
            .expired_recordings(later, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let got = store.get_transcription(failed.id).await.unwrap().unwrap();
    assert!(got.blob.is_none());
    assert_eq!(store.usage("alice").await.unwrap(), 10);
}

async fn audio_is_cached_per_owner_and_request(backend: Backend) {
    let (store, _db) = store(backend).await;
    let first = audio("alice", "k1", 1000);
    assert!(store.insert_audio(&first).await.unwrap());
    assert!(
        !store
            .insert_audio(&audio("alice", "k1", 1000))
            .await
            .unwrap(),
        "one audio per owner and request"
    );
    assert!(store.insert_audio(&audio("bob", "k1", 1000)).await.unwrap());
    assert_eq!(
        store.find_audio("alice", "k1").await.unwrap().unwrap().id,
        first.id
    );
    assert!(store.get_audio("bob", first.id).await.unwrap().is_none());
    let got = store.get_audio("alice", first.id).await.unwrap().unwrap();
    assert_eq!(got, first);
    let second = audio("alice", "k2", 500);
    store.insert_audio(&second).await.unwrap();
    let page = store.list_audio("alice", 1, None).await.unwrap();
    assert_eq!(page.items[0].id, second.id);
    let rest = store.list_audio("alice", 1, page.next_after).await.unwrap();
    assert_eq!(rest.items[0].id, first.id);
    assert_eq!(store.usage("alice").await.unwrap(), 1500);
    assert_eq!(
        store.delete_audio("alice", first.id).await.unwrap(),
        Some(first.blob.clone())
    );
    assert_eq!(store.delete_audio("alice", first.id).await.unwrap(), None);
}

async fn the_least_recently_used_audio_is_evicted_first(backend: Backend) {
    let (store, _db) = store(backend).await;
    let start = now() - chrono::Duration::minutes(10);
    let used_at = |seconds| start + chrono::Duration::seconds(seconds);
    let mut made = Vec::new();
    for (index, key) in ["a", "b", "c"].into_iter().enumerate() {
        let mut audio = audio("alice", key, 1000);
        audio.last_used_at = used_at(index as i64);
        assert!(store.insert_audio(&audio).await.unwrap());
        made.push(audio);
    }
    let (a, b, c) = (&made[0], &made[1], &made[2]);
    let bobs = audio("bob", "a", 5000);
    store.insert_audio(&bobs).await.unwrap();
    // `a` used again: `b` is now the least recently used.
    store.touch_audio("alice", a.id, used_at(3)).await.unwrap();
    assert_eq!(
        store
            .get_audio("alice", a.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        used_at(3)
    );
    assert_eq!(
        store.evict_audio("alice", 3000, c.id).await.unwrap(),
        Vec::<String>::new(),
        "everything fits"
    );
    assert_eq!(
        store.evict_audio("alice", 1000, c.id).await.unwrap(),
        vec![b.blob.clone()],
        "the least recently used goes; the one just made stays whatever its rank"
    );
    assert_eq!(
        store.evict_audio("alice", 500, c.id).await.unwrap(),
        vec![a.blob.clone()]
    );
    assert!(store.get_audio("alice", c.id).await.unwrap().is_some());
    assert!(
        store.get_audio("bob", bobs.id).await.unwrap().is_some(),
        "another owner's audio is not touched"
    );
}

aimesh_kit::backend_tests!(
    transcripts_are_stored_listed_and_deleted,
    finished_recordings_expire,
    audio_is_cached_per_owner_and_request,
    the_least_recently_used_audio_is_evicted_first,
);
