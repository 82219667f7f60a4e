//! GitLab's Token Revocation API, served for GitLab's secret detection: a
//! GitLab instance that finds a token of this store in a repository posts
//! it here, and each live one is revoked at once.
//!
//! GitLab calls two routes, each with the pre-shared secret the operator
//! gave it (`secret_detection_token_revocation_token`) as the whole value
//! of `Authorization`:
//!
//! | route | answer |
//! |---|---|
//! | `GET …/v1/revocable_token_types` | 200, `{"types": [...]}`: the finding types this service revokes ([`DEFAULT_TYPE`] and the rule id's own spelling unless set) |
//! | `POST …/v1/revoke_tokens` | 204: every live token of this store in the JSON array of `{"type", "token", "location"}` is revoked (audit actor `GitLab secret detection ("LOCATION")`, quoted); 400 for another body or a type this service does not revoke (revoking nothing: GitLab must not retry it); 503 when the store fails (GitLab may send it again; a revocation done already is a no-op) |
//!
//! A missing or wrong secret is `401`, compared in constant time. Past
//! [`DEFAULT_REFUSALS`](crate::secret_scanning::DEFAULT_REFUSALS) wrong
//! secrets a minute from one client address (an IPv4 address, an IPv6
//! `/64`), that client gets `429` with `Retry-After` before anything else
//! is checked, so that the secret cannot be guessed at speed; a call with
//! no `Authorization` at all is refused without being counted, so that
//! other callers sharing GitLab's address (its webhooks) cannot lock it
//! out. The body is read
//! within [`MAX_REPORT_LEN`](crate::secret_scanning::MAX_REPORT_LEN), at
//! most [`MAX_REPORTED`](crate::leaks::MAX_REPORTED) tokens.
//!
//! The decisions are the same as for GitHub's partner program
//! ([`crate::secret_scanning`]): a report of found tokens, each live one of
//! this store revoked and audited; only the authentication (a shared secret
//! rather than a signature) and the answers (GitLab wants no feedback)
//! differ.
//!
//! GitLab names a finding's type from the secret detection rule that
//! found it: the identifier type `gitleaks_rule_id`, `_`, and the rule's
//! name. [`DEFAULT_TYPE`] is the name for the rule `pat-cli scan-rules
//! --format gitleaks` prints; a deployment with a rule of its own sets its
//! types with [`TokenRevocation::types`].

use crate::model::event::LEAK_ACTORS;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::backend::admin::Admin;
use crate::gate::limiter::PerAddress;
use crate::leaks::MAX_REPORTED;
use crate::model::time::Timestamp;
use crate::routes::answer::Answer;
use crate::routes::proxy::TrustedProxies;
use crate::routes::secret_scanning::{Admitted, DEFAULT_REFUSALS, Route, noted, revoke_found};

/// The finding type GitLab gives a token found by the gitleaks rule that
/// `pat-cli scan-rules --format gitleaks` prints
/// ([`GITLEAKS_RULE_ID`](crate::scanning::GITLEAKS_RULE_ID)), as GitLab's
/// docs spell such names (lowercase, `_` between words). The rule's id as
/// written, with its `-`, is offered too ([`TokenRevocation::types`]
/// lists both), since only a running GitLab says which it sends.
pub const DEFAULT_TYPE: &str = "gitleaks_rule_id_pat_personal_access_token";

/// The types offered by default: [`DEFAULT_TYPE`], and the rule's id as
/// written.
fn default_types() -> Arc<[String]> {
    let id = crate::scanning::GITLEAKS_RULE_ID;
    Arc::from([
        format!("gitleaks_rule_id_{}", id.replace('-', "_")),
        format!("gitleaks_rule_id_{id}"),
    ])
}

/// The shortest pre-shared secret [`TokenRevocation::new`] takes.
pub const MIN_SECRET_LEN: usize = 16;

/// A pre-shared secret too short to stand guessing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the GitLab revocation secret has {found} characters; it needs at least {MIN_SECRET_LEN} \
     (as `openssl rand -hex 32` makes)"
)]
#[non_exhaustive]
pub struct WeakSecret {
    /// Its length.
    pub found: usize,
}

