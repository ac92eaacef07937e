//! RFC 7591 dynamic client registration.
//!
//! One storage round trip: validate the metadata, mint the client id (and a
//! secret for confidential clients), optionally ask the registration hook,
//! then write the record with `IfAbsent`. Only the secret's hash is stored;
//! the secret itself appears once, in the 201 response.
//!
//! # Decisions
//!
//! * **Error codes.** RFC 7591 §3.2.2 defines the codes the registration
//!   endpoint answers with, and `invalid_request` is not among them (in the
//!   IANA registry it belongs to the authorization and token endpoints). A
//!   body that is not an `application/json` object is metadata the server
//!   cannot read, so a wrong `Content-Type`, malformed JSON and oversized
//!   bodies (413) are all `invalid_client_metadata`. The one exception is the
//!   405 for other methods, which is shared with every endpoint.
//! * **`application_type`** (OIDC Registration §2, required of MCP clients by
//!   the 2026-07-28 authorization spec, SEP-837). `web` clients may not use
//!   private-use schemes; `native` clients may. Loopback `http` is accepted
//!   for both: OIDC forbids `localhost` only to implicit-grant web clients,
//!   and OAuth 2.1 has no implicit grant. Claimed `https` redirects are
//!   accepted for native clients (RFC 8252 §7.2). When the parameter is
//!   omitted the client is `web`, the OIDC default, unless it keeps a
//!   private-use redirect URI, which only a native client can use: clients
//!   written before SEP-837 (Cursor registers `cursor://…`) keep working, and
//!   the record never pairs `web` with a private-use scheme.
//! * **Dropping refused private-use URIs.** RFC 7591 §3.2.1 lets the server
//!   replace requested metadata. A private-use URI the server or the declared
//!   application type forbids is dropped when another usable redirect URI
//!   remains, as the incumbent does since 1.2.1, and the response shows what
//!   was registered. Dangerous URIs are never dropped: they fail the request.
//! * **`software_statement`** is ignored. Without a configured issuer key the
//!   statement cannot be verified, and trusting the claims of an unverified
//!   statement would let any caller vouch for itself (RFC 7591 §2.3 allows a
//!   server to ignore it).
//! * **No RFC 7592.** The response carries no `registration_client_uri` or
//!   `registration_access_token`; administrators manage clients through
//!   [`Provider`]'s admin methods instead.

use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use url::Url;

use crate::client::{METHOD_BASIC, METHOD_NONE, METHOD_POST};
use crate::config::{Config, MIN_TTL_SECS};
use crate::crypto::{self, SECRET_LEN};
use crate::endpoint::metadata::TOKEN_EXCHANGE_GRANT;
use crate::error::{ErrorCode, OAuthError, Reason, reasons};
use crate::flow::{Flow, Input, Machine, Step, as_written, hook_reply, one_reply};
use crate::hooks::{HookCall, HookReply, RegistrationContext};
use crate::http_util::{self, Bearer};
use crate::provider::{Outcome, Provider};
use crate::records::{self, ClientRecord};
use crate::redirect_uri::{self, RedirectUriProblem};
use crate::resource::is_secure_or_loopback;
use crate::rng::{Entropy, SecureRandom};
use crate::scope::{format_scope, parse_scope};
use crate::storage::{Condition, StorageOp, StorageRequest};
use crate::time::UnixTime;

