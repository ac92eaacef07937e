//! What PostgreSQL and SQLite share: the statements, the operation
//! dispatch, the row and time conversions and the error mapping.
//!
//! Both databases accept the same data-manipulation SQL (`$n` parameters,
//! `INSERT .. ON CONFLICT .. DO UPDATE .. WHERE`, `DELETE .. RETURNING`), so
//! each storage operation is written once here as one statement. A backend
//! only supplies its connection pool and three ways of running a statement
//! (for a row count, an optional row, a list of rows); the
//! [`sql_backend!`](crate::store::sql::sql_backend) macro writes those for a
//! concrete sqlx driver. They are not generic over `sqlx::Database` because
//! that needs higher-ranked `Executor` and `Encode` bounds repeated on every
//! caller, a known source of failures to infer that the resulting futures
//! are `Send`; the concrete bodies are ten lines each and avoid both.

use std::future::Future;

use oauth_core::{Condition, Entry, Reply, StorageError, StorageOp, StorageRequest, UnixTime};
use sqlx::error::DatabaseError;

/// The statements of one SQL dialect.
#[derive(Debug)]
pub(crate) struct Statements {
    /// `$1` key, `$2` now → `value, revision, expires_at` of the live row.
    pub(crate) get: &'static str,
    /// `$1` key, `$2` value, `$3` revision, `$4` expires_at.
    pub(crate) put_always: &'static str,
    /// As `put_always`, plus `$5` now: writes when no row or only a dead one.
    pub(crate) put_if_absent: &'static str,
    /// As `put_always`, plus `$5` expected revision and `$6` now.
    pub(crate) put_if_revision: &'static str,
    /// `$1` key → the deleted row, live or not.
    pub(crate) take: &'static str,
    /// `$1` key.
    pub(crate) delete: &'static str,
    /// Listing from `$1` inclusive; `$2` now, `$3` row limit, `$4` the
    /// exclusive upper bound of the prefix range.
    pub(crate) list_from: &'static str,
    /// As `list_from`, for a prefix with no upper bound.
    pub(crate) list_from_unbounded: &'static str,
    /// As `list_from`, starting after the cursor `$1`.
    pub(crate) list_after: &'static str,
    /// As `list_after`, for a prefix with no upper bound.
    pub(crate) list_after_unbounded: &'static str,
    /// `$1` now, `$2` batch size: deletes up to a batch of dead rows.
    pub(crate) purge: &'static str,
}

/// "Alive at `$n`": never expires, or expires after it. The same rule as
/// `UnixTime::has_reached`: a record is dead from its expiry second on.
macro_rules! live {
    ($n:literal) => {
        concat!("(expires_at IS NULL OR expires_at > $", $n, ")")
    };
}

macro_rules! upsert {
    () => {
        "INSERT INTO oauth_records (key, value, revision, expires_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision, \
         expires_at = excluded.expires_at"
    };
}

macro_rules! list {
    ($lower:literal, $upper:literal) => {
        concat!(
            "SELECT key, value, revision, expires_at FROM oauth_records WHERE ",
            $lower,
            $upper,
            " AND ",
            live!(2),
            " ORDER BY key LIMIT $3"
        )
    };
}

/// The statements PostgreSQL and SQLite run alike; only purging differs.
pub(crate) const COMMON: Statements = Statements {
    get: concat!("SELECT value, revision, expires_at FROM oauth_records WHERE key = $1 AND ", live!(2)),
    put_always: upsert!(),
    // On conflict the existing row is replaced only when it is dead at the
    // request's time. The database takes the row lock before evaluating the
    // WHERE clause, so of concurrent inserts exactly one sees "no live row".
    put_if_absent: concat!(upsert!(), " WHERE oauth_records.expires_at IS NOT NULL AND oauth_records.expires_at <= $5"),
    // The compare-and-swap: one UPDATE whose WHERE clause is re-checked
    // against the latest row version after waiting for a concurrent writer,
    // so of racing swaps from one revision exactly one matches.
    put_if_revision: concat!(
        "UPDATE oauth_records SET value = $2, revision = $3, expires_at = $4 \
         WHERE key = $1 AND revision = $5 AND ",
        live!(6)
    ),
    // Deletes whatever is there and lets the caller judge liveness: a dead
    // row is garbage anyway, and removing it keeps `take` one statement.
    take: "DELETE FROM oauth_records WHERE key = $1 RETURNING value, revision, expires_at",
    delete: "DELETE FROM oauth_records WHERE key = $1",
    list_from: list!("key >= $1", " AND key < $4"),
    list_from_unbounded: list!("key >= $1", ""),
    list_after: list!("key > $1", " AND key < $4"),
    list_after_unbounded: list!("key > $1", ""),
    purge: "",
};

