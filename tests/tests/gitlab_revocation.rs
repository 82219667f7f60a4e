//! GitLab's Token Revocation API through both reference servers (real
//! processes, a real client): with the pre-shared secret, the token types
//! and a revocation of the live tokens found; without it, or with a type
//! this service does not revoke, a body that is not findings, a cross-site
//! form, an oversized or a stalled body, nothing revoked; guesses of the secret
//! limited per address; both servers answer alike.

use pat_core::gitlab_revocation::DEFAULT_TYPE;
use pat_integration_tests::{Server, ServerKind, Workdir, client, hello, post_announcing};
use serde_json::json;

const SECRET: &str = "6f1c2b9e0a7d4c3b8e5f1a2d9c0b7e4f";

/// Status, `Content-Type` and body of a call to `path` with `headers`.
fn call(
    server: &Server,
    post: bool,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Option<String>, String) {
    let url = server.url(path);
    let mut req = if post {
        client().post(url).body(body)
    } else {
        client().get(url)
    };
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, kind, resp.text().unwrap())
}

fn findings(kind: &str, tokens: &[&str]) -> Vec<u8> {
    let items: Vec<_> = tokens
        .iter()
        .map(|t| json!({"type": kind, "token": t, "location": "https://gitlab.example/g/p/-/blob/abc/.env"}))
        .collect();
    serde_json::to_vec(&items).unwrap()
}

fn session(kind: ServerKind) -> Vec<(u16, Option<String>, String)> {
    let work = Workdir::new();
    let secret = work.path().join("gitlab-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let server = Server::start(
        kind,
        &work.db(),
        &["--gitlab-secret-file", secret.to_str().unwrap()],
    );
    let leaked = work.token(&["-u", "alice", "-e", "1h"]);
    let kept = work.token(&["-u", "alice", "-e", "1h"]);
    let auth = [
        ("authorization", SECRET),
        ("content-type", "application/json"),
    ];
    let mut seen = Vec::new();

    let types = call(
        &server,
        false,
        "/gitlab/v1/revocable_token_types",
        &auth,
        vec![],
    );
    assert_eq!(types.0, 200, "{kind:?}: {types:?}");
    assert_eq!(
        types.2,
        json!({"types": [DEFAULT_TYPE, "gitleaks_rule_id_pat-personal-access-token"]}).to_string()
    );
    seen.push(types);

    let body = findings(DEFAULT_TYPE, &[&leaked, "glpat-someone-elses"]);
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let wrong = format!("Bearer {SECRET}");
    let cases: Vec<Case<'_>> = vec![
        (vec![], body.clone(), 401, "no secret"),
        (
            vec![("authorization", "guess-guess-guess")],
            body.clone(),
            401,
            "a wrong secret",
        ),
        (
            vec![("authorization", &wrong)],
            body.clone(),
            401,
            "a scheme before it",
        ),
        (auth.to_vec(), b"{}".to_vec(), 400, "not findings"),
        (
            auth.to_vec(),
            findings("gitleaks_rule_id_aws", &[&leaked]),
            400,
            "another type",
        ),
        (
            vec![
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ],
            format!("token={leaked}").into_bytes(),
            401,
            "a cross-site form",
        ),
    ];
    for (headers, body, status, case) in cases {
        let got = call(&server, true, "/gitlab/v1/revoke_tokens", &headers, body);
        assert_eq!(got.0, status, "{kind:?} {case}: {got:?}");
        assert!(!got.2.contains(&leaked), "{case}: echoed");
        assert_eq!(
            hello(&server, &leaked),
            200,
            "{kind:?} {case}: revoked nothing"
        );
        seen.push(got);
    }

    let oversized = post_announcing(
        &server,
        "/gitlab/v1/revoke_tokens",
        &auth,
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

    // With the secret: the live token revoked at once, nothing said.
    let done = call(
        &server,
        true,
        "/gitlab/v1/revoke_tokens",
        &auth,
        body.clone(),
    );
    assert_eq!(
        (done.0, done.1.as_deref(), done.2.as_str()),
        (204, None, ""),
        "{kind:?}"
    );
    assert_eq!(hello(&server, &leaked), 401, "revoked at once");
    assert_eq!(hello(&server, &kept), 200);
    let audit = work.cli_ok(&["audit", "-u", "alice", "--json"]);
    assert!(
        audit.contains(
            r#"GitLab secret detection (\"https://gitlab.example/g/p/-/blob/abc/.env\")"#
        ),
        "{audit}"
    );
    // Sent again (GitLab retries): still 204.
    let again = call(&server, true, "/gitlab/v1/revoke_tokens", &auth, body);
    assert_eq!(again.0, 204);
    seen.push(done);

    // Two refusals counted so far, the wrong secrets (calls with none
    // cost nothing and are not): the eleventh is 429, and then even the
    // secret waits.
    for _ in 0..8 {
        let got = call(
            &server,
            false,
            "/gitlab/v1/revocable_token_types",
            &[("authorization", "nope")],
            vec![],
        );
        assert_eq!(got.0, 401);
    }
    let held = call(
        &server,
        false,
        "/gitlab/v1/revocable_token_types",
        &[("authorization", "nope")],
        vec![],
    );
    assert_eq!(held.0, 429, "{kind:?}: {held:?}");
    let held = call(
        &server,
        false,
        "/gitlab/v1/revocable_token_types",
        &auth,
        vec![],
    );
    assert_eq!(held.0, 429);
    seen.push(held);
    assert!(server.stop());
    seen
}

