//! [`RemoteVerifier`]: a backend that asks a pat introspection endpoint
//! instead of a store, so a service can sit behind the PAT layer with no
//! database access and no copy of the tokens.
//!
//! Each lookup the cache cannot answer is a `POST` to the endpoint (see
//! [`crate::routes::introspection`]) carrying the token's digest (`token_digest`,
//! never the token: the verifier never sees it, and a digest cannot be
//! replayed as a credential), the HTTP Basic user name if any
//! (`username`), and the verifier's own token as `Authorization: Bearer`.
//! The endpoint's server must allow that token's user to introspect.
//!
//! # Staleness
//! Answers are cached, active and inactive alike, for the TTL
//! ([`RemoteVerifierBuilder::ttl`], default 2 s), in two bounded maps
//! ([`RemoteVerifierBuilder::capacity`] each, cleared when full): one of
//! identities, one of refusals, so that a flood of made-up tokens (anyone
//! can compute a checksum) only ever clears the refusals, never the
//! identities of tokens in use. So:
//! - a token revoked at the endpoint may still be accepted here for up to
//!   the TTL;
//! - a sliding token's use is reported to the endpoint at most once per TTL
//!   (each introspection counts as a use unless the endpoint says
//!   otherwise), so keep the TTL well below your shortest sliding window;
//! - a cached identity is never used past its own `exp`: the endpoint is
//!   asked again (a sliding token may have moved);
//! - an answer for a token with a use quota is never cached: each use is
//!   two round trips. The first (`pat_spend=later`) checks the token and
//!   spends nothing, so a use the service's gate then refuses (its rate
//!   limit) costs no use; the second, once the gate let the use through
//!   ([`Verifier::spend`]), has the endpoint check it again and spend it,
//!   so the quota is exact here too. A session's recheck
//!   ([`Logins::recheck`](crate::Logins::recheck)) asks once, with
//!   `pat_spend=no`, and spends nothing. Both trips count against the
//!   in-flight bound and record a use at the endpoint. An endpoint of an
//!   older pat spends in the first round trip (its answer says so by not
//!   saying `pat_spent`); the second is then skipped.
//!
//! # Load on the endpoint
//! Lookups that miss the cache for the same digest (and user name) while a
//! request for it is under way wait for that request's answer rather than
//! sending their own, and at most
//! [`RemoteVerifierBuilder::max_in_flight`] requests (default 64) are under
//! way at once.
//!
//! # Failure
//! An endpoint that cannot be reached, times out
//! ([`RemoteVerifierBuilder::timeout`], default 2 s), answers anything but
//! 200 with an RFC 7662 body, or refuses this verifier's own token, gives
//! [`AuthError::Store`]: the adapters answer `503` with `Retry-After`,
//! never 401 (the presented token may be fine). Cached answers keep working
//! up to the TTL meanwhile, and the verifier recovers by itself.
//!
//! # Transport
//! Requests go through [`reqwest`] on the verifier's own small runtime, so
//! lookups can be awaited from any executor. This crate enables no TLS
//! backend: for `https://` endpoints enable one in your own manifest
//! (`reqwest = { version = "0.13", features = ["rustls"] }`, which Cargo
//! merges into this build), or pass a client configured as you need with
//! [`RemoteVerifierBuilder::client`]. Plain `http://` is refused for
//! anything but a loopback address unless
//! [`RemoteVerifierBuilder::allow_plain_http`] says so: this verifier's
//! own token would cross the network in clear.
//!
//! ```no_run
//! use std::sync::Arc;
//! use pat_core::{Gate, TokenSecret, remote::RemoteVerifier};
//!
//! let caller = TokenSecret::parse(&std::env::var("PAT_VERIFIER_TOKEN")?)?;
//! let verifier = RemoteVerifier::builder().connect("http://127.0.0.1:8080/introspect", &caller)?;
//! let gate = Gate::new(Arc::new(verifier));
//! # let _ = gate;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
mod wire;

pub use self::builder::RemoteVerifierBuilder;
#[cfg(feature = "webhooks")]
pub(crate) use self::builder::checked_url;
use self::wire::{form_encode, parse_answer};

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use http::HeaderValue;

use crate::backend::{Lookup, Verification, Verifier};
use crate::error::{AuthError, BackendError, StoreError};
use crate::model::network::Cidr;
use crate::model::prefix::Prefixes;
use crate::model::record::Identity;
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenSecret};

