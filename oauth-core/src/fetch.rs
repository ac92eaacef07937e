//! Outbound fetches: the one kind of network IO the core ever asks for.
//!
//! With client ID metadata documents on (see `docs/cimd.md`), a client names
//! itself by an https URL, and the provider needs the document behind it,
//! and for `private_key_jwt` the client's JSON Web Key Set. The core never
//! does IO, so it yields [`Step::Fetch`](crate::Step::Fetch) with a
//! [`FetchRequest`] and the driver answers
//! [`Input::Fetch`](crate::Input::Fetch).
//!
//! The URL is attacker-chosen: anyone can send any `client_id`. Before
//! asking, the core has checked its shape (https, a host name, a path, no
//! userinfo, fragment, dot segments, backslashes or control characters) and
//! the operator's host allow and deny lists. What the core cannot check is
//! where the name leads, so every driver that fetches must:
//!
//! 1. fetch only `https` URLs;
//! 2. resolve the host and refuse the request unless **every** address is a
//!    public unicast address: no loopback, private, shared (CGNAT),
//!    link-local, multicast, documentation, benchmarking, reserved or
//!    otherwise special-use range, IPv4 or IPv6, IPv4-mapped and NAT64 forms
//!    judged by the IPv4 address inside ([`FetchError::ForbiddenAddress`]);
//! 3. connect to an address it checked, never resolve again, and present the
//!    original host name for TLS (SNI, certificate) and `Host`;
//! 4. never follow a redirect: a 3xx is answered as it is, and the core
//!    refuses it;
//! 5. stop reading after [`FetchRequest::max_bytes`] bytes of body
//!    ([`FetchError::TooLarge`]), and give up after
//!    [`FetchRequest::timeout`] for the whole exchange, resolution included
//!    ([`FetchError::Timeout`]);
//! 6. send no cookies, credentials or ambient headers.
//!
//! The core re-checks what it can of the answer: status 200 only, a JSON
//! media type, the size, and the document itself.

use core::fmt;
use core::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

/// Why the provider wants a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchPurpose {
    /// A client ID metadata document (the `client_id` URL itself).
    ClientMetadata,
    /// A client's JSON Web Key Set, from its metadata's `jwks_uri`.
    ClientJwks,
}

impl FetchPurpose {
    /// A short name for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientMetadata => "client_metadata",
            Self::ClientJwks => "client_jwks",
        }
    }
}

/// A `GET` the driver should perform. See the module documentation for the
/// rules every driver must keep.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchRequest {
    /// The absolute `https` URL, exactly as to be requested.
    pub url: String,
    /// Why it is fetched.
    pub purpose: FetchPurpose,
    /// Stop reading, and answer [`FetchError::TooLarge`], past this many
    /// bytes of body.
    pub max_bytes: usize,
    /// The budget for the whole exchange: resolution, connection, TLS,
    /// request and body.
    pub timeout: Duration,
    /// The `Accept` header to send.
    pub accept: &'static str,
}

/// A response, with only what the core looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchResponse {
    /// The status code, as received (a redirect is not followed).
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The `Cache-Control` header (repeated headers joined with `, `).
    pub cache_control: Option<String>,
    /// The `Age` header.
    pub age: Option<String>,
    /// The body (at most the request's `max_bytes`; may be empty for a
    /// status other than 200).
    pub body: Bytes,
}

impl FetchResponse {
    /// A response with `status`, the headers the core reads picked from
    /// `headers`, and `body`.
    pub fn new(status: u16, headers: &HeaderMap, body: Bytes) -> Self {
        let joined = |name: http::header::HeaderName| {
            let values: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
            (!values.is_empty()).then(|| values.join(", "))
        };
        Self {
            status,
            content_type: joined(http::header::CONTENT_TYPE),
            cache_control: joined(http::header::CACHE_CONTROL),
            age: joined(http::header::AGE),
            body,
        }
    }

    /// A 200 JSON response with no cache headers, for tests and tools.
    pub fn json(body: impl Into<Bytes>) -> Self {
        Self {
            status: 200,
            content_type: Some("application/json".into()),
            cache_control: None,
            age: None,
            body: body.into(),
        }
    }

    /// The same response with a `Cache-Control` header.
    #[must_use]
    pub fn with_cache_control(mut self, value: impl Into<String>) -> Self {
        self.cache_control = Some(value.into());
        self
    }
}

/// Why a fetch produced no response.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchError {
    /// This driver cannot fetch at all (the default [`Driver::fetch`](crate::Driver::fetch)).
    Unsupported,
    /// The URL was refused before any connection: not https, or a host the
    /// driver's own policy refuses.
    ForbiddenUrl,
    /// The host resolved to a loopback, private, link-local or other
    /// special-use address; nothing was sent.
    ForbiddenAddress,
    /// The host name did not resolve.
    Resolve,
    /// No connection could be made, or TLS failed (certificate included).
    Connect,
    /// The body exceeded [`FetchRequest::max_bytes`].
    TooLarge,
    /// The exchange did not finish within [`FetchRequest::timeout`].
    Timeout,
    /// Anything else (a malformed response, say). The message is for logs.
    Other(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported => f.write_str("this driver cannot fetch"),
            Self::ForbiddenUrl => f.write_str("the URL is not allowed"),
            Self::ForbiddenAddress => f.write_str("the host resolves to a special-use address"),
            Self::Resolve => f.write_str("the host name did not resolve"),
            Self::Connect => f.write_str("no connection could be made"),
            Self::TooLarge => f.write_str("the response is too large"),
            Self::Timeout => f.write_str("the fetch timed out"),
            Self::Other(m) => write!(f, "fetch failed: {m}"),
        }
    }
}

impl core::error::Error for FetchError {}
