//! Redirect URIs: what may be registered, and how a request's URI is matched
//! against the registered ones.
//!
//! Registration accepts `https` URIs, `http` URIs on loopback hosts, and —
//! only when the provider opts in — private-use schemes for native apps
//! (RFC 8252 §7.1). Schemes that execute or read locally (`javascript`,
//! `data`, `file`, …), fragments, userinfo, whitespace and control
//! characters are always refused.
//!
//! Matching is exact string comparison (OAuth 2.1 §2.3.1), with one
//! exception from RFC 8252 §7.3: for loopback redirects the port may differ,
//! because native apps bind an ephemeral port at run time.

use url::{Host, Url};

use crate::resource::is_loopback_host;

/// Schemes that are never acceptable redirect targets.
const FORBIDDEN_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "vbscript",
    "file",
    "blob",
    "about",
    "mailto",
    "ftp",
    "ws",
    "wss",
    "filesystem",
    "view-source",
    "chrome",
    "chrome-extension",
    "jar",
    "tel",
    "sms",
];

/// Why a redirect URI cannot be registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectUriProblem {
    /// Not an absolute URI, or over 2 KiB.
    Malformed,
    /// Contains whitespace or control characters.
    ControlCharacters,
    /// Has a fragment (RFC 6749 §3.1.2).
    Fragment,
    /// Has userinfo (`user:pass@`).
    Userinfo,
    /// A scheme that is never allowed.
    ForbiddenScheme,
    /// `http` on a non-loopback host.
    InsecureHttp,
    /// A private-use scheme, and the provider does not allow them.
    PrivateUseSchemeNotAllowed,
}

impl RedirectUriProblem {
    /// Text for the client developer.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Malformed => "redirect URI is not a valid absolute URI",
            Self::ControlCharacters => "redirect URI contains whitespace or control characters",
            Self::Fragment => "redirect URI must not contain a fragment",
            Self::Userinfo => "redirect URI must not contain userinfo",
            Self::ForbiddenScheme => "redirect URI scheme is not allowed",
            Self::InsecureHttp => "http redirect URIs are allowed only on loopback hosts",
            Self::PrivateUseSchemeNotAllowed => "private-use URI schemes are not allowed by this server",
        }
    }
}

/// Check a redirect URI for registration.
pub fn validate_for_registration(uri: &str, allow_private_use: bool) -> Result<(), RedirectUriProblem> {
    if uri.len() > 2048 {
        return Err(RedirectUriProblem::Malformed);
    }
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(RedirectUriProblem::ControlCharacters);
    }
    // The raw text is checked as well as the parse: a parser normalises away
    // things (backslashes, case) that a browser on the other side may not.
    if uri.contains('#') {
        return Err(RedirectUriProblem::Fragment);
    }
    if uri.contains('\\') {
        return Err(RedirectUriProblem::Malformed);
    }
    let url = Url::parse(uri).map_err(|_| RedirectUriProblem::Malformed)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RedirectUriProblem::Userinfo);
    }
    let scheme = url.scheme();
    if FORBIDDEN_SCHEMES.contains(&scheme) {
        return Err(RedirectUriProblem::ForbiddenScheme);
    }
    match scheme {
        "https" => {
            if url.host().is_none() {
                return Err(RedirectUriProblem::Malformed);
            }
            Ok(())
        }
        "http" => match url.host() {
            Some(h) if is_loopback_host(&h) => Ok(()),
            _ => Err(RedirectUriProblem::InsecureHttp),
        },
        _ if allow_private_use => Ok(()),
        _ => Err(RedirectUriProblem::PrivateUseSchemeNotAllowed),
    }
}

