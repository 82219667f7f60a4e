use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::WWW_AUTHENTICATE;
use actix_web::{App, HttpRequest, test, web};
use base64::Engine as _;
use pat_core::{Admin as _, ExpiryPolicy, NewToken, Store, Timestamp, TokenSecret};

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    token: String,
    expired: String,
    revoked: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::builder()
            .manual_flush()
            .open(dir.path().join("pat.redb"))
            .unwrap(),
    );
    let now = Timestamp::now();
    let hour = ExpiryPolicy::hard(Duration::from_secs(3600));
    let create = |user: &str, at| store.create(&NewToken::new(user, hour), at).unwrap();
    let token = create("alice", now);
    let expired = create(
        "alice",
        Timestamp::from_unix_secs(now.as_unix_secs() - 7200).unwrap(),
    );
    let revoked = create("alice", now);
    store.revoke(revoked.info.id).unwrap();
    Fixture {
        token: token.secret.expose_secret().to_owned(),
        expired: expired.secret.expose_secret().to_owned(),
        revoked: revoked.secret.expose_secret().to_owned(),
        store,
        _dir: dir,
    }
}

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Answers with the identity's user, or "anonymous".
async fn echo(req: HttpRequest) -> String {
    req.extensions()
        .get::<Identity>()
        .map_or_else(|| "anonymous".to_owned(), |i| i.user().to_owned())
}

async fn whoami(identity: Identity) -> String {
    identity.user().to_owned()
}

async fn maybe(identity: Option<Identity>) -> String {
    identity.map_or_else(|| "anonymous".to_owned(), |i| i.user().to_owned())
}

struct Answer {
    status: StatusCode,
    challenges: Vec<String>,
    body: String,
}

