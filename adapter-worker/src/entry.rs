//! The fetch entry: [`OAuthWorker`] routes a request to the provider, the
//! application's API handler or its default handler.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use oauth_core::{
    AuthContext, Driver, FetchError, FetchRequest, FetchResponse, Flow, FlowOutput, HookCall, HookReply, Outcome,
    Provider, Reply, SecureRandom, StorageError, StorageRequest, UnixTime,
};
use worker::{Context, Env, Headers, Request, Response, ResponseBody};

use crate::durable::{DEFAULT_OBJECT_NAME, DurableStore};
use crate::env::{CryptoRandom, now};
use crate::fetch::WorkerFetcher;
use crate::kv::KvStore;

/// The KV binding the store uses unless told otherwise: the incumbent
/// library's `OAUTH_KV`, so an existing `wrangler.toml` keeps working.
pub const DEFAULT_KV_BINDING: &str = "OAUTH_KV";

/// The largest request body buffered by default: 1 MiB.
///
/// The provider needs the whole body and cannot tell which requests are its
/// own before it has seen them, so every request's body is read (from a
/// copy: the application still gets the original, unread). The provider's
/// own endpoints apply their own, smaller limits.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// A boxed future, as [`HookHandler`] returns. Not `Send`: a Worker has one
/// thread.
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = HookReply> + 'a>>;

/// The application's answers to the provider's hooks (token issuance,
/// client registration), asked only for the hooks switched on in the
/// provider's `Hooks`. Without one, every hook gets
/// [`HookCall::default_reply`].
///
/// Any `Fn(HookCall) -> impl Future<Output = HookReply>` closure is one.
pub trait HookHandler {
    /// Answer `call`.
    fn answer(&self, call: HookCall) -> HookFuture<'_>;
}

impl<F, Fut> HookHandler for F
where
    F: Fn(HookCall) -> Fut,
    Fut: Future<Output = HookReply> + 'static,
{
    fn answer(&self, call: HookCall) -> HookFuture<'_> {
        Box::pin(self(call))
    }
}

/// The runtime failed to supply what a flow needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvironmentError {
    /// `crypto.getRandomValues` failed. Proceeding would mint guessable
    /// secrets.
    Random,
}

impl fmt::Display for EnvironmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Random => f.write_str("crypto.getRandomValues failed"),
        }
    }
}

impl std::error::Error for EnvironmentError {}

impl From<EnvironmentError> for worker::Error {
    fn from(e: EnvironmentError) -> Self {
        Self::RustError(e.to_string())
    }
}

/// Where the provider's records live.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Store {
    /// A Workers KV namespace: fast reads everywhere, eventually consistent,
    /// no atomic conditional writes.
    Kv(KvStore),
    /// A Durable Object with SQLite storage: atomic and strongly consistent,
    /// one location.
    Durable(DurableStore),
}

impl Store {
    /// Perform one batch of the core's storage operations.
    pub async fn execute(&self, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        match self {
            Self::Kv(kv) => kv.execute(request).await,
            Self::Durable(object) => object.execute(request).await,
        }
    }
}

impl Driver for Store {
    fn storage(&mut self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> {
        self.execute(request)
    }

    /// Client ID metadata documents, with [`WorkerFetcher`].
    async fn fetch(&mut self, request: FetchRequest) -> Result<FetchResponse, FetchError> {
        WorkerFetcher::new().fetch(request).await
    }
}

impl From<KvStore> for Store {
    fn from(kv: KvStore) -> Self {
        Self::Kv(kv)
    }
}

impl From<DurableStore> for Store {
    fn from(object: DurableStore) -> Self {
        Self::Durable(object)
    }
}

/// Which binding [`OAuthWorker`] keeps the records in.
#[derive(Clone, Debug)]
enum Binding {
    Kv(String),
    Durable { binding: String, object: String },
}

/// A provider bound to its store for one request: what the handlers get to
/// run the flows they start themselves (the authorization page's
/// `parse_authorization_request` and `complete_authorization`), the
/// counterpart of the incumbent's `env.OAUTH_PROVIDER` helpers.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct OAuth {
    provider: Provider,
    store: Store,
    hooks: Option<Rc<dyn HookHandler>>,
}

impl fmt::Debug for OAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth")
            .field("issuer", &self.provider.config().issuer)
            .field("hooks", &self.hooks.is_some())
            .finish_non_exhaustive()
    }
}

impl OAuth {
    /// `provider` with its records in `store`, default hook answers.
    pub fn new(provider: Provider, store: impl Into<Store>) -> Self {
        Self { provider, store: store.into(), hooks: None }
    }

