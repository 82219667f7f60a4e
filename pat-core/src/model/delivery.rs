//! A webhook's delivery state, and the rules that move it: which event
//! goes next, when a failed one is tried again and when it is given up,
//! which process may deliver. No I/O: the store keeps the state
//! ([`Admin::delivery`](crate::Admin::delivery)), changed only by a
//! compare-and-swap ([`Admin::swap_delivery`](crate::Admin::swap_delivery)),
//! and the deliverer ([`crate::webhook`], feature `webhooks`) does the
//! sending.

use std::time::Duration;

use serde_json::{Value, json};

use crate::model::event::Event;
use crate::model::time::Timestamp;

/// How many failed events a webhook keeps; past it the oldest is dropped
/// (logged).
pub const MAX_FAILED: usize = 1000;

/// The longest a webhook's name may be.
pub const MAX_SINK_LEN: usize = 128;

/// The longest error text kept for a failed attempt.
const MAX_ERROR_LEN: usize = 300;

/// How many times in a row an event the receiver refused
/// ([`refuses_event`]) is tried before it is given up (unless the event
/// before it was given up so too: see [`Delivery::failed_attempt`]).
pub const REFUSED_ATTEMPTS: u32 = 3;

/// The shortest wait between two attempts at an event, whatever the
/// policy says: a receiver is never called in a loop.
pub const MIN_RETRY_WAIT: Duration = Duration::from_millis(100);

/// Whether a receiver that answered `status` refused the event itself (it
/// cannot take it: 400 Bad Request, 413 Content Too Large, 415
/// Unsupported Media Type, 422 Unprocessable Content), rather than failed
/// to take it now. A refused event is given up after [`REFUSED_ATTEMPTS`],
/// so that it does not hold the events after it back for
/// [`RetryPolicy::give_up_after`]. Every other answer (a 5xx, 401, 403,
/// 404, 408, 429, no answer) says the receiver is down or misconfigured,
/// which holds for the events after it too: it is retried until given up.
pub fn refuses_event(status: u16) -> bool {
    matches!(status, 400 | 413 | 415 | 422)
}

/// Where one webhook's delivery stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// The place of the last event delivered or given up: the next is the
    /// first event after it.
    pub cursor: u64,
    /// The process delivering, and until when it may without renewing.
    pub lease: Option<Lease>,
    /// The next event's failed attempts, while it is retried.
    pub retry: Option<Retry>,
    /// Events given up after their retries, oldest first, at most
    /// [`MAX_FAILED`].
    pub failed: Vec<FailedEvent>,
    /// Whether the last event that went (delivered or given up) was given
    /// up as refused: then the next refusal is taken for a receiver that
    /// refuses everything (a wrong secret answered 400), and retried like
    /// any failure rather than given up after [`REFUSED_ATTEMPTS`].
    pub refusing: bool,
}

/// Who delivers a webhook's events: one process at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// The process (host, pid and a random part).
    pub holder: String,
    /// When the lease ends unless renewed.
    pub until: Timestamp,
}

/// The attempts at one event so far.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retry {
    /// The event's place.
    pub seq: u64,
    /// How many attempts failed.
    pub attempts: u32,
    /// How many of the last ones in a row the receiver refused
    /// ([`refuses_event`]).
    pub refused: u32,
    /// When the first failed.
    pub since: Timestamp,
    /// When the next is due: whichever process delivers waits for it, so
    /// that neither a restart nor a lease taken over retries at once.
    pub next_at: Timestamp,
    /// What the last one met.
    pub error: String,
}

/// An event given up after its retries, kept to be seen and sent again.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailedEvent {
    /// The event's place.
    pub seq: u64,
    /// The body it was sent with ([`Event::to_json`]), kept whole so that
    /// a resend does not depend on the audit log's retention.
    pub body: String,
    /// How many attempts failed.
    pub attempts: u32,
    /// When it was given up.
    pub failed_at: Timestamp,
    /// What the last attempt met.
    pub error: String,
    /// Whether it is to be sent again (`pat-cli events resend`).
    pub resend: bool,
}

/// When a webhook tries again and gives up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// The wait after the first failure; it doubles after each.
    pub first: Duration,
    /// The longest wait between two attempts.
    pub longest: Duration,
    /// How long an event is retried before it is given up.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// 1 s, doubling up to 5 min, given up after 24 h: a receiver down for
    /// a day loses nothing.
    fn default() -> RetryPolicy {
        RetryPolicy {
            first: Duration::from_secs(1),
            longest: Duration::from_secs(300),
            give_up_after: Duration::from_secs(86_400),
        }
    }
}

