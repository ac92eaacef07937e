//! Scenario tests of token revocation (RFC 7009): at the revocation
//! endpoint and at the token endpoint, ownership, the cascade from a refresh
//! token, request-shape errors, and recovery from an interrupted cascade.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use oauth_core::storage::{Reply, StorageError, StorageRequest};
use oauth_core::testing::MemoryStore;
use oauth_core::{BlockingStore, ErrorEvent, Outcome, RefreshPolicy, drive_blocking};

/// Revoke `token` at `path`, authenticating as `client` does.
fn revoke_at(h: &mut Harness, path: &str, client: &Client, token: &str, extra: &str) -> Response<Bytes> {
    let (auth, headers) = Harness::client_auth(client);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    h.post_form(path, &format!("token={}{extra}{auth}", urlencode(token)), &headers)
}

fn revoke(h: &mut Harness, client: &Client, token: &str) -> Response<Bytes> {
    revoke_at(h, "/revoke", client, token, "")
}

/// The one success answer: 200, empty body, not cacheable.
fn assert_revoked(resp: &Response<Bytes>) {
    assert_eq!(resp.status(), StatusCode::OK, "{}", String::from_utf8_lossy(resp.body()));
    assert!(resp.body().is_empty());
    assert_eq!(header(resp, "cache-control"), "no-store");
}

fn api_refuses(h: &mut Harness, token: &str) -> bool {
    h.call_api(token).is_err_and(|r| r.status() == StatusCode::UNAUTHORIZED)
}

fn keys_with_prefix(h: &Harness, prefix: &str) -> Vec<String> {
    h.store.live_keys(h.now).into_iter().filter(|k| k.starts_with(prefix)).collect()
}

#[test]
fn owner_revokes_an_access_token_and_only_that_token() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let refreshed = tokens(&h.refresh(&c, t.refresh.as_deref().unwrap()));
    assert!(h.call_api(&t.access).is_ok() && h.call_api(&refreshed.access).is_ok());

    let resp = revoke(&mut h, &c, &t.access);
    assert_revoked(&resp);
    assert_eq!(header(&resp, "pragma"), "no-cache");
    // Read client + token record, then delete the record.
    assert_eq!(h.last_stats.round_trips, 2);
    assert!(api_refuses(&mut h, &t.access));

    // The grant, its refresh token and its other access token live on.
    assert!(h.call_api(&refreshed.access).is_ok());
    assert_eq!(h.refresh(&c, refreshed.refresh.as_deref().unwrap()).status(), StatusCode::OK);
}

#[test]
fn revoking_a_refresh_token_ends_the_grant_and_everything_it_issued() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let second = tokens(&h.refresh(&c, t.refresh.as_deref().unwrap()));
    let third = tokens(&h.refresh(&c, second.refresh.as_deref().unwrap()));
    let grant_id = h.call_api(&third.access).unwrap().grant_id;
    assert_eq!(keys_with_prefix(&h, &format!("token/{grant_id}/")).len(), 3);

    assert_revoked(&revoke(&mut h, &c, third.refresh.as_deref().unwrap()));
    // Read client + grant; take grant + list tokens; delete tokens + index.
    assert_eq!(h.last_stats.round_trips, 3);

    for at in [&t.access, &second.access, &third.access] {
        assert!(api_refuses(&mut h, at));
    }
    assert_eq!(error_code(&h.refresh(&c, third.refresh.as_deref().unwrap())), "invalid_grant");
    assert!(keys_with_prefix(&h, &format!("grant/{grant_id}")).is_empty());
    assert!(keys_with_prefix(&h, &format!("token/{grant_id}/")).is_empty());
    assert!(keys_with_prefix(&h, "user/").is_empty());
}

