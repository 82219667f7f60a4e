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

fn create(work: &Workdir, args: &[&str]) -> (String, String) {
    let mut all = vec!["token", "--json"];
    all.extend_from_slice(args);
    let v: Value = serde_json::from_str(&work.cli_ok(&all)).unwrap();
    (
        v["token"].as_str().unwrap().to_owned(),
        v["id"].as_str().unwrap().to_owned(),
    )
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
        let (steady, _) = create(&work, &["-u", "alice", "-e", "1h"]);
        let (sliding, _) = create(&work, &["-u", "alice", "-a", "1h"]);
        let server = work.start(kind);
        let load = Load::start(server.url("/hello"), vec![steady.clone(), sliding.clone()]);
        load.wait_for(20);

        // Create: works on the very next request.
        let (fresh, fresh_id) = create(&work, &["-u", "bob", "-e", "1h"]);
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
        let (b1, _) = create(&work, &["-u", "carol", "-e", "1h"]);
        let (b2, _) = create(&work, &["-u", "carol", "-a", "5m"]);
        assert_eq!(
            work.cli_ok(&["token", "revoke", "--user", "carol"]),
            "revoked 2 tokens of carol\n"
        );
        assert_eq!((status(&server, &b1), status(&server, &b2)), (401, 401));
        // Prune: an expired token goes, live ones stay.
        create(&work, &["-u", "dave", "-e", "1s"]);
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
        let (hard, _) = create(&work, &["-u", "alice", "-e", "1h"]);
        let server = work.start(kind);
        let (sliding, sliding_id) = create(&work, &["-u", "alice", "-a", "1h"]);
        let (doomed, doomed_id) = create(&work, &["-u", "bob", "-e", "1h"]);
        let load = Load::start(server.url("/hello"), vec![hard.clone(), sliding.clone()]);
        load.wait_for(50);
        work.cli_ok(&["token", "revoke", &doomed_id]);
        let (last, _) = create(&work, &["-u", "carol", "-a", "10m"]);
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
        let (token, _) = create(&work, &["-u", "alice", "-e", "1h"]);
        let first = work.start(kind);
        for second in ServerKind::ALL {
            let (code, stderr) = Server::start_failing(second, &work.db());
            assert_ne!(code, Some(0), "{kind:?}/{second:?}");
            assert!(stderr.contains("in use by another process"), "{stderr}");
            assert!(stderr.contains(&format!("pid {}", first.pid())), "{stderr}");
        }
        assert_eq!(status(&first, &token), 200);
        let (new, _) = create(&work, &["-u", "bob", "-e", "1h"]);
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
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    let has_setpriv = std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok();
    if !is_root || !has_setpriv {
        eprintln!("skipped: needs root and setpriv to act as another user");
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;
    let work = Workdir::new();
    work.token(&["-u", "alice", "-e", "1h"]);
    let server = work.start(ServerKind::Axum);
    // Open the way to the socket, so that only the peer check stands.
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = pat_core::admin_socket_path(work.db());
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    // A copy of the CLI the other user can reach, wherever the build lives.
    let cli = work.path().join("pat-cli");
    std::fs::copy(pat_integration_tests::pat_cli(), &cli).unwrap();
    std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&cli)
        .arg("--db")
        .arg(work.db())
        .args(["token", "list"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused: permission denied"), "{stderr}");
    // The service is unharmed.
    assert!(work.cli_ok(&["token", "list"]).contains("alice"));
    assert!(server.stop());
}
