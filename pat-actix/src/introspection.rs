//! RFC 7662 introspection as an actix-web resource; the decisions are
//! [`pat_core::introspection`]'s.

use actix_web::{HttpRequest, HttpResponse, web};
use pat_core::{Identity, Timestamp};

use crate::answer::{answer, cross_site, read_body};

/// A resource at `path` answering `POST` RFC 7662 introspection (see
/// [`pat_core::introspection`]), to serve behind the PAT middleware (the
/// caller authenticates with its own token):
///
/// ```no_run
/// # fn f(store: std::sync::Arc<pat_actix::Store>) {
/// use actix_web::App;
/// use pat_actix::Introspection;
/// use pat_actix::{PatMiddleware, introspection};
/// let pat = PatMiddleware::new(store.clone());
/// let intro = Introspection::new(store).allow_users(["gateway"]);
/// let app = App::new().service(introspection("/introspect", intro).wrap(pat));
/// # }
/// ```
///
/// The lookup runs on actix's blocking pool (`web::block`).
pub fn introspection(
    path: &str,
    intro: pat_core::introspection::Introspection,
) -> actix_web::Resource {
    web::resource(path)
        .app_data(web::Data::new(intro))
        .route(web::post().to(introspect))
}

async fn introspect(
    intro: web::Data<pat_core::introspection::Introspection>,
    identity: Identity,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if let Some(refused) = cross_site(&req).refuse_introspection() {
        return answer(Ok(refused));
    }
    let body = match read_body(&req, payload).await {
        Ok(body) => body,
        Err(refused) => return answer(Ok(refused)),
    };
    let intro = intro.into_inner();
    let now = Timestamp::now();
    answer(web::block(move || intro.answer_blocking(&identity, &body, now)).await)
}
