//! The example's own records (todos, sign-in pages, sessions, failed
//! sign-in counters), kept in the same store as the OAuth records (the KV
//! namespace, or the Durable Object with `MCP_STORE=durable`), under keys
//! starting with `app/` (the core's start with `client/`, `grant/`, `token/`
//! or `user/`).
//!
//! Written against a one-method [`Storage`] trait so the logic also runs on
//! the host, over the core's in-memory store, in unit tests.

use std::future::Future;

use oauth_core::{Condition, Entry, Reply, StorageError, StorageOp, StorageRequest, UnixTime};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Performs one batch of the core's storage operations.
pub(crate) trait Storage {
    /// See [`oauth_core::Driver::storage`].
    fn execute(&self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>>;
}

#[cfg(target_arch = "wasm32")]
impl Storage for adapter_worker::Store {
    fn execute(&self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> {
        Self::execute(self, request)
    }
}

/// Why a record operation failed: always the server's trouble, logged and
/// answered without detail.
#[derive(Debug)]
pub(crate) enum RecordError {
    /// The store failed.
    Storage(StorageError),
    /// A stored value did not decode, or a reply had the wrong shape.
    Corrupt(&'static str),
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Storage(e) => write!(f, "{e}"),
            Self::Corrupt(what) => write!(f, "unexpected stored data: {what}"),
        }
    }
}

/// A decoded record with the revision it was read at.
#[derive(Debug)]
pub(crate) struct Versioned<T> {
    pub(crate) value: T,
    pub(crate) revision: u64,
}

async fn one<S: Storage>(store: &S, now: UnixTime, op: StorageOp) -> Result<Reply, RecordError> {
    let mut replies = store.execute(StorageRequest { now, ops: vec![op] }).await.map_err(RecordError::Storage)?;
    match (replies.pop(), replies.is_empty()) {
        (Some(reply), true) => Ok(reply),
        _ => Err(RecordError::Corrupt("a batch of one operation got another number of replies")),
    }
}

/// The live record under `key` at `now`.
pub(crate) async fn get<T: DeserializeOwned, S: Storage>(
    store: &S,
    key: &str,
    now: UnixTime,
) -> Result<Option<Versioned<T>>, RecordError> {
    match one(store, now, StorageOp::Get { key: key.to_owned() }).await? {
        Reply::Entry(entry) => entry.map(decode).transpose(),
        _ => Err(RecordError::Corrupt("Get got a reply that is not an entry")),
    }
}

/// Write `value` at `revision`, alive until `expires_at` (or for ever), when
/// `condition` holds; whether it was written.
pub(crate) async fn put<T: Serialize, S: Storage>(
    store: &S,
    key: &str,
    value: &T,
    revision: u64,
    expires_at: Option<UnixTime>,
    condition: Condition,
    now: UnixTime,
) -> Result<bool, RecordError> {
    let bytes = serde_json::to_vec(value).map_err(|_| RecordError::Corrupt("a record did not encode"))?;
    let op = StorageOp::Put { key: key.to_owned(), value: bytes, revision, expires_at, condition };
    match one(store, now, op).await? {
        Reply::Written(written) => Ok(written),
        _ => Err(RecordError::Corrupt("Put got a reply that is not Written")),
    }
}

/// Read and delete the live record under `key`.
pub(crate) async fn take<T: DeserializeOwned, S: Storage>(
    store: &S,
    key: &str,
    now: UnixTime,
) -> Result<Option<T>, RecordError> {
    match one(store, now, StorageOp::Take { key: key.to_owned() }).await? {
        Reply::Entry(entry) => Ok(entry.map(decode).transpose()?.map(|v| v.value)),
        _ => Err(RecordError::Corrupt("Take got a reply that is not an entry")),
    }
}

/// Delete `key` if present.
pub(crate) async fn delete<S: Storage>(store: &S, key: &str, now: UnixTime) -> Result<(), RecordError> {
    match one(store, now, StorageOp::Delete { key: key.to_owned() }).await? {
        Reply::Done => Ok(()),
        _ => Err(RecordError::Corrupt("Delete got a reply that is not Done")),
    }
}

fn decode<T: DeserializeOwned>(entry: Entry) -> Result<Versioned<T>, RecordError> {
    let value = serde_json::from_slice(&entry.value).map_err(|_| RecordError::Corrupt("a record did not decode"))?;
    Ok(Versioned { value, revision: entry.revision })
}

/// `user_id` as one key segment: base64url, so any user id (slashes and all)
/// stays inside its segment, as the core does for its own user index.
pub(crate) fn user_segment(user_id: &str) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::encode_string(user_id.as_bytes())
}

#[cfg(test)]
pub(crate) mod memory {
    //! The core's in-memory store behind [`Storage`], for host tests.

    use std::cell::RefCell;
    use std::future::Future;

    use oauth_core::testing::MemoryStore;
    use oauth_core::{BlockingStore, Reply, StorageError, StorageRequest};

    use super::Storage;

    #[derive(Default)]
    pub(crate) struct Memory(pub(crate) RefCell<MemoryStore>);

    impl Storage for Memory {
        fn execute(&self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> {
            std::future::ready(self.0.borrow_mut().execute(request))
        }
    }
}
