//! The decision every adapter asks for: given a request's `Authorization`
//! headers, authenticate, pass through, or reject with RFC 6750 / RFC 7617
//! challenges. pat-tower and pat-actix only translate types around this.

pub mod adapter;
pub(crate) mod credentials;
pub(crate) mod extractors;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::backend::{IntoVerifier, Lookup, Verification, Verifier, VerifyFuture};
use crate::error::{AuthError, ParseTokenError};
use crate::gate::credentials::{Credentials, CredentialsError};
use crate::model::record::Identity;
use crate::model::time::Timestamp;
use crate::model::token::TokenDigest;

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

/// Why a request is rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// No credentials of a scheme we handle: 401, challenges without error.
    MissingCredentials,
    /// A broken `Authorization` header: 400, `error="invalid_request"`.
    InvalidRequest(CredentialsError),
    /// The token was refused: 401, `error="invalid_token"`.
    InvalidToken(TokenProblem),
    /// The backend could not answer: 503 with `Retry-After`, no challenge.
    /// The token may be fine; the client should retry.
    StoreUnavailable,
}

impl RejectReason {
    /// The RFC 6750 error code, if any: `invalid_token` or `invalid_request`.
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            RejectReason::InvalidToken(_) => Some("invalid_token"),
            RejectReason::InvalidRequest(_) => Some("invalid_request"),
            RejectReason::MissingCredentials | RejectReason::StoreUnavailable => None,
        }
    }

    /// A short, header-safe explanation, if any.
    pub fn description(self) -> Option<&'static str> {
        match self {
            RejectReason::InvalidToken(p) => Some(p.description()),
            RejectReason::InvalidRequest(e) => Some(match e {
                CredentialsError::TooLong => "the Authorization header is too long",
                CredentialsError::NotUtf8 => "the Authorization header is not valid UTF-8",
                CredentialsError::Empty => "the Authorization header has no credentials",
                CredentialsError::Base64 => "the Basic credentials are not valid base64",
                CredentialsError::BasicNotUtf8 => "the Basic credentials are not valid UTF-8",
                CredentialsError::NoColon => "the Basic credentials have no colon",
                CredentialsError::Repeated => "more than one Authorization header",
            }),
            RejectReason::StoreUnavailable => Some("the token store is unavailable"),
            RejectReason::MissingCredentials => None,
        }
    }
}

/// What was wrong with a refused token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenProblem {
    /// Not a PAT at all (required mode).
    NotAToken,
    /// Wrong length, alphabet or checksum.
    Malformed,
    /// Never issued, revoked or pruned.
    Unknown,
    /// Past its expiry.
    Expired,
    /// Basic auth with another user's token.
    WrongUser,
}

impl TokenProblem {
    fn description(self) -> &'static str {
        match self {
            TokenProblem::NotAToken => "the credentials are not a personal access token",
            TokenProblem::Malformed => "the token is malformed",
            TokenProblem::Unknown => "the token is unknown or revoked",
            TokenProblem::Expired => "the token has expired",
            TokenProblem::WrongUser => "the user name does not match the token",
        }
    }
}

/// A rejected request: status, challenges and an explanation, ready for an
/// adapter to turn into its framework's response.
#[derive(Clone)]
pub struct Rejection {
    reason: RejectReason,
    gate: Arc<GateConfig>,
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("status", &self.status())
            .field("reason", &self.reason)
            .finish()
    }
}

impl Rejection {
    /// Why the request was rejected.
    pub fn reason(&self) -> RejectReason {
        self.reason
    }

    /// The HTTP status: 401, 400 or 503.
    pub fn status(&self) -> u16 {
        match self.reason {
            RejectReason::MissingCredentials | RejectReason::InvalidToken(_) => 401,
            RejectReason::InvalidRequest(_) => 400,
            RejectReason::StoreUnavailable => 503,
        }
    }

