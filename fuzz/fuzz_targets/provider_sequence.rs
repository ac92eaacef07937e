//! Arbitrary sequences of protocol actions against one provider, checked
//! against a model of what each action must do.
//!
//! Actions: register a client; authorize (parse and complete); exchange a
//! seen code with the right or a wrong verifier and client secret; refresh
//! with a seen refresh token; revoke any seen credential (at the revocation
//! endpoint or the token endpoint); exchange a seen access token as an
//! RFC 8693 subject token; call the API with a seen access token; advance the
//! virtual clock. A flag makes an action pick among every seen credential
//! instead (a refresh token as a code, a code as a bearer token, ...).
//! Through the in-memory store and a seeded generator, under either refresh
//! policy, with or without revocation of earlier grants on re-authorization.
//!
//! The model predicts, for every action, whether it succeeds and what it
//! revokes; the target asserts the provider agrees. On top of that, and
//! independently of the model, it asserts the safety invariants:
//! * no access token is issued without a pending code and its verifier, a
//!   valid refresh token, or a live subject token;
//! * an authorization code succeeds at most once;
//! * a revoked token, or any token of a revoked grant, never authorizes
//!   again;
//! * an expired token never authorizes;
//! * nothing panics.

#![no_main]

use std::collections::BTreeSet;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use http::Request;
use libfuzzer_sys::fuzz_target;
use oauth_core::{Outcome, RefreshPolicy, UnixTime};
use oauth_core_fuzz::{
    ACCESS_TOKEN_TYPE, CHALLENGE, ISSUER, REDIRECT, T0, TOKEN_EXCHANGE, VERIFIER, World, auth_query, authorize_uri,
    builder, check_response, json_body, query_param, urlencode,
};
use serde_json::{Value, json};

/// `FUZZ_TRACE=1` prints every action and answer (for reading a seed or a
/// crash: `FUZZ_TRACE=1 cargo +nightly fuzz run provider_sequence <file>`).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

const CODE_TTL: u64 = 600;
const ACCESS_TTL: u64 = 3600;
const REFRESH_TTL: u64 = 30 * 86_400;
/// Refresh tokens rotated away that the server still recognises.
const RETIRED_KEPT: usize = 16;

/// The input: a flags byte, then actions of an opcode byte and argument
/// bytes each (see [`Action::decode`]). Only bytes are read, one at a time,
/// so seeds can be written by hand (docs/verification.md lists the seeds);
/// bytes past the end read as zero, and zero is always the ordinary choice
/// (right verifier, right secret, a credential of the kind the action
/// expects).
#[derive(Debug)]
struct FuzzInput {
    grace: bool,
    revoke_existing: bool,
    actions: Vec<Action>,
}

impl<'a> Arbitrary<'a> for FuzzInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let flags = byte(u)?;
        let mut actions = Vec::new();
        while !u.is_empty() && actions.len() < MAX_ACTIONS {
            actions.push(Action::decode(u)?);
        }
        Ok(Self { grace: flags & 1 != 0, revoke_existing: flags & 2 == 0, actions })
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Self::arbitrary(&mut u)
    }
}

const MAX_ACTIONS: usize = 64;

fn byte(u: &mut Unstructured<'_>) -> arbitrary::Result<u8> {
    u8::arbitrary(u)
}

#[derive(Debug, Clone, Copy)]
enum Method {
    None,
    Post,
    Basic,
}

/// Which seen credential an action uses: `index` among those of the kind
/// the action expects, or among all seen credentials.
#[derive(Debug, Clone, Copy)]
struct Pick {
    index: u8,
    any_kind: bool,
}

#[derive(Debug)]
enum Action {
    /// `0 method flags`: method 0 none, 1 post, 2 basic; flags bit 0 no
    /// refresh_token grant, bit 1 no token-exchange grant.
    Register { method: Method, refresh: bool, exchange: bool },
    /// `1 client user`.
    Authorize { client: u8, user: u8 },
    /// `2 code client flags`: bit 0 wrong verifier, bit 1 wrong secret,
    /// bit 2 any kind of credential.
    ExchangeCode { token: Pick, client: u8, verifier_ok: bool, bad_auth: bool },
    /// `3 refresh_token client flags`: bit 1 wrong secret, bit 2 any kind.
    Refresh { token: Pick, client: u8, bad_auth: bool },
    /// `4 token client flags`: bit 0 at the token endpoint; any kind always.
    Revoke { token: Pick, client: u8, at_token_endpoint: bool },
    /// `5 subject client flags`: bit 2 any kind.
    TokenExchange { token: Pick, client: u8 },
    /// `6 token flags`: bit 2 any kind.
    CallApi { token: Pick },
    /// `7 unit amount`: unit 0 seconds, 1 minutes, 2 hours, 3 days.
    Advance(u64),
    /// `8 which delta`: move the clock to `delta` seconds (signed) from the
    /// end of a grant (even `which`) or an access token (odd `which`, picked
    /// with `which / 2`), if that is not in the past: expiry boundaries.
    AdvanceToEnd { which: u8, delta: i8 },
}

