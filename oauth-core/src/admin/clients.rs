//! Client administration as flows.
//!
//! Each method returns a [`Flow`] driven exactly like a request flow (with
//! [`drive`](crate::drive) or [`drive_blocking`](crate::drive_blocking)), so
//! it runs against whatever store the adapter already talks to.
//!
//! ```
//! use oauth_core::admin::ClientSpec;
//! use oauth_core::testing::{MemoryStore, SeededRng};
//! use oauth_core::{ProtectedResource, ProviderBuilder, UnixTime, drive_blocking};
//!
//! let provider = ProviderBuilder::new("https://as.example.com")
//!     .resource(ProtectedResource::new("https://as.example.com/mcp").unwrap())
//!     .build()
//!     .unwrap();
//! let (mut store, mut rng) = (MemoryStore::new(), SeededRng::new(1));
//! let now = UnixTime::from_secs(1_700_000_000);
//!
//! let spec = ClientSpec::new(["https://app.example/callback"]).client_name("Example");
//! let mut flow = provider.create_client(spec, now, &mut rng);
//! let created = drive_blocking(&mut flow, &mut store, |c| c.default_reply()).unwrap();
//! assert!(created.client_secret.is_some()); // shown once, stored only as a hash
//!
//! let mut flow = provider.get_client(&created.client.client_id, now);
//! let info = drive_blocking(&mut flow, &mut store, |c| c.default_reply()).unwrap().unwrap();
//! assert_eq!(info.client_name.as_deref(), Some("Example"));
//! ```

use std::fmt;

use crate::crypto::{self, SECRET_LEN};
use crate::endpoint::register::{
    self, ClientMetadata, REGISTRATION_ENTROPY, Registrar, RequestedMetadata, validate_metadata,
    validate_registration_ttl,
};
use crate::error::{ErrorCode, OAuthError, Reason, reasons};
use crate::flow::{Flow, Input, Machine, Step, as_entry, as_listed, as_written, one_reply};
use crate::provider::Provider;
use crate::records::{self, ClientRecord};
use crate::rng::{Entropy, SecureRandom};
use crate::storage::{Condition, Entry, Reply, StorageOp, StorageRequest};
use crate::time::UnixTime;

/// A public client asked for a new secret.
pub(crate) const PUBLIC_CLIENT_HAS_NO_SECRET: Reason = Reason::new("public_client_has_no_secret");

/// The most clients one [`Provider::list_clients`] page returns.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// The client prefix of the key schema (see `records`).
const CLIENT_PREFIX: &str = "client/";

/// What an administrator registers.
///
/// Settings left `None` take the RFC 7591 defaults, as in dynamic
/// registration: `client_secret_basic`, `["authorization_code"]`,
/// `["code"]`, and `web` unless a private-use redirect URI makes the client
/// `native`. Unlike dynamic registration, public clients may be created
/// whatever [`ProviderBuilder::disallow_public_client_registration`]
/// says, and a refused redirect URI is an error rather than silently dropped.
///
/// [`ProviderBuilder::disallow_public_client_registration`]: crate::ProviderBuilder::disallow_public_client_registration
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientSpec {
    /// Redirect URIs, matched exactly at the authorization endpoint.
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_method: Option<String>,
    /// Grant types the client may use.
    pub grant_types: Option<Vec<String>>,
    /// Response types the client may use (only `code`).
    pub response_types: Option<Vec<String>>,
    /// `web` or `native` (OIDC Registration §2).
    pub application_type: Option<String>,
    /// Space-separated scopes the client declares it may ask for.
    pub scope: Option<String>,
    /// Human-readable name shown on consent pages.
    pub client_name: Option<String>,
    /// The client's home page.
    pub client_uri: Option<String>,
    /// The client's logo.
    pub logo_uri: Option<String>,
    /// The client's privacy policy.
    pub policy_uri: Option<String>,
    /// The client's terms of service.
    pub tos_uri: Option<String>,
    /// People responsible for the client.
    pub contacts: Vec<String>,
    /// An identifier of the client software.
    pub software_id: Option<String>,
    /// The version of the client software.
    pub software_version: Option<String>,
    /// Idle lifetime in seconds, renewed by use as for dynamic clients;
    /// `None` (the default) keeps the client until it is deleted.
    pub registration_ttl: Option<u64>,
}

