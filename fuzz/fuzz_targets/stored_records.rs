//! Fuzzer-chosen storage replies fed to every flow.
//!
//! The store is the fixture's (real clients, grants and tokens), but each
//! storage batch a flow asks for may be answered by the fuzzer instead:
//! a genuine record, another key's record, a record with JSON edits (values
//! replaced, members removed, subtrees grafted from other records), flipped
//! bytes, raw bytes, another revision or expiry, a reply of the wrong type,
//! the wrong number of replies, a storage error, or a hook answer where
//! storage was asked. Batches the input does not cover are performed against
//! the store, so flows reach their later rounds.
//!
//! Asserts, besides not panicking:
//! * every flow ends, within the batches the fuzzer answered plus a bound;
//! * every HTTP response passes `check_response` (no secret check: the
//!   records are the fuzzer's) and nothing the provider routes is handed
//!   back as not handled;
//! * tokens are issued (code, refresh, token exchange) and a bearer request
//!   is authorized only if a record derived from the genuine record under the
//!   credential's own key was served: garbage, or another credential's
//!   record, never yields tokens or access. The credentials are bound to
//!   their records by hashes and AEAD associated data, so this is what the
//!   crypto scheme promises.

#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use http::Request;
use libfuzzer_sys::fuzz_target;
use oauth_core::admin::ClientSpec;
use oauth_core::testing::MemoryStore;
use oauth_core::{
    AuthorizationRequest, ErrorCode, Flow, FlowOutput, HookCall, HookError, HookReply, Hooks, Input, Outcome,
    RefreshPolicy, Reply, Step, StorageError, StorageOp, StorageRequest,
};
use oauth_core::{Entry, UnixTime};
use oauth_core_fuzz::{
    ACCESS_TOKEN_TYPE, Fixture, ISSUER, REDIRECT, TOKEN_EXCHANGE, VERIFIER, World, auth_query, authorize_uri, builder,
    check_response, json_body, urlencode,
};
use serde_json::Value;

struct Ctx {
    fx: Fixture,
    request: AuthorizationRequest,
    /// Every live record of the fixture, by key.
    templates: Vec<(String, Entry)>,
    grant_ids: Vec<String>,
}

fn ctx(config: Config) -> &'static Ctx {
    static CTX: [OnceLock<Ctx>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    CTX[config as usize].get_or_init(|| {
        let b = match config {
            Config::Strict => builder(),
            Config::Grace => builder().refresh_policy(RefreshPolicy::Grace),
            Config::Hooks => {
                let mut hooks = Hooks::default();
                hooks.token_issuance = true;
                hooks.client_registration = true;
                builder().hooks(hooks)
            }
        };
        let fx = Fixture::build(b.build().unwrap());
        let mut w = fx.world();
        let request = w.parse(&authorize_uri(&auth_query(&fx.public.id, REDIRECT))).unwrap();
        let mut store = fx.store.clone();
        let templates: Vec<(String, Entry)> = store
            .live_keys(fx.now)
            .into_iter()
            .filter_map(|k| match store.apply(StorageOp::Get { key: k.clone() }, fx.now) {
                Reply::Entry(Some(e)) => Some((k, e)),
                _ => None,
            })
            .collect();
        let grant_ids = templates.iter().filter_map(|(k, _)| k.strip_prefix("grant/").map(str::to_owned)).collect();
        Ctx { fx, request, templates, grant_ids }
    })
}

#[derive(Debug, Clone, Copy)]
enum Config {
    Strict,
    Grace,
    Hooks,
}

/// The input: a config byte, a flow byte and the flow's argument bytes
/// (read one byte at a time, so seeds can be written by hand), then the
/// fuzzer's answers to the flow's storage batches and hooks, decoded by
/// `arbitrary`. An input that ends after the flow runs it against the
/// genuine store.
#[derive(Debug)]
struct FuzzInput {
    config: Config,
    flow: FlowChoice,
    batches: Vec<BatchAnswer>,
    hooks: Vec<HookAnswer>,
}

impl<'a> Arbitrary<'a> for FuzzInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let config = [Config::Strict, Config::Grace, Config::Hooks][usize::from(byte(u)? % 3)];
        let flow = FlowChoice::decode(u)?;
        let batches = u.arbitrary()?;
        let hooks = u.arbitrary()?;
        Ok(Self { config, flow, batches, hooks })
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Self::arbitrary(&mut u)
    }
}

