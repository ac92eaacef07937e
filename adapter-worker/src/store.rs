//! The core's storage operations on a key-value service with KV's interface.
//!
//! [`KvDriver`] carries all of the logic (conditions, liveness, paging) over a
//! [`KvBackend`] that only moves bytes: Workers KV on wasm32, an in-memory
//! imitation of KV in the host tests. So the exact code that runs in workerd
//! also runs the storage-conformance suite natively.
//!
//! # What is weaker than on PostgreSQL or DynamoDB
//!
//! KV has no conditional write. `Put IfAbsent`, `Put IfRevision` and `Take`
//! are a read followed by a write (or delete): two requests racing on the
//! same key can both see the old state and both succeed. The core's
//! consequences are spelled out in `docs/adapter-worker.md`.

use std::future::Future;

use futures_util::future::{join_all, try_join_all};
use oauth_core::{Condition, Entry, Reply, StorageError, StorageOp, StorageRequest, UnixTime};

use crate::record::{RecordMeta, physical_ttl};

/// The largest page KV's `list` returns.
pub(crate) const KV_LIST_MAX: u32 = 1000;

/// How many KV list pages one `List` operation reads at most while skipping
/// dead records, before it returns what it has with a cursor. Dead records
/// vanish from KV at most a minute after their expiry, so long runs of them
/// are rare; the bound keeps one request within the Workers limit on
/// storage operations per invocation.
const MAX_PAGES_PER_LIST: usize = 8;

/// Why a KV call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KvFailure {
    /// KV answered 429: too many writes to one key, or the account's limits.
    RateLimited,
    /// Anything else, with a message for the logs.
    Other(String),
}

impl From<KvFailure> for StorageError {
    fn from(f: KvFailure) -> Self {
        match f {
            // Retryable: the core answers 503 `temporarily_unavailable`.
            KvFailure::RateLimited => Self::Unavailable,
            KvFailure::Other(m) => Self::Other(m),
        }
    }
}

/// One key of a KV listing, with its metadata.
#[derive(Clone, Debug)]
pub(crate) struct ListedKey {
    pub(crate) name: String,
    pub(crate) meta: Option<RecordMeta>,
}

/// One page of a KV listing.
#[derive(Clone, Debug)]
pub(crate) struct ListPage {
    pub(crate) keys: Vec<ListedKey>,
    /// Where the next page starts; `None` when the listing is complete.
    pub(crate) cursor: Option<String>,
}

/// A stored value and its metadata (absent or foreign: `None`).
pub(crate) type Stored = (Vec<u8>, Option<RecordMeta>);

/// The five KV calls the driver makes. Futures need not be `Send`.
pub(crate) trait KvBackend {
    /// The value and metadata under `key`, if KV holds it.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Stored>, KvFailure>>;
    /// Store `value` with `meta`, expiring `ttl` seconds from now (never
    /// below KV's minimum: the driver guarantees it).
    fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        meta: RecordMeta,
        ttl: Option<u64>,
    ) -> impl Future<Output = Result<(), KvFailure>>;
    /// Remove `key` if present.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), KvFailure>>;
    /// Keys starting with `prefix` in ascending byte order, at most `limit`
    /// (1 to [`KV_LIST_MAX`]), from `cursor`.
    fn list(
        &self,
        prefix: &str,
        limit: u32,
        cursor: Option<String>,
    ) -> impl Future<Output = Result<ListPage, KvFailure>>;
}

/// Performs storage batches on a [`KvBackend`].
#[derive(Clone, Debug)]
pub(crate) struct KvDriver<B> {
    kv: B,
}

impl<B: KvBackend> KvDriver<B> {
    pub(crate) fn new(kv: B) -> Self {
        Self { kv }
    }

    pub(crate) fn backend(&self) -> &B {
        &self.kv
    }

    /// Perform one batch. The operations are independent (the storage
    /// contract), so they run concurrently: a bearer check's two reads cost
    /// one KV round trip, not two.
    pub(crate) async fn execute(&self, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        let now = request.now;
        try_join_all(request.ops.into_iter().map(|op| self.op(op, now))).await
    }

