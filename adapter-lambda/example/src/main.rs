//! The example MCP server as an AWS Lambda function, with its records in
//! DynamoDB: the same application as the axum example (`adapter_axum::demo`:
//! MCP todo tools, sign-in and consent pages, development auto-approve
//! switch, `/mcp/echo`), configured from the environment since Lambda has no
//! command line.
//!
//! | variable | |
//! |---|---|
//! | `MCP_ISSUER` (required) | the URL clients reach the function at: its function URL (`https://{id}.lambda-url.{region}.on.aws`) or its API's; the MCP endpoint is `{MCP_ISSUER}/mcp` |
//! | `OAUTH_DYNAMODB_TABLE` (required) | the table (see `docs/adapter-lambda.md` for its definition) |
//! | `MCP_AUTO_APPROVE` | DEVELOPMENT ONLY: approve every authorization as this user, without sign-in or consent |
//! | `MCP_USERS` | `NAME:PASSWORD,...` development accounts (default: `demo:demo`) |
//! | `MCP_REFRESH_POLICY` | `strict` (default) or `grace` |
//! | `MCP_ACCESS_TOKEN_TTL`, `MCP_REFRESH_TOKEN_TTL` | seconds (`none`: no refresh tokens) |
//! | `MCP_CREATE_TABLE` | `1`: create the table at start-up if missing (local development) |
//! | `MCP_CIMD` | `1`: accept client ID metadata documents (https `client_id` URLs, `private_key_jwt`), fetched by adapter-axum's SSRF-safe `SafeFetcher` |
//! | `MCP_CIMD_ALLOW_HOSTS`, `MCP_CIMD_DENY_HOSTS` | host lists for document URLs, comma-separated (`*.example.com`: subdomains) |
//! | `MCP_CIMD_FETCH_TIMEOUT_MS` | budget for one document fetch (default 5000): keep it well under the function's timeout |
//! | `MCP_DEV_CIMD_INSECURE`, `MCP_DEV_CIMD_EXTRA_CA`, `MCP_DEV_CIMD_LOOPBACK_HOSTS`, `MCP_DEV_CIMD_RESOLVE` | TESTS ONLY: loosen the fetcher (extra CA, loopback names, names resolved to chosen addresses); refused unless `MCP_DEV_CIMD_INSECURE=1` (see `docs/adapter-lambda.md`) |
//! | `AWS_REGION`, `AWS_ACCESS_KEY_ID`, ... | set by Lambda; `AWS_ENDPOINT_URL_DYNAMODB` for a local emulator |
//!
//! Locally, under `cargo lambda watch` with moto_server standing in for
//! DynamoDB (what `scripts/test.d/60-lambda.sh` does), the function is
//! served at the root of the emulator's port, as at a function URL:
//!
//! ```text
//! cargo lambda watch -p mcp-lambda --invoke-address 127.0.0.1 --invoke-port 9000 --disable-cors \
//!   --env-var MCP_ISSUER=http://127.0.0.1:9000,MCP_AUTO_APPROVE=demo,MCP_CREATE_TABLE=1 \
//!   --env-var OAUTH_DYNAMODB_TABLE=oauth,AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:5000 \
//!   --env-var AWS_REGION=us-east-1,AWS_ACCESS_KEY_ID=test,AWS_SECRET_ACCESS_KEY=test
//! ```
//!
//! Deployed: `cargo lambda build --release --arm64 -p mcp-lambda`, then
//! `cargo lambda deploy mcp-lambda` (see `docs/adapter-lambda.md`).

use adapter_axum::demo::{Demo, DemoConfig};
use adapter_lambda::DynamoStore;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), adapter_lambda::Error> {
    // CloudWatch adds its own timestamps, and shows no colours.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn")))
        .without_time()
        .with_ansi(false)
        .init();

    let config = DemoConfig::from_env()?;
    let store = DynamoStore::from_env()?;
    if std::env::var("MCP_CREATE_TABLE").is_ok_and(|v| v == "1") {
        store.create_table().await?;
    }
    let demo = Demo::new(&config, store)?;
    for line in config.warnings() {
        tracing::warn!("{line}");
    }
    tracing::info!(issuer = demo.issuer(), mcp = demo.mcp_url(), "serving");
    adapter_lambda::run(demo.router()).await
}
