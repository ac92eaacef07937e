//! The example MCP application, ready to mount on any [`Store`]: what the
//! axum example server and the Lambda example function both serve.
//!
//! **For development and demonstrations only** (the `demo` feature): its
//! users are development accounts held in memory, and it can approve every
//! authorization without asking anyone.
//!
//! What [`Demo::new`] assembles, under the issuer's path:
//!
//! | route | what |
//! |---|---|
//! | OAuth endpoints, metadata, bearer check on `/mcp` | oauth-core, run by this crate's [`OAuth`] layer |
//! | `POST /mcp` | an MCP server (rmcp, stateless streamable HTTP, JSON responses) with a per-user todo list and `whoami` |
//! | `GET /mcp/echo` | the caller's authenticated context as JSON; `?require=SCOPE` answers 403 `insufficient_scope` without it |
//! | `/authorize`, `/authorize/login`, `/authorize/consent`, `/authorize/decision` | the sign-in and consent pages, or the development auto-approve switch |
//! | `GET /` | where to point an MCP client |
//!
//! Everything the application keeps (todos, pending sign-in pages, browser
//! sessions, failed sign-in counters) lives in the same store as the OAuth
//! records, through the core's storage operations, under keys starting with
//! `demo-`. So it runs unchanged on every backend, and several processes
//! (replicas behind a load balancer, concurrent Lambda instances) share it.
//!
//! ```no_run
//! # async fn run(store: impl adapter_axum::Store) -> Result<(), Box<dyn std::error::Error>> {
//! use adapter_axum::demo::{Demo, DemoConfig};
//!
//! let mut config = DemoConfig::new("http://127.0.0.1:8080");
//! config.auto_approve = Some("demo".to_owned());
//! // Any store: `SqliteStore`, `PgStore`, adapter-lambda's `DynamoStore`...
//! let demo = Demo::new(&config, store)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, demo.router()).await?;
//! # Ok(()) }
//! ```

mod authorize;
mod cimd;
mod html;
mod mcp;
mod records;
mod todos;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use oauth_core::{CimdPolicy, ProtectedResource, Provider, ProviderBuilder, RefreshPolicy};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

use self::authorize::AuthPages;
pub use self::cimd::{DEV_FLAG as DEV_CIMD_FLAG, DevCimdFetch};
use self::mcp::TodoServer;
use self::records::{AnyStore, Records};
use self::todos::TodoStore;
use crate::{Authenticated, OAuth, Store};
use demo_ui::Users;
pub use demo_ui::{DevUser, validate_user_name};

/// The scope for reading the todo list.
pub const SCOPE_READ: &str = mcp::READ;
/// The scope for changing the todo list; implies [`SCOPE_READ`].
pub const SCOPE_WRITE: &str = mcp::WRITE;

/// Default access-token lifetime: one hour.
pub const DEFAULT_ACCESS_TOKEN_TTL: u64 = 3600;
/// Default refresh-token lifetime: thirty days.
pub const DEFAULT_REFRESH_TOKEN_TTL: u64 = 30 * 24 * 3600;

/// How the demo application is set up.
///
/// Build it with [`DemoConfig::new`] and set the fields, or read it from
/// the environment with [`DemoConfig::from_env`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DemoConfig {
    /// The public base URL clients reach the server at, used as the OAuth
    /// issuer; the MCP endpoint is `{issuer}/mcp`. Must be https unless on
    /// loopback. A path (`https://host/prefix`) prefixes every route.
    pub issuer: String,
    /// Access-token lifetime in seconds (at least 60).
    pub access_token_ttl: u64,
    /// Refresh-token lifetime in seconds (at least 60), or `None` to issue
    /// no refresh tokens.
    pub refresh_token_ttl: Option<u64>,
    /// Refresh-token rotation: `Strict` treats reuse of a rotated token as
    /// theft and revokes the grant; `Grace` keeps the previous token valid
    /// until the new one is used.
    pub refresh_policy: RefreshPolicy,
    /// The development accounts allowed to sign in. Without any, the
    /// account `demo` with password `demo` is created.
    pub users: Vec<DevUser>,
    /// DEVELOPMENT ONLY: approve every authorization request at once as
    /// this user, with the scopes requested and no sign-in or consent page,
    /// so headless clients and test suites can complete the flow.
    pub auto_approve: Option<String>,
    /// Client ID metadata documents (`docs/cimd.md`): `Some(policy)` lets
    /// clients identify themselves by an https URL, fetched with the
    /// production `SafeFetcher` (system resolver, web PKI, every special-use
    /// address refused); `None` (the default) turns them off.
    pub cimd: Option<CimdPolicy>,
    /// DEVELOPMENT ONLY: loosen the document fetcher so a test can serve
    /// documents from a local HTTPS server (an extra CA, loopback names,
    /// names resolved to chosen addresses). `None` (the default) keeps the
    /// production fetcher; needs [`cimd`](Self::cimd).
    pub dev_cimd_fetch: Option<DevCimdFetch>,
}

