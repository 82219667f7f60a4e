//! The interleavings the concurrency review found on PostgreSQL (issue 20),
//! made to happen every time against a real server: replicas are `PgStore`s
//! on one database, and pat-core's failpoints pause one of them at the
//! protocol's windows. Each test names what broke before its fix.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use pat_core::failpoints::Point;
use pat_core::{
    Admin as _, AuditAction, AuthError, ExpiryPolicy, NewToken, PgStore, PgStoreBuilder, Policy,
    Rotation, StoreError, Timestamp, Verifier as _, conformance,
};
use pat_integration_tests::postgres::postgres;

const HOUR: Duration = Duration::from_secs(3600);
const PATIENCE: Duration = Duration::from_secs(20);

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(1_800_000_000 + secs).expect("a time")
}

/// A replica with manual flushes and the options `f` sets.
fn replica(url: &str, f: impl FnOnce(PgStoreBuilder) -> PgStoreBuilder) -> PgStore {
    f(PgStore::builder()
        .manual_flush()
        .prune_margin(Duration::ZERO))
    .connect(url)
    .expect("connecting to the test database")
}

fn hard(user: &str) -> NewToken {
    NewToken::new(user, ExpiryPolicy::hard(HOUR))
}

fn auth(store: &PgStore, secret: &str, now: Timestamp) -> Result<pat_core::Identity, AuthError> {
    conformance::authenticate(store, secret, None, now)
}

fn sql(url: &str, statements: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connecting to the test database");
        tokio::spawn(connection);
        client.batch_execute(statements).await.expect("statement");
    });
}

// Finding 1 on a fleet: a replica's lookup that had read the record cached
// it after the revocation's notification had been handled, so the revoked
// token was accepted there until the staleness bound.
#[test]
fn a_lookup_racing_a_revocation_elsewhere_never_caches_it() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let a = Arc::new(replica(&db, |b| b.staleness(Duration::from_secs(60))));
    let b = replica(&db, |b| b);
    let t = b.create(&hard("alice"), at(0)).unwrap();
    let fp = a.failpoints();
    fp.pause(Point::CacheInsert);
    let lookup = {
        let (a, secret) = (a.clone(), t.secret.expose_secret().to_owned());
        thread::spawn(move || auth(&a, &secret, at(1)).map(|_| ()))
    };
    assert!(fp.wait_paused(Point::CacheInsert, PATIENCE));
    b.revoke(t.info.id).unwrap();
    // Time for the notification to reach A's listener, which before the fix
    // forgot nothing (nothing was cached yet) and now waits for the insert.
    thread::sleep(Duration::from_millis(300));
    fp.release(Point::CacheInsert);
    let _ = lookup.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    // The notification is handled within moments of the release.
    while a.cached_records() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(
        matches!(
            auth(&a, t.secret.expose_secret(), at(2)),
            Err(AuthError::Unknown)
        ),
        "revoked on B, still accepted on A"
    );
}

// Finding 7: `listen(false)` also removed the staleness bound, so a replica
// behind PgBouncer never saw another's revocation.
#[test]
fn the_staleness_bound_holds_with_listen_off() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let a = replica(&db, |b| {
        b.listen(false).staleness(Duration::from_millis(200))
    });
    let b = replica(&db, |b| b);
    let t = b.create(&hard("alice"), at(0)).unwrap();
    auth(&a, t.secret.expose_secret(), at(1)).unwrap();
    assert_eq!(a.cached_records(), 1);
    b.revoke(t.info.id).unwrap();
    thread::sleep(Duration::from_millis(300));
    assert!(
        matches!(
            auth(&a, t.secret.expose_secret(), at(2)),
            Err(AuthError::Unknown)
        ),
        "revoked on B, accepted on A past the staleness bound"
    );
}

