//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document,
//! MCP 2026-07-28 "Client Registration").
//!
//! A client may name itself by an https URL that serves its metadata. This
//! module decides whether a `client_id` is such a URL and whether it is an
//! acceptable one, validates the document fetched from it, maps it onto the
//! same [`ClientRecord`] registered clients have, and caches it in storage
//! under `cimd/{sha256(url)}` so every backend shares the cache.
//!
//! The network half is the driver's ([`FetchRequest`]); what the core checks
//! and why is in `docs/cimd.md`.

use core::time::Duration;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::{Host, Url};

use crate::client::{self, ClientAuth, METHOD_NONE, METHOD_PRIVATE_KEY_JWT};
use crate::config::{Config, ConfigError, MIN_TTL_SECS};
use crate::crypto;
use crate::error::{ErrorCode, OAuthError, Reason};
use crate::fetch::{FetchError, FetchPurpose, FetchRequest, FetchResponse};
use crate::flow::{Input, fetch_result};
use crate::jose::{self, JwkSet};
use crate::records::{self, ClientRecord};
use crate::redirect_uri;
use crate::scope::parse_scope;
use crate::storage::{Condition, Entry, StorageOp, StorageRequest};
use crate::time::UnixTime;

/// Reason slugs. Each rule has its own, so an operator can tell from the
/// error hook exactly which one a client broke.
pub(crate) mod reasons {
    use crate::error::Reason;

    pub(crate) const URL_TOO_LONG: Reason = Reason::new("cimd_url_too_long");
    pub(crate) const URL_CHARACTERS: Reason = Reason::new("cimd_url_invalid_characters");
    pub(crate) const URL_NOT_HTTPS: Reason = Reason::new("cimd_url_not_https");
    pub(crate) const URL_NOT_CANONICAL: Reason = Reason::new("cimd_url_not_canonical");
    pub(crate) const URL_USERINFO: Reason = Reason::new("cimd_url_userinfo");
    pub(crate) const URL_FRAGMENT: Reason = Reason::new("cimd_url_fragment");
    pub(crate) const URL_IP_LITERAL: Reason = Reason::new("cimd_url_ip_literal");
    pub(crate) const URL_NO_PATH: Reason = Reason::new("cimd_url_no_path");
    pub(crate) const URL_DOT_SEGMENT: Reason = Reason::new("cimd_url_dot_segment");
    pub(crate) const HOST_NOT_ALLOWED: Reason = Reason::new("cimd_host_not_allowed");

    pub(crate) const FETCH_UNSUPPORTED: Reason = Reason::new("cimd_fetch_unsupported");
    pub(crate) const FETCH_FORBIDDEN_URL: Reason = Reason::new("cimd_fetch_forbidden_url");
    pub(crate) const FETCH_FORBIDDEN_ADDRESS: Reason = Reason::new("cimd_fetch_forbidden_address");
    pub(crate) const FETCH_RESOLVE: Reason = Reason::new("cimd_fetch_resolve_failed");
    pub(crate) const FETCH_CONNECT: Reason = Reason::new("cimd_fetch_connect_failed");
    pub(crate) const FETCH_TOO_LARGE: Reason = Reason::new("cimd_fetch_too_large");
    pub(crate) const FETCH_TIMEOUT: Reason = Reason::new("cimd_fetch_timeout");
    pub(crate) const FETCH_FAILED: Reason = Reason::new("cimd_fetch_failed");
    pub(crate) const FETCH_REDIRECT: Reason = Reason::new("cimd_fetch_redirect_refused");
    pub(crate) const FETCH_STATUS: Reason = Reason::new("cimd_fetch_status");
    pub(crate) const CONTENT_TYPE: Reason = Reason::new("cimd_content_type");

    pub(crate) const NOT_JSON: Reason = Reason::new("cimd_document_not_json");
    pub(crate) const INVALID: Reason = Reason::new("cimd_document_invalid");
    pub(crate) const CLIENT_ID_MISMATCH: Reason = Reason::new("cimd_client_id_mismatch");
    pub(crate) const CLIENT_NAME: Reason = Reason::new("cimd_client_name_missing");
    pub(crate) const REDIRECT_URIS: Reason = Reason::new("cimd_redirect_uris_missing");
    pub(crate) const CLIENT_SECRET: Reason = Reason::new("cimd_client_secret_present");
    pub(crate) const SHARED_SECRET_METHOD: Reason = Reason::new("cimd_shared_secret_auth_method");
    pub(crate) const METHOD_UNSUPPORTED: Reason = Reason::new("cimd_auth_method_unsupported");
    pub(crate) const SIGNING_ALG: Reason = Reason::new("cimd_signing_alg_unsupported");
    pub(crate) const KEYS_MISSING: Reason = Reason::new("cimd_keys_missing");
    pub(crate) const KEYS_CONFLICT: Reason = Reason::new("cimd_jwks_and_jwks_uri");
    pub(crate) const JWKS_URI: Reason = Reason::new("cimd_jwks_uri_invalid");
    pub(crate) const SCOPE: Reason = Reason::new("cimd_scope_invalid");

    pub(crate) const JWKS_FETCH_FORBIDDEN_URL: Reason = Reason::new("jwks_fetch_forbidden_url");
    pub(crate) const JWKS_FETCH_FORBIDDEN_ADDRESS: Reason = Reason::new("jwks_fetch_forbidden_address");
    pub(crate) const JWKS_FETCH_RESOLVE: Reason = Reason::new("jwks_fetch_resolve_failed");
    pub(crate) const JWKS_FETCH_CONNECT: Reason = Reason::new("jwks_fetch_connect_failed");
    pub(crate) const JWKS_FETCH_TOO_LARGE: Reason = Reason::new("jwks_fetch_too_large");
    pub(crate) const JWKS_FETCH_TIMEOUT: Reason = Reason::new("jwks_fetch_timeout");
    pub(crate) const JWKS_FETCH_FAILED: Reason = Reason::new("jwks_fetch_failed");
    pub(crate) const JWKS_FETCH_REDIRECT: Reason = Reason::new("jwks_fetch_redirect_refused");
    pub(crate) const JWKS_FETCH_STATUS: Reason = Reason::new("jwks_fetch_status");
    pub(crate) const JWKS_CONTENT_TYPE: Reason = Reason::new("jwks_content_type");
}

