//! The store-wide token policy: limits kept in the store itself, checked by
//! every backend when a token is created or rotated.

use std::fmt;
use std::time::Duration;

use crate::record::TokenInfo;
use crate::time::{Timestamp, format_duration};

/// Limits on new tokens, kept in the store (`pat-cli policy`) and checked by
/// [`Admin::create`](crate::Admin::create) and
/// [`Admin::rotate`](crate::Admin::rotate). Existing tokens are left alone;
/// [`Policy::allows`] tells which of them break it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// The longest a new (or newly rotated) token may live: its hard
    /// lifetime, or the cap of a sliding token, which must then have one.
    pub max_lifetime: Option<Duration>,
    /// The most live (unexpired) tokens one user may hold.
    pub max_tokens_per_user: Option<u32>,
}

/// What a store's policy refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyViolation {
    /// The token would live longer than the policy allows.
    #[error(
        "the store's policy limits a token's life to {max} (`pat-cli policy`); this token \
         would live {asked}"
    )]
    Lifetime {
        /// The limit, as a duration (`30d`).
        max: String,
        /// What the token asked for.
        asked: String,
    },
    /// A sliding token without a cap, under a lifetime limit.
    #[error(
        "the store's policy limits a token's life to {max} (`pat-cli policy`): a sliding \
         token needs --max-lifetime of at most {max}"
    )]
    Uncapped {
        /// The limit, as a duration.
        max: String,
    },
    /// The user holds as many live tokens as the policy allows.
    #[error(
        "the store's policy allows {max} live token{} per user (`pat-cli policy`), and {user} \
         has {max} already: revoke one first",
        if *max == 1 { "" } else { "s" }
    )]
    TooMany {
        /// The user.
        user: String,
        /// The limit.
        max: u32,
    },
}

impl Policy {
    /// No limits (a new store's policy).
    pub const NONE: Policy = Policy {
        max_lifetime: None,
        max_tokens_per_user: None,
    };

    /// Sets the lifetime limit.
    pub fn max_lifetime(mut self, max: Option<Duration>) -> Policy {
        self.max_lifetime = max;
        self
    }

    /// Sets the per-user limit.
    pub fn max_tokens_per_user(mut self, max: Option<u32>) -> Policy {
        self.max_tokens_per_user = max;
        self
    }

    /// Whether `info`, issued (created or rotated) at its
    /// [`issued_at`](TokenInfo::issued_at), keeps the lifetime limit.
    pub fn check_lifetime(&self, info: &TokenInfo) -> Result<(), PolicyViolation> {
        let Some(max) = self.max_lifetime else {
            return Ok(());
        };
        let life = match (info.expiry.window(), info.expiry.max_lifetime()) {
            (None, _) => Duration::from_secs(
                info.expiry
                    .expires_at()
                    .as_unix_secs()
                    .saturating_sub(info.issued_at().as_unix_secs()),
            ),
            (Some(_), Some(cap)) => cap,
            (Some(_), None) => {
                return Err(PolicyViolation::Uncapped {
                    max: format_duration(max),
                });
            }
        };
        if life > max {
            return Err(PolicyViolation::Lifetime {
                max: format_duration(max),
                asked: format_duration(life),
            });
        }
        Ok(())
    }

    /// Whether `user`, holding `live` unexpired tokens, may get another.
    pub fn check_count(&self, user: &str, live: usize) -> Result<(), PolicyViolation> {
        match self.max_tokens_per_user {
            Some(max) if live >= max as usize => Err(PolicyViolation::TooMany {
                user: crate::text::printable(user).into_owned(),
                max,
            }),
            _ => Ok(()),
        }
    }

    /// Whether an existing token keeps the lifetime limit (for `list` to mark
    /// those that do not; the count limit applies to new tokens only).
    pub fn allows(&self, info: &TokenInfo) -> bool {
        self.check_lifetime(info).is_ok()
    }

    /// The policy on one line: the outcome of a policy change in the audit
    /// log, which every backend writes alike.
    pub fn summary(&self) -> String {
        format!(
            "max lifetime {}, max tokens per user {}",
            self.max_lifetime.map_or("none".into(), format_duration),
            self.max_tokens_per_user
                .map_or("none".into(), |n| n.to_string())
        )
    }

    /// How the store keeps it: `(key, value)` pairs, absent limits as `None`.
    pub(crate) fn to_pairs(self) -> [(&'static str, Option<u64>); 2] {
        [
            (MAX_LIFETIME_KEY, self.max_lifetime.map(|d| d.as_secs())),
            (MAX_PER_USER_KEY, self.max_tokens_per_user.map(u64::from)),
        ]
    }

    /// The policy from the stored pairs (see [`Policy::to_pairs`]).
    pub(crate) fn from_pairs(lifetime: Option<u64>, per_user: Option<u64>) -> Policy {
        Policy {
            max_lifetime: lifetime.map(Duration::from_secs),
            max_tokens_per_user: per_user.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        }
    }
}

/// Keys of the policy in a store's metadata table.
pub(crate) const MAX_LIFETIME_KEY: &str = "policy_max_lifetime_secs";
pub(crate) const MAX_PER_USER_KEY: &str = "policy_max_tokens_per_user";

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max_lifetime {
            Some(d) => writeln!(f, "max lifetime:         {}", format_duration(d))?,
            None => writeln!(f, "max lifetime:         none")?,
        }
        match self.max_tokens_per_user {
            Some(n) => writeln!(f, "max tokens per user:  {n}"),
            None => writeln!(f, "max tokens per user:  none"),
        }
    }
}

/// Counts `user`'s live tokens among `infos` at `now`.
pub(crate) fn live_of<'a>(
    infos: impl IntoIterator<Item = &'a TokenInfo>,
    user: &str,
    now: Timestamp,
) -> usize {
    infos
        .into_iter()
        .filter(|i| i.user == user && !i.is_expired(now))
        .count()
}
