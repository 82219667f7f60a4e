//! Self-service through both reference servers (real processes, a real
//! client): a token looks itself up, rotates itself (old refused at once or
//! after a grace, new accepted) and revokes itself (refused on the very next
//! request); both servers answer alike.

use pat_integration_tests::{Server, ServerKind, Workdir, basic, client};
use serde_json::Value;

const NODE: &str = "0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";

struct Reply {
    status: u16,
    cache_control: Option<String>,
    content_type: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn call(server: &Server, method: &str, path: &str, auth: Option<&str>) -> Reply {
    let mut req = client().request(method.parse().unwrap(), server.url(path));
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let resp = req.send().expect("request");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Reply {
        status: resp.status().as_u16(),
        cache_control: header("cache-control"),
        content_type: header("content-type"),
        body: resp.text().expect("body"),
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn hello(server: &Server, token: &str) -> u16 {
    call(server, "GET", "/hello", Some(&bearer(token))).status
}

/// Everything but what differs between runs (ids, times, secrets).
fn shape(v: &Value) -> Value {
    let mut v = v.clone();
    for key in [
        "id",
        "token",
        "expires_at",
        "created_at",
        "last_used_at",
        "rotated_at",
        "previous_secret_retires_at",
        "previous_secret_until",
        "latest_expires_at",
    ] {
        if let Some(field) = v.get_mut(key)
            && !field.is_null()
        {
            *field = Value::String("…".into());
        }
    }
    // Where it was used from is kept; when, not.
    if let Some(all) = v.get_mut("last_addresses").and_then(Value::as_array_mut) {
        for seen in all {
            seen["at"] = Value::String("…".into());
        }
    }
    v
}

/// One server's session, returning what the other must match.
fn session(kind: ServerKind) -> Vec<(u16, Value)> {
    let work = Workdir::new();
    let server = work.start(kind);
    let mut seen = Vec::new();
    let token = work.token(&["-u", "alice", "-a", "1h", "-l", "bot"]);
    // Old secrets are presented below to show they are refused; by default
    // that revokes the token (tests/tests/authority.rs shows it).
    work.cli_ok(&["policy", "set", "--on-reuse", "refuse"]);

    // Lookup: the record, never a secret, not cacheable.
    let r = call(&server, "GET", "/tokens/self", Some(&bearer(&token)));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    let me = r.json();
    assert_eq!(me["user"], "alice");
    assert_eq!(me["label"], "bot");
    assert_eq!(me["expiry"], "sliding");
    assert_eq!(me["auto_refresh_seconds"], 3600);
    assert!(
        me["last_used_at"].is_string(),
        "this request is a use: {me}"
    );
    assert!(
        me.get("token").is_none() && !r.body.contains("pat_"),
        "{}",
        r.body
    );
    seen.push((r.status, shape(&me)));
    // Basic works too, like any route behind the layer.
    let r = call(
        &server,
        "GET",
        "/tokens/self",
        Some(&basic("alice", &token)),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], me["id"]);

    // No credentials, or a bad one: the layer's 401, the handler never runs.
    for auth in [None, Some("Bearer pat_nope")] {
        let r = call(&server, "GET", "/tokens/self", auth);
        assert!(matches!(r.status, 400 | 401), "{auth:?}: {}", r.status);
        seen.push((r.status, Value::String(r.body)));
    }

    // Rotate: the new secret once; the old one refused on the next request.
    let r = call(
        &server,
        "POST",
        "/tokens/self/rotate",
        Some(&bearer(&token)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    let rotated = r.json();
    let new = rotated["token"].as_str().expect("new secret").to_owned();
    assert_eq!(rotated["id"], me["id"]);
    assert!(rotated["rotated_at"].is_string());
    seen.push((r.status, shape(&rotated)));
    assert_eq!(hello(&server, &token), 401, "old secret refused at once");
    assert_eq!(hello(&server, &new), 200);

    // Rotate with a grace and a hard limit (no longer than the window it
    // was issued with): both secrets work meanwhile.
    let r = call(
        &server,
        "POST",
        "/tokens/self/rotate?grace=10m&expire=30m",
        Some(&bearer(&new)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let newer = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["expiry"], "hard");
    seen.push((r.status, shape(&r.json())));
    assert_eq!(hello(&server, &new), 200, "old secret within its grace");
    assert_eq!(hello(&server, &newer), 200);

    // Bad parameters: 400 naming the parameter; nothing rotated.
    for query in [
        "grace=soon",
        "expire=1d&auto=1h",
        "color=red",
        "max_lifetime=1d",
    ] {
        let r = call(
            &server,
            "POST",
            &format!("/tokens/self/rotate?{query}"),
            Some(&bearer(&newer)),
        );
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_request");
        seen.push((r.status, r.json()));
    }
    assert_eq!(hello(&server, &newer), 200);
    // Only the routes' methods.
    let r = call(&server, "PUT", "/tokens/self", Some(&bearer(&newer)));
    assert_eq!(r.status, 405);

    // A scoped token may manage itself.
    let scoped = work.token(&["-u", "bob", "-e", "1h", "-s", &format!("node:{NODE}:r")]);
    let r = call(&server, "GET", "/tokens/self", Some(&bearer(&scoped)));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["scopes"][0], format!("node:{NODE}:r"));
    seen.push((r.status, shape(&r.json())));

    // Revoke: the record as it was; refused on the very next request.
    let r = call(&server, "DELETE", "/tokens/self", Some(&bearer(&newer)));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], me["id"]);
    seen.push((r.status, shape(&r.json())));
    assert_eq!(hello(&server, &newer), 401);
    assert_eq!(
        hello(&server, &new),
        401,
        "the grace of a revoked token ends"
    );
    assert_eq!(
        call(&server, "GET", "/tokens/self", Some(&bearer(&newer))).status,
        401
    );
    let listed = work.cli_ok(&["token", "list", "-u", "alice"]);
    assert_eq!(listed, "no tokens\n");
    // The audit log names the token as the actor of what it did to itself.
    let actor = format!("token {}", me["id"].as_str().unwrap());
    let log: Value =
        serde_json::from_str(&work.cli_ok(&["audit", "--json", "-u", "alice"])).unwrap();
    let by_itself: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == actor.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(by_itself, ["rotate", "rotate", "revoke"], "{log}");
    assert!(server.stop());
    seen
}

#[test]
fn a_token_manages_itself_through_both_servers_alike() {
    let answers: Vec<_> = ServerKind::ALL.into_iter().map(session).collect();
    assert_eq!(answers[0].len(), answers[1].len());
    for (i, (axum, actix)) in answers[0].iter().zip(&answers[1]).enumerate() {
        assert_eq!(axum, actix, "answer {i} differs between the servers");
    }
}