async fn send(
    mw: PatMiddleware,
    method: actix_web::http::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let app = test::init_service(
        App::new()
            .route("/unprotected", web::get().to(whoami))
            .service(
                web::scope("")
                    .wrap(mw)
                    .route("/", web::route().to(echo))
                    .route("/whoami", web::get().to(whoami))
                    .route("/maybe", web::get().to(maybe)),
            ),
    )
    .await;
    let mut req = test::TestRequest::default().method(method).uri(path);
    for (k, v) in headers {
        req = req.append_header((*k, *v));
    }
    let res = test::call_service(&app, req.to_request()).await;
    let status = res.status();
    let challenges = res
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = test::read_body(res).await;
    Answer {
        status,
        challenges,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn get(mw: PatMiddleware, headers: &[(&str, &str)]) -> Answer {
    send(mw, actix_web::http::Method::GET, "/", headers).await
}

#[track_caller]
fn assert_invalid_token(a: &Answer, description: &str) {
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.challenges,
        [
            format!(
                "Bearer realm=\"pat\", error=\"invalid_token\", error_description=\"{description}\""
            ),
            "Basic realm=\"pat\", charset=\"UTF-8\"".to_owned(),
        ]
    );
    assert_eq!(a.body, "", "inner service must not run");
}

#[actix_web::test]
async fn no_header_is_401_with_both_challenges() {
    let f = fixture();
    let a = get(PatMiddleware::new(f.store.clone()), &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.challenges,
        [
            "Bearer realm=\"pat\"",
            "Basic realm=\"pat\", charset=\"UTF-8\""
        ]
    );
    assert_eq!(a.body, "");
}

#[actix_web::test]
async fn bearer_and_basic_reach_the_handler() {
    let f = fixture();
    for auth in [
        format!("Bearer {}", f.token),
        basic("alice", &f.token),
        format!("bEaReR {}", f.token),
    ] {
        let a = get(
            PatMiddleware::new(f.store.clone()),
            &[("authorization", &auth)],
        )
        .await;
        assert_eq!(
            (a.status, a.body.as_str()),
            (StatusCode::OK, "alice"),
            "{auth}"
        );
    }
}

#[actix_web::test]
async fn refused_tokens_say_why() {
    let f = fixture();
    let unknown = TokenSecret::generate();
    let cases = [
        (
            basic("bob", &f.token),
            "the user name does not match the token",
        ),
        (format!("Bearer {}", f.expired), "the token has expired"),
        (
            format!("Bearer {}", f.revoked),
            "the token is unknown or revoked",
        ),
        (
            format!("Bearer {}", unknown.expose_secret()),
            "the token is unknown or revoked",
        ),
        (
            format!("Bearer {}", &f.token[..20]),
            "the token is malformed",
        ),
        (
            "Bearer ghp_x".to_owned(),
            "the credentials are not a personal access token",
        ),
    ];
    for (auth, description) in cases {
        let a = get(
            PatMiddleware::new(f.store.clone()),
            &[("authorization", &auth)],
        )
        .await;
        assert_invalid_token(&a, description);
    }
}

#[actix_web::test]
async fn broken_headers_are_400() {
    let f = fixture();
    for auth in ["Basic %%%", "Bearer", "Basic YWxpY2U="] {
        let a = get(
            PatMiddleware::new(f.store.clone()),
            &[("authorization", auth)],
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{auth}");
        assert!(a.challenges[0].contains("error=\"invalid_request\""));
    }
    let bearer = format!("Bearer {}", f.token);
    let a = get(
        PatMiddleware::new(f.store.clone()),
        &[("authorization", &bearer), ("authorization", &bearer)],
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn optional_mode() {
    let f = fixture();
    let mw = || PatMiddleware::new(f.store.clone()).optional();
    let plain = basic("alice", "password");
    for headers in [
        vec![],
        vec![("authorization", "Bearer ghp_x")],
        vec![("authorization", plain.as_str())],
    ] {
        let a = get(mw(), &headers).await;
        assert_eq!(
            (a.status, a.body.as_str()),
            (StatusCode::OK, "anonymous"),
            "{headers:?}"
        );
    }
    let expired = format!("Bearer {}", f.expired);
    assert_invalid_token(
        &get(mw(), &[("authorization", &expired)]).await,
        "the token has expired",
    );
}

#[actix_web::test]
async fn extractors() {
    let f = fixture();
    let auth = format!("Bearer {}", f.token);
    let m = actix_web::http::Method::GET;
    let a = send(
        PatMiddleware::new(f.store.clone()),
        m.clone(),
        "/whoami",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(a.body, "alice");
    // Optional middleware + required extractor: 401 with the middleware's challenges.
    let a = send(
        PatMiddleware::new(f.store.clone()).optional().realm("opt"),
        m.clone(),
        "/whoami",
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.challenges,
        [
            "Bearer realm=\"opt\"",
            "Basic realm=\"opt\", charset=\"UTF-8\""
        ]
    );
    assert_eq!(a.body, "");
    let a = send(
        PatMiddleware::new(f.store.clone()).optional(),
        m.clone(),
        "/maybe",
        &[],
    )
    .await;
    assert_eq!(a.body, "anonymous");
    let a = send(
        PatMiddleware::new(f.store.clone()).optional(),
        m.clone(),
        "/maybe",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(a.body, "alice");
    // No middleware on the route: fail closed.
    let a = send(
        PatMiddleware::new(f.store.clone()),
        m,
        "/unprotected",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    // It names the cause and the fix.
    assert_eq!(a.body, pat_core::MissingIdentity::NO_MIDDLEWARE);
    assert!(a.body.contains("PatMiddleware"), "{}", a.body);
}

#[actix_web::test]
async fn cors_preflight_passes_unless_configured() {
    let f = fixture();
    let preflight = [
        ("access-control-request-method", "PUT"),
        ("origin", "https://app.example"),
    ];
    let options = actix_web::http::Method::OPTIONS;
    let a = send(
        PatMiddleware::new(f.store.clone()),
        options.clone(),
        "/",
        &preflight,
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "anonymous"));
    let a = send(
        PatMiddleware::new(f.store.clone()).reject_preflight(true),
        options.clone(),
        "/",
        &preflight,
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = send(PatMiddleware::new(f.store.clone()), options, "/", &[]).await;
    assert_eq!(
        a.status,
        StatusCode::UNAUTHORIZED,
        "plain OPTIONS is not a preflight"
    );
}

#[actix_web::test]
async fn rejection_body_is_customisable() {
    let f = fixture();
    let app = test::init_service(
        App::new().service(
            web::scope("")
                .wrap(
                    PatMiddleware::new(f.store.clone()).on_rejection(|r: &Rejection| {
                        r.actix_response()
                            .content_type("application/json")
                            .body(r.json_body())
                    }),
                )
                .route("/", web::get().to(echo)),
        ),
    )
    .await;
    let req = test::TestRequest::get()
        .uri("/")
        .append_header(("authorization", "Bearer ghp_x"))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "application/json"
    );
    assert_eq!(res.headers().get_all(WWW_AUTHENTICATE).count(), 2);
    let body = test::read_body(res).await;
    assert_eq!(
        body,
        r#"{"error":"invalid_token","error_description":"the credentials are not a personal access token"}"#
    );
}

// Issue 29, item 3: the extractor answered an anonymous request 401 with
// an empty body, whatever the middleware's `on_rejection`.
#[actix_web::test]
async fn the_extractor_answers_an_anonymous_request_with_the_middlewares_hook() {
    let f = fixture();
    let app = test::init_service(
        App::new().service(
            web::scope("")
                .wrap(
                    PatMiddleware::new(f.store.clone())
                        .optional()
                        .on_rejection(JsonRejection),
                )
                .route("/whoami", web::get().to(whoami)),
        ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/whoami").to_request()).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "application/json"
    );
    assert_eq!(res.headers().get_all(WWW_AUTHENTICATE).count(), 2);
    assert_eq!(test::read_body(res).await, r#"{"error":"unauthorized"}"#);
    // The default hook: an empty body, as before.
    let a = send(
        PatMiddleware::new(f.store.clone()).optional(),
        actix_web::http::Method::GET,
        "/whoami",
        &[],
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::UNAUTHORIZED, ""));
}

#[actix_web::test]
async fn json_rejection_answers_json_with_the_status_and_challenges() {
    let f = fixture();
    let app = test::init_service(
        App::new().service(
            web::scope("")
                .wrap(PatMiddleware::new(f.store.clone()).on_rejection(JsonRejection))
                .route("/", web::get().to(echo)),
        ),
    )
    .await;
    // No credentials: 401 with both challenges, and the JSON says so.
    let req = test::TestRequest::get().uri("/").to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "application/json"
    );
    assert_eq!(res.headers().get_all(WWW_AUTHENTICATE).count(), 2);
    let body = test::read_body(res).await;
    assert_eq!(body, r#"{"error":"unauthorized"}"#);
}

#[actix_web::test]
async fn fails_closed_on_every_refusal_at_once_or_later() {
    use pat_core::conformance::Scripted;
    // `Outcome` is exhaustive and `admit` has no catch-all arm, so a new kind
    // of outcome cannot compile into a pass; this checks every kind of refusal
    // a backend can give, answered at once and later, in both modes.
    let bearer = format!("Bearer {}", TokenSecret::generate().expose_secret());
    for &pat_core::conformance::Refusal {
        name,
        error: refusal,
        status,
    } in pat_core::conformance::REFUSALS
    {
        for later in [false, true] {
            let answer = move |_: &pat_core::Lookup<'_>| Err(refusal());
            let backend = Arc::new(if later {
                Scripted::later(answer)
            } else {
                Scripted::ready(answer)
            });
            for mw in [
                PatMiddleware::new(backend.clone()),
                PatMiddleware::new(backend.clone()).optional(),
            ] {
                let a = get(mw, &[("authorization", &bearer)]).await;
                assert_eq!(a.status.as_u16(), status, "{name}, later={later}");
                assert_eq!(a.body, "", "{name}, later={later}: the handler ran");
            }
        }
    }
}

#[actix_web::test]
async fn a_backend_answering_later_reaches_the_handler_with_the_identity() {
    use pat_core::conformance::Scripted;
    let memory = Arc::new(pat_core::MemoryStore::new());
    let hour = ExpiryPolicy::hard(Duration::from_secs(3600));
    let created = memory
        .create(&NewToken::new("alice", hour), Timestamp::now())
        .unwrap();
    let inner = memory.clone();
    let later = Scripted::later(move |lookup: &pat_core::Lookup<'_>| {
        pat_core::conformance::block_on(pat_core::Verifier::verify(&*inner, *lookup))
    });
    let bearer = format!("Bearer {}", created.secret.expose_secret());
    let a = send(
        PatMiddleware::new(later),
        actix_web::http::Method::GET,
        "/whoami",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "alice"));
}

#[actix_web::test]
async fn the_middleware_is_send_sync_and_clone() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<PatMiddleware>();
}

#[actix_web::test]
async fn the_readme_layout_keeps_404_for_paths_that_do_not_exist() {
    // The middleware on a resource, as the README shows: an unknown path is
    // 404 as in axum, not the middleware's 401.
    let f = fixture();
    let app = test::init_service(
        App::new()
            .route("/health", web::get().to(|| async { "ok" }))
            .service(
                web::resource("/whoami")
                    .wrap(PatMiddleware::new(f.store.clone()))
                    .route(web::get().to(whoami)),
            ),
    )
    .await;
    let get = |path: &str, auth: Option<String>| {
        let mut req = test::TestRequest::get().uri(path);
        if let Some(a) = auth {
            req = req.append_header(("authorization", a));
        }
        req.to_request()
    };
    let status = |res: actix_web::dev::ServiceResponse| res.status();
    assert_eq!(
        status(test::call_service(&app, get("/nope", None)).await),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(test::call_service(&app, get("/health", None)).await),
        StatusCode::OK
    );
    assert_eq!(
        status(test::call_service(&app, get("/whoami", None)).await),
        StatusCode::UNAUTHORIZED
    );
    let auth = Some(format!("Bearer {}", f.token));
    assert_eq!(
        status(test::call_service(&app, get("/whoami", auth)).await),
        StatusCode::OK
    );
}
