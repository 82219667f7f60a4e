//! The engine: every rule a change to tokens follows, written once, over a
//! backend's transaction ([`Tx`]). A backend supplies storage (records and
//! their indexes, retired secrets, the policy, audit rows, and its locks)
//! and calls these inside its own transaction; the rules themselves are
//! here and in [`crate::backend::authority`].
//!
//! The operations are `async` so that PostgreSQL can await its statements;
//! redb and the in-memory store answer every call at once and drive them
//! with [`run_ready`](crate::backend::block_on::run_ready), which then never
//! waits.

pub(crate) mod catalog;
pub(crate) use catalog::LAST_SCOPE_OUTCOME;
pub(crate) mod lookup;

use std::future::Future;

use crate::backend::authority::{self, AuthorityViolation};
use crate::error::StoreError;
use crate::model::audit::{AuditAction, AuditEntry};
use crate::model::permission::{Catalog, Permission, PermissionDef};
use crate::model::policy::Policy;
use crate::model::prefix::Prefix;
use crate::model::record::{CreatedToken, NewToken, Rotation, TokenInfo};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId, TokenSecret};

/// How a read of a token's record locks it until the transaction ends
/// (PostgreSQL's row locks; the other backends hold the whole store).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lock {
    /// The record is about to change.
    Update,
    /// The record must not change (a parent, while a child is made or
    /// rotated under it).
    Share,
    /// No lock: a check of a record whose changes would have to lock rows
    /// this transaction holds already (an ancestor of a locked family), so
    /// that it sees what they committed without waiting in the wrong order.
    Read,
}

/// What a backend's write transaction offers the engine. Reads see the
/// transaction's own writes, and records come with their buffered uses
/// merged in.
pub(crate) trait Tx: Send {
    /// Token `id`'s current digest and record.
    fn token(
        &mut self,
        id: TokenId,
        lock: Lock,
    ) -> impl Future<Output = Result<Option<(TokenDigest, TokenInfo)>, StoreError>> + Send;

    /// Every descendant of `id` (children, theirs...), locked for update
    /// where the backend locks rows, so that nothing joins the family
    /// while the transaction runs.
    fn family(
        &mut self,
        id: TokenId,
    ) -> impl Future<Output = Result<Vec<TokenInfo>, StoreError>> + Send;

