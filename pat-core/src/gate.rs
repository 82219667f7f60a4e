//! The decision every adapter asks for: given a request's `Authorization`
//! headers, authenticate, pass through, or reject with RFC 6750 / RFC 7617
//! challenges. pat-tower and pat-actix only translate types around this.

use std::fmt;
use std::sync::Arc;

use crate::admin::Verifier;
use crate::credentials::{Credentials, CredentialsError};
use crate::error::{AuthError, ParseTokenError};
use crate::record::Identity;
use crate::time::Timestamp;

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
#[derive(Debug)]
#[non_exhaustive]
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
    /// The store failed: 500, no challenge.
    StoreUnavailable,
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

    /// The HTTP status: 401, 400 or 500.
    pub fn status(&self) -> u16 {
        match self.reason {
            RejectReason::MissingCredentials | RejectReason::InvalidToken(_) => 401,
            RejectReason::InvalidRequest(_) => 400,
            RejectReason::StoreUnavailable => 500,
        }
    }

    /// The RFC 6750 error code, if any: `invalid_token` or `invalid_request`.
    pub fn error_code(&self) -> Option<&'static str> {
        match self.reason {
            RejectReason::InvalidToken(_) => Some("invalid_token"),
            RejectReason::InvalidRequest(_) => Some("invalid_request"),
            RejectReason::MissingCredentials | RejectReason::StoreUnavailable => None,
        }
    }

    /// A short, header-safe explanation, if any.
    pub fn description(&self) -> Option<&'static str> {
        match self.reason {
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

    /// The `WWW-Authenticate` values to send, one header each: a Bearer
    /// challenge (RFC 6750 §3, with the error when credentials were sent) and
    /// a Basic challenge (RFC 7617). None for a store failure.
    pub fn challenges(&self) -> Vec<String> {
        if self.reason == RejectReason::StoreUnavailable {
            return Vec::new();
        }
        let bearer = match (self.error_code(), self.description()) {
            (Some(code), Some(desc)) => format!(
                "{}, error=\"{code}\", error_description=\"{desc}\"",
                self.gate.bearer_challenge
            ),
            _ => self.gate.bearer_challenge.clone(),
        };
        vec![bearer, self.gate.basic_challenge.clone()]
    }

    /// A small JSON body, `{"error":"invalid_token","error_description":"…"}`,
    /// for rejection hooks that want one.
    pub fn json_body(&self) -> String {
        let code = self.error_code().unwrap_or(match self.reason {
            RejectReason::StoreUnavailable => "server_error",
            _ => "unauthorized",
        });
        match self.description() {
            Some(desc) => format!("{{\"error\":\"{code}\",\"error_description\":\"{desc}\"}}"),
            None => format!("{{\"error\":\"{code}\"}}"),
        }
    }
}

struct GateConfig {
    realm: String,
    mode: Mode,
    reject_preflight: bool,
    bearer_challenge: String,
    basic_challenge: String,
}

/// The shared authentication logic of the adapters: holds the store and the
/// configuration, and decides each request's [`Outcome`]. Cheap to clone.
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
            .finish()
    }
}

/// The default realm of the challenges.
pub const DEFAULT_REALM: &str = "pat";

impl Gate {
    /// A gate in required mode with realm `"pat"`, checking tokens with
    /// `verifier` (an `Arc<Store>`, or another backend).
    pub fn new(verifier: Arc<dyn Verifier>) -> Gate {
        Gate {
            verifier,
            config: Arc::new(GateConfig::new(DEFAULT_REALM, Mode::Required, false)),
        }
    }

    /// Sets the realm of the challenges. `"` and `\` are escaped; characters
    /// outside printable ASCII become `_`, so any string yields valid headers.
    pub fn realm(mut self, realm: &str) -> Gate {
        self.config = Arc::new(GateConfig::new(
            realm,
            self.config.mode,
            self.config.reject_preflight,
        ));
        self
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> Gate {
        self.config = Arc::new(GateConfig::new(
            &self.config.realm,
            mode,
            self.config.reject_preflight,
        ));
        self
    }

    /// Whether CORS preflights (`OPTIONS` with `Access-Control-Request-Method`)
    /// are checked like other requests. By default they pass without an
    /// identity, since browsers never attach credentials to them.
    pub fn reject_preflight(mut self, reject: bool) -> Gate {
        self.config = Arc::new(GateConfig::new(
            &self.config.realm,
            self.config.mode,
            reject,
        ));
        self
    }

    /// The realm, as configured (before escaping).
    pub fn realm_name(&self) -> &str {
        &self.config.realm
    }

    /// The configured mode.
    pub fn current_mode(&self) -> Mode {
        self.config.mode
    }

    /// Decides a request. `authorization` yields the raw value of every
    /// `Authorization` header; `cors_preflight` tells whether the request is
    /// an `OPTIONS` with `Access-Control-Request-Method`.
    pub fn check<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
        cors_preflight: bool,
    ) -> Outcome {
        self.check_at(authorization, cors_preflight, Timestamp::now())
    }

