//! `GET /metrics` on both reference servers (issue 27): after known traffic
//! the counts are exact, only `--metrics-reader` users may read them, no
//! label carries a token id or a user name, and `promtool check metrics`
//! finds nothing wrong.

use std::io::Write as _;
use std::process::{Command, Stdio};

use pat_integration_tests::{Server, ServerKind, Workdir, basic, client, required};

fn get(server: &Server, path: &str, authorization: Option<&str>) -> (u16, String, String) {
    let mut req = client().get(server.url(path));
    if let Some(authorization) = authorization {
        req = req.header("authorization", authorization);
    }
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, resp.text().expect("body"))
}

/// The value of the sample `series` (name and labels as the exporter
/// writes them) in `text`; 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn authentications(text: &str, result: &str, scheme: &str) -> f64 {
    // The exporter writes labels in the order they were given.
    sample(
        text,
        &format!("pat_authentications_total{{result=\"{result}\",scheme=\"{scheme}\"}}"),
    )
}

#[test]
fn both_servers_count_what_they_decided() {
    for kind in ServerKind::ALL {
        counts(kind);
    }
}

fn counts(kind: ServerKind) {
    let work = Workdir::new();
    let server = Server::start(kind, &work.db(), &["--metrics-reader", "ops"]);
    let ops = format!("Bearer {}", work.token(&["-u", "ops", "-e", "1h"]));
    let (alice, alice_id) = work.create(&["-u", "alice", "-e", "1h"]);
    let limited = work.token(&["-u", "carol", "-e", "1h", "--rate", "1/h"]);
    let unknown = pat_core::TokenSecret::generate();

    // Known traffic: 3 Bearer and 1 Basic uses of alice's token, 2
    // unknown tokens, 1 malformed, 1 request without credentials, one use
    // of carol's 1/h token and one over its rate.
    for _ in 0..3 {
        assert_eq!(
            get(&server, "/hello", Some(&format!("Bearer {alice}"))).0,
            200
        );
    }
    assert_eq!(get(&server, "/hello", Some(&basic("alice", &alice))).0, 200);
    for _ in 0..2 {
        let bearer = format!("Bearer {}", unknown.expose_secret());
        assert_eq!(get(&server, "/hello", Some(&bearer)).0, 401);
    }
    assert_eq!(get(&server, "/hello", Some("Bearer pat_short")).0, 401);
    assert_eq!(get(&server, "/hello", None).0, 401);
    assert_eq!(
        get(&server, "/hello", Some(&format!("Bearer {limited}"))).0,
        200
    );
    assert_eq!(
        get(&server, "/hello", Some(&format!("Bearer {limited}"))).0,
        429
    );

    // The scrape is itself a request the layer counts (before it renders).
    let (status, content_type, text) = get(&server, "/metrics", Some(&ops));
    assert_eq!(status, 200, "{text}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let counted = |result, scheme| authentications(&text, result, scheme);
    assert_eq!(
        counted("authenticated", "bearer"),
        3.0 + 1.0 + 1.0,
        "{text}"
    );
    assert_eq!(counted("authenticated", "basic"), 1.0, "{text}");
    assert_eq!(counted("unknown", "bearer"), 2.0, "{text}");
    assert_eq!(counted("malformed", "bearer"), 1.0, "{text}");
    assert_eq!(counted("missing_credentials", "none"), 1.0, "{text}");
    assert_eq!(counted("rate_limited", "bearer"), 1.0, "{text}");
    assert_eq!(counted("authenticated", "password"), 0.0, "{text}");
    // Each check of a well-formed token asked the backend's memory first:
    // hits and misses add up to them (the malformed one never got there).
    let lookups = sample(&text, "pat_cache_lookups_total{result=\"hit\"}")
        + sample(&text, "pat_cache_lookups_total{result=\"miss\"}");
    assert_eq!(lookups, 4.0 + 2.0 + 2.0 + 1.0, "{text}");
    // The second unknown token was answered from memory, unread.
    assert_eq!(sample(&text, "pat_unknown_cache_hits_total"), 1.0, "{text}");
    assert!(text.contains("# HELP pat_authentications_total"), "{text}");
    assert!(
        text.contains("# TYPE pat_authentication_duration_seconds histogram"),
        "{text}"
    );
    // No label a client chose: no user name, no token id, no secret.
    for chosen in ["alice", "carol", "ops", &alice_id, &alice[4..]] {
        assert!(!text.contains(chosen), "{chosen} in the metrics");
    }

    // Only the readers: alice's token is refused, and nobody without one.
    let (status, _, body) = get(&server, "/metrics", Some(&format!("Bearer {alice}")));
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("pat_"), "{body}");
    assert_eq!(get(&server, "/metrics", None).0, 401);

    // A leak report: alice's token revoked, the made-up one unknown.
    let report = client()
        .post(server.url("/tokens/report-leak"))
        .header("content-type", "application/json")
        .body(serde_json::json!([alice, unknown.expose_secret()]).to_string())
        .send()
        .unwrap();
    assert_eq!(report.status().as_u16(), 202);
    let (_, _, text) = get(&server, "/metrics", Some(&ops));
    assert_eq!(
        sample(&text, "pat_leak_reports_total{result=\"revoked\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "pat_leak_reports_total{result=\"unknown\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        authentications(&text, "authenticated", "bearer"),
        5.0 + 1.0 + 1.0
    );

    // What Prometheus' own linter says of the text.
    let found = Command::new("promtool").arg("--version").output().is_ok();
    if required("promtool", found) {
        let mut lint = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        lint.stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = lint.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(server.stop());
}

/// On PostgreSQL: each replica counts its own pool waits and flushes.
#[test]
fn a_postgres_replica_counts_its_pool_and_its_flushes() {
    let Some(pg) = pat_integration_tests::postgres::postgres() else {
        return;
    };
    let db = pg.database();
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| pat_integration_tests::cli_ok_on(&db, args);
    let token = |user: &str| {
        let out = cli(&["token", "-u", user, "-e", "1h", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["token"].as_str().unwrap().to_owned()
    };
    let ops = format!("Bearer {}", token("ops"));
    let alice = format!("Bearer {}", token("alice"));
    let servers = pat_integration_tests::replicas(&db, dir.path(), &["--metrics-reader", "ops"]);
    for server in &servers {
        assert_eq!(get(server, "/hello", Some(&alice)).0, 200);
        // The use is written by the next flush; wait for one to be counted.
        let started = std::time::Instant::now();
        let text = loop {
            let (status, _, text) = get(server, "/metrics", Some(&ops));
            assert_eq!(status, 200, "{text}");
            if sample(
                &text,
                "pat_flush_duration_seconds_count{backend=\"postgres\"}",
            ) > 0.0
            {
                break text;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        assert_eq!(
            sample(&text, "pat_flush_failures_total{backend=\"postgres\"}"),
            0.0
        );
        // Misses read through the pool (each server read alice's and ops'
        // tokens at least once).
        assert!(
            sample(
                &text,
                "pat_postgres_pool_wait_seconds_count{connection=\"read\"}"
            ) >= 2.0,
            "{text}"
        );
        assert_eq!(
            sample(&text, "pat_postgres_listener_reconnects_total"),
            0.0,
            "{text}"
        );
    }
    // A revocation elsewhere (the CLI's write sends a NOTIFY): each
    // replica measures how late it heard of it.
    cli(&["token", "revoke", "--user", "alice"]);
    for server in &servers {
        let started = std::time::Instant::now();
        loop {
            let (_, _, text) = get(server, "/metrics", Some(&ops));
            if sample(&text, "pat_postgres_notification_lag_seconds_count") >= 1.0 {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// The remote verifier counts and times its round trips, ok and failed,
/// into the process's recorder (this test binary's, installed here).
#[test]
fn the_remote_verifier_counts_its_round_trips() {
    use std::sync::Arc;

    use pat_core::remote::RemoteVerifier;
    use pat_core::{Admin as _, ExpiryPolicy, MemoryStore, NewToken, Outcome, Timestamp};

    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this test binary");
    let store = Arc::new(MemoryStore::new());
    let hour = || ExpiryPolicy::hard(std::time::Duration::from_secs(3600));
    let gateway = store
        .create(&NewToken::new("gateway", hour()), Timestamp::now())
        .unwrap();
    let alice = store
        .create(&NewToken::new("alice", hour()), Timestamp::now())
        .unwrap();
    let endpoint =
        pat_integration_tests::inproc::serve(pat_integration_tests::inproc::endpoint_over(&store));
    let verifier = RemoteVerifier::builder()
        .ttl(std::time::Duration::ZERO)
        .connect(&format!("{endpoint}/introspect"), &gateway.secret)
        .unwrap();
    let gate = pat_core::Gate::new(verifier);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bearer = format!("Bearer {}", alice.secret.expose_secret());
    for _ in 0..3 {
        let outcome = rt.block_on(gate.check([bearer.as_bytes()], false));
        assert!(matches!(outcome, Outcome::Authenticated(_)), "{outcome:?}");
    }
    // An endpoint that is not there: an error, counted as one.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/introspect", closed.local_addr().unwrap());
    drop(closed);
    let down = pat_core::Gate::new(RemoteVerifier::connect(&url, &gateway.secret).unwrap());
    let outcome = rt.block_on(down.check([bearer.as_bytes()], false));
    assert!(matches!(outcome, Outcome::Rejected(_)), "{outcome:?}");

    let text = prometheus.render();
    assert_eq!(
        sample(&text, "pat_remote_requests_total{result=\"ok\"}"),
        3.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "pat_remote_requests_total{result=\"error\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "pat_remote_request_duration_seconds_count"),
        4.0,
        "{text}"
    );
    // Every gate of the process counts into the same recorder: the
    // service's (alice, 3 times) and the in-process endpoint's layer
    // (the verifier's own token, once per round trip that reached it).
    assert_eq!(
        authentications(&text, "authenticated", "bearer"),
        3.0 + 3.0,
        "{text}"
    );
    assert_eq!(
        authentications(&text, "unavailable", "bearer"),
        1.0,
        "{text}"
    );
}
