//! Grant mechanics shared by the endpoints: minting tokens, sealing props,
//! and the revocation cascade.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::crypto::{self, CredentialKind, GrantId, SymKey};
use crate::error::{OAuthError, reasons};
use crate::flow::{Input, as_entry, as_listed, replies};
use crate::records::{self, AccessRecord, GrantRecord, RefreshSlot};
use crate::rng::Entropy;
use crate::scope::format_scope;
use crate::storage::{Condition, StorageOp, StorageRequest};
use crate::time::UnixTime;

/// Bytes of entropy a token-minting flow draws: grant key, secrets, nonces.
pub(crate) const MINT_ENTROPY: usize = 384;

const AAD_PROPS: &str = "props";
const AAD_CODE: &str = "code-key";
const AAD_REFRESH: &str = "refresh-key";
const AAD_ACCESS: &str = "access-props";

fn aad(grant_id: &str, purpose: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(grant_id.len() + purpose.len() + 1);
    v.extend_from_slice(grant_id.as_bytes());
    v.push(0);
    v.extend_from_slice(purpose.as_bytes());
    v
}

fn entropy_err() -> OAuthError {
    OAuthError::server_error(reasons::ENTROPY_EXHAUSTED)
}

fn crypto_err() -> OAuthError {
    OAuthError::server_error(reasons::CRYPTO_FAILED)
}

/// Seal a grant's props under its key.
pub(crate) fn seal_props(
    key: &SymKey,
    grant_id: &str,
    props: &Value,
    entropy: &mut Entropy,
) -> Result<Vec<u8>, OAuthError> {
    let nonce = entropy.take::<{ crypto::NONCE_LEN }>().ok_or_else(entropy_err)?;
    let plain = serde_json::to_vec(props).map_err(|_| crypto_err())?;
    crypto::seal(key, &nonce, &aad(grant_id, AAD_PROPS), &plain).ok_or_else(crypto_err)
}

/// Open a grant's props.
pub(crate) fn open_props(key: &SymKey, grant: &GrantRecord) -> Result<Value, OAuthError> {
    let plain = crypto::open(key, &aad(&grant.grant_id, AAD_PROPS), &grant.props).ok_or_else(crypto_err)?;
    serde_json::from_slice(&plain).map_err(|_| crypto_err())
}

/// Recover the grant key with the authorization code that wrapped it.
pub(crate) fn unwrap_with_code(code: &str, grant_id: &str, wrapped: &[u8]) -> Result<SymKey, OAuthError> {
    crypto::unwrap_key(code, wrapped, &aad(grant_id, AAD_CODE)).ok_or_else(crypto_err)
}

/// Recover the grant key with a refresh token that wrapped it.
pub(crate) fn unwrap_with_refresh(token: &str, grant_id: &str, wrapped: &[u8]) -> Result<SymKey, OAuthError> {
    crypto::unwrap_key(token, wrapped, &aad(grant_id, AAD_REFRESH)).ok_or_else(crypto_err)
}

/// A fresh grant id and grant key.
pub(crate) fn new_grant_secrets(entropy: &mut Entropy) -> Result<(GrantId, SymKey), OAuthError> {
    let id = entropy.take::<{ crypto::GRANT_ID_LEN }>().ok_or_else(entropy_err)?;
    let key = entropy.take::<32>().ok_or_else(entropy_err)?;
    Ok((GrantId(id), key))
}

/// Mint an authorization code for a grant: the code, its id and the grant
/// key wrapped under it.
pub(crate) fn mint_code(
    grant_id: GrantId,
    key: &SymKey,
    entropy: &mut Entropy,
) -> Result<(String, [u8; 32], Vec<u8>), OAuthError> {
    let secret = entropy.take::<{ crypto::SECRET_LEN }>().ok_or_else(entropy_err)?;
    let nonce = entropy.take::<{ crypto::NONCE_LEN }>().ok_or_else(entropy_err)?;
    let code = crypto::mint(CredentialKind::AuthorizationCode, grant_id, &secret);
    let wrapped = crypto::wrap_key(&code, key, &nonce, &aad(&grant_id.to_hex(), AAD_CODE)).ok_or_else(crypto_err)?;
    let id = crypto::credential_id(&code);
    Ok((code, id, wrapped))
}

