//! Both adapters in process: the same requests through an axum app behind
//! `PatLayer` and an actix-web app behind `PatMiddleware`, on any backend.
//!
//! The reference apps have the reference servers' routes (`/health`,
//! `/hello`, `/whoami`, `/nodes/{id}`; the WebDAV share is tested against the
//! processes) and take their decisions from the very file the servers
//! include, `pat-tower/examples/common/contract.rs`.

use actix_web::web::ServiceConfig;
use http::Method;
use pat_core::{Gate, Identity, Perm};

use crate::contract::{Case, Seen};

#[path = "../../pat-tower/examples/common/contract.rs"]
#[allow(dead_code, unreachable_pub)]
pub(crate) mod decisions;
use decisions::NodeAnswer;

/// One request: method, path and headers.
#[derive(Clone, Debug)]
pub struct Req {
    /// The method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The headers, in order (a name may repeat).
    pub headers: Vec<(&'static str, String)>,
}

impl From<&Case> for Req {
    fn from(c: &Case) -> Req {
        Req {
            method: c.method.clone(),
            path: c.path.clone(),
            headers: c
                .authorization
                .iter()
                .map(|a| ("authorization", a.clone()))
                .collect(),
        }
    }
}

/// The reference server's routes in axum, behind `gate`.
pub fn reference_router(gate: &Gate) -> axum::Router {
    use axum::extract::Path;
    use axum::response::IntoResponse as _;
    use axum::routing::get;

    fn node(identity: &Identity, id: &str, perm: Perm) -> axum::response::Response {
        use http::StatusCode;
        match decisions::node_answer(identity, id, perm) {
            NodeAnswer::Ok => (StatusCode::OK, "ok").into_response(),
            NodeAnswer::NoContent => StatusCode::NO_CONTENT.into_response(),
            NodeAnswer::Forbidden => (StatusCode::FORBIDDEN, "forbidden").into_response(),
            NodeAnswer::BadRequest => (StatusCode::BAD_REQUEST, "invalid node id").into_response(),
        }
    }
    let mut guarded = axum::Router::new();
    for (path, permission) in decisions::GUARDED {
        guarded = guarded.merge(
            axum::Router::new()
                .route(path, get(|| async { "ok" }))
                .route_layer(pat_tower::RequireScopes::all([permission]).expect("a permission")),
        );
    }
    axum::Router::new()
        .route("/hello", get(|| async { "ok" }))
        .merge(guarded)
        .route(
            "/whoami",
            get(|identity: Identity| async move { axum::Json(decisions::whoami_json(&identity)) }),
        )
        .route(
            "/nodes/{id}",
            get(|identity: Identity, Path(id): Path<String>| async move {
                node(&identity, &id, Perm::READ)
            })
            .put(|identity: Identity, Path(id): Path<String>| async move {
                node(&identity, &id, Perm::WRITE)
            }),
        )
        .layer(pat_tower::PatLayer::from_gate(gate.clone()))
        .route("/health", get(|| async { "ok" }))
}

/// The reference server's routes in actix-web, behind `gate`.
pub fn reference_actix(gate: &Gate) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    use actix_web::{HttpResponse, web};

    fn node(identity: &Identity, id: &str, perm: Perm) -> HttpResponse {
        match decisions::node_answer(identity, id, perm) {
            NodeAnswer::Ok => HttpResponse::Ok().body("ok"),
            NodeAnswer::NoContent => HttpResponse::NoContent().finish(),
            NodeAnswer::Forbidden => HttpResponse::Forbidden().body("forbidden"),
            NodeAnswer::BadRequest => HttpResponse::BadRequest().body("invalid node id"),
        }
    }
    async fn read(identity: Identity, id: web::Path<String>) -> HttpResponse {
        node(&identity, &id, Perm::READ)
    }
    async fn write(identity: Identity, id: web::Path<String>) -> HttpResponse {
        node(&identity, &id, Perm::WRITE)
    }
    async fn whoami(identity: Identity) -> HttpResponse {
        HttpResponse::Ok().json(decisions::whoami_json(&identity))
    }
    let pat = pat_actix::PatMiddleware::from_gate(gate.clone());
    let guards: Vec<(&str, pat_actix::RequireScopes)> = decisions::GUARDED
        .iter()
        .map(|&(path, permission)| {
            (
                path,
                pat_actix::RequireScopes::all([permission]).expect("a permission"),
            )
        })
        .collect();
    move |cfg: &mut ServiceConfig| {
        for (path, guard) in &guards {
            cfg.service(
                web::resource(*path)
                    .wrap(guard.clone())
                    .wrap(pat.clone())
                    .route(web::get().to(|| async { "ok" })),
            );
        }
        cfg.route("/health", web::get().to(|| async { "ok" }))
            .service(
                web::scope("")
                    .wrap(pat.clone())
                    .route("/hello", web::get().to(|| async { "ok" }))
                    .route("/whoami", web::get().to(whoami))
                    .route("/nodes/{id}", web::get().to(read))
                    .route("/nodes/{id}", web::put().to(write)),
            );
    }
}

