//! The core's cost per request on its hot paths, with the in-memory store,
//! so what is measured is the protocol work (parsing, hashing, AEAD, record
//! encoding) and not a database.
//!
//! `cargo bench -p oauth-core --bench core`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::Request;
use oauth_core::testing::{MemoryStore, SeededRng};
use oauth_core::{
    Approval, Outcome, ProtectedResource, Provider, ProviderBuilder, RefreshPolicy, UnixTime, drive_blocking,
};

const ISSUER: &str = "https://as.example.com";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "https://client.example/cb";

struct World {
    provider: Provider,
    store: MemoryStore,
    rng: SeededRng,
    now: UnixTime,
    client_id: String,
}

fn respond(w: &mut World, req: Request<Bytes>) -> http::Response<Bytes> {
    let mut flow = w.provider.handle(req, w.now, &mut w.rng);
    match drive_blocking(&mut flow, &mut w.store, |c| c.default_reply()) {
        Outcome::Response(r) => r,
        other => panic!("{other:?}"),
    }
}

fn form(path: &str, body: String) -> Request<Bytes> {
    Request::post(format!("{ISSUER}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from(body))
        .unwrap()
}

fn registration() -> Request<Bytes> {
    let body = serde_json::json!({
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": "bench",
    });
    Request::post(format!("{ISSUER}/register"))
        .header("content-type", "application/json")
        .body(Bytes::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn world() -> World {
    let provider = ProviderBuilder::new(ISSUER)
        .resource(ProtectedResource::new("https://as.example.com/mcp").unwrap().scopes_supported(["todo:read"]))
        .scopes_supported(["todo:read"])
        .refresh_policy(RefreshPolicy::Strict)
        .build()
        .unwrap();
    let mut w = World {
        provider,
        store: MemoryStore::new(),
        rng: SeededRng::new(1),
        now: UnixTime::from_secs(1_800_000_000),
        client_id: String::new(),
    };
    let resp = respond(&mut w, registration());
    let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
    w.client_id = body["client_id"].as_str().unwrap().to_owned();
    w
}

/// A fresh authorization code for the world's client.
fn code(w: &mut World) -> String {
    let uri: http::Uri = format!(
        "{ISSUER}/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={CHALLENGE}&code_challenge_method=S256&scope=todo:read",
        w.client_id,
        form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    )
    .parse()
    .unwrap();
    let mut flow = w.provider.parse_authorization_request(&uri, w.now);
    let req = drive_blocking(&mut flow, &mut w.store, |c| c.default_reply()).unwrap();
    let approval = Approval::new("user-1", req.scope.clone(), serde_json::json!({"upstream": "token-abc", "n": 42}));
    let mut flow = w.provider.complete_authorization(&req, approval, w.now, &mut w.rng);
    let done = drive_blocking(&mut flow, &mut w.store, |c| c.default_reply()).unwrap();
    let url = url::Url::parse(&done.redirect_to).unwrap();
    url.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned()
}

fn exchange_body(w: &World, code: &str) -> String {
    format!(
        "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&client_id={}&redirect_uri={}",
        w.client_id,
        form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    )
}

fn tokens(w: &mut World) -> (String, String) {
    let c = code(w);
    let body = exchange_body(w, &c);
    let resp = respond(w, form("/token", body));
    let v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
    (v["access_token"].as_str().unwrap().to_owned(), v["refresh_token"].as_str().unwrap().to_owned())
}

fn bench(c: &mut Criterion) {
    let mut w = world();
    let (access, refresh) = tokens(&mut w);

    c.bench_function("bearer validation (GET /mcp)", |b| {
        b.iter_batched(
            || {
                Request::get(format!("{ISSUER}/mcp"))
                    .header("authorization", format!("Bearer {access}"))
                    .body(Bytes::new())
                    .unwrap()
            },
            |req| {
                let mut flow = w.provider.handle(req, w.now, &mut w.rng);
                match drive_blocking(&mut flow, &mut w.store, |c| c.default_reply()) {
                    Outcome::Authorized { auth, .. } => black_box(auth),
                    other => panic!("{other:?}"),
                };
            },
            BatchSize::SmallInput,
        );
    });

    c.bench_function("401 challenge (no token)", |b| {
        b.iter_batched(
            || Request::get(format!("{ISSUER}/mcp")).body(Bytes::new()).unwrap(),
            |req| black_box(respond(&mut w, req)),
            BatchSize::SmallInput,
        );
    });

    c.bench_function("AS metadata", |b| {
        b.iter_batched(
            || Request::get(format!("{ISSUER}/.well-known/oauth-authorization-server")).body(Bytes::new()).unwrap(),
            |req| black_box(respond(&mut w, req)),
            BatchSize::SmallInput,
        );
    });

    c.bench_function("registration", |b| {
        b.iter_batched(registration, |req| black_box(respond(&mut w, req)), BatchSize::SmallInput);
    });

    // Setup (authorizing) and the measured exchange both need the world, so
    // time the exchange alone by hand.
    c.bench_function("code exchange (incl. PKCE)", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                let c = code(&mut w);
                let req = form("/token", exchange_body(&w, &c));
                let start = std::time::Instant::now();
                black_box(respond(&mut w, req));
                total += start.elapsed();
            }
            total
        });
    });

    let mut current = refresh;
    c.bench_function("refresh (strict rotation)", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                let req = form(
                    "/token",
                    format!("grant_type=refresh_token&refresh_token={current}&client_id={}", w.client_id),
                );
                let start = std::time::Instant::now();
                let resp = respond(&mut w, req);
                total += start.elapsed();
                let v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
                current = v["refresh_token"].as_str().unwrap().to_owned();
            }
            total
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