impl RetryPolicy {
    /// A policy with these three times.
    pub fn new(first: Duration, longest: Duration, give_up_after: Duration) -> RetryPolicy {
        RetryPolicy {
            first,
            longest,
            give_up_after,
        }
    }

    /// The wait after `attempts` failures, never under [`MIN_RETRY_WAIT`].
    pub fn delay(&self, attempts: u32) -> Duration {
        let doubled = self
            .first
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(30));
        doubled.min(self.longest).max(MIN_RETRY_WAIT)
    }
}

/// What to do after an attempt at an event failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again after this wait.
    Retry(Duration),
    /// It was given up: kept as failed, and the cursor moved past it.
    GivenUp,
}

impl Delivery {
    /// Whether `holder` may deliver at `now`: the state with its lease
    /// taken or renewed until `now + lease`, or `None` while another
    /// process holds an unexpired one.
    pub fn leased(&self, holder: &str, now: Timestamp, lease: Duration) -> Option<Delivery> {
        match &self.lease {
            Some(l) if l.holder != holder && l.until > now => None,
            _ => {
                let mut next = self.clone();
                next.lease = Some(Lease {
                    holder: holder.to_owned(),
                    until: now.saturating_add(lease),
                });
                Some(next)
            }
        }
    }

    /// The state after event `seq` was delivered.
    pub fn delivered(&self, seq: u64) -> Delivery {
        let mut next = self.clone();
        next.cursor = next.cursor.max(seq);
        next.retry = None;
        next.refusing = false;
        next
    }

    /// How long the next attempt at the next event is still to wait at
    /// `now`: `None` when it is due.
    pub fn retry_wait(&self, now: Timestamp) -> Option<Duration> {
        let next = self.retry.as_ref()?.next_at.as_unix_secs();
        let now = now.as_unix_secs();
        (next > now).then(|| Duration::from_secs(next - now))
    }

    /// The state after an attempt at `event` met `error` at `now` (with
    /// `status`, when the receiver answered), and what to do next: retried
    /// under `policy` until it has failed for
    /// [`RetryPolicy::give_up_after`], then given up; or sooner, once the
    /// receiver [`refuses_event`] [`REFUSED_ATTEMPTS`] times in a row, so
    /// that one event it will never take does not hold back the ones after
    /// it. Not when the event before was given up so too: a receiver that
    /// refuses every event is down, not picky, and giving each up would
    /// move the whole stream into [`Delivery::failed`] (and, past
    /// [`MAX_FAILED`], out of it).
    pub fn failed_attempt(
        &self,
        event: &Event,
        error: &str,
        status: Option<u16>,
        now: Timestamp,
        policy: &RetryPolicy,
    ) -> (Delivery, AfterFailure) {
        let mut next = self.clone();
        let error = crate::model::text::printable(error)
            .chars()
            .take(MAX_ERROR_LEN)
            .collect::<String>();
        let (attempts, refused, since) = match &self.retry {
            Some(r) if r.seq == event.seq => (r.attempts.saturating_add(1), r.refused, r.since),
            _ => (1, 0, now),
        };
        let refusal = status.is_some_and(refuses_event);
        let refused = if refusal {
            refused.saturating_add(1)
        } else {
            0
        };
        let failing_for =
            Duration::from_secs(now.as_unix_secs().saturating_sub(since.as_unix_secs()));
        let refused_enough = refused >= REFUSED_ATTEMPTS && !self.refusing;
        if failing_for >= policy.give_up_after || refused_enough {
            next.retry = None;
            next.cursor = next.cursor.max(event.seq);
            next.refusing = refusal;
            next.keep_failed(FailedEvent {
                seq: event.seq,
                body: event.to_json(),
                attempts,
                failed_at: now,
                error,
                resend: false,
            });
            return (next, AfterFailure::GivenUp);
        }
        let wait = policy.delay(attempts);
        // In whole seconds, rounded down: this process waits `wait`
        // itself, and then finds the attempt due.
        next.retry = Some(Retry {
            seq: event.seq,
            attempts,
            refused,
            since,
            next_at: now.saturating_add(wait),
            error,
        });
        (next, AfterFailure::Retry(wait))
    }

    /// The first failed event marked to be sent again.
    pub fn to_resend(&self) -> Option<&FailedEvent> {
        self.failed.iter().find(|f| f.resend)
    }

