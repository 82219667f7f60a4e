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

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::Method;
use actix_web::http::header::{ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION};
use actix_web::{Error, HttpMessage as _, HttpResponse};
use pat_core::{Checking, Gate, Mode, Outcome};
use pin_project_lite::pin_project;

// One dependency for an integrator: what a service behind the middleware uses.
pub use management::{management, token_panel};
/// Everything else of pat-core: backends, the token format, errors.
#[doc(no_inline)]
pub use pat_core;
#[doc(no_inline)]
pub use pat_core::{
    Admin, ExpiryPolicy, Identity, IntoVerifier, MemoryStore, MissingIdentity, NewToken, NodeId,
    Perm, Rejection, Scope, Scopes, Timestamp, TokenId, Verifier,
};
#[cfg(unix)]
#[doc(no_inline)]
pub use pat_core::{AdminClient, Store, StoreBuilder};
pub use self_service::{introspection, leak_reports, self_service};

mod management;
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
#[derive(Clone)]
pub struct PatMiddleware<R = DefaultRejection> {
    gate: Gate,
    on_rejection: Arc<R>,
}

impl<R> fmt::Debug for PatMiddleware<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatMiddleware")
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl PatMiddleware {
    /// Required mode, realm `"pat"`, checking tokens with `verifier`: a
    /// [`Store`], a [`MemoryStore`] or any [`Verifier`], by
    /// value or in an `Arc` (keep a clone to flush it or manage tokens).
    pub fn new(verifier: impl IntoVerifier) -> PatMiddleware {
        PatMiddleware::from_gate(Gate::new(verifier))
    }

    /// Middleware around an already configured [`Gate`].
    pub fn from_gate(gate: Gate) -> PatMiddleware {
        PatMiddleware {
            gate,
            on_rejection: Arc::new(DefaultRejection),
        }
    }
}

impl<R> PatMiddleware<R> {
    /// Sets the realm of the `WWW-Authenticate` challenges (default `"pat"`).
    pub fn realm(mut self, realm: &str) -> Self {
        self.gate = self.gate.realm(realm);
        self
    }

    /// Optional mode: requests without credentials, or with a Bearer token
    /// or Basic password that is not a PAT, pass on without an [`Identity`].
    pub fn optional(self) -> Self {
        self.mode(Mode::Optional)
    }

    /// Sets the mode ([`Mode::Required`] by default).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.gate = self.gate.mode(mode);
        self
    }

    /// Checks CORS preflights too (by default they pass without identity).
    pub fn reject_preflight(mut self, reject: bool) -> Self {
        self.gate = self.gate.reject_preflight(reject);
        self
    }

    /// The `Retry-After` seconds of the 503 answered when the backend is
    /// unavailable (default 1).
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.gate = self.gate.retry_after(seconds);
        self
    }

    /// Uses `on_rejection` to build rejection responses.
    pub fn on_rejection<R2>(self, on_rejection: R2) -> PatMiddleware<R2> {
        PatMiddleware {
            gate: self.gate,
            on_rejection: Arc::new(on_rejection),
        }
    }
}

impl<S, B, R> Transform<S, ServiceRequest> for PatMiddleware<R>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody,
    R: OnRejection,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = Error;
    type Transform = PatService<S, R>;
    type InitError = ();
    type Future = Ready<Result<PatService<S, R>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(PatService {
            service: Rc::new(service),
            gate: self.gate.clone(),
            on_rejection: self.on_rejection.clone(),
        }))
    }
}

