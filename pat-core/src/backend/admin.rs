//! The admin operations, behind one trait so that the CLI does not care
//! whether it holds the store file itself or asks the process that does.

use crate::error::StoreError;
use crate::model::audit::AuditEntry;
use crate::model::policy::Policy;
use crate::model::record::{CreatedToken, NewToken, Rotation, TokenInfo};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};

/// Managing tokens: what `pat-cli token ...` does.
///
/// Implemented by every backend ([`Store`](crate::Store),
/// [`MemoryStore`](crate::MemoryStore)) and by [`AdminClient`](crate::AdminClient).
/// Creation and revocation are durable when they return (see the
/// [backend contract](crate::Verifier#the-contract-a-backend-keeps)). `now` is the caller's clock, so tests
/// can move time without sleeping.
pub trait Admin {
    /// Creates a token and returns its plaintext, which exists nowhere else.
    fn create(&self, new: &NewToken, now: Timestamp) -> Result<CreatedToken, StoreError>;

    /// Lists tokens, oldest first, of one user or of all; expired ones only
    /// with `include_expired`.
    fn list(
        &self,
        user: Option<&str>,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<TokenInfo>, StoreError>;

    /// One token by id, expired or not; [`StoreError::NotFound`] if absent.
    fn get(&self, id: TokenId) -> Result<TokenInfo, StoreError>;

    /// The token a presented secret stands for, expired or not, without
    /// recording a use: its current secret, or a secret a rotation retired
    /// while its grace lasts at `now`; `None` for anything else. For
    /// `pat-cli token check` and introspection that must not count as a use.
    fn find(&self, digest: &TokenDigest, now: Timestamp) -> Result<Option<TokenInfo>, StoreError>;

    /// Gives token `id` a new secret, returned like [`create`](Admin::create)
    /// returns one; the record is [`TokenInfo::rotated`]. The old secret
    /// works until [`Rotation::retires_at`] (at once by default); presented
    /// after that it is refused like an unknown token, and the backend logs
    /// it (a `warn` event with the token id) as a possible theft.
    /// [`StoreError::NotFound`] if absent. A token is rotated even when
    /// expired: its expiry restarts.
    fn rotate(
        &self,
        id: TokenId,
        rotation: &Rotation,
        now: Timestamp,
    ) -> Result<CreatedToken, StoreError>;

    /// Deletes a token, and every token made with it (its descendants, see
    /// [`crate::backend::authority`]), in one durable change, each in the audit
    /// log; returns what the token was. [`StoreError::NotFound`] if absent.
    fn revoke(&self, id: TokenId) -> Result<TokenInfo, StoreError>;

    /// The tokens made with token `id`, and the tokens made with those, all
    /// the way down ([`TokenInfo::parent`]), expired ones included: what
    /// revoking it takes with it. The default reads every token (a backend
    /// with an index by parent answers faster).
    fn descendants(&self, id: TokenId) -> Result<Vec<TokenInfo>, StoreError> {
        let all = self.list(None, true, Timestamp::MAX)?;
        Ok(crate::backend::authority::descendants_in(&all, id))
    }

    /// Deletes every token of `user` and returns how many there were.
    fn revoke_user(&self, user: &str) -> Result<usize, StoreError>;

    /// Deletes every token expired at `now` and returns how many there were.
    fn prune(&self, now: Timestamp) -> Result<usize, StoreError>;

    /// The store-wide policy ([`Policy::NONE`] until one is set).
    fn policy(&self) -> Result<Policy, StoreError>;

    /// Replaces the store-wide policy. [`create`](Admin::create) and
    /// [`rotate`](Admin::rotate) refuse what breaks it
    /// ([`StoreError::Policy`], naming the limit); existing tokens are left
    /// alone.
    fn set_policy(&self, policy: Policy) -> Result<(), StoreError>;

    /// The audit log, oldest first: the entries at or after `since`
    /// concerning `user`, or all. Every change above appends one, in the
    /// same transaction, recorded as done by [`DEFAULT_ACTOR`](crate::DEFAULT_ACTOR) unless made
    /// through [`acting_as`](Admin::acting_as); `prune` drops entries past
    /// the retention (default
    /// [`DEFAULT_AUDIT_RETENTION`](crate::DEFAULT_AUDIT_RETENTION)).
    fn audit(&self, since: Timestamp, user: Option<&str>) -> Result<Vec<AuditEntry>, StoreError>;

    /// This store, with the changes made through the returned handle
    /// recorded in the audit log as done by `actor` (the CLI passes the OS
    /// user, self-service the token). Through the admin socket the service
    /// records the peer's uid, which the kernel vouches for, whatever
    /// `actor` says.
    fn acting_as<'a>(&'a self, actor: &str) -> Box<dyn Admin + 'a>;
}

