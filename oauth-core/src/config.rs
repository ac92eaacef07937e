//! Provider configuration, validated once at construction.
//!
//! Anything that can be wrong with a configuration is reported by
//! [`ProviderBuilder::build`] as a [`ConfigError`]; a [`Provider`](crate::Provider)
//! that exists is valid, and no request can trip over its settings.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use url::Url;

use crate::cimd::CimdPolicy;
use crate::error::ErrorEvent;
use crate::resource::canonical_resource;
use crate::scope::is_scope_token;

/// The shortest lifetime any credential or record may have: 60 seconds, the
/// minimum expiry Workers KV accepts, so one configuration works everywhere.
pub const MIN_TTL_SECS: u64 = 60;

/// How refresh tokens rotate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RefreshPolicy {
    /// Every refresh token is single use. Presenting a token that was already
    /// rotated away is treated as theft (RFC 9700 §4.14.2): the whole grant is
    /// revoked. Concurrent refreshes with one token yield exactly one success.
    #[default]
    Strict,
    /// The previous token keeps working until the new one is first used, so a
    /// client that lost a refresh response can retry. This is the incumbent
    /// TypeScript library's behaviour; two tokens are valid at once.
    Grace,
}

/// One protected resource (an MCP server endpoint) and its RFC 9728 metadata.
#[derive(Clone, Debug)]
pub struct ProtectedResource {
    pub(crate) resource: Url,
    pub(crate) routes: Vec<String>,
    pub(crate) scopes_supported: Vec<String>,
    pub(crate) challenge_scopes: Vec<String>,
    pub(crate) resource_name: Option<String>,
    pub(crate) authorization_servers: Vec<String>,
    pub(crate) resource_documentation: Option<String>,
}

impl ProtectedResource {
    /// A resource identified by `resource` (e.g. `https://example.com/mcp`),
    /// protecting requests whose path is the resource's path or below it.
    pub fn new(resource: &str) -> Result<Self, ConfigError> {
        let resource = canonical_resource(resource).ok_or_else(|| ConfigError::InvalidResource(resource.to_owned()))?;
        let route = resource.path().to_owned();
        Ok(Self {
            resource,
            routes: vec![route],
            scopes_supported: Vec::new(),
            challenge_scopes: Vec::new(),
            resource_name: None,
            authorization_servers: Vec::new(),
            resource_documentation: None,
        })
    }

    /// Protect these path prefixes instead of the resource's own path.
    /// Prefixes match on path-segment boundaries: `/mcp` covers `/mcp` and
    /// `/mcp/x` but not `/mcpx`.
    #[must_use]
    pub fn routes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, routes: I) -> Self {
        self.routes = routes.into_iter().map(Into::into).collect();
        self
    }

    /// Scopes this resource understands, advertised in its metadata
    /// (`offline_access` is never advertised; MCP SEP-2207).
    #[must_use]
    pub fn scopes_supported<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Scopes a request must carry to reach this resource at all; they are
    /// named in the `scope` parameter of 401 challenges and enforced on every
    /// request (403 `insufficient_scope` when missing).
    #[must_use]
    pub fn required_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.challenge_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The human-readable `resource_name`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// Authorization servers to advertise (default: this provider's issuer).
    #[must_use]
    pub fn authorization_servers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, servers: I) -> Self {
        self.authorization_servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// A `resource_documentation` URL.
    #[must_use]
    pub fn documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// The canonical resource URL.
    pub fn resource(&self) -> &Url {
        &self.resource
    }
}

/// Which application hooks the provider yields to the driver as
/// [`Step::Hook`](crate::Step::Hook). A hook that is off is never asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hooks {
    /// Ask before issuing tokens (code, refresh, exchange).
    pub token_issuance: bool,
    /// Ask before registering a client (RFC 7591).
    pub client_registration: bool,
}

/// A callback that observes every error answered to a client.
pub type ErrorObserver = Arc<dyn Fn(&ErrorEvent) + Send + Sync>;

