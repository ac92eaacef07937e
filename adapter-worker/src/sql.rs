//! The Durable Object store's SQLite schema and the pieces of its queries
//! that are plain logic (built and tested on the host).

/// The one table. Keys compare with SQLite's default `BINARY` collation,
/// which is byte order on UTF-8: exactly the core's listing order.
///
/// * `revision` and `expires_exact` are decimal text: every value crosses
///   into JavaScript on its way to SQLite, where a number is an `f64` and
///   cannot hold 64 bits.
/// * `expires_at` is the same expiry as a number, clamped to JavaScript's
///   largest exact integer, for the listing filter and the purge; it orders
///   exactly like the real one for every time a clock will ever read.
pub(crate) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS oauth_records (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    revision TEXT NOT NULL,
    expires_exact TEXT,
    expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS oauth_records_expires_at ON oauth_records (expires_at) WHERE expires_at IS NOT NULL;";

/// JavaScript's `Number.MAX_SAFE_INTEGER`.
pub(crate) const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// `expires_at` as stored in the numeric column.
pub(crate) fn clamp(secs: u64) -> i64 {
    // MAX_SAFE_INTEGER fits an i64, so the conversion cannot fail.
    i64::try_from(secs.min(MAX_SAFE_INTEGER)).unwrap_or(i64::MAX)
}

/// The least string greater than every string starting with `prefix`, or
/// `None` when there is none (empty prefix, or one made of `char::MAX`).
///
/// The last character that can be incremented is, and what follows it is
/// dropped; UTF-8 preserves code-point order under byte comparison, so the
/// range `prefix <= key < upper` is exactly the keys starting with `prefix`.
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bounds_cover_exactly_the_prefix() {
        assert_eq!(prefix_upper_bound("a/b/").as_deref(), Some("a/b0"));
        assert_eq!(prefix_upper_bound("token/ab").as_deref(), Some("token/ac"));
        assert_eq!(prefix_upper_bound("x\u{D7FF}").as_deref(), Some("x\u{E000}"));
        assert_eq!(prefix_upper_bound("x\u{10FFFF}").as_deref(), Some("y"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound(""), None);
        for (prefix, inside, outside) in
            [("a/b/", "a/b/\u{10FFFF}zz", "a/b0"), ("a/b/", "a/b/", "a/c"), ("é", "é\u{10FFFF}", "ê")]
        {
            let upper = prefix_upper_bound(prefix).unwrap();
            assert!(inside.as_bytes() >= prefix.as_bytes() && inside.as_bytes() < upper.as_bytes(), "{inside:?}");
            assert!(outside.as_bytes() >= upper.as_bytes(), "{outside:?}");
        }
    }

    #[test]
    fn clamping_keeps_order_for_real_times() {
        assert_eq!(clamp(0), 0);
        assert_eq!(clamp(1_700_000_000), 1_700_000_000);
        assert_eq!(clamp(u64::MAX), (1 << 53) - 1);
    }
}
