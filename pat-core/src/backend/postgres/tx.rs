//! A PostgreSQL transaction as the engine's [`Tx`]: storage only (rows,
//! their locks, the notifications to other replicas); the rules are the
//! engine's.
//!
//! Rows are locked as the engine reads them: `FOR UPDATE` what is about to
//! change, `FOR SHARE` a parent that must not, a family in id order. The
//! digests a transaction deletes or rewrites are announced to the other
//! replicas inside it (`pg_notify`, delivered at commit) and forgotten by
//! this replica's cache once it commits. Here too: the writer connection,
//! [`Shared::write`] (an engine operation in one such transaction), and the
//! statements that change tokens outside the engine (policy, prune).

use std::time::Duration;

use tokio_postgres::{Client, Row, Transaction};

use super::rows::{allow_from_column, max_uses_column, meta_column, rate_column, uses_column};
use super::{COLUMNS, DIGEST, PgError, Shared, TxFuture, digest_of, family, notify, record, secs};
use crate::backend::cache::Cache;
use crate::backend::engine::{Lock, Tx};
use crate::error::StoreError;
use crate::model::audit::AuditEntry;
use crate::model::permission::{Catalog, Permission, PermissionDef};
use crate::model::policy::Policy;
use crate::model::prefix::Prefix;
use crate::model::record::TokenInfo;
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};

/// An open transaction on the writer connection, noting what it deleted or
/// changed for the caches once it commits.
pub(super) struct PgTx<'a> {
    txn: &'a Transaction<'a>,
    cache: &'a Cache,
    /// The current token prefix, as this replica last heard it.
    prefix: Prefix,
    /// Digests that no longer stand for a token (revoked, rotated away).
    pub(super) deleted: Vec<TokenDigest>,
    /// Digests whose records changed (a clamped deadline, a permission
    /// taken away).
    pub(super) changed: Vec<TokenDigest>,
    /// Whether the catalog changed.
    pub(super) catalog_changed: bool,
    /// The audit entries to append before it commits.
    audit: Vec<AuditEntry>,
}

