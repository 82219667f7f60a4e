//! GitLab's Token Revocation API as an axum router (feature `axum`); the
//! decisions are [`pat_core::gitlab_revocation`]'s.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, header};
use axum::routing::{get, post};
use pat_core::Timestamp;
use pat_core::gitlab_revocation::TokenRevocation;
use pat_core::secret_scanning::MAX_REPORT_LEN;

use crate::answer::{answer, forwarding, read_body_within};

/// `GET /v1/revocable_token_types` and `POST /v1/revoke_tokens` (see
/// [`pat_core::gitlab_revocation`]), to nest where GitLab's settings point
/// and outside the PAT layer (GitLab authenticates with the pre-shared
/// secret, not a token). The client address comes from axum's
/// `ConnectInfo` (serve with `into_make_service_with_connect_info`), or,
/// from a trusted proxy, from the headers it writes.
/// [`TokenRevocation::precheck`] answers before a body is read; it is read
/// within [`MAX_REPORT_LEN`] and the revocations run on Tokio's blocking
/// pool.
pub fn gitlab_revocation<S>(api: TokenRevocation) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let types = api.clone();
    Router::new()
        .route(
            "/v1/revocable_token_types",
            get(
                move |ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
                      headers: HeaderMap| async move {
                    let (forwarded, x_forwarded_for) = forwarding(&headers);
                    let client = types.client(peer.ip(), forwarded, x_forwarded_for);
                    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
                    answer(Ok(
                        match types.precheck(client, authorization, Timestamp::now()) {
                            Ok(admitted) => types.token_types(admitted),
                            Err(refused) => refused,
                        },
                    ))
                },
            ),
        )
        .route(
            "/v1/revoke_tokens",
            post(
                move |ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
                      headers: HeaderMap,
                      body: Body| async move {
                    let (forwarded, x_forwarded_for) = forwarding(&headers);
                    let client = api.client(peer.ip(), forwarded, x_forwarded_for);
                    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
                    let now = Timestamp::now();
                    let admitted = match api.precheck(client, authorization, now) {
                        Ok(admitted) => admitted,
                        Err(refused) => return answer(Ok(refused)),
                    };
                    let body = match read_body_within(&headers, body, MAX_REPORT_LEN).await {
                        Ok(body) => body,
                        Err(refused) => return answer(Ok(refused)),
                    };
                    answer(
                        tokio::task::spawn_blocking(move || {
                            api.revoke_blocking(admitted, &body, now)
                        })
                        .await,
                    )
                },
            ),
        )
}