/// The longest client ID URL accepted. The draft sets no limit; the URL is
/// shown on consent screens and carried in every token request, and real
/// ones are a few dozen characters.
const MAX_URL_BYTES: usize = 1024;
/// Caps on display text from a document, as for registration.
const MAX_TEXT_CHARS: usize = 256;
const MAX_REDIRECT_URIS: usize = 32;

/// `Accept` for metadata documents and key sets.
const ACCEPT_JSON: &str = "application/json";
const ACCEPT_JWKS: &str = "application/jwk-set+json, application/json";

/// How the provider fetches and trusts client ID metadata documents. Built
/// with its defaults by [`CimdPolicy::default`] and passed to
/// [`ProviderBuilder::client_id_metadata_documents`](crate::ProviderBuilder::client_id_metadata_documents).
///
/// Defaults: every host allowed, documents up to 5 KiB (the draft's
/// recommendation), key sets up to 16 KiB, 5 s per fetch, cached as the
/// response's `Cache-Control` says, 1 hour when it says nothing, never more
/// than 24 hours.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CimdPolicy {
    /// Host patterns a client ID URL (and its `jwks_uri`) may use; empty
    /// allows every host. `example.com` matches that host only,
    /// `*.example.com` its subdomains only.
    pub allow_hosts: Vec<String>,
    /// Host patterns refused even when allowed.
    pub deny_hosts: Vec<String>,
    /// Cache lifetime when a response carries no `max-age`, in seconds.
    pub default_cache_ttl: u64,
    /// The longest a document or key set is cached, whatever it says.
    pub max_cache_ttl: u64,
    /// Largest metadata document read, in bytes.
    pub max_document_bytes: usize,
    /// Largest key set read from a `jwks_uri`, in bytes.
    pub max_jwks_bytes: usize,
    /// Total time one fetch may take.
    pub fetch_timeout: Duration,
}

