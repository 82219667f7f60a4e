//! Live administration: the real `pat-cli` manages the store while a real
//! server holds it, under load, across crashes, and against intruders.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use pat_integration_tests::{Server, ServerKind, Workdir, client};
use serde_json::Value;

fn status(server: &Server, token: &str) -> u16 {
    client()
        .get(server.url("/hello"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// Requests `/hello` with `token` until stopped (at most two minutes or
/// 20 000 requests), counting answers that are not 200.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    thread: thread::JoinHandle<Vec<String>>,
}

impl Load {
    fn start(url: String, tokens: Vec<String>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, sent) = (stop.clone(), sent.clone());
            thread::spawn(move || {
                let http = client();
                let started = Instant::now();
                let mut errors = Vec::new();
                let mut i = 0usize;
                while !stop.load(Ordering::SeqCst)
                    && i < 20_000
                    && started.elapsed() < Duration::from_secs(120)
                {
                    let token = &tokens[i % tokens.len()];
                    match http
                        .get(&url)
                        .header("authorization", format!("Bearer {token}"))
                        .send()
                    {
                        Ok(r) if r.status() == 200 => {}
                        Ok(r) => errors.push(format!("status {}", r.status())),
                        Err(e) => errors.push(e.to_string()),
                    }
                    i += 1;
                    sent.store(i, Ordering::SeqCst);
                }
                errors
            })
        };
        Load { stop, sent, thread }
    }

    /// Waits until at least `n` more requests went out.
    fn wait_for(&self, n: usize) {
        let target = self.sent.load(Ordering::SeqCst) + n;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.sent.load(Ordering::SeqCst) < target {
            assert!(Instant::now() < deadline, "load stalled");
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

#[test]
fn the_cli_manages_a_running_server_and_changes_apply_at_once() {
    for kind in ServerKind::ALL {
        let work = Workdir::new();
        let (steady, _) = work.create(&["-u", "alice", "-e", "1h"]);
        let (sliding, _) = work.create(&["-u", "alice", "-a", "1h"]);
        let server = work.start(kind);
        let load = Load::start(server.url("/hello"), vec![steady.clone(), sliding.clone()]);
        load.wait_for(20);

        // Create: works on the very next request.
        let (fresh, fresh_id) = work.create(&["-u", "bob", "-e", "1h"]);
        assert_eq!(status(&server, &fresh), 200, "{kind:?} new token");
        // List: shows it, with the uses the server has buffered.
        let listed: Value =
            serde_json::from_str(&work.cli_ok(&["token", "list", "--json"])).unwrap();
        let ids: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap())
            .collect();
        assert!(ids.contains(&fresh_id.as_str()), "{kind:?}");
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["last_used_at"].is_string())
        );
        // Revoke: refused on the very next request.
        work.cli_ok(&["token", "revoke", &fresh_id]);
        assert_eq!(status(&server, &fresh), 401, "{kind:?} revoked token");
        // Revoke a whole user.
        let (b1, _) = work.create(&["-u", "carol", "-e", "1h"]);
        let (b2, _) = work.create(&["-u", "carol", "-a", "5m"]);
        assert_eq!(
            work.cli_ok(&["token", "revoke", "--user", "carol"]),
            "revoked 2 tokens of carol\n"
        );
        assert_eq!((status(&server, &b1), status(&server, &b2)), (401, 401));
        // Prune: an expired token goes, live ones stay.
        work.create(&["-u", "dave", "-e", "1s"]);
        thread::sleep(Duration::from_millis(2100));
        assert_eq!(
            work.cli_ok(&["token", "prune"]),
            "removed 1 expired token\n"
        );

        load.wait_for(20);
        let errors = load.finish();
        assert!(errors.is_empty(), "{kind:?}: the load saw {errors:?}");
        assert!(server.stop());
        // What the CLI did through the socket is in the file.
        let after: Value =
            serde_json::from_str(&work.cli_ok(&["token", "list", "--all", "--json"])).unwrap();
        let users: Vec<&str> = after
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["user"].as_str().unwrap())
            .collect();
        assert_eq!(users, ["alice", "alice"], "{kind:?}");
    }
}

#[test]
fn a_crash_loses_no_token_and_resurrects_none() {
    for kind in ServerKind::ALL {
        let work = Workdir::new();
        let (hard, _) = work.create(&["-u", "alice", "-e", "1h"]);
        let server = work.start(kind);
        let (sliding, sliding_id) = work.create(&["-u", "alice", "-a", "1h"]);
        let (doomed, doomed_id) = work.create(&["-u", "bob", "-e", "1h"]);
        let load = Load::start(server.url("/hello"), vec![hard.clone(), sliding.clone()]);
        load.wait_for(50);
        work.cli_ok(&["token", "revoke", &doomed_id]);
        let (last, _) = work.create(&["-u", "carol", "-a", "10m"]);
        // Longer than the 1 s flush interval: some refreshes must reach the file.
        thread::sleep(Duration::from_millis(1500));
        load.wait_for(50);
        server.kill(); // SIGKILL, mid-load, with refreshes buffered
        let errors = load.finish();
        // Only transport errors once the server is gone, never a 401.
        assert!(
            !errors.iter().any(|e| e.starts_with("status")),
            "{kind:?}: {errors:?}"
        );
        // The file, as the crash left it: at most one flush interval of
        // refresh was lost, not all of it.
        let shown: Value =
            serde_json::from_str(&work.cli_ok(&["token", "show", &sliding_id, "--json"])).unwrap();
        assert!(shown["last_used_at"].is_string(), "{kind:?}: {shown}");

        let server = work.start(kind); // replaces the stale socket
        for token in [&hard, &sliding, &last] {
            assert_eq!(
                status(&server, token),
                200,
                "{kind:?}: a created token was lost"
            );
        }
        assert_eq!(
            status(&server, &doomed),
            401,
            "{kind:?}: a revoked token came back"
        );
        let listed: Value =
            serde_json::from_str(&work.cli_ok(&["token", "list", "--json"])).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 3, "{kind:?}");
        assert!(server.stop());
    }
}

