//! # adapter-lambda
//!
//! Runs an [`oauth_core::Provider`] on AWS Lambda (behind a function URL,
//! API Gateway or an ALB), with its records in DynamoDB.
//!
//! Nothing here decides anything about OAuth. `lambda_http` turns the
//! invocation's event into an `http::Request` and the response back into the
//! event's reply; adapter-axum's tower layer ([`OAuth::layer`]) runs the
//! core's drive loop for each request, answers the provider's endpoints,
//! checks the bearer token on the protected routes and hands the
//! application the caller's context ([`Authenticated`]); this crate adds
//! the store those flows run against, [`DynamoStore`], and [`run`].
//!
//! ```no_run
//! use adapter_lambda::{Authenticated, DynamoStore, OAuth};
//! use axum::Router;
//! use axum::routing::post;
//! use oauth_core::{ProtectedResource, ProviderBuilder};
//!
//! async fn mcp(Authenticated(auth): Authenticated) -> String {
//!     format!("hello {}", auth.user_id)
//! }
//!
//! # async fn main_() -> Result<(), adapter_lambda::Error> {
//! // The issuer is the URL clients use: the function URL, or the API's.
//! let issuer = std::env::var("MCP_ISSUER")?;
//! let provider = ProviderBuilder::new(&issuer)
//!     .resource(ProtectedResource::new(&format!("{issuer}/mcp"))?)
//!     .build()?;
//! // OAUTH_DYNAMODB_TABLE, AWS_REGION and the execution role's credentials.
//! let store = DynamoStore::from_env()?;
//! let app = Router::new().route("/mcp", post(mcp)).layer(OAuth::new(provider, store).layer());
//! adapter_lambda::run(app).await
//! # }
//! ```
//!
//! The table design, the access patterns, the IAM permissions and
//! deployment are described in `docs/adapter-lambda.md`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

mod config;
mod error;
mod keys;
mod store;

pub use adapter_axum::{
    Authenticated, EnvironmentError, HookFuture, HookHandler, MissingAuthContext, OAuth, OAuthLayer, OAuthService,
    Store, oauth_layer,
};
pub use config::{ConfigError, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_MAX_ATTEMPTS, DEFAULT_OPERATION_TIMEOUT, DynamoConfig};
pub use lambda_http;
pub use lambda_http::Error;
pub use store::{
    ATTR_EXPIRES, ATTR_PK, ATTR_REVISION, ATTR_SK, ATTR_TTL, ATTR_VALUE, DynamoStore, TTL_SLACK_SECS, TableError,
};

/// Serve `app` (a router with the OAuth layer applied) as this Lambda
/// function's handler, until the runtime stops the process.
///
/// Each invocation's event (function URL and API Gateway HTTP API payload
/// 2.0, REST API payload 1.0, ALB) becomes an `http::Request` with the
/// event's method, path, query, headers (cookies included) and decoded body.
/// The router's response goes back with its status, headers (`Set-Cookie`
/// as the event format wants it) and body.
///
/// Paths reach the application as the client sent them, so the routes and
/// the issuer's path agree: a function URL (`https://{id}.lambda-url.{region}.on.aws`)
/// serves at the root; a REST API serves under its stage (`/prod/mcp` for
/// the issuer `https://{api}.execute-api.{region}.amazonaws.com/prod`), which
/// `lambda_http` keeps in the path unless `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH`
/// is set.
pub async fn run(app: axum::Router) -> Result<(), Error> {
    lambda_http::run(app).await
}
