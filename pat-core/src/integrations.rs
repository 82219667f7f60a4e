//! Framework glue that has to live beside [`Identity`] (the orphan rule): the
//! `http` response of a [`Rejection`], and the axum extractor.

#[cfg(feature = "http")]
mod http_response {
    use http::header::{HeaderValue, WWW_AUTHENTICATE};
    use http::{Response, StatusCode};

    use crate::Rejection;

    impl Rejection {
        /// The response this rejection calls for: its status, one
        /// `WWW-Authenticate` header per challenge, and `body`.
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

    use crate::{Identity, Rejection};

    fn missing(parts: &Parts) -> Response {
        match parts.extensions.get::<Rejection>() {
            Some(rejection) => rejection.to_response(Body::empty()),
            None => {
                tracing::error!("the Identity extractor is used on a route without PatLayer");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }

    /// The authenticated identity, inserted by `PatLayer`. Without one (the
    /// layer in optional mode let an anonymous request through) the request is
    /// answered 401 with the layer's challenges; on a route without the layer,
    /// 500.
    impl<S: Send + Sync> FromRequestParts<S> for Identity {
        type Rejection = Response;

        async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
            match parts.extensions.get::<Identity>() {
                Some(identity) => Ok(identity.clone()),
                None => Err(missing(parts)),
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
    use std::fmt;
    use std::future::{Ready, ready};

    use actix_web::dev::Payload;
    use actix_web::http::StatusCode;
    use actix_web::http::header::{HeaderValue, WWW_AUTHENTICATE};
    use actix_web::{
        FromRequest, HttpMessage as _, HttpRequest, HttpResponse, HttpResponseBuilder,
    };

    use crate::{Identity, Rejection};

    impl Rejection {
        /// An actix-web response builder with this rejection's status and
        /// `WWW-Authenticate` challenges; add a body, or `finish()` it empty.
        pub fn actix_response(&self) -> HttpResponseBuilder {
            let status =
                StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut builder = HttpResponse::build(status);
            for challenge in self.challenges() {
                if let Ok(v) = HeaderValue::try_from(challenge) {
                    builder.append_header((WWW_AUTHENTICATE, v));
                }
            }
            builder
        }
    }

    /// Why the [`Identity`] extractor failed: the middleware let the request
    /// through anonymously (401 with its challenges), or is not installed on
    /// this route (500).
    #[derive(Debug)]
    pub struct MissingIdentity(Option<Rejection>);

    impl fmt::Display for MissingIdentity {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                Some(_) => f.write_str("no personal access token"),
                None => {
                    f.write_str("the Identity extractor is used on a route without PatMiddleware")
                }
            }
        }
    }

    impl actix_web::ResponseError for MissingIdentity {
        fn status_code(&self) -> StatusCode {
            match &self.0 {
                Some(r) => StatusCode::from_u16(r.status()).unwrap_or(StatusCode::UNAUTHORIZED),
                None => StatusCode::INTERNAL_SERVER_ERROR,
            }
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

#[cfg(feature = "actix")]
pub use actix_extractor::MissingIdentity;
