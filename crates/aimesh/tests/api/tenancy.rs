//! The cross-tenant matrix, generated from the descriptor set: every RPC whose request names
//! a resource by id (`id`, `*_id`, or a nested message's `id`) is called by bob with alice's
//! resources, and must answer NOT_FOUND — so a new RPC is covered without editing this test.
//!
//! Bob's request is otherwise made valid field by field: a call refused as INVALID_ARGUMENT
//! is retried with a plausible value for each violated field, taken from [`FIELD_DEFAULTS`]
//! by the field's name. A service whose requests name resources needs a resource of alice's
//! in [`resources`], and a new required field a default; the test says which is missing.

use std::collections::HashMap;

use aimesh_kit::testing::Backend;
use aimesh_proto::{
    gallery::v1::{self as gpb, gallery_service_client::GalleryServiceClient},
    google::api::HttpBody,
    jobs::v1 as jpb,
    notes::v1 as pb,
    processing::v1::{self as ppb, processing_service_client::ProcessingServiceClient},
    reports::v1::{self as rpb, reports_service_client::ReportsServiceClient},
    speech::v1::{self as spb, speech_service_client::SpeechServiceClient},
};
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};
use tonic_types::StatusExt;

use crate::{
    dynamic::call,
    helpers::{Bearer, TestApp, backend_tests, create_note},
};

/// Plausible values for request fields, by field name, for requests the matrix must make
/// valid apart from the resource they name.
const FIELD_DEFAULTS: &[(&str, &str)] = &[
    ("data", "some bytes"),
    ("target_language", "es"),
    ("source_language", "en"),
    ("title", "a title"),
    ("original_text", "some text"),
    ("original_language", "en"),
    // An enum, by number: the gallery's sepia style.
    ("style", "2"),
    ("content", "hello"),
    ("message", "hello"),
];

/// Services without resources of their own (engines and the benchmark hold none), and the
/// admin service, which reaches every user's resources by design and refuses everyone but
/// administrators (the admin suite checks that, method by method).
const WITHOUT_RESOURCES: &[&str] = &[
    "aimesh.models.v1.ModelsService",
    "aimesh.bench.v1.EchoService",
    "aimesh.admin.v1.AdminService",
    // Tasks and quizzes need a processed document before any exists; their isolation is
    // checked in `tasks::tasks_refuse_bad_input_and_other_users` until this matrix makes them.
    "aimesh.processing.v1.TaskService",
    "aimesh.processing.v1.QuizService",
];

