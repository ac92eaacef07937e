//! The storage-conformance suite every backend runs.
//!
//! [`run_conformance`] drives a [`Driver`] through named checks of the
//! semantics [`crate::storage`] specifies (expiry judged by the request's
//! `now`, revisions, conditions, take, ordered prefix listing with a cursor,
//! batches, binary values, long keys) and returns a [`ConformanceReport`].
//! It is an ordinary `async fn` that spawns nothing, needs no runtime and no
//! `Send` futures, so the same suite runs under tokio, on wasm32 in a Worker
//! and, through [`block_on_ready`], against a synchronous [`BlockingStore`].
//!
//! # Namespaces
//!
//! Every key the suite and the race cases write starts with
//! [`ConformanceOptions::namespace`] (followed by a `/` unless the namespace
//! is empty or already ends with one, so that namespace `run1` is never a
//! prefix of `run10`'s keys). Checks write under `{namespace}/s/`, race cases
//! under `{namespace}/r/`. Give each run its own namespace (a timestamp or
//! random suffix) and several runs can share one database; with
//! [`ConformanceOptions::cleanup`] on (the default) the suite deletes what it
//! wrote when it finishes.
//!
//! # Time
//!
//! The suite's `now` starts at [`ConformanceOptions::base`] and never moves
//! backwards, so a backend that purges expired rows lazily, judged by the
//! request's `now`, is exercised fairly. It advances by well under an hour in
//! total. Every expiry the suite writes is at least 60 s after the `now` of
//! the write, as in production (the core's shortest lifetime is
//! [`crate::MIN_TTL_SECS`]). A backend that also expires records physically
//! by its own clock (Workers KV, DynamoDB TTL) should pass the real current
//! time as `base` and keep some slack on the physical expiry.
//!
//! # Capabilities
//!
//! A backend declares in [`Capabilities`] what it can give. A check that
//! needs something the backend lacks is reported as not applicable, with the
//! reason, never as passed. Sequential checks of conditional writes need only
//! read-your-writes consistency: a read-then-write emulation answers them
//! correctly. Atomicity is what the race cases test.
//!
//! # Races
//!
//! The suite cannot spawn tasks, so contention is the adapter's job:
//! [`race_cases`] lists requests to issue many times at once, and
//! [`RaceCase::judge`] checks that exactly one contender won. [`run_races`]
//! does the bookkeeping and leaves only the concurrent fan-out to a closure;
//! [`run_races_blocking`] runs the contenders one after another against a
//! [`BlockingStore`] (still exactly one winner, though nothing is proven
//! about atomicity that way).
//!
//! An async adapter (tokio shown; any runtime works the same way):
//!
//! ```ignore
//! use oauth_core::testing::{ConformanceOptions, run_conformance, run_races};
//! use oauth_core::{Driver, UnixTime};
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn storage_conformance() {
//!     let pool = connect().await;
//!     let namespace = format!("conformance/{}", unique_suffix());
//!     let opts = ConformanceOptions::new(namespace, UnixTime::from_secs(real_now_secs()));
//!     let mut driver = PgDriver::new(pool.clone());
//!     run_conformance(&mut driver, &opts).await.assert_all_passed();
//!     // Each contender gets its own task and its own connection, so the
//!     // database, not a shared handle, decides who wins.
//!     run_races(&mut driver, &opts, |request| {
//!         let pool = pool.clone();
//!         async move {
//!             let tasks: Vec<_> = (0..16)
//!                 .map(|_| {
//!                     let (pool, request) = (pool.clone(), request.clone());
//!                     tokio::spawn(async move { PgDriver::new(pool).storage(request).await })
//!                 })
//!                 .collect();
//!             let mut replies = Vec::new();
//!             for task in tasks {
//!                 replies.push(task.await.expect("contender task"));
//!             }
//!             replies
//!         }
//!     })
//!     .await
//!     .assert_all_passed();
//! }
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::flow::{BlockingStore, Driver};
use crate::storage::{Condition, Entry, Reply, StorageError, StorageOp, StorageRequest};
use crate::time::UnixTime;

/// The lifetime of every expiring record the suite writes: the core's
/// shortest TTL, and Workers KV's minimum.
const TTL: u64 = 60;

/// Deletes per cleanup batch; DynamoDB's `BatchWriteItem` takes 25.
const CLEANUP_BATCH: usize = 25;

/// The length, namespace included, of the long keys the suite writes: within
/// Workers KV's 512-byte and DynamoDB's 1024-byte sort-key limits, and above
/// the 255 at which a `VARCHAR(255)` column would truncate.
const LONG_KEY_LEN: usize = 400;

/// How often [`block_on_ready`] polls before giving up.
const READY_POLLS: usize = 64;

// ---- capabilities and options ----------------------------------------------

/// One guarantee a backend may or may not give.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// `Put` with `IfAbsent` or `IfRevision` is one atomic step, so of many
    /// concurrent conditional writes at most one succeeds.
    AtomicConditionalWrites,
    /// `Take` is one atomic read-and-delete, so of many concurrent takes at
    /// most one sees the record.
    AtomicTake,
    /// A read issued after a write completed sees that write (listings
    /// included).
    StronglyConsistentReads,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AtomicConditionalWrites => "atomic conditional writes",
            Self::AtomicTake => "an atomic take",
            Self::StronglyConsistentReads => "strongly consistent (read-your-writes) reads",
        })
    }
}

/// What a backend under test can guarantee.
///
/// Start from [`Capabilities::ALL`] and switch off what the backend cannot
/// give; a local simulator that is consistent (such as Miniflare for Workers
/// KV) should keep [`strongly_consistent_reads`](Self::strongly_consistent_reads)
/// on so the sequential checks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// See [`Capability::AtomicConditionalWrites`].
    pub atomic_conditional_writes: bool,
    /// See [`Capability::AtomicTake`].
    pub atomic_take: bool,
    /// See [`Capability::StronglyConsistentReads`].
    pub strongly_consistent_reads: bool,
}

impl Capabilities {
    /// Every guarantee the storage module specifies.
    pub const ALL: Self = Self { atomic_conditional_writes: true, atomic_take: true, strongly_consistent_reads: true };

    /// No guarantee beyond answering each operation.
    pub const NONE: Self =
        Self { atomic_conditional_writes: false, atomic_take: false, strongly_consistent_reads: false };

    /// Whether the backend declares `capability`.
    pub const fn has(&self, capability: Capability) -> bool {
        match capability {
            Capability::AtomicConditionalWrites => self.atomic_conditional_writes,
            Capability::AtomicTake => self.atomic_take,
            Capability::StronglyConsistentReads => self.strongly_consistent_reads,
        }
    }

    fn missing(&self, needs: &[Capability]) -> Option<Capability> {
        needs.iter().copied().find(|c| !self.has(*c))
    }
}

/// How to run the suite.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConformanceOptions {
    /// The prefix of every key written (see the module documentation).
    pub namespace: String,
    /// The `now` of the first request; later ones only move forward from it.
    pub base: UnixTime,
    /// What the backend guarantees.
    pub capabilities: Capabilities,
    /// Delete every key written when done (and report whether that worked).
    pub cleanup: bool,
}

impl ConformanceOptions {
    /// Options for a fully capable backend, with cleanup on.
    pub fn new(namespace: impl Into<String>, base: UnixTime) -> Self {
        Self { namespace: namespace.into(), base, capabilities: Capabilities::ALL, cleanup: true }
    }

    /// The same options declaring `capabilities`.
    #[must_use]
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// The same options, leaving the written records in place (to inspect
    /// them after a failure).
    #[must_use]
    pub fn keep_data(mut self) -> Self {
        self.cleanup = false;
        self
    }
}

/// The namespace as a key prefix that no other namespace's keys share.
fn root(namespace: &str) -> String {
    if namespace.is_empty() || namespace.ends_with('/') { namespace.to_owned() } else { format!("{namespace}/") }
}

// ---- the report -------------------------------------------------------------

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The backend behaved as specified.
    Passed,
    /// It did not; the message says what was asked and what came back.
    Failed(String),
    /// The check was not run because the backend does not declare what it
    /// needs; the message says which capability.
    NotApplicable(String),
}

/// One named check and its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// A stable identifier, such as `expiry_boundary_get`.
    pub name: &'static str,
    /// What the check demands of the backend.
    pub description: &'static str,
    /// How it went.
    pub verdict: Verdict,
}

/// The results of a conformance run, in the order the checks ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConformanceReport {
    results: Vec<CheckResult>,
}

impl ConformanceReport {
    /// Every result, in order.
    pub fn results(&self) -> &[CheckResult] {
        &self.results
    }

    /// The result of the check called `name`.
    pub fn get(&self, name: &str) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.name == name)
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(|r| matches!(r.verdict, Verdict::Failed(_)))
    }

    /// The checks that were not applicable.
    pub fn not_applicable(&self) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(|r| matches!(r.verdict, Verdict::NotApplicable(_)))
    }

    /// True when at least one check ran and none failed.
    pub fn all_passed(&self) -> bool {
        !self.results.is_empty() && self.failures().next().is_none()
    }

    /// Add a result.
    pub fn push(&mut self, result: CheckResult) {
        self.results.push(result);
    }

    /// Add the results of another run (the race cases after the suite, say).
    pub fn merge(&mut self, other: Self) {
        self.results.extend(other.results);
    }

    /// Panic, listing every failure (and what was not applicable), unless
    /// [`all_passed`](Self::all_passed).
    // Test support: a panic with a readable list is how a test fails.
    #[allow(clippy::panic)]
    #[track_caller]
    pub fn assert_all_passed(&self) {
        if !self.all_passed() {
            panic!("{self}");
        }
    }
}

