//! The SFTP server's bounds (issue 23's attack review), driven by russh's
//! own client where OpenSSH's `sftp` cannot go: many sessions on one
//! connection, many open files, connections that never log in. Each bound
//! keeps one client from taking the process's file descriptors, which its
//! HTTP side needs too. (A module of the `sftp` test binary, so that its
//! 30-second wait runs beside the other SFTP tests.)

use std::io::Read as _;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pat_integration_tests::{Server, ServerKind, Workdir};
use russh::client::Handle;
use russh_sftp::client::SftpSession;

/// A client that trusts any host key (a fresh one per test server).
struct AnyHost;

impl russh::client::Handler for AnyHost {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A server with a one-file share and SFTP, and an unscoped token.
fn start(work: &Workdir, kind: ServerKind) -> (Server, String) {
    let share = work.path().join(format!("share-{kind:?}"));
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("f.txt"), "f").unwrap();
    let token = work.token(&["-u", "alice", "-e", "1h"]);
    let server = Server::start(
        kind,
        &work.db(),
        &[
            "--dav-root",
            share.to_str().unwrap(),
            "--sftp-addr",
            "127.0.0.1:0",
        ],
    );
    (server, token)
}

async fn login(addr: &str, token: &str) -> Result<Handle<AnyHost>, String> {
    let config = Arc::new(russh::client::Config::default());
    let mut handle = russh::client::connect(config, addr, AnyHost)
        .await
        .map_err(|e| e.to_string())?;
    let auth = handle
        .authenticate_password("alice", token)
        .await
        .map_err(|e| e.to_string())?;
    if auth.success() {
        Ok(handle)
    } else {
        Err("refused".into())
    }
}

async fn sftp(handle: &Handle<AnyHost>) -> Result<SftpSession, String> {
    let channel = handle
        .channel_open_session()
        .await
        .map_err(|e| e.to_string())?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| e.to_string())?;
    SftpSession::new(channel.into_stream())
        .await
        .map_err(|e| e.to_string())
}

#[test]
fn a_connection_has_at_most_four_sessions_of_at_most_64_open_files() {
    let work = Workdir::new();
    for kind in ServerKind::ALL {
        let (server, token) = start(&work, kind);
        runtime().block_on(async {
            let handle = login(server.sftp_addr(), &token).await.unwrap();
            let mut sessions = Vec::new();
            for _ in 0..4 {
                sessions.push(sftp(&handle).await.unwrap());
            }
            // Counted while running, not only while starting (the attack
            // review opened 330 on one connection).
            assert!(
                handle.channel_open_session().await.is_err(),
                "{kind:?}: a fifth session"
            );
            let session = &sessions[0];
            let mut files = Vec::new();
            for _ in 0..64 {
                files.push(session.open("/f.txt").await.unwrap());
            }
            assert!(
                session.open("/f.txt").await.is_err(),
                "{kind:?}: a 65th open file"
            );
            // Another session has its own 64.
            assert!(sessions[1].open("/f.txt").await.is_ok());
        });
        assert!(server.stop());
    }
}

