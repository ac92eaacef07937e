//! The Workers KV store: [`KvStore`], an [`oauth_core::Driver`] over a KV
//! namespace binding.

use std::future::Future;

use oauth_core::{Driver, FetchError, FetchRequest, FetchResponse, Reply, StorageError, StorageRequest};
use wasm_bindgen::JsValue;
use worker::kv::KvError;

use crate::record::RecordMeta;
use crate::store::{KvBackend, KvDriver, KvFailure, ListPage, ListedKey, Stored};

/// The core's records in a Workers KV namespace.
///
/// Each record is one KV pair under the core's key: the value is the core's
/// bytes, the revision and logical expiry are the pair's metadata, and KV's
/// own expiry is set to the logical one, raised to KV's 60-second minimum.
/// Expiry is judged by each request's `now`, never by KV's garbage
/// collection, so a record is never seen after its expiry.
///
/// `Put IfAbsent`, `Put IfRevision` and `Take` read and then write: KV has
/// no conditional write, so they are not atomic. `docs/adapter-worker.md`
/// says exactly what that allows; declare it to the conformance suite with
/// [`KvStore::CAPABILITIES`].
///
/// Cheap to clone: it holds JavaScript handles.
#[derive(Clone, Debug)]
pub struct KvStore {
    driver: KvDriver<WorkersKv>,
}

impl KvStore {
    /// What Workers KV guarantees, for
    /// [`ConformanceOptions::with_capabilities`](oauth_core::testing::ConformanceOptions::with_capabilities)
    /// (with the `testing` feature of oauth-core). Reads after writes are
    /// consistent where the write happened (KV serves a colo its own writes);
    /// other colos may see a change up to about 60 s late.
    #[cfg(feature = "testing")]
    pub const CAPABILITIES: oauth_core::testing::Capabilities = {
        let mut caps = oauth_core::testing::Capabilities::ALL;
        caps.atomic_conditional_writes = false;
        caps.atomic_take = false;
        caps
    };

    /// The store over the KV namespace bound as `binding` (in
    /// `wrangler.toml`, `[[kv_namespaces]] binding = "…"`).
    pub fn from_env(env: &worker::Env, binding: &str) -> worker::Result<Self> {
        Ok(Self::new(env.kv(binding)?))
    }

    /// The store over a KV namespace handle.
    pub fn new(kv: worker::kv::KvStore) -> Self {
        Self { driver: KvDriver::new(WorkersKv { kv }) }
    }

    /// The KV namespace, for the application's own records. Keys the core
    /// writes start with `client/`, `grant/`, `token/` or `user/`; keep the
    /// application's elsewhere (the example uses `app/`).
    pub fn namespace(&self) -> &worker::kv::KvStore {
        &self.driver.backend().kv
    }

    /// Perform one batch of the core's storage operations.
    pub async fn execute(&self, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        self.driver.execute(request).await
    }
}

impl Driver for KvStore {
    fn storage(&mut self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> {
        self.driver.execute(request)
    }

    /// Client ID metadata documents, with [`WorkerFetcher`](crate::WorkerFetcher).
    async fn fetch(&mut self, request: FetchRequest) -> Result<FetchResponse, FetchError> {
        crate::WorkerFetcher::new().fetch(request).await
    }
}

/// How long a colo may serve a read from its cache: KV's minimum (its
/// default is 60 s). Another colo's write, a revocation or a rotation, is
/// seen here at most this long after it reached this colo's KV, instead of
/// twice that.
const READ_CACHE_TTL_SECS: u64 = 30;

/// The KV calls, on a namespace binding.
#[derive(Clone, Debug)]
pub(crate) struct WorkersKv {
    kv: worker::kv::KvStore,
}

impl KvBackend for WorkersKv {
    async fn get(&self, key: &str) -> Result<Option<Stored>, KvFailure> {
        // The metadata is parsed here rather than by the binding's serde
        // layer, so that foreign metadata reads as "not ours" instead of
        // failing the whole call.
        let (value, meta) = self
            .kv
            .get(key)
            .cache_ttl(READ_CACHE_TTL_SECS)
            .bytes_with_metadata::<serde_json::Value>()
            .await
            .map_err(failure)?;
        Ok(value.map(|v| (v, meta.and_then(|m| serde_json::from_value(m).ok()))))
    }

    async fn put(&self, key: &str, value: Vec<u8>, meta: RecordMeta, ttl: Option<u64>) -> Result<(), KvFailure> {
        let mut put = self.kv.put_bytes(key, &value).map_err(failure)?.metadata(meta).map_err(failure)?;
        if let Some(ttl) = ttl {
            put = put.expiration_ttl(ttl);
        }
        put.execute().await.map_err(failure)
    }

    async fn delete(&self, key: &str) -> Result<(), KvFailure> {
        self.kv.delete(key).await.map_err(failure)
    }

    async fn list(&self, prefix: &str, limit: u32, cursor: Option<String>) -> Result<ListPage, KvFailure> {
        let mut list = self.kv.list().prefix(prefix.to_owned()).limit(u64::from(limit));
        if let Some(cursor) = cursor {
            list = list.cursor(cursor);
        }
        let page = list.execute().await.map_err(failure)?;
        let keys = page
            .keys
            .into_iter()
            .map(|k| ListedKey { name: k.name, meta: k.metadata.and_then(|m| serde_json::from_value(m).ok()) })
            .collect();
        // KV may hand back a cursor on the last page too; completeness is
        // what `list_complete` says.
        let cursor = if page.list_complete { None } else { page.cursor.filter(|c| !c.is_empty()) };
        Ok(ListPage { keys, cursor })
    }
}

/// A KV error as the driver reports it. KV signals rate limiting (too many
/// writes to one key per second, or the account's limits) with a 429 in the
/// message; that one is retryable.
fn failure(e: KvError) -> KvFailure {
    let message = match &e {
        KvError::JavaScript(v) => js_message(v),
        other => other.to_string(),
    };
    if message.contains("429") || message.contains("Too Many Requests") {
        KvFailure::RateLimited
    } else {
        KvFailure::Other(format!("Workers KV: {message}"))
    }
}

/// The message of a thrown JavaScript value.
pub(crate) fn js_message(v: &JsValue) -> String {
    if let Some(s) = v.as_string() {
        return s;
    }
    match js_sys::Reflect::get(v, &JsValue::from_str("message")).ok().and_then(|m| m.as_string()) {
        Some(m) => m,
        None => format!("{v:?}"),
    }
}
