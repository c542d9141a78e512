//! The gRPC server every aimesh process runs.
//!
//! [`ServerBuilder`] collects the services, then [`ServerBuilder::build`] binds the listener
//! (port 0 works: [`Server::local_addr`] tells the real one) and [`Server::run_until_stopped`]
//! serves until the shutdown token is cancelled. Every server gets grpc-web (HTTP/1.1 too), gRPC
//! reflection (v1 and v1alpha), `grpc.health.v1` driven by readiness checks, a tracing span per
//! request joined to the caller's W3C trace context, and a graceful drain on shutdown that lets
//! unary calls finish and ends open server streams with `UNAVAILABLE` (see [`crate::drain`]).

use std::{
    convert::Infallible, future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration,
};

use opentelemetry::propagation::Extractor;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{
    body::Body,
    server::NamedService,
    service::{Routes, RoutesBuilder},
    transport::{ServerTlsConfig, server::TcpIncoming},
};
use tonic_health::{ServingStatus, server::HealthReporter};
use tower::Service;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{auth::AuthLayer, drain::DrainLayer, metrics::MetricsLayer, tls::TlsConfig};

/// A readiness check: resolves to `Ok` when the dependency it checks is usable.
pub type ReadinessCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Collects services and settings for a [`Server`].
pub struct ServerBuilder {
    addr: SocketAddr,
    routes: RoutesBuilder,
    service_names: Vec<&'static str>,
    descriptor_sets: Vec<&'static [u8]>,
    checks: Vec<(&'static str, ReadinessCheck)>,
    capabilities: Vec<(String, ReadinessCheck)>,
    check_interval: Duration,
    shutdown: CancellationToken,
    grace: Duration,
    auth: Option<AuthLayer>,
    metrics_addr: Option<SocketAddr>,
    /// The listener's TLS settings and how they are described in the log.
    tls: Option<(ServerTlsConfig, &'static str)>,
}

impl ServerBuilder {
    /// Starts a builder for a server on `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            routes: RoutesBuilder::default(),
            service_names: Vec::new(),
            descriptor_sets: vec![aimesh_proto::FILE_DESCRIPTOR_SET],
            checks: Vec::new(),
            capabilities: Vec::new(),
            check_interval: Duration::from_secs(5),
            shutdown: CancellationToken::new(),
            grace: Duration::from_secs(30),
            auth: None,
            metrics_addr: None,
            tls: None,
        }
    }

    /// Serves Prometheus metrics on `addr` (port 0 picks one; see [`Server::metrics_addr`]).
    pub fn metrics(mut self, addr: Option<SocketAddr>) -> Self {
        self.metrics_addr = addr;
        self
    }

    /// Adds a gRPC service; its name is reported by health.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.service_names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Adds a readiness check; health reports NOT_SERVING while any check fails.
    pub fn readiness_check(mut self, name: &'static str, check: ReadinessCheck) -> Self {
        self.checks.push((name, check));
        self
    }

    /// Adds a capability reported by health under its own `name` (e.g.
    /// `aimesh.models.v1.ModelsService/chat`): SERVING while the server is ready and `check`
    /// passes. A failing capability does not make the whole server NOT_SERVING: the rest of
    /// the process still serves.
    pub fn capability(mut self, name: impl Into<String>, check: ReadinessCheck) -> Self {
        self.capabilities.push((name.into(), check));
        self
    }

    /// Sets how often readiness checks run (default 5 s).
    pub fn check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval;
        self
    }

    /// Uses `token` to stop the server: cancelling it starts the graceful drain.
    pub fn shutdown_token(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    /// Sets how long in-flight requests and streams may run after shutdown starts.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Authenticates every request with `auth` (without it, no request carries a principal and
    /// every owner-scoped call is refused).
    pub fn auth(mut self, auth: AuthLayer) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Serves TLS (mutual TLS when `config` names a client CA) instead of plain HTTP/2 when
    /// `config` has a certificate; see [`crate::tls`]. Fails when the files do not load.
    pub fn tls(mut self, config: &TlsConfig) -> anyhow::Result<Self> {
        self.tls = config
            .server()?
            .map(|tls| (tls, if config.mutual() { "mutual" } else { "on" }));
        Ok(self)
    }

    /// Binds the listener.
    pub async fn build(self) -> std::io::Result<Server> {
        let listener = TcpListener::bind(self.addr).await?;
        let local_addr = listener.local_addr()?;
        let metrics_addr = match self.metrics_addr {
            Some(addr) => Some(crate::metrics::serve(addr, self.shutdown.clone()).await?),
            None => None,
        };
        Ok(Server {
            listener,
            local_addr,
            metrics_addr,
            builder: self,
        })
    }
}

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    builder: ServerBuilder,
}