    /// Seconds for a `Retry-After` header: set when the backend was
    /// unavailable (see [`Gate::retry_after`]).
    pub fn retry_after(&self) -> Option<u32> {
        match self.reason {
            RejectReason::StoreUnavailable => Some(self.gate.retry_after),
            _ => None,
        }
    }

    /// The RFC 6750 error code, if any: `invalid_token` or `invalid_request`.
    pub fn error_code(&self) -> Option<&'static str> {
        self.reason.error_code()
    }

    /// A short, header-safe explanation, if any.
    pub fn description(&self) -> Option<&'static str> {
        self.reason.description()
    }

    /// The `WWW-Authenticate` values to send, one header each: a Bearer
    /// challenge (RFC 6750 §3, with the error when credentials were sent) and
    /// a Basic challenge (RFC 7617). None when the backend was unavailable.
    /// Made once per gate, not per request.
    pub fn challenges(&self) -> &[String] {
        match challenge_index(self.reason) {
            Some(i) => &self.gate.challenges[i],
            None => &[],
        }
    }

    /// A small JSON body, `{"error":"invalid_token","error_description":"…"}`,
    /// for rejection hooks that want one.
    pub fn json_body(&self) -> String {
        let code = self.error_code().unwrap_or(match self.reason {
            RejectReason::StoreUnavailable => "temporarily_unavailable",
            _ => "unauthorized",
        });
        match self.description() {
            Some(desc) => format!("{{\"error\":\"{code}\",\"error_description\":\"{desc}\"}}"),
            None => format!("{{\"error\":\"{code}\"}}"),
        }
    }
}

#[derive(Clone)]
struct GateConfig {
    realm: String,
    mode: Mode,
    reject_preflight: bool,
    retry_after: u32,
    /// The two challenges of each rejection that has them, by
    /// [`challenge_index`].
    challenges: Vec<[String; 2]>,
}

/// Every rejection reason that carries challenges.
const CHALLENGED: [RejectReason; 13] = [
    RejectReason::MissingCredentials,
    RejectReason::InvalidRequest(CredentialsError::TooLong),
    RejectReason::InvalidRequest(CredentialsError::NotUtf8),
    RejectReason::InvalidRequest(CredentialsError::Empty),
    RejectReason::InvalidRequest(CredentialsError::Base64),
    RejectReason::InvalidRequest(CredentialsError::BasicNotUtf8),
    RejectReason::InvalidRequest(CredentialsError::NoColon),
    RejectReason::InvalidRequest(CredentialsError::Repeated),
    RejectReason::InvalidToken(TokenProblem::NotAToken),
    RejectReason::InvalidToken(TokenProblem::Malformed),
    RejectReason::InvalidToken(TokenProblem::Unknown),
    RejectReason::InvalidToken(TokenProblem::Expired),
    RejectReason::InvalidToken(TokenProblem::WrongUser),
];

