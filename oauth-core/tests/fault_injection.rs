//! Fault injection: every flow, failed at every storage operation it
//! performs, in every failure mode, with every storage error.
//!
//! Each case builds its state, runs the flow once to learn its batches, then
//! once per operation `n`, per [`FaultMode`] and per [`StorageError`]
//! against a [`FaultyStore`] that fails operation `n`. Every faulted run
//! must end in a clean error: 503 `temporarily_unavailable` with
//! `Retry-After` for `Unavailable` and `Timeout`, 500 `server_error` for
//! `Other`, an RFC 6749 §5.2 body and no secret anywhere in the response.
//! Then the case checks what the half-applied batch left behind, which it
//! computes from the recorded batches and the fault, and retries without the
//! fault: the retry must succeed, or fail with the error the state calls
//! for (a code whose redemption was applied but whose answer was lost is a
//! replay: `invalid_grant`, and the grant is revoked). `docs/verification.md`
//! describes the outcomes flow by flow.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use oauth_core::testing::{Fault, FaultMode, FaultyStore};
use oauth_core::{
    AuthorizationError, BlockingStore, Condition, ErrorCode, OAuthError, Outcome, RefreshPolicy, Reply, StorageError,
    StorageOp, StorageRequest, drive_blocking,
};
use serde_json::json;

// ---- plumbing ---------------------------------------------------------------

/// Passes batches through, keeping a copy of each (the failing one too).
struct Recorder<S> {
    inner: S,
    batches: Vec<Vec<StorageOp>>,
}

impl<S: BlockingStore> BlockingStore for Recorder<S> {
    fn execute(&mut self, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        self.batches.push(request.ops.clone());
        self.inner.execute(request)
    }
}

/// How a flow under test ended.
#[derive(Debug)]
enum Answer {
    Http(Box<Outcome>),
    Authorization(Result<oauth_core::AuthorizationRequest, AuthorizationError>),
    Completion(Result<oauth_core::CompletedAuthorization, OAuthError>),
}

/// The operations that took effect when operation `n` (1-based, across
/// batches) failed in `mode`: every earlier batch, and the part of the
/// failing batch the mode applies.
fn applied_ops(batches: &[Vec<StorageOp>], n: u64, mode: FaultMode) -> Vec<StorageOp> {
    let mut out = Vec::new();
    let mut start = 0u64;
    for batch in batches {
        let len = batch.len() as u64;
        if n > start + len {
            out.extend(batch.iter().cloned());
        } else {
            let at = usize::try_from(n - start - 1).unwrap();
            let apply = match mode {
                FaultMode::FailBefore => at,
                FaultMode::ApplyThenFail => at + 1,
                FaultMode::FailBatch => 0,
                FaultMode::ApplyBatchThenFail => batch.len(),
            };
            out.extend(batch.iter().take(apply).cloned());
            break;
        }
        start += len;
    }
    out
}

/// What a faulted run left applied.
struct Applied(Vec<StorageOp>);

impl Applied {
    /// Whether a `Put` on a key starting with `prefix` took effect.
    fn put(&self, prefix: &str) -> bool {
        self.0.iter().any(|op| matches!(op, StorageOp::Put { key, .. } if key.starts_with(prefix)))
    }

    /// Whether the grant compare-and-swap took effect.
    fn grant_cas(&self) -> bool {
        self.0.iter().any(|op| {
            matches!(op, StorageOp::Put { key, condition: Condition::IfRevision(_), .. } if key.starts_with("grant/"))
        })
    }

    fn take(&self, prefix: &str) -> bool {
        self.0.iter().any(|op| matches!(op, StorageOp::Take { key } if key.starts_with(prefix)))
    }

    fn delete(&self, prefix: &str) -> bool {
        self.0.iter().any(|op| matches!(op, StorageOp::Delete { key } if key.starts_with(prefix)))
    }
}

fn errors() -> [StorageError; 3] {
    [StorageError::Unavailable, StorageError::Timeout, StorageError::Other("connection reset".into())]
}

fn form(path: &str, body: &str, headers: &[(String, String)]) -> Request<Bytes> {
    let mut b = Request::post(format!("{ISSUER}{path}")).header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(Bytes::from(body.to_owned())).unwrap()
}

/// A token-endpoint (or revocation) request authenticated as `client`.
fn client_form(path: &str, client: &Client, body: &str) -> Request<Bytes> {
    let (extra, headers) = Harness::client_auth(client);
    form(path, &format!("{body}{extra}"), &headers)
}

