//! PKCE (RFC 7636), S256 only: OAuth 2.1 requires PKCE for every
//! authorization-code grant, and `plain` protects nothing against a leaked
//! authorization request.

use base64ct::{Base64UrlUnpadded, Encoding};

use crate::crypto::{ct_eq, sha256};

/// The only accepted `code_challenge_method`.
pub const S256: &str = "S256";

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len()) && verifier.bytes().all(is_unreserved)
}

/// An S256 challenge is the unpadded base64url of a SHA-256 digest:
/// exactly 43 characters of the base64url alphabet (RFC 7636 §4.2).
pub fn is_valid_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && Base64UrlUnpadded::decode_vec(challenge).is_ok_and(|d| d.len() == 32)
}

/// The S256 challenge of a verifier.
pub fn s256_challenge(verifier: &str) -> String {
    Base64UrlUnpadded::encode_string(&sha256(verifier.as_bytes()))
}

/// True when `verifier` is well formed and hashes to `challenge`, compared
/// in constant time.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    is_valid_verifier(verifier) && ct_eq(s256_challenge(verifier).as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    #[test]
    fn rfc7636_appendix_b_vector() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256_challenge(verifier), challenge);
        assert!(verify_s256(verifier, challenge));
        assert!(is_valid_s256_challenge(challenge));
    }

    #[test]
    fn verifier_syntax() {
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"a".repeat(128)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(43))));
        assert!(!is_valid_s256_challenge("short"));
        assert!(!is_valid_s256_challenge(&"=".repeat(43)));
    }
}
