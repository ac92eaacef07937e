//! Arbitrary bytes POSTed to the registration endpoint as
//! `application/json`.
//!
//! Asserts, besides not panicking and every response passing
//! `check_response`:
//! * the answer is 201, 400 or 413;
//! * a 201 carries a client id, registers only redirect URIs the request
//!   listed and `validate_for_registration` accepts, and a secret exactly
//!   when the client is confidential;
//! * a registered client that may use the authorization-code grant can
//!   start an authorization request at its first redirect URI.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_core::redirect_uri::validate_for_registration;
use oauth_core_fuzz::{ISSUER, World, auth_query, builder, check_response, json_body};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut w = World::new(builder().build().unwrap(), 3);
    let resp = w.post("/register", "application/json", data.to_vec(), &[]);
    check_response(&resp, data, &[]);
    let status = resp.status().as_u16();
    assert!(matches!(status, 201 | 400 | 413), "unexpected status {status}");
    if status != 201 {
        return;
    }
    let body = json_body(&resp);
    let client_id = body["client_id"].as_str().expect("client_id");
    assert!(!client_id.is_empty());
    let requested: Value = serde_json::from_slice(data).expect("201 for a body that is not JSON");
    let asked: Vec<&str> =
        requested["redirect_uris"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let registered: Vec<&str> =
        body["redirect_uris"].as_array().expect("redirect_uris").iter().map(|v| v.as_str().unwrap()).collect();
    for uri in &registered {
        assert!(asked.contains(uri), "registered {uri:?}, which was not asked for");
        assert!(validate_for_registration(uri, false).is_ok(), "registered a refused URI {uri:?}");
    }
    let method = body["token_endpoint_auth_method"].as_str().expect("token_endpoint_auth_method");
    assert_eq!(body["client_secret"].is_string(), method != "none", "secret and method disagree");
    let code_grant = body["grant_types"].as_array().is_some_and(|g| g.iter().any(|g| g == "authorization_code"));
    if let (true, Some(first)) = (code_grant, registered.first()) {
        let uri: http::Uri = format!("{ISSUER}/authorize?{}", auth_query(client_id, first)).parse().unwrap();
        // The request asks for todo:read todo:write; a client registered
        // with a narrower scope is refused by redirect, which is fine. What
        // must not happen is an invalid request for a valid registration.
        match w.parse(&uri) {
            Ok(_) | Err(oauth_core::AuthorizationError::Redirect { .. }) => {}
            Err(e) => panic!("a registered client cannot authorize: {e:?}"),
        }
    }
});