fn send(h: &mut Harness, store: &mut dyn BlockingStore, req: Request<Bytes>) -> Answer {
    let mut flow = h.provider.handle(req, h.now, &mut h.rng);
    Answer::Http(Box::new(drive_blocking(&mut flow, store, |c| c.default_reply())))
}

/// Strings that must never appear in an error response.
const PREFIXES: [&str; 4] = ["mcp_at_", "mcp_rt_", "mcp_ac_", "mcp_cs_"];

/// The faulted run failed cleanly: the right status and code, `Retry-After`
/// exactly when the client may retry, a plain RFC 6749 §5.2 body, and no
/// secret in the body or any header.
fn assert_clean_failure(answer: &Answer, error: &StorageError, secrets: &[String], ctx: &str) {
    let retryable = matches!(error, StorageError::Unavailable | StorageError::Timeout);
    let (code, status) = if retryable {
        (ErrorCode::TemporarilyUnavailable, StatusCode::SERVICE_UNAVAILABLE)
    } else {
        (ErrorCode::ServerError, StatusCode::INTERNAL_SERVER_ERROR)
    };
    let err = match answer {
        Answer::Http(outcome) => match &**outcome {
            Outcome::Response(resp) => return assert_clean_response(resp, code, status, secrets, ctx),
            other => panic!("{ctx}: a faulted request was {other:?}"),
        },
        Answer::Authorization(Err(AuthorizationError::Invalid(e))) => e.clone(),
        Answer::Authorization(other) => panic!("{ctx}: a faulted authorization request ended {other:?}"),
        Answer::Completion(Err(e)) => e.clone(),
        Answer::Completion(Ok(done)) => panic!("{ctx}: a faulted completion succeeded: {done:?}"),
    };
    assert_eq!((err.code, err.status), (code, status), "{ctx}");
    for s in secrets.iter().map(String::as_str).chain(PREFIXES) {
        assert!(!err.description.contains(s), "{ctx}: the error holds a secret");
    }
}

fn assert_clean_response(resp: &Response<Bytes>, code: ErrorCode, status: StatusCode, secrets: &[String], ctx: &str) {
    let retryable = code == ErrorCode::TemporarilyUnavailable;
    assert_eq!(resp.status(), status, "{ctx}: {}", String::from_utf8_lossy(resp.body()));
    let body = json(resp);
    assert_eq!(body["error"], code.as_str(), "{ctx}");
    let members: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(members, ["error", "error_description"], "{ctx}");
    assert_eq!(resp.headers().get("retry-after").is_some(), retryable, "{ctx}: Retry-After");
    if retryable {
        assert_eq!(header(resp, "retry-after"), "30");
    }
    assert_eq!(header(resp, "cache-control"), "no-store", "{ctx}");
    let mut texts = vec![String::from_utf8_lossy(resp.body()).into_owned()];
    texts.extend(resp.headers().values().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()));
    for text in texts {
        for s in secrets.iter().map(String::as_str).chain(PREFIXES) {
            assert!(!text.contains(s), "{ctx}: the error response holds a secret: {text}");
        }
    }
}

/// The faulted runs of one case.
struct Case<S> {
    name: &'static str,
    setup: fn() -> (Harness, S),
    /// Run the flow under test through `store`.
    run: fn(&mut Harness, &S, &mut dyn BlockingStore) -> Answer,
    /// Secrets of the state, for the leak check.
    secrets: fn(&S) -> Vec<String>,
    /// Check the state the fault left, retry, and check the state after.
    after: fn(&mut Harness, &S, &Applied, &str),
}

