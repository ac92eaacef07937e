//! The JSON a Worker and the store's Durable Object exchange: one storage
//! batch in, its replies (or why it failed) out.
//!
//! Plain Rust, built and tested on the host too. JSON text is parsed by
//! serde on both ends, never by JavaScript, so 64-bit revisions and times
//! travel as exact integers; values are base64.

use base64ct::{Base64, Encoding};
use oauth_core::{Condition, Entry, Reply, StorageError, StorageOp, StorageRequest, UnixTime};
use serde::{Deserialize, Serialize};

/// A storage batch.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireRequest {
    pub(crate) now: u64,
    pub(crate) ops: Vec<WireOp>,
}

/// One operation.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum WireOp {
    Get { key: String },
    Put { key: String, value: String, revision: u64, expires_at: Option<u64>, condition: WireCondition },
    Take { key: String },
    Delete { key: String },
    List { prefix: String, cursor: Option<String>, limit: u32 },
}

/// A put's condition.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireCondition {
    Always,
    IfAbsent,
    IfRevision(u64),
}

/// A stored record.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireEntry {
    pub(crate) value: String,
    pub(crate) revision: u64,
    pub(crate) expires_at: Option<u64>,
}

/// One operation's reply.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub(crate) enum WireReply {
    Entry { entry: Option<WireEntry> },
    Written { written: bool },
    Done,
    Listed { entries: Vec<(String, WireEntry)>, cursor: Option<String> },
}

/// The answer to a batch.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireResponse {
    Ok(Vec<WireReply>),
    /// The batch failed; `retryable` maps to [`StorageError::Unavailable`].
    Err {
        message: String,
        retryable: bool,
    },
}

impl WireRequest {
    /// The batch as sent; `None` for an operation this adapter does not know.
    pub(crate) fn encode(request: &StorageRequest) -> Option<Self> {
        let ops = request.ops.iter().map(WireOp::encode).collect::<Option<Vec<_>>>()?;
        Some(Self { now: request.now.as_secs(), ops })
    }

    /// The batch as received; `None` if a value is not base64.
    pub(crate) fn decode(self) -> Option<StorageRequest> {
        let ops = self.ops.into_iter().map(WireOp::decode).collect::<Option<Vec<_>>>()?;
        Some(StorageRequest { now: UnixTime::from_secs(self.now), ops })
    }
}

impl WireOp {
    fn encode(op: &StorageOp) -> Option<Self> {
        Some(match op {
            StorageOp::Get { key } => Self::Get { key: key.clone() },
            StorageOp::Put { key, value, revision, expires_at, condition } => Self::Put {
                key: key.clone(),
                value: Base64::encode_string(value),
                revision: *revision,
                expires_at: expires_at.map(UnixTime::as_secs),
                condition: match condition {
                    Condition::Always => WireCondition::Always,
                    Condition::IfAbsent => WireCondition::IfAbsent,
                    Condition::IfRevision(r) => WireCondition::IfRevision(*r),
                    _ => return None,
                },
            },
            StorageOp::Take { key } => Self::Take { key: key.clone() },
            StorageOp::Delete { key } => Self::Delete { key: key.clone() },
            StorageOp::List { prefix, cursor, limit } => {
                Self::List { prefix: prefix.clone(), cursor: cursor.clone(), limit: *limit }
            }
            _ => return None,
        })
    }

    fn decode(self) -> Option<StorageOp> {
        Some(match self {
            Self::Get { key } => StorageOp::Get { key },
            Self::Put { key, value, revision, expires_at, condition } => StorageOp::Put {
                key,
                value: Base64::decode_vec(&value).ok()?,
                revision,
                expires_at: expires_at.map(UnixTime::from_secs),
                condition: match condition {
                    WireCondition::Always => Condition::Always,
                    WireCondition::IfAbsent => Condition::IfAbsent,
                    WireCondition::IfRevision(r) => Condition::IfRevision(r),
                },
            },
            Self::Take { key } => StorageOp::Take { key },
            Self::Delete { key } => StorageOp::Delete { key },
            Self::List { prefix, cursor, limit } => StorageOp::List { prefix, cursor, limit },
        })
    }
}

impl WireEntry {
    pub(crate) fn encode(entry: &Entry) -> Self {
        Self {
            value: Base64::encode_string(&entry.value),
            revision: entry.revision,
            expires_at: entry.expires_at.map(UnixTime::as_secs),
        }
    }

    fn decode(self) -> Option<Entry> {
        Some(Entry {
            value: Base64::decode_vec(&self.value).ok()?,
            revision: self.revision,
            expires_at: self.expires_at.map(UnixTime::from_secs),
        })
    }
}

impl WireReply {
    /// `None` for a reply this adapter does not know.
    pub(crate) fn encode(reply: &Reply) -> Option<Self> {
        Some(match reply {
            Reply::Entry(e) => Self::Entry { entry: e.as_ref().map(WireEntry::encode) },
            Reply::Written(w) => Self::Written { written: *w },
            Reply::Done => Self::Done,
            Reply::Listed { entries, cursor } => Self::Listed {
                entries: entries.iter().map(|(k, e)| (k.clone(), WireEntry::encode(e))).collect(),
                cursor: cursor.clone(),
            },
            _ => return None,
        })
    }

