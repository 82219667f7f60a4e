//! The options every caching store shares (redb's [`StoreBuilder`] and
//! PostgreSQL's `PgStoreBuilder`): their defaults, and the builder methods
//! and their documentation, written once.
//!
//! [`StoreBuilder`]: crate::StoreBuilder

use std::time::Duration;

use crate::backend::{DEFAULT_CACHE_CAPACITY, DEFAULT_FLUSH_INTERVAL};
use crate::model::audit::DEFAULT_AUDIT_RETENTION;
use crate::model::prefix::Prefix;

/// How a store caches records, buffers uses and keeps its audit log.
#[derive(Clone, Debug)]
pub(crate) struct StoreOptions {
    /// How often buffered uses are written; `None`: only by `flush`.
    pub(crate) flush_interval: Option<Duration>,
    /// Token records kept in memory at most (0: none).
    pub(crate) cache_capacity: usize,
    /// How long `prune` keeps audit log entries.
    pub(crate) audit_retention: Duration,
    /// The token prefix of a store created by this open.
    pub(crate) prefix: Prefix,
    /// The permissions the service declares, written into the catalog.
    pub(crate) permissions: Vec<crate::model::permission::PermissionDef>,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            flush_interval: Some(DEFAULT_FLUSH_INTERVAL),
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            audit_retention: DEFAULT_AUDIT_RETENTION,
            prefix: Prefix::DEFAULT,
            permissions: Vec::new(),
        }
    }
}

/// The builder methods of [`StoreOptions`], for a builder `$builder` with a
/// field `options` whose store `$store` has a `flush` method.
macro_rules! store_options {
    ($builder:ident, $store:ident) => {
        /// How often a background task writes buffered token uses (sliding
        /// refreshes and last-use times) in one transaction (default
        /// [`DEFAULT_FLUSH_INTERVAL`](crate::DEFAULT_FLUSH_INTERVAL), 1 s).
        /// A crash loses at most this much refresh information, never a
        /// token.
        pub fn flush_interval(mut self, every: std::time::Duration) -> $builder {
            self.options.flush_interval = Some(every);
            self
        }

        #[doc = concat!(
                    "No background task: buffered uses are written only by [`", stringify!($store),
                    "::flush`] and when the store is dropped. For tests and short-lived tools."
                )]
        pub fn manual_flush(mut self) -> $builder {
            self.options.flush_interval = None;
            self
        }

        /// How many token records to keep in memory at most (default
        /// [`DEFAULT_CACHE_CAPACITY`](crate::DEFAULT_CACHE_CAPACITY), about
        /// 300 bytes each for typical names; 0 keeps none, and uses are
        /// still buffered). Past it, records not used recently are evicted
        /// (a CLOCK sweep) and a request for an evicted token reads storage
        /// again. The same capacity bounds the memory of digests that are
        /// no token's, about 50 bytes each.
        pub fn cache_capacity(mut self, records: usize) -> $builder {
            self.options.cache_capacity = records;
            self
        }

        /// How long `prune` keeps audit log entries (default
        /// [`DEFAULT_AUDIT_RETENTION`](crate::DEFAULT_AUDIT_RETENTION), 90
        /// days).
        pub fn audit_retention(mut self, keep: std::time::Duration) -> $builder {
            self.options.audit_retention = keep;
            self
        }

        /// The token prefix of a store this open creates (default
        /// [`Prefix::DEFAULT`](crate::Prefix::DEFAULT), `pat`): every token
        /// it makes reads `<prefix>_…`, so that secret scanners can tell
        /// them from other services' tokens. A store that exists keeps its
        /// own, whatever this says: change it with
        /// [`Admin::set_prefix`](crate::Admin::set_prefix) (`pat-cli prefix
        /// set`), which keeps the tokens of the former ones working.
        pub fn prefix(mut self, prefix: crate::Prefix) -> $builder {
            self.options.prefix = prefix;
            self
        }

        /// Permissions the service knows (its scopes: `repo:read`, `api`),
        /// written into the store's catalog when it opens, so that the CLI,
        /// the panel and every replica know them too. Added or updated,
        /// audited when anything changed
        /// ([`Admin::define_permissions`](crate::Admin::define_permissions));
        /// permissions the catalog has beyond these are kept (remove them
        /// with `pat-cli scopes remove`). A definition the catalog refuses
        /// (a cycle, an implied name it lacks) fails the open.
        pub fn permissions(
            mut self,
            defs: impl IntoIterator<Item = crate::PermissionDef>,
        ) -> $builder {
            self.options.permissions.extend(defs);
            self
        }
    };
}
pub(crate) use store_options;

/// What a caching store tells about its cache (in an `impl` block of a
/// store whose field `$field` holds the [`Cache`](crate::backend::cache::Cache)
/// as `cache`), written once for redb and PostgreSQL.
macro_rules! cache_accessors {
    ($field:ident) => {
        /// How many tokens have uses buffered in memory, not written yet.
        pub fn pending_uses(&self) -> usize {
            self.$field.cache.pending()
        }

        /// How many token records are cached in memory.
        pub fn cached_records(&self) -> usize {
            self.$field.cache.len()
        }

        /// How many digests are remembered as no token's (never issued,
        /// revoked or pruned): presented again, they are refused without a
        /// read. At most the cache capacity; none with the cache off.
        pub fn cached_unknown(&self) -> usize {
            self.$field.cache.unknown_len()
        }

        /// The store's failpoints, for the race tests (feature `failpoints`).
        #[cfg(any(test, feature = "failpoints"))]
        #[doc(hidden)]
        pub fn failpoints(&self) -> std::sync::Arc<crate::testing::failpoints::Failpoints> {
            self.$field.cache.hooks.get()
        }

        /// The sizes of the cache's maps and lists (feature `failpoints`).
        #[cfg(any(test, feature = "failpoints"))]
        #[doc(hidden)]
        pub fn cache_stats(&self) -> crate::testing::failpoints::CacheStats {
            self.$field.cache.stats()
        }
    };
}
pub(crate) use cache_accessors;
