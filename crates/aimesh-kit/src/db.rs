//! Database pools for the two supported backends — SQLite (the embedded default) and
//! PostgreSQL (production) — plus embedded, per-service migrations and the one place that
//! classifies database errors into [`Code`]s.
//!
//! Stores write their SQL once, with `$1`-style placeholders that both backends accept, and run
//! it through [`with_db!`](crate::with_db), which expands the same code for each pool type.

use std::{borrow::Cow, str::FromStr, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use sqlx::{
    PgPool, SqlitePool,
    error::ErrorKind,
    migrate::{Migration, MigrationType, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::error::Code;

/// A connection pool to one of the supported databases.
#[derive(Debug, Clone)]
pub enum Db {
    /// An embedded SQLite database file.
    Sqlite(SqlitePool),
    /// A PostgreSQL server.
    Postgres(PgPool),
}

/// Runs the same code against whichever pool a [`Db`] holds.
///
/// `with_db!(&db, |pool| sqlx::query("SELECT 1").execute(pool).await)` expands the body once
/// per backend, so the same SQL text and binds are type-checked against both drivers.
///
/// Naming the statement's operation and table traces the call as an OpenTelemetry database
/// client span (see [`query_span`]): `with_db!(&db, INSERT "notes", |pool| ...)` runs the body
/// in a span named `INSERT notes`, which records the error when the body returns one. The body
/// must then evaluate to a `Result<_, sqlx::Error>`; a `?` in it returns from the body, not from
/// the enclosing function. Background polling (claiming, pings) uses the untraced form, so idle
/// loops export no traces.
#[macro_export]
macro_rules! with_db {
    ($db:expr, $operation:ident $table:literal, |$pool:ident| $body:expr) => {{
        let db: &$crate::db::Db = $db;
        $crate::traced!(db, $operation $table, async {
            match db {
                $crate::db::Db::Sqlite($pool) => $body,
                $crate::db::Db::Postgres($pool) => $body,
            }
        })
        .await
    }};
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Traces one database call (a future of `Result<_, sqlx::Error>`) as a client span named
/// `<operation> <table>`; see [`query_span`] and [`traced`](crate::db::traced). For
/// statements inside a transaction: `traced!(&db, UPDATE "notes", query.execute(&mut *tx))`.
#[macro_export]
macro_rules! traced {
    ($db:expr, $operation:ident $table:literal, $call:expr) => {
        $crate::db::traced(
            $crate::db::query_span(
                $db,
                ::core::stringify!($operation),
                $table,
                ::core::concat!(::core::stringify!($operation), " ", $table),
            ),
            $call,
        )
    };
}

/// Errors from opening a database or migrating it.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    /// The URL names no supported database.
    #[error("unsupported database URL: expected a `sqlite:` or `postgres:` URL")]
    UnsupportedUrl,
    /// The directory for the SQLite file could not be created.
    #[error("failed to create the database directory")]
    CreateDir(#[source] std::io::Error),
    /// Connecting failed.
    #[error("failed to connect to the {backend} database")]
    Connect {
        /// Which backend.
        backend: &'static str,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// A service's embedded migrations are malformed (a bug in the build).
    #[error("the {service} migrations are malformed: {reason}")]
    BadMigrations {
        /// Whose migrations.
        service: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A migration failed.
    #[error("failed to apply the {service} migrations")]
    Migrate {
        /// Whose migrations.
        service: &'static str,
        /// Why.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// How long to wait for a free connection before failing with `Unavailable`.
    pub acquire_timeout: Duration,
    /// PostgreSQL: longest a statement may run before the server cancels it
    /// (`statement_timeout`; a cancelled statement is DEADLINE_EXCEEDED). Zero: no limit.
    pub statement_timeout: Duration,
    /// PostgreSQL: longest a session may sit idle inside a transaction before the server
    /// ends it (`idle_in_transaction_session_timeout`), releasing its locks. Zero: no limit.
    pub idle_in_transaction_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            idle_in_transaction_timeout: Duration::from_secs(60),
        }
    }
}

/// The migrations of one service, for each backend: the `.sql` files of its
/// `migrations/sqlite` and `migrations/postgres` directories, embedded by [`migrations!`]
/// (crate::migrations). A file is named `<version>_<description>.sql` (`0001_notes.sql`);
/// versions apply in increasing order, each once. Each service keeps its own history table
/// (`_aimesh_<service>_migrations`), so services migrate independently and share a database.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// The service's name.
    pub service: &'static str,
    /// Migrations for SQLite.
    pub sqlite: &'static include_dir::Dir<'static>,
    /// Migrations for PostgreSQL.
    pub postgres: &'static include_dir::Dir<'static>,
}

/// Embeds the calling crate's migrations for a service:
/// `pub const MIGRATIONS: Migrations = aimesh_kit::migrations!("notes");` takes every `.sql`
/// file in `migrations/sqlite` and `migrations/postgres` beside the crate's `Cargo.toml`.
#[macro_export]
macro_rules! migrations {
    ($service:literal) => {{
        // The embedding macro names its types by the `include_dir` path.
        use $crate::db::include_dir;
        $crate::db::Migrations {
            service: $service,
            sqlite: &include_dir::include_dir!("$CARGO_MANIFEST_DIR/migrations/sqlite"),
            postgres: &include_dir::include_dir!("$CARGO_MANIFEST_DIR/migrations/postgres"),
        }
    }};
}

#[doc(hidden)]
pub use include_dir;

impl Migrations {
    /// Returns the migrations of a backend's directory, in version order.
    fn files(dir: &include_dir::Dir<'static>) -> Result<Vec<Migration>, String> {
        let mut migrations = Vec::new();
        for file in dir.files() {
            let path = file.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let Some(stem) = name.strip_suffix(".sql") else {
                continue;
            };
            let (version, description) = stem
                .split_once('_')
                .and_then(|(v, d)| Some((v.parse::<i64>().ok()?, d)))
                .ok_or_else(|| format!("{name}: not named <version>_<description>.sql"))?;
            let sql = file
                .contents_utf8()
                .ok_or_else(|| format!("{name}: not UTF-8"))?;
            migrations.push(Migration::new(
                version,
                Cow::Owned(description.replace('_', " ")),
                MigrationType::Simple,
                sqlx::SqlSafeStr::into_sql_str(sql),
                false,
            ));
        }
        migrations.sort_by_key(|m| m.version);
        if let Some(pair) = migrations.windows(2).find(|p| p[0].version == p[1].version) {
            return Err(format!("two migrations have version {}", pair[0].version));
        }
        Ok(migrations)
    }

    fn migrator(&self, dir: &include_dir::Dir<'static>) -> Result<Migrator, DbSetupError> {
        let files = Self::files(dir).map_err(|reason| DbSetupError::BadMigrations {
            service: self.service,
            reason,
        })?;
        let mut migrator = Migrator::with_migrations(files);
        migrator.dangerous_set_table_name(format!("_aimesh_{}_migrations", self.service));
        Ok(migrator)
    }
}

// === impl Db ===

impl Db {
    /// Opens a pool for a `sqlite:` or `postgres:` URL. A SQLite file (and its directory) is
    /// created when missing and opened in WAL mode with foreign keys on.
    pub async fn connect(url: &SecretString, options: &DbOptions) -> Result<Self, DbSetupError> {
        let url = url.expose_secret();
        if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(|source| DbSetupError::Connect {
                    backend: "sqlite",
                    source,
                })?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            if let Some(dir) = connect.get_filename().parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(DbSetupError::CreateDir)?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await
                .map_err(|source| DbSetupError::Connect {
                    backend: "sqlite",
                    source,
                })?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let millis = |d: Duration| d.as_millis().to_string();
            let connect = PgConnectOptions::from_str(url)
                .map_err(|source| DbSetupError::Connect {
                    backend: "postgres",
                    source,
                })?
                .options([
                    ("statement_timeout", millis(options.statement_timeout)),
                    (
                        "idle_in_transaction_session_timeout",
                        millis(options.idle_in_transaction_timeout),
                    ),
                ]);
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await
                .map_err(|source| DbSetupError::Connect {
                    backend: "postgres",
                    source,
                })?;
            Ok(Db::Postgres(pool))
        } else {
            Err(DbSetupError::UnsupportedUrl)
        }
    }

    /// Returns a pool of its own on the same PostgreSQL database, as large as this one, whose
    /// connections start with `settings` (run-time parameters, as if `SET name = value` ran on
    /// each), connecting as it is used. On SQLite, returns this pool: it has no such settings.
    ///
    /// For a store whose statements need other planner settings than the rest of the process.
    pub fn with_postgres_settings(&self, settings: &[(&str, &str)]) -> Db {
        match self {
            Db::Sqlite(_) => self.clone(),
            Db::Postgres(pool) => {
                let connect = pool
                    .connect_options()
                    .as_ref()
                    .clone()
                    .options(settings.iter().copied());
                Db::Postgres(pool.options().clone().connect_lazy_with(connect))
            }
        }
    }

    /// Returns `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Returns the OpenTelemetry `db.system.name`: `"sqlite"` or `"postgresql"`.
    pub fn system_name(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgresql",
        }
    }

    /// Applies a service's pending migrations.
    pub async fn migrate(&self, migrations: &Migrations) -> Result<(), DbSetupError> {
        let result = match self {
            Db::Sqlite(pool) => migrations.migrator(migrations.sqlite)?.run(pool).await,
            Db::Postgres(pool) => migrations.migrator(migrations.postgres)?.run(pool).await,
        };
        result.map_err(|source| DbSetupError::Migrate {
            service: migrations.service,
            source,
        })
    }

    /// Checks that the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_db!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(drop))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        with_db!(self, |pool| pool.close().await)
    }
}

/// Opens the client span of one database statement, following the OpenTelemetry database
/// semantic conventions: named `<operation> <table>` (`name`, e.g. `INSERT notes`), kind client,
/// with `db.system.name`, `db.operation.name` and `db.collection.name`; [`traced`] fills in the
/// error fields. Stores call it through [`with_db!`](crate::with_db).
///
/// The span is at INFO under the target [`DB_SPAN_TARGET`](crate::telemetry::DB_SPAN_TARGET),
/// which only the trace exporter takes: without OTLP export, or with a filter below that level
/// (e.g. `AIMESH_LOG=warn` or `info,aimesh::db=off`), it is a disabled span costing one cached
/// interest check.
pub fn query_span(
    db: &Db,
    operation: &'static str,
    table: &'static str,
    name: &'static str,
) -> tracing::Span {
    tracing::info_span!(
        target: crate::telemetry::DB_SPAN_TARGET,
        "db.query",
        otel.name = name,
        otel.kind = "client",
        db.system.name = db.system_name(),
        db.operation.name = operation,
        db.collection.name = table,
        db.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// Runs a database call in `span`, recording on it how the call failed, if it did: the error
/// class as `error.type` (the SQLSTATE for errors the database reported, also as
/// `db.response.status_code`) and the span status ERROR.
pub async fn traced<T>(
    span: tracing::Span,
    call: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    let result = tracing::Instrument::instrument(call, span.clone()).await;
    if let Err(error) = &result
        && !span.is_disabled()
    {
        let code = match error {
            sqlx::Error::Database(db) => db.code(),
            _ => None,
        };
        if let Some(code) = &code {
            span.record("db.response.status_code", code.as_ref());
        }
        span.record(
            "error.type",
            code.as_deref().unwrap_or_else(|| error_type(error)),
        );
        span.record("otel.status_code", "ERROR");
    }
    result
}

/// A low-cardinality name for a database error that carries no SQLSTATE.
fn error_type(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::RowNotFound => "row_not_found",
        sqlx::Error::PoolTimedOut => "pool_timed_out",
        sqlx::Error::PoolClosed => "pool_closed",
        sqlx::Error::Io(_) => "io",
        sqlx::Error::Tls(_) => "tls",
        sqlx::Error::Protocol(_) => "protocol",
        sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => "decode",
        sqlx::Error::Encode(_) => "encode",
        sqlx::Error::Database(_) => "database",
        _ => "_OTHER",
    }
}

/// Returns the current time at the precision both databases store (microseconds), so a value
/// written and read back compares equal.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6)
}

/// Listens on a PostgreSQL notification channel until `shutdown`, calling `on_message` with
/// each payload, and with `None` when notifications may have been lost: when the connection
/// drops or receiving fails, and again once a new connection listens, since whatever was
/// notified in between is gone. Listeners re-read what they follow on `None`.
pub async fn listen(
    pool: &PgPool,
    channel: &'static str,
    shutdown: tokio_util::sync::CancellationToken,
    on_message: impl Fn(Option<&str>) + Send + 'static,
) -> Result<(), sqlx::Error> {
    let mut listener = connect_listener(pool, channel).await?;
    let pool = pool.clone();
    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => break,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => {
                    on_message(Some(notification.payload()));
                    continue;
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, channel, "notification listener failed; reconnecting");
                }
            }
            on_message(None);
            // Listen on a new connection, then tell again: notifications sent before it
            // listened were lost.
            listener = loop {
                match connect_listener(&pool, channel).await {
                    Ok(listener) => break listener,
                    Err(error) => {
                        tracing::debug!(%error, channel, "notification listener: reconnecting");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            };
            on_message(None);
        }
    });
    Ok(())
}

