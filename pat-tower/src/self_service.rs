//! The self-service routes as an axum [`Router`] (feature `axum`); the
//! decisions are [`pat_core::self_service`]'s, so the actix scope answers
//! byte for byte alike.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pat_core::answer::Answer;
use pat_core::self_service::SelfService;
use pat_core::{Admin, Identity, Timestamp};

use crate::management::cross_site;

/// `GET /self`, `DELETE /self` and `POST /self/rotate` over `admin`, to
/// nest behind the PAT layer (each handler takes the [`Identity`], so a
/// request the layer did not authenticate is refused):
///
/// ```no_run
/// # fn f(store: std::sync::Arc<pat_tower::Store>) {
/// use axum::Router;
/// use pat_tower::{PatLayer, self_service};
/// let app: Router = Router::new()
///     .nest("/tokens", self_service(store.clone()))
///     .layer(PatLayer::new(store));
/// # }
/// ```
///
/// The store calls run on Tokio's blocking pool (a durable write or a
/// database round trip must not hold an async worker).
pub fn self_service<S>(admin: Arc<dyn Admin + Send + Sync>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let service = SelfService::new(admin);
    Router::new()
        .route("/self", get(lookup).delete(revoke))
        .route("/self/rotate", post(rotate))
        .with_state(service)
}

async fn lookup(State(s): State<SelfService>, identity: Identity) -> Response {
    answer(tokio::task::spawn_blocking(move || s.lookup(&identity)).await)
}

async fn revoke(State(s): State<SelfService>, identity: Identity, headers: HeaderMap) -> Response {
    if let Some(refused) = cross_site(&headers).refuse_token_change() {
        return answer(Ok(refused));
    }
    answer(tokio::task::spawn_blocking(move || s.revoke(&identity)).await)
}

async fn rotate(
    State(s): State<SelfService>,
    identity: Identity,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(refused) = cross_site(&headers).refuse_token_change() {
        return answer(Ok(refused));
    }
    let now = Timestamp::now();
    answer(tokio::task::spawn_blocking(move || s.rotate(&identity, query.as_deref(), now)).await)
}

pub(crate) fn answer(joined: Result<Answer, tokio::task::JoinError>) -> Response {
    // A panicking store call is a failed call, not a dropped connection.
    let answer = joined.unwrap_or_else(|_| SelfService::unavailable());
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(Answer::CONTENT_TYPE),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(Answer::CACHE_CONTROL),
            ),
        ],
        answer.body,
    )
        .into_response();
    if let Some(seconds) = answer.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if answer.close {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A route's body, within pat-core's limits
/// ([`MAX_BODY_LEN`](pat_core::hygiene::MAX_BODY_LEN),
/// [`BODY_READ_TIMEOUT`](pat_core::hygiene::BODY_READ_TIMEOUT)); the
/// answer to send instead when it is too large, too slow or unreadable.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<axum::body::Bytes, Answer> {
    use http_body_util::{BodyExt as _, LengthLimitError, Limited};
    use pat_core::hygiene::{BODY_READ_TIMEOUT, MAX_BODY_LEN};
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_LEN as u64) {
        return Err(Answer::body_too_large());
    }
    match tokio::time::timeout(
        BODY_READ_TIMEOUT,
        Limited::new(body, MAX_BODY_LEN).collect(),
    )
    .await
    {
        Err(_) => Err(Answer::body_too_slow()),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(Answer::body_too_large())
        }
        Ok(Err(_)) => Err(Answer::body_unreadable()),
    }
}

/// `POST` RFC 7662 introspection (see [`pat_core::introspection`]), to
/// route behind the PAT layer (the caller authenticates with its own
/// token):
///
/// ```no_run
/// # fn f(store: std::sync::Arc<pat_tower::Store>) {
/// use axum::Router;
/// use pat_tower::pat_core::introspection::Introspection;
/// use pat_tower::{PatLayer, introspection};
/// let app: Router = Router::new()
///     .route("/introspect", introspection(Introspection::new(store.clone()).allow_users(["gateway"])))
///     .layer(PatLayer::new(store));
/// # }
/// ```
///
/// The lookup runs on Tokio's blocking pool.
pub fn introspection<S>(
    intro: pat_core::introspection::Introspection,
) -> axum::routing::MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    post(
        move |identity: Identity, headers: HeaderMap, body: axum::body::Body| async move {
            if let Some(refused) = cross_site(&headers).refuse_introspection() {
                return answer(Ok(refused));
            }
            let body = match read_body(&headers, body).await {
                Ok(body) => body,
                Err(refused) => return answer(Ok(refused)),
            };
            let now = Timestamp::now();
            answer(
                tokio::task::spawn_blocking(move || intro.answer_blocking(&identity, &body, now))
                    .await,
            )
        },
    )
}

/// `POST` leak reports (see [`pat_core::leaks`]): a public route, to mount
/// outside the PAT layer. The client address comes from axum's
/// `ConnectInfo` (serve with `into_make_service_with_connect_info`, or
/// insert it per connection), or, from a trusted proxy
/// ([`LeakReports::trusted_proxies`](pat_core::leaks::LeakReports::trusted_proxies)),
/// from the headers it writes; the lookups run on Tokio's blocking pool.
pub fn leak_reports<S>(reports: pat_core::leaks::LeakReports) -> axum::routing::MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    post(
        move |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<
            std::net::SocketAddr,
        >,
              headers: HeaderMap,
              body: axum::body::Body| async move {
            let body = match read_body(&headers, body).await {
                Ok(body) => body,
                Err(refused) => return answer(Ok(refused)),
            };
            let client = reports.client(
                peer.ip(),
                headers
                    .get_all("forwarded")
                    .iter()
                    .map(HeaderValue::as_bytes),
                headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .map(HeaderValue::as_bytes),
            );
            let now = Timestamp::now();
            answer(
                tokio::task::spawn_blocking(move || reports.report_blocking(client, &body, now))
                    .await,
            )
        },
    )
}