#[test]
fn a_second_server_on_the_same_store_fails_clearly_and_harms_nothing() {
    for kind in ServerKind::ALL {
        let work = Workdir::new();
        let (token, _) = work.create(&["-u", "alice", "-e", "1h"]);
        let first = work.start(kind);
        for second in ServerKind::ALL {
            let (code, stderr) = Server::start_failing(second, &work.db());
            assert_ne!(code, Some(0), "{kind:?}/{second:?}");
            assert!(stderr.contains("in use by another process"), "{stderr}");
            assert!(stderr.contains(&format!("pid {}", first.pid())), "{stderr}");
        }
        assert_eq!(status(&first, &token), 200);
        let (new, _) = work.create(&["-u", "bob", "-e", "1h"]);
        assert_eq!(
            status(&first, &new),
            200,
            "{kind:?}: the socket still serves"
        );
        assert!(first.stop());
    }
}

#[test]
fn another_user_is_refused_by_the_socket() {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(attacker) = pat_integration_tests::Attacker::get() else {
        return;
    };
    let db = attacker.shared().join("pat.redb");
    let created = std::process::Command::new(pat_integration_tests::pat_cli())
        .arg("--db")
        .arg(&db)
        .args(["token", "-u", "alice", "-e", "1h"])
        .output()
        .unwrap();
    assert!(created.status.success());
    let server = Server::start(ServerKind::Axum, &db, &[]);
    let socket = pat_core::admin_socket_path(&db);
    // Open the way to the socket, so that only the peer checks stand.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    // The service refuses the other user's connection...
    let out = attacker
        .helper("say_hello_to_the_admin_socket")
        .env("PAT_SOCKET", &socket)
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        answer.contains("permission denied: this admin socket serves uid 0 and root"),
        "{answer}"
    );
    // ...and that user's pat-cli refuses a socket open to everyone before
    // it sends anything (issue 8).
    let out = attacker
        .command(attacker.bin("pat-cli"))
        .arg("--db")
        .arg(&db)
        .args(["token", "list"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing admin socket") && stderr.contains("0666"),
        "{stderr}"
    );
    // The service is unharmed (once its socket is private again, root's
    // pat-cli trusts it too).
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).unwrap();
    let listed = std::process::Command::new(pat_integration_tests::pat_cli())
        .arg("--db")
        .arg(&db)
        .args(["token", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("alice"));
    assert!(server.stop());
}

/// Not a test: sends a protocol Hello to `$PAT_SOCKET` and prints the raw
/// answer, for [`another_user_is_refused_by_the_socket`] to run as another
/// user.
#[test]
#[ignore = "a helper process for another test"]
fn say_hello_to_the_admin_socket() {
    use std::io::{Read as _, Write as _};
    let Ok(path) = std::env::var("PAT_SOCKET") else {
        return;
    };
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(&[0, 0, 0, 2, 1, 0]);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    println!("{}", String::from_utf8_lossy(&answer));
}

#[test]
fn disabling_through_the_socket_refuses_at_once_and_enabling_gives_it_back() {
    for kind in ServerKind::ALL {
        let work = Workdir::new();
        let (token, id) = work.create(&["-u", "alice", "-e", "1h"]);
        let (other, _) = work.create(&["-u", "alice", "-e", "1h"]);
        let server = work.start(kind);
        assert_eq!(status(&server, &token), 200, "{kind:?}");
        assert_eq!(
            work.cli_ok(&["token", "disable", &id]),
            format!("disabled {id}\n")
        );
        // Refused on the very next request, with its own description.
        let refused = client()
            .get(server.url("/hello"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .unwrap();
        assert_eq!(refused.status(), 401, "{kind:?}");
        let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains(r#"error="invalid_token""#)
                && challenge.contains(r#"error_description="the token is disabled""#),
            "{kind:?}: {challenge}"
        );
        assert_eq!(status(&server, &other), 200, "{kind:?}: only that token");
        // Shown as it is, through the socket.
        let shown = work.cli_ok(&["token", "show", &id]);
        assert!(shown.contains("status:     disabled\n"), "{shown}");
        let listed: Value =
            serde_json::from_str(&work.cli_ok(&["token", "list", "--json"])).unwrap();
        let row = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id.as_str())
            .unwrap();
        assert_eq!(
            (&row["disabled"], &row["disabled_by"]),
            (&Value::Bool(true), &Value::String(id.clone()))
        );
        assert_eq!(
            work.cli_ok(&["token", "disable", &id]),
            format!("{id} was disabled already\n")
        );
        // Back on the very next request.
        assert_eq!(
            work.cli_ok(&["token", "enable", &id]),
            format!("enabled {id}\n")
        );
        assert_eq!(status(&server, &token), 200, "{kind:?} enabled again");
        // Unknown ids are named; the exit code says it failed.
        let out = work.cli(&["token", "disable", "00000000000000ff"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("00000000000000ff"));
        // Audited, as done by the CLI's user.
        let audit = work.cli_ok(&["audit", "--json"]);
        assert!(
            audit.contains(r#""action":"disable""#) && audit.contains(r#""action":"enable""#),
            "{audit}"
        );
        assert!(server.stop());
    }
}
