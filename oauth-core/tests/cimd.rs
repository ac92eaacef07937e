//! Client ID metadata documents and `private_key_jwt`: every validation
//! rule, every kind of fetch failure, the cache, and full flows, driven
//! with the in-memory store and an in-memory "network".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::result_large_err)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64ct::{Base64UrlUnpadded, Encoding};
use bytes::Bytes;
use common::{CHALLENGE, ISSUER, VERIFIER, builder, json, query_param, urlencode};
use http::{Request, Response, StatusCode};
use oauth_core::testing::{MemoryStore, SeededRng};
use oauth_core::{
    Approval, AuthorizationError, AuthorizationRequest, CimdPolicy, ErrorEvent, FetchError, FetchPurpose, FetchRequest,
    FetchResponse, FlowStats, Outcome, Provider, ProviderBuilder, UnixTime, drive_blocking_with_fetch,
};
use oauth_core::{Condition, StorageOp};
use p256::ecdsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};

const CLIENT: &str = "https://app.example/oauth/client.json";
const JWKS_URI: &str = "https://app.example/oauth/jwks.json";
const CB: &str = "http://127.0.0.1:3000/callback";
const T0: u64 = 1_800_000_000;
const TOKEN_ENDPOINT: &str = "https://as.example.com/token";

/// What the fake network serves, and what it was asked.
#[derive(Clone, Default)]
struct Net {
    answers: Arc<Mutex<HashMap<String, Result<FetchResponse, FetchError>>>>,
    asked: Arc<Mutex<Vec<FetchRequest>>>,
}

impl Net {
    fn serve(&self, url: &str, answer: Result<FetchResponse, FetchError>) {
        self.answers.lock().unwrap().insert(url.to_owned(), answer);
    }

    fn serve_json(&self, url: &str, doc: &Value) {
        self.serve(url, Ok(FetchResponse::json(doc.to_string())));
    }

    fn fetch(&self, req: FetchRequest) -> Result<FetchResponse, FetchError> {
        self.asked.lock().unwrap().push(req.clone());
        self.answers.lock().unwrap().get(&req.url).cloned().unwrap_or(Err(FetchError::Resolve))
    }

    fn count(&self, url: &str) -> usize {
        self.asked.lock().unwrap().iter().filter(|r| r.url == url).count()
    }
}

struct H {
    provider: Provider,
    store: MemoryStore,
    rng: SeededRng,
    now: UnixTime,
    net: Net,
    events: Arc<Mutex<Vec<ErrorEvent>>>,
    stats: FlowStats,
}

fn cimd_builder() -> ProviderBuilder {
    builder().client_id_metadata_documents(true)
}

impl H {
    fn new(b: ProviderBuilder) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let provider = b.on_error(move |e| sink.lock().unwrap().push(e.clone())).build().unwrap();
        Self {
            provider,
            store: MemoryStore::new(),
            rng: SeededRng::new(11),
            now: UnixTime::from_secs(T0),
            net: Net::default(),
            events,
            stats: FlowStats::default(),
        }
    }

    fn cimd() -> Self {
        Self::new(cimd_builder())
    }

    fn last_reason(&self) -> String {
        self.events.lock().unwrap().last().map(|e| e.reason.as_str().to_owned()).unwrap_or_default()
    }

    fn parse_query(&mut self, query: &str) -> Result<AuthorizationRequest, AuthorizationError> {
        let uri: http::Uri = format!("{ISSUER}/authorize?{query}").parse().unwrap();
        let mut flow = self.provider.parse_authorization_request(&uri, self.now);
        let net = self.net.clone();
        let out = drive_blocking_with_fetch(&mut flow, &mut self.store, |c| c.default_reply(), |r| net.fetch(r));
        self.stats = flow.stats();
        out
    }

    fn parse(&mut self, client: &str, redirect: &str) -> Result<AuthorizationRequest, AuthorizationError> {
        self.parse_query(&format!(
            "response_type=code&client_id={}&redirect_uri={}&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256",
            urlencode(client),
            urlencode(redirect)
        ))
    }

    /// The reason an authorization request was refused with, checking that
    /// it was shown to the user (never a redirect) as `invalid_request`.
    fn parse_refusal(&mut self, client: &str) -> String {
        match self.parse(client, CB) {
            Err(AuthorizationError::Invalid(e)) => {
                assert!(
                    e.code.as_str() == "invalid_request" || e.code.as_str() == "server_error",
                    "unexpected code {e:?}"
                );
                assert_eq!(e.reason.as_str(), self.last_reason(), "the error hook saw the same reason");
                e.reason.as_str().to_owned()
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn code(&mut self, client: &str) -> String {
        let req = self.parse(client, CB).unwrap();
        let mut flow = self.provider.complete_authorization(
            &req,
            Approval::new("alice", req.scope.clone(), json!({})),
            self.now,
            &mut self.rng,
        );
        let net = self.net.clone();
        let done =
            drive_blocking_with_fetch(&mut flow, &mut self.store, |c| c.default_reply(), |r| net.fetch(r)).unwrap();
        query_param(&done.redirect_to, "code").unwrap()
    }

    fn post(&mut self, path: &str, body: &str, headers: &[(&str, &str)]) -> Response<Bytes> {
        let mut b =
            Request::post(format!("{ISSUER}{path}")).header("content-type", "application/x-www-form-urlencoded");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut flow = self.provider.handle(b.body(Bytes::from(body.to_owned())).unwrap(), self.now, &mut self.rng);
        let net = self.net.clone();
        let out = drive_blocking_with_fetch(&mut flow, &mut self.store, |c| c.default_reply(), |r| net.fetch(r));
        self.stats = flow.stats();
        match out {
            Outcome::Response(r) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    fn exchange(&mut self, code: &str, auth: &str) -> Response<Bytes> {
        self.post(
            "/token",
            &format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}{auth}",
                urlencode(CB)
            ),
            &[],
        )
    }

    fn get(&mut self, path: &str) -> Response<Bytes> {
        let req = Request::get(format!("{ISSUER}{path}")).body(Bytes::new()).unwrap();
        match self.provider.handle(req, self.now, &mut self.rng).advance(oauth_core::Input::Start) {
            oauth_core::Step::Done(Outcome::Response(r)) => r,
            _ => panic!("metadata is served without storage"),
        }
    }

    fn cached(&self) -> usize {
        self.store.live_keys(self.now).iter().filter(|k| k.starts_with("cimd/")).count()
    }
}

fn doc(extra: Value) -> Value {
    let mut d = json!({
        "client_id": CLIENT,
        "client_name": "Example MCP Client",
        "client_uri": "https://app.example",
        "redirect_uris": [CB, "http://localhost:3000/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            d.as_object_mut().unwrap().remove(k);
        } else {
            d[k] = v.clone();
        }
    }
    d
}

// ---- keys and assertions --------------------------------------------------

fn ec_key(seed: u8) -> p256::ecdsa::SigningKey {
    let mut bytes = [seed; 32];
    bytes[0] = 1;
    p256::ecdsa::SigningKey::from_slice(&bytes).unwrap()
}

fn ec_jwk(key: &p256::ecdsa::SigningKey, kid: &str) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": Base64UrlUnpadded::encode_string(point.x().unwrap()),
        "y": Base64UrlUnpadded::encode_string(point.y().unwrap()),
    })
}

