//! GitHub's secret scanning partner endpoint as an actix-web resource;
//! the decisions are [`pat_core::secret_scanning`]'s.

use actix_web::{HttpRequest, HttpResponse, web};
use pat_core::Timestamp;
use pat_core::secret_scanning::{KEY_IDENTIFIER_HEADER, SIGNATURE_HEADER, SecretScanning};

use crate::answer::{answer, read_body};

/// A resource at `path` answering `POST` GitHub's secret scanning reports
/// (see [`pat_core::secret_scanning`]): a public route, to serve without
/// the PAT middleware (GitHub signs its requests; it holds no token). The
/// body is read whole, within
/// [`MAX_BODY_LEN`](pat_core::hygiene::MAX_BODY_LEN) and
/// [`BODY_READ_TIMEOUT`](pat_core::hygiene::BODY_READ_TIMEOUT), since the
/// signature covers its bytes; the check and the revocations run on
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
    let body = match read_body(&req, payload).await {
        Ok(body) => body,
        Err(refused) => return answer(Ok(refused)),
    };
    let header = |name| req.headers().get(name).map(|v| v.as_bytes().to_vec());
    let (key_id, signature) = (header(KEY_IDENTIFIER_HEADER), header(SIGNATURE_HEADER));
    let scanning = scanning.into_inner();
    let now = Timestamp::now();
    answer(
        web::block(move || {
            scanning.report_blocking(key_id.as_deref(), signature.as_deref(), &body, now)
        })
        .await,
    )
}
