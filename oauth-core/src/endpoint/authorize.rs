//! The authorization endpoint's protocol half (RFC 6749 §4.1.1–4.1.2,
//! RFC 7636, RFC 8707, RFC 9207).
//!
//! The page itself belongs to the application: it signs the user in and asks
//! for consent. The core gives it three helpers:
//!
//! * [`Provider::parse_authorization_request`] validates the request. Until
//!   the client and its redirect URI are known to be good, failures are
//!   [`AuthorizationError::Invalid`]: show an error page, never redirect
//!   (RFC 6749 §4.1.2.1), so the endpoint cannot be used as an open
//!   redirector. After that, failures are [`AuthorizationError::Redirect`],
//!   carrying `state` and `iss` back to the client.
//! * [`Provider::complete_authorization`] records the grant for a user and
//!   returns the redirect carrying `code`, `state` and `iss`.
//! * [`Provider::deny_authorization`] returns the `access_denied` redirect.

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, Uri};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::cimd::{self, ResolveStep, Resolver};
use crate::client;
use crate::config::Config;
use crate::crypto::GrantId;
use crate::error::{ErrorCode, OAuthError, Reason, reasons};
use crate::flow::{Flow, Input, Machine, Step, as_entry, as_listed, as_written, replies};
use crate::grant::{self, Cascade, CascadeStep};
use crate::http_util::{self, Params};
use crate::pkce;
use crate::provider::Provider;
use crate::records::{self, ClientRecord, CodeState, GrantRecord, UserGrantRecord};
use crate::redirect_uri::find_match;
use crate::resource::same_resource;
use crate::rng::{Entropy, SecureRandom};
use crate::scope::parse_scope;
use crate::storage::Reply;
use crate::storage::{Condition, StorageOp, StorageRequest};
use crate::time::UnixTime;

const MISSING_CLIENT_ID: Reason = Reason::new("authorize_client_id_missing");
const UNKNOWN_CLIENT: Reason = Reason::new("authorize_client_unknown");
const REDIRECT_MISMATCH: Reason = Reason::new("redirect_uri_mismatch");
const REDIRECT_REQUIRED: Reason = Reason::new("redirect_uri_required");
const BAD_QUERY: Reason = Reason::new("authorize_bad_query");
const RESPONSE_TYPE_MISSING: Reason = Reason::new("response_type_missing");
const RESPONSE_TYPE_UNSUPPORTED: Reason = Reason::new("response_type_unsupported");
const RESPONSE_MODE_UNSUPPORTED: Reason = Reason::new("response_mode_unsupported");
const CLIENT_GRANT_TYPE: Reason = Reason::new("client_not_registered_for_code");
const PKCE_MISSING: Reason = Reason::new("pkce_challenge_missing");
const PKCE_METHOD: Reason = Reason::new("pkce_method_not_s256");
const PKCE_SYNTAX: Reason = Reason::new("pkce_challenge_malformed");
const SCOPE_MALFORMED: Reason = Reason::new("scope_malformed");
const SCOPE_NOT_ALLOWED: Reason = Reason::new("scope_not_allowed");
const RESOURCE_INVALID: Reason = Reason::new("resource_invalid");
const RESOURCE_MULTIPLE: Reason = Reason::new("resource_multiple");
const REQUEST_OBJECT: Reason = Reason::new("request_object_unsupported");
const USER_ID_INVALID: Reason = Reason::new("user_id_invalid");
const APPROVED_SCOPE_INVALID: Reason = Reason::new("approved_scope_invalid");
const GRANT_ID_COLLISION: Reason = Reason::new("grant_id_collision");
pub(crate) const ACCESS_DENIED: Reason = Reason::new("access_denied_by_user");

/// Random bytes `complete_authorization` draws: grant id, grant key, code
/// secret and two nonces.
const COMPLETE_ENTROPY: usize = 128;
/// How many of a user's grants are examined when earlier grants to the same
/// client and resource are revoked.
const EXISTING_GRANTS_PAGE: u32 = 1000;

