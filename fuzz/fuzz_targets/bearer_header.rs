//! Arbitrary `Authorization` header values sent to the protected resource.
//!
//! Input: one header value per line (several lines send the header several
//! times), with the fixture's placeholders (`$AT`, `$OLDAT`, `$RT`, ...).
//!
//! Asserts, besides not panicking and every response passing
//! `check_response`:
//! * a request is authorized only when it carries exactly one
//!   `Authorization` header, of the Bearer scheme, whose token is one of the
//!   fixture's live access tokens, and the context names that token's user;
//! * every refusal is 400, 401 or 403 with a `WWW-Authenticate: Bearer`
//!   challenge pointing at the resource metadata.

#![no_main]

use bytes::Bytes;
use http::Request;
use http::header::{AUTHORIZATION, HeaderValue};
use libfuzzer_sys::fuzz_target;
use oauth_core::Outcome;
use oauth_core_fuzz::{Fixture, ISSUER, RESOURCE, check_response};

fuzz_target!(|data: &[u8]| {
    let fx = Fixture::get();
    let expanded = fx.expand(data);
    let mut values = Vec::new();
    for line in expanded.split(|b| *b == b'\n') {
        let Ok(v) = HeaderValue::from_bytes(line) else { return };
        values.push(v);
    }
    let mut req = Request::get(format!("{ISSUER}/mcp")).body(Bytes::new()).unwrap();
    for v in &values {
        req.headers_mut().append(AUTHORIZATION, v.clone());
    }
    let mut w = fx.world();
    match w.send(req) {
        Outcome::Authorized { auth, .. } => {
            let [value] = values.as_slice() else { panic!("authorized with {} headers", values.len()) };
            let text = value.to_str().expect("authorized a non-ASCII header");
            let (scheme, token) = text.split_once(' ').expect("authorized without a scheme");
            assert!(scheme.eq_ignore_ascii_case("bearer"), "authorized scheme {scheme:?}");
            let token = token.trim_start_matches(' ');
            let user = if token == fx.access || token == fx.old_access {
                "alice"
            } else if token == fx.post_access {
                "carol"
            } else {
                panic!("authorized a token that was never issued");
            };
            assert_eq!(auth.user_id, user);
            assert_eq!(auth.audience, RESOURCE);
        }
        Outcome::Response(resp) => {
            check_response(&resp, &expanded, &fx.secrets());
            let status = resp.status().as_u16();
            assert!(matches!(status, 400 | 401 | 403), "unexpected status {status}");
            let challenge = resp.headers().get("www-authenticate").expect("refusal without a challenge");
            let challenge = challenge.to_str().unwrap();
            assert!(challenge.starts_with("Bearer ") && challenge.contains("resource_metadata="), "{challenge}");
        }
        Outcome::NotHandled(_) => panic!("the protected route was not handled"),
        _ => panic!("unknown outcome"),
    }
});
