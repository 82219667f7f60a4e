//! The admin operations, on the shared state so that the admin socket's
//! thread serves them too: the engine's rules in a [`RedbTx`], and the
//! reads and listings that need no rule.

use redb::{ReadableDatabase, ReadableTable, TableError, WriteTransaction};

use super::tx::RedbTx;
use super::{
    AUDIT, BY_ID, BY_USER, DELIVERIES, Inner, META, NOTICES, PREFIXES, RETIRED, RETIRED_BY_ID,
    Store, TOKENS, audit_in, codec, corrupt, storage,
};
use crate::backend::admin::Admin;
use crate::backend::block_on::run_ready;
use crate::backend::engine;
use crate::error::{BackendError, StoreError};
use crate::model::audit::AuditEntry;
use crate::model::permission::{Catalog, Permission, PermissionDef, PermissionRemoval};
use crate::model::policy::Policy;
use crate::model::prefix::Prefix;
use crate::model::record::{CreatedToken, NewToken, Rotation, TokenInfo};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};
use crate::testing::failpoints::Point;

impl Inner {
    /// After a committed change of the catalog: lookups resolve with
    /// `catalog` from now on, and no cached record keeps what the old one
    /// made of its permissions (its unwritten use is kept).
    fn published(&self, catalog: Catalog) {
        self.catalog.set(catalog);
        self.cache.forget(None);
    }

    /// The policy as it is committed now.
    pub(super) fn policy(&self) -> Result<Policy, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let meta = txn.open_table(META).map_err(storage)?;
        Inner::read_policy(&meta)
    }

    /// Creates tokens in one durable transaction: all or none.
    pub(super) fn create_many(
        &self,
        news: &[NewToken],
        now: Timestamp,
        actor: &str,
    ) -> Result<Vec<CreatedToken>, StoreError> {
        // Validate everything before writing anything.
        for n in news {
            n.to_info(TokenId::from_u64(0), now)?;
        }
        self.delete(|txn, changes| {
            let mut tx = RedbTx::new(self, txn, changes);
            // Counted in this transaction: tokens created earlier in the
            // batch count too.
            news.iter()
                .map(|new| run_ready(engine::create(&mut tx, new, now, actor)))
                .collect()
        })
    }

    /// Drops audit entries older than the retention, inside `txn`.
    pub(super) fn prune_audit(
        &self,
        txn: &WriteTransaction,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let horizon = now
            .as_unix_secs()
            .saturating_sub(self.audit_retention.as_secs());
        let mut audit = txn.open_table(AUDIT).map_err(storage)?;
        let mut old = Vec::new();
        // The last entry stays whatever its age: the next one's place is
        // after it, so that places never come back (a webhook's cursor
        // would skip them).
        let last = audit.last().map_err(storage)?.map(|(k, _)| k.value());
        for entry in audit.iter().map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            if Some(k.value()) == last {
                continue;
            }
            // Not assumed in time order: `now` is the caller's clock.
            let e = codec::decode_audit(v.value()).map_err(corrupt)?;
            if e.at.as_unix_secs() < horizon {
                old.push(k.value());
            }
        }
        for k in old {
            audit.remove(k).map_err(storage)?;
        }
        Ok(())
    }

    /// Appends each of `notices` that still holds of its token and whose
    /// key was not written before, inside `txn`: how many were.
    pub(super) fn record_notices_in(
        &self,
        txn: &WriteTransaction,
        notices: &[crate::Notice],
    ) -> Result<usize, StoreError> {
        let mut written = txn.open_table(NOTICES).map_err(storage)?;
        let by_id = txn.open_table(BY_ID).map_err(storage)?;
        let tokens = txn.open_table(TOKENS).map_err(storage)?;
        let mut n = 0;
        for notice in notices {
            let key = notice.key();
            if written.get(key.as_str()).map_err(storage)?.is_some() {
                continue;
            }
            let id = notice.entry().token_id.map_or(0, |id| id.as_u64());
            // The token as this transaction sees it, with its buffered
            // uses (they keep a sliding token alive).
            let digest = by_id.get(id).map_err(storage)?.map(|d| d.value());
            let record = match digest {
                Some(d) => tokens
                    .get(&d)
                    .map_err(storage)?
                    .map(|v| self.record(d, v.value()))
                    .transpose()?,
                None => None,
            };
            if !notice.holds_for(record.as_ref()) {
                continue;
            }
            written.insert(key.as_str(), id).map_err(storage)?;
            audit_in(txn, notice.entry())?;
            n += 1;
        }
        Ok(n)
    }

    /// Drops the retired secrets and the expiry notices of tokens that no
    /// longer exist: the secrets can only ever be refused now, like any
    /// unknown token, and the tokens get no more notices.
    pub(super) fn prune_retired(txn: &WriteTransaction) -> Result<(), StoreError> {
        let by_id = txn.open_table(BY_ID).map_err(storage)?;
        let mut notices = txn.open_table(NOTICES).map_err(storage)?;
        let mut stale = Vec::new();
        for entry in notices.iter().map_err(storage)? {
            let (key, id) = entry.map_err(storage)?;
            if by_id.get(id.value()).map_err(storage)?.is_none() {
                stale.push(key.value().to_owned());
            }
        }
        for key in stale {
            notices.remove(key.as_str()).map_err(storage)?;
        }
        let mut retired = txn.open_table(RETIRED).map_err(storage)?;
        let mut gone = Vec::new();
        for entry in retired.iter().map_err(storage)? {
            let (digest, value) = entry.map_err(storage)?;
            if by_id.get(value.value().0).map_err(storage)?.is_none() {
                gone.push(digest.value());
            }
        }
        let mut retired_by_id = txn.open_multimap_table(RETIRED_BY_ID).map_err(storage)?;
        for digest in gone {
            if let Some(v) = retired.remove(digest).map_err(storage)? {
                retired_by_id.remove(v.value().0, digest).map_err(storage)?;
            }
        }
        Ok(())
    }
}