/// A validated authorization request.
///
/// It is serialisable so an application may carry it through its consent
/// page (for example in a signed or server-side session); whatever it comes
/// back as, [`Provider::complete_authorization`] re-checks the client and
/// redirect URI against storage before issuing anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthorizationRequest {
    /// The client.
    pub client_id: String,
    /// The client's registered name, for the consent screen.
    pub client_name: Option<String>,
    /// The client's home page, for the consent screen.
    pub client_uri: Option<String>,
    /// Where the response goes (validated against the registration).
    pub redirect_uri: String,
    /// Whether the request named `redirect_uri` itself; the token request
    /// must then repeat it.
    pub redirect_uri_explicit: bool,
    /// The client's opaque `state`, returned unchanged.
    pub state: Option<String>,
    /// The scopes requested (or defaulted).
    pub scope: Vec<String>,
    /// The canonical resource (audience) the tokens will be for.
    pub resource: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
}

impl AuthorizationRequest {
    /// For a client named by a client ID metadata document URL, that URL's
    /// host (with a non-default port), to show on the consent screen next to
    /// the document's `client_name`: the name is the client's claim, the
    /// host is what it proved by serving the document (CIMD draft §8.4).
    /// `None` for registered clients.
    pub fn client_id_host(&self) -> Option<String> {
        if !cimd::is_url_client_id(&self.client_id) {
            return None;
        }
        let url = Url::parse(&self.client_id).ok()?;
        let host = url.host_str()?;
        Some(match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        })
    }

    /// The host the user will be sent back to, to show on the consent
    /// screen so users can spot a look-alike client.
    pub fn redirect_host(&self) -> Option<String> {
        let url = Url::parse(&self.redirect_uri).ok()?;
        match url.host_str() {
            Some(h) => Some(match url.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            }),
            None => Some(format!("{}:", url.scheme())),
        }
    }
}

/// Why an authorization request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorizationError {
    /// The client or redirect URI could not be validated: tell the user,
    /// and never redirect.
    Invalid(OAuthError),
    /// Send the user agent to `location`, which carries the error, `state`
    /// and `iss` to the client.
    Redirect {
        /// The error redirect URL.
        location: String,
        /// The error, for logs and the error hook.
        error: OAuthError,
    },
}

impl AuthorizationError {
    /// The error, whichever way it is delivered.
    pub fn error(&self) -> &OAuthError {
        match self {
            Self::Invalid(e) | Self::Redirect { error: e, .. } => e,
        }
    }

    /// A response: 400 with a JSON error body, or a 302 to the client.
    pub fn into_response(self) -> Response<Bytes> {
        match self {
            Self::Invalid(e) => http_util::error_response(&e),
            Self::Redirect { location, .. } => http_util::redirect(&location),
        }
    }
}

impl From<OAuthError> for AuthorizationError {
    fn from(e: OAuthError) -> Self {
        Self::Invalid(e)
    }
}

/// The user's decision to authorize, as the application records it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Approval {
    /// The user (at most 256 bytes, no control characters).
    pub user_id: String,
    /// The scopes granted (normally the request's, possibly fewer).
    pub scope: Vec<String>,
    /// Application data, encrypted at rest, handed to API handlers.
    pub props: Value,
    /// Non-secret metadata kept in plaintext, shown in grant listings.
    pub metadata: Value,
}

impl Approval {
    /// Approve `scope` for `user_id` with `props`.
    pub fn new(user_id: impl Into<String>, scope: Vec<String>, props: Value) -> Self {
        Self { user_id: user_id.into(), scope, props, metadata: Value::Null }
    }

    /// Attach plaintext metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }
}