/// A bound parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Param<'a> {
    Text(&'a str),
    Blob(&'a [u8]),
    Int(i64),
    NullableInt(Option<i64>),
}

/// A row as stored, before conversion to the core's types.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) value: Vec<u8>,
    pub(crate) revision: i64,
    pub(crate) expires_at: Option<i64>,
}

impl Stored {
    fn alive_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }

    fn into_entry(self) -> Entry {
        Entry {
            value: self.value,
            revision: revision_from_sql(self.revision),
            expires_at: self.expires_at.map(time_from_sql),
        }
    }
}

/// A SQL database behind a connection pool.
pub(crate) trait Backend: Sync {
    /// A connection checked out of the pool for one batch.
    type Conn: Send;

    /// This dialect's statements.
    const SQL: &'static Statements;

    /// Check a connection out of the pool.
    fn acquire(&self) -> impl Future<Output = Result<Self::Conn, sqlx::Error>> + Send;

    /// Run a statement; the number of rows it affected.
    fn execute(
        conn: &mut Self::Conn,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// Run a statement returning at most one `value, revision, expires_at` row.
    fn fetch_entry(
        conn: &mut Self::Conn,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Option<Stored>, sqlx::Error>> + Send;

    /// Run a statement returning `key, value, revision, expires_at` rows.
    fn fetch_keyed(
        conn: &mut Self::Conn,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Vec<(String, Stored)>, sqlx::Error>> + Send;

    /// The storage error for a database error that is transient (lock or
    /// statement timeout, overload, failover), or `None` for other errors.
    fn transient(error: &dyn DatabaseError) -> Option<StorageError>;
}

/// Perform one batch, in order, on one pooled connection.
///
/// Each operation is one autocommitted statement, so each is atomic on its
/// own and the batch holds no lock between statements; the storage contract
/// asks for no more (operations in a batch are independent).
pub(crate) async fn run_batch<B: Backend>(backend: &B, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
    let now = time_to_sql(request.now);
    let mut conn = backend.acquire().await.map_err(classify::<B>)?;
    let mut replies = Vec::with_capacity(request.ops.len());
    for op in request.ops {
        replies.push(run_op::<B>(&mut conn, op, now).await?);
    }
    Ok(replies)
}

async fn run_op<B: Backend>(conn: &mut B::Conn, op: StorageOp, now: i64) -> Result<Reply, StorageError> {
    let sql = B::SQL;
    let reply = match op {
        StorageOp::Get { key } => {
            let row = B::fetch_entry(conn, sql.get, &[Param::Text(&key), Param::Int(now)]).await;
            Reply::Entry(row.map_err(classify::<B>)?.map(Stored::into_entry))
        }
        StorageOp::Put { key, value, revision, expires_at, condition } => {
            let record = [
                Param::Text(&key),
                Param::Blob(&value),
                Param::Int(revision_to_sql(revision)),
                Param::NullableInt(expires_at.map(time_to_sql)),
            ];
            let [k, v, r, e] = record;
            let affected = match condition {
                Condition::Always => B::execute(conn, sql.put_always, &record).await,
                Condition::IfAbsent => B::execute(conn, sql.put_if_absent, &[k, v, r, e, Param::Int(now)]).await,
                Condition::IfRevision(expected) => {
                    let params = [k, v, r, e, Param::Int(revision_to_sql(expected)), Param::Int(now)];
                    B::execute(conn, sql.put_if_revision, &params).await
                }
                // A condition this adapter does not know must not silently
                // become an unconditional write.
                other => return Err(StorageError::Other(format!("unsupported put condition {other:?}"))),
            };
            Reply::Written(affected.map_err(classify::<B>)? > 0)
        }
        StorageOp::Take { key } => {
            let row = B::fetch_entry(conn, sql.take, &[Param::Text(&key)]).await.map_err(classify::<B>)?;
            Reply::Entry(row.filter(|r| r.alive_at(now)).map(Stored::into_entry))
        }
        StorageOp::Delete { key } => {
            B::execute(conn, sql.delete, &[Param::Text(&key)]).await.map_err(classify::<B>)?;
            Reply::Done
        }
        StorageOp::List { prefix, cursor, limit } => list::<B>(conn, &prefix, cursor, limit, now).await?,
        other => return Err(StorageError::Other(format!("unsupported storage operation on {:?}", other.key()))),
    };
    Ok(reply)
}

/// A prefix listing: one range scan on the primary key, fetching one row
/// more than asked to learn whether a cursor is needed.
async fn list<B: Backend>(
    conn: &mut B::Conn,
    prefix: &str,
    cursor: Option<String>,
    limit: u32,
    now: i64,
) -> Result<Reply, StorageError> {
    let sql = B::SQL;
    let limit = limit.max(1);
    // A cursor before the prefix (or from another listing) cannot skip keys
    // of this prefix; start at the prefix then, as the reference store does.
    let after = cursor.filter(|c| c.as_str() >= prefix);
    let upper = prefix_upper_bound(prefix);
    let lower = Param::Text(after.as_deref().unwrap_or(prefix));
    let fetch = Param::Int(i64::from(limit) + 1);
    let (statement, params) = match (&after, &upper) {
        (None, Some(u)) => (sql.list_from, vec![lower, Param::Int(now), fetch, Param::Text(u)]),
        (None, None) => (sql.list_from_unbounded, vec![lower, Param::Int(now), fetch]),
        (Some(_), Some(u)) => (sql.list_after, vec![lower, Param::Int(now), fetch, Param::Text(u)]),
        (Some(_), None) => (sql.list_after_unbounded, vec![lower, Param::Int(now), fetch]),
    };
    let mut rows = B::fetch_keyed(conn, statement, &params).await.map_err(classify::<B>)?;
    let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > wanted;
    rows.truncate(wanted);
    let cursor = if more { rows.last().map(|(k, _)| k.clone()) } else { None };
    let entries = rows.into_iter().map(|(k, r)| (k, r.into_entry())).collect();
    Ok(Reply::Listed { entries, cursor })
}

/// Delete dead rows in batches of `batch` until a batch comes back short.
/// Each batch is its own statement (and transaction), so locks are held
/// only for one batch at a time.
pub(crate) async fn purge_expired<B: Backend>(backend: &B, now: UnixTime, batch: u32) -> Result<u64, StorageError> {
    let batch = batch.max(1);
    let now = time_to_sql(now);
    let mut conn = backend.acquire().await.map_err(classify::<B>)?;
    let mut total = 0u64;
    loop {
        let params = [Param::Int(now), Param::Int(i64::from(batch))];
        let deleted = B::execute(&mut conn, B::SQL.purge, &params).await.map_err(classify::<B>)?;
        total = total.saturating_add(deleted);
        if deleted < u64::from(batch) {
            return Ok(total);
        }
    }
}

/// The smallest string greater than every string that starts with
/// `prefix`, or `None` when no string is (empty prefix, or one made only of
/// `char::MAX`). UTF-8 preserves code-point order under byte comparison, so
/// incrementing the last code point that can be incremented gives that
/// bound in the byte order both databases compare keys in.
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            // The surrogate range is not made of chars; skip over it.
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c).saturating_add(1)),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Seconds as the databases' signed 64-bit integer. Times past `i64::MAX`
/// (some 292 billion years) are clamped; they behave as "far future" still.
pub(crate) fn time_to_sql(t: UnixTime) -> i64 {
    i64::try_from(t.as_secs()).unwrap_or(i64::MAX)
}

/// The inverse of [`time_to_sql`]; a negative value, which only a hand edit
/// can store, reads as the epoch (long expired).
fn time_from_sql(t: i64) -> UnixTime {
    UnixTime::from_secs(u64::try_from(t).unwrap_or(0))
}

/// Revisions are only ever compared for equality, so the u64 is stored bit
/// for bit as an i64 (large revisions read back negative in SQL, and exactly
/// in Rust).
fn revision_to_sql(r: u64) -> i64 {
    i64::from_ne_bytes(r.to_ne_bytes())
}

fn revision_from_sql(r: i64) -> u64 {
    u64::from_ne_bytes(r.to_ne_bytes())
}

/// Map a driver error to the core's vocabulary. Messages name the kind of
/// failure and, for database errors, the server's code and primary message;
/// never a connection string, a bound value or a row.
pub(crate) fn classify<B: Backend>(error: sqlx::Error) -> StorageError {
    match error {
        sqlx::Error::PoolTimedOut => StorageError::Timeout,
        sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => {
            StorageError::Unavailable
        }
        sqlx::Error::Database(db) => B::transient(&*db).unwrap_or_else(|| {
            let code = db.code().unwrap_or_default();
            let message: String = db.message().chars().take(200).collect();
            StorageError::Other(format!("database error {code}: {message}"))
        }),
        sqlx::Error::Protocol(_) => StorageError::Other("database protocol error".into()),
        sqlx::Error::RowNotFound
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_) => StorageError::Other("stored row has an unexpected shape".into()),
        sqlx::Error::Encode(_) => StorageError::Other("could not encode a parameter".into()),
        _ => StorageError::Other("database driver error".into()),
    }
}

