//! Storage backends: PostgreSQL for production and SQLite as the embedded
//! default (features `postgres` and `sqlite`), both giving exactly the
//! semantics `oauth_core::storage` specifies, and the [`Store`] trait any
//! other backend implements.

use std::future::Future;

use oauth_core::{Reply, StorageError, StorageRequest};

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::PgStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// A storage backend the [`OAuthLayer`](crate::OAuthLayer) can run on.
///
/// The layer serves requests on many tasks at once, so a store is shared
/// (`&self`, `Sync`) and its futures are `Send`. Implement it for your own
/// backend by performing each operation with the semantics documented in
/// `oauth_core::storage`, and check it with the core's conformance suite.
pub trait Store: Clone + Send + Sync + 'static {
    /// Perform one batch: one reply per operation, in order, or the error
    /// that stopped the batch.
    fn execute(&self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> + Send;
}
