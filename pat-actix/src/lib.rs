//! Personal access tokens for actix-web: a [`PatMiddleware`] that
//! authenticates `Authorization: Bearer <token>` and HTTP Basic
//! (`user:token`) requests against any pat backend ([`Store`],
//! [`MemoryStore`] or your own [`Verifier`]).
//!
//! On success the [`Identity`] is inserted into the request extensions and
//! is an extractor (`Identity`, or `Option<Identity>`). Failures are answered
//! 401 (400 for a broken header) with `WWW-Authenticate` challenges for both
//! schemes, or 503 with `Retry-After` when the backend cannot answer, before
//! the inner service runs. Statuses, headers and default bodies are the same
//! as `pat-tower`'s: both ask [`pat_core::Gate`]. A backend that answers later
//! is awaited in the response future: the worker is never blocked.
//!
//! ```
//! use std::sync::Arc;
//! use actix_web::{App, web};
//! use pat_actix::{Identity, PatMiddleware, Store};
//!
//! async fn whoami(identity: Identity) -> String {
//!     identity.user().to_owned()
//! }
//!
//! # let dir = tempfile::tempdir()?;
//! let store = Arc::new(Store::open(dir.path().join("pat.redb"))?);
//! let app = App::new()
//!     .route("/health", web::get().to(|| async { "ok" })) // outside the middleware
//!     .service(
//!         web::scope("")
//!             .wrap(PatMiddleware::new(store).realm("my-service"))
//!             .route("/whoami", web::get().to(whoami)),
//!     );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
// docs.rs (`--cfg docsrs`, nightly) shows which feature each item needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::future::{Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION};
use actix_web::{Error, HttpMessage as _, HttpResponse};
use pat_core::Gate;
use pat_core::adapter::{AnswerRejection, RejectWith, Waiting, client_of, cors_preflight};
use pin_project_lite::pin_project;

// One dependency for an integrator: what a service behind the middleware uses.
pub use gitlab_revocation::gitlab_revocation;
pub use introspection::introspection;
pub use leaks::leak_reports;
pub use management::{management, token_panel};
/// Everything else of pat-core: backends, the token format, errors.
#[doc(no_inline)]
pub use pat_core;
#[cfg(feature = "remote")]
#[doc(no_inline)]
pub use pat_core::remote;
#[cfg(feature = "webhooks")]
#[doc(no_inline)]
pub use pat_core::webhook;
#[doc(no_inline)]
pub use pat_core::{
    Admin, Cidr, ExpiryPolicy, Identity, IntoVerifier, MemoryStore, MissingIdentity, NewToken,
    NodeId, Perm, ProxyHeader, Rejection, Scope, Scopes, Timestamp, TokenId, TrustedProxies,
    Verifier,
};
#[cfg(all(unix, feature = "redb"))]
#[doc(no_inline)]
pub use pat_core::{AdminClient, Store, StoreBuilder};
/// What the token routes take, and logins of other protocols, here so
/// that one dependency is enough.
#[doc(no_inline)]
pub use pat_core::{
    LoginRefused, Logins,
    introspection::Introspection,
    leaks::LeakReports,
    management::{Management, Principal},
    secret_scanning::SecretScanning,
};
#[cfg(feature = "postgres")]
#[doc(no_inline)]
pub use pat_core::{PgStore, PgStoreBuilder};
pub use scopes::{
    DefaultInsufficient, GuardFuture, OnInsufficientScope, RequireScopes, RequireScopesService,
};
pub use secret_scanning::secret_scanning;
pub use self_service::self_service;

mod answer;
mod gitlab_revocation;
mod introspection;
mod leaks;
mod management;
mod scopes;
mod secret_scanning;
mod self_service;

/// Builds the response for a rejected request.
///
/// Implemented by [`DefaultRejection`] (status and challenges, empty body)
/// and by any `Fn(&Rejection) -> HttpResponse`; start from
/// [`Rejection::actix_response`] to keep the status and challenges:
///
/// ```
/// # use std::sync::Arc;
/// # let dir = tempfile::tempdir()?;
/// # let store = Arc::new(pat_core::Store::open(dir.path().join("pat.redb"))?);
/// let middleware = pat_actix::PatMiddleware::new(store).on_rejection(|r: &pat_core::Rejection| {
///     r.actix_response().content_type("application/json").body(r.json_body())
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait OnRejection {
    /// The response to send instead of calling the inner service.
    fn response(&self, rejection: &Rejection) -> HttpResponse;
}

