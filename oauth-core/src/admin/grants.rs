//! Grants and tokens, seen from the application: a user's account page
//! (list and revoke connected clients), token lookup for support and
//! debugging, and the housekeeping pass over the user index.
//!
//! Each helper is a [`Flow`] like a request, driven with the same loop
//! ([`drive`](crate::drive) or [`drive_blocking`](crate::drive_blocking)).
//! Nothing here is reachable over HTTP: the application decides who may call
//! what, typically only for the signed-in user's own `user_id`.

use std::sync::Arc;

use serde_json::Value;

use crate::config::{Config, RefreshPolicy};
use crate::crypto::{self, CredentialKind, Digest32, GrantId};
use crate::error::{OAuthError, reasons};
use crate::flow::{Flow, Input, Machine, Step, as_entry, as_listed, one_reply, replies};
use crate::grant::{Cascade, CascadeStep};
use crate::provider::Provider;
use crate::records::{self, AccessRecord, GrantRecord, UserGrantRecord};
use crate::storage::{Entry, StorageOp, StorageRequest};
use crate::time::UnixTime;

/// The most entries one page of [`Provider::list_user_grants`] or one pass of
/// [`Provider::purge_expired`] handles.
pub const MAX_GRANT_PAGE: u32 = 1000;

/// The prefix every user-index key starts with.
const USER_INDEX: &str = "user/";

/// How old a user-index entry must be before [`Provider::purge_expired`] may
/// call it an orphan. A new grant and its index entry are written in one
/// batch whose operations may land in either order; an entry younger than
/// this may simply be waiting for its grant.
const ORPHAN_MIN_AGE_SECS: u64 = 300;

/// One of a user's grants, as an account page shows it. Holds no secret:
/// the grant's props stay encrypted and are never returned.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct GrantSummary {
    /// The grant's id (hex), the handle for [`Provider::revoke_grant`].
    pub grant_id: String,
    /// The client the user authorized.
    pub client_id: String,
    /// The resource (audience) the grant is for.
    pub resource: String,
    /// The scopes granted.
    pub scope: Vec<String>,
    /// The plaintext metadata the application attached at consent time.
    pub metadata: Value,
    /// When the user approved.
    pub created_at: UnixTime,
    /// When the grant ends unless used or revoked first (`None`: no set end).
    pub expires_at: Option<UnixTime>,
}

/// A page of a user's grants.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct GrantPage {
    /// The grants on this page, in storage-key order.
    pub grants: Vec<GrantSummary>,
    /// Pass this back to get the next page; `None` when the listing is done.
    /// A page may hold fewer grants than asked for, even none, while more
    /// follow: entries whose grant has ended are left out.
    pub cursor: Option<String>,
}

/// The kind of a token found by [`Provider::lookup_token`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenKind {
    /// An access token (`mcp_at_…`).
    AccessToken,
    /// A refresh token (`mcp_rt_…`).
    RefreshToken,
}

/// What a live token stands for. Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenInfo {
    /// The grant the token belongs to (hex).
    pub grant_id: String,
    /// The user who authorized it.
    pub user_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Its scopes (for a refresh token, the grant's).
    pub scope: Vec<String>,
    /// The resource it is for.
    pub audience: String,
    /// When it stops working: an access token's expiry, or for a refresh
    /// token the grant's current end (`None`: no set end).
    pub expires_at: Option<UnixTime>,
    /// Which kind of token it is.
    pub kind: TokenKind,
}

/// What one [`Provider::purge_expired`] pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PurgeReport {
    /// User-index entries looked at.
    pub examined: usize,
    /// Orphaned entries deleted.
    pub deleted: usize,
    /// Pass this back to continue; `None` when the whole index has been seen.
    pub cursor: Option<String>,
}

impl Provider {
    /// A page of the grants `user_id` has given, at most `limit` (1 to
    /// [`MAX_GRANT_PAGE`]) entries of the user index, starting after `cursor`.
    ///
    /// Two storage round trips: the index page, then every listed grant in
    /// one batch, so a grant that has ended (expired, or revoked by a
    /// revocation that was interrupted) is not shown even while its index
    /// entry lingers. `cursor` is opaque; a forged one can only move within
    /// this user's index, never outside it.
    pub fn list_user_grants(
        &self,
        user_id: &str,
        cursor: Option<String>,
        limit: u32,
        now: UnixTime,
    ) -> Flow<Result<GrantPage, OAuthError>> {
        Flow::new(ListGrants {
            user_id: user_id.to_owned(),
            prefix: records::user_prefix(user_id),
            cursor,
            limit: limit.clamp(1, MAX_GRANT_PAGE),
            now,
            state: ListState::Start,
        })
    }

