//! Logins of protocols other than HTTP: a user name and a token as the
//! password, from an SSH login (password or keyboard-interactive), FTP's
//! `PASS`, IMAP's `LOGIN`, SMTP's `AUTH PLAIN`... decided as HTTP Basic is.
//!
//! ```
//! # async fn demo() {
//! use std::time::Duration;
//! use pat_core::{Admin as _, ExpiryPolicy, Logins, LoginRefused, MemoryStore, NewToken, Timestamp};
//!
//! let store = std::sync::Arc::new(MemoryStore::new());
//! let token = store
//!     .create(&NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(60))), Timestamp::now())
//!     .unwrap();
//! let logins = Logins::new(store);
//! let peer = Some("192.0.2.7".parse().unwrap());
//!
//! let identity = logins.check("alice", token.secret.expose_secret(), peer).await.unwrap();
//! assert_eq!(identity.user(), "alice");
//! // Another user's token: refused, and the reason is for the log only.
//! let refused = logins.check("bob", token.secret.expose_secret(), peer).await.unwrap_err();
//! assert!(matches!(refused, LoginRefused::Invalid(_)));
//! # }
//! ```

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::limiter::PerAddress;
use super::{Gate, Outcome, RejectReason, TokenProblem};
use crate::backend::IntoVerifier;
use crate::model::record::Identity;
use crate::model::text::redacted;
use crate::model::time::Timestamp;

/// Failed logins one address may make per window, by default.
pub const DEFAULT_LOGIN_FAILURES: u32 = 10;
/// The window of [`DEFAULT_LOGIN_FAILURES`], by default.
pub const DEFAULT_LOGIN_WINDOW: Duration = Duration::from_secs(300);

/// Checks logins whose password is a personal access token: the same
/// decision as HTTP Basic (prefix, checksum, digest, the backend, the user
/// must be the token's, expiry, the use recorded, every limit the backend
/// applies), plus a limit on failed logins per client address.
///
/// A client must get the same answer for every refusal (a wrong token, an
/// unknown user, another user's token, an expired one); the
/// [`LoginRefused`] says which for the log, and [`check`](Logins::check)
/// logs it (at `info`, with the user name made printable, a token typed
/// into it cut to `pat_…`, and never the password). Cheap to clone: clones share the backend and the failure
/// counts.
#[derive(Clone, Debug)]
pub struct Logins {
    gate: Gate,
    failures: Arc<PerAddress>,
}

/// Why a login was refused: for the log, never for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginRefused {
    /// The password is not a live token of this user.
    Invalid(TokenProblem),
    /// Too many failed logins from this address: refused without looking
    /// at the password until the window ends, in `retry_after` seconds.
    TooManyFailures {
        /// Seconds until the address may try again.
        retry_after: u64,
    },
    /// The backend could not answer: the token may be fine, the client may
    /// retry (not counted as a failure).
    Unavailable,
    /// The token is fine but its rate limit has no use left (a login is a
    /// use); not counted as a failure.
    RateLimited(super::Throttled),
}

impl fmt::Display for LoginRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoginRefused::Invalid(problem) => f.write_str(problem.description()),
            LoginRefused::TooManyFailures { retry_after } => write!(
                f,
                "too many failed logins from this address; retry in {retry_after} s"
            ),
            LoginRefused::Unavailable => f.write_str("the token store is unavailable"),
            LoginRefused::RateLimited(t) => write!(
                f,
                "the token's rate limit ({}) is used up; retry in {} s",
                t.limit, t.retry_after
            ),
        }
    }
}

impl std::error::Error for LoginRefused {}

impl Logins {
    /// Logins checked by `verifier` (a store or another backend, by value
    /// or in an `Arc`), allowing [`DEFAULT_LOGIN_FAILURES`] failures per
    /// address per [`DEFAULT_LOGIN_WINDOW`].
    pub fn new(verifier: impl IntoVerifier) -> Logins {
        Logins::from_gate(Gate::new(verifier))
    }

