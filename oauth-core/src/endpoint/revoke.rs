//! Token revocation (RFC 7009), at the revocation endpoint and, as the
//! incumbent accepts it, at the token endpoint when a form carries `token`
//! and no `grant_type` (see [`start_with_params`]).
//!
//! # Behaviour
//!
//! * `POST` only (405 with `Allow` otherwise), form-encoded.
//! * The client authenticates exactly as at the token endpoint: Basic,
//!   `client_secret_post`, `client_id` alone for a public client, or, for a
//!   client ID metadata document client, `private_key_jwt` (see `cimd`). A
//!   failure is 401 `invalid_client`, with a Basic challenge when Basic was
//!   attempted (RFC 6749 §5.2).
//! * `token_type_hint` is accepted and ignored (RFC 7009 §2.1 lets the server
//!   ignore it): every credential carries its kind in its prefix, so the
//!   hint can neither speed the lookup up nor be wrong in a way that matters.
//!   An unknown hint is therefore not `unsupported_token_type` either.
//! * Only the client a token was issued to may revoke it. A token of another
//!   client, and an unknown, malformed, expired or already revoked one, is
//!   answered exactly like a successful revocation: 200 with an empty body
//!   (RFC 7009 §2.2), so the endpoint tells nobody whether a token exists.
//!   An unknown access token and another client's one also cost the same
//!   single storage round trip. (A well-formed refresh token whose grant is
//!   gone costs one more, see below; telling that apart from another
//!   client's live grant needs a token of that grant, which already says as
//!   much.)
//! * An access token is revoked alone: its record is deleted and the grant,
//!   its refresh token and its other access tokens live on. RFC 7009 §2.1
//!   lets the server revoke the grant too; not doing so lets a client drop
//!   one leaked or unneeded access token without signing the user out, and a
//!   client that wants the whole grant gone revokes its refresh token.
//! * A refresh token (the current one, or any earlier one of its rotation
//!   chain the grant still remembers) revokes the whole grant: the grant
//!   record, its user-index entry and every access token issued from it
//!   (RFC 7009 §2.1 "SHOULD"), through the shared [`Cascade`].
//! * Authorization codes are not revocable tokens here; presenting one is
//!   answered 200 and changes nothing.
//!
//! # Storage round trips
//!
//! | request | round trips |
//! |---|---|
//! | unrecognised token, unknown or foreign token, failed authentication | 1 |
//! | access token | 2 (read client + token record, delete the record) |
//! | refresh token | 3 (read client + grant, take grant + list tokens, delete tokens + index) |
//! | refresh token of a grant already gone | 2, or 4 when leftovers are swept (below) |
//!
//! If storage fails part-way through a cascade the answer is 503, but the
//! grant is already gone, so the retry the client makes would otherwise find
//! nothing and leave the grant's access tokens alive until they expire. So
//! when a refresh token names a grant that no longer exists, its access
//! tokens are listed, and if any of them was issued to the authenticated
//! client the cascade runs again and deletes them all. (The grant's
//! user-index entry, if it lingers too, no longer names a live grant: grant
//! listings skip it and `Provider::purge_expired` removes it.)

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::cimd::{self, ResolveStep, Resolver};
use crate::client::{self, ClientAuth};
use crate::config::Config;
use crate::crypto::{self, CredentialKind, Digest32, GrantId};
use crate::error::{ErrorCode, OAuthError, Reason, reasons};
use crate::flow::{Flow, Input, Machine, Step, as_entry, as_listed, as_written, one_reply, replies};
use crate::grant::{Cascade, CascadeStep};
use crate::http_util::{self, Params};
use crate::provider::{Outcome, Provider};
use crate::records::{self, AccessRecord, GrantRecord};
use crate::storage::{Entry, StorageOp, StorageRequest};
use crate::time::UnixTime;

/// The request has no `token` parameter.
pub(crate) const TOKEN_MISSING: Reason = Reason::new("revocation_token_missing");

/// The endpoint name given to the error observer.
const ENDPOINT: &str = "revoke";
/// How many access tokens of a vanished grant are examined for one issued to
/// the requesting client (see the module documentation).
const LEFTOVER_PAGE: u32 = 100;

