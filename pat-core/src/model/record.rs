//! What the store keeps about a token, what a request to create one carries,
//! and what a successful authentication yields.

use std::fmt;

use crate::error::{AuthError, NewTokenError};
use crate::model::expiry::{Expiry, ExpiryPolicy};
use crate::model::scope::{NodeId, Perm, Scopes};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId, TokenSecret};

/// The label given to tokens created without one, as in Cells.
pub const DEFAULT_LABEL: &str = "Command generated token";

/// Longest user, label or creator name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// The most scopes one token carries: every path that creates a token
/// refuses more (a record is read on every cache miss and returned whole by
/// `/whoami`; 20,000 scopes made a 920 KB record).
pub const MAX_SCOPES: usize = 64;

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

    /// Whether the token is dead at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expiry.is_expired(now)
    }

    /// The rule for a presented token, shared by every backend: with HTTP
    /// Basic (`user` given) the user must be the token's, else
    /// [`AuthError::WrongUser`]; the token must be alive at `now`, else
    /// [`AuthError::Expired`]. Returns the deadline after this use (moved
    /// forward for a sliding token, see
    /// [`Expiry::touched`](crate::Expiry::touched)). Records nothing.
    pub fn check_use(&self, user: Option<&str>, now: Timestamp) -> Result<Timestamp, AuthError> {
        self.check_use_with(self.expiry, user, now)
    }

    /// [`check_use`](TokenInfo::check_use) with `expiry` in place of the
    /// record's (the record merged with a buffered use).
    pub(crate) fn check_use_with(
        &self,
        expiry: Expiry,
        user: Option<&str>,
        now: Timestamp,
    ) -> Result<Timestamp, AuthError> {
        if user.is_some_and(|u| u != self.user) {
            return Err(AuthError::WrongUser);
        }
        // A buffered deadline may predate the family's limit: the limit
        // wins, for the answer as for the deadline.
        let expiry = self.limited(expiry);
        if expiry.is_expired(now) {
            return Err(AuthError::Expired {
                expires_at: expiry.expires_at(),
            });
        }
        Ok(self
            .limited(expiry.touched(self.lifetime_from, now))
            .expires_at())
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
        let expires_at = self.check_use(user, now)?;
        self.expiry = self.expiry.extended_to(expires_at);
        self.last_used_at = Some(self.last_used_at.map_or(now, |t| t.max(now)));
        Ok(expires_at)
    }
}

/// A request to create a token.
///
/// ```
/// use std::time::Duration;
/// use pat_core::{ExpiryPolicy, NewToken};
/// let new = NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(86_400)))
///     .label("deploy bot")
///     .created_by("root");
/// assert_eq!(new.user, "alice");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewToken {
    /// The user the token logs in as. Not empty, no `:` (it could not be
    /// sent with HTTP Basic), no white space at either end, no control or
    /// invisible formatting characters, at most 255 bytes.
    pub user: String,
    /// How it expires.
    pub expiry: ExpiryPolicy,
    /// A human label, [`DEFAULT_LABEL`] unless set.
    pub label: String,
    /// Who creates it; the API caller's choice.
    pub created_by: String,
    /// Node restrictions; empty for an unrestricted token.
    pub scopes: Scopes,
    /// The token the creator authenticated with, if any (see
    /// [`TokenInfo::parent`]): the store checks that the new token stays
    /// within it.
    pub parent: Option<TokenId>,
    /// The digest of the parent's secret the creator presented, if known:
    /// the store refuses the token unless it is the parent's current one
    /// (a replica that has not seen a rotation yet must not let a replaced
    /// secret mint; see [`Identity::presented`]).
    pub parent_secret: Option<TokenDigest>,
}

impl NewToken {
    /// A request for an unrestricted token with the default label.
    pub fn new(user: impl Into<String>, expiry: ExpiryPolicy) -> NewToken {
        NewToken {
            user: user.into(),
            expiry,
            label: DEFAULT_LABEL.to_owned(),
            created_by: String::new(),
            scopes: Scopes::unrestricted(),
            parent: None,
            parent_secret: None,
        }
    }

    /// Makes the new token a child of `parent`, the token its creator
    /// authenticated with.
    pub fn parent(mut self, parent: TokenId) -> NewToken {
        self.parent = Some(parent);
        self
    }

    /// Makes the new token a child of the token `identity` authenticated
    /// with, and only if the secret presented is still that token's current
    /// one ([`NewToken::parent_secret`]).
    pub fn child_of(mut self, identity: &Identity) -> NewToken {
        self.parent = Some(identity.token_id());
        self.parent_secret = identity.presented().copied();
        self
    }

    /// Sets the label.
    pub fn label(mut self, label: impl Into<String>) -> NewToken {
        self.label = label.into();
        self
    }

    /// Sets who creates the token.
    pub fn created_by(mut self, who: impl Into<String>) -> NewToken {
        self.created_by = who.into();
        self
    }

    /// Restricts the token to these scopes.
    pub fn scopes(mut self, scopes: Scopes) -> NewToken {
        self.scopes = scopes;
        self
    }

