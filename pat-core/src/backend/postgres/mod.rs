//! The PostgreSQL backend (feature `postgres`): one token store for a fleet
//! of replicas.

mod admin;
mod builder;
mod error;
mod family;
mod listen;
mod rows;
mod schema;
mod tx;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;
use tokio_postgres::{Client, NoTls, Row};

use self::tx::{audit_lock, audit_rows, begin};
use crate::backend::admin::Actor;
use crate::backend::cache::Cache;
use crate::backend::engine;
use crate::backend::engine::lookup::Found;
use crate::backend::options::cache_accessors;
use crate::backend::{Lookup, Verification, Verifier};
use crate::error::{AuthError, OpenError, StoreError};
use crate::model::audit::AuditEntry;
use crate::model::permission::{Catalog, SharedCatalog};
use crate::model::prefix::Prefixes;
use crate::model::rate::Admission;
use crate::model::record::{Identity, Origin, TokenInfo};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};
use crate::testing::failpoints::Point;

pub use self::builder::PgStoreBuilder;
use self::error::{PgError, db_error};
use self::listen::{flush_every, listen, notify};
use self::rows::{COLUMNS, DIGEST, digest_of, record, secs, timestamp};
pub use schema::SCHEMA_VERSION;

/// The future of an engine operation in a [`PgTx`], boxed so that
/// [`Shared::write`] can take any of them.
type TxFuture<'t, T> = std::pin::Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 't>>;

type Connection =
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>;

/// A token store in PostgreSQL, shared by any number of replicas of a
/// service (and by `pat-cli --db postgres://…`).
///
/// Each replica keeps a bounded cache of records, used for at most the
/// staleness bound (default 1 s) and evicted as soon as another replica's
/// write is heard (every write sends a `NOTIFY` in its transaction; each
/// replica `LISTEN`s, and drops its whole cache when the listener
/// reconnects, since notifications may have been lost meanwhile). A token
/// created anywhere works at once everywhere (a miss reads the database); a
/// token revoked anywhere is refused everywhere within the staleness bound,
/// usually within milliseconds.
///
/// Uses are buffered per replica and written in one statement per flush
/// interval, taking the later of the stored and buffered values, so replicas
/// never move a sliding deadline backwards, and never re-create a token
/// revoked meanwhile.
///
/// When the database cannot be reached, tokens not in the cache get
/// [`AuthError::Store`] (the adapters answer 503), cached ones keep working
/// up to the staleness bound, and the store recovers by itself.
///
/// All database I/O runs on the store's own small runtime, so lookups can be
/// awaited from any executor (tokio, actix-web's, or a blocking test).
pub struct PgStore {
    shared: Arc<Shared>,
    /// The runtime's handle; spawning on it after the runtime stopped drops
    /// the task, which the waiting side sees as "closing".
    handle: tokio::runtime::Handle,
    /// Who the audit log records as making this handle's changes
    /// ([`Admin::acting_as`](crate::Admin::acting_as) makes a handle with
    /// another).
    actor: Actor,
    /// What the store's own handle runs, stopped when it is dropped; `None`
    /// in a handle acting as someone.
    running: Option<Running>,
}

/// The periodic flush and the runtime of a connected store.
struct Running {
    /// The periodic flush, stopped (and waited for) before the last one.
    flusher: Option<tokio::task::JoinHandle<()>>,
    // Dropped after the final flush in `Drop`.
    _runtime: crate::backend::block_on::OwnedRuntime,
}

struct Shared {
    config: tokio_postgres::Config,
    database: String,
    pool: Vec<AsyncMutex<Option<Arc<Client>>>>,
    next: AtomicUsize,
    /// The connection writes run their transactions on, one at a time (a
    /// pooled client pipelines other tasks' statements).
    writer: AsyncMutex<Option<Client>>,
    cache: Cache,
    timeout: Duration,
    prune_margin: Duration,
    listening: AtomicBool,
    audit_retention: Duration,
    /// Tells the periodic flush to stop.
    stop_flushing: tokio::sync::Notify,
    /// The database's token prefixes, as the request path reads them:
    /// changes are heard as token changes are.
    prefixes: Prefixes,
    /// The catalog lookups resolve named permissions with: changes are
    /// heard as token changes are, and set under the writer's lock.
    catalog: SharedCatalog,
    /// A catalog change was heard but could not be read: the periodic
    /// flush reads it until it can.
    catalog_stale: AtomicBool,
}

