//! What `PatMiddleware` adds to a request, in process: the same trivial
//! handler with and without the middleware, in a store of 100,000 tokens.
//! The overhead is `middleware/bearer` minus `middleware/none`; compare it
//! with `store/hard/100000` of `cargo bench -p pat-core`.
//!
//! Run with `cargo bench -p pat-actix`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, test, web};
use criterion::{Criterion, criterion_group, criterion_main};
use pat_actix::PatMiddleware;
use pat_core::{ExpiryPolicy, NewToken, Store, Timestamp};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        Store::builder()
            .admin_socket(false)
            .open(dir.path().join("bench.redb"))
            .expect("store"),
    );
    let day = Duration::from_secs(86_400);
    let now = Timestamp::now();
    let others: Vec<NewToken> = (0..100_000)
        .map(|i| NewToken::new(format!("user{i}"), ExpiryPolicy::hard(day)))
        .collect();
    store.create_many(&others, now).expect("create");
    let made = store
        .create_many(
            &[
                NewToken::new("alice", ExpiryPolicy::hard(day)),
                NewToken::new("alice", ExpiryPolicy::sliding(day, None)),
            ],
            now,
        )
        .expect("create");
    let hard = format!("Bearer {}", made[0].secret.expose_secret());
    let sliding = format!("Bearer {}", made[1].secret.expose_secret());
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("alice:{}", made[0].secret.expose_secret())
        )
    );
    let unknown = format!(
        "Bearer {}",
        pat_core::TokenSecret::generate().expose_secret()
    );

    let system = actix_web::rt::System::new();
    let (bare, layered) = system.block_on(async {
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
        (bare, layered)
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
    case(
        c,
        &system,
        "middleware/bearer_sliding",
        &layered,
        Some(&sliding),
    );
    case(c, &system, "middleware/basic", &layered, Some(&basic));
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
    c.bench_function(name, |b| {
        b.iter(|| {
            let mut req = test::TestRequest::get().uri("/");
            if let Some(a) = auth {
                req = req.insert_header(("authorization", a));
            }
            let res = system.block_on(svc.call(req.to_request()));
            black_box(res.map(|r| r.status()).ok())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
