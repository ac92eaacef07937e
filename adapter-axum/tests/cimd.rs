//! Client ID metadata documents through the axum adapter, over real TLS:
//! a local HTTPS server (certificate from a CA generated per run) serves the
//! documents and key sets; a test resolver maps made-up names to chosen
//! addresses, so the SSRF checks run on exactly what an attacker's DNS could
//! answer. Only `client.test` may reach loopback; every refusal below happens
//! before a connection is made, and the server counts connections to prove
//! it.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adapter_axum::fetch::{Resolve, ResolveFuture};
use adapter_axum::{OAuth, SafeFetcher, Store};
use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use oauth_core::testing::MemoryStore;
use oauth_core::{
    Approval, AuthorizationError, BlockingStore as _, CimdPolicy, ErrorEvent, ProtectedResource, Provider,
    ProviderBuilder, Reply, StorageError, StorageRequest,
};
use p256::ecdsa::signature::{SignatureEncoding as _, Signer as _};
use serde_json::{Value, json};
use tower::ServiceExt as _;

// The local HTTPS server, shared with examples/cimd_test_server.rs.
#[path = "support/cimd_server.rs"]
mod cimd_server;

use cimd_server::{CALLBACK as CB, Server, b64, ec_key, rsa_key};

const ISSUER: &str = "https://as.example.com";
const TOKEN_ENDPOINT: &str = "https://as.example.com/token";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The in-memory store behind the adapter's `Store` trait.
#[derive(Clone, Default)]
struct MemStore(Arc<Mutex<MemoryStore>>);

impl Store for MemStore {
    fn execute(&self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> + Send {
        let result = self.0.lock().unwrap().execute(request);
        async move { result }
    }
}

/// Names to addresses, as a hostile DNS could answer.
struct MapResolver(HashMap<String, Vec<IpAddr>>);

impl Resolve for MapResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a> {
        let answer = self.0.get(host).cloned().ok_or_else(|| io::Error::other("NXDOMAIN"));
        Box::pin(async move { answer })
    }
}

/// The test server, with a certificate for `client.test`.
async fn start_server() -> Server {
    cimd_server::start(&["client.test"]).await
}

struct Env {
    server: Server,
    oauth: OAuth<MemStore>,
    app: Router,
    events: Arc<Mutex<Vec<ErrorEvent>>>,
}

fn provider(events: &Arc<Mutex<Vec<ErrorEvent>>>) -> Provider {
    let sink = Arc::clone(events);
    ProviderBuilder::new(ISSUER)
        .resource(ProtectedResource::new(&format!("{ISSUER}/mcp")).unwrap())
        .client_id_metadata_documents(true)
        .cimd_policy(CimdPolicy::default().fetch_timeout(Duration::from_secs(1)))
        .on_error(move |e| sink.lock().unwrap().push(e.clone()))
        .build()
        .unwrap()
}