// The staleness bound was counted from when a query returned, so a slow
// read stretched it by its own latency.
#[test]
fn staleness_counts_from_when_the_read_began() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let a = Arc::new(replica(&db, |b| {
        b.listen(false).staleness(Duration::from_millis(300))
    }));
    let b = replica(&db, |b| b);
    let t = b.create(&hard("alice"), at(0)).unwrap();
    let fp = a.failpoints();
    fp.pause(Point::LookupRead);
    let lookup = {
        let (a, secret) = (a.clone(), t.secret.expose_secret().to_owned());
        thread::spawn(move || auth(&a, &secret, at(1)).map(|_| ()))
    };
    assert!(fp.wait_paused(Point::LookupRead, PATIENCE));
    b.revoke(t.info.id).unwrap();
    // The read is now older than the bound: whatever it cached is stale.
    thread::sleep(Duration::from_millis(400));
    fp.release(Point::LookupRead);
    lookup.join().unwrap().expect("read before the revocation");
    assert!(
        matches!(
            auth(&a, t.secret.expose_secret(), at(2)),
            Err(AuthError::Unknown)
        ),
        "a record read 400 ms ago was used with a 300 ms bound"
    );
}

/// A row deleted, remembered as unknown by replica `a`, then put back by
/// SQL (a restore): the token's digest and id.
fn restored_after_a_refusal(db: &str, a: &PgStore) -> pat_core::CreatedToken {
    let b = replica(db, |b| b);
    let t = b.create(&hard("alice"), at(0)).unwrap();
    sql(
        db,
        "CREATE TABLE saved AS SELECT * FROM pat_tokens; DELETE FROM pat_tokens;",
    );
    assert!(matches!(
        auth(a, t.secret.expose_secret(), at(1)),
        Err(AuthError::Unknown)
    ));
    assert_eq!(a.cached_unknown(), 1);
    sql(db, "INSERT INTO pat_tokens SELECT * FROM saved;");
    t
}

// Nothing ever cleared the memory of unknown digests: a row restored by SQL
// stayed refused on every replica until it restarted.
#[test]
fn an_unknown_digest_is_asked_again_after_the_staleness_bound() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let a = replica(&db, |b| {
        b.listen(false).staleness(Duration::from_millis(200))
    });
    let t = restored_after_a_refusal(&db, &a);
    thread::sleep(Duration::from_millis(300));
    auth(&a, t.secret.expose_secret(), at(2)).expect("restored, and still refused");
}

#[test]
fn a_listener_reconnect_forgets_unknown_digests() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let a = replica(&db, |b| b.staleness(Duration::from_secs(600)));
    assert!(a.listening());
    let t = restored_after_a_refusal(&db, &a);
    // Notifications may have been lost while the listener was away: on its
    // return, the replica forgets what it remembered.
    sql(
        &db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid();",
    );
    let deadline = Instant::now() + PATIENCE;
    while a.cached_unknown() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    auth(&a, t.secret.expose_secret(), at(2)).expect("restored, and still refused");
}

// Finding 5: under REPEATABLE READ the policy read fixed the snapshot before
// the per-user lock was taken, so the count missed creates that committed
// while it waited: 3 of 12 concurrent creates passed a limit of 1.
#[test]
fn the_per_user_limit_holds_under_repeatable_read() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let name = db.rsplit('/').next().expect("a database name").to_owned();
    pg.admin_sql(&format!(
        "ALTER DATABASE {name} SET default_transaction_isolation TO 'repeatable read'"
    ));
    let first = replica(&db, |b| b);
    first
        .set_policy(Policy::default().max_tokens_per_user(Some(1)))
        .unwrap();
    let replicas: Vec<PgStore> = (0..12).map(|_| replica(&db, |b| b)).collect();
    let start = Barrier::new(replicas.len());
    let created = thread::scope(|s| {
        let runs: Vec<_> = replicas
            .iter()
            .map(|r| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    r.create(&hard("alice"), at(0))
                })
            })
            .collect();
        runs.into_iter()
            .map(|h| h.join().unwrap())
            .filter(|r| match r {
                Ok(_) => true,
                Err(StoreError::Policy(_)) => false,
                Err(e) => panic!("a create failed otherwise: {e}"),
            })
            .count()
    });
    assert_eq!(created, 1, "a limit of 1 let {created} creates through");
    assert_eq!(first.list(Some("alice"), false, at(0)).unwrap().len(), 1);
}

