//! Credentials, hashes and props encryption.
//!
//! # Credential format
//!
//! Authorization codes, access tokens and refresh tokens are
//! `<kind prefix><base64url(grant id ‖ secret)>`: a 16-byte random grant id
//! and a 32-byte random secret (256 bits). The grant id says which grant the
//! credential belongs to, so revocation can find every record of a grant,
//! but it is random and reveals nothing about the user or the client.
//! The prefix (`mcp_ac_`, `mcp_at_`, `mcp_rt_`) lets secret scanners spot a
//! leaked credential and lets the server refuse a refresh token presented as
//! an access token before any lookup.
//!
//! # What is stored
//!
//! Only `SHA-256("oauth-core/v1/id" ‖ 0 ‖ credential)` identifies a credential
//! in storage. Client secrets are 256-bit random strings stored as
//! `SHA-256("oauth-core/v1/client-secret" ‖ 0 ‖ secret)`: with that much
//! entropy a slow password hash adds nothing.
//!
//! # Props encryption
//!
//! Each grant has a random 256-bit key. The grant's props are sealed with
//! ChaCha20-Poly1305 under it; the key itself is stored only *wrapped* (also
//! ChaCha20-Poly1305) under a key-encryption key derived from each live
//! credential, `HMAC-SHA256(credential, "oauth-core/v1/kek")`. An access-token
//! record carries the props sealed directly under its own token's KEK, so the
//! per-request check costs one hash, one lookup and one decryption. Without a
//! credential the stored data cannot be decrypted, and stored data alone does
//! not yield a credential.

use base64ct::{Base64UrlUnpadded, Encoding};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Bytes in a grant id.
pub(crate) const GRANT_ID_LEN: usize = 16;
/// Bytes of secret in every credential.
pub(crate) const SECRET_LEN: usize = 32;
/// Bytes in a ChaCha20-Poly1305 nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// A 256-bit symmetric key.
pub(crate) type SymKey = [u8; 32];
/// A SHA-256 output.
pub(crate) type Digest32 = [u8; 32];

/// The kinds of bearer credentials the provider mints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CredentialKind {
    AuthorizationCode,
    AccessToken,
    RefreshToken,
}

impl CredentialKind {
    const fn prefix(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "mcp_ac_",
            Self::AccessToken => "mcp_at_",
            Self::RefreshToken => "mcp_rt_",
        }
    }
}

/// A random grant identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct GrantId(pub(crate) [u8; GRANT_ID_LEN]);

impl GrantId {
    /// Lower-case hex, as used in storage keys.
    pub(crate) fn to_hex(self) -> String {
        hex(&self.0)
    }

    pub(crate) fn from_hex(s: &str) -> Option<Self> {
        let bytes = unhex(s)?;
        Some(Self(bytes.try_into().ok()?))
    }
}

/// A credential as parsed from a request.
pub(crate) struct ParsedCredential {
    pub(crate) grant_id: GrantId,
}

/// Mint a credential of `kind` for `grant_id` from `secret`.
pub(crate) fn mint(kind: CredentialKind, grant_id: GrantId, secret: &[u8; SECRET_LEN]) -> String {
    let mut raw = [0u8; GRANT_ID_LEN + SECRET_LEN];
    let (head, tail) = raw.split_at_mut(GRANT_ID_LEN);
    head.copy_from_slice(&grant_id.0);
    tail.copy_from_slice(secret);
    let mut out = String::with_capacity(kind.prefix().len() + 64);
    out.push_str(kind.prefix());
    out.push_str(&Base64UrlUnpadded::encode_string(&raw));
    out
}

/// Parse a credential of `kind`; `None` for anything else, including a
/// credential of another kind. Never panics, whatever the input.
pub(crate) fn parse(kind: CredentialKind, credential: &str) -> Option<ParsedCredential> {
    let body = credential.strip_prefix(kind.prefix())?;
    // 48 bytes encode to exactly 64 unpadded base64url characters.
    if body.len() != 64 {
        return None;
    }
    let mut raw = [0u8; GRANT_ID_LEN + SECRET_LEN];
    let decoded = Base64UrlUnpadded::decode(body, &mut raw).ok()?;
    if decoded.len() != GRANT_ID_LEN + SECRET_LEN {
        return None;
    }
    let id: [u8; GRANT_ID_LEN] = raw.get(..GRANT_ID_LEN)?.try_into().ok()?;
    Some(ParsedCredential { grant_id: GrantId(id) })
}

/// The storage identifier of a credential.
pub(crate) fn credential_id(credential: &str) -> Digest32 {
    labelled_sha256(b"oauth-core/v1/id", credential.as_bytes())
}

/// The storage form of a client secret.
pub(crate) fn client_secret_hash(secret: &str) -> Digest32 {
    labelled_sha256(b"oauth-core/v1/client-secret", secret.as_bytes())
}

