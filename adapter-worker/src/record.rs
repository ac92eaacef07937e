//! How one core record is laid out in Workers KV, and the expiry rules.
//!
//! Plain Rust with no JavaScript in it, so it builds and is unit-tested on
//! the host as well as on wasm32.
//!
//! A record is one KV pair: the key is the core's key, the value is the
//! core's opaque bytes, unchanged, and the revision and logical expiry ride in
//! the pair's KV *metadata*. Metadata rather than a header in the value
//! because `list` returns every key's metadata with the key: a listing judges
//! liveness (and skips dead records) without reading a single value.
//!
//! Two expiries are at work:
//!
//! * the **logical** expiry, `expires_at`, is the core's: a record is alive
//!   while `request.now < expires_at`, judged on every read by the request's
//!   `now`, exactly as every other backend does;
//! * the **physical** expiry is KV's garbage collection. KV refuses a TTL
//!   under [`KV_MIN_TTL_SECS`], so the physical TTL is the logical lifetime
//!   left, raised to that minimum ([`physical_ttl`]). A record therefore never
//!   disappears before its logical expiry, and may linger (dead, invisible)
//!   for at most a minute after it.

use oauth_core::{Entry, UnixTime};
use serde::{Deserialize, Serialize};

/// The shortest `expirationTtl` Workers KV accepts, in seconds. Anything
/// shorter makes the `put` throw.
pub const KV_MIN_TTL_SECS: u64 = 60;

/// The longest physical TTL handed to KV: 100 years.
pub const MAX_PHYSICAL_TTL_SECS: u64 = 100 * 365 * 86_400;

/// The metadata stored with every record.
///
/// Both numbers are decimal strings: metadata crosses into JavaScript, where
/// a JSON number is an `f64` and revisions use all 64 bits (the core may
/// write revision `u64::MAX`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMeta {
    /// The record's revision.
    #[serde(rename = "rev")]
    pub revision: String,
    /// The logical expiry in Unix seconds; absent for records that never
    /// expire.
    #[serde(rename = "exp", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl RecordMeta {
    /// The metadata for a record written with `revision` and `expires_at`.
    pub fn new(revision: u64, expires_at: Option<UnixTime>) -> Self {
        Self { revision: revision.to_string(), expires_at: expires_at.map(|t| t.as_secs().to_string()) }
    }

    /// The revision and expiry, or `None` if the metadata was not written
    /// by this adapter (or was altered).
    pub fn parse(&self) -> Option<(u64, Option<UnixTime>)> {
        let revision = parse_u64(&self.revision)?;
        let expires_at = match &self.expires_at {
            Some(s) => Some(UnixTime::from_secs(parse_u64(s)?)),
            None => None,
        };
        Some((revision, expires_at))
    }

    /// Whether the record is alive at `now` (unparseable metadata is not).
    pub fn is_live(&self, now: UnixTime) -> bool {
        self.parse().is_some_and(|(_, exp)| is_live(exp, now))
    }

    /// The entry for `value` stored under this metadata, if the metadata is
    /// well formed. Liveness is not checked here.
    pub fn entry(&self, value: Vec<u8>) -> Option<Entry> {
        let (revision, expires_at) = self.parse()?;
        Some(Entry { value, revision, expires_at })
    }
}

/// Strict decimal: what `u64::to_string` writes, nothing else (no sign, no
/// leading zeros, no whitespace), so a record reads back exactly as written.
fn parse_u64(s: &str) -> Option<u64> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// The storage module's liveness rule: alive while `now < expires_at`.
pub fn is_live(expires_at: Option<UnixTime>, now: UnixTime) -> bool {
    !expires_at.is_some_and(|t| now.has_reached(t))
}

