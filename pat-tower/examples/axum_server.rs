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
//! - `GET /nodes/{uuid}`: 200 `ok` if the token may read the node, else 403
//!   `forbidden`; `PUT /nodes/{uuid}`: 204 if it may write, else 403;
//!   400 `invalid node id` when `{uuid}` is not a UUID;
//! - `/dav/`: a WebDAV share of `--dav-root`, for Basic `user:token` clients.
//!
//! Prints `listening on http://ADDR` once the socket is bound. Ctrl-C or
//! SIGTERM stop it gracefully, writing buffered token uses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Extension, Json, Router};
use clap::Parser;
use dav_server::DavHandler;
use dav_server::fakels::FakeLs;
use dav_server::localfs::LocalFs;
use pat_core::{Identity, NodeId, Perm, Store};
use pat_tower::PatLayer;

/// Reference server for pat-tower.
#[derive(Debug, Parser)]
struct Args {
    /// Token store file (created if missing).
    #[arg(long, default_value = "pat.redb", value_name = "PATH")]
    db: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    addr: SocketAddr,
    /// Folder shared over WebDAV at /dav/ [default: a `dav` folder next to the store].
    #[arg(long, value_name = "DIR")]
    dav_root: Option<PathBuf>,
    /// Realm of the WWW-Authenticate challenges.
    #[arg(long, default_value = pat_core::DEFAULT_REALM, value_name = "NAME")]
    realm: String,
    /// Runtime worker threads [default: one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
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
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(Store::open(&args.db)?);
    let dav_root = match args.dav_root {
        Some(dir) => dir,
        None => args
            .db
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("dav"),
    };
    std::fs::create_dir_all(&dav_root)?;
    let dav = DavHandler::builder()
        .filesystem(LocalFs::new(&dav_root, false, false, false))
        .locksystem(FakeLs::new())
        .strip_prefix("/dav")
        .build_handler();

    let app = Router::new()
        .route("/hello", get(|| async { "ok" }))
        .route("/whoami", get(whoami))
        .route("/nodes/{id}", get(read_node).put(write_node))
        .route("/dav", any(handle_dav))
        .route("/dav/", any(handle_dav))
        .route("/dav/{*path}", any(handle_dav))
        .layer(Extension(dav))
        .layer(PatLayer::new(store.clone()).realm(&args.realm))
        .route("/health", get(|| async { "ok" }));

    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    store.flush()?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn whoami(identity: Identity) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "user": identity.user,
        "token_id": identity.token_id.to_string(),
        "scopes": identity.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "expires_at": identity.expires_at.to_string(),
    }))
}

fn node_access(identity: &Identity, id: &str, perm: Perm, granted: StatusCode) -> Response {
    let Some(node) = NodeId::parse(id) else {
        return (StatusCode::BAD_REQUEST, "invalid node id").into_response();
    };
    if !identity.permits([&node], perm) {
        return (StatusCode::FORBIDDEN, "forbidden").into_response();
    }
    if granted == StatusCode::NO_CONTENT {
        granted.into_response()
    } else {
        (granted, "ok").into_response()
    }
}

async fn read_node(identity: Identity, Path(id): Path<String>) -> Response {
    node_access(&identity, &id, Perm::READ, StatusCode::OK)
}

async fn write_node(identity: Identity, Path(id): Path<String>) -> Response {
    node_access(&identity, &id, Perm::WRITE, StatusCode::NO_CONTENT)
}

async fn handle_dav(Extension(dav): Extension<DavHandler>, req: Request) -> impl IntoResponse {
    dav.handle(req).await
}
