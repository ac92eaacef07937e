//! Flows, steps and the one drive loop.
//!
//! See the crate documentation for the contract. In short: feed
//! [`Input::Start`], then keep feeding the answer to each [`Step`] until the
//! flow says [`Step::Done`].

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::error::{OAuthError, reasons};
use crate::fetch::{FetchError, FetchRequest, FetchResponse};
use crate::hooks::{HookCall, HookReply};
use crate::storage::{Entry, Reply, StorageError, StorageRequest};

/// What a flow needs next.
#[derive(Debug)]
#[non_exhaustive]
#[must_use = "a step must be performed and its answer fed back"]
pub enum Step<T> {
    /// Perform these storage operations and feed back
    /// [`Input::Storage`] with one [`Reply`] per operation, in order.
    Storage(StorageRequest),
    /// Ask the application and feed back [`Input::Hook`].
    Hook(HookCall),
    /// Fetch a document over HTTPS, under the SSRF rules in
    /// [`FetchRequest`], and feed back [`Input::Fetch`]. Only asked when the
    /// provider has client ID metadata documents switched on.
    Fetch(FetchRequest),
    /// The flow is finished.
    Done(T),
}

/// The answer to the previous [`Step`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Input {
    /// The first input of every flow.
    Start,
    /// The replies to a [`Step::Storage`], or why the batch failed.
    Storage(Result<Vec<Reply>, StorageError>),
    /// The answer to a [`Step::Hook`].
    Hook(HookReply),
    /// The answer to a [`Step::Fetch`]: the response (whatever its status),
    /// or why there is none.
    Fetch(Result<FetchResponse, FetchError>),
}

/// Counters the drive loop keeps, for benchmarks and observability.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Storage batches requested (each one round trip to the backend).
    pub round_trips: u32,
    /// Storage operations requested in all batches.
    pub operations: u32,
    /// Hooks asked.
    pub hooks: u32,
    /// Outbound fetches requested.
    pub fetches: u32,
}

/// Outputs a flow can end in. A flow that is misdriven (wrong input, a
/// storage failure) still ends in a value of its output type, built from an
/// [`OAuthError`], so drivers never see a panic.
pub trait FlowOutput: Sized {
    /// The output that reports `error`.
    fn from_error(error: OAuthError) -> Self;
}

impl<T, E: From<OAuthError>> FlowOutput for Result<T, E> {
    fn from_error(error: OAuthError) -> Self {
        Err(E::from(error))
    }
}

/// The state machine behind a flow. Implemented by each endpoint.
pub(crate) trait Machine: Send {
    type Output;
    fn advance(&mut self, input: Input) -> Step<Self::Output>;
}

/// One request's protocol work, as an owned state machine.
///
/// A `Flow` holds no reference into the provider and no generator or clock;
/// it is `Send + 'static` and may be driven from any task or thread.
#[must_use = "a flow does nothing until driven"]
pub struct Flow<T> {
    machine: Box<dyn Machine<Output = T> + Send>,
    stats: FlowStats,
}

impl<T> core::fmt::Debug for Flow<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Flow").field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl<T: FlowOutput + Send + 'static> Flow<T> {
    pub(crate) fn new(machine: impl Machine<Output = T> + 'static) -> Self {
        Self { machine: Box::new(machine), stats: FlowStats::default() }
    }

    /// A flow that is already finished (no storage needed).
    pub(crate) fn ready(output: T) -> Self {
        Self::new(Ready(Some(output)))
    }

    /// Feed the answer to the previous step (or [`Input::Start`]) and get the
    /// next step.
    pub fn advance(&mut self, input: Input) -> Step<T> {
        let step = self.machine.advance(input);
        match &step {
            Step::Storage(r) => {
                self.stats.round_trips = self.stats.round_trips.saturating_add(1);
                self.stats.operations =
                    self.stats.operations.saturating_add(u32::try_from(r.ops.len()).unwrap_or(u32::MAX));
            }
            Step::Hook(_) => self.stats.hooks = self.stats.hooks.saturating_add(1),
            Step::Fetch(_) => self.stats.fetches = self.stats.fetches.saturating_add(1),
            Step::Done(_) => {}
        }
        step
    }

    /// What the flow has asked for so far.
    pub fn stats(&self) -> FlowStats {
        self.stats
    }
}

