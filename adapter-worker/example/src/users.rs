//! The development accounts: `MCP_USERS` (a secret, `name:password` pairs
//! separated by commas), or the built-in `demo:demo` without it.
//!
//! A real deployment signs users in against its identity provider; this
//! exists so the example runs with nothing to set up. Passwords are kept as
//! SHA-256 digests only so that comparison takes the same time whatever the
//! input; a stored password file would need a slow salted hash instead.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The accounts that may sign in.
pub(crate) struct Users {
    digests: BTreeMap<String, [u8; 32]>,
}

/// User names become the OAuth `user_id` and key the user's data, so they
/// are kept short and printable.
pub(crate) fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("invalid user name {name:?}: 1 to 64 characters, no spaces or control characters"));
    }
    Ok(())
}

impl Users {
    /// The built-in `demo:demo` account.
    pub(crate) fn demo() -> Self {
        Self { digests: BTreeMap::from([("demo".to_owned(), digest("demo"))]) }
    }

    /// `name:password,name:password`; a name given twice keeps its last
    /// password. The error never contains a password.
    pub(crate) fn parse(spec: &str) -> Result<Self, String> {
        let mut digests = BTreeMap::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((name, password)) = item.split_once(':') else {
                return Err("MCP_USERS: expected name:password pairs separated by commas".into());
            };
            validate_name(name).map_err(|e| format!("MCP_USERS: {e}"))?;
            if password.is_empty() {
                return Err(format!("MCP_USERS: user {name}: the password is empty"));
            }
            digests.insert(name.to_owned(), digest(password));
        }
        if digests.is_empty() {
            return Err("MCP_USERS is set but names no account".into());
        }
        Ok(Self { digests })
    }

    /// Whether an account is called `name`.
    pub(crate) fn exists(&self, name: &str) -> bool {
        self.digests.contains_key(name)
    }

    /// The canonical user name if `name` and `password` match an account.
    pub(crate) fn verify(&self, name: &str, password: &str) -> Option<String> {
        let offered = digest(password);
        // Compare against a dummy for unknown users so response time does
        // not tell which user names exist.
        let (found, stored) = match self.digests.get_key_value(name) {
            Some((n, d)) => (Some(n.clone()), *d),
            None => (None, digest("\0unknown user\0")),
        };
        let matches: bool = offered.ct_eq(&stored).into();
        if matches { found } else { None }
    }
}

fn digest(password: &str) -> [u8; 32] {
    Sha256::digest(password.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_parse_and_verify() {
        let users = Users::parse("alice:wonder:land, bob:b").unwrap();
        assert_eq!(users.verify("alice", "wonder:land").as_deref(), Some("alice"));
        assert_eq!(users.verify("alice", "wonder"), None);
        assert_eq!(users.verify("carol", "b"), None);
        assert!(users.exists("bob") && !users.exists("carol"));
        assert_eq!(Users::demo().verify("demo", "demo").as_deref(), Some("demo"));
    }

    #[test]
    fn bad_specs_are_refused_without_echoing_passwords() {
        for spec in ["alice", "alice:", ":pw", "a b:pw", ",", "x:secret-pw,bad"] {
            let e = Users::parse(spec).err().unwrap_or_else(|| panic!("{spec:?} accepted"));
            assert!(!e.contains("secret-pw"), "{e}");
        }
    }
}