    async fn op(&self, op: StorageOp, now: UnixTime) -> Result<Reply, StorageError> {
        match op {
            StorageOp::Get { key } => Ok(Reply::Entry(self.live(&key, now).await?)),
            StorageOp::Put { key, value, revision, expires_at, condition } => {
                let write = match condition {
                    Condition::Always => true,
                    // Read, then write: not atomic (see the module docs).
                    Condition::IfAbsent => self.live(&key, now).await?.is_none(),
                    Condition::IfRevision(r) => self.live(&key, now).await?.is_some_and(|e| e.revision == r),
                    _ => return Err(StorageError::Other("a put condition this adapter does not know".into())),
                };
                if write {
                    let ttl = physical_ttl(now, expires_at);
                    self.kv.put(&key, value, RecordMeta::new(revision, expires_at), ttl).await?;
                }
                Ok(Reply::Written(write))
            }
            StorageOp::Take { key } => {
                // Read, then delete: two concurrent takes may both see the
                // record (see the module docs).
                let entry = self.live(&key, now).await?;
                if entry.is_some() {
                    self.kv.delete(&key).await?;
                }
                Ok(Reply::Entry(entry))
            }
            StorageOp::Delete { key } => {
                self.kv.delete(&key).await?;
                Ok(Reply::Done)
            }
            StorageOp::List { prefix, cursor, limit } => self.list(&prefix, cursor, limit, now).await,
            _ => Err(StorageError::Other("a storage operation this adapter does not know".into())),
        }
    }

    /// The record under `key` if it is alive at `now`.
    async fn live(&self, key: &str, now: UnixTime) -> Result<Option<Entry>, StorageError> {
        let Some((value, meta)) = self.kv.get(key).await? else {
            return Ok(None);
        };
        let entry = meta.as_ref().and_then(|m| m.entry(value)).ok_or_else(foreign_record)?;
        Ok(crate::record::is_live(entry.expires_at, now).then_some(entry))
    }

    /// Live records under `prefix`. Liveness is judged on the listing's
    /// metadata first, so dead records cost no read; the values of the live
    /// ones are then read concurrently (KV's list returns no values).
    async fn list(
        &self,
        prefix: &str,
        cursor: Option<String>,
        limit: u32,
        now: UnixTime,
    ) -> Result<Reply, StorageError> {
        let limit = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
        let mut live_keys: Vec<String> = Vec::new();
        let mut cursor = cursor;
        for _ in 0..MAX_PAGES_PER_LIST {
            // Never ask for more than are still wanted: KV cursors resume
            // only at page boundaries, so a page must never hold an entry
            // this call would have to drop.
            let want = limit.saturating_sub(live_keys.len());
            let page_size = u32::try_from(want).unwrap_or(KV_LIST_MAX).clamp(1, KV_LIST_MAX);
            let page = self.kv.list(prefix, page_size, cursor.take()).await?;
            for key in page.keys {
                let meta = key.meta.ok_or_else(foreign_record)?;
                if meta.parse().is_none() {
                    return Err(foreign_record());
                }
                if meta.is_live(now) {
                    live_keys.push(key.name);
                }
            }
            cursor = page.cursor;
            if cursor.is_none() || live_keys.len() >= limit {
                break;
            }
        }
        let values = join_all(live_keys.iter().map(|k| self.live(k, now))).await;
        let mut entries = Vec::with_capacity(live_keys.len());
        for (key, value) in live_keys.into_iter().zip(values) {
            // Gone or dead since the listing (a concurrent delete or
            // overwrite): skipped, as a listing taken a moment later would.
            if let Some(entry) = value? {
                entries.push((key, entry));
            }
        }
        Ok(Reply::Listed { entries, cursor })
    }
}

/// A KV pair under a key the core reads, without this adapter's metadata:
/// written by something else. Refused rather than guessed at.
fn foreign_record() -> StorageError {
    StorageError::Other("a KV record without this adapter's metadata".into())
}

#[cfg(test)]
pub(crate) mod fake {
    //! An in-memory imitation of Workers KV, as strict as the real one
    //! where it matters here: TTLs under 60 s are refused, list pages are
    //! bounded and resumed by opaque cursors, metadata comes with listed
    //! keys, records vanish at their physical expiry.

    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;
    use std::ops::Bound;

    use super::{KV_LIST_MAX, KvBackend, KvFailure, ListPage, ListedKey};
    use crate::record::{KV_MIN_TTL_SECS, RecordMeta};

    /// A value, its metadata, and when KV drops it (Unix seconds).
    type Pair = (Vec<u8>, Option<RecordMeta>, Option<u64>);

    #[derive(Debug, Default)]
    pub(crate) struct FakeKv {
        data: RefCell<BTreeMap<String, Pair>>,
        /// KV's own clock, in Unix seconds.
        pub(crate) clock: Cell<u64>,
        /// Every TTL ever requested, to check the minimum independently.
        pub(crate) ttls: RefCell<Vec<u64>>,
    }

    impl FakeKv {
        pub(crate) fn at(clock: u64) -> Self {
            Self { clock: Cell::new(clock), ..Self::default() }
        }

