//! A token prefix per store, through the real CLI and both reference
//! servers: chosen by `init`, changed by `prefix set` while the servers
//! run (through the admin socket, or on PostgreSQL through the database),
//! older tokens kept working, another prefix refused, the scanner rules
//! and `token check` naming the store's prefixes.

use std::path::Path;
use std::time::{Duration, Instant};

use pat_integration_tests::postgres::postgres;
use pat_integration_tests::{Server, ServerKind, Workdir, hello, pat_cli, replicas};

/// `pat-cli --db DB ARGS`, its status, stdout and stderr.
fn cli(db: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(pat_cli())
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("PAT_DB")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running pat-cli");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(db: &str, args: &[&str]) -> String {
    let (code, out, err) = cli(db, args, "");
    assert_eq!(code, 0, "pat-cli {args:?}: {err}");
    out
}

fn token(db: &str, user: &str) -> String {
    ok(db, &["token", "-q", "-u", user, "-e", "1h"])
        .trim()
        .to_owned()
}

/// Waits (at most 2 s) until `server` answers `want` for `token`.
fn answers(server: &Server, token: &str, want: u16) {
    let start = Instant::now();
    loop {
        let got = hello(server, token);
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{} answers {got} for a token, not {want}",
            server.base()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The whole story on the store `db`, served by the servers `start` starts.
fn a_store_with_its_own_prefix(db: &str, start: impl Fn() -> Vec<Server>) {
    assert!(
        ok(db, &["init", "--prefix", "acme"]).contains("start with `acme_`"),
        "init says what it made"
    );
    let (code, _, err) = cli(db, &["init", "--prefix", "beta"], "");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("exists already, with the prefix `acme`") && err.contains("prefix set beta"),
        "{err}"
    );
    let acme = token(db, "alice");
    assert!(acme.starts_with("acme_"), "{acme}");
    let servers = start();
    for s in &servers {
        answers(s, &acme, 200);
    }

    // Changed while both run: a token of the new prefix works at once (or
    // within the replicas' notification), the old one still works.
    let shown = ok(db, &["prefix", "set", "beta"]);
    assert!(
        shown.contains("current: beta") && shown.contains("former:  acme"),
        "{shown}"
    );
    let beta = token(db, "bob");
    assert!(beta.starts_with("beta_"), "{beta}");
    for s in &servers {
        answers(s, &beta, 200);
        answers(s, &acme, 200);
        // A well-formed token of a prefix this store never had: not ours.
        let other = pat_core::TokenSecret::generate();
        answers(s, other.expose_secret(), 401);
    }
    let json: serde_json::Value = serde_json::from_str(&ok(db, &["prefix", "--json"])).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"current": "beta", "former": ["acme"]})
    );

    // The audit log names the change; `token check` and the scanner rules
    // know both prefixes.
    let audit = ok(db, &["audit", "--json"]);
    assert!(
        audit.contains("set_prefix") && audit.contains("prefix beta"),
        "{audit}"
    );
    let (code, out, err) = cli(db, &["token", "check"], &format!("{acme}\n"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("live until"), "{out}");
    let other = pat_core::TokenSecret::generate();
    let (code, _, err) = cli(
        db,
        &["token", "check"],
        &format!("{}\n", other.expose_secret()),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("does not start with `beta_` or `acme_` (this store's prefixes)"),
        "{err}"
    );
    assert!(!err.contains(&other.expose_secret()[4..]), "echoed: {err}");
    assert_eq!(
        ok(db, &["scan-rules"]),
        "((?:beta|acme)_[0-9A-Za-z]{38})(?:[^0-9A-Za-z]|$)\n"
    );

    // Refused as the CLI refuses any bad value: which flag, what is
    // accepted, exit 2; nothing changed.
    for bad in ["a", "ac_me", "seventeenletters1"] {
        let (code, _, err) = cli(db, &["prefix", "set", bad], "");
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("2 to 16 ASCII letters and digits"), "{err}");
    }
    assert!(ok(db, &["prefix"]).contains("current: beta"));
    for s in servers {
        assert!(s.stop());
    }
}

#[test]
fn a_redb_store_gets_its_prefix_and_changes_it_through_the_admin_socket() {
    // One process holds a redb file: each server on a store of its own.
    for kind in ServerKind::ALL {
        let work = Workdir::new();
        let db = work.db();
        let db = db.to_str().unwrap();
        a_store_with_its_own_prefix(db, || vec![Server::start(kind, Path::new(db), &[])]);
    }
}

#[test]
fn a_postgres_store_gets_its_prefix_and_every_replica_hears_a_change() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let dir = tempfile::tempdir().unwrap();
    a_store_with_its_own_prefix(&db, || replicas(&db, dir.path(), &[]).into());
}