fn rsa_key(which: char) -> rsa::RsaPrivateKey {
    let pem = match which {
        'a' => include_str!("keys/test-only-rsa-2048-a.pem"),
        _ => include_str!("keys/test-only-rsa-2048-b.pem"),
    };
    rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap()
}

fn rsa_jwk(key: &rsa::RsaPrivateKey, kid: &str) -> Value {
    json!({
        "kty": "RSA", "kid": kid, "alg": "RS256",
        "n": Base64UrlUnpadded::encode_string(&key.n().to_bytes_be()),
        "e": Base64UrlUnpadded::encode_string(&key.e().to_bytes_be()),
    })
}

enum Signer<'a> {
    Ec(&'a p256::ecdsa::SigningKey),
    Rsa(&'a rsa::RsaPrivateKey),
}

fn sign(signer: &Signer<'_>, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
        Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
    );
    let sig = match signer {
        Signer::Ec(k) => {
            let s: p256::ecdsa::Signature = k.sign(input.as_bytes());
            s.to_bytes().to_vec()
        }
        Signer::Rsa(k) => {
            let s = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new((*k).clone()).sign(input.as_bytes());
            s.to_vec()
        }
    };
    format!("{input}.{}", Base64UrlUnpadded::encode_string(&sig))
}

fn claims(now: UnixTime, jti: &str) -> Value {
    json!({"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_ENDPOINT, "iat": now.as_secs(), "exp": now.as_secs() + 120, "jti": jti})
}

fn assertion_params(jwt: &str) -> String {
    format!(
        "&client_assertion_type={}&client_assertion={jwt}",
        urlencode("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    )
}

fn error_of(resp: &Response<Bytes>) -> String {
    json(resp)["error"].as_str().unwrap_or_default().to_owned()
}

// ---- metadata ---------------------------------------------------------------

#[test]
fn metadata_advertises_cimd_only_when_on() {
    let mut off = H::new(builder());
    let doc = json(&off.get("/.well-known/oauth-authorization-server"));
    assert!(doc.get("client_id_metadata_document_supported").is_none());
    assert!(doc.get("token_endpoint_auth_signing_alg_values_supported").is_none());
    assert!(!doc["token_endpoint_auth_methods_supported"].as_array().unwrap().contains(&json!("private_key_jwt")));

    let mut on = H::cimd();
    let doc = json(&on.get("/.well-known/oauth-authorization-server"));
    assert_eq!(doc["client_id_metadata_document_supported"], json!(true));
    assert_eq!(doc["token_endpoint_auth_signing_alg_values_supported"], json!(["RS256", "ES256"]));
    assert!(doc["token_endpoint_auth_methods_supported"].as_array().unwrap().contains(&json!("private_key_jwt")));
    assert!(doc["revocation_endpoint_auth_methods_supported"].as_array().unwrap().contains(&json!("private_key_jwt")));
}

#[test]
fn policy_is_validated_at_build() {
    for policy in [
        CimdPolicy::default().max_cache_ttl(10),
        CimdPolicy::default().default_cache_ttl(100_000),
        CimdPolicy::default().max_document_bytes(10),
        CimdPolicy::default().fetch_timeout(std::time::Duration::from_secs(60)),
        CimdPolicy::default().allow_hosts(["not a host"]),
    ] {
        assert!(cimd_builder().cimd_policy(policy).build().is_err());
    }
    // An invalid policy is ignored while the feature is off.
    assert!(builder().cimd_policy(CimdPolicy::default().max_cache_ttl(10)).build().is_ok());
}

// ---- authorization ----------------------------------------------------------

#[test]
fn authorization_fetches_validates_and_caches_the_document() {
    let mut h = H::cimd();
    h.net.serve_json(CLIENT, &doc(json!({})));
    let req = h.parse(CLIENT, CB).unwrap();
    assert_eq!(req.client_name.as_deref(), Some("Example MCP Client"));
    assert_eq!(req.client_uri.as_deref(), Some("https://app.example"));
    assert_eq!(req.client_id_host().as_deref(), Some("app.example"));
    assert_eq!(h.stats.fetches, 1);
    let asked = h.net.asked.lock().unwrap()[0].clone();
    assert_eq!(asked.purpose, FetchPurpose::ClientMetadata);
    assert_eq!(asked.max_bytes, 5 * 1024);
    assert_eq!(h.cached(), 1);

    // Served from the cache: one read, no fetch. Loopback any-port matching
    // applies to the document's redirect URIs as to registered ones.
    let req = h.parse(CLIENT, "http://127.0.0.1:49152/callback").unwrap();
    assert_eq!(req.redirect_uri, "http://127.0.0.1:49152/callback");
    assert_eq!((h.stats.fetches, h.stats.round_trips), (0, 1));
    assert_eq!(h.net.count(CLIENT), 1);
}

#[test]
fn redirect_uris_are_validated_against_the_document() {
    let mut h = H::cimd();
    h.net.serve_json(CLIENT, &doc(json!({})));
    match h.parse(CLIENT, "https://evil.example/cb") {
        Err(AuthorizationError::Invalid(e)) => assert_eq!(e.reason.as_str(), "redirect_uri_mismatch"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn url_client_ids_are_ordinary_ids_when_off() {
    let mut h = H::new(builder());
    h.net.serve_json(CLIENT, &doc(json!({})));
    match h.parse(CLIENT, CB) {
        Err(AuthorizationError::Invalid(e)) => assert_eq!(e.reason.as_str(), "authorize_client_unknown"),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.net.count(CLIENT), 0);
}

#[test]
fn unacceptable_urls_are_refused_before_any_io() {
    let cases = [
        ("http://app.example/c", "cimd_url_not_https"),
        ("https://app.example/c#frag", "cimd_url_fragment"),
        ("https://user@app.example/c", "cimd_url_userinfo"),
        ("https://app.example/a/../c", "cimd_url_dot_segment"),
        ("https://app.example/a/%2e%2E/c", "cimd_url_dot_segment"),
        ("https://app.example/", "cimd_url_no_path"),
        ("https://app.example/a\\b", "cimd_url_invalid_characters"),
        ("https://169.254.169.254/latest", "cimd_url_ip_literal"),
        ("https://[::1]/c", "cimd_url_ip_literal"),
        ("https://APP.example/c", "cimd_url_not_canonical"),
        ("https://app.example:443/c", "cimd_url_not_canonical"),
    ];
    for (url, reason) in cases {
        let mut h = H::cimd();
        assert_eq!(h.parse_refusal(url), reason, "{url}");
        assert_eq!(h.stats.round_trips + h.stats.fetches, 0, "{url}: no storage, no fetch");
    }
}

#[test]
fn host_allow_and_deny_lists() {
    let policy =
        CimdPolicy::default().allow_hosts(["*.trusted.example", "app.example"]).deny_hosts(["bad.trusted.example"]);
    let mut h = H::new(cimd_builder().cimd_policy(policy));
    assert_eq!(h.parse_refusal("https://other.example/c"), "cimd_host_not_allowed");
    assert_eq!(h.parse_refusal("https://bad.trusted.example/c"), "cimd_host_not_allowed");
    assert_eq!(h.net.asked.lock().unwrap().len(), 0);
    h.net.serve_json(CLIENT, &doc(json!({})));
    assert!(h.parse(CLIENT, CB).is_ok());
    // jwks_uri obeys the same lists.
    let mut h = H::new(cimd_builder().cimd_policy(CimdPolicy::default().allow_hosts(["app.example"])));
    h.net.serve_json(
        CLIENT,
        &doc(json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://keys.example/jwks"})),
    );
    assert_eq!(h.parse_refusal(CLIENT), "cimd_jwks_uri_invalid");
}

#[test]
fn every_document_rule_has_its_reason() {
    let ec = ec_jwk(&ec_key(1), "k1");
    let mut private_ec = ec.clone();
    private_ec["d"] = json!("AAAA");
    let cases: Vec<(Value, &str)> = vec![
        (json!({"client_id": "https://app.example/other.json"}), "cimd_client_id_mismatch"),
        (json!({"client_id": null}), "cimd_client_id_mismatch"),
        (json!({"client_name": null}), "cimd_client_name_missing"),
        (json!({"client_name": "  "}), "cimd_client_name_missing"),
        (json!({"client_name": 5}), "cimd_document_invalid"),
        (json!({"redirect_uris": null}), "cimd_redirect_uris_missing"),
        (json!({"redirect_uris": []}), "cimd_redirect_uris_missing"),
        (json!({"redirect_uris": ["javascript:alert(1)", "http://evil.example/cb"]}), "cimd_redirect_uris_missing"),
        (json!({"redirect_uris": "https://app.example/cb"}), "cimd_document_invalid"),
        (json!({"client_secret": "s3cret"}), "cimd_client_secret_present"),
        (json!({"client_secret_expires_at": 0}), "cimd_client_secret_present"),
        (json!({"token_endpoint_auth_method": "client_secret_basic"}), "cimd_shared_secret_auth_method"),
        (json!({"token_endpoint_auth_method": "client_secret_post"}), "cimd_shared_secret_auth_method"),
        (json!({"token_endpoint_auth_method": "client_secret_jwt"}), "cimd_shared_secret_auth_method"),
        (json!({"token_endpoint_auth_method": "tls_client_auth"}), "cimd_auth_method_unsupported"),
        (json!({"token_endpoint_auth_method": "private_key_jwt"}), "cimd_keys_missing"),
        (json!({"jwks": {"keys": [private_ec]}}), "cimd_private_key_material"),
        (json!({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}), "cimd_private_key_material"),
        (json!({"jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}}), "cimd_jwks_no_usable_key"),
        (json!({"jwks": "not a set"}), "cimd_jwks_invalid"),
        (json!({"jwks": {"keys": [ec]}, "jwks_uri": JWKS_URI}), "cimd_jwks_and_jwks_uri"),
        (json!({"jwks_uri": "http://app.example/jwks"}), "cimd_jwks_uri_invalid"),
        (json!({"jwks_uri": "https://10.0.0.1/jwks"}), "cimd_jwks_uri_invalid"),
        (json!({"token_endpoint_auth_signing_alg": "HS256"}), "cimd_signing_alg_unsupported"),
        (json!({"token_endpoint_auth_signing_alg": "none"}), "cimd_signing_alg_unsupported"),
        (json!({"scope": "bad\"scope"}), "cimd_scope_invalid"),
    ];
    for (extra, reason) in cases {
        let mut h = H::cimd();
        h.net.serve_json(CLIENT, &doc(extra.clone()));
        assert_eq!(h.parse_refusal(CLIENT), reason, "{extra}");
        assert_eq!(h.cached(), 0, "{extra}: an invalid document is never cached");
    }
    for (body, reason) in [("not json", "cimd_document_not_json"), ("[1]", "cimd_document_not_json")] {
        let mut h = H::cimd();
        h.net.serve(CLIENT, Ok(FetchResponse::json(body)));
        assert_eq!(h.parse_refusal(CLIENT), reason);
    }
}

#[test]
fn unsupported_redirects_and_types_are_negotiated_not_fatal() {
    let mut h = H::cimd();
    h.net.serve_json(
        CLIENT,
        &doc(json!({
            "redirect_uris": ["cursor://cb", CB],
            "grant_types": ["authorization_code", "client_credentials"],
            "logo_uri": "javascript:alert(1)",
        })),
    );
    let req = h.parse(CLIENT, CB).unwrap();
    assert_eq!(req.redirect_uri, CB);
    match h.parse(CLIENT, "cursor://cb") {
        Err(AuthorizationError::Invalid(e)) => assert_eq!(e.reason.as_str(), "redirect_uri_mismatch"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_fetch_failure_has_its_reason_and_is_not_cached() {
    let big = FetchResponse::json(format!("{{\"x\": \"{}\"}}", "a".repeat(6000)));
    let mut redirect = FetchResponse::json("");
    redirect.status = 302;
    let mut not_found = FetchResponse::json("{}");
    not_found.status = 404;
    let mut html = FetchResponse::json(doc(json!({})).to_string());
    html.content_type = Some("text/html".into());
    let mut no_type = FetchResponse::json(doc(json!({})).to_string());
    no_type.content_type = None;
    let cases: Vec<(Result<FetchResponse, FetchError>, &str)> = vec![
        (Err(FetchError::ForbiddenUrl), "cimd_fetch_forbidden_url"),
        (Err(FetchError::ForbiddenAddress), "cimd_fetch_forbidden_address"),
        (Err(FetchError::Resolve), "cimd_fetch_resolve_failed"),
        (Err(FetchError::Connect), "cimd_fetch_connect_failed"),
        (Err(FetchError::TooLarge), "cimd_fetch_too_large"),
        (Err(FetchError::Timeout), "cimd_fetch_timeout"),
        (Err(FetchError::Other("reset".into())), "cimd_fetch_failed"),
        (Err(FetchError::Unsupported), "cimd_fetch_unsupported"),
        (Ok(big), "cimd_fetch_too_large"),
        (Ok(redirect), "cimd_fetch_redirect_refused"),
        (Ok(not_found), "cimd_fetch_status"),
        (Ok(html), "cimd_content_type"),
        (Ok(no_type), "cimd_content_type"),
    ];
    for (answer, reason) in cases {
        let mut h = H::cimd();
        h.net.serve(CLIENT, answer);
        assert_eq!(h.parse_refusal(CLIENT), reason);
        assert_eq!(h.cached(), 0);
        // Failures are never cached: the next request fetches again.
        h.net.serve_json(CLIENT, &doc(json!({})));
        assert!(h.parse(CLIENT, CB).is_ok(), "{reason}");
        assert_eq!(h.net.count(CLIENT), 2);
    }
    // The default driver cannot fetch: a server error for the operator.
    let mut h = H::cimd();
    let uri: http::Uri = format!("{ISSUER}/authorize?client_id={}", urlencode(CLIENT)).parse().unwrap();
    let mut flow = h.provider.parse_authorization_request(&uri, h.now);
    match oauth_core::drive_blocking(&mut flow, &mut h.store, |c| c.default_reply()) {
        Err(AuthorizationError::Invalid(e)) => {
            assert_eq!((e.code.as_str(), e.reason.as_str()), ("server_error", "cimd_fetch_unsupported"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cache_follows_cache_control_within_the_cap() {
    let mut h = H::cimd();
    h.net.serve(CLIENT, Ok(FetchResponse::json(doc(json!({})).to_string()).with_cache_control("max-age=120")));
    h.parse(CLIENT, CB).unwrap();
    h.now = h.now.plus(119);
    h.parse(CLIENT, CB).unwrap();
    assert_eq!(h.net.count(CLIENT), 1);
    h.now = h.now.plus(1);
    h.parse(CLIENT, CB).unwrap();
    assert_eq!(h.net.count(CLIENT), 2, "expired after max-age");

    // no-store: fetched every time.
    let mut h = H::cimd();
    h.net.serve(CLIENT, Ok(FetchResponse::json(doc(json!({})).to_string()).with_cache_control("no-store")));
    h.parse(CLIENT, CB).unwrap();
    h.parse(CLIENT, CB).unwrap();
    assert_eq!((h.net.count(CLIENT), h.cached()), (2, 0));

    // A year's max-age is capped at the policy's maximum (24 h).
    let mut h = H::cimd();
    h.net.serve(CLIENT, Ok(FetchResponse::json(doc(json!({})).to_string()).with_cache_control("max-age=31536000")));
    h.parse(CLIENT, CB).unwrap();
    h.now = h.now.plus(86_399);
    h.parse(CLIENT, CB).unwrap();
    assert_eq!(h.net.count(CLIENT), 1);
    h.now = h.now.plus(1);
    h.parse(CLIENT, CB).unwrap();
    assert_eq!(h.net.count(CLIENT), 2);

    // Without cache headers the default (1 h) applies.
    let mut h = H::cimd();
    h.net.serve_json(CLIENT, &doc(json!({})));
    h.parse(CLIENT, CB).unwrap();
    h.now = h.now.plus(3599);
    h.parse(CLIENT, CB).unwrap();
    h.now = h.now.plus(1);
    h.parse(CLIENT, CB).unwrap();
    assert_eq!(h.net.count(CLIENT), 2);
}

#[test]
fn a_cached_document_that_no_longer_validates_is_evicted_and_refetched() {
    // Cached under a configuration that accepted its only redirect URI...
    let native = doc(json!({"redirect_uris": ["com.example.app:/cb"]}));
    let mut h = H::new(cimd_builder().allow_private_use_redirect_uris(true));
    h.net.serve_json(CLIENT, &native);
    h.parse(CLIENT, "com.example.app:/cb").unwrap();
    assert_eq!(h.cached(), 1);

    // ...then read by one that does not: refetched; still invalid, so the
    // entry is deleted rather than left to be re-judged on every request.
    let mut strict = H::cimd();
    strict.store = std::mem::take(&mut h.store);
    strict.net.serve_json(CLIENT, &native);
    assert_eq!(strict.parse_refusal(CLIENT), "cimd_redirect_uris_missing");
    assert_eq!(strict.net.count(CLIENT), 1);
    assert_eq!(strict.cached(), 0);

    // A corrupt entry is refetched, and replaced when the document is good.
    let mut h = H::cimd();
    h.net.serve_json(CLIENT, &doc(json!({})));
    h.parse(CLIENT, CB).unwrap();
    let key = h.store.live_keys(h.now).into_iter().find(|k| k.starts_with("cimd/")).unwrap();
    let garbage = StorageOp::Put {
        key,
        value: vec![1, b'{'],
        revision: 9,
        expires_at: Some(h.now.plus(3600)),
        condition: Condition::Always,
    };
    h.store.apply(garbage, h.now);
    h.parse(CLIENT, CB).unwrap();
    assert_eq!((h.net.count(CLIENT), h.cached()), (2, 1));
}

// ---- tokens -----------------------------------------------------------------

#[test]
fn public_document_client_full_flow() {
    let mut h = H::cimd();
    h.net.serve_json(CLIENT, &doc(json!({})));
    let code = h.code(CLIENT);
    let resp = h.exchange(&code, &format!("&client_id={}", urlencode(CLIENT)));
    assert_eq!(resp.status(), StatusCode::OK, "{}", String::from_utf8_lossy(resp.body()));
    let body = json(&resp);
    assert!(body["refresh_token"].is_string());
    // Round 1 read the document's cache entry; no fetch.
    assert_eq!((h.stats.round_trips, h.stats.fetches), (2, 0));
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let resp = h.post(
        "/token",
        &format!("grant_type=refresh_token&refresh_token={refresh}&client_id={}", urlencode(CLIENT)),
        &[],
    );
    assert_eq!(resp.status(), StatusCode::OK);

    // A public client may not present an assertion it has no keys for.
    let code = h.code(CLIENT);
    let jwt = sign(&Signer::Ec(&ec_key(1)), &json!({"alg": "ES256"}), &claims(h.now, "x"));
    let resp = h.exchange(&code, &assertion_params(&jwt));
    assert_eq!((resp.status(), error_of(&resp)), (StatusCode::UNAUTHORIZED, "invalid_client".into()));
    assert_eq!(h.last_reason(), "client_auth_method_mismatch");
}

#[test]
fn document_fetched_at_the_token_endpoint_when_not_cached() {
    let mut h = H::cimd();
    h.net.serve(CLIENT, Ok(FetchResponse::json(doc(json!({})).to_string()).with_cache_control("no-store")));
    let code = h.code(CLIENT);
    let resp = h.exchange(&code, &format!("&client_id={}", urlencode(CLIENT)));
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(h.stats.fetches, 1);
    // The document disappears: the client can no longer authenticate.
    h.net.serve(CLIENT, Err(FetchError::Connect));
    let code_resp = h.parse(CLIENT, CB);
    assert!(code_resp.is_err());
    let resp = h.post(
        "/token",
        &format!("grant_type=refresh_token&refresh_token=mcp_rt_x&client_id={}", urlencode(CLIENT)),
        &[],
    );
    assert_eq!((resp.status(), error_of(&resp)), (StatusCode::UNAUTHORIZED, "invalid_client".into()));
    assert_eq!(h.last_reason(), "cimd_fetch_connect_failed");
}

fn jwt_client_es256(h: &mut H) -> p256::ecdsa::SigningKey {
    let key = ec_key(3);
    h.net.serve_json(
        CLIENT,
        &doc(json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [ec_jwk(&key, "k1")]}})),
    );
    key
}

#[test]
fn private_key_jwt_es256_inline_keys() {
    let mut h = H::cimd();
    let key = jwt_client_es256(&mut h);
    let code = h.code(CLIENT);
    let jwt = sign(&Signer::Ec(&key), &json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}), &claims(h.now, "jti-1"));
    let resp = h.exchange(&code, &assertion_params(&jwt));
    assert_eq!(resp.status(), StatusCode::OK, "{}", String::from_utf8_lossy(resp.body()));
    // Read, spend the jti, commit.
    assert_eq!((h.stats.round_trips, h.stats.fetches), (3, 0));
    assert_eq!(h.store.live_keys(h.now).iter().filter(|k| k.starts_with("jti/")).count(), 1);

    // The same assertion again: refused, whatever the grant.
    let code = h.code(CLIENT);
    let resp = h.exchange(&code, &assertion_params(&jwt));
    assert_eq!((resp.status(), error_of(&resp)), (StatusCode::UNAUTHORIZED, "invalid_client".into()));
    assert_eq!(h.last_reason(), "client_assertion_replayed");
    // A fresh one works, and the code was not consumed by the refusal.
    let jwt = sign(&Signer::Ec(&key), &json!({"alg": "ES256"}), &claims(h.now, "jti-2"));
    assert_eq!(h.exchange(&code, &assertion_params(&jwt)).status(), StatusCode::OK);

    // A client_id parameter that agrees is fine; one that does not is not.
    let code = h.code(CLIENT);
    let jwt = sign(&Signer::Ec(&key), &json!({"alg": "ES256"}), &claims(h.now, "jti-3"));
    let resp = h.exchange(&code, &format!("{}&client_id={}", assertion_params(&jwt), urlencode(CLIENT)));
    assert_eq!(resp.status(), StatusCode::OK);
    let jwt = sign(&Signer::Ec(&key), &json!({"alg": "ES256"}), &claims(h.now, "jti-4"));
    let resp = h.exchange(&code, &format!("{}&client_id=other", assertion_params(&jwt)));
    assert_eq!(error_of(&resp), "invalid_request");
}

#[test]
fn private_key_jwt_rs256_from_jwks_uri_with_rotation() {
    let mut h = H::cimd();
    let a = rsa_key('a');
    h.net.serve_json(CLIENT, &doc(json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": JWKS_URI})));
    h.net.serve(
        JWKS_URI,
        Ok(FetchResponse::json(json!({"keys": [rsa_jwk(&a, "a")]}).to_string()).with_cache_control("max-age=600")),
    );
    let code = h.code(CLIENT);
    assert_eq!(h.net.count(JWKS_URI), 0, "keys are fetched only when needed");
    let jwt = sign(&Signer::Rsa(&a), &json!({"alg": "RS256", "kid": "a"}), &claims(h.now, "r1"));
    let resp = h.exchange(&code, &assertion_params(&jwt));
    assert_eq!(resp.status(), StatusCode::OK, "{}", String::from_utf8_lossy(resp.body()));
    assert_eq!(h.net.asked.lock().unwrap().last().unwrap().purpose, FetchPurpose::ClientJwks);
    assert_eq!(h.net.count(JWKS_URI), 1);

    // Cached with the document: no fetch the second time.
    let code = h.code(CLIENT);
    let jwt = sign(&Signer::Rsa(&a), &json!({"alg": "RS256", "kid": "a"}), &claims(h.now, "r2"));
    assert_eq!(h.exchange(&code, &assertion_params(&jwt)).status(), StatusCode::OK);
    assert_eq!((h.net.count(JWKS_URI), h.stats.fetches), (1, 0));

    // The client rotates to key b: the cached set fails, is refetched once,
    // and the assertion verifies.
    let b = rsa_key('b');
    h.net.serve_json(JWKS_URI, &json!({"keys": [rsa_jwk(&b, "b")]}));
    let code = h.code(CLIENT);
    let jwt = sign(&Signer::Rsa(&b), &json!({"alg": "RS256", "kid": "b"}), &claims(h.now, "r3"));
    let resp = h.exchange(&code, &assertion_params(&jwt));
    assert_eq!(resp.status(), StatusCode::OK, "{}", String::from_utf8_lossy(resp.body()));
    assert_eq!(h.net.count(JWKS_URI), 2);

    // Signed with the retired key: one refetch, then refused.
    let code = h.code(CLIENT);
    let jwt = sign(&Signer::Rsa(&a), &json!({"alg": "RS256", "kid": "b"}), &claims(h.now, "r4"));
    let resp = h.exchange(&code, &assertion_params(&jwt));
    assert_eq!(error_of(&resp), "invalid_client");
    assert_eq!(h.last_reason(), "client_assertion_signature_invalid");

    // A key-set fetch failure is the client's problem, reported as such.
    h.net.serve(JWKS_URI, Err(FetchError::Timeout));
    let jwt = sign(&Signer::Rsa(&a), &json!({"alg": "RS256", "kid": "zzz"}), &claims(h.now, "r5"));
    let resp = h.exchange(&code, &assertion_params(&jwt));
    assert_eq!(error_of(&resp), "invalid_client");
    assert_eq!(h.last_reason(), "jwks_fetch_timeout");
}

#[test]
fn every_assertion_rule_has_its_reason() {
    let now = UnixTime::from_secs(T0);
    let key = ec_key(3);
    let other = ec_key(9);
    let base = claims(now, "j");
    let with = |patch: Value| {
        let mut c = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let es = json!({"alg": "ES256"});
    let t = now.as_secs();
    let cases: Vec<(String, &str)> = vec![
        (
            sign(&Signer::Ec(&key), &es, &with(json!({"iss": "https://app.example/other"}))),
            "client_assertion_issuer_mismatch",
        ),
        (
            sign(&Signer::Ec(&key), &es, &with(json!({"aud": "https://elsewhere.example"}))),
            "client_assertion_audience_invalid",
        ),
        (sign(&Signer::Ec(&key), &es, &with(json!({"aud": null}))), "client_assertion_audience_invalid"),
        (sign(&Signer::Ec(&key), &es, &with(json!({"exp": null}))), "client_assertion_expired"),
        (sign(&Signer::Ec(&key), &es, &with(json!({"exp": t - 61}))), "client_assertion_expired"),
        (sign(&Signer::Ec(&key), &es, &with(json!({"exp": t + 3600}))), "client_assertion_lifetime_too_long"),
        (sign(&Signer::Ec(&key), &es, &with(json!({"nbf": t + 600}))), "client_assertion_not_yet_valid"),
        (sign(&Signer::Ec(&key), &es, &with(json!({"iat": t + 600}))), "client_assertion_not_yet_valid"),
        (sign(&Signer::Ec(&key), &es, &with(json!({"jti": null}))), "client_assertion_jti_missing"),
        (sign(&Signer::Ec(&key), &es, &with(json!({"jti": ""}))), "client_assertion_jti_missing"),
        (sign(&Signer::Ec(&key), &es, &with(json!({"exp": "soon"}))), "client_assertion_malformed"),
        (sign(&Signer::Ec(&other), &es, &base), "client_assertion_signature_invalid"),
        (sign(&Signer::Ec(&key), &json!({"alg": "ES256", "kid": "nope"}), &base), "client_assertion_no_matching_key"),
        (sign(&Signer::Rsa(&rsa_key('a')), &json!({"alg": "RS256"}), &base), "client_assertion_no_matching_key"),
        (sign(&Signer::Ec(&key), &json!({"alg": "none"}), &base), "client_assertion_alg_unsupported"),
        (sign(&Signer::Ec(&key), &json!({"alg": "HS256"}), &base), "client_assertion_alg_unsupported"),
        (
            sign(&Signer::Ec(&key), &json!({"alg": "ES256", "crit": ["exp"]}), &base),
            "client_assertion_crit_unsupported",
        ),
        ("not.a.jwt".to_owned(), "client_assertion_malformed"),
        (
            sign(&Signer::Ec(&key), &es, &with(json!({"sub": "https://app.example/other"}))),
            "client_assertion_subject_mismatch",
        ),
    ];
    for (jwt, reason) in cases {
        let mut h = H::cimd();
        jwt_client_es256(&mut h);
        let code = h.code(CLIENT);
        // A mismatched sub names another client: pass the real one so the
        // request reaches the claim checks, which then refuse it.
        let resp = h.exchange(&code, &assertion_params(&jwt));
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{reason}: {}", String::from_utf8_lossy(resp.body()));
        assert_eq!(error_of(&resp), "invalid_client", "{reason}");
        if reason != "client_assertion_subject_mismatch" {
            assert_eq!(h.last_reason(), reason);
        }
        // Nothing was spent or consumed.
        assert_eq!(h.store.live_keys(h.now).iter().filter(|k| k.starts_with("jti/")).count(), 0, "{reason}");
    }
    // Audience as an array holding the issuer.
    let mut h = H::cimd();
    jwt_client_es256(&mut h);
    let code = h.code(CLIENT);
    let jwt = sign(&Signer::Ec(&key), &es, &with(json!({"aud": ["https://x.example", ISSUER]})));
    assert_eq!(h.exchange(&code, &assertion_params(&jwt)).status(), StatusCode::OK);
}

#[test]
fn assertion_method_mixing_and_shape() {
    let mut h = H::cimd();
    let key = jwt_client_es256(&mut h);
    let code = h.code(CLIENT);
    let jwt = sign(&Signer::Ec(&key), &json!({"alg": "ES256"}), &claims(h.now, "m1"));
    let resp = h.exchange(&code, &format!("{}&client_secret=x", assertion_params(&jwt)));
    assert_eq!(error_of(&resp), "invalid_request");
    assert_eq!(h.last_reason(), "client_auth_multiple_methods");
    let resp = h.post(
        "/token",
        &format!("grant_type=authorization_code&code={code}&code_verifier={VERIFIER}{}", assertion_params(&jwt)),
        &[("authorization", "Basic eDp5")],
    );
    assert_eq!(error_of(&resp), "invalid_request");
    let resp = h.exchange(&code, &format!("&client_assertion_type=urn%3Aother&client_assertion={jwt}"));
    assert_eq!(error_of(&resp), "invalid_client");
    assert_eq!(h.last_reason(), "client_assertion_type_unsupported");
    let resp =
        h.exchange(&code, "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer");
    assert_eq!(error_of(&resp), "invalid_request");
    assert_eq!(h.last_reason(), "client_assertion_missing");
    // A private_key_jwt client may not fall back to client_id alone.
    let resp = h.exchange(&code, &format!("&client_id={}", urlencode(CLIENT)));
    assert_eq!(error_of(&resp), "invalid_client");
    assert_eq!(h.last_reason(), "client_auth_method_mismatch");
    // And the code survived all of it.
    let jwt = sign(&Signer::Ec(&key), &json!({"alg": "ES256"}), &claims(h.now, "m2"));
    assert_eq!(h.exchange(&code, &assertion_params(&jwt)).status(), StatusCode::OK);
}

#[test]
fn registered_clients_cannot_use_private_key_jwt() {
    let mut h = H::cimd();
    let resp = {
        let req = Request::post(format!("{ISSUER}/register"))
            .header("content-type", "application/json")
            .body(Bytes::from(
                json!({"redirect_uris": [CB], "token_endpoint_auth_method": "none", "client_name": "x"}).to_string(),
            ))
            .unwrap();
        let mut flow = h.provider.handle(req, h.now, &mut h.rng);
        match oauth_core::drive_blocking(&mut flow, &mut h.store, |c| c.default_reply()) {
            Outcome::Response(r) => r,
            _ => panic!(),
        }
    };
    let id = json(&resp)["client_id"].as_str().unwrap().to_owned();
    let code = h.code(&id);
    let mut c = claims(h.now, "z");
    c["iss"] = json!(id);
    c["sub"] = json!(id);
    let jwt = sign(&Signer::Ec(&ec_key(1)), &json!({"alg": "ES256"}), &c);
    let resp = h.exchange(&code, &assertion_params(&jwt));
    assert_eq!(error_of(&resp), "invalid_client");
    assert_eq!(h.last_reason(), "client_auth_method_mismatch");
}

// ---- revocation ---------------------------------------------------------------

#[test]
fn document_clients_revoke_their_tokens() {
    // A public client names itself.
    let mut h = H::cimd();
    h.net.serve_json(CLIENT, &doc(json!({})));
    let code = h.code(CLIENT);
    let body = json(&h.exchange(&code, &format!("&client_id={}", urlencode(CLIENT))));
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let resp = h.post("/revoke", &format!("token={refresh}&client_id={}", urlencode(CLIENT)), &[]);
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = h.post(
        "/token",
        &format!("grant_type=refresh_token&refresh_token={refresh}&client_id={}", urlencode(CLIENT)),
        &[],
    );
    assert_eq!(error_of(&resp), "invalid_grant", "the grant is gone");

    // A private_key_jwt client authenticates with an assertion, spent once.
    let mut h = H::cimd();
    let key = jwt_client_es256(&mut h);
    let code = h.code(CLIENT);
    let jwt = sign(&Signer::Ec(&key), &json!({"alg": "ES256"}), &claims(h.now, "t1"));
    let body = json(&h.exchange(&code, &assertion_params(&jwt)));
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let resp = h.post("/revoke", &format!("token={access}&client_id={}", urlencode(CLIENT)), &[]);
    assert_eq!((error_of(&resp), h.last_reason()), ("invalid_client".into(), "client_auth_method_mismatch".into()));
    let mut c = claims(h.now, "v1");
    c["aud"] = json!(ISSUER);
    let jwt = sign(&Signer::Ec(&key), &json!({"alg": "ES256"}), &c);
    let resp = h.post("/revoke", &format!("token={access}{}", assertion_params(&jwt)), &[]);
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = h.post("/revoke", &format!("token={refresh}{}", assertion_params(&jwt)), &[]);
    assert_eq!((error_of(&resp), h.last_reason()), ("invalid_client".into(), "client_assertion_replayed".into()));
    let jwt = sign(&Signer::Ec(&key), &json!({"alg": "ES256"}), &claims(h.now, "v2"));
    assert_eq!(h.post("/revoke", &format!("token={refresh}{}", assertion_params(&jwt)), &[]).status(), StatusCode::OK);
    // An unacceptable URL is refused before any IO.
    let resp = h.post("/revoke", "token=x&client_id=https%3A%2F%2Fapp.example%2F", &[]);
    assert_eq!((error_of(&resp), h.last_reason()), ("invalid_client".into(), "cimd_url_no_path".into()));
}

#[test]
fn key_set_fetch_failures_have_their_reasons() {
    let a = rsa_key('a');
    let good = json!({"keys": [rsa_jwk(&a, "a")]}).to_string();
    let mut redirect = FetchResponse::json("");
    redirect.status = 301;
    let mut gone = FetchResponse::json("");
    gone.status = 410;
    let mut html = FetchResponse::json(good.clone());
    html.content_type = Some("text/html; charset=utf-8".into());
    let mut private = rsa_jwk(&a, "a");
    private["d"] = json!("AQAB");
    let cases: Vec<(Result<FetchResponse, FetchError>, &str)> = vec![
        (
            Ok(FetchResponse::json(format!("{{\"keys\": [], \"pad\": \"{}\"}}", "x".repeat(17_000)))),
            "jwks_fetch_too_large",
        ),
        (Ok(redirect), "jwks_fetch_redirect_refused"),
        (Ok(gone), "jwks_fetch_status"),
        (Ok(html), "jwks_content_type"),
        (Ok(FetchResponse::json("nope")), "cimd_jwks_invalid"),
        (Ok(FetchResponse::json(json!({"keys": [private]}).to_string())), "cimd_private_key_material"),
        (Err(FetchError::ForbiddenAddress), "jwks_fetch_forbidden_address"),
        (Err(FetchError::Connect), "jwks_fetch_connect_failed"),
    ];
    for (answer, reason) in cases {
        let mut h = H::cimd();
        h.net.serve_json(CLIENT, &doc(json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": JWKS_URI})));
        h.net.serve(JWKS_URI, answer);
        let code = h.code(CLIENT);
        let jwt = sign(&Signer::Rsa(&a), &json!({"alg": "RS256", "kid": "a"}), &claims(h.now, "k"));
        let resp = h.exchange(&code, &assertion_params(&jwt));
        assert_eq!((resp.status(), error_of(&resp)), (StatusCode::UNAUTHORIZED, "invalid_client".into()), "{reason}");
        assert_eq!(h.last_reason(), reason);
        // The failure is not cached: the next attempt fetches the key set again.
        h.net.serve(JWKS_URI, Ok(FetchResponse::json(good.clone())));
        let jwt = sign(&Signer::Rsa(&a), &json!({"alg": "RS256", "kid": "a"}), &claims(h.now, "k2"));
        assert_eq!(h.exchange(&code, &assertion_params(&jwt)).status(), StatusCode::OK, "{reason}");
        assert_eq!(h.net.count(JWKS_URI), 2, "{reason}");
    }
}
