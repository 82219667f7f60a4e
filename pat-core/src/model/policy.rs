//! The store-wide token policy: limits kept in the store itself, checked by
//! every backend when a token is created or rotated.

use std::fmt;
use std::time::Duration;

use crate::model::record::TokenInfo;
use crate::model::time::{Timestamp, format_duration};

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
    /// The longest a rotation lets the replaced secret keep working
    /// (default [`DEFAULT_MAX_GRACE`](crate::backend::authority::DEFAULT_MAX_GRACE),
    /// one day).
    pub max_grace: Option<Duration>,
    /// What an old secret presented after its grace does (see [`OnReuse`]).
    pub on_reuse: OnReuse,
}

/// What happens when a secret a rotation replaced is presented after its
/// grace: it may have been stolen, and the thief may hold the new one too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnReuse {
    /// Revoke the token and its descendants (refused at once, written by
    /// the next flush), as GitLab does: the owner rotates from a clean
    /// state, the thief loses what it stole. The default.
    #[default]
    Revoke,
    /// Refuse the old secret and record it in the audit log; the token
    /// lives on.
    Refuse,
}

impl OnReuse {
    /// Its name in `pat-cli policy` (`revoke`, `refuse`).
    pub const fn as_str(self) -> &'static str {
        match self {
            OnReuse::Revoke => "revoke",
            OnReuse::Refuse => "refuse",
        }
    }
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
        max_grace: None,
        on_reuse: OnReuse::Revoke,
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

    /// Sets the grace limit (`None`: the default, one day).
    pub fn max_grace(mut self, max: Option<Duration>) -> Policy {
        self.max_grace = max;
        self
    }

    /// Sets what a replayed old secret does.
    pub fn on_reuse(mut self, on_reuse: OnReuse) -> Policy {
        self.on_reuse = on_reuse;
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
                user: crate::model::text::printable(user).into_owned(),
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
        let mut s = format!(
            "max lifetime {}, max tokens per user {}",
            self.max_lifetime.map_or("none".into(), format_duration),
            self.max_tokens_per_user
                .map_or("none".into(), |n| n.to_string())
        );
        // Said only when set, so that the entries of stores that never set
        // them read as they always did.
        if let Some(grace) = self.max_grace {
            s.push_str(&format!(", max grace {}", format_duration(grace)));
        }
        if self.on_reuse != OnReuse::default() {
            s.push_str(&format!(", on reuse {}", self.on_reuse.as_str()));
        }
        s
    }

    // Storage only: a build with no store but memory does not need it.
    /// How the store keeps it: `(key, value)` pairs, absent limits (and the
    /// default reaction to reuse) as `None`.
    #[cfg_attr(
        not(any(all(unix, feature = "redb"), feature = "postgres")),
        allow(dead_code)
    )]
    pub(crate) fn to_pairs(self) -> [(&'static str, Option<u64>); 4] {
        [
            (MAX_LIFETIME_KEY, self.max_lifetime.map(|d| d.as_secs())),
            (MAX_PER_USER_KEY, self.max_tokens_per_user.map(u64::from)),
            (MAX_GRACE_KEY, self.max_grace.map(|d| d.as_secs())),
            (
                ON_REUSE_KEY,
                (self.on_reuse == OnReuse::Refuse).then_some(1),
            ),
        ]
    }

    /// The policy from the stored pairs (see [`Policy::to_pairs`]), each
    /// looked up by key with `get`.
    #[cfg_attr(
        not(any(all(unix, feature = "redb"), feature = "postgres")),
        allow(dead_code)
    )]
    pub(crate) fn from_pairs(get: impl Fn(&'static str) -> Option<u64>) -> Policy {
        Policy {
            max_lifetime: get(MAX_LIFETIME_KEY).map(Duration::from_secs),
            max_tokens_per_user: get(MAX_PER_USER_KEY)
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            max_grace: get(MAX_GRACE_KEY).map(Duration::from_secs),
            on_reuse: match get(ON_REUSE_KEY) {
                Some(1) => OnReuse::Refuse,
                _ => OnReuse::Revoke,
            },
        }
    }
}

/// Keys of the policy in a store's metadata table.
#[cfg_attr(
    not(any(all(unix, feature = "redb"), feature = "postgres")),
    allow(dead_code)
)]
pub(crate) const MAX_LIFETIME_KEY: &str = "policy_max_lifetime_secs";
#[cfg_attr(
    not(any(all(unix, feature = "redb"), feature = "postgres")),
    allow(dead_code)
)]
pub(crate) const MAX_PER_USER_KEY: &str = "policy_max_tokens_per_user";
#[cfg_attr(
    not(any(all(unix, feature = "redb"), feature = "postgres")),
    allow(dead_code)
)]
pub(crate) const MAX_GRACE_KEY: &str = "policy_max_grace_secs";
#[cfg_attr(
    not(any(all(unix, feature = "redb"), feature = "postgres")),
    allow(dead_code)
)]
pub(crate) const ON_REUSE_KEY: &str = "policy_on_reuse";
/// Every key, for backends that read them all at once.
#[cfg_attr(
    not(any(all(unix, feature = "redb"), feature = "postgres")),
    allow(dead_code)
)]
pub(crate) const KEYS: [&str; 4] = [
    MAX_LIFETIME_KEY,
    MAX_PER_USER_KEY,
    MAX_GRACE_KEY,
    ON_REUSE_KEY,
];

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max_lifetime {
            Some(d) => writeln!(f, "max lifetime:         {}", format_duration(d))?,
            None => writeln!(f, "max lifetime:         none")?,
        }
        match self.max_tokens_per_user {
            Some(n) => writeln!(f, "max tokens per user:  {n}")?,
            None => writeln!(f, "max tokens per user:  none")?,
        }
        match self.max_grace {
            Some(d) => writeln!(f, "max grace:            {}", format_duration(d))?,
            None => writeln!(
                f,
                "max grace:            {} (default)",
                format_duration(crate::backend::authority::DEFAULT_MAX_GRACE)
            )?,
        }
        writeln!(f, "on reuse:             {}", self.on_reuse.as_str())
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