/// The validated configuration. Built by [`ProviderBuilder`].
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The issuer identifier (RFC 8414 §2): https (or http on loopback), no
    /// query or fragment, no trailing slash unless it is the bare origin.
    pub issuer: String,
    pub(crate) issuer_url: Url,
    /// Where the app serves its authorization (consent) page.
    pub authorization_endpoint: String,
    /// The token endpoint's absolute URL.
    pub token_endpoint: String,
    /// The token endpoint's path, as routed.
    pub token_path: String,
    /// The registration endpoint, when dynamic registration is on.
    pub registration_endpoint: Option<String>,
    /// Its path.
    pub registration_path: Option<String>,
    /// The revocation endpoint.
    pub revocation_endpoint: String,
    /// Its path.
    pub revocation_path: String,
    /// The protected resources.
    pub resources: Vec<ProtectedResource>,
    /// Index into `resources` of the one used when a request names none.
    pub default_resource: usize,
    /// The scope catalogue advertised in AS metadata (`scopes_supported`).
    pub scopes_supported: Vec<String>,
    /// Scope implications: holding the key scope satisfies each listed scope.
    pub scope_implies: BTreeMap<String, BTreeSet<String>>,
    /// Access-token lifetime in seconds.
    pub access_token_ttl: u64,
    /// Refresh-token lifetime: `None` disables refresh tokens, `Some(None)`
    /// makes them live as long as the grant is used, `Some(Some(s))` bounds
    /// them to `s` seconds from the code exchange.
    pub refresh_token_ttl: Option<Option<u64>>,
    /// Refresh tokens unused for this long die.
    pub refresh_token_idle_ttl: Option<u64>,
    /// Authorization-code lifetime (RFC 6749 recommends at most 10 minutes).
    pub code_ttl: u64,
    /// Dynamic client registrations unused for this long expire.
    pub client_registration_ttl: Option<u64>,
    /// The refresh rotation policy.
    pub refresh_policy: RefreshPolicy,
    /// Allow private-use URI scheme redirects (RFC 8252 §7.1) in registration.
    pub allow_private_use_redirect_uris: bool,
    /// Refuse registrations of public clients (`token_endpoint_auth_method=none`).
    pub disallow_public_client_registration: bool,
    /// Require an initial access token (RFC 7591 §3) at the registration endpoint.
    pub require_initial_access_token: bool,
    /// SHA-256 of the accepted initial access tokens (checked before the hook).
    pub initial_access_token_hashes: Vec<[u8; 32]>,
    /// Largest accepted registration body, in bytes.
    pub registration_body_limit: usize,
    /// Largest accepted token/revocation body, in bytes.
    pub form_body_limit: usize,
    /// Enable RFC 8693 token exchange.
    pub token_exchange: bool,
    /// Issue refresh tokens only when the grant includes `offline_access`
    /// (the OIDC convention MCP SEP-2207 describes). When false, refresh
    /// tokens go to every client registered for the `refresh_token` grant,
    /// as OAuth 2.1 intends, and `offline_access` is accepted but inert.
    pub refresh_requires_offline_access: bool,
    /// Revoke a user's earlier grants to the same client and resource when a
    /// new authorization completes.
    pub revoke_existing_grants: bool,
    /// Answer CORS preflights and decorate responses when `Origin` is sent.
    pub cors: bool,
    /// Which hooks are yielded to the driver.
    pub hooks: Hooks,
    /// Observes every error sent to a client.
    pub on_error: Option<ErrorObserver>,
    /// Client ID metadata documents: `Some` (with the fetch and cache
    /// policy) when on. Off by default.
    pub cimd: Option<CimdPolicy>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("issuer", &self.issuer)
            .field("token_endpoint", &self.token_endpoint)
            .field("resources", &self.resources)
            .field("refresh_policy", &self.refresh_policy)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The issuer URL.
    pub fn issuer_url(&self) -> &Url {
        &self.issuer_url
    }
}

