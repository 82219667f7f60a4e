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
//!   asked again (a sliding token may have moved).
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

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use http::HeaderValue;

use crate::backend::{Lookup, Verification, Verifier};
use crate::error::{AuthError, BackendError, StoreError};
use crate::model::expiry::Expiry;
use crate::model::record::{Identity, TokenInfo};
use crate::model::scope::Scopes;
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId, TokenSecret};

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

/// Options of a [`RemoteVerifier`].
#[derive(Debug, Clone)]
pub struct RemoteVerifierBuilder {
    ttl: Duration,
    capacity: usize,
    timeout: Duration,
    allow_plain_http: bool,
    client: Option<reqwest::Client>,
    max_in_flight: usize,
}

impl Default for RemoteVerifierBuilder {
    fn default() -> RemoteVerifierBuilder {
        RemoteVerifierBuilder {
            ttl: DEFAULT_TTL,
            capacity: DEFAULT_CAPACITY,
            timeout: DEFAULT_TIMEOUT,
            allow_plain_http: false,
            client: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

impl RemoteVerifierBuilder {
    /// How long an answer is reused (default [`DEFAULT_TTL`]); the longest a
    /// revocation at the endpoint goes unseen here. Zero caches nothing.
    pub fn ttl(mut self, ttl: Duration) -> RemoteVerifierBuilder {
        self.ttl = ttl;
        self
    }

    /// How many active answers, and separately how many refusals, are kept
    /// (default [`DEFAULT_CAPACITY`] each); each map is emptied when it is
    /// full, so memory stays bounded whatever digests clients present, and
    /// unknown tokens never push out the identities of tokens in use.
    pub fn capacity(mut self, capacity: usize) -> RemoteVerifierBuilder {
        self.capacity = capacity;
        self
    }

    /// The deadline of one request to the endpoint (default
    /// [`DEFAULT_TIMEOUT`]); past it the lookup answers [`AuthError::Store`].
    pub fn timeout(mut self, timeout: Duration) -> RemoteVerifierBuilder {
        self.timeout = timeout;
        self
    }

    /// How many requests to the endpoint may be under way at once (default
    /// [`DEFAULT_MAX_IN_FLIGHT`]). Lookups for the same digest share one
    /// request whatever this is; past the bound, a request waits up to the
    /// timeout for a turn, then its lookup answers [`AuthError::Store`].
    pub fn max_in_flight(mut self, n: usize) -> RemoteVerifierBuilder {
        self.max_in_flight = n;
        self
    }

    /// Allows `http://` to a host that is not a loopback address (a private
    /// network you trust, a sidecar). Off by default.
    pub fn allow_plain_http(mut self, allow: bool) -> RemoteVerifierBuilder {
        self.allow_plain_http = allow;
        self
    }

    /// The HTTP client to use (TLS roots, proxies, client certificates);
    /// the timeout above still applies to each request.
    pub fn client(mut self, client: reqwest::Client) -> RemoteVerifierBuilder {
        self.client = Some(client);
        self
    }

    /// A verifier asking the introspection endpoint at `url`, authenticating
    /// with `token` (whose user the endpoint must allow). Nothing is sent
    /// until the first lookup.
    pub fn connect(self, url: &str, token: &TokenSecret) -> Result<RemoteVerifier, RemoteError> {
        let endpoint = checked_url(url, self.allow_plain_http)?;
        let client_error =
            |e: &dyn fmt::Display| RemoteError::Client(BackendError::new(Msg(e.to_string())));
        let client = match self.client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .build()
                .map_err(|e| client_error(&crate::error::chain(&e)))?,
        };
        let mut authorization = HeaderValue::try_from(format!("Bearer {}", token.expose_secret()))
            .map_err(|_| client_error(&"the token is not a header value"))?;
        authorization.set_sensitive(true);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pat-remote")
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Client(BackendError::new(e)))?;
        Ok(RemoteVerifier {
            shared: Arc::new(Shared {
                endpoint,
                client,
                authorization,
                timeout: self.timeout,
                ttl: self.ttl,
                capacity: self.capacity.max(1),
                active: papaya::HashMap::with_hasher(std::hash::RandomState::new()),
                refused: papaya::HashMap::with_hasher(std::hash::RandomState::new()),
                waiting: std::sync::Mutex::new(HashMap::new()),
                in_flight: tokio::sync::Semaphore::new(self.max_in_flight.max(1)),
            }),
            handle: rt.handle().clone(),
            _runtime: crate::backend::block_on::OwnedRuntime::new(rt),
        })
    }
}

/// A checked endpoint: absolute, http(s), plain only where allowed.
fn checked_url(url: &str, allow_plain_http: bool) -> Result<reqwest::Url, RemoteError> {
    let bad = |reason: &str| RemoteError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "credentials in the URL are not used; pass the token instead",
        ));
    }
    match parsed.scheme() {
        "https" => {}
        "http" => {
            let host = parsed.host_str().unwrap_or_default();
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = match bare.parse::<std::net::IpAddr>() {
                Ok(ip) => ip.is_loopback(),
                Err(_) => host.eq_ignore_ascii_case("localhost"),
            };
            if !loopback && !allow_plain_http {
                return Err(RemoteError::PlainHttp {
                    url: url.to_owned(),
                });
            }
        }
        other => {
            return Err(bad(&format!(
                "the scheme must be http or https, not `{other}`"
            )));
        }
    }
    Ok(parsed)
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