/// A completed authorization.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompletedAuthorization {
    /// Where to send the user agent: the client's redirect URI with `code`,
    /// `state` and `iss`.
    pub redirect_to: String,
    /// The new grant's id.
    pub grant_id: String,
    /// How many earlier grants of this user to this client and resource
    /// were revoked.
    pub revoked_grants: usize,
}

impl CompletedAuthorization {
    /// The 302 response.
    pub fn into_response(self) -> Response<Bytes> {
        http_util::redirect(&self.redirect_to)
    }
}

impl Provider {
    /// Validate an authorization request from its URI (the query string).
    /// One storage round trip: the client lookup. A client ID metadata
    /// document that is not cached is fetched ([`Step::Fetch`]) and then
    /// cached, one more round trip.
    pub fn parse_authorization_request(
        &self,
        uri: &Uri,
        now: UnixTime,
    ) -> Flow<Result<AuthorizationRequest, AuthorizationError>> {
        let cfg = self.shared_config();
        let params = match Params::parse(uri.query().unwrap_or("").as_bytes()) {
            Ok(p) => p,
            Err(e) => return Flow::ready(Err(invalid(&cfg, e.with_reason(BAD_QUERY), None))),
        };
        let Some(client_id) = params.get("client_id").map(str::to_owned) else {
            let e = OAuthError::invalid_request(MISSING_CLIENT_ID, "client_id is required");
            return Flow::ready(Err(invalid(&cfg, e, None)));
        };
        let metadata_document = match uses_metadata_document(&cfg, &client_id) {
            Ok(m) => m,
            Err(e) => return Flow::ready(Err(invalid(&cfg, e, Some(&client_id)))),
        };
        Flow::new(ParseMachine { cfg, params, client_id, now, metadata_document, state: ParseState::Start })
    }

    /// Record the user's approval of `request` and return the redirect that
    /// carries the authorization code. The client and redirect URI are
    /// re-validated first, so a request that was tampered with on its way
    /// through the consent page is refused.
    pub fn complete_authorization(
        &self,
        request: &AuthorizationRequest,
        approval: Approval,
        now: UnixTime,
        rng: &mut dyn SecureRandom,
    ) -> Flow<Result<CompletedAuthorization, OAuthError>> {
        let cfg = self.shared_config();
        if approval.user_id.is_empty() || approval.user_id.len() > 256 || approval.user_id.chars().any(char::is_control)
        {
            let e = OAuthError::invalid_request(
                USER_ID_INVALID,
                "user_id must be 1 to 256 bytes without control characters",
            );
            return Flow::ready(Err(e));
        }
        if approval.scope.iter().any(|s| !crate::scope::is_scope_token(s)) {
            return Flow::ready(Err(OAuthError::new(
                ErrorCode::InvalidScope,
                APPROVED_SCOPE_INVALID,
                "Approved scope is malformed",
            )));
        }
        let metadata_document = match uses_metadata_document(&cfg, &request.client_id) {
            Ok(m) => m,
            Err(e) => return Flow::ready(Err(e)),
        };
        let entropy = Entropy::draw(rng, COMPLETE_ENTROPY);
        Flow::new(CompleteMachine {
            cfg,
            metadata_document,
            request: request.clone(),
            approval,
            now,
            entropy,
            state: CompleteState::Start,
            revoked: 0,
        })
    }

    /// The redirect that tells the client the user refused
    /// (`error=access_denied`, with `state` and `iss`).
    pub fn deny_authorization(&self, request: &AuthorizationRequest) -> String {
        let e = OAuthError::new(ErrorCode::AccessDenied, ACCESS_DENIED, "The user denied the request");
        Self::observe(self.config(), "authorize", &e, Some(&request.client_id));
        error_location(&self.config().issuer, &request.redirect_uri, request.state.as_deref(), &e)
    }
}

impl OAuthError {
    fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = reason;
        self
    }
}

