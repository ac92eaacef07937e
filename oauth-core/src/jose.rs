//! Just enough JOSE for `private_key_jwt` client authentication (RFC 7523
//! §2.2 and §3, RFC 7521 §4.2): public JSON Web Keys (RFC 7517) of type RSA
//! and P-256, and compact JWS (RFC 7515) signed RS256 or ES256.
//!
//! The parsing is JSON and base64url, written here; every cryptographic
//! operation is RustCrypto's (`rsa`, `p256`), which build for
//! wasm32-unknown-unknown and draw no randomness to verify. Nothing else is
//! accepted: no `none`, no HMAC (a shared secret cannot exist for these
//! clients), no keys from the token's own header (`jwk`, `jku`, `x5u`,
//! which would let the signer choose the key that verifies it).

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::ecdsa::signature::Verifier as _;
use rsa::BigUint;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Map, Value};

use crate::error::Reason;
use crate::time::UnixTime;

/// The signing algorithms accepted.
pub(crate) const ALGORITHMS: &[&str] = &["RS256", "ES256"];
/// The client assertion type of RFC 7523 §2.2.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest assertion read. Real ones are well under 2 KiB.
pub(crate) const MAX_ASSERTION_BYTES: usize = 8 * 1024;
/// Clock skew tolerated between client and server.
pub(crate) const CLOCK_SKEW_SECS: u64 = 60;
/// The longest an assertion may still be valid when presented: it is a
/// one-time login, not a credential to keep.
pub(crate) const MAX_ASSERTION_LIFETIME_SECS: u64 = 300;
/// Smallest RSA modulus accepted.
const MIN_RSA_BITS: usize = 2048;
/// Most keys read from one set.
const MAX_KEYS: usize = 32;

pub(crate) mod reasons {
    use crate::error::Reason;

    pub(crate) const JWKS_INVALID: Reason = Reason::new("cimd_jwks_invalid");
    pub(crate) const PRIVATE_KEY: Reason = Reason::new("cimd_private_key_material");
    pub(crate) const NO_USABLE_KEY: Reason = Reason::new("cimd_jwks_no_usable_key");

    pub(crate) const ASSERTION_TYPE: Reason = Reason::new("client_assertion_type_unsupported");
    pub(crate) const ASSERTION_MISSING: Reason = Reason::new("client_assertion_missing");
    pub(crate) const ASSERTION_TOO_LARGE: Reason = Reason::new("client_assertion_too_large");
    pub(crate) const ASSERTION_MALFORMED: Reason = Reason::new("client_assertion_malformed");
    pub(crate) const ASSERTION_ALG: Reason = Reason::new("client_assertion_alg_unsupported");
    pub(crate) const ASSERTION_CRIT: Reason = Reason::new("client_assertion_crit_unsupported");
    pub(crate) const ASSERTION_NO_KEY: Reason = Reason::new("client_assertion_no_matching_key");
    pub(crate) const ASSERTION_SIGNATURE: Reason = Reason::new("client_assertion_signature_invalid");
    pub(crate) const ASSERTION_ISSUER: Reason = Reason::new("client_assertion_issuer_mismatch");
    pub(crate) const ASSERTION_SUBJECT: Reason = Reason::new("client_assertion_subject_mismatch");
    pub(crate) const ASSERTION_AUDIENCE: Reason = Reason::new("client_assertion_audience_invalid");
    pub(crate) const ASSERTION_EXPIRED: Reason = Reason::new("client_assertion_expired");
    pub(crate) const ASSERTION_LIFETIME: Reason = Reason::new("client_assertion_lifetime_too_long");
    pub(crate) const ASSERTION_NOT_YET_VALID: Reason = Reason::new("client_assertion_not_yet_valid");
    pub(crate) const ASSERTION_JTI: Reason = Reason::new("client_assertion_jti_missing");
    pub(crate) const ASSERTION_REPLAYED: Reason = Reason::new("client_assertion_replayed");
}

type Problem = (Reason, &'static str);

/// A signing algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum KeyMaterial {
    /// Modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed SEC1 point on P-256.
    P256 { point: Vec<u8> },
}

/// One public signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Jwk {
    kid: Option<String>,
    alg: Option<String>,
    material: KeyMaterial,
}

