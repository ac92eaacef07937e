//! Real-client interop: the OAuth support of `rmcp`, the Rust MCP SDK,
//! against any of the project's example servers.
//!
//! ```text
//! interop-rmcp --base-url http://127.0.0.1:8080
//! ```
//!
//! The server must run with the development auto-approve switch for user
//! `demo`, serve the MCP resource at `{base}/mcp` (scopes `todo:read`,
//! `todo:write`, a `whoami` tool) and the echo route `{base}/mcp/echo`.
//!
//! rmcp does the protocol work, as it would for an MCP host: it meets the
//! 401 of an unauthenticated MCP request, discovers the protected-resource
//! (RFC 9728) and authorization-server (RFC 8414) metadata from the
//! challenge, registers dynamically (RFC 7591), builds the PKCE
//! authorization URL, validates the callback's `state` and RFC 9207 `iss`,
//! exchanges the code, connects an MCP client over streamable HTTP with the
//! token, refreshes through its refresh API and recovers from a revoked
//! access token by refreshing. The stand-ins are the user agent (a GET of the
//! authorization URL that reads the redirect instead of following it) and
//! revocation, which rmcp has no API for: a plain RFC 7009 POST.
//!
//! The steps depend on each other and run in order; after a failure the rest
//! are reported as not run. Prints one line per step and closes with
//! `N passed, M failed`; exits non-zero when anything failed.

use std::error::Error as StdError;
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use oauth2::TokenResponse as _;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{ClientInitializeError, RunningService};
use rmcp::transport::auth::{AuthError, AuthorizationCallback, OAuthState, OAuthTokenResponse};
use rmcp::transport::streamable_http_client::{AuthRequiredError, StreamableHttpClientTransportConfig};
use rmcp::transport::{AuthClient, AuthorizationRequest, StreamableHttpClientTransport};
use rmcp::{RoleClient, ServiceExt as _};
use serde_json::Value;

/// Never contacted: the authorization redirect is read, not followed.
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
const SCOPES: [&str; 2] = ["todo:read", "todo:write"];
/// Bound on every step; a hung request fails its step instead of the run.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

type Check = Result<(), String>;
type McpClient = RunningService<RoleClient, ()>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Where the flow stands between steps.
struct Flow {
    base: String,
    mcp_url: String,
    http: reqwest::Client,
    issuer: String,
    challenge: Option<String>,
    oauth: Option<OAuthState>,
    authorization_url: Option<url::Url>,
    callback: Option<String>,
    client_id: String,
    auth: Option<AuthClient<reqwest::Client>>,
    mcp: Option<McpClient>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The error and its sources, for messages.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// The `WWW-Authenticate` challenge of a 401 somewhere in `e`'s sources.
fn find_challenge(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(s) = cur {
        if let Some(auth) = s.downcast_ref::<AuthRequiredError>() {
            return Some(auth.www_authenticate_header.clone());
        }
        cur = s.source();
    }
    None
}

/// RFC 8414 §3.1 / RFC 9728 §3.1: `/.well-known/{name}` goes between the
/// origin and the path of `url` (`https://h/p/mcp` ->
/// `https://h/.well-known/{name}/p/mcp`).
fn well_known(url: &str, name: &str) -> Result<String, String> {
    let u = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    Ok(format!("{}/.well-known/{name}{}", u.origin().ascii_serialization(), u.path().trim_end_matches('/')))
}

fn tokens(resp: &OAuthTokenResponse) -> (String, Option<String>) {
    (resp.access_token().secret().clone(), resp.refresh_token().map(|r| r.secret().clone()))
}

impl Flow {
    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let r = self.http.get(url).send().await.map_err(err)?;
        let status = r.status();
        let body = r.text().await.map_err(err)?;
        ensure!(status == 200, "GET {url}: HTTP {status} {body}");
        serde_json::from_str(&body).map_err(err)
    }

    /// `GET /mcp/echo` with `token`: the status.
    async fn echo_status(&self, token: &str) -> Result<u16, String> {
        let r = self.http.get(format!("{}/mcp/echo", self.base)).bearer_auth(token).send().await.map_err(err)?;
        Ok(r.status().as_u16())
    }

    /// RFC 7009 revocation as a public client (rmcp has no revocation API).
    async fn revoke(&self, token: &str, hint: &str) -> Check {
        let meta = self.get_json(&well_known(&self.issuer, "oauth-authorization-server")?).await?;
        let endpoint = meta["revocation_endpoint"].as_str().ok_or("no revocation_endpoint")?.to_owned();
        let r = self
            .http
            .post(endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("token", token)
                    .append_pair("token_type_hint", hint)
                    .append_pair("client_id", &self.client_id)
                    .finish(),
            )
            .send()
            .await
            .map_err(err)?;
        let status = r.status();
        let body = r.text().await.map_err(err)?;
        ensure!(status == 200, "revoke ({hint}): HTTP {status} {body}");
        Ok(())
    }

