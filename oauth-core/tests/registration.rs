//! RFC 7591 dynamic client registration and the client admin API.

use std::sync::{Arc, Mutex};

use base64ct::{Base64UrlUnpadded, Encoding};
use bytes::Bytes;
use http::{Request, Response};
use oauth_core::admin::{ClientSpec, ClientUpdate};
use oauth_core::storage::{Reply, StorageError, StorageRequest};
use oauth_core::testing::{MemoryStore, SeededRng};
use oauth_core::{
    BlockingStore, ErrorCode, ErrorEvent, Flow, HookCall, HookError, HookReply, Hooks, Input, Outcome,
    ProtectedResource, Provider, ProviderBuilder, Step, UnixTime, drive_blocking,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);
const ISSUER: &str = "https://as.example.com";
const LOOPBACK: &str = "http://127.0.0.1:33418/callback";

fn builder() -> ProviderBuilder {
    ProviderBuilder::new(ISSUER).resource(ProtectedResource::new("https://as.example.com/mcp").unwrap())
}

fn provider() -> Provider {
    builder().build().unwrap()
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
}

impl Answer {
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("<none>")
    }
}

fn answer(resp: Response<Bytes>) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    Answer { status, headers, body }
}

fn request(method: &str, content_type: Option<&str>, auth: Option<&str>, body: impl Into<Bytes>) -> Request<Bytes> {
    let mut b = Request::builder().method(method).uri(format!("{ISSUER}/register"));
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(body.into()).unwrap()
}

fn run(p: &Provider, store: &mut MemoryStore, req: Request<Bytes>, hook: impl FnMut(HookCall) -> HookReply) -> Answer {
    let mut rng = SeededRng::new(7);
    run_with_rng(p, store, req, &mut rng, hook)
}