/// The `expirationTtl` to give KV for a record written at `now` that
/// expires logically at `expires_at`: the lifetime left, but never below
/// [`KV_MIN_TTL_SECS`] (KV's minimum). `None` for records that never expire.
///
/// Lifetimes beyond [`MAX_PHYSICAL_TTL_SECS`] get no physical expiry at all
/// (the logical one still applies): such numbers would lose precision as
/// JavaScript numbers, and the storage they save is nil.
///
/// A relative TTL rather than an absolute `expiration`: KV checks an
/// absolute time against its own clock, and `now` (whole seconds, taken at
/// the start of the request) trails that clock by up to a few seconds, so
/// `now + 60` could read as 59.x seconds away and be refused. A TTL is
/// counted from the moment KV performs the write, which is never before
/// `now`, so the physical expiry always falls at or after the logical one.
pub fn physical_ttl(now: UnixTime, expires_at: Option<UnixTime>) -> Option<u64> {
    let ttl = now.until(expires_at?).max(KV_MIN_TTL_SECS);
    (ttl <= MAX_PHYSICAL_TTL_SECS).then_some(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);

    #[test]
    fn physical_ttl_is_never_below_the_kv_minimum() {
        // Already expired, expiring now, and every lifetime up to well past
        // the minimum: KV is never asked for less than 60 s.
        for offset in -3_600i64..=3_600 {
            let exp = UnixTime::from_secs(NOW.as_secs().saturating_add_signed(offset));
            let ttl = physical_ttl(NOW, Some(exp)).unwrap();
            assert!(ttl >= KV_MIN_TTL_SECS, "offset {offset}: ttl {ttl}");
            // And never before the logical expiry.
            assert!(NOW.plus(ttl) >= exp, "offset {offset}: physical expiry precedes the logical one");
        }
        assert_eq!(physical_ttl(NOW, Some(NOW.plus(59))), Some(60));
        assert_eq!(physical_ttl(NOW, Some(NOW.plus(60))), Some(60));
        assert_eq!(physical_ttl(NOW, Some(NOW.plus(61))), Some(61));
        assert_eq!(physical_ttl(NOW, Some(NOW.plus(86_400))), Some(86_400));
        assert_eq!(physical_ttl(NOW, Some(UnixTime::from_secs(0))), Some(60));
        assert_eq!(physical_ttl(UnixTime::from_secs(u64::MAX), Some(UnixTime::from_secs(u64::MAX))), Some(60));
        assert_eq!(physical_ttl(NOW, Some(NOW.plus(MAX_PHYSICAL_TTL_SECS))), Some(MAX_PHYSICAL_TTL_SECS));
        // Beyond any real lifetime: no physical expiry, the logical one alone.
        assert_eq!(physical_ttl(NOW, Some(NOW.plus(MAX_PHYSICAL_TTL_SECS + 1))), None);
        assert_eq!(physical_ttl(NOW, Some(UnixTime::from_secs(u64::MAX))), None);
    }

    #[test]
    fn records_without_expiry_get_no_physical_expiry() {
        assert_eq!(physical_ttl(NOW, None), None);
    }

    #[test]
    fn metadata_round_trips_the_full_u64_range() {
        for revision in [0, 1, 1 << 53, (1 << 53) + 1, 1 << 63, u64::MAX] {
            for exp in [None, Some(UnixTime::from_secs(0)), Some(NOW), Some(UnixTime::from_secs(u64::MAX))] {
                let meta = RecordMeta::new(revision, exp);
                let json = serde_json::to_string(&meta).unwrap();
                let back: RecordMeta = serde_json::from_str(&json).unwrap();
                assert_eq!(back.parse(), Some((revision, exp)), "{json}");
            }
        }
    }

    #[test]
    fn metadata_layout_is_stable() {
        let meta = RecordMeta::new(u64::MAX, Some(NOW));
        assert_eq!(serde_json::to_string(&meta).unwrap(), r#"{"rev":"18446744073709551615","exp":"1700000000"}"#);
        assert_eq!(serde_json::to_string(&RecordMeta::new(3, None)).unwrap(), r#"{"rev":"3"}"#);
    }

    #[test]
    fn foreign_or_altered_metadata_is_refused() {
        for (rev, exp) in [
            ("", None),
            ("-1", None),
            ("+1", None),
            ("01", None),
            (" 1", None),
            ("1.0", None),
            ("18446744073709551616", None),
            ("1", Some("")),
            ("1", Some("1e9")),
        ] {
            let meta = RecordMeta { revision: rev.to_owned(), expires_at: exp.map(str::to_owned) };
            assert_eq!(meta.parse(), None, "{rev:?} {exp:?}");
            assert!(!meta.is_live(NOW));
            assert_eq!(meta.entry(b"v".to_vec()), None);
        }
        assert!(serde_json::from_str::<RecordMeta>(r#"{"rev":1}"#).is_err(), "numbers are not accepted");
    }

    #[test]
    fn liveness_boundary_is_exclusive() {
        let meta = RecordMeta::new(1, Some(NOW));
        assert!(meta.is_live(UnixTime::from_secs(NOW.as_secs() - 1)));
        assert!(!meta.is_live(NOW));
        assert!(!meta.is_live(NOW.plus(1)));
        assert!(RecordMeta::new(1, None).is_live(UnixTime::from_secs(u64::MAX)));
    }

    #[test]
    fn entry_carries_value_revision_and_expiry() {
        let e = RecordMeta::new(9, Some(NOW)).entry(vec![0, 0xff]).unwrap();
        assert_eq!(e, Entry { value: vec![0, 0xff], revision: 9, expires_at: Some(NOW) });
    }
}
