//! The Worker: its settings (wrangler vars), the provider, and the routes.
//!
//! | route | what |
//! |---|---|
//! | OAuth endpoints, metadata, bearer check on `/mcp` and below | oauth-core, through [`OAuthWorker`] |
//! | `POST /mcp` | the MCP endpoint ([`crate::mcp`]) |
//! | `GET /mcp/echo` | the caller's context as JSON; `?require=SCOPE` answers 403 `insufficient_scope` without it |
//! | `/authorize`, `/authorize/login`, `/authorize/consent`, `/authorize/decision` | sign-in and consent ([`crate::pages`]) |
//! | `GET /` | where to point an MCP client |
//!
//! Settings, all optional (`[vars]` in wrangler.toml, `--var` on the
//! command line, or secrets):
//!
//! | name | meaning | default |
//! |---|---|---|
//! | `MCP_ISSUER` | the public base URL (the issuer; the MCP endpoint is `{issuer}/mcp`) | the request's origin, on loopback only |
//! | `MCP_AUTO_APPROVE` | DEVELOPMENT ONLY: approve every request as this user, no page | off |
//! | `MCP_USERS` | development accounts `name:password,…` (make it a secret) | `demo:demo` |
//! | `MCP_ACCESS_TOKEN_TTL` | access-token lifetime, seconds | 3600 |
//! | `MCP_REFRESH_TOKEN_TTL` | refresh-token lifetime, seconds, or `none` | 2592000 |
//! | `MCP_REFRESH_POLICY` | `strict` or `grace` | `strict` |
//! | `MCP_STORE` | `kv` (binding `OAUTH_KV`) or `durable` (Durable Object binding `OAUTH_STORE`) | `kv` |
//! | `MCP_CIMD` | `1`: accept client ID metadata documents (https `client_id` URLs, `private_key_jwt`), fetched by adapter-worker's `WorkerFetcher` | off |
//! | `MCP_CIMD_ALLOW_HOSTS`, `MCP_CIMD_DENY_HOSTS` | host lists for document URLs, comma-separated (`*.example.com`: subdomains); on Workers the allow list is the operator's main SSRF control | any host / none |
//! | `MCP_CIMD_FETCH_TIMEOUT_MS` | budget for one document fetch | 5000 |
//! | `MCP_DEV_TEST_ROUTES` | `1` answers `/__dev/*` (needs the `dev-routes` build feature) | off |

use std::cell::RefCell;
use std::rc::Rc;

use adapter_worker::{OAuthWorker, RequestContext};
use demo_ui::{Users, validate_user_name};
use std::time::Duration;

use oauth_core::{AuthContext, CimdPolicy, ProtectedResource, Provider, ProviderBuilder, RefreshPolicy};
use worker::{Context, Env, Request, Response, event};

use crate::mcp::{self, READ, WRITE};
use crate::pages;

/// Everything a request needs that depends only on the settings: built once
/// per isolate (and again only if the settings change).
pub(crate) struct App {
    pub(crate) provider: Provider,
    /// The issuer's path (empty for `https://host`), which prefixes this
    /// Worker's own routes as it prefixes the provider's endpoints.
    pub(crate) base: String,
    pub(crate) users: Users,
    /// Whether the built-in `demo:demo` account is active.
    pub(crate) demo_account: bool,
    pub(crate) auto_approve: Option<String>,
    pub(crate) secure_cookies: bool,
    /// Keep the records in the Durable Object rather than KV.
    pub(crate) durable: bool,
    #[cfg(feature = "dev-routes")]
    pub(crate) dev_routes: bool,
}

thread_local! {
    /// The settings the cached app was built from, and the app.
    static APP: RefCell<Option<(String, Rc<App>)>> = const { RefCell::new(None) };
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string()).or_else(|| env.secret(name).ok().map(|v| v.to_string()))
}

