//! Hostile `Authorization` headers, and the frameworks' own limits, sent as
//! raw bytes over TCP to both reference servers: every row gets the expected
//! status and challenges, the two servers answer alike, nothing is a 500, and
//! both servers are still up at the end.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use pat_integration_tests::{ServerKind, Workdir};

/// What a response showed.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    /// The `error="…"` of the Bearer challenge, `""` for a challenge without
    /// one, `None` for no challenge.
    error: Option<String>,
}

/// Sends `head` (request line and headers, without the final blank line)
/// and reads the status and challenge.
fn send(base: &str, head: &[u8]) -> Answer {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = head.to_vec();
    req.extend_from_slice(b"\r\n\r\n");
    // A server may answer and close before reading all of a huge request.
    let _ = s.write_all(&req);
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
        if raw.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let error = text
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("www-authenticate: bearer")
        })
        .map(|l| match l.split("error=\"").nth(1) {
            Some(rest) => rest.split('"').next().unwrap_or("").to_owned(),
            None => String::new(),
        });
    Answer { status, error }
}

fn get(auth: &[&[u8]]) -> Vec<u8> {
    let mut req = b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close".to_vec();
    for a in auth {
        req.extend_from_slice(b"\r\nAuthorization: ");
        req.extend_from_slice(a);
    }
    req
}

fn basic(raw: &[u8]) -> Vec<u8> {
    let mut v = b"Basic ".to_vec();
    v.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(raw)
            .as_bytes(),
    );
    v
}

/// One row: what is sent and what must come back (`error`: `Some("")` for a
/// challenge without an error).
struct Row {
    name: &'static str,
    head: Vec<u8>,
    status: &'static [u16],
    error: Option<&'static str>,
}