/// Alice's resources, by the service that owns them and the request field naming them (a
/// field not listed names the service's `id` resource).
async fn resources(app: &TestApp) -> HashMap<(&'static str, &'static str), String> {
    let note = create_note(&app.notes, "alice's", "The house is big.", "en").await;
    let job = app
        .notes
        .clone()
        .translate_note(pb::TranslateNoteRequest {
            id: note.id.clone(),
            target_language: "es".into(),
            ..Default::default()
        })
        .await
        .expect("translate")
        .into_inner()
        .job
        .expect("a job");
    // Wait for the job to end, so the matrix meets it in a stable state.
    let mut watch = app
        .jobs()
        .watch_job(jpb::WatchJobRequest { id: job.id.clone() })
        .await
        .expect("watch")
        .into_inner();
    while watch.message().await.expect("stream").is_some() {}
    let mut processing = ProcessingServiceClient::with_interceptor(
        app.channel.clone(),
        Bearer::token(&app.alice.access),
    );
    let document = processing
        .upload_document(ppb::UploadDocumentRequest {
            body: Some(HttpBody {
                content_type: "text/plain".into(),
                data: b"Alice's notes on the garden.".to_vec(),
                extensions: Vec::new(),
            }),
            filename: "alice.txt".into(),
            generate_notes: Some(false),
        })
        .await
        .expect("upload")
        .into_inner()
        .document
        .expect("a document");
    let upload = processing
        .create_upload(ppb::CreateUploadRequest {
            filename: "later.txt".into(),
            size_bytes: 64,
            ..Default::default()
        })
        .await
        .expect("create upload")
        .into_inner()
        .upload
        .expect("an upload");
    let report = ReportsServiceClient::with_interceptor(
        app.channel.clone(),
        Bearer::token(&app.alice.access),
    )
    .create_report(rpb::CreateReportRequest {
        report: Some(rpb::ReportInput {
            student_id: "alice's student".into(),
            ..Default::default()
        }),
        format_name: String::new(),
        draft: true,
    })
    .await
    .expect("create report")
    .into_inner()
    .report
    .expect("a report");
    let mut gallery = GalleryServiceClient::with_interceptor(
        app.channel.clone(),
        Bearer::token(&app.alice.access),
    );
    let picture = aimesh_gallery::samples::encode(
        &image::DynamicImage::ImageRgb8(aimesh_gallery::samples::landscape(32, 24, 1)),
        image::ImageFormat::Png,
    );
    let image = gallery
        .upload_image(gpb::UploadImageRequest {
            body: Some(HttpBody {
                content_type: "image/png".into(),
                data: picture,
                extensions: Vec::new(),
            }),
            ..Default::default()
        })
        .await
        .expect("upload image")
        .into_inner()
        .image
        .expect("an image");
    let mut speech = SpeechServiceClient::with_interceptor(
        app.channel.clone(),
        Bearer::token(&app.alice.access),
    );
    let transcription = speech
        .create_transcription(spb::CreateTranscriptionRequest {
            body: Some(HttpBody {
                content_type: "audio/wav".into(),
                data: silence_wav(),
                extensions: Vec::new(),
            }),
            filename: "alice.wav".into(),
            language: String::new(),
            model: String::new(),
        })
        .await
        .expect("create transcription")
        .into_inner()
        .transcription
        .expect("a transcription");
    let session = aimesh_proto::conversation::v1::conversation_service_client::ConversationServiceClient::with_interceptor(
        app.channel.clone(),
        Bearer::token(&app.alice.access),
    )
    .create_session(aimesh_proto::conversation::v1::CreateSessionRequest {
        title: "alice's chat".into(),
    })
    .await
    .expect("create session")
    .into_inner()
    .session
    .expect("a session");
    let token = app
        .alice
        .identity
        .clone()
        .create_api_token(aimesh_proto::identity::v1::CreateApiTokenRequest {
            name: "alice's script".into(),
            access: aimesh_proto::identity::v1::ApiTokenAccess::ReadOnly as i32,
            ..Default::default()
        })
        .await
        .expect("create api token")
        .into_inner()
        .api_token
        .expect("a token");
    // One of alice's events, numbered (a watch can resume after it).
    app.core.events.sequence_pending().await.expect("numbering");
    let event = app
        .core
        .events
        .store()
        .of_owner(&app.alice.user_id)
        .await
        .expect("alice's events")
        .into_iter()
        .next()
        .expect("an event of alice's");
    HashMap::from([
        (
            ("aimesh.events.v1.EventsService", "after_event_id"),
            event.id.to_string(),
        ),
        (("aimesh.identity.v1.IdentityService", "id"), token.id),
        (("aimesh.gallery.v1.GalleryService", "id"), image.id),
        (("aimesh.notes.v1.NotesService", "id"), note.id),
        (("aimesh.reports.v1.ReportsService", "id"), report.id),
        (("aimesh.speech.v1.SpeechService", "id"), transcription.id),
        (("aimesh.jobs.v1.JobsService", "id"), job.id),
        (
            ("aimesh.processing.v1.ProcessingService", "id"),
            document.id.clone(),
        ),
        (
            ("aimesh.processing.v1.ProcessingService", "upload_id"),
            upload.id,
        ),
        (
            ("aimesh.conversation.v1.ConversationService", "document_id"),
            document.id,
        ),
        (
            ("aimesh.conversation.v1.ConversationService", "id"),
            session.id,
        ),
    ])
}

/// Half a second of silence as a WAV file.
fn silence_wav() -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = std::io::Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut bytes, spec).expect("a WAV writer");
    for _ in 0..8_000 {
        writer.write_sample(0i16).expect("a sample");
    }
    writer.finalize().expect("a WAV file");
    bytes.into_inner()
}

/// The fields of `message` naming a resource, as paths from the request (`id`, `note.id`).
fn id_paths(message: &MessageDescriptor, prefix: &str, depth: usize) -> Vec<String> {
    let mut paths = Vec::new();
    for field in message.fields() {
        let path = format!("{prefix}{}", field.name());
        match field.kind() {
            Kind::String
                if !field.is_list() && (field.name() == "id" || field.name().ends_with("_id")) =>
            {
                paths.push(path)
            }
            Kind::Message(nested)
                if depth > 0
                    && !field.is_list()
                    && !field.is_map()
                    && !nested.full_name().starts_with("google.") =>
            {
                paths.extend(id_paths(&nested, &format!("{path}."), depth - 1));
            }
            _ => {}
        }
    }
    paths
}

/// The paths of the fields of `message` that [`FIELD_DEFAULTS`] has a value for.
fn default_paths(
    message: &MessageDescriptor,
    prefix: &str,
    depth: usize,
) -> Vec<(String, &'static str)> {
    let mut paths = Vec::new();
    for field in message.fields() {
        let path = format!("{prefix}{}", field.name());
        if let Some((_, value)) = FIELD_DEFAULTS
            .iter()
            .find(|(name, _)| *name == field.name())
        {
            paths.push((path, *value));
        } else if let Kind::Message(nested) = field.kind()
            && depth > 0
            && !field.is_list()
            && !nested.full_name().starts_with("google.")
        {
            paths.extend(default_paths(&nested, &format!("{path}."), depth - 1));
        }
    }
    paths
}

