//! The reports store suite, run on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)]

use aimesh_kit::testing::{Backend, TestDatabase};
use aimesh_reports::{
    MIGRATIONS, ReportStore,
    domain::{Event, Format},
    report::{EVENTS_PER_PAGE, ListQuery, RenderedFile, Report, Status, now},
    store::Appended,
};
use chrono::TimeDelta;
use uuid::Uuid;

async fn store(backend: Backend) -> (ReportStore, TestDatabase) {
    let database = TestDatabase::create(backend).await;
    let db = database.connect().await;
    db.migrate(&aimesh_events::MIGRATIONS)
        .await
        .expect("events migrations apply");
    db.migrate(&MIGRATIONS).await.expect("migrations apply");
    db.migrate(&MIGRATIONS)
        .await
        .expect("migrations are idempotent");
    (ReportStore::new(db), database)
}

fn report(owner: &str, status: Status, events: i64) -> Report {
    let at = now();
    Report {
        id: Uuid::now_v7(),
        owner_id: owner.into(),
        student_id: "student-1".into(),
        namespace: Some("math".into()),
        format: Format::Pdf,
        status,
        failure_reason: None,
        job_id: None,
        event_count: events,
        unit_count: 0,
        first_event_at: None,
        last_event_at: None,
        size_bytes: 0,
        sha256: None,
        created_at: at,
        updated_at: at,
    }
}

fn events(from: usize, count: usize) -> Vec<Event> {
    (from..from + count)
        .map(|i| Event {
            unit: format!("unit {i}"),
            event_type: if i % 2 == 0 {
                "viewed".into()
            } else {
                String::new()
            },
            created_time: format!("2025-03-01T09:{:02}:00Z", i % 60),
        })
        .collect()
}

fn file(sha256: &str, size: i64) -> RenderedFile {
    RenderedFile {
        sha256: sha256.into(),
        size_bytes: size,
        unit_count: 3,
        first_event_at: Some(now() - TimeDelta::hours(1)),
        last_event_at: Some(now()),
    }
}

async fn reports_keep_their_events_in_pages_in_order(backend: Backend) {
    let (store, _db) = store(backend).await;
    let sent = events(0, EVENTS_PER_PAGE * 2 + 5);
    let draft = report("alice", Status::Draft, sent.len() as i64);
    store.insert(&draft, &sent).await.unwrap();
    assert_eq!(store.get("alice", draft.id).await.unwrap().unwrap(), draft);
    assert_eq!(store.events(draft.id).await.unwrap(), sent);
    // Another owner does not see it.
    assert!(store.get("bob", draft.id).await.unwrap().is_none());
}

async fn appends_land_only_at_the_stored_count_of_a_draft(backend: Backend) {
    let (store, _db) = store(backend).await;
    let draft = report("alice", Status::Draft, 0);
    store.insert(&draft, &[]).await.unwrap();
    let at = now();
    let first = events(0, 3);
    assert_eq!(
        store
            .append("alice", draft.id, 0, &first, 10, at)
            .await
            .unwrap(),
        Appended::Stored(3)
    );
    // The same page again (a lost reply resent) is refused: the offset moved on.
    assert_eq!(
        store
            .append("alice", draft.id, 0, &first, 10, at)
            .await
            .unwrap(),
        Appended::Refused
    );
    // Past the limit, another owner, or an unknown report: refused.
    assert_eq!(
        store
            .append("alice", draft.id, 3, &events(3, 8), 10, at)
            .await
            .unwrap(),
        Appended::Refused
    );
    assert_eq!(
        store
            .append("bob", draft.id, 3, &events(3, 1), 10, at)
            .await
            .unwrap(),
        Appended::Refused
    );
    assert_eq!(
        store
            .append("alice", Uuid::now_v7(), 0, &first, 10, at)
            .await
            .unwrap(),
        Appended::Refused
    );
    let second = events(3, 7);
    assert_eq!(
        store
            .append("alice", draft.id, 3, &second, 10, at)
            .await
            .unwrap(),
        Appended::Stored(10)
    );
    let mut all = first.clone();
    all.extend(second);
    assert_eq!(store.events(draft.id).await.unwrap(), all);

    // Once generated it takes no more.
    let job = Uuid::now_v7();
    assert!(store.set_pending("alice", draft.id, at).await.unwrap());
    assert!(!store.set_pending("alice", draft.id, at).await.unwrap());
    store.set_job(draft.id, job).await.unwrap();
    assert_eq!(
        store
            .append("alice", draft.id, 10, &events(10, 0), 20, at)
            .await
            .unwrap(),
        Appended::Refused
    );
    let pending = store.get("alice", draft.id).await.unwrap().unwrap();
    assert_eq!(pending.status, Status::Pending);
    assert_eq!(pending.job_id, Some(job));
}

