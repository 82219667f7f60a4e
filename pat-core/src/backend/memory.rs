//! A complete backend in memory.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::backend::admin::Audited;
use crate::backend::{Lookup, Verification, Verifier};
use crate::error::{AuthError, StoreError};
use crate::model::audit::{AuditAction, AuditEntry, DEFAULT_AUDIT_RETENTION};
use crate::model::policy::Policy;
use crate::model::record::{CreatedToken, Identity, NewToken, Rotation, TokenInfo};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId, TokenSecret};

/// A token backend in memory, with the semantics of the redb
/// [`Store`](crate::Store) (the same model test and contract cases run
/// against both), for unit tests, examples and prototypes. Nothing survives
/// the process. Like the cached backends, it revokes the families reuse
/// detection refused when [`Verifier::flush`] runs (refused meanwhile);
/// nothing calls it periodically, so call it yourself.
///
/// ```
/// use std::time::Duration;
/// use pat_core::{Admin as _, ExpiryPolicy, Gate, MemoryStore, NewToken, Timestamp};
///
/// let store = std::sync::Arc::new(MemoryStore::new());
/// let created = store.create(
///     &NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(3600))),
///     Timestamp::now(),
/// )?;
/// let gate = Gate::new(store.clone()); // or PatLayer::new(store), PatMiddleware::new(store)
/// # let _ = (created, gate);
/// # Ok::<(), pat_core::StoreError>(())
/// ```
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tokens: HashMap<TokenDigest, TokenInfo>,
    by_id: BTreeMap<TokenId, TokenDigest>,
    /// Secrets retired by rotations: token id and when they stop working.
    retired: HashMap<TokenDigest, (TokenId, Timestamp)>,
    policy: Policy,
    audit: Vec<AuditEntry>,
    /// Tokens reuse detection refuses until [`Verifier::flush`] revokes
    /// their families (as the cached backends do, so that every backend
    /// behaves alike).
    refused: std::collections::HashSet<TokenId>,
    revoke: std::collections::BTreeSet<TokenId>,
    /// Tokens whose replayed secret is in the audit log since the last
    /// flush: one entry per token per flush, however often it is replayed.
    replayed: std::collections::HashSet<TokenId>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// How many tokens it holds, expired ones included.
    pub fn len(&self) -> usize {
        self.state().tokens.len()
    }

    /// Whether it holds no token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is consistent between statements: a panic elsewhere
        // while holding the lock leaves nothing half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("tokens", &self.len())
            .finish()
    }
}

impl State {
    fn remove(&mut self, id: TokenId) -> Option<TokenInfo> {
        let digest = self.by_id.remove(&id)?;
        self.tokens.remove(&digest)
    }

    fn record(&self, id: TokenId) -> Option<&TokenInfo> {
        self.by_id.get(&id).and_then(|d| self.tokens.get(d))
    }

    /// The tokens made with `id` (memory keeps no index: it scans).
    fn children(&self, id: TokenId) -> Result<Vec<TokenInfo>, StoreError> {
        Ok(self
            .tokens
            .values()
            .filter(|t| t.parent == Some(id))
            .cloned()
            .collect())
    }

    /// Removes `root` and its descendants, with their audit entries.
    fn remove_family(
        &mut self,
        root: TokenInfo,
        actor: &str,
        outcome: &str,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let descendants = crate::backend::authority::family(root.id, |id| self.children(id))?;
        self.remove(root.id);
        for d in &descendants {
            self.remove(d.id);
        }
        self.audit
            .extend(crate::backend::authority::revocation_entries(
                &root,
                &descendants,
                actor,
                outcome,
                now,
            ));
        Ok(1 + descendants.len())
    }

    /// Rewrites `info` (same id, same digest).
    fn replace(&mut self, info: TokenInfo) {
        if let Some(digest) = self.by_id.get(&info.id) {
            self.tokens.insert(*digest, info);
        }
    }

