//! A token's rate limit: at most so many uses per second, minute or hour
//! ([`RateLimit`], `--rate 100/m`).

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::model::time::Timestamp;
use crate::model::token::TokenId;

/// The most uses a rate limit may allow per unit of time.
pub const MAX_RATE_USES: u32 = 1_000_000;

/// The window a [`RateLimit`] counts its uses in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Per {
    /// A second (`/s`).
    Second,
    /// A minute (`/m`).
    Minute,
    /// An hour (`/h`).
    Hour,
}

impl Per {
    /// Its length in seconds.
    pub const fn seconds(self) -> u32 {
        match self {
            Per::Second => 1,
            Per::Minute => 60,
            Per::Hour => 3600,
        }
    }

    const fn letter(self) -> char {
        match self {
            Per::Second => 's',
            Per::Minute => 'm',
            Per::Hour => 'h',
        }
    }

    /// Its code in the stores' encodings.
    #[cfg_attr(not(all(unix, feature = "redb")), allow(dead_code))]
    pub(crate) const fn code(self) -> u8 {
        match self {
            Per::Second => 1,
            Per::Minute => 2,
            Per::Hour => 3,
        }
    }

    /// The unit whose [`code`](Per::code) is `code`.
    #[cfg_attr(not(all(unix, feature = "redb")), allow(dead_code))]
    pub(crate) const fn from_code(code: u8) -> Option<Per> {
        match code {
            1 => Some(Per::Second),
            2 => Some(Per::Minute),
            3 => Some(Per::Hour),
            _ => None,
        }
    }
}

/// At most [`uses`](RateLimit::uses) uses of a token per
/// [`per`](RateLimit::per): a burst of that many at once, given back
/// evenly over the window (the generic cell rate algorithm, as
/// [`governor`](https://docs.rs/governor) keeps it). Written `100/m`; a use
/// over it is refused with 429 and `Retry-After` (see
/// [`RejectReason::RateLimited`](crate::RejectReason::RateLimited)).
///
/// The count is kept in the process that checks the token (the gate), not
/// in the store: exact on one host; on a fleet of `n` replicas behind a
/// load balancer each counts on its own, so a client may make up to `n`
/// times the rate in all. Each token counts on its own too: a token made
/// with a limited one has at most its rate ([`RateLimit::within`]) but its
/// own count, so a family of `k` tokens may make up to `k` times the rate
/// (each child costs its parent a use to make, so a family grows no faster
/// than the parent's rate).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    uses: NonZeroU32,
    per: Per,
}

impl RateLimit {
    /// At most `uses` uses per `per`; `None` for 0 or more than
    /// [`MAX_RATE_USES`].
    pub fn new(uses: u32, per: Per) -> Option<RateLimit> {
        let uses = NonZeroU32::new(uses).filter(|n| n.get() <= MAX_RATE_USES)?;
        Some(RateLimit { uses, per })
    }

    /// How many uses it allows per window (and at once).
    pub fn uses(self) -> u32 {
        self.uses.get()
    }

    /// The window.
    pub fn per(self) -> Per {
        self.per
    }

    /// The window as a duration.
    pub fn window(self) -> Duration {
        Duration::from_secs(u64::from(self.per.seconds()))
    }

    /// Whether it allows no more uses than `other` over any stretch of
    /// time: no larger burst (`uses`) and no higher average (what a token
    /// made with another may have: see [`crate::backend::authority`]).
    /// `1/s` is within `100/m`; `3600/h`, with its burst of 3600, is not
    /// within `1/s`.
    pub fn within(self, other: RateLimit) -> bool {
        self.uses() <= other.uses()
            && u64::from(self.uses()) * u64::from(other.per.seconds())
                <= u64::from(other.uses()) * u64::from(self.per.seconds())
    }

