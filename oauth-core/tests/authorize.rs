//! The authorization endpoint's protocol half: `parse_authorization_request`,
//! `complete_authorization` and `deny_authorization`.
//!
//! RFC 6749 §4.1.2.1: until the client and its redirect URI are known to be
//! good, nothing may redirect; after that every error goes back to the client
//! with `error`, `error_description`, `state` and (RFC 9207) `iss`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use http::StatusCode;
use oauth_core::{
    Approval, AuthorizationError, AuthorizationRequest, CompletedAuthorization, ErrorCode, OAuthError,
    ProtectedResource, drive_blocking,
};
use serde_json::{Value, json};

// ---- helpers ----------------------------------------------------------------

/// Register a public client with exactly these redirect URIs (and `extra`
/// metadata merged in).
fn register_with(h: &mut Harness, redirect_uris: &[&str], extra: Value) -> String {
    let mut meta = json!({
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": "Test Client",
    });
    if let (Some(m), Some(e)) = (meta.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            m.insert(k.clone(), v.clone());
        }
    }
    let resp = h.register(meta);
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", String::from_utf8_lossy(resp.body()));
    json(&resp)["client_id"].as_str().unwrap().to_owned()
}

/// The standard request parameters, with `changes` applied: `Some` sets or
/// adds a parameter, `None` removes it.
fn query(client_id: &str, changes: &[(&str, Option<&str>)]) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), client_id.into()),
        ("redirect_uri".into(), REDIRECT.into()),
        ("state".into(), "xyz".into()),
        ("code_challenge".into(), CHALLENGE.into()),
        ("code_challenge_method".into(), "S256".into()),
        ("scope".into(), "todo:read todo:write".into()),
    ];
    for (k, v) in changes {
        let pos = params.iter().position(|(pk, _)| pk == k);
        match (pos, v) {
            (Some(i), Some(v)) => params[i].1 = (*v).to_owned(),
            (Some(i), None) => {
                params.remove(i);
            }
            (None, Some(v)) => params.push(((*k).to_owned(), (*v).to_owned())),
            (None, None) => {}
        }
    }
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &params {
        s.append_pair(k, v);
    }
    s.finish()
}

/// All query parameters of a URL, in order.
fn pairs(location: &str) -> Vec<(String, String)> {
    url::Url::parse(location).unwrap().query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// The single value of `name` in `location`'s query; panics when repeated.
fn single(location: &str, name: &str) -> Option<String> {
    let all: Vec<String> = pairs(location).into_iter().filter(|(k, _)| k == name).map(|(_, v)| v).collect();
    assert!(all.len() <= 1, "{name} repeated in {location}");
    all.into_iter().next()
}

/// The request must be refused without a redirect: a 400 page.
#[track_caller]
fn expect_invalid(result: Result<AuthorizationRequest, AuthorizationError>, reason: &str) -> OAuthError {
    let err = match result {
        Err(AuthorizationError::Invalid(e)) => e,
        other => panic!("expected Invalid ({reason}), got {other:?}"),
    };
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert_eq!(err.reason.as_str(), reason);
    let resp = AuthorizationError::Invalid(err.clone()).into_response();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none(), "an invalid request must never redirect");
    assert_eq!(error_code(&resp), "invalid_request");
    assert!(json(&resp)["error_description"].as_str().is_some_and(|d| !d.is_empty()));
    err
}

/// The request must be refused with a redirect to `redirect_uri` carrying
/// exactly `error`, `error_description`, `state` (when sent) and `iss`.
#[track_caller]
fn expect_redirect(
    result: Result<AuthorizationRequest, AuthorizationError>,
    redirect_uri: &str,
    code: &str,
    state: Option<&str>,
) -> String {
    let (location, error) = match result {
        Err(AuthorizationError::Redirect { location, error }) => (location, error),
        other => panic!("expected a {code} redirect, got {other:?}"),
    };
    assert_eq!(error.code.as_str(), code);
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    assert!(location.starts_with(&format!("{redirect_uri}{sep}")), "{location} is not under {redirect_uri}");
    assert_eq!(single(&location, "error").as_deref(), Some(code), "{location}");
    let description = single(&location, "error_description").unwrap();
    assert_eq!(description, error.description);
    assert!(!description.is_empty());
    assert_eq!(single(&location, "state").as_deref(), state, "{location}");
    assert_eq!(single(&location, "iss").as_deref(), Some(ISSUER), "{location}");
    assert_eq!(single(&location, "code"), None, "an error carries no code");
    assert!(url::Url::parse(&location).unwrap().fragment().is_none());

    let resp = AuthorizationError::Redirect { location: location.clone(), error }.into_response();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(header(&resp, "location"), location);
    assert_eq!(header(&resp, "cache-control"), "no-store");
    location
}

