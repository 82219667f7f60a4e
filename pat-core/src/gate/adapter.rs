//! What a framework adapter needs from the gate, written once for all of
//! them (pat-tower and pat-actix, and one you write for another framework):
//! which requests are CORS preflights, what goes in a request's extensions
//! once the gate decided, the state of a request waiting for a backend
//! that answers later, and the builder methods an adapter's middleware
//! forwards to its [`Gate`] ([`gate_options!`](crate::gate_options)).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use crate::gate::{Checking, Gate, Outcome, Rejection};

/// Whether a request is a CORS preflight: `OPTIONS` with an
/// `Access-Control-Request-Method` header (`has_access_control_request_method`
/// is asked only for an `OPTIONS`, so other requests pay no header lookup).
/// Browsers never attach credentials to one, so the gate lets it through
/// without an identity unless told otherwise ([`Gate::reject_preflight`]).
#[inline]
pub fn cors_preflight(
    method: &str,
    has_access_control_request_method: impl FnOnce() -> bool,
) -> bool {
    method == "OPTIONS" && has_access_control_request_method()
}

/// The peer address of a request's connection, for a Tower stack that is
/// not axum (whose `ConnectInfo<SocketAddr>` pat-tower reads): insert it
/// into each request's extensions, and a token's
/// [address rule](crate::TokenInfo::allow_from) is checked against it (or
/// the client trusted proxies forwarded for). Without either, a token with
/// a rule is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::IpAddr);

/// The client of a request from `peer` (`None`: the adapter could not
/// tell), as `gate`'s [trusted proxies](Gate::trusted_proxies) say;
/// `forwarding` (the request's `Forwarded` and `X-Forwarded-For` values) is
/// asked only when a proxy is trusted, so that other requests pay no
/// header lookup. What an adapter passes to [`Gate::check_from`].
#[inline]
pub fn client_of<'a, F, X>(
    gate: &Gate,
    peer: Option<std::net::IpAddr>,
    forwarding: impl FnOnce() -> (F, X),
) -> Option<std::net::IpAddr>
where
    F: IntoIterator<Item = &'a [u8]>,
    X: IntoIterator<Item = &'a [u8]>,
{
    if gate.config.proxies.is_empty() {
        return peer.map(crate::model::network::unmapped);
    }
    let (forwarded, x_forwarded_for) = forwarding();
    gate.client(peer, forwarded, x_forwarded_for)
}

/// What a route that no pat middleware covers is told, when it asks for an
/// identity (an extractor, a scope guard): the cause and the fix.
pub const NO_MIDDLEWARE: &str = "the Identity extractor or a scope guard is used on a route that \
    no pat middleware covers: add PatLayer (pat-tower) or PatMiddleware (pat-actix) around this \
    route; a route that is public should not take an Identity";

/// Logs [`NO_MIDDLEWARE`]: once per process as a `warn` (a wiring mistake,
/// not a client's), then at `debug`.
pub fn no_middleware() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if WARNED.swap(true, Ordering::Relaxed) {
        tracing::debug!("{NO_MIDDLEWARE}");
    } else {
        tracing::warn!("{NO_MIDDLEWARE}");
    }
}

/// A request's typed extensions, where an adapter leaves what the gate
/// decided for the handlers' extractors: `http`'s and actix-web's.
pub trait Extensions {
    /// Inserts `value`, replacing any of its type.
    fn insert_value<T: Clone + Send + Sync + 'static>(&mut self, value: T);
}

#[cfg(feature = "http")]
impl Extensions for http::Extensions {
    #[inline]
    fn insert_value<T: Clone + Send + Sync + 'static>(&mut self, value: T) {
        self.insert(value);
    }
}

#[cfg(feature = "actix")]
impl Extensions for actix_web::dev::Extensions {
    #[inline]
    fn insert_value<T: Clone + Send + Sync + 'static>(&mut self, value: T) {
        self.insert(value);
    }
}

/// A middleware's rejection hook as the handlers see it: how the
/// middleware answers a [`Rejection`], in its framework's response type
/// `Res`. The adapters implement it for their `on_rejection` hooks.
pub trait AnswerRejection<Res>: Send + Sync {
    /// The middleware's response to `rejection`.
    fn answer(&self, rejection: &Rejection) -> Res;
}

/// What an adapter leaves beside the [`Rejection`] of a request it let
/// through anonymously (optional mode): its rejection hook, so that an
/// [`Identity`](crate::Identity) extractor demanding an identity there
/// answers as the middleware itself would, with the hook's body (a JSON
/// one, say) rather than an empty one. Cloning shares the hook.
pub struct RejectWith<Res: 'static>(Arc<dyn AnswerRejection<Res>>);

impl<Res: 'static> RejectWith<Res> {
    /// The hook `answer`.
    pub fn new(answer: Arc<dyn AnswerRejection<Res>>) -> RejectWith<Res> {
        RejectWith(answer)
    }

    /// The hook's response to `rejection`.
    pub fn answer(&self, rejection: &Rejection) -> Res {
        self.0.answer(rejection)
    }
}

impl<Res: 'static> Clone for RejectWith<Res> {
    fn clone(&self) -> RejectWith<Res> {
        RejectWith(self.0.clone())
    }
}

impl<Res: 'static> fmt::Debug for RejectWith<Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RejectWith(..)")
    }
}

