//! pat-tower and pat-actix in process, side by side: every case, in both
//! modes, must get the same status, challenges and body from each, since
//! both only translate what `pat_core::Gate` decides.

use std::sync::Arc;
use std::time::Duration;

use pat_core::{Admin, ExpiryPolicy, Gate, MemoryStore, Mode, NewToken, Store, Timestamp};
use pat_integration_tests::basic;
use pat_integration_tests::contract::Seen;
use pat_integration_tests::inproc::{self, Req};

struct Case {
    name: String,
    method: &'static str,
    headers: Vec<(&'static str, String)>,
}

fn case(name: &str, method: &'static str, headers: Vec<(&'static str, String)>) -> Case {
    Case {
        name: name.to_owned(),
        method,
        headers,
    }
}

fn cases(store: &dyn Admin) -> Vec<Case> {
    let now = Timestamp::now();
    let hour = ExpiryPolicy::hard(Duration::from_secs(3600));
    let token = store.create(&NewToken::new("alice", hour), now).unwrap();
    let token = token.secret.expose_secret().to_owned();
    let old = Timestamp::from_unix_secs(now.as_unix_secs() - 7200).unwrap();
    let expired = store.create(&NewToken::new("alice", hour), old).unwrap();
    let expired = expired.secret.expose_secret().to_owned();
    let auth = |v: String| vec![("authorization", v)];
    vec![
        case("nothing", "GET", vec![]),
        case("bearer", "GET", auth(format!("Bearer {token}"))),
        case(
            "bearer, odd case and spacing",
            "GET",
            auth(format!("bEaReR   {token}")),
        ),
        case("basic", "GET", auth(basic("alice", &token))),
        case("basic, wrong user", "GET", auth(basic("mallory", &token))),
        case(
            "basic, plain password",
            "GET",
            auth(basic("alice", "hunter2")),
        ),
        case("expired", "GET", auth(format!("Bearer {expired}"))),
        case("truncated", "GET", auth(format!("Bearer {}", &token[..20]))),
        case(
            "foreign bearer",
            "GET",
            auth("Bearer eyJhbGciOiJIUzI1NiJ9.e30.x".into()),
        ),
        case(
            "other scheme",
            "GET",
            auth("Digest username=\"alice\"".into()),
        ),
        case("bad base64", "GET", auth("Basic @@@".into())),
        case("no colon", "GET", auth("Basic YWxpY2U=".into())),
        case("scheme only", "GET", auth("Bearer".into())),
        case(
            "too long",
            "GET",
            auth(format!("Bearer {}", "a".repeat(5000))),
        ),
        case(
            "two headers",
            "GET",
            vec![
                ("authorization", format!("Bearer {token}")),
                ("authorization", format!("Bearer {token}")),
            ],
        ),
        case(
            "CORS preflight",
            "OPTIONS",
            vec![
                ("access-control-request-method", "PUT".into()),
                ("origin", "https://x.example".into()),
            ],
        ),
        case("plain OPTIONS", "OPTIONS", vec![]),
    ]
}

fn answers(gate: &Gate, cases: &[Case]) -> (Vec<Seen>, Vec<Seen>) {
    let reqs: Vec<Req> = cases
        .iter()
        .map(|c| Req {
            method: http::Method::from_bytes(c.method.as_bytes()).unwrap(),
            path: "/x".into(),
            headers: c.headers.clone(),
        })
        .collect();
    (
        inproc::tower_seen(inproc::echo_router(gate), &reqs),
        inproc::actix_seen(inproc::echo_actix(gate), &reqs),
    )
}

#[test]
fn both_adapters_answer_every_case_alike_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::builder()
            .admin_socket(false)
            .open(dir.path().join("pat.redb"))
            .unwrap(),
    );
    let memory = Arc::new(MemoryStore::new());
    let backends: [(&str, &dyn Admin, Gate); 2] = [
        ("redb", &*store, Gate::new(store.clone())),
        ("memory", &*memory, Gate::new(memory.clone())),
    ];
    let mut statuses = Vec::new();
    for (name, admin, gate) in backends {
        let cases = cases(admin);
        for mode in [Mode::Required, Mode::Optional] {
            let gate = gate.clone().mode(mode).realm("adapters");
            let (tower, actix) = answers(&gate, &cases);
            for ((c, t), a) in cases.iter().zip(&tower).zip(&actix) {
                assert_eq!(t, a, "{name} / {mode:?} / {}", c.name);
                statuses.push((mode, c.name.clone(), t.status));
            }
        }
    }
    // And the table means something: each kind of answer occurs.
    for want in [200, 400, 401] {
        assert!(
            statuses.iter().any(|(_, _, s)| *s == want),
            "{want} never seen"
        );
    }
    let optional_nothing = statuses
        .iter()
        .find(|(m, n, _)| *m == Mode::Optional && n == "nothing")
        .unwrap();
    assert_eq!(optional_nothing.2, 200);
}

