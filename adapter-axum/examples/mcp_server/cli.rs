//! Command-line flags, each also settable from the environment.

use std::path::PathBuf;

use adapter_axum::demo::{DevUser, parse_refresh_ttl, validate_user_name};
use clap::{Parser, ValueEnum};
use oauth_core::RefreshPolicy;

/// An OAuth 2.1-protected MCP server: a per-user todo list, with its own
/// authorization server (dynamic client registration, sign-in and consent
/// page, PKCE, refresh-token rotation) from oauth-core and adapter-axum.
///
/// Runs with no setup: data goes to a SQLite file under --data-dir unless
/// DATABASE_URL points at PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "mcp_server", version)]
pub(crate) struct Cli {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, env = "MCP_BIND", default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    pub(crate) bind: String,

    /// Public base URL of this server, used as the OAuth issuer; the MCP
    /// endpoint is {issuer}/mcp. Must be https unless on loopback.
    /// [default: http://{bind}]
    #[arg(long, env = "MCP_ISSUER", value_name = "URL")]
    pub(crate) issuer: Option<String>,

    /// PostgreSQL connection URL (postgres://user:password@host/db). When
    /// unset, a SQLite file under --data-dir is used.
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,

    /// Directory of the SQLite database (when DATABASE_URL is unset).
    #[arg(long, env = "MCP_DATA_DIR", default_value = ".mcp-oauth-data", value_name = "DIR")]
    pub(crate) data_dir: PathBuf,

    /// Access-token lifetime in seconds (at least 60).
    #[arg(long, env = "MCP_ACCESS_TOKEN_TTL", default_value_t = 3600, value_name = "SECONDS")]
    pub(crate) access_token_ttl: u64,

    /// Refresh-token lifetime in seconds (at least 60), or `none` to issue
    /// no refresh tokens.
    #[arg(
        long,
        env = "MCP_REFRESH_TOKEN_TTL",
        default_value = "2592000",
        value_name = "SECONDS|none",
        value_parser = |s: &str| parse_refresh_ttl(s).map(RefreshTtl)
    )]
    pub(crate) refresh_token_ttl: RefreshTtl,

    /// Refresh-token rotation: `strict` treats reuse of a rotated token as
    /// theft and revokes the grant; `grace` keeps the previous token valid
    /// until the new one is used.
    #[arg(long, env = "MCP_REFRESH_POLICY", value_enum, default_value_t = Policy::Strict)]
    pub(crate) refresh_policy: Policy,

    /// A development account allowed to sign in; repeat for more (in
    /// MCP_USERS, separate them with commas). Without any, the account
    /// demo:demo is created.
    #[arg(
        long = "user",
        env = "MCP_USERS",
        value_name = "NAME:PASSWORD",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub(crate) users: Vec<DevUser>,

    /// DEVELOPMENT ONLY: approve every authorization request at once as
    /// USER, with the scopes requested and no sign-in or consent page, so
    /// headless clients and test suites can complete the flow.
    #[arg(long, env = "MCP_AUTO_APPROVE", value_name = "USER", value_parser = parse_user)]
    pub(crate) auto_approve: Option<String>,
}

/// `--refresh-token-ttl`: seconds, or `None` for no refresh tokens. A
/// newtype, because clap reads a bare `Option` field as "flag may be absent".
#[derive(Clone, Copy, Debug)]
pub(crate) struct RefreshTtl(pub(crate) Option<u64>);

fn parse_user(s: &str) -> Result<String, String> {
    validate_user_name(s).map(|()| s.to_owned())
}

/// `--refresh-policy`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Policy {
    /// Single-use refresh tokens; reuse revokes the grant.
    Strict,
    /// The previous refresh token stays valid until the new one is used.
    Grace,
}

impl From<Policy> for RefreshPolicy {
    fn from(p: Policy) -> Self {
        match p {
            Policy::Strict => Self::Strict,
            Policy::Grace => Self::Grace,
        }
    }
}