impl fmt::Display for ConformanceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = self.failures().count();
        let na = self.not_applicable().count();
        let passed = self.results.len().saturating_sub(failed).saturating_sub(na);
        writeln!(f, "storage conformance: {passed} passed, {failed} failed, {na} not applicable")?;
        if self.results.is_empty() {
            writeln!(f, "  no check ran")?;
        }
        for r in &self.results {
            match &r.verdict {
                Verdict::Passed => writeln!(f, "  ok   {}", r.name)?,
                Verdict::Failed(m) => writeln!(f, "  FAIL {} ({})\n         {m}", r.name, r.description)?,
                Verdict::NotApplicable(m) => writeln!(f, "  n/a  {}: {m}", r.name)?,
            }
        }
        Ok(())
    }
}

fn not_applicable(missing: Capability) -> Verdict {
    Verdict::NotApplicable(format!("needs {missing}, which the backend does not declare"))
}

fn verdict(result: Result<(), String>) -> Verdict {
    match result {
        Ok(()) => Verdict::Passed,
        Err(m) => Verdict::Failed(m),
    }
}

// ---- running futures and blocking stores -------------------------------------

/// Run a future that completes without waiting on anything, such as the
/// suite over a [`StoreDriver`], on the calling thread. Returns `None` if it
/// is still pending after a few polls: such a future needs a real executor.
///
/// It polls with a no-op waker, so it also works on wasm32.
pub fn block_on_ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    // A few polls tolerate futures that yield once and wake themselves; one
    // that waits for real IO would never finish here and is reported.
    for _ in 0..READY_POLLS {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
    }
    None
}

/// A [`Driver`] over a synchronous [`BlockingStore`]; every future it returns
/// is ready at once. Hooks get their default replies.
#[derive(Debug)]
pub struct StoreDriver<'a, S: ?Sized> {
    store: &'a mut S,
}

impl<'a, S: BlockingStore + ?Sized> StoreDriver<'a, S> {
    /// Drive `store`.
    pub fn new(store: &'a mut S) -> Self {
        Self { store }
    }
}

impl<S: BlockingStore + ?Sized> Driver for StoreDriver<'_, S> {
    fn storage(&mut self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> {
        core::future::ready(self.store.execute(request))
    }
}

/// [`run_conformance`] against a synchronous store, on the calling thread.
pub fn run_conformance_blocking<S: BlockingStore + ?Sized>(
    store: &mut S,
    opts: &ConformanceOptions,
) -> ConformanceReport {
    let mut driver = StoreDriver::new(store);
    block_on_ready(run_conformance(&mut driver, opts)).unwrap_or_else(|| {
        let mut report = ConformanceReport::default();
        report.push(CheckResult {
            name: "driver_ready",
            description: "a blocking store's futures complete without an executor",
            verdict: Verdict::Failed("the suite did not complete when polled".to_owned()),
        });
        report
    })
}

// ---- the checks -------------------------------------------------------------

const C: &[Capability] = &[Capability::StronglyConsistentReads];

/// A named check: what it demands, what it needs, and which function runs it.
struct Spec {
    name: &'static str,
    about: &'static str,
    needs: &'static [Capability],
    id: Id,
}

#[derive(Clone, Copy)]
enum Id {
    NamespaceIsFresh,
    GetMissing,
    PutGetRoundTrip,
    RevisionFullRange,
    PutAlwaysOverwrites,
    PutAlwaysOverExpired,
    IfAbsentOnAbsent,
    IfAbsentOnPresent,
    IfAbsentOnExpired,
    IfRevisionMatching,
    IfRevisionMismatching,
    IfRevisionOnAbsent,
    IfRevisionOnExpired,
    TakeLive,
    TakeMissing,
    TakeExpired,
    DeleteIdempotent,
    ExpiryBoundaryGet,
    ExpiryBoundaryList,
    ExpiryBoundaryTake,
    ExpiryBoundaryIfRevision,
    ExpiryBoundaryIfAbsent,
    DistinctKeys,
    ListEmptyPrefix,
    ListOrder,
    ListLimit,
    ListPagination,
    ListPrefixIsolation,
    ListPrefixIsLiteral,
    ListSkipsExpired,
    ListCursorSurvivesDeletes,
    BatchRepliesInOrder,
    BinaryValues,
    LongKeys,
}

const CHECKS: &[Spec] = &[
    Spec {
        name: "namespace_is_fresh",
        about: "the namespace holds no live record before the run",
        needs: &[],
        id: Id::NamespaceIsFresh,
    },
    Spec { name: "get_missing", about: "Get of a key never written is absent", needs: &[], id: Id::GetMissing },
    Spec {
        name: "put_get_round_trip",
        about: "Put then Get returns the value, revision and expiry written",
        needs: C,
        id: Id::PutGetRoundTrip,
    },
    Spec {
        name: "revision_full_range",
        about: "revisions are full u64 values (0, 2^63, u64::MAX) in round trips and comparisons",
        needs: C,
        id: Id::RevisionFullRange,
    },
    Spec {
        name: "put_always_overwrites",
        about: "Put Always replaces value, revision and expiry (an expiry is removed or set, never kept)",
        needs: C,
        id: Id::PutAlwaysOverwrites,
    },
    Spec {
        name: "put_always_over_expired",
        about: "Put Always over an expired record writes a live one",
        needs: C,
        id: Id::PutAlwaysOverExpired,
    },
    Spec {
        name: "if_absent_on_absent",
        about: "Put IfAbsent on an absent key writes",
        needs: C,
        id: Id::IfAbsentOnAbsent,
    },
    Spec {
        name: "if_absent_on_present",
        about: "Put IfAbsent on a live record does not write",
        needs: C,
        id: Id::IfAbsentOnPresent,
    },
    Spec {
        name: "if_absent_on_expired",
        about: "Put IfAbsent over an expired record writes (expired counts as absent)",
        needs: C,
        id: Id::IfAbsentOnExpired,
    },
    Spec {
        name: "if_revision_matching",
        about: "Put IfRevision with the live revision writes, and only once",
        needs: C,
        id: Id::IfRevisionMatching,
    },
    Spec {
        name: "if_revision_mismatching",
        about: "Put IfRevision with another revision does not write",
        needs: C,
        id: Id::IfRevisionMismatching,
    },
    Spec {
        name: "if_revision_on_absent",
        about: "Put IfRevision on an absent or deleted key neither writes nor creates",
        needs: C,
        id: Id::IfRevisionOnAbsent,
    },
    Spec {
        name: "if_revision_on_expired",
        about: "Put IfRevision over an expired record does not write, even with its revision",
        needs: C,
        id: Id::IfRevisionOnExpired,
    },
    Spec {
        name: "take_live",
        about: "Take returns the live record and leaves the key absent",
        needs: C,
        id: Id::TakeLive,
    },
    Spec { name: "take_missing", about: "Take of a key never written is absent", needs: &[], id: Id::TakeMissing },
    Spec { name: "take_expired", about: "Take of an expired record returns nothing", needs: C, id: Id::TakeExpired },
    Spec {
        name: "delete_idempotent",
        about: "Delete removes a record and succeeds on absent and expired keys",
        needs: C,
        id: Id::DeleteIdempotent,
    },
    Spec {
        name: "expiry_boundary_get",
        about: "Get sees a record at expires_at - 1 and not at expires_at",
        needs: C,
        id: Id::ExpiryBoundaryGet,
    },
    Spec {
        name: "expiry_boundary_list",
        about: "List includes a record at expires_at - 1 and not at expires_at",
        needs: C,
        id: Id::ExpiryBoundaryList,
    },
    Spec {
        name: "expiry_boundary_take",
        about: "Take returns a record at expires_at - 1 and nothing at expires_at",
        needs: C,
        id: Id::ExpiryBoundaryTake,
    },
    Spec {
        name: "expiry_boundary_if_revision",
        about: "IfRevision matches at expires_at - 1 and not at expires_at",
        needs: C,
        id: Id::ExpiryBoundaryIfRevision,
    },
    Spec {
        name: "expiry_boundary_if_absent",
        about: "IfAbsent is refused at expires_at - 1 and accepted at expires_at",
        needs: C,
        id: Id::ExpiryBoundaryIfAbsent,
    },
    Spec {
        name: "distinct_keys",
        about: "keys differing only in case or a trailing character are distinct records",
        needs: C,
        id: Id::DistinctKeys,
    },
    Spec {
        name: "list_empty_prefix",
        about: "List of a prefix with no records is empty and complete",
        needs: &[],
        id: Id::ListEmptyPrefix,
    },
    Spec {
        name: "list_order",
        about: "List returns keys in ascending byte order (not a locale collation) with their entries",
        needs: C,
        id: Id::ListOrder,
    },
    Spec {
        name: "list_limit",
        about: "List returns at most `limit` entries and a cursor while more follow",
        needs: C,
        id: Id::ListLimit,
    },
    Spec {
        name: "list_pagination",
        about: "following cursors lists every key exactly once, in order, over many pages",
        needs: C,
        id: Id::ListPagination,
    },
    Spec {
        name: "list_prefix_isolation",
        about: "List returns exactly the keys starting with the prefix (a/b/ vs a/bc, neighbours of '/')",
        needs: C,
        id: Id::ListPrefixIsolation,
    },
    Spec {
        name: "list_prefix_is_literal",
        about: "'_' and '.' in a prefix match only themselves (no LIKE or regex wildcards)",
        needs: C,
        id: Id::ListPrefixIsLiteral,
    },
    Spec {
        name: "list_skips_expired",
        about: "List skips expired records, including runs longer than a page",
        needs: C,
        id: Id::ListSkipsExpired,
    },
    Spec {
        name: "list_cursor_survives_deletes",
        about: "a cursor stays valid after the listed records are deleted in the same batch",
        needs: C,
        id: Id::ListCursorSurvivesDeletes,
    },
    Spec {
        name: "batch_replies_in_order",
        about: "a batch of mixed operations gets one reply per operation, in order",
        needs: C,
        id: Id::BatchRepliesInOrder,
    },
    Spec {
        name: "binary_values",
        about: "values of arbitrary bytes (NUL, 0xff, invalid UTF-8, 16 KiB) round trip",
        needs: C,
        id: Id::BinaryValues,
    },
    Spec {
        name: "long_keys",
        about: "400-byte keys of URL-safe characters round trip without truncation",
        needs: C,
        id: Id::LongKeys,
    },
];