impl ClientSpec {
    /// A confidential client with these redirect URIs and every other
    /// setting at its default.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(redirect_uris: I) -> Self {
        Self { redirect_uris: redirect_uris.into_iter().map(Into::into).collect(), ..Self::default() }
    }

    /// Make the client public (`token_endpoint_auth_method = none`): it gets
    /// no secret and must use PKCE.
    #[must_use]
    pub fn public(mut self) -> Self {
        self.token_endpoint_auth_method = Some("none".into());
        self
    }

    /// Set the token endpoint authentication method.
    #[must_use]
    pub fn token_endpoint_auth_method(mut self, method: impl Into<String>) -> Self {
        self.token_endpoint_auth_method = Some(method.into());
        self
    }

    /// Set the grant types.
    #[must_use]
    pub fn grant_types<I: IntoIterator<Item = S>, S: Into<String>>(mut self, grant_types: I) -> Self {
        self.grant_types = Some(grant_types.into_iter().map(Into::into).collect());
        self
    }

    /// Set the response types.
    #[must_use]
    pub fn response_types<I: IntoIterator<Item = S>, S: Into<String>>(mut self, response_types: I) -> Self {
        self.response_types = Some(response_types.into_iter().map(Into::into).collect());
        self
    }

    /// Set the application type (`web` or `native`).
    #[must_use]
    pub fn application_type(mut self, application_type: impl Into<String>) -> Self {
        self.application_type = Some(application_type.into());
        self
    }

    /// Set the declared scope.
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Set the display name.
    #[must_use]
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = Some(name.into());
        self
    }

    /// Set the home page.
    #[must_use]
    pub fn client_uri(mut self, uri: impl Into<String>) -> Self {
        self.client_uri = Some(uri.into());
        self
    }

    /// Set the logo.
    #[must_use]
    pub fn logo_uri(mut self, uri: impl Into<String>) -> Self {
        self.logo_uri = Some(uri.into());
        self
    }

    /// Set the privacy policy.
    #[must_use]
    pub fn policy_uri(mut self, uri: impl Into<String>) -> Self {
        self.policy_uri = Some(uri.into());
        self
    }

    /// Set the terms of service.
    #[must_use]
    pub fn tos_uri(mut self, uri: impl Into<String>) -> Self {
        self.tos_uri = Some(uri.into());
        self
    }

    /// Set the contacts.
    #[must_use]
    pub fn contacts<I: IntoIterator<Item = S>, S: Into<String>>(mut self, contacts: I) -> Self {
        self.contacts = contacts.into_iter().map(Into::into).collect();
        self
    }

    /// Set the software identifier.
    #[must_use]
    pub fn software_id(mut self, id: impl Into<String>) -> Self {
        self.software_id = Some(id.into());
        self
    }

    /// Set the software version.
    #[must_use]
    pub fn software_version(mut self, version: impl Into<String>) -> Self {
        self.software_version = Some(version.into());
        self
    }

    /// Let the client expire after `secs` seconds without use (at least 60).
    #[must_use]
    pub fn registration_ttl(mut self, secs: u64) -> Self {
        self.registration_ttl = Some(secs);
        self
    }

    fn requested(self) -> RequestedMetadata {
        RequestedMetadata {
            redirect_uris: Some(self.redirect_uris),
            token_endpoint_auth_method: self.token_endpoint_auth_method,
            grant_types: self.grant_types,
            response_types: self.response_types,
            application_type: self.application_type,
            scope: self.scope,
            client_name: self.client_name,
            client_uri: self.client_uri,
            logo_uri: self.logo_uri,
            policy_uri: self.policy_uri,
            tos_uri: self.tos_uri,
            contacts: (!self.contacts.is_empty()).then_some(self.contacts),
            software_id: self.software_id,
            software_version: self.software_version,
        }
    }

    /// Validate with the registration rules; also returns the lifetime.
    fn validate(self, provider: &Provider) -> Result<(ClientMetadata, Option<u64>), OAuthError> {
        let ttl = validate_registration_ttl(self.registration_ttl)?;
        Ok((validate_metadata(provider.config(), self.requested(), Registrar::Admin)?, ttl))
    }
}