/// `entries` less those the log holds already (the same action, token and
/// second): the replays a flush queued again after a write whose answer
/// was lost, which may have committed. Read in `txn`, by the log's time
/// index.
async fn not_logged(
    txn: &tokio_postgres::Transaction<'_>,
    entries: &[AuditEntry],
) -> Result<Vec<AuditEntry>, tokio_postgres::Error> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let at: Vec<i64> = entries.iter().map(|e| secs(e.at)).collect();
    let logged: std::collections::HashSet<(String, Option<i64>, i64)> = txn
        .query(
            "SELECT action, token_id, at FROM pat_audit WHERE at = ANY($1)",
            &[&at],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    Ok(entries
        .iter()
        .filter(|e| {
            let key = (
                e.action.as_str().to_owned(),
                e.token_id.map(|id| id.as_u64() as i64),
                secs(e.at),
            );
            !logged.contains(&key)
        })
        .cloned()
        .collect())
}

/// A new connection to the database `config` names, within `timeout`.
async fn connect_to(
    config: &tokio_postgres::Config,
    timeout: Duration,
) -> Result<(Client, Connection), PgError> {
    match tokio::time::timeout(timeout, config.connect(NoTls)).await {
        Ok(Ok(pair)) => Ok(pair),
        Ok(Err(e)) => Err(PgError::Db(e)),
        Err(_) => Err(PgError::Timeout),
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.shared.database)
            .field("listening", &self.listening())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects with the default options; see [`PgStoreBuilder::connect`].
    pub fn connect(url: &str) -> Result<PgStore, OpenError> {
        PgStoreBuilder::default().connect(url)
    }

    /// Options.
    pub fn builder() -> PgStoreBuilder {
        PgStoreBuilder::default()
    }

    /// The database, as it may be shown (no password).
    pub fn database(&self) -> &str {
        &self.shared.database
    }

    /// Whether this replica hears other replicas' changes right now.
    pub fn listening(&self) -> bool {
        self.shared.listening.load(Ordering::Acquire)
    }

    /// Writes buffered uses now, in one statement; how many tokens it updated.
    pub fn flush(&self) -> Result<usize, StoreError> {
        let shared = self.shared.clone();
        self.block(async move { shared.flush().await })
    }

    cache_accessors!(shared);

    /// A handle on the same store whose changes are audited as made by
    /// `actor`; it runs nothing of its own, so dropping it stops nothing.
    fn acting(&self, actor: &str) -> PgStore {
        PgStore {
            shared: self.shared.clone(),
            handle: self.handle.clone(),
            actor: Actor::from(actor),
            running: None,
        }
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Runs `op` on the store's runtime and waits for it, from any thread
    /// (a std channel, so no async runtime is needed or upset).
    fn block<T: Send + 'static>(
        &self,
        op: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(op.await);
        });
        rx.recv().unwrap_or_else(|_| Err(PgError::Stopped.into()))
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // A periodic flush under way holds a batch whose entries are clean:
        // let it finish (not be cancelled with the runtime), then write the
        // rest.
        // Only the store's own handle: a handle acting as someone shares
        // the store and runs nothing.
        let Some(mut running) = self.running.take() else {
            return;
        };
        if let Some(flusher) = running.flusher.take() {
            self.shared.stop_flushing.notify_one();
            let _ = self.block(async move {
                let _ = flusher.await;
                Ok(())
            });
        }
        if let Err(e) = self.flush() {
            tracing::warn!(error = %crate::error::chain(&e), "could not write buffered token uses");
        }
        // The runtime last, once nothing more needs it.
        drop(running);
    }
}

impl Shared {
    async fn connect(&self) -> Result<(Client, Connection), PgError> {
        connect_to(&self.config, self.timeout).await
    }

