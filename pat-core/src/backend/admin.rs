//! The admin operations, behind one trait so that the CLI does not care
//! whether it holds the store file itself or asks the process that does.

use crate::error::{StoreError, SuspensionError};
use crate::model::audit::AuditEntry;
use crate::model::permission::{
    Catalog, CatalogError, Permission, PermissionDef, PermissionRemoval,
};
use crate::model::policy::Policy;
use crate::model::prefix::{Prefix, PrefixError};
use crate::model::record::{CreatedToken, NewToken, Rotation, TokenInfo};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};

/// Who a store handle's changes are audited as made by:
/// [`DEFAULT_ACTOR`](crate::DEFAULT_ACTOR) for the store itself, another name
/// for the handle [`Admin::acting_as`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Actor(std::borrow::Cow<'static, str>);

impl Default for Actor {
    fn default() -> Actor {
        Actor(std::borrow::Cow::Borrowed(
            crate::model::audit::DEFAULT_ACTOR,
        ))
    }
}

impl From<&str> for Actor {
    fn from(name: &str) -> Actor {
        Actor(std::borrow::Cow::Owned(name.to_owned()))
    }
}

impl std::ops::Deref for Actor {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

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

    /// The store's token prefixes: the current one first (every token
    /// [`create`](Admin::create) or [`rotate`](Admin::rotate) makes
    /// carries it), then those it had before, whose tokens still work, in
    /// the order it took them. The default, for a backend that keeps no
    /// prefix: `pat` alone.
    fn token_prefixes(&self) -> Result<Vec<Prefix>, StoreError> {
        Ok(vec![Prefix::DEFAULT])
    }

    /// Makes `prefix` the store's current token prefix, durably and
    /// audited ([`AuditAction::SetPrefix`](crate::AuditAction::SetPrefix)):
    /// tokens made from now on carry it, and tokens of the earlier ones
    /// keep working, here and on every replica. Setting the current one is
    /// a no-op; one the store had before becomes current again; a store
    /// that has had [`MAX_PREFIXES`](crate::MAX_PREFIXES) refuses another
    /// ([`PrefixError::TooMany`]). The default, for a backend that keeps no
    /// prefix, refuses ([`PrefixError::Fixed`]).
    fn set_prefix(&self, prefix: Prefix) -> Result<(), StoreError> {
        let _ = prefix;
        Err(PrefixError::Fixed.into())
    }

    /// The store's catalog of named permissions: what tokens may carry
    /// beside node scopes and route guards ask for. The default, for a
    /// backend that keeps none: empty.
    fn permissions(&self) -> Result<Catalog, StoreError> {
        Ok(Catalog::new())
    }

    /// Adds `defs` to the catalog, or changes the definitions of names it
    /// has, all or nothing and durably, each change audited
    /// ([`AuditAction::DefinePermission`](crate::AuditAction::DefinePermission));
    /// `false` when the catalog said all that already. Refused, changing
    /// nothing, with [`CatalogError`]: an implied name it would lack, a
    /// cycle of implications, a definition breaking its own rules. What
    /// tokens hold changes at once (a wildcard now stands for a new name),
    /// here and on every replica. The default, for a backend that keeps no
    /// catalog, refuses ([`CatalogError::Fixed`]).
    fn define_permissions(&self, defs: &[PermissionDef]) -> Result<bool, StoreError> {
        let _ = defs;
        Err(CatalogError::Fixed.into())
    }

    /// Takes `name` out of the catalog, durably and audited
    /// ([`AuditAction::RemovePermission`](crate::AuditAction::RemovePermission)).
    /// Refused while another permission implies it
    /// ([`CatalogError::Implied`]), and while live tokens carry it
    /// ([`CatalogError::InUse`], with how many) unless `force`: then each
    /// token that carries it loses it
    /// ([`AuditAction::LosePermission`](crate::AuditAction::LosePermission)),
    /// and one left with no scope at all is revoked with its descendants,
    /// never widened to unrestricted. The default refuses
    /// ([`CatalogError::Fixed`]).
    fn remove_permission(
        &self,
        name: &Permission,
        force: bool,
    ) -> Result<PermissionRemoval, StoreError> {
        let _ = (name, force);
        Err(CatalogError::Fixed.into())
    }

    /// Disables (suspends) token `id` and every descendant not disabled
    /// already, durably and audited
    /// ([`AuditAction::Disable`](crate::AuditAction::Disable), one entry per
    /// token): each is refused with [`AuthError::Disabled`](crate::AuthError::Disabled)
    /// from the next request on, here and on every replica, until
    /// [`enable`](Admin::enable) gives it back. Nothing else about them
    /// changes: their deadlines run on. Returns how many tokens changed (0
    /// when `id` was disabled already), or [`StoreError::NotFound`]. The
    /// default, for a backend that keeps no such state, refuses
    /// ([`SuspensionError::Unsupported`]).
    fn disable(&self, id: TokenId) -> Result<usize, StoreError> {
        let _ = id;
        Err(SuspensionError::Unsupported.into())
    }

