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

/// A request: method, path, headers, and a body; the answer masked.
fn send(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Said {
    let (status, body) = unmasked(server, method, path, headers, body);
    Said {
        status,
        body: masked(body),
    }
}

/// A request, its answer as sent: status and JSON body (else the text).
fn unmasked(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
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
    (status, body)
}

/// Ids, times and secrets masked, at any depth.
fn masked(mut v: Value) -> Value {
    mask(&mut v);
    v
}

fn mask(v: &mut Value) {
    if let Value::String(text) = v {
        *text = masked_text(text);
    }
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
                    | "previous_secret_until"
                    | "latest_expires_at"
                    | "parent"
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

/// Times (RFC 3339, UTC) and token ids (16 hex digits) in a message
/// masked.
fn masked_text(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let time = b.len() >= i + 20
            && b[i..i + 4].iter().all(u8::is_ascii_digit)
            && b[i + 4] == b'-'
            && b[i + 10] == b'T'
            && b[i + 19] == b'Z';
        let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
        let id = (i == 0 || !hex(i - 1)) && (i..i + 16).all(hex) && !hex(i + 16);
        if time {
            out.push_str("TIME");
            i += 20;
        } else if id {
            out.push_str("ID");
            i += 16;
        } else {
            let c = text[i..].chars().next().expect("a char");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
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
    on_both_with(&["--introspector", "gateway"], session);
}

/// [`on_both`], the servers started with `args`.
fn on_both_with(args: &[&str], session: impl Fn(&Workdir, &Server) -> Vec<Said>) {
    let mut seen = Vec::new();
    for kind in [ServerKind::Axum, ServerKind::Actix] {
        let work = Workdir::new();
        let server = Server::start(kind, &work.db(), args);
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
        // Made before the policy, for longer than it now allows.
        let token = work.token(&["-u", "alice", "-e", "30d"]);
        work.cli_ok(&["policy", "set", "--max-lifetime", "1d"]);
        let r = send(
            server,
            "POST",
            "/tokens/self/rotate?expire=2d",
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
        // The message says by how many seconds: compared without it.
        vec![Said {
            status: r.status,
            body: r.body["error"].clone(),
        }]
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
    let scopes: pat_core::Scopes = many
        .iter()
        .map(|s| s.parse::<pat_core::Scope>().unwrap())
        .collect();
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

// Finding 10's twin: a label is at most 255 bytes on every path that
// creates a token, each with its kind of error.
#[test]
fn no_path_creates_a_token_with_a_label_over_255_bytes() {
    let long = "l".repeat(256);
    let work = Workdir::new();
    let out = work.cli(&["token", "-u", "alice", "-e", "1h", "-l", &long]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--label") && err.contains("255 bytes"),
        "{err}"
    );
    let server = work.start(ServerKind::Axum);
    let client = pat_core::AdminClient::connect(pat_core::admin_socket_path(work.db()))
        .expect("the server's socket");
    let new = pat_core::NewToken::new(
        "alice",
        pat_core::ExpiryPolicy::hard(std::time::Duration::from_secs(3600)),
    )
    .label(long.clone());
    let e = pat_core::Admin::create(&client, &new, pat_core::Timestamp::now()).unwrap_err();
    assert!(e.to_string().contains("255 bytes"), "{e}");
    drop(server);
    on_both(|work, server| {
        let alice = bearer(&work.token(&["-u", "alice", "-e", "1h"]));
        let body = serde_json::json!({"label": long, "expire": "10m"}).to_string();
        let r = send(
            server,
            "POST",
            "/api/tokens",
            &[
                ("authorization", alice.as_str()),
                ("content-type", "application/json"),
            ],
            Some(&body),
        );
        assert_eq!(r.status, 400, "{r:?}");
        assert!(
            r.body["error_description"].to_string().contains("`label`"),
            "{r:?}"
        );
        vec![r]
    });
}

/// Bytes written to `server` on one connection; what came back within
/// `wait` (the connection closed, or the wait ran out).
fn raw(server: &Server, request: &[u8], wait: std::time::Duration) -> (String, bool) {
    use std::io::{Read as _, Write as _};
    let addr = server.base().trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(wait)).unwrap();
    // The server may answer and close before the request is all written
    // (a 413 on the announced length): what it said is still to be read.
    let _ = conn.write_all(request);
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    let closed = loop {
        match conn.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// The status and JSON body of the first response in `raw`.
fn first_response(raw: &str) -> (u16, Value) {
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

// Finding 11: the servers differed where the contract says they answer
// alike (body limit 2 MB against 256 KB with different 413 bodies, a long
// query 414 against 400), /whoami had no `Cache-Control: no-store`.
#[test]
fn both_servers_bound_requests_alike() {
    use std::time::Duration;
    on_both(|work, server| {
        let mut said = Vec::new();
        let big = format!("[{}\"a\"]", "\"a\",".repeat(20_000));
        // Announced too large, and too large as it arrives (chunked).
        let announced = format!(
            "POST /tokens/report-leak HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{big}",
            big.len()
        );
        let chunked = format!(
            "POST /tokens/report-leak HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
            big.len()
        );
        for request in [announced, chunked] {
            let (got, closed) = raw(server, request.as_bytes(), Duration::from_secs(20));
            let (status, body) = first_response(&got);
            assert_eq!(status, 413, "{got}");
            assert!(closed, "the rest of the body is not read: {got}");
            said.push(Said { status, body });
        }
        // A request target over 8 KiB: the same JSON 414 from both.
        let token = work.token(&["-u", "alice", "-e", "1h"]);
        let query = format!("/hello?a={}", "x".repeat(10_000));
        let r = send(
            server,
            "GET",
            &query,
            &[("authorization", &bearer(&token))],
            None,
        );
        assert_eq!(r.status, 414, "{r:?}");
        said.push(r);
        // Past the `http` crate's 64 KiB URI limit the HTTP library refuses
        // it before any route (axum 414, actix 400): never an answer.
        let huge = format!(
            "GET /hello?a={} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n",
            "x".repeat(100_000)
        );
        let (got, _) = raw(server, huge.as_bytes(), Duration::from_secs(20));
        let (status, _) = first_response(&got);
        assert!(matches!(status, 400 | 414), "{got}");
        // /whoami is never cached.
        let resp = client()
            .get(server.url("/whoami"))
            .header("authorization", bearer(&token))
            .send()
            .unwrap();
        assert_eq!(
            resp.headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store")
        );
        said
    });
}

// Finding 8: no route had a body read timeout: a POST announcing 100 bytes
// and sending 1 held its connection for minutes on both servers. Nor may a
// request's head be sent forever.
#[test]
fn slow_clients_are_cut_off() {
    use std::time::{Duration, Instant};
    let run = |kind: ServerKind| {
        let work = Workdir::new();
        let server = work.start(kind);
        std::thread::scope(|s| {
            let body = s.spawn(|| {
                let start = Instant::now();
                let (got, closed) = raw(
                    &server,
                    b"POST /tokens/report-leak HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[",
                    Duration::from_secs(40),
                );
                (first_response(&got), closed, start.elapsed())
            });
            let head = s.spawn(|| {
                let start = Instant::now();
                let (_, closed) = raw(
                    &server,
                    b"GET /health HTTP/1.1\r\nHost: x\r\n",
                    Duration::from_secs(40),
                );
                (closed, start.elapsed())
            });
            let ((answer, closed, took), (head_closed, head_took)) =
                (body.join().unwrap(), head.join().unwrap());
            assert_eq!(answer.0, 408, "{kind:?}: {answer:?}");
            assert!(
                closed && took < Duration::from_secs(30),
                "{kind:?}: {took:?}"
            );
            assert!(
                head_closed && head_took < Duration::from_secs(30),
                "{kind:?}: {head_took:?}"
            );
            answer
        })
    };
    let (axum, actix) = std::thread::scope(|s| {
        let a = s.spawn(|| run(ServerKind::Axum));
        let b = s.spawn(|| run(ServerKind::Actix));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(axum, actix, "the servers answered differently");
}

// Finding 11: actix logged every malformed anonymous request at ERROR, a
// client's mistake filling the operator's log.
#[test]
fn client_mistakes_are_not_logged_as_errors() {
    use std::time::Duration;
    for kind in [ServerKind::Axum, ServerKind::Actix] {
        let work = Workdir::new();
        let log = work.path().join("server.log");
        let server = Server::start_logging(kind, &work.db(), &[], &log);
        for request in [
            format!(
                "GET /hello?a={} HTTP/1.1\r\nHost: x\r\n\r\n",
                "x".repeat(70_000)
            ),
            "GET /hello HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_owned(),
            "GET /hello HTTP/1.1\r\nHost: x\r\nAuthorization: Basic !!!\r\n\r\n".to_owned(),
        ] {
            raw(&server, request.as_bytes(), Duration::from_secs(10));
        }
        assert!(server.stop(), "{kind:?} stopped");
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(!logged.contains("ERROR"), "{kind:?} logged: {logged}");
    }
}

// Finding 7: the leak-report limiter counted per exact address (one IPv6
// /64 holds more than its table) and, full, refused every new reporter.
// Behind a proxy every reporter is one address: the client comes from the
// proxy's headers only when the server is told to trust it.
#[test]
fn leak_reports_are_limited_per_client_behind_a_trusted_proxy_only() {
    let report = |server: &Server, forwarded_for: &str| {
        send(
            server,
            "POST",
            "/tokens/report-leak",
            &[
                ("content-type", "application/json"),
                ("x-forwarded-for", forwarded_for),
            ],
            Some("[]"),
        )
    };
    let mut seen = Vec::new();
    for kind in [ServerKind::Axum, ServerKind::Actix] {
        let work = Workdir::new();
        let mut said = Vec::new();
        // Not trusted: the header is the client's own word, and ignored.
        let server = work.start(kind);
        for i in 0..10 {
            assert_eq!(report(&server, &format!("198.51.100.{i}")).status, 202);
        }
        let r = report(&server, "203.0.113.1");
        assert_eq!(
            r.status, 429,
            "{kind:?}: a made-up address got past the limit"
        );
        said.push(r);
        drop(server);
        // Trusted: each client behind the proxy has its own budget.
        let server = Server::start(kind, &work.db(), &["--trusted-proxy", "127.0.0.0/8"]);
        for _ in 0..10 {
            assert_eq!(report(&server, "198.51.100.7").status, 202);
        }
        let r = report(&server, "198.51.100.7");
        assert_eq!(r.status, 429, "{kind:?}");
        said.push(r);
        let r = report(&server, "198.51.100.8, 127.0.0.1");
        assert_eq!(r.status, 202, "{kind:?}: another client behind the proxy");
        said.push(r);
        // A client prepending its own entry gains nothing: the walk stops at
        // the first address the trusted proxy wrote.
        let r = report(&server, "203.0.113.9, 198.51.100.7");
        assert_eq!(r.status, 429, "{kind:?}");
        said.push(r);
        seen.push(said);
    }
    assert_eq!(seen[0], seen[1], "the servers answered differently");
}

// Issue 26: a token's address rule is checked against the connection's
// peer, and against a forwarding header only when the peer is a trusted
// proxy; a client that writes its own X-Forwarded-For or Forwarded gains
// nothing, and both servers answer alike.
#[test]
fn the_address_rule_reads_forwarding_headers_from_trusted_proxies_only() {
    // Status and challenge of `/whoami` with `auth` and the headers.
    let whoami = |server: &Server, auth: &str, headers: &[(&str, &str)]| {
        let mut req = client()
            .get(server.url("/whoami"))
            .header("authorization", auth);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().expect("the request");
        let challenge = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        (r.status().as_u16(), challenge)
    };
    let mut seen = Vec::new();
    for kind in [ServerKind::Axum, ServerKind::Actix] {
        let work = Workdir::new();
        let remote = work.token(&["-u", "alice", "-e", "1h", "--allow-from", "198.51.100.0/24"]);
        let local = work.token(&["-u", "alice", "-e", "1h", "--allow-from", "127.0.0.0/8"]);
        let v6 = work.token(&["-u", "alice", "-e", "1h", "--allow-from", "2001:db8::/32"]);
        let (remote, local, v6) = (bearer(&remote), bearer(&local), basic("alice", &v6));
        let xff = |v| [("x-forwarded-for", v)];
        let mut said = Vec::new();
        // No proxy trusted: the peer (127.0.0.1) is the client, whatever
        // the headers say.
        let server = work.start(kind);
        for (auth, headers, want) in [
            (&remote, &xff("198.51.100.7")[..], 401),
            (&remote, &[("forwarded", "for=198.51.100.7")][..], 401),
            (&local, &xff("203.0.113.1")[..], 200),
            (&local, &[][..], 200),
        ] {
            let answer = whoami(&server, auth, headers);
            assert_eq!(answer.0, want, "{kind:?} untrusted {headers:?}: {answer:?}");
            said.push(answer);
        }
        let refused = whoami(&server, &remote, &[]);
        let challenge = refused.1.clone().expect("a challenge");
        assert!(
            challenge.contains("error=\"invalid_token\"")
                && challenge.contains("may not be used from this address"),
            "{kind:?}: {challenge}"
        );
        drop(server);
        // 127.0.0.0/8 trusted: the client is the last address the proxy
        // did not write; a proxy's own request is from the proxy.
        let server = Server::start(kind, &work.db(), &["--trusted-proxy", "127.0.0.0/8"]);
        for (auth, headers, want) in [
            (&remote, &xff("198.51.100.7")[..], 200),
            (&remote, &xff("198.51.100.7, 127.0.0.1")[..], 200),
            (&remote, &xff("198.51.100.7, 203.0.113.9")[..], 401),
            (
                &remote,
                &[("forwarded", "for=198.51.100.7;proto=https")][..],
                200,
            ),
            (&remote, &[][..], 401),
            (&local, &xff("198.51.100.7")[..], 401),
            (&local, &[][..], 200),
            (&v6, &[("forwarded", "for=\"[2001:db8::1]:4711\"")][..], 200),
            (&v6, &xff("2001:db9::1")[..], 401),
            (&remote, &xff("not an address")[..], 401),
            // The proxy did not know the client: not the proxy's address
            // in its place (the attack review's finding).
            (&local, &xff("unknown")[..], 401),
            (&local, &[("forwarded", "for=unknown")][..], 401),
            (&remote, &xff("198.51.100.7:4711")[..], 200),
        ] {
            let answer = whoami(&server, auth, headers);
            assert_eq!(answer.0, want, "{kind:?} trusted {headers:?}: {answer:?}");
            said.push(answer);
        }
        // A client's element that is not UTF-8 hides nothing the proxy
        // appended after it.
        let raw = client()
            .get(server.url("/whoami"))
            .header("authorization", &local)
            .header(
                "forwarded",
                reqwest::header::HeaderValue::from_bytes(b"for=\"\xff\", for=203.0.113.9").unwrap(),
            )
            .send()
            .expect("the request");
        assert_eq!(raw.status().as_u16(), 401, "{kind:?}");
        said.push((raw.status().as_u16(), None));
        drop(server);
        // Told the proxies write X-Forwarded-For only: a Forwarded the
        // client sent through them is not read.
        let server = Server::start(
            kind,
            &work.db(),
            &[
                "--trusted-proxy",
                "127.0.0.1",
                "--proxy-header",
                "x-forwarded-for",
            ],
        );
        for (auth, headers, want) in [
            (&remote, &[("forwarded", "for=198.51.100.7")][..], 401),
            (
                &remote,
                &[
                    ("forwarded", "for=203.0.113.1"),
                    ("x-forwarded-for", "198.51.100.7"),
                ][..],
                200,
            ),
        ] {
            let answer = whoami(&server, auth, headers);
            assert_eq!(
                answer.0, want,
                "{kind:?} x-forwarded-for {headers:?}: {answer:?}"
            );
            said.push(answer);
        }
        drop(server);
        // A proxy header without a proxy to trust reads nothing: refused
        // at start-up, naming the flag it needs.
        let (code, stderr) =
            Server::start_failing_with(kind, &work.db(), &["--proxy-header", "x-forwarded-for"]);
        assert_eq!(code, Some(2), "{kind:?}: {stderr}");
        assert!(stderr.contains("--trusted-proxy"), "{kind:?}: {stderr}");
        seen.push(said);
    }
    assert_eq!(seen[0], seen[1], "the servers answered differently");
}

// Issue 26: a token's rate limit. Past its burst the next use is 429 with
// Retry-After and the IETF RateLimit-Policy / RateLimit fields, on both
// servers alike, for Bearer and Basic; a token made with it may not have a
// higher one.
#[test]
fn a_rate_limited_token_is_429_past_its_burst_on_both_servers() {
    let mut seen = Vec::new();
    for kind in [ServerKind::Axum, ServerKind::Actix] {
        let work = Workdir::new();
        let limited = work.token(&["-u", "alice", "-e", "1h", "--rate", "3/m"]);
        let open = work.token(&["-u", "alice", "-e", "1h"]);
        let server = work.start(kind);
        let whoami = |auth: &str| {
            let r = client()
                .get(server.url("/whoami"))
                .header("authorization", auth)
                .send()
                .expect("the request");
            let field = |name: &str| {
                r.headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
            };
            let fields = (
                field("retry-after"),
                field("ratelimit-policy"),
                field("ratelimit"),
                field("www-authenticate"),
            );
            (r.status().as_u16(), fields)
        };
        let mut said = Vec::new();
        for auth in [bearer(&limited), basic("alice", &limited), bearer(&limited)] {
            let (status, _) = whoami(&auth);
            assert_eq!(status, 200, "{kind:?}");
        }
        for auth in [bearer(&limited), basic("alice", &limited)] {
            let (status, (retry, policy, now, challenge)) = whoami(&auth);
            assert_eq!(status, 429, "{kind:?}");
            let retry: u32 = retry.expect("Retry-After").parse().unwrap();
            assert!((1..=20).contains(&retry), "{kind:?}: {retry}");
            assert_eq!(policy.as_deref(), Some("\"token\";q=3;w=60"), "{kind:?}");
            assert_eq!(
                now.as_deref(),
                Some(format!("\"token\";r=0;t={retry}").as_str()),
                "{kind:?}"
            );
            assert_eq!(challenge, None, "{kind:?}: the credentials are fine");
            said.push(status);
        }
        for _ in 0..10 {
            assert_eq!(
                whoami(&bearer(&open)).0,
                200,
                "{kind:?}: no limit, no count"
            );
        }
        // What a request of it shows, and the management API's rule.
        let (status, me) = api(&server, "GET", "/tokens/self", &open, None);
        assert_eq!((status, &me["rate"]), (200, &Value::Null));
        let child = |rate: &str| {
            let body = format!(r#"{{"label": "child", "expire": "5m", "rate": "{rate}"}}"#);
            api(
                &server,
                "POST",
                "/api/tokens",
                &limited_after_wait(&work),
                Some(&body),
            )
        };
        let (status, body) = child("4/m");
        assert_eq!(status, 403, "{kind:?}: {body}");
        assert!(text(&body, "error_description").contains("3/m"), "{body}");
        let (status, body) = child("1/m");
        assert_eq!((status, text(&body, "rate")), (201, "1/m"), "{kind:?}");
        seen.push(said);
    }
    assert_eq!(seen[0], seen[1], "the servers answered differently");
}

/// A fresh token limited to 3/m (the test's own one is used up).
fn limited_after_wait(work: &Workdir) -> String {
    work.token(&["-u", "alice", "-e", "1h", "--rate", "3/m"])
}

const NODE: &str = "0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";
const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

/// A JSON request with a Bearer token (which needs no CSRF header).
fn api(server: &Server, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, Value) {
    let auth = bearer(token);
    unmasked(
        server,
        method,
        path,
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        body,
    )
}

/// The id of the token `secret` is.
fn id_of(server: &Server, secret: &str) -> String {
    let (status, me) = api(server, "GET", "/tokens/self", secret, None);
    assert_eq!(status, 200, "{me}");
    me["id"].as_str().expect("an id").to_owned()
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no `{key}` in {v}"))
}

/// Waits (up to 15 s: the servers flush every second) until `done`.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

// Finding 1: a rotation left earlier secrets in their grace, and the grace
// had no bound: with S1 rotated to S2 under `grace=36500d` and the owner
// rotating again to S3, S1 worked until 2126 and could rotate again,
// killing the owner's S3. `token show` did not say an old secret was live.
#[test]
fn a_rotation_ends_earlier_graces_and_a_replayed_secret_revokes_the_token() {
    on_both(|work, server| {
        let mut said = Vec::new();
        let s1 = work.token(&["-u", "alice", "-e", "1d"]);
        let id = id_of(server, &s1);
        let (status, r) = api(
            server,
            "POST",
            "/tokens/self/rotate?grace=36500d",
            &s1,
            None,
        );
        assert_eq!(status, 200, "{r}");
        let s2 = text(&r, "token").to_owned();
        // The grace asked for is capped at a day (RFC 3339 compares as text).
        let day =
            pat_core::Timestamp::now().saturating_add(DAY + std::time::Duration::from_secs(60));
        assert!(
            text(&r, "previous_secret_retires_at") <= day.to_string().as_str(),
            "{r}"
        );
        // The live old secret is shown: /tokens/self, token show.
        let (_, me) = api(server, "GET", "/tokens/self", &s2, None);
        assert_eq!(
            me["previous_secret_until"], r["previous_secret_retires_at"],
            "{me}"
        );
        let shown = work.cli_ok(&["token", "show", &id]);
        assert!(shown.contains("old secret: still works until"), "{shown}");
        // S1 in its grace authenticates, but acts on no token.
        assert_eq!(hello(server, &bearer(&s1)), 200);
        for (method, path, body) in [
            ("POST", "/tokens/self/rotate", None),
            ("DELETE", "/tokens/self", None),
            (
                "POST",
                "/api/tokens",
                Some(r#"{"label": "x", "expire": "10m"}"#),
            ),
        ] {
            let auth = bearer(&s1);
            let r = send(
                server,
                method,
                path,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                body,
            );
            assert_eq!(
                r.status, 403,
                "{method} {path} with a secret in its grace: {r:?}"
            );
            said.push(r);
        }
        // The owner rotates without a grace: S1's ends too.
        let s3 = work
            .cli_ok(&["token", "rotate", &id, "-q"])
            .trim()
            .to_owned();
        assert_eq!(hello(server, &bearer(&s3)), 200);
        assert_eq!(hello(server, &bearer(&s2)), 401, "S2 had no grace");
        // S1 again: refused, and a replay after its grace revokes the token
        // (a thief may hold S3 too): refused at once, revoked by the flush.
        assert_eq!(hello(server, &bearer(&s1)), 401);
        assert_eq!(hello(server, &bearer(&s3)), 401);
        eventually("the revocation to be written", || {
            !work.cli(&["token", "show", &id]).status.success()
        });
        let log = work.cli_ok(&["audit", "-u", "alice"]);
        assert!(log.contains("replayed_secret"), "{log}");
        assert!(log.contains("reuse detection"), "{log}");
        said
    });
}

// Finding 1, with `policy set --on-reuse refuse`: the replay is refused and
// logged, the token lives on, and the replayed secret can do nothing.
#[test]
fn with_refuse_a_replayed_secret_is_only_refused() {
    on_both(|work, server| {
        let mut said = Vec::new();
        work.cli_ok(&["policy", "set", "--on-reuse", "refuse"]);
        let s1 = work.token(&["-u", "alice", "-e", "1d"]);
        let (status, r) = api(server, "POST", "/tokens/self/rotate", &s1, None);
        assert_eq!(status, 200, "{r}");
        let s2 = text(&r, "token").to_owned();
        assert_eq!(hello(server, &bearer(&s1)), 401);
        let again = send(
            server,
            "POST",
            "/tokens/self/rotate",
            &[("authorization", &bearer(&s1))],
            None,
        );
        assert_eq!(again.status, 401);
        said.push(again);
        assert_eq!(hello(server, &bearer(&s2)), 200, "the token lives on");
        said
    });
}

// Finding 2: a child minted for 10 minutes rotated itself with
// `expire=36500d` and lived a century; `auto=1m` dropped a sliding token's
// cap; every rotation restarted the clock.
#[test]
fn self_rotation_never_lengthens_a_token() {
    on_both_with(&["--admin", "root"], |work, server| {
        let mut said = Vec::new();
        let login = work.token(&["-u", "alice", "-e", "1h", "-l", "login"]);
        let login_id = id_of(server, &login);
        let (status, child) = api(
            server,
            "POST",
            "/api/tokens",
            &login,
            Some(r#"{"label": "child", "expire": "10m"}"#),
        );
        assert_eq!(status, 201, "{child}");
        assert_eq!(text(&child, "parent"), login_id);
        let secret = text(&child, "token").to_owned();
        for query in ["expire=36500d", "expire=11m", "auto=1h"] {
            let r = send(
                server,
                "POST",
                &format!("/tokens/self/rotate?{query}"),
                &[("authorization", &bearer(&secret))],
                None,
            );
            assert_eq!(r.status, 403, "{query}: {r:?}");
            let why = r.body["error_description"].to_string();
            let asked = query.split('=').nth(1).unwrap();
            assert!(why.contains("10m") && why.contains(asked), "{r:?}");
            said.push(r);
        }
        // Its own duration again: fine, and never past its parent.
        let (status, r) = api(server, "POST", "/tokens/self/rotate", &secret, None);
        assert_eq!(status, 200, "{r}");
        let (_, parent) = api(server, "GET", "/tokens/self", &login, None);
        assert!(
            text(&r, "latest_expires_at") <= text(&parent, "expires_at"),
            "{r}"
        );
        // Hard to sliding: it still ends by now + 10m.
        let secret = text(&r, "token").to_owned();
        let (status, r) = api(server, "POST", "/tokens/self/rotate?auto=1m", &secret, None);
        assert_eq!(status, 200, "{r}");
        let ten = pat_core::Timestamp::now().saturating_add(std::time::Duration::from_secs(601));
        assert!(
            text(&r, "latest_expires_at") <= ten.to_string().as_str(),
            "{r}"
        );

        // A sliding token capped at 10m keeps its cap through `auto=1m`.
        let (status, capped) = api(
            server,
            "POST",
            "/api/tokens",
            &login,
            Some(r#"{"label": "capped", "auto": "5m", "max_lifetime": "10m"}"#),
        );
        assert_eq!(status, 201, "{capped}");
        let (status, r) = api(
            server,
            "POST",
            "/tokens/self/rotate?auto=1m",
            text(&capped, "token"),
            None,
        );
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["max_lifetime_seconds"], 600, "{r}");
        assert_eq!(
            r["latest_expires_at"], capped["latest_expires_at"],
            "counted from the first issue"
        );

        // A root token renews itself, within the policy counted from its
        // first issue.
        work.cli_ok(&["policy", "set", "--max-lifetime", "1d"]);
        let root = work.token(&["-u", "bob", "-e", "1d"]);
        // A second later, its own day from now ends past the first issue's.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let r = send(
            server,
            "POST",
            "/tokens/self/rotate",
            &[("authorization", &bearer(&root))],
            None,
        );
        assert_eq!(r.status, 403, "{r:?}");
        // (Not compared: the message says by how many seconds.)
        assert!(
            r.body["error_description"].to_string().contains("1d"),
            "{r:?}"
        );
        let (status, r) = api(
            server,
            "POST",
            "/tokens/self/rotate?expire=12h",
            &root,
            None,
        );
        assert_eq!(status, 200, "{r}");
        said
    });
}

// Finding 4: a token scoped `node:…:r` listed every token of its user and
// revoked the unscoped ones; an admin's read-only scoped token listed and
// created for any user.
#[test]
fn a_scoped_token_manages_only_its_own_family() {
    on_both_with(&["--admin", "root"], |work, server| {
        let mut said = Vec::new();
        let laptop = work.token(&["-u", "alice", "-e", "1h", "-l", "laptop"]);
        let laptop_id = id_of(server, &laptop);
        let scope = format!("node:{NODE}:r");
        let reader = work.token(&["-u", "alice", "-e", "1h", "-l", "reader", "-s", &scope]);
        let labels = |token: &str| -> (u16, Vec<String>) {
            let (status, list) = api(server, "GET", "/api/tokens", token, None);
            let mut labels: Vec<String> = list["tokens"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .map(|t| t["label"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            labels.sort();
            (status, labels)
        };
        assert_eq!(labels(&reader), (200, vec!["reader".to_owned()]));
        assert_eq!(
            labels(&laptop),
            (200, vec!["laptop".to_owned(), "reader".to_owned()])
        );
        let r = send(
            server,
            "DELETE",
            &format!("/api/tokens/{laptop_id}"),
            &[("authorization", &bearer(&reader))],
            None,
        );
        assert_eq!(r.status, 403, "{r:?}");
        said.push(r);
        assert_eq!(hello(server, &bearer(&laptop)), 200);
        // It makes tokens within its scopes, and manages those.
        let body = format!(r#"{{"label": "sub", "expire": "10m", "scopes": ["{scope}"]}}"#);
        let (status, sub) = api(server, "POST", "/api/tokens", &reader, Some(&body));
        assert_eq!(status, 201, "{sub}");
        assert_eq!(
            labels(&reader),
            (200, vec!["reader".to_owned(), "sub".to_owned()])
        );
        let (status, gone) = api(
            server,
            "DELETE",
            &format!("/api/tokens/{}", text(&sub, "id")),
            &reader,
            None,
        );
        assert_eq!(status, 200, "{gone}");

        // An admin's scoped token has no admin powers.
        let root_reader = work.token(&["-u", "root", "-e", "1h", "-s", &scope]);
        let r = send(
            server,
            "GET",
            "/api/tokens?user=alice",
            &[("authorization", &bearer(&root_reader))],
            None,
        );
        assert_eq!(r.status, 403, "{r:?}");
        said.push(r);
        let body =
            format!(r#"{{"user": "alice", "label": "x", "expire": "10m", "scopes": ["{scope}"]}}"#);
        let r = send(
            server,
            "POST",
            "/api/tokens",
            &[
                ("authorization", &bearer(&root_reader)),
                ("content-type", "application/json"),
            ],
            Some(&body),
        );
        assert_eq!(r.status, 403, "{r:?}");
        said.push(r);
        let (status, own) = api(server, "GET", "/api/tokens", &root_reader, None);
        assert_eq!(
            (status, &own["principal"]["admin"]),
            (200, &Value::Bool(false)),
            "{own}"
        );
        let root = work.token(&["-u", "root", "-e", "1h"]);
        let (status, _) = api(server, "GET", "/api/tokens?user=alice", &root, None);
        assert_eq!(status, 200, "an unscoped admin token may");
        said
    });
}

// Finding 6: a token minted through the API was audited as `user NAME`, not
// as the token that minted it, and kept working after that token was
// revoked.
#[test]
fn a_minted_token_is_audited_as_made_by_its_parent_and_dies_with_it() {
    on_both_with(&["--admin", "root"], |work, server| {
        let mut said = Vec::new();
        let login = work.token(&["-u", "alice", "-e", "1h", "-l", "login"]);
        let login_id = id_of(server, &login);
        // Each shorter than the one before: a child may not outlive its
        // parent, even by the second between two requests.
        let mint = |token: &str, label: &str, expire: &str| {
            let body = format!(r#"{{"label": "{label}", "expire": "{expire}"}}"#);
            let (status, made) = api(server, "POST", "/api/tokens", token, Some(&body));
            assert_eq!(status, 201, "{made}");
            (
                text(&made, "id").to_owned(),
                text(&made, "token").to_owned(),
            )
        };
        let (child_id, child) = mint(&login, "minted", "30m");
        let (grand_id, grand) = mint(&child, "grand", "10m");
        let log: Value =
            serde_json::from_str(&work.cli_ok(&["audit", "-u", "alice", "--json"])).unwrap();
        let creator = |id: &str| {
            log.as_array()
                .unwrap()
                .iter()
                .find(|e| e["action"] == "create" && e["token_id"] == id)
                .map(|e| e["actor"].as_str().unwrap().to_owned())
        };
        assert_eq!(creator(&child_id), Some(format!("token {login_id}")));
        assert_eq!(creator(&grand_id), Some(format!("token {child_id}")));
        // Revoking the login takes both with it, in one go, each audited.
        let root = work.token(&["-u", "root", "-e", "1h"]);
        let (status, r) = api(
            server,
            "DELETE",
            &format!("/api/tokens/{login_id}"),
            &root,
            None,
        );
        assert_eq!(
            (status, &r["revoked_descendants"]),
            (200, &Value::from(2)),
            "{r}"
        );
        said.push(Said {
            status,
            body: masked(r),
        });
        for t in [&child, &grand] {
            assert_eq!(hello(server, &bearer(t)), 401);
        }
        let log = work.cli_ok(&["audit", "-u", "alice"]);
        assert_eq!(
            log.matches(&format!("parent revoked ({login_id})")).count(),
            2,
            "{log}"
        );
        // The CLI says how many went with it.
        let login = work.token(&["-u", "alice", "-e", "1h", "-l", "login2"]);
        let login_id = id_of(server, &login);
        mint(&login, "minted2", "30m");
        assert_eq!(
            work.cli_ok(&["token", "revoke", &login_id]),
            format!("revoked {login_id} (alice, \"login2\") and 1 token made with it\n")
        );
        said
    });
}

// Issue 26: the routes that disable and enable tokens, in their first
// commit, as an attacker would try them: a cross-site form, a request a
// browser could send by itself without the header, another user's ids, a
// narrower token acting on what it did not make, the owner undoing an
// admin's disabling, a disabled token acting at all, bodies too large or
// too slow.
#[test]
fn suspension_routes_hold_against_attackers() {
    use std::time::{Duration, Instant};
    on_both_with(&["--admin", "root"], |work, server| {
        let mut said = Vec::new();
        let alice_login = work.token(&["-u", "alice", "-e", "1h", "-l", "login"]);
        let alice = basic("alice", &alice_login);
        let target = work.token(&["-u", "alice", "-e", "1h", "-l", "target"]);
        let scoped = work.token(&[
            "-u",
            "alice",
            "-e",
            "1h",
            "-l",
            "scoped",
            "-s",
            "node:0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a:r",
        ]);
        let bob = work.token(&["-u", "bob", "-e", "1h", "-l", "bob"]);
        let root = bearer(&work.token(&["-u", "root", "-e", "1h", "-l", "root"]));
        let target_id = id_of(server, &target);
        let bob_id = id_of(server, &bob);
        let disable = |id: &str| format!("/api/tokens/{id}/disable");
        let enable = |id: &str| format!("/api/tokens/{id}/enable");
        let csrf = ("x-pat-csrf", "1");

        // A cross-site form, with or without the header: refused, nothing
        // changed.
        for headers in [
            vec![
                ("authorization", alice.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
                ("sec-fetch-site", "cross-site"),
            ],
            vec![
                ("authorization", alice.as_str()),
                ("sec-fetch-site", "cross-site"),
                csrf,
            ],
            // Basic without the header: a browser could send it by itself.
            vec![("authorization", alice.as_str())],
        ] {
            let r = send(server, "POST", &disable(&target_id), &headers, None);
            assert_eq!(r.status, 403, "{headers:?}: {r:?}");
            said.push(r);
        }
        assert_eq!(hello(server, &bearer(&target)), 200, "still enabled");
        // Another user's id is as if absent; a bad id is named.
        let r = send(
            server,
            "POST",
            &disable(&bob_id),
            &[("authorization", alice.as_str()), csrf],
            None,
        );
        assert_eq!(r.status, 404, "{r:?}");
        said.push(r);
        assert_eq!(hello(server, &bearer(&bob)), 200);
        let r = send(
            server,
            "POST",
            &disable("nope"),
            &[("authorization", alice.as_str()), csrf],
            None,
        );
        assert_eq!(r.status, 400, "{r:?}");
        said.push(r);
        // A scoped token may act on itself and what it made only.
        let r = send(
            server,
            "POST",
            &disable(&target_id),
            &[("authorization", &bearer(&scoped))],
            None,
        );
        assert_eq!(r.status, 403, "{r:?}");
        said.push(r);
        // A body is refused, too large or too slow or at all.
        let r = send(
            server,
            "POST",
            &disable(&target_id),
            &[("authorization", &bearer(&alice_login))],
            Some("{}"),
        );
        assert_eq!(r.status, 400, "{r:?}");
        said.push(r);
        // Announced too large: refused before the body is read (a client
        // writing the whole body could see the connection closed under it).
        let (got, closed) = raw(
            server,
            format!(
                "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice_login}\r\n\
                 Content-Length: {}\r\n\r\n[",
                disable(&target_id),
                2 << 20
            )
            .as_bytes(),
            Duration::from_secs(20),
        );
        let (status, body) = first_response(&got);
        assert_eq!(status, 413, "{got}");
        assert!(closed, "the rest of the body is not read: {got}");
        said.push(Said {
            status,
            body: masked(body),
        });
        let start = Instant::now();
        let (got, closed) = raw(
            server,
            format!(
                "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice_login}\r\n\
                 Content-Length: 100\r\n\r\n[",
                disable(&target_id)
            )
            .as_bytes(),
            Duration::from_secs(40),
        );
        let (status, _) = first_response(&got);
        assert_eq!(status, 408, "{got}");
        assert!(closed && start.elapsed() < Duration::from_secs(30));
        assert_eq!(hello(server, &bearer(&target)), 200, "still enabled");

        // The owner disables its own token: refused at once.
        let r = send(
            server,
            "POST",
            &disable(&target_id),
            &[("authorization", &bearer(&alice_login))],
            None,
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            (&r.body["status"], &r.body["changed"], &r.body["disabled"]),
            (
                &Value::from("disabled"),
                &Value::from(1),
                &Value::from(true)
            )
        );
        said.push(r);
        assert_eq!(hello(server, &bearer(&target)), 401);
        // The disabled token cannot act, not even to enable itself.
        let r = send(
            server,
            "POST",
            &enable(&target_id),
            &[("authorization", &bearer(&target))],
            None,
        );
        assert_eq!(r.status, 401, "{r:?}");
        // Nor may the owner undo it: an admin's disabling looks the same.
        let r = send(
            server,
            "POST",
            &enable(&target_id),
            &[("authorization", &bearer(&alice_login))],
            None,
        );
        assert_eq!(r.status, 403, "{r:?}");
        said.push(r);
        assert_eq!(hello(server, &bearer(&target)), 401);
        // An admin may, and it works at once.
        let r = send(
            server,
            "POST",
            &enable(&target_id),
            &[("authorization", root.as_str())],
            None,
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            (&r.body["status"], &r.body["changed"]),
            (&Value::from("active"), &Value::from(1))
        );
        said.push(r);
        assert_eq!(hello(server, &bearer(&target)), 200);
        // An admin may disable anyone's; listed as disabled.
        let r = send(
            server,
            "POST",
            &disable(&bob_id),
            &[("authorization", root.as_str())],
            None,
        );
        assert_eq!(r.status, 200, "{r:?}");
        said.push(r);
        assert_eq!(hello(server, &bearer(&bob)), 401);
        let list = send(
            server,
            "GET",
            "/api/tokens?user=bob",
            &[("authorization", root.as_str())],
            None,
        );
        assert_eq!(list.body["tokens"][0]["status"], "disabled", "{list:?}");
        said.push(list);
        said
    });
}
