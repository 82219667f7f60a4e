//! What pat counts, through the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`): the integrator installs the exporter it likes (a
//! Prometheus one, StatsD, OpenTelemetry) and pat records into it. Without
//! the feature, or without a recorder, nothing is recorded and the request
//! path pays one branch per count.
//!
//! Install the recorder before opening the store and building a
//! [`Gate`](crate::Gate) (or an adapter's layer): the store's cache and the
//! gate take their handles once, when they are made, so that a request
//! never looks a metric up by name; a store opened earlier counts no
//! evictions or unknown hits. Call [`describe`] once
//! the recorder is installed, so that the exporter has each metric's help
//! text and unit.
//!
//! Names and labels follow the Prometheus conventions (`_total` counters,
//! base units, `snake_case`). No label takes a value a client chooses: no
//! token id, user name or address is ever a label, only the fixed sets
//! below.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `pat_authentications_total` | counter | `result`, `scheme` |
//! | `pat_authentication_duration_seconds` | histogram (sampled) | |
//! | `pat_cache_lookups_total` | counter | `result`: `hit`, `miss` |
//! | `pat_cache_evictions_total` | counter | |
//! | `pat_unknown_cache_hits_total` | counter | |
//! | `pat_flush_duration_seconds` | histogram | `backend` |
//! | `pat_flush_failures_total` | counter | `backend` |
//! | `pat_postgres_pool_wait_seconds` | histogram | `connection`: `read`, `write` |
//! | `pat_postgres_listener_reconnects_total` | counter | |
//! | `pat_postgres_notification_lag_seconds` | histogram | |
//! | `pat_remote_requests_total` | counter | `result`: `ok`, `error` |
//! | `pat_remote_request_duration_seconds` | histogram | |
//! | `pat_leak_reports_total` | counter | `result`: `revoked`, `unknown`, `failed` |
//! | `pat_webhook_deliveries_total` | counter | `result`: `delivered`, `failed`, `given_up`, `resent` |
//! | `pat_webhook_events_pending` | gauge | |
//!
//! `result` of an authentication is one of [`RESULTS`]: `authenticated`,
//! `anonymous` (optional mode, no credentials of ours), `rate_limited`
//! (the rate-limit refusals), `unavailable` (the backend did not answer),
//! `cancelled` (the request was dropped while the backend was still
//! answering: a client that gave up on a slow backend) or the refusal's
//! reason (`missing_credentials`, `invalid_request`,
//! `not_a_token`, `malformed`, `unknown`, `expired`, `disabled`,
//! `address_not_allowed`, `wrong_user`, `used_up`); `scheme` is `bearer`,
//! `basic`, `password` (a [`Logins`](crate::Logins) check: an SFTP login
//! or a session's recheck) or `none` (no credentials, or a header that
//! could not be read).
//! The decision's duration is sampled: one decision in
//! [`LATENCY_SAMPLE`] on each thread is timed, so that the request path
//! reads the clock twice only that often. `backend` is `redb` or
//! `postgres`.

use crate::gate::Outcome;

