//! Who a request authenticated as.

use std::fmt;
use std::net::IpAddr;

use super::TokenInfo;
use crate::model::metadata::Metadata;
use crate::model::rate::RateLimit;
use crate::model::scope::{NodeId, Perm, Scopes};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};

/// Who a request authenticated as: what the adapters insert into request
/// extensions and handlers read.
///
/// Made and cloned without allocating or touching memory shared between
/// cores (for user names up to 24 bytes, unscoped tokens and tokens
/// without metadata; scopes and metadata are
/// shared, not copied). `Debug` shows the user, token id, scopes and
/// deadline; there is no secret in it to show. With the `serde` feature it
/// serializes as `{"user", "token_id", "scopes", "expires_at", "meta"}`,
/// each value the string pat prints (`"node:UUID:rw"`, RFC 3339), `meta` an
/// object of strings.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    user: compact_str::CompactString,
    token_id: TokenId,
    scopes: Scopes,
    expires_at: Timestamp,
    /// [`PREVIOUS_SECRET`], [`QUOTA_SPENT`] and [`RATE_COUNTED`], in one
    /// byte (three `bool`s would grow an identity past 120 bytes).
    flags: u8,
    presented: Option<TokenDigest>,
    client: Option<IpAddr>,
    meta: Metadata,
    rate: Option<RateLimit>,
    /// The uses left of a quota, [`NO_QUOTA`] without one (not an
    /// `Option`: four bytes fewer keep an identity within 120).
    uses_left: u32,
}

/// [`Identity::flags`]: made with a secret a rotation replaced, still in
/// its grace.
const PREVIOUS_SECRET: u8 = 1;
/// [`Identity::flags`]: the use of its quota was spent already, by the
/// answer itself (an introspection endpoint of an older pat spends as it
/// answers): the gate's spend has nothing left to do.
const QUOTA_SPENT: u8 = 2;
/// [`Identity::flags`]: the use was counted against the rate limit
/// already, by the backend as it answered (the use rule counts it when the
/// gate hands the lookup its admission): the gate has nothing left to
/// count.
const RATE_COUNTED: u8 = 4;

/// [`Identity::uses_left`] of a token without a quota (no quota is this
/// large: [`MAX_USES`](crate::MAX_USES)).
const NO_QUOTA: u32 = u32::MAX;

/// A record's uses left as an identity keeps them.
fn uses_left(record: &TokenInfo) -> u32 {
    record.uses_left().unwrap_or(NO_QUOTA)
}

impl Identity {
    /// The identity a backend answers for a successful use of the token whose
    /// record is `record`; `expires_at` is the deadline after this use.
    pub fn new(record: &TokenInfo, expires_at: Timestamp) -> Identity {
        Identity::with_user(
            compact_str::CompactString::new(&record.user),
            record,
            expires_at,
        )
    }

    /// [`Identity::new`] with the record's user name made already (a cache
    /// entry keeps one, so that a hit copies it rather than measuring and
    /// copying the string again).
    #[inline]
    pub(crate) fn with_user(
        user: compact_str::CompactString,
        record: &TokenInfo,
        expires_at: Timestamp,
    ) -> Identity {
        debug_assert_eq!(user, record.user);
        Identity {
            user,
            token_id: record.id,
            scopes: record.scopes.clone(),
            expires_at,
            flags: 0,
            presented: None,
            client: None,
            meta: record.meta.clone(),
            rate: record.rate,
            uses_left: uses_left(record),
        }
    }

    /// The same identity, noting the digest of the secret presented (the
    /// gate does), so that acting on the token can require it to be the
    /// current one ([`Rotation::presented`](crate::Rotation::presented), [`NewToken::child_of`](crate::NewToken::child_of)).
    #[inline]
    pub fn presented_as(mut self, digest: TokenDigest) -> Identity {
        self.presented = Some(digest);
        self
    }

    /// The same identity, noting the client address the request came from
    /// (the gate does, when the adapter knew it), so that a session's
    /// recheck applies the token's address rule to it again.
    #[inline]
    pub fn presented_from(mut self, client: Option<IpAddr>) -> Identity {
        self.client = client;
        self
    }

    /// The client address the request came from, when the adapter knew it
    /// (behind [trusted proxies](crate::Gate::trusted_proxies), the one they
    /// forwarded for).
    pub fn client(&self) -> Option<IpAddr> {
        self.client
    }

    /// The same identity, holding `scopes` (the record's, resolved by the
    /// catalog: see [`Catalog::resolve`](crate::Catalog::resolve)).
    pub(crate) fn holding(mut self, scopes: Scopes) -> Identity {
        debug_assert_eq!(scopes, self.scopes);
        self.scopes = scopes;
        self
    }

