//! The SQLite store: the embedded default.

use std::path::Path;
use std::time::Duration;

use oauth_core::{Driver, Reply, StorageError, StorageRequest, UnixTime};
use sqlx::SqlSafeStr as _;
use sqlx::error::DatabaseError;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::Store;
use super::sql::{self, COMMON, Statements};

/// How long a statement waits for SQLite's write lock, and a request for a
/// pooled connection, before giving up with a retryable error.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// See the PostgreSQL store: our own bookkeeping table keeps the
/// application's sqlx migrations and ours apart.
const MIGRATIONS_TABLE: &str = "_oauth_core_migrations";

static SQLITE_SQL: Statements = Statements {
    // One statement, so it runs under one write lock; the outer test keeps
    // the PostgreSQL statement's shape.
    purge: "DELETE FROM oauth_records WHERE key IN (SELECT key FROM oauth_records WHERE expires_at <= $1 \
            LIMIT $2) AND expires_at <= $1",
    ..COMMON
};

/// oauth-core records in a SQLite file: the embedded default, for a single
/// server without a database to run.
///
/// Same table and statements as [`PgStore`](super::PgStore). The file is
/// opened in WAL mode (readers never block the writer) with
/// `synchronous = FULL`: a single-use code or rotated refresh token that was
/// consumed stays consumed across a power loss. SQLite runs one write at a
/// time, so every conditional write is trivially atomic. Cloning is cheap
/// and shares the pool.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open (creating it if missing) the database file at `path` and apply
    /// the migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(DEFAULT_TIMEOUT);
        // Writes are serialized by SQLite anyway; a few connections let
        // reads proceed beside a write.
        let pool = SqlitePoolOptions::new().max_connections(4).acquire_timeout(DEFAULT_TIMEOUT);
        Self::connect_with(pool, options).await
    }

    /// Connect with exactly these settings and apply the migrations. Note
    /// that `sqlite::memory:` gives every pooled connection its own empty
    /// database unless the pool holds a single, never-closed connection.
    pub async fn connect_with(pool: SqlitePoolOptions, options: SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        Self::from_pool(pool.connect_with(options).await?).await
    }

    /// Use an existing pool and apply the migrations.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self, sqlx::Error> {
        migrator().run(&pool).await?;
        Ok(Self { pool })
    }

    /// The pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Delete records that are dead at `now`, `batch` rows per statement,
    /// until none are left; returns how many were deleted. Only reclaims
    /// space: expired records are invisible either way.
    pub async fn purge_expired(&self, now: UnixTime, batch: u32) -> Result<u64, StorageError> {
        sql::purge_expired(self, now, batch).await
    }
}

/// See the PostgreSQL store's `migrator`.
fn migrator() -> Migrator {
    let mut migrator = Migrator::with_migrations(vec![Migration::new(
        20_260_101_000_000,
        "oauth records".into(),
        MigrationType::Simple,
        include_str!("../../migrations/sqlite/20260101000000_oauth_records.sql").into_sql_str(),
        false,
    )]);
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

/// Result codes worth a retry. sqlx reports extended codes; the primary
/// code is the low byte.
fn transient(error: &dyn DatabaseError) -> Option<StorageError> {
    let code: i32 = error.code()?.parse().ok()?;
    match code & 0xff {
        // SQLITE_BUSY: the write lock was not granted within busy_timeout.
        5 => Some(StorageError::Timeout),
        // SQLITE_LOCKED: a conflict within this process's shared cache.
        6 => Some(StorageError::Unavailable),
        _ => None,
    }
}

sql::sql_backend!(SqliteStore, Sqlite, &SQLITE_SQL, transient);

impl Store for SqliteStore {
    fn execute(&self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> + Send {
        sql::run_batch(self, request)
    }
}

impl Driver for SqliteStore {
    async fn storage(&mut self, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        sql::run_batch(self, request).await
    }
}