    /// Appends an audit entry about `info`'s token.
    fn log(
        &mut self,
        at: Timestamp,
        action: AuditAction,
        info: Option<&TokenInfo>,
        actor: &str,
        outcome: &str,
    ) {
        self.audit.push(AuditEntry::new(
            at,
            action,
            info.map(|i| i.id),
            info.map_or("", |i| i.user.as_str()),
            actor,
            outcome,
        ));
    }

    /// Drops the retired secrets of tokens that no longer exist.
    fn prune_retired(&mut self) {
        let by_id = &self.by_id;
        self.retired.retain(|_, (id, _)| by_id.contains_key(id));
    }

    fn remove_where(&mut self, doomed: impl Fn(&TokenInfo) -> bool) -> usize {
        let ids: Vec<TokenId> = self
            .tokens
            .values()
            .filter(|info| doomed(info))
            .map(|info| info.id)
            .collect();
        for &id in &ids {
            self.remove(id);
        }
        ids.len()
    }
}

impl Verifier for MemoryStore {
    fn verify(&self, lookup: Lookup<'_>) -> Verification {
        let mut state = self.state();
        let state = &mut *state;
        let mut digest = lookup.digest();
        let mut previous = false;
        if !state.tokens.contains_key(digest) {
            // A secret retired by a rotation works as the current one
            // until its grace ends.
            let Some(&(id, retires_at)) = state.retired.get(digest) else {
                return Verification::Ready(Err(AuthError::Unknown));
            };
            if let Err(e) = crate::backend::retired_secret(id, retires_at, lookup.now()) {
                let current = state.record(id).cloned();
                if state.replayed.insert(id) {
                    let user = current.as_ref().map_or(String::new(), |i| i.user.clone());
                    state.audit.push(AuditEntry::new(
                        lookup.now(),
                        AuditAction::ReplayedSecret,
                        Some(id),
                        user,
                        "-",
                        "refused",
                    ));
                }
                // Reuse: the token and its descendants are refused now and
                // revoked by the next flush.
                if let Some(current) = current
                    && state.policy.on_reuse == crate::OnReuse::Revoke
                {
                    if let Ok(family) =
                        crate::backend::authority::family(current.id, |p| state.children(p))
                    {
                        state.refused.extend(family.iter().map(|t| t.id));
                    }
                    state.refused.insert(current.id);
                    state.revoke.insert(current.id);
                }
                return Verification::Ready(Err(e));
            }
            match state.by_id.get(&id) {
                Some(current) => {
                    digest = current;
                    previous = true;
                }
                None => return Verification::Ready(Err(AuthError::Unknown)),
            }
        }
        let Some(info) = state.tokens.get_mut(digest) else {
            return Verification::Ready(Err(AuthError::Unknown));
        };
        if state.refused.contains(&info.id) {
            return Verification::Ready(Err(AuthError::Unknown));
        }
        // `record_use` checks before it changes anything: a refused use
        // records nothing.
        let result = info
            .record_use(lookup.user(), lookup.now())
            .map(|expires_at| Identity::new(info, expires_at))
            .map(|i| if previous { i.by_previous_secret() } else { i });
        Verification::Ready(result)
    }

    /// Carries out the revocations reuse detection asked for.
    fn flush(&self) -> Result<usize, StoreError> {
        let mut state = self.state();
        let now = Timestamp::now();
        state.replayed.clear();
        for root in std::mem::take(&mut state.revoke) {
            if let Some(info) = state.record(root).cloned() {
                state.remove_family(
                    info,
                    crate::backend::authority::REUSE_ACTOR,
                    crate::backend::authority::REUSE_OUTCOME,
                    now,
                )?;
            }
        }
        let by_id = std::mem::take(&mut state.by_id);
        state.refused.retain(|id| by_id.contains_key(id));
        state.by_id = by_id;
        Ok(0)
    }
}

