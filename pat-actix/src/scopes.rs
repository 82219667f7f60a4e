//! A route guard on named permissions: [`RequireScopes`], middleware inside
//! a [`PatMiddleware`](crate::PatMiddleware) that answers a token without
//! the permissions a route needs with `403 insufficient_scope`
//! ([`ScopeGuard`]'s decision and bytes, as pat-tower's guard sends).

use std::fmt;
use std::future::{Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage as _, HttpResponse};
use pat_core::adapter::RejectWith;
use pat_core::{Identity, InsufficientScope, Rejection, ScopeGuard, ScopeGuardError};
use pin_project_lite::pin_project;

use crate::JsonRejection;

/// Builds the response to a token that lacks a route's permissions.
///
/// Implemented by [`DefaultInsufficient`] (status and challenge, empty
/// body), [`JsonRejection`] (the JSON body,
/// [`InsufficientScope::json_body`]) and any `Fn(&InsufficientScope) ->
/// HttpResponse`; start from [`InsufficientScope::actix_response`] to keep
/// the status and challenge.
pub trait OnInsufficientScope {
    /// The response to send instead of calling the inner service.
    fn response(&self, insufficient: &InsufficientScope) -> HttpResponse;
}

/// `403` with `WWW-Authenticate: Bearer error="insufficient_scope",
/// scope="…"` and an empty body.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultInsufficient;

impl OnInsufficientScope for DefaultInsufficient {
    fn response(&self, insufficient: &InsufficientScope) -> HttpResponse {
        insufficient.actix_response().finish()
    }
}

impl OnInsufficientScope for JsonRejection {
    fn response(&self, insufficient: &InsufficientScope) -> HttpResponse {
        insufficient
            .actix_response()
            .content_type("application/json")
            .body(insufficient.json_body().to_owned())
    }
}

impl<F: Fn(&InsufficientScope) -> HttpResponse> OnInsufficientScope for F {
    fn response(&self, insufficient: &InsufficientScope) -> HttpResponse {
        self(insufficient)
    }
}

/// Middleware (`Scope::wrap`, `Resource::wrap`) that lets a request through
/// only when its token holds the named permissions a route needs; wrap it
/// inside a [`PatMiddleware`](crate::PatMiddleware), which must run first
/// (actix-web runs the last `wrap` first).
///
/// A token without them gets `403` with `WWW-Authenticate: Bearer
/// realm="pat", error="insufficient_scope", error_description="…",
/// scope="…"` (RFC 6750 §3.1), the same bytes as pat-tower's guard. A
/// request the `PatMiddleware` let through anonymously (optional mode) is
/// answered as the middleware answers a missing token (401, through its
/// rejection hook); on a route no `PatMiddleware` covers, 500.
///
/// ```
/// # use std::sync::Arc;
/// # let store = Arc::new(pat_core::MemoryStore::new());
/// use actix_web::{App, web};
/// use pat_actix::{PatMiddleware, RequireScopes};
/// let app = App::new().service(
///     web::resource("/repos")
///         .wrap(RequireScopes::all(["repo:read"])?)
///         .wrap(PatMiddleware::new(store))
///         .to(|| async { "repos" }),
/// );
/// # let _ = app;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RequireScopes<R = DefaultInsufficient> {
    guard: ScopeGuard,
    on_insufficient: Arc<R>,
}

impl<R> Clone for RequireScopes<R> {
    fn clone(&self) -> RequireScopes<R> {
        RequireScopes {
            guard: self.guard.clone(),
            on_insufficient: self.on_insufficient.clone(),
        }
    }
}

impl<R> fmt::Debug for RequireScopes<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopes")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
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
            on_insufficient: Arc::new(DefaultInsufficient),
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
            on_insufficient: Arc::new(hook),
        }
    }
}

impl<S, B, R> Transform<S, ServiceRequest> for RequireScopes<R>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody,
    R: OnInsufficientScope + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = Error;
    type Transform = RequireScopesService<S, R>;
    type InitError = ();
    type Future = Ready<Result<RequireScopesService<S, R>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(RequireScopesService {
            service: Rc::new(service),
            guard: self.guard.clone(),
            on_insufficient: self.on_insufficient.clone(),
        }))
    }
}

/// The [`Service`] made by [`RequireScopes`].
pub struct RequireScopesService<S, R = DefaultInsufficient> {
    service: Rc<S>,
    guard: ScopeGuard,
    on_insufficient: Arc<R>,
}

impl<S, R> fmt::Debug for RequireScopesService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopesService")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl<S, B, R> Service<ServiceRequest> for RequireScopesService<S, R>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody,
    R: OnInsufficientScope + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = Error;
    type Future = GuardFuture<S, B>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let refused = {
            let extensions = req.extensions();
            match extensions.get::<Identity>() {
                Some(identity) => match self.guard.check(identity) {
                    Ok(()) => None,
                    Err(insufficient) => Some(self.on_insufficient.response(insufficient)),
                },
                None => Some(missing(
                    extensions.get::<Rejection>(),
                    extensions.get::<RejectWith<HttpResponse>>(),
                )),
            }
        };
        match refused {
            None => GuardFuture {
                kind: GuardKind::Inner {
                    future: self.service.call(req),
                },
            },
            Some(response) => GuardFuture {
                kind: GuardKind::Refused {
                    response: Some(req.into_response(response).map_into_right_body()),
                },
            },
        }
    }
}

/// The answer to a request that reached the guard without an identity: the
/// `PatMiddleware`'s own for an anonymous request, 500 on a route it does
/// not cover.
fn missing(rejection: Option<&Rejection>, hook: Option<&RejectWith<HttpResponse>>) -> HttpResponse {
    match (rejection, hook) {
        (Some(rejection), Some(hook)) => hook.answer(rejection),
        (Some(rejection), None) => rejection.actix_response().finish(),
        (None, _) => {
            pat_core::adapter::no_middleware();
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body(pat_core::adapter::NO_MIDDLEWARE)
        }
    }
}

pin_project! {
    /// The response future of [`RequireScopesService`]: the inner
    /// service's, or a ready refusal.
    pub struct GuardFuture<S, B>
    where
        S: Service<ServiceRequest>,
    {
        #[pin]
        kind: GuardKind<S, B>,
    }
}

pin_project! {
    #[project = GuardProj]
    enum GuardKind<S, B>
    where
        S: Service<ServiceRequest>,
    {
        Inner { #[pin] future: S::Future },
        Refused { response: Option<ServiceResponse<EitherBody<B, BoxBody>>> },
    }
}

impl<S, B> fmt::Debug for GuardFuture<S, B>
where
    S: Service<ServiceRequest>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            GuardKind::Inner { .. } => "GuardFuture::Inner",
            GuardKind::Refused { .. } => "GuardFuture::Refused",
        })
    }
}

impl<S, B> Future for GuardFuture<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<EitherBody<B, BoxBody>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            GuardProj::Inner { future } => {
                future.poll(cx).map_ok(ServiceResponse::map_into_left_body)
            }
            GuardProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("GuardFuture polled after completion"))),
        }
    }
}