fn run_with_rng(
    p: &Provider,
    store: &mut MemoryStore,
    req: Request<Bytes>,
    rng: &mut SeededRng,
    hook: impl FnMut(HookCall) -> HookReply,
) -> Answer {
    let mut flow = p.handle(req, NOW, rng);
    match drive_blocking(&mut flow, store, hook) {
        Outcome::Response(r) => answer(r),
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn no_hook(call: HookCall) -> HookReply {
    panic!("no hook expected, got {call:?}")
}

/// POST `body` as JSON with no hook expected.
fn register(p: &Provider, store: &mut MemoryStore, body: &Value) -> Answer {
    run(p, store, request("POST", Some("application/json"), None, body.to_string()), no_hook)
}

fn assert_refused(p: &Provider, body: &Value, status: u16, error: &str) -> Answer {
    let mut store = MemoryStore::new();
    let a = register(p, &mut store, body);
    assert_eq!((a.status, a.error()), (status, error), "body {body} answered {}", a.body);
    assert!(store.is_empty(), "a refused registration stored something");
    assert_eq!(a.headers["cache-control"], "no-store");
    a
}

fn stored_record(store: &MemoryStore, client_id: &str) -> Value {
    let key = format!("client/{client_id}");
    let (_, raw) = store.raw_values().find(|(k, _)| *k == key).expect("record stored");
    assert_eq!(raw.first(), Some(&1u8), "format version byte");
    serde_json::from_slice(&raw[1..]).unwrap()
}

fn drive<T: oauth_core::FlowOutput + Send + 'static>(flow: &mut Flow<T>, store: &mut MemoryStore) -> T {
    drive_blocking(flow, store, |c| c.default_reply())
}

// ---- happy paths -----------------------------------------------------------

#[test]
fn public_client_is_registered_with_defaults_and_no_secret() {
    let p = provider();
    let mut store = MemoryStore::new();
    let a = register(
        &p,
        &mut store,
        &json!({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none", "client_name": "Claude"}),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(a.headers["cache-control"], "no-store");
    assert_eq!(a.headers["pragma"], "no-cache");
    let id = a.body["client_id"].as_str().unwrap();
    assert_eq!(id.len(), 22, "16 random bytes in base64url");
    assert!(a.body.get("client_secret").is_none());
    assert!(a.body.get("client_secret_expires_at").is_none());
    assert!(a.body.get("registration_client_uri").is_none());
    assert!(a.body.get("registration_access_token").is_none());
    assert_eq!(a.body["client_id_issued_at"], NOW.as_secs());
    assert_eq!(a.body["redirect_uris"], json!([LOOPBACK]));
    assert_eq!(a.body["grant_types"], json!(["authorization_code"]));
    assert_eq!(a.body["response_types"], json!(["code"]));
    assert_eq!(a.body["application_type"], "web");
    assert_eq!(a.body["token_endpoint_auth_method"], "none");
    assert_eq!(a.body["client_name"], "Claude");

    let rec = stored_record(&store, id);
    assert_eq!(rec["secret_hash"], Value::Null);
    assert_eq!(rec["registration_ttl"], 90 * 86_400);
    assert_eq!(store.live_keys(NOW), vec![format!("client/{id}")]);
}

#[test]
fn confidential_is_the_default_and_only_the_secret_hash_is_stored() {
    let p = provider();
    let mut store = MemoryStore::new();
    let a = register(&p, &mut store, &json!({"redirect_uris": ["https://app.example/cb"]}));
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(a.body["client_secret_expires_at"], 0);
    let id = a.body["client_id"].as_str().unwrap().to_owned();
    let secret = a.body["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("mcp_cs_") && secret.len() == 7 + 43, "{secret}");

    // The secret is nowhere at rest (the scan is not vacuous: the id is).
    let everything: Vec<u8> = store.raw_values().flat_map(|(k, v)| k.bytes().chain(v.iter().copied())).collect();
    let contains = |needle: &str| everything.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(contains(&id));
    assert!(!contains(&secret));
    assert!(!contains(secret.trim_start_matches("mcp_cs_")));

    // What is stored is the labelled hash of the secret.
    let mut h = Sha256::new();
    h.update(b"oauth-core/v1/client-secret");
    h.update([0u8]);
    h.update(secret.as_bytes());
    let expected = Base64UrlUnpadded::encode_string(&h.finalize());
    assert_eq!(stored_record(&store, &id)["secret_hash"], expected);
}

#[test]
fn every_registration_gets_fresh_credentials_and_admin_reads_never_show_the_secret() {
    let p = provider();
    let mut store = MemoryStore::new();
    let mut rng = SeededRng::new(99);
    let body = json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "client_secret_post"});
    let req = || request("POST", Some("application/json"), None, body.to_string());
    let a = run_with_rng(&p, &mut store, req(), &mut rng, no_hook);
    let b = run_with_rng(&p, &mut store, req(), &mut rng, no_hook);
    assert_eq!((a.status, b.status), (201, 201));
    assert_ne!(a.body["client_id"], b.body["client_id"]);
    assert_ne!(a.body["client_secret"], b.body["client_secret"]);
    assert_eq!(a.body["token_endpoint_auth_method"], "client_secret_post");

    let id = a.body["client_id"].as_str().unwrap();
    let info = drive(&mut p.get_client(id, NOW), &mut store).unwrap().unwrap();
    assert!(info.confidential);
    let shown = format!("{info:?}");
    assert!(!shown.contains(a.body["client_secret"].as_str().unwrap()));
}

#[test]
fn charset_parameter_and_unknown_fields_are_accepted_and_unknown_fields_not_echoed() {
    let p = provider();
    let mut store = MemoryStore::new();
    let body = json!({
        "redirect_uris": [LOOPBACK],
        "token_endpoint_auth_method": "none",
        "software_statement": "eyJhbGciOiJub25lIn0.eyJjbGllbnRfbmFtZSI6ImV2aWwifQ.",
        "jwks_uri": "https://evil.example/jwks",
        "x_custom": {"nested": [1, 2]},
        "client_name#ja-Jpan-JP": "クライアント",
        "client_id": "chosen-by-attacker",
        "client_secret": "chosen-by-attacker",
        "scope": "todo:read  todo:write todo:read",
        "software_id": "4NRB1-0XZABZI9E6-5SM3R",
        "software_version": "2.1",
        "contacts": ["ops@app.example", "ops@app.example"],
        "client_uri": "https://APP.example/home",
        "logo_uri": "https://app.example/logo.png",
        "policy_uri": "http://localhost:8080/policy",
        "tos_uri": "https://app.example/tos",
        "grant_types": ["authorization_code", "refresh_token", "refresh_token"],
        "application_type": null
    });
    let a =
        run(&p, &mut store, request("POST", Some("Application/JSON; charset=utf-8"), None, body.to_string()), no_hook);
    assert_eq!(a.status, 201, "{}", a.body);
    let obj = a.body.as_object().unwrap();
    for ignored in ["software_statement", "jwks_uri", "x_custom", "client_name#ja-Jpan-JP", "client_secret"] {
        assert!(!obj.contains_key(ignored), "{ignored} echoed");
    }
    assert_ne!(a.body["client_id"], "chosen-by-attacker");
    assert_eq!(a.body["scope"], "todo:read todo:write");
    assert_eq!(a.body["contacts"], json!(["ops@app.example"]));
    assert_eq!(a.body["client_uri"], "https://app.example/home");
    assert_eq!(a.body["policy_uri"], "http://localhost:8080/policy");
    assert_eq!(a.body["grant_types"], json!(["authorization_code", "refresh_token"]));
    assert_eq!(a.body["software_id"], "4NRB1-0XZABZI9E6-5SM3R");
    assert_eq!(a.body["software_version"], "2.1");
    assert_eq!(a.body["application_type"], "web");
}

// ---- request shape ---------------------------------------------------------

#[test]
fn only_post_is_allowed() {
    let p = provider();
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let mut store = MemoryStore::new();
        let a = run(&p, &mut store, request(method, Some("application/json"), None, "{}"), no_hook);
        assert_eq!(a.status, 405, "{method}");
        assert_eq!(a.headers["allow"], "POST, OPTIONS");
        assert!(store.is_empty());
    }
}

#[test]
fn content_type_must_be_json() {
    let p = provider();
    let body = json!({"redirect_uris": [LOOPBACK]}).to_string();
    for ct in [None, Some("application/x-www-form-urlencoded"), Some("text/plain"), Some("application/jsonp")] {
        let mut store = MemoryStore::new();
        let a = run(&p, &mut store, request("POST", ct, None, body.clone()), no_hook);
        assert_eq!((a.status, a.error()), (400, "invalid_client_metadata"), "{ct:?}");
        assert!(store.is_empty());
    }
}

#[test]
fn body_limit_is_exact_and_oversized_bodies_get_413() {
    let p = builder().registration_body_limit(256).build().unwrap();
    let base = json!({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none"}).to_string();
    let pad = |n: usize| format!("{}{}", base, " ".repeat(n - base.len()));

    let mut store = MemoryStore::new();
    let a = run(&p, &mut store, request("POST", Some("application/json"), None, pad(256)), no_hook);
    assert_eq!(a.status, 201, "a body of exactly the limit is accepted");

    let mut store = MemoryStore::new();
    let a = run(&p, &mut store, request("POST", Some("application/json"), None, pad(257)), no_hook);
    assert_eq!(a.status, 413);
    assert_eq!(a.error(), "invalid_client_metadata");
    assert!(a.body["error_description"].is_string());
    assert_eq!(a.headers["cache-control"], "no-store");
    assert!(store.is_empty());
}

#[test]
fn malformed_and_non_object_bodies_are_invalid_client_metadata() {
    let p = provider();
    let bodies: Vec<Bytes> = vec![
        Bytes::from_static(b""),
        Bytes::from_static(b"{"),
        Bytes::from_static(b"{\"redirect_uris\": [\"http://127.0.0.1/cb\"],}"),
        Bytes::from_static(b"[]"),
        Bytes::from_static(b"\"string\""),
        Bytes::from_static(b"null"),
        Bytes::from_static(b"42"),
        Bytes::from_static(b"{} {}"),
        Bytes::from_static(b"\xef\xbb\xbf{}"),
        Bytes::from_static(b"{\"client_name\": \"\xff\xfe\"}"),
        Bytes::from(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000))),
    ];
    for body in bodies {
        let mut store = MemoryStore::new();
        let shown = String::from_utf8_lossy(&body).chars().take(40).collect::<String>();
        let a = run(&p, &mut store, request("POST", Some("application/json"), None, body), no_hook);
        assert_eq!((a.status, a.error()), (400, "invalid_client_metadata"), "{shown}");
        assert!(store.is_empty());
    }
}

#[test]
fn duplicate_members_are_refused() {
    let p = provider();
    let body = format!(r#"{{"redirect_uris": ["{LOOPBACK}"], "redirect_uris": ["javascript:alert(1)"]}}"#);
    let mut store = MemoryStore::new();
    let a = run(&p, &mut store, request("POST", Some("application/json"), None, body), no_hook);
    assert_eq!((a.status, a.error()), (400, "invalid_client_metadata"));
    assert!(store.is_empty());
}

#[test]
fn wrong_member_types_are_refused() {
    let p = provider();
    for (body, error) in [
        (json!({"redirect_uris": LOOPBACK}), "invalid_redirect_uri"),
        (json!({"redirect_uris": [LOOPBACK, 5]}), "invalid_redirect_uri"),
        (json!({"redirect_uris": [LOOPBACK], "client_name": 5}), "invalid_client_metadata"),
        (json!({"redirect_uris": [LOOPBACK], "grant_types": "authorization_code"}), "invalid_client_metadata"),
        (json!({"redirect_uris": [LOOPBACK], "contacts": "ops@app.example"}), "invalid_client_metadata"),
        (json!({"redirect_uris": [LOOPBACK], "contacts": [1]}), "invalid_client_metadata"),
        (json!({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": ["none"]}), "invalid_client_metadata"),
        (json!({"redirect_uris": [LOOPBACK], "scope": ["a"]}), "invalid_client_metadata"),
    ] {
        assert_refused(&p, &body, 400, error);
    }
}

// ---- redirect URIs ---------------------------------------------------------

#[test]
fn hostile_redirect_uris_are_refused_even_next_to_good_ones() {
    let p = builder().allow_private_use_redirect_uris(true).build().unwrap();
    let long = format!("https://app.example/{}", "a".repeat(2100));
    let hostile = [
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        " javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "vbscript:msgbox(1)",
        "https://app.example/cb#frag",
        "https://app.example/cb#",
        "https://user:pass@app.example/cb",
        "https://user@app.example/cb",
        "https://app.example/c\u{0000}b",
        "https://app.example/c\nb",
        "https://app.example/\tcb",
        "https://app.example/c b",
        "https:\\\\evil.example\\cb",
        "http://app.example/cb",
        "http://127.0.0.1.evil.example/cb",
        "http://localhost.evil.example/cb",
        "/relative/cb",
        "",
        long.as_str(),
    ];
    for uri in hostile {
        let a = assert_refused(&p, &json!({"redirect_uris": [LOOPBACK, uri]}), 400, "invalid_redirect_uri");
        assert!(a.body["error_description"].as_str().unwrap().starts_with("redirect_uris[1]"), "{uri:?}: {}", a.body);
    }
}

#[test]
fn redirect_uris_are_required_for_the_code_grant() {
    let p = provider();
    assert_refused(&p, &json!({}), 400, "invalid_redirect_uri");
    assert_refused(&p, &json!({"redirect_uris": []}), 400, "invalid_redirect_uri");
    assert_refused(&p, &json!({"redirect_uris": null}), 400, "invalid_redirect_uri");
    let many: Vec<String> = (0..33).map(|i| format!("https://app.example/cb{i}")).collect();
    assert_refused(&p, &json!({"redirect_uris": many}), 400, "invalid_redirect_uri");
}

#[test]
fn loopback_variants_are_accepted_and_stored_verbatim() {
    let p = provider();
    let uris = ["http://127.0.0.1/cb", "http://localhost:8080/cb?x=1", "http://[::1]:9/cb", "https://app.example/cb"];
    let mut store = MemoryStore::new();
    let a = register(&p, &mut store, &json!({"redirect_uris": uris, "token_endpoint_auth_method": "none"}));
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["redirect_uris"], json!(uris));
    assert_eq!(a.body["application_type"], "web");
}

#[test]
fn refused_private_use_uri_is_dropped_when_a_usable_one_remains() {
    // Cursor's registration: a private-use scheme next to a loopback URI.
    let p = provider();
    let mut store = MemoryStore::new();
    let body = json!({
        "redirect_uris": ["cursor://anysphere.cursor-retrieval/oauth/callback", LOOPBACK],
        "token_endpoint_auth_method": "none"
    });
    let a = register(&p, &mut store, &body);
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["redirect_uris"], json!([LOOPBACK]));
    assert_eq!(a.body["application_type"], "web");
    let rec = stored_record(&store, a.body["client_id"].as_str().unwrap());
    assert_eq!(rec["redirect_uris"], json!([LOOPBACK]));

    let a = assert_refused(&p, &json!({"redirect_uris": ["cursor://cb"]}), 400, "invalid_redirect_uri");
    assert!(a.body["error_description"].as_str().unwrap().contains("private-use"));
}

#[test]
fn application_type_governs_private_use_schemes() {
    let p = builder().allow_private_use_redirect_uris(true).build().unwrap();
    let custom = "com.example.app:/oauth";

    // Omitted: a kept private-use URI makes the client native.
    let mut store = MemoryStore::new();
    let a =
        register(&p, &mut store, &json!({"redirect_uris": [custom, LOOPBACK], "token_endpoint_auth_method": "none"}));
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["redirect_uris"], json!([custom, LOOPBACK]));
    assert_eq!(a.body["application_type"], "native");

    // Explicit native: kept.
    let mut store = MemoryStore::new();
    let a = register(&p, &mut store, &json!({"redirect_uris": [custom], "application_type": "native"}));
    assert_eq!((a.status, a.body["application_type"].as_str()), (201, Some("native")), "{}", a.body);

    // Explicit web: a private-use URI is dropped, or refused when alone.
    let mut store = MemoryStore::new();
    let a = register(&p, &mut store, &json!({"redirect_uris": [custom, LOOPBACK], "application_type": "web"}));
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["redirect_uris"], json!([LOOPBACK]));
    assert_eq!(a.body["application_type"], "web");
    assert_refused(&p, &json!({"redirect_uris": [custom], "application_type": "web"}), 400, "invalid_redirect_uri");

    // Native clients may use loopback and https; explicit native is echoed.
    let mut store = MemoryStore::new();
    let body = json!({"redirect_uris": [LOOPBACK, "https://app.example/cb"], "application_type": "native"});
    let a = register(&p, &mut store, &body);
    assert_eq!((a.status, a.body["application_type"].as_str()), (201, Some("native")), "{}", a.body);

    for bad in [json!("desktop"), json!("Web"), json!(""), json!(1)] {
        assert_refused(
            &p,
            &json!({"redirect_uris": [LOOPBACK], "application_type": bad}),
            400,
            "invalid_client_metadata",
        );
    }
}

// ---- auth methods, grant and response types --------------------------------

#[test]
fn unknown_auth_methods_are_refused() {
    let p = provider();
    for method in ["private_key_jwt", "client_secret_jwt", "tls_client_auth", "NONE", ""] {
        assert_refused(
            &p,
            &json!({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": method}),
            400,
            "invalid_client_metadata",
        );
    }
}

#[test]
fn public_clients_can_be_refused() {
    let p = builder().disallow_public_client_registration(true).build().unwrap();
    let a = assert_refused(
        &p,
        &json!({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none"}),
        400,
        "invalid_client_metadata",
    );
    assert!(a.body["error_description"].as_str().unwrap().contains("public"));
    let mut store = MemoryStore::new();
    let a = register(
        &p,
        &mut store,
        &json!({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "client_secret_post"}),
    );
    assert_eq!(a.status, 201);
}

#[test]
fn grant_and_response_types_are_checked_and_consistent() {
    let p = provider();
    for body in [
        json!({"redirect_uris": [LOOPBACK], "grant_types": ["implicit"]}),
        json!({"redirect_uris": [LOOPBACK], "grant_types": ["password"]}),
        json!({"redirect_uris": [LOOPBACK], "grant_types": ["client_credentials"]}),
        json!({"redirect_uris": [LOOPBACK], "grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"]}),
        json!({"redirect_uris": [LOOPBACK], "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"]}),
        json!({"redirect_uris": [LOOPBACK], "grant_types": []}),
        json!({"redirect_uris": [LOOPBACK], "response_types": ["token"]}),
        json!({"redirect_uris": [LOOPBACK], "response_types": ["code", "id_token"]}),
        json!({"redirect_uris": [LOOPBACK], "response_types": []}),
        json!({"redirect_uris": [LOOPBACK], "grant_types": ["refresh_token"], "response_types": ["code"]}),
    ] {
        assert_refused(&p, &body, 400, "invalid_client_metadata");
    }
}

#[test]
fn token_exchange_clients_need_the_feature_and_no_redirect_uri() {
    let body = json!({"grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"]});
    assert_refused(&provider(), &body, 400, "invalid_client_metadata");

    let p = builder().token_exchange(true).build().unwrap();
    let mut store = MemoryStore::new();
    let a = register(&p, &mut store, &body);
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["response_types"], json!([]));
    assert_eq!(a.body["redirect_uris"], json!([]));
    assert!(a.body["client_secret"].is_string());
}

// ---- other metadata --------------------------------------------------------

#[test]
fn metadata_uris_must_be_safe_web_urls() {
    let p = provider();
    for field in ["client_uri", "logo_uri", "policy_uri", "tos_uri"] {
        for uri in [
            "javascript:alert(1)",
            "data:image/svg+xml,<svg onload=alert(1)>",
            "file:///etc/passwd",
            "http://app.example/",
            "https://user:pw@app.example/",
            "https://app.example/\u{0007}",
            "https://app.example/a b",
            "https:\\\\app.example\\logo.png",
            "not a url",
        ] {
            let body = json!({"redirect_uris": [LOOPBACK], field: uri});
            assert_refused(&p, &body, 400, "invalid_client_metadata");
        }
    }
    let mut store = MemoryStore::new();
    let a = register(&p, &mut store, &json!({"redirect_uris": [LOOPBACK], "logo_uri": "https://app.example/\"><x"}));
    assert_eq!(a.status, 201);
    assert_eq!(a.body["logo_uri"], "https://app.example/%22%3E%3Cx");
}

#[test]
fn text_fields_are_capped_and_free_of_control_characters() {
    let p = provider();
    for body in [
        json!({"redirect_uris": [LOOPBACK], "client_name": "x".repeat(257)}),
        json!({"redirect_uris": [LOOPBACK], "client_name": "Good\u{0000}App"}),
        json!({"redirect_uris": [LOOPBACK], "client_name": "line\nbreak"}),
        json!({"redirect_uris": [LOOPBACK], "client_name": "Official \u{202E}ppA"}),
        json!({"redirect_uris": [LOOPBACK], "software_id": "s".repeat(257)}),
        json!({"redirect_uris": [LOOPBACK], "software_version": "1\r\n2"}),
        json!({"redirect_uris": [LOOPBACK], "contacts": [""]}),
        json!({"redirect_uris": [LOOPBACK], "contacts": ["a\u{0008}b"]}),
        json!({"redirect_uris": [LOOPBACK], "contacts": vec!["ops@app.example"; 17]}),
        json!({"redirect_uris": [LOOPBACK], "scope": "a\"b"}),
        json!({"redirect_uris": [LOOPBACK], "scope": "caf\u{e9}"}),
        json!({"redirect_uris": [LOOPBACK], "scope": "s".repeat(4097)}),
    ] {
        assert_refused(&p, &body, 400, "invalid_client_metadata");
    }
    let mut store = MemoryStore::new();
    let name = "é".repeat(256);
    let a = register(&p, &mut store, &json!({"redirect_uris": [LOOPBACK], "client_name": name}));
    assert_eq!(a.status, 201, "256 characters are allowed however many bytes they take");
    assert_eq!(a.body["client_name"], name);
}

#[test]
fn null_and_empty_members_count_as_absent() {
    let p = provider();
    let mut store = MemoryStore::new();
    let body = json!({
        "redirect_uris": [LOOPBACK], "client_name": "", "scope": " ", "contacts": null,
        "grant_types": null, "response_types": null, "token_endpoint_auth_method": null, "logo_uri": ""
    });
    let a = register(&p, &mut store, &body);
    assert_eq!(a.status, 201, "{}", a.body);
    let obj = a.body.as_object().unwrap();
    for absent in ["client_name", "scope", "contacts", "logo_uri"] {
        assert!(!obj.contains_key(absent), "{absent}");
    }
    assert_eq!(a.body["token_endpoint_auth_method"], "client_secret_basic");
}

// ---- initial access token --------------------------------------------------

fn iat_provider() -> Provider {
    builder()
        .require_initial_access_token(true)
        .initial_access_token("iat-one")
        .initial_access_token("iat-two")
        .build()
        .unwrap()
}

fn with_token(token: Option<&str>) -> Request<Bytes> {
    let auth = token.map(|t| format!("Bearer {t}"));
    request("POST", Some("application/json"), auth.as_deref(), json!({"redirect_uris": [LOOPBACK]}).to_string())
}

#[test]
fn initial_access_token_required_missing_or_wrong_is_401() {
    let p = iat_provider();
    for token in [None, Some("iat-three"), Some("iat-on"), Some("not valid!")] {
        let mut store = MemoryStore::new();
        let a = run(&p, &mut store, with_token(token), no_hook);
        assert_eq!((a.status, a.error()), (401, "invalid_token"), "{token:?}");
        let challenge = a.headers["www-authenticate"].to_str().unwrap();
        if token.is_none() {
            // RFC 6750 §3.1: no error code when no credentials were sent.
            assert_eq!(challenge, "Bearer");
        } else {
            assert!(challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""), "{challenge}");
        }
        assert!(store.is_empty());
    }
    let mut store = MemoryStore::new();
    let basic = request("POST", Some("application/json"), Some("Basic aWF0LW9uZTo="), "{}");
    assert_eq!(run(&p, &mut store, basic, no_hook).status, 401, "only a Bearer token counts");
}

#[test]
fn initial_access_token_is_checked_before_the_body() {
    let p = iat_provider();
    let mut store = MemoryStore::new();
    let a = run(&p, &mut store, request("POST", Some("text/plain"), None, "garbage"), no_hook);
    assert_eq!((a.status, a.error()), (401, "invalid_token"));
}

#[test]
fn every_configured_initial_access_token_is_accepted() {
    let p = iat_provider();
    for token in ["iat-one", "iat-two"] {
        let mut store = MemoryStore::new();
        let a = run(&p, &mut store, with_token(Some(token)), no_hook);
        assert_eq!(a.status, 201, "{token}: {}", a.body);
    }
}

#[test]
fn tokens_are_ignored_when_not_required_and_no_hook_listens() {
    let p = builder().initial_access_token("iat-one").build().unwrap();
    for token in [None, Some("iat-one"), Some("whatever")] {
        let mut store = MemoryStore::new();
        assert_eq!(run(&p, &mut store, with_token(token), no_hook).status, 201, "{token:?}");
    }
}

#[test]
fn hook_judges_unknown_initial_access_tokens() {
    let p = builder()
        .require_initial_access_token(true)
        .initial_access_token("iat-one")
        .hooks(registration_hook())
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));

    let log = Arc::clone(&seen);
    let approve_tenant = move |call: HookCall| {
        let HookCall::ClientRegistration(ctx) = &call else { panic!("{call:?}") };
        log.lock().unwrap().push((ctx.initial_access_token.clone(), ctx.initial_access_token_accepted));
        if ctx.initial_access_token.as_deref() == Some("tenant-token") {
            HookReply::ClientRegistration(Ok(()))
        } else {
            call.default_reply()
        }
    };
    let mut store = MemoryStore::new();
    let a = run(&p, &mut store, with_token(Some("tenant-token")), approve_tenant.clone());
    assert_eq!(a.status, 201, "{}", a.body);
    let mut store = MemoryStore::new();
    let a = run(&p, &mut store, with_token(Some("iat-one")), approve_tenant.clone());
    assert_eq!(a.status, 201, "{}", a.body);
    let mut store = MemoryStore::new();
    let a = run(&p, &mut store, with_token(Some("stranger")), approve_tenant.clone());
    assert_eq!((a.status, a.error()), (401, "invalid_token"));
    assert!(a.headers.contains_key("www-authenticate"));
    assert!(store.is_empty());
    // A missing token never reaches the hook.
    let mut store = MemoryStore::new();
    let a = run(&p, &mut store, with_token(None), approve_tenant);
    assert_eq!(a.status, 401);

    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (Some("tenant-token".to_owned()), false),
            (Some("iat-one".to_owned()), true),
            (Some("stranger".to_owned()), false),
        ]
    );
}

