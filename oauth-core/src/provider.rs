//! The provider: routing a request to the endpoint that owns it.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response};
use serde_json::Value;

use crate::config::{Config, ProtectedResource};
use crate::endpoint;
use crate::error::{ErrorEvent, OAuthError};
use crate::flow::{Flow, FlowOutput};
use crate::http_util;
use crate::resource::path_is_under;
use crate::rng::SecureRandom;
use crate::time::UnixTime;

/// How the provider disposed of a request.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// The provider answered; send this response.
    Response(Response<Bytes>),
    /// A protected route with a valid token: run the application's handler
    /// with `auth`, then pass its response through
    /// [`Provider::finish_api_response`].
    Authorized {
        /// The request, unchanged.
        request: Request<Bytes>,
        /// Who is calling and with what rights.
        auth: AuthContext,
    },
    /// Not the provider's route: hand the request to the application's
    /// default handler (its authorization page among others).
    NotHandled(Request<Bytes>),
}

impl FlowOutput for Outcome {
    fn from_error(error: OAuthError) -> Self {
        Self::Response(http_util::error_response(&error))
    }
}

impl FlowOutput for Response<Bytes> {
    fn from_error(error: OAuthError) -> Self {
        http_util::error_response(&error)
    }
}

/// The authenticated caller of a protected route.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct AuthContext {
    /// The user who authorized the client.
    pub user_id: String,
    /// The client presenting the token.
    pub client_id: String,
    /// The grant the token belongs to (hex).
    pub grant_id: String,
    /// The token's scopes.
    pub scope: Vec<String>,
    /// The resource (audience) the token is for.
    pub audience: String,
    /// When the token expires.
    pub expires_at: UnixTime,
    /// The grant's props, decrypted.
    pub props: Value,
    /// Props attached to this access token only (by the issuance hook).
    pub token_props: Value,
    /// Index of the protected resource in the configuration.
    pub resource_index: usize,
}

/// An OAuth 2.1 authorization server and resource-server check for MCP.
///
/// Cheap to clone (an `Arc` inside). Build it with
/// [`ProviderBuilder`](crate::ProviderBuilder).
#[derive(Clone, Debug)]
pub struct Provider {
    config: Arc<Config>,
}