impl DemoConfig {
    /// The defaults for `issuer`: one-hour access tokens, thirty-day
    /// refresh tokens, strict rotation, the `demo:demo` account, and the
    /// real sign-in and consent pages.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            refresh_token_ttl: Some(DEFAULT_REFRESH_TOKEN_TTL),
            refresh_policy: RefreshPolicy::Strict,
            users: Vec::new(),
            auto_approve: None,
            cimd: None,
            dev_cimd_fetch: None,
        }
    }

    /// The settings from the environment, for hosts without a command line
    /// (AWS Lambda). Unset or empty variables keep the defaults of
    /// [`DemoConfig::new`]:
    ///
    /// | variable | field |
    /// |---|---|
    /// | `MCP_ISSUER` (required) | [`issuer`](Self::issuer) |
    /// | `MCP_ACCESS_TOKEN_TTL` | [`access_token_ttl`](Self::access_token_ttl), seconds |
    /// | `MCP_REFRESH_TOKEN_TTL` | [`refresh_token_ttl`](Self::refresh_token_ttl), seconds or `none` |
    /// | `MCP_REFRESH_POLICY` | [`refresh_policy`](Self::refresh_policy), `strict` or `grace` |
    /// | `MCP_USERS` | [`users`](Self::users), `NAME:PASSWORD` separated by commas |
    /// | `MCP_AUTO_APPROVE` | [`auto_approve`](Self::auto_approve), a user name |
    /// | `MCP_CIMD` | `1`: [`cimd`](Self::cimd) on, with the default policy and these: |
    /// | `MCP_CIMD_ALLOW_HOSTS`, `MCP_CIMD_DENY_HOSTS` | the policy's host lists, comma-separated (`*.example.com` for subdomains) |
    /// | `MCP_CIMD_FETCH_TIMEOUT_MS` | the policy's `fetch_timeout` (default 5000; keep it under the function's timeout) |
    /// | `MCP_DEV_CIMD_INSECURE` | `1` lets the three settings below take effect; without it they are refused |
    /// | `MCP_DEV_CIMD_EXTRA_CA` | DEVELOPMENT ONLY: a PEM file of CA certificates the fetcher also trusts |
    /// | `MCP_DEV_CIMD_LOOPBACK_HOSTS` | DEVELOPMENT ONLY: names that may resolve to loopback |
    /// | `MCP_DEV_CIMD_RESOLVE` | DEVELOPMENT ONLY: `name=addr[|addr…],…` answered instead of DNS (the address checks still apply) |
    ///
    /// The `MCP_CIMD_*` and `MCP_DEV_CIMD_*` settings are refused without
    /// `MCP_CIMD=1`, so a misspelt switch cannot leave them silently unused.
    pub fn from_env() -> Result<Self, DemoError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, DemoError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let issuer = var("MCP_ISSUER").ok_or_else(|| {
            DemoError::new("MCP_ISSUER is not set: give the public URL clients use to reach this server")
        })?;
        let mut config = Self::new(issuer.trim().trim_end_matches('/'));
        let invalid = |name: &str, e: String| DemoError::new(format!("{name}: {e}"));
        if let Some(v) = var("MCP_ACCESS_TOKEN_TTL") {
            config.access_token_ttl =
                v.trim().parse().map_err(|_| invalid("MCP_ACCESS_TOKEN_TTL", format!("not a number: {v:?}")))?;
        }
        if let Some(v) = var("MCP_REFRESH_TOKEN_TTL") {
            config.refresh_token_ttl = parse_refresh_ttl(&v).map_err(|e| invalid("MCP_REFRESH_TOKEN_TTL", e))?;
        }
        if let Some(v) = var("MCP_REFRESH_POLICY") {
            config.refresh_policy = parse_refresh_policy(&v).map_err(|e| invalid("MCP_REFRESH_POLICY", e))?;
        }
        if let Some(v) = var("MCP_USERS") {
            // Not echoed in errors: the value holds passwords.
            config.users = v
                .split(',')
                .filter(|u| !u.trim().is_empty())
                .map(|u| u.trim().parse::<DevUser>())
                .collect::<Result<_, _>>()
                .map_err(|e| invalid("MCP_USERS", e))?;
        }
        if let Some(v) = var("MCP_AUTO_APPROVE") {
            let user = v.trim().to_owned();
            validate_user_name(&user).map_err(|e| invalid("MCP_AUTO_APPROVE", e))?;
            config.auto_approve = Some(user);
        }
        (config.cimd, config.dev_cimd_fetch) = cimd::from_vars(&var)?;
        Ok(config)
    }

    /// What an operator must be told at start-up: the test-only document
    /// fetcher settings, the auto-approve switch, or the built-in account.
    /// Empty when none is in force.
    pub fn warnings(&self) -> Vec<String> {
        let mut lines = self.dev_cimd_fetch.as_ref().map(DevCimdFetch::warnings).unwrap_or_default();
        lines.extend(self.sign_in_warnings());
        lines
    }

    fn sign_in_warnings(&self) -> Vec<String> {
        match &self.auto_approve {
            Some(user) => vec![
                "WARNING: auto-approve is ON (development only).".to_owned(),
                format!("Every authorization request is approved as user {user:?},"),
                "with the scopes it asks for, without sign-in or consent.".to_owned(),
                "Anyone who can reach this server gets a token. Never expose it.".to_owned(),
            ],
            None if self.users.is_empty() => vec![
                "WARNING: using the built-in development account demo / demo.".to_owned(),
                "Anyone who can reach this server can sign in with it.".to_owned(),
                "Give accounts (--user NAME:PASSWORD, or MCP_USERS) to replace it.".to_owned(),
            ],
            None => Vec::new(),
        }
    }
}

