//! The suite against pat's own backends, and against broken ones it must
//! catch.

use super::*;
use std::panic::catch_unwind;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::MemoryStore;
use crate::{
    Admin, AuditEntry, Lookup, NewToken, Policy, Rotation, StoreError, Timestamp, TokenDigest,
    TokenId, TokenInfo, Verifier,
};

#[test]
fn memory_store_passes_the_contract() {
    run_contract(MemoryStore::new);
}

#[test]
fn memory_store_records_no_refused_use() {
    super::run_counted_uses(MemoryStore::new);
}

#[test]
fn memory_store_matches_the_model() {
    run_model(MemoryStore::new, 64);
}

#[test]
fn memory_store_keeps_the_authority_rule() {
    run_authority(MemoryStore::new, 256);
}

#[test]
fn memory_store_holds_the_concurrent_model() {
    let store = MemoryStore::new();
    run_concurrent(&Concurrent {
        replicas: [&store, &store],
        staleness: None,
        prune_margin: Duration::ZERO,
        bounds: &|| Ok(()),
        tick: Duration::from_millis(10),
        run_for: Duration::from_secs(2),
    });
}

#[test]
fn memory_store_spends_a_quota_exactly_under_concurrency() {
    let store = MemoryStore::new();
    run_quota_race([&store, &store], 8, 20, 1);
    run_quota_race([&store, &store], 8, 20, 37);
}

#[test]
fn redb_store_spends_a_quota_exactly_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    for capacity in CAPACITIES {
        let store = redb_stores(&dir, capacity)();
        run_quota_race([&store, &store], 8, 10, 1);
        run_quota_race([&store, &store], 8, 10, 13);
    }
}

/// Fresh redb stores in one temporary directory, flushed by hand.
fn redb_stores(dir: &tempfile::TempDir, capacity: usize) -> impl Fn() -> crate::Store + '_ {
    let n = std::sync::atomic::AtomicUsize::new(0);
    move || {
        let i = n.fetch_add(1, Ordering::SeqCst);
        crate::Store::builder()
            .manual_flush()
            .admin_socket(false)
            .cache_capacity(capacity)
            .open(dir.path().join(format!("{i}.redb")))
            .unwrap()
    }
}

/// The cache on (default size), off, and so small that it evicts all
/// the time.
const CAPACITIES: [usize; 3] = [crate::DEFAULT_CACHE_CAPACITY, 0, 2];

#[test]
fn redb_store_passes_the_contract() {
    for capacity in CAPACITIES {
        let dir = tempfile::tempdir().unwrap();
        run_contract(redb_stores(&dir, capacity));
    }
}

#[test]
fn redb_store_records_no_refused_use() {
    for capacity in CAPACITIES {
        let dir = tempfile::tempdir().unwrap();
        super::run_counted_uses(redb_stores(&dir, capacity));
    }
}

#[test]
fn redb_store_matches_the_model() {
    for capacity in CAPACITIES {
        let dir = tempfile::tempdir().unwrap();
        run_model(redb_stores(&dir, capacity), 32);
    }
}

#[test]
fn redb_store_keeps_the_authority_rule() {
    for capacity in CAPACITIES {
        let dir = tempfile::tempdir().unwrap();
        run_authority(redb_stores(&dir, capacity), 32);
    }
}

#[test]
fn a_case_that_fails_is_named() {
    struct Broken(MemoryStore);
    impl Admin for Broken {
        fn create(&self, n: &NewToken, t: Timestamp) -> Result<crate::CreatedToken, StoreError> {
            self.0.create(n, t)
        }
        fn list(
            &self,
            u: Option<&str>,
            a: bool,
            t: Timestamp,
        ) -> Result<Vec<TokenInfo>, StoreError> {
            self.0.list(u, a, t)
        }
        fn get(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
            self.0.get(id)
        }
        fn find(&self, d: &TokenDigest, t: Timestamp) -> Result<Option<TokenInfo>, StoreError> {
            self.0.find(d, t)
        }
        fn rotate(
            &self,
            id: TokenId,
            r: &Rotation,
            t: Timestamp,
        ) -> Result<crate::CreatedToken, StoreError> {
            self.0.rotate(id, r, t)
        }
        // Revocation that forgets to revoke.
        fn revoke(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
            self.0.get(id)
        }
        fn revoke_user(&self, u: &str) -> Result<usize, StoreError> {
            self.0.revoke_user(u)
        }
        fn prune(&self, t: Timestamp) -> Result<usize, StoreError> {
            self.0.prune(t)
        }
        fn policy(&self) -> Result<Policy, StoreError> {
            self.0.policy()
        }
        fn set_policy(&self, p: Policy) -> Result<(), StoreError> {
            self.0.set_policy(p)
        }
        fn audit(
            &self,
            since: Timestamp,
            user: Option<&str>,
        ) -> Result<Vec<AuditEntry>, StoreError> {
            self.0.audit(since, user)
        }
        fn acting_as<'a>(&'a self, _actor: &str) -> Box<dyn Admin + 'a> {
            Box::new(self)
        }
    }
    impl Verifier for Broken {
        fn verify(&self, lookup: Lookup<'_>) -> crate::Verification {
            self.0.verify(lookup)
        }
    }
    let panic = catch_unwind(|| run_contract(|| Broken(MemoryStore::new()))).unwrap_err();
    let msg = panic.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("unknown, expired and revoked are told apart"),
        "{msg}"
    );
}