/// Where `reason`'s challenges are in [`GateConfig::challenges`]; `None`
/// for a rejection without (the backend unavailable).
fn challenge_index(reason: RejectReason) -> Option<usize> {
    CHALLENGED.iter().position(|r| *r == reason)
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
    /// an `OPTIONS` with `Access-Control-Request-Method`.
    pub fn check<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
        cors_preflight: bool,
    ) -> Checking {
        self.check_at(authorization, cors_preflight, Timestamp::now())
    }

    /// [`check`](Gate::check) with an explicit clock.
    pub fn check_at<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
        cors_preflight: bool,
        now: Timestamp,
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
        let parsed = Credentials::parse(value);
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
            Ok(Some(Credentials::Bearer(token))) => (token, None),
            Ok(Some(Credentials::Basic(ref basic))) => (basic.password(), Some(basic.user())),
        };
        let digest = match TokenDigest::from_token(token) {
            Ok(digest) => digest,
            Err(ParseTokenError::Foreign) if optional => return done(Outcome::Anonymous),
            Err(ParseTokenError::Foreign) => {
                return done(self.invalid(TokenProblem::NotAToken));
            }
            Err(_) => return done(self.invalid(TokenProblem::Malformed)),
        };
        match self.verifier.verify(Lookup::new(digest, user, now)) {
            Verification::Ready(result) => done(judge(&self.config, result, digest)),
            Verification::Pending(future) => Checking {
                state: State::Verifying {
                    future,
                    config: self.config.clone(),
                    digest,
                },
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

/// The outcome of a backend's answer. Every error maps to a rejection:
/// nothing here passes a request that the backend did not accept.
fn judge(
    config: &Arc<GateConfig>,
    result: Result<Identity, AuthError>,
    digest: TokenDigest,
) -> Outcome {
    let problem = match result {
        Ok(identity) => {
            tracing::debug!(user = %identity.user(), token_id = %identity.token_id(), "token accepted");
            // What was presented, so that acting on the token can require
            // it to be the current secret.
            return Outcome::Authenticated(identity.presented_as(digest));
        }
        Err(AuthError::Unknown) => TokenProblem::Unknown,
        Err(AuthError::Expired { .. }) => TokenProblem::Expired,
        Err(AuthError::WrongUser) => TokenProblem::WrongUser,
        // The gate validated the token already; a backend that says otherwise
        // is refused all the same.
        Err(AuthError::Malformed(_)) => TokenProblem::Malformed,
        Err(AuthError::Store(e)) => {
            tracing::error!(error = %crate::error::chain(&e), "token backend unavailable");
            return reject(config, RejectReason::StoreUnavailable);
        }
    };
    reject(config, RejectReason::InvalidToken(problem))
}

/// A decision in progress: ready at once for a backend that answered
/// without waiting, else a future to poll (see [`Checking::into_ready`]).
#[must_use = "a check must be awaited or matched"]
pub struct Checking {
    state: State,
}

enum State {
    Done(Option<Outcome>),
    Verifying {
        future: VerifyFuture,
        config: Arc<GateConfig>,
        digest: TokenDigest,
    },
}

impl Checking {
    /// The outcome if it is known already (no await needed), else the check
    /// itself, to poll as a future.
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
            State::Verifying { .. } => f.write_str("Checking(verifying)"),
        }
    }
}

impl Future for Checking {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = self.get_mut();
        match &mut this.state {
            State::Done(outcome) => match outcome.take() {
                Some(outcome) => Poll::Ready(outcome),
                // Polled after completion: a caller bug, answered with a
                // rejection rather than a panic on the auth path.
                None => Poll::Ready(Outcome::Rejected(Rejection {
                    reason: RejectReason::StoreUnavailable,
                    gate: Arc::new(GateConfig::new(DEFAULT_REALM)),
                })),
            },
            State::Verifying {
                future,
                config,
                digest,
            } => match future.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(result) => {
                    let outcome = judge(config, result, *digest);
                    this.state = State::Done(None);
                    Poll::Ready(outcome)
                }
            },
        }
    }
}

impl GateConfig {
    fn new(realm: &str) -> GateConfig {
        let mut config = GateConfig {
            realm: realm.to_owned(),
            mode: Mode::Required,
            reject_preflight: false,
            retry_after: 1,
            challenges: Vec::new(),
        };
        config.build_challenges();
        config
    }