/// Default time an endpoint's answer is reused for.
pub const DEFAULT_TTL: Duration = Duration::from_secs(2);
/// Default number of answers kept.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Default deadline of one request to the endpoint.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of requests to the endpoint under way at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// Why a [`RemoteVerifier`] could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The endpoint is not an absolute `http://` or `https://` URL.
    #[error(
        "introspection endpoint `{}`: {reason}",
        crate::model::text::printable(url)
    )]
    Url {
        /// The URL as given (it carries no secret).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Plain HTTP to a host that is not a loopback address.
    #[error(
        "introspection endpoint `{}` is plain http to a host that is not loopback: the \
         verifier's token would cross the network in clear; use https, or allow plain http \
         explicitly",
        crate::model::text::printable(url)
    )]
    PlainHttp {
        /// The URL as given.
        url: String,
    },
    /// The HTTP client or its runtime could not be built.
    #[error("could not build the HTTP client")]
    Client(#[source] BackendError),
}

/// Checks presented tokens by asking a pat introspection endpoint, with a
/// short-lived bounded cache; see the [module documentation](self) for the
/// staleness it allows and how failures are answered.
pub struct RemoteVerifier {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    _runtime: crate::backend::block_on::OwnedRuntime,
}

impl fmt::Debug for RemoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteVerifier")
            .field("endpoint", &self.shared.endpoint.as_str())
            .field("ttl", &self.shared.ttl)
            .field("cached", &self.cached())
            .finish_non_exhaustive()
    }
}

struct Shared {
    endpoint: reqwest::Url,
    /// The endpoint's store's token prefixes: as this verifier was told,
    /// and as the endpoint's answers say since.
    prefixes: Prefixes,
    client: reqwest::Client,
    /// `Bearer <the verifier's token>`, marked sensitive.
    authorization: HeaderValue,
    timeout: Duration,
    ttl: Duration,
    capacity: usize,
    /// Active answers: tokens in use.
    active: papaya::HashMap<TokenDigest, Answer, std::hash::RandomState>,
    /// Refusals, apart from `active`: their digests are the client's choice.
    refused: papaya::HashMap<TokenDigest, Answer, std::hash::RandomState>,
    /// Lookups waiting for a round trip already on its way, by what it asks.
    /// Taken on a miss only (a round trip follows), never on a hit.
    waiting: std::sync::Mutex<HashMap<Asked, Vec<Waiter>>>,
    /// Round trips allowed at once.
    in_flight: tokio::sync::Semaphore,
}

/// What a round trip asks: a digest, for a user name or none, from a
/// client address or none, for a use or a session's recheck.
type Asked = (TokenDigest, Option<CompactString>, Option<IpAddr>, bool);

/// A lookup waiting for another's round trip: the answer, or why there is
/// none (a [`StoreError`] is not `Clone`; each waiter gets its own).
type Waiter = tokio::sync::oneshot::Sender<Result<Said, String>>;

/// What a round trip learnt: the answer and the token's address rule.
type Learnt = (Said, Vec<Cidr>);

/// Hands a round trip's answer to the lookups waiting for it, when dropped.
struct Reply<'a> {
    shared: &'a Shared,
    asked: &'a Asked,
    answer: Result<Said, String>,
}

impl Drop for Reply<'_> {
    fn drop(&mut self) {
        let waiters = self
            .shared
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(self.asked)
            .unwrap_or_default();
        // A use of a quota was spent for one lookup only (by an endpoint
        // that spends as it answers): the others ask again, each for its
        // own.
        let spent_once =
            matches!(&self.answer, Ok(Said::Active(identity)) if identity.is_quota_spent());
        for (i, waiter) in waiters.into_iter().enumerate() {
            let answer = match i {
                0 => self.answer.clone(),
                _ if spent_once => Ok(Said::Again),
                _ => self.answer.clone(),
            };
            let _ = waiter.send(answer);
        }
    }
}

/// One endpoint answer about a digest, for the user name it was asked with.
struct Answer {
    user: Option<CompactString>,
    said: Said,
    /// The token's address rule, applied to every use this answer serves.
    allow_from: Vec<Cidr>,
    at: Instant,
}

/// What the endpoint said about a digest.
#[derive(Clone, Debug, PartialEq)]
enum Said {
    Active(Identity),
    /// No such token (or a reason this endpoint does not give).
    Unknown,
    Expired(Timestamp),
    WrongUser,
    /// Disabled until an admin enables it.
    Disabled,
    /// Not from the client it was asked for (never cached: another client
    /// may be allowed).
    AddressNotAllowed,
    /// Its use quota is spent.
    UsedUp,
    /// Not an answer: the round trip this lookup waited for spent a use of
    /// the token's quota for another lookup (an endpoint of an older pat);
    /// ask again.
    Again,
}

