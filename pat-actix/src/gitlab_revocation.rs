//! GitLab's Token Revocation API as an actix-web scope; the decisions are
//! [`pat_core::gitlab_revocation`]'s.

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use pat_core::Timestamp;
use pat_core::gitlab_revocation::TokenRevocation;
use pat_core::secret_scanning::MAX_REPORT_LEN;

use crate::answer::{answer, forwarding, read_body_within};

/// A scope at `path` answering `GET {path}/v1/revocable_token_types` and
/// `POST {path}/v1/revoke_tokens` (see [`pat_core::gitlab_revocation`]),
/// to serve without the PAT middleware (GitLab authenticates with the
/// pre-shared secret, not a token). The client address is the
/// connection's peer, or, from a trusted proxy, from the headers it
/// writes. [`TokenRevocation::precheck`] answers before a body is read; it
/// is read within [`MAX_REPORT_LEN`] and the revocations run on actix's
/// blocking pool.
pub fn gitlab_revocation(path: &str, api: TokenRevocation) -> actix_web::Scope {
    web::scope(path)
        .app_data(web::Data::new(api))
        .route("/v1/revocable_token_types", web::get().to(token_types))
        .route("/v1/revoke_tokens", web::post().to(revoke))
}

/// The client and the `Authorization` value of `req`.
fn caller(api: &TokenRevocation, req: &HttpRequest) -> Option<(std::net::IpAddr, Option<Vec<u8>>)> {
    let peer = req.peer_addr()?;
    let (forwarded, x_forwarded_for) = forwarding(req);
    let client = api.client(peer.ip(), forwarded, x_forwarded_for);
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    Some((client, authorization))
}

async fn token_types(api: web::Data<TokenRevocation>, req: HttpRequest) -> HttpResponse {
    let Some((client, authorization)) = caller(&api, &req) else {
        return HttpResponse::BadRequest().finish();
    };
    answer(Ok(
        match api.precheck(client, authorization.as_deref(), Timestamp::now()) {
            Ok(admitted) => api.token_types(admitted),
            Err(refused) => refused,
        },
    ))
}

async fn revoke(
    api: web::Data<TokenRevocation>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let Some((client, authorization)) = caller(&api, &req) else {
        return HttpResponse::BadRequest().finish();
    };
    let now = Timestamp::now();
    let admitted = match api.precheck(client, authorization.as_deref(), now) {
        Ok(admitted) => admitted,
        Err(refused) => return answer(Ok(refused)),
    };
    let body = match read_body_within(&req, payload, MAX_REPORT_LEN).await {
        Ok(body) => body,
        Err(refused) => return answer(Ok(refused)),
    };
    let api = api.into_inner();
    answer(web::block(move || api.revoke_blocking(admitted, &body, now)).await)
}
