//! A complete backend in memory.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::backend::admin::{Actor, Admin};
use crate::backend::block_on::run_ready;
use crate::backend::engine;
use crate::backend::{Lookup, Verification, Verifier};
use crate::error::{AuthError, StoreError};
use crate::model::audit::{AuditEntry, DEFAULT_AUDIT_RETENTION};
use crate::model::permission::{
    Catalog, Permission, PermissionDef, PermissionRemoval, SharedCatalog,
};
use crate::model::policy::Policy;
use crate::model::prefix::{Prefix, Prefixes};
use crate::model::record::{CreatedToken, Identity, NewToken, Origin, Rotation, TokenInfo};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};

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
    state: Arc<Mutex<State>>,
    /// The store's prefixes as the request path reads them; the state
    /// holds them as stored.
    prefixes: Arc<Prefixes>,
    /// The catalog as lookups resolve with it; the state holds it as
    /// stored.
    catalog: Arc<SharedCatalog>,
    /// Who the audit log records as making this handle's changes
    /// ([`Admin::acting_as`] makes a handle with another).
    actor: Actor,
}

#[derive(Default)]
struct State {
    tokens: HashMap<TokenDigest, TokenInfo>,
    by_id: BTreeMap<TokenId, TokenDigest>,
    /// Secrets retired by rotations: token id and when they stop working.
    retired: HashMap<TokenDigest, (TokenId, Timestamp)>,
    policy: Policy,
    /// The current token prefix (the store's [`Prefixes`] hold the rest).
    prefix: Prefix,
    /// The catalog of named permissions, as stored.
    permissions: BTreeMap<Permission, PermissionDef>,
    /// The audit log, each entry with its place.
    audit: Vec<AuditEntry>,
    /// The place of the last entry appended (the log may have been pruned
    /// since).
    audit_seq: u64,
    /// Each webhook's delivery state, as stored.
    deliveries: BTreeMap<String, Vec<u8>>,
    /// The keys of the expiry notices written, with their tokens.
    notices: HashMap<String, TokenId>,
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

    /// An empty store whose tokens carry `prefix` (see
    /// [`StoreBuilder::prefix`](crate::StoreBuilder::prefix)).
    pub fn with_prefix(prefix: Prefix) -> MemoryStore {
        let store = MemoryStore {
            prefixes: Arc::new(Prefixes::new(prefix)),
            ..MemoryStore::default()
        };
        store.state().prefix = prefix;
        store
    }

    /// How many tokens it holds, expired ones included.
    pub fn len(&self) -> usize {
        self.state().tokens.len()
    }

