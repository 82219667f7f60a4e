//! The self-service routes as an actix-web [`Scope`]; the decisions are
//! [`pat_core::self_service`]'s, so pat-tower's router answers byte for
//! byte alike.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, Scope, web};
use pat_core::self_service::SelfService;
use pat_core::{Admin, Identity, Timestamp};

use crate::answer::{answer, cross_site};

/// A scope at `path` with `GET {path}/self`, `DELETE {path}/self` and
/// `POST {path}/self/rotate` over `admin`, to serve behind the PAT
/// middleware (each handler takes the [`Identity`], so a request the
/// middleware did not authenticate is refused):
///
/// ```no_run
/// # fn f(store: std::sync::Arc<pat_actix::Store>) {
/// use actix_web::App;
/// use pat_actix::{PatMiddleware, self_service};
/// let pat = PatMiddleware::new(store.clone());
/// let app = App::new().service(self_service("/tokens", store).wrap(pat));
/// # }
/// ```
///
/// The store calls run on actix's blocking pool (`web::block`): a durable
/// write or a database round trip must not hold a worker.
pub fn self_service(path: &str, admin: Arc<dyn Admin + Send + Sync>) -> Scope {
    web::scope(path)
        .app_data(web::Data::new(SelfService::new(admin)))
        .service(
            web::resource("/self")
                .route(web::get().to(lookup))
                .route(web::delete().to(revoke)),
        )
        .service(web::resource("/self/rotate").route(web::post().to(rotate)))
}

async fn lookup(s: web::Data<SelfService>, identity: Identity) -> HttpResponse {
    let s = s.into_inner();
    answer(web::block(move || s.lookup_blocking(&identity)).await)
}

async fn revoke(s: web::Data<SelfService>, identity: Identity, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = cross_site(&req).refuse_token_change() {
        return answer(Ok(refused));
    }
    let s = s.into_inner();
    answer(web::block(move || s.revoke_blocking(&identity)).await)
}

async fn rotate(s: web::Data<SelfService>, identity: Identity, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = cross_site(&req).refuse_token_change() {
        return answer(Ok(refused));
    }
    let s = s.into_inner();
    let now = Timestamp::now();
    let query = (!req.query_string().is_empty()).then(|| req.query_string().to_owned());
    answer(web::block(move || s.rotate_blocking(&identity, query.as_deref(), now)).await)
}
