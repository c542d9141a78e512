//! One trace from a submitting request through the job worker to the database, on SQLite and
//! PostgreSQL: spans go through the real `tracing` -> OpenTelemetry pipeline into an in-process
//! exporter, and the test checks the trace ids and parent links the OTLP export would carry.

#![allow(clippy::unwrap_used)]

use std::{
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use aimesh_jobs::{
    JobContext, JobError, JobHandler, JobOutput, JobState, Jobs, MIGRATIONS, SubmitOptions,
    WorkerCommits, WorkerConfig,
};
use aimesh_kit::testing::{Backend, TestDatabase};
use futures::future::BoxFuture;
use opentelemetry::{
    Value,
    trace::{SpanKind, Status, TraceContextExt as _, TracerProvider as _},
};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    propagation::TraceContextPropagator,
    trace::{SdkTracerProvider, SpanData, SpanExporter},
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// Keeps every exported span.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Recorder {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

impl Recorder {
    fn spans(&self) -> Vec<SpanData> {
        self.0.lock().unwrap().clone()
    }
}

/// Installs the process's subscriber once: an OpenTelemetry layer exporting each span as it
/// ends, and the W3C propagator the job engine carries trace context with.
fn recorder() -> Recorder {
    static RECORDER: OnceLock<Recorder> = OnceLock::new();
    RECORDER
        .get_or_init(|| {
            let recorder = Recorder::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(recorder.clone())
                .build();
            opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
            let subscriber = tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
            tracing::subscriber::set_global_default(subscriber).unwrap();
            recorder
        })
        .clone()
}

/// Reports progress (a database write from the handler) and succeeds.
struct FakeProgress;

impl JobHandler for FakeProgress {
    fn kind(&self) -> &'static str {
        "test.traced"
    }
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        Box::pin(async move {
            ctx.progress(50, "half way", "").await;
            Ok(JobOutput {
                type_name: "google.protobuf.Empty".into(),
                value: Vec::new(),
            })
        })
    }
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| match &kv.value {
            Value::String(s) => s.to_string(),
            other => other.to_string(),
        })
}

fn assert_db_span(span: &SpanData, system: &str, operation: &str, table: &str) {
    assert_eq!(span.name, format!("{operation} {table}"));
    assert_eq!(span.span_kind, SpanKind::Client, "{span:?}");
    assert_eq!(attribute(span, "db.system.name").as_deref(), Some(system));
    assert_eq!(
        attribute(span, "db.operation.name").as_deref(),
        Some(operation)
    );
    assert_eq!(
        attribute(span, "db.collection.name").as_deref(),
        Some(table)
    );
    assert_eq!(span.status, Status::Unset, "{span:?}");
}

/// A job submitted inside a request's span is inserted in a child span of the request; the
/// worker's `job.run` span joins the request's trace as its child, and the worker's database
/// writes (progress, outcome) are children of the job's span. A failing call marks its span
/// as an error.
async fn job_joins_the_submitting_trace(backend: Backend) {
    let recorder = recorder();
    let database = TestDatabase::create(backend).await;
    let db = database.connect().await;
    db.migrate(&MIGRATIONS).await.unwrap();
    let system = db.system_name();
    let shutdown = CancellationToken::new();
    let jobs = Jobs::start(db.clone(), WorkerCommits::Durable, shutdown.clone())
        .await
        .unwrap();
    let worker = jobs.worker(
        vec![Arc::new(FakeProgress)],
        WorkerConfig {
            poll_interval: Duration::from_millis(50),
            ..WorkerConfig::default()
        },
    );
    let running = tokio::spawn(worker.run(shutdown.clone()));

    let request = tracing::info_span!("test.request");
    let trace_id = request.context().span().span_context().trace_id();
    let job = jobs
        .submit("owner", "test.traced", Vec::new(), SubmitOptions::default())
        .instrument(request.clone())
        .await
        .unwrap();
    drop(request);

    // The job's span ends after its outcome is written: wait for the span, not the state.
    let spans: Vec<_> = aimesh_kit::testing::eventually(
        Duration::from_secs(10),
        "the job's span is exported",
        || async {
            let spans: Vec<_> = recorder
                .spans()
                .into_iter()
                .filter(|s| s.span_context.trace_id() == trace_id)
                .collect();
            spans
                .iter()
                .any(|s| s.name == "job test.traced")
                .then_some(spans)
        },
    )
    .await;
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    let find = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span in the trace: {names:?}"))
    };
    let request = find("test.request");
    let insert = find("INSERT jobs");
    assert_db_span(insert, system, "INSERT", "jobs");
    assert_eq!(insert.parent_span_id, request.span_context.span_id());

    let run = find("job test.traced");
    assert_eq!(
        run.parent_span_id,
        request.span_context.span_id(),
        "the job's span is not a child of the submitting request's"
    );
    assert!(
        run.parent_span_is_remote,
        "parented through the stored traceparent"
    );
    let writes: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.parent_span_id == run.span_context.span_id())
        .collect();
    // The handler's progress report and the worker's outcome, both `UPDATE jobs`.
    assert!(writes.len() >= 2, "job span children: {names:?}");
    for write in writes {
        assert_db_span(write, system, "UPDATE", "jobs");
    }
    assert_eq!(
        jobs.get("owner", job.id).await.unwrap().state,
        JobState::Succeeded
    );

    shutdown.cancel();
    running.await.unwrap();

    // A call that fails records why on its span.
    jobs.close().await;
    db.close().await;
    let failing = tracing::info_span!("test.failing");
    let failing_trace = failing.context().span().span_context().trace_id();
    jobs.get("owner", job.id)
        .instrument(failing)
        .await
        .unwrap_err();
    let select = recorder
        .spans()
        .into_iter()
        .find(|s| s.span_context.trace_id() == failing_trace && s.name == "SELECT jobs")
        .expect("no span for the failed call");
    assert!(matches!(select.status, Status::Error { .. }), "{select:?}");
    assert_eq!(
        attribute(&select, "error.type").as_deref(),
        Some("pool_closed")
    );
}

aimesh_kit::backend_tests!(job_joins_the_submitting_trace);
