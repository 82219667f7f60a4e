//! GitHub's secret scanning partner endpoint as an axum route (feature
//! `axum`); the decisions are [`pat_core::secret_scanning`]'s.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::routing::{MethodRouter, post};
use pat_core::Timestamp;
use pat_core::secret_scanning::{
    KEY_IDENTIFIER_HEADER, MAX_REPORT_LEN, SIGNATURE_HEADER, SecretScanning,
};

use crate::answer::{answer, forwarding, read_body_within};

/// `POST` GitHub's secret scanning reports (see
/// [`pat_core::secret_scanning`]): a public route, to mount outside the
/// PAT layer (GitHub signs its requests; it holds no token). The client
/// address comes from axum's `ConnectInfo` (serve with
/// `into_make_service_with_connect_info`), or, from a trusted proxy
/// ([`SecretScanning::trusted_proxies`]), from the headers it writes.
/// [`SecretScanning::precheck`] answers before the body is read (a client
/// past its refusals, headers that hold no signature); the body is read
/// whole, within [`MAX_REPORT_LEN`](pat_core::secret_scanning::MAX_REPORT_LEN)
/// and [`BODY_READ_TIMEOUT`](pat_core::hygiene::BODY_READ_TIMEOUT), since
/// the signature covers its bytes; the check and the revocations run on
/// Tokio's blocking pool.
pub fn secret_scanning<S>(scanning: SecretScanning) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    post(
        move |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<
            std::net::SocketAddr,
        >,
              headers: HeaderMap,
              body: Body| async move {
            let (forwarded, x_forwarded_for) = forwarding(&headers);
            let client = scanning.client(peer.ip(), forwarded, x_forwarded_for);
            let key_id = headers
                .get(KEY_IDENTIFIER_HEADER)
                .map(|v| v.as_bytes().to_vec());
            let signature = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes().to_vec());
            let now = Timestamp::now();
            let admitted =
                match scanning.precheck(client, key_id.as_deref(), signature.as_deref(), now) {
                    Ok(admitted) => admitted,
                    Err(refused) => return answer(Ok(refused)),
                };
            let body = match read_body_within(&headers, body, MAX_REPORT_LEN).await {
                Ok(body) => body,
                Err(refused) => return answer(Ok(refused)),
            };
            answer(
                tokio::task::spawn_blocking(move || {
                    scanning.report_blocking(
                        admitted,
                        key_id.as_deref(),
                        signature.as_deref(),
                        &body,
                        now,
                    )
                })
                .await,
            )
        },
    )
}
