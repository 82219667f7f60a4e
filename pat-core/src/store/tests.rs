use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::{ExpiryPolicy, NewTokenError, NodeId, ParseTokenError, Perm, Scopes};

const MIN: Duration = Duration::from_secs(60);

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(secs).unwrap()
}

/// A store whose buffered uses are written only by `flush`, so each test
/// decides when they reach the file.
fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder()
        .manual_flush()
        .open(dir.path().join("pat.redb"))
        .unwrap();
    (dir, store)
}

/// [`temp_store`], with the record cache on or off.
fn temp_store_with_cache(cache: bool) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder()
        .manual_flush()
        .cache(cache)
        .open(dir.path().join("pat.redb"))
        .unwrap();
    (dir, store)
}

/// The record as the file holds it, ignoring buffered uses.
fn stored(store: &Store, id: TokenId) -> TokenInfo {
    let txn = store.inner.db.begin_read().unwrap();
    let digest = txn
        .open_table(BY_ID)
        .unwrap()
        .get(id.as_u64())
        .unwrap()
        .unwrap()
        .value();
    let tokens = txn.open_table(TOKENS).unwrap();
    let bytes = tokens.get(digest).unwrap().unwrap();
    codec::decode(bytes.value()).unwrap()
}

#[test]
fn uses_are_buffered_then_flushed_in_one_write() {
    let (_dir, store) = temp_store();
    let sliding = NewToken::new("alice", ExpiryPolicy::sliding(MIN, None));
    let a = store.create(&sliding, at(0)).unwrap();
    let b = store.create(&hard("bob", MIN), at(0)).unwrap();
    store
        .authenticate(a.secret.expose_secret(), at(50))
        .unwrap();
    store
        .authenticate(b.secret.expose_secret(), at(51))
        .unwrap();
    assert_eq!(store.pending_uses(), 2);
    // Nothing written yet, but every read sees the uses.
    assert_eq!(stored(&store, a.info.id).expiry.expires_at(), at(60));
    assert_eq!(stored(&store, a.info.id).last_used_at, None);
    let got = store.get(a.info.id).unwrap();
    assert_eq!(
        (got.expiry.expires_at(), got.last_used_at),
        (at(110), Some(at(50)))
    );
    let listed = store.list(None, false, at(70)).unwrap();
    let ids: Vec<TokenId> = listed.iter().map(|i| i.id).collect();
    assert_eq!(ids, [a.info.id], "refreshed token live, hard one expired");

    assert_eq!(store.flush().unwrap(), 2);
    assert_eq!(store.pending_uses(), 0);
    assert_eq!(stored(&store, a.info.id).expiry.expires_at(), at(110));
    assert_eq!(stored(&store, b.info.id).last_used_at, Some(at(51)));
    assert_eq!(store.flush().unwrap(), 0);
}

#[test]
fn a_buffered_refresh_keeps_a_sliding_token_alive_through_prune() {
    // Regression guard: prune must judge expiry with buffered uses merged,
    // or it deletes a token that was just used.
    let (_dir, store) = temp_store();
    let sliding = NewToken::new("alice", ExpiryPolicy::sliding(MIN, None));
    let a = store.create(&sliding, at(0)).unwrap();
    store
        .authenticate(a.secret.expose_secret(), at(50))
        .unwrap();
    assert_eq!(store.prune(at(90)).unwrap(), 0);
    assert!(
        store
            .authenticate(a.secret.expose_secret(), at(100))
            .is_ok()
    );
    assert!(
        store
            .authenticate(a.secret.expose_secret(), at(100 + 59))
            .is_ok()
    );
}

#[test]
fn a_token_revoked_before_the_flush_stays_revoked() {
    let (_dir, store) = temp_store();
    let a = store.create(&hard("alice", MIN), at(0)).unwrap();
    store.authenticate(a.secret.expose_secret(), at(1)).unwrap();
    store.revoke(a.info.id).unwrap();
    assert_eq!(store.flush().unwrap(), 0);
    assert_eq!(store.pending_uses(), 0, "memory is released");
    assert!(store.list(None, true, at(1)).unwrap().is_empty());
    assert!(matches!(
        store.authenticate(a.secret.expose_secret(), at(2)),
        Err(AuthError::Unknown)
    ));
}

