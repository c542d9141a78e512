//! Logging and distributed tracing: one `init` that installs a `tracing` subscriber (EnvFilter,
//! plain or JSON output, and an OpenTelemetry layer exporting over OTLP when an endpoint is
//! configured) and returns a guard that flushes pending spans when dropped.

use opentelemetry::{propagation::TextMapCompositePropagator, trace::TracerProvider as _};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_subscriber::{
    EnvFilter, Layer, filter::filter_fn, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::config::{LogFormat, TelemetryConfig};

/// Flushes and shuts the trace exporter down when dropped.
#[must_use = "dropping the guard flushes and stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Flushes pending spans and stops the exporter.
    pub fn shutdown(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("aimesh: trace exporter shutdown failed: {error}");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Installs the global subscriber and W3C trace-context propagator.
///
/// Fails if the filter does not parse, the exporter cannot be built, or a subscriber is
/// already installed.
pub fn init(cfg: &TelemetryConfig) -> anyhow::Result<TelemetryGuard> {
    let filter = EnvFilter::try_new(&cfg.log)?;

    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
    ]));

    let provider = match &cfg.otlp_endpoint {
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(
                        Resource::builder()
                            .with_service_name(cfg.service_name.clone())
                            .build(),
                    )
                    .build(),
            )
        }
        None => None,
    };
    let tracer = provider
        .as_ref()
        .map(|provider| provider.tracer(cfg.service_name.clone()));
    subscriber(filter, cfg.log_format, tracer, std::io::stdout).try_init()?;
    Ok(TelemetryGuard { provider })
}

/// The layers: logs in `format` to `writer`, and spans to `tracer` when exporting, behind one
/// global `filter`.
///
/// The level filter is global (a layer of its own), not attached to each layer: a per-layer
/// filter remembers a "no" in the thread's filter state until the next event, and when the "no"
/// answers a bare question (`log::log_enabled!` through the `log` bridge, as sqlx asks before
/// logging each statement) that next event is dropped. The one per-layer filter left is static
/// (decided per callsite, never per call): database client spans
/// ([`crate::db::query_span`], target [`DB_SPAN_TARGET`]) are for traces only, so the log layer
/// ignores them; without a tracer the global filter turns them off, and each costs one cached
/// interest check.
fn subscriber<W>(
    filter: EnvFilter,
    format: LogFormat,
    tracer: Option<opentelemetry_sdk::trace::SdkTracer>,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let fmt = match format {
        LogFormat::Plain => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    let logs = fmt.with_filter(filter_fn(|metadata| {
        !(metadata.is_span() && metadata.target() == DB_SPAN_TARGET)
    }));
    match tracer {
        Some(tracer) => Box::new(
            tracing_subscriber::registry()
                .with(filter)
                .with(logs)
                .with(tracing_opentelemetry::layer().with_tracer(tracer)),
        ),
        // Nothing wants database spans then: the global filter turns their callsites off (and
        // there is no tracer layer rather than a `None` one, which would want every span).
        None => Box::new(
            tracing_subscriber::registry()
                .with(filter.add_directive(DB_SPANS_OFF.parse().expect("a valid directive")))
                .with(logs),
        ),
    }
}

/// The target of database client spans.
pub const DB_SPAN_TARGET: &str = "aimesh::db";

/// The filter directive that turns [`DB_SPAN_TARGET`] off.
const DB_SPANS_OFF: &str = "aimesh::db=off";

/// Installs a test subscriber once per process; output only when `TEST_LOG` is set.
pub fn init_for_tests() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::new(
                    "debug,sqlx=info,h2=info,hyper=info,tower=info",
                ))
                .with_test_writer()
                .try_init();
        }
    });
}

/// Returns the current span's context as a W3C `traceparent`, or `None` when the span is not
/// traced: what a job or a domain event carries so that the work it leads to joins its trace.
pub fn current_traceparent() -> Option<String> {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    struct Fields(Option<String>);
    impl opentelemetry::propagation::Injector for Fields {
        fn set(&mut self, key: &str, value: String) {
            if key == "traceparent" {
                self.0 = Some(value);
            }
        }
    }
    let context = tracing::Span::current().context();
    let mut fields = Fields(None);
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut fields)
    });
    fields.0
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use secrecy::SecretString;

    use super::*;
    use crate::db::{Db, DbOptions, query_span};

    #[tokio::test]
    async fn database_spans_are_disabled_unless_exported() {
        let url = SecretString::from("sqlite::memory:".to_owned());
        let db = Db::connect(&url, &DbOptions::default()).await.unwrap();
        let span = |filter: &str, tracer| {
            let subscriber = subscriber(
                EnvFilter::new(filter),
                LogFormat::Json,
                tracer,
                std::io::sink,
            );
            tracing::subscriber::with_default(subscriber, || {
                let request = tracing::info_span!("grpc.request");
                let query = query_span(&db, "SELECT", "notes", "SELECT notes");
                (request.is_disabled(), query.is_disabled())
            })
        };
        // Logging only: the request span is logged, the database span costs nothing.
        assert_eq!(span("info", None), (false, true));
        // Exporting: both are traced.
        let provider = SdkTracerProvider::builder().build();
        assert_eq!(span("info", Some(provider.tracer("test"))), (false, false));
        // A level filter turns both off.
        assert_eq!(span("warn", Some(provider.tracer("test"))), (true, true));
    }

    /// A writer that keeps what is logged.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// A library asking whether a level is enabled (sqlx does, through `log`, before logging
    /// a statement) and being told no must not cost the next event its line: with a per-layer level filter
    /// the "no" stayed in the thread's filter state and the next event was dropped.
    #[test]
    fn a_disabled_probe_does_not_swallow_the_next_event() {
        for tracer in [
            None,
            Some(SdkTracerProvider::builder().build().tracer("test")),
        ] {
            let captured = Captured::default();
            let subscriber = subscriber(
                EnvFilter::new("info"),
                LogFormat::Json,
                tracer,
                captured.clone(),
            );
            tracing::subscriber::with_default(subscriber, || {
                // As `log::log_enabled!` does through the `log` bridge: the dispatcher asked
                // directly, with no callsite interest in between.
                let probe = tracing::callsite!(
                    name: "probe",
                    kind: tracing::metadata::Kind::EVENT,
                    target: "sqlx::query",
                    level: tracing::Level::DEBUG,
                    fields: []
                );
                for i in 0..3 {
                    let asked = tracing::dispatcher::get_default(|d| {
                        d.enabled(tracing::callsite::Callsite::metadata(probe))
                    });
                    assert!(!asked, "a debug statement log is not wanted at info");
                    tracing::info!(i, "after a probe");
                }
            });
            let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
            assert_eq!(text.matches("after a probe").count(), 3, "{text}");
        }
    }
}
