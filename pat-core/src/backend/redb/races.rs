//! The interleavings the concurrency review found (issue 20), each made to
//! happen every time: a failpoint pauses one thread at the window and the
//! test drives another through it. Each test failed before its fix; the
//! comment on each names what broke.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::*;
use crate::testing::failpoints::Point;
use crate::{Admin as _, AuditAction, ExpiryPolicy, Rotation};

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
/// Long enough for a paused thread to be reached on a loaded machine; a
/// test waits this long only when something is wrong.
const PATIENCE: Duration = Duration::from_secs(20);

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(secs).unwrap()
}

fn store_with(capacity: usize) -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder()
        .manual_flush()
        .admin_socket(false)
        .cache_capacity(capacity)
        .open(dir.path().join("pat.redb"))
        .unwrap();
    (dir, Arc::new(store))
}

fn hard(user: &str) -> NewToken {
    NewToken::new(user, ExpiryPolicy::hard(HOUR))
}

fn sliding(user: &str) -> NewToken {
    NewToken::new(user, ExpiryPolicy::sliding(MIN, None))
}

/// Waits up to `limit` for `done`; whether it came.
fn within(limit: Duration, done: impl Fn() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    done()
}

/// A lookup paused between its "no write since I began" check and its
/// insert, while `write` deletes the token in another thread; then the
/// lookup goes on. Whatever the paused lookup answered, the token must be
/// refused afterwards.
fn lookup_paused_across(store: &Arc<Store>, secret: &str, write: impl FnOnce() + Send + 'static) {
    let fp = store.failpoints();
    fp.pause(Point::CacheInsert);
    let lookup = {
        let (store, secret) = (store.clone(), secret.to_owned());
        thread::spawn(move || store.authenticate(&secret, at(1)).map(|_| ()))
    };
    assert!(
        fp.wait_paused(Point::CacheInsert, PATIENCE),
        "the lookup never got there"
    );
    let write = thread::spawn(write);
    // Before the fix the write returned here, with the lookup still about
    // to insert; now it waits for the insert and then removes it. Either
    // way, give it the chance to finish first.
    within(Duration::from_millis(300), || write.is_finished());
    fp.release(Point::CacheInsert);
    // Its answer may be either: it was concurrent with the write.
    let _ = lookup.join().unwrap();
    write.join().unwrap();
}

// Finding 1: a lookup that had read the record inserted it after the revoke
// had committed and "forgotten" it; the revoked token was then accepted on
// every request until restart, while `token list` showed nothing.
#[test]
fn a_lookup_racing_a_revoke_never_caches_the_revoked_token() {
    let (_dir, store) = store_with(16);
    let t = store.create(&hard("alice"), at(0)).unwrap();
    let id = t.info.id;
    let revoker = store.clone();
    lookup_paused_across(&store, t.secret.expose_secret(), move || {
        revoker.revoke(id).unwrap();
    });
    assert!(
        matches!(
            store.authenticate(t.secret.expose_secret(), at(2)),
            Err(AuthError::Unknown)
        ),
        "revoked, and still accepted"
    );
    assert_eq!(store.cached_records(), 0);
    assert!(matches!(store.revoke(id), Err(StoreError::NotFound(_))));
}

// Finding 1, by rotation: with no grace, the old secret took the same path
// and stayed accepted beside the new one.
#[test]
fn a_lookup_racing_a_rotation_never_caches_the_old_secret() {
    let (_dir, store) = store_with(16);
    // The race, not reuse detection: the old secret presented again is
    // refused, and the token lives on.
    store
        .set_policy(crate::Policy::default().on_reuse(crate::OnReuse::Refuse))
        .unwrap();
    let t = store.create(&hard("alice"), at(0)).unwrap();
    let id = t.info.id;
    let rotator = store.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    lookup_paused_across(&store, t.secret.expose_secret(), move || {
        let rotated = rotator.rotate(id, &Rotation::new(), at(1)).unwrap();
        tx.send(rotated).unwrap();
    });
    let rotated = rx.recv().unwrap();
    assert!(
        matches!(
            store.authenticate(t.secret.expose_secret(), at(2)),
            Err(AuthError::Unknown)
        ),
        "rotated away, and the old secret still accepted"
    );
    store
        .authenticate(rotated.secret.expose_secret(), at(2))
        .unwrap();
}