#[test]
fn any_refresh_token_of_the_chain_revokes_the_grant() {
    for policy in [RefreshPolicy::Strict, RefreshPolicy::Grace] {
        // The replaced token, and one two generations back.
        for generations in [1, 2] {
            let mut h = Harness::new(builder().refresh_policy(policy));
            let c = h.register_client("none");
            let first = h.tokens_for(&c, "alice");
            let mut latest = first.refresh.clone().unwrap();
            let mut access = first.access.clone();
            for _ in 0..generations {
                let next = tokens(&h.refresh(&c, &latest));
                latest = next.refresh.unwrap();
                access = next.access;
            }
            assert!(h.call_api(&access).is_ok());
            assert_revoked(&revoke(&mut h, &c, first.refresh.as_deref().unwrap()));
            assert!(api_refuses(&mut h, &access), "{policy:?} after {generations}");
            assert_eq!(error_code(&h.refresh(&c, &latest)), "invalid_grant");
        }
    }
}

#[test]
fn another_clients_tokens_are_answered_200_and_left_alone() {
    let mut h = Harness::default();
    let owner = h.register_client("none");
    let other = h.register_client("none");
    let t = h.tokens_for(&owner, "alice");

    assert_revoked(&revoke(&mut h, &other, &t.access));
    let foreign_access_trips = h.last_stats.round_trips;
    assert_revoked(&revoke(&mut h, &other, t.refresh.as_deref().unwrap()));
    let foreign_refresh_trips = h.last_stats.round_trips;

    assert!(h.call_api(&t.access).is_ok());
    assert_eq!(h.refresh(&owner, t.refresh.as_deref().unwrap()).status(), StatusCode::OK);

    // A foreign token costs what an unknown one does: nothing tells them apart.
    let unknown = h.tokens_for(&owner, "bob");
    assert_revoked(&revoke(&mut h, &owner, &unknown.access));
    assert_revoked(&revoke(&mut h, &owner, &unknown.access));
    assert_eq!(h.last_stats.round_trips, foreign_access_trips);
    assert_eq!(foreign_access_trips, 1);
    assert_eq!(foreign_refresh_trips, 1);
}

#[test]
fn unknown_malformed_and_other_kinds_of_credentials_are_answered_200() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let code = h.authorize(&c.id, "bob");
    // Same grant id, another secret: well formed, never issued.
    let last = if t.access.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("{}{last}", &t.access[..t.access.len() - 1]);
    for token in ["garbage", "mcp_at_", "mcp_rt_short", "mcp_at_%00", forged.as_str(), code.as_str()] {
        assert_revoked(&revoke(&mut h, &c, token));
    }
    assert!(h.call_api(&t.access).is_ok());
    // The authorization code was not touched either.
    assert_eq!(h.exchange_code(&c, &code).status(), StatusCode::OK);
}

#[test]
fn expired_and_already_revoked_tokens_are_answered_200() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    assert_revoked(&revoke(&mut h, &c, t.refresh.as_deref().unwrap()));
    assert_revoked(&revoke(&mut h, &c, t.refresh.as_deref().unwrap()));
    assert_revoked(&revoke(&mut h, &c, &t.access));

    let t = h.tokens_for(&c, "bob");
    h.advance(3600);
    assert_revoked(&revoke(&mut h, &c, &t.access));
}

#[test]
fn token_type_hint_is_ignored() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let wrong_hint = revoke_at(&mut h, "/revoke", &c, &t.access, "&token_type_hint=refresh_token");
    assert_revoked(&wrong_hint);
    assert!(api_refuses(&mut h, &t.access));

    let t = h.tokens_for(&c, "bob");
    let unknown_hint = revoke_at(&mut h, "/revoke", &c, t.refresh.as_deref().unwrap(), "&token_type_hint=id_token");
    assert_revoked(&unknown_hint);
    assert!(api_refuses(&mut h, &t.access));
}

#[test]
fn revocation_is_also_accepted_at_the_token_endpoint() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    assert_revoked(&revoke_at(&mut h, "/token", &c, &t.access, ""));
    assert!(api_refuses(&mut h, &t.access));

    assert_revoked(&revoke_at(&mut h, "/token", &c, t.refresh.as_deref().unwrap(), ""));
    assert_eq!(error_code(&h.refresh(&c, t.refresh.as_deref().unwrap())), "invalid_grant");

    // Ownership holds there too.
    let other = h.register_client("none");
    let t = h.tokens_for(&c, "bob");
    assert_revoked(&revoke_at(&mut h, "/token", &other, &t.access, ""));
    assert!(h.call_api(&t.access).is_ok());
}

