//! The authority rule: no token outgrows what made it.
//!
//! A token created by a principal that authenticated with a token is that
//! token's **child** ([`TokenInfo::parent`]). Revoking a token revokes its
//! descendants. A descendant's latest possible deadline and its scopes never
//! exceed its parent's, at creation ([`adopt`]) or at any rotation
//! ([`rotate`], [`clamp`]), however many steps down.
//!
//! A rotation stays inside the token's **envelope**: its duration (a hard
//! lifetime, or a sliding window) no longer than the one it was issued with,
//! its sliding cap and the store policy's maximum lifetime counted from the
//! start of its lifetime ([`TokenInfo::lifetime_from`]), its family's limit
//! ([`TokenInfo::not_after`]) and its parent's deadline. So a root token may
//! renew itself, but a policy, a cap or a parent bounds the whole family's
//! life. Only an admin's explicit rotation ([`Rotation::new_lifetime`])
//! starts a new lifetime. A rotation ends every earlier secret's grace, and
//! the grace it gives is capped ([`grace_end`]).
//!
//! These are the functions every backend calls inside its own transactions,
//! so that the rule is written once.

use crate::error::StoreError;
use crate::model::expiry::Expiry;
use crate::model::policy::Policy;
use crate::model::record::{Rotation, TokenInfo};
use crate::model::scope::Scopes;
use crate::model::time::{Timestamp, format_duration};
use crate::model::token::TokenId;

/// The longest grace a rotation gives the replaced secret when the store's
/// policy sets none: one day.
pub const DEFAULT_MAX_GRACE: std::time::Duration = std::time::Duration::from_secs(86_400);

/// The audit log's actor for a revocation by reuse detection.
pub const REUSE_ACTOR: &str = "reuse detection";

/// The audit log's outcome of a token revoked because an old secret of it
/// was presented after its grace.
pub const REUSE_OUTCOME: &str = "an old secret was replayed after its grace";

/// The start of the audit outcome of a token revoked with an ancestor
/// (`parent revoked (ID)`, the root of the revocation).
pub const PARENT_REVOKED: &str = "parent revoked (";

/// The audit outcome of each token a revocation of all of its user's
/// tokens took.
pub const USER_REVOKED: &str = "every token of the user revoked";

/// What the authority rule refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityViolation {
    /// The token would outlive the token it was made with.
    #[error(
        "a token may not outlive the token it was made with: that one lives until {limit}; \
         this one {}", Until(*asked)
    )]
    OutlivesParent {
        /// The parent's deadline.
        limit: Timestamp,
        /// The latest this token could live; `None`: forever.
        asked: Option<Timestamp>,
    },
    /// A rotation would take the token past its envelope.
    #[error(
        "a rotation may not take a token past {why}, which ends its life at {limit}; this \
         rotation {}", Until(*asked)
    )]
    OutlivesEnvelope {
        /// What sets the limit ("its family's limit").
        why: &'static str,
        /// The limit.
        limit: Timestamp,
        /// The latest the rotated token could live; `None`: forever.
        asked: Option<Timestamp>,
    },
    /// A rotation asked for a longer duration than the token was issued
    /// with.
    #[error(
        "a rotation may not lengthen a token's life: it was issued for {issued}, this rotation \
         asks for {asked}"
    )]
    Longer {
        /// The issued duration (a hard lifetime or a sliding window).
        issued: String,
        /// The duration asked for.
        asked: String,
    },
    /// The token would reach further than the token it was made with.
    #[error("{0}")]
    Wider(String),
    /// The token it would be made with is gone or expired.
    #[error("the token {0} it would be made with no longer exists")]
    NoParent(TokenId),
    /// The secret presented is no longer the token's current one: a
    /// rotation replaced it (perhaps on another replica, or while the
    /// request was on its way).
    #[error("the secret presented for token {0} was replaced by a rotation: use the current one")]
    NotCurrent(TokenId),
}

/// The rule for a change asked with a token's secret (`presented`, when
/// the caller knows it): the token `id`, whose current secret has digest
/// `current`, is changed only if they are the same.
pub fn check_presented(
    id: TokenId,
    current: &crate::TokenDigest,
    presented: Option<&crate::TokenDigest>,
) -> Result<(), AuthorityViolation> {
    match presented {
        Some(p) if p != current => Err(AuthorityViolation::NotCurrent(id)),
        _ => Ok(()),
    }
}

