//! What `PatMiddleware` adds to a request, in process: the same trivial
//! handler with and without the middleware, in a store of 100,000 tokens.
//! The overhead is `middleware/bearer` minus `middleware/none`; compare it
//! with `store/hard/100000` of `cargo bench -p pat-core`.
//!
//! The peer of issue 28 takes the same request over the same handler:
//! `peer/static_bearer`, actix-web-httpauth's `HttpAuthentication::bearer`
//! with a validator comparing one static token (the floor of any bearer
//! check); `scripts/peers.sh` gives the same in instruction counts.
//!
//! Run with `cargo bench -p pat-actix`.

use std::hint::black_box;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, test, web};
use actix_web_httpauth::extractors::bearer::BearerAuth;
use actix_web_httpauth::middleware::HttpAuthentication;
use criterion::{Criterion, criterion_group, criterion_main};
use pat_actix::PatMiddleware;

#[path = "../../pat-tower/benches/common/fixture.rs"]
mod fixture;

fn bench(c: &mut Criterion) {
    let fixture::Fixture {
        _dir,
        store,
        hard,
        sliding,
        basic,
        unknown,
        limited,
    } = fixture::fixture();

    let system = actix_web::rt::System::new();
    let (bare, layered, peer) = system.block_on(async {
        let bare =
            test::init_service(App::new().route("/", web::get().to(|| async { "ok" }))).await;
        let layered = test::init_service(
            App::new().service(
                web::scope("")
                    .wrap(PatMiddleware::new(store.clone()))
                    .route("/", web::get().to(|| async { "ok" })),
            ),
        )
        .await;
        let token: std::sync::Arc<str> = hard
            .strip_prefix("Bearer ")
            .expect("a bearer header")
            .into();
        let peer = test::init_service(
            App::new().service(
                web::scope("")
                    .wrap(HttpAuthentication::bearer(
                        move |req, credentials: BearerAuth| {
                            let ok = credentials.token() == &*token;
                            async move {
                                if ok {
                                    Ok(req)
                                } else {
                                    Err((actix_web::error::ErrorUnauthorized("no"), req))
                                }
                            }
                        },
                    ))
                    .route("/", web::get().to(|| async { "ok" })),
            ),
        )
        .await;
        (bare, layered, peer)
    });
    // The bare handler gets the very same request, header included, so the
    // difference is the middleware's alone.
    case(c, &system, "middleware/none (health)", &bare, Some(&hard));
    case(
        c,
        &system,
        "middleware/bearer (hello)",
        &layered,
        Some(&hard),
    );
    // Issue 26: from a known peer, a token without rules and one with an
    // address rule and a rate limit it passes.
    let local = Some(([127, 0, 0, 1], 40000).into());
    case_from(
        c,
        &system,
        "middleware/bearer_from_peer",
        &layered,
        Some(&hard),
        local,
    );
    case_from(
        c,
        &system,
        "middleware/limited_from_peer",
        &layered,
        Some(&limited),
        local,
    );
    case(
        c,
        &system,
        "middleware/bearer_sliding",
        &layered,
        Some(&sliding),
    );
    case(c, &system, "middleware/basic", &layered, Some(&basic));
    case(c, &system, "peer/static_bearer", &peer, Some(&hard));
    case(
        c,
        &system,
        "middleware/rejected_unknown",
        &layered,
        Some(&unknown),
    );
}

fn case<S, B>(
    c: &mut Criterion,
    system: &actix_web::rt::SystemRunner,
    name: &str,
    svc: &S,
    auth: Option<&str>,
) where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    case_from(c, system, name, svc, auth, None);
}

/// [`case`] with the request from `peer`, as a server sets it.
fn case_from<S, B>(
    c: &mut Criterion,
    system: &actix_web::rt::SystemRunner,
    name: &str,
    svc: &S,
    auth: Option<&str>,
    peer: Option<std::net::SocketAddr>,
) where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    c.bench_function(name, |b| {
        b.iter(|| {
            let mut req = test::TestRequest::get().uri("/");
            if let Some(a) = auth {
                req = req.insert_header(("authorization", a));
            }
            if let Some(peer) = peer {
                req = req.peer_addr(peer);
            }
            let res = system.block_on(svc.call(req.to_request()));
            black_box(res.map(|r| r.status()).ok())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