#[test]
fn confidential_clients_authenticate_with_their_registered_method() {
    for method in ["client_secret_basic", "client_secret_post"] {
        let mut h = Harness::default();
        let c = h.register_client(method);
        let t = h.tokens_for(&c, "alice");

        // client_id alone does not authenticate a confidential client.
        let public = Client { id: c.id.clone(), secret: None, method: "none".into() };
        let resp = revoke(&mut h, &public, &t.access);
        assert_eq!((resp.status(), error_code(&resp).as_str()), (StatusCode::UNAUTHORIZED, "invalid_client"));
        assert!(header(&resp, "www-authenticate").is_empty(), "{method}");

        let wrong = Client { id: c.id.clone(), secret: Some("mcp_cs_wrong".into()), method: method.into() };
        let resp = revoke(&mut h, &wrong, &t.access);
        assert_eq!((resp.status(), error_code(&resp).as_str()), (StatusCode::UNAUTHORIZED, "invalid_client"));
        let challenge = header(&resp, "www-authenticate");
        if method == "client_secret_basic" {
            assert_eq!(challenge, "Basic realm=\"oauth\"");
        } else {
            assert!(challenge.is_empty());
        }
        assert!(h.call_api(&t.access).is_ok(), "{method}: a failed authentication revokes nothing");

        assert_revoked(&revoke(&mut h, &c, &t.access));
        assert!(api_refuses(&mut h, &t.access));
    }
}

#[test]
fn garbage_tokens_still_require_client_authentication() {
    let mut h = Harness::default();
    let c = h.register_client("client_secret_basic");
    let wrong = Client { id: c.id, secret: Some("nope".into()), method: c.method };
    assert_eq!(revoke(&mut h, &wrong, "garbage").status(), StatusCode::UNAUTHORIZED);
    let stranger = Client { id: "no-such-client".into(), secret: None, method: "none".into() };
    let resp = revoke(&mut h, &stranger, "garbage");
    assert_eq!((resp.status(), error_code(&resp).as_str()), (StatusCode::UNAUTHORIZED, "invalid_client"));
}

#[test]
fn malformed_basic_credentials_get_a_basic_challenge() {
    let mut h = Harness::default();
    let resp = h.post_form("/revoke", "token=x", &[("authorization", "Basic !!!")]);
    assert_eq!((resp.status(), error_code(&resp).as_str()), (StatusCode::UNAUTHORIZED, "invalid_client"));
    assert_eq!(header(&resp, "www-authenticate"), "Basic realm=\"oauth\"");

    // Naming no client at all is invalid_client without a challenge.
    let resp = h.post_form("/revoke", "token=x", &[]);
    assert_eq!((resp.status(), error_code(&resp).as_str()), (StatusCode::UNAUTHORIZED, "invalid_client"));
    assert!(header(&resp, "www-authenticate").is_empty());
}

