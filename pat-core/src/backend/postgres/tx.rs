//! A PostgreSQL transaction as the engine's [`Tx`]: storage only (rows,
//! their locks, the notifications to other replicas); the rules are the
//! engine's.
//!
//! Rows are locked as the engine reads them: `FOR UPDATE` what is about to
//! change, `FOR SHARE` a parent that must not, a family in id order. The
//! digests a transaction deletes or rewrites are announced to the other
//! replicas inside it (`pg_notify`, delivered at commit) and forgotten by
//! this replica's cache once it commits.

use tokio_postgres::Transaction;

use super::{COLUMNS, DIGEST, PgError, Shared, audit_in, digest_of, family, record, secs};
use crate::backend::cache::Cache;
use crate::backend::engine::{Lock, Tx};
use crate::error::StoreError;
use crate::model::audit::AuditEntry;
use crate::model::policy::Policy;
use crate::model::record::TokenInfo;
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};

/// An open transaction on the writer connection, noting what it deleted or
/// changed for the caches once it commits.
pub(super) struct PgTx<'a> {
    txn: &'a Transaction<'a>,
    cache: &'a Cache,
    /// Digests that no longer stand for a token (revoked, rotated away).
    pub(super) deleted: Vec<TokenDigest>,
    /// Digests whose records changed (a clamped deadline).
    pub(super) changed: Vec<TokenDigest>,
}

impl<'a> PgTx<'a> {
    pub(super) fn new(txn: &'a Transaction<'a>, cache: &'a Cache) -> PgTx<'a> {
        PgTx {
            txn,
            cache,
            deleted: Vec::new(),
            changed: Vec::new(),
        }
    }
}

fn db(e: tokio_postgres::Error) -> StoreError {
    PgError::Db(e).into()
}

fn id_param(id: TokenId) -> i64 {
    id.as_u64() as i64
}

impl Tx for PgTx<'_> {
    async fn token(
        &mut self,
        id: TokenId,
        lock: Lock,
    ) -> Result<Option<(TokenDigest, TokenInfo)>, StoreError> {
        let lock = match lock {
            Lock::Update => "FOR UPDATE",
            Lock::Share => "FOR SHARE",
        };
        let sql = format!("SELECT {COLUMNS}, digest FROM pat_tokens WHERE id = $1 {lock}");
        let Some(row) = self
            .txn
            .query_opt(&sql, &[&id_param(id)])
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let digest = digest_of(&row, DIGEST)?;
        let mut info = record(&row)?;
        // This replica's unwritten use; other replicas' land on a digest
        // that may be gone by then, and are dropped like uses racing a
        // revocation.
        self.cache.overlay(&digest, &mut info);
        Ok(Some((digest, info)))
    }

    async fn family(&mut self, id: TokenId) -> Result<Vec<TokenInfo>, StoreError> {
        let mut members = family::lock(self.txn, &[id_param(id)]).await?;
        for m in &mut members {
            self.cache.overlay(&m.digest, &mut m.info);
        }
        crate::backend::authority::family(id, |p| {
            Ok::<_, StoreError>(family::children_in(&members, p))
        })
    }

    /// The user's tokens, each locked with its family (in id order, all at
    /// once, so that two revocations meeting in a family wait for each
    /// other rather than deadlock).
    async fn tokens_of(&mut self, user: &str) -> Result<Vec<TokenId>, StoreError> {
        let ids: Vec<i64> = self
            .txn
            .query(
                "SELECT id FROM pat_tokens WHERE username = $1 ORDER BY id",
                &[&user],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        family::lock(self.txn, &ids).await?;
        Ok(ids
            .into_iter()
            .map(|i| TokenId::from_u64(i as u64))
            .collect())
    }

    async fn lock_user(&mut self, user: &str) -> Result<(), StoreError> {
        // Across replicas: creations for one user wait for each other, so
        // the count each takes afterwards sees the other's token.
        self.txn
            .execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&user])
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn live_count(&mut self, user: &str, now: Timestamp) -> Result<usize, StoreError> {
        let live: i64 = self
            .txn
            .query_one(
                "SELECT count(*) FROM pat_tokens WHERE username = $1 AND expires_at > $2",
                &[&user, &secs(now)],
            )
            .await
            .map_err(db)?
            .get(0);
        Ok(live.max(0) as usize)
    }

    async fn policy(&mut self) -> Result<Policy, StoreError> {
        Shared::policy_in(self.txn).await.map_err(db)
    }

