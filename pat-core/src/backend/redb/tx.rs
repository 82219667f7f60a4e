//! The redb write transaction as the engine's [`Tx`]: storage only (the
//! tables and their indexes); the rules are the engine's. A write
//! transaction holds the whole file, so nothing is locked row by row.

use redb::{ReadableMultimapTable as _, ReadableTable as _, WriteTransaction};

use super::{
    BY_ID, BY_USER, CHILDREN, Changes, Inner, PERMISSIONS, RETIRED, RETIRED_BY_ID, TOKENS,
    audit_in, codec, corrupt, storage,
};
use crate::backend::engine::{Lock, Tx};
use crate::error::StoreError;
use crate::model::audit::AuditEntry;
use crate::model::permission::{Catalog, Permission, PermissionDef};
use crate::model::policy::Policy;
use crate::model::prefix::Prefix;
use crate::model::record::TokenInfo;
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};

/// A write transaction of the store, noting what it deleted or changed for
/// the cache once it commits.
pub(super) struct RedbTx<'a> {
    inner: &'a Inner,
    txn: &'a WriteTransaction,
    changes: &'a mut Changes,
}

impl<'a> RedbTx<'a> {
    pub(super) fn new(
        inner: &'a Inner,
        txn: &'a WriteTransaction,
        changes: &'a mut Changes,
    ) -> RedbTx<'a> {
        RedbTx {
            inner,
            txn,
            changes,
        }
    }

    fn digest_of(&self, id: TokenId) -> Result<Option<[u8; 32]>, StoreError> {
        let by_id = self.txn.open_table(BY_ID).map_err(storage)?;
        Ok(by_id.get(id.as_u64()).map_err(storage)?.map(|d| d.value()))
    }
}