/// The Token Revocation API's decisions over a backend.
#[derive(Clone)]
pub struct TokenRevocation {
    admin: Arc<dyn Admin + Send + Sync>,
    /// SHA-256 of the secret: compared whole, in constant time, and no
    /// copy of the secret kept.
    secret: [u8; 32],
    types: Arc<[String]>,
    proxies: TrustedProxies,
    refusals: Arc<PerAddress>,
}

impl std::fmt::Debug for TokenRevocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not even the secret's digest.
        f.debug_struct("TokenRevocation")
            .field("types", &self.types)
            .finish_non_exhaustive()
    }
}

impl TokenRevocation {
    /// Calls authenticated with `secret` (at least [`MIN_SECRET_LEN`]
    /// characters, surrounding whitespace ignored), revoking tokens of
    /// `admin`.
    pub fn new(
        admin: Arc<dyn Admin + Send + Sync>,
        secret: &str,
    ) -> Result<TokenRevocation, WeakSecret> {
        // Trimmed as a presented one is: ASCII whitespace only.
        let secret = secret.trim_ascii();
        if secret.chars().count() < MIN_SECRET_LEN {
            return Err(WeakSecret {
                found: secret.chars().count(),
            });
        }
        Ok(TokenRevocation {
            admin,
            secret: Sha256::digest(secret.as_bytes()).into(),
            types: default_types(),
            proxies: TrustedProxies::none(),
            refusals: Arc::new(PerAddress::new(DEFAULT_REFUSALS, Duration::from_secs(60))),
        })
    }

    /// The finding types this service revokes (default [`DEFAULT_TYPE`]
    /// and `gitleaks_rule_id_pat-personal-access-token`).
    pub fn types<I>(mut self, types: I) -> TokenRevocation
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.types = types.into_iter().map(Into::into).collect();
        self
    }

    crate::routes::proxy::client_address!(TokenRevocation);

    /// At most `refused` refused calls per `window` from one client
    /// address (default
    /// [`DEFAULT_REFUSALS`](crate::secret_scanning::DEFAULT_REFUSALS) a
    /// minute).
    pub fn refusal_limit(mut self, refused: u32, window: Duration) -> TokenRevocation {
        self.refusals = Arc::new(PerAddress::new(refused, window));
        self
    }

    /// What to do before anything else: `Err`, the answer to send (the
    /// client is past its refusals, `429`; no `Authorization`, `401`, not
    /// counted, since turning it away costs nothing; `Authorization` that
    /// is not the secret, `401`, counted: a guess); `Ok`, a call with the
    /// secret, to hand to [`token_types`](TokenRevocation::token_types) or
    /// [`revoke_blocking`](TokenRevocation::revoke_blocking). No I/O: the
    /// adapters ask it on their event loop, before any body is read.
    pub fn precheck(
        &self,
        client: IpAddr,
        authorization: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<Admitted, Answer> {
        let too_many = |retry_after| {
            Answer::too_many(
                "too many refused calls from this address; retry later",
                retry_after,
            )
        };
        self.refusals.check(client, now).map_err(too_many)?;
        let refused = || {
            Answer::error(
                401,
                "invalid_token",
                "the Authorization header is not the shared secret",
            )
        };
        let Some(authorization) = authorization else {
            // Free to refuse, and not counted: no warning per call either.
            tracing::debug!(%client, "GitLab token revocation call without a secret");
            return Err(refused());
        };
        let presented: [u8; 32] = Sha256::digest(authorization.trim_ascii()).into();
        // Every byte compared, whatever the first difference.
        let differs = presented
            .iter()
            .zip(&self.secret)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differs != 0 {
            tracing::warn!(%client, "GitLab token revocation call refused: not the shared secret");
            self.refusals.admit(client, now).map_err(too_many)?;
            return Err(refused());
        }
        Ok(Admitted::uncounted(client, Route::GitLab))
    }

    /// `GET …/v1/revocable_token_types`, for a call `precheck` admitted.
    pub fn token_types(&self, admitted: Admitted) -> Answer {
        if !admitted.is_for(Route::GitLab) {
            return not_admitted();
        }
        Answer::json(200, &json!({ "types": &*self.types }))
    }

    /// `POST …/v1/revoke_tokens` with the raw `body`, for a call
    /// `precheck` admitted. Blocks (store reads and writes): the adapters
    /// run it on a blocking pool.
    pub fn revoke_blocking(&self, admitted: Admitted, body: &[u8], now: Timestamp) -> Answer {
        if !admitted.is_for(Route::GitLab) {
            return not_admitted();
        }
        let Some(items) = parse(body) else {
            return Answer::error(
                400,
                "invalid_request",
                &format!(
                    "the body must be a JSON array of at most {MAX_REPORTED} objects with \
                     \"type\", \"token\" and \"location\" strings"
                ),
            );
        };
        if let Some(other) = items.iter().find(|i| !self.types.contains(&i.kind)) {
            return Answer::error(
                400,
                "unsupported_token_type",
                &format!(
                    "this service does not revoke tokens of type {:?}",
                    noted(&other.kind)
                ),
            );
        }
        let mut revoked = 0;
        for item in &items {
            let actor = || format!("{}{:?})", LEAK_ACTORS[1], noted(&item.location));
            match revoke_found(&*self.admin, &item.token, actor, now) {
                Ok(live) => revoked += usize::from(live),
                // GitLab may send it again; a revocation done is a no-op.
                Err(()) => return Answer::unavailable(),
            }
        }
        if revoked > 0 {
            tracing::warn!(revoked, "tokens GitLab secret detection found were revoked");
        }
        Answer::no_content()
    }
}

