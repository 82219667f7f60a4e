//! Each token's last five client addresses (issue 26), on the real
//! reference servers: the peer, or the client a trusted proxy names, kept
//! with the buffered use and shown by `token show`, `/tokens/self` and the
//! management API; a spoofed `X-Forwarded-For` from an untrusted peer is not
//! recorded.

use pat_integration_tests::{Server, ServerKind, Workdir, client};
use serde_json::Value;

fn whoami(server: &Server, token: &str, headers: &[(&str, &str)]) -> u16 {
    let mut req = client().get(server.url("/whoami")).bearer_auth(token);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().expect("the request").status().as_u16()
}

/// The addresses as `token show --json` lists them.
fn addresses(work: &Workdir, id: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(&work.cli_ok(&["token", "show", id, "--json"])).unwrap();
    v["last_addresses"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| {
            assert!(s["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{s}");
            s["address"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn the_last_client_addresses_are_kept_and_shown() {
    let mut seen = Vec::new();
    for kind in ServerKind::ALL {
        let work = Workdir::new();
        let (token, id) = work.create(&["-u", "alice", "-e", "1h"]);
        // No proxy trusted: the peer, whatever the header says.
        let server = work.start(kind);
        assert_eq!(
            whoami(&server, &token, &[("x-forwarded-for", "203.0.113.66")]),
            200
        );
        assert!(server.stop());
        assert_eq!(addresses(&work, &id), ["127.0.0.1"], "{kind:?}");
        // Behind a trusted proxy: the clients it names, newest first.
        let server = Server::start(kind, &work.db(), &["--trusted-proxy", "127.0.0.0/8"]);
        for client in [
            "198.51.100.1",
            "198.51.100.2",
            "198.51.100.3",
            "198.51.100.4",
        ] {
            assert_eq!(whoami(&server, &token, &[("x-forwarded-for", client)]), 200);
            // A new second for each: the order is by time.
            std::thread::sleep(std::time::Duration::from_millis(1010));
        }
        assert_eq!(
            whoami(&server, &token, &[("forwarded", "for=\"[2001:db8::5]\"")]),
            200
        );
        // The buffered uses are what /tokens/self shows (itself a use from
        // the proxy, 127.0.0.1).
        let me: Value = serde_json::from_str(
            &client()
                .get(server.url("/tokens/self"))
                .bearer_auth(&token)
                .send()
                .unwrap()
                .text()
                .unwrap(),
        )
        .unwrap();
        let listed: Vec<&str> = me["last_addresses"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|s| s["address"].as_str().unwrap())
            .collect();
        let want = [
            "127.0.0.1",
            "2001:db8::5",
            "198.51.100.4",
            "198.51.100.3",
            "198.51.100.2",
        ];
        assert_eq!(listed, want, "{kind:?}: {me}");
        // Shown through the admin socket while the server runs, and from
        // the file once it stopped.
        assert_eq!(addresses(&work, &id), want, "{kind:?}");
        assert!(server.stop());
        assert_eq!(addresses(&work, &id), want, "{kind:?}");
        let shown = work.cli_ok(&["token", "show", &id]);
        assert!(shown.contains("\nlast from:  127.0.0.1 at "), "{shown}");
        assert!(shown.contains("\n            198.51.100.2 at "), "{shown}");
        seen.push(listed.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    }
    assert_eq!(seen[0], seen[1], "the servers recorded differently");
}
