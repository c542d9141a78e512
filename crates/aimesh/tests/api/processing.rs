//! The processing API end to end on the real embeddings model: one-call and resumable uploads,
//! processing followed over WatchJob, search, download, duplicates, deletion, ownership, bad
//! input, the size limit and the storage quota.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use aimesh::ServiceKind;
use aimesh_kit::testing::{Backend, eventually};
use aimesh_models::{EngineKind, ModelsConfig};
use aimesh_proto::{
    google::api::HttpBody,
    jobs::v1 as jpb,
    processing::v1::{self as pb, processing_service_client::ProcessingServiceClient},
};
use lopdf::{
    Document, Object, Stream,
    content::{Content, Operation},
    dictionary,
};
use tonic::{Code, codegen::InterceptedService, transport::Channel};

use crate::helpers::{Bearer, TestApp, assert_code, assert_invalid, backend_tests};

type Client = ProcessingServiceClient<InterceptedService<Channel, Bearer>>;

/// Upload limit and quota of the test server.
const MAX_UPLOAD: u64 = 64 << 10;
const QUOTA: u64 = 160 << 10;

const GARDEN: &str = "# Growing tomatoes\n\nTomato plants need full sun, rich soil and deep \
watering twice a week. Pinch off the side shoots so the plant puts its energy into fruit, and \
tie the stem to a stake as it grows.\n";

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        let mut models = ModelsConfig::new(aimesh_ai::models::dir_for_tests());
        models.engines = vec![EngineKind::Embeddings];
        config.models = models;
        config.processing.max_upload_bytes = MAX_UPLOAD;
        config.processing.storage_quota_bytes = QUOTA;
    })
    .await
}

fn client(app: &TestApp, token: &str) -> Client {
    ProcessingServiceClient::with_interceptor(app.channel.clone(), Bearer::token(token))
        .max_decoding_message_size(16 << 20)
}

/// A PDF with one page per entry, each page's lines in Helvetica.
fn pdf(pages: &[&[&str]]) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
    });
    let mut kids: Vec<Object> = Vec::new();
    for lines in pages {
        let mut operations = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("TL", vec![18.into()]),
            Operation::new("Td", vec![50.into(), 780.into()]),
        ];
        for line in lines.iter() {
            operations.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
            operations.push(Operation::new("T*", vec![]));
        }
        operations.push(Operation::new("ET", vec![]));
        let content = Content { operations }.encode().unwrap();
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
            "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    bytes
}

fn upload_request(filename: &str, content_type: &str, data: &[u8]) -> pb::UploadDocumentRequest {
    pb::UploadDocumentRequest {
        body: Some(HttpBody {
            content_type: content_type.into(),
            data: data.to_vec(),
            extensions: Vec::new(),
        }),
        filename: filename.into(),
        generate_notes: None,
    }
}

async fn upload(
    client: &Client,
    filename: &str,
    content_type: &str,
    data: &[u8],
) -> pb::UploadDocumentResponse {
    client
        .clone()
        .upload_document(upload_request(filename, content_type, data))
        .await
        .expect("upload_document failed")
        .into_inner()
}

/// How long a job of these tests may take to end.
const JOB_LIMIT: Duration = Duration::from_secs(120);

async fn get(client: &Client, id: &str) -> pb::Document {
    client
        .clone()
        .get_document(pb::GetDocumentRequest { id: id.into() })
        .await
        .expect("get_document failed")
        .into_inner()
        .document
        .unwrap()
}

async fn search(client: &Client, query: &str, ids: &[&str]) -> Vec<pb::SearchHit> {
    client
        .clone()
        .search_documents(pb::SearchDocumentsRequest {
            query: query.into(),
            k: 3,
            document_ids: ids.iter().map(|id| id.to_string()).collect(),
        })
        .await
        .expect("search_documents failed")
        .into_inner()
        .hits
}

