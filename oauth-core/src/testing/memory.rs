//! A complete in-memory store.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::flow::BlockingStore;
use crate::storage::{Condition, Entry, Reply, StorageError, StorageOp, StorageRequest};
use crate::time::UnixTime;

/// An in-memory [`BlockingStore`] with exactly the semantics the storage
/// module specifies: expiry judged by the request's `now`, compare-and-swap
/// on revisions, atomic take, ordered prefix listing with a cursor.
///
/// Not shared across threads by itself; wrap it in a mutex to share. Each
/// batch runs under `&mut self`, so every operation is trivially atomic.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    data: BTreeMap<String, Entry>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of records stored, live or expired-but-not-purged.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Drop records that are dead at `now`.
    pub fn purge_expired(&mut self, now: UnixTime) {
        self.data.retain(|_, e| !e.expires_at.is_some_and(|t| now.has_reached(t)));
    }

    /// Every live key at `now`, for assertions in tests.
    pub fn live_keys(&self, now: UnixTime) -> Vec<String> {
        self.data.iter().filter(|(_, e)| alive(e, now)).map(|(k, _)| k.clone()).collect()
    }

    /// Every stored value, for assertions that no secret is at rest.
    pub fn raw_values(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.data.iter().map(|(k, e)| (k.as_str(), e.value.as_slice()))
    }

    fn live(&self, key: &str, now: UnixTime) -> Option<&Entry> {
        self.data.get(key).filter(|e| alive(e, now))
    }

    /// Perform one operation.
    pub fn apply(&mut self, op: StorageOp, now: UnixTime) -> Reply {
        match op {
            StorageOp::Get { key } => Reply::Entry(self.live(&key, now).cloned()),
            StorageOp::Put { key, value, revision, expires_at, condition } => {
                let current = self.live(&key, now);
                let ok = match condition {
                    Condition::IfAbsent => current.is_none(),
                    Condition::IfRevision(r) => current.is_some_and(|e| e.revision == r),
                    _ => true,
                };
                if ok {
                    self.data.insert(key, Entry { value, revision, expires_at });
                }
                Reply::Written(ok)
            }
            StorageOp::Take { key } => {
                let was_live = self.live(&key, now).is_some();
                let removed = self.data.remove(&key);
                Reply::Entry(if was_live { removed } else { None })
            }
            StorageOp::Delete { key } => {
                self.data.remove(&key);
                Reply::Done
            }
            StorageOp::List { prefix, cursor, limit } => {
                let start = match &cursor {
                    Some(c) if c.as_str() >= prefix.as_str() => Bound::Excluded(c.clone()),
                    _ => Bound::Included(prefix.clone()),
                };
                let limit = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
                let mut entries = Vec::new();
                let mut more = false;
                for (k, e) in self.data.range((start, Bound::Unbounded)) {
                    if !k.starts_with(&prefix) {
                        break;
                    }
                    if !alive(e, now) {
                        continue;
                    }
                    if entries.len() == limit {
                        more = true;
                        break;
                    }
                    entries.push((k.clone(), e.clone()));
                }
                let cursor = if more { entries.last().map(|(k, _)| k.clone()) } else { None };
                Reply::Listed { entries, cursor }
            }
        }
    }
}

fn alive(e: &Entry, now: UnixTime) -> bool {
    !e.expires_at.is_some_and(|t| now.has_reached(t))
}

impl BlockingStore for MemoryStore {
    fn execute(&mut self, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        let now = request.now;
        Ok(request.ops.into_iter().map(|op| self.apply(op, now)).collect())
    }
}