#[test]
fn pending_uses_are_bounded_by_one_per_token() {
    let (_dir, store) = temp_store();
    let a = store.create(&hard("alice", 10 * MIN), at(0)).unwrap();
    for t in 0..500 {
        store.authenticate(a.secret.expose_secret(), at(t)).unwrap();
    }
    assert_eq!(store.pending_uses(), 1);
}

#[test]
fn touches_never_move_last_use_back() {
    let (_dir, store) = temp_store();
    let a = store.create(&hard("alice", MIN), at(0)).unwrap();
    store
        .authenticate(a.secret.expose_secret(), at(10))
        .unwrap();
    store.authenticate(a.secret.expose_secret(), at(5)).unwrap();
    assert_eq!(store.get(a.info.id).unwrap().last_used_at, Some(at(10)));
    store.flush().unwrap();
    store.authenticate(a.secret.expose_secret(), at(7)).unwrap();
    store.flush().unwrap();
    assert_eq!(stored(&store, a.info.id).last_used_at, Some(at(10)));
}

#[test]
fn cached_records_follow_every_write() {
    let (_dir, store) = temp_store();
    let sliding = NewToken::new("alice", ExpiryPolicy::sliding(MIN, None));
    let a = store.create(&sliding, at(0)).unwrap();
    let b = store.create(&hard("bob", MIN), at(0)).unwrap();
    let c = store.create(&hard("carol", MIN), at(0)).unwrap();
    for t in [&a, &b, &c] {
        store.authenticate(t.secret.expose_secret(), at(1)).unwrap(); // now cached
    }
    // A flush rewrites records: the refreshed deadline must survive it.
    store
        .authenticate(a.secret.expose_secret(), at(50))
        .unwrap();
    store.flush().unwrap();
    assert_eq!(
        store
            .authenticate(a.secret.expose_secret(), at(100))
            .unwrap()
            .expires_at,
        at(160)
    );
    // Deletions reach the cache before the call returns.
    store.revoke(b.info.id).unwrap();
    assert!(matches!(
        store.authenticate(b.secret.expose_secret(), at(2)),
        Err(AuthError::Unknown)
    ));
    store.revoke_user("carol").unwrap();
    assert!(matches!(
        store.authenticate(c.secret.expose_secret(), at(2)),
        Err(AuthError::Unknown)
    ));
    store.prune(at(1000)).unwrap();
    assert!(matches!(
        store.authenticate(a.secret.expose_secret(), at(101)),
        Err(AuthError::Unknown)
    ));
}

#[test]
fn no_request_succeeds_after_revoke_returns() {
    // Readers race a revocation; once `revoke` has returned, every
    // authentication that starts must fail (cache and reads alike).
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    for cache in [true, false] {
        let (_dir, store) = temp_store_with_cache(cache);
        let store = std::sync::Arc::new(store);
        let t = store.create(&hard("alice", MIN), at(0)).unwrap();
        let token = t.secret.expose_secret().to_owned();
        let revoked = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (store, token, revoked) = (store.clone(), token.clone(), revoked.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let after = revoked.load(Ordering::SeqCst);
                        let ok = store.authenticate(&token, at(1)).is_ok();
                        assert!(!(after && ok), "authenticated after revoke returned");
                        if after {
                            return;
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(5));
        store.revoke(t.info.id).unwrap();
        revoked.store(true, Ordering::SeqCst);
        for r in readers {
            r.join().unwrap();
        }
    }
}

#[test]
fn flushes_racing_uses_never_expire_a_sliding_token_early() {
    // Each use at t extends the deadline to t + 10 s and the next use comes
    // 5 s later, so every use must succeed while flushes run alongside.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    for cache in [true, false] {
        let (_dir, store) = temp_store_with_cache(cache);
        let store = std::sync::Arc::new(store);
        let new = NewToken::new(
            "alice",
            ExpiryPolicy::sliding(Duration::from_secs(10), None),
        );
        let t = store.create(&new, at(0)).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let flusher = {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    store.flush().unwrap();
                }
            })
        };
        for i in 0..3_000u64 {
            let now = at(i * 5);
            if let Err(e) = store.authenticate(t.secret.expose_secret(), now) {
                done.store(true, Ordering::SeqCst);
                panic!("use {i} at {now}: {e}");
            }
        }
        done.store(true, Ordering::SeqCst);
        flusher.join().unwrap();
    }
}