/// Why a configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The issuer is not an https URL (or http on loopback) without query or fragment.
    InvalidIssuer(String),
    /// A resource URL is not absolute https (or http on loopback) without fragment.
    InvalidResource(String),
    /// No protected resource was configured.
    NoResources,
    /// Two resources share a canonical URL.
    DuplicateResource(String),
    /// An endpoint path does not start with `/` or collides with another.
    InvalidPath(String),
    /// A TTL is below [`MIN_TTL_SECS`] or otherwise out of range.
    TtlOutOfRange {
        /// Which setting.
        setting: &'static str,
        /// The value given.
        value: u64,
    },
    /// A scope is not a valid scope token (RFC 6749 §3.3).
    InvalidScope(String),
    /// A required scope is not in the scope catalogue.
    UnknownRequiredScope(String),
    /// The default resource index is out of range.
    InvalidDefaultResource,
    /// An initial access token is required but nothing can check one.
    InitialAccessTokenUncheckable,
    /// An authorization endpoint URL is invalid.
    InvalidAuthorizationEndpoint(String),
    /// The client ID metadata document policy is out of range.
    InvalidCimdPolicy(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidIssuer(s) => write!(f, "invalid issuer {s:?}: need https (or http on loopback), no query or fragment"),
            Self::InvalidResource(s) => write!(f, "invalid resource {s:?}: need an absolute https URL (http only on loopback) without fragment"),
            Self::NoResources => f.write_str("at least one protected resource is required"),
            Self::DuplicateResource(s) => write!(f, "resource {s} is configured twice"),
            Self::InvalidPath(s) => write!(f, "invalid or colliding endpoint path {s:?}"),
            Self::TtlOutOfRange { setting, value } => write!(f, "{setting} = {value} is out of range (minimum {MIN_TTL_SECS} s)"),
            Self::InvalidScope(s) => write!(f, "{s:?} is not a valid scope token"),
            Self::UnknownRequiredScope(s) => write!(f, "required scope {s:?} is not in scopes_supported"),
            Self::InvalidDefaultResource => f.write_str("default resource index out of range"),
            Self::InitialAccessTokenUncheckable => f.write_str("an initial access token is required, but no token hashes are configured and the registration hook is off"),
            Self::InvalidAuthorizationEndpoint(s) => write!(f, "invalid authorization endpoint {s:?}"),
            Self::InvalidCimdPolicy(s) => write!(f, "invalid client ID metadata document policy: {s}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Builds a [`Provider`](crate::Provider).
///
/// ```
/// use oauth_core::{ProviderBuilder, ProtectedResource};
/// let provider = ProviderBuilder::new("https://auth.example.com")
///     .resource(ProtectedResource::new("https://auth.example.com/mcp").unwrap().scopes_supported(["todo:read"]))
///     .scopes_supported(["todo:read", "todo:write", "offline_access"])
///     .build()
///     .unwrap();
/// assert_eq!(provider.config().token_endpoint, "https://auth.example.com/token");
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ProviderBuilder {
    issuer: String,
    authorization_endpoint: Option<String>,
    token_path: String,
    registration_path: Option<String>,
    revocation_path: String,
    resources: Vec<ProtectedResource>,
    default_resource: usize,
    scopes_supported: Vec<String>,
    scope_implies: BTreeMap<String, BTreeSet<String>>,
    access_token_ttl: u64,
    refresh_token_ttl: Option<Option<u64>>,
    refresh_token_idle_ttl: Option<u64>,
    code_ttl: u64,
    client_registration_ttl: Option<u64>,
    refresh_policy: RefreshPolicy,
    allow_private_use_redirect_uris: bool,
    disallow_public_client_registration: bool,
    require_initial_access_token: bool,
    initial_access_token_hashes: Vec<[u8; 32]>,
    registration_body_limit: usize,
    form_body_limit: usize,
    token_exchange: bool,
    refresh_requires_offline_access: bool,
    revoke_existing_grants: bool,
    cors: bool,
    hooks: Hooks,
    on_error: Option<ErrorObserverDebug>,
    cimd: bool,
    cimd_policy: CimdPolicy,
}

#[derive(Clone)]
struct ErrorObserverDebug(ErrorObserver);

impl fmt::Debug for ErrorObserverDebug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ErrorObserver")
    }
}

