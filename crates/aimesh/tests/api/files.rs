//! What the file-owning services share, end to end: signed URLs to a document, an image and
//! its thumbnail, synthesised audio, a kept recording and a rendered report, fetched without
//! an access token; their expiry, tampering, another user's objects, deleted files; one
//! storage quota across every service (concurrent uploads included); and an account's images,
//! recordings, audio and reports deleted with it.

use std::{io::Cursor, path::Path, time::Duration};

use aimesh::ServiceKind;
use aimesh_gallery::samples;
use aimesh_kit::testing::Backend;
use aimesh_models::{EngineKind, ModelsConfig};
use aimesh_proto::{
    files::v1::{self as fpb, files_service_client::FilesServiceClient},
    gallery::v1::{self as gpb, gallery_service_client::GalleryServiceClient},
    google::api::HttpBody,
    identity::v1 as idpb,
    jobs::v1 as jpb,
    processing::v1::{self as ppb, processing_service_client::ProcessingServiceClient},
    reports::v1::{self as rpb, reports_service_client::ReportsServiceClient},
    speech::v1::{self as spb, speech_service_client::SpeechServiceClient},
};
use tonic::{Code, codegen::InterceptedService, transport::Channel};

use crate::helpers::{Bearer, PASSWORD, TestApp, assert_code, assert_invalid, backend_tests};

type Intercepted = InterceptedService<Channel, Bearer>;

/// Clients of the four file-owning services, as one user.
struct Clients {
    processing: ProcessingServiceClient<Intercepted>,
    gallery: GalleryServiceClient<Intercepted>,
    speech: SpeechServiceClient<Intercepted>,
    reports: ReportsServiceClient<Intercepted>,
}

fn clients(app: &TestApp, token: &str) -> Clients {
    let bearer = Bearer::token(token);
    let channel = app.channel.clone();
    Clients {
        processing: ProcessingServiceClient::with_interceptor(channel.clone(), bearer.clone())
            .max_decoding_message_size(16 << 20),
        gallery: GalleryServiceClient::with_interceptor(channel.clone(), bearer.clone())
            .max_decoding_message_size(16 << 20),
        speech: SpeechServiceClient::with_interceptor(channel.clone(), bearer.clone())
            .max_decoding_message_size(16 << 20),
        reports: ReportsServiceClient::with_interceptor(channel, bearer)
            .max_decoding_message_size(16 << 20),
    }
}

/// A client of the files service that sends no token.
fn anonymous(app: &TestApp) -> FilesServiceClient<Channel> {
    FilesServiceClient::new(app.channel.clone()).max_decoding_message_size(16 << 20)
}

/// A mesh with the text-to-speech engine (eSpeak NG), for synthesised audio.
async fn spawn(backend: Backend, configure: impl FnOnce(&mut aimesh::MeshConfig)) -> TestApp {
    TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        let mut models = ModelsConfig::new(aimesh_ai::models::dir_for_tests());
        models.engines = vec![EngineKind::Speech];
        config.models = models;
        configure(config);
    })
    .await
}

/// The token of a relative signed URL.
fn token(url: &str) -> String {
    url.strip_prefix("/api/v1/files/")
        .unwrap_or_else(|| panic!("{url} is not a relative signed URL"))
        .to_owned()
}

/// What a signed URL answered.
#[derive(Debug)]
struct Fetched {
    data: Vec<u8>,
    content_type: String,
    disposition: String,
    cache: String,
}

/// Fetches a signed URL without a token.
async fn fetch(app: &TestApp, url: &str) -> Result<Fetched, tonic::Status> {
    let response = anonymous(app)
        .get_signed_file(fpb::GetSignedFileRequest { token: token(url) })
        .await?;
    let header = |name: &str| {
        response
            .metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (disposition, cache) = (header("content-disposition"), header("cache-control"));
    let body = response.into_inner();
    Ok(Fetched {
        data: body.data,
        content_type: body.content_type,
        disposition,
        cache,
    })
}

fn body(content_type: &str, data: Vec<u8>) -> Option<HttpBody> {
    Some(HttpBody {
        content_type: content_type.into(),
        data,
        extensions: Vec::new(),
    })
}

/// A WAV file of a 440 Hz tone (32,000 bytes a second).
fn tone(seconds: f32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut bytes, spec).unwrap();
    for n in 0..(16_000.0 * seconds) as usize {
        let s = 0.3 * (2.0 * std::f32::consts::PI * 440.0 * n as f32 / 16_000.0).sin();
        writer.write_sample((s * 32767.0) as i16).unwrap();
    }
    writer.finalize().unwrap();
    bytes.into_inner()
}

