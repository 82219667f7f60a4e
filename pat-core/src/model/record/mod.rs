//! What the store keeps about a token, what a request to create one carries,
//! and what a successful authentication yields.

mod addresses;
mod identity;
mod new;
mod rotation;

pub use self::addresses::{LAST_ADDRESSES, LastAddresses, SeenFrom};
pub use self::identity::Identity;
pub use self::new::{CreatedToken, NewToken};
pub use self::rotation::Rotation;

use std::net::IpAddr;

use crate::error::{AuthError, NewTokenError};
use crate::model::expiry::{Expiry, ExpiryPolicy};
use crate::model::metadata::Metadata;
use crate::model::network::Cidr;
use crate::model::rate::{Admission, RateLimit};
use crate::model::scope::Scopes;
use crate::model::time::Timestamp;
use crate::model::token::TokenId;

/// The label given to tokens created without one, as in Cells.
pub const DEFAULT_LABEL: &str = "Command generated token";

/// Longest user, label or creator name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// The most networks one token's address rule lists
/// ([`TokenInfo::allow_from`]).
pub const MAX_NETWORKS: usize = 16;

/// The most scopes one token carries: every path that creates a token
/// refuses more (a record is read on every cache miss and returned whole by
/// `/whoami`; 20,000 scopes made a 920 KB record).
pub const MAX_SCOPES: usize = 64;

/// The largest use quota a token may have ([`TokenInfo::max_uses`]).
pub const MAX_USES: u32 = 1_000_000_000;

/// Checks a use quota as every tool receives it (a flag, a JSON number):
/// 1 to [`MAX_USES`].
///
/// ```
/// assert_eq!(pat_core::use_quota(1), Ok(1));
/// assert!(pat_core::use_quota(0).is_err());
/// assert!(pat_core::use_quota(u64::MAX).is_err());
/// ```
///
/// # Errors
///
/// [`NewTokenError::MaxUses`](crate::NewTokenError::MaxUses) for 0 or more
/// than [`MAX_USES`].
pub fn use_quota(given: u64) -> Result<u32, crate::NewTokenError> {
    match u32::try_from(given) {
        Ok(uses) if (1..=MAX_USES).contains(&uses) => Ok(uses),
        _ => Err(crate::NewTokenError::MaxUses {
            given,
            max: MAX_USES,
        }),
    }
}

/// Everything stored about a token except the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenInfo {
    /// Public id.
    pub id: TokenId,
    /// The user the token logs in as.
    pub user: String,
    /// A human label.
    pub label: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it (an OS user for the CLI).
    pub created_by: String,
    /// Expiry model and current deadline.
    pub expiry: Expiry,
    /// Last successful authentication, if any.
    pub last_used_at: Option<Timestamp>,
    /// Node restrictions; empty means unrestricted.
    pub scopes: Scopes,
    /// When the current secret was issued by a rotation; `None` while the
    /// token still has the secret it was created with. The expiry runs from
    /// [`issued_at`](TokenInfo::issued_at).
    pub rotated_at: Option<Timestamp>,
    /// The token its creator authenticated with, if any: revoking that one
    /// revokes this one, and this one never outlives it nor reaches further
    /// (see [`crate::backend::authority`]).
    pub parent: Option<TokenId>,
    /// When the token's lifetime began: its creation, or an admin's
    /// rotation that gave it a new lifetime. A sliding cap and the store
    /// policy's maximum lifetime count from here, so that a rotation never
    /// extends them.
    pub lifetime_from: Timestamp,
    /// The latest the token may live, whatever its expiry says: a limit its
    /// family set (its parent's latest possible deadline). The deadline
    /// never moves past it.
    pub not_after: Option<Timestamp>,
    /// When the secret the last rotation replaced stops working (the end of
    /// its grace); `None` when it stopped at once, or the token was never
    /// rotated.
    pub previous_until: Option<Timestamp>,
    /// When the token is disabled (suspended), the token whose disabling
    /// reached it: itself, or an ancestor disabled with its family. A
    /// disabled token is refused ([`AuthError::Disabled`]) until that token
    /// is enabled again; nothing else about it changes.
    pub disabled_by: Option<TokenId>,
    /// What the app attached to the token ([`NewToken::meta`]), handed back
    /// in every [`Identity`].
    pub meta: Metadata,
    /// The networks the token may be used from; empty: anywhere. A use
    /// from elsewhere, or whose address is not known, is refused
    /// ([`AuthError::AddressNotAllowed`]).
    pub allow_from: Vec<Cidr>,
    /// The most uses per second, minute or hour; `None`: no limit. Counted
    /// by the gate that checks the token, not the store: a use over it is
    /// refused with 429 (see [`RateLimit`]).
    pub rate: Option<RateLimit>,
    /// How many times the token may be accepted in all (1: a one-time
    /// token); `None`: no quota. Each accepted use is written to the store
    /// before the request goes on ([`Verifier::spend`](crate::Verifier::spend)),
    /// exactly once across replicas and crashes; past it the token is
    /// refused ([`AuthError::UsedUp`]).
    pub max_uses: Option<u32>,
    /// How many of [`max_uses`](TokenInfo::max_uses) are spent (0 for a
    /// token without a quota).
    pub uses: u32,
    /// The last distinct client addresses the token was used from, with
    /// the time of each one's last use; kept with the buffered use (no
    /// write per request) and written with the next flush.
    pub last_addresses: LastAddresses,
}

