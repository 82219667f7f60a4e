//! A driver for instruction counts of a cached request through `PatLayer`,
//! for `valgrind --tool=callgrind` (see `scripts/callgrind.sh`):
//! `hot_path_layer KIND N` sends one request with a cached token (KIND
//! `hard`, `sliding` or `basic`; `peer` and `limited` from 127.0.0.1),
//! then `N` more, through the layer over a
//! trivial handler. Run it with two values of `N` and subtract.
//!
//! The peers of issue 28 over the same handler and request: `bare` (no
//! check: the floor every added cost is counted from), `static`
//! (tower-http's `ValidateRequestHeaderLayer::bearer`) and `digest` (a
//! SHA-256 lookup in a papaya map behind `AsyncRequireAuthorizationLayer`)
//! and `digest_expiry` (the same with each token's deadline checked); see
//! `common/peers.rs`.

use std::convert::Infallible;
use std::hint::black_box;

use futures_util::FutureExt as _;
use http::{Request, Response};

use pat_tower::PatLayer;
use tower::{Service, ServiceBuilder};

#[path = "common/driver.rs"]
mod driver;
#[path = "common/peers.rs"]
mod peers;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let driver::Driver {
        kind,
        secret,
        _dir,
        store,
        header,
        n,
    } = driver::driver("hot_path_layer")?;
    let handler = || {
        tower::service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        })
    };
    match kind.as_str() {
        "bare" => drive(handler(), &header, n, false),
        "static" => drive(
            ServiceBuilder::new()
                .layer(peers::static_bearer(&secret))
                .service(handler()),
            &header,
            n,
            false,
        ),
        "digest" => drive(
            ServiceBuilder::new()
                .layer(peers::DigestPeer::new(&[("alice", &secret)], 0).layer())
                .service(handler()),
            &header,
            n,
            false,
        ),
        "digest_expiry" => drive(
            ServiceBuilder::new()
                .layer(
                    peers::DigestPeer::new(&[("alice", &secret)], 0)
                        .expiring()
                        .layer(),
                )
                .service(handler()),
            &header,
            n,
            false,
        ),
        // The route behind a scope guard the token passes.
        "guarded" => drive(
            ServiceBuilder::new()
                .layer(PatLayer::new(store.clone()))
                .layer(pat_tower::RequireScopes::all(["repo:read"])?)
                .service(handler()),
            &header,
            n,
            false,
        ),
        _ => drive(
            ServiceBuilder::new()
                .layer(PatLayer::new(store.clone()))
                .service(handler()),
            &header,
            n,
            kind == "peer" || kind == "limited",
        ),
    }
}

/// One request, then `n` more, through `service`, each answered at once;
/// from 127.0.0.1 when `from_peer` (the connection's address, as a server
/// inserts it).
fn drive<S>(
    mut service: S,
    header: &str,
    n: u64,
    from_peer: bool,
) -> Result<(), Box<dyn std::error::Error>>
where
    S: Service<Request<()>, Response = Response<String>>,
    S::Error: std::error::Error + 'static,
{
    let mut once = || -> Result<u16, Box<dyn std::error::Error>> {
        let mut request = Request::builder()
            .header("authorization", header)
            .body(())?;
        if from_peer {
            request
                .extensions_mut()
                .insert(pat_tower::PeerAddr(std::net::Ipv4Addr::LOCALHOST.into()));
        }
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .now_or_never()
            .ok_or("not ready")??;
        let response = service
            .call(request)
            .now_or_never()
            .ok_or("a cached token answered later")??;
        Ok(response.status().as_u16())
    };
    if once()? != 200 {
        return Err("the token was refused".into());
    }
    for _ in 0..n {
        black_box(once()?);
    }
    Ok(())
}
