//! What a request to create a token carries, and what creating one
//! returns: the plaintext once, and the record.

use super::{DEFAULT_LABEL, Identity, MAX_NAME_LEN, MAX_SCOPES, TokenInfo};
use crate::error::NewTokenError;
use crate::model::expiry::ExpiryPolicy;
use crate::model::metadata::Metadata;
use crate::model::network::Cidr;
use crate::model::rate::RateLimit;
use crate::model::scope::Scopes;
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId, TokenSecret};

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
    /// sent with HTTP Basic), no white space at either end, no control or
    /// invisible formatting characters, at most 255 bytes.
    pub user: String,
    /// How it expires.
    pub expiry: ExpiryPolicy,
    /// A human label, [`DEFAULT_LABEL`] unless set.
    pub label: String,
    /// Who creates it; the API caller's choice.
    pub created_by: String,
    /// Node restrictions; empty for an unrestricted token.
    pub scopes: Scopes,
    /// The token the creator authenticated with, if any (see
    /// [`TokenInfo::parent`]): the store checks that the new token stays
    /// within it.
    pub parent: Option<TokenId>,
    /// The digest of the parent's secret the creator presented, if known:
    /// the store refuses the token unless it is the parent's current one
    /// (a replica that has not seen a rotation yet must not let a replaced
    /// secret mint; see [`Identity::presented`]).
    pub parent_secret: Option<TokenDigest>,
    /// What the app attaches to the token (see [`Metadata`]), returned in
    /// every [`Identity`]; empty unless set.
    pub meta: Metadata,
    /// The networks the token may be used from (see
    /// [`TokenInfo::allow_from`]); empty (the default) for anywhere.
    pub allow_from: Vec<Cidr>,
    /// The most uses per second, minute or hour (see
    /// [`TokenInfo::rate`]); `None` (the default) for no limit.
    pub rate: Option<RateLimit>,
    /// How many times the token may be accepted (see
    /// [`TokenInfo::max_uses`]); `None` (the default) for no quota.
    pub max_uses: Option<u32>,
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
            parent: None,
            parent_secret: None,
            meta: Metadata::empty(),
            allow_from: Vec::new(),
            rate: None,
            max_uses: None,
        }
    }

    /// Makes the new token a child of `parent`, the token its creator
    /// authenticated with.
    pub fn parent(mut self, parent: TokenId) -> NewToken {
        self.parent = Some(parent);
        self
    }

    /// Makes the new token a child of the token `identity` authenticated
    /// with, and only if the secret presented is still that token's current
    /// one ([`NewToken::parent_secret`]).
    pub fn child_of(mut self, identity: &Identity) -> NewToken {
        self.parent = Some(identity.token_id());
        self.parent_secret = identity.presented().copied();
        self
    }

    /// Restricts the token to clients in `networks` (at most
    /// [`MAX_NETWORKS`](crate::MAX_NETWORKS)).
    pub fn allow_from(mut self, networks: impl IntoIterator<Item = Cidr>) -> NewToken {
        self.allow_from = networks.into_iter().collect();
        self
    }

    /// Sets the rate limit.
    pub fn rate(mut self, rate: RateLimit) -> NewToken {
        self.rate = Some(rate);
        self
    }

    /// Sets the use quota: the token is accepted `uses` times, then
    /// refused (1: a one-time token; at most [`MAX_USES`](crate::MAX_USES)).
    pub fn max_uses(mut self, uses: u32) -> NewToken {
        self.max_uses = Some(uses);
        self
    }

    /// Sets the metadata.
    pub fn meta(mut self, meta: Metadata) -> NewToken {
        self.meta = meta;
        self
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

    /// The record to store for this request, created at `now` with the id
    /// `id` (from [`TokenId::generate`]). Checks the names (see
    /// [`NewToken::user`]) and starts the expiry policy; the errors are what
    /// every backend answers for a bad request.
    pub fn to_info(&self, id: TokenId, now: Timestamp) -> Result<TokenInfo, NewTokenError> {
        NewToken::check_user(&self.user)?;
        NewToken::check_label(&self.label)?;
        check_name(&self.created_by).map_err(|reason| NewTokenError::CreatedBy { reason })?;
        let count = self.scopes.as_slice().len() + self.scopes.named().len();
        if count > MAX_SCOPES {
            return Err(NewTokenError::TooManyScopes {
                count,
                max: MAX_SCOPES,
            });
        }
        if self.allow_from.len() > crate::MAX_NETWORKS {
            return Err(NewTokenError::TooManyNetworks {
                count: self.allow_from.len(),
                max: crate::MAX_NETWORKS,
            });
        }
        if let Some(given) = self.max_uses {
            super::use_quota(given.into())?;
        }
        Ok(TokenInfo {
            id,
            user: self.user.clone(),
            label: self.label.clone(),
            created_at: now,
            created_by: self.created_by.clone(),
            expiry: self.expiry.start(now)?,
            last_used_at: None,
            scopes: self.scopes.clone(),
            rotated_at: None,
            parent: self.parent,
            lifetime_from: now,
            not_after: None,
            previous_until: None,
            disabled_by: None,
            meta: self.meta.clone(),
            allow_from: self.allow_from.clone(),
            rate: self.rate,
            max_uses: self.max_uses,
            uses: 0,
            last_addresses: super::LastAddresses::EMPTY,
        })
    }

    /// Whether `user` can be a token's user (see [`NewToken::user`]); the
    /// error says why not.
    pub fn check_user(user: &str) -> Result<(), NewTokenError> {
        let user_err = |reason| NewTokenError::User {
            user: user.to_owned(),
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
        check_name(user).map_err(user_err)
    }

    /// Whether `label` can be a token's label: at most 255 bytes, no control
    /// or invisible formatting characters.
    pub fn check_label(label: &str) -> Result<(), NewTokenError> {
        check_name(label).map_err(|reason| NewTokenError::Label { reason })
    }
}

pub(super) fn check_name(s: &str) -> Result<(), &'static str> {
    if s.len() > MAX_NAME_LEN {
        return Err("it is longer than 255 bytes");
    }
    if s.chars().any(char::is_control) {
        return Err("it contains a control character");
    }
    if s.chars().any(crate::model::text::is_invisible) {
        return Err(
            "it contains an invisible formatting character (such as a zero-width space or \
             a bidirectional override), which would print as another name",
        );
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

impl CreatedToken {
    /// A created token, for backends: the secret they generated and the
    /// record they stored under its digest.
    pub fn new(secret: TokenSecret, info: TokenInfo) -> CreatedToken {
        CreatedToken { secret, info }
    }
}