// ---- registration hook -----------------------------------------------------

fn registration_hook() -> Hooks {
    let mut hooks = Hooks::default();
    hooks.client_registration = true;
    hooks
}

fn hooked() -> Provider {
    builder().hooks(registration_hook()).build().unwrap()
}

#[test]
fn hook_sees_the_validated_metadata_and_can_refuse() {
    let p = hooked();
    let seen = Arc::new(Mutex::new(None));
    let log = Arc::clone(&seen);
    let refuse = move |call: HookCall| {
        let HookCall::ClientRegistration(ctx) = call else { panic!() };
        *log.lock().unwrap() = Some(ctx.metadata);
        HookReply::ClientRegistration(Err(HookError::new(ErrorCode::InvalidClientMetadata, "Unknown vendor")))
    };
    let body =
        json!({"redirect_uris": ["cursor://cb", LOOPBACK], "client_name": "X", "software_statement": "e30.e30."});
    let mut store = MemoryStore::new();
    let a = run(&p, &mut store, request("POST", Some("application/json"), None, body.to_string()), refuse);
    assert_eq!((a.status, a.error()), (400, "invalid_client_metadata"));
    assert_eq!(a.body["error_description"], "Unknown vendor");
    assert!(store.is_empty());

    let metadata = seen.lock().unwrap().clone().unwrap();
    assert_eq!(metadata["redirect_uris"], json!([LOOPBACK]));
    assert_eq!(metadata["grant_types"], json!(["authorization_code"]));
    assert_eq!(metadata["client_name"], "X");
    assert!(metadata.get("software_statement").is_none());
    assert!(metadata.get("client_secret").is_none());
}

