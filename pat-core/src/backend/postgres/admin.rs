//! The admin operations of [`PgStore`]: the engine's rules in a
//! [`PgTx`](super::tx::PgTx), and the reads and listings that need no rule.

use std::time::Duration;

use tokio_postgres::Row;

use super::{
    COLUMNS, DIGEST, PgError, PgStore, Shared, begin, digest_of, family, record, secs, timestamp,
};
use crate::backend::admin::Admin;
use crate::backend::engine;
use crate::error::StoreError;
use crate::model::audit::{AuditAction, AuditEntry};
use crate::model::permission::{Catalog, Permission, PermissionDef, PermissionRemoval};
use crate::model::policy::Policy;
use crate::model::prefix::Prefix;
use crate::model::record::{CreatedToken, NewToken, Rotation, TokenInfo};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};
use crate::testing::failpoints::Point;

impl PgStore {
    /// [`Admin::disable`] or [`Admin::enable`]: the rewritten rows notify
    /// every replica, which forgets its cached records of them.
    fn suspend(&self, id: TokenId, disable: bool) -> Result<usize, StoreError> {
        let shared = self.shared.clone();
        let actor = self.actor.to_string();
        self.block(async move {
            shared
                .write(move |tx| {
                    Box::pin(async move {
                        engine::suspend(tx, id, disable, &actor, Timestamp::now()).await
                    })
                })
                .await
        })
    }
}

impl Admin for PgStore {
    fn create(&self, new: &NewToken, now: Timestamp) -> Result<CreatedToken, StoreError> {
        let actor: &str = &self.actor;
        let shared = self.shared.clone();
        let new = new.clone();
        let actor = actor.to_owned();
        self.block(async move {
            shared
                .write(move |tx| {
                    Box::pin(async move { engine::create(tx, &new, now, &actor).await })
                })
                .await
        })
    }

    fn list(
        &self,
        user: Option<&str>,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        let shared = self.shared.clone();
        let user = user.map(str::to_owned);
        let out = self.block(async move {
            let client = shared.client().await?;
            let rows = match &user {
                Some(u) => {
                    let sql =
                        format!("SELECT {COLUMNS}, digest FROM pat_tokens WHERE username = $1");
                    shared.timed(client.query(&sql, &[u])).await?
                }
                None => {
                    let sql = format!("SELECT {COLUMNS}, digest FROM pat_tokens");
                    shared.timed(client.query(&sql, &[])).await?
                }
            };
            shared.records(&rows, DIGEST)
        })?;
        Ok(engine::listing(out, include_expired, now))
    }

    fn find(&self, digest: &TokenDigest, now: Timestamp) -> Result<Option<TokenInfo>, StoreError> {
        let shared = self.shared.clone();
        let digest = *digest;
        self.block(async move { engine::lookup::find(&*shared, &shared.cache, &digest, now).await })
    }

    fn get(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        let shared = self.shared.clone();
        self.block(async move {
            let client = shared.client().await?;
            let sql = format!("SELECT {COLUMNS}, digest FROM pat_tokens WHERE id = $1");
            let rows = shared
                .timed(client.query(&sql, &[&(id.as_u64() as i64)]))
                .await?;
            shared
                .records(&rows, DIGEST)?
                .pop()
                .ok_or(StoreError::NotFound(id))
        })
    }

    fn rotate(
        &self,
        id: TokenId,
        rotation: &Rotation,
        now: Timestamp,
    ) -> Result<CreatedToken, StoreError> {
        let actor: &str = &self.actor;
        let shared = self.shared.clone();
        let rotation = *rotation;
        let actor = actor.to_owned();
        self.block(async move {
            shared
                .write(move |tx| {
                    Box::pin(async move { engine::rotate(tx, id, &rotation, now, &actor).await })
                })
                .await
        })
    }

    fn revoke(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        let actor: &str = &self.actor;
        let shared = self.shared.clone();
        let actor = actor.to_owned();
        self.block(async move {
            let gone = shared
                .write(move |tx| {
                    Box::pin(
                        async move { engine::revoke(tx, id, &actor, "ok", Timestamp::now()).await },
                    )
                })
                .await?;
            gone.into_iter().next().ok_or(StoreError::NotFound(id))
        })
    }

    fn disable(&self, id: TokenId) -> Result<usize, StoreError> {
        self.suspend(id, true)
    }

