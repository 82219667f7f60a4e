//! The PostgreSQL backend (feature `postgres`): one token store for a fleet
//! of replicas.

mod family;
mod schema;
mod tx;

use std::fmt;
use std::future::Future;
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;
use tokio_postgres::{Client, NoTls, Row};

use self::tx::PgTx;
use crate::backend::admin::Audited;
use crate::backend::cache::Cache;
use crate::backend::engine;
use crate::backend::engine::lookup::Found;
use crate::backend::options::{StoreOptions, cache_accessors, store_options};
use crate::backend::{Lookup, Verification, Verifier};
use crate::error::{AuthError, BackendError, OpenError, StoreError};
use crate::model::audit::{AuditAction, AuditEntry};
use crate::model::expiry::Expiry;
use crate::model::policy::Policy;
use crate::model::record::{CreatedToken, NewToken, Rotation, TokenInfo};
use crate::model::scope::{Scope, Scopes};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};
use crate::testing::failpoints::Point;

pub use schema::SCHEMA_VERSION;

/// The future of an engine operation in a [`PgTx`], boxed so that
/// [`Shared::write`] can take any of them.
type TxFuture<'t, T> = std::pin::Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 't>>;

type Connection =
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>;

/// Defaults of [`PgStoreBuilder`].
const DEFAULT_POOL: usize = 4;
const DEFAULT_FRESH_FOR: Duration = Duration::from_secs(1);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_PRUNE_MARGIN: Duration = Duration::from_secs(5);

