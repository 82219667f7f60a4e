//! GitHub's secret scanning partner endpoint as an axum route (feature
//! `axum`); the decisions are [`pat_core::secret_scanning`]'s.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::routing::{MethodRouter, post};
use pat_core::Timestamp;
use pat_core::secret_scanning::{KEY_IDENTIFIER_HEADER, SIGNATURE_HEADER, SecretScanning};

use crate::answer::{answer, read_body};

/// `POST` GitHub's secret scanning reports (see
/// [`pat_core::secret_scanning`]): a public route, to mount outside the
/// PAT layer (GitHub signs its requests; it holds no token). The body is
/// read whole, within [`MAX_BODY_LEN`](pat_core::hygiene::MAX_BODY_LEN)
/// and [`BODY_READ_TIMEOUT`](pat_core::hygiene::BODY_READ_TIMEOUT), since
/// the signature covers its bytes; the check and the revocations run on
/// Tokio's blocking pool.
pub fn secret_scanning<S>(scanning: SecretScanning) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    post(move |headers: HeaderMap, body: Body| async move {
        let body = match read_body(&headers, body).await {
            Ok(body) => body,
            Err(refused) => return answer(Ok(refused)),
        };
        let key_id = headers
            .get(KEY_IDENTIFIER_HEADER)
            .map(|v| v.as_bytes().to_vec());
        let signature = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes().to_vec());
        let now = Timestamp::now();
        answer(
            tokio::task::spawn_blocking(move || {
                scanning.report_blocking(key_id.as_deref(), signature.as_deref(), &body, now)
            })
            .await,
        )
    })
}
