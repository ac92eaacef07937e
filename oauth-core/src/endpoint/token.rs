//! The token endpoint (RFC 6749 §3.2, §4.1.3, §6; RFC 7636 §4.5–4.6;
//! RFC 8707 §2.2; RFC 8693; OAuth 2.1 §4.3.1).
//!
//! # Round trips
//!
//! Every grant type reads the client and the grant (or, for token exchange,
//! the subject token's record) in one batch, validates everything, then
//! commits in a second batch: a compare-and-swap of the grant on the revision
//! it read, the new access-token record, and the client's registration
//! renewal when due. Nothing is consumed before every check has passed, so
//! `invalid_target`, `invalid_scope` and PKCE failures leave the code or
//! refresh token usable.
//!
//! A client named by a metadata document URL (`docs/cimd.md`) is read from
//! the document's cache entry in the same first batch; a cache miss fetches
//! the document, and its cache write rides along with the commit. A
//! `private_key_jwt` client costs one more round trip between the two: the
//! assertion's `jti` is spent (`Put IfAbsent`) once the signature and claims
//! check out, before the grant is judged.
//!
//! # Single use
//!
//! A code is redeemed, and a refresh token rotated, by the compare-and-swap:
//! of any number of concurrent requests exactly one commits. The others see
//! the grant changed under them, which is indistinguishable from a replay,
//! and is treated as one: the grant is revoked with everything it issued
//! (RFC 6749 §4.1.2, RFC 9700 §4.14.2). Under [`RefreshPolicy::Grace`] a
//! losing refresh instead re-reads the grant and tries again, since the
//! previous token is legitimately still valid there.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, WWW_AUTHENTICATE};
use http::{Method, Request, Response};
use serde_json::Value;

use crate::cimd::{self, ResolveStep, Resolver};
use crate::client::{self, ClientAuth};
use crate::config::{Config, MIN_TTL_SECS, RefreshPolicy};
use crate::crypto::{self, CredentialKind, GrantId, SymKey};
use crate::endpoint::metadata::TOKEN_EXCHANGE_GRANT;
use crate::error::{ErrorCode, OAuthError, Reason, reasons};
use crate::flow::{Flow, Input, Machine, Step, as_entry, as_written, hook_reply, replies};
use crate::grant::{self, AccessGrant, Cascade, CascadeStep};
use crate::hooks::{HookCall, HookReply, IssuanceContext, IssuanceDecision, IssuanceKind};
use crate::http_util::{self, Params};
use crate::jose;
use crate::pkce;
use crate::provider::{Outcome, Provider};
use crate::records::{self, AccessRecord, ClientRecord, GrantRecord, RefreshSlot, UserGrantRecord};
use crate::resource::same_resource;
use crate::rng::{Entropy, SecureRandom};
use crate::scope::{OFFLINE_ACCESS, narrow, parse_scope};
use crate::storage::{Condition, Entry, StorageOp, StorageRequest};
use crate::time::UnixTime;

const GRANT_TYPE_MISSING: Reason = Reason::new("grant_type_missing");
const GRANT_TYPE_UNSUPPORTED: Reason = Reason::new("grant_type_unsupported");
const CLIENT_GRANT_TYPE: Reason = Reason::new("client_not_registered_for_grant_type");
const CODE_MISSING: Reason = Reason::new("code_missing");
const CODE_INVALID: Reason = Reason::new("code_invalid");
const CODE_EXPIRED: Reason = Reason::new("code_expired");
const CODE_REUSED: Reason = Reason::new("code_reused");
const CODE_WRONG_CLIENT: Reason = Reason::new("code_issued_to_another_client");
const CODE_RACE: Reason = Reason::new("code_redeemed_concurrently");
const VERIFIER_MISSING: Reason = Reason::new("pkce_verifier_missing");
const VERIFIER_MISMATCH: Reason = Reason::new("pkce_verifier_mismatch");
const REDIRECT_MISMATCH: Reason = Reason::new("token_redirect_uri_mismatch");
const REFRESH_MISSING: Reason = Reason::new("refresh_token_missing");
const REFRESH_INVALID: Reason = Reason::new("refresh_token_invalid");
const REFRESH_REUSED: Reason = Reason::new("refresh_token_reused");
const REFRESH_WRONG_CLIENT: Reason = Reason::new("refresh_token_issued_to_another_client");
const REFRESH_RACE: Reason = Reason::new("refresh_token_rotated_concurrently");
const RESOURCE_MISMATCH: Reason = Reason::new("resource_not_granted");
const RESOURCE_MULTIPLE: Reason = Reason::new("resource_multiple");
const SCOPE_MALFORMED: Reason = Reason::new("scope_malformed");
const SCOPE_EXCEEDS_GRANT: Reason = Reason::new("scope_exceeds_grant");
const SUBJECT_MISSING: Reason = Reason::new("subject_token_missing");
const SUBJECT_TYPE: Reason = Reason::new("subject_token_type_unsupported");
const SUBJECT_INVALID: Reason = Reason::new("subject_token_invalid");
const REQUESTED_TYPE: Reason = Reason::new("requested_token_type_unsupported");
const EXCHANGE_CROSS_CLIENT: Reason = Reason::new("exchange_cross_client");
const GRANT_REVOKED_BY_HOOK: Reason = Reason::new("grant_revoked_by_hook");
const ACCESS_COLLISION: Reason = Reason::new("access_token_collision");
const RETRIES_EXHAUSTED: Reason = Reason::new("grant_contended");

