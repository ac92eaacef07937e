//! The resource-server check (RFC 6750) on protected routes.
//!
//! One round trip: hash the presented token, read its record and its
//! grant's, check expiry, audience (RFC 8707) and the resource's required
//! scopes, decrypt the props.
//!
//! An access token is honoured only while its grant record exists. That makes
//! revocation immediate and free of races: whatever order a revocation and a
//! concurrent token issuance reach storage in, once the grant is gone no token
//! of it opens the resource. Deleting the access records themselves (the
//! revocation cascade) is then only cleanup.
//! Failures answer with an RFC 6750 / RFC 9728 challenge:
//!
//! * no token: 401 `Bearer resource_metadata="…", scope="…"`;
//! * a bad, expired, revoked or foreign-audience token: 401 with
//!   `error="invalid_token"` added;
//! * a malformed `Authorization: Bearer` header: 400 `invalid_request`;
//! * missing scopes: 403 `error="insufficient_scope"` with `scope`.

use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, Response, StatusCode};

use crate::config::Config;
use crate::crypto::{self, CredentialKind};
use crate::endpoint::metadata::resource_metadata_url;
use crate::error::{ErrorCode, OAuthError, Reason};
use crate::flow::{Flow, Input, Machine, Step, as_entry, replies};
use crate::grant::open_access_props;
use crate::http_util::{self, Bearer};
use crate::provider::{AuthContext, Outcome, Provider};
use crate::records::{self, AccessRecord};
use crate::resource::same_resource;
use crate::scope::{OFFLINE_ACCESS, format_scope, satisfies};
use crate::storage::{StorageOp, StorageRequest};
use crate::time::UnixTime;

pub(crate) const MALFORMED_AUTHORIZATION: Reason = Reason::new("malformed_authorization_header");
pub(crate) const UNRECOGNISED_TOKEN: Reason = Reason::new("token_unrecognised");
pub(crate) const UNKNOWN_TOKEN: Reason = Reason::new("token_unknown_or_revoked");
pub(crate) const EXPIRED_TOKEN: Reason = Reason::new("token_expired");
pub(crate) const WRONG_AUDIENCE: Reason = Reason::new("token_wrong_audience");
pub(crate) const UNDECRYPTABLE: Reason = Reason::new("token_props_undecryptable");
pub(crate) const MISSING_SCOPE: Reason = Reason::new("insufficient_scope");

/// Start the check for the resource at `index`.
pub(crate) fn start(cfg: Arc<Config>, request: Request<Bytes>, index: usize, now: UnixTime) -> Flow<Outcome> {
    let token = match http_util::bearer(request.headers()) {
        Bearer::Absent => return Flow::ready(Outcome::Response(challenge(&cfg, index, None))),
        Bearer::Malformed => {
            let err = OAuthError::invalid_request(MALFORMED_AUTHORIZATION, "Malformed Authorization header");
            return Flow::ready(Outcome::Response(challenge(&cfg, index, Some(err))));
        }
        Bearer::Token(t) => t.to_owned(),
    };
    let Some(parsed) = crypto::parse(CredentialKind::AccessToken, &token) else {
        let err = invalid_token(UNRECOGNISED_TOKEN, "The access token is invalid");
        return Flow::ready(Outcome::Response(challenge(&cfg, index, Some(err))));
    };
    let key = records::token_key(parsed.grant_id, &crypto::credential_id(&token));
    let grant_key = records::grant_key(parsed.grant_id);
    Flow::new(BearerCheck { cfg, index, now, token, key, grant_key, request: Some(request) })
}

struct BearerCheck {
    cfg: Arc<Config>,
    index: usize,
    now: UnixTime,
    token: String,
    key: String,
    grant_key: String,
    request: Option<Request<Bytes>>,
}

impl Machine for BearerCheck {
    type Output = Outcome;

    fn advance(&mut self, input: Input) -> Step<Outcome> {
        if let Input::Start = input {
            let ops = vec![StorageOp::Get { key: self.key.clone() }, StorageOp::Get { key: self.grant_key.clone() }];
            return Step::Storage(StorageRequest { now: self.now, ops });
        }
        let result = replies(input, 2).and_then(|r| {
            let mut r = r.into_iter();
            let token = r.next().map(as_entry).transpose()?.flatten();
            let grant_live = r.next().map(as_entry).transpose()?.flatten().is_some();
            self.check(token.filter(|_| grant_live))
        });
        Step::Done(match result {
            Ok(auth) => match self.request.take() {
                Some(request) => Outcome::Authorized { request, auth },
                None => Outcome::from_error_response(
                    &self.cfg,
                    self.index,
                    OAuthError::server_error(crate::error::reasons::DRIVER_PROTOCOL),
                ),
            },
            Err(err) => Outcome::from_error_response(&self.cfg, self.index, err),
        })
    }
}