impl<S> Case<S> {
    /// Run the case for every operation, mode and error; return the
    /// batch sizes of the unfaulted flow.
    fn check(&self) -> Vec<usize> {
        // An unfaulted run, to learn the batches and that the flow succeeds.
        let (mut h, s) = (self.setup)();
        let mut counting = Recorder { inner: FaultyStore::new(std::mem::take(&mut h.store)), batches: Vec::new() };
        let answer = (self.run)(&mut h, &s, &mut counting);
        let total = counting.inner.ops_seen();
        let layout: Vec<usize> = counting.batches.iter().map(Vec::len).collect();
        assert!(total > 0, "{}: the flow performs no storage operation", self.name);
        assert!(succeeded(&answer), "{}: the unfaulted flow failed: {answer:?}", self.name);

        for n in 1..=total {
            for mode in FaultMode::ALL {
                for error in errors() {
                    let ctx = format!("{} op {n}/{total} {mode:?} {error:?}", self.name);
                    let (mut h, s) = (self.setup)();
                    let faulty =
                        FaultyStore::with_fault(std::mem::take(&mut h.store), Fault::new(n, mode, error.clone()));
                    let mut store = Recorder { inner: faulty, batches: Vec::new() };
                    let answer = (self.run)(&mut h, &s, &mut store);
                    assert!(store.inner.has_fired(), "{ctx}: the fault did not fire");
                    assert_clean_failure(&answer, &error, &(self.secrets)(&s), &ctx);
                    let applied = Applied(applied_ops(&store.batches, n, mode));
                    h.store = store.inner.into_inner();
                    (self.after)(&mut h, &s, &applied, &ctx);
                }
            }
        }
        layout
    }
}

fn succeeded(answer: &Answer) -> bool {
    match answer {
        Answer::Http(outcome) => match &**outcome {
            Outcome::Response(r) => r.status().is_success(),
            Outcome::Authorized { .. } => true,
            _ => false,
        },
        Answer::Authorization(r) => r.is_ok(),
        Answer::Completion(r) => r.is_ok(),
    }
}

fn live_with_prefix(h: &Harness, prefix: &str) -> usize {
    h.store.live_keys(h.now).iter().filter(|k| k.starts_with(prefix)).count()
}

fn api_works(h: &mut Harness, token: &str) -> bool {
    match h.call_api(token) {
        Ok(_) => true,
        Err(r) => {
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            false
        }
    }
}

// ---- state --------------------------------------------------------------------

/// A client, a grant of alice's with live tokens, and the grant's id.
struct Granted {
    client: Client,
    grant_id: String,
    tokens: Tokens,
    code: String,
}

impl Granted {
    fn refresh(&self) -> &str {
        self.tokens.refresh.as_deref().unwrap()
    }

    fn secrets(&self) -> Vec<String> {
        let mut v = vec![self.tokens.access.clone(), self.refresh().to_owned(), self.code.clone(), VERIFIER.to_owned()];
        v.extend(self.client.secret.clone());
        v.push("secret-upstream-token".to_owned());
        v
    }
}

fn granted(builder: oauth_core::ProviderBuilder, method: &str) -> (Harness, Granted) {
    let mut h = Harness::new(builder);
    let client = h.register_client(method);
    let code = h.authorize(&client.id, "alice");
    let resp = h.exchange_code(&client, &code);
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens = tokens(&resp);
    let grant_id = h.call_api(&tokens.access).unwrap().grant_id;
    (h, Granted { client, grant_id, tokens, code })
}

/// A client and a pending code of alice's.
struct Pending {
    client: Client,
    code: String,
    grant_id: String,
}

fn pending() -> (Harness, Pending) {
    let mut h = Harness::default();
    let client = h.register_client("client_secret_basic");
    let req = h.parse(&Harness::auth_query(&client.id)).unwrap();
    let scope = req.scope.clone();
    let done =
        h.complete(&req, oauth_core::Approval::new("alice", scope, json!({"upstream": "secret-upstream-token"})));
    let code = query_param(&done.redirect_to, "code").unwrap();
    (h, Pending { client, code, grant_id: done.grant_id })
}

fn exchange_req(client: &Client, code: &str) -> Request<Bytes> {
    let body = format!(
        "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&redirect_uri={}",
        urlencode(REDIRECT)
    );
    client_form("/token", client, &body)
}

fn refresh_req(client: &Client, refresh: &str) -> Request<Bytes> {
    client_form("/token", client, &format!("grant_type=refresh_token&refresh_token={refresh}"))
}

// ---- the cases ------------------------------------------------------------------