/// Mint a client secret from 32 random bytes.
pub(crate) fn mint_client_secret(random: &[u8; SECRET_LEN]) -> String {
    let mut out = String::from("mcp_cs_");
    out.push_str(&Base64UrlUnpadded::encode_string(random));
    out
}

/// A client id from 16 random bytes: 22 URL-safe characters.
pub(crate) fn mint_client_id(random: &[u8; 16]) -> String {
    Base64UrlUnpadded::encode_string(random)
}

fn labelled_sha256(label: &[u8], data: &[u8]) -> Digest32 {
    let mut h = Sha256::new();
    h.update(label);
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// Plain SHA-256, for PKCE (RFC 7636 §4.2).
pub(crate) fn sha256(data: &[u8]) -> Digest32 {
    Sha256::digest(data).into()
}

/// The key-encryption key derived from a credential.
pub(crate) fn kek(credential: &str) -> SymKey {
    // HMAC accepts keys of any length, so this cannot fail; the fallback only
    // keeps the function total.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(credential.as_bytes()) else {
        return labelled_sha256(b"oauth-core/v1/kek-fallback", credential.as_bytes());
    };
    mac.update(b"oauth-core/v1/kek");
    mac.finalize().into_bytes().into()
}

/// Constant-time equality of two byte strings (length is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Seal `plaintext` under `key`: `nonce ‖ ciphertext ‖ tag`.
pub(crate) fn seal(key: &SymKey, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let ct = cipher.encrypt(Nonce::from_slice(nonce), Payload { msg: plaintext, aad }).ok()?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&ct);
    Some(out)
}

/// Open what [`seal`] produced; `None` on any tampering or wrong key.
pub(crate) fn open(key: &SymKey, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let nonce = sealed.get(..NONCE_LEN)?;
    let ct = sealed.get(NONCE_LEN..)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad }).ok()
}

/// Wrap a grant key under a credential's KEK.
pub(crate) fn wrap_key(credential: &str, grant_key: &SymKey, nonce: &[u8; NONCE_LEN], aad: &[u8]) -> Option<Vec<u8>> {
    seal(&kek(credential), nonce, aad, grant_key)
}

/// Unwrap a grant key with the credential that wrapped it.
pub(crate) fn unwrap_key(credential: &str, wrapped: &[u8], aad: &[u8]) -> Option<SymKey> {
    let key = open(&kek(credential), aad, wrapped)?;
    key.try_into().ok()
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            s.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    };
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| match p {
            [h, l] => Some((nibble(*h)? << 4) | nibble(*l)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_and_kinds_do_not_mix() {
        let id = GrantId([7; 16]);
        let at = mint(CredentialKind::AccessToken, id, &[9; 32]);
        assert!(at.starts_with("mcp_at_"));
        assert_eq!(parse(CredentialKind::AccessToken, &at).map(|p| p.grant_id), Some(id));
        assert!(parse(CredentialKind::RefreshToken, &at).is_none());
        assert!(parse(CredentialKind::AccessToken, &at[..at.len() - 1]).is_none());
        assert!(parse(CredentialKind::AccessToken, "mcp_at_").is_none());
        assert!(parse(CredentialKind::AccessToken, &format!("{at}A")).is_none());
    }

    #[test]
    fn seal_detects_tampering_and_wrong_aad() {
        let key = [1u8; 32];
        let sealed = seal(&key, &[2; 12], b"aad", b"props").unwrap();
        assert_eq!(open(&key, b"aad", &sealed).as_deref(), Some(&b"props"[..]));
        assert!(open(&key, b"other", &sealed).is_none());
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(open(&key, b"aad", &bad).is_none());
        assert!(open(&[3u8; 32], b"aad", &sealed).is_none());
        assert!(open(&key, b"aad", &sealed[..5]).is_none());
    }

    #[test]
    fn key_wrapping_needs_the_credential() {
        let wrapped = wrap_key("mcp_rt_a", &[5; 32], &[0; 12], b"g").unwrap();
        assert_eq!(unwrap_key("mcp_rt_a", &wrapped, b"g"), Some([5; 32]));
        assert_eq!(unwrap_key("mcp_rt_b", &wrapped, b"g"), None);
    }

    #[test]
    fn id_hash_and_kek_are_domain_separated() {
        assert_ne!(credential_id("x"), kek("x"));
        assert_ne!(credential_id("x"), client_secret_hash("x"));
        assert_eq!(hex(&[0x0f, 0xa0]), "0fa0");
        assert_eq!(GrantId::from_hex(&GrantId([0xab; 16]).to_hex()), Some(GrantId([0xab; 16])));
        assert_eq!(GrantId::from_hex("zz"), None);
    }
}