/// The usable public signing keys of a key set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JwkSet {
    keys: Vec<Jwk>,
}

fn b64(s: &str) -> Option<Vec<u8>> {
    Base64UrlUnpadded::decode_vec(s).ok()
}

/// Members that carry private or symmetric key material (RFC 7518 §6).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

impl JwkSet {
    /// Read a `{"keys": [...]}` object. Any private or symmetric key refuses
    /// the whole set (publishing one is a compromise, not a typo to skip);
    /// keys of other types or uses are skipped; at least one must remain.
    pub(crate) fn from_value(value: &Value) -> Result<Self, Problem> {
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or((reasons::JWKS_INVALID, "The client's key set is not a JWK Set"))?;
        let mut usable = Vec::new();
        for key in keys.iter().take(MAX_KEYS) {
            let Value::Object(obj) = key else {
                return Err((reasons::JWKS_INVALID, "The client's key set holds a non-object"));
            };
            if PRIVATE_MEMBERS.iter().any(|m| obj.contains_key(*m))
                || obj.get("kty").and_then(Value::as_str) == Some("oct")
            {
                return Err((reasons::PRIVATE_KEY, "The client's key set contains private or symmetric key material"));
            }
            if let Some(jwk) = Jwk::from_object(obj) {
                usable.push(jwk);
            }
        }
        if usable.is_empty() {
            return Err((reasons::NO_USABLE_KEY, "The client's key set has no usable RS256 or ES256 key"));
        }
        Ok(Self { keys: usable })
    }
}

impl Jwk {
    /// A verification key, or `None` for anything this server cannot use.
    fn from_object(obj: &Map<String, Value>) -> Option<Self> {
        let s = |name: &str| obj.get(name).and_then(Value::as_str);
        if s("use").is_some_and(|u| u != "sig") {
            return None;
        }
        if let Some(ops) = obj.get("key_ops") {
            if !ops.as_array()?.iter().any(|o| o.as_str() == Some("verify")) {
                return None;
            }
        }
        let alg = s("alg").map(str::to_owned);
        if alg.as_deref().is_some_and(|a| Alg::parse(a).is_none()) {
            return None;
        }
        let material = match s("kty")? {
            "RSA" => {
                let (n, e) = (b64(s("n")?)?, b64(s("e")?)?);
                let key = rsa_key(&n, &e)?;
                if key.n().bits() < MIN_RSA_BITS {
                    return None;
                }
                KeyMaterial::Rsa { n, e }
            }
            "EC" if s("crv")? == "P-256" => {
                let (x, y) = (b64(s("x")?)?, b64(s("y")?)?);
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                // Refuses points off the curve.
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).ok()?;
                KeyMaterial::P256 { point }
            }
            _ => return None,
        };
        Some(Self { kid: s("kid").map(str::to_owned), alg, material })
    }

    fn fits(&self, alg: Alg) -> bool {
        let kind = matches!(
            (&self.material, alg),
            (KeyMaterial::Rsa { .. }, Alg::Rs256) | (KeyMaterial::P256 { .. }, Alg::Es256)
        );
        kind && self.alg.as_deref().is_none_or(|a| a == alg.name())
    }

    fn verifies(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        match (&self.material, alg) {
            (KeyMaterial::Rsa { n, e }, Alg::Rs256) => {
                let Some(key) = rsa_key(n, e) else { return false };
                let Ok(sig) = rsa::pkcs1v15::Signature::try_from(signature) else { return false };
                rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key).verify(message, &sig).is_ok()
            }
            (KeyMaterial::P256 { point }, Alg::Es256) => {
                let Ok(key) = p256::ecdsa::VerifyingKey::from_sec1_bytes(point) else { return false };
                // JWS carries ES256 as the 64-byte r ‖ s, not DER (RFC 7518 §3.4).
                let Ok(sig) = p256::ecdsa::Signature::from_slice(signature) else { return false };
                key.verify(message, &sig).is_ok()
            }
            _ => false,
        }
    }
}

fn rsa_key(n: &[u8], e: &[u8]) -> Option<rsa::RsaPublicKey> {
    // `new` also bounds the modulus (4096 bits) and the exponent.
    rsa::RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e)).ok()
}

