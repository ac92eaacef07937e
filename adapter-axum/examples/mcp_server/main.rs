//! An OAuth 2.1-protected MCP server, ready to run:
//!
//! ```text
//! cargo run -p adapter-axum --features demo --example mcp_server
//! cargo run -p adapter-axum --features demo --example mcp_server -- --auto-approve demo   # headless clients
//! cargo run -p adapter-axum --features demo --example mcp_server -- --help
//! ```
//!
//! What is where:
//! * OAuth, all of it (metadata, registration, token, revocation, the bearer
//!   check on `/mcp`), is oauth-core, run by adapter-axum's layer;
//! * the application (MCP server, sign-in and consent pages, development
//!   accounts, echo route) is `adapter_axum::demo`, shared with the Lambda
//!   example, with all its data in the same store as the OAuth records;
//! * this file reads the flags, opens the database and serves.

mod cli;
mod db;

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use adapter_axum::demo::{Demo, DemoConfig};
use clap::Parser as _;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::cli::Cli;
use crate::db::Db;

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

    let mut config = DemoConfig::new(issuer);
    config.access_token_ttl = cli.access_token_ttl;
    config.refresh_token_ttl = cli.refresh_token_ttl.0;
    config.refresh_policy = cli.refresh_policy.into();
    config.users.clone_from(&cli.users);
    config.auto_approve.clone_from(&cli.auto_approve);

    let db = match cli.database_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Db::postgres(url).await?,
        Some(_) => return Err("DATABASE_URL must be a postgres:// URL; unset it to use SQLite under --data-dir".into()),
        None => Db::sqlite(&cli.data_dir).await?,
    };
    db.spawn_purge();
    let storage = db.describe(&cli.data_dir);

    let demo = Demo::new(&config, db).map_err(|e| e.to_string())?;
    print_banner(&config, &demo, &storage);
    tracing::info!(%local, "listening");
    axum::serve(listener, demo.router())
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            demo.shutdown();
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

fn print_banner(config: &DemoConfig, demo: &Demo, storage: &str) {
    let mcp_url = demo.mcp_url();
    let signin = match &config.auto_approve {
        Some(user) => format!("auto-approved as {user:?} (no sign-in page)"),
        None if config.users.is_empty() => "sign-in page; accounts: demo".to_owned(),
        None => {
            let names: Vec<&str> = config.users.iter().map(|u| u.name()).collect();
            format!("sign-in page; accounts: {}", names.join(", "))
        }
    };
    println!();
    println!("  Todo MCP server (oauth-core + adapter-axum example)");
    println!();
    println!("  MCP URL:  {mcp_url}");
    println!("  Issuer:   {}", demo.issuer());
    println!("  Storage:  {storage}");
    println!("  Sign-in:  {signin}");
    println!();
    println!("  Connect with:");
    println!("    MCP Inspector:  npx @modelcontextprotocol/inspector");
    println!("                    then Transport Type: Streamable HTTP, URL: {mcp_url}, Connect");
    println!("    Claude Code:    claude mcp add --transport http demo {mcp_url}");
    println!("                    then /mcp in Claude Code to sign in");
    println!();
    let warnings = config.warnings();
    if !warnings.is_empty() {
        warn_banner(&warnings);
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
