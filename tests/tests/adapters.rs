//! pat-tower and pat-actix in process, side by side: every case, in both
//! modes, must get the same status, challenges and body from each, since
//! both only translate what `pat_core::Gate` decides.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use pat_core::{Admin as _, ExpiryPolicy, Gate, Identity, Mode, NewToken, Store, Timestamp};
use pat_integration_tests::basic;
use tower::{ServiceBuilder, ServiceExt as _};

/// What a response showed.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    challenges: Vec<String>,
    body: String,
}

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

fn cases(store: &Store) -> Vec<Case> {
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

fn tower_answer(gate: &Gate, c: &Case) -> Seen {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let svc = ServiceBuilder::new()
            .layer(pat_tower::PatLayer::from_gate(gate.clone()))
            .service_fn(|req: http::Request<()>| async move {
                let body = req
                    .extensions()
                    .get::<Identity>()
                    .map_or_else(|| "anonymous".to_owned(), |i| format!("user {}", i.user));
                Ok::<_, Infallible>(http::Response::new(body))
            });
        let mut req = http::Request::builder().method(c.method).uri("/x");
        for (k, v) in &c.headers {
            req = req.header(*k, v);
        }
        let res = svc.oneshot(req.body(()).unwrap()).await.unwrap();
        Seen {
            status: res.status().as_u16(),
            challenges: res
                .headers()
                .get_all("www-authenticate")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect(),
            body: res.into_body(),
        }
    })
}

fn actix_answer(gate: &Gate, c: &Case) -> Seen {
    use actix_web::{App, HttpMessage as _, HttpRequest, test, web};
    async fn handler(req: HttpRequest) -> String {
        req.extensions()
            .get::<Identity>()
            .map_or_else(|| "anonymous".to_owned(), |i| format!("user {}", i.user))
    }
    actix_web::rt::System::new().block_on(async {
        let app = test::init_service(
            App::new().service(
                web::scope("")
                    .wrap(pat_actix::PatMiddleware::from_gate(gate.clone()))
                    .default_service(web::to(handler)),
            ),
        )
        .await;
        let method = actix_web::http::Method::from_bytes(c.method.as_bytes()).unwrap();
        let mut req = test::TestRequest::default().method(method).uri("/x");
        for (k, v) in &c.headers {
            req = req.append_header((*k, v.as_str()));
        }
        let res = test::call_service(&app, req.to_request()).await;
        let status = res.status().as_u16();
        let challenges = res
            .headers()
            .get_all("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let body = test::read_body(res).await;
        Seen {
            status,
            challenges,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    })
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
    let cases = cases(&store);
    let mut statuses = Vec::new();
    for mode in [Mode::Required, Mode::Optional] {
        let gate = Gate::new(store.clone()).mode(mode).realm("adapters");
        for c in &cases {
            let tower = tower_answer(&gate, c);
            let actix = actix_answer(&gate, c);
            assert_eq!(tower, actix, "{mode:?} / {}", c.name);
            statuses.push((mode, c.name.clone(), tower.status));
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