/// "would live until T", or "could live forever".
struct Until(Option<Timestamp>);

impl std::fmt::Display for Until {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(t) => write!(f, "would live until {t}"),
            None => f.write_str(
                "could live forever (a sliding token without a cap): give it a max lifetime",
            ),
        }
    }
}

fn min_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Draws a child's uses from its parent's quota: the parent's count goes
/// up by the uses [`adopt`] gave the child, so that a family never has more
/// uses in all than the token that began it (children minting children
/// would otherwise double them at each step). Returns whether the parent
/// changed, for the store to write it in the child's transaction.
pub fn draw_uses(parent: &mut TokenInfo, child: &TokenInfo) -> bool {
    match (parent.max_uses, child.max_uses) {
        (Some(max), Some(drawn)) => {
            parent.uses = parent.uses.saturating_add(drawn).min(max);
            true
        }
        _ => false,
    }
}

/// Checks that `child`, a new token made by a principal that authenticated
/// with `parent`, stays within it at `now`: its latest possible deadline no
/// later than the parent's deadline, its scopes within the parent's. Sets
/// the limit the child inherits ([`TokenInfo::not_after`]), the parent's
/// suspension, if any ([`TokenInfo::disabled_by`]), its address rule when
/// the child gives none (one given must lie within it,
/// [`TokenInfo::allow_from`]), its rate limit when the child gives none (one
/// given must allow no more, [`TokenInfo::rate`]), the uses it has left
/// when it has a quota (the child's is at most that, and that when it gives
/// none, [`TokenInfo::max_uses`]), and its metadata, to which the child may
/// add keys but not change one ([`TokenInfo::meta`]).
pub fn adopt(
    parent: &TokenInfo,
    child: &mut TokenInfo,
    now: Timestamp,
) -> Result<(), AuthorityViolation> {
    if parent.is_expired(now) {
        return Err(AuthorityViolation::NoParent(parent.id));
    }
    let limit = parent.expiry.expires_at();
    match child.latest_possible() {
        Some(latest) if latest <= limit => {}
        asked => return Err(AuthorityViolation::OutlivesParent { limit, asked }),
    }
    within_scopes(&parent.scopes, &child.scopes)?;
    child.not_after = min_opt(child.not_after, parent.latest_possible());
    // Made under a disabled parent (by an admin: a disabled token cannot
    // authenticate to mint), it is disabled with the family, and enabled
    // with it.
    child.disabled_by = parent.disabled_by;
    // No wider an address rule: none given is the parent's; each network
    // given must lie within one of the parent's.
    if !parent.allow_from.is_empty() {
        if child.allow_from.is_empty() {
            child.allow_from.clone_from(&parent.allow_from);
        } else if let Some(wider) = child
            .allow_from
            .iter()
            .find(|n| !parent.allow_from.iter().any(|p| n.within(p)))
        {
            let allowed: Vec<String> = parent.allow_from.iter().map(ToString::to_string).collect();
            return Err(AuthorityViolation::Wider(format!(
                "network {wider} reaches further than the token it is made with may be used from ({})",
                allowed.join(", ")
            )));
        }
    }
    // No higher a rate: none given is the parent's.
    if let Some(limit) = parent.rate {
        match child.rate {
            None => child.rate = Some(limit),
            Some(asked) if !asked.within(limit) => {
                return Err(AuthorityViolation::Wider(format!(
                    "rate {asked} allows more uses (at once or over time) than the token it is made \
                     with may have ({limit})"
                )));
            }
            Some(_) => {}
        }
    }
    // No more uses than the parent has left: none given is all of them.
    if let Some(left) = parent.uses_left() {
        match child.max_uses {
            _ if left == 0 => {
                return Err(AuthorityViolation::Wider(
                    "the token it is made with has no uses left".to_owned(),
                ));
            }
            None => child.max_uses = Some(left),
            Some(asked) if asked > left => {
                return Err(AuthorityViolation::Wider(format!(
                    "{asked} uses are more than the token it is made with has left ({left})"
                )));
            }
            Some(_) => {}
        }
    }
    // The parent's metadata, which the child may add to but not change.
    child.meta = parent
        .meta
        .extended_by(&child.meta)
        .map_err(AuthorityViolation::Wider)?;
    Ok(())
}

