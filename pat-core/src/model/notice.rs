//! Expiry notices: which token is due which notice, written once per
//! token, threshold and deadline as an audit entry (so as an
//! [`Event`](crate::Event): `token.expiring`, `token.expired`). The rule
//! is here; a backend only stores the notices and refuses one it stored
//! before ([`Admin::record_notices`](crate::Admin::record_notices)).

use std::time::Duration;

use crate::model::audit::{AuditAction, AuditEntry};
use crate::model::record::TokenInfo;
use crate::model::time::Timestamp;

/// The default thresholds, in days before a token's latest deadline:
/// 60, 30 and 7 days (as GitLab mails), and 0, its last day (under 24 h
/// left).
pub const DEFAULT_NOTICE_DAYS: [u32; 4] = [60, 30, 7, 0];

/// How long after its deadline a token still gets its `expired` notice:
/// 7 days (a sweep that did not run for longer sends none, rather than
/// notices about tokens long gone).
pub const EXPIRED_NOTICE_WINDOW: Duration = Duration::from_secs(7 * 86_400);

const DAY: u64 = 86_400;

/// The audit actor of expiry notices.
pub(crate) const NOTICE_ACTOR: &str = "expiry notices";

/// A notice due to one token: made only by pat-core's rule, stored by the
/// backend at most once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice(AuditEntry);

impl Notice {
    /// Its audit entry.
    pub fn entry(&self) -> &AuditEntry {
        &self.0
    }

    /// What makes it the same notice as another, for a backend to store
    /// it once: its action, its token and its outcome (the threshold and
    /// the deadline).
    pub fn key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.0.action.as_str(),
            self.0.token_id.map_or(0, |id| id.as_u64()),
            self.0.outcome
        )
    }

    /// The notice due to `info` at `now` under thresholds `days`, if any:
    /// `expiring` for the tightest threshold its latest deadline
    /// ([`TokenInfo::latest_possible`]) is within (only that one: a token
    /// made with 5 days to live gets the 7-day notice, not the 30-day
    /// one), `expired` within [`EXPIRED_NOTICE_WINDOW`] after it. None for
    /// a token that cannot die of age (a sliding token without a cap), or
    /// that does not work now (disabled, used up, or a sliding token that
    /// went unused for its window, which dies then and never reaches its
    /// cap).
    pub fn due(info: &TokenInfo, now: Timestamp, days: &[u32]) -> Option<Notice> {
        let deadline = info.latest_possible()?;
        let idle = info.is_expired(now) && info.expiry.expires_at() < deadline;
        if idle || info.disabled_by.is_some() || info.uses_left() == Some(0) {
            return None;
        }
        let (at, dl) = (now.as_unix_secs(), deadline.as_unix_secs());
        let (action, outcome) = if dl <= at {
            if at - dl > EXPIRED_NOTICE_WINDOW.as_secs() {
                return None;
            }
            (AuditAction::Expired, format!("at {deadline}"))
        } else {
            let left = dl - at;
            let d = days
                .iter()
                .copied()
                .filter(|&d| left <= u64::from(d.max(1)) * DAY)
                .min()?;
            (AuditAction::Expiring, format!("{d} days before {deadline}"))
        };
        Some(Notice(AuditEntry::new(
            now,
            action,
            Some(info.id),
            &*info.user,
            NOTICE_ACTOR,
            outcome,
        )))
    }
}

impl Notice {
    /// The `expired` notice owed to `info`, found expired by a prune at
    /// `now` that is about to delete it: the one a sweep writes in the
    /// [`EXPIRED_NOTICE_WINDOW`] after the deadline, which the prune
    /// writes first so that a token deleted before the next sweep (or in
    /// a deployment without sweeps) is not gone without it. Once per
    /// token and deadline with the sweep's, which has the same key.
    pub fn owed_at_prune(info: &TokenInfo, now: Timestamp) -> Option<Notice> {
        Notice::due(info, now, &[]).filter(|n| n.0.action == AuditAction::Expired)
    }

    /// Whether this notice, made from an earlier read of its token, still
    /// holds of the token as it is when the notice is written (`None`:
    /// gone): the one [`Notice::due`] would make of it then, at the same
    /// time, threshold and deadline. A rotation, a revocation or a
    /// suspension that committed between the sweep's read and its write
    /// makes it stale: a backend writes only the notices that still hold,
    /// under the lock its write takes.
    pub(crate) fn holds_for(&self, info: Option<&TokenInfo>) -> bool {
        let Some(info) = info else {
            return false;
        };
        let days: Vec<u32> = parse_outcome(self.0.action, &self.0.outcome)
            .0
            .into_iter()
            .collect();
        Notice::due(info, self.0.at, &days).is_some_and(|now| now.key() == self.key())
    }
}

