//! The management API's iCalendar feed of expiry dates (issue 27,
//! GitLab's `personal_access_tokens.ics`) on both reference servers: one
//! event per live token that will expire, the listing's principal rule
//! (own tokens, an admin's `?user=`, a scoped token's family), and the
//! same feed from both frameworks.

use pat_integration_tests::{Server, ServerKind, Workdir, basic, client};

const NODE: &str = "0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";

fn feed(server: &Server, authorization: Option<&str>, query: &str) -> (u16, String, String) {
    let mut req = client().get(server.url(&format!("/api/tokens/expiries.ics{query}")));
    if let Some(authorization) = authorization {
        req = req.header("authorization", authorization);
    }
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    let headers = format!(
        "{}|{}",
        resp.headers()
            .get("content-type")
            .map_or("", |v| v.to_str().unwrap()),
        resp.headers()
            .get("cache-control")
            .map_or("", |v| v.to_str().unwrap()),
    );
    (status, headers, resp.text().expect("body"))
}

/// The events' `UID`s (the token ids), in order.
fn uids(ics: &str) -> Vec<String> {
    ics.split("\r\n")
        .filter_map(|l| l.strip_prefix("UID:pat-token-"))
        .map(str::to_owned)
        .collect()
}

fn session(kind: ServerKind) -> Vec<(u16, String)> {
    let work = Workdir::new();
    let server = Server::start(kind, &work.db(), &["--admin", "root"]);
    let (ci, ci_id) = work.create(&["-u", "alice", "-e", "30d", "-l", "ci"]);
    let (_, capped_id) = work.create(&["-u", "alice", "-a", "1h", "--max-lifetime", "60d"]);
    // Sliding without a cap: no date to put in a calendar.
    let (_, forever_id) = work.create(&["-u", "alice", "-a", "1h"]);
    let (scoped, scoped_id) =
        work.create(&["-u", "alice", "-e", "7d", "-s", &format!("node:{NODE}:r")]);
    let (bob, bob_id) = work.create(&["-u", "bob", "-e", "1d"]);
    let root = work.token(&["-u", "root", "-e", "1h"]);
    let mut seen = Vec::new();

    // Alice's own: her three tokens that will expire, not bob's.
    let (status, headers, ics) = feed(&server, Some(&format!("Bearer {ci}")), "");
    assert_eq!(status, 200, "{ics}");
    assert_eq!(headers, "text/calendar; charset=utf-8|no-store");
    assert!(
        ics.starts_with("BEGIN:VCALENDAR\r\n") && ics.ends_with("END:VCALENDAR\r\n"),
        "{ics}"
    );
    let mut listed = uids(&ics);
    listed.sort();
    let mut expected = vec![ci_id.clone(), capped_id, scoped_id.clone()];
    expected.sort();
    assert_eq!(listed, expected, "{ics}");
    assert!(
        !ics.contains(&forever_id) && !ics.contains(&bob_id),
        "{ics}"
    );
    assert!(ics.contains("SUMMARY:Your token “ci” expires\r\n"), "{ics}");
    assert!(!ics.contains(&ci[4..]), "a secret in the feed");
    // Without the moment it was made (DTSTAMP), the same on both servers.
    let stable = |ics: &str| {
        ics.split("\r\n")
            .filter(|l| !l.starts_with("DTSTAMP:"))
            .collect::<Vec<_>>()
            .len()
    };
    seen.push((status, format!("{} lines", stable(&ics))));

    // HTTP Basic, as a calendar application subscribes.
    assert_eq!(feed(&server, Some(&basic("alice", &ci)), "").0, 200);
    // Another user's: 403; an admin's `?user=`: theirs.
    let (status, _, body) = feed(&server, Some(&format!("Bearer {ci}")), "?user=bob");
    assert_eq!(status, 403, "{body}");
    seen.push((status, body));
    let (status, _, ics) = feed(&server, Some(&format!("Bearer {root}")), "?user=bob");
    assert_eq!((status, uids(&ics)), (200, vec![bob_id.clone()]), "{ics}");
    // A scoped token: only itself (and what it made).
    let (status, _, ics) = feed(&server, Some(&format!("Bearer {scoped}")), "");
    assert_eq!((status, uids(&ics)), (200, vec![scoped_id]), "{ics}");
    // A bad query names the parameter; no token: the layer's 401.
    let (status, _, body) = feed(&server, Some(&format!("Bearer {bob}")), "?format=json");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("`format`"), "{body}");
    seen.push((status, body));
    assert_eq!(feed(&server, None, "").0, 401);
    // Revoked: gone from the feed.
    work.cli_ok(&["token", "revoke", &ci_id]);
    let (_, _, ics) = feed(&server, Some(&format!("Bearer {root}")), "?user=alice");
    assert!(!uids(&ics).contains(&ci_id), "{ics}");
    assert!(server.stop());
    seen
}

#[test]
fn both_servers_serve_the_expiry_calendar_alike() {
    let answers: Vec<_> = ServerKind::ALL.into_iter().map(session).collect();
    assert_eq!(answers[0], answers[1]);
}