/// Start a revocation request received at the revocation endpoint.
pub(crate) fn start(cfg: Arc<Config>, request: Request<Bytes>, now: UnixTime) -> Flow<Outcome> {
    if request.method() != Method::POST {
        let err = OAuthError::invalid_request(reasons::METHOD_NOT_ALLOWED, "Method not allowed")
            .with_status(StatusCode::METHOD_NOT_ALLOWED);
        Provider::observe(&cfg, ENDPOINT, &err, None);
        // `OPTIONS` is answered by the provider only when CORS is on.
        let allow = if cfg.cors { "POST, OPTIONS" } else { "POST" };
        return Flow::ready(Outcome::Response(http_util::method_not_allowed(allow)));
    }
    let headers = request.headers();
    match http_util::parse_form(headers, request.body(), cfg.form_body_limit) {
        Ok(params) => start_with_params(cfg, headers, params, now),
        Err(e) => Flow::ready(Outcome::Response(render(&cfg, &e, None, basic_attempted(headers)))),
    }
}

/// Start a revocation whose form the caller has already parsed: the token
/// endpoint hands over a request that carries `token` and no `grant_type`.
/// `headers` are the request's (for client authentication).
pub(crate) fn start_with_params(cfg: Arc<Config>, headers: &HeaderMap, params: Params, now: UnixTime) -> Flow<Outcome> {
    let auth = match client::extract(headers, &params) {
        Ok(auth) => auth,
        Err(e) => {
            let resp = render(&cfg, &e, params.get("client_id"), basic_attempted(headers));
            return Flow::ready(Outcome::Response(resp));
        }
    };
    let Some(token) = params.get("token") else {
        let e = OAuthError::invalid_request(TOKEN_MISSING, "token is required");
        return Flow::ready(Outcome::Response(render(&cfg, &e, Some(auth.client_id()), auth.is_basic())));
    };
    let metadata_document = match cfg.cimd.as_ref() {
        Some(policy) if cimd::is_url_client_id(auth.client_id()) => {
            if let Err((reason, description)) = cimd::check_url(auth.client_id(), policy) {
                let e = client::invalid_client(reason, description);
                return Flow::ready(Outcome::Response(render(&cfg, &e, Some(auth.client_id()), auth.is_basic())));
            }
            true
        }
        _ => false,
    };
    // Only the storage identifiers are kept; the token itself is not needed
    // past this point.
    let target = Target::of(token);
    Flow::new(Revoke { cfg, auth, now, target, metadata_document, state: State::Start })
}

/// What the presented token is, judged by its prefix and shape alone.
#[derive(Debug)]
enum Target {
    /// An access token: the key of its record.
    Access { key: String },
    /// A refresh token: its grant and its credential id.
    Refresh { grant_id: GrantId, id: Digest32 },
    /// Anything else, authorization codes included.
    Unrecognised,
}

impl Target {
    fn of(token: &str) -> Self {
        if let Some(p) = crypto::parse(CredentialKind::AccessToken, token) {
            return Self::Access { key: records::token_key(p.grant_id, &crypto::credential_id(token)) };
        }
        if let Some(p) = crypto::parse(CredentialKind::RefreshToken, token) {
            return Self::Refresh { grant_id: p.grant_id, id: crypto::credential_id(token) };
        }
        Self::Unrecognised
    }

    /// The read that goes with the client lookup, if any.
    fn lookup(&self) -> Option<StorageOp> {
        match self {
            Self::Access { key } => Some(StorageOp::Get { key: key.clone() }),
            Self::Refresh { grant_id, .. } => Some(StorageOp::Get { key: records::grant_key(*grant_id) }),
            Self::Unrecognised => None,
        }
    }
}

struct Revoke {
    cfg: Arc<Config>,
    auth: ClientAuth,
    now: UnixTime,
    target: Target,
    /// The client is named by a metadata document URL.
    metadata_document: bool,
    state: State,
}

enum State {
    Start,
    /// Waiting for the client record and the token's record.
    Loaded,
    /// Resolving a metadata-document client; `record` is the token's.
    Resolving {
        resolver: Box<Resolver>,
        record: Option<Entry>,
        refetched: bool,
    },
    /// Spending a client assertion's `jti`.
    AwaitJti {
        record: Option<Entry>,
    },
    /// Waiting for the access record's deletion.
    Deleting,
    /// Waiting for the access tokens of a grant that is gone.
    Leftovers(GrantId),
    /// Running the revocation cascade.
    Cascading(Cascade),
    Finished,
}

impl Machine for Revoke {
    type Output = Outcome;

    fn advance(&mut self, input: Input) -> Step<Outcome> {
        match self.step(input) {
            Ok(step) => step,
            Err(e) => {
                self.state = State::Finished;
                let resp = render(&self.cfg, &e, Some(self.auth.client_id()), self.auth.is_basic());
                Step::Done(Outcome::Response(resp))
            }
        }
    }
}