/// The app for these settings, from the isolate's cache when unchanged.
fn app(env: &Env, req: &Request) -> Result<Rc<App>, String> {
    let issuer = match var(env, "MCP_ISSUER").filter(|s| !s.is_empty()) {
        Some(issuer) => issuer.trim_end_matches('/').to_owned(),
        None => loopback_origin(req)?,
    };
    let names = [
        "MCP_AUTO_APPROVE",
        "MCP_USERS",
        "MCP_ACCESS_TOKEN_TTL",
        "MCP_REFRESH_TOKEN_TTL",
        "MCP_REFRESH_POLICY",
        "MCP_DEV_TEST_ROUTES",
        "MCP_STORE",
        "MCP_CIMD",
        "MCP_CIMD_ALLOW_HOSTS",
        "MCP_CIMD_DENY_HOSTS",
        "MCP_CIMD_FETCH_TIMEOUT_MS",
    ];
    let values: Vec<Option<String>> = names.iter().map(|n| var(env, n).filter(|s| !s.is_empty())).collect();
    let key = format!("{issuer}\n{values:?}");
    if let Some(app) = APP.with_borrow(|cached| cached.as_ref().filter(|(k, _)| *k == key).map(|(_, a)| Rc::clone(a))) {
        return Ok(app);
    }
    let [auto_approve, users, access_ttl, refresh_ttl, policy, dev_routes, store, cimd, allow, deny, fetch_timeout] =
        <[Option<String>; 11]>::try_from(values).map_err(|_| "internal: settings".to_owned())?;
    let cimd = CimdSettings { on: cimd, allow, deny, fetch_timeout };
    let settings = Settings { auto_approve, users, access_ttl, refresh_ttl, policy, dev_routes, store, cimd };
    let app = Rc::new(build(&issuer, settings)?);
    APP.with_borrow_mut(|cached| *cached = Some((key, Rc::clone(&app))));
    Ok(app)
}

/// The request's origin when it is a loopback address (`wrangler dev`);
/// anywhere else the issuer must be configured, since a Host header is the
/// client's to choose.
fn loopback_origin(req: &Request) -> Result<String, String> {
    let url = req.url().map_err(|e| e.to_string())?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if loopback {
        Ok(url.origin().ascii_serialization())
    } else {
        Err("MCP_ISSUER is not set: set it to the Worker's public https URL (wrangler.toml [vars])".to_owned())
    }
}

/// The settings as read, before validation.
struct Settings {
    auto_approve: Option<String>,
    users: Option<String>,
    access_ttl: Option<String>,
    refresh_ttl: Option<String>,
    policy: Option<String>,
    dev_routes: Option<String>,
    store: Option<String>,
    cimd: CimdSettings,
}

/// The client ID metadata document settings, as read.
struct CimdSettings {
    on: Option<String>,
    allow: Option<String>,
    deny: Option<String>,
    fetch_timeout: Option<String>,
}

/// The policy, or `None` when client ID metadata documents are off. The
/// other `MCP_CIMD_*` settings are refused without `MCP_CIMD=1`, so a
/// misspelt switch cannot leave a deny list silently unused.
fn cimd_policy(settings: CimdSettings) -> Result<Option<CimdPolicy>, String> {
    let CimdSettings { on, allow, deny, fetch_timeout } = settings;
    let on = match on.as_deref() {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => return Err(format!("MCP_CIMD: `1` or `0`, not {other:?}")),
    };
    if !on {
        if allow.is_some() || deny.is_some() || fetch_timeout.is_some() {
            return Err("MCP_CIMD_* settings are set but MCP_CIMD is not 1".to_owned());
        }
        return Ok(None);
    }
    let list = |v: &str| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    let mut policy = CimdPolicy::default();
    if let Some(hosts) = allow {
        policy = policy.allow_hosts(list(&hosts));
    }
    if let Some(hosts) = deny {
        policy = policy.deny_hosts(list(&hosts));
    }
    if let Some(ms) = fetch_timeout {
        let ms: u64 = ms.parse().map_err(|_| format!("MCP_CIMD_FETCH_TIMEOUT_MS: not a number: {ms:?}"))?;
        policy = policy.fetch_timeout(Duration::from_millis(ms));
    }
    Ok(Some(policy))
}