impl Default for CimdPolicy {
    fn default() -> Self {
        Self {
            allow_hosts: Vec::new(),
            deny_hosts: Vec::new(),
            default_cache_ttl: 3600,
            max_cache_ttl: 86_400,
            max_document_bytes: 5 * 1024,
            max_jwks_bytes: 16 * 1024,
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

impl CimdPolicy {
    /// Only these host patterns (`host` or `*.domain`) may serve documents.
    #[must_use]
    pub fn allow_hosts<I: IntoIterator<Item = S>, S: Into<String>>(mut self, hosts: I) -> Self {
        self.allow_hosts = hosts.into_iter().map(Into::into).collect();
        self
    }

    /// These host patterns may never serve documents.
    #[must_use]
    pub fn deny_hosts<I: IntoIterator<Item = S>, S: Into<String>>(mut self, hosts: I) -> Self {
        self.deny_hosts = hosts.into_iter().map(Into::into).collect();
        self
    }

    /// Cache lifetime for responses without `max-age` (60 s to the maximum).
    #[must_use]
    pub fn default_cache_ttl(mut self, secs: u64) -> Self {
        self.default_cache_ttl = secs;
        self
    }

    /// Upper bound on any cache lifetime (60 s to 7 days).
    #[must_use]
    pub fn max_cache_ttl(mut self, secs: u64) -> Self {
        self.max_cache_ttl = secs;
        self
    }

    /// Largest document read (512 B to 64 KiB).
    #[must_use]
    pub fn max_document_bytes(mut self, bytes: usize) -> Self {
        self.max_document_bytes = bytes;
        self
    }

    /// Largest key set read (1 KiB to 256 KiB).
    #[must_use]
    pub fn max_jwks_bytes(mut self, bytes: usize) -> Self {
        self.max_jwks_bytes = bytes;
        self
    }

    /// Total time per fetch (100 ms to 30 s).
    #[must_use]
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Check the policy; host patterns are lower-cased.
    pub(crate) fn validated(mut self) -> Result<Self, ConfigError> {
        let bad = |what: &str| Err(ConfigError::InvalidCimdPolicy(what.to_owned()));
        if self.max_cache_ttl < MIN_TTL_SECS || self.max_cache_ttl > 7 * 86_400 {
            return bad("max_cache_ttl must be 60 s to 7 days");
        }
        if self.default_cache_ttl < MIN_TTL_SECS || self.default_cache_ttl > self.max_cache_ttl {
            return bad("default_cache_ttl must be 60 s to max_cache_ttl");
        }
        if !(512..=64 * 1024).contains(&self.max_document_bytes) {
            return bad("max_document_bytes must be 512 B to 64 KiB");
        }
        if !(1024..=256 * 1024).contains(&self.max_jwks_bytes) {
            return bad("max_jwks_bytes must be 1 KiB to 256 KiB");
        }
        if self.fetch_timeout < Duration::from_millis(100) || self.fetch_timeout > Duration::from_secs(30) {
            return bad("fetch_timeout must be 100 ms to 30 s");
        }
        for list in [&mut self.allow_hosts, &mut self.deny_hosts] {
            for pattern in list.iter_mut() {
                *pattern = pattern.to_ascii_lowercase();
                let name = pattern.strip_prefix("*.").unwrap_or(pattern);
                let valid = !name.is_empty()
                    && name.len() <= 253
                    && name.split('.').all(|l| {
                        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                if !valid {
                    return Err(ConfigError::InvalidCimdPolicy(format!("host pattern {pattern:?} is not a host name")));
                }
            }
        }
        Ok(self)
    }

    fn host_allowed(&self, host: &str) -> bool {
        let matches = |pattern: &String| match pattern.strip_prefix("*.") {
            Some(domain) => host.strip_suffix(domain).is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
            None => host == pattern,
        };
        !self.deny_hosts.iter().any(matches) && (self.allow_hosts.is_empty() || self.allow_hosts.iter().any(matches))
    }
}

/// Whether `client_id` is meant as a URL: it starts with `https:` or
/// `http:` in any case. Minted client ids are base64url and never contain a
/// colon, so nothing registered is mistaken for one.
pub(crate) fn is_url_client_id(client_id: &str) -> bool {
    let starts = |p: &str| client_id.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p));
    starts("https:") || starts("http:")
}

/// Check a client ID URL (or a `jwks_uri`) and parse it.
///
/// The string must already be the canonical serialisation of the URL it
/// parses to, so the URL fetched is byte for byte the `client_id` (the draft
/// compares them as plain strings). Dot segments are judged on the raw text,
/// before a parser can resolve them away.
pub(crate) fn check_url(url: &str, policy: &CimdPolicy) -> Result<Url, (Reason, &'static str)> {
    use reasons::*;
    if url.len() > MAX_URL_BYTES {
        return Err((URL_TOO_LONG, "The client_id URL is too long"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return Err((URL_CHARACTERS, "The client_id URL contains whitespace, control characters or backslashes"));
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return Err((URL_NOT_HTTPS, "The client_id URL must use https"));
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err((URL_USERINFO, "The client_id URL must not contain userinfo"));
    }
    if tail.contains('#') {
        return Err((URL_FRAGMENT, "The client_id URL must not contain a fragment"));
    }
    let raw_path = tail.split('?').next().unwrap_or("");
    if raw_path.is_empty() || raw_path == "/" {
        return Err((URL_NO_PATH, "The client_id URL must have a path"));
    }
    let is_dot = |seg: &str| {
        let decoded = seg.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    };
    if raw_path.split('/').any(is_dot) {
        return Err((URL_DOT_SEGMENT, "The client_id URL must not contain dot segments"));
    }
    let parsed = Url::parse(url).map_err(|_| (URL_NOT_CANONICAL, "The client_id URL is not a valid URL"))?;
    match parsed.host() {
        Some(Host::Domain(_)) => {}
        Some(Host::Ipv4(_) | Host::Ipv6(_)) => {
            return Err((URL_IP_LITERAL, "The client_id URL must name a host, not an IP address"));
        }
        None => return Err((URL_NOT_CANONICAL, "The client_id URL has no host")),
    }
    if parsed.as_str() != url {
        return Err((
            URL_NOT_CANONICAL,
            "The client_id URL is not in canonical form (lower-case host, no default port, normalised escapes)",
        ));
    }
    if !parsed.host_str().is_some_and(|h| policy.host_allowed(h)) {
        return Err((HOST_NOT_ALLOWED, "The client_id URL's host is not allowed by this server"));
    }
    Ok(parsed)
}

/// The storage key of a document's cache entry.
pub(crate) fn cache_key(url: &str) -> String {
    format!("cimd/{}", crypto::hex(&crypto::sha256(url.as_bytes())))
}

/// The cache entry: the document as fetched (re-validated on every read, so
/// a rule tightened by an upgrade or a configuration change applies to
/// cached documents too) and, for `jwks_uri` clients, the key set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct CimdRecord {
    pub(crate) url: String,
    pub(crate) document: String,
    pub(crate) fetched_at: UnixTime,
    #[serde(default)]
    pub(crate) jwks: Option<CachedJwks>,
}

/// A key set fetched from `jwks_uri`, with its own expiry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct CachedJwks {
    pub(crate) uri: String,
    pub(crate) keys: String,
    pub(crate) expires_at: UnixTime,
}

/// A validated document.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Document {
    pub(crate) client: ClientRecord,
    /// Inline keys (`jwks`).
    pub(crate) jwks: Option<JwkSet>,
    /// Remote keys (`jwks_uri`).
    pub(crate) jwks_uri: Option<String>,
}

type Problem = (Reason, &'static str);

fn text(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, Problem> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= MAX_TEXT_CHARS && !s.chars().any(char::is_control) => {
            Ok(Some(s.clone()))
        }
        Some(_) => Err((reasons::INVALID, "A text member of the client metadata document is malformed")),
    }
}

fn strings(obj: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, Problem> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or((reasons::INVALID, "An array member of the client metadata document holds a non-string")),
        Some(_) => Err((reasons::INVALID, "An array member of the client metadata document is not an array")),
    }
}

/// An optional https URL shown to users; anything else is dropped rather
/// than refused, since it only decorates the consent screen.
fn display_url(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, Problem> {
    Ok(text(obj, name)?.filter(|u| Url::parse(u).is_ok_and(|p| p.scheme() == "https")))
}

/// Validate a document fetched from (or cached for) `url`.
pub(crate) fn validate_document(
    body: &[u8],
    url: &str,
    cfg: &Config,
    policy: &CimdPolicy,
    fetched_at: UnixTime,
) -> Result<Document, Problem> {
    use reasons::*;
    let value: Value =
        serde_json::from_slice(body).map_err(|_| (NOT_JSON, "The client metadata document is not JSON"))?;
    let Value::Object(obj) = value else {
        return Err((NOT_JSON, "The client metadata document is not a JSON object"));
    };
    // Simple string comparison (draft §4, RFC 3986 §6.2.1).
    if obj.get("client_id").and_then(Value::as_str) != Some(url) {
        return Err((CLIENT_ID_MISMATCH, "The document's client_id does not match its URL"));
    }
    // No shared secrets: there is no way to agree on one (draft §4.1).
    if obj.contains_key("client_secret") || obj.contains_key("client_secret_expires_at") {
        return Err((CLIENT_SECRET, "The client metadata document must not contain a client secret"));
    }
    let client_name = match text(&obj, "client_name")? {
        Some(n) if !n.trim().is_empty() => n,
        _ => return Err((CLIENT_NAME, "The client metadata document must contain client_name")),
    };
    let method = match text(&obj, "token_endpoint_auth_method")?.as_deref() {
        None | Some(METHOD_NONE) => METHOD_NONE,
        Some(METHOD_PRIVATE_KEY_JWT) => METHOD_PRIVATE_KEY_JWT,
        Some(m) if m.starts_with("client_secret") || m.contains("secret") => {
            return Err((SHARED_SECRET_METHOD, "Client metadata documents cannot use shared-secret authentication"));
        }
        Some(_) => return Err((METHOD_UNSUPPORTED, "The document's token_endpoint_auth_method is not supported")),
    };
    if let Some(alg) = text(&obj, "token_endpoint_auth_signing_alg")? {
        if !jose::ALGORITHMS.contains(&alg.as_str()) {
            return Err((SIGNING_ALG, "The document's token_endpoint_auth_signing_alg must be RS256 or ES256"));
        }
    }
    // Keys: inline or by reference, never both (RFC 7591 §2), and only
    // public ones (draft §4.1). A key set is checked even when the method
    // does not use it: publishing a private key is a mistake to report.
    let jwks = match obj.get("jwks") {
        None | Some(Value::Null) => None,
        Some(v) => Some(JwkSet::from_value(v)?),
    };
    let jwks_uri = match text(&obj, "jwks_uri")? {
        None => None,
        Some(u) => {
            check_url(&u, policy).map_err(|_| (JWKS_URI, "The document's jwks_uri is not an acceptable https URL"))?;
            Some(u)
        }
    };
    if jwks.is_some() && jwks_uri.is_some() {
        return Err((KEYS_CONFLICT, "The document must not carry both jwks and jwks_uri"));
    }
    if method == METHOD_PRIVATE_KEY_JWT && jwks.is_none() && jwks_uri.is_none() {
        return Err((KEYS_MISSING, "private_key_jwt needs jwks or jwks_uri"));
    }

    // Redirect URIs: keep those this server accepts, as for registration;
    // one document serves many servers, so one refused URI (a private-use
    // scheme, say) does not sink the rest. At least one must remain.
    let redirect_uris: Vec<String> = strings(&obj, "redirect_uris")?
        .unwrap_or_default()
        .into_iter()
        .filter(|u| redirect_uri::validate_for_registration(u, cfg.allow_private_use_redirect_uris).is_ok())
        .take(MAX_REDIRECT_URIS)
        .collect();
    if redirect_uris.is_empty() {
        return Err((REDIRECT_URIS, "The client metadata document has no acceptable redirect_uris"));
    }
    // Grant and response types are negotiated: what this server does not
    // support is left out (RFC 7591 §3.2.1 lets the server replace values).
    let grant_types: Vec<String> = strings(&obj, "grant_types")?
        .unwrap_or_else(|| vec!["authorization_code".into()])
        .into_iter()
        .filter(|g| g == "authorization_code" || g == "refresh_token")
        .collect();
    let response_types: Vec<String> = strings(&obj, "response_types")?
        .unwrap_or_else(|| vec!["code".into()])
        .into_iter()
        .filter(|r| r == "code")
        .collect();
    let scope = match text(&obj, "scope")? {
        Some(s) if parse_scope(&s).is_none() => return Err((SCOPE, "The document's scope is malformed")),
        other => other,
    };
    let application_type = match text(&obj, "application_type")?.as_deref() {
        Some("native") => "native",
        _ => "web",
    };
    let contacts = strings(&obj, "contacts")?.unwrap_or_default().into_iter().take(16).collect();
    let client = ClientRecord {
        client_id: url.to_owned(),
        secret_hash: None,
        redirect_uris,
        token_endpoint_auth_method: method.to_owned(),
        grant_types,
        response_types,
        application_type: application_type.to_owned(),
        client_name: Some(client_name),
        client_uri: display_url(&obj, "client_uri")?,
        logo_uri: display_url(&obj, "logo_uri")?,
        policy_uri: display_url(&obj, "policy_uri")?,
        tos_uri: display_url(&obj, "tos_uri")?,
        contacts,
        scope,
        software_id: text(&obj, "software_id")?,
        software_version: text(&obj, "software_version")?,
        created_at: fetched_at,
        registration_ttl: None,
    };
    Ok(Document { client, jwks, jwks_uri })
}

/// How long a response may be cached, in seconds; `None` when it may not
/// be (RFC 9111 §5.2: `no-store`, `no-cache`, or a lifetime under the 60 s
/// every backend can hold). `s-maxage` wins over `max-age` because the
/// provider's cache is shared by all its users. Without either, the
/// policy's default applies; the policy's maximum always does.
pub(crate) fn cache_lifetime(resp: &FetchResponse, policy: &CimdPolicy) -> Option<u64> {
    let mut max_age = None;
    let mut s_maxage = None;
    for directive in resp.cache_control.as_deref().unwrap_or("").split(',') {
        let directive = directive.trim();
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive, None),
        };
        let seconds = || value.and_then(|v| v.parse::<u64>().ok());
        match name.to_ascii_lowercase().as_str() {
            "no-store" | "no-cache" => return None,
            // A malformed value makes the response stale (RFC 9111 §4.2.1).
            "max-age" => max_age = Some(seconds().unwrap_or(0)),
            "s-maxage" => s_maxage = Some(seconds().unwrap_or(0)),
            _ => {}
        }
    }
    let age = resp.age.as_deref().and_then(|a| a.trim().parse::<u64>().ok()).unwrap_or(0);
    let lifetime = match s_maxage.or(max_age) {
        Some(secs) => secs.saturating_sub(age),
        None => policy.default_cache_ttl,
    };
    let lifetime = lifetime.min(policy.max_cache_ttl);
    (lifetime >= MIN_TTL_SECS).then_some(lifetime)
}

