//! Webhooks (feature `webhooks`): each [`Event`](crate::Event) POSTed as JSON to a URL
//! the integrator configures, signed, at least once and in order, by one
//! process at a time.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use pat_core::webhook::Webhook;
//!
//! let store = Arc::new(pat_core::Store::open("pat.redb")?);
//! let secret = std::fs::read("/etc/acme/webhook-secret")?;
//! // Delivers until dropped.
//! let _deliverer = Webhook::new("https://hooks.example/pat", secret)?.start(store)?;
//! # Ok(())
//! # }
//! ```
//!
//! # What a receiver gets
//!
//! `POST` with the body [`Event::to_json`](crate::Event::to_json) and these headers:
//!
//! | Header | Value |
//! |---|---|
//! | `Content-Type` | `application/json` |
//! | [`EVENT_ID_HEADER`] | `evt_SEQ`: the same on every delivery of an event, to act on it once |
//! | [`EVENT_TYPE_HEADER`] | `token.created`, `token.revoked`... |
//! | [`SIGNATURE_HEADER`] | `t=UNIX_SECONDS,v1=HEX`: HMAC-SHA256 with the shared secret over `UNIX_SECONDS.BODY` |
//!
//! A receiver checks the signature ([`verify_signature`]) and refuses a
//! timestamp far from its clock, so that a recorded delivery cannot be
//! replayed later; it answers 2xx once it has the event. Anything else
//! (another status, a redirect, no answer within the timeout) is a failed
//! attempt.
//!
//! # Guarantees
//!
//! - **Nothing lost.** An event is in the store's audit log from the
//!   commit of its change ([`Admin::events`]), and a webhook's cursor
//!   moves past it only once it was delivered or given up, both stored
//!   ([`Admin::swap_delivery`]). A crash, a restart or a receiver down for
//!   hours delays delivery and loses nothing.
//! - **At least once, in order.** Events go one at a time in commit order
//!   (so in order per token); a crash between the receiver's 2xx and the
//!   stored cursor sends that event again, with the same id.
//! - **Retries**, doubling from [`RetryPolicy::first`] up to
//!   [`RetryPolicy::longest`], the next attempt's time stored
//!   ([`Retry::next_at`](crate::Retry::next_at)) so that a restart or a
//!   lease taken over waits for it too; an event still failing after
//!   [`RetryPolicy::give_up_after`] (24 h by default), or refused by the
//!   receiver ([`refuses_event`](crate::refuses_event): 400, 413, 415 or
//!   422) [`REFUSED_ATTEMPTS`](crate::REFUSED_ATTEMPTS) times, is kept as
//!   failed ([`Delivery::failed`]), listed by `pat-cli events --failed`
//!   and sent again by `pat-cli events resend`; the events after it go on.
//!   A receiver answers a bad signature with 401, which is retried (the
//!   secret is wrong for every event), and 400 or 422 only for an event it
//!   will never take.
//! - **One process at a time.** Each replica of a fleet may run the same
//!   webhook: a lease in the store lets one deliver, and another takes over
//!   when it stops renewing (a crash), after [`Webhook::lease`].
//!
//! A new webhook starts at the end of the log: it gets the events that
//! commit after its first start ([`Webhook::from_start`] to get the log's
//! retained past too).

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::backend::admin::Admin;
use crate::error::StoreError;
use crate::model::delivery::{AfterFailure, Delivery, RetryPolicy};
use crate::model::time::Timestamp;

/// The header naming the event: `evt_SEQ`.
pub const EVENT_ID_HEADER: &str = "Pat-Event-Id";
/// The header naming the event's type: `token.revoked`...
pub const EVENT_TYPE_HEADER: &str = "Pat-Event-Type";
/// The header of the signature: `t=UNIX_SECONDS,v1=HEX`.
pub const SIGNATURE_HEADER: &str = "Pat-Signature";
/// The shortest secret a webhook takes: 16 bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// A webhook that cannot be configured as given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The URL is not one to send events to.
    #[error("webhook URL: {0}")]
    Url(String),
    /// The secret is too short.
    #[error("a webhook secret is at least {MIN_SECRET_LEN} bytes (this one has {0})")]
    ShortSecret(usize),
    /// The HTTP client or the deliverer's thread could not be made.
    #[error("starting the webhook deliverer: {0}")]
    Start(String),
}