/// The admin operations, on the shared state so that the admin socket's
/// thread can serve them too.
impl Store {
    /// [`Admin::disable`] or [`Admin::enable`]: the rewritten records leave
    /// the cache with the commit, so the next request reads the new state.
    fn suspend(&self, id: TokenId, disable: bool) -> Result<usize, StoreError> {
        let state: &Inner = &self.inner;
        let actor: &str = &self.actor;
        state.delete(|txn, changes| {
            let mut tx = RedbTx::new(state, txn, changes);
            run_ready(engine::suspend(
                &mut tx,
                id,
                disable,
                actor,
                Timestamp::now(),
            ))
        })
    }
}

impl Store {
    /// Stores `new` as webhook `sink`'s state if it is `expected`, with
    /// `audit` appended in the same transaction: whether it was.
    fn swap_delivery_audited(
        &self,
        sink: &str,
        expected: Option<&crate::Delivery>,
        new: &crate::Delivery,
        audit: Option<&AuditEntry>,
    ) -> Result<bool, StoreError> {
        crate::model::delivery::check_sink(sink).map_err(StoreError::BadWebhook)?;
        self.inner.write(|txn| {
            let mut table = txn.open_table(DELIVERIES).map_err(storage)?;
            let stored = table
                .get(sink)
                .map_err(storage)?
                .map(|v| v.value().to_vec());
            let Some(bytes) =
                crate::model::delivery::swap(stored.as_deref(), expected, new).map_err(corrupt)?
            else {
                return Ok(false);
            };
            table.insert(sink, bytes.as_slice()).map_err(storage)?;
            drop(table);
            if let Some(entry) = audit {
                audit_in(txn, entry)?;
            }
            Ok(true)
        })
    }
}

impl Admin for Store {
    fn create(&self, new: &NewToken, now: Timestamp) -> Result<CreatedToken, StoreError> {
        let state: &Inner = &self.inner;
        let actor: &str = &self.actor;
        let mut created = state.create_many(std::slice::from_ref(new), now, actor)?;
        created
            .pop()
            .ok_or_else(|| corrupt("no token created".into()))
    }

