//! Note translation as jobs, the jobs API and its streams, end to end with the real Apertium
//! engine; and a worker process killed in the middle of a job (PostgreSQL).

use std::time::Duration;

use aimesh::ServiceKind;
use aimesh_kit::testing::Backend;
use aimesh_proto::{jobs::v1 as jpb, notes::v1 as pb};
use prost::Message;

use crate::helpers::{TestApp, assert_code, assert_invalid, backend_tests, get_note};

const TEXT: &str = "The weather is nice today. Machine translation is useful.\n\nHello world!";

/// A text of about `segments` translation segments.
fn long_text(segments: usize) -> String {
    let sentence = "The house is big and the garden is green. ";
    sentence.repeat(segments * 14).trim_end().to_owned()
}

fn translate(id: &str, target: &str) -> pb::TranslateNoteRequest {
    pb::TranslateNoteRequest {
        id: id.into(),
        target_language: target.into(),
        ..Default::default()
    }
}

/// How long a job of these tests may take to end.
/// A hang guard, not a speed check: a loaded two-core machine runs a 40-segment translation
/// in over a minute.
const JOB_LIMIT: Duration = Duration::from_secs(180);

/// Follows a job over WatchJob until `done` holds for it, and returns it. Fails when the job
/// ends (the stream closes after a terminal state) without `done` holding, or after
/// [`JOB_LIMIT`].
async fn wait_job(app: &TestApp, id: &str, done: impl Fn(&jpb::Job) -> bool) -> jpb::Job {
    let mut stream = app
        .jobs()
        .watch_job(jpb::WatchJobRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner();
    let deadline = tokio::time::Instant::now() + JOB_LIMIT;
    let mut last = None;
    while let Some(message) = tokio::time::timeout_at(deadline, stream.message())
        .await
        .unwrap_or_else(|_| panic!("job {id} still at {last:?} after {JOB_LIMIT:?}"))
        .unwrap()
    {
        let job = message.job.unwrap();
        if done(&job) {
            return job;
        }
        last = Some(job);
    }
    panic!("job {id} ended at {last:?} without reaching the expected state");
}

/// Starts translating a note with `notes` and returns the job.
async fn start_translation(
    notes: &crate::helpers::NotesClient,
    note_id: &str,
    target: &str,
) -> jpb::Job {
    notes
        .clone()
        .translate_note(translate(note_id, target))
        .await
        .expect("translate_note failed")
        .into_inner()
        .job
        .expect("a job")
}

fn is_state(job: &jpb::Job, state: jpb::JobState) -> bool {
    job.state == state as i32
}

async fn notes_are_translated_by_jobs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut notes = app.notes.clone();
    let languages = notes
        .list_languages(pb::ListLanguagesRequest {})
        .await
        .unwrap()
        .into_inner();
    let apertium = languages
        .engines
        .iter()
        .find(|e| e.name == "apertium")
        .expect("apertium is installed (scripts/test installs it)");
    assert!(
        apertium
            .pairs
            .iter()
            .any(|p| p.source_language == "en" && p.target_language == "es")
    );

    let note = app.create_note("weather", TEXT, "en").await;
    // Warm the cache, so the job's invalidation is what makes the translation visible.
    notes
        .get_note(pb::GetNoteRequest {
            id: note.id.clone(),
        })
        .await
        .unwrap();
    let job = notes
        .translate_note(pb::TranslateNoteRequest {
            idempotency_key: "translate-weather-es".into(),
            ..translate(&note.id, "es")
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.kind, "notes.translate");

    let seen = app
        .watch_job_to_end(&app.alice.access, &job.id, JOB_LIMIT)
        .await;
    let last = seen.last().unwrap();
    assert!(is_state(last, jpb::JobState::Succeeded), "{last:?}");
    assert_eq!(last.attempts, 1);
    assert!(
        seen.iter().any(|j| is_state(j, jpb::JobState::Running)
            && j.progress
                .as_ref()
                .is_some_and(|p| !p.partial_output.is_empty())),
        "progress with partial output was streamed: {seen:?}"
    );
    let result = last.result.as_ref().unwrap();
    assert_eq!(
        result.type_url,
        "type.googleapis.com/aimesh.notes.v1.TranslateNoteResult"
    );
    let result = pb::TranslateNoteResult::decode(result.value.as_slice()).unwrap();
    assert_eq!(result.engine, "apertium");
    assert!(
        result.text.starts_with("El tiempo es bueno hoy."),
        "{}",
        result.text
    );
    assert!(result.text.contains("\n\n"), "paragraphs are kept");

    let translated = get_note(&notes, &note.id).await;
    assert_eq!(translated.translations.len(), 1);
    assert_eq!(translated.translations[0].target_language, "es");
    assert_eq!(translated.translations[0].text, result.text);
    let stats = notes
        .get_note_stats(pb::GetNoteStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.total_translations, 1);

    // The same key returns the same job; a finished job's watch sends its final state.
    let again = notes
        .translate_note(pb::TranslateNoteRequest {
            idempotency_key: "translate-weather-es".into(),
            ..translate(&note.id, "es")
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(again.id, job.id);
    let replay = app
        .watch_job_to_end(&app.alice.access, &job.id, JOB_LIMIT)
        .await;
    assert_eq!(replay.len(), 1);
    assert!(is_state(&replay[0], jpb::JobState::Succeeded));

    let listed = app
        .jobs()
        .list_jobs(jpb::ListJobsRequest {
            state: jpb::JobState::Succeeded as i32,
            kind: "notes.translate".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.jobs.len(), 1);
    // Each change was told as a domain event.
    app.assert_events(
        &app.alice.user_id,
        &["notes.note.created", "notes.note.translated"],
    )
    .await;
}

async fn translations_are_refused_at_submission(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut notes = app.notes.clone();
    let note = app.create_note("t", TEXT, "en").await;

    let status = notes
        .translate_note(translate(&note.id, "ja"))
        .await
        .unwrap_err();
    assert_invalid(&status, "target_language");
    let status = notes
        .translate_note(translate(&note.id, "en"))
        .await
        .unwrap_err();
    assert_invalid(&status, "target_language");
    let status = notes
        .translate_note(translate(&note.id, "x!"))
        .await
        .unwrap_err();
    assert_invalid(&status, "target_language");
    let status = notes
        .translate_note(translate("nope", "es"))
        .await
        .unwrap_err();
    assert_invalid(&status, "id");
    let status = notes
        .translate_note(translate("00000000-0000-7000-8000-000000000000", "es"))
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::NotFound);
    let status = notes
        .translate_note(pb::TranslateNoteRequest {
            engine: "nonexistent".into(),
            ..translate(&note.id, "es")
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "target_language");

    // Another user can neither translate the note nor see the job.
    let bob = app.session("bob").await;
    let status = bob
        .notes
        .clone()
        .translate_note(translate(&note.id, "es"))
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::NotFound);
    let job = notes
        .translate_note(translate(&note.id, "es"))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let status = app
        .jobs_with_token(&bob.access)
        .get_job(jpb::GetJobRequest { id: job.id.clone() })
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::NotFound);
    let status = app
        .jobs_with_token(&bob.access)
        .cancel_job(jpb::CancelJobRequest { id: job.id.clone() })
        .await
        .unwrap_err();
    assert_code(&status, tonic::Code::NotFound);
    let status = app
        .jobs()
        .get_job(jpb::GetJobRequest { id: "x".into() })
        .await
        .unwrap_err();
    assert_invalid(&status, "id");
    let status = app
        .jobs()
        .list_jobs(jpb::ListJobsRequest {
            state: 42,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "state");
}

async fn running_translations_can_be_cancelled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let note = app.create_note("long", &long_text(40), "en").await;
    let job = start_translation(&app.notes, &note.id, "es").await;
    wait_job(&app, &job.id, |j| {
        is_state(j, jpb::JobState::Running) && j.progress.as_ref().is_some_and(|p| p.percent > 0)
    })
    .await;
    app.jobs()
        .cancel_job(jpb::CancelJobRequest { id: job.id.clone() })
        .await
        .unwrap();
    let done = wait_job(&app, &job.id, |j| {
        is_state(j, jpb::JobState::Cancelled) || is_state(j, jpb::JobState::Succeeded)
    })
    .await;
    assert!(is_state(&done, jpb::JobState::Cancelled), "{done:?}");
    let stored = get_note(&app.notes, &note.id).await;
    assert!(
        stored.translations.is_empty(),
        "a cancelled job stores nothing"
    );

    // Retry runs it again to completion.
    app.jobs()
        .retry_job(jpb::RetryJobRequest { id: job.id.clone() })
        .await
        .unwrap();
    let done = wait_job(&app, &job.id, |j| is_state(j, jpb::JobState::Succeeded)).await;
    assert_eq!(done.attempts, 1);
}

async fn watch_streams_follow_the_callers_jobs_and_free_on_disconnect(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let jobs = app.core.jobs.clone();
    let baseline = jobs.open_watches();

    let mut all = app
        .jobs()
        .watch_jobs(jpb::WatchJobsRequest {})
        .await
        .unwrap()
        .into_inner();
    let bob = app.session("bob").await;
    let bobs_note = crate::helpers::create_note(&bob.notes, "b", TEXT, "en").await;
    bob.notes
        .clone()
        .translate_note(translate(&bobs_note.id, "es"))
        .await
        .unwrap();
    let note = app.create_note("a", TEXT, "en").await;
    let job = start_translation(&app.notes, &note.id, "es").await;
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), all.message())
            .await
            .expect("an event in time")
            .unwrap()
            .unwrap()
            .job
            .unwrap();
        assert_eq!(event.id, job.id, "only the caller's jobs are streamed");
        if is_state(&event, jpb::JobState::Succeeded) {
            break;
        }
    }
    assert!(jobs.open_watches() > baseline);
    drop(all);
    aimesh_kit::testing::eventually(
        Duration::from_secs(5),
        "a dropped stream frees its subscription",
        || async { (jobs.open_watches() == baseline).then_some(()) },
    )
    .await;
}

