//! Scenario tests of the token endpoint: authorization-code exchange,
//! refresh under both rotation policies, token exchange, client
//! authentication, and the hostile cases.

mod common;

use common::*;
use http::StatusCode;
use oauth_core::{ErrorCode, HookCall, HookError, HookReply, Hooks, IssuanceDecision, IssuanceKind, RefreshPolicy};
use serde_json::json;

#[test]
fn code_flow_issues_tokens_that_open_the_resource_with_props() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let code = h.authorize(&c.id, "alice");
    assert!(code.starts_with("mcp_ac_"));
    let resp = h.exchange_code(&c, &code);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "cache-control"), "no-store");
    assert_eq!(header(&resp, "pragma"), "no-cache");
    let t = tokens(&resp);
    assert_eq!(t.body["token_type"], "Bearer");
    assert_eq!(t.body["expires_in"], 3600);
    assert_eq!(t.body["scope"], "todo:read todo:write");
    assert_eq!(t.body["resource"], RESOURCE);
    assert!(t.access.starts_with("mcp_at_") && t.refresh.as_deref().is_some_and(|r| r.starts_with("mcp_rt_")));
    // The token reveals nothing about the user.
    assert!(!t.access.contains("alice"));

    let auth = h.call_api(&t.access).unwrap();
    assert_eq!(auth.user_id, "alice");
    assert_eq!(auth.client_id, c.id);
    assert_eq!(auth.scope, ["todo:read", "todo:write"]);
    assert_eq!(auth.audience, RESOURCE);
    assert_eq!(auth.props["upstream"], "secret-upstream-token");
    assert_eq!(auth.expires_at.as_secs(), T0 + 3600);
    // One storage round trip per protected request.
    assert_eq!(h.last_stats.round_trips, 1);
}

#[test]
fn confidential_clients_authenticate_with_their_registered_method() {
    for method in ["client_secret_basic", "client_secret_post"] {
        let mut h = Harness::default();
        let c = h.register_client(method);
        let code = h.authorize(&c.id, "bob");
        assert_eq!(h.exchange_code(&c, &code).status(), StatusCode::OK, "{method}");
    }
}

#[test]
fn a_secret_client_using_another_method_is_refused() {
    let mut h = Harness::default();
    let c = h.register_client("client_secret_basic");
    let code = h.authorize(&c.id, "bob");
    let as_post = Client { id: c.id.clone(), secret: c.secret.clone(), method: "client_secret_post".into() };
    let resp = h.exchange_code(&as_post, &code);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&resp), "invalid_client");
    let as_public = Client { id: c.id.clone(), secret: None, method: "none".into() };
    assert_eq!(error_code(&h.exchange_code(&as_public, &code)), "invalid_client");
    // The code was not consumed by the failed attempts.
    assert_eq!(h.exchange_code(&c, &code).status(), StatusCode::OK);
}

#[test]
fn wrong_basic_secret_gets_a_basic_challenge() {
    let mut h = Harness::default();
    let c = h.register_client("client_secret_basic");
    let code = h.authorize(&c.id, "bob");
    let bad = Client { id: c.id.clone(), secret: Some("mcp_cs_wrong".into()), method: c.method.clone() };
    let resp = h.exchange_code(&bad, &code);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&resp), "invalid_client");
    assert!(header(&resp, "www-authenticate").starts_with("Basic"));
}

#[test]
fn two_client_authentication_methods_at_once_is_invalid_request() {
    let mut h = Harness::default();
    let c = h.register_client("client_secret_basic");
    let code = h.authorize(&c.id, "bob");
    let (_, headers) = Harness::client_auth(&c);
    let body = format!(
        "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&redirect_uri={}&client_id={}&client_secret={}",
        urlencode(REDIRECT),
        c.id,
        c.secret.clone().unwrap()
    );
    let resp = h.post_form("/token", &body, &[("authorization", headers[0].1.as_str())]);
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&resp), "invalid_request");
}

