use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use super::*;
use crate::{
    Admin, AuthError, ExpiryPolicy, NewToken, OpenError, Store, StoreError, Timestamp, TokenId,
};

const HOUR: Duration = Duration::from_secs(3600);

fn held_store() -> (tempfile::TempDir, Store, AdminClient) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pat.redb");
    let store = Store::builder().manual_flush().open(&db).unwrap();
    let client = AdminClient::connect(admin_socket_path(&db)).unwrap();
    (dir, store, client)
}

fn now() -> Timestamp {
    Timestamp::now()
}

#[test]
fn socket_sits_next_to_the_store_with_mode_0600_and_goes_away_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pat.redb");
    let sock = admin_socket_path(&db);
    assert_eq!(sock, dir.path().join("pat.redb.sock"));
    let store = Store::open(&db).unwrap();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(store);
    assert!(!sock.exists());
    let quiet = Store::builder().admin_socket(false).open(&db).unwrap();
    assert!(!sock.exists());
    drop(quiet);
}

#[test]
fn the_client_does_everything_the_store_does() {
    let (_dir, store, client) = held_store();
    assert_eq!(client.server_pid(), std::process::id());
    let created = client
        .create(
            &NewToken::new("alice", ExpiryPolicy::hard(HOUR)).label("remote"),
            now(),
        )
        .unwrap();
    // Creation is effective before the call returns.
    let id = store
        .authenticate(created.secret.expose_secret(), now())
        .unwrap();
    assert_eq!(id.token_id(), created.info.id);
    let bob = store
        .create(
            &NewToken::new("bob", ExpiryPolicy::sliding(HOUR, None)),
            now(),
        )
        .unwrap();

    assert_eq!(
        client.list(None, false, now()).unwrap(),
        store.list(None, false, now()).unwrap()
    );
    assert_eq!(client.list(Some("bob"), true, now()).unwrap().len(), 1);
    assert_eq!(client.get(bob.info.id).unwrap().label, bob.info.label);
    assert!(
        client.get(created.info.id).unwrap().last_used_at.is_some(),
        "buffered use visible"
    );

    // Revocation is effective before the call returns.
    assert_eq!(client.revoke(created.info.id).unwrap().id, created.info.id);
    assert!(matches!(
        store.authenticate(created.secret.expose_secret(), now()),
        Err(AuthError::Unknown)
    ));
    assert!(
        matches!(client.revoke(created.info.id), Err(StoreError::NotFound(id)) if id == created.info.id)
    );
    assert!(matches!(
        client.get(TokenId::from_u64(1)),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(client.revoke_user("bob").unwrap(), 1);
    store
        .create(
            &NewToken::new("carol", ExpiryPolicy::hard(Duration::from_secs(1))),
            now(),
        )
        .unwrap();
    let later = Timestamp::from_unix_secs(now().as_unix_secs() + 10).unwrap();
    assert_eq!(client.prune(later).unwrap(), 1);
}

#[test]
fn remote_errors_read_like_local_ones() {
    let (_dir, store, client) = held_store();
    let bad = NewToken::new("a:b", ExpiryPolicy::hard(HOUR));
    let local = store.create(&bad, now()).unwrap_err().to_string();
    let remote = client.create(&bad, now()).unwrap_err().to_string();
    assert_eq!(local, remote);
}

/// Sends raw bytes and returns what the server answers before closing.
fn raw(sock: &std::path::Path, bytes: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(bytes).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn garbage_gets_an_error_reply_and_the_service_keeps_serving() {
    let (dir, _store, client) = held_store();
    let sock = admin_socket_path(dir.path().join("pat.redb"));
    let http = raw(&sock, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        String::from_utf8_lossy(&http).contains("exceeds the limit"),
        "{http:?}"
    );
    let mut bad_op = vec![0, 0, 0, 2, protocol::PROTOCOL_VERSION, 99];
    let reply = raw(&sock, &bad_op);
    assert!(String::from_utf8_lossy(&reply).contains("unknown operation 99"));
    bad_op[4] = 200;
    let reply = raw(&sock, &bad_op);
    assert!(String::from_utf8_lossy(&reply).contains("unsupported protocol version 200"));
    // A truncated frame: the server waits, then gives up; others are served.
    let _half = {
        let mut s = UnixStream::connect(&sock).unwrap();
        s.write_all(&[0, 0, 0, 50, 1]).unwrap();
        s
    };
    let oversized = raw(&sock, &(protocol::MAX_REQUEST as u32 + 1).to_be_bytes());
    assert!(String::from_utf8_lossy(&oversized).contains("exceeds the limit"));
    assert!(client.list(None, true, now()).is_ok());
}

#[test]
fn idle_and_trickling_clients_do_not_lock_the_operator_out() {
    // Regression: 16 connections sending one byte every few seconds kept
    // pat-cli out for as long as they liked ("too many admin connections").
    let (dir, _store, client) = held_store();
    let sock = admin_socket_path(dir.path().join("pat.redb"));
    let mut idle: Vec<UnixStream> = (0..20)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    for s in &mut idle {
        let _ = s.write_all(&[0]); // one byte of a length prefix, then nothing
    }
    for _ in 0..5 {
        client
            .list(None, true, now())
            .expect("an operator gets a slot");
    }
}

#[test]
fn a_request_must_arrive_whole_within_the_deadline() {
    // One byte a second would satisfy a per-read timeout forever; the
    // deadline is on the whole frame.
    let (dir, _store, _client) = held_store();
    let sock = admin_socket_path(dir.path().join("pat.redb"));
    let mut slow = UnixStream::connect(&sock).unwrap();
    // A valid length prefix, then the body a byte at a time.
    slow.write_all(&4096u32.to_be_bytes()).unwrap();
    let started = std::time::Instant::now();
    let mut closed = false;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(500));
        if slow.write_all(&[0]).is_err() {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "a trickling client was kept for {:?}",
        started.elapsed()
    );
}

#[test]
fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pat.redb");
    // A socket file nobody listens on, as a crashed process leaves it.
    drop(UnixListener::bind(admin_socket_path(&db)).unwrap());
    assert!(admin_socket_path(&db).exists());
    let _store = Store::open(&db).unwrap();
    assert!(AdminClient::connect(admin_socket_path(&db)).is_ok());
}

#[test]
fn a_live_socket_or_another_file_is_never_stolen() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pat.redb");
    let sock = admin_socket_path(&db);
    let other = UnixListener::bind(&sock).unwrap();
    let err = Store::open(&db).unwrap_err();
    assert!(matches!(err, OpenError::AdminSocket { .. }), "{err:?}");
    assert!(sock.exists());
    drop(other);
    std::fs::remove_file(&sock).unwrap();

    std::fs::write(&sock, b"my notes").unwrap();
    let err = Store::open(&db).unwrap_err();
    assert!(
        matches!(&err, OpenError::Untrusted { path, .. } if *path == sock),
        "{err:?}"
    );
    assert!(err.to_string().contains("it is not a socket"), "{err}");
    assert_eq!(std::fs::read(&sock).unwrap(), b"my notes");
    // The store itself was released: it opens once the path is free.
    std::fs::remove_file(&sock).unwrap();
    assert!(Store::open(&db).is_ok());
}

