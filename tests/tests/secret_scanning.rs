//! GitHub's secret scanning partner endpoint through both reference
//! servers (real processes, a real client, real P-256 signatures): a
//! signed report revokes the live tokens in it and answers GitHub's
//! feedback; unsigned, wrongly signed, altered, cross-site, oversized and
//! slow requests revoke nothing; refused reports are limited per address;
//! GitHub's key rotation is picked up from the key file; a store failure
//! is 503, and the report is taken once the store is back; both servers
//! answer alike.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use pat_integration_tests::{
    Server, ServerKind, Workdir, client, hello, post_announcing, replicas,
};
use serde_json::{Value, json};
use sha2::Digest as _;

/// A key standing for GitHub's: made from OS randomness.
fn github_key() -> SigningKey {
    loop {
        let bytes: [u8; 32] = rand_bytes();
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            return key;
        }
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("/dev/urandom");
    bytes
}

/// GitHub's `meta/public_keys/secret_scanning` answer for `keys`.
fn keys_file(keys: &[(&str, &SigningKey)]) -> String {
    let list: Vec<Value> = keys
        .iter()
        .map(|(id, key)| {
            json!({
                "key_identifier": id,
                "key": key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap(),
                "is_current": true,
            })
        })
        .collect();
    json!({ "public_keys": list }).to_string()
}

fn signature(key: &SigningKey, body: &[u8]) -> String {
    let signature: Signature = key.sign(body);
    base64::engine::general_purpose::STANDARD.encode(signature.to_der())
}

fn post(server: &Server, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String) {
    let mut req = client().post(server.url("/secret-scanning/github"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.body(body).send().expect("request");
    (resp.status().as_u16(), resp.text().expect("body"))
}

fn signed(server: &Server, key: &SigningKey, id: &str, body: &[u8]) -> (u16, String) {
    let sig = signature(key, body);
    post(
        server,
        &[
            ("content-type", "application/json"),
            ("github-public-key-identifier", id),
            ("github-public-key-signature", &sig),
        ],
        body.to_vec(),
    )
}

fn report(tokens: &[&str]) -> Vec<u8> {
    let items: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({
                "token": t,
                "type": "pat_personal_access_token",
                "url": "https://github.com/octo/repo/blob/abc/.env",
                "source": "content",
            })
        })
        .collect();
    serde_json::to_vec(&items).unwrap()
}