/// Why the database failed, inside the crate; turned into [`OpenError`] or
/// [`StoreError`] at the edges.
#[derive(Debug)]
pub(crate) enum PgError {
    Db(tokio_postgres::Error),
    Timeout,
    Newer {
        found: i64,
    },
    Foreign(String),
    Data(String),
    Stopped,
    /// A test's failpoint.
    Injected(crate::testing::failpoints::Injected),
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The driver's messages name the server and the problem, never
            // the password.
            PgError::Db(e) => write!(f, "{}", crate::error::chain(e)),
            PgError::Timeout => f.write_str("the database did not answer in time"),
            PgError::Newer { found } => write!(f, "schema version {found}"),
            PgError::Foreign(why) => write!(f, "not a pat schema: {why}"),
            PgError::Data(why) => write!(f, "damaged row: {why}"),
            PgError::Stopped => f.write_str("the store is closing"),
            PgError::Injected(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PgError {}

fn db_error(e: tokio_postgres::Error) -> PgError {
    PgError::Db(e)
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> PgError {
        PgError::Db(e)
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> StoreError {
        match e {
            PgError::Data(why) => StoreError::Corrupt(why),
            e => StoreError::Storage(BackendError::new(e)),
        }
    }
}

/// `postgres://user@host:port/db`: the connection string as it may be
/// shown, without a password (the original is never printed).
fn shown(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or("");
    let host = config
        .get_hosts()
        .first()
        .map_or_else(String::new, |h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        });
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("");
    crate::printable(&format!("postgres://{user}@{host}:{port}/{db}")).into_owned()
}

/// Options for [`PgStore`].
#[derive(Clone, Debug)]
pub struct PgStoreBuilder {
    pool: usize,
    fresh_for: Duration,
    options: StoreOptions,
    timeout: Duration,
    prune_margin: Duration,
    listen: bool,
}

impl Default for PgStoreBuilder {
    fn default() -> PgStoreBuilder {
        PgStoreBuilder {
            pool: DEFAULT_POOL,
            fresh_for: DEFAULT_FRESH_FOR,
            options: StoreOptions::default(),
            timeout: DEFAULT_TIMEOUT,
            prune_margin: DEFAULT_PRUNE_MARGIN,
            listen: true,
        }
    }
}

impl PgStoreBuilder {
    /// Connections for queries (default 4; each pipelines many queries).
    pub fn pool_size(mut self, connections: usize) -> PgStoreBuilder {
        self.pool = connections.max(1);
        self
    }

    /// How long a cached record is used before it is read again (default
    /// 1 s): the bound on how late this replica learns of a change made by
    /// another one when the change's notification is lost.
    pub fn staleness(mut self, bound: Duration) -> PgStoreBuilder {
        self.fresh_for = bound;
        self
    }

    store_options!(PgStoreBuilder, PgStore);

    /// How long a query may take before the request is answered 503
    /// (default 2 s).
    pub fn query_timeout(mut self, timeout: Duration) -> PgStoreBuilder {
        self.timeout = timeout;
        self
    }

    /// How long after its expiry a token is kept by `prune` (default 5 s),
    /// so that a use another replica has buffered but not written yet can
    /// still land. 0 for a single process.
    pub fn prune_margin(mut self, margin: Duration) -> PgStoreBuilder {
        self.prune_margin = margin;
        self
    }

    /// Whether to listen for other replicas' changes (default yes). Off
    /// where LISTEN cannot work (PgBouncer in transaction mode) or is not
    /// worth a connection (the CLI): other replicas' changes are then seen
    /// when a cached record outlives the [staleness](PgStoreBuilder::staleness)
    /// bound, which holds either way.
    pub fn listen(mut self, listen: bool) -> PgStoreBuilder {
        self.listen = listen;
        self
    }

    /// Connects to the database at `url` (`postgres://…`), creating pat's
    /// schema on first use.
    pub fn connect(&self, url: &str) -> Result<PgStore, OpenError> {
        let config = tokio_postgres::Config::from_str(url).map_err(|e| OpenError::Database {
            database: "the connection string".into(),
            source: BackendError::new(e),
        })?;
        let database = shown(&config);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pat-postgres")
            .enable_all()
            .build()
            .map_err(|e| OpenError::Database {
                database: database.clone(),
                source: BackendError::new(e),
            })?;
        let handle = rt.handle().clone();
        let runtime = crate::backend::block_on::OwnedRuntime::new(rt);
        let shared = Arc::new(Shared {
            config,
            database: database.clone(),
            pool: (0..self.pool).map(|_| AsyncMutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            writer: AsyncMutex::new(None),
            // The staleness bound holds with or without LISTEN: without it
            // (PgBouncer, tools) it is the only way other replicas' writes
            // are seen.
            cache: Cache::new(self.options.cache_capacity, Some(self.fresh_for)),
            timeout: self.timeout,
            prune_margin: self.prune_margin,
            audit_retention: self.options.audit_retention,
            stop_flushing: tokio::sync::Notify::new(),
            listening: AtomicBool::new(false),
        });
        let open_error = |e: PgError| match e {
            PgError::Newer { found } => OpenError::NewerSchema {
                database: database.clone(),
                found,
                supported: SCHEMA_VERSION,
            },
            e => OpenError::Database {
                database: database.clone(),
                source: BackendError::new(e),
            },
        };
        // Waited for on a std channel, not `block_on`: the caller may be
        // inside another runtime (a server's), where `block_on` panics.
        let setup = shared.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        handle.spawn(async move {
            let result = async {
                let (mut client, connection) = setup.connect().await?;
                tokio::spawn(connection);
                schema::ensure(&mut client).await
            }
            .await;
            let _ = tx.send(result);
        });
        rx.recv()
            .unwrap_or(Err(PgError::Stopped))
            .map_err(open_error)?;
        let mut store = PgStore {
            shared: shared.clone(),
            handle,
            flusher: None,
            _runtime: runtime,
        };
        if self.listen {
            store.handle().spawn(listen(Arc::downgrade(&shared)));
            // A cache is safe only once changes are heard: wait (briefly)
            // for the listener; until then the staleness bound still holds.
            let deadline = std::time::Instant::now() + self.timeout;
            while !shared.listening.load(Ordering::Acquire) && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if let Some(every) = self.options.flush_interval {
            let flusher = store
                .handle()
                .spawn(flush_every(Arc::downgrade(&shared), every));
            store.flusher = Some(flusher);
        }
        Ok(store)
    }
}

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
    /// The periodic flush, stopped (and waited for) before the last one.
    flusher: Option<tokio::task::JoinHandle<()>>,
    // Last: dropped after the final flush in `Drop`.
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
        if let Some(flusher) = self.flusher.take() {
            self.shared.stop_flushing.notify_one();
            let _ = self.block(async move {
                let _ = flusher.await;
                Ok(())
            });
        }
        if let Err(e) = self.flush() {
            tracing::warn!(error = %crate::error::chain(&e), "could not write buffered token uses");
        }
    }
}

const COLUMNS: &str = "id, username, label, created_at, created_by, sliding, expires_at, \
                       window_secs, max_lifetime_secs, last_used_at, scopes, rotated_at, \
                       parent_id, lifetime_from, not_after, previous_until";

/// Where statements put the digest after [`COLUMNS`] (`SELECT {COLUMNS}, digest`).
const DIGEST: usize = 16;

fn secs(t: Timestamp) -> i64 {
    t.as_unix_secs() as i64
}

fn timestamp(v: i64, what: &str) -> Result<Timestamp, PgError> {
    u64::try_from(v)
        .ok()
        .and_then(Timestamp::from_unix_secs)
        .ok_or_else(|| PgError::Data(format!("{what} out of range")))
}

fn duration(v: Option<i64>, what: &str) -> Result<Option<Duration>, PgError> {
    v.map(|s| {
        u64::try_from(s)
            .map(Duration::from_secs)
            .map_err(|_| PgError::Data(format!("{what} is negative")))
    })
    .transpose()
}

/// A row (in [`COLUMNS`] order) as a record.
fn record(row: &Row) -> Result<TokenInfo, PgError> {
    let expires_at = timestamp(row.get(6), "expires_at")?;
    let expiry = if row.get::<_, bool>(5) {
        Expiry::Sliding {
            window: duration(row.get(7), "window")?
                .ok_or_else(|| PgError::Data("sliding token without a window".into()))?,
            max_lifetime: duration(row.get(8), "max lifetime")?,
            expires_at,
        }
    } else {
        Expiry::Hard { expires_at }
    };
    let mut info = TokenInfo::new(
        TokenId::from_u64(row.get::<_, i64>(0) as u64),
        row.get::<_, String>(1),
        timestamp(row.get(3), "created_at")?,
        expiry,
    );
    info.label = row.get(2);
    info.created_by = row.get(4);
    info.last_used_at = row
        .get::<_, Option<i64>>(9)
        .map(|v| timestamp(v, "last_used_at"))
        .transpose()?;
    info.rotated_at = row
        .get::<_, Option<i64>>(11)
        .map(|v| timestamp(v, "rotated_at"))
        .transpose()?;
    let scopes: Vec<String> = row.get(10);
    info.scopes = scopes
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<Scopes, _>>()
        .map_err(|e| PgError::Data(e.to_string()))?;
    let opt_time = |i: usize, what: &str| {
        row.get::<_, Option<i64>>(i)
            .map(|v| timestamp(v, what))
            .transpose()
    };
    info.parent = row
        .get::<_, Option<i64>>(12)
        .map(|v| TokenId::from_u64(v as u64));
    info.lifetime_from = timestamp(row.get(13), "lifetime_from")?;
    info.not_after = opt_time(14, "not_after")?;
    info.previous_until = opt_time(15, "previous_until")?;
    Ok(info)
}

fn digest_of(row: &Row, column: usize) -> Result<TokenDigest, PgError> {
    let bytes: Vec<u8> = row.get(column);
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| PgError::Data("a digest is not 32 bytes".into()))?;
    Ok(TokenDigest::from_bytes(array))
}

impl Shared {
    async fn connect(&self) -> Result<(Client, Connection), PgError> {
        let connecting = self.config.connect(NoTls);
        match tokio::time::timeout(self.timeout, connecting).await {
            Ok(Ok(pair)) => Ok(pair),
            Ok(Err(e)) => Err(PgError::Db(e)),
            Err(_) => Err(PgError::Timeout),
        }
    }

