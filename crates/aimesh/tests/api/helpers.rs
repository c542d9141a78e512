//! Starting a mesh for a test, and assertions on statuses.

use aimesh::{Mesh, ServiceKind};
use aimesh_kit::{
    config::ServerConfig,
    testing::{Backend, TestDatabase},
};
use aimesh_proto::notes::v1::{self as pb, notes_service_client::NotesServiceClient};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt;

/// Generates one test per backend for each listed `async fn(Backend)`.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(aimesh_kit::testing::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(aimesh_kit::testing::Backend::Postgres).await
                }
            )*
        }
    };
}
pub(crate) use backend_tests;

/// A running mesh and clients connected to it; dropping it stops the server.
pub(crate) struct TestApp {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) channel: Channel,
    pub(crate) notes: NotesServiceClient<Channel>,
    shutdown: CancellationToken,
    _db: TestDatabase,
}

impl TestApp {
    pub(crate) async fn spawn(backend: Backend) -> Self {
        aimesh_kit::telemetry::init_for_tests();
        let db = TestDatabase::create(backend).await;
        let config = ServerConfig::for_tests(db.data_dir(), Some(db.url.clone()));
        let mesh = Mesh::build(&config, ServiceKind::ALL)
            .await
            .expect("failed to build the mesh");
        let addr = mesh.local_addr();
        let shutdown = mesh.shutdown_token();
        tokio::spawn(mesh.run_until_stopped());
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("valid endpoint")
            .connect()
            .await
            .expect("failed to connect to the mesh");
        Self {
            addr,
            notes: NotesServiceClient::new(channel.clone()),
            channel,
            shutdown,
            _db: db,
        }
    }

    /// Creates a note and returns it.
    pub(crate) async fn create_note(&self, title: &str, text: &str, language: &str) -> pb::Note {
        self.notes
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