/// The reason for a fetch that produced no usable response.
fn fetch_failure(purpose: FetchPurpose, error: &FetchError) -> OAuthError {
    use reasons::*;
    let jwks = purpose == FetchPurpose::ClientJwks;
    let (reason, description) = match error {
        FetchError::Unsupported => {
            // A deployment error, not the client's: the operator turned the
            // feature on with a driver that cannot fetch.
            return OAuthError::server_error(FETCH_UNSUPPORTED);
        }
        FetchError::ForbiddenUrl => {
            (if jwks { JWKS_FETCH_FORBIDDEN_URL } else { FETCH_FORBIDDEN_URL }, "is not allowed")
        }
        FetchError::ForbiddenAddress => (
            if jwks { JWKS_FETCH_FORBIDDEN_ADDRESS } else { FETCH_FORBIDDEN_ADDRESS },
            "resolves to an address this server does not fetch from",
        ),
        FetchError::Resolve => (if jwks { JWKS_FETCH_RESOLVE } else { FETCH_RESOLVE }, "does not resolve"),
        FetchError::Connect => (if jwks { JWKS_FETCH_CONNECT } else { FETCH_CONNECT }, "could not be reached"),
        FetchError::TooLarge => (if jwks { JWKS_FETCH_TOO_LARGE } else { FETCH_TOO_LARGE }, "is too large"),
        FetchError::Timeout => (if jwks { JWKS_FETCH_TIMEOUT } else { FETCH_TIMEOUT }, "did not answer in time"),
        _ => (if jwks { JWKS_FETCH_FAILED } else { FETCH_FAILED }, "could not be fetched"),
    };
    let what = if jwks { "The client's jwks_uri" } else { "The client metadata document" };
    invalid_client(reason, format!("{what} {description}"))
}