/// Whether `scopes` reach no further than `allowed`: an unrestricted
/// parent allows anything; a scoped one only its own nodes, with at most
/// its permissions on each (pat does not know the app's tree, so a node
/// below one of the parent's is refused too), and only the named
/// permissions it holds. `allowed` must be resolved by the catalog
/// ([`Catalog::resolve`](crate::Catalog::resolve)), so that its
/// implications count: a name is allowed when the parent holds it, a
/// wildcard only under a wildcard of the parent's that covers it
/// ([`Permission::covers`](crate::Permission::covers)), since a wildcard
/// stands for names the catalog may gain later.
pub fn within_scopes(allowed: &Scopes, scopes: &Scopes) -> Result<(), AuthorityViolation> {
    if allowed.is_unrestricted() {
        return Ok(());
    }
    if scopes.is_unrestricted() || (scopes.as_slice().is_empty() && scopes.named().is_empty()) {
        return Err(AuthorityViolation::Wider(
            "a scoped token may only make tokens scoped within its own scopes: give scopes".into(),
        ));
    }
    for s in scopes {
        if !allowed
            .iter()
            .any(|a| a.node == s.node && a.perm.contains(s.perm))
        {
            return Err(AuthorityViolation::Wider(format!(
                "scope `{s}` reaches further than the token it is made with ({allowed})"
            )));
        }
    }
    for name in scopes.named() {
        let covered = allowed.named().iter().any(|a| a.covers(name));
        if !covered && (name.is_wildcard() || !allowed.has(name.as_str())) {
            return Err(AuthorityViolation::Wider(format!(
                "permission `{name}` is more than the token it is made with holds ({allowed})"
            )));
        }
    }
    Ok(())
}

/// The duration a token's expiry was issued with: its hard lifetime, or its
/// sliding window.
fn issued_duration(info: &TokenInfo) -> std::time::Duration {
    match info.expiry.window() {
        Some(window) => window,
        None => std::time::Duration::from_secs(
            info.expiry
                .expires_at()
                .as_unix_secs()
                .saturating_sub(info.issued_at().as_unix_secs()),
        ),
    }
}