async fn documents_end_to_end(backend: Backend) {
    let app = spawn(backend).await;
    let token = app.alice.access.clone();
    let docs = client(&app, &token);

    // One call: a Markdown document, processed to READY through the job's stages.
    let garden = upload(&docs, "garden.md", "text/markdown", GARDEN.as_bytes()).await;
    assert!(!garden.duplicate);
    let document = garden.document.unwrap();
    assert_eq!(document.status(), pb::DocumentStatus::Pending);
    assert!(document.generate_notes, "notes are on unless switched off");
    let job = garden.job.unwrap();
    assert_eq!(job.kind, "processing.document");
    let seen = app.watch_job_to_end(&token, &job.id, JOB_LIMIT).await;
    let last = seen.last().unwrap();
    assert_eq!(last.state(), jpb::JobState::Succeeded, "{last:?}");
    let messages: Vec<String> = seen
        .iter()
        .filter_map(|j| j.progress.as_ref().map(|p| p.message.clone()))
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("embed")) || seen.len() <= 2,
        "stages reported: {messages:?}"
    );
    let ready = get(&docs, &document.id).await;
    assert_eq!(ready.status(), pb::DocumentStatus::Ready);
    assert_eq!(ready.format, "markdown");
    assert_eq!(ready.page_count, 1);
    assert!(ready.chunk_count >= 1);
    assert!(
        ready.text.contains("Pinch off the side shoots"),
        "{}",
        ready.text
    );

    // Resumable: a two-page PDF in three appends, one of them at a wrong offset.
    let volcano = pdf(&[
        &[
            "Chapter one is about baking bread.",
            "Knead the dough and let it rise.",
        ],
        &[
            "Chapter two is about volcanoes.",
            "Lava erupts from the crater when magma pressure builds up inside the mountain.",
        ],
    ]);
    let resumable = docs
        .clone()
        .create_upload(pb::CreateUploadRequest {
            filename: "earth.pdf".into(),
            size_bytes: volcano.len() as i64,
            content_type: "application/pdf".into(),
            generate_notes: Some(false),
        })
        .await
        .unwrap()
        .into_inner()
        .upload
        .unwrap();
    assert_eq!(resumable.offset, 0);
    let half = volcano.len() / 2;
    let appended = docs
        .clone()
        .append_upload(pb::AppendUploadRequest {
            upload_id: resumable.id.clone(),
            offset: 0,
            data: volcano[..half].to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .upload
        .unwrap();
    assert_eq!(appended.offset, half as i64);
    // The connection drops and the client resends from the wrong place: refused, naming the
    // stored offset, and nothing changes.
    let wrong = docs
        .clone()
        .append_upload(pb::AppendUploadRequest {
            upload_id: resumable.id.clone(),
            offset: 0,
            data: volcano[..half].to_vec(),
        })
        .await
        .unwrap_err();
    assert_code(&wrong, Code::FailedPrecondition);
    assert!(
        wrong.message().contains(&half.to_string()),
        "{}",
        wrong.message()
    );
    let early = docs
        .clone()
        .finish_upload(pb::FinishUploadRequest {
            upload_id: resumable.id.clone(),
        })
        .await
        .unwrap_err();
    assert_code(&early, Code::FailedPrecondition);
    // Resume from the offset GetUpload reports.
    let resumed = docs
        .clone()
        .get_upload(pb::GetUploadRequest {
            upload_id: resumable.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .upload
        .unwrap();
    assert_eq!(resumed.offset, half as i64);
    docs.clone()
        .append_upload(pb::AppendUploadRequest {
            upload_id: resumable.id.clone(),
            offset: resumed.offset,
            data: volcano[half..].to_vec(),
        })
        .await
        .unwrap();
    let finished = finish(&docs, &resumable.id).await;
    assert!(!finished.duplicate);
    let earth = finished.document.unwrap();
    assert!(!earth.generate_notes, "the upload switched notes off");
    let seen = app
        .watch_job_to_end(&token, &finished.job.unwrap().id, JOB_LIMIT)
        .await;
    assert_eq!(seen.last().unwrap().state(), jpb::JobState::Succeeded);
    let earth = get(&docs, &earth.id).await;
    assert_eq!(earth.format, "pdf");
    assert_eq!(earth.page_count, 2);
    // The finished upload is gone.
    let gone = docs
        .clone()
        .get_upload(pb::GetUploadRequest {
            upload_id: resumable.id.clone(),
        })
        .await
        .unwrap_err();
    assert_code(&gone, Code::NotFound);

    // Search finds the right passage, with its page.
    let hits = search(&docs, "molten rock coming out of a volcano", &[]).await;
    let best = &hits[0];
    assert_eq!(best.document_id, earth.id);
    assert_eq!(best.filename, "earth.pdf");
    assert_eq!(best.page, 2);
    assert!(best.passage.contains("Lava erupts"), "{best:?}");
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    let hits = search(&docs, "how to grow tomato plants", &[]).await;
    assert_eq!(hits[0].document_id, document.id);
    let only_garden = search(&docs, "volcano lava", &[&document.id]).await;
    assert!(only_garden.iter().all(|hit| hit.document_id == document.id));

    // Download returns the bytes with the content type given.
    let body = docs
        .clone()
        .download_document(pb::DownloadDocumentRequest {
            id: earth.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(body.data, volcano);
    assert_eq!(body.content_type, "application/pdf");

    // The same bytes again: recognised, nothing stored twice.
    let again = upload(&docs, "copy.md", "", GARDEN.as_bytes()).await;
    assert!(again.duplicate);
    assert_eq!(again.document.unwrap().id, document.id);

    // Listing: newest first, paged, filtered by status.
    let first = docs
        .clone()
        .list_documents(pb::ListDocumentsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.documents.len(), 1);
    assert_eq!(first.documents[0].id, earth.id);
    assert!(first.documents[0].text.is_empty(), "lists carry no text");
    let second = docs
        .clone()
        .list_documents(pb::ListDocumentsRequest {
            page_size: 1,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.documents[0].id, document.id);
    assert!(second.next_page_token.is_empty());
    let failed = docs
        .clone()
        .list_documents(pb::ListDocumentsRequest {
            status: pb::DocumentStatus::Failed.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(failed.documents.is_empty());

    // A corrupt file ends FAILED with the extractor's reason.
    let broken = upload(
        &docs,
        "broken.pdf",
        "application/pdf",
        b"%PDF-1.5\n\x00\x01garbage",
    )
    .await;
    let seen = app
        .watch_job_to_end(&token, &broken.job.unwrap().id, JOB_LIMIT)
        .await;
    assert_eq!(seen.last().unwrap().state(), jpb::JobState::Failed);
    let broken = get(&docs, &broken.document.unwrap().id).await;
    assert_eq!(broken.status(), pb::DocumentStatus::Failed);
    assert!(!broken.failure_reason.is_empty());

    // Reprocessing runs the job again.
    let reprocessed = docs
        .clone()
        .reprocess_document(pb::ReprocessDocumentRequest {
            id: document.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reprocessed.document.unwrap().status(),
        pb::DocumentStatus::Pending
    );
    let seen = app
        .watch_job_to_end(&token, &reprocessed.job.unwrap().id, JOB_LIMIT)
        .await;
    assert_eq!(seen.last().unwrap().state(), jpb::JobState::Succeeded);
    assert_eq!(
        get(&docs, &document.id).await.status(),
        pb::DocumentStatus::Ready
    );

    // Deleting removes the document from search, and its file.
    docs.clone()
        .delete_document(pb::DeleteDocumentRequest {
            id: earth.id.clone(),
        })
        .await
        .unwrap();
    let hits = search(&docs, "molten rock coming out of a volcano", &[]).await;
    assert!(hits.iter().all(|hit| hit.document_id != earth.id));
    let status = docs
        .clone()
        .get_document(pb::GetDocumentRequest {
            id: earth.id.clone(),
        })
        .await
        .unwrap_err();
    assert_code(&status, Code::NotFound);
    let blob = app
        .core
        .processing
        .blobs()
        .get(&app.alice.user_id, &earth.sha256)
        .await;
    assert!(blob.is_err(), "the file is deleted with its last document");
    // Each change was told as a domain event.
    app.assert_events(
        &app.alice.user_id,
        &[
            "processing.document.uploaded",
            "processing.document.processed",
            "processing.document.deleted",
        ],
    )
    .await;
}

async fn other_users_documents_are_not_found(backend: Backend) {
    let app = spawn(backend).await;
    let alice = client(&app, &app.alice.access);
    let document = upload(&alice, "garden.md", "text/markdown", GARDEN.as_bytes())
        .await
        .document
        .unwrap();
    let pending = alice
        .clone()
        .create_upload(pb::CreateUploadRequest {
            filename: "a.txt".into(),
            size_bytes: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .upload
        .unwrap();
    let bob = app.session("bob").await;
    let mut docs = client(&app, &bob.access);
    let id = document.id.clone();
    let statuses = vec![
        docs.get_document(pb::GetDocumentRequest { id: id.clone() })
            .await
            .unwrap_err(),
        docs.delete_document(pb::DeleteDocumentRequest { id: id.clone() })
            .await
            .unwrap_err(),
        docs.reprocess_document(pb::ReprocessDocumentRequest { id: id.clone() })
            .await
            .unwrap_err(),
        docs.download_document(pb::DownloadDocumentRequest { id: id.clone() })
            .await
            .unwrap_err(),
        docs.search_documents(pb::SearchDocumentsRequest {
            query: "tomatoes".into(),
            k: 1,
            document_ids: vec![id.clone()],
        })
        .await
        .unwrap_err(),
        docs.get_upload(pb::GetUploadRequest {
            upload_id: pending.id.clone(),
        })
        .await
        .unwrap_err(),
        docs.append_upload(pb::AppendUploadRequest {
            upload_id: pending.id.clone(),
            offset: 0,
            data: b"0123456789".to_vec(),
        })
        .await
        .unwrap_err(),
        docs.finish_upload(pb::FinishUploadRequest {
            upload_id: pending.id.clone(),
        })
        .await
        .unwrap_err(),
    ];
    for status in &statuses {
        assert_code(status, Code::NotFound);
    }
    // Bob's search does not see alice's chunks, and his list is empty.
    let listed = docs
        .list_documents(pb::ListDocumentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.documents.is_empty());
    // Alice's document is intact.
    assert_eq!(get(&alice, &id).await.filename, "garden.md");
}

async fn bad_input_limits_and_quota(backend: Backend) {
    let app = spawn(backend).await;
    let mut docs = client(&app, &app.alice.access);

    let status = docs
        .upload_document(upload_request("", "", b""))
        .await
        .unwrap_err();
    assert_invalid(&status, "filename");
    assert_invalid(&status, "body.data");
    let status = docs
        .upload_document(upload_request("../etc/passwd", "", b"x"))
        .await
        .unwrap_err();
    assert_invalid(&status, "filename");
    let status = docs
        .get_document(pb::GetDocumentRequest { id: "nope".into() })
        .await
        .unwrap_err();
    assert_invalid(&status, "id");
    let status = docs
        .list_documents(pb::ListDocumentsRequest {
            page_size: 1000,
            page_token: "garbage".into(),
            status: 42,
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "page_size");
    assert_invalid(&status, "status");
    let status = docs
        .search_documents(pb::SearchDocumentsRequest {
            query: " ".into(),
            k: 500,
            document_ids: vec!["x".into()],
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "query");
    assert_invalid(&status, "k");
    assert_invalid(&status, "document_ids");
    let status = docs
        .create_upload(pb::CreateUploadRequest {
            filename: "a".into(),
            size_bytes: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "size_bytes");
    let status = docs
        .append_upload(pb::AppendUploadRequest {
            upload_id: "x".into(),
            offset: -1,
            data: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "upload_id");
    assert_invalid(&status, "offset");
    assert_invalid(&status, "data");

    // The size limit, in both upload paths, named in the answer.
    let too_big = vec![b'a'; MAX_UPLOAD as usize + 1];
    let status = docs
        .upload_document(upload_request("big.txt", "text/plain", &too_big))
        .await
        .unwrap_err();
    assert_invalid(&status, "body.data");
    assert!(
        status.message().contains(&MAX_UPLOAD.to_string()),
        "{}",
        status.message()
    );
    assert!(status.message().contains("AIMESH_MAX_UPLOAD_BYTES"));
    let status = docs
        .create_upload(pb::CreateUploadRequest {
            filename: "big.txt".into(),
            size_bytes: MAX_UPLOAD as i64 + 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "size_bytes");
    // Appending past the declared size.
    let small = docs
        .create_upload(pb::CreateUploadRequest {
            filename: "small.txt".into(),
            size_bytes: 4,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .upload
        .unwrap();
    let status = docs
        .append_upload(pb::AppendUploadRequest {
            upload_id: small.id.clone(),
            offset: 0,
            data: b"12345".to_vec(),
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "data");

    // The quota counts what a user stores: two 60 KiB documents fit in 160 KiB, a third
    // does not (in either upload path), and the answer names the quota.
    let carol = app.session("carol").await;
    let mut carols = client(&app, &carol.access);
    for letter in [b'a', b'b'] {
        let text = vec![letter; 60 << 10];
        upload(&carols, "part.txt", "text/plain", &text).await;
    }
    let status = carols
        .upload_document(upload_request(
            "third.txt",
            "text/plain",
            &vec![b'c'; 60 << 10],
        ))
        .await
        .unwrap_err();
    assert_code(&status, Code::ResourceExhausted);
    assert!(status.message().contains("quota"), "{}", status.message());
    assert!(
        status.message().contains(&QUOTA.to_string()),
        "{}",
        status.message()
    );
    let status = carols
        .create_upload(pb::CreateUploadRequest {
            filename: "third.txt".into(),
            size_bytes: 60 << 10,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_code(&status, Code::ResourceExhausted);
}

fn raw_chunk(upload_id: &str, offset: usize, data: &[u8]) -> pb::AppendUploadContentRequest {
    pb::AppendUploadContentRequest {
        upload_id: upload_id.into(),
        offset: offset as i64,
        body: Some(HttpBody {
            content_type: "application/octet-stream".into(),
            data: data.to_vec(),
            extensions: Vec::new(),
        }),
    }
}

/// Finishes an upload whose bytes are all stored.
async fn finish(client: &Client, upload_id: &str) -> pb::FinishUploadResponse {
    client
        .clone()
        .finish_upload(pb::FinishUploadRequest {
            upload_id: upload_id.into(),
        })
        .await
        .expect("finish_upload failed")
        .into_inner()
}

async fn create_upload(client: &Client, filename: &str, size: usize) -> pb::Upload {
    client
        .clone()
        .create_upload(pb::CreateUploadRequest {
            filename: filename.into(),
            size_bytes: size as i64,
            content_type: "text/markdown".into(),
            generate_notes: Some(false),
        })
        .await
        .expect("create_upload failed")
        .into_inner()
        .upload
        .unwrap()
}

/// AppendUploadContent (REST's raw-body chunks): the same offsets and rules as AppendUpload,
/// mixable with it, the bytes taken as they are.
async fn raw_chunks_make_an_upload(backend: Backend) {
    let app = spawn(backend).await;
    let token = app.alice.access.clone();
    let docs = client(&app, &token);
    let text = GARDEN.repeat(3);
    let bytes = text.as_bytes();
    let upload = create_upload(&docs, "raw.md", bytes.len()).await;
    let third = bytes.len() / 3;
    let first = docs
        .clone()
        .append_upload_content(raw_chunk(&upload.id, 0, &bytes[..third]))
        .await
        .unwrap()
        .into_inner()
        .upload
        .unwrap();
    assert_eq!(first.offset, third as i64);
    // The chunk is staged in the blob store, beside the blobs.
    assert_eq!(staged_files(&app).len(), 1);
    // A resent chunk is refused with the stored offset, as AppendUpload's, and its bytes are
    // not kept.
    let wrong = docs
        .clone()
        .append_upload_content(raw_chunk(&upload.id, 0, &bytes[..third]))
        .await
        .unwrap_err();
    assert_code(&wrong, Code::FailedPrecondition);
    assert!(
        wrong.message().contains(&third.to_string()),
        "{}",
        wrong.message()
    );
    assert_eq!(staged_files(&app).len(), 1);
    // Raw and protobuf chunks mix: they are the same upload.
    docs.clone()
        .append_upload(pb::AppendUploadRequest {
            upload_id: upload.id.clone(),
            offset: third as i64,
            data: bytes[third..2 * third].to_vec(),
        })
        .await
        .unwrap();
    let past = docs
        .clone()
        .append_upload_content(raw_chunk(&upload.id, 2 * third, &[b'x'; 4096]))
        .await
        .unwrap_err();
    assert_invalid(&past, "data");
    let last = docs
        .clone()
        .append_upload_content(raw_chunk(&upload.id, 2 * third, &bytes[2 * third..]))
        .await
        .unwrap()
        .into_inner()
        .upload
        .unwrap();
    assert_eq!(last.offset, bytes.len() as i64);
    let finished = finish(&docs, &upload.id).await;
    let document = finished.document.unwrap();
    // The chunks were staged in the blob store, not the database; finishing made them the
    // document's blob and deleted them.
    assert_eq!(staged_files(&app), Vec::<PathBuf>::new());
    let seen = app
        .watch_job_to_end(&token, &finished.job.unwrap().id, JOB_LIMIT)
        .await;
    assert_eq!(seen.last().unwrap().state(), jpb::JobState::Succeeded);
    let downloaded = docs
        .clone()
        .download_document(pb::DownloadDocumentRequest {
            id: document.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(downloaded.data, bytes);

    // Bad input, each field named; another user's upload is NOT_FOUND.
    let pending = create_upload(&docs, "pending.md", 10).await;
    let mut request = raw_chunk(&pending.id, 0, b"");
    let status = docs
        .clone()
        .append_upload_content(request.clone())
        .await
        .unwrap_err();
    assert_invalid(&status, "body.data");
    request.body = None;
    let status = docs
        .clone()
        .append_upload_content(request)
        .await
        .unwrap_err();
    assert_invalid(&status, "body.data");
    let status = docs
        .clone()
        .append_upload_content(raw_chunk("nope", 0, b"x"))
        .await
        .unwrap_err();
    assert_invalid(&status, "upload_id");
    let mut negative = raw_chunk(&pending.id, 0, b"x");
    negative.offset = -1;
    let status = docs
        .clone()
        .append_upload_content(negative)
        .await
        .unwrap_err();
    assert_invalid(&status, "offset");
    let bob = app.session("bob").await;
    let status = client(&app, &bob.access)
        .append_upload_content(raw_chunk(&pending.id, 0, b"x"))
        .await
        .unwrap_err();
    assert_code(&status, Code::NotFound);
}

/// The files the local blob store stages for unfinished uploads.
fn staged_files(app: &TestApp) -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &app.db.data_dir().join("blobs").join(".uploads"),
        &mut found,
    );
    found
}

/// An upload left unfinished past AIMESH_UPLOAD_EXPIRY_SECS is deleted by the scheduled
/// sweep, with its stored bytes, and its share of the quota comes back.
async fn stale_uploads_expire(backend: Backend) {
    let app = TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        config.processing.max_upload_bytes = MAX_UPLOAD;
        config.processing.storage_quota_bytes = 100 << 10;
        // Long enough for the steps before the sweep, on a loaded machine.
        config.processing.upload_expiry_secs = 3;
        config.processing.upload_sweep_secs = 1;
    })
    .await;
    let docs = client(&app, &app.alice.access);
    let stale = create_upload(&docs, "stale.md", 60 << 10).await;
    docs.clone()
        .append_upload_content(raw_chunk(&stale.id, 0, &[b'a'; 1000]))
        .await
        .unwrap();
    // The declared size counts against the quota while the upload lives.
    let status = docs
        .clone()
        .create_upload(pb::CreateUploadRequest {
            filename: "second.md".into(),
            size_bytes: 60 << 10,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_code(&status, Code::ResourceExhausted);
    eventually(Duration::from_secs(30), "the stale upload is swept", || {
        let mut docs = docs.clone();
        let id = stale.id.clone();
        async move {
            let answer = docs
                .get_upload(pb::GetUploadRequest { upload_id: id })
                .await;
            matches!(answer, Err(status) if status.code() == Code::NotFound).then_some(())
        }
    })
    .await;
    // Its parts went with it, and the quota is free again.
    eventually(Duration::from_secs(30), "its staged chunk is swept", || {
        let left = staged_files(&app);
        async move { left.is_empty().then_some(()) }
    })
    .await;
    assert_eq!(
        app.core.processing.usage(&app.alice.user_id).await.unwrap(),
        0
    );
    create_upload(&docs, "second.md", 60 << 10).await;
}

/// Documents on an S3 API (AIMESH_BLOB_URL=s3://...), when one is named: `scripts/s3-server
/// -- cargo test ...` starts one (moto's server). Upload, process, download and delete go
/// through the bucket.
async fn documents_on_s3(backend: Backend) {
    let Ok(url) = std::env::var("AIMESH_TEST_S3_URL") else {
        eprintln!("skipped: no S3 API named (AIMESH_TEST_S3_URL; see scripts/s3-server)");
        return;
    };
    let prefix = format!("{url}/api-{}", uuid::Uuid::now_v7().simple());
    let app = TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        let mut models = ModelsConfig::new(aimesh_ai::models::dir_for_tests());
        models.engines = vec![EngineKind::Embeddings];
        config.models = models;
        config.processing.blob_url = Some(prefix.clone());
        config.processing.s3 = aimesh_kit::blob::S3Settings::from_vars(std::env::vars());
    })
    .await;
    let blobs = app.core.processing.blobs().clone();
    assert!(
        blobs.location().starts_with("s3://"),
        "{}",
        blobs.location()
    );
    let token = app.alice.access.clone();
    let docs = client(&app, &token);
    let uploaded = upload(&docs, "garden.md", "text/markdown", GARDEN.as_bytes()).await;
    let document = uploaded.document.unwrap();
    let stored = blobs
        .get(&app.alice.user_id, &document.sha256)
        .await
        .expect("the document's bytes are in the bucket");
    assert_eq!(&stored[..], GARDEN.as_bytes());
    let seen = app
        .watch_job_to_end(&token, &uploaded.job.unwrap().id, JOB_LIMIT)
        .await;
    assert_eq!(seen.last().unwrap().state(), jpb::JobState::Succeeded);
    assert_eq!(
        search(&docs, "tomato plants", &[]).await[0].document_id,
        document.id
    );
    let downloaded = docs
        .clone()
        .download_document(pb::DownloadDocumentRequest {
            id: document.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(downloaded.data, GARDEN.as_bytes());
    docs.clone()
        .delete_document(pb::DeleteDocumentRequest {
            id: document.id.clone(),
        })
        .await
        .unwrap();
    assert!(
        blobs
            .get(&app.alice.user_id, &document.sha256)
            .await
            .is_err(),
        "deleting the document deletes its object"
    );

    // A resumable upload stages its chunks in the bucket and assembles them there.
    let text = GARDEN.repeat(2);
    let upload = create_upload(&docs, "resumed.md", text.len()).await;
    let half = text.len() / 2;
    for (offset, chunk) in [
        (0, &text.as_bytes()[..half]),
        (half, &text.as_bytes()[half..]),
    ] {
        docs.clone()
            .append_upload_content(raw_chunk(&upload.id, offset, chunk))
            .await
            .unwrap();
    }
    let finished = finish(&docs, &upload.id).await;
    let resumed = finished.document.unwrap();
    assert_eq!(
        &blobs
            .get(&app.alice.user_id, &resumed.sha256)
            .await
            .expect("the assembled file is in the bucket")[..],
        text.as_bytes()
    );
}

backend_tests!(
    documents_end_to_end,
    other_users_documents_are_not_found,
    bad_input_limits_and_quota,
    raw_chunks_make_an_upload,
    stale_uploads_expire,
    documents_on_s3,
);
