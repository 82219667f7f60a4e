//! Self-service: a token managing itself, as Vault's `lookup-self` /
//! `revoke-self` and GitLab's `personal_access_tokens/self` allow (a bot
//! rotating its own credential needs no admin).
//!
//! The decisions live here so that every framework answers byte for byte
//! alike; pat-tower's `self_service` router and pat-actix's
//! `self_service` scope only route to them, behind the PAT layer:
//!
//! | route | answer |
//! |---|---|
//! | `GET …/self` | 200, the presenting token's record (never a secret) |
//! | `DELETE …/self` | 200, the record of the token just revoked; the next request with it is refused |
//! | `POST …/self/rotate` | 200, a new secret (shown once) for the same token; query `grace`, and `expire` or `auto` (with `max_lifetime`), durations like the CLI's |
//!
//! Changes are in the audit log as done by `token ID`. A rotation stays in
//! the token's envelope ([`crate::backend::authority::rotate`]): asking for a longer
//! life, or past the policy or a parent, is 403 `forbidden` naming the
//! limit. A secret in its grace after a rotation authenticates, but
//! rotating or revoking with it is 403.
//!
//! Every answer is JSON with `Cache-Control: no-store`. A token that is gone
//! by the time the call runs is 404 `not_found`, bad query parameters 400
//! `invalid_request` naming the parameter, a store failure 503
//! `temporarily_unavailable` (the cause is logged, not shown). A scoped
//! token may use these routes: they only ever touch the token presenting
//! them.
//!
//! The [`Admin`] calls are blocking (a durable write, or a database round
//! trip): the adapters run them off the async workers.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::backend::admin::Admin;
use crate::error::StoreError;
use crate::model::expiry::ExpiryPolicy;
use crate::model::record::{Identity, Rotation};
use crate::model::time::{Timestamp, parse_duration};

/// The self-service decisions over an [`Admin`] backend.
#[derive(Clone)]
pub struct SelfService {
    admin: Arc<dyn Admin + Send + Sync>,
}

impl std::fmt::Debug for SelfService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfService").finish_non_exhaustive()
    }
}

pub use crate::routes::answer::Answer;

/// A store error as self-service answers it.
fn failed(e: &StoreError, identity: &Identity) -> Answer {
    match e {
        StoreError::NotFound(_) => Answer::error(404, "not_found", "the token no longer exists"),
        StoreError::NewToken(e) => Answer::error(400, "invalid_request", &e.to_string()),
        // The store's policy refused the rotation: the client must not
        // retry it, and needs to know which limit.
        StoreError::Policy(e) => Answer::error(403, "forbidden", &e.to_string()),
        // The authority rule refused it (a longer life, past a parent).
        StoreError::Authority(e) => Answer::error(403, "forbidden", &e.to_string()),
        e => {
            tracing::error!(
                token_id = %identity.token_id(),
                error = %crate::error::chain(e),
                "self-service call failed"
            );
            Answer::unavailable()
        }
    }
}

pub use crate::routes::answer::token_json;

/// The answer to a secret in its grace asking to act on its token: it
/// authenticates, but only the current secret rotates, revokes or mints.
pub(crate) fn previous_secret_refused() -> Answer {
    Answer::error(
        403,
        "forbidden",
        "this secret was replaced by a rotation and only authenticates until its grace ends: \
         use the current secret to rotate, revoke or make tokens",
    )
}

impl SelfService {
    /// Self-service over `admin` (a [`Store`](crate::Store),
    /// [`MemoryStore`](crate::MemoryStore), `PgStore` or your own backend,
    /// usually the one the layer checks tokens with).
    pub fn new(admin: Arc<dyn Admin + Send + Sync>) -> SelfService {
        SelfService { admin }
    }

    /// The answer when the call itself could not run (a panicked worker):
    /// 503 like a store failure.
    pub fn unavailable() -> Answer {
        Answer::unavailable()
    }