    fn build_challenges(&mut self) {
        let mut quoted = String::with_capacity(self.realm.len() + 2);
        quoted.push('"');
        for c in self.realm.chars() {
            match c {
                '"' | '\\' => {
                    quoted.push('\\');
                    quoted.push(c);
                }
                ' '..='~' => quoted.push(c),
                _ => quoted.push('_'),
            }
        }
        quoted.push('"');
        let bearer = format!("Bearer realm={quoted}");
        let basic = format!("Basic realm={quoted}, charset=\"UTF-8\"");
        self.challenges = CHALLENGED
            .iter()
            .map(|&reason| {
                let with_error = match (reason.error_code(), reason.description()) {
                    (Some(code), Some(desc)) => {
                        format!("{bearer}, error=\"{code}\", error_description=\"{desc}\"")
                    }
                    _ => bearer.clone(),
                };
                [with_error, basic.clone()]
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;

    use super::*;
    use crate::testing::conformance::block_on;
    use crate::{Admin as _, ExpiryPolicy, MemoryStore, NewToken, Store, TokenSecret};

    fn at(s: u64) -> Timestamp {
        Timestamp::from_unix_secs(s).unwrap()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<Store>,
        gate: Gate,
        token: String,
        expired: String,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            Store::builder()
                .manual_flush()
                .open(dir.path().join("pat.redb"))
                .unwrap(),
        );
        let hour = ExpiryPolicy::hard(Duration::from_secs(3600));
        let token = store
            .create(&NewToken::new("alice", hour), at(1000))
            .unwrap();
        let old = ExpiryPolicy::hard(Duration::from_secs(10));
        let expired = store.create(&NewToken::new("alice", old), at(0)).unwrap();
        Fixture {
            _dir: dir,
            gate: Gate::new(store.clone()),
            store,
            token: token.secret.expose_secret().to_owned(),
            expired: expired.secret.expose_secret().to_owned(),
        }
    }

    fn check(gate: &Gate, headers: &[&str]) -> Outcome {
        block_on(gate.check_at(headers.iter().map(|h| h.as_bytes()), false, at(1001)))
    }

    fn basic(user: &str, password: &str) -> String {
        let raw = format!("{user}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    #[track_caller]
    fn rejected(o: Outcome) -> Rejection {
        match o {
            Outcome::Rejected(r) => r,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn bearer_and_basic_authenticate() {
        let f = fixture();
        for h in [format!("Bearer {}", f.token), basic("alice", &f.token)] {
            let Outcome::Authenticated(id) = check(&f.gate, &[&h]) else {
                panic!("{h}")
            };
            assert_eq!(id.user(), "alice");
            // The digest presented rides along, for changes that need the
            // current secret.
            let digest = pat_core_digest(&f.token);
            assert_eq!(id.presented(), Some(&digest));
        }
    }

    fn pat_core_digest(token: &str) -> crate::TokenDigest {
        crate::TokenDigest::from_token(token).unwrap()
    }

    #[test]
    fn no_credentials_gets_challenges_without_error() {
        let f = fixture();
        let r = rejected(check(&f.gate, &[]));
        assert_eq!(r.status(), 401);
        assert_eq!(r.error_code(), None);
        assert_eq!(
            r.challenges(),
            [
                "Bearer realm=\"pat\"",
                "Basic realm=\"pat\", charset=\"UTF-8\""
            ]
        );
    }

    #[test]
    fn refused_tokens_say_why() {
        let f = fixture();
        let unknown = TokenSecret::generate();
        let cases = [
            (format!("Bearer {}", f.expired), "the token has expired"),
            (
                format!("Bearer {}", unknown.expose_secret()),
                "the token is unknown or revoked",
            ),
            (
                format!("Bearer {}", &f.token[..30]),
                "the token is malformed",
            ),
            (
                "Bearer ghp_other".to_owned(),
                "the credentials are not a personal access token",
            ),
            (
                basic("bob", &f.token),
                "the user name does not match the token",
            ),
            (
                basic("alice", "hunter2"),
                "the credentials are not a personal access token",
            ),
        ];
        for (h, why) in cases {
            let r = rejected(check(&f.gate, &[&h]));
            assert_eq!(r.status(), 401, "{h}");
            assert_eq!(r.error_code(), Some("invalid_token"));
            assert!(
                r.challenges()[0].ends_with(&format!(
                    "error=\"invalid_token\", error_description=\"{why}\""
                )),
                "{h}: {:?}",
                r.challenges()
            );
            assert!(r.challenges()[0].starts_with("Bearer realm=\"pat\", "));
        }
    }

    #[test]
    fn a_wrong_user_does_not_refresh_the_token() {
        let f = fixture();
        let _ = check(&f.gate, &[&basic("bob", &f.token)]);
        assert_eq!(f.store.pending_uses(), 0);
    }

    #[test]
    fn broken_headers_are_400_invalid_request() {
        let f = fixture();
        let bearer = format!("Bearer {}", f.token);
        for headers in [
            vec!["Basic %%%"],
            vec!["Bearer"],
            vec![bearer.as_str(), bearer.as_str()],
        ] {
            let r = rejected(check(&f.gate, &headers));
            assert_eq!(r.status(), 400);
            assert_eq!(r.error_code(), Some("invalid_request"));
            assert_eq!(r.challenges().len(), 2);
        }
        let r = rejected(block_on(f.gate.check_at(
            [b"Bearer \xff".as_slice()],
            false,
            at(0),
        )));
        assert_eq!(r.status(), 400);
    }

    #[test]
    fn optional_mode_passes_what_is_not_ours_and_still_rejects_bad_pats() {
        let f = fixture();
        let gate = f.gate.clone().mode(Mode::Optional);
        for h in [vec![], vec!["Bearer ghp_other"], vec!["Negotiate abc"]] {
            assert!(matches!(check(&gate, &h), Outcome::Anonymous), "{h:?}");
        }
        let b = basic("alice", "hunter2");
        assert!(matches!(check(&gate, &[&b]), Outcome::Anonymous));
        let expired = format!("Bearer {}", f.expired);
        assert_eq!(rejected(check(&gate, &[&expired])).status(), 401);
        let token = format!("Bearer {}", f.token);
        assert!(matches!(check(&gate, &[&token]), Outcome::Authenticated(_)));
        // Required mode: another scheme is "no credentials of ours".
        let r = rejected(check(&f.gate, &["Negotiate abc"]));
        assert_eq!((r.status(), r.error_code()), (401, None));
    }

    #[test]
    fn preflights_pass_unless_configured() {
        let f = fixture();
        assert!(matches!(
            f.gate.check_at([], true, at(0)).into_ready(),
            Ok(Outcome::Anonymous)
        ));
        let strict = f.gate.clone().reject_preflight(true);
        assert!(matches!(
            strict.check_at([], true, at(0)).into_ready(),
            Ok(Outcome::Rejected(_))
        ));
    }

    #[test]
    fn realm_is_escaped_into_valid_header_values() {
        let f = fixture();
        let gate = f.gate.clone().realm("my \"app\" \\ é");
        let r = rejected(check(&gate, &[]));
        assert_eq!(r.challenges()[0], r#"Bearer realm="my \"app\" \\ _""#);
        assert_eq!(gate.realm_name(), "my \"app\" \\ é");
    }

    #[test]
    fn outcomes_are_logged_without_secrets() {
        let f = fixture();
        let logs = crate::test_logs::capture(|| {
            check(&f.gate, &[&format!("Bearer {}", f.token)]);
            check(&f.gate, &[&format!("Bearer {}", f.expired)]);
            check(&f.gate, &[&basic("alice", &f.token)]);
            check(&f.gate, &[&basic("bob", &f.token)]);
        });
        assert!(
            logs.contains("token accepted") && logs.contains("user=alice"),
            "{logs}"
        );
        assert!(logs.contains("token_id="), "{logs}");
        assert!(logs.contains("Expired"), "{logs}");
        for secret in [&f.token, &f.expired] {
            assert!(!logs.contains(&secret[4..]), "secret in logs: {logs}");
        }
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("alice:{}", f.token));
        assert!(!logs.contains(&encoded));
    }

    #[test]
    fn json_body_is_small_and_valid() {
        let f = fixture();
        let r = rejected(check(&f.gate, &["Bearer ghp_x"]));
        assert_eq!(
            r.json_body(),
            r#"{"error":"invalid_token","error_description":"the credentials are not a personal access token"}"#
        );
        assert_eq!(
            rejected(check(&f.gate, &[])).json_body(),
            r#"{"error":"unauthorized"}"#
        );
    }

    /// A backend answering every lookup later, from another thread, or
    /// failing: what a networked backend does.
    struct Remote {
        inner: Arc<MemoryStore>,
        down: bool,
    }

    impl Verifier for Remote {
        fn verify(&self, lookup: Lookup<'_>) -> Verification {
            let (inner, down) = (self.inner.clone(), self.down);
            let (digest, user, now) = (
                *lookup.digest(),
                lookup.user().map(str::to_owned),
                lookup.now(),
            );
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let result = if down {
                    Err(AuthError::Store(crate::StoreError::Storage(
                        crate::BackendError::new(std::io::Error::other("connection refused")),
                    )))
                } else {
                    block_on(inner.verify(Lookup::new(digest, user.as_deref(), now)))
                };
                let _ = tx.send(result);
            });
            Verification::pending(std::future::poll_fn(move |cx| match rx.try_recv() {
                Ok(r) => std::task::Poll::Ready(r),
                Err(_) => {
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                }
            }))
        }
    }

    #[test]
    fn a_backend_may_answer_later() {
        let inner = Arc::new(MemoryStore::new());
        let hour = ExpiryPolicy::hard(std::time::Duration::from_secs(3600));
        let token = inner
            .create(&NewToken::new("alice", hour), at(1000))
            .unwrap();
        let gate = Gate::new(Remote { inner, down: false });
        let header = format!("Bearer {}", token.secret.expose_secret());
        let checking = gate.check_at([header.as_bytes()], false, at(1001));
        let pending = checking
            .into_ready()
            .expect_err("a remote lookup is pending");
        let Outcome::Authenticated(id) = block_on(pending) else {
            panic!("expected the identity")
        };
        assert_eq!(id.user(), "alice");
        assert_eq!(id.presented(), Some(&token.secret.digest()));
        // Token work stays in the gate: a malformed token never reaches it.
        let bad = format!("Bearer {}", &token.secret.expose_secret()[..30]);
        assert!(matches!(
            gate.check_at([bad.as_bytes()], false, at(1001)).into_ready(),
            Ok(Outcome::Rejected(r)) if r.reason() == RejectReason::InvalidToken(TokenProblem::Malformed)
        ));
    }

    #[test]
    fn an_unavailable_backend_is_503_with_retry_after_never_401() {
        let gate = Gate::new(Remote {
            inner: Arc::new(MemoryStore::new()),
            down: true,
        })
        .retry_after(7);
        let token = TokenSecret::generate();
        let r = rejected(check(
            &gate,
            &[&format!("Bearer {}", token.expose_secret())],
        ));
        assert_eq!(r.status(), 503);
        assert_eq!(r.retry_after(), Some(7));
        assert!(r.challenges().is_empty());
        assert_eq!(
            r.json_body(),
            r#"{"error":"temporarily_unavailable","error_description":"the token store is unavailable"}"#
        );
        // In optional mode too: a PAT nobody could check does not pass.
        let optional = gate.mode(Mode::Optional);
        let r = rejected(check(
            &optional,
            &[&format!("Bearer {}", token.expose_secret())],
        ));
        assert_eq!(r.status(), 503);
    }

    #[test]
    fn two_headers_of_other_schemes_are_not_ours() {
        let f = fixture();
        let optional = f.gate.clone().mode(Mode::Optional);
        let negotiate = format!("Negotiate {}", "YII".repeat(2000));
        let two = [negotiate.as_str(), "Digest username=\"x\""];
        assert!(matches!(check(&optional, &two), Outcome::Anonymous));
        assert_eq!(rejected(check(&f.gate, &two)).status(), 401);
        let bearer = format!("Bearer {}", f.token);
        let mixed = ["Digest username=\"x\"", bearer.as_str()];
        assert_eq!(rejected(check(&optional, &mixed)).status(), 400);
    }
}
