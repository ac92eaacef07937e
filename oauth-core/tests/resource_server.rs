//! The resource-server check (RFC 6750, RFC 9728 §5.1) on protected routes,
//! and the application-level scope check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::*;
use http::{Method, Request, Response, StatusCode};
use oauth_core::{AuthContext, Outcome, ProtectedResource, ProviderBuilder};

const PRM_URL: &str = "https://as.example.com/.well-known/oauth-protected-resource/mcp";

/// Parse a `Bearer` challenge into its auth-params (RFC 9110 §11.2),
/// unescaping quoted strings. Panics on anything malformed, and on a
/// repeated parameter.
fn bearer_params(challenge: &str) -> BTreeMap<String, String> {
    let rest = challenge.strip_prefix("Bearer ").unwrap_or_else(|| panic!("not a Bearer challenge: {challenge}"));
    let mut out = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        assert_eq!(chars.next(), Some('='), "{challenge}");
        assert_eq!(chars.next(), Some('"'), "values are quoted: {challenge}");
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => value.push(chars.next().unwrap()),
                Some('"') => break,
                Some(c) => value.push(c),
                None => panic!("unterminated quoted string: {challenge}"),
            }
        }
        assert!(out.insert(name.trim().to_owned(), value).is_none(), "repeated parameter: {challenge}");
        assert!(matches!(chars.peek(), None | Some(',')), "{challenge}");
    }
    out
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn send(h: &mut Harness, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> Outcome {
    let mut b = Request::builder().method(method).uri(format!("{ISSUER}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    h.send(b.body(Bytes::from(body.to_owned())).unwrap())
}

fn refused(out: Outcome) -> Response<Bytes> {
    match out {
        Outcome::Response(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn authorized(out: Outcome) -> AuthContext {
    match out {
        Outcome::Authorized { auth, .. } => auth,
        Outcome::Response(r) => panic!("refused: {} {}", r.status(), header(&r, "www-authenticate")),
        other => panic!("unexpected {other:?}"),
    }
}

/// An access token for `scope` (space separated) at the default resource.
fn token_with_scope(h: &mut Harness, client: &Client, user: &str, scope: &str) -> String {
    let q =
        Harness::auth_query(&client.id).replace("scope=todo:read%20todo:write", &format!("scope={}", urlencode(scope)));
    let req = h.parse(&q).unwrap();
    let done = h.complete(&req, oauth_core::Approval::new(user, req.scope.clone(), serde_json::json!({})));
    let code = query_param(&done.redirect_to, "code").unwrap();
    let resp = h.exchange_code(client, &code);
    assert_eq!(resp.status(), StatusCode::OK, "{}", String::from_utf8_lossy(resp.body()));
    tokens(&resp).access
}

/// One resource at /mcp that requires `todo:write` on every request.
fn requiring_write() -> ProviderBuilder {
    ProviderBuilder::new(ISSUER)
        .resource(
            ProtectedResource::new(RESOURCE)
                .unwrap()
                .scopes_supported(["todo:read", "todo:write"])
                .required_scopes(["todo:write"]),
        )
        .scopes_supported(["todo:read", "todo:write", "todo:admin", "offline_access"])
        .scope_implies("todo:write", ["todo:read"])
        .scope_implies("todo:admin", ["todo:write"])
}

#[test]
fn no_token_gets_the_exact_rfc9728_challenge_without_an_error() {
    let mut h = Harness::default();
    let resp = refused(h.get("/mcp", None));
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&resp, "www-authenticate"),
        format!("Bearer resource_metadata=\"{PRM_URL}\", scope=\"todo:read todo:write\"")
    );
    // RFC 6750 §3.1: no error code when no credentials were sent.
    assert!(!header(&resp, "www-authenticate").contains("error"));
    assert_eq!(resp.headers().get_all("www-authenticate").iter().count(), 1);
    assert_eq!(h.last_stats.round_trips, 0, "nothing to look up");

    // A resource with no scopes names none.
    let mut h = Harness::new(ProviderBuilder::new(ISSUER).resource(ProtectedResource::new(RESOURCE).unwrap()));
    let resp = refused(h.get("/mcp", None));
    assert_eq!(header(&resp, "www-authenticate"), format!("Bearer resource_metadata=\"{PRM_URL}\""));
}

#[test]
fn the_challenge_names_required_scopes_and_never_offline_access() {
    let mut h = Harness::new(requiring_write());
    let resp = refused(h.get("/mcp", None));
    assert_eq!(
        header(&resp, "www-authenticate"),
        format!("Bearer resource_metadata=\"{PRM_URL}\", scope=\"todo:write\"")
    );

    let mut h = Harness::new(
        ProviderBuilder::new(ISSUER)
            .resource(ProtectedResource::new(RESOURCE).unwrap().scopes_supported(["offline_access", "todo:read"])),
    );
    let resp = refused(h.get("/mcp", None));
    assert_eq!(
        header(&resp, "www-authenticate"),
        format!("Bearer resource_metadata=\"{PRM_URL}\", scope=\"todo:read\"")
    );
}

#[test]
fn a_bad_token_adds_invalid_token() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let good = h.tokens_for(&c, "alice").access;
    // Well-formed but unknown: the same grant with another secret.
    let mut forged = good.clone().into_bytes();
    let i = forged.len() - 3;
    forged[i] = if forged[i] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    for bad in ["garbage", "mcp_at_", forged.as_str()] {
        let resp = refused(h.get("/mcp", Some(bad)));
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bad}");
        let p = bearer_params(&header(&resp, "www-authenticate"));
        assert_eq!(p["resource_metadata"], PRM_URL);
        assert_eq!(p["scope"], "todo:read todo:write");
        assert_eq!(p["error"], "invalid_token");
        assert!(!p["error_description"].is_empty());
        assert_eq!(p.len(), 4, "{p:?}");
        assert_eq!(error_code(&resp), "invalid_token");
        // The description never echoes the token.
        assert!(!header(&resp, "www-authenticate").contains(bad));
        assert!(!String::from_utf8_lossy(resp.body()).contains(bad));
    }
    assert!(h.call_api(&good).is_ok());
}

#[test]
fn a_malformed_authorization_header_is_invalid_request() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let good = h.tokens_for(&c, "alice").access;
    let two = format!("Bearer {good} {good}");
    let quoted = format!("Bearer \"{good}\"");
    for value in ["Bearer", "bearer", two.as_str(), "Bearer a b", quoted.as_str(), "Bearer abc,def", "Bearer ==="] {
        let resp = refused(send(&mut h, Method::GET, "/mcp", &[("authorization", value)], ""));
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{value}");
        assert_eq!(error_code(&resp), "invalid_request", "{value}");
        let p = bearer_params(&header(&resp, "www-authenticate"));
        assert_eq!(p["error"], "invalid_request", "{value}");
        assert_eq!(p["resource_metadata"], PRM_URL);
    }
    // Two Authorization headers, even both valid, are one too many.
    let auth = format!("Bearer {good}");
    let resp = refused(send(&mut h, Method::GET, "/mcp", &[("authorization", &auth), ("authorization", &auth)], ""));
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&resp), "invalid_request");
}

