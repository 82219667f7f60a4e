//! Leak reports as an axum route (feature `axum`); the decisions are
//! [`pat_core::leaks`]'s.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::routing::{MethodRouter, post};
use pat_core::Timestamp;

use crate::answer::{answer, forwarding, read_body};

/// `POST` leak reports (see [`pat_core::leaks`]): a public route, to mount
/// outside the PAT layer. The client address comes from axum's
/// `ConnectInfo` (serve with `into_make_service_with_connect_info`, or
/// insert it per connection), or, from a trusted proxy
/// ([`LeakReports::trusted_proxies`](pat_core::leaks::LeakReports::trusted_proxies)),
/// from the headers it writes; the lookups run on Tokio's blocking pool.
pub fn leak_reports<S>(reports: pat_core::leaks::LeakReports) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    post(
        move |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<
            std::net::SocketAddr,
        >,
              headers: HeaderMap,
              body: Body| async move {
            let body = match read_body(&headers, body).await {
                Ok(body) => body,
                Err(refused) => return answer(Ok(refused)),
            };
            let (forwarded, x_forwarded_for) = forwarding(&headers);
            let client = reports.client(peer.ip(), forwarded, x_forwarded_for);
            let now = Timestamp::now();
            answer(
                tokio::task::spawn_blocking(move || reports.report_blocking(client, &body, now))
                    .await,
            )
        },
    )
}