/// Whether `client_id` names a client ID metadata document (the feature is
/// on and the id is URL-shaped); an unacceptable URL is refused here,
/// before any storage or network.
fn uses_metadata_document(cfg: &Config, client_id: &str) -> Result<bool, OAuthError> {
    let Some(policy) = cfg.cimd.as_ref() else { return Ok(false) };
    if !cimd::is_url_client_id(client_id) {
        return Ok(false);
    }
    cimd::check_url(client_id, policy).map(|_| true).map_err(|(reason, d)| OAuthError::invalid_request(reason, d))
}

/// The client key read first: the registration, or the document's cache.
fn client_lookup(client_id: &str, metadata_document: bool) -> StorageOp {
    let key = if metadata_document { cimd::cache_key(client_id) } else { records::client_key(client_id) };
    StorageOp::Get { key }
}

/// At the authorization endpoint a client that cannot be identified is
/// `invalid_request` shown to the user (RFC 6749 §4.1.2.1 has no
/// `invalid_client`); the reason says why.
fn at_authorization_endpoint(mut e: OAuthError) -> OAuthError {
    if e.code == ErrorCode::InvalidClient {
        e.code = ErrorCode::InvalidRequest;
        e.status = ErrorCode::InvalidRequest.default_status();
    }
    e
}

fn invalid(cfg: &Config, e: OAuthError, client_id: Option<&str>) -> AuthorizationError {
    Provider::observe(cfg, "authorize", &e, client_id);
    AuthorizationError::Invalid(e)
}

/// `redirect_uri` with the response parameters appended to its query.
fn with_params(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            url.into()
        }
        // Registered URIs always parse; this keeps the function total.
        Err(_) => redirect_uri.to_owned(),
    }
}

/// The error redirect (RFC 6749 §4.1.2.1 with RFC 9207 `iss`).
fn error_location(issuer: &str, redirect_uri: &str, state: Option<&str>, e: &OAuthError) -> String {
    let mut params = vec![("error", e.code.as_str()), ("error_description", e.description.as_ref())];
    if let Some(s) = state {
        params.push(("state", s));
    }
    params.push(("iss", issuer));
    with_params(redirect_uri, &params)
}

struct ParseMachine {
    cfg: Arc<Config>,
    params: Params,
    client_id: String,
    now: UnixTime,
    metadata_document: bool,
    state: ParseState,
}

enum ParseState {
    Start,
    Loading,
    Resolving(Box<Resolver>),
    /// The answer is decided; a cache write is in flight.
    Caching(Result<AuthorizationRequest, AuthorizationError>),
    Finished,
}

impl Machine for ParseMachine {
    type Output = Result<AuthorizationRequest, AuthorizationError>;

    fn advance(&mut self, input: Input) -> Step<Self::Output> {
        match std::mem::replace(&mut self.state, ParseState::Finished) {
            ParseState::Start => {
                self.state = ParseState::Loading;
                let ops = vec![client_lookup(&self.client_id, self.metadata_document)];
                Step::Storage(StorageRequest { now: self.now, ops })
            }
            ParseState::Loading => {
                let entry =
                    match replies(input, 1).and_then(|r| r.into_iter().next().ok_or_else(proto)).and_then(as_entry) {
                        Ok(e) => e,
                        Err(e) => return Step::Done(Err(invalid(&self.cfg, e, Some(&self.client_id)))),
                    };
                if self.metadata_document {
                    let (resolver, step) =
                        Resolver::start(Arc::clone(&self.cfg), &self.client_id, self.now, false, entry);
                    return self.resolving(resolver, step);
                }
                let Some(client) = client::load(entry.as_ref(), &self.client_id) else {
                    let e = OAuthError::invalid_request(UNKNOWN_CLIENT, "Unknown client");
                    return Step::Done(Err(invalid(&self.cfg, e, Some(&self.client_id))));
                };
                Step::Done(self.validate(&client))
            }
            ParseState::Resolving(mut resolver) => {
                let step = resolver.advance(input);
                self.resolving(*resolver, step)
            }
            // The cache is an optimisation: the answer stands whether or not
            // the write landed.
            ParseState::Caching(result) => Step::Done(result),
            ParseState::Finished => Step::Done(Err(AuthorizationError::Invalid(proto()))),
        }
    }
}

