//! How the core's string keys map onto DynamoDB's partition and sort keys.
//!
//! The sort key `sk` is the whole key, so items in one partition sort in key
//! order (DynamoDB compares string sort keys by their UTF-8 bytes, the order
//! the storage contract lists in). The partition key `pk` is the key's first
//! two `/`-separated segments, or the whole key when it has fewer:
//!
//! | key | `pk` |
//! |---|---|
//! | `client/{client_id}` | `client/{client_id}` |
//! | `grant/{grant_id}` | `grant/{grant_id}` |
//! | `token/{grant_id}/{hash}` | `token/{grant_id}` |
//! | `user/{b64url(user)}/{grant_id}` | `user/{b64url(user)}` |
//!
//! Every point operation then names one item, spread over as many partitions
//! as there are clients, grants and users; and the listings the core makes on
//! the request path (`token/{grant_id}/` to revoke a grant's access tokens,
//! `user/{…}/` for a user's grants) each read one partition, in order.
//!
//! A prefix with at least two `/` fixes its keys' `pk`: every key that
//! starts with it shares its first two segments. A shorter prefix (`client/`,
//! `user/`, as the admin API's "every client", "every grant" listings use)
//! spans partitions, and is served by a scan of the table: correct and
//! strongly consistent, but its cost grows with the table.

/// The partition key of `key`: up to (not including) its second `/`.
pub(crate) fn partition_of(key: &str) -> &str {
    match second_slash(key) {
        Some(at) => key.get(..at).unwrap_or(key),
        None => key,
    }
}

/// The partition every key starting with `prefix` lies in, if the prefix
/// fixes one (it contains at least two `/`).
pub(crate) fn partition_of_prefix(prefix: &str) -> Option<&str> {
    second_slash(prefix).and_then(|at| prefix.get(..at))
}

fn second_slash(s: &str) -> Option<usize> {
    let mut slashes = s.match_indices('/').map(|(i, _)| i);
    slashes.next()?;
    slashes.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_the_first_two_segments() {
        assert_eq!(partition_of("client/abc"), "client/abc");
        assert_eq!(partition_of("grant/00ff"), "grant/00ff");
        assert_eq!(partition_of("token/00ff/abcd"), "token/00ff");
        assert_eq!(partition_of("user/YWxpY2U/00ff"), "user/YWxpY2U");
        assert_eq!(partition_of("a/b/c/d"), "a/b");
        assert_eq!(partition_of("plain"), "plain");
        assert_eq!(partition_of("a/"), "a/");
        assert_eq!(partition_of("a//b"), "a/");
        assert_eq!(partition_of("é/ü/x"), "é/ü");
    }

    #[test]
    fn a_prefix_fixes_the_partition_only_with_two_slashes() {
        assert_eq!(partition_of_prefix("token/00ff/"), Some("token/00ff"));
        assert_eq!(partition_of_prefix("a/b/c"), Some("a/b"));
        assert_eq!(partition_of_prefix("a//"), Some("a/"));
        assert_eq!(partition_of_prefix("client/"), None);
        assert_eq!(partition_of_prefix("token/00ff"), None);
        assert_eq!(partition_of_prefix(""), None);
    }

    /// The property the listing relies on: whenever a prefix fixes a
    /// partition, every key starting with the prefix is in it.
    #[test]
    fn keys_under_a_fixing_prefix_share_its_partition() {
        let parts = ["", "a", "b", "/", "é", "ab", "a/", "/b", "//"];
        let mut strings = Vec::new();
        for x in parts {
            for y in parts {
                for z in parts {
                    strings.push(format!("{x}{y}{z}"));
                }
            }
        }
        for prefix in &strings {
            let Some(pk) = partition_of_prefix(prefix) else { continue };
            for tail in &strings {
                let key = format!("{prefix}{tail}");
                assert_eq!(partition_of(&key), pk, "key {key:?} under prefix {prefix:?}");
            }
        }
    }
}
