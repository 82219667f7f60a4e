//! The reference server: an axum service behind `PatLayer`.
//!
//! ```sh
//! cargo run -p pat-tower --example axum_server -- --db pat.redb --addr 127.0.0.1:8080
//! ```
//!
//! The HTTP contract, shared with `pat-actix`'s `actix_server` and checked by
//! the integration tests against both:
//! - `GET /health`: 200 `ok`, no authentication;
//! - `GET /hello`: 200 `ok`, behind the layer;
//! - `GET /whoami`: 200 JSON `{"user", "token_id", "scopes", "expires_at"}`;
//! - `GET /demo/read`, `GET /demo/write`: 200 `ok` for a token holding the
//!   named permission `demo:read` or `demo:write` (declared in the store's
//!   catalog at start), else 403 `insufficient_scope`;
//! - `GET /nodes/{uuid}`: 200 `ok` if the token may read the node, else 403
//!   `forbidden`; `PUT /nodes/{uuid}`: 204 if it may write, else 403;
//!   400 `invalid node id` when `{uuid}` is not a UUID;
//! - `GET /nodes/by-path?path=/a/b`: `{"node", "path"}` of a file or folder of
//!   the share, for unscoped tokens (403 for scoped ones, 404 if missing);
//! - `/dav/`: a WebDAV share of `--dav-root`, for Basic `user:token` clients;
//!   a scoped token reaches only its nodes (403 elsewhere, see `common/dav.rs`);
//! - `GET /tokens/self`, `DELETE /tokens/self`, `POST /tokens/self/rotate`:
//!   the presenting token looks itself up, revokes or rotates itself
//!   (`pat_core::self_service`), JSON; changes follow `pat_core::csrf`;
//! - `POST /introspect`: RFC 7662 introspection (`pat_core::introspection`)
//!   for callers whose user is named by `--introspector USER`; 403 for others;
//! - `GET /ui/tokens`: the token panel (`pat_core::panel`), a page that
//!   manages the caller's tokens through `/api/tokens`: `GET` (list), `POST`
//!   (create), `DELETE /api/tokens/{id}` (revoke), JSON
//!   (`pat_core::management`); the principal is the PAT user behind the
//!   layer (a browser's Basic-auth dialog), an admin if named by
//!   `--admin USER`;
//! - `GET /metrics`: what pat counted (`pat_core::metrics`), as Prometheus
//!   text, for callers whose user is named by `--metrics-reader USER`; 403
//!   for others;
//! - `POST /tokens/report-leak`: public leak reports (`pat_core::leaks`): a
//!   JSON array of tokens, the live ones revoked; 202 whatever they were;
//!   limited per client, read from the headers of a `--trusted-proxy CIDR`;
//! - `POST /secret-scanning/github`: GitHub's secret scanning partner
//!   endpoint (`pat_core::secret_scanning`): signed reports, checked with
//!   the keys of `--github-keys PATH`, the live tokens revoked; public;
//! - `GET /gitlab/v1/revocable_token_types`, `POST /gitlab/v1/revoke_tokens`:
//!   GitLab's Token Revocation API (`pat_core::gitlab_revocation`), with the
//!   secret in `--gitlab-secret-file PATH` (not served without it); public.
//!
//! With `--sftp-addr ADDR`, the share of `/dav/` is served over SFTP too, to
//! a user name and a token as the password (see `common/sftp.rs`).
//!
//! Prints `listening on http://ADDR` once the socket is bound (then
//! `sftp listening on ADDR` with `--sftp-addr`). Ctrl-C or
//! SIGTERM stop it gracefully, writing buffered token uses.

use std::collections::HashMap;

use axum::extract::{Path, Query, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Extension, Json, Router};
use clap::Parser as _;
use pat_tower::{Identity, PatLayer, Perm, RequireScopes};

#[path = "common/contract.rs"]
mod contract;
#[path = "common/dav.rs"]
mod dav;
#[path = "common/server.rs"]
mod server;
#[path = "common/sftp/mod.rs"]
mod sftp;
use contract::NodeAnswer;
use dav::{ByPath, Share};
use server::Args;

