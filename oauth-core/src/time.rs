//! Time as an input.
//!
//! The core never reads a clock. Every entry point takes the current time as a
//! [`UnixTime`], so tests can pin it and move it at will, and the same code runs
//! on wasm32 where `std::time::Instant` panics.

use core::fmt;

/// Seconds since the Unix epoch, UTC.
///
/// Second granularity matches every lifetime the protocol speaks of
/// (`expires_in`, TTLs) and what the storage backends record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UnixTime(u64);

impl UnixTime {
    /// The time `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs)
    }

    /// Seconds since the epoch.
    pub const fn as_secs(self) -> u64 {
        self.0
    }

    /// This time plus `secs`, saturating instead of overflowing.
    #[must_use]
    pub const fn plus(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs))
    }

    /// Seconds from `self` until `later`, zero if `later` is not after `self`.
    pub const fn until(self, later: Self) -> u64 {
        later.0.saturating_sub(self.0)
    }

    /// True when a record that expires at `expires_at` is already dead at `self`.
    ///
    /// The boundary is exclusive: a record is alive while `now < expires_at`
    /// and dead from the expiry second on. Every store applies this same rule.
    pub const fn has_reached(self, expires_at: Self) -> bool {
        self.0 >= expires_at.0
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
