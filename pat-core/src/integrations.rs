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