/// The threshold and deadline an `expiring` or `expired` entry's outcome
/// names (see [`Notice::due`]).
pub(crate) fn parse_outcome(
    action: AuditAction,
    outcome: &str,
) -> (Option<u32>, Option<Timestamp>) {
    let time = |s: &str| {
        humantime::parse_rfc3339(s)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| Timestamp::from_unix_secs(d.as_secs()))
    };
    match action {
        AuditAction::Expiring => match outcome.split_once(" days before ") {
            Some((d, t)) => (d.parse().ok(), time(t)),
            None => (None, None),
        },
        AuditAction::Expired => (None, outcome.strip_prefix("at ").and_then(time)),
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::expiry::ExpiryPolicy;
    use crate::model::record::NewToken;
    use crate::model::token::TokenId;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs).unwrap()
    }

    fn token(policy: ExpiryPolicy) -> TokenInfo {
        NewToken::new("alice", policy)
            .to_info(TokenId::from_u64(9), at(0))
            .unwrap()
    }

    #[test]
    fn the_tightest_threshold_crossed_then_expired_once() {
        let t = token(ExpiryPolicy::hard(Duration::from_secs(100 * DAY)));
        let outcome = |days_in: u64| {
            Notice::due(&t, at(days_in * DAY), &DEFAULT_NOTICE_DAYS)
                .map(|n| (n.0.action, n.0.outcome))
        };
        let deadline = at(100 * DAY);
        assert_eq!(outcome(39), None, "61 days left");
        assert_eq!(
            outcome(40),
            Some((AuditAction::Expiring, format!("60 days before {deadline}")))
        );
        assert_eq!(outcome(71).unwrap().1, format!("30 days before {deadline}"));
        assert_eq!(outcome(93).unwrap().1, format!("7 days before {deadline}"));
        assert_eq!(outcome(99).unwrap().1, format!("0 days before {deadline}"));
        assert_eq!(
            outcome(100),
            Some((AuditAction::Expired, format!("at {deadline}")))
        );
        assert_eq!(outcome(107).unwrap().0, AuditAction::Expired);
        assert_eq!(outcome(108), None, "long gone");
        let n = Notice::due(&t, at(93 * DAY), &DEFAULT_NOTICE_DAYS).unwrap();
        assert_eq!(
            parse_outcome(n.0.action, &n.0.outcome),
            (Some(7), Some(deadline))
        );
        assert_eq!(n.key(), format!("expiring:9:7 days before {deadline}"));
    }

    #[test]
    fn only_tokens_that_die_of_age_and_work_now() {
        let uncapped = token(ExpiryPolicy::sliding(Duration::from_secs(60), None));
        assert_eq!(Notice::due(&uncapped, at(0), &DEFAULT_NOTICE_DAYS), None);
        let capped = token(ExpiryPolicy::sliding(
            Duration::from_secs(60),
            Some(Duration::from_secs(5 * DAY)),
        ));
        let n = Notice::due(&capped, at(0), &DEFAULT_NOTICE_DAYS).unwrap();
        assert!(n.0.outcome.starts_with("7 days before"), "the cap: {n:?}");
        // Unused for its minute: dead, and never told of its cap, which
        // it will not reach, nor of its end there.
        assert_eq!(Notice::due(&capped, at(61), &DEFAULT_NOTICE_DAYS), None);
        assert_eq!(
            Notice::due(&capped, at(5 * DAY), &DEFAULT_NOTICE_DAYS),
            None
        );
        assert_eq!(Notice::owed_at_prune(&capped, at(5 * DAY)), None);
        // Made from a read, then checked against the token as it is.
        let ten = token(ExpiryPolicy::hard(Duration::from_secs(10 * DAY)));
        let seven = Notice::due(&ten, at(4 * DAY), &DEFAULT_NOTICE_DAYS).unwrap();
        assert!(seven.holds_for(Some(&ten)));
        let mut rotated = ten.clone();
        rotated.expiry = crate::Expiry::Hard {
            expires_at: at(20 * DAY),
        };
        assert!(!seven.holds_for(Some(&rotated)), "a new deadline");
        let mut disabled = ten.clone();
        disabled.disabled_by = Some(ten.id);
        assert!(!seven.holds_for(Some(&disabled)));
        assert!(!seven.holds_for(None), "revoked");
        let expired = Notice::owed_at_prune(&ten, at(10 * DAY)).unwrap();
        assert!(expired.holds_for(Some(&ten)));
        let hard = token(ExpiryPolicy::hard(Duration::from_secs(DAY)));
        assert_eq!(Notice::owed_at_prune(&hard, at(DAY - 1)), None, "alive");
        let owed = Notice::owed_at_prune(&hard, at(DAY)).unwrap();
        assert_eq!(
            owed.key(),
            Notice::due(&hard, at(2 * DAY), &DEFAULT_NOTICE_DAYS)
                .unwrap()
                .key(),
            "the sweep's, written once"
        );
        let mut disabled = token(ExpiryPolicy::hard(Duration::from_secs(DAY)));
        disabled.disabled_by = Some(disabled.id);
        assert_eq!(Notice::due(&disabled, at(0), &DEFAULT_NOTICE_DAYS), None);
        let far = token(ExpiryPolicy::hard(Duration::from_secs(3 * DAY)));
        assert_eq!(Notice::due(&far, at(0), &[]), None, "no thresholds");
        assert_eq!(
            Notice::due(&far, at(0), &[1]).map(|n| n.0.outcome),
            None,
            "3 days left, a 1-day threshold"
        );
    }
}