pub(crate) const MALFORMED_JSON: Reason = Reason::new("metadata_malformed_json");
pub(crate) const NOT_AN_OBJECT: Reason = Reason::new("metadata_not_object");
pub(crate) const DUPLICATE_MEMBER: Reason = Reason::new("metadata_duplicate_member");
pub(crate) const WRONG_TYPE: Reason = Reason::new("metadata_wrong_type");
pub(crate) const REDIRECT_URIS_MISSING: Reason = Reason::new("redirect_uris_missing");
pub(crate) const REDIRECT_URIS_TOO_MANY: Reason = Reason::new("redirect_uris_too_many");
pub(crate) const REDIRECT_URI_INVALID: Reason = Reason::new("redirect_uri_invalid");
pub(crate) const REDIRECT_URI_PRIVATE_USE: Reason = Reason::new("redirect_uri_private_use_refused");
pub(crate) const AUTH_METHOD_UNSUPPORTED: Reason = Reason::new("auth_method_unsupported");
pub(crate) const PUBLIC_CLIENT_REFUSED: Reason = Reason::new("public_client_refused");
pub(crate) const GRANT_TYPE_UNSUPPORTED: Reason = Reason::new("grant_type_unsupported");
pub(crate) const GRANT_TYPES_EMPTY: Reason = Reason::new("grant_types_empty");
pub(crate) const RESPONSE_TYPE_UNSUPPORTED: Reason = Reason::new("response_type_unsupported");
pub(crate) const GRANT_RESPONSE_MISMATCH: Reason = Reason::new("grant_response_type_mismatch");
pub(crate) const APPLICATION_TYPE_UNSUPPORTED: Reason = Reason::new("application_type_unsupported");
pub(crate) const SCOPE_INVALID: Reason = Reason::new("metadata_scope_invalid");
pub(crate) const URI_INVALID: Reason = Reason::new("metadata_uri_invalid");
pub(crate) const TEXT_INVALID: Reason = Reason::new("metadata_text_invalid");
pub(crate) const CONTACTS_INVALID: Reason = Reason::new("metadata_contacts_invalid");
pub(crate) const REGISTRATION_TTL_INVALID: Reason = Reason::new("registration_ttl_out_of_range");
pub(crate) const IAT_MISSING: Reason = Reason::new("initial_access_token_missing");
pub(crate) const IAT_INVALID: Reason = Reason::new("initial_access_token_invalid");
pub(crate) const CLIENT_ID_COLLISION: Reason = Reason::new("client_id_collision");
pub(crate) const RECORD_ENCODING: Reason = Reason::new("record_encoding_failed");

const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
const GRANT_REFRESH_TOKEN: &str = "refresh_token";
const RESPONSE_CODE: &str = "code";
const APP_WEB: &str = "web";
const APP_NATIVE: &str = "native";

/// Bytes of randomness in a client id.
pub(crate) const CLIENT_ID_LEN: usize = 16;
/// Entropy one registration draws: the client id, then the secret.
pub(crate) const REGISTRATION_ENTROPY: usize = CLIENT_ID_LEN + SECRET_LEN;

// The caps keep a record far below every backend's value limit (DynamoDB's
// 400 KB is the smallest) and a consent page readable. Over-long values are
// refused, never truncated: a truncated URI or name would silently register
// something the client did not ask for.
const MAX_REDIRECT_URIS: usize = 32;
const MAX_CONTACTS: usize = 16;
const MAX_CONTACT_CHARS: usize = 320;
const MAX_NAME_CHARS: usize = 256;
const MAX_SOFTWARE_CHARS: usize = 256;
const MAX_URI_BYTES: usize = 2048;
const MAX_SCOPE_BYTES: usize = 4096;
/// The longest registration lifetime an administrator may set, as for the
/// configured TTLs.
const MAX_REGISTRATION_TTL: u64 = 10 * 365 * 86_400;

/// Who is registering: the two differ only in policy, never in validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Registrar {
    /// An anonymous (or initial-access-token holding) client, RFC 7591.
    Dynamic,
    /// The application's administrator. Trusted to register public clients
    /// whatever the dynamic policy, and told about every refused URI instead
    /// of having it dropped.
    Admin,
}

/// Client metadata as requested, before validation. Built from a JSON
/// registration request or from an administrator's `ClientSpec`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RequestedMetadata {
    pub(crate) redirect_uris: Option<Vec<String>>,
    pub(crate) token_endpoint_auth_method: Option<String>,
    pub(crate) grant_types: Option<Vec<String>>,
    pub(crate) response_types: Option<Vec<String>>,
    pub(crate) application_type: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) client_name: Option<String>,
    pub(crate) client_uri: Option<String>,
    pub(crate) logo_uri: Option<String>,
    pub(crate) policy_uri: Option<String>,
    pub(crate) tos_uri: Option<String>,
    pub(crate) contacts: Option<Vec<String>>,
    pub(crate) software_id: Option<String>,
    pub(crate) software_version: Option<String>,
}

impl RequestedMetadata {
    /// Read the members RFC 7591 §2 and OIDC Registration §2 define from a
    /// JSON object. Unknown members are ignored (RFC 7591 §2), and `null`
    /// counts as absent, as client libraries serialise unset options so.
    pub(crate) fn from_json(obj: &Map<String, Value>) -> Result<Self, OAuthError> {
        Ok(Self {
            redirect_uris: string_array(obj, "redirect_uris", ErrorCode::InvalidRedirectUri, MAX_REDIRECT_URIS)?,
            token_endpoint_auth_method: string(obj, "token_endpoint_auth_method")?,
            grant_types: string_array(obj, "grant_types", ErrorCode::InvalidClientMetadata, 8)?,
            response_types: string_array(obj, "response_types", ErrorCode::InvalidClientMetadata, 8)?,
            application_type: string(obj, "application_type")?,
            scope: string(obj, "scope")?,
            client_name: string(obj, "client_name")?,
            client_uri: string(obj, "client_uri")?,
            logo_uri: string(obj, "logo_uri")?,
            policy_uri: string(obj, "policy_uri")?,
            tos_uri: string(obj, "tos_uri")?,
            contacts: string_array(obj, "contacts", ErrorCode::InvalidClientMetadata, MAX_CONTACTS)?,
            software_id: string(obj, "software_id")?,
            software_version: string(obj, "software_version")?,
        })
    }
}

