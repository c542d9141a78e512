//! Prometheus metrics: one process-wide recorder, a tower layer that counts and times every
//! RPC, and an admin listener serving `/metrics`.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `aimesh_grpc_requests_total` | `method`, `code` | calls, by gRPC status code (a stream's code is the one it started with) |
//! | `aimesh_grpc_request_duration_seconds` | `method` | time to the response headers (for a unary call, the whole call) |
//! | `aimesh_grpc_requests_in_flight` | `method` | calls whose response has not started |
//! | `aimesh_watch_streams` | `method` | open job watch streams |
//! | `aimesh_jobs_queued` | `kind` | jobs waiting for a worker |
//! | `aimesh_job_duration_seconds` | `kind`, `outcome` | attempt durations |
//! | `aimesh_inference_duration_seconds` | `engine`, `task` | one engine call |

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;
use tower::{Layer, Service};

/// Installs the process-wide recorder (once) and returns the handle that renders it.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0, 300.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed: render an empty, private one.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// Serves `/metrics` on `addr` until `shutdown`; returns the bound address.
pub async fn serve(addr: SocketAddr, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    let handle = recorder();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    handle.render(),
                )
            }
        }),
    );
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "metrics listener failed");
        }
    });
    tracing::info!(addr = %local, "metrics listening");
    Ok(local)
}

/// Counts and times every RPC to a known service.
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    services: Arc<HashSet<String>>,
}

impl MetricsLayer {
    /// Creates the layer; calls to other paths are labelled `unknown` (bounded cardinality).
    pub fn new(services: impl IntoIterator<Item = String>) -> Self {
        recorder();
        Self {
            services: Arc::new(services.into_iter().collect()),
        }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            services: self.services.clone(),
        }
    }
}

/// The service [`MetricsLayer`] produces.
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    services: Arc<HashSet<String>>,
}

impl<S, B, R> Service<http::Request<B>> for MetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = request.uri().path();
        let known = path
            .trim_start_matches('/')
            .split_once('/')
            .is_some_and(|(service, _)| self.services.contains(service));
        let method = if known {
            path.to_owned()
        } else {
            "unknown".to_owned()
        };
        Box::pin(async move {
            let started = Instant::now();
            let in_flight =
                metrics::gauge!("aimesh_grpc_requests_in_flight", "method" => method.clone());
            in_flight.increment(1.0);
            let response = inner.call(request).await;
            in_flight.decrement(1.0);
            let code = match &response {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0")
                    .to_owned(),
                Err(_) => "transport".to_owned(),
            };
            metrics::histogram!("aimesh_grpc_request_duration_seconds", "method" => method.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("aimesh_grpc_requests_total", "method" => method, "code" => code)
                .increment(1);
            response
        })
    }
}
