//! Application hooks, yielded to the driver as [`Step::Hook`](crate::Step::Hook).
//!
//! A hook is a question the core asks the application in the middle of a
//! flow. Because it travels through the drive loop like a storage operation,
//! the application may answer it asynchronously (refresh an upstream token,
//! query a database) on any runtime, `Send` or not. Only hooks switched on
//! in [`Hooks`](crate::Hooks) are ever asked.

use crate::error::{ErrorCode, OAuthError, reasons};

/// Which grant a token issuance comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssuanceKind {
    /// `authorization_code`.
    AuthorizationCode,
    /// `refresh_token`.
    RefreshToken,
    /// RFC 8693 token exchange.
    TokenExchange,
}

/// What the token-issuance hook is told.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct IssuanceContext {
    /// The grant type being served.
    pub kind: IssuanceKind,
    /// The client receiving the tokens.
    pub client_id: String,
    /// The user the grant belongs to.
    pub user_id: String,
    /// The grant's id (hex).
    pub grant_id: String,
    /// The scopes of the grant.
    pub grant_scope: Vec<String>,
    /// The scopes about to be put on the access token.
    pub scope: Vec<String>,
    /// The audience of the tokens.
    pub resource: String,
    /// The grant's decrypted props.
    pub props: serde_json::Value,
}

/// What the token-issuance hook may change. The default changes nothing.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct IssuanceDecision {
    /// Replace the grant's persisted props (re-encrypted under the grant key).
    pub new_props: Option<serde_json::Value>,
    /// Props for this access token only, on top of the grant's.
    pub access_token_props: Option<serde_json::Value>,
    /// Narrow the access token's scope; scopes outside the grant are dropped.
    pub access_token_scope: Option<Vec<String>>,
    /// This access token's lifetime (at least 60 s).
    pub access_token_ttl: Option<u64>,
    /// The refresh token's lifetime (code exchange only; at least 60 s).
    pub refresh_token_ttl: Option<u64>,
}

impl IssuanceDecision {
    /// Change nothing.
    pub fn unchanged() -> Self {
        Self::default()
    }

    /// Replace the grant's props.
    #[must_use]
    pub fn with_new_props(mut self, props: serde_json::Value) -> Self {
        self.new_props = Some(props);
        self
    }

    /// Add props to this access token only.
    #[must_use]
    pub fn with_access_token_props(mut self, props: serde_json::Value) -> Self {
        self.access_token_props = Some(props);
        self
    }

    /// Narrow the access token's scope.
    #[must_use]
    pub fn with_access_token_scope(mut self, scope: Vec<String>) -> Self {
        self.access_token_scope = Some(scope);
        self
    }

    /// Set this access token's lifetime.
    #[must_use]
    pub fn with_access_token_ttl(mut self, secs: u64) -> Self {
        self.access_token_ttl = Some(secs);
        self
    }

    /// Set the refresh token's lifetime.
    #[must_use]
    pub fn with_refresh_token_ttl(mut self, secs: u64) -> Self {
        self.refresh_token_ttl = Some(secs);
        self
    }
}

/// What the registration hook is told.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RegistrationContext {
    /// The client metadata as it will be registered (already validated).
    pub metadata: serde_json::Value,
    /// The initial access token the request carried, if any (RFC 7591 §3).
    pub initial_access_token: Option<String>,
    /// Whether the token matched one configured with the builder.
    pub initial_access_token_accepted: bool,
}

/// A hook's refusal, answered to the client as an OAuth error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookError {
    /// The error code (for issuance, `invalid_grant` also revokes the grant).
    pub code: ErrorCode,
    /// Text for the client developer.
    pub description: String,
}

impl HookError {
    /// A refusal with `code`.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self { code, description: description.into() }
    }

    pub(crate) fn into_oauth(self) -> OAuthError {
        OAuthError::new(self.code, reasons::HOOK_REJECTED, self.description)
    }
}

/// A question for the application.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum HookCall {
    /// Tokens are about to be issued.
    TokenIssuance(IssuanceContext),
    /// A client is about to be registered.
    ClientRegistration(RegistrationContext),
}

impl HookCall {
    /// The answer that changes nothing (approve as is).
    pub fn default_reply(&self) -> HookReply {
        match self {
            Self::TokenIssuance(_) => HookReply::TokenIssuance(Ok(IssuanceDecision::default())),
            Self::ClientRegistration(c) => {
                if c.initial_access_token.is_some() && !c.initial_access_token_accepted {
                    HookReply::ClientRegistration(Err(HookError::new(
                        ErrorCode::InvalidToken,
                        "Unknown initial access token",
                    )))
                } else {
                    HookReply::ClientRegistration(Ok(()))
                }
            }
        }
    }
}

/// The application's answer to a [`HookCall`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum HookReply {
    /// For [`HookCall::TokenIssuance`].
    TokenIssuance(Result<IssuanceDecision, HookError>),
    /// For [`HookCall::ClientRegistration`].
    ClientRegistration(Result<(), HookError>),
}
