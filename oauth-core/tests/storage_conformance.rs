//! The storage-conformance suite against the in-memory store, the suite's
//! own guarantees (namespacing, monotonic time, cleanup), its power to catch
//! broken backends, and the fault-injecting wrappers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::cell::RefCell;
use std::rc::Rc;

use oauth_core::testing::{
    Capabilities, ConformanceOptions, ConformanceReport, Fault, FaultMode, FaultyDriver, FaultyStore, MemoryStore,
    StoreDriver, Verdict, block_on_ready, race_cases, run_conformance, run_conformance_blocking, run_races,
    run_races_blocking,
};
use oauth_core::{BlockingStore, Condition, Driver, Entry, Reply, StorageError, StorageOp, StorageRequest, UnixTime};

const BASE: u64 = 1_800_000_000;

fn opts(namespace: &str) -> ConformanceOptions {
    ConformanceOptions::new(namespace, UnixTime::from_secs(BASE))
}

fn get(key: &str) -> StorageOp {
    StorageOp::Get { key: key.to_owned() }
}

fn put(key: &str, value: &[u8], revision: u64) -> StorageOp {
    StorageOp::Put {
        key: key.to_owned(),
        value: value.to_vec(),
        revision,
        expires_at: None,
        condition: Condition::Always,
    }
}

fn at(ops: Vec<StorageOp>) -> StorageRequest {
    StorageRequest { now: UnixTime::from_secs(BASE), ops }
}

fn value_of(store: &mut MemoryStore, key: &str) -> Option<Vec<u8>> {
    match store.execute(at(vec![get(key)])).unwrap().pop() {
        Some(Reply::Entry(e)) => e.map(|e| e.value),
        other => panic!("unexpected {other:?}"),
    }
}

// ---- the memory store conforms ------------------------------------------------

#[test]
fn memory_store_passes_every_check() {
    let mut store = MemoryStore::new();
    let report = run_conformance_blocking(&mut store, &opts("conformance"));
    report.assert_all_passed();
    assert!(report.results().len() > 30, "{report}");
    // With every capability declared nothing may be skipped.
    assert!(report.results().iter().all(|r| r.verdict == Verdict::Passed), "{report}");
    // Cleanup removed everything, expired records included.
    assert!(store.is_empty(), "left behind: {:?}", store.live_keys(UnixTime::from_secs(0)));
}

#[test]
fn memory_store_passes_race_cases_run_sequentially() {
    let mut store = MemoryStore::new();
    let report = run_races_blocking(&mut store, &opts("races"), 8);
    report.assert_all_passed();
    assert_eq!(report.results().len(), race_cases("races", UnixTime::from_secs(BASE)).len());
    assert!(store.is_empty());
}

#[test]
fn a_namespace_can_be_reused_after_cleanup_and_runs_share_a_store() {
    let mut store = MemoryStore::new();
    // Unrelated data sharing the textual prefix must not disturb the run.
    store.execute(at(vec![put("shared/run10/s/x", b"other run", 1), put("shared/run1x", b"other", 1)])).unwrap();
    run_conformance_blocking(&mut store, &opts("shared/run1")).assert_all_passed();
    run_conformance_blocking(&mut store, &opts("shared/run1")).assert_all_passed();
    run_conformance_blocking(&mut store, &opts("shared/run1/")).assert_all_passed();
    assert_eq!(store.len(), 2);
}

#[test]
fn leftover_data_is_reported_by_namespace_is_fresh() {
    let mut store = MemoryStore::new();
    run_conformance_blocking(&mut store, &opts("kept").keep_data()).assert_all_passed();
    let report = run_conformance_blocking(&mut store, &opts("kept"));
    assert!(matches!(report.get("namespace_is_fresh").unwrap().verdict, Verdict::Failed(_)), "{report}");
    assert!(matches!(report.get("cleanup").unwrap().verdict, Verdict::Passed), "{report}");
}

