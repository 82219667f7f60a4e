//! The token management API (`/api/tokens`) and the panel page (`/ui/tokens`)
//! through both reference servers (real processes, a real HTTP client): own
//! versus other users' tokens, admins, the escalation rule, the CSRF
//! defence, validation errors with the CLI's messages, the store's policy,
//! `no-store`. Both servers must answer every request alike.

use pat_integration_tests::{Server, ServerKind, Workdir, basic, client};
use serde_json::{Value, json};

const NODE: &str = "0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";
const OTHER: &str = "1b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";

/// One answer: status and body.
struct Said {
    status: u16,
    body: Value,
}

struct Api<'a> {
    server: &'a Server,
    /// What was seen, ids and times masked, to compare the two servers.
    seen: Vec<(u16, String)>,
}

impl Api<'_> {
    fn call(
        &mut self,
        method: &str,
        path: &str,
        auth: &str,
        csrf: bool,
        extra: &[(&str, &str)],
        body: Option<&str>,
    ) -> Said {
        let url = self.server.url(&format!("/api/tokens{path}"));
        let mut req = client().request(method.parse().unwrap(), url);
        req = req.header("authorization", auth);
        if csrf {
            req = req.header("x-pat-csrf", "1");
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        if status != 401 {
            assert_eq!(
                resp.headers()
                    .get("cache-control")
                    .map(|v| v.to_str().unwrap()),
                Some("no-store"),
                "{method} {path}"
            );
        }
        let text = resp.text().unwrap();
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        self.seen.push((status, masked(&body)));
        Said { status, body }
    }

    fn list(&mut self, auth: &str, query: &str) -> Said {
        self.call("GET", query, auth, false, &[], None)
    }

    fn create(&mut self, auth: &str, body: Value) -> Said {
        self.call("POST", "", auth, true, &[], Some(&body.to_string()))
    }

    fn revoke(&mut self, auth: &str, id: &str) -> Said {
        self.call("DELETE", &format!("/{id}"), auth, true, &[], None)
    }
}

/// The body with what differs between runs (ids, times, secrets) masked.
fn masked(v: &Value) -> String {
    let mut v = v.clone();
    fn mask(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, x) in map.iter_mut() {
                    if matches!(
                        k.as_str(),
                        "id" | "token"
                            | "created_at"
                            | "expires_at"
                            | "last_used_at"
                            | "rotated_at"
                            | "parent"
                            | "previous_secret_until"
                            | "latest_expires_at"
                            | "at"
                    ) && !x.is_null()
                    {
                        *x = json!("…");
                    } else {
                        mask(x);
                    }
                }
            }
            Value::Array(list) => list.iter_mut().for_each(mask),
            _ => {}
        }
    }
    mask(&mut v);
    // Tokens created in the same second list in id order, which is random.
    if let Some(tokens) = v.get_mut("tokens").and_then(Value::as_array_mut) {
        tokens.sort_by_key(|t| (t["label"].to_string(), t["scopes"].to_string()));
    }
    let s = v.to_string();
    // Deadlines in error messages are times too.
    let re_time = |s: &str| {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("20") {
            let candidate = &rest[i..];
            if candidate.len() >= 20
                && candidate.as_bytes()[4] == b'-'
                && candidate.as_bytes()[19] == b'Z'
            {
                out.push_str(&rest[..i]);
                out.push_str("TIME");
                rest = &candidate[20..];
            } else {
                out.push_str(&rest[..i + 2]);
                rest = &candidate[2..];
            }
        }
        out.push_str(rest);
        out
    };
    re_time(&s)
}

