//! The seam between the request path and a token backend: what a backend
//! gets ([`Lookup`]), answers ([`Verification`]) and promises ([`Verifier`]).

pub(crate) mod admin;
pub mod authority;
pub(crate) mod block_on;
#[cfg(any(all(unix, feature = "redb"), feature = "postgres"))]
pub(crate) mod cache;
pub(crate) mod engine;
pub(crate) mod memory;
#[cfg(any(all(unix, feature = "redb"), feature = "postgres"))]
pub(crate) mod options;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(all(unix, feature = "redb"))]
pub(crate) mod redb;
#[cfg(feature = "remote")]
pub mod remote;
#[cfg(all(unix, feature = "redb"))]
pub mod trust;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::{AuthError, StoreError};
use crate::model::prefix::Prefixes;
use crate::model::rate::Admission;
use crate::model::record::{Identity, TokenInfo};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};

/// Default time between two writes of buffered token uses.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Default number of token records kept in memory (see `StoreBuilder::cache_capacity`):
/// about 30 MB of records of typical size.
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;

/// One presented token, as the gate hands it to a backend: already validated
/// and hashed (for [`Verifier::verify_cached`], only its prefix and length
/// checked).
#[derive(Clone, Copy, Debug)]
pub struct Lookup<'a> {
    digest: TokenDigest,
    user: Option<&'a str>,
    client: Option<IpAddr>,
    now: Timestamp,
    recheck: bool,
    /// The gate's count of this use against the token's rate limit.
    admission: Option<&'a Admission<'a>>,
}

impl<'a> Lookup<'a> {
    /// A lookup of `digest` at `now`; `user` is the HTTP Basic user name,
    /// which must then be the token's.
    pub const fn new(digest: TokenDigest, user: Option<&'a str>, now: Timestamp) -> Lookup<'a> {
        Lookup {
            digest,
            user,
            client: None,
            now,
            recheck: false,
            admission: None,
        }
    }

    /// The same lookup, a use that `admission` counts against the token's
    /// rate limit as the use rule runs (the gate's): a use over the limit
    /// is refused before it is recorded.
    #[inline]
    pub(crate) const fn admitted_by(mut self, admission: &'a Admission<'a>) -> Lookup<'a> {
        self.admission = Some(admission);
        self
    }

    /// The admission of this use by the rate limits, if the gate counts it.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn admission(&self) -> Option<&'a Admission<'a>> {
        self.admission
    }

    /// The same lookup, for a session's recheck
    /// ([`Logins::recheck`](crate::Logins::recheck)) rather than a use: the
    /// gate counts neither its rate nor its quota, and a backend that
    /// spends uses as it answers must not spend one.
    pub const fn recheck(mut self) -> Lookup<'a> {
        self.recheck = true;
        self
    }

    /// Whether this is a session's recheck (see
    /// [`recheck`](Lookup::recheck)), not a use.
    pub const fn is_recheck(&self) -> bool {
        self.recheck
    }

    /// The same lookup, of a request from `client` (the address a token's
    /// [address rule](crate::TokenInfo::allow_from) is checked against;
    /// without one, a token that has a rule is refused).
    pub const fn from(mut self, client: Option<IpAddr>) -> Lookup<'a> {
        self.client = client;
        self
    }

    /// The client's address, when the adapter knows it.
    pub const fn client(&self) -> Option<IpAddr> {
        self.client
    }

    /// Where the use comes from, for the address rule, and what counts it
    /// against the rate limit.
    #[inline]
    pub(crate) fn origin(&self) -> crate::model::record::Origin<'a> {
        crate::model::record::Origin::from(self.client).admitted_by(self.admission)
    }

    /// The SHA-256 digest of the presented token.
    pub const fn digest(&self) -> &TokenDigest {
        &self.digest
    }

    /// The HTTP Basic user name, `None` for a Bearer token.
    pub const fn user(&self) -> Option<&'a str> {
        self.user
    }

    /// The time of the request.
    pub const fn now(&self) -> Timestamp {
        self.now
    }

    /// [`TokenInfo::check_use`] of `info` for this lookup: a use from its
    /// [`client`](Lookup::client), counted against the token's rate limit
    /// when the gate made the lookup (so that a use over it is refused
    /// here, before the backend records it: [`AuthError::RateLimited`]).
    pub fn check(&self, info: &TokenInfo) -> Result<Timestamp, AuthError> {
        info.check_use_with(info.expiry, self.user, self.origin(), self.now)
    }
}

/// The rule for a presented secret that a rotation retired, shared by every
/// backend: `Ok` while its grace period lasts (until `retires_at`), after
/// which the backend answers it as the token's current secret; past it,
/// [`AuthError::Unknown`] (the client learns nothing more than for any
/// unknown token) and a `warn` event naming the token, since an old secret
/// presented after a rotation may have been stolen.
pub fn retired_secret(id: TokenId, retires_at: Timestamp, now: Timestamp) -> Result<(), AuthError> {
    if in_grace(retires_at, now) {
        return Ok(());
    }
    warn_replay(id);
    Err(AuthError::Unknown)
}