/// Validated metadata, ready to become a [`ClientRecord`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientMetadata {
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) token_endpoint_auth_method: &'static str,
    pub(crate) grant_types: Vec<String>,
    pub(crate) response_types: Vec<String>,
    pub(crate) application_type: &'static str,
    pub(crate) scope: Option<String>,
    pub(crate) client_name: Option<String>,
    pub(crate) client_uri: Option<String>,
    pub(crate) logo_uri: Option<String>,
    pub(crate) policy_uri: Option<String>,
    pub(crate) tos_uri: Option<String>,
    pub(crate) contacts: Vec<String>,
    pub(crate) software_id: Option<String>,
    pub(crate) software_version: Option<String>,
}

impl ClientMetadata {
    /// Whether the client authenticates with a secret.
    pub(crate) fn is_confidential(&self) -> bool {
        self.token_endpoint_auth_method != METHOD_NONE
    }

    /// The record for `client_id`.
    pub(crate) fn into_record(
        self,
        client_id: String,
        secret_hash: Option<crypto::Digest32>,
        created_at: UnixTime,
        registration_ttl: Option<u64>,
    ) -> ClientRecord {
        ClientRecord {
            client_id,
            secret_hash,
            redirect_uris: self.redirect_uris,
            token_endpoint_auth_method: self.token_endpoint_auth_method.to_owned(),
            grant_types: self.grant_types,
            response_types: self.response_types,
            application_type: self.application_type.to_owned(),
            client_name: self.client_name,
            client_uri: self.client_uri,
            logo_uri: self.logo_uri,
            policy_uri: self.policy_uri,
            tos_uri: self.tos_uri,
            contacts: self.contacts,
            scope: self.scope,
            software_id: self.software_id,
            software_version: self.software_version,
            created_at,
            registration_ttl,
        }
    }
}

/// The one validation of client metadata, for dynamic registration and the
/// admin API alike.
pub(crate) fn validate_metadata(
    cfg: &Config,
    req: RequestedMetadata,
    registrar: Registrar,
) -> Result<ClientMetadata, OAuthError> {
    let token_endpoint_auth_method = auth_method(cfg, req.token_endpoint_auth_method.as_deref(), registrar)?;
    let grant_types = grant_types(cfg, req.grant_types)?;
    let uses_code = grant_types.iter().any(|g| g == GRANT_AUTHORIZATION_CODE);
    let response_types = response_types(req.response_types, uses_code)?;
    let declared = application_type(req.application_type.as_deref())?;
    let (redirect_uris, application_type) =
        redirect_uris(cfg, req.redirect_uris.unwrap_or_default(), uses_code, declared, registrar)?;
    Ok(ClientMetadata {
        redirect_uris,
        token_endpoint_auth_method,
        grant_types,
        response_types,
        application_type,
        scope: scope(req.scope)?,
        client_name: text("client_name", req.client_name, MAX_NAME_CHARS)?,
        client_uri: web_uri("client_uri", req.client_uri)?,
        logo_uri: web_uri("logo_uri", req.logo_uri)?,
        policy_uri: web_uri("policy_uri", req.policy_uri)?,
        tos_uri: web_uri("tos_uri", req.tos_uri)?,
        contacts: contacts(req.contacts)?,
        software_id: text("software_id", req.software_id, MAX_SOFTWARE_CHARS)?,
        software_version: text("software_version", req.software_version, MAX_SOFTWARE_CHARS)?,
    })
}

/// Check an administrator-chosen registration lifetime against the same
/// bounds the configured TTLs obey.
pub(crate) fn validate_registration_ttl(ttl: Option<u64>) -> Result<Option<u64>, OAuthError> {
    match ttl {
        Some(t) if !(MIN_TTL_SECS..=MAX_REGISTRATION_TTL).contains(&t) => Err(invalid_metadata(
            REGISTRATION_TTL_INVALID,
            format!("registration_ttl must be between {MIN_TTL_SECS} and {MAX_REGISTRATION_TTL} seconds"),
        )),
        other => Ok(other),
    }
}

