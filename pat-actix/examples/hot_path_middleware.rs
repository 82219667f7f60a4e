//! A driver for instruction counts of a cached request through
//! `PatMiddleware`, for `valgrind --tool=callgrind` (see
//! `scripts/callgrind.sh`): `hot_path_middleware KIND N` sends one request
//! with a cached token (KIND `hard`, `sliding` or `basic`; `peer` and
//! `limited` from 127.0.0.1), then `N` more,
//! through the middleware over a trivial handler, on actix's test service.
//! Run it with two values of `N` and subtract.
//!
//! The peers of issue 28 over the same handler and request: `bare` (no
//! middleware: the floor every added cost is counted from) and `static`
//! (actix-web-httpauth's `HttpAuthentication::bearer`, its validator
//! comparing one static token).

use std::hint::black_box;

use actix_web::dev::Service as _;
use actix_web::{App, test, web};
use actix_web_httpauth::extractors::bearer::BearerAuth;
use actix_web_httpauth::middleware::HttpAuthentication;
use pat_actix::PatMiddleware;

#[path = "../../pat-tower/examples/common/driver.rs"]
mod driver;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let driver::Driver {
        kind,
        secret,
        _dir,
        store,
        header,
        n,
    } = driver::driver("hot_path_middleware")?;
    let system = actix_web::rt::System::new();
    let secret: std::sync::Arc<str> = secret.into();
    system.block_on(async {
        let route = || web::scope("").route("/", web::get().to(|| async { "" }));
        let pat = PatMiddleware::new(store.clone());
        let peer = HttpAuthentication::bearer(move |req, credentials: BearerAuth| {
            let ok = credentials.token() == &*secret;
            async move {
                if ok {
                    Ok(req)
                } else {
                    Err((actix_web::error::ErrorUnauthorized("no"), req))
                }
            }
        });
        let service = test::init_service(match kind.as_str() {
            "bare" => App::new().service(route()),
            "static" => App::new().service(route().wrap(peer)),
            // The route behind a scope guard the token passes.
            "guarded" => App::new().service(
                route()
                    .wrap(pat_actix::RequireScopes::all(["repo:read"]).expect("a permission"))
                    .wrap(pat),
            ),
            _ => App::new().service(route().wrap(pat)),
        })
        .await;
        let from_peer = kind == "peer" || kind == "limited";
        let once = || async {
            let mut request = test::TestRequest::get()
                .uri("/")
                .insert_header(("authorization", header.as_str()));
            if from_peer {
                request = request.peer_addr(([127, 0, 0, 1], 40000).into());
            }
            let request = request.to_request();
            match service.call(request).await {
                Ok(response) => response.status().as_u16(),
                Err(e) => e.as_response_error().status_code().as_u16(),
            }
        };
        if once().await != 200 {
            return Err::<(), Box<dyn std::error::Error>>("the token was refused".into());
        }
        for _ in 0..n {
            black_box(once().await);
        }
        Ok(())
    })
}