/// Everything a client was registered with, for a read-modify-write
/// [`Provider::update_client`].
impl From<&ClientInfo> for ClientSpec {
    fn from(info: &ClientInfo) -> Self {
        Self {
            redirect_uris: info.redirect_uris.clone(),
            token_endpoint_auth_method: Some(info.token_endpoint_auth_method.clone()),
            grant_types: Some(info.grant_types.clone()),
            response_types: Some(info.response_types.clone()),
            application_type: Some(info.application_type.clone()),
            scope: info.scope.clone(),
            client_name: info.client_name.clone(),
            client_uri: info.client_uri.clone(),
            logo_uri: info.logo_uri.clone(),
            policy_uri: info.policy_uri.clone(),
            tos_uri: info.tos_uri.clone(),
            contacts: info.contacts.clone(),
            software_id: info.software_id.clone(),
            software_version: info.software_version.clone(),
            registration_ttl: info.registration_ttl,
        }
    }
}

/// A registered client as stored. It never holds the secret or its hash;
/// `confidential` says whether one exists.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The client identifier.
    pub client_id: String,
    /// Whether the client authenticates with a secret.
    pub confidential: bool,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// The token endpoint authentication method.
    pub token_endpoint_auth_method: String,
    /// Registered grant types.
    pub grant_types: Vec<String>,
    /// Registered response types.
    pub response_types: Vec<String>,
    /// `web` or `native`.
    pub application_type: String,
    /// Display name.
    pub client_name: Option<String>,
    /// Home page.
    pub client_uri: Option<String>,
    /// Logo.
    pub logo_uri: Option<String>,
    /// Privacy policy.
    pub policy_uri: Option<String>,
    /// Terms of service.
    pub tos_uri: Option<String>,
    /// Contacts.
    pub contacts: Vec<String>,
    /// Declared scope.
    pub scope: Option<String>,
    /// Software identifier.
    pub software_id: Option<String>,
    /// Software version.
    pub software_version: Option<String>,
    /// When the client was registered.
    pub created_at: UnixTime,
    /// Idle lifetime, for clients that expire when unused.
    pub registration_ttl: Option<u64>,
    /// When the registration expires unless used before.
    pub expires_at: Option<UnixTime>,
    /// The stored revision, to pass to [`Provider::update_client`].
    pub revision: u64,
}

impl ClientInfo {
    fn from_record(rec: ClientRecord, revision: u64, expires_at: Option<UnixTime>) -> Self {
        Self {
            confidential: rec.secret_hash.is_some(),
            client_id: rec.client_id,
            redirect_uris: rec.redirect_uris,
            token_endpoint_auth_method: rec.token_endpoint_auth_method,
            grant_types: rec.grant_types,
            response_types: rec.response_types,
            application_type: rec.application_type,
            client_name: rec.client_name,
            client_uri: rec.client_uri,
            logo_uri: rec.logo_uri,
            policy_uri: rec.policy_uri,
            tos_uri: rec.tos_uri,
            contacts: rec.contacts,
            scope: rec.scope,
            software_id: rec.software_id,
            software_version: rec.software_version,
            created_at: rec.created_at,
            registration_ttl: rec.registration_ttl,
            expires_at,
            revision,
        }
    }
}

/// A client with a freshly minted secret, which exists nowhere else: only
/// its hash is stored. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegisteredClient {
    /// The client as stored.
    pub client: ClientInfo,
    /// The secret, when one was minted by this call.
    pub client_secret: Option<String>,
}

impl fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("client", &self.client)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// How an update ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[allow(clippy::large_enum_variant, reason = "returned once per admin call; boxing would only burden callers")]
pub enum ClientUpdate {
    /// Written. `client_secret` is set only when a secret was minted: on
    /// rotation, or when a public client became confidential.
    Updated(RegisteredClient),
    /// No live client has this id.
    NotFound,
    /// The client changed since it was read; read it again and retry.
    Conflict {
        /// The stored revision, when known (a race lost at write time
        /// leaves it unknown).
        current_revision: Option<u64>,
    },
}