/// An axum app behind `gate` whose every route answers `user NAME`, or
/// `anonymous` without an identity.
pub fn echo_router(gate: &Gate) -> axum::Router {
    axum::Router::new()
        .fallback(|req: axum::extract::Request| async move {
            req.extensions()
                .get::<Identity>()
                .map_or_else(|| "anonymous".to_owned(), |i| format!("user {}", i.user()))
        })
        .layer(pat_tower::PatLayer::from_gate(gate.clone()))
}

/// [`echo_router`] in actix-web.
pub fn echo_actix(gate: &Gate) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    use actix_web::{HttpMessage as _, HttpRequest, web};
    async fn handler(req: HttpRequest) -> String {
        req.extensions()
            .get::<Identity>()
            .map_or_else(|| "anonymous".to_owned(), |i| format!("user {}", i.user()))
    }
    let pat = pat_actix::PatMiddleware::from_gate(gate.clone());
    move |cfg: &mut ServiceConfig| {
        cfg.service(
            web::scope("")
                .wrap(pat.clone())
                .default_service(web::to(handler)),
        );
    }
}

/// Sends `reqs` one by one through `app` on a Tokio runtime.
pub fn tower_seen(app: axum::Router, reqs: &[Req]) -> Vec<Seen> {
    use tower::ServiceExt as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut out = Vec::new();
        for r in reqs {
            let mut req = http::Request::builder()
                .method(r.method.clone())
                .uri(&r.path);
            for (k, v) in &r.headers {
                req = req.header(*k, v);
            }
            let req = req.body(axum::body::Body::empty()).expect("request");
            let res = match app.clone().oneshot(req).await {
                Ok(res) => res,
                Err(never) => match never {},
            };
            let status = res.status().as_u16();
            let challenges = res
                .headers()
                .get_all("www-authenticate")
                .iter()
                .map(|v| v.to_str().expect("ASCII challenge").to_owned())
                .collect();
            let body = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .expect("body");
            out.push(Seen {
                status,
                challenges,
                body: String::from_utf8(body.to_vec()).expect("UTF-8 body"),
            });
        }
        out
    })
}

/// Sends `reqs` one by one through an actix-web app configured by
/// `configure`, on an actix system.
pub fn actix_seen(configure: impl Fn(&mut ServiceConfig), reqs: &[Req]) -> Vec<Seen> {
    use actix_web::{App, test};
    actix_web::rt::System::new().block_on(async {
        let app = test::init_service(App::new().configure(configure)).await;
        let mut out = Vec::new();
        for r in reqs {
            let method =
                actix_web::http::Method::from_bytes(r.method.as_str().as_bytes()).expect("method");
            let mut req = test::TestRequest::default().method(method).uri(&r.path);
            for (k, v) in &r.headers {
                req = req.append_header((*k, v.as_str()));
            }
            let res = test::call_service(&app, req.to_request()).await;
            let status = res.status().as_u16();
            let challenges = res
                .headers()
                .get_all("www-authenticate")
                .map(|v| v.to_str().expect("ASCII challenge").to_owned())
                .collect();
            let body = test::read_body(res).await;
            out.push(Seen {
                status,
                challenges,
                body: String::from_utf8(body.to_vec()).expect("UTF-8 body"),
            });
        }
        out
    })
}

/// Serves `app` on 127.0.0.1 on a thread of its own (a two-thread
/// runtime) for the rest of the test process; its `http://ADDR`.
pub fn serve(app: axum::Router) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{}", rx.recv().expect("the service's address"))
}

/// An introspection endpoint (`/introspect`) over `store`, for callers
/// whose user is `gateway`.
pub fn endpoint_over(store: &std::sync::Arc<pat_core::MemoryStore>) -> axum::Router {
    use pat_core::introspection::Introspection;
    axum::Router::new()
        .route(
            "/introspect",
            pat_tower::introspection(Introspection::new(store.clone()).allow_users(["gateway"])),
        )
        .layer(pat_tower::PatLayer::new(store.clone()))
}