    /// Answer hooks with `handler`.
    #[must_use]
    pub fn with_hooks(mut self, handler: impl HookHandler + 'static) -> Self {
        self.hooks = Some(Rc::new(handler));
        self
    }

    /// The provider.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The current time, as flows are given it.
    pub fn now(&self) -> UnixTime {
        now()
    }

    /// Start a flow with the current time and `crypto.getRandomValues`, and
    /// drive it to its end.
    ///
    /// ```ignore
    /// let parsed = oauth.run(|p, now, _rng| p.parse_authorization_request(&uri, now)).await?;
    /// ```
    pub async fn run<T, F>(&self, start: F) -> Result<T, EnvironmentError>
    where
        T: FlowOutput + Send + 'static,
        F: FnOnce(&Provider, UnixTime, &mut dyn SecureRandom) -> Flow<T>,
    {
        let mut rng = CryptoRandom::new();
        let mut flow = start(&self.provider, now(), &mut rng);
        if rng.failed() {
            // The flow holds zeroed "random" bytes; it is dropped undriven,
            // so nothing derived from them is stored or sent.
            return Err(EnvironmentError::Random);
        }
        Ok(self.drive(&mut flow).await)
    }

    /// Drive a flow the application started itself.
    pub async fn drive<T: FlowOutput + Send + 'static>(&self, flow: &mut Flow<T>) -> T {
        let mut driver = FlowDriver { store: &self.store, hooks: self.hooks.as_deref() };
        oauth_core::drive(flow, &mut driver).await
    }

    /// Handle one buffered request: what [`OAuthWorker::fetch`] does between
    /// reading the body and dispatching the outcome.
    pub async fn handle(&self, request: http::Request<Bytes>) -> Result<Outcome, EnvironmentError> {
        self.run(|provider, now, rng| provider.handle(request, now, rng)).await
    }
}

/// Performs a flow's storage on the store and asks the application's hooks.
struct FlowDriver<'a> {
    store: &'a Store,
    hooks: Option<&'a dyn HookHandler>,
}

impl Driver for FlowDriver<'_> {
    async fn storage(&mut self, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        let result = self.store.execute(request).await;
        if let Err(error) = &result {
            // The client gets the core's generic 500/503; the operator reads
            // the cause here (`wrangler tail`).
            worker::console_error!("oauth storage batch failed: {error}");
        }
        result
    }

    async fn hook(&mut self, call: HookCall) -> HookReply {
        match self.hooks {
            Some(handler) => handler.answer(call).await,
            None => call.default_reply(),
        }
    }

    /// Asked only when the provider has client ID metadata documents on.
    async fn fetch(&mut self, request: FetchRequest) -> Result<FetchResponse, FetchError> {
        let (url, purpose) = (request.url.clone(), request.purpose);
        let result = WorkerFetcher::new().fetch(request).await;
        match &result {
            Ok(response) => {
                worker::console_log!("client metadata fetch {} {url}: status {}", purpose.as_str(), response.status);
            }
            // The client gets the core's refusal; the operator reads the
            // cause here (`wrangler tail`).
            Err(error) => worker::console_warn!("client metadata fetch {} {url} failed: {error}", purpose.as_str()),
        }
        result
    }
}

/// What a handler is called with besides the request.
#[derive(Debug)]
#[non_exhaustive]
pub struct RequestContext {
    /// The provider and its store.
    pub oauth: OAuth,
    /// The Worker's bindings.
    pub env: Env,
    /// The invocation's execution context (`wait_until`).
    pub ctx: Context,
}

/// The application's handler for its protected routes (the resources'
/// `routes`), the incumbent's `apiHandler`. It runs only for requests with
/// a valid token for the route's resource.
///
/// Implemented for `async fn(Request, AuthContext, RequestContext) -> worker::Result<Response>`.
pub trait ApiHandler {
    /// Serve `request` for the caller `auth` (user, client, scopes, props).
    fn fetch(
        &self,
        request: Request,
        auth: AuthContext,
        cx: RequestContext,
    ) -> impl Future<Output = worker::Result<Response>>;
}

impl<F, Fut> ApiHandler for F
where
    F: Fn(Request, AuthContext, RequestContext) -> Fut,
    Fut: Future<Output = worker::Result<Response>>,
{
    fn fetch(
        &self,
        request: Request,
        auth: AuthContext,
        cx: RequestContext,
    ) -> impl Future<Output = worker::Result<Response>> {
        self(request, auth, cx)
    }
}