/// Authentication outcomes, by `result` and `scheme`.
pub const AUTHENTICATIONS: &str = "pat_authentications_total";
/// How long the gate took to decide, in seconds (sampled).
pub const AUTHENTICATION_DURATION: &str = "pat_authentication_duration_seconds";
/// Token checks the backend answered from memory (`hit`) or had to read
/// for (`miss`).
pub const CACHE_LOOKUPS: &str = "pat_cache_lookups_total";
/// Records the backend's cache let go of to stay within its capacity.
pub const CACHE_EVICTIONS: &str = "pat_cache_evictions_total";
/// Digests answered unknown from memory, without a read.
pub const UNKNOWN_CACHE_HITS: &str = "pat_unknown_cache_hits_total";
/// How long a write of the buffered uses took, in seconds.
pub const FLUSH_DURATION: &str = "pat_flush_duration_seconds";
/// Writes of the buffered uses that failed (they are kept for the next).
pub const FLUSH_FAILURES: &str = "pat_flush_failures_total";
/// How long a PostgreSQL statement waited for its connection, in
/// seconds: a pooled reader's slot (`read`) or the one writer (`write`).
pub const POOL_WAIT: &str = "pat_postgres_pool_wait_seconds";
/// How late a replica heard of another's change (its `NOTIFY`), in
/// seconds: from the sender's clock as it queued the notification (just
/// before its commit) to this replica's as it dropped the changed records.
/// The replicas' clock skew counts in it.
pub const NOTIFICATION_LAG: &str = "pat_postgres_notification_lag_seconds";
/// Times the PostgreSQL listener lost its connection and made another.
pub const LISTENER_RECONNECTS: &str = "pat_postgres_listener_reconnects_total";
/// Round trips of the remote verifier to its introspection endpoint.
pub const REMOTE_REQUESTS: &str = "pat_remote_requests_total";
/// How long a remote verifier's round trip took, in seconds.
pub const REMOTE_DURATION: &str = "pat_remote_request_duration_seconds";
/// Tokens reported leaked (by a secret scanner, or anyone on the public
/// route), by what became of them: `revoked`, `unknown` (no live token of
/// this store's) or `failed` (the store did not answer).
pub const LEAK_REPORTS: &str = "pat_leak_reports_total";
/// Webhook delivery attempts, by what came of them: `delivered` (a 2xx),
/// `failed` (to be retried), `given_up` (kept as failed, the stream goes
/// on), `resent` (a failed event sent again on request and delivered).
pub const WEBHOOK_DELIVERIES: &str = "pat_webhook_deliveries_total";
/// The events after a webhook's cursor when its deliverer last looked, up
/// to [`PENDING_COUNTED`] (which then means that many or more), summed
/// over the webhooks this process delivers.
pub const EVENTS_PENDING: &str = "pat_webhook_events_pending";
/// The most pending events a deliverer counts.
pub const PENDING_COUNTED: usize = 100;

/// One decision in this many is timed, on each thread.
pub const LATENCY_SAMPLE: u32 = 64;

/// Every value of an authentication's `result` label.
pub const RESULTS: [&str; 15] = [
    "authenticated",
    "anonymous",
    "missing_credentials",
    "invalid_request",
    "not_a_token",
    "malformed",
    "unknown",
    "expired",
    "disabled",
    "address_not_allowed",
    "wrong_user",
    "used_up",
    "rate_limited",
    "unavailable",
    "cancelled",
];

/// Every value of an authentication's `scheme` label.
pub const SCHEMES: [&str; 4] = ["bearer", "basic", "password", "none"];

/// Gives the installed recorder each metric's help text and unit; call it
/// once, after installing the recorder. A no-op without the feature.
pub fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{Unit, describe_counter, describe_histogram};
        describe_counter!(
            AUTHENTICATIONS,
            Unit::Count,
            "Authentication decisions, by result and scheme."
        );
        describe_histogram!(
            AUTHENTICATION_DURATION,
            Unit::Seconds,
            "Time the gate took to decide a request (one decision in 64 per thread)."
        );
        describe_counter!(
            CACHE_LOOKUPS,
            Unit::Count,
            "Token checks answered from the backend's memory (hit) or read (miss)."
        );
        describe_counter!(
            CACHE_EVICTIONS,
            Unit::Count,
            "Records the cache let go of to stay within its capacity."
        );
        describe_counter!(
            UNKNOWN_CACHE_HITS,
            Unit::Count,
            "Unknown digests answered from memory without a read."
        );
        describe_histogram!(
            FLUSH_DURATION,
            Unit::Seconds,
            "Time a write of the buffered token uses took."
        );
        describe_counter!(
            FLUSH_FAILURES,
            Unit::Count,
            "Writes of the buffered token uses that failed."
        );
        describe_histogram!(
            POOL_WAIT,
            Unit::Seconds,
            "Time a PostgreSQL statement waited for its connection (read: a pooled one; write: the writer)."
        );
        describe_histogram!(
            NOTIFICATION_LAG,
            Unit::Seconds,
            "How late this replica heard of another's change (clock skew included)."
        );
        describe_counter!(
            LISTENER_RECONNECTS,
            Unit::Count,
            "Times the PostgreSQL listener reconnected."
        );
        describe_counter!(
            REMOTE_REQUESTS,
            Unit::Count,
            "Round trips to the introspection endpoint, by result."
        );
        describe_histogram!(
            REMOTE_DURATION,
            Unit::Seconds,
            "Time a round trip to the introspection endpoint took."
        );
        describe_counter!(
            LEAK_REPORTS,
            Unit::Count,
            "Leaked tokens reported, by what became of them."
        );
        describe_counter!(
            WEBHOOK_DELIVERIES,
            Unit::Count,
            "Webhook delivery attempts, by what came of them."
        );
        metrics::describe_gauge!(
            EVENTS_PENDING,
            Unit::Count,
            "Events not yet delivered to a webhook, as its deliverer last counted (up to 100 each)."
        );
    }
}

