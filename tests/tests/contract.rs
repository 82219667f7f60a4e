//! The reference servers' HTTP contract, checked over real sockets with the
//! real CLI creating tokens on the same store. Every case runs against every
//! server, and the servers must answer each case identically.

use std::time::Duration;

use pat_core::{Admin as _, ExpiryPolicy, NewToken, Store, Timestamp};
use pat_integration_tests::contract::{Case, NODE, Seen, Tokens, cases};
use pat_integration_tests::{ServerKind, Workdir, basic, client};
use reqwest::Method;
use reqwest::blocking::Response;
use serde_json::Value;

fn setup() -> (Workdir, Tokens) {
    let work = Workdir::new();
    let full = work.token(&["-u", "alice", "-e", "1h"]);
    let read_only = work.token(&["-u", "alice", "-a", "10m", "-s", &format!("node:{NODE}:r")]);
    let created: Value =
        serde_json::from_str(&work.cli_ok(&["token", "-u", "alice", "-e", "1h", "--json"]))
            .unwrap();
    let revoked = created["token"].as_str().unwrap().to_owned();
    work.cli_ok(&["token", "revoke", created["id"].as_str().unwrap()]);
    // The servers' catalog, as they declare it when they start; a token of
    // one of its permissions, made with the CLI.
    for (name, implies) in [
        ("demo:read", None),
        ("demo:write", Some("demo:read")),
        ("demo:admin", Some("demo:write")),
    ] {
        let mut args = vec!["scopes", "define", name];
        if let Some(implied) = implies {
            args.extend(["--implies", implied]);
        }
        work.cli_ok(&args);
    }
    let demo_reader = work.token(&["-u", "alice", "-e", "1h", "-s", "demo:read"]);
    // An expired token: created two hours ago with a one-hour limit.
    let expired = {
        let store = Store::open(work.db()).unwrap();
        let two_hours_ago =
            Timestamp::from_unix_secs(Timestamp::now().as_unix_secs() - 7200).unwrap();
        let new = NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(3600)));
        store
            .create(&new, two_hours_ago)
            .unwrap()
            .secret
            .expose_secret()
            .to_owned()
    };
    (
        work,
        Tokens {
            full,
            read_only,
            expired,
            revoked,
            demo_reader,
        },
    )
}

fn send(base: &str, c: &Case) -> Response {
    let method = Method::from_bytes(c.method.as_str().as_bytes()).unwrap();
    let mut req = client().request(method, format!("{base}{}", c.path));
    if let Some(a) = &c.authorization {
        req = req.header("authorization", a);
    }
    req.send().unwrap()
}

fn seen(res: Response) -> Seen {
    let challenges = res
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    Seen {
        status: res.status().as_u16(),
        challenges,
        body: res.text().unwrap(),
    }
}

#[test]
fn every_server_keeps_the_contract_identically() {
    let (work, tokens) = setup();
    let cases = cases(&tokens);
    let mut answers: Vec<(ServerKind, Vec<Seen>)> = Vec::new();
    for kind in ServerKind::ALL {
        let server = work.start(kind);
        let mut seen_all = Vec::new();
        for c in &cases {
            let s = seen(send(server.base(), c));
            c.check(&s, &format!("{kind:?}"));
            seen_all.push(s);
        }
        assert!(server.stop(), "{kind:?} did not exit cleanly on SIGTERM");
        answers.push((kind, seen_all));
    }
    for pair in answers.windows(2) {
        let ((a, sa), (b, sb)) = (&pair[0], &pair[1]);
        for ((c, x), y) in cases.iter().zip(sa).zip(sb) {
            assert_eq!(x, y, "{a:?} and {b:?} differ on {}", c.name);
        }
    }
}

#[test]
fn whoami_reports_the_identity() {
    let (work, tokens) = setup();
    for kind in ServerKind::ALL {
        let server = work.start(kind);
        let res = client()
            .get(server.url("/whoami"))
            .header("authorization", format!("Bearer {}", tokens.read_only))
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let v: Value = serde_json::from_str(&res.text().unwrap()).unwrap();
        assert_eq!(v["user"], "alice", "{kind:?}");
        assert_eq!(v["scopes"], serde_json::json!([format!("node:{NODE}:r")]));
        // Named permissions as the token carries them (issue 24).
        let named = client()
            .get(server.url("/whoami"))
            .header("authorization", format!("Bearer {}", tokens.demo_reader))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let named: Value = serde_json::from_str(&named).unwrap();
        assert_eq!(
            named["scopes"],
            serde_json::json!(["demo:read"]),
            "{kind:?}"
        );
        assert_eq!(v["token_id"].as_str().unwrap().len(), 16);
        // A sliding token: the use moved its expiry to about now + 10 minutes.
        let expires =
            pat_core::Timestamp::from_unix_secs(std::time::UNIX_EPOCH.elapsed().unwrap().as_secs())
                .unwrap();
        let parsed = v["expires_at"].as_str().unwrap();
        assert!(parsed > expires.to_string().as_str(), "{parsed}");
        assert!(server.stop());
    }
}