fn complete_result(
    h: &mut Harness,
    req: &AuthorizationRequest,
    approval: Approval,
) -> Result<CompletedAuthorization, OAuthError> {
    let mut flow = h.provider.complete_authorization(req, approval, h.now, &mut h.rng);
    drive_blocking(&mut flow, &mut h.store, |c| c.default_reply())
}

fn approve(user: &str, req: &AuthorizationRequest) -> Approval {
    Approval::new(user, req.scope.clone(), json!({"user": user}))
}

fn tamper(req: &AuthorizationRequest, field: &str, value: Value) -> AuthorizationRequest {
    let mut v = serde_json::to_value(req).unwrap();
    v[field] = value;
    serde_json::from_value(v).unwrap()
}

// ---- before the redirect URI is validated: never redirect ------------------

#[test]
fn unknown_client_is_invalid_without_redirect() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    // Even with every other parameter wrong, an unknown client is a page.
    expect_invalid(h.parse(&query("mcp_nobody", &[])), "authorize_client_unknown");
    expect_invalid(h.parse(&query("mcp_nobody", &[("response_type", Some("token"))])), "authorize_client_unknown");
    expect_invalid(h.parse(&query("", &[("client_id", None)])), "authorize_client_id_missing");
    // The same query with a real client succeeds: the client id was the fault.
    assert!(h.parse(&query(&c.id, &[])).is_ok());
}

#[test]
fn unregistered_redirect_uri_is_invalid_without_redirect() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    for bad in [
        "https://evil.example/cb",
        "https://client.example/cb/",
        "https://client.example/cb?x=1",
        "https://CLIENT.example/cb",
        "https://client.example:443/cb",
        "https://client.example/CB",
        "http://client.example/cb",
        "https://client.example/cb/../cb",
        "https://client.example.evil.example/cb",
    ] {
        expect_invalid(h.parse(&query(&c.id, &[("redirect_uri", Some(bad))])), "redirect_uri_mismatch");
        // An unusable redirect takes precedence over every later error.
        expect_invalid(
            h.parse(&query(&c.id, &[("redirect_uri", Some(bad)), ("code_challenge", None)])),
            "redirect_uri_mismatch",
        );
    }
}

#[test]
fn omitted_redirect_uri_with_several_registered_is_invalid() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    expect_invalid(h.parse(&query(&c.id, &[("redirect_uri", None)])), "redirect_uri_required");
    // ...and still a page when other parameters are wrong too.
    expect_invalid(
        h.parse(&query(&c.id, &[("redirect_uri", None), ("response_type", Some("token"))])),
        "redirect_uri_required",
    );
}

#[test]
fn omitted_redirect_uri_with_one_registered_uses_it_and_is_not_explicit() {
    let mut h = Harness::default();
    let id = register_with(&mut h, &[REDIRECT], json!({}));
    let req = h.parse(&query(&id, &[("redirect_uri", None)])).unwrap();
    assert_eq!(req.redirect_uri, REDIRECT);
    assert!(!req.redirect_uri_explicit);

    let explicit = h.parse(&query(&id, &[])).unwrap();
    assert!(explicit.redirect_uri_explicit);

    // The code goes to the registered URI, and since the request did not
    // name redirect_uri, the token request need not either (RFC 6749 §4.1.3).
    let done = h.complete(&req, approve("alice", &req));
    assert!(done.redirect_to.starts_with(&format!("{REDIRECT}?")));
    let code = single(&done.redirect_to, "code").unwrap();
    let c = Client { id, secret: None, method: "none".into() };
    let resp = h.token_request(&c, &format!("grant_type=authorization_code&code={code}&code_verifier={VERIFIER}"));
    assert_eq!(resp.status(), StatusCode::OK, "{}", String::from_utf8_lossy(resp.body()));
}

#[test]
fn an_error_after_an_implicit_redirect_uri_goes_to_the_registered_one() {
    let mut h = Harness::default();
    let id = register_with(&mut h, &[REDIRECT], json!({}));
    let r = h.parse(&query(&id, &[("redirect_uri", None), ("code_challenge", None)]));
    expect_redirect(r, REDIRECT, "invalid_request", Some("xyz"));
}