/// A new client id and, for a confidential client, its secret, drawn from
/// `entropy` in that order.
pub(crate) fn mint_credentials(
    entropy: &mut Entropy,
    confidential: bool,
) -> Result<(String, Option<String>), OAuthError> {
    let id = entropy.take::<CLIENT_ID_LEN>().ok_or_else(|| OAuthError::server_error(reasons::ENTROPY_EXHAUSTED))?;
    let secret = if confidential {
        let raw = entropy.take::<SECRET_LEN>().ok_or_else(|| OAuthError::server_error(reasons::ENTROPY_EXHAUSTED))?;
        Some(crypto::mint_client_secret(&raw))
    } else {
        None
    };
    Ok((crypto::mint_client_id(&id), secret))
}

/// The write that stores a new client, never overwriting another.
pub(crate) fn insert_op(record: &ClientRecord, expires_at: Option<UnixTime>) -> Result<StorageOp, OAuthError> {
    let value = records::encode(record).ok_or_else(|| OAuthError::server_error(RECORD_ENCODING))?;
    Ok(StorageOp::Put {
        key: records::client_key(&record.client_id),
        value,
        revision: 1,
        expires_at,
        condition: Condition::IfAbsent,
    })
}

/// The registered metadata of `rec` as RFC 7591 §3.2.1 members, without
/// credentials. Absent optional members are left out rather than `null`.
pub(crate) fn registered_metadata(rec: &ClientRecord) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("redirect_uris".into(), Value::from(rec.redirect_uris.clone()));
    m.insert("token_endpoint_auth_method".into(), Value::from(rec.token_endpoint_auth_method.clone()));
    m.insert("grant_types".into(), Value::from(rec.grant_types.clone()));
    m.insert("response_types".into(), Value::from(rec.response_types.clone()));
    m.insert("application_type".into(), Value::from(rec.application_type.clone()));
    let optional = [
        ("client_name", &rec.client_name),
        ("client_uri", &rec.client_uri),
        ("logo_uri", &rec.logo_uri),
        ("policy_uri", &rec.policy_uri),
        ("tos_uri", &rec.tos_uri),
        ("scope", &rec.scope),
        ("software_id", &rec.software_id),
        ("software_version", &rec.software_version),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            m.insert(name.into(), Value::from(v.clone()));
        }
    }
    if !rec.contacts.is_empty() {
        m.insert("contacts".into(), Value::from(rec.contacts.clone()));
    }
    m
}

// ---- the endpoint ----------------------------------------------------------

/// Start a registration request.
pub(crate) fn start(
    cfg: Arc<Config>,
    request: Request<Bytes>,
    now: UnixTime,
    rng: &mut dyn SecureRandom,
) -> Flow<Outcome> {
    if request.method() != Method::POST {
        let err = OAuthError::invalid_request(reasons::METHOD_NOT_ALLOWED, "Method not allowed")
            .with_status(StatusCode::METHOD_NOT_ALLOWED);
        Provider::observe(&cfg, "register", &err, None);
        return Flow::ready(Outcome::Response(http_util::method_not_allowed("POST, OPTIONS")));
    }
    match prepare(&cfg, &request, now, rng) {
        Ok((record, secret, hook)) => Flow::new(Registration { cfg, now, record, secret, hook, stage: Stage::Begin }),
        Err(err) => Flow::ready(failure(&cfg, &err, None)),
    }
}

/// Everything that needs no storage: authorization, parsing, validation and
/// minting. Entropy is drawn only once the request has passed, so refused
/// requests cost the generator nothing.
fn prepare(
    cfg: &Config,
    request: &Request<Bytes>,
    now: UnixTime,
    rng: &mut dyn SecureRandom,
) -> Result<(ClientRecord, Option<String>, Option<RegistrationContext>), OAuthError> {
    let (token, accepted) = initial_access_token(cfg, request.headers())?;
    let object = parse_body(cfg, request.headers(), request.body())?;
    let metadata = validate_metadata(cfg, RequestedMetadata::from_json(&object)?, Registrar::Dynamic)?;

    let mut entropy = Entropy::draw(rng, REGISTRATION_ENTROPY);
    let (client_id, secret) = mint_credentials(&mut entropy, metadata.is_confidential())?;
    let secret_hash = secret.as_deref().map(crypto::client_secret_hash);
    let record = metadata.into_record(client_id, secret_hash, now, cfg.client_registration_ttl);
    let hook = cfg.hooks.client_registration.then(|| RegistrationContext {
        metadata: Value::Object(registered_metadata(&record)),
        initial_access_token: token,
        initial_access_token_accepted: accepted,
    });
    Ok((record, secret, hook))
}

