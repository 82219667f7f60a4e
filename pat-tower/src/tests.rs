use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use http::header::WWW_AUTHENTICATE;
use http::{Method, StatusCode};
use pat_core::{Admin as _, ExpiryPolicy, NewToken, Store, Timestamp, TokenSecret};
use tower::{ServiceBuilder, ServiceExt as _};

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
    let create = |user: &str, policy, at| store.create(&NewToken::new(user, policy), at).unwrap();
    let token = create("alice", hour, now);
    let long_ago = Timestamp::from_unix_secs(now.as_unix_secs() - 7200).unwrap();
    let expired = create("alice", hour, long_ago);
    let revoked = create("alice", hour, now);
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

/// Sends one request through `layer` to a handler that answers with the
/// identity's user ("anonymous" without one) and counts its calls.
async fn send(
    layer: PatLayer,
    headers: &[(&str, &str)],
    method: Method,
) -> (Response<String>, usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(move |req: Request<()>| {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = req
                .extensions()
                .get::<Identity>()
                .map_or_else(|| "anonymous".to_owned(), |id| id.user().to_owned());
            async move { Ok::<_, Infallible>(Response::new(body)) }
        });
    let mut req = Request::builder().method(method).uri("/");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(req.body(()).unwrap())
        .await
        .unwrap();
    (res, calls.load(Ordering::SeqCst))
}

fn challenges(res: &Response<String>) -> Vec<String> {
    res.headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[track_caller]
fn assert_invalid_token(res: &Response<String>, calls: usize, description: &str) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(calls, 0, "inner service must not be called");
    assert_eq!(
        challenges(res),
        [
            format!(
                "Bearer realm=\"pat\", error=\"invalid_token\", error_description=\"{description}\""
            ),
            "Basic realm=\"pat\", charset=\"UTF-8\"".to_owned(),
        ]
    );
    assert_eq!(res.body(), "");
}

#[tokio::test]
async fn no_header_is_401_with_both_challenges_and_no_error() {
    let f = fixture();
    let (res, calls) = send(PatLayer::new(f.store.clone()), &[], Method::GET).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(calls, 0);
    assert_eq!(
        challenges(&res),
        [
            "Bearer realm=\"pat\"",
            "Basic realm=\"pat\", charset=\"UTF-8\""
        ]
    );
}

#[tokio::test]
async fn bearer_and_basic_reach_the_service_with_an_identity() {
    let f = fixture();
    for auth in [format!("Bearer {}", f.token), basic("alice", &f.token)] {
        let (res, calls) = send(
            PatLayer::new(f.store.clone()),
            &[("authorization", &auth)],
            Method::GET,
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "{auth}");
        assert_eq!((res.body().as_str(), calls), ("alice", 1));
    }
}

#[tokio::test]
async fn scheme_is_case_insensitive() {
    let f = fixture();
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let auth = format!("{scheme} {}", f.token);
        let (res, _) = send(
            PatLayer::new(f.store.clone()),
            &[("authorization", &auth)],
            Method::GET,
        )
        .await;
        assert_eq!(res.body(), "alice", "{scheme}");
    }
    let auth = basic("alice", &f.token).replace("Basic", "BASIC");
    let (res, _) = send(
        PatLayer::new(f.store.clone()),
        &[("authorization", &auth)],
        Method::GET,
    )
    .await;
    assert_eq!(res.body(), "alice");
}

#[tokio::test]
async fn refused_tokens_are_401_invalid_token_with_the_reason() {
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
        (format!("Bearer {}x", f.token), "the token is malformed"),
        (
            format!("Bearer {}", &f.token[..20]),
            "the token is malformed",
        ),
        (
            "Bearer ghp_notapat".to_owned(),
            "the credentials are not a personal access token",
        ),
    ];
    for (auth, description) in cases {
        let (res, calls) = send(
            PatLayer::new(f.store.clone()),
            &[("authorization", &auth)],
            Method::GET,
        )
        .await;
        assert_invalid_token(&res, calls, description);
    }
}