#[test]
fn loopback_redirects_may_use_any_port_but_not_another_path_or_host() {
    let mut h = Harness::default();
    let c = h.register_client("none"); // registers http://127.0.0.1/callback
    let req = h.parse(&query(&c.id, &[("redirect_uri", Some("http://127.0.0.1:54321/callback"))])).unwrap();
    // The response goes to the port the app is listening on now.
    assert_eq!(req.redirect_uri, "http://127.0.0.1:54321/callback");
    assert!(req.redirect_uri_explicit);
    let done = h.complete(&req, approve("alice", &req));
    assert!(done.redirect_to.starts_with("http://127.0.0.1:54321/callback?"), "{}", done.redirect_to);

    assert!(h.parse(&query(&c.id, &[("redirect_uri", Some("http://127.0.0.1/callback"))])).is_ok());
    for bad in [
        "http://127.0.0.1:54321/other",
        "http://127.0.0.1:54321/callback/",
        "http://127.0.0.1:54321/callback?x=1",
        "http://localhost:54321/callback",
        "http://127.0.0.2:54321/callback",
        "https://127.0.0.1:54321/callback",
    ] {
        expect_invalid(h.parse(&query(&c.id, &[("redirect_uri", Some(bad))])), "redirect_uri_mismatch");
    }
    // The any-port rule is for loopback only.
    expect_invalid(
        h.parse(&query(&c.id, &[("redirect_uri", Some("https://client.example:8443/cb"))])),
        "redirect_uri_mismatch",
    );
}

// ---- after the redirect URI is validated: redirect with state and iss ------