impl Said {
    fn into_result(self) -> Result<Identity, AuthError> {
        match self {
            Said::Active(identity) => Ok(identity),
            Said::Unknown => Err(AuthError::Unknown),
            Said::Expired(expires_at) => Err(AuthError::Expired { expires_at }),
            Said::WrongUser => Err(AuthError::WrongUser),
            Said::Disabled => Err(AuthError::Disabled),
            Said::AddressNotAllowed => Err(AuthError::AddressNotAllowed),
            Said::UsedUp => Err(AuthError::UsedUp),
            // Never handed on (the lookup asks again); refused if it were.
            Said::Again => Err(AuthError::Unknown),
        }
    }
}

impl RemoteVerifier {
    /// Options.
    pub fn builder() -> RemoteVerifierBuilder {
        RemoteVerifierBuilder::default()
    }

    /// A verifier with the default options; see
    /// [`RemoteVerifierBuilder::connect`].
    pub fn connect(url: &str, token: &TokenSecret) -> Result<RemoteVerifier, RemoteError> {
        RemoteVerifierBuilder::default().connect(url, token)
    }

    /// How many answers are cached, active and refused.
    pub fn cached(&self) -> usize {
        self.shared.active.len() + self.shared.refused.len()
    }

    /// How many active answers (identities) are cached.
    pub fn cached_active(&self) -> usize {
        self.shared.active.len()
    }
}

impl Verifier for RemoteVerifier {
    #[inline]
    fn prefixes(&self) -> &Prefixes {
        &self.shared.prefixes
    }

    #[inline]
    fn verify_cached(&self, lookup: Lookup<'_>) -> Option<Result<Identity, AuthError>> {
        self.shared.cached(&lookup, false)
    }

    fn verify(&self, lookup: Lookup<'_>) -> Verification {
        if let Some(result) = self.shared.cached(&lookup, true) {
            return Verification::Ready(result);
        }
        let asked: Asked = (
            *lookup.digest(),
            lookup.user().map(CompactString::new),
            lookup.client(),
            lookup.is_recheck(),
        );
        let mut rx = self.shared.wait_for(&self.handle, asked.clone());
        let (shared, handle) = (self.shared.clone(), self.handle.clone());
        Verification::pending(async move {
            loop {
                return match rx.await {
                    // A token with a quota: each use its own round trip.
                    Ok(Ok(Said::Again)) => {
                        rx = shared.wait_for(&handle, asked.clone());
                        continue;
                    }
                    Ok(Ok(said)) => match (said, &asked.1) {
                        // The endpoint checks the name; this is defence in depth.
                        (Said::Active(identity), Some(user)) if user != identity.user() => {
                            Err(AuthError::WrongUser)
                        }
                        (said, _) => said.into_result(),
                    },
                    Ok(Err(why)) => Err(AuthError::Store(failure(&why))),
                    Err(_) => Err(AuthError::Store(failure("the verifier stopped"))),
                };
            }
        })
    }

    /// A second round trip, without `pat_spend=no`: the endpoint checks
    /// the token again on its store and spends the use, or refuses it
    /// (another replica's request took the last one). Nothing to do when
    /// the first answer spent it already (an endpoint of an older pat).
    fn spend(&self, identity: Identity, _now: Timestamp) -> Verification {
        let Some(digest) = identity.presented().copied() else {
            // The gate notes the digest before it spends: without it there
            // is nothing to ask about.
            return Verification::Ready(Err(AuthError::Unknown));
        };
        if identity.is_quota_spent() {
            // Spent once: a later spend of this identity is a use of its own.
            return Verification::Ready(Ok(identity.with_quota_unspent()));
        }
        let shared = self.shared.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.handle.spawn(async move {
            let _ = tx.send(shared.spend_round_trip(digest, identity).await);
        });
        Verification::pending(async move {
            rx.await
                .unwrap_or_else(|_| Err(AuthError::Store(failure("the verifier stopped"))))
        })
    }
}