    fn list(
        &self,
        user: Option<&str>,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        let state: &Inner = &self.inner;
        let txn = state.db.begin_read().map_err(storage)?;
        let tokens = txn.open_table(TOKENS).map_err(storage)?;
        let mut out = Vec::new();
        match user {
            Some(user) => {
                let by_user = txn.open_multimap_table(BY_USER).map_err(storage)?;
                let by_id = txn.open_table(BY_ID).map_err(storage)?;
                for id in by_user.get(user).map_err(storage)? {
                    let id = id.map_err(storage)?.value();
                    let digest = by_id
                        .get(id)
                        .map_err(storage)?
                        .ok_or_else(|| {
                            corrupt(format!("user index names unknown token {id:016x}"))
                        })?
                        .value();
                    let record = tokens
                        .get(digest)
                        .map_err(storage)?
                        .ok_or_else(|| corrupt(format!("token {id:016x} has no record")))?;
                    out.push(state.record(digest, record.value())?);
                }
            }
            None => {
                for entry in tokens.iter().map_err(storage)? {
                    let (k, v) = entry.map_err(storage)?;
                    out.push(state.record(k.value(), v.value())?);
                }
            }
        }
        Ok(engine::listing(out, include_expired, now))
    }

    fn find(&self, digest: &TokenDigest, now: Timestamp) -> Result<Option<TokenInfo>, StoreError> {
        let state: &Inner = &self.inner;
        run_ready(engine::lookup::find(state, &state.cache, digest, now))
    }

    fn get(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        let state: &Inner = &self.inner;
        let txn = state.db.begin_read().map_err(storage)?;
        let by_id = txn.open_table(BY_ID).map_err(storage)?;
        let digest = by_id
            .get(id.as_u64())
            .map_err(storage)?
            .ok_or(StoreError::NotFound(id))?
            .value();
        let tokens = txn.open_table(TOKENS).map_err(storage)?;
        let record = tokens
            .get(digest)
            .map_err(storage)?
            .ok_or_else(|| corrupt(format!("token {id} has no record")))?;
        state.record(digest, record.value())
    }

    fn rotate(
        &self,
        id: TokenId,
        rotation: &Rotation,
        now: Timestamp,
    ) -> Result<CreatedToken, StoreError> {
        let state: &Inner = &self.inner;
        let actor: &str = &self.actor;
        // The old digest is forgotten in memory like a revoked one; its
        // buffered use is merged into the record first (`record_in`), so
        // no use is lost.
        state.delete(|txn, changes| {
            let mut tx = RedbTx::new(state, txn, changes);
            run_ready(engine::rotate(&mut tx, id, rotation, now, actor))
        })
    }

    fn revoke(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        let state: &Inner = &self.inner;
        let actor: &str = &self.actor;
        state.delete(|txn, changes| {
            let mut tx = RedbTx::new(state, txn, changes);
            let gone = run_ready(engine::revoke(&mut tx, id, actor, "ok", Timestamp::now()))?;
            // The root comes first.
            gone.into_iter().next().ok_or(StoreError::NotFound(id))
        })
    }

    fn descendants(&self, id: TokenId) -> Result<Vec<TokenInfo>, StoreError> {
        let state: &Inner = &self.inner;
        Ok(state.family_read(id)?.into_iter().map(|(_, i)| i).collect())
    }

    fn revoke_user(&self, user: &str) -> Result<usize, StoreError> {
        let state: &Inner = &self.inner;
        let actor: &str = &self.actor;
        state.delete(|txn, changes| {
            let mut tx = RedbTx::new(state, txn, changes);
            run_ready(engine::revoke_user(&mut tx, user, actor, Timestamp::now())).map(|g| g.len())
        })
    }

