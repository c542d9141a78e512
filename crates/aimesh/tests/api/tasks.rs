//! AI tasks, study notes and quizzes end to end on the real embeddings model and Apertium:
//! a document processed with its notes, every task type submitted and followed to completion
//! over WatchJobs, tasks on notes, quizzes generated, answered and graded, the history's
//! statistics, another user's resources (NOT_FOUND) and bad input (the field named).

use std::{collections::HashMap, time::Duration};

use aimesh::ServiceKind;
use aimesh_kit::testing::Backend;
use aimesh_models::{EngineKind, ModelsConfig};
use aimesh_proto::{
    google::api::HttpBody,
    jobs::v1 as jpb,
    processing::v1::{
        self as pb, processing_service_client::ProcessingServiceClient,
        quiz_service_client::QuizServiceClient, task_result::Kind,
        task_service_client::TaskServiceClient,
    },
};
use tonic::{Code, codegen::InterceptedService, transport::Channel};

use crate::helpers::{Bearer, TestApp, assert_code, assert_invalid, backend_tests};

type Docs = ProcessingServiceClient<InterceptedService<Channel, Bearer>>;
type TaskClient = TaskServiceClient<InterceptedService<Channel, Bearer>>;
type QuizClient = QuizServiceClient<InterceptedService<Channel, Bearer>>;

const MOON: &str = include_str!("../../../aimesh-ai/tests/fixtures/encyclopedia/moon.md");
const SPANISH: &str = "El tiempo es bueno hoy. Los niños juegan en el jardín de la casa. \
La biblioteca abre todos los días por la mañana.";

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, ServiceKind::ALL, |config| {
        let mut models = ModelsConfig::new(aimesh_ai::models::dir_for_tests());
        models.engines = vec![EngineKind::Embeddings];
        config.models = models;
    })
    .await
}

fn docs(app: &TestApp, token: &str) -> Docs {
    ProcessingServiceClient::with_interceptor(app.channel.clone(), Bearer::token(token))
}

fn tasks(app: &TestApp, token: &str) -> TaskClient {
    TaskServiceClient::with_interceptor(app.channel.clone(), Bearer::token(token))
}

fn quizzes(app: &TestApp, token: &str) -> QuizClient {
    QuizServiceClient::with_interceptor(app.channel.clone(), Bearer::token(token))
}

/// How long a job of these tests may take to end.
const JOB_LIMIT: Duration = Duration::from_secs(180);

/// Uploads a text document and waits until it is processed; returns it with its notes.
async fn ready_document(
    app: &TestApp,
    token: &str,
    name: &str,
    text: &str,
    generate_notes: Option<bool>,
) -> (pb::Document, Vec<jpb::Job>) {
    let client = docs(app, token);
    let uploaded = client
        .clone()
        .upload_document(pb::UploadDocumentRequest {
            body: Some(HttpBody {
                content_type: "text/markdown".into(),
                data: text.as_bytes().to_vec(),
                extensions: Vec::new(),
            }),
            filename: name.into(),
            generate_notes,
        })
        .await
        .unwrap()
        .into_inner();
    let seen = app
        .watch_job_to_end(token, &uploaded.job.unwrap().id, JOB_LIMIT)
        .await;
    assert_eq!(
        seen.last().unwrap().state(),
        jpb::JobState::Succeeded,
        "{seen:?}"
    );
    let document = client
        .clone()
        .get_document(pb::GetDocumentRequest {
            id: uploaded.document.unwrap().id,
        })
        .await
        .unwrap()
        .into_inner()
        .document
        .unwrap();
    assert_eq!(document.status(), pb::DocumentStatus::Ready);
    (document, seen)
}

fn on_document(id: &str) -> Option<pb::TaskSource> {
    Some(pb::TaskSource {
        kind: Some(pb::task_source::Kind::DocumentId(id.into())),
    })
}