#[test]
fn pkce_is_enforced_and_failures_do_not_consume_the_code() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let code = h.authorize(&c.id, "alice");
    let base = format!("grant_type=authorization_code&code={code}&redirect_uri={}", urlencode(REDIRECT));

    let missing = h.token_request(&c, &base);
    assert_eq!((missing.status(), error_code(&missing).as_str()), (StatusCode::BAD_REQUEST, "invalid_request"));

    let wrong_verifier = "x".repeat(43);
    let wrong = h.token_request(&c, &format!("{base}&code_verifier={wrong_verifier}"));
    assert_eq!(error_code(&wrong), "invalid_grant");

    let malformed = h.token_request(&c, &format!("{base}&code_verifier=short"));
    assert_eq!(error_code(&malformed), "invalid_grant");

    assert_eq!(h.exchange_code(&c, &code).status(), StatusCode::OK);
}

#[test]
fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let code = h.authorize(&c.id, "alice");
    let first = tokens(&h.exchange_code(&c, &code));
    assert!(h.call_api(&first.access).is_ok());

    let replay = h.exchange_code(&c, &code);
    assert_eq!(error_code(&replay), "invalid_grant");
    assert!(json(&replay)["error_description"].as_str().unwrap().contains("already used"));
    // Everything the grant issued is dead.
    let refused = h.call_api(&first.access).unwrap_err();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&h.refresh(&c, first.refresh.as_deref().unwrap())), "invalid_grant");
}

#[test]
fn a_code_redeemed_by_another_client_is_refused() {
    let mut h = Harness::default();
    let owner = h.register_client("none");
    let thief = h.register_client("none");
    let code = h.authorize(&owner.id, "alice");
    assert_eq!(error_code(&h.exchange_code(&thief, &code)), "invalid_grant");
    assert_eq!(h.exchange_code(&owner, &code).status(), StatusCode::OK);
}

#[test]
fn redirect_uri_must_match_the_authorization_request() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let code = h.authorize(&c.id, "alice");
    let other = h.token_request(
        &c,
        &format!(
            "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&redirect_uri={}",
            urlencode("https://client.example/other")
        ),
    );
    assert_eq!(error_code(&other), "invalid_grant");
    // The request named redirect_uri, so the token request must repeat it.
    let absent = h.token_request(&c, &format!("grant_type=authorization_code&code={code}&code_verifier={VERIFIER}"));
    assert_eq!(error_code(&absent), "invalid_grant");
    assert_eq!(h.exchange_code(&c, &code).status(), StatusCode::OK);
}

#[test]
fn codes_expire_exactly_at_their_lifetime() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let code = h.authorize(&c.id, "alice");
    h.advance(599);
    assert_eq!(h.exchange_code(&c, &code).status(), StatusCode::OK);

    let code = h.authorize(&c.id, "carol");
    h.advance(600);
    assert_eq!(error_code(&h.exchange_code(&c, &code)), "invalid_grant");
}

#[test]
fn invalid_target_is_decided_before_the_code_is_consumed() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let code = h.authorize(&c.id, "alice");
    let body = format!(
        "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&redirect_uri={}&resource={}",
        urlencode(REDIRECT),
        urlencode("https://evil.example/mcp")
    );
    assert_eq!(error_code(&h.token_request(&c, &body)), "invalid_target");
    let two = format!("{body}&resource={}", urlencode(RESOURCE));
    assert_eq!(error_code(&h.token_request(&c, &two)), "invalid_target");
    // Same resource, different case in the host: accepted (RFC 8707 matching).
    let ok = format!(
        "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&redirect_uri={}&resource={}",
        urlencode(REDIRECT),
        urlencode("https://AS.example.com/mcp")
    );
    assert_eq!(h.token_request(&c, &ok).status(), StatusCode::OK);
}

#[test]
fn garbage_codes_and_grants_are_invalid_grant_not_errors() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    for code in ["x", "mcp_ac_", "mcp_ac_AAAA", &format!("mcp_ac_{}", "A".repeat(64)), "mcp_at_whatever", "%00%ff"] {
        let resp = h.exchange_code(&c, code);
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{code}");
        assert_eq!(error_code(&resp), "invalid_grant", "{code}");
    }
}