    /// Revoke the grant `grant_id` of `user_id`: the grant, its refresh
    /// token, every access token issued from it and its index entry.
    ///
    /// `Ok(true)` when the user had that grant; `Ok(false)` when the id is
    /// unknown, malformed, or names another user's grant, which is left
    /// untouched and is not distinguished from an unknown one. Retrying after
    /// a storage failure completes an interrupted revocation: while the
    /// user's index entry remains, the grant's leftover access tokens are
    /// deleted again. Three round trips for a live grant.
    pub fn revoke_grant(&self, grant_id: &str, user_id: &str, now: UnixTime) -> Flow<Result<bool, OAuthError>> {
        let Some(id) = GrantId::from_hex(grant_id) else {
            return Flow::ready(Ok(false));
        };
        Flow::new(RevokeGrant { grant_id: id, user_id: user_id.to_owned(), now, state: RevokeState::Start })
    }

    /// What `token` stands for, if it is a live access or refresh token;
    /// `None` for anything else (unknown, expired, revoked, malformed, or an
    /// authorization code). One round trip; no secret is returned.
    ///
    /// A refresh token counts only while the token endpoint would accept it:
    /// the grant's current one, and under [`RefreshPolicy::Grace`] also the
    /// one it replaced. Ids are compared in constant time.
    pub fn lookup_token(&self, token: &str, now: UnixTime) -> Flow<Result<Option<TokenInfo>, OAuthError>> {
        let lookup = if let Some(p) = crypto::parse(CredentialKind::AccessToken, token) {
            Lookup::Access {
                key: records::token_key(p.grant_id, &crypto::credential_id(token)),
                grant_key: records::grant_key(p.grant_id),
            }
        } else if let Some(p) = crypto::parse(CredentialKind::RefreshToken, token) {
            Lookup::Refresh { grant_id: p.grant_id, id: crypto::credential_id(token) }
        } else {
            return Flow::ready(Ok(None));
        };
        Flow::new(LookupToken { cfg: self.shared_config(), lookup, now, started: false })
    }

    /// One housekeeping pass over the user index: lists up to `batch_size`
    /// (1 to [`MAX_GRANT_PAGE`]; about 100 suits every backend) entries after
    /// `cursor`, and deletes those whose grant no longer exists. Call it
    /// again with the returned cursor until that is `None`.
    ///
    /// Stores already hide expired records from every operation, so nothing
    /// expired is ever served. What expiry alone does not clean up is an
    /// index entry that outlives its grant: with idle expiry of refresh
    /// tokens, or after a revocation that storage interrupted. Those entries
    /// are what this pass removes; entries younger than five minutes are
    /// left alone, as their grant may still be being written. Up to three
    /// round trips: list, read the grants, delete the orphans.
    ///
    /// Physically removing expired rows is each backend's job, not the
    /// core's: a periodic `DELETE … WHERE expires_at <= now()` on PostgreSQL,
    /// the table's TTL attribute on DynamoDB, native expiration on Workers
    /// KV, `MemoryStore::purge_expired` in tests.
    pub fn purge_expired(
        &self,
        cursor: Option<String>,
        batch_size: u32,
        now: UnixTime,
    ) -> Flow<Result<PurgeReport, OAuthError>> {
        Flow::new(Purge { cursor, limit: batch_size.clamp(1, MAX_GRANT_PAGE), now, state: PurgeState::Start })
    }
}

// ---- listing ----------------------------------------------------------------

struct ListGrants {
    user_id: String,
    prefix: String,
    cursor: Option<String>,
    limit: u32,
    now: UnixTime,
    state: ListState,
}

enum ListState {
    Start,
    Listed,
    Read { count: usize, cursor: Option<String> },
    Finished,
}

impl Machine for ListGrants {
    type Output = Result<GrantPage, OAuthError>;