#[test]
fn hook_refusal_status_follows_its_code() {
    let p = hooked();
    for (code, status) in
        [(ErrorCode::AccessDenied, 403), (ErrorCode::InvalidRedirectUri, 400), (ErrorCode::InvalidToken, 401)]
    {
        let mut store = MemoryStore::new();
        let req = request("POST", Some("application/json"), None, json!({"redirect_uris": [LOOPBACK]}).to_string());
        let a = run(&p, &mut store, req, |_| HookReply::ClientRegistration(Err(HookError::new(code, "no"))));
        assert_eq!((a.status, a.error()), (status, code.as_str()));
        assert!(store.is_empty());
    }
}

#[test]
fn hook_approval_registers_and_wrong_hook_reply_is_a_server_error() {
    let p = hooked();
    let req = || request("POST", Some("application/json"), None, json!({"redirect_uris": [LOOPBACK]}).to_string());
    let mut store = MemoryStore::new();
    assert_eq!(run(&p, &mut store, req(), |c| c.default_reply()).status, 201);

    let mut store = MemoryStore::new();
    let wrong = |_| HookReply::TokenIssuance(Ok(oauth_core::IssuanceDecision::unchanged()));
    let a = run(&p, &mut store, req(), wrong);
    assert_eq!((a.status, a.error()), (500, "server_error"));
    assert!(store.is_empty());
}