/// The record after `rotation` of `info` at `now`, the rule every backend
/// applies (`parent` is the parent's record when the token has one, read
/// in the same transaction; `policy` the store's):
///
/// - within its lifetime (any rotation but an admin's
///   [`Rotation::new_lifetime`]): a duration no longer than the issued
///   one, its sliding cap and the policy's maximum lifetime counted from
///   [`TokenInfo::lifetime_from`];
/// - a new lifetime: the policy's maximum counted from now, as for a new
///   token;
/// - always: within its family's limit and its parent's deadline, and alive
///   after it;
/// - the replaced secret works until [`grace_end`]
///   ([`TokenInfo::previous_until`]; the backend ends every earlier
///   secret's grace now).
pub fn rotate(
    info: &TokenInfo,
    rotation: &Rotation,
    parent: Option<&TokenInfo>,
    policy: &Policy,
    now: Timestamp,
) -> Result<TokenInfo, StoreError> {
    let mut next = info.rotated(rotation, now)?;
    if !rotation.resets_lifetime {
        let issued = issued_duration(info);
        let asked = match rotation.expiry {
            Some(crate::ExpiryPolicy::Hard { lifetime }) => lifetime,
            Some(crate::ExpiryPolicy::Sliding { window, .. }) => window,
            None => issued,
        };
        if asked > issued {
            return Err(AuthorityViolation::Longer {
                issued: format_duration(issued),
                asked: format_duration(asked),
            }
            .into());
        }
        // A sliding cap counts from the lifetime's start, and stays even if
        // the rotation asks for another model (a sliding one keeps it as
        // its own cap, so that the record says so).
        if let Some(cap) = info.expiry.max_lifetime() {
            let end = info.lifetime_from.saturating_add(cap);
            next.expiry = next.expiry.limited_to(end);
            match &mut next.expiry {
                Expiry::Sliding { max_lifetime, .. } => {
                    *max_lifetime = Some(max_lifetime.map_or(cap, |c| c.min(cap)));
                }
                _ => next.not_after = min_opt(next.not_after, Some(end)),
            }
        }
        // A hard token turned sliding would outlive its deadline by use:
        // it ends by now + its issued lifetime, as a hard rotation would.
        if info.expiry.window().is_none() && next.expiry.window().is_some() {
            let end = now.saturating_add(issued);
            next.not_after = min_opt(next.not_after, Some(end));
            next.expiry = next.expiry.limited_to(end);
        }
        // The policy's maximum, counted from the lifetime's start.
        if let Some(max) = policy.max_lifetime {
            let limit = next.lifetime_from.saturating_add(max);
            match next.latest_possible() {
                Some(latest) if latest <= limit => {}
                Some(latest) => {
                    return Err(crate::PolicyViolation::Lifetime {
                        max: format_duration(max),
                        asked: format_duration(std::time::Duration::from_secs(
                            latest
                                .as_unix_secs()
                                .saturating_sub(next.lifetime_from.as_unix_secs()),
                        )),
                    }
                    .into());
                }
                None => {
                    return Err(crate::PolicyViolation::Uncapped {
                        max: format_duration(max),
                    }
                    .into());
                }
            }
        }
    } else {
        policy.check_lifetime(&next)?;
    }
    if let Some(parent) = parent {
        if parent.is_expired(now) {
            return Err(AuthorityViolation::NoParent(parent.id).into());
        }
        let limit = parent.expiry.expires_at();
        match next.latest_possible() {
            Some(latest) if latest <= limit => {}
            asked => return Err(AuthorityViolation::OutlivesParent { limit, asked }.into()),
        }
        next.not_after = min_opt(next.not_after, parent.latest_possible());
    }
    if next.is_expired(now) {
        return Err(AuthorityViolation::OutlivesEnvelope {
            why: "its family's limit",
            limit: next.expiry.expires_at(),
            asked: Some(now),
        }
        .into());
    }
    let retires_at = grace_end(info, rotation, policy, now);
    next.previous_until = (retires_at > now).then_some(retires_at);
    Ok(next)
}

/// When the secret a rotation of `info` at `now` replaces stops working:
/// after the grace asked, no longer than the policy's
/// [`max_grace`](Policy::max_grace) (default [`DEFAULT_MAX_GRACE`]), and
/// never after the token's own deadline before the rotation.
pub fn grace_end(
    info: &TokenInfo,
    rotation: &Rotation,
    policy: &Policy,
    now: Timestamp,
) -> Timestamp {
    let most = policy.max_grace.unwrap_or(DEFAULT_MAX_GRACE);
    now.saturating_add(rotation.grace.min(most))
        .min(info.expiry.expires_at().max(now))
}

/// Old graces brought under the rule, for a store written before it:
/// `graces` holds each retired secret's key, token and end of grace. Of a
/// token's secrets still in their grace at `now`, the one ending last keeps
/// it, at most [`DEFAULT_MAX_GRACE`] from now; the others end now. Returns
/// each token with a live old secret and when its grace ends, for its
/// record ([`TokenInfo::previous_until`]).
pub fn bound_old_graces<K>(
    graces: &mut [(K, TokenId, Timestamp)],
    now: Timestamp,
) -> Vec<(TokenId, Timestamp)> {
    let mut kept: std::collections::BTreeMap<TokenId, usize> = Default::default();
    for (i, (_, id, until)) in graces.iter().enumerate() {
        if *until <= now {
            continue;
        }
        match kept.get(id) {
            Some(&j) if graces[j].2 >= *until => {}
            _ => {
                kept.insert(*id, i);
            }
        }
    }
    let most = now.saturating_add(DEFAULT_MAX_GRACE);
    for (i, (_, id, until)) in graces.iter_mut().enumerate() {
        if *until > now {
            *until = if kept.get(id) == Some(&i) {
                (*until).min(most)
            } else {
                now
            };
        }
    }
    kept.into_iter().map(|(id, i)| (id, graces[i].2)).collect()
}

