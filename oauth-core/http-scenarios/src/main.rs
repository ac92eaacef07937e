//! Black-box HTTP scenarios for an MCP authorization server.
//!
//! Runs the same expectations against any of the project's example servers
//! (axum, Worker, Lambda), given its base URL. The server must run with the
//! development auto-approve switch for user `demo`, serve the MCP resource at
//! `{base}/mcp` with scopes `todo:read` and `todo:write`, dynamic
//! registration at `/register`, and the echo route `/mcp/echo`.
//!
//! ```text
//! http-scenarios --base-url http://127.0.0.1:8080 [--refresh-policy strict|grace]
//! ```
//!
//! Prints one line per scenario and closes with `N passed, M failed`; exits
//! non-zero when anything failed. Time-dependent behaviour (expiry) is proven
//! by the core's virtual-time tests, not here: black-box tests do not sleep.

use std::io::Read;
use std::process::ExitCode;

use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "scenario-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_owned()
    }

    fn describe(&self) -> String {
        let body: String = self.body.chars().take(300).collect();
        format!("HTTP {} {body}", self.status)
    }
}

#[derive(Clone)]
struct Client {
    id: String,
    secret: Option<String>,
    method: &'static str,
}

struct Tokens {
    access: String,
    refresh: Option<String>,
    body: Value,
}

struct Suite {
    base: String,
    agent: ureq::Agent,
    strict: bool,
    passed: u32,
    failed: u32,
}