/// Check the response's status and media type.
fn check_response(purpose: FetchPurpose, resp: &FetchResponse) -> Result<(), OAuthError> {
    use reasons::*;
    let jwks = purpose == FetchPurpose::ClientJwks;
    let what = if jwks { "The client's jwks_uri" } else { "The client metadata document" };
    if (300..400).contains(&resp.status) {
        // Never followed (draft §5): a redirect could lead anywhere,
        // internal addresses included, and the client_id would no longer
        // be the URL the document came from.
        let reason = if jwks { JWKS_FETCH_REDIRECT } else { FETCH_REDIRECT };
        return Err(invalid_client(reason, format!("{what} answered with a redirect, which is not followed")));
    }
    if resp.status != 200 {
        let reason = if jwks { JWKS_FETCH_STATUS } else { FETCH_STATUS };
        return Err(invalid_client(reason, format!("{what} answered with status {}", resp.status)));
    }
    let media = resp.content_type.as_deref().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let json = media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"));
    if !json {
        let reason = if jwks { JWKS_CONTENT_TYPE } else { CONTENT_TYPE };
        return Err(invalid_client(reason, format!("{what} is not served as JSON")));
    }
    Ok(())
}

pub(crate) fn invalid_client(reason: Reason, description: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClient, reason, description)
}

/// A client resolved from its metadata document.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) document: Document,
    /// The keys to verify `private_key_jwt` with, when asked for.
    pub(crate) keys: Option<JwkSet>,
    /// Whether `keys` came from the network just now (no point refetching).
    pub(crate) keys_fresh: bool,
    /// A cache write for the caller to put in its next batch, if any. The
    /// cache is an optimisation: whether the write lands changes nothing.
    pub(crate) cache_write: Option<StorageOp>,
    /// What is cached, and until when, for a later rewrite of the keys.
    record: CimdRecord,
    expires_at: Option<UnixTime>,
}

/// A valid document waiting for its key set; `record` is what will be cached.
struct KeysWait {
    document: Document,
    record: CimdRecord,
    expires_at: Option<UnixTime>,
    document_fresh: bool,
}

/// What resolution needs next.
pub(crate) enum ResolveStep {
    Storage(StorageRequest),
    Fetch(FetchRequest),
    Done(Result<Box<Resolved>, OAuthError>),
}

/// Resolves a client ID URL to its client: from the cache entry the caller
/// read in its own first batch (so a warm cache costs no extra round trip),
/// else by fetching. Never caches a failure; a cached document that no
/// longer validates is refetched, and deleted if the refetch fails too.
pub(crate) struct Resolver {
    cfg: Arc<Config>,
    url: String,
    now: UnixTime,
    need_keys: bool,
    state: ResolveState,
}

enum ResolveState {
    /// Waiting for the document.
    Document {
        stale: bool,
    },
    /// Waiting for the key set.
    Keys(Box<KeysWait>),
    /// Waiting for the deletion of a stale entry, then failing.
    Evicting(OAuthError),
    Finished,
}

impl Resolver {
    /// Start from the reply to `Get cache_key(url)`. `need_keys` asks for
    /// the verification keys too (`private_key_jwt` at the token endpoint).
    pub(crate) fn start(
        cfg: Arc<Config>,
        url: &str,
        now: UnixTime,
        need_keys: bool,
        cached: Option<Entry>,
    ) -> (Self, ResolveStep) {
        let mut me = Self { cfg, url: url.to_owned(), now, need_keys, state: ResolveState::Finished };
        let step = me.load_cached(cached);
        (me, step)
    }

