//! The reference server for actix-web, with the HTTP contract of
//! `pat-tower`'s `axum_server` (the integration tests run the same cases
//! against both and compare the answers):
//!
//! ```sh
//! cargo run -p pat-actix --example actix_server -- --db pat.redb --addr 127.0.0.1:8080
//! ```
//!
//! - `GET /health`: 200 `ok`, no authentication;
//! - `GET /hello`: 200 `ok`, behind the middleware;
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
//! With `--sftp-addr ADDR`, the share is served over SFTP too, printing
//! `sftp listening on ADDR` after the HTTP line (see `common/sftp.rs`).
//!
//! Prints `listening on http://ADDR` once bound. Ctrl-C or SIGTERM stop it
//! gracefully, writing buffered token uses.

use std::collections::HashMap;

use actix_web::{App, HttpMessage as _, HttpResponse, HttpServer, web};
use clap::Parser as _;
use dav_server::actix::{DavRequest, DavResponse};
use pat_actix::{Identity, PatMiddleware, Perm, RequireScopes};

// The contract is defined once, beside the axum server.
#[path = "../../pat-tower/examples/common/contract.rs"]
mod contract;
#[path = "../../pat-tower/examples/common/dav.rs"]
mod dav;
#[path = "../../pat-tower/examples/common/server.rs"]
mod server;
#[path = "../../pat-tower/examples/common/sftp/mod.rs"]
mod sftp;
use contract::NodeAnswer;
use dav::{ByPath, Share};
use server::Args;

fn main() -> std::process::ExitCode {
    server::init_logging();
    let args = Args::parse();
    server::exit_code(actix_web::rt::System::new().block_on(serve(args)))
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

    // Built once and cloned into each worker's App.
    let pat = PatMiddleware::from_gate(gate);
    // Each route that needs a named permission, with its guard.
    let guarded = contract::GUARDED
        .iter()
        .map(|&(path, permission)| Ok((path, RequireScopes::all([permission])?.realm(&args.realm))))
        .collect::<Result<Vec<_>, pat_core::ScopeGuardError>>()?;
    let admin = backend.admin();
    let intro = backend.introspection(&args.introspectors);
    // One limiter for every worker.
    let leaks = args.leak_reports(backend.admin());
    let scanning = args.secret_scanning(backend.admin())?;
    let gitlab = args.gitlab_revocation(backend.admin())?;
    let management = backend.management();
    let admins: std::sync::Arc<std::collections::BTreeSet<String>> =
        std::sync::Arc::new(args.admins.iter().cloned().collect());
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(hygiene))
            .app_data(web::Data::new(share.clone()))
            .app_data(web::Data::from(metrics.clone()))
            .route("/health", web::get().to(|| async { "ok" }))
            // Public, and before the `/tokens` scope, which would take it.
            .service(pat_actix::leak_reports(
                "/tokens/report-leak",
                leaks.clone(),
            ))
            .service(pat_actix::secret_scanning(
                "/secret-scanning/github",
                scanning.clone(),
            ))
            .configure(|app| {
                if let Some(api) = &gitlab {
                    app.service(pat_actix::gitlab_revocation("/gitlab", api.clone()));
                }
            })
            .service(pat_actix::self_service("/tokens", admin.clone()).wrap(pat.clone()))
            .service(pat_actix::introspection("/introspect", intro.clone()).wrap(pat.clone()))
            .service(
                pat_actix::management("/api/tokens", management.clone(), {
                    let admins = admins.clone();
                    move |req| server::principal(&admins, req.extensions().get::<Identity>())
                })
                .wrap(pat.clone()),
            )
            .service(pat_actix::token_panel("/ui/tokens", "/api/tokens").wrap(pat.clone()))
            .configure(|app| {
                for (path, guard) in &guarded {
                    app.service(
                        web::resource(*path)
                            .wrap(guard.clone())
                            .wrap(pat.clone())
                            .route(web::get().to(|| async { "ok" })),
                    );
                }
            })
            .service(
                web::scope("")
                    .wrap(pat.clone())
                    .route("/hello", web::get().to(|| async { "ok" }))
                    .route("/whoami", web::get().to(whoami))
                    .route("/metrics", web::get().to(read_metrics))
                    .route("/nodes/by-path", web::get().to(node_by_path))
                    .route("/nodes/{id}", web::get().to(read_node))
                    .route("/nodes/{id}", web::put().to(write_node))
                    .route("/dav{tail:(/.*)?}", web::route().to(handle_dav)),
            )
    })
    .disable_signals()
    .client_request_timeout(pat_core::hygiene::HEAD_READ_TIMEOUT)
    .bind(args.addr)?;
    if let Some(n) = args.workers {
        server = server.workers(n.into());
    }
    let stop = server::shutdown_signal();
    for addr in server.addrs() {
        println!("listening on http://{addr}");
    }
    if let Some(sftp) = sftp {
        println!("sftp listening on {}", sftp.local_addr()?);
        tokio::spawn(sftp.run());
    }
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        stop.await;
        handle.stop(true).await;
    });
    server.await?;
    store.flush()?;
    Ok(())
}

