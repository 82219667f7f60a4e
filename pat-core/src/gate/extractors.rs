//! Framework glue that has to live beside [`Identity`] (the orphan rule): the
//! `http` response of a [`Rejection`], and the axum and actix-web extractors
//! with their one rejection type, [`MissingIdentity`].

#[cfg(any(feature = "axum", feature = "actix"))]
mod missing {
    use std::fmt;

    use crate::Rejection;

    /// Why the [`Identity`](crate::Identity) extractor failed, in axum and
    /// actix-web alike: the middleware let the request through anonymously
    /// (answered with its rejection: 401 and its challenges), or is not
    /// installed on this route (500 whose body names the cause and the fix,
    /// [`NO_MIDDLEWARE`](MissingIdentity::NO_MIDDLEWARE), and a `warn`
    /// once: a wiring mistake). `Option<Identity>` on such a route is
    /// `None`, and warns the same.
    ///
    /// An anonymous request is answered by the middleware's own rejection
    /// hook (`on_rejection`, so a `JsonRejection` body there too), when the
    /// middleware left it ([`RejectWith`](crate::adapter::RejectWith)).
    #[derive(Clone, Debug)]
    pub struct MissingIdentity {
        pub(crate) rejection: Option<Rejection>,
        #[cfg(feature = "axum")]
        pub(crate) axum: Option<crate::adapter::RejectWith<axum_core::response::Response>>,
        #[cfg(feature = "actix")]
        pub(crate) actix: Option<crate::adapter::RejectWith<actix_web::HttpResponse>>,
    }

    impl MissingIdentity {
        /// The middleware's rejection for this request; `None` when no
        /// middleware saw it.
        pub fn rejection(&self) -> Option<&Rejection> {
            self.rejection.as_ref()
        }

        /// The HTTP status this answers with: the rejection's, or 500.
        pub fn status(&self) -> u16 {
            self.rejection.as_ref().map_or(500, Rejection::status)
        }
    }

    impl MissingIdentity {
        /// What a route that no pat middleware covers is told, in its 500's
        /// body and (once per process) in a `warn` event: the cause and
        /// the fix.
        pub const NO_MIDDLEWARE: &'static str = crate::adapter::NO_MIDDLEWARE;

        /// No middleware ran for this request: logged once per process as a
        /// `warn` (a wiring mistake, not a client's), then at `debug`.
        pub(crate) fn no_middleware() -> MissingIdentity {
            crate::adapter::no_middleware();
            MissingIdentity::new(None)
        }

        fn new(rejection: Option<Rejection>) -> MissingIdentity {
            MissingIdentity {
                rejection,
                #[cfg(feature = "axum")]
                axum: None,
                #[cfg(feature = "actix")]
                actix: None,
            }
        }

        /// What the extractors found in a request's extensions: the
        /// middleware's rejection for an anonymous request, or (nothing
        /// there) no middleware at all.
        pub(crate) fn from_rejection(rejection: Option<&Rejection>) -> MissingIdentity {
            match rejection {
                Some(r) => MissingIdentity::new(Some(r.clone())),
                None => MissingIdentity::no_middleware(),
            }
        }
    }

    impl fmt::Display for MissingIdentity {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.rejection {
                Some(_) => f.write_str("no personal access token"),
                None => f.write_str(MissingIdentity::NO_MIDDLEWARE),
            }
        }
    }

    impl std::error::Error for MissingIdentity {}
}

#[cfg(any(feature = "axum", feature = "actix"))]
pub use missing::MissingIdentity;

#[cfg(feature = "http")]
mod http_response {
    use http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
    use http::{Response, StatusCode};

    use crate::Rejection;

    impl Rejection {
        /// The response this rejection calls for: its status, one
        /// `WWW-Authenticate` header per challenge, `Retry-After` when the
        /// backend was unavailable, and `body`.
        pub fn to_response<B>(&self, body: B) -> Response<B> {
            let mut res = Response::new(body);
            *res.status_mut() =
                StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            for challenge in self.challenges() {
                // Challenges are printable ASCII by construction.
                if let Ok(v) = HeaderValue::try_from(challenge) {
                    res.headers_mut().append(WWW_AUTHENTICATE, v);
                }
            }
            if let Some(secs) = self.retry_after() {
                res.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(secs));
            }
            for (name, value) in self.rate_limit_fields().into_iter().flatten() {
                if let Ok(v) = HeaderValue::try_from(value) {
                    res.headers_mut()
                        .insert(http::HeaderName::from_static(name), v);
                }
            }
            res
        }
    }

    impl crate::InsufficientScope {
        /// The response this answer calls for: `403`, its
        /// `WWW-Authenticate` challenge, and `body`.
        pub fn to_response<B>(&self, body: B) -> Response<B> {
            let mut res = Response::new(body);
            *res.status_mut() = StatusCode::FORBIDDEN;
            // The challenge is printable ASCII by construction.
            if let Ok(v) = HeaderValue::try_from(self.challenge()) {
                res.headers_mut().insert(WWW_AUTHENTICATE, v);
            }
            res
        }
    }
}

#[cfg(feature = "axum")]
mod axum_extractor {
    use std::convert::Infallible;

