//! Property tests: PKCE, redirect-URI matching, scope algebra, single-use
//! codes under arbitrary interleavings, both refresh-rotation policies,
//! revocation cascades and expiry boundaries.
//!
//! Flows are driven by hand where interleaving matters: each scheduled step
//! runs one flow's next storage batch atomically against the shared store,
//! so any two flows can race between their read and their write.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use oauth_core::pkce::{is_valid_s256_challenge, is_valid_verifier, s256_challenge, verify_s256};
use oauth_core::redirect_uri::find_match;
use oauth_core::scope::{closure, format_scope, narrow, parse_scope, satisfies};
use oauth_core::{Approval, BlockingStore, Flow, Input, Outcome, RefreshPolicy, Step, drive_blocking};
use proptest::prelude::*;
use proptest::sample::Index;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---- PKCE ---------------------------------------------------------------------------

const UNRESERVED: &str = "[A-Za-z0-9._~-]";

fn valid_verifier() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{UNRESERVED}{{43,128}}")).unwrap()
}

fn invalid_verifier() -> impl Strategy<Value = String> {
    let short = proptest::string::string_regex(&format!("{UNRESERVED}{{0,42}}")).unwrap();
    let long = proptest::string::string_regex(&format!("{UNRESERVED}{{129,160}}")).unwrap();
    let bad_char = (
        proptest::string::string_regex(&format!("{UNRESERVED}{{21,63}}")).unwrap(),
        prop::sample::select(vec!['+', '/', '=', ' ', '%', '"', '\\', '\n', '\0', 'é', '☃', '!', '*', ':']),
        proptest::string::string_regex(&format!("{UNRESERVED}{{21,63}}")).unwrap(),
    )
        .prop_map(|(a, c, b)| format!("{a}{c}{b}"));
    prop_oneof![short, long, bad_char]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn pkce_a_valid_verifier_verifies_against_its_own_challenge(v in valid_verifier()) {
        prop_assert!(is_valid_verifier(&v));
        let challenge = s256_challenge(&v);
        prop_assert!(is_valid_s256_challenge(&challenge));
        prop_assert_eq!(challenge.len(), 43);
        prop_assert!(verify_s256(&v, &challenge));
    }

    #[test]
    fn pkce_never_verifies_a_different_verifier(a in valid_verifier(), b in valid_verifier()) {
        prop_assume!(a != b);
        prop_assert!(!verify_s256(&b, &s256_challenge(&a)));
        prop_assert!(!verify_s256(&a, &s256_challenge(&b)));
    }

    #[test]
    fn pkce_a_challenge_altered_in_one_place_never_verifies(v in valid_verifier(), at in any::<Index>(), c in "[A-Za-z0-9_-]") {
        let challenge = s256_challenge(&v);
        let i = at.index(challenge.len());
        let mut altered = challenge.clone().into_bytes();
        altered[i] = c.as_bytes()[0];
        let altered = String::from_utf8(altered).unwrap();
        prop_assume!(altered != challenge);
        prop_assert!(!verify_s256(&v, &altered));
    }

    #[test]
    fn pkce_an_invalid_verifier_never_verifies_even_against_its_own_hash(v in invalid_verifier()) {
        prop_assert!(!is_valid_verifier(&v));
        prop_assert!(!verify_s256(&v, &s256_challenge(&v)));
    }
}

#[test]
fn pkce_rfc7636_appendix_b() {
    assert_eq!(s256_challenge(VERIFIER), CHALLENGE);
    assert!(verify_s256(VERIFIER, CHALLENGE));
    assert!(!verify_s256(VERIFIER, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cm"));
}

// ---- redirect URI matching ------------------------------------------------------------

fn path() -> impl Strategy<Value = String> {
    "(/[a-z0-9]{1,6}){1,3}"
}

fn query() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[a-z]{1,4}=[a-z0-9]{1,4}")
}

fn https_uri() -> impl Strategy<Value = String> {
    (prop::sample::select(vec!["app.example", "client.example.com", "x.y.example", "a.example:8443"]), path(), query())
        .prop_map(|(host, path, q)| match q {
            Some(q) => format!("https://{host}{path}?{q}"),
            None => format!("https://{host}{path}"),
        })
}

fn loopback_host() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["127.0.0.1", "localhost", "[::1]"])
}