impl TokenInfo {
    /// A record with the required fields; the label, creator, last use and
    /// scopes start empty (unrestricted) and are public fields to set. For
    /// backends rebuilding records they read; new tokens come from
    /// [`NewToken::to_info`], which also validates the names.
    pub fn new(
        id: TokenId,
        user: impl Into<String>,
        created_at: Timestamp,
        expiry: Expiry,
    ) -> TokenInfo {
        TokenInfo {
            id,
            user: user.into(),
            label: String::new(),
            created_at,
            created_by: String::new(),
            expiry,
            last_used_at: None,
            scopes: Scopes::unrestricted(),
            rotated_at: None,
            parent: None,
            lifetime_from: created_at,
            not_after: None,
            previous_until: None,
            disabled_by: None,
            meta: Metadata::empty(),
            allow_from: Vec::new(),
            rate: None,
            max_uses: None,
            uses: 0,
            last_addresses: LastAddresses::EMPTY,
        }
    }

    /// How many more uses the token may have; `None` without a quota.
    pub fn uses_left(&self) -> Option<u32> {
        self.max_uses.map(|max| max.saturating_sub(self.uses))
    }

    /// The quota rule, shared by every backend: a token with a quota
    /// ([`max_uses`](TokenInfo::max_uses)) and none left is refused with
    /// [`AuthError::UsedUp`], else one more use is counted. A token without
    /// one is never refused here and nothing changes. The backend stores
    /// the record before the use is accepted.
    pub fn spend_use(&mut self) -> Result<(), AuthError> {
        match self.uses_left() {
            None => Ok(()),
            Some(0) => Err(AuthError::UsedUp),
            Some(_) => {
                self.uses += 1;
                Ok(())
            }
        }
    }

    /// The latest deadline the token can ever have: its hard deadline, or
    /// for a sliding token the end of its cap (counted from
    /// [`lifetime_from`](TokenInfo::lifetime_from)), and no later than
    /// [`not_after`](TokenInfo::not_after); `None` for a sliding token with
    /// neither, whose uses can keep it alive forever.
    pub fn latest_possible(&self) -> Option<Timestamp> {
        let own = match self.expiry {
            Expiry::Hard { expires_at } => Some(expires_at),
            Expiry::Sliding {
                max_lifetime: Some(cap),
                ..
            } => Some(self.lifetime_from.saturating_add(cap)),
            Expiry::Sliding {
                max_lifetime: None, ..
            } => None,
        };
        match (own, self.not_after) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the secret a rotation replaced stops working, if it still works
    /// at `now`.
    pub fn previous_secret_until(&self, now: Timestamp) -> Option<Timestamp> {
        self.previous_until.filter(|&t| now < t)
    }

    /// When the current secret was issued: the last rotation, else creation.
    /// A sliding token's cap and a hard token's lifetime run from here.
    pub fn issued_at(&self) -> Timestamp {
        self.rotated_at.unwrap_or(self.created_at)
    }

    /// The policy this token's expiry follows: the sliding window and cap
    /// as stored, or for a hard limit the lifetime its current secret was
    /// issued with (at least one second).
    pub fn policy(&self) -> ExpiryPolicy {
        match self.expiry {
            Expiry::Hard { expires_at } => ExpiryPolicy::hard(std::time::Duration::from_secs(
                expires_at
                    .as_unix_secs()
                    .saturating_sub(self.issued_at().as_unix_secs())
                    .max(1),
            )),
            Expiry::Sliding {
                window,
                max_lifetime,
                ..
            } => ExpiryPolicy::sliding(window, max_lifetime),
        }
    }

    /// The record after `rotation` at `now`, before the authority rule
    /// bounds it: same id, user, label, creator, scopes, parent and last
    /// use; the expiry restarts at `now` under the rotation's policy, else
    /// the token's own ([`policy`](TokenInfo::policy)), no later than
    /// [`not_after`](TokenInfo::not_after). A rotation that
    /// [resets the lifetime](Rotation::new_lifetime) starts
    /// [`lifetime_from`](TokenInfo::lifetime_from) anew. Backends call
    /// [`crate::backend::authority::rotate`], which applies this and then the
    /// envelope.
    pub fn rotated(&self, rotation: &Rotation, now: Timestamp) -> Result<TokenInfo, NewTokenError> {
        let policy = rotation.expiry.unwrap_or_else(|| self.policy());
        // A new lifetime drops the limits of the old one; the parent's, if
        // any, is applied again by `authority::rotate`.
        let (lifetime_from, not_after) = if rotation.resets_lifetime {
            (now, None)
        } else {
            (self.lifetime_from, self.not_after)
        };
        let mut expiry = policy.start(now)?;
        if let Expiry::Sliding {
            max_lifetime: Some(cap),
            ..
        } = expiry
        {
            // The cap counts from the lifetime's start, not from now.
            expiry = expiry.limited_to(lifetime_from.saturating_add(cap));
        }
        if let Some(limit) = not_after {
            expiry = expiry.limited_to(limit);
        }
        Ok(TokenInfo {
            expiry,
            rotated_at: Some(now),
            lifetime_from,
            not_after,
            ..self.clone()
        })
    }

    /// Whether the token is disabled (see
    /// [`disabled_by`](TokenInfo::disabled_by)).
    pub fn is_disabled(&self) -> bool {
        self.disabled_by.is_some()
    }

    /// Whether the token is dead at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expiry.is_expired(now)
    }