    fn enable(&self, id: TokenId) -> Result<usize, StoreError> {
        self.suspend(id, false)
    }

    fn descendants(&self, id: TokenId) -> Result<Vec<TokenInfo>, StoreError> {
        let shared = self.shared.clone();
        self.block(async move {
            let client = shared.client().await?;
            let members = shared.timed_pg(family::descendants(&client, id)).await?;
            Ok(members
                .into_iter()
                .map(|mut m| {
                    shared.cache.overlay(&m.digest, &mut m.info);
                    m.info
                })
                .collect())
        })
    }

    fn revoke_user(&self, user: &str) -> Result<usize, StoreError> {
        let actor: &str = &self.actor;
        let shared = self.shared.clone();
        let user = user.to_owned();
        let actor = actor.to_owned();
        self.block(async move {
            let gone = shared
                .write(move |tx| {
                    Box::pin(async move {
                        engine::revoke_user(tx, &user, &actor, Timestamp::now()).await
                    })
                })
                .await?;
            Ok(gone.len())
        })
    }

    fn prune(&self, now: Timestamp) -> Result<usize, StoreError> {
        let actor: &str = &self.actor;
        let shared = self.shared.clone();
        let actor = actor.to_owned();
        self.block(async move {
            let margin = shared.prune_margin.as_secs() as i64;
            // Candidates by the database's view, then those this replica
            // knows to be alive (a sliding token used here, not written yet)
            // are kept.
            let client = shared.client().await?;
            let sql =
                format!("SELECT {COLUMNS}, digest FROM pat_tokens WHERE expires_at + $1 <= $2");
            let rows = shared
                .timed(client.query(&sql, &[&margin, &secs(now)]))
                .await?;
            let mut expired: Vec<TokenDigest> = Vec::new();
            let mut owed: Vec<(TokenDigest, crate::Notice)> = Vec::new();
            for row in &rows {
                let mut info = record(row)?;
                let digest = digest_of(row, DIGEST)?;
                shared.cache.overlay(&digest, &mut info);
                let margin = Duration::from_secs(margin as u64);
                if info.expiry.expires_at().saturating_add(margin) <= now {
                    if let Some(notice) = crate::Notice::owed_at_prune(&info, now) {
                        owed.push((digest, notice));
                    }
                    expired.push(digest);
                }
            }
            // A last look, ordered with this replica's uses racing it.
            let limit = Timestamp::from_unix_secs(now.as_unix_secs().saturating_sub(margin as u64))
                .unwrap_or(now);
            // Spared when dropped: whatever the database did not delete
            // (another replica's use was written meanwhile, or the
            // deletion failed) lives on; `change` forgets the deleted ones.
            let condemned = shared.cache.doom(&expired, limit);
            shared
                .cache
                .hooks
                .at(Point::PruneDecided)
                .map_err(PgError::Injected)?;
            // Their `token.expired`, before they are gone (a transaction of
            // its own: the one below is a single statement). The deletion
            // keeps a token only if another replica's use of it, made
            // before it expired, was still unwritten after the margin.
            let owed: Vec<crate::Notice> = owed
                .into_iter()
                .filter(|(d, _)| condemned.digests().contains(d))
                .map(|(_, n)| n)
                .collect();
            if !owed.is_empty() {
                shared.record_notices(&owed).await?;
            }
            let doomed: Vec<Vec<u8>> = condemned
                .digests()
                .iter()
                .map(|d| d.as_bytes().to_vec())
                .collect();
            let sql = format!(
                "DELETE FROM pat_tokens WHERE digest = ANY($1) AND expires_at + $2 <= $3 \
                 RETURNING {COLUMNS}, digest"
            );
            let pruned = shared
                .change(&sql, &[&doomed, &margin, &secs(now)], &|rows: &[Row]| {
                    vec![AuditEntry::pruned(rows.len(), &actor, now)]
                })
                .await;
            drop(condemned);
            let pruned = pruned?.len();
            // Retired secrets of tokens that are gone can only be refused
            // now, like any unknown token.
            let client = shared.client().await?;
            shared
                .timed(client.execute(
                    "DELETE FROM pat_retired r \
                     WHERE NOT EXISTS (SELECT 1 FROM pat_tokens t WHERE t.id = r.id)",
                    &[],
                ))
                .await?;
            // Nor do they get notices.
            shared
                .timed(client.execute(
                    "DELETE FROM pat_notices n \
                     WHERE NOT EXISTS (SELECT 1 FROM pat_tokens t WHERE t.id = n.token_id)",
                    &[],
                ))
                .await?;
            let horizon = now
                .as_unix_secs()
                .saturating_sub(shared.audit_retention.as_secs()) as i64;
            shared
                .timed(client.execute("DELETE FROM pat_audit WHERE at < $1", &[&horizon]))
                .await?;
            Ok(pruned)
        })
    }