#[test]
fn token_endpoint_request_shape_errors() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let get = h.get("/token", None);
    let oauth_core::Outcome::Response(get) = get else { panic!() };
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(header(&get, "allow").contains("POST"));

    let json_body = h.post_json("/token", &json!({"grant_type": "authorization_code"}), &[]);
    assert_eq!(error_code(&json_body), "invalid_request");

    let missing = h.post_form("/token", &format!("client_id={}", c.id), &[]);
    assert_eq!(error_code(&missing), "invalid_request");

    let implicit = h.token_request(&c, "grant_type=password&username=a&password=b");
    assert_eq!(error_code(&implicit), "unsupported_grant_type");

    let cc = h.token_request(&c, "grant_type=client_credentials");
    assert_eq!(error_code(&cc), "unsupported_grant_type");

    let repeated = h.token_request(&c, "grant_type=authorization_code&grant_type=refresh_token");
    assert_eq!(error_code(&repeated), "invalid_request");

    let exchange = h.token_request(&c, "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=x");
    assert_eq!(error_code(&exchange), "unsupported_grant_type");

    let no_client = h.post_form("/token", "grant_type=authorization_code&code=x", &[]);
    assert_eq!((no_client.status(), error_code(&no_client).as_str()), (StatusCode::UNAUTHORIZED, "invalid_client"));

    let unknown_client =
        h.post_form("/token", "grant_type=authorization_code&code=x&code_verifier=y&client_id=nobody", &[]);
    assert_eq!(error_code(&unknown_client), "invalid_client");
    assert_eq!(header(&unknown_client, "cache-control"), "no-store");
}

#[test]
fn strict_rotation_single_use_and_reuse_revokes_the_grant() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t1 = h.tokens_for(&c, "alice");
    let r1 = t1.refresh.clone().unwrap();
    let t2 = tokens(&h.refresh(&c, &r1));
    let r2 = t2.refresh.clone().unwrap();
    assert_ne!(r1, r2);
    assert!(h.call_api(&t2.access).is_ok());
    // Both access tokens stay valid: rotation is about refresh tokens.
    assert!(h.call_api(&t1.access).is_ok());

    let reuse = h.refresh(&c, &r1);
    assert_eq!(error_code(&reuse), "invalid_grant");
    // Reuse means theft: the whole grant is gone.
    assert_eq!(error_code(&h.refresh(&c, &r2)), "invalid_grant");
    assert!(h.call_api(&t2.access).is_err());
    assert!(h.call_api(&t1.access).is_err());
}

#[test]
fn strict_reuse_of_an_older_generation_is_still_detected() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let r1 = t.refresh.unwrap();
    let r2 = tokens(&h.refresh(&c, &r1)).refresh.unwrap();
    let r3 = tokens(&h.refresh(&c, &r2)).refresh.unwrap();
    let r4 = tokens(&h.refresh(&c, &r3)).refresh.unwrap();
    assert_eq!(error_code(&h.refresh(&c, &r1)), "invalid_grant");
    assert_eq!(error_code(&h.refresh(&c, &r4)), "invalid_grant");
}

#[test]
fn grace_rotation_accepts_the_previous_token_until_the_new_one_is_used() {
    let mut h = Harness::new(builder().refresh_policy(RefreshPolicy::Grace));
    let c = h.register_client("none");
    let r1 = h.tokens_for(&c, "alice").refresh.unwrap();
    let r2 = tokens(&h.refresh(&c, &r1)).refresh.unwrap();
    // The response carrying r2 was "lost": r1 still works.
    let r3 = tokens(&h.refresh(&c, &r1)).refresh.unwrap();
    // Now r3 is used: r1 stops working, and the grant is not revoked.
    let r4 = tokens(&h.refresh(&c, &r3)).refresh.unwrap();
    assert_eq!(error_code(&h.refresh(&c, &r1)), "invalid_grant");
    assert_eq!(h.refresh(&c, &r4).status(), StatusCode::OK);
    let _ = r2;
}

#[test]
fn refresh_can_narrow_scope_but_not_widen_it() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let r = h.tokens_for(&c, "alice").refresh.unwrap();
    let narrowed = h.token_request(&c, &format!("grant_type=refresh_token&refresh_token={r}&scope=todo:read"));
    assert_eq!(narrowed.status(), StatusCode::OK);
    let t = tokens(&narrowed);
    assert_eq!(t.body["scope"], "todo:read");
    assert_eq!(h.call_api(&t.access).unwrap().scope, ["todo:read"]);

    let r = t.refresh.unwrap();
    let wider = h.token_request(&c, &format!("grant_type=refresh_token&refresh_token={r}&scope=admin"));
    assert_eq!(error_code(&wider), "invalid_scope");
    // The failed request did not rotate the token.
    assert_eq!(h.refresh(&c, &r).status(), StatusCode::OK);
}