    /// A client of the pool, connected now if its slot is empty or broken.
    async fn client(&self) -> Result<Arc<Client>, PgError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len();
        let waited = std::time::Instant::now();
        let mut slot = self.pool[i].lock().await;
        crate::metrics::observe(
            crate::metrics::POOL_WAIT,
            ("connection", "read"),
            waited.elapsed(),
        );
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let (client, connection) = self.connect().await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "database connection ended");
            }
        });
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Runs a transaction within the time limit.
    async fn timed_pg<T>(
        &self,
        op: impl Future<Output = Result<T, PgError>>,
    ) -> Result<T, PgError> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(r) => r,
            Err(_) => Err(PgError::Timeout),
        }
    }

    /// Runs a query within the time limit.
    async fn timed<T>(
        &self,
        op: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, PgError> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(r) => r.map_err(PgError::Db),
            Err(_) => Err(PgError::Timeout),
        }
    }

    /// What a digest stands for, in one round trip (a miss of an unknown
    /// token, the common miss under a flood, costs one query).
    async fn read_digest(&self, digest: &TokenDigest) -> Result<Found, PgError> {
        let client = self.client().await?;
        let columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("t.{c}")).collect();
        let sql = format!(
            "SELECT {}, r.id, r.retires_at, c.digest, c.username
             FROM (SELECT $1::bytea AS d) AS q
             LEFT JOIN pat_tokens t ON t.digest = q.d
             LEFT JOIN pat_retired r ON t.digest IS NULL AND r.digest = q.d
             LEFT JOIN pat_tokens c ON c.id = r.id",
            columns.join(", ")
        );
        let key: &[u8] = digest.as_bytes();
        let row = self.timed(client.query_one(&sql, &[&key])).await?;
        if row.get::<_, Option<i64>>(0).is_some() {
            return Ok(Found::Token(record(&row)?));
        }
        let Some(id) = row.get::<_, Option<i64>>(DIGEST) else {
            return Ok(Found::Nothing);
        };
        let current = match row.get::<_, Option<Vec<u8>>>(DIGEST + 2) {
            None => None,
            Some(_) => Some(digest_of(&row, DIGEST + 2)?),
        };
        Ok(Found::Retired {
            id: TokenId::from_u64(id as u64),
            retires_at: timestamp(row.get(DIGEST + 1), "retires_at")?,
            current,
            user: Some(row.get::<_, Option<String>>(DIGEST + 3).unwrap_or_default()),
        })
    }

    /// Writes the buffered uses and the audit entries the request path
    /// noted, in one transaction.
    async fn flush(&self) -> Result<usize, StoreError> {
        let started = std::time::Instant::now();
        let written = self.write_buffered().await;
        crate::metrics::flushed("postgres", started, &written);
        written
    }

    /// The flush itself.
    async fn write_buffered(&self) -> Result<usize, StoreError> {
        let written = self.flush_uses().await?;
        // Reuse detection's revocations, each family audited.
        let revocations = self.cache.take_revocations();
        if !revocations.is_empty() {
            let roots = revocations.clone();
            let revoked = self
                .write(move |tx| {
                    Box::pin(
                        async move { engine::revoke_reused(tx, &roots, Timestamp::now()).await },
                    )
                })
                .await;
            if let Err(e) = revoked {
                self.cache.unrevoked(revocations);
                return Err(e);
            }
        }
        Ok(written)
    }

    /// Writes the buffered uses and the audit entries the request path
    /// noted, in one transaction.
    async fn flush_uses(&self) -> Result<usize, StoreError> {
        let events = self.cache.take_audit();
        let batch = self.cache.take_uses();
        if batch.is_empty() && events.is_empty() {
            self.cache.flushed(batch);
            return Ok(0);
        }
        let uses = batch.sorted();
        let digests: Vec<&[u8]> = uses.iter().map(|(d, _)| d.as_bytes().as_slice()).collect();
        let last: Vec<i64> = uses.iter().map(|(_, t)| secs(t.last_used_at)).collect();
        let expires: Vec<i64> = uses.iter().map(|(_, t)| secs(t.expires_at)).collect();
        let seen_in_batch = uses.iter().any(|(_, t)| !t.last_addresses.is_empty());
        let written = async {
            self.cache
                .hooks
                .at(Point::FlushWrite)
                .map_err(PgError::Injected)?;
            let mut writer = self.writer().await?;
            let Some(client) = writer.as_mut() else {
                return Err(PgError::Stopped);
            };
            let run = async {
                let txn = begin(client).await?;
                // Rows locked in digest order (the batch is sorted), so two
                // replicas flushing the same tokens wait for each other
                // rather than deadlock; an UPDATE alone locks in whatever
                // order its plan visits the rows.
                let locked = txn
                    .query(
                        "SELECT digest, last_addresses FROM pat_tokens WHERE digest = ANY($1)
                         ORDER BY digest FOR UPDATE",
                        &[&digests],
                    )
                    .await?;
                // The client addresses, merged here under the row locks by
                // the one rule (`LastAddresses`), space-separated for the
                // statement (NULL: unchanged).
                let seen = if seen_in_batch {
                    addresses_after(&uses, &locked)?
                } else {
                    vec![None; uses.len()]
                };
                let n = txn
                    .execute(
                        "UPDATE pat_tokens AS t SET
                             last_used_at = GREATEST(COALESCE(t.last_used_at, u.last), u.last),
                             expires_at = CASE WHEN t.sliding
                                               THEN GREATEST(t.expires_at, LEAST(
                                                   u.expires, COALESCE(t.not_after, u.expires)))
                                               ELSE t.expires_at END,
                             last_addresses = COALESCE(string_to_array(u.seen, ' '),
                                                       t.last_addresses)
                         FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::text[])
                             AS u(digest, last, expires, seen)
                         WHERE t.digest = u.digest",
                        &[&digests, &last, &expires, &seen],
                    )
                    .await?;
                // Last, after every row lock: see `audit_lock`.
                // What a flush whose answer was lost (a timeout after it
                // committed) queued again is written once: looked for under
                // the lock, which that commit, if still under way, holds.
                if !events.is_empty() {
                    audit_lock(&txn, self.timeout).await?;
                    let fresh = not_logged(&txn, &events).await?;
                    if !fresh.is_empty() {
                        audit_rows(&txn, &fresh).await?;
                    }
                }
                txn.commit().await?;
                Ok::<_, PgError>(n)
            };
            self.timed_pg(run).await
        }
        .await;
        match written {
            Ok(n) => {
                if let Err(lost) = self.cache.hooks.at(Point::FlushCommitted) {
                    // A test's commit whose answer was lost: handled as a
                    // timeout after the commit would be.
                    self.cache.unflushed(batch);
                    self.cache.unwritten_audit(events);
                    return Err(PgError::Injected(lost).into());
                }
                self.cache.flushed(batch);
                Ok(n as usize)
            }
            Err(e) => {
                self.cache.unflushed(batch);
                self.cache.unwritten_audit(events);
                Err(e.into())
            }
        }
    }

    /// Rows as records, with this replica's buffered uses merged in.
    fn records(&self, rows: &[Row], digest_column: usize) -> Result<Vec<TokenInfo>, StoreError> {
        rows.iter()
            .map(|row| {
                let mut info = record(row)?;
                self.cache
                    .overlay(&digest_of(row, digest_column)?, &mut info);
                Ok(info)
            })
            .collect()
    }
}

