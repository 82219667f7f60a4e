//! Local attacks, as issue 8 reproduced them: uid 65534 is the attacker and
//! root is the service and the operator, in a shared directory with mode
//! 1777 like /tmp. Each test is skipped, with a printed reason, unless the
//! tests run as root with `setpriv`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pat_core::{AdminClient, StoreError, Untrusted, admin_socket_path};
use pat_integration_tests::{ATTACKER_UID, Attacker, Server, ServerKind};

fn root_cli(db: &Path, args: &[&str]) -> std::process::Output {
    pat_integration_tests::cli_on(db, args)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_store_the_attacker_created_is_refused_by_the_service_and_the_cli() {
    // Regression: the attacker created the store before the service started,
    // and the service (root) accepted the attacker's token as `admin`.
    let Some(attacker) = Attacker::get() else {
        return;
    };
    let db = attacker.shared().join("pat.redb");
    let planted = attacker.cli_ok(&[
        "--db",
        db.to_str().unwrap(),
        "token",
        "-u",
        "admin",
        "-e",
        "3650d",
        "-q",
    ]);
    assert!(planted.starts_with("pat_"));
    for kind in ServerKind::ALL {
        let (code, err) = Server::start_failing(kind, &db);
        assert_eq!(
            code,
            Some(1),
            "{kind:?} started on the attacker's store: {err}"
        );
        assert!(err.contains("refusing"), "{err}");
        assert!(
            err.contains(&format!("belongs to uid {ATTACKER_UID}")),
            "{err}"
        );
        assert!(err.contains("remove it"), "{err}");
    }
    let out = root_cli(&db, &["token", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("belongs to uid {ATTACKER_UID}")));
}

#[test]
fn a_link_at_the_store_path_is_refused_and_its_target_untouched() {
    // Regression: root created and overwrote files through a symlink.
    let Some(attacker) = Attacker::get() else {
        return;
    };
    let private = tempfile::tempdir().unwrap();
    let precious = private.path().join("precious");
    std::fs::write(&precious, b"root's data").unwrap();
    let missing = private.path().join("created-through-the-link");
    for (name, target) in [("a.redb", &precious), ("b.redb", &missing)] {
        let db = attacker.shared().join(name);
        let out = attacker
            .command("ln")
            .arg("-s")
            .arg(target)
            .arg(&db)
            .output()
            .unwrap();
        assert!(out.status.success());
        let (code, err) = Server::start_failing(ServerKind::Axum, &db);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("symbolic link"), "{err}");
        let out = root_cli(&db, &["token", "-u", "alice", "-e", "1h"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("symbolic link"));
    }
    assert_eq!(std::fs::read(&precious).unwrap(), b"root's data");
    assert!(!missing.exists());
}

#[test]
fn the_cli_never_obeys_the_attackers_socket() {
    // Regression: an attacker holding the store path served a fake socket,
    // and root's `pat-cli token revoke -u alice` printed "revoked 42 tokens".
    let Some(attacker) = Attacker::get() else {
        return;
    };
    let db = attacker.shared().join("pat.redb");
    attacker.cli_ok(&[
        "--db",
        db.to_str().unwrap(),
        "token",
        "-u",
        "alice",
        "-e",
        "1h",
    ]);
    // The attacker's own server holds the file and serves `pat.redb.sock`.
    let mut server = attacker
        .command(attacker.bin("axum_server"))
        .arg("--db")
        .arg(&db)
        .args(["--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    let out = root_cli(&db, &["token", "revoke", "--user", "alice"]);
    let _ = server.kill();
    let _ = server.wait();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("revoked"));
    assert!(
        err.contains(&format!("belongs to uid {ATTACKER_UID}")),
        "{err}"
    );
}

/// A socket served by the attacker, recording what it receives in `log`:
/// a copy of this test binary, run as the attacker, in the role of
/// [`fake_admin_socket`]. Returns the process once the socket exists.
fn fake_socket(attacker: &Attacker, path: &Path, log: &Path) -> FakeSocket {
    let mut child = attacker
        .helper("fake_admin_socket")
        .env("PAT_FAKE_SOCKET", path)
        .env("PAT_FAKE_LOG", log)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the fake socket");
    let stdout = child.stdout.take().unwrap();
    let fake = FakeSocket(child);
    // libtest may print "test NAME ... " on the same line first.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ready = BufReader::new(stdout)
            .lines()
            .any(|l| l.is_ok_and(|l| l.contains("FAKE-SOCKET-READY")));
        let _ = tx.send(ready);
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(60)),
        Ok(true),
        "the fake socket never started"
    );
    fake
}

/// The fake socket's process, stopped when dropped.
struct FakeSocket(std::process::Child);

