//! Client ID metadata documents through the axum adapter, over real TLS:
//! a local HTTPS server (certificate from a CA generated per run) serves the
//! documents and key sets; a test resolver maps made-up names to chosen
//! addresses, so the SSRF checks run on exactly what an attacker's DNS could
//! answer. Only `client.test` may reach loopback; every refusal below happens
//! before a connection is made, and the server counts connections to prove
//! it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use adapter_axum::fetch::{Resolve, ResolveFuture};
use adapter_axum::{OAuth, SafeFetcher, Store};
use axum::Router;
use axum::body::Body;
use base64ct::{Base64UrlUnpadded, Encoding};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use oauth_core::testing::MemoryStore;
use oauth_core::{
    Approval, AuthorizationError, BlockingStore as _, CimdPolicy, ErrorEvent, ProtectedResource, Provider,
    ProviderBuilder, Reply, StorageError, StorageRequest,
};
use p256::ecdsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer};
use tower::ServiceExt as _;

const ISSUER: &str = "https://as.example.com";
const TOKEN_ENDPOINT: &str = "https://as.example.com/token";
const CB: &str = "http://127.0.0.1:7777/callback";
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

fn ec_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap()
}

fn rsa_key() -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::from_pkcs8_pem(include_str!("../../oauth-core/tests/keys/test-only-rsa-2048-a.pem")).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// A body that streams `n` KiB without announcing its length, to prove the
/// size cap is enforced while reading, not from `Content-Length`.
struct Chunks(usize);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0 == 0 {
            return Poll::Ready(None);
        }
        self.0 -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b' '; 1024])))))
    }
}

type Served = Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>;

fn document(port: u16, path: &str, extra: Value) -> Value {
    let mut d = json!({
        "client_id": format!("https://client.test:{port}{path}"),
        "client_name": "Local Test Client",
        "redirect_uris": [CB],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "private_key_jwt",
    });
    for (k, v) in extra.as_object().unwrap() {
        d[k] = v.clone();
    }
    d
}

async fn route(path: &str, port: u16) -> Served {
    let json_reply = |v: Value| {
        Response::builder()
            .header("content-type", "application/json")
            .header("cache-control", "max-age=300")
            .body(Full::new(Bytes::from(v.to_string())).boxed())
            .unwrap()
    };
    match path {
        "/es.json" => {
            let point = ec_key().verifying_key().to_encoded_point(false);
            let jwk = json!({"kty": "EC", "crv": "P-256", "kid": "ec1", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())});
            json_reply(document(port, path, json!({"jwks": {"keys": [jwk]}})))
        }
        "/rs.json" => {
            json_reply(document(port, path, json!({"jwks_uri": format!("https://client.test:{port}/jwks.json")})))
        }
        "/rs-evil-jwks.json" => {
            json_reply(document(port, path, json!({"jwks_uri": format!("https://metadata.test:{port}/jwks.json")})))
        }
        "/jwks.json" => {
            let k = rsa_key();
            json_reply(
                json!({"keys": [{"kty": "RSA", "kid": "rs1", "n": b64(&k.n().to_bytes_be()), "e": b64(&k.e().to_bytes_be())}]}),
            )
        }
        "/big.json" => json_reply(document(port, path, json!({"padding": "x".repeat(6000)}))),
        "/chunked.json" => {
            Response::builder().header("content-type", "application/json").body(Chunks(8).boxed()).unwrap()
        }
        "/redirect.json" => Response::builder()
            .status(StatusCode::FOUND)
            .header("location", "https://10.0.0.1/latest/meta-data")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap(),
        "/slow.json" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            json_reply(document(port, path, json!({})))
        }
        _ => Response::builder().status(StatusCode::NOT_FOUND).body(Full::new(Bytes::new()).boxed()).unwrap(),
    }
}

struct Server {
    port: u16,
    ca_der: Vec<u8>,
    connections: Arc<AtomicUsize>,
}

/// A CA, a certificate for `client.test` signed by it, and an HTTPS server
/// on 127.0.0.1 presenting it.
async fn start_server() -> Server {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "adapter-axum test CA");
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["client.test".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()))
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| async move {
                    Ok::<_, Infallible>(route(req.uri().path(), port).await)
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    Server { port, ca_der: ca.der().to_vec(), connections }
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
