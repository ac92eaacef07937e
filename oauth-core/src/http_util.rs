//! HTTP plumbing shared by the endpoints: form and query parsing with the
//! RFC 6749 §3.1 rules, client credentials from headers, JSON and error
//! responses, CORS.

use base64ct::{Base64, Encoding};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::error::{ErrorCode, OAuthError, Reason, reasons};

/// Parameters of a form body or query string.
///
/// RFC 6749 §3.1: parameters sent without a value are treated as omitted, and
/// request parameters must not be repeated. `resource` (RFC 8707) may repeat;
/// its values are kept in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
    resources: Vec<String>,
}

impl Params {
    pub(crate) fn parse(raw: &[u8]) -> Result<Self, OAuthError> {
        let mut out = Self::default();
        for (k, v) in form_urlencoded::parse(raw) {
            if v.is_empty() {
                continue;
            }
            if k == "resource" {
                out.resources.push(v.into_owned());
                continue;
            }
            if out.pairs.iter().any(|(pk, _)| *pk == k) {
                return Err(OAuthError::invalid_request(
                    reasons::REPEATED_PARAMETER,
                    format!("Parameter {} is repeated", printable(&k)),
                ));
            }
            out.pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(out)
    }

    /// A parameter's value.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Whether a parameter was sent (with a value).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// All `resource` values in order.
    pub(crate) fn resources(&self) -> &[String] {
        &self.resources
    }
}

/// A parameter name made safe for an error description.
pub(crate) fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Parse a form body, insisting on `application/x-www-form-urlencoded`
/// (RFC 6749 §3.2) and on `limit`.
pub(crate) fn parse_form(headers: &HeaderMap, body: &[u8], limit: usize) -> Result<Params, OAuthError> {
    if body.len() > limit {
        return Err(OAuthError::invalid_request(reasons::BODY_TOO_LARGE, "Request body too large")
            .with_status(StatusCode::PAYLOAD_TOO_LARGE));
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            reasons::BAD_CONTENT_TYPE,
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    if std::str::from_utf8(body).is_err() {
        return Err(OAuthError::invalid_request(reasons::MALFORMED_BODY, "Request body is not UTF-8"));
    }
    Params::parse(body)
}

/// What the `Authorization` header says about client credentials.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BasicAuth {
    /// No `Authorization: Basic` header.
    Absent,
    /// `client_id` and `client_secret`, URL-decoded (RFC 6749 §2.3.1).
    Present(String, String),
}

/// Parse HTTP Basic client credentials. A malformed header is
/// `invalid_client` (401), as the client did attempt Basic authentication.
pub(crate) fn basic_auth(headers: &HeaderMap) -> Result<BasicAuth, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(BasicAuth::Absent);
    };
    let bad = || {
        OAuthError::new(ErrorCode::InvalidClient, Reason::new("malformed_basic_auth"), "Malformed Basic credentials")
    };
    let value = value.to_str().map_err(|_| bad())?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(BasicAuth::Absent);
    }
    let decoded = Base64::decode_vec(rest.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let id = url_decode(id).ok_or_else(bad)?;
    let secret = url_decode(secret).ok_or_else(bad)?;
    Ok(BasicAuth::Present(id, secret))
}

/// Decode `application/x-www-form-urlencoded` text (`+` is a space).
fn url_decode(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus).decode_utf8().ok().map(|c| c.into_owned())
}

/// The bearer token in the `Authorization` header (RFC 6750 §2.1).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Bearer<'a> {
    /// No `Authorization` header, or one for another scheme.
    Absent,
    /// A syntactically valid b64token.
    Token(&'a str),
    /// `Bearer` with a missing or malformed token.
    Malformed,
}

pub(crate) fn bearer(headers: &HeaderMap) -> Bearer<'_> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Bearer::Absent;
    };
    if values.next().is_some() {
        return Bearer::Malformed;
    }
    let Ok(value) = value.to_str() else {
        return Bearer::Malformed;
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return if value.eq_ignore_ascii_case("bearer") { Bearer::Malformed } else { Bearer::Absent };
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::Absent;
    }
    let token = token.trim_start_matches(' ');
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = token.trim_end_matches('=');
    if body.is_empty()
        || token.len() > 4096
        || !body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    {
        return Bearer::Malformed;
    }
    Bearer::Token(token)
}

/// Headers every token, registration and error response carries
/// (RFC 6749 §5.1): responses with credentials must not be cached.
pub(crate) fn no_store(builder: http::response::Builder) -> http::response::Builder {
    builder.header(header::CACHE_CONTROL, "no-store").header(header::PRAGMA, "no-cache")
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value, cacheable: bool) -> Response<Bytes> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let b = Response::builder().status(status).header(header::CONTENT_TYPE, "application/json");
    let b = if cacheable { b.header(header::CACHE_CONTROL, "public, max-age=3600") } else { no_store(b) };
    b.body(Bytes::from(body)).unwrap_or_else(|_| fallback())
}

