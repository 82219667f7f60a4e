//! Personal access tokens for Tower: a [`PatLayer`] that authenticates
//! `Authorization: Bearer <token>` and HTTP Basic (`user:token`) requests
//! against a [`pat_core::Store`], for axum, hyper or any Tower stack.
//!
//! On success the [`Identity`] is inserted into the request extensions; with
//! the `axum` feature (on by default) it is also an extractor. Failures are
//! answered 401 (or 400 for a broken header) with `WWW-Authenticate`
//! challenges for both schemes, and never reach the inner service. All the
//! logic is [`pat_core::Gate`]'s; this crate only translates types.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use pat_core::{Identity, Store};
//! use pat_tower::PatLayer;
//!
//! async fn whoami(identity: Identity) -> String {
//!     identity.user
//! }
//!
//! # let dir = tempfile::tempdir()?;
//! let store = Arc::new(Store::open(dir.path().join("pat.redb"))?);
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .layer(PatLayer::new(store).realm("my-service"))
//!     .route("/health", get(|| async { "ok" })); // outside the layer
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION};
use http::{Method, Request, Response};
use pat_core::{Gate, Mode, Outcome, Verifier};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

#[doc(no_inline)]
pub use pat_core::{Identity, Rejection};

/// Builds the response for a rejected request.
///
/// Implemented by [`DefaultRejection`] (status and challenges, empty body)
/// and by any `Fn(&Rejection) -> Response<B>`; start from
/// [`Rejection::to_response`] to keep the status and challenges:
///
/// ```
/// # use std::sync::Arc;
/// # let dir = tempfile::tempdir()?;
/// # let store = Arc::new(pat_core::Store::open(dir.path().join("pat.redb"))?);
/// use axum::body::Body;
/// use http::header::CONTENT_TYPE;
/// let layer = pat_tower::PatLayer::new(store).on_rejection(|r: &pat_core::Rejection| {
///     let mut res = r.to_response(Body::from(r.json_body()));
///     res.headers_mut().insert(CONTENT_TYPE, "application/json".parse().unwrap());
///     res
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait OnRejection<B> {
    /// The response to send instead of calling the inner service.
    fn response(&self, rejection: &Rejection) -> Response<B>;
}

/// The default rejection response: status, `WWW-Authenticate` challenges and
/// an empty body.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultRejection;

impl<B: Default> OnRejection<B> for DefaultRejection {
    fn response(&self, rejection: &Rejection) -> Response<B> {
        rejection.to_response(B::default())
    }
}

impl<B, F> OnRejection<B> for F
where
    F: Fn(&Rejection) -> Response<B>,
{
    fn response(&self, rejection: &Rejection) -> Response<B> {
        self(rejection)
    }
}

/// A [`Layer`] that authenticates requests with personal access tokens.
#[derive(Clone)]
pub struct PatLayer<R = DefaultRejection> {
    gate: Gate,
    on_rejection: R,
}

impl<R> fmt::Debug for PatLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatLayer")
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl PatLayer {
    /// A layer in required mode, realm `"pat"`, checking tokens with
    /// `verifier` (an `Arc<Store>`, or another backend).
    pub fn new(verifier: Arc<dyn Verifier>) -> PatLayer {
        PatLayer::from_gate(Gate::new(verifier))
    }

    /// A layer around an already configured [`Gate`].
    pub fn from_gate(gate: Gate) -> PatLayer {
        PatLayer {
            gate,
            on_rejection: DefaultRejection,
        }
    }
}

impl<R> PatLayer<R> {
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
    pub fn on_rejection<R2>(self, on_rejection: R2) -> PatLayer<R2> {
        PatLayer {
            gate: self.gate,
            on_rejection,
        }
    }
}

impl<S, R: Clone> Layer<S> for PatLayer<R> {
    type Service = PatService<S, R>;

    fn layer(&self, inner: S) -> PatService<S, R> {
        PatService {
            inner,
            gate: self.gate.clone(),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

/// The [`Service`] made by [`PatLayer`].
#[derive(Clone)]
pub struct PatService<S, R = DefaultRejection> {
    inner: S,
    gate: Gate,
    on_rejection: R,
}

impl<S: fmt::Debug, R> fmt::Debug for PatService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatService")
            .field("inner", &self.inner)
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for PatService<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    R: OnRejection<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let preflight = req.method() == Method::OPTIONS
            && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        let authorization = req
            .headers()
            .get_all(AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes());
        match self.gate.check(authorization, preflight) {
            Outcome::Authenticated(identity) => {
                req.extensions_mut().insert(identity);
            }
            Outcome::Rejected(rejection) => {
                return ResponseFuture::rejected(self.on_rejection.response(&rejection));
            }
            // Anonymous (optional mode, preflight); leave what an extractor
            // demanding an identity should answer.
            _ => {
                req.extensions_mut().insert(self.gate.missing_credentials());
            }
        }
        // Call the service that was driven to readiness, leave a clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::inner(inner.call(req))
    }
}

pin_project! {
    /// The response future of [`PatService`]: the inner service's, or a
    /// ready rejection. Nothing boxed.
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Inner { #[pin] future: F },
        Rejected { response: Option<Response<B>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    fn inner(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
        }
    }

    fn rejected(response: Response<B>) -> Self {
        ResponseFuture {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx),
            KindProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

#[cfg(test)]
mod tests;
