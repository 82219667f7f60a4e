//! What a Tower user would use instead of pat, measured beside it (issue
//! 28): included by the layer bench and the callgrind driver with
//! `#[path]`. Bench code only; never part of the reference servers.
//!
//! - [`static_bearer`]: tower-http's `ValidateRequestHeaderLayer::bearer`,
//!   one static string compared with the header: the least any bearer
//!   check can do, the floor.
//! - [`DigestPeer`]: what "write it yourself" costs: tower-http's
//!   `AsyncRequireAuthorizationLayer` with a SHA-256 digest of the bearer
//!   token looked up in a papaya map, the user put in the extensions.

use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use sha2::{Digest as _, Sha256};
use tower_http::auth::{AsyncAuthorizeRequest, AsyncRequireAuthorizationLayer};
use tower_http::validate_request::ValidateRequestHeaderLayer;

/// tower-http's bearer check (deprecated upstream as too basic for real
/// use: it is the floor here).
#[allow(deprecated)]
pub(crate) type StaticBearer<B> =
    ValidateRequestHeaderLayer<tower_http::auth::require_authorization::Bearer<B>>;

/// The static-compare peer, accepting exactly `Bearer {token}`.
#[allow(deprecated)]
pub(crate) fn static_bearer<B: Default>(token: &str) -> StaticBearer<B> {
    ValidateRequestHeaderLayer::bearer(token)
}

/// The user the digest peer found, in the request's extensions (for the
/// app's handlers; the benches' handler ignores it, as it ignores pat's
/// `Identity`).
#[allow(dead_code)]
#[derive(Clone, Debug)]
pub(crate) struct User(pub(crate) Arc<str>);

/// The hand-written digest peer: `SHA-256(token) -> user`.
#[derive(Clone)]
pub(crate) struct DigestPeer {
    users: Arc<papaya::HashMap<[u8; 32], Arc<str>>>,
}

impl DigestPeer {
    /// A peer knowing `tokens` (user, token) and `others` more made-up
    /// digests, as many as pat's store holds.
    pub(crate) fn new(tokens: &[(&str, &str)], others: usize) -> DigestPeer {
        let users = papaya::HashMap::new();
        {
            let pinned = users.pin();
            for i in 0..others {
                let digest: [u8; 32] = Sha256::digest(format!("other token {i}")).into();
                pinned.insert(digest, Arc::from(format!("user{i}")));
            }
            for (user, token) in tokens {
                pinned.insert(Sha256::digest(token).into(), Arc::from(*user));
            }
        }
        DigestPeer {
            users: Arc::new(users),
        }
    }

    /// The layer.
    pub(crate) fn layer(&self) -> AsyncRequireAuthorizationLayer<DigestPeer> {
        AsyncRequireAuthorizationLayer::new(self.clone())
    }
}

impl<B> AsyncAuthorizeRequest<B> for DigestPeer {
    type RequestBody = B;
    type ResponseBody = String;
    type Future = std::future::Ready<Result<Request<B>, Response<String>>>;

    fn authorize(&mut self, mut request: Request<B>) -> Self::Future {
        let user = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|token| {
                let digest: [u8; 32] = Sha256::digest(token).into();
                self.users.pin().get(&digest).cloned()
            });
        std::future::ready(match user {
            Some(user) => {
                request.extensions_mut().insert(User(user));
                Ok(request)
            }
            None => {
                let mut refused = Response::new(String::new());
                *refused.status_mut() = StatusCode::UNAUTHORIZED;
                Err(refused)
            }
        })
    }
}