#[test]
fn the_background_thread_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder()
        .flush_interval(Duration::from_millis(20))
        .open(dir.path().join("pat.redb"))
        .unwrap();
    let a = store.create(&hard("alice", MIN), Timestamp::now()).unwrap();
    store
        .authenticate(a.secret.expose_secret(), Timestamp::now())
        .unwrap();
    // Poll with a generous deadline: this checks that it happens, not how fast.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.pending_uses() > 0 {
        assert!(std::time::Instant::now() < deadline, "never flushed");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(stored(&store, a.info.id).last_used_at.is_some());
}

fn hard(user: &str, d: Duration) -> NewToken {
    NewToken::new(user, ExpiryPolicy::hard(d))
}

#[test]
fn new_store_file_is_private_and_holds_no_plaintext() {
    let (dir, store) = temp_store();
    let created = store.create(&hard("alice", MIN), at(0)).unwrap();
    let token = created.secret.expose_secret().to_owned();
    store.authenticate(&token, at(1)).unwrap();
    drop(store);
    let path = dir.path().join("pat.redb");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let bytes = std::fs::read(&path).unwrap();
    let body = &token.as_bytes()[4..];
    assert!(
        !bytes.windows(body.len()).any(|w| w == body),
        "plaintext on disk"
    );
}

#[test]
fn tokens_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pat.redb");
    let store = Store::open(&path).unwrap();
    let created = store.create(&hard("alice", MIN), at(0)).unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    let id = store
        .authenticate(created.secret.expose_secret(), at(1))
        .unwrap();
    assert_eq!(id.token_id, created.info.id);
    assert_eq!(
        store.get(created.info.id).unwrap().last_used_at,
        Some(at(1))
    );
}

#[test]
fn recorded_uses_are_durable_after_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pat.redb");
    let store = Store::open(&path).unwrap();
    let new = NewToken::new("alice", ExpiryPolicy::sliding(MIN, None));
    let created = store.create(&new, at(0)).unwrap();
    store
        .authenticate(created.secret.expose_secret(), at(50))
        .unwrap();
    drop(store);
    let info = Store::open(&path).unwrap().get(created.info.id).unwrap();
    assert_eq!(info.expiry.expires_at(), at(110));
    assert_eq!(info.last_used_at, Some(at(50)));
}

#[test]
fn missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = Store::open(missing.join("pat.redb")).unwrap_err();
    assert!(
        matches!(&err, OpenError::MissingDirectory(p) if *p == missing),
        "{err:?}"
    );
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn a_directory_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, OpenError::Io { .. }), "{err:?}");
}

#[test]
fn newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pat.redb");
    drop(Store::open(&path).unwrap());
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(FORMAT_KEY, FORMAT_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::NewerFormat {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("upgrade pat"), "{err}");
}

#[test]
fn foreign_files_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"hello, this is not a database at all").unwrap();
    let err = Store::open(&text).unwrap_err();
    assert!(matches!(err, OpenError::NotAStore { .. }), "{err:?}");
    assert_eq!(
        std::fs::read(&text).unwrap(),
        b"hello, this is not a database at all"
    );

    let other = dir.path().join("other.redb");
    {
        let db = Database::create(&other).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(TableDefinition::<u64, u64>::new("app"))
            .unwrap()
            .insert(1, 2)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&other).unwrap_err();
    assert!(err.to_string().contains("another application"), "{err}");
}

