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
    collections::HashMap,
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

/// Counts and times every RPC to a method the server serves. Each method's metric handles are
/// registered once, at its first call, and calls to paths the server does not serve share the
/// `unknown` label: a client cannot grow the registry by calling methods that do not exist.
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    methods: Arc<Methods>,
}

/// The handles of every method served, and of the rest together.
#[derive(Debug)]
struct Methods {
    known: HashMap<String, MethodMetrics>,
    unknown: MethodMetrics,
}

impl Methods {
    fn of(&self, path: &str) -> &MethodMetrics {
        self.known.get(path).unwrap_or(&self.unknown)
    }
}

/// gRPC status codes run from 0 (OK) to 16 (UNAUTHENTICATED).
const GRPC_CODES: usize = 17;

/// One method's metric handles, each registered on first use.
#[derive(Debug)]
struct MethodMetrics {
    /// The `method` label: the RPC's path, or `unknown`.
    label: String,
    in_flight: OnceLock<metrics::Gauge>,
    duration: OnceLock<metrics::Histogram>,
    /// Calls by gRPC status code.
    calls: [OnceLock<metrics::Counter>; GRPC_CODES],
}

impl MethodMetrics {
    fn new(label: String) -> Self {
        Self {
            label,
            in_flight: OnceLock::new(),
            duration: OnceLock::new(),
            calls: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    fn in_flight(&self) -> &metrics::Gauge {
        self.in_flight.get_or_init(
            || metrics::gauge!("aimesh_grpc_requests_in_flight", "method" => self.label.clone()),
        )
    }

    fn duration(&self) -> &metrics::Histogram {
        self.duration.get_or_init(|| {
            metrics::histogram!("aimesh_grpc_request_duration_seconds", "method" => self.label.clone())
        })
    }

    /// Counts a call that ended with `code` (a grpc-status value, or `transport`).
    fn count(&self, code: &str) {
        let register = || {
            metrics::counter!(
                "aimesh_grpc_requests_total",
                "method" => self.label.clone(),
                "code" => code.to_owned()
            )
        };
        match code.parse::<usize>() {
            Ok(index) if index < GRPC_CODES => self.calls[index].get_or_init(register).increment(1),
            _ => register().increment(1),
        }
    }
}

impl MetricsLayer {
    /// Creates the layer for the methods at `paths` (`/package.Service/Method`).
    pub fn new(paths: impl IntoIterator<Item = String>) -> Self {
        recorder();
        let known = paths
            .into_iter()
            .map(|path| (path.clone(), MethodMetrics::new(path)))
            .collect();
        Self {
            methods: Arc::new(Methods {
                known,
                unknown: MethodMetrics::new("unknown".to_owned()),
            }),
        }
    }

    /// The paths of the methods of `services` (full names) that `descriptor_sets` describe.
    pub fn method_paths(
        descriptor_sets: &[&[u8]],
        services: &[&str],
    ) -> Result<Vec<String>, prost_reflect::DescriptorError> {
        let mut paths = Vec::new();
        for set in descriptor_sets {
            let pool = prost_reflect::DescriptorPool::decode(*set)?;
            for service in pool.services() {
                if services.contains(&service.full_name()) {
                    paths.extend(
                        service
                            .methods()
                            .map(|method| format!("/{}/{}", service.full_name(), method.name())),
                    );
                }
            }
        }
        Ok(paths)
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            methods: self.methods.clone(),
        }
    }
}

/// The service [`MetricsLayer`] produces.
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    methods: Arc<Methods>,
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
        let methods = self.methods.clone();
        Box::pin(async move {
            let started = Instant::now();
            let method = methods.of(request.uri().path());
            let in_flight = method.in_flight();
            in_flight.increment(1.0);
            let response = inner.call(request).await;
            in_flight.decrement(1.0);
            method.duration().record(started.elapsed().as_secs_f64());
            match &response {
                Ok(response) => method.count(
                    response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("0"),
                ),
                Err(_) => method.count("transport"),
            }
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_paths_come_from_the_descriptors_of_the_services_served() {
        let paths = MetricsLayer::method_paths(
            &[
                aimesh_proto::FILE_DESCRIPTOR_SET,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
            ],
            &["aimesh.notes.v1.NotesService", "grpc.health.v1.Health"],
        )
        .expect("descriptor sets decode");
        for path in [
            "/aimesh.notes.v1.NotesService/GetNote",
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
        ] {
            assert!(paths.iter().any(|p| p == path), "{path} missing: {paths:?}");
        }
        assert!(
            !paths.iter().any(|p| p.starts_with("/aimesh.jobs.v1.")),
            "only the services served: {paths:?}"
        );
        let layer = MetricsLayer::new(paths);
        assert_eq!(
            layer
                .methods
                .of("/aimesh.notes.v1.NotesService/GetNote")
                .label,
            "/aimesh.notes.v1.NotesService/GetNote"
        );
        assert_eq!(
            layer
                .methods
                .of("/aimesh.notes.v1.NotesService/NoSuchMethod")
                .label,
            "unknown"
        );
    }
}
