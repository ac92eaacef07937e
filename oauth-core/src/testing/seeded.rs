//! A seeded, reproducible generator for tests.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};

use crate::rng::SecureRandom;

/// The ChaCha20 keystream under a 32-byte seed: reproducible, and as good as
/// a real generator for everything but secrecy of the seed. For tests only.
pub struct SeededRng {
    cipher: ChaCha20,
}

impl SeededRng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        Self { cipher: ChaCha20::new(&key.into(), &[0u8; 12].into()) }
    }
}

impl core::fmt::Debug for SeededRng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SeededRng")
    }
}

impl SecureRandom for SeededRng {
    fn fill(&mut self, dest: &mut [u8]) {
        dest.fill(0);
        self.cipher.apply_keystream(dest);
    }
}