impl Server {
    /// Returns the address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Returns the address of the metrics listener, if metrics are on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Serves until the shutdown token is cancelled, then reports NOT_SERVING, stops accepting,
    /// and lets in-flight calls finish within the grace period.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Server {
            listener,
            local_addr,
            builder,
            ..
        } = self;
        let ServerBuilder {
            mut routes,
            service_names,
            descriptor_sets,
            checks,
            capabilities,
            check_interval,
            shutdown,
            grace,
            auth,
            tls,
            ..
        } = builder;

        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        let reflection = || {
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
            for set in &descriptor_sets {
                builder = builder.register_encoded_file_descriptor_set(set);
            }
            // List only what this process serves, not every service in the descriptor sets.
            builder = builder.with_service_name("grpc.health.v1.Health");
            for name in &service_names {
                builder = builder.with_service_name(*name);
            }
            builder
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;
        routes
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        let routes: Routes = routes.routes();
        // Every method of the services served, health's included: the metric labels.
        let mut served = service_names.clone();
        served.push("grpc.health.v1.Health");
        let mut sets = descriptor_sets.clone();
        sets.push(tonic_health::pb::FILE_DESCRIPTOR_SET);
        let metrics = MetricsLayer::new(MetricsLayer::method_paths(&sets, &served)?);

        let readiness = Readiness {
            reporter: health_reporter,
            service_names,
            checks,
            capabilities,
        };
        readiness.update().await;
        let readiness_task = tokio::spawn({
            let shutdown = shutdown.clone();
            let readiness = readiness.clone();
            async move {
                let mut tick = tokio::time::interval(check_interval);
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = tick.tick() => readiness.update().await,
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
        });

        let tls_mode = tls.as_ref().map_or("off", |(_, mode)| *mode);
        tracing::info!(addr = %local_addr, tls = tls_mode, "grpc server listening");
        // Cancelled once health says NOT_SERVING (so health watchers hear it first): open server
        // streams then end with UNAVAILABLE instead of holding the drain (see `drain`).
        let draining = CancellationToken::new();
        let signal = {
            let shutdown = shutdown.clone();
            let readiness = readiness.clone();
            let draining = draining.clone();
            async move {
                shutdown.cancelled().await;
                readiness.set_all(ServingStatus::NotServing).await;
                tracing::info!("shutting down: draining in-flight calls, ending open streams");
                draining.cancel();
            }
        };
        let mut server = tonic::transport::Server::builder();
        if let Some((tls, _)) = tls {
            server = server.tls_config(tls)?;
        }
        let serve = server
            .accept_http1(true)
            .trace_fn(request_span)
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(metrics)
            .layer(tower::util::option_layer(auth))
            .layer(DrainLayer::new(draining))
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener)
                    .with_nodelay(Some(true))
                    .with_keepalive(Some(Duration::from_secs(60))),
                signal,
            );
        tokio::pin!(serve);

        let result = tokio::select! {
            result = &mut serve => result,
            _ = shutdown.cancelled() => match tokio::time::timeout(grace, &mut serve).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!(grace_secs = grace.as_secs(), "grace period over: closing remaining calls");
                    Ok(())
                }
            },
        };
        readiness_task.abort();
        result?;
        tracing::info!("grpc server stopped");
        Ok(())
    }
}

/// Drives the health statuses from the readiness checks.
#[derive(Clone)]
struct Readiness {
    reporter: HealthReporter,
    service_names: Vec<&'static str>,
    checks: Vec<(&'static str, ReadinessCheck)>,
    capabilities: Vec<(String, ReadinessCheck)>,
}

impl Readiness {
    async fn update(&self) {
        let mut ready = true;
        for (name, check) in &self.checks {
            if let Err(error) = check().await {
                tracing::warn!(check = name, %error, "readiness check failed");
                ready = false;
            }
        }
        let status = if ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status("", status).await;
        for name in &self.service_names {
            self.reporter.set_service_status(*name, status).await;
        }
        for (name, check) in &self.capabilities {
            let status = match check().await {
                Ok(()) if ready => ServingStatus::Serving,
                Ok(()) => ServingStatus::NotServing,
                Err(error) => {
                    tracing::debug!(capability = %name, %error, "capability not serving");
                    ServingStatus::NotServing
                }
            };
            self.reporter.set_service_status(name, status).await;
        }
    }

    async fn set_all(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        for name in &self.service_names {
            self.reporter.set_service_status(*name, status).await;
        }
        for (name, _) in &self.capabilities {
            self.reporter.set_service_status(name, status).await;
        }
    }
}

/// Creates the span of one request, parented on the caller's `traceparent`, if any.
fn request_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc.request",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    let _ = span.set_parent(parent);
    span
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Resolves when the process receives SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "failed to listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "failed to listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("received ctrl-c"),
        _ = terminate => tracing::info!("received SIGTERM"),
    }
}