/// Sets the string field at `path` (`note.id`) of `message`.
fn set_path(message: &mut DynamicMessage, path: &str, value: &str) -> bool {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let Some(field) = message.descriptor().get_field_by_name(head) else {
        return false;
    };
    match rest {
        None => set_leaf(message, &field, value),
        Some(rest) => {
            let Kind::Message(nested) = field.kind() else {
                return false;
            };
            let mut inner = match message.get_field(&field).as_message() {
                Some(existing) => existing.clone(),
                None => DynamicMessage::new(nested),
            };
            let done = set_path(&mut inner, rest, value);
            message.set_field(&field, Value::Message(inner));
            done
        }
    }
}

fn set_leaf(message: &mut DynamicMessage, field: &FieldDescriptor, value: &str) -> bool {
    let value = match field.kind() {
        Kind::String => Value::String(value.to_owned()),
        Kind::Bytes => Value::Bytes(value.as_bytes().to_vec().into()),
        Kind::Int32 => Value::I32(value.parse().unwrap_or(1)),
        Kind::Int64 => Value::I64(value.parse().unwrap_or(1)),
        Kind::Enum(_) => Value::EnumNumber(value.parse().unwrap_or(1)),
        _ => return false,
    };
    message.set_field(field, value);
    true
}

async fn another_users_ids_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owned = resources(&app).await;
    let bob = app.session("bob").await;
    let pool = DescriptorPool::decode(aimesh_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let mut checked = 0;
    for service in pool.services() {
        if !service.full_name().starts_with("aimesh.")
            || WITHOUT_RESOURCES.contains(&service.full_name())
        {
            continue;
        }
        for method in service.methods() {
            if method.is_client_streaming() {
                continue;
            }
            let mut paths = id_paths(&method.input(), "", 2);
            // A Create call's nested message carries the new resource's own (output-only) id;
            // the ids it names at the top level (a parent resource) are checked.
            if method.name().starts_with("Create") {
                paths.retain(|path| !path.contains('.'));
            }
            if paths.is_empty() {
                continue;
            }
            let name = format!("{}/{}", service.full_name(), method.name());
            let mut message = DynamicMessage::new(method.input());
            for (path, value) in default_paths(&method.input(), "", 2) {
                set_path(&mut message, &path, value);
            }
            for path in &paths {
                let leaf = path.rsplit('.').next().unwrap_or_default();
                let id = owned
                    .get(&(service.full_name(), leaf))
                    .or_else(|| owned.get(&(service.full_name(), "id")))
                    .unwrap_or_else(|| {
                        panic!(
                            "{name} names resources: give alice one of {} in `resources`",
                            service.full_name()
                        )
                    });
                set_path(&mut message, path, id);
            }
            let mut outcome = call(&app, &bob.access, &method, message.clone()).await;
            // Make the rest of the request valid, field by field.
            for _ in 0..3 {
                let Err(status) = &outcome else { break };
                if status.code() != tonic::Code::InvalidArgument {
                    break;
                }
                let violations = status
                    .get_details_bad_request()
                    .map(|bad| bad.field_violations)
                    .unwrap_or_default();
                for violation in &violations {
                    let leaf = violation.field.rsplit('.').next().unwrap_or_default();
                    let default = FIELD_DEFAULTS
                        .iter()
                        .find(|(field, _)| *field == leaf)
                        .map(|(_, value)| *value)
                        .unwrap_or_else(|| {
                            panic!(
                                "{name}: {status:?}; add a plausible value for `{leaf}` to \
                                 FIELD_DEFAULTS"
                            )
                        });
                    assert!(
                        set_path(&mut message, &violation.field, default),
                        "{name}: cannot set {}",
                        violation.field
                    );
                }
                outcome = call(&app, &bob.access, &method, message.clone()).await;
            }
            match outcome {
                Err(status) if status.code() == tonic::Code::NotFound => {
                    assert!(
                        !status.message().contains(&app.alice.user_id),
                        "{name} leaks the owner: {status:?}"
                    );
                }
                other => panic!("{name} with alice's id answered bob {other:?}, not NOT_FOUND"),
            }
            checked += 1;
        }
    }
    // Notes (get, update, delete, translate), jobs (get, watch, cancel, retry), processing
    // (documents and uploads) and reports (append, generate, get, delete, download) at least.
    assert!(checked >= 20, "only {checked} RPCs checked");
}

backend_tests!(another_users_ids_are_not_found);
