//! What every case runs on: the backend under test, the clock, the
//! helpers that create and authenticate, and a scripted verifier.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use crate::{
    Admin, AuthError, ExpiryPolicy, Identity, Lookup, NewToken, Timestamp, TokenSecret, Verifier,
};

/// A backend under test: the admin side and the verifier side.
pub trait Backend: Admin + Verifier {}

impl<T: Admin + Verifier> Backend for T {}

/// Runs a future to completion on the calling thread, for tests of backends
/// whose lookups answer later. No runtime needed: the future must not depend
/// on one (a backend that needs a Tokio runtime should drive its I/O on its
/// own threads, which its futures then wait for).
pub fn block_on<F: Future>(future: F) -> F::Output {
    crate::backend::block_on::block_on(future)
}

/// What the gate does with a presented token, without HTTP: validate it
/// (one of the backend's prefixes, the length, the checksum), look its
/// digest up (as `user` for HTTP Basic), wait for the answer, and spend a
/// use of its quota if it has one.
pub fn authenticate(
    backend: &dyn Verifier,
    token: &str,
    user: Option<&str>,
    now: Timestamp,
) -> Result<Identity, AuthError> {
    let digest = backend.prefixes().digest(token)?;
    let identity = block_on(backend.verify(Lookup::new(digest, user, now)))?;
    if identity.has_quota() {
        return block_on(backend.spend(identity, now));
    }
    Ok(identity)
}

/// A verifier answering every lookup with what a closure says, at once or
/// after yielding to the executor once: for adapter tests of each outcome.
pub struct Scripted<F> {
    answer: F,
    later: bool,
}

impl<F> Scripted<F>
where
    F: Fn(&Lookup<'_>) -> Result<Identity, AuthError> + Send + Sync,
{
    /// Answers at once ([`Verification::Ready`](crate::Verification::Ready)).
    pub fn ready(answer: F) -> Scripted<F> {
        Scripted {
            answer,
            later: false,
        }
    }

    /// Answers with a future that is pending once before it is ready.
    pub fn later(answer: F) -> Scripted<F> {
        Scripted {
            answer,
            later: true,
        }
    }
}

impl<F> std::fmt::Debug for Scripted<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripted")
            .field("later", &self.later)
            .finish_non_exhaustive()
    }
}

impl<F> Verifier for Scripted<F>
where
    F: Fn(&Lookup<'_>) -> Result<Identity, AuthError> + Send + Sync,
{
    fn verify(&self, lookup: Lookup<'_>) -> crate::Verification {
        let answer = (self.answer)(&lookup);
        if !self.later {
            return crate::Verification::Ready(answer);
        }
        let mut answer = Some(answer);
        let mut yielded = false;
        crate::Verification::pending(std::future::poll_fn(move |cx| {
            if !yielded {
                yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            match answer.take() {
                Some(a) => Poll::Ready(a),
                None => Poll::Ready(Err(AuthError::Unknown)),
            }
        }))
    }
}

pub(super) const MIN: Duration = Duration::from_secs(60);

pub(super) fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(secs).expect("test times are in range")
}

pub(super) fn hard(user: &str, d: Duration) -> NewToken {
    NewToken::new(user, ExpiryPolicy::hard(d))
}

pub(super) fn sliding(user: &str, window: Duration, cap: Option<Duration>) -> NewToken {
    NewToken::new(user, ExpiryPolicy::sliding(window, cap))
}

pub(super) fn auth(b: &dyn Backend, t: &TokenSecret, secs: u64) -> Result<Identity, AuthError> {
    authenticate(b, t.expose_secret(), None, at(secs))
}

/// [`auth`] of a request from `client`.
pub(super) fn auth_from(
    b: &dyn Backend,
    t: &TokenSecret,
    client: Option<std::net::IpAddr>,
    secs: u64,
) -> Result<Identity, AuthError> {
    let digest = b.prefixes().digest(t.expose_secret())?;
    block_on(b.verify(Lookup::new(digest, None, at(secs)).from(client)))
}

pub(super) fn create(b: &dyn Backend, new: &NewToken, secs: u64) -> crate::CreatedToken {
    b.create(new, at(secs)).expect("create")
}
