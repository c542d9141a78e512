//! The reports API end to end: reports created at once or as drafts filled page by page,
//! rendered by their job (followed over WatchJob), downloaded as HTML (escaped) and PDF (read
//! back with the processing service's PDF text extractor), listed, deleted; bad input naming
//! every field, another user's reports NOT_FOUND, the storage quota, and 100,000 events in one
//! call.

use std::time::{Duration, Instant};

use aimesh::ServiceKind;
use aimesh_kit::testing::Backend;
use aimesh_proto::{
    jobs::v1 as jpb,
    reports::v1::{self as pb, reports_service_client::ReportsServiceClient},
};
use tonic::{Code, codegen::InterceptedService, transport::Channel};

use crate::helpers::{Bearer, TestApp, assert_code, assert_invalid, backend_tests};

type Client = ReportsServiceClient<InterceptedService<Channel, Bearer>>;

const HOSTILE: &str = "<script>alert('x')</script>";

fn client(app: &TestApp, token: &str) -> Client {
    ReportsServiceClient::with_interceptor(app.channel.clone(), Bearer::token(token))
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

fn event(unit: &str, kind: &str, time: &str) -> pb::ReportEvent {
    pb::ReportEvent {
        unit: unit.into(),
        r#type: kind.into(),
        created_time: time.into(),
    }
}

/// A student's week, sent out of order: in time order the units are Welcome, Fractions,
/// Decimals, Geometry.
fn week() -> Vec<pb::ReportEvent> {
    vec![
        event("Decimals", "viewed", "2025-03-04T10:00:00Z"),
        event("Welcome", "viewed", "2025-03-01T09:00:00Z"),
        event("Geometry", "quiz_submitted", "2025-03-06T18:00:00+02:00"),
        event("Fractions", "viewed", "2025-03-02T09:30:00Z"),
        event("Welcome", "completed", "2025-03-01T09:05:00Z"),
        event("Fractions", "completed", "2025-03-02T10:00:00Z"),
    ]
}

fn input(student: &str, events: Vec<pb::ReportEvent>, format: pb::ReportFormat) -> pb::ReportInput {
    pb::ReportInput {
        student_id: student.into(),
        namespace: "math-101".into(),
        events,
        format: format.into(),
    }
}

async fn create(client: &Client, input: pb::ReportInput) -> pb::CreateReportResponse {
    client
        .clone()
        .create_report(pb::CreateReportRequest {
            report: Some(input),
            ..Default::default()
        })
        .await
        .expect("create_report failed")
        .into_inner()
}

/// How long a job of these tests may take to end.
const JOB_LIMIT: Duration = Duration::from_secs(300);

async fn get(client: &Client, id: &str) -> pb::Report {
    client
        .clone()
        .get_report(pb::GetReportRequest { id: id.into() })
        .await
        .expect("get_report failed")
        .into_inner()
        .report
        .unwrap()
}

/// Downloads a report: its body, content type and content-disposition.
async fn download(client: &Client, id: &str) -> (Vec<u8>, String, String) {
    let response = client
        .clone()
        .download_report(pb::DownloadReportRequest { id: id.into() })
        .await
        .expect("download_report failed");
    let disposition = response
        .metadata()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.into_inner();
    (body.data, body.content_type, disposition)
}

/// Removes all whitespace: text extractors space glyph runs their own way.
fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

fn pdf_text(bytes: &[u8]) -> String {
    let extracted = aimesh_processing::Extractor::default()
        .extract(bytes)
        .expect("the PDF reads back");
    squeeze(&extracted.text())
}

/// Asserts `needles` appear in `haystack` in this order.
#[track_caller]
fn assert_in_order(haystack: &str, needles: &[&str]) {
    let mut from = 0;
    for needle in needles {
        let at = haystack[from..]
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not found after byte {from}"));
        from += at + needle.len();
    }
}

async fn reports_render_download_list_and_delete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.alice.access.clone();
    let reports = client(&app, &token);

    // HTML: created and rendered by its job, through its stages.
    let created = create(&reports, input(HOSTILE, week(), pb::ReportFormat::Html)).await;
    let report = created.report.unwrap();
    assert_eq!(report.status(), pb::ReportStatus::Pending);
    assert_eq!(report.event_count, 6);
    let job = created.job.unwrap();
    assert_eq!(job.kind, "reports.render");
    assert_eq!(report.job_id, job.id);
    let seen = app.watch_job_to_end(&token, &job.id, JOB_LIMIT).await;
    let last = seen.last().unwrap();
    assert_eq!(last.state(), jpb::JobState::Succeeded, "{last:?}");
    let result = last.result.as_ref().unwrap();
    assert_eq!(
        result.type_url,
        "type.googleapis.com/aimesh.reports.v1.RenderReportResult"
    );
    let result =
        <pb::RenderReportResult as prost::Message>::decode(result.value.as_slice()).unwrap();
    assert_eq!(result.report_id, report.id);
    assert_eq!(result.unit_count, 4);
    let done = get(&reports, &report.id).await;
    assert_eq!(done.status(), pb::ReportStatus::Done);
    assert_eq!(done.unit_count, 4);
    assert_eq!(done.size_bytes, result.size_bytes);
    assert_eq!(
        done.first_event_time.unwrap().seconds,
        chrono::DateTime::parse_from_rfc3339("2025-03-01T09:00:00Z")
            .unwrap()
            .timestamp()
    );
    assert_eq!(
        done.last_event_time.unwrap().seconds,
        chrono::DateTime::parse_from_rfc3339("2025-03-06T16:00:00Z")
            .unwrap()
            .timestamp()
    );

    let (html, content_type, disposition) = download(&reports, &report.id).await;
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert_eq!(
        disposition,
        format!("attachment; filename=\"{}\"", done.filename)
    );
    assert!(done.filename.ends_with(".html"), "{}", done.filename);
    assert_eq!(html.len() as i64, done.size_bytes);
    let html = String::from_utf8(html).unwrap();
    assert!(!html.contains("<script>"), "the student id is escaped");
    assert!(html.contains("&lt;script&gt;"), "the student id is shown");
    assert!(html.contains("<svg"), "the chart is inline");
    // The units in time order, in the visits table.
    let visits = &html[html.find("Units in order").unwrap()..];
    assert_in_order(visits, &["Welcome", "Fractions", "Decimals", "Geometry"]);

    // PDF: the same content, read back as text.
    let created = create(
        &reports,
        input("student-0042", week(), pb::ReportFormat::Pdf),
    )
    .await;
    let pdf_report = created.report.unwrap();
    let seen = app
        .watch_job_to_end(&token, &created.job.unwrap().id, JOB_LIMIT)
        .await;
    assert_eq!(seen.last().unwrap().state(), jpb::JobState::Succeeded);
    let messages: Vec<String> = seen
        .iter()
        .filter_map(|j| j.progress.as_ref().map(|p| p.message.clone()))
        .collect();
    // A watch delivers the job's latest state, so a fast stage may be passed over; what is
    // seen must be the job's stages, in their order, with the format named.
    let stages = [
        "reading 6 events",
        "analysing 6 events and rendering PDF",
        "storing the ",
    ];
    let mut next = 0;
    for message in messages.iter().filter(|m| !m.is_empty()) {
        let at = stages[next..]
            .iter()
            .position(|stage| message.starts_with(stage))
            .unwrap_or_else(|| panic!("{message:?} out of order in {messages:?}"));
        next += at;
    }
    let (pdf, content_type, disposition) = download(&reports, &pdf_report.id).await;
    assert_eq!(content_type, "application/pdf");
    assert_eq!(
        disposition,
        "attachment; filename=\"report-student-0042.pdf\""
    );
    assert!(pdf.starts_with(b"%PDF-"));
    let text = pdf_text(&pdf);
    assert!(text.contains("student-0042"), "{text}");
    let visits = &text[text.find("Unitsinorder").unwrap()..];
    assert_in_order(visits, &["Welcome", "Fractions", "Decimals", "Geometry"]);

    // The format may be named in the path's field instead (POST /assignment/pdf).
    let by_name = reports
        .clone()
        .create_report(pb::CreateReportRequest {
            report: Some(input("s-1", week(), pb::ReportFormat::Unspecified)),
            format_name: "PDF".into(),
            draft: false,
        })
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(by_name.format(), pb::ReportFormat::Pdf);

    // Listed newest first, in pages.
    let first = reports
        .clone()
        .list_reports(pb::ListReportsRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.reports.len(), 2);
    assert_eq!(first.reports[0].id, by_name.id);
    assert_eq!(first.reports[1].id, pdf_report.id);
    let second = reports
        .clone()
        .list_reports(pb::ListReportsRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.reports.len(), 1);
    assert_eq!(second.reports[0].id, report.id);
    assert!(second.next_page_token.is_empty());
    let done_only = reports
        .clone()
        .list_reports(pb::ListReportsRequest {
            status: pb::ReportStatus::Done.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        done_only
            .reports
            .iter()
            .all(|r| r.status() == pb::ReportStatus::Done)
    );

    // Deleted: gone, its file with it.
    reports
        .clone()
        .delete_report(pb::DeleteReportRequest {
            id: report.id.clone(),
        })
        .await
        .unwrap();
    let gone = reports
        .clone()
        .get_report(pb::GetReportRequest {
            id: report.id.clone(),
        })
        .await
        .unwrap_err();
    assert_code(&gone, Code::NotFound);
    let gone = reports
        .clone()
        .download_report(pb::DownloadReportRequest { id: report.id })
        .await
        .unwrap_err();
    assert_code(&gone, Code::NotFound);
}

async fn drafts_take_events_in_pages_then_generate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.alice.access.clone();
    let reports = client(&app, &token);
    let mut all = week();
    let draft = reports
        .clone()
        .create_report(pb::CreateReportRequest {
            report: Some(input(
                "s-7",
                all.drain(..2).collect(),
                pb::ReportFormat::Pdf,
            )),
            format_name: String::new(),
            draft: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(draft.job.is_none());
    let draft = draft.report.unwrap();
    assert_eq!(draft.status(), pb::ReportStatus::Draft);
    assert_eq!(draft.event_count, 2);

    // Not ready for download while a draft.
    let early = reports
        .clone()
        .download_report(pb::DownloadReportRequest {
            id: draft.id.clone(),
        })
        .await
        .unwrap_err();
    assert_code(&early, Code::FailedPrecondition);

    let append = |offset: i64, events: Vec<pb::ReportEvent>| {
        let reports = reports.clone();
        let id = draft.id.clone();
        async move {
            reports
                .clone()
                .append_report_events(pb::AppendReportEventsRequest { id, offset, events })
                .await
        }
    };
    let page = append(2, all.drain(..2).collect())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.report.unwrap().event_count, 4);
    // The same page resent (its reply lost) is refused, naming the stored count.
    let resent = append(2, week()[2..4].to_vec()).await.unwrap_err();
    assert_code(&resent, Code::FailedPrecondition);
    assert!(
        resent.message().contains("holds 4 events"),
        "{}",
        resent.message()
    );
    let page = append(4, all.clone()).await.unwrap().into_inner();
    assert_eq!(page.report.unwrap().event_count, 6);

    let generated = reports
        .clone()
        .generate_report(pb::GenerateReportRequest {
            id: draft.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        generated.report.unwrap().status(),
        pb::ReportStatus::Pending
    );
    let job = generated.job.unwrap();
    // No more events, no second generation.
    let late = append(6, week()).await.unwrap_err();
    assert_code(&late, Code::FailedPrecondition);
    let again = reports
        .clone()
        .generate_report(pb::GenerateReportRequest {
            id: draft.id.clone(),
        })
        .await
        .unwrap_err();
    assert_code(&again, Code::FailedPrecondition);

    let seen = app.watch_job_to_end(&token, &job.id, JOB_LIMIT).await;
    assert_eq!(seen.last().unwrap().state(), jpb::JobState::Succeeded);
    let (pdf, _, _) = download(&reports, &draft.id).await;
    let text = pdf_text(&pdf);
    let visits = &text[text.find("Unitsinorder").unwrap()..];
    assert_in_order(visits, &["Welcome", "Fractions", "Decimals", "Geometry"]);

    // An empty draft cannot be generated.
    let empty = reports
        .clone()
        .create_report(pb::CreateReportRequest {
            report: Some(input("s-8", Vec::new(), pb::ReportFormat::Html)),
            format_name: String::new(),
            draft: true,
        })
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    let refused = reports
        .clone()
        .generate_report(pb::GenerateReportRequest { id: empty.id })
        .await
        .unwrap_err();
    assert_code(&refused, Code::FailedPrecondition);
}

async fn bad_input_names_every_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reports = client(&app, &app.alice.access);
    let status = reports
        .clone()
        .create_report(pb::CreateReportRequest {
            report: Some(pb::ReportInput {
                student_id: "  ".into(),
                namespace: String::new(),
                events: vec![
                    event("Welcome", "viewed", "2025-03-01T09:00:00Z"),
                    event("Intro", &"t".repeat(65), "yesterday"),
                    event("Intro", "viewed", ""),
                    event("", "viewed", "2025-03-01T09:05:00Z"),
                ],
                format: 9,
            }),
            format_name: "docx".into(),
            draft: false,
        })
        .await
        .unwrap_err();
    for field in [
        "report.student_id",
        "report.events[1].type",
        "report.events[1].created_time",
        "report.events[3].unit",
        "report.format",
    ] {
        assert_invalid(&status, field);
    }
    let no_events = reports
        .clone()
        .create_report(pb::CreateReportRequest {
            report: Some(input("s", Vec::new(), pb::ReportFormat::Html)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&no_events, "report.events");
    let names = reports
        .clone()
        .create_report(pb::CreateReportRequest {
            report: Some(input("s", week(), pb::ReportFormat::Html)),
            format_name: "pdf".into(),
            draft: false,
        })
        .await
        .unwrap_err();
    assert_invalid(&names, "format_name");

    let bad_page = reports
        .clone()
        .append_report_events(pb::AppendReportEventsRequest {
            id: "not-a-uuid".into(),
            offset: -1,
            events: vec![event("ok", "", ""), event(" ", "", "2025-13-01T00:00:00Z")],
        })
        .await
        .unwrap_err();
    for field in ["id", "offset", "events[1].unit", "events[1].created_time"] {
        assert_invalid(&bad_page, field);
    }
    for status in [
        reports
            .clone()
            .get_report(pb::GetReportRequest { id: "x".into() })
            .await
            .unwrap_err(),
        reports
            .clone()
            .download_report(pb::DownloadReportRequest { id: String::new() })
            .await
            .unwrap_err(),
        reports
            .clone()
            .generate_report(pb::GenerateReportRequest { id: "1".into() })
            .await
            .unwrap_err(),
    ] {
        assert_invalid(&status, "id");
    }
    let page = reports
        .clone()
        .list_reports(pb::ListReportsRequest {
            page_size: 1000,
            page_token: "garbage".into(),
            status: 42,
        })
        .await
        .unwrap_err();
    assert_invalid(&page, "page_size");
    assert_invalid(&page, "status");
}

async fn another_users_reports_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = client(&app, &app.alice.access);
    let created = create(&alice, input("s-1", week(), pb::ReportFormat::Html)).await;
    let id = created.report.unwrap().id;
    app.watch_job_to_end(&app.alice.access, &created.job.unwrap().id, JOB_LIMIT)
        .await;
    let draft = alice
        .clone()
        .create_report(pb::CreateReportRequest {
            report: Some(input("s-2", week(), pb::ReportFormat::Html)),
            format_name: String::new(),
            draft: true,
        })
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap()
        .id;

    let bob = app.session("bob").await;
    let bobs = client(&app, &bob.access);
    let statuses = [
        bobs.clone()
            .get_report(pb::GetReportRequest { id: id.clone() })
            .await
            .unwrap_err(),
        bobs.clone()
            .download_report(pb::DownloadReportRequest { id: id.clone() })
            .await
            .unwrap_err(),
        bobs.clone()
            .delete_report(pb::DeleteReportRequest { id: id.clone() })
            .await
            .unwrap_err(),
        bobs.clone()
            .append_report_events(pb::AppendReportEventsRequest {
                id: draft.clone(),
                offset: 6,
                events: week(),
            })
            .await
            .unwrap_err(),
        bobs.clone()
            .generate_report(pb::GenerateReportRequest { id: draft.clone() })
            .await
            .unwrap_err(),
    ];
    for status in &statuses {
        assert_code(status, Code::NotFound);
        assert!(!status.message().contains(&app.alice.user_id));
    }
    let listed = bobs
        .clone()
        .list_reports(pb::ListReportsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.reports.is_empty());
    // Alice's report is untouched.
    assert_eq!(get(&alice, &id).await.status(), pb::ReportStatus::Done);
}

async fn files_count_against_the_storage_quota(backend: Backend) {
    let app = TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        config.processing.storage_quota_bytes = 1_000;
    })
    .await;
    let token = app.alice.access.clone();
    let reports = client(&app, &token);
    let created = create(&reports, input("s-1", week(), pb::ReportFormat::Html)).await;
    let seen = app
        .watch_job_to_end(&token, &created.job.unwrap().id, JOB_LIMIT)
        .await;
    assert_eq!(seen.last().unwrap().state(), jpb::JobState::Failed);
    let failed = get(&reports, &created.report.unwrap().id).await;
    assert_eq!(failed.status(), pb::ReportStatus::Failed);
    assert!(
        failed.failure_reason.contains("storage quota exceeded"),
        "{}",
        failed.failure_reason
    );
    let not_ready = reports
        .clone()
        .download_report(pb::DownloadReportRequest { id: failed.id })
        .await
        .unwrap_err();
    assert_code(&not_ready, Code::FailedPrecondition);
}

