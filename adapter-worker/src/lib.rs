//! # adapter-worker
//!
//! Runs an [`oauth_core::Provider`] as a Cloudflare Worker (Rust compiled to
//! `wasm32-unknown-unknown` with [`worker`](https://docs.rs/worker)), with its
//! records in Workers KV: the deployment model of
//! `@cloudflare/workers-oauth-provider` — a Worker, a KV namespace, the
//! application's own API handler and authorization page — in Rust.
//!
//! The adapter translates and executes; it makes no protocol decision. Per
//! request, [`OAuthWorker::fetch`] reads the body from a copy of the request,
//! calls `Provider::handle` with `Date.now()` and `crypto.getRandomValues`,
//! drives the flow against the store, and then sends the provider's
//! response, or calls the application's [`ApiHandler`] with the caller's
//! [`AuthContext`](oauth_core::AuthContext) (a protected route with a valid
//! token), or its [`DefaultHandler`] (everything else, the authorization page
//! included). Both handlers get the original request, body unread.
//!
//! ```ignore
//! use adapter_worker::{OAuthWorker, RequestContext};
//! use oauth_core::{AuthContext, ProtectedResource, ProviderBuilder};
//! use worker::{Context, Env, Request, Response, event};
//!
//! async fn api(_req: Request, auth: AuthContext, _cx: RequestContext) -> worker::Result<Response> {
//!     Response::ok(format!("hello {}", auth.user_id))
//! }
//!
//! async fn pages(req: Request, cx: RequestContext) -> worker::Result<Response> {
//!     // The authorization page: cx.oauth.run(|p, now, _| p.parse_authorization_request(&uri, now)), …
//!     Response::error("not found", 404)
//! }
//!
//! #[event(fetch)]
//! async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
//!     let provider = ProviderBuilder::new("https://mcp.example.com")
//!         .resource(ProtectedResource::new("https://mcp.example.com/mcp").map_err(|e| e.to_string())?)
//!         .build()
//!         .map_err(|e| e.to_string())?;
//!     OAuthWorker::new(provider, api, pages).kv_binding("OAUTH_KV").fetch(req, env, ctx).await
//! }
//! ```
//!
//! # Stores and consistency
//!
//! [`KvStore`] keeps the records in Workers KV (the default binding,
//! `OAUTH_KV`). KV is eventually consistent and has no conditional write, so
//! the core's compare-and-swap steps (single-use codes, refresh rotation)
//! are a read followed by a write there. [`DurableStore`]
//! (`.durable_object_binding(..)`) keeps them in one Durable Object with
//! SQLite storage instead, where every operation is atomic and every read
//! current, at the cost of a round trip to the object per storage batch.
//! `docs/adapter-worker.md` states precisely what KV weakens, and what stays
//! as strong as on PostgreSQL.
//!
//! # Client ID metadata documents
//!
//! With them on in the provider, the flows' fetches go to `WorkerFetcher`
//! (the platform's `fetch`: https only, `redirect: "manual"`, no cache, the
//! body capped while streaming, an `AbortController` deadline). A Worker
//! sees no DNS answer or address, so the address checks other adapters make
//! are Cloudflare's egress and the `global_fetch_strictly_public`
//! compatibility flag here: `docs/adapter-worker.md`, section 9.
//!
//! # Building on the host
//!
//! The Workers glue exists only on `wasm32`. On other targets the crate
//! holds the KV record layout and the storage logic (and their tests), so the
//! workspace builds and tests everywhere.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod record;
// Client ID metadata documents: the URL and size checks are plain logic,
// tested on the host; the platform's fetch is used on wasm32.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub mod fetch;
// On the host only the tests drive the storage logic; the Workers glue that
// uses it in production is compiled for wasm32 alone.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod store;
// The Durable Object store's wire format and SQL helpers: plain logic, built
// and tested on the host, used on wasm32. The object's half (executing
// batches in SQL, decoding requests) is compiled only with the
// `durable-object` feature, so without it that half is unused.
#[cfg_attr(any(not(target_arch = "wasm32"), not(feature = "durable-object")), allow(dead_code))]
mod sql;
#[cfg_attr(any(not(target_arch = "wasm32"), not(feature = "durable-object")), allow(dead_code))]
mod wire;

#[cfg(target_arch = "wasm32")]
mod durable;
#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod env;
#[cfg(target_arch = "wasm32")]
mod kv;

#[cfg(all(target_arch = "wasm32", feature = "durable-object"))]
pub use durable::OAuthStoreObject;
#[cfg(target_arch = "wasm32")]
pub use durable::{DEFAULT_OBJECT_NAME, DurableStore};
#[cfg(target_arch = "wasm32")]
pub use entry::{
    ApiHandler, DEFAULT_BODY_LIMIT, DEFAULT_KV_BINDING, DefaultHandler, EnvironmentError, HookFuture, HookHandler,
    OAuth, OAuthWorker, RequestContext, Store, to_worker_response,
};
#[cfg(target_arch = "wasm32")]
pub use env::{CryptoRandom, now};
#[cfg(target_arch = "wasm32")]
pub use fetch::WorkerFetcher;
#[cfg(target_arch = "wasm32")]
pub use kv::KvStore;
