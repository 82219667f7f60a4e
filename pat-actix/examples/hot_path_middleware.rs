//! A driver for instruction counts of a cached request through
//! `PatMiddleware`, for `valgrind --tool=callgrind` (see
//! `scripts/callgrind.sh`): `hot_path_middleware KIND N` sends one request
//! with a cached token (KIND `hard`, `sliding` or `basic`), then `N` more,
//! through the middleware over a trivial handler, on actix's test service.
//! Run it with two values of `N` and subtract.

use std::hint::black_box;

use actix_web::dev::Service as _;
use actix_web::{App, test, web};
use pat_actix::PatMiddleware;

#[path = "../../pat-tower/examples/common/driver.rs"]
mod driver;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let driver::Driver {
        _dir,
        store,
        header,
        n,
    } = driver::driver("hot_path_middleware")?;
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
