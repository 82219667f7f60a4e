//! The decision every adapter asks for: given a request's `Authorization`
//! headers, authenticate, pass through, or reject with RFC 6750 / RFC 7617
//! challenges. pat-tower and pat-actix only translate types around this.

pub mod adapter;
pub(crate) mod credentials;
pub(crate) mod extractors;
pub(crate) mod limiter;
pub(crate) mod login;
pub(crate) mod rate;
mod rejection;
pub(crate) mod scopes;

use self::rejection::GateConfig;
pub use self::rejection::{RejectReason, Rejection, Throttled, TokenProblem};

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::backend::{IntoVerifier, Lookup, Verification, Verifier, VerifyFuture};
use crate::error::{AuthError, ParseTokenError};
use crate::gate::credentials::{Credentials, CredentialsError, RawCredentials};
use crate::metrics::{Scheme, Started};
use crate::model::rate::Admission;
use crate::model::record::Identity;
use crate::model::time::Timestamp;
use crate::model::token::TokenDigest;
use crate::routes::proxy::TrustedProxies;

/// Whether requests without our credentials may pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Every request needs a valid token, else 401 (the default).
    #[default]
    Required,
    /// Requests without credentials, or whose Bearer token or Basic password
    /// is not a PAT, pass on without an [`Identity`] (for another auth layer
    /// to handle). A PAT that fails is still rejected.
    Optional,
}

/// What an adapter should do with a request.
///
/// Deliberately exhaustive (not `#[non_exhaustive]`): an auth decision must
/// never fall into a catch-all arm that lets a request through, so a new kind
/// of outcome has to break every `match` on this type at compile time.
#[derive(Debug)]
pub enum Outcome {
    /// Valid token: insert the identity into the request and go on.
    Authenticated(Identity),
    /// Optional mode, no credentials of ours (or a CORS preflight): go on
    /// without an identity.
    Anonymous,
    /// Answer with this rejection; never call the inner service.
    Rejected(Rejection),
}

/// The shared authentication logic of the adapters: holds the backend and
/// the configuration, and decides each request's [`Outcome`]. Cheap to clone.
///
/// The gate does all the token work (credentials parsing, prefix and
/// checksum, "not ours" in optional mode, the digest); the backend only looks
/// the digest up (see [`Verifier`]).
#[derive(Clone)]
pub struct Gate {
    verifier: Arc<dyn Verifier>,
    config: Arc<GateConfig>,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("realm", &self.config.realm)
            .field("mode", &self.config.mode)
            .field("reject_preflight", &self.config.reject_preflight)
            .field("retry_after", &self.config.retry_after)
            .finish()
    }
}

/// The default realm of the challenges.
pub const DEFAULT_REALM: &str = "pat";

impl Gate {
    /// A gate in required mode with realm `"pat"`, checking tokens with
    /// `verifier`: a [`Store`](crate::Store) or another backend, by value or
    /// in an `Arc`.
    pub fn new(verifier: impl IntoVerifier) -> Gate {
        Gate {
            verifier: verifier.into_verifier(),
            config: Arc::new(GateConfig::new(DEFAULT_REALM)),
        }
    }

    fn configure(mut self, f: impl FnOnce(&mut GateConfig)) -> Gate {
        let config = Arc::make_mut(&mut self.config);
        f(config);
        config.build_challenges();
        self
    }

    /// Sets the realm of the challenges. `"` and `\` are escaped; characters
    /// outside printable ASCII become `_`, so any string yields valid headers.
    pub fn realm(self, realm: &str) -> Gate {
        self.configure(|c| realm.clone_into(&mut c.realm))
    }

    /// Sets the mode.
    pub fn mode(self, mode: Mode) -> Gate {
        self.configure(|c| c.mode = mode)
    }

    /// Whether CORS preflights (`OPTIONS` with `Access-Control-Request-Method`)
    /// are checked like other requests. By default they pass without an
    /// identity, since browsers never attach credentials to them.
    pub fn reject_preflight(self, reject: bool) -> Gate {
        self.configure(|c| c.reject_preflight = reject)
    }