/// A PNG photo-like image.
fn png(seed: u64) -> Vec<u8> {
    let image = image::DynamicImage::ImageRgb8(samples::landscape(320, 200, seed));
    samples::encode(&image, image::ImageFormat::Png)
}

/// A plain-text document of `size` bytes.
fn text(size: usize, seed: u8) -> Vec<u8> {
    let line = format!("Fractions and decimals, lesson {seed}. ");
    line.bytes().cycle().take(size).collect()
}

async fn upload_document(
    c: &Clients,
    name: &str,
    data: Vec<u8>,
) -> Result<ppb::Document, tonic::Status> {
    Ok(c.processing
        .clone()
        .upload_document(ppb::UploadDocumentRequest {
            body: body("text/plain", data),
            filename: name.into(),
            generate_notes: None,
        })
        .await?
        .into_inner()
        .document
        .unwrap())
}

async fn upload_image(c: &Clients, data: Vec<u8>) -> Result<gpb::Image, tonic::Status> {
    Ok(c.gallery
        .clone()
        .upload_image(gpb::UploadImageRequest {
            body: body("", data),
            title: "a landscape".into(),
            prompt: String::new(),
            tags: Vec::new(),
            keep_metadata: false,
        })
        .await?
        .into_inner()
        .image
        .unwrap())
}

async fn upload_recording(c: &Clients, data: Vec<u8>) -> Result<spb::Transcription, tonic::Status> {
    Ok(c.speech
        .clone()
        .create_transcription(spb::CreateTranscriptionRequest {
            body: body("audio/wav", data),
            filename: "tone.wav".into(),
            language: "en".into(),
            model: String::new(),
        })
        .await?
        .into_inner()
        .transcription
        .unwrap())
}

fn report_input(student: &str) -> rpb::CreateReportRequest {
    let event = |unit: &str, time: &str| rpb::ReportEvent {
        unit: unit.into(),
        r#type: "viewed".into(),
        created_time: time.into(),
    };
    rpb::CreateReportRequest {
        report: Some(rpb::ReportInput {
            student_id: student.into(),
            namespace: "math-101".into(),
            events: vec![
                event("Welcome", "2025-03-01T09:00:00Z"),
                event("Fractions", "2025-03-02T09:30:00Z"),
            ],
            format: rpb::ReportFormat::Html.into(),
        }),
        ..Default::default()
    }
}

/// Creates a report and waits until it is rendered.
async fn rendered_report(app: &TestApp, c: &Clients, token: &str) -> rpb::Report {
    let created = c
        .reports
        .clone()
        .create_report(report_input("s-42"))
        .await
        .expect("create_report failed")
        .into_inner();
    let seen = app
        .watch_job_to_end(token, &created.job.unwrap().id, Duration::from_secs(120))
        .await;
    assert_eq!(seen.last().unwrap().state(), jpb::JobState::Succeeded);
    created.report.unwrap()
}

async fn document_url(c: &Clients, id: &str, ttl: u32) -> Result<String, tonic::Status> {
    Ok(c.processing
        .clone()
        .get_document_url(ppb::GetDocumentUrlRequest {
            id: id.into(),
            ttl_seconds: ttl,
        })
        .await?
        .into_inner()
        .url)
}

async fn image_url(
    c: &Clients,
    id: &str,
    variant: gpb::ImageVariant,
) -> Result<String, tonic::Status> {
    Ok(c.gallery
        .clone()
        .get_image_url(gpb::GetImageUrlRequest {
            id: id.into(),
            variant: variant.into(),
            ttl_seconds: 0,
        })
        .await?
        .into_inner()
        .url)
}

async fn audio_url(c: &Clients, id: &str) -> Result<String, tonic::Status> {
    Ok(c.speech
        .clone()
        .get_audio_url(spb::GetAudioUrlRequest {
            id: id.into(),
            ttl_seconds: 0,
        })
        .await?
        .into_inner()
        .url)
}

