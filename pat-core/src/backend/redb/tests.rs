//! The redb store's own tests: what the file holds, the buffer of uses,
//! the cache, opening and damage. The behaviour every backend shares (expiry,
//! sliding refresh, admin operations, races with revocation, the model test)
//! is in `conformance`, which runs against this store with the cache on and
//! off.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use super::*;
use crate::{Admin as _, ExpiryPolicy, ParseTokenError, TokenSecret};

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
            .expires_at(),
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

// The attack review's finding: the store's own calls (no gate, no
// admission) recorded a use of a quota with none left before the spend
// refused it, refreshing a sliding token that could no longer be used.
#[test]
fn a_used_up_token_authenticated_by_the_store_records_nothing() {
    let (_dir, store) = temp_store();
    let sliding = NewToken::new("alice", ExpiryPolicy::sliding(10 * MIN, None)).max_uses(1);
    let t = store.create(&sliding, at(1000)).unwrap();
    let token = t.secret.expose_secret();
    assert!(store.authenticate(token, at(1001)).is_ok());
    for now in [1300, 1400] {
        assert!(matches!(
            store.authenticate(token, at(now)),
            Err(AuthError::UsedUp)
        ));
    }
    store.flush().unwrap();
    let held = stored(&store, t.info.id);
    assert_eq!(
        held.last_used_at,
        Some(at(1001)),
        "the refused uses recorded nothing"
    );
    assert_eq!(
        held.expiry.expires_at(),
        at(1601),
        "nor refreshed the token"
    );
    assert_eq!(held.uses, 1);
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
    assert_eq!(id.token_id(), created.info.id);
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
                found,
                supported: FORMAT_VERSION,
                ..
            } if found == FORMAT_VERSION + 1
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
    // Private, so that it is judged by its content, not its mode.
    std::fs::set_permissions(&text, std::fs::Permissions::from_mode(0o600)).unwrap();
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
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
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
        // Private, so the damage is what gets judged, not the mode.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Either a clean open or a clean error; then every read is clean too.
        let opened = Store::open(&p);
        assert!(
            !matches!(opened, Err(OpenError::Untrusted { .. })),
            "{opened:?}"
        );
        if let Ok(store) = opened {
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
    assert_eq!(id.user(), "alice");
    assert_eq!(id.expires_at(), at(60));
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
fn a_link_at_the_store_path_is_never_followed() {
    // Regression: a symlink planted at the store path made the service create
    // and overwrite files wherever it pointed.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere");
    let link = dir.path().join("pat.redb");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = Store::open(&link).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::Untrusted {
                reason: crate::Untrusted::Symlink,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!target.exists(), "created through a dangling link");
    // A link to an existing store is refused too, and the store is untouched.
    drop(Store::open(&target).unwrap());
    let before = std::fs::read(&target).unwrap();
    assert!(matches!(
        Store::open(&link),
        Err(OpenError::Untrusted {
            reason: crate::Untrusted::Symlink,
            ..
        })
    ));
    assert_eq!(std::fs::read(&target).unwrap(), before);
    assert!(err.to_string().contains("symbolic link"), "{err}");
}

#[test]
fn a_store_open_to_others_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pat.redb");
    drop(Store::open(&path).unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::Untrusted {
                reason: crate::Untrusted::Mode { mode: 0o644 },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Store::open(&path).is_ok());
}

#[test]
fn a_directory_others_can_write_needs_the_sticky_bit() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = Store::open(shared.join("pat.redb")).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::Untrusted {
                reason: crate::Untrusted::DirectoryWritable { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("sticky"), "{err}");
    assert!(!shared.join("pat.redb").exists());
    // Like /tmp: others may create files but not replace ours.
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(Store::open(shared.join("pat.redb")).is_ok());
}

#[test]
fn an_empty_store_file_is_refused_not_treated_as_new() {
    // Regression: a store truncated to 0 bytes silently became a new empty
    // store, and the operator learnt nothing.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pat.redb");
    {
        let store = Store::open(&path).unwrap();
        store.create(&hard("alice", MIN), at(0)).unwrap();
    }
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, OpenError::Empty { .. }), "{err:?}");
    assert!(err.to_string().contains("truncated"), "{err}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "left alone");
}