    /// The `Retry-After` seconds sent with a 503 when the backend is
    /// unavailable (default 1).
    pub fn retry_after(self, seconds: u32) -> Gate {
        self.configure(|c| c.retry_after = seconds)
    }

    /// The realm, as configured (before escaping).
    pub fn realm_name(&self) -> &str {
        &self.config.realm
    }

    /// The configured mode.
    pub fn current_mode(&self) -> Mode {
        self.config.mode
    }

    /// The backend.
    pub fn verifier(&self) -> &Arc<dyn Verifier> {
        &self.verifier
    }

    /// Decides a request. `authorization` yields the raw value of every
    /// `Authorization` header; `cors_preflight` tells whether the request is
    /// an `OPTIONS` with `Access-Control-Request-Method`. No client address
    /// is known: a token with an [address rule](crate::TokenInfo::allow_from)
    /// is refused (see [`check_from`](Gate::check_from)).
    pub fn check<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
        cors_preflight: bool,
    ) -> Checking {
        self.check_at(authorization, cors_preflight, Timestamp::now())
    }

    /// [`check`](Gate::check) of a request from `client` (see
    /// [`client`](Gate::client)), which a token's address rule is checked
    /// against.
    pub fn check_from<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
        cors_preflight: bool,
        client: Option<IpAddr>,
    ) -> Checking {
        self.check_from_at(authorization, cors_preflight, client, Timestamp::now())
    }

    /// The reverse proxies in front of the service, whose forwarding
    /// headers name the real client (default: none, and the client is the
    /// connection's peer). See [`TrustedProxies`].
    pub fn trusted_proxies(self, proxies: TrustedProxies) -> Gate {
        self.configure(|c| c.proxies = proxies)
    }

    /// The client of a request that arrived from `peer` (`None`: the
    /// adapter could not tell) with these `Forwarded` and `X-Forwarded-For`
    /// values, as the [trusted proxies](Gate::trusted_proxies) say: what
    /// the adapters pass to [`check_from`](Gate::check_from). The headers
    /// are read only when the peer is a trusted proxy; `None` too when a
    /// proxy forwarded for a client it did not know (`for=unknown`, a value
    /// that is not an address), never the proxy in its place.
    #[inline]
    pub fn client<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded: impl IntoIterator<Item = &'a [u8]>,
        x_forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<IpAddr> {
        peer.and_then(|peer| {
            self.config
                .proxies
                .known_client(peer, forwarded, x_forwarded_for)
        })
    }

    /// [`check`](Gate::check) with an explicit clock.
    pub fn check_at<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
        cors_preflight: bool,
        now: Timestamp,
    ) -> Checking {
        self.check_from_at(authorization, cors_preflight, None, now)
    }

    /// [`check_from`](Gate::check_from) with an explicit clock.
    pub fn check_from_at<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
        cors_preflight: bool,
        client: Option<IpAddr>,
        now: Timestamp,
    ) -> Checking {
        let started = self.config.metrics.start();
        let mut scheme = Scheme::None;
        let mut checking = self.decide(authorization, cors_preflight, client, now, &mut scheme);
        // In place: a `Checking` is large enough that a move is a copy.
        checking.count(&self.config, scheme, started);
        checking
    }

    /// The decision of [`check_from_at`](Gate::check_from_at); `scheme`
    /// is set to the scheme of the credentials it decided on, for the
    /// count.
    #[inline]
    fn decide<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
        cors_preflight: bool,
        client: Option<IpAddr>,
        now: Timestamp,
        scheme: &mut Scheme,
    ) -> Checking {
        let done = |outcome| Checking {
            state: State::Done(Some(outcome)),
        };
        if cors_preflight && !self.config.reject_preflight {
            return done(Outcome::Anonymous);
        }
        let optional = self.config.mode == Mode::Optional;
        let not_ours = || {
            if optional {
                Outcome::Anonymous
            } else {
                self.reject(RejectReason::MissingCredentials)
            }
        };
        let mut values = authorization.into_iter();
        let Some(value) = values.next() else {
            return done(not_ours());
        };
        let parsed = RawCredentials::parse(value);
        if let Some(second) = values.next() {
            // Authorization is not a list header: two of them are a broken
            // request, unless none of them is ours to judge.
            let ours = |v: &[u8]| Credentials::claims(v);
            if ours(value) || ours(second) || values.any(ours) {
                return done(self.reject(RejectReason::InvalidRequest(CredentialsError::Repeated)));
            }
            return done(not_ours());
        }
        let (token, user) = match parsed {
            Err(e) => return done(self.reject(RejectReason::InvalidRequest(e))),
            Ok(None) => return done(not_ours()),
            Ok(Some(RawCredentials::Bearer(token))) => {
                *scheme = Scheme::Bearer;
                (token, None)
            }
            Ok(Some(RawCredentials::Basic(ref basic))) => {
                *scheme = Scheme::Basic;
                (basic.password().as_bytes(), Some(basic.user()))
            }
        };
        self.check_token(token, user, client, optional, now)
    }

    /// [`check_token`](Gate::check_token) of a password login (see
    /// [`Logins`](crate::Logins)), counted as one.
    #[inline]
    pub(crate) fn check_password(
        &self,
        password: &[u8],
        user: &str,
        client: Option<IpAddr>,
        now: Timestamp,
    ) -> Checking {
        let started = self.config.metrics.start();
        let mut checking = self.check_token(password, Some(user), client, false, now);
        checking.count(&self.config, Scheme::Password, started);
        checking
    }

    /// The decision on a token (the Bearer token, or the Basic password of
    /// `user`): its prefix and length, what the backend remembers, else the
    /// rest of its shape and the backend's read (see
    /// [`Verifier::verify_cached`]). In `optional`
    /// mode a foreign token passes anonymously.
    #[inline]
    fn check_token(
        &self,
        token: &[u8],
        user: Option<&str>,
        client: Option<IpAddr>,
        optional: bool,
        now: Timestamp,
    ) -> Checking {
        let done = |outcome| Checking {
            state: State::Done(Some(outcome)),
        };
        let verifier = &*self.verifier;
        let presented = match verifier.prefixes().presented(token) {
            Ok(presented) => presented,
            Err(e) => return done(self.misshapen(token, &e, optional)),
        };
        let metrics = &self.config.metrics;
        // The rate limit is counted by the use rule, before the backend
        // records the use (a use over it records nothing); for a backend
        // that does not, it is counted once the answer is in.
        let admission = Admission::new(&self.config.rates);
        let lookup = |digest: &TokenDigest| {
            Lookup::new(*digest, user, now)
                .from(client)
                .admitted_by(&admission)
        };
        let verified = presented.verify(
            |digest| {
                let cached = verifier.verify_cached(lookup(digest));
                metrics.looked_up(cached.is_some());
                cached.map(Verification::Ready)
            },
            |digest| verifier.verify(lookup(digest)),
        );
        let counted = if admission.counted() {
            Counted::Admitted
        } else {
            Counted::Yes
        };
        match verified {
            Ok(verification) => {
                self.judged(verification, *presented.digest(), client, counted, now)
            }
            Err(e) => done(self.misshapen(token, &e, optional)),
        }
    }

    /// The answer to a token not of our shape, as [`Credentials::parse`] and
    /// [`TokenDigest::from_token`] would lead to: a Bearer token that is not
    /// UTF-8 is a broken request; one without one of the backend's prefixes
    /// is not ours.
    #[cold]
    fn misshapen(&self, token: &[u8], e: &ParseTokenError, optional: bool) -> Outcome {
        if std::str::from_utf8(token).is_err() {
            return self.reject(RejectReason::InvalidRequest(CredentialsError::NotUtf8));
        }
        match e {
            ParseTokenError::Foreign if optional => Outcome::Anonymous,
            ParseTokenError::Foreign => self.invalid(TokenProblem::NotAToken),
            _ => self.invalid(TokenProblem::Malformed),
        }
    }

    /// The backend's decision on a well-formed token's digest, for a
    /// session that outlives its login: everything is checked again but
    /// the rate limit and the use quota, which the login counted (a login
    /// is one use, however many requests its session makes).
    #[inline]
    fn check_again(
        &self,
        digest: TokenDigest,
        user: Option<&str>,
        client: Option<IpAddr>,
        now: Timestamp,
    ) -> Checking {
        let started = self.config.metrics.start();
        let lookup = Lookup::new(digest, user, now).from(client).recheck();
        let mut checking = self.judged(
            self.verifier.verify(lookup),
            digest,
            client,
            Counted::No,
            now,
        );
        checking.count(&self.config, Scheme::Password, started);
        checking
    }

    /// The check for the backend's answer about `digest`.
    #[inline]
    fn judged(
        &self,
        verification: Verification,
        digest: TokenDigest,
        client: Option<IpAddr>,
        counted: Counted,
        now: Timestamp,
    ) -> Checking {
        let done = |outcome| Checking {
            state: State::Done(Some(outcome)),
        };
        match verification {
            Verification::Ready(result) => {
                match judge(&self.config, result, digest, client, counted, now) {
                    Judged::Done(outcome) => done(outcome),
                    Judged::Spend(identity) => spending(
                        &self.config,
                        self.verifier.spend(identity, now),
                        Scheme::None,
                        None,
                    ),
                }
            }
            // Boxed: the miss allocates its future already, and the
            // answers at once keep a small `Checking`.
            Verification::Pending(future) => Checking {
                state: State::Verifying(Box::new(Verifying {
                    future,
                    verifier: self.verifier.clone(),
                    config: self.config.clone(),
                    digest,
                    client,
                    counted,
                    now,
                    scheme: Scheme::None,
                    started: None,
                    decided: false,
                })),
            },
        }
    }

    /// The rejection for a request without credentials, for adapters to
    /// leave in the extensions of requests let through anonymously, so that
    /// an extractor demanding an [`Identity`] answers with this gate's
    /// challenges.
    pub fn missing_credentials(&self) -> Rejection {
        Rejection {
            reason: RejectReason::MissingCredentials,
            gate: self.config.clone(),
        }
    }

    fn invalid(&self, problem: TokenProblem) -> Outcome {
        self.reject(RejectReason::InvalidToken(problem))
    }

    fn reject(&self, reason: RejectReason) -> Outcome {
        reject(&self.config, reason)
    }
}

