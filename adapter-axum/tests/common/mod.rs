//! Store fixtures shared by the integration tests.
//!
//! PostgreSQL tests read `DATABASE_URL` (start a throwaway server with
//! `scripts/pg.sh start`). Unset, they are skipped with a message on the
//! terminal, except under `CI=true`, where a missing database is a failure:
//! CI must never pass without having run them.

#![allow(dead_code, unreachable_pub)]

use std::io::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};

use adapter_axum::{PgStore, SqliteStore};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

/// The PostgreSQL URL, or `None` (after saying so loudly) when the tests
/// must be skipped. Panics under `CI=true` without one.
pub fn database_url(test: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "DATABASE_URL is unset under CI=true: the PostgreSQL tests must run in CI \
                 (start a server with `scripts/pg.sh start`)"
            );
            // Written to the real stderr, past libtest's capture, so a local
            // run cannot mistake a skip for a pass.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED {test}: DATABASE_URL is unset. \
                 Run `export DATABASE_URL=$(scripts/pg.sh start)` to test against PostgreSQL. ***\n"
            );
            None
        }
    }
}

/// A store in a fresh schema of its own, so tests running in parallel (and
/// earlier runs) never see each other's rows. `max_connections` sizes the pool.
pub async fn pg_store(url: &str, max_connections: u32) -> PgStore {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let schema = format!("t_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), nanos);
    let mut admin = PgConnection::connect(url).await.expect("connect to DATABASE_URL");
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();
    let options: PgConnectOptions = url.parse().unwrap();
    let options = options.options([("search_path", schema.as_str())]);
    let pool = PgPoolOptions::new().max_connections(max_connections);
    PgStore::connect_with(pool, options).await.expect("PgStore::connect_with")
}

/// A store in a new file under a temporary directory (kept alive by the
/// returned guard).
pub async fn sqlite_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("oauth.db")).await.expect("SqliteStore::open");
    (store, dir)
}
