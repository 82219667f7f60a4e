//! The management API and the token panel as actix-web services; the
//! decisions are [`pat_core::management`]'s and the page
//! [`pat_core::panel`]'s, so pat-tower answers byte for byte alike.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, Resource, Scope, web};
use pat_core::Timestamp;
use pat_core::answer::Answer;
use pat_core::management::{Management, Principal};
use pat_core::panel::Panel;

use crate::answer::{answer, cross_site, read_body};

type Who = dyn Fn(&HttpRequest) -> Option<Principal> + Send + Sync;

struct Api {
    management: Management,
    principal: Arc<Who>,
}

/// A scope at `path` with `GET {path}` (list), `POST {path}` (create),
/// `DELETE {path}/{id}` (revoke), `POST {path}/{id}/disable` and `POST
/// {path}/{id}/enable` of the token management API (see
/// [`pat_core::management`]). `principal` turns a request into who is
/// calling, from the app's session or login, or from the PAT middleware's
/// [`Identity`](pat_core::Identity) when the scope sits behind it; `None` is
/// answered 401.
///
/// ```no_run
/// # fn f(store: std::sync::Arc<pat_actix::Store>) {
/// use actix_web::{App, HttpMessage as _};
/// use pat_actix::{Management, Principal};
/// use pat_actix::{Identity, PatMiddleware, management, token_panel};
/// let pat = PatMiddleware::new(store.clone());
/// let api = management("/api/tokens", Management::new(store), |req| {
///     let identity = req.extensions().get::<Identity>()?.clone();
///     Some(Principal::with_token(&identity).admin(identity.user() == "root"))
/// });
/// let app = App::new()
///     .service(api.wrap(pat.clone()))
///     .service(token_panel("/ui/tokens", "/api/tokens").wrap(pat));
/// # }
/// ```
///
/// The store calls run on actix's blocking pool (`web::block`).
pub fn management(
    path: &str,
    management: Management,
    principal: impl Fn(&HttpRequest) -> Option<Principal> + Send + Sync + 'static,
) -> Scope {
    web::scope(path)
        .app_data(web::Data::new(Api {
            management,
            principal: Arc::new(principal),
        }))
        .service(
            web::resource("")
                .route(web::get().to(list))
                .route(web::post().to(create)),
        )
        .service(web::resource("/expiries.ics").route(web::get().to(calendar)))
        .service(web::resource("/{id}").route(web::delete().to(revoke)))
        .service(web::resource("/{id}/disable").route(web::post().to(disable)))
        .service(web::resource("/{id}/enable").route(web::post().to(enable)))
}

/// The principal, after the CSRF check for a change.
fn caller(api: &Api, req: &HttpRequest, changes: bool) -> Result<Principal, Answer> {
    Management::caller(changes, &cross_site(req), || (api.principal)(req))
}

/// A read (`GET`): the listing, or its calendar.
type Read = fn(&Management, &Principal, Option<&str>, Timestamp) -> Answer;

async fn list(api: web::Data<Api>, req: HttpRequest) -> HttpResponse {
    read(api, req, Management::list_blocking).await
}

async fn calendar(api: web::Data<Api>, req: HttpRequest) -> HttpResponse {
    read(api, req, Management::calendar_blocking).await
}

async fn read(api: web::Data<Api>, req: HttpRequest, decide: Read) -> HttpResponse {
    let p = match caller(&api, &req, false) {
        Ok(p) => p,
        Err(refused) => return answer(Ok(refused)),
    };
    let query = (!req.query_string().is_empty()).then(|| req.query_string().to_owned());
    let api = api.into_inner();
    let now = Timestamp::now();
    answer(web::block(move || decide(&api.management, &p, query.as_deref(), now)).await)
}

async fn create(api: web::Data<Api>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let p = match caller(&api, &req, true) {
        Ok(p) => p,
        Err(refused) => return answer(Ok(refused)),
    };
    let body = match read_body(&req, payload).await {
        Ok(body) => body,
        Err(refused) => return answer(Ok(refused)),
    };
    let api = api.into_inner();
    let now = Timestamp::now();
    answer(web::block(move || api.management.create_blocking(&p, &body, now)).await)
}

async fn revoke(api: web::Data<Api>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let p = match caller(&api, &req, true) {
        Ok(p) => p,
        Err(refused) => return answer(Ok(refused)),
    };
    let api = api.into_inner();
    let id = id.into_inner();
    let now = Timestamp::now();
    answer(web::block(move || api.management.revoke_blocking(&p, &id, now)).await)
}

async fn disable(
    api: web::Data<Api>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    suspend(api, req, id, payload, true).await
}

async fn enable(
    api: web::Data<Api>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    suspend(api, req, id, payload, false).await
}

async fn suspend(
    api: web::Data<Api>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    disable: bool,
) -> HttpResponse {
    let p = match caller(&api, &req, true) {
        Ok(p) => p,
        Err(refused) => return answer(Ok(refused)),
    };
    let body = match read_body(&req, payload).await {
        Ok(body) => body,
        Err(refused) => return answer(Ok(refused)),
    };
    let api = api.into_inner();
    let id = id.into_inner();
    let now = Timestamp::now();
    answer(
        web::block(move || {
            api.management
                .suspend_blocking(&p, &id, disable, &body, now)
        })
        .await,
    )
}

/// A resource at `path` answering `GET` with the token panel (see
/// [`pat_core::panel`]) for the management API at `api`, with its security
/// headers. Serve it where the app's users are logged in (behind the PAT
/// middleware, or the app's own session check), so that the page's requests
/// carry the same credentials.
pub fn token_panel(path: &str, api: &str) -> Resource {
    web::resource(path)
        .app_data(web::Data::new(Panel::new(api)))
        .route(web::get().to(panel))
}

async fn panel(panel: web::Data<Panel>) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    for (name, value) in panel.headers() {
        response.insert_header((name, value));
    }
    response.body(panel.html().to_owned())
}