#[test]
fn registration() {
    let case = Case {
        name: "registration",
        setup: || (Harness::default(), ()),
        run: |h, (), store| {
            let body = json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post" });
            let req = Request::post(format!("{ISSUER}/register"))
                .header("content-type", "application/json")
                .body(Bytes::from(serde_json::to_vec(&body).unwrap()))
                .unwrap();
            send(h, store, req)
        },
        secrets: |()| Vec::new(),
        after: |h, (), applied, ctx| {
            // A record written behind a lost answer is an orphan: nobody
            // holds its id or secret, and its registration lifetime ends it.
            assert_eq!(live_with_prefix(h, "client/"), usize::from(applied.put("client/")), "{ctx}");
            let resp =
                h.register(json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post" }));
            assert_eq!(resp.status(), StatusCode::CREATED, "{ctx}: retry");
            let id = json(&resp)["client_id"].as_str().unwrap().to_owned();
            assert!(h.parse(&Harness::auth_query(&id)).is_ok(), "{ctx}: the retried registration works");
        },
    };
    assert_eq!(case.check(), [1]);
}

#[test]
fn authorization_request_parsing() {
    let case = Case {
        name: "parse",
        setup: || {
            let mut h = Harness::default();
            let c = h.register_client("none");
            (h, c)
        },
        run: |h, c, store| {
            let uri: http::Uri = format!("{ISSUER}/authorize?{}", Harness::auth_query(&c.id)).parse().unwrap();
            let mut flow = h.provider.parse_authorization_request(&uri, h.now);
            Answer::Authorization(drive_blocking(&mut flow, store, |c| c.default_reply()))
        },
        secrets: |_| Vec::new(),
        after: |h, c, _, ctx| assert!(h.parse(&Harness::auth_query(&c.id)).is_ok(), "{ctx}: retry"),
    };
    assert_eq!(case.check(), [1]);
}

/// Alice's grant, and the authorization request for her next one.
struct Reauthorization {
    g: Granted,
    req: oauth_core::AuthorizationRequest,
}

#[test]
fn authorization_completion_with_an_earlier_grant_to_revoke() {
    let case = Case {
        name: "complete",
        setup: || {
            let (mut h, g) = granted(builder(), "none");
            let req = h.parse(&Harness::auth_query(&g.client.id)).unwrap();
            (h, Reauthorization { g, req })
        },
        run: |h, s, store| {
            let approval = oauth_core::Approval::new("alice", s.req.scope.clone(), json!({"n": 2}));
            let mut flow = h.provider.complete_authorization(&s.req, approval, h.now, &mut h.rng);
            Answer::Completion(drive_blocking(&mut flow, store, |c| c.default_reply()))
        },
        secrets: |s| s.g.secrets(),
        after: |h, s, applied, ctx| {
            let g = &s.g;
            let old = format!("grant/{}", g.grant_id);
            // Revocation is immediate: once the earlier grant is taken, its
            // tokens stop working, whether or not its records were swept.
            assert_eq!(api_works(h, &g.tokens.access), !applied.take(&old), "{ctx}: earlier access token");
            // A grant written behind the lost answer carries a code nobody
            // received; it dies with the code's lifetime.
            let orphan = applied.put("grant/");
            let unindexed_orphan = orphan && !applied.put("user/");
            assert_eq!(live_with_prefix(h, "grant/"), usize::from(!applied.take(&old)) + usize::from(orphan), "{ctx}");

            // The retry completes, revokes the earlier grant (and the
            // orphan, if its index entry was written), and its code works.
            let code = h.authorize(&g.client.id, "alice");
            let resp = h.exchange_code(&g.client, &code);
            assert_eq!(resp.status(), StatusCode::OK, "{ctx}: the retried code");
            assert!(h.call_api(&tokens(&resp).access).is_ok(), "{ctx}");
            assert!(!api_works(h, &g.tokens.access), "{ctx}: the earlier grant survived the retry");
            assert_eq!(error_code(&h.refresh(&g.client, g.refresh())), "invalid_grant", "{ctx}");
            assert_eq!(live_with_prefix(h, "grant/"), 1 + usize::from(unindexed_orphan), "{ctx}: grants left");
            assert_eq!(live_with_prefix(h, &format!("token/{}/", g.grant_id)), 0, "{ctx}: earlier tokens swept");
            if unindexed_orphan {
                h.advance(600);
                assert_eq!(live_with_prefix(h, "grant/"), 1, "{ctx}: the orphan outlived its code");
            }
        },
    };
    // Read client + list the user's grants; write grant + index; take the
    // earlier grant + list its tokens; delete its token and index entry.
    assert_eq!(case.check(), [2, 2, 2, 2]);
}

#[test]
fn code_exchange() {
    let case = Case {
        name: "code exchange",
        setup: pending,
        run: |h, p, store| send(h, store, exchange_req(&p.client, &p.code)),
        secrets: |p| vec![p.code.clone(), p.client.secret.clone().unwrap(), VERIFIER.to_owned()],
        after: |h, p, applied, ctx| {
            let tokens_prefix = format!("token/{}/", p.grant_id);
            // The access record written behind a lost answer is unusable:
            // its token was never sent.
            assert_eq!(live_with_prefix(h, &tokens_prefix), usize::from(applied.put("token/")), "{ctx}");
            let retry = h.exchange_code(&p.client, &p.code);
            if applied.grant_cas() {
                // The code was redeemed: the retry is a replay, answered
                // invalid_grant, and the grant is revoked with everything
                // the lost answer carried (RFC 6749 §4.1.2).
                assert_eq!(retry.status(), StatusCode::BAD_REQUEST, "{ctx}");
                assert_eq!(error_code(&retry), "invalid_grant", "{ctx}");
                assert_eq!(live_with_prefix(h, &format!("grant/{}", p.grant_id)), 0, "{ctx}: grant not revoked");
                assert_eq!(live_with_prefix(h, &tokens_prefix), 0, "{ctx}: lost tokens not revoked");
                assert_eq!(live_with_prefix(h, "user/"), 0, "{ctx}: index entry left");
            } else {
                // Nothing was consumed: the retry succeeds, once.
                assert_eq!(retry.status(), StatusCode::OK, "{ctx}: {}", String::from_utf8_lossy(retry.body()));
                let t = tokens(&retry);
                assert!(h.call_api(&t.access).is_ok(), "{ctx}");
                assert_eq!(error_code(&h.exchange_code(&p.client, &p.code)), "invalid_grant", "{ctx}: reused");
                assert!(!api_works(h, &t.access), "{ctx}: the replay did not revoke");
            }
        },
    };
    // Read client + grant; compare-and-swap the grant, write the index
    // entry and the access token.
    assert_eq!(case.check(), [2, 3]);
}

fn refresh_case(policy: RefreshPolicy) -> Case<Granted> {
    Case {
        name: if policy == RefreshPolicy::Strict { "refresh (strict)" } else { "refresh (grace)" },
        setup: match policy {
            RefreshPolicy::Strict => || granted(builder(), "client_secret_post"),
            _ => || granted(builder().refresh_policy(RefreshPolicy::Grace), "client_secret_post"),
        },
        run: |h, g, store| send(h, store, refresh_req(&g.client, g.refresh())),
        secrets: Granted::secrets,
        after: |h, g, applied, ctx| {
            // Whatever was applied, the grant and its access token live on.
            assert!(api_works(h, &g.tokens.access), "{ctx}: a failed refresh ended the grant");
            let grace = h.provider.config().refresh_policy == RefreshPolicy::Grace;
            let retry = h.refresh(&g.client, g.refresh());
            if applied.grant_cas() && !grace {
                // Rotated behind a lost answer: under `strict` the presented
                // token is now the previous one, so the retry is reuse and
                // revokes the grant.
                assert_eq!(error_code(&retry), "invalid_grant", "{ctx}");
                assert!(!api_works(h, &g.tokens.access), "{ctx}: reuse did not revoke");
                assert_eq!(live_with_prefix(h, &format!("token/{}/", g.grant_id)), 0, "{ctx}");
            } else {
                // Not rotated, or `grace` still accepts the previous token.
                assert_eq!(retry.status(), StatusCode::OK, "{ctx}: {}", String::from_utf8_lossy(retry.body()));
                let t = tokens(&retry);
                assert!(h.call_api(&t.access).is_ok() && api_works(h, &g.tokens.access), "{ctx}");
                assert_eq!(h.refresh(&g.client, t.refresh.as_deref().unwrap()).status(), StatusCode::OK, "{ctx}");
            }
        },
    }
}

#[test]
fn refresh_strict() {
    // Read client + grant; compare-and-swap the grant, write the access token.
    assert_eq!(refresh_case(RefreshPolicy::Strict).check(), [2, 2]);
}

#[test]
fn refresh_grace() {
    assert_eq!(refresh_case(RefreshPolicy::Grace).check(), [2, 2]);
}

#[test]
fn revocation_of_an_access_token() {
    let case = Case {
        name: "revoke access token",
        setup: || granted(builder(), "client_secret_basic"),
        run: |h, g, store| {
            send(h, store, client_form("/revoke", &g.client, &format!("token={}", urlencode(&g.tokens.access))))
        },
        secrets: Granted::secrets,
        after: |h, g, applied, ctx| {
            assert_eq!(api_works(h, &g.tokens.access), !applied.delete("token/"), "{ctx}");
            let retry = h.respond(client_form("/revoke", &g.client, &format!("token={}", urlencode(&g.tokens.access))));
            assert_eq!(retry.status(), StatusCode::OK, "{ctx}: retry");
            assert!(!api_works(h, &g.tokens.access), "{ctx}: revoked token still works");
            // Only that token: the grant's refresh token still works.
            assert_eq!(h.refresh(&g.client, g.refresh()).status(), StatusCode::OK, "{ctx}");
        },
    };
    // Read client + token record; delete the record.
    assert_eq!(case.check(), [2, 1]);
}

#[test]
fn revocation_of_a_refresh_token() {
    let case = Case {
        name: "revoke refresh token",
        setup: || granted(builder(), "none"),
        run: |h, g, store| send(h, store, client_form("/revoke", &g.client, &format!("token={}", g.refresh()))),
        secrets: Granted::secrets,
        after: |h, g, applied, ctx| {
            let grant = format!("grant/{}", g.grant_id);
            let tokens_prefix = format!("token/{}/", g.grant_id);
            let taken = applied.take(&grant);
            // The grant is taken first; from then on no token of it works,
            // even while its access records are still stored.
            assert_eq!(api_works(h, &g.tokens.access), !taken, "{ctx}");
            assert_eq!(live_with_prefix(h, &grant), usize::from(!taken), "{ctx}");

            let retry = h.respond(client_form("/revoke", &g.client, &format!("token={}", g.refresh())));
            assert_eq!(retry.status(), StatusCode::OK, "{ctx}: retry");
            // The retry finishes an interrupted cascade: leftover access
            // records are swept.
            assert!(!api_works(h, &g.tokens.access), "{ctx}");
            assert_eq!(error_code(&h.refresh(&g.client, g.refresh())), "invalid_grant", "{ctx}");
            assert_eq!(live_with_prefix(h, &grant), 0, "{ctx}");
            assert_eq!(live_with_prefix(h, &tokens_prefix), 0, "{ctx}: leftover access records");
            // An index entry whose grant was taken by the interrupted run
            // may linger; the housekeeping pass removes it.
            h.advance(600);
            let mut flow = h.provider.purge_expired(None, 100, h.now);
            drive_blocking(&mut flow, &mut h.store, |c| c.default_reply()).unwrap();
            assert_eq!(live_with_prefix(h, "user/"), 0, "{ctx}: index entry outlived the purge");
        },
    };
    // Read client + grant; take the grant + list its tokens; delete the
    // token and the index entry.
    assert_eq!(case.check(), [2, 2, 2]);
}

#[test]
fn bearer_check() {
    let case = Case {
        name: "bearer check",
        setup: || granted(builder(), "none"),
        run: |h, g, store| {
            let req = Request::get(format!("{ISSUER}/mcp"))
                .header("authorization", format!("Bearer {}", g.tokens.access))
                .body(Bytes::new())
                .unwrap();
            send(h, store, req)
        },
        secrets: Granted::secrets,
        after: |h, g, _, ctx| assert!(api_works(h, &g.tokens.access), "{ctx}: retry"),
    };
    // Read the token record and its grant.
    assert_eq!(case.check(), [2]);
}

/// A token-exchange request for `subject`, authenticated as `client`.
fn exchange_token_req(client: &Client, subject: &str) -> Request<Bytes> {
    let body = format!(
        "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token={subject}&subject_token_type=urn:ietf:params:oauth:token-type:access_token&scope=todo:read"
    );
    client_form("/token", client, &body)
}

fn exchange_client(h: &mut Harness) -> Client {
    let resp = h.register(json!({
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "client_secret_post",
        "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"],
    }));
    let body = json(&resp);
    Client {
        id: body["client_id"].as_str().unwrap().to_owned(),
        secret: body["client_secret"].as_str().map(str::to_owned),
        method: "client_secret_post".into(),
    }
}