fn reject(config: &Arc<GateConfig>, reason: RejectReason) -> Outcome {
    tracing::debug!(?reason, "request rejected");
    Outcome::Rejected(Rejection {
        reason,
        gate: config.clone(),
    })
}

/// Whether a check is a use the rate limit and the use quota count: a
/// session's recheck is not (its login was).
///
/// A backend that counted the rate as it ran the use rule is told in one
/// of two ways: by the gate's own [`Admission`] for an answer that is
/// ready (`Admitted`), by the identity's mark
/// ([`Identity::is_rate_counted`]) for one a task made (PostgreSQL's miss,
/// whose admission lives in that task). Marking ready answers too would
/// leave one way, but measured 47 more instructions a cached request
/// (BENCHMARKS.md section 24), so the ready path keeps its flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counted {
    /// A use, for the rate limit and the quota to count.
    Yes,
    /// A use the rate limit counted already, as the backend ran the use
    /// rule: for the quota to count.
    Admitted,
    /// Not a use.
    No,
}

/// What a backend's answer leads to: an outcome, or a use of the token's
/// quota to spend first.
enum Judged {
    Done(Outcome),
    Spend(Identity),
}

/// The outcome of a backend's answer. Every error maps to a rejection:
/// nothing here passes a request that the backend did not accept.
///
/// The checks run in one order: the address, the suspension, the expiry
/// and the rate limit (the backend's,
/// [`TokenInfo::check_use`](crate::TokenInfo::check_use), which counts the
/// rate before it records the use; here for a backend that did not), then
/// the use quota; a request one of them refuses consumes nothing the later
/// ones count. A check that is not a use (`counted`) skips the last two.
#[inline]
fn judge(
    config: &Arc<GateConfig>,
    result: Result<Identity, AuthError>,
    digest: TokenDigest,
    client: Option<IpAddr>,
    counted: Counted,
    now: Timestamp,
) -> Judged {
    match result {
        Ok(identity) => {
            // The rate limit, after everything the backend checked (the
            // address, the suspension, the expiry), so that a use refused
            // there counts nothing here.
            // Here only for a backend that did not count it as it ran the
            // use rule (one outside pat-core, or the remote verifier).
            if counted == Counted::Yes
                && !identity.is_rate_counted()
                && let Some(limit) = identity.rate()
                && let Err(throttled) = config.rates.count(identity.token_id(), limit, now)
            {
                return Judged::Done(reject(config, RejectReason::RateLimited(throttled)));
            }
            // What was presented, so that acting on the token can require
            // it to be the current secret; and from where, so that a
            // session's recheck applies the address rule again.
            let identity = identity.presented_as(digest).presented_from(client);
            if counted != Counted::No && identity.has_quota() {
                // Last: only a use every other check let through is spent.
                return Judged::Spend(identity);
            }
            Judged::Done(accepted(identity))
        }
        Err(e) => Judged::Done(refuse(config, e)),
    }
}