const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Longest lifetime the issuance hook may set.
const MAX_TTL_SECS: u64 = 10 * 365 * 86_400;
/// Refresh tokens rotated away that are still recognised as reuse.
const RETIRED_KEPT: usize = 16;
/// How often a `grace` refresh that lost a race re-reads the grant.
const GRACE_RETRIES: u8 = 2;

/// Start a token request.
pub(crate) fn start(
    cfg: Arc<Config>,
    request: Request<Bytes>,
    now: UnixTime,
    rng: &mut dyn SecureRandom,
) -> Flow<Outcome> {
    if request.method() != Method::POST {
        return Flow::ready(Outcome::Response(http_util::method_not_allowed("POST, OPTIONS")));
    }
    let params = match http_util::parse_form(request.headers(), request.body(), cfg.form_body_limit) {
        Ok(p) => p,
        Err(e) => return Flow::ready(Outcome::Response(render(&cfg, &e, None))),
    };
    // RFC 7009 revocation posted to the token endpoint, as the incumbent
    // accepts it: a `token` and no `grant_type`.
    if !params.has("grant_type") && params.has("token") {
        return crate::endpoint::revoke::start_with_params(cfg, request.headers(), params, now);
    }
    let kind = match params.get("grant_type") {
        None => {
            let e = OAuthError::invalid_request(GRANT_TYPE_MISSING, "grant_type is required");
            return Flow::ready(Outcome::Response(render(&cfg, &e, None)));
        }
        Some("authorization_code") => Kind::Code,
        Some("refresh_token") if cfg.refresh_token_ttl.is_some() => Kind::Refresh,
        Some(TOKEN_EXCHANGE_GRANT) if cfg.token_exchange => Kind::Exchange,
        Some(_) => {
            let e = OAuthError::new(ErrorCode::UnsupportedGrantType, GRANT_TYPE_UNSUPPORTED, "Unsupported grant_type");
            return Flow::ready(Outcome::Response(render(&cfg, &e, None)));
        }
    };
    let auth = match client::extract(request.headers(), &params) {
        Ok(a) => a,
        Err(e) => {
            let basic = request.headers().get(http::header::AUTHORIZATION).is_some();
            return Flow::ready(Outcome::Response(render_with_basic(&cfg, &e, None, basic)));
        }
    };
    let metadata_document = match cfg.cimd.as_ref() {
        Some(policy) if cimd::is_url_client_id(auth.client_id()) => {
            if let Err((reason, description)) = cimd::check_url(auth.client_id(), policy) {
                let e = client::invalid_client(reason, description);
                return Flow::ready(Outcome::Response(render(&cfg, &e, Some(&auth))));
            }
            true
        }
        _ => false,
    };
    let entropy = Entropy::draw(rng, grant::MINT_ENTROPY);
    let machine = TokenMachine {
        cfg,
        kind,
        params,
        auth,
        now,
        entropy,
        state: State::Start,
        attempts: 0,
        metadata_document,
        assertion_checked: false,
    };
    Flow::new(machine)
}

/// The error response of the token endpoint: RFC 6749 §5.2 JSON, and for
/// `invalid_client` after a Basic attempt, a Basic challenge.
fn render(cfg: &Config, err: &OAuthError, auth: Option<&ClientAuth>) -> Response<Bytes> {
    render_with_basic(cfg, err, auth.map(ClientAuth::client_id), auth.is_some_and(ClientAuth::is_basic))
}

fn render_with_basic(cfg: &Config, err: &OAuthError, client_id: Option<&str>, basic: bool) -> Response<Bytes> {
    Provider::observe(cfg, "token", err, client_id);
    let mut resp = http_util::error_response(err);
    if err.code == ErrorCode::InvalidClient && basic {
        resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"oauth\""));
    }
    resp
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Code,
    Refresh,
    Exchange,
}

struct TokenMachine {
    cfg: Arc<Config>,
    kind: Kind,
    params: Params,
    auth: ClientAuth,
    now: UnixTime,
    entropy: Entropy,
    state: State,
    attempts: u8,
    /// The client is named by a metadata document URL.
    metadata_document: bool,
    /// A `private_key_jwt` assertion was verified and its `jti` spent; a
    /// `grace` retry must not spend it again.
    assertion_checked: bool,
}

/// What round 1 read besides the client: the grant, or the subject
/// token's record.
struct Loaded {
    grant_id: Option<GrantId>,
    second: Option<Entry>,
}