fn byte(u: &mut Unstructured<'_>) -> arbitrary::Result<u8> {
    u8::arbitrary(u)
}

#[derive(Debug, Clone, Copy)]
enum ClientChoice {
    Public,
    Post,
    Basic,
    PostWrongSecret,
}

impl ClientChoice {
    fn from_byte(b: u8) -> Self {
        [Self::Public, Self::Post, Self::Basic, Self::PostWrongSecret][usize::from(b % 4)]
    }
}

/// The flow under test: `flow-byte arg...`, numbered in declaration order.
#[derive(Debug)]
enum FlowChoice {
    ParseAuthorization,
    CompleteAuthorization {
        user: u8,
    },
    /// `2 client flags`: bit 0 the redeemed code, bit 1 a wrong verifier.
    ExchangeCode {
        client: ClientChoice,
        used: bool,
        verifier_ok: bool,
    },
    /// `3 client old`: the current refresh token, or (odd) the previous one.
    Refresh {
        client: ClientChoice,
        old: bool,
    },
    TokenExchange {
        client: ClientChoice,
        token: u8,
    },
    Revoke {
        client: ClientChoice,
        token: u8,
    },
    Bearer {
        token: u8,
    },
    Register,
    GetClient {
        client: ClientChoice,
    },
    ListClients {
        limit: u8,
    },
    CreateClient,
    UpdateClient {
        client: ClientChoice,
        revision: u64,
    },
    RotateSecret {
        client: ClientChoice,
        revision: u64,
    },
    DeleteClient {
        client: ClientChoice,
    },
    ListGrants {
        user: u8,
        limit: u8,
    },
    RevokeGrant {
        grant: u8,
        user: u8,
    },
    LookupToken {
        token: u8,
    },
    Purge {
        limit: u8,
    },
}

impl FlowChoice {
    fn decode(u: &mut Unstructured<'_>) -> arbitrary::Result<Self> {
        let op = byte(u)? % 18;
        let (a, b) = (byte(u)?, byte(u)?);
        let client = ClientChoice::from_byte(a);
        Ok(match op {
            0 => Self::ParseAuthorization,
            1 => Self::CompleteAuthorization { user: a },
            2 => Self::ExchangeCode { client, used: b & 1 != 0, verifier_ok: b & 2 == 0 },
            3 => Self::Refresh { client, old: b & 1 != 0 },
            4 => Self::TokenExchange { client, token: b },
            5 => Self::Revoke { client, token: b },
            6 => Self::Bearer { token: a },
            7 => Self::Register,
            8 => Self::GetClient { client },
            9 => Self::ListClients { limit: a },
            10 => Self::CreateClient,
            11 => Self::UpdateClient { client, revision: u64::from(b) },
            12 => Self::RotateSecret { client, revision: u64::from(b) },
            13 => Self::DeleteClient { client },
            14 => Self::ListGrants { user: a, limit: b },
            15 => Self::RevokeGrant { grant: a, user: b },
            16 => Self::LookupToken { token: a },
            _ => Self::Purge { limit: a },
        })
    }
}