    fn policy(&self) -> Option<&CimdPolicy> {
        self.cfg.cimd.as_ref()
    }

    fn load_cached(&mut self, cached: Option<Entry>) -> ResolveStep {
        let Some(policy) = self.policy().cloned() else {
            return ResolveStep::Done(Err(OAuthError::server_error(reasons::FETCH_UNSUPPORTED)));
        };
        let Some(entry) = cached else {
            return self.fetch_document(false);
        };
        let record = records::decode::<CimdRecord>(&entry.value).filter(|r| r.url == self.url);
        let document = record
            .as_ref()
            .and_then(|r| validate_document(r.document.as_bytes(), &self.url, &self.cfg, &policy, r.fetched_at).ok());
        match (record, document) {
            (Some(record), Some(document)) => self.with_document(document, record, entry.expires_at, false, &policy),
            // Undecodable, or no longer valid under the current rules.
            _ => self.fetch_document(true),
        }
    }

    fn fetch_document(&mut self, stale: bool) -> ResolveStep {
        let Some(policy) = self.policy() else {
            return ResolveStep::Done(Err(OAuthError::server_error(reasons::FETCH_UNSUPPORTED)));
        };
        let request = FetchRequest {
            url: self.url.clone(),
            purpose: FetchPurpose::ClientMetadata,
            max_bytes: policy.max_document_bytes,
            timeout: policy.fetch_timeout,
            accept: ACCEPT_JSON,
        };
        self.state = ResolveState::Document { stale };
        ResolveStep::Fetch(request)
    }

    fn fetch_keys(
        &mut self,
        uri: String,
        document: Document,
        record: CimdRecord,
        expires_at: Option<UnixTime>,
        document_fresh: bool,
        policy: &CimdPolicy,
    ) -> ResolveStep {
        let request = FetchRequest {
            url: uri,
            purpose: FetchPurpose::ClientJwks,
            max_bytes: policy.max_jwks_bytes,
            timeout: policy.fetch_timeout,
            accept: ACCEPT_JWKS,
        };
        self.state = ResolveState::Keys(Box::new(KeysWait { document, record, expires_at, document_fresh }));
        ResolveStep::Fetch(request)
    }

    /// A valid document is in hand: get the keys if needed, then finish.
    fn with_document(
        &mut self,
        document: Document,
        record: CimdRecord,
        expires_at: Option<UnixTime>,
        document_fresh: bool,
        policy: &CimdPolicy,
    ) -> ResolveStep {
        // Keys only for a client that authenticates with them; another
        // presenting an assertion is refused by the caller for its method.
        if !self.need_keys || document.client.token_endpoint_auth_method != METHOD_PRIVATE_KEY_JWT {
            let cache_write = if document_fresh { self.cache_op(&record, expires_at) } else { None };
            return self.finish(Resolved { document, keys: None, keys_fresh: false, cache_write, record, expires_at });
        }
        if let Some(keys) = document.jwks.clone() {
            let cache_write = if document_fresh { self.cache_op(&record, expires_at) } else { None };
            return self.finish(Resolved {
                document,
                keys: Some(keys),
                keys_fresh: true,
                cache_write,
                record,
                expires_at,
            });
        }
        let Some(uri) = document.jwks_uri.clone() else {
            return self.finish_err(invalid_client(reasons::KEYS_MISSING, "private_key_jwt needs jwks or jwks_uri"));
        };
        let cached_keys = record
            .jwks
            .as_ref()
            .filter(|j| j.uri == uri && !self.now.has_reached(j.expires_at))
            .and_then(|j| serde_json::from_str::<Value>(&j.keys).ok())
            .and_then(|v| JwkSet::from_value(&v).ok());
        match cached_keys {
            Some(keys) => {
                let cache_write = if document_fresh { self.cache_op(&record, expires_at) } else { None };
                self.finish(Resolved { document, keys: Some(keys), keys_fresh: false, cache_write, record, expires_at })
            }
            None => self.fetch_keys(uri, document, record, expires_at, document_fresh, policy),
        }
    }

    /// Refetch the key set, bypassing the cache: the caller's signature
    /// check failed with cached keys, and the client may have rotated them.
    pub(crate) fn refetch_keys(&mut self, resolved: Box<Resolved>) -> ResolveStep {
        let Some(policy) = self.policy().cloned() else {
            return ResolveStep::Done(Err(OAuthError::server_error(reasons::FETCH_UNSUPPORTED)));
        };
        let Some(uri) = resolved.document.jwks_uri.clone() else {
            return ResolveStep::Done(Ok(resolved));
        };
        let resolved = *resolved;
        self.need_keys = true;
        self.fetch_keys(uri, resolved.document, resolved.record, resolved.expires_at, false, &policy)
    }

    fn cache_op(&self, record: &CimdRecord, expires_at: Option<UnixTime>) -> Option<StorageOp> {
        let expires_at = expires_at?;
        if record.document.is_empty() || self.now.until(expires_at) < MIN_TTL_SECS {
            return None;
        }
        Some(StorageOp::Put {
            key: cache_key(&self.url),
            value: records::encode(record)?,
            revision: 1,
            expires_at: Some(expires_at),
            condition: Condition::Always,
        })
    }

    fn finish(&mut self, resolved: Resolved) -> ResolveStep {
        self.state = ResolveState::Finished;
        ResolveStep::Done(Ok(Box::new(resolved)))
    }

    fn finish_err(&mut self, error: OAuthError) -> ResolveStep {
        self.state = ResolveState::Finished;
        ResolveStep::Done(Err(error))
    }