/// A descendant of a token whose latest possible deadline is now `limit`:
/// its record brought within it, or `None` when it is within already (then
/// so are its own descendants).
pub fn clamp(descendant: &TokenInfo, limit: Timestamp) -> Option<TokenInfo> {
    if descendant.latest_possible().is_some_and(|l| l <= limit) {
        return None;
    }
    let mut d = descendant.clone();
    d.not_after = min_opt(d.not_after, Some(limit));
    d.expiry = d.expiry.limited_to(limit);
    Some(d)
}

/// Every descendant of `root`, nearest first, found with `children` (the
/// children of one token, as the backend indexes them): what revoking
/// `root` takes with it.
pub fn family<E>(
    root: TokenId,
    mut children: impl FnMut(TokenId) -> Result<Vec<TokenInfo>, E>,
) -> Result<Vec<TokenInfo>, E> {
    let mut found: Vec<TokenInfo> = Vec::new();
    // A cycle cannot be made (a child is created after its parent), but a
    // damaged store must not loop.
    let mut seen = std::collections::HashSet::from([root]);
    let mut next = 0;
    let mut parent = root;
    loop {
        for child in children(parent)? {
            if seen.insert(child.id) {
                found.push(child);
            }
        }
        let Some(t) = found.get(next) else {
            return Ok(found);
        };
        parent = t.id;
        next += 1;
    }
}

/// The descendants of `root` to rewrite after a rotation gave it the
/// deadline it now has: its children brought within that deadline, as
/// [`adopt`] required of them at their creation (so a sliding token
/// rotated to a shorter window takes its family down with it), and theirs
/// within their own new limit ([`clamp`]), nearest first. Those within
/// already are left alone, and so are their own descendants.
pub fn clamp_family<E>(
    root: &TokenInfo,
    mut children: impl FnMut(TokenId) -> Result<Vec<TokenInfo>, E>,
) -> Result<Vec<TokenInfo>, E> {
    let mut clamped: Vec<TokenInfo> = Vec::new();
    let mut pending = vec![(root.id, Some(root.expiry.expires_at()))];
    while let Some((parent, limit)) = pending.pop() {
        let Some(limit) = limit else { continue };
        for child in children(parent)? {
            if clamped.iter().any(|c| c.id == child.id) || child.id == root.id {
                continue;
            }
            if let Some(c) = clamp(&child, limit) {
                pending.push((c.id, c.latest_possible()));
                clamped.push(c);
            }
        }
    }
    Ok(clamped)
}

/// The audit entries of revoking `root` by `actor` (`outcome` its own,
/// usually `ok`), and with it `descendants`.
pub fn revocation_entries(
    root: &TokenInfo,
    descendants: &[TokenInfo],
    actor: &str,
    outcome: &str,
    now: Timestamp,
) -> Vec<crate::AuditEntry> {
    use crate::model::audit::{AuditAction, AuditEntry};
    let mut entries = vec![AuditEntry::new(
        now,
        AuditAction::Revoke,
        Some(root.id),
        &*root.user,
        actor,
        outcome,
    )];
    entries.extend(descendants.iter().map(|d| {
        AuditEntry::new(
            now,
            AuditAction::Revoke,
            Some(d.id),
            &*d.user,
            actor,
            format!("{PARENT_REVOKED}{})", root.id),
        )
    }));
    entries
}

/// The audit entry of a descendant [`clamp`]ed by `actor`'s change.
pub fn clamp_entry(clamped: &TokenInfo, actor: &str, now: Timestamp) -> crate::AuditEntry {
    use crate::model::audit::{AuditAction, AuditEntry};
    AuditEntry::new(
        now,
        AuditAction::Shorten,
        Some(clamped.id),
        &*clamped.user,
        actor,
        format!(
            "ends by {}, its parent's deadline",
            clamped.latest_possible().unwrap_or(Timestamp::MAX)
        ),
    )
}

