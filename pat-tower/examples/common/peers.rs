//! What a Tower user would use instead of pat, measured beside it (issue
//! 28): included by the layer bench and the callgrind driver with
//! `#[path]`. Bench code only; never part of the reference servers.
//!
//! - [`static_bearer`]: tower-http's `ValidateRequestHeaderLayer::bearer`,
//!   one static string compared with the header: the least any bearer
//!   check can do, the floor.
//! - [`DigestPeer`]: what "write it yourself" costs: tower-http's
//!   `AsyncRequireAuthorizationLayer` with a SHA-256 digest of the bearer
//!   token looked up in a papaya map, the user put in the extensions;
//!   with [`DigestPeer::expiring`], the least a personal access token
//!   needs beyond that: each token's deadline, checked against
//!   `SystemTime::now()` as a user would write it.

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
    users: Arc<papaya::HashMap<[u8; 32], Known>>,
    /// Whether deadlines are checked.
    expiring: bool,
}

/// What the digest peer keeps of a token.
#[derive(Clone)]
struct Known {
    user: Arc<str>,
    /// Seconds since the epoch (a day from the peer's creation).
    expires_at: u64,
}

impl DigestPeer {
    /// A peer knowing `tokens` (user, token) and `others` more made-up
    /// digests, as many as pat's store holds.
    pub(crate) fn new(tokens: &[(&str, &str)], others: usize) -> DigestPeer {
        let users = papaya::HashMap::new();
        let expires_at = unix_secs() + 86_400;
        {
            let pinned = users.pin();
            for i in 0..others {
                let digest: [u8; 32] = Sha256::digest(format!("other token {i}")).into();
                let user = Arc::from(format!("user{i}"));
                pinned.insert(digest, Known { user, expires_at });
            }
            for (user, token) in tokens {
                let user = Arc::from(*user);
                pinned.insert(Sha256::digest(token).into(), Known { user, expires_at });
            }
        }
        DigestPeer {
            users: Arc::new(users),
            expiring: false,
        }
    }

    /// The same peer, refusing a token past its deadline.
    #[allow(dead_code)]
    pub(crate) fn expiring(mut self) -> DigestPeer {
        self.expiring = true;
        self
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
                let users = self.users.pin();
                let known = users.get(&digest)?;
                (!self.expiring || unix_secs() < known.expires_at).then(|| known.user.clone())
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

/// The system time in seconds since the epoch.
fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