#[test]
fn damaged_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pat.redb");
    {
        let store = Store::open(&path).unwrap();
        for i in 0..20 {
            store.create(&hard(&format!("u{i}"), MIN), at(0)).unwrap();
        }
    }
    let good = std::fs::read(&path).unwrap();
    use rand::Rng as _;
    let mut rng = rand::rng();
    for round in 0..40 {
        let mut bad = good.clone();
        for _ in 0..(1 + round % 8) {
            let i = rng.random_range(0..bad.len());
            bad[i] ^= rng.random_range(1..=255u8);
        }
        if round % 5 == 0 {
            bad.truncate(rng.random_range(0..bad.len()));
        }
        let p = dir.path().join(format!("bad{round}.redb"));
        std::fs::write(&p, &bad).unwrap();
        // Either a clean open or a clean error; then every read is clean too.
        if let Ok(store) = Store::open(&p) {
            let _ = store.list(None, true, at(0));
            let _ = store.prune(at(0));
        }
    }
}

#[test]
fn authenticate_tells_malformed_unknown_and_expired_apart() {
    let (_dir, store) = temp_store();
    let created = store.create(&hard("alice", MIN), at(0)).unwrap();
    let token = created.secret.expose_secret();
    assert!(matches!(
        store.authenticate("ghp_something", at(0)),
        Err(AuthError::Malformed(ParseTokenError::Foreign))
    ));
    assert!(matches!(
        store.authenticate(&token[..20], at(0)),
        Err(AuthError::Malformed(ParseTokenError::Length { .. }))
    ));
    let other = TokenSecret::generate();
    assert!(matches!(
        store.authenticate(other.expose_secret(), at(0)),
        Err(AuthError::Unknown)
    ));
    let id = store.authenticate(token, at(59)).unwrap();
    assert_eq!(id.user, "alice");
    assert_eq!(id.expires_at, at(60));
    assert!(matches!(
        store.authenticate(token, at(60)),
        Err(AuthError::Expired { expires_at }) if expires_at == at(60)
    ));
    store.revoke(created.info.id).unwrap();
    assert!(matches!(
        store.authenticate(token, at(1)),
        Err(AuthError::Unknown)
    ));
}

#[test]
fn sliding_token_used_every_half_window_lives_for_ten_windows() {
    let (_dir, store) = temp_store();
    let new = NewToken::new("alice", ExpiryPolicy::sliding(MIN, None));
    let created = store.create(&new, at(0)).unwrap();
    let token = created.secret.expose_secret();
    let mut now = 0;
    while now <= 10 * 60 {
        let id = store.authenticate(token, at(now)).unwrap();
        assert_eq!(id.expires_at, at(now + 60));
        now += 30;
    }
    let info = store.get(created.info.id).unwrap();
    assert_eq!(info.last_used_at, Some(at(600)));
    assert_eq!(info.expiry.expires_at(), at(660));
}

#[test]
fn sliding_token_idle_for_one_window_is_dead() {
    let (_dir, store) = temp_store();
    let new = NewToken::new("alice", ExpiryPolicy::sliding(MIN, None));
    let created = store.create(&new, at(0)).unwrap();
    let token = created.secret.expose_secret();
    store.authenticate(token, at(30)).unwrap();
    assert!(matches!(
        store.authenticate(token, at(90)),
        Err(AuthError::Expired { expires_at }) if expires_at == at(90)
    ));
}

#[test]
fn sliding_token_dies_at_its_cap_however_often_used() {
    let (_dir, store) = temp_store();
    let new = NewToken::new("alice", ExpiryPolicy::sliding(MIN, Some(5 * MIN)));
    let created = store.create(&new, at(0)).unwrap();
    let token = created.secret.expose_secret();
    for now in (0..300).step_by(10) {
        let id = store.authenticate(token, at(now)).unwrap();
        assert!(id.expires_at <= at(300));
    }
    assert!(matches!(
        store.authenticate(token, at(300)),
        Err(AuthError::Expired { .. })
    ));
}

#[test]
fn hard_token_is_not_extended_by_use() {
    let (_dir, store) = temp_store();
    let created = store.create(&hard("alice", MIN), at(0)).unwrap();
    let token = created.secret.expose_secret();
    for now in (0..60).step_by(10) {
        assert_eq!(
            store.authenticate(token, at(now)).unwrap().expires_at,
            at(60)
        );
    }
    assert!(store.authenticate(token, at(60)).is_err());
}

