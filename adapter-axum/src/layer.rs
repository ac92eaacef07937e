//! The tower layer, the per-request driver and the handler extractor.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use oauth_core::{
    AuthContext, Driver, FetchError, FetchRequest, FetchResponse, Flow, FlowOutput, HookCall, HookReply, Outcome,
    Provider, Reply, SecureRandom, StorageError, StorageRequest, UnixTime,
};
use tower::{Layer, Service};

use crate::fetch::SafeFetcher;
use crate::store::Store;

/// The largest request body the layer buffers by default: 1 MiB.
///
/// The provider needs the whole body, and it cannot tell which requests are
/// its own before it has seen them, so every request through the layer is
/// buffered, the application's included. The provider applies its own,
/// smaller limits to its endpoints; this cap only bounds memory.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// A boxed, `Send` future, as [`HookHandler`] returns.
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = HookReply> + Send + 'a>>;

/// The application's answers to the provider's hooks (token issuance,
/// client registration), asked only for hooks switched on in the provider's
/// `Hooks`.
///
/// Any `Fn(HookCall) -> impl Future<Output = HookReply>` closure that is
/// `Send + Sync` is a `HookHandler`. Without one, every hook gets
/// [`HookCall::default_reply`].
pub trait HookHandler: Send + Sync + 'static {
    /// Answer `call`.
    fn answer(&self, call: HookCall) -> HookFuture<'_>;
}

impl<F, Fut> HookHandler for F
where
    F: Fn(HookCall) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HookReply> + Send + 'static,
{
    fn answer(&self, call: HookCall) -> HookFuture<'_> {
        Box::pin(self(call))
    }
}

type Clock = Arc<dyn Fn() -> Option<UnixTime> + Send + Sync>;

/// The host environment failed to supply what a flow needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvironmentError {
    /// The system clock reads before the Unix epoch. Proceeding would make
    /// every expired record look alive.
    Clock,
    /// The operating system's random generator failed. Proceeding would mint
    /// guessable secrets.
    Random,
}

impl fmt::Display for EnvironmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Clock => f.write_str("the system clock reads before the Unix epoch"),
            Self::Random => f.write_str("the operating system's random generator failed"),
        }
    }
}

impl std::error::Error for EnvironmentError {}

/// A provider bound to a store: what the layer runs, and what the
/// application uses to run the flows it starts itself (the consent page's
/// `parse_authorization_request` and `complete_authorization`, say).
///
/// Cheap to clone.
#[derive(Clone)]
pub struct OAuth<S> {
    provider: Provider,
    store: S,
    hooks: Option<Arc<dyn HookHandler>>,
    clock: Clock,
    body_limit: usize,
    /// Fetches client ID metadata documents; `None` when they are off.
    fetcher: Option<SafeFetcher>,
}

impl<S> fmt::Debug for OAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth")
            .field("issuer", &self.provider.config().issuer)
            .field("hooks", &self.hooks.is_some())
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

impl<S: Store> OAuth<S> {
    /// `provider` with its records in `store`, the system clock, default
    /// hook answers and a [`DEFAULT_BODY_LIMIT`] body cap.
    pub fn new(provider: Provider, store: S) -> Self {
        let fetcher = crate::fetch::for_provider(&provider);
        Self { provider, store, hooks: None, clock: Arc::new(system_time), body_limit: DEFAULT_BODY_LIMIT, fetcher }
    }

    /// Answer hooks with `handler`.
    #[must_use]
    pub fn with_hooks(mut self, handler: impl HookHandler) -> Self {
        self.hooks = Some(Arc::new(handler));
        self
    }

