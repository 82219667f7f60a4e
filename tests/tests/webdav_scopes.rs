//! Scoped tokens on the reference servers' WebDAV share (issue 10): a token
//! scoped to one folder reads (and, with `w`, changes) only that folder,
//! listings show only the way there, node ids survive MOVE and restarts, and
//! both servers answer every request alike. A real WebDAV client (rclone)
//! repeats the read-only case when it is installed.

use std::process::Command;

use pat_integration_tests::{Server, ServerKind, Workdir, basic, client, make_share_tree};
use reqwest::Method;
use reqwest::blocking::RequestBuilder;
use serde_json::Value;

struct Share {
    work: Workdir,
    root: std::path::PathBuf,
    admin: String,
}

impl Share {
    fn new() -> Share {
        let work = Workdir::new();
        let root = work.path().join("share");
        make_share_tree(&root);
        let admin = work.token(&["-u", "alice", "-e", "1h"]);
        Share { work, root, admin }
    }

    fn start(&self, kind: ServerKind) -> Server {
        Server::start(
            kind,
            &self.work.db(),
            &["--dav-root", self.root.to_str().unwrap()],
        )
    }

    fn token(&self, scope: &str) -> String {
        self.work.token(&["-u", "alice", "-e", "1h", "-s", scope])
    }
}

fn dav(server: &Server, method: &str, path: &str, token: &str) -> RequestBuilder {
    client()
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            server.url(path),
        )
        .header("authorization", basic("alice", token))
}