/// 100,000 events (about 10 MB) in one CreateReport over gRPC, rendered as a PDF: the raised
/// message limit takes them, and the report holds every one. Prints the end-to-end time.
async fn a_hundred_thousand_events_in_one_call(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.alice.access.clone();
    let reports = client(&app, &token);
    let start = chrono::DateTime::parse_from_rfc3339("2024-09-01T08:00:00Z").unwrap();
    let events: Vec<pb::ReportEvent> = (0..100_000i64)
        .map(|i| {
            event(
                &format!("Module {} · lesson {}", i / 1000 % 40 + 1, i / 100 % 10 + 1),
                ["viewed", "started", "completed", "quiz_submitted"][(i % 4) as usize],
                &(start + chrono::TimeDelta::seconds(i * 37)).to_rfc3339(),
            )
        })
        .collect();
    let size = prost::Message::encoded_len(&pb::ReportInput {
        events: events.clone(),
        ..Default::default()
    });
    assert!(size > 4 << 20, "more than the default 4 MiB: {size} bytes");
    let began = Instant::now();
    let created = create(
        &reports,
        input("student-big", events, pb::ReportFormat::Pdf),
    )
    .await;
    let seen = app
        .watch_job_to_end(&token, &created.job.unwrap().id, JOB_LIMIT)
        .await;
    assert_eq!(seen.last().unwrap().state(), jpb::JobState::Succeeded);
    let id = created.report.unwrap().id;
    let (pdf, _, _) = download(&reports, &id).await;
    println!(
        "100,000 events ({:.1} MB): created, rendered and downloaded in {:.2} s ({} KiB PDF)",
        size as f64 / 1e6,
        began.elapsed().as_secs_f64(),
        pdf.len() / 1024
    );
    let done = get(&reports, &id).await;
    assert_eq!(done.event_count, 100_000);
    assert_eq!(done.unit_count, 400);
    assert!(pdf_text(&pdf).contains("100,000"));
}

backend_tests!(
    reports_render_download_list_and_delete,
    drafts_take_events_in_pages_then_generate,
    bad_input_names_every_field,
    another_users_reports_are_not_found,
    files_count_against_the_storage_quota,
    a_hundred_thousand_events_in_one_call,
);
