//! An OAuth 2.1-protected MCP server, ready to run:
//!
//! ```text
//! cargo run -p adapter-axum --example mcp_server
//! cargo run -p adapter-axum --example mcp_server -- --auto-approve demo   # headless clients
//! cargo run -p adapter-axum --example mcp_server -- --help
//! ```
//!
//! What is where:
//! * OAuth, all of it (metadata, registration, token, revocation, the bearer
//!   check on `/mcp`), is oauth-core, run by adapter-axum's layer;
//! * `authorize` is the sign-in and consent page around the core's
//!   authorization helpers, `users` the development accounts;
//! * `mcp` is the MCP server (rmcp) with its tools, `todos` their data;
//! * this file reads the flags and wires the pieces together.

mod authorize;
mod cli;
mod db;
mod html;
mod mcp;
mod todos;
mod users;

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use adapter_axum::{Authenticated, OAuth};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser as _;
use oauth_core::{ProtectedResource, Provider, ProviderBuilder};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::authorize::AuthPages;
use crate::cli::Cli;
use crate::db::Db;
use crate::mcp::{READ, TodoServer, WRITE};
use crate::todos::TodoStore;
use crate::users::Users;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,rmcp=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    // Bind first, so `--bind 127.0.0.1:0` can pick a free port and the
    // default issuer still names the real one.
    let listener = TcpListener::bind(&cli.bind).await.map_err(|e| format!("cannot listen on {}: {e}", cli.bind))?;
    let local = listener.local_addr().map_err(|e| format!("cannot read the listening address: {e}"))?;
    let issuer = match &cli.issuer {
        Some(issuer) => issuer.trim_end_matches('/').to_owned(),
        None => default_issuer(local)?,
    };

    let provider = build_provider(&cli, &issuer)?;
    let issuer_url = provider.config().issuer_url().clone();
    // The issuer's path (empty for `https://host`) prefixes this server's own
    // routes, as the provider prefixes its endpoints with it.
    let base = issuer_url.path().trim_end_matches('/').to_owned();
    let issuer = provider.config().issuer.clone();
    let mcp_url = format!("{issuer}/mcp");

    let db = match cli.database_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Db::postgres(url).await?,
        Some(_) => return Err("DATABASE_URL must be a postgres:// URL; unset it to use SQLite under --data-dir".into()),
        None => Db::sqlite(&cli.data_dir).await?,
    };
    db.spawn_purge();
    let todos = TodoStore::open(db.clone()).await.map_err(|e| format!("cannot create the todo table: {e}"))?;

    let demo_account = cli.users.is_empty();
    let users = if demo_account { Users::demo() } else { Users::new(&cli.users) };
    let user_names: Vec<String> = users.names().map(str::to_owned).collect();

    let oauth = OAuth::new(provider.clone(), db.clone());
    let pages = Arc::new(AuthPages::new(oauth.clone(), users, demo_account, cli.auto_approve.clone(), base.clone()));

    // Stateless streamable HTTP: each POST is served on its own, so there is
    // no session to lose on restart or to share between replicas, and the
    // caller is whoever this request's token says. JSON responses keep
    // simple clients (and curl) simple.
    let mut allowed_hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Some(host) = issuer_url.host_str() {
        allowed_hosts.push(host.trim_start_matches('[').trim_end_matches(']').to_owned());
    }
    let mcp_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts(allowed_hosts);
    let mcp_shutdown = mcp_config.cancellation_token.clone();
    let mcp_provider = provider.clone();
    let mcp_service = StreamableHttpService::new(
        move || Ok(TodoServer::new(todos.clone(), mcp_provider.clone())),
        Arc::new(NeverSessionManager::default()),
        mcp_config,
    );

    let root = if base.is_empty() { "/".to_owned() } else { base.clone() };
    let home_page = Arc::new(home_html(&mcp_url));
    let pages_router = Router::new()
        .route(&format!("{base}/authorize"), get(authorize::authorize))
        .route(&format!("{base}/authorize/login"), post(authorize::login))
        .route(&format!("{base}/authorize/consent"), get(authorize::consent))
        .route(&format!("{base}/authorize/decision"), post(authorize::decision))
        .with_state(pages);
    let app = Router::new()
        .route(&root, get(home).with_state(home_page))
        .route(&format!("{base}/mcp/echo"), get(echo).with_state(provider.clone()))
        .route_service(&format!("{base}/mcp"), mcp_service)
        .merge(pages_router)
        // Outermost: the provider answers its own endpoints and checks the
        // token on everything under /mcp before any handler runs.
        .layer(oauth.layer())
        .layer(middleware::from_fn(log_request));

    print_banner(&cli, &mcp_url, &issuer, &db.describe(&cli.data_dir), &user_names);
    tracing::info!(%local, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            mcp_shutdown.cancel();
        })
        .await
        .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// `http://{bind}` for loopback addresses. Any other address is reachable
/// from elsewhere, where the issuer must be the URL clients really use (and
/// https), so it has to be given.
fn default_issuer(local: SocketAddr) -> Result<String, String> {
    if local.ip().is_loopback() {
        Ok(format!("http://{local}"))
    } else {
        Err(format!(
            "listening on {local}, which is not a loopback address: pass --issuer (or MCP_ISSUER) with the public \
             https URL clients use to reach this server"
        ))
    }
}