#[test]
fn refresh_tokens_belong_to_their_client_and_kind() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let other = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let r = t.refresh.unwrap();
    assert_eq!(error_code(&h.refresh(&other, &r)), "invalid_grant");
    // An access token is not a refresh token, and vice versa.
    assert_eq!(error_code(&h.refresh(&c, &t.access)), "invalid_grant");
    assert_eq!(h.call_api(&r).unwrap_err().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.refresh(&c, &r).status(), StatusCode::OK);
}

#[test]
fn refresh_token_lifetime_and_idle_expiry() {
    let mut h = Harness::new(builder().refresh_token_ttl(Some(Some(86_400))).refresh_token_idle_ttl(Some(3_600)));
    let c = h.register_client("none");
    let mut r = h.tokens_for(&c, "alice").refresh.unwrap();
    // Used every 59 minutes, it slides...
    for _ in 0..3 {
        h.advance(3_540);
        let resp = h.refresh(&c, &r);
        assert_eq!(resp.status(), StatusCode::OK);
        r = tokens(&resp).refresh.unwrap();
    }
    // ...but idle for an hour, it dies.
    h.advance(3_600);
    assert_eq!(error_code(&h.refresh(&c, &r)), "invalid_grant");
}

#[test]
fn access_tokens_expire_exactly_at_expires_in() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    h.advance(3_599);
    assert!(h.call_api(&t.access).is_ok());
    h.advance(1);
    let refused = h.call_api(&t.access).unwrap_err();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&refused, "www-authenticate").contains("error=\"invalid_token\""));
}

#[test]
fn tampered_and_garbage_bearer_tokens_are_invalid_token() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let mut tampered = t.access.into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [tampered.as_str(), "mcp_at_x", "garbage", "mcp_rt_abc"] {
        let r = h.call_api(bad).unwrap_err();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{bad}");
        assert!(header(&r, "www-authenticate").contains("invalid_token"), "{bad}");
    }
}

#[test]
fn tokens_are_refused_at_another_resource() {
    let mut h =
        Harness::new(builder().resource(oauth_core::ProtectedResource::new("https://as.example.com/other").unwrap()));
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let oauth_core::Outcome::Response(r) = h.get("/other", Some(&t.access)) else { panic!("must be refused") };
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let www = header(&r, "www-authenticate");
    assert!(www.contains("invalid_token") && www.contains("Invalid audience"), "{www}");
    assert!(www.contains("resource_metadata=\"https://as.example.com/.well-known/oauth-protected-resource/other\""));
    assert!(h.call_api(&t.access).is_ok());
}

#[test]
fn issuance_hook_can_replace_props_add_token_props_and_narrow_scope() {
    let mut h = Harness::new(builder().hooks(hooks(true)));
    h.hook = Box::new(|call| match call {
        HookCall::TokenIssuance(ctx) => {
            assert_eq!(ctx.user_id, "alice");
            let upstream = ctx.props["upstream"].as_str().unwrap_or("").to_owned();
            let mut d = IssuanceDecision::unchanged()
                .with_access_token_props(json!({"kind": format!("{:?}", ctx.kind)}))
                .with_access_token_scope(vec!["todo:read".into()]);
            if ctx.kind == IssuanceKind::RefreshToken {
                d = d.with_new_props(json!({"upstream": format!("{upstream}-refreshed")})).with_access_token_ttl(120);
            }
            HookReply::TokenIssuance(Ok(d))
        }
        other => other.default_reply(),
    });
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let auth = h.call_api(&t.access).unwrap();
    assert_eq!(auth.scope, ["todo:read"]);
    assert_eq!(auth.token_props["kind"], "AuthorizationCode");
    assert_eq!(auth.props["upstream"], "secret-upstream-token");

    let t2 = tokens(&h.refresh(&c, &t.refresh.unwrap()));
    assert_eq!(t2.body["expires_in"], 120);
    let auth = h.call_api(&t2.access).unwrap();
    assert_eq!(auth.props["upstream"], "secret-upstream-token-refreshed");
    // The replaced props persist for the next refresh.
    let t3 = tokens(&h.refresh(&c, &t2.refresh.unwrap()));
    assert_eq!(h.call_api(&t3.access).unwrap().props["upstream"], "secret-upstream-token-refreshed-refreshed");
}