#[test]
fn errors_are_observed_with_the_register_endpoint_and_a_slug() {
    let events: Arc<Mutex<Vec<ErrorEvent>>> = Arc::default();
    let sink = Arc::clone(&events);
    let p = builder().on_error(move |e| sink.lock().unwrap().push(e.clone())).build().unwrap();
    let mut store = MemoryStore::new();
    register(&p, &mut store, &json!({"redirect_uris": ["javascript:alert(1)"]}));
    run(&p, &mut store, request("GET", None, None, ""), no_hook);
    register(&p, &mut store, &json!({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "private_key_jwt"}));
    let events = events.lock().unwrap();
    let summary: Vec<(&str, &str, &str)> =
        events.iter().map(|e| (e.endpoint, e.code.as_str(), e.reason.as_str())).collect();
    assert_eq!(
        summary,
        vec![
            ("register", "invalid_redirect_uri", "redirect_uri_invalid"),
            ("register", "invalid_request", "method_not_allowed"),
            ("register", "invalid_client_metadata", "auth_method_unsupported"),
        ]
    );
    assert!(events.iter().all(|e| e.client_id.is_none()), "refused registrations name no client");
}

// ---- storage ---------------------------------------------------------------

#[test]
fn one_round_trip_with_an_if_absent_put_and_the_registration_ttl() {
    let p = builder().client_registration_ttl(Some(3600)).build().unwrap();
    let mut rng = SeededRng::new(3);
    let req = request("POST", Some("application/json"), None, json!({"redirect_uris": [LOOPBACK]}).to_string());
    let mut flow = p.handle(req, NOW, &mut rng);
    let Step::Storage(batch) = flow.advance(Input::Start) else { panic!("expected storage") };
    assert_eq!(batch.now, NOW);
    let [oauth_core::StorageOp::Put { key, revision, expires_at, condition, .. }] = batch.ops.as_slice() else {
        panic!("{batch:?}")
    };
    assert!(key.starts_with("client/"));
    assert_eq!((*revision, *expires_at, *condition), (1, Some(NOW.plus(3600)), oauth_core::Condition::IfAbsent));
    let Step::Done(Outcome::Response(r)) = flow.advance(Input::Storage(Ok(vec![Reply::Written(true)]))) else {
        panic!()
    };
    assert_eq!(r.status(), 201);
    assert_eq!((flow.stats().round_trips, flow.stats().operations, flow.stats().hooks), (1, 1, 0));
}