impl<'a> PgTx<'a> {
    pub(super) fn new(txn: &'a Transaction<'a>, cache: &'a Cache, prefix: Prefix) -> PgTx<'a> {
        PgTx {
            txn,
            cache,
            prefix,
            deleted: Vec::new(),
            changed: Vec::new(),
            catalog_changed: false,
            audit: Vec::new(),
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
            Lock::Read => "",
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

    async fn lock_families(&mut self, roots: &[TokenId]) -> Result<(), StoreError> {
        let ids: Vec<i64> = roots.iter().map(|&id| id_param(id)).collect();
        family::lock(self.txn, &ids).await?;
        Ok(())
    }

    async fn tokens_of(&mut self, user: &str) -> Result<Vec<TokenId>, StoreError> {
        let ids = self
            .txn
            .query(
                "SELECT id FROM pat_tokens WHERE username = $1 ORDER BY id",
                &[&user],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| TokenId::from_u64(r.get::<_, i64>(0) as u64))
            .collect();
        Ok(ids)
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

    fn prefix(&self) -> Prefix {
        // A replica that has not heard of a change yet makes a token of the
        // former prefix, which works everywhere.
        self.prefix
    }

    fn is_refused(&self, digest: &TokenDigest) -> bool {
        self.cache.refused(digest)
    }

    async fn catalog(&mut self, lock: Lock) -> Result<Catalog, StoreError> {
        let lock = match lock {
            // Its rows: a removal or a change of them waits; a name added
            // meanwhile is not one this transaction uses.
            Lock::Share | Lock::Read => "FOR SHARE",
            Lock::Update => {
                // The whole table, against every other change (two
                // definitions that each pass alone may form a cycle
                // together) and every creation that reads it for share:
                // those under way are waited for, so that a removal sees
                // their tokens, and later ones wait. Lookups' plain reads
                // go on. Taken before any token row, as creations do.
                self.txn
                    .batch_execute("LOCK TABLE pat_permissions IN EXCLUSIVE MODE")
                    .await
                    .map_err(db)?;
                ""
            }
        };
        Ok(super::schema::stored_catalog(self.txn, lock).await?)
    }

    async fn put_permission(&mut self, def: &PermissionDef) -> Result<(), StoreError> {
        let implies: Vec<&str> = def.implies.iter().map(Permission::as_str).collect();
        self.txn
            .execute(
                "INSERT INTO pat_permissions (name, description, implies) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE
                 SET description = EXCLUDED.description, implies = EXCLUDED.implies",
                &[&def.name.as_str(), &def.description, &implies],
            )
            .await
            .map_err(db)?;
        self.catalog_changed = true;
        Ok(())
    }

    async fn delete_permission(&mut self, name: &Permission) -> Result<(), StoreError> {
        self.txn
            .execute(
                "DELETE FROM pat_permissions WHERE name = $1",
                &[&name.as_str()],
            )
            .await
            .map_err(db)?;
        self.catalog_changed = true;
        Ok(())
    }

    async fn carrying(&mut self, name: &Permission) -> Result<Vec<TokenInfo>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS}, digest FROM pat_tokens WHERE $1 = ANY(scopes) ORDER BY id FOR UPDATE"
        );
        let rows = self.txn.query(&sql, &[&name.as_str()]).await.map_err(db)?;
        rows.iter()
            .map(|row| {
                let mut info = record(row)?;
                self.cache.overlay(&digest_of(row, DIGEST)?, &mut info);
                Ok(info)
            })
            .collect()
    }

    async fn insert(&mut self, digest: &TokenDigest, info: &TokenInfo) -> Result<bool, StoreError> {
        let (window, cap) = (info.expiry.window(), info.expiry.max_lifetime());
        let scopes: Vec<String> = info.scopes.entries().map(|s| s.to_string()).collect();
        let key: &[u8] = digest.as_bytes();
        // A taken id or digest inserts nothing (and, unlike a unique
        // violation, leaves the transaction usable for another draw).
        let inserted = self
            .txn
            .execute(
                "INSERT INTO pat_tokens (digest, id, username, label, created_at, created_by,
                     sliding, expires_at, window_secs, max_lifetime_secs, last_used_at, scopes,
                     parent_id, lifetime_from, not_after, disabled_by, meta, allow_from, rate,
                     max_uses, uses)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $12, $13, $14, $15, $16,
                     $17, $18, $19, $20)
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
                    &info.disabled_by.map(id_param),
                    &meta_column(info),
                    &allow_from_column(info),
                    &rate_column(info),
                    &max_uses_column(info),
                    &uses_column(info.uses),
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

    /// Writes what the engine changes of a record in place: the deadline a
    /// rotation's clamp gave a descendant, the scopes a removal from the
    /// catalog left, a suspension (its other fields do not change).
    async fn rewrite(&mut self, info: &TokenInfo) -> Result<(), StoreError> {
        let scopes: Vec<String> = info.scopes.entries().map(|s| s.to_string()).collect();
        let row = self
            .txn
            .query_opt(
                "UPDATE pat_tokens SET expires_at = $2, not_after = $3, scopes = $4, disabled_by = $5,
                     uses = $6
                 WHERE id = $1 RETURNING digest",
                &[
                    &id_param(info.id),
                    &secs(info.expiry.expires_at()),
                    &info.not_after.map(secs),
                    &scopes,
                    &info.disabled_by.map(id_param),
                    &uses_column(info.uses),
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
        // Written at the end (`write`), after every row lock.
        self.audit.push(entry.clone());
        Ok(())
    }
}

/// A transaction at READ COMMITTED, whatever the server's or the role's
/// `default_transaction_isolation` says: each statement sees what committed
/// before it, so a count taken after a lock sees every write the lock waited
/// for (at REPEATABLE READ the first statement's snapshot would hide them).
pub(super) async fn begin(
    client: &mut Client,
) -> Result<tokio_postgres::Transaction<'_>, tokio_postgres::Error> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
}

/// The advisory lock every transaction that appends to the audit log holds
/// from its first entry until it ends ("pat_audi").
pub(super) const AUDIT_LOCK: i64 = 0x7061_745f_6175_6469;

/// Appends `entries`, in order, to the audit log inside `txn`: nothing
/// when there are none, else [`audit_lock`] and then one statement.
pub(super) async fn audit_in(
    txn: &tokio_postgres::Transaction<'_>,
    entries: &[AuditEntry],
    timeout: Duration,
) -> Result<(), tokio_postgres::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    audit_lock(txn, timeout).await?;
    audit_rows(txn, entries).await
}

/// Takes [`AUDIT_LOCK`] for the rest of `txn` (and bounds every lock wait
/// after it in `txn` the same way): the transactions that append
/// to the audit log commit one at a time, so that an entry's `seq`, drawn
/// under the lock, is in commit order on every replica, and a reader that
/// has seen one entry has seen every entry before it (what
/// [`Admin::events`](crate::Admin::events) and a webhook's cursor rely on).
///
/// Every replica's audited writes wait for it, so it is held briefly and
/// never by a stalled client:
/// - taken by a transaction's last statements, after every row lock it
///   takes, so that it never waits for a row while holding it, and followed
///   by one insert ([`audit_rows`]), whatever the number of entries;
/// - waited for at most half of `timeout` (`lock_timeout`), so that a
///   writer behind a slow one fails cleanly, rolled back, rather than by
///   its own timeout, after which it cannot know whether it committed;
/// - given up by the server, which ends the session, when its client has
///   left the transaction idle for `timeout` (after which the client has
///   given up on it anyway): `idle_in_transaction_session_timeout`.
///
/// One round trip: the settings are local to the transaction.
pub(super) async fn audit_lock(
    txn: &tokio_postgres::Transaction<'_>,
    timeout: Duration,
) -> Result<(), tokio_postgres::Error> {
    let wait = (timeout.as_millis() / 2).clamp(1, i32::MAX as u128);
    let idle = timeout.as_millis().clamp(1, i32::MAX as u128);
    txn.batch_execute(&format!(
        "SET LOCAL lock_timeout = {wait};
         SET LOCAL idle_in_transaction_session_timeout = {idle};
         SELECT pg_advisory_xact_lock({AUDIT_LOCK})"
    ))
    .await
}

/// Inserts `entries` in one statement, their places drawn in order. The
/// caller holds [`audit_lock`].
pub(super) async fn audit_rows(
    txn: &tokio_postgres::Transaction<'_>,
    entries: &[AuditEntry],
) -> Result<(), tokio_postgres::Error> {
    let at: Vec<i64> = entries.iter().map(|e| secs(e.at)).collect();
    let action: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    let token: Vec<Option<i64>> = entries
        .iter()
        .map(|e| e.token_id.map(|id| id.as_u64() as i64))
        .collect();
    let user: Vec<&str> = entries.iter().map(|e| e.user.as_str()).collect();
    let actor: Vec<&str> = entries.iter().map(|e| e.actor.as_str()).collect();
    let outcome: Vec<&str> = entries.iter().map(|e| e.outcome.as_str()).collect();
    txn.execute(
        "INSERT INTO pat_audit (at, action, token_id, username, actor, outcome)
         SELECT at, action, token_id, username, actor, outcome
         FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
             WITH ORDINALITY AS e(at, action, token_id, username, actor, outcome, n)
         ORDER BY n",
        &[&at, &action, &token, &user, &actor, &outcome],
    )
    .await?;
    Ok(())
}

impl Shared {
    /// The writer connection, connected now if missing or broken.
    pub(super) async fn writer(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, PgError> {
        let waited = std::time::Instant::now();
        let mut writer = self.writer.lock().await;
        crate::metrics::observe(
            crate::metrics::POOL_WAIT,
            ("connection", "write"),
            waited.elapsed(),
        );
        if writer.as_ref().is_none_or(Client::is_closed) {
            let (client, connection) = self.connect().await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "database connection ended");
                }
            });
            *writer = Some(client);
        }
        Ok(writer)
    }

    /// The policy as `txn` sees it.
    pub(super) async fn policy_in(
        txn: &impl tokio_postgres::GenericClient,
    ) -> Result<Policy, tokio_postgres::Error> {
        let keys: Vec<&str> = crate::model::policy::KEYS.to_vec();
        let rows = txn
            .query(
                "SELECT key, value FROM pat_meta WHERE key = ANY($1)",
                &[&keys],
            )
            .await?;
        Ok(Policy::from_pairs(|key| {
            rows.iter()
                .find(|r| r.get::<_, &str>(0) == key)
                .map(|r| r.get::<_, i64>(1).max(0) as u64)
        }))
    }

    /// Runs `op`, one of the engine's operations, in a transaction on the
    /// writer connection: committed with the notifications of what it
    /// deleted or changed, which this replica's cache then forgets. A
    /// timeout may have committed: the whole cache is dropped.
    pub(super) async fn write<T: Send>(
        &self,
        op: impl for<'t> FnOnce(&'t mut PgTx<'_>) -> TxFuture<'t, T> + Send,
    ) -> Result<T, StoreError> {
        let mut writer = self.writer().await?;
        let Some(client) = writer.as_mut() else {
            return Err(PgError::Stopped.into());
        };
        let run = async {
            let txn = begin(client).await.map_err(PgError::Db)?;
            let mut tx = PgTx::new(&txn, &self.cache, self.prefixes.current());
            let out = op(&mut tx).await?;
            let PgTx {
                deleted,
                changed,
                catalog_changed,
                audit,
                ..
            } = tx;
            audit_in(&txn, &audit, self.timeout)
                .await
                .map_err(PgError::Db)?;
            if !audit.is_empty() {
                let _ = self
                    .cache
                    .hooks
                    .at(crate::testing::failpoints::Point::AuditLocked);
            }
            let all: Vec<TokenDigest> = deleted.iter().chain(&changed).copied().collect();
            notify(&txn, &all).await.map_err(PgError::Db)?;
            // The catalog as this transaction leaves it, told to every
            // replica at commit.
            let catalog = if catalog_changed {
                txn.execute(
                    "SELECT pg_notify($1, $2)",
                    &[&super::schema::CHANNEL, &super::listen::CATALOG_CHANGED],
                )
                .await
                .map_err(PgError::Db)?;
                Some(super::schema::stored_catalog(&txn, "").await?)
            } else {
                None
            };
            txn.commit().await.map_err(PgError::Db)?;
            Ok::<_, StoreError>((out, deleted, changed, catalog))
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => {
                let (out, deleted, changed, catalog) = r?;
                self.cache.deleted(&deleted);
                if !changed.is_empty() {
                    self.cache.forget(Some(&changed));
                }
                if let Some(catalog) = catalog {
                    // Under the writer's lock, as the listener sets what it
                    // hears: the later change is the one kept.
                    self.publish(catalog);
                }
                Ok(out)
            }
            Err(_) => {
                self.cache.forget(None);
                Err(PgError::Timeout.into())
            }
        }
    }

    /// Makes `prefix` current in one transaction that tells every replica,
    /// then here.
    pub(super) async fn set_prefix(&self, prefix: Prefix, actor: &str) -> Result<(), StoreError> {
        // Held until the change is remembered, so that this replica's
        // changes are remembered in the order they were stored.
        let mut writer = self.writer().await?;
        let Some(client) = writer.as_mut() else {
            return Err(PgError::Stopped.into());
        };
        let run = async {
            let txn = begin(client).await.map_err(PgError::Db)?;
            // Two changes, from any replicas, one after the other.
            txn.execute(
                "SELECT value FROM pat_meta WHERE key = 'prefix_current' FOR UPDATE",
                &[],
            )
            .await
            .map_err(PgError::Db)?;
            let stored = super::schema::stored_prefixes(&txn).await?;
            if !crate::model::prefix::change(&stored, prefix)? {
                // Current already (another replica set it, or a retry of a
                // change that committed): this replica takes the store's.
                // (A list that does not fit is the store's problem, not
                // this call's: nothing was to change.)
                let _ = self.prefixes.remember_all(&stored);
                return Ok::<_, StoreError>(false);
            }
            let text = prefix.as_str();
            txn.execute(
                "INSERT INTO pat_prefixes (seq, prefix)
                 SELECT COALESCE(MAX(seq), -1) + 1, $1 FROM pat_prefixes
                 ON CONFLICT (prefix) DO NOTHING",
                &[&text],
            )
            .await
            .map_err(PgError::Db)?;
            txn.execute(
                "UPDATE pat_meta SET value = (SELECT seq FROM pat_prefixes WHERE prefix = $1)
                 WHERE key = 'prefix_current'",
                &[&text],
            )
            .await
            .map_err(PgError::Db)?;
            audit_in(
                &txn,
                &[AuditEntry::prefix_set(prefix, actor, Timestamp::now())],
                self.timeout,
            )
            .await
            .map_err(PgError::Db)?;
            txn.execute(
                "SELECT pg_notify($1, $2)",
                &[&super::schema::CHANNEL, &super::listen::PREFIXES_CHANGED],
            )
            .await
            .map_err(PgError::Db)?;
            txn.commit().await.map_err(PgError::Db)?;
            Ok(true)
        };
        let changed = match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r?,
            Err(_) => return Err(PgError::Timeout.into()),
        };
        if changed {
            self.prefixes.remember(prefix)?;
        }
        drop(writer);
        Ok(())
    }

    /// Stores `new` as webhook `sink`'s delivery state if it is still
    /// `expected`, under the row's lock (or, for the first, the key's
    /// uniqueness): whether it was.
    pub(super) async fn swap_delivery(
        &self,
        sink: &str,
        expected: Option<&crate::Delivery>,
        new: &crate::Delivery,
        audit: &[AuditEntry],
    ) -> Result<bool, StoreError> {
        let mut writer = self.writer().await?;
        let Some(client) = writer.as_mut() else {
            return Err(PgError::Stopped.into());
        };
        let run = async {
            let txn = begin(client).await.map_err(PgError::Db)?;
            let stored: Option<Vec<u8>> = txn
                .query_opt(
                    "SELECT state FROM pat_deliveries WHERE sink = $1 FOR UPDATE",
                    &[&sink],
                )
                .await
                .map_err(PgError::Db)?
                .map(|r| r.get(0));
            let Some(bytes) = crate::model::delivery::swap(stored.as_deref(), expected, new)
                .map_err(PgError::Data)?
            else {
                return Ok(false);
            };
            let sql = if stored.is_some() {
                "UPDATE pat_deliveries SET state = $2 WHERE sink = $1"
            } else {
                // Another replica may insert first: then this one lost.
                "INSERT INTO pat_deliveries (sink, state) VALUES ($1, $2) ON CONFLICT DO NOTHING"
            };
            let n = txn
                .execute(sql, &[&sink, &bytes])
                .await
                .map_err(PgError::Db)?;
            if n == 1 {
                // Last, after the state's row lock: see `audit_lock`.
                audit_in(&txn, audit, self.timeout)
                    .await
                    .map_err(PgError::Db)?;
            }
            txn.commit().await.map_err(PgError::Db)?;
            Ok::<_, StoreError>(n == 1)
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(PgError::Timeout.into()),
        }
    }

    /// Writes each of `notices` not written before (its key stored), with
    /// its audit entry, in one transaction: how many were. The audit lock
    /// first, before any key is inserted, so that a notices transaction
    /// never holds a key another waits for while it waits for the lock.
    pub(super) async fn record_notices(
        &self,
        notices: &[crate::Notice],
    ) -> Result<usize, StoreError> {
        let mut writer = self.writer().await?;
        let Some(client) = writer.as_mut() else {
            return Err(PgError::Stopped.into());
        };
        let run = async {
            // Most notices due were written by an earlier sweep: those are
            // left out in one read, before the lock, which is then taken
            // only for the new ones (every replica's audited writes wait
            // for it).
            let keys: Vec<String> = notices.iter().map(crate::Notice::key).collect();
            let written: std::collections::HashSet<String> = client
                .query("SELECT key FROM pat_notices WHERE key = ANY($1)", &[&keys])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            // Each key once, even if the caller repeats a notice: the
            // insert below answers a key once.
            let mut seen = std::collections::HashSet::new();
            let new: Vec<&crate::Notice> = notices
                .iter()
                .zip(&keys)
                .filter(|(_, k)| !written.contains(*k) && seen.insert(k.as_str()))
                .map(|(n, _)| n)
                .collect();
            if new.is_empty() {
                return Ok(0);
            }
            let txn = begin(client).await?;
            audit_lock(&txn, self.timeout).await?;
            // The tokens as they are now, with this replica's buffered uses
            // (they keep a sliding token alive): a notice made from an
            // earlier read that no longer holds (a rotation or a revocation
            // committed since) is dropped. A plain read, after the lock,
            // so nothing commits between it and this write.
            let ids: Vec<i64> = new
                .iter()
                .filter_map(|n| n.entry().token_id.map(|id| id.as_u64() as i64))
                .collect();
            let mut now: std::collections::HashMap<i64, crate::TokenInfo> =
                std::collections::HashMap::new();
            for row in txn
                .query(
                    &format!("SELECT {COLUMNS}, digest FROM pat_tokens WHERE id = ANY($1)"),
                    &[&ids],
                )
                .await?
            {
                let mut info = record(&row)?;
                self.cache.overlay(&digest_of(&row, DIGEST)?, &mut info);
                now.insert(info.id.as_u64() as i64, info);
            }
            let new: Vec<&crate::Notice> = new
                .into_iter()
                .filter(|n| {
                    let id = n.entry().token_id.map_or(0, |id| id.as_u64() as i64);
                    n.holds_for(now.get(&id))
                })
                .collect();
            if new.is_empty() {
                return Ok(0);
            }
            let keys: Vec<String> = new.iter().map(|n| n.key()).collect();
            let ids: Vec<i64> = new
                .iter()
                .map(|n| n.entry().token_id.map_or(0, |id| id.as_u64() as i64))
                .collect();
            let inserted: std::collections::HashSet<String> = txn
                .query(
                    "INSERT INTO pat_notices (key, token_id)
                     SELECT * FROM unnest($1::text[], $2::bigint[])
                     ON CONFLICT DO NOTHING RETURNING key",
                    &[&keys, &ids],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let entries: Vec<AuditEntry> = new
                .iter()
                .zip(&keys)
                .filter(|(_, k)| inserted.contains(*k))
                .map(|(n, _)| n.entry().clone())
                .collect();
            if !entries.is_empty() {
                audit_rows(&txn, &entries).await?;
            }
            let n = entries.len();
            txn.commit().await?;
            Ok::<_, PgError>(n)
        };
        self.timed_pg(run).await.map_err(StoreError::from)
    }

    /// Replaces the policy's rows in one transaction.
    pub(super) async fn set_policy(&self, policy: Policy, actor: &str) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        let Some(client) = writer.as_mut() else {
            return Err(PgError::Stopped.into());
        };
        let run = async {
            let txn = begin(client).await?;
            for (key, value) in policy.to_pairs() {
                match value {
                    Some(v) => {
                        txn.execute(
                            "INSERT INTO pat_meta (key, value) VALUES ($1, $2)
                             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                            &[&key, &(v.min(i64::MAX as u64) as i64)],
                        )
                        .await?;
                    }
                    None => {
                        txn.execute("DELETE FROM pat_meta WHERE key = $1", &[&key])
                            .await?;
                    }
                }
            }
            let entry = AuditEntry::policy_set(&policy, actor, Timestamp::now());
            audit_in(&txn, &[entry], self.timeout).await?;
            txn.commit().await
        };
        self.timed(run).await.map_err(StoreError::from)
    }

    /// A statement that changes tokens (`… RETURNING …, digest`, the digest
    /// in column [`DIGEST`]), in a transaction that notifies the other replicas; the
    /// rows it returned, forgotten here too.
    pub(super) async fn change(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        audit: &(dyn Fn(&[Row]) -> Vec<AuditEntry> + Sync),
    ) -> Result<Vec<Row>, PgError> {
        let mut writer = self.writer().await?;
        let Some(client) = writer.as_mut() else {
            return Err(PgError::Stopped);
        };
        let run = async {
            let txn = begin(client).await?;
            let rows = txn.query(sql, params).await?;
            let digests: Vec<TokenDigest> = rows
                .iter()
                .filter_map(|r| digest_of(r, DIGEST).ok())
                .collect();
            notify(&txn, &digests).await?;
            audit_in(&txn, &audit(&rows), self.timeout).await?;
            txn.commit().await?;
            Ok((rows, digests))
        };
        let (rows, digests) = self.timed(run).await.inspect_err(|e| {
            if matches!(e, PgError::Timeout) {
                // It may have committed: nothing cached can be trusted.
                self.cache.forget(None);
            }
        })?;
        self.cache.deleted(&digests);
        Ok(rows)
    }
}