    fn auth(&self) -> Result<&AuthClient<reqwest::Client>, String> {
        self.auth.as_ref().ok_or_else(|| "no authorized client".to_owned())
    }

    async fn current_tokens(&self) -> Result<(String, Option<String>), String> {
        let (_, creds) = self.auth()?.auth_manager.lock().await.get_credentials().await.map_err(err)?;
        creds.as_ref().map(tokens).ok_or_else(|| "rmcp holds no tokens".to_owned())
    }

    async fn whoami(&self) -> Result<Value, String> {
        let mcp = self.mcp.as_ref().ok_or("no MCP client")?;
        let result = mcp.call_tool(CallToolRequestParams::new("whoami")).await.map_err(|e| chain(&e))?;
        ensure!(result.is_error != Some(true), "whoami failed: {:?}", result.content);
        result.structured_content.ok_or_else(|| "whoami returned no structured content".to_owned())
    }
}

// ---------------------------------------------------------------- steps

/// rmcp's plain transport meets the 401 and surfaces its challenge.
async fn unauthenticated_connect(f: &mut Flow) -> Check {
    let transport = StreamableHttpClientTransport::from_uri(f.mcp_url.as_str());
    match ().serve(transport).await {
        Ok(client) => {
            let _ = client.cancel().await;
            Err("an MCP client connected without a token".into())
        }
        Err(e) => {
            // The transport error is a field, not a `source`, of the
            // initialize error: look inside it.
            let found = match &e {
                ClientInitializeError::TransportError { error, .. } => find_challenge(error),
                other => find_challenge(other),
            };
            let challenge = found.ok_or_else(|| format!("no 401 challenge in: {}", chain(&e)))?;
            ensure!(challenge.to_ascii_lowercase().starts_with("bearer "), "challenge {challenge:?}");
            ensure!(challenge.contains("resource_metadata="), "no resource_metadata in {challenge:?}");
            f.challenge = Some(challenge);
            Ok(())
        }
    }
}

/// OAuthState: discovery from the challenge, DCR, the authorization URL.
async fn start_authorization(f: &mut Flow) -> Check {
    let mut state = OAuthState::new(f.mcp_url.as_str(), None).await.map_err(err)?;
    let mut request =
        AuthorizationRequest::new(REDIRECT_URI).with_scopes(SCOPES).with_client_name("rmcp interop (oauth-core)");
    if let Some(challenge) = &f.challenge {
        request = request.with_challenge(challenge.clone());
    }
    state.start_authorization(request).await.map_err(|e| chain(&e))?;
    let url = url::Url::parse(&state.get_authorization_url().await.map_err(err)?).map_err(err)?;
    let q = |k: &str| url.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
    ensure!(q("response_type").as_deref() == Some("code"), "response_type in {url}");
    ensure!(q("code_challenge_method").as_deref() == Some("S256"), "no S256 challenge in {url}");
    ensure!(q("code_challenge").is_some_and(|c| c.len() == 43), "code_challenge in {url}");
    ensure!(q("state").is_some(), "no state in {url}");
    ensure!(q("resource").as_deref() == Some(f.mcp_url.as_str()), "resource {:?} in {url}", q("resource"));
    let scope = q("scope").unwrap_or_default();
    ensure!(SCOPES.iter().all(|s| scope.split(' ').any(|x| x == *s)), "scope {scope:?}");
    f.client_id = q("client_id").ok_or("no client_id: registration did not happen")?;
    let (client_id, _) = state.get_credentials().await.map_err(err)?;
    ensure!(client_id == f.client_id, "registered client {client_id} is not the URL's {}", f.client_id);
    f.authorization_url = Some(url);
    f.oauth = Some(state);
    Ok(())
}

/// The user agent: GET the authorization URL, read the redirect.
async fn user_agent(f: &mut Flow) -> Check {
    let url = f.authorization_url.clone().ok_or("no authorization URL")?;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HTTP_TIMEOUT)
        .build()
        .map_err(err)?;
    let r = no_redirects.get(url.as_str()).send().await.map_err(err)?;
    let status = r.status().as_u16();
    let location = r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    ensure!(matches!(status, 302 | 303), "authorize: HTTP {status} {}", r.text().await.unwrap_or_default());
    let location = location.ok_or("no Location")?;
    ensure!(location.starts_with(&format!("{REDIRECT_URI}?")), "redirected elsewhere: {location}");
    let cb = AuthorizationCallback::from_redirect_url(&location).map_err(err)?;
    let sent_state = url.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned());
    ensure!(Some(&cb.csrf_token) == sent_state.as_ref(), "state did not round-trip");
    ensure!(cb.issuer.as_deref() == Some(f.issuer.as_str()), "iss {:?} is not {}", cb.issuer, f.issuer);
    f.callback = Some(location);
    Ok(())
}