    /// The rule for a presented token, shared by every backend: with HTTP
    /// Basic (`user` given) the user must be the token's, else
    /// [`AuthError::WrongUser`]; a token with an address rule
    /// ([`allow_from`](TokenInfo::allow_from)) must come from one of its
    /// networks, else [`AuthError::AddressNotAllowed`] (here no address is
    /// known: see [`check_use_from`](TokenInfo::check_use_from)); the token
    /// must not be disabled, else [`AuthError::Disabled`]; it must be alive
    /// at `now`, else [`AuthError::Expired`]. Checked in that order; a
    /// refused use moves nothing. Returns the deadline after this use
    /// (moved forward for a sliding token, see
    /// [`Expiry::touched`](crate::Expiry::touched)). Records nothing.
    ///
    /// The token's [rate](TokenInfo::rate) and
    /// [quota](TokenInfo::max_uses) are not checked here: they are counted
    /// per use, which only the gate knows. A lookup the gate makes carries
    /// its count into the backends of this crate, which check both after
    /// the expiry and before recording the use; for any other caller (a
    /// backend outside this crate included) the gate counts the rate and
    /// spends the quota ([`Verifier::spend`](crate::Verifier::spend)) once
    /// the answer is in.
    pub fn check_use(&self, user: Option<&str>, now: Timestamp) -> Result<Timestamp, AuthError> {
        self.check_use_with(self.expiry, user, Origin::UNKNOWN, now)
    }