crate::backend::admin::admin_from_audited!(MemoryStore);

impl Audited for MemoryStore {
    fn create_by(
        &self,
        new: &NewToken,
        now: Timestamp,
        actor: &str,
    ) -> Result<CreatedToken, StoreError> {
        let mut state = self.state();
        let id = loop {
            let id = TokenId::generate();
            if !state.by_id.contains_key(&id) {
                break id;
            }
        };
        let mut info = new.to_info(id, now)?;
        if let Some(parent) = new.parent {
            let gone = crate::backend::authority::AuthorityViolation::NoParent(parent);
            // A token reuse detection is revoking makes nothing.
            if state.refused.contains(&parent) {
                return Err(gone.into());
            }
            let digest = state.by_id.get(&parent).ok_or(gone.clone())?;
            crate::backend::authority::check_presented(parent, digest, new.parent_secret.as_ref())?;
            let parent = state.record(parent).ok_or(gone)?;
            crate::backend::authority::adopt(parent, &mut info, now)?;
        }
        state.policy.check_lifetime(&info)?;
        let live = crate::model::policy::live_of(state.tokens.values(), &info.user, now);
        state.policy.check_count(&info.user, live)?;
        let secret = loop {
            let s = TokenSecret::generate();
            if !state.tokens.contains_key(&s.digest()) {
                break s;
            }
        };
        state.tokens.insert(secret.digest(), info.clone());
        state.by_id.insert(id, secret.digest());
        state.log(now, AuditAction::Create, Some(&info), actor, "ok");
        Ok(CreatedToken::new(secret, info))
    }

    fn list_tokens(
        &self,
        user: Option<&str>,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        let state = self.state();
        let mut out: Vec<TokenInfo> = state
            .tokens
            .values()
            .filter(|i| user.is_none_or(|u| i.user == u))
            .filter(|i| include_expired || !i.is_expired(now))
            .cloned()
            .collect();
        out.sort_by_key(|i| (i.created_at, i.id));
        Ok(out)
    }

    fn find_token(
        &self,
        digest: &TokenDigest,
        now: Timestamp,
    ) -> Result<Option<TokenInfo>, StoreError> {
        let state = self.state();
        if let Some(info) = state.tokens.get(digest) {
            return Ok(Some(info.clone()));
        }
        Ok(match state.retired.get(digest) {
            Some(&(id, retires_at)) if now < retires_at => state
                .by_id
                .get(&id)
                .and_then(|d| state.tokens.get(d))
                .cloned(),
            _ => None,
        })
    }

    fn get_token(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        let state = self.state();
        state
            .by_id
            .get(&id)
            .and_then(|d| state.tokens.get(d))
            .cloned()
            .ok_or(StoreError::NotFound(id))
    }

    fn rotate_by(
        &self,
        id: TokenId,
        rotation: &Rotation,
        now: Timestamp,
        actor: &str,
    ) -> Result<CreatedToken, StoreError> {
        let mut state = self.state();
        let old = *state.by_id.get(&id).ok_or(StoreError::NotFound(id))?;
        if state.refused.contains(&id) {
            // Reuse detection revokes it at the next flush.
            return Err(StoreError::NotFound(id));
        }
        crate::backend::authority::check_presented(id, &old, rotation.presented.as_ref())?;
        let before = state
            .tokens
            .get(&old)
            .ok_or_else(|| StoreError::Corrupt(format!("token {id} has no record")))?
            .clone();
        let parent = match before.parent {
            None => None,
            Some(p) => Some(
                state
                    .record(p)
                    .cloned()
                    .ok_or(crate::backend::authority::AuthorityViolation::NoParent(p))?,
            ),
        };
        let info = crate::backend::authority::rotate(
            &before,
            rotation,
            parent.as_ref(),
            &state.policy,
            now,
        )?;
        let retires_at = info.previous_until.unwrap_or(now);
        let clamped = crate::backend::authority::clamp_family(&info, |p| state.children(p))?;
        let secret = loop {
            let s = TokenSecret::generate();
            if !state.tokens.contains_key(&s.digest()) {
                break s;
            }
        };
        state.tokens.remove(&old);
        state.tokens.insert(secret.digest(), info.clone());
        state.by_id.insert(id, secret.digest());
        // At most one old secret works: earlier graces end now.
        for (rid, until) in state.retired.values_mut() {
            if *rid == id {
                *until = (*until).min(now);
            }
        }
        state.retired.insert(old, (id, retires_at));
        state.log(now, AuditAction::Rotate, Some(&info), actor, "ok");
        for c in clamped {
            state
                .audit
                .push(crate::backend::authority::clamp_entry(&c, actor, now));
            state.replace(c);
        }
        Ok(CreatedToken::new(secret, info))
    }

