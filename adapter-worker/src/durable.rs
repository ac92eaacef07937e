//! The Durable Object store: [`DurableStore`] sends each storage batch to
//! one Durable Object, [`OAuthStoreObject`], which runs it against its
//! SQLite storage.
//!
//! A Durable Object runs one event at a time, and the whole batch is
//! executed with synchronous SQL calls, no `await` in between: nothing else
//! can touch the records while a batch runs. So `Put IfAbsent`,
//! `Put IfRevision` and `Take` are atomic, and every read sees every
//! completed write, from any colo: the guarantees PostgreSQL and DynamoDB
//! give, which Workers KV cannot.
//!
//! The price: every storage batch is a round trip to the object's location,
//! and one object serialises all of them (see `docs/adapter-worker.md` for
//! throughput and the hybrid alternatives).

use oauth_core::{Reply, StorageError, StorageRequest};
use worker::{Env, Method, Request, RequestInit};

use crate::kv::js_message;
use crate::wire::{WireRequest, WireResponse};

/// The object name used unless told otherwise: one object holds every
/// record.
pub const DEFAULT_OBJECT_NAME: &str = "oauth-core";

/// The core's records in a Durable Object with SQLite storage: atomic and
/// strongly consistent (every
/// [`Capability`](oauth_core::testing::Capability) of the conformance suite).
///
/// The Worker that hosts the object must export [`OAuthStoreObject`]
/// (adapter-worker's `durable-object` feature) and bind it, with a SQLite
/// migration, in `wrangler.toml`:
///
/// ```toml
/// [[durable_objects.bindings]]
/// name = "OAUTH_STORE"
/// class_name = "OAuthStoreObject"
///
/// [[migrations]]
/// tag = "v1"
/// new_sqlite_classes = ["OAuthStoreObject"]
/// ```
///
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct DurableStore {
    namespace: worker::ObjectNamespace,
    object: String,
}

impl DurableStore {
    /// The store in the Durable Object namespace bound as `binding`, in the
    /// object named [`DEFAULT_OBJECT_NAME`].
    pub fn from_env(env: &Env, binding: &str) -> worker::Result<Self> {
        Ok(Self { namespace: env.durable_object(binding)?, object: DEFAULT_OBJECT_NAME.to_owned() })
    }

    /// Keep the records in the object named `name` instead (several
    /// providers, or test runs, can share a namespace this way).
    #[must_use]
    pub fn object_name(mut self, name: impl Into<String>) -> Self {
        self.object = name.into();
        self
    }

    /// Perform one batch of the core's storage operations in the object.
    pub async fn execute(&self, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        let expected = request.ops.len();
        let wire = WireRequest::encode(&request)
            .ok_or_else(|| StorageError::Other("a storage operation this adapter does not know".into()))?;
        let body = serde_json::to_string(&wire).map_err(|e| StorageError::Other(format!("batch: {e}")))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body.into()));
        // The URL is never resolved: a stub delivers the request to the object.
        let request = Request::new_with_init("https://oauth-store.internal/batch", &init).map_err(unavailable)?;
        let stub = self.namespace.get_by_name(&self.object).map_err(unavailable)?;
        let mut response = stub.fetch_with_request(request).await.map_err(unavailable)?;
        let bytes = response.bytes().await.map_err(unavailable)?;
        if response.status_code() != 200 {
            return Err(StorageError::Other(format!("store object answered {}", response.status_code())));
        }
        let wire: WireResponse = serde_json::from_slice(&bytes)
            .map_err(|_| StorageError::Other("the store object sent a malformed answer".into()))?;
        wire.decode(expected)
    }
}

/// The object could not be reached, or reset (an overload, a deployment, a
/// restart): the batch may be retried.
fn unavailable(e: worker::Error) -> StorageError {
    let message = match &e {
        worker::Error::JsError(m) => m.clone(),
        worker::Error::Internal(v) => js_message(v),
        other => other.to_string(),
    };
    worker::console_error!("store object unreachable: {message}");
    StorageError::Unavailable
}

#[cfg(feature = "durable-object")]
pub use object::OAuthStoreObject;

