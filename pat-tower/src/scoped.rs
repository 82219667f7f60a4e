//! The axum extractor form of a scope guard: [`Scoped<P>`], the request's
//! [`Identity`] when its token holds the permissions `P` names (declared
//! with [`permissions!`](crate::permissions)), else the same `403
//! insufficient_scope` as [`RequireScopes`](crate::RequireScopes).

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use pat_core::{Identity, InsufficientScope, MissingIdentity, ScopeGuard};

/// The permissions a [`Scoped`] extractor needs: a type made by
/// [`permissions!`](crate::permissions), whose guard is made once.
pub trait Permissions: Send + Sync + 'static {
    /// The guard deciding for this set.
    fn guard() -> &'static ScopeGuard;
}

/// Declares a type naming the permissions a handler needs, for
/// [`Scoped`]: `all(...)` for every one of them, `any(...)` for one.
///
/// ```
/// use axum::{Router, routing::get};
/// use pat_tower::{PatLayer, Scoped};
///
/// pat_tower::permissions! {
///     /// What the reports need.
///     pub struct ReadReports: all("reports:read");
/// }
///
/// async fn reports(Scoped(identity, ..): Scoped<ReadReports>) -> String {
///     format!("reports for {}", identity.user())
/// }
/// # let store = std::sync::Arc::new(pat_core::MemoryStore::new());
/// let app: Router = Router::new()
///     .route("/reports", get(reports))
///     .layer(PatLayer::new(store));
/// ```
///
/// A name that is not a permission (`"Reports"`, `"reports:*"`) panics the
/// first time the guard is used, naming it: a mistake in the program, which
/// a test that sends one request finds.
#[macro_export]
macro_rules! permissions {
    ($(#[$meta:meta])* $vis:vis struct $name:ident: all($($p:expr),+ $(,)?);) => {
        $crate::permissions!(@make $(#[$meta])* $vis $name, all, $($p),+);
    };
    ($(#[$meta:meta])* $vis:vis struct $name:ident: any($($p:expr),+ $(,)?);) => {
        $crate::permissions!(@make $(#[$meta])* $vis $name, any, $($p),+);
    };
    (@make $(#[$meta:meta])* $vis:vis $name:ident, $how:ident, $($p:expr),+) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug)]
        $vis struct $name;

        impl $crate::Permissions for $name {
            fn guard() -> &'static $crate::pat_core::ScopeGuard {
                static GUARD: ::std::sync::OnceLock<$crate::pat_core::ScopeGuard> =
                    ::std::sync::OnceLock::new();
                GUARD.get_or_init(|| {
                    $crate::pat_core::ScopeGuard::$how([$($p),+])
                        .unwrap_or_else(|e| panic!("pat_tower::permissions!: {e}"))
                })
            }
        }
    };
}

/// The authenticated [`Identity`], when its token holds the permissions
/// `P` names; else `403` with `WWW-Authenticate: Bearer …,
/// error="insufficient_scope", scope="…"`, the bytes of
/// [`RequireScopes`](crate::RequireScopes). Without an identity, what the
/// [`Identity`] extractor answers (see [`MissingIdentity`]).
#[derive(Clone, Debug)]
pub struct Scoped<P>(pub Identity, pub PhantomData<P>);

/// Why a [`Scoped`] extractor refused a request.
#[derive(Clone, Debug)]
pub enum ScopeRejection {
    /// No identity: see [`MissingIdentity`].
    Missing(MissingIdentity),
    /// The token lacks the permissions (`403`).
    Insufficient(&'static InsufficientScope),
}

impl IntoResponse for ScopeRejection {
    fn into_response(self) -> Response {
        match self {
            ScopeRejection::Missing(missing) => missing.into_response(),
            ScopeRejection::Insufficient(insufficient) => {
                insufficient.to_response(axum::body::Body::empty())
            }
        }
    }
}

impl<S: Send + Sync, P: Permissions> FromRequestParts<S> for Scoped<P> {
    type Rejection = ScopeRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ScopeRejection> {
        let identity = Identity::from_request_parts(parts, state)
            .await
            .map_err(ScopeRejection::Missing)?;
        match P::guard().check(&identity) {
            Ok(()) => Ok(Scoped(identity, PhantomData)),
            Err(insufficient) => Err(ScopeRejection::Insufficient(insufficient)),
        }
    }
}