impl Drop for FakeSocket {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Not a test: the attacker's fake admin socket, run by [`fake_socket`].
#[test]
#[ignore = "a helper process for the other tests"]
fn fake_admin_socket() {
    let (Ok(path), Ok(log)) = (
        std::env::var("PAT_FAKE_SOCKET"),
        std::env::var("PAT_FAKE_LOG"),
    ) else {
        return;
    };
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    println!("FAKE-SOCKET-READY");
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut got = Vec::new();
        let _ = conn.read_to_end(&mut got);
        let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        file.write_all(&got).unwrap();
        // "revoked 42 tokens", as the service would say it.
        let _ = conn.write_all(&[0, 0, 0, 10, 1, 0, 4, 42, 0, 0, 0, 0, 0, 0]);
    }
}

#[test]
fn the_admin_client_sends_nothing_to_another_users_socket() {
    let Some(attacker) = Attacker::get() else {
        return;
    };
    let log = attacker.shared().join("received");
    std::fs::write(&log, b"").unwrap();
    std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    // A socket file of the attacker's.
    let sock = attacker.shared().join("owned.sock");
    let fake = fake_socket(&attacker, &sock, &log);
    let err = AdminClient::connect(&sock).unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Untrusted {
                reason: Untrusted::Owner {
                    owner: ATTACKER_UID,
                    ..
                },
                ..
            }
        ),
        "{err:?}"
    );
    drop(fake);
    // A socket file that looks like root's, served by the attacker: the
    // peer's credentials give it away.
    let sock = attacker.shared().join("disguised.sock");
    let fake = fake_socket(&attacker, &sock, &log);
    std::os::unix::fs::lchown(&sock, Some(0), Some(0)).unwrap();
    let err = AdminClient::connect(&sock).unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Untrusted {
                reason: Untrusted::Peer {
                    peer: ATTACKER_UID,
                    ..
                },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("nothing was sent"), "{err}");
    drop(fake);
    assert_eq!(std::fs::read(&log).unwrap(), b"", "the client sent bytes");
}

#[test]
fn a_planted_file_at_the_socket_path_is_an_actionable_error() {
    // Regression: "cannot serve the admin socket", and nothing more.
    let Some(attacker) = Attacker::get() else {
        return;
    };
    let db = attacker.shared().join("service.redb");
    let sock = admin_socket_path(&db);
    let out = attacker.command("touch").arg(&sock).output().unwrap();
    assert!(out.status.success());
    for kind in ServerKind::ALL {
        let (code, err) = Server::start_failing(kind, &db);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("service.redb.sock"), "{err}");
        assert!(err.contains("is not a socket"), "{err}");
    }
    std::fs::remove_file(&sock).unwrap();
    // A socket of the attacker's is not replaced either.
    let log = attacker.shared().join("received");
    let fake = fake_socket(&attacker, &sock, &log);
    let (code, err) = Server::start_failing(ServerKind::Actix, &db);
    drop(fake);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("belongs to uid {ATTACKER_UID}")),
        "{err}"
    );
    assert!(err.contains("remove it"), "{err}");
    // A path too long for a socket says so, and what to do.
    let deep = attacker.shared().join("d".repeat(100));
    std::fs::create_dir(&deep).unwrap();
    let (code, err) = Server::start_failing(ServerKind::Axum, &deep.join("pat.redb"));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("bytes long") && err.contains("shorter path"),
        "{err}"
    );
}

#[test]
fn trickling_clients_do_not_lock_the_operator_out() {
    // Regression: 16 connections sending one byte every 4 s kept pat-cli out
    // for as long as they liked.
    let Some(attacker) = Attacker::get() else {
        return;
    };
    let db = attacker.shared().join("busy.redb");
    let out = root_cli(&db, &["token", "-u", "alice", "-e", "1h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let server = Server::start(ServerKind::Axum, &db, &[]);
    let sock = admin_socket_path(&db);
    // Each announces a 4 KiB request, then sends it a byte at a time.
    let mut drips: Vec<UnixStream> = (0..24)
        .map(|_| {
            let mut s = UnixStream::connect(&sock).unwrap();
            s.write_all(&4096u32.to_be_bytes()).unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    let mut listed = 0;
    while started.elapsed() < Duration::from_secs(8) {
        for d in &mut drips {
            let _ = d.write_all(&[0]);
        }
        let out = root_cli(&db, &["token", "list"]);
        assert!(out.status.success(), "locked out: {}", stderr(&out));
        listed += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(listed > 3);
    // Every drip was cut off (evicted, or past the 5 s deadline on a whole
    // request), although each kept sending: the server closed them.
    let mut buf = [0u8; 64];
    for d in &mut drips {
        d.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert!(d.read(&mut buf).is_ok(), "a drip is still being served");
    }
    assert!(server.stop());
}