/// A sliding token used near its stored deadline, and a flush paused after
/// it took that use: the token is then evicted (capacity 1) by another.
fn used_then_evicted_during_a_flush(
    store: &Arc<Store>,
) -> (CreatedToken, thread::JoinHandle<Result<usize, StoreError>>) {
    let t = store.create(&sliding("alice"), at(0)).unwrap();
    let other = store.create(&hard("bob"), at(0)).unwrap();
    // Stored deadline 60; this use moves it to 110, in memory only.
    store
        .authenticate(t.secret.expose_secret(), at(50))
        .unwrap();
    let fp = store.failpoints();
    fp.pause(Point::FlushWrite);
    let flusher = {
        let store = store.clone();
        thread::spawn(move || store.flush())
    };
    assert!(
        fp.wait_paused(Point::FlushWrite, PATIENCE),
        "the flush never got there"
    );
    store
        .authenticate(other.secret.expose_secret(), at(51))
        .unwrap();
    assert_eq!(store.cached_records(), 1, "the sliding token was evicted");
    (t, flusher)
}

// Finding 2a: the flush had cleared the entry's dirty flag, so the
// eviction dropped the use instead of keeping it; until the commit the
// refresh was nowhere, and the live token was refused as expired.
#[test]
fn a_use_being_flushed_is_seen_by_a_lookup_after_an_eviction() {
    let (_dir, store) = store_with(1);
    let (t, flusher) = used_then_evicted_during_a_flush(&store);
    let seen = store.authenticate(t.secret.expose_secret(), at(70));
    store.failpoints().release(Point::FlushWrite);
    flusher.join().unwrap().unwrap();
    let seen = seen.expect("alive until 110 by its last use, refused at 70");
    assert_eq!(seen.expires_at(), at(130));
    store
        .authenticate(t.secret.expose_secret(), at(120))
        .unwrap();
}

// Finding 2b: a prune run while the flush waited for the write lock saw the
// file's stale deadline and deleted a live token.
#[test]
fn a_prune_during_a_flush_keeps_a_token_its_use_keeps_alive() {
    let (_dir, store) = store_with(1);
    let (t, flusher) = used_then_evicted_during_a_flush(&store);
    let pruned = store.prune(at(70));
    store.failpoints().release(Point::FlushWrite);
    flusher.join().unwrap().unwrap();
    assert_eq!(
        pruned.unwrap(),
        0,
        "a token alive until 110 was pruned at 70"
    );
    store
        .authenticate(t.secret.expose_secret(), at(100))
        .unwrap();
}

// Finding 3: every insert queued a digest for the CLOCK hand and removals
// left theirs behind, so the queue grew with every rotation (and, on
// PostgreSQL, every re-read), and the first eviction walked it all.
#[test]
fn the_clock_queue_stays_within_twice_the_cached_records() {
    let (_dir, store) = store_with(64);
    let mut t = store.create(&hard("alice"), at(0)).unwrap();
    for i in 0..200 {
        store.authenticate(t.secret.expose_secret(), at(i)).unwrap();
        t = store.rotate(t.info.id, &Rotation::new(), at(i)).unwrap();
        let stats = store.cache_stats();
        assert!(
            stats.clock <= 2 * stats.records + 64,
            "after {i} rotations: {stats:?}"
        );
        assert!(
            stats.dirty <= 2 * stats.records + 64,
            "after {i} rotations: {stats:?}"
        );
    }
}

// Finding 4: a replayed old secret cost two or three file reads and one
// audit row per request (300 requests, 300 rows), and was never remembered.
#[test]
fn a_replayed_secret_costs_one_read_and_one_audit_entry_per_flush() {
    let (_dir, store) = store_with(16);
    let t = store.create(&hard("alice"), at(0)).unwrap();
    store.rotate(t.info.id, &Rotation::new(), at(10)).unwrap();
    let replays = |from: u64| {
        for i in 0..300 {
            assert!(matches!(
                store.authenticate(t.secret.expose_secret(), at(from + i)),
                Err(AuthError::Unknown)
            ));
        }
    };
    let before = store.file_reads();
    replays(20);
    assert!(
        store.file_reads() - before <= 2,
        "{} file reads for 300 replays",
        store.file_reads() - before
    );
    let logged = || {
        store
            .audit(at(0), None)
            .unwrap()
            .into_iter()
            .filter(|e| e.action == AuditAction::ReplayedSecret)
            .collect::<Vec<_>>()
    };
    assert!(logged().is_empty(), "the request path never writes");
    store.flush().unwrap();
    let entries = logged();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (entries[0].token_id, entries[0].user.as_str(), entries[0].at),
        (Some(t.info.id), "alice", at(20))
    );
    // The next flush interval gets its own entry.
    replays(400);
    store.flush().unwrap();
    assert_eq!(logged().len(), 2);
}