/// The answer to a call another route's precheck admitted: a wiring
/// mistake, refused as a call without the secret.
fn not_admitted() -> Answer {
    Answer::error(401, "invalid_token", "not admitted by this route")
}

/// One finding GitLab sends.
struct Finding {
    kind: String,
    token: String,
    location: String,
}

fn parse(body: &[u8]) -> Option<Vec<Finding>> {
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    if items.len() > MAX_REPORTED {
        return None;
    }
    let text = |item: &Value, key: &str| Some(item.get(key)?.as_str()?.to_owned());
    items
        .iter()
        .map(|item| {
            Some(Finding {
                kind: text(item, "type")?,
                token: text(item, "token")?,
                location: text(item, "location").unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExpiryPolicy, MemoryStore, NewToken};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const GITLAB: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    fn now() -> Timestamp {
        Timestamp::now()
    }

    fn findings(tokens: &[(&str, &str)]) -> Vec<u8> {
        let items: Vec<Value> = tokens
            .iter()
            .map(|(kind, token)| {
                json!({"type": kind, "token": token, "location": "https://gitlab.example/x/-/blob/abc/.env"})
            })
            .collect();
        serde_json::to_vec(&items).unwrap()
    }

    #[test]
    fn the_shared_secret_revokes_live_tokens_and_nothing_else_does() {
        let store = Arc::new(MemoryStore::new());
        let new = NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(3600)));
        let live = store.create(&new, now()).unwrap();
        let kept = store.create(&new, now()).unwrap();
        let api = TokenRevocation::new(store.clone(), &format!(" {SECRET}\n")).unwrap();
        assert!(!format!("{api:?}").contains(SECRET));
        let token = live.secret.expose_secret();
        let body = findings(&[(DEFAULT_TYPE, token), (DEFAULT_TYPE, "glpat-not-ours")]);
        let auth = Some(SECRET.as_bytes());

        // Refused, revoking nothing.
        for (i, (authorization, body, status)) in [
            (None, body.clone(), 401),
            (
                Some(&b"0123456789abcdef0123456789abcdeF"[..]),
                body.clone(),
                401,
            ),
            (
                Some(&b"Bearer 0123456789abcdef0123456789abcdef"[..]),
                body.clone(),
                401,
            ),
            (auth, b"{}".to_vec(), 400),
            (auth, findings(&[("gitleaks_rule_id_aws", token)]), 400),
            (auth, br#"[{"type": "x"}]"#.to_vec(), 400),
        ]
        .into_iter()
        .enumerate()
        {
            let from = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, i as u8));
            let a = match api.precheck(from, authorization, now()) {
                Err(refused) => refused,
                Ok(admitted) => api.revoke_blocking(admitted, &body, now()),
            };
            assert_eq!(a.status, status, "case {i}: {}", a.body);
            assert!(!a.body.contains(token), "case {i}: echoed");
        }
        assert!(store.get(live.info.id).is_ok(), "nothing revoked");

        let admit = || api.precheck(GITLAB, auth, now()).unwrap();
        let types = api.token_types(admit());
        assert_eq!(types.status, 200);
        assert_eq!(
            types.body,
            json!({"types": [DEFAULT_TYPE, "gitleaks_rule_id_pat-personal-access-token"]})
                .to_string()
        );
        let a = api.revoke_blocking(admit(), &body, now());
        assert_eq!(a.status, 204, "{}", a.body);
        assert!(store.get(live.info.id).is_err(), "revoked");
        assert!(store.get(kept.info.id).is_ok());
        let log = store.audit(Timestamp::UNIX_EPOCH, None).unwrap();
        assert_eq!(
            log.last().unwrap().actor,
            r#"GitLab secret detection ("https://gitlab.example/x/-/blob/abc/.env")"#
        );
        // Sent again: a no-op, still 204.
        assert_eq!(api.revoke_blocking(admit(), &body, now()).status, 204);
    }

    /// An `Admitted` of GitHub's route opens nothing here, and GitLab's
    /// none of GitHub's.
    #[test]
    fn a_call_admitted_by_another_route_is_refused() {
        let store: Arc<MemoryStore> = Arc::new(MemoryStore::new());
        let api = TokenRevocation::new(store.clone(), SECRET).unwrap();
        let github = crate::secret_scanning::SecretScanning::new(
            store,
            crate::secret_scanning::PublicKeys::default(),
        );
        let der = p256::ecdsa::Signature::from_slice(&[1u8; 64])
            .unwrap()
            .to_der();
        let signature = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der);
        let theirs = || {
            github
                .precheck(GITLAB, Some(b"k1"), Some(signature.as_bytes()), now())
                .unwrap()
        };
        assert_eq!(api.token_types(theirs()).status, 401);
        assert_eq!(api.revoke_blocking(theirs(), b"[]", now()).status, 401);
        let ours = api
            .precheck(GITLAB, Some(SECRET.as_bytes()), now())
            .unwrap();
        let a = github.report_blocking(ours, Some(b"k1"), Some(signature.as_bytes()), b"[]", now());
        assert_eq!(a.status, 401);
    }

    #[test]
    fn guesses_of_the_secret_are_limited_and_weak_secrets_refused() {
        let store: Arc<MemoryStore> = Arc::new(MemoryStore::new());
        assert_eq!(
            TokenRevocation::new(store.clone(), "short").unwrap_err(),
            WeakSecret { found: 5 }
        );
        let api = TokenRevocation::new(store, SECRET)
            .unwrap()
            .refusal_limit(2, Duration::from_secs(60))
            .types(["mine"]);
        // No secret at all costs nothing to refuse and is not counted
        // (another service's webhooks from the same address lock no one out).
        for _ in 0..5 {
            assert_eq!(api.precheck(GITLAB, None, now()).unwrap_err().status, 401);
        }
        for _ in 0..2 {
            let guess = api.precheck(GITLAB, Some(b"guess"), now()).unwrap_err();
            assert_eq!(guess.status, 401);
        }
        let held = api
            .precheck(GITLAB, Some(SECRET.as_bytes()), now())
            .unwrap_err();
        assert_eq!((held.status, held.retry_after), (429, Some(60)));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));
        let a = api.token_types(api.precheck(other, Some(SECRET.as_bytes()), now()).unwrap());
        assert_eq!(a.body, r#"{"types":["mine"]}"#);
    }
}