#[derive(Arbitrary, Debug)]
enum BatchAnswer {
    /// One answer per operation; operations past the list are performed.
    Replies(Vec<OpAnswer>),
    Fail(ErrorChoice),
    /// Perform the batch and drop (`true`) or duplicate the last reply.
    WrongCount(bool),
    /// Answer a storage step with a hook reply.
    HookInstead,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum ErrorChoice {
    Unavailable,
    Timeout,
    Other,
}

#[derive(Arbitrary, Debug)]
enum OpAnswer {
    /// Perform the operation against the store.
    Perform,
    Entry(EntryChoice),
    Written(bool),
    Done,
    Listed {
        entries: Vec<(KeyChoice, EntryChoice)>,
        cursor: Option<String>,
    },
}

#[derive(Arbitrary, Debug)]
enum KeyChoice {
    Template(u8),
    Arbitrary(String),
}

#[derive(Arbitrary, Debug)]
enum Base {
    /// The store's record under the operation's key.
    Own,
    /// The record under another key.
    Template(u8),
}

#[derive(Arbitrary, Debug)]
enum EntryChoice {
    Absent,
    Record(Base),
    Edited { base: Base, edits: Vec<Edit> },
    Flipped { base: Base, at: u16, xor: u8 },
    Meta { base: Base, revision: u64, expires_at: Option<u64> },
    Raw { value: Vec<u8>, revision: u64 },
}

#[derive(Arbitrary, Debug)]
struct Edit {
    path: Vec<u8>,
    value: NewValue,
}

#[derive(Arbitrary, Debug)]
enum NewValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Str(String),
    EmptyArray,
    EmptyObject,
    Remove,
    /// A subtree of another record.
    Graft {
        template: u8,
        path: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
enum HookAnswer {
    Default,
    Refuse(bool),
    WrongKind,
    StorageInstead,
    Decision { scope: Option<Vec<String>>, ttl: Option<u64>, refresh_ttl: Option<u64>, props: Option<String> },
}

/// Which keys a served entry was derived from.
type Origins = BTreeSet<String>;

struct Driver<'a> {
    ctx: &'a Ctx,
    store: MemoryStore,
    batches: std::vec::IntoIter<BatchAnswer>,
    hooks: std::vec::IntoIter<HookAnswer>,
    /// `(key asked for, origins of what was served)` for every Get/Take.
    served: Vec<(String, Origins)>,
    budget: usize,
}

fn template(ctx: &Ctx, i: u8) -> Option<&(String, Entry)> {
    match ctx.templates.len() {
        0 => None,
        n => ctx.templates.get(usize::from(i) % n),
    }
}

fn decode(value: &[u8]) -> Option<Value> {
    match value.split_first() {
        Some((1, json)) => serde_json::from_slice(json).ok(),
        _ => None,
    }
}

fn encode(v: &Value) -> Vec<u8> {
    let mut out = vec![1];
    serde_json::to_writer(&mut out, v).unwrap();
    out
}

/// The node at `path` (each byte picks a child, modulo the child count),
/// stopping early at a leaf.
fn node<'v>(mut v: &'v Value, path: &[u8]) -> &'v Value {
    for &step in path {
        v = match v {
            Value::Object(m) if !m.is_empty() => m.values().nth(usize::from(step) % m.len()).unwrap(),
            Value::Array(a) if !a.is_empty() => &a[usize::from(step) % a.len()],
            _ => return v,
        };
    }
    v
}

fn apply_edit(ctx: &Ctx, root: &mut Value, edit: &Edit, origins: &mut Origins) {
    let replacement = match &edit.value {
        NewValue::Null => Some(Value::Null),
        NewValue::Bool(b) => Some(Value::Bool(*b)),
        NewValue::Int(i) => Some(Value::from(*i)),
        NewValue::UInt(u) => Some(Value::from(*u)),
        NewValue::Str(s) => Some(Value::String(s.clone())),
        NewValue::EmptyArray => Some(Value::Array(Vec::new())),
        NewValue::EmptyObject => Some(Value::Object(Default::default())),
        NewValue::Remove => None,
        NewValue::Graft { template: t, path } => {
            let Some((key, entry)) = template(ctx, *t) else { return };
            let Some(other) = decode(&entry.value) else { return };
            origins.insert(key.clone());
            Some(node(&other, path).clone())
        }
    };
    let segs = resolve(root, &edit.path);
    let Some((last, init)) = segs.split_last() else {
        if let Some(r) = replacement {
            *root = r;
        }
        return;
    };
    let Some(parent) = root.pointer_mut(&pointer(init)) else { return };
    match (parent, last, replacement) {
        (Value::Object(m), Seg::Key(k), Some(r)) => {
            m.insert(k.clone(), r);
        }
        (Value::Object(m), Seg::Key(k), None) => {
            m.remove(k);
        }
        (Value::Array(a), Seg::Idx(i), Some(r)) => a[*i] = r,
        (Value::Array(a), Seg::Idx(i), None) => {
            a.remove(*i);
        }
        _ => {}
    }
}

enum Seg {
    Key(String),
    Idx(usize),
}