    fn policy(&self) -> Result<Policy, StoreError> {
        let shared = self.shared.clone();
        self.block(async move {
            let mut writer = shared.writer().await?;
            let Some(client) = writer.as_mut() else {
                return Err(PgError::Stopped.into());
            };
            let txn = begin(client).await.map_err(PgError::Db)?;
            let policy = Shared::policy_in(&txn).await.map_err(PgError::Db)?;
            txn.commit().await.map_err(PgError::Db)?;
            Ok(policy)
        })
    }

    fn set_policy(&self, policy: Policy) -> Result<(), StoreError> {
        let actor: &str = &self.actor;
        let shared = self.shared.clone();
        let actor = actor.to_owned();
        self.block(async move { shared.set_policy(policy, &actor).await })
    }

    fn token_prefixes(&self) -> Result<Vec<Prefix>, StoreError> {
        let shared = self.shared.clone();
        self.block(async move {
            let client = shared.client().await?;
            let stored = shared
                .timed_pg(super::schema::stored_prefixes(&*client))
                .await?;
            Ok(stored)
        })
    }

    fn permissions(&self) -> Result<Catalog, StoreError> {
        // The database's, not this replica's copy: an admin reads what was
        // committed, wherever.
        let shared = self.shared.clone();
        self.block(async move {
            let client = shared.client().await?;
            Ok(shared
                .timed_pg(super::schema::stored_catalog(&*client, ""))
                .await?)
        })
    }

    fn define_permissions(&self, defs: &[PermissionDef]) -> Result<bool, StoreError> {
        let shared = self.shared.clone();
        let defs = defs.to_vec();
        let actor = self.actor.to_string();
        self.block(async move {
            let after = shared
                .write(move |tx| {
                    Box::pin(async move {
                        engine::catalog::define(tx, &defs, &actor, Timestamp::now()).await
                    })
                })
                .await?;
            Ok(after.is_some())
        })
    }

    fn remove_permission(
        &self,
        name: &Permission,
        force: bool,
    ) -> Result<PermissionRemoval, StoreError> {
        let shared = self.shared.clone();
        let name = name.clone();
        let actor = self.actor.to_string();
        self.block(async move {
            let removed = shared
                .write(move |tx| {
                    Box::pin(async move {
                        engine::catalog::remove(tx, &name, force, &actor, Timestamp::now()).await
                    })
                })
                .await?;
            Ok(PermissionRemoval::new(
                removed.narrowed.len(),
                removed.revoked.len(),
            ))
        })
    }

    fn set_prefix(&self, prefix: Prefix) -> Result<(), StoreError> {
        let shared = self.shared.clone();
        let actor = self.actor.to_string();
        self.block(async move { shared.set_prefix(prefix, &actor).await })
    }

    fn audit(&self, since: Timestamp, user: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        let shared = self.shared.clone();
        let user = user.map(str::to_owned);
        self.block(async move {
            let client = shared.client().await?;
            let sql = format!(
                "SELECT {AUDIT_COLUMNS} FROM pat_audit \
                 WHERE at >= $1 AND ($2::text IS NULL OR username = $2) ORDER BY seq"
            );
            let rows = shared
                .timed(client.query(&sql, &[&secs(since), &user]))
                .await?;
            rows.iter()
                .map(audit_row)
                .collect::<Result<Vec<_>, PgError>>()
                .map_err(StoreError::from)
        })
    }