/// The initial access token (RFC 7591 §3) and whether a configured hash
/// matched it. When one is required, a request without it, or with one that
/// matched nothing and that no hook will judge, ends here: before its body
/// is even parsed. When none is required and no hook listens, a presented
/// token is meaningless and ignored.
fn initial_access_token(cfg: &Config, headers: &HeaderMap) -> Result<(Option<String>, bool), OAuthError> {
    let required = cfg.require_initial_access_token;
    let token = match http_util::bearer(headers) {
        Bearer::Token(t) => Some(t.to_owned()),
        Bearer::Absent => None,
        Bearer::Malformed if required => {
            return Err(invalid_token(IAT_INVALID, "The initial access token is malformed"));
        }
        Bearer::Malformed => None,
    };
    let accepted = token.as_deref().is_some_and(|t| iat_matches(cfg, t));
    if required {
        match &token {
            None => return Err(invalid_token(IAT_MISSING, "An initial access token is required")),
            Some(_) if !accepted && !cfg.hooks.client_registration => {
                return Err(invalid_token(IAT_INVALID, "The initial access token is invalid"));
            }
            Some(_) => {}
        }
    }
    Ok((token, accepted))
}

/// Compare against every configured hash, without stopping at a match, so
/// the time taken says nothing about which (or whether an early) one matched.
fn iat_matches(cfg: &Config, token: &str) -> bool {
    let digest = crypto::sha256(token.as_bytes());
    cfg.initial_access_token_hashes.iter().fold(false, |found, h| crypto::ct_eq(&digest, h) | found)
}

fn parse_body(cfg: &Config, headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, OAuthError> {
    if body.len() > cfg.registration_body_limit {
        return Err(invalid_metadata(reasons::BODY_TOO_LARGE, "Request body too large")
            .with_status(StatusCode::PAYLOAD_TOO_LARGE));
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(invalid_metadata(reasons::BAD_CONTENT_TYPE, "Content-Type must be application/json"));
    }
    match serde_json::from_slice::<StrictObject>(body) {
        Ok(StrictObject(map)) => Ok(map),
        Err(e) if e.to_string().starts_with(DUPLICATE_MARKER) => {
            Err(invalid_metadata(DUPLICATE_MEMBER, "Client metadata must not repeat a member"))
        }
        Err(e) if e.is_data() => Err(invalid_metadata(NOT_AN_OBJECT, "Client metadata must be a JSON object")),
        Err(_) => Err(invalid_metadata(MALFORMED_JSON, "Request body is not valid JSON")),
    }
}

const DUPLICATE_MARKER: &str = "duplicate member";

/// A top-level JSON object whose members are unique. `serde_json` would keep
/// the last of two equal keys; another parser in front of the server (a WAF,
/// the application's hook) may keep the first, and the two would then judge
/// different metadata.
struct StrictObject(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictObjectVisitor)
    }
}

struct StrictObjectVisitor;

impl<'de> Visitor<'de> for StrictObjectVisitor {
    type Value = StrictObject;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictObject, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value: Value = access.next_value()?;
            if map.contains_key(&key) {
                return Err(de::Error::custom(DUPLICATE_MARKER));
            }
            map.insert(key, value);
        }
        Ok(StrictObject(map))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Begin,
    AwaitHook,
    AwaitStore,
    Finished,
}

struct Registration {
    cfg: Arc<Config>,
    now: UnixTime,
    record: ClientRecord,
    secret: Option<String>,
    hook: Option<RegistrationContext>,
    stage: Stage,
}

impl Machine for Registration {
    type Output = Outcome;

    fn advance(&mut self, input: Input) -> Step<Outcome> {
        let stage = core::mem::replace(&mut self.stage, Stage::Finished);
        match (stage, input) {
            (Stage::Begin, Input::Start) => match self.hook.take() {
                Some(context) => {
                    self.stage = Stage::AwaitHook;
                    Step::Hook(HookCall::ClientRegistration(context))
                }
                None => self.store(),
            },
            (Stage::AwaitHook, input) => match hook_reply(input) {
                Ok(HookReply::ClientRegistration(Ok(()))) => self.store(),
                Ok(HookReply::ClientRegistration(Err(refusal))) => self.fail(&refusal.into_oauth()),
                Ok(_) => self.fail(&OAuthError::server_error(reasons::DRIVER_PROTOCOL)),
                Err(err) => self.fail(&err),
            },
            (Stage::AwaitStore, input) => match one_reply(input).and_then(as_written) {
                Ok(true) => Step::Done(Outcome::Response(created(&self.record, self.secret.take().as_deref()))),
                Ok(false) => {
                    // The one failure where the id matters: it names the
                    // record that was already there.
                    let err = OAuthError::server_error(CLIENT_ID_COLLISION);
                    Provider::observe(&self.cfg, "register", &err, Some(&self.record.client_id));
                    self.secret = None;
                    Step::Done(Outcome::Response(http_util::error_response(&err)))
                }
                Err(err) => self.fail(&err),
            },
            _ => self.fail(&OAuthError::server_error(reasons::DRIVER_PROTOCOL)),
        }
    }
}

