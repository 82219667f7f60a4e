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
    /// installed on this route (500, and an error in the log: a wiring bug).
    #[derive(Clone, Debug)]
    pub struct MissingIdentity(pub(crate) Option<Rejection>);

    impl MissingIdentity {
        /// The middleware's rejection for this request; `None` when no
        /// middleware saw it.
        pub fn rejection(&self) -> Option<&Rejection> {
            self.0.as_ref()
        }

        /// The HTTP status this answers with: the rejection's, or 500.
        pub fn status(&self) -> u16 {
            self.0.as_ref().map_or(500, Rejection::status)
        }
    }

    impl fmt::Display for MissingIdentity {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                Some(_) => f.write_str("no personal access token"),
                None => f.write_str(
                    "the Identity extractor is used on a route without the pat middleware",
                ),
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
    use crate::{Identity, Rejection};

    /// 401 (or the middleware's other rejection) with its challenges; 500
    /// on a route without the layer.
    impl IntoResponse for MissingIdentity {
        fn into_response(self) -> Response {
            match &self.0 {
                Some(rejection) => rejection.to_response(Body::empty()),
                None => {
                    tracing::error!("{self}");
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            }
        }
    }

    /// The authenticated identity, inserted by `PatLayer`. Without one (the
    /// layer in optional mode let an anonymous request through) the request is
    /// answered 401 with the layer's challenges; on a route without the layer,
    /// 500. See [`MissingIdentity`].
    impl<S: Send + Sync> FromRequestParts<S> for Identity {
        type Rejection = MissingIdentity;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, MissingIdentity> {
            match parts.extensions.get::<Identity>() {
                Some(identity) => Ok(identity.clone()),
                None => Err(MissingIdentity(
                    parts.extensions.get::<Rejection>().cloned(),
                )),
            }
        }
    }

    /// `Option<Identity>`: `None` for a request the layer let through
    /// anonymously.
    impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
        type Rejection = Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Option<Self>, Infallible> {
            Ok(parts.extensions.get::<Identity>().cloned())
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
            builder
        }
    }

    impl actix_web::ResponseError for MissingIdentity {
        fn status_code(&self) -> StatusCode {
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }

        fn error_response(&self) -> HttpResponse {
            match &self.0 {
                Some(rejection) => rejection.actix_response().finish(),
                None => {
                    tracing::error!("{self}");
                    HttpResponse::InternalServerError().finish()
                }
            }
        }
    }

    /// The authenticated identity, inserted by `PatMiddleware`.
    /// `Option<Identity>` is `None` for requests let through anonymously.
    impl FromRequest for Identity {
        type Error = MissingIdentity;
        type Future = Ready<Result<Identity, MissingIdentity>>;

        fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
            let ext = req.extensions();
            ready(match ext.get::<Identity>() {
                Some(identity) => Ok(identity.clone()),
                None => Err(MissingIdentity(ext.get::<Rejection>().cloned())),
            })
        }
    }
}