fn exchange_setup() -> (Harness, Granted) {
    let mut h = Harness::new(builder().token_exchange(true));
    let client = exchange_client(&mut h);
    let code = h.authorize(&client.id, "alice");
    let tokens = tokens(&h.exchange_code(&client, &code));
    let grant_id = h.call_api(&tokens.access).unwrap().grant_id;
    (h, Granted { client, grant_id, tokens, code })
}

#[test]
fn token_exchange() {
    let case = Case {
        name: "token exchange",
        setup: exchange_setup,
        run: |h, g, store| send(h, store, exchange_token_req(&g.client, &g.tokens.access)),
        secrets: Granted::secrets,
        after: |h, g, applied, ctx| {
            // An access record written behind a lost answer is unusable.
            let prefix = format!("token/{}/", g.grant_id);
            assert_eq!(live_with_prefix(h, &prefix), 1 + usize::from(applied.put("token/")), "{ctx}");
            let retry = h.respond(exchange_token_req(&g.client, &g.tokens.access));
            assert_eq!(retry.status(), StatusCode::OK, "{ctx}: {}", String::from_utf8_lossy(retry.body()));
            assert!(h.call_api(&tokens(&retry).access).is_ok() && api_works(h, &g.tokens.access), "{ctx}");
        },
    };
    // Read client + subject token record + its grant; write the new access token.
    assert_eq!(case.check(), [3, 1]);
}

