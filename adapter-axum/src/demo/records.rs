//! The demo's own records (todos, sign-in pages, browser sessions, failed
//! sign-in counters), kept in the same [`Store`] as the OAuth records,
//! through the core's storage operations.
//!
//! Nothing here needs more than the contract every conforming backend gives
//! (`oauth_core::storage`): single-key reads and writes, `IfAbsent` and
//! `IfRevision` compare-and-swap, an atomic `Take`, expiry judged by the
//! request's time, and ordered prefix listings. So the application runs
//! unchanged on SQLite, PostgreSQL, DynamoDB or the in-memory store, and
//! several processes (replicas, Lambda instances) share its state.
//!
//! Keys start with `demo-` so they can never meet the core's (`client/`,
//! `grant/`, `token/`, `user/`), and have the shape `kind/{id}` or
//! `kind/{owner}/{id}`: the DynamoDB store partitions on the first two
//! segments, so each user's todos form one partition that a listing reads.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use oauth_core::{Condition, Entry, Reply, StorageError, StorageOp, StorageRequest, UnixTime};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{EnvironmentError, OAuth, Store};

/// The encoding version written as the first byte of every demo value, as
/// the core does with its own records.
const FORMAT_VERSION: u8 = 1;

/// Entries fetched per listing page.
const LIST_PAGE: u32 = 100;

/// A [`Store`] behind a trait object, so the demo's handlers, MCP server
/// and pages are written once and compiled once, whatever store the
/// application chose. Each batch costs one boxed future, which is nothing
/// next to the round trip it performs.
#[derive(Clone)]
pub(crate) struct AnyStore(Arc<dyn DynStore>);

impl AnyStore {
    pub(crate) fn new<S: Store>(store: S) -> Self {
        Self(Arc::new(store))
    }
}

impl std::fmt::Debug for AnyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnyStore")
    }
}

type BatchFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Reply>, StorageError>> + Send + 'a>>;

/// The object-safe form of [`Store`].
trait DynStore: Send + Sync + 'static {
    fn execute_boxed(&self, request: StorageRequest) -> BatchFuture<'_>;
}

impl<S: Store> DynStore for S {
    fn execute_boxed(&self, request: StorageRequest) -> BatchFuture<'_> {
        Box::pin(self.execute(request))
    }
}

impl Store for AnyStore {
    fn execute(&self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> + Send {
        self.0.execute_boxed(request)
    }
}

/// Why a record operation failed. Both are the server's trouble, never the
/// caller's: logged, and answered without detail.
#[derive(Debug)]
pub(crate) enum RecordError {
    /// The store failed.
    Storage(StorageError),
    /// The clock or the generator failed.
    Environment(EnvironmentError),
    /// A stored value did not decode, or a reply had the wrong shape.
    Corrupt(&'static str),
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Storage(e) => write!(f, "{e}"),
            Self::Environment(e) => write!(f, "{e}"),
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

/// Typed access to the demo's records, at the time the OAuth handle reads.
#[derive(Clone, Debug)]
pub(crate) struct Records {
    oauth: OAuth<AnyStore>,
}

impl Records {
    pub(crate) fn new(oauth: OAuth<AnyStore>) -> Self {
        Self { oauth }
    }

    pub(crate) fn now(&self) -> Result<UnixTime, RecordError> {
        self.oauth.now().map_err(RecordError::Environment)
    }

    async fn one(&self, now: UnixTime, op: StorageOp) -> Result<Reply, RecordError> {
        let replies = self.oauth.store().execute(StorageRequest { now, ops: vec![op] }).await;
        let mut replies = replies.map_err(RecordError::Storage)?;
        match (replies.pop(), replies.is_empty()) {
            (Some(reply), true) => Ok(reply),
            _ => Err(RecordError::Corrupt("a batch of one operation got another number of replies")),
        }
    }

    /// The live record under `key`.
    pub(crate) async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>, RecordError> {
        let now = self.now()?;
        match self.one(now, StorageOp::Get { key: key.to_owned() }).await? {
            Reply::Entry(entry) => entry.map(decode_entry).transpose(),
            _ => Err(RecordError::Corrupt("Get got a reply that is not an entry")),
        }
    }

    /// Write `value` at `revision`, alive until `expires_at` (or for ever),
    /// when `condition` holds; whether it was written.
    pub(crate) async fn put<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        revision: u64,
        expires_at: Option<UnixTime>,
        condition: Condition,
    ) -> Result<bool, RecordError> {
        let now = self.now()?;
        let mut bytes = vec![FORMAT_VERSION];
        serde_json::to_writer(&mut bytes, value).map_err(|_| RecordError::Corrupt("a record did not encode"))?;
        let op = StorageOp::Put { key: key.to_owned(), value: bytes, revision, expires_at, condition };
        match self.one(now, op).await? {
            Reply::Written(written) => Ok(written),
            _ => Err(RecordError::Corrupt("Put got a reply that is not Written")),
        }
    }

    /// Atomically read and delete the live record under `key`: of several
    /// concurrent callers at most one gets it.
    pub(crate) async fn take<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, RecordError> {
        let now = self.now()?;
        match self.one(now, StorageOp::Take { key: key.to_owned() }).await? {
            Reply::Entry(entry) => Ok(entry.map(decode_entry).transpose()?.map(|v| v.value)),
            _ => Err(RecordError::Corrupt("Take got a reply that is not an entry")),
        }
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), RecordError> {
        let now = self.now()?;
        match self.one(now, StorageOp::Delete { key: key.to_owned() }).await? {
            Reply::Done => Ok(()),
            _ => Err(RecordError::Corrupt("Delete got a reply that is not Done")),
        }
    }

    /// The live records under `prefix`, in key order, at most `max` of them
    /// (the listing stops there, so a caller can also count up to a cap).
    pub(crate) async fn list<T: DeserializeOwned>(
        &self,
        prefix: &str,
        max: usize,
    ) -> Result<Vec<(String, Versioned<T>)>, RecordError> {
        let mut out = Vec::new();
        let mut cursor = None;
        // A conforming backend's pages make progress, and every page but the
        // last holds an entry unless expired records fill it (the demo lists
        // only todos, which never expire); the bound only keeps a broken
        // backend from looping for ever.
        for _ in 0..max.saturating_add(64) {
            if out.len() >= max {
                break;
            }
            let now = self.now()?;
            let limit = u32::try_from(max - out.len()).unwrap_or(u32::MAX).min(LIST_PAGE);
            let op = StorageOp::List { prefix: prefix.to_owned(), cursor: cursor.take(), limit };
            let Reply::Listed { entries, cursor: next } = self.one(now, op).await? else {
                return Err(RecordError::Corrupt("List got a reply that is not a listing"));
            };
            for (key, entry) in entries {
                out.push((key, decode_entry(entry)?));
            }
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        out.truncate(max);
        Ok(out)
    }
}

fn decode_entry<T: DeserializeOwned>(entry: Entry) -> Result<Versioned<T>, RecordError> {
    let value = match entry.value.split_first() {
        Some((&FORMAT_VERSION, json)) => {
            serde_json::from_slice(json).map_err(|_| RecordError::Corrupt("a record did not decode"))?
        }
        _ => return Err(RecordError::Corrupt("a record has an unknown format version")),
    };
    Ok(Versioned { value, revision: entry.revision })
}

/// `user_id` as one key segment: base64url, so any user id (slashes and
/// all) stays inside its segment, as the core does for its user index.
pub(crate) fn user_segment(user_id: &str) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::encode_string(user_id.as_bytes())
}