#[test]
fn connecting_to_nothing_is_a_socket_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = AdminClient::connect(dir.path().join("none.sock")).unwrap_err();
    assert!(matches!(err, StoreError::Socket { .. }), "{err:?}");
}

#[test]
fn a_handle_acting_as_someone_stops_nothing_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pat.redb");
    let store = Store::builder()
        .flush_interval(Duration::from_millis(20))
        .open(&db)
        .unwrap();
    let created = store
        .acting_as("alice-admin")
        .create(
            &NewToken::new("alice", ExpiryPolicy::sliding(HOUR, None)),
            now(),
        )
        .unwrap();
    // The handle `acting_as` made is gone: the store's socket still
    // answers, and its flush thread still writes uses.
    let client = AdminClient::connect(admin_socket_path(&db)).unwrap();
    assert_eq!(
        client.get(created.info.id).unwrap().created_by,
        created.info.created_by
    );
    store
        .authenticate(created.secret.expose_secret(), now())
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.pending_uses() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the flush thread stopped"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // And it was audited as the actor it was made through.
    let entries = client.audit(Timestamp::UNIX_EPOCH, Some("alice")).unwrap();
    assert_eq!(entries[0].actor, "alice-admin");
    drop(store);
    assert!(
        !admin_socket_path(&db).exists(),
        "the store's own handle stops the socket"
    );
}
