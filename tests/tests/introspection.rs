//! RFC 7662 introspection through both reference servers (real processes,
//! a client posting forms as the RFC describes): active, inactive,
//! malformed, expired, revoked, an unauthorised caller, `no-store`, and an
//! introspection counting as a use; both servers answer alike.

use std::time::Duration;

use pat_integration_tests::{Server, ServerKind, Workdir, client};
use serde_json::Value;

const NODE: &str = "0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";

/// `POST /introspect` with `form` as the body, as `caller`.
fn introspect(server: &Server, caller: Option<&str>, form: &str) -> (u16, Option<String>, String) {
    let mut req = client()
        .post(server.url("/introspect"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned());
    if let Some(caller) = caller {
        req = req.header("authorization", format!("Bearer {caller}"));
    }
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, cache, resp.text().expect("body"))
}

fn session(kind: ServerKind) -> Vec<(u16, String)> {
    let work = Workdir::new();
    let server = Server::start(kind, &work.db(), &["--introspector", "gateway"]);
    let gateway = work.token(&["-u", "gateway", "-e", "1h"]);
    let alice = work.token(&["-u", "alice", "-a", "1h", "-s", &format!("node:{NODE}:r")]);
    let brief = work.token(&["-u", "bob", "-e", "1s"]);
    let revoked = work.token(&["-u", "carol", "-e", "1h"]);
    let mut seen = Vec::new();

    // Active: every field RFC 7662 names that pat has.
    let (status, cache, body) = introspect(&server, Some(&gateway), &format!("token={alice}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["active"], true);
    assert_eq!(v["username"], "alice");
    assert_eq!(v["sub"], "alice");
    assert_eq!(v["token_type"], "pat");
    assert_eq!(v["scope"], format!("node:{NODE}:r"));
    assert!(v["exp"].as_u64().unwrap() > v["iat"].as_u64().unwrap());
    let jti = v["jti"].as_str().unwrap().to_owned();
    assert!(!body.contains(&alice[4..]), "the token echoed: {body}");
    // It counted as a use of alice's token.
    let shown: Value =
        serde_json::from_str(&work.cli_ok(&["token", "show", &jti, "--json"])).unwrap();
    assert!(shown["last_used_at"].is_string(), "{shown}");
    let mut shape = v.clone();
    for k in ["exp", "iat", "jti"] {
        shape[k] = Value::Null;
    }
    seen.push((status, shape.to_string()));

    // Named permissions (issue 24): `scope` lists what the token holds,
    // its wildcard and implications resolved by the store's catalog (the
    // server declares demo:read < demo:write < demo:admin, demo:export),
    // so that a remote verifier needs none.
    let named = work.token(&[
        "-u",
        "alice",
        "-e",
        "1h",
        "-s",
        "demo:write",
        "-s",
        &format!("node:{NODE}:r"),
    ]);
    let (status, _, body) = introspect(&server, Some(&gateway), &format!("token={named}"));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["scope"], format!("node:{NODE}:r demo:read demo:write"));
    seen.push((status, v["scope"].to_string()));

    // A use quota (issue 26): an introspection spends one use and says
    // so. A digest request (the remote verifier's) may defer it:
    // `pat_spend=later` (a use, spent by a second request) and
    // `pat_spend=no` (a session's recheck) spend nothing and say so; any
    // other value, or deferring with `token=`, is a 400.
    let counted = work.token(&["-u", "dave", "-e", "1h", "--max-uses", "3"]);
    let uses = |jti: &str| {
        let shown: Value =
            serde_json::from_str(&work.cli_ok(&["token", "show", jti, "--json"])).unwrap();
        shown["uses"].as_u64().unwrap()
    };
    let digest: String = pat_core::TokenDigest::from_token(&counted)
        .unwrap()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut counted_id = String::new();
    for spend in ["later", "no"] {
        let form = format!("token_digest={digest}&pat_spend={spend}");
        let (status, _, body) = introspect(&server, Some(&gateway), &form);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (&v["pat_uses_left"], &v["pat_spent"]),
            (&3.into(), &false.into()),
            "{body}"
        );
        counted_id = v["jti"].as_str().unwrap().to_owned();
        assert_eq!(uses(&counted_id), 0, "nothing spent");
        seen.push((status, v["pat_uses_left"].to_string()));
    }
    let (status, _, body) = introspect(&server, Some(&gateway), &format!("token={counted}"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&v["pat_uses_left"], &v["pat_spent"]),
        (&2.into(), &true.into()),
        "{body}"
    );
    assert_eq!(uses(&counted_id), 1, "one use spent");
    seen.push((status, v["pat_uses_left"].to_string()));
    for form in [
        format!("token_digest={digest}&pat_spend=yes"),
        format!("token_digest={digest}&pat_spend="),
        format!("token_digest={digest}&pat_spend=No"),
        format!("token={counted}&pat_spend=no"),
        format!("token={counted}&pat_spend=later"),
    ] {
        let (status, _, body) = introspect(&server, Some(&gateway), &form);
        assert_eq!(status, 400, "{form}: {body}");
        assert!(body.contains("`pat_spend`"), "{body}");
        seen.push((status, body));
    }
    assert_eq!(uses(&counted_id), 1, "a refused question spends nothing");
    // Spent to the last: `later` (a use) is refused as used up, `no` (a
    // session's recheck, whose login spent a use) is still active.
    for _ in 0..2 {
        let (status, _, _) = introspect(&server, Some(&gateway), &format!("token={counted}"));
        assert_eq!(status, 200);
    }
    assert_eq!(uses(&counted_id), 3);
    let ask = |spend: &str| {
        let form = format!("token_digest={digest}&pat_spend={spend}");
        let (_, _, body) = introspect(&server, Some(&gateway), &form);
        serde_json::from_str::<Value>(&body).unwrap()
    };
    assert_eq!(ask("later")["pat_reason"], "used_up");
    // A use refused for its quota records nothing, not even where it came
    // from, asked by a verifier or by an RFC 7662 caller; a recheck (no use,
    // answered active) is recorded as any answer is, so the list would show
    // a refused use's address had one been kept.
    for form in [
        format!("token_digest={digest}&pat_spend=later&pat_client=198.51.100.7"),
        format!("token={counted}&pat_client=198.51.100.7"),
    ] {
        let (status, _, body) = introspect(&server, Some(&gateway), &form);
        assert_eq!(status, 200, "{form}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["active"], false, "{form}: {body}");
    }
    let form = format!("token_digest={digest}&pat_spend=no&pat_client=203.0.113.9");
    let (_, _, body) = introspect(&server, Some(&gateway), &form);
    assert!(body.contains("\"active\":true"), "{body}");
    let shown = work.cli_ok(&["token", "show", &counted_id, "--json"]);
    assert!(
        shown.contains("203.0.113.9"),
        "the recheck's address: {shown}"
    );
    assert!(
        !shown.contains("198.51.100.7"),
        "a refused use's address was recorded: {shown}"
    );
    let recheck = ask("no");
    assert_eq!(
        (&recheck["active"], &recheck["pat_uses_left"]),
        (&true.into(), &0.into())
    );
    seen.push((200, recheck["pat_uses_left"].to_string()));

    // The hint is accepted and ignored; an encoded underscore decodes.
    let encoded = alice.replacen('_', "%5F", 1);
    let (status, _, body) = introspect(
        &server,
        Some(&gateway),
        &format!("token_type_hint=access_token&token={encoded}"),
    );
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["active"],
        true
    );

    // Inactive, whatever the reason: exactly {"active":false}.
    work.cli_ok(&["token", "revoke", &{
        let out = work.cli_ok(&["token", "list", "-u", "carol", "--json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v[0]["id"].as_str().unwrap().to_owned()
    }]);
    std::thread::sleep(Duration::from_millis(1100));
    let forged = pat_core::TokenSecret::generate();
    for form in [
        format!("token={revoked}"),
        format!("token={brief}"),
        format!("token={}", forged.expose_secret()),
        "token=pat_notatoken".to_owned(),
        "token=".to_owned(),
        "nothing=here".to_owned(),
        String::new(),
    ] {
        let (status, cache, body) = introspect(&server, Some(&gateway), &form);
        assert_eq!(
            (status, body.as_str()),
            (200, r#"{"active":false}"#),
            "{form}"
        );
        assert_eq!(cache.as_deref(), Some("no-store"));
        seen.push((status, body));
    }

    // A `token` that is not percent-encoded UTF-8 is the caller's mistake:
    // 400 naming it (issue 21 made this 400; it was `{"active":false}`,
    // and beside a `token_digest` it silently answered for the digest).
    let (status, cache, body) = introspect(&server, Some(&gateway), "token=%zz");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("`token`"), "{body}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    seen.push((status, body));

    // A caller not allowed to introspect: 403; no caller: the layer's 401.
    let (status, cache, body) = introspect(&server, Some(&alice), &format!("token={gateway}"));
    assert_eq!(status, 403, "{body}");
    assert_eq!(cache.as_deref(), Some("no-store"));
    seen.push((status, body));
    let (status, _, body) = introspect(&server, None, &format!("token={alice}"));
    assert_eq!(status, 401);
    seen.push((status, body));
    assert!(server.stop());
    seen
}

#[test]
fn both_servers_introspect_alike_as_rfc_7662_says() {
    let answers: Vec<_> = ServerKind::ALL.into_iter().map(session).collect();
    assert_eq!(answers[0].len(), answers[1].len());
    for (i, (axum, actix)) in answers[0].iter().zip(&answers[1]).enumerate() {
        assert_eq!(axum, actix, "answer {i} differs between the servers");
    }
}