/// Run every check against `driver` and report on each.
///
/// The suite never stops at a failure: each check uses its own keys, and a
/// failing or erroring check only fails itself.
pub async fn run_conformance<D: Driver + ?Sized>(driver: &mut D, opts: &ConformanceOptions) -> ConformanceReport {
    let mut cx = Cx {
        driver,
        suite_root: format!("{}s/", root(&opts.namespace)),
        check: "",
        now: opts.base,
        written: BTreeSet::new(),
    };
    let mut report = ConformanceReport::default();
    for spec in CHECKS {
        let verdict = match opts.capabilities.missing(spec.needs) {
            Some(missing) => not_applicable(missing),
            None => {
                cx.check = spec.name;
                verdict(run_check(spec.id, &mut cx).await)
            }
        };
        report.push(CheckResult { name: spec.name, description: spec.about, verdict });
    }
    let verdict = if opts.cleanup {
        cx.check = "cleanup";
        cleanup(&mut cx, opts.capabilities.strongly_consistent_reads).await
    } else {
        Verdict::NotApplicable("cleanup is off in the options".to_owned())
    };
    report.push(CheckResult {
        name: "cleanup",
        description: "Delete removes every record the suite wrote, expired ones included",
        verdict,
    });
    report
}

async fn run_check<D: Driver + ?Sized>(id: Id, cx: &mut Cx<'_, D>) -> Result<(), String> {
    match id {
        Id::NamespaceIsFresh => namespace_is_fresh(cx).await,
        Id::GetMissing => get_missing(cx).await,
        Id::PutGetRoundTrip => put_get_round_trip(cx).await,
        Id::RevisionFullRange => revision_full_range(cx).await,
        Id::PutAlwaysOverwrites => put_always_overwrites(cx).await,
        Id::PutAlwaysOverExpired => put_always_over_expired(cx).await,
        Id::IfAbsentOnAbsent => if_absent_on_absent(cx).await,
        Id::IfAbsentOnPresent => if_absent_on_present(cx).await,
        Id::IfAbsentOnExpired => if_absent_on_expired(cx).await,
        Id::IfRevisionMatching => if_revision_matching(cx).await,
        Id::IfRevisionMismatching => if_revision_mismatching(cx).await,
        Id::IfRevisionOnAbsent => if_revision_on_absent(cx).await,
        Id::IfRevisionOnExpired => if_revision_on_expired(cx).await,
        Id::TakeLive => take_live(cx).await,
        Id::TakeMissing => take_missing(cx).await,
        Id::TakeExpired => take_expired(cx).await,
        Id::DeleteIdempotent => delete_idempotent(cx).await,
        Id::ExpiryBoundaryGet => expiry_boundary_get(cx).await,
        Id::ExpiryBoundaryList => expiry_boundary_list(cx).await,
        Id::ExpiryBoundaryTake => expiry_boundary_take(cx).await,
        Id::ExpiryBoundaryIfRevision => expiry_boundary_if_revision(cx).await,
        Id::ExpiryBoundaryIfAbsent => expiry_boundary_if_absent(cx).await,
        Id::DistinctKeys => distinct_keys(cx).await,
        Id::ListEmptyPrefix => list_empty_prefix(cx).await,
        Id::ListOrder => list_order(cx).await,
        Id::ListLimit => list_limit(cx).await,
        Id::ListPagination => list_pagination(cx).await,
        Id::ListPrefixIsolation => list_prefix_isolation(cx).await,
        Id::ListPrefixIsLiteral => list_prefix_is_literal(cx).await,
        Id::ListSkipsExpired => list_skips_expired(cx).await,
        Id::ListCursorSurvivesDeletes => list_cursor_survives_deletes(cx).await,
        Id::BatchRepliesInOrder => batch_replies_in_order(cx).await,
        Id::BinaryValues => binary_values(cx).await,
        Id::LongKeys => long_keys(cx).await,
    }
}

type Outcome = Result<(), String>;
type Listing = Vec<(String, Entry)>;

async fn namespace_is_fresh<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let prefix = cx.suite_root.clone();
    let (entries, _) = cx.list(&prefix, None, 5).await?;
    match entries.first() {
        None => Ok(()),
        Some((key, _)) => Err(format!(
            "the namespace already holds live records under {prefix:?} (first: {key:?}); give each run a fresh \
             namespace, or keep cleanup on; later checks may fail because of them"
        )),
    }
}

async fn get_missing<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let k = cx.key("never-written");
    cx.expect_get(&k, None, "a key never written").await
}

async fn put_get_round_trip<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let t0 = cx.now;
    let (a, b) = (cx.key("expiring"), cx.key("forever"));
    let ea = entry(b"round trip \x01\x02", 7, Some(t0.plus(10 * TTL)));
    let eb = entry(b"kept forever", 3, None);
    cx.expect_put(&a, &ea, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.expect_put(&b, &eb, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.expect_get(&a, Some(&ea), "a record with an expiry, read back").await?;
    cx.expect_get(&b, Some(&eb), "a record without expiry, read back").await
}

async fn revision_full_range<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let high = 1u64 << 63;
    let cases = [("zero", 0), ("high-bit", high), ("max", u64::MAX), ("below-high-bit", high - 1)];
    let mut written = Vec::new();
    for (name, revision) in cases {
        let k = cx.key(name);
        let e = entry(name.as_bytes(), revision, None);
        cx.expect_put(&k, &e, Condition::Always, true, "Put Always on a fresh key").await?;
        written.push((k, e));
    }
    for (k, e) in &written {
        cx.expect_get(k, Some(e), "the revision must survive the round trip unchanged").await?;
    }
    // A backend that drops the high bit would let revision 0 match 2^63.
    let (hk, he) = (cx.key("high-bit"), entry(b"high-bit", high, None));
    let wrong = entry(b"wrong", 1, None);
    cx.expect_put(&hk, &wrong, Condition::IfRevision(0), false, "IfRevision(0) on a record at revision 2^63").await?;
    cx.expect_get(&hk, Some(&he), "after a refused IfRevision").await?;
    let mk = cx.key("max");
    let next = entry(b"wrapped", 0, None);
    cx.expect_put(&mk, &next, Condition::IfRevision(u64::MAX), true, "IfRevision(u64::MAX) on its record").await?;
    cx.expect_get(&mk, Some(&next), "after IfRevision(u64::MAX) wrote revision 0").await
}

async fn put_always_overwrites<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let t0 = cx.now;
    let k = cx.key("drops-expiry");
    let first = entry(b"first", 1, Some(t0.plus(TTL)));
    let second = entry(b"second", 2, None);
    cx.expect_put(&k, &first, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.expect_put(&k, &second, Condition::Always, true, "Put Always over a live record").await?;
    cx.expect_get(&k, Some(&second), "after Put Always replaced it").await?;
    cx.advance_to(t0.plus(TTL));
    cx.expect_get(&k, Some(&second), "at the first write's expiry: the overwrite had no expiry, so none may linger")
        .await?;

    let t1 = cx.now;
    let k = cx.key("gains-expiry");
    let first = entry(b"first", 5, None);
    let second = entry(b"second", 6, Some(t1.plus(TTL)));
    cx.expect_put(&k, &first, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.expect_put(&k, &second, Condition::Always, true, "Put Always over a live record").await?;
    cx.expect_get(&k, Some(&second), "after Put Always replaced it").await?;
    cx.advance_to(t1.plus(TTL));
    cx.expect_get(&k, None, "at the expiry the overwrite set").await
}

async fn put_always_over_expired<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let t0 = cx.now;
    let k = cx.key("k");
    let old = entry(b"old", 1, Some(t0.plus(TTL)));
    let new = entry(b"new", 2, None);
    cx.expect_put(&k, &old, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.advance_to(t0.plus(TTL));
    cx.expect_get(&k, None, "at its expiry").await?;
    cx.expect_put(&k, &new, Condition::Always, true, "Put Always over an expired record").await?;
    cx.expect_get(&k, Some(&new), "after Put Always over an expired record").await
}

async fn if_absent_on_absent<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let k = cx.key("k");
    let e = entry(b"created", 1, Some(cx.now.plus(10 * TTL)));
    cx.expect_put(&k, &e, Condition::IfAbsent, true, "IfAbsent on a key never written").await?;
    cx.expect_get(&k, Some(&e), "after IfAbsent wrote").await
}