#[test]
fn a_client_id_collision_is_a_server_error() {
    let events: Arc<Mutex<Vec<ErrorEvent>>> = Arc::default();
    let sink = Arc::clone(&events);
    let p = builder().on_error(move |e| sink.lock().unwrap().push(e.clone())).build().unwrap();
    let mut store = MemoryStore::new();
    let req = || request("POST", Some("application/json"), None, json!({"redirect_uris": [LOOPBACK]}).to_string());
    // The same seed mints the same id twice.
    assert_eq!(run_with_rng(&p, &mut store, req(), &mut SeededRng::new(5), no_hook).status, 201);
    let a = run_with_rng(&p, &mut store, req(), &mut SeededRng::new(5), no_hook);
    assert_eq!((a.status, a.error()), (500, "server_error"));
    assert!(a.body.get("client_secret").is_none());
    assert_eq!(store.len(), 1);
    let events = events.lock().unwrap();
    let [event] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(event.reason.as_str(), "client_id_collision");
    assert_eq!(event.client_id, store.live_keys(NOW)[0].strip_prefix("client/").map(str::to_owned));
}

struct Failing(StorageError);

impl BlockingStore for Failing {
    fn execute(&mut self, _request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        Err(self.0.clone())
    }
}

#[test]
fn storage_failures_are_503_or_500_and_never_leak_the_secret() {
    let p = provider();
    for (err, status) in [(StorageError::Unavailable, 503), (StorageError::Other("disk".into()), 500)] {
        let req = request("POST", Some("application/json"), None, json!({"redirect_uris": [LOOPBACK]}).to_string());
        let mut flow = p.handle(req, NOW, &mut SeededRng::new(1));
        let Outcome::Response(r) = drive_blocking(&mut flow, &mut Failing(err), no_hook) else { panic!() };
        let a = answer(r);
        assert_eq!(a.status, status);
        assert!(a.body.get("client_secret").is_none());
    }
}

#[test]
fn misdriven_flows_end_in_a_server_error() {
    let p = provider();
    let req = request("POST", Some("application/json"), None, json!({"redirect_uris": [LOOPBACK]}).to_string());
    let mut flow = p.handle(req, NOW, &mut SeededRng::new(1));
    let _ = flow.advance(Input::Start);
    let Step::Done(Outcome::Response(r)) = flow.advance(Input::Start) else { panic!() };
    assert_eq!(r.status(), 500);
    let Step::Done(Outcome::Response(r)) = flow.advance(Input::Storage(Ok(vec![Reply::Written(true)]))) else {
        panic!()
    };
    assert_eq!(r.status(), 500, "a finished flow stays finished");

    let req = request("POST", Some("application/json"), None, json!({"redirect_uris": [LOOPBACK]}).to_string());
    let mut flow = p.handle(req, NOW, &mut SeededRng::new(1));
    let _ = flow.advance(Input::Start);
    let Step::Done(Outcome::Response(r)) = flow.advance(Input::Storage(Ok(vec![Reply::Done]))) else { panic!() };
    assert_eq!(r.status(), 500, "a reply of the wrong kind");
}