/// One page of [`Provider::list_clients`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientPage {
    /// Clients in ascending key order.
    pub clients: Vec<ClientInfo>,
    /// Pass this as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl Provider {
    /// Register a client on the administrator's authority. The secret (for a
    /// confidential client) is returned once and stored only as a hash.
    pub fn create_client(
        &self,
        spec: ClientSpec,
        now: UnixTime,
        rng: &mut dyn SecureRandom,
    ) -> Flow<Result<RegisteredClient, OAuthError>> {
        let created = spec.validate(self).and_then(|(metadata, ttl)| {
            let mut entropy = Entropy::draw(rng, REGISTRATION_ENTROPY);
            let (client_id, secret) = register::mint_credentials(&mut entropy, metadata.is_confidential())?;
            let hash = secret.as_deref().map(crypto::client_secret_hash);
            let record = metadata.into_record(client_id, hash, now, ttl);
            let expires_at = ttl.map(|t| now.plus(t));
            let op = register::insert_op(&record, expires_at)?;
            Ok((op, RegisteredClient { client: ClientInfo::from_record(record, 1, expires_at), client_secret: secret }))
        });
        match created {
            Ok((op, client)) => one_shot(now, op, move |reply| match as_written(reply)? {
                true => Ok(client),
                false => Err(OAuthError::server_error(register::CLIENT_ID_COLLISION)),
            }),
            Err(err) => Flow::ready(Err(err)),
        }
    }

    /// Read a live client; `None` when absent or expired.
    pub fn get_client(&self, client_id: &str, now: UnixTime) -> Flow<Result<Option<ClientInfo>, OAuthError>> {
        if !plausible_id(client_id) {
            return Flow::ready(Ok(None));
        }
        let id = client_id.to_owned();
        let op = StorageOp::Get { key: records::client_key(client_id) };
        one_shot(now, op, move |reply| match as_entry(reply)? {
            Some(entry) => {
                decode(&entry, &id).map(|rec| Some(ClientInfo::from_record(rec, entry.revision, entry.expires_at)))
            }
            None => Ok(None),
        })
    }

    /// Replace a client's settings with `spec`, if it is still at
    /// `expected_revision` (compare-and-swap). The id, creation time and
    /// secret are kept; a client made public loses its secret, and a public
    /// client made confidential gets a new one. Everything else is replaced,
    /// including the registration lifetime, so start from
    /// `ClientSpec::from(&info)` to change one setting.
    pub fn update_client(
        &self,
        client_id: &str,
        expected_revision: u64,
        spec: ClientSpec,
        now: UnixTime,
        rng: &mut dyn SecureRandom,
    ) -> Flow<Result<ClientUpdate, OAuthError>> {
        if !plausible_id(client_id) {
            return Flow::ready(Ok(ClientUpdate::NotFound));
        }
        match spec.validate(self) {
            Ok((metadata, ttl)) => Update::flow(
                client_id,
                expected_revision,
                Change::Replace { metadata: Box::new(metadata), ttl },
                now,
                rng,
            ),
            Err(err) => Flow::ready(Err(err)),
        }
    }

    /// Give a confidential client a new secret, if it is still at
    /// `expected_revision`. The old secret stops working at once.
    pub fn rotate_client_secret(
        &self,
        client_id: &str,
        expected_revision: u64,
        now: UnixTime,
        rng: &mut dyn SecureRandom,
    ) -> Flow<Result<ClientUpdate, OAuthError>> {
        if !plausible_id(client_id) {
            return Flow::ready(Ok(ClientUpdate::NotFound));
        }
        Update::flow(client_id, expected_revision, Change::RotateSecret, now, rng)
    }

    /// Delete a client; `true` when a live one was deleted. Grants and
    /// tokens already issued to it are not touched by this call.
    pub fn delete_client(&self, client_id: &str, now: UnixTime) -> Flow<Result<bool, OAuthError>> {
        if !plausible_id(client_id) {
            return Flow::ready(Ok(false));
        }
        let op = StorageOp::Take { key: records::client_key(client_id) };
        one_shot(now, op, |reply| as_entry(reply).map(|e| e.is_some()))
    }

    /// One page of live clients, at most `limit` (1 to [`MAX_LIST_LIMIT`])
    /// of them, after `cursor` when given. Records that cannot be read are
    /// skipped rather than failing every page after them.
    pub fn list_clients(
        &self,
        cursor: Option<String>,
        limit: u32,
        now: UnixTime,
    ) -> Flow<Result<ClientPage, OAuthError>> {
        let op = StorageOp::List { prefix: CLIENT_PREFIX.to_owned(), cursor, limit: limit.clamp(1, MAX_LIST_LIMIT) };
        one_shot(now, op, |reply| {
            let (entries, next_cursor) = as_listed(reply)?;
            let clients = entries
                .into_iter()
                .filter_map(|(key, entry)| {
                    let rec: ClientRecord = records::decode(&entry.value)?;
                    (records::client_key(&rec.client_id) == key)
                        .then(|| ClientInfo::from_record(rec, entry.revision, entry.expires_at))
                })
                .collect();
            Ok(ClientPage { clients, next_cursor })
        })
    }
}

