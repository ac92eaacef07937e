//! Scenario tests of the grant administration helpers: listing a user's
//! grants page by page, revoking one, looking tokens up, and the purge pass
//! over the user index.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::*;
use http::StatusCode;
use oauth_core::admin::{GrantPage, PurgeReport, TokenInfo, TokenKind};
use oauth_core::storage::{Reply, StorageError, StorageOp, StorageRequest};
use oauth_core::{BlockingStore, ErrorCode, Flow, FlowOutput, OAuthError, RefreshPolicy, drive_blocking};

/// Drive an admin flow against the harness's store, recording its stats.
fn run<T: FlowOutput + Send + 'static>(h: &mut Harness, mut flow: Flow<T>) -> T {
    let out = drive_blocking(&mut flow, &mut h.store, |c| c.default_reply());
    h.last_stats = flow.stats();
    out
}

fn list(h: &mut Harness, user: &str, cursor: Option<String>, limit: u32) -> GrantPage {
    let flow = h.provider.list_user_grants(user, cursor, limit, h.now);
    run(h, flow).unwrap()
}

/// Every grant of `user`, following cursors; also the number of pages.
fn list_all(h: &mut Harness, user: &str, limit: u32) -> (Vec<String>, usize) {
    let (mut ids, mut pages, mut cursor) = (Vec::new(), 0, None);
    loop {
        let page = list(h, user, cursor, limit);
        pages += 1;
        assert!(page.grants.len() <= usize::try_from(limit).unwrap());
        ids.extend(page.grants.into_iter().map(|g| g.grant_id));
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => return (ids, pages),
        }
        assert!(pages < 100, "the listing does not end");
    }
}

fn revoke_grant(h: &mut Harness, grant_id: &str, user: &str) -> Result<bool, OAuthError> {
    let flow = h.provider.revoke_grant(grant_id, user, h.now);
    run(h, flow)
}

fn lookup(h: &mut Harness, token: &str) -> Option<TokenInfo> {
    let flow = h.provider.lookup_token(token, h.now);
    run(h, flow).unwrap()
}

fn purge(h: &mut Harness, cursor: Option<String>, batch: u32) -> PurgeReport {
    let flow = h.provider.purge_expired(cursor, batch, h.now);
    run(h, flow).unwrap()
}

/// Purge passes until the index has been seen whole: (examined, deleted).
fn purge_all(h: &mut Harness, batch: u32) -> (usize, usize) {
    let (mut examined, mut deleted, mut cursor) = (0, 0, None);
    loop {
        let report = purge(h, cursor, batch);
        examined += report.examined;
        deleted += report.deleted;
        match report.cursor {
            Some(c) => cursor = Some(c),
            None => return (examined, deleted),
        }
    }
}

/// Remove a grant record behind the provider's back, as an interrupted
/// revocation or an idle expiry leaves things.
fn drop_grant_record(h: &mut Harness, grant_id: &str) {
    h.store.apply(StorageOp::Delete { key: format!("grant/{grant_id}") }, h.now);
}

fn index_keys(h: &Harness) -> Vec<String> {
    h.store.live_keys(h.now).into_iter().filter(|k| k.starts_with("user/")).collect()
}

#[test]
fn listing_an_empty_store_is_one_round_trip_and_no_grants() {
    let mut h = Harness::default();
    let page = list(&mut h, "nobody", None, 10);
    assert!(page.grants.is_empty());
    assert_eq!(page.cursor, None);
    assert_eq!(h.last_stats.round_trips, 1);
    assert_eq!(purge(&mut h, None, 50), PurgeReport::default());
}