    /// Feed the answer to the last step.
    pub(crate) fn advance(&mut self, input: Input) -> ResolveStep {
        let Some(policy) = self.policy().cloned() else {
            return self.finish_err(OAuthError::server_error(reasons::FETCH_UNSUPPORTED));
        };
        match std::mem::replace(&mut self.state, ResolveState::Finished) {
            ResolveState::Document { stale } => {
                let outcome = fetch_result(input).and_then(|r| {
                    let resp = r.map_err(|e| fetch_failure(FetchPurpose::ClientMetadata, &e))?;
                    check_response(FetchPurpose::ClientMetadata, &resp)?;
                    if resp.body.len() > policy.max_document_bytes {
                        return Err(fetch_failure(FetchPurpose::ClientMetadata, &FetchError::TooLarge));
                    }
                    let document = validate_document(&resp.body, &self.url, &self.cfg, &policy, self.now)
                        .map_err(|(reason, description)| invalid_client(reason, description))?;
                    let text = String::from_utf8(resp.body.to_vec())
                        .map_err(|_| invalid_client(reasons::NOT_JSON, "The client metadata document is not UTF-8"))?;
                    Ok((document, text, cache_lifetime(&resp, &policy)))
                });
                match outcome {
                    Ok((document, text, lifetime)) => {
                        let record =
                            CimdRecord { url: self.url.clone(), document: text, fetched_at: self.now, jwks: None };
                        let expires_at = lifetime.map(|t| self.now.plus(t));
                        self.with_document(document, record, expires_at, true, &policy)
                    }
                    Err(error) if stale && error.code != ErrorCode::ServerError => {
                        self.state = ResolveState::Evicting(error);
                        ResolveStep::Storage(StorageRequest {
                            now: self.now,
                            ops: vec![StorageOp::Delete { key: cache_key(&self.url) }],
                        })
                    }
                    Err(error) => self.finish_err(error),
                }
            }
            ResolveState::Keys(wait) => {
                let KeysWait { document, mut record, expires_at, document_fresh } = *wait;
                let outcome = fetch_result(input).and_then(|r| {
                    let resp = r.map_err(|e| fetch_failure(FetchPurpose::ClientJwks, &e))?;
                    check_response(FetchPurpose::ClientJwks, &resp)?;
                    if resp.body.len() > policy.max_jwks_bytes {
                        return Err(fetch_failure(FetchPurpose::ClientJwks, &FetchError::TooLarge));
                    }
                    let value: Value = serde_json::from_slice(&resp.body)
                        .map_err(|_| invalid_client(jose::reasons::JWKS_INVALID, "The client's key set is not JSON"))?;
                    let keys = JwkSet::from_value(&value).map_err(|(r, d)| invalid_client(r, d))?;
                    let text = String::from_utf8(resp.body.to_vec()).unwrap_or_default();
                    Ok((keys, text, cache_lifetime(&resp, &policy)))
                });
                match outcome {
                    Ok((keys, text, lifetime)) => {
                        let uri = document.jwks_uri.clone().unwrap_or_default();
                        // The keys live in the document's entry, never longer
                        // than it; keys that may not be cached are not.
                        record.jwks = lifetime.map(|t| CachedJwks { uri, keys: text, expires_at: self.now.plus(t) });
                        let cache_write = if document_fresh || record.jwks.is_some() {
                            self.cache_op(&record, expires_at)
                        } else {
                            None
                        };
                        self.finish(Resolved {
                            document,
                            keys: Some(keys),
                            keys_fresh: true,
                            cache_write,
                            record,
                            expires_at,
                        })
                    }
                    Err(error) => self.finish_err(error),
                }
            }
            ResolveState::Evicting(error) => self.finish_err(error),
            ResolveState::Finished => self.finish_err(OAuthError::server_error(crate::error::reasons::DRIVER_PROTOCOL)),
        }
    }
}

/// How a metadata-document client authenticated at the token or
/// revocation endpoint.
pub(crate) enum Authentication {
    /// It did: a public client, or an assertion verified and spent earlier
    /// in this flow.
    Done,
    /// The signature failed with cached keys: refetch them
    /// ([`Resolver::refetch_keys`]) and judge again.
    RefetchKeys,
    /// The assertion verified: spend its `jti` with this write (a `Put
    /// IfAbsent`), and refuse the request if it was not written.
    SpendJti(StorageOp),
}