/// The `result` label of an outcome: an index into [`RESULTS`].
#[cfg(feature = "metrics")]
pub(crate) fn result_of(outcome: &Outcome) -> usize {
    use crate::gate::{RejectReason, TokenProblem};
    match outcome {
        Outcome::Authenticated(_) => 0,
        Outcome::Anonymous => 1,
        Outcome::Rejected(rejection) => match rejection.reason() {
            RejectReason::MissingCredentials => 2,
            RejectReason::InvalidRequest(_) => 3,
            RejectReason::InvalidToken(problem) => match problem {
                TokenProblem::NotAToken => 4,
                TokenProblem::Malformed => 5,
                TokenProblem::Unknown => 6,
                TokenProblem::Expired => 7,
                TokenProblem::Disabled => 8,
                TokenProblem::AddressNotAllowed => 9,
                TokenProblem::WrongUser => 10,
                TokenProblem::UsedUp => 11,
            },
            RejectReason::RateLimited(_) => 12,
            RejectReason::StoreUnavailable => 13,
        },
    }
}

/// The scheme a request's credentials used, for the `scheme` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Bearer = 0,
    Basic = 1,
    Password = 2,
    None = 3,
}

/// The gate's handles, taken once when it is built.
#[derive(Clone, Default)]
pub(crate) struct GateMetrics {
    #[cfg(feature = "metrics")]
    handles: Option<std::sync::Arc<Handles>>,
}

#[cfg(feature = "metrics")]
struct Handles {
    outcomes: Vec<metrics::Counter>,
    duration: metrics::Histogram,
    hits: metrics::Counter,
    misses: metrics::Counter,
}

/// When a sampled decision began: `None` for the others.
pub(crate) type Started = Option<std::time::Instant>;

impl GateMetrics {
    /// The handles of the recorder installed now (none: nothing recorded).
    pub(crate) fn new() -> GateMetrics {
        #[cfg(feature = "metrics")]
        {
            let outcomes = RESULTS
                .iter()
                .flat_map(|result| {
                    SCHEMES.iter().map(move |scheme| {
                        metrics::counter!(AUTHENTICATIONS, "result" => *result, "scheme" => *scheme)
                    })
                })
                .collect();
            GateMetrics {
                handles: Some(std::sync::Arc::new(Handles {
                    outcomes,
                    duration: metrics::histogram!(AUTHENTICATION_DURATION),
                    hits: metrics::counter!(CACHE_LOOKUPS, "result" => "hit"),
                    misses: metrics::counter!(CACHE_LOOKUPS, "result" => "miss"),
                })),
            }
        }
        #[cfg(not(feature = "metrics"))]
        GateMetrics::default()
    }

    /// The start of a decision, if this one is sampled.
    #[inline]
    pub(crate) fn start(&self) -> Started {
        #[cfg(feature = "metrics")]
        if self.handles.is_some() {
            thread_local! {
                static COUNT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
            }
            let n = COUNT.with(|c| {
                let n = c.get().wrapping_add(1);
                c.set(n);
                n
            });
            if n.is_multiple_of(LATENCY_SAMPLE) {
                return Some(std::time::Instant::now());
            }
        }
        None
    }