#[test]
fn connections_that_do_not_log_in_are_bounded_and_closed() {
    let work = Workdir::new();
    for kind in ServerKind::ALL {
        let (server, token) = start(&work, kind);
        let addr = server.sftp_addr().to_owned();
        // 32 connections that never log in are held (each gets the
        // server's banner); the 33rd is closed at once.
        let idle: Vec<TcpStream> = (0..32)
            .map(|_| {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut banner = [0u8; 4];
                s.read_exact(&mut banner).unwrap();
                assert_eq!(&banner, b"SSH-");
                s
            })
            .collect();
        let mut extra = TcpStream::connect(&addr).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(
            extra.read(&mut buf).unwrap_or(0),
            0,
            "{kind:?}: a 33rd held"
        );
        assert!(runtime().block_on(login(&addr, &token)).is_err());
        // Once they go, logins work again.
        drop(idle);
        let again = Instant::now();
        while runtime().block_on(login(&addr, &token)).is_err() {
            assert!(again.elapsed() < Duration::from_secs(10), "{kind:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(server.stop());
    }
}

#[test]
fn a_connection_that_does_not_log_in_is_closed_after_the_grace_time() {
    let work = Workdir::new();
    let (server, _) = start(&work, ServerKind::Axum);
    let mut idle = TcpStream::connect(server.sftp_addr()).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let opened = Instant::now();
    let mut all = Vec::new();
    // The banner, then nothing until the server closes (30 s).
    let _ = idle.read_to_end(&mut all);
    assert!(all.starts_with(b"SSH-"));
    let held = opened.elapsed();
    assert!(held < Duration::from_secs(45), "held {held:?}");
    assert!(server.stop());
}

/// A token of alice's scoped `perm` to the share's `path`.
fn scoped(work: &Workdir, server: &Server, admin: &str, path: &str, perm: &str) -> String {
    let res = pat_integration_tests::client()
        .get(server.url(&format!("/nodes/by-path?path={path}")))
        .header("authorization", format!("Bearer {admin}"))
        .send()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&res.text().unwrap()).unwrap();
    let node = v["node"].as_str().unwrap().to_owned();
    work.token(&[
        "-u",
        "alice",
        "-e",
        "1h",
        "-s",
        &format!("node:{node}:{perm}"),
    ])
}

// The attack review's F6: FSTAT on a handle opened for writing told a
// write-only token the size and times that STAT refuses it.
#[test]
fn a_write_only_token_learns_nothing_from_the_handle_it_writes_with() {
    use russh_sftp::protocol::OpenFlags;
    let work = Workdir::new();
    for kind in ServerKind::ALL {
        let (server, admin) = start(&work, kind);
        let w = scoped(&work, &server, &admin, "/", "w");
        runtime().block_on(async {
            let handle = login(server.sftp_addr(), &w).await.unwrap();
            let session = sftp(&handle).await.unwrap();
            assert!(session.metadata("/f.txt").await.is_err(), "{kind:?}: stat");
            let file = session
                .open_with_flags("/new.txt", OpenFlags::WRITE | OpenFlags::CREATE)
                .await
                .unwrap();
            assert!(file.metadata().await.is_err(), "{kind:?}: fstat");
        });
        assert!(server.stop());
    }
}

// The attack review's F5: outside its scope, a token told a link (refused
// as a link) from nothing (refused by the scopes), so it learned the
// names of links it may not see. (OpenSSH's client prints only the status
// code, so this one asks with russh's, which shows the server's message.)
#[test]
fn outside_its_scope_a_token_cannot_tell_a_link_from_nothing() {
    let work = Workdir::new();
    for kind in ServerKind::ALL {
        let (server, admin) = start(&work, kind);
        let share = work.path().join(format!("share-{kind:?}"));
        std::fs::create_dir_all(share.join("a")).unwrap();
        std::fs::create_dir_all(share.join("b")).unwrap();
        std::os::unix::fs::symlink("../f.txt", share.join("b/link")).unwrap();
        let r = scoped(&work, &server, &admin, "/a", "r");
        runtime().block_on(async {
            let handle = login(server.sftp_addr(), &r).await.unwrap();
            let session = sftp(&handle).await.unwrap();
            let link = session.metadata("/b/link").await.unwrap_err().to_string();
            let nothing = session.metadata("/b/none").await.unwrap_err().to_string();
            assert_eq!(link, nothing, "{kind:?}");
            // The unscoped token is told it is a link.
            let handle = login(server.sftp_addr(), &admin).await.unwrap();
            let session = sftp(&handle).await.unwrap();
            let err = session.metadata("/b/link").await.unwrap_err().to_string();
            assert!(err.contains("symbolic links"), "{kind:?}: {err}");
        });
        assert!(server.stop());
    }
}
