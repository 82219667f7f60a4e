//! A bench-only server for issue 28's HTTP comparison (never part of the
//! reference servers' contract): the same axum handler served on two ports
//! by the same process, one behind `PatLayer` (a redb store holding one
//! hard token), one behind tower-http's static bearer check with that same
//! token, so that paired rounds of load against both measure the guard and
//! nothing else. `scripts/peers-http.sh` drives it.
//!
//! Prints `token T`, then `pat listening on ADDR` and `peer listening on
//! ADDR`. Stops on Ctrl-C or SIGTERM.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use pat_tower::{Admin as _, ExpiryPolicy, NewToken, PatLayer, Store, Timestamp};

// Only the static peer is served here.
#[allow(dead_code)]
#[path = "common/peers.rs"]
mod peers;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = std::sync::Arc::new(
        Store::builder()
            .admin_socket(false)
            .open(dir.path().join("pat.redb"))?,
    );
    let created = store.create(
        &NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(86_400))),
        Timestamp::now(),
    )?;
    let token = created.secret.expose_secret().to_owned();
    let workers = std::env::var("PEERS_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    let layer = PatLayer::new(store.clone());
    rt.block_on(async move {
        let hello = || Router::new().route("/hello", get(|| async { "ok" }));
        let pat = hello().layer(layer);
        let peer = hello().layer(peers::static_bearer(&token));
        let pat_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let peer_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("token {token}");
        println!("pat listening on {}", pat_listener.local_addr()?);
        println!("peer listening on {}", peer_listener.local_addr()?);
        tokio::select! {
            r = axum::serve(pat_listener, pat) => r?,
            r = axum::serve(peer_listener, peer) => r?,
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    store.flush()?;
    Ok(())
}