/// A parsed, not yet verified, client assertion.
#[derive(Debug)]
pub(crate) struct Assertion {
    alg: Alg,
    kid: Option<String>,
    claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

/// What a verified assertion establishes for replay protection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verified {
    pub(crate) jti: String,
    pub(crate) exp: UnixTime,
}

fn object(segment: &str) -> Option<Map<String, Value>> {
    match serde_json::from_slice(&b64(segment)?).ok()? {
        Value::Object(o) => Some(o),
        _ => None,
    }
}

impl Assertion {
    /// Parse a compact JWS. Only the structure and header are judged here.
    pub(crate) fn parse(jwt: &str) -> Result<Self, Problem> {
        use reasons::*;
        if jwt.len() > MAX_ASSERTION_BYTES {
            return Err((ASSERTION_TOO_LARGE, "The client assertion is too large"));
        }
        let malformed = (ASSERTION_MALFORMED, "The client assertion is not a compact JWS");
        let mut parts = jwt.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(malformed);
        };
        let header = object(h).ok_or(malformed)?;
        let claims = object(p).ok_or(malformed)?;
        let signature = b64(s).ok_or(malformed)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Alg::parse)
            .ok_or((ASSERTION_ALG, "The client assertion must be signed with RS256 or ES256"))?;
        // RFC 7515 §4.1.11: extensions we do not understand must fail.
        if header.contains_key("crit") {
            return Err((ASSERTION_CRIT, "The client assertion uses critical extensions this server does not support"));
        }
        let kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
        let signing_input = jwt.get(..h.len().saturating_add(1).saturating_add(p.len())).unwrap_or("").to_owned();
        Ok(Self { alg, kid, claims, signing_input, signature })
    }

    /// The unverified `sub`: which client claims to be speaking, so its
    /// keys can be found. Nothing is trusted until [`Self::verify`].
    pub(crate) fn subject(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }

    /// Verify the signature with one of `keys`: the one named by `kid` when
    /// the header has one, else each key of the right type in turn.
    pub(crate) fn verify_signature(&self, keys: &JwkSet) -> Result<(), Problem> {
        let candidates: Vec<&Jwk> =
            keys.keys.iter().filter(|k| k.fits(self.alg)).filter(|k| self.kid.is_none() || k.kid == self.kid).collect();
        if candidates.is_empty() {
            return Err((reasons::ASSERTION_NO_KEY, "No key of the client matches the client assertion"));
        }
        if candidates.iter().any(|k| k.verifies(self.alg, self.signing_input.as_bytes(), &self.signature)) {
            Ok(())
        } else {
            Err((reasons::ASSERTION_SIGNATURE, "The client assertion's signature is invalid"))
        }
    }

    /// Check the claims of RFC 7523 §3 for client authentication.
    pub(crate) fn check_claims(&self, client_id: &str, audiences: &[&str], now: UnixTime) -> Result<Verified, Problem> {
        use reasons::*;
        let c = &self.claims;
        let s = |name: &str| c.get(name).and_then(Value::as_str);
        if s("iss") != Some(client_id) {
            return Err((ASSERTION_ISSUER, "The client assertion's iss must be the client_id"));
        }
        if s("sub") != Some(client_id) {
            return Err((ASSERTION_SUBJECT, "The client assertion's sub must be the client_id"));
        }
        let aud_ok = match c.get("aud") {
            Some(Value::String(a)) => audiences.contains(&a.as_str()),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(|a| audiences.contains(&a)),
            _ => false,
        };
        if !aud_ok {
            return Err((
                ASSERTION_AUDIENCE,
                "The client assertion's aud must be this server's issuer or token endpoint",
            ));
        }
        let time = |name: &str| -> Result<Option<u64>, Problem> {
            match c.get(name) {
                None => Ok(None),
                Some(v) => match v.as_u64().or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)) {
                    Some(t) => Ok(Some(t)),
                    None => Err((ASSERTION_MALFORMED, "A time claim of the client assertion is malformed")),
                },
            }
        };
        let now_s = now.as_secs();
        let exp = time("exp")?.ok_or((ASSERTION_EXPIRED, "The client assertion must carry exp"))?;
        if now_s >= exp.saturating_add(CLOCK_SKEW_SECS) {
            return Err((ASSERTION_EXPIRED, "The client assertion has expired"));
        }
        if exp > now_s.saturating_add(MAX_ASSERTION_LIFETIME_SECS).saturating_add(CLOCK_SKEW_SECS) {
            return Err((
                ASSERTION_LIFETIME,
                "The client assertion's exp is too far in the future (at most 5 minutes)",
            ));
        }
        for name in ["nbf", "iat"] {
            if time(name)?.is_some_and(|t| t > now_s.saturating_add(CLOCK_SKEW_SECS)) {
                return Err((ASSERTION_NOT_YET_VALID, "The client assertion is not valid yet"));
            }
        }
        let jti = match s("jti") {
            Some(j) if !j.is_empty() && j.len() <= 256 => j.to_owned(),
            _ => return Err((ASSERTION_JTI, "The client assertion must carry a jti of at most 256 bytes")),
        };
        Ok(Verified { jti, exp: UnixTime::from_secs(exp) })
    }
}