async fn if_absent_on_present<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let t0 = cx.now;
    let (a, b) = (cx.key("forever"), cx.key("expiring"));
    let ea = entry(b"original", 1, None);
    let eb = entry(b"original", 1, Some(t0.plus(TTL)));
    let intruder = entry(b"intruder", 2, None);
    cx.expect_put(&a, &ea, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.expect_put(&b, &eb, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.expect_put(&a, &intruder, Condition::IfAbsent, false, "IfAbsent on a live record").await?;
    cx.expect_put(&b, &intruder, Condition::IfAbsent, false, "IfAbsent on a live record that will expire").await?;
    cx.expect_get(&a, Some(&ea), "after a refused IfAbsent").await?;
    cx.expect_get(&b, Some(&eb), "after a refused IfAbsent").await
}

async fn if_absent_on_expired<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let t0 = cx.now;
    let k = cx.key("k");
    let old = entry(b"old", 1, Some(t0.plus(TTL)));
    let new = entry(b"new", 2, None);
    cx.expect_put(&k, &old, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.advance_to(t0.plus(TTL));
    cx.expect_put(&k, &new, Condition::IfAbsent, true, "IfAbsent over an expired record").await?;
    cx.expect_get(&k, Some(&new), "after IfAbsent replaced an expired record").await?;
    cx.advance_to(t0.plus(2 * TTL));
    cx.expect_get(&k, Some(&new), "later: the new record has no expiry").await
}

async fn if_revision_matching<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let k = cx.key("k");
    let v4 = entry(b"revision 4", 4, Some(cx.now.plus(10 * TTL)));
    let v5 = entry(b"revision 5", 5, None);
    let stale = entry(b"stale writer", 5, None);
    cx.expect_put(&k, &v4, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.expect_put(&k, &v5, Condition::IfRevision(4), true, "IfRevision(4) on a record at revision 4").await?;
    cx.expect_get(&k, Some(&v5), "after IfRevision wrote (value, revision and expiry all replaced)").await?;
    cx.expect_put(&k, &stale, Condition::IfRevision(4), false, "IfRevision(4) again, the record now at 5").await?;
    cx.expect_get(&k, Some(&v5), "after a stale IfRevision").await
}

async fn if_revision_mismatching<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let k = cx.key("k");
    let v4 = entry(b"revision 4", 4, None);
    let other = entry(b"other", 9, None);
    cx.expect_put(&k, &v4, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.expect_put(&k, &other, Condition::IfRevision(3), false, "IfRevision(3) on a record at revision 4").await?;
    cx.expect_put(&k, &other, Condition::IfRevision(5), false, "IfRevision(5) on a record at revision 4").await?;
    cx.expect_get(&k, Some(&v4), "after refused IfRevision writes").await
}

async fn if_revision_on_absent<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let (never, deleted) = (cx.key("never-written"), cx.key("deleted"));
    let e = entry(b"should not exist", 2, None);
    cx.expect_put(&never, &e, Condition::IfRevision(1), false, "IfRevision on a key never written").await?;
    cx.expect_get(&never, None, "a refused IfRevision must not create the record").await?;
    cx.expect_put(&deleted, &entry(b"v1", 1, None), Condition::Always, true, "Put Always on a fresh key").await?;
    cx.delete(&deleted).await?;
    cx.expect_put(&deleted, &e, Condition::IfRevision(1), false, "IfRevision with the deleted record's revision")
        .await?;
    cx.expect_get(&deleted, None, "a refused IfRevision must not resurrect the record").await
}

async fn if_revision_on_expired<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let t0 = cx.now;
    let k = cx.key("k");
    let old = entry(b"old", 4, Some(t0.plus(TTL)));
    let new = entry(b"new", 5, None);
    cx.expect_put(&k, &old, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.advance_to(t0.plus(TTL));
    cx.expect_put(&k, &new, Condition::IfRevision(4), false, "IfRevision(4) on an expired record at revision 4")
        .await?;
    cx.expect_get(&k, None, "after a refused IfRevision on an expired record").await
}

async fn take_live<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let k = cx.key("k");
    let e = entry(b"single use", 9, Some(cx.now.plus(10 * TTL)));
    cx.expect_put(&k, &e, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.expect_take(&k, Some(&e), "Take of a live record returns all of it").await?;
    cx.expect_take(&k, None, "a second Take").await?;
    cx.expect_get(&k, None, "after Take").await?;
    let again = entry(b"again", 10, None);
    cx.expect_put(&k, &again, Condition::IfAbsent, true, "IfAbsent on a taken key").await
}

async fn take_missing<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let k = cx.key("never-written");
    cx.expect_take(&k, None, "Take of a key never written").await
}

async fn take_expired<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let t0 = cx.now;
    let k = cx.key("k");
    let e = entry(b"expired", 1, Some(t0.plus(TTL)));
    cx.expect_put(&k, &e, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.advance_to(t0.plus(2 * TTL));
    cx.expect_take(&k, None, "Take of an expired record").await?;
    cx.expect_get(&k, None, "after Take of an expired record").await
}

async fn delete_idempotent<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let t0 = cx.now;
    let (k, never, expired) = (cx.key("k"), cx.key("never-written"), cx.key("expired"));
    let e = entry(b"doomed", 1, None);
    cx.expect_put(&k, &e, Condition::Always, true, "Put Always on a fresh key").await?;
    let gone = entry(b"expires", 1, Some(t0.plus(TTL)));
    cx.expect_put(&expired, &gone, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.delete(&k).await?;
    cx.expect_get(&k, None, "after Delete").await?;
    cx.delete(&k).await?;
    cx.delete(&never).await?;
    cx.advance_to(t0.plus(TTL));
    cx.delete(&expired).await?;
    let fresh = entry(b"reborn", 2, None);
    cx.expect_put(&k, &fresh, Condition::IfAbsent, true, "IfAbsent on a deleted key").await?;
    cx.expect_get(&k, Some(&fresh), "after IfAbsent on a deleted key").await
}

async fn expiry_boundary_get<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let t = cx.now.plus(TTL);
    let k = cx.key("k");
    let e = entry(b"boundary", 1, Some(t));
    cx.expect_put(&k, &e, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.advance_to(UnixTime::from_secs(t.as_secs().saturating_sub(1)));
    cx.expect_get(&k, Some(&e), "one second before expires_at the record is alive").await?;
    cx.advance_to(t);
    cx.expect_get(&k, None, "at expires_at the record is dead").await
}

async fn expiry_boundary_list<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let t = cx.now.plus(TTL);
    let prefix = cx.key("");
    let written = cx.put_all(&[("a", Some(t)), ("b", None), ("c", Some(t.plus(1)))]).await?;
    cx.advance_to(UnixTime::from_secs(t.as_secs().saturating_sub(1)));
    cx.expect_list_all(&prefix, 10, &written, 3, "one second before the first expiry").await?;
    cx.advance_to(t);
    let alive: Listing = written.iter().filter(|(k, _)| !k.ends_with("/a")).cloned().collect();
    cx.expect_list_all(&prefix, 10, &alive, 3, "at the first record's expires_at").await?;
    cx.advance_to(t.plus(1));
    let alive: Listing = written.iter().filter(|(k, _)| k.ends_with("/b")).cloned().collect();
    cx.expect_list_all(&prefix, 10, &alive, 3, "at the second record's expires_at").await
}

