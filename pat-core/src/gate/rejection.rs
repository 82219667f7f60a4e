//! What a refused request gets: why ([`RejectReason`], [`TokenProblem`]),
//! and the [`Rejection`] an adapter turns into its framework's response,
//! with the challenges the gate's configuration made once.

use std::fmt;
use std::sync::Arc;

use super::Mode;
use crate::gate::credentials::CredentialsError;
pub use crate::model::rate::Throttled;

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
    /// The token is valid but its [rate limit](crate::TokenInfo::rate) has
    /// no use left: 429 with `Retry-After`, `RateLimit-Policy` and
    /// `RateLimit`, no challenge.
    RateLimited(Throttled),
}

impl RejectReason {
    /// The RFC 6750 error code, if any: `invalid_token` or `invalid_request`.
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            RejectReason::InvalidToken(_) => Some("invalid_token"),
            RejectReason::InvalidRequest(_) => Some("invalid_request"),
            RejectReason::MissingCredentials
            | RejectReason::StoreUnavailable
            | RejectReason::RateLimited(_) => None,
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
            RejectReason::RateLimited(_) => Some("the token's rate limit is used up for now"),
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
    /// Disabled (suspended) by an admin until enabled again.
    Disabled,
    /// Presented from an address its address rule does not allow (or
    /// whose address is not known).
    AddressNotAllowed,
    /// Basic auth with another user's token.
    WrongUser,
    /// Accepted as many times as its use quota allows.
    UsedUp,
}

impl TokenProblem {
    pub(super) fn description(self) -> &'static str {
        match self {
            TokenProblem::NotAToken => "the credentials are not a personal access token",
            TokenProblem::Malformed => "the token is malformed",
            TokenProblem::Unknown => "the token is unknown or revoked",
            TokenProblem::Expired => "the token has expired",
            TokenProblem::Disabled => "the token is disabled",
            TokenProblem::AddressNotAllowed => "the token may not be used from this address",
            TokenProblem::WrongUser => "the user name does not match the token",
            TokenProblem::UsedUp => "the token has no uses left",
        }
    }
}

/// A rejected request: status, challenges and an explanation, ready for an
/// adapter to turn into its framework's response.
#[derive(Clone)]
pub struct Rejection {
    pub(super) reason: RejectReason,
    pub(super) gate: Arc<GateConfig>,
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

    /// The HTTP status: 401, 400, 429 or 503.
    pub fn status(&self) -> u16 {
        match self.reason {
            RejectReason::MissingCredentials | RejectReason::InvalidToken(_) => 401,
            RejectReason::InvalidRequest(_) => 400,
            RejectReason::RateLimited(_) => 429,
            RejectReason::StoreUnavailable => 503,
        }
    }

    /// Seconds for a `Retry-After` header: set when the backend was
    /// unavailable (see [`Gate::retry_after`](crate::Gate::retry_after)),
    /// and when the token's rate limit has no use left (until it has one).
    pub fn retry_after(&self) -> Option<u32> {
        match self.reason {
            RejectReason::StoreUnavailable => Some(self.gate.retry_after),
            RejectReason::RateLimited(t) => Some(t.retry_after),
            _ => None,
        }
    }

    /// The `RateLimit-Policy` and `RateLimit` header values of a rate-limit
    /// refusal (see [`Throttled`]); `None` for other rejections.
    pub fn rate_limit_fields(&self) -> Option<[(&'static str, String); 2]> {
        match self.reason {
            RejectReason::RateLimited(t) => Some([
                ("ratelimit-policy", t.policy_field()),
                ("ratelimit", t.limit_field()),
            ]),
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
            RejectReason::RateLimited(_) => "rate_limited",
            _ => "unauthorized",
        });
        match self.description() {
            Some(desc) => format!("{{\"error\":\"{code}\",\"error_description\":\"{desc}\"}}"),
            None => format!("{{\"error\":\"{code}\"}}"),
        }
    }
}

#[derive(Clone)]
pub(super) struct GateConfig {
    pub(super) realm: String,
    pub(super) mode: Mode,
    pub(super) reject_preflight: bool,
    pub(super) retry_after: u32,
    /// The proxies whose forwarding headers name the client.
    pub(super) proxies: crate::TrustedProxies,
    /// The counts of the rate-limited tokens, shared by the gate's clones.
    pub(super) rates: Arc<dyn crate::model::rate::RateCounter>,
    /// The two challenges of each rejection that has them, by
    /// [`challenge_index`].
    pub(super) challenges: Vec<[String; 2]>,
    /// The handles decisions are counted with.
    pub(super) metrics: crate::metrics::GateMetrics,
}

/// `realm` as a challenge's quoted string: `"` and `\\` escaped, anything
/// but printable ASCII made `_`, so that a header value always holds.
pub(super) fn quoted_realm(realm: &str) -> String {
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
    quoted
}

/// Every rejection reason that carries challenges.
pub(super) const CHALLENGED: [RejectReason; 16] = [
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
    RejectReason::InvalidToken(TokenProblem::Disabled),
    RejectReason::InvalidToken(TokenProblem::AddressNotAllowed),
    RejectReason::InvalidToken(TokenProblem::WrongUser),
    RejectReason::InvalidToken(TokenProblem::UsedUp),
];

/// Where `reason`'s challenges are in [`GateConfig::challenges`]; `None`
/// for a rejection without (the backend unavailable).
pub(super) fn challenge_index(reason: RejectReason) -> Option<usize> {
    CHALLENGED.iter().position(|r| *r == reason)
}

impl GateConfig {
    pub(super) fn new(realm: &str) -> GateConfig {
        let mut config = GateConfig {
            realm: realm.to_owned(),
            mode: Mode::Required,
            reject_preflight: false,
            retry_after: 1,
            proxies: crate::TrustedProxies::none(),
            rates: Arc::new(crate::gate::rate::Rates::default()),
            challenges: Vec::new(),
            metrics: crate::metrics::GateMetrics::new(),
        };
        config.build_challenges();
        config
    }

    pub(super) fn build_challenges(&mut self) {
        let quoted = quoted_realm(&self.realm);
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
    use super::*;

    /// Every refused token carries its challenges. Regression: a new
    /// problem (`Disabled`) left out of [`CHALLENGED`] was answered 401
    /// with no `WWW-Authenticate` at all.
    #[test]
    fn every_token_problem_is_challenged() {
        // Exhaustive, so that a new problem fails to compile here until it
        // is listed.
        let all = |p: TokenProblem| match p {
            TokenProblem::NotAToken
            | TokenProblem::Malformed
            | TokenProblem::Unknown
            | TokenProblem::Expired
            | TokenProblem::Disabled
            | TokenProblem::AddressNotAllowed
            | TokenProblem::WrongUser
            | TokenProblem::UsedUp => p,
        };
        for p in [
            TokenProblem::NotAToken,
            TokenProblem::Malformed,
            TokenProblem::Unknown,
            TokenProblem::Expired,
            TokenProblem::Disabled,
            TokenProblem::AddressNotAllowed,
            TokenProblem::WrongUser,
            TokenProblem::UsedUp,
        ]
        .map(all)
        {
            assert!(
                challenge_index(RejectReason::InvalidToken(p)).is_some(),
                "{p:?} has no challenge"
            );
        }
    }
}
