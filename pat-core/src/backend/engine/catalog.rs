//! Changes to the catalog of named permissions, once for every backend:
//! definitions checked as a whole ([`Catalog::define`]), each change
//! audited, and a removal that takes the name from the tokens that carry
//! it (refused while live ones do, unless forced), revoking a token it
//! leaves with no scope rather than widening it to unrestricted.
//!
//! The backend commits the transaction, then makes the catalog returned
//! the one its lookups resolve with and forgets every cached record (what
//! each token holds may have changed).

use super::{Lock, Tx, revoke_family};
use crate::error::StoreError;
use crate::model::audit::{AuditAction, AuditEntry};
use crate::model::permission::{Catalog, CatalogError, Permission, PermissionDef};
use crate::model::record::TokenInfo;
use crate::model::scope::Scopes;
use crate::model::time::Timestamp;

/// The audit outcome of a token revoked because a forced removal took its
/// last scope.
pub(crate) const LAST_SCOPE_OUTCOME: &str = "revoked: its last scope was removed from the catalog";

/// Adds or changes the definitions `defs`, by `actor`: the catalog after,
/// or `None` when it already said all that.
pub(crate) async fn define(
    tx: &mut impl Tx,
    defs: &[PermissionDef],
    actor: &str,
    now: Timestamp,
) -> Result<Option<Catalog>, StoreError> {
    let before = tx.catalog(Lock::Update).await?;
    let mut after = before.clone();
    if !after.define(defs.iter().cloned())? {
        return Ok(None);
    }
    keeps_families_within(tx, &before, &after).await?;
    for def in after.iter() {
        if before.get(def.name.as_str()) != Some(def) {
            tx.put_permission(def).await?;
            let entry = AuditEntry::new(
                now,
                AuditAction::DefinePermission,
                None,
                "",
                actor,
                def.name.as_str(),
            );
            tx.audit(&entry).await?;
        }
    }
    Ok(Some(after))
}

/// Refuses a change that takes implications away when a token made with
/// another holds, by name, a permission that token would then no longer
/// hold (the authority rule: no token out-reaches what made it). Only the
/// names the lost implications led to can be affected: those tokens are
/// read, and each one's parent resolved with the new catalog.
async fn keeps_families_within(
    tx: &mut impl Tx,
    before: &Catalog,
    after: &Catalog,
) -> Result<(), StoreError> {
    // The names reachable, in the old catalog, from an implication the new
    // one lacks.
    let mut affected: Vec<&Permission> = Vec::new();
    for def in before.iter() {
        let kept = after.get(def.name.as_str());
        for implied in &def.implies {
            if kept.is_none_or(|k| !k.implies.contains(implied)) {
                affected.push(implied);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = affected.pop() {
        if !seen.insert(name) {
            continue;
        }
        if let Some(def) = before.get(name.as_str()) {
            affected.extend(def.implies.iter());
        }
    }
    for name in seen {
        for token in tx.carrying(name).await? {
            let Some(parent) = token.parent else { continue };
            let Some((_, parent)) = tx.token(parent, Lock::Share).await? else {
                continue;
            };
            if !parent.scopes.is_unrestricted() && !after.resolve(&parent.scopes).has(name.as_str())
            {
                return Err(CatalogError::Outgrown {
                    name: name.to_string(),
                    token: token.id.to_string(),
                }
                .into());
            }
        }
    }
    Ok(())
}

/// What a removal did.
#[derive(Debug)]
pub(crate) struct Removed {
    /// The catalog after.
    pub(crate) catalog: Catalog,
    /// The tokens that lost the name and kept other scopes, as they are
    /// now.
    pub(crate) narrowed: Vec<TokenInfo>,
    /// The tokens revoked (left with no scope, and their descendants), as
    /// they were.
    pub(crate) revoked: Vec<TokenInfo>,
}

/// Takes `name` out of the catalog, by `actor`: refused while another
/// permission implies it, or while live tokens carry it unless `force`.
/// Every token that carries it (expired ones too) loses it; one left with
/// no scope is revoked with its descendants.
pub(crate) async fn remove(
    tx: &mut impl Tx,
    name: &Permission,
    force: bool,
    actor: &str,
    now: Timestamp,
) -> Result<Removed, StoreError> {
    let mut catalog = tx.catalog(Lock::Update).await?;
    catalog.remove(name.as_str())?;
    let carrying = tx.carrying(name).await?;
    let live = carrying.iter().filter(|t| !t.is_expired(now)).count();
    if live > 0 && !force {
        return Err(CatalogError::InUse {
            name: name.to_string(),
            tokens: live,
        }
        .into());
    }
    tx.delete_permission(name).await?;
    let entry = AuditEntry::new(
        now,
        AuditAction::RemovePermission,
        None,
        "",
        actor,
        name.as_str(),
    );
    tx.audit(&entry).await?;
    let mut removed = Removed {
        catalog,
        narrowed: Vec::new(),
        revoked: Vec::new(),
    };
    for token in carrying {
        // Revoked already, as a descendant of one revoked before it.
        let Some((_, mut info)) = tx.token(token.id, Lock::Update).await? else {
            continue;
        };
        let scopes = without(&info.scopes, name);
        if scopes.is_unrestricted() {
            let gone = revoke_family(tx, info.id, actor, LAST_SCOPE_OUTCOME, now, true).await?;
            removed.revoked.extend(gone);
            continue;
        }
        info.scopes = scopes;
        tx.rewrite(&info).await?;
        let entry = AuditEntry::new(
            now,
            AuditAction::LosePermission,
            Some(info.id),
            &*info.user,
            actor,
            name.as_str(),
        );
        tx.audit(&entry).await?;
        removed.narrowed.push(info);
    }
    Ok(removed)
}

/// `scopes` without the named permission `name`: unrestricted when it was
/// the only scope (which the caller must not store as such).
fn without(scopes: &Scopes, name: &Permission) -> Scopes {
    Scopes::new(
        scopes.iter().copied(),
        scopes.named().iter().filter(|n| *n != name).cloned(),
    )
}