#[test]
fn missing_capabilities_make_checks_not_applicable_not_passed() {
    let mut store = MemoryStore::new();
    let o = opts("weak").with_capabilities(Capabilities::NONE);
    let report = run_conformance_blocking(&mut store, &o);
    assert!(report.all_passed(), "{report}");
    let na: Vec<&str> = report.not_applicable().map(|r| r.name).collect();
    assert!(na.contains(&"expiry_boundary_get") && na.contains(&"list_pagination"), "{report}");
    // Only the checks that read nothing back still run.
    for name in ["namespace_is_fresh", "get_missing", "take_missing", "list_empty_prefix"] {
        assert_eq!(report.get(name).unwrap().verdict, Verdict::Passed, "{name}");
    }
    match &report.get("put_get_round_trip").unwrap().verdict {
        Verdict::NotApplicable(reason) => assert!(reason.contains("strongly consistent"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let races = run_races_blocking(&mut store, &o, 4);
    assert_eq!(races.not_applicable().count(), races.results().len(), "{races}");

    let mut kv = Capabilities::ALL;
    kv.atomic_conditional_writes = false;
    kv.atomic_take = false;
    let races = run_races_blocking(&mut store, &opts("kv").with_capabilities(kv), 4);
    assert!(races.not_applicable().all(|r| r.name.starts_with("race_")));
    assert_eq!(races.not_applicable().count(), 4, "{races}");
}

// ---- what the suite promises adapters ---------------------------------------------

/// Records every request and checks the suite's promises about keys and time.
struct Recorder {
    store: MemoryStore,
    root: &'static str,
    last_now: UnixTime,
    max_now: UnixTime,
    requests: usize,
    problems: Vec<String>,
}

impl Driver for Recorder {
    fn storage(&mut self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> {
        self.requests += 1;
        if request.now < self.last_now {
            self.problems.push(format!("time went back from {} to {}", self.last_now, request.now));
        }
        self.last_now = request.now;
        self.max_now = self.max_now.max(request.now);
        for op in &request.ops {
            if !op.key().starts_with(self.root) {
                self.problems.push(format!("key outside the namespace: {:?}", op.key()));
            }
            if let StorageOp::Put { expires_at: Some(t), .. } = op {
                if request.now.until(*t) < 60 {
                    self.problems.push(format!("expiry {t} less than 60 s after now {}", request.now));
                }
            }
            if let StorageOp::List { limit: 0, .. } = op {
                self.problems.push("a List with limit 0".to_owned());
            }
        }
        if request.ops.is_empty() {
            self.problems.push("an empty batch".to_owned());
        }
        core::future::ready(self.store.execute(request))
    }
}

#[test]
fn the_suite_stays_in_its_namespace_and_its_time_only_moves_forward() {
    let mut rec = Recorder {
        store: MemoryStore::new(),
        root: "tenant-7/",
        last_now: UnixTime::from_secs(BASE),
        max_now: UnixTime::from_secs(BASE),
        requests: 0,
        problems: Vec::new(),
    };
    let report = block_on_ready(run_conformance(&mut rec, &opts("tenant-7"))).unwrap();
    report.assert_all_passed();
    assert!(rec.problems.is_empty(), "{:#?}", rec.problems);
    assert!(rec.max_now.as_secs() - BASE < 3600, "advanced to {}", rec.max_now);
    assert!(rec.requests > 100);
}

// ---- the suite catches broken backends ------------------------------------------------

/// Ways a backend can get the semantics wrong, each one realistic.
#[derive(Clone, Copy, Debug)]
enum Bug {
    /// `now > expires_at` instead of `now >= expires_at`.
    InclusiveExpiry,
    /// Ignores `limit` in listings.
    IgnoresLimit,
    /// Ignores the cursor in listings.
    IgnoresCursor,
    /// Stores revisions in 63 bits.
    DropsRevisionHighBit,
    /// Stores values as text.
    LossyValues,
    /// An overwrite without expiry keeps the old record's TTL.
    KeepsOldExpiry,
    /// IfAbsent looks at physical presence, not liveness.
    IfAbsentSeesExpired,
    /// A `VARCHAR(255)` key column.
    TruncatesKeys,
    /// A case-insensitive collation.
    CaseInsensitiveKeys,
    /// Take ignores expiry.
    TakeIgnoresExpiry,
    /// List ignores expiry.
    ListIgnoresExpiry,
    /// Delete of a missing key fails.
    DeleteMissingFails,
    /// Replies of a batch come back in completion order (here: reversed).
    ReordersReplies,
    /// `_` in a prefix matches any character (SQL LIKE without escaping).
    LikeWildcards,
}

struct Broken {
    store: MemoryStore,
    bug: Bug,
}

impl Broken {
    fn live(&mut self, key: &str, now: UnixTime) -> Option<Entry> {
        match self.store.apply(StorageOp::Get { key: key.to_owned() }, now) {
            Reply::Entry(e) => e,
            _ => None,
        }
    }

    fn exists(&self, key: &str) -> bool {
        self.store.raw_values().any(|(k, _)| k == key)
    }

    fn apply(&mut self, op: StorageOp, now: UnixTime) -> Result<Reply, StorageError> {
        let early = UnixTime::from_secs(0);
        Ok(match (self.bug, op) {
            (Bug::InclusiveExpiry, op) => self.store.apply(op, UnixTime::from_secs(now.as_secs() - 1)),
            (Bug::IgnoresLimit, StorageOp::List { prefix, cursor, .. }) => {
                self.store.apply(StorageOp::List { prefix, cursor, limit: u32::MAX }, now)
            }
            (Bug::IgnoresCursor, StorageOp::List { prefix, limit, .. }) => {
                self.store.apply(StorageOp::List { prefix, cursor: None, limit }, now)
            }
            (Bug::DropsRevisionHighBit, StorageOp::Put { key, value, revision, expires_at, condition }) => {
                let mask = |r: u64| r & !(1 << 63);
                let condition = match condition {
                    Condition::IfRevision(r) => Condition::IfRevision(mask(r)),
                    c => c,
                };
                let revision = mask(revision);
                self.store.apply(StorageOp::Put { key, value, revision, expires_at, condition }, now)
            }
            (Bug::LossyValues, StorageOp::Put { key, value, revision, expires_at, condition }) => {
                let value = String::from_utf8_lossy(&value).into_owned().into_bytes();
                self.store.apply(StorageOp::Put { key, value, revision, expires_at, condition }, now)
            }
            (Bug::KeepsOldExpiry, StorageOp::Put { key, value, revision, expires_at: None, condition }) => {
                let expires_at = self.live(&key, now).and_then(|e| e.expires_at);
                self.store.apply(StorageOp::Put { key, value, revision, expires_at, condition }, now)
            }
            (Bug::IfAbsentSeesExpired, StorageOp::Put { key, condition: Condition::IfAbsent, .. })
                if self.exists(&key) =>
            {
                Reply::Written(false)
            }
            (Bug::TruncatesKeys, op) => {
                let cut = |k: String| k.chars().take(255).collect::<String>();
                let op = match op {
                    StorageOp::Get { key } => StorageOp::Get { key: cut(key) },
                    StorageOp::Take { key } => StorageOp::Take { key: cut(key) },
                    StorageOp::Delete { key } => StorageOp::Delete { key: cut(key) },
                    StorageOp::Put { key, value, revision, expires_at, condition } => {
                        StorageOp::Put { key: cut(key), value, revision, expires_at, condition }
                    }
                    StorageOp::List { prefix, cursor, limit } => StorageOp::List { prefix: cut(prefix), cursor, limit },
                    other => other,
                };
                self.store.apply(op, now)
            }
            (Bug::CaseInsensitiveKeys, op) => {
                let op = match op {
                    StorageOp::Get { key } => StorageOp::Get { key: key.to_lowercase() },
                    StorageOp::Take { key } => StorageOp::Take { key: key.to_lowercase() },
                    StorageOp::Delete { key } => StorageOp::Delete { key: key.to_lowercase() },
                    StorageOp::Put { key, value, revision, expires_at, condition } => {
                        StorageOp::Put { key: key.to_lowercase(), value, revision, expires_at, condition }
                    }
                    other => other,
                };
                self.store.apply(op, now)
            }
            (Bug::TakeIgnoresExpiry, op @ StorageOp::Take { .. }) => self.store.apply(op, early),
            (Bug::ListIgnoresExpiry, op @ StorageOp::List { .. }) => self.store.apply(op, early),
            (Bug::DeleteMissingFails, StorageOp::Delete { key }) if !self.exists(&key) => {
                return Err(StorageError::Other("no such row".to_owned()));
            }
            (Bug::LikeWildcards, StorageOp::List { prefix, cursor, limit }) if prefix.contains('_') => {
                // Emulate `LIKE 'x_y%'`: list the part before the `_` and
                // match the rest with `_` as a one-character wildcard.
                let (head, _) = prefix.split_once('_').unwrap();
                let Reply::Listed { entries, .. } =
                    self.store.apply(StorageOp::List { prefix: head.to_owned(), cursor, limit: u32::MAX }, now)
                else {
                    unreachable!()
                };
                let like = |k: &str| {
                    k.len() >= prefix.len() && k.bytes().zip(prefix.bytes()).all(|(a, b)| b == b'_' || a == b)
                };
                let entries: Vec<_> =
                    entries.into_iter().filter(|(k, _)| like(k)).take(usize::try_from(limit).unwrap()).collect();
                Reply::Listed { entries, cursor: None }
            }
            (_, op) => self.store.apply(op, now),
        })
    }
}

impl BlockingStore for Broken {
    fn execute(&mut self, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        let now = request.now;
        let mut replies = request.ops.into_iter().map(|op| self.apply(op, now)).collect::<Result<Vec<_>, _>>()?;
        if matches!(self.bug, Bug::ReordersReplies) {
            replies.reverse();
        }
        Ok(replies)
    }
}

#[test]
fn each_broken_backend_fails_the_check_aimed_at_its_bug() {
    let cases = [
        (Bug::InclusiveExpiry, "expiry_boundary_get"),
        (Bug::InclusiveExpiry, "expiry_boundary_list"),
        (Bug::InclusiveExpiry, "expiry_boundary_take"),
        (Bug::InclusiveExpiry, "expiry_boundary_if_revision"),
        (Bug::InclusiveExpiry, "expiry_boundary_if_absent"),
        (Bug::IgnoresLimit, "list_limit"),
        (Bug::IgnoresLimit, "list_pagination"),
        (Bug::IgnoresCursor, "list_pagination"),
        (Bug::IgnoresCursor, "list_skips_expired"),
        (Bug::DropsRevisionHighBit, "revision_full_range"),
        (Bug::LossyValues, "binary_values"),
        (Bug::KeepsOldExpiry, "put_always_overwrites"),
        (Bug::IfAbsentSeesExpired, "if_absent_on_expired"),
        (Bug::TruncatesKeys, "long_keys"),
        (Bug::CaseInsensitiveKeys, "distinct_keys"),
        (Bug::TakeIgnoresExpiry, "take_expired"),
        (Bug::TakeIgnoresExpiry, "expiry_boundary_take"),
        (Bug::ListIgnoresExpiry, "list_skips_expired"),
        (Bug::DeleteMissingFails, "delete_idempotent"),
        (Bug::ReordersReplies, "batch_replies_in_order"),
        (Bug::LikeWildcards, "list_prefix_is_literal"),
    ];
    for (bug, check) in cases {
        let mut store = Broken { store: MemoryStore::new(), bug };
        let report = run_conformance_blocking(&mut store, &opts("broken"));
        match &report.get(check).unwrap().verdict {
            Verdict::Failed(message) => assert!(!message.is_empty()),
            other => panic!("{bug:?} should fail {check}, got {other:?}\n{report}"),
        }
    }
}

#[test]
fn failure_messages_say_what_was_asked_and_what_came_back() {
    let mut store = Broken { store: MemoryStore::new(), bug: Bug::InclusiveExpiry };
    let report = run_conformance_blocking(&mut store, &opts("msg"));
    let Verdict::Failed(message) = &report.get("expiry_boundary_get").unwrap().verdict else { panic!("{report}") };
    assert!(message.contains("at expires_at the record is dead"), "{message}");
    assert!(message.contains("expiry_boundary_get/k"), "{message}");
    assert!(message.contains(&format!("now={}", BASE + 60)) || message.contains("now="), "{message}");
    assert!(message.contains("expected absent"), "{message}");
    let shown = report.to_string();
    assert!(shown.contains("FAIL expiry_boundary_get") && shown.contains("ok   get_missing"), "{shown}");
}

#[test]
#[should_panic(expected = "FAIL binary_values")]
fn assert_all_passed_panics_with_the_failures() {
    let mut store = Broken { store: MemoryStore::new(), bug: Bug::LossyValues };
    run_conformance_blocking(&mut store, &opts("panics")).assert_all_passed();
}

#[test]
#[should_panic(expected = "no check ran")]
fn an_empty_report_does_not_pass() {
    ConformanceReport::default().assert_all_passed();
}

#[test]
fn a_storage_error_fails_only_the_check_it_hits() {
    // Fail the fifth operation of the run; every other check must still pass.
    let mut store = MemoryStore::new();
    let fault = Fault::new(5, FaultMode::FailBatch, StorageError::Unavailable);
    let mut driver = FaultyDriver::with_fault(StoreDriver::new(&mut store), fault);
    let report = block_on_ready(run_conformance(&mut driver, &opts("faulted"))).unwrap();
    let failed: Vec<_> = report.failures().collect();
    assert_eq!(failed.len(), 1, "{report}");
    let Verdict::Failed(message) = &failed[0].verdict else { unreachable!() };
    assert!(message.contains("storage unavailable"), "{message}");
}

// ---- race cases ---------------------------------------------------------------------

/// A driver over a shared store, so a race closure can reach the store too.
#[derive(Clone)]
struct Shared(Rc<RefCell<MemoryStore>>);

impl Driver for Shared {
    fn storage(&mut self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> {
        core::future::ready(self.0.borrow_mut().execute(request))
    }
}

#[test]
fn run_races_hands_the_contended_request_to_the_closure() {
    let shared = Shared(Rc::new(RefCell::new(MemoryStore::new())));
    let mut driver = shared.clone();
    let mut calls = 0;
    let report = block_on_ready(run_races(&mut driver, &opts("async-races"), |request| {
        calls += 1;
        let mut contender = shared.clone();
        async move {
            let mut replies = Vec::new();
            for _ in 0..6 {
                replies.push(contender.storage(request.clone()).await);
            }
            replies
        }
    }))
    .unwrap();
    report.assert_all_passed();
    assert_eq!(calls, 4);
    assert!(shared.0.borrow().is_empty());
}

#[test]
fn a_backend_without_atomic_conditions_is_caught_by_the_judge() {
    // The worst interleaving of a read-then-write backend: every contender
    // reads the state from before the race, so each believes it won.
    let shared = Shared(Rc::new(RefCell::new(MemoryStore::new())));
    let mut driver = shared.clone();
    let report = block_on_ready(run_races(&mut driver, &opts("stale"), |request| {
        let snapshot = shared.0.borrow().clone();
        let replies = (0..4).map(|_| snapshot.clone().execute(request.clone())).collect();
        core::future::ready(replies)
    }))
    .unwrap();
    assert_eq!(report.failures().count(), 4, "{report}");
    for r in report.failures() {
        let Verdict::Failed(m) = &r.verdict else { unreachable!() };
        assert!(m.contains("4 of 4 contenders won"), "{m}");
    }
}

#[test]
fn the_judge_wants_exactly_one_clean_winner() {
    let cases = race_cases("judge", UnixTime::from_secs(BASE));
    let if_absent = cases.iter().find(|c| c.name == "race_if_absent").unwrap();
    let won = || Ok(vec![Reply::Written(true)]);
    let lost = || Ok(vec![Reply::Written(false)]);
    assert_eq!(if_absent.judge(&[won(), lost(), lost()]), Ok(()));
    assert!(if_absent.judge(&[won(), won(), lost()]).unwrap_err().contains("2 of 3 contenders won"));
    assert!(if_absent.judge(&[lost(), lost()]).unwrap_err().contains("0 of 2"));
    assert!(if_absent.judge(&[won()]).unwrap_err().contains("at least two"));
    let err = if_absent.judge(&[won(), Err(StorageError::Timeout)]).unwrap_err();
    assert!(err.contains("contender 1 failed: storage timed out"), "{err}");
    let err = if_absent.judge(&[won(), Ok(vec![])]).unwrap_err();
    assert!(err.contains("contender 1 replied []"), "{err}");

    let take = cases.iter().find(|c| c.name == "race_take").unwrap();
    let StorageOp::Put { value, revision, expires_at, .. } = take.setup.ops[0].clone() else { panic!() };
    let entry = Entry { value, revision, expires_at };
    let got = |e: Option<Entry>| Ok(vec![Reply::Entry(e)]);
    assert_eq!(take.judge(&[got(None), got(Some(entry.clone())), got(None)]), Ok(()));
    assert!(take.judge(&[got(Some(entry.clone())), got(Some(entry))]).is_err());
}

#[test]
fn race_cases_stay_in_their_namespace() {
    for case in race_cases("ns", UnixTime::from_secs(BASE)) {
        for request in [&case.setup, &case.contended, &case.after, &case.teardown] {
            assert!(request.ops.iter().all(|op| op.key().starts_with("ns/r/")), "{case:?}");
            assert!(request.now.as_secs() >= BASE);
        }
    }
}

// ---- block_on_ready ------------------------------------------------------------------

#[test]
fn block_on_ready_gives_up_on_a_future_that_waits() {
    assert_eq!(block_on_ready(core::future::pending::<()>()), None);
    assert_eq!(block_on_ready(async { 7 }), Some(7));
}

// ---- FaultyStore ------------------------------------------------------------------------

fn keys(store: &MemoryStore) -> Vec<String> {
    store.live_keys(UnixTime::from_secs(BASE))
}

/// Three batches: [put a], [put b, put c, put d], [get a]: six operations.
fn scenario(store: &mut dyn BlockingStore) -> Vec<Result<Vec<Reply>, StorageError>> {
    vec![
        store.execute(at(vec![put("a", b"1", 1)])),
        store.execute(at(vec![put("b", b"2", 1), put("c", b"3", 1), put("d", b"4", 1)])),
        store.execute(at(vec![get("a")])),
    ]
}

#[test]
fn faulty_store_counts_without_a_fault() {
    let mut store = FaultyStore::new(MemoryStore::new());
    let results = scenario(&mut store);
    assert!(results.iter().all(Result::is_ok));
    assert_eq!((store.ops_seen(), store.batches_seen(), store.has_fired()), (5, 3, false));
    assert_eq!(keys(store.inner()), ["a", "b", "c", "d"]);
}

#[test]
fn faulty_store_applies_what_each_mode_says() {
    // Operation 3 is `put c`, the middle of the second batch.
    let cases: [(FaultMode, &[&str]); 4] = [
        (FaultMode::FailBefore, &["a", "b"]),
        (FaultMode::ApplyThenFail, &["a", "b", "c"]),
        (FaultMode::FailBatch, &["a"]),
        (FaultMode::ApplyBatchThenFail, &["a", "b", "c", "d"]),
    ];
    for (mode, applied) in cases {
        let mut store = FaultyStore::failing_at(MemoryStore::new(), 3, mode, StorageError::Timeout);
        let results = scenario(&mut store);
        assert_eq!(results[1], Err(StorageError::Timeout), "{mode:?}");
        assert!(results[0].is_ok() && results[2].is_ok(), "{mode:?}: the fault fires once");
        assert_eq!(keys(store.inner()), applied, "{mode:?}");
        assert_eq!((store.ops_seen(), store.faults_injected()), (5, 1));
    }
}

#[test]
fn faulty_store_fails_every_position_in_turn() {
    let mut counting = FaultyStore::new(MemoryStore::new());
    scenario(&mut counting);
    let total = counting.ops_seen();
    for n in 1..=total {
        for mode in FaultMode::ALL {
            for error in [StorageError::Unavailable, StorageError::Timeout, StorageError::Other("boom".to_owned())] {
                let mut store = FaultyStore::failing_at(MemoryStore::new(), n, mode, error.clone());
                let results = scenario(&mut store);
                let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
                assert_eq!(failed, [&Err::<Vec<Reply>, _>(error)], "n={n} {mode:?}");
                assert!(store.has_fired());
            }
        }
    }
    // Beyond the last operation, and at 0, nothing fires.
    for n in [0, total + 1] {
        let mut store = FaultyStore::failing_at(MemoryStore::new(), n, FaultMode::FailBatch, StorageError::Unavailable);
        assert!(scenario(&mut store).iter().all(Result::is_ok));
        assert!(!store.has_fired());
    }
}

#[test]
fn a_sticky_fault_is_an_outage() {
    let fault = Fault::new(2, FaultMode::ApplyThenFail, StorageError::Unavailable).sticky();
    let mut store = FaultyStore::with_fault(MemoryStore::new(), fault);
    let results = scenario(&mut store);
    assert!(results[0].is_ok());
    assert_eq!(results[1], Err(StorageError::Unavailable));
    assert_eq!(results[2], Err(StorageError::Unavailable));
    assert_eq!(keys(store.inner()), ["a", "b"]);
    assert_eq!(store.faults_injected(), 2);

    store.set_fault(None);
    assert!(scenario(&mut store).iter().all(Result::is_ok));
    assert_eq!(store.ops_seen(), 5);
    assert_eq!(value_of(store.inner_mut(), "d"), Some(b"4".to_vec()));
}

#[test]
fn faulty_driver_matches_faulty_store() {
    for n in 1..=5 {
        for mode in FaultMode::ALL {
            let mut sync = FaultyStore::failing_at(MemoryStore::new(), n, mode, StorageError::Timeout);
            let sync_results = scenario(&mut sync);

            let mut memory = MemoryStore::new();
            let mut driver =
                FaultyDriver::with_fault(StoreDriver::new(&mut memory), Fault::new(n, mode, StorageError::Timeout));
            let requests = [
                at(vec![put("a", b"1", 1)]),
                at(vec![put("b", b"2", 1), put("c", b"3", 1), put("d", b"4", 1)]),
                at(vec![get("a")]),
            ];
            let async_results: Vec<_> =
                requests.into_iter().map(|r| block_on_ready(driver.storage(r)).unwrap()).collect();
            assert_eq!(async_results, sync_results, "n={n} {mode:?}");
            assert_eq!((driver.ops_seen(), driver.batches_seen(), driver.has_fired()), (5, 3, true));
            drop(driver);
            assert_eq!(keys(&memory), keys(sync.inner()), "n={n} {mode:?}");
        }
    }
}
