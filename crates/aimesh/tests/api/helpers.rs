//! Starting a mesh for a test, and assertions on statuses.

use aimesh::{Mesh, MeshConfig, ServiceKind};
pub(crate) use aimesh_kit::backend_tests;
use aimesh_kit::testing::{Backend, TestDatabase};
use aimesh_proto::{
    identity::v1::{
        self as idpb, LoginRequest, RegisterRequest, identity_service_client::IdentityServiceClient,
    },
    notes::v1::{self as pb, notes_service_client::NotesServiceClient},
};
use tokio_util::sync::CancellationToken;
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};
use tonic_types::StatusExt;

/// Adds `authorization: Bearer <token>` to every call (nothing when the token is `None`).
#[derive(Clone)]
pub(crate) struct Bearer(pub(crate) Option<MetadataValue<Ascii>>);

impl Bearer {
    pub(crate) fn token(token: &str) -> Self {
        Self(Some(
            format!("Bearer {token}")
                .parse()
                .expect("token is header-safe"),
        ))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub(crate) type NotesClient = NotesServiceClient<InterceptedService<Channel, Bearer>>;
pub(crate) type JobsClient = aimesh_proto::jobs::v1::jobs_service_client::JobsServiceClient<
    InterceptedService<Channel, Bearer>,
>;
pub(crate) type IdentityClient = IdentityServiceClient<InterceptedService<Channel, Bearer>>;

/// A logged-in user and clients that call as them.
pub(crate) struct Session {
    pub(crate) user_id: String,
    pub(crate) access: String,
    pub(crate) refresh: String,
    pub(crate) notes: NotesClient,
    pub(crate) identity: IdentityClient,
}

/// The password every test user registers with.
pub(crate) const PASSWORD: &str = "Correct-Horse-42";

/// A running mesh and clients connected to it; dropping it stops the server.
pub(crate) struct TestApp {
    pub(crate) addr: std::net::SocketAddr,
    /// The Prometheus listener.
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
    pub(crate) channel: Channel,
    /// Notes as the default user, alice.
    pub(crate) notes: NotesClient,
    /// Alice's session.
    pub(crate) alice: Session,
    pub(crate) db: TestDatabase,
    /// The mesh's shared parts (database, job engine...).
    pub(crate) core: aimesh::Core,
    shutdown: CancellationToken,
}

impl TestApp {
    pub(crate) async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, ServiceKind::ALL, |_| {}).await
    }

    /// Starts a mesh running `services`, with `configure` applied to the test configuration.
    pub(crate) async fn spawn_with(
        backend: Backend,
        services: &[ServiceKind],
        configure: impl FnOnce(&mut MeshConfig),
    ) -> Self {
        aimesh_kit::telemetry::init_for_tests();
        let db = TestDatabase::create(backend).await;
        let mut config = MeshConfig::for_tests(db.data_dir(), Some(db.url.clone()));
        configure(&mut config);
        let mesh = Mesh::build(&config, services)
            .await
            .expect("failed to build the mesh");
        let addr = mesh.local_addr();
        let metrics_addr = mesh.metrics_addr();
        let shutdown = mesh.shutdown_token();
        let core = mesh.core().clone();
        tokio::spawn(mesh.run_until_stopped());
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("valid endpoint")
            .connect()
            .await
            .expect("failed to connect to the mesh");
        let alice = if services.contains(&ServiceKind::Identity) {
            Some(Self::session_on(&channel, "alice").await)
        } else {
            None
        };
        let alice = alice.unwrap_or_else(|| Session {
            user_id: String::new(),
            access: String::new(),
            refresh: String::new(),
            notes: NotesServiceClient::with_interceptor(channel.clone(), Bearer(None)),
            identity: IdentityServiceClient::with_interceptor(channel.clone(), Bearer(None)),
        });
        Self {
            addr,
            metrics_addr,
            notes: alice.notes.clone(),
            alice,
            channel,
            db,
            core,
            shutdown,
        }
    }

    /// An identity client that sends no token.
    pub(crate) fn anonymous_identity(&self) -> IdentityServiceClient<Channel> {
        IdentityServiceClient::new(self.channel.clone())
    }

    /// A notes client that sends `authorization: Bearer <token>`.
    pub(crate) fn notes_with_token(&self, token: &str) -> NotesClient {
        NotesServiceClient::with_interceptor(self.channel.clone(), Bearer::token(token))
    }

    /// A jobs client calling as alice.
    pub(crate) fn jobs(&self) -> JobsClient {
        self.jobs_with_token(&self.alice.access)
    }

    /// A jobs client that sends `authorization: Bearer <token>`.
    pub(crate) fn jobs_with_token(&self, token: &str) -> JobsClient {
        aimesh_proto::jobs::v1::jobs_service_client::JobsServiceClient::with_interceptor(
            self.channel.clone(),
            Bearer::token(token),
        )
    }