async fn recording_url(c: &Clients, id: &str) -> Result<String, tonic::Status> {
    Ok(c.speech
        .clone()
        .get_recording_url(spb::GetRecordingUrlRequest {
            id: id.into(),
            ttl_seconds: 0,
        })
        .await?
        .into_inner()
        .url)
}

async fn report_url(c: &Clients, id: &str) -> Result<String, tonic::Status> {
    Ok(c.reports
        .clone()
        .get_report_url(rpb::GetReportUrlRequest {
            id: id.into(),
            ttl_seconds: 0,
        })
        .await?
        .into_inner()
        .url)
}

async fn signed_urls_open_each_services_files(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let token = app.alice.access.clone();
    let alice = clients(&app, &token);

    // A document: its original, named, with its type, cacheable no longer than the URL lives.
    let doc_bytes = text(2_000, 1);
    let doc = upload_document(&alice, "lesson-one.txt", doc_bytes.clone())
        .await
        .unwrap();
    let response = alice
        .processing
        .clone()
        .get_document_url(ppb::GetDocumentUrlRequest {
            id: doc.id.clone(),
            ttl_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let expires = response.expire_time.unwrap().seconds - chrono::Utc::now().timestamp();
    assert!((890..=900).contains(&expires), "{expires}");
    let Fetched {
        data,
        content_type,
        disposition,
        cache,
    } = fetch(&app, &response.url).await.unwrap();
    assert_eq!(data, doc_bytes);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(
        disposition.starts_with("inline; filename=\"lesson-one.txt\""),
        "{disposition}"
    );
    let max_age: i64 = cache
        .strip_prefix("private, max-age=")
        .unwrap_or_else(|| panic!("{cache}"))
        .parse()
        .unwrap();
    assert!((880..=900).contains(&max_age), "{cache}");

    // An image: the original and each thumbnail, the same bytes as DownloadImage gives.
    let image = upload_image(&alice, png(7)).await.unwrap();
    for variant in [
        gpb::ImageVariant::Original,
        gpb::ImageVariant::Thumbnail256,
        gpb::ImageVariant::Thumbnail1024,
    ] {
        let url = image_url(&alice, &image.id, variant).await.unwrap();
        let Fetched {
            data, content_type, ..
        } = fetch(&app, &url).await.unwrap();
        let expected = alice
            .gallery
            .clone()
            .download_image(gpb::DownloadImageRequest {
                id: image.id.clone(),
                variant: variant.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(data, expected.data, "{variant:?}");
        assert_eq!(content_type, expected.content_type);
    }

    // Synthesised audio, and an uploaded recording while it is kept.
    let audio = alice
        .speech
        .clone()
        .synthesize_audio(spb::SynthesizeAudioRequest {
            text: "Hello there.".into(),
            voice: "en-us".into(),
            format: spb::AudioFormat::Wav.into(),
            words_per_minute: 0,
            sample_rate_hertz: 0,
        })
        .await
        .expect("synthesize_audio failed (is espeak-ng installed?)")
        .into_inner()
        .audio
        .unwrap();
    let Fetched {
        data, content_type, ..
    } = fetch(&app, &audio_url(&alice, &audio.id).await.unwrap())
        .await
        .unwrap();
    assert_eq!(content_type, "audio/wav");
    assert_eq!(data.len() as i64, audio.size_bytes);
    assert_eq!(&data[..4], b"RIFF");
    let wav = tone(0.5);
    let recording = upload_recording(&alice, wav.clone()).await.unwrap();
    let Fetched {
        data, disposition, ..
    } = fetch(&app, &recording_url(&alice, &recording.id).await.unwrap())
        .await
        .unwrap();
    assert_eq!(data, wav);
    assert!(disposition.contains("tone.wav"), "{disposition}");

    // A rendered report, named as DownloadReport names it.
    let report = rendered_report(&app, &alice, &token).await;
    let Fetched {
        data,
        content_type,
        disposition,
        ..
    } = fetch(&app, &report_url(&alice, &report.id).await.unwrap())
        .await
        .unwrap();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(String::from_utf8_lossy(&data).contains("s-42"));
    assert!(disposition.contains("report"), "{disposition}");

    // Another user cannot have alice's objects signed.
    let bob = app.session("bob").await;
    let bobs = clients(&app, &bob.access);
    for status in [
        document_url(&bobs, &doc.id, 0).await.unwrap_err(),
        image_url(&bobs, &image.id, gpb::ImageVariant::Original)
            .await
            .unwrap_err(),
        audio_url(&bobs, &audio.id).await.unwrap_err(),
        recording_url(&bobs, &recording.id).await.unwrap_err(),
        report_url(&bobs, &report.id).await.unwrap_err(),
    ] {
        assert_code(&status, Code::NotFound);
    }

    // A lifetime beyond the default is refused, naming the field.
    let status = document_url(&alice, &doc.id, 901).await.unwrap_err();
    assert_invalid(&status, "ttl_seconds");
}

async fn expired_altered_and_deleted_urls_are_refused(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let alice = clients(&app, &app.alice.access);
    let doc = upload_document(&alice, "notes.txt", text(500, 2))
        .await
        .unwrap();
    let url = document_url(&alice, &doc.id, 0).await.unwrap();
    let token = token(&url);

    // Altered: every single-character change of the token is refused.
    let (payload, mac) = token.split_once('.').unwrap();
    let flip = |c: char| if c == 'A' { 'B' } else { 'A' };
    let mut altered = vec![
        format!(
            "{payload}.{}{}",
            flip(mac.chars().next().unwrap()),
            &mac[1..]
        ),
        format!(
            "{}{}.{mac}",
            flip(payload.chars().next().unwrap()),
            &payload[1..]
        ),
        format!("{payload}x.{mac}"),
        "not-a-token".to_owned(),
        String::new(),
    ];
    // Another object under alice's MAC: bob's document id put into her payload.
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let text_payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let other = text_payload.replace(&doc.id, &uuid::Uuid::now_v7().to_string());
    altered.push(format!("{}.{mac}", URL_SAFE_NO_PAD.encode(other)));
    for bad in altered {
        let status = anonymous(&app)
            .get_signed_file(fpb::GetSignedFileRequest { token: bad.clone() })
            .await
            .unwrap_err();
        assert_code(&status, Code::Unauthenticated);
        assert!(
            status.message().contains("not valid"),
            "{bad}: {}",
            status.message()
        );
    }

    // Expired: a URL asked to live one second is refused after it, saying so.
    let short = document_url(&alice, &doc.id, 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let status = fetch(&app, &short).await.unwrap_err();
    assert_code(&status, Code::Unauthenticated);
    assert!(status.message().contains("expired"), "{}", status.message());

    // Deleted: the URL still verifies, but the file is gone.
    assert!(fetch(&app, &url).await.is_ok());
    alice
        .processing
        .clone()
        .delete_document(ppb::DeleteDocumentRequest { id: doc.id.clone() })
        .await
        .unwrap();
    let status = fetch(&app, &url).await.unwrap_err();
    assert_code(&status, Code::NotFound);
}

async fn urls_are_absolute_under_the_public_url(backend: Backend) {
    let app = TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        config.files.public_url = Some("https://aimesh.example.com/".into());
        config.files.signed_url_ttl_secs = 60;
    })
    .await;
    let alice = clients(&app, &app.alice.access);
    let doc = upload_document(&alice, "a.txt", text(100, 3))
        .await
        .unwrap();
    let url = document_url(&alice, &doc.id, 0).await.unwrap();
    let token = url
        .strip_prefix("https://aimesh.example.com/api/v1/files/")
        .unwrap_or_else(|| panic!("{url}"));
    let file = anonymous(&app)
        .get_signed_file(fpb::GetSignedFileRequest {
            token: token.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(file.data, text(100, 3));
    // The configured lifetime is the longest a request may ask for.
    assert_invalid(
        &document_url(&alice, &doc.id, 61).await.unwrap_err(),
        "ttl_seconds",
    );
}

/// A user who filled the quota with a document can store nothing more in any service; another
/// user can.
async fn one_storage_quota_across_services(backend: Backend) {
    const QUOTA: u64 = 40_000;
    let app = TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        config.processing.storage_quota_bytes = QUOTA;
    })
    .await;
    let token = app.alice.access.clone();
    let alice = clients(&app, &token);
    upload_document(&alice, "full.txt", text(QUOTA as usize, 4))
        .await
        .unwrap();
    let refused = [
        upload_image(&alice, png(1)).await.unwrap_err(),
        upload_recording(&alice, tone(0.2)).await.unwrap_err(),
        alice
            .reports
            .clone()
            .create_report(report_input("s-1"))
            .await
            .unwrap_err(),
        upload_document(&alice, "more.txt", text(10, 5))
            .await
            .unwrap_err(),
    ];
    for status in refused {
        assert_code(&status, Code::ResourceExhausted);
        assert!(
            status.message().contains("AIMESH_STORAGE_QUOTA_BYTES"),
            "{}",
            status.message()
        );
    }
    // Bob's quota is his own.
    let bob = app.session("bob").await;
    upload_recording(&clients(&app, &bob.access), tone(0.2))
        .await
        .unwrap();
}

/// Two uploads at once in two services, each of which fits but not both: one is stored, the
/// other refused, never both.
async fn concurrent_uploads_in_two_services_share_the_quota(backend: Backend) {
    const QUOTA: u64 = 60_000;
    let app = TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        config.processing.storage_quota_bytes = QUOTA;
    })
    .await;
    for round in 0..3u8 {
        let user = app.session(&format!("user{round}")).await;
        let c = clients(&app, &user.access);
        // 32,044 bytes of WAV and 35,000 of text: either fits in 60,000, both do not.
        let (recording, document) = tokio::join!(
            upload_recording(&c, tone(1.0)),
            upload_document(&c, "half.txt", text(35_000, round)),
        );
        let stored = usize::from(recording.is_ok()) + usize::from(document.is_ok());
        assert_eq!(stored, 1, "{recording:?} {document:?}");
        for status in [recording.err(), document.err()].into_iter().flatten() {
            assert_code(&status, Code::ResourceExhausted);
        }
    }
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Deleting an account deletes its images, recordings and reports, rows and files, and its
/// signed URLs stop opening anything.
async fn account_deletion_removes_every_services_files(backend: Backend) {
    let app = spawn(backend, |_| {}).await;
    let bob = app.session("bob").await;
    let c = clients(&app, &bob.access);
    let image = upload_image(&c, png(3)).await.unwrap();
    let recording = upload_recording(&c, tone(0.3)).await.unwrap();
    let report = rendered_report(&app, &c, &bob.access).await;
    upload_document(&c, "doc.txt", text(300, 6)).await.unwrap();
    let urls = [
        image_url(&c, &image.id, gpb::ImageVariant::Thumbnail256)
            .await
            .unwrap(),
        recording_url(&c, &recording.id).await.unwrap(),
        report_url(&c, &report.id).await.unwrap(),
    ];
    let blobs = app.db.data_dir().join("blobs");
    let owned = |root: &Path| {
        [
            root.join(&bob.user_id),
            root.join("gallery").join(&bob.user_id),
            root.join("reports").join(&bob.user_id),
        ]
        .iter()
        .map(|dir| files_under(dir).len())
        .sum::<usize>()
    };
    assert!(
        owned(&blobs) >= 6,
        "bob's files are under the blob directory"
    );
    assert!(app.core.files.quota.used(&bob.user_id).await.unwrap() > 0);

    bob.identity
        .clone()
        .delete_account(idpb::DeleteAccountRequest {
            password: PASSWORD.into(),
        })
        .await
        .unwrap();

    assert_eq!(app.core.files.quota.used(&bob.user_id).await.unwrap(), 0);
    for (table, count) in [
        ("images", count_rows(&app, "images", &bob.user_id).await),
        (
            "transcriptions",
            count_rows(&app, "transcriptions", &bob.user_id).await,
        ),
        (
            "synthesized_audio",
            count_rows(&app, "synthesized_audio", &bob.user_id).await,
        ),
        ("reports", count_rows(&app, "reports", &bob.user_id).await),
    ] {
        assert_eq!(count, 0, "{table}");
    }
    assert_eq!(owned(&blobs), 0, "bob's files are gone");
    for url in urls {
        assert_code(&fetch(&app, &url).await.unwrap_err(), Code::NotFound);
    }
}

async fn count_rows(app: &TestApp, table: &str, owner: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE owner_id = $1");
    let (count,): (i64,) = aimesh_kit::with_db!(&app.core.db, |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(owner)
            .fetch_one(pool)
            .await
    })
    .unwrap();
    count
}

backend_tests!(
    signed_urls_open_each_services_files,
    expired_altered_and_deleted_urls_are_refused,
    urls_are_absolute_under_the_public_url,
    one_storage_quota_across_services,
    concurrent_uploads_in_two_services_share_the_quota,
    account_deletion_removes_every_services_files,
);