fn node(server: &Server, token: &str, path: &str) -> (u16, Option<String>) {
    let query: String = path
        .chars()
        .map(|c| match c {
            '%' | '&' | '+' | '#' | ' ' | '?' => format!("%{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect();
    let res = client()
        .get(server.url(&format!("/nodes/by-path?path={query}")))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .unwrap();
    let status = res.status().as_u16();
    let body = res.text().unwrap();
    let node = serde_json::from_str::<Value>(&body)
        .ok()
        .map(|v| v["node"].as_str().unwrap().to_owned());
    (status, node)
}

/// The hrefs of a `PROPFIND` with `Depth: 1`, or its status if not 207.
fn listing(server: &Server, path: &str, token: &str) -> Result<Vec<String>, u16> {
    let res = dav(server, "PROPFIND", path, token)
        .header("depth", "1")
        .send()
        .unwrap();
    if res.status().as_u16() != 207 {
        return Err(res.status().as_u16());
    }
    let body = res.text().unwrap();
    let mut hrefs: Vec<String> = body
        .split("<D:href>")
        .skip(1)
        .map(|s| s.split("</D:href>").next().unwrap().to_owned())
        .collect();
    hrefs.sort();
    Ok(hrefs)
}

fn status(b: RequestBuilder) -> u16 {
    b.send().unwrap().status().as_u16()
}

/// Every step the read-only token takes, as (what, status or listing).
fn read_only_steps(server: &Server, r: &str) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    let mut note = |what: &str, v: String| seen.push((what.to_owned(), v));
    let list = |p: &str| format!("{:?}", listing(server, p, r));
    note("list root", list("/dav/"));
    note("list projects", list("/dav/projects/"));
    note("list a", list("/dav/projects/a/"));
    note("list b", list("/dav/projects/b/"));
    for p in [
        "/dav/projects/a/readme.txt",
        "/dav/projects/a/sub/deep.txt",
        "/dav/projects/b/secret.txt",
        "/dav/other.txt",
        "/dav/projects/",
    ] {
        note(
            &format!("GET {p}"),
            status(dav(server, "GET", p, r)).to_string(),
        );
    }
    note(
        "PUT inside",
        status(dav(server, "PUT", "/dav/projects/a/new.txt", r).body("x")).to_string(),
    );
    note(
        "MKCOL inside",
        status(dav(server, "MKCOL", "/dav/projects/a/d/", r)).to_string(),
    );
    note(
        "DELETE inside",
        status(dav(server, "DELETE", "/dav/projects/a/readme.txt", r)).to_string(),
    );
    note(
        "SEARCH",
        status(dav(server, "SEARCH", "/dav/projects/a/", r)).to_string(),
    );
    note(
        "encoded way out",
        status(dav(server, "GET", "/dav/projects/a/%2e%2e/b/secret.txt", r)).to_string(),
    );
    seen
}

#[test]
fn a_read_only_token_sees_and_reads_only_its_folder() {
    let share = Share::new();
    let mut per_server = Vec::new();
    for kind in ServerKind::ALL {
        let server = share.start(kind);
        let (code, a) = node(&server, &share.admin, "/projects/a");
        assert_eq!(code, 200);
        let r = share.token(&format!("node:{}:r", a.unwrap()));
        let steps = read_only_steps(&server, &r);
        let get = |what: &str| steps.iter().find(|(w, _)| w == what).unwrap().1.clone();
        assert_eq!(
            get("list root"),
            r#"Ok(["/dav/", "/dav/projects/"])"#,
            "{kind:?}"
        );
        assert_eq!(
            get("list projects"),
            r#"Ok(["/dav/projects/", "/dav/projects/a/"])"#
        );
        assert_eq!(
            get("list a"),
            r#"Ok(["/dav/projects/a/", "/dav/projects/a/readme.txt", "/dav/projects/a/sub/"])"#
        );
        assert_eq!(get("list b"), "Err(403)");
        assert_eq!(get("GET /dav/projects/a/readme.txt"), "200");
        assert_eq!(get("GET /dav/projects/a/sub/deep.txt"), "200");
        for refused in [
            "GET /dav/projects/b/secret.txt",
            "GET /dav/other.txt",
            "GET /dav/projects/",
            "PUT inside",
            "MKCOL inside",
            "DELETE inside",
            "SEARCH",
            "encoded way out",
        ] {
            assert_eq!(get(refused), "403", "{kind:?}: {refused}");
        }
        assert!(share.root.join("projects/a/readme.txt").exists());
        assert!(!share.root.join("projects/a/new.txt").exists());
        // The unscoped token sees everything.
        let all = listing(&server, "/dav/", &share.admin).unwrap();
        assert!(all.contains(&"/dav/other.txt".to_owned()), "{all:?}");
        assert_eq!(
            status(dav(
                &server,
                "GET",
                "/dav/projects/b/secret.txt",
                &share.admin
            )),
            200
        );
        per_server.push(steps);
        assert!(server.stop());
    }
    assert_eq!(
        per_server[0], per_server[1],
        "the servers answer differently"
    );
}

#[test]
fn a_read_write_token_changes_only_its_folder_and_ids_follow_moves() {
    let share = Share::new();
    let mut per_server = Vec::new();
    for kind in ServerKind::ALL {
        let server = share.start(kind);
        let (_, a) = node(&server, &share.admin, "/projects/a");
        let rw = share.token(&format!("node:{}:rw", a.unwrap()));
        let file = format!("{kind:?}.txt");
        let mut steps = Vec::new();
        let mut step = |what: &str, s: u16| steps.push((what.to_owned(), s));
        step(
            "PUT inside",
            status(dav(&server, "PUT", &format!("/dav/projects/a/{file}"), &rw).body("hi")),
        );
        step(
            "PUT in b",
            status(dav(&server, "PUT", "/dav/projects/b/x.txt", &rw).body("x")),
        );
        step(
            "PUT at the root",
            status(dav(&server, "PUT", "/dav/x.txt", &rw).body("x")),
        );
        step(
            "MKCOL inside",
            status(dav(&server, "MKCOL", "/dav/projects/a/made/", &rw)),
        );
        let (_, before) = node(&server, &share.admin, &format!("/projects/a/{file}"));
        let moved_to = server.url(&format!("/dav/projects/a/made/{file}"));
        step(
            "MOVE inside",
            status(
                dav(&server, "MOVE", &format!("/dav/projects/a/{file}"), &rw)
                    .header("destination", &moved_to),
            ),
        );
        let (_, after) = node(&server, &share.admin, &format!("/projects/a/made/{file}"));
        assert!(before.is_some());
        assert_eq!(before, after, "{kind:?}: the id did not follow the move");
        step(
            "MOVE out",
            status(
                dav(
                    &server,
                    "MOVE",
                    &format!("/dav/projects/a/made/{file}"),
                    &rw,
                )
                .header("destination", server.url("/dav/projects/b/stolen.txt")),
            ),
        );
        step(
            "COPY in what it cannot read",
            status(
                dav(&server, "COPY", "/dav/projects/b/secret.txt", &rw)
                    .header("destination", server.url("/dav/projects/a/copy.txt")),
            ),
        );
        step(
            "MOVE without destination",
            status(dav(
                &server,
                "MOVE",
                &format!("/dav/projects/a/made/{file}"),
                &rw,
            )),
        );
        step(
            "DELETE made",
            status(dav(&server, "DELETE", "/dav/projects/a/made/", &rw)),
        );
        step(
            "DELETE b",
            status(dav(&server, "DELETE", "/dav/projects/b/", &rw)),
        );
        assert_eq!(
            steps.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            [201, 403, 403, 201, 201, 403, 403, 400, 204, 403],
            "{kind:?}: {steps:?}"
        );
        assert!(share.root.join("projects/b/secret.txt").exists());
        assert!(!share.root.join("projects/a/made").exists());
        per_server.push(steps);
        assert!(server.stop());
    }
    assert_eq!(per_server[0].len(), per_server[1].len());
}

#[test]
fn node_ids_survive_a_restart_and_moves_made_on_the_host() {
    let share = Share::new();
    let server = share.start(ServerKind::Axum);
    let (_, a) = node(&server, &share.admin, "/projects/a");
    let (_, deep) = node(&server, &share.admin, "/projects/a/sub/deep.txt");
    assert!(server.stop());
    // Renamed on the host while no server runs.
    std::fs::rename(
        share.root.join("projects/a/sub"),
        share.root.join("projects/a/moved"),
    )
    .unwrap();
    let server = share.start(ServerKind::Actix);
    assert_eq!(node(&server, &share.admin, "/projects/a").1, a);
    assert_eq!(
        node(&server, &share.admin, "/projects/a/moved/deep.txt").1,
        deep
    );
    // A token scoped to the moved file still reaches it at its new place.
    let r = share.token(&format!("node:{}:r", deep.unwrap()));
    assert_eq!(
        status(dav(&server, "GET", "/dav/projects/a/moved/deep.txt", &r)),
        200
    );
    assert_eq!(
        listing(&server, "/dav/projects/a/", &r),
        Ok(vec![
            "/dav/projects/a/".to_owned(),
            "/dav/projects/a/moved/".to_owned()
        ])
    );
    assert!(server.stop());
}

#[test]
fn nodes_by_path_answers_unscoped_tokens_only() {
    let share = Share::new();
    for kind in ServerKind::ALL {
        let server = share.start(kind);
        let (code, root) = node(&server, &share.admin, "/");
        assert_eq!(code, 200);
        let res = client()
            .get(server.url("/nodes/by-path?path=/projects/a/"))
            .header("authorization", format!("Bearer {}", share.admin))
            .send()
            .unwrap();
        let v: Value = serde_json::from_str(&res.text().unwrap()).unwrap();
        assert_eq!(v["path"], "/projects/a", "{kind:?}");
        let scoped = share.token(&format!("node:{}:rw", root.unwrap()));
        assert_eq!(node(&server, &scoped, "/projects").0, 403);
        assert_eq!(node(&server, &share.admin, "/missing").0, 404);
        for bad in ["projects", "/projects/../other.txt", ""] {
            assert_eq!(node(&server, &share.admin, bad).0, 400, "{kind:?} {bad:?}");
        }
        let res = client()
            .get(server.url("/nodes/by-path?path=/"))
            .send()
            .unwrap();
        assert_eq!(res.status(), 401);
        assert!(server.stop());
    }
}

#[test]
fn links_in_the_share_are_not_followed() {
    // Issue 8: a `dav -> /root-only` link let a read-only token read and write
    // root's files.
    let share = Share::new();
    let private = tempfile::tempdir().unwrap();
    std::fs::write(private.path().join("root-only.txt"), "private").unwrap();
    std::os::unix::fs::symlink(private.path(), share.root.join("projects/a/escape")).unwrap();
    for kind in ServerKind::ALL {
        let server = share.start(kind);
        let hrefs = listing(&server, "/dav/projects/a/", &share.admin).unwrap();
        assert!(
            !hrefs.iter().any(|h| h.contains("escape")),
            "{kind:?}: {hrefs:?}"
        );
        for (method, body) in [("GET", ""), ("PUT", "overwritten")] {
            let s = status(
                dav(
                    &server,
                    method,
                    "/dav/projects/a/escape/root-only.txt",
                    &share.admin,
                )
                .body(body.to_owned()),
            );
            assert_eq!(s, 403, "{kind:?} {method}");
        }
        assert!(server.stop());
    }
    assert_eq!(
        std::fs::read_to_string(private.path().join("root-only.txt")).unwrap(),
        "private"
    );
    // A share root that is itself a link is refused at start.
    let work = Workdir::new();
    work.token(&["-u", "alice", "-e", "1h"]);
    std::os::unix::fs::symlink(private.path(), work.path().join("dav")).unwrap();
    for kind in ServerKind::ALL {
        let (code, err) = Server::start_failing(kind, &work.db());
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("symbolic link"), "{err}");
    }
}

#[test]
fn rclone_lists_and_reads_only_the_scoped_folder() {
    let Ok(version) = Command::new("rclone").arg("version").output() else {
        eprintln!("skipped: rclone is not installed (apt-get install rclone)");
        return;
    };
    assert!(version.status.success());
    let share = Share::new();
    for kind in ServerKind::ALL {
        let server = share.start(kind);
        let (_, a) = node(&server, &share.admin, "/projects/a");
        let r = share.token(&format!("node:{}:r", a.unwrap()));
        let obscured = Command::new("rclone")
            .args(["obscure", &r])
            .output()
            .unwrap();
        let pass = String::from_utf8(obscured.stdout)
            .unwrap()
            .trim()
            .to_owned();
        let rclone = |args: &[&str]| {
            Command::new("rclone")
                .args(args)
                .env("RCLONE_CONFIG", "/dev/null")
                .env("RCLONE_CONFIG_PAT_TYPE", "webdav")
                .env("RCLONE_CONFIG_PAT_URL", server.url("/dav/"))
                .env("RCLONE_CONFIG_PAT_USER", "alice")
                .env("RCLONE_CONFIG_PAT_PASS", &pass)
                .output()
                .unwrap()
        };
        let out = rclone(&["lsf", "-R", "pat:"]);
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            listed.contains("projects/a/sub/deep.txt"),
            "{kind:?}: {listed}"
        );
        assert!(
            !listed.contains("other.txt") && !listed.contains("projects/b"),
            "{listed}"
        );
        let out = rclone(&["cat", "pat:projects/a/readme.txt"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "read me");
        let out = rclone(&["cat", "pat:other.txt"]);
        assert!(!out.status.success());
        let up = share.work.path().join(format!("up-{kind:?}.txt"));
        std::fs::write(&up, "upload").unwrap();
        let out = rclone(&["copyto", up.to_str().unwrap(), "pat:projects/a/up.txt"]);
        assert!(
            !out.status.success(),
            "{kind:?}: a read-only upload succeeded"
        );
        assert!(!share.root.join("projects/a/up.txt").exists());
        assert!(server.stop());
    }
}