#[tokio::test]
async fn broken_headers_are_400_invalid_request() {
    let f = fixture();
    for auth in ["Basic !!!notbase64", "Bearer", "Basic YWxpY2U="] {
        let (res, calls) = send(
            PatLayer::new(f.store.clone()),
            &[("authorization", auth)],
            Method::GET,
        )
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{auth}");
        assert_eq!(calls, 0);
        assert!(
            challenges(&res)[0].contains("error=\"invalid_request\""),
            "{auth}"
        );
    }
    let bearer = format!("Bearer {}", f.token);
    let (res, _) = send(
        PatLayer::new(f.store.clone()),
        &[("authorization", &bearer), ("authorization", &bearer)],
        Method::GET,
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn optional_mode_passes_foreign_credentials_but_rejects_bad_pats() {
    let f = fixture();
    let layer = || PatLayer::new(f.store.clone()).optional();
    for headers in [
        vec![],
        vec![("authorization", "Bearer ghp_other")],
        vec![("authorization", "Negotiate abc")],
    ] {
        let (res, calls) = send(layer(), &headers, Method::GET).await;
        assert_eq!(
            (res.status(), res.body().as_str(), calls),
            (StatusCode::OK, "anonymous", 1),
            "{headers:?}"
        );
    }
    let password = basic("alice", "a-real-password");
    let (res, _) = send(layer(), &[("authorization", &password)], Method::GET).await;
    assert_eq!(res.body(), "anonymous");
    let expired = format!("Bearer {}", f.expired);
    let (res, calls) = send(layer(), &[("authorization", &expired)], Method::GET).await;
    assert_invalid_token(&res, calls, "the token has expired");
    let ok = format!("Bearer {}", f.token);
    let (res, _) = send(layer(), &[("authorization", &ok)], Method::GET).await;
    assert_eq!(res.body(), "alice");
}

#[tokio::test]
async fn required_mode_rejects_a_non_pat_bearer() {
    let f = fixture();
    let (res, calls) = send(
        PatLayer::new(f.store.clone()),
        &[("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x")],
        Method::GET,
    )
    .await;
    assert_invalid_token(
        &res,
        calls,
        "the credentials are not a personal access token",
    );
}

#[tokio::test]
async fn cors_preflight_passes_unless_configured() {
    let f = fixture();
    let preflight = [
        ("access-control-request-method", "PUT"),
        ("origin", "https://app.example"),
    ];
    let (res, calls) = send(PatLayer::new(f.store.clone()), &preflight, Method::OPTIONS).await;
    assert_eq!((res.status(), calls), (StatusCode::OK, 1));
    let (res, calls) = send(
        PatLayer::new(f.store.clone()).reject_preflight(true),
        &preflight,
        Method::OPTIONS,
    )
    .await;
    assert_eq!((res.status(), calls), (StatusCode::UNAUTHORIZED, 0));
    // A plain OPTIONS is not a preflight.
    let (res, _) = send(PatLayer::new(f.store.clone()), &[], Method::OPTIONS).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn realm_is_configurable() {
    let f = fixture();
    let (res, _) = send(
        PatLayer::new(f.store.clone()).realm("files"),
        &[],
        Method::GET,
    )
    .await;
    assert_eq!(
        challenges(&res)[1],
        "Basic realm=\"files\", charset=\"UTF-8\""
    );
}

#[tokio::test]
async fn rejection_response_is_customisable() {
    let f = fixture();
    let layer = PatLayer::new(f.store.clone()).on_rejection(|r: &Rejection| {
        let mut res = r.to_response(r.json_body());
        res.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        res
    });
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::from("inner")))
        });
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.body(), r#"{"error":"unauthorized"}"#);
    assert_eq!(res.headers().get_all(WWW_AUTHENTICATE).iter().count(), 2);
}