    fn is_refused(&self, digest: &TokenDigest) -> bool {
        self.cache.refused(digest)
    }

    async fn insert(&mut self, digest: &TokenDigest, info: &TokenInfo) -> Result<bool, StoreError> {
        let (window, cap) = (info.expiry.window(), info.expiry.max_lifetime());
        let scopes: Vec<String> = info.scopes.iter().map(ToString::to_string).collect();
        let key: &[u8] = digest.as_bytes();
        // A taken id or digest inserts nothing (and, unlike a unique
        // violation, leaves the transaction usable for another draw).
        let inserted = self
            .txn
            .execute(
                "INSERT INTO pat_tokens (digest, id, username, label, created_at, created_by,
                     sliding, expires_at, window_secs, max_lifetime_secs, last_used_at, scopes,
                     parent_id, lifetime_from, not_after)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $12, $13, $14)
                 ON CONFLICT DO NOTHING",
                &[
                    &key,
                    &id_param(info.id),
                    &info.user,
                    &info.label,
                    &secs(info.created_at),
                    &info.created_by,
                    &window.is_some(),
                    &secs(info.expiry.expires_at()),
                    &window.map(|d| d.as_secs() as i64),
                    &cap.map(|d| d.as_secs() as i64),
                    &scopes,
                    &info.parent.map(id_param),
                    &secs(info.lifetime_from),
                    &info.not_after.map(secs),
                ],
            )
            .await
            .map_err(db)?;
        Ok(inserted == 1)
    }

    async fn replace_secret(
        &mut self,
        old: &TokenDigest,
        digest: &TokenDigest,
        info: &TokenInfo,
    ) -> Result<bool, StoreError> {
        let (window, cap) = (info.expiry.window(), info.expiry.max_lifetime());
        let key: &[u8] = digest.as_bytes();
        let updated = self
            .txn
            .execute(
                "UPDATE pat_tokens SET digest = $2, sliding = $3, expires_at = $4, window_secs = $5,
                     max_lifetime_secs = $6, last_used_at = $7, rotated_at = $8,
                     lifetime_from = $9, not_after = $10, previous_until = $11
                 WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM pat_tokens WHERE digest = $2)",
                &[
                    &id_param(info.id),
                    &key,
                    &window.is_some(),
                    &secs(info.expiry.expires_at()),
                    &window.map(|d| d.as_secs() as i64),
                    &cap.map(|d| d.as_secs() as i64),
                    &info.last_used_at.map(secs),
                    &info.rotated_at.map(secs),
                    &secs(info.lifetime_from),
                    &info.not_after.map(secs),
                    &info.previous_until.map(secs),
                ],
            )
            .await
            .map_err(db)?;
        if updated == 1 {
            self.deleted.push(*old);
        }
        Ok(updated == 1)
    }

    /// Writes the deadline a rotation's clamp gave a descendant (its other
    /// fields do not change).
    async fn rewrite(&mut self, info: &TokenInfo) -> Result<(), StoreError> {
        let row = self
            .txn
            .query_opt(
                "UPDATE pat_tokens SET expires_at = $2, not_after = $3 WHERE id = $1
                 RETURNING digest",
                &[
                    &id_param(info.id),
                    &secs(info.expiry.expires_at()),
                    &info.not_after.map(secs),
                ],
            )
            .await
            .map_err(db)?;
        if let Some(row) = row {
            self.changed.push(digest_of(&row, 0)?);
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
        let key: &[u8] = old.as_bytes();
        self.txn
            .execute(
                "UPDATE pat_retired SET retires_at = $2 WHERE id = $1 AND retires_at > $2",
                &[&id_param(id), &secs(now)],
            )
            .await
            .map_err(db)?;
        self.txn
            .execute(
                "INSERT INTO pat_retired (digest, id, retires_at) VALUES ($1, $2, $3)",
                &[&key, &id_param(id), &secs(until)],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn remove(&mut self, id: TokenId) -> Result<(), StoreError> {
        let row = self
            .txn
            .query_opt(
                "DELETE FROM pat_tokens WHERE id = $1 RETURNING digest",
                &[&id_param(id)],
            )
            .await
            .map_err(db)?;
        if let Some(row) = row {
            self.deleted.push(digest_of(&row, 0)?);
        }
        Ok(())
    }

    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError> {
        audit_in(self.txn, entry).await.map_err(db)
    }
}