fn ids(list: &Said) -> Vec<String> {
    list.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

fn description(said: &Said) -> &str {
    said.body["error_description"].as_str().unwrap_or_default()
}

fn session(kind: ServerKind) -> Vec<(u16, String)> {
    let work = Workdir::new();
    let server = Server::start(kind, &work.db(), &["--admin", "root"]);
    let alice = basic(
        "alice",
        &work.token(&["-u", "alice", "-e", "1h", "-l", "login"]),
    );
    let bob_token = work.token(&["-u", "bob", "-e", "1h", "-l", "bob's"]);
    let bob = basic("bob", &bob_token);
    let root = basic("root", &work.token(&["-u", "root", "-e", "30d"]));
    let scoped = format!(
        "Bearer {}",
        work.token(&["-u", "alice", "-e", "1h", "-s", &format!("node:{NODE}:r")])
    );
    let mut api = Api {
        server: &server,
        seen: Vec::new(),
    };

    // Own tokens: alice sees hers, with a status, and never a secret.
    let mine = api.list(&alice, "");
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(
        mine.body["principal"],
        json!({"user": "alice", "admin": false})
    );
    assert_eq!(mine.body["user"], "alice");
    assert_eq!(ids(&mine).len(), 2);
    assert_eq!(mine.body["tokens"][0]["status"], "active");
    assert!(mine.body["tokens"][0].get("token").is_none());
    // Not bob's: 403 for a list, 404 for a token of his.
    let theirs = api.list(&alice, "?user=bob");
    assert_eq!(theirs.status, 403);
    assert!(description(&theirs).contains("only an admin"));
    let bobs = ids(&api.list(&bob, ""));
    assert_eq!(api.revoke(&alice, &bobs[0]).status, 404);
    let refused = api.create(
        &alice,
        json!({"user": "bob", "label": "x", "expire": "10m"}),
    );
    assert_eq!(refused.status, 403);
    // An admin sees and manages anyone's.
    let as_root = api.list(&root, "?user=bob");
    assert_eq!((as_root.status, ids(&as_root)), (200, bobs.clone()));
    assert_eq!(as_root.body["principal"]["admin"], true);
    let for_bob = api.create(
        &root,
        json!({"user": "bob", "label": "made for bob", "expire": "7d"}),
    );
    assert_eq!(for_bob.status, 201, "{}", for_bob.body);
    assert_eq!(for_bob.body["user"], "bob");

    // Create: 201, the secret once, and it works at once.
    let created = api.create(
        &alice,
        json!({"label": "ci", "auto": "10m", "max_lifetime": "30m"}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = created.body["token"].as_str().unwrap().to_owned();
    assert_eq!(created.body["expiry"], "sliding");
    assert_eq!(created.body["auto_refresh_seconds"], 600);
    let whoami = client()
        .get(server.url("/whoami"))
        .bearer_auth(&secret)
        .send()
        .unwrap();
    assert_eq!(whoami.status().as_u16(), 200);
    let listed = api.list(&alice, "");
    assert_eq!(ids(&listed).len(), 3);
    assert!(!listed.body.to_string().contains(&secret[4..]));
    // The audit log says who: the token alice authenticated with, whose
    // child the new token is.
    let login = listed.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "login")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(created.body["parent"], login.as_str());
    let audit = work.cli_ok(&["audit", "-u", "alice"]);
    assert!(audit.contains(&format!("token {login}")), "{audit}");

    // Metadata (issue 26): kept, listed, and handed back by /whoami; a bad
    // one is a 400 naming the field.
    let tagged = api.create(
        &alice,
        json!({"label": "tagged", "expire": "10m", "meta": {"team": "payments"}}),
    );
    assert_eq!(tagged.status, 201, "{}", tagged.body);
    assert_eq!(tagged.body["meta"], json!({"team": "payments"}));
    let who: Value = serde_json::from_str(
        &client()
            .get(server.url("/whoami"))
            .bearer_auth(tagged.body["token"].as_str().unwrap())
            .send()
            .unwrap()
            .text()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(who["meta"], json!({"team": "payments"}), "{who}");
    for meta in [
        json!("team=payments"),
        json!({"team": 1}),
        json!({"bad key": "x"}),
    ] {
        let said = api.create(&alice, json!({"label": "x", "expire": "10m", "meta": meta}));
        assert_eq!(said.status, 400, "{meta}");
        assert!(description(&said).contains("`meta`"), "{}", said.body);
    }
    assert_eq!(
        api.revoke(&alice, tagged.body["id"].as_str().unwrap())
            .status,
        200
    );

    // The address rule (issue 26): kept and shown; from 127.0.0.1 the
    // token works only if a network holds it; a child of a ruled token may
    // narrow the rule, never widen it, and without one inherits it.
    let whoami = |secret: &str| {
        client()
            .get(server.url("/whoami"))
            .bearer_auth(secret)
            .send()
            .unwrap()
    };
    let here = api.create(
        &alice,
        json!({"label": "here", "expire": "10m", "allow_from": ["127.0.0.0/8", "::1"]}),
    );
    assert_eq!(here.status, 201, "{}", here.body);
    assert_eq!(here.body["allow_from"], json!(["127.0.0.0/8", "::1/128"]));
    let here_secret = here.body["token"].as_str().unwrap().to_owned();
    assert_eq!(whoami(&here_secret).status().as_u16(), 200);
    let elsewhere = api.create(
        &alice,
        json!({"label": "elsewhere", "expire": "10m", "allow_from": ["192.0.2.0/24"]}),
    );
    assert_eq!(elsewhere.status, 201, "{}", elsewhere.body);
    let refused = whoami(elsewhere.body["token"].as_str().unwrap());
    assert_eq!(refused.status().as_u16(), 401);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert!(
        challenge.contains("may not be used from this address"),
        "{challenge}"
    );
    let ruled = format!("Bearer {here_secret}");
    let wider = api.create(
        &ruled,
        json!({"label": "wider", "expire": "5m", "allow_from": ["0.0.0.0/0"]}),
    );
    assert_eq!(wider.status, 403, "{}", wider.body);
    assert!(description(&wider).contains("0.0.0.0/0"), "{}", wider.body);
    let inherits = api.create(&ruled, json!({"label": "child", "expire": "5m"}));
    assert_eq!(inherits.status, 201, "{}", inherits.body);
    assert_eq!(
        inherits.body["allow_from"],
        json!(["127.0.0.0/8", "::1/128"])
    );
    let narrower = api.create(
        &ruled,
        json!({"label": "narrower", "expire": "5m", "allow_from": ["127.0.0.1"]}),
    );
    assert_eq!(narrower.status, 201, "{}", narrower.body);
    for networks in [
        json!("127.0.0.1"),
        json!([1]),
        json!(["127.0.0.1/40"]),
        json!(["localhost"]),
        json!((0..17).map(|i| format!("10.0.0.{i}")).collect::<Vec<_>>()),
    ] {
        let said = api.create(
            &alice,
            json!({"label": "x", "expire": "10m", "allow_from": networks}),
        );
        assert_eq!(said.status, 400, "{networks}");
        assert!(description(&said).contains("`allow_from`"), "{}", said.body);
    }
    // A rate limit (issue 26): kept and shown; a bad one is a 400 naming
    // the field.
    let limited = api.create(
        &alice,
        json!({"label": "limited", "expire": "10m", "rate": "5/s"}),
    );
    assert_eq!(limited.status, 201, "{}", limited.body);
    assert_eq!(limited.body["rate"], "5/s");
    for rate in [json!("5"), json!(5), json!("0/s"), json!("5/d")] {
        let said = api.create(&alice, json!({"label": "x", "expire": "10m", "rate": rate}));
        assert_eq!(said.status, 400, "{rate}");
        assert!(description(&said).contains("`rate`"), "{}", said.body);
    }
    // A use quota (issue 26): spent by each accepted use, shown, and no
    // child gets more uses than its parent has left.
    let counted = api.create(
        &alice,
        json!({"label": "counted", "expire": "10m", "max_uses": 4}),
    );
    assert_eq!(counted.status, 201, "{}", counted.body);
    assert_eq!(
        (&counted.body["max_uses"], &counted.body["uses"]),
        (&json!(4), &json!(0))
    );
    let counted_auth = format!("Bearer {}", counted.body["token"].as_str().unwrap());
    // Each create below is itself a use of the parent.
    let greedy = api.create(
        &counted_auth,
        json!({"label": "greedy", "expire": "5m", "max_uses": 5}),
    );
    assert_eq!(greedy.status, 403, "{}", greedy.body);
    assert!(
        description(&greedy).contains("more than the token it is made with has left (3)"),
        "{}",
        greedy.body
    );
    // The child's use is drawn from the parent's: 2 left, 1 once it is
    // made, so the family has no more uses in all than the parent had.
    let heir = api.create(
        &counted_auth,
        json!({"label": "heir", "expire": "5m", "max_uses": 1}),
    );
    assert_eq!(heir.status, 201, "{}", heir.body);
    assert_eq!(heir.body["max_uses"], 1);
    let whoami_with = |auth: &str| {
        client()
            .get(server.url("/whoami"))
            .header("authorization", auth)
            .send()
            .unwrap()
    };
    assert_eq!(whoami_with(&counted_auth).status().as_u16(), 200);
    let spent = whoami_with(&counted_auth);
    assert_eq!(spent.status().as_u16(), 401);
    let challenge = spent.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("no uses left"), "{challenge}");
    let heir_auth = format!("Bearer {}", heir.body["token"].as_str().unwrap());
    assert_eq!(whoami_with(&heir_auth).status().as_u16(), 200);
    assert_eq!(whoami_with(&heir_auth).status().as_u16(), 401);
    let shown = api.list(&alice, "");
    let row = shown.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "counted")
        .unwrap()
        .clone();
    assert_eq!((&row["max_uses"], &row["uses"]), (&json!(4), &json!(4)));
    // Where it was used from (issue 26's last addresses).
    assert_eq!(row["last_addresses"][0]["address"], "127.0.0.1", "{row}");
    assert_eq!(row["last_addresses"].as_array().map(Vec::len), Some(1));
    for uses in [
        json!("2"),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(1_000_000_001),
        json!(u64::MAX),
        json!([1]),
    ] {
        let said = api.create(
            &alice,
            json!({"label": "x", "expire": "10m", "max_uses": uses}),
        );
        assert_eq!(said.status, 400, "{uses}");
        assert!(description(&said).contains("`max_uses`"), "{}", said.body);
    }
    // Revoking the parent takes its child along.
    for (made, status) in [(&counted, 200), (&heir, 404)] {
        assert_eq!(
            api.revoke(&alice, made.body["id"].as_str().unwrap()).status,
            status
        );
    }
    assert_eq!(
        api.revoke(&alice, limited.body["id"].as_str().unwrap())
            .status,
        200
    );
    for made in [&here, &elsewhere] {
        assert_eq!(
            api.revoke(&alice, made.body["id"].as_str().unwrap()).status,
            200
        );
    }

    // Revoke: 200 with the record; refused at once; gone from the list.
    let id = created.body["id"].as_str().unwrap();
    let revoked = api.revoke(&alice, id);
    assert_eq!(
        (revoked.status, revoked.body["id"].as_str()),
        (200, Some(id))
    );
    let after = client()
        .get(server.url("/whoami"))
        .bearer_auth(&secret)
        .send()
        .unwrap();
    assert_eq!(after.status().as_u16(), 401);
    assert_eq!(ids(&api.list(&alice, "")).len(), 2);
    assert_eq!(api.revoke(&alice, id).status, 404, "twice");
    assert_eq!(
        api.revoke(&root, &bobs[0]).status,
        200,
        "an admin revokes anyone's"
    );
    let bob_after = client()
        .get(server.url("/hello"))
        .bearer_auth(&bob_token)
        .send()
        .unwrap();
    assert_eq!(bob_after.status().as_u16(), 401);

    // No escalation: a token cannot mint one that outlives it...
    for (body, says) in [
        (json!({"label": "x", "expire": "2h"}), "may not outlive"),
        (json!({"label": "x", "auto": "10m"}), "give `max_lifetime`"),
        (
            json!({"label": "x", "auto": "10m", "max_lifetime": "2h"}),
            "may not outlive",
        ),
    ] {
        let said = api.create(&alice, body.clone());
        assert_eq!(said.status, 403, "{body}");
        assert!(description(&said).contains(says), "{body}: {}", said.body);
    }
    // ... nor one that reaches further than its scopes.
    for (scopes, status) in [
        (json!(null), 403),
        (json!([format!("node:{NODE}:rw")]), 403),
        (json!([format!("node:{OTHER}:r")]), 403),
        (json!([format!("node:{NODE}:r")]), 201),
    ] {
        let said = api.create(
            &scoped,
            json!({"label": "sub", "expire": "30m", "scopes": scopes}),
        );
        assert_eq!(said.status, status, "{scopes}: {}", said.body);
    }
    // ... nor one holding a permission it lacks (issue 24): implications
    // count, a wildcard needs one that covers it, and an unknown name is
    // a bad request naming it.
    let writer = format!(
        "Bearer {}",
        work.token(&["-u", "alice", "-e", "1h", "-s", "demo:write"])
    );
    for (scopes, status, says) in [
        (json!(null), 403, "scoped within its own scopes"),
        (json!(["demo:admin"]), 403, "`demo:admin`"),
        (json!(["demo:*"]), 403, "`demo:*`"),
        (
            json!(["demo:write", format!("node:{NODE}:r")]),
            403,
            "reaches further",
        ),
        (json!(["demo:nope"]), 400, "no permission `demo:nope`"),
        (json!(["Demo"]), 400, "`Demo` is not a permission"),
        (json!(["demo:read"]), 201, ""),
        (json!(["demo:write"]), 201, ""),
    ] {
        let said = api.create(
            &writer,
            json!({"label": "sub", "expire": "30m", "scopes": scopes}),
        );
        assert_eq!(said.status, status, "{scopes}: {}", said.body);
        if status != 201 {
            assert!(description(&said).contains(says), "{scopes}: {}", said.body);
        }
    }
    let listed = api.list(&alice, "");
    let names: Vec<&str> = listed.body["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["demo:admin", "demo:export", "demo:read", "demo:write"]
    );

    // CSRF: a change without the header, or from another site, is refused.
    let body = json!({"label": "x", "expire": "10m"}).to_string();
    let no_header = api.call("POST", "", &alice, false, &[], Some(&body));
    assert_eq!(no_header.status, 403);
    assert!(description(&no_header).contains("x-pat-csrf"));
    let mine = ids(&api.list(&alice, ""));
    assert_eq!(
        api.call("DELETE", &format!("/{}", mine[0]), &alice, false, &[], None)
            .status,
        403
    );
    for site in ["cross-site", "same-site"] {
        let said = api.call(
            "POST",
            "",
            &alice,
            true,
            &[("sec-fetch-site", site)],
            Some(&body),
        );
        assert_eq!(said.status, 403, "{site}");
    }
    assert_eq!(
        api.call(
            "POST",
            "",
            &alice,
            true,
            &[("sec-fetch-site", "same-origin")],
            Some(&body)
        )
        .status,
        201
    );
    assert_eq!(
        ids(&api.list(&alice, "")).len(),
        mine.len() + 1,
        "nothing else was created"
    );

    // Validation: 400, naming the field, with the CLI's wording.
    for (body, says) in [
        ("[1]".to_owned(), "must be a JSON object"),
        ("not json".to_owned(), "must be a JSON object"),
        (json!({"label": "x"}).to_string(), "an expiry is required"),
        (
            json!({"label": "x", "expire": "1h", "auto": "1h"}).to_string(),
            "cannot be combined",
        ),
        (
            json!({"label": "x", "expire": "10M"}).to_string(),
            "invalid value for `expire`",
        ),
        (
            json!({"label": "x", "expire": "10m", "max_lifetime": "1h"}).to_string(),
            "needs `auto`",
        ),
        (
            json!({"label": "x", "auto": "1h", "max_lifetime": "10m"}).to_string(),
            "must not be shorter than `auto`",
        ),
        (
            json!({"label": "x", "expire": "10m", "scopes": ["node:nope:r"]}).to_string(),
            "invalid value for `scopes`",
        ),
        (
            json!({"label": "bad\u{1b}[2J", "expire": "10m"}).to_string(),
            "invalid value for `label`",
        ),
        (
            json!({"label": "x", "expire": "10m", "colour": "red"}).to_string(),
            "unknown field `colour`",
        ),
        (
            json!({"label": 7, "expire": "10m"}).to_string(),
            "`label` must be a string",
        ),
    ] {
        let said = api.call("POST", "", &alice, true, &[], Some(&body));
        assert_eq!(said.status, 400, "{body}: {}", said.body);
        assert_eq!(said.body["error"], "invalid_request");
        assert!(description(&said).contains(says), "{body}: {}", said.body);
        assert!(!description(&said).contains('\u{1b}'));
    }
    assert_eq!(api.revoke(&alice, "not-an-id").status, 400);
    assert_eq!(api.list(&alice, "?colour=red").status, 400);

    // The store's policy applies.
    work.cli_ok(&["policy", "set", "--max-tokens-per-user", "4"]);
    let said = api.create(&alice, json!({"label": "one too many", "expire": "10m"}));
    assert_eq!(said.status, 403, "{}", said.body);
    assert!(description(&said).contains("policy"), "{}", said.body);

    // Without credentials the layer answers; the panel needs them too.
    let anonymous = client().get(server.url("/api/tokens")).send().unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    assert_eq!(
        client()
            .get(server.url("/ui/tokens"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    let page = client()
        .get(server.url("/ui/tokens"))
        .header("authorization", &alice)
        .send()
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let h = |k: &str| {
        page.headers()
            .get(k)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        h("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(h("cache-control").as_deref(), Some("no-store"));
    assert!(
        h("content-security-policy")
            .unwrap()
            .contains("script-src 'sha256-")
    );
    assert_eq!(h("x-frame-options").as_deref(), Some("DENY"));
    let html = page.text().unwrap();
    assert!(html.contains(r#"<meta name="pat-api" content="/api/tokens">"#));

    api.seen
}

#[test]
fn both_servers_manage_tokens_alike() {
    let axum = session(ServerKind::Axum);
    let actix = session(ServerKind::Actix);
    assert_eq!(axum.len(), actix.len());
    for (i, (a, b)) in axum.iter().zip(&actix).enumerate() {
        assert_eq!(a, b, "answer {i} differs");
    }
}
