//! GitHub's secret scanning partner endpoint as an actix-web resource;
//! the decisions are [`pat_core::secret_scanning`]'s.

use actix_web::{HttpRequest, HttpResponse, web};
use pat_core::Timestamp;
use pat_core::secret_scanning::{
    KEY_IDENTIFIER_HEADER, MAX_REPORT_LEN, SIGNATURE_HEADER, SecretScanning,
};

use crate::answer::{answer, forwarding, read_body_within};

/// A resource at `path` answering `POST` GitHub's secret scanning reports
/// (see [`pat_core::secret_scanning`]): a public route, to serve without
/// the PAT middleware (GitHub signs its requests; it holds no token). The
/// client address is the connection's peer, or, from a trusted proxy
/// ([`SecretScanning::trusted_proxies`]), from the headers it writes.
/// [`SecretScanning::precheck`] answers before the body is read (a client
/// past its refusals, headers that hold no signature); the body is read
/// whole, within [`MAX_REPORT_LEN`](pat_core::secret_scanning::MAX_REPORT_LEN)
/// and [`BODY_READ_TIMEOUT`](pat_core::hygiene::BODY_READ_TIMEOUT), since
/// the signature covers its bytes; the check and the revocations run on
/// actix's blocking pool.
pub fn secret_scanning(path: &str, scanning: SecretScanning) -> actix_web::Resource {
    web::resource(path)
        .app_data(web::Data::new(scanning))
        .route(web::post().to(report))
}

async fn report(
    scanning: web::Data<SecretScanning>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let Some(peer) = req.peer_addr() else {
        return HttpResponse::BadRequest().finish();
    };
    let (forwarded, x_forwarded_for) = forwarding(&req);
    let client = scanning.client(peer.ip(), forwarded, x_forwarded_for);
    let header = |name| req.headers().get(name).map(|v| v.as_bytes().to_vec());
    let (key_id, signature) = (header(KEY_IDENTIFIER_HEADER), header(SIGNATURE_HEADER));
    let now = Timestamp::now();
    let admitted = match scanning.precheck(client, key_id.as_deref(), signature.as_deref(), now) {
        Ok(admitted) => admitted,
        Err(refused) => return answer(Ok(refused)),
    };
    let body = match read_body_within(&req, payload, MAX_REPORT_LEN).await {
        Ok(body) => body,
        Err(refused) => return answer(Ok(refused)),
    };
    let scanning = scanning.into_inner();
    answer(
        web::block(move || {
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
}