    /// The record to store for this request, created at `now` with the id
    /// `id` (from [`TokenId::generate`]). Checks the names (see
    /// [`NewToken::user`]) and starts the expiry policy; the errors are what
    /// every backend answers for a bad request.
    pub fn to_info(&self, id: TokenId, now: Timestamp) -> Result<TokenInfo, NewTokenError> {
        NewToken::check_user(&self.user)?;
        NewToken::check_label(&self.label)?;
        check_name(&self.created_by).map_err(|reason| NewTokenError::CreatedBy { reason })?;
        if self.scopes.as_slice().len() > MAX_SCOPES {
            return Err(NewTokenError::TooManyScopes {
                count: self.scopes.as_slice().len(),
                max: MAX_SCOPES,
            });
        }
        Ok(TokenInfo {
            id,
            user: self.user.clone(),
            label: self.label.clone(),
            created_at: now,
            created_by: self.created_by.clone(),
            expiry: self.expiry.start(now)?,
            last_used_at: None,
            scopes: self.scopes.clone(),
            rotated_at: None,
            parent: self.parent,
            lifetime_from: now,
            not_after: None,
            previous_until: None,
        })
    }

    /// Whether `user` can be a token's user (see [`NewToken::user`]); the
    /// error says why not.
    pub fn check_user(user: &str) -> Result<(), NewTokenError> {
        let user_err = |reason| NewTokenError::User {
            user: user.to_owned(),
            reason,
        };
        if user.is_empty() {
            return Err(user_err("it is empty"));
        }
        if user.contains(':') {
            return Err(user_err("it contains `:`, which HTTP Basic cannot carry"));
        }
        if user.trim() != user {
            return Err(user_err("it starts or ends with white space"));
        }
        check_name(user).map_err(user_err)
    }

    /// Whether `label` can be a token's label: at most 255 bytes, no control
    /// or invisible formatting characters.
    pub fn check_label(label: &str) -> Result<(), NewTokenError> {
        check_name(label).map_err(|reason| NewTokenError::Label { reason })
    }
}

fn check_name(s: &str) -> Result<(), &'static str> {
    if s.len() > MAX_NAME_LEN {
        return Err("it is longer than 255 bytes");
    }
    if s.chars().any(char::is_control) {
        return Err("it contains a control character");
    }
    if s.chars().any(crate::model::text::is_invisible) {
        return Err(
            "it contains an invisible formatting character (such as a zero-width space or \
             a bidirectional override), which would print as another name",
        );
    }
    Ok(())
}

/// A freshly created token: the plaintext, shown once, and its record.
#[derive(Debug)]
#[non_exhaustive]
pub struct CreatedToken {
    /// The plaintext token. It exists nowhere else: hand it over, then drop it.
    pub secret: TokenSecret,
    /// What the store keeps.
    pub info: TokenInfo,
}

impl CreatedToken {
    /// A created token, for backends: the secret they generated and the
    /// record they stored under its digest.
    pub fn new(secret: TokenSecret, info: TokenInfo) -> CreatedToken {
        CreatedToken { secret, info }
    }
}

/// A request to rotate a token: a new secret for the same token.
///
/// ```
/// use std::time::Duration;
/// use pat_core::{ExpiryPolicy, Rotation};
/// // The old secret keeps working for 10 more minutes; the new one gets 30 days.
/// let rotation = Rotation::new()
///     .grace(Duration::from_secs(600))
///     .expiry(ExpiryPolicy::hard(Duration::from_secs(30 * 86_400)));
/// # let _ = rotation;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rotation {
    /// The new secret's expiry; `None` restarts the token's own policy
    /// ([`TokenInfo::policy`]).
    pub expiry: Option<ExpiryPolicy>,
    /// How long the old secret keeps working beside the new one; zero (the
    /// default) retires it at once. Presenting it after that is refused
    /// like an unknown token and logged as a possible theft. Capped by the
    /// store's policy ([`Policy::max_grace`](crate::Policy::max_grace)) and
    /// the token's own deadline.
    pub grace: std::time::Duration,
    /// Whether the rotation gives the token a new lifetime (an admin's
    /// decision, [`Rotation::new_lifetime`]) instead of staying within the
    /// one it has.
    pub resets_lifetime: bool,
    /// The digest of the secret the caller presented, if known: the store
    /// refuses the rotation unless it is the token's current secret (see
    /// [`Rotation::presented`]).
    pub presented: Option<TokenDigest>,
}

impl Rotation {
    /// A rotation that restarts the token's own expiry policy and retires
    /// the old secret at once.
    pub fn new() -> Rotation {
        Rotation::default()
    }

    /// Gives the new secret this expiry policy instead of the token's own.
    pub fn expiry(mut self, policy: ExpiryPolicy) -> Rotation {
        self.expiry = Some(policy);
        self
    }

