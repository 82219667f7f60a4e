//! The two expiry models, and the one rule for refreshing on use.

use std::time::Duration;

use crate::error::NewTokenError;
use crate::model::time::{Timestamp, format_duration};

/// How a new token should expire: the `-e` / `-a` choice of the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpiryPolicy {
    /// Dead at creation + `lifetime`, however it is used (`-e 24h`).
    Hard {
        /// Time from creation to expiry.
        lifetime: Duration,
    },
    /// Each use pushes the expiry to use + `window` (`-a 10m`), but never past
    /// creation + `max_lifetime` when that is set.
    Sliding {
        /// Idle time after which the token dies.
        window: Duration,
        /// Absolute cap on the token's life, from creation.
        max_lifetime: Option<Duration>,
    },
}

impl ExpiryPolicy {
    /// A hard-limit policy.
    pub const fn hard(lifetime: Duration) -> ExpiryPolicy {
        ExpiryPolicy::Hard { lifetime }
    }

    /// A sliding-window policy, optionally capped.
    pub const fn sliding(window: Duration, max_lifetime: Option<Duration>) -> ExpiryPolicy {
        ExpiryPolicy::Sliding {
            window,
            max_lifetime,
        }
    }

    /// The policy the JSON APIs' `expire`, `auto` and `max_lifetime`
    /// fields (self-service rotation, the management API) ask for: `None`
    /// when none is given, else one model, with an error naming the fields
    /// for a wrong combination.
    pub(crate) fn from_fields(
        expire: Option<Duration>,
        auto: Option<Duration>,
        max_lifetime: Option<Duration>,
    ) -> Result<Option<ExpiryPolicy>, &'static str> {
        match (expire, auto, max_lifetime) {
            (Some(_), Some(_), _) => Err("`expire` and `auto` cannot be combined, give one, not \
                 both: a hard limit (`expire`, e.g. 24h) or a sliding window refreshed by each \
                 use (`auto`, e.g. 10m)"),
            (_, None, Some(_)) => Err("`max_lifetime` caps a sliding window and needs `auto`"),
            (Some(lifetime), None, None) => Ok(Some(ExpiryPolicy::hard(lifetime))),
            (None, Some(window), cap) => Ok(Some(ExpiryPolicy::sliding(window, cap))),
            (None, None, None) => Ok(None),
        }
    }

    /// The expiry of a token created at `now` under this policy: the
    /// durations must be whole, positive seconds, a sliding cap no shorter
    /// than the window, and the deadline no later than year 9999.
    pub fn start(&self, now: Timestamp) -> Result<Expiry, NewTokenError> {
        let check = |d: Duration, what| {
            if d.is_zero() || d.subsec_nanos() != 0 {
                Err(NewTokenError::Duration { what })
            } else {
                Ok(d)
            }
        };
        match *self {
            ExpiryPolicy::Hard { lifetime } => {
                let lifetime = check(lifetime, "expiry")?;
                Ok(Expiry::Hard {
                    expires_at: now.checked_add(lifetime).ok_or(NewTokenError::TooLate)?,
                })
            }
            ExpiryPolicy::Sliding {
                window,
                max_lifetime,
            } => {
                let window = check(window, "auto-refresh window")?;
                if let Some(cap) = max_lifetime {
                    check(cap, "max lifetime")?;
                    if cap < window {
                        return Err(NewTokenError::CapBelowWindow {
                            window: format_duration(window),
                            max_lifetime: format_duration(cap),
                        });
                    }
                }
                Ok(Expiry::Sliding {
                    window,
                    max_lifetime,
                    expires_at: now.checked_add(window).ok_or(NewTokenError::TooLate)?,
                })
            }
        }
    }
}

/// A stored token's expiry: the policy plus the current deadline.
///
/// A token is valid while `now < expires_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expiry {
    /// Fixed deadline.
    Hard {
        /// When the token dies.
        expires_at: Timestamp,
    },
    /// Deadline moved forward by each use.
    Sliding {
        /// Idle time after which the token dies.
        window: Duration,
        /// Absolute cap from creation, if any.
        max_lifetime: Option<Duration>,
        /// When the token dies unless used before.
        expires_at: Timestamp,
    },
}