/// The RFC 6749 §5.2 error body for `err`.
pub(crate) fn error_response(err: &OAuthError) -> Response<Bytes> {
    let body = serde_json::json!({
        "error": err.code.as_str(),
        "error_description": err.description,
    });
    let mut resp = json(err.status, &body, false);
    if err.code == ErrorCode::TemporarilyUnavailable {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    }
    resp
}

/// 405 with `Allow`.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Bytes> {
    let err = OAuthError::invalid_request(reasons::METHOD_NOT_ALLOWED, "Method not allowed")
        .with_status(StatusCode::METHOD_NOT_ALLOWED);
    let mut resp = error_response(&err);
    resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// A plain 404 for well-known paths that name nothing.
pub(crate) fn not_found() -> Response<Bytes> {
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Bytes::from_static(br#"{"error":"not_found"}"#))
        .unwrap_or_else(|_| fallback())
}

/// A redirect (302 Found) to `location`.
pub(crate) fn redirect(location: &str) -> Response<Bytes> {
    match HeaderValue::from_str(location) {
        Ok(v) => no_store(Response::builder().status(StatusCode::FOUND))
            .header(header::LOCATION, v)
            .body(Bytes::new())
            .unwrap_or_else(|_| fallback()),
        Err(_) => error_response(&OAuthError::server_error(Reason::new("bad_redirect_location"))),
    }
}

/// The response of last resort: building a response from static parts cannot
/// fail, but the builder API is fallible, and the core does not panic.
pub(crate) fn fallback() -> Response<Bytes> {
    let mut r = Response::new(Bytes::from_static(br#"{"error":"server_error"}"#));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

const EXPOSED: &str = "WWW-Authenticate, Retry-After";

/// Add CORS headers when the request carried `Origin` (as the incumbent
/// does: reflect the origin, expose `WWW-Authenticate`, no credentials).
/// Headers the application set itself are kept.
pub(crate) fn apply_cors<B>(origin: Option<&HeaderValue>, resp: &mut Response<B>) {
    let Some(origin) = origin else { return };
    let h = resp.headers_mut();
    if !h.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if !h.contains_key(header::ACCESS_CONTROL_EXPOSE_HEADERS) {
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED));
    }
}

/// The answer to `OPTIONS`: `Allow`, and with an `Origin`, a CORS preflight.
pub(crate) fn preflight(origin: Option<&HeaderValue>, allow_methods: &'static str) -> Response<Bytes> {
    let mut resp = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::ALLOW, allow_methods)
        .header(header::ACCESS_CONTROL_ALLOW_METHODS, allow_methods)
        .header(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Authorization, Content-Type, Mcp-Protocol-Version, Mcp-Session-Id, *",
        )
        .header(header::ACCESS_CONTROL_MAX_AGE, "86400")
        .body(Bytes::new())
        .unwrap_or_else(|_| fallback());
    apply_cors(origin, &mut resp);
    resp
}

/// `WWW-Authenticate` as a header name, for callers building challenges.
pub(crate) const WWW_AUTHENTICATE: HeaderName = header::WWW_AUTHENTICATE;

/// Quote a value for an auth-param (RFC 9110 §5.6.4): escape `"` and `\`,
/// drop control characters.
pub(crate) fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_follow_rfc6749_section_3_1() {
        let p = Params::parse(b"a=1&b=&resource=x&resource=y").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.resources(), ["x".to_owned(), "y".to_owned()]);
        let e = Params::parse(b"a=1&a=2").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn basic_credentials_are_url_decoded() {
        let mut h = HeaderMap::new();
        let raw = Base64::encode_string(b"my%20client:s%3Acret+x");
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {raw}")).unwrap());
        assert_eq!(basic_auth(&h).unwrap(), BasicAuth::Present("my client".into(), "s:cret x".into()));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_auth(&h).unwrap_err().code, ErrorCode::InvalidClient);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(basic_auth(&h).unwrap(), BasicAuth::Absent);
    }

    #[test]
    fn bearer_syntax() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), Bearer::Absent);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc.DEF-_~+/=="));
        assert_eq!(bearer(&h), Bearer::Token("abc.DEF-_~+/=="));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer   abc"));
        assert_eq!(bearer(&h), Bearer::Token("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a b"));
        assert_eq!(bearer(&h), Bearer::Malformed);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert_eq!(bearer(&h), Bearer::Malformed);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), Bearer::Absent);
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(quoted("a\"b\\c\n"), "\"a\\\"b\\\\c\"");
    }
}