/// `GET /metrics` (`server::Metrics`).
async fn read_metrics(identity: Identity, metrics: web::Data<server::Metrics>) -> HttpResponse {
    let (status, content_type, body) = metrics.answer(&identity);
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .content_type(content_type)
    .body(body)
}

async fn whoami(identity: Identity) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(contract::whoami_json(&identity))
}

/// `pat_core::hygiene::refuse_request`, before every route. (actix-web's
/// parser refuses `Content-Length` with `Transfer-Encoding` itself, alike.)
async fn hygiene(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::http::header;
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    let refused = pat_core::hygiene::refuse_request(
        target,
        req.headers().contains_key(header::CONTENT_LENGTH),
        req.headers().contains_key(header::TRANSFER_ENCODING),
    );
    let Some(answer) = refused else {
        let mut req = req;
        // HEAD is GET without the body (RFC 9110), as axum answers it on
        // every GET route: routed as GET, its body dropped here (actix-http
        // drops it too, but keeps one HEAD flag per connection, which a
        // pipelined request after it clears). WebDAV answers HEAD itself.
        let path = req.path();
        let dav = path == "/dav" || path.starts_with("/dav/");
        if req.method() == actix_web::http::Method::HEAD && !dav {
            req.head_mut().method = actix_web::http::Method::GET;
            let res = next.call(req).await?;
            return Ok(res
                .map_body(|_, _| actix_web::body::BoxBody::new(()))
                .map_into_right_body());
        }
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let status = actix_web::http::StatusCode::from_u16(answer.status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    let mut response = HttpResponse::build(status);
    if answer.close {
        response.force_close();
    }
    let response = if answer.body.is_empty() {
        response.finish()
    } else {
        response
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(answer.body)
    };
    Ok(req.into_response(response).map_into_right_body())
}

fn node(identity: &Identity, id: &str, perm: Perm) -> HttpResponse {
    match contract::node_answer(identity, id, perm) {
        NodeAnswer::Ok => HttpResponse::Ok().body("ok"),
        NodeAnswer::NoContent => HttpResponse::NoContent().finish(),
        NodeAnswer::Forbidden => HttpResponse::Forbidden().body("forbidden"),
        NodeAnswer::BadRequest => HttpResponse::BadRequest().body("invalid node id"),
    }
}

async fn read_node(identity: Identity, id: web::Path<String>) -> HttpResponse {
    node(&identity, &id, Perm::READ)
}

async fn write_node(identity: Identity, id: web::Path<String>) -> HttpResponse {
    node(&identity, &id, Perm::WRITE)
}

async fn node_by_path(
    share: web::Data<Share>,
    identity: Identity,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    match share.by_path(&identity, query.get("path").map(String::as_str)) {
        ByPath::Found(json) => HttpResponse::Ok().json(json),
        ByPath::BadRequest => HttpResponse::BadRequest().body("invalid path"),
        ByPath::Forbidden => HttpResponse::Forbidden().body("forbidden"),
        ByPath::NotFound => HttpResponse::NotFound().body("no such path"),
    }
}

async fn handle_dav(req: DavRequest, identity: Identity, share: web::Data<Share>) -> DavResponse {
    share.handle(req.request, identity).await.into()
}
