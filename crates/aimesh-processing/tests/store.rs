//! One store test suite, run on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)]

use aimesh_ai::analysis::study::{NotesSection, QuestionKind, QuizQuestion, StudyNotes};
use aimesh_kit::testing::{Backend, TestDatabase};
use aimesh_processing::{
    DocumentStore, MIGRATIONS, QuizStore, TaskStore,
    domain::{
        Document, ListQuery, NewChunk, Processed, Status, StoredChunk, Upload, dot_encoded, now,
    },
    quizzes::domain::{
        Difficulty, HistoryQuery, Quiz, QuizKind, QuizStats, QuizStatus, Submission,
    },
    store::{Appended, UploadPart},
    tasks::domain::{
        SourceKind, Task, TaskOutput, TaskQuery, TaskResult, TaskSource, TaskStatus, TaskType,
        TranslateSpec,
    },
};
use uuid::Uuid;

async fn store(backend: Backend) -> (DocumentStore, TestDatabase) {
    let database = TestDatabase::create(backend).await;
    let db = database.connect().await;
    db.migrate(&aimesh_events::MIGRATIONS)
        .await
        .expect("events migrations apply");
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
        store.append("alice", pending.id, 0, 3, "p0").await.unwrap(),
        Appended::Stored(3)
    );
    assert_eq!(
        store.append("alice", pending.id, 0, 3, "p0").await.unwrap(),
        Appended::WrongOffset(3)
    );
    assert_eq!(
        store
            .append("alice", pending.id, 3, 4, "p3-long")
            .await
            .unwrap(),
        Appended::WrongOffset(3),
        "nothing past the declared size"
    );
    assert_eq!(
        store
            .append("bob", pending.id, 3, 3, "p3-bob")
            .await
            .unwrap(),
        Appended::NotFound
    );
    assert_eq!(
        store.append("alice", pending.id, 3, 3, "p3").await.unwrap(),
        Appended::Stored(6)
    );
    // The parts that landed, in order: the refused ones are not recorded.
    let part = |offset, size, key: &str| UploadPart {
        offset,
        size,
        key: key.into(),
    };
    assert_eq!(
        store.upload_parts(pending.id).await.unwrap(),
        vec![part(0, 3, "p0"), part(3, 3, "p3")]
    );
    store.delete_upload(pending.id).await.unwrap();
    assert!(
        store
            .get_upload("alice", pending.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.upload_parts(pending.id).await.unwrap().is_empty());
}

async fn processed_chunks_are_replaced_and_searchable(backend: Backend) {
    let (store, _db) = store(backend).await;
    let doc = document("alice", "bb", 5);
    store.insert(&doc).await.unwrap();
    let other = document("bob", "cc", 5);
    store.insert(&other).await.unwrap();
    let chunk = |seq: i32, page: i32, text: &str, embedding: Vec<f32>| NewChunk {
        seq,
        page,
        char_start: 0,
        char_end: text.chars().count() as i32,
        text: text.into(),
        embedding,
    };
    let processed = Processed {
        format: "pdf".into(),
        content_type: "application/pdf".into(),
        page_count: 2,
        text: "one\n\ntwo".into(),
    };
    // Not READY yet: nothing to search.
    assert!(top(&store, "alice", &[], 10).await.is_empty());
    // A repeated attempt replaces the chunks.
    for _ in 0..2 {
        assert!(
            store
                .store_processed(
                    doc.id,
                    &processed,
                    &[
                        chunk(0, 1, "one", vec![0.6, 0.8, 0.0]),
                        chunk(1, 2, "two", vec![0.8, 0.6, 0.0]),
                        // Another model's vector: never scored against this query.
                        chunk(2, 2, "other model", vec![1.0, 0.0]),
                    ],
                    None,
                    now()
                )
                .await
                .unwrap()
        );
    }
    store
        .store_processed(
            other.id,
            &processed,
            &[chunk(0, 1, "bob's", vec![1.0, 0.0, 0.0])],
            None,
            now(),
        )
        .await
        .unwrap();
    let ready = store.get(doc.id).await.unwrap().unwrap();
    assert_eq!(ready.status, Status::Ready);
    assert_eq!(ready.chunk_count, 3);
    assert_eq!(
        ready.content_type, "application/pdf",
        "sniffed when none given"
    );
    assert_eq!(ready.text.as_deref(), Some("one\n\ntwo"));
    // Ranked by the score of their stored vectors, best first; only the owner's, once each.
    let hits = top(&store, "alice", &[], 10).await;
    let found: Vec<(&str, i32, f32)> = hits
        .iter()
        .map(|(chunk, score)| (chunk.text.as_str(), chunk.page, *score))
        .collect();
    assert_eq!(found, vec![("two", 2, 0.8), ("one", 1, 0.6)]);
    assert_eq!(hits[0].0.document_id, doc.id);
    assert_eq!(hits[0].0.filename, doc.filename);
    let best = top(&store, "alice", &[doc.id], 1).await;
    assert_eq!(best.len(), 1);
    assert_eq!(best[0].0.text, "two");
    assert!(top(&store, "alice", &[other.id], 10).await.is_empty());

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
    assert!(top(&store, "alice", &[], 10).await.is_empty());
    assert_eq!(top(&store, "bob", &[], 10).await.len(), 1);
}