async fn submit(
    client: &TaskClient,
    source: Option<pb::TaskSource>,
    kind: pb::TaskType,
    translate: Option<pb::TranslateOptions>,
) -> Result<pb::SubmitTaskResponse, tonic::Status> {
    client
        .clone()
        .submit_task(pb::SubmitTaskRequest {
            source,
            r#type: kind.into(),
            translate,
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn get_task(client: &TaskClient, id: &str) -> pb::Task {
    client
        .clone()
        .get_task(pb::GetTaskRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap()
}

fn result(task: &pb::Task) -> (&str, &Kind) {
    let result = task.result.as_ref().expect("a SUCCEEDED task has a result");
    (result.engine.as_str(), result.kind.as_ref().unwrap())
}

async fn tasks_end_to_end(backend: Backend) {
    let app = spawn(backend).await;
    let token = app.alice.access.clone();
    let client = tasks(&app, &token);

    // The document job writes study notes (stage `notes`); GetDocument returns them.
    let (moon, seen) = ready_document(&app, &token, "moon.md", MOON, None).await;
    assert!(
        seen.iter()
            .filter_map(|j| j.progress.as_ref())
            .any(|p| p.message.starts_with("notes")),
        "the notes stage is reported: {seen:?}"
    );
    let notes = moon.notes.clone().expect("notes are on by default");
    assert_eq!(notes.engine, "minilm-notes");
    let headings: Vec<&str> = notes.sections.iter().map(|s| s.heading.as_str()).collect();
    assert_eq!(headings, vec!["The Moon", "Surface", "Exploration"]);
    assert!(notes.sections.iter().all(|s| !s.key_points.is_empty()));
    println!("notes: {notes:#?}");
    let (spanish, _) = ready_document(&app, &token, "tiempo.md", SPANISH, Some(false)).await;
    assert!(spanish.notes.is_none(), "notes switched off at upload");

    // Completion reaches the caller over WatchJobs.
    let mut events = app
        .jobs_with_token(&token)
        .watch_jobs(jpb::WatchJobsRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut submitted = Vec::new();
    for kind in [
        pb::TaskType::Summarize,
        pb::TaskType::Keywords,
        pb::TaskType::Sentiment,
        pb::TaskType::Qa,
    ] {
        let response = submit(&client, on_document(&moon.id), kind, None)
            .await
            .unwrap();
        let task = response.task.unwrap();
        let job = response.job.unwrap();
        assert_eq!(task.status(), pb::TaskStatus::Queued);
        assert_eq!(task.job_id, job.id, "the task names its job");
        assert_eq!(job.kind, "processing.task");
        submitted.push((task.id, job.id));
    }
    // A translation: the source language detected (Spanish), English by default.
    let response = submit(
        &client,
        on_document(&spanish.id),
        pb::TaskType::Translate,
        None,
    )
    .await
    .unwrap();
    let translation = response.task.unwrap();
    assert_eq!(
        response.job.as_ref().unwrap().kind,
        "processing.task.translate"
    );
    let options = translation.translate.clone().unwrap();
    assert_eq!(
        (
            options.source_language.as_str(),
            options.target_language.as_str()
        ),
        ("es", "en")
    );
    submitted.push((translation.id.clone(), response.job.unwrap().id));

    let mut finished: HashMap<String, jpb::JobState> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while finished.len() < submitted.len() {
        let event = tokio::time::timeout_at(deadline, events.message())
            .await
            .expect("every task job ends in time")
            .unwrap()
            .expect("the stream stays open");
        let job = event.job.unwrap();
        let terminal = matches!(
            job.state(),
            jpb::JobState::Succeeded | jpb::JobState::Failed | jpb::JobState::Cancelled
        );
        if terminal && submitted.iter().any(|(_, id)| *id == job.id) {
            finished.insert(job.id.clone(), job.state());
        }
    }
    assert!(
        finished.values().all(|s| *s == jpb::JobState::Succeeded),
        "{finished:?}"
    );

    let text = moon.text.to_lowercase();
    for (task_id, _) in &submitted {
        let task = get_task(&client, task_id).await;
        assert_eq!(task.status(), pb::TaskStatus::Succeeded, "{task:?}");
        let (engine, kind) = result(&task);
        match kind {
            Kind::Summary(summary) => {
                assert_eq!(engine, "minilm-centroid");
                assert!((3..=5).contains(&summary.sentences.len()), "{summary:?}");
                for sentence in &summary.sentences {
                    assert!(moon.text.contains(sentence.as_str()), "{sentence}");
                }
                println!("summary: {}", summary.text);
            }
            Kind::Keywords(keywords) => {
                assert_eq!(engine, "minilm-keybert");
                assert!((10..=15).contains(&keywords.keywords.len()), "{keywords:?}");
                for (i, k) in keywords.keywords.iter().enumerate() {
                    assert_eq!(k.rank, i as i32 + 1);
                    assert!(text.contains(&k.phrase), "{k:?}");
                }
                assert!(
                    keywords
                        .keywords
                        .windows(2)
                        .all(|w| w[0].score >= w[1].score)
                );
                println!(
                    "keywords: {:?}",
                    keywords
                        .keywords
                        .iter()
                        .map(|k| &k.phrase)
                        .collect::<Vec<_>>()
                );
            }
            Kind::Sentiment(sentiment) => {
                assert_eq!(engine, "lexicon");
                let overall = sentiment.overall.as_ref().unwrap();
                assert!(["positive", "negative", "neutral"].contains(&overall.label.as_str()));
                assert!((0.0..=1.0).contains(&overall.confidence));
                let titles: Vec<&str> = sentiment
                    .sections
                    .iter()
                    .map(|s| s.title.as_str())
                    .collect();
                assert_eq!(titles, vec!["The Moon", "Surface", "Exploration"]);
                println!("sentiment: {sentiment:?}");
            }
            Kind::Qa(qa) => {
                assert_eq!(engine, "minilm-extractive-qa");
                assert!(qa.pairs.len() >= 3, "{qa:?}");
                for pair in &qa.pairs {
                    let passage = pair.passage.as_ref().unwrap();
                    assert!(moon.text.contains(&passage.text), "{pair:?}");
                    assert!(
                        passage
                            .text
                            .to_lowercase()
                            .contains(&pair.answer.to_lowercase()),
                        "the answer is quoted: {pair:?}"
                    );
                    println!(
                        "Q: {}\n  A: {}\n  passage: {}\n  follow-ups: {:?}",
                        pair.question, pair.answer, passage.text, pair.follow_ups
                    );
                }
                assert!(qa.pairs.iter().any(|p| !p.follow_ups.is_empty()), "{qa:?}");
            }
            Kind::Translation(translated) => {
                assert_eq!(engine, "apertium");
                assert!(translated.source_detected);
                let lower = translated.text.to_lowercase();
                assert!(
                    lower.contains("weather") || lower.contains("library"),
                    "{translated:?}"
                );
                println!("translation: {}", translated.text);
            }
        }
    }

    // Listing: newest first, paged, filtered by document, type and status.
    let list = |request: pb::ListTasksRequest| {
        let client = client.clone();
        async move {
            client
                .clone()
                .list_tasks(request)
                .await
                .unwrap()
                .into_inner()
        }
    };
    let on_moon = list(pb::ListTasksRequest {
        document_id: moon.id.clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(on_moon.tasks.len(), 4);
    let first = list(pb::ListTasksRequest {
        page_size: 3,
        ..Default::default()
    })
    .await;
    assert_eq!(first.tasks[0].id, translation.id, "newest first");
    let rest = list(pb::ListTasksRequest {
        page_size: 3,
        page_token: first.next_page_token.clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(first.tasks.len() + rest.tasks.len(), 5);
    assert!(rest.next_page_token.is_empty());
    let qa = list(pb::ListTasksRequest {
        r#type: pb::TaskType::Qa.into(),
        status: pb::TaskStatus::Succeeded.into(),
        ..Default::default()
    })
    .await;
    assert_eq!(qa.tasks.len(), 1);
    let failed = list(pb::ListTasksRequest {
        status: pb::TaskStatus::Failed.into(),
        ..Default::default()
    })
    .await;
    assert!(failed.tasks.is_empty());

    // A note is a source too; its recorded language is the translation's source.
    let note = app
        .create_note(
            "Bread",
            "Knead the dough for ten minutes. Let it rise in a warm place until it doubles.",
            "en",
        )
        .await;
    let on_note = Some(pb::TaskSource {
        kind: Some(pb::task_source::Kind::NoteId(note.id.clone())),
    });
    let summary = submit(&client, on_note.clone(), pb::TaskType::Summarize, None)
        .await
        .unwrap();
    let seen = app
        .watch_job_to_end(&token, &summary.job.unwrap().id, JOB_LIMIT)
        .await;
    assert_eq!(seen.last().unwrap().state(), jpb::JobState::Succeeded);
    let done = get_task(&client, &summary.task.unwrap().id).await;
    assert!(matches!(result(&done).1, Kind::Summary(s) if s.sentences.len() == 2));
    let to_spanish = submit(
        &client,
        on_note,
        pb::TaskType::Translate,
        Some(pb::TranslateOptions {
            target_language: "es".into(),
            source_language: String::new(),
        }),
    )
    .await
    .unwrap();
    let options = to_spanish.task.unwrap().translate.unwrap();
    assert_eq!(options.source_language, "en");
    assert_eq!(options.target_language, "es");
    // Each change was told as a domain event.
    app.assert_events(&app.alice.user_id, &["processing.task.finished"])
        .await;
}

async fn tasks_refuse_bad_input_and_other_users(backend: Backend) {
    let app = spawn(backend).await;
    let token = app.alice.access.clone();
    let client = tasks(&app, &token);
    let (moon, _) = ready_document(&app, &token, "moon.md", MOON, Some(false)).await;
    let mine = submit(&client, on_document(&moon.id), pb::TaskType::Keywords, None)
        .await
        .unwrap()
        .task
        .unwrap();

    // Bad input names the field.
    let status = submit(&client, None, pb::TaskType::Summarize, None)
        .await
        .unwrap_err();
    assert_invalid(&status, "source");
    let status = submit(&client, on_document("nope"), pb::TaskType::Summarize, None)
        .await
        .unwrap_err();
    assert_invalid(&status, "source.document_id");
    let status = submit(
        &client,
        on_document(&moon.id),
        pb::TaskType::Unspecified,
        None,
    )
    .await
    .unwrap_err();
    assert_invalid(&status, "type");
    let status = client
        .clone()
        .submit_task(pb::SubmitTaskRequest {
            source: on_document(&moon.id),
            r#type: 99,
            translate: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "type");
    let status = submit(
        &client,
        on_document(&moon.id),
        pb::TaskType::Translate,
        Some(pb::TranslateOptions {
            target_language: "english please".into(),
            source_language: String::new(),
        }),
    )
    .await
    .unwrap_err();
    assert_invalid(&status, "translate.target_language");
    // The text is English already: translating it to English is refused up front.
    let status = submit(
        &client,
        on_document(&moon.id),
        pb::TaskType::Translate,
        None,
    )
    .await
    .unwrap_err();
    assert_invalid(&status, "translate.target_language");
    assert!(status.message().contains("already"), "{}", status.message());
    // A pair no engine has.
    let status = submit(
        &client,
        on_document(&moon.id),
        pb::TaskType::Translate,
        Some(pb::TranslateOptions {
            target_language: "ja".into(),
            source_language: String::new(),
        }),
    )
    .await
    .unwrap_err();
    assert_invalid(&status, "translate.target_language");
    let status = client
        .clone()
        .list_tasks(pb::ListTasksRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "page_size");
    let status = client
        .clone()
        .list_tasks(pb::ListTasksRequest {
            document_id: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "document_id");
    let status = client
        .clone()
        .get_task(pb::GetTaskRequest { id: "x".into() })
        .await
        .unwrap_err();
    assert_invalid(&status, "id");

    // A transcription the caller does not have is not found (transcriptions as sources are
    // tested with the speech service, crate::speech).
    let status = submit(
        &client,
        Some(pb::TaskSource {
            kind: Some(pb::task_source::Kind::TranscriptionId(uuid_like(&moon.id))),
        }),
        pb::TaskType::Summarize,
        None,
    )
    .await
    .unwrap_err();
    assert_code(&status, Code::NotFound);
    assert!(
        status.message().contains("transcription"),
        "{}",
        status.message()
    );

    // Another user sees none of it.
    let bob = app.session("bob").await;
    let bobs = tasks(&app, &bob.access);
    let status = bobs
        .clone()
        .get_task(pb::GetTaskRequest {
            id: mine.id.clone(),
        })
        .await
        .unwrap_err();
    assert_code(&status, Code::NotFound);
    let status = submit(&bobs, on_document(&moon.id), pb::TaskType::Summarize, None)
        .await
        .unwrap_err();
    assert_code(&status, Code::NotFound);
    let note = app
        .create_note("Mine", "A private note of Alice.", "en")
        .await;
    let status = submit(
        &bobs,
        Some(pb::TaskSource {
            kind: Some(pb::task_source::Kind::NoteId(note.id)),
        }),
        pb::TaskType::Summarize,
        None,
    )
    .await
    .unwrap_err();
    assert_code(&status, Code::NotFound);
    let listed = bobs
        .clone()
        .list_tasks(pb::ListTasksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.tasks.is_empty());
}

/// Another well-formed id.
fn uuid_like(id: &str) -> String {
    let mut chars: Vec<char> = id.chars().collect();
    let last = chars.len() - 1;
    chars[last] = if chars[last] == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

async fn quizzes_are_generated_graded_and_kept(backend: Backend) {
    let app = spawn(backend).await;
    let token = app.alice.access.clone();
    let client = quizzes(&app, &token);
    let (moon, _) = ready_document(&app, &token, "moon.md", MOON, Some(false)).await;

    let generated = client
        .clone()
        .generate_quiz(pb::GenerateQuizRequest {
            document_id: moon.id.clone(),
            num_questions: 6,
            difficulty: pb::Difficulty::Medium.into(),
            quiz_type: pb::QuizType::Mixed.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let quiz = generated.quiz.unwrap();
    assert_eq!(quiz.status(), pb::QuizStatus::Pending);
    let job = generated.job.unwrap();
    assert_eq!(job.kind, "processing.quiz");
    assert_eq!(quiz.job_id, job.id);
    let seen = app.watch_job_to_end(&token, &job.id, JOB_LIMIT).await;
    assert_eq!(
        seen.last().unwrap().state(),
        jpb::JobState::Succeeded,
        "{seen:?}"
    );

    let get = |id: String| {
        let client = client.clone();
        async move {
            client
                .clone()
                .get_quiz(pb::GetQuizRequest { id })
                .await
                .unwrap()
                .into_inner()
                .quiz
                .unwrap()
        }
    };
    let ready = get(quiz.id.clone()).await;
    assert_eq!(ready.status(), pb::QuizStatus::Ready);
    assert_eq!(ready.engine, "minilm-cloze");
    assert_eq!(ready.questions.len(), 6, "{ready:?}");
    assert!(!ready.answers_revealed);
    for (i, question) in ready.questions.iter().enumerate() {
        assert_eq!(question.id, format!("q{}", i + 1));
        assert!(
            question.answer.is_empty() && question.source.is_none(),
            "hidden: {question:?}"
        );
        match question.r#type() {
            pb::QuestionType::MultipleChoice => assert_eq!(question.options.len(), 4),
            pb::QuestionType::TrueFalse => assert_eq!(question.options, vec!["True", "False"]),
            pb::QuestionType::ShortAnswer => assert!(question.options.is_empty()),
            pb::QuestionType::Unspecified => panic!("{question:?}"),
        }
    }
    let kinds: Vec<pb::QuestionType> = ready.questions.iter().map(|q| q.r#type()).collect();
    assert_eq!(
        &kinds[..3],
        &[
            pb::QuestionType::MultipleChoice,
            pb::QuestionType::TrueFalse,
            pb::QuestionType::ShortAnswer
        ]
    );

    let submit_answers = |answers: HashMap<String, String>| {
        let client = client.clone();
        let id = quiz.id.clone();
        async move {
            client
                .clone()
                .submit_quiz(pb::SubmitQuizRequest { id, answers })
                .await
                .map(|r| r.into_inner().submission.unwrap())
        }
    };
    // Nothing answered: every question wrong, with feedback and its cited sentence.
    let blank = submit_answers(HashMap::new()).await.unwrap();
    assert_eq!(blank.correct_count, 0);
    assert_eq!(blank.total_questions, 6);
    assert_eq!(blank.score, 0.0);
    for result in &blank.results {
        assert!(!result.correct && !result.feedback.is_empty(), "{result:?}");
        assert!(
            moon.text
                .contains(&result.source.as_ref().unwrap().sentence)
        );
    }
    // Answers are shown once submitted.
    let revealed = get(quiz.id.clone()).await;
    assert!(revealed.answers_revealed);
    for question in &revealed.questions {
        let source = question.source.as_ref().unwrap();
        assert!(
            moon.text.contains(&source.sentence),
            "grounded: {question:?}"
        );
        println!(
            "{:?} {}\n  options: {:?}\n  answer: {}\n  cites: {}",
            question.r#type(),
            question.prompt,
            question.options,
            question.answer,
            source.sentence
        );
    }
    // The right answers (short answers in other words) score 100.
    let right: HashMap<String, String> = revealed
        .questions
        .iter()
        .map(|q| {
            let answer = match q.r#type() {
                pb::QuestionType::TrueFalse => q.answer.to_lowercase(),
                pb::QuestionType::ShortAnswer => format!("  {}  ", q.answer.to_uppercase()),
                _ => q.answer.clone(),
            };
            (q.id.clone(), answer)
        })
        .collect();
    let full = submit_answers(right.clone()).await.unwrap();
    assert_eq!(full.correct_count, 6, "{full:?}");
    assert_eq!(full.score, 100.0);
    let short = revealed
        .questions
        .iter()
        .find(|q| q.r#type() == pb::QuestionType::ShortAnswer)
        .unwrap();
    let mut wrong = right.clone();
    wrong.insert(short.id.clone(), "a kind of banana bread".into());
    let partly = submit_answers(wrong).await.unwrap();
    assert_eq!(partly.correct_count, 5);
    let graded = partly
        .results
        .iter()
        .find(|r| r.question_id == short.id)
        .unwrap();
    assert!(
        !graded.correct && graded.feedback.contains(&short.answer),
        "{graded:?}"
    );

    // History: newest first, with statistics over all submissions.
    let history = client
        .clone()
        .list_quiz_history(pb::ListQuizHistoryRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.submissions.len(), 2);
    assert_eq!(history.submissions[0].id, partly.id);
    assert!(!history.next_page_token.is_empty());
    let stats = history.stats.unwrap();
    assert_eq!((stats.submissions, stats.quizzes), (3, 1));
    assert_eq!((stats.best_score, stats.worst_score), (100.0, 0.0));
    let average = (0.0 + 100.0 + 500.0 / 6.0) / 3.0;
    assert!(
        (stats.average_score - average as f32).abs() < 0.01,
        "{stats:?}"
    );
    assert!((stats.last_score - partly.score).abs() < 0.01);

    // Bad input names the field.
    let status = client
        .clone()
        .generate_quiz(pb::GenerateQuizRequest {
            document_id: moon.id.clone(),
            num_questions: 21,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "num_questions");
    let status = client
        .clone()
        .generate_quiz(pb::GenerateQuizRequest {
            document_id: "x".into(),
            quiz_type: 42,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "document_id");
    assert_invalid(&status, "quiz_type");
    let status = submit_answers(HashMap::from([("q99".to_owned(), "x".to_owned())]))
        .await
        .unwrap_err();
    assert_invalid(&status, "answers");
    let status = submit_answers(HashMap::from([("q1".to_owned(), "x".repeat(1001))]))
        .await
        .unwrap_err();
    assert_invalid(&status, "answers[q1]");

    // Another user sees none of it.
    let bob = app.session("bob").await;
    let bobs = quizzes(&app, &bob.access);
    let status = bobs
        .clone()
        .get_quiz(pb::GetQuizRequest {
            id: quiz.id.clone(),
        })
        .await
        .unwrap_err();
    assert_code(&status, Code::NotFound);
    let status = bobs
        .clone()
        .submit_quiz(pb::SubmitQuizRequest {
            id: quiz.id.clone(),
            answers: HashMap::new(),
        })
        .await
        .unwrap_err();
    assert_code(&status, Code::NotFound);
    let status = bobs
        .clone()
        .generate_quiz(pb::GenerateQuizRequest {
            document_id: moon.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_code(&status, Code::NotFound);
    let history = bobs
        .clone()
        .list_quiz_history(pb::ListQuizHistoryRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(history.submissions.is_empty());
    assert_eq!(history.stats.unwrap().submissions, 0);
    // Each change was told as a domain event.
    app.assert_events(&app.alice.user_id, &["processing.quiz.submitted"])
        .await;
}

backend_tests!(
    tasks_end_to_end,
    tasks_refuse_bad_input_and_other_users,
    quizzes_are_generated_graded_and_kept,
);
