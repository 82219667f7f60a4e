//! A driver for instruction counts of a cached request through `PatLayer`,
//! for `valgrind --tool=callgrind` (see `scripts/callgrind.sh`):
//! `hot_path_layer KIND N` sends one request with a cached token (KIND
//! `hard`, `sliding` or `basic`), then `N` more, through the layer over a
//! trivial handler. Run it with two values of `N` and subtract.

use std::convert::Infallible;
use std::hint::black_box;

use futures_util::FutureExt as _;
use http::{Request, Response};

use pat_tower::PatLayer;
use tower::{Service, ServiceBuilder};

#[path = "common/driver.rs"]
mod driver;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let driver::Driver {
        _dir,
        store,
        header,
        n,
    } = driver::driver("hot_path_layer")?;
    let mut service = ServiceBuilder::new()
        .layer(PatLayer::new(store.clone()))
        .service(tower::service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    let mut once = || -> Result<u16, Box<dyn std::error::Error>> {
        let request = Request::builder()
            .header("authorization", header.as_str())
            .body(())?;
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
