//! The reference servers' HTTP contract as a table of cases: run against the
//! server processes (`tests/contract.rs`, redb) and in process against other
//! backends (`tests/custom_backend.rs`).

use http::Method;

use crate::basic;

/// A node the read-only token is scoped to.
pub const NODE: &str = "0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";
/// A node outside every scope.
pub const OTHER: &str = "1b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";

/// The tokens the cases present.
#[derive(Debug)]
pub struct Tokens {
    /// alice, hard limit 1 h, unscoped.
    pub full: String,
    /// alice, sliding 10 min, `node:NODE:r`.
    pub read_only: String,
    /// alice, created two hours ago with a one-hour limit.
    pub expired: String,
    /// alice, revoked.
    pub revoked: String,
    /// alice, hard limit 1 h, holding the named permission `demo:read`
    /// (the reference servers' catalog).
    pub demo_reader: String,
}

/// The reference servers' catalog (`demo:read`, `demo:write`,
/// `demo:admin`), as they declare it when they start.
pub fn demo_permissions() -> Vec<pat_core::PermissionDef> {
    crate::inproc::decisions::permissions()
}

impl Tokens {
    /// The tokens, created through `admin` (any backend), after the
    /// reference servers' catalog is defined there.
    pub fn create(admin: &dyn pat_core::Admin) -> Tokens {
        // A backend without a catalog holds the names its tokens carry as
        // written.
        match admin.define_permissions(&demo_permissions()) {
            Err(pat_core::StoreError::Catalog(pat_core::CatalogError::Fixed)) => {}
            r => {
                r.expect("the catalog");
            }
        }
        use pat_core::{ExpiryPolicy, NewToken, Scopes, Timestamp};
        use std::time::Duration;
        let now = Timestamp::now();
        let hour = ExpiryPolicy::hard(Duration::from_secs(3600));
        let make = |new: NewToken, at| {
            let created = admin.create(&new, at).expect("create");
            (created.secret.expose_secret().to_owned(), created.info.id)
        };
        let scope: Scopes = [format!("node:{NODE}:r")
            .parse::<pat_core::Scope>()
            .expect("scope")]
        .into_iter()
        .collect();
        let sliding = ExpiryPolicy::sliding(Duration::from_secs(600), None);
        let two_hours_ago = Timestamp::from_unix_secs(now.as_unix_secs() - 7200).expect("time");
        let (revoked, revoked_id) = make(NewToken::new("alice", hour), now);
        admin.revoke(revoked_id).expect("revoke");
        Tokens {
            full: make(NewToken::new("alice", hour), now).0,
            read_only: make(NewToken::new("alice", sliding).scopes(scope), now).0,
            expired: make(NewToken::new("alice", hour), two_hours_ago).0,
            revoked,
            demo_reader: make(
                NewToken::new("alice", hour).scopes(
                    [pat_core::TokenScope::Named(
                        "demo:read".parse().expect("name"),
                    )]
                    .into_iter()
                    .collect(),
                ),
                now,
            )
            .0,
        }
    }
}

/// What the contract says one request gets.
#[derive(Debug)]
pub struct Case {
    /// What the case shows.
    pub name: &'static str,
    /// The request method.
    pub method: Method,
    /// The request path.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The expected status.
    pub status: u16,
    /// The expected body, when fixed.
    pub body: Option<&'static str>,
    /// Expected `WWW-Authenticate` values, in order; `None` = none sent.
    pub challenges: Option<Vec<String>>,
}

fn challenges(error: Option<(&str, &str)>) -> Option<Vec<String>> {
    let bearer = match error {
        None => "Bearer realm=\"pat\"".to_owned(),
        Some((code, desc)) => {
            format!("Bearer realm=\"pat\", error=\"{code}\", error_description=\"{desc}\"")
        }
    };
    Some(vec![
        bearer,
        "Basic realm=\"pat\", charset=\"UTF-8\"".to_owned(),
    ])
}

/// The challenge of a token without the permission `scope` a route needs.
fn insufficient(scope: &str) -> String {
    format!(
        "Bearer realm=\"pat\", error=\"insufficient_scope\", error_description=\"the token \
         lacks a permission this route needs\", scope=\"{scope}\""
    )
}

