//! A driver for instruction counts of a cached request through `PatLayer`,
//! for `valgrind --tool=callgrind` (see `scripts/callgrind.sh`):
//! `hot_path_layer KIND N` sends one request with a cached token (KIND
//! `hard`, `sliding` or `basic`), then `N` more, through the layer over a
//! trivial handler. Run it with two values of `N` and subtract.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use futures_util::FutureExt as _;
use http::{Request, Response};
use pat_core::{Admin as _, ExpiryPolicy, NewToken, Store, Timestamp};
use pat_tower::PatLayer;
use tower::{Service, ServiceBuilder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(kind), Some(n)) = (args.next(), args.next()) else {
        return Err("usage: hot_path_layer hard|sliding|basic N".into());
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
