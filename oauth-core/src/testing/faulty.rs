//! Fault injection: a store wrapper that fails the N-th storage operation.
//!
//! Flows must grant nothing when storage fails part-way, whichever operation
//! fails and whether or not the write behind a lost reply happened. A test
//! runs a scenario once through [`FaultyStore::new`] to count its operations,
//! then once per operation `n` in `1..=total` and per [`FaultMode`] with
//! [`FaultyStore::with_fault`], and checks the outcome each time:
//!
//! ```
//! use oauth_core::testing::{Fault, FaultMode, FaultyStore, MemoryStore};
//! use oauth_core::{BlockingStore, StorageError, StorageOp, StorageRequest, UnixTime};
//!
//! let scenario = |store: &mut dyn BlockingStore| {
//!     let get = StorageOp::Get { key: "k".to_owned() };
//!     let now = UnixTime::from_secs(1);
//!     (0..3).map(|_| store.execute(StorageRequest { now, ops: vec![get.clone()] }).is_ok()).collect::<Vec<_>>()
//! };
//! let mut counting = FaultyStore::new(MemoryStore::new());
//! scenario(&mut counting);
//! for n in 1..=counting.ops_seen() {
//!     for mode in FaultMode::ALL {
//!         let mut store = FaultyStore::with_fault(MemoryStore::new(), Fault::new(n, mode, StorageError::Timeout));
//!         let ok = scenario(&mut store);
//!         assert_eq!(ok.iter().filter(|ok| !**ok).count(), 1);
//!         assert!(store.has_fired());
//!     }
//! }
//! ```

use std::future::Future;

use crate::flow::{BlockingStore, Driver};
use crate::hooks::{HookCall, HookReply};
use crate::storage::{Reply, StorageError, StorageRequest};

/// What happens to the batch holding the failing operation. In every mode
/// the batch's replies are lost and the driver reports the fault's error;
/// the modes differ in which of the batch's operations took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultMode {
    /// The operations before the failing one in its batch are applied; it
    /// and those after it are not (a connection lost mid-batch).
    FailBefore,
    /// The failing operation and those before it are applied, those after
    /// it are not (a timeout after the write happened).
    ApplyThenFail,
    /// Nothing of the batch is applied (a transaction rolled back, or a
    /// request that never reached the backend).
    FailBatch,
    /// The whole batch is applied and only the replies are lost (a
    /// committed transaction whose answer timed out).
    ApplyBatchThenFail,
}

impl FaultMode {
    /// Every mode, to iterate over.
    pub const ALL: [Self; 4] = [Self::FailBefore, Self::ApplyThenFail, Self::FailBatch, Self::ApplyBatchThenFail];
}

/// When and how to fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The operation to fail, counted from 1 across all batches; 0 never
    /// fires.
    pub at_op: u64,
    /// Which operations of its batch take effect.
    pub mode: FaultMode,
    /// The error the batch reports.
    pub error: StorageError,
    /// Once fired, fail every later batch too, applying nothing (an outage
    /// rather than a blip).
    pub sticky: bool,
}

impl Fault {
    /// Fail once, at operation `at_op` (1-based).
    pub fn new(at_op: u64, mode: FaultMode, error: StorageError) -> Self {
        Self { at_op, mode, error, sticky: false }
    }

    /// The same fault, failing every batch after it as well.
    #[must_use]
    pub fn sticky(mut self) -> Self {
        self.sticky = true;
        self
    }
}

/// The counting and deciding shared by [`FaultyStore`] and [`FaultyDriver`].
#[derive(Clone, Debug, Default)]
struct Injector {
    fault: Option<Fault>,
    ops_seen: u64,
    batches_seen: u64,
    faults_injected: u64,
}

/// What to do with one batch.
enum Plan {
    /// Run it as is.
    PassThrough,
    /// Run only its first `apply` operations, drop their replies and report
    /// `error`.
    Fail { apply: usize, error: StorageError },
}

impl Injector {
    fn plan(&mut self, batch_len: usize) -> Plan {
        let start = self.ops_seen;
        let len = u64::try_from(batch_len).unwrap_or(u64::MAX);
        self.ops_seen = start.saturating_add(len);
        self.batches_seen = self.batches_seen.saturating_add(1);
        let Some(fault) = &self.fault else { return Plan::PassThrough };
        let plan = if fault.sticky && self.faults_injected > 0 {
            Plan::Fail { apply: 0, error: fault.error.clone() }
        } else if self.faults_injected == 0 && fault.at_op > start && fault.at_op <= self.ops_seen {
            // 0-based position of the failing operation within this batch.
            let at = usize::try_from(fault.at_op - start - 1).unwrap_or(batch_len);
            let apply = match fault.mode {
                FaultMode::FailBefore => at,
                FaultMode::ApplyThenFail => at.saturating_add(1),
                FaultMode::FailBatch => 0,
                FaultMode::ApplyBatchThenFail => batch_len,
            };
            Plan::Fail { apply: apply.min(batch_len), error: fault.error.clone() }
        } else {
            return Plan::PassThrough;
        };
        self.faults_injected = self.faults_injected.saturating_add(1);
        plan
    }
}

