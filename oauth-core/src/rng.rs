//! Randomness as an input.
//!
//! The core holds no generator. A flow that needs random bytes (new secrets,
//! keys, nonces) draws a fixed amount from the caller's [`SecureRandom`] when it
//! is created, so a flow is plain owned data and a seeded generator makes a
//! whole scenario reproducible.

/// A cryptographically secure source of random bytes supplied by the runtime.
///
/// Adapters implement it over the operating system's generator (`getrandom`)
/// or the Workers `crypto.getRandomValues`; tests use a seeded generator.
pub trait SecureRandom {
    /// Fill `dest` entirely with random bytes.
    fn fill(&mut self, dest: &mut [u8]);
}

impl<R: SecureRandom + ?Sized> SecureRandom for &mut R {
    fn fill(&mut self, dest: &mut [u8]) {
        (**self).fill(dest);
    }
}

/// Random bytes drawn up front for one flow and handed out in order.
///
/// Running dry is a programming error in the core, not a client's doing; it
/// surfaces as `server_error`, never as a panic.
pub(crate) struct Entropy {
    bytes: Vec<u8>,
    used: usize,
}

impl Entropy {
    pub(crate) fn draw(rng: &mut dyn SecureRandom, len: usize) -> Self {
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes);
        Self { bytes, used: 0 }
    }

    /// The next `N` bytes, or `None` when the pool is exhausted.
    pub(crate) fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.used.checked_add(N)?;
        let slice = self.bytes.get(self.used..end)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        self.used = end;
        Some(out)
    }
}

impl core::fmt::Debug for Entropy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Entropy").field("remaining", &self.bytes.len().saturating_sub(self.used)).finish()
    }
}