#[test]
fn identity_carries_scopes() {
    let (_dir, store) = temp_store();
    let node = NodeId::from_bytes([9; 16]);
    let scopes: Scopes = [crate::Scope {
        node,
        perm: Perm::READ,
    }]
    .into_iter()
    .collect();
    let created = store
        .create(&hard("alice", MIN).scopes(scopes.clone()), at(0))
        .unwrap();
    let id = store
        .authenticate(created.secret.expose_secret(), at(0))
        .unwrap();
    assert_eq!(id.scopes, scopes);
    assert!(id.permits([&node], Perm::READ));
    assert!(!id.permits([&node], Perm::WRITE));
}

#[test]
fn admin_operations() {
    let (_dir, store) = temp_store();
    let a1 = store.create(&hard("alice", MIN), at(0)).unwrap().info;
    let a2 = store.create(&hard("alice", 10 * MIN), at(1)).unwrap().info;
    let b1 = store
        .create(&hard("bob", MIN).label("ci").created_by("root"), at(2))
        .unwrap()
        .info;
    assert_eq!(store.get(b1.id).unwrap(), b1);
    assert_eq!(b1.label, "ci");
    assert_eq!(b1.created_by, "root");

    let ids = |v: Vec<TokenInfo>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list(None, false, at(3)).unwrap()),
        [a1.id, a2.id, b1.id]
    );
    assert_eq!(
        ids(store.list(Some("alice"), false, at(3)).unwrap()),
        [a1.id, a2.id]
    );
    assert_eq!(ids(store.list(Some("carol"), true, at(3)).unwrap()), []);
    assert_eq!(
        ids(store.list(None, false, at(61)).unwrap()),
        [a2.id, b1.id]
    );
    assert_eq!(ids(store.list(None, false, at(62)).unwrap()), [a2.id]);
    assert_eq!(
        ids(store.list(None, true, at(62)).unwrap()),
        [a1.id, a2.id, b1.id]
    );

    assert_eq!(store.prune(at(62)).unwrap(), 2);
    assert_eq!(store.prune(at(62)).unwrap(), 0);
    assert!(matches!(store.get(a1.id), Err(StoreError::NotFound(id)) if id == a1.id));
    assert!(matches!(store.revoke(b1.id), Err(StoreError::NotFound(_))));

    let a3 = store.create(&hard("alice", MIN), at(62)).unwrap().info;
    assert_eq!(store.revoke_user("alice").unwrap(), 2);
    assert_eq!(store.revoke_user("alice").unwrap(), 0);
    assert!(store.list(None, true, at(62)).unwrap().is_empty());
    assert!(matches!(store.revoke(a3.id), Err(StoreError::NotFound(_))));
}

#[test]
fn invalid_requests_store_nothing() {
    let (_dir, store) = temp_store();
    let err = store.create(&hard("a:b", MIN), at(0)).unwrap_err();
    assert!(
        matches!(err, StoreError::NewToken(NewTokenError::User { .. })),
        "{err:?}"
    );
    let err = store
        .create(&hard("alice", Duration::from_secs(10)), Timestamp::MAX)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NewToken(NewTokenError::TooLate)),
        "{err:?}"
    );
    assert!(store.list(None, true, at(0)).unwrap().is_empty());
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    Create {
        user: u8,
        secs: u64,
        sliding: bool,
        cap: Option<u64>,
    },
    Revoke(usize),
    RevokeUser(u8),
    Prune,
    Auth(usize),
    Forged,
    Advance(u64),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..3, 1u64..200, any::<bool>(), proptest::option::of(1u64..400))
            .prop_map(|(user, secs, sliding, cap)| Op::Create { user, secs, sliding, cap }),
        2 => any::<usize>().prop_map(Op::Revoke),
        1 => (0u8..3).prop_map(Op::RevokeUser),
        1 => Just(Op::Prune),
        5 => any::<usize>().prop_map(Op::Auth),
        1 => Just(Op::Forged),
        3 => (1u64..120).prop_map(Op::Advance),
        2 => Just(Op::Flush),
    ]
}