/// The outcome of an accepted token.
#[inline]
fn accepted(identity: Identity) -> Outcome {
    tracing::debug!(user = %identity.user(), token_id = %identity.token_id(), "token accepted");
    Outcome::Authenticated(identity)
}

/// The check for the backend's spending of a use of a quota (the count's
/// `scheme` and `started` carried on, if known).
fn spending(
    config: &Arc<GateConfig>,
    spent: Verification,
    scheme: Scheme,
    started: Started,
) -> Checking {
    match spent {
        Verification::Ready(result) => Checking {
            state: State::Done(Some(spent_outcome(config, result))),
        },
        Verification::Pending(future) => Checking {
            state: State::Spending(Box::new(Spending {
                future,
                config: config.clone(),
                scheme,
                started,
                decided: false,
            })),
        },
    }
}

/// The outcome once a use of a quota was spent, or refused.
fn spent_outcome(config: &Arc<GateConfig>, result: Result<Identity, AuthError>) -> Outcome {
    match result {
        Ok(identity) => accepted(identity),
        Err(e) => refuse(config, e),
    }
}

/// The rejection for a backend's refusal.
#[cold]
fn refuse(config: &Arc<GateConfig>, e: AuthError) -> Outcome {
    let problem = match e {
        AuthError::Unknown => TokenProblem::Unknown,
        AuthError::Expired { .. } => TokenProblem::Expired,
        AuthError::Disabled => TokenProblem::Disabled,
        AuthError::AddressNotAllowed => TokenProblem::AddressNotAllowed,
        AuthError::WrongUser => TokenProblem::WrongUser,
        AuthError::UsedUp => TokenProblem::UsedUp,
        AuthError::RateLimited(throttled) => {
            return reject(config, RejectReason::RateLimited(throttled));
        }
        // The gate validated the token already; a backend that says otherwise
        // is refused all the same.
        AuthError::Malformed(_) => TokenProblem::Malformed,
        AuthError::Store(e) => {
            tracing::error!(error = %crate::error::chain(&e), "token backend unavailable");
            return reject(config, RejectReason::StoreUnavailable);
        }
    };
    reject(config, RejectReason::InvalidToken(problem))
}