/// The concrete path `path` picks in `v` (each byte picks a child, modulo
/// the child count), stopping early at a leaf.
fn resolve(mut v: &Value, path: &[u8]) -> Vec<Seg> {
    let mut out = Vec::new();
    for &step in path {
        match v {
            Value::Object(m) if !m.is_empty() => {
                let (k, next) = m.iter().nth(usize::from(step) % m.len()).unwrap();
                out.push(Seg::Key(k.clone()));
                v = next;
            }
            Value::Array(a) if !a.is_empty() => {
                let i = usize::from(step) % a.len();
                out.push(Seg::Idx(i));
                v = &a[i];
            }
            _ => break,
        }
    }
    out
}

/// A JSON pointer (RFC 6901) for `segs`.
fn pointer(segs: &[Seg]) -> String {
    let mut p = String::new();
    for s in segs {
        p.push('/');
        match s {
            Seg::Key(k) => p.push_str(&k.replace('~', "~0").replace('/', "~1")),
            Seg::Idx(i) => p.push_str(&i.to_string()),
        }
    }
    p
}

impl Driver<'_> {
    fn base(&mut self, base: &Base, key: &str, now: UnixTime) -> (Option<Entry>, Origins) {
        let (entry, origin) = match base {
            Base::Own => match self.store.apply(StorageOp::Get { key: key.to_owned() }, now) {
                Reply::Entry(e) => (e, key.to_owned()),
                _ => (None, key.to_owned()),
            },
            Base::Template(i) => match template(self.ctx, *i) {
                Some((k, e)) => (Some(e.clone()), k.clone()),
                None => (None, String::new()),
            },
        };
        let origins = if entry.is_some() { BTreeSet::from([origin]) } else { BTreeSet::new() };
        (entry, origins)
    }

    fn entry(&mut self, choice: &EntryChoice, key: &str, now: UnixTime) -> (Option<Entry>, Origins) {
        match choice {
            EntryChoice::Absent => (None, Origins::new()),
            EntryChoice::Record(base) => self.base(base, key, now),
            EntryChoice::Edited { base, edits } => {
                let (entry, mut origins) = self.base(base, key, now);
                let Some(mut entry) = entry else { return (None, origins) };
                if let Some(mut v) = decode(&entry.value) {
                    for e in edits.iter().take(16) {
                        apply_edit(self.ctx, &mut v, e, &mut origins);
                    }
                    entry.value = encode(&v);
                }
                (Some(entry), origins)
            }
            EntryChoice::Flipped { base, at, xor } => {
                let (entry, origins) = self.base(base, key, now);
                let Some(mut entry) = entry else { return (None, origins) };
                if !entry.value.is_empty() {
                    let i = usize::from(*at) % entry.value.len();
                    entry.value[i] ^= *xor;
                }
                (Some(entry), origins)
            }
            EntryChoice::Meta { base, revision, expires_at } => {
                let (entry, origins) = self.base(base, key, now);
                let entry = entry.map(|mut e| {
                    e.revision = *revision;
                    e.expires_at = expires_at.map(UnixTime::from_secs);
                    e
                });
                (entry, origins)
            }
            EntryChoice::Raw { value, revision } => {
                (Some(Entry { value: value.clone(), revision: *revision, expires_at: None }), Origins::new())
            }
        }
    }

    fn perform(&mut self, op: StorageOp, now: UnixTime) -> Reply {
        let key = op.key().to_owned();
        let get = matches!(op, StorageOp::Get { .. } | StorageOp::Take { .. });
        let reply = self.store.apply(op, now);
        if get {
            let origins = match &reply {
                Reply::Entry(Some(_)) => BTreeSet::from([key.clone()]),
                _ => Origins::new(),
            };
            self.served.push((key, origins));
        }
        reply
    }

    fn storage(&mut self, req: StorageRequest) -> Input {
        let now = req.now;
        let Some(answer) = self.batches.next() else {
            let replies = req.ops.into_iter().map(|op| self.perform(op, now)).collect();
            return Input::Storage(Ok(replies));
        };
        match answer {
            BatchAnswer::Fail(e) => Input::Storage(Err(match e {
                ErrorChoice::Unavailable => StorageError::Unavailable,
                ErrorChoice::Timeout => StorageError::Timeout,
                ErrorChoice::Other => StorageError::Other("fuzz".into()),
            })),
            BatchAnswer::HookInstead => Input::Hook(HookReply::TokenIssuance(Ok(Default::default()))),
            BatchAnswer::WrongCount(drop) => {
                let mut replies: Vec<Reply> = req.ops.into_iter().map(|op| self.perform(op, now)).collect();
                if drop {
                    replies.pop();
                } else if let Some(last) = replies.last().cloned() {
                    replies.push(last);
                } else {
                    replies.push(Reply::Done);
                }
                Input::Storage(Ok(replies))
            }
            BatchAnswer::Replies(answers) => {
                let mut answers = answers.into_iter();
                let mut replies = Vec::with_capacity(req.ops.len());
                for op in req.ops {
                    let key = op.key().to_owned();
                    let reply = match answers.next() {
                        None | Some(OpAnswer::Perform) => self.perform(op, now),
                        Some(OpAnswer::Entry(choice)) => {
                            let (entry, origins) = self.entry(&choice, &key, now);
                            if matches!(op, StorageOp::Get { .. } | StorageOp::Take { .. }) {
                                self.served.push((key, origins));
                            }
                            Reply::Entry(entry)
                        }
                        Some(OpAnswer::Written(w)) => Reply::Written(w),
                        Some(OpAnswer::Done) => Reply::Done,
                        Some(OpAnswer::Listed { entries, cursor }) => {
                            let mut out = Vec::new();
                            for (k, choice) in entries.iter().take(64) {
                                let k = match k {
                                    KeyChoice::Template(i) => template(self.ctx, *i).map(|(k, _)| k.clone()),
                                    KeyChoice::Arbitrary(s) => Some(s.clone()),
                                };
                                let Some(k) = k else { continue };
                                if let (Some(e), _) = self.entry(choice, &k, now) {
                                    out.push((k, e));
                                }
                            }
                            Reply::Listed { entries: out, cursor }
                        }
                    };
                    replies.push(reply);
                }
                Input::Storage(Ok(replies))
            }
        }
    }

    fn hook(&mut self, call: HookCall) -> Input {
        let answer = self.hooks.next().unwrap_or(HookAnswer::Default);
        let reply = match (answer, &call) {
            (HookAnswer::Default, _) => call.default_reply(),
            (HookAnswer::StorageInstead, _) => return Input::Storage(Ok(Vec::new())),
            (HookAnswer::WrongKind, HookCall::TokenIssuance(_)) => HookReply::ClientRegistration(Ok(())),
            (HookAnswer::WrongKind, _) => HookReply::TokenIssuance(Ok(Default::default())),
            (HookAnswer::Refuse(grant), HookCall::TokenIssuance(_)) => {
                let code = if grant { ErrorCode::InvalidGrant } else { ErrorCode::AccessDenied };
                HookReply::TokenIssuance(Err(HookError::new(code, "refused")))
            }
            (HookAnswer::Refuse(_), _) => {
                HookReply::ClientRegistration(Err(HookError::new(ErrorCode::InvalidClientMetadata, "refused")))
            }
            (HookAnswer::Decision { scope, ttl, refresh_ttl, props }, HookCall::TokenIssuance(_)) => {
                let mut d = oauth_core::IssuanceDecision::default();
                d.access_token_scope = scope;
                d.access_token_ttl = ttl;
                d.refresh_token_ttl = refresh_ttl;
                d.access_token_props = props.map(Value::String);
                HookReply::TokenIssuance(Ok(d))
            }
            (HookAnswer::Decision { .. }, _) => call.default_reply(),
        };
        Input::Hook(reply)
    }

    fn run<T: FlowOutput + Send + 'static>(&mut self, flow: &mut Flow<T>) -> T {
        let mut input = Input::Start;
        for _ in 0..self.budget {
            match flow.advance(input) {
                Step::Storage(req) => input = self.storage(req),
                Step::Hook(call) => input = self.hook(call),
                Step::Done(out) => return out,
                _ => panic!("an unexpected step (a fetch, with client ID metadata documents off?)"),
            }
        }
        panic!("the flow did not end within {} steps", self.budget);
    }
}

