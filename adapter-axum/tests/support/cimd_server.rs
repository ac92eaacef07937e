//! A local HTTPS server for client ID metadata document tests: a CA
//! generated per run, a certificate it signs for the names asked for, and
//! the documents, key sets and misbehaving responses the tests need.
//!
//! Shared, not copied: `tests/cimd.rs` (the axum adapter's in-process
//! tests) and `examples/cimd_test_server.rs` (the same server as a process,
//! for the Lambda and Worker tests over HTTP) both include this file.
//!
//! Every document names itself `https://{Host}{path}?{query}`, from the
//! request's `Host` header and target, so one server answers for any name a
//! test points at it (`client.test` through a test resolver, `localhost`
//! from workerd), and a test can make each client ID unique with a query
//! the routes ignore.
//!
//! | path | answer |
//! |---|---|
//! | `/es.json` | `private_key_jwt` client, inline P-256 key `ec1` ([`ec_key`]) |
//! | `/rs.json` | `private_key_jwt` client, `jwks_uri` = `https://{Host}/jwks.json` |
//! | `/rs-evil-jwks.json` | `private_key_jwt` client whose `jwks_uri` names `metadata.test` |
//! | `/jwks.json` | the RSA key `rs1` ([`rsa_key`]) |
//! | `/big.json` | a 6 KB document, with `Content-Length` |
//! | `/chunked.json` | 8 KiB streamed without `Content-Length` |
//! | `/redirect.json` | 302 to `https://10.0.0.1/latest/meta-data` |
//! | `/redirect-self.json` | 302 to `https://{Host}/redirect-target.json`, a valid document: following it would show in the hit counts |
//! | `/slow.json` | a valid document after [`SLOW_SECS`] seconds |
//! | anything else | 404 |

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer};

/// The redirect URI every document lists (loopback: any port matches).
pub const CALLBACK: &str = "http://127.0.0.1:7777/callback";
/// How long `/slow.json` stalls before answering.
pub const SLOW_SECS: u64 = 5;
/// The test-only RSA key behind `/jwks.json` (PKCS#8 PEM).
pub const RSA_KEY_PEM: &str = include_str!("../../../oauth-core/tests/keys/test-only-rsa-2048-a.pem");

/// The P-256 key of `/es.json` (test-only: a fixed scalar).
pub fn ec_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("a valid scalar")
}

/// The RSA key of `/jwks.json`.
pub fn rsa_key() -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::from_pkcs8_pem(RSA_KEY_PEM).expect("the test key parses")
}

pub fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// The public JWK of [`ec_key`], kid `ec1`.
pub fn ec_public_jwk() -> Value {
    let point = ec_key().verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-256", "kid": "ec1", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())})
}

/// The private JWK of [`ec_key`], for a client that signs outside Rust.
pub fn ec_private_jwk() -> Value {
    let mut jwk = ec_public_jwk();
    jwk["d"] = json!(b64(&ec_key().to_bytes()));
    jwk
}