struct Ready<T>(Option<T>);

impl<T: FlowOutput + Send> Machine for Ready<T> {
    type Output = T;
    fn advance(&mut self, _input: Input) -> Step<T> {
        match self.0.take() {
            Some(out) => Step::Done(out),
            None => Step::Done(T::from_error(OAuthError::server_error(reasons::DRIVER_PROTOCOL))),
        }
    }
}

/// The runtime side of the drive loop: performs storage batches, answers
/// hooks and, when asked, fetches documents. Its futures need not be `Send`,
/// so Workers' JavaScript-backed futures and tokio's alike can implement it.
pub trait Driver {
    /// Perform one batch. Return one reply per operation, in order, or the
    /// error that stopped the batch.
    fn storage(&mut self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>>;

    /// Answer a hook. The default approves without changes.
    fn hook(&mut self, call: HookCall) -> impl Future<Output = HookReply> {
        core::future::ready(call.default_reply())
    }

    /// Fetch `request.url` with the SSRF rules [`FetchRequest`] lists: https
    /// only, every resolved address checked and the checked one connected
    /// to, no redirects followed, at most `request.max_bytes` of body, all
    /// within `request.timeout`. The default cannot fetch, and answers
    /// [`FetchError::Unsupported`]; a provider with client ID metadata
    /// documents on needs a driver that overrides it.
    fn fetch(&mut self, request: FetchRequest) -> impl Future<Output = Result<FetchResponse, FetchError>> {
        let _ = request;
        core::future::ready(Err(FetchError::Unsupported))
    }
}

/// Drive `flow` to completion with `driver`. This is the one drive loop of
/// the project; every adapter calls it.
pub async fn drive<T, D>(flow: &mut Flow<T>, driver: &mut D) -> T
where
    T: FlowOutput + Send + 'static,
    D: Driver + ?Sized,
{
    let mut input = Input::Start;
    loop {
        match flow.advance(input) {
            Step::Storage(request) => input = Input::Storage(driver.storage(request).await),
            Step::Hook(call) => input = Input::Hook(driver.hook(call).await),
            Step::Fetch(request) => input = Input::Fetch(driver.fetch(request).await),
            Step::Done(output) => return output,
        }
    }
}

/// A synchronous store, such as the in-memory one.
pub trait BlockingStore {
    /// Perform one batch (see [`Driver::storage`]).
    fn execute(&mut self, request: StorageRequest) -> Result<Vec<Reply>, StorageError>;
}

struct BlockingDriver<'a, S: ?Sized, H, F> {
    store: &'a mut S,
    hook: H,
    fetch: F,
}