fn client_auth(fx: &Fixture, c: ClientChoice) -> (String, Vec<(&'static str, String)>) {
    match c {
        ClientChoice::Public => (format!("&client_id={}", fx.public.id), vec![]),
        ClientChoice::Post => (
            format!("&client_id={}&client_secret={}", fx.post.id, urlencode(fx.post.secret.as_deref().unwrap())),
            vec![],
        ),
        ClientChoice::PostWrongSecret => (format!("&client_id={}&client_secret=wrong", fx.post.id), vec![]),
        ClientChoice::Basic => (String::new(), vec![("authorization", format!("Basic {}", fx.basic_credentials()))]),
    }
}

fn client_id(fx: &Fixture, c: ClientChoice) -> &str {
    match c {
        ClientChoice::Public => &fx.public.id,
        ClientChoice::Post | ClientChoice::PostWrongSecret => &fx.post.id,
        ClientChoice::Basic => &fx.basic.id,
    }
}

fn pick<'a>(items: &[&'a str], i: u8) -> &'a str {
    items[usize::from(i) % items.len()]
}

fn form(path: &str, body: String, headers: Vec<(&'static str, String)>) -> Request<Bytes> {
    let mut b = Request::post(format!("{ISSUER}{path}")).header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.body(Bytes::from(body)).unwrap()
}

/// What a successful outcome must be bound to: the prefix of the key whose
/// genuine record has to have been served.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Binding {
    None,
    Grant,
    Token,
}

