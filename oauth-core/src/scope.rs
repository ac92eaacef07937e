//! Scope algebra (RFC 6749 §3.3) with declared implications.
//!
//! Scopes are kept as ordered, duplicate-free lists of scope tokens. A
//! configured implication (`todo:write` ⇒ `todo:read`) lets a broader scope
//! satisfy a narrower requirement; implications are followed transitively.

use std::collections::{BTreeMap, BTreeSet};

/// The MCP/OIDC scope that asks for a refresh token (MCP SEP-2207).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// True when `s` is a scope token: one or more of `%x21 / %x23-5B / %x5D-7E`.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Parse a space-delimited scope string. Repeated spaces are tolerated;
/// duplicates are dropped, keeping first-seen order. `None` if any token is
/// not a valid scope token.
pub fn parse_scope(s: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for token in s.split(' ').filter(|t| !t.is_empty()) {
        if !is_scope_token(token) {
            return None;
        }
        if !out.iter().any(|t| t == token) {
            out.push(token.to_owned());
        }
    }
    Some(out)
}

/// Join scopes with single spaces.
pub fn format_scope(scopes: &[String]) -> String {
    scopes.join(" ")
}

/// Every scope that `granted` satisfies: itself and everything it implies,
/// transitively.
pub fn closure<'a>(
    granted: impl IntoIterator<Item = &'a str>,
    implies: &'a BTreeMap<String, BTreeSet<String>>,
) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&str> = granted.into_iter().collect();
    while let Some(s) = stack.pop() {
        if seen.insert(s) {
            if let Some(more) = implies.get(s) {
                stack.extend(more.iter().map(String::as_str));
            }
        }
    }
    seen
}

/// True when `granted` satisfies every scope in `required`.
pub fn satisfies(granted: &[String], required: &[String], implies: &BTreeMap<String, BTreeSet<String>>) -> bool {
    let have = closure(granted.iter().map(String::as_str), implies);
    required.iter().all(|r| have.contains(r.as_str()))
}

/// The requested scopes that `granted` covers (directly or by implication),
/// in request order. Used to narrow a token request to what the grant allows.
pub fn narrow(requested: &[String], granted: &[String], implies: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let have = closure(granted.iter().map(String::as_str), implies);
    requested.iter().filter(|r| have.contains(r.as_str())).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_follow_the_abnf() {
        assert!(is_scope_token("todo:read"));
        assert!(!is_scope_token(""));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token("a\"b"));
        assert!(!is_scope_token("a\\b"));
        assert!(!is_scope_token("é"));
        assert_eq!(parse_scope("a  b a"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(parse_scope("a \u{7f}"), None);
    }

    #[test]
    fn implications_are_transitive() {
        let mut imp = BTreeMap::new();
        imp.insert("admin".to_owned(), BTreeSet::from(["write".to_owned()]));
        imp.insert("write".to_owned(), BTreeSet::from(["read".to_owned()]));
        assert!(satisfies(&["admin".into()], &["read".into()], &imp));
        assert!(!satisfies(&["read".into()], &["write".into()], &imp));
        assert_eq!(narrow(&["read".into(), "other".into()], &["write".into()], &imp), vec!["read".to_owned()]);
    }
}