/// Mint a refresh token and the slot that records it.
pub(crate) fn mint_refresh(
    grant_id: GrantId,
    key: &SymKey,
    now: UnixTime,
    entropy: &mut Entropy,
) -> Result<(String, RefreshSlot), OAuthError> {
    let secret = entropy.take::<{ crypto::SECRET_LEN }>().ok_or_else(entropy_err)?;
    let nonce = entropy.take::<{ crypto::NONCE_LEN }>().ok_or_else(entropy_err)?;
    let token = crypto::mint(CredentialKind::RefreshToken, grant_id, &secret);
    let wrapped =
        crypto::wrap_key(&token, key, &nonce, &aad(&grant_id.to_hex(), AAD_REFRESH)).ok_or_else(crypto_err)?;
    let slot = RefreshSlot { id: crypto::credential_id(&token), wrapped_key: wrapped, issued_at: now };
    Ok((token, slot))
}

/// Everything an access token is minted from.
pub(crate) struct AccessGrant<'a> {
    pub(crate) grant_id: GrantId,
    pub(crate) user_id: &'a str,
    /// The client the token is issued to.
    pub(crate) client_id: &'a str,
    pub(crate) audience: &'a str,
    pub(crate) scope: Vec<String>,
    pub(crate) props: &'a Value,
    pub(crate) token_props: Option<&'a Value>,
    /// Absolute expiry.
    pub(crate) expires_at: UnixTime,
}

/// Mint an access token: the token and the `Put` that stores its record.
pub(crate) fn mint_access(
    a: &AccessGrant<'_>,
    now: UnixTime,
    entropy: &mut Entropy,
) -> Result<(String, StorageOp), OAuthError> {
    let secret = entropy.take::<{ crypto::SECRET_LEN }>().ok_or_else(entropy_err)?;
    let nonce = entropy.take::<{ crypto::NONCE_LEN }>().ok_or_else(entropy_err)?;
    let token = crypto::mint(CredentialKind::AccessToken, a.grant_id, &secret);
    let id = crypto::credential_id(&token);
    let gid = a.grant_id.to_hex();
    let plain =
        serde_json::to_vec(&json!({ "props": a.props, "token_props": a.token_props })).map_err(|_| crypto_err())?;
    let sealed = crypto::seal(&crypto::kek(&token), &nonce, &aad(&gid, AAD_ACCESS), &plain).ok_or_else(crypto_err)?;
    let record = AccessRecord {
        grant_id: gid,
        user_id: a.user_id.to_owned(),
        client_id: a.client_id.to_owned(),
        scope: a.scope.clone(),
        audience: a.audience.to_owned(),
        issued_at: now,
        expires_at: a.expires_at,
        props: sealed,
    };
    let value = records::encode(&record).ok_or_else(crypto_err)?;
    let op = StorageOp::Put {
        key: records::token_key(a.grant_id, &id),
        value,
        revision: 1,
        expires_at: Some(a.expires_at),
        condition: Condition::IfAbsent,
    };
    Ok((token, op))
}

/// Decrypt an access record's props with the token itself:
/// `(props, token_props)`.
pub(crate) fn open_access_props(token: &str, record: &AccessRecord) -> Option<(Value, Value)> {
    let plain = crypto::open(&crypto::kek(token), &aad(&record.grant_id, AAD_ACCESS), &record.props)?;
    let mut v: Value = serde_json::from_slice(&plain).ok()?;
    let props = v.get_mut("props").map(Value::take).unwrap_or(Value::Null);
    let token_props = v.get_mut("token_props").map(Value::take).unwrap_or(Value::Null);
    Some((props, token_props))
}

/// The successful token response (RFC 6749 §5.1).
pub(crate) fn token_response(
    access_token: &str,
    expires_in: u64,
    refresh_token: Option<&str>,
    scope: &[String],
    resource: &str,
) -> Response<Bytes> {
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": format_scope(scope),
        "resource": resource,
    });
    if let (Some(rt), Some(obj)) = (refresh_token, body.as_object_mut()) {
        obj.insert("refresh_token".into(), Value::String(rt.to_owned()));
    }
    crate::http_util::json(StatusCode::OK, &body, false)
}

/// The `Put` of a grant record.
pub(crate) fn put_grant(
    grant_id: GrantId,
    grant: &GrantRecord,
    revision: u64,
    condition: Condition,
) -> Result<StorageOp, OAuthError> {
    Ok(StorageOp::Put {
        key: records::grant_key(grant_id),
        value: records::encode(grant).ok_or_else(crypto_err)?,
        revision,
        expires_at: grant.expires_at,
        condition,
    })
}