fn rows(token: &str) -> Vec<Row> {
    let t = token.as_bytes();
    let bearer = |v: &[u8]| {
        let mut b = b"Bearer ".to_vec();
        b.extend_from_slice(v);
        b
    };
    let cat = |parts: &[&[u8]]| parts.concat();
    let mut flipped = t.to_vec();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let unknown = pat_core::TokenSecret::generate();
    let unknown = unknown.expose_secret().as_bytes().to_vec();
    let row = |name, auth: Vec<Vec<u8>>, status, error| Row {
        name,
        head: get(&auth.iter().map(Vec::as_slice).collect::<Vec<_>>()),
        status,
        error,
    };
    const OK: &[u16] = &[200];
    const DENIED: &[u16] = &[401];
    const BAD: &[u16] = &[400];
    let invalid_token = Some("invalid_token");
    let invalid_request = Some("invalid_request");
    let no_error = Some("");
    let big = |n: usize| vec![b'a'; n];
    let mut rows = vec![
        row("no header", vec![], DENIED, no_error),
        row("valid bearer", vec![bearer(t)], OK, None),
        row("lowercase scheme", vec![cat(&[b"bearer ", t])], OK, None),
        row("uppercase scheme", vec![cat(&[b"BEARER ", t])], OK, None),
        row("tab after scheme", vec![cat(&[b"Bearer\t", t])], OK, None),
        row("many spaces", vec![cat(&[b"Bearer      ", t])], OK, None),
        row(
            "trailing spaces",
            vec![cat(&[b"Bearer ", t, b"   "])],
            OK,
            None,
        ),
        row(
            "scheme only",
            vec![b"Bearer".to_vec()],
            BAD,
            invalid_request,
        ),
        row(
            "scheme and spaces",
            vec![b"Bearer    ".to_vec()],
            BAD,
            invalid_request,
        ),
        row("prefix only", vec![bearer(b"pat_")], DENIED, invalid_token),
        row("truncated", vec![bearer(&t[..30])], DENIED, invalid_token),
        row(
            "one char more",
            vec![bearer(&cat(&[t, b"x"]))],
            DENIED,
            invalid_token,
        ),
        row(
            "checksum off",
            vec![bearer(&flipped)],
            DENIED,
            invalid_token,
        ),
        row(
            "unknown token",
            vec![bearer(&unknown)],
            DENIED,
            invalid_token,
        ),
        row(
            "token and more words",
            vec![bearer(&cat(&[t, b" extra"]))],
            DENIED,
            invalid_token,
        ),
        row(
            "token and a comma",
            vec![bearer(&cat(&[t, b","]))],
            DENIED,
            invalid_token,
        ),
        row(
            "quoted token",
            vec![bearer(&cat(&[b"\"", t, b"\""]))],
            DENIED,
            invalid_token,
        ),
        row(
            "foreign bearer",
            vec![bearer(b"ghp_0123456789abcdef")],
            DENIED,
            invalid_token,
        ),
        row(
            "jwt-looking bearer",
            vec![bearer(b"eyJhbGciOi.eyJzdWIi.c2ln")],
            DENIED,
            invalid_token,
        ),
        row(
            "latin-1 byte in bearer",
            vec![bearer(b"pat_\xe9t\xe9")],
            BAD,
            invalid_request,
        ),
        row(
            "bearer at the limit",
            vec![bearer(&big(4089))],
            DENIED,
            invalid_token,
        ),
        row(
            "bearer over the limit",
            vec![bearer(&big(4090))],
            BAD,
            invalid_request,
        ),
        row("basic, valid", vec![basic(&cat(&[b"alice:", t]))], OK, None),
        row(
            "basic, lowercase",
            vec![cat(&[b"basic ", &basic(&cat(&[b"alice:", t]))[6..]])],
            OK,
            None,
        ),
        row(
            "basic, wrong user",
            vec![basic(&cat(&[b"mallory:", t]))],
            DENIED,
            invalid_token,
        ),
        row(
            "basic, empty user",
            vec![basic(&cat(&[b":", t]))],
            DENIED,
            invalid_token,
        ),
        row(
            "basic, unicode user",
            vec![basic(&cat(&["alïce:".as_bytes(), t]))],
            DENIED,
            invalid_token,
        ),
        row(
            "basic, plain password",
            vec![basic(b"alice:hunter2")],
            DENIED,
            invalid_token,
        ),
        row(
            "basic, token and more",
            vec![basic(&cat(&[b"alice:", t, b":x"]))],
            DENIED,
            invalid_token,
        ),
        row(
            "basic, no colon",
            vec![basic(b"alice")],
            BAD,
            invalid_request,
        ),
        row(
            "basic, empty",
            vec![b"Basic".to_vec()],
            BAD,
            invalid_request,
        ),
        row(
            "basic, bad base64",
            vec![b"Basic @@@@".to_vec()],
            BAD,
            invalid_request,
        ),
        row(
            "basic, unpadded",
            vec![b"Basic YWxpY2U6eA".to_vec()],
            BAD,
            invalid_request,
        ),
        row(
            "basic, base64 with a space",
            vec![b"Basic YWxp Y2U6eA==".to_vec()],
            BAD,
            invalid_request,
        ),
        row(
            "basic, not UTF-8 inside",
            vec![basic(b"al\xffce:x")],
            BAD,
            invalid_request,
        ),
        row(
            "basic, NUL inside",
            vec![basic(&cat(&[b"alice\0:", t]))],
            DENIED,
            invalid_token,
        ),
        row(
            "two bearers",
            vec![bearer(t), bearer(t)],
            BAD,
            invalid_request,
        ),
        row(
            "bearer and digest",
            vec![bearer(t), b"Digest username=\"a\"".to_vec()],
            BAD,
            invalid_request,
        ),
        row(
            "two foreign schemes",
            vec![b"Digest a=1".to_vec(), b"Negotiate YII=".to_vec()],
            DENIED,
            no_error,
        ),
        row(
            "negotiate, 5 KB",
            vec![cat(&[b"Negotiate ", &big(5000)])],
            DENIED,
            no_error,
        ),
        row(
            "digest, latin-1",
            vec![b"Digest username=\"j\xf6rg\"".to_vec()],
            DENIED,
            no_error,
        ),
        row(
            "unknown scheme",
            vec![cat(&[b"Token ", t])],
            DENIED,
            no_error,
        ),
        row(
            "scheme glued to token",
            vec![cat(&[b"Bearer", t])],
            DENIED,
            no_error,
        ),
        row("token alone", vec![t.to_vec()], DENIED, no_error),
        row("empty value", vec![b"".to_vec()], DENIED, no_error),
    ];
    // The frameworks' own limits: a 128 KiB header, 95 extra headers.
    let mut huge = get(&[&bearer(t)]);
    huge.extend_from_slice(b"\r\nX-Big: ");
    huge.extend(big(128 * 1024));
    rows.push(Row {
        name: "128 KiB header",
        head: huge,
        status: &[400, 431],
        error: None,
    });
    let mut many = get(&[&bearer(t)]);
    for i in 0..95 {
        many.extend_from_slice(format!("\r\nX-Extra-{i}: {i}").as_bytes());
    }
    rows.push(Row {
        name: "95 extra headers",
        head: many,
        status: &[400, 431],
        error: None,
    });
    rows
}