impl ParseMachine {
    fn resolving(&mut self, resolver: Resolver, step: ResolveStep) -> Step<<Self as Machine>::Output> {
        match step {
            ResolveStep::Storage(request) => {
                self.state = ParseState::Resolving(Box::new(resolver));
                Step::Storage(request)
            }
            ResolveStep::Fetch(request) => {
                self.state = ParseState::Resolving(Box::new(resolver));
                Step::Fetch(request)
            }
            ResolveStep::Done(Err(e)) => {
                Step::Done(Err(invalid(&self.cfg, at_authorization_endpoint(e), Some(&self.client_id))))
            }
            ResolveStep::Done(Ok(resolved)) => {
                let result = self.validate(&resolved.document.client);
                match resolved.cache_write {
                    Some(op) => {
                        self.state = ParseState::Caching(result);
                        Step::Storage(StorageRequest { now: self.now, ops: vec![op] })
                    }
                    None => Step::Done(result),
                }
            }
        }
    }
}

fn proto() -> OAuthError {
    OAuthError::server_error(reasons::DRIVER_PROTOCOL)
}

impl ParseMachine {
    fn validate(&self, client: &ClientRecord) -> Result<AuthorizationRequest, AuthorizationError> {
        let p = &self.params;
        let cfg = &*self.cfg;
        let client_id = Some(self.client_id.as_str());

        // 1. The redirect URI. Nothing may redirect before this holds.
        let (redirect_uri, explicit) = match p.get("redirect_uri") {
            Some(requested) => match find_match(&client.redirect_uris, requested) {
                Some(_) => (requested.to_owned(), true),
                None => {
                    let e = OAuthError::invalid_request(
                        REDIRECT_MISMATCH,
                        "redirect_uri is not registered for this client",
                    );
                    return Err(invalid(cfg, e, client_id));
                }
            },
            None => match client.redirect_uris.as_slice() {
                [only] => (only.clone(), false),
                _ => {
                    let e = OAuthError::invalid_request(REDIRECT_REQUIRED, "redirect_uri is required");
                    return Err(invalid(cfg, e, client_id));
                }
            },
        };
        let state = p.get("state").map(str::to_owned);
        let fail = |e: OAuthError| {
            Provider::observe(cfg, "authorize", &e, client_id);
            AuthorizationError::Redirect {
                location: error_location(&cfg.issuer, &redirect_uri, state.as_deref(), &e),
                error: e,
            }
        };

        // 2. What is asked for.
        if p.has("request") || p.has("request_uri") {
            return Err(fail(OAuthError::invalid_request(REQUEST_OBJECT, "Request objects are not supported")));
        }
        match p.get("response_type") {
            None => return Err(fail(OAuthError::invalid_request(RESPONSE_TYPE_MISSING, "response_type is required"))),
            Some("code") => {}
            Some(_) => {
                return Err(fail(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    RESPONSE_TYPE_UNSUPPORTED,
                    "Only response_type=code is supported",
                )));
            }
        }
        if p.get("response_mode").is_some_and(|m| m != "query") {
            return Err(fail(OAuthError::invalid_request(
                RESPONSE_MODE_UNSUPPORTED,
                "Only response_mode=query is supported",
            )));
        }
        if !client.grant_types.iter().any(|g| g == "authorization_code") {
            return Err(fail(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                CLIENT_GRANT_TYPE,
                "The client is not registered for the authorization_code grant",
            )));
        }

        // 3. PKCE, S256 only, for every client (OAuth 2.1 §4.1.1).
        let Some(challenge) = p.get("code_challenge") else {
            return Err(fail(OAuthError::invalid_request(PKCE_MISSING, "code_challenge is required (PKCE S256)")));
        };
        if p.get("code_challenge_method") != Some(pkce::S256) {
            return Err(fail(OAuthError::invalid_request(PKCE_METHOD, "code_challenge_method must be S256")));
        }
        if !pkce::is_valid_s256_challenge(challenge) {
            return Err(fail(OAuthError::invalid_request(PKCE_SYNTAX, "code_challenge is not a valid S256 challenge")));
        }

        // 4. The resource (RFC 8707): one, and one of ours.
        let resource = match p.resources() {
            [] => cfg.resources.get(cfg.default_resource),
            [one] => cfg.resources.iter().find(|r| same_resource(one, &r.resource)),
            _ => {
                return Err(fail(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    RESOURCE_MULTIPLE,
                    "Request tokens for one resource at a time",
                )));
            }
        };
        let Some(resource) = resource else {
            return Err(fail(OAuthError::new(ErrorCode::InvalidTarget, RESOURCE_INVALID, "Unknown resource")));
        };

        // 5. Scope: well formed, within the catalogue and the client's
        // registered scope when those are declared.
        let scope = match p.get("scope") {
            Some(s) => parse_scope(s)
                .ok_or_else(|| fail(OAuthError::new(ErrorCode::InvalidScope, SCOPE_MALFORMED, "scope is malformed")))?,
            None => match client.scope.as_deref().and_then(parse_scope) {
                Some(s) => s,
                None => resource.challenge_scopes.clone(),
            },
        };
        let in_catalogue = |s: &String| cfg.scopes_supported.is_empty() || cfg.scopes_supported.contains(s);
        let client_allowed = client.scope.as_deref().and_then(parse_scope);
        let in_client = |s: &String| client_allowed.as_ref().is_none_or(|allowed| allowed.contains(s));
        if let Some(bad) = scope.iter().find(|s| !in_catalogue(s) || !in_client(s)) {
            return Err(fail(OAuthError::new(
                ErrorCode::InvalidScope,
                SCOPE_NOT_ALLOWED,
                format!("Scope {} is not available to this client", http_util::printable(bad)),
            )));
        }

        Ok(AuthorizationRequest {
            client_id: self.client_id.clone(),
            client_name: client.client_name.clone(),
            client_uri: client.client_uri.clone(),
            redirect_uri,
            redirect_uri_explicit: explicit,
            state,
            scope,
            resource: resource.resource.to_string(),
            code_challenge: challenge.to_owned(),
        })
    }
}

