//! Per-token rate limits ([`RateLimit`]), counted by the gate: one
//! [`governor`] cell-rate state per rate-limited token, in a concurrent map
//! whose reads take no lock. A token without a rate limit never touches it.
//!
//! The map holds an entry (about 80 bytes) for each rate-limited token used
//! since the gate was made, keyed by the token and its limit; it is bounded
//! by the store's tokens, and tokens without a limit add nothing.

use std::time::Duration;

use governor::clock::Clock as _;

use crate::model::rate::RateLimit;
use crate::model::token::TokenId;

/// A use the token's rate limit refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    /// The token's limit.
    pub limit: RateLimit,
    /// Whole seconds (at least 1) until the token may be used again.
    pub retry_after: u32,
}

impl Throttled {
    /// The `RateLimit-Policy` field (IETF `draft-ietf-httpapi-ratelimit-headers`):
    /// the token's quota `q` per window `w` seconds.
    pub fn policy_field(&self) -> String {
        format!(
            "\"token\";q={};w={}",
            self.limit.uses(),
            self.limit.per().seconds()
        )
    }

    /// The `RateLimit` field: none remaining (`r=0`), and the seconds until
    /// one more use is allowed (`t`).
    pub fn limit_field(&self) -> String {
        format!("\"token\";r=0;t={}", self.retry_after)
    }
}

/// The counts of every rate-limited token a gate has seen.
#[derive(Default)]
pub(crate) struct Rates {
    limiters: papaya::HashMap<(TokenId, RateLimit), governor::DefaultDirectRateLimiter>,
}

impl Rates {
    /// Counts a use of token `id` under `limit`; refused when it has none
    /// left.
    #[inline]
    pub(crate) fn check(&self, id: TokenId, limit: RateLimit) -> Result<(), Throttled> {
        let map = self.limiters.pin();
        let limiter = map.get_or_insert_with((id, limit), || limiter(limit));
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            Throttled {
                limit,
                retry_after: whole_seconds(wait),
            }
        })
    }
}

fn limiter(limit: RateLimit) -> governor::DefaultDirectRateLimiter {
    // A burst of `uses`, one given back every window / uses.
    let period = limit.window() / limit.uses();
    let quota = governor::Quota::with_period(period)
        .unwrap_or_else(|| governor::Quota::per_second(limit.nonzero_uses()))
        .allow_burst(limit.nonzero_uses());
    governor::RateLimiter::direct(quota)
}

/// `wait` in whole seconds, rounded up, at least 1 (what `Retry-After` can
/// say).
fn whole_seconds(wait: Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

impl std::fmt::Debug for Rates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rates")
            .field("tokens", &self.limiters.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals_naming_the_wait_each_token_on_its_own() {
        let rates = Rates::default();
        let limit: RateLimit = "3/h".parse().unwrap();
        let (a, b) = (TokenId::from_u64(1), TokenId::from_u64(2));
        for _ in 0..3 {
            rates.check(a, limit).expect("within the burst");
        }
        let refused = rates.check(a, limit).unwrap_err();
        assert_eq!(refused.limit, limit);
        // One use comes back every 20 minutes.
        assert!((1190..=1200).contains(&refused.retry_after), "{refused:?}");
        assert_eq!(refused.policy_field(), "\"token\";q=3;w=3600");
        assert!(refused.limit_field().starts_with("\"token\";r=0;t=1"));
        rates
            .check(b, limit)
            .expect("another token has its own count");
        // Another limit is another count (a token whose limit changed).
        rates.check(a, "1/s".parse().unwrap()).expect("a new limit");
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }
}