impl Tx for RedbTx<'_> {
    async fn token(
        &mut self,
        id: TokenId,
        _lock: Lock,
    ) -> Result<Option<(TokenDigest, TokenInfo)>, StoreError> {
        Ok(self
            .inner
            .record_in(self.txn, id)?
            .map(|(d, info)| (TokenDigest::from_bytes(d), info)))
    }

    async fn family(&mut self, id: TokenId) -> Result<Vec<TokenInfo>, StoreError> {
        crate::backend::authority::family(id, |p| self.inner.children_in(self.txn, p))
    }

    async fn tokens_of(&mut self, user: &str) -> Result<Vec<TokenId>, StoreError> {
        let by_user = self.txn.open_multimap_table(BY_USER).map_err(storage)?;
        by_user
            .get(user)
            .map_err(storage)?
            .map(|id| id.map(|v| TokenId::from_u64(v.value())).map_err(storage))
            .collect()
    }

    async fn lock_user(&mut self, _user: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn live_count(&mut self, user: &str, now: Timestamp) -> Result<usize, StoreError> {
        let mut live = 0;
        for id in self.tokens_of(user).await? {
            if let Some((_, info)) = self.inner.record_in(self.txn, id)?
                && !info.is_expired(now)
            {
                live += 1;
            }
        }
        Ok(live)
    }

    async fn policy(&mut self) -> Result<Policy, StoreError> {
        Inner::policy_in(self.txn)
    }

    fn prefix(&self) -> Prefix {
        // The file has one writer, this process, which updates its set as
        // it commits a change: the set is the file's.
        self.inner.prefixes.current()
    }

    fn is_refused(&self, digest: &TokenDigest) -> bool {
        self.inner.cache.refused(digest)
    }

    async fn catalog(&mut self, _lock: Lock) -> Result<Catalog, StoreError> {
        let table = self.txn.open_table(PERMISSIONS).map_err(storage)?;
        super::format::read_catalog(&table)
    }

    async fn put_permission(&mut self, def: &PermissionDef) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(PERMISSIONS).map_err(storage)?;
        table
            .insert(def.name.as_str(), codec::encode_permission(def).as_slice())
            .map_err(storage)?;
        Ok(())
    }

    async fn delete_permission(&mut self, name: &Permission) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(PERMISSIONS).map_err(storage)?;
        table.remove(name.as_str()).map_err(storage)?;
        Ok(())
    }

    async fn carrying(&mut self, name: &Permission) -> Result<Vec<TokenInfo>, StoreError> {
        // Every record read: an admin's removal, not the request path.
        let tokens = self.txn.open_table(TOKENS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in tokens.iter().map_err(storage)? {
            let (_, bytes) = entry.map_err(storage)?;
            let info = codec::decode(bytes.value()).map_err(corrupt)?;
            if info.scopes.named().contains(name) {
                out.push(info);
            }
        }
        Ok(out)
    }

    async fn insert(&mut self, digest: &TokenDigest, info: &TokenInfo) -> Result<bool, StoreError> {
        let mut tokens = self.txn.open_table(TOKENS).map_err(storage)?;
        let mut by_id = self.txn.open_table(BY_ID).map_err(storage)?;
        if by_id.get(info.id.as_u64()).map_err(storage)?.is_some()
            || tokens.get(digest.as_bytes()).map_err(storage)?.is_some()
        {
            return Ok(false);
        }
        tokens
            .insert(digest.as_bytes(), codec::encode(info).as_slice())
            .map_err(storage)?;
        by_id
            .insert(info.id.as_u64(), digest.as_bytes())
            .map_err(storage)?;
        let mut by_user = self.txn.open_multimap_table(BY_USER).map_err(storage)?;
        by_user
            .insert(info.user.as_str(), info.id.as_u64())
            .map_err(storage)?;
        if let Some(parent) = info.parent {
            let mut children = self.txn.open_multimap_table(CHILDREN).map_err(storage)?;
            children
                .insert(parent.as_u64(), info.id.as_u64())
                .map_err(storage)?;
        }
        Ok(true)
    }

    async fn replace_secret(
        &mut self,
        old: &TokenDigest,
        digest: &TokenDigest,
        info: &TokenInfo,
    ) -> Result<bool, StoreError> {
        let mut tokens = self.txn.open_table(TOKENS).map_err(storage)?;
        if tokens.get(digest.as_bytes()).map_err(storage)?.is_some() {
            return Ok(false);
        }
        tokens.remove(old.as_bytes()).map_err(storage)?;
        tokens
            .insert(digest.as_bytes(), codec::encode(info).as_slice())
            .map_err(storage)?;
        let mut by_id = self.txn.open_table(BY_ID).map_err(storage)?;
        by_id
            .insert(info.id.as_u64(), digest.as_bytes())
            .map_err(storage)?;
        // Forgotten in memory like a revoked one.
        self.changes.deleted.push(*old);
        Ok(true)
    }

    async fn rewrite(&mut self, info: &TokenInfo) -> Result<(), StoreError> {
        let Some(digest) = self.digest_of(info.id)? else {
            return Ok(());
        };
        let mut tokens = self.txn.open_table(TOKENS).map_err(storage)?;
        tokens
            .insert(digest, codec::encode(info).as_slice())
            .map_err(storage)?;
        self.changes.changed.push(TokenDigest::from_bytes(digest));
        Ok(())
    }

    async fn retire(
        &mut self,
        old: &TokenDigest,
        id: TokenId,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut retired = self.txn.open_table(RETIRED).map_err(storage)?;
        let mut retired_by_id = self
            .txn
            .open_multimap_table(RETIRED_BY_ID)
            .map_err(storage)?;
        let earlier: Vec<[u8; 32]> = retired_by_id
            .get(id.as_u64())
            .map_err(storage)?
            .map(|d| d.map(|v| v.value()).map_err(storage))
            .collect::<Result<_, _>>()?;
        for d in earlier {
            let end = retired.get(d).map_err(storage)?.map(|v| v.value().1);
            if end.is_some_and(|end| end > now.as_unix_secs()) {
                retired
                    .insert(d, (id.as_u64(), now.as_unix_secs()))
                    .map_err(storage)?;
            }
        }
        retired
            .insert(old.as_bytes(), (id.as_u64(), until.as_unix_secs()))
            .map_err(storage)?;
        retired_by_id
            .insert(id.as_u64(), old.as_bytes())
            .map_err(storage)?;
        Ok(())
    }

    async fn remove(&mut self, id: TokenId) -> Result<(), StoreError> {
        Inner::remove_in(self.txn, id, &mut self.changes.deleted)?;
        Ok(())
    }

    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError> {
        audit_in(self.txn, entry)
    }
}
