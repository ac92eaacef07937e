//! Test support, behind the `testing` feature: an in-memory store, a seeded
//! generator, a fault-injecting store wrapper and the storage-conformance
//! suite every backend runs.

mod memory;
mod seeded;

pub use memory::MemoryStore;
pub use seeded::SeededRng;
mod conformance;
mod faulty;

pub use conformance::{
    Capabilities, Capability, CheckResult, ConformanceOptions, ConformanceReport, RaceCase, StoreDriver, Verdict,
    block_on_ready, race_cases, run_conformance, run_conformance_blocking, run_races, run_races_blocking,
};
pub use faulty::{Fault, FaultMode, FaultyDriver, FaultyStore};