#[test]
fn the_scheme_is_case_insensitive() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let good = h.tokens_for(&c, "alice").access;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let value = format!("{scheme} {good}");
        let auth = authorized(send(&mut h, Method::GET, "/mcp", &[("authorization", &value)], ""));
        assert_eq!(auth.user_id, "alice");
    }
}

#[test]
fn tokens_are_accepted_in_the_header_only() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let good = h.tokens_for(&c, "alice").access;
    // OAuth 2.1 §5.2: never in the query string.
    let resp = refused(h.get(&format!("/mcp?access_token={good}"), None));
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let p = bearer_params(&header(&resp, "www-authenticate"));
    assert!(!p.contains_key("error"), "treated as no token at all: {p:?}");
    // Nor in a form body: the metadata advertises bearer_methods ["header"].
    let resp = refused(send(
        &mut h,
        Method::POST,
        "/mcp",
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("access_token={good}"),
    ));
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!bearer_params(&header(&resp, "www-authenticate")).contains_key("error"));
    // Another scheme is not a bearer token either.
    let resp = refused(send(&mut h, Method::GET, "/mcp", &[("authorization", "Basic YTpi")], ""));
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!bearer_params(&header(&resp, "www-authenticate")).contains_key("error"));
    // The same token in the header works.
    assert!(h.call_api(&good).is_ok());
}

#[test]
fn an_authorized_request_is_handed_over_unchanged() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let good = h.tokens_for(&c, "alice").access;
    let auth_header = format!("Bearer {good}");
    let out = send(
        &mut h,
        Method::POST,
        "/mcp/tools?x=1",
        &[("authorization", &auth_header), ("mcp-session-id", "s1")],
        "{\"jsonrpc\":\"2.0\"}",
    );
    let Outcome::Authorized { request, auth } = out else { panic!("expected Authorized") };
    assert_eq!(request.method(), Method::POST);
    assert_eq!(request.uri().to_string(), format!("{ISSUER}/mcp/tools?x=1"));
    assert_eq!(request.headers()["mcp-session-id"], "s1");
    assert_eq!(request.body().as_ref(), b"{\"jsonrpc\":\"2.0\"}");
    assert_eq!(auth.resource_index, 0);
    assert_eq!(auth.audience, RESOURCE);
    assert_eq!(auth.client_id, c.id);
}

#[test]
fn required_scopes_are_enforced_with_insufficient_scope() {
    let mut h = Harness::new(requiring_write());
    let c = h.register_client("none");
    let read_only = token_with_scope(&mut h, &c, "alice", "todo:read");
    let resp = refused(h.get("/mcp", Some(&read_only)));
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(&resp), "insufficient_scope");
    let p = bearer_params(&header(&resp, "www-authenticate"));
    assert_eq!(p["error"], "insufficient_scope");
    assert_eq!(p["scope"], "todo:write");
    assert_eq!(p["resource_metadata"], PRM_URL);

    let writer = token_with_scope(&mut h, &c, "bob", "todo:write");
    assert_eq!(authorized(h.get("/mcp", Some(&writer))).scope, ["todo:write"]);
    // todo:admin implies todo:write.
    let admin = token_with_scope(&mut h, &c, "carol", "todo:admin");
    assert_eq!(authorized(h.get("/mcp/x", Some(&admin))).user_id, "carol");
}