/// A backend's answer under way, and what judging it needs.
struct Verifying {
    future: VerifyFuture,
    verifier: Arc<dyn Verifier>,
    config: Arc<GateConfig>,
    digest: TokenDigest,
    client: Option<IpAddr>,
    counted: Counted,
    now: Timestamp,
    /// For the count of the outcome.
    scheme: Scheme,
    started: Started,
    /// Counted (or handed on to a spend): dropped otherwise, the check
    /// was abandoned, and is counted as cancelled.
    decided: bool,
}

/// A use of the token's quota being spent, and what counting the outcome
/// needs.
struct Spending {
    future: VerifyFuture,
    config: Arc<GateConfig>,
    scheme: Scheme,
    started: Started,
    /// As [`Verifying::decided`].
    decided: bool,
}

impl Drop for Verifying {
    fn drop(&mut self) {
        if !self.decided {
            self.config.metrics.cancelled(self.scheme);
        }
    }
}

impl Drop for Spending {
    fn drop(&mut self) {
        if !self.decided {
            self.config.metrics.cancelled(self.scheme);
        }
    }
}

/// A decision in progress: ready at once for a backend that answered
/// without waiting, else a future to poll (see [`Checking::into_ready`]).
#[must_use = "a check must be awaited or matched"]
pub struct Checking {
    state: State,
}