/// Parse a refresh-token lifetime: seconds, or `none` for no refresh tokens.
pub fn parse_refresh_ttl(s: &str) -> Result<Option<u64>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| format!("expected a number of seconds or `none`, got {s:?}"))
}

/// Parse a refresh-token rotation policy: `strict` or `grace`.
pub fn parse_refresh_policy(s: &str) -> Result<RefreshPolicy, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "strict" => Ok(RefreshPolicy::Strict),
        "grace" => Ok(RefreshPolicy::Grace),
        _ => Err(format!("expected `strict` or `grace`, got {s:?}")),
    }
}

/// A configuration the demo cannot run with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoError(String);

impl DemoError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DemoError {}

/// The assembled application: an axum [`Router`] with the OAuth layer
/// already applied, ready for `axum::serve` or `lambda_http::run`.
pub struct Demo {
    router: Router,
    provider: Provider,
    mcp_url: String,
    shutdown: Arc<dyn Fn() + Send + Sync>,
}

impl fmt::Debug for Demo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Demo").field("issuer", &self.issuer()).finish_non_exhaustive()
    }
}

impl Demo {
    /// Build the provider from `config` and assemble the application with
    /// its records (OAuth and its own) in `store`.
    pub fn new<S: Store>(config: &DemoConfig, store: S) -> Result<Self, DemoError> {
        let provider = build_provider(config)?;
        let issuer_url = provider.config().issuer_url().clone();
        // The issuer's path (empty for `https://host`) prefixes this
        // application's own routes, as the provider prefixes its endpoints.
        let base = issuer_url.path().trim_end_matches('/').to_owned();
        let mcp_url = format!("{}/mcp", provider.config().issuer);

        let mut oauth = OAuth::new(provider.clone(), AnyStore::new(store));
        if let Some(dev) = config.dev_cimd_fetch.as_ref().filter(|d| !d.is_empty()) {
            if config.cimd.is_none() {
                return Err(DemoError::new("dev_cimd_fetch is set but client ID metadata documents are off"));
            }
            oauth = oauth.with_fetcher(dev.fetcher()?);
        }
        let records = Records::new(oauth.clone());
        let todos = TodoStore::new(records);
        let demo_account = config.users.is_empty();
        let users = if demo_account { Users::demo() } else { Users::new(&config.users) };
        let pages =
            Arc::new(AuthPages::new(oauth.clone(), users, demo_account, config.auto_approve.clone(), base.clone()));

        // Stateless streamable HTTP: each POST is served on its own, so
        // there is no session to lose on restart or to share between
        // replicas, and the caller is whoever this request's token says.
        // JSON responses keep simple clients (and curl) simple.
        let mut allowed_hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        if let Some(host) = issuer_url.host_str() {
            allowed_hosts.push(host.trim_start_matches('[').trim_end_matches(']').to_owned());
        }
        let mcp_config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_allowed_hosts(allowed_hosts);
        let cancel = mcp_config.cancellation_token.clone();
        let mcp_provider = provider.clone();
        let mcp_service = StreamableHttpService::new(
            move || Ok(TodoServer::new(todos.clone(), mcp_provider.clone())),
            Arc::new(NeverSessionManager::default()),
            mcp_config,
        );

        let root = if base.is_empty() { "/".to_owned() } else { base.clone() };
        let home_page = Arc::new(home_html(&mcp_url));
        let pages_router = Router::new()
            .route(&format!("{base}/authorize"), get(authorize::authorize))
            .route(&format!("{base}/authorize/login"), post(authorize::login))
            .route(&format!("{base}/authorize/consent"), get(authorize::consent))
            .route(&format!("{base}/authorize/decision"), post(authorize::decision))
            .with_state(pages);
        let router = Router::new()
            .route(&root, get(home).with_state(home_page))
            .route(&format!("{base}/mcp/echo"), get(echo).with_state(provider.clone()))
            .route_service(&format!("{base}/mcp"), mcp_service)
            .merge(pages_router)
            // Outermost: the provider answers its own endpoints and checks
            // the token on everything under /mcp before any handler runs.
            .layer(oauth.layer())
            .layer(middleware::from_fn(log_request));
        Ok(Self { router, provider, mcp_url, shutdown: Arc::new(move || cancel.cancel()) })
    }