#[test]
fn require_scopes_follows_the_implication_hierarchy() {
    let mut h = Harness::new(
        builder()
            .scopes_supported(["todo:read", "todo:write", "todo:admin"])
            .scope_implies("todo:admin", ["todo:write"]),
    );
    let c = h.register_client("none");
    let mut auth_for = |user: &str, scope: &str| {
        let t = token_with_scope(&mut h, &c, user, scope);
        authorized(h.get("/mcp", Some(&t)))
    };
    let write = auth_for("alice", "todo:write");
    let read = auth_for("bob", "todo:read");
    let admin = auth_for("carol", "todo:admin");

    assert!(h.provider.require_scopes(&write, &["todo:read"]).is_none());
    assert!(h.provider.require_scopes(&write, &["todo:read", "todo:write"]).is_none());
    assert!(h.provider.require_scopes(&write, &[]).is_none());
    assert!(h.provider.require_scopes(&read, &["todo:read"]).is_none());
    // Transitive: admin ⇒ write ⇒ read.
    assert!(h.provider.require_scopes(&admin, &["todo:read"]).is_none());

    let resp = h.provider.require_scopes(&read, &["todo:write"]).expect("read does not imply write");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(&resp), "insufficient_scope");
    assert_eq!(
        bearer_params(&header(&resp, "www-authenticate")),
        params(&[
            ("resource_metadata", PRM_URL),
            ("scope", "todo:write"),
            ("error", "insufficient_scope"),
            ("error_description", json(&resp)["error_description"].as_str().unwrap()),
        ])
    );
    // Implication runs one way only.
    let resp = h.provider.require_scopes(&write, &["todo:admin"]).expect("write does not imply admin");
    assert_eq!(bearer_params(&header(&resp, "www-authenticate"))["scope"], "todo:admin");
    assert!(h.provider.require_scopes(&read, &["todo:read", "todo:write"]).is_some());
}

#[test]
fn route_prefixes_match_on_segment_boundaries() {
    let mut h = Harness::default();
    for path in ["/mcp", "/mcp/", "/mcp/x", "/mcp/x/y", "/mcp?x=1"] {
        let resp = refused(h.get(path, None));
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    for path in ["/mcpx", "/mc", "/mcp.json", "/MCP", "/api/mcp", "/"] {
        assert!(matches!(h.get(path, None), Outcome::NotHandled(_)), "{path}");
    }
}

#[test]
fn custom_routes_replace_the_resource_path() {
    let mut h = Harness::new(
        ProviderBuilder::new(ISSUER).resource(ProtectedResource::new(RESOURCE).unwrap().routes(["/api", "/sse/"])),
    );
    for path in ["/api", "/api/v1", "/sse", "/sse/stream"] {
        let resp = refused(h.get(path, None));
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        // The challenge still names the resource's own metadata.
        assert!(header(&resp, "www-authenticate").contains(PRM_URL), "{path}");
    }
    for path in ["/mcp", "/apix", "/ssex"] {
        assert!(matches!(h.get(path, None), Outcome::NotHandled(_)), "{path}");
    }
}

#[test]
fn nested_resources_route_to_the_longest_prefix_and_audiences_do_not_mix() {
    let mut h = Harness::new(builder().resource(ProtectedResource::new("https://as.example.com/mcp/admin").unwrap()));
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice").access;
    assert!(h.call_api(&t).is_ok());
    assert_eq!(authorized(h.get("/mcp/administrator", Some(&t))).resource_index, 0);
    let resp = refused(h.get("/mcp/admin/x", Some(&t)));
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let p = bearer_params(&header(&resp, "www-authenticate"));
    assert_eq!(p["error"], "invalid_token");
    assert_eq!(p["resource_metadata"], "https://as.example.com/.well-known/oauth-protected-resource/mcp/admin");
}

#[test]
fn a_revoked_or_expired_token_is_invalid_token_with_one_round_trip() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let revoked = h.tokens_for(&c, "bob");
    assert!(h.call_api(&t.access).is_ok());
    assert_eq!(h.last_stats.round_trips, 1);
    assert!(h.call_api(&revoked.access).is_ok());
    let resp = h.post_form("/revoke", &format!("token={}&client_id={}", revoked.access, c.id), &[]);
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = h.call_api(&revoked.access).unwrap_err();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bearer_params(&header(&resp, "www-authenticate"))["error"], "invalid_token");
    assert!(h.call_api(&t.access).is_ok());

    h.advance(3_600);
    let resp = h.call_api(&t.access).unwrap_err();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bearer_params(&header(&resp, "www-authenticate"))["error"], "invalid_token");
    assert_eq!(h.last_stats.round_trips, 1);
}
