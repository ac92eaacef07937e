//! Protocol errors: the exact codes of RFC 6749 §5.2, RFC 6750 §3.1,
//! RFC 7591 §3.2.2, RFC 7009 §2.2.1 and RFC 8707 §2, with their statuses.
//!
//! These are outputs, not failures of the library: every one of them ends up
//! as a well-formed HTTP response. Each carries a stable [`Reason`] slug for
//! the application's error hook, and a description that never holds a secret.

use std::borrow::Cow;
use std::fmt;

use http::StatusCode;

/// An OAuth error code as it appears in the `error` member or parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// RFC 6749: the request is malformed.
    InvalidRequest,
    /// RFC 6749: client authentication failed.
    InvalidClient,
    /// RFC 6749: the grant (code, refresh token, ...) is invalid.
    InvalidGrant,
    /// RFC 6749: the client may not use this grant type or response type.
    UnauthorizedClient,
    /// RFC 6749: the grant type is not supported.
    UnsupportedGrantType,
    /// RFC 6749: the response type is not supported.
    UnsupportedResponseType,
    /// RFC 6749: the requested scope is invalid or exceeds what was granted.
    InvalidScope,
    /// RFC 6749: the resource owner or server denied the request.
    AccessDenied,
    /// RFC 6749: an unexpected condition.
    ServerError,
    /// RFC 6749: the server is temporarily unable to handle the request.
    TemporarilyUnavailable,
    /// RFC 8707: the requested resource is invalid or not allowed.
    InvalidTarget,
    /// RFC 6750: the access token is invalid.
    InvalidToken,
    /// RFC 6750: the token lacks the scope the resource requires.
    InsufficientScope,
    /// RFC 7591: a redirect URI is invalid.
    InvalidRedirectUri,
    /// RFC 7591: a client metadata field is invalid.
    InvalidClientMetadata,
    /// RFC 7591: the software statement is invalid.
    InvalidSoftwareStatement,
    /// RFC 7591: the software statement is not approved.
    UnapprovedSoftwareStatement,
    /// RFC 7009: the token type hint names a type the server cannot revoke.
    UnsupportedTokenType,
}

impl ErrorCode {
    /// The registered string form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidSoftwareStatement => "invalid_software_statement",
            Self::UnapprovedSoftwareStatement => "unapproved_software_statement",
            Self::UnsupportedTokenType => "unsupported_token_type",
        }
    }

    /// Parse the registered string form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "unsupported_response_type" => Self::UnsupportedResponseType,
            "invalid_scope" => Self::InvalidScope,
            "access_denied" => Self::AccessDenied,
            "server_error" => Self::ServerError,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            "invalid_target" => Self::InvalidTarget,
            "invalid_token" => Self::InvalidToken,
            "insufficient_scope" => Self::InsufficientScope,
            "invalid_redirect_uri" => Self::InvalidRedirectUri,
            "invalid_client_metadata" => Self::InvalidClientMetadata,
            "invalid_software_statement" => Self::InvalidSoftwareStatement,
            "unapproved_software_statement" => Self::UnapprovedSoftwareStatement,
            "unsupported_token_type" => Self::UnsupportedTokenType,
            _ => return None,
        })
    }

    /// The status an endpoint answers this code with by default.
    ///
    /// RFC 6749 §5.2: 400 for everything but `invalid_client` (401);
    /// RFC 6750 §3.1: 401 `invalid_token`, 403 `insufficient_scope`.
    pub const fn default_status(self) -> StatusCode {
        match self {
            Self::InvalidClient | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope | Self::AccessDenied => StatusCode::FORBIDDEN,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stable, machine-readable slug saying *why* a request failed, for the
/// application's error hook and logs (e.g. `code_reused`,
/// `pkce_verifier_mismatch`). Slugs are part of the public contract and are
/// listed in `docs/errors.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reason(&'static str);

impl Reason {
    pub(crate) const fn new(slug: &'static str) -> Self {
        Self(slug)
    }

    /// The slug.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A protocol error ready to be rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    /// The error code.
    pub code: ErrorCode,
    /// Human-readable text for the client developer; never holds a secret.
    pub description: Cow<'static, str>,
    /// The HTTP status to answer with.
    pub status: StatusCode,
    /// Why, for the error hook.
    pub reason: Reason,
}

impl OAuthError {
    /// An error with the code's default status.
    pub fn new(code: ErrorCode, reason: Reason, description: impl Into<Cow<'static, str>>) -> Self {
        Self { code, description: description.into(), status: code.default_status(), reason }
    }

    /// The same error with another status.
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// `invalid_request`.
    pub fn invalid_request(reason: Reason, description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, reason, description)
    }

    /// `server_error` (500).
    pub fn server_error(reason: Reason) -> Self {
        Self::new(ErrorCode::ServerError, reason, "The server could not complete the request")
    }

    /// `temporarily_unavailable` (503) for a storage failure the client may retry.
    pub fn unavailable(reason: Reason) -> Self {
        Self::new(ErrorCode::TemporarilyUnavailable, reason, "The server is temporarily unable to handle the request")
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.code, self.description, self.reason)
    }
}

impl std::error::Error for OAuthError {}

/// What the error hook is told about a failed request. Nothing in it is
/// secret: no token, code, verifier or client secret ever reaches it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ErrorEvent {
    /// The endpoint that failed, e.g. `token`, `register`, `resource`.
    pub endpoint: &'static str,
    /// The error code sent to the client.
    pub code: ErrorCode,
    /// The stable reason slug.
    pub reason: Reason,
    /// The description sent to the client.
    pub description: String,
    /// The client involved, when known.
    pub client_id: Option<String>,
}

/// Slugs shared by several endpoints.
pub(crate) mod reasons {
    use super::Reason;

    pub(crate) const STORAGE_UNAVAILABLE: Reason = Reason::new("storage_unavailable");
    pub(crate) const STORAGE_FAILED: Reason = Reason::new("storage_failed");
    pub(crate) const CORRUPT_RECORD: Reason = Reason::new("corrupt_record");
    pub(crate) const DRIVER_PROTOCOL: Reason = Reason::new("driver_protocol_violation");
    pub(crate) const ENTROPY_EXHAUSTED: Reason = Reason::new("entropy_exhausted");
    pub(crate) const CRYPTO_FAILED: Reason = Reason::new("crypto_failed");
    pub(crate) const METHOD_NOT_ALLOWED: Reason = Reason::new("method_not_allowed");
    pub(crate) const BAD_CONTENT_TYPE: Reason = Reason::new("bad_content_type");
    pub(crate) const BODY_TOO_LARGE: Reason = Reason::new("body_too_large");
    pub(crate) const MALFORMED_BODY: Reason = Reason::new("malformed_body");
    pub(crate) const REPEATED_PARAMETER: Reason = Reason::new("repeated_parameter");
    pub(crate) const HOOK_REJECTED: Reason = Reason::new("hook_rejected");
}