        /// Write a raw pair, as another program sharing the namespace might.
        pub(crate) fn put_raw(&self, key: &str, value: &[u8], meta: Option<RecordMeta>) {
            self.data.borrow_mut().insert(key.to_owned(), (value.to_vec(), meta, None));
        }

        /// The physical expiry KV holds for `key`.
        pub(crate) fn physical_expiry(&self, key: &str) -> Option<Option<u64>> {
            self.data.borrow().get(key).map(|(_, _, exp)| *exp)
        }

        fn purge(&self) {
            let now = self.clock.get();
            self.data.borrow_mut().retain(|_, (_, _, exp)| exp.is_none_or(|e| now < e));
        }
    }

    impl KvBackend for FakeKv {
        async fn get(&self, key: &str) -> Result<Option<super::Stored>, KvFailure> {
            self.purge();
            Ok(self.data.borrow().get(key).map(|(v, m, _)| (v.clone(), m.clone())))
        }

        async fn put(&self, key: &str, value: Vec<u8>, meta: RecordMeta, ttl: Option<u64>) -> Result<(), KvFailure> {
            if let Some(ttl) = ttl {
                self.ttls.borrow_mut().push(ttl);
                if ttl < KV_MIN_TTL_SECS {
                    return Err(KvFailure::Other(format!("Invalid expiration_ttl of {ttl}")));
                }
            }
            let exp = ttl.map(|t| self.clock.get() + t);
            self.data.borrow_mut().insert(key.to_owned(), (value, Some(meta), exp));
            Ok(())
        }

        async fn delete(&self, key: &str) -> Result<(), KvFailure> {
            self.data.borrow_mut().remove(key);
            Ok(())
        }

        async fn list(&self, prefix: &str, limit: u32, cursor: Option<String>) -> Result<ListPage, KvFailure> {
            if !(1..=KV_LIST_MAX).contains(&limit) {
                return Err(KvFailure::Other(format!("invalid list limit {limit}")));
            }
            self.purge();
            let start = match &cursor {
                Some(c) => match c.strip_prefix("after:") {
                    Some(last) => Bound::Excluded(last.to_owned()),
                    None => return Err(KvFailure::Other("invalid cursor".into())),
                },
                None => Bound::Included(prefix.to_owned()),
            };
            let data = self.data.borrow();
            let mut keys = Vec::new();
            let mut more = false;
            for (k, (_, meta, _)) in data.range((start, Bound::Unbounded)) {
                if !k.starts_with(prefix) {
                    break;
                }
                if keys.len() == limit as usize {
                    more = true;
                    break;
                }
                keys.push(ListedKey { name: k.clone(), meta: meta.clone() });
            }
            let cursor = if more { keys.last().map(|k| format!("after:{}", k.name)) } else { None };
            Ok(ListPage { keys, cursor })
        }
    }
}

#[cfg(test)]
mod tests {
    use oauth_core::testing::{Capabilities, ConformanceOptions, block_on_ready, run_conformance};
    use oauth_core::{Driver, UnixTime};

    use super::fake::FakeKv;
    use super::*;
    use crate::record::KV_MIN_TTL_SECS;

    const BASE: u64 = 1_700_000_000;

    struct Native(KvDriver<FakeKv>);

    impl Driver for Native {
        fn storage(&mut self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> {
            self.0.execute(request)
        }
    }

    fn run(driver: &KvDriver<FakeKv>, ops: Vec<StorageOp>, now: u64) -> Vec<Reply> {
        block_on_ready(driver.execute(StorageRequest { now: UnixTime::from_secs(now), ops })).unwrap().unwrap()
    }

    fn put(key: &str, rev: u64, exp: Option<u64>, condition: Condition) -> StorageOp {
        StorageOp::Put {
            key: key.into(),
            value: key.as_bytes().to_vec(),
            revision: rev,
            expires_at: exp.map(UnixTime::from_secs),
            condition,
        }
    }

    /// The same suite every backend runs, on the driver's code with KV's
    /// interface. Atomicity is not claimed; sequential semantics are.
    #[test]
    fn storage_conformance_on_the_kv_driver() {
        let mut driver = Native(KvDriver::new(FakeKv::at(BASE)));
        let mut caps = Capabilities::ALL;
        caps.atomic_conditional_writes = false;
        caps.atomic_take = false;
        let opts = ConformanceOptions::new("conformance/native", UnixTime::from_secs(BASE)).with_capabilities(caps);
        let report = block_on_ready(run_conformance(&mut driver, &opts)).expect("the fake KV never waits");
        report.assert_all_passed();
        let ttls = driver.0.backend().ttls.borrow();
        assert!(!ttls.is_empty() && ttls.iter().all(|t| *t >= KV_MIN_TTL_SECS), "{ttls:?}");
    }