    /// Locks `roots` and every descendant of them for update, all at once
    /// (PostgreSQL: in id order), before a revocation of several families
    /// walks them one by one, so that two such revocations meeting in a
    /// family wait for each other rather than deadlock. A no-op where the
    /// whole store is held.
    fn lock_families(
        &mut self,
        _roots: &[TokenId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// The ids of `user`'s tokens.
    fn tokens_of(
        &mut self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<TokenId>, StoreError>> + Send;

    /// Serialises creations for `user` until the transaction ends (so that
    /// two creations cannot both pass the per-user count); a no-op where
    /// the whole store is held.
    fn lock_user(&mut self, user: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// How many of `user`'s tokens are alive at `now`.
    fn live_count(
        &mut self,
        user: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// The store's policy.
    fn policy(&mut self) -> impl Future<Output = Result<Policy, StoreError>> + Send;

    /// The store's current token prefix, which new secrets carry.
    fn prefix(&self) -> Prefix;

    /// The store's catalog of named permissions, kept from changing until
    /// the transaction ends: with [`Lock::Share`] other changes to it wait
    /// (a token is being made with it), with [`Lock::Update`] every other
    /// transaction that asks for it waits (it is about to change).
    /// PostgreSQL locks its rows or its table; the other backends hold the
    /// whole store.
    fn catalog(&mut self, lock: Lock) -> impl Future<Output = Result<Catalog, StoreError>> + Send;

    /// Stores `def`, a new permission or a changed definition.
    fn put_permission(
        &mut self,
        def: &PermissionDef,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes permission `name` out of the catalog.
    fn delete_permission(
        &mut self,
        name: &Permission,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every token whose scopes carry `name` as written (not through a
    /// wildcard), expired ones included, locked for update.
    fn carrying(
        &mut self,
        name: &Permission,
    ) -> impl Future<Output = Result<Vec<TokenInfo>, StoreError>> + Send;

    /// Whether reuse detection refuses `digest` until its next flush.
    fn is_refused(&self, digest: &TokenDigest) -> bool;

    /// Stores a new token under `digest`; `false` (nothing written) when
    /// the id or the digest is taken.
    fn insert(
        &mut self,
        digest: &TokenDigest,
        info: &TokenInfo,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives the token `info.id`, whose secret is `old`, the secret
    /// `digest` and the record `info`; `false` when `digest` is taken.
    fn replace_secret(
        &mut self,
        old: &TokenDigest,
        digest: &TokenDigest,
        info: &TokenInfo,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Rewrites a token's record, same secret (a clamped deadline).
    fn rewrite(&mut self, info: &TokenInfo) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps `old`, a secret of token `id` a rotation replaced, working
    /// until `until`, and ends the grace of every earlier one at `now`.
    fn retire(
        &mut self,
        old: &TokenDigest,
        id: TokenId,
        until: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes token `id` and its index entries.
    fn remove(&mut self, id: TokenId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends an entry to the audit log.
    fn audit(&mut self, entry: &AuditEntry) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Creates the token `new` asks for at `now`, by `actor`: the record
/// validated, adopted by its parent, checked against the policy, stored
/// under a fresh id and secret, audited.
pub(crate) async fn create(
    tx: &mut impl Tx,
    new: &NewToken,
    now: Timestamp,
    actor: &str,
) -> Result<CreatedToken, StoreError> {
    let mut info = new.to_info(TokenId::from_u64(0), now)?;
    // Before anything is read, so that the count below is what committed.
    tx.lock_user(&info.user).await?;
    // Read for a token of named permissions, or one made with a token
    // (whose named permissions count): a plain creation costs no read of
    // the catalog. Before the parent's record, so that every transaction
    // takes the catalog before token rows (PostgreSQL's locks).
    let mut catalog = None;
    if !info.scopes.named().is_empty() || info.parent.is_some() {
        let read = tx.catalog(Lock::Share).await?;
        read.check(&info.scopes)?;
        catalog = Some(read);
    }
    if let Some(id) = info.parent {
        let gone = AuthorityViolation::NoParent(id);
        // For update: a parent with a quota gives its child uses of its own.
        let (digest, mut parent) = tx.token(id, Lock::Update).await?.ok_or(gone.clone())?;
        if tx.is_refused(&digest) {
            // Reuse detection is revoking it.
            return Err(gone.into());
        }
        authority::check_presented(id, &digest, new.parent_secret.as_ref())?;
        // As stored (its named permissions unresolved), to write back.
        let mut stored = parent.max_uses.is_some().then(|| parent.clone());
        if let Some(catalog) = &catalog {
            // What the parent holds, its implications counted.
            parent.scopes = catalog.resolve(&parent.scopes);
        }
        authority::adopt(&parent, &mut info, now)?;
        if let Some(stored) = &mut stored
            && authority::draw_uses(stored, &info)
        {
            tx.rewrite(stored).await?;
        }
    }
    let policy = tx.policy().await?;
    policy.check_lifetime(&info)?;
    if policy.max_tokens_per_user.is_some() {
        let live = tx.live_count(&info.user, now).await?;
        policy.check_count(&info.user, live)?;
    }
    // Collisions of 64-bit ids or 190-bit secrets are astronomically
    // unlikely; draw again rather than overwrite.
    let secret = loop {
        info.id = TokenId::generate();
        let secret = TokenSecret::generate_with(tx.prefix());
        if tx.insert(&secret.digest(), &info).await? {
            break secret;
        }
    };
    let entry = AuditEntry::new(
        now,
        AuditAction::Create,
        Some(info.id),
        &*info.user,
        actor,
        "ok",
    );
    tx.audit(&entry).await?;
    Ok(CreatedToken::new(secret, info))
}

/// A rotation of token `id` at `now`, by `actor`: within the authority
/// rule ([`authority::rotate`]), the old secret retired for its grace and
/// earlier graces ended, the family brought within the new deadline, each
/// change audited. Returns the new secret and record.
pub(crate) async fn rotate(
    tx: &mut impl Tx,
    id: TokenId,
    rotation: &Rotation,
    now: Timestamp,
    actor: &str,
) -> Result<CreatedToken, StoreError> {
    let (old, before) = tx
        .token(id, Lock::Update)
        .await?
        .ok_or(StoreError::NotFound(id))?;
    if tx.is_refused(&old) {
        // Reuse detection revokes it at the next flush.
        return Err(StoreError::NotFound(id));
    }
    authority::check_presented(id, &old, rotation.presented.as_ref())?;
    let parent = match before.parent {
        None => None,
        Some(p) => Some(
            tx.token(p, Lock::Share)
                .await?
                .ok_or(AuthorityViolation::NoParent(p))?
                .1,
        ),
    };
    let policy = tx.policy().await?;
    let info = authority::rotate(&before, rotation, parent.as_ref(), &policy, now)?;
    let family = tx.family(id).await?;
    let clamped = authority::clamp_family(&info, |p| {
        Ok::<_, std::convert::Infallible>(children(&family, p))
    })
    .unwrap_or_else(|never| match never {});
    let secret = loop {
        let secret = TokenSecret::generate_with(tx.prefix());
        if tx.replace_secret(&old, &secret.digest(), &info).await? {
            break secret;
        }
    };
    tx.retire(&old, id, info.previous_until.unwrap_or(now), now)
        .await?;
    let entry = AuditEntry::new(now, AuditAction::Rotate, Some(id), &*info.user, actor, "ok");
    tx.audit(&entry).await?;
    for c in clamped {
        tx.rewrite(&c).await?;
        tx.audit(&authority::clamp_entry(&c, actor, now)).await?;
    }
    Ok(CreatedToken::new(secret, info))
}

/// The children of `parent` among `family`.
fn children(family: &[TokenInfo], parent: TokenId) -> Vec<TokenInfo> {
    family
        .iter()
        .filter(|t| t.parent == Some(parent))
        .cloned()
        .collect()
}

/// Disables token `id` (`disable`) or enables it again, by `actor`, as
/// [`authority::suspension`] rules: each token that changed rewritten and
/// audited. Returns how many changed: 0 when there was nothing to do.
pub(crate) async fn suspend(
    tx: &mut impl Tx,
    id: TokenId,
    disable: bool,
    actor: &str,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let family = tx.family(id).await?;
    let (_, root) = tx
        .token(id, Lock::Update)
        .await?
        .ok_or(StoreError::NotFound(id))?;
    // Read after the family is locked: a disabling of an ancestor locks it
    // too, so it committed before these reads or waits for this
    // transaction. Not locked: a rotation of the parent locks the parent
    // before this family, and waiting for it here would deadlock.
    let parent = match root.parent {
        Some(p) if !disable => tx.token(p, Lock::Read).await?.map(|(_, info)| info),
        _ => None,
    };
    let disabler_exists = match root.disabled_by {
        Some(by) if by != id && !disable => tx.token(by, Lock::Read).await?.is_some(),
        _ => false,
    };
    let changed = authority::suspension(&root, parent.as_ref(), disabler_exists, &family, disable)?;
    let action = if disable {
        AuditAction::Disable
    } else {
        AuditAction::Enable
    };
    for info in &changed {
        tx.rewrite(info).await?;
        let entry = AuditEntry::new(now, action, Some(info.id), &*info.user, actor, "ok");
        tx.audit(&entry).await?;
    }
    Ok(changed.len())
}

/// Revokes token `id` and its descendants, by `actor` (`outcome` in the
/// root's audit entry): the records as they were, root first, or
/// [`StoreError::NotFound`].
pub(crate) async fn revoke(
    tx: &mut impl Tx,
    id: TokenId,
    actor: &str,
    outcome: &str,
    now: Timestamp,
) -> Result<Vec<TokenInfo>, StoreError> {
    let gone = revoke_family(tx, id, actor, outcome, now).await?;
    if gone.is_empty() {
        return Err(StoreError::NotFound(id));
    }
    Ok(gone)
}

/// Revokes token `id` (if it is still there) and its descendants, each
/// audited (the root with `outcome`).
async fn revoke_family(
    tx: &mut impl Tx,
    id: TokenId,
    actor: &str,
    outcome: &str,
    now: Timestamp,
) -> Result<Vec<TokenInfo>, StoreError> {
    let descendants = tx.family(id).await?;
    let Some((_, root)) = tx.token(id, Lock::Update).await? else {
        return Ok(Vec::new());
    };
    tx.remove(id).await?;
    for d in &descendants {
        tx.remove(d.id).await?;
    }
    let entries = authority::revocation_entries(&root, &descendants, actor, outcome, now);
    for e in &entries {
        tx.audit(e).await?;
    }
    let mut gone = Vec::with_capacity(1 + descendants.len());
    gone.push(root);
    gone.extend(descendants);
    Ok(gone)
}

/// Revokes every token of `user` and their descendants (whoever they
/// belong to), by `actor`: one entry per token (so that each is an
/// [`Event`](crate::Event)), then one for the user.
/// Returns the tokens removed.
pub(crate) async fn revoke_user(
    tx: &mut impl Tx,
    user: &str,
    actor: &str,
    now: Timestamp,
) -> Result<Vec<TokenInfo>, StoreError> {
    let ids = tx.tokens_of(user).await?;
    tx.lock_families(&ids).await?;
    let mut gone = Vec::new();
    for id in ids {
        // A descendant of one of them may be gone with it already.
        gone.extend(revoke_family(tx, id, actor, authority::USER_REVOKED, now).await?);
    }
    let entry = AuditEntry::new(
        now,
        AuditAction::RevokeUser,
        None,
        user,
        actor,
        AuditEntry::count_outcome(gone.len()),
    );
    tx.audit(&entry).await?;
    Ok(gone)
}

/// Reuse detection's revocations, asked by the request path and carried
/// out by a flush: each root's family, audited with the cause.
pub(crate) async fn revoke_reused(
    tx: &mut impl Tx,
    roots: &[TokenId],
    now: Timestamp,
) -> Result<Vec<TokenInfo>, StoreError> {
    tx.lock_families(roots).await?;
    let mut gone = Vec::new();
    for &id in roots {
        gone.extend(
            revoke_family(
                tx,
                id,
                authority::REUSE_ACTOR,
                authority::REUSE_OUTCOME,
                now,
            )
            .await?,
        );
    }
    Ok(gone)
}

/// Spends one use of token `id`'s quota at `now`, for a use from `client`
/// ([`Verifier::spend`](crate::Verifier::spend)): the record read for
/// update, the use rule checked again on what is stored (another replica
/// may have revoked, disabled or used it up since this one cached it), one
/// use counted ([`TokenInfo::spend_use`]) and written. The inner error is
/// the refusal; nothing is written then.
pub(crate) async fn spend(
    tx: &mut impl Tx,
    id: TokenId,
    client: Option<std::net::IpAddr>,
    now: Timestamp,
) -> Result<Result<TokenInfo, crate::AuthError>, StoreError> {
    let Some((digest, mut info)) = tx.token(id, Lock::Update).await? else {
        return Ok(Err(crate::AuthError::Unknown));
    };
    if tx.is_refused(&digest) {
        // Reuse detection is revoking it.
        return Ok(Err(crate::AuthError::Unknown));
    }
    if let Err(refused) = info
        .check_use_from(None, client, now)
        .and_then(|_| info.spend_use())
    {
        return Ok(Err(refused));
    }
    tx.rewrite(&info).await?;
    Ok(Ok(info))
}

/// A listing of `records` (every token a backend found for the request):
/// expired ones only `include_expired`, oldest first, ties by id
/// ([`Admin::list`](crate::Admin::list)).
pub(crate) fn listing(
    mut records: Vec<TokenInfo>,
    include_expired: bool,
    now: Timestamp,
) -> Vec<TokenInfo> {
    records.retain(|i| include_expired || !i.is_expired(now));
    records.sort_by_key(|i| (i.created_at, i.id));
    records
}