    /// A client of the pool, connected now if its slot is empty or broken.
    async fn client(&self) -> Result<Arc<Client>, PgError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len();
        let mut slot = self.pool[i].lock().await;
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
            user: row.get::<_, Option<String>>(DIGEST + 3).unwrap_or_default(),
        })
    }

    /// Writes the buffered uses and the audit entries the request path
    /// noted, in one transaction.
    async fn flush(&self) -> Result<usize, StoreError> {
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
                for e in &events {
                    audit_in(&txn, e).await?;
                }
                // Rows locked in digest order (the batch is sorted), so two
                // replicas flushing the same tokens wait for each other
                // rather than deadlock; an UPDATE alone locks in whatever
                // order its plan visits the rows.
                txn.execute(
                    "SELECT 1 FROM pat_tokens WHERE digest = ANY($1) ORDER BY digest FOR UPDATE",
                    &[&digests],
                )
                .await?;
                let n = txn
                    .execute(
                        "UPDATE pat_tokens AS t SET
                             last_used_at = GREATEST(COALESCE(t.last_used_at, u.last), u.last),
                             expires_at = CASE WHEN t.sliding
                                               THEN GREATEST(t.expires_at, LEAST(
                                                   u.expires, COALESCE(t.not_after, u.expires)))
                                               ELSE t.expires_at END
                         FROM unnest($1::bytea[], $2::bigint[], $3::bigint[])
                             AS u(digest, last, expires)
                         WHERE t.digest = u.digest",
                        &[&digests, &last, &expires],
                    )
                    .await?;
                txn.commit().await?;
                Ok(n)
            };
            self.timed(run).await
        }
        .await;
        match written {
            Ok(n) => {
                let _ = self.cache.hooks.at(Point::FlushCommitted);
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

/// A transaction at READ COMMITTED, whatever the server's or the role's
/// `default_transaction_isolation` says: each statement sees what committed
/// before it, so a count taken after a lock sees every write the lock waited
/// for (at REPEATABLE READ the first statement's snapshot would hide them).
async fn begin(
    client: &mut Client,
) -> Result<tokio_postgres::Transaction<'_>, tokio_postgres::Error> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
}

/// Appends `entry` to the audit log inside `txn`.
async fn audit_in(
    txn: &tokio_postgres::Transaction<'_>,
    entry: &AuditEntry,
) -> Result<(), tokio_postgres::Error> {
    txn.execute(
        "INSERT INTO pat_audit (at, action, token_id, username, actor, outcome)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &secs(entry.at),
            &entry.action.as_str(),
            &entry.token_id.map(|id| id.as_u64() as i64),
            &entry.user,
            &entry.actor,
            &entry.outcome,
        ],
    )
    .await?;
    Ok(())
}

