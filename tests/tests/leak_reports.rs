//! Leak reports through both reference servers (real processes, a real
//! client): live tokens reported are revoked and audited with the
//! reporter's address; the answer is the same whatever was reported; the
//! route is rate limited per address; both servers answer alike.

use pat_integration_tests::{Server, ServerKind, Workdir, client, hello};
use serde_json::{Value, json};

fn report(server: &Server, body: &str) -> (u16, Option<String>, String) {
    let resp = client()
        .post(server.url("/tokens/report-leak"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .expect("request");
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, resp.text().expect("body"))
}

fn session(kind: ServerKind) -> Vec<(u16, String)> {
    let work = Workdir::new();
    let server = work.start(kind);
    let leaked = work.token(&["-u", "alice", "-e", "1h"]);
    let kept = work.token(&["-u", "alice", "-e", "1h"]);
    let forged = pat_core::TokenSecret::generate();
    let mut seen = Vec::new();

    // A live token among junk: revoked; the answer says nothing of which.
    let mixed = json!([leaked, forged.expose_secret(), "hello", ""]).to_string();
    let (status, _, body) = report(&server, &mixed);
    assert_eq!((status, body.as_str()), (202, r#"{"status":"received"}"#));
    seen.push((status, body));
    assert_eq!(
        hello(&server, &leaked),
        401,
        "reported token refused at once"
    );
    assert_eq!(hello(&server, &kept), 200);
    // Only junk, or the same token again: the very same answer.
    for body in [
        json!([forged.expose_secret()]).to_string(),
        json!([leaked]).to_string(),
        "[]".to_owned(),
    ] {
        let (status, _, answer) = report(&server, &body);
        assert_eq!((status, answer.as_str()), (202, r#"{"status":"received"}"#));
        seen.push((status, answer));
    }
    // Not a list of strings, or too long: 400.
    let too_many = serde_json::to_string(&vec!["x"; 1001]).unwrap();
    for body in ["{}", "not json", r#"[1, 2]"#, too_many.as_str()] {
        let (status, _, answer) = report(&server, body);
        assert_eq!(status, 400, "{body}");
        seen.push((status, answer));
    }
    // The audit log names the reporter.
    let log: Value =
        serde_json::from_str(&work.cli_ok(&["audit", "--json", "-u", "alice"])).unwrap();
    let reported: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "revoke")
        .collect();
    assert_eq!(reported.len(), 1, "{log}");
    assert_eq!(reported[0]["actor"], "reported leaked by 127.0.0.1");
    assert!(!log.to_string().contains(&leaked[4..]));

    // Ten reports a minute per address; the eleventh waits.
    let (status, retry, answer) = report(&server, "[]");
    assert_eq!(status, 202, "the 9th report is still allowed");
    seen.push((status, answer));
    let (status, _, _) = report(&server, "[]");
    assert_eq!(status, 202, "the 10th too");
    let (status, retry_after, answer) = report(&server, &json!([kept]).to_string());
    assert_eq!(status, 429, "{answer}");
    let wait: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(
        hello(&server, &kept),
        200,
        "a refused report revokes nothing"
    );
    assert!(retry.is_none());
    seen.push((status, answer));
    assert!(server.stop());
    seen
}

#[test]
fn both_servers_revoke_reported_tokens_alike() {
    let answers: Vec<_> = ServerKind::ALL.into_iter().map(session).collect();
    assert_eq!(answers[0], answers[1]);
}