/// Find the registered redirect URI that `requested` matches: exactly, or
/// under the loopback any-port rule. Returns the requested URI as the one
/// to redirect to.
pub fn find_match<'a>(registered: &'a [String], requested: &str) -> Option<&'a str> {
    if let Some(exact) = registered.iter().find(|r| r.as_str() == requested) {
        return Some(exact);
    }
    let req = loopback_parts(requested)?;
    registered.iter().find(|r| loopback_parts(r).is_some_and(|reg| reg == req)).map(String::as_str)
}

/// Scheme, host, path and query of an http(s) loopback URI: everything but
/// the port.
fn loopback_parts(uri: &str) -> Option<(String, String, String, Option<String>)> {
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) || uri.contains('#') {
        return None;
    }
    let url = Url::parse(uri).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let host = url.host()?;
    if !is_loopback_host(&host) {
        return None;
    }
    let host = match host {
        Host::Domain(d) => d.to_ascii_lowercase(),
        other => other.to_string(),
    };
    Some((url.scheme().to_owned(), host, url.path().to_owned(), url.query().map(str::to_owned)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_rules() {
        assert!(validate_for_registration("https://app.example/cb", false).is_ok());
        assert!(validate_for_registration("http://127.0.0.1:3000/cb", false).is_ok());
        assert!(validate_for_registration("http://localhost/cb", false).is_ok());
        assert!(validate_for_registration("http://[::1]:9/cb", false).is_ok());
        assert_eq!(validate_for_registration("http://app.example/cb", false), Err(RedirectUriProblem::InsecureHttp));
        assert_eq!(validate_for_registration("javascript:alert(1)", true), Err(RedirectUriProblem::ForbiddenScheme));
        assert_eq!(validate_for_registration("JavaScript:alert(1)", true), Err(RedirectUriProblem::ForbiddenScheme));
        assert_eq!(validate_for_registration("data:text/html,x", true), Err(RedirectUriProblem::ForbiddenScheme));
        assert_eq!(validate_for_registration("file:///etc/passwd", true), Err(RedirectUriProblem::ForbiddenScheme));
        assert_eq!(validate_for_registration("https://a.example/cb#x", false), Err(RedirectUriProblem::Fragment));
        assert_eq!(validate_for_registration("https://u:p@a.example/cb", false), Err(RedirectUriProblem::Userinfo));
        assert_eq!(
            validate_for_registration("https://a.example/c b", false),
            Err(RedirectUriProblem::ControlCharacters)
        );
        assert_eq!(
            validate_for_registration("https://a.example/\tcb", false),
            Err(RedirectUriProblem::ControlCharacters)
        );
        assert_eq!(validate_for_registration("/relative", false), Err(RedirectUriProblem::Malformed));
        assert_eq!(
            validate_for_registration("cursor://cb", false),
            Err(RedirectUriProblem::PrivateUseSchemeNotAllowed)
        );
        assert!(validate_for_registration("com.example.app:/cb", true).is_ok());
    }

    #[test]
    fn matching_is_exact_except_loopback_port() {
        let reg = vec![
            "https://a.example/cb".to_owned(),
            "http://127.0.0.1/cb".to_owned(),
            "http://localhost:1/x?q=1".to_owned(),
        ];
        assert_eq!(find_match(&reg, "https://a.example/cb"), Some("https://a.example/cb"));
        assert_eq!(find_match(&reg, "https://a.example/cb/"), None);
        assert_eq!(find_match(&reg, "https://A.example/cb"), None);
        assert_eq!(find_match(&reg, "https://a.example:8443/cb"), None);
        assert_eq!(find_match(&reg, "http://127.0.0.1:51234/cb"), Some("http://127.0.0.1/cb"));
        assert_eq!(find_match(&reg, "http://127.0.0.1:51234/other"), None);
        assert_eq!(find_match(&reg, "http://localhost:9/x?q=1"), Some("http://localhost:1/x?q=1"));
        assert_eq!(find_match(&reg, "http://localhost:9/x?q=2"), None);
        assert_eq!(find_match(&reg, "http://127.0.0.1:5/cb#f"), None);
    }
}
