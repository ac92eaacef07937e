//! Clients: loading records, client authentication at the token and
//! revocation endpoints (RFC 6749 §2.3, OAuth 2.1 §2.4), and renewal of
//! dynamic registrations by use.

use http::HeaderMap;

use crate::crypto::{client_secret_hash, ct_eq};
use crate::error::{ErrorCode, OAuthError, Reason};
use crate::http_util::{BasicAuth, Params, basic_auth};
use crate::records::{self, ClientRecord};
use crate::storage::{Condition, Entry, StorageOp};
use crate::time::UnixTime;

pub(crate) const UNKNOWN_CLIENT: Reason = Reason::new("client_unknown");
pub(crate) const BAD_SECRET: Reason = Reason::new("client_secret_mismatch");
pub(crate) const METHOD_MISMATCH: Reason = Reason::new("client_auth_method_mismatch");
pub(crate) const MULTIPLE_METHODS: Reason = Reason::new("client_auth_multiple_methods");
pub(crate) const NO_CLIENT: Reason = Reason::new("client_id_missing");
pub(crate) const ID_MISMATCH: Reason = Reason::new("client_id_mismatch");

/// The authentication methods this server implements.
pub(crate) const METHOD_NONE: &str = "none";
pub(crate) const METHOD_BASIC: &str = "client_secret_basic";
pub(crate) const METHOD_POST: &str = "client_secret_post";
/// RFC 7523 §2.2, for clients with a metadata document that publishes keys.
pub(crate) const METHOD_PRIVATE_KEY_JWT: &str = "private_key_jwt";

/// How a request identified and authenticated its client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// A public client: `client_id` only.
    None { client_id: String },
    /// `Authorization: Basic`.
    Basic { client_id: String, secret: String },
    /// `client_id` and `client_secret` in the body.
    Post { client_id: String, secret: String },
    /// A `private_key_jwt` assertion (RFC 7523 §2.2); `client_id` is its
    /// unverified `sub` until the signature is checked.
    Jwt { client_id: String, assertion: String },
}

impl ClientAuth {
    pub(crate) fn client_id(&self) -> &str {
        match self {
            Self::None { client_id }
            | Self::Basic { client_id, .. }
            | Self::Post { client_id, .. }
            | Self::Jwt { client_id, .. } => client_id,
        }
    }

    /// Whether the client tried Basic authentication (its failures carry a
    /// `WWW-Authenticate: Basic` challenge, RFC 6749 §5.2).
    pub(crate) fn is_basic(&self) -> bool {
        matches!(self, Self::Basic { .. })
    }
}

/// Work out how the client authenticates. Using two methods at once is
/// `invalid_request` (RFC 6749 §2.3); naming no client is `invalid_client`.
pub(crate) fn extract(headers: &HeaderMap, params: &Params) -> Result<ClientAuth, OAuthError> {
    let basic = basic_auth(headers)?;
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    if params.has("client_assertion") || params.has("client_assertion_type") {
        if matches!(basic, BasicAuth::Present(..)) || body_secret.is_some() {
            return Err(OAuthError::invalid_request(MULTIPLE_METHODS, "Use only one client authentication method"));
        }
        return assertion(params, body_id);
    }
    match basic {
        BasicAuth::Present(client_id, secret) => {
            if body_secret.is_some() {
                return Err(OAuthError::invalid_request(MULTIPLE_METHODS, "Use only one client authentication method"));
            }
            if body_id.is_some_and(|id| id != client_id) {
                return Err(OAuthError::invalid_request(ID_MISMATCH, "client_id does not match the Basic credentials"));
            }
            if client_id.is_empty() {
                return Err(invalid_client(NO_CLIENT, "Client authentication failed"));
            }
            Ok(ClientAuth::Basic { client_id, secret })
        }
        BasicAuth::Absent => match (body_id, body_secret) {
            (Some(id), Some(secret)) => Ok(ClientAuth::Post { client_id: id.to_owned(), secret: secret.to_owned() }),
            (Some(id), None) => Ok(ClientAuth::None { client_id: id.to_owned() }),
            (None, _) => Err(invalid_client(NO_CLIENT, "Client authentication failed")),
        },
    }
}