#[test]
fn a_users_grants_are_listed_with_what_the_account_page_needs() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let grant_id = h.call_api(&t.access).unwrap().grant_id;
    h.tokens_for(&c, "bob");

    let page = list(&mut h, "alice", None, 10);
    assert_eq!(h.last_stats.round_trips, 2);
    let [g] = page.grants.as_slice() else { panic!("{page:?}") };
    assert_eq!(g.grant_id, grant_id);
    assert_eq!(g.client_id, c.id);
    assert_eq!(g.resource, RESOURCE);
    assert_eq!(g.scope, ["todo:read", "todo:write"]);
    assert_eq!(g.created_at.as_secs(), T0);
    assert!(g.expires_at.is_some_and(|e| e.as_secs() > T0 + 86_400));
    // Nothing sealed leaks into the listing.
    assert!(!format!("{page:?}").contains("secret-upstream-token"));
}

#[test]
fn listing_pages_through_more_than_two_pages_with_the_cursor() {
    let mut h = Harness::new(builder().revoke_existing_grants(false));
    let c = h.register_client("none");
    let mut expected = BTreeSet::new();
    for _ in 0..7 {
        let t = h.tokens_for(&c, "alice");
        expected.insert(h.call_api(&t.access).unwrap().grant_id);
    }
    // Another user's grants never show up.
    h.tokens_for(&c, "alice2");
    h.tokens_for(&c, "bob");

    let (ids, pages) = list_all(&mut h, "alice", 3);
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 7, "no grant listed twice");
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected);

    let (ids, pages) = list_all(&mut h, "alice", 1);
    assert_eq!((ids.len(), pages), (7, 7));
    // A limit above the cap is clamped, and zero means one.
    assert_eq!(list(&mut h, "alice", None, u32::MAX).grants.len(), 7);
    assert_eq!(list(&mut h, "alice", None, 0).grants.len(), 1);
}

#[test]
fn listing_leaves_out_grants_that_have_ended() {
    let mut h = Harness::new(builder().revoke_existing_grants(false));
    let c = h.register_client("none");
    let gone = h.tokens_for(&c, "alice");
    let gone_id = h.call_api(&gone.access).unwrap().grant_id;
    let kept = h.tokens_for(&c, "alice");
    let kept_id = h.call_api(&kept.access).unwrap().grant_id;
    drop_grant_record(&mut h, &gone_id);

    let page = list(&mut h, "alice", None, 10);
    assert_eq!(page.grants.iter().map(|g| g.grant_id.as_str()).collect::<Vec<_>>(), [kept_id.as_str()]);
    // The lingering index entry is still there for the purge to find.
    assert_eq!(index_keys(&h).len(), 2);
}

#[test]
fn revoke_grant_ends_the_users_grant_and_refuses_other_users() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let grant_id = h.call_api(&t.access).unwrap().grant_id;

    // Another user cannot revoke it, and is told nothing more than "no".
    assert_eq!(revoke_grant(&mut h, &grant_id, "mallory"), Ok(false));
    assert!(h.call_api(&t.access).is_ok());
    assert_eq!(list(&mut h, "alice", None, 10).grants.len(), 1);

    assert_eq!(revoke_grant(&mut h, &grant_id, "alice"), Ok(true));
    assert_eq!(h.last_stats.round_trips, 3);
    assert!(h.call_api(&t.access).is_err_and(|r| r.status() == StatusCode::UNAUTHORIZED));
    assert_eq!(error_code(&h.refresh(&c, t.refresh.as_deref().unwrap())), "invalid_grant");
    assert!(list(&mut h, "alice", None, 10).grants.is_empty());
    assert!(h.store.live_keys(h.now).iter().all(|k| k.starts_with("client/")));

    // Revoking again, or an id that never existed, is `false`.
    assert_eq!(revoke_grant(&mut h, &grant_id, "alice"), Ok(false));
    assert_eq!(revoke_grant(&mut h, &"0".repeat(32), "alice"), Ok(false));
    assert_eq!(revoke_grant(&mut h, "not-hex", "alice"), Ok(false));
    assert_eq!(h.last_stats.round_trips, 0);
}

