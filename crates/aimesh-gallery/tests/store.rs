//! One store test suite, run on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)]

use aimesh_gallery::{
    ImageStore, MIGRATIONS,
    domain::{Image, ListQuery, Origin, StoredFile, Update, now},
};
use aimesh_kit::testing::{Backend, TestDatabase};
use chrono::Duration;
use uuid::Uuid;

async fn store(backend: Backend) -> (ImageStore, TestDatabase) {
    let database = TestDatabase::create(backend).await;
    let db = database.connect().await;
    db.migrate(&aimesh_events::MIGRATIONS)
        .await
        .expect("events migrations apply");
    db.migrate(&MIGRATIONS).await.expect("migrations apply");
    db.migrate(&MIGRATIONS)
        .await
        .expect("migrations are idempotent");
    (ImageStore::new(db), database)
}

fn file(sha: &str, size: i64) -> StoredFile {
    StoredFile {
        sha256: sha.into(),
        content_type: "image/png".into(),
        size_bytes: size,
    }
}

fn image(owner: &str, tags: &[&str], origin: Origin) -> Image {
    let at = now();
    Image {
        id: Uuid::now_v7(),
        owner_id: owner.into(),
        title: "a title".into(),
        prompt: String::new(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        origin,
        source_id: None,
        operation: String::new(),
        format: "png".into(),
        width: 640,
        height: 480,
        original: file("aa", 100),
        thumbnail_256: file("bb", 10),
        thumbnail_1024: file("cc", 20),
        perceptual_hash: "hash".into(),
        metadata_kept: false,
        job_id: None,
        created_at: at,
        updated_at: at,
        deleted_at: None,
    }
}

fn query(page_size: u32) -> ListQuery {
    ListQuery {
        page_size,
        after: None,
        tag: None,
        origin: None,
        created_after: None,
        created_before: None,
    }
}

async fn images_round_trip_and_list_with_filters(backend: Backend) {
    let (store, _db) = store(backend).await;
    let first = image("alice", &["beach", "sun"], Origin::Uploaded);
    assert!(store.insert(&first).await.unwrap());
    let mut second = image("alice", &["beach"], Origin::Derived);
    second.source_id = Some(first.id);
    second.job_id = Some(Uuid::now_v7());
    assert!(store.insert(&second).await.unwrap());
    assert!(
        !store
            .insert(&Image {
                id: Uuid::now_v7(),
                ..second.clone()
            })
            .await
            .unwrap(),
        "one image per job"
    );
    store
        .insert(&image("bob", &["beach"], Origin::Uploaded))
        .await
        .unwrap();

    assert_eq!(store.get("alice", first.id).await.unwrap().unwrap(), first);
    assert!(store.get("bob", first.id).await.unwrap().is_none());
    assert_eq!(
        store
            .by_job(second.job_id.unwrap())
            .await
            .unwrap()
            .unwrap()
            .id,
        second.id
    );

    let page = store.list("alice", &query(1)).await.unwrap();
    assert_eq!(page.images.len(), 1);
    assert_eq!(page.images[0].id, second.id, "newest first");
    let rest = store
        .list(
            "alice",
            &ListQuery {
                after: page.next_after,
                ..query(1)
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.images[0].id, first.id);
    assert!(rest.next_after.is_none());

    let sun = store
        .list(
            "alice",
            &ListQuery {
                tag: Some("sun".into()),
                ..query(10)
            },
        )
        .await
        .unwrap();
    assert_eq!(sun.images.len(), 1);
    let derived = store
        .list(
            "alice",
            &ListQuery {
                origin: Some(Origin::Derived),
                ..query(10)
            },
        )
        .await
        .unwrap();
    assert_eq!(derived.images[0].source_id, Some(first.id));
    let future = store
        .list(
            "alice",
            &ListQuery {
                created_after: Some(now() + Duration::hours(1)),
                ..query(10)
            },
        )
        .await
        .unwrap();
    assert!(future.images.is_empty());
    let past = store
        .list(
            "alice",
            &ListQuery {
                created_before: Some(now() + Duration::hours(1)),
                ..query(10)
            },
        )
        .await
        .unwrap();
    assert_eq!(past.images.len(), 2);

    assert_eq!(store.usage("alice").await.unwrap(), 260);
    assert_eq!(store.references("alice", "bb").await.unwrap(), 2);
    assert_eq!(store.references("alice", "zz").await.unwrap(), 0);
}

async fn updates_replace_tags(backend: Backend) {
    let (store, _db) = store(backend).await;
    let img = image("alice", &["old"], Origin::Uploaded);
    store.insert(&img).await.unwrap();
    let update = Update {
        title: Some("new title".into()),
        prompt: None,
        tags: Some(vec!["new".into(), "other".into()]),
    };
    assert!(!store.update("bob", img.id, &update, now()).await.unwrap());
    assert!(store.update("alice", img.id, &update, now()).await.unwrap());
    let updated = store.get("alice", img.id).await.unwrap().unwrap();
    assert_eq!(updated.title, "new title");
    assert_eq!(updated.prompt, img.prompt);
    assert_eq!(updated.tags, ["new", "other"]);
    let by_old = store
        .list(
            "alice",
            &ListQuery {
                tag: Some("old".into()),
                ..query(10)
            },
        )
        .await
        .unwrap();
    assert!(by_old.images.is_empty(), "the old tag is gone");
}

async fn the_trash_holds_restores_and_expires(backend: Backend) {
    let (store, _db) = store(backend).await;
    let img = image("alice", &[], Origin::Uploaded);
    store.insert(&img).await.unwrap();
    let long_ago = now() - Duration::days(40);
    assert!(
        store
            .set_deleted("alice", img.id, Some(long_ago), now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_deleted("alice", img.id, Some(now()), now())
            .await
            .unwrap(),
        "already in the trash"
    );
    assert!(
        store
            .list("alice", &query(10))
            .await
            .unwrap()
            .images
            .is_empty()
    );
    let trash = store.list_deleted("alice", 10, None).await.unwrap();
    assert_eq!(trash.images[0].deleted_at, Some(long_ago));
    assert_eq!(store.trash("alice", 10).await.unwrap(), [img.id]);
    assert_eq!(
        store.expired(now() - Duration::days(30), 10).await.unwrap(),
        [("alice".to_owned(), img.id)]
    );
    assert!(
        store
            .expired(now() - Duration::days(50), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .set_deleted("alice", img.id, None, now())
            .await
            .unwrap()
    );
    assert_eq!(
        store.list("alice", &query(10)).await.unwrap().images.len(),
        1
    );
    assert!(store.delete("bob", img.id).await.unwrap().is_none());
    assert_eq!(
        store.delete("alice", img.id).await.unwrap().unwrap().id,
        img.id
    );
    assert!(store.get("alice", img.id).await.unwrap().is_none());
}

aimesh_kit::backend_tests!(
    images_round_trip_and_list_with_filters,
    updates_replace_tags,
    the_trash_holds_restores_and_expires,
);