async fn an_empty_draft_cannot_be_generated(backend: Backend) {
    let (store, _db) = store(backend).await;
    let draft = report("alice", Status::Draft, 0);
    store.insert(&draft, &[]).await.unwrap();
    assert!(!store.set_pending("alice", draft.id, now()).await.unwrap());
    assert!(!store.set_pending("bob", draft.id, now()).await.unwrap());
}

async fn finishing_records_the_file_and_drops_the_events(backend: Backend) {
    let (store, _db) = store(backend).await;
    let pending = report("alice", Status::Pending, 3);
    store.insert(&pending, &events(0, 3)).await.unwrap();
    // Only a running report finishes.
    assert!(
        !store
            .finish(pending.id, &file("aa", 10), now())
            .await
            .unwrap()
    );
    assert!(store.set_running(pending.id, now()).await.unwrap());
    // A repeated attempt may start it again.
    assert!(store.set_running(pending.id, now()).await.unwrap());
    let rendered = file("aa", 1234);
    assert!(store.finish(pending.id, &rendered, now()).await.unwrap());
    let done = store.get("alice", pending.id).await.unwrap().unwrap();
    assert_eq!(done.status, Status::Done);
    assert_eq!(done.sha256.as_deref(), Some("aa"));
    assert_eq!(done.size_bytes, 1234);
    assert_eq!(done.unit_count, 3);
    assert_eq!(done.first_event_at, rendered.first_event_at);
    assert_eq!(done.event_count, 3);
    assert!(store.events(pending.id).await.unwrap().is_empty());
    assert!(!store.set_running(pending.id, now()).await.unwrap());
    assert_eq!(store.usage("alice").await.unwrap(), 1234);
    assert_eq!(store.usage("bob").await.unwrap(), 0);
    assert_eq!(store.references("alice", "aa").await.unwrap(), 1);

    // Failing applies to waiting or running reports only.
    store.fail(pending.id, "late", now()).await.unwrap();
    assert_eq!(
        store
            .get("alice", pending.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        Status::Done
    );
    let other = report("alice", Status::Pending, 1);
    store.insert(&other, &events(0, 1)).await.unwrap();
    store.fail(other.id, "fonts missing", now()).await.unwrap();
    let failed = store.get("alice", other.id).await.unwrap().unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.failure_reason.as_deref(), Some("fonts missing"));
}

async fn listing_pages_newest_first_with_a_status_filter(backend: Backend) {
    let (store, _db) = store(backend).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let status = if i % 2 == 0 {
            Status::Draft
        } else {
            Status::Pending
        };
        let r = report("alice", status, 0);
        store.insert(&r, &[]).await.unwrap();
        ids.push(r.id);
    }
    store
        .insert(&report("bob", Status::Draft, 0), &[])
        .await
        .unwrap();
    let mut query = ListQuery {
        page_size: 2,
        after: None,
        status: None,
    };
    let mut seen = Vec::new();
    loop {
        let page = store.list("alice", &query).await.unwrap();
        seen.extend(page.reports.iter().map(|r| r.id));
        match page.next_after {
            Some(after) => query.after = Some(after),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let drafts = store
        .list(
            "alice",
            &ListQuery {
                page_size: 10,
                after: None,
                status: Some(Status::Draft),
            },
        )
        .await
        .unwrap();
    assert_eq!(drafts.reports.len(), 3);
}

async fn deleting_returns_the_file_and_retention_deletes_old_reports(backend: Backend) {
    let (store, _db) = store(backend).await;
    let done = report("alice", Status::Pending, 1);
    store.insert(&done, &events(0, 1)).await.unwrap();
    store.set_running(done.id, now()).await.unwrap();
    store.finish(done.id, &file("bb", 5), now()).await.unwrap();
    assert_eq!(store.delete("bob", done.id).await.unwrap(), None);
    assert_eq!(
        store.delete("alice", done.id).await.unwrap(),
        Some(Some("bb".into()))
    );
    assert_eq!(store.delete("alice", done.id).await.unwrap(), None);
    let draft = report("alice", Status::Draft, 1);
    store.insert(&draft, &events(0, 1)).await.unwrap();
    assert_eq!(store.delete("alice", draft.id).await.unwrap(), Some(None));

    let mut old = report("alice", Status::Draft, 0);
    old.created_at = now() - TimeDelta::days(40);
    store.insert(&old, &[]).await.unwrap();
    let fresh = report("bob", Status::Draft, 0);
    store.insert(&fresh, &[]).await.unwrap();
    let expired = store
        .delete_created_before(now() - TimeDelta::days(30))
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, old.id);
    assert_eq!(expired[0].owner_id, "alice");
    assert!(store.get("bob", fresh.id).await.unwrap().is_some());
}

aimesh_kit::backend_tests!(
    reports_keep_their_events_in_pages_in_order,
    appends_land_only_at_the_stored_count_of_a_draft,
    an_empty_draft_cannot_be_generated,
    finishing_records_the_file_and_drops_the_events,
    listing_pages_newest_first_with_a_status_filter,
    deleting_returns_the_file_and_retention_deletes_old_reports,
);