async fn env() -> Env {
    let server = start_server().await;
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    let names: HashMap<String, Vec<IpAddr>> = [
        ("client.test", vec![loopback]),
        ("loopback.test", vec![loopback]),
        ("private.test", vec!["10.0.0.1".parse().unwrap()]),
        ("metadata.test", vec!["169.254.169.254".parse().unwrap()]),
        ("v6-loopback.test", vec!["::1".parse().unwrap()]),
        ("mapped.test", vec!["::ffff:127.0.0.1".parse().unwrap()]),
        ("mixed.test", vec!["8.8.8.8".parse().unwrap(), "10.0.0.1".parse().unwrap()]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let fetcher = SafeFetcher::builder()
        .resolver(MapResolver(names))
        .add_root_certificate(server.ca_der.clone())
        .only_added_roots()
        .insecure_allow_loopback_host("client.test")
        .build()
        .unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let oauth = OAuth::new(provider(&events), MemStore::default()).with_fetcher(fetcher);
    let app = Router::new().layer(oauth.layer());
    Env { server, oauth, app, events }
}

impl Env {
    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.server.port)
    }

    fn last_reason(&self) -> String {
        self.events.lock().unwrap().last().map(|e| e.reason.as_str().to_owned()).unwrap_or_default()
    }

    async fn parse(&self, client_id: &str) -> Result<oauth_core::AuthorizationRequest, AuthorizationError> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", CB)
            .append_pair("code_challenge", CHALLENGE)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let uri: http::Uri = format!("{ISSUER}/authorize?{query}").parse().unwrap();
        self.oauth.run(|p, now, _| p.parse_authorization_request(&uri, now)).await.unwrap()
    }

    /// The reason an authorization request naming `client_id` was refused.
    async fn refusal(&self, client_id: &str) -> String {
        match self.parse(client_id).await {
            Err(AuthorizationError::Invalid(e)) => {
                assert_eq!(e.code.as_str(), "invalid_request", "{e:?}");
                e.reason.as_str().to_owned()
            }
            other => panic!("expected a refusal for {client_id}, got {other:?}"),
        }
    }

    async fn code(&self, client_id: &str) -> String {
        let request = self.parse(client_id).await.unwrap();
        let approval = Approval::new("alice", request.scope.clone(), json!({}));
        let done = self
            .oauth
            .run(|p, now, rng| p.complete_authorization(&request, approval, now, rng))
            .await
            .unwrap()
            .unwrap();
        let url = url::Url::parse(&done.redirect_to).unwrap();
        url.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned()
    }

    async fn token(&self, form: &str) -> (StatusCode, Value) {
        let request = Request::post(format!("{ISSUER}/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form.to_owned()))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

fn assertion(client_id: &str, jti: &str, sign: impl Fn(&[u8]) -> Vec<u8>, alg: &str, kid: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
    let claims =
        json!({"iss": client_id, "sub": client_id, "aud": TOKEN_ENDPOINT, "iat": now, "exp": now + 120, "jti": jti});
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

fn es256(msg: &[u8]) -> Vec<u8> {
    let s: p256::ecdsa::Signature = ec_key().sign(msg);
    s.to_bytes().to_vec()
}

fn rs256(msg: &[u8]) -> Vec<u8> {
    rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(rsa_key()).sign(msg).to_vec()
}

fn code_form(code: &str, jwt: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", CB)
        .append_pair("code_verifier", VERIFIER)
        .append_pair("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        .append_pair("client_assertion", jwt)
        .finish()
}

#[tokio::test]
async fn full_flow_es256_inline_keys() {
    let env = env().await;
    let client = env.url("client.test", "/es.json");
    let request = env.parse(&client).await.unwrap();
    assert_eq!(request.client_name.as_deref(), Some("Local Test Client"));
    let code = env.code(&client).await;
    let jwt = assertion(&client, "es-1", es256, "ES256", "ec1");
    let (status, body) = env.token(&code_form(&code, &jwt)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].is_string() && body["refresh_token"].is_string());

    // Replaying the assertion is refused, with the reason for the operator.
    let code = env.code(&client).await;
    let (status, body) = env.token(&code_form(&code, &jwt)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    assert_eq!(env.last_reason(), "client_assertion_replayed");
}

#[tokio::test]
async fn full_flow_rs256_jwks_uri() {
    let env = env().await;
    let client = env.url("client.test", "/rs.json");
    let code = env.code(&client).await;
    let jwt = assertion(&client, "rs-1", rs256, "RS256", "rs1");
    let (status, body) = env.token(&code_form(&code, &jwt)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A refresh with a fresh assertion, from the cached document and keys.
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let before = env.server.connections.load(Ordering::SeqCst);
    let jwt = assertion(&client, "rs-2", rs256, "RS256", "rs1");
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", &refresh)
        .append_pair("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        .append_pair("client_assertion", &jwt)
        .finish();
    let (status, body) = env.token(&form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(env.server.connections.load(Ordering::SeqCst), before, "served from the cache");
}

#[tokio::test]
async fn ssrf_attempts_are_refused_before_connecting() {
    let env = env().await;
    let before = env.server.connections.load(Ordering::SeqCst);
    for host in ["loopback.test", "private.test", "metadata.test", "v6-loopback.test", "mapped.test", "mixed.test"] {
        let reason = env.refusal(&env.url(host, "/es.json")).await;
        assert_eq!(reason, "cimd_fetch_forbidden_address", "{host}");
    }
    assert_eq!(env.refusal(&env.url("nowhere.test", "/es.json")).await, "cimd_fetch_resolve_failed");
    // IP literals never reach the fetcher.
    assert_eq!(env.refusal(&format!("https://127.0.0.1:{}/es.json", env.server.port)).await, "cimd_url_ip_literal");
    assert_eq!(env.refusal("https://[::ffff:127.0.0.1]/es.json").await, "cimd_url_ip_literal");
    assert_eq!(env.server.connections.load(Ordering::SeqCst), before, "nothing was connected to");

    // A key set on a forbidden host fails client authentication.
    let client = env.url("client.test", "/rs-evil-jwks.json");
    let code = env.code(&client).await;
    let jwt = assertion(&client, "evil-1", rs256, "RS256", "rs1");
    let (status, body) = env.token(&code_form(&code, &jwt)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    assert_eq!(env.last_reason(), "jwks_fetch_forbidden_address");
}

#[tokio::test]
async fn redirects_oversized_and_slow_documents_are_refused() {
    let env = env().await;
    assert_eq!(env.refusal(&env.url("client.test", "/redirect.json")).await, "cimd_fetch_redirect_refused");
    assert_eq!(env.refusal(&env.url("client.test", "/big.json")).await, "cimd_fetch_too_large");
    assert_eq!(env.refusal(&env.url("client.test", "/chunked.json")).await, "cimd_fetch_too_large");
    assert_eq!(env.refusal(&env.url("client.test", "/missing.json")).await, "cimd_fetch_status");
    let started = Instant::now();
    assert_eq!(env.refusal(&env.url("client.test", "/slow.json")).await, "cimd_fetch_timeout");
    assert!(started.elapsed() < Duration::from_secs(3), "the timeout bounds the whole fetch");
}

#[tokio::test]
async fn untrusted_certificates_are_refused() {
    // The production roots do not include the test CA.
    let server = start_server().await;
    let fetcher = SafeFetcher::builder()
        .resolver(MapResolver([("client.test".to_owned(), vec!["127.0.0.1".parse().unwrap()])].into()))
        .insecure_allow_loopback_host("client.test")
        .build()
        .unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let oauth = OAuth::new(provider(&events), MemStore::default()).with_fetcher(fetcher);
    let uri: http::Uri = format!(
        "{ISSUER}/authorize?client_id={}",
        form_urlencoded::byte_serialize(format!("https://client.test:{}/es.json", server.port).as_bytes())
            .collect::<String>()
    )
    .parse()
    .unwrap();
    match oauth.run(|p, now, _| p.parse_authorization_request(&uri, now)).await.unwrap() {
        Err(AuthorizationError::Invalid(e)) => assert_eq!(e.reason.as_str(), "cimd_fetch_connect_failed"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_production_fetcher_refuses_loopback_through_the_system_resolver() {
    // `localhost` resolves from the hosts file; no network is involved.
    let server = start_server().await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let oauth = OAuth::new(provider(&events), MemStore::default());
    let client = format!("https://localhost:{}/es.json", server.port);
    let uri: http::Uri = format!(
        "{ISSUER}/authorize?client_id={}",
        form_urlencoded::byte_serialize(client.as_bytes()).collect::<String>()
    )
    .parse()
    .unwrap();
    match oauth.run(|p, now, _| p.parse_authorization_request(&uri, now)).await.unwrap() {
        Err(AuthorizationError::Invalid(e)) => assert_eq!(e.reason.as_str(), "cimd_fetch_forbidden_address"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
}