impl ProviderBuilder {
    /// Start from an issuer URL with the defaults: access tokens 1 h,
    /// refresh tokens 30 days with strict rotation, codes 10 min, dynamic
    /// registration at `/register` with a 90-day idle lifetime, token endpoint
    /// `/token`, revocation `/revoke`, authorization page `/authorize`.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            authorization_endpoint: None,
            token_path: "/token".into(),
            registration_path: Some("/register".into()),
            revocation_path: "/revoke".into(),
            resources: Vec::new(),
            default_resource: 0,
            scopes_supported: Vec::new(),
            scope_implies: BTreeMap::new(),
            access_token_ttl: 3600,
            refresh_token_ttl: Some(Some(30 * 86_400)),
            refresh_token_idle_ttl: None,
            code_ttl: 600,
            client_registration_ttl: Some(90 * 86_400),
            refresh_policy: RefreshPolicy::Strict,
            allow_private_use_redirect_uris: false,
            disallow_public_client_registration: false,
            require_initial_access_token: false,
            initial_access_token_hashes: Vec::new(),
            registration_body_limit: 64 * 1024,
            form_body_limit: 64 * 1024,
            token_exchange: false,
            refresh_requires_offline_access: false,
            revoke_existing_grants: true,
            cors: true,
            hooks: Hooks::default(),
            on_error: None,
            cimd: false,
            cimd_policy: CimdPolicy::default(),
        }
    }

    /// Add a protected resource. The first one added is the default.
    pub fn resource(mut self, resource: ProtectedResource) -> Self {
        self.resources.push(resource);
        self
    }

    /// Use the resource at `index` when a request names none.
    pub fn default_resource(mut self, index: usize) -> Self {
        self.default_resource = index;
        self
    }

    /// The absolute URL (or issuer-relative path) of the app's authorization page.
    pub fn authorization_endpoint(mut self, url: impl Into<String>) -> Self {
        self.authorization_endpoint = Some(url.into());
        self
    }

    /// The token endpoint path.
    pub fn token_path(mut self, path: impl Into<String>) -> Self {
        self.token_path = path.into();
        self
    }

    /// The registration endpoint path; `None` turns dynamic registration off.
    pub fn registration_path(mut self, path: Option<String>) -> Self {
        self.registration_path = path;
        self
    }

    /// The revocation endpoint path.
    pub fn revocation_path(mut self, path: impl Into<String>) -> Self {
        self.revocation_path = path.into();
        self
    }

    /// The AS scope catalogue.
    pub fn scopes_supported<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Declare that holding `scope` satisfies each of `implied` (e.g.
    /// `todo:write` implies `todo:read`). Implications are transitive.
    pub fn scope_implies<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        scope: impl Into<String>,
        implied: I,
    ) -> Self {
        self.scope_implies.entry(scope.into()).or_default().extend(implied.into_iter().map(Into::into));
        self
    }

    /// Access-token lifetime in seconds (minimum 60).
    pub fn access_token_ttl(mut self, secs: u64) -> Self {
        self.access_token_ttl = secs;
        self
    }

    /// Refresh-token lifetime: `None` issues no refresh tokens; `Some(None)`
    /// issues tokens bounded only by idle expiry and revocation.
    pub fn refresh_token_ttl(mut self, ttl: Option<Option<u64>>) -> Self {
        self.refresh_token_ttl = ttl;
        self
    }

    /// Sliding idle lifetime of refresh tokens.
    pub fn refresh_token_idle_ttl(mut self, secs: Option<u64>) -> Self {
        self.refresh_token_idle_ttl = secs;
        self
    }

    /// Authorization-code lifetime (60 to 600 seconds).
    pub fn code_ttl(mut self, secs: u64) -> Self {
        self.code_ttl = secs;
        self
    }

    /// Idle lifetime of dynamically registered clients; `None` keeps them forever.
    pub fn client_registration_ttl(mut self, secs: Option<u64>) -> Self {
        self.client_registration_ttl = secs;
        self
    }

    /// The refresh rotation policy.
    pub fn refresh_policy(mut self, policy: RefreshPolicy) -> Self {
        self.refresh_policy = policy;
        self
    }

    /// Allow private-use URI scheme redirects (native apps, RFC 8252 §7.1).
    pub fn allow_private_use_redirect_uris(mut self, allow: bool) -> Self {
        self.allow_private_use_redirect_uris = allow;
        self
    }

    /// Refuse dynamic registration of public clients.
    pub fn disallow_public_client_registration(mut self, disallow: bool) -> Self {
        self.disallow_public_client_registration = disallow;
        self
    }

    /// Require an initial access token at the registration endpoint. Accepted
    /// tokens are those given to [`initial_access_token`](Self::initial_access_token),
    /// or whatever the registration hook approves.
    pub fn require_initial_access_token(mut self, require: bool) -> Self {
        self.require_initial_access_token = require;
        self
    }

    /// Accept this initial access token (only its SHA-256 is kept).
    pub fn initial_access_token(mut self, token: &str) -> Self {
        self.initial_access_token_hashes.push(crate::crypto::sha256(token.as_bytes()));
        self
    }

    /// Largest accepted registration body (default 64 KiB).
    pub fn registration_body_limit(mut self, bytes: usize) -> Self {
        self.registration_body_limit = bytes;
        self
    }

    /// Enable RFC 8693 token exchange.
    pub fn token_exchange(mut self, enable: bool) -> Self {
        self.token_exchange = enable;
        self
    }

    /// Issue refresh tokens only to grants that include `offline_access`.
    pub fn refresh_requires_offline_access(mut self, require: bool) -> Self {
        self.refresh_requires_offline_access = require;
        self
    }

    /// Whether a completed authorization revokes the user's earlier grants to
    /// the same client and resource (default true).
    pub fn revoke_existing_grants(mut self, revoke: bool) -> Self {
        self.revoke_existing_grants = revoke;
        self
    }

    /// Turn CORS handling on or off (default on).
    pub fn cors(mut self, enable: bool) -> Self {
        self.cors = enable;
        self
    }

    /// Which hooks to yield to the driver.
    pub fn hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// Observe every error answered to a client.
    pub fn on_error(mut self, observer: impl Fn(&ErrorEvent) + Send + Sync + 'static) -> Self {
        self.on_error = Some(ErrorObserverDebug(Arc::new(observer)));
        self
    }

    /// Accept client ID metadata documents: https URLs as `client_id`, whose
    /// metadata the provider fetches through the driver's
    /// [`Driver::fetch`](crate::Driver::fetch), with `private_key_jwt` for
    /// the clients whose documents publish keys. Off by default; the
    /// driver must fetch under the rules in `docs/cimd.md`.
    pub fn client_id_metadata_documents(mut self, enable: bool) -> Self {
        self.cimd = enable;
        self
    }

    /// The fetch and cache policy for client ID metadata documents.
    pub fn cimd_policy(mut self, policy: CimdPolicy) -> Self {
        self.cimd_policy = policy;
        self
    }

    /// Validate and build.
    pub fn build(self) -> Result<crate::Provider, ConfigError> {
        self.validate().map(crate::Provider::from_config)
    }

    fn validate(self) -> Result<Config, ConfigError> {
        let issuer_url = Url::parse(&self.issuer).map_err(|_| ConfigError::InvalidIssuer(self.issuer.clone()))?;
        if !crate::resource::is_secure_or_loopback(&issuer_url)
            || issuer_url.query().is_some()
            || issuer_url.fragment().is_some()
            || !issuer_url.username().is_empty()
            || issuer_url.password().is_some()
        {
            return Err(ConfigError::InvalidIssuer(self.issuer));
        }
        // RFC 8414 §3: the issuer has no trailing slash (path-inserted
        // well-known URLs depend on it). `https://a` serialises as `https://a/`,
        // so an empty path is written back without it.
        let issuer = issuer_url.as_str().trim_end_matches('/').to_owned();
        let issuer_path = issuer_url.path().trim_end_matches('/').to_owned();

        for (setting, value, min) in [
            ("access_token_ttl", Some(self.access_token_ttl), MIN_TTL_SECS),
            ("code_ttl", Some(self.code_ttl), MIN_TTL_SECS),
            ("refresh_token_ttl", self.refresh_token_ttl.flatten(), MIN_TTL_SECS),
            ("refresh_token_idle_ttl", self.refresh_token_idle_ttl, MIN_TTL_SECS),
            ("client_registration_ttl", self.client_registration_ttl, MIN_TTL_SECS),
        ] {
            if let Some(value) = value {
                if value < min || value > 10 * 365 * 86_400 {
                    return Err(ConfigError::TtlOutOfRange { setting, value });
                }
            }
        }
        if self.code_ttl > 600 {
            return Err(ConfigError::TtlOutOfRange { setting: "code_ttl", value: self.code_ttl });
        }

        let mut paths = BTreeSet::new();
        let route = |p: &str| -> Result<String, ConfigError> {
            if !p.starts_with('/') || p.contains(['?', '#']) || p.chars().any(char::is_whitespace) {
                return Err(ConfigError::InvalidPath(p.to_owned()));
            }
            Ok(format!("{issuer_path}{p}"))
        };
        let token_path = route(&self.token_path)?;
        let revocation_path = route(&self.revocation_path)?;
        let registration_path = self.registration_path.as_deref().map(route).transpose()?;
        for p in [Some(&token_path), Some(&revocation_path), registration_path.as_ref()].into_iter().flatten() {
            if !paths.insert(p.clone()) {
                return Err(ConfigError::InvalidPath(p.clone()));
            }
        }

        if self.resources.is_empty() {
            return Err(ConfigError::NoResources);
        }
        if self.default_resource >= self.resources.len() {
            return Err(ConfigError::InvalidDefaultResource);
        }
        let mut seen = BTreeSet::new();
        for r in &self.resources {
            if !seen.insert(r.resource.as_str().to_owned()) {
                return Err(ConfigError::DuplicateResource(r.resource.to_string()));
            }
            for route in &r.routes {
                if !route.starts_with('/') || paths.contains(route) {
                    return Err(ConfigError::InvalidPath(route.clone()));
                }
            }
        }

        let catalogue: BTreeSet<&str> = self.scopes_supported.iter().map(String::as_str).collect();
        let all_scopes = self
            .scopes_supported
            .iter()
            .chain(self.resources.iter().flat_map(|r| r.scopes_supported.iter().chain(&r.challenge_scopes)))
            .chain(self.scope_implies.iter().flat_map(|(k, v)| std::iter::once(k).chain(v)));
        for s in all_scopes {
            if !is_scope_token(s) {
                return Err(ConfigError::InvalidScope(s.clone()));
            }
        }
        if !catalogue.is_empty() {
            for s in self.resources.iter().flat_map(|r| r.challenge_scopes.iter().chain(&r.scopes_supported)) {
                if !catalogue.contains(s.as_str()) {
                    return Err(ConfigError::UnknownRequiredScope(s.clone()));
                }
            }
        }

        if self.require_initial_access_token
            && self.initial_access_token_hashes.is_empty()
            && !self.hooks.client_registration
        {
            return Err(ConfigError::InitialAccessTokenUncheckable);
        }

        let authorization_endpoint = match self.authorization_endpoint {
            None => format!("{issuer}/authorize"),
            Some(e) if e.starts_with('/') => format!("{}{e}", issuer_url.origin().ascii_serialization()),
            Some(e) => {
                let u = Url::parse(&e).map_err(|_| ConfigError::InvalidAuthorizationEndpoint(e.clone()))?;
                if !crate::resource::is_secure_or_loopback(&u) || u.fragment().is_some() {
                    return Err(ConfigError::InvalidAuthorizationEndpoint(e));
                }
                u.to_string()
            }
        };

        let cimd = if self.cimd { Some(self.cimd_policy.validated()?) } else { None };
        let origin = issuer_url.origin().ascii_serialization();
        Ok(Config {
            token_endpoint: format!("{origin}{token_path}"),
            registration_endpoint: registration_path.as_ref().map(|p| format!("{origin}{p}")),
            revocation_endpoint: format!("{origin}{revocation_path}"),
            issuer,
            issuer_url,
            authorization_endpoint,
            token_path,
            registration_path,
            revocation_path,
            resources: self.resources,
            default_resource: self.default_resource,
            scopes_supported: self.scopes_supported,
            scope_implies: self.scope_implies,
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            refresh_token_idle_ttl: self.refresh_token_idle_ttl,
            code_ttl: self.code_ttl,
            client_registration_ttl: self.client_registration_ttl,
            refresh_policy: self.refresh_policy,
            allow_private_use_redirect_uris: self.allow_private_use_redirect_uris,
            disallow_public_client_registration: self.disallow_public_client_registration,
            require_initial_access_token: self.require_initial_access_token,
            initial_access_token_hashes: self.initial_access_token_hashes,
            registration_body_limit: self.registration_body_limit,
            form_body_limit: self.form_body_limit,
            token_exchange: self.token_exchange,
            refresh_requires_offline_access: self.refresh_requires_offline_access,
            revoke_existing_grants: self.revoke_existing_grants,
            cors: self.cors,
            hooks: self.hooks,
            on_error: self.on_error.map(|o| o.0),
            cimd,
        })
    }
}
