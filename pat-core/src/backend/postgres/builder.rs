//! [`PgStoreBuilder`]: the options of a PostgreSQL store, and connecting.

use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;

use super::{
    PgError, PgStore, Running, SCHEMA_VERSION, Shared, connect_to, flush_every, listen, schema,
};
use crate::backend::admin::Actor;
use crate::backend::cache::Cache;
use crate::backend::options::{StoreOptions, store_options};
use crate::error::{BackendError, OpenError};
use crate::model::permission::SharedCatalog;
use crate::model::prefix::Prefixes;

/// Defaults of [`PgStoreBuilder`].
pub(super) const DEFAULT_POOL: usize = 4;
pub(super) const DEFAULT_FRESH_FOR: Duration = Duration::from_secs(1);
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
pub(super) const DEFAULT_PRUNE_MARGIN: Duration = Duration::from_secs(5);

/// `postgres://user@host:port/db`: the connection string as it may be
/// shown, without a password (the original is never printed).
pub(super) fn shown(config: &tokio_postgres::Config) -> String {
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
        let (setup, timeout, prefix) = (config.clone(), self.timeout, self.options.prefix);
        let (tx, rx) = std::sync::mpsc::channel();
        handle.spawn(async move {
            let result = async {
                let (mut client, connection) = connect_to(&setup, timeout).await?;
                tokio::spawn(connection);
                schema::ensure(&mut client, prefix).await
            }
            .await;
            let _ = tx.send(result);
        });
        let (stored, catalog) = rx
            .recv()
            .unwrap_or(Err(PgError::Stopped))
            .map_err(open_error)?;
        // The database's own: what the builder said counts only for a new one.
        let prefixes =
            Prefixes::from_stored(&stored).map_err(|e| open_error(PgError::Data(e.to_string())))?;
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
            prefixes,
            catalog: SharedCatalog::default(),
            catalog_stale: AtomicBool::new(false),
        });
        shared.catalog.set(catalog);
        let mut store = PgStore {
            shared: shared.clone(),
            handle,
            actor: Actor::default(),
            running: Some(Running {
                flusher: None,
                _runtime: runtime,
            }),
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
            if let Some(running) = store.running.as_mut() {
                running.flusher = Some(flusher);
            }
        }
        if !self.options.permissions.is_empty() {
            crate::Admin::define_permissions(&store, &self.options.permissions)
                .map_err(|e| OpenError::Permissions(Box::new(e)))?;
        }
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_are_shown_without_password() {
        let c = tokio_postgres::Config::from_str("postgres://alice:s3cret@db.internal:6543/pat")
            .unwrap();
        let s = shown(&c);
        assert_eq!(s, "postgres://alice@db.internal:6543/pat");
        assert!(!s.contains("s3cret"));
    }
}
