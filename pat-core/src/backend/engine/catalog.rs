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

/// The names a change from `before` to `after` may take from a token
/// that holds them through implications: those reachable, in `before`,
/// from an implication `after` lacks (a removed definition's included).
fn affected(before: &Catalog, after: &Catalog) -> Vec<Permission> {
    let mut todo: Vec<&Permission> = Vec::new();
    for def in before.iter() {
        let kept = after.get(def.name.as_str());
        for implied in &def.implies {
            if kept.is_none_or(|k| !k.implies.contains(implied)) {
                todo.push(implied);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = todo.pop() {
        if seen.insert(name)
            && let Some(def) = before.get(name.as_str())
        {
            todo.extend(def.implies.iter());
        }
    }
    seen.into_iter().cloned().collect()
}

/// The tokens that carry one of `names` by name while the token they were
/// made with, resolved with `after`, no longer holds it (the authority
/// rule: no token out-reaches what made it), with that name.
async fn outgrown(
    tx: &mut impl Tx,
    after: &Catalog,
    names: &[Permission],
) -> Result<Vec<(TokenInfo, Permission)>, StoreError> {
    let mut out = Vec::new();
    for name in names {
        for token in tx.carrying(name).await? {
            let Some(parent) = token.parent else { continue };
            let Some((_, parent)) = tx.token(parent, Lock::Share).await? else {
                continue;
            };
            if !parent.scopes.is_unrestricted() && !after.resolve(&parent.scopes).has(name.as_str())
            {
                out.push((token, name.clone()));
            }
        }
    }
    Ok(out)
}

fn outgrown_error(token: &TokenInfo, name: &Permission) -> StoreError {
    CatalogError::Outgrown {
        name: name.to_string(),
        token: token.id,
    }
    .into()
}

/// Refuses a change that would leave a token holding, by name, what the
/// token it was made with no longer holds.
async fn keeps_families_within(
    tx: &mut impl Tx,
    before: &Catalog,
    after: &Catalog,
) -> Result<(), StoreError> {
    match outgrown(tx, after, &affected(before, after)).await?.first() {
        Some((token, name)) => Err(outgrown_error(token, name)),
        None => Ok(()),
    }
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
    let before = tx.catalog(Lock::Update).await?;
    let mut catalog = before.clone();
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
    // What the removed name implied: a token made with one that held it
    // only through the removed name loses it too, which needs force.
    let implied = affected(&before, &catalog);
    if !force && let Some((token, lost)) = outgrown(tx, &catalog, &implied).await?.first() {
        return Err(outgrown_error(token, lost));
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
        take(tx, &token, name, actor, now, &mut removed).await?;
    }
    // By force: every token left holding by name what its parent no longer
    // holds loses it, down the family (each round takes at least one name
    // from one token, so this ends).
    loop {
        let found = outgrown(tx, &removed.catalog, &implied).await?;
        if found.is_empty() {
            break;
        }
        for (token, lost) in found {
            take(tx, &token, &lost, actor, now, &mut removed).await?;
        }
    }
    Ok(removed)
}

/// Takes `name` from `token` (if it is still there), by `actor`: its record
/// rewritten and audited, or, left with no scope, revoked with its
/// descendants.
async fn take(
    tx: &mut impl Tx,
    token: &TokenInfo,
    name: &Permission,
    actor: &str,
    now: Timestamp,
    removed: &mut Removed,
) -> Result<(), StoreError> {
    // Revoked already, as a descendant of one revoked before it.
    let Some((_, mut info)) = tx.token(token.id, Lock::Update).await? else {
        return Ok(());
    };
    let scopes = without(&info.scopes, name);
    if scopes.is_unrestricted() {
        let gone = revoke_family(tx, info.id, actor, LAST_SCOPE_OUTCOME, now).await?;
        removed.revoked.extend(gone);
        return Ok(());
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
    removed.narrowed.retain(|t| t.id != info.id);
    removed.narrowed.push(info);
    Ok(())
}

/// `scopes` without the named permission `name`: unrestricted when it was
/// the only scope (which the caller must not store as such).
fn without(scopes: &Scopes, name: &Permission) -> Scopes {
    Scopes::new(
        scopes.iter().copied(),
        scopes.named().iter().filter(|n| *n != name).cloned(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use proptest::prelude::*;

    use crate::backend::admin::Admin as _;
    use crate::backend::authority::within_scopes;
    use crate::{
        ExpiryPolicy, Identity, MemoryStore, NewToken, Permission, PermissionDef, Scopes,
        Timestamp, TokenId,
    };

    const NAMES: [&str; 5] = ["a", "b", "c", "g:x", "g:y"];

    #[derive(Clone, Debug)]
    enum Op {
        /// Define `NAMES[n]` implying the names of the bits of `implies`.
        Define(usize, u8),
        /// Remove `NAMES[n]`, by force or not.
        Remove(usize, bool),
        /// Mint a token with the names of the bits of `names` (bit 5: the
        /// wildcard `g:*`), a child of the `parent`-th token made so far
        /// (modulo their number), or a root when there is none or `root`.
        Mint {
            names: u8,
            parent: usize,
            root: bool,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..NAMES.len(), any::<u8>()).prop_map(|(n, i)| Op::Define(n, i)),
            (0..NAMES.len(), any::<bool>()).prop_map(|(n, f)| Op::Remove(n, f)),
            (1u8..64, any::<usize>(), any::<bool>()).prop_map(|(names, parent, root)| Op::Mint {
                names,
                parent,
                root
            }),
        ]
    }

    fn names_of(bits: u8, wildcard: bool) -> Vec<Permission> {
        let mut out: Vec<Permission> = (0..NAMES.len())
            .filter(|i| bits & (1 << i) != 0)
            .map(|i| NAMES[i].parse().unwrap())
            .collect();
        if wildcard && bits & 0b10_0000 != 0 {
            out.push("g:*".parse().unwrap());
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Whatever definitions, removals and mintings come in whatever
        /// order, no token holds by name what the token it was made with
        /// does not hold in the catalog as it stands, and no token made
        /// scoped is ever unrestricted.
        #[test]
        fn no_child_outgrows_its_parent_whatever_the_catalog_does(
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            let store = MemoryStore::new();
            // Every name, implying nothing yet: the ops change it from there.
            store
                .define_permissions(
                    &NAMES.map(|n| PermissionDef::new(n.parse().unwrap())),
                )
                .unwrap();
            let long = ExpiryPolicy::hard(Duration::from_secs(100 * 365 * 86_400));
            let mut made: Vec<(TokenId, Identity)> = Vec::new();
            let mut lifetime = 100 * 365 * 86_400;
            for op in ops {
                match op {
                    Op::Define(n, implies) => {
                        let def = names_of(implies, false)
                            .into_iter()
                            .fold(PermissionDef::new(NAMES[n].parse().unwrap()), |d, i| d.implies(i));
                        let _ = store.define_permissions(&[def]);
                    }
                    Op::Remove(n, force) => {
                        let _ = store.remove_permission(&NAMES[n].parse().unwrap(), force);
                    }
                    Op::Mint { names, parent, root } => {
                        // Lifetimes shrink, so that a child never outlives
                        // its parent; a child's names are mostly ones its
                        // parent holds now, so that minting succeeds.
                        lifetime -= 60;
                        let policy = ExpiryPolicy::hard(Duration::from_secs(lifetime));
                        let new = if root || made.is_empty() {
                            NewToken::new("u", long).scopes(Scopes::new([], names_of(names, true)))
                        } else {
                            let (id, parent) = &made[parent % made.len()];
                            let Ok(record) = store.get(*id) else { continue };
                            let held = store.permissions().unwrap().resolve(&record.scopes);
                            let wanted = names_of(names, true);
                            let mut some: Vec<Permission> = wanted
                                .iter()
                                .filter(|n| held.has(n.as_str()) || held.named().contains(n))
                                .cloned()
                                .collect();
                            if some.is_empty() {
                                some = wanted;
                            }
                            NewToken::new("u", policy)
                                .scopes(Scopes::new([], some))
                                .child_of(parent)
                        };
                        if let Ok(created) = store.create(&new, Timestamp::now()) {
                            let identity = Identity::new(&created.info, created.info.expiry.expires_at())
                                .presented_as(created.secret.digest());
                            made.push((created.info.id, identity));
                        }
                    }
                }
                let catalog = store.permissions().unwrap();
                let tokens: BTreeMap<TokenId, crate::TokenInfo> = store
                    .list(None, true, Timestamp::now())
                    .unwrap()
                    .into_iter()
                    .map(|t| (t.id, t))
                    .collect();
                for t in tokens.values() {
                    prop_assert!(!t.scopes.is_unrestricted(), "{t:?} became unrestricted");
                    prop_assert!(
                        !(t.scopes.as_slice().is_empty() && t.scopes.named().is_empty()),
                        "{t:?} restricted to nothing but stored"
                    );
                    if let Some(parent) = t.parent.and_then(|p| tokens.get(&p)) {
                        prop_assert!(
                            within_scopes(&catalog.resolve(&parent.scopes), &t.scopes).is_ok(),
                            "{:?} outgrew {:?} in {catalog:?}",
                            t.scopes,
                            parent.scopes
                        );
                    }
                }
            }
        }
    }
}