// Finding 6: a flush's UPDATE locked rows in the order of an array built
// from a HashMap, which differs per process: two replicas flushing the same
// tokens deadlocked ("deadlock detected"), holding row locks about a second.
#[test]
fn two_replicas_flushing_the_same_tokens_never_deadlock() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let a = replica(&db, |b| b);
    let b = replica(&db, |b| b);
    let news: Vec<NewToken> = (0..300)
        .map(|i| NewToken::new(format!("u{i}"), ExpiryPolicy::sliding(HOUR, None)))
        .collect();
    let tokens: Vec<String> = news
        .iter()
        .map(|n| {
            a.create(n, at(0))
                .unwrap()
                .secret
                .expose_secret()
                .to_owned()
        })
        .collect();
    for round in 1..=8 {
        for r in [&a, &b] {
            for t in &tokens {
                auth(r, t, at(round)).unwrap();
            }
        }
        let start = Barrier::new(2);
        let results = thread::scope(|s| {
            let runs: Vec<_> = [&a, &b]
                .into_iter()
                .map(|r| {
                    let start = &start;
                    s.spawn(move || {
                        start.wait();
                        r.flush()
                    })
                })
                .collect();
            runs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        for r in results {
            let n = r.unwrap_or_else(|e| panic!("round {round}: {}", pat_core::error_chain(&e)));
            assert_eq!(n, tokens.len());
        }
    }
}

// Finding 2a on a fleet: a record's re-read after the staleness bound, while
// a flush had taken its use, built the entry from the database alone, and a
// live sliding token was refused as expired, without any cache pressure.
#[test]
fn a_re_read_during_a_flush_keeps_the_use_being_flushed() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let a = Arc::new(replica(&db, |b| {
        b.listen(false).staleness(Duration::from_millis(100))
    }));
    let window = Duration::from_secs(60);
    let t = a
        .create(
            &NewToken::new("alice", ExpiryPolicy::sliding(window, None)),
            at(0),
        )
        .unwrap();
    // Stored deadline 60; this use moves it to 110, in memory.
    auth(&a, t.secret.expose_secret(), at(50)).unwrap();
    let fp = a.failpoints();
    fp.pause(Point::FlushWrite);
    let flusher = {
        let a = a.clone();
        thread::spawn(move || a.flush())
    };
    assert!(fp.wait_paused(Point::FlushWrite, PATIENCE));
    thread::sleep(Duration::from_millis(150));
    let seen = auth(&a, t.secret.expose_secret(), at(70));
    fp.release(Point::FlushWrite);
    flusher.join().unwrap().unwrap();
    seen.expect("alive until 110, refused at 70");
}

// Finding 3 on a fleet: every re-read of a stale record queued another
// digest for the CLOCK hand (36 for 3 records after 12 s), never dropped
// while under capacity.
#[test]
fn the_clock_queue_stays_bounded_while_records_are_re_read() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let a = replica(&db, |b| {
        b.listen(false).staleness(Duration::from_millis(10))
    });
    let tokens: Vec<String> = (0..3)
        .map(|i| {
            a.create(&hard(&format!("u{i}")), at(0))
                .unwrap()
                .secret
                .expose_secret()
                .to_owned()
        })
        .collect();
    let end = Instant::now() + Duration::from_millis(1500);
    let mut reads = 0;
    while Instant::now() < end {
        for t in &tokens {
            auth(&a, t, at(1)).unwrap();
        }
        reads += 1;
        thread::sleep(Duration::from_millis(12));
        let stats = a.cache_stats();
        assert!(
            stats.clock <= 2 * stats.records + 64,
            "after {reads} rounds of re-reads: {stats:?}"
        );
    }
    assert!(reads > 40, "too few rounds to matter: {reads}");
}