    /// Enables token `id` again, with the descendants its disabling reached
    /// (not those disabled on their own, or through another ancestor),
    /// durably and audited ([`AuditAction::Enable`](crate::AuditAction::Enable)).
    /// A token disabled through an ancestor is refused
    /// ([`SuspensionError::Inherited`], naming the ancestor to enable).
    /// Returns how many tokens changed (0 when `id` was enabled already).
    fn enable(&self, id: TokenId) -> Result<usize, StoreError> {
        let _ = id;
        Err(SuspensionError::Unsupported.into())
    }

    /// The audit log, oldest first: the entries at or after `since`
    /// concerning `user`, or all. Every change above appends one, in the
    /// same transaction, recorded as done by [`DEFAULT_ACTOR`](crate::DEFAULT_ACTOR) unless made
    /// through [`acting_as`](Admin::acting_as); `prune` drops entries past
    /// the retention (default
    /// [`DEFAULT_AUDIT_RETENTION`](crate::DEFAULT_AUDIT_RETENTION)).
    fn audit(&self, since: Timestamp, user: Option<&str>) -> Result<Vec<AuditEntry>, StoreError>;

    /// The [`Event`](crate::Event)s after place `after` in the audit log
    /// ([`AuditEntry::seq`]), oldest first, at most `limit`: what a webhook
    /// delivers, and what an app that would rather send its own mail
    /// reads, remembering the last `seq` it handled. Places are in commit
    /// order on every backend and every replica, so a reader that goes on
    /// from the last event it saw misses none (unless `prune` dropped them
    /// past the audit retention first). The default reads the whole log.
    fn events(&self, after: u64, limit: usize) -> Result<Vec<crate::Event>, StoreError> {
        let log = self.audit(Timestamp::UNIX_EPOCH, None)?;
        crate::model::event::events_in(log, after, limit)
    }

    /// The place of the last entry in the audit log, 0 when it has none:
    /// where a new webhook starts. The default reads the whole log.
    fn last_seq(&self) -> Result<u64, StoreError> {
        match self.audit(Timestamp::UNIX_EPOCH, None)?.last() {
            Some(e) if e.seq == 0 => Err(StoreError::Unnumbered),
            Some(e) => Ok(e.seq),
            None => Ok(0),
        }
    }

    /// Every webhook's delivery state ([`Delivery`](crate::Delivery)), by
    /// name. The default, for a backend that keeps none: none.
    fn deliveries(&self) -> Result<Vec<(String, crate::Delivery)>, StoreError> {
        Ok(Vec::new())
    }

    /// Webhook `sink`'s delivery state; `None` before its first.
    fn delivery(&self, sink: &str) -> Result<Option<crate::Delivery>, StoreError> {
        Ok(self
            .deliveries()?
            .into_iter()
            .find(|(name, _)| name == sink)
            .map(|(_, d)| d))
    }

    /// Stores `new` as webhook `sink`'s delivery state if it is still
    /// `expected` (`None`: none stored yet), durably: whether it was. The
    /// one way the state changes, so that two processes delivering the
    /// same webhook (two replicas) never both move it. The default, for a
    /// backend that keeps none, refuses ([`StoreError::NoEventState`]).
    fn swap_delivery(
        &self,
        sink: &str,
        expected: Option<&crate::Delivery>,
        new: &crate::Delivery,
    ) -> Result<bool, StoreError> {
        let _ = (sink, expected, new);
        Err(StoreError::NoEventState)
    }

    /// Marks event `seq`, given up by webhook `sink`, to be sent again by
    /// the process delivering that webhook: whether such a failed event
    /// was there. Audited ([`AuditAction::ResendEvent`](crate::AuditAction::ResendEvent))
    /// with the state's change by the built-in backends; the default swaps
    /// the state ([`swap_delivery`](Admin::swap_delivery)), unaudited.
    fn resend_event(&self, sink: &str, seq: u64) -> Result<bool, StoreError> {
        resend_with(
            || self.delivery(sink),
            |now, next, _| self.swap_delivery(sink, Some(now), next),
            sink,
            seq,
            crate::DEFAULT_ACTOR,
        )
    }

    /// Writes the expiry notices due at `now` under thresholds `days`
    /// ([`Notice::due`](crate::Notice::due); [`DEFAULT_NOTICE_DAYS`](crate::DEFAULT_NOTICE_DAYS)),
    /// each once per token, threshold and deadline however often this
    /// runs, on however many replicas: audit entries, so `token.expiring`
    /// and `token.expired` events. Returns how many were new. A service
    /// runs it now and then (the reference servers: `--expiry-notices`);
    /// `now` is the caller's clock, so tests can move it. It reads every
    /// token.
    fn notify_expiring(&self, now: Timestamp, days: &[u32]) -> Result<usize, StoreError> {
        let due: Vec<crate::Notice> = self
            .list(None, true, now)?
            .iter()
            .filter_map(|info| crate::Notice::due(info, now, days))
            .collect();
        if due.is_empty() {
            return Ok(0);
        }
        self.record_notices(&due)
    }

