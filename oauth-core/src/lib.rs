//! # oauth-core
//!
//! A complete OAuth 2.1 authorization server and resource-server token check
//! for remote MCP servers, written as a pure state machine: no IO, no async,
//! no runtime, no clock, no ambient randomness. Runtime adapters (Workers KV,
//! axum + PostgreSQL, Lambda + DynamoDB) perform what it asks and feed back
//! the answers.
//!
//! # The drive contract
//!
//! 1. Build a [`Provider`] once from a [`ProviderBuilder`]. Configuration
//!    errors surface here, never at request time.
//! 2. For each HTTP request, call [`Provider::handle`] with the request, the
//!    current time and a [`SecureRandom`]. You get a [`Flow`].
//! 3. Call [`Flow::advance`] with [`Input::Start`]. Then, until it returns
//!    [`Step::Done`]:
//!    * on [`Step::Storage`], perform the batch against your store and call
//!      `advance(Input::Storage(replies))`, one [`Reply`] per operation in
//!      order, or `Err(StorageError)` if the batch failed;
//!    * on [`Step::Hook`], ask your application and call
//!      `advance(Input::Hook(reply))`;
//!    * on [`Step::Fetch`] (only with client ID metadata documents on),
//!      fetch the document under the SSRF rules of [`FetchRequest`] and call
//!      `advance(Input::Fetch(result))`.
//! 4. [`Step::Done`] carries an [`Outcome`]: a response to send, an
//!    authorized request for your handler (with its [`AuthContext`]), or a
//!    request that is not the provider's business.
//!
//! A flow is owned data (`Send + 'static`), holds no borrowed state, and
//! never panics: feeding the wrong input, or storage failing, ends the flow
//! in a `server_error` or `temporarily_unavailable` response.
//!
//! [`drive`] is that loop, written once, generic over a [`Driver`] whose
//! futures need not be `Send`; [`drive_blocking`] runs the same loop for a
//! synchronous [`BlockingStore`].
//!
//! ```
//! use bytes::Bytes;
//! use oauth_core::testing::{MemoryStore, SeededRng};
//! use oauth_core::{Outcome, ProtectedResource, ProviderBuilder, UnixTime, drive_blocking};
//!
//! let provider = ProviderBuilder::new("https://as.example.com")
//!     .resource(ProtectedResource::new("https://as.example.com/mcp").unwrap())
//!     .build()
//!     .unwrap();
//! let mut store = MemoryStore::new();
//! let mut rng = SeededRng::new(1);
//! let req = http::Request::get("https://as.example.com/mcp").body(Bytes::new()).unwrap();
//! let mut flow = provider.handle(req, UnixTime::from_secs(1_700_000_000), &mut rng);
//! let outcome = drive_blocking(&mut flow, &mut store, |call| call.default_reply());
//! let Outcome::Response(resp) = outcome else { panic!() };
//! assert_eq!(resp.status(), 401);
//! assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("resource_metadata="));
//! ```
//!
//! # Design documents
//!
//! `docs/` in the repository explains the storage operations and their
//! atomicity, the record and key schema, and the cryptographic scheme, with
//! the reasons for each choice.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod admin;
mod cimd;
mod client;
mod config;
mod crypto;
mod endpoint;
mod error;
mod fetch;
mod flow;
mod grant;
mod hooks;
mod http_util;
mod jose;
pub mod pkce;
mod provider;
mod records;
pub mod redirect_uri;
pub mod resource;
mod rng;
pub mod scope;
pub mod storage;
mod time;

#[cfg(feature = "testing")]
pub mod testing;

pub use cimd::CimdPolicy;
pub use config::{
    Config, ConfigError, ErrorObserver, Hooks, MIN_TTL_SECS, ProtectedResource, ProviderBuilder, RefreshPolicy,
};
pub use endpoint::authorize::{Approval, AuthorizationError, AuthorizationRequest, CompletedAuthorization};
pub use error::{ErrorCode, ErrorEvent, OAuthError, Reason};
pub use fetch::{FetchError, FetchPurpose, FetchRequest, FetchResponse};
pub use flow::{
    BlockingStore, Driver, Flow, FlowOutput, FlowStats, Input, Step, drive, drive_blocking, drive_blocking_with_fetch,
};
pub use hooks::{HookCall, HookError, HookReply, IssuanceContext, IssuanceDecision, IssuanceKind, RegistrationContext};
pub use provider::{AuthContext, Outcome, Provider};
pub use rng::SecureRandom;
pub use storage::{Condition, Entry, Reply, StorageError, StorageOp, StorageRequest};
pub use time::UnixTime;
