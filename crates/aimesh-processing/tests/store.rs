//! One store test suite, run on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)]

use aimesh_kit::testing::{Backend, TestDatabase};
use aimesh_processing::{
    DocumentStore, MIGRATIONS,
    domain::{Document, ListQuery, NewChunk, Processed, Status, Upload, now},
    store::Appended,
};
use uuid::Uuid;

async fn store(backend: Backend) -> (DocumentStore, TestDatabase) {
    let database = TestDatabase::create(backend).await;
    let db = database.connect().await;
    db.migrate(&MIGRATIONS).await.expect("migrations apply");
    db.migrate(&MIGRATIONS)
        .await
        .expect("migrations are idempotent");
    (DocumentStore::new(db), database)
}

fn document(owner: &str, sha256: &str, size: i64) -> Document {
    let at = now();
    Document {
        id: Uuid::now_v7(),
        owner_id: owner.into(),
        filename: "a.txt".into(),
        content_type: String::new(),
        size_bytes: size,
        sha256: sha256.into(),
        status: Status::Pending,
        failure_reason: None,
        format: None,
        page_count: 0,
        chunk_count: 0,
        text: None,
        generate_notes: true,
        job_id: None,
        created_at: at,
        updated_at: at,
    }
}

fn upload(owner: &str, size: i64) -> Upload {
    Upload {
        id: Uuid::now_v7(),
        owner_id: owner.into(),
        filename: "big.pdf".into(),
        content_type: "application/pdf".into(),
        size_bytes: size,
        received_bytes: 0,
        generate_notes: false,
        created_at: now(),
    }
}

async fn documents_are_unique_per_owner_and_content(backend: Backend) {
    let (store, _db) = store(backend).await;
    let first = document("alice", "aa", 10);
    assert!(store.insert(&first).await.unwrap());
    assert!(
        !store.insert(&document("alice", "aa", 10)).await.unwrap(),
        "the same content twice is one document"
    );
    assert!(store.insert(&document("bob", "aa", 10)).await.unwrap());
    let found = store.find_by_sha256("alice", "aa").await.unwrap().unwrap();
    assert_eq!(found.id, first.id);
    assert_eq!(found.text, None);
    let loaded = store.get(first.id).await.unwrap().unwrap();
    assert_eq!(loaded, first, "fields and timestamps round-trip");

    // Usage counts documents and uploads in progress, per owner.
    store.create_upload(&upload("alice", 100)).await.unwrap();
    assert_eq!(store.usage("alice").await.unwrap(), 110);
    assert_eq!(store.usage("bob").await.unwrap(), 10);
    assert_eq!(store.usage("carol").await.unwrap(), 0);

    // Deleting returns the blob's name and drops the row.
    assert_eq!(
        store.delete("bob", first.id).await.unwrap(),
        None,
        "another owner's document is not deleted"
    );
    assert_eq!(
        store.delete("alice", first.id).await.unwrap().as_deref(),
        Some("aa")
    );
    assert_eq!(store.references("alice", "aa").await.unwrap(), 0);
    assert_eq!(store.references("bob", "aa").await.unwrap(), 1);
}

async fn appends_land_only_at_the_stored_offset(backend: Backend) {
    let (store, _db) = store(backend).await;
    let pending = upload("alice", 6);
    store.create_upload(&pending).await.unwrap();
    assert_eq!(
        store.append("alice", pending.id, 0, b"abc").await.unwrap(),
        Appended::Stored(3)
    );
    assert_eq!(
        store.append("alice", pending.id, 0, b"abc").await.unwrap(),
        Appended::WrongOffset(3)
    );
    assert_eq!(
        store.append("alice", pending.id, 3, b"defg").await.unwrap(),
        Appended::WrongOffset(3),
        "nothing past the declared size"
    );
    assert_eq!(
        store.append("bob", pending.id, 3, b"def").await.unwrap(),
        Appended::NotFound
    );
    assert_eq!(
        store.append("alice", pending.id, 3, b"def").await.unwrap(),
        Appended::Stored(6)
    );
    assert_eq!(store.upload_bytes(pending.id).await.unwrap(), b"abcdef");
    store.delete_upload(pending.id).await.unwrap();
    assert!(
        store
            .get_upload("alice", pending.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.upload_bytes(pending.id).await.unwrap().is_empty());
}

async fn processed_chunks_are_replaced_and_searchable(backend: Backend) {
    let (store, _db) = store(backend).await;
    let doc = document("alice", "bb", 5);
    store.insert(&doc).await.unwrap();
    let other = document("bob", "cc", 5);
    store.insert(&other).await.unwrap();
    let chunk = |seq: i32, page: i32, text: &str| NewChunk {
        seq,
        page,
        char_start: 0,
        char_end: text.chars().count() as i32,
        text: text.into(),
        embedding: vec![0.6, 0.8, -0.0],
    };
    let processed = Processed {
        format: "pdf".into(),
        content_type: "application/pdf".into(),
        page_count: 2,
        text: "one\n\ntwo".into(),
    };
    // Not READY yet: nothing to search.
    assert!(store.chunks("alice", &[]).await.unwrap().is_empty());
    // A repeated attempt replaces the chunks.
    for _ in 0..2 {
        assert!(
            store
                .store_processed(
                    doc.id,
                    &processed,
                    &[chunk(0, 1, "one"), chunk(1, 2, "two")],
                    now()
                )
                .await
                .unwrap()
        );
    }
    store
        .store_processed(other.id, &processed, &[chunk(0, 1, "bob's")], now())
        .await
        .unwrap();
    let ready = store.get(doc.id).await.unwrap().unwrap();
    assert_eq!(ready.status, Status::Ready);
    assert_eq!(ready.chunk_count, 2);
    assert_eq!(
        ready.content_type, "application/pdf",
        "sniffed when none given"
    );
    assert_eq!(ready.text.as_deref(), Some("one\n\ntwo"));
    let mut chunks = store.chunks("alice", &[]).await.unwrap();
    chunks.sort_by_key(|c| c.page);
    assert_eq!(chunks.len(), 2, "only the owner's chunks, once each");
    assert_eq!(chunks[1].page, 2);
    assert_eq!(chunks[1].text, "two");
    assert_eq!(chunks[1].embedding, vec![0.6, 0.8, -0.0]);
    assert!(store.chunks("alice", &[other.id]).await.unwrap().is_empty());

    // Listing: newest first, filtered by status.
    let page = store
        .list(
            "alice",
            &ListQuery {
                page_size: 10,
                after: None,
                status: Some(Status::Ready),
            },
        )
        .await
        .unwrap();
    assert_eq!(page.documents.len(), 1);
    assert_eq!(page.documents[0].text, None, "lists carry no text");
    store
        .set_status(doc.id, Status::Failed, Some("broken"), now())
        .await
        .unwrap();
    let failed = store.get(doc.id).await.unwrap().unwrap();
    assert_eq!(failed.failure_reason.as_deref(), Some("broken"));
    // Deleting one owner's document leaves another's chunks alone.
    store.delete("alice", doc.id).await.unwrap();
    assert!(store.chunks("alice", &[]).await.unwrap().is_empty());
    assert_eq!(store.chunks("bob", &[]).await.unwrap().len(), 1);
}

aimesh_kit::backend_tests!(
    documents_are_unique_per_owner_and_content,
    appends_land_only_at_the_stored_offset,
    processed_chunks_are_replaced_and_searchable,
);