/// The default rejection response: status, `WWW-Authenticate` challenges and
/// an empty body, as `pat-tower` sends.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultRejection;

impl OnRejection for DefaultRejection {
    fn response(&self, rejection: &Rejection) -> HttpResponse {
        rejection.actix_response().finish()
    }
}

/// A rejection answered with a JSON body beside the status and challenges:
/// `{"error":"invalid_token","error_description":"…"}`
/// ([`Rejection::json_body`]), `Content-Type: application/json`, as
/// `pat-tower`'s `JsonRejection` answers.
///
/// ```
/// # use std::sync::Arc;
/// # let dir = tempfile::tempdir()?;
/// # let store = Arc::new(pat_core::Store::open(dir.path().join("pat.redb"))?);
/// use pat_actix::{JsonRejection, PatMiddleware};
/// let middleware = PatMiddleware::new(store).on_rejection(JsonRejection);
/// # let _ = middleware;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonRejection;

impl OnRejection for JsonRejection {
    fn response(&self, rejection: &Rejection) -> HttpResponse {
        rejection
            .actix_response()
            .content_type("application/json")
            .body(rejection.json_body())
    }
}

impl<F: Fn(&Rejection) -> HttpResponse> OnRejection for F {
    fn response(&self, rejection: &Rejection) -> HttpResponse {
        self(rejection)
    }
}

/// Middleware factory (`App::wrap`, `Scope::wrap`) authenticating requests
/// with personal access tokens.
///
/// `Send + Sync + Clone` (with a `Send + Sync` rejection hook): build it once,
/// outside `HttpServer::new`, and clone it into each worker's `App`.
pub struct PatMiddleware<R = DefaultRejection> {
    gate: Gate,
    on_rejection: Arc<Hook<R>>,
}

impl<R> Clone for PatMiddleware<R> {
    fn clone(&self) -> PatMiddleware<R> {
        PatMiddleware {
            gate: self.gate.clone(),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

/// A rejection hook, shared by a middleware and its services, and seen by
/// the `Identity` extractor of a request let through anonymously
/// ([`RejectWith`]), so that it answers as the middleware would.
struct Hook<R>(R);

impl<R: OnRejection + Send + Sync> AnswerRejection<HttpResponse> for Hook<R> {
    fn answer(&self, rejection: &Rejection) -> HttpResponse {
        self.0.response(rejection)
    }
}

pat_core::gate_middleware!(PatMiddleware, Arc::new(Hook(DefaultRejection)));

impl<R> PatMiddleware<R> {
    pat_core::gate_options!();

    /// Uses `on_rejection` to build rejection responses: the middleware's
    /// own, and those of an `Identity` extractor on a request it let
    /// through anonymously (optional mode).
    pub fn on_rejection<R2>(self, on_rejection: R2) -> PatMiddleware<R2> {
        PatMiddleware {
            gate: self.gate,
            on_rejection: Arc::new(Hook(on_rejection)),
        }
    }
}

impl<S, B, R> Transform<S, ServiceRequest> for PatMiddleware<R>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody,
    R: OnRejection + Send + Sync + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = Error;
    type Transform = PatService<S, R>;
    type InitError = ();
    type Future = Ready<Result<PatService<S, R>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(PatService {
            service: Rc::new(service),
            gate: self.gate.clone(),
            on_rejection: self.on_rejection.clone(),
        }))
    }
}

/// The [`Service`] made by [`PatMiddleware`].
pub struct PatService<S, R = DefaultRejection> {
    service: Rc<S>,
    gate: Gate,
    on_rejection: Arc<Hook<R>>,
}