/// What a round trip asks: a digest, for a user name or none.
type Asked = (TokenDigest, Option<CompactString>);

/// A lookup waiting for another's round trip: the answer, or why there is
/// none (a [`StoreError`] is not `Clone`; each waiter gets its own).
type Waiter = tokio::sync::oneshot::Sender<Result<Said, String>>;

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
        for waiter in waiters {
            let _ = waiter.send(self.answer.clone());
        }
    }
}

/// One endpoint answer about a digest, for the user name it was asked with.
struct Answer {
    user: Option<CompactString>,
    said: Said,
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
}

impl Said {
    fn into_result(self) -> Result<Identity, AuthError> {
        match self {
            Said::Active(identity) => Ok(identity),
            Said::Unknown => Err(AuthError::Unknown),
            Said::Expired(expires_at) => Err(AuthError::Expired { expires_at }),
            Said::WrongUser => Err(AuthError::WrongUser),
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
    fn verify(&self, lookup: Lookup<'_>) -> Verification {
        if let Some(result) = self.shared.cached(&lookup) {
            return Verification::Ready(result);
        }
        let asked: Asked = (*lookup.digest(), lookup.user().map(CompactString::new));
        let (tx, rx) = tokio::sync::oneshot::channel();
        // One round trip per digest and name at a time: a burst of requests
        // with a token not yet cached waits for the first one's answer.
        let first = {
            let mut waiting = self
                .shared
                .waiting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let waiters = waiting.entry(asked.clone()).or_default();
            waiters.push(tx);
            waiters.len() == 1
        };
        if first {
            let shared = self.shared.clone();
            self.handle.spawn(async move { shared.ask(asked).await });
        }
        let user = lookup.user().map(CompactString::new);
        Verification::pending(async move {
            match rx.await {
                Ok(Ok(said)) => match (said, user) {
                    // The endpoint checks the name; this is defence in depth.
                    (Said::Active(identity), Some(user)) if user != identity.user() => {
                        Err(AuthError::WrongUser)
                    }
                    (said, _) => said.into_result(),
                },
                Ok(Err(why)) => Err(AuthError::Store(failure(&why))),
                Err(_) => Err(AuthError::Store(failure("the verifier stopped"))),
            }
        })
    }
}

impl Shared {
    /// The cached answer for this lookup, if one is fresh and still says
    /// something about it.
    fn cached(&self, lookup: &Lookup<'_>) -> Option<Result<Identity, AuthError>> {
        let (active, refused) = (self.active.pin(), self.refused.pin());
        let answer = active
            .get(lookup.digest())
            .or_else(|| refused.get(lookup.digest()))?;
        if answer.at.elapsed() >= self.ttl {
            return None;
        }
        match &answer.said {
            // A deadline passed: ask again (a sliding token may have moved).
            Said::Active(identity) if lookup.now() >= identity.expires_at() => None,
            Said::Active(identity) => Some(match lookup.user() {
                Some(user) if user != identity.user() => Err(AuthError::WrongUser),
                _ => Ok(identity.clone()),
            }),
            // A refusal holds for the name it was asked with only.
            refused => {
                (answer.user.as_deref() == lookup.user()).then(|| refused.clone().into_result())
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
        let (digest, user) = &asked;
        let at = Instant::now();
        let answer = match tokio::time::timeout(self.timeout, self.in_flight.acquire()).await {
            Ok(Ok(_permit)) => self.introspect(digest, user.as_deref()).await,
            Ok(Err(_)) => Err(failure("the verifier stopped")),
            Err(_) => Err(failure(&format!(
                "introspection endpoint {}: every connection stayed busy for {:?}",
                self.endpoint, self.timeout
            ))),
        };
        reply.answer = match answer {
            Ok(said) => {
                if self.ttl > Duration::ZERO {
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

    /// One round trip.
    async fn introspect(
        &self,
        digest: &TokenDigest,
        user: Option<&str>,
    ) -> Result<Said, StoreError> {
        let mut form = String::with_capacity(160);
        form.push_str("token_digest=");
        for b in digest.as_bytes() {
            form.push_str(&format!("{b:02x}"));
        }
        if let Some(user) = user {
            form.push_str("&username=");
            form_encode(user, &mut form);
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
        parse_answer(&body).map_err(|reason| {
            failure(&format!(
                "introspection endpoint {} answered {reason}",
                self.endpoint
            ))
        })
    }
}

/// An RFC 7662 answer as pat's endpoint gives it to a digest request.
fn parse_answer(body: &[u8]) -> Result<Said, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("a body that is not JSON ({e})"))?;
    let field = |k: &str| v.get(k).ok_or_else(|| format!("an answer without `{k}`"));
    let time = |k: &str| -> Result<Timestamp, String> {
        field(k)?
            .as_u64()
            .and_then(Timestamp::from_unix_secs)
            .ok_or_else(|| format!("an `{k}` that is not a time"))
    };
    match v.get("active") {
        Some(serde_json::Value::Bool(false)) => {
            return Ok(
                match v.get("pat_reason").and_then(serde_json::Value::as_str) {
                    Some("expired") => Said::Expired(time("exp")?),
                    Some("wrong_user") => Said::WrongUser,
                    _ => Said::Unknown,
                },
            );
        }
        Some(serde_json::Value::Bool(true)) => {}
        _ => return Err("no boolean `active`".into()),
    }
    let user = field("username")?
        .as_str()
        .filter(|u| !u.is_empty())
        .ok_or("a `username` that is not a name")?;
    let id: TokenId = field("jti")?
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or("a `jti` that is not a pat token id")?;
    let (exp, iat) = (time("exp")?, time("iat")?);
    let scopes = match v.get("scope") {
        None => Scopes::unrestricted(),
        Some(s) => {
            let s = s.as_str().ok_or("a `scope` that is not a string")?;
            s.split(' ')
                .map(str::parse)
                .collect::<Result<Scopes, _>>()
                .map_err(|e| format!("a `scope` pat does not read ({e})"))?
        }
    };
    let mut info = TokenInfo::new(id, user, iat, Expiry::Hard { expires_at: exp });
    info.scopes = scopes;
    let identity = Identity::new(&info, exp);
    Ok(Said::Active(match v.get("pat_previous_secret") {
        Some(serde_json::Value::Bool(true)) => identity.by_previous_secret(),
        None | Some(serde_json::Value::Bool(false)) => identity,
        Some(_) => return Err("a `pat_previous_secret` that is not a boolean".into()),
    }))
}

/// `application/x-www-form-urlencoded`: unreserved bytes as they are, the
/// rest as `%XX`.
fn form_encode(value: &str, out: &mut String) {
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
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
mod tests {
    use super::*;

    const NODE: &str = "0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";

    #[test]
    fn endpoint_answers_are_read_strictly() {
        let id = TokenId::generate();
        let active = format!(
            r#"{{"active":true,"username":"alice","sub":"alice","token_type":"pat","exp":100,"iat":10,"jti":"{id}","scope":"node:{NODE}:r"}}"#
        );
        let Ok(Said::Active(identity)) = parse_answer(active.as_bytes()) else {
            panic!("{active}");
        };
        assert_eq!(
            (identity.user(), identity.token_id(), identity.expires_at()),
            ("alice", id, Timestamp::from_unix_secs(100).unwrap())
        );
        assert_eq!(identity.scopes().to_string(), format!("node:{NODE}:r"));
        assert!(!identity.is_previous_secret());
        // A secret in its grace stays one through the verifier.
        let previous = active.replace(
            r#""active":true"#,
            r#""active":true,"pat_previous_secret":true"#,
        );
        let Ok(Said::Active(identity)) = parse_answer(previous.as_bytes()) else {
            panic!("{previous}");
        };
        assert!(identity.is_previous_secret());
        let bad = active.replace(
            r#""active":true"#,
            r#""active":true,"pat_previous_secret":1"#,
        );
        assert!(parse_answer(bad.as_bytes()).is_err());

        assert_eq!(parse_answer(br#"{"active":false}"#), Ok(Said::Unknown));
        assert_eq!(
            parse_answer(br#"{"active":false,"pat_reason":"wrong_user"}"#),
            Ok(Said::WrongUser)
        );
        assert_eq!(
            parse_answer(br#"{"active":false,"pat_reason":"expired","exp":5}"#),
            Ok(Said::Expired(Timestamp::from_unix_secs(5).unwrap()))
        );
        for (body, says) in [
            ("<html>", "not JSON"),
            ("{}", "no boolean `active`"),
            (r#"{"active":"yes"}"#, "no boolean `active`"),
            (
                r#"{"active":false,"pat_reason":"expired"}"#,
                "without `exp`",
            ),
            (r#"{"active":true,"jti":"x"}"#, "without `username`"),
            (r#"{"active":true,"username":"","jti":"x"}"#, "not a name"),
            (r#"{"active":true,"username":"a","jti":"x"}"#, "`jti`"),
        ] {
            let e = parse_answer(body.as_bytes()).unwrap_err();
            assert!(e.contains(says), "{body}: {e}");
        }
        let bad_scope = active.replace(":r\"", ":x\"");
        assert!(
            parse_answer(bad_scope.as_bytes())
                .unwrap_err()
                .contains("scope")
        );
        let negative = active.replace("\"exp\":100", "\"exp\":-1");
        assert!(
            parse_answer(negative.as_bytes())
                .unwrap_err()
                .contains("`exp`")
        );
    }

    proptest::proptest! {
        #[test]
        fn no_answer_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = parse_answer(&body);
        }
    }

    #[test]
    fn waiters_get_an_answer_even_when_a_round_trip_panics() {
        let v = RemoteVerifier::connect("http://127.0.0.1:9/x", &TokenSecret::generate()).unwrap();
        let asked: Asked = (TokenSecret::generate().digest(), None);
        let (tx, rx) = tokio::sync::oneshot::channel();
        v.shared
            .waiting
            .lock()
            .unwrap()
            .insert(asked.clone(), vec![tx]);
        let shared = &v.shared;
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _reply = Reply {
                shared,
                asked: &asked,
                answer: Err("the remote check stopped before an answer".into()),
            };
            panic!("a bug in a round trip");
        }));
        assert!(crashed.is_err());
        let answer = rx.blocking_recv().expect("answered, not dropped");
        assert!(answer.is_err());
        assert!(
            v.shared.waiting.lock().unwrap().is_empty(),
            "nobody left waiting"
        );
    }

    #[test]
    fn user_names_are_form_encoded() {
        let mut out = String::new();
        form_encode("a b&c=d/é~", &mut out);
        assert_eq!(out, "a%20b%26c%3Dd%2F%C3%A9~");
    }
}