impl<S, H, F> Driver for BlockingDriver<'_, S, H, F>
where
    S: BlockingStore + ?Sized,
    H: FnMut(HookCall) -> HookReply,
    F: FnMut(FetchRequest) -> Result<FetchResponse, FetchError>,
{
    fn storage(&mut self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> {
        core::future::ready(self.store.execute(request))
    }

    fn hook(&mut self, call: HookCall) -> impl Future<Output = HookReply> {
        core::future::ready((self.hook)(call))
    }

    fn fetch(&mut self, request: FetchRequest) -> impl Future<Output = Result<FetchResponse, FetchError>> {
        core::future::ready((self.fetch)(request))
    }
}

/// Drive `flow` with a synchronous store and hook function, on the calling
/// thread. It runs [`drive`] itself, so sync and async drivers share one loop.
/// Fetches are answered [`FetchError::Unsupported`]; see
/// [`drive_blocking_with_fetch`].
pub fn drive_blocking<T, S, H>(flow: &mut Flow<T>, store: &mut S, hook: H) -> T
where
    T: FlowOutput + Send + 'static,
    S: BlockingStore + ?Sized,
    H: FnMut(HookCall) -> HookReply,
{
    drive_blocking_with_fetch(flow, store, hook, |_| Err(FetchError::Unsupported))
}

/// [`drive_blocking`] with a synchronous fetcher as well, for tests and
/// tools that serve documents from memory.
pub fn drive_blocking_with_fetch<T, S, H, F>(flow: &mut Flow<T>, store: &mut S, hook: H, fetch: F) -> T
where
    T: FlowOutput + Send + 'static,
    S: BlockingStore + ?Sized,
    H: FnMut(HookCall) -> HookReply,
    F: FnMut(FetchRequest) -> Result<FetchResponse, FetchError>,
{
    let mut driver = BlockingDriver { store, hook, fetch };
    let mut fut = pin!(drive(flow, &mut driver));
    let mut cx = Context::from_waker(Waker::noop());
    // Every future of a blocking driver is ready when first polled, so one
    // poll completes the loop. Anything else would be a bug in this module;
    // it is reported, not spun on.
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => T::from_error(OAuthError::server_error(reasons::DRIVER_PROTOCOL)),
    }
}

// ---- helpers for machines -------------------------------------------------

/// Unpack the replies of a storage step, checking their count. Storage
/// failures become 503 `temporarily_unavailable` (retryable) or 500.
pub(crate) fn replies(input: Input, expected: usize) -> Result<Vec<Reply>, OAuthError> {
    match input {
        Input::Storage(Ok(r)) if r.len() == expected => Ok(r),
        Input::Storage(Err(StorageError::Unavailable | StorageError::Timeout)) => {
            Err(OAuthError::unavailable(reasons::STORAGE_UNAVAILABLE))
        }
        Input::Storage(Err(StorageError::Other(_))) => Err(OAuthError::server_error(reasons::STORAGE_FAILED)),
        _ => Err(OAuthError::server_error(reasons::DRIVER_PROTOCOL)),
    }
}

/// The single reply of a one-operation step.
pub(crate) fn one_reply(input: Input) -> Result<Reply, OAuthError> {
    replies(input, 1)?.pop().ok_or_else(|| OAuthError::server_error(reasons::DRIVER_PROTOCOL))
}

/// A `Get`/`Take` reply.
pub(crate) fn as_entry(reply: Reply) -> Result<Option<Entry>, OAuthError> {
    match reply {
        Reply::Entry(e) => Ok(e),
        _ => Err(OAuthError::server_error(reasons::DRIVER_PROTOCOL)),
    }
}

/// A `Put` reply.
pub(crate) fn as_written(reply: Reply) -> Result<bool, OAuthError> {
    match reply {
        Reply::Written(w) => Ok(w),
        _ => Err(OAuthError::server_error(reasons::DRIVER_PROTOCOL)),
    }
}

/// One page of a listing: entries and the cursor to continue from.
pub(crate) type Listing = (Vec<(String, Entry)>, Option<String>);

/// A `List` reply.
pub(crate) fn as_listed(reply: Reply) -> Result<Listing, OAuthError> {
    match reply {
        Reply::Listed { entries, cursor } => Ok((entries, cursor)),
        _ => Err(OAuthError::server_error(reasons::DRIVER_PROTOCOL)),
    }
}

/// A fetch result.
pub(crate) fn fetch_result(input: Input) -> Result<Result<FetchResponse, FetchError>, OAuthError> {
    match input {
        Input::Fetch(r) => Ok(r),
        _ => Err(OAuthError::server_error(reasons::DRIVER_PROTOCOL)),
    }
}

/// A hook reply.
pub(crate) fn hook_reply(input: Input) -> Result<HookReply, OAuthError> {
    match input {
        Input::Hook(r) => Ok(r),
        _ => Err(OAuthError::server_error(reasons::DRIVER_PROTOCOL)),
    }
}