impl Shared {
    /// The answer to `asked`, once the endpoint gave it: one round trip per
    /// digest and name at a time, so a burst of requests with a token not
    /// yet cached waits for the first one's answer.
    fn wait_for(
        self: &Arc<Self>,
        handle: &tokio::runtime::Handle,
        asked: Asked,
    ) -> tokio::sync::oneshot::Receiver<Result<Said, String>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let first = {
            let mut waiting = self
                .waiting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let waiters = waiting.entry(asked.clone()).or_default();
            waiters.push(tx);
            waiters.len() == 1
        };
        if first {
            let shared = self.clone();
            handle.spawn(async move { shared.ask(asked).await });
        }
        rx
    }

    /// The cached answer for this lookup, if one is fresh and still says
    /// something about it; a cached refusal only with `refusals` (not for
    /// `verify_cached`: a caller of `verify` may have asked about a digest
    /// no token check vouched for).
    fn cached(&self, lookup: &Lookup<'_>, refusals: bool) -> Option<Result<Identity, AuthError>> {
        let (active, refused) = (self.active.pin(), self.refused.pin());
        let answer = match active.get(lookup.digest()) {
            Some(answer) => answer,
            None if refusals => refused.get(lookup.digest())?,
            None => return None,
        };
        if answer.at.elapsed() >= self.ttl {
            return None;
        }
        match &answer.said {
            // A deadline passed: ask again (a sliding token may have moved).
            Said::Active(identity) if lookup.now() >= identity.expires_at() => None,
            Said::Active(identity) => Some(match lookup.user() {
                Some(user) if user != identity.user() => Err(AuthError::WrongUser),
                // The token's address rule, at this side: the answer was
                // given for another request's client.
                _ if !answer.allow_from.is_empty()
                    && !lookup
                        .client()
                        .is_some_and(|c| answer.allow_from.iter().any(|n| n.contains(c))) =>
                {
                    Err(AuthError::AddressNotAllowed)
                }
                _ => Ok(identity.clone()),
            }),
            // Used up refuses a use, never a session's recheck (its login
            // spent one): the endpoint is asked.
            Said::UsedUp if lookup.is_recheck() => None,
            // A refusal holds for the name it was asked with only.
            refused => {
                (answer.user.as_deref() == lookup.user()).then(|| refused.clone().into_result())
            }
        }
    }

    /// The round trip that spends `identity`'s use of its quota (see
    /// [`RemoteVerifier::spend`]): never shared with another lookup, never
    /// cached.
    async fn spend_round_trip(
        &self,
        digest: TokenDigest,
        identity: Identity,
    ) -> Result<Identity, AuthError> {
        let user = identity.user();
        let client = identity.client();
        let answer = self
            .introspect(&digest, Some(user), client, Spend::Now)
            .await;
        match answer {
            // The endpoint's identity after the use, as the gate saw the
            // first one: presented with this digest, from this client.
            Ok((Said::Active(spent), _)) if spent.user() == user => {
                // As a local store's: a later spend of it is a use of its own.
                let spent = spent
                    .with_quota_unspent()
                    .presented_as(digest)
                    .presented_from(client);
                Ok(match identity.is_previous_secret() {
                    true => spent.by_previous_secret(),
                    false => spent,
                })
            }
            Ok((Said::Active(_), _)) => Err(AuthError::WrongUser),
            Ok((said, _)) => said.into_result(),
            Err(e) => {
                tracing::error!(error = %crate::error::chain(&e), "remote token verification failed");
                Err(AuthError::Store(e))
            }
        }
    }

    /// Asks the endpoint (once the in-flight bound allows), caches the
    /// answer and hands it to every lookup waiting for it.
    async fn ask(&self, asked: Asked) {
        // Answers the waiters however this ends: a panic or a runtime
        // shutting down must not leave them (and every later lookup of this
        // digest) waiting forever.
        let mut reply = Reply {
            shared: self,
            asked: &asked,
            answer: Err("the remote check stopped before an answer".into()),
        };
        let (digest, user, client, recheck) = &asked;
        let at = Instant::now();
        let spend = if *recheck { Spend::Never } else { Spend::Later };
        let answer = self
            .introspect(digest, user.as_deref(), *client, spend)
            .await;
        reply.answer = match answer {
            Ok((said, allow_from)) => {
                // Never an identity with a quota: each use asks (and the
                // endpoint spends it).
                let once = matches!(&said, Said::Active(identity) if identity.has_quota());
                if self.ttl > Duration::ZERO && said != Said::AddressNotAllowed && !once {
                    let (into, other) = match said {
                        Said::Active(_) => (self.active.pin(), self.refused.pin()),
                        _ => (self.refused.pin(), self.active.pin()),
                    };
                    // The newest answer is the only one kept.
                    other.remove(digest);
                    if into.len() >= self.capacity {
                        into.clear();
                    }
                    let cached = Answer {
                        user: user.clone(),
                        said: said.clone(),
                        allow_from,
                        at,
                    };
                    into.insert(*digest, cached);
                }
                Ok(said)
            }
            Err(e) => {
                tracing::error!(error = %crate::error::chain(&e), "remote token verification failed");
                Err(crate::error::chain(&e))
            }
        };
    }

    /// One round trip, spending a use of a quota as `spend` says, once the
    /// in-flight bound allows (within the timeout). Counted and timed.
    async fn introspect(
        &self,
        digest: &TokenDigest,
        user: Option<&str>,
        client: Option<IpAddr>,
        spend: Spend,
    ) -> Result<Learnt, StoreError> {
        let _permit = match tokio::time::timeout(self.timeout, self.in_flight.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(failure("the verifier stopped")),
            Err(_) => {
                return Err(failure(&format!(
                    "introspection endpoint {}: every connection stayed busy for {:?}",
                    self.endpoint, self.timeout
                )));
            }
        };
        let started = Instant::now();
        let learnt = self.round_trip(digest, user, client, spend).await;
        crate::metrics::observe(crate::metrics::REMOTE_DURATION, ("", ""), started.elapsed());
        let result = if learnt.is_ok() { "ok" } else { "error" };
        crate::metrics::count_by(crate::metrics::REMOTE_REQUESTS, "result", result);
        learnt
    }

    /// [`introspect`](Shared::introspect)'s request and answer.
    async fn round_trip(
        &self,
        digest: &TokenDigest,
        user: Option<&str>,
        client: Option<IpAddr>,
        spend: Spend,
    ) -> Result<Learnt, StoreError> {
        let mut form = String::with_capacity(160);
        form.push_str("token_digest=");
        for b in digest.as_bytes() {
            form.push_str(&format!("{b:02x}"));
        }
        if let Some(user) = user {
            form.push_str("&username=");
            form_encode(user, &mut form);
        }
        if let Some(client) = client {
            // The client the token is presented from, for its address rule.
            form.push_str("&pat_client=");
            form_encode(&client.to_string(), &mut form);
        }
        match spend {
            Spend::Now => {}
            Spend::Later => form.push_str("&pat_spend=later"),
            Spend::Never => form.push_str("&pat_spend=no"),
        }
        let response = self
            .client
            .post(self.endpoint.clone())
            .header(http::header::AUTHORIZATION, self.authorization.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(form)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| {
                failure(&format!(
                    "introspection endpoint {}: {}",
                    self.endpoint,
                    crate::error::chain(&e)
                ))
            })?;
        let status = response.status();
        match status.as_u16() {
            200 => {}
            401 | 403 => {
                return Err(failure(&format!(
                    "introspection endpoint {} refused this verifier's token ({status}): is its \
                     user allowed to introspect?",
                    self.endpoint
                )));
            }
            _ => {
                return Err(failure(&format!(
                    "introspection endpoint {} answered {status}",
                    self.endpoint
                )));
            }
        }
        let body = response.bytes().await.map_err(|e| {
            failure(&format!(
                "introspection endpoint {}: {}",
                self.endpoint,
                crate::error::chain(&e)
            ))
        })?;
        let (said, prefixes, allow_from) = parse_answer(&body).map_err(|reason| {
            failure(&format!(
                "introspection endpoint {} answered {reason}",
                self.endpoint
            ))
        })?;
        // The store's prefixes, in the order it has them: learnt before
        // the answer is, so that the next token of a new prefix is asked
        // about. Past the most a set keeps, the newest are not learnt.
        if !prefixes.is_empty() && prefixes != self.prefixes.all() {
            let _ = self.prefixes.remember_all(&prefixes);
        }
        Ok((said, allow_from))
    }
}

/// When a round trip spends a use of the token's quota (the endpoint's
/// `pat_spend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spend {
    /// As the endpoint answers: [`RemoteVerifier::spend`]'s round trip.
    Now,
    /// In a second round trip, once the gate let the use through (a
    /// lookup for a use; refused when none is left).
    Later,
    /// Never: a session's recheck.
    Never,
}

#[derive(Debug)]
struct Msg(String);

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Msg {}

fn failure(message: &str) -> StoreError {
    StoreError::Storage(BackendError::new(Msg(message.to_owned())))
}

#[cfg(test)]
mod tests;