// Finding 4 on a fleet: each replay was a query and an audit row (with user
// "" where the other backends wrote the token's user).
#[test]
fn a_replayed_secret_is_remembered_and_audited_once_per_flush_with_its_user() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let a = replica(&db, |b| b);
    let t = a.create(&hard("alice"), at(0)).unwrap();
    a.rotate(t.info.id, &Rotation::new(), at(10)).unwrap();
    for i in 0..300 {
        assert!(matches!(
            auth(&a, t.secret.expose_secret(), at(20 + i)),
            Err(AuthError::Unknown)
        ));
    }
    assert_eq!(a.cached_unknown(), 1, "the refusal is remembered");
    a.flush().unwrap();
    let replays: Vec<_> = a
        .audit(at(0), None)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == AuditAction::ReplayedSecret)
        .collect();
    assert_eq!(replays.len(), 1, "{replays:?}");
    assert_eq!(
        (replays[0].token_id, replays[0].user.as_str()),
        (Some(t.info.id), "alice")
    );
}

/// The concurrent model on two replicas of one database with caches of four
/// records and every window of the protocol jittering: revocations are seen
/// everywhere within the staleness bound, no live token is refused, no use
/// is lost, and both caches stay within their bounds.
#[test]
fn the_concurrent_model_holds_on_two_replicas() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let staleness = Duration::from_millis(60);
    let margin = Duration::from_secs(60);
    let build = |b: PgStoreBuilder| {
        b.cache_capacity(4)
            .staleness(staleness)
            .prune_margin(margin)
    };
    let (a, b) = (replica(&db, build), replica(&db, build));
    for r in [&a, &b] {
        r.failpoints().jitter_all(Duration::from_micros(300));
    }
    let bounds = || {
        a.cache_stats()
            .within_bounds(10_000)
            .and(b.cache_stats().within_bounds(10_000))
    };
    conformance::run_concurrent(&conformance::Concurrent {
        replicas: [&a, &b],
        staleness: Some(staleness),
        prune_margin: margin,
        bounds: &bounds,
        tick: Duration::from_millis(20),
        run_for: Duration::from_secs(5),
    });
}

/// A one-time token, and one of 25 uses, raced by many threads on two
/// replicas (their caches holding the record): exactly one use, and exactly
/// 25, are accepted, and the database counts them.
#[test]
fn two_replicas_spend_a_quota_exactly() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let (a, b) = (replica(&db, |b| b), replica(&db, |b| b));
    conformance::run_quota_race([&a, &b], 16, 8, 1);
    conformance::run_quota_race([&a, &b], 16, 8, 25);
}

// Found in review: dropping a store while its periodic flush held a batch
// let the runtime cancel that flush; the final flush in `Drop` found those
// uses gone from the cache (the batch had taken them) and wrote nothing.
#[test]
fn dropping_a_store_during_a_flush_loses_no_use() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let a = replica(&db, |b| b.flush_interval(Duration::from_millis(50)));
    let t = a
        .create(
            &NewToken::new("alice", ExpiryPolicy::sliding(HOUR, None)),
            at(0),
        )
        .unwrap();
    let fp = a.failpoints();
    fp.pause(Point::FlushWrite);
    auth(&a, t.secret.expose_secret(), at(30)).unwrap();
    assert!(
        fp.wait_paused(Point::FlushWrite, PATIENCE),
        "the periodic flush never took the use"
    );
    let releaser = {
        let fp = fp.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            fp.release(Point::FlushWrite);
        })
    };
    drop(a);
    releaser.join().unwrap();
    let b = replica(&db, |b| b);
    assert_eq!(
        b.get(t.info.id).unwrap().last_used_at,
        Some(at(30)),
        "a use answered before the store was dropped was lost"
    );
}