    /// The digest of the secret the request presented, when the gate noted
    /// it.
    pub fn presented(&self) -> Option<&TokenDigest> {
        self.presented.as_ref()
    }

    /// The same identity, authenticated with a secret a rotation replaced
    /// and whose grace has not ended: it may use the token, but not
    /// rotate, revoke or mint tokens with it.
    pub fn by_previous_secret(mut self) -> Identity {
        self.flags |= PREVIOUS_SECRET;
        self
    }

    /// Whether the request authenticated with a replaced secret still in
    /// its grace (see [`by_previous_secret`](Identity::by_previous_secret)).
    pub fn is_previous_secret(&self) -> bool {
        self.flags & PREVIOUS_SECRET != 0
    }

    /// The same identity, its use of the quota spent already (see
    /// [`QUOTA_SPENT`]).
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) fn with_quota_spent(mut self) -> Identity {
        self.flags |= QUOTA_SPENT;
        self
    }

    /// The same identity, its next spend a use of its own.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) fn with_quota_unspent(mut self) -> Identity {
        self.flags &= !QUOTA_SPENT;
        self
    }

    /// Whether the answer that made this identity spent its use of the
    /// quota already.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) fn is_quota_spent(&self) -> bool {
        self.flags & QUOTA_SPENT != 0
    }

    /// The same identity, noting whether its use was counted against the
    /// rate limit already (see [`RATE_COUNTED`]).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    #[inline]
    pub(crate) fn rate_counted(mut self, counted: bool) -> Identity {
        if counted {
            self.flags |= RATE_COUNTED;
        }
        self
    }

    /// Whether the answer that made this identity counted its use against
    /// the rate limit already.
    #[inline]
    pub(crate) fn is_rate_counted(&self) -> bool {
        self.flags & RATE_COUNTED != 0
    }

    /// The user the token belongs to.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The token's public id.
    pub fn token_id(&self) -> TokenId {
        self.token_id
    }

    /// The token's scopes; empty when unrestricted.
    pub fn scopes(&self) -> &Scopes {
        &self.scopes
    }

    /// The metadata the token was made with
    /// ([`NewToken::meta`](crate::NewToken::meta)): empty for most tokens.
    /// Whoever made the token chose it (the CLI's admin, or a user through
    /// the management API), so it describes, never grants: decide access on
    /// scopes. A token made with a token keeps its parent's entries (it may
    /// add keys, not change one).
    pub fn meta(&self) -> &Metadata {
        &self.meta
    }

    /// The token's rate limit, which the gate applies to each use (see
    /// [`TokenInfo::rate`]).
    pub fn rate(&self) -> Option<RateLimit> {
        self.rate
    }

    /// Whether the token has a use quota ([`TokenInfo::max_uses`]): the
    /// gate then has the backend spend one use before the request goes on
    /// ([`Verifier::spend`](crate::Verifier::spend)).
    pub fn has_quota(&self) -> bool {
        self.uses_left != NO_QUOTA
    }

    /// The same identity after a use of its quota was spent: `record` is
    /// the token's record as stored after it ([`TokenInfo::spend_use`]).
    /// For a backend's [`Verifier::spend`](crate::Verifier::spend).
    pub fn spent(mut self, record: &TokenInfo) -> Identity {
        self.uses_left = uses_left(record);
        self
    }

    /// How many uses the token has left (after this one, once the gate
    /// spent it); `None` without a quota.
    pub fn uses_left(&self) -> Option<u32> {
        self.has_quota().then_some(self.uses_left)
    }

    /// The deadline after this use (moved forward for sliding tokens).
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// Whether the token allows `perm` on the first node of `chain` (that
    /// node, then its ancestors). See [`Scopes::permits`].
    pub fn permits<'a>(&self, chain: impl IntoIterator<Item = &'a NodeId>, perm: Perm) -> bool {
        self.scopes.permits(chain, perm)
    }

    /// Whether the token holds the named permission `name` (`repo:read`),
    /// its implications and wildcards counted: always for an unrestricted
    /// token, never for one of node scopes alone. See [`Scopes::has`].
    #[inline]
    pub fn has_scope(&self, name: &str) -> bool {
        self.scopes.has(name)
    }

    /// Whether the token holds every one of `names`.
    pub fn has_all_scopes<S: AsRef<str>>(&self, names: &[S]) -> bool {
        self.scopes.has_all(names)
    }

    /// Whether the token holds at least one of `names`.
    pub fn has_any_scope<S: AsRef<str>>(&self, names: &[S]) -> bool {
        self.scopes.has_any(names)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("user", &self.user())
            .field("token_id", &self.token_id())
            .field("scopes", self.scopes())
            .field("expires_at", &self.expires_at)
            .field("previous_secret", &self.is_previous_secret())
            .field("meta", &self.meta)
            .finish()
    }
}
