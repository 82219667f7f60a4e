//! Leak reports as an actix-web resource; the decisions are
//! [`pat_core::leaks`]'s.

use actix_web::{HttpRequest, HttpResponse, web};
use pat_core::Timestamp;

use crate::answer::{answer, forwarding, read_body};

/// A resource at `path` answering `POST` leak reports (see
/// [`pat_core::leaks`]): a public route, to serve without the PAT
/// middleware. The client address is the connection's peer, or, from a
/// trusted proxy
/// ([`LeakReports::trusted_proxies`](pat_core::leaks::LeakReports::trusted_proxies)),
/// from the headers it writes; the lookups run on actix's blocking pool.
pub fn leak_reports(path: &str, reports: pat_core::leaks::LeakReports) -> actix_web::Resource {
    web::resource(path)
        .app_data(web::Data::new(reports))
        .route(web::post().to(report_leak))
}

async fn report_leak(
    reports: web::Data<pat_core::leaks::LeakReports>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let Some(peer) = req.peer_addr() else {
        return HttpResponse::BadRequest().finish();
    };
    let body = match read_body(&req, payload).await {
        Ok(body) => body,
        Err(refused) => return answer(Ok(refused)),
    };
    let (forwarded, x_forwarded_for) = forwarding(&req);
    let client = reports.client(peer.ip(), forwarded, x_forwarded_for);
    let reports = reports.into_inner();
    let now = Timestamp::now();
    answer(web::block(move || reports.report_blocking(client, &body, now)).await)
}