/// A signature header that does not check out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// Not `t=…,v1=…`.
    #[error("the signature header is not `t=UNIX_SECONDS,v1=HEX`")]
    Malformed,
    /// Its time is further from the receiver's clock than the tolerance.
    #[error("the signature's time is too far from now")]
    Stale,
    /// The HMAC does not match the body.
    #[error("the signature does not match the body")]
    Mismatch,
}

/// The [`SIGNATURE_HEADER`] of `body` sent at `at` (seconds since the
/// epoch) with `secret`.
pub fn sign(secret: &[u8], at: u64, body: &[u8]) -> String {
    sign_with(&[secret], at, body)
}

/// The [`SIGNATURE_HEADER`] with a `v1=` signature by each of `secrets`:
/// during a change of secret, the new one and the old one, so that a
/// receiver that knows either accepts the delivery.
pub fn sign_with(secrets: &[&[u8]], at: u64, body: &[u8]) -> String {
    let mut header = format!("t={at}");
    for secret in secrets {
        let mut mac = keyed(secret);
        mac.update(at.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        header.push_str(",v1=");
        for b in mac.finalize().into_bytes() {
            header.push_str(&format!("{b:02x}"));
        }
    }
    header
}

/// The most `v1=` values a header's check looks at.
const MAX_SIGNATURES: usize = 8;

/// Checks `header` (a [`SIGNATURE_HEADER`]) against `body` and `secret`,
/// with its time at most `tolerance` from `now`: what a receiver does
/// before trusting a delivery. Any of its `v1=` values may match (a
/// sender changing its secret signs with both). Each comparison takes the
/// same time whatever the bytes.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: Timestamp,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let mut at = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => at = v.parse::<u64>().ok(),
            Some(("v1", v)) if tags.len() < MAX_SIGNATURES => tags.extend(decode_hex(v)),
            _ => {}
        }
    }
    let Some(at) = at.filter(|_| !tags.is_empty()) else {
        return Err(SignatureError::Malformed);
    };
    if now.as_unix_secs().abs_diff(at) > tolerance.as_secs() {
        return Err(SignatureError::Stale);
    }
    let mut mac = keyed(secret);
    mac.update(at.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    // Each compared in constant time, and all of them, matched or not.
    let matched = tags.iter().fold(false, |any, tag| {
        any | mac.clone().verify_slice(tag).is_ok()
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn keyed(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length")
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// A webhook, configured; [`start`](Webhook::start) it to deliver.
pub struct Webhook {
    name: String,
    url: reqwest::Url,
    secret: Zeroizing<Vec<u8>>,
    /// The secret being replaced, also signed with while receivers move
    /// to the new one.
    previous: Option<Zeroizing<Vec<u8>>>,
    timeout: Duration,
    retry: RetryPolicy,
    poll: Duration,
    lease: Duration,
    from_start: bool,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// A webhook POSTing to `url` (https, or http to a loopback address),
    /// signing with `secret` (at least [`MIN_SECRET_LEN`] bytes). Its name
    /// in the store, which its delivery state is kept under, is the URL's
    /// origin and a hash of the whole URL ([`Webhook::name`] to choose one).
    pub fn new(url: &str, secret: impl Into<Vec<u8>>) -> Result<Webhook, WebhookError> {
        let secret = Zeroizing::new(secret.into());
        if secret.len() < MIN_SECRET_LEN {
            return Err(WebhookError::ShortSecret(secret.len()));
        }
        // The reason only: the URL may carry the receiver's secret.
        let url = crate::backend::remote::checked_url(url, false).map_err(|e| {
            WebhookError::Url(match e {
                crate::backend::remote::RemoteError::Url { reason, .. } => reason,
                crate::backend::remote::RemoteError::PlainHttp { .. } => {
                    "plain http is only for a loopback address; use https".to_owned()
                }
                other => other.to_string(),
            })
        })?;
        let name = Webhook::name_of(&url);
        Ok(Webhook {
            name,
            url,
            secret,
            previous: None,
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            from_start: false,
        })
    }

    /// The name a webhook to `url` gets by default: its origin and the
    /// first 16 hex digits of the SHA-256 of the whole URL
    /// (`https://hooks.example#9f86d081884c7d65`), so that the path and the
    /// query, where receivers put their secrets, are never stored, logged
    /// or shown, and two URLs never share a cursor.
    fn name_of(url: &reqwest::Url) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(url.as_str().as_bytes());
        let mut name = url.origin().ascii_serialization();
        name.push('#');
        for b in &digest[..8] {
            name.push_str(&format!("{b:02x}"));
        }
        name
    }

    /// Its name in the store (1 to [`MAX_SINK_LEN`](crate::MAX_SINK_LEN)
    /// printable bytes): what `pat-cli events --failed` shows. Two
    /// processes delivering the same name share one cursor and one lease.
    pub fn name(mut self, name: impl Into<String>) -> Result<Webhook, WebhookError> {
        let name = name.into();
        crate::model::delivery::check_sink(&name).map_err(WebhookError::Url)?;
        self.name = name;
        Ok(self)
    }

    /// Its name in the store.
    pub fn name_str(&self) -> &str {
        &self.name
    }

    /// Signs with `secret` too (at least [`MIN_SECRET_LEN`] bytes), the
    /// one being replaced: each delivery carries a `v1=` signature by each
    /// ([`sign_with`]), so that a receiver accepts it with either while it
    /// moves to the new one. Drop it once every receiver has.
    pub fn previous_secret(mut self, secret: impl Into<Vec<u8>>) -> Result<Webhook, WebhookError> {
        let secret = Zeroizing::new(secret.into());
        if secret.len() < MIN_SECRET_LEN {
            return Err(WebhookError::ShortSecret(secret.len()));
        }
        self.previous = Some(secret);
        Ok(self)
    }

    /// How long one attempt may take (10 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Webhook {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// When to try again and give up ([`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Webhook {
        self.retry = retry;
        self
    }

    /// How often it looks for new events while there are none (1 s).
    pub fn poll(mut self, poll: Duration) -> Webhook {
        self.poll = poll.max(Duration::from_millis(10));
        self
    }

    /// How long its lease lasts unrenewed: how soon another process takes
    /// over after this one stops (60 s; at least three timeouts and the
    /// timeout plus 3 s, so that an attempt always ends within the lease it
    /// started under). Leases are read on each process's clock: the
    /// replicas' clocks must agree to within a second.
    pub fn lease(mut self, lease: Duration) -> Webhook {
        self.lease = lease;
        self
    }

    /// Whether a webhook new to the store starts at the start of the
    /// retained log rather than its end (`false`).
    pub fn from_start(mut self, from_start: bool) -> Webhook {
        self.from_start = from_start;
        self
    }

    /// Starts delivering on a thread of its own, until the returned
    /// [`Deliverer`] is dropped.
    pub fn start(self, store: Arc<dyn Admin + Send + Sync>) -> Result<Deliverer, WebhookError> {
        let start = |e: &dyn std::fmt::Display| WebhookError::Start(e.to_string());
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pat-webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| start(&crate::error::chain(&e)))?;
        let stop = Arc::new(Stop::default());
        let holder = format!(
            "pid {} {:016x}",
            std::process::id(),
            crate::TokenId::generate().as_u64()
        );
        // In whole seconds, as stored, and at least an attempt (rounded up)
        // and 3 s: renewed when an attempt could outlast it (see `step`),
        // it then always leaves more than a second past an attempt.
        let ceil = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        let lease = Duration::from_secs(
            ceil(self.lease)
                .max(ceil(self.timeout.saturating_mul(3)))
                .max(ceil(self.timeout) + 3),
        );
        // Looked at often enough to renew the lease before it lapses.
        let poll = self
            .poll
            .min(lease.saturating_sub(Duration::from_secs(ceil(self.timeout) + 2)))
            .max(Duration::from_millis(10));
        // Before it returns, so that every event committed after is
        // delivered.
        let first = || -> Result<(), StoreError> {
            if store.delivery(&self.name)?.is_none() {
                let cursor = if self.from_start {
                    0
                } else {
                    store.last_seq()?
                };
                let state = Delivery {
                    cursor,
                    ..Delivery::default()
                };
                // Lost to another process starting it too: as good.
                store.swap_delivery(&self.name, None, &state)?;
            }
            Ok(())
        };
        first().map_err(|e| start(&crate::error::chain(&e)))?;
        let run = Run {
            hook: self,
            store,
            client,
            holder,
            lease,
            poll,
            stop: stop.clone(),
            counted: std::sync::atomic::AtomicUsize::new(0),
        };
        let thread = std::thread::Builder::new()
            .name("pat-webhook".into())
            // The runtime is made and dropped on this thread: a runtime
            // dropped where a caller's async code runs panics.
            .spawn(move || match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => run.run(&rt),
                Err(e) => tracing::error!(error = %e, "the webhook deliverer cannot start its runtime"),
            })
            .map_err(|e| start(&e))?;
        Ok(Deliverer {
            stop,
            thread: Some(thread),
        })
    }
}