fn loopback_uri(host: &str, port: Option<u16>, path: &str, q: Option<&str>) -> String {
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    let q = q.map(|q| format!("?{q}")).unwrap_or_default();
    format!("http://{host}{port}{path}{q}")
}

#[derive(Clone, Debug)]
enum Edit {
    Replace(Index, char),
    Insert(Index, char),
    Delete(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = prop::sample::select(vec!['a', 'Z', '0', '/', '.', ':', '?', '=', '&', '#', '%', ' ', '\\', '@', 'é']);
    prop_oneof![
        (any::<Index>(), c.clone()).prop_map(|(i, c)| Edit::Replace(i, c)),
        (any::<Index>(), c).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<Index>().prop_map(Edit::Delete),
    ]
}

fn apply(s: &str, e: &Edit) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    match e {
        Edit::Replace(i, c) => {
            let i = i.index(chars.len());
            chars[i] = *c;
        }
        Edit::Insert(i, c) => {
            let i = i.index(chars.len() + 1);
            chars.insert(i, *c);
        }
        Edit::Delete(i) => {
            let i = i.index(chars.len());
            chars.remove(i);
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn redirect_an_exact_registered_uri_is_always_found(
        https in prop::collection::vec(https_uri(), 0..4),
        loopback in prop::collection::vec((loopback_host(), proptest::option::of(1u16..), path(), query()), 0..3),
        pick in any::<Index>(),
    ) {
        let mut reg = https;
        reg.extend(loopback.iter().map(|(h, p, path, q)| loopback_uri(h, *p, path, q.as_deref())));
        prop_assume!(!reg.is_empty());
        let wanted = reg[pick.index(reg.len())].clone();
        prop_assert_eq!(find_match(&reg, &wanted), Some(wanted.as_str()));
    }

    #[test]
    fn redirect_a_non_loopback_uri_differing_anywhere_never_matches(
        reg in prop::collection::vec(https_uri(), 1..4),
        pick in any::<Index>(),
        edits in prop::collection::vec(edit(), 1..3),
    ) {
        let original = &reg[pick.index(reg.len())];
        let mut altered = original.clone();
        for e in &edits {
            altered = apply(&altered, e);
        }
        prop_assume!(!reg.contains(&altered));
        prop_assert_eq!(find_match(&reg, &altered), None, "{} matched {:?}", altered, reg);
        // Case is significant too.
        let upper = original.to_ascii_uppercase();
        prop_assume!(!reg.contains(&upper));
        prop_assert_eq!(find_match(&reg, &upper), None);
    }

    #[test]
    fn redirect_loopback_port_may_vary_but_nothing_else(
        others in prop::collection::vec(https_uri(), 0..3),
        host in loopback_host(),
        registered_port in proptest::option::of(1u16..),
        p in path(),
        q in query(),
        port in 1u16..,
        other_host in loopback_host(),
        other_path in path(),
        other_query in query(),
    ) {
        let registered = loopback_uri(host, registered_port, &p, q.as_deref());
        let mut reg = others;
        reg.push(registered.clone());

        let any_port = loopback_uri(host, Some(port), &p, q.as_deref());
        prop_assert_eq!(find_match(&reg, &any_port), Some(registered.as_str()));
        let no_port = loopback_uri(host, None, &p, q.as_deref());
        prop_assert_eq!(find_match(&reg, &no_port), Some(registered.as_str()));

        if other_path != p {
            let moved = loopback_uri(host, Some(port), &other_path, q.as_deref());
            prop_assert_eq!(find_match(&reg, &moved), None, "{}", moved);
        }
        if other_host != host {
            let rehosted = loopback_uri(other_host, Some(port), &p, q.as_deref());
            prop_assert_eq!(find_match(&reg, &rehosted), None, "{}", rehosted);
        }
        if other_query != q {
            let requeried = loopback_uri(host, Some(port), &p, other_query.as_deref());
            prop_assert_eq!(find_match(&reg, &requeried), None, "{}", requeried);
        }
        let https = any_port.replacen("http://", "https://", 1);
        prop_assert_eq!(find_match(&reg, &https), None);
        let fragment = format!("{any_port}#x");
        prop_assert_eq!(find_match(&reg, &fragment), None);
    }
}

// ---- scope algebra ----------------------------------------------------------------

const UNIVERSE: [&str; 6] = ["a", "b:read", "b:write", "c", "offline_access", "d/e"];

fn scopes() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop::sample::select(UNIVERSE.to_vec()).prop_map(str::to_owned), 0..6)
}

