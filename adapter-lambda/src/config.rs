//! The DynamoDB client's settings, from the environment.
//!
//! The store builds its client from `aws-sdk-dynamodb` alone, without
//! `aws-config`: that crate's default provider chain (profiles, SSO, IMDS,
//! web identity, ECS) adds some forty crates and a second HTTP stack, while
//! on Lambda the chain ends at its first link anyway, the environment
//! variables the runtime sets for the function's execution role. They hold
//! for the life of the execution environment, so they are read once, when
//! the function starts.

use std::fmt;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

use crate::store::DynamoStore;

/// How long one storage operation may take, retries included, before the
/// request is answered 503: DynamoDB answers in milliseconds, so anything
/// near this is an outage, and the client is better served by a prompt
/// `temporarily_unavailable` than by a function timeout.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one attempt may take before the SDK retries it.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts per operation (the SDK's standard retry mode, with backoff, for
/// throttling, 5xx and timeouts).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Where the store's table is and how to reach it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DynamoConfig {
    /// The table's name.
    pub table: String,
    /// The AWS region.
    pub region: String,
    /// Another endpoint than the region's (a local emulator, a VPC
    /// endpoint's DNS name); `None` for the region's own.
    pub endpoint_url: Option<String>,
    /// The credentials requests are signed with. Their `Debug` output
    /// redacts the secret.
    pub credentials: Credentials,
    /// See [`DEFAULT_OPERATION_TIMEOUT`].
    pub operation_timeout: Duration,
    /// See [`DEFAULT_ATTEMPT_TIMEOUT`].
    pub attempt_timeout: Duration,
    /// See [`DEFAULT_MAX_ATTEMPTS`].
    pub max_attempts: u32,
}

impl DynamoConfig {
    /// The settings from the environment:
    ///
    /// | variable | setting |
    /// |---|---|
    /// | `OAUTH_DYNAMODB_TABLE` (required) | [`table`](Self::table) |
    /// | `AWS_REGION`, else `AWS_DEFAULT_REGION` (one required; Lambda sets `AWS_REGION`) | [`region`](Self::region) |
    /// | `AWS_ENDPOINT_URL_DYNAMODB`, else `AWS_ENDPOINT_URL` | [`endpoint_url`](Self::endpoint_url) |
    /// | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (required; Lambda sets them), `AWS_SESSION_TOKEN` | [`credentials`](Self::credentials) |
    ///
    /// Empty variables count as unset.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required = |name: &str| var(name).ok_or_else(|| ConfigError(format!("{name} is not set")));
        let table = required("OAUTH_DYNAMODB_TABLE")?;
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .ok_or_else(|| ConfigError("AWS_REGION (or AWS_DEFAULT_REGION) is not set".to_owned()))?;
        let endpoint_url = var("AWS_ENDPOINT_URL_DYNAMODB").or_else(|| var("AWS_ENDPOINT_URL"));
        let credentials = Credentials::new(
            required("AWS_ACCESS_KEY_ID")?,
            required("AWS_SECRET_ACCESS_KEY")?,
            var("AWS_SESSION_TOKEN"),
            None,
            "environment",
        );
        Ok(Self {
            table,
            region,
            endpoint_url,
            credentials,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        })
    }

    /// A DynamoDB client with these settings.
    pub fn client(&self) -> Client {
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(self.operation_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .connect_timeout(self.attempt_timeout)
            .build();
        let mut builder = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(self.credentials.clone())
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(self.max_attempts.max(1)));
        if let Some(endpoint) = &self.endpoint_url {
            builder = builder.endpoint_url(endpoint);
        }
        Client::from_conf(builder.build())
    }

    /// The store on this table, with a new client.
    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(self.client(), self.table.clone())
    }
}

/// The environment does not describe a usable table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<DynamoConfig, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        DynamoConfig::from_vars(|name| vars.get(name).cloned())
    }

    const BASE: &[(&str, &str)] = &[
        ("OAUTH_DYNAMODB_TABLE", "oauth"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-example"),
    ];

    #[test]
    fn reads_the_standard_variables() {
        let c = config(BASE).unwrap();
        assert_eq!((c.table.as_str(), c.region.as_str(), c.endpoint_url.as_deref()), ("oauth", "eu-west-1", None));
        assert!(c.credentials.session_token().is_none());
        assert!(!format!("{c:?}").contains("wJalrXUtnFEMI"), "the secret key is redacted");

        let mut vars = BASE.to_vec();
        vars.extend([
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:2"),
            ("AWS_SESSION_TOKEN", "token"),
        ]);
        let c = config(&vars).unwrap();
        assert_eq!(c.endpoint_url.as_deref(), Some("http://127.0.0.1:2"), "the service-specific endpoint wins");
        assert_eq!(c.credentials.session_token(), Some("token"));
    }

    #[test]
    fn falls_back_and_refuses() {
        let vars: Vec<_> = BASE.iter().copied().filter(|(k, _)| *k != "AWS_REGION").collect();
        assert!(config(&vars).is_err());
        let mut with_default = vars.clone();
        with_default.push(("AWS_DEFAULT_REGION", "us-east-1"));
        assert_eq!(config(&with_default).unwrap().region, "us-east-1");
        let mut empty_table = BASE.to_vec();
        empty_table[0] = ("OAUTH_DYNAMODB_TABLE", " ");
        assert_eq!(config(&empty_table).unwrap_err().to_string(), "OAUTH_DYNAMODB_TABLE is not set");
        assert!(config(&BASE[..3]).is_err(), "no secret key");
    }
}