    /// [`check_use`](TokenInfo::check_use) of a use from `client` (the
    /// request's client address, when the adapter knows it).
    pub fn check_use_from(
        &self,
        user: Option<&str>,
        client: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<Timestamp, AuthError> {
        self.check_use_with(self.expiry, user, Origin::from(client), now)
    }

    /// [`check_use`](TokenInfo::check_use) with `expiry` in place of the
    /// record's (the record merged with a buffered use), for a use from
    /// `origin`. Inlined into the request path (the cache's hit), as it
    /// was measured.
    #[inline(always)]
    pub(crate) fn check_use_with(
        &self,
        expiry: Expiry,
        user: Option<&str>,
        origin: Origin<'_>,
        now: Timestamp,
    ) -> Result<Timestamp, AuthError> {
        if user.is_some_and(|u| u != self.user) {
            return Err(AuthError::WrongUser);
        }
        if !self.allow_from.is_empty() && !origin.allowed(&self.allow_from) {
            return Err(AuthError::AddressNotAllowed);
        }
        if self.disabled_by.is_some() {
            return Err(AuthError::Disabled);
        }
        // A buffered deadline may predate the family's limit: the limit
        // wins, for the answer as for the deadline.
        let expiry = self.limited(expiry);
        if expiry.is_expired(now) {
            return Err(AuthError::Expired {
                expires_at: expiry.expires_at(),
            });
        }
        // A use the gate counts: the rate, then a quota with nothing left
        // (spent exactly later, by `Verifier::spend`; refused here so that
        // a use it will refuse records nothing either).
        if let Some(admission) = origin.admission
            && (self.rate.is_some() || self.max_uses.is_some())
        {
            self.admit(admission, now)?;
        }
        Ok(self
            .limited(expiry.touched(self.lifetime_from, now))
            .expires_at())
    }

    /// The rate and the quota of a use the gate counts, for a token that
    /// has either (out of line: a token with neither pays two tests).
    #[inline(never)]
    fn admit(&self, admission: &Admission<'_>, now: Timestamp) -> Result<(), AuthError> {
        if let Some(limit) = self.rate {
            admission
                .admit(self.id, limit, now)
                .map_err(AuthError::RateLimited)?;
        }
        if self.uses_left() == Some(0) {
            return Err(AuthError::UsedUp);
        }
        Ok(())
    }

    /// Whether `client` is one of the token's networks (always, without an
    /// address rule).
    pub fn allows_from(&self, client: IpAddr) -> bool {
        self.allow_from.is_empty() || self.allow_from.iter().any(|n| n.contains(client))
    }

    /// `expiry` no later than [`not_after`](TokenInfo::not_after).
    pub(crate) fn limited(&self, expiry: Expiry) -> Expiry {
        match self.not_after {
            Some(limit) => expiry.limited_to(limit),
            None => expiry,
        }
    }

    /// [`check_use`](TokenInfo::check_use), then records the use in this
    /// record: the new deadline, and `last_used_at` moved to `now` unless it
    /// is later already. For backends that update records in place.
    pub fn record_use(
        &mut self,
        user: Option<&str>,
        now: Timestamp,
    ) -> Result<Timestamp, AuthError> {
        self.record_use_with(user, Origin::UNKNOWN, now)
    }

    /// [`record_use`](TokenInfo::record_use) of a use from `client` (the
    /// request's client address, [`Lookup::client`](crate::Lookup::client)):
    /// what a backend that updates records in place calls, so that the
    /// address rule holds on it too.
    pub fn record_use_from(
        &mut self,
        user: Option<&str>,
        client: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<Timestamp, AuthError> {
        self.record_use_with(user, Origin::from(client), now)
    }

    /// [`record_use`](TokenInfo::record_use) of a use from `origin`.
    pub(crate) fn record_use_with(
        &mut self,
        user: Option<&str>,
        origin: Origin<'_>,
        now: Timestamp,
    ) -> Result<Timestamp, AuthError> {
        let expires_at = self.check_use_with(self.expiry, user, origin, now)?;
        self.expiry = self.expiry.extended_to(expires_at);
        self.last_used_at = Some(self.last_used_at.map_or(now, |t| t.max(now)));
        if let Some(addr) = origin.addr() {
            self.last_addresses.seen(addr, now);
        }
        Ok(expires_at)
    }
}

/// Where a use comes from, for the address rule, and what counts it
/// against the token's rate limit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin<'a> {
    /// The client's address; `None` when the adapter cannot tell (a token
    /// with an address rule is then refused).
    addr: Option<IpAddr>,
    /// A use the rate limit counts (the gate's); `None` for a check that is
    /// not one (a session's recheck) or made outside the gate, whose
    /// caller counts the rate itself if it must.
    admission: Option<&'a Admission<'a>>,
}

impl<'a> Origin<'a> {
    /// A use from an address nobody knows, that no rate limit counts.
    pub(crate) const UNKNOWN: Origin<'static> = Origin {
        addr: None,
        admission: None,
    };

    /// The same use, counted against the token's rate limit by
    /// `admission`.
    #[inline]
    pub(crate) fn admitted_by(self, admission: Option<&'a Admission<'a>>) -> Origin<'a> {
        Origin { admission, ..self }
    }

    /// The client's address, if known.
    #[inline]
    pub(crate) fn addr(self) -> Option<IpAddr> {
        self.addr
    }

    #[inline]
    fn allowed(self, networks: &[Cidr]) -> bool {
        match self.addr {
            Some(a) => networks.iter().any(|n| n.contains(a)),
            None => false,
        }
    }
}

impl From<Option<IpAddr>> for Origin<'_> {
    #[inline]
    fn from(client: Option<IpAddr>) -> Self {
        Origin {
            addr: client,
            admission: None,
        }
    }
}

#[cfg(test)]
mod tests;
