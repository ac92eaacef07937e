//! The development user store: accounts given on the command line or in
//! `MCP_USERS`, else the built-in `demo:demo`.
//!
//! A real deployment signs users in against its identity provider or user
//! database; this store exists so the examples run with nothing to set up.
//! Passwords live only in memory, as SHA-256 digests so that comparison
//! takes the same time whatever the input; a stored password file would
//! need a slow salted hash (argon2) instead.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A development account, written `NAME:PASSWORD` (one `--user` flag, or
/// one entry of `MCP_USERS`).
///
/// ```
/// use demo_ui::DevUser;
///
/// let user: DevUser = "alice:wonderland".parse().unwrap();
/// assert_eq!(user.name(), "alice");
/// assert!("alice".parse::<DevUser>().is_err());
/// ```
#[derive(Clone)]
pub struct DevUser {
    name: String,
    password: String,
}

impl fmt::Debug for DevUser {
    // Keeps passwords out of clap's debug output and any log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevUser").field("name", &self.name).finish_non_exhaustive()
    }
}

impl DevUser {
    /// The account's name, which becomes the OAuth `user_id`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl FromStr for DevUser {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((name, password)) = s.split_once(':') else {
            return Err("expected NAME:PASSWORD".into());
        };
        validate_user_name(name)?;
        if password.is_empty() {
            return Err(format!("user {name}: the password is empty"));
        }
        Ok(Self { name: name.to_owned(), password: password.to_owned() })
    }
}

/// Check a user name: 1 to 64 characters, no whitespace or control
/// characters. Names become the OAuth `user_id` and key the user's data, so
/// they are kept short and printable.
pub fn validate_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("invalid user name {name:?}: 1 to 64 characters, no spaces or control characters"));
    }
    Ok(())
}

/// The accounts that may sign in.
pub struct Users {
    digests: BTreeMap<String, [u8; 32]>,
}

impl fmt::Debug for Users {
    // Names only: digests of development passwords stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Users").field("names", &self.digests.keys().collect::<Vec<_>>()).finish()
    }
}

impl Users {
    /// The given accounts; a name given twice keeps its last password.
    pub fn new(specs: &[DevUser]) -> Self {
        let digests = specs.iter().map(|u| (u.name.clone(), digest(&u.password))).collect();
        Self { digests }
    }

    /// The built-in `demo:demo` account.
    pub fn demo() -> Self {
        Self::new(&[DevUser { name: "demo".into(), password: "demo".into() }])
    }

    /// `MCP_USERS` as one string, `name:password,name:password`; a name
    /// given twice keeps its last password. The error never contains a
    /// password.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut digests = BTreeMap::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((name, password)) = item.split_once(':') else {
                return Err("MCP_USERS: expected name:password pairs separated by commas".into());
            };
            validate_user_name(name).map_err(|e| format!("MCP_USERS: {e}"))?;
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
    pub fn exists(&self, name: &str) -> bool {
        self.digests.contains_key(name)
    }

    /// The canonical user name if `name` and `password` match an account.
    pub fn verify(&self, name: &str, password: &str) -> Option<String> {
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
        let given = Users::new(&["bob:1".parse().unwrap(), "bob:2".parse().unwrap()]);
        assert_eq!(given.verify("bob", "2").as_deref(), Some("bob"));
        assert_eq!(given.verify("bob", "1"), None);
    }

    #[test]
    fn bad_specs_are_refused_without_echoing_passwords() {
        for spec in ["alice", "alice:", ":pw", "a b:pw", ",", "x:secret-pw,bad"] {
            let e = Users::parse(spec).err().unwrap_or_else(|| panic!("{spec:?} accepted"));
            assert!(!e.contains("secret-pw"), "{e}");
        }
        assert!("a b:pw".parse::<DevUser>().is_err());
        assert!(format!("{:?}", "alice:secret-pw".parse::<DevUser>().unwrap()).contains("alice"));
        assert!(!format!("{:?}", "alice:secret-pw".parse::<DevUser>().unwrap()).contains("secret-pw"));
    }
}