/// What disabling (`disable`) or enabling token `root` changes, the
/// suspension rule every backend follows: the records to write, each with
/// its new [`TokenInfo::disabled_by`]. `parent` is the root's parent as
/// stored (`None` for a root token or one whose parent is gone);
/// `disabler_exists` whether the token the root is disabled by (when not
/// itself) is still stored; `family` its descendants.
///
/// - Disabling marks the root and every descendant that was enabled, or
///   disabled through the same ancestor as the root, as disabled by the
///   root: a token already disabled with an ancestor is then disabled on its
///   own too, so that enabling the ancestor does not bring it back. Tokens
///   disabled on their own, or by a token between, keep their mark.
/// - Enabling gives back the root and the descendants marked with the
///   root's own disabling. Refused ([`SuspensionError::Inherited`](crate::SuspensionError::Inherited)) while an
///   ancestor is disabled (the parent is then disabled, whatever its mark),
///   and for a token disabled through an ancestor still stored; a mark of a
///   token pruned since is the root's to lift.
///
/// Empty when there is nothing to do (disabled on its own already, or
/// enabled).
pub fn suspension(
    root: &TokenInfo,
    parent: Option<&TokenInfo>,
    disabler_exists: bool,
    family: &[TokenInfo],
    disable: bool,
) -> Result<Vec<TokenInfo>, crate::error::SuspensionError> {
    use crate::error::SuspensionError;
    let (from, to) = match (disable, root.disabled_by) {
        (true, Some(by)) if by == root.id => return Ok(Vec::new()),
        (true, from) => (from, Some(root.id)),
        (false, None) => return Ok(Vec::new()),
        (false, Some(by)) => {
            if let Some(above) = parent.and_then(|p| p.disabled_by) {
                return Err(SuspensionError::Inherited {
                    token: root.id,
                    by: above,
                });
            }
            if by != root.id && disabler_exists {
                return Err(SuspensionError::Inherited { token: root.id, by });
            }
            (Some(by), None)
        }
    };
    Ok(std::iter::once(root)
        .chain(family)
        .filter(|t| t.disabled_by == from)
        .map(|t| TokenInfo {
            disabled_by: to,
            ..t.clone()
        })
        .collect())
}

/// The descendants of `id` among `tokens` (children, their children...),
/// nearest first: for backends without an index by parent.
pub fn descendants_in(tokens: &[TokenInfo], id: TokenId) -> Vec<TokenInfo> {
    let index = children_index(tokens);
    let children = |parent: TokenId| -> Result<Vec<TokenInfo>, std::convert::Infallible> {
        Ok(index
            .get(&parent)
            .into_iter()
            .flatten()
            .map(|&i| tokens[i].clone())
            .collect())
    };
    match family(id, children) {
        Ok(found) => found,
        Err(never) => match never {},
    }
}

/// The positions in `tokens` of each token's children.
fn children_index(tokens: &[TokenInfo]) -> std::collections::HashMap<TokenId, Vec<usize>> {
    let mut index: std::collections::HashMap<TokenId, Vec<usize>> = Default::default();
    for (i, t) in tokens.iter().enumerate() {
        if let Some(p) = t.parent {
            index.entry(p).or_default().push(i);
        }
    }
    index
}

/// How many descendants among `tokens` each of them has, in one pass over
/// the family trees (a listing shows it for every token; one walk per
/// token would cost the square of a long chain).
pub fn descendant_counts(tokens: &[TokenInfo]) -> std::collections::HashMap<TokenId, usize> {
    let index = children_index(tokens);
    let mut counts: std::collections::HashMap<TokenId, usize> = Default::default();
    let mut expanded = std::collections::HashSet::new();
    for t in tokens {
        let mut stack = vec![(t.id, false)];
        while let Some((id, done)) = stack.pop() {
            if counts.contains_key(&id) {
                continue;
            }
            let kids = index.get(&id).into_iter().flatten().map(|&i| tokens[i].id);
            if done {
                let n = kids.map(|c| 1 + counts.get(&c).copied().unwrap_or(0)).sum();
                counts.insert(id, n);
            } else if expanded.insert(id) {
                // (Expanded once: a damaged store's cycle counts nothing twice.)
                stack.push((id, true));
                stack.extend(kids.map(|c| (c, false)));
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests;
