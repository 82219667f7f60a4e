//! Issue 21's findings as an attacker would try them, through both
//! reference servers (real processes, a real HTTP client), every answer of
//! one server compared with the other's: cross-site requests on every route
//! that changes state, unreadable introspection forms, and what a stolen or
//! narrow token may do to tokens.

use pat_integration_tests::{Server, ServerKind, Workdir, basic, client};
use serde_json::Value;

/// One answer: status, and the body with what differs between runs masked.
#[derive(Debug, PartialEq)]
struct Said {
    status: u16,
    body: Value,
}

/// A request: method, path, headers, and a body.
fn send(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Said {
    let mut req = client().request(method.parse().unwrap(), server.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(body) = body {
        req = req.body(body.to_owned());
    }
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Said {
        status,
        body: masked(body),
    }
}

/// Ids, times and secrets masked, at any depth.
fn masked(mut v: Value) -> Value {
    mask(&mut v);
    v
}

fn mask(v: &mut Value) {
    if let Value::Array(list) = v {
        list.iter_mut().for_each(mask);
    }
    if let Value::Object(map) = v {
        for (k, x) in map.iter_mut() {
            if matches!(
                k.as_str(),
                "id" | "token"
                    | "expires_at"
                    | "created_at"
                    | "last_used_at"
                    | "rotated_at"
                    | "previous_secret_retires_at"
                    | "jti"
                    | "exp"
                    | "iat"
            ) && !x.is_null()
            {
                *x = Value::String("…".into());
            } else {
                mask(x);
            }
        }
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn hello(server: &Server, auth: &str) -> u16 {
    send(server, "GET", "/hello", &[("authorization", auth)], None).status
}

/// Runs `session` against each server kind on a fresh store, and checks
/// that both answered every request alike.
fn on_both(session: impl Fn(&Workdir, &Server) -> Vec<Said>) {
    let mut seen = Vec::new();
    for kind in [ServerKind::Axum, ServerKind::Actix] {
        let work = Workdir::new();
        let server = Server::start(kind, &work.db(), &["--introspector", "gateway"]);
        seen.push(session(&work, &server));
    }
    assert_eq!(seen[0], seen[1], "the servers answered differently");
}

// Finding 3: a cross-site form POST to /tokens/self/rotate was 200: a
// browser that cached Basic credentials for the panel would rotate its
// user's token for any page that asked. Self-service and introspection had
// no CSRF defence at all.
#[test]
fn cross_site_requests_never_change_tokens() {
    on_both(|work, server| {
        let mut said = Vec::new();
        let token = work.token(&["-u", "alice", "-e", "1h"]);
        let alice = basic("alice", &token);
        let form = [
            ("authorization", alice.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        // A form from another site, as a browser sends it.
        for site in ["cross-site", "same-site"] {
            let mut headers = form.to_vec();
            headers.push(("sec-fetch-site", site));
            let r = send(server, "POST", "/tokens/self/rotate", &headers, Some("a=1"));
            assert_eq!(r.status, 403, "{site}: {r:?}");
            said.push(r);
            let r = send(server, "DELETE", "/tokens/self", &headers, None);
            assert_eq!(r.status, 403, "{site}: {r:?}");
            said.push(r);
        }
        // An old browser sends no Sec-Fetch-Site: Basic credentials it
        // cached still need the header a form cannot send.
        let r = send(server, "POST", "/tokens/self/rotate", &form, Some("a=1"));
        assert_eq!(r.status, 403, "{r:?}");
        assert!(r.body.to_string().contains("x-pat-csrf"), "{r:?}");
        said.push(r);
        let r = send(server, "DELETE", "/tokens/self", &form, None);
        assert_eq!(r.status, 403, "{r:?}");
        said.push(r);
        assert_eq!(hello(server, &alice), 200, "nothing was rotated or revoked");

        // The same request from the app itself, with the header: allowed.
        let own = [
            ("authorization", alice.as_str()),
            ("x-pat-csrf", "1"),
            ("sec-fetch-site", "same-origin"),
        ];
        let r = send(server, "POST", "/tokens/self/rotate", &own, None);
        assert_eq!(r.status, 200, "{r:?}");
        said.push(r);

        // Bearer: a browser never adds it by itself, so a bot rotating its
        // own token needs nothing more.
        let bot = work.token(&["-u", "bot", "-e", "1h"]);
        let r = send(
            server,
            "POST",
            "/tokens/self/rotate",
            &[("authorization", &bearer(&bot))],
            None,
        );
        assert_eq!(r.status, 200, "{r:?}");
        said.push(r);

        // Introspection: the Sec-Fetch-Site rule only (gateways often use
        // Basic, never browsers).
        let gateway = basic("gateway", &work.token(&["-u", "gateway", "-e", "1h"]));
        let subject = work.token(&["-u", "carol", "-e", "1h"]);
        let body = format!("token={subject}");
        let ask = |extra: Option<(&str, &str)>| {
            let mut headers = vec![
                ("authorization", gateway.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ];
            headers.extend(extra);
            send(server, "POST", "/introspect", &headers, Some(&body))
        };
        let r = ask(Some(("sec-fetch-site", "cross-site")));
        assert_eq!(r.status, 403, "{r:?}");
        said.push(r);
        let r = ask(None);
        assert_eq!(
            (r.status, &r.body["active"]),
            (200, &Value::Bool(true)),
            "{r:?}"
        );
        said.push(r);
        said
    });
}

// Finding 9: `token=%zz&token_digest=…` fell back to digest mode silently.
#[test]
fn an_unreadable_introspection_field_is_a_bad_request() {
    on_both(|work, server| {
        let gateway = basic("gateway", &work.token(&["-u", "gateway", "-e", "1h"]));
        let subject = work.token(&["-u", "carol", "-e", "1h"]);
        let digest: String = pat_core::TokenDigest::from_token(&subject)
            .unwrap()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let headers = [
            ("authorization", gateway.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        let mut said = Vec::new();
        for form in [
            format!("token=%zz&token_digest={digest}"),
            format!("token_digest={digest}&username=%ff"),
        ] {
            let r = send(server, "POST", "/introspect", &headers, Some(&form));
            assert_eq!(r.status, 400, "{form}: {r:?}");
            assert_eq!(r.body["error"], "invalid_request", "{r:?}");
            said.push(r);
        }
        said
    });
}

// Finding 5: a rotation the store's policy refused was answered 503
// `temporarily_unavailable` (clients retry) and logged at ERROR.
#[test]
fn a_rotation_the_policy_refuses_is_403_naming_the_limit() {
    on_both(|work, server| {
        let token = work.token(&["-u", "alice", "-e", "1h"]);
        work.cli_ok(&["policy", "set", "--max-lifetime", "1d"]);
        let r = send(
            server,
            "POST",
            "/tokens/self/rotate?expire=30d",
            &[("authorization", &bearer(&token))],
            None,
        );
        assert_eq!(
            (r.status, &r.body["error"]),
            (403, &Value::from("forbidden")),
            "{r:?}"
        );
        let why = r.body["error_description"].to_string();
        assert!(why.contains("1d") || why.contains("lifetime"), "{why}");
        assert_eq!(hello(server, &bearer(&token)), 200, "not rotated");
        vec![r]
    });
}

// Finding 10: no limit on scopes (20,000 were accepted, a 920 KB record).
// Every path that creates a token refuses more than 64, naming the field.
#[test]
fn no_path_creates_a_token_with_more_than_64_scopes() {
    let many: Vec<String> = (0..65)
        .map(|i| format!("node:00000000-0000-4000-8000-{i:012x}:r"))
        .collect();
    // The CLI, on the file.
    let work = Workdir::new();
    let mut args = vec!["token", "-u", "alice", "-e", "1h"];
    for s in &many {
        args.extend(["-s", s.as_str()]);
    }
    let out = work.cli(&args);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--scope") && err.contains("at most 64"),
        "{err}"
    );
    // The admin socket of a running server, asked directly.
    let server = work.start(ServerKind::Axum);
    let client = pat_core::AdminClient::connect(pat_core::admin_socket_path(work.db()))
        .expect("the server's socket");
    let scopes: pat_core::Scopes = many.iter().map(|s| s.parse().unwrap()).collect();
    let new = pat_core::NewToken::new(
        "alice",
        pat_core::ExpiryPolicy::hard(std::time::Duration::from_secs(3600)),
    )
    .scopes(scopes);
    let e = pat_core::Admin::create(&client, &new, pat_core::Timestamp::now()).unwrap_err();
    assert!(e.to_string().contains("at most 64"), "{e}");
    drop(server);
    // The management API, on both servers.
    on_both(|work, server| {
        let alice = basic("alice", &work.token(&["-u", "alice", "-e", "1h"]));
        let body = serde_json::json!({"label": "x", "expire": "10m", "scopes": many}).to_string();
        let r = send(
            server,
            "POST",
            "/api/tokens",
            &[
                ("authorization", alice.as_str()),
                ("x-pat-csrf", "1"),
                ("content-type", "application/json"),
            ],
            Some(&body),
        );
        assert_eq!(r.status, 400, "{r:?}");
        assert!(
            r.body["error_description"].to_string().contains("`scopes`"),
            "{r:?}"
        );
        let listed = send(
            server,
            "GET",
            "/api/tokens",
            &[("authorization", alice.as_str())],
            None,
        );
        assert_eq!(listed.body["tokens"].as_array().map(Vec::len), Some(1));
        vec![r, listed]
    });
}
