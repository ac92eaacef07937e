//! `oauth_core::redirect_uri::validate_for_registration` and `find_match`.
//!
//! Input: text; the first line is the requested URI, every further line a
//! registered one.
//!
//! Asserts, besides not panicking:
//! * `find_match` returns one of the registered URIs;
//! * a requested URI that is not an http(s) loopback URI matches only when
//!   it is registered exactly, byte for byte;
//! * a loopback match differs from its registered URI at most in the port
//!   (scheme, host, path and query agree);
//! * every registered URI matches itself;
//! * a URI valid without private-use schemes is valid with them, and
//!   nothing with a fragment, userinfo, whitespace or control characters is
//!   ever valid.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_core::redirect_uri::{find_match, validate_for_registration};
use oauth_core::resource::is_loopback_host;
use url::Url;

fn loopback(uri: &str) -> Option<Url> {
    let url = Url::parse(uri).ok()?;
    let is = matches!(url.scheme(), "http" | "https") && url.host().is_some_and(|h| is_loopback_host(&h));
    is.then_some(url)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let requested = lines.next().unwrap_or_default();
    let registered: Vec<String> = lines.map(str::to_owned).collect();

    for uri in registered.iter().map(String::as_str).chain([requested]) {
        let strict = validate_for_registration(uri, false);
        let lax = validate_for_registration(uri, true);
        if strict.is_ok() {
            assert!(lax.is_ok(), "{uri:?} valid only without private-use schemes");
        }
        if lax.is_ok() {
            assert!(!uri.contains('#'), "fragment accepted: {uri:?}");
            assert!(!uri.chars().any(|c| c.is_control() || c.is_whitespace()), "control accepted: {uri:?}");
            let url = Url::parse(uri).expect("a valid redirect URI parses");
            assert!(url.username().is_empty() && url.password().is_none(), "userinfo accepted: {uri:?}");
            assert!(uri.len() <= 2048);
        }
    }

    for r in &registered {
        assert_eq!(find_match(&registered, r), registered.iter().find(|x| *x == r).map(String::as_str));
    }

    match find_match(&registered, requested) {
        None => assert!(!registered.iter().any(|r| r == requested), "an exact registration did not match"),
        Some(m) => {
            assert!(registered.iter().any(|r| r == m), "matched something not registered");
            if m != requested {
                let req = loopback(requested).expect("a non-loopback URI matched inexactly");
                let reg = loopback(m).expect("matched a non-loopback registration inexactly");
                assert!(!requested.contains('#') && !requested.chars().any(|c| c.is_control() || c.is_whitespace()));
                assert_eq!(req.scheme(), reg.scheme());
                assert_eq!(req.host_str().map(str::to_ascii_lowercase), reg.host_str().map(str::to_ascii_lowercase));
                assert_eq!(req.path(), reg.path());
                assert_eq!(req.query(), reg.query());
                assert!(req.username().is_empty() && req.password().is_none());
            }
        }
    }
});