impl Action {
    fn decode(u: &mut Unstructured<'_>) -> arbitrary::Result<Self> {
        let op = byte(u)? % 9;
        let mut args = [0u8; 3];
        let n = [2, 2, 3, 3, 3, 3, 2, 2, 2][usize::from(op)];
        for a in args.iter_mut().take(n) {
            *a = byte(u)?;
        }
        let [a, b, flags] = args;
        let pick = |index: u8, flags: u8| Pick { index, any_kind: flags & 4 != 0 };
        Ok(match op {
            0 => Action::Register {
                method: [Method::None, Method::Post, Method::Basic][usize::from(a % 3)],
                refresh: b & 1 == 0,
                exchange: b & 2 == 0,
            },
            1 => Action::Authorize { client: a, user: b },
            2 => Action::ExchangeCode {
                token: pick(a, flags),
                client: b,
                verifier_ok: flags & 1 == 0,
                bad_auth: flags & 2 != 0,
            },
            3 => Action::Refresh { token: pick(a, flags), client: b, bad_auth: flags & 2 != 0 },
            4 => Action::Revoke {
                token: Pick { index: a, any_kind: true },
                client: b,
                at_token_endpoint: flags & 1 != 0,
            },
            5 => Action::TokenExchange { token: pick(a, flags), client: b },
            6 => Action::CallApi { token: pick(a, b) },
            7 => {
                let unit = [1, 60, 3600, 86_400][usize::from(a % 4)];
                Action::Advance(unit * u64::from(b))
            }
            _ => Action::AdvanceToEnd { which: a, delta: i8::from_le_bytes([b]) },
        })
    }
}

struct ClientM {
    id: String,
    secret: Option<String>,
    method: Method,
    refresh: bool,
    exchange: bool,
}

struct GrantM {
    id: String,
    client: usize,
    user: usize,
    revoked: bool,
    code_redeemed: bool,
    /// When the grant record stops being visible.
    ends_at: u64,
    current: Option<usize>,
    previous: Option<usize>,
    retired: Vec<usize>,
}

struct AccessM {
    grant: usize,
    client: usize,
    expires: u64,
    revoked: bool,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Code { grant: usize },
    Access { access: usize },
    Refresh { grant: usize },
}

struct Seen {
    value: String,
    kind: Kind,
}

struct Model {
    w: World,
    grace: bool,
    revoke_existing: bool,
    clients: Vec<ClientM>,
    grants: Vec<GrantM>,
    accesses: Vec<AccessM>,
    seen: Vec<Seen>,
    /// Codes that have been exchanged successfully (checked independently
    /// of the model).
    redeemed: BTreeSet<String>,
    /// Access tokens that were revoked, directly or with their grant.
    dead: BTreeSet<String>,
}

fn pick<T>(items: &[T], i: u8) -> Option<usize> {
    (!items.is_empty()).then(|| usize::from(i) % items.len())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Code,
    Access,
    Refresh,
}

