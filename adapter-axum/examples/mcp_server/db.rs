//! The database: PostgreSQL when `DATABASE_URL` is set, otherwise a SQLite
//! file under the data directory. Both the OAuth records and the todo list
//! live in it, so everything survives a restart.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adapter_axum::{PgStore, SqliteStore, Store};
use oauth_core::{Reply, StorageError, StorageRequest, UnixTime};

/// Either of the adapter's stores, chosen at start-up.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    /// PostgreSQL: for several replicas or a managed database.
    Postgres(PgStore),
    /// SQLite: the zero-setup default.
    Sqlite(SqliteStore),
}

impl Db {
    /// Connect to PostgreSQL at `url`, applying the adapter's migrations.
    pub(crate) async fn postgres(url: &str) -> Result<Self, String> {
        PgStore::connect(url).await.map(Self::Postgres).map_err(|e| format!("cannot connect to PostgreSQL: {e}"))
    }

    /// Open (creating it if needed) `oauth.sqlite3` in `dir`.
    pub(crate) async fn sqlite(dir: &Path) -> Result<Self, String> {
        if !dir.exists() {
            create_private_dir(dir).map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
        }
        // The directory holds credentials' hashes and grant keys: keep it out
        // of version control without touching the project's .gitignore.
        let ignore = dir.join(".gitignore");
        if !ignore.exists() {
            std::fs::write(&ignore, "*\n").map_err(|e| format!("cannot write {}: {e}", ignore.display()))?;
        }
        let file = dir.join("oauth.sqlite3");
        SqliteStore::open(&file)
            .await
            .map(Self::Sqlite)
            .map_err(|e| format!("cannot open SQLite database {}: {e}", file.display()))
    }

    /// What to tell the operator about where data lives (no credentials).
    pub(crate) fn describe(&self, data_dir: &Path) -> String {
        match self {
            Self::Postgres(_) => "PostgreSQL (DATABASE_URL)".into(),
            Self::Sqlite(_) => format!("SQLite at {}", data_dir.join("oauth.sqlite3").display()),
        }
    }
}

impl Db {
    /// Every five minutes, delete OAuth records that have expired. Expired
    /// records are invisible either way; this only reclaims space.
    pub(crate) fn spawn_purge(&self) {
        let db = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(300));
            loop {
                tick.tick().await;
                let Ok(since_epoch) = SystemTime::now().duration_since(UNIX_EPOCH) else {
                    continue;
                };
                let now = UnixTime::from_secs(since_epoch.as_secs());
                let purged = match &db {
                    Self::Postgres(s) => s.purge_expired(now, PURGE_BATCH).await,
                    Self::Sqlite(s) => s.purge_expired(now, PURGE_BATCH).await,
                };
                match purged {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(records = n, "purged expired oauth records"),
                    Err(error) => tracing::warn!(%error, "purging expired oauth records failed"),
                }
            }
        });
    }
}

/// Rows deleted per statement: short transactions that never hold the
/// table for long.
const PURGE_BATCH: u32 = 1_000;

impl Store for Db {
    fn execute(&self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> + Send {
        // The two stores' futures are different types; an owned clone (a
        // pool handle) lets one async block hold either.
        let db = self.clone();
        async move {
            match db {
                Self::Postgres(s) => s.execute(request).await,
                Self::Sqlite(s) => s.execute(request).await,
            }
        }
    }
}

/// The database holds grant keys and credential hashes: on Unix, only the
/// owner may enter its directory.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
