//! The HTTP side of pat-core's [`Answer`]s, for every route of this crate:
//! the response an answer calls for, a body read within pat-core's limits,
//! and what the CSRF rule looks at in a request.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pat_core::answer::Answer;

/// The response for a route's answer (`Err`: the blocking call panicked,
/// answered like a failed store call).
pub(crate) fn answer(joined: Result<Answer, tokio::task::JoinError>) -> Response {
    // A panicking store call is a failed call, not a dropped connection.
    let answer = joined.unwrap_or_else(|_| Answer::unavailable());
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let empty = answer.body.is_empty();
    let mut response = (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(answer.content_type),
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
    if empty {
        // A 204: no body, so no type of one.
        response.headers_mut().remove(header::CONTENT_TYPE);
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
    read_body_within(headers, body, pat_core::hygiene::MAX_BODY_LEN).await
}

/// [`read_body`] with a route's own limit of `limit` bytes.
pub(crate) async fn read_body_within(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<axum::body::Bytes, Answer> {
    use http_body_util::{BodyExt as _, LengthLimitError, Limited};
    use pat_core::hygiene::BODY_READ_TIMEOUT;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(Answer::body_larger_than(limit));
    }
    match tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, limit).collect()).await {
        Err(_) => Err(Answer::body_too_slow()),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(Answer::body_larger_than(limit))
        }
        Ok(Err(_)) => Err(Answer::body_unreadable()),
    }
}

/// The `Forwarded` and `X-Forwarded-For` values of `headers`, as
/// [`TrustedProxies::client`](pat_core::TrustedProxies::client) reads them.
pub(crate) fn forwarding(
    headers: &HeaderMap,
) -> (impl Iterator<Item = &[u8]>, impl Iterator<Item = &[u8]>) {
    (
        headers
            .get_all("forwarded")
            .iter()
            .map(HeaderValue::as_bytes),
        headers
            .get_all("x-forwarded-for")
            .iter()
            .map(HeaderValue::as_bytes),
    )
}

/// What [`pat_core::csrf`]'s rule looks at in `headers`.
pub(crate) fn cross_site(headers: &HeaderMap) -> pat_core::csrf::CrossSite<'_> {
    pat_core::csrf::CrossSite::from_headers(|name| headers.get(name).map(HeaderValue::as_bytes))
}