fn session(kind: ServerKind) -> Vec<(u16, String)> {
    let work = Workdir::new();
    let (first, second) = (github_key(), github_key());
    let keys = work.path().join("github-keys.json");
    std::fs::write(&keys, keys_file(&[("k1", &first)])).unwrap();
    let server = Server::start(kind, &work.db(), &["--github-keys", keys.to_str().unwrap()]);
    let leaked = work.token(&["-u", "alice", "-e", "1h"]);
    let kept = work.token(&["-u", "alice", "-e", "1h"]);
    let mut seen = Vec::new();

    // Every refusal first: nothing is revoked by any of them.
    let body = report(&[&leaked]);
    let good = signature(&first, &body);
    let stranger = signature(&github_key(), &body);
    let mut altered = body.clone();
    altered.push(b'\n');
    /// Headers, body, the status expected, what the case is.
    type Refusal<'a> = (Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let refusals: Vec<Refusal<'_>> = vec![
        (vec![], body.clone(), 401, "unsigned"),
        (
            vec![("github-public-key-identifier", "k1")],
            body.clone(),
            401,
            "no signature",
        ),
        (
            vec![
                ("github-public-key-identifier", "k9"),
                ("github-public-key-signature", &good),
            ],
            body.clone(),
            401,
            "unknown key",
        ),
        (
            vec![
                ("github-public-key-identifier", "k1"),
                ("github-public-key-signature", &stranger),
            ],
            body.clone(),
            401,
            "another key",
        ),
        (
            vec![
                ("github-public-key-identifier", "k1"),
                ("github-public-key-signature", &good),
            ],
            altered,
            401,
            "body changed after signing",
        ),
        // A cross-site form: a browser can post to the route, but cannot
        // sign for GitHub.
        (
            vec![
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ],
            format!("token={leaked}").into_bytes(),
            401,
            "cross-site form",
        ),
    ];
    for (headers, body, status, case) in refusals {
        let (got, answer) = post(&server, &headers, body);
        assert_eq!(got, status, "{kind:?} {case}: {answer}");
        assert!(!answer.contains(&leaked), "{case}: the token echoed");
        seen.push((got, case.to_owned()));
        assert_eq!(
            hello(&server, &leaked),
            200,
            "{kind:?} {case}: revoked nothing"
        );
    }
    let oversized = post_announcing(
        &server,
        "/secret-scanning/github",
        &[
            ("github-public-key-identifier", "k1"),
            ("github-public-key-signature", &good),
        ],
        pat_core::secret_scanning::MAX_REPORT_LEN + 1,
    );
    assert!(
        oversized.starts_with("HTTP/1.1 413"),
        "{kind:?}: {oversized}"
    );
    assert_eq!(
        hello(&server, &leaked),
        200,
        "{kind:?} oversized: revoked nothing"
    );
    seen.push((413, "oversized".to_owned()));

    // Signed, but not a report.
    let (status, _) = signed(&server, &first, "k1", b"{\"token\": 1}");
    assert_eq!(status, 400);

    // A signed report: the live token revoked at once, the feedback per
    // token.
    let forged = pat_core::TokenSecret::generate();
    let body = report(&[&leaked, forged.expose_secret()]);
    let (status, answer) = signed(&server, &first, "k1", &body);
    assert_eq!(status, 200, "{answer}");
    let feedback: Value = serde_json::from_str(&answer).unwrap();
    let hash = |t: &str| {
        sha2::Sha256::digest(t.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(
        feedback,
        json!([
            {"token_hash": hash(&leaked), "token_type": "pat_personal_access_token", "label": "true_positive"},
            {"token_hash": hash(forged.expose_secret()), "token_type": "pat_personal_access_token", "label": "false_positive"},
        ])
    );
    assert!(!answer.contains(&leaked), "the feedback holds hashes only");
    assert_eq!(hello(&server, &leaked), 401, "revoked at once");
    assert_eq!(hello(&server, &kept), 200);
    seen.push((status, "report".to_owned()));

    // The largest report GitHub sends, 1,000 findings with long URLs
    // (about 300 KiB, past the 64 KiB of pat's other routes): taken whole.
    let many: Vec<String> = (0..pat_core::leaks::MAX_REPORTED)
        .map(|_| pat_core::TokenSecret::generate().expose_secret().to_owned())
        .collect();
    let items: Vec<Value> = many
        .iter()
        .map(|t| {
            json!({
                "token": t,
                "type": "pat_personal_access_token",
                "url": format!("https://github.com/octo/repo/blob/{}/config/{}.env", "a".repeat(40), "deep/".repeat(30)),
                "source": "content",
            })
        })
        .collect();
    let big = serde_json::to_vec(&items).unwrap();
    assert!(big.len() > 256 * 1024, "{}", big.len());
    let (status, answer) = signed(&server, &first, "k1", &big);
    assert_eq!(status, 200, "{kind:?}: {answer}");
    let feedback: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(feedback.as_array().unwrap().len(), many.len());
    seen.push((status, "the largest report".to_owned()));
    let audit = work.cli_ok(&["audit", "-u", "alice", "--json"]);
    assert!(
        audit.contains(
            // JSON-escaped: the actor quotes what GitHub said.
            r#"GitHub secret scanning (\"content\": \"https://github.com/octo/repo/blob/abc/.env\")"#
        ),
        "{audit}"
    );

    // GitHub rotates its key: the operator writes the new answer, and
    // reports signed with the new key are taken without a restart.
    let (status, _) = signed(&server, &second, "k2", &report(&[&kept]));
    assert_eq!(status, 401, "k2 not known yet");
    std::fs::write(&keys, keys_file(&[("k1", &first), ("k2", &second)])).unwrap();
    let (status, answer) = signed(&server, &second, "k2", &report(&[&kept]));
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("true_positive"));
    assert_eq!(hello(&server, &kept), 401);

    // Refusals are limited per address. Counted so far: the unknown key,
    // the other key, the changed body, the oversized body and k2 before
    // it was known (a report is counted when it is admitted, and given
    // back once its signature holds); the headerless calls cost nothing
    // and are not. The eleventh is 429 before its body is read, and then
    // even a good report waits.
    let body = report(&[&kept]);
    for _ in 0..5 {
        let (status, _) = signed(&server, &github_key(), "k1", &body);
        assert_eq!(status, 401);
    }
    let (status, answer) = signed(&server, &github_key(), "k1", &body);
    assert_eq!(status, 429, "{kind:?}: {answer}");
    let (status, _) = signed(&server, &first, "k1", &body);
    assert_eq!(status, 429, "held back for the rest of the window");
    seen.push((status, "over the refusals".to_owned()));
    seen
}

#[test]
fn both_servers_take_signed_reports_and_refuse_the_rest_alike() {
    let axum = session(ServerKind::Axum);
    let actix = session(ServerKind::Actix);
    assert_eq!(axum, actix);
}

#[test]
fn a_slow_body_is_cut_off_and_revokes_nothing() {
    let run = |kind: ServerKind| {
        let work = Workdir::new();
        let server = work.start(kind);
        let token = work.token(&["-u", "alice", "-e", "1h"]);
        let addr = server.base().trim_start_matches("http://").to_owned();
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(40)))
            .unwrap();
        // Announces a signed report, sends the start of it, then stalls.
        let sig = signature(&github_key(), b"[]");
        write!(
            conn,
            "POST /secret-scanning/github HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
             github-public-key-identifier: k1\r\ngithub-public-key-signature: {sig}\r\n\
             content-length: 1000\r\n\r\n[{{\"token\": \"{token}\""
        )
        .unwrap();
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(answer.starts_with("HTTP/1.1 408"), "{kind:?}: {answer}");
        assert_eq!(hello(&server, &token), 200, "{kind:?}: revoked nothing");
        answer.lines().next().unwrap_or_default().to_owned()
    };
    let (axum, actix) = std::thread::scope(|s| {
        let a = s.spawn(|| run(ServerKind::Axum));
        let b = s.spawn(|| run(ServerKind::Actix));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(axum, actix);
}

/// The store fails under a report: 503 (GitHub sends it again), never a
/// `false_positive` that would leave a leaked live token alive; once the
/// database is back, the same report revokes it. Both servers, as
/// replicas on a PostgreSQL server of the test's own.
#[test]
fn a_store_failure_is_503_and_the_report_is_taken_when_it_is_back() {
    let Some(pg) = pat_integration_tests::postgres::dedicated() else {
        return;
    };
    let db = pg.database();
    let dir = tempfile::tempdir().unwrap();
    let github = github_key();
    let keys = dir.path().join("github-keys.json");
    std::fs::write(&keys, keys_file(&[("k1", &github)])).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(pat_integration_tests::pat_cli())
            .arg("--db")
            .arg(&db)
            .args(args)
            .env_remove("PAT_DB")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let leaked = run(&["token", "-q", "-u", "alice", "-e", "1h"]);
    let servers = replicas(&db, dir.path(), &["--github-keys", keys.to_str().unwrap()]);
    let body = report(&[&leaked]);
    assert!(pg.stop(), "stopping the database");
    for s in &servers {
        let (status, answer) = signed(s, &github, "k1", &body);
        assert_eq!(status, 503, "{}: {answer}", s.base());
        assert!(!answer.contains("false_positive"), "{answer}");
    }
    assert!(pg.start(), "starting the database again");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let (status, answer) = signed(&servers[0], &github, "k1", &body);
        if status == 200 {
            break answer;
        }
        assert!(std::time::Instant::now() < deadline, "{status}: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(answer.contains("true_positive"), "{answer}");
    for s in &servers {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while hello(s, &leaked) != 401 {
            assert!(std::time::Instant::now() < deadline, "still accepted");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for s in servers {
        assert!(s.stop());
    }
}
