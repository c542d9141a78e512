//! Domain events end to end: changes made through the services' APIs come back on WatchEvents
//! and ListEvents in order, one event per change (none for a change that was refused), each
//! typed and about its resource; a watch resumes after the last event it saw; a user sees only
//! their own events, an administrator everyone's; an account's deletion takes its events and is
//! told; bad requests are refused naming the field.

use std::time::Duration;

use aimesh::ServiceKind;
use aimesh_gallery::samples;
use aimesh_kit::testing::{Backend, eventually};
use aimesh_proto::{
    events::v1::{self as pb, event_payload::Kind, events_service_client::EventsServiceClient},
    gallery::v1::{self as gpb, gallery_service_client::GalleryServiceClient},
    google::api::HttpBody,
    identity::v1 as idpb,
    notes::v1 as npb,
    reports::v1::{self as rpb, reports_service_client::ReportsServiceClient},
};
use tonic::{Code, Streaming, codegen::InterceptedService, transport::Channel};

use crate::helpers::{
    Bearer, PASSWORD, TestApp, assert_code, assert_invalid, backend_tests, create_note,
};

type Client = EventsServiceClient<InterceptedService<Channel, Bearer>>;

fn client(app: &TestApp, token: &str) -> Client {
    EventsServiceClient::with_interceptor(app.channel.clone(), Bearer::token(token))
}

async fn watch(
    client: &Client,
    request: pb::WatchEventsRequest,
) -> Streaming<pb::WatchEventsResponse> {
    client
        .clone()
        .watch_events(request)
        .await
        .expect("watch_events")
        .into_inner()
}

/// Reads `count` events from a watch (fails after a while).
async fn next(stream: &mut Streaming<pb::WatchEventsResponse>, count: usize) -> Vec<pb::Event> {
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "event {} of {count} came in time: {events:#?}",
                    events.len() + 1
                )
            })
            .expect("the watch runs")
            .expect("the watch goes on");
        events.push(message.event.unwrap());
    }
    events
}

/// Asserts that no further event comes within a short while.
async fn quiet(stream: &mut Streaming<pb::WatchEventsResponse>) {
    if let Ok(message) = tokio::time::timeout(Duration::from_millis(1500), stream.message()).await {
        panic!("no further event, got {message:?}");
    }
}