/// The public JWK of [`rsa_key`], kid `rs1`.
pub fn rsa_public_jwk() -> Value {
    let k = rsa_key();
    json!({"kty": "RSA", "kid": "rs1", "n": b64(&k.n().to_bytes_be()), "e": b64(&k.e().to_bytes_be())})
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

pub type Served = Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>;

/// A `private_key_jwt` client document named `https://{origin}{target}`
/// (`target`: the path and query).
pub fn document(origin: &str, target: &str, extra: Value) -> Value {
    let mut d = json!({
        "client_id": format!("https://{origin}{target}"),
        "client_name": "Local Test Client",
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "private_key_jwt",
    });
    for (k, v) in extra.as_object().unwrap() {
        d[k] = v.clone();
    }
    d
}

/// The answer for `target` (path and query; the query does not choose the
/// route), asked for as `origin` (the `Host` header), on a server listening
/// on `port`.
pub async fn route(target: &str, origin: &str, port: u16) -> Served {
    let path = target.split('?').next().unwrap_or_default();
    let json_reply = |v: Value| {
        Response::builder()
            .header("content-type", "application/json")
            .header("cache-control", "max-age=300")
            .body(Full::new(Bytes::from(v.to_string())).boxed())
            .unwrap()
    };
    let redirect = |location: String| {
        Response::builder()
            .status(StatusCode::FOUND)
            .header("location", location)
            .body(Full::new(Bytes::new()).boxed())
            .unwrap()
    };
    match path {
        "/es.json" => json_reply(document(origin, target, json!({"jwks": {"keys": [ec_public_jwk()]}}))),
        "/rs.json" => json_reply(document(origin, target, json!({"jwks_uri": format!("https://{origin}/jwks.json")}))),
        "/rs-evil-jwks.json" => {
            json_reply(document(origin, target, json!({"jwks_uri": format!("https://metadata.test:{port}/jwks.json")})))
        }
        "/jwks.json" => json_reply(json!({"keys": [rsa_public_jwk()]})),
        "/big.json" => json_reply(document(origin, target, json!({"padding": "x".repeat(6000)}))),
        "/chunked.json" => {
            Response::builder().header("content-type", "application/json").body(Chunks(8).boxed()).unwrap()
        }
        "/redirect.json" => redirect("https://10.0.0.1/latest/meta-data".to_owned()),
        "/redirect-self.json" => redirect(format!("https://{origin}/redirect-target.json")),
        "/redirect-target.json" => json_reply(document(origin, target, json!({"jwks": {"keys": [ec_public_jwk()]}}))),
        "/slow.json" => {
            tokio::time::sleep(Duration::from_secs(SLOW_SECS)).await;
            json_reply(document(origin, target, json!({"jwks": {"keys": [ec_public_jwk()]}})))
        }
        _ => Response::builder().status(StatusCode::NOT_FOUND).body(Full::new(Bytes::new()).boxed()).unwrap(),
    }
}

/// A running server.
pub struct Server {
    pub port: u16,
    /// The test CA's certificate, DER.
    pub ca_der: Vec<u8>,
    /// The test CA's certificate, PEM.
    pub ca_pem: String,
    /// TCP connections accepted (on every address).
    pub connections: Arc<AtomicUsize>,
    /// Requests per path.
    pub hits: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl Server {
    /// What the server has seen, as JSON.
    pub fn stats(&self) -> Value {
        json!({
            "connections": self.connections.load(Ordering::SeqCst),
            "hits": *self.hits.lock().unwrap(),
        })
    }
}

/// A CA and a server configuration presenting a certificate for `names`
/// signed by it.
fn pki(names: &[&str]) -> (rustls::ServerConfig, Vec<u8>, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "adapter-axum CIMD test CA");
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
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
    (tls, ca.der().to_vec(), ca.pem())
}

/// An HTTPS server on 127.0.0.1 (and on `[::1]` at the same port, when the
/// host has IPv6 loopback: `localhost` may resolve to either) presenting a
/// certificate for `names` from a fresh CA.
pub async fn start(names: &[&str]) -> Server {
    let (tls, ca_der, ca_pem) = pki(names);
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let v4 = TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)).await.unwrap();
    let port = v4.local_addr().unwrap().port();
    let v6 = TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)).await.ok();
    let connections = Arc::new(AtomicUsize::new(0));
    let hits = Arc::new(Mutex::new(BTreeMap::new()));
    for listener in std::iter::once(v4).chain(v6) {
        let (acceptor, connections, hits) = (acceptor.clone(), Arc::clone(&connections), Arc::clone(&hits));
        tokio::spawn(serve(listener, acceptor, connections, hits, port));
    }
    Server { port, ca_der, ca_pem, connections, hits }
}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    connections: Arc<AtomicUsize>,
    hits: Arc<Mutex<BTreeMap<String, usize>>>,
    port: u16,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { return };
        connections.fetch_add(1, Ordering::SeqCst);
        let (acceptor, hits) = (acceptor.clone(), Arc::clone(&hits));
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let hits = Arc::clone(&hits);
                async move {
                    let path = req.uri().path().to_owned();
                    let target = req.uri().path_and_query().map_or_else(|| path.clone(), |p| p.as_str().to_owned());
                    *hits.lock().unwrap().entry(path).or_default() += 1;
                    let origin = req
                        .headers()
                        .get(http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .map_or_else(|| format!("localhost:{port}"), str::to_owned);
                    Ok::<_, Infallible>(route(&target, &origin, port).await)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
        });
    }
}