impl Registration {
    fn store(&mut self) -> Step<Outcome> {
        let expires_at = self.cfg.client_registration_ttl.map(|t| self.now.plus(t));
        match insert_op(&self.record, expires_at) {
            Ok(op) => {
                self.stage = Stage::AwaitStore;
                Step::Storage(StorageRequest { now: self.now, ops: vec![op] })
            }
            Err(err) => self.fail(&err),
        }
    }

    fn fail(&mut self, err: &OAuthError) -> Step<Outcome> {
        self.stage = Stage::Finished;
        self.secret = None;
        // The minted id was never stored, so it names no client to report.
        Step::Done(failure(&self.cfg, err, None))
    }
}

/// The 201 response (RFC 7591 §3.2.1).
fn created(rec: &ClientRecord, secret: Option<&str>) -> Response<Bytes> {
    let mut body = Map::new();
    body.insert("client_id".into(), Value::from(rec.client_id.clone()));
    if let Some(secret) = secret {
        body.insert("client_secret".into(), Value::from(secret));
    }
    body.insert("client_id_issued_at".into(), Value::from(rec.created_at.as_secs()));
    if secret.is_some() {
        // The secret lives as long as the registration; 0 means it has no
        // expiry of its own.
        body.insert("client_secret_expires_at".into(), Value::from(0));
    }
    body.extend(registered_metadata(rec));
    http_util::json(StatusCode::CREATED, &Value::Object(body), false)
}

/// Report `err` and render it. `invalid_token` carries the RFC 6750 §3
/// challenge, as the initial access token is a bearer token.
fn failure(cfg: &Config, err: &OAuthError, client_id: Option<&str>) -> Outcome {
    Provider::observe(cfg, "register", err, client_id);
    let mut resp = http_util::error_response(err);
    if err.reason == IAT_MISSING {
        // RFC 6750 §3.1: no error code when the request carried no token.
        resp.headers_mut().insert(http_util::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    } else if err.code == ErrorCode::InvalidToken {
        let full = format!("Bearer error=\"invalid_token\", error_description={}", http_util::quoted(&err.description));
        // A hook's description may hold characters a header cannot carry.
        let value = HeaderValue::from_str(&full).unwrap_or(HeaderValue::from_static("Bearer error=\"invalid_token\""));
        resp.headers_mut().insert(http_util::WWW_AUTHENTICATE, value);
    }
    Outcome::Response(resp)
}

// ---- field rules -----------------------------------------------------------

fn invalid_metadata(reason: Reason, description: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, reason, description)
}

fn invalid_redirect(reason: Reason, description: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRedirectUri, reason, description)
}

fn invalid_token(reason: Reason, description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidToken, reason, description)
}

fn string(obj: &Map<String, Value>, name: &'static str) -> Result<Option<String>, OAuthError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid_metadata(WRONG_TYPE, format!("{name} must be a string"))),
    }
}

fn string_array(
    obj: &Map<String, Value>,
    name: &'static str,
    code: ErrorCode,
    max: usize,
) -> Result<Option<Vec<String>>, OAuthError> {
    let wrong = || OAuthError::new(code, WRONG_TYPE, format!("{name} must be an array of strings"));
    let items = match obj.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(wrong()),
    };
    if items.len() > max {
        let reason = if name == "redirect_uris" { REDIRECT_URIS_TOO_MANY } else { WRONG_TYPE };
        return Err(OAuthError::new(code, reason, format!("{name} may hold at most {max} entries")));
    }
    items.iter().map(|v| v.as_str().map(str::to_owned).ok_or_else(wrong)).collect::<Result<Vec<_>, _>>().map(Some)
}

