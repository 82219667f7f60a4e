//! What `PatLayer` adds to a request, in process: the same trivial handler
//! with and without the layer (the `/health` vs `/hello` comparison of the
//! reference server, minus the network), in a store of 100,000 tokens.
//! The layer's overhead is `layer/bearer` minus `layer/none`; compare it with
//! `store/hard/100000` of `cargo bench -p pat-core`.
//!
//! `layer/remote_cached` is the same request checked by a
//! `RemoteVerifier` whose answer is cached (an introspection endpoint over
//! the same store runs in the background, asked once): what a service with
//! no store of its own pays per request between two round trips.
//!
//! The peers of issue 28 take the same request over the same handler:
//! `peer/static_bearer` (tower-http's `ValidateRequestHeaderLayer::bearer`,
//! the floor of any bearer check) and `peer/digest` (a SHA-256 lookup in a
//! papaya map of 100,001 digests behind `AsyncRequireAuthorizationLayer`:
//! what writing it yourself costs). See `examples/common/peers.rs`, and
//! `scripts/peers.sh` for the same comparison in instruction counts.
//!
//! Run with `cargo bench -p pat-tower`.

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use pat_tower::PatLayer;
use tower::{Service, ServiceBuilder, ServiceExt as _};

#[path = "common/fixture.rs"]
mod fixture;
#[path = "../examples/common/peers.rs"]
mod peers;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let fixture::Fixture {
        _dir,
        store,
        hard,
        sliding,
        basic,
        unknown,
        limited,
    } = fixture::fixture();

    let handler = || {
        tower::service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::from("ok")))
        })
    };
    let mut bare = handler();
    let mut layered = ServiceBuilder::new()
        .layer(PatLayer::new(store.clone()))
        .service(handler());

    // The bare handler gets the very same request, header included, so the
    // difference is the layer's alone.
    bench_service(c, &rt, "layer/none (health)", &mut bare, Some(&hard));
    bench_service(c, &rt, "layer/bearer (hello)", &mut layered, Some(&hard));
    bench_service(c, &rt, "layer/bearer_sliding", &mut layered, Some(&sliding));
    // Issue 26: the same request from a known peer, with a token without
    // rules and with an address rule and a rate limit it passes.
    bench_from_peer(c, &rt, "layer/bearer_from_peer", &mut layered, &hard);
    bench_from_peer(c, &rt, "layer/limited_from_peer", &mut layered, &limited);
    bench_service(c, &rt, "layer/basic", &mut layered, Some(&basic));
    bench_service(
        c,
        &rt,
        "layer/rejected_unknown",
        &mut layered,
        Some(&unknown),
    );
    let token = hard.strip_prefix("Bearer ").expect("a bearer header");
    let mut static_peer = ServiceBuilder::new()
        .layer(peers::static_bearer(token))
        .service(handler());
    bench_service(c, &rt, "peer/static_bearer", &mut static_peer, Some(&hard));
    let digest = peers::DigestPeer::new(&[("alice", token)], 100_000);
    let mut digest_peer = ServiceBuilder::new()
        .layer(digest.layer())
        .service(handler());
    bench_service(c, &rt, "peer/digest", &mut digest_peer, Some(&hard));
    let mut expiring_peer = ServiceBuilder::new()
        .layer(digest.clone().expiring().layer())
        .service(handler());
    bench_service(
        c,
        &rt,
        "peer/digest_expiry",
        &mut expiring_peer,
        Some(&hard),
    );
    let mut remote = ServiceBuilder::new()
        .layer(PatLayer::new(remote_verifier(&store)))
        .service(handler());
    // The first request asks the endpoint; every one measured is cached.
    let first = rt.block_on(call_once(
        &mut remote,
        Request::builder()
            .header("authorization", &hard)
            .body(())
            .expect("request"),
    ));
    assert_eq!(first.status(), 200, "the remote verifier's first answer");
    bench_service(c, &rt, "layer/remote_cached", &mut remote, Some(&hard));
    let malformed = "Bearer pat_00000000000000000000000000000000000000";
    bench_service(
        c,
        &rt,
        "layer/rejected_malformed",
        &mut layered,
        Some(malformed),
    );
}

fn bench_service<S>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    svc: &mut S,
    auth: Option<&str>,
) where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible>,
{
    c.bench_function(name, |b| {
        b.iter(|| {
            let mut req = Request::builder();
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let req = req.body(()).expect("request");
            black_box(rt.block_on(call_once(svc, req)))
        })
    });
}

/// [`bench_service`] with the request from 127.0.0.1, as a server
/// inserts its connection's peer.
fn bench_from_peer<S>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    svc: &mut S,
    auth: &str,
) where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible>,
{
    let peer = pat_tower::PeerAddr(std::net::Ipv4Addr::LOCALHOST.into());
    c.bench_function(name, |b| {
        b.iter(|| {
            let mut req = Request::builder()
                .header("authorization", auth)
                .body(())
                .expect("request");
            req.extensions_mut().insert(peer);
            let res = rt.block_on(call_once(svc, req));
            assert_eq!(res.status(), 200);
            black_box(res)
        })
    });
}

/// A remote verifier asking an introspection endpoint over `store`, served
/// on 127.0.0.1 by a background thread, with a TTL longer than the bench.
fn remote_verifier(store: &std::sync::Arc<pat_core::Store>) -> pat_core::remote::RemoteVerifier {
    use pat_core::introspection::Introspection;
    use pat_core::{Admin as _, ExpiryPolicy, NewToken, Timestamp};
    let own = store
        .create(
            &NewToken::new(
                "gateway",
                ExpiryPolicy::hard(std::time::Duration::from_secs(86_400)),
            ),
            Timestamp::now(),
        )
        .expect("the verifier's token")
        .secret;
    let app = axum::Router::new()
        .route(
            "/introspect",
            pat_tower::introspection(Introspection::new(store.clone()).allow_users(["gateway"])),
        )
        .layer(PatLayer::new(store.clone()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("address"))
                .expect("send");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    let addr = rx.recv().expect("the endpoint's address");
    pat_core::remote::RemoteVerifier::builder()
        .ttl(std::time::Duration::from_secs(3600))
        .connect(&format!("http://{addr}/introspect"), &own)
        .expect("remote verifier")
}

async fn call_once<S>(svc: &mut S, req: Request<()>) -> Response<String>
where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible>,
{
    match svc.ready().await {
        Ok(ready) => match ready.call(req).await {
            Ok(res) => res,
            Err(never) => match never {},
        },
        Err(never) => match never {},
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