fn types(events: &[pb::Event]) -> Vec<&str> {
    events.iter().map(|event| event.r#type.as_str()).collect()
}

fn kind(event: &pb::Event) -> &Kind {
    event
        .payload
        .as_ref()
        .and_then(|payload| payload.kind.as_ref())
        .expect("a typed payload")
}

async fn changes_come_back_as_events_in_order_and_a_watch_resumes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = &app.alice;
    let events = client(&app, &alice.access);
    let mut live = watch(&events, pb::WatchEventsRequest::default()).await;

    // Notes: created, updated (a stale version is refused and tells nothing), deleted.
    let note = create_note(&alice.notes, "Groceries", "milk, eggs", "en").await;
    let updated = alice
        .notes
        .clone()
        .update_note(npb::UpdateNoteRequest {
            note: Some(npb::Note {
                id: note.id.clone(),
                title: "Shopping".into(),
                version: note.version,
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .note
        .unwrap();
    let stale = alice
        .notes
        .clone()
        .update_note(npb::UpdateNoteRequest {
            note: Some(npb::Note {
                id: note.id.clone(),
                title: "Again".into(),
                version: note.version,
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap_err();
    assert_code(&stale, Code::Aborted);
    alice
        .notes
        .clone()
        .delete_note(npb::DeleteNoteRequest {
            id: note.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();

    let seen = next(&mut live, 3).await;
    assert_eq!(
        types(&seen),
        [
            "notes.note.created",
            "notes.note.updated",
            "notes.note.deleted"
        ]
    );
    for event in &seen {
        assert_eq!(event.owner_id, alice.user_id);
        assert_eq!(event.subject_id, note.id);
        assert!(event.time.is_some());
        uuid::Uuid::parse_str(&event.id).expect("a UUID id");
    }
    assert!(
        seen.windows(2)
            .all(|pair| pair[0].sequence < pair[1].sequence)
    );
    match kind(&seen[0]) {
        Kind::NoteCreated(created) => {
            assert_eq!(created.title, "Groceries");
            assert_eq!(created.language, "en");
        }
        other => panic!("a NoteCreated payload, got {other:?}"),
    }
    match kind(&seen[1]) {
        Kind::NoteUpdated(changed) => assert_eq!(changed.version, updated.version),
        other => panic!("a NoteUpdated payload, got {other:?}"),
    }
    assert!(matches!(kind(&seen[2]), Kind::NoteDeleted(_)));

    // Gallery: uploaded, trashed, restored, deleted for good.
    let gallery =
        GalleryServiceClient::with_interceptor(app.channel.clone(), Bearer::token(&alice.access));
    let image = gallery
        .clone()
        .upload_image(gpb::UploadImageRequest {
            body: Some(HttpBody {
                content_type: String::new(),
                data: samples::jpeg(&samples::landscape(64, 48, 7), &[]),
                extensions: Vec::new(),
            }),
            title: "hills".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .unwrap();
    gallery
        .clone()
        .delete_image(gpb::DeleteImageRequest {
            id: image.id.clone(),
        })
        .await
        .unwrap();
    gallery
        .clone()
        .restore_image(gpb::RestoreImageRequest {
            id: image.id.clone(),
        })
        .await
        .unwrap();
    gallery
        .clone()
        .permanently_delete_image(gpb::PermanentlyDeleteImageRequest {
            id: image.id.clone(),
        })
        .await
        .unwrap();
    let seen_gallery = next(&mut live, 4).await;
    assert_eq!(
        types(&seen_gallery),
        [
            "gallery.image.created",
            "gallery.image.trashed",
            "gallery.image.restored",
            "gallery.image.deleted"
        ]
    );
    assert!(
        seen_gallery
            .iter()
            .all(|event| event.subject_id == image.id)
    );
    match kind(&seen_gallery[0]) {
        Kind::ImageCreated(created) => {
            assert_eq!(created.source, "upload");
            assert_eq!((created.width, created.height), (64, 48));
        }
        other => panic!("an ImageCreated payload, got {other:?}"),
    }

    // Reports: the rendering job's end.
    let reports =
        ReportsServiceClient::with_interceptor(app.channel.clone(), Bearer::token(&alice.access));
    let created = reports
        .clone()
        .create_report(rpb::CreateReportRequest {
            report: Some(rpb::ReportInput {
                student_id: "s1".into(),
                namespace: "math".into(),
                events: vec![rpb::ReportEvent {
                    unit: "Fractions".into(),
                    r#type: "viewed".into(),
                    created_time: "2025-03-02T09:30:00Z".into(),
                }],
                format: rpb::ReportFormat::Html.into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let report = created.report.unwrap();
    let finished = next(&mut live, 1).await;
    assert_eq!(types(&finished), ["reports.report.finished"]);
    assert_eq!(finished[0].subject_id, report.id);
    match kind(&finished[0]) {
        Kind::ReportFinished(done) => {
            assert!(done.ready, "{done:?}");
            assert_eq!(done.format, "html");
        }
        other => panic!("a ReportFinished payload, got {other:?}"),
    }
    quiet(&mut live).await;
    drop(live);

    // A watch that resumes after the last event seen gets what happened since, then live.
    let last = finished[0].id.clone();
    let later = create_note(&alice.notes, "Later", "while away", "en").await;
    let mut resumed = watch(
        &events,
        pb::WatchEventsRequest {
            after_event_id: last.clone(),
            ..Default::default()
        },
    )
    .await;
    let missed = next(&mut resumed, 1).await;
    assert_eq!(types(&missed), ["notes.note.created"]);
    assert_eq!(missed[0].subject_id, later.id);
    let live_again = create_note(&alice.notes, "Live", "again", "en").await;
    assert_eq!(next(&mut resumed, 1).await[0].subject_id, live_again.id);

    // From the oldest, filtered by type: the gallery's four, in order.
    let mut images = watch(
        &events,
        pb::WatchEventsRequest {
            from_oldest: true,
            types: vec!["gallery.image".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        next(&mut images, 4)
            .await
            .iter()
            .map(|e| &e.id)
            .collect::<Vec<_>>(),
        seen_gallery.iter().map(|e| &e.id).collect::<Vec<_>>()
    );

    // Pages of the same order.
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let page = events
            .clone()
            .list_events(pb::ListEventsRequest {
                page_size: 4,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.events.len() <= 4);
        listed.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let account = listed
        .iter()
        .position(|e| e.r#type == "identity.account.created");
    assert_eq!(
        account,
        Some(0),
        "alice's account came first: {:?}",
        types(&listed)
    );
    assert_eq!(listed.len(), 1 + 3 + 4 + 1 + 2, "{:?}", types(&listed));
    assert!(
        listed
            .windows(2)
            .all(|pair| pair[0].sequence < pair[1].sequence)
    );

    // Bob sees none of it.
    let bob = app.session("bob").await;
    let bob_events = client(&app, &bob.access);
    // Events are listed once numbered, which follows their commit closely.
    let bobs = eventually(
        Duration::from_secs(10),
        "bob's first event is listed",
        || {
            let bob_events = bob_events.clone();
            async move {
                let events = bob_events
                    .clone()
                    .list_events(pb::ListEventsRequest::default())
                    .await
                    .unwrap()
                    .into_inner()
                    .events;
                (!events.is_empty()).then_some(events)
            }
        },
    )
    .await;
    assert_eq!(types(&bobs), ["identity.account.created"]);
    assert_eq!(bobs[0].owner_id, bob.user_id);
    // Nor can he resume after one of alice's events.
    let status = client(&app, &bob.access)
        .watch_events(pb::WatchEventsRequest {
            after_event_id: last,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_code(&status, Code::NotFound);
}

async fn an_administrator_watches_every_account_and_a_deletion_is_told(backend: Backend) {
    let app = TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        config.identity.admin_emails = vec!["root@example.com".into()];
    })
    .await;
    let root = app.session("root").await;
    let mut everyone = watch(
        &client(&app, &root.access),
        pb::WatchEventsRequest {
            all_accounts: true,
            types: vec!["identity".into(), "notes".into()],
            ..Default::default()
        },
    )
    .await;

    let carol = app.session("carol").await;
    create_note(&carol.notes, "Mine", "text", "en").await;
    // Her events so far; her account's deletion takes the ones not yet told with it.
    let mut seen = next(&mut everyone, 2).await;
    carol
        .identity
        .clone()
        .delete_account(idpb::DeleteAccountRequest {
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    seen.extend(next(&mut everyone, 1).await);
    assert_eq!(
        types(&seen),
        [
            "identity.account.created",
            "notes.note.created",
            "identity.account.deleted"
        ]
    );
    assert!(seen.iter().all(|event| event.owner_id == carol.user_id));
    assert_eq!(seen[2].subject_id, carol.user_id);
    // Her events went with her account; only the deletion's remains, for consumers.
    let left = app
        .core
        .events
        .store()
        .of_owner(&carol.user_id)
        .await
        .unwrap();
    assert_eq!(
        left.iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        ["identity.account.deleted"]
    );
}

async fn bad_event_requests_are_refused_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let events = client(&app, &app.alice.access);

    let status = events
        .clone()
        .watch_events(pb::WatchEventsRequest {
            all_accounts: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_code(&status, Code::PermissionDenied);
    let status = events
        .clone()
        .list_events(pb::ListEventsRequest {
            all_accounts: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_code(&status, Code::PermissionDenied);

    let status = events
        .clone()
        .watch_events(pb::WatchEventsRequest {
            types: vec!["notes".into(), "note".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "types[1]");
    let status = events
        .clone()
        .watch_events(pb::WatchEventsRequest {
            after_event_id: "not-an-id".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "after_event_id");
    let status = events
        .clone()
        .watch_events(pb::WatchEventsRequest {
            after_event_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_code(&status, Code::NotFound);
    let status = events
        .clone()
        .list_events(pb::ListEventsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "page_size");
    let status = events
        .clone()
        .list_events(pb::ListEventsRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "page_token");
    // Without credentials: UNAUTHENTICATED.
    let status = EventsServiceClient::new(app.channel.clone())
        .list_events(pb::ListEventsRequest::default())
        .await
        .unwrap_err();
    assert_code(&status, Code::Unauthenticated);
}

backend_tests!(
    changes_come_back_as_events_in_order_and_a_watch_resumes,
    an_administrator_watches_every_account_and_a_deletion_is_told,
    bad_event_requests_are_refused_naming_the_field,
);