    fn advance(&mut self, input: Input) -> Step<Self::Output> {
        match self.step(input) {
            Ok(step) => step,
            Err(e) => {
                self.state = ListState::Finished;
                Step::Done(Err(e))
            }
        }
    }
}

impl ListGrants {
    fn step(&mut self, input: Input) -> Result<Step<<Self as Machine>::Output>, OAuthError> {
        match std::mem::replace(&mut self.state, ListState::Finished) {
            ListState::Start => {
                self.state = ListState::Listed;
                let list =
                    StorageOp::List { prefix: self.prefix.clone(), cursor: self.cursor.take(), limit: self.limit };
                Ok(self.storage(vec![list]))
            }
            ListState::Listed => {
                let (entries, cursor) = as_listed(one_reply(input)?)?;
                let ops: Vec<StorageOp> = entries
                    .iter()
                    .filter_map(|(key, _)| grant_id_of(key))
                    .map(|id| StorageOp::Get { key: records::grant_key(id) })
                    .collect();
                if ops.is_empty() {
                    return Ok(Step::Done(Ok(GrantPage { grants: Vec::new(), cursor })));
                }
                self.state = ListState::Read { count: ops.len(), cursor };
                Ok(self.storage(ops))
            }
            ListState::Read { count, cursor } => {
                let grants = replies(input, count)?
                    .into_iter()
                    .map(as_entry)
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .flatten()
                    .filter_map(|e| records::decode::<GrantRecord>(&e.value))
                    // The index names the grant; the grant itself says whose
                    // it is, so a damaged index cannot show a stranger's grant.
                    .filter(|g| g.user_id == self.user_id)
                    .map(summary)
                    .collect();
                Ok(Step::Done(Ok(GrantPage { grants, cursor })))
            }
            ListState::Finished => Err(proto()),
        }
    }

    fn storage(&self, ops: Vec<StorageOp>) -> Step<<Self as Machine>::Output> {
        Step::Storage(StorageRequest { now: self.now, ops })
    }
}

fn summary(g: GrantRecord) -> GrantSummary {
    GrantSummary {
        grant_id: g.grant_id,
        client_id: g.client_id,
        resource: g.resource,
        scope: g.scope,
        metadata: g.metadata,
        created_at: g.created_at,
        expires_at: g.expires_at,
    }
}

/// The grant id at the end of a user-index key, `user/{b64url}/{hex}`.
/// (base64url never contains `/`, so the last segment is the id.)
fn grant_id_of(key: &str) -> Option<GrantId> {
    let rest = key.strip_prefix(USER_INDEX)?;
    let (_, hex) = rest.rsplit_once('/')?;
    GrantId::from_hex(hex)
}

// ---- revoking a grant -------------------------------------------------------

struct RevokeGrant {
    grant_id: GrantId,
    user_id: String,
    now: UnixTime,
    state: RevokeState,
}

enum RevokeState {
    Start,
    Loaded,
    /// Waiting for the deletion of an index entry the cascade cannot find
    /// (its grant is gone or unreadable).
    IndexDeleted,
    Cascading(Cascade),
    Finished,
}

impl Machine for RevokeGrant {
    type Output = Result<bool, OAuthError>;

    fn advance(&mut self, input: Input) -> Step<Self::Output> {
        match self.step(input) {
            Ok(step) => step,
            Err(e) => {
                self.state = RevokeState::Finished;
                Step::Done(Err(e))
            }
        }
    }
}