fn build_provider(cli: &Cli, issuer: &str) -> Result<Provider, String> {
    let resource = ProtectedResource::new(&format!("{issuer}/mcp"))
        .map_err(|e| format!("invalid issuer {issuer:?}: {e}"))?
        .scopes_supported([READ, WRITE])
        .name("Todo list (oauth-core example)");
    ProviderBuilder::new(issuer)
        .resource(resource)
        // offline_access is accepted (some clients always ask for it) but
        // inert: refresh tokens go to every client registered for them.
        .scopes_supported([READ, WRITE, oauth_core::scope::OFFLINE_ACCESS])
        .scope_implies(WRITE, [READ])
        .access_token_ttl(cli.access_token_ttl)
        .refresh_token_ttl(cli.refresh_token_ttl.to_builder())
        .refresh_policy(cli.refresh_policy.into())
        .on_error(|e| {
            // What was refused and why; descriptions never hold a secret.
            tracing::info!(
                endpoint = e.endpoint,
                error = %e.code,
                reason = %e.reason,
                client_id = e.client_id.as_deref().unwrap_or("-"),
                "oauth request refused: {}",
                e.description
            );
        })
        .build()
        .map_err(|e| format!("invalid configuration: {e}"))
}

/// `GET /mcp/echo`: the caller's authenticated context as JSON. For HTTP
/// test suites and for trying a token by hand. `?require=SCOPE` (repeatable)
/// answers 403 `insufficient_scope` unless the token has those scopes.
async fn echo(State(provider): State<Provider>, Authenticated(auth): Authenticated, uri: Uri) -> Response {
    let query = uri.query().unwrap_or_default();
    let required: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "require")
        .flat_map(|(_, v)| v.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let required: Vec<&str> = required.iter().map(String::as_str).collect();
    if let Some(refusal) = provider.require_scopes(&auth, &required) {
        return refusal.map(Body::from);
    }
    let mut resp = axum::Json(mcp::context_json(&auth)).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /`: where to point an MCP client.
async fn home(State(page): State<Arc<String>>) -> Response {
    html::response(StatusCode::OK, page.as_str().to_owned())
}

fn home_html(mcp_url: &str) -> String {
    let url = html::escape(mcp_url);
    let body = format!(
        "<h1>Todo MCP server</h1>\
         <p>An MCP server protected by OAuth 2.1 (oauth-core + adapter-axum). Connect an MCP client to:</p>\
         <pre>{url}</pre>\
         <p><b>MCP Inspector:</b> run <code>npx @modelcontextprotocol/inspector</code>, choose transport \
         <i>Streamable HTTP</i>, enter the URL above and connect.</p>\
         <p><b>Claude Code:</b></p><pre>claude mcp add --transport http demo {url}</pre>\
         <p class=\"muted\">The client registers itself, sends you to this server's sign-in page, and gets a \
         token for your todo list.</p>"
    );
    html::page("Todo MCP server", &body)
}

/// One line per request. The path only: query strings carry `state`, PKCE
/// challenges and, on the way back to clients, codes, which stay out of logs.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(%method, %path, status = response.status().as_u16(), ms, "request");
    response
}

fn print_banner(cli: &Cli, mcp_url: &str, issuer: &str, storage: &str, users: &[String]) {
    let signin = match &cli.auto_approve {
        Some(user) => format!("auto-approved as {user:?} (no sign-in page)"),
        None => format!("sign-in page; accounts: {}", users.join(", ")),
    };
    println!();
    println!("  Todo MCP server (oauth-core + adapter-axum example)");
    println!();
    println!("  MCP URL:  {mcp_url}");
    println!("  Issuer:   {issuer}");
    println!("  Storage:  {storage}");
    println!("  Sign-in:  {signin}");
    println!();
    println!("  Connect with:");
    println!("    MCP Inspector:  npx @modelcontextprotocol/inspector");
    println!("                    then Transport Type: Streamable HTTP, URL: {mcp_url}, Connect");
    println!("    Claude Code:    claude mcp add --transport http demo {mcp_url}");
    println!("                    then /mcp in Claude Code to sign in");
    println!();
    if let Some(user) = &cli.auto_approve {
        warn_banner(&[
            "WARNING: --auto-approve is ON (development only).".to_owned(),
            format!("Every authorization request is approved as user {user:?},"),
            "with the scopes it asks for, without sign-in or consent.".to_owned(),
            "Anyone who can reach this server gets a token. Never expose it.".to_owned(),
        ]);
    } else if cli.users.is_empty() {
        warn_banner(&[
            "WARNING: using the built-in development account demo / demo.".to_owned(),
            "Anyone who can reach this server can sign in with it.".to_owned(),
            "Pass --user NAME:PASSWORD (repeatable) to replace it.".to_owned(),
        ]);
    }
}

fn warn_banner(lines: &[String]) {
    let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let rule = "!".repeat(width + 8);
    eprintln!("{rule}");
    for line in lines {
        eprintln!("!!  {line:<width$}  !!");
    }
    eprintln!("{rule}");
    eprintln!();
}

/// Ctrl-C, or SIGTERM from a service manager or container runtime.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