struct CompleteMachine {
    cfg: Arc<Config>,
    metadata_document: bool,
    request: AuthorizationRequest,
    approval: Approval,
    now: UnixTime,
    entropy: Entropy,
    state: CompleteState,
    revoked: usize,
}

enum CompleteState {
    Start,
    Loaded,
    /// A metadata-document client whose cached document has to be fetched.
    Resolving {
        resolver: Box<Resolver>,
        listed: Option<Reply>,
    },
    Written {
        redirect_to: String,
        grant_id: GrantId,
        old: Vec<GrantId>,
    },
    Revoking {
        redirect_to: String,
        grant_id: GrantId,
        old: Vec<GrantId>,
        cascade: Cascade,
    },
    Finished,
}

impl Machine for CompleteMachine {
    type Output = Result<CompletedAuthorization, OAuthError>;

    fn advance(&mut self, input: Input) -> Step<Self::Output> {
        match self.step(input) {
            Ok(step) => step,
            Err(e) => {
                self.state = CompleteState::Finished;
                Provider::observe(&self.cfg, "authorize", &e, Some(&self.request.client_id));
                Step::Done(Err(e))
            }
        }
    }
}

impl CompleteMachine {
    fn step(&mut self, input: Input) -> Result<Step<<Self as Machine>::Output>, OAuthError> {
        match std::mem::replace(&mut self.state, CompleteState::Finished) {
            CompleteState::Start => {
                let mut ops = vec![client_lookup(&self.request.client_id, self.metadata_document)];
                if self.cfg.revoke_existing_grants {
                    ops.push(StorageOp::List {
                        prefix: records::user_prefix(&self.approval.user_id),
                        cursor: None,
                        limit: EXISTING_GRANTS_PAGE,
                    });
                }
                self.state = CompleteState::Loaded;
                Ok(Step::Storage(StorageRequest { now: self.now, ops }))
            }
            CompleteState::Loaded => {
                let expected = if self.cfg.revoke_existing_grants { 2 } else { 1 };
                let mut r = replies(input, expected)?.into_iter();
                let client_entry = as_entry(r.next().ok_or_else(proto)?)?;
                let listed = r.next();
                if self.metadata_document {
                    let (resolver, step) =
                        Resolver::start(Arc::clone(&self.cfg), &self.request.client_id, self.now, false, client_entry);
                    return self.resolving(resolver, step, listed);
                }
                let client = client::load(client_entry.as_ref(), &self.request.client_id)
                    .ok_or_else(|| OAuthError::invalid_request(UNKNOWN_CLIENT, "Unknown client"))?;
                self.with_client(&client, listed)
            }
            CompleteState::Resolving { mut resolver, listed } => {
                let step = resolver.advance(input);
                self.resolving(*resolver, step, listed)
            }
            CompleteState::Written { redirect_to, grant_id, old } => {
                let mut r = replies(input, 2)?.into_iter();
                if !as_written(r.next().ok_or_else(proto)?)? {
                    return Err(OAuthError::server_error(GRANT_ID_COLLISION));
                }
                self.next_revocation(redirect_to, grant_id, old)
            }
            CompleteState::Revoking { redirect_to, grant_id, old, mut cascade } => match cascade.advance(input) {
                CascadeStep::Storage(req) => {
                    self.state = CompleteState::Revoking { redirect_to, grant_id, old, cascade };
                    Ok(Step::Storage(req))
                }
                CascadeStep::Done(result) => {
                    result?;
                    self.revoked = self.revoked.saturating_add(1);
                    self.next_revocation(redirect_to, grant_id, old)
                }
            },
            CompleteState::Finished => Err(proto()),
        }
    }