// `#[durable_object]` generates the class's JavaScript-facing constructor and
// `fetch` as undocumented public items.
#[cfg(feature = "durable-object")]
#[allow(missing_docs)]
mod object {
    use oauth_core::{Condition, Entry, Reply, StorageError, StorageOp, StorageRequest, UnixTime};
    use worker::{DurableObject, Env, Request, Response, SqlStorage, SqlStorageValue, State, durable_object};

    use crate::record::is_live;
    use crate::sql::{SCHEMA, clamp, prefix_upper_bound};
    use crate::wire::{WireRequest, WireResponse};

    /// Listing pages are capped here whatever the caller asks: one batch
    /// must not hold the object for long.
    const MAX_LIST: u32 = 1000;
    /// Rows physically removed per batch, by the object's own clock.
    const PURGE_BATCH: i64 = 64;
    /// How long after its expiry a record is physically removed. Liveness is
    /// judged by each request's `now`; the margin keeps a request whose
    /// clock trails the object's from losing a record it still sees alive.
    const PURGE_MARGIN_SECS: u64 = 300;

    /// The Durable Object class behind [`DurableStore`](super::DurableStore).
    /// Export it from the Worker (this crate's `durable-object` feature does)
    /// and bind it with a `new_sqlite_classes` migration.
    #[durable_object]
    pub struct OAuthStoreObject {
        state: State,
    }

    impl DurableObject for OAuthStoreObject {
        fn new(state: State, _env: Env) -> Self {
            // Idempotent, synchronous, and run before any request is
            // delivered to this instance.
            for statement in SCHEMA.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                if let Err(e) = state.storage().sql().exec(statement, None) {
                    worker::console_error!("oauth store schema: {e}");
                }
            }
            Self { state }
        }