/// The storage key of an assertion's replay marker: the issuer and `jti`,
/// hashed, so neither length nor content reaches the key.
pub(crate) fn jti_key(client_id: &str, jti: &str) -> String {
    let mut data = Vec::with_capacity(client_id.len() + jti.len() + 1);
    data.extend_from_slice(client_id.as_bytes());
    data.push(0);
    data.extend_from_slice(jti.as_bytes());
    format!("jti/{}", crate::crypto::hex(&crate::crypto::sha256(&data)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn private_and_symmetric_keys_refuse_the_set() {
        for private in
            [json!({"kty": "oct", "k": "AAAA"}), json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQAB"})]
        {
            let err = JwkSet::from_value(&json!({ "keys": [private] })).unwrap_err();
            assert_eq!(err.0, reasons::PRIVATE_KEY);
        }
        assert_eq!(JwkSet::from_value(&json!({"keys": []})).unwrap_err().0, reasons::NO_USABLE_KEY);
        assert_eq!(JwkSet::from_value(&json!([])).unwrap_err().0, reasons::JWKS_INVALID);
        // A short RSA key is not usable.
        let short = json!({"keys": [{"kty": "RSA", "n": Base64UrlUnpadded::encode_string(&[0xff; 128]), "e": "AQAB"}]});
        assert_eq!(JwkSet::from_value(&short).unwrap_err().0, reasons::NO_USABLE_KEY);
        // A point off the curve is not usable.
        let off = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": Base64UrlUnpadded::encode_string(&[1; 32]), "y": Base64UrlUnpadded::encode_string(&[1; 32])}]});
        assert_eq!(JwkSet::from_value(&off).unwrap_err().0, reasons::NO_USABLE_KEY);
    }

    #[test]
    fn header_rules() {
        let enc = |v: Value| Base64UrlUnpadded::encode_string(v.to_string().as_bytes());
        let jwt = |h: Value| format!("{}.{}.AAAA", enc(h), enc(json!({"sub": "x"})));
        assert_eq!(Assertion::parse(&jwt(json!({"alg": "none"}))).unwrap_err().0, reasons::ASSERTION_ALG);
        assert_eq!(Assertion::parse(&jwt(json!({"alg": "HS256"}))).unwrap_err().0, reasons::ASSERTION_ALG);
        assert_eq!(
            Assertion::parse(&jwt(json!({"alg": "ES256", "crit": ["x"]}))).unwrap_err().0,
            reasons::ASSERTION_CRIT
        );
        assert_eq!(Assertion::parse("a.b").unwrap_err().0, reasons::ASSERTION_MALFORMED);
        assert_eq!(Assertion::parse("a.b.c.d").unwrap_err().0, reasons::ASSERTION_MALFORMED);
        assert_eq!(Assertion::parse(&"a".repeat(9000)).unwrap_err().0, reasons::ASSERTION_TOO_LARGE);
        let ok = Assertion::parse(&jwt(json!({"alg": "ES256", "kid": "k"}))).unwrap();
        assert_eq!(ok.subject(), Some("x"));
        assert_eq!(ok.kid.as_deref(), Some("k"));
    }

    #[test]
    fn jti_keys_are_separated_by_client() {
        assert_ne!(jti_key("a", "bc"), jti_key("ab", "c"));
        assert!(jti_key("a", "b").starts_with("jti/"));
    }
}