#[test]
fn revoke_grant_completes_an_interrupted_revocation() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let grant_id = h.call_api(&t.access).unwrap().grant_id;
    // The cascade took the grant and then storage failed: the token is dead
    // already (a token is honoured only while its grant exists), but its
    // record and the index entry are left behind.
    drop_grant_record(&mut h, &grant_id);
    assert!(h.call_api(&t.access).is_err());
    let token_records = |h: &Harness| h.store.live_keys(h.now).into_iter().filter(|k| k.starts_with("token/")).count();
    assert_eq!(token_records(&h), 1);

    assert_eq!(revoke_grant(&mut h, &grant_id, "mallory"), Ok(false));
    assert_eq!(token_records(&h), 1);

    // The owner's revocation finishes the cleanup.
    assert_eq!(revoke_grant(&mut h, &grant_id, "alice"), Ok(true));
    assert_eq!(token_records(&h), 0);
    assert!(h.call_api(&t.access).is_err());
    assert!(index_keys(&h).is_empty());
}

#[test]
fn lookup_describes_live_tokens_and_nothing_else() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let grant_id = h.call_api(&t.access).unwrap().grant_id;

    let at = lookup(&mut h, &t.access).unwrap();
    assert_eq!(h.last_stats.round_trips, 1);
    assert_eq!(at.kind, TokenKind::AccessToken);
    assert_eq!(
        (at.grant_id.as_str(), at.user_id.as_str(), at.client_id.as_str()),
        (grant_id.as_str(), "alice", c.id.as_str())
    );
    assert_eq!(at.scope, ["todo:read", "todo:write"]);
    assert_eq!(at.audience, RESOURCE);
    assert_eq!(at.expires_at.map(|e| e.as_secs()), Some(T0 + 3600));

    let rt = lookup(&mut h, t.refresh.as_deref().unwrap()).unwrap();
    assert_eq!(rt.kind, TokenKind::RefreshToken);
    assert_eq!(
        (rt.grant_id.as_str(), rt.user_id.as_str(), rt.client_id.as_str()),
        (grant_id.as_str(), "alice", c.id.as_str())
    );
    assert_eq!(rt.audience, RESOURCE);
    // The lookup holds no secret.
    assert!(!format!("{at:?}{rt:?}").contains("mcp_"));

    let code = h.authorize(&c.id, "bob");
    let forged = format!("{}{}", &t.access[..t.access.len() - 1], if t.access.ends_with('A') { 'B' } else { 'A' });
    for other in ["", "garbage", code.as_str(), forged.as_str()] {
        assert_eq!(lookup(&mut h, other), None, "{other}");
    }

    h.advance(3600);
    assert_eq!(lookup(&mut h, &t.access), None, "expired at expires_in");
    assert!(lookup(&mut h, t.refresh.as_deref().unwrap()).is_some());
}

#[test]
fn lookup_of_a_replaced_refresh_token_follows_the_rotation_policy() {
    for (policy, replaced_valid) in [(RefreshPolicy::Strict, false), (RefreshPolicy::Grace, true)] {
        let mut h = Harness::new(builder().refresh_policy(policy));
        let c = h.register_client("none");
        let t = h.tokens_for(&c, "alice");
        let old = t.refresh.unwrap();
        let new = tokens(&h.refresh(&c, &old)).refresh.unwrap();
        assert!(lookup(&mut h, &new).is_some());
        assert_eq!(lookup(&mut h, &old).is_some(), replaced_valid, "{policy:?}");
        // What the lookup says matches what the token endpoint does.
        let resp = h.refresh(&c, &old);
        assert_eq!(resp.status() == StatusCode::OK, replaced_valid, "{policy:?}");
    }
}