#[test]
fn pkce_errors_redirect_with_state_and_iss() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let long = "A".repeat(44);
    let cases: [&[(&str, Option<&str>)]; 8] = [
        &[("code_challenge", None)],
        &[("code_challenge_method", Some("plain"))],
        &[("code_challenge_method", Some("s256"))],
        // OAuth 2.1 §4.1.1: an absent method means plain, which is refused.
        &[("code_challenge_method", None)],
        &[("code_challenge", Some("short"))],
        &[("code_challenge", Some(long.as_str()))],
        &[("code_challenge", Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"))],
        &[("code_challenge", Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM="))],
    ];
    for changes in cases {
        expect_redirect(h.parse(&query(&c.id, changes)), REDIRECT, "invalid_request", Some("xyz"));
    }
    // Plain with a verifier-shaped challenge is still refused.
    let plain = query(&c.id, &[("code_challenge", Some(VERIFIER)), ("code_challenge_method", Some("plain"))]);
    expect_redirect(h.parse(&plain), REDIRECT, "invalid_request", Some("xyz"));
    assert_eq!(h.parse(&query(&c.id, &[])).unwrap().code_challenge, CHALLENGE);
}

#[test]
fn response_type_and_mode_errors() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    // The implicit grant does not exist in OAuth 2.1.
    for rt in ["token", "code id_token", "id_token", "code token", "CODE"] {
        expect_redirect(
            h.parse(&query(&c.id, &[("response_type", Some(rt))])),
            REDIRECT,
            "unsupported_response_type",
            Some("xyz"),
        );
    }
    expect_redirect(h.parse(&query(&c.id, &[("response_type", None)])), REDIRECT, "invalid_request", Some("xyz"));
    for mode in ["fragment", "form_post"] {
        expect_redirect(
            h.parse(&query(&c.id, &[("response_mode", Some(mode))])),
            REDIRECT,
            "invalid_request",
            Some("xyz"),
        );
    }
    assert!(h.parse(&query(&c.id, &[("response_mode", Some("query"))])).is_ok());
}

#[test]
fn scope_errors_are_invalid_scope() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    for scope in ["admin", "todo:read admin", "todo:read \"x", "todo:read\\"] {
        expect_redirect(h.parse(&query(&c.id, &[("scope", Some(scope))])), REDIRECT, "invalid_scope", Some("xyz"));
    }
    // In the catalogue: fine, and duplicates collapse in first-seen order.
    let ok = h.parse(&query(&c.id, &[("scope", Some("todo:write  todo:read todo:write"))])).unwrap();
    assert_eq!(ok.scope, ["todo:write", "todo:read"]);
    assert_eq!(h.parse(&query(&c.id, &[("scope", Some("offline_access"))])).unwrap().scope, ["offline_access"]);
}

#[test]
fn a_client_registered_for_a_scope_cannot_ask_for_more() {
    let mut h = Harness::default();
    let id = register_with(&mut h, &[REDIRECT], json!({"scope": "todo:read"}));
    expect_redirect(
        h.parse(&query(&id, &[("scope", Some("todo:read todo:write"))])),
        REDIRECT,
        "invalid_scope",
        Some("xyz"),
    );
    assert_eq!(h.parse(&query(&id, &[("scope", Some("todo:read"))])).unwrap().scope, ["todo:read"]);
    // Omitted: the client's registered scope.
    assert_eq!(h.parse(&query(&id, &[("scope", None)])).unwrap().scope, ["todo:read"]);
}

#[test]
fn omitted_scope_defaults_to_the_resource_requirement() {
    let mut h = Harness::new(
        builder()
            .resource(ProtectedResource::new("https://as.example.com/admin").unwrap().required_scopes(["todo:write"])),
    );
    let c = h.register_client("none");
    assert!(h.parse(&query(&c.id, &[("scope", None)])).unwrap().scope.is_empty());
    let admin = query(&c.id, &[("scope", None), ("resource", Some("https://as.example.com/admin"))]);
    assert_eq!(h.parse(&admin).unwrap().scope, ["todo:write"]);
}

#[test]
fn resource_errors_are_invalid_target() {
    let mut h = Harness::new(builder().resource(ProtectedResource::new("https://as.example.com/other").unwrap()));
    let c = h.register_client("none");
    for bad in [
        "https://evil.example/mcp",
        "https://as.example.com/mcp/",
        "https://as.example.com/MCP",
        "https://as.example.com/mcp#frag",
        "/mcp",
        "http://as.example.com/mcp",
    ] {
        expect_redirect(h.parse(&query(&c.id, &[("resource", Some(bad))])), REDIRECT, "invalid_target", Some("xyz"));
    }
    let two = format!(
        "{}&resource={}",
        query(&c.id, &[("resource", Some(RESOURCE))]),
        urlencode("https://as.example.com/other")
    );
    expect_redirect(h.parse(&two), REDIRECT, "invalid_target", Some("xyz"));

    // Omitted: the default resource; named in another spelling: canonical.
    assert_eq!(h.parse(&query(&c.id, &[])).unwrap().resource, RESOURCE);
    let spelled = query(&c.id, &[("resource", Some("HTTPS://AS.Example.COM:443/mcp"))]);
    assert_eq!(h.parse(&spelled).unwrap().resource, RESOURCE);
    let other = query(&c.id, &[("resource", Some("https://as.example.com/other"))]);
    assert_eq!(h.parse(&other).unwrap().resource, "https://as.example.com/other");
}

#[test]
fn request_objects_are_refused() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    for p in ["request", "request_uri"] {
        let value = if p == "request" { "eyJhbGciOiJub25lIn0.e30." } else { "urn:ietf:params:oauth:request_uri:abc" };
        expect_redirect(h.parse(&query(&c.id, &[(p, Some(value))])), REDIRECT, "invalid_request", Some("xyz"));
    }
}

#[test]
fn error_redirects_omit_state_when_none_was_sent_and_return_it_verbatim_otherwise() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    expect_redirect(
        h.parse(&query(&c.id, &[("state", None), ("code_challenge", None)])),
        REDIRECT,
        "invalid_request",
        None,
    );
    let odd = "a b&c=d/é?#%20+";
    expect_redirect(
        h.parse(&query(&c.id, &[("state", Some(odd)), ("code_challenge", None)])),
        REDIRECT,
        "invalid_request",
        Some(odd),
    );
}

#[test]
fn error_redirects_keep_the_registered_query_string() {
    let mut h = Harness::default();
    let cb = "https://client.example/cb?tenant=7&x=a%20b";
    let id = register_with(&mut h, &[cb], json!({}));
    let loc = expect_redirect(
        h.parse(&query(&id, &[("redirect_uri", Some(cb)), ("scope", Some("admin"))])),
        cb,
        "invalid_scope",
        Some("xyz"),
    );
    let p = pairs(&loc);
    assert_eq!(p[0], ("tenant".to_owned(), "7".to_owned()));
    assert_eq!(p[1], ("x".to_owned(), "a b".to_owned()));
}

