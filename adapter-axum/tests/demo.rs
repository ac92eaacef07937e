//! The demo application (`adapter_axum::demo`) on the reference in-memory
//! store: the todo tools over MCP, ids handed out under contention, and the
//! sign-in and consent pages served by two "replicas" sharing one store, as
//! concurrent Lambda instances or load-balanced servers do.

use std::future::Future;
use std::sync::{Arc, Mutex};

use adapter_axum::Store;
use adapter_axum::demo::{Demo, DemoConfig};
use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use oauth_core::testing::MemoryStore;
use oauth_core::{BlockingStore, Reply as StoreReply, StorageError, StorageRequest};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const ISSUER: &str = "http://127.0.0.1:9";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// `MemoryStore` shared between tasks (and between the two "replicas").
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<MemoryStore>>);

impl Store for Shared {
    fn execute(&self, request: StorageRequest) -> impl Future<Output = Result<Vec<StoreReply>, StorageError>> + Send {
        let result = self.0.lock().unwrap().execute(request);
        std::future::ready(result)
    }
}

fn demo(store: &Shared, auto_approve: Option<&str>) -> Router {
    let mut config = DemoConfig::new(ISSUER);
    config.auto_approve = auto_approve.map(str::to_owned);
    config.users = vec!["alice:wonderland".parse().unwrap()];
    Demo::new(&config, store.clone()).unwrap().router()
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

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `name="NAME" value="..."` of a hidden form field.
    fn field(&self, name: &str) -> String {
        let text = self.text();
        let marker = format!("name=\"{name}\" value=\"");
        let start = text.find(&marker).unwrap_or_else(|| panic!("no field {name} in {text}")) + marker.len();
        text[start..].split('"').next().unwrap().to_owned()
    }

    /// The browser id from `Set-Cookie`.
    fn cookie(&self) -> String {
        let set = self.header("set-cookie");
        set.split(';').next().unwrap().to_owned()
    }
}

async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Reply { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes() }
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path).header(header::HOST, "127.0.0.1");
    if let Some(cookie) = cookie {
        b = b.header(header::COOKIE, cookie);
    }
    b.body(Body::empty()).unwrap()
}

fn post_form(path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Request<Body> {
    let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let mut b = Request::post(path)
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        b = b.header(header::COOKIE, cookie);
    }
    b.body(Body::from(body)).unwrap()
}

async fn register(router: &Router) -> String {
    let registration = json!({
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": "Demo Test",
    });
    let request = Request::post("/register")
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(registration.to_string()))
        .unwrap();
    let reply = send(router, request).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    reply.json()["client_id"].as_str().unwrap().to_owned()
}

fn authorize_path(client_id: &str, state: &str) -> String {
    let redirect: String = form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect();
    format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={redirect}&state={state}\
         &code_challenge={CHALLENGE}&code_challenge_method=S256&scope=todo:read%20todo:write"
    )
}

/// The code from an authorization redirect, checking its state.
fn code_from(reply: &Reply, state: &str) -> String {
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.text());
    let location = url::Url::parse(reply.header("location")).unwrap();
    let param = |name: &str| location.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert_eq!(param("state").as_deref(), Some(state));
    param("code").unwrap_or_else(|| panic!("no code in {location}"))
}

async fn exchange(router: &Router, client_id: &str, code: &str) -> String {
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", VERIFIER),
        ("redirect_uri", REDIRECT),
        ("client_id", client_id),
    ];
    let reply = send(router, post_form("/token", None, &fields)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()["access_token"].as_str().unwrap().to_owned()
}