    /// Follows a job over WatchJob as the holder of `token` until the stream ends (after the
    /// job's terminal state) and returns every snapshot seen; fails after `limit`.
    pub(crate) async fn watch_job_to_end(
        &self,
        token: &str,
        id: &str,
        limit: std::time::Duration,
    ) -> Vec<aimesh_proto::jobs::v1::Job> {
        let mut stream = self
            .jobs_with_token(token)
            .watch_job(aimesh_proto::jobs::v1::WatchJobRequest { id: id.into() })
            .await
            .unwrap()
            .into_inner();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        while let Some(message) = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("the job finished in time")
            .unwrap()
        {
            seen.push(message.job.unwrap());
        }
        seen
    }

    /// Asserts that `owner` has an event of each of `types` in the outbox (recorded with the
    /// change, numbered or not yet).
    pub(crate) async fn assert_events(&self, owner: &str, types: &[&str]) {
        let recorded: Vec<String> = self
            .core
            .events
            .store()
            .of_owner(owner)
            .await
            .expect("the events of an owner")
            .into_iter()
            .map(|event| event.event_type)
            .collect();
        for wanted in types {
            assert!(
                recorded.iter().any(|recorded| recorded == wanted),
                "an event {wanted} among {recorded:?}"
            );
        }
    }

    /// Registers `username` (email `<username>@example.com`) and logs in.
    pub(crate) async fn session(&self, username: &str) -> Session {
        Self::session_on(&self.channel, username).await
    }

    /// Registers `username` and logs in over `channel` (a server of this test or another).
    pub(crate) async fn session_on(channel: &Channel, username: &str) -> Session {
        let mut identity = IdentityServiceClient::new(channel.clone());
        let email = format!("{username}@example.com");
        identity
            .register(RegisterRequest {
                username: username.into(),
                email: email.clone(),
                password: PASSWORD.into(),
                password2: PASSWORD.into(),
            })
            .await
            .expect("register failed");
        let tokens: idpb::LoginResponse = identity
            .login(LoginRequest {
                email,
                username: String::new(),
                password: PASSWORD.into(),
            })
            .await
            .expect("login failed")
            .into_inner();
        let bearer = Bearer::token(&tokens.access);
        Session {
            user_id: tokens.user.expect("login returns the user").id,
            access: tokens.access,
            refresh: tokens.refresh,
            notes: NotesServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            identity: IdentityServiceClient::with_interceptor(channel.clone(), bearer),
        }
    }

    /// Creates a note and returns it.
    pub(crate) async fn create_note(&self, title: &str, text: &str, language: &str) -> pb::Note {
        create_note(&self.notes, title, text, language).await
    }
}

/// Creates a note with `notes` and returns it.
pub(crate) async fn create_note(
    notes: &NotesClient,
    title: &str,
    text: &str,
    language: &str,
) -> pb::Note {
    notes
        .clone()
        .create_note(pb::CreateNoteRequest {
            note: Some(pb::Note {
                title: title.into(),
                original_text: text.into(),
                original_language: language.into(),
                ..Default::default()
            }),
        })
        .await
        .expect("create_note failed")
        .into_inner()
        .note
        .expect("created note")
}

/// Reads a note with `notes`, which must succeed.
pub(crate) async fn get_note(notes: &NotesClient, id: &str) -> pb::Note {
    notes
        .clone()
        .get_note(pb::GetNoteRequest { id: id.into() })
        .await
        .expect("get_note failed")
        .into_inner()
        .note
        .expect("a note")
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Asserts an INVALID_ARGUMENT status whose BadRequest details name `field`, and that the
/// message leaks no internals.
#[track_caller]
pub(crate) fn assert_invalid(status: &tonic::Status, field: &str) {
    assert_eq!(
        status.code(),
        tonic::Code::InvalidArgument,
        "expected INVALID_ARGUMENT for {field}, got {status:?}"
    );
    let bad = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest details in {status:?}"));
    assert!(
        bad.field_violations.iter().any(|v| v.field == field),
        "no violation of {field} in {:?}",
        bad.field_violations
    );
    assert_no_internals(status);
}

/// Asserts a status of `code` that leaks no internals.
#[track_caller]
pub(crate) fn assert_code(status: &tonic::Status, code: tonic::Code) {
    assert_eq!(status.code(), code, "unexpected status {status:?}");
    assert_no_internals(status);
}

#[track_caller]
fn assert_no_internals(status: &tonic::Status) {
    let message = status.message().to_lowercase();
    for leak in [
        "select ", "insert ", "sqlite", "postgres", "sqlx", "/tmp", "panicked",
    ] {
        assert!(!message.contains(leak), "status leaks {leak:?}: {message}");
    }
}
