//! A bench-only server for issue 28's HTTP comparison (never part of the
//! reference servers' contract): the same actix-web handler served on two
//! ports by the same process, one behind `PatMiddleware` (a redb store
//! holding one hard token), one behind actix-web-httpauth's bearer check
//! comparing that same token, so that paired rounds of load against both
//! measure the guard and nothing else. `scripts/peers-http.sh` drives it.
//!
//! Prints `token T`, then `pat listening on ADDR` and `peer listening on
//! ADDR`. Stops on Ctrl-C or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use actix_web_httpauth::extractors::bearer::BearerAuth;
use actix_web_httpauth::middleware::HttpAuthentication;
use pat_actix::{Admin as _, ExpiryPolicy, NewToken, PatMiddleware, Store, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(
        Store::builder()
            .admin_socket(false)
            .open(dir.path().join("pat.redb"))?,
    );
    let created = store.create(
        &NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(86_400))),
        Timestamp::now(),
    )?;
    let token: Arc<str> = created.secret.expose_secret().into();
    let workers = std::env::var("PEERS_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    let pat = PatMiddleware::new(store.clone());
    actix_web::rt::System::new().block_on(async move {
        let pat_server = HttpServer::new(move || {
            App::new().service(
                web::resource("/hello")
                    .wrap(pat.clone())
                    .route(web::get().to(|| async { "ok" })),
            )
        })
        .workers(workers)
        .bind("127.0.0.1:0")?;
        let expected = token.clone();
        let peer_server = HttpServer::new(move || {
            let expected = expected.clone();
            App::new().service(
                web::resource("/hello")
                    .wrap(HttpAuthentication::bearer(
                        move |req, credentials: BearerAuth| {
                            let ok = credentials.token() == &*expected;
                            async move {
                                if ok {
                                    Ok(req)
                                } else {
                                    Err((actix_web::error::ErrorUnauthorized("no"), req))
                                }
                            }
                        },
                    ))
                    .route(web::get().to(|| async { "ok" })),
            )
        })
        .workers(workers)
        .bind("127.0.0.1:0")?;
        println!("token {token}");
        for addr in pat_server.addrs() {
            println!("pat listening on {addr}");
        }
        for addr in peer_server.addrs() {
            println!("peer listening on {addr}");
        }
        let (a, b) = futures_util::future::join(pat_server.run(), peer_server.run()).await;
        a?;
        b?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    store.flush()?;
    Ok(())
}
