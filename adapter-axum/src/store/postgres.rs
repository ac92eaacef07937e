//! The PostgreSQL store.

use std::time::Duration;

use oauth_core::{Driver, Reply, StorageError, StorageRequest, UnixTime};
use sqlx::SqlSafeStr as _;
use sqlx::error::DatabaseError;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, Postgres};

use super::Store;
use super::sql::{self, COMMON, Statements};

/// How long [`PgStore::connect`] lets a request wait for a pooled
/// connection, and lets one statement run, before giving up. Every
/// statement is a primary-key lookup or a short range scan, so anything
/// slower is an overloaded or unreachable server, and the client is better
/// served by a prompt 503 than by a hung request.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The table that records which of this crate's migrations ran. It is not
/// sqlx's default `_sqlx_migrations`, so the application's own sqlx
/// migrations in the same database neither see ours as unknown nor collide
/// with our version numbers.
const MIGRATIONS_TABLE: &str = "_oauth_core_migrations";

static PG_SQL: Statements = Statements {
    // The subquery locks the rows it picks and skips rows other sessions
    // hold, so concurrent purgers (one per replica) split the work instead of
    // queueing. The outer `expires_at` test is re-checked against the latest
    // row version: a row revived by an `IfAbsent` put after the subquery ran
    // is not deleted.
    purge: "DELETE FROM oauth_records WHERE key IN (SELECT key FROM oauth_records WHERE expires_at <= $1 \
            LIMIT $2 FOR UPDATE SKIP LOCKED) AND expires_at <= $1",
    ..COMMON
};

/// oauth-core records in PostgreSQL, through a sqlx connection pool.
///
/// One table, `oauth_records`, created by the embedded migration when the
/// store is built. Every storage operation is a single statement that
/// touches one row by primary key (or, for listings, one primary-key range),
/// so each is atomic without explicit transactions and costs O(1) in the
/// number of stored records. Expiry is judged by the request's time, never
/// the database clock. Cloning is cheap and shares the pool.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connect to `url` (`postgres://user:pass@host:port/db`), with a pool
    /// of up to 10 connections, a 5 s wait for a connection and a 5 s
    /// `statement_timeout` (unless the URL's `options` set one), and apply
    /// the migrations.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let mut options = url.parse::<PgConnectOptions>()?;
        if !options.get_options().is_some_and(|o| o.contains("statement_timeout")) {
            let timeout_ms = DEFAULT_TIMEOUT.as_millis().to_string();
            options = options.options([("statement_timeout", timeout_ms)]);
        }
        let pool = PgPoolOptions::new().max_connections(10).acquire_timeout(DEFAULT_TIMEOUT);
        Self::connect_with(pool, options).await
    }

    /// Connect with exactly these settings and apply the migrations.
    pub async fn connect_with(pool: PgPoolOptions, options: PgConnectOptions) -> Result<Self, sqlx::Error> {
        Self::from_pool(pool.connect_with(options).await?).await
    }

    /// Use an existing pool (the application's own, say) and apply the
    /// migrations. Concurrent callers are serialized by sqlx's advisory lock.
    pub async fn from_pool(pool: PgPool) -> Result<Self, sqlx::Error> {
        migrator().run(&pool).await?;
        Ok(Self { pool })
    }

    /// The pool, for health checks or the application's own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Delete records that are dead at `now`, `batch` rows per statement,
    /// until none are left; returns how many were deleted. Expired records
    /// are invisible whether purged or not, so this only reclaims space:
    /// run it periodically (every few minutes) from one or more replicas.
    pub async fn purge_expired(&self, now: UnixTime, batch: u32) -> Result<u64, StorageError> {
        sql::purge_expired(self, now, batch).await
    }
}

/// The embedded migrations. Built at run time from `include_str!` rather than
/// with `sqlx::migrate!`, which needs sqlx's proc-macro crate, and so that
/// the bookkeeping table can be our own.
fn migrator() -> Migrator {
    let mut migrator = Migrator::with_migrations(vec![Migration::new(
        20_260_101_000_000,
        "oauth records".into(),
        MigrationType::Simple,
        include_str!("../../migrations/postgres/20260101000000_oauth_records.sql").into_sql_str(),
        false,
    )]);
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

/// SQLSTATEs worth a retry: the client gets 503 rather than 500.
fn transient(error: &dyn DatabaseError) -> Option<StorageError> {
    let code = error.code()?;
    match &*code {
        // query_canceled (statement_timeout), lock_not_available (lock_timeout)
        "57014" | "55P03" => Some(StorageError::Timeout),
        // serialization failure, deadlock, shutdown in progress, cannot
        // connect now, read-only transaction (a standby after failover)
        "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "25006" => Some(StorageError::Unavailable),
        // connection exceptions, insufficient resources (too many connections)
        c if c.starts_with("08") || c.starts_with("53") => Some(StorageError::Unavailable),
        _ => None,
    }
}

sql::sql_backend!(PgStore, Postgres, &PG_SQL, transient);

impl Store for PgStore {
    fn execute(&self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> + Send {
        sql::run_batch(self, request)
    }
}

impl Driver for PgStore {
    async fn storage(&mut self, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        sql::run_batch(self, request).await
    }
}