#[test]
fn hostile_headers_get_the_same_clear_answers_from_both_servers() {
    let work = Workdir::new();
    let token = work.token(&["-u", "alice", "-e", "1h"]);
    let rows = rows(&token);
    assert!(rows.len() >= 40);
    let mut answers = Vec::new();
    for kind in ServerKind::ALL {
        let server = work.start(kind);
        let seen: Vec<Answer> = rows.iter().map(|r| send(server.base(), &r.head)).collect();
        for (r, a) in rows.iter().zip(&seen) {
            assert!(
                r.status.contains(&a.status),
                "{kind:?}, {}: status {} not in {:?}",
                r.name,
                a.status,
                r.status
            );
            if r.status.iter().all(|s| *s == 400 || *s == 401) && r.error.is_some() {
                assert_eq!(a.error.as_deref(), r.error, "{kind:?}, {}", r.name);
            }
        }
        // Still serving after all of it.
        assert_eq!(
            send(server.base(), &get(&[format!("Bearer {token}").as_bytes()])).status,
            200
        );
        assert!(server.stop(), "{kind:?} did not stop cleanly");
        answers.push(seen);
    }
    for ((r, a), b) in rows.iter().zip(&answers[0]).zip(&answers[1]) {
        assert_eq!(a, b, "the servers differ on {}", r.name);
    }
}

/// HEAD is GET without the body (RFC 9110 §9.3.2): axum answers it on
/// every GET route by itself, and the actix-web server does the same, so
/// that a monitor or a client probing with HEAD gets one answer from
/// either.
#[test]
fn head_requests_get_the_same_answers_from_both_servers() {
    let work = Workdir::new();
    let token = work.token(&["-u", "alice", "-e", "1h"]);
    let client = pat_integration_tests::client();
    let mut answers = Vec::new();
    for kind in ServerKind::ALL {
        let server = work.start(kind);
        let mut seen = Vec::new();
        for (path, auth) in [
            ("/health", false),
            ("/hello", true),
            ("/hello", false),
            ("/whoami", true),
            ("/api/tokens", true),
            ("/tokens/self", true),
        ] {
            let mut req = client.head(server.url(path));
            if auth {
                req = req.bearer_auth(&token);
            }
            let res = req.send().unwrap();
            let status = res.status().as_u16();
            let challenge = res.headers().contains_key("www-authenticate");
            let body = res.bytes().unwrap();
            assert!(body.is_empty(), "{kind:?} HEAD {path}: a body");
            seen.push((path, auth, status, challenge));
        }
        assert!(server.stop(), "{kind:?} did not stop cleanly");
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1], "the servers differ");
    assert_eq!(answers[0][0].2, 200, "{:?}", answers[0]);
    assert_eq!(answers[0][1].2, 200, "{:?}", answers[0]);
    assert_eq!((answers[0][2].2, answers[0][2].3), (401, true));
}