// Found in this stop's reviews: a replica that does not listen (PgBouncer,
// `listen(false)`) never learnt a prefix set elsewhere, so it refused that
// prefix's tokens as not its store's; and a `set_prefix` of the prefix
// already current (set by another replica) left the caller behind.
#[test]
fn replicas_without_notifications_learn_a_changed_prefix() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let deaf = replica(&db, |b| {
        b.listen(false).flush_interval(Duration::from_millis(50))
    });
    let behind = replica(&db, |b| b.listen(false));
    let setter = replica(&db, |b| b);
    let acme: pat_core::Prefix = "acme".parse().unwrap();
    setter.set_prefix(acme).unwrap();
    let made = setter.create(&hard("alice"), at(0)).unwrap();
    assert!(made.secret.expose_secret().starts_with("acme_"));
    // Learnt by the periodic flush, without a notification.
    let deadline = Instant::now() + PATIENCE;
    while deaf.prefixes().current() != acme {
        assert!(Instant::now() < deadline, "{:?}", deaf.prefixes());
        thread::sleep(Duration::from_millis(20));
    }
    auth(&deaf, made.secret.expose_secret(), at(1)).expect("its token, accepted");
    // Set again where it is current already: the caller takes the store's.
    assert_eq!(behind.prefixes().current(), pat_core::Prefix::DEFAULT);
    behind.set_prefix(acme).unwrap();
    assert_eq!(behind.prefixes().all(), [acme, pat_core::Prefix::DEFAULT]);
    let changes = setter
        .audit(Timestamp::UNIX_EPOCH, None)
        .unwrap()
        .iter()
        .filter(|e| e.action == AuditAction::SetPrefix)
        .count();
    assert_eq!(changes, 1, "the second call changed nothing");
}

