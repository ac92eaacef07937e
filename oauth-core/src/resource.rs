//! Resource indicators (RFC 8707) and audience matching.
//!
//! A resource is an absolute URI. Two spellings name the same resource when
//! they agree after the normalisation every URL parser applies (scheme and
//! host lower-cased, default port dropped, an empty path written `/`) and
//! their paths and queries are then *exactly* equal: `https://X.example/mcp`
//! equals `https://x.example/mcp`, but not `https://x.example/mcp/` or
//! `https://x.example/MCP`.

use std::net::Ipv4Addr;

use url::{Host, Url};

/// True for https URLs, and for http URLs whose host is loopback
/// (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_secure_or_loopback(url: &Url) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => url.host().is_some_and(|h| is_loopback_host(&h)),
        _ => false,
    }
}

/// True when `host` is a loopback name or address.
pub fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(a) => a.is_loopback(),
        Host::Ipv6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4: Ipv4Addr| v4.is_loopback()),
    }
}

/// Parse and normalise a resource indicator; `None` when it is not an
/// acceptable resource (relative, fragment, userinfo, not https/loopback).
pub fn canonical_resource(s: &str) -> Option<Url> {
    if s.is_empty() || s.len() > 2048 || s.chars().any(|c| c.is_control() || c == ' ') {
        return None;
    }
    let url = Url::parse(s).ok()?;
    if !is_secure_or_loopback(&url)
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    Some(url)
}

/// True when `candidate` names the resource `configured` (see module docs).
pub fn same_resource(candidate: &str, configured: &Url) -> bool {
    canonical_resource(candidate).is_some_and(|c| c.as_str() == configured.as_str())
}

/// True when `path` is `prefix` or lies below it on a segment boundary.
pub fn path_is_under(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return path.starts_with('/');
    }
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_and_host_fold_path_is_exact() {
        let r = canonical_resource("https://api.example.com/mcp").unwrap();
        assert!(same_resource("HTTPS://API.Example.COM/mcp", &r));
        assert!(same_resource("https://api.example.com:443/mcp", &r));
        assert!(!same_resource("https://api.example.com/MCP", &r));
        assert!(!same_resource("https://api.example.com/mcp/", &r));
        assert!(!same_resource("https://api.example.com/mcp#x", &r));
        assert!(!same_resource("https://other.example.com/mcp", &r));
        let root = canonical_resource("https://api.example.com").unwrap();
        assert!(same_resource("https://api.example.com/", &root));
    }

    #[test]
    fn only_https_or_loopback_http() {
        assert!(canonical_resource("http://localhost:3000/mcp").is_some());
        assert!(canonical_resource("http://127.0.0.1/mcp").is_some());
        assert!(canonical_resource("http://[::1]/mcp").is_some());
        assert!(canonical_resource("http://example.com/mcp").is_none());
        assert!(canonical_resource("https://u:p@example.com/").is_none());
        assert!(canonical_resource("urn:x").is_none());
        assert!(canonical_resource("/mcp").is_none());
    }

    #[test]
    fn route_prefixes_respect_segments() {
        assert!(path_is_under("/mcp", "/mcp"));
        assert!(path_is_under("/mcp/x", "/mcp"));
        assert!(!path_is_under("/mcpx", "/mcp"));
        assert!(path_is_under("/anything", "/"));
    }
}