/// The faulted runs above fail single operations. An outage (every batch
/// failing from the first on) must also leave nothing behind: nothing is
/// applied, and the flow answers 503 at its first round trip.
#[test]
fn an_outage_fails_every_flow_at_its_first_round_trip() {
    let (mut h, g) = granted(builder(), "none");
    let before: Vec<(String, Vec<u8>)> = h.store.raw_values().map(|(k, v)| (k.to_owned(), v.to_vec())).collect();
    let requests = [
        refresh_req(&g.client, g.refresh()),
        client_form("/revoke", &g.client, &format!("token={}", g.refresh())),
        client_form("/revoke", &g.client, &format!("token={}", g.tokens.access)),
        exchange_req(&g.client, &g.code),
    ];
    for req in requests {
        let mut store = FaultyStore::with_fault(
            h.store.clone(),
            Fault::new(1, FaultMode::FailBatch, StorageError::Unavailable).sticky(),
        );
        let answer = send(&mut h, &mut store, req);
        assert_clean_failure(&answer, &StorageError::Unavailable, &g.secrets(), "outage");
        assert_eq!(store.batches_seen(), 1, "a flow went on after its first batch failed");
        let after: Vec<(String, Vec<u8>)> =
            store.inner().raw_values().map(|(k, v)| (k.to_owned(), v.to_vec())).collect();
        assert_eq!(after, before);
    }
}