impl Gate {
    /// [`admit`](Gate::admit), leaving `hook()` too in the extensions of a
    /// request let through anonymously (see [`RejectWith`]); `hook` is
    /// called only then.
    #[inline]
    pub fn admit_with<Res: 'static>(
        &self,
        outcome: Outcome,
        extensions: &mut impl Extensions,
        hook: impl FnOnce() -> RejectWith<Res>,
    ) -> Result<(), Rejection> {
        let anonymous = matches!(outcome, Outcome::Anonymous);
        self.admit(outcome, extensions)?;
        if anonymous {
            extensions.insert_value(hook());
        }
        Ok(())
    }

    /// Applies `outcome` to a request: an accepted token's
    /// [`Identity`](crate::Identity) inserted into `extensions`; for a
    /// request let through anonymously (optional mode, a preflight) the
    /// rejection an extractor demanding an identity should answer with; or
    /// the rejection to answer now. Exhaustive: nothing the gate did not
    /// accept reaches the inner service.
    pub fn admit(
        &self,
        outcome: Outcome,
        extensions: &mut impl Extensions,
    ) -> Result<(), Rejection> {
        match outcome {
            Outcome::Authenticated(identity) => {
                extensions.insert_value(identity);
                Ok(())
            }
            Outcome::Anonymous => {
                extensions.insert_value(self.missing_credentials());
                Ok(())
            }
            Outcome::Rejected(rejection) => Err(rejection),
        }
    }
}

/// A request waiting for a backend that answers later, with what the
/// adapter holds for it meanwhile (the request, the inner service, the
/// rejection hook). An adapter's response future boxes one only then, so
/// that it stays small on the usual path (a backend that answers at once).
pub struct Waiting<T> {
    checking: Checking,
    held: Option<T>,
}

impl<T> std::fmt::Debug for Waiting<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("checking", &self.checking)
            .finish_non_exhaustive()
    }
}

impl<T> Waiting<T> {
    /// `checking` (not ready yet, see [`Checking::into_ready`]) and what to
    /// hand back with its outcome.
    pub fn new(checking: Checking, held: T) -> Waiting<T> {
        Waiting {
            checking,
            held: Some(held),
        }
    }

    /// Polls the check: once decided, its outcome and what was held.
    ///
    /// # Panics
    /// When polled again after that, as a future polled after completion.
    pub fn poll_outcome(&mut self, cx: &mut Context<'_>) -> Poll<(Outcome, T)> {
        match std::pin::Pin::new(&mut self.checking).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(outcome) => match self.held.take() {
                Some(held) => Poll::Ready((outcome, held)),
                None => panic!("a request's check polled after completion"),
            },
        }
    }
}

/// The builder methods an adapter's middleware forwards to its [`Gate`]
/// (in an `impl` block of a type with a field `gate: Gate`), with their
/// documentation, so that every adapter offers the same ones.
#[doc(hidden)]
#[macro_export]
macro_rules! gate_options {
    () => {
        /// Sets the realm of the `WWW-Authenticate` challenges (default
        /// `"pat"`). `"` and `\` are escaped; characters outside printable
        /// ASCII become `_`.
        pub fn realm(mut self, realm: &str) -> Self {
            self.gate = self.gate.realm(realm);
            self
        }

        /// Optional mode: requests without credentials, or with a Bearer
        /// token or Basic password that is not a PAT, pass on without an
        /// [`Identity`]($crate::Identity).
        pub fn optional(self) -> Self {
            self.mode($crate::Mode::Optional)
        }

        /// Sets the mode ([`Mode::Required`]($crate::Mode::Required) by
        /// default).
        pub fn mode(mut self, mode: $crate::Mode) -> Self {
            self.gate = self.gate.mode(mode);
            self
        }

        /// Checks CORS preflights too (by default they pass without
        /// identity, since browsers never attach credentials to them).
        pub fn reject_preflight(mut self, reject: bool) -> Self {
            self.gate = self.gate.reject_preflight(reject);
            self
        }

        /// The `Retry-After` seconds of the 503 answered when the backend
        /// is unavailable (default 1).
        pub fn retry_after(mut self, seconds: u32) -> Self {
            self.gate = self.gate.retry_after(seconds);
            self
        }

        /// The reverse proxies in front of the service, whose forwarding
        /// headers name the client a token's address rule is checked
        /// against (default: none, the client is the connection's peer).
        /// See [`TrustedProxies`]($crate::TrustedProxies).
        pub fn trusted_proxies(mut self, proxies: $crate::TrustedProxies) -> Self {
            self.gate = self.gate.trusted_proxies(proxies);
            self
        }
    };
}

/// What every adapter's middleware type `$ty<R>` (fields `gate: Gate` and
/// `on_rejection`) has alike: its `Debug` (the gate, never the hook), and
/// `new` and `from_gate` with the default rejection `$default`.
#[doc(hidden)]
#[macro_export]
macro_rules! gate_middleware {
    ($ty:ident, $default:expr) => {
        impl<R> ::std::fmt::Debug for $ty<R> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("gate", &self.gate)
                    .finish_non_exhaustive()
            }
        }

        impl $ty {
            /// Required mode, realm `"pat"`, checking tokens with
            /// `verifier`: a redb `Store`, a
            /// [`MemoryStore`]($crate::MemoryStore) or any
            /// [`Verifier`]($crate::Verifier), by value or in an `Arc`
            /// (keep a clone to flush it or manage tokens).
            pub fn new(verifier: impl $crate::IntoVerifier) -> $ty {
                $ty::from_gate($crate::Gate::new(verifier))
            }

            /// Around an already configured [`Gate`]($crate::Gate).
            pub fn from_gate(gate: $crate::Gate) -> $ty {
                $ty {
                    gate,
                    on_rejection: $default,
                }
            }
        }
    };
}
