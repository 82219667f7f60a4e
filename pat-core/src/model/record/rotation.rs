//! What a request to rotate a token carries.

use super::Identity;
use crate::model::expiry::ExpiryPolicy;
use crate::model::time::Timestamp;
use crate::model::token::TokenDigest;

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
    /// ([`TokenInfo::policy`](crate::TokenInfo::policy)).
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