/// A running webhook: delivers until dropped (or [`stop`](Deliverer::stop)ped),
/// which waits for the attempt in progress.
#[derive(Debug)]
pub struct Deliverer {
    stop: Arc<Stop>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Deliverer {
    /// Stops it, after the attempt in progress.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.set();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Deliverer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A stop flag a sleeping thread wakes for.
#[derive(Debug, Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    fn set(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    /// Waits `d` unless stopped first: whether it was stopped.
    fn wait(&self, d: Duration) -> bool {
        let stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let (stopped, _) = self
            .wake
            .wait_timeout_while(stopped, d, |s| !*s)
            .unwrap_or_else(PoisonError::into_inner);
        *stopped
    }
}

/// The deliverer's thread.
struct Run {
    hook: Webhook,
    store: Arc<dyn Admin + Send + Sync>,
    client: reqwest::Client,
    holder: String,
    lease: Duration,
    /// [`Webhook::poll`], short enough to keep the lease.
    poll: Duration,
    stop: Arc<Stop>,
    /// Its part of [`EVENTS_PENDING`](crate::metrics::EVENTS_PENDING).
    counted: std::sync::atomic::AtomicUsize,
}

impl Run {
    fn run(self, rt: &tokio::runtime::Runtime) {
        loop {
            let wait = match self.step(rt) {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(
                        webhook = %self.hook.name,
                        error = %crate::error::chain(&e),
                        "webhook delivery could not read or store its state"
                    );
                    self.poll
                }
            };
            if self.stop.wait(wait) {
                return;
            }
        }
    }

