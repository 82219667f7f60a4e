//! Use quotas (`--max-uses`, issue 26) on the real reference servers: a
//! one-time token is accepted once under concurrent requests, the use is
//! on disk before the answer (a SIGKILL gives none back), and both servers
//! answer alike. The PostgreSQL fleet's case is in `postgres.rs`.

use pat_integration_tests::{Server, ServerKind, Workdir, basic, client};
use serde_json::Value;

/// The status of `GET /whoami` with `auth`, and its challenge if any.
fn whoami(server: &Server, auth: &str) -> (u16, Option<String>) {
    let r = client()
        .get(server.url("/whoami"))
        .header("authorization", auth)
        .send()
        .expect("the request");
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), challenge)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The statuses of `n` requests sent at once with `auth`, sorted.
fn at_once(server: &Server, auth: &str, n: usize) -> Vec<u16> {
    let barrier = std::sync::Barrier::new(n);
    let mut all: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    whoami(server, auth).0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    all.sort_unstable();
    all
}

fn uses(work: &Workdir, id: &str) -> (Value, Value) {
    let v: Value = serde_json::from_str(&work.cli_ok(&["token", "show", id, "--json"])).unwrap();
    (v["uses"].clone(), v["max_uses"].clone())
}

#[test]
fn a_one_time_token_is_accepted_once_under_concurrent_requests() {
    let mut seen = Vec::new();
    for kind in ServerKind::ALL {
        let work = Workdir::new();
        // Made before the server holds the file, and through its socket.
        let (before, before_id) = work.create(&["-u", "alice", "-e", "1h", "--max-uses", "1"]);
        let server = work.start(kind);
        let (live, live_id) = work.create(&["-u", "alice", "-e", "1h", "--max-uses", "1"]);
        let (three, _) = work.create(&["-u", "bob", "-e", "1h", "--max-uses", "3"]);
        let mut said = Vec::new();
        for (token, id) in [(&before, &before_id), (&live, &live_id)] {
            let statuses = at_once(&server, &bearer(token), 16);
            let mut want = vec![200];
            want.extend([401; 15]);
            assert_eq!(statuses, want, "{kind:?}");
            let (status, challenge) = whoami(&server, &bearer(token));
            let challenge = challenge.expect("a challenge");
            assert_eq!(status, 401, "{kind:?}");
            assert!(
                challenge.contains("error=\"invalid_token\"")
                    && challenge.contains("the token has no uses left"),
                "{kind:?}: {challenge}"
            );
            // Shown through the socket while the server runs.
            assert_eq!(uses(&work, id), (1.into(), 1.into()), "{kind:?}");
            said.push(statuses);
        }
        // Basic counts as Bearer does.
        let statuses = at_once(&server, &basic("bob", &three), 8);
        assert_eq!(
            statuses,
            [200, 200, 200, 401, 401, 401, 401, 401],
            "{kind:?}"
        );
        said.push(statuses);
        // A refusal earlier in the order spends nothing: the wrong user's
        // Basic login is refused before the quota is reached.
        let (spare, spare_id) = work.create(&["-u", "carol", "-e", "1h", "--max-uses", "1"]);
        assert_eq!(whoami(&server, &basic("mallory", &spare)).0, 401);
        assert_eq!(uses(&work, &spare_id).0, 0, "{kind:?}");
        assert_eq!(whoami(&server, &bearer(&spare)).0, 200, "{kind:?}");
        assert_eq!(whoami(&server, &bearer(&spare)).0, 401, "{kind:?}");
        assert!(server.stop());
        seen.push(said);
    }
    assert_eq!(seen[0], seen[1], "the servers answered differently");
}

#[test]
fn a_sigkill_gives_no_use_back() {
    for kind in ServerKind::ALL {
        let work = Workdir::new();
        let (token, id) = work.create(&["-u", "alice", "-e", "1h", "--max-uses", "2"]);
        let server = work.start(kind);
        assert_eq!(whoami(&server, &bearer(&token)).0, 200, "{kind:?}");
        // At once after the answer: no flush interval has passed.
        server.kill();
        assert_eq!(uses(&work, &id), (1.into(), 2.into()), "{kind:?}");
        let server = work.start(kind);
        assert_eq!(whoami(&server, &bearer(&token)).0, 200, "{kind:?}");
        server.kill();
        let server = work.start(kind);
        assert_eq!(
            whoami(&server, &bearer(&token)).0,
            401,
            "{kind:?}: a use came back after a crash"
        );
        assert!(server.stop());
        assert_eq!(uses(&work, &id), (2.into(), 2.into()), "{kind:?}");
    }
}
