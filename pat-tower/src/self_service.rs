//! The self-service routes as an axum [`Router`] (feature `axum`); the
//! decisions are [`pat_core::self_service`]'s, so the actix scope answers
//! byte for byte alike.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use pat_core::self_service::SelfService;
use pat_core::{Admin, Identity, Timestamp};

use crate::answer::{answer, cross_site};

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
    answer(tokio::task::spawn_blocking(move || s.lookup_blocking(&identity)).await)
}

async fn revoke(State(s): State<SelfService>, identity: Identity, headers: HeaderMap) -> Response {
    if let Some(refused) = cross_site(&headers).refuse_token_change() {
        return answer(Ok(refused));
    }
    answer(tokio::task::spawn_blocking(move || s.revoke_blocking(&identity)).await)
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
    answer(
        tokio::task::spawn_blocking(move || s.rotate_blocking(&identity, query.as_deref(), now))
            .await,
    )
}