/// What the recorded batches say about `applied_ops` itself.
#[test]
fn applied_ops_follows_the_fault_modes() {
    let get = |k: &str| StorageOp::Get { key: k.to_owned() };
    let batches = vec![vec![get("a"), get("b")], vec![get("c"), get("d"), get("e")]];
    let keys = |ops: Vec<StorageOp>| ops.iter().map(|o| o.key().to_owned()).collect::<Vec<_>>().join("");
    assert_eq!(keys(applied_ops(&batches, 4, FaultMode::FailBefore)), "abc");
    assert_eq!(keys(applied_ops(&batches, 4, FaultMode::ApplyThenFail)), "abcd");
    assert_eq!(keys(applied_ops(&batches, 4, FaultMode::FailBatch)), "ab");
    assert_eq!(keys(applied_ops(&batches, 4, FaultMode::ApplyBatchThenFail)), "abcde");
    assert_eq!(keys(applied_ops(&batches, 1, FaultMode::FailBefore)), "");
}

// ---- findings -------------------------------------------------------------------

/// A subject token counts only while its grant exists, as at the resource:
/// an exchange whose subject's grant was taken (for example by a revocation
/// that storage interrupted before it deleted the access records) is refused.
#[test]
fn token_exchange_refuses_a_subject_whose_grant_was_revoked() {
    let (mut h, g) = exchange_setup();
    // Revoke the grant with a fault right after the grant was taken.
    let mut store = FaultyStore::with_fault(
        std::mem::take(&mut h.store),
        Fault::new(3, FaultMode::ApplyThenFail, StorageError::Timeout),
    );
    let revoke = client_form("/revoke", &g.client, &format!("token={}", g.refresh()));
    assert!(!succeeded(&send(&mut h, &mut store, revoke)));
    h.store = store.into_inner();
    assert!(!api_works(&mut h, &g.tokens.access), "the revoked grant's token is refused at the resource");

    let resp = h.respond(exchange_token_req(&g.client, &g.tokens.access));
    assert_eq!(error_code(&resp), "invalid_grant", "{}", String::from_utf8_lossy(resp.body()));
}