    fn decode(self) -> Option<Reply> {
        Some(match self {
            Self::Entry { entry: None } => Reply::Entry(None),
            Self::Entry { entry: Some(entry) } => Reply::Entry(Some(entry.decode()?)),
            Self::Written { written } => Reply::Written(written),
            Self::Done => Reply::Done,
            Self::Listed { entries, cursor } => Reply::Listed {
                entries: entries.into_iter().map(|(k, e)| e.decode().map(|e| (k, e))).collect::<Option<_>>()?,
                cursor,
            },
        })
    }
}

impl WireResponse {
    /// The answer for a batch's outcome.
    pub(crate) fn encode(result: &Result<Vec<Reply>, StorageError>) -> Self {
        match result {
            Ok(replies) => match replies.iter().map(WireReply::encode).collect::<Option<Vec<_>>>() {
                Some(replies) => Self::Ok(replies),
                None => Self::Err { message: "a reply this adapter does not know".into(), retryable: false },
            },
            Err(e) => Self::Err {
                message: e.to_string(),
                retryable: matches!(e, StorageError::Unavailable | StorageError::Timeout),
            },
        }
    }

    /// The batch's outcome, checking that there is one reply per operation.
    pub(crate) fn decode(self, expected: usize) -> Result<Vec<Reply>, StorageError> {
        match self {
            Self::Ok(replies) if replies.len() == expected => replies
                .into_iter()
                .map(WireReply::decode)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| StorageError::Other("the store object sent a malformed reply".into())),
            Self::Ok(_) => Err(StorageError::Other("the store object sent the wrong number of replies".into())),
            Self::Err { retryable: true, .. } => Err(StorageError::Unavailable),
            Self::Err { message, retryable: false } => Err(StorageError::Other(format!("store object: {message}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(request: StorageRequest) -> StorageRequest {
        let wire = WireRequest::encode(&request).unwrap();
        let json = serde_json::to_string(&wire).unwrap();
        serde_json::from_str::<WireRequest>(&json).unwrap().decode().unwrap()
    }

    #[test]
    fn every_operation_round_trips_exactly() {
        let request = StorageRequest {
            now: UnixTime::from_secs(u64::MAX),
            ops: vec![
                StorageOp::Get { key: "a/\u{e9}".into() },
                StorageOp::Put {
                    key: "k".into(),
                    value: vec![0, 0xff, b'"', 0x80],
                    revision: u64::MAX,
                    expires_at: Some(UnixTime::from_secs(u64::MAX - 1)),
                    condition: Condition::IfRevision(1 << 63),
                },
                StorageOp::Put {
                    key: "k".into(),
                    value: Vec::new(),
                    revision: 0,
                    expires_at: None,
                    condition: Condition::IfAbsent,
                },
                StorageOp::Put {
                    key: "k".into(),
                    value: vec![1],
                    revision: 1,
                    expires_at: None,
                    condition: Condition::Always,
                },
                StorageOp::Take { key: "t".into() },
                StorageOp::Delete { key: "d".into() },
                StorageOp::List { prefix: "p/".into(), cursor: Some("p/x".into()), limit: 1000 },
                StorageOp::List { prefix: String::new(), cursor: None, limit: 1 },
            ],
        };
        assert_eq!(round_trip(request.clone()), request);
    }

    #[test]
    fn every_reply_round_trips_exactly() {
        let entry =
            Entry { value: vec![0, 1, 0xfe], revision: u64::MAX, expires_at: Some(UnixTime::from_secs(1 << 60)) };
        let replies = vec![
            Reply::Entry(None),
            Reply::Entry(Some(entry.clone())),
            Reply::Written(true),
            Reply::Written(false),
            Reply::Done,
            Reply::Listed { entries: vec![("a".into(), entry.clone()), ("b".into(), entry)], cursor: Some("b".into()) },
            Reply::Listed { entries: Vec::new(), cursor: None },
        ];
        let json = serde_json::to_string(&WireResponse::encode(&Ok(replies.clone()))).unwrap();
        let back: WireResponse = serde_json::from_str(&json).unwrap();
        assert_eq!(back.decode(replies.len()), Ok(replies));
    }

    #[test]
    fn failures_keep_their_retryability_and_counts_are_checked() {
        for (error, retryable) in [
            (StorageError::Unavailable, true),
            (StorageError::Timeout, true),
            (StorageError::Other("disk".into()), false),
        ] {
            let wire = WireResponse::encode(&Err(error));
            let back = wire.decode(1);
            assert_eq!(matches!(back, Err(StorageError::Unavailable)), retryable, "{back:?}");
        }
        let one = WireResponse::encode(&Ok(vec![Reply::Done]));
        assert!(matches!(one.decode(2), Err(StorageError::Other(_))));
        let bad = WireResponse::Ok(vec![WireReply::Entry {
            entry: Some(WireEntry { value: "not base64!".into(), revision: 1, expires_at: None }),
        }]);
        assert!(matches!(bad.decode(1), Err(StorageError::Other(_))));
    }
}