    /// [`check`](Gate::check) with an explicit clock.
    pub fn check_at<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
        cors_preflight: bool,
        now: Timestamp,
    ) -> Outcome {
        if cors_preflight && !self.config.reject_preflight {
            return Outcome::Anonymous;
        }
        let optional = self.config.mode == Mode::Optional;
        let mut values = authorization.into_iter();
        let Some(value) = values.next() else {
            return if optional {
                Outcome::Anonymous
            } else {
                self.reject(RejectReason::MissingCredentials)
            };
        };
        if values.next().is_some() {
            return self.reject(RejectReason::InvalidRequest(CredentialsError::Repeated));
        }
        let result = match Credentials::parse(value) {
            Err(e) => return self.reject(RejectReason::InvalidRequest(e)),
            Ok(None) if optional => return Outcome::Anonymous,
            Ok(None) => return self.reject(RejectReason::MissingCredentials),
            Ok(Some(Credentials::Bearer(token))) => self.verifier.authenticate(token, now),
            Ok(Some(Credentials::Basic(basic))) => {
                self.verifier
                    .authenticate_as(basic.user(), basic.password(), now)
            }
        };
        let problem = match result {
            Ok(identity) => {
                tracing::debug!(user = %identity.user, token_id = %identity.token_id, "token accepted");
                return Outcome::Authenticated(identity);
            }
            Err(AuthError::Malformed(ParseTokenError::Foreign)) if optional => {
                return Outcome::Anonymous;
            }
            Err(AuthError::Malformed(ParseTokenError::Foreign)) => TokenProblem::NotAToken,
            Err(AuthError::Malformed(_)) => TokenProblem::Malformed,
            Err(AuthError::Unknown) => TokenProblem::Unknown,
            Err(AuthError::Expired { .. }) => TokenProblem::Expired,
            Err(AuthError::WrongUser) => TokenProblem::WrongUser,
            Err(AuthError::Store(e)) => {
                tracing::error!(error = %e, "token store failed");
                return self.reject(RejectReason::StoreUnavailable);
            }
        };
        self.reject(RejectReason::InvalidToken(problem))
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

    fn reject(&self, reason: RejectReason) -> Outcome {
        tracing::debug!(?reason, "request rejected");
        Outcome::Rejected(Rejection {
            reason,
            gate: self.config.clone(),
        })
    }
}

impl GateConfig {
    fn new(realm: &str, mode: Mode, reject_preflight: bool) -> GateConfig {
        let mut quoted = String::with_capacity(realm.len() + 2);
        quoted.push('"');
        for c in realm.chars() {
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
        GateConfig {
            realm: realm.to_owned(),
            mode,
            reject_preflight,
            bearer_challenge: format!("Bearer realm={quoted}"),
            basic_challenge: format!("Basic realm={quoted}, charset=\"UTF-8\""),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;

    use super::*;
    use crate::{Admin as _, ExpiryPolicy, NewToken, Store, TokenSecret};

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
        gate.check_at(headers.iter().map(|h| h.as_bytes()), false, at(1001))
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
            assert_eq!(id.user, "alice");
        }
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
        let r = rejected(f.gate.check_at([b"Bearer \xff".as_slice()], false, at(0)));
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
            f.gate.check_at([], true, at(0)),
            Outcome::Anonymous
        ));
        let strict = f.gate.clone().reject_preflight(true);
        assert!(matches!(
            strict.check_at([], true, at(0)),
            Outcome::Rejected(_)
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
        use std::sync::Mutex;

        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let f = fixture();
        let logs = Buffer::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            check(&f.gate, &[&format!("Bearer {}", f.token)]);
            check(&f.gate, &[&format!("Bearer {}", f.expired)]);
            check(&f.gate, &[&basic("alice", &f.token)]);
            check(&f.gate, &[&basic("bob", &f.token)]);
        });
        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
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
}