    /// Logins checked by `gate`'s backend (its mode does not apply: a
    /// login's password must be a token). Give it a clone of the gate the
    /// HTTP layer uses, so that a token's uses count once against its
    /// [rate limit](crate::TokenInfo::rate): each gate made with
    /// [`Gate::new`] keeps its own counts.
    pub fn from_gate(gate: Gate) -> Logins {
        Logins {
            gate,
            failures: Arc::new(PerAddress::new(
                DEFAULT_LOGIN_FAILURES,
                DEFAULT_LOGIN_WINDOW,
            )),
        }
    }

    /// At most `failures` failed logins per `window` (at least a second)
    /// from one address (an IPv4 address or an IPv6 `/64`); past it, logins
    /// from there are refused unchecked until the window ends.
    pub fn failures_per_address(mut self, failures: u32, window: Duration) -> Logins {
        self.failures = Arc::new(PerAddress::new(failures, window));
        self
    }

    /// Checks `user` logging in with `password` from `peer` (the
    /// connection's peer; `None` for a login no address limit applies to).
    /// Awaits a networked backend without blocking the thread.
    pub async fn check(
        &self,
        user: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<Identity, LoginRefused> {
        self.check_at(user, password, peer, Timestamp::now()).await
    }

    /// [`check`](Logins::check) with an explicit clock.
    pub async fn check_at(
        &self,
        user: &str,
        password: &str,
        peer: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<Identity, LoginRefused> {
        let result = self.decide(user, password, peer, now).await;
        // A token typed into the user name field is cut to `pat_…`.
        let shown = redacted(user);
        match &result {
            Ok(identity) => {
                tracing::debug!(user = %shown, ?peer, token_id = %identity.token_id(), "login accepted");
            }
            Err(refused) => {
                tracing::info!(user = %shown, ?peer, reason = %refused, "login refused");
            }
        }
        result
    }

    /// Checks again the token a login presented (`identity`, as
    /// [`check`](Logins::check) returned it), for a session that outlives
    /// its login: every request of an SFTP session, as every HTTP request,
    /// is refused once the token is revoked, expired, disabled, rotated away
    /// or used from an address its rule refuses. A cache hit on a cached
    /// backend; records the use (a sliding token's window moves). Not a use
    /// the rate limit or the use quota counts (the login was), nor a failed
    /// login.
    pub async fn recheck(&self, identity: &Identity) -> Result<Identity, LoginRefused> {
        self.recheck_at(identity, Timestamp::now()).await
    }

    /// [`recheck`](Logins::recheck) with an explicit clock.
    pub async fn recheck_at(
        &self,
        identity: &Identity,
        now: Timestamp,
    ) -> Result<Identity, LoginRefused> {
        let outcome = match identity.presented() {
            Some(digest) => {
                self.gate
                    .check_again(*digest, Some(identity.user()), identity.client(), now)
                    .await
            }
            // Not from a login: nothing to check it against.
            None => return Err(LoginRefused::Invalid(TokenProblem::Unknown)),
        };
        let result = refusal(outcome);
        if let Err(refused) = &result {
            tracing::info!(
                user = %redacted(identity.user()),
                token_id = %identity.token_id(),
                reason = %refused,
                "session token refused"
            );
        }
        result
    }

    async fn decide(
        &self,
        user: &str,
        password: &str,
        peer: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<Identity, LoginRefused> {
        if let Some(addr) = peer {
            self.failures
                .check(addr, now)
                .map_err(|retry_after| LoginRefused::TooManyFailures { retry_after })?;
        }
        let outcome = self
            .gate
            .check_password(password.as_bytes(), user, peer, now)
            .await;
        let refused = match refusal(outcome) {
            Err(LoginRefused::Invalid(problem)) => LoginRefused::Invalid(problem),
            other => return other,
        };
        if let Some(addr) = peer {
            // Counted whether or not it is past the limit now: a race of
            // parallel failures is bounded by the connections in flight.
            let _ = self.failures.admit(addr, now);
        }
        Err(refused)
    }
}

/// A gate's outcome as a login's.
fn refusal(outcome: Outcome) -> Result<Identity, LoginRefused> {
    Err(match outcome {
        Outcome::Authenticated(identity) => return Ok(identity),
        Outcome::Rejected(r) => match r.reason() {
            RejectReason::StoreUnavailable => LoginRefused::Unavailable,
            RejectReason::RateLimited(t) => LoginRefused::RateLimited(t),
            RejectReason::InvalidToken(problem) => LoginRefused::Invalid(problem),
            // Not reached for a password (no header to be broken):
            // refused all the same.
            RejectReason::MissingCredentials | RejectReason::InvalidRequest(_) => {
                LoginRefused::Invalid(TokenProblem::NotAToken)
            }
        },
        // Not reached in required mode; never a way in.
        Outcome::Anonymous => LoginRefused::Invalid(TokenProblem::NotAToken),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Admin as _, ExpiryPolicy, MemoryStore, NewToken};

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs).unwrap()
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        crate::backend::block_on::block_on(f)
    }

    #[test]
    fn a_login_is_a_use_of_a_rate_limited_token_and_a_refusal_no_failure() {
        let store = Arc::new(MemoryStore::new());
        let mut limited = NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(3600)));
        limited.rate = Some("2/h".parse().unwrap());
        let t = store.create(&limited, at(0)).unwrap();
        let logins = Logins::new(store.clone()).failures_per_address(1, Duration::from_secs(60));
        let peer = Some("192.0.2.1".parse().unwrap());
        let check = |now| run(logins.check_at("alice", t.secret.expose_secret(), peer, now));
        check(at(1)).expect("the first login");
        check(at(1)).expect("the second");
        for _ in 0..3 {
            let Err(LoginRefused::RateLimited(throttled)) = check(at(1)) else {
                panic!("a third login in the hour")
            };
            assert_eq!(throttled.limit.to_string(), "2/h");
            assert!(
                LoginRefused::RateLimited(throttled)
                    .to_string()
                    .contains("rate limit (2/h)")
            );
        }
        // Not counted as failed logins: the address may still log in with
        // another token.
        let other = store
            .create(
                &NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(3600))),
                at(0),
            )
            .unwrap();
        run(logins.check_at("alice", other.secret.expose_secret(), peer, at(1)))
            .expect("the address is not blocked");
    }

    #[test]
    fn a_login_is_decided_as_basic_auth_is() {
        let store = Arc::new(MemoryStore::new());
        let hour = ExpiryPolicy::hard(Duration::from_secs(3600));
        let t = store.create(&NewToken::new("alice", hour), at(0)).unwrap();
        let secret = t.secret.expose_secret();
        let logins = Logins::new(store.clone());
        let check =
            |user: &str, password: &str, now| run(logins.check_at(user, password, None, now));

        let identity = check("alice", secret, at(10)).unwrap();
        assert_eq!((identity.user(), identity.token_id()), ("alice", t.info.id));
        assert_eq!(
            store.get(t.info.id).unwrap().last_used_at,
            Some(at(10)),
            "the use is recorded"
        );
        assert_eq!(
            check("bob", secret, at(10)),
            Err(LoginRefused::Invalid(TokenProblem::WrongUser))
        );
        assert_eq!(
            check("alice", "hunter2", at(10)),
            Err(LoginRefused::Invalid(TokenProblem::NotAToken))
        );
        let mut broken = secret.to_owned();
        let last = broken.pop().unwrap();
        broken.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            check("alice", &broken, at(10)),
            Err(LoginRefused::Invalid(TokenProblem::Malformed))
        );
        assert_eq!(
            check("alice", secret, at(3600)),
            Err(LoginRefused::Invalid(TokenProblem::Expired))
        );
        store.revoke(t.info.id).unwrap();
        assert_eq!(
            check("alice", secret, at(20)),
            Err(LoginRefused::Invalid(TokenProblem::Unknown))
        );
        assert_eq!(
            check("", "", at(20)),
            Err(LoginRefused::Invalid(TokenProblem::NotAToken))
        );
    }

    #[test]
    fn failures_per_address_are_limited_and_a_good_token_does_not_count() {
        let store = Arc::new(MemoryStore::new());
        let hour = ExpiryPolicy::hard(Duration::from_secs(3600));
        let t = store.create(&NewToken::new("alice", hour), at(0)).unwrap();
        let secret = t.secret.expose_secret();
        let logins = Logins::new(store).failures_per_address(2, Duration::from_secs(60));
        let attacker: IpAddr = "192.0.2.66".parse().unwrap();
        let honest: IpAddr = "192.0.2.7".parse().unwrap();
        let check =
            |password: &str, peer, now| run(logins.check_at("alice", password, Some(peer), now));

        for _ in 0..3 {
            assert!(
                check(secret, attacker, at(1)).is_ok(),
                "successes count nothing"
            );
        }
        assert!(matches!(
            check("pat_nope", attacker, at(1)),
            Err(LoginRefused::Invalid(_))
        ));
        assert!(matches!(
            check("guess", attacker, at(2)),
            Err(LoginRefused::Invalid(_))
        ));
        // Past the limit even the right token is refused, unchecked.
        assert_eq!(
            check(secret, attacker, at(3)),
            Err(LoginRefused::TooManyFailures { retry_after: 58 })
        );
        // Clones share the counts; another address has its own.
        assert!(matches!(
            run(logins
                .clone()
                .check_at("alice", secret, Some(attacker), at(3))),
            Err(LoginRefused::TooManyFailures { .. })
        ));
        assert!(check(secret, honest, at(3)).is_ok());
        // The window ends.
        assert!(check(secret, attacker, at(61)).is_ok());
        // Without an address, no limit applies.
        for _ in 0..5 {
            assert!(run(logins.check_at("alice", "x", None, at(62))).is_err());
        }
        assert!(run(logins.check_at("alice", secret, None, at(62))).is_ok());
    }

    #[test]
    fn a_session_rechecks_its_token_and_is_refused_once_it_is_revoked() {
        let store = Arc::new(MemoryStore::new());
        let window = ExpiryPolicy::sliding(Duration::from_secs(60), None);
        let t = store
            .create(&NewToken::new("alice", window), at(0))
            .unwrap();
        let logins = Logins::new(store.clone());
        let identity =
            run(logins.check_at("alice", t.secret.expose_secret(), None, at(0))).unwrap();
        // Each request of the session is a use: the sliding window moves.
        for now in [50, 100, 150] {
            assert!(run(logins.recheck_at(&identity, at(now))).is_ok());
        }
        store.revoke(t.info.id).unwrap();
        assert_eq!(
            run(logins.recheck_at(&identity, at(151))),
            Err(LoginRefused::Invalid(TokenProblem::Unknown))
        );
        // An identity that no login made has nothing to recheck.
        let bare = Identity::new(&t.info, at(60));
        assert!(run(logins.recheck_at(&bare, at(0))).is_err());
    }

    #[test]
    fn a_login_is_one_use_however_many_requests_its_session_makes() {
        let store = Arc::new(MemoryStore::new());
        let mut once = NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(7200)));
        once.max_uses = Some(1);
        once.rate = Some("2/h".parse().unwrap());
        let t = store.create(&once, at(0)).unwrap();
        let logins = Logins::new(store.clone());
        let identity =
            run(logins.check_at("alice", t.secret.expose_secret(), None, at(1))).unwrap();
        for now in 2..10 {
            let again = run(logins.recheck_at(&identity, at(now))).expect("the session goes on");
            assert_eq!(again.uses_left(), Some(0));
        }
        assert_eq!(store.get(t.info.id).unwrap().uses, 1);
        // A second login is a use, the second of the rate's burst: the
        // rechecks counted nothing there, and the quota refuses it.
        assert_eq!(
            run(logins.check_at("alice", t.secret.expose_secret(), None, at(10))),
            Err(LoginRefused::Invalid(TokenProblem::UsedUp))
        );
        // The rest is still checked again: disabled, the session ends.
        store.disable(t.info.id).unwrap();
        assert_eq!(
            run(logins.recheck_at(&identity, at(11))),
            Err(LoginRefused::Invalid(TokenProblem::Disabled))
        );
    }

    #[test]
    fn the_reasons_say_which_for_the_log() {
        assert_eq!(
            LoginRefused::Invalid(TokenProblem::WrongUser).to_string(),
            "the user name does not match the token"
        );
        assert_eq!(
            LoginRefused::TooManyFailures { retry_after: 9 }.to_string(),
            "too many failed logins from this address; retry in 9 s"
        );
    }
}