fn auth_method(cfg: &Config, method: Option<&str>, registrar: Registrar) -> Result<&'static str, OAuthError> {
    // RFC 7591 §2: the default is client_secret_basic.
    let method = match method {
        None => METHOD_BASIC,
        Some(METHOD_BASIC) => METHOD_BASIC,
        Some(METHOD_POST) => METHOD_POST,
        Some(METHOD_NONE) => METHOD_NONE,
        Some(_) => {
            return Err(invalid_metadata(
                AUTH_METHOD_UNSUPPORTED,
                "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post",
            ));
        }
    };
    if method == METHOD_NONE && registrar == Registrar::Dynamic && cfg.disallow_public_client_registration {
        return Err(invalid_metadata(PUBLIC_CLIENT_REFUSED, "This server does not register public clients"));
    }
    Ok(method)
}

fn grant_types(cfg: &Config, requested: Option<Vec<String>>) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(vec![GRANT_AUTHORIZATION_CODE.to_owned()]);
    };
    if requested.is_empty() {
        return Err(invalid_metadata(GRANT_TYPES_EMPTY, "grant_types must not be empty"));
    }
    let mut out: Vec<String> = Vec::with_capacity(requested.len());
    for g in requested {
        let supported = g == GRANT_AUTHORIZATION_CODE
            || g == GRANT_REFRESH_TOKEN
            || (g == TOKEN_EXCHANGE_GRANT && cfg.token_exchange);
        if !supported {
            return Err(invalid_metadata(
                GRANT_TYPE_UNSUPPORTED,
                format!("grant type {:?} is not supported", http_util::printable(&g)),
            ));
        }
        if !out.contains(&g) {
            out.push(g);
        }
    }
    Ok(out)
}

/// RFC 7591 §2.1: `authorization_code` and the `code` response type come
/// together. The `code` default applies only to clients that use the grant,
/// so a token-exchange-only client need not spell out an empty list.
fn response_types(requested: Option<Vec<String>>, uses_code: bool) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(if uses_code { vec![RESPONSE_CODE.to_owned()] } else { Vec::new() });
    };
    let mut out: Vec<String> = Vec::new();
    for r in requested {
        if r != RESPONSE_CODE {
            return Err(invalid_metadata(
                RESPONSE_TYPE_UNSUPPORTED,
                format!("response type {:?} is not supported", http_util::printable(&r)),
            ));
        }
        if !out.contains(&r) {
            out.push(r);
        }
    }
    if out.is_empty() == uses_code {
        return Err(invalid_metadata(
            GRANT_RESPONSE_MISMATCH,
            "the authorization_code grant type and the code response type must be registered together",
        ));
    }
    Ok(out)
}

fn application_type(requested: Option<&str>) -> Result<Option<&'static str>, OAuthError> {
    match requested {
        None => Ok(None),
        Some(APP_WEB) => Ok(Some(APP_WEB)),
        Some(APP_NATIVE) => Ok(Some(APP_NATIVE)),
        Some(_) => Err(invalid_metadata(APPLICATION_TYPE_UNSUPPORTED, "application_type must be web or native")),
    }
}

/// Validate redirect URIs and settle the application type (see the module
/// documentation). URIs are stored exactly as sent, since authorization
/// requests are matched against them by string comparison.
fn redirect_uris(
    cfg: &Config,
    requested: Vec<String>,
    required: bool,
    declared: Option<&'static str>,
    registrar: Registrar,
) -> Result<(Vec<String>, &'static str), OAuthError> {
    let mut kept: Vec<String> = Vec::with_capacity(requested.len());
    let mut keeps_private_use = false;
    let mut refused: Option<&'static str> = None;
    for (i, uri) in requested.into_iter().enumerate() {
        let private_use = match redirect_uri::validate_for_registration(&uri, cfg.allow_private_use_redirect_uris) {
            Ok(()) => !is_http_family(&uri),
            Err(RedirectUriProblem::PrivateUseSchemeNotAllowed) => {
                refused = Some(RedirectUriProblem::PrivateUseSchemeNotAllowed.describe());
                continue;
            }
            Err(problem) => {
                return Err(invalid_redirect(
                    REDIRECT_URI_INVALID,
                    format!("redirect_uris[{i}]: {}", problem.describe()),
                ));
            }
        };
        if private_use && declared == Some(APP_WEB) {
            refused = Some("private-use URI schemes are for native applications (application_type \"native\")");
            continue;
        }
        if !kept.contains(&uri) {
            keeps_private_use |= private_use;
            kept.push(uri);
        }
    }
    if let Some(why) = refused {
        if kept.is_empty() || registrar == Registrar::Admin {
            return Err(invalid_redirect(REDIRECT_URI_PRIVATE_USE, why));
        }
    }
    if required && kept.is_empty() {
        return Err(invalid_redirect(
            REDIRECT_URIS_MISSING,
            "redirect_uris is required for the authorization_code grant",
        ));
    }
    let application_type = declared.unwrap_or(if keeps_private_use { APP_NATIVE } else { APP_WEB });
    Ok((kept, application_type))
}

