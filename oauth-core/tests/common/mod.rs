//! A deterministic harness for scenario tests: a provider, the in-memory
//! store, a seeded generator and a virtual clock. Nothing sleeps; time moves
//! only when a test says so.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::result_large_err)]

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use oauth_core::testing::{MemoryStore, SeededRng};
use oauth_core::{
    Approval, AuthContext, AuthorizationError, AuthorizationRequest, CompletedAuthorization, FlowStats, HookCall,
    HookReply, Outcome, ProtectedResource, Provider, ProviderBuilder, UnixTime, drive_blocking,
};
use serde_json::Value;

pub const ISSUER: &str = "https://as.example.com";
pub const RESOURCE: &str = "https://as.example.com/mcp";
pub const REDIRECT: &str = "https://client.example/cb";
pub const T0: u64 = 1_800_000_000;

/// An RFC 7636-valid verifier and its S256 challenge.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub type Hook = Box<dyn FnMut(HookCall) -> HookReply>;

pub struct Harness {
    pub provider: Provider,
    pub store: MemoryStore,
    pub rng: SeededRng,
    pub now: UnixTime,
    pub hook: Hook,
    pub last_stats: FlowStats,
}

/// The builder most tests start from: one resource at /mcp with two scopes.
pub fn builder() -> ProviderBuilder {
    ProviderBuilder::new(ISSUER)
        .resource(
            ProtectedResource::new(RESOURCE).unwrap().scopes_supported(["todo:read", "todo:write"]).name("Todo MCP"),
        )
        .scopes_supported(["todo:read", "todo:write", "offline_access"])
        .scope_implies("todo:write", ["todo:read"])
}

pub struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
    pub body: Value,
}

pub struct Client {
    pub id: String,
    pub secret: Option<String>,
    pub method: String,
}

impl Harness {
    pub fn new(builder: ProviderBuilder) -> Self {
        Self {
            provider: builder.build().unwrap(),
            store: MemoryStore::new(),
            rng: SeededRng::new(7),
            now: UnixTime::from_secs(T0),
            hook: Box::new(|c| c.default_reply()),
            last_stats: FlowStats::default(),
        }
    }

    pub fn default() -> Self {
        Self::new(builder())
    }

    pub fn advance(&mut self, secs: u64) {
        self.now = self.now.plus(secs);
    }

    pub fn send(&mut self, req: Request<Bytes>) -> Outcome {
        let mut flow = self.provider.handle(req, self.now, &mut self.rng);
        let hook = &mut self.hook;
        let out = drive_blocking(&mut flow, &mut self.store, &mut **hook);
        self.last_stats = flow.stats();
        out
    }