impl<T: Admin + ?Sized> Admin for &T {
    fn create(&self, new: &NewToken, now: Timestamp) -> Result<CreatedToken, StoreError> {
        (**self).create(new, now)
    }
    fn list(
        &self,
        user: Option<&str>,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        (**self).list(user, include_expired, now)
    }
    fn get(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        (**self).get(id)
    }
    fn find(&self, digest: &TokenDigest, now: Timestamp) -> Result<Option<TokenInfo>, StoreError> {
        (**self).find(digest, now)
    }
    fn rotate(
        &self,
        id: TokenId,
        rotation: &Rotation,
        now: Timestamp,
    ) -> Result<CreatedToken, StoreError> {
        (**self).rotate(id, rotation, now)
    }
    fn revoke(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        (**self).revoke(id)
    }
    fn descendants(&self, id: TokenId) -> Result<Vec<TokenInfo>, StoreError> {
        (**self).descendants(id)
    }
    fn revoke_user(&self, user: &str) -> Result<usize, StoreError> {
        (**self).revoke_user(user)
    }
    fn prune(&self, now: Timestamp) -> Result<usize, StoreError> {
        (**self).prune(now)
    }
    fn policy(&self) -> Result<Policy, StoreError> {
        (**self).policy()
    }
    fn set_policy(&self, policy: Policy) -> Result<(), StoreError> {
        (**self).set_policy(policy)
    }
    fn audit(&self, since: Timestamp, user: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        (**self).audit(since, user)
    }
    fn acting_as<'a>(&'a self, actor: &str) -> Box<dyn Admin + 'a> {
        (**self).acting_as(actor)
    }
}

/// The changes of [`Admin`], with the actor the audit log records; what
/// pat's own backends implement, and [`Admin`] follows from it.
pub(crate) trait Audited {
    fn create_by(
        &self,
        new: &NewToken,
        now: Timestamp,
        actor: &str,
    ) -> Result<CreatedToken, StoreError>;
    fn rotate_by(
        &self,
        id: TokenId,
        rotation: &Rotation,
        now: Timestamp,
        actor: &str,
    ) -> Result<CreatedToken, StoreError>;
    fn revoke_by(&self, id: TokenId, actor: &str) -> Result<TokenInfo, StoreError>;
    fn revoke_user_by(&self, user: &str, actor: &str) -> Result<usize, StoreError>;
    fn prune_by(&self, now: Timestamp, actor: &str) -> Result<usize, StoreError>;
    fn set_policy_by(&self, policy: Policy, actor: &str) -> Result<(), StoreError>;
    fn list_tokens(
        &self,
        user: Option<&str>,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<TokenInfo>, StoreError>;
    fn get_token(&self, id: TokenId) -> Result<TokenInfo, StoreError>;
    fn descendants_of(&self, id: TokenId) -> Result<Vec<TokenInfo>, StoreError>;
    fn find_token(
        &self,
        digest: &TokenDigest,
        now: Timestamp,
    ) -> Result<Option<TokenInfo>, StoreError>;
    fn get_policy(&self) -> Result<Policy, StoreError>;
    fn read_audit(
        &self,
        since: Timestamp,
        user: Option<&str>,
    ) -> Result<Vec<AuditEntry>, StoreError>;
}

/// A backend acting as someone (see [`Admin::acting_as`]).
pub(crate) struct Acting<'a, T: ?Sized> {
    pub(crate) store: &'a T,
    pub(crate) actor: String,
}