// ---- success ------------------------------------------------------------------

#[test]
fn a_valid_request_parses_into_everything_the_consent_page_needs() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let req = h.parse(&Harness::auth_query(&c.id)).unwrap();
    assert_eq!(req.client_id, c.id);
    assert_eq!(req.client_name.as_deref(), Some("Test Client"));
    assert_eq!(req.redirect_uri, REDIRECT);
    assert!(req.redirect_uri_explicit);
    assert_eq!(req.state.as_deref(), Some("xyz"));
    assert_eq!(req.scope, ["todo:read", "todo:write"]);
    assert_eq!(req.resource, RESOURCE);
    assert_eq!(req.code_challenge, CHALLENGE);
    assert_eq!(req.redirect_host().as_deref(), Some("client.example"));
    // It survives a trip through serialisation unchanged.
    let back: AuthorizationRequest = serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();
    assert_eq!(back, req);
}

#[test]
fn success_redirect_carries_code_state_and_exact_iss() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let req = h.parse(&Harness::auth_query(&c.id)).unwrap();
    let done = h.complete(&req, approve("alice", &req));
    assert!(done.redirect_to.starts_with(&format!("{REDIRECT}?")), "{}", done.redirect_to);
    let names: Vec<String> = pairs(&done.redirect_to).into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, ["code", "state", "iss"]);
    assert!(single(&done.redirect_to, "code").unwrap().starts_with("mcp_ac_"));
    assert_eq!(single(&done.redirect_to, "state").as_deref(), Some("xyz"));
    assert_eq!(single(&done.redirect_to, "iss").as_deref(), Some(ISSUER));
    assert_eq!(done.revoked_grants, 0);
    assert_eq!(done.grant_id.len(), 32);
    assert!(done.grant_id.bytes().all(|b| b.is_ascii_hexdigit()));

    let resp = done.clone().into_response();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(header(&resp, "location"), done.redirect_to);
    assert_eq!(header(&resp, "cache-control"), "no-store");

    // Without state, no state parameter at all.
    let req = h.parse(&query(&c.id, &[("state", None)])).unwrap();
    assert_eq!(req.state, None);
    let done = h.complete(&req, approve("bob", &req));
    assert_eq!(single(&done.redirect_to, "state"), None);
    assert!(single(&done.redirect_to, "code").is_some());
}

#[test]
fn success_redirect_keeps_the_registered_query_string() {
    let mut h = Harness::default();
    let cb = "https://client.example/cb?tenant=7";
    let id = register_with(&mut h, &[cb], json!({}));
    let req = h.parse(&query(&id, &[("redirect_uri", Some(cb))])).unwrap();
    let done = h.complete(&req, approve("alice", &req));
    assert!(done.redirect_to.starts_with("https://client.example/cb?tenant=7&code="), "{}", done.redirect_to);
    assert_eq!(single(&done.redirect_to, "tenant").as_deref(), Some("7"));
    assert_eq!(single(&done.redirect_to, "iss").as_deref(), Some(ISSUER));
    // The code is redeemable with the same (query-carrying) redirect URI.
    let code = single(&done.redirect_to, "code").unwrap();
    let c = Client { id, secret: None, method: "none".into() };
    let body =
        format!("grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&redirect_uri={}", urlencode(cb));
    assert_eq!(h.token_request(&c, &body).status(), StatusCode::OK);
}

#[test]
fn iss_is_the_issuer_with_its_path() {
    let issuer = "https://as.example.com/tenant1";
    let mut h = Harness::new(
        oauth_core::ProviderBuilder::new(format!("{issuer}/"))
            .resource(ProtectedResource::new("https://as.example.com/tenant1/mcp").unwrap()),
    );
    let resp = h.post_json(
        "/tenant1/register",
        &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
        &[],
    );
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", String::from_utf8_lossy(resp.body()));
    let id = json(&resp)["client_id"].as_str().unwrap().to_owned();
    let req = h.parse(&query(&id, &[("scope", None)])).unwrap();
    let done = h.complete(&req, approve("alice", &req));
    assert_eq!(single(&done.redirect_to, "iss").as_deref(), Some(issuer));
    let denied = h.provider.deny_authorization(&req);
    assert_eq!(single(&denied, "iss").as_deref(), Some(issuer));
    let Err(AuthorizationError::Redirect { location, .. }) =
        h.parse(&query(&id, &[("scope", None), ("code_challenge", None)]))
    else {
        panic!("expected a redirect")
    };
    assert_eq!(single(&location, "iss").as_deref(), Some(issuer));
}