    /// One move: the lease taken or renewed, then one attempt at a
    /// resend or at the next event. How long to wait before the next.
    fn step(&self, rt: &tokio::runtime::Runtime) -> Result<Duration, StoreError> {
        let name = &self.hook.name;
        let Some(stored) = self.store.delivery(name)? else {
            // Stored before `start` returned; gone since only if the
            // state was deleted or the store replaced: from the end of
            // what is there, as a new webhook (not the whole log again).
            let state = Delivery {
                cursor: self.store.last_seq()?,
                ..Delivery::default()
            };
            self.store.swap_delivery(name, None, &state)?;
            return Ok(Duration::ZERO);
        };
        let now = Timestamp::now();
        let Some(leased) = stored.leased(&self.holder, now, self.lease) else {
            // Another process delivers (and counts); look again when its
            // lease may end.
            self.pending(0);
            return Ok(self.poll);
        };
        // Renewed while an attempt could still outlast it: after this, an
        // attempt (at most the timeout, rounded up) ends with more than a
        // second of the lease left, whatever fraction of a second the clock
        // is into (leases are in whole seconds).
        let renew = stored.lease.as_ref().is_none_or(|l| {
            l.holder != self.holder
                || l.until.as_unix_secs() <= now.as_unix_secs() + self.attempt_secs() + 1
        });
        let state = if renew {
            if !self.store.swap_delivery(name, Some(&stored), &leased)? {
                return Ok(Duration::ZERO);
            }
            leased
        } else {
            stored
        };
        if let Some(failed) = state.to_resend() {
            if !self.lease_holds(&state) {
                return Ok(Duration::ZERO);
            }
            let seq = failed.seq;
            let (id, kind) = id_and_type(&failed.body);
            let sent = rt.block_on(self.post(&failed.body, &id, &kind));
            if sent.is_ok() {
                crate::metrics::count_by(crate::metrics::WEBHOOK_DELIVERIES, "result", "resent");
            }
            let error = sent.as_ref().err().map(|f| f.error.as_str());
            let at = Timestamp::now();
            self.commit(&state, |now| (now.resent(seq, error, at), ()))?;
            return Ok(Duration::ZERO);
        }
        // A retry waits for its time whoever delivers (looking again each
        // poll, for a resend and to keep the lease).
        if let Some(wait) = state.retry_wait(Timestamp::now()) {
            return Ok(wait.min(self.poll));
        }
        let mut pending = self
            .store
            .events(state.cursor, crate::metrics::PENDING_COUNTED)?;
        self.pending(pending.len());
        if pending.is_empty() {
            return Ok(self.poll);
        }
        // Reading the events took time: the lease must still outlast the
        // attempt, or another process may be delivering beside this one.
        if !self.lease_holds(&state) {
            return Ok(Duration::ZERO);
        }
        let event = pending.swap_remove(0);
        let body = event.to_json();
        match rt.block_on(self.post(&body, &event.id(), event.kind.as_str())) {
            Ok(()) => {
                crate::metrics::count_by(crate::metrics::WEBHOOK_DELIVERIES, "result", "delivered");
                // Lost only to a process that took the lease over: it may
                // send this event again (at least once).
                self.commit(&state, |now| (now.delivered(event.seq), ()))?;
                Ok(Duration::ZERO)
            }
            Err(Failure { error, status }) => {
                let at = Timestamp::now();
                let after = self
                    .commit(&state, |now| {
                        now.failed_attempt(&event, &error, status, at, &self.hook.retry)
                    })?
                    .unwrap_or(AfterFailure::Retry(Duration::ZERO));
                tracing::info!(
                    webhook = %name,
                    event = %event.id(),
                    error = %crate::printable(&error),
                    "a webhook delivery failed"
                );
                let result = match after {
                    AfterFailure::Retry(_) => "failed",
                    AfterFailure::GivenUp => "given_up",
                };
                crate::metrics::count_by(crate::metrics::WEBHOOK_DELIVERIES, "result", result);
                Ok(match after {
                    // Looked at again each poll meanwhile, for a resend
                    // and the lease; the stored time keeps the wait.
                    AfterFailure::Retry(wait) => wait.min(self.poll),
                    AfterFailure::GivenUp => {
                        tracing::warn!(webhook = %name, event = %event.id(), "a webhook event was given up");
                        Duration::ZERO
                    }
                })
            }
        }
    }