async fn expiry_boundary_take<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let t = cx.now.plus(TTL);
    let (a, b) = (cx.key("a"), cx.key("b"));
    let e = entry(b"boundary", 1, Some(t));
    cx.expect_put(&a, &e, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.expect_put(&b, &e, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.advance_to(UnixTime::from_secs(t.as_secs().saturating_sub(1)));
    cx.expect_take(&a, Some(&e), "one second before expires_at Take gets the record").await?;
    cx.advance_to(t);
    cx.expect_take(&b, None, "at expires_at Take gets nothing").await
}

async fn expiry_boundary_if_revision<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let t = cx.now.plus(TTL);
    let (a, b) = (cx.key("a"), cx.key("b"));
    let e = entry(b"boundary", 3, Some(t));
    let next = entry(b"next", 4, None);
    cx.expect_put(&a, &e, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.expect_put(&b, &e, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.advance_to(UnixTime::from_secs(t.as_secs().saturating_sub(1)));
    cx.expect_put(&a, &next, Condition::IfRevision(3), true, "IfRevision one second before expires_at").await?;
    cx.advance_to(t);
    cx.expect_put(&b, &next, Condition::IfRevision(3), false, "IfRevision at expires_at").await?;
    cx.expect_get(&a, Some(&next), "the record IfRevision replaced before its expiry").await?;
    cx.expect_get(&b, None, "the record IfRevision was refused on at its expiry").await
}

async fn expiry_boundary_if_absent<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let t = cx.now.plus(TTL);
    let (a, b) = (cx.key("a"), cx.key("b"));
    let e = entry(b"boundary", 1, Some(t));
    let next = entry(b"next", 2, None);
    cx.expect_put(&a, &e, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.expect_put(&b, &e, Condition::Always, true, "Put Always on a fresh key").await?;
    cx.advance_to(UnixTime::from_secs(t.as_secs().saturating_sub(1)));
    cx.expect_put(&a, &next, Condition::IfAbsent, false, "IfAbsent one second before expires_at").await?;
    cx.advance_to(t);
    cx.expect_put(&b, &next, Condition::IfAbsent, true, "IfAbsent at expires_at").await?;
    cx.expect_get(&b, Some(&next), "after IfAbsent at expires_at").await
}

async fn distinct_keys<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let written = cx
        .put_all(&[
            ("Ab", None),
            ("aB", None),
            ("ab", None),
            ("ab/", None),
            ("ab-", None),
            ("ab.", None),
            ("ab_", None),
            ("ab~", None),
            ("ab0", None),
        ])
        .await?;
    for (k, e) in &written {
        cx.expect_get(k, Some(e), "each key holds its own record").await?;
    }
    let unwritten = cx.key("AB");
    cx.expect_get(&unwritten, None, "a key differing only in case from written ones").await
}

async fn list_empty_prefix<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let prefix = cx.key("nothing-here/");
    let (entries, cursor) = cx.list(&prefix, None, 10).await?;
    if entries.is_empty() && cursor.is_none() {
        Ok(())
    } else {
        Err(format!(
            "List of an unused prefix returned {} and cursor {cursor:?}, expected nothing and no cursor",
            cx.show_keys(&entries)
        ))
    }
}

async fn list_order<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let far = Some(cx.now.plus(1000 * TTL));
    // Written out of order. In byte order '-' < '.' < '/' < '0' < 'A' < 'Z'
    // < '_' < 'a' < '~'; a locale collation orders several of these
    // differently or ignores punctuation.
    let written = cx
        .put_all(&[
            ("~", None),
            ("a0", far),
            ("a/b", None),
            ("A", far),
            ("a-b", None),
            ("a", None),
            ("_", far),
            ("a.", None),
            ("a/", None),
            ("Z", far),
            ("a~", None),
            ("b", None),
            ("a-", far),
        ])
        .await?;
    let prefix = cx.key("");
    cx.expect_list_all(&prefix, 100, &written, written.len(), "all keys in one listing").await
}

async fn list_limit<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let written = cx.put_all(&[("k3", None), ("k0", None), ("k4", None), ("k1", None), ("k2", None)]).await?;
    let prefix = cx.key("");
    for limit in [1u32, 2, 4] {
        let (page, cursor) = cx.list(&prefix, None, limit).await?;
        let what = format!("the first page with limit {limit}");
        check_page(cx, &page, limit, &written, &what)?;
        if page.len() < written.len() && cursor.is_none() {
            return Err(format!(
                "{what} listed {} of {} records and no cursor: the listing claims to be complete",
                page.len(),
                written.len()
            ));
        }
    }
    let (page, cursor) = cx.list(&prefix, None, 6).await?;
    if page != written || cursor.is_some() {
        return Err(format!(
            "List with limit 6 over 5 records returned {} and cursor {cursor:?}, expected all 5 and no cursor",
            cx.show_keys(&page)
        ));
    }
    cx.expect_list_all(&prefix, 5, &written, written.len(), "limit equal to the number of records").await
}

async fn list_pagination<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let keys: Vec<(String, Option<UnixTime>)> = (0..11).map(|i| (format!("item-{:02}", (i * 7) % 11), None)).collect();
    let specs: Vec<(&str, Option<UnixTime>)> = keys.iter().map(|(k, e)| (k.as_str(), *e)).collect();
    let written = cx.put_all(&specs).await?;
    let prefix = cx.key("");
    for limit in [1u32, 2, 3, 4, 10] {
        let what = format!("pages of {limit}");
        cx.expect_list_all(&prefix, limit, &written, written.len(), &what).await?;
    }
    Ok(())
}

async fn list_prefix_isolation<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let all = cx
        .put_all(&[
            ("a/b", None),
            ("a/b/x", None),
            ("a/b/y", None),
            ("a/bc", None),
            ("a/bc/x", None),
            ("a/b-", None),
            ("a/b.", None),
            ("a/b0", None),
            ("a/b~", None),
            ("a/a", None),
            ("a/c", None),
            ("a/B/x", None),
            ("a", None),
        ])
        .await?;
    for sub in ["a/b/", "a/bc", "a/b", "a/", "a/b/x", "a/B", "a/b/x/"] {
        let prefix = cx.key(sub);
        let want: Listing = all.iter().filter(|(k, _)| k.starts_with(&prefix)).cloned().collect();
        for limit in [1u32, 100] {
            let what = format!("prefix {sub:?}, pages of {limit}");
            cx.expect_list_all(&prefix, limit, &want, all.len(), &what).await?;
        }
    }
    Ok(())
}

async fn list_prefix_is_literal<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let all = cx
        .put_all(&[("x_y/1", None), ("xzy/1", None), ("x.y/1", None), ("xay/1", None), ("X_Y/1", None), ("x_yz", None)])
        .await?;
    for sub in ["x_y/", "x.y/", "x_y", "x"] {
        let prefix = cx.key(sub);
        let want: Listing = all.iter().filter(|(k, _)| k.starts_with(&prefix)).cloned().collect();
        let what = format!("prefix {sub:?}");
        cx.expect_list_all(&prefix, 100, &want, all.len(), &what).await?;
    }
    Ok(())
}

async fn list_skips_expired<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let t = cx.now.plus(TTL);
    // A run of five dead records, longer than any page below, then a mix.
    let dead = [true, true, true, true, true, false, true, false, false, true];
    let names: Vec<String> = (0..dead.len()).map(|i| format!("k{i}")).collect();
    let specs: Vec<(&str, Option<UnixTime>)> =
        names.iter().zip(dead).map(|(n, d)| (n.as_str(), if d { Some(t) } else { None })).collect();
    let written = cx.put_all(&specs).await?;
    cx.advance_to(t);
    let alive: Listing = written.iter().filter(|(_, e)| e.expires_at.is_none()).cloned().collect();
    let prefix = cx.key("");
    for limit in [1u32, 2, 3, 100] {
        let what = format!("pages of {limit}, after half the records expired");
        cx.expect_list_all(&prefix, limit, &alive, written.len(), &what).await?;
    }
    Ok(())
}

async fn list_cursor_survives_deletes<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let specs = [("k0", None), ("k1", None), ("k2", None), ("k3", None), ("k4", None), ("k5", None), ("k6", None)];
    let written = cx.put_all(&specs).await?;
    let prefix = cx.key("");
    // As the core's cascade does: delete what one page listed and fetch the
    // next page in the same batch, the listing last.
    let mut seen: Listing = Vec::new();
    let mut ops = vec![StorageOp::List { prefix: prefix.clone(), cursor: None, limit: 2 }];
    let max_batches = written.len() + 2;
    for _ in 0..max_batches {
        let deletes = ops.len().saturating_sub(1);
        let replies = cx.batch("a batch of Deletes then a List with the cursor", ops).await?;
        let mut replies = replies.into_iter();
        for reply in replies.by_ref().take(deletes) {
            if reply != Reply::Done {
                return Err(format!("Delete replied {}, expected Done", show_reply(&reply)));
            }
        }
        let (page, cursor) = match replies.next() {
            Some(Reply::Listed { entries, cursor }) => (entries, cursor),
            other => return Err(format!("List replied {}, expected a listing", show_opt_reply(other.as_ref()))),
        };
        if page.len() > 2 {
            return Err(format!("a page with limit 2 held {}", page.len()));
        }
        ops = page.iter().map(|(k, _)| StorageOp::Delete { key: k.clone() }).collect();
        seen.extend(page);
        match cursor {
            Some(cursor) => ops.push(StorageOp::List { prefix: prefix.clone(), cursor: Some(cursor), limit: 2 }),
            None => {
                if let Some(msg) = diff_listing(cx, &seen, &written) {
                    return Err(format!("deleting each page before fetching the next: {msg}"));
                }
                if !ops.is_empty() {
                    cx.batch("deleting the last page", ops).await?;
                }
                return cx.expect_list_all(&prefix, 10, &[], written.len(), "after deleting everything").await;
            }
        }
    }
    Err(format!("the listing did not finish within {max_batches} pages"))
}