#[tokio::test]
async fn json_rejection_answers_json_with_the_status_and_challenges() {
    let f = fixture();
    let mut svc = ServiceBuilder::new()
        .layer(PatLayer::new(f.store.clone()).on_rejection(JsonRejection))
        .service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::from("inner")))
        });
    let req = Request::builder()
        .header("authorization", "Bearer ghp_x")
        .body(())
        .unwrap();
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.headers().get_all(WWW_AUTHENTICATE).iter().count(), 2);
    assert_eq!(
        res.body(),
        r#"{"error":"invalid_token","error_description":"the credentials are not a personal access token"}"#
    );
}

#[tokio::test]
async fn sliding_use_is_recorded_without_a_write() {
    let f = fixture();
    let new = NewToken::new(
        "carol",
        ExpiryPolicy::sliding(Duration::from_secs(600), None),
    );
    let created = f.store.create(&new, Timestamp::now()).unwrap();
    let auth = format!("Bearer {}", created.secret.expose_secret());
    let (res, _) = send(
        PatLayer::new(f.store.clone()),
        &[("authorization", &auth)],
        Method::GET,
    )
    .await;
    assert_eq!(res.body(), "carol");
    assert_eq!(
        f.store.pending_uses(),
        1,
        "recorded in memory, flushed later"
    );
}

mod axum_extractor {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;

    use super::*;

    async fn whoami(identity: Identity) -> String {
        identity.user().to_owned()
    }

    async fn maybe(identity: Option<Identity>) -> String {
        identity.map_or_else(|| "anonymous".to_owned(), |i| i.user().to_owned())
    }

    #[tokio::test]
    async fn route_layer_protects_only_matched_routes() {
        let f = fixture();
        let app = Router::new()
            .route("/whoami", get(whoami))
            .route_layer(PatLayer::new(f.store.clone()));
        let (status, _, _) = get_path(app.clone(), "/whoami", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, _) = get_path(app, "/nowhere", None).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "unmatched routes are not authenticated"
        );
    }

    fn app(layer: PatLayer) -> Router {
        Router::new()
            .route("/whoami", get(whoami))
            .route("/maybe", get(maybe))
            .layer(layer)
            .route("/unprotected", get(whoami))
            .route("/unprotected_maybe", get(maybe))
    }

    async fn get_path(
        app: Router,
        path: &str,
        auth: Option<&str>,
    ) -> (StatusCode, Vec<String>, String) {
        let mut req = Request::get(path);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = res.status();
        let challenges = res
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        (
            status,
            challenges,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn identity_extractor_gets_the_user() {
        let f = fixture();
        let auth = format!("Bearer {}", f.token);
        let (status, _, body) =
            get_path(app(PatLayer::new(f.store.clone())), "/whoami", Some(&auth)).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "alice"));
    }

    #[tokio::test]
    async fn optional_layer_with_required_extractor_answers_401_with_challenges() {
        let f = fixture();
        let layer = PatLayer::new(f.store.clone()).optional().realm("opt");
        let (status, challenges, _) = get_path(app(layer.clone()), "/whoami", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenges,
            [
                "Bearer realm=\"opt\"",
                "Basic realm=\"opt\", charset=\"UTF-8\""
            ]
        );
        let (status, _, body) = get_path(app(layer.clone()), "/maybe", None).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "anonymous"));
        let auth = format!("Bearer {}", f.token);
        let (_, _, body) = get_path(app(layer), "/maybe", Some(&auth)).await;
        assert_eq!(body, "alice");
    }

    #[tokio::test]
    async fn extractor_without_the_layer_fails_closed() {
        let f = fixture();
        let auth = format!("Bearer {}", f.token);
        let (status, _, _) = get_path(
            app(PatLayer::new(f.store.clone())),
            "/unprotected",
            Some(&auth),
        )
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    // Issue 29, item 3: the extractor answered an anonymous request 401
    // with an empty body, whatever the layer's `on_rejection`.
    #[tokio::test]
    async fn the_extractor_answers_an_anonymous_request_with_the_layers_hook() {
        let f = fixture();
        let json = PatLayer::new(f.store.clone())
            .optional()
            .on_rejection(crate::JsonRejection);
        let app = Router::new().route("/whoami", get(whoami)).layer(json);
        let res = app
            .oneshot(Request::get("/whoami").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(res.headers().get_all(WWW_AUTHENTICATE).iter().count(), 2);
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], br#"{"error":"unauthorized"}"#);
        // A closure hook, and the default (empty) one, alike.
        let custom = PatLayer::new(f.store.clone())
            .optional()
            .on_rejection(|r: &Rejection| r.to_response(Body::from("custom")));
        let app = Router::new().route("/whoami", get(whoami)).layer(custom);
        let (status, challenges, body) = get_path(app, "/whoami", None).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::UNAUTHORIZED, "custom")
        );
        assert_eq!(challenges.len(), 2);
        let plain = PatLayer::new(f.store.clone()).optional();
        let (status, _, body) = get_path(
            Router::new().route("/whoami", get(whoami)).layer(plain),
            "/whoami",
            None,
        )
        .await;
        assert_eq!((status, body.as_str()), (StatusCode::UNAUTHORIZED, ""));
    }

    #[tokio::test]
    async fn a_route_no_layer_covers_says_so() {
        let f = fixture();
        let auth = format!("Bearer {}", f.token);
        let app = || app(PatLayer::new(f.store.clone()));
        // The 500 names the cause and the fix, not just "internal error".
        let (status, _, body) = get_path(app(), "/unprotected", Some(&auth)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, pat_core::MissingIdentity::NO_MIDDLEWARE);
        assert!(body.contains("PatLayer"), "{body}");
        // Option<Identity> there is None, even with a valid token.
        let (status, _, body) = get_path(app(), "/unprotected_maybe", Some(&auth)).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "anonymous"));
    }
}

