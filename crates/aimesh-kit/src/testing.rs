//! Throwaway databases for tests: a SQLite file in a temporary directory, or a fresh database
//! on the PostgreSQL server named by `AIMESH_TEST_POSTGRES_URL` (default: the local server with
//! trust auth). A missing PostgreSQL server fails the test with a message saying how to fix it.

use std::{path::PathBuf, str::FromStr};

use secrecy::SecretString;
use sqlx::{ConnectOptions, Connection, Executor, postgres::PgConnectOptions};

use crate::db::{Db, DbOptions};

/// The PostgreSQL server used when `AIMESH_TEST_POSTGRES_URL` is unset.
pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Which database backend a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A fresh database on a PostgreSQL server.
    Postgres,
}

/// A database that exists for one test and is dropped with this value.
pub struct TestDatabase {
    /// The URL to connect to.
    pub url: String,
    /// The directory for local files (and the SQLite file).
    pub dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// Creates an empty database on `backend`.
    pub async fn create(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("failed to create a temporary directory");
        match backend {
            Backend::Sqlite => Self {
                url: format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
                dir,
                postgres: None,
            },
            Backend::Postgres => {
                let admin = std::env::var("AIMESH_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_owned());
                let name = format!("aimesh_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is required for this test but {admin} is unreachable ({e}); \
                         start it or set AIMESH_TEST_POSTGRES_URL"
                    )
                });
                conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .await
                    .expect("failed to create the test database");
                let options = PgConnectOptions::from_str(&admin)
                    .expect("AIMESH_TEST_POSTGRES_URL is not a PostgreSQL URL")
                    .database(&name);
                let url = options.to_url_lossy().to_string();
                Self {
                    url,
                    dir,
                    postgres: Some((admin, name)),
                }
            }
        }
    }

    /// Connects a pool to the database.
    pub async fn connect(&self) -> Db {
        Db::connect(&SecretString::from(self.url.clone()), &DbOptions::default())
            .await
            .expect("failed to connect to the test database")
    }

    /// Returns the directory for local files.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread with
        // a runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .await
                .ok()
            })
        })
        .join();
    }
}

/// Generates one test per backend for each listed `async fn(Backend)`: modules `sqlite` and
/// `postgres`, each holding a `#[tokio::test]` (multi-threaded) of every function.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Polls `check` every 20 ms until it returns `Some`, and returns that; panics naming `what`
/// when `within` passes first. For conditions reached asynchronously (a metric scraped, a
/// notification delivered); a job's progress is better followed with its watch stream.
pub async fn eventually<T, F, Fut>(within: std::time::Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{what}: not reached within {within:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