/// The application's handler for every other request, its authorization
/// page among them: the incumbent's `defaultHandler`.
///
/// Implemented for `async fn(Request, RequestContext) -> worker::Result<Response>`.
pub trait DefaultHandler {
    /// Serve `request`.
    fn fetch(&self, request: Request, cx: RequestContext) -> impl Future<Output = worker::Result<Response>>;
}

impl<F, Fut> DefaultHandler for F
where
    F: Fn(Request, RequestContext) -> Fut,
    Fut: Future<Output = worker::Result<Response>>,
{
    fn fetch(&self, request: Request, cx: RequestContext) -> impl Future<Output = worker::Result<Response>> {
        self(request, cx)
    }
}

/// The Worker's fetch entry: the authorization-server endpoints, the token
/// check in front of the API handler, and everything else to the default
/// handler (the incumbent's `OAuthProvider` with `apiRoute`, `apiHandler`
/// and `defaultHandler`).
///
/// ```ignore
/// #[event(fetch)]
/// async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
///     let provider = ProviderBuilder::new("https://mcp.example.com")
///         .resource(ProtectedResource::new("https://mcp.example.com/mcp")?)
///         .build()?;
///     OAuthWorker::new(provider, Api, Pages).fetch(req, env, ctx).await
/// }
/// ```
///
/// Which routes are protected is the provider's configuration: each
/// `ProtectedResource`'s routes (by default the resource URL's path and
/// everything under it).
pub struct OAuthWorker<A, D> {
    provider: Provider,
    api: A,
    default: D,
    binding: Binding,
    body_limit: usize,
    hooks: Option<Rc<dyn HookHandler>>,
}

impl<A, D> fmt::Debug for OAuthWorker<A, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthWorker")
            .field("issuer", &self.provider.config().issuer)
            .field("binding", &self.binding)
            .field("body_limit", &self.body_limit)
            .field("hooks", &self.hooks.is_some())
            .finish_non_exhaustive()
    }
}

impl<A: ApiHandler, D: DefaultHandler> OAuthWorker<A, D> {
    /// `provider` in front of the application's handlers, with its records in
    /// the KV namespace bound as [`DEFAULT_KV_BINDING`].
    pub fn new(provider: Provider, api: A, default: D) -> Self {
        Self {
            provider,
            api,
            default,
            binding: Binding::Kv(DEFAULT_KV_BINDING.to_owned()),
            body_limit: DEFAULT_BODY_LIMIT,
            hooks: None,
        }
    }

    /// Keep the records in the KV namespace bound as `binding` (the
    /// default, as [`DEFAULT_KV_BINDING`]).
    #[must_use]
    pub fn kv_binding(mut self, binding: impl Into<String>) -> Self {
        self.binding = Binding::Kv(binding.into());
        self
    }

    /// Keep the records in a Durable Object of the namespace bound as
    /// `binding` instead of KV: atomic single-use codes and refresh
    /// rotation, immediate revocation everywhere (see [`DurableStore`]).
    #[must_use]
    pub fn durable_object_binding(mut self, binding: impl Into<String>) -> Self {
        self.binding = Binding::Durable { binding: binding.into(), object: DEFAULT_OBJECT_NAME.to_owned() };
        self
    }

    /// Buffer request bodies up to `bytes`; larger ones are refused with 413.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Answer the provider's hooks with `handler`.
    #[must_use]
    pub fn with_hooks(mut self, handler: impl HookHandler + 'static) -> Self {
        self.hooks = Some(Rc::new(handler));
        self
    }

    /// The provider bound to its store in `env`, as the handlers get it.
    pub fn oauth(&self, env: &Env) -> worker::Result<OAuth> {
        let store = match &self.binding {
            Binding::Kv(binding) => KvStore::from_env(env, binding).map(Store::Kv).map_err(|e| {
                worker::Error::RustError(format!("the KV namespace binding {binding:?} is missing: {e}"))
            })?,
            Binding::Durable { binding, object } => {
                DurableStore::from_env(env, binding).map(|s| Store::Durable(s.object_name(object.clone()))).map_err(
                    |e| worker::Error::RustError(format!("the Durable Object binding {binding:?} is missing: {e}")),
                )?
            }
        };
        Ok(OAuth { provider: self.provider.clone(), store, hooks: self.hooks.clone() })
    }