impl Expiry {
    /// The current deadline.
    pub const fn expires_at(&self) -> Timestamp {
        match *self {
            Expiry::Hard { expires_at } | Expiry::Sliding { expires_at, .. } => expires_at,
        }
    }

    /// Whether the token is dead at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at()
    }

    /// The sliding window, `None` for a hard limit.
    pub const fn window(&self) -> Option<Duration> {
        match *self {
            Expiry::Hard { .. } => None,
            Expiry::Sliding { window, .. } => Some(window),
        }
    }

    /// The absolute cap of a sliding token, `None` when uncapped or hard.
    pub const fn max_lifetime(&self) -> Option<Duration> {
        match *self {
            Expiry::Hard { .. } => None,
            Expiry::Sliding { max_lifetime, .. } => max_lifetime,
        }
    }

    /// The expiry after a successful use at `now` of a token created at
    /// `created_at`.
    ///
    /// This is the only place the refresh rule lives: a sliding deadline moves
    /// to `min(now + window, created_at + max_lifetime)` and never backwards
    /// (touches may arrive out of order); a hard deadline never moves.
    pub fn touched(&self, created_at: Timestamp, now: Timestamp) -> Expiry {
        match *self {
            Expiry::Hard { .. } => *self,
            Expiry::Sliding {
                window,
                max_lifetime,
                expires_at,
            } => {
                let mut next = now.saturating_add(window);
                if let Some(cap) = max_lifetime {
                    next = next.min(created_at.saturating_add(cap));
                }
                Expiry::Sliding {
                    window,
                    max_lifetime,
                    expires_at: next.max(expires_at),
                }
            }
        }
    }
}

impl Expiry {
    /// This expiry with its deadline no later than `limit`.
    pub(crate) fn limited_to(&self, limit: Timestamp) -> Expiry {
        match *self {
            Expiry::Hard { expires_at } => Expiry::Hard {
                expires_at: expires_at.min(limit),
            },
            Expiry::Sliding {
                window,
                max_lifetime,
                expires_at,
            } => Expiry::Sliding {
                window,
                max_lifetime,
                expires_at: expires_at.min(limit),
            },
        }
    }

    /// This expiry with a sliding deadline of at least `at` (a buffered
    /// refresh merged into a stored record); hard deadlines never move.
    pub(crate) fn extended_to(&self, at: Timestamp) -> Expiry {
        match *self {
            Expiry::Hard { .. } => *self,
            Expiry::Sliding {
                window,
                max_lifetime,
                expires_at,
            } => Expiry::Sliding {
                window,
                max_lifetime,
                expires_at: expires_at.max(at),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs).unwrap()
    }

    #[test]
    fn hard_never_moves() {
        let e = ExpiryPolicy::hard(MIN).start(at(100)).unwrap();
        assert_eq!(e.expires_at(), at(160));
        assert_eq!(e.touched(at(100), at(150)), e);
        assert!(!e.is_expired(at(159)));
        assert!(e.is_expired(at(160)));
    }

    #[test]
    fn sliding_moves_forward_up_to_the_cap_and_never_back() {
        let e = ExpiryPolicy::sliding(MIN, Some(3 * MIN))
            .start(at(0))
            .unwrap();
        assert_eq!(e.expires_at(), at(60));
        let e = e.touched(at(0), at(50));
        assert_eq!(e.expires_at(), at(110));
        assert_eq!(e.touched(at(0), at(10)).expires_at(), at(110), "late touch");
        assert_eq!(e.touched(at(0), at(170)).expires_at(), at(180), "capped");
    }

    #[test]
    fn invalid_policies_are_refused() {
        let now = at(0);
        assert_eq!(
            ExpiryPolicy::hard(Duration::ZERO).start(now),
            Err(NewTokenError::Duration { what: "expiry" })
        );
        assert_eq!(
            ExpiryPolicy::hard(Duration::from_millis(1500)).start(now),
            Err(NewTokenError::Duration { what: "expiry" })
        );
        assert!(matches!(
            ExpiryPolicy::sliding(2 * MIN, Some(MIN)).start(now),
            Err(NewTokenError::CapBelowWindow { .. })
        ));
        assert_eq!(
            ExpiryPolicy::hard(Duration::from_secs(10)).start(Timestamp::MAX),
            Err(NewTokenError::TooLate)
        );
    }
}
