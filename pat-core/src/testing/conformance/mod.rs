//! The tests every backend passes: a model test against a `BTreeMap` and the
//! contract cases of the [`Verifier`](crate::Verifier) documentation, runnable against any
//! backend (feature `testing`).
//!
//! ```
//! use pat_core::MemoryStore;
//! pat_core::conformance::run_contract(MemoryStore::new);
//! pat_core::conformance::run_model(MemoryStore::new, 16);
//! ```
//!
//! Each case gets a fresh backend from the closure. Time is injected (`now`
//! starts near the epoch), so a backend must use the `now` it is given.

mod addresses;
mod audit;
mod authority;
mod authority_model;
mod catalog;
mod concurrent;
mod contract;
mod events;
mod harness;
mod metadata;
mod model;
mod prefix;
mod quotas;
mod rates;
mod rotation;
mod suspension;

pub use self::authority_model::run_authority;
pub use self::concurrent::{Concurrent, run_concurrent};
pub use self::contract::{CASES, REFUSALS, Refusal, run_contract};
pub use self::harness::{Backend, Scripted, authenticate, block_on};
use self::harness::{MIN, at, auth, create, hard, sliding};
pub use self::model::run_model;
pub use self::quotas::run_quota_race;
pub use self::rates::run_counted_uses;

#[cfg(test)]
mod tests;
