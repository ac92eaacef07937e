//! Shared setup for the oauth-core fuzz targets.
//!
//! Every target drives the public API only: a [`Provider`], the in-memory
//! store, a seeded generator and a virtual clock. The [`Fixture`] is a store
//! with real clients, grants and tokens, built once per process and cloned
//! for every input, so each input starts from the same state.
//!
//! Seed files are plain text. They name the fixture's credentials through
//! placeholders (`$PUB`, `$CODE`, `$AT`, ...; see [`Fixture::expand`]) that
//! are replaced before the input is used, so the fuzzer can reach the paths
//! behind a valid credential without guessing 256-bit secrets, and the seeds
//! stay valid when the fixture's random draws change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::OnceLock;

use base64ct::Encoding;
use bytes::Bytes;
use http::{Request, Response};
use oauth_core::testing::{MemoryStore, SeededRng};
use oauth_core::{
    Approval, AuthorizationError, AuthorizationRequest, CompletedAuthorization, ErrorCode, Outcome, ProtectedResource,
    Provider, ProviderBuilder, UnixTime, drive_blocking,
};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://as.example.com";
pub const RESOURCE: &str = "https://as.example.com/mcp";
pub const REDIRECT: &str = "https://client.example/cb";
pub const LOOPBACK_REDIRECT: &str = "http://127.0.0.1/callback";
pub const T0: u64 = 1_800_000_000;
/// RFC 7636 Appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The configuration most targets use: one resource, a scope catalogue with
/// an implication, token exchange on.
pub fn builder() -> ProviderBuilder {
    ProviderBuilder::new(ISSUER)
        .resource(
            ProtectedResource::new(RESOURCE).unwrap().scopes_supported(["todo:read", "todo:write"]).name("Todo MCP"),
        )
        .scopes_supported(["todo:read", "todo:write", "offline_access"])
        .scope_implies("todo:write", ["todo:read"])
        .token_exchange(true)
}

/// A provider, a store, a generator and a clock.
pub struct World {
    pub provider: Provider,
    pub store: MemoryStore,
    pub rng: SeededRng,
    pub now: UnixTime,
}

impl World {
    pub fn new(provider: Provider, seed: u64) -> Self {
        Self { provider, store: MemoryStore::new(), rng: SeededRng::new(seed), now: UnixTime::from_secs(T0) }
    }

    pub fn send(&mut self, req: Request<Bytes>) -> Outcome {
        let mut flow = self.provider.handle(req, self.now, &mut self.rng);
        drive_blocking(&mut flow, &mut self.store, |c| c.default_reply())
    }