async fn batch_replies_in_order<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let (put, fresh, get, take, del, cas, missing) = (
        cx.key("put"),
        cx.key("fresh"),
        cx.key("get"),
        cx.key("take"),
        cx.key("delete"),
        cx.key("cas"),
        cx.key("missing"),
    );
    let list_prefix = cx.key("listed/");
    let e = |v: &[u8], r: u64| entry(v, r, None);
    let (e_get, e_take, e_del, e_cas) = (e(b"get me", 11), e(b"take me", 12), e(b"delete me", 13), e(b"cas me", 14));
    let setup = vec![
        put_op(&get, &e_get, Condition::Always),
        put_op(&take, &e_take, Condition::Always),
        put_op(&del, &e_del, Condition::Always),
        put_op(&cas, &e_cas, Condition::Always),
        put_op(&format!("{list_prefix}1"), &e(b"listed 1", 21), Condition::Always),
        put_op(&format!("{list_prefix}2"), &e(b"listed 2", 22), Condition::Always),
    ];
    cx.track(&setup);
    let replies = cx.batch("setup batch of six Puts", setup).await?;
    if replies.iter().any(|r| *r != Reply::Written(true)) {
        return Err(format!("setup Puts replied {}, expected Written(true) each", show_replies(&replies)));
    }
    let (e_put, e_fresh, e_cas2) = (e(b"put", 31), e(b"fresh", 32), e(b"cas me again", 15));
    let listed = vec![(format!("{list_prefix}1"), e(b"listed 1", 21)), (format!("{list_prefix}2"), e(b"listed 2", 22))];
    let ops = vec![
        put_op(&put, &e_put, Condition::Always),
        StorageOp::Get { key: get.clone() },
        StorageOp::Take { key: take.clone() },
        put_op(&fresh, &e_fresh, Condition::IfAbsent),
        StorageOp::Delete { key: del.clone() },
        StorageOp::List { prefix: list_prefix, cursor: None, limit: 10 },
        StorageOp::Get { key: missing },
        put_op(&cas, &e_cas2, Condition::IfRevision(14)),
        put_op(&get, &e(b"refused", 99), Condition::IfAbsent),
    ];
    let want = vec![
        Reply::Written(true),
        Reply::Entry(Some(e_get.clone())),
        Reply::Entry(Some(e_take)),
        Reply::Written(true),
        Reply::Done,
        Reply::Listed { entries: listed, cursor: None },
        Reply::Entry(None),
        Reply::Written(true),
        Reply::Written(false),
    ];
    cx.track(&ops);
    let got = cx.batch("a batch of nine mixed operations", ops).await?;
    if got != want {
        return Err(format!(
            "a batch of nine mixed operations replied {}, expected {}",
            show_replies(&got),
            show_replies(&want)
        ));
    }
    cx.expect_get(&put, Some(&e_put), "after the batch's Put").await?;
    cx.expect_get(&fresh, Some(&e_fresh), "after the batch's IfAbsent").await?;
    cx.expect_get(&get, Some(&e_get), "after the batch's refused IfAbsent").await?;
    cx.expect_get(&take, None, "after the batch's Take").await?;
    cx.expect_get(&del, None, "after the batch's Delete").await?;
    cx.expect_get(&cas, Some(&e_cas2), "after the batch's IfRevision").await
}

async fn binary_values<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let values: Vec<(&str, Vec<u8>)> = vec![
        ("every-byte", every_byte.clone()),
        ("every-byte-reversed", every_byte.into_iter().rev().collect()),
        ("invalid-utf8", vec![0xff, 0xfe, 0xc3, 0x28, 0x80, 0xed, 0xa0, 0x80, 0xf8]),
        ("nuls", vec![0; 16]),
        ("embedded-nul", b"abc\0def\0".to_vec()),
        ("lone-ff", vec![0xff]),
        ("trailing-space", b"value \t\r\n ".to_vec()),
        ("large", noise(16 * 1024, 0x5eed)),
    ];
    let mut written: Listing = Vec::new();
    for (revision, (name, value)) in (1u64..).zip(values) {
        let k = cx.key(name);
        let e = entry(&value, revision, None);
        cx.expect_put(&k, &e, Condition::Always, true, "Put Always on a fresh key").await?;
        written.push((k, e));
    }
    for (k, e) in &written {
        cx.expect_get(k, Some(e), "the bytes must come back unchanged").await?;
    }
    written.sort_by(|a, b| a.0.cmp(&b.0));
    let prefix = cx.key("");
    cx.expect_list_all(&prefix, 100, &written, written.len(), "listing binary values").await?;
    match written.first() {
        Some((k, e)) => cx.expect_take(k, Some(e), "Take returns the bytes unchanged").await,
        None => Ok(()),
    }
}

async fn long_keys<D: Driver + ?Sized>(cx: &mut Cx<'_, D>) -> Outcome {
    const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
    let head = cx.key("");
    let Some(fill) = (LONG_KEY_LEN - 1).checked_sub(head.len()) else {
        return Err(format!("the namespace is too long to build {LONG_KEY_LEN}-byte keys; use a shorter one"));
    };
    let filler: String = URL_SAFE.iter().cycle().take(fill).map(|b| char::from(*b)).collect();
    let stem = format!("{head}{filler}");
    // Two 400-byte keys differing only in the last byte, and the 399-byte
    // key both extend: a backend that truncates or hashes keys merges them.
    let keys = [stem.clone(), format!("{stem}A"), format!("{stem}B")];
    let mut written: Listing = Vec::new();
    for (revision, k) in (1u64..).zip(keys) {
        let e = entry(format!("long key {revision}").as_bytes(), revision, None);
        cx.expect_put(&k, &e, Condition::Always, true, "Put Always on a fresh long key").await?;
        written.push((k, e));
    }
    for (k, e) in &written {
        cx.expect_get(k, Some(e), "each long key holds its own record").await?;
    }
    cx.expect_list_all(&stem, 10, &written, written.len(), "listing by a 399-byte prefix").await?;
    match written.last() {
        Some((k, e)) => cx.expect_take(k, Some(e), "Take of a long key").await,
        None => Ok(()),
    }
}

async fn cleanup<D: Driver + ?Sized>(cx: &mut Cx<'_, D>, verify: bool) -> Verdict {
    let keys: Vec<String> = std::mem::take(&mut cx.written).into_iter().collect();
    for chunk in keys.chunks(CLEANUP_BATCH) {
        let ops = chunk.iter().map(|k| StorageOp::Delete { key: k.clone() }).collect();
        if let Err(m) = cx.batch("cleanup Deletes", ops).await {
            return Verdict::Failed(m);
        }
    }
    if !verify {
        return Verdict::NotApplicable(format!(
            "records deleted, but not verified: needs {}",
            Capability::StronglyConsistentReads
        ));
    }
    let root = cx.suite_root.clone();
    match cx.list(&root, None, 5).await {
        Ok((entries, _)) if entries.is_empty() => Verdict::Passed,
        Ok((entries, _)) => Verdict::Failed(format!(
            "after deleting every key the suite wrote, List still returns {}",
            cx.show_keys(&entries)
        )),
        Err(m) => Verdict::Failed(m),
    }
}

// ---- the check context ------------------------------------------------------

/// The state of one run: the driver, where keys go, the clock, and what to
/// clean up.
struct Cx<'d, D: ?Sized> {
    driver: &'d mut D,
    /// `{namespace}/s/`.
    suite_root: String,
    /// The running check's name, the folder of its keys.
    check: &'static str,
    now: UnixTime,
    written: BTreeSet<String>,
}