    /// Gives the token a new lifetime under `policy`, counted from the
    /// rotation: an admin's decision (`pat-cli token rotate -e/-a`), which
    /// self-service and the management API never make. Without it a
    /// rotation stays within the token's envelope (see
    /// [`crate::backend::authority`]).
    pub fn new_lifetime(mut self, policy: ExpiryPolicy) -> Rotation {
        self.expiry = Some(policy);
        self.resets_lifetime = true;
        self
    }

    /// Rotates only if `identity`'s presented secret is still the token's
    /// current one: a token rotating itself with a secret another replica
    /// has replaced already (or that was replaced while its request was
    /// on its way) is refused.
    pub fn presented(mut self, identity: &Identity) -> Rotation {
        self.presented = identity.presented().copied();
        self
    }

    /// Lets the old secret work for `grace` more.
    pub fn grace(mut self, grace: std::time::Duration) -> Rotation {
        self.grace = grace;
        self
    }

    /// When the old secret stops working, for a rotation at `now`.
    pub fn retires_at(&self, now: Timestamp) -> Timestamp {
        now.saturating_add(self.grace)
    }
}

/// Who a request authenticated as: what the adapters insert into request
/// extensions and handlers read.
///
/// Made and cloned without allocating or touching memory shared between
/// cores (for user names up to 24 bytes and unscoped tokens; scopes are
/// shared, not copied). `Debug` shows the user, token id, scopes and
/// deadline; there is no secret in it to show.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    user: compact_str::CompactString,
    token_id: TokenId,
    scopes: Scopes,
    expires_at: Timestamp,
    previous_secret: bool,
    presented: Option<TokenDigest>,
}

impl Identity {
    /// The identity a backend answers for a successful use of the token whose
    /// record is `record`; `expires_at` is the deadline after this use.
    pub fn new(record: &TokenInfo, expires_at: Timestamp) -> Identity {
        Identity {
            user: compact_str::CompactString::new(&record.user),
            token_id: record.id,
            scopes: record.scopes.clone(),
            expires_at,
            previous_secret: false,
            presented: None,
        }
    }

    /// The same identity, noting the digest of the secret presented (the
    /// gate does), so that acting on the token can require it to be the
    /// current one ([`Rotation::presented`], [`NewToken::child_of`]).
    pub fn presented_as(mut self, digest: TokenDigest) -> Identity {
        self.presented = Some(digest);
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
        self.previous_secret = true;
        self
    }

    /// Whether the request authenticated with a replaced secret still in
    /// its grace (see [`by_previous_secret`](Identity::by_previous_secret)).
    pub fn is_previous_secret(&self) -> bool {
        self.previous_secret
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

    /// The deadline after this use (moved forward for sliding tokens).
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// Whether the token allows `perm` on the first node of `chain` (that
    /// node, then its ancestors). See [`Scopes::permits`].
    pub fn permits<'a>(&self, chain: impl IntoIterator<Item = &'a NodeId>, perm: Perm) -> bool {
        self.scopes.permits(chain, perm)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("user", &self.user())
            .field("token_id", &self.token_id())
            .field("scopes", self.scopes())
            .field("expires_at", &self.expires_at)
            .field("previous_secret", &self.previous_secret)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn new(user: &str) -> NewToken {
        NewToken::new(user, ExpiryPolicy::hard(Duration::from_secs(60)))
    }

    // Issue 21, finding 10: 20,000 scopes were accepted, a 920 KB record
    // read on every miss and returned whole by `/whoami`.
    #[test]
    fn a_token_carries_at_most_64_scopes() {
        let scopes = |n: usize| -> Scopes {
            (0..n)
                .map(|i| {
                    format!("node:00000000-0000-4000-8000-{i:012x}:r")
                        .parse::<crate::Scope>()
                        .unwrap()
                })
                .collect()
        };
        let id = TokenId::from_u64(1);
        let now = Timestamp::UNIX_EPOCH;
        assert!(new("a").scopes(scopes(MAX_SCOPES)).to_info(id, now).is_ok());
        let e = new("a")
            .scopes(scopes(MAX_SCOPES + 1))
            .to_info(id, now)
            .unwrap_err();
        assert!(
            matches!(e, NewTokenError::TooManyScopes { count: 65, max: 64 }),
            "{e}"
        );
        assert_eq!(e.to_string(), "65 scopes: a token carries at most 64");
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        let id = TokenId::from_u64(1);
        let now = Timestamp::UNIX_EPOCH;
        for (user, reason) in [
            ("", "empty"),
            ("a:b", "`:`"),
            (" alice", "white space"),
            ("al\nice", "control"),
            (&"x".repeat(256) as &str, "255"),
        ] {
            let msg = new(user).to_info(id, now).unwrap_err().to_string();
            assert!(msg.contains(reason), "{user:?}: {msg}");
        }
        assert!(matches!(
            new("a").label("x\ty").to_info(id, now),
            Err(NewTokenError::Label { .. })
        ));
        assert!(new("alice@example.com").to_info(id, now).is_ok());
        assert!(new("Zoë").label("").to_info(id, now).is_ok());
    }
}