impl Provider {
    pub(crate) fn from_config(config: Config) -> Self {
        Self { config: Arc::new(config) }
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn shared_config(&self) -> Arc<Config> {
        Arc::clone(&self.config)
    }

    /// Start handling a request received at `now`. Random bytes are drawn
    /// from `rng` only for endpoints that mint something.
    pub fn handle(&self, request: Request<Bytes>, now: UnixTime, rng: &mut dyn SecureRandom) -> Flow<Outcome> {
        let route = self.route(request.uri().path());
        let origin = request.headers().get(header::ORIGIN).cloned();
        let cfg = self.shared_config();
        let method = request.method().clone();

        // OPTIONS is answered on the provider's own endpoints whether or not
        // CORS is on (RFC 9110 §9.3.7); on protected routes only as a CORS
        // preflight, otherwise the application may have its own use for it.
        let protected = matches!(route, Route::Protected(_));
        if method == Method::OPTIONS && route.is_provider_owned() && (self.config.cors || !protected) {
            let allow = route.allowed_methods();
            let origin = if self.config.cors { origin.as_ref() } else { None };
            return Flow::ready(Outcome::Response(http_util::preflight(origin, allow)));
        }

        let flow = match route {
            Route::NotMine => return Flow::ready(Outcome::NotHandled(request)),
            Route::AuthorizationServerMetadata => {
                Flow::ready(Outcome::Response(endpoint::metadata::authorization_server(&cfg, &method)))
            }
            Route::ProtectedResourceMetadata(index) => {
                Flow::ready(Outcome::Response(endpoint::metadata::protected_resource(&cfg, index, &method)))
            }
            Route::UnknownWellKnown => Flow::ready(Outcome::Response(http_util::not_found())),
            Route::Token => endpoint::token::start(cfg, request, now, rng),
            Route::Registration => endpoint::register::start(cfg, request, now, rng),
            Route::Revocation => endpoint::revoke::start(cfg, request, now),
            Route::Protected(index) => endpoint::resource::start(cfg, request, index, now),
        };
        if self.config.cors && origin.is_some() { Flow::new(WithCors { inner: flow, origin }) } else { flow }
    }

    /// Decorate the application's response to an authorized request (CORS).
    pub fn finish_api_response<B>(&self, request_origin: Option<&HeaderValue>, response: &mut Response<B>) {
        if self.config.cors {
            http_util::apply_cors(request_origin, response);
        }
    }

    /// The 403 `insufficient_scope` answer (RFC 6750 §3.1) for a handler
    /// that needs `required` but was called with `auth`; `None` when `auth`
    /// already satisfies it (implications included).
    pub fn require_scopes(&self, auth: &AuthContext, required: &[&str]) -> Option<Response<Bytes>> {
        let required: Vec<String> = required.iter().map(|s| (*s).to_owned()).collect();
        if crate::scope::satisfies(&auth.scope, &required, &self.config.scope_implies) {
            return None;
        }
        Some(endpoint::resource::insufficient_scope(&self.config, auth.resource_index, &required))
    }

    /// The RFC 9728 metadata URL of the resource at `index`.
    pub fn resource_metadata_url(&self, index: usize) -> Option<String> {
        self.config.resources.get(index).map(endpoint::metadata::resource_metadata_url)
    }

    fn route(&self, path: &str) -> Route {
        let cfg = &*self.config;
        if path == cfg.token_path {
            return Route::Token;
        }
        if path == cfg.revocation_path {
            return Route::Revocation;
        }
        if cfg.registration_path.as_deref() == Some(path) {
            return Route::Registration;
        }
        if let Some(rest) = path.strip_prefix("/.well-known/") {
            return self.route_well_known(rest);
        }
        let issuer_path = cfg.issuer_url.path().trim_end_matches('/');
        if !issuer_path.is_empty() && path == format!("{issuer_path}/.well-known/openid-configuration") {
            return Route::AuthorizationServerMetadata;
        }
        // The longest matching route prefix wins, so nested resources work.
        let mut best: Option<(usize, usize)> = None;
        for (i, r) in cfg.resources.iter().enumerate() {
            for prefix in &r.routes {
                if path_is_under(path, prefix) && best.is_none_or(|(_, len)| prefix.len() > len) {
                    best = Some((i, prefix.len()));
                }
            }
        }
        match best {
            Some((i, _)) => Route::Protected(i),
            None => Route::NotMine,
        }
    }

    fn route_well_known(&self, rest: &str) -> Route {
        let cfg = &*self.config;
        let issuer_path = cfg.issuer_url.path().trim_end_matches('/');
        for doc in ["oauth-authorization-server", "openid-configuration"] {
            if let Some(suffix) = rest.strip_prefix(doc) {
                return if suffix == issuer_path {
                    Route::AuthorizationServerMetadata
                } else {
                    Route::UnknownWellKnown
                };
            }
        }
        if let Some(suffix) = rest.strip_prefix("oauth-protected-resource") {
            for (i, r) in cfg.resources.iter().enumerate() {
                if suffix == resource_path_suffix(r) {
                    return Route::ProtectedResourceMetadata(i);
                }
            }
            // Clients written before path-suffixed metadata ask at the root;
            // answer with the default resource there.
            if suffix.is_empty() {
                return Route::ProtectedResourceMetadata(cfg.default_resource);
            }
            return Route::UnknownWellKnown;
        }
        Route::NotMine
    }

    /// Report an error to the observer, if any.
    pub(crate) fn observe(cfg: &Config, endpoint: &'static str, err: &OAuthError, client_id: Option<&str>) {
        if let Some(observer) = &cfg.on_error {
            observer(&ErrorEvent {
                endpoint,
                code: err.code,
                reason: err.reason,
                description: err.description.to_string(),
                client_id: client_id.map(str::to_owned),
            });
        }
    }
}

/// The path that follows `/.well-known/oauth-protected-resource` for `r`.
pub(crate) fn resource_path_suffix(r: &ProtectedResource) -> &str {
    let p = r.resource.path();
    if p == "/" { "" } else { p }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    AuthorizationServerMetadata,
    ProtectedResourceMetadata(usize),
    UnknownWellKnown,
    Token,
    Registration,
    Revocation,
    Protected(usize),
    NotMine,
}

impl Route {
    fn is_provider_owned(self) -> bool {
        !matches!(self, Self::NotMine)
    }

    fn allowed_methods(self) -> &'static str {
        match self {
            Self::AuthorizationServerMetadata | Self::ProtectedResourceMetadata(_) | Self::UnknownWellKnown => {
                "GET, HEAD, OPTIONS"
            }
            Self::Token | Self::Registration | Self::Revocation => "POST, OPTIONS",
            Self::Protected(_) | Self::NotMine => "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS",
        }
    }
}

/// Adds CORS headers to whatever response a flow ends in.
struct WithCors {
    inner: Flow<Outcome>,
    origin: Option<HeaderValue>,
}

impl crate::flow::Machine for WithCors {
    type Output = Outcome;
    fn advance(&mut self, input: crate::flow::Input) -> crate::flow::Step<Outcome> {
        match self.inner.advance(input) {
            crate::flow::Step::Done(Outcome::Response(mut r)) => {
                http_util::apply_cors(self.origin.as_ref(), &mut r);
                crate::flow::Step::Done(Outcome::Response(r))
            }
            other => other,
        }
    }
}