/// One tool call over MCP; the structured result.
async fn tool(router: &Router, token: &str, name: &str, args: Value) -> Value {
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": args}});
    let request = Request::post("/mcp")
        .header(header::HOST, "127.0.0.1")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(Body::from(call.to_string()))
        .unwrap();
    let reply = send(router, request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let result = &reply.json()["result"];
    assert_eq!(result["isError"], false, "{name}: {result}");
    result["structuredContent"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn todo_tools_keep_their_data_in_the_store() {
    let store = Shared::default();
    let router = demo(&store, Some("demo"));
    let client_id = register(&router).await;
    let code = code_from(&send(&router, get(&authorize_path(&client_id, "s1"), None)).await, "s1");
    let token = exchange(&router, &client_id, &code).await;

    let added = tool(&router, &token, "add_todo", json!({"text": "water the plants"})).await;
    let first = added["todo"]["id"].as_i64().unwrap();
    assert_eq!(added["todo"]["done"], false);

    // Racing adds never share an id, and ids only grow.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (router, token) = (router.clone(), token.clone());
            tokio::spawn(async move { tool(&router, &token, "add_todo", json!({"text": format!("todo {i}")})).await })
        })
        .collect();
    let mut ids = vec![first];
    for task in tasks {
        ids.push(task.await.unwrap()["todo"]["id"].as_i64().unwrap());
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 21, "ids handed out twice: {ids:?}");
    assert!(unique.iter().all(|id| *id >= first));

    let listed = tool(&router, &token, "list_todos", json!({})).await;
    let listed: Vec<i64> = listed["todos"].as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect();
    assert_eq!(listed, unique, "listed in id order");

    let done = tool(&router, &token, "complete_todo", json!({"id": first})).await;
    assert_eq!(done["todo"]["done"], true);
    let deleted = tool(&router, &token, "delete_todo", json!({"id": first})).await;
    assert_eq!(deleted["deleted"]["id"], first);

    // A deleted id is not handed out again.
    let next = tool(&router, &token, "add_todo", json!({"text": "after a delete"})).await;
    assert!(next["todo"]["id"].as_i64().unwrap() > *unique.last().unwrap());

    // Everything the application wrote is in the store, under its own keys.
    let keys = store.0.lock().unwrap().live_keys(oauth_core::UnixTime::from_secs(0));
    assert!(keys.iter().any(|k| k.starts_with("demo-todo/")), "{keys:?}");
    assert!(keys.iter().any(|k| k.starts_with("demo-todo-seq/")), "{keys:?}");
}

/// The sign-in and consent pages, each request served by whichever of two
/// replicas: nothing is kept in process memory.
#[tokio::test]
async fn consent_pages_work_across_replicas() {
    let store = Shared::default();
    let (a, b) = (demo(&store, None), demo(&store, None));
    let client_id = register(&a).await;

    let page = send(&a, get(&authorize_path(&client_id, "s2"), None)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let cookie = page.cookie();
    let (request, csrf) = (page.field("request"), page.field("csrf"));

    // A wrong password, then the right one, on the other replica.
    let login = |csrf: String, password: &'static str| {
        let (request, cookie) = (request.clone(), cookie.clone());
        async move {
            let fields = [
                ("request", request.as_str()),
                ("csrf", csrf.as_str()),
                ("username", "alice"),
                ("password", password),
                ("action", "login"),
            ];
            post_form("/authorize/login", Some(&cookie), &fields)
        }
    };
    let wrong = send(&b, login(csrf.clone(), "wrong").await).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text());
    let signed_in = send(&b, login(csrf.clone(), "wonderland").await).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.text());
    let new_cookie = signed_in.cookie();
    assert_ne!(new_cookie, cookie, "the browser id is replaced at sign-in");

    // The consent page on the first replica, with the new browser id only.
    let consent_path = signed_in.header("location").to_owned();
    let stale = send(&a, get(&consent_path, Some(&cookie))).await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN, "the pre-sign-in browser id no longer opens the page");
    let consent = send(&a, get(&consent_path, Some(&new_cookie))).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.text());
    assert!(consent.text().contains("Signed in as <b>alice</b>"));
    let csrf = consent.field("csrf");

    // The decision, posted twice at once to the two replicas: one wins.
    let decide = || {
        let fields =
            [("request", request.as_str()), ("csrf", csrf.as_str()), ("decision", "approve"), ("scope", "todo:read")];
        post_form("/authorize/decision", Some(&new_cookie), &fields)
    };
    let (x, y) = tokio::join!(send(&a, decide()), send(&b, decide()));
    let (won, lost) = if x.status == StatusCode::FOUND { (x, y) } else { (y, x) };
    assert_eq!(lost.status, StatusCode::BAD_REQUEST, "the page is decided once: {}", lost.text());
    let code = code_from(&won, "s2");
    let token = exchange(&b, &client_id, &code).await;
    let who = tool(&a, &token, "whoami", json!({})).await;
    assert_eq!(who["user_id"], "alice");
    assert_eq!(who["scope"], json!(["todo:read"]), "only the ticked scope");
}

/// Signing in replaces the browser id; a second page the browser opened
/// before that still accepts its forms from this browser, and only from it.
#[tokio::test]
async fn pages_opened_before_sign_in_follow_the_browser() {
    let store = Shared::default();
    let (a, b) = (demo(&store, None), demo(&store, None));
    let client_id = register(&a).await;

    let first = send(&a, get(&authorize_path(&client_id, "t1"), None)).await;
    let cookie = first.cookie();
    let second = send(&b, get(&authorize_path(&client_id, "t2"), Some(&cookie))).await;
    assert_eq!(second.status, StatusCode::OK);

    let sign_in = |page: &Reply, cookie: &str| {
        let fields = [
            ("request", page.field("request")),
            ("csrf", page.field("csrf")),
            ("username", "alice".to_owned()),
            ("password", "wonderland".to_owned()),
            ("action", "login".to_owned()),
        ];
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post_form("/authorize/login", Some(cookie), &fields)
    };
    let one = send(&a, sign_in(&first, &cookie)).await;
    assert_eq!(one.status, StatusCode::SEE_OTHER);
    let moved = one.cookie();

    // The second page was bound to the old id: from a stranger it is
    // forged, from this browser (holding the new id) it signs in.
    let stranger =
        send(&b, sign_in(&second, "mcp_session=0000000000000000000000000000000000000000000000000000000000000000"))
            .await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN);
    let two = send(&b, sign_in(&second, &moved)).await;
    assert_eq!(two.status, StatusCode::SEE_OTHER, "{}", two.text());
    let latest = two.cookie();

    // Both consent pages open with the latest id (the first followed two
    // moves), and both approve.
    for (reply, state) in [(&one, "t1"), (&two, "t2")] {
        let consent = send(&a, get(reply.header("location"), Some(&latest))).await;
        assert_eq!(consent.status, StatusCode::OK, "{}", consent.text());
        let fields = [
            ("request", consent.field("request")),
            ("csrf", consent.field("csrf")),
            ("decision", "approve".to_owned()),
            ("scope", "todo:read".to_owned()),
        ];
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let decided = send(&b, post_form("/authorize/decision", Some(&latest), &fields)).await;
        code_from(&decided, state);
    }
}
