//! The layer in an axum router, end to end and in process: discovery,
//! registration, the application's consent page, the code exchange, a
//! protected handler, hooks, virtual time and the transport limits. Runs on
//! SQLite (a temporary file), so it needs no server.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use adapter_axum::{Authenticated, OAuth, SqliteStore};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::BodyExt as _;
use oauth_core::{
    Approval, HookCall, HookReply, Hooks, IssuanceDecision, ProtectedResource, Provider, ProviderBuilder, UnixTime,
};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const ISSUER: &str = "https://as.example.com";
const REDIRECT: &str = "https://client.example/cb";
/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const T0: u64 = 1_800_000_000;

fn provider(hooks: Hooks) -> Provider {
    ProviderBuilder::new(ISSUER)
        .resource(ProtectedResource::new(&format!("{ISSUER}/mcp")).unwrap().scopes_supported(["todo:read"]))
        .scopes_supported(["todo:read"])
        .hooks(hooks)
        .build()
        .unwrap()
}

#[derive(Clone)]
struct AppState {
    oauth: OAuth<SqliteStore>,
    mcp_calls: Arc<AtomicUsize>,
}

/// The application's consent page, approving every request as "alice".
async fn authorize(State(app): State<AppState>, uri: Uri) -> Response {
    let parsed = app.oauth.run(|provider, now, _| provider.parse_authorization_request(&uri, now)).await.unwrap();
    let request = match parsed {
        Ok(request) => request,
        Err(error) => return error.into_response().map(Body::from),
    };
    let approval = Approval::new("alice", request.scope.clone(), json!({"plan": "pro"}));
    let done = app
        .oauth
        .run(|provider, now, rng| provider.complete_authorization(&request, approval, now, rng))
        .await
        .unwrap()
        .unwrap();
    done.into_response().map(Body::from)
}

async fn mcp(State(app): State<AppState>, Authenticated(auth): Authenticated) -> axum::Json<Value> {
    app.mcp_calls.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({"user": auth.user_id, "scope": auth.scope, "token_props": auth.token_props}))
}

async fn public(auth: Option<Authenticated>) -> &'static str {
    if auth.is_some() { "authenticated?" } else { "public" }
}

async fn misconfigured(Authenticated(auth): Authenticated) -> String {
    auth.user_id
}

fn app(oauth: OAuth<SqliteStore>) -> (Router, Arc<AtomicUsize>) {
    let mcp_calls = Arc::new(AtomicUsize::new(0));
    let layer = oauth.layer();
    let state = AppState { oauth, mcp_calls: Arc::clone(&mcp_calls) };
    let router = Router::new()
        .route("/mcp", get(mcp).post(mcp))
        .route("/authorize", get(authorize))
        .route("/public", get(public))
        .route("/misconfigured", get(misconfigured))
        .route("/echo", post(|body: Bytes| async move { body }))
        .with_state(state)
        .layer(layer);
    (router, mcp_calls)
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Reply { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes() }
}

fn get_req(path: &str, bearer: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path).header(header::ORIGIN, "https://inspector.example");
    if let Some(token) = bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    b.body(Body::empty()).unwrap()
}