/// The `k` chunks of `owner` (of `documents`, when given) nearest to the query (1, 0, 0).
async fn top(
    store: &DocumentStore,
    owner: &str,
    documents: &[Uuid],
    k: usize,
) -> Vec<(StoredChunk, f32)> {
    store
        .top_chunks(owner, documents, k, |stored| {
            dot_encoded(&[1.0, 0.0, 0.0], stored)
        })
        .await
        .unwrap()
}

async fn a_fast_worker_is_not_overwritten_by_the_submission(backend: Backend) {
    let (store, _db) = store(backend).await;
    let doc = document("alice", "cc", 10);
    store.insert(&doc).await.unwrap();
    // Submission marks the document PENDING first; a worker then takes the job at once.
    assert!(store.set_pending("alice", doc.id, now()).await.unwrap());
    assert!(
        !store.set_pending("bob", doc.id, now()).await.unwrap(),
        "owner only"
    );
    store
        .set_status(doc.id, Status::Processing, None, now())
        .await
        .unwrap();
    // Recording the job afterwards leaves the worker's status alone.
    let job = Uuid::now_v7();
    store.set_job(doc.id, job).await.unwrap();
    let stored = store.get(doc.id).await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Processing);
    assert_eq!(stored.job_id, Some(job));
}

async fn study_notes_are_stored_with_the_document_and_replaced(backend: Backend) {
    let (store, _db) = store(backend).await;
    let doc = document("alice", "dd", 10);
    store.insert(&doc).await.unwrap();
    let processed = Processed {
        format: "text".into(),
        content_type: "text/plain".into(),
        page_count: 1,
        text: "Cats purr.".into(),
    };
    let notes = StudyNotes {
        overview: vec!["Cats purr.".into()],
        sections: vec![NotesSection {
            heading: "Cats".into(),
            key_points: vec!["Cats purr.".into()],
            key_terms: vec!["cats".into()],
        }],
        key_terms: vec!["cats".into()],
        engine: "test-notes".into(),
    };
    assert!(
        store
            .store_processed(doc.id, &processed, &[], Some(&notes), now())
            .await
            .unwrap()
    );
    assert_eq!(store.notes(doc.id).await.unwrap(), Some(notes));
    // Reprocessed without notes: the old ones go.
    store
        .store_processed(doc.id, &processed, &[], None, now())
        .await
        .unwrap();
    assert_eq!(store.notes(doc.id).await.unwrap(), None);
}

fn task(owner: &str, document: Uuid, task_type: TaskType) -> Task {
    let at = now();
    Task {
        id: Uuid::now_v7(),
        owner_id: owner.into(),
        source: TaskSource {
            kind: SourceKind::Document,
            id: document,
        },
        task_type,
        status: TaskStatus::Queued,
        failure_reason: None,
        job_id: None,
        translate: (task_type == TaskType::Translate).then(|| TranslateSpec {
            source_language: "es".into(),
            source_detected: true,
            target_language: "en".into(),
            engine: "apertium".into(),
        }),
        result: None,
        created_at: at,
        updated_at: at,
    }
}

async fn tasks_page_filter_and_end_once(backend: Backend) {
    let (documents, database) = store(backend).await;
    drop(documents);
    let tasks = TaskStore::new(database.connect().await);
    let doc = Uuid::now_v7();
    let other_doc = Uuid::now_v7();
    let summary = task("alice", doc, TaskType::Summarize);
    let translation = task("alice", doc, TaskType::Translate);
    let elsewhere = task("alice", other_doc, TaskType::Summarize);
    let bobs = task("bob", doc, TaskType::Summarize);
    for t in [&summary, &translation, &elsewhere, &bobs] {
        tasks.insert(t).await.unwrap();
    }
    let job = Uuid::now_v7();
    tasks.set_job(summary.id, job).await.unwrap();
    let stored = tasks.get(summary.id).await.unwrap().unwrap();
    assert_eq!(stored.job_id, Some(job));
    assert_eq!(
        tasks.get(translation.id).await.unwrap().unwrap().translate,
        translation.translate
    );

    // Paging, newest first, and each filter.
    let query = |after, document_id, task_type, status| TaskQuery {
        page_size: 2,
        after,
        document_id,
        task_type,
        status,
    };
    let first = tasks
        .list("alice", &query(None, None, None, None))
        .await
        .unwrap();
    assert_eq!(
        first.tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![elsewhere.id, translation.id]
    );
    let second = tasks
        .list("alice", &query(first.next_after, None, None, None))
        .await
        .unwrap();
    assert_eq!(second.tasks.len(), 1);
    assert!(second.next_after.is_none());
    let on_doc = tasks
        .list("alice", &query(None, Some(doc), None, None))
        .await
        .unwrap();
    assert_eq!(on_doc.tasks.len(), 2);
    let translations = tasks
        .list("alice", &query(None, None, Some(TaskType::Translate), None))
        .await
        .unwrap();
    assert_eq!(translations.tasks.len(), 1);

    // A result ends the task; a late failure cannot overwrite it.
    let result = TaskResult {
        engine: "test-centroid".into(),
        output: TaskOutput::Summary {
            sentences: vec!["One.".into()],
            total_sentences: 4,
        },
    };
    assert!(
        tasks
            .set_status(summary.id, TaskStatus::Running, None, now())
            .await
            .unwrap()
    );
    assert!(tasks.succeed(summary.id, &result, now()).await.unwrap());
    assert!(
        !tasks
            .set_status(summary.id, TaskStatus::Failed, Some("late"), now())
            .await
            .unwrap()
    );
    let done = tasks.get(summary.id).await.unwrap().unwrap();
    assert_eq!(done.status, TaskStatus::Succeeded);
    assert_eq!(done.result, Some(result));
    let succeeded = tasks
        .list(
            "alice",
            &query(None, None, None, Some(TaskStatus::Succeeded)),
        )
        .await
        .unwrap();
    assert_eq!(succeeded.tasks.len(), 1);
}