    /// Buffer request bodies up to `bytes`; larger ones are refused with 413.
    #[must_use]
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Fetch client ID metadata documents with `fetcher` instead of the
    /// default [`SafeFetcher`] (a test resolver and CA, say).
    #[must_use]
    pub fn with_fetcher(mut self, fetcher: SafeFetcher) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// Read the time from `clock` instead of the system clock, for tests
    /// that move time.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> UnixTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(move || Some(clock()));
        self
    }

    /// The tower layer that serves the provider's endpoints and guards its
    /// protected resources in front of the application.
    pub fn layer(&self) -> OAuthLayer<S> {
        OAuthLayer { oauth: Arc::new(self.clone()) }
    }

    /// The provider.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The current time, as flows are given it.
    pub fn now(&self) -> Result<UnixTime, EnvironmentError> {
        (self.clock)().ok_or(EnvironmentError::Clock)
    }

    /// Start a flow with the current time and the operating system's
    /// generator, and drive it to its end.
    ///
    /// ```no_run
    /// # async fn consent<S: adapter_axum::Store>(oauth: adapter_axum::OAuth<S>, uri: http::Uri)
    /// #     -> Result<(), Box<dyn std::error::Error>> {
    /// let parsed = oauth.run(|provider, now, _rng| provider.parse_authorization_request(&uri, now)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn run<T, F>(&self, start: F) -> Result<T, EnvironmentError>
    where
        T: FlowOutput + Send + 'static,
        F: FnOnce(&Provider, UnixTime, &mut dyn SecureRandom) -> Flow<T>,
    {
        let now = self.now()?;
        let mut rng = OsRandom::default();
        let mut flow = start(&self.provider, now, &mut rng);
        if rng.failed {
            // The flow holds zeroed "random" bytes; it is dropped undriven,
            // so nothing derived from them is stored or sent.
            return Err(EnvironmentError::Random);
        }
        Ok(self.drive(&mut flow).await)
    }

    /// Drive a flow the application started itself.
    pub async fn drive<T: FlowOutput + Send + 'static>(&self, flow: &mut Flow<T>) -> T {
        let mut driver =
            StoreDriver { store: &self.store, hooks: self.hooks.as_deref(), fetcher: self.fetcher.as_ref() };
        oauth_core::drive(flow, &mut driver).await
    }

    /// Handle one buffered request: what the layer does between reading the
    /// body and dispatching the outcome.
    pub async fn handle(&self, request: Request<Bytes>) -> Result<Outcome, EnvironmentError> {
        self.run(|provider, now, rng| provider.handle(request, now, rng)).await
    }
}

/// Performs a flow's storage on the store and asks the application's hooks.
struct StoreDriver<'a, S> {
    store: &'a S,
    hooks: Option<&'a dyn HookHandler>,
    fetcher: Option<&'a SafeFetcher>,
}

impl<S: Store> Driver for StoreDriver<'_, S> {
    async fn storage(&mut self, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        let result = self.store.execute(request).await;
        if let Err(error) = &result {
            // The core answers the client with a generic 500/503 and keeps
            // the reason; this is where the operator learns the cause.
            tracing::warn!(%error, "oauth storage batch failed");
        }
        result
    }

    async fn hook(&mut self, call: HookCall) -> HookReply {
        match self.hooks {
            Some(handler) => handler.answer(call).await,
            None => call.default_reply(),
        }
    }

    async fn fetch(&mut self, request: FetchRequest) -> Result<FetchResponse, FetchError> {
        let Some(fetcher) = self.fetcher else { return Err(FetchError::Unsupported) };
        let (purpose, url) = (request.purpose, request.url.clone());
        let result = fetcher.fetch(request).await;
        if let Err(error) = &result {
            tracing::info!(%error, purpose = purpose.as_str(), %url, "client metadata fetch failed");
        }
        result
    }
}

/// The system clock, or `None` before the epoch.
fn system_time() -> Option<UnixTime> {
    SystemTime::now().duration_since(UNIX_EPOCH).ok().map(|d| UnixTime::from_secs(d.as_secs()))
}

/// The operating system's generator. The core's `SecureRandom` cannot
/// fail, so a failure is latched here and checked before the flow is used.
#[derive(Debug, Default)]
struct OsRandom {
    failed: bool,
}

impl SecureRandom for OsRandom {
    fn fill(&mut self, dest: &mut [u8]) {
        if getrandom::fill(dest).is_err() {
            dest.fill(0);
            self.failed = true;
        }
    }
}

/// Serves the provider in front of an inner service. Build it with
/// [`OAuth::layer`] or [`oauth_layer`].
///
/// Apply it to the outermost router with `Router::layer` (not
/// `route_layer`, which skips the provider's own paths, and not inside
/// `nest`, which strips the path prefix the provider routes on).
pub struct OAuthLayer<S> {
    oauth: Arc<OAuth<S>>,
}