#[test]
fn deny_redirects_access_denied_with_state_and_iss() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let req = h.parse(&Harness::auth_query(&c.id)).unwrap();
    let before = h.store.len();
    let location = h.provider.deny_authorization(&req);
    assert!(location.starts_with(&format!("{REDIRECT}?")));
    assert_eq!(single(&location, "error").as_deref(), Some("access_denied"));
    assert!(single(&location, "error_description").is_some_and(|d| !d.is_empty()));
    assert_eq!(single(&location, "state").as_deref(), Some("xyz"));
    assert_eq!(single(&location, "iss").as_deref(), Some(ISSUER));
    assert_eq!(single(&location, "code"), None);
    assert_eq!(h.store.len(), before, "denying writes nothing");

    let req = h.parse(&query(&c.id, &[("state", None)])).unwrap();
    assert_eq!(single(&h.provider.deny_authorization(&req), "state"), None);
}

// ---- completion re-validates -------------------------------------------------

#[test]
fn completion_revalidates_a_tampered_request() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let other = register_with(&mut h, &["https://other.example/cb"], json!({}));
    let req = h.parse(&Harness::auth_query(&c.id)).unwrap();
    let before = h.store.len();
    let cases = [
        tamper(&req, "redirect_uri", json!("https://evil.example/cb")),
        tamper(&req, "redirect_uri", json!("https://client.example/cb/")),
        // Another client's registered URI is not this client's.
        tamper(&req, "redirect_uri", json!("https://other.example/cb")),
        tamper(&req, "client_id", json!(other)),
        tamper(&req, "client_id", json!("mcp_nobody")),
        tamper(&req, "resource", json!("https://evil.example/mcp")),
        tamper(&req, "code_challenge", json!("plain-verifier")),
    ];
    for bad in &cases {
        let err = complete_result(&mut h, bad, approve("alice", bad)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest, "{bad:?}");
    }
    assert_eq!(h.store.len(), before, "a refused completion writes nothing");
    // The untampered request still completes.
    assert!(complete_result(&mut h, &req, approve("alice", &req)).is_ok());
}

#[test]
fn completion_refuses_a_client_deleted_since_parsing() {
    let mut h = Harness::new(builder().client_registration_ttl(Some(60)));
    let c = h.register_client("none");
    let req = h.parse(&Harness::auth_query(&c.id)).unwrap();
    h.advance(60);
    let err = complete_result(&mut h, &req, approve("alice", &req)).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
}

#[test]
fn user_id_is_validated() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let req = h.parse(&Harness::auth_query(&c.id)).unwrap();
    for bad in
        [String::new(), "a".repeat(257), "é".repeat(129), "al\nice".into(), "al\u{0}ice".into(), "x\u{7f}".into()]
    {
        let err = complete_result(&mut h, &req, approve(&bad, &req)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest, "{bad:?}");
        assert_eq!(err.reason.as_str(), "user_id_invalid");
    }
    // 256 bytes is the limit, counted in bytes, not characters.
    for good in ["a".repeat(256), "é".repeat(128), "user@example.com".into(), "ユーザー".into()] {
        assert!(complete_result(&mut h, &req, approve(&good, &req)).is_ok(), "{good:?}");
    }
    let bad_scope = Approval::new("alice", vec!["todo read".into()], json!({}));
    assert_eq!(complete_result(&mut h, &req, bad_scope).unwrap_err().code, ErrorCode::InvalidScope);
}

#[test]
fn the_approved_user_scope_and_props_reach_the_resource() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let req = h.parse(&Harness::auth_query(&c.id)).unwrap();
    // The user approves less than was asked.
    let done = h.complete(&req, Approval::new("alice", vec!["todo:read".into()], json!({"k": [1, 2]})));
    let code = single(&done.redirect_to, "code").unwrap();
    let t = tokens(&h.exchange_code(&c, &code));
    assert_eq!(t.body["scope"], "todo:read");
    let auth = h.call_api(&t.access).unwrap();
    assert_eq!(auth.user_id, "alice");
    assert_eq!(auth.grant_id, done.grant_id);
    assert_eq!(auth.scope, ["todo:read"]);
    assert_eq!(auth.props, json!({"k": [1, 2]}));
}

