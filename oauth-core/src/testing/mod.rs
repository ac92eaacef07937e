//! Test support, behind the `testing` feature: an in-memory store, a seeded
//! generator, a fault-injecting store wrapper and the storage-conformance
//! suite every backend runs.

mod memory;
mod seeded;

pub use memory::MemoryStore;
pub use seeded::SeededRng;