enum State {
    Done(Option<Outcome>),
    Verifying(Box<Verifying>),
    /// A use of the token's quota being spent.
    Spending(Box<Spending>),
}

impl Checking {
    /// Counts the outcome now if it is known, else once it is (the
    /// pending states carry `scheme` and `started` to the count).
    #[inline]
    fn count(&mut self, config: &GateConfig, scheme: Scheme, started: Started) {
        match &mut self.state {
            State::Done(Some(outcome)) => config.metrics.decided(outcome, scheme, started),
            State::Done(None) => {}
            State::Verifying(v) => (v.scheme, v.started) = (scheme, started),
            State::Spending(s) => (s.scheme, s.started) = (scheme, started),
        }
    }

    /// The outcome if it is known already (no await needed), else the check
    /// itself, to poll as a future.
    #[inline]
    pub fn into_ready(self) -> Result<Outcome, Checking> {
        match self.state {
            State::Done(Some(outcome)) => Ok(outcome),
            state => Err(Checking { state }),
        }
    }
}

impl fmt::Debug for Checking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Done(outcome) => f.debug_tuple("Checking").field(outcome).finish(),
            State::Verifying(_) => f.write_str("Checking(verifying)"),
            State::Spending(_) => f.write_str("Checking(spending)"),
        }
    }
}

impl Future for Checking {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Done(outcome) => {
                    return match outcome.take() {
                        Some(outcome) => Poll::Ready(outcome),
                        // Polled after completion: a caller bug, answered with a
                        // rejection rather than a panic on the auth path.
                        None => Poll::Ready(Outcome::Rejected(Rejection {
                            reason: RejectReason::StoreUnavailable,
                            gate: Arc::new(GateConfig::new(DEFAULT_REALM)),
                        })),
                    };
                }
                State::Verifying(v) => match v.future.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(result) => {
                        match judge(&v.config, result, v.digest, v.client, v.counted, v.now) {
                            Judged::Done(outcome) => {
                                v.config.metrics.decided(&outcome, v.scheme, v.started);
                                v.decided = true;
                                this.state = State::Done(None);
                                return Poll::Ready(outcome);
                            }
                            // Polled at once, in the next turn of the loop.
                            Judged::Spend(identity) => {
                                let spent = v.verifier.spend(identity, v.now);
                                let next = spending(&v.config, spent, v.scheme, v.started);
                                if let State::Done(Some(outcome)) = &next.state {
                                    v.config.metrics.decided(outcome, v.scheme, v.started);
                                }
                                // Counted, or the spend's to count.
                                v.decided = true;
                                this.state = next.state;
                            }
                        }
                    }
                },
                State::Spending(s) => match s.future.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(result) => {
                        let outcome = spent_outcome(&s.config, result);
                        s.config.metrics.decided(&outcome, s.scheme, s.started);
                        s.decided = true;
                        this.state = State::Done(None);
                        return Poll::Ready(outcome);
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests;