/// When a grant with this refresh state should expire: the refresh
/// token's absolute end, shortened by idle expiry from `now`.
pub(crate) fn grant_expiry(absolute: Option<UnixTime>, idle_ttl: Option<u64>, now: UnixTime) -> Option<UnixTime> {
    let idle = idle_ttl.map(|t| now.plus(t));
    match (absolute, idle) {
        (Some(a), Some(i)) => Some(a.min(i)),
        (a, i) => a.or(i),
    }
}

/// The revocation cascade: delete a grant, its user-index entry and every
/// access token issued from it.
///
/// Round 1 takes the grant (so no code or refresh token of it works from
/// here on) and lists its access tokens; later rounds delete the tokens page
/// by page. If storage fails part-way, the grant is already gone and a retry
/// lists and deletes whatever tokens remain, so retrying a revocation always
/// completes it.
#[derive(Debug)]
pub(crate) struct Cascade {
    grant_id: GrantId,
    now: UnixTime,
    state: CascadeState,
}

#[derive(Debug)]
enum CascadeState {
    Start,
    First,
    Page { more: bool },
    Finished,
}

/// What the cascade needs next.
pub(crate) enum CascadeStep {
    Storage(StorageRequest),
    Done(Result<(), OAuthError>),
}

const CASCADE_PAGE: u32 = 100;

impl Cascade {
    pub(crate) fn new(grant_id: GrantId, now: UnixTime) -> Self {
        Self { grant_id, now, state: CascadeState::Start }
    }

    fn list(&self, cursor: Option<String>) -> StorageOp {
        StorageOp::List { prefix: records::token_prefix(self.grant_id), cursor, limit: CASCADE_PAGE }
    }

    pub(crate) fn advance(&mut self, input: Input) -> CascadeStep {
        match self.step(input) {
            Ok(step) => step,
            Err(e) => {
                self.state = CascadeState::Finished;
                CascadeStep::Done(Err(e))
            }
        }
    }

    fn step(&mut self, input: Input) -> Result<CascadeStep, OAuthError> {
        match std::mem::replace(&mut self.state, CascadeState::Finished) {
            CascadeState::Start => {
                self.state = CascadeState::First;
                let ops = vec![StorageOp::Take { key: records::grant_key(self.grant_id) }, self.list(None)];
                Ok(CascadeStep::Storage(StorageRequest { now: self.now, ops }))
            }
            CascadeState::First => {
                let mut r = replies(input, 2)?.into_iter();
                let taken = as_entry(r.next().ok_or_else(proto)?)?;
                let (entries, cursor) = as_listed(r.next().ok_or_else(proto)?)?;
                let mut ops: Vec<StorageOp> = entries.into_iter().map(|(key, _)| StorageOp::Delete { key }).collect();
                if let Some(entry) = taken {
                    if let Some(g) = records::decode::<GrantRecord>(&entry.value) {
                        ops.push(StorageOp::Delete { key: records::user_grant_key(&g.user_id, self.grant_id) });
                    }
                }
                self.next_page(ops, cursor)
            }
            CascadeState::Page { more } => {
                // The deletes reply `Done`; only a trailing listing matters.
                let r = replies_any(input)?;
                let listed = if more { r.into_iter().last() } else { None };
                match listed {
                    Some(reply) => {
                        let (entries, cursor) = as_listed(reply)?;
                        let ops = entries.into_iter().map(|(key, _)| StorageOp::Delete { key }).collect();
                        self.next_page(ops, cursor)
                    }
                    None => Ok(CascadeStep::Done(Ok(()))),
                }
            }
            CascadeState::Finished => Err(proto()),
        }
    }

    fn next_page(&mut self, mut ops: Vec<StorageOp>, cursor: Option<String>) -> Result<CascadeStep, OAuthError> {
        let more = cursor.is_some();
        if let Some(c) = cursor {
            ops.push(self.list(Some(c)));
        }
        if ops.is_empty() {
            return Ok(CascadeStep::Done(Ok(())));
        }
        self.state = CascadeState::Page { more };
        Ok(CascadeStep::Storage(StorageRequest { now: self.now, ops }))
    }
}

fn replies_any(input: Input) -> Result<Vec<crate::storage::Reply>, OAuthError> {
    match input {
        Input::Storage(Ok(r)) => Ok(r),
        other => replies(other, usize::MAX),
    }
}

fn proto() -> OAuthError {
    OAuthError::server_error(reasons::DRIVER_PROTOCOL)
}