/// Whether a secret retired until `retires_at` still works at `now`.
pub(crate) fn in_grace(retires_at: Timestamp, now: Timestamp) -> bool {
    now < retires_at
}

/// The warning [`retired_secret`] logs for a replayed old secret.
pub(crate) fn warn_replay(id: TokenId) {
    tracing::warn!(
        token_id = %id,
        "a rotated token's old secret was presented after it was retired; refused \
         (it may have been stolen)"
    );
}

/// A backend's answer to [`Verifier::spend`] from what
/// [`engine::spend`] said: the identity with the uses it has left, the
/// refusal, or the store's failure.
pub(crate) fn spent(
    identity: Identity,
    said: Result<Result<TokenInfo, AuthError>, StoreError>,
) -> Result<Identity, AuthError> {
    match said {
        Ok(Ok(record)) => Ok(identity.spent(&record)),
        Ok(Err(refused)) => Err(refused),
        Err(e) => Err(AuthError::Store(e)),
    }
}

/// The result of a lookup that had to wait (a network round trip).
pub type VerifyFuture = Pin<Box<dyn Future<Output = Result<Identity, AuthError>> + Send + 'static>>;

/// A backend's answer to a [`Lookup`]: at once, or later.
#[must_use = "a verification must be awaited or matched"]
pub enum Verification {
    /// Answered without waiting (a memory hit): no boxing, no await.
    Ready(Result<Identity, AuthError>),
    /// Answered by a future: a cache miss on a networked backend. The adapters
    /// poll it from their response futures, so no worker thread blocks.
    Pending(VerifyFuture),
}

impl Verification {
    /// Wraps a future; it must own what it needs (copy the digest and user
    /// out of the [`Lookup`]).
    pub fn pending(
        future: impl Future<Output = Result<Identity, AuthError>> + Send + 'static,
    ) -> Verification {
        Verification::Pending(Box::pin(future))
    }
}

impl From<Result<Identity, AuthError>> for Verification {
    fn from(result: Result<Identity, AuthError>) -> Verification {
        Verification::Ready(result)
    }
}

impl fmt::Debug for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verification::Ready(r) => f.debug_tuple("Ready").field(r).finish(),
            Verification::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

impl Future for Verification {
    type Output = Result<Identity, AuthError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this {
            Verification::Ready(r) => {
                // Leave a harmless value behind; polling after completion is
                // a caller bug that must not panic an auth path.
                let r = std::mem::replace(r, Err(AuthError::Unknown));
                Poll::Ready(r)
            }
            Verification::Pending(f) => f.as_mut().poll(cx),
        }
    }
}