/// A [`BlockingStore`] that passes batches to an inner store, counting their
/// operations, and fails the one holding operation number
/// [`Fault::at_op`]. See the module documentation for the usual loop.
#[derive(Clone, Debug)]
pub struct FaultyStore<S> {
    inner: S,
    injector: Injector,
}

impl<S: BlockingStore> FaultyStore<S> {
    /// A wrapper that only counts.
    pub fn new(inner: S) -> Self {
        Self { inner, injector: Injector::default() }
    }

    /// A wrapper that injects `fault`.
    pub fn with_fault(inner: S, fault: Fault) -> Self {
        Self { inner, injector: Injector { fault: Some(fault), ..Injector::default() } }
    }

    /// Shorthand for a one-off fault at operation `at_op` (1-based).
    pub fn failing_at(inner: S, at_op: u64, mode: FaultMode, error: StorageError) -> Self {
        Self::with_fault(inner, Fault::new(at_op, mode, error))
    }

    /// Replace the fault (or remove it with `None`) and reset the counters,
    /// keeping the inner store's data.
    pub fn set_fault(&mut self, fault: Option<Fault>) {
        self.injector = Injector { fault, ..Injector::default() };
    }

    /// Operations in every batch received so far, including those a fault
    /// kept from running.
    pub fn ops_seen(&self) -> u64 {
        self.injector.ops_seen
    }

    /// Batches received so far.
    pub fn batches_seen(&self) -> u64 {
        self.injector.batches_seen
    }

    /// Batches failed so far.
    pub fn faults_injected(&self) -> u64 {
        self.injector.faults_injected
    }

    /// True once the fault has fired.
    pub fn has_fired(&self) -> bool {
        self.injector.faults_injected > 0
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped store, mutably (writes through it are not counted).
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwrap.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: BlockingStore> BlockingStore for FaultyStore<S> {
    fn execute(&mut self, mut request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        match self.injector.plan(request.ops.len()) {
            Plan::PassThrough => self.inner.execute(request),
            Plan::Fail { apply, error } => {
                request.ops.truncate(apply);
                if !request.ops.is_empty() {
                    // The replies are what the fault loses; an error from the
                    // inner store changes nothing, the batch fails either way.
                    let _lost = self.inner.execute(request);
                }
                Err(error)
            }
        }
    }
}

/// The async counterpart of [`FaultyStore`]: wraps any [`Driver`], passing
/// hooks through untouched.
#[derive(Clone, Debug)]
pub struct FaultyDriver<D> {
    inner: D,
    injector: Injector,
}

impl<D: Driver> FaultyDriver<D> {
    /// A wrapper that only counts.
    pub fn new(inner: D) -> Self {
        Self { inner, injector: Injector::default() }
    }

    /// A wrapper that injects `fault`.
    pub fn with_fault(inner: D, fault: Fault) -> Self {
        Self { inner, injector: Injector { fault: Some(fault), ..Injector::default() } }
    }

    /// Replace the fault (or remove it with `None`) and reset the counters.
    pub fn set_fault(&mut self, fault: Option<Fault>) {
        self.injector = Injector { fault, ..Injector::default() };
    }

    /// Operations in every batch received so far, including those a fault
    /// kept from running.
    pub fn ops_seen(&self) -> u64 {
        self.injector.ops_seen
    }

    /// Batches received so far.
    pub fn batches_seen(&self) -> u64 {
        self.injector.batches_seen
    }

    /// Batches failed so far.
    pub fn faults_injected(&self) -> u64 {
        self.injector.faults_injected
    }

    /// True once the fault has fired.
    pub fn has_fired(&self) -> bool {
        self.injector.faults_injected > 0
    }

    /// The wrapped driver.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped driver, mutably.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Unwrap.
    pub fn into_inner(self) -> D {
        self.inner
    }
}

impl<D: Driver> Driver for FaultyDriver<D> {
    fn storage(&mut self, mut request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> {
        let plan = self.injector.plan(request.ops.len());
        async move {
            match plan {
                Plan::PassThrough => self.inner.storage(request).await,
                Plan::Fail { apply, error } => {
                    request.ops.truncate(apply);
                    if !request.ops.is_empty() {
                        // As in FaultyStore: the replies are what is lost.
                        let _lost = self.inner.storage(request).await;
                    }
                    Err(error)
                }
            }
        }
    }

    fn hook(&mut self, call: HookCall) -> impl Future<Output = HookReply> {
        self.inner.hook(call)
    }
}
