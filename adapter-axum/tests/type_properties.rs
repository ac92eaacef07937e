//! Compile-time checks that everything the adapter hands to tokio and axum
//! is `Send` (and the layer's service `Clone + Send + Sync`), the property
//! a multi-threaded server needs and a `!Send` future would silently lose.
//! The functions below are never called: compiling them is the test.

#![allow(dead_code)]

use adapter_axum::{Authenticated, OAuth, OAuthService, PgStore, SqliteStore, Store};
use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use bytes::Bytes;
use oauth_core::{Driver, Flow, Outcome, StorageRequest, UnixTime};

fn send<T: Send>(_: &T) {}

fn shareable<T: Clone + Send + Sync + 'static>() {}

fn store_futures<S: Store>(store: S, request: StorageRequest) {
    send(&store.execute(request));
}

/// `Driver::storage` promises no `Send` in general (Workers' futures are
/// not); the SQL stores' futures are.
fn concrete_store_futures(mut pg: PgStore, mut lite: SqliteStore, request: StorageRequest) {
    store_futures(pg.clone(), request.clone());
    store_futures(lite.clone(), request.clone());
    send(&Driver::storage(&mut pg, request.clone()));
    send(&Driver::storage(&mut lite, request));
    send(&pg.purge_expired(UnixTime::from_secs(0), 100));
    send(&lite.purge_expired(UnixTime::from_secs(0), 100));
    send(&PgStore::connect("postgres://localhost/x"));
    send(&SqliteStore::open("x.db"));
}

fn oauth_futures<S: Store>(oauth: OAuth<S>, request: http::Request<Bytes>, mut flow: Flow<Outcome>) {
    send(&oauth.handle(request.clone()));
    send(&oauth.drive(&mut flow));
    send(&oauth.run(|provider, now, rng| provider.handle(request, now, rng)));
}

async fn handler(Authenticated(auth): Authenticated) -> String {
    auth.user_id
}

async fn optional_handler(auth: Option<Authenticated>) -> &'static str {
    if auth.is_some() { "in" } else { "out" }
}

/// `Router::layer` demands a `Clone + Send + Sync` service with a `Send`
/// future, and `get(handler)` a `Send` handler future: this compiles only if
/// both hold.
fn router<S: Store>(oauth: OAuth<S>) -> Router {
    Router::new().route("/mcp", post(handler)).route("/", get(optional_handler)).layer(oauth.layer())
}

#[test]
fn services_and_futures_are_send() {
    shareable::<OAuth<PgStore>>();
    shareable::<OAuth<SqliteStore>>();
    shareable::<adapter_axum::OAuthLayer<PgStore>>();
    shareable::<OAuthService<Router, PgStore>>();
    fn future_is_send<F: Send>() {}
    future_is_send::<<OAuthService<Router, SqliteStore> as tower::Service<http::Request<Body>>>::Future>();
}