#[test]
fn both_servers_revoke_what_gitlab_finds_and_refuse_the_rest_alike() {
    let axum = session(ServerKind::Axum);
    let actix = session(ServerKind::Actix);
    assert_eq!(axum, actix);
}

#[test]
fn without_a_secret_file_the_routes_are_not_served_and_a_weak_secret_is_refused() {
    let work = Workdir::new();
    for kind in ServerKind::ALL {
        let server = work.start(kind);
        let got = call(
            &server,
            false,
            "/gitlab/v1/revocable_token_types",
            &[("authorization", SECRET)],
            vec![],
        );
        // Not served: the path is behind the PAT layer like any other.
        assert!(matches!(got.0, 401 | 404), "{kind:?}: {got:?}");
        assert!(server.stop());
        let weak = work.path().join("weak");
        std::fs::write(&weak, "short\n").unwrap();
        let (code, err) = Server::start_failing_with(
            kind,
            &work.db(),
            &["--gitlab-secret-file", weak.to_str().unwrap()],
        );
        assert_ne!(code, Some(0));
        assert!(
            err.contains("--gitlab-secret-file") && err.contains("at least 16"),
            "{err}"
        );
        assert!(!err.contains("short"), "the secret echoed: {err}");
    }
}

/// A body that stalls after the secret: 408 when the read times out, the
/// connection closed, nothing revoked; both servers alike.
#[test]
fn a_slow_body_is_cut_off_and_revokes_nothing() {
    use std::io::{Read as _, Write as _};
    let run = |kind: ServerKind| {
        let work = Workdir::new();
        let secret = work.path().join("gitlab-secret");
        std::fs::write(&secret, SECRET).unwrap();
        let server = Server::start(
            kind,
            &work.db(),
            &["--gitlab-secret-file", secret.to_str().unwrap()],
        );
        let token = work.token(&["-u", "alice", "-e", "1h"]);
        let addr = server.base().trim_start_matches("http://").to_owned();
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(40)))
            .unwrap();
        write!(
            conn,
            "POST /gitlab/v1/revoke_tokens HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
             authorization: {SECRET}\r\ncontent-length: 1000\r\n\r\n\
             [{{\"type\": \"{DEFAULT_TYPE}\", \"token\": \"{token}\""
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
