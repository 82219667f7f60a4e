//! The HTTP side of pat-core's [`Answer`]s, for every route of this crate:
//! the response an answer calls for, a body read within pat-core's limits,
//! and what the CSRF rule looks at in a request.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use pat_core::answer::Answer;

/// The response for a route's answer (`Err`: the blocking call panicked,
/// answered like a failed store call).
pub(crate) fn answer(joined: Result<Answer, actix_web::error::BlockingError>) -> HttpResponse {
    // A panicking store call is a failed call, not a dropped connection.
    let answer = joined.unwrap_or_else(|_| Answer::unavailable());
    let mut response = HttpResponse::build(
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    if !answer.body.is_empty() {
        // A 204 has no body, so no type of one.
        response.insert_header((CONTENT_TYPE, answer.content_type));
    }
    response.insert_header((CACHE_CONTROL, Answer::CACHE_CONTROL));
    if let Some(seconds) = answer.retry_after {
        response.insert_header((actix_web::http::header::RETRY_AFTER, seconds));
    }
    if answer.close {
        response.force_close();
    }
    response.body(answer.body)
}

/// A route's body, within pat-core's limits
/// ([`MAX_BODY_LEN`](pat_core::hygiene::MAX_BODY_LEN),
/// [`BODY_READ_TIMEOUT`](pat_core::hygiene::BODY_READ_TIMEOUT)); the
/// answer to send instead when it is too large, too slow or unreadable.
pub(crate) async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<web::Bytes, Answer> {
    read_body_within(req, payload, pat_core::hygiene::MAX_BODY_LEN).await
}

/// [`read_body`] with a route's own limit of `limit` bytes.
pub(crate) async fn read_body_within(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, Answer> {
    use pat_core::hygiene::BODY_READ_TIMEOUT;
    let announced = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(Answer::body_larger_than(limit));
    }
    match actix_web::rt::time::timeout(BODY_READ_TIMEOUT, payload.to_bytes_limited(limit)).await {
        Err(_) => Err(Answer::body_too_slow()),
        Ok(Err(_)) => Err(Answer::body_larger_than(limit)),
        Ok(Ok(Err(_))) => Err(Answer::body_unreadable()),
        Ok(Ok(Ok(body))) => Ok(body),
    }
}

/// The `Forwarded` and `X-Forwarded-For` values of `req`, as
/// [`TrustedProxies::client`](pat_core::TrustedProxies::client) reads them.
pub(crate) fn forwarding(
    req: &HttpRequest,
) -> (impl Iterator<Item = &[u8]>, impl Iterator<Item = &[u8]>) {
    let headers = req.headers();
    (
        headers.get_all("forwarded").map(|v| v.as_bytes()),
        headers.get_all("x-forwarded-for").map(|v| v.as_bytes()),
    )
}

/// What [`pat_core::csrf`]'s rule looks at in `req`.
pub(crate) fn cross_site(req: &HttpRequest) -> pat_core::csrf::CrossSite<'_> {
    pat_core::csrf::CrossSite::from_headers(|name| req.headers().get(name).map(|v| v.as_bytes()))
}