async fn quizzes_keep_questions_and_score_history(backend: Backend) {
    let (documents, database) = store(backend).await;
    drop(documents);
    let quizzes = QuizStore::new(database.connect().await);
    let doc = Uuid::now_v7();
    let at = now();
    let quiz = Quiz {
        id: Uuid::now_v7(),
        owner_id: "alice".into(),
        document_id: doc,
        num_questions: 1,
        difficulty: Difficulty::Hard,
        kind: QuizKind::Mixed,
        status: QuizStatus::Pending,
        failure_reason: None,
        job_id: None,
        engine: None,
        questions: Vec::new(),
        submissions: 0,
        created_at: at,
        updated_at: at,
    };
    quizzes.insert(&quiz).await.unwrap();
    let question = QuizQuestion {
        kind: QuestionKind::TrueFalse,
        prompt: "True or false: Cats purr.".into(),
        options: vec!["True".into(), "False".into()],
        answer: "True".into(),
        sentence: "Cats purr.".into(),
        sentence_index: 0,
    };
    assert!(
        quizzes
            .ready(
                quiz.id,
                "test-cloze",
                std::slice::from_ref(&question),
                now()
            )
            .await
            .unwrap()
    );
    assert!(
        !quizzes.fail(quiz.id, "late", now()).await.unwrap(),
        "READY stays READY"
    );
    let ready = quizzes.get(quiz.id).await.unwrap().unwrap();
    assert_eq!(ready.status, QuizStatus::Ready);
    assert_eq!(ready.questions, vec![question]);
    assert_eq!(ready.submissions, 0);

    let empty = quizzes
        .history(
            "alice",
            &HistoryQuery {
                page_size: 10,
                after: None,
                document_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(empty.stats, QuizStats::default());
    for score in [100.0, 0.0, 50.0] {
        let submission = Submission {
            id: Uuid::now_v7(),
            quiz_id: quiz.id,
            owner_id: "alice".into(),
            document_id: doc,
            correct_count: (score / 50.0) as i32,
            total_questions: 2,
            score,
            results: Vec::new(),
            submitted_at: now(),
        };
        quizzes.insert_submission(&submission).await.unwrap();
    }
    assert_eq!(quizzes.get(quiz.id).await.unwrap().unwrap().submissions, 3);
    let page = quizzes
        .history(
            "alice",
            &HistoryQuery {
                page_size: 2,
                after: None,
                document_id: Some(doc),
            },
        )
        .await
        .unwrap();
    assert_eq!(page.submissions.len(), 2);
    assert!(page.next_after.is_some());
    assert_eq!(page.submissions[0].score, 50.0, "newest first");
    assert_eq!(page.stats.submissions, 3);
    assert_eq!(page.stats.quizzes, 1);
    assert!((page.stats.average - 50.0).abs() < 1e-9);
    assert_eq!(
        (page.stats.best, page.stats.worst, page.stats.last),
        (100.0, 0.0, 50.0)
    );
    let bobs = quizzes
        .history(
            "bob",
            &HistoryQuery {
                page_size: 10,
                after: None,
                document_id: None,
            },
        )
        .await
        .unwrap();
    assert!(bobs.submissions.is_empty());
}

aimesh_kit::backend_tests!(
    documents_are_unique_per_owner_and_content,
    appends_land_only_at_the_stored_offset,
    processed_chunks_are_replaced_and_searchable,
    a_fast_worker_is_not_overwritten_by_the_submission,
    study_notes_are_stored_with_the_document_and_replaced,
    tasks_page_filter_and_end_once,
    quizzes_keep_questions_and_score_history,
);