impl RevokeGrant {
    fn step(&mut self, input: Input) -> Result<Step<<Self as Machine>::Output>, OAuthError> {
        match std::mem::replace(&mut self.state, RevokeState::Finished) {
            RevokeState::Start => {
                self.state = RevokeState::Loaded;
                let ops = vec![
                    StorageOp::Get { key: records::grant_key(self.grant_id) },
                    StorageOp::Get { key: self.index_key() },
                ];
                Ok(Step::Storage(StorageRequest { now: self.now, ops }))
            }
            RevokeState::Loaded => {
                let mut r = replies(input, 2)?.into_iter();
                let grant = as_entry(r.next().ok_or_else(proto)?)?;
                let indexed = as_entry(r.next().ok_or_else(proto)?)?.is_some();
                let decoded = grant.as_ref().and_then(|e| records::decode::<GrantRecord>(&e.value));
                match decoded {
                    // The cascade deletes the index entry it finds in the grant.
                    Some(g) if g.user_id == self.user_id => {
                        self.cascade(Cascade::new(self.grant_id, self.now), Input::Start)
                    }
                    Some(_) => Ok(Step::Done(Ok(false))),
                    // No readable grant, but the user's index names it: a
                    // revocation was interrupted or the grant ended first.
                    // Remove the entry, then sweep any leftover tokens.
                    None if indexed => {
                        self.state = RevokeState::IndexDeleted;
                        let ops = vec![StorageOp::Delete { key: self.index_key() }];
                        Ok(Step::Storage(StorageRequest { now: self.now, ops }))
                    }
                    None => Ok(Step::Done(Ok(false))),
                }
            }
            RevokeState::IndexDeleted => {
                one_reply(input)?;
                self.cascade(Cascade::new(self.grant_id, self.now), Input::Start)
            }
            RevokeState::Cascading(cascade) => self.cascade(cascade, input),
            RevokeState::Finished => Err(proto()),
        }
    }

    fn index_key(&self) -> String {
        records::user_grant_key(&self.user_id, self.grant_id)
    }

    fn cascade(&mut self, mut cascade: Cascade, input: Input) -> Result<Step<<Self as Machine>::Output>, OAuthError> {
        match cascade.advance(input) {
            CascadeStep::Storage(request) => {
                self.state = RevokeState::Cascading(cascade);
                Ok(Step::Storage(request))
            }
            CascadeStep::Done(result) => result.map(|()| Step::Done(Ok(true))),
        }
    }
}

// ---- token lookup -------------------------------------------------------------

enum Lookup {
    Access { key: String, grant_key: String },
    Refresh { grant_id: GrantId, id: Digest32 },
}

struct LookupToken {
    cfg: Arc<Config>,
    lookup: Lookup,
    now: UnixTime,
    started: bool,
}

impl Machine for LookupToken {
    type Output = Result<Option<TokenInfo>, OAuthError>;

    fn advance(&mut self, input: Input) -> Step<Self::Output> {
        if !self.started {
            self.started = true;
            // An access token counts only while its grant exists, exactly as
            // at the resource; both are read in one round trip.
            let ops = match &self.lookup {
                Lookup::Access { key, grant_key } => {
                    vec![StorageOp::Get { key: key.clone() }, StorageOp::Get { key: grant_key.clone() }]
                }
                Lookup::Refresh { grant_id, .. } => vec![StorageOp::Get { key: records::grant_key(*grant_id) }],
            };
            return Step::Storage(StorageRequest { now: self.now, ops });
        }
        let expected = match self.lookup {
            Lookup::Access { .. } => 2,
            Lookup::Refresh { .. } => 1,
        };
        let result = replies(input, expected).and_then(|r| {
            let mut r = r.into_iter();
            let entry = r.next().map(as_entry).transpose()?.flatten();
            let grant_live = match r.next() {
                Some(grant) => as_entry(grant)?.is_some(),
                None => true,
            };
            Ok(entry.filter(|_| grant_live))
        });
        Step::Done(result.map(|entry| entry.and_then(|e| self.info(&e))))
    }
}

impl LookupToken {
    fn info(&self, entry: &Entry) -> Option<TokenInfo> {
        match &self.lookup {
            Lookup::Access { .. } => {
                let r: AccessRecord = records::decode(&entry.value)?;
                if self.now.has_reached(r.expires_at) {
                    return None;
                }
                Some(TokenInfo {
                    grant_id: r.grant_id,
                    user_id: r.user_id,
                    client_id: r.client_id,
                    scope: r.scope,
                    audience: r.audience,
                    expires_at: Some(r.expires_at),
                    kind: TokenKind::AccessToken,
                })
            }
            Lookup::Refresh { id, .. } => {
                let g: GrantRecord = records::decode(&entry.value)?;
                if g.expires_at.is_some_and(|t| self.now.has_reached(t)) {
                    return None;
                }
                let current = g.refresh.as_ref().is_some_and(|s| crypto::ct_eq(&s.id, id));
                let previous = g.previous_refresh.as_ref().is_some_and(|s| crypto::ct_eq(&s.id, id));
                // Under `strict`, the replaced token is kept only to detect
                // its reuse; presenting it would revoke the grant.
                let accepted = current | (previous & (self.cfg.refresh_policy == RefreshPolicy::Grace));
                accepted.then_some(TokenInfo {
                    grant_id: g.grant_id,
                    user_id: g.user_id,
                    client_id: g.client_id,
                    scope: g.scope,
                    audience: g.resource,
                    expires_at: g.expires_at,
                    kind: TokenKind::RefreshToken,
                })
            }
        }
    }
}