/// Ids the store could hold. Anything else is answered as absent without a
/// round trip.
fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 512 && !id.chars().any(char::is_control)
}

fn decode(entry: &Entry, client_id: &str) -> Result<ClientRecord, OAuthError> {
    records::decode::<ClientRecord>(&entry.value)
        .filter(|rec| rec.client_id == client_id)
        .ok_or_else(|| OAuthError::server_error(reasons::CORRUPT_RECORD))
}

type Finish<T> = Box<dyn FnOnce(Reply) -> Result<T, OAuthError> + Send>;

/// A flow of one storage operation whose reply `finish` interprets.
fn one_shot<T: Send + 'static>(
    now: UnixTime,
    op: StorageOp,
    finish: impl FnOnce(Reply) -> Result<T, OAuthError> + Send + 'static,
) -> Flow<Result<T, OAuthError>> {
    Flow::new(OneShot { now, op: Some(op), finish: Some(Box::new(finish)) })
}

struct OneShot<T> {
    now: UnixTime,
    op: Option<StorageOp>,
    finish: Option<Finish<T>>,
}

impl<T: Send> Machine for OneShot<T> {
    type Output = Result<T, OAuthError>;

    fn advance(&mut self, input: Input) -> Step<Self::Output> {
        match (self.op.take(), input) {
            (Some(op), Input::Start) => Step::Storage(StorageRequest { now: self.now, ops: vec![op] }),
            (None, input) => match self.finish.take() {
                Some(finish) => Step::Done(one_reply(input).and_then(finish)),
                None => Step::Done(Err(OAuthError::server_error(reasons::DRIVER_PROTOCOL))),
            },
            (Some(_), _) => {
                self.finish = None;
                Step::Done(Err(OAuthError::server_error(reasons::DRIVER_PROTOCOL)))
            }
        }
    }
}

enum Change {
    Replace { metadata: Box<ClientMetadata>, ttl: Option<u64> },
    RotateSecret,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum UpdateStage {
    Begin,
    AwaitRead,
    AwaitWrite,
    Finished,
}

/// Read, check the revision, write with `IfRevision`: two round trips, and
/// a concurrent change between them makes the write fail rather than be lost.
struct Update {
    now: UnixTime,
    client_id: String,
    expected: u64,
    change: Option<Change>,
    fresh_secret: String,
    /// The outcome to report if the write lands.
    written: Option<RegisteredClient>,
    stage: UpdateStage,
}

impl Update {
    fn flow(
        client_id: &str,
        expected: u64,
        change: Change,
        now: UnixTime,
        rng: &mut dyn SecureRandom,
    ) -> Flow<Result<ClientUpdate, OAuthError>> {
        let mut entropy = Entropy::draw(rng, SECRET_LEN);
        let Some(raw) = entropy.take::<SECRET_LEN>() else {
            return Flow::ready(Err(OAuthError::server_error(reasons::ENTROPY_EXHAUSTED)));
        };
        Flow::new(Self {
            now,
            client_id: client_id.to_owned(),
            expected,
            change: Some(change),
            fresh_secret: crypto::mint_client_secret(&raw),
            written: None,
            stage: UpdateStage::Begin,
        })
    }

