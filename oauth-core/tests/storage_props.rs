//! Properties of the in-memory store against a deliberately naive reference
//! model, and of listing pagination and fault injection.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::HashMap;

use oauth_core::testing::{FaultMode, FaultyStore, MemoryStore};
use oauth_core::{BlockingStore, Condition, Entry, Reply, StorageError, StorageOp, StorageRequest, UnixTime};
use proptest::prelude::*;

const BASE: u64 = 1_800_000_000;

/// The storage semantics written as plainly as possible: a hash map, a
/// liveness test, and a sort for listings. No ranges, no early exits.
#[derive(Clone, Debug, Default)]
struct Model {
    map: HashMap<String, Entry>,
}

fn alive(e: &Entry, now: UnixTime) -> bool {
    match e.expires_at {
        None => true,
        Some(t) => now.as_secs() < t.as_secs(),
    }
}

impl Model {
    fn live(&self, key: &str, now: UnixTime) -> Option<&Entry> {
        self.map.get(key).filter(|e| alive(e, now))
    }

    fn apply(&mut self, op: StorageOp, now: UnixTime) -> Reply {
        match op {
            StorageOp::Get { key } => Reply::Entry(self.live(&key, now).cloned()),
            StorageOp::Put { key, value, revision, expires_at, condition } => {
                let current = self.live(&key, now);
                let ok = match condition {
                    Condition::Always => true,
                    Condition::IfAbsent => current.is_none(),
                    Condition::IfRevision(r) => current.map(|e| e.revision) == Some(r),
                    other => panic!("unknown condition {other:?}"),
                };
                if ok {
                    self.map.insert(key, Entry { value, revision, expires_at });
                }
                Reply::Written(ok)
            }
            StorageOp::Take { key } => {
                let live = self.live(&key, now).cloned();
                // Taking removes the row either way; only a live one is seen.
                self.map.remove(&key);
                Reply::Entry(live)
            }
            StorageOp::Delete { key } => {
                self.map.remove(&key);
                Reply::Done
            }
            StorageOp::List { prefix, cursor, limit } => {
                let mut keys: Vec<&String> = self
                    .map
                    .iter()
                    .filter(|(k, e)| k.starts_with(&prefix) && alive(e, now))
                    .filter(|(k, _)| cursor.as_ref().is_none_or(|c| k.as_str() > c.as_str()))
                    .map(|(k, _)| k)
                    .collect();
                keys.sort();
                let limit = limit.max(1) as usize;
                let more = keys.len() > limit;
                keys.truncate(limit);
                let entries: Vec<(String, Entry)> =
                    keys.into_iter().map(|k| (k.clone(), self.map[k].clone())).collect();
                let cursor = if more { entries.last().map(|(k, _)| k.clone()) } else { None };
                Reply::Listed { entries, cursor }
            }
            other => panic!("unknown operation {other:?}"),
        }
    }

    fn execute(&mut self, request: StorageRequest) -> Vec<Reply> {
        request.ops.into_iter().map(|op| self.apply(op, request.now)).collect()
    }
}

// ---- strategies ------------------------------------------------------------------

/// Keys that share prefixes and sit around '/' in byte order.
const KEYS: &[&str] = &["p/a", "p/a/", "p/a/b", "p/a/bc", "p/a/b/c", "p/a-", "p/a0", "p/A", "p/b", "q/a"];
const PREFIXES: &[&str] = &["", "p/", "p/a", "p/a/", "p/a/b", "p/a/b/", "p/b", "q", "z"];

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS).prop_map(str::to_owned)
}

fn time() -> impl Strategy<Value = UnixTime> {
    (0u64..20).prop_map(|s| UnixTime::from_secs(BASE + s))
}

fn condition() -> impl Strategy<Value = Condition> {
    prop_oneof![Just(Condition::Always), Just(Condition::IfAbsent), (0u64..4).prop_map(Condition::IfRevision)]
}

fn op() -> impl Strategy<Value = StorageOp> {
    prop_oneof![
        1 => key().prop_map(|key| StorageOp::Get { key }),
        3 => (key(), prop::collection::vec(any::<u8>(), 0..4), 0u64..4, prop::option::of(time()), condition())
            .prop_map(|(key, value, revision, expires_at, condition)| StorageOp::Put {
                key,
                value,
                revision,
                expires_at,
                condition
            }),
        1 => key().prop_map(|key| StorageOp::Take { key }),
        1 => key().prop_map(|key| StorageOp::Delete { key }),
        1 => (prop::sample::select(PREFIXES), prop::option::of(key()), 1u32..5).prop_map(|(prefix, cursor, limit)| {
            StorageOp::List { prefix: prefix.to_owned(), cursor, limit }
        }),
    ]
}

