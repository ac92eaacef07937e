//! The storage vocabulary: what a flow asks a backend to do.
//!
//! A flow never touches a database. It yields a [`StorageRequest`], a short
//! ordered batch of [`StorageOp`]s, and waits for one [`Reply`] per operation.
//! Values are opaque bytes that the core encodes (see `records`), so the
//! in-memory store, SQLite, PostgreSQL, DynamoDB and Workers KV all hold the
//! very same records.
//!
//! # Semantics every backend must give
//!
//! * **Expiry.** A record written with `expires_at = Some(t)` is visible while
//!   `request.now < t` and is absent from `now >= t` on, for every operation,
//!   whether or not the backend has physically removed it yet.
//! * **Revisions.** Every record carries a revision number chosen by the core.
//!   [`Condition::IfRevision`] writes only when the stored, live record has
//!   exactly that revision; this is the compare-and-swap the core builds
//!   single-use codes and refresh rotation on.
//! * **Batches.** The operations of one request are independent and are run
//!   in order. A backend may run them concurrently or in one transaction, but
//!   no operation's outcome may depend on another in the same batch.
//!   If an operation fails the driver reports [`StorageError`] for the whole
//!   batch; earlier operations may have been applied, and every flow is written
//!   so that such a partial batch grants nothing.
//!
//! # What must be atomic
//!
//! | operation | needed for | on a backend without it |
//! |---|---|---|
//! | `Put` with `IfAbsent` | fresh ids never overwrite (clients, grants); single-use `private_key_jwt` assertions (`jti`) | ids are 128-bit random; a collision is negligible. A replayed assertion may pass twice inside the backend's consistency window (Workers KV) |
//! | `Put` with `IfRevision` | code redemption, refresh rotation | two racing redemptions may both win (Workers KV) |
//! | `Take` | revocation takes the grant first, so it ends at once | read-then-delete: a narrow race window |
//!
//! PostgreSQL runs each as one conditional statement, DynamoDB as one
//! conditional write; Workers KV cannot and its adapter documents the gap.

use crate::time::UnixTime;

/// One operation on the key-value store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageOp {
    /// Read a live record. Replies [`Reply::Entry`].
    Get {
        /// The record's key.
        key: String,
    },
    /// Write a record. Replies [`Reply::Written`].
    Put {
        /// The record's key.
        key: String,
        /// The encoded record.
        value: Vec<u8>,
        /// The revision the record will carry after this write.
        revision: u64,
        /// When the record stops being visible; `None` keeps it forever.
        expires_at: Option<UnixTime>,
        /// When to write at all.
        condition: Condition,
    },
    /// Atomically read and delete a live record. Replies [`Reply::Entry`]
    /// with what was deleted; of many concurrent takes at most one sees it.
    Take {
        /// The record's key.
        key: String,
    },
    /// Delete a record if present. Replies [`Reply::Done`].
    Delete {
        /// The record's key.
        key: String,
    },
    /// List live records whose key starts with `prefix`, in ascending key
    /// order, at most `limit` of them, after `cursor` when given.
    /// Replies [`Reply::Listed`].
    List {
        /// The key prefix.
        prefix: String,
        /// Resume after this point, as returned by a previous listing.
        cursor: Option<String>,
        /// The most entries to return (at least one).
        limit: u32,
    },
}

impl StorageOp {
    /// The key (or prefix, for `List`) the operation addresses.
    pub fn key(&self) -> &str {
        match self {
            Self::Get { key } | Self::Put { key, .. } | Self::Take { key } | Self::Delete { key } => key,
            Self::List { prefix, .. } => prefix,
        }
    }

    /// True for operations that may change stored data.
    pub fn is_write(&self) -> bool {
        matches!(self, Self::Put { .. } | Self::Take { .. } | Self::Delete { .. })
    }
}

/// When a [`StorageOp::Put`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Condition {
    /// Unconditionally, replacing any record.
    Always,
    /// Only when no live record exists under the key.
    IfAbsent,
    /// Only when a live record exists with exactly this revision.
    IfRevision(u64),
}

/// A batch of operations for the driver to perform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageRequest {
    /// The time the flow runs at; the store judges expiry by it, not by its
    /// own clock, so virtual time in tests and real time in production agree.
    pub now: UnixTime,
    /// The operations, in order.
    pub ops: Vec<StorageOp>,
}

/// A stored record as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The encoded record.
    pub value: Vec<u8>,
    /// The revision it was written with.
    pub revision: u64,
    /// Its expiry, if any.
    pub expires_at: Option<UnixTime>,
}

/// The result of one [`StorageOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// For `Get` and `Take`: the live record, or `None`.
    Entry(Option<Entry>),
    /// For `Put`: whether the condition held and the value was written.
    Written(bool),
    /// For `Delete`.
    Done,
    /// For `List`: the entries and, when more may follow, the cursor to pass
    /// next time.
    Listed {
        /// `(key, entry)` pairs in ascending key order.
        entries: Vec<(String, Entry)>,
        /// Where to resume; `None` when the listing is complete.
        cursor: Option<String>,
    },
}

/// Why a backend could not perform a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageError {
    /// The backend is overloaded or rate-limited; the client may retry later.
    Unavailable,
    /// The backend did not answer in time.
    Timeout,
    /// Anything else. The message is for logs and must hold no secret.
    Other(String),
}

impl core::fmt::Display for StorageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unavailable => f.write_str("storage unavailable"),
            Self::Timeout => f.write_str("storage timed out"),
            Self::Other(m) => write!(f, "storage failed: {m}"),
        }
    }
}

impl core::error::Error for StorageError {}