    /// The state with failed event `seq` marked to be sent again: `None`
    /// when no such event failed.
    pub fn marked_for_resend(&self, seq: u64) -> Option<Delivery> {
        let mut next = self.clone();
        let failed = next.failed.iter_mut().find(|f| f.seq == seq)?;
        failed.resend = true;
        Some(next)
    }

    /// The state after a resend of failed event `seq`: gone from the
    /// failed events when it was delivered, else kept with `error` and no
    /// longer marked.
    pub fn resent(&self, seq: u64, error: Option<&str>, now: Timestamp) -> Delivery {
        let mut next = self.clone();
        match error {
            None => next.failed.retain(|f| f.seq != seq),
            Some(error) => {
                if let Some(f) = next.failed.iter_mut().find(|f| f.seq == seq) {
                    f.resend = false;
                    f.attempts = f.attempts.saturating_add(1);
                    f.failed_at = now;
                    f.error = crate::model::text::printable(error)
                        .chars()
                        .take(MAX_ERROR_LEN)
                        .collect();
                }
            }
        }
        next
    }

    fn keep_failed(&mut self, failed: FailedEvent) {
        self.failed.retain(|f| f.seq != failed.seq);
        self.failed.push(failed);
        if self.failed.len() > MAX_FAILED {
            let dropped = self.failed.remove(0);
            tracing::warn!(
                seq = dropped.seq,
                kept = MAX_FAILED,
                "a failed webhook event was dropped to keep the newest"
            );
        }
    }