impl Revoke {
    fn step(&mut self, input: Input) -> Result<Step<Outcome>, OAuthError> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Start => {
                let key = if self.metadata_document {
                    cimd::cache_key(self.auth.client_id())
                } else {
                    records::client_key(self.auth.client_id())
                };
                let mut ops = vec![StorageOp::Get { key }];
                ops.extend(self.target.lookup());
                self.state = State::Loaded;
                Ok(Step::Storage(StorageRequest { now: self.now, ops }))
            }
            State::Loaded => self.loaded(input),
            State::Resolving { mut resolver, record, refetched } => {
                let step = resolver.advance(input);
                self.resolving(*resolver, step, record, refetched)
            }
            State::AwaitJti { record } => {
                if !as_written(one_reply(input)?)? {
                    return Err(client::invalid_client(
                        crate::jose::reasons::ASSERTION_REPLAYED,
                        "The client assertion was already used",
                    ));
                }
                self.authenticated(record)
            }
            State::Deleting => {
                one_reply(input)?;
                Ok(revoked())
            }
            State::Leftovers(grant_id) => {
                let (entries, _) = as_listed(one_reply(input)?)?;
                let client_id = self.auth.client_id();
                let ours = entries
                    .iter()
                    .any(|(_, e)| records::decode::<AccessRecord>(&e.value).is_some_and(|r| r.client_id == client_id));
                if ours { self.cascade(Cascade::new(grant_id, self.now), Input::Start) } else { Ok(revoked()) }
            }
            State::Cascading(cascade) => self.cascade(cascade, input),
            State::Finished => Err(proto()),
        }
    }

    fn loaded(&mut self, input: Input) -> Result<Step<Outcome>, OAuthError> {
        let expected = if matches!(self.target, Target::Unrecognised) { 1 } else { 2 };
        let mut r = replies(input, expected)?.into_iter();
        let client_entry = as_entry(r.next().ok_or_else(proto)?)?;
        let record = match r.next() {
            Some(reply) => as_entry(reply)?,
            None => None,
        };
        if self.metadata_document {
            let need_keys = matches!(self.auth, ClientAuth::Jwt { .. });
            let (resolver, step) =
                Resolver::start(Arc::clone(&self.cfg), self.auth.client_id(), self.now, need_keys, client_entry);
            return self.resolving(resolver, step, record, false);
        }
        let client = client::load(client_entry.as_ref(), self.auth.client_id())
            .ok_or_else(|| client::invalid_client(client::UNKNOWN_CLIENT, "Client authentication failed"))?;
        client::authenticate(&client, &self.auth)?;
        self.authenticated(record)
    }

    /// A metadata-document client: authenticate it once its document (and
    /// keys) are in hand. Its cache entry is not written here; the token
    /// endpoint, which it used to get the token, has done that.
    fn resolving(
        &mut self,
        mut resolver: Resolver,
        step: ResolveStep,
        record: Option<Entry>,
        refetched: bool,
    ) -> Result<Step<Outcome>, OAuthError> {
        let resolved = match step {
            ResolveStep::Storage(request) => {
                self.state = State::Resolving { resolver: Box::new(resolver), record, refetched };
                return Ok(Step::Storage(request));
            }
            ResolveStep::Fetch(request) => {
                self.state = State::Resolving { resolver: Box::new(resolver), record, refetched };
                return Ok(Step::Fetch(request));
            }
            ResolveStep::Done(result) => result?,
        };
        match cimd::authenticate(&self.cfg, &self.auth, &resolved, refetched, false, self.now)? {
            cimd::Authentication::Done => self.authenticated(record),
            cimd::Authentication::RefetchKeys => {
                let step = resolver.refetch_keys(resolved);
                self.resolving(resolver, step, record, true)
            }
            cimd::Authentication::SpendJti(spend) => {
                self.state = State::AwaitJti { record };
                Ok(Step::Storage(StorageRequest { now: self.now, ops: vec![spend] }))
            }
        }
    }

    /// The client is authenticated: revoke what `record` shows it owns.
    fn authenticated(&mut self, record: Option<Entry>) -> Result<Step<Outcome>, OAuthError> {
        match std::mem::replace(&mut self.target, Target::Unrecognised) {
            Target::Unrecognised => Ok(revoked()),
            Target::Access { key } => {
                if !self.owns_access(record.as_ref()) {
                    return Ok(revoked());
                }
                self.state = State::Deleting;
                Ok(Step::Storage(StorageRequest { now: self.now, ops: vec![StorageOp::Delete { key }] }))
            }
            Target::Refresh { grant_id, id } => match record {
                Some(entry) => {
                    if self.owns_refresh(&entry, &id) {
                        self.cascade(Cascade::new(grant_id, self.now), Input::Start)
                    } else {
                        Ok(revoked())
                    }
                }
                None => {
                    let list =
                        StorageOp::List { prefix: records::token_prefix(grant_id), cursor: None, limit: LEFTOVER_PAGE };
                    self.state = State::Leftovers(grant_id);
                    Ok(Step::Storage(StorageRequest { now: self.now, ops: vec![list] }))
                }
            },
        }
    }

    /// Whether a live access record exists and was issued to this client.
    /// An unreadable record is treated as absent, as the bearer check does.
    fn owns_access(&self, entry: Option<&Entry>) -> bool {
        entry
            .and_then(|e| records::decode::<AccessRecord>(&e.value))
            .is_some_and(|r| r.client_id == self.auth.client_id() && !self.now.has_reached(r.expires_at))
    }

    /// Whether the grant belongs to this client and `id` is one of the
    /// refresh tokens of its chain: the current one, the one it replaced, or
    /// an older one still remembered. Presenting any of those to the token
    /// endpoint would end the grant too (as use or as reuse), so revoking with
    /// any of them does. Every id is compared in constant time, whichever
    /// matches.
    fn owns_refresh(&self, entry: &Entry, id: &Digest32) -> bool {
        let Some(grant) = records::decode::<GrantRecord>(&entry.value) else {
            return false;
        };
        let id_hex = crypto::hex(id);
        let slots = [&grant.refresh, &grant.previous_refresh];
        let live = slots.iter().fold(false, |hit, s| hit | s.as_ref().is_some_and(|s| crypto::ct_eq(&s.id, id)));
        let retired =
            grant.retired_refresh.iter().fold(false, |hit, r| hit | crypto::ct_eq(r.as_bytes(), id_hex.as_bytes()));
        (live | retired) && grant.client_id == self.auth.client_id()
    }

    fn cascade(&mut self, mut cascade: Cascade, input: Input) -> Result<Step<Outcome>, OAuthError> {
        match cascade.advance(input) {
            CascadeStep::Storage(request) => {
                self.state = State::Cascading(cascade);
                Ok(Step::Storage(request))
            }
            CascadeStep::Done(result) => result.map(|()| revoked()),
        }
    }
}