/// Tells the other replicas that these tokens changed, inside `txn`. A
/// payload holds at most 8,000 bytes: past a hundred tokens, replicas drop
/// their whole cache instead.
async fn notify(
    txn: &tokio_postgres::Transaction<'_>,
    digests: &[TokenDigest],
) -> Result<(), tokio_postgres::Error> {
    if digests.is_empty() {
        return Ok(());
    }
    let payload = if digests.len() > 100 {
        "*".to_owned()
    } else {
        digests.iter().map(hex).collect::<Vec<_>>().join(",")
    };
    txn.execute("SELECT pg_notify($1, $2)", &[&schema::CHANNEL, &payload])
        .await?;
    Ok(())
}

fn hex(d: &TokenDigest) -> String {
    d.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<TokenDigest> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(TokenDigest::from_bytes(out))
}

/// The listener: evicts what other replicas change; on every (re)connect,
/// drops the whole cache, since notifications may have been missed.
async fn listen(shared: std::sync::Weak<Shared>) {
    use futures_util::StreamExt as _;
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(s) = shared.upgrade() else { return };
        let connected = s.connect().await;
        drop(s);
        let (client, mut connection) = match connected {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "database listener cannot connect; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        tokio::spawn(async move {
            let mut messages = std::pin::pin!(messages);
            while let Some(m) = messages.next().await {
                match m {
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                        if tx.send(n.payload().to_owned()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        if client
            .batch_execute(&format!("LISTEN {}", schema::CHANNEL))
            .await
            .is_err()
        {
            continue;
        }
        backoff = Duration::from_millis(100);
        {
            let Some(s) = shared.upgrade() else { return };
            s.cache.forget(None);
            s.listening.store(true, Ordering::Release);
        }
        while let Some(payload) = rx.recv().await {
            let Some(s) = shared.upgrade() else { return };
            if payload == "*" {
                s.cache.forget(None);
            } else {
                let digests: Vec<TokenDigest> = payload.split(',').filter_map(unhex).collect();
                s.cache.forget(Some(&digests));
            }
        }
        // The connection is gone: until the next one listens, nothing cached
        // can be trusted beyond the staleness bound; drop it all now.
        let Some(s) = shared.upgrade() else { return };
        s.listening.store(false, Ordering::Release);
        s.cache.forget(None);
        tracing::warn!("database listener lost its connection; reconnecting");
    }
}

async fn flush_every(shared: std::sync::Weak<Shared>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        {
            let Some(s) = shared.upgrade() else { return };
            tokio::select! {
                biased;
                // Stopped between two flushes, never inside one.
                () = s.stop_flushing.notified() => return,
                _ = ticks.tick() => {}
            }
        }
        let Some(s) = shared.upgrade() else { return };
        if let Err(e) = s.flush().await {
            tracing::warn!(error = %crate::error::chain(&e), "could not write buffered token uses");
        }
    }
}

impl engine::lookup::Reads for Shared {
    async fn read(&self, digest: &TokenDigest) -> Result<Found, StoreError> {
        Ok(self.read_digest(digest).await?)
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
        match shared
            .cache
            .hit(lookup.digest(), lookup.user(), lookup.now())
        {
            Ok(result) => Verification::Ready(result),
            Err(miss) => {
                let (digest, user, now) = (
                    *lookup.digest(),
                    lookup.user().map(str::to_owned),
                    lookup.now(),
                );
                let shared = shared.clone();
                let (tx, rx) = tokio::sync::oneshot::channel();
                self.handle().spawn(async move {
                    let cache = &shared.cache;
                    let found =
                        engine::lookup::lookup(&*shared, cache, miss, digest, user.as_deref(), now);
                    let _ = tx.send(found.await);
                });
                Verification::pending(async move {
                    rx.await
                        .unwrap_or_else(|_| Err(AuthError::Store(PgError::Stopped.into())))
                })
            }
        }
    }

    fn flush(&self) -> Result<usize, StoreError> {
        PgStore::flush(self)
    }
}

crate::backend::admin::admin_from_audited!(PgStore);

impl Audited for PgStore {
    fn create_by(
        &self,
        new: &NewToken,
        now: Timestamp,
        actor: &str,
    ) -> Result<CreatedToken, StoreError> {
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

    fn list_tokens(
        &self,
        user: Option<&str>,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        let shared = self.shared.clone();
        let user = user.map(str::to_owned);
        let mut out = self.block(async move {
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
        out.retain(|i| include_expired || !i.is_expired(now));
        out.sort_by_key(|i| (i.created_at, i.id));
        Ok(out)
    }

    fn find_token(
        &self,
        digest: &TokenDigest,
        now: Timestamp,
    ) -> Result<Option<TokenInfo>, StoreError> {
        let shared = self.shared.clone();
        let digest = *digest;
        self.block(async move { engine::lookup::find(&*shared, &shared.cache, &digest, now).await })
    }

    fn get_token(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
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

    fn rotate_by(
        &self,
        id: TokenId,
        rotation: &Rotation,
        now: Timestamp,
        actor: &str,
    ) -> Result<CreatedToken, StoreError> {
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

    fn revoke_by(&self, id: TokenId, actor: &str) -> Result<TokenInfo, StoreError> {
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

    fn descendants_of(&self, id: TokenId) -> Result<Vec<TokenInfo>, StoreError> {
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

    fn revoke_user_by(&self, user: &str, actor: &str) -> Result<usize, StoreError> {
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

    fn prune_by(&self, now: Timestamp, actor: &str) -> Result<usize, StoreError> {
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
            for row in &rows {
                let mut info = record(row)?;
                let digest = digest_of(row, DIGEST)?;
                shared.cache.overlay(&digest, &mut info);
                let margin = Duration::from_secs(margin as u64);
                if info.expiry.expires_at().saturating_add(margin) <= now {
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
                    vec![AuditEntry::new(
                        now,
                        AuditAction::Prune,
                        None,
                        "",
                        &*actor,
                        AuditEntry::count_outcome(rows.len()),
                    )]
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
            let horizon = now
                .as_unix_secs()
                .saturating_sub(shared.audit_retention.as_secs()) as i64;
            shared
                .timed(client.execute("DELETE FROM pat_audit WHERE at < $1", &[&horizon]))
                .await?;
            Ok(pruned)
        })
    }

    fn get_policy(&self) -> Result<Policy, StoreError> {
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

    fn set_policy_by(&self, policy: Policy, actor: &str) -> Result<(), StoreError> {
        let shared = self.shared.clone();
        let actor = actor.to_owned();
        self.block(async move { shared.set_policy(policy, &actor).await })
    }

    fn read_audit(
        &self,
        since: Timestamp,
        user: Option<&str>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let shared = self.shared.clone();
        let user = user.map(str::to_owned);
        self.block(async move {
            let client = shared.client().await?;
            let sql = "SELECT at, action, token_id, username, actor, outcome FROM pat_audit \
                       WHERE at >= $1 AND ($2::text IS NULL OR username = $2) ORDER BY seq";
            let rows = shared
                .timed(client.query(sql, &[&secs(since), &user]))
                .await?;
            rows.iter()
                .map(|r| {
                    let action: String = r.get(1);
                    Ok(AuditEntry::new(
                        timestamp(r.get(0), "audit time")?,
                        AuditAction::from_name(&action).ok_or_else(|| {
                            PgError::Data(format!("unknown audit action {action}"))
                        })?,
                        r.get::<_, Option<i64>>(2)
                            .map(|v| TokenId::from_u64(v as u64)),
                        r.get::<_, String>(3),
                        r.get::<_, String>(4),
                        r.get::<_, String>(5),
                    ))
                })
                .collect::<Result<Vec<_>, PgError>>()
                .map_err(StoreError::from)
        })
    }
}

impl Shared {
    /// The writer connection, connected now if missing or broken.
    async fn writer(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, PgError> {
        let mut writer = self.writer.lock().await;
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
    async fn policy_in(
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
    async fn write<T: Send>(
        &self,
        op: impl for<'t> FnOnce(&'t mut PgTx<'_>) -> TxFuture<'t, T> + Send,
    ) -> Result<T, StoreError> {
        let mut writer = self.writer().await?;
        let Some(client) = writer.as_mut() else {
            return Err(PgError::Stopped.into());
        };
        let run = async {
            let txn = begin(client).await.map_err(PgError::Db)?;
            let mut tx = PgTx::new(&txn, &self.cache);
            let out = op(&mut tx).await?;
            let PgTx {
                deleted, changed, ..
            } = tx;
            let all: Vec<TokenDigest> = deleted.iter().chain(&changed).copied().collect();
            notify(&txn, &all).await.map_err(PgError::Db)?;
            txn.commit().await.map_err(PgError::Db)?;
            Ok::<_, StoreError>((out, deleted, changed))
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => {
                let (out, deleted, changed) = r?;
                self.cache.deleted(&deleted);
                if !changed.is_empty() {
                    self.cache.forget(Some(&changed));
                }
                Ok(out)
            }
            Err(_) => {
                self.cache.forget(None);
                Err(PgError::Timeout.into())
            }
        }
    }

    /// Replaces the policy's rows in one transaction.
    async fn set_policy(&self, policy: Policy, actor: &str) -> Result<(), StoreError> {
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
            let entry = AuditEntry::new(
                Timestamp::now(),
                AuditAction::SetPolicy,
                None,
                "",
                actor,
                policy.summary(),
            );
            audit_in(&txn, &entry).await?;
            txn.commit().await
        };
        self.timed(run).await.map_err(StoreError::from)
    }

    /// A statement that changes tokens (`… RETURNING …, digest`, the digest
    /// in column [`DIGEST`]), in a transaction that notifies the other replicas; the
    /// rows it returned, forgotten here too.
    async fn change(
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
            for entry in audit(&rows) {
                audit_in(&txn, &entry).await?;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::token::TokenSecret;

    #[test]
    fn digests_travel_as_hex() {
        let d = TokenSecret::generate().digest();
        assert_eq!(unhex(&hex(&d)), Some(d));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"g".repeat(64)), None);
    }

    #[test]
    fn connection_strings_are_shown_without_password() {
        let c = tokio_postgres::Config::from_str("postgres://alice:s3cret@db.internal:6543/pat")
            .unwrap();
        let s = shown(&c);
        assert_eq!(s, "postgres://alice@db.internal:6543/pat");
        assert!(!s.contains("s3cret"));
    }
}