    #[test]
    fn short_lifetimes_are_written_with_the_kv_minimum_and_still_expire_on_time() {
        let driver = KvDriver::new(FakeKv::at(BASE));
        let ops = vec![
            put("k/past", 1, Some(BASE - 5), Condition::Always),
            put("k/now", 1, Some(BASE), Condition::Always),
            put("k/one", 1, Some(BASE + 1), Condition::Always),
            put("k/fifty-nine", 1, Some(BASE + 59), Condition::Always),
            put("k/ninety", 1, Some(BASE + 90), Condition::Always),
            put("k/forever", 1, None, Condition::Always),
        ];
        assert!(run(&driver, ops, BASE).iter().all(|r| *r == Reply::Written(true)));
        let kv = driver.backend();
        for (key, physical) in [
            ("k/past", Some(BASE + 60)),
            ("k/now", Some(BASE + 60)),
            ("k/one", Some(BASE + 60)),
            ("k/fifty-nine", Some(BASE + 60)),
            ("k/ninety", Some(BASE + 90)),
            ("k/forever", None),
        ] {
            assert_eq!(kv.physical_expiry(key), Some(physical), "{key}");
        }
        // Logically, each is dead from its own expiry on, whatever KV holds.
        let get = |key: &str, now: u64| run(&driver, vec![StorageOp::Get { key: key.into() }], now);
        assert_eq!(get("k/past", BASE), vec![Reply::Entry(None)]);
        assert_eq!(get("k/now", BASE), vec![Reply::Entry(None)]);
        assert!(matches!(&get("k/one", BASE)[..], [Reply::Entry(Some(_))]));
        assert_eq!(get("k/one", BASE + 1), vec![Reply::Entry(None)]);
        let listed = run(&driver, vec![StorageOp::List { prefix: "k/".into(), cursor: None, limit: 10 }], BASE + 1);
        let Reply::Listed { entries, cursor: None } = &listed[0] else { panic!("{listed:?}") };
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["k/fifty-nine", "k/forever", "k/ninety"]);
    }

    #[test]
    fn a_list_skips_long_runs_of_dead_records_and_never_overshoots_its_limit() {
        let driver = KvDriver::new(FakeKv::at(BASE));
        let mut ops = Vec::new();
        for i in 0..50 {
            // Every third record is alive at BASE + 100.
            let exp = if i % 3 == 0 { None } else { Some(BASE + 61) };
            ops.push(put(&format!("p/{i:03}"), 1, exp, Condition::Always));
        }
        run(&driver, ops, BASE);
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let r = run(&driver, vec![StorageOp::List { prefix: "p/".into(), cursor, limit: 4 }], BASE + 100);
            let Reply::Listed { entries, cursor: next } = r.into_iter().next().unwrap() else { panic!() };
            assert!(entries.len() <= 4);
            seen.extend(entries.into_iter().map(|(k, _)| k));
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let want: Vec<String> = (0..50).filter(|i| i % 3 == 0).map(|i| format!("p/{i:03}")).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn records_written_by_something_else_are_refused_not_guessed_at() {
        let driver = KvDriver::new(FakeKv::at(BASE));
        driver.backend().put_raw("grant/foreign", b"{}", None);
        driver.backend().put_raw("grant/bad-meta", b"{}", Some(RecordMeta { revision: "x".into(), expires_at: None }));
        for key in ["grant/foreign", "grant/bad-meta"] {
            let r = block_on_ready(driver.execute(StorageRequest {
                now: UnixTime::from_secs(BASE),
                ops: vec![StorageOp::Get { key: key.into() }],
            }))
            .unwrap();
            assert!(matches!(r, Err(StorageError::Other(_))), "{key}: {r:?}");
        }
        let r = block_on_ready(driver.execute(StorageRequest {
            now: UnixTime::from_secs(BASE),
            ops: vec![StorageOp::List { prefix: "grant/".into(), cursor: None, limit: 10 }],
        }))
        .unwrap();
        assert!(matches!(r, Err(StorageError::Other(_))), "{r:?}");
    }

    #[test]
    fn rate_limiting_is_retryable() {
        assert_eq!(StorageError::from(KvFailure::RateLimited), StorageError::Unavailable);
        assert!(matches!(StorageError::from(KvFailure::Other("x".into())), StorageError::Other(_)));
    }
}
