//! Personal access tokens for Tower: a [`PatLayer`] that authenticates
//! `Authorization: Bearer <token>` and HTTP Basic (`user:token`) requests
//! against any pat backend ([`Store`], [`MemoryStore`] or your own
//! [`Verifier`]), for axum, hyper or any Tower stack.
//!
//! On success the [`Identity`] is inserted into the request extensions; with
//! the `axum` feature (on by default) it is also an extractor. Failures are
//! answered 401 (or 400 for a broken header) with `WWW-Authenticate`
//! challenges for both schemes, and 503 with `Retry-After` when the backend
//! cannot answer; they never reach the inner service. All the logic is
//! [`pat_core::Gate`]'s; this crate only translates types. A backend that
//! answers later (a network round trip) is awaited inside the response
//! future, so no worker thread blocks.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use pat_tower::{Identity, PatLayer, Store};
//!
//! async fn whoami(identity: Identity) -> String {
//!     identity.user().to_owned()
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
// docs.rs (`--cfg docsrs`, nightly) shows which feature each item needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::{ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION};
use http::{Request, Response};
use pat_core::Gate;
use pat_core::adapter::{AnswerRejection, RejectWith, Waiting, client_of, cors_preflight};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

// One dependency for an integrator: what a service behind the layer uses.
#[cfg(feature = "axum")]
pub use gitlab_revocation::gitlab_revocation;
#[cfg(feature = "axum")]
pub use introspection::introspection;
#[cfg(feature = "axum")]
pub use leaks::leak_reports;
#[cfg(feature = "axum")]
pub use management::{management, token_panel};
/// Everything else of pat-core: backends, the token format, errors.
#[doc(no_inline)]
pub use pat_core;
#[cfg(feature = "axum")]
#[doc(no_inline)]
pub use pat_core::MissingIdentity;
#[cfg(feature = "axum")]
pub use scoped::{Permissions, ScopeRejection, Scoped};
pub use scopes::{
    DefaultInsufficient, GuardFuture, OnInsufficientScope, RequireScopes, RequireScopesService,
};
#[cfg(feature = "axum")]
pub use secret_scanning::secret_scanning;
#[cfg(feature = "axum")]
pub use self_service::self_service;