#[test]
fn a_flush_leaves_hot_records_cached() {
    // Issue 11: every flush invalidated the cached records of every token
    // used in that second, so the hottest tokens missed once a second.
    let (_dir, store) = temp_store();
    let a = store
        .create(
            &NewToken::new("alice", ExpiryPolicy::sliding(MIN, None)),
            at(0),
        )
        .unwrap();
    store.authenticate(a.secret.expose_secret(), at(1)).unwrap();
    let reads = store.file_reads();
    assert_eq!(store.flush().unwrap(), 1);
    let second = store.authenticate(a.secret.expose_secret(), at(2)).unwrap();
    assert_eq!(
        store.file_reads(),
        reads,
        "the record was read from the file again"
    );
    assert_eq!(second.expires_at(), at(62));
    assert_eq!(store.cached_records(), 1);
}

#[test]
fn the_cache_is_bounded_and_eviction_loses_no_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder()
        .manual_flush()
        .admin_socket(false)
        .cache_capacity(3)
        .open(dir.path().join("pat.redb"))
        .unwrap();
    let sliding = |u: &str| NewToken::new(u, ExpiryPolicy::sliding(MIN, None));
    let tokens: Vec<_> = (0..10)
        .map(|i| store.create(&sliding(&format!("u{i}")), at(0)).unwrap())
        .collect();
    for (i, t) in tokens.iter().enumerate() {
        store
            .authenticate(t.secret.expose_secret(), at(10 + i as u64))
            .unwrap();
        assert!(store.cached_records() <= 3);
    }
    // Every use is visible before the flush, evicted or not...
    for (i, t) in tokens.iter().enumerate() {
        let info = store.get(t.info.id).unwrap();
        assert_eq!(info.last_used_at, Some(at(10 + i as u64)), "u{i}");
        assert_eq!(info.expiry.expires_at(), at(70 + i as u64), "u{i}");
    }
    // ...and in the file after it.
    assert_eq!(store.flush().unwrap(), 10);
    assert_eq!(store.pending_uses(), 0);
    for (i, t) in tokens.iter().enumerate() {
        assert_eq!(
            stored(&store, t.info.id).last_used_at,
            Some(at(10 + i as u64))
        );
    }
}

#[test]
fn unknown_tokens_never_grow_memory() {
    // Anyone can compute a valid checksum: a flood of unknown well-formed
    // tokens must not be cached or buffered.
    let (_dir, store) = temp_store();
    let real = store.create(&hard("alice", MIN), at(0)).unwrap();
    for _ in 0..2_000 {
        let forged = TokenSecret::generate();
        assert!(store.authenticate(forged.expose_secret(), at(1)).is_err());
    }
    store
        .authenticate(real.secret.expose_secret(), at(1))
        .unwrap();
    assert_eq!(store.cached_records(), 1);
    assert_eq!(store.pending_uses(), 1);
}

#[test]
fn create_many_is_all_or_nothing() {
    let (_dir, store) = temp_store();
    let news: Vec<NewToken> = (0..50).map(|i| hard(&format!("u{i}"), MIN)).collect();
    let created = store.create_many(&news, at(0)).unwrap();
    assert_eq!(created.len(), 50);
    for c in &created {
        assert_eq!(
            store
                .authenticate(c.secret.expose_secret(), at(1))
                .unwrap()
                .token_id(),
            c.info.id
        );
    }
    let mut bad = news.clone();
    bad.push(hard("a:b", MIN));
    assert!(store.create_many(&bad, at(0)).is_err());
    assert_eq!(store.list(None, true, at(0)).unwrap().len(), 50);
}

/// A revoked or never-issued token presented again is refused from memory;
/// the memory of unknown digests is bounded by the cache capacity and off
/// with the cache.
#[test]
fn unknown_tokens_are_read_once_and_remembered_within_a_bound() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder()
        .manual_flush()
        .admin_socket(false)
        .cache_capacity(2)
        .open(dir.path().join("u.redb"))
        .unwrap();
    let revoked = store
        .create(&hard("alice", Duration::from_secs(60)), at(0))
        .unwrap();
    store.revoke(revoked.info.id).unwrap();
    let forged: Vec<TokenSecret> = (0..3).map(|_| TokenSecret::generate()).collect();
    let refused = |t: &TokenSecret| {
        assert!(matches!(
            store.authenticate(t.expose_secret(), at(1)),
            Err(AuthError::Unknown)
        ));
    };
    for t in [&revoked.secret, &forged[0]] {
        refused(t);
        let reads = store.file_reads();
        refused(t);
        assert_eq!(store.file_reads(), reads, "read again");
    }
    assert_eq!(store.cached_unknown(), 2);
    // A third unknown digest: the memory is cleared rather than grown.
    refused(&forged[1]);
    assert!(store.cached_unknown() <= 2);
    let reads = store.file_reads();
    refused(&revoked.secret);
    assert_eq!(store.file_reads(), reads + 1, "forgotten, so read again");
    // A token created later is not hidden by it (its secret is new).
    let created = store
        .create(&hard("alice", Duration::from_secs(60)), at(2))
        .unwrap();
    store
        .authenticate(created.secret.expose_secret(), at(3))
        .unwrap();
    drop(store);

    let off = Store::builder()
        .manual_flush()
        .admin_socket(false)
        .cache(false)
        .open(dir.path().join("u.redb"))
        .unwrap();
    refused_by(&off, &forged[2]);
    refused_by(&off, &forged[2]);
    assert_eq!(off.cached_unknown(), 0);
}

