//! Per-token rate limits ([`RateLimit`]), counted by the gate: one
//! [`governor`] cell-rate state per rate-limited token, in a concurrent map
//! whose reads take no lock. A token without a rate limit never touches it.
//!
//! The map holds an entry (about 100 bytes) for each rate-limited token in
//! use, keyed by the token and its limit. Past [`MAX_COUNTED`] entries, a
//! new one first drops those idle for longer than a window (by the
//! request's clock, in seconds: no second clock read per use): their
//! counts are full again, so forgetting them changes no decision. Tokens without a limit
//! add nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock as _;

use crate::model::rate::{RateCounter, RateLimit, Throttled};
use crate::model::time::Timestamp;
use crate::model::token::TokenId;

/// How many rate-limited tokens a gate counts before it drops the idle
/// ones.
pub(crate) const MAX_COUNTED: usize = 100_000;

/// The counts of every rate-limited token in use.
#[derive(Default)]
pub(crate) struct Rates {
    buckets: papaya::HashMap<(TokenId, RateLimit), Bucket, KeyHasher>,
}

/// One token's count, and when it was last used (Unix seconds).
struct Bucket {
    cells: governor::DefaultDirectRateLimiter,
    last_use: AtomicU64,
}

/// A hasher for the map's keys: a token id is drawn from the OS generator,
/// so its bits are uniform already and a multiply folds the limit in. Safe
/// against collision floods because only the store's own tokens, which
/// passed every other check, are ever inserted. (SipHash cost 260
/// instructions a request here.)
#[derive(Clone, Copy, Default)]
struct KeyHasher;

impl std::hash::BuildHasher for KeyHasher {
    type Hasher = KeyHash;
    #[inline]
    fn build_hasher(&self) -> KeyHash {
        KeyHash(0)
    }
}

struct KeyHash(u64);

/// `bytes` as little-endian 64-bit words, the last one padded with zeros:
/// what the map hashers (this one, the record cache's) fold.
#[inline]
pub(crate) fn words(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bytes.chunks(8).map(|chunk| {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        u64::from_le_bytes(word)
    })
}

impl KeyHash {
    #[inline]
    fn fold(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl std::hash::Hasher for KeyHash {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for word in words(bytes) {
            self.fold(word);
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.fold(n);
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.fold(u64::from(n));
    }

    #[inline]
    fn write_isize(&mut self, n: isize) {
        self.fold(n as u64);
    }
}

impl RateCounter for Rates {
    /// Counts a use of token `id` under `limit`; refused when it has none
    /// left.
    #[inline]
    fn count(&self, id: TokenId, limit: RateLimit, now: Timestamp) -> Result<(), Throttled> {
        let map = self.buckets.pin();
        let now = now.as_unix_secs();
        let bucket = match map.get(&(id, limit)) {
            Some(bucket) => bucket,
            None => self.insert(&map, (id, limit), now),
        };
        // A plain store: a race leaves it older by a second at most, which
        // the margin of the pruning covers.
        bucket.last_use.store(now, Ordering::Relaxed);
        bucket.cells.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            Throttled {
                limit,
                retry_after: whole_seconds(wait),
            }
        })
    }
}

impl Rates {
    /// A new token's bucket, after dropping the idle ones when the map is
    /// full.
    #[cold]
    fn insert<'g>(
        &self,
        map: &'g papaya::HashMapRef<
            '_,
            (TokenId, RateLimit),
            Bucket,
            KeyHasher,
            impl papaya::Guard,
        >,
        key: (TokenId, RateLimit),
        now: u64,
    ) -> &'g Bucket {
        if map.len() >= MAX_COUNTED {
            // Idle for more than its window plus a second (the clock's
            // grain, and a racing store's): full again.
            map.retain(|&(_, limit), bucket| {
                let idle = now.saturating_sub(bucket.last_use.load(Ordering::Relaxed));
                idle <= u64::from(limit.per().seconds()) + 1
            });
        }
        map.get_or_insert_with(key, || Bucket {
            cells: limiter(key.1),
            last_use: AtomicU64::new(now),
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
            .field("tokens", &self.buckets.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs).unwrap()
    }

    #[test]
    fn a_burst_then_refusals_naming_the_wait_each_token_on_its_own() {
        let rates = Rates::default();
        let limit: RateLimit = "3/h".parse().unwrap();
        let (a, b) = (TokenId::from_u64(1), TokenId::from_u64(2));
        for _ in 0..3 {
            rates.count(a, limit, at(0)).expect("within the burst");
        }
        let refused = rates.count(a, limit, at(0)).unwrap_err();
        assert_eq!(refused.limit, limit);
        // One use comes back every 20 minutes.
        assert!((1190..=1200).contains(&refused.retry_after), "{refused:?}");
        assert_eq!(refused.policy_field(), "\"token\";q=3;w=3600");
        assert!(refused.limit_field().starts_with("\"token\";r=0;t=1"));
        rates
            .count(b, limit, at(0))
            .expect("another token has its own count");
        // Another limit is another count (a token whose limit changed).
        rates
            .count(a, "1/s".parse().unwrap(), at(0))
            .expect("a new limit");
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }

    // From the attack review: the map only grew, so a loop of create, use,
    // revoke grew it without bound.
    #[test]
    fn past_the_bound_idle_tokens_are_forgotten_and_busy_ones_kept() {
        let rates = Rates::default();
        let busy: RateLimit = "1/h".parse().unwrap();
        let idle: RateLimit = "1000000/s".parse().unwrap();
        rates
            .count(TokenId::from_u64(u64::MAX), busy, at(0))
            .unwrap();
        for i in 1..MAX_COUNTED as u64 {
            rates.count(TokenId::from_u64(i), idle, at(0)).unwrap();
        }
        assert_eq!(rates.buckets.len(), MAX_COUNTED, "not pruned yet");
        // Three seconds later (past their window and the clock's grain) every
        // `idle` bucket is full again.
        rates
            .count(TokenId::from_u64(u64::MAX - 1), idle, at(3))
            .unwrap();
        assert!(rates.buckets.len() < 10, "{}", rates.buckets.len());
        // The busy token's count survived: still no use left.
        assert!(
            rates
                .count(TokenId::from_u64(u64::MAX), busy, at(3))
                .is_err()
        );
    }
}