    fn revoke_by(&self, id: TokenId, actor: &str) -> Result<TokenInfo, StoreError> {
        let mut state = self.state();
        let info = state.record(id).cloned().ok_or(StoreError::NotFound(id))?;
        state.remove_family(info.clone(), actor, "ok", Timestamp::now())?;
        Ok(info)
    }

    fn descendants_of(&self, id: TokenId) -> Result<Vec<TokenInfo>, StoreError> {
        let state = self.state();
        crate::backend::authority::family(id, |p| state.children(p))
    }

    fn revoke_user_by(&self, user: &str, actor: &str) -> Result<usize, StoreError> {
        let mut state = self.state();
        let mine: Vec<TokenInfo> = state
            .tokens
            .values()
            .filter(|i| i.user == user)
            .cloned()
            .collect();
        let mut n = 0;
        for info in mine {
            // A descendant of one of them may be gone with it already.
            if state.record(info.id).is_some() {
                let descendants =
                    crate::backend::authority::family(info.id, |p| state.children(p))?;
                state.remove(info.id);
                n += 1;
                for d in &descendants {
                    state.remove(d.id);
                }
                if !descendants.is_empty() {
                    let entries = crate::backend::authority::revocation_entries(
                        &info,
                        &descendants,
                        actor,
                        "ok",
                        Timestamp::now(),
                    );
                    // The user's own removal is the entry below.
                    state.audit.extend(entries.into_iter().skip(1));
                    n += descendants.len();
                }
            }
        }
        state.audit.push(AuditEntry::new(
            Timestamp::now(),
            AuditAction::RevokeUser,
            None,
            user,
            actor,
            AuditEntry::count_outcome(n),
        ));
        Ok(n)
    }

    fn prune_by(&self, now: Timestamp, actor: &str) -> Result<usize, StoreError> {
        let mut state = self.state();
        let n = state.remove_where(|i| i.is_expired(now));
        state.prune_retired();
        let horizon = Timestamp::from_unix_secs(
            now.as_unix_secs()
                .saturating_sub(DEFAULT_AUDIT_RETENTION.as_secs()),
        )
        .unwrap_or(Timestamp::UNIX_EPOCH);
        state.audit.retain(|e| e.at >= horizon);
        state.audit.push(AuditEntry::new(
            now,
            AuditAction::Prune,
            None,
            "",
            actor,
            AuditEntry::count_outcome(n),
        ));
        Ok(n)
    }

    fn get_policy(&self) -> Result<Policy, StoreError> {
        Ok(self.state().policy)
    }

    fn set_policy_by(&self, policy: Policy, actor: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        state.policy = policy;
        state.audit.push(AuditEntry::new(
            Timestamp::now(),
            AuditAction::SetPolicy,
            None,
            "",
            actor,
            policy.summary(),
        ));
        Ok(())
    }

    fn read_audit(
        &self,
        since: Timestamp,
        user: Option<&str>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let state = self.state();
        Ok(state
            .audit
            .iter()
            .filter(|e| e.matches(since, user))
            .cloned()
            .collect())
    }
}