/// A worker process is killed (SIGKILL) in the middle of a translation; after its lease
/// lapses another worker process finishes the job, and the note has exactly one translation.
async fn a_killed_worker_process_loses_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        config.worker.mode = aimesh::WorkerMode::Off;
    })
    .await;
    let spawn_worker = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_aimesh"))
            .arg("worker")
            .env("AIMESH_DATABASE_URL", &app.db.url)
            .env("AIMESH_DATA_DIR", app.db.data_dir())
            .env("AIMESH_JOB_LEASE_SECS", "2")
            .env("AIMESH_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("failed to start a worker process")
    };
    let mut first = spawn_worker();
    let note = app.create_note("long", &long_text(30), "en").await;
    let job = start_translation(&app.notes, &note.id, "es").await;
    wait_job(&app, &job.id, |j| {
        is_state(j, jpb::JobState::Running) && j.progress.as_ref().is_some_and(|p| p.percent >= 10)
    })
    .await;
    first.kill().expect("SIGKILL the worker");
    first.wait().unwrap();

    let mut second = spawn_worker();
    let done = wait_job(&app, &job.id, |j| {
        is_state(j, jpb::JobState::Succeeded) || is_state(j, jpb::JobState::Failed)
    })
    .await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert!(is_state(&done, jpb::JobState::Succeeded), "{done:?}");
    assert_eq!(done.attempts, 2, "the second worker ran a second attempt");
    // The worker process's write reaches this process's note cache over NOTIFY, shortly after.
    let stored = aimesh_kit::testing::eventually(
        Duration::from_secs(5),
        "the translation reaches this process's cache",
        || async {
            let note = get_note(&app.notes, &note.id).await;
            (!note.translations.is_empty()).then_some(note)
        },
    )
    .await;
    assert_eq!(stored.translations.len(), 1);
    assert!(stored.translations[0].text.starts_with("La casa es grande"));
}

backend_tests!(
    notes_are_translated_by_jobs,
    translations_are_refused_at_submission,
    running_translations_can_be_cancelled,
    watch_streams_follow_the_callers_jobs_and_free_on_disconnect,
);

mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_killed_worker_process_loses_nothing() {
        super::a_killed_worker_process_loses_nothing(aimesh_kit::testing::Backend::Postgres).await
    }
}