#[cfg(feature = "axum")]
mod answer;
#[cfg(feature = "axum")]
mod gitlab_revocation;
#[cfg(feature = "axum")]
mod introspection;
#[cfg(feature = "axum")]
mod leaks;
#[cfg(feature = "axum")]
mod management;
#[cfg(feature = "axum")]
mod scoped;
mod scopes;
#[cfg(feature = "axum")]
mod secret_scanning;
#[cfg(feature = "axum")]
mod self_service;
#[cfg(feature = "remote")]
#[doc(no_inline)]
pub use pat_core::remote;
#[cfg(feature = "webhooks")]
#[doc(no_inline)]
pub use pat_core::webhook;
#[doc(no_inline)]
pub use pat_core::{
    Admin, Cidr, ExpiryPolicy, Identity, IntoVerifier, MemoryStore, NewToken, NodeId, Perm,
    ProxyHeader, Rejection, Scope, Scopes, Timestamp, TokenId, TrustedProxies, Verifier,
    adapter::PeerAddr,
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

/// A rejection answered with a JSON body beside the status and challenges:
/// `{"error":"invalid_token","error_description":"…"}`
/// ([`Rejection::json_body`]), `Content-Type: application/json`.
///
/// ```
/// # use std::sync::Arc;
/// # let dir = tempfile::tempdir()?;
/// # let store = Arc::new(pat_core::Store::open(dir.path().join("pat.redb"))?);
/// use axum::Router;
/// use pat_tower::{JsonRejection, PatLayer};
/// let app: Router = Router::new().layer(PatLayer::new(store).on_rejection(JsonRejection));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonRejection;

impl<B: From<String>> OnRejection<B> for JsonRejection {
    fn response(&self, rejection: &Rejection) -> Response<B> {
        let mut response = rejection.to_response(B::from(rejection.json_body()));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
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

/// A rejection hook as the `Identity` extractor of a request let through
/// anonymously sees it ([`RejectWith`]), so that it answers as the layer
/// would. Made (an allocation) only for such a request: the services keep
/// the hook itself, since axum clones a route's service for every request
/// and an `Arc` there would cost two atomic operations each time.
struct Hook<R>(R);

impl<B, R: OnRejection<B> + Send + Sync> AnswerRejection<Response<B>> for Hook<R> {
    fn answer(&self, rejection: &Rejection) -> Response<B> {
        self.0.response(rejection)
    }
}

/// A [`Layer`] that authenticates requests with personal access tokens.
#[derive(Clone)]
pub struct PatLayer<R = DefaultRejection> {
    gate: Gate,
    on_rejection: R,
}

pat_core::gate_middleware!(PatLayer, DefaultRejection);

impl<R> PatLayer<R> {
    pat_core::gate_options!();

    /// Uses `on_rejection` to build rejection responses: the layer's own,
    /// and those of an `Identity` extractor on a request the layer let
    /// through anonymously (optional mode).
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

/// Admits a request ([`Gate::admit`]), leaving the layer's hook for the
/// extractor of a request let through anonymously.
fn admit<ReqBody, ResBody, R>(
    gate: &Gate,
    outcome: pat_core::Outcome,
    req: &mut Request<ReqBody>,
    on_rejection: &R,
) -> Result<(), Rejection>
where
    ResBody: 'static,
    R: OnRejection<ResBody> + Clone + Send + Sync + 'static,
{
    gate.admit_with(outcome, req.extensions_mut(), || {
        RejectWith::<Response<ResBody>>::new(Arc::new(Hook(on_rejection.clone())))
    })
}

impl<S: fmt::Debug, R> fmt::Debug for PatService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatService")
            .field("inner", &self.inner)
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

/// The connection's peer: [`PeerAddr`] in the extensions, else axum's
/// `ConnectInfo<SocketAddr>` (serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`).
#[inline]
fn peer_addr<B>(req: &Request<B>) -> Option<std::net::IpAddr> {
    if let Some(PeerAddr(addr)) = req.extensions().get::<PeerAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    if let Some(info) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        return Some(info.0.ip());
    }
    None
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for PatService<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: 'static,
    R: OnRejection<ResBody> + Clone + Send + Sync + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let preflight = cors_preflight(req.method().as_str(), || {
            req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD)
        });
        let client = client_of(&self.gate, peer_addr(&req), || {
            (
                req.headers()
                    .get_all("forwarded")
                    .iter()
                    .map(|v| v.as_bytes()),
                req.headers()
                    .get_all("x-forwarded-for")
                    .iter()
                    .map(|v| v.as_bytes()),
            )
        });
        let authorization = req
            .headers()
            .get_all(AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes());
        let checking = self.gate.check_from(authorization, preflight, client);
        match checking.into_ready() {
            Ok(outcome) => match admit(&self.gate, outcome, &mut req, &self.on_rejection) {
                Ok(()) => ResponseFuture {
                    kind: Kind::Inner {
                        future: self.ready_inner().call(req),
                    },
                },
                Err(rejection) => ResponseFuture {
                    kind: Kind::Rejected {
                        response: Some(self.on_rejection.response(&rejection)),
                    },
                },
            },
            // The backend answers later: keep the request and the service
            // that was driven to readiness until it does.
            Err(checking) => ResponseFuture {
                kind: Kind::Verifying {
                    waiting: Box::new(Waiting::new(
                        checking,
                        Held {
                            request: req,
                            inner: self.ready_inner(),
                            gate: self.gate.clone(),
                            on_rejection: self.on_rejection.clone(),
                        },
                    )),
                },
            },
        }
    }
}

impl<S: Clone, R> PatService<S, R> {
    /// The service that was driven to readiness, leaving a clone in its place.
    fn ready_inner(&mut self) -> S {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }
}

pin_project! {
    /// The response future of [`PatService`]: waiting for the backend, then
    /// the inner service's future, or a ready rejection. Boxed only where the
    /// backend itself answers with a future (a network round trip).
    pub struct ResponseFuture<S, ReqBody, R>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        kind: Kind<S::Future, S, Request<ReqBody>, R, S::Response>,
    }
}

/// What a request waiting for the backend holds on to.
struct Held<S, Req, R> {
    request: Req,
    inner: S,
    gate: Gate,
    on_rejection: R,
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, S, Req, R, Res> {
        Verifying { waiting: Box<Waiting<Held<S, Req, R>>> },
        Inner { #[pin] future: F },
        Rejected { response: Option<Res> },
    }
}

impl<S, ReqBody, R> fmt::Debug for ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Verifying { .. } => "verifying",
            Kind::Inner { .. } => "inner",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, ReqBody, R, ResBody> Future for ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: 'static,
    R: OnRejection<ResBody> + Clone + Send + Sync + 'static,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        loop {
            match kind.as_mut().project() {
                KindProj::Verifying { waiting } => {
                    let (outcome, held) = ready!(waiting.poll_outcome(cx));
                    let Held {
                        mut request,
                        mut inner,
                        gate,
                        on_rejection,
                    } = held;
                    match admit(&gate, outcome, &mut request, &on_rejection) {
                        Ok(()) => kind.set(Kind::Inner {
                            future: inner.call(request),
                        }),
                        Err(rejection) => {
                            let response = on_rejection.response(&rejection);
                            kind.set(Kind::Rejected { response: None });
                            return Poll::Ready(Ok(response));
                        }
                    }
                }
                KindProj::Inner { future } => return future.poll(cx),
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