/// A connection listening on `channel`.
async fn connect_listener(
    pool: &PgPool,
    channel: &'static str,
) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// The code a client sees for a database failure its service did not handle: a lost
/// connection or lock timeout is `Unavailable`, a serialization failure or deadlock `Aborted`
/// (safe to retry), a statement over its time limit `DeadlineExceeded`, anything else
/// `Internal`. A constraint violation a service expects (a
/// duplicate name) is classified with [`error_code`] where it happens; one reaching this far is
/// a bug or a race, and its details (tables, constraints) must not reach the client.
pub fn failure_code(error: &sqlx::Error) -> Code {
    match error_code(error) {
        code @ (Code::Unavailable | Code::Aborted | Code::DeadlineExceeded) => code,
        _ => Code::Internal,
    }
}

/// Classifies a database error: constraint violations become client-facing codes, lost
/// connections and lock timeouts `Unavailable`, everything else `Internal`.
pub fn error_code(error: &sqlx::Error) -> Code {
    match error {
        sqlx::Error::RowNotFound => Code::NotFound,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Code::Unavailable
        }
        sqlx::Error::Database(db) => match db.kind() {
            ErrorKind::UniqueViolation => Code::AlreadyExists,
            ErrorKind::ForeignKeyViolation => Code::NotFound,
            _ => match db.code().as_deref() {
                // SQLite SQLITE_BUSY / SQLITE_LOCKED, PostgreSQL lock timeout.
                Some("5") | Some("6") | Some("55P03") => Code::Unavailable,
                // PostgreSQL serialization failure and deadlock: safe to retry.
                Some("40001") | Some("40P01") => Code::Aborted,
                // PostgreSQL statement cancelled (statement_timeout).
                Some("57014") => Code::DeadlineExceeded,
                // PostgreSQL shutting down, crashed or not accepting connections yet (57P01 to
                // 57P03), and connection exceptions (class 08): the database is away; retry.
                Some(code)
                    if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03") =>
                {
                    Code::Unavailable
                }
                _ => Code::Internal,
            },
        },
        _ => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use include_dir::{Dir, DirEntry, File};

    const TEST_MIGRATIONS: Migrations = Migrations {
        service: "kit_test",
        sqlite: &Dir::new(
            "sqlite",
            &[
                DirEntry::File(File::new(
                    "sqlite/0002_second_step.sql",
                    b"ALTER TABLE items ADD COLUMN note TEXT;",
                )),
                DirEntry::File(File::new(
                    "sqlite/0001_items.sql",
                    b"CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);",
                )),
                DirEntry::File(File::new("sqlite/README.md", b"not a migration")),
            ],
        ),
        postgres: &Dir::new("postgres", &[]),
    };

    #[test]
    fn migration_files_are_ordered_by_version_and_misnamed_ones_refused() {
        let files = Migrations::files(TEST_MIGRATIONS.sqlite).unwrap();
        let versions: Vec<i64> = files.iter().map(|m| m.version).collect();
        assert_eq!(versions, [1, 2]);
        assert_eq!(files[1].description, "second step");
        const BAD: Dir<'static> = Dir::new(
            "x",
            &[DirEntry::File(File::new("x/first.sql", b"SELECT 1"))],
        );
        assert!(Migrations::files(&BAD).unwrap_err().contains("first.sql"));
    }

    #[tokio::test]
    async fn sqlite_file_is_created_and_migrated_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let url = SecretString::from(format!(
            "sqlite://{}/nested/test.db?mode=rwc",
            dir.path().display()
        ));
        let db = Db::connect(&url, &DbOptions::default()).await.unwrap();
        db.migrate(&TEST_MIGRATIONS).await.unwrap();
        db.migrate(&TEST_MIGRATIONS).await.unwrap();
        db.ping().await.unwrap();

        let insert = |name: &'static str| {
            let db = db.clone();
            async move {
                with_db!(&db, |pool| sqlx::query(
                    "INSERT INTO items (name) VALUES ($1)"
                )
                .bind(name)
                .execute(pool)
                .await
                .map(drop))
            }
        };
        insert("a").await.unwrap();
        let error = insert("a").await.unwrap_err();
        assert_eq!(error_code(&error), Code::AlreadyExists);
    }

    /// PostgreSQL sessions carry the statement and idle-in-transaction limits; a statement
    /// over its limit is cancelled by the server and reported as DEADLINE_EXCEEDED.
    #[tokio::test]
    async fn postgres_sessions_have_time_limits() {
        let database =
            crate::testing::TestDatabase::create(crate::testing::Backend::Postgres).await;
        let options = DbOptions {
            statement_timeout: Duration::from_millis(300),
            idle_in_transaction_timeout: Duration::from_secs(7),
            ..DbOptions::default()
        };
        let db = Db::connect(&SecretString::from(database.url.clone()), &options)
            .await
            .unwrap();
        let Db::Postgres(pool) = &db else {
            panic!("a PostgreSQL database");
        };
        let (idle,): (String,) = sqlx::query_as("SHOW idle_in_transaction_session_timeout")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(idle, "7s");
        let error = sqlx::query("SELECT pg_sleep(5)")
            .execute(pool)
            .await
            .unwrap_err();
        assert_eq!(failure_code(&error), Code::DeadlineExceeded);
        // The pool's other settings survive: the engine's own pool adds planner settings.
        let jobs = db.with_postgres_settings(&[("enable_seqscan", "off")]);
        let Db::Postgres(jobs) = &jobs else {
            panic!("a PostgreSQL database");
        };
        let (timeout,): (String,) = sqlx::query_as("SHOW statement_timeout")
            .fetch_one(jobs)
            .await
            .unwrap();
        assert_eq!(timeout, "300ms");
    }

    #[tokio::test]
    async fn unsupported_urls_are_refused() {
        let url = SecretString::from("mysql://localhost/db".to_owned());
        let error = Db::connect(&url, &DbOptions::default()).await.unwrap_err();
        assert!(matches!(error, DbSetupError::UnsupportedUrl));
    }
}