/// The service made by [`PatMiddleware`].
#[doc(hidden)]
pub struct PatService<S, R> {
    service: Rc<S>,
    gate: Gate,
    on_rejection: Arc<R>,
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
    R: OnRejection,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = Error;
    type Future = ResponseFuture<S, B, R>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let preflight = req.method() == Method::OPTIONS
            && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        let authorization = req.headers().get_all(AUTHORIZATION).map(|v| v.as_bytes());
        let checking = self.gate.check(authorization, preflight);
        match checking.into_ready() {
            Ok(outcome) => match admit(&self.gate, &req, outcome) {
                Ok(()) => ResponseFuture::Inner {
                    future: self.service.call(req),
                },
                Err(rejection) => ResponseFuture::Rejected {
                    response: Some(reject(req, &*self.on_rejection, &rejection)),
                },
            },
            // The backend answers later: keep the request until it does.
            Err(checking) => ResponseFuture::Verifying {
                waiting: Some(Box::new(Waiting {
                    checking,
                    request: req,
                    service: self.service.clone(),
                    gate: self.gate.clone(),
                    on_rejection: self.on_rejection.clone(),
                })),
            },
        }
    }
}

/// Applies the gate's outcome to the request: the identity inserted, or the
/// rejection to answer with. Exhaustive, with no catch-all arm: nothing the
/// gate did not accept reaches the inner service.
fn admit(gate: &Gate, req: &ServiceRequest, outcome: Outcome) -> Result<(), Rejection> {
    match outcome {
        Outcome::Authenticated(identity) => {
            req.extensions_mut().insert(identity);
            Ok(())
        }
        // Optional mode or a preflight: leave what an `Identity` extractor
        // should answer.
        Outcome::Anonymous => {
            req.extensions_mut().insert(gate.missing_credentials());
            Ok(())
        }
        Outcome::Rejected(rejection) => Err(rejection),
    }
}

fn reject<B>(
    req: ServiceRequest,
    on_rejection: &impl OnRejection,
    rejection: &Rejection,
) -> ServiceResponse<EitherBody<B, BoxBody>> {
    req.into_response(on_rejection.response(rejection))
        .map_into_right_body()
}

/// What a request waiting for the backend holds on to. Boxed, so that the
/// response future stays small on the usual path (a backend that answers at
/// once); the box is made only when the backend answers later.
#[doc(hidden)]
pub struct Waiting<S, R> {
    checking: Checking,
    request: ServiceRequest,
    service: Rc<S>,
    gate: Gate,
    on_rejection: Arc<R>,
}

impl<S, R> fmt::Debug for Waiting<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiting").finish_non_exhaustive()
    }
}

pin_project! {
    /// The future of [`PatService`]: waiting for the backend, then the inner
    /// service's future, or a ready rejection. Boxed only where the backend
    /// itself answers with a future.
    #[doc(hidden)]
    #[project = ResponseFutureProj]
    pub enum ResponseFuture<S, B, R>
    where
        S: Service<ServiceRequest>,
    {
        /// Waiting for a backend that answers later.
        Verifying { waiting: Option<Box<Waiting<S, R>>> },
        /// The inner service is answering.
        Inner { #[pin] future: S::Future },
        /// Rejected before the inner service.
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
    R: OnRejection,
{
    type Output = Result<ServiceResponse<EitherBody<B, BoxBody>>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                ResponseFutureProj::Verifying { waiting } => {
                    let mut state = waiting
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let outcome = match Pin::new(&mut state.checking).poll(cx) {
                        Poll::Ready(outcome) => outcome,
                        Poll::Pending => {
                            *waiting = Some(state);
                            return Poll::Pending;
                        }
                    };
                    let Waiting {
                        request,
                        service,
                        gate,
                        on_rejection,
                        ..
                    } = *state;
                    match admit(&gate, &request, outcome) {
                        Ok(()) => self.set(ResponseFuture::Inner {
                            future: service.call(request),
                        }),
                        Err(rejection) => {
                            self.set(ResponseFuture::Rejected { response: None });
                            return Poll::Ready(Ok(reject(request, &*on_rejection, &rejection)));
                        }
                    }
                }
                ResponseFutureProj::Inner { future } => {
                    return future.poll(cx).map_ok(ServiceResponse::map_into_left_body);
                }
                ResponseFutureProj::Rejected { response } => {
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