    /// Its stored form: JSON.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let failed: Vec<Value> = self
            .failed
            .iter()
            .map(|f| {
                json!({
                    "seq": f.seq, "body": f.body, "attempts": f.attempts,
                    "failed_at": f.failed_at.as_unix_secs(), "error": f.error,
                    "resend": f.resend,
                })
            })
            .collect();
        json!({
            "cursor": self.cursor,
            "lease": self.lease.as_ref().map(|l| json!({
                "holder": l.holder, "until": l.until.as_unix_secs(),
            })),
            "retry": self.retry.as_ref().map(|r| json!({
                "seq": r.seq, "attempts": r.attempts, "refused": r.refused,
                "since": r.since.as_unix_secs(), "next_at": r.next_at.as_unix_secs(),
                "error": r.error,
            })),
            "failed": failed,
            "refusing": self.refusing,
        })
        .to_string()
        .into_bytes()
    }

    /// The state stored as `bytes`.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Delivery, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("delivery state: {e}"))?;
        let u64_of = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("delivery state: no `{k}`"))
        };
        let str_of = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("delivery state: no `{k}`"))
        };
        let time_of = |v: &Value, k: &str| {
            Timestamp::from_unix_secs(u64_of(v, k)?)
                .ok_or_else(|| format!("delivery state: `{k}` out of range"))
        };
        let count_of = |v: &Value, k: &str| u64_of(v, k).map(|n| n.min(u64::from(u32::MAX)) as u32);
        let lease = match v.get("lease") {
            None | Some(Value::Null) => None,
            Some(l) => Some(Lease {
                holder: str_of(l, "holder")?,
                until: time_of(l, "until")?,
            }),
        };
        let retry = match v.get("retry") {
            None | Some(Value::Null) => None,
            Some(r) => Some(Retry {
                seq: u64_of(r, "seq")?,
                attempts: count_of(r, "attempts")?,
                // Kept since the second format: before it, none counted
                // and due at once.
                refused: match r.get("refused") {
                    None | Some(Value::Null) => 0,
                    Some(_) => count_of(r, "refused")?,
                },
                since: time_of(r, "since")?,
                next_at: match r.get("next_at") {
                    None | Some(Value::Null) => Timestamp::UNIX_EPOCH,
                    Some(_) => time_of(r, "next_at")?,
                },
                error: str_of(r, "error")?,
            }),
        };
        let failed = v
            .get("failed")
            .and_then(Value::as_array)
            .map(|all| {
                all.iter()
                    .map(|f| {
                        Ok(FailedEvent {
                            seq: u64_of(f, "seq")?,
                            body: str_of(f, "body")?,
                            attempts: count_of(f, "attempts")?,
                            failed_at: time_of(f, "failed_at")?,
                            error: str_of(f, "error")?,
                            resend: f.get("resend").and_then(Value::as_bool).unwrap_or(false),
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Delivery {
            cursor: u64_of(&v, "cursor")?,
            lease,
            retry,
            failed,
            refusing: v.get("refusing").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}

/// The compare-and-swap every backend does under its own lock: given what
/// is stored (`stored`), the bytes to store when it is what the caller
/// read (`expected`), or `None` when it changed since.
pub(crate) fn swap(
    stored: Option<&[u8]>,
    expected: Option<&Delivery>,
    new: &Delivery,
) -> Result<Option<Vec<u8>>, String> {
    let now = stored.map(Delivery::decode).transpose()?;
    Ok((now.as_ref() == expected).then(|| new.encode()))
}

/// Checks a webhook's name: 1 to [`MAX_SINK_LEN`] printable characters.
pub(crate) fn check_sink(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_SINK_LEN || name.chars().any(char::is_control) {
        return Err(format!(
            "a webhook's name is 1 to {MAX_SINK_LEN} bytes with no control character"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::audit::{AuditAction, AuditEntry};
    use crate::model::token::TokenId;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs).unwrap()
    }

    fn event(seq: u64) -> Event {
        let e = AuditEntry::new(
            at(5),
            AuditAction::Create,
            Some(TokenId::from_u64(1)),
            "a",
            "b",
            "ok",
        );
        Event::from_audit(&e.at_seq(seq)).unwrap()
    }

    #[test]
    fn one_holder_at_a_time_until_its_lease_ends() {
        let d = Delivery::default();
        let mine = d.leased("a", at(100), Duration::from_secs(30)).unwrap();
        assert!(mine.leased("b", at(129), Duration::from_secs(30)).is_none());
        assert!(
            mine.leased("a", at(129), Duration::from_secs(30)).is_some(),
            "renewed"
        );
        let theirs = mine.leased("b", at(130), Duration::from_secs(30)).unwrap();
        assert_eq!(theirs.lease.unwrap().holder, "b");
    }

    #[test]
    fn a_failing_event_backs_off_then_is_kept_as_failed() {
        let policy = RetryPolicy::new(
            Duration::from_secs(1),
            Duration::from_secs(8),
            Duration::from_secs(60),
        );
        let e = event(7);
        let (d, next) = Delivery::default().failed_attempt(&e, "503", Some(503), at(100), &policy);
        assert_eq!(next, AfterFailure::Retry(Duration::from_secs(1)));
        assert_eq!(d.retry_wait(at(100)), Some(Duration::from_secs(1)));
        assert_eq!(d.retry_wait(at(101)), None, "due for any process");
        let (d, next) = d.failed_attempt(&e, "503", Some(503), at(101), &policy);
        assert_eq!(next, AfterFailure::Retry(Duration::from_secs(2)));
        let (d, next) = d.failed_attempt(&e, "503", Some(503), at(103), &policy);
        assert_eq!(next, AfterFailure::Retry(Duration::from_secs(4)));
        assert_eq!(d.retry_wait(at(104)), Some(Duration::from_secs(3)));
        let (d, next) = d.failed_attempt(&e, "404", Some(404), at(107), &policy);
        assert_eq!(next, AfterFailure::Retry(Duration::from_secs(8)));
        let (d, next) = d.failed_attempt(&e, "503", Some(503), at(115), &policy);
        assert_eq!(next, AfterFailure::Retry(Duration::from_secs(8)), "capped");
        assert_eq!(d.cursor, 0, "not past it while retried");
        let (d, next) = d.failed_attempt(&e, "connection refused\u{1b}[2J", None, at(160), &policy);
        assert_eq!(next, AfterFailure::GivenUp);
        assert_eq!(d.cursor, 7);
        assert_eq!(d.retry, None);
        assert_eq!(d.failed.len(), 1);
        assert_eq!(d.failed[0].attempts, 6);
        assert_eq!(d.failed[0].body, e.to_json());
        assert!(!d.failed[0].error.contains('\u{1b}'), "printable");
        // Sent again: marked, then gone once delivered.
        let marked = d.marked_for_resend(7).unwrap();
        assert_eq!(marked.to_resend().map(|f| f.seq), Some(7));
        assert!(d.marked_for_resend(8).is_none());
        let still = marked.resent(7, Some("500"), at(200));
        assert_eq!((still.failed.len(), still.to_resend()), (1, None));
        assert_eq!(marked.resent(7, None, at(200)).failed, []);
        // A delivery after a retry starts the next event afresh.
        let (d, _) = Delivery::default().failed_attempt(&e, "503", Some(503), at(100), &policy);
        assert_eq!(
            d.delivered(7),
            Delivery {
                cursor: 7,
                ..Delivery::default()
            }
        );
    }

    #[test]
    fn an_event_the_receiver_refuses_is_given_up_after_a_few_attempts() {
        let policy = RetryPolicy::default();
        let e = event(7);
        let mut d = Delivery::default();
        // Refusals count in a row: a 503 between starts them again.
        for (n, status) in [422, 503, 422, 400].into_iter().enumerate() {
            let (next, after) =
                d.failed_attempt(&e, "x", Some(status), at(100 + n as u64), &policy);
            assert!(matches!(after, AfterFailure::Retry(_)), "{status}");
            d = next;
        }
        let (d, after) = d.failed_attempt(&e, "refused", Some(413), at(110), &policy);
        assert_eq!(after, AfterFailure::GivenUp);
        assert_eq!((d.cursor, d.failed.len()), (7, 1));
        // The next event refused too: a receiver refusing everything (a
        // wrong secret answered 400), retried as if it were down.
        let mut next = d.clone();
        for n in 0..10 {
            let (d, after) = next.failed_attempt(&event(8), "x", Some(400), at(120 + n), &policy);
            assert!(matches!(after, AfterFailure::Retry(_)), "attempt {n}");
            next = d;
        }
        assert_eq!(next.failed.len(), 1);
        // Until one is delivered: then a refused event goes soon again.
        let mut after_ok = d.delivered(8);
        assert!(!after_ok.refusing);
        for n in 0..3 {
            after_ok = after_ok
                .failed_attempt(&event(9), "x", Some(422), at(130 + n), &policy)
                .0;
        }
        assert_eq!(after_ok.cursor, 9);
        // The receiver being down or misconfigured holds for every event:
        // retried until the policy gives up.
        for status in [401, 403, 404, 408, 429, 500, 503] {
            assert!(!refuses_event(status), "{status}");
        }
    }

    #[test]
    fn no_policy_retries_in_a_loop() {
        let policy = RetryPolicy::new(Duration::ZERO, Duration::ZERO, Duration::from_secs(60));
        assert_eq!(policy.delay(1), MIN_RETRY_WAIT);
        assert_eq!(policy.delay(9), MIN_RETRY_WAIT);
    }

    #[test]
    fn a_retry_stored_before_its_next_attempt_was_is_due_at_once() {
        let old = br#"{"cursor":3,"lease":null,"retry":{"seq":4,"attempts":2,"since":100,"error":"503"},"failed":[]}"#;
        let d = Delivery::decode(old).unwrap();
        assert_eq!(d.retry.as_ref().unwrap().next_at, Timestamp::UNIX_EPOCH);
        assert_eq!(d.retry_wait(at(100)), None);
    }

    #[test]
    fn the_state_round_trips_and_swaps_only_when_unchanged() {
        let policy = RetryPolicy::default();
        let (mut d, _) = Delivery::default()
            .leased("host 1", at(100), Duration::from_secs(30))
            .unwrap()
            .failed_attempt(&event(3), "x", None, at(100), &policy);
        d.failed.push(FailedEvent {
            seq: 2,
            body: "{\"a\":\"\\u0000\"}".into(),
            attempts: 9,
            failed_at: at(90),
            error: "e".into(),
            resend: true,
        });
        assert_eq!(Delivery::decode(&d.encode()).unwrap(), d);
        let new = d.delivered(3);
        assert_eq!(swap(None, None, &new).unwrap(), Some(new.encode()));
        assert_eq!(
            swap(Some(&d.encode()), Some(&d), &new).unwrap(),
            Some(new.encode())
        );
        assert_eq!(swap(Some(&new.encode()), Some(&d), &new).unwrap(), None);
        assert_eq!(swap(Some(&d.encode()), None, &new).unwrap(), None);
        assert!(swap(Some(b"{"), None, &new).is_err());
        assert!(Delivery::decode(b"{\"cursor\": -1}").is_err());
    }

    #[test]
    fn the_failed_list_is_bounded() {
        let policy = RetryPolicy::new(Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let mut d = Delivery::default();
        for seq in 1..=(MAX_FAILED as u64 + 5) {
            d = d.failed_attempt(&event(seq), "x", None, at(1), &policy).0;
        }
        assert_eq!(d.failed.len(), MAX_FAILED);
        assert_eq!(d.failed[0].seq, 6);
    }
}
