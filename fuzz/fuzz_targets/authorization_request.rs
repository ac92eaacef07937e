//! Arbitrary query strings through `Provider::parse_authorization_request`,
//! with the fixture's clients registered.
//!
//! Input: the query string, with the fixture's placeholders (`$PUB`,
//! `$REDIRECT`, `$CHALLENGE`, ...). Bytes a URI cannot hold are
//! percent-encoded first, so every input reaches the parser.
//!
//! Asserts, besides not panicking:
//! * an accepted request names a registered client, a redirect URI that
//!   `find_match` accepts for it, a valid S256 challenge, the configured
//!   resource and only catalogued scopes, and completing it redirects to a
//!   registered URI with a code;
//! * an error delivered by redirect goes to a registered URI (the endpoint is
//!   never an open redirector), and carries `error` and `iss`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_core::AuthorizationError;
use oauth_core::pkce::is_valid_s256_challenge;
use oauth_core::redirect_uri::find_match;
use oauth_core_fuzz::{Fixture, ISSUER, RESOURCE, form_values, query_param, targets_registered};

/// Characters kept as they are; everything else is percent-encoded.
fn keep(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)
}

fuzz_target!(|data: &[u8]| {
    let fx = Fixture::get();
    let expanded = fx.expand(data);
    let mut query = String::with_capacity(expanded.len());
    for &b in &expanded {
        if keep(b) {
            query.push(char::from(b));
        } else {
            query.push_str(&format!("%{b:02X}"));
        }
    }
    let Ok(uri) = format!("{ISSUER}/authorize?{query}").parse::<http::Uri>() else {
        return;
    };
    let mut w = fx.world();
    match w.parse(&uri) {
        Ok(req) => {
            let client = fx.client(&req.client_id).expect("accepted an unknown client");
            assert!(find_match(&client.redirect_uris, &req.redirect_uri).is_some(), "unregistered redirect accepted");
            assert!(is_valid_s256_challenge(&req.code_challenge));
            assert_eq!(req.resource, RESOURCE);
            let catalogue = ["todo:read", "todo:write", "offline_access"];
            assert!(req.scope.iter().all(|s| catalogue.contains(&s.as_str())), "uncatalogued scope {:?}", req.scope);
            let done = w.complete(&req, "fuzz-user").expect("a validated request completes");
            assert!(targets_registered(&done.redirect_to, &client.redirect_uris), "{}", done.redirect_to);
            assert!(query_param(&done.redirect_to, "code").is_some_and(|c| c.starts_with("mcp_ac_")));
            assert_eq!(query_param(&done.redirect_to, "iss").as_deref(), Some(ISSUER));
            assert_eq!(query_param(&done.redirect_to, "state"), req.state);
        }
        Err(AuthorizationError::Redirect { location, error }) => {
            let client_id = form_values(query.as_bytes(), "client_id").into_iter().next().unwrap_or_default();
            let client = fx.client(&client_id).expect("redirected for an unknown client");
            assert!(targets_registered(&location, &client.redirect_uris), "open redirect to {location}");
            assert_eq!(query_param(&location, "error").as_deref(), Some(error.code.as_str()));
            assert_eq!(query_param(&location, "iss").as_deref(), Some(ISSUER));
            assert!(query_param(&location, "code").is_none());
        }
        Err(e) => {
            let status = e.error().status.as_u16();
            assert!((400..600).contains(&status));
            // The error page response must be buildable.
            let _ = e.into_response();
        }
    }
});