    /// Renamed [`lookup_blocking`](SelfService::lookup_blocking).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `lookup_blocking`, like every blocking route call"
    )]
    pub fn lookup(&self, identity: &Identity) -> Answer {
        self.lookup_blocking(identity)
    }

    /// Renamed [`revoke_blocking`](SelfService::revoke_blocking).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `revoke_blocking`, like every blocking route call"
    )]
    pub fn revoke(&self, identity: &Identity) -> Answer {
        self.revoke_blocking(identity)
    }

    /// Renamed [`rotate_blocking`](SelfService::rotate_blocking).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `rotate_blocking`, like every blocking route call"
    )]
    pub fn rotate(&self, identity: &Identity, query: Option<&str>, now: Timestamp) -> Answer {
        self.rotate_blocking(identity, query, now)
    }

    /// The store, acting for the audit log as the token itself.
    fn as_token(&self, identity: &Identity) -> Box<dyn Admin + '_> {
        self.admin
            .acting_as(&format!("token {}", identity.token_id()))
    }

    /// `GET …/self`: the presenting token's record. Blocks on the store, as
    /// every `_blocking` route call does: call it off the async workers.
    pub fn lookup_blocking(&self, identity: &Identity) -> Answer {
        match self.admin.get(identity.token_id()) {
            Ok(info) => Answer::json(200, &token_json(&info)),
            Err(e) => failed(&e, identity),
        }
    }

    /// `DELETE …/self`: revokes the presenting token; its record as it was.
    pub fn revoke_blocking(&self, identity: &Identity) -> Answer {
        if identity.is_previous_secret() {
            return previous_secret_refused();
        }
        match self.as_token(identity).revoke(identity.token_id()) {
            Ok(info) => {
                tracing::info!(token_id = %info.id, user = %info.user, "token revoked itself");
                Answer::json(200, &token_json(&info))
            }
            Err(e) => failed(&e, identity),
        }
    }

    /// `POST …/self/rotate[?query]`: a new secret for the presenting token,
    /// answered once with its record (`token` holds the secret,
    /// `previous_secret_retires_at` when the presented one stops working).
    pub fn rotate_blocking(
        &self,
        identity: &Identity,
        query: Option<&str>,
        now: Timestamp,
    ) -> Answer {
        if identity.is_previous_secret() {
            return previous_secret_refused();
        }
        let rotation = match rotation(query.unwrap_or("")) {
            // Only while the secret presented is the current one.
            Ok(r) => r.presented(identity),
            Err(why) => return Answer::error(400, "invalid_request", &why),
        };
        match self
            .as_token(identity)
            .rotate(identity.token_id(), &rotation, now)
        {
            Ok(created) => {
                tracing::info!(token_id = %created.info.id, user = %created.info.user, "token rotated itself");
                let mut body = token_json(&created.info);
                body["token"] = json!(created.secret.expose_secret());
                let retires_at = created.info.previous_until.unwrap_or(now);
                body["previous_secret_retires_at"] = json!(retires_at.to_string());
                Answer::json(200, &body)
            }
            Err(e) => failed(&e, identity),
        }
    }
}

/// The rotation a query string asks for: `grace`, and `expire` or `auto`
/// (`max_lifetime` with `auto`), each once; anything else is an error
/// naming it. Values are durations like the CLI's (`10m`, `30d`).
fn rotation(query: &str) -> Result<Rotation, String> {
    let mut grace = None;
    let mut expire = None;
    let mut auto = None;
    let mut cap = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "grace" => &mut grace,
            "expire" => &mut expire,
            "auto" => &mut auto,
            "max_lifetime" => &mut cap,
            _ => {
                return Err(format!(
                    "unknown parameter `{}`: expected grace, expire, auto or max_lifetime",
                    crate::model::text::redacted(key)
                ));
            }
        };
        if slot.is_some() {
            return Err(format!("parameter `{key}` given twice"));
        }
        let d: Duration = parse_duration(value).map_err(|e| format!("parameter `{key}`: {e}"))?;
        *slot = Some(d);
    }
    let mut rotation = Rotation::new().grace(grace.unwrap_or_default());
    if let Some(policy) = ExpiryPolicy::from_fields(expire, auto, cap)? {
        rotation = rotation.expiry(policy);
    }
    Ok(rotation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_strict_and_named() {
        assert_eq!(rotation("").unwrap(), Rotation::new());
        let r = rotation("grace=10m&expire=30d").unwrap();
        assert_eq!(r.grace, Duration::from_secs(600));
        assert_eq!(
            r.expiry,
            Some(ExpiryPolicy::hard(Duration::from_secs(30 * 86_400)))
        );
        let r = rotation("auto=1h&max_lifetime=1d").unwrap();
        assert_eq!(
            r.expiry,
            Some(ExpiryPolicy::sliding(
                Duration::from_secs(3600),
                Some(Duration::from_secs(86_400))
            ))
        );
        for (q, needle) in [
            ("grace=soon", "`grace`"),
            ("grace=1m&grace=2m", "twice"),
            ("expire=1d&auto=1h", "not both"),
            ("max_lifetime=1d", "needs `auto`"),
            ("color=red", "unknown parameter `color`"),
            ("\u{1b}[2J=1", "\\u{1b}"),
            ("grace", "`grace`"),
        ] {
            let e = rotation(q).unwrap_err();
            assert!(e.contains(needle), "{q}: {e}");
            assert!(!e.contains('\u{1b}'), "{e}");
        }
        // A token pasted as a parameter is not echoed.
        let pasted = crate::TokenSecret::generate();
        let e = rotation(&format!("{}=1d", pasted.expose_secret())).unwrap_err();
        assert!(e.contains("unknown parameter `pat_…`"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_body() {
        let a = Answer {
            status: 200,
            body: r#"{"token":"pat_secret"}"#.into(),
            retry_after: None,
            close: false,
            content_type: Answer::CONTENT_TYPE,
        };
        assert!(!format!("{a:?}").contains("pat_secret"));
    }
}