fn check_outcome(out: Outcome, binding: Binding, served: &[(String, Origins)]) {
    let bound = |prefix: &str| {
        let Some((key, _)) = served.iter().find(|(k, _)| k.starts_with(prefix)) else {
            return false;
        };
        served.iter().any(|(k, origins)| k == key && origins.contains(key))
    };
    match out {
        Outcome::Response(resp) => {
            check_response(&resp, &[], &[]);
            let issued = resp.status() == 200 && json_body(&resp)["access_token"].is_string();
            match binding {
                Binding::Grant if issued => assert!(bound("grant/"), "tokens for a record not of this grant"),
                Binding::Token if issued => assert!(bound("token/"), "tokens for a record not of this token"),
                _ => {}
            }
        }
        Outcome::Authorized { .. } => {
            assert!(binding == Binding::Token, "authorized outside a bearer check");
            assert!(bound("token/"), "authorized by a record not of this token");
        }
        Outcome::NotHandled(_) => panic!("a provider route was not handled"),
        _ => panic!("unknown outcome"),
    }
}

fn check_error<T>(r: &Result<T, oauth_core::OAuthError>) {
    if let Err(e) = r {
        assert!((400..600).contains(&e.status.as_u16()), "status {}", e.status);
    }
}

fuzz_target!(|input: FuzzInput| {
    let ctx = ctx(input.config);
    let fx = &ctx.fx;
    let budget = input.batches.len() + input.hooks.len() + 64;
    let mut d = Driver {
        ctx,
        store: fx.store.clone(),
        batches: input.batches.into_iter(),
        hooks: input.hooks.into_iter(),
        served: Vec::new(),
        budget,
    };
    let mut w: World = fx.world();
    let now = fx.now;
    let access_tokens = [fx.access.as_str(), fx.old_access.as_str(), fx.post_access.as_str()];
    let all_tokens = [
        fx.access.as_str(),
        fx.old_access.as_str(),
        fx.post_access.as_str(),
        fx.refresh.as_str(),
        fx.old_refresh.as_str(),
        fx.code.as_str(),
        fx.used_code.as_str(),
        "mcp_at_short",
    ];
    let users = ["alice", "bob", "carol", "mallory"];

    let (request, binding) = match input.flow {
        FlowChoice::ExchangeCode { client, used, verifier_ok } => {
            let code = if used { &fx.used_code } else { &fx.code };
            let verifier = if verifier_ok { VERIFIER.to_owned() } else { "x".repeat(43) };
            let (extra, headers) = client_auth(fx, client);
            let body = format!(
                "grant_type=authorization_code&code={code}&code_verifier={verifier}&redirect_uri={}{extra}",
                urlencode(REDIRECT)
            );
            (Some(form("/token", body, headers)), Binding::Grant)
        }
        FlowChoice::Refresh { client, old } => {
            let rt = if old { &fx.old_refresh } else { &fx.refresh };
            let (extra, headers) = client_auth(fx, client);
            (
                Some(form("/token", format!("grant_type=refresh_token&refresh_token={rt}{extra}"), headers)),
                Binding::Grant,
            )
        }
        FlowChoice::TokenExchange { client, token } => {
            let (extra, headers) = client_auth(fx, client);
            let body = format!(
                "grant_type={}&subject_token={}&subject_token_type={}{extra}",
                urlencode(TOKEN_EXCHANGE),
                pick(&access_tokens, token),
                urlencode(ACCESS_TOKEN_TYPE)
            );
            (Some(form("/token", body, headers)), Binding::Token)
        }
        FlowChoice::Revoke { client, token } => {
            let (extra, headers) = client_auth(fx, client);
            (Some(form("/revoke", format!("token={}{extra}", pick(&all_tokens, token)), headers)), Binding::None)
        }
        FlowChoice::Bearer { token } => {
            let req = Request::get(format!("{ISSUER}/mcp"))
                .header("authorization", format!("Bearer {}", pick(&all_tokens, token)))
                .body(Bytes::new())
                .unwrap();
            (Some(req), Binding::Token)
        }
        FlowChoice::Register => {
            let body = serde_json::json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none" });
            let req = Request::post(format!("{ISSUER}/register"))
                .header("content-type", "application/json")
                .body(Bytes::from(serde_json::to_vec(&body).unwrap()))
                .unwrap();
            (Some(req), Binding::None)
        }
        _ => (None, Binding::None),
    };
    if let Some(request) = request {
        let mut flow = w.provider.handle(request, now, &mut w.rng);
        let out = d.run(&mut flow);
        check_outcome(out, binding, &d.served);
        return;
    }

    let p = w.provider.clone();
    match input.flow {
        FlowChoice::ParseAuthorization => {
            let mut flow = p.parse_authorization_request(&authorize_uri(&auth_query(&fx.public.id, REDIRECT)), now);
            let _ = d.run(&mut flow);
        }
        FlowChoice::CompleteAuthorization { user } => {
            let approval =
                oauth_core::Approval::new(pick(&users, user), ctx.request.scope.clone(), Value::String("p".into()));
            let mut flow = p.complete_authorization(&ctx.request, approval, now, &mut w.rng);
            check_error(&d.run(&mut flow));
        }
        FlowChoice::GetClient { client } => check_error(&d.run(&mut p.get_client(client_id(fx, client), now))),
        FlowChoice::ListClients { limit } => check_error(&d.run(&mut p.list_clients(None, u32::from(limit), now))),
        FlowChoice::CreateClient => {
            let mut flow = p.create_client(ClientSpec::new([REDIRECT]), now, &mut w.rng);
            check_error(&d.run(&mut flow));
        }
        FlowChoice::UpdateClient { client, revision } => {
            let spec = ClientSpec::new([REDIRECT, "http://127.0.0.1/cb"]);
            let mut flow = p.update_client(client_id(fx, client), revision % 4, spec, now, &mut w.rng);
            check_error(&d.run(&mut flow));
        }
        FlowChoice::RotateSecret { client, revision } => {
            let mut flow = p.rotate_client_secret(client_id(fx, client), revision % 4, now, &mut w.rng);
            check_error(&d.run(&mut flow));
        }
        FlowChoice::DeleteClient { client } => check_error(&d.run(&mut p.delete_client(client_id(fx, client), now))),
        FlowChoice::ListGrants { user, limit } => {
            check_error(&d.run(&mut p.list_user_grants(pick(&users, user), None, u32::from(limit), now)));
        }
        FlowChoice::RevokeGrant { grant, user } => {
            let ids: Vec<&str> = ctx.grant_ids.iter().map(String::as_str).chain(["00", "zz"]).collect();
            check_error(&d.run(&mut p.revoke_grant(pick(&ids, grant), pick(&users, user), now)));
        }
        FlowChoice::LookupToken { token } => check_error(&d.run(&mut p.lookup_token(pick(&all_tokens, token), now))),
        FlowChoice::Purge { limit } => {
            check_error(&d.run(&mut p.purge_expired(None, u32::from(limit), now.plus(86_400))));
        }
        _ => unreachable!(),
    }
});