    use axum_core::body::Body;
    use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
    use axum_core::response::{IntoResponse, Response};
    use http::StatusCode;
    use http::request::Parts;

    use super::MissingIdentity;
    use crate::adapter::RejectWith;
    use crate::{Identity, Rejection};

    /// 401 (or the middleware's other rejection) with its challenges, and
    /// the body of the middleware's rejection hook when it left one; 500
    /// on a route without the layer.
    impl IntoResponse for MissingIdentity {
        fn into_response(self) -> Response {
            match &self.rejection {
                Some(rejection) => match &self.axum {
                    Some(hook) => hook.answer(rejection),
                    None => rejection.to_response(Body::empty()),
                },
                None => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    MissingIdentity::NO_MIDDLEWARE,
                )
                    .into_response(),
            }
        }
    }

    /// The authenticated identity, inserted by `PatLayer`. Without one (the
    /// layer in optional mode let an anonymous request through) the request is
    /// answered 401 with the layer's challenges; on a route the layer does
    /// not cover, 500 naming the mistake. See [`MissingIdentity`].
    impl<S: Send + Sync> FromRequestParts<S> for Identity {
        type Rejection = MissingIdentity;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, MissingIdentity> {
            match parts.extensions.get::<Identity>() {
                Some(identity) => Ok(identity.clone()),
                None => {
                    let mut missing =
                        MissingIdentity::from_rejection(parts.extensions.get::<Rejection>());
                    missing.axum = parts.extensions.get::<RejectWith<Response>>().cloned();
                    Err(missing)
                }
            }
        }
    }

    /// `Option<Identity>`: `None` for a request the layer let through
    /// anonymously; `None` too on a route the layer does not cover, with a
    /// `warn` (once) naming the mistake.
    impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
        type Rejection = Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Option<Self>, Infallible> {
            let identity = parts.extensions.get::<Identity>().cloned();
            if identity.is_none() && parts.extensions.get::<Rejection>().is_none() {
                MissingIdentity::no_middleware();
            }
            Ok(identity)
        }
    }
}

#[cfg(feature = "actix")]
mod actix_extractor {
    use std::future::{Ready, ready};

    use actix_web::dev::Payload;
    use actix_web::http::StatusCode;
    use actix_web::http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
    use actix_web::{
        FromRequest, HttpMessage as _, HttpRequest, HttpResponse, HttpResponseBuilder,
    };

    use super::MissingIdentity;
    use crate::adapter::RejectWith;
    use crate::{Identity, Rejection};

    impl Rejection {
        /// An actix-web response builder with this rejection's status,
        /// `WWW-Authenticate` challenges and `Retry-After` (when the backend
        /// was unavailable); add a body, or `finish()` it empty.
        pub fn actix_response(&self) -> HttpResponseBuilder {
            let status =
                StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut builder = HttpResponse::build(status);
            for challenge in self.challenges() {
                if let Ok(v) = HeaderValue::try_from(challenge) {
                    builder.append_header((WWW_AUTHENTICATE, v));
                }
            }
            if let Some(secs) = self.retry_after() {
                builder.insert_header((RETRY_AFTER, HeaderValue::from(secs)));
            }
            for (name, value) in self.rate_limit_fields().into_iter().flatten() {
                if let Ok(v) = HeaderValue::try_from(value) {
                    builder.insert_header((name, v));
                }
            }
            builder
        }
    }

    impl crate::InsufficientScope {
        /// An actix-web response builder with this answer's status (`403`)
        /// and `WWW-Authenticate` challenge; add a body, or `finish()` it
        /// empty.
        pub fn actix_response(&self) -> HttpResponseBuilder {
            let mut builder = HttpResponse::build(StatusCode::FORBIDDEN);
            if let Ok(v) = HeaderValue::try_from(self.challenge()) {
                builder.insert_header((WWW_AUTHENTICATE, v));
            }
            builder
        }
    }

    impl actix_web::ResponseError for MissingIdentity {
        fn status_code(&self) -> StatusCode {
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }

        fn error_response(&self) -> HttpResponse {
            match &self.rejection {
                Some(rejection) => match &self.actix {
                    Some(hook) => hook.answer(rejection),
                    None => rejection.actix_response().finish(),
                },
                None => HttpResponse::InternalServerError()
                    .content_type("text/plain; charset=utf-8")
                    .body(MissingIdentity::NO_MIDDLEWARE),
            }
        }
    }

    /// The authenticated identity, inserted by `PatMiddleware`.
    /// `Option<Identity>` is `None` for requests let through anonymously. On
    /// a route the middleware does not cover, `Identity` answers 500 naming
    /// the mistake and `Option<Identity>` is `None`, both with a `warn`
    /// (once). See [`MissingIdentity`].
    impl FromRequest for Identity {
        type Error = MissingIdentity;
        type Future = Ready<Result<Identity, MissingIdentity>>;

        fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
            let ext = req.extensions();
            ready(match ext.get::<Identity>() {
                Some(identity) => Ok(identity.clone()),
                None => {
                    let mut missing = MissingIdentity::from_rejection(ext.get::<Rejection>());
                    missing.actix = ext.get::<RejectWith<HttpResponse>>().cloned();
                    Err(missing)
                }
            })
        }
    }
}