    /// Whether it holds no token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same store, its changes audited as made by `actor`.
    fn acting(&self, actor: &str) -> MemoryStore {
        MemoryStore {
            state: self.state.clone(),
            prefixes: self.prefixes.clone(),
            catalog: self.catalog.clone(),
            actor: Actor::from(actor),
        }
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
    /// Appends `entry` to the audit log, at the next place.
    fn append(&mut self, entry: AuditEntry) {
        self.audit_seq += 1;
        self.audit.push(entry.at_seq(self.audit_seq));
    }

    fn remove(&mut self, id: TokenId) -> Option<TokenInfo> {
        let digest = self.by_id.remove(&id)?;
        self.tokens.remove(&digest)
    }

    fn record(&self, id: TokenId) -> Option<&TokenInfo> {
        self.by_id.get(&id).and_then(|d| self.tokens.get(d))
    }

    /// The descendants of `id`: no index by parent here, so one scan, then
    /// a walk of it.
    fn descendants(&self, id: TokenId) -> Vec<TokenInfo> {
        let all: Vec<TokenInfo> = self.tokens.values().cloned().collect();
        crate::backend::authority::descendants_in(&all, id)
    }

    /// Drops the retired secrets of tokens that no longer exist.
    fn prune_retired(&mut self) {
        let by_id = &self.by_id;
        self.retired.retain(|_, (id, _)| by_id.contains_key(id));
        // A token gone gets no more notices.
        self.notices.retain(|_, id| by_id.contains_key(id));
    }

    /// Stores `new` as webhook `sink`'s state if it is `expected`, with
    /// `audit` appended then: whether it was.
    fn swap_delivery(
        &mut self,
        sink: &str,
        expected: Option<&crate::Delivery>,
        new: &crate::Delivery,
        audit: Option<&AuditEntry>,
    ) -> Result<bool, StoreError> {
        crate::model::delivery::check_sink(sink).map_err(StoreError::BadWebhook)?;
        let stored = self.deliveries.get(sink).map(Vec::as_slice);
        match crate::model::delivery::swap(stored, expected, new).map_err(StoreError::Corrupt)? {
            Some(bytes) => {
                self.deliveries.insert(sink.to_owned(), bytes);
                if let Some(entry) = audit {
                    self.append(entry.clone());
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Appends each of `notices` that still holds of its token and whose
    /// key was not written before: how many were.
    fn record_notices(&mut self, notices: &[crate::Notice]) -> usize {
        let mut n = 0;
        for notice in notices {
            let entry = notice.entry();
            let id = entry.token_id.unwrap_or(TokenId::from_u64(0));
            if !notice.holds_for(self.record(id)) {
                continue;
            }
            if self.notices.insert(notice.key(), id).is_none() {
                self.append(entry.clone());
                n += 1;
            }
        }
        n
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

/// The state as the lookup rule's storage.
impl engine::lookup::Reads for MemoryStore {
    fn catalog(&self) -> Arc<Catalog> {
        self.catalog.get()
    }

    async fn read(&self, digest: &TokenDigest) -> Result<engine::lookup::Found, StoreError> {
        use engine::lookup::Found;
        let state = self.state();
        if let Some(info) = state.tokens.get(digest) {
            return Ok(Found::Token(info.clone()));
        }
        let Some(&(id, retires_at)) = state.retired.get(digest) else {
            return Ok(Found::Nothing);
        };
        let current = state.by_id.get(&id).copied();
        Ok(Found::Retired {
            id,
            retires_at,
            current,
            user: Some(state.record(id).map_or(String::new(), |i| i.user.clone())),
        })
    }

    async fn owner(&self, current: &TokenDigest) -> String {
        let state = self.state();
        state
            .tokens
            .get(current)
            .map_or(String::new(), |i| i.user.clone())
    }

    async fn reuse_family(&self, id: TokenId) -> Result<Option<Vec<TokenDigest>>, StoreError> {
        let state = self.state();
        if state.policy.on_reuse != crate::OnReuse::Revoke {
            return Ok(None);
        }
        let family = state.descendants(id);
        Ok(Some(
            family
                .iter()
                .filter_map(|t| state.by_id.get(&t.id).copied())
                .collect(),
        ))
    }
}

/// The state as where the lookup rule keeps uses and refusals: nothing is
/// cached, so every lookup reads, and a use is written into the record at
/// once.
impl engine::lookup::Uses for MemoryStore {
    type Miss = ();

    fn hit(
        &self,
        _digest: &TokenDigest,
        _user: Option<&str>,
        _origin: Origin<'_>,
        _now: Timestamp,
    ) -> Result<Result<Identity, AuthError>, ()> {
        Err(())
    }

    fn miss(
        &self,
        (): (),
        digest: TokenDigest,
        _read: TokenInfo,
        user: Option<&str>,
        origin: Origin<'_>,
        now: Timestamp,
        last_try: bool,
    ) -> Option<Result<Identity, AuthError>> {
        let mut state = self.state();
        let state = &mut *state;
        // Under the lock again. Gone since the read (revoked, or rotated:
        // its secret may now be one in its grace): read again, as the
        // cached backends do when a write raced the read; unknown only on
        // the last try.
        let Some(info) = state.tokens.get_mut(&digest) else {
            return last_try.then_some(Err(AuthError::Unknown));
        };
        if state.refused.contains(&info.id) {
            return Some(Err(AuthError::Unknown));
        }
        // `record_use` checks before it changes anything: a refused use
        // records nothing. What the record holds, with the catalog as it is
        // under this lock (changed under it too): the record may have
        // changed since the read.
        Some(info.record_use_with(user, origin, now).map(|expires_at| {
            let identity = Identity::new(info, expires_at);
            if info.scopes.named().is_empty() {
                return identity;
            }
            identity.holding(self.catalog.get().resolve(&info.scopes))
        }))
    }

    fn unknown(&self, _digest: TokenDigest) {}

    fn replayed(&self, _digest: TokenDigest, id: TokenId, user: &str, now: Timestamp) -> AuthError {
        crate::backend::warn_replay(id);
        let mut state = self.state();
        // One entry per token per flush, however often it is replayed.
        if state.replayed.insert(id) {
            state.append(AuditEntry::replayed(id, user, now));
        }
        AuthError::Unknown
    }

    fn reused(&self, root: TokenId, digests: &[TokenDigest]) {
        let mut state = self.state();
        let state = &mut *state;
        let ids: Vec<TokenId> = digests
            .iter()
            .filter_map(|d| state.tokens.get(d).map(|i| i.id))
            .collect();
        state.refused.extend(ids);
        state.refused.insert(root);
        state.revoke.insert(root);
    }

    fn overlay(&self, _digest: &TokenDigest, _info: &mut TokenInfo) {}
}

impl Verifier for MemoryStore {
    fn verify(&self, lookup: Lookup<'_>) -> Verification {
        // No cache: every lookup reads the state, under the engine's rule.
        Verification::Ready(run_ready(engine::lookup::lookup(
            self,
            self,
            (),
            *lookup.digest(),
            lookup.user(),
            lookup.origin(),
            lookup.now(),
        )))
    }

    fn spend(&self, identity: Identity, now: Timestamp) -> Verification {
        let (id, client) = (identity.token_id(), identity.client());
        let said = run_ready(engine::spend(&mut *self.state(), id, client, now));
        Verification::Ready(crate::backend::spent(identity, said))
    }

    fn prefixes(&self) -> &Prefixes {
        &self.prefixes
    }

    /// Carries out the revocations reuse detection asked for.
    fn flush(&self) -> Result<usize, StoreError> {
        let mut state = self.state();
        let now = Timestamp::now();
        state.replayed.clear();
        let roots: Vec<TokenId> = std::mem::take(&mut state.revoke).into_iter().collect();
        run_ready(engine::revoke_reused(&mut *state, &roots, now))?;
        let by_id = std::mem::take(&mut state.by_id);
        state.refused.retain(|id| by_id.contains_key(id));
        state.by_id = by_id;
        Ok(0)
    }
}

/// The store's state as the engine's transaction: the lock is held for the
/// whole operation, so nothing needs locking row by row.
impl engine::Tx for State {
    async fn token(
        &mut self,
        id: TokenId,
        _lock: engine::Lock,
    ) -> Result<Option<(TokenDigest, TokenInfo)>, StoreError> {
        Ok(self
            .by_id
            .get(&id)
            .and_then(|d| self.tokens.get(d).map(|i| (*d, i.clone()))))
    }

    async fn family(&mut self, id: TokenId) -> Result<Vec<TokenInfo>, StoreError> {
        Ok(self.descendants(id))
    }

    async fn tokens_of(&mut self, user: &str) -> Result<Vec<TokenId>, StoreError> {
        Ok(self
            .tokens
            .values()
            .filter(|i| i.user == user)
            .map(|i| i.id)
            .collect())
    }

    async fn lock_user(&mut self, _user: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn live_count(&mut self, user: &str, now: Timestamp) -> Result<usize, StoreError> {
        Ok(crate::model::policy::live_of(
            self.tokens.values(),
            user,
            now,
        ))
    }

    async fn policy(&mut self) -> Result<Policy, StoreError> {
        Ok(self.policy)
    }

    fn prefix(&self) -> Prefix {
        self.prefix
    }

    fn is_refused(&self, digest: &TokenDigest) -> bool {
        self.tokens
            .get(digest)
            .is_some_and(|i| self.refused.contains(&i.id))
    }

    async fn catalog(&mut self, _lock: engine::Lock) -> Result<Catalog, StoreError> {
        Catalog::of(self.permissions.values().cloned())
            .map_err(|e| StoreError::Corrupt(format!("the catalog: {e}")))
    }

    async fn put_permission(&mut self, def: &PermissionDef) -> Result<(), StoreError> {
        self.permissions.insert(def.name.clone(), def.clone());
        Ok(())
    }

    async fn delete_permission(&mut self, name: &Permission) -> Result<(), StoreError> {
        self.permissions.remove(name);
        Ok(())
    }

    async fn carrying(&mut self, name: &Permission) -> Result<Vec<TokenInfo>, StoreError> {
        Ok(self
            .tokens
            .values()
            .filter(|i| i.scopes.named().contains(name))
            .cloned()
            .collect())
    }

    async fn insert(&mut self, digest: &TokenDigest, info: &TokenInfo) -> Result<bool, StoreError> {
        if self.by_id.contains_key(&info.id) || self.tokens.contains_key(digest) {
            return Ok(false);
        }
        self.tokens.insert(*digest, info.clone());
        self.by_id.insert(info.id, *digest);
        Ok(true)
    }

    async fn replace_secret(
        &mut self,
        old: &TokenDigest,
        digest: &TokenDigest,
        info: &TokenInfo,
    ) -> Result<bool, StoreError> {
        if self.tokens.contains_key(digest) {
            return Ok(false);
        }
        self.tokens.remove(old);
        self.tokens.insert(*digest, info.clone());
        self.by_id.insert(info.id, *digest);
        Ok(true)
    }

    async fn rewrite(&mut self, info: &TokenInfo) -> Result<(), StoreError> {
        if let Some(digest) = self.by_id.get(&info.id) {
            self.tokens.insert(*digest, info.clone());
        }
        Ok(())
    }

    async fn retire(
        &mut self,
        old: &TokenDigest,
        id: TokenId,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        for (rid, end) in self.retired.values_mut() {
            if *rid == id {
                *end = (*end).min(now);
            }
        }
        self.retired.insert(*old, (id, until));
        Ok(())
    }

    async fn remove(&mut self, id: TokenId) -> Result<(), StoreError> {
        State::remove(self, id);
        self.refused.remove(&id);
        Ok(())
    }

    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.append(entry.clone());
        Ok(())
    }
}

impl Admin for MemoryStore {
    fn create(&self, new: &NewToken, now: Timestamp) -> Result<CreatedToken, StoreError> {
        let actor: &str = &self.actor;
        run_ready(engine::create(&mut *self.state(), new, now, actor))
    }

    fn list(
        &self,
        user: Option<&str>,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        let state = self.state();
        let found = state
            .tokens
            .values()
            .filter(|i| user.is_none_or(|u| i.user == u))
            .cloned()
            .collect();
        Ok(engine::listing(found, include_expired, now))
    }

    fn find(&self, digest: &TokenDigest, now: Timestamp) -> Result<Option<TokenInfo>, StoreError> {
        run_ready(engine::lookup::find(self, self, digest, now))
    }

    fn get(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        let state = self.state();
        state
            .by_id
            .get(&id)
            .and_then(|d| state.tokens.get(d))
            .cloned()
            .ok_or(StoreError::NotFound(id))
    }

    fn rotate(
        &self,
        id: TokenId,
        rotation: &Rotation,
        now: Timestamp,
    ) -> Result<CreatedToken, StoreError> {
        let actor: &str = &self.actor;
        run_ready(engine::rotate(&mut *self.state(), id, rotation, now, actor))
    }

    fn revoke(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        let actor: &str = &self.actor;
        let gone = run_ready(engine::revoke(
            &mut *self.state(),
            id,
            actor,
            "ok",
            Timestamp::now(),
        ))?;
        // The root comes first.
        gone.into_iter().next().ok_or(StoreError::NotFound(id))
    }

    fn descendants(&self, id: TokenId) -> Result<Vec<TokenInfo>, StoreError> {
        Ok(self.state().descendants(id))
    }

    fn disable(&self, id: TokenId) -> Result<usize, StoreError> {
        let actor: &str = &self.actor;
        run_ready(engine::suspend(
            &mut *self.state(),
            id,
            true,
            actor,
            Timestamp::now(),
        ))
    }

    fn enable(&self, id: TokenId) -> Result<usize, StoreError> {
        let actor: &str = &self.actor;
        run_ready(engine::suspend(
            &mut *self.state(),
            id,
            false,
            actor,
            Timestamp::now(),
        ))
    }

    fn revoke_user(&self, user: &str) -> Result<usize, StoreError> {
        let actor: &str = &self.actor;
        let gone = run_ready(engine::revoke_user(
            &mut *self.state(),
            user,
            actor,
            Timestamp::now(),
        ))?;
        Ok(gone.len())
    }

    fn prune(&self, now: Timestamp) -> Result<usize, StoreError> {
        let actor: &str = &self.actor;
        let mut state = self.state();
        let mut owed: Vec<crate::Notice> = state
            .tokens
            .values()
            .filter(|i| i.is_expired(now))
            .filter_map(|i| crate::Notice::owed_at_prune(i, now))
            .collect();
        // In a stable order, as the other backends write them.
        owed.sort_by_key(|n| n.entry().token_id);
        state.record_notices(&owed);
        let n = state.remove_where(|i| i.is_expired(now));
        state.prune_retired();
        let horizon = Timestamp::from_unix_secs(
            now.as_unix_secs()
                .saturating_sub(DEFAULT_AUDIT_RETENTION.as_secs()),
        )
        .unwrap_or(Timestamp::UNIX_EPOCH);
        state.audit.retain(|e| e.at >= horizon);
        state.append(AuditEntry::pruned(n, actor, now));
        Ok(n)
    }

    fn policy(&self) -> Result<Policy, StoreError> {
        Ok(self.state().policy)
    }

    fn set_policy(&self, policy: Policy) -> Result<(), StoreError> {
        let actor: &str = &self.actor;
        let mut state = self.state();
        state.policy = policy;
        state.append(AuditEntry::policy_set(&policy, actor, Timestamp::now()));
        Ok(())
    }

    fn token_prefixes(&self) -> Result<Vec<Prefix>, StoreError> {
        Ok(self.prefixes.all())
    }

    fn set_prefix(&self, prefix: Prefix) -> Result<(), StoreError> {
        let actor: &str = &self.actor;
        // Under the state's lock, so that two changes are one after the
        // other.
        let mut state = self.state();
        if !crate::model::prefix::change(&self.prefixes.all(), prefix)? {
            return Ok(());
        }
        self.prefixes.remember(prefix)?;
        state.prefix = prefix;
        state.append(AuditEntry::prefix_set(prefix, actor, Timestamp::now()));
        Ok(())
    }

    fn permissions(&self) -> Result<Catalog, StoreError> {
        Ok((*self.catalog.get()).clone())
    }

    fn define_permissions(&self, defs: &[PermissionDef]) -> Result<bool, StoreError> {
        let actor: &str = &self.actor;
        let mut state = self.state();
        let after = run_ready(engine::catalog::define(
            &mut *state,
            defs,
            actor,
            Timestamp::now(),
        ))?;
        // Under the state's lock: lookups resolve with what is stored.
        Ok(after.map(|c| self.catalog.set(c)).is_some())
    }

    fn remove_permission(
        &self,
        name: &Permission,
        force: bool,
    ) -> Result<PermissionRemoval, StoreError> {
        let actor: &str = &self.actor;
        let mut state = self.state();
        let removed = run_ready(engine::catalog::remove(
            &mut *state,
            name,
            force,
            actor,
            Timestamp::now(),
        ))?;
        self.catalog.set(removed.catalog);
        Ok(PermissionRemoval::new(
            removed.narrowed.len(),
            removed.revoked.len(),
        ))
    }

    fn audit(&self, since: Timestamp, user: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        let state = self.state();
        Ok(state
            .audit
            .iter()
            .filter(|e| e.matches(since, user))
            .cloned()
            .collect())
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        Ok(self.state().audit_seq)
    }

    fn delivery(&self, sink: &str) -> Result<Option<crate::Delivery>, StoreError> {
        let state = self.state();
        state
            .deliveries
            .get(sink)
            .map(|bytes| crate::Delivery::decode(bytes).map_err(StoreError::Corrupt))
            .transpose()
    }

    fn deliveries(&self) -> Result<Vec<(String, crate::Delivery)>, StoreError> {
        let state = self.state();
        state
            .deliveries
            .iter()
            .map(|(name, bytes)| {
                let d = crate::Delivery::decode(bytes).map_err(StoreError::Corrupt)?;
                Ok((name.clone(), d))
            })
            .collect()
    }

    fn swap_delivery(
        &self,
        sink: &str,
        expected: Option<&crate::Delivery>,
        new: &crate::Delivery,
    ) -> Result<bool, StoreError> {
        self.state().swap_delivery(sink, expected, new, None)
    }

    fn resend_event(&self, sink: &str, seq: u64) -> Result<bool, StoreError> {
        crate::backend::admin::resend_with(
            || self.delivery(sink),
            |now, next, entry| {
                self.state()
                    .swap_delivery(sink, Some(now), next, Some(entry))
            },
            sink,
            seq,
            &self.actor,
        )
    }

    fn record_notices(&self, notices: &[crate::Notice]) -> Result<usize, StoreError> {
        Ok(self.state().record_notices(notices))
    }

    fn acting_as<'a>(&'a self, actor: &str) -> Box<dyn Admin + 'a> {
        Box::new(self.acting(actor))
    }
}
