//! The self-service routes as an actix-web [`Scope`]; the decisions are
//! [`pat_core::self_service`]'s, so pat-tower's router answers byte for
//! byte alike.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, Scope, web};
use pat_core::answer::Answer;
use pat_core::self_service::SelfService;
use pat_core::{Admin, Identity, Timestamp};

use crate::management::cross_site;

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
    answer(web::block(move || s.lookup(&identity)).await)
}

async fn revoke(s: web::Data<SelfService>, identity: Identity, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = cross_site(&req).refuse_token_change() {
        return answer(Ok(refused));
    }
    let s = s.into_inner();
    answer(web::block(move || s.revoke(&identity)).await)
}

async fn rotate(s: web::Data<SelfService>, identity: Identity, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = cross_site(&req).refuse_token_change() {
        return answer(Ok(refused));
    }
    let s = s.into_inner();
    let now = Timestamp::now();
    let query = (!req.query_string().is_empty()).then(|| req.query_string().to_owned());
    answer(web::block(move || s.rotate(&identity, query.as_deref(), now)).await)
}

pub(crate) fn answer(joined: Result<Answer, actix_web::error::BlockingError>) -> HttpResponse {
    // A panicking store call is a failed call, not a dropped connection.
    let answer = joined.unwrap_or_else(|_| SelfService::unavailable());
    let mut response = HttpResponse::build(
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    response
        .insert_header((CONTENT_TYPE, Answer::CONTENT_TYPE))
        .insert_header((CACHE_CONTROL, Answer::CACHE_CONTROL));
    if let Some(seconds) = answer.retry_after {
        response.insert_header((actix_web::http::header::RETRY_AFTER, seconds));
    }
    if answer.close {
        response.force_close();
    }
    response.body(answer.body)
}

/// A route's body, within pat-core's limits
/// ([`MAX_BODY_LEN`](pat_core::hygiene::MAX_BODY_LEN),
/// [`BODY_READ_TIMEOUT`](pat_core::hygiene::BODY_READ_TIMEOUT)); the
/// answer to send instead when it is too large, too slow or unreadable.
pub(crate) async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<web::Bytes, Answer> {
    use pat_core::hygiene::{BODY_READ_TIMEOUT, MAX_BODY_LEN};
    let announced = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_LEN as u64) {
        return Err(Answer::body_too_large());
    }
    match actix_web::rt::time::timeout(BODY_READ_TIMEOUT, payload.to_bytes_limited(MAX_BODY_LEN))
        .await
    {
        Err(_) => Err(Answer::body_too_slow()),
        Ok(Err(_)) => Err(Answer::body_too_large()),
        Ok(Ok(Err(_))) => Err(Answer::body_unreadable()),
        Ok(Ok(Ok(body))) => Ok(body),
    }
}

/// A resource at `path` answering `POST` RFC 7662 introspection (see
/// [`pat_core::introspection`]), to serve behind the PAT middleware (the
/// caller authenticates with its own token):
///
/// ```no_run
/// # fn f(store: std::sync::Arc<pat_actix::Store>) {
/// use actix_web::App;
/// use pat_actix::pat_core::introspection::Introspection;
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

/// A resource at `path` answering `POST` leak reports (see
/// [`pat_core::leaks`]): a public route, to serve without the PAT
/// middleware. The client address is the connection's peer, or, from a
/// trusted proxy
/// ([`LeakReports::trusted_proxies`](pat_core::leaks::LeakReports::trusted_proxies)),
/// from the headers it writes; the lookups run on actix's blocking pool.
pub fn leak_reports(path: &str, reports: pat_core::leaks::LeakReports) -> actix_web::Resource {
    web::resource(path)
        .app_data(web::Data::new(reports))
        .route(web::post().to(report_leak))
}

async fn report_leak(
    reports: web::Data<pat_core::leaks::LeakReports>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let Some(peer) = req.peer_addr() else {
        return HttpResponse::BadRequest().finish();
    };
    let body = match read_body(&req, payload).await {
        Ok(body) => body,
        Err(refused) => return answer(Ok(refused)),
    };
    let client = reports.client(
        peer.ip(),
        req.headers().get_all("forwarded").map(|v| v.as_bytes()),
        req.headers()
            .get_all("x-forwarded-for")
            .map(|v| v.as_bytes()),
    );
    let reports = reports.into_inner();
    let now = Timestamp::now();
    answer(web::block(move || reports.report_blocking(client, &body, now)).await)
}