/// `private_key_jwt`: the assertion names the client in `sub`; a `client_id`
/// parameter, which RFC 7521 §4.2 makes optional, must agree with it.
fn assertion(params: &Params, body_id: Option<&str>) -> Result<ClientAuth, OAuthError> {
    use crate::jose::{self, reasons as r};
    let Some(assertion) = params.get("client_assertion") else {
        return Err(OAuthError::invalid_request(r::ASSERTION_MISSING, "client_assertion is required"));
    };
    if params.get("client_assertion_type") != Some(jose::JWT_BEARER) {
        return Err(invalid_client(r::ASSERTION_TYPE, "client_assertion_type must be jwt-bearer (RFC 7523)"));
    }
    let parsed = jose::Assertion::parse(assertion).map_err(|(reason, d)| invalid_client(reason, d))?;
    let Some(client_id) = parsed.subject().filter(|s| !s.is_empty()).map(str::to_owned) else {
        return Err(invalid_client(r::ASSERTION_SUBJECT, "The client assertion must name the client in sub"));
    };
    if body_id.is_some_and(|id| id != client_id) {
        return Err(OAuthError::invalid_request(ID_MISMATCH, "client_id does not match the client assertion"));
    }
    Ok(ClientAuth::Jwt { client_id, assertion: assertion.to_owned() })
}

/// `invalid_client` (401).
pub(crate) fn invalid_client(reason: Reason, description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClient, reason, description)
}

/// Decode a live client record; `None` when absent or unreadable.
pub(crate) fn load(entry: Option<&Entry>, client_id: &str) -> Option<ClientRecord> {
    let rec: ClientRecord = records::decode(&entry?.value)?;
    (rec.client_id == client_id).then_some(rec)
}

/// Check `auth` against the client's registered method and secret.
/// The secret is compared in constant time on its hash.
pub(crate) fn authenticate(client: &ClientRecord, auth: &ClientAuth) -> Result<(), OAuthError> {
    let method = client.token_endpoint_auth_method.as_str();
    let secret = match (method, auth) {
        (METHOD_NONE, ClientAuth::None { .. }) => return Ok(()),
        (METHOD_BASIC, ClientAuth::Basic { secret, .. }) | (METHOD_POST, ClientAuth::Post { secret, .. }) => secret,
        _ => return Err(invalid_client(METHOD_MISMATCH, "Client authentication failed")),
    };
    let Some(expected) = client.secret_hash else {
        return Err(invalid_client(METHOD_MISMATCH, "Client authentication failed"));
    };
    if ct_eq(&client_secret_hash(secret), &expected) {
        Ok(())
    } else {
        Err(invalid_client(BAD_SECRET, "Client authentication failed"))
    }
}

/// The write that renews a dynamic registration after use: once less than
/// half its idle lifetime remains, it is pushed back to a full lifetime.
/// Conditional on the revision read, so it never resurrects a client that
/// was deleted or changed meanwhile.
pub(crate) fn renewal(client: &ClientRecord, entry: &Entry, now: UnixTime) -> Option<StorageOp> {
    let ttl = client.registration_ttl?;
    let expires_at = entry.expires_at?;
    if now.until(expires_at) >= ttl / 2 {
        return None;
    }
    Some(StorageOp::Put {
        key: records::client_key(&client.client_id),
        value: entry.value.clone(),
        revision: entry.revision.saturating_add(1),
        expires_at: Some(now.plus(ttl)),
        condition: Condition::IfRevision(entry.revision),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{AUTHORIZATION, HeaderValue};

    fn client(method: &str, secret: Option<&str>) -> ClientRecord {
        ClientRecord {
            client_id: "c1".into(),
            secret_hash: secret.map(client_secret_hash),
            redirect_uris: vec![],
            token_endpoint_auth_method: method.into(),
            grant_types: vec![],
            response_types: vec![],
            application_type: "web".into(),
            client_name: None,
            client_uri: None,
            logo_uri: None,
            policy_uri: None,
            tos_uri: None,
            contacts: vec![],
            scope: None,
            software_id: None,
            software_version: None,
            created_at: UnixTime::from_secs(0),
            registration_ttl: None,
        }
    }

    #[test]
    fn two_methods_at_once_is_invalid_request() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic YzE6cw=="));
        let p = Params::parse(b"client_id=c1&client_secret=s").unwrap();
        assert_eq!(extract(&h, &p).unwrap_err().code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn registered_method_is_enforced() {
        let basic = ClientAuth::Basic { client_id: "c1".into(), secret: "s".into() };
        let post = ClientAuth::Post { client_id: "c1".into(), secret: "s".into() };
        let none = ClientAuth::None { client_id: "c1".into() };
        assert!(authenticate(&client(METHOD_BASIC, Some("s")), &basic).is_ok());
        assert_eq!(authenticate(&client(METHOD_BASIC, Some("s")), &post).unwrap_err().reason, METHOD_MISMATCH);
        assert_eq!(authenticate(&client(METHOD_BASIC, Some("s")), &none).unwrap_err().code, ErrorCode::InvalidClient);
        assert!(authenticate(&client(METHOD_POST, Some("s")), &post).is_ok());
        assert_eq!(authenticate(&client(METHOD_POST, Some("x")), &post).unwrap_err().reason, BAD_SECRET);
        assert!(authenticate(&client(METHOD_NONE, None), &none).is_ok());
        assert!(authenticate(&client(METHOD_NONE, None), &post).is_err());
    }
}