/// Issue 24: a change of the catalog on one replica changes what tokens
/// hold on every other, cached ones included: at once where it listens
/// (a `catalog` notification), by the periodic flush where it does not.
#[test]
fn a_catalog_change_reaches_every_replica() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let name = |s: &str| s.parse::<pat_core::Permission>().unwrap();
    let setter = replica(&db, |b| {
        b.permissions([pat_core::PermissionDef::new(name("repo:read"))])
    });
    let listening = replica(&db, |b| b);
    let deaf = replica(&db, |b| {
        b.listen(false).flush_interval(Duration::from_millis(50))
    });
    let scopes = ["repo:*".parse::<pat_core::TokenScope>().unwrap()]
        .into_iter()
        .collect();
    let made = setter.create(&hard("alice").scopes(scopes), at(0)).unwrap();
    let secret = made.secret.expose_secret().to_owned();
    for r in [&listening, &deaf] {
        let who = auth(r, &secret, at(1)).unwrap();
        assert!(who.has_scope("repo:read") && !who.has_scope("repo:admin"));
    }
    setter
        .define_permissions(&[pat_core::PermissionDef::new(name("repo:admin"))])
        .unwrap();
    assert!(
        auth(&setter, &secret, at(2))
            .unwrap()
            .has_scope("repo:admin")
    );
    for (what, r) in [("listening", &listening), ("deaf", &deaf)] {
        let deadline = Instant::now() + PATIENCE;
        while !auth(r, &secret, at(2)).unwrap().has_scope("repo:admin") {
            assert!(Instant::now() < deadline, "{what}: the new name never came");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Two definitions on two replicas that each hold alone but form a cycle
/// together: one waits for the other and is refused, never both kept.
#[test]
fn definitions_racing_on_two_replicas_never_form_a_cycle() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let name = |s: &str| s.parse::<pat_core::Permission>().unwrap();
    let def = |a: &str, b: &str| pat_core::PermissionDef::new(name(a)).implies(name(b));
    let one = Arc::new(replica(&db, |b| {
        b.permissions([
            pat_core::PermissionDef::new(name("x")),
            pat_core::PermissionDef::new(name("y")),
        ])
    }));
    let two = Arc::new(replica(&db, |b| b));
    for round in 0..5 {
        // Back to no implication, then both at once.
        one.define_permissions(&[
            pat_core::PermissionDef::new(name("x")),
            pat_core::PermissionDef::new(name("y")),
        ])
        .unwrap();
        let start = Arc::new(Barrier::new(2));
        let racers: Vec<_> = [(one.clone(), def("x", "y")), (two.clone(), def("y", "x"))]
            .into_iter()
            .map(|(store, d)| {
                let start = start.clone();
                thread::spawn(move || {
                    start.wait();
                    store.define_permissions(&[d])
                })
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        let kept = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(kept, 1, "round {round}: {results:?}");
        assert!(
            results.iter().any(|r| matches!(
                r,
                Err(pat_core::StoreError::Catalog(
                    pat_core::CatalogError::Cycle { .. }
                ))
            )),
            "round {round}: {results:?}"
        );
        let catalog = one.permissions().unwrap();
        let implied =
            catalog.get("x").unwrap().implies.len() + catalog.get("y").unwrap().implies.len();
        assert_eq!(implied, 1, "round {round}: one implication kept");
    }
}

// The review of the event stream (H2): every transaction that appends to
// the audit log holds one fleet-wide lock, so a replica that stalled while
// holding it (a pause, a partition) stopped every replica's audited writes
// until its session died, and they failed by their own timeout, unsure
// whether they had committed. Now the others give up on the lock cleanly,
// and the server ends the stalled transaction after the write timeout.
#[test]
fn a_replica_stalled_holding_the_audit_lock_holds_up_the_fleet_briefly() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let timeout = Duration::from_secs(1);
    let a = Arc::new(replica(&db, |b| b.query_timeout(timeout)));
    let b = replica(&db, |b| b.query_timeout(timeout));
    let fp = a.failpoints();
    fp.pause(Point::AuditLocked);
    let stalled = {
        let a = a.clone();
        thread::spawn(move || a.create(&hard("alice"), at(0)).map(|_| ()))
    };
    assert!(fp.wait_paused(Point::AuditLocked, PATIENCE));
    let refused = b.create(&hard("bob"), at(0)).expect_err("the lock is held");
    let shown = chain(&refused);
    assert!(
        shown.contains("lock timeout") && !shown.contains("in time"),
        "a clean refusal, known not to have committed: {shown}"
    );
    // The server ends the stalled transaction once it has been idle for
    // the write timeout; B then writes again while A is still paused.
    let deadline = Instant::now() + PATIENCE;
    let bob = loop {
        match b.create(&hard("bob"), at(0)) {
            Ok(t) => break t,
            Err(e) if Instant::now() < deadline => {
                assert!(chain(&e).contains("lock timeout"), "{}", chain(&e));
                thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("the stalled transaction was never ended: {}", chain(&e)),
        }
    };
    fp.release(Point::AuditLocked);
    assert!(
        stalled.join().unwrap().is_err(),
        "its session was ended: the commit cannot have happened"
    );
    let users: Vec<String> = b
        .list(None, true, at(0))
        .unwrap()
        .into_iter()
        .map(|t| t.user)
        .collect();
    assert_eq!(users, ["bob"], "alice's create was rolled back");
    assert_eq!(b.get(bob.info.id).unwrap().user, "bob");
    // A reconnects for its next write.
    a.create(&hard("carol"), at(1)).unwrap();
}

/// An error with its sources, as a log line shows it.
fn chain(e: &dyn std::error::Error) -> String {
    let mut shown = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        shown.push_str(&format!(": {s}"));
        source = s.source();
    }
    shown
}

// The review of the event stream (M7): a flush whose commit's answer was
// lost (a timeout after it committed) queued its replays again, and the
// next flush wrote `token.replayed` a second time, under a new event id
// that receivers cannot tell from a new replay.
#[test]
fn a_replay_whose_flush_lost_its_answer_is_one_event() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let a = replica(&db, |b| b);
    let t = a.create(&hard("alice"), at(0)).unwrap();
    a.rotate(t.info.id, &Rotation::new(), at(10)).unwrap();
    assert!(matches!(
        auth(&a, t.secret.expose_secret(), at(20)),
        Err(AuthError::Unknown)
    ));
    let fp = a.failpoints();
    fp.fail(Point::FlushCommitted);
    assert!(a.flush().is_err(), "the answer was lost");
    fp.release(Point::FlushCommitted);
    a.flush().unwrap();
    let replays: Vec<_> = a
        .events(0, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == pat_core::EventKind::Replayed)
        .collect();
    assert_eq!(replays.len(), 1, "{replays:?}");
    assert_eq!(replays[0].token_id, t.info.id);
}
