//! The stored records and their keys.
//!
//! Every value written by the core is `[FORMAT_VERSION] ‖ JSON`. The leading
//! byte lets a later release change the encoding and still read old records;
//! JSON keeps records inspectable with ordinary database tools and identical
//! on every backend. Byte strings (hashes, ciphertexts) are base64url.
//!
//! # Keys
//!
//! | key | record | expiry |
//! |---|---|---|
//! | `client/{client_id}` | [`ClientRecord`] | registration TTL (dynamic clients), renewed by use |
//! | `grant/{grant_id}` | [`GrantRecord`] | code TTL until redeemed, then the refresh token's |
//! | `token/{grant_id}/{credential_id}` | [`AccessRecord`] | access-token TTL |
//! | `user/{b64url(user_id)}/{grant_id}` | [`UserGrantRecord`] | as the grant |
//! | `cimd/{hex(sha256(url))}` | `cimd::CimdRecord` (a cached metadata document) | its cache lifetime |
//! | `jti/{hex(sha256(client_id ‖ 0 ‖ jti))}` | a spent client assertion | `exp` + clock skew, at least 60 s |
//!
//! `grant_id` and `credential_id` are lower-case hex. Listing by the prefix
//! `token/{grant_id}/` finds every access token of a grant (revocation), and
//! `user/{…}/` every grant of a user (account pages, re-consent).

use base64ct::{Base64UrlUnpadded, Encoding};
use serde::{Deserialize, Serialize};

use crate::crypto::{Digest32, GrantId};
use crate::time::UnixTime;

/// The encoding version written as the first byte of every value.
pub(crate) const FORMAT_VERSION: u8 = 1;

pub(crate) fn encode<T: Serialize>(record: &T) -> Option<Vec<u8>> {
    let mut out = vec![FORMAT_VERSION];
    serde_json::to_writer(&mut out, record).ok()?;
    Some(out)
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, json)) => serde_json::from_slice(json).ok(),
        _ => None,
    }
}

pub(crate) fn client_key(client_id: &str) -> String {
    format!("client/{client_id}")
}

pub(crate) fn grant_key(grant_id: GrantId) -> String {
    format!("grant/{}", grant_id.to_hex())
}

pub(crate) fn token_prefix(grant_id: GrantId) -> String {
    format!("token/{}/", grant_id.to_hex())
}

pub(crate) fn token_key(grant_id: GrantId, credential_id: &Digest32) -> String {
    format!("token/{}/{}", grant_id.to_hex(), crate::crypto::hex(credential_id))
}

pub(crate) fn user_prefix(user_id: &str) -> String {
    format!("user/{}/", Base64UrlUnpadded::encode_string(user_id.as_bytes()))
}

pub(crate) fn user_grant_key(user_id: &str, grant_id: GrantId) -> String {
    format!("{}{}", user_prefix(user_id), grant_id.to_hex())
}

/// A registered client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClientRecord {
    pub(crate) client_id: String,
    /// `None` for public clients.
    #[serde(default, with = "opt_b64_32")]
    pub(crate) secret_hash: Option<Digest32>,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) token_endpoint_auth_method: String,
    pub(crate) grant_types: Vec<String>,
    pub(crate) response_types: Vec<String>,
    pub(crate) application_type: String,
    #[serde(default)]
    pub(crate) client_name: Option<String>,
    #[serde(default)]
    pub(crate) client_uri: Option<String>,
    #[serde(default)]
    pub(crate) logo_uri: Option<String>,
    #[serde(default)]
    pub(crate) policy_uri: Option<String>,
    #[serde(default)]
    pub(crate) tos_uri: Option<String>,
    #[serde(default)]
    pub(crate) contacts: Vec<String>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
    #[serde(default)]
    pub(crate) software_id: Option<String>,
    #[serde(default)]
    pub(crate) software_version: Option<String>,
    pub(crate) created_at: UnixTime,
    /// Set for dynamically registered clients: how long the registration
    /// lives after its last use.
    #[serde(default)]
    pub(crate) registration_ttl: Option<u64>,
}

/// The pending authorization code of a grant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct CodeState {
    #[serde(with = "b64_32")]
    pub(crate) id: Digest32,
    #[serde(with = "b64")]
    pub(crate) wrapped_key: Vec<u8>,
    /// The S256 `code_challenge`.
    pub(crate) challenge: String,
    pub(crate) redirect_uri: String,
    /// Whether the authorization request carried `redirect_uri` explicitly,
    /// in which case the token request must repeat it (RFC 6749 §4.1.3).
    pub(crate) redirect_uri_explicit: bool,
    pub(crate) expires_at: UnixTime,
}