/// rmcp checks RFC 9207 `iss` before it spends the code.
async fn foreign_iss_refused(f: &mut Flow) -> Check {
    let callback = f.callback.clone().ok_or("no callback")?;
    let cb = AuthorizationCallback::from_redirect_url(&callback).map_err(err)?;
    let state = f.oauth.as_mut().ok_or("no OAuth state")?;
    match state.handle_callback_with_issuer(&cb.code, &cb.csrf_token, Some("https://attacker.example")).await {
        Err(AuthError::AuthorizationServerMismatch { .. }) => Ok(()),
        Err(e) => Err(format!("expected AuthorizationServerMismatch, got {}", chain(&e))),
        Ok(()) => Err("a callback with a foreign iss was accepted".into()),
    }
}

/// The code exchange through `handle_callback_url` (state + iss checked).
async fn exchange(f: &mut Flow) -> Check {
    let callback = f.callback.clone().ok_or("no callback")?;
    let mut state = f.oauth.take().ok_or("no OAuth state")?;
    state.handle_callback_url(&callback).await.map_err(|e| chain(&e))?;
    let (client_id, creds) = state.get_credentials().await.map_err(err)?;
    ensure!(client_id == f.client_id, "client {client_id}");
    let creds = creds.ok_or("no tokens after the exchange")?;
    let (access, refresh) = tokens(&creds);
    ensure!(access.starts_with("mcp_at_"), "access token format");
    ensure!(refresh.is_some_and(|r| r.starts_with("mcp_rt_")), "no refresh token");
    ensure!(f.echo_status(&access).await? == 200, "the echo route refused the new token");
    let OAuthState::Authorized(manager) = state else {
        return Err("rmcp did not reach the Authorized state".into());
    };
    f.auth = Some(AuthClient::new(reqwest::Client::new(), manager));
    Ok(())
}

/// An MCP client over streamable HTTP with rmcp's AuthClient.
async fn connect_and_call(f: &mut Flow) -> Check {
    let auth = f.auth()?.clone();
    let transport = StreamableHttpClientTransport::with_client(
        auth,
        StreamableHttpClientTransportConfig::with_uri(f.mcp_url.as_str()),
    );
    let client = ().serve(transport).await.map_err(|e| chain(&e))?;
    let tools = client.list_all_tools().await.map_err(|e| chain(&e))?;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for want in ["whoami", "list_todos", "add_todo"] {
        ensure!(names.contains(&want), "tool {want} not listed: {names:?}");
    }
    f.mcp = Some(client);
    let who = f.whoami().await?;
    ensure!(who["user_id"] == "demo", "user {}", who["user_id"]);
    ensure!(who["client_id"] == f.client_id.as_str(), "client {}", who["client_id"]);
    ensure!(who["audience"] == f.mcp_url.as_str(), "audience {}", who["audience"]);
    let scope: Vec<&str> =
        who["scope"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    ensure!(SCOPES.iter().all(|s| scope.contains(s)), "scope {scope:?}");
    Ok(())
}

/// `AuthorizationManager::refresh_token`: rotation, and the client goes on.
async fn refresh(f: &mut Flow) -> Check {
    let (old_access, old_refresh) = f.current_tokens().await?;
    let fresh = f.auth()?.auth_manager.lock().await.refresh_token().await.map_err(|e| chain(&e))?;
    let (access, refresh) = tokens(&fresh);
    ensure!(access != old_access, "refresh returned the same access token");
    ensure!(refresh.is_some() && refresh != old_refresh, "the refresh token did not rotate");
    ensure!(f.current_tokens().await?.0 == access, "rmcp did not store the new tokens");
    ensure!(f.echo_status(&access).await? == 200, "the echo route refused the refreshed token");
    ensure!(f.whoami().await?["user_id"] == "demo", "whoami after refresh");
    Ok(())
}

/// A revoked access token: the server answers 401 invalid_token, and rmcp
/// refreshes once and retries.
async fn revoked_access_token_recovers(f: &mut Flow) -> Check {
    let (access, _) = f.current_tokens().await?;
    f.revoke(&access, "access_token").await?;
    ensure!(f.echo_status(&access).await? == 401, "the revoked access token still opens the echo route");
    ensure!(f.whoami().await?["user_id"] == "demo", "whoami after the access token was revoked");
    let (now, _) = f.current_tokens().await?;
    ensure!(now != access, "rmcp did not refresh after the 401");
    Ok(())
}

/// Revoking the refresh token ends the grant: the MCP call fails, and so
/// does rmcp's refresh.
async fn revoked_grant_refused(f: &mut Flow) -> Check {
    let (access, refresh) = f.current_tokens().await?;
    let refresh = refresh.ok_or("no refresh token")?;
    f.revoke(&refresh, "refresh_token").await?;
    ensure!(f.echo_status(&access).await? == 401, "an access token of the revoked grant still works");
    match f.whoami().await {
        Ok(v) => return Err(format!("whoami succeeded after the grant was revoked: {v}")),
        Err(e) => {
            ensure!(e.to_ascii_lowercase().contains("auth"), "the MCP call failed, but not for authorization: {e}")
        }
    }
    match f.auth()?.auth_manager.lock().await.refresh_token().await {
        Err(AuthError::TokenRefreshRejected(_) | AuthError::AuthorizationRequired) => Ok(()),
        Err(e) => Err(format!("refresh after revocation: expected a rejection, got {}", chain(&e))),
        Ok(_) => Err("a revoked refresh token still refreshed".into()),
    }
}

// ------------------------------------------------------------------ driver

type StepFn = for<'a> fn(&'a mut Flow) -> std::pin::Pin<Box<dyn Future<Output = Check> + 'a>>;