    fn resolving(
        &mut self,
        resolver: Resolver,
        step: ResolveStep,
        listed: Option<Reply>,
    ) -> Result<Step<<Self as Machine>::Output>, OAuthError> {
        match step {
            ResolveStep::Storage(request) => {
                self.state = CompleteState::Resolving { resolver: Box::new(resolver), listed };
                Ok(Step::Storage(request))
            }
            ResolveStep::Fetch(request) => {
                self.state = CompleteState::Resolving { resolver: Box::new(resolver), listed };
                Ok(Step::Fetch(request))
            }
            // The document was cached when the request was parsed; a refetch
            // here (the entry expired during consent) is not cached again.
            ResolveStep::Done(Ok(resolved)) => self.with_client(&resolved.document.client, listed),
            ResolveStep::Done(Err(e)) => Err(at_authorization_endpoint(e)),
        }
    }

    /// Re-check the request against the client as it is now, then write.
    fn with_client(
        &mut self,
        client: &ClientRecord,
        listed: Option<Reply>,
    ) -> Result<Step<<Self as Machine>::Output>, OAuthError> {
        if find_match(&client.redirect_uris, &self.request.redirect_uri).is_none() {
            return Err(OAuthError::invalid_request(
                REDIRECT_MISMATCH,
                "redirect_uri is not registered for this client",
            ));
        }
        if !pkce::is_valid_s256_challenge(&self.request.code_challenge)
            || !self.cfg.resources.iter().any(|r| same_resource(&self.request.resource, &r.resource))
        {
            return Err(OAuthError::invalid_request(BAD_QUERY, "The authorization request is not valid"));
        }
        let old = match listed {
            Some(listed) => as_listed(listed)?
                .0
                .into_iter()
                .filter_map(|(_, e)| records::decode::<UserGrantRecord>(&e.value))
                .filter(|g| g.client_id == self.request.client_id && g.resource == self.request.resource)
                .filter_map(|g| GrantId::from_hex(&g.grant_id))
                .collect(),
            None => Vec::new(),
        };
        let (ops, redirect_to, grant_id) = self.write_grant()?;
        self.state = CompleteState::Written { redirect_to, grant_id, old };
        Ok(Step::Storage(StorageRequest { now: self.now, ops }))
    }