    /// Counts a decision's outcome (and its duration, if sampled).
    #[inline]
    pub(crate) fn decided(&self, outcome: &Outcome, scheme: Scheme, started: Started) {
        #[cfg(feature = "metrics")]
        if let Some(handles) = &self.handles {
            let i = result_of(outcome) * SCHEMES.len() + scheme as usize;
            handles.outcomes[i].increment(1);
            if let Some(started) = started {
                handles.duration.record(started.elapsed().as_secs_f64());
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (outcome, scheme, started);
    }

    /// Counts a decision dropped before the backend answered.
    #[cold]
    pub(crate) fn cancelled(&self, scheme: Scheme) {
        #[cfg(feature = "metrics")]
        if let Some(handles) = &self.handles {
            let i = (RESULTS.len() - 1) * SCHEMES.len() + scheme as usize;
            handles.outcomes[i].increment(1);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = scheme;
    }

    /// Counts a token check the backend answered from memory, or not.
    #[inline]
    pub(crate) fn looked_up(&self, hit: bool) {
        #[cfg(feature = "metrics")]
        if let Some(handles) = &self.handles {
            match hit {
                true => handles.hits.increment(1),
                false => handles.misses.increment(1),
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = hit;
    }
}

/// A counter's handle, taken once (for counts on the request path, which
/// must not look a metric up by name).
#[cfg_attr(
    not(any(all(unix, feature = "redb"), feature = "postgres", feature = "remote")),
    allow(dead_code)
)]
#[derive(Clone, Default)]
pub(crate) struct Count {
    #[cfg(feature = "metrics")]
    counter: Option<metrics::Counter>,
}

#[cfg_attr(
    not(any(all(unix, feature = "redb"), feature = "postgres", feature = "remote")),
    allow(dead_code)
)]
impl Count {
    /// The handle of counter `name` in the recorder installed now.
    pub(crate) fn new(name: &'static str) -> Count {
        #[cfg(feature = "metrics")]
        return Count {
            counter: Some(metrics::counter!(name)),
        };
        #[cfg(not(feature = "metrics"))]
        {
            let _ = name;
            Count {}
        }
    }

    /// Adds `n`.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        #[cfg(feature = "metrics")]
        if let Some(counter) = &self.counter {
            counter.increment(n);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = n;
    }
}

impl std::fmt::Debug for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Count")
    }
}

/// Counts one of the counter `name` (off the request path: looked up by
/// name each time).
#[inline]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn count(name: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(name).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = name;
}

/// Records a write of the buffered uses by `backend` that began at
/// `started` and ended with `result` (how many it wrote): its duration, and
/// whether it failed. A flush that found nothing to write is no write.
#[cfg_attr(
    not(any(all(unix, feature = "redb"), feature = "postgres", feature = "remote")),
    allow(dead_code)
)]
pub(crate) fn flushed<E>(
    backend: &'static str,
    started: std::time::Instant,
    result: &Result<usize, E>,
) {
    match result {
        Ok(0) => {}
        Ok(_) => observe(FLUSH_DURATION, ("backend", backend), started.elapsed()),
        Err(_) => {
            observe(FLUSH_DURATION, ("backend", backend), started.elapsed());
            count_by(FLUSH_FAILURES, "backend", backend);
        }
    }
}

/// Counts one of the counter `name` with one label.
#[inline]
pub(crate) fn count_by(name: &'static str, label: &'static str, value: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(name, label => value).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (name, label, value);
}

/// Moves the gauge `name` by `delta`.
#[cfg_attr(not(feature = "webhooks"), allow(dead_code))]
pub(crate) fn gauge_add(name: &'static str, delta: f64) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(name).increment(delta);
    #[cfg(not(feature = "metrics"))]
    let _ = (name, delta);
}

/// Records `seconds` in the histogram `name` with one label (or none,
/// with `label` empty).
#[cfg_attr(
    not(any(all(unix, feature = "redb"), feature = "postgres", feature = "remote")),
    allow(dead_code)
)]
#[inline]
pub(crate) fn observe(
    name: &'static str,
    label: (&'static str, &'static str),
    seconds: std::time::Duration,
) {
    #[cfg(feature = "metrics")]
    match label {
        ("", _) => metrics::histogram!(name).record(seconds.as_secs_f64()),
        (key, value) => metrics::histogram!(name, key => value).record(seconds.as_secs_f64()),
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (name, label, seconds);
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;

    #[test]
    fn every_result_has_a_label_and_no_two_share_one() {
        let mut seen = std::collections::BTreeSet::new();
        for r in RESULTS {
            assert!(
                r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{r}"
            );
            assert!(seen.insert(r), "{r} twice");
        }
    }
}