/// Every case of the contract, with these tokens.
pub fn cases(t: &Tokens) -> Vec<Case> {
    let bearer = |tok: &str| Some(format!("Bearer {tok}"));
    let invalid = |desc| challenges(Some(("invalid_token", desc)));
    let case = |name, method, path: &str, authorization, status, body, challenges| Case {
        name,
        method,
        path: path.to_owned(),
        authorization,
        status,
        body,
        challenges,
    };
    let node = format!("/nodes/{NODE}");
    let other = format!("/nodes/{OTHER}");
    vec![
        case(
            "health needs nothing",
            Method::GET,
            "/health",
            None,
            200,
            Some("ok"),
            None,
        ),
        case(
            "health ignores bad credentials",
            Method::GET,
            "/health",
            bearer("pat_x"),
            200,
            Some("ok"),
            None,
        ),
        case(
            "hello without credentials",
            Method::GET,
            "/hello",
            None,
            401,
            Some(""),
            challenges(None),
        ),
        case(
            "hello with bearer",
            Method::GET,
            "/hello",
            bearer(&t.full),
            200,
            Some("ok"),
            None,
        ),
        case(
            "hello with lowercase scheme",
            Method::GET,
            "/hello",
            Some(format!("bearer {}", t.full)),
            200,
            Some("ok"),
            None,
        ),
        case(
            "hello with basic",
            Method::GET,
            "/hello",
            Some(basic("alice", &t.full)),
            200,
            Some("ok"),
            None,
        ),
        case(
            "basic with another user",
            Method::GET,
            "/hello",
            Some(basic("bob", &t.full)),
            401,
            Some(""),
            invalid("the user name does not match the token"),
        ),
        case(
            "basic with a plain password",
            Method::GET,
            "/hello",
            Some(basic("alice", "hunter2")),
            401,
            Some(""),
            invalid("the credentials are not a personal access token"),
        ),
        case(
            "expired token",
            Method::GET,
            "/hello",
            bearer(&t.expired),
            401,
            Some(""),
            invalid("the token has expired"),
        ),
        case(
            "revoked token",
            Method::GET,
            "/hello",
            bearer(&t.revoked),
            401,
            Some(""),
            invalid("the token is unknown or revoked"),
        ),
        case(
            "mistyped token",
            Method::GET,
            "/hello",
            bearer(&t.full.replacen("pat_", "pat_x", 1)[..42]),
            401,
            Some(""),
            invalid("the token is malformed"),
        ),
        case(
            "truncated token",
            Method::GET,
            "/hello",
            bearer(&t.full[..30]),
            401,
            Some(""),
            invalid("the token is malformed"),
        ),
        case(
            "foreign bearer",
            Method::GET,
            "/hello",
            bearer("ghp_0123456789"),
            401,
            Some(""),
            invalid("the credentials are not a personal access token"),
        ),
        case(
            "other scheme",
            Method::GET,
            "/hello",
            Some("Negotiate abc".into()),
            401,
            Some(""),
            challenges(None),
        ),
        case(
            "bad base64",
            Method::GET,
            "/hello",
            Some("Basic %%%".into()),
            400,
            Some(""),
            challenges(Some((
                "invalid_request",
                "the Basic credentials are not valid base64",
            ))),
        ),
        case(
            "empty bearer",
            Method::GET,
            "/hello",
            Some("Bearer".into()),
            400,
            Some(""),
            challenges(Some((
                "invalid_request",
                "the Authorization header has no credentials",
            ))),
        ),
        case(
            "a route's permission, held",
            Method::GET,
            "/demo/read",
            bearer(&t.demo_reader),
            200,
            Some("ok"),
            None,
        ),
        case(
            "another permission than the token holds",
            Method::GET,
            "/demo/write",
            bearer(&t.demo_reader),
            403,
            Some(""),
            Some(vec![insufficient("demo:write")]),
        ),
        case(
            "an unscoped token holds every permission",
            Method::GET,
            "/demo/write",
            bearer(&t.full),
            200,
            Some("ok"),
            None,
        ),
        case(
            "a node-scoped token holds no permission",
            Method::GET,
            "/demo/read",
            bearer(&t.read_only),
            403,
            Some(""),
            Some(vec![insufficient("demo:read")]),
        ),
        case(
            "a guarded route without credentials",
            Method::GET,
            "/demo/read",
            None,
            401,
            Some(""),
            challenges(None),
        ),
        case(
            "whoami without credentials",
            Method::GET,
            "/whoami",
            None,
            401,
            Some(""),
            challenges(None),
        ),
        case(
            "read an unscoped node",
            Method::GET,
            &node,
            bearer(&t.full),
            200,
            Some("ok"),
            None,
        ),
        case(
            "write an unscoped node",
            Method::PUT,
            &node,
            bearer(&t.full),
            204,
            Some(""),
            None,
        ),
        case(
            "read a node in scope",
            Method::GET,
            &node,
            bearer(&t.read_only),
            200,
            Some("ok"),
            None,
        ),
        case(
            "write a read-only node",
            Method::PUT,
            &node,
            bearer(&t.read_only),
            403,
            Some("forbidden"),
            None,
        ),
        case(
            "read a node out of scope",
            Method::GET,
            &other,
            bearer(&t.read_only),
            403,
            Some("forbidden"),
            None,
        ),
        case(
            "node id is not a uuid",
            Method::GET,
            "/nodes/xyz",
            bearer(&t.full),
            400,
            Some("invalid node id"),
            None,
        ),
        case(
            "node without credentials",
            Method::GET,
            &node,
            None,
            401,
            Some(""),
            challenges(None),
        ),
        case(
            "uppercase node id",
            Method::GET,
            &format!("/nodes/{}", NODE.to_uppercase()),
            bearer(&t.read_only),
            200,
            Some("ok"),
            None,
        ),
    ]
}

/// The parts of a response the contract fixes.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Seen {
    /// The status.
    pub status: u16,
    /// The `WWW-Authenticate` values, in order.
    pub challenges: Vec<String>,
    /// The body.
    pub body: String,
}

impl Case {
    /// Fails the test unless `seen` is what this case expects; `who` names
    /// the server or adapter in the message.
    #[track_caller]
    pub fn check(&self, seen: &Seen, who: &str) {
        let ctx = format!("{who}: {}", self.name);
        assert_eq!(seen.status, self.status, "{ctx}: {seen:?}");
        if let Some(body) = self.body {
            assert_eq!(seen.body, body, "{ctx}");
        }
        match &self.challenges {
            Some(expected) => assert_eq!(&seen.challenges, expected, "{ctx}"),
            None => assert!(seen.challenges.is_empty(), "{ctx}: {:?}", seen.challenges),
        }
    }
}