enum State {
    Start,
    Loaded {
        grant_id: Option<GrantId>,
    },
    /// Resolving a metadata-document client (cache miss, fetches).
    Resolving {
        resolver: Box<Resolver>,
        loaded: Loaded,
        refetched: bool,
    },
    /// Spending the assertion's `jti`.
    AwaitJti {
        client: Box<ClientRecord>,
        loaded: Loaded,
        extra: usize,
    },
    AwaitHook(Box<Validated>),
    Committing(Box<Committed>),
    Revoking {
        cascade: Cascade,
        error: OAuthError,
    },
    Finished,
}

/// What validation established, before anything is written.
struct Validated {
    client: ClientRecord,
    /// The registration as read (for renewal); `None` for metadata documents.
    client_entry: Option<Entry>,
    /// Writes to append to the commit (a metadata document's cache entry).
    extra_ops: Vec<StorageOp>,
    grant_id: GrantId,
    /// The grant and the revision read (code and refresh grants).
    grant: Option<(GrantRecord, u64)>,
    /// The subject token's record (token exchange).
    subject: Option<AccessRecord>,
    key: Option<SymKey>,
    props: Value,
    subject_token_props: Option<Value>,
    access_scope: Vec<String>,
    /// For refresh: which slot the presented token matched.
    matched_previous: bool,
}

/// A prepared commit and the response it will allow.
struct Committed {
    response: Response<Bytes>,
    /// Whether the first op is a grant compare-and-swap.
    has_cas: bool,
    grant_id: GrantId,
}

impl Machine for TokenMachine {
    type Output = Outcome;

    fn advance(&mut self, input: Input) -> Step<Outcome> {
        match self.step(input) {
            Ok(step) => step,
            Err(Failure::Plain(e)) => self.finish_error(e),
            Err(Failure::Revoke(grant_id, e)) => self.revoke_then_fail(grant_id, e),
        }
    }
}

/// How a check failed.
enum Failure {
    /// Answer the error.
    Plain(OAuthError),
    /// Revoke the grant, then answer the error.
    Revoke(GrantId, OAuthError),
}

impl From<OAuthError> for Failure {
    fn from(e: OAuthError) -> Self {
        Self::Plain(e)
    }
}

fn proto() -> OAuthError {
    OAuthError::server_error(reasons::DRIVER_PROTOCOL)
}

fn invalid_grant(reason: Reason, description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, reason, description)
}

impl TokenMachine {
    fn finish_error(&mut self, e: OAuthError) -> Step<Outcome> {
        self.state = State::Finished;
        Step::Done(Outcome::Response(render(&self.cfg, &e, Some(&self.auth))))
    }

    fn revoke_then_fail(&mut self, grant_id: GrantId, error: OAuthError) -> Step<Outcome> {
        let mut cascade = Cascade::new(grant_id, self.now);
        match cascade.advance(Input::Start) {
            CascadeStep::Storage(req) => {
                self.state = State::Revoking { cascade, error };
                Step::Storage(req)
            }
            CascadeStep::Done(_) => self.finish_error(error),
        }
    }

    /// The credential presented for this grant type.
    fn credential(&self) -> Option<&str> {
        match self.kind {
            Kind::Code => self.params.get("code"),
            Kind::Refresh => self.params.get("refresh_token"),
            Kind::Exchange => self.params.get("subject_token"),
        }
    }

    fn credential_kind(&self) -> CredentialKind {
        match self.kind {
            Kind::Code => CredentialKind::AuthorizationCode,
            Kind::Refresh => CredentialKind::RefreshToken,
            Kind::Exchange => CredentialKind::AccessToken,
        }
    }