fn main() -> std::process::ExitCode {
    server::init_logging();
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.workers {
        runtime.worker_threads(n.into());
    }
    let result = runtime
        .enable_all()
        .build()
        .map_err(Into::into)
        .and_then(|rt| rt.block_on(serve(args)));
    server::exit_code(result)
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let sftp_key = args.sftp_key()?;
    // Before the store and the gate: they take their handles when built.
    let metrics = std::sync::Arc::new(server::Metrics::install(&args)?);
    let backend = args.backend()?;
    // Delivering until the server exits.
    let _webhooks = args.webhooks(backend.admin())?;
    args.expiry_notices(backend.admin())?;
    let store = backend.verifier();
    let share = args.share()?;
    let gate = args.gate(store.clone());
    let sftp = server::sftp(sftp_key, &share, gate.clone()).await?;
    let admins: std::collections::BTreeSet<String> = args.admins.iter().cloned().collect();

    // The share is handed only to the routes that use it, so that `/hello`
    // differs from `/health` by the PatLayer alone.
    let share_routes = Router::new()
        .route("/nodes/by-path", get(node_by_path))
        .route("/dav", any(handle_dav))
        .route("/dav/", any(handle_dav))
        .route("/dav/{*path}", any(handle_dav))
        .layer(Extension(share));
    // Each route that needs a named permission, behind its guard.
    let mut guarded = Router::new();
    for (path, permission) in contract::GUARDED {
        guarded = guarded.merge(
            Router::new()
                .route(path, get(|| async { "ok" }))
                .route_layer(RequireScopes::all([permission])?.realm(&args.realm)),
        );
    }
    let app = Router::new()
        .route("/hello", get(|| async { "ok" }))
        .merge(guarded)
        .route("/whoami", get(whoami))
        .route("/nodes/{id}", get(read_node).put(write_node))
        .nest("/tokens", pat_tower::self_service(backend.admin()))
        .route(
            "/introspect",
            pat_tower::introspection(backend.introspection(&args.introspectors)),
        )
        .nest(
            "/api/tokens",
            pat_tower::management(backend.management(), move |req| {
                server::principal(&admins, req.extensions.get::<Identity>())
            }),
        )
        .route("/ui/tokens", pat_tower::token_panel("/api/tokens"))
        .route(
            "/metrics",
            get(move |Extension(caller): Extension<Identity>| async move {
                let (status, content_type, body) = metrics.answer(&caller);
                (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    [(axum::http::header::CONTENT_TYPE, content_type)],
                    body,
                )
            }),
        )
        .merge(share_routes)
        .layer(PatLayer::from_gate(gate))
        .route("/health", get(|| async { "ok" }))
        .route(
            "/tokens/report-leak",
            pat_tower::leak_reports(args.leak_reports(backend.admin())),
        )
        .route(
            "/secret-scanning/github",
            pat_tower::secret_scanning(args.secret_scanning(backend.admin())?),
        );
    let app = match args.gitlab_revocation(backend.admin())? {
        Some(api) => app.nest("/gitlab", pat_tower::gitlab_revocation(api)),
        None => app,
    }
    .layer(axum::middleware::from_fn(hygiene));

    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let stop = server::shutdown_signal();
    println!("listening on http://{}", listener.local_addr()?);
    if let Some(sftp) = sftp {
        println!("sftp listening on {}", sftp.local_addr()?);
        tokio::spawn(sftp.run());
    }
    serve_http1(listener, app, stop).await;
    store.flush()?;
    Ok(())
}

/// Serves HTTP/1.1 until `stop` (Ctrl-C or SIGTERM), then lets open
/// requests finish.
///
/// `axum::serve` would do, but hyper's limits are set here to actix-web's
/// (request headers at most 128 KiB and 96 of them, else 431), so that both
/// reference servers answer every request alike, and headers must arrive
/// within `pat_core::hygiene::HEAD_READ_TIMEOUT`.
async fn serve_http1(
    listener: tokio::net::TcpListener,
    app: Router,
    stop: impl std::future::Future<Output = ()>,
) {
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, say: retrying at once would spin
                    // and flood the log (actix-web's server pauses too).
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(pat_core::hygiene::HEAD_READ_TIMEOUT)
            .max_header_size(128 * 1024)
            .max_headers(96)
            .serve_connection(
                TokioIo::new(stream),
                // The peer's address, for the leak reports' rate limit.
                TowerToHyperService::new(
                    app.clone()
                        .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
                ),
            );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}

async fn whoami(identity: Identity) -> Response {
    (
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(contract::whoami_json(&identity)),
    )
        .into_response()
}

/// `pat_core::hygiene::refuse_request`, before every route.
async fn hygiene(req: Request, next: axum::middleware::Next) -> Response {
    use axum::http::header;
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    let headers = req.headers();
    let refused = pat_core::hygiene::refuse_request(
        target,
        headers.contains_key(header::CONTENT_LENGTH),
        headers.contains_key(header::TRANSFER_ENCODING),
    );
    let Some(answer) = refused else {
        return next.run(req).await;
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = if answer.body.is_empty() {
        status.into_response()
    } else {
        (
            status,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            answer.body,
        )
            .into_response()
    };
    if answer.close {
        response.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

fn node(identity: &Identity, id: &str, perm: Perm) -> Response {
    match contract::node_answer(identity, id, perm) {
        NodeAnswer::Ok => (StatusCode::OK, "ok").into_response(),
        NodeAnswer::NoContent => StatusCode::NO_CONTENT.into_response(),
        NodeAnswer::Forbidden => (StatusCode::FORBIDDEN, "forbidden").into_response(),
        NodeAnswer::BadRequest => (StatusCode::BAD_REQUEST, "invalid node id").into_response(),
    }
}

async fn read_node(identity: Identity, Path(id): Path<String>) -> Response {
    node(&identity, &id, Perm::READ)
}

async fn write_node(identity: Identity, Path(id): Path<String>) -> Response {
    node(&identity, &id, Perm::WRITE)
}

async fn node_by_path(
    Extension(share): Extension<Share>,
    identity: Identity,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match share.by_path(&identity, query.get("path").map(String::as_str)) {
        ByPath::Found(json) => Json(json).into_response(),
        ByPath::BadRequest => (StatusCode::BAD_REQUEST, "invalid path").into_response(),
        ByPath::Forbidden => (StatusCode::FORBIDDEN, "forbidden").into_response(),
        ByPath::NotFound => (StatusCode::NOT_FOUND, "no such path").into_response(),
    }
}

async fn handle_dav(
    Extension(share): Extension<Share>,
    identity: Identity,
    req: Request,
) -> impl IntoResponse {
    share.handle(req, identity).await
}