/// Issue 24: the two route guards side by side, with the JSON hooks of
/// both the guard and the middleware, in optional mode: a token holding
/// the permission passes, one lacking it gets the same 403 and JSON body
/// from each, a request without a token the middleware's own 401 (its
/// hook's body), and a route no middleware covers a 500 naming the fix.
#[test]
fn both_guards_answer_alike_with_their_hooks() {
    use pat_core::{PermissionDef, TokenScope};
    let store = Arc::new(MemoryStore::new());
    store
        .define_permissions(&[
            PermissionDef::new("repo:read".parse().unwrap()),
            PermissionDef::new("repo:write".parse().unwrap()),
        ])
        .unwrap();
    let hour = ExpiryPolicy::hard(Duration::from_secs(3600));
    let reader = store
        .create(
            &NewToken::new("alice", hour).scopes(
                ["repo:read".parse::<TokenScope>().unwrap()]
                    .into_iter()
                    .collect(),
            ),
            Timestamp::now(),
        )
        .unwrap();
    let bearer = format!("Bearer {}", reader.secret.expose_secret());
    let gate = Gate::new(store.clone()).mode(Mode::Optional);
    let req = |path: &str, auth: Option<&str>| Req {
        method: http::Method::GET,
        path: path.to_owned(),
        headers: auth
            .map(|a| ("authorization", a.to_owned()))
            .into_iter()
            .collect(),
    };
    let reqs = [
        req("/read", Some(&bearer)),
        req("/write", Some(&bearer)),
        req("/write", None),
        req("/bare", Some(&bearer)),
    ];

    let tower_app = {
        use axum::routing::get;
        use pat_tower::{JsonRejection, PatLayer, RequireScopes};
        let guarded = |path: &str, name: &str| {
            axum::Router::new()
                .route(path, get(|| async { "ok" }))
                .route_layer(
                    RequireScopes::all([name])
                        .unwrap()
                        .on_insufficient(JsonRejection),
                )
        };
        let bare = axum::Router::new()
            .route("/bare", get(|| async { "ok" }))
            .route_layer(RequireScopes::all(["repo:read"]).unwrap());
        guarded("/read", "repo:read")
            .merge(guarded("/write", "repo:write"))
            .layer(PatLayer::from_gate(gate.clone()).on_rejection(JsonRejection))
            .merge(bare)
    };
    let actix_app = {
        use actix_web::web;
        use pat_actix::{JsonRejection, PatMiddleware, RequireScopes};
        let pat = PatMiddleware::from_gate(gate.clone()).on_rejection(JsonRejection);
        move |cfg: &mut actix_web::web::ServiceConfig| {
            for (path, name) in [("/read", "repo:read"), ("/write", "repo:write")] {
                cfg.service(
                    web::resource(path)
                        .wrap(
                            RequireScopes::all([name])
                                .unwrap()
                                .on_insufficient(JsonRejection),
                        )
                        .wrap(pat.clone())
                        .route(web::get().to(|| async { "ok" })),
                );
            }
            cfg.service(
                web::resource("/bare")
                    .wrap(RequireScopes::all(["repo:read"]).unwrap())
                    .route(web::get().to(|| async { "ok" })),
            );
        }
    };
    let tower = inproc::tower_seen(tower_app, &reqs);
    let actix = inproc::actix_seen(actix_app, &reqs);
    let statuses: Vec<u16> = tower.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [200, 403, 401, 500]);
    assert_eq!(
        tower[1].challenges,
        [
            "Bearer realm=\"pat\", error=\"insufficient_scope\", error_description=\"the token \
          lacks a permission this route needs\", scope=\"repo:write\""
        ]
    );
    assert_eq!(
        tower[1].body,
        "{\"error\":\"insufficient_scope\",\"error_description\":\"the token lacks a \
         permission this route needs\",\"scope\":\"repo:write\"}"
    );
    assert!(
        tower[2].body.contains("\"error\""),
        "the middleware's hook: {}",
        tower[2].body
    );
    // axum's extractor form answers as the layer does (the default, empty
    // body): the same status and challenge.
    pat_tower::permissions! {
        struct WriteRepo: all("repo:write");
    }
    pat_tower::permissions! {
        struct ReadOrWrite: any("repo:read", "repo:write");
    }
    let extracting = {
        use axum::routing::get;
        use pat_tower::{PatLayer, Scoped};
        axum::Router::new()
            .route(
                "/write",
                get(|Scoped(_, _): Scoped<WriteRepo>| async { "ok" }),
            )
            .route(
                "/read",
                get(|Scoped(who, _): Scoped<ReadOrWrite>| async move { who.user().to_owned() }),
            )
            .layer(PatLayer::from_gate(gate.clone()))
    };
    let seen = inproc::tower_seen(
        extracting,
        &[
            req("/write", Some(&bearer)),
            req("/read", Some(&bearer)),
            req("/read", None),
        ],
    );
    assert_eq!(seen[0].status, 403);
    assert_eq!(seen[0].challenges, tower[1].challenges);
    assert_eq!((seen[1].status, seen[1].body.as_str()), (200, "alice"));
    assert_eq!(
        seen[2].status, 401,
        "optional mode: the extractor asks for a token"
    );
    for ((t, a), r) in tower.iter().zip(&actix).zip(&reqs) {
        if r.path == "/bare" {
            // No middleware: both 500, naming the fix.
            assert_eq!((t.status, a.status), (500, 500));
            assert!(a.body.contains("PatMiddleware"), "{}", a.body);
        }
        assert_eq!(t, a, "the adapters differ on {}", r.path);
    }
}