macro_rules! step {
    ($name:expr, $f:ident) => {
        ($name, (|f| Box::pin($f(f))) as StepFn)
    };
}

async fn run(base: String) -> (u32, u32) {
    let http = match reqwest::Client::builder().timeout(HTTP_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            println!("FAIL http client: {e}");
            return (0, 1);
        }
    };
    let mut f = Flow {
        mcp_url: format!("{base}/mcp"),
        base,
        http,
        issuer: String::new(),
        challenge: None,
        oauth: None,
        authorization_url: None,
        callback: None,
        client_id: String::new(),
        auth: None,
        mcp: None,
    };
    // The issuer, for the iss comparisons: from the metadata rmcp will find.
    let prm_url = match well_known(&f.mcp_url, "oauth-protected-resource") {
        Ok(u) => u,
        Err(e) => {
            println!("FAIL base URL: {e}");
            return (0, 1);
        }
    };
    match f.get_json(&prm_url).await {
        Ok(prm) => f.issuer = prm["authorization_servers"][0].as_str().unwrap_or_default().to_owned(),
        Err(e) => {
            println!("FAIL protected-resource metadata: {e}");
            return (0, 1);
        }
    }

    let steps = [
        step!("unauthenticated MCP connect gets a 401 challenge", unauthenticated_connect),
        step!("discovery from the challenge, DCR and authorization URL (OAuthState)", start_authorization),
        step!("authorization redirect carries code, state and iss", user_agent),
        step!("rmcp refuses a callback with a foreign iss (RFC 9207)", foreign_iss_refused),
        step!("code exchange (handle_callback_url)", exchange),
        step!("MCP client over streamable HTTP: initialize, list tools, whoami", connect_and_call),
        step!("refresh (AuthorizationManager::refresh_token) rotates; calls go on", refresh),
        step!("revoked access token: rmcp refreshes after the 401 and retries", revoked_access_token_recovers),
        step!("revoked refresh token (RFC 7009): MCP calls and refresh fail", revoked_grant_refused),
    ];
    let (mut passed, mut failed) = (0, 0);
    let mut broken = false;
    for (name, step) in steps {
        if broken {
            failed += 1;
            println!("FAIL {name}: not run, an earlier step failed");
            continue;
        }
        let outcome = match tokio::time::timeout(STEP_TIMEOUT, step(&mut f)).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {}s", STEP_TIMEOUT.as_secs())),
        };
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("ok   {name}");
            }
            Err(e) => {
                failed += 1;
                broken = true;
                println!("FAIL {name}: {e}");
            }
        }
    }
    if let Some(client) = f.mcp.take() {
        let _ = tokio::time::timeout(Duration::from_secs(5), client.cancel()).await;
    }
    (passed, failed)
}

fn usage() -> ExitCode {
    eprintln!("usage: interop-rmcp --base-url URL   (or INTEROP_BASE_URL=URL)");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut base = std::env::var("INTEROP_BASE_URL").ok().filter(|s| !s.is_empty());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--base-url" => base = args.next(),
            _ => return usage(),
        }
    }
    let Some(base) = base else { return usage() };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (passed, failed) = runtime.block_on(run(base.trim_end_matches('/').to_owned()));
    println!("{passed} passed, {failed} failed");
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