    /// Appends each of `notices` to the audit log unless a notice of the
    /// same [`key`](crate::Notice::key) was appended before, durably and
    /// all at once: how many were. The default, for a backend that keeps
    /// none, refuses ([`StoreError::NoEventState`]).
    fn record_notices(&self, notices: &[crate::Notice]) -> Result<usize, StoreError> {
        let _ = notices;
        Err(StoreError::NoEventState)
    }

    /// This store, with the changes made through the returned handle
    /// recorded in the audit log as done by `actor` (the CLI passes the OS
    /// user, self-service the token). Through the admin socket the service
    /// records the peer's uid, which the kernel vouches for, whatever
    /// `actor` says.
    fn acting_as<'a>(&'a self, actor: &str) -> Box<dyn Admin + 'a>;
}

/// The rule of a resend, for every backend: failed event `seq` of webhook
/// `sink`, as `read` finds the state, marked to be sent again and stored by
/// `swap` (the state read, the new one, and the audit entry by `actor`
/// that the backend writes with it) unless the state changed meanwhile,
/// then tried again, a few times. Whether such a failed event was there.
pub(crate) fn resend_with(
    read: impl Fn() -> Result<Option<crate::Delivery>, StoreError>,
    mut swap: impl FnMut(&crate::Delivery, &crate::Delivery, &AuditEntry) -> Result<bool, StoreError>,
    sink: &str,
    seq: u64,
    actor: &str,
) -> Result<bool, StoreError> {
    // A deliverer changes the state once per event: losing this many
    // times in a row is a store that something keeps rewriting.
    for _ in 0..16 {
        let Some(now) = read()? else {
            return Ok(false);
        };
        let Some(next) = now.marked_for_resend(seq) else {
            return Ok(false);
        };
        let Some(failed) = now.failed.iter().find(|f| f.seq == seq) else {
            return Ok(false);
        };
        let entry = AuditEntry::resend(sink, failed, actor, Timestamp::now());
        if swap(&now, &next, &entry)? {
            return Ok(true);
        }
    }
    Err(StoreError::Storage(crate::error::BackendError::new(
        std::io::Error::other("the webhook's state kept changing under the resend; try again"),
    )))
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
    fn token_prefixes(&self) -> Result<Vec<Prefix>, StoreError> {
        (**self).token_prefixes()
    }
    fn set_prefix(&self, prefix: Prefix) -> Result<(), StoreError> {
        (**self).set_prefix(prefix)
    }
    fn permissions(&self) -> Result<Catalog, StoreError> {
        (**self).permissions()
    }
    fn define_permissions(&self, defs: &[PermissionDef]) -> Result<bool, StoreError> {
        (**self).define_permissions(defs)
    }
    fn remove_permission(
        &self,
        name: &Permission,
        force: bool,
    ) -> Result<PermissionRemoval, StoreError> {
        (**self).remove_permission(name, force)
    }
    fn disable(&self, id: TokenId) -> Result<usize, StoreError> {
        (**self).disable(id)
    }
    fn enable(&self, id: TokenId) -> Result<usize, StoreError> {
        (**self).enable(id)
    }
    fn audit(&self, since: Timestamp, user: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        (**self).audit(since, user)
    }
    fn events(&self, after: u64, limit: usize) -> Result<Vec<crate::Event>, StoreError> {
        (**self).events(after, limit)
    }
    fn last_seq(&self) -> Result<u64, StoreError> {
        (**self).last_seq()
    }
    fn deliveries(&self) -> Result<Vec<(String, crate::Delivery)>, StoreError> {
        (**self).deliveries()
    }
    fn delivery(&self, sink: &str) -> Result<Option<crate::Delivery>, StoreError> {
        (**self).delivery(sink)
    }
    fn swap_delivery(
        &self,
        sink: &str,
        expected: Option<&crate::Delivery>,
        new: &crate::Delivery,
    ) -> Result<bool, StoreError> {
        (**self).swap_delivery(sink, expected, new)
    }
    fn resend_event(&self, sink: &str, seq: u64) -> Result<bool, StoreError> {
        (**self).resend_event(sink, seq)
    }
    fn notify_expiring(&self, now: Timestamp, days: &[u32]) -> Result<usize, StoreError> {
        (**self).notify_expiring(now, days)
    }
    fn record_notices(&self, notices: &[crate::Notice]) -> Result<usize, StoreError> {
        (**self).record_notices(notices)
    }
    fn acting_as<'a>(&'a self, actor: &str) -> Box<dyn Admin + 'a> {
        (**self).acting_as(actor)
    }
}