impl<S> Clone for OAuthLayer<S> {
    fn clone(&self) -> Self {
        Self { oauth: Arc::clone(&self.oauth) }
    }
}

impl<S> fmt::Debug for OAuthLayer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthLayer").field("oauth", &self.oauth).finish()
    }
}

/// `OAuth::new(provider, store).layer()`.
pub fn oauth_layer<S: Store>(provider: Provider, store: S) -> OAuthLayer<S> {
    OAuth::new(provider, store).layer()
}

impl<S, I> Layer<I> for OAuthLayer<S> {
    type Service = OAuthService<I, S>;

    fn layer(&self, inner: I) -> Self::Service {
        OAuthService { inner, oauth: Arc::clone(&self.oauth) }
    }
}

/// The service [`OAuthLayer`] wraps around the application.
pub struct OAuthService<I, S> {
    inner: I,
    oauth: Arc<OAuth<S>>,
}

impl<I: Clone, S> Clone for OAuthService<I, S> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), oauth: Arc::clone(&self.oauth) }
    }
}

impl<I: fmt::Debug, S> fmt::Debug for OAuthService<I, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthService").field("inner", &self.inner).field("oauth", &self.oauth).finish()
    }
}

impl<I, S, B> Service<Request<B>> for OAuthService<I, S>
where
    I: Service<Request<Body>> + Clone + Send + 'static,
    I::Response: IntoResponse,
    I::Future: Send,
    S: Store,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = I::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, I::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The instance that was polled ready serves this request; a clone
        // stays behind for the next one (tower's usual pattern).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let oauth = Arc::clone(&self.oauth);
        Box::pin(serve(oauth, inner, request))
    }
}

async fn serve<I, S, B>(oauth: Arc<OAuth<S>>, mut inner: I, request: Request<B>) -> Result<Response, I::Error>
where
    I: Service<Request<Body>>,
    I::Response: IntoResponse,
    S: Store,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, oauth.body_limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return Ok(StatusCode::PAYLOAD_TOO_LARGE.into_response()),
        Err(_) => return Ok(StatusCode::BAD_REQUEST.into_response()),
    };
    let origin = parts.headers.get(header::ORIGIN).cloned();
    let outcome = match oauth.handle(Request::from_parts(parts, body)).await {
        Ok(outcome) => outcome,
        Err(error) => {
            tracing::error!(%error, "cannot serve an oauth request");
            return Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
    };
    match outcome {
        Outcome::Response(response) => Ok(response.map(Body::from)),
        Outcome::Authorized { mut request, auth } => {
            request.extensions_mut().insert(auth);
            let mut response = inner.call(request.map(Body::from)).await?.into_response();
            oauth.provider.finish_api_response(origin.as_ref(), &mut response);
            Ok(response)
        }
        Outcome::NotHandled(request) => Ok(inner.call(request.map(Body::from)).await?.into_response()),
        // An outcome this adapter does not know how to serve: refuse rather
        // than let the request through unchecked.
        _ => Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
    }
}

/// The caller of a protected route, as a handler argument.
///
/// ```no_run
/// use adapter_axum::Authenticated;
///
/// async fn whoami(Authenticated(auth): Authenticated) -> String {
///     format!("{} via {}", auth.user_id, auth.client_id)
/// }
/// ```
///
/// The layer only lets a request for a protected route through with a
/// valid token, so on those routes extraction always succeeds. On a route
/// the provider does not protect it fails with [`MissingAuthContext`] (a
/// server misconfiguration, answered 500); take `Option<Authenticated>`
/// for routes that serve both.
#[derive(Clone, Debug)]
pub struct Authenticated(pub AuthContext);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = MissingAuthContext;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<AuthContext>().cloned().map(Self).ok_or(MissingAuthContext)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Authenticated {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<AuthContext>().cloned().map(Self))
    }
}

/// [`Authenticated`] was asked for on a route the provider does not
/// protect (or without the layer). Answered 500: the server, not the
/// client, is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingAuthContext;

impl fmt::Display for MissingAuthContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no OAuth context: the route is not protected by the OAuth layer")
    }
}

impl std::error::Error for MissingAuthContext {}

impl IntoResponse for MissingAuthContext {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}