#[test]
fn issuance_hook_invalid_grant_revokes_the_grant() {
    let mut h = Harness::new(builder().hooks(hooks(true)));
    h.hook = Box::new(|call| match call {
        HookCall::TokenIssuance(ctx) if ctx.kind == IssuanceKind::RefreshToken => {
            HookReply::TokenIssuance(Err(HookError::new(ErrorCode::InvalidGrant, "upstream session ended")))
        }
        other => other.default_reply(),
    });
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let r = h.refresh(&c, t.refresh.as_deref().unwrap());
    assert_eq!(error_code(&r), "invalid_grant");
    assert_eq!(json(&r)["error_description"], "upstream session ended");
    assert!(h.call_api(&t.access).is_err());
}

#[test]
fn offline_access_gates_refresh_tokens_when_configured_and_never_reaches_the_resource() {
    let mut h = Harness::new(builder().refresh_requires_offline_access(true));
    let c = h.register_client("none");
    assert!(h.tokens_for(&c, "alice").refresh.is_none());

    let q = Harness::auth_query(&c.id).replace("scope=todo:read%20todo:write", "scope=todo:read%20offline_access");
    let req = h.parse(&q).unwrap();
    let done = h.complete(&req, oauth_core::Approval::new("alice", req.scope.clone(), json!({})));
    let code = query_param(&done.redirect_to, "code").unwrap();
    let t = tokens(&h.exchange_code(&c, &code));
    assert!(t.refresh.is_some());
    assert_eq!(t.body["scope"], "todo:read");
    assert_eq!(h.call_api(&t.access).unwrap().scope, ["todo:read"]);
}

#[test]
fn token_exchange_narrows_for_the_same_client_only() {
    let mut h = Harness::new(builder().token_exchange(true));
    let c = h.register(json!({
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"],
    }));
    let c = Client { id: json(&c)["client_id"].as_str().unwrap().into(), secret: None, method: "none".into() };
    let t = h.tokens_for(&c, "alice");
    let ex = |scope: &str| {
        format!(
            "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token={}&subject_token_type=urn:ietf:params:oauth:token-type:access_token{scope}",
            t.access
        )
    };
    let narrowed = h.token_request(&c, &ex("&scope=todo:read"));
    assert_eq!(narrowed.status(), StatusCode::OK, "{:?}", json(&narrowed));
    let n = tokens(&narrowed);
    assert!(n.refresh.is_none());
    assert_eq!(n.body["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token");
    assert_eq!(h.call_api(&n.access).unwrap().scope, ["todo:read"]);

    assert_eq!(error_code(&h.token_request(&c, &ex("&scope=admin"))), "invalid_scope");
    assert_eq!(error_code(&h.token_request(&c, &ex("&resource=https%3A%2F%2Fevil.example%2F"))), "invalid_target");
    let other = h.register_client("none");
    assert_eq!(error_code(&h.token_request(&other, &ex(""))), "unauthorized_client");
}

#[test]
fn nothing_secret_is_stored_in_plaintext() {
    let mut h = Harness::default();
    let c = h.register_client("client_secret_post");
    let code = h.authorize(&c.id, "alice");
    let t = tokens(&h.exchange_code(&c, &code));
    let secrets = [
        code.as_str(),
        t.access.as_str(),
        t.refresh.as_deref().unwrap(),
        c.secret.as_deref().unwrap(),
        "secret-upstream-token",
    ];
    for (key, value) in h.store.raw_values() {
        let text = String::from_utf8_lossy(value);
        for s in secrets {
            assert!(!text.contains(s) && !key.contains(s), "{key} holds a secret");
        }
    }
}

#[test]
fn round_trips_per_flow_stay_small() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let code = h.authorize(&c.id, "alice");
    let t = tokens(&h.exchange_code(&c, &code));
    assert_eq!(h.last_stats.round_trips, 2, "code exchange");
    h.refresh(&c, t.refresh.as_deref().unwrap());
    assert_eq!(h.last_stats.round_trips, 2, "refresh");
}

fn hooks(issuance: bool) -> Hooks {
    let mut h = Hooks::default();
    h.token_issuance = issuance;
    h
}