    fn prune(&self, now: Timestamp) -> Result<usize, StoreError> {
        let state: &Inner = &self.inner;
        let actor: &str = &self.actor;
        // Spared when dropped, after the deletion was forgotten: whatever
        // it did not delete lives on.
        let mut condemned = None;
        state.delete(|txn, changes| {
            let mut owed: Vec<(TokenDigest, crate::Notice)> = Vec::new();
            let expired: Vec<(TokenDigest, TokenId)> = {
                let tokens = txn.open_table(TOKENS).map_err(storage)?;
                let mut expired = Vec::new();
                for entry in tokens.iter().map_err(storage)? {
                    let (k, v) = entry.map_err(storage)?;
                    // Merged with buffered uses: a sliding token refreshed
                    // in memory is alive even if the file says otherwise.
                    let info = state.record(k.value(), v.value())?;
                    if info.is_expired(now) {
                        let digest = TokenDigest::from_bytes(k.value());
                        if let Some(notice) = crate::Notice::owed_at_prune(&info, now) {
                            owed.push((digest, notice));
                        }
                        expired.push((digest, info.id));
                    }
                }
                expired
            };
            // A last look, ordered with the uses racing it.
            let digests: Vec<TokenDigest> = expired.iter().map(|(d, _)| *d).collect();
            let doomed = condemned.insert(state.cache.doom(&digests, now));
            let expired: Vec<TokenId> = expired
                .into_iter()
                .filter(|(d, _)| doomed.digests().contains(d))
                .map(|(_, id)| id)
                .collect();
            state
                .cache
                .hooks
                .at(Point::PruneDecided)
                .map_err(|e| StoreError::Storage(BackendError::new(e)))?;
            let owed: Vec<crate::Notice> = owed
                .into_iter()
                .filter(|(d, _)| doomed.digests().contains(d))
                .map(|(_, n)| n)
                .collect();
            state.record_notices_in(txn, &owed)?;
            for &id in &expired {
                Inner::remove_in(txn, id, &mut changes.deleted)?;
            }
            Inner::prune_retired(txn)?;
            state.prune_audit(txn, now)?;
            let entry = AuditEntry::pruned(expired.len(), actor, now);
            audit_in(txn, &entry)?;
            Ok(expired.len())
        })
    }

    fn policy(&self) -> Result<Policy, StoreError> {
        self.inner.policy()
    }

    fn set_policy(&self, policy: Policy) -> Result<(), StoreError> {
        let state: &Inner = &self.inner;
        let actor: &str = &self.actor;
        state.write(|txn| {
            let entry = AuditEntry::policy_set(&policy, actor, Timestamp::now());
            audit_in(txn, &entry)?;
            let mut meta = txn.open_table(META).map_err(storage)?;
            for (key, value) in policy.to_pairs() {
                match value {
                    Some(v) => meta.insert(key, v).map_err(storage)?,
                    None => meta.remove(key).map_err(storage)?,
                };
            }
            Ok(())
        })
    }

    fn token_prefixes(&self) -> Result<Vec<Prefix>, StoreError> {
        Ok(self.inner.prefixes.all())
    }

    fn permissions(&self) -> Result<Catalog, StoreError> {
        Ok((*self.inner.catalog.get()).clone())
    }

    fn define_permissions(&self, defs: &[PermissionDef]) -> Result<bool, StoreError> {
        let state: &Inner = &self.inner;
        let actor: &str = &self.actor;
        let _changing = state
            .catalog_changes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let after = state.delete(|txn, changes| {
            let mut tx = RedbTx::new(state, txn, changes);
            run_ready(engine::catalog::define(
                &mut tx,
                defs,
                actor,
                Timestamp::now(),
            ))
        })?;
        let Some(after) = after else {
            return Ok(false);
        };
        state.published(after);
        Ok(true)
    }

    fn remove_permission(
        &self,
        name: &Permission,
        force: bool,
    ) -> Result<PermissionRemoval, StoreError> {
        let state: &Inner = &self.inner;
        let actor: &str = &self.actor;
        let _changing = state
            .catalog_changes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let removed = state.delete(|txn, changes| {
            let mut tx = RedbTx::new(state, txn, changes);
            run_ready(engine::catalog::remove(
                &mut tx,
                name,
                force,
                actor,
                Timestamp::now(),
            ))
        })?;
        let outcome = PermissionRemoval::new(removed.narrowed.len(), removed.revoked.len());
        state.published(removed.catalog);
        Ok(outcome)
    }

    fn disable(&self, id: TokenId) -> Result<usize, StoreError> {
        self.suspend(id, true)
    }

    fn enable(&self, id: TokenId) -> Result<usize, StoreError> {
        self.suspend(id, false)
    }