fn refused_by(store: &Store, t: &TokenSecret) {
    assert!(matches!(
        store.authenticate(t.expose_secret(), at(1)),
        Err(AuthError::Unknown)
    ));
}

/// An old secret presented after its rotation is refused like an unknown
/// token, and logged as a possible theft: a warning naming the token, never
/// the secret. Within the grace it is logged as nothing special.
#[test]
fn a_replayed_rotated_secret_is_logged_with_the_token_id() {
    let (_dir, store) = temp_store();
    let created = store
        .create(&hard("alice", Duration::from_secs(3600)), at(0))
        .unwrap();
    let rotated = store
        .rotate(
            created.info.id,
            &crate::Rotation::new().grace(Duration::from_secs(60)),
            at(10),
        )
        .unwrap();
    let old = created.secret.expose_secret();
    let within = crate::test_logs::capture(|| {
        store.authenticate(old, at(20)).unwrap();
    });
    assert!(!within.contains("WARN"), "{within}");
    let after = crate::test_logs::capture(|| {
        assert!(matches!(
            store.authenticate(old, at(70)),
            Err(AuthError::Unknown)
        ));
        // Every replay is logged, not only the first.
        assert!(matches!(
            store.authenticate(old, at(71)),
            Err(AuthError::Unknown)
        ));
    });
    assert_eq!(after.matches("WARN").count(), 2, "{after}");
    assert!(
        after.contains("old secret was presented after it was retired"),
        "{after}"
    );
    assert!(
        after.contains(&format!("token_id={}", created.info.id)),
        "{after}"
    );
    for secret in [old, rotated.secret.expose_secret()] {
        assert!(!after.contains(&secret[4..]), "secret in logs: {after}");
    }
}

/// Uses of quotas are spent by the store's writer thread, never on the
/// caller's: the gate's spend is a future, concurrent spends commit
/// together, each is counted exactly once, and the thread never keeps the
/// file open once the store is dropped.
#[test]
fn spends_are_written_off_the_callers_thread_each_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pat.redb");
    let store = Arc::new(Store::builder().admin_socket(false).open(&path).unwrap());
    let token = store
        .create(&hard("alice", MIN).max_uses(100), at(0))
        .unwrap();
    let digest = TokenDigest::from_token(token.secret.expose_secret()).unwrap();
    let identity = |store: &Store| match store.verify(Lookup::new(digest, None, at(1))) {
        Verification::Ready(Ok(identity)) => identity.presented_as(digest),
        other => panic!("{other:?}"),
    };
    // A future, however fast the disk: the caller's thread never commits.
    let first = store.spend(identity(&store), at(1));
    assert!(matches!(first, Verification::Pending(_)));
    let Verification::Pending(first) = first else {
        unreachable!()
    };
    assert_eq!(
        crate::backend::block_on::block_on(first)
            .unwrap()
            .uses_left(),
        Some(99)
    );
    // 8 threads racing 30 spends each for the 99 uses left: exactly 99.
    let accepted: usize = std::thread::scope(|s| {
        let all: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    (0..30)
                        .filter(|_| {
                            let spent = match store.spend(identity(&store), at(2)) {
                                Verification::Pending(f) => crate::backend::block_on::block_on(f),
                                Verification::Ready(r) => r,
                            };
                            match spent {
                                Ok(_) => true,
                                Err(AuthError::UsedUp) => false,
                                Err(e) => panic!("{e}"),
                            }
                        })
                        .count()
                })
            })
            .collect();
        all.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(accepted, 99);
    assert_eq!(stored(&store, token.info.id).uses, 100);
    // Dropped, the store lets go of its file at once: the writer thread
    // holds it only while it writes.
    drop(store);
    let reopened = Store::builder().admin_socket(false).open(&path).unwrap();
    assert_eq!(reopened.get(token.info.id).unwrap().uses, 100);
}