#[tokio::test]
async fn works_under_plain_hyper() {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let f = fixture();
    let svc = ServiceBuilder::new()
        .layer(PatLayer::new(f.store.clone()))
        .service_fn(|req: Request<hyper::body::Incoming>| async move {
            let user = req
                .extensions()
                .get::<Identity>()
                .map(|i| i.user().to_owned())
                .unwrap_or_default();
            Ok::<_, Infallible>(Response::new(user))
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    let exchange = |auth: Option<String>| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let req = format!("GET / HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    };
    let ok = exchange(Some(format!("Bearer {}", f.token))).await;
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.ends_with("alice"),
        "{ok}"
    );
    let denied = exchange(None).await;
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    assert!(
        denied.contains("www-authenticate: Basic realm=\"pat\", charset=\"UTF-8\""),
        "{denied}"
    );
}

#[tokio::test]
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
            let backend = if later {
                Scripted::later(answer)
            } else {
                Scripted::ready(answer)
            };
            let backend = Arc::new(backend);
            for layer in [
                PatLayer::new(backend.clone()),
                PatLayer::new(backend.clone()).optional(),
            ] {
                let (res, calls) = send(layer, &[("authorization", &bearer)], Method::GET).await;
                assert_eq!(res.status().as_u16(), status, "{name}, later={later}");
                assert_eq!(calls, 0, "{name}, later={later}: the inner service ran");
                assert_eq!(res.body(), "");
                let retry = res.headers().get(http::header::RETRY_AFTER);
                assert_eq!(retry.is_some(), status == 503, "{name}");
            }
        }
    }
}

#[tokio::test]
async fn a_backend_answering_later_reaches_the_service_with_the_identity() {
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
    let (res, calls) = send(
        PatLayer::new(later),
        &[("authorization", &bearer)],
        Method::GET,
    )
    .await;
    assert_eq!(
        (res.status(), res.body().as_str(), calls),
        (StatusCode::OK, "alice", 1)
    );
}