    /// Whether `state`'s lease, this process's, outlasts an attempt begun
    /// now by more than a second.
    fn lease_holds(&self, state: &Delivery) -> bool {
        state.lease.as_ref().is_some_and(|l| {
            l.holder == self.holder
                && l.until.as_unix_secs()
                    > Timestamp::now().as_unix_secs() + self.attempt_secs() + 1
        })
    }

    /// The attempt timeout in whole seconds, rounded up.
    fn attempt_secs(&self) -> u64 {
        let t = self.hook.timeout;
        t.as_secs() + u64::from(t.subsec_nanos() > 0)
    }

    /// Stores `change` of `state`: of the state as it is now if something
    /// else changed it meanwhile while this process still holds the lease
    /// (`pat-cli events resend` marking an event), so that a delivery is
    /// never forgotten, and sent again, for that. `None` (nothing stored)
    /// once another process holds the lease: it goes on from the cursor as
    /// stored, and may send this event again (at least once).
    fn commit<T>(
        &self,
        state: &Delivery,
        change: impl Fn(&Delivery) -> (Delivery, T),
    ) -> Result<Option<T>, StoreError> {
        let name = &self.hook.name;
        let mut expected = state.clone();
        // Bounded: a store that keeps changing under it is answered as
        // lost (the event may be sent again).
        for _ in 0..16 {
            let (next, out) = change(&expected);
            if self.store.swap_delivery(name, Some(&expected), &next)? {
                return Ok(Some(out));
            }
            match self.store.delivery(name)? {
                Some(now) if now.lease.as_ref().is_some_and(|l| l.holder == self.holder) => {
                    expected = now;
                }
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Sets this deliverer's part of the pending gauge to `n`.
    fn pending(&self, n: usize) {
        let before = self.counted.swap(n, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::gauge_add(crate::metrics::EVENTS_PENDING, n as f64 - before as f64);
    }

    /// One attempt: `Err` with what went wrong, never the URL (it may
    /// carry a secret of the receiver's).
    async fn post(&self, body: &str, id: &str, kind: &str) -> Result<(), Failure> {
        let at = Timestamp::now().as_unix_secs();
        let signature = match &self.hook.previous {
            Some(previous) => sign_with(&[&self.hook.secret, previous], at, body.as_bytes()),
            None => sign(&self.hook.secret, at, body.as_bytes()),
        };
        let sent = self
            .client
            .post(self.hook.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, id)
            .header(EVENT_TYPE_HEADER, kind)
            .header(SIGNATURE_HEADER, signature)
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| Failure {
                error: crate::error::chain(&e.without_url()),
                status: None,
            })?;
        let status = sent.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure {
                error: format!("the receiver answered {status}"),
                status: Some(status.as_u16()),
            })
        }
    }
}

/// A failed attempt: what it met, and the receiver's status if it
/// answered.
struct Failure {
    error: String,
    status: Option<u16>,
}

/// A kept body's id and type.
fn id_and_type(body: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let field = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    (field("id"), field("type"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_checks_out_only_for_its_body_secret_and_time() {
        let secret = b"0123456789abcdef";
        let now = Timestamp::from_unix_secs(1_800_000_000).unwrap();
        let header = sign(secret, now.as_unix_secs(), b"{\"a\":1}");
        assert!(header.starts_with("t=1800000000,v1="), "{header}");
        let tolerance = Duration::from_secs(300);
        let check = |h: &str, body: &[u8], key: &[u8], at: u64| {
            verify_signature(
                key,
                h,
                body,
                Timestamp::from_unix_secs(at).unwrap(),
                tolerance,
            )
        };
        assert_eq!(check(&header, b"{\"a\":1}", secret, 1_800_000_100), Ok(()));
        assert_eq!(
            check(&header, b"{\"a\":2}", secret, 1_800_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&header, b"{\"a\":1}", b"another secret!!", 1_800_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&header, b"{\"a\":1}", secret, 1_800_000_301),
            Err(SignatureError::Stale)
        );
        // The time is signed: moved, it no longer matches.
        let moved = header.replace("t=1800000000", "t=1800000001");
        assert_eq!(
            check(&moved, b"{\"a\":1}", secret, 1_800_000_000),
            Err(SignatureError::Mismatch)
        );
        // Two signatures, during a change of secret: either secret checks.
        let both = sign_with(
            &[secret, b"the old secret!!"],
            now.as_unix_secs(),
            b"{\"a\":1}",
        );
        assert!(both.starts_with(&header), "the new one first: {both}");
        for key in [&secret[..], b"the old secret!!"] {
            assert_eq!(check(&both, b"{\"a\":1}", key, 1_800_000_000), Ok(()));
        }
        assert_eq!(
            check(&both, b"{\"a\":1}", b"neither secret!!", 1_800_000_000),
            Err(SignatureError::Mismatch)
        );
        let plus = format!("t=1800000000,v1=+{}", &"0".repeat(63));
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1800000000,v1=zz", &plus] {
            assert_eq!(
                check(bad, b"", secret, 1_800_000_000),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_webhook_takes_only_safe_urls_and_long_secrets() {
        let secret = [7u8; 16];
        assert!(matches!(
            Webhook::new("https://hooks.example/a", [1u8; 15]),
            Err(WebhookError::ShortSecret(15))
        ));
        assert!(matches!(
            Webhook::new("http://hooks.example/a", secret),
            Err(WebhookError::Url(_))
        ));
        assert!(matches!(
            Webhook::new("ftp://hooks.example/a", secret),
            Err(WebhookError::Url(_))
        ));
        let local = Webhook::new("http://127.0.0.1:9/hook/s3cret?key=s3cret", secret).unwrap();
        let other = Webhook::new("http://127.0.0.1:9/hook/s3cret?key=other", secret).unwrap();
        assert!(
            local.name_str().starts_with("http://127.0.0.1:9#"),
            "{}",
            local.name_str()
        );
        assert!(!local.name_str().contains("s3cret"));
        assert_ne!(
            local.name_str(),
            other.name_str(),
            "no two URLs share a cursor"
        );
        let refused = Webhook::new("https://user:s3cret@hooks.example/x", secret).unwrap_err();
        assert!(!refused.to_string().contains("s3cret"), "{refused}");
        let shown = format!("{local:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("[7, 7"),
            "{shown}"
        );
        assert!(local.name("a\nb").is_err());
    }
}