#[test]
fn registration_expires_exactly_at_its_ttl() {
    let ttl = 3600;
    let p = builder().client_registration_ttl(Some(ttl)).build().unwrap();
    let mut store = MemoryStore::new();
    let a = register(&p, &mut store, &json!({"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "none"}));
    let id = a.body["client_id"].as_str().unwrap();

    let alive = drive(&mut p.get_client(id, NOW.plus(ttl - 1)), &mut store).unwrap().unwrap();
    assert_eq!(alive.expires_at, Some(NOW.plus(ttl)));
    assert_eq!(alive.registration_ttl, Some(ttl));
    assert_eq!(drive(&mut p.get_client(id, NOW.plus(ttl)), &mut store).unwrap(), None);
    let page = drive(&mut p.list_clients(None, 10, NOW.plus(ttl)), &mut store).unwrap();
    assert!(page.clients.is_empty());

    let p = builder().client_registration_ttl(None).build().unwrap();
    let mut store = MemoryStore::new();
    let a = register(&p, &mut store, &json!({"redirect_uris": [LOOPBACK]}));
    let id = a.body["client_id"].as_str().unwrap();
    let info = drive(&mut p.get_client(id, NOW.plus(10 * 365 * 86_400)), &mut store).unwrap().unwrap();
    assert_eq!((info.expires_at, info.registration_ttl), (None, None));
}

// ---- admin -----------------------------------------------------------------

#[test]
fn admin_create_get_update_rotate_delete() {
    let p = builder().disallow_public_client_registration(true).build().unwrap();
    let mut store = MemoryStore::new();
    let mut rng = SeededRng::new(11);

    let spec = ClientSpec::new(["https://app.example/cb"]).client_name("Admin app").scope("todo:read");
    let created = drive(&mut p.create_client(spec, NOW, &mut rng), &mut store).unwrap();
    let secret = created.client_secret.clone().unwrap();
    assert!(!format!("{created:?}").contains(&secret), "Debug redacts the secret");
    let id = created.client.client_id.clone();
    assert_eq!((created.client.revision, created.client.expires_at, created.client.registration_ttl), (1, None, None));
    assert!(created.client.confidential);
    assert_eq!(created.client.token_endpoint_auth_method, "client_secret_basic");
    assert!(!store.raw_values().any(|(_, v)| v.windows(secret.len()).any(|w| w == secret.as_bytes())));

    let info = drive(&mut p.get_client(&id, NOW), &mut store).unwrap().unwrap();
    assert_eq!(info, created.client);

    // Update: read-modify-write with the revision.
    let spec = ClientSpec::from(&info).client_name("Renamed");
    let ClientUpdate::Updated(updated) =
        drive(&mut p.update_client(&id, 1, spec.clone(), NOW, &mut rng), &mut store).unwrap()
    else {
        panic!()
    };
    assert_eq!((updated.client.revision, updated.client.client_name.as_deref()), (2, Some("Renamed")));
    assert_eq!(updated.client_secret, None, "the secret is kept, not re-minted");
    assert_eq!(updated.client.created_at, NOW);
    let stale = drive(&mut p.update_client(&id, 1, spec, NOW, &mut rng), &mut store).unwrap();
    assert_eq!(stale, ClientUpdate::Conflict { current_revision: Some(2) });
    let missing = drive(&mut p.update_client("nope", 1, ClientSpec::new([LOOPBACK]), NOW, &mut rng), &mut store);
    assert_eq!(missing.unwrap(), ClientUpdate::NotFound);

    // Rotation mints a new secret and keeps everything else.
    let ClientUpdate::Updated(rotated) = drive(&mut p.rotate_client_secret(&id, 2, NOW, &mut rng), &mut store).unwrap()
    else {
        panic!()
    };
    let new_secret = rotated.client_secret.clone().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!((rotated.client.revision, rotated.client.client_name.as_deref()), (3, Some("Renamed")));

    // Public, despite the dynamic-registration policy; the secret goes.
    let info = drive(&mut p.get_client(&id, NOW), &mut store).unwrap().unwrap();
    let ClientUpdate::Updated(public) =
        drive(&mut p.update_client(&id, 3, ClientSpec::from(&info).public(), NOW, &mut rng), &mut store).unwrap()
    else {
        panic!()
    };
    assert!(!public.client.confidential);
    assert_eq!(stored_record(&store, &id)["secret_hash"], Value::Null);
    let err = drive(&mut p.rotate_client_secret(&id, 4, NOW, &mut rng), &mut store).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidClientMetadata);

    // Confidential again: a new secret is minted and returned.
    let info = drive(&mut p.get_client(&id, NOW), &mut store).unwrap().unwrap();
    let spec = ClientSpec::from(&info).token_endpoint_auth_method("client_secret_post");
    let ClientUpdate::Updated(conf) = drive(&mut p.update_client(&id, 4, spec, NOW, &mut rng), &mut store).unwrap()
    else {
        panic!()
    };
    assert!(conf.client.confidential && conf.client_secret.is_some());

    assert!(drive(&mut p.delete_client(&id, NOW), &mut store).unwrap());
    assert_eq!(drive(&mut p.get_client(&id, NOW), &mut store).unwrap(), None);
    assert!(!drive(&mut p.delete_client(&id, NOW), &mut store).unwrap());
    assert!(store.is_empty());
}

#[test]
fn admin_uses_the_registration_rules_but_never_drops_silently() {
    let p = provider();
    let mut store = MemoryStore::new();
    let mut rng = SeededRng::new(12);
    let cases = [
        (ClientSpec::new(["javascript:alert(1)"]), ErrorCode::InvalidRedirectUri),
        (ClientSpec::new(["https://app.example/cb#x"]), ErrorCode::InvalidRedirectUri),
        (ClientSpec::new(["cursor://cb", LOOPBACK]), ErrorCode::InvalidRedirectUri),
        (ClientSpec::new(Vec::<String>::new()), ErrorCode::InvalidRedirectUri),
        (ClientSpec::new([LOOPBACK]).token_endpoint_auth_method("private_key_jwt"), ErrorCode::InvalidClientMetadata),
        (ClientSpec::new([LOOPBACK]).grant_types(["implicit"]), ErrorCode::InvalidClientMetadata),
        (ClientSpec::new([LOOPBACK]).application_type("desktop"), ErrorCode::InvalidClientMetadata),
        (ClientSpec::new([LOOPBACK]).logo_uri("javascript:alert(1)"), ErrorCode::InvalidClientMetadata),
        (ClientSpec::new([LOOPBACK]).registration_ttl(59), ErrorCode::InvalidClientMetadata),
    ];
    for (spec, code) in cases {
        let shown = format!("{spec:?}");
        let err = drive(&mut p.create_client(spec, NOW, &mut rng), &mut store).unwrap_err();
        assert_eq!(err.code, code, "{shown}");
    }
    assert!(store.is_empty());

    let spec = ClientSpec::new([LOOPBACK]).public().registration_ttl(600);
    let created = drive(&mut p.create_client(spec, NOW, &mut rng), &mut store).unwrap();
    assert_eq!(created.client_secret, None);
    assert_eq!((created.client.expires_at, created.client.registration_ttl), (Some(NOW.plus(600)), Some(600)));
    let id = &created.client.client_id;
    assert!(drive(&mut p.get_client(id, NOW.plus(599)), &mut store).unwrap().is_some());
    assert!(drive(&mut p.get_client(id, NOW.plus(600)), &mut store).unwrap().is_none());
}

#[test]
fn admin_update_loses_a_race_at_write_time() {
    let p = provider();
    let mut store = MemoryStore::new();
    let mut rng = SeededRng::new(13);
    let created = drive(&mut p.create_client(ClientSpec::new([LOOPBACK]), NOW, &mut rng), &mut store).unwrap();
    let id = created.client.client_id.clone();

    let mut flow = p.update_client(&id, 1, ClientSpec::from(&created.client).client_name("A"), NOW, &mut rng);
    let Step::Storage(read) = flow.advance(Input::Start) else { panic!() };
    let replies = store.execute(read).unwrap();
    // Another administrator writes between our read and our write.
    let ClientUpdate::Updated(_) = drive(
        &mut p.update_client(&id, 1, ClientSpec::from(&created.client).client_name("B"), NOW, &mut rng),
        &mut store,
    )
    .unwrap() else {
        panic!()
    };
    let Step::Storage(write) = flow.advance(Input::Storage(Ok(replies))) else { panic!() };
    let Step::Done(result) = flow.advance(Input::Storage(store.execute(write))) else { panic!() };
    assert_eq!(result.unwrap(), ClientUpdate::Conflict { current_revision: None });
    let info = drive(&mut p.get_client(&id, NOW), &mut store).unwrap().unwrap();
    assert_eq!((info.client_name.as_deref(), info.revision), (Some("B"), 2));
}

#[test]
fn admin_list_pages_through_every_client_with_a_cursor() {
    let p = provider();
    let mut store = MemoryStore::new();
    let mut rng = SeededRng::new(14);
    let mut ids = Vec::new();
    for i in 0..5 {
        let spec = ClientSpec::new([LOOPBACK]).client_name(format!("c{i}"));
        ids.push(drive(&mut p.create_client(spec, NOW, &mut rng), &mut store).unwrap().client.client_id);
    }
    // Another record type under a neighbouring prefix is never listed.
    let grant = oauth_core::StorageOp::Put {
        key: "clientele/x".into(),
        value: vec![1, b'{', b'}'],
        revision: 1,
        expires_at: None,
        condition: oauth_core::Condition::Always,
    };
    store.apply(grant, NOW);

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = drive(&mut p.list_clients(cursor.take(), 2, NOW), &mut store).unwrap();
        assert!(page.clients.len() <= 2);
        pages += 1;
        seen.extend(page.clients.into_iter().map(|c| c.client_id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(seen, expected, "every client once, in key order");

    let one = drive(&mut p.list_clients(None, 0, NOW), &mut store).unwrap();
    assert_eq!(one.clients.len(), 1, "a zero limit is raised to one");
    assert!(one.next_cursor.is_some());
}

#[test]
fn admin_reads_of_implausible_ids_need_no_storage() {
    let p = provider();
    let mut store = MemoryStore::new();
    for id in ["", "a\u{0000}b", &"x".repeat(513)] {
        let mut flow = p.get_client(id, NOW);
        assert_eq!(drive(&mut flow, &mut store).unwrap(), None);
        assert_eq!(flow.stats().round_trips, 0);
        assert!(!drive(&mut p.delete_client(id, NOW), &mut store).unwrap());
    }
}

// ---- hostile input never breaks the endpoint --------------------------------

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            ".{0,40}".prop_map(Value::from),
            prop::sample::select(vec![
                "none",
                "web",
                "native",
                "code",
                "authorization_code",
                "refresh_token",
                "http://127.0.0.1/cb",
                "https://a.example/cb",
                "javascript:alert(1)",
                "cursor://x",
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(".{0,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn metadata() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(vec![
            "redirect_uris",
            "token_endpoint_auth_method",
            "grant_types",
            "response_types",
            "application_type",
            "scope",
            "client_name",
            "client_uri",
            "logo_uri",
            "contacts",
            "software_id",
            "other",
        ]);
        prop::collection::btree_map(keys, json_value(), 0..8)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_metadata_is_answered_201_or_4xx(body in metadata()) {
            let p = builder().allow_private_use_redirect_uris(true).build().unwrap();
            let mut store = MemoryStore::new();
            let a = register(&p, &mut store, &body);
            prop_assert!(a.status == 201 || a.status == 400, "{} for {}", a.status, body);
            prop_assert_eq!(a.status == 201, !store.is_empty());
            if a.status == 400 {
                prop_assert!(["invalid_client_metadata", "invalid_redirect_uri"].contains(&a.error()));
            }
        }

        #[test]
        fn arbitrary_bytes_are_answered_4xx(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let p = provider();
            let mut store = MemoryStore::new();
            let a = run(&p, &mut store, request("POST", Some("application/json"), None, body), no_hook);
            prop_assert!(a.status == 201 || a.status == 400);
        }
    }
}