        async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
            let body = req.bytes().await?;
            // Everything after this line is synchronous: the batch runs with
            // nothing interleaved, which is the whole point of this object.
            let answer = match serde_json::from_slice::<WireRequest>(&body).ok().and_then(WireRequest::decode) {
                Some(request) => {
                    let sql = self.state.storage().sql();
                    let result = execute(&sql, request);
                    purge(&sql);
                    WireResponse::encode(&result)
                }
                None => WireResponse::Err { message: "malformed batch".into(), retryable: false },
            };
            Response::from_json(&answer)
        }
    }

    fn sql_error(e: worker::Error) -> StorageError {
        StorageError::Other(format!("sqlite: {e}"))
    }

    fn execute(sql: &SqlStorage, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        let now = request.now;
        request.ops.into_iter().map(|op| apply(sql, op, now)).collect()
    }

    fn apply(sql: &SqlStorage, op: StorageOp, now: UnixTime) -> Result<Reply, StorageError> {
        match op {
            StorageOp::Get { key } => Ok(Reply::Entry(live(sql, &key, now)?)),
            StorageOp::Put { key, value, revision, expires_at, condition } => {
                let write = match condition {
                    Condition::Always => true,
                    Condition::IfAbsent => live(sql, &key, now)?.is_none(),
                    Condition::IfRevision(r) => live(sql, &key, now)?.is_some_and(|e| e.revision == r),
                    _ => return Err(StorageError::Other("a put condition this adapter does not know".into())),
                };
                if write {
                    let exp = expires_at.map(UnixTime::as_secs);
                    sql.exec(
                        "INSERT INTO oauth_records (key, value, revision, expires_exact, expires_at) \
                         VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                         revision = excluded.revision, expires_exact = excluded.expires_exact, \
                         expires_at = excluded.expires_at",
                        vec![
                            key.into(),
                            SqlStorageValue::Blob(value),
                            revision.to_string().into(),
                            exp.map(|t| t.to_string()).into(),
                            exp.map(clamp).into(),
                        ],
                    )
                    .map_err(sql_error)?;
                }
                Ok(Reply::Written(write))
            }
            StorageOp::Take { key } => {
                let entry = live(sql, &key, now)?;
                if entry.is_some() {
                    delete(sql, &key)?;
                }
                Ok(Reply::Entry(entry))
            }
            StorageOp::Delete { key } => {
                delete(sql, &key)?;
                Ok(Reply::Done)
            }
            StorageOp::List { prefix, cursor, limit } => list(sql, &prefix, cursor, limit, now),
            _ => Err(StorageError::Other("a storage operation this adapter does not know".into())),
        }
    }

    fn delete(sql: &SqlStorage, key: &str) -> Result<(), StorageError> {
        sql.exec("DELETE FROM oauth_records WHERE key = ?", vec![key.into()]).map_err(sql_error)?;
        Ok(())
    }

    /// A row's value, revision and exact expiry.
    fn entry(row: Vec<SqlStorageValue>) -> Result<Entry, StorageError> {
        let corrupt = || StorageError::Other("a stored row does not decode".into());
        let mut row = row.into_iter();
        let Some(SqlStorageValue::Blob(value)) = row.next() else {
            return Err(corrupt());
        };
        let revision = match row.next() {
            Some(SqlStorageValue::String(r)) => r.parse().map_err(|_| corrupt())?,
            _ => return Err(corrupt()),
        };
        let expires_at = match row.next() {
            Some(SqlStorageValue::Null) => None,
            Some(SqlStorageValue::String(t)) => Some(UnixTime::from_secs(t.parse().map_err(|_| corrupt())?)),
            _ => return Err(corrupt()),
        };
        Ok(Entry { value, revision, expires_at })
    }

    fn live(sql: &SqlStorage, key: &str, now: UnixTime) -> Result<Option<Entry>, StorageError> {
        let cursor = sql
            .exec("SELECT value, revision, expires_exact FROM oauth_records WHERE key = ?", vec![key.into()])
            .map_err(sql_error)?;
        match cursor.raw().next() {
            None => Ok(None),
            Some(row) => {
                let entry = entry(row.map_err(sql_error)?)?;
                Ok(is_live(entry.expires_at, now).then_some(entry))
            }
        }
    }

    fn list(
        sql: &SqlStorage,
        prefix: &str,
        cursor: Option<String>,
        limit: u32,
        now: UnixTime,
    ) -> Result<Reply, StorageError> {
        let limit = limit.clamp(1, MAX_LIST);
        let mut query = String::from("SELECT key, value, revision, expires_exact FROM oauth_records WHERE ");
        let mut bindings: Vec<SqlStorageValue> = Vec::new();
        // Resume strictly after the cursor (the last key returned), or start
        // at the prefix itself.
        match cursor {
            Some(c) if c.as_str() >= prefix => {
                query.push_str("key > ?");
                bindings.push(c.into());
            }
            _ => {
                query.push_str("key >= ?");
                bindings.push(prefix.into());
            }
        }
        if let Some(upper) = prefix_upper_bound(prefix) {
            query.push_str(" AND key < ?");
            bindings.push(upper.into());
        }
        // Dead rows are skipped in SQL, so a page is never short because of
        // them; the exact check below agrees for every real clock.
        query.push_str(" AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?");
        bindings.push(clamp(now.as_secs()).into());
        bindings.push((i64::from(limit) + 1).into());
        let rows = sql.exec(&query, bindings).map_err(sql_error)?;
        let mut entries = Vec::new();
        let mut more = false;
        for row in rows.raw() {
            let mut row = row.map_err(sql_error)?;
            if entries.len() == limit as usize {
                more = true;
                break;
            }
            let key = match row.first() {
                Some(SqlStorageValue::String(k)) => k.clone(),
                _ => return Err(StorageError::Other("a stored key does not decode".into())),
            };
            let entry = entry(row.split_off(1))?;
            if is_live(entry.expires_at, now) {
                entries.push((key, entry));
            }
        }
        let cursor = if more { entries.last().map(|(k, _)| k.clone()) } else { None };
        Ok(Reply::Listed { entries, cursor })
    }

    /// Remove a few rows long dead by the object's own clock. Never by a
    /// request's `now`: a caller with a clock far ahead (a test's virtual
    /// time) must not erase records that are alive for everyone else.
    fn purge(sql: &SqlStorage) {
        let clock = worker::Date::now().as_millis() / 1000;
        let before = clamp(clock.saturating_sub(PURGE_MARGIN_SECS));
        let result = sql.exec(
            "DELETE FROM oauth_records WHERE key IN (SELECT key FROM oauth_records \
             WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?)",
            vec![before.into(), PURGE_BATCH.into()],
        );
        if let Err(e) = result {
            worker::console_error!("oauth store purge: {e}");
        }
    }
}