fn implications() -> impl Strategy<Value = BTreeMap<String, BTreeSet<String>>> {
    prop::collection::vec((prop::sample::select(UNIVERSE.to_vec()), prop::sample::select(UNIVERSE.to_vec())), 0..8)
        .prop_map(|pairs| {
            let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (from, to) in pairs {
                m.entry(from.to_owned()).or_default().insert(to.to_owned());
            }
            m
        })
}

/// The reference closure: a fixed point, computed the slow way.
fn reference_closure(granted: &[String], implies: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let mut have: BTreeSet<String> = granted.iter().cloned().collect();
    loop {
        let more: BTreeSet<String> =
            have.iter().filter_map(|s| implies.get(s)).flatten().filter(|s| !have.contains(*s)).cloned().collect();
        if more.is_empty() {
            return have;
        }
        have.extend(more);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn scope_closure_is_the_transitive_fixed_point(granted in scopes(), implies in implications()) {
        let got: BTreeSet<String> =
            closure(granted.iter().map(String::as_str), &implies).into_iter().map(str::to_owned).collect();
        prop_assert_eq!(got, reference_closure(&granted, &implies));
    }

    #[test]
    fn scope_narrow_is_within_the_request_and_the_grant(
        requested in scopes(),
        granted in scopes(),
        implies in implications(),
    ) {
        let out = narrow(&requested, &granted, &implies);
        let cover = reference_closure(&granted, &implies);
        for s in &out {
            prop_assert!(requested.contains(s), "{} not requested", s);
            prop_assert!(cover.contains(s), "{} not covered by the grant", s);
        }
        // Nothing coverable is dropped, and request order is kept.
        let expected: Vec<String> = requested.iter().filter(|r| cover.contains(*r)).cloned().collect();
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn scope_satisfies_means_covered_and_is_monotone_in_the_grant(
        granted in scopes(),
        extra in scopes(),
        required in scopes(),
        implies in implications(),
    ) {
        let cover = reference_closure(&granted, &implies);
        let ok = satisfies(&granted, &required, &implies);
        prop_assert_eq!(ok, required.iter().all(|r| cover.contains(r)));
        let mut more = granted.clone();
        more.extend(extra);
        if ok {
            prop_assert!(satisfies(&more, &required, &implies));
        }
        // A grant always satisfies itself, and the empty requirement.
        prop_assert!(satisfies(&granted, &granted, &implies));
        prop_assert!(satisfies(&granted, &[], &implies));
    }

    #[test]
    fn scope_strings_round_trip(list in scopes()) {
        let mut dedup: Vec<String> = Vec::new();
        for s in &list {
            if !dedup.contains(s) {
                dedup.push(s.clone());
            }
        }
        prop_assert_eq!(parse_scope(&format_scope(&list)), Some(dedup));
    }
}

// ---- interleaved flows ---------------------------------------------------------------

struct Running {
    flow: Flow<Outcome>,
    input: Option<Input>,
    /// Global sequence numbers of the batches this flow ran.
    batches: Vec<usize>,
    outcome: Option<Outcome>,
}

/// Run `requests` concurrently: at each step `schedule` picks one unfinished
/// flow and runs its next batch atomically. Returns each flow's outcome and
/// batch sequence numbers.
fn interleave(h: &mut Harness, requests: Vec<Request<Bytes>>, schedule: &[usize]) -> Vec<(Outcome, Vec<usize>)> {
    let mut running: Vec<Running> = requests
        .into_iter()
        .map(|r| Running {
            flow: h.provider.handle(r, h.now, &mut h.rng),
            input: Some(Input::Start),
            batches: Vec::new(),
            outcome: None,
        })
        .collect();
    let mut seq = 0;
    let mut turn = 0;
    loop {
        let open: Vec<usize> = (0..running.len()).filter(|i| running[*i].outcome.is_none()).collect();
        if open.is_empty() {
            break;
        }
        let pick = schedule.get(turn % schedule.len().max(1)).map_or(0, |s| s % open.len());
        turn += 1;
        assert!(turn < 10_000, "flows do not finish");
        let r = &mut running[open[pick]];
        match r.flow.advance(r.input.take().unwrap()) {
            Step::Storage(batch) => {
                seq += 1;
                r.batches.push(seq);
                r.input = Some(Input::Storage(h.store.execute(batch)));
            }
            Step::Hook(call) => r.input = Some(Input::Hook(call.default_reply())),
            Step::Done(o) => r.outcome = Some(o),
            _ => panic!("unknown step"),
        }
    }
    running.into_iter().map(|r| (r.outcome.unwrap(), r.batches)).collect()
}

fn form(path: &str, body: String) -> Request<Bytes> {
    Request::post(format!("{ISSUER}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from(body))
        .unwrap()
}

fn response(o: Outcome) -> http::Response<Bytes> {
    match o {
        Outcome::Response(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// Keys still live in the store that belong to `grant_id`.
fn grant_leftovers(h: &Harness, grant_id: &str) -> Vec<String> {
    h.store.live_keys(h.now).into_iter().filter(|k| k.contains(grant_id)).collect()
}

/// The grant record and access tokens of `grant_id` still live: what a
/// revocation must remove at once. (A user-index entry may linger after a
/// race; listings hide it and `purge_expired` removes it.)
fn credential_leftovers(h: &Harness, grant_id: &str) -> Vec<String> {
    grant_leftovers(h, grant_id)
        .into_iter()
        .filter(|k| *k == format!("grant/{grant_id}") || k.starts_with(&format!("token/{grant_id}/")))
        .collect()
}

/// The grant ids `user` can see in the admin listing.
fn listed_grants(h: &mut Harness, user: &str) -> Vec<String> {
    let mut flow = h.provider.list_user_grants(user, None, 100, h.now);
    let page = drive_blocking(&mut flow, &mut h.store, |c| c.default_reply()).unwrap();
    page.grants.into_iter().map(|g| g.grant_id).collect()
}

/// One housekeeping pass over the whole user index, once index entries are
/// old enough to be judged (the pass spares entries younger than five
/// minutes, whose grant may still be being written).
fn purge(h: &mut Harness) {
    h.advance(300);
    let mut flow = h.provider.purge_expired(None, 1000, h.now);
    let report = drive_blocking(&mut flow, &mut h.store, |c| c.default_reply()).unwrap();
    assert_eq!(report.cursor, None);
}

/// Authorize `client` for `user`: the code and the grant id.
fn authorize_with_grant(h: &mut Harness, client: &Client, user: &str) -> (String, String) {
    let req = h.parse(&Harness::auth_query(&client.id)).unwrap();
    let done = h.complete(&req, Approval::new(user, req.scope.clone(), serde_json::json!({})));
    (query_param(&done.redirect_to, "code").unwrap(), done.grant_id)
}

const WRONG_VERIFIER: &str = "wrong-verifier-0123456789-0123456789-abcdefgh";

#[derive(Clone, Copy, Debug)]
struct Attempt {
    right_client: bool,
    right_verifier: bool,
}

impl Attempt {
    fn is_right(self) -> bool {
        self.right_client && self.right_verifier
    }
}

fn attempt() -> impl Strategy<Value = Attempt> {
    (prop::bool::weighted(0.7), prop::bool::weighted(0.7))
        .prop_map(|(right_client, right_verifier)| Attempt { right_client, right_verifier })
}

proptest! {
    #![proptest_config(config(64))]

    /// Of any interleaving of redemptions of one code, exactly one succeeds
    /// when any is legitimate. Replays, and legitimate attempts that lose the
    /// race, revoke what the code issued; failed attempts that were judged
    /// before the redemption consume nothing.
    #[test]
    fn codes_are_single_use_under_any_interleaving(
        attempts in prop::collection::vec(attempt(), 1..6),
        schedule in prop::collection::vec(any::<usize>(), 1..40),
    ) {
        let mut h = Harness::default();
        let owner = h.register_client("none");
        let other = h.register_client("none");
        let (code, grant_id) = authorize_with_grant(&mut h, &owner, "alice");
        let requests = attempts
            .iter()
            .map(|a| {
                let client = if a.right_client { &owner.id } else { &other.id };
                let verifier = if a.right_verifier { VERIFIER } else { WRONG_VERIFIER };
                form("/token", format!(
                    "grant_type=authorization_code&code={code}&code_verifier={verifier}&redirect_uri={}&client_id={client}",
                    urlencode(REDIRECT)
                ))
            })
            .collect();
        let results: Vec<(http::Response<Bytes>, Vec<usize>)> =
            interleave(&mut h, requests, &schedule).into_iter().map(|(o, b)| (response(o), b)).collect();

        let winners: Vec<usize> = (0..results.len()).filter(|i| results[*i].0.status() == StatusCode::OK).collect();
        for (i, (resp, _)) in results.iter().enumerate() {
            if resp.status() != StatusCode::OK {
                prop_assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
                prop_assert_eq!(error_code(resp), "invalid_grant", "attempt {} {:?}", i, attempts[i]);
            }
        }
        let any_right = attempts.iter().any(|a| a.is_right());
        prop_assert_eq!(winners.len(), usize::from(any_right), "{:?}", attempts);

        match winners.first() {
            None => {
                // Nothing consumed the code: it still works.
                prop_assert_eq!(h.exchange_code(&owner, &code).status(), StatusCode::OK);
            }
            Some(&w) => {
                prop_assert!(attempts[w].is_right());
                let commit = results[w].1[1];
                // Revoked iff some other attempt read the grant after the
                // redemption (a replay), or was legitimate and lost the race.
                let revoked = (0..results.len()).filter(|i| *i != w).any(|i| {
                    let read = results[i].1[0];
                    read > commit || attempts[i].is_right()
                });
                let access = tokens(&results[w].0).access;
                prop_assert_eq!(h.call_api(&access).is_ok(), !revoked, "{:?} {:?}", attempts, results.iter().map(|r| &r.1).collect::<Vec<_>>());
                // A code is never redeemed twice: a later attempt fails and
                // kills whatever is left.
                prop_assert_eq!(error_code(&h.exchange_code(&owner, &code)), "invalid_grant");
                prop_assert!(h.call_api(&access).is_err());
                let left = credential_leftovers(&h, &grant_id);
                prop_assert!(left.is_empty(), "a revoked grant left {:?}", left);
                prop_assert!(listed_grants(&mut h, "alice").is_empty());
                purge(&mut h);
                let left = grant_leftovers(&h, &grant_id);
                prop_assert!(left.is_empty(), "purging left {:?}", left);
            }
        }
    }

    /// Concurrent refreshes with one token under `strict`: exactly one
    /// succeeds, and when several raced, the grant is revoked.
    #[test]
    fn strict_concurrent_refreshes_yield_one_success(
        n in 1usize..5,
        schedule in prop::collection::vec(any::<usize>(), 1..40),
    ) {
        let mut h = Harness::default();
        let c = h.register_client("none");
        let (code, grant_id) = authorize_with_grant(&mut h, &c, "alice");
        let t = tokens(&h.exchange_code(&c, &code));
        let rt = t.refresh.clone().unwrap();
        let requests =
            (0..n).map(|_| form("/token", format!("grant_type=refresh_token&refresh_token={rt}&client_id={}", c.id))).collect();
        let results: Vec<http::Response<Bytes>> =
            interleave(&mut h, requests, &schedule).into_iter().map(|(o, _)| response(o)).collect();
        let ok = results.iter().filter(|r| r.status() == StatusCode::OK).count();
        prop_assert_eq!(ok, 1);
        for r in results.iter().filter(|r| r.status() != StatusCode::OK) {
            prop_assert_eq!(error_code(r), "invalid_grant");
        }
        prop_assert_eq!(h.call_api(&t.access).is_ok(), n == 1);
        if n > 1 {
            let left = grant_leftovers(&h, &grant_id);
            prop_assert!(left.is_empty(), "a revoked grant left {:?}", left);
        }
    }
}

// ---- refresh rotation policies ---------------------------------------------------------

proptest! {
    #![proptest_config(config(64))]

    /// Under `strict`, only the current refresh token works, each works
    /// once, and presenting any earlier one revokes the whole grant.
    #[test]
    fn strict_rotation_model(choices in prop::collection::vec(any::<Index>(), 1..12)) {
        let mut h = Harness::default();
        let c = h.register_client("none");
        let first = h.tokens_for(&c, "alice");
        let mut refresh = vec![first.refresh.unwrap()];
        let mut access = vec![first.access];
        let mut used = vec![0u32];
        let mut current = 0;
        let mut alive = true;
        for choice in &choices {
            let i = choice.index(refresh.len());
            let resp = h.refresh(&c, &refresh[i]);
            if alive && i == current {
                prop_assert_eq!(resp.status(), StatusCode::OK, "current token {} refused", i);
                let t = tokens(&resp);
                let next = t.refresh.unwrap();
                prop_assert!(!refresh.contains(&next));
                used[i] += 1;
                refresh.push(next);
                access.push(t.access);
                used.push(0);
                current = refresh.len() - 1;
            } else {
                prop_assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
                prop_assert_eq!(error_code(&resp), "invalid_grant");
                // Every earlier token was already used once: this is reuse.
                alive = false;
            }
            prop_assert!(used.iter().all(|u| *u <= 1), "a refresh token succeeded twice");
            for a in &access {
                prop_assert_eq!(h.call_api(a).is_ok(), alive);
            }
        }
    }

    /// Under `grace`, exactly the current and the previous token work; the
    /// others never do.
    #[test]
    fn grace_rotation_model(choices in prop::collection::vec(any::<Index>(), 1..12)) {
        let mut h = Harness::new(builder().refresh_policy(RefreshPolicy::Grace));
        let c = h.register_client("none");
        let first = h.tokens_for(&c, "alice");
        let mut refresh = vec![first.refresh.unwrap()];
        let mut access = vec![first.access];
        let mut current = 0;
        let mut previous: Option<usize> = None;
        let mut alive = true;
        for choice in &choices {
            let i = choice.index(refresh.len());
            let resp = h.refresh(&c, &refresh[i]);
            let valid = alive && (i == current || previous == Some(i));
            if valid {
                prop_assert_eq!(resp.status(), StatusCode::OK, "token {} (current {}, previous {:?}) refused", i, current, previous);
                let t = tokens(&resp);
                let next = t.refresh.unwrap();
                prop_assert!(!refresh.contains(&next));
                refresh.push(next);
                access.push(t.access);
                // The presented token becomes (or stays) the previous one.
                previous = Some(i);
                current = refresh.len() - 1;
            } else {
                prop_assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "token {} (current {}, previous {:?}) accepted", i, current, previous);
                prop_assert_eq!(error_code(&resp), "invalid_grant");
                // Whether presenting a retired token revokes the grant is a
                // policy choice (RFC 9700 §4.14.2 recommends it); either way
                // the grant is then entirely alive or entirely dead.
                alive = h.call_api(access.last().unwrap()).is_ok() && alive;
            }
            for a in &access {
                prop_assert_eq!(h.call_api(a).is_ok(), alive);
            }
        }
    }
}

// ---- revocation ------------------------------------------------------------------

proptest! {
    #![proptest_config(config(64))]

    /// Revoking a refresh token (current or previous, at the token endpoint
    /// or the revocation endpoint) kills every access and refresh token of
    /// its grant, and nothing of another grant.
    #[test]
    fn revoking_a_refresh_token_cascades_to_the_whole_grant(
        refreshes in 0usize..5,
        grace in any::<bool>(),
        revoke_previous in any::<bool>(),
        at_token_endpoint in any::<bool>(),
        hint in prop::sample::select(vec!["", "&token_type_hint=refresh_token", "&token_type_hint=access_token"]),
    ) {
        let policy = if grace { RefreshPolicy::Grace } else { RefreshPolicy::Strict };
        let mut h = Harness::new(builder().refresh_policy(policy));
        let c = h.register_client("none");
        let bystander = h.tokens_for(&c, "bob");
        let (code, grant_id) = authorize_with_grant(&mut h, &c, "alice");
        let first = tokens(&h.exchange_code(&c, &code));
        let mut access = vec![first.access];
        let mut refresh = vec![first.refresh.unwrap()];
        for _ in 0..refreshes {
            let t = tokens(&h.refresh(&c, refresh.last().unwrap()));
            access.push(t.access);
            refresh.push(t.refresh.unwrap());
        }
        for a in &access {
            prop_assert!(h.call_api(a).is_ok());
        }
        let victim = if revoke_previous && refresh.len() > 1 { &refresh[refresh.len() - 2] } else { refresh.last().unwrap() };
        let path = if at_token_endpoint { "/token" } else { "/revoke" };
        let resp = h.post_form(path, &format!("token={victim}&client_id={}{hint}", c.id), &[]);
        prop_assert_eq!(resp.status(), StatusCode::OK);
        prop_assert!(resp.body().is_empty());

        for a in &access {
            let r = h.call_api(a).unwrap_err();
            prop_assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
        for r in &refresh {
            prop_assert_eq!(error_code(&h.refresh(&c, r)), "invalid_grant");
        }
        let left = grant_leftovers(&h, &grant_id);
        prop_assert!(left.is_empty(), "revocation left {:?}", left);
        // Another user's grant to the same client is untouched.
        prop_assert!(h.call_api(&bystander.access).is_ok());
        prop_assert_eq!(h.refresh(&c, bystander.refresh.as_deref().unwrap()).status(), StatusCode::OK);
    }
}

/// One interleaving of the property above, spelled out: A and B redeem the
/// code concurrently, A wins, C replays and revokes the grant completely, and
/// only then does B's losing commit land. No credential of the grant may
/// survive B's cleanup, the user's listing must not show it, and one
/// housekeeping pass removes every trace of it.
#[test]
fn a_losing_code_redemption_after_a_completed_revocation_leaves_nothing_behind() {
    let mut h = Harness::default();
    let c = h.register_client("none");
    let (code, grant_id) = authorize_with_grant(&mut h, &c, "alice");
    let redeem = || {
        form(
            "/token",
            format!(
                "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&redirect_uri={}&client_id={}",
                urlencode(REDIRECT),
                c.id
            ),
        )
    };
    // A reads, B reads, A commits and finishes, C replays (read, cascade,
    // deletes, done), then B commits and cleans up.
    let schedule = [0, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0];
    let results = interleave(&mut h, vec![redeem(), redeem(), redeem()], &schedule);
    let (a, b, cc) = (&results[0].1, &results[1].1, &results[2].1);
    assert!(a[0] < a[1] && b[0] < a[1], "A and B both read before A's commit");
    assert!(a[1] < cc[0] && cc.last() < b.get(1), "C replays and finishes before B commits");
    let statuses: Vec<StatusCode> = results.into_iter().map(|(o, _)| response(o).status()).collect();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST]);
    let left = credential_leftovers(&h, &grant_id);
    assert!(left.is_empty(), "the revoked grant left {left:?}");
    assert!(listed_grants(&mut h, "alice").is_empty());
    purge(&mut h);
    let left = grant_leftovers(&h, &grant_id);
    assert!(left.is_empty(), "purging left {left:?}");
}

/// A token exchange that read its subject token before a revocation and
/// commits after it must not hand out a working token of the revoked grant.
#[test]
fn an_exchange_racing_a_revocation_does_not_outlive_it() {
    let mut h = Harness::new(builder().token_exchange(true));
    let resp = h.register(serde_json::json!({
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"],
    }));
    let c = Client { id: json(&resp)["client_id"].as_str().unwrap().into(), secret: None, method: "none".into() };
    let t = h.tokens_for(&c, "alice");
    let exchange = form(
        "/token",
        format!(
            "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token={}&subject_token_type=urn:ietf:params:oauth:token-type:access_token&client_id={}",
            t.access, c.id
        ),
    );
    let revoke = form("/revoke", format!("token={}&client_id={}", t.refresh.as_deref().unwrap(), c.id));
    // Exchange reads; the revocation runs to the end; the exchange commits.
    let schedule = [0, 1, 1, 1, 1, 1, 1, 0, 0, 0];
    let results = interleave(&mut h, vec![exchange, revoke], &schedule);
    let mut results = results.into_iter().map(|(o, b)| (response(o), b));
    let (exchanged, exchange_batches) = results.next().unwrap();
    let (revoked, revoke_batches) = results.next().unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert!(exchange_batches[0] < revoke_batches[0] && revoke_batches.last() < exchange_batches.last());
    assert!(h.call_api(&t.access).is_err());
    // Refusing the exchange is one correct answer; issuing a token is
    // another only if the revocation still reaches it.
    if exchanged.status() == StatusCode::OK {
        let new = tokens(&exchanged).access;
        assert!(h.call_api(&new).is_err(), "a token exchanged from a revoked grant still works");
    } else {
        assert_eq!(error_code(&exchanged), "invalid_grant");
    }
}

// ---- expiry boundaries ---------------------------------------------------------------

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn access_tokens_are_valid_until_exactly_their_ttl(ttl in 60u64..=86_400) {
        let mut h = Harness::new(builder().access_token_ttl(ttl));
        let c = h.register_client("none");
        let t = h.tokens_for(&c, "alice");
        prop_assert_eq!(t.body["expires_in"].as_u64(), Some(ttl));
        prop_assert_eq!(h.call_api(&t.access).unwrap().expires_at.as_secs(), T0 + ttl);
        h.advance(ttl - 1);
        prop_assert!(h.call_api(&t.access).is_ok());
        h.advance(1);
        let r = h.call_api(&t.access).unwrap_err();
        prop_assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        prop_assert!(header(&r, "www-authenticate").contains("error=\"invalid_token\""));
    }

    #[test]
    fn codes_are_redeemable_until_exactly_their_ttl(ttl in 60u64..=600) {
        let mut h = Harness::new(builder().code_ttl(ttl));
        let c = h.register_client("none");
        let code = h.authorize(&c.id, "alice");
        h.advance(ttl - 1);
        prop_assert_eq!(h.exchange_code(&c, &code).status(), StatusCode::OK);
        let code = h.authorize(&c.id, "bob");
        h.advance(ttl);
        prop_assert_eq!(error_code(&h.exchange_code(&c, &code)), "invalid_grant");
    }

    #[test]
    fn refresh_tokens_are_usable_until_exactly_their_absolute_ttl(ttl in 60u64..=86_400, split in any::<Index>()) {
        let mut h = Harness::new(builder().refresh_token_ttl(Some(Some(ttl))));
        let c = h.register_client("none");
        let mut r = h.tokens_for(&c, "alice").refresh.unwrap();
        // Rotating part-way does not extend the absolute lifetime.
        let mid = split.index(usize::try_from(ttl).unwrap()) as u64;
        h.advance(mid);
        let resp = h.refresh(&c, &r);
        prop_assert_eq!(resp.status(), StatusCode::OK);
        r = tokens(&resp).refresh.unwrap();
        h.advance(ttl - 1 - mid);
        let resp = h.refresh(&c, &r);
        prop_assert_eq!(resp.status(), StatusCode::OK);
        r = tokens(&resp).refresh.unwrap();
        h.advance(1);
        prop_assert_eq!(error_code(&h.refresh(&c, &r)), "invalid_grant");
    }
}
