//! A route guard on named permissions: [`RequireScopes`], a [`Layer`]
//! inside a [`PatLayer`](crate::PatLayer) that answers a token without the
//! permissions a route needs with `403 insufficient_scope`
//! ([`ScopeGuard`]'s decision and bytes).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use pat_core::adapter::RejectWith;
use pat_core::{Identity, InsufficientScope, Rejection, ScopeGuard, ScopeGuardError};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::JsonRejection;

/// Builds the response to a token that lacks a route's permissions.
///
/// Implemented by [`DefaultInsufficient`] (status and challenge, empty
/// body), [`JsonRejection`] (the JSON body,
/// [`InsufficientScope::json_body`]) and any `Fn(&InsufficientScope) ->
/// Response<B>`; start from [`InsufficientScope::to_response`] to keep the
/// status and challenge.
pub trait OnInsufficientScope<B> {
    /// The response to send instead of calling the inner service.
    fn response(&self, insufficient: &InsufficientScope) -> Response<B>;
}

/// `403` with `WWW-Authenticate: Bearer error="insufficient_scope",
/// scope="…"` and an empty body.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultInsufficient;

impl<B: Default> OnInsufficientScope<B> for DefaultInsufficient {
    fn response(&self, insufficient: &InsufficientScope) -> Response<B> {
        insufficient.to_response(B::default())
    }
}

impl<B: From<String>> OnInsufficientScope<B> for JsonRejection {
    fn response(&self, insufficient: &InsufficientScope) -> Response<B> {
        let mut response = insufficient.to_response(B::from(insufficient.json_body().to_owned()));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl<B, F> OnInsufficientScope<B> for F
where
    F: Fn(&InsufficientScope) -> Response<B>,
{
    fn response(&self, insufficient: &InsufficientScope) -> Response<B> {
        self(insufficient)
    }
}

/// A [`Layer`] that lets a request through only when its token holds the
/// named permissions a route needs: put it inside a
/// [`PatLayer`](crate::PatLayer) (axum: `.route_layer(...)` on the routes,
/// then `.layer(PatLayer::new(store))`).
///
/// A token without them gets `403` with `WWW-Authenticate: Bearer
/// realm="pat", error="insufficient_scope", error_description="…",
/// scope="…"` (RFC 6750 §3.1), the same bytes as pat-actix's guard. A
/// request the `PatLayer` let through anonymously (optional mode) is
/// answered as the layer answers a missing token (401, through its
/// rejection hook); on a route no `PatLayer` covers, 500.
///
/// ```
/// # use std::sync::Arc;
/// # let store = Arc::new(pat_core::MemoryStore::new());
/// use axum::{Router, routing::get};
/// use pat_tower::{PatLayer, RequireScopes};
/// let app: Router = Router::new()
///     .route("/repos", get(|| async { "repos" }))
///     .route_layer(RequireScopes::all(["repo:read"])?)
///     .layer(PatLayer::new(store));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct RequireScopes<R = DefaultInsufficient> {
    guard: ScopeGuard,
    on_insufficient: R,
}

impl RequireScopes {
    /// A guard for routes that need every one of `names`.
    pub fn all<S: AsRef<str>>(
        names: impl IntoIterator<Item = S>,
    ) -> Result<RequireScopes, ScopeGuardError> {
        ScopeGuard::all(names).map(RequireScopes::new)
    }

    /// A guard for routes that need at least one of `names`.
    pub fn any<S: AsRef<str>>(
        names: impl IntoIterator<Item = S>,
    ) -> Result<RequireScopes, ScopeGuardError> {
        ScopeGuard::any(names).map(RequireScopes::new)
    }

    /// A guard deciding as `guard` does (one with another realm, say).
    pub fn new(guard: ScopeGuard) -> RequireScopes {
        RequireScopes {
            guard,
            on_insufficient: DefaultInsufficient,
        }
    }
}

impl<R> RequireScopes<R> {
    /// Names `realm` in the challenge, as the gate's
    /// [`realm`](pat_core::Gate::realm) does (default `pat`).
    pub fn realm(self, realm: &str) -> RequireScopes<R> {
        RequireScopes {
            guard: self.guard.realm(realm),
            on_insufficient: self.on_insufficient,
        }
    }

    /// Uses `hook` to build the `403` responses.
    pub fn on_insufficient<R2>(self, hook: R2) -> RequireScopes<R2> {
        RequireScopes {
            guard: self.guard,
            on_insufficient: hook,
        }
    }
}

impl<S, R: Clone> Layer<S> for RequireScopes<R> {
    type Service = RequireScopesService<S, R>;

    fn layer(&self, inner: S) -> RequireScopesService<S, R> {
        RequireScopesService {
            inner,
            guard: self.guard.clone(),
            on_insufficient: self.on_insufficient.clone(),
        }
    }
}

/// The [`Service`] made by [`RequireScopes`].
#[derive(Clone)]
pub struct RequireScopesService<S, R = DefaultInsufficient> {
    inner: S,
    guard: ScopeGuard,
    on_insufficient: R,
}

impl<S: fmt::Debug, R> fmt::Debug for RequireScopesService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopesService")
            .field("inner", &self.inner)
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScopesService<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Default + From<String> + 'static,
    R: OnInsufficientScope<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, Response<ResBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let refused = match req.extensions().get::<Identity>() {
            Some(identity) => match self.guard.check(identity) {
                Ok(()) => None,
                Err(insufficient) => Some(self.on_insufficient.response(insufficient)),
            },
            None => Some(missing(&req)),
        };
        match refused {
            None => {
                // The service that was driven to readiness.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                GuardFuture {
                    kind: GuardKind::Inner {
                        future: inner.call(req),
                    },
                }
            }
            Some(response) => GuardFuture {
                kind: GuardKind::Refused {
                    response: Some(response),
                },
            },
        }
    }
}

/// The answer to a request that reached the guard without an identity: the
/// `PatLayer`'s own for an anonymous request, 500 on a route it does not
/// cover.
fn missing<ReqBody, ResBody: Default + From<String> + 'static>(
    req: &Request<ReqBody>,
) -> Response<ResBody> {
    let extensions = req.extensions();
    match (
        extensions.get::<Rejection>(),
        extensions.get::<RejectWith<Response<ResBody>>>(),
    ) {
        (Some(rejection), Some(hook)) => hook.answer(rejection),
        (Some(rejection), None) => rejection.to_response(ResBody::default()),
        (None, _) => {
            // As pat-actix's guard and the `Identity` extractor answer.
            pat_core::adapter::no_middleware();
            let mut res = Response::new(ResBody::from(pat_core::adapter::NO_MIDDLEWARE.to_owned()));
            *res.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            res
        }
    }
}

pin_project! {
    /// The response future of [`RequireScopesService`]: the inner
    /// service's, or a ready refusal.
    pub struct GuardFuture<F, Res> {
        #[pin]
        kind: GuardKind<F, Res>,
    }
}

pin_project! {
    #[project = GuardProj]
    enum GuardKind<F, Res> {
        Inner { #[pin] future: F },
        Refused { response: Option<Res> },
    }
}

impl<F, Res> fmt::Debug for GuardFuture<F, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            GuardKind::Inner { .. } => "GuardFuture::Inner",
            GuardKind::Refused { .. } => "GuardFuture::Refused",
        })
    }
}

impl<F, Res, E> Future for GuardFuture<F, Res>
where
    F: Future<Output = Result<Res, E>>,
{
    type Output = Result<Res, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            GuardProj::Inner { future } => future.poll(cx),
            GuardProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("GuardFuture polled after completion"))),
        }
    }
}