impl<S, R> fmt::Debug for PatService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatService")
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl<S, B, R> Service<ServiceRequest> for PatService<S, R>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody,
    R: OnRejection + Send + Sync + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = Error;
    type Future = ResponseFuture<S, B, R>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let preflight = cors_preflight(req.method().as_str(), || {
            req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD)
        });
        let client = client_of(&self.gate, req.peer_addr().map(|a| a.ip()), || {
            (
                req.headers().get_all("forwarded").map(|v| v.as_bytes()),
                req.headers()
                    .get_all("x-forwarded-for")
                    .map(|v| v.as_bytes()),
            )
        });
        let authorization = req.headers().get_all(AUTHORIZATION).map(|v| v.as_bytes());
        let checking = self.gate.check_from(authorization, preflight, client);
        let kind = match checking.into_ready() {
            Ok(outcome) => match admit(&self.gate, outcome, &req, &self.on_rejection) {
                Ok(()) => Kind::Inner {
                    future: self.service.call(req),
                },
                Err(rejection) => Kind::Rejected {
                    response: Some(reject(req, &*self.on_rejection, &rejection)),
                },
            },
            // The backend answers later: keep the request until it does.
            Err(checking) => Kind::Verifying {
                waiting: Box::new(Waiting::new(
                    checking,
                    Held {
                        request: req,
                        service: self.service.clone(),
                        gate: self.gate.clone(),
                        on_rejection: self.on_rejection.clone(),
                    },
                )),
            },
        };
        ResponseFuture { kind }
    }
}

/// [`Gate::admit`] on the request's extensions (a `RefCell` borrow, ended
/// before the request moves on).
fn admit<R: OnRejection + Send + Sync + 'static>(
    gate: &Gate,
    outcome: pat_core::Outcome,
    req: &ServiceRequest,
    on_rejection: &Arc<Hook<R>>,
) -> Result<(), pat_core::Rejection> {
    gate.admit_with(outcome, &mut *req.extensions_mut(), || {
        RejectWith::<HttpResponse>::new(on_rejection.clone())
    })
}

fn reject<B, R: OnRejection>(
    req: ServiceRequest,
    on_rejection: &Hook<R>,
    rejection: &Rejection,
) -> ServiceResponse<EitherBody<B, BoxBody>> {
    req.into_response(on_rejection.0.response(rejection))
        .map_into_right_body()
}

/// What a request waiting for the backend holds on to.
struct Held<S, R> {
    request: ServiceRequest,
    service: Rc<S>,
    gate: Gate,
    on_rejection: Arc<Hook<R>>,
}

pin_project! {
    /// The response future of [`PatService`]: waiting for the backend, then
    /// the inner service's future, or a ready rejection. Boxed only where
    /// the backend itself answers with a future (a network round trip).
    pub struct ResponseFuture<S, B, R>
    where
        S: Service<ServiceRequest>,
    {
        #[pin]
        kind: Kind<S, B, R>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, B, R>
    where
        S: Service<ServiceRequest>,
    {
        Verifying { waiting: Box<Waiting<Held<S, R>>> },
        Inner { #[pin] future: S::Future },
        Rejected { response: Option<ServiceResponse<EitherBody<B, BoxBody>>> },
    }
}

impl<S, B, R> fmt::Debug for ResponseFuture<S, B, R>
where
    S: Service<ServiceRequest>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, R> Future for ResponseFuture<S, B, R>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
    R: OnRejection + Send + Sync + 'static,
{
    type Output = Result<ServiceResponse<EitherBody<B, BoxBody>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        loop {
            match kind.as_mut().project() {
                KindProj::Verifying { waiting } => {
                    let (outcome, held) = ready!(waiting.poll_outcome(cx));
                    let Held {
                        request,
                        service,
                        gate,
                        on_rejection,
                    } = held;
                    match admit(&gate, outcome, &request, &on_rejection) {
                        Ok(()) => kind.set(Kind::Inner {
                            future: service.call(request),
                        }),
                        Err(rejection) => {
                            kind.set(Kind::Rejected { response: None });
                            return Poll::Ready(Ok(reject(request, &*on_rejection, &rejection)));
                        }
                    }
                }
                KindProj::Inner { future } => {
                    return future.poll(cx).map_ok(ServiceResponse::map_into_left_body);
                }
                KindProj::Rejected { response } => {
                    return Poll::Ready(Ok(response
                        .take()
                        .expect("ResponseFuture polled after completion")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