    /// Serve one request.
    pub async fn fetch(&self, request: Request, env: Env, ctx: Context) -> worker::Result<Response> {
        let oauth = self.oauth(&env)?;
        let buffered = match to_http_request(&request, self.body_limit).await? {
            Ok(r) => r,
            Err(Refusal::TooLarge) => return plain(413, "request body too large"),
            // Never passed on unchecked: the route might be a protected one.
            Err(Refusal::Malformed) => return plain(400, "malformed request"),
        };
        let origin = buffered.headers().get(header::ORIGIN).cloned();
        let outcome = match oauth.handle(buffered).await {
            Ok(outcome) => outcome,
            Err(error) => {
                worker::console_error!("cannot serve an oauth request: {error}");
                return plain(500, "internal error");
            }
        };
        match outcome {
            Outcome::Response(response) => to_worker_response(response),
            // The core's copy of the request is dropped: the handler gets the
            // original (body unread, `cf` and all).
            Outcome::Authorized { request: _, auth } => {
                let provider = oauth.provider.clone();
                let response = self.api.fetch(request, auth, RequestContext { oauth, env, ctx }).await?;
                finish_api_response(&provider, origin.as_ref(), response)
            }
            Outcome::NotHandled(_) => self.default.fetch(request, RequestContext { oauth, env, ctx }).await,
            // An outcome this adapter does not know how to serve: refuse
            // rather than let the request through unchecked.
            _ => plain(500, "internal error"),
        }
    }
}

/// Why a request cannot be handed to the core.
enum Refusal {
    /// The body exceeds the limit.
    TooLarge,
    /// The method, URL or a header does not translate to `http`'s types.
    Malformed,
}

/// The request as the core takes it. The body is read from a copy, so the
/// original stays readable for the application's handler.
async fn to_http_request(request: &Request, limit: usize) -> worker::Result<Result<http::Request<Bytes>, Refusal>> {
    let declared = request.headers().get("content-length")?.and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(Err(Refusal::TooLarge));
    }
    let body = if request.inner().body().is_some() { request.clone()?.bytes().await? } else { Vec::new() };
    if body.len() > limit {
        return Ok(Err(Refusal::TooLarge));
    }
    // The raw method: `worker::Method` maps any method it does not list to
    // GET, and the provider must see what the client sent.
    let method = request.inner().method();
    let mut builder = http::Request::builder().method(method.as_str()).uri(request.url()?.as_str());
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    Ok(builder.body(Bytes::from(body)).map_err(|_| Refusal::Malformed))
}

/// The core's response as a Worker response.
pub fn to_worker_response(response: http::Response<Bytes>) -> worker::Result<Response> {
    let (parts, body) = response.into_parts();
    let headers = to_js_headers(&parts.headers)?;
    // A null-body status (204, 304) must not carry even an empty body.
    let body = if body.is_empty() { ResponseBody::Empty } else { ResponseBody::Body(body.to_vec()) };
    Ok(Response::from_body(body)?.with_status(parts.status.as_u16()).with_headers(headers))
}

/// `map` as JavaScript headers, every value kept (repeated names appended).
///
/// Not `worker`'s own `From<&HeaderMap>`, which panics on a value outside
/// visible ASCII; values here came from UTF-8 strings or the core's ASCII,
/// so their bytes are read back losslessly.
fn to_js_headers(map: &HeaderMap) -> worker::Result<Headers> {
    let headers = Headers::new();
    for (name, value) in map {
        headers.append(name.as_str(), &String::from_utf8_lossy(value.as_bytes()))?;
    }
    Ok(headers)
}

/// The provider's decoration (CORS) of the application's response.
///
/// The provider works on an `http` header map; the application's headers
/// are copied into one, and afterwards only the headers the provider changed
/// are written back, so nothing of the application's is lost in translation.
fn finish_api_response(
    provider: &Provider,
    origin: Option<&HeaderValue>,
    response: Response,
) -> worker::Result<Response> {
    let original: Vec<(String, String)> = response.headers().entries().collect();
    let mut shadow = http::Response::new(());
    for (name, value) in &original {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            shadow.headers_mut().append(name, value);
        }
    }
    provider.finish_api_response(origin, &mut shadow);
    let headers = Headers::new();
    for (name, value) in &original {
        headers.append(name, value)?;
    }
    for name in shadow.headers().keys() {
        let decorated: Vec<String> =
            shadow.headers().get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
        let before: Vec<&str> =
            original.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name.as_str())).map(|(_, v)| v.as_str()).collect();
        if decorated.iter().map(String::as_str).ne(before.iter().copied()) {
            headers.delete(name.as_str())?;
            for value in &decorated {
                headers.append(name.as_str(), value)?;
            }
        }
    }
    Ok(response.with_headers(headers))
}

fn plain(status: u16, text: &str) -> worker::Result<Response> {
    Ok(Response::ok(text)?.with_status(status))
}