impl<D: Driver + ?Sized> Cx<'_, D> {
    fn key(&self, suffix: &str) -> String {
        format!("{}{}/{suffix}", self.suite_root, self.check)
    }

    /// Move the clock forward (never back) to `t`.
    fn advance_to(&mut self, t: UnixTime) {
        self.now = self.now.max(t);
    }

    /// A key for messages: without the common root, and shortened.
    fn show(&self, key: &str) -> String {
        let rel = key.strip_prefix(self.suite_root.as_str()).unwrap_or(key);
        match rel.get(..48) {
            Some(head) if rel.len() > 56 => format!("{head:?}...({} bytes)", key.len()),
            _ => format!("{rel:?}"),
        }
    }

    fn show_keys(&self, entries: &[(String, Entry)]) -> String {
        let keys: Vec<String> = entries.iter().map(|(k, _)| self.show(k)).collect();
        format!("[{}]", keys.join(", "))
    }

    /// Remember the keys `ops` may create, for cleanup.
    fn track(&mut self, ops: &[StorageOp]) {
        for op in ops {
            if let StorageOp::Put { key, .. } = op {
                self.written.insert(key.clone());
            }
        }
    }

    async fn batch(&mut self, what: &str, ops: Vec<StorageOp>) -> Result<Vec<Reply>, String> {
        let n = ops.len();
        let now = self.now;
        match self.driver.storage(StorageRequest { now, ops }).await {
            Ok(replies) if replies.len() == n => Ok(replies),
            Ok(replies) => Err(format!("{what} at now={now}: {} replies for {n} operations", replies.len())),
            Err(e) => Err(format!("{what} at now={now}: {e}")),
        }
    }

    async fn one(&mut self, what: &str, op: StorageOp) -> Result<Reply, String> {
        self.track(core::slice::from_ref(&op));
        let mut replies = self.batch(what, vec![op]).await?;
        replies.pop().ok_or_else(|| format!("{what}: no reply"))
    }

    async fn get(&mut self, key: &str) -> Result<Option<Entry>, String> {
        let what = format!("Get {}", self.show(key));
        match self.one(&what, StorageOp::Get { key: key.to_owned() }).await? {
            Reply::Entry(e) => Ok(e),
            other => Err(format!("{what} replied {}, expected an entry reply", show_reply(&other))),
        }
    }

    async fn expect_get(&mut self, key: &str, want: Option<&Entry>, why: &str) -> Outcome {
        let got = self.get(key).await?;
        if got.as_ref() == want {
            Ok(())
        } else {
            Err(format!(
                "{why}: Get {} at now={} returned {}, expected {}",
                self.show(key),
                self.now,
                show_entry(got.as_ref()),
                show_entry(want)
            ))
        }
    }

    async fn expect_put(&mut self, key: &str, e: &Entry, condition: Condition, want: bool, why: &str) -> Outcome {
        let what = format!("Put {} {condition:?} (revision {})", self.show(key), e.revision);
        match self.one(&what, put_op(key, e, condition)).await? {
            Reply::Written(w) if w == want => Ok(()),
            Reply::Written(w) => {
                Err(format!("{why}: {what} at now={} replied Written({w}), expected Written({want})", self.now))
            }
            other => Err(format!("{why}: {what} replied {}, expected Written", show_reply(&other))),
        }
    }

    async fn expect_take(&mut self, key: &str, want: Option<&Entry>, why: &str) -> Outcome {
        let what = format!("Take {}", self.show(key));
        match self.one(&what, StorageOp::Take { key: key.to_owned() }).await? {
            Reply::Entry(got) if got.as_ref() == want => Ok(()),
            Reply::Entry(got) => Err(format!(
                "{why}: {what} at now={} returned {}, expected {}",
                self.now,
                show_entry(got.as_ref()),
                show_entry(want)
            )),
            other => Err(format!("{why}: {what} replied {}, expected an entry reply", show_reply(&other))),
        }
    }

    async fn delete(&mut self, key: &str) -> Outcome {
        let what = format!("Delete {}", self.show(key));
        match self.one(&what, StorageOp::Delete { key: key.to_owned() }).await? {
            Reply::Done => Ok(()),
            other => Err(format!("{what} replied {}, expected Done", show_reply(&other))),
        }
    }

    async fn list(
        &mut self,
        prefix: &str,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<(Listing, Option<String>), String> {
        let what = format!("List {} limit {limit} cursor {cursor:?}", self.show(prefix));
        match self.one(&what, StorageOp::List { prefix: prefix.to_owned(), cursor, limit }).await? {
            Reply::Listed { entries, cursor } => Ok((entries, cursor)),
            other => Err(format!("{what} replied {}, expected a listing", show_reply(&other))),
        }
    }

    /// Follow cursors to the end. `stored` is how many records (live or
    /// dead) lie under the prefix: every page must make progress over at
    /// least one of them, so a listing taking more pages than that is stuck.
    async fn list_all(&mut self, prefix: &str, limit: u32, stored: usize) -> Result<Listing, String> {
        let max_pages = stored.saturating_add(2);
        let mut out: Listing = Vec::new();
        let mut cursor = None;
        for _ in 0..max_pages {
            let (page, next) = self.list(prefix, cursor, limit).await?;
            if u32::try_from(page.len()).map_or(true, |n| n > limit) {
                return Err(format!("a page with limit {limit} held {} entries", page.len()));
            }
            if let Some((k, _)) = page.iter().find(|(k, _)| !k.starts_with(prefix)) {
                return Err(format!("List {} returned {}, which lacks the prefix", self.show(prefix), self.show(k)));
            }
            out.extend(page);
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
        Err(format!("listing {} with limit {limit} did not finish within {max_pages} pages", self.show(prefix)))
    }

    async fn expect_list_all(
        &mut self,
        prefix: &str,
        limit: u32,
        want: &[(String, Entry)],
        stored: usize,
        why: &str,
    ) -> Outcome {
        let got = self.list_all(prefix, limit, stored).await?;
        match diff_listing(self, &got, want) {
            None => Ok(()),
            Some(msg) => Err(format!("{why}: List {} at now={}: {msg}", self.show(prefix), self.now)),
        }
    }

    /// Write one record per `(suffix, expiry)` in one batch, each with its
    /// own value and revision, and return what a listing of them should be.
    async fn put_all(&mut self, specs: &[(&str, Option<UnixTime>)]) -> Result<Listing, String> {
        let mut written: Listing = (1u64..)
            .zip(specs)
            .map(|(revision, (suffix, expires_at))| {
                (self.key(suffix), entry(format!("value of {suffix}").as_bytes(), revision, *expires_at))
            })
            .collect();
        let ops: Vec<StorageOp> = written.iter().map(|(k, e)| put_op(k, e, Condition::Always)).collect();
        self.track(&ops);
        let replies = self.batch("a batch of Put Always on fresh keys", ops).await?;
        if let Some(bad) = replies.iter().find(|r| **r != Reply::Written(true)) {
            return Err(format!(
                "a batch of Put Always on fresh keys replied {}, expected Written(true)",
                show_reply(bad)
            ));
        }
        written.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(written)
    }
}

/// Check one page: at most `limit` entries, and the first entries of `want`.
fn check_page<D: Driver + ?Sized>(
    cx: &Cx<'_, D>,
    page: &[(String, Entry)],
    limit: u32,
    want: &[(String, Entry)],
    what: &str,
) -> Outcome {
    if u32::try_from(page.len()).map_or(true, |n| n > limit) {
        return Err(format!("{what} held {} entries", page.len()));
    }
    if want.get(..page.len()) != Some(page) {
        return Err(format!("{what} listed {}, expected the first of {}", cx.show_keys(page), cx.show_keys(want)));
    }
    Ok(())
}

/// What differs between two listings, if anything.
fn diff_listing<D: Driver + ?Sized>(
    cx: &Cx<'_, D>,
    got: &[(String, Entry)],
    want: &[(String, Entry)],
) -> Option<String> {
    let got_keys: Vec<&String> = got.iter().map(|(k, _)| k).collect();
    let want_keys: Vec<&String> = want.iter().map(|(k, _)| k).collect();
    if got_keys != want_keys {
        return Some(format!("listed {}, expected {}", cx.show_keys(got), cx.show_keys(want)));
    }
    got.iter().zip(want).find(|(g, w)| g.1 != w.1).map(|((k, g), (_, w))| {
        format!("listed {} as {}, expected {}", cx.show(k), show_entry(Some(g)), show_entry(Some(w)))
    })
}

// ---- the race cases ------------------------------------------------------------

/// A contended operation for the adapter to issue from many tasks at once.
///
/// Run [`setup`](Self::setup) and check it with
/// [`check_setup`](Self::check_setup); issue [`contended`](Self::contended)
/// from N ≥ 2 tasks concurrently, each through its own connection or handle,
/// and pass all N results to [`judge`](Self::judge); then run
/// [`after`](Self::after) and pass its result to [`verify`](Self::verify);
/// finally run [`teardown`](Self::teardown). [`run_races`] does all of that
/// except the fan-out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaceCase {
    /// A stable identifier, such as `race_take`.
    pub name: &'static str,
    /// What the race demands of the backend.
    pub description: &'static str,
    /// The capability without which the case is not applicable.
    pub requires: Capability,
    /// Puts the key in its starting state.
    pub setup: StorageRequest,
    /// The request every contender issues.
    pub contended: StorageRequest,
    /// A read of the key after the race.
    pub after: StorageRequest,
    /// Deletes what the case wrote.
    pub teardown: StorageRequest,
    winner: Reply,
    loser: Reply,
    after_reply: Reply,
}

impl RaceCase {
    /// Whether the case applies to a backend declaring `capabilities`.
    pub fn applies_to(&self, capabilities: &Capabilities) -> bool {
        capabilities.has(self.requires)
    }

    /// Check the reply to [`setup`](Self::setup).
    pub fn check_setup(&self, replies: &Result<Vec<Reply>, StorageError>) -> Result<(), String> {
        match replies {
            Ok(r) if r.len() == self.setup.ops.len() && r.iter().all(|r| *r != Reply::Written(false)) => Ok(()),
            Ok(r) => Err(format!("{}: setup replied {}", self.name, show_replies(r))),
            Err(e) => Err(format!("{}: setup failed: {e}", self.name)),
        }
    }

    /// Check the contenders' results: exactly one won and every other lost
    /// cleanly. A storage error fails the case too: whether that contender's
    /// write happened is unknown, and a conforming backend answers contention
    /// with a clean loss, not an error.
    pub fn judge(&self, replies: &[Result<Vec<Reply>, StorageError>]) -> Result<(), String> {
        if replies.len() < 2 {
            return Err(format!("{}: a race needs at least two contenders, got {}", self.name, replies.len()));
        }
        let mut winners = 0usize;
        let mut problems = Vec::new();
        for (i, result) in replies.iter().enumerate() {
            match result.as_deref() {
                Ok([one]) if *one == self.winner => winners += 1,
                Ok([one]) if *one == self.loser => {}
                Ok(other) => problems.push(format!("contender {i} replied {}", show_replies(other))),
                Err(e) => problems.push(format!("contender {i} failed: {e}")),
            }
        }
        if winners != 1 {
            problems.insert(0, format!("{winners} of {} contenders won; exactly one must", replies.len()));
        }
        if problems.is_empty() { Ok(()) } else { Err(format!("{}: {}", self.name, problems.join("; "))) }
    }

