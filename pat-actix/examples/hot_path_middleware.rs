//! A driver for instruction counts of a cached request through
//! `PatMiddleware`, for `valgrind --tool=callgrind` (see
//! `scripts/callgrind.sh`): `hot_path_middleware KIND N` sends one request
//! with a cached token (KIND `hard`, `sliding` or `basic`), then `N` more,
//! through the middleware over a trivial handler, on actix's test service.
//! Run it with two values of `N` and subtract.

use std::hint::black_box;
use std::time::Duration;

use actix_web::dev::Service as _;
use actix_web::{App, test, web};
use pat_actix::PatMiddleware;
use pat_core::{Admin as _, ExpiryPolicy, NewToken, Store, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(kind), Some(n)) = (args.next(), args.next()) else {
        return Err("usage: hot_path_middleware hard|sliding|basic N".into());
    };
    let n: u64 = n.parse()?;
    let dir = tempfile::tempdir()?;
    let store = std::sync::Arc::new(
        Store::builder()
            .admin_socket(false)
            .manual_flush()
            .open(dir.path().join("pat.redb"))?,
    );
    let day = Duration::from_secs(86_400);
    let expiry = match kind.as_str() {
        "hard" | "basic" => ExpiryPolicy::hard(day),
        "sliding" => ExpiryPolicy::sliding(day, None),
        other => return Err(format!("unknown kind {other:?}").into()),
    };
    let created = store.create(&NewToken::new("alice", expiry), Timestamp::now())?;
    let secret = created.secret.expose_secret();
    let header = if kind == "basic" {
        let pair = format!("alice:{secret}");
        format!(
            "Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pair)
        )
    } else {
        format!("Bearer {secret}")
    };
    let system = actix_web::rt::System::new();
    system.block_on(async {
        let service = test::init_service(
            App::new().service(
                web::scope("")
                    .wrap(PatMiddleware::new(store.clone()))
                    .route("/", web::get().to(|| async { "" })),
            ),
        )
        .await;
        let once = || async {
            let request = test::TestRequest::get()
                .uri("/")
                .insert_header(("authorization", header.as_str()))
                .to_request();
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
