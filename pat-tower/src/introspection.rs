//! RFC 7662 introspection as an axum route (feature `axum`); the decisions
//! are [`pat_core::introspection`]'s.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::routing::{MethodRouter, post};
use pat_core::{Identity, Timestamp};

use crate::answer::{answer, cross_site, read_body};

/// `POST` RFC 7662 introspection (see [`pat_core::introspection`]), to
/// route behind the PAT layer (the caller authenticates with its own
/// token):
///
/// ```no_run
/// # fn f(store: std::sync::Arc<pat_tower::Store>) {
/// use axum::Router;
/// use pat_tower::Introspection;
/// use pat_tower::{PatLayer, introspection};
/// let app: Router = Router::new()
///     .route("/introspect", introspection(Introspection::new(store.clone()).allow_users(["gateway"])))
///     .layer(PatLayer::new(store));
/// # }
/// ```
///
/// The lookup runs on Tokio's blocking pool.
pub fn introspection<S>(intro: pat_core::introspection::Introspection) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    post(
        move |identity: Identity, headers: HeaderMap, body: Body| async move {
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