/// `http` or `https`, which `validate_for_registration` has already limited
/// to secure or loopback targets; every other accepted scheme is private-use.
fn is_http_family(uri: &str) -> bool {
    uri.split_once(':').is_some_and(|(s, _)| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
}

fn scope(requested: Option<String>) -> Result<Option<String>, OAuthError> {
    let Some(s) = requested else { return Ok(None) };
    if s.len() > MAX_SCOPE_BYTES {
        return Err(invalid_metadata(SCOPE_INVALID, "scope is too long"));
    }
    let scopes =
        parse_scope(&s).ok_or_else(|| invalid_metadata(SCOPE_INVALID, "scope holds an invalid scope token"))?;
    Ok((!scopes.is_empty()).then(|| format_scope(&scopes)))
}

/// Bidirectional formatting characters: in a client name they can make a
/// consent page display text in an order other than the one registered.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn text(name: &'static str, value: Option<String>, max_chars: usize) -> Result<Option<String>, OAuthError> {
    let Some(v) = value.filter(|v| !v.is_empty()) else { return Ok(None) };
    if v.chars().count() > max_chars {
        return Err(invalid_metadata(TEXT_INVALID, format!("{name} is longer than {max_chars} characters")));
    }
    if v.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(invalid_metadata(TEXT_INVALID, format!("{name} contains control characters")));
    }
    Ok(Some(v))
}

/// `client_uri`, `logo_uri`, `policy_uri` and `tos_uri` end up as links and
/// images on consent pages: https (or http on loopback) only, no userinfo.
/// The parser's serialisation is stored, which percent-encodes characters
/// such as quotes and angle brackets that could break out of an attribute.
fn web_uri(name: &'static str, value: Option<String>) -> Result<Option<String>, OAuthError> {
    let Some(v) = value.filter(|v| !v.is_empty()) else { return Ok(None) };
    let bad = || invalid_metadata(URI_INVALID, format!("{name} must be an https URL (http only on loopback)"));
    if v.len() > MAX_URI_BYTES || v.chars().any(|c| c.is_control() || c.is_whitespace()) || v.contains('\\') {
        return Err(bad());
    }
    let url = Url::parse(&v).map_err(|_| bad())?;
    if !is_secure_or_loopback(&url) || !url.username().is_empty() || url.password().is_some() {
        return Err(bad());
    }
    Ok(Some(url.as_str().to_owned()))
}

fn contacts(requested: Option<Vec<String>>) -> Result<Vec<String>, OAuthError> {
    let mut out: Vec<String> = Vec::new();
    for c in requested.unwrap_or_default() {
        let bad = c.is_empty() || c.chars().count() > MAX_CONTACT_CHARS || c.chars().any(|ch| ch.is_control());
        if bad {
            return Err(invalid_metadata(
                CONTACTS_INVALID,
                format!("contacts entries must be non-empty text of at most {MAX_CONTACT_CHARS} characters"),
            ));
        }
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_family_is_judged_on_the_scheme_only() {
        assert!(is_http_family("HTTPS://a.example/cb"));
        assert!(is_http_family("http://127.0.0.1/cb"));
        assert!(!is_http_family("cursor://cb"));
        assert!(!is_http_family("com.example.app:/http"));
    }

    #[test]
    fn duplicate_members_are_refused_but_nested_ones_are_not_inspected() {
        assert!(serde_json::from_str::<StrictObject>(r#"{"a":1,"a":2}"#).is_err());
        assert!(serde_json::from_str::<StrictObject>(r#"{"a":{"b":1},"c":[1,1]}"#).is_ok());
        assert!(serde_json::from_str::<StrictObject>("[1]").is_err());
    }

    #[test]
    fn registration_ttl_bounds() {
        assert!(validate_registration_ttl(None).is_ok());
        assert!(validate_registration_ttl(Some(MIN_TTL_SECS)).is_ok());
        assert!(validate_registration_ttl(Some(MIN_TTL_SECS - 1)).is_err());
        assert!(validate_registration_ttl(Some(MAX_REGISTRATION_TTL + 1)).is_err());
    }

    #[test]
    fn bidi_controls_are_refused_in_names() {
        assert!(text("client_name", Some("evil\u{202E}gnp.exe".into()), 64).is_err());
        assert!(text("client_name", Some("Café ☕".into()), 64).is_ok());
        assert_eq!(text("client_name", Some(String::new()), 64).ok(), Some(None));
    }
}