#[test]
fn realm_flag_sets_the_challenges() {
    let work = Workdir::new();
    for kind in ServerKind::ALL {
        let server = pat_integration_tests::Server::start(kind, &work.db(), &["--realm", "files"]);
        let res = client().get(server.url("/hello")).send().unwrap();
        let values: Vec<_> = res.headers().get_all("www-authenticate").iter().collect();
        assert_eq!(values[0], "Bearer realm=\"files\"", "{kind:?}");
        assert!(server.stop());
    }
}

#[test]
fn uses_are_written_on_graceful_shutdown() {
    let (work, tokens) = setup();
    for kind in ServerKind::ALL {
        let server = work.start(kind);
        let res = client()
            .get(server.url("/hello"))
            .header("authorization", format!("Bearer {}", tokens.full))
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(server.stop(), "{kind:?}");
        let listed: Value =
            serde_json::from_str(&work.cli_ok(&["token", "list", "--json"])).unwrap();
        let used = listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["last_used_at"].is_string())
            .count();
        assert!(used >= 1, "{kind:?}: {listed}");
    }
}

mod webdav {
    use super::*;

    fn dav(
        server: &pat_integration_tests::Server,
        method: &str,
        path: &str,
        auth: &str,
    ) -> reqwest::blocking::RequestBuilder {
        client()
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                server.url(path),
            )
            .header("authorization", auth)
    }

    #[test]
    fn a_webdav_client_works_with_user_and_token() {
        let (work, tokens) = setup();
        for kind in ServerKind::ALL {
            let root = work.path().join(format!("dav-{kind:?}"));
            std::fs::create_dir_all(&root).unwrap();
            let server = pat_integration_tests::Server::start(
                kind,
                &work.db(),
                &["--dav-root", root.to_str().unwrap()],
            );
            let auth = basic("alice", &tokens.full);

            let res = dav(&server, "PROPFIND", "/dav/", &auth)
                .header("depth", "1")
                .send()
                .unwrap();
            assert_eq!(res.status(), 207, "{kind:?} PROPFIND");
            assert!(res.text().unwrap().contains("<D:href>/dav/</D:href>"));

            let res = dav(&server, "MKCOL", "/dav/docs/", &auth).send().unwrap();
            assert_eq!(res.status(), 201, "{kind:?} MKCOL");
            let res = dav(&server, "PUT", "/dav/docs/a.txt", &auth)
                .body("hello dav")
                .send()
                .unwrap();
            assert!(res.status().is_success(), "{kind:?} PUT {}", res.status());
            assert_eq!(
                std::fs::read_to_string(root.join("docs/a.txt")).unwrap(),
                "hello dav"
            );
            let res = dav(&server, "GET", "/dav/docs/a.txt", &auth)
                .send()
                .unwrap();
            assert_eq!(res.text().unwrap(), "hello dav");

            let res = dav(&server, "PROPFIND", "/dav/docs/", &auth)
                .header("depth", "1")
                .send()
                .unwrap();
            assert_eq!(res.status(), 207);
            assert!(res.text().unwrap().contains("/dav/docs/a.txt"));

            let res = dav(&server, "MOVE", "/dav/docs/a.txt", &auth)
                .header("destination", server.url("/dav/docs/b.txt"))
                .send()
                .unwrap();
            assert!(res.status().is_success(), "{kind:?} MOVE {}", res.status());
            assert!(root.join("docs/b.txt").exists() && !root.join("docs/a.txt").exists());
            let res = dav(&server, "DELETE", "/dav/docs/b.txt", &auth)
                .send()
                .unwrap();
            assert!(
                res.status().is_success(),
                "{kind:?} DELETE {}",
                res.status()
            );
            assert!(!root.join("docs/b.txt").exists());

            // Without a valid token, nothing: the share answers with challenges.
            let res = dav(&server, "PROPFIND", "/dav/", &basic("alice", "hunter2"))
                .send()
                .unwrap();
            assert_eq!(res.status(), 401);
            let res = client()
                .request(
                    Method::from_bytes(b"PROPFIND").unwrap(),
                    server.url("/dav/"),
                )
                .send()
                .unwrap();
            assert_eq!(res.status(), 401);
            assert!(
                res.headers()
                    .get_all("www-authenticate")
                    .iter()
                    .any(|v| v.to_str().unwrap().starts_with("Basic "))
            );
            assert!(server.stop());
        }
    }
}

/// Issue 29: `/whoami` answers the identity as pat-core serializes it
/// (the `serde` feature), the same on both servers: the token's id, user,
/// scopes and deadline as `pat-cli` prints them.
#[test]
fn whoami_is_the_serialized_identity() {
    let work = Workdir::new();
    let created: serde_json::Value = serde_json::from_str(&work.cli_ok(&[
        "token",
        "-u",
        "alice",
        "-e",
        "1h",
        "-s",
        &format!("node:{NODE}:r"),
        "--json",
    ]))
    .unwrap();
    let expected = serde_json::json!({
        "user": "alice",
        "token_id": created["id"],
        "scopes": [format!("node:{NODE}:r")],
        "expires_at": created["expires_at"],
        "meta": {},
    });
    for kind in ServerKind::ALL {
        let server = work.start(kind);
        let res = client()
            .get(server.url("/whoami"))
            .header(
                "authorization",
                format!("Bearer {}", created["token"].as_str().unwrap()),
            )
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = serde_json::from_str(&res.text().unwrap()).unwrap();
        assert_eq!(body, expected, "{kind:?}");
        assert!(server.stop());
    }
}