/// Authenticate `auth` as the client `resolved` describes. Public clients
/// send `client_id` alone; `private_key_jwt` clients an assertion (RFC 7523
/// §3) verified with the document's keys. Nothing else is accepted: there
/// is no secret to check.
pub(crate) fn authenticate(
    cfg: &Config,
    auth: &ClientAuth,
    resolved: &Resolved,
    refetched: bool,
    assertion_spent: bool,
    now: UnixTime,
) -> Result<Authentication, OAuthError> {
    let client = &resolved.document.client;
    let assertion = match auth {
        ClientAuth::Jwt { .. } if assertion_spent => return Ok(Authentication::Done),
        ClientAuth::Jwt { assertion, .. } => assertion,
        other => return client::authenticate(client, other).map(|()| Authentication::Done),
    };
    if client.token_endpoint_auth_method != METHOD_PRIVATE_KEY_JWT {
        return Err(invalid_client(client::METHOD_MISMATCH, "Client authentication failed"));
    }
    let bad = |(reason, description): (Reason, &'static str)| invalid_client(reason, description);
    let parsed = jose::Assertion::parse(assertion).map_err(bad)?;
    let keys = resolved
        .keys
        .as_ref()
        .ok_or_else(|| invalid_client(reasons::KEYS_MISSING, "The client publishes no verification keys"))?;
    if let Err(problem) = parsed.verify_signature(keys) {
        // Cached keys may predate a rotation: fetch them once more.
        if !resolved.keys_fresh && !refetched && resolved.document.jwks_uri.is_some() {
            return Ok(Authentication::RefetchKeys);
        }
        return Err(bad(problem));
    }
    let audiences = [cfg.issuer.as_str(), cfg.token_endpoint.as_str()];
    let verified = parsed.check_claims(&client.client_id, &audiences, now).map_err(bad)?;
    // Single use: the marker outlives the window in which the assertion
    // would still be accepted, and never lives under the 60 s every backend
    // can hold.
    let expires_at = verified.exp.plus(jose::CLOCK_SKEW_SECS).max(now.plus(MIN_TTL_SECS));
    let marker = records::encode(&serde_json::json!({ "client_id": client.client_id }))
        .ok_or_else(|| OAuthError::server_error(crate::error::reasons::CRYPTO_FAILED))?;
    Ok(Authentication::SpendJti(StorageOp::Put {
        key: jose::jti_key(&client.client_id, &verified.jti),
        value: marker,
        revision: 1,
        expires_at: Some(expires_at),
        condition: Condition::IfAbsent,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CimdPolicy {
        CimdPolicy::default()
    }

    #[test]
    fn url_shape_rules() {
        let p = policy();
        let reason = |u: &str| check_url(u, &p).err().map(|e| e.0.as_str());
        assert_eq!(reason("https://app.example/client.json"), None);
        assert_eq!(reason("https://app.example:8443/c?x=1"), None);
        assert_eq!(reason("http://app.example/c"), Some("cimd_url_not_https"));
        assert_eq!(reason("HTTPS://app.example/c"), Some("cimd_url_not_https"));
        assert_eq!(reason("https://app.example"), Some("cimd_url_no_path"));
        assert_eq!(reason("https://app.example/"), Some("cimd_url_no_path"));
        assert_eq!(reason("https://app.example?x"), Some("cimd_url_no_path"));
        assert_eq!(reason("https://u:p@app.example/c"), Some("cimd_url_userinfo"));
        assert_eq!(reason("https://u@app.example/c"), Some("cimd_url_userinfo"));
        assert_eq!(reason("https://app.example/c#f"), Some("cimd_url_fragment"));
        assert_eq!(reason("https://app.example/a/../c"), Some("cimd_url_dot_segment"));
        assert_eq!(reason("https://app.example/a/./c"), Some("cimd_url_dot_segment"));
        assert_eq!(reason("https://app.example/a/%2E%2e/c"), Some("cimd_url_dot_segment"));
        assert_eq!(reason("https://app.example/a/.%2e"), Some("cimd_url_dot_segment"));
        assert_eq!(reason("https://app.example/a\\c"), Some("cimd_url_invalid_characters"));
        assert_eq!(reason("https://app.example/a c"), Some("cimd_url_invalid_characters"));
        assert_eq!(reason("https://app.example/a\u{7}"), Some("cimd_url_invalid_characters"));
        assert_eq!(reason("https://127.0.0.1/c"), Some("cimd_url_ip_literal"));
        assert_eq!(reason("https://[::1]/c"), Some("cimd_url_ip_literal"));
        assert_eq!(reason("https://0x7f.1/c"), Some("cimd_url_ip_literal"));
        assert_eq!(reason("https://App.Example/c"), Some("cimd_url_not_canonical"));
        assert_eq!(reason("https://app.example:443/c"), Some("cimd_url_not_canonical"));
        assert_eq!(reason("https://app.example/%7e"), None);
        assert_eq!(reason("https://bücher.example/c"), Some("cimd_url_not_canonical"));
        assert_eq!(reason(&format!("https://app.example/{}", "a".repeat(1100))), Some("cimd_url_too_long"));
        assert!(is_url_client_id("https://x/y") && is_url_client_id("HTTP://x") && !is_url_client_id("abc"));
    }

    #[test]
    fn host_lists() {
        let p =
            policy().allow_hosts(["*.example.com", "apps.test"]).deny_hosts(["evil.example.com"]).validated().unwrap();
        assert!(p.host_allowed("a.example.com"));
        assert!(p.host_allowed("b.a.example.com"));
        assert!(!p.host_allowed("example.com"));
        assert!(!p.host_allowed("xexample.com"));
        assert!(!p.host_allowed("evil.example.com"));
        assert!(p.host_allowed("apps.test"));
        assert!(!p.host_allowed("other.test"));
        assert!(policy().allow_hosts(["bad host"]).validated().is_err());
        assert!(policy().default_cache_ttl(10).validated().is_err());
        assert!(policy().max_cache_ttl(30 * 86_400).validated().is_err());
    }

    #[test]
    fn cache_lifetimes() {
        let p = policy();
        let life = |cc: Option<&str>, age: Option<&str>| {
            let mut r = FetchResponse::json("{}");
            r.cache_control = cc.map(str::to_owned);
            r.age = age.map(str::to_owned);
            cache_lifetime(&r, &p)
        };
        assert_eq!(life(None, None), Some(3600));
        assert_eq!(life(Some("max-age=600"), None), Some(600));
        assert_eq!(life(Some("public, max-age=600"), Some("100")), Some(500));
        assert_eq!(life(Some("max-age=600, s-maxage=7200"), None), Some(7200));
        assert_eq!(life(Some("max-age=9999999"), None), Some(86_400));
        assert_eq!(life(Some("max-age=30"), None), None);
        assert_eq!(life(Some("max-age=0"), None), None);
        assert_eq!(life(Some("max-age=abc"), None), None);
        assert_eq!(life(Some("no-store, max-age=600"), None), None);
        assert_eq!(life(Some("No-Cache"), None), None);
        assert_eq!(life(Some("max-age=\"120\""), None), Some(120));
    }
}