/// One refresh token of a grant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RefreshSlot {
    #[serde(with = "b64_32")]
    pub(crate) id: Digest32,
    #[serde(with = "b64")]
    pub(crate) wrapped_key: Vec<u8>,
    pub(crate) issued_at: UnixTime,
}

/// A grant: one user's authorization of one client for one resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct GrantRecord {
    pub(crate) grant_id: String,
    pub(crate) user_id: String,
    pub(crate) client_id: String,
    pub(crate) scope: Vec<String>,
    /// The canonical resource (RFC 8707 audience) the grant is for.
    pub(crate) resource: String,
    /// The app's props, sealed under the grant key.
    #[serde(with = "b64")]
    pub(crate) props: Vec<u8>,
    /// Non-secret metadata the app attached at consent time (plaintext).
    #[serde(default)]
    pub(crate) metadata: serde_json::Value,
    pub(crate) created_at: UnixTime,
    /// Absolute end of the grant, if any.
    #[serde(default)]
    pub(crate) expires_at: Option<UnixTime>,
    /// Present until the code is redeemed.
    #[serde(default)]
    pub(crate) code: Option<CodeState>,
    /// The id of the redeemed code, kept to recognise a replay (RFC 6749 §4.1.2).
    #[serde(default, with = "opt_b64_32")]
    pub(crate) redeemed_code: Option<Digest32>,
    /// The live refresh token.
    #[serde(default)]
    pub(crate) refresh: Option<RefreshSlot>,
    /// The token it replaced, accepted under the `grace` policy until `refresh`
    /// is used, and recognised as reuse under the `strict` policy.
    #[serde(default)]
    pub(crate) previous_refresh: Option<RefreshSlot>,
    /// Sliding expiry: the refresh token dies if unused this long.
    #[serde(default)]
    pub(crate) refresh_idle_ttl: Option<u64>,
    /// The absolute end of the refresh-token chain, if bounded.
    #[serde(default)]
    pub(crate) refresh_expires_at: Option<UnixTime>,
    /// Ids (hex) of refresh tokens rotated away before `previous_refresh`,
    /// newest last, so reuse of an older stolen token is still recognised.
    #[serde(default)]
    pub(crate) retired_refresh: Vec<String>,
}

/// An access token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct AccessRecord {
    pub(crate) grant_id: String,
    pub(crate) user_id: String,
    pub(crate) client_id: String,
    pub(crate) scope: Vec<String>,
    pub(crate) audience: String,
    pub(crate) issued_at: UnixTime,
    pub(crate) expires_at: UnixTime,
    /// `{"props": …, "token_props": …}` sealed under this token's KEK.
    #[serde(with = "b64")]
    pub(crate) props: Vec<u8>,
}

/// The per-user index entry of a grant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct UserGrantRecord {
    pub(crate) grant_id: String,
    pub(crate) client_id: String,
    pub(crate) resource: String,
    pub(crate) scope: Vec<String>,
    #[serde(default)]
    pub(crate) metadata: serde_json::Value,
    pub(crate) created_at: UnixTime,
}

mod b64 {
    use super::{Base64UrlUnpadded, Encoding};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Base64UrlUnpadded::encode_string(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        Base64UrlUnpadded::decode_vec(&s).map_err(serde::de::Error::custom)
    }
}

mod b64_32 {
    use super::{Base64UrlUnpadded, Encoding};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Base64UrlUnpadded::encode_string(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let v = Base64UrlUnpadded::decode_vec(&s).map_err(serde::de::Error::custom)?;
        v.try_into().map_err(|_| serde::de::Error::custom("expected 32 bytes"))
    }
}

mod opt_b64_32 {
    use super::{Base64UrlUnpadded, Encoding};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&Base64UrlUnpadded::encode_string(v)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
        let Some(s) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let v = Base64UrlUnpadded::decode_vec(&s).map_err(serde::de::Error::custom)?;
        v.try_into().map(Some).map_err(|_| serde::de::Error::custom("expected 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_version_byte() {
        let rec = UserGrantRecord {
            grant_id: "ab".into(),
            client_id: "c".into(),
            resource: "https://x/mcp".into(),
            scope: vec!["a".into()],
            metadata: serde_json::json!({"k": 1}),
            created_at: UnixTime::from_secs(5),
        };
        let bytes = encode(&rec).unwrap();
        assert_eq!(bytes.first(), Some(&FORMAT_VERSION));
        assert_eq!(decode::<UserGrantRecord>(&bytes), Some(rec));
        assert_eq!(decode::<UserGrantRecord>(&[]), None);
        assert_eq!(decode::<UserGrantRecord>(&[2, b'{', b'}']), None);
    }

    #[test]
    fn user_keys_cannot_collide_through_separators() {
        assert_ne!(user_prefix("a/b"), user_prefix("a"));
        assert!(!user_prefix("a/").contains("a//"));
    }
}