fn build(issuer: &str, settings: Settings) -> Result<App, String> {
    let Settings { auto_approve, users, access_ttl, refresh_ttl, policy, dev_routes, store, cimd } = settings;
    let cimd = cimd_policy(cimd)?;
    let durable = match store.as_deref() {
        None | Some("kv") => false,
        Some("durable") => true,
        Some(other) => return Err(format!("MCP_STORE: `kv` or `durable`, not {other:?}")),
    };
    let access_ttl = match access_ttl {
        Some(s) => s.parse().map_err(|_| format!("MCP_ACCESS_TOKEN_TTL: not a number of seconds: {s:?}"))?,
        None => 3600,
    };
    let refresh_ttl = match refresh_ttl.as_deref() {
        Some(s) if s.eq_ignore_ascii_case("none") => None,
        Some(s) => Some(Some(s.parse().map_err(|_| format!("MCP_REFRESH_TOKEN_TTL: seconds or `none`: {s:?}"))?)),
        None => Some(Some(30 * 86_400)),
    };
    let policy = match policy.as_deref() {
        None | Some("strict") => RefreshPolicy::Strict,
        Some("grace") => RefreshPolicy::Grace,
        Some(other) => return Err(format!("MCP_REFRESH_POLICY: `strict` or `grace`, not {other:?}")),
    };
    if let Some(user) = &auto_approve {
        validate_user_name(user).map_err(|e| format!("MCP_AUTO_APPROVE: {e}"))?;
    }
    let demo_account = users.is_none();
    let users = match users {
        Some(spec) => Users::parse(&spec)?,
        None => Users::demo(),
    };

    let resource = ProtectedResource::new(&format!("{issuer}/mcp"))
        .map_err(|e| format!("invalid issuer {issuer:?}: {e}"))?
        .scopes_supported([READ, WRITE])
        .name("Todo list (oauth-core Worker example)");
    let mut builder = ProviderBuilder::new(issuer).client_id_metadata_documents(cimd.is_some());
    if let Some(policy) = &cimd {
        builder = builder.cimd_policy(policy.clone());
    }
    let provider = builder
        .resource(resource)
        // offline_access is accepted (some clients always ask for it) but
        // inert: refresh tokens go to every client registered for them.
        .scopes_supported([READ, WRITE, oauth_core::scope::OFFLINE_ACCESS])
        .scope_implies(WRITE, [READ])
        .access_token_ttl(access_ttl)
        .refresh_token_ttl(refresh_ttl)
        .refresh_policy(policy)
        .on_error(|e| {
            // What was refused and why; descriptions never hold a secret.
            worker::console_log!(
                "oauth request refused: endpoint={} error={} reason={} client_id={}: {}",
                e.endpoint,
                e.code,
                e.reason,
                e.client_id.as_deref().unwrap_or("-"),
                e.description
            );
        })
        .build()
        .map_err(|e| format!("invalid configuration: {e}"))?;
    let issuer_url = provider.config().issuer_url();
    let base = issuer_url.path().trim_end_matches('/').to_owned();
    let secure_cookies = issuer_url.scheme() == "https";

    match &auto_approve {
        Some(user) => warn(&[
            "WARNING: MCP_AUTO_APPROVE is ON (development only).".to_owned(),
            format!("Every authorization request is approved as user {user:?},"),
            "with the scopes it asks for, without sign-in or consent.".to_owned(),
            "Anyone who can reach this Worker gets a token. Never deploy it so.".to_owned(),
        ]),
        None if demo_account => warn(&[
            "WARNING: using the built-in development account demo / demo.".to_owned(),
            "Anyone who can reach this Worker can sign in with it.".to_owned(),
            "Set the MCP_USERS secret (name:password,...) to replace it.".to_owned(),
        ]),
        None => {}
    }
    let dev_routes = dev_routes.as_deref() == Some("1");
    if dev_routes && cfg!(feature = "dev-routes") {
        warn(&["WARNING: MCP_DEV_TEST_ROUTES=1: development test routes under /__dev/ are on.".to_owned()]);
    } else if dev_routes {
        worker::console_warn!("MCP_DEV_TEST_ROUTES=1 is ignored: this build has no dev-routes feature");
    }
    let store = if durable { "Durable Object OAUTH_STORE" } else { "KV namespace OAUTH_KV" };
    worker::console_log!("Todo MCP Worker: issuer {issuer}, MCP URL {issuer}/mcp, records in the {store}");
    if let Some(policy) = &cimd {
        worker::console_log!(
            "client ID metadata documents ON: allow {:?} (empty: any host), deny {:?}, fetch timeout {:?}",
            policy.allow_hosts,
            policy.deny_hosts,
            policy.fetch_timeout
        );
    }
    Ok(App {
        provider,
        base,
        users,
        demo_account,
        auto_approve,
        secure_cookies,
        durable,
        #[cfg(feature = "dev-routes")]
        dev_routes,
    })
}

fn warn(lines: &[String]) {
    let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let rule = "!".repeat(width + 8);
    let body: String = lines.iter().map(|l| format!("!!  {l:<width$}  !!\n")).collect();
    worker::console_warn!("\n{rule}\n{body}{rule}");
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let method = req.inner().method();
    let path = req.path();
    let app = match app(&env, &req) {
        Ok(app) => app,
        Err(e) => {
            worker::console_error!("cannot start: {e}");
            return Response::error("This Worker is misconfigured; see its logs.", 500);
        }
    };
    let api = {
        let app = Rc::clone(&app);
        move |req: Request, auth: AuthContext, cx: RequestContext| api(Rc::clone(&app), req, auth, cx)
    };
    let default = {
        let app = Rc::clone(&app);
        move |req: Request, cx: RequestContext| default(Rc::clone(&app), req, cx)
    };
    let worker = OAuthWorker::new(app.provider.clone(), api, default);
    let worker = if app.durable { worker.durable_object_binding("OAUTH_STORE") } else { worker.kv_binding("OAUTH_KV") };
    let result = worker.fetch(req, env, ctx).await;
    // The path only: query strings carry `state`, PKCE challenges and, on the
    // way back to clients, codes, which stay out of logs.
    match &result {
        Ok(resp) => worker::console_log!("{method} {path} {}", resp.status_code()),
        Err(e) => worker::console_error!("{method} {path} failed: {e}"),
    }
    result
}