/// Implements [`Admin`] for a type that implements [`Audited`], the plain
/// calls acting as [`DEFAULT_ACTOR`]. `Handle => get`: for a handle whose
/// state implements [`Audited`] (`get(&handle)` borrows it), so that the
/// handle forwards nothing itself.
macro_rules! admin_from_audited {
    ($t:ty) => {
        $crate::backend::admin::admin_from_audited!($t => ::std::convert::identity);
    };
    ($t:ty => $get:path) => {
        impl $crate::backend::admin::Admin for $t {
            fn create(
                &self,
                new: &$crate::NewToken,
                now: $crate::Timestamp,
            ) -> Result<$crate::CreatedToken, $crate::StoreError> {
                $crate::backend::admin::Audited::create_by(
                    $get(self),
                    new,
                    now,
                    $crate::model::audit::DEFAULT_ACTOR,
                )
            }
            fn list(
                &self,
                user: Option<&str>,
                include_expired: bool,
                now: $crate::Timestamp,
            ) -> Result<Vec<$crate::TokenInfo>, $crate::StoreError> {
                $crate::backend::admin::Audited::list_tokens(
                    $get(self), user, include_expired, now)
            }
            fn get(&self, id: $crate::TokenId) -> Result<$crate::TokenInfo, $crate::StoreError> {
                $crate::backend::admin::Audited::get_token(
                    $get(self), id)
            }
            fn find(
                &self,
                digest: &$crate::TokenDigest,
                now: $crate::Timestamp,
            ) -> Result<Option<$crate::TokenInfo>, $crate::StoreError> {
                $crate::backend::admin::Audited::find_token(
                    $get(self), digest, now)
            }
            fn rotate(
                &self,
                id: $crate::TokenId,
                rotation: &$crate::Rotation,
                now: $crate::Timestamp,
            ) -> Result<$crate::CreatedToken, $crate::StoreError> {
                $crate::backend::admin::Audited::rotate_by(
                    $get(self),
                    id,
                    rotation,
                    now,
                    $crate::model::audit::DEFAULT_ACTOR,
                )
            }
            fn revoke(&self, id: $crate::TokenId) -> Result<$crate::TokenInfo, $crate::StoreError> {
                $crate::backend::admin::Audited::revoke_by(
                    $get(self),
                    id,
                    $crate::model::audit::DEFAULT_ACTOR,
                )
            }
            fn descendants(
                &self,
                id: $crate::TokenId,
            ) -> Result<Vec<$crate::TokenInfo>, $crate::StoreError> {
                $crate::backend::admin::Audited::descendants_of(
                    $get(self), id)
            }
            fn revoke_user(&self, user: &str) -> Result<usize, $crate::StoreError> {
                $crate::backend::admin::Audited::revoke_user_by(
                    $get(self),
                    user,
                    $crate::model::audit::DEFAULT_ACTOR,
                )
            }
            fn prune(&self, now: $crate::Timestamp) -> Result<usize, $crate::StoreError> {
                $crate::backend::admin::Audited::prune_by(
                    $get(self),
                    now,
                    $crate::model::audit::DEFAULT_ACTOR,
                )
            }
            fn policy(&self) -> Result<$crate::Policy, $crate::StoreError> {
                $crate::backend::admin::Audited::get_policy($get(self))
            }
            fn set_policy(&self, policy: $crate::Policy) -> Result<(), $crate::StoreError> {
                $crate::backend::admin::Audited::set_policy_by(
                    $get(self),
                    policy,
                    $crate::model::audit::DEFAULT_ACTOR,
                )
            }
            fn audit(
                &self,
                since: $crate::Timestamp,
                user: Option<&str>,
            ) -> Result<Vec<$crate::AuditEntry>, $crate::StoreError> {
                $crate::backend::admin::Audited::read_audit(
                    $get(self), since, user)
            }
            fn acting_as<'a>(&'a self, actor: &str) -> Box<dyn $crate::backend::admin::Admin + 'a> {
                Box::new($crate::backend::admin::Acting {
                    store: $get(self),
                    actor: actor.to_owned(),
                })
            }
        }
    };
}
pub(crate) use admin_from_audited;

impl<T: Audited + ?Sized> Admin for Acting<'_, T> {
    fn create(&self, new: &NewToken, now: Timestamp) -> Result<CreatedToken, StoreError> {
        self.store.create_by(new, now, &self.actor)
    }
    fn list(
        &self,
        user: Option<&str>,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        self.store.list_tokens(user, include_expired, now)
    }
    fn get(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        self.store.get_token(id)
    }
    fn find(&self, digest: &TokenDigest, now: Timestamp) -> Result<Option<TokenInfo>, StoreError> {
        self.store.find_token(digest, now)
    }
    fn rotate(
        &self,
        id: TokenId,
        rotation: &Rotation,
        now: Timestamp,
    ) -> Result<CreatedToken, StoreError> {
        self.store.rotate_by(id, rotation, now, &self.actor)
    }
    fn revoke(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        self.store.revoke_by(id, &self.actor)
    }
    fn descendants(&self, id: TokenId) -> Result<Vec<TokenInfo>, StoreError> {
        self.store.descendants_of(id)
    }
    fn revoke_user(&self, user: &str) -> Result<usize, StoreError> {
        self.store.revoke_user_by(user, &self.actor)
    }
    fn prune(&self, now: Timestamp) -> Result<usize, StoreError> {
        self.store.prune_by(now, &self.actor)
    }
    fn policy(&self) -> Result<Policy, StoreError> {
        self.store.get_policy()
    }
    fn set_policy(&self, policy: Policy) -> Result<(), StoreError> {
        self.store.set_policy_by(policy, &self.actor)
    }
    fn audit(&self, since: Timestamp, user: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        self.store.read_audit(since, user)
    }
    fn acting_as<'b>(&'b self, actor: &str) -> Box<dyn Admin + 'b> {
        Box::new(Acting {
            store: self.store,
            actor: actor.to_owned(),
        })
    }
}