    pub fn respond(&mut self, req: Request<Bytes>) -> Response<Bytes> {
        match self.send(req) {
            Outcome::Response(r) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    pub fn post(&mut self, path: &str, content_type: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Response<Bytes> {
        let mut b = Request::post(format!("{ISSUER}{path}")).header("content-type", content_type);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.respond(b.body(Bytes::from(body)).unwrap())
    }

    pub fn post_form(&mut self, path: &str, body: &str) -> Response<Bytes> {
        self.post(path, "application/x-www-form-urlencoded", body.as_bytes().to_vec(), &[])
    }

    pub fn register(&mut self, metadata: &Value) -> Response<Bytes> {
        self.post("/register", "application/json", serde_json::to_vec(metadata).unwrap(), &[])
    }

    pub fn parse(&mut self, uri: &http::Uri) -> Result<AuthorizationRequest, AuthorizationError> {
        let mut flow = self.provider.parse_authorization_request(uri, self.now);
        drive_blocking(&mut flow, &mut self.store, |c| c.default_reply())
    }

    pub fn complete(
        &mut self,
        req: &AuthorizationRequest,
        user: &str,
    ) -> Result<CompletedAuthorization, oauth_core::OAuthError> {
        let approval = Approval::new(user, req.scope.clone(), json!({ "user": user, "upstream": "upstream-secret" }));
        let mut flow = self.provider.complete_authorization(req, approval, self.now, &mut self.rng);
        drive_blocking(&mut flow, &mut self.store, |c| c.default_reply())
    }
}

/// The standard authorization query for `client_id`.
pub fn auth_query(client_id: &str, redirect: &str) -> String {
    format!(
        "response_type=code&client_id={}&redirect_uri={}&state=xyz&code_challenge={CHALLENGE}&code_challenge_method=S256&scope=todo:read%20todo:write",
        urlencode(client_id),
        urlencode(redirect)
    )
}

pub fn authorize_uri(query: &str) -> http::Uri {
    format!("{ISSUER}/authorize?{query}").parse().unwrap()
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn json_body(resp: &Response<Bytes>) -> Value {
    serde_json::from_slice(resp.body()).unwrap_or(Value::Null)
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The non-empty values of a form body, as the server reads them (RFC 6749
/// §3.1: empty values count as absent).
pub fn form_values(body: &[u8], name: &str) -> Vec<String> {
    form_urlencoded::parse(body).filter(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.into_owned()).collect()
}

/// A registered client.
#[derive(Clone, Debug)]
pub struct FixtureClient {
    pub id: String,
    pub secret: Option<String>,
    pub redirect_uris: Vec<String>,
}

/// A store holding three clients, a pending code, a redeemed code and a
/// rotated refresh-token chain, with the credentials that go with them.
#[derive(Clone)]
pub struct Fixture {
    pub provider: Provider,
    pub store: MemoryStore,
    pub now: UnixTime,
    /// Public client (`none`), registered for every grant type.
    pub public: FixtureClient,
    /// Confidential client (`client_secret_post`).
    pub post: FixtureClient,
    /// Confidential client (`client_secret_basic`).
    pub basic: FixtureClient,
    /// A pending code of the public client (user bob), challenge [`CHALLENGE`].
    pub code: String,
    /// The public client's code that was exchanged (user alice).
    pub used_code: String,
    /// The public client's current refresh token (alice's grant).
    pub refresh: String,
    /// The refresh token `refresh` replaced.
    pub old_refresh: String,
    /// Access token from the refresh.
    pub access: String,
    /// Access token from the code exchange (still live).
    pub old_access: String,
    /// An access token of the `post` client (carol's grant).
    pub post_access: String,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

impl Fixture {
    /// The process-wide fixture.
    pub fn get() -> &'static Self {
        FIXTURE.get_or_init(|| Self::build(builder().build().unwrap()))
    }

    /// Build the fixture's state through the public API.
    pub fn build(provider: Provider) -> Self {
        let mut w = World::new(provider, 1);
        let public = register(&mut w, "none");
        let post = register(&mut w, "client_secret_post");
        let basic = register(&mut w, "client_secret_basic");

        // alice: code → tokens → one refresh.
        let used_code = authorize(&mut w, &public.id, "alice");
        let first = exchange(&mut w, &public, &used_code);
        let old_access = first["access_token"].as_str().unwrap().to_owned();
        let old_refresh = first["refresh_token"].as_str().unwrap().to_owned();
        let resp = w.post_form(
            "/token",
            &format!("grant_type=refresh_token&refresh_token={old_refresh}&client_id={}", public.id),
        );
        assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
        let second = json_body(&resp);
        let access = second["access_token"].as_str().unwrap().to_owned();
        let refresh = second["refresh_token"].as_str().unwrap().to_owned();

        // carol, through the confidential client.
        let carol_code = authorize(&mut w, &post.id, "carol");
        let carol = exchange(&mut w, &post, &carol_code);
        let post_access = carol["access_token"].as_str().unwrap().to_owned();

        // bob: a code still pending.
        let code = authorize(&mut w, &public.id, "bob");
        Self {
            provider: w.provider,
            store: w.store,
            now: w.now,
            public,
            post,
            basic,
            code,
            used_code,
            refresh,
            old_refresh,
            access,
            old_access,
            post_access,
        }
    }

    /// A world in the fixture's state, with its own generator.
    pub fn world(&self) -> World {
        World { provider: self.provider.clone(), store: self.store.clone(), rng: SeededRng::new(2), now: self.now }
    }

    /// The `Authorization: Basic` value of the basic client.
    pub fn basic_credentials(&self) -> String {
        let raw = format!("{}:{}", urlencode(&self.basic.id), urlencode(self.basic.secret.as_deref().unwrap()));
        base64ct::Base64::encode_string(raw.as_bytes())
    }

    /// Placeholders and their values, longest name first.
    pub fn placeholders(&self) -> Vec<(&'static str, String)> {
        vec![
            ("$CHALLENGE", CHALLENGE.to_owned()),
            ("$REDIRECT", urlencode(REDIRECT)),
            ("$LOOPBACK", urlencode(LOOPBACK_REDIRECT)),
            ("$VERIFIER", VERIFIER.to_owned()),
            ("$USEDCODE", self.used_code.clone()),
            ("$RESOURCE", urlencode(RESOURCE)),
            ("$POSTAT", self.post_access.clone()),
            ("$BCLIENT", self.basic.id.clone()),
            ("$SECRET", self.post.secret.clone().unwrap()),
            ("$OLDRT", self.old_refresh.clone()),
            ("$OLDAT", self.old_access.clone()),
            ("$BASIC", self.basic_credentials()),
            ("$CONF", self.post.id.clone()),
            ("$CODE", self.code.clone()),
            ("$PUB", self.public.id.clone()),
            ("$TX", urlencode(TOKEN_EXCHANGE)),
            ("$ATT", urlencode(ACCESS_TOKEN_TYPE)),
            ("$AT", self.access.clone()),
            ("$RT", self.refresh.clone()),
        ]
    }

    /// Replace every placeholder in `input`.
    pub fn expand(&self, input: &[u8]) -> Vec<u8> {
        let table = self.placeholders();
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut i = 0;
        'outer: while i < input.len() {
            if input[i] == b'$' {
                for (name, value) in &table {
                    if input[i..].starts_with(name.as_bytes()) {
                        out.extend_from_slice(value.as_bytes());
                        i += name.len();
                        continue 'outer;
                    }
                }
            }
            out.push(input[i]);
            i += 1;
        }
        out
    }

    /// Every secret the fixture holds.
    pub fn secrets(&self) -> Vec<String> {
        let mut v = vec![
            self.code.clone(),
            self.used_code.clone(),
            self.refresh.clone(),
            self.old_refresh.clone(),
            self.access.clone(),
            self.old_access.clone(),
            self.post_access.clone(),
            "upstream-secret".to_owned(),
        ];
        v.extend(self.post.secret.clone());
        v.extend(self.basic.secret.clone());
        v
    }

    /// The fixture's client with `id`.
    pub fn client(&self, id: &str) -> Option<&FixtureClient> {
        [&self.public, &self.post, &self.basic].into_iter().find(|c| c.id == id)
    }
}

fn register(w: &mut World, method: &str) -> FixtureClient {
    let redirect_uris =
        vec![REDIRECT.to_owned(), LOOPBACK_REDIRECT.to_owned(), "http://localhost:8080/cb?x=1".to_owned()];
    let resp = w.register(&json!({
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": method,
        "grant_types": ["authorization_code", "refresh_token", TOKEN_EXCHANGE],
        "client_name": "Fuzz Client",
    }));
    assert_eq!(resp.status(), 201, "{}", String::from_utf8_lossy(resp.body()));
    let body = json_body(&resp);
    FixtureClient {
        id: body["client_id"].as_str().unwrap().to_owned(),
        secret: body["client_secret"].as_str().map(str::to_owned),
        redirect_uris,
    }
}

fn authorize(w: &mut World, client_id: &str, user: &str) -> String {
    let req = w.parse(&authorize_uri(&auth_query(client_id, REDIRECT))).unwrap();
    let done = w.complete(&req, user).unwrap();
    query_param(&done.redirect_to, "code").unwrap()
}

fn exchange(w: &mut World, client: &FixtureClient, code: &str) -> Value {
    let mut body = format!(
        "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&redirect_uri={}&client_id={}",
        urlencode(REDIRECT),
        urlencode(&client.id)
    );
    if let Some(s) = &client.secret {
        body.push_str(&format!("&client_secret={}", urlencode(s)));
    }
    let resp = w.post_form("/token", &body);
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    json_body(&resp)
}

/// Header names and raw values, in order.
pub type Headers = Vec<(String, Vec<u8>)>;

/// Split `input` into header lines and a body at the first blank line.
/// Without a blank line the whole input is the body and `None` is returned
/// for the headers.
pub fn split_request(input: &[u8]) -> (Option<Headers>, &[u8]) {
    let Some(at) = input.windows(2).position(|w| w == b"\n\n") else {
        return (None, input);
    };
    let (head, body) = (&input[..at], &input[at + 2..]);
    let headers = head
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|b| *b == b':')?;
            let name = String::from_utf8_lossy(&line[..colon]).trim().to_ascii_lowercase();
            let mut value = &line[colon + 1..];
            while let [b' ', rest @ ..] = value {
                value = rest;
            }
            Some((name, value.to_vec()))
        })
        .collect();
    (Some(headers), body)
}

/// Build a request from fuzzer-chosen parts; `None` when `http` refuses a
/// header name or value (no server would ever see such a request).
pub fn build_request(method: &str, path: &str, headers: &[(String, Vec<u8>)], body: Vec<u8>) -> Option<Request<Bytes>> {
    let mut b = Request::builder().method(method).uri(format!("{ISSUER}{path}"));
    for (k, v) in headers {
        let name = http::header::HeaderName::from_bytes(k.as_bytes()).ok()?;
        let value = http::header::HeaderValue::from_bytes(v).ok()?;
        b = b.header(name, value);
    }
    b.body(Bytes::from(body)).ok()
}

/// Checks every provider response must pass, whatever the input.
///
/// * An error status carries an RFC 6749 §5.2 JSON body with a registered
///   error code (`404` on unknown well-known paths, and a bare `401`
///   challenge to a request without credentials, excepted), and a 503 says
///   when to retry.
/// * No secret the server holds appears in a response unless the request
///   itself carried it (parameter names are echoed in some descriptions).
pub fn check_response(resp: &Response<Bytes>, request_bytes: &[u8], secrets: &[String]) {
    let status = resp.status().as_u16();
    // RFC 6750 §3.1: a request without credentials gets a bare challenge.
    let bare_challenge = status == 401 && resp.body().is_empty() && resp.headers().contains_key("www-authenticate");
    if status >= 400 && status != 404 && !bare_challenge {
        let body = json_body(resp);
        let code = body["error"].as_str().unwrap_or_else(|| panic!("error response without error code: {resp:?}"));
        assert!(ErrorCode::parse(code).is_some(), "unregistered error code {code}");
        if status == 503 {
            assert!(resp.headers().contains_key("retry-after"), "503 without Retry-After");
        }
        if status == 500 {
            assert_eq!(code, "server_error");
        }
    }
    let request_text = String::from_utf8_lossy(request_bytes);
    let body_text = String::from_utf8_lossy(resp.body());
    for s in secrets {
        if request_text.contains(s.as_str()) {
            continue;
        }
        assert!(!body_text.contains(s.as_str()), "response body leaks a secret");
        for (name, v) in resp.headers() {
            assert!(!String::from_utf8_lossy(v.as_bytes()).contains(s.as_str()), "header {name} leaks a secret");
        }
    }
}

/// Whether `location` sends the user agent to one of `registered`: same
/// scheme, host and path, its query extending the registered one, and the
/// same port unless the registered URI is a loopback one (RFC 8252 §7.3).
pub fn targets_registered(location: &str, registered: &[String]) -> bool {
    let Ok(loc) = url::Url::parse(location) else { return false };
    registered.iter().any(|r| {
        let Ok(reg) = url::Url::parse(r) else { return false };
        let loopback = reg.host().is_some_and(|h| oauth_core::resource::is_loopback_host(&h));
        loc.scheme() == reg.scheme()
            && loc.host_str().map(str::to_ascii_lowercase) == reg.host_str().map(str::to_ascii_lowercase)
            && loc.path() == reg.path()
            && (loopback || loc.port_or_known_default() == reg.port_or_known_default())
            && reg.query().is_none_or(|q| loc.query().is_some_and(|lq| lq.starts_with(q)))
    })
}