    fn set_prefix(&self, prefix: Prefix) -> Result<(), StoreError> {
        let state: &Inner = &self.inner;
        let actor: &str = &self.actor;
        let _changing = state
            .prefix_changes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let changed = state.write(|txn| {
            let mut meta = txn.open_table(META).map_err(storage)?;
            let mut prefixes = txn.open_table(PREFIXES).map_err(storage)?;
            let stored = super::format::read_prefixes(&meta, &prefixes)?;
            if !crate::model::prefix::change(&stored, prefix)? {
                return Ok(false);
            }
            let mut number = None;
            let mut last = 0;
            for entry in prefixes.iter().map_err(storage)? {
                let (n, text) = entry.map_err(storage)?;
                last = last.max(n.value());
                if text.value() == prefix.as_str() {
                    number = Some(n.value());
                }
            }
            let number = match number {
                Some(n) => n,
                None => {
                    prefixes
                        .insert(last + 1, prefix.as_str())
                        .map_err(storage)?;
                    last + 1
                }
            };
            meta.insert(super::CURRENT_PREFIX_KEY, number)
                .map_err(storage)?;
            drop((meta, prefixes));
            audit_in(
                txn,
                &AuditEntry::prefix_set(prefix, actor, Timestamp::now()),
            )?;
            Ok(true)
        })?;
        if changed {
            // Committed: from now on new tokens carry it, and the request
            // path takes them.
            state.prefixes.remember(prefix)?;
        }
        Ok(())
    }

    fn audit(&self, since: Timestamp, user: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        let state: &Inner = &self.inner;
        let txn = state.db.begin_read().map_err(storage)?;
        let audit = match txn.open_table(AUDIT) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut out = Vec::new();
        for entry in audit.iter().map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            let e = codec::decode_audit(v.value())
                .map_err(corrupt)?
                .at_seq(k.value() + 1);
            if e.matches(since, user) {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn events(&self, after: u64, limit: usize) -> Result<Vec<crate::Event>, StoreError> {
        let txn = self.inner.db.begin_read().map_err(storage)?;
        let audit = match txn.open_table(AUDIT) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        // Entry `seq` is at key `seq - 1`: the range starts after `after`.
        let mut events = Vec::new();
        for entry in audit.range(after..).map_err(storage)? {
            if events.len() == limit {
                break;
            }
            let (k, v) = entry.map_err(storage)?;
            let e = codec::decode_audit(v.value()).map_err(corrupt)?;
            events.extend(crate::Event::from_audit(&e.at_seq(k.value() + 1)));
        }
        Ok(events)
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        let txn = self.inner.db.begin_read().map_err(storage)?;
        let audit = match txn.open_table(AUDIT) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(storage(e)),
        };
        // Entry `seq` is at key `seq - 1`.
        Ok(audit
            .last()
            .map_err(storage)?
            .map_or(0, |(k, _)| k.value() + 1))
    }

    fn delivery(&self, sink: &str) -> Result<Option<crate::Delivery>, StoreError> {
        let txn = self.inner.db.begin_read().map_err(storage)?;
        let table = match txn.open_table(DELIVERIES) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(storage(e)),
        };
        table
            .get(sink)
            .map_err(storage)?
            .map(|v| crate::Delivery::decode(v.value()).map_err(corrupt))
            .transpose()
    }

    fn deliveries(&self) -> Result<Vec<(String, crate::Delivery)>, StoreError> {
        let txn = self.inner.db.begin_read().map_err(storage)?;
        let table = match txn.open_table(DELIVERIES) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            let d = crate::Delivery::decode(v.value()).map_err(corrupt)?;
            out.push((k.value().to_owned(), d));
        }
        Ok(out)
    }

    fn swap_delivery(
        &self,
        sink: &str,
        expected: Option<&crate::Delivery>,
        new: &crate::Delivery,
    ) -> Result<bool, StoreError> {
        self.swap_delivery_audited(sink, expected, new, None)
    }

    fn resend_event(&self, sink: &str, seq: u64) -> Result<bool, StoreError> {
        crate::backend::admin::resend_with(
            || self.delivery(sink),
            |now, next, entry| self.swap_delivery_audited(sink, Some(now), next, Some(entry)),
            sink,
            seq,
            &self.actor,
        )
    }

    fn record_notices(&self, notices: &[crate::Notice]) -> Result<usize, StoreError> {
        self.inner
            .write(|txn| self.inner.record_notices_in(txn, notices))
    }

    fn acting_as<'a>(&'a self, actor: &str) -> Box<dyn Admin + 'a> {
        Box::new(self.acting(actor))
    }
}