    fn step(&mut self, input: Input) -> Result<Step<Outcome>, Failure> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Start => self.load(),
            State::Loaded { grant_id } => self.loaded(input, grant_id),
            State::Resolving { mut resolver, loaded, refetched } => {
                let step = resolver.advance(input);
                self.resolving(*resolver, step, loaded, refetched)
            }
            State::AwaitJti { client, loaded, extra } => {
                let mut r = replies(input, 1 + extra)?.into_iter();
                if !as_written(r.next().ok_or_else(proto)?)? {
                    return Err(client::invalid_client(
                        jose::reasons::ASSERTION_REPLAYED,
                        "The client assertion was already used",
                    )
                    .into());
                }
                self.assertion_checked = true;
                let validated = self.validate_grant(*client, None, loaded, Vec::new())?;
                self.validated(validated)
            }
            State::AwaitHook(validated) => {
                let decision = match hook_reply(input)? {
                    HookReply::TokenIssuance(Ok(d)) => d,
                    HookReply::TokenIssuance(Err(e)) => {
                        let revoke = e.code == ErrorCode::InvalidGrant && self.kind != Kind::Exchange;
                        let mut err = e.into_oauth();
                        if revoke {
                            err.reason = GRANT_REVOKED_BY_HOOK;
                            return Err(Failure::Revoke(validated.grant_id, err));
                        }
                        return Err(Failure::Plain(err));
                    }
                    _ => return Err(Failure::Plain(proto())),
                };
                self.commit(*validated, decision)
            }
            State::Committing(committed) => self.committed(input, *committed),
            State::Revoking { mut cascade, error } => match cascade.advance(input) {
                CascadeStep::Storage(req) => {
                    self.state = State::Revoking { cascade, error };
                    Ok(Step::Storage(req))
                }
                // The error is answered whether or not the cascade finished:
                // a storage failure part-way leaves the grant taken (dead).
                CascadeStep::Done(_) => Ok(self.finish_error(error)),
            },
            State::Finished => Err(Failure::Plain(proto())),
        }
    }

    /// Round 1: the client, and the grant or subject token.
    fn load(&mut self) -> Result<Step<Outcome>, Failure> {
        let missing = match self.kind {
            Kind::Code => OAuthError::invalid_request(CODE_MISSING, "code is required"),
            Kind::Refresh => OAuthError::invalid_request(REFRESH_MISSING, "refresh_token is required"),
            Kind::Exchange => OAuthError::invalid_request(SUBJECT_MISSING, "subject_token is required"),
        };
        let credential = self.credential().ok_or(missing)?;
        let parsed = crypto::parse(self.credential_kind(), credential);
        let client_key = if self.metadata_document {
            cimd::cache_key(self.auth.client_id())
        } else {
            records::client_key(self.auth.client_id())
        };
        let mut ops = vec![StorageOp::Get { key: client_key }];
        if let Some(p) = &parsed {
            ops.push(StorageOp::Get {
                key: match self.kind {
                    Kind::Exchange => records::token_key(p.grant_id, &crypto::credential_id(credential)),
                    _ => records::grant_key(p.grant_id),
                },
            });
            // A subject token counts only while its grant exists, exactly as
            // at the resource: read the grant in the same round trip.
            if self.kind == Kind::Exchange {
                ops.push(StorageOp::Get { key: records::grant_key(p.grant_id) });
            }
        }
        self.state = State::Loaded { grant_id: parsed.map(|p| p.grant_id) };
        Ok(Step::Storage(StorageRequest { now: self.now, ops }))
    }

    /// Round 1 answered: find and authenticate the client.
    fn loaded(&mut self, input: Input, grant_id: Option<GrantId>) -> Result<Step<Outcome>, Failure> {
        let expected = match (grant_id.is_some(), self.kind) {
            (false, _) => 1,
            (true, Kind::Exchange) => 3,
            (true, _) => 2,
        };
        let mut r = replies(input, expected)?.into_iter();
        let client_entry = as_entry(r.next().ok_or_else(proto)?)?;
        let second = match r.next() {
            Some(reply) => as_entry(reply)?,
            None => None,
        };
        let grant_live = match r.next() {
            Some(reply) => as_entry(reply)?.is_some(),
            None => true,
        };
        // A subject whose grant is gone is as dead as an unknown one.
        let second = second.filter(|_| grant_live);
        let loaded = Loaded { grant_id, second };
        if self.metadata_document {
            let need_keys = matches!(self.auth, ClientAuth::Jwt { .. }) && !self.assertion_checked;
            let (resolver, step) =
                Resolver::start(Arc::clone(&self.cfg), self.auth.client_id(), self.now, need_keys, client_entry);
            return self.resolving(resolver, step, loaded, false);
        }

        // The client first: RFC 6749 §5.2 puts invalid_client before any
        // judgement of the grant.
        let client = client::load(client_entry.as_ref(), self.auth.client_id())
            .ok_or_else(|| client::invalid_client(client::UNKNOWN_CLIENT, "Client authentication failed"))?;
        let client_entry = client_entry.ok_or_else(proto)?;
        client::authenticate(&client, &self.auth)?;
        let validated = self.validate_grant(client, Some(client_entry), loaded, Vec::new())?;
        self.validated(validated)
    }

    /// Everything is judged: ask the hook, or commit.
    fn validated(&mut self, validated: Validated) -> Result<Step<Outcome>, Failure> {
        if self.cfg.hooks.token_issuance {
            let call = HookCall::TokenIssuance(self.issuance_context(&validated));
            self.state = State::AwaitHook(Box::new(validated));
            return Ok(Step::Hook(call));
        }
        self.commit(validated, IssuanceDecision::default())
    }

    /// A metadata-document client: its document (and keys) resolved, or a
    /// step towards that.
    fn resolving(
        &mut self,
        mut resolver: Resolver,
        step: ResolveStep,
        loaded: Loaded,
        refetched: bool,
    ) -> Result<Step<Outcome>, Failure> {
        let resolved = match step {
            ResolveStep::Storage(request) => {
                self.state = State::Resolving { resolver: Box::new(resolver), loaded, refetched };
                return Ok(Step::Storage(request));
            }
            ResolveStep::Fetch(request) => {
                self.state = State::Resolving { resolver: Box::new(resolver), loaded, refetched };
                return Ok(Step::Fetch(request));
            }
            ResolveStep::Done(result) => result?,
        };
        let client = resolved.document.client.clone();
        let extra_ops: Vec<StorageOp> = resolved.cache_write.iter().cloned().collect();
        let verdict =
            cimd::authenticate(&self.cfg, &self.auth, &resolved, refetched, self.assertion_checked, self.now)?;
        match verdict {
            cimd::Authentication::Done => {
                let validated = self.validate_grant(client, None, loaded, extra_ops)?;
                self.validated(validated)
            }
            cimd::Authentication::RefetchKeys => {
                let step = resolver.refetch_keys(resolved);
                self.resolving(resolver, step, loaded, true)
            }
            cimd::Authentication::SpendJti(spend) => {
                let extra = extra_ops.len();
                let mut ops = vec![spend];
                ops.extend(extra_ops);
                self.state = State::AwaitJti { client: Box::new(client), loaded, extra };
                Ok(Step::Storage(StorageRequest { now: self.now, ops }))
            }
        }
    }

    /// Judge the grant for an authenticated client.
    fn validate_grant(
        &mut self,
        client: ClientRecord,
        client_entry: Option<Entry>,
        loaded: Loaded,
        extra_ops: Vec<StorageOp>,
    ) -> Result<Validated, Failure> {
        let Loaded { grant_id, second } = loaded;
        let grant_type = match self.kind {
            Kind::Code => "authorization_code",
            Kind::Refresh => "refresh_token",
            Kind::Exchange => TOKEN_EXCHANGE_GRANT,
        };
        if !client.grant_types.iter().any(|g| g == grant_type) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                CLIENT_GRANT_TYPE,
                "The client is not registered for this grant type",
            )
            .into());
        }

        let resource_param = match self.params.resources() {
            [] => None,
            [one] => Some(one.clone()),
            _ => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    RESOURCE_MULTIPLE,
                    "Request one resource at a time",
                )
                .into());
            }
        };

        let invalid = || match self.kind {
            Kind::Code => invalid_grant(CODE_INVALID, "The authorization code is invalid"),
            Kind::Refresh => invalid_grant(REFRESH_INVALID, "The refresh token is invalid"),
            Kind::Exchange => invalid_grant(SUBJECT_INVALID, "The subject token is invalid"),
        };
        let grant_id = grant_id.ok_or_else(invalid)?;
        let entry = second.ok_or_else(invalid)?;
        let credential = self.credential().ok_or_else(proto)?.to_owned();

        let mut validated = match self.kind {
            Kind::Code => self.validate_code(client, client_entry, grant_id, &entry, &credential, resource_param),
            Kind::Refresh => self.validate_refresh(client, client_entry, grant_id, &entry, &credential, resource_param),
            Kind::Exchange => {
                self.validate_exchange(client, client_entry, grant_id, &entry, &credential, resource_param)
            }
        }?;
        validated.extra_ops = extra_ops;
        Ok(validated)
    }

    fn check_resource(&self, requested: Option<&str>, granted: &str) -> Result<(), OAuthError> {
        let Some(requested) = requested else { return Ok(()) };
        let known = self.cfg.resources.iter().find(|r| r.resource.as_str() == granted);
        if known.is_some_and(|r| same_resource(requested, &r.resource)) {
            Ok(())
        } else {
            Err(OAuthError::new(ErrorCode::InvalidTarget, RESOURCE_MISMATCH, "The resource was not granted"))
        }
    }

    /// The scopes for the access token: the grant's, or the narrower set the
    /// request asks for; never `offline_access`, which is not a permission
    /// on the resource.
    fn scope_for(&self, granted: &[String]) -> Result<Vec<String>, OAuthError> {
        let scope = match self.params.get("scope") {
            None => granted.to_vec(),
            Some(s) => {
                let requested = parse_scope(s)
                    .ok_or_else(|| OAuthError::new(ErrorCode::InvalidScope, SCOPE_MALFORMED, "scope is malformed"))?;
                let allowed = narrow(&requested, granted, &self.cfg.scope_implies);
                if allowed.len() != requested.len() || requested.is_empty() {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidScope,
                        SCOPE_EXCEEDS_GRANT,
                        "The requested scope exceeds the grant",
                    ));
                }
                allowed
            }
        };
        Ok(scope.into_iter().filter(|s| s != OFFLINE_ACCESS).collect())
    }

    fn validate_code(
        &self,
        client: ClientRecord,
        client_entry: Option<Entry>,
        grant_id: GrantId,
        entry: &Entry,
        code: &str,
        resource: Option<String>,
    ) -> Result<Validated, Failure> {
        let verifier = self
            .params
            .get("code_verifier")
            .ok_or_else(|| OAuthError::invalid_request(VERIFIER_MISSING, "code_verifier is required"))?;
        let grant: GrantRecord =
            records::decode(&entry.value).ok_or_else(|| OAuthError::server_error(reasons::CORRUPT_RECORD))?;
        let code_id = crypto::credential_id(code);
        let Some(state) = grant.code.as_ref() else {
            // The code was redeemed already. If it is this very code, it is a
            // replay: revoke everything the grant issued (RFC 6749 §4.1.2).
            if grant.redeemed_code.is_some_and(|id| crypto::ct_eq(&id, &code_id)) {
                return Err(Failure::Revoke(
                    grant_id,
                    invalid_grant(CODE_REUSED, "The authorization code was already used"),
                ));
            }
            return Err(invalid_grant(CODE_INVALID, "The authorization code is invalid").into());
        };
        if !crypto::ct_eq(&state.id, &code_id) {
            return Err(invalid_grant(CODE_INVALID, "The authorization code is invalid").into());
        }
        if grant.client_id != client.client_id {
            return Err(invalid_grant(CODE_WRONG_CLIENT, "The authorization code was issued to another client").into());
        }
        if self.now.has_reached(state.expires_at) {
            return Err(invalid_grant(CODE_EXPIRED, "The authorization code expired").into());
        }
        match self.params.get("redirect_uri") {
            Some(uri) if uri != state.redirect_uri => {
                return Err(
                    invalid_grant(REDIRECT_MISMATCH, "redirect_uri does not match the authorization request").into()
                );
            }
            None if state.redirect_uri_explicit => {
                return Err(invalid_grant(REDIRECT_MISMATCH, "redirect_uri is required").into());
            }
            _ => {}
        }
        self.check_resource(resource.as_deref(), &grant.resource)?;
        if !pkce::verify_s256(verifier, &state.challenge) {
            return Err(invalid_grant(VERIFIER_MISMATCH, "code_verifier does not match the code_challenge").into());
        }
        let key = grant::unwrap_with_code(code, &grant.grant_id, &state.wrapped_key)?;
        let props = grant::open_props(&key, &grant)?;
        let access_scope = grant.scope.iter().filter(|s| *s != OFFLINE_ACCESS).cloned().collect();
        Ok(Validated {
            client,
            client_entry,
            extra_ops: Vec::new(),
            grant_id,
            grant: Some((grant, entry.revision)),
            subject: None,
            key: Some(key),
            props,
            subject_token_props: None,
            access_scope,
            matched_previous: false,
        })
    }

    fn validate_refresh(
        &self,
        client: ClientRecord,
        client_entry: Option<Entry>,
        grant_id: GrantId,
        entry: &Entry,
        token: &str,
        resource: Option<String>,
    ) -> Result<Validated, Failure> {
        let grant: GrantRecord =
            records::decode(&entry.value).ok_or_else(|| OAuthError::server_error(reasons::CORRUPT_RECORD))?;
        let id = crypto::credential_id(token);
        let is = |slot: &Option<RefreshSlot>| slot.as_ref().is_some_and(|s| crypto::ct_eq(&s.id, &id));
        let matched_current = is(&grant.refresh);
        let matched_previous = !matched_current && is(&grant.previous_refresh);
        let id_hex = crypto::hex(&id);
        let retired = grant.retired_refresh.iter().any(|r| crypto::ct_eq(r.as_bytes(), id_hex.as_bytes()));
        // Under `grace`, an old token may come from a second tab that lost a
        // race, so it is refused without revoking; `strict` treats any reuse
        // as theft.
        let reused = match self.cfg.refresh_policy {
            RefreshPolicy::Strict => matched_previous || retired,
            _ => false,
        };
        if reused {
            return Err(Failure::Revoke(grant_id, invalid_grant(REFRESH_REUSED, "The refresh token was already used")));
        }
        if !matched_current && !matched_previous {
            return Err(invalid_grant(REFRESH_INVALID, "The refresh token is invalid").into());
        }
        if grant.client_id != client.client_id {
            return Err(invalid_grant(REFRESH_WRONG_CLIENT, "The refresh token was issued to another client").into());
        }
        self.check_resource(resource.as_deref(), &grant.resource)?;
        let access_scope = self.scope_for(&grant.scope)?;
        let slot = if matched_current { grant.refresh.as_ref() } else { grant.previous_refresh.as_ref() };
        let wrapped = slot.map(|s| s.wrapped_key.clone()).ok_or_else(proto)?;
        let key = grant::unwrap_with_refresh(token, &grant.grant_id, &wrapped)?;
        let props = grant::open_props(&key, &grant)?;
        Ok(Validated {
            client,
            client_entry,
            extra_ops: Vec::new(),
            grant_id,
            grant: Some((grant, entry.revision)),
            subject: None,
            key: Some(key),
            props,
            subject_token_props: None,
            access_scope,
            matched_previous,
        })
    }

    fn validate_exchange(
        &self,
        client: ClientRecord,
        client_entry: Option<Entry>,
        grant_id: GrantId,
        entry: &Entry,
        token: &str,
        resource: Option<String>,
    ) -> Result<Validated, Failure> {
        if self.params.get("subject_token_type") != Some(ACCESS_TOKEN_TYPE) {
            return Err(OAuthError::invalid_request(SUBJECT_TYPE, "subject_token_type must be an access token").into());
        }
        if self.params.get("requested_token_type").is_some_and(|t| t != ACCESS_TOKEN_TYPE) {
            return Err(OAuthError::invalid_request(REQUESTED_TYPE, "Only access tokens can be requested").into());
        }
        let record: AccessRecord =
            records::decode(&entry.value).ok_or_else(|| OAuthError::server_error(reasons::CORRUPT_RECORD))?;
        if self.now.has_reached(record.expires_at) {
            return Err(invalid_grant(SUBJECT_INVALID, "The subject token is invalid").into());
        }
        // Exchange narrows what the same client already holds; it never
        // hands a token to another client (that would be a confused deputy).
        if record.client_id != client.client_id {
            return Err(invalid_grant(EXCHANGE_CROSS_CLIENT, "The subject token was issued to another client").into());
        }
        let audience = self.params.get("audience");
        if let Some(a) = audience {
            self.check_resource(Some(a), &record.audience)?;
        }
        self.check_resource(resource.as_deref(), &record.audience)?;
        let access_scope = self.scope_for(&record.scope)?;
        let (props, token_props) = grant::open_access_props(token, &record)
            .ok_or_else(|| invalid_grant(SUBJECT_INVALID, "The subject token is invalid"))?;
        Ok(Validated {
            client,
            client_entry,
            extra_ops: Vec::new(),
            grant_id,
            grant: None,
            subject: Some(record),
            key: None,
            props,
            subject_token_props: Some(token_props),
            access_scope,
            matched_previous: false,
        })
    }

    fn issuance_context(&self, v: &Validated) -> IssuanceContext {
        let (user_id, grant_scope, resource) = match (&v.grant, &v.subject) {
            (Some((g, _)), _) => (g.user_id.clone(), g.scope.clone(), g.resource.clone()),
            (None, Some(s)) => (s.user_id.clone(), s.scope.clone(), s.audience.clone()),
            (None, None) => (String::new(), Vec::new(), String::new()),
        };
        IssuanceContext {
            kind: match self.kind {
                Kind::Code => IssuanceKind::AuthorizationCode,
                Kind::Refresh => IssuanceKind::RefreshToken,
                Kind::Exchange => IssuanceKind::TokenExchange,
            },
            client_id: v.client.client_id.clone(),
            user_id,
            grant_id: v.grant_id.to_hex(),
            grant_scope,
            scope: v.access_scope.clone(),
            resource,
            props: v.props.clone(),
        }
    }

    /// Round 2: mint, and write the grant's new state, the access token and
    /// any client renewal in one batch.
    fn commit(&mut self, v: Validated, decision: IssuanceDecision) -> Result<Step<Outcome>, Failure> {
        let clamp = |t: u64| t.clamp(MIN_TTL_SECS, MAX_TTL_SECS);
        let mut access_scope = v.access_scope.clone();
        if let Some(narrower) = &decision.access_token_scope {
            access_scope.retain(|s| narrower.contains(s));
        }
        let access_ttl = decision.access_token_ttl.map_or(self.cfg.access_token_ttl, clamp);
        let props = decision.new_props.clone().unwrap_or_else(|| v.props.clone());
        let token_props = match (&decision.access_token_props, &v.subject_token_props) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(p)) if !p.is_null() => Some(p.clone()),
            _ => None,
        };

        let mut ops = Vec::new();
        let mut refresh_token = None;
        let (user_id, audience, mut access_expires) = match (&v.grant, &v.subject) {
            (Some((g, _)), _) => (g.user_id.clone(), g.resource.clone(), self.now.plus(access_ttl)),
            (None, Some(s)) => (s.user_id.clone(), s.audience.clone(), self.now.plus(access_ttl).min(s.expires_at)),
            (None, None) => return Err(proto().into()),
        };

        if let (Some((grant, revision)), Some(key)) = (&v.grant, &v.key) {
            let mut next = grant.clone();
            if let Some(p) = &decision.new_props {
                next.props = grant::seal_props(key, &grant.grant_id, p, &mut self.entropy)?;
            }
            match self.kind {
                Kind::Code => {
                    next.redeemed_code = next.code.take().map(|c| c.id);
                    if self.issues_refresh(&v.client, grant) {
                        let (token, slot) = grant::mint_refresh(v.grant_id, key, self.now, &mut self.entropy)?;
                        let ttl =
                            decision.refresh_token_ttl.map(clamp).or_else(|| self.cfg.refresh_token_ttl.flatten());
                        next.refresh = Some(slot);
                        next.refresh_idle_ttl = self.cfg.refresh_token_idle_ttl;
                        next.refresh_expires_at = ttl.map(|t| self.now.plus(t));
                        refresh_token = Some(token);
                    }
                }
                _ => {
                    let (token, slot) = grant::mint_refresh(v.grant_id, key, self.now, &mut self.entropy)?;
                    let presented = if v.matched_previous { next.previous_refresh.take() } else { next.refresh.take() };
                    let other = if v.matched_previous { next.refresh.take() } else { next.previous_refresh.take() };
                    // The presented token becomes `previous`; under `strict`
                    // it is never accepted again but recognised as reuse.
                    // A token displaced from `previous` is retired.
                    if let Some(o) = other {
                        next.retired_refresh.push(crypto::hex(&o.id));
                    }
                    let excess = next.retired_refresh.len().saturating_sub(RETIRED_KEPT);
                    next.retired_refresh.drain(..excess);
                    next.previous_refresh = presented;
                    next.refresh = Some(slot);
                    refresh_token = Some(token);
                }
            }
            // The grant lives as long as its refresh token can, or, without
            // one, as long as its last access token.
            next.expires_at = if next.refresh.is_some() {
                grant::grant_expiry(next.refresh_expires_at, next.refresh_idle_ttl, self.now)
            } else {
                Some(access_expires)
            };
            if let Some(end) = next.expires_at {
                // Never past the grant: the token would stop working at the
                // grant's end while claiming a later `expires_at`.
                access_expires = access_expires.min(end);
            }
            ops.push(grant::put_grant(
                v.grant_id,
                &next,
                revision.saturating_add(1),
                Condition::IfRevision(*revision),
            )?);
            if self.kind == Kind::Code {
                let index = UserGrantRecord {
                    grant_id: next.grant_id.clone(),
                    client_id: next.client_id.clone(),
                    resource: next.resource.clone(),
                    scope: next.scope.clone(),
                    metadata: next.metadata.clone(),
                    created_at: next.created_at,
                };
                ops.push(StorageOp::Put {
                    key: records::user_grant_key(&next.user_id, v.grant_id),
                    value: records::encode(&index).ok_or_else(|| OAuthError::server_error(reasons::CRYPTO_FAILED))?,
                    revision: 1,
                    // With idle expiry the index may outlive the grant; the
                    // purge helper removes such orphans.
                    expires_at: if next.refresh.is_some() { next.refresh_expires_at } else { next.expires_at },
                    condition: Condition::Always,
                });
            }
        }

        let access = AccessGrant {
            grant_id: v.grant_id,
            user_id: &user_id,
            client_id: &v.client.client_id,
            audience: &audience,
            scope: access_scope.clone(),
            props: &props,
            token_props: token_props.as_ref(),
            expires_at: access_expires,
        };
        let (access_token, access_op) = grant::mint_access(&access, self.now, &mut self.entropy)?;
        let has_cas = v.grant.is_some();
        ops.push(access_op);
        if let Some(renew) = v.client_entry.as_ref().and_then(|e| client::renewal(&v.client, e, self.now)) {
            ops.push(renew);
        }
        // Trailing writes whose replies are not read: the cache is an
        // optimisation and changes nothing whether or not it lands.
        ops.extend(v.extra_ops.iter().cloned());

        let expires_in = self.now.until(access_expires);
        let mut response =
            grant::token_response(&access_token, expires_in, refresh_token.as_deref(), &access_scope, &audience);
        if self.kind == Kind::Exchange {
            if let Ok(mut body) = serde_json::from_slice::<Value>(response.body()) {
                if let Some(obj) = body.as_object_mut() {
                    obj.insert("issued_token_type".into(), Value::String(ACCESS_TOKEN_TYPE.into()));
                }
                let status = response.status();
                response = http_util::json(status, &body, false);
            }
        }
        self.state = State::Committing(Box::new(Committed { response, has_cas, grant_id: v.grant_id }));
        Ok(Step::Storage(StorageRequest { now: self.now, ops }))
    }

    /// Refresh tokens go to clients registered for the grant, and, when the
    /// provider follows the OIDC convention, only with `offline_access`.
    fn issues_refresh(&self, client: &ClientRecord, grant: &GrantRecord) -> bool {
        self.cfg.refresh_token_ttl.is_some()
            && client.grant_types.iter().any(|g| g == "refresh_token")
            && (!self.cfg.refresh_requires_offline_access || grant.scope.iter().any(|s| s == OFFLINE_ACCESS))
    }

    fn committed(&mut self, input: Input, c: Committed) -> Result<Step<Outcome>, Failure> {
        let r = match input {
            Input::Storage(Ok(r)) => r,
            other => {
                replies(other, usize::MAX)?;
                return Err(proto().into());
            }
        };
        let mut r = r.into_iter();
        if c.has_cas && !as_written(r.next().ok_or_else(proto)?)? {
            // Someone else changed the grant between our read and write.
            return match (self.kind, self.cfg.refresh_policy) {
                (Kind::Refresh, RefreshPolicy::Grace) if self.attempts < GRACE_RETRIES => {
                    self.attempts = self.attempts.saturating_add(1);
                    // Undo nothing: the access record we wrote is unusable
                    // (its secret was never sent) and dies with its TTL.
                    self.load()
                }
                (Kind::Refresh, RefreshPolicy::Grace) => Err(OAuthError::unavailable(RETRIES_EXHAUSTED).into()),
                (Kind::Refresh, _) => {
                    Err(Failure::Revoke(c.grant_id, invalid_grant(REFRESH_RACE, "The refresh token was already used")))
                }
                _ => Err(Failure::Revoke(
                    c.grant_id,
                    invalid_grant(CODE_RACE, "The authorization code was already used"),
                )),
            };
        }
        // Skip the user-index write of a code exchange; then the access token.
        if c.has_cas && self.kind == Kind::Code {
            r.next();
        }
        if !as_written(r.next().ok_or_else(proto)?)? {
            return Err(OAuthError::server_error(ACCESS_COLLISION).into());
        }
        self.state = State::Finished;
        Ok(Step::Done(Outcome::Response(c.response)))
    }
}