    pub fn respond(&mut self, req: Request<Bytes>) -> Response<Bytes> {
        match self.send(req) {
            Outcome::Response(r) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    pub fn post_form(&mut self, path: &str, body: &str, headers: &[(&str, &str)]) -> Response<Bytes> {
        let mut b =
            Request::post(format!("{ISSUER}{path}")).header("content-type", "application/x-www-form-urlencoded");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.respond(b.body(Bytes::from(body.to_owned())).unwrap())
    }

    pub fn post_json(&mut self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Response<Bytes> {
        let mut b = Request::post(format!("{ISSUER}{path}")).header("content-type", "application/json");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.respond(b.body(Bytes::from(serde_json::to_vec(body).unwrap())).unwrap())
    }

    /// GET a path with an optional bearer token.
    pub fn get(&mut self, path: &str, bearer: Option<&str>) -> Outcome {
        let mut b = Request::get(format!("{ISSUER}{path}"));
        if let Some(t) = bearer {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        self.send(b.body(Bytes::new()).unwrap())
    }

    /// The authenticated context, or the refusal response.
    pub fn call_api(&mut self, token: &str) -> Result<AuthContext, Response<Bytes>> {
        match self.get("/mcp", Some(token)) {
            Outcome::Authorized { auth, .. } => Ok(auth),
            Outcome::Response(r) => Err(r),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Register a client through RFC 7591.
    pub fn register(&mut self, metadata: Value) -> Response<Bytes> {
        self.post_json("/register", &metadata, &[])
    }

    pub fn register_client(&mut self, method: &str) -> Client {
        let resp = self.register(serde_json::json!({
            "redirect_uris": [REDIRECT, "http://127.0.0.1/callback"],
            "token_endpoint_auth_method": method,
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "Test Client",
        }));
        assert_eq!(resp.status(), StatusCode::CREATED, "{}", String::from_utf8_lossy(resp.body()));
        let body = json(&resp);
        Client {
            id: body["client_id"].as_str().unwrap().to_owned(),
            secret: body["client_secret"].as_str().map(str::to_owned),
            method: method.to_owned(),
        }
    }

    pub fn parse(&mut self, query: &str) -> Result<AuthorizationRequest, AuthorizationError> {
        let uri: http::Uri = format!("{ISSUER}/authorize?{query}").parse().unwrap();
        let mut flow = self.provider.parse_authorization_request(&uri, self.now);
        let hook = &mut self.hook;
        drive_blocking(&mut flow, &mut self.store, &mut **hook)
    }

    pub fn complete(&mut self, req: &AuthorizationRequest, approval: Approval) -> CompletedAuthorization {
        let mut flow = self.provider.complete_authorization(req, approval, self.now, &mut self.rng);
        let hook = &mut self.hook;
        drive_blocking(&mut flow, &mut self.store, &mut **hook).unwrap()
    }

    /// The standard authorization query for `client` (state `xyz`).
    pub fn auth_query(client: &str) -> String {
        format!(
            "response_type=code&client_id={client}&redirect_uri={}&state=xyz&code_challenge={CHALLENGE}&code_challenge_method=S256&scope=todo:read%20todo:write",
            urlencode(REDIRECT)
        )
    }

    /// Authorize `client` for `user` and return the code.
    pub fn authorize(&mut self, client: &str, user: &str) -> String {
        let req = self.parse(&Self::auth_query(client)).unwrap();
        let scope = req.scope.clone();
        let done = self.complete(
            &req,
            Approval::new(user, scope, serde_json::json!({"user": user, "upstream": "secret-upstream-token"})),
        );
        query_param(&done.redirect_to, "code").unwrap()
    }

    /// Client-authentication parameters and headers for a token request.
    pub fn client_auth(client: &Client) -> (String, Vec<(String, String)>) {
        match (client.method.as_str(), &client.secret) {
            ("client_secret_basic", Some(s)) => {
                use base64ct::Encoding;
                let raw =
                    base64ct::Base64::encode_string(format!("{}:{}", urlencode(&client.id), urlencode(s)).as_bytes());
                (String::new(), vec![("authorization".into(), format!("Basic {raw}"))])
            }
            ("client_secret_post", Some(s)) => {
                (format!("&client_id={}&client_secret={}", urlencode(&client.id), urlencode(s)), vec![])
            }
            _ => (format!("&client_id={}", urlencode(&client.id)), vec![]),
        }
    }

    pub fn token_request(&mut self, client: &Client, body: &str) -> Response<Bytes> {
        let (extra, headers) = Self::client_auth(client);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.post_form("/token", &format!("{body}{extra}"), &headers)
    }

    pub fn exchange_code(&mut self, client: &Client, code: &str) -> Response<Bytes> {
        self.token_request(
            client,
            &format!(
                "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&redirect_uri={}",
                urlencode(REDIRECT)
            ),
        )
    }

    pub fn refresh(&mut self, client: &Client, refresh: &str) -> Response<Bytes> {
        self.token_request(client, &format!("grant_type=refresh_token&refresh_token={refresh}"))
    }

    /// Register, authorize and exchange: a fresh token set.
    pub fn tokens_for(&mut self, client: &Client, user: &str) -> Tokens {
        let code = self.authorize(&client.id, user);
        let resp = self.exchange_code(client, &code);
        assert_eq!(resp.status(), StatusCode::OK, "{}", String::from_utf8_lossy(resp.body()));
        tokens(&resp)
    }
}

pub fn tokens(resp: &Response<Bytes>) -> Tokens {
    let body = json(resp);
    Tokens {
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().map(str::to_owned),
        body,
    }
}

pub fn json(resp: &Response<Bytes>) -> Value {
    serde_json::from_slice(resp.body()).unwrap_or(Value::Null)
}

pub fn error_code(resp: &Response<Bytes>) -> String {
    json(resp)["error"].as_str().unwrap_or("").to_owned()
}

pub fn header(resp: &Response<Bytes>, name: &str) -> String {
    resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}