/// Writes the [`Backend`] impl for a store holding `pool: sqlx::Pool<$db>`.
macro_rules! sql_backend {
    ($store:ty, $db:ty, $sql:expr, $transient:path) => {
        impl $crate::store::sql::Backend for $store {
            type Conn = sqlx::pool::PoolConnection<$db>;

            const SQL: &'static $crate::store::sql::Statements = $sql;

            async fn acquire(&self) -> Result<Self::Conn, sqlx::Error> {
                self.pool.acquire().await
            }

            async fn execute(
                conn: &mut Self::Conn,
                sql: &'static str,
                params: &[$crate::store::sql::Param<'_>],
            ) -> Result<u64, sqlx::Error> {
                use sqlx::Executor as _;
                let query = bind_all(sqlx::query::<$db>(sql), params);
                Ok((&mut **conn).execute(query).await?.rows_affected())
            }

            async fn fetch_entry(
                conn: &mut Self::Conn,
                sql: &'static str,
                params: &[$crate::store::sql::Param<'_>],
            ) -> Result<Option<$crate::store::sql::Stored>, sqlx::Error> {
                use sqlx::{Executor as _, Row as _};
                let query = bind_all(sqlx::query::<$db>(sql), params);
                let Some(row) = (&mut **conn).fetch_optional(query).await? else {
                    return Ok(None);
                };
                Ok(Some($crate::store::sql::Stored {
                    value: row.try_get(0)?,
                    revision: row.try_get(1)?,
                    expires_at: row.try_get(2)?,
                }))
            }

            async fn fetch_keyed(
                conn: &mut Self::Conn,
                sql: &'static str,
                params: &[$crate::store::sql::Param<'_>],
            ) -> Result<Vec<(String, $crate::store::sql::Stored)>, sqlx::Error> {
                use sqlx::{Executor as _, Row as _};
                let query = bind_all(sqlx::query::<$db>(sql), params);
                let rows = (&mut **conn).fetch_all(query).await?;
                rows.iter()
                    .map(|row| {
                        let stored = $crate::store::sql::Stored {
                            value: row.try_get(1)?,
                            revision: row.try_get(2)?,
                            expires_at: row.try_get(3)?,
                        };
                        Ok((row.try_get(0)?, stored))
                    })
                    .collect()
            }

            fn transient(error: &dyn sqlx::error::DatabaseError) -> Option<oauth_core::StorageError> {
                $transient(error)
            }
        }

        fn bind_all<'q>(
            mut query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
            params: &[$crate::store::sql::Param<'_>],
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments> {
            use $crate::store::sql::Param;
            for param in params {
                query = match *param {
                    Param::Text(v) => query.bind(v),
                    Param::Blob(v) => query.bind(v),
                    Param::Int(v) => query.bind(v),
                    Param::NullableInt(v) => query.bind(v),
                };
            }
            query
        }
    };
}

pub(crate) use sql_backend;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bound_is_the_next_string_after_the_prefix_range() {
        assert_eq!(prefix_upper_bound("token/ab/").as_deref(), Some("token/ab0"));
        assert_eq!(prefix_upper_bound("a").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_upper_bound("\u{7F}").as_deref(), Some("\u{80}"));
    }

    #[test]
    fn upper_bound_orders_after_every_extension_in_byte_order() {
        for prefix in ["a", "user/", "\u{7F}", "é", "\u{FFFF}", "x\u{D7FF}"] {
            let upper = prefix_upper_bound(prefix).unwrap();
            for tail in ["", "\0", "z", "\u{7F}", "\u{80}", "\u{10FFFF}\u{10FFFF}"] {
                let key = format!("{prefix}{tail}");
                assert!(key.as_bytes() < upper.as_bytes(), "{key:?} < {upper:?}");
                assert!(key.as_bytes() >= prefix.as_bytes());
            }
        }
    }

    #[test]
    fn revisions_round_trip_bit_for_bit() {
        for r in [0, 1, u64::from(u32::MAX), i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX] {
            assert_eq!(revision_from_sql(revision_to_sql(r)), r);
        }
    }

    #[test]
    fn times_clamp_instead_of_wrapping() {
        assert_eq!(time_to_sql(UnixTime::from_secs(1_700_000_000)), 1_700_000_000);
        assert_eq!(time_to_sql(UnixTime::from_secs(u64::MAX)), i64::MAX);
        assert_eq!(time_from_sql(-5), UnixTime::from_secs(0));
    }
}