#[test]
fn purge_removes_old_orphans_only() {
    let mut h = Harness::new(builder().revoke_existing_grants(false));
    let c = h.register_client("none");
    let mut live = Vec::new();
    for user in ["alice", "bob", "carol", "dave"] {
        let t = h.tokens_for(&c, user);
        live.push(t.access);
    }
    let orphan = h.tokens_for(&c, "erin");
    let orphan_id = h.call_api(&orphan.access).unwrap().grant_id;
    drop_grant_record(&mut h, &orphan_id);
    assert_eq!(index_keys(&h).len(), 5);

    // An entry younger than five minutes may still be waiting for its grant.
    assert_eq!(purge_all(&mut h, 2), (5, 0));
    assert_eq!(index_keys(&h).len(), 5);

    h.advance(300);
    let first = purge(&mut h, None, 2);
    assert_eq!(first.examined, 2);
    assert!(first.cursor.is_some());
    let (examined, deleted) = purge_all(&mut h, 2);
    assert_eq!((examined, deleted), (5, 1));
    let left = index_keys(&h);
    assert_eq!(left.len(), 4);
    assert!(left.iter().all(|k| !k.ends_with(&orphan_id)));
    // Live grants and their tokens are untouched.
    for access in &live {
        assert!(h.call_api(access).is_ok());
    }
    for user in ["alice", "bob", "carol", "dave"] {
        assert_eq!(list(&mut h, user, None, 10).grants.len(), 1, "{user}");
    }
    // A second pass finds nothing more to do.
    assert_eq!(purge_all(&mut h, 1000), (4, 0));
}

/// A store that is down.
struct Down;

impl BlockingStore for Down {
    fn execute(&mut self, _: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        Err(StorageError::Unavailable)
    }
}

#[test]
fn storage_failures_are_reported_not_swallowed() {
    let h = Harness::default();
    let now = h.now;
    let p = &h.provider;
    let code = |r: Result<(), OAuthError>| r.unwrap_err().code;
    let unavailable = ErrorCode::TemporarilyUnavailable;
    assert_eq!(
        code(drive_blocking(&mut p.list_user_grants("a", None, 5, now), &mut Down, |c| c.default_reply()).map(drop)),
        unavailable
    );
    assert_eq!(
        code(
            drive_blocking(&mut p.revoke_grant(&"ab".repeat(16), "a", now), &mut Down, |c| c.default_reply()).map(drop)
        ),
        unavailable
    );
    assert_eq!(
        code(drive_blocking(&mut p.purge_expired(None, 5, now), &mut Down, |c| c.default_reply()).map(drop)),
        unavailable
    );
    let token = "mcp_at_".to_owned() + &"A".repeat(64);
    assert_eq!(
        code(drive_blocking(&mut p.lookup_token(&token, now), &mut Down, |c| c.default_reply()).map(drop)),
        unavailable
    );
}

#[test]
fn an_index_entry_cannot_show_another_users_grant() {
    use base64ct::Encoding;
    let mut h = Harness::default();
    let c = h.register_client("none");
    let t = h.tokens_for(&c, "alice");
    let grant_id = h.call_api(&t.access).unwrap().grant_id;
    // A damaged (or planted) entry in mallory's index naming alice's grant.
    let key = format!("user/{}/{grant_id}", base64ct::Base64UrlUnpadded::encode_string(b"mallory"));
    let value = h.store.live_keys(h.now).into_iter().find(|k| k.starts_with("user/")).unwrap();
    let entry = h.store.apply(StorageOp::Get { key: value }, h.now);
    let Reply::Entry(Some(entry)) = entry else { panic!("{entry:?}") };
    let put = StorageOp::Put {
        key,
        value: entry.value,
        revision: 1,
        expires_at: None,
        condition: oauth_core::Condition::Always,
    };
    h.store.apply(put, h.now);

    assert!(list(&mut h, "mallory", None, 10).grants.is_empty());
    assert_eq!(revoke_grant(&mut h, &grant_id, "mallory"), Ok(false));
    assert!(h.call_api(&t.access).is_ok());
    assert_eq!(list(&mut h, "alice", None, 10).grants.len(), 1);
}