/// Each use's client addresses merged over its row's (`locked`: `digest,
/// last_addresses`), as the flush's `seen` parameter: space-separated
/// `ADDR@SECONDS`, `None` where nothing changes (no address in the use, or
/// none newer, or the row gone).
fn addresses_after(
    uses: &[(TokenDigest, crate::backend::cache::Touch)],
    locked: &[Row],
) -> Result<Vec<Option<String>>, PgError> {
    let mut stored = std::collections::HashMap::with_capacity(locked.len());
    for row in locked {
        let list = match row.get::<_, Option<Vec<String>>>(1) {
            Some(column) => rows::last_addresses(&column)?,
            None => crate::LastAddresses::EMPTY,
        };
        stored.insert(digest_of(row, 0)?, list);
    }
    Ok(uses
        .iter()
        .map(|(digest, touch)| {
            let before = stored.get(digest)?;
            let after = before.merged(&touch.last_addresses);
            (after != *before)
                .then(|| rows::last_addresses_column(&after))
                .flatten()
                .map(|all| all.join(" "))
        })
        .collect())
}

impl Shared {
    /// Makes `catalog` the one lookups resolve with, and forgets every
    /// cached record (what each token holds may have changed; unwritten
    /// uses are kept). Called under the writer's lock.
    fn publish(&self, catalog: Catalog) {
        self.catalog.set(catalog);
        self.cache.forget(None);
    }
}