type Check = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn challenge(verifier: &str) -> String {
    Base64UrlUnpadded::encode_string(&Sha256::digest(verifier.as_bytes()))
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn query_param(location: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(location).ok()?;
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

impl Suite {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Resp, String> {
        let mut b = http::Request::builder().method(method).uri(self.url(path));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = match body {
            Some((ct, bytes)) => {
                let req = b.header("content-type", ct).body(bytes).map_err(|e| e.to_string())?;
                self.agent.run(req)
            }
            None => {
                let req = b.body(()).map_err(|e| e.to_string())?;
                self.agent.run(req)
            }
        }
        .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let headers =
            resp.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())).collect();
        let mut body = String::new();
        let _ = resp.into_body().into_reader().read_to_string(&mut body);
        Ok(Resp { status, headers, body })
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Resp, String> {
        self.request("GET", path, headers, None)
    }

    fn form(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Result<Resp, String> {
        self.request("POST", path, headers, Some(("application/x-www-form-urlencoded", body.as_bytes().to_vec())))
    }

    fn post_json(&self, path: &str, body: &Value) -> Result<Resp, String> {
        self.request("POST", path, &[], Some(("application/json", body.to_string().into_bytes())))
    }

    fn run(&mut self, name: &str, f: fn(&mut Self) -> Check) {
        match f(self) {
            Ok(()) => {
                self.passed += 1;
                println!("ok   {name}");
            }
            Err(e) => {
                self.failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }

    // ---- building blocks ----------------------------------------------

    fn register(&self, method: &'static str, grants: &[&str]) -> Result<Client, String> {
        let r = self.post_json(
            "/register",
            &json!({
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": method,
                "grant_types": grants,
                "response_types": ["code"],
                "client_name": "scenario client",
            }),
        )?;
        ensure!(r.status == 201, "registration: {}", r.describe());
        let b = r.json();
        Ok(Client {
            id: b["client_id"].as_str().ok_or("no client_id")?.to_owned(),
            secret: b["client_secret"].as_str().map(str::to_owned),
            method,
        })
    }

    fn public_client(&self) -> Result<Client, String> {
        self.register("none", &["authorization_code", "refresh_token"])
    }

    fn authorize_query(client: &str, extra: &str) -> String {
        format!(
            "/authorize?response_type=code&client_id={}&redirect_uri={}&state=st-1&code_challenge={}&code_challenge_method=S256&scope={}{extra}",
            enc(client),
            enc(REDIRECT),
            challenge(VERIFIER),
            enc("todo:read todo:write"),
        )
    }

    /// Authorize (the server auto-approves) and return the code.
    fn code(&self, client: &Client, extra: &str) -> Result<String, String> {
        let r = self.get(&Self::authorize_query(&client.id, extra), &[])?;
        ensure!(r.status == 302 || r.status == 303, "authorize: {}", r.describe());
        let loc = r.header("location").ok_or("authorize: no Location")?;
        ensure!(loc.starts_with(REDIRECT), "authorize redirected elsewhere: {loc}");
        ensure!(query_param(loc, "state").as_deref() == Some("st-1"), "state not returned: {loc}");
        let iss = query_param(loc, "iss").ok_or("no iss (RFC 9207)")?;
        ensure!(iss == self.issuer()?, "iss {iss} is not the issuer");
        query_param(loc, "code").ok_or_else(|| format!("no code in {loc}"))
    }

    fn issuer(&self) -> Result<String, String> {
        let r = self.get("/.well-known/oauth-authorization-server", &[])?;
        r.json()["issuer"].as_str().map(str::to_owned).ok_or_else(|| "no issuer".into())
    }

    fn auth_parts(c: &Client) -> (String, Vec<(String, String)>) {
        match (c.method, &c.secret) {
            ("client_secret_basic", Some(s)) => {
                let raw = base64ct::Base64::encode_string(format!("{}:{}", enc(&c.id), enc(s)).as_bytes());
                (String::new(), vec![("authorization".into(), format!("Basic {raw}"))])
            }
            ("client_secret_post", Some(s)) => (format!("&client_id={}&client_secret={}", enc(&c.id), enc(s)), vec![]),
            _ => (format!("&client_id={}", enc(&c.id)), vec![]),
        }
    }

    fn token(&self, c: &Client, body: &str) -> Result<Resp, String> {
        let (extra, headers) = Self::auth_parts(c);
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.form("/token", &format!("{body}{extra}"), &h)
    }

    fn exchange(&self, c: &Client, code: &str) -> Result<Resp, String> {
        self.token(
            c,
            &format!(
                "grant_type=authorization_code&code={}&code_verifier={VERIFIER}&redirect_uri={}",
                enc(code),
                enc(REDIRECT)
            ),
        )
    }

    fn tokens(&self, c: &Client) -> Result<Tokens, String> {
        let code = self.code(c, "")?;
        let r = self.exchange(c, &code)?;
        ensure!(r.status == 200, "exchange: {}", r.describe());
        Self::parse_tokens(&r)
    }

    fn parse_tokens(r: &Resp) -> Result<Tokens, String> {
        let body = r.json();
        Ok(Tokens {
            access: body["access_token"].as_str().ok_or("no access_token")?.to_owned(),
            refresh: body["refresh_token"].as_str().map(str::to_owned),
            body,
        })
    }

    fn refresh(&self, c: &Client, rt: &str) -> Result<Resp, String> {
        self.token(c, &format!("grant_type=refresh_token&refresh_token={}", enc(rt)))
    }

    fn echo(&self, token: &str) -> Result<Resp, String> {
        self.get("/mcp/echo", &[("authorization", &format!("Bearer {token}"))])
    }

    fn revoke(&self, c: &Client, token: &str) -> Result<Resp, String> {
        let (extra, headers) = Self::auth_parts(c);
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.form("/revoke", &format!("token={}{extra}", enc(token)), &h)
    }
}

// ---- scenarios ---------------------------------------------------------

fn discovery_from_the_401(s: &mut Suite) -> Check {
    let r = s.get("/mcp", &[])?;
    ensure!(r.status == 401, "unauthenticated /mcp: {}", r.describe());
    let www = r.header("www-authenticate").ok_or("no WWW-Authenticate")?.to_owned();
    ensure!(www.starts_with("Bearer ") && !www.contains("error="), "challenge: {www}");
    let prm_url =
        www.split("resource_metadata=\"").nth(1).and_then(|v| v.split('"').next()).ok_or("no resource_metadata")?;
    let prm_path = prm_url.strip_prefix(&s.base).ok_or_else(|| format!("PRM {prm_url} is not on {}", s.base))?;
    ensure!(prm_path == "/.well-known/oauth-protected-resource/mcp", "PRM path {prm_path}");
    let prm = s.get(prm_path, &[])?.json();
    ensure!(prm["resource"] == json!(s.url("/mcp")), "PRM resource {}", prm["resource"]);
    let scopes = prm["scopes_supported"].as_array().cloned().unwrap_or_default();
    ensure!(!scopes.iter().any(|v| v == "offline_access"), "PRM lists offline_access");
    let as_url = prm["authorization_servers"][0].as_str().ok_or("no authorization_servers")?.to_owned();
    let meta = s.get("/.well-known/oauth-authorization-server", &[])?;
    ensure!(meta.status == 200, "AS metadata: {}", meta.describe());
    let m = meta.json();
    ensure!(m["issuer"] == json!(as_url), "issuer {} vs {as_url}", m["issuer"]);
    ensure!(m["code_challenge_methods_supported"] == json!(["S256"]), "PKCE methods");
    ensure!(m["authorization_response_iss_parameter_supported"] == json!(true), "RFC 9207 flag");
    ensure!(m["response_types_supported"] == json!(["code"]), "response types");
    for f in ["authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint"] {
        ensure!(m[f].is_string(), "{f} missing");
    }
    let oidc = s.get("/.well-known/openid-configuration", &[])?.json();
    ensure!(oidc == m, "openid-configuration differs");
    let post = s.form("/.well-known/oauth-authorization-server", "", &[])?;
    ensure!(post.status == 405 && post.header("allow").is_some(), "POST metadata: {}", post.describe());
    Ok(())
}

fn registration_rules(s: &mut Suite) -> Check {
    let ok = s.post_json(
        "/register",
        &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic"}),
    )?;
    ensure!(ok.status == 201, "confidential: {}", ok.describe());
    let b = ok.json();
    ensure!(b["client_secret"].is_string() && b["client_id"].is_string(), "secret returned once: {b}");
    ensure!(ok.header("cache-control") == Some("no-store"), "no-store");
    for (uri, code) in [
        ("javascript:alert(1)", "invalid_redirect_uri"),
        ("data:text/html,hi", "invalid_redirect_uri"),
        ("https://c.example/cb#frag", "invalid_redirect_uri"),
        ("https://user:pw@c.example/cb", "invalid_redirect_uri"),
        ("http://c.example/cb", "invalid_redirect_uri"),
    ] {
        let r = s.post_json("/register", &json!({"redirect_uris": [uri]}))?;
        ensure!(r.status == 400 && r.error() == code, "{uri}: {}", r.describe());
    }
    let bad = s.request("POST", "/register", &[], Some(("application/json", b"{not json".to_vec())))?;
    ensure!(bad.status == 400 && bad.error() == "invalid_client_metadata", "malformed: {}", bad.describe());
    let method = s.post_json(
        "/register",
        &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt_nope"}),
    )?;
    ensure!(method.error() == "invalid_client_metadata", "auth method: {}", method.describe());
    // Over the provider's registration limit (64 KiB by default) but under
    // any adapter's transport limit, so the provider itself must refuse it.
    let huge = json!({"redirect_uris": [REDIRECT], "client_name": "x".repeat(200 * 1024)});
    let r = s.post_json("/register", &huge)?;
    ensure!(
        r.status == 413 || (r.status == 400 && r.error() == "invalid_client_metadata"),
        "oversized: {}",
        r.describe()
    );
    Ok(())
}

fn authorize_errors_never_redirect_before_validation(s: &mut Suite) -> Check {
    let c = s.public_client()?;
    let unknown = s.get(&Suite::authorize_query("no-such-client", ""), &[])?;
    ensure!(unknown.status == 400 && unknown.header("location").is_none(), "unknown client: {}", unknown.describe());
    let q = Suite::authorize_query(&c.id, "").replace(&enc(REDIRECT), &enc("https://attacker.example/cb"));
    let r = s.get(&q, &[])?;
    ensure!(r.status == 400 && r.header("location").is_none(), "unregistered redirect: {}", r.describe());
    Ok(())
}

fn authorize_errors_redirect_with_state_and_iss(s: &mut Suite) -> Check {
    let c = s.public_client()?;
    let issuer = s.issuer()?;
    let cases: [(String, &str); 4] = [
        (
            Suite::authorize_query(&c.id, "").replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            Suite::authorize_query(&c.id, "").replace("code_challenge_method=S256", "code_challenge_method=plain"),
            "invalid_request",
        ),
        (
            format!("/authorize?response_type=code&client_id={}&redirect_uri={}&state=st-1", enc(&c.id), enc(REDIRECT)),
            "invalid_request",
        ),
        (Suite::authorize_query(&c.id, &format!("&resource={}", enc("https://evil.example/"))), "invalid_target"),
    ];
    for (q, code) in cases {
        let r = s.get(&q, &[])?;
        let loc = r.header("location").ok_or_else(|| format!("{q}: no redirect: {}", r.describe()))?;
        ensure!(query_param(loc, "error").as_deref() == Some(code), "{q}: {loc}");
        ensure!(query_param(loc, "state").as_deref() == Some("st-1"), "state: {loc}");
        ensure!(query_param(loc, "iss").as_deref() == Some(issuer.as_str()), "iss: {loc}");
        ensure!(query_param(loc, "code").is_none(), "code on error: {loc}");
    }
    Ok(())
}

fn code_flow_and_echo(s: &mut Suite) -> Check {
    let c = s.public_client()?;
    let code = s.code(&c, "")?;
    let r = s.exchange(&c, &code)?;
    ensure!(r.status == 200, "exchange: {}", r.describe());
    ensure!(r.header("cache-control") == Some("no-store"), "no-store on tokens");
    let t = Suite::parse_tokens(&r)?;
    ensure!(t.body["token_type"].as_str().is_some_and(|v| v.eq_ignore_ascii_case("bearer")), "token_type");
    ensure!(t.body["expires_in"].as_u64().is_some_and(|v| v > 0), "expires_in");
    ensure!(t.refresh.is_some(), "no refresh token for a refresh_token client");
    let e = s.echo(&t.access)?;
    ensure!(e.status == 200, "echo: {}", e.describe());
    let ctx = e.json();
    ensure!(ctx["user_id"] == "demo" && ctx["client_id"] == json!(c.id), "context: {ctx}");
    ensure!(ctx["audience"] == json!(s.url("/mcp")), "audience: {ctx}");
    Ok(())
}

fn confidential_clients(s: &mut Suite) -> Check {
    for method in ["client_secret_basic", "client_secret_post"] {
        let c = s.register(method, &["authorization_code", "refresh_token"])?;
        let t = s.tokens(&c)?;
        ensure!(s.echo(&t.access)?.status == 200, "{method}");
        // Another method than the registered one is refused.
        let other = Client {
            method: if method == "client_secret_basic" { "client_secret_post" } else { "client_secret_basic" },
            ..c.clone()
        };
        let code = s.code(&c, "")?;
        let r = s.exchange(&other, &code)?;
        ensure!(r.status == 401 && r.error() == "invalid_client", "{method} via other method: {}", r.describe());
        let wrong = Client { secret: Some("mcp_cs_wrong".into()), ..c.clone() };
        let r = s.exchange(&wrong, &code)?;
        ensure!(r.status == 401 && r.error() == "invalid_client", "wrong secret: {}", r.describe());
        if method == "client_secret_basic" {
            ensure!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Basic")), "Basic challenge");
        }
        ensure!(s.exchange(&c, &code)?.status == 200, "code consumed by failures");
    }
    Ok(())
}

fn hostile_token_requests(s: &mut Suite) -> Check {
    let c = s.public_client()?;
    let other = s.public_client()?;
    let code = s.code(&c, "")?;
    let base = format!("grant_type=authorization_code&code={}&redirect_uri={}", enc(&code), enc(REDIRECT));
    let cases: Vec<(String, &Client, &str)> = vec![
        (base.clone(), &c, "invalid_request"),
        (format!("{base}&code_verifier={}", "x".repeat(43)), &c, "invalid_grant"),
        (format!("{base}&code_verifier={VERIFIER}&resource={}", enc("https://evil.example/")), &c, "invalid_target"),
        (
            format!(
                "grant_type=authorization_code&code={}&code_verifier={VERIFIER}&redirect_uri={}",
                enc(&code),
                enc("http://127.0.0.1:9/other")
            ),
            &c,
            "invalid_grant",
        ),
        (format!("{base}&code_verifier={VERIFIER}"), &other, "invalid_grant"),
        ("grant_type=password&username=a&password=b".into(), &c, "unsupported_grant_type"),
        ("grant_type=authorization_code&code=garbage&code_verifier=x".into(), &c, "invalid_grant"),
    ];
    for (body, who, code_expected) in cases {
        let r = s.token(who, &body)?;
        ensure!(r.error() == code_expected, "{body}: expected {code_expected}, got {}", r.describe());
        ensure!(r.status == 400 || r.status == 401, "{body}: status {}", r.status);
    }
    // None of the failures consumed the code.
    let r = s.exchange(&c, &code)?;
    ensure!(r.status == 200, "after failures: {}", r.describe());
    let get = s.get("/token", &[])?;
    ensure!(
        get.status == 405 && get.header("allow").is_some_and(|a| a.contains("POST")),
        "GET /token: {}",
        get.describe()
    );
    let json_body = s.post_json("/token", &json!({"grant_type": "authorization_code"}))?;
    ensure!(json_body.status == 400 && json_body.error() == "invalid_request", "JSON body: {}", json_body.describe());
    let mixed = s.form(
        "/token",
        &format!("grant_type=authorization_code&code=x&client_id={}&client_secret=y", enc(&c.id)),
        &[("authorization", "Basic YTpi")],
    )?;
    ensure!(mixed.error() == "invalid_request", "two auth methods: {}", mixed.describe());
    Ok(())
}

fn code_replay_revokes(s: &mut Suite) -> Check {
    let c = s.public_client()?;
    let code = s.code(&c, "")?;
    let t = Suite::parse_tokens(&s.exchange(&c, &code)?)?;
    ensure!(s.echo(&t.access)?.status == 200, "fresh token");
    let replay = s.exchange(&c, &code)?;
    ensure!(replay.error() == "invalid_grant", "replay: {}", replay.describe());
    ensure!(s.echo(&t.access)?.status == 401, "access token survived a code replay");
    let rt = t.refresh.ok_or("no refresh token")?;
    ensure!(s.refresh(&c, &rt)?.error() == "invalid_grant", "refresh token survived a code replay");
    Ok(())
}

fn refresh_rotation(s: &mut Suite) -> Check {
    let c = s.public_client()?;
    let t1 = s.tokens(&c)?;
    let r1 = t1.refresh.ok_or("no refresh token")?;
    let resp = s.refresh(&c, &r1)?;
    ensure!(resp.status == 200, "refresh: {}", resp.describe());
    let t2 = Suite::parse_tokens(&resp)?;
    let r2 = t2.refresh.ok_or("no rotated refresh token")?;
    ensure!(r1 != r2, "refresh token not rotated");
    ensure!(s.echo(&t2.access)?.status == 200, "refreshed access token");
    let narrowed = s.token(&c, &format!("grant_type=refresh_token&refresh_token={}&scope=todo:read", enc(&r2)))?;
    ensure!(narrowed.status == 200 && narrowed.json()["scope"] == "todo:read", "narrowing: {}", narrowed.describe());
    let r3 = Suite::parse_tokens(&narrowed)?.refresh.ok_or("no refresh after narrowing")?;
    let wider = s.token(&c, &format!("grant_type=refresh_token&refresh_token={}&scope=admin", enc(&r3)))?;
    ensure!(wider.error() == "invalid_scope", "widening: {}", wider.describe());
    let reuse = s.refresh(&c, &r1)?;
    if s.strict {
        ensure!(reuse.error() == "invalid_grant", "strict reuse accepted: {}", reuse.describe());
        ensure!(s.refresh(&c, &r3)?.error() == "invalid_grant", "grant survived refresh-token reuse");
        ensure!(s.echo(&t2.access)?.status == 401, "access token survived refresh-token reuse");
    } else {
        // Grace: r1 was displaced twice, so it is no longer accepted.
        ensure!(reuse.error() == "invalid_grant", "grace accepted a token two generations old");
        ensure!(s.refresh(&c, &r3)?.status == 200, "grace: current token refused");
    }
    Ok(())
}

fn revocation(s: &mut Suite) -> Check {
    let c = s.public_client()?;
    let other = s.public_client()?;
    let t = s.tokens(&c)?;
    let r = s.revoke(&other, &t.access)?;
    ensure!(r.status == 200, "other client's revocation answers 200: {}", r.describe());
    ensure!(s.echo(&t.access)?.status == 200, "another client revoked our token");
    ensure!(s.revoke(&c, &t.access)?.status == 200, "revoke access token");
    ensure!(s.echo(&t.access)?.status == 401, "revoked access token still works");
    ensure!(s.revoke(&c, "garbage")?.status == 200, "garbage token revocation must answer 200");

    let t = s.tokens(&c)?;
    let rt = t.refresh.ok_or("no refresh token")?;
    ensure!(s.revoke(&c, &rt)?.status == 200, "revoke refresh token");
    ensure!(s.refresh(&c, &rt)?.error() == "invalid_grant", "revoked refresh token works");
    ensure!(s.echo(&t.access)?.status == 401, "grant's access token survived refresh revocation");

    // RFC 7009 at the token endpoint, as the incumbent accepts it.
    let t = s.tokens(&c)?;
    let r = s.token(&c, &format!("token={}", enc(&t.access)))?;
    ensure!(r.status == 200, "revocation at token endpoint: {}", r.describe());
    ensure!(s.echo(&t.access)?.status == 401, "token endpoint revocation had no effect");
    Ok(())
}

fn bearer_checks(s: &mut Suite) -> Check {
    let c = s.public_client()?;
    let t = s.tokens(&c)?;
    for bad in ["garbage", "mcp_at_AAAA", t.refresh.as_deref().unwrap_or("x")] {
        let r = s.echo(bad)?;
        ensure!(r.status == 401, "{bad}: {}", r.describe());
        ensure!(
            r.header("www-authenticate").is_some_and(|w| w.contains("error=\"invalid_token\"")),
            "{bad}: challenge"
        );
    }
    let mut tampered = t.access.clone();
    let last = tampered.pop().ok_or("empty token")?;
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    ensure!(s.echo(&tampered)?.status == 401, "tampered token accepted");
    let in_query = s.get(&format!("/mcp/echo?access_token={}", enc(&t.access)), &[])?;
    ensure!(in_query.status == 401, "token accepted from the query string");
    let malformed = s.get("/mcp/echo", &[("authorization", "Bearer")])?;
    ensure!(malformed.status == 400 || malformed.status == 401, "malformed header: {}", malformed.describe());
    Ok(())
}

fn cors(s: &mut Suite) -> Check {
    let pre = s.request(
        "OPTIONS",
        "/token",
        &[("origin", "https://app.example"), ("access-control-request-method", "POST")],
        None,
    )?;
    ensure!(pre.status == 204, "preflight: {}", pre.describe());
    ensure!(pre.header("access-control-allow-origin") == Some("https://app.example"), "ACAO on preflight");
    let r = s.get("/mcp", &[("origin", "https://app.example")])?;
    ensure!(r.status == 401, "401 with origin");
    ensure!(r.header("access-control-allow-origin") == Some("https://app.example"), "ACAO on 401");
    ensure!(
        r.header("access-control-expose-headers").is_some_and(|h| h.to_ascii_lowercase().contains("www-authenticate")),
        "WWW-Authenticate not exposed"
    );
    Ok(())
}

fn scopes(s: &mut Suite) -> Check {
    let c = s.public_client()?;
    let q = Suite::authorize_query(&c.id, "").replace(&enc("todo:read todo:write"), "todo:read");
    let r = s.get(&q, &[])?;
    let loc = r.header("location").ok_or("no redirect")?.to_owned();
    let code = query_param(&loc, "code").ok_or_else(|| format!("no code: {loc}"))?;
    let t = Suite::parse_tokens(&s.exchange(&c, &code)?)?;
    ensure!(t.body["scope"] == "todo:read", "granted scope: {}", t.body["scope"]);
    let e = s.echo(&t.access)?.json();
    ensure!(e["scope"] == json!(["todo:read"]), "echo scope: {e}");
    let r = s.get("/mcp/echo?require=todo:write", &[("authorization", &format!("Bearer {}", t.access))])?;
    ensure!(r.status == 403, "insufficient scope: {}", r.describe());
    let www = r.header("www-authenticate").unwrap_or("");
    ensure!(
        www.contains("error=\"insufficient_scope\"")
            && www.contains("scope=\"todo:write\"")
            && www.contains("resource_metadata="),
        "403 challenge: {www}"
    );
    let bad = s.get(&Suite::authorize_query(&c.id, "").replace(&enc("todo:read todo:write"), "admin"), &[])?;
    let loc = bad.header("location").unwrap_or("");
    ensure!(query_param(loc, "error").as_deref() == Some("invalid_scope"), "unknown scope: {}", bad.describe());
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut base = None;
    let mut strict = true;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--base-url" => base = args.next(),
            "--refresh-policy" => strict = args.next().as_deref() != Some("grace"),
            _ => {
                eprintln!("usage: http-scenarios --base-url URL [--refresh-policy strict|grace]");
                return ExitCode::from(2);
            }
        }
    }
    let Some(base) = base else {
        eprintln!("usage: http-scenarios --base-url URL [--refresh-policy strict|grace]");
        return ExitCode::from(2);
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        // A server may close a connection after refusing an oversized body
        // unread; fresh connections keep one scenario from failing the next.
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let mut s = Suite { base: base.trim_end_matches('/').to_owned(), agent, strict, passed: 0, failed: 0 };
    s.run("discovery from the 401", discovery_from_the_401);
    s.run("registration rules", registration_rules);
    s.run("authorize errors never redirect before validation", authorize_errors_never_redirect_before_validation);
    s.run("authorize errors redirect with state and iss", authorize_errors_redirect_with_state_and_iss);
    s.run("code flow and echo", code_flow_and_echo);
    s.run("confidential clients", confidential_clients);
    s.run("hostile token requests", hostile_token_requests);
    s.run("code replay revokes", code_replay_revokes);
    s.run("refresh rotation", refresh_rotation);
    s.run("revocation", revocation);
    s.run("bearer checks", bearer_checks);
    s.run("cors", cors);
    s.run("scopes", scopes);
    println!("{} passed, {} failed", s.passed, s.failed);
    if s.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