impl Model {
    /// The seen credential `p` picks: among those of kind `want` unless the
    /// pick asks for any kind.
    fn pick_token(&self, p: Pick, want: Want) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.seen.len())
            .filter(|&i| {
                p.any_kind
                    || match self.seen[i].kind {
                        Kind::Code { .. } => want == Want::Code,
                        Kind::Access { .. } => want == Want::Access,
                        Kind::Refresh { .. } => want == Want::Refresh,
                    }
            })
            .collect();
        pick(&candidates, p.index).map(|i| candidates[i])
    }

    fn now(&self) -> u64 {
        self.w.now.as_secs()
    }

    fn grant_alive(&self, g: usize) -> bool {
        let g = &self.grants[g];
        !g.revoked && self.now() < g.ends_at
    }

    /// Whether the token's record is stored: not revoked alone, not swept
    /// with its revoked grant, not expired.
    fn record_alive(&self, a: usize) -> bool {
        let a = &self.accesses[a];
        !a.revoked && !self.grants[a.grant].revoked && self.now() < a.expires
    }

    /// Whether the token opens the resource: its record and its grant exist
    /// (an access token may outlive its grant's record by up to a minute,
    /// and is dead from the grant's end on).
    fn access_alive(&self, a: usize) -> bool {
        self.record_alive(a) && self.grant_alive(self.accesses[a].grant)
    }

    fn revoke_grant(&mut self, g: usize) {
        self.grants[g].revoked = true;
        self.bury();
    }

    /// Record every access token that may never authorize again.
    fn bury(&mut self) {
        for s in &self.seen {
            if let Kind::Access { access } = s.kind {
                let a = &self.accesses[access];
                if a.revoked || self.grants[a.grant].revoked {
                    self.dead.insert(s.value.clone());
                }
            }
        }
    }

    fn client_auth(&self, c: usize, bad: bool) -> (String, Vec<(&'static str, String)>) {
        let client = &self.clients[c];
        let id = urlencode(&client.id);
        if bad {
            return (format!("&client_id={id}&client_secret=wrong"), vec![]);
        }
        match (client.method, &client.secret) {
            (Method::Post, Some(s)) => (format!("&client_id={id}&client_secret={}", urlencode(s)), vec![]),
            (Method::Basic, Some(s)) => {
                use base64ct::Encoding;
                let raw = base64ct::Base64::encode_string(format!("{id}:{}", urlencode(s)).as_bytes());
                (String::new(), vec![("authorization", format!("Basic {raw}"))])
            }
            _ => (format!("&client_id={id}"), vec![]),
        }
    }

    fn post(&mut self, path: &str, body: String, headers: Vec<(&'static str, String)>) -> (u16, Value) {
        let mut b =
            Request::post(format!("{ISSUER}{path}")).header("content-type", "application/x-www-form-urlencoded");
        for (k, v) in headers {
            b = b.header(k, v);
        }
        let resp = self.w.respond(b.body(Bytes::from(body.clone())).unwrap());
        if trace() {
            eprintln!("           {path} -> {} {}", resp.status(), String::from_utf8_lossy(resp.body()));
        }
        let secrets: Vec<String> = self.seen.iter().map(|s| s.value.clone()).collect();
        check_response(&resp, body.as_bytes(), &secrets);
        (resp.status().as_u16(), json_body(&resp))
    }

    fn issued(&mut self, body: &Value, grant: usize, client: usize) -> (usize, Option<usize>) {
        let access_token = body["access_token"].as_str().expect("access_token").to_owned();
        let expires_in = body["expires_in"].as_u64().expect("expires_in");
        let access = self.accesses.len();
        self.accesses.push(AccessM { grant, client, expires: self.now() + expires_in, revoked: false });
        self.seen.push(Seen { value: access_token, kind: Kind::Access { access } });
        let refresh = body["refresh_token"].as_str().map(|rt| {
            self.seen.push(Seen { value: rt.to_owned(), kind: Kind::Refresh { grant } });
            self.seen.len() - 1
        });
        (access, refresh)
    }

    fn register(&mut self, method: Method, refresh: bool, exchange: bool) {
        let mut grant_types = vec!["authorization_code"];
        if refresh {
            grant_types.push("refresh_token");
        }
        if exchange {
            grant_types.push(TOKEN_EXCHANGE);
        }
        let method_name = match method {
            Method::None => "none",
            Method::Post => "client_secret_post",
            Method::Basic => "client_secret_basic",
        };
        let resp = self.w.register(&json!({
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": method_name,
            "grant_types": grant_types,
        }));
        assert_eq!(resp.status(), 201, "{}", String::from_utf8_lossy(resp.body()));
        let body = json_body(&resp);
        self.clients.push(ClientM {
            id: body["client_id"].as_str().unwrap().to_owned(),
            secret: body["client_secret"].as_str().map(str::to_owned),
            method,
            refresh,
            exchange,
        });
    }

    fn authorize(&mut self, c: usize, user: usize) {
        let id = self.clients[c].id.clone();
        let req = self.w.parse(&authorize_uri(&auth_query(&id, REDIRECT))).expect("a valid request is accepted");
        assert_eq!(req.code_challenge, CHALLENGE);
        let done = self.w.complete(&req, &format!("u{user}")).expect("authorization completes");
        let code = query_param(&done.redirect_to, "code").expect("code");
        if self.revoke_existing {
            let victims: Vec<usize> = (0..self.grants.len())
                .filter(|&g| self.grants[g].client == c && self.grants[g].user == user && self.grant_alive(g))
                .collect();
            assert_eq!(done.revoked_grants, victims.len(), "earlier grants revoked");
            for g in victims {
                self.revoke_grant(g);
            }
        } else {
            assert_eq!(done.revoked_grants, 0);
        }
        let grant = self.grants.len();
        self.grants.push(GrantM {
            id: done.grant_id.clone(),
            client: c,
            user,
            revoked: false,
            code_redeemed: false,
            ends_at: self.now() + CODE_TTL,
            current: None,
            previous: None,
            retired: Vec::new(),
        });
        self.seen.push(Seen { value: code, kind: Kind::Code { grant } });
    }

    fn exchange_code(&mut self, t: usize, c: usize, verifier_ok: bool, bad_auth: bool) {
        let code = self.seen[t].value.clone();
        let verifier = if verifier_ok { VERIFIER.to_owned() } else { format!("{}x", &VERIFIER[..42]) };
        let (extra, headers) = self.client_auth(c, bad_auth);
        let body = format!(
            "grant_type=authorization_code&code={}&code_verifier={verifier}&redirect_uri={}{extra}",
            urlencode(&code),
            urlencode(REDIRECT)
        );
        // The model's prediction: the error code, or None for success.
        let expected: Option<&str> = if bad_auth {
            Some("invalid_client")
        } else {
            match self.seen[t].kind {
                Kind::Code { grant } if self.grant_alive(grant) => {
                    let g = &self.grants[grant];
                    if g.code_redeemed {
                        // A replay: the grant is revoked, whoever presents it.
                        Some("invalid_grant+revoke")
                    } else if g.client != c || !verifier_ok {
                        Some("invalid_grant")
                    } else {
                        None
                    }
                }
                _ => Some("invalid_grant"),
            }
        };
        let (status, json) = self.post("/token", body, headers);
        match expected {
            None => {
                assert_eq!(status, 200, "code exchange refused: {json}");
                let Kind::Code { grant } = self.seen[t].kind else { unreachable!() };
                assert!(self.redeemed.insert(code), "a code succeeded twice");
                let refresh_allowed = self.clients[c].refresh;
                assert_eq!(json["refresh_token"].is_string(), refresh_allowed, "refresh token issuance");
                assert_eq!(json["expires_in"].as_u64(), Some(ACCESS_TTL));
                let (access, refresh) = self.issued(&json, grant, c);
                let now = self.now();
                let g = &mut self.grants[grant];
                g.code_redeemed = true;
                g.current = refresh;
                g.ends_at = if refresh.is_some() { now + REFRESH_TTL } else { self.accesses[access].expires };
            }
            Some(err) => {
                assert!(json["access_token"].is_null(), "tokens issued for an invalid code: {json}");
                let (code, revoke) = err.split_once('+').map_or((err, false), |(c, _)| (c, true));
                assert_eq!(json["error"].as_str(), Some(code), "status {status}");
                assert_eq!(status, if code == "invalid_client" { 401 } else { 400 });
                if revoke {
                    let Kind::Code { grant } = self.seen[t].kind else { unreachable!() };
                    self.revoke_grant(grant);
                }
            }
        }
    }

    fn refresh(&mut self, t: usize, c: usize, bad_auth: bool) {
        let rt = self.seen[t].value.clone();
        let (extra, headers) = self.client_auth(c, bad_auth);
        let body = format!("grant_type=refresh_token&refresh_token={}{extra}", urlencode(&rt));
        let recent = |g: &GrantM| {
            let from = g.retired.len().saturating_sub(RETIRED_KEPT);
            g.retired[from..].contains(&t)
        };
        let expected: Option<&str> = if bad_auth {
            Some("invalid_client")
        } else if !self.clients[c].refresh {
            Some("unauthorized_client")
        } else {
            match self.seen[t].kind {
                Kind::Refresh { grant } if self.grant_alive(grant) => {
                    let g = &self.grants[grant];
                    let current = g.current == Some(t);
                    let previous = g.previous == Some(t);
                    if !self.grace && (previous || recent(g)) {
                        Some("invalid_grant+revoke")
                    } else if !(current || (self.grace && previous)) || g.client != c {
                        Some("invalid_grant")
                    } else {
                        None
                    }
                }
                _ => Some("invalid_grant"),
            }
        };
        let (status, json) = self.post("/token", body, headers);
        match expected {
            None => {
                assert_eq!(status, 200, "refresh refused: {json}");
                let Kind::Refresh { grant } = self.seen[t].kind else { unreachable!() };
                let now = self.now();
                let end = self.grants[grant].ends_at;
                let expect_in = ACCESS_TTL.min(end.saturating_sub(now));
                assert_eq!(json["expires_in"].as_u64(), Some(expect_in), "access lifetime after refresh");
                assert!(json["refresh_token"].is_string(), "a refresh rotates");
                let (_, refresh) = self.issued(&json, grant, c);
                let g = &mut self.grants[grant];
                if g.current == Some(t) {
                    if let Some(p) = g.previous.take() {
                        g.retired.push(p);
                    }
                    g.previous = Some(t);
                } else {
                    if let Some(cur) = g.current.take() {
                        g.retired.push(cur);
                    }
                    g.previous = Some(t);
                }
                g.current = refresh;
            }
            Some(err) => {
                assert!(json["access_token"].is_null(), "tokens issued for an invalid refresh: {json}");
                let (code, revoke) = err.split_once('+').map_or((err, false), |(c, _)| (c, true));
                assert_eq!(json["error"].as_str(), Some(code), "status {status}");
                assert_eq!(status, if code == "invalid_client" { 401 } else { 400 });
                if revoke {
                    let Kind::Refresh { grant } = self.seen[t].kind else { unreachable!() };
                    self.revoke_grant(grant);
                }
            }
        }
    }

    fn revoke(&mut self, t: usize, c: usize, at_token_endpoint: bool) {
        let token = self.seen[t].value.clone();
        let (extra, headers) = self.client_auth(c, false);
        let path = if at_token_endpoint { "/token" } else { "/revoke" };
        let (status, _) = self.post(path, format!("token={}{extra}", urlencode(&token)), headers);
        assert_eq!(status, 200, "revocation answers 200");
        match self.seen[t].kind {
            Kind::Code { .. } => {}
            Kind::Access { access } => {
                if self.record_alive(access) && self.accesses[access].client == c {
                    self.accesses[access].revoked = true;
                    self.bury();
                }
            }
            Kind::Refresh { grant } => {
                let g = &self.grants[grant];
                if g.client != c {
                    return;
                }
                if self.grant_alive(grant) {
                    let from = g.retired.len().saturating_sub(RETIRED_KEPT);
                    if g.current == Some(t) || g.previous == Some(t) || g.retired[from..].contains(&t) {
                        self.revoke_grant(grant);
                    }
                } else {
                    // The grant is gone: its leftover access tokens are swept.
                    for a in 0..self.accesses.len() {
                        if self.accesses[a].grant == grant {
                            self.accesses[a].revoked = true;
                        }
                    }
                    self.bury();
                }
            }
        }
    }

    fn token_exchange(&mut self, t: usize, c: usize) {
        let subject = self.seen[t].value.clone();
        let (extra, headers) = self.client_auth(c, false);
        let body = format!(
            "grant_type={}&subject_token={}&subject_token_type={}{extra}",
            urlencode(TOKEN_EXCHANGE),
            urlencode(&subject),
            urlencode(ACCESS_TOKEN_TYPE)
        );
        let expected: Option<&str> = if !self.clients[c].exchange {
            Some("unauthorized_client")
        } else {
            match self.seen[t].kind {
                Kind::Access { access } if self.access_alive(access) && self.accesses[access].client == c => None,
                _ => Some("invalid_grant"),
            }
        };
        let (status, json) = self.post("/token", body, headers);
        match expected {
            None => {
                assert_eq!(status, 200, "token exchange refused: {json}");
                let Kind::Access { access } = self.seen[t].kind else { unreachable!() };
                let a = &self.accesses[access];
                let expect_in = ACCESS_TTL.min(a.expires - self.now());
                assert_eq!(json["expires_in"].as_u64(), Some(expect_in), "exchanged token outlives its subject");
                assert!(json["refresh_token"].is_null());
                let grant = a.grant;
                self.issued(&json, grant, c);
            }
            Some(err) => {
                assert!(json["access_token"].is_null(), "tokens issued for an invalid subject: {json}");
                assert_eq!(json["error"].as_str(), Some(err), "status {status}");
                assert_eq!(status, 400);
            }
        }
    }

    fn call_api(&mut self, t: usize) {
        let token = self.seen[t].value.clone();
        let req = Request::get(format!("{ISSUER}/mcp"))
            .header("authorization", format!("Bearer {token}"))
            .body(Bytes::new())
            .unwrap();
        let out = self.w.send(req);
        if trace() {
            let shown = match &out {
                Outcome::Authorized { auth, .. } => format!("authorized until {}", auth.expires_at),
                Outcome::Response(r) => format!("{}", r.status()),
                _ => "other".to_owned(),
            };
            eprintln!("           /mcp -> {shown}");
        }
        let expected = match self.seen[t].kind {
            Kind::Access { access } => self.access_alive(access).then_some(access),
            _ => None,
        };
        match out {
            Outcome::Authorized { auth, .. } => {
                assert!(!self.dead.contains(&token), "a revoked token authorized");
                let access = expected.expect("the model says this token is dead");
                let a = &self.accesses[access];
                assert!(self.now() < a.expires, "an expired token authorized");
                let g = &self.grants[a.grant];
                assert_eq!(auth.grant_id, g.id);
                assert_eq!(auth.user_id, format!("u{}", g.user));
                assert_eq!(auth.client_id, self.clients[a.client].id);
                assert_eq!(auth.expires_at, UnixTime::from_secs(a.expires));
            }
            Outcome::Response(resp) => {
                assert!(expected.is_none(), "a live token was refused: {resp:?}");
                assert_eq!(resp.status(), 401);
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }

    fn act(&mut self, action: Action) {
        if trace() {
            eprintln!("t+{:>8} {action:?}", self.now() - T0);
        }
        match action {
            Action::Register { method, refresh, exchange } => {
                if self.clients.len() < 6 {
                    self.register(method, refresh, exchange);
                }
            }
            Action::Authorize { client, user } => {
                if let Some(c) = pick(&self.clients, client) {
                    self.authorize(c, usize::from(user % 3));
                }
            }
            Action::ExchangeCode { token, client, verifier_ok, bad_auth } => {
                if let (Some(t), Some(c)) = (self.pick_token(token, Want::Code), pick(&self.clients, client)) {
                    self.exchange_code(t, c, verifier_ok, bad_auth);
                }
            }
            Action::Refresh { token, client, bad_auth } => {
                if let (Some(t), Some(c)) = (self.pick_token(token, Want::Refresh), pick(&self.clients, client)) {
                    self.refresh(t, c, bad_auth);
                }
            }
            Action::Revoke { token, client, at_token_endpoint } => {
                if let (Some(t), Some(c)) = (self.pick_token(token, Want::Refresh), pick(&self.clients, client)) {
                    self.revoke(t, c, at_token_endpoint);
                }
            }
            Action::TokenExchange { token, client } => {
                if let (Some(t), Some(c)) = (self.pick_token(token, Want::Access), pick(&self.clients, client)) {
                    self.token_exchange(t, c);
                }
            }
            Action::CallApi { token } => {
                if let Some(t) = self.pick_token(token, Want::Access) {
                    self.call_api(t);
                }
            }
            Action::Advance(secs) => self.w.now = self.w.now.plus(secs),
            Action::AdvanceToEnd { which, delta } => {
                let end = if which % 2 == 0 {
                    pick(&self.grants, which / 2).map(|g| self.grants[g].ends_at)
                } else {
                    pick(&self.accesses, which / 2).map(|a| self.accesses[a].expires)
                };
                if let Some(to) = end.map(|e| e.saturating_add_signed(i64::from(delta)))
                    && to > self.now()
                {
                    self.w.now = UnixTime::from_secs(to);
                }
            }
        }
    }
}

fuzz_target!(|input: FuzzInput| {
    let policy = if input.grace { RefreshPolicy::Grace } else { RefreshPolicy::Strict };
    let provider = builder()
        .refresh_policy(policy)
        .revoke_existing_grants(input.revoke_existing)
        .client_registration_ttl(None)
        .build()
        .unwrap();
    let mut m = Model {
        w: World::new(provider, 5),
        grace: input.grace,
        revoke_existing: input.revoke_existing,
        clients: Vec::new(),
        grants: Vec::new(),
        accesses: Vec::new(),
        seen: Vec::new(),
        redeemed: BTreeSet::new(),
        dead: BTreeSet::new(),
    };
    // Two clients to start from: a public one with every grant type, and a
    // confidential one (Basic) without token exchange.
    m.register(Method::None, true, true);
    m.register(Method::Basic, true, false);
    for action in input.actions {
        m.act(action);
    }
});