// Finding 4: the audit entries waiting for a flush were unbounded, and put
// back whole after every failed flush.
#[test]
fn audit_entries_waiting_for_a_failing_flush_are_bounded() {
    let (_dir, store) = store_with(8);
    let news: Vec<NewToken> = (0..100).map(|i| hard(&format!("u{i}"))).collect();
    let created = store.create_many(&news, at(0)).unwrap();
    for c in &created {
        store.rotate(c.info.id, &Rotation::new(), at(1)).unwrap();
    }
    store.failpoints().fail(Point::FlushWrite);
    for round in 0..3 {
        for c in &created {
            let _ = store.authenticate(c.secret.expose_secret(), at(2 + round));
        }
        assert!(store.flush().is_err());
        let stats = store.cache_stats();
        assert!(stats.audit <= 64, "round {round}: {stats:?}");
    }
    store.failpoints().release(Point::FlushWrite);
    store.flush().unwrap();
    let logged = store
        .audit(at(0), None)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == AuditAction::ReplayedSecret)
        .count();
    assert_eq!(logged, 64, "as many as the bound kept");
    assert_eq!(store.cache_stats().audit, 0);
}

// Finding 8: while flushes failed, each failed flush put evicted entries
// back on the dirty list, and each evict/re-read cycle added one more.
#[test]
fn failing_flushes_keep_the_dirty_list_bounded_and_the_uses_visible() {
    let (_dir, store) = store_with(1);
    let t = store.create(&sliding("alice"), at(0)).unwrap();
    let other = store.create(&hard("bob"), at(0)).unwrap();
    store.failpoints().fail(Point::FlushWrite);
    let mut last = 0;
    for i in 1..=50 {
        // Each use is within the window of the one before: alive
        // throughout, by its buffered deadline only.
        last = 50 * i;
        store
            .authenticate(t.secret.expose_secret(), at(last))
            .unwrap_or_else(|e| panic!("round {i}: {e}"));
        assert!(store.flush().is_err());
        store
            .authenticate(other.secret.expose_secret(), at(last))
            .unwrap();
        let stats = store.cache_stats();
        assert!(stats.dirty <= 2, "round {i}: {stats:?}");
        assert!(stats.orphans <= 2, "round {i}: {stats:?}");
    }
    assert_eq!(
        store.get(t.info.id).unwrap().expiry.expires_at(),
        at(last + 60),
        "the last use is visible while flushes fail"
    );
    store.failpoints().release(Point::FlushWrite);
    assert_eq!(store.flush().unwrap(), 2);
    assert_eq!(store.pending_uses(), 0);
    let info = store.get(t.info.id).unwrap();
    assert_eq!(info.last_used_at, Some(at(last)));
    assert_eq!(info.expiry.expires_at(), at(last + 60));
}

/// Lookups, creations, revocations, rotations, prunes and flushes at once on
/// a cache of four records, so that evictions happen all the time; every
/// answer checked against the model (see `conformance::run_concurrent`).
#[test]
fn the_concurrent_model_holds_on_a_tiny_cache() {
    let (_dir, store) = store_with(4);
    // Every window of the protocol held open for a random while.
    store.failpoints().jitter_all(Duration::from_micros(300));
    let bounds = || store.cache_stats().within_bounds(10_000);
    crate::testing::conformance::run_concurrent(&crate::testing::conformance::Concurrent {
        replicas: [&*store, &*store],
        staleness: None,
        prune_margin: Duration::ZERO,
        bounds: &bounds,
        tick: Duration::from_millis(10),
        run_for: Duration::from_secs(4),
    });
}

/// The same model with the cache off: every use goes through the orphans.
#[test]
fn the_concurrent_model_holds_with_the_cache_off() {
    let (_dir, store) = store_with(0);
    store.failpoints().jitter_all(Duration::from_micros(300));
    let bounds = || store.cache_stats().within_bounds(10_000);
    crate::testing::conformance::run_concurrent(&crate::testing::conformance::Concurrent {
        replicas: [&*store, &*store],
        staleness: None,
        prune_margin: Duration::ZERO,
        bounds: &bounds,
        tick: Duration::from_millis(10),
        run_for: Duration::from_secs(2),
    });
}

// Found by the concurrent model test: a prune that had read a sliding token
// as expired deleted it although a use, answered meanwhile, had moved its
// deadline on (the use's `now` was earlier than the prune's, the deadline
// between them); the client's next request was refused.
#[test]
fn a_prune_spares_a_token_a_racing_use_refreshed() {
    let (_dir, store) = store_with(16);
    let t = store.create(&sliding("alice"), at(0)).unwrap();
    // Cached, deadline 60.
    store.authenticate(t.secret.expose_secret(), at(0)).unwrap();
    let fp = store.failpoints();
    fp.pause(Point::PruneChose);
    let pruner = {
        let store = store.clone();
        thread::spawn(move || store.prune(at(60)))
    };
    assert!(fp.wait_paused(Point::PruneChose, PATIENCE));
    // A request read its clock a moment before the prune did.
    let used = store.authenticate(t.secret.expose_secret(), at(59));
    fp.release(Point::PruneChose);
    let pruned = pruner.join().unwrap().unwrap();
    used.expect("alive at 59");
    assert_eq!(pruned, 0, "pruned a token refreshed to 119");
    store
        .authenticate(t.secret.expose_secret(), at(100))
        .expect("refreshed at 59 for a minute");
}