    /// Check the reply to [`after`](Self::after): the key holds what the one
    /// winner left.
    pub fn verify(&self, replies: &Result<Vec<Reply>, StorageError>) -> Result<(), String> {
        match replies.as_deref() {
            Ok([one]) if *one == self.after_reply => Ok(()),
            Ok(other) => Err(format!(
                "{}: after the race, Get replied {}, expected {}",
                self.name,
                show_replies(other),
                show_reply(&self.after_reply)
            )),
            Err(e) => Err(format!("{}: after the race, Get failed: {e}", self.name)),
        }
    }
}

/// The race cases, with keys under `{namespace}/r/` and requests at `now`
/// (the expired-record case also at `now + 60`).
pub fn race_cases(namespace: &str, now: UnixTime) -> Vec<RaceCase> {
    let root = format!("{}r/", root(namespace));
    let req = |now: UnixTime, op: StorageOp| StorageRequest { now, ops: vec![op] };
    let get = |key: &str, now: UnixTime| req(now, StorageOp::Get { key: key.to_owned() });
    let delete = |key: &str| req(now, StorageOp::Delete { key: key.to_owned() });

    let k = format!("{root}if-absent");
    let won = entry(b"race if-absent", 1, None);
    let if_absent = RaceCase {
        name: "race_if_absent",
        description: "of concurrent IfAbsent puts on one absent key, exactly one writes",
        requires: Capability::AtomicConditionalWrites,
        setup: delete(&k),
        contended: req(now, put_op(&k, &won, Condition::IfAbsent)),
        after: get(&k, now),
        teardown: delete(&k),
        winner: Reply::Written(true),
        loser: Reply::Written(false),
        after_reply: Reply::Entry(Some(won)),
    };

    let k = format!("{root}if-revision");
    let start = entry(b"race if-revision start", 1, None);
    let won = entry(b"race if-revision next", 2, None);
    let if_revision = RaceCase {
        name: "race_if_revision",
        description: "of concurrent IfRevision puts on one record, exactly one writes",
        requires: Capability::AtomicConditionalWrites,
        setup: req(now, put_op(&k, &start, Condition::Always)),
        contended: req(now, put_op(&k, &won, Condition::IfRevision(1))),
        after: get(&k, now),
        teardown: delete(&k),
        winner: Reply::Written(true),
        loser: Reply::Written(false),
        after_reply: Reply::Entry(Some(won)),
    };

    let k = format!("{root}take");
    let start = entry(b"race take", 7, None);
    let take = RaceCase {
        name: "race_take",
        description: "of concurrent Takes of one record, exactly one gets it",
        requires: Capability::AtomicTake,
        setup: req(now, put_op(&k, &start, Condition::Always)),
        contended: req(now, StorageOp::Take { key: k.clone() }),
        after: get(&k, now),
        teardown: delete(&k),
        winner: Reply::Entry(Some(start)),
        loser: Reply::Entry(None),
        after_reply: Reply::Entry(None),
    };

    // Replacing an expired record is where a backend that emulates the
    // condition with a delete then an insert lets two writers through.
    let k = format!("{root}if-absent-expired");
    let later = now.plus(TTL);
    let start = entry(b"race expired", 1, Some(later));
    let won = entry(b"race expired replaced", 2, None);
    let if_absent_expired = RaceCase {
        name: "race_if_absent_over_expired",
        description: "of concurrent IfAbsent puts over one expired record, exactly one writes",
        requires: Capability::AtomicConditionalWrites,
        setup: req(now, put_op(&k, &start, Condition::Always)),
        contended: req(later, put_op(&k, &won, Condition::IfAbsent)),
        after: get(&k, later),
        teardown: delete(&k),
        winner: Reply::Written(true),
        loser: Reply::Written(false),
        after_reply: Reply::Entry(Some(won)),
    };

    vec![if_absent, if_revision, take, if_absent_expired]
}

/// Run every race case: setup through `driver`, the contended request through
/// `race` (which must issue it from N ≥ 2 concurrent tasks with their own
/// handles and return every result), then judge, verify and tear down.
/// Keys and time come from `opts` as for [`run_conformance`]; cases the
/// backend lacks the capability for are reported as not applicable.
pub async fn run_races<D, F, Fut>(driver: &mut D, opts: &ConformanceOptions, mut race: F) -> ConformanceReport
where
    D: Driver + ?Sized,
    F: FnMut(StorageRequest) -> Fut,
    Fut: Future<Output = Vec<Result<Vec<Reply>, StorageError>>>,
{
    let mut report = ConformanceReport::default();
    for case in race_cases(&opts.namespace, opts.base) {
        let verdict = if case.applies_to(&opts.capabilities) {
            let mut outcome = case.check_setup(&driver.storage(case.setup.clone()).await);
            if outcome.is_ok() {
                outcome = case.judge(&race(case.contended.clone()).await);
            }
            if outcome.is_ok() {
                outcome = case.verify(&driver.storage(case.after.clone()).await);
            }
            if opts.cleanup {
                // Tear down whatever the outcome, keeping the first error.
                let torn = teardown(&case, driver.storage(case.teardown.clone()).await);
                outcome = outcome.and(torn);
            }
            verdict(outcome)
        } else {
            not_applicable(case.requires)
        };
        report.push(CheckResult { name: case.name, description: case.description, verdict });
    }
    report
}

/// Run every race case against a synchronous store, issuing the contended
/// request `contenders` times one after another. This proves the judging
/// and the sequential semantics, not atomicity.
pub fn run_races_blocking<S: BlockingStore + ?Sized>(
    store: &mut S,
    opts: &ConformanceOptions,
    contenders: usize,
) -> ConformanceReport {
    let mut report = ConformanceReport::default();
    for case in race_cases(&opts.namespace, opts.base) {
        let verdict = if case.applies_to(&opts.capabilities) {
            let mut outcome = case.check_setup(&store.execute(case.setup.clone()));
            if outcome.is_ok() {
                let replies: Vec<_> = (0..contenders).map(|_| store.execute(case.contended.clone())).collect();
                outcome = case.judge(&replies);
            }
            if outcome.is_ok() {
                outcome = case.verify(&store.execute(case.after.clone()));
            }
            if opts.cleanup {
                // Tear down whatever the outcome, keeping the first error.
                let torn = teardown(&case, store.execute(case.teardown.clone()));
                outcome = outcome.and(torn);
            }
            verdict(outcome)
        } else {
            not_applicable(case.requires)
        };
        report.push(CheckResult { name: case.name, description: case.description, verdict });
    }
    report
}

fn teardown(case: &RaceCase, replies: Result<Vec<Reply>, StorageError>) -> Outcome {
    match replies {
        Ok(r) if r.iter().all(|r| *r == Reply::Done) && r.len() == case.teardown.ops.len() => Ok(()),
        Ok(r) => Err(format!("{}: teardown replied {}", case.name, show_replies(&r))),
        Err(e) => Err(format!("{}: teardown failed: {e}", case.name)),
    }
}

// ---- small helpers ------------------------------------------------------------

fn entry(value: &[u8], revision: u64, expires_at: Option<UnixTime>) -> Entry {
    Entry { value: value.to_vec(), revision, expires_at }
}

fn put_op(key: &str, e: &Entry, condition: Condition) -> StorageOp {
    StorageOp::Put {
        key: key.to_owned(),
        value: e.value.clone(),
        revision: e.revision,
        expires_at: e.expires_at,
        condition,
    }
}

/// Deterministic bytes of every value (xorshift64).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes().into_iter().fold(0u8, |acc, b| acc ^ b)
        })
        .collect()
}

fn show_bytes(v: &[u8]) -> String {
    match v.get(..24) {
        Some(head) if v.len() > 32 => format!("b\"{}\"...({} bytes)", head.escape_ascii(), v.len()),
        _ => format!("b\"{}\"", v.escape_ascii()),
    }
}

fn show_entry(e: Option<&Entry>) -> String {
    match e {
        None => "absent".to_owned(),
        Some(e) => {
            let expiry = e.expires_at.map_or_else(|| "never".to_owned(), |t| t.to_string());
            format!("{{value {}, revision {}, expires_at {expiry}}}", show_bytes(&e.value), e.revision)
        }
    }
}

fn show_reply(r: &Reply) -> String {
    match r {
        Reply::Entry(e) => format!("Entry({})", show_entry(e.as_ref())),
        Reply::Written(w) => format!("Written({w})"),
        Reply::Done => "Done".to_owned(),
        Reply::Listed { entries, cursor } => {
            let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
            format!("Listed({keys:?}, cursor {cursor:?})")
        }
    }
}

fn show_opt_reply(r: Option<&Reply>) -> String {
    r.map_or_else(|| "nothing".to_owned(), show_reply)
}

fn show_replies(rs: &[Reply]) -> String {
    let shown: Vec<String> = rs.iter().map(show_reply).collect();
    format!("[{}]", shown.join(", "))
}
