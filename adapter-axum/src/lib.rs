//! # adapter-axum
//!
//! Runs an [`oauth_core::Provider`] in an axum (or any tower) server, with
//! its records in PostgreSQL or SQLite, or in any other [`Store`].
//!
//! The adapter translates and executes; it makes no protocol decision.
//! Per request it buffers the body, calls `Provider::handle` with the system
//! time and the operating system's generator, drives the flow against the
//! store (answering hooks with the application's [`HookHandler`]), and then
//! sends the provider's response, or runs the application's handler for an
//! authorized request, or passes the request through untouched.
//!
//! ```no_run
//! # #[cfg(feature = "sqlite")] mod example {
//! use adapter_axum::{Authenticated, OAuth, SqliteStore};
//! use axum::{Router, routing::post};
//! use oauth_core::{ProtectedResource, ProviderBuilder};
//!
//! async fn mcp(Authenticated(auth): Authenticated) -> String {
//!     format!("hello {}", auth.user_id)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = ProviderBuilder::new("https://mcp.example.com")
//!     .resource(ProtectedResource::new("https://mcp.example.com/mcp")?)
//!     .build()?;
//! // Or `PgStore::connect(&database_url)`; either applies its migration.
//! let store = SqliteStore::open("oauth.db").await?;
//! let oauth = OAuth::new(provider, store);
//! // `layer`, not `route_layer`, on the outermost router: the provider's
//! // own endpoints (`/token`, `/register`, metadata) have no route here.
//! let app: Router = Router::new().route("/mcp", post(mcp)).layer(oauth.layer());
//! # let _ = app; Ok(()) }
//! # }
//! ```
//!
//! The stores' SQL, its atomicity and purging are described in
//! `docs/adapter-axum.md`.
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `postgres` | yes | `PgStore` (sqlx's PostgreSQL driver) |
//! | `sqlite` | yes | `SqliteStore` (sqlx's SQLite driver) |
//! | `demo` | no | `demo`: the example MCP application on any [`Store`] |
//!
//! Without `postgres` and `sqlite` the crate does not depend on sqlx: the
//! layer, the extractor and the [`Store`] trait are all another backend (the
//! DynamoDB store of `adapter-lambda`, say) needs.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod store;

#[cfg(feature = "postgres")]
pub use store::PgStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::Store;

#[cfg(feature = "demo")]
pub mod demo;

pub mod fetch;
mod layer;

pub use fetch::{SafeFetcher, SafeFetcherBuilder};
pub use layer::{
    Authenticated, DEFAULT_BODY_LIMIT, EnvironmentError, HookFuture, HookHandler, MissingAuthContext, OAuth,
    OAuthLayer, OAuthService, oauth_layer,
};
