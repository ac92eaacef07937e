//! The development user store: accounts given on the command line.
//!
//! A real deployment signs users in against its identity provider or user
//! database; this store exists so the example runs with nothing to set up.
//! Passwords live only in this process's memory, as SHA-256 digests so that
//! comparison takes the same time whatever the input; a stored password
//! file would need a slow salted hash (argon2) instead.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A development account, written `NAME:PASSWORD` (one `--user` flag, or
/// one entry of `MCP_USERS`).
///
/// ```
/// use adapter_axum::demo::DevUser;
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
pub(crate) struct Users {
    digests: BTreeMap<String, [u8; 32]>,
}

impl Users {
    /// The given accounts; a name given twice keeps its last password.
    pub(crate) fn new(specs: &[DevUser]) -> Self {
        let digests = specs.iter().map(|u| (u.name.clone(), digest(&u.password))).collect();
        Self { digests }
    }

    /// The built-in `demo:demo` account, used when no `--user` is given.
    pub(crate) fn demo() -> Self {
        Self::new(&[DevUser { name: "demo".into(), password: "demo".into() }])
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