/// Checking presented tokens: all that the request path needs from a backend.
///
/// [`Store`](crate::Store) (redb) and [`MemoryStore`](crate::MemoryStore)
/// implement it; so can any crate, with the public constructors and helpers
/// named below.
///
/// # The contract a backend keeps
///
/// [`Gate`](crate::Gate) does all the token work: it parses the
/// `Authorization` header, checks the token's prefix, length and checksum,
/// decides "not ours" for optional mode, and computes the SHA-256 digest. A
/// backend never sees a plaintext token; it gets a [`Lookup`] (the digest, the
/// HTTP Basic user name if any, and `now`) and answers with a [`Verification`].
///
/// For a lookup, a backend:
/// 1. finds the record stored under the digest, else answers
///    [`AuthError::Unknown`] (never issued, revoked or pruned look the same).
///    A digest a rotation retired ([`Admin::rotate`](crate::Admin::rotate))
///    goes through [`retired_secret`]: during its grace it stands for its
///    token's current record, after it is unknown (and logged);
/// 2. applies [`TokenInfo::check_use`]: for HTTP Basic the user must be the
///    token's ([`AuthError::WrongUser`], and the use is *not* recorded); the
///    token must not be disabled ([`AuthError::Disabled`], not recorded
///    either); it must be alive at `now` (`now < expires_at`, else
///    [`AuthError::Expired`] with the deadline);
/// 3. records the use: `last_used_at` becomes the later of the stored value
///    and `now`, and a sliding deadline moves to
///    `min(now + window, issued_at + max_lifetime)`, never backwards
///    ([`Expiry::touched`](crate::Expiry::touched) is that rule). A backend
///    may buffer uses in memory and write them later ([`Verifier::flush`]),
///    as long as every read (`get`, `list`, `prune`, the next lookup) sees
///    them, and a use never brings back a token revoked meanwhile;
/// 4. answers [`Identity::new`] with the record and the deadline after the
///    use.
///
/// When the backend cannot answer (I/O error, database unreachable), it
/// answers [`AuthError::Store`]: the adapters turn that into
/// `503 Service Unavailable` with `Retry-After`, never 401 (the token may be
/// fine) and never a pass.
///
/// `now` is the caller's clock, in whole seconds ([`Timestamp`]); a backend
/// uses it rather than reading the clock, so tests can move time.
///
/// On the [`Admin`](crate::Admin) side, "durable on return" means: once
/// `create`, `rotate`, `revoke`, `revoke_user` or `prune` has returned `Ok`, a crash
/// or restart of any process loses none of it, and every later lookup, in
/// this process or any other replica, sees it (a cached backend documents
/// its staleness bound). Records are built with [`NewToken::to_info`] and
/// [`TokenId::generate`] (rotated ones with [`TokenInfo::rotated`]), and secrets with
/// [`TokenSecret::generate`](crate::TokenSecret::generate); only
/// [`TokenSecret::digest`](crate::TokenSecret::digest) is ever stored.
///
/// [`Store`](crate::Store) (redb) is the worked example: a cache hit answers
/// [`Verification::Ready`] with no allocation but the identity's reference
/// count; [`MemoryStore`](crate::MemoryStore) is the smallest complete one.
/// With the `testing` feature, `pat_core::conformance` runs the shared model
/// test and contract cases against any backend.
///
/// [`NewToken::to_info`]: crate::NewToken::to_info
/// [`TokenId::generate`]: crate::TokenId::generate
pub trait Verifier: Send + Sync {
    /// Looks a presented token up and records its use; see the contract.
    fn verify(&self, lookup: Lookup<'_>) -> Verification;

    /// The answer [`verify`](Verifier::verify) would give, if this backend
    /// can give it from what it remembers without a read (a cached record
    /// or a remembered unknown digest), with the use recorded as `verify`
    /// records it; `None` when it would have to read (nothing recorded).
    ///
    /// The gate asks this first, having checked only the token's prefix and
    /// length: here, unlike in `verify`, the lookup's digest may be of a
    /// value with a broken checksum. Answer `Some` only for the digest of a
    /// token this backend holds (an issued token's secret is well formed):
    /// from a cached record, never from a memory of unknown digests or of
    /// refusals, which a lookup by a caller's digest (introspection's
    /// `token_digest`, or any caller of `verify`) can fill with digests no
    /// token check vouched for, and which would turn the gate's "malformed"
    /// into "unknown". The default answers `None`: the gate then checks the
    /// token whole and calls `verify`, as for any miss.
    #[inline]
    fn verify_cached(&self, lookup: Lookup<'_>) -> Option<Result<Identity, AuthError>> {
        let _ = lookup;
        None
    }

    /// The prefixes of this backend's tokens: the gate checks a presented
    /// token's against them before anything else, and in optional mode
    /// lets a token of any other pass as not ours. A backend that keeps a
    /// prefix per store answers its own [`Prefixes`] (and, when the store's
    /// prefix changes, [`Prefixes::remember`]s the new one); the default is
    /// [`Prefixes::standard`], `pat` alone.
    #[inline]
    fn prefixes(&self) -> &Prefixes {
        Prefixes::standard()
    }

    /// Spends one use of the quota of the token `identity` authenticated
    /// (a token with [`Identity::has_quota`]), at `now`, durably, before
    /// the request goes on: the gate calls it after every other check
    /// passed (the rate limit included), so a refused request spends
    /// nothing. Answers the identity with
    /// [`uses_left`](Identity::uses_left) after this use, or
    /// [`AuthError::UsedUp`] when none was left.
    ///
    /// The use must be counted exactly once, whatever the concurrency and
    /// across replicas and crashes: read the stored record under a lock
    /// (or atomically), check the use rule on it again
    /// ([`TokenInfo::check_use_from`], since a replica's cached record may
    /// be stale), apply [`TokenInfo::spend_use`], and write it durably
    /// before answering. Only tokens with a quota come here; the others
    /// never pay this write.
    ///
    /// The default refuses with [`StoreError::NoQuotas`] (503): a backend
    /// that cannot count never lets a limited token through uncounted.
    fn spend(&self, identity: Identity, now: Timestamp) -> Verification {
        let _ = (identity, now);
        Verification::Ready(Err(AuthError::Store(StoreError::NoQuotas)))
    }

    /// Writes buffered uses, if the backend buffers them, and returns how many
    /// tokens it updated. Servers call it on shutdown. The default does
    /// nothing.
    fn flush(&self) -> Result<usize, StoreError> {
        Ok(0)
    }
}

/// What the adapters accept as a backend: any [`Verifier`] by value, or an
/// `Arc` of one (keep a clone to call its admin operations or `flush`).
pub trait IntoVerifier {
    /// The shared verifier.
    fn into_verifier(self) -> Arc<dyn Verifier>;
}

impl<V: Verifier + 'static> IntoVerifier for V {
    fn into_verifier(self) -> Arc<dyn Verifier> {
        Arc::new(self)
    }
}

impl<V: Verifier + 'static> IntoVerifier for Arc<V> {
    fn into_verifier(self) -> Arc<dyn Verifier> {
        self
    }
}

impl IntoVerifier for Arc<dyn Verifier> {
    fn into_verifier(self) -> Arc<dyn Verifier> {
        self
    }
}
