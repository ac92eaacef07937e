//! Arbitrary form bodies and headers POSTed to the token endpoint, against
//! the fixture (a pending code, a redeemed code, a rotated refresh chain,
//! live access tokens, three clients).
//!
//! Input: header lines (`name: value`), a blank line, then the body. Without
//! a blank line the whole input is the body and the content type is
//! `application/x-www-form-urlencoded`. Placeholders (`$PUB`, `$CODE`,
//! `$VERIFIER`, `$RT`, `$OLDRT`, `$AT`, `$BASIC`, ...) are replaced first.
//!
//! Asserts, besides not panicking and every response passing
//! `check_response`:
//! * tokens are issued only for the genuine pending code with its verifier,
//!   the current refresh token, or a live access token (token exchange);
//! * an issued access token opens the resource;
//! * a 200 without tokens is a revocation (a `token` and no `grant_type`)
//!   and has an empty body.

#![no_main]

use bytes::Bytes;
use http::Request;
use libfuzzer_sys::fuzz_target;
use oauth_core::Outcome;
use oauth_core_fuzz::{
    Fixture, ISSUER, TOKEN_EXCHANGE, VERIFIER, build_request, check_response, form_values, json_body, split_request,
};

fn single(body: &[u8], name: &str) -> Option<String> {
    let mut v = form_values(body, name);
    if v.len() == 1 { v.pop() } else { None }
}

fuzz_target!(|data: &[u8]| {
    let fx = Fixture::get();
    let expanded = fx.expand(data);
    let (headers, body) = split_request(&expanded);
    let headers =
        headers.unwrap_or_else(|| vec![("content-type".into(), b"application/x-www-form-urlencoded".to_vec())]);
    let Some(req) = build_request("POST", "/token", &headers, body.to_vec()) else {
        return;
    };
    let mut w = fx.world();
    let resp = w.respond(req);
    check_response(&resp, &expanded, &fx.secrets());
    let status = resp.status().as_u16();
    assert!(status == 200 || status >= 400, "unexpected status {status}");
    if status != 200 {
        return;
    }
    let json = json_body(&resp);
    let Some(access) = json["access_token"].as_str() else {
        assert!(resp.body().is_empty(), "a 200 without tokens has a body");
        assert!(single(body, "grant_type").is_none() && single(body, "token").is_some(), "200 without tokens");
        return;
    };
    match single(body, "grant_type").as_deref() {
        Some("authorization_code") => {
            assert_eq!(single(body, "code").as_deref(), Some(fx.code.as_str()), "tokens for a wrong code");
            assert_eq!(single(body, "code_verifier").as_deref(), Some(VERIFIER), "tokens for a wrong verifier");
        }
        Some("refresh_token") => {
            assert_eq!(single(body, "refresh_token").as_deref(), Some(fx.refresh.as_str()), "tokens for a wrong RT");
        }
        Some(TOKEN_EXCHANGE) => {
            let subject = single(body, "subject_token").unwrap_or_default();
            assert!([&fx.access, &fx.old_access, &fx.post_access].contains(&&subject), "exchange of a non-token");
        }
        other => panic!("tokens for grant_type {other:?}"),
    }
    let api = Request::get(format!("{ISSUER}/mcp"))
        .header("authorization", format!("Bearer {access}"))
        .body(Bytes::new())
        .unwrap();
    assert!(matches!(w.send(api), Outcome::Authorized { .. }), "an issued access token does not work");
});
