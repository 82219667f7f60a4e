//! The management API and the token panel as axum routes (feature `axum`);
//! the decisions are [`pat_core::management`]'s and the page
//! [`pat_core::panel`]'s, so pat-actix answers byte for byte alike.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use pat_core::Timestamp;
use pat_core::answer::Answer;
use pat_core::management::{Management, Principal};
use pat_core::panel::Panel;

use crate::answer::{answer, cross_site, read_body};

type Who = dyn Fn(&Parts) -> Option<Principal> + Send + Sync;

#[derive(Clone)]
struct Api {
    management: Management,
    principal: Arc<Who>,
}

/// `GET /` (list), `POST /` (create), `DELETE /{id}` (revoke), `POST
/// /{id}/disable` and `POST /{id}/enable` of the token management API (see [`pat_core::management`]), to nest where the
/// app wants it. `principal` turns a request into who is calling, from the
/// app's session or login, or from the PAT layer's [`Identity`](pat_core::Identity)
/// when the routes sit behind it; `None` is answered 401.
///
/// ```no_run
/// # fn f(store: std::sync::Arc<pat_tower::Store>) {
/// use axum::Router;
/// use pat_tower::{Management, Principal};
/// use pat_tower::{Identity, PatLayer, management, token_panel};
/// let api = management(Management::new(store.clone()), |req| {
///     let identity = req.extensions.get::<Identity>()?;
///     Some(Principal::with_token(identity).admin(identity.user() == "root"))
/// });
/// let app: Router = Router::new()
///     .nest("/api/tokens", api)
///     .route("/ui/tokens", token_panel("/api/tokens"))
///     .layer(PatLayer::new(store));
/// # }
/// ```
///
/// The store calls run on Tokio's blocking pool.
pub fn management<S>(
    management: Management,
    principal: impl Fn(&Parts) -> Option<Principal> + Send + Sync + 'static,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let api = Api {
        management,
        principal: Arc::new(principal),
    };
    Router::new()
        .route("/", get(list).post(create))
        .route("/expiries.ics", get(calendar))
        .route("/{id}", delete(revoke))
        .route("/{id}/disable", post(disable))
        .route("/{id}/enable", post(enable))
        .with_state(api)
}

/// The principal, after the CSRF check for a change.
fn caller(api: &Api, parts: &Parts, changes: bool) -> Result<Principal, Answer> {
    Management::caller(changes, &cross_site(&parts.headers), || {
        (api.principal)(parts)
    })
}

/// A read (`GET`): the listing, or its calendar.
type Read = fn(&Management, &Principal, Option<&str>, Timestamp) -> Answer;

async fn list(api: State<Api>, parts: Parts, query: RawQuery) -> Response {
    read(api, parts, query, Management::list_blocking).await
}

async fn calendar(api: State<Api>, parts: Parts, query: RawQuery) -> Response {
    read(api, parts, query, Management::calendar_blocking).await
}

async fn read(
    State(api): State<Api>,
    parts: Parts,
    RawQuery(query): RawQuery,
    decide: Read,
) -> Response {
    let p = match caller(&api, &parts, false) {
        Ok(p) => p,
        Err(refused) => return answer(Ok(refused)),
    };
    let now = Timestamp::now();
    answer(
        tokio::task::spawn_blocking(move || decide(&api.management, &p, query.as_deref(), now))
            .await,
    )
}

async fn create(State(api): State<Api>, parts: Parts, body: axum::body::Body) -> Response {
    let p = match caller(&api, &parts, true) {
        Ok(p) => p,
        Err(refused) => return answer(Ok(refused)),
    };
    let body = match read_body(&parts.headers, body).await {
        Ok(body) => body,
        Err(refused) => return answer(Ok(refused)),
    };
    let now = Timestamp::now();
    answer(
        tokio::task::spawn_blocking(move || api.management.create_blocking(&p, &body, now)).await,
    )
}

async fn revoke(State(api): State<Api>, parts: Parts, Path(id): Path<String>) -> Response {
    let p = match caller(&api, &parts, true) {
        Ok(p) => p,
        Err(refused) => return answer(Ok(refused)),
    };
    let now = Timestamp::now();
    answer(tokio::task::spawn_blocking(move || api.management.revoke_blocking(&p, &id, now)).await)
}

async fn disable(
    api: State<Api>,
    parts: Parts,
    id: Path<String>,
    body: axum::body::Body,
) -> Response {
    suspend(api, parts, id, body, true).await
}

async fn enable(
    api: State<Api>,
    parts: Parts,
    id: Path<String>,
    body: axum::body::Body,
) -> Response {
    suspend(api, parts, id, body, false).await
}

async fn suspend(
    State(api): State<Api>,
    parts: Parts,
    Path(id): Path<String>,
    body: axum::body::Body,
    disable: bool,
) -> Response {
    let p = match caller(&api, &parts, true) {
        Ok(p) => p,
        Err(refused) => return answer(Ok(refused)),
    };
    let body = match read_body(&parts.headers, body).await {
        Ok(body) => body,
        Err(refused) => return answer(Ok(refused)),
    };
    let now = Timestamp::now();
    answer(
        tokio::task::spawn_blocking(move || {
            api.management
                .suspend_blocking(&p, &id, disable, &body, now)
        })
        .await,
    )
}

/// `GET` the token panel (see [`pat_core::panel`]) for the management API
/// at `api`, with its security headers. Mount it where the app's users are
/// logged in (behind the PAT layer, or the app's own session check), so that
/// the page's requests carry the same credentials.
pub fn token_panel<S>(api: &str) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let panel = Arc::new(Panel::new(api));
    get(move || {
        let panel = panel.clone();
        async move {
            let mut response = (StatusCode::OK, panel.html().to_owned()).into_response();
            for (name, value) in panel.headers() {
                if let Ok(value) = HeaderValue::from_str(value) {
                    response
                        .headers_mut()
                        .insert(HeaderName::from_static(name), value);
                }
            }
            response
        }
    })
}
