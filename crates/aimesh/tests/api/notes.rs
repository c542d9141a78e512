//! The notes API end to end: CRUD, statistics, paging, optimistic concurrency, bad input.

use aimesh_kit::testing::Backend;
use aimesh_proto::notes::v1 as pb;
use prost_types::FieldMask;

use crate::helpers::{TestApp, assert_code, assert_invalid, backend_tests, get_note};

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

async fn crud_and_stats(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut notes = app.notes.clone();

    let first = app.create_note("My Note", "Hello world", "en").await;
    let second = app.create_note("Second", "Good morning", "EN").await;
    let third = app.create_note("Troisième", "Bonjour le monde", "fr").await;
    assert_eq!(first.version, 1);
    assert_eq!(
        second.original_language, "en",
        "language tags are normalised"
    );
    assert!(first.create_time.is_some() && first.update_time == first.create_time);

    let got = get_note(&notes, &first.id).await;
    assert_eq!(got, first);

    // Update through the cache: the next read sees the change.
    let updated = notes
        .update_note(pb::UpdateNoteRequest {
            note: Some(pb::Note {
                id: first.id.clone(),
                title: "My Updated Title".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .note
        .unwrap();
    assert_eq!(updated.title, "My Updated Title");
    assert_eq!(updated.original_text, "Hello world");
    assert_eq!(updated.version, 2);
    let reread = get_note(&notes, &first.id).await;
    assert_eq!(reread, updated);

    // An explicit mask changes exactly the named field, even to a new language.
    let relabelled = notes
        .update_note(pb::UpdateNoteRequest {
            note: Some(pb::Note {
                id: second.id.clone(),
                title: "ignored without a mask path".into(),
                original_language: "es".into(),
                version: 1,
                ..Default::default()
            }),
            update_mask: mask(&["original_language"]),
        })
        .await
        .unwrap()
        .into_inner()
        .note
        .unwrap();
    assert_eq!(relabelled.title, "Second");
    assert_eq!(relabelled.original_language, "es");

    let stats = notes
        .get_note_stats(pb::GetNoteStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.total_notes, 3);
    assert_eq!(stats.total_translations, 0);
    let by_language: Vec<(String, i64)> = stats
        .notes_by_language
        .iter()
        .map(|c| (c.language.clone(), c.count))
        .collect();
    assert_eq!(
        by_language,
        vec![("en".into(), 1), ("es".into(), 1), ("fr".into(), 1)]
    );
    assert_eq!(stats.last_activity_time, relabelled.update_time);

    notes
        .delete_note(pb::DeleteNoteRequest {
            id: third.id.clone(),
            version: 0,
        })
        .await
        .unwrap();
    let gone = notes
        .get_note(pb::GetNoteRequest {
            id: third.id.clone(),
        })
        .await
        .unwrap_err();
    assert_code(&gone, tonic::Code::NotFound);
    let again = notes
        .delete_note(pb::DeleteNoteRequest {
            id: third.id.clone(),
            version: 0,
        })
        .await
        .unwrap_err();
    assert_code(&again, tonic::Code::NotFound);

    let stats = notes
        .get_note_stats(pb::GetNoteStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.total_notes, 2);
}

async fn pagination_and_filters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut notes = app.notes.clone();
    let mut created = Vec::new();
    for i in 0..25 {
        let language = if i % 5 == 0 { "de" } else { "en" };
        let text = if i % 2 == 0 {
            "an EVEN 100% note"
        } else {
            "odd one"
        };
        created.push(
            app.create_note(&format!("note {i}"), text, language)
                .await
                .id,
        );
    }
    created.reverse(); // newest first

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = notes
            .list_notes(pb::ListNotesRequest {
                page_size: 10,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(page.notes.into_iter().map(|n| n.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created, "every note once, newest first");

    let default_page = notes
        .list_notes(pb::ListNotesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(default_page.notes.len(), 20);

    let german = notes
        .list_notes(pb::ListNotesRequest {
            language: "de".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(german.notes.len(), 5);
    assert!(german.notes.iter().all(|n| n.original_language == "de"));

    // Case-insensitive, and `%` is a literal, not a wildcard.
    let even = notes
        .list_notes(pb::ListNotesRequest {
            query: "even 100%".into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(even.notes.len(), 13);
    let none = notes
        .list_notes(pb::ListNotesRequest {
            query: "even 1000%".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.notes.is_empty());

    // A token only works with the filters it was issued for.
    let first = notes
        .list_notes(pb::ListNotesRequest {
            page_size: 2,
            language: "de".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let replayed = notes
        .list_notes(pb::ListNotesRequest {
            page_size: 2,
            page_token: first.next_page_token,
            language: "en".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&replayed, "page_token");
}

async fn concurrent_updates_with_versions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let note = app.create_note("race", "text", "en").await;

    let attempts = (0..8).map(|i| {
        let mut notes = app.notes.clone();
        let id = note.id.clone();
        async move {
            notes
                .update_note(pb::UpdateNoteRequest {
                    note: Some(pb::Note {
                        id,
                        title: format!("writer {i}"),
                        version: 1,
                        ..Default::default()
                    }),
                    update_mask: mask(&["title"]),
                })
                .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        winners, 1,
        "exactly one writer of version 1 wins: {results:?}"
    );
    for result in &results {
        if let Err(status) = result {
            assert_code(status, tonic::Code::Aborted);
        }
    }

    // Unconditional writers all land, each bumping the version once.
    let blind = (0..6).map(|i| {
        let mut notes = app.notes.clone();
        let id = note.id.clone();
        async move {
            notes
                .update_note(pb::UpdateNoteRequest {
                    note: Some(pb::Note {
                        id,
                        original_text: format!("text {i}"),
                        ..Default::default()
                    }),
                    update_mask: None,
                })
                .await
        }
    });
    for result in futures::future::join_all(blind).await {
        result.unwrap();
    }
    let final_note = get_note(&app.notes, &note.id).await;
    assert_eq!(final_note.version, 8);

    let stale = app
        .notes
        .clone()
        .delete_note(pb::DeleteNoteRequest {
            id: note.id.clone(),
            version: 2,
        })
        .await
        .unwrap_err();
    assert_code(&stale, tonic::Code::Aborted);
    app.notes
        .clone()
        .delete_note(pb::DeleteNoteRequest {
            id: note.id.clone(),
            version: 8,
        })
        .await
        .unwrap();
}

async fn bad_input_is_refused_precisely(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut notes = app.notes.clone();
    let existing = app.create_note("kept", "kept text", "en").await;

    let create = |title: String, text: String, language: &str| pb::CreateNoteRequest {
        note: Some(pb::Note {
            title,
            original_text: text,
            original_language: language.into(),
            ..Default::default()
        }),
    };
    let cases = [
        (pb::CreateNoteRequest { note: None }, "note"),
        (create("".into(), "t".into(), "en"), "note.title"),
        (create("   ".into(), "t".into(), "en"), "note.title"),
        (create("x".repeat(201), "t".into(), "en"), "note.title"),
        (create("t".into(), "".into(), "en"), "note.original_text"),
        (
            create("t".into(), "x".repeat(100_001), "en"),
            "note.original_text",
        ),
        (create("t".into(), "t".into(), ""), "note.original_language"),
        (
            create("t".into(), "t".into(), "english!"),
            "note.original_language",
        ),
        (
            create("t".into(), "t".into(), "en_US"),
            "note.original_language",
        ),
        (
            create("t".into(), "t\0x".into(), "en"),
            "note.original_text",
        ),
    ];
    for (request, field) in cases {
        let status = notes.create_note(request).await.unwrap_err();
        assert_invalid(&status, field);
    }

    for id in ["", "1", "not-a-uuid", "'; DROP TABLE notes; --"] {
        let status = notes
            .get_note(pb::GetNoteRequest { id: id.into() })
            .await
            .unwrap_err();
        assert_invalid(&status, "id");
    }
    let missing = notes
        .get_note(pb::GetNoteRequest {
            id: "00000000-0000-7000-8000-000000000000".into(),
        })
        .await
        .unwrap_err();
    assert_code(&missing, tonic::Code::NotFound);

    let list = |page_size: i32, token: &str, language: &str, query: String| pb::ListNotesRequest {
        page_size,
        page_token: token.into(),
        language: language.into(),
        query,
    };
    let forged = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([1u8; 25])
    };
    let list_cases = [
        (list(101, "", "", String::new()), "page_size"),
        (list(-1, "", "", String::new()), "page_size"),
        (list(10, "garbage!", "", String::new()), "page_token"),
        (list(10, &forged, "", String::new()), "page_token"),
        (list(10, "", "x!", String::new()), "language"),
        (list(10, "", "", "q".repeat(201)), "query"),
    ];
    for (request, field) in list_cases {
        let status = notes.list_notes(request).await.unwrap_err();
        assert_invalid(&status, field);
    }

    let update = |id: &str, title: &str, version: i64, paths: &[&str]| pb::UpdateNoteRequest {
        note: Some(pb::Note {
            id: id.into(),
            title: title.into(),
            version,
            ..Default::default()
        }),
        update_mask: if paths.is_empty() { None } else { mask(paths) },
    };
    let update_cases = [
        (
            pb::UpdateNoteRequest {
                note: None,
                update_mask: None,
            },
            "note",
        ),
        (update("nope", "t", 0, &[]), "note.id"),
        (
            update(&existing.id, "t", 0, &["owner_id"]),
            "update_mask.paths",
        ),
        (
            update(&existing.id, "t", 0, &["version"]),
            "update_mask.paths",
        ),
        (update(&existing.id, "", 0, &[]), "update_mask"),
        (update(&existing.id, "", 0, &["title"]), "note.title"),
        (update(&existing.id, "t", -3, &[]), "note.version"),
    ];
    for (request, field) in update_cases {
        let status = notes.update_note(request).await.unwrap_err();
        assert_invalid(&status, field);
    }
    let stale = notes
        .update_note(update(&existing.id, "t", 7, &[]))
        .await
        .unwrap_err();
    assert_code(&stale, tonic::Code::Aborted);
    let unknown = notes
        .update_note(update("00000000-0000-7000-8000-000000000000", "t", 0, &[]))
        .await
        .unwrap_err();
    assert_code(&unknown, tonic::Code::NotFound);

    let status = notes
        .delete_note(pb::DeleteNoteRequest {
            id: "x".into(),
            version: 0,
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "id");
    let status = notes
        .delete_note(pb::DeleteNoteRequest {
            id: existing.id.clone(),
            version: -1,
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "version");

    // Nothing above changed the stored note; SQL in text is data.
    let kept = get_note(&notes, &existing.id).await;
    assert_eq!(kept, existing);
    let injected = app
        .create_note("Robert'); DROP TABLE notes;--", "' OR 1=1 --", "en")
        .await;
    let fetched = get_note(&notes, &injected.id).await;
    assert_eq!(fetched.title, "Robert'); DROP TABLE notes;--");
    let found = notes
        .list_notes(pb::ListNotesRequest {
            query: "' OR 1=1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.notes.len(), 1);
}

backend_tests!(
    crud_and_stats,
    pagination_and_filters,
    concurrent_updates_with_versions,
    bad_input_is_refused_precisely,
);