/// The protected routes: `/mcp` and everything under it.
async fn api(app: Rc<App>, mut req: Request, auth: AuthContext, cx: RequestContext) -> worker::Result<Response> {
    let path = req.path();
    let rest = path.strip_prefix(&app.base).unwrap_or(&path);
    // The raw method: `worker::Method` reads any method it does not list as GET.
    match (rest, req.inner().method().as_str()) {
        ("/mcp", "POST") => {
            let content_type = req.headers().get("content-type")?.unwrap_or_default();
            if !content_type.to_ascii_lowercase().starts_with("application/json") {
                return Response::error("POST a JSON-RPC message as application/json", 415);
            }
            if let Err(reply) = mcp::check_protocol_header(req.headers().get("mcp-protocol-version")?.as_deref()) {
                return mcp_response(reply);
            }
            let body = req.bytes().await?;
            let now = cx.oauth.now();
            mcp_response(mcp::handle(&body, &auth, &app.provider, cx.oauth.store(), now).await)
        }
        // No server-to-client stream and no session to end: clients take
        // 405 as "not offered" (streamable HTTP transport).
        ("/mcp", _) => method_not_allowed("POST"),
        ("/mcp/echo", "GET") => echo(&app, &req, &auth),
        ("/mcp/echo", _) => method_not_allowed("GET"),
        _ => Response::error("Not Found", 404),
    }
}

fn mcp_response(reply: mcp::Reply) -> worker::Result<Response> {
    match reply {
        mcp::Reply::Json(status, body) => Ok(Response::from_json(&body)?.with_status(status)),
        mcp::Reply::Accepted => Ok(Response::empty()?.with_status(202)),
    }
}

fn method_not_allowed(allow: &str) -> worker::Result<Response> {
    let resp = Response::error("Method Not Allowed", 405)?;
    resp.headers().set("allow", allow)?;
    Ok(resp)
}

/// `GET /mcp/echo`: the caller's authenticated context as JSON, for HTTP
/// test suites and for trying a token by hand. `?require=SCOPE`
/// (repeatable, or space-separated) answers 403 `insufficient_scope` unless
/// the token has those scopes.
fn echo(app: &App, req: &Request, auth: &AuthContext) -> worker::Result<Response> {
    let url = req.url()?;
    let required: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == "require")
        .flat_map(|(_, v)| v.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let required: Vec<&str> = required.iter().map(String::as_str).collect();
    if let Some(refusal) = app.provider.require_scopes(auth, &required) {
        return adapter_worker::to_worker_response(refusal);
    }
    let resp = Response::from_json(&mcp::context_json(auth))?;
    resp.headers().set("cache-control", "no-store")?;
    Ok(resp)
}

/// Every other route: the pages, the home page, development routes.
async fn default(app: Rc<App>, req: Request, cx: RequestContext) -> worker::Result<Response> {
    let path = req.path();
    let rest = path.strip_prefix(&app.base).unwrap_or(&path);
    match (rest, req.inner().method().as_str()) {
        ("" | "/", "GET") => home(&app),
        ("/authorize", "GET") => pages::authorize(&app, req, &cx).await,
        ("/authorize/login", "POST") => pages::login(&app, req, &cx).await,
        ("/authorize/consent", "GET") => pages::consent(&app, req, &cx).await,
        ("/authorize/decision", "POST") => pages::decision(&app, req, &cx).await,
        #[cfg(feature = "dev-routes")]
        (dev, "POST") if app.dev_routes && dev.starts_with("/__dev/") => crate::dev::route(dev, &req, &cx).await,
        _ => Response::error("Not Found", 404),
    }
}

/// `GET /`: where to point an MCP client.
fn home(app: &App) -> worker::Result<Response> {
    let mcp_url = format!("{}/mcp", app.provider.config().issuer);
    let stack = "oauth-core + adapter-worker on Cloudflare Workers";
    pages::html_response(200, &demo_ui::home_page(stack, &mcp_url))
}