    pub(crate) fn nonzero_uses(self) -> NonZeroU32 {
        self.uses
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.uses, self.per.letter())
    }
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a text is not a [`RateLimit`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{}` is not a rate (uses per second, minute or hour, e.g. 10/s, 100/m, 1000/h): {reason}",
    crate::model::text::redacted(text)
)]
pub struct ParseRateError {
    text: String,
    reason: &'static str,
}

impl FromStr for RateLimit {
    type Err = ParseRateError;

    fn from_str(text: &str) -> Result<RateLimit, ParseRateError> {
        let err = |reason| ParseRateError {
            text: text.to_owned(),
            reason,
        };
        let (uses, per) = text.split_once('/').ok_or_else(|| err("it has no `/`"))?;
        let per = match per {
            "s" => Per::Second,
            "m" => Per::Minute,
            "h" => Per::Hour,
            _ => return Err(err("the unit is not s, m or h")),
        };
        if uses.is_empty() || !uses.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("the number of uses is not a number"));
        }
        let uses: u32 = match uses.parse() {
            Ok(0) => return Err(err("0 uses would refuse every use")),
            Ok(n) if n <= MAX_RATE_USES => n,
            _ => return Err(err("at most 1000000 uses per unit")),
        };
        RateLimit::new(uses, per).ok_or_else(|| err("at most 1000000 uses per unit"))
    }
}

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

/// What counts uses against tokens' rate limits (the gate's counts, in
/// `gate::rate`): asked by the use rule
/// ([`TokenInfo::check_use`](crate::TokenInfo::check_use)) after the
/// address, the suspension and the expiry passed and before the use is
/// recorded, so that a use over the limit records nothing.
pub(crate) trait RateCounter: Send + Sync {
    /// Counts a use of token `id` under `limit` at `now`; refused when it
    /// has none left.
    fn count(&self, id: TokenId, limit: RateLimit, now: Timestamp) -> Result<(), Throttled>;
}

/// A [`RateCounter`] that counts nothing: the admission of a use checked
/// outside the gate (an introspection, the store's own blocking calls),
/// so that the use rule still refuses a quota with no use left before the
/// use is recorded. The rate of such a use is the caller's gate's to
/// count (the remote verifier's), or nobody's.
struct Uncounted;

impl RateCounter for Uncounted {
    #[inline]
    fn count(&self, _: TokenId, _: RateLimit, _: Timestamp) -> Result<(), Throttled> {
        Ok(())
    }
}

/// The counter of [`Uncounted`] uses, shared (no allocation per use).
pub(crate) fn uncounted() -> &'static Arc<dyn RateCounter> {
    static UNCOUNTED: std::sync::LazyLock<Arc<dyn RateCounter>> =
        std::sync::LazyLock::new(|| Arc::new(Uncounted));
    &UNCOUNTED
}

/// One use's admission by the rate limits, as the gate hands it to a
/// backend with the lookup: counted at most once, however often the use
/// rule runs for this use (a lookup tries again when a write raced its
/// read).
pub(crate) struct Admission<'a> {
    counter: &'a Arc<dyn RateCounter>,
    counted: AtomicBool,
}

impl<'a> Admission<'a> {
    /// A use not counted yet, to count with `counter`.
    #[inline]
    pub(crate) fn new(counter: &'a Arc<dyn RateCounter>) -> Admission<'a> {
        Admission {
            counter,
            counted: AtomicBool::new(false),
        }
    }

    /// Counts the use of token `id` under `limit`, unless it was counted
    /// already.
    #[inline]
    pub(crate) fn admit(
        &self,
        id: TokenId,
        limit: RateLimit,
        now: Timestamp,
    ) -> Result<(), Throttled> {
        // One request's own flag: no other thread reads it meanwhile.
        if self.counted.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.counter.count(id, limit, now)?;
        self.counted.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the use was counted (and admitted).
    #[inline]
    pub(crate) fn counted(&self) -> bool {
        self.counted.load(Ordering::Relaxed)
    }

    /// The counter and what was counted, for a lookup that goes on in a
    /// task of its own (a backend's read over the network): the task makes
    /// its own admission of them ([`Detached::admission`]).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn detach(&self) -> Detached {
        Detached {
            counter: self.counter.clone(),
            counted: self.counted(),
        }
    }
}

impl fmt::Debug for Admission<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("counted", &self.counted())
            .finish_non_exhaustive()
    }
}

/// An [`Admission`] carried into a task (see [`Admission::detach`]).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) struct Detached {
    counter: Arc<dyn RateCounter>,
    counted: bool,
}

#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
impl Detached {
    /// The admission to hand the lookup in the task.
    pub(crate) fn admission(&self) -> Admission<'_> {
        Admission {
            counter: &self.counter,
            counted: AtomicBool::new(self.counted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_print_and_compare() {
        for text in ["10/s", "100/m", "1/h", "1000000/s"] {
            assert_eq!(text.parse::<RateLimit>().unwrap().to_string(), text);
        }
        for (text, says) in [
            ("10", "no `/`"),
            ("10/d", "not s, m or h"),
            ("/s", "not a number"),
            ("-1/s", "not a number"),
            ("0/m", "refuse every use"),
            ("1000001/s", "at most"),
            ("99999999999/s", "at most"),
            ("1 /s", "not a number"),
        ] {
            let e = text.parse::<RateLimit>().unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
        let r = |t: &str| t.parse::<RateLimit>().unwrap();
        assert!(r("1/s").within(r("60/m")));
        assert!(r("1/s").within(r("1/s")));
        assert!(r("1/m").within(r("1/s")));
        // A larger burst at the same or a lower average is more uses at
        // once (the attack review's finding).
        assert!(!r("60/m").within(r("1/s")));
        assert!(!r("3600/h").within(r("1/s")));
        assert!(!r("120/h").within(r("2/m")));
        assert!(!r("2/s").within(r("100/m")));
        assert!(!r("61/m").within(r("60/m")));
        assert_eq!(RateLimit::new(0, Per::Second), None);
        for per in [Per::Second, Per::Minute, Per::Hour] {
            assert_eq!(Per::from_code(per.code()), Some(per));
        }
        assert_eq!(Per::from_code(0), None);
    }
}