/// What the model knows about a live token.
#[derive(Debug)]
struct Model {
    user: String,
    created_at: u64,
    expires_at: u64,
    window: Option<u64>,
    cap: Option<u64>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn store_matches_a_btreemap_model(ops in proptest::collection::vec(op(), 1..60), cache in any::<bool>()) {
        let (_dir, store) = temp_store_with_cache(cache);
        let mut model: BTreeMap<TokenId, Model> = BTreeMap::new();
        // Every token ever issued, so revoked ones can be presented again.
        let mut issued: Vec<(TokenId, TokenSecret)> = Vec::new();
        let mut now = 1_000u64;
        for op in ops {
            match op {
                Op::Create { user, secs, sliding, cap } => {
                    let user = format!("user{user}");
                    let cap = cap.filter(|&c| c >= secs);
                    let policy = if sliding {
                        ExpiryPolicy::sliding(Duration::from_secs(secs), cap.map(Duration::from_secs))
                    } else {
                        ExpiryPolicy::hard(Duration::from_secs(secs))
                    };
                    let created = store.create(&NewToken::new(&user, policy), at(now)).unwrap();
                    model.insert(created.info.id, Model {
                        user,
                        created_at: now,
                        expires_at: now + secs,
                        window: sliding.then_some(secs),
                        cap: if sliding { cap } else { None },
                    });
                    issued.push((created.info.id, created.secret));
                }
                Op::Revoke(i) if !issued.is_empty() => {
                    let id = issued[i % issued.len()].0;
                    let got = store.revoke(id);
                    match model.remove(&id) {
                        Some(_) => prop_assert_eq!(got.unwrap().id, id),
                        None => prop_assert!(matches!(got, Err(StoreError::NotFound(_)))),
                    }
                }
                Op::RevokeUser(u) => {
                    let user = format!("user{u}");
                    let before = model.len();
                    model.retain(|_, m| m.user != user);
                    prop_assert_eq!(store.revoke_user(&user).unwrap(), before - model.len());
                }
                Op::Prune => {
                    let before = model.len();
                    model.retain(|_, m| now < m.expires_at);
                    prop_assert_eq!(store.prune(at(now)).unwrap(), before - model.len());
                }
                Op::Auth(i) if !issued.is_empty() => {
                    let (id, secret) = &issued[i % issued.len()];
                    let got = store.authenticate(secret.expose_secret(), at(now));
                    match model.get_mut(id) {
                        None => prop_assert!(matches!(got, Err(AuthError::Unknown)), "{:?}", got),
                        Some(m) if now >= m.expires_at => {
                            let expected = at(m.expires_at);
                            prop_assert!(
                                matches!(got, Err(AuthError::Expired { expires_at }) if expires_at == expected),
                                "{:?}", got
                            );
                        }
                        Some(m) => {
                            if let Some(w) = m.window {
                                let mut next = now + w;
                                if let Some(c) = m.cap {
                                    next = next.min(m.created_at + c);
                                }
                                m.expires_at = m.expires_at.max(next);
                            }
                            let identity = got.unwrap();
                            prop_assert_eq!(identity.token_id, *id);
                            prop_assert_eq!(&identity.user, &m.user);
                            prop_assert_eq!(identity.expires_at, at(m.expires_at));
                        }
                    }
                }
                Op::Forged => {
                    let forged = TokenSecret::generate();
                    prop_assert!(matches!(
                        store.authenticate(forged.expose_secret(), at(now)),
                        Err(AuthError::Unknown)
                    ));
                }
                Op::Advance(s) => now += s,
                Op::Flush => {
                    store.flush().unwrap();
                    prop_assert_eq!(store.pending_uses(), 0);
                }
                Op::Revoke(_) | Op::Auth(_) => {}
            }
            // After every step the listing is exactly the live model.
            let listed: BTreeMap<TokenId, (String, Timestamp)> = store
                .list(None, true, at(now))
                .unwrap()
                .into_iter()
                .map(|i| (i.id, (i.user, i.expiry.expires_at())))
                .collect();
            let expected: BTreeMap<TokenId, (String, Timestamp)> = model
                .iter()
                .map(|(id, m)| (*id, (m.user.clone(), at(m.expires_at))))
                .collect();
            prop_assert_eq!(listed, expected);
        }
    }
}
