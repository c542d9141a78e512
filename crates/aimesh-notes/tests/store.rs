//! One store test suite, run on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)]

use aimesh_kit::testing::{Backend, TestDatabase};
use aimesh_notes::{
    MIGRATIONS, NotesError, NotesStore,
    domain::{ListQuery, NewNote, NotePatch, Translation, now},
};

async fn store(backend: Backend) -> (NotesStore, TestDatabase) {
    let database = TestDatabase::create(backend).await;
    let db = database.connect().await;
    db.migrate(&aimesh_events::MIGRATIONS)
        .await
        .expect("events migrations apply");
    db.migrate(&MIGRATIONS).await.expect("migrations apply");
    db.migrate(&MIGRATIONS)
        .await
        .expect("migrations are idempotent");
    (NotesStore::new(db), database)
}

fn new_note(title: &str, language: &str) -> NewNote {
    NewNote {
        title: title.into(),
        original_text: format!("text of {title}"),
        original_language: language.into(),
    }
}

fn translation(language: &str, text: &str) -> Translation {
    Translation {
        target_language: language.into(),
        text: text.into(),
        engine: "test-engine".into(),
        created_at: now(),
    }
}

fn query(page_size: u32) -> ListQuery {
    ListQuery {
        page_size,
        after: None,
        language: None,
        text: None,
    }
}

async fn round_trips_notes(backend: Backend) {
    let (store, _db) = store(backend).await;
    let created = store
        .create("alice", new_note("a", "en"), now())
        .await
        .unwrap();
    let loaded = store.get(created.id).await.unwrap().unwrap();
    assert_eq!(loaded, created, "timestamps and fields round-trip exactly");
    assert!(store.get(uuid::Uuid::now_v7()).await.unwrap().is_none());
}

async fn translations_are_upserted_and_cascade(backend: Backend) {
    let (store, _db) = store(backend).await;
    let note = store
        .create("alice", new_note("a", "en"), now())
        .await
        .unwrap();
    store
        .put_translation("alice", note.id, &translation("es", "hola"))
        .await
        .unwrap();
    store
        .put_translation("alice", note.id, &translation("fr", "salut"))
        .await
        .unwrap();
    store
        .put_translation("alice", note.id, &translation("es", "hola mundo"))
        .await
        .unwrap();
    let loaded = store.get(note.id).await.unwrap().unwrap();
    let texts: Vec<(&str, &str)> = loaded
        .translations
        .iter()
        .map(|t| (t.target_language.as_str(), t.text.as_str()))
        .collect();
    assert_eq!(texts, vec![("es", "hola mundo"), ("fr", "salut")]);
    assert_eq!(
        loaded.version, 4,
        "each stored translation bumps the version"
    );

    let error = store
        .put_translation("mallory", note.id, &translation("de", "hallo"))
        .await
        .unwrap_err();
    assert!(matches!(error, NotesError::NotFound(_)));

    store.delete("alice", note.id, None).await.unwrap();
    let stats = store.stats("alice").await.unwrap();
    assert_eq!(
        stats.total_translations, 0,
        "translations are deleted with their note"
    );
}

async fn stats_group_in_sql(backend: Backend) {
    let (store, _db) = store(backend).await;
    let mut last = None;
    for (title, language) in [("a", "en"), ("b", "en"), ("c", "fr"), ("d", "de")] {
        let note = store
            .create("alice", new_note(title, language), now())
            .await
            .unwrap();
        last = Some(note);
    }
    store
        .create("bob", new_note("x", "ja"), now())
        .await
        .unwrap();
    let last = last.unwrap();
    let stored = translation("es", "hola");
    store
        .put_translation("alice", last.id, &stored)
        .await
        .unwrap();
    store
        .put_translation("alice", last.id, &translation("it", "ciao"))
        .await
        .unwrap();

    let stats = store.stats("alice").await.unwrap();
    assert_eq!(stats.total_notes, 4);
    assert_eq!(stats.total_translations, 2);
    let notes: Vec<(&str, i64)> = stats
        .notes_by_language
        .iter()
        .map(|c| (c.language.as_str(), c.count))
        .collect();
    assert_eq!(notes, vec![("en", 2), ("de", 1), ("fr", 1)]);
    let translated: Vec<(&str, i64)> = stats
        .translations_by_language
        .iter()
        .map(|c| (c.language.as_str(), c.count))
        .collect();
    assert_eq!(translated, vec![("es", 1), ("it", 1)]);
    assert!(stats.last_activity >= Some(stored.created_at));

    let empty = store.stats("nobody").await.unwrap();
    assert_eq!(empty.total_notes, 0);
    assert_eq!(empty.last_activity, None);
}

async fn owners_are_isolated(backend: Backend) {
    let (store, _db) = store(backend).await;
    let note = store
        .create("alice", new_note("a", "en"), now())
        .await
        .unwrap();
    let patch = NotePatch {
        title: Some("stolen".into()),
        ..NotePatch::default()
    };
    assert!(matches!(
        store.update("bob", note.id, &patch, now()).await,
        Err(NotesError::NotFound(_))
    ));
    assert!(matches!(
        store.delete("bob", note.id, None).await,
        Err(NotesError::NotFound(_))
    ));
    assert!(
        store
            .list("bob", &query(10))
            .await
            .unwrap()
            .notes
            .is_empty()
    );
    assert_eq!(store.get(note.id).await.unwrap().unwrap().title, "a");
}

async fn versions_guard_writes(backend: Backend) {
    let (store, _db) = store(backend).await;
    let note = store
        .create("alice", new_note("a", "en"), now())
        .await
        .unwrap();
    let patch = |title: &str, expected| NotePatch {
        title: Some(title.into()),
        expected_version: expected,
        ..NotePatch::default()
    };
    let updated = store
        .update("alice", note.id, &patch("b", Some(1)), now())
        .await
        .unwrap();
    assert_eq!((updated.title.as_str(), updated.version), ("b", 2));
    match store
        .update("alice", note.id, &patch("c", Some(1)), now())
        .await
    {
        Err(NotesError::VersionMismatch {
            expected, current, ..
        }) => assert_eq!((expected, current), (1, 2)),
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    assert!(matches!(
        store.delete("alice", note.id, Some(1)).await,
        Err(NotesError::VersionMismatch { .. })
    ));
    store.delete("alice", note.id, Some(2)).await.unwrap();
}

async fn keyset_pages_cover_everything_once(backend: Backend) {
    let (store, _db) = store(backend).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let language = if i % 2 == 0 { "en" } else { "fr" };
        ids.push(
            store
                .create("alice", new_note(&format!("n{i}"), language), now())
                .await
                .unwrap()
                .id,
        );
    }
    ids.reverse();
    let mut q = query(3);
    let mut seen = Vec::new();
    loop {
        let page = store.list("alice", &q).await.unwrap();
        seen.extend(page.notes.iter().map(|n| n.id));
        match page.next_after {
            Some(after) => q.after = Some(after),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let mut french = query(10);
    french.language = Some("fr".into());
    assert_eq!(store.list("alice", &french).await.unwrap().notes.len(), 3);
    let mut text = query(10);
    text.text = Some("TEXT OF N1".into());
    let found = store.list("alice", &text).await.unwrap().notes;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].title, "n1");
}
aimesh_kit::backend_tests!(
    round_trips_notes,
    translations_are_upserted_and_cascade,
    stats_group_in_sql,
    owners_are_isolated,
    versions_guard_writes,
    keyset_pages_cover_everything_once,
);