#[test]
fn request_shape_errors() {
    let mut h = Harness::default();
    let c = h.register_client("none");

    let resp = h.post_form("/revoke", &format!("client_id={}", c.id), &[]);
    assert_eq!((resp.status(), error_code(&resp).as_str()), (StatusCode::BAD_REQUEST, "invalid_request"));
    // An empty value counts as omitted (RFC 6749 §3.1).
    let resp = h.post_form("/revoke", &format!("token=&client_id={}", c.id), &[]);
    assert_eq!(error_code(&resp), "invalid_request");
    let resp = h.post_form("/revoke", &format!("token=a&token=b&client_id={}", c.id), &[]);
    assert_eq!(error_code(&resp), "invalid_request");

    let get = h.respond(Request::get(format!("{ISSUER}/revoke")).body(Bytes::new()).unwrap());
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(header(&get, "allow").contains("POST"));

    let json_body = h.post_json("/revoke", &serde_json::json!({"token": "x", "client_id": c.id}), &[]);
    assert_eq!((json_body.status(), error_code(&json_body).as_str()), (StatusCode::BAD_REQUEST, "invalid_request"));

    let huge = format!("token={}&client_id={}", "a".repeat(70 * 1024), c.id);
    assert_eq!(h.post_form("/revoke", &huge, &[]).status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Error answers are not cacheable either.
    assert_eq!(header(&resp, "cache-control"), "no-store");
}

#[test]
fn errors_reach_the_observer_as_revoke_errors() {
    let events: Arc<Mutex<Vec<ErrorEvent>>> = Arc::default();
    let sink = Arc::clone(&events);
    let mut h = Harness::new(builder().on_error(move |e| sink.lock().unwrap().push(e.clone())));
    let c = h.register_client("client_secret_basic");
    let wrong = Client { id: c.id.clone(), secret: Some("nope".into()), method: c.method.clone() };
    let _ = revoke(&mut h, &wrong, "whatever");
    let events = events.lock().unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.endpoint, "revoke");
    assert_eq!(last.reason.as_str(), "client_secret_mismatch");
    assert_eq!(last.client_id.as_deref(), Some(c.id.as_str()));
    assert!(!last.description.contains("nope"));
}

/// A store that fails chosen batches (1-based), without applying them.
struct Failing<'a> {
    inner: &'a mut MemoryStore,
    fail: &'a [u32],
    seen: u32,
}

impl BlockingStore for Failing<'_> {
    fn execute(&mut self, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        self.seen += 1;
        if self.fail.contains(&self.seen) {
            return Err(StorageError::Unavailable);
        }
        self.inner.execute(request)
    }
}

fn revoke_with_failures(h: &mut Harness, client: &Client, token: &str, fail: &[u32]) -> Response<Bytes> {
    let body = format!("token={}&client_id={}", urlencode(token), urlencode(&client.id));
    let req = Request::post(format!("{ISSUER}/revoke"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from(body))
        .unwrap();
    let mut flow = h.provider.handle(req, h.now, &mut h.rng);
    let mut store = Failing { inner: &mut h.store, fail, seen: 0 };
    match drive_blocking(&mut flow, &mut store, |c| c.default_reply()) {
        Outcome::Response(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn storage_failure_is_503_and_a_retry_completes_an_interrupted_cascade() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let second = tokens(&h.refresh(&c, t.refresh.as_deref().unwrap()));

    // The first read fails: nothing happened.
    let resp = revoke_with_failures(&mut h, &c, second.refresh.as_deref().unwrap(), &[1]);
    assert_eq!(
        (resp.status(), error_code(&resp).as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
    );
    assert_eq!(header(&resp, "retry-after"), "30");
    assert!(h.call_api(&second.access).is_ok());

    // The grant is taken, then deleting its tokens fails.
    let resp = revoke_with_failures(&mut h, &c, second.refresh.as_deref().unwrap(), &[3]);
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&h.refresh(&c, second.refresh.as_deref().unwrap())), "invalid_grant");
    // The grant is gone, so its access tokens are dead already; their
    // records are left for the retry to sweep.
    assert!(api_refuses(&mut h, &second.access));
    assert!(!keys_with_prefix(&h, "token/").is_empty());

    // Another client's retry does not sweep them.
    let other = h.register_client("none");
    assert_revoked(&revoke(&mut h, &other, second.refresh.as_deref().unwrap()));
    assert!(!keys_with_prefix(&h, "token/").is_empty());

    // The owner's retry finds the grant gone and sweeps what it issued.
    assert_revoked(&revoke(&mut h, &c, second.refresh.as_deref().unwrap()));
    assert!(api_refuses(&mut h, &t.access));
    assert!(api_refuses(&mut h, &second.access));
    assert!(keys_with_prefix(&h, "token/").is_empty());
}