// The other side of the same rule: a use that lands once the prune has
// condemned the token is refused, not answered and then lost.
#[test]
fn a_use_after_a_prune_condemned_the_token_is_refused() {
    let (_dir, store) = store_with(16);
    let t = store.create(&sliding("alice"), at(0)).unwrap();
    store.authenticate(t.secret.expose_secret(), at(0)).unwrap();
    let fp = store.failpoints();
    fp.pause(Point::DeleteCommitted);
    let pruner = {
        let store = store.clone();
        thread::spawn(move || store.prune(at(60)))
    };
    assert!(fp.wait_paused(Point::DeleteCommitted, PATIENCE));
    // Committed, not yet forgotten in memory: the cached entry must not
    // answer for a token that is gone.
    assert!(matches!(
        store.authenticate(t.secret.expose_secret(), at(59)),
        Err(AuthError::Unknown)
    ));
    // Found in review: a second use in the same second moved nothing, and
    // was answered by the deadline the refused one had moved.
    assert!(matches!(
        store.authenticate(t.secret.expose_secret(), at(59)),
        Err(AuthError::Unknown)
    ));
    fp.release(Point::DeleteCommitted);
    assert_eq!(pruner.join().unwrap().unwrap(), 1);
}

// Found in review: a lookup holding an entry that was then evicted used it
// after a prune, unable to see that entry, had condemned the token; the use
// moved the deadline and was answered, and the prune deleted the token.
#[test]
fn a_use_of_an_evicted_entry_never_outlives_a_prune_that_could_not_see_it() {
    let (_dir, store) = store_with(1);
    let t = store.create(&sliding("alice"), at(0)).unwrap();
    let other = store.create(&hard("bob"), at(0)).unwrap();
    store.authenticate(t.secret.expose_secret(), at(0)).unwrap();
    store.flush().unwrap();
    let fp = store.failpoints();
    fp.pause(Point::HitFound);
    let lookup = {
        let (store, secret) = (store.clone(), t.secret.expose_secret().to_owned());
        thread::spawn(move || store.authenticate(&secret, at(59)).map(|_| ()))
    };
    assert!(fp.wait_paused(Point::HitFound, PATIENCE));
    // The entry the lookup holds leaves the map; a prune condemns the
    // token without it, and waits to write the deletion.
    store
        .authenticate(other.secret.expose_secret(), at(1))
        .unwrap();
    fp.pause(Point::PruneDecided);
    let pruner = {
        let store = store.clone();
        thread::spawn(move || store.prune(at(60)))
    };
    assert!(fp.wait_paused(Point::PruneDecided, PATIENCE));
    fp.release(Point::HitFound);
    let answered = lookup.join().unwrap();
    fp.release(Point::PruneDecided);
    let pruned = pruner.join().unwrap().unwrap();
    assert!(
        !(answered.is_ok() && pruned == 1),
        "a use moved the deadline to 119 and was answered, and the token was pruned at 60"
    );
}

// Found in review: a use refused because a prune had condemned the token
// left its entry marked dirty but off the dirty list; when the prune failed
// and the token lived on, no later use of it was ever flushed.
#[test]
fn a_token_spared_by_a_failed_prune_still_has_its_uses_written() {
    let (_dir, store) = store_with(16);
    let t = store.create(&sliding("alice"), at(0)).unwrap();
    store.authenticate(t.secret.expose_secret(), at(0)).unwrap();
    store.flush().unwrap();
    let fp = store.failpoints();
    fp.pause(Point::PruneDecided);
    let pruner = {
        let store = store.clone();
        thread::spawn(move || store.prune(at(60)))
    };
    assert!(fp.wait_paused(Point::PruneDecided, PATIENCE));
    assert!(matches!(
        store.authenticate(t.secret.expose_secret(), at(59)),
        Err(AuthError::Unknown)
    ));
    // The deletion fails: the token lives on.
    fp.fail(Point::PruneDecided);
    assert!(pruner.join().unwrap().is_err());
    fp.release(Point::PruneDecided);
    store
        .authenticate(t.secret.expose_secret(), at(100))
        .expect("spared, and refreshed until 119");
    store.flush().unwrap();
    let txn = store.inner.db.begin_read().unwrap();
    let tokens = txn.open_table(TOKENS).unwrap();
    let stored = codec::decode(
        tokens
            .get(t.secret.digest().as_bytes())
            .unwrap()
            .unwrap()
            .value(),
    )
    .unwrap();
    assert_eq!(
        stored.last_used_at,
        Some(at(100)),
        "the use at 100 was never written"
    );
}