impl engine::lookup::Reads for Shared {
    fn catalog(&self) -> Arc<Catalog> {
        self.catalog.get()
    }

    async fn read(&self, digest: &TokenDigest) -> Result<Found, StoreError> {
        Ok(self.read_digest(digest).await?)
    }

    async fn owner(&self, current: &TokenDigest) -> String {
        // The read joined the owner already; asked only when it did not.
        let key: &[u8] = current.as_bytes();
        let found = async {
            let client = self.client().await?;
            self.timed(
                client.query_opt("SELECT username FROM pat_tokens WHERE digest = $1", &[&key]),
            )
            .await
        };
        match found.await {
            Ok(Some(row)) => row.get(0),
            _ => String::new(),
        }
    }

    async fn reuse_family(&self, id: TokenId) -> Result<Option<Vec<TokenDigest>>, StoreError> {
        let client = self.client().await?;
        let policy = self.timed(Shared::policy_in(&*client)).await?;
        if policy.on_reuse != crate::OnReuse::Revoke {
            return Ok(None);
        }
        let family = self.timed_pg(family::descendants(&client, id)).await?;
        Ok(Some(family.into_iter().map(|m| m.digest).collect()))
    }
}

impl Verifier for PgStore {
    fn verify(&self, lookup: Lookup<'_>) -> Verification {
        let shared = &self.shared;
        match shared.cache.hit(
            lookup.digest(),
            lookup.user(),
            lookup.origin(),
            lookup.now(),
        ) {
            Ok(result) => Verification::Ready(result),
            Err(miss) => {
                let (digest, user, client, now) = (
                    *lookup.digest(),
                    lookup.user().map(str::to_owned),
                    lookup.client(),
                    lookup.now(),
                );
                // The rate is counted in the task; the identity says so
                // to the gate, which would count it again otherwise.
                let detached = lookup.admission().map(Admission::detach);
                let shared = shared.clone();
                let (tx, rx) = tokio::sync::oneshot::channel();
                self.handle().spawn(async move {
                    let cache = &shared.cache;
                    let admission = detached.as_ref().map(|d| d.admission());
                    let origin = Origin::from(client).admitted_by(admission.as_ref());
                    let found = engine::lookup::lookup(
                        &*shared,
                        cache,
                        miss,
                        digest,
                        user.as_deref(),
                        origin,
                        now,
                    )
                    .await;
                    let counted = admission.as_ref().is_some_and(Admission::counted);
                    let _ = tx.send(found.map(|identity| identity.rate_counted(counted)));
                });
                Verification::pending(async move {
                    rx.await
                        .unwrap_or_else(|_| Err(AuthError::Store(PgError::Stopped.into())))
                })
            }
        }
    }

    #[inline]
    fn verify_cached(&self, lookup: Lookup<'_>) -> Option<Result<Identity, AuthError>> {
        self.shared.cache.hit_record(
            lookup.digest(),
            lookup.user(),
            lookup.origin(),
            lookup.now(),
        )
    }

    /// One transaction on the writer connection: the row locked (`FOR
    /// UPDATE`), so that replicas spending the same token's uses take
    /// turns, and committed before the answer. Only tokens with a quota
    /// pay it.
    fn spend(&self, identity: Identity, now: Timestamp) -> Verification {
        let shared = self.shared.clone();
        let (id, client) = (identity.token_id(), identity.client());
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.handle().spawn(async move {
            let said = shared
                .write(move |tx| Box::pin(engine::spend(tx, id, client, now)))
                .await;
            let _ = tx.send(said);
        });
        Verification::pending(async move {
            let said = rx.await.unwrap_or_else(|_| Err(PgError::Stopped.into()));
            crate::backend::spent(identity, said)
        })
    }

    #[inline]
    fn prefixes(&self) -> &Prefixes {
        &self.shared.prefixes
    }

    fn flush(&self) -> Result<usize, StoreError> {
        PgStore::flush(self)
    }
}
