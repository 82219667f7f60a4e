//! What the store keeps about a token, what a request to create one carries,
//! and what a successful authentication yields.

use crate::error::NewTokenError;
use crate::expiry::{Expiry, ExpiryPolicy};
use crate::scope::{NodeId, Perm, Scopes};
use crate::time::Timestamp;
use crate::token::{TokenId, TokenSecret};

/// The label given to tokens created without one, as in Cells.
pub const DEFAULT_LABEL: &str = "Command generated token";

/// Longest user, label or creator name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Everything stored about a token except the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenInfo {
    /// Public id.
    pub id: TokenId,
    /// The user the token logs in as.
    pub user: String,
    /// A human label.
    pub label: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it (an OS user for the CLI).
    pub created_by: String,
    /// Expiry model and current deadline.
    pub expiry: Expiry,
    /// Last successful authentication, if any.
    pub last_used_at: Option<Timestamp>,
    /// Node restrictions; empty means unrestricted.
    pub scopes: Scopes,
}

impl TokenInfo {
    /// Whether the token is dead at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expiry.is_expired(now)
    }
}

/// A request to create a token.
///
/// ```
/// use std::time::Duration;
/// use pat_core::{ExpiryPolicy, NewToken};
/// let new = NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(86_400)))
///     .label("deploy bot")
///     .created_by("root");
/// assert_eq!(new.user, "alice");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewToken {
    /// The user the token logs in as. Not empty, no `:` (it could not be
    /// sent with HTTP Basic), no control characters, at most 255 bytes.
    pub user: String,
    /// How it expires.
    pub expiry: ExpiryPolicy,
    /// A human label, [`DEFAULT_LABEL`] unless set.
    pub label: String,
    /// Who creates it; the API caller's choice.
    pub created_by: String,
    /// Node restrictions; empty for an unrestricted token.
    pub scopes: Scopes,
}

impl NewToken {
    /// A request for an unrestricted token with the default label.
    pub fn new(user: impl Into<String>, expiry: ExpiryPolicy) -> NewToken {
        NewToken {
            user: user.into(),
            expiry,
            label: DEFAULT_LABEL.to_owned(),
            created_by: String::new(),
            scopes: Scopes::unrestricted(),
        }
    }

    /// Sets the label.
    pub fn label(mut self, label: impl Into<String>) -> NewToken {
        self.label = label.into();
        self
    }

    /// Sets who creates the token.
    pub fn created_by(mut self, who: impl Into<String>) -> NewToken {
        self.created_by = who.into();
        self
    }

    /// Restricts the token to these scopes.
    pub fn scopes(mut self, scopes: Scopes) -> NewToken {
        self.scopes = scopes;
        self
    }

    /// The stored record for this request, created at `now`.
    pub(crate) fn to_info(&self, id: TokenId, now: Timestamp) -> Result<TokenInfo, NewTokenError> {
        let user = &self.user;
        let user_err = |reason| NewTokenError::User {
            user: user.clone(),
            reason,
        };
        if user.is_empty() {
            return Err(user_err("it is empty"));
        }
        if user.contains(':') {
            return Err(user_err("it contains `:`, which HTTP Basic cannot carry"));
        }
        if user.trim() != user {
            return Err(user_err("it starts or ends with white space"));
        }
        check_name(user).map_err(user_err)?;
        check_name(&self.label).map_err(|reason| NewTokenError::Label { reason })?;
        check_name(&self.created_by).map_err(|reason| NewTokenError::CreatedBy { reason })?;
        Ok(TokenInfo {
            id,
            user: user.clone(),
            label: self.label.clone(),
            created_at: now,
            created_by: self.created_by.clone(),
            expiry: self.expiry.start(now)?,
            last_used_at: None,
            scopes: self.scopes.clone(),
        })
    }
}

fn check_name(s: &str) -> Result<(), &'static str> {
    if s.len() > MAX_NAME_LEN {
        return Err("it is longer than 255 bytes");
    }
    if s.chars().any(char::is_control) {
        return Err("it contains a control character");
    }
    Ok(())
}

/// A freshly created token: the plaintext, shown once, and its record.
#[derive(Debug)]
#[non_exhaustive]
pub struct CreatedToken {
    /// The plaintext token. It exists nowhere else: hand it over, then drop it.
    pub secret: TokenSecret,
    /// What the store keeps.
    pub info: TokenInfo,
}

/// Who a request authenticated as: what the adapters insert into request
/// extensions and handlers read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity {
    /// The user the token belongs to.
    pub user: String,
    /// The token's public id.
    pub token_id: TokenId,
    /// The token's scopes; empty when unrestricted.
    pub scopes: Scopes,
    /// The deadline after this use (moved forward for sliding tokens).
    pub expires_at: Timestamp,
}

impl Identity {
    /// Whether the token allows `perm` on the first node of `chain` (that
    /// node, then its ancestors). See [`Scopes::permits`].
    pub fn permits<'a>(&self, chain: impl IntoIterator<Item = &'a NodeId>, perm: Perm) -> bool {
        self.scopes.permits(chain, perm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn new(user: &str) -> NewToken {
        NewToken::new(user, ExpiryPolicy::hard(Duration::from_secs(60)))
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        let id = TokenId::from_u64(1);
        let now = Timestamp::UNIX_EPOCH;
        for (user, reason) in [
            ("", "empty"),
            ("a:b", "`:`"),
            (" alice", "white space"),
            ("al\nice", "control"),
            (&"x".repeat(256) as &str, "255"),
        ] {
            let msg = new(user).to_info(id, now).unwrap_err().to_string();
            assert!(msg.contains(reason), "{user:?}: {msg}");
        }
        assert!(matches!(
            new("a").label("x\ty").to_info(id, now),
            Err(NewTokenError::Label { .. })
        ));
        assert!(new("alice@example.com").to_info(id, now).is_ok());
        assert!(new("Zoë").label("").to_info(id, now).is_ok());
    }
}