fn batch() -> impl Strategy<Value = StorageRequest> {
    (time(), prop::collection::vec(op(), 1..5)).prop_map(|(now, ops)| StorageRequest { now, ops })
}

fn page_limits() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(1u32..6, 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every reply of every batch agrees with the model, whatever the order
    /// of operations, conditions and (non-monotonic) times.
    #[test]
    fn memory_store_agrees_with_the_model(batches in prop::collection::vec(batch(), 1..30)) {
        let mut store = MemoryStore::new();
        let mut model = Model::default();
        for request in batches {
            let want = model.execute(request.clone());
            let got = store.execute(request.clone()).unwrap();
            prop_assert_eq!(got, want, "request {:?}", request);
        }
    }

    /// Following cursors with changing page sizes lists every live key under
    /// the prefix exactly once, in ascending order, and no page exceeds its
    /// limit.
    #[test]
    fn pagination_lists_every_live_key_once_in_order(
        records in prop::collection::btree_map("[ab/._~-]{1,6}", prop::option::of(0u64..10), 0..40),
        prefix in prop::sample::select(&["", "a", "a/", "b", "a.", "-", "ab/"][..]),
        now in 0u64..10,
        limits in page_limits(),
    ) {
        let now = UnixTime::from_secs(BASE + now);
        let mut store = MemoryStore::new();
        let ops = records
            .iter()
            .map(|(k, exp)| StorageOp::Put {
                key: k.clone(),
                value: k.as_bytes().to_vec(),
                revision: 1,
                expires_at: exp.map(|s| UnixTime::from_secs(BASE + s)),
                condition: Condition::Always,
            })
            .collect();
        store.execute(StorageRequest { now: UnixTime::from_secs(BASE), ops }).unwrap();
        let want: Vec<&String> = records
            .iter()
            .filter(|(k, exp)| k.starts_with(prefix) && exp.is_none_or(|s| BASE + s > now.as_secs()))
            .map(|(k, _)| k)
            .collect();

        let mut listed: Vec<String> = Vec::new();
        let mut cursor = None;
        for limit in limits.iter().cycle().take(records.len() + 2) {
            let op = StorageOp::List { prefix: prefix.to_owned(), cursor: cursor.take(), limit: *limit };
            let mut replies = store.execute(StorageRequest { now, ops: vec![op] }).unwrap();
            let Some(Reply::Listed { entries, cursor: next }) = replies.pop() else { panic!("not a listing") };
            prop_assert!(entries.len() <= *limit as usize);
            listed.extend(entries.into_iter().map(|(k, _)| k));
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        prop_assert!(cursor.is_none(), "the listing did not finish");
        prop_assert_eq!(listed.iter().collect::<Vec<_>>(), want);
    }

    /// A fault at any operation, in any mode, leaves the store exactly as if
    /// the operations the mode promises were applied and no others.
    #[test]
    fn faults_apply_exactly_what_the_mode_says(
        batches in prop::collection::vec(batch(), 1..8),
        at in 1u64..25,
        mode in prop::sample::select(&FaultMode::ALL[..]),
    ) {
        let mut store = FaultyStore::failing_at(MemoryStore::new(), at, mode, StorageError::Timeout);
        let mut model = Model::default();
        let mut seen = 0u64;
        for request in batches {
            let start = seen;
            seen += request.ops.len() as u64;
            let got = store.execute(request.clone());
            if at > start && at <= seen {
                let index = (at - start - 1) as usize;
                let apply = match mode {
                    FaultMode::FailBefore => index,
                    FaultMode::ApplyThenFail => index + 1,
                    FaultMode::FailBatch => 0,
                    FaultMode::ApplyBatchThenFail => request.ops.len(),
                };
                let now = request.now;
                for op in request.ops.into_iter().take(apply) {
                    model.apply(op, now);
                }
                prop_assert_eq!(got, Err(StorageError::Timeout));
            } else {
                prop_assert_eq!(got.unwrap(), model.execute(request));
            }
        }
        prop_assert_eq!(store.ops_seen(), seen);
        prop_assert_eq!(store.has_fired(), at <= seen);
        // Compare everything, expired records included, by reading at time 0.
        let epoch = UnixTime::from_secs(0);
        for k in KEYS {
            let get = StorageOp::Get { key: (*k).to_owned() };
            let want = model.apply(get.clone(), epoch);
            let got = store.inner_mut().apply(get, epoch);
            prop_assert_eq!(got, want, "key {}", k);
        }
    }
}