    fn events(&self, after: u64, limit: usize) -> Result<Vec<crate::Event>, StoreError> {
        let shared = self.shared.clone();
        self.block(async move {
            let client = shared.client().await?;
            let sql = format!(
                "SELECT {AUDIT_COLUMNS} FROM pat_audit WHERE seq > $1 ORDER BY seq LIMIT 500"
            );
            let mut events = Vec::new();
            let mut from = after.min(i64::MAX as u64) as i64;
            // Page by entries until `limit` events: a page of entries that
            // are no events is not the end of the log.
            while events.len() < limit {
                let rows = shared.timed(client.query(&sql, &[&from])).await?;
                let Some(last) = rows.last() else { break };
                from = last.get(6);
                for r in &rows {
                    events.extend(crate::Event::from_audit(&audit_row(r)?));
                }
            }
            events.truncate(limit);
            Ok(events)
        })
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        let shared = self.shared.clone();
        self.block(async move {
            let client = shared.client().await?;
            let row = shared
                .timed(client.query_one("SELECT COALESCE(max(seq), 0) FROM pat_audit", &[]))
                .await?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
    }

    fn delivery(&self, sink: &str) -> Result<Option<crate::Delivery>, StoreError> {
        let shared = self.shared.clone();
        let sink = sink.to_owned();
        self.block(async move {
            let client = shared.client().await?;
            let row = shared
                .timed(
                    client.query_opt("SELECT state FROM pat_deliveries WHERE sink = $1", &[&sink]),
                )
                .await?;
            row.map(|r| crate::Delivery::decode(r.get(0)).map_err(PgError::Data))
                .transpose()
                .map_err(StoreError::from)
        })
    }

    fn deliveries(&self) -> Result<Vec<(String, crate::Delivery)>, StoreError> {
        let shared = self.shared.clone();
        self.block(async move {
            let client = shared.client().await?;
            let rows = shared
                .timed(client.query("SELECT sink, state FROM pat_deliveries ORDER BY sink", &[]))
                .await?;
            rows.iter()
                .map(|r| {
                    let d = crate::Delivery::decode(r.get(1)).map_err(PgError::Data)?;
                    Ok((r.get(0), d))
                })
                .collect::<Result<Vec<_>, PgError>>()
                .map_err(StoreError::from)
        })
    }

    fn swap_delivery(
        &self,
        sink: &str,
        expected: Option<&crate::Delivery>,
        new: &crate::Delivery,
    ) -> Result<bool, StoreError> {
        crate::model::delivery::check_sink(sink).map_err(StoreError::BadWebhook)?;
        let shared = self.shared.clone();
        let (sink, expected, new) = (sink.to_owned(), expected.cloned(), new.clone());
        self.block(async move {
            shared
                .swap_delivery(&sink, expected.as_ref(), &new, &[])
                .await
        })
    }

    fn resend_event(&self, sink: &str, seq: u64) -> Result<bool, StoreError> {
        crate::model::delivery::check_sink(sink).map_err(StoreError::BadWebhook)?;
        crate::backend::admin::resend_with(
            || self.delivery(sink),
            |now, next, entry| {
                let shared = self.shared.clone();
                let (sink, now, next, entry) =
                    (sink.to_owned(), now.clone(), next.clone(), entry.clone());
                self.block(async move {
                    shared
                        .swap_delivery(&sink, Some(&now), &next, &[entry])
                        .await
                })
            },
            sink,
            seq,
            &self.actor,
        )
    }

    fn record_notices(&self, notices: &[crate::Notice]) -> Result<usize, StoreError> {
        let shared = self.shared.clone();
        let notices = notices.to_vec();
        self.block(async move { shared.record_notices(&notices).await })
    }

    fn acting_as<'a>(&'a self, actor: &str) -> Box<dyn Admin + 'a> {
        Box::new(self.acting(actor))
    }
}

/// The columns of an audit entry, as [`audit_row`] reads them.
const AUDIT_COLUMNS: &str = "at, action, token_id, username, actor, outcome, seq";

/// The audit entry of a row of [`AUDIT_COLUMNS`].
fn audit_row(r: &tokio_postgres::Row) -> Result<AuditEntry, PgError> {
    let action: String = r.get(1);
    Ok(AuditEntry::new(
        timestamp(r.get(0), "audit time")?,
        AuditAction::from_name(&action)
            .ok_or_else(|| PgError::Data(format!("unknown audit action {action}")))?,
        r.get::<_, Option<i64>>(2)
            .map(|v| TokenId::from_u64(v as u64)),
        r.get::<_, String>(3),
        r.get::<_, String>(4),
        r.get::<_, String>(5),
    )
    .at_seq(r.get::<_, i64>(6) as u64))
}