    fn key(&self) -> String {
        records::client_key(&self.client_id)
    }

    /// Build the new record from the stored one and ask for the write.
    fn write(&mut self, entry: Option<Entry>) -> Result<Step<Result<ClientUpdate, OAuthError>>, OAuthError> {
        let Some(entry) = entry else {
            return Ok(Step::Done(Ok(ClientUpdate::NotFound)));
        };
        if entry.revision != self.expected {
            return Ok(Step::Done(Ok(ClientUpdate::Conflict { current_revision: Some(entry.revision) })));
        }
        let stored = decode(&entry, &self.client_id)?;
        let fresh = core::mem::take(&mut self.fresh_secret);
        let change = self.change.take().ok_or_else(|| OAuthError::server_error(reasons::DRIVER_PROTOCOL))?;
        let (record, expires_at, minted) = match change {
            Change::Replace { metadata, ttl } => {
                let (hash, minted) = match (metadata.is_confidential(), stored.secret_hash) {
                    (false, _) => (None, None),
                    (true, Some(kept)) => (Some(kept), None),
                    (true, None) => (Some(crypto::client_secret_hash(&fresh)), Some(fresh)),
                };
                let record = (*metadata).into_record(stored.client_id, hash, stored.created_at, ttl);
                (record, ttl.map(|t| self.now.plus(t)), minted)
            }
            Change::RotateSecret => {
                if stored.secret_hash.is_none() {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidClientMetadata,
                        PUBLIC_CLIENT_HAS_NO_SECRET,
                        "A public client has no secret to rotate",
                    ));
                }
                let record = ClientRecord { secret_hash: Some(crypto::client_secret_hash(&fresh)), ..stored };
                (record, entry.expires_at, Some(fresh))
            }
        };
        let value = records::encode(&record).ok_or_else(|| OAuthError::server_error(register::RECORD_ENCODING))?;
        let revision = self.expected.saturating_add(1);
        let op = StorageOp::Put {
            key: self.key(),
            value,
            revision,
            expires_at,
            condition: Condition::IfRevision(self.expected),
        };
        self.written = Some(RegisteredClient {
            client: ClientInfo::from_record(record, revision, expires_at),
            client_secret: minted,
        });
        self.stage = UpdateStage::AwaitWrite;
        Ok(Step::Storage(StorageRequest { now: self.now, ops: vec![op] }))
    }
}

impl Machine for Update {
    type Output = Result<ClientUpdate, OAuthError>;

    fn advance(&mut self, input: Input) -> Step<Self::Output> {
        let stage = core::mem::replace(&mut self.stage, UpdateStage::Finished);
        let step = match (stage, input) {
            (UpdateStage::Begin, Input::Start) => {
                self.stage = UpdateStage::AwaitRead;
                Ok(Step::Storage(StorageRequest { now: self.now, ops: vec![StorageOp::Get { key: self.key() }] }))
            }
            (UpdateStage::AwaitRead, input) => one_reply(input).and_then(as_entry).and_then(|e| self.write(e)),
            (UpdateStage::AwaitWrite, input) => {
                one_reply(input).and_then(as_written).map(|landed| match (landed, self.written.take()) {
                    (true, Some(client)) => Step::Done(Ok(ClientUpdate::Updated(client))),
                    (true, None) => Step::Done(Err(OAuthError::server_error(reasons::DRIVER_PROTOCOL))),
                    (false, _) => Step::Done(Ok(ClientUpdate::Conflict { current_revision: None })),
                })
            }
            _ => Err(OAuthError::server_error(reasons::DRIVER_PROTOCOL)),
        };
        step.unwrap_or_else(|err| {
            self.stage = UpdateStage::Finished;
            self.written = None;
            Step::Done(Err(err))
        })
    }
}