    /// The application, OAuth layer included.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The provider the application runs.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// The issuer, without a trailing slash.
    pub fn issuer(&self) -> &str {
        &self.provider.config().issuer
    }

    /// The MCP endpoint's URL: `{issuer}/mcp`.
    pub fn mcp_url(&self) -> &str {
        &self.mcp_url
    }

    /// End the MCP server's open streams, for a graceful shutdown.
    pub fn shutdown(&self) {
        (self.shutdown)();
    }
}

fn build_provider(config: &DemoConfig) -> Result<Provider, DemoError> {
    let issuer = config.issuer.trim_end_matches('/');
    let resource = ProtectedResource::new(&format!("{issuer}/mcp"))
        .map_err(|e| DemoError::new(format!("invalid issuer {issuer:?}: {e}")))?
        .scopes_supported([SCOPE_READ, SCOPE_WRITE])
        .name("Todo list (oauth-core example)");
    let mut builder = ProviderBuilder::new(issuer).client_id_metadata_documents(config.cimd.is_some());
    if let Some(policy) = &config.cimd {
        builder = builder.cimd_policy(policy.clone());
    }
    builder
        .resource(resource)
        // offline_access is accepted (some clients always ask for it) but
        // inert: refresh tokens go to every client registered for them.
        .scopes_supported([SCOPE_READ, SCOPE_WRITE, oauth_core::scope::OFFLINE_ACCESS])
        .scope_implies(SCOPE_WRITE, [SCOPE_READ])
        .access_token_ttl(config.access_token_ttl)
        .refresh_token_ttl(config.refresh_token_ttl.map(Some))
        .refresh_policy(config.refresh_policy)
        .on_error(|e| {
            // What was refused and why; descriptions never hold a secret.
            tracing::info!(
                endpoint = e.endpoint,
                error = %e.code,
                reason = %e.reason,
                client_id = e.client_id.as_deref().unwrap_or("-"),
                "oauth request refused: {}",
                e.description
            );
        })
        .build()
        .map_err(|e| DemoError::new(format!("invalid configuration: {e}")))
}

/// `GET /mcp/echo`: the caller's authenticated context as JSON. For HTTP
/// test suites and for trying a token by hand. `?require=SCOPE` (repeatable)
/// answers 403 `insufficient_scope` unless the token has those scopes.
async fn echo(State(provider): State<Provider>, Authenticated(auth): Authenticated, uri: Uri) -> Response {
    let query = uri.query().unwrap_or_default();
    let required: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "require")
        .flat_map(|(_, v)| v.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let required: Vec<&str> = required.iter().map(String::as_str).collect();
    if let Some(refusal) = provider.require_scopes(&auth, &required) {
        return refusal.map(Body::from);
    }
    let mut resp = axum::Json(mcp::context_json(&auth)).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /`: where to point an MCP client.
async fn home(State(page): State<Arc<String>>) -> Response {
    html::response(StatusCode::OK, page.as_str().to_owned())
}

fn home_html(mcp_url: &str) -> String {
    demo_ui::home_page("oauth-core", mcp_url)
}

/// One line per request. The path only: query strings carry `state`, PKCE
/// challenges and, on the way back to clients, codes, which stay out of logs.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(%method, %path, status = response.status().as_u16(), ms, "request");
    response
}