/// The one success answer: 200, empty body, not cacheable.
fn revoked() -> Step<Outcome> {
    let resp = http_util::no_store(Response::builder().status(StatusCode::OK))
        .body(Bytes::new())
        .unwrap_or_else(|_| http_util::fallback());
    Step::Done(Outcome::Response(resp))
}

/// An error answer, reported to the observer. `invalid_client` after a Basic
/// attempt carries a Basic challenge (RFC 6749 §5.2), as at the token endpoint.
fn render(cfg: &Config, err: &OAuthError, client_id: Option<&str>, basic: bool) -> Response<Bytes> {
    Provider::observe(cfg, ENDPOINT, err, client_id);
    let mut resp = http_util::error_response(err);
    if err.code == ErrorCode::InvalidClient && basic {
        resp.headers_mut().insert(http_util::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"oauth\""));
    }
    resp
}

/// Whether the request tried HTTP Basic client authentication, including a
/// malformed attempt that never became a [`ClientAuth`].
fn basic_attempted(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(' ').next())
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic"))
}

fn proto() -> OAuthError {
    OAuthError::server_error(reasons::DRIVER_PROTOCOL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_classified_by_prefix_only() {
        let id = GrantId([3; 16]);
        let at = crypto::mint(CredentialKind::AccessToken, id, &[1; 32]);
        let rt = crypto::mint(CredentialKind::RefreshToken, id, &[2; 32]);
        let ac = crypto::mint(CredentialKind::AuthorizationCode, id, &[4; 32]);
        assert!(matches!(Target::of(&at), Target::Access { key } if key.starts_with(&records::token_prefix(id))));
        assert!(matches!(Target::of(&rt), Target::Refresh { grant_id, id: cid }
            if grant_id == id && cid == crypto::credential_id(&rt)));
        assert!(matches!(Target::of(&ac), Target::Unrecognised));
        assert!(matches!(Target::of("mcp_at_short"), Target::Unrecognised));
        assert!(matches!(Target::of(""), Target::Unrecognised));
    }

    #[test]
    fn basic_attempt_is_recognised_by_scheme() {
        let mut h = HeaderMap::new();
        assert!(!basic_attempted(&h));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("basic !!!"));
        assert!(basic_attempted(&h));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert!(!basic_attempted(&h));
    }
}