// ---- earlier grants ------------------------------------------------------------

#[test]
fn a_new_authorization_revokes_the_same_users_earlier_grant_to_the_same_client_only() {
    let mut h = Harness::default();
    let a = h.register_client("none");
    let b = h.register_client("none");
    let alice_a = h.tokens_for(&a, "alice");
    let alice_b = h.tokens_for(&b, "alice");
    let bob_a = h.tokens_for(&a, "bob");
    let alice2_a = h.tokens_for(&a, "alice2");
    assert!(h.call_api(&alice_a.access).is_ok());

    let req = h.parse(&Harness::auth_query(&a.id)).unwrap();
    let second = h.complete(&req, approve("alice", &req));
    assert_eq!(second.revoked_grants, 1);
    assert_eq!(h.call_api(&alice_a.access).unwrap_err().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&h.refresh(&a, alice_a.refresh.as_deref().unwrap())), "invalid_grant");
    for (client, t) in [(&b, &alice_b), (&a, &bob_a), (&a, &alice2_a)] {
        assert!(h.call_api(&t.access).is_ok());
        assert_eq!(h.refresh(client, t.refresh.as_deref().unwrap()).status(), StatusCode::OK);
    }

    // A grant whose code was never redeemed is an earlier grant too.
    let pending = single(&second.redirect_to, "code").unwrap();
    let third = h.complete(&req, approve("alice", &req));
    assert_eq!(third.revoked_grants, 1);
    assert_eq!(error_code(&h.exchange_code(&a, &pending)), "invalid_grant");
    let t = tokens(&h.exchange_code(&a, &single(&third.redirect_to, "code").unwrap()));
    assert_eq!(h.call_api(&t.access).unwrap().grant_id, third.grant_id);
}

#[test]
fn earlier_grants_for_another_resource_are_kept() {
    let other = "https://as.example.com/other";
    let mut h = Harness::new(builder().resource(ProtectedResource::new(other).unwrap()));
    let a = h.register_client("none");
    let first = h.tokens_for(&a, "alice");
    let req = h.parse(&query(&a.id, &[("resource", Some(other))])).unwrap();
    let done = h.complete(&req, approve("alice", &req));
    assert_eq!(done.revoked_grants, 0);
    assert!(h.call_api(&first.access).is_ok());
}

#[test]
fn revoke_existing_grants_off_keeps_both() {
    let mut h = Harness::new(builder().revoke_existing_grants(false));
    let a = h.register_client("none");
    let first = h.tokens_for(&a, "alice");
    let req = h.parse(&Harness::auth_query(&a.id)).unwrap();
    let done = h.complete(&req, approve("alice", &req));
    assert_eq!(done.revoked_grants, 0);
    let second = tokens(&h.exchange_code(&a, &single(&done.redirect_to, "code").unwrap()));
    let g1 = h.call_api(&first.access).unwrap().grant_id;
    let g2 = h.call_api(&second.access).unwrap().grant_id;
    assert_ne!(g1, g2);
    assert_eq!(h.refresh(&a, first.refresh.as_deref().unwrap()).status(), StatusCode::OK);
    assert_eq!(h.refresh(&a, second.refresh.as_deref().unwrap()).status(), StatusCode::OK);
}

// ---- cost -------------------------------------------------------------------------

#[test]
fn parsing_costs_one_round_trip_and_early_failures_none() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    for (q, trips) in [
        (Harness::auth_query(&c.id), 1),
        (query(&c.id, &[("code_challenge", None)]), 1),
        (query("mcp_nobody", &[]), 1),
        (query(&c.id, &[("client_id", None)]), 0),
        (format!("{}&state=again", Harness::auth_query(&c.id)), 0),
    ] {
        let uri: http::Uri = format!("{ISSUER}/authorize?{q}").parse().unwrap();
        let mut flow = h.provider.parse_authorization_request(&uri, h.now);
        let _ = drive_blocking(&mut flow, &mut h.store, |c| c.default_reply());
        assert_eq!(flow.stats().round_trips, trips, "{q}");
    }
}

#[test]
fn a_repeated_parameter_is_refused_without_redirect() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let q = format!("{}&client_id={}", Harness::auth_query(&c.id), c.id);
    let Err(AuthorizationError::Invalid(e)) = h.parse(&q) else { panic!("repeated client_id must be a page") };
    assert_eq!(e.code, ErrorCode::InvalidRequest);
}
