//! Personal access tokens for actix-web: a [`PatMiddleware`] that
//! authenticates `Authorization: Bearer <token>` and HTTP Basic
//! (`user:token`) requests against a [`pat_core::Store`].
//!
//! On success the [`Identity`] is inserted into the request extensions and
//! is an extractor (`Identity`, or `Option<Identity>`). Failures are answered
//! 401 (400 for a broken header) with `WWW-Authenticate` challenges for both
//! schemes, before the inner service runs. Statuses, headers and default
//! bodies are the same as `pat-tower`'s: both ask [`pat_core::Gate`].
//!
//! ```
//! use std::sync::Arc;
//! use actix_web::{App, web};
//! use pat_core::{Identity, Store};
//! use pat_actix::PatMiddleware;
//!
//! async fn whoami(identity: Identity) -> String {
//!     identity.user
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
use pat_core::{Gate, Mode, Outcome, Verifier};
use pin_project_lite::pin_project;

#[doc(no_inline)]
pub use pat_core::{Identity, MissingIdentity, Rejection};

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
#[derive(Clone)]
pub struct PatMiddleware<R = DefaultRejection> {
    gate: Gate,
    on_rejection: Rc<R>,
}

impl<R> fmt::Debug for PatMiddleware<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatMiddleware")
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl PatMiddleware {
    /// Required mode, realm `"pat"`, checking tokens with `verifier`
    /// (an `Arc<Store>`, or another backend).
    pub fn new(verifier: Arc<dyn Verifier>) -> PatMiddleware {
        PatMiddleware::from_gate(Gate::new(verifier))
    }

    /// Middleware around an already configured [`Gate`].
    pub fn from_gate(gate: Gate) -> PatMiddleware {
        PatMiddleware {
            gate,
            on_rejection: Rc::new(DefaultRejection),
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

    /// Uses `on_rejection` to build rejection responses.
    pub fn on_rejection<R2>(self, on_rejection: R2) -> PatMiddleware<R2> {
        PatMiddleware {
            gate: self.gate,
            on_rejection: Rc::new(on_rejection),
        }
    }
}

impl<S, B, R> Transform<S, ServiceRequest> for PatMiddleware<R>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
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
            service,
            gate: self.gate.clone(),
            on_rejection: self.on_rejection.clone(),
        }))
    }
}

/// The service made by [`PatMiddleware`].
#[doc(hidden)]
pub struct PatService<S, R> {
    service: S,
    gate: Gate,
    on_rejection: Rc<R>,
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
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
    R: OnRejection,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let preflight = req.method() == Method::OPTIONS
            && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        let authorization = req.headers().get_all(AUTHORIZATION).map(|v| v.as_bytes());
        match self.gate.check(authorization, preflight) {
            Outcome::Authenticated(identity) => {
                req.extensions_mut().insert(identity);
            }
            Outcome::Rejected(rejection) => {
                let res = req.into_response(self.on_rejection.response(&rejection));
                return ResponseFuture::Rejected {
                    response: Some(res.map_into_right_body()),
                };
            }
            // Anonymous: leave what an `Identity` extractor should answer.
            _ => {
                req.extensions_mut().insert(self.gate.missing_credentials());
            }
        }
        ResponseFuture::Inner {
            future: self.service.call(req),
        }
    }
}

pin_project! {
    /// The future of [`PatService`]: the inner service's, or a ready
    /// rejection. Nothing boxed.
    #[doc(hidden)]
    #[project = ResponseFutureProj]
    pub enum ResponseFuture<F, B> {
        /// The inner service is answering.
        Inner { #[pin] future: F },
        /// Rejected before the inner service.
        Rejected { response: Option<ServiceResponse<EitherBody<B, BoxBody>>> },
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B, BoxBody>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ResponseFutureProj::Inner { future } => {
                future.poll(cx).map_ok(ServiceResponse::map_into_left_body)
            }
            ResponseFutureProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

#[cfg(test)]
mod tests;