    fn next_revocation(
        &mut self,
        redirect_to: String,
        grant_id: GrantId,
        mut old: Vec<GrantId>,
    ) -> Result<Step<<Self as Machine>::Output>, OAuthError> {
        match old.pop() {
            Some(victim) => {
                let mut cascade = Cascade::new(victim, self.now);
                match cascade.advance(Input::Start) {
                    CascadeStep::Storage(req) => {
                        self.state = CompleteState::Revoking { redirect_to, grant_id, old, cascade };
                        Ok(Step::Storage(req))
                    }
                    CascadeStep::Done(result) => {
                        result?;
                        self.next_revocation(redirect_to, grant_id, old)
                    }
                }
            }
            None => Ok(Step::Done(Ok(CompletedAuthorization {
                redirect_to,
                grant_id: grant_id.to_hex(),
                revoked_grants: self.revoked,
            }))),
        }
    }

    /// The new grant (with its pending code) and its user-index entry.
    fn write_grant(&mut self) -> Result<(Vec<StorageOp>, String, GrantId), OAuthError> {
        let (grant_id, key) = grant::new_grant_secrets(&mut self.entropy)?;
        let gid = grant_id.to_hex();
        let (code, code_id, wrapped) = grant::mint_code(grant_id, &key, &mut self.entropy)?;
        let props = grant::seal_props(&key, &gid, &self.approval.props, &mut self.entropy)?;
        let expires_at = self.now.plus(self.cfg.code_ttl);
        let record = GrantRecord {
            grant_id: gid.clone(),
            user_id: self.approval.user_id.clone(),
            client_id: self.request.client_id.clone(),
            scope: self.approval.scope.clone(),
            resource: self.request.resource.clone(),
            props,
            metadata: self.approval.metadata.clone(),
            created_at: self.now,
            expires_at: Some(expires_at),
            code: Some(CodeState {
                id: code_id,
                wrapped_key: wrapped,
                challenge: self.request.code_challenge.clone(),
                redirect_uri: self.request.redirect_uri.clone(),
                redirect_uri_explicit: self.request.redirect_uri_explicit,
                expires_at,
            }),
            redeemed_code: None,
            refresh: None,
            previous_refresh: None,
            refresh_idle_ttl: None,
            refresh_expires_at: None,
            retired_refresh: Vec::new(),
        };
        let index = UserGrantRecord {
            grant_id: gid,
            client_id: self.request.client_id.clone(),
            resource: self.request.resource.clone(),
            scope: self.approval.scope.clone(),
            metadata: self.approval.metadata.clone(),
            created_at: self.now,
        };
        let ops = vec![
            grant::put_grant(grant_id, &record, 1, Condition::IfAbsent)?,
            StorageOp::Put {
                key: records::user_grant_key(&self.approval.user_id, grant_id),
                value: records::encode(&index).ok_or_else(|| OAuthError::server_error(reasons::CRYPTO_FAILED))?,
                revision: 1,
                expires_at: Some(expires_at),
                condition: Condition::Always,
            },
        ];
        let mut params = vec![("code", code.as_str())];
        if let Some(s) = self.request.state.as_deref() {
            params.push(("state", s));
        }
        params.push(("iss", self.cfg.issuer.as_str()));
        let redirect_to = with_params(&self.request.redirect_uri, &params);
        Ok((ops, redirect_to, grant_id))
    }
}