impl BearerCheck {
    fn check(&self, entry: Option<crate::storage::Entry>) -> Result<AuthContext, OAuthError> {
        let entry = entry.ok_or_else(|| invalid_token(UNKNOWN_TOKEN, "The access token is invalid"))?;
        let record: AccessRecord =
            records::decode(&entry.value).ok_or_else(|| invalid_token(UNKNOWN_TOKEN, "The access token is invalid"))?;
        if self.now.has_reached(record.expires_at) {
            return Err(invalid_token(EXPIRED_TOKEN, "The access token expired"));
        }
        let resource = self.cfg.resources.get(self.index).ok_or_else(|| OAuthError::server_error(WRONG_AUDIENCE))?;
        if !same_resource(&record.audience, &resource.resource) {
            return Err(invalid_token(WRONG_AUDIENCE, "Invalid audience"));
        }
        if !satisfies(&record.scope, &resource.challenge_scopes, &self.cfg.scope_implies) {
            return Err(OAuthError::new(
                ErrorCode::InsufficientScope,
                MISSING_SCOPE,
                "The access token lacks required scopes",
            ));
        }
        let (props, token_props) = open_access_props(&self.token, &record)
            .ok_or_else(|| invalid_token(UNDECRYPTABLE, "The access token is invalid"))?;
        Ok(AuthContext {
            user_id: record.user_id,
            client_id: record.client_id,
            grant_id: record.grant_id,
            scope: record.scope,
            audience: record.audience,
            expires_at: record.expires_at,
            props,
            token_props,
            resource_index: self.index,
        })
    }
}

impl Outcome {
    fn from_error_response(cfg: &Config, index: usize, err: OAuthError) -> Self {
        Self::Response(challenge(cfg, index, Some(err)))
    }
}

fn invalid_token(reason: Reason, description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidToken, reason, description)
}

/// The scopes a 401 challenge names for the resource at `index`: its
/// required scopes, else the scopes it supports, never `offline_access`.
fn challenge_scopes(cfg: &Config, index: usize) -> Vec<String> {
    cfg.resources
        .get(index)
        .map(|r| if r.challenge_scopes.is_empty() { &r.scopes_supported } else { &r.challenge_scopes })
        .map(|s| s.iter().filter(|s| *s != OFFLINE_ACCESS).cloned().collect())
        .unwrap_or_default()
}

/// A 401/400/403 response with its `WWW-Authenticate` challenge.
///
/// A request without a token is the normal first step of discovery, not an
/// error, so only requests that carried something are reported.
fn challenge(cfg: &Config, index: usize, err: Option<OAuthError>) -> Response<Bytes> {
    let scopes = match &err {
        Some(e) if e.code == ErrorCode::InsufficientScope => {
            cfg.resources.get(index).map(|r| r.challenge_scopes.clone()).unwrap_or_default()
        }
        _ => challenge_scopes(cfg, index),
    };
    let status = err.as_ref().map_or(StatusCode::UNAUTHORIZED, |e| e.status);
    if let Some(e) = &err {
        Provider::observe(cfg, "resource", e, None);
    }
    render(cfg, index, status, err.as_ref(), &scopes)
}

fn render(
    cfg: &Config,
    index: usize,
    status: StatusCode,
    err: Option<&OAuthError>,
    scopes: &[String],
) -> Response<Bytes> {
    let mut params = Vec::new();
    if let Some(r) = cfg.resources.get(index) {
        params.push(format!("resource_metadata={}", http_util::quoted(&resource_metadata_url(r))));
    }
    let scopes: Vec<String> = scopes.iter().filter(|s| *s != OFFLINE_ACCESS).cloned().collect();
    if !scopes.is_empty() {
        params.push(format!("scope={}", http_util::quoted(&format_scope(&scopes))));
    }
    if let Some(e) = err {
        params.push(format!("error={}", http_util::quoted(e.code.as_str())));
        params.push(format!("error_description={}", http_util::quoted(&e.description)));
    }
    let value = format!("Bearer {}", params.join(", "));
    let mut resp = match err {
        Some(e) => http_util::error_response(e),
        None => {
            let mut r = Response::new(Bytes::new());
            *r.status_mut() = status;
            r
        }
    };
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(http_util::WWW_AUTHENTICATE, v);
    }
    resp
}

/// The 403 answer for an application-level scope check.
pub(crate) fn insufficient_scope(cfg: &Config, index: usize, required: &[String]) -> Response<Bytes> {
    let err = OAuthError::new(ErrorCode::InsufficientScope, MISSING_SCOPE, "The access token lacks required scopes");
    Provider::observe(cfg, "resource", &err, None);
    render(cfg, index, StatusCode::FORBIDDEN, Some(&err), required)
}