fn form(path: &str, body: String) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Register a public client, authorize it through the consent route and
/// exchange the code: the token response.
async fn sign_in(router: &Router) -> Value {
    let registration = json!({
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": "Layer Test",
    });
    let reply = send(
        router,
        Request::post("/register")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(registration.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let client_id = reply.json()["client_id"].as_str().unwrap().to_owned();

    let query = format!(
        "response_type=code&client_id={client_id}&redirect_uri={}&state=s1&code_challenge={CHALLENGE}\
         &code_challenge_method=S256&scope=todo:read",
        urlencode(REDIRECT)
    );
    let reply = send(router, get_req(&format!("/authorize?{query}"), None)).await;
    assert_eq!(reply.status, StatusCode::FOUND, "{:?}", reply.body);
    let location = url::Url::parse(reply.header("location")).unwrap();
    let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();

    let body = format!(
        "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&redirect_uri={}&client_id={client_id}",
        urlencode(REDIRECT)
    );
    let reply = send(router, form("/token", body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.json()
}

#[tokio::test]
async fn full_flow_through_an_axum_router() {
    let (store, _dir) = common::sqlite_store().await;
    let (router, mcp_calls) = app(OAuth::new(provider(Hooks::default()), store));

    // Discovery is the provider's, though no route is mounted for it.
    let reply = send(&router, get_req("/.well-known/oauth-authorization-server", None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["issuer"], ISSUER);

    // A protected route without a token: the provider's 401, and the
    // handler never runs.
    let reply = send(&router, get_req("/mcp", None)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.header("www-authenticate").contains("resource_metadata="), "{:?}", reply.headers);
    assert_eq!(mcp_calls.load(Ordering::SeqCst), 0);

    let tokens = sign_in(&router).await;
    let access = tokens["access_token"].as_str().unwrap();

    // With it, the handler runs with the caller's context, and the response
    // is decorated by the provider (CORS for the request's origin).
    let reply = send(&router, get_req("/mcp", Some(access))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.json()["user"], "alice");
    assert_eq!(reply.json()["scope"], json!(["todo:read"]));
    assert_eq!(reply.header("access-control-allow-origin"), "https://inspector.example");
    assert_eq!(mcp_calls.load(Ordering::SeqCst), 1);

    // A forged token is refused before the handler.
    let reply = send(&router, get_req("/mcp", Some("not-a-token"))).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(mcp_calls.load(Ordering::SeqCst), 1);

    // The application's other routes pass through untouched.
    let reply = send(&router, get_req("/public", Some(access))).await;
    assert_eq!((reply.status, &reply.body[..]), (StatusCode::OK, &b"public"[..]));
    let reply = send(&router, Request::post("/echo").body(Body::from("hello")).unwrap()).await;
    assert_eq!(&reply.body[..], b"hello");

    // Asking for the context on a route the provider does not protect is a
    // server bug: 500, not a silent anonymous call.
    let reply = send(&router, get_req("/misconfigured", Some(access))).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn hooks_are_answered_by_the_application() {
    let (store, _dir) = common::sqlite_store().await;
    let mut hooks = Hooks::default();
    hooks.token_issuance = true;
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    let oauth = OAuth::new(provider(hooks), store).with_hooks(move |call: HookCall| {
        let counter = Arc::clone(&counter);
        async move {
            // An asynchronous answer, as an application refreshing an
            // upstream token would give.
            tokio::task::yield_now().await;
            counter.fetch_add(1, Ordering::SeqCst);
            match call {
                HookCall::TokenIssuance(_) => HookReply::TokenIssuance(Ok(
                    IssuanceDecision::unchanged().with_access_token_props(json!({"upstream": "u-1"}))
                )),
                other => other.default_reply(),
            }
        }
    });
    let (router, _) = app(oauth);
    let tokens = sign_in(&router).await;
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    let reply = send(&router, get_req("/mcp", tokens["access_token"].as_str())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["token_props"], json!({"upstream": "u-1"}));
}

#[tokio::test]
async fn time_comes_from_the_configured_clock() {
    let (store, _dir) = common::sqlite_store().await;
    let now = Arc::new(AtomicU64::new(T0));
    let clock = Arc::clone(&now);
    let oauth = OAuth::new(provider(Hooks::default()), store)
        .with_clock(move || UnixTime::from_secs(clock.load(Ordering::SeqCst)));
    let (router, _) = app(oauth);
    let tokens = sign_in(&router).await;
    let access = tokens["access_token"].as_str().unwrap();
    let lifetime = tokens["expires_in"].as_u64().unwrap();

    now.store(T0 + lifetime - 1, Ordering::SeqCst);
    assert_eq!(send(&router, get_req("/mcp", Some(access))).await.status, StatusCode::OK);
    now.store(T0 + lifetime, Ordering::SeqCst);
    assert_eq!(send(&router, get_req("/mcp", Some(access))).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_the_provider() {
    let (store, _dir) = common::sqlite_store().await;
    let (router, _) = app(OAuth::new(provider(Hooks::default()), store).with_body_limit(16));
    let reply = send(&router, form("/token", "grant_type=authorization_code&code=x".into())).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    let reply = send(&router, Request::post("/echo").body(Body::from("0123456789abcdef")).unwrap()).await;
    assert_eq!(&reply.body[..], b"0123456789abcdef", "a body at the limit passes");
}

#[tokio::test]
async fn a_failing_store_is_a_retryable_error_not_a_pass() {
    let (store, _dir) = common::sqlite_store().await;
    let (router, mcp_calls) = app(OAuth::new(provider(Hooks::default()), store.clone()));
    let tokens = sign_in(&router).await;
    store.pool().close().await;
    let reply = send(&router, get_req("/mcp", tokens["access_token"].as_str())).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", reply.body);
    assert_eq!(reply.json()["error"], "temporarily_unavailable");
    assert_eq!(mcp_calls.load(Ordering::SeqCst), 0);
}