// ---- purge --------------------------------------------------------------------

struct Purge {
    cursor: Option<String>,
    limit: u32,
    now: UnixTime,
    state: PurgeState,
}

enum PurgeState {
    Start,
    Listed,
    /// Waiting for the grants of these index keys.
    Checked {
        candidates: Vec<String>,
        report: PurgeReport,
    },
    Deleted {
        report: PurgeReport,
    },
    Finished,
}

impl Machine for Purge {
    type Output = Result<PurgeReport, OAuthError>;

    fn advance(&mut self, input: Input) -> Step<Self::Output> {
        match self.step(input) {
            Ok(step) => step,
            Err(e) => {
                self.state = PurgeState::Finished;
                Step::Done(Err(e))
            }
        }
    }
}

impl Purge {
    fn step(&mut self, input: Input) -> Result<Step<<Self as Machine>::Output>, OAuthError> {
        match std::mem::replace(&mut self.state, PurgeState::Finished) {
            PurgeState::Start => {
                self.state = PurgeState::Listed;
                let list =
                    StorageOp::List { prefix: USER_INDEX.to_owned(), cursor: self.cursor.take(), limit: self.limit };
                Ok(self.storage(vec![list]))
            }
            PurgeState::Listed => {
                let (entries, cursor) = as_listed(one_reply(input)?)?;
                let report = PurgeReport { examined: entries.len(), deleted: 0, cursor };
                let mut candidates = Vec::new();
                let mut ops = Vec::new();
                for (key, entry) in entries {
                    // Keys this module cannot parse are not its to judge.
                    let Some(id) = grant_id_of(&key) else { continue };
                    if !self.old_enough(&entry) {
                        continue;
                    }
                    ops.push(StorageOp::Get { key: records::grant_key(id) });
                    candidates.push(key);
                }
                if ops.is_empty() {
                    return Ok(Step::Done(Ok(report)));
                }
                self.state = PurgeState::Checked { candidates, report };
                Ok(self.storage(ops))
            }
            PurgeState::Checked { candidates, mut report } => {
                let r = replies(input, candidates.len())?;
                let mut ops = Vec::new();
                for (key, reply) in candidates.into_iter().zip(r) {
                    if as_entry(reply)?.is_none() {
                        ops.push(StorageOp::Delete { key });
                    }
                }
                if ops.is_empty() {
                    return Ok(Step::Done(Ok(report)));
                }
                report.deleted = ops.len();
                self.state = PurgeState::Deleted { report };
                Ok(self.storage(ops))
            }
            PurgeState::Deleted { report } => {
                replies(input, report.deleted)?;
                Ok(Step::Done(Ok(report)))
            }
            PurgeState::Finished => Err(proto()),
        }
    }

    /// Whether an index entry is past the window in which its grant may not
    /// have landed yet. An unreadable entry has no age and is judged by its
    /// grant alone.
    fn old_enough(&self, entry: &Entry) -> bool {
        records::decode::<UserGrantRecord>(&entry.value)
            .is_none_or(|r| self.now.has_reached(r.created_at.plus(ORPHAN_MIN_AGE_SECS)))
    }

    fn storage(&self, ops: Vec<StorageOp>) -> Step<<Self as Machine>::Output> {
        Step::Storage(StorageRequest { now: self.now, ops })
    }
}

fn proto() -> OAuthError {
    OAuthError::server_error(reasons::DRIVER_PROTOCOL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_ids_come_from_the_last_key_segment() {
        let id = GrantId([0xab; 16]);
        assert_eq!(grant_id_of(&records::user_grant_key("a/b", id)), Some(id));
        assert_eq!(grant_id_of(&records::user_grant_key("", id)), Some(id));
        assert_eq!(grant_id_of("user/abc/not-hex"), None);
        assert_eq!(grant_id_of("grant/abababababababababababababababab"), None);
    }
}
