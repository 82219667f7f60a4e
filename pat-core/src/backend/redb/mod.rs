//! The redb token store.

mod admin;
mod builder;
mod flush;
mod format;
pub(crate) mod socket;
pub(crate) mod sys;
mod tx;

pub(crate) mod codec;
mod open;
mod spender;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redb::{
    Database, MultimapTableDefinition, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    TableDefinition, TableError, WriteTransaction,
};

pub use self::builder::StoreBuilder;
use self::flush::Flusher;
use crate::backend::admin::Actor;
use crate::backend::block_on::run_ready;
use crate::backend::cache::Cache;
use crate::backend::engine;
use crate::backend::options::cache_accessors;
use crate::backend::redb::socket::AdminServer;
use crate::backend::{Lookup, Verification, Verifier};
use crate::error::{AuthError, BackendError, OpenError, StoreError};
use crate::model::audit::AuditEntry;
use crate::model::permission::{Catalog, SharedCatalog};
use crate::model::policy::Policy;
use crate::model::prefix::Prefixes;
use crate::model::rate::{Admission, uncounted};
use crate::model::record::{CreatedToken, Identity, NewToken, Origin, TokenInfo};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};

/// The store's on-disk format version, kept in the file. Bump it for any
/// change an older build would misread.
pub const FORMAT_VERSION: u64 = 5;

const FORMAT_KEY: &str = "format_version";
/// The key, in [`META`], of the current prefix's number in [`PREFIXES`].
const CURRENT_PREFIX_KEY: &str = "prefix_current";

/// Store-wide facts: the format version, the policy, the current prefix.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("pat_meta");
/// Every token prefix the store has had, numbered in the order it took them
/// (format 3).
const PREFIXES: TableDefinition<'_, u64, &str> = TableDefinition::new("pat_prefixes");
/// The catalog of named permissions: name -> definition (see
/// `codec::encode_permission`; format 4).
const PERMISSIONS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("pat_permissions");
/// Token records, keyed by the SHA-256 digest of the token.
const TOKENS: TableDefinition<'_, [u8; 32], &[u8]> = TableDefinition::new("pat_tokens");
/// Public id -> digest.
const BY_ID: TableDefinition<'_, u64, [u8; 32]> = TableDefinition::new("pat_by_id");
/// Secrets replaced by a rotation: digest -> (token id, Unix second from
/// which it is refused). Created by the first rotation; stores that never
/// rotated have no such table, which older builds ignore.
const RETIRED: TableDefinition<'_, [u8; 32], (u64, u64)> = TableDefinition::new("pat_retired");
/// The audit log: sequence number -> entry (see `codec::encode_audit`).
/// Created by the first entry.
const AUDIT: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("pat_audit");
/// Webhook name -> its delivery state (`Delivery`'s stored form). A table
/// an earlier build neither has nor reads: adding it changes no format.
const DELIVERIES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("pat_deliveries");
/// Expiry notice key (`Notice::key`) -> its token, for each notice written
/// (a table earlier builds neither have nor read).
const NOTICES: TableDefinition<'_, &str, u64> = TableDefinition::new("pat_notices");
/// User -> public ids.
const BY_USER: MultimapTableDefinition<'_, &str, u64> = MultimapTableDefinition::new("pat_by_user");
/// Parent id -> the ids of the tokens made with it (format 2).
const CHILDREN: MultimapTableDefinition<'_, u64, u64> =
    MultimapTableDefinition::new("pat_children");
/// Token id -> the digests its rotations retired (format 2).
const RETIRED_BY_ID: MultimapTableDefinition<'_, u64, [u8; 32]> =
    MultimapTableDefinition::new("pat_retired_by_id");

fn storage(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Storage(BackendError::new(e.into()))
}

/// Appends `entry` to the audit log inside `txn`.
fn audit_in(txn: &WriteTransaction, entry: &AuditEntry) -> Result<(), StoreError> {
    let mut audit = txn.open_table(AUDIT).map_err(storage)?;
    let next = audit
        .last()
        .map_err(storage)?
        .map_or(0, |(k, _)| k.value() + 1);
    audit
        .insert(next, codec::encode_audit(entry).as_slice())
        .map_err(storage)?;
    Ok(())
}

fn corrupt(e: String) -> StoreError {
    StoreError::Corrupt(e)
}

/// A token store in one redb file.
///
/// Open it once per process and share it (`Arc<Store>`): redb lets one
/// process at a time hold the file. Creation and revocation are durable when
/// they return.
///
/// A successful authentication records its use (the new sliding deadline and
/// `last_used_at`) in memory, with no I/O and no lock held across I/O; a
/// background thread writes all pending uses in one transaction every flush
/// interval, and the store writes the rest when dropped. Every read merges
/// the buffered uses, so a sliding token never looks expired because its
/// refresh is still in memory.
pub struct Store {
    inner: Arc<Inner>,
    /// Who the audit log records as making this handle's changes
    /// ([`Admin::acting_as`] makes a handle with another).
    actor: Actor,
    /// What the process's own handle runs, stopped when it is dropped;
    /// `None` in a handle acting as someone (and the admin socket's).
    running: Option<Running>,
}

/// The admin socket and the flush thread of an open store.
struct Running {
    flusher: Option<Flusher>,
    admin: Option<AdminServer>,
}

/// The state shared by the store, its flush thread and its admin socket.
pub(crate) struct Inner {
    db: Database,
    path: PathBuf,
    /// Records of tokens in use and their buffered uses; no lock is held
    /// across I/O.
    cache: Cache,
    /// Lookups that read the file (see [`Store::file_reads`]).
    file_reads: std::sync::atomic::AtomicU64,
    /// How long `prune` keeps audit entries.
    audit_retention: Duration,
    /// The store's token prefixes, as the request path reads them.
    prefixes: Prefixes,
    /// Held across storing a change of prefix and remembering it, so that
    /// two changes are remembered in the order they were stored.
    prefix_changes: std::sync::Mutex<()>,
    /// The catalog lookups resolve named permissions with: the file's.
    catalog: SharedCatalog,
    /// Held across storing a change of the catalog and publishing it.
    catalog_changes: std::sync::Mutex<()>,
    /// The thread that spends uses of quotas for the request path.
    spender: spender::Spender,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("actor", &&*self.actor)
            .field(
                "background_flush",
                &self.running.as_ref().is_some_and(|r| r.flusher.is_some()),
            )
            .field(
                "admin_socket",
                &self.running.as_ref().is_some_and(|r| r.admin.is_some()),
            )
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A handle on the same store whose changes are audited as made by
    /// `actor`; it runs nothing of its own, so dropping it stops nothing.
    fn acting(&self, actor: &str) -> Store {
        Store::acting_on(self.inner.clone(), actor)
    }

    /// A handle on `inner` acting as `actor` (the admin socket's, for each
    /// request: the peer's uid).
    pub(crate) fn acting_on(inner: Arc<Inner>, actor: &str) -> Store {
        Store {
            inner,
            actor: Actor::from(actor),
            running: None,
        }
    }

    /// Opens the store at `path` with the default options, creating it (mode
    /// 0600) if it does not exist.
    ///
    /// The directory must exist. A file written by a newer format, a file
    /// that is not a token store, and a file held by another process are
    /// each a distinct [`OpenError`].
    pub fn open(path: impl AsRef<Path>) -> Result<Store, OpenError> {
        StoreBuilder::default().open(path)
    }

    /// Options for opening a store.
    pub fn builder() -> StoreBuilder {
        StoreBuilder::default()
    }

    /// The path of the store file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Checks a presented token and returns who it authenticates.
    ///
    /// The format and checksum are checked before the store is read; a
    /// revoked token is simply [`AuthError::Unknown`]. A successful use is
    /// recorded in memory (see the type's documentation): this reads the
    /// file through a redb read transaction and never writes. The adapters
    /// go through [`Verifier::verify`] instead, with the digest the gate
    /// computed.
    ///
    /// No gate is involved, so a token's [rate limit](TokenInfo::rate) is
    /// not counted here; a use of a [quota](TokenInfo::max_uses) is spent
    /// durably before this returns, and one with no use left is refused
    /// ([`AuthError::UsedUp`]) before anything is recorded.
    pub fn authenticate(&self, presented: &str, now: Timestamp) -> Result<Identity, AuthError> {
        self.authenticate_presented(presented, None, now)
    }

    /// Like [`authenticate`](Store::authenticate), for HTTP Basic: the token
    /// must also belong to `user`, else [`AuthError::WrongUser`] and the use
    /// is not recorded.
    pub fn authenticate_as(
        &self,
        user: &str,
        presented: &str,
        now: Timestamp,
    ) -> Result<Identity, AuthError> {
        self.authenticate_presented(presented, Some(user), now)
    }

    fn authenticate_presented(
        &self,
        presented: &str,
        user: Option<&str>,
        now: Timestamp,
    ) -> Result<Identity, AuthError> {
        let cache = &self.inner.cache;
        let prefixes = &self.inner.prefixes;
        // The store's own calls know no client: a token with an address
        // rule is refused here. No gate counts a rate here either; a quota
        // with no use left is refused before the use is recorded.
        let admission = Admission::new(uncounted());
        let origin = Origin::UNKNOWN.admitted_by(Some(&admission));
        let identity = prefixes.presented(presented.as_bytes())?.verify(
            |digest| cache.hit_record(digest, user, origin, now),
            |digest| self.lookup(digest, user, origin, now),
        )??;
        // A use as the gate's: one of a quota is spent.
        if identity.has_quota() {
            return self.spend_use(identity, now);
        }
        Ok(identity)
    }

    /// A spend for the store's own (blocking) calls: [`engine::spend`] in
    /// one write transaction, on the calling thread.
    fn spend_use(&self, identity: Identity, now: Timestamp) -> Result<Identity, AuthError> {
        let said = self.inner.spend_one(&identity, now);
        crate::backend::spent(identity, said)
    }

    /// The lookup behind [`Verifier::verify`].
    ///
    /// A cache hit takes no lock and allocates nothing. A miss reads
    /// the file on the calling thread, which may be an async worker: a redb
    /// read of a record is a B-tree descent through pages redb keeps in its
    /// own cache (64 MiB here), so it costs microseconds, not a disk wait
    /// (`cargo bench -p pat-core`, `store/hard_uncached_100k`; figures in
    /// BENCHMARKS.md), less than parsing the request around it. That is why
    /// the miss stays synchronous rather than paying a thread hop on every
    /// miss.
    fn lookup(
        &self,
        digest: &TokenDigest,
        user: Option<&str>,
        origin: Origin<'_>,
        now: Timestamp,
    ) -> Result<Identity, AuthError> {
        let cache = &self.inner.cache;
        match cache.hit(digest, user, origin, now) {
            Ok(result) => result,
            // redb's reads never wait, so neither does this.
            Err(miss) => run_ready(engine::lookup::lookup(
                &*self.inner,
                cache,
                miss,
                *digest,
                user,
                origin,
                now,
            )),
        }
    }

    /// Writes every buffered use in one durable transaction, and returns how
    /// many tokens it updated. The background thread calls this every flush
    /// interval; call it yourself with [`StoreBuilder::manual_flush`].
    pub fn flush(&self) -> Result<usize, StoreError> {
        self.inner.flush()
    }

    /// Creates tokens in one durable transaction (an import, or a
    /// benchmark's store): all are created, or none if any request is
    /// invalid. One commit instead of one per token.
    pub fn create_many(
        &self,
        news: &[NewToken],
        now: Timestamp,
    ) -> Result<Vec<CreatedToken>, StoreError> {
        self.inner.create_many(news, now, &self.actor)
    }

    cache_accessors!(inner);

    /// How many lookups read the file (cache misses, unknown tokens
    /// included) since the store was opened.
    pub fn file_reads(&self) -> u64 {
        self.inner
            .file_reads
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Dropping the store stops the admin socket, joins the flush thread and
/// writes what is buffered: a durable commit (an fsync). That blocks the
/// dropping thread once per process, at shutdown; to keep it off an async
/// worker,
/// drop the last `Arc<Store>` (or call [`Store::flush`]) after the server's
/// future has finished, as the reference servers do.
impl Drop for Store {
    fn drop(&mut self) {
        // Only the process's own handle: a handle acting as someone shares
        // the store and runs nothing.
        let Some(running) = self.running.take() else {
            return;
        };
        // Stop taking admin requests first, then write what is buffered.
        drop(running.admin);
        // The spends under way are written, and the writer lets go of the
        // file.
        self.inner.spender.stop();
        if let Some(flusher) = running.flusher {
            flusher.stop();
        }
        if let Err(e) = self.inner.flush() {
            tracing::warn!(error = %e, "could not write buffered token uses");
        }
    }
}

impl Inner {
    /// Commits a write that deletes tokens, then forgets them in memory.
    fn delete<T>(
        &self,
        f: impl FnOnce(&WriteTransaction, &mut Changes) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut changes = Changes::default();
        let out = self.write(|txn| f(txn, &mut changes))?;
        self.cache.deleted(&changes.deleted);
        if !changes.changed.is_empty() {
            self.cache.forget(Some(&changes.changed));
        }
        Ok(out)
    }

    /// The token `id`'s digest and record (buffered use merged in), read in
    /// `txn`.
    fn record_in(
        &self,
        txn: &WriteTransaction,
        id: TokenId,
    ) -> Result<Option<([u8; 32], TokenInfo)>, StoreError> {
        let by_id = txn.open_table(BY_ID).map_err(storage)?;
        let Some(digest) = by_id.get(id.as_u64()).map_err(storage)?.map(|d| d.value()) else {
            return Ok(None);
        };
        let tokens = txn.open_table(TOKENS).map_err(storage)?;
        let bytes = tokens
            .get(digest)
            .map_err(storage)?
            .ok_or_else(|| corrupt(format!("token {id} has no record")))?;
        Ok(Some((digest, self.record(digest, bytes.value())?)))
    }

    /// The descendants of `id` with their digests, in a read transaction
    /// (never the write lock: the request path's reuse detection reads it).
    fn family_read(&self, id: TokenId) -> Result<Vec<(TokenDigest, TokenInfo)>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let children = txn.open_multimap_table(CHILDREN).map_err(storage)?;
        let by_id = txn.open_table(BY_ID).map_err(storage)?;
        let tokens = txn.open_table(TOKENS).map_err(storage)?;
        let children_of = |parent: TokenId| -> Result<Vec<TokenInfo>, StoreError> {
            let mut out = Vec::new();
            for child in children.get(parent.as_u64()).map_err(storage)? {
                let child = child.map_err(storage)?.value();
                let Some(digest) = by_id.get(child).map_err(storage)?.map(|d| d.value()) else {
                    continue;
                };
                if let Some(bytes) = tokens.get(digest).map_err(storage)? {
                    out.push(self.record(digest, bytes.value())?);
                }
            }
            Ok(out)
        };
        let found = crate::backend::authority::family(id, children_of)?;
        let mut out = Vec::with_capacity(found.len());
        for info in found {
            if let Some(digest) = by_id.get(info.id.as_u64()).map_err(storage)? {
                out.push((TokenDigest::from_bytes(digest.value()), info));
            }
        }
        Ok(out)
    }

    /// The tokens made with `id`, read in `txn`.
    fn children_in(
        &self,
        txn: &WriteTransaction,
        id: TokenId,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        let ids: Vec<u64> = {
            let children = txn.open_multimap_table(CHILDREN).map_err(storage)?;
            children
                .get(id.as_u64())
                .map_err(storage)?
                .map(|c| c.map(|v| v.value()).map_err(storage))
                .collect::<Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(ids.len());
        for child in ids {
            if let Some((_, info)) = self.record_in(txn, TokenId::from_u64(child))? {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// Reads and decodes a record, with its buffered use merged in.
    fn record(&self, digest: [u8; 32], bytes: &[u8]) -> Result<TokenInfo, StoreError> {
        let mut info = codec::decode(bytes).map_err(corrupt)?;
        self.cache
            .overlay(&TokenDigest::from_bytes(digest), &mut info);
        Ok(info)
    }

    fn read_record(&self, digest: &TokenDigest) -> Result<Option<TokenInfo>, StoreError> {
        self.file_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let txn = self.db.begin_read().map_err(storage)?;
        let tokens = txn.open_table(TOKENS).map_err(storage)?;
        let value = tokens.get(digest.as_bytes()).map_err(storage)?;
        value
            .map(|v| codec::decode(v.value()).map_err(corrupt))
            .transpose()
    }

    /// A retired secret's token, when it stops working, and the token's
    /// current digest (`None` once the token is gone).
    fn read_retired(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<(TokenId, Timestamp, Option<TokenDigest>)>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let retired = match txn.open_table(RETIRED) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(storage(e)),
        };
        let Some((id, until)) = retired
            .get(digest.as_bytes())
            .map_err(storage)?
            .map(|v| v.value())
        else {
            return Ok(None);
        };
        let by_id = txn.open_table(BY_ID).map_err(storage)?;
        let current = by_id
            .get(id)
            .map_err(storage)?
            .map(|d| TokenDigest::from_bytes(d.value()));
        Ok(Some((
            TokenId::from_u64(id),
            Timestamp::from_unix_secs(until).unwrap_or(Timestamp::MAX),
            current,
        )))
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write().map_err(storage)?;
        let out = f(&txn)?;
        txn.commit().map_err(storage)?;
        Ok(out)
    }

    /// The policy as `txn` sees it.
    fn policy_in(txn: &WriteTransaction) -> Result<Policy, StoreError> {
        let meta = txn.open_table(META).map_err(storage)?;
        Inner::read_policy(&meta)
    }

    fn read_policy(meta: &impl ReadableTable<&'static str, u64>) -> Result<Policy, StoreError> {
        let mut values = std::collections::HashMap::new();
        for key in crate::model::policy::KEYS {
            if let Some(v) = meta.get(key).map_err(storage)? {
                values.insert(key, v.value());
            }
        }
        Ok(Policy::from_pairs(|key| values.get(key).copied()))
    }

    /// Removes the token `id` (and its index entries) inside `txn`, noting
    /// its digest in `deleted`.
    fn remove_in(
        txn: &WriteTransaction,
        id: TokenId,
        deleted: &mut Vec<TokenDigest>,
    ) -> Result<Option<TokenInfo>, StoreError> {
        let mut by_id = txn.open_table(BY_ID).map_err(storage)?;
        let Some(digest) = by_id
            .remove(id.as_u64())
            .map_err(storage)?
            .map(|d| d.value())
        else {
            return Ok(None);
        };
        deleted.push(TokenDigest::from_bytes(digest));
        let mut tokens = txn.open_table(TOKENS).map_err(storage)?;
        let info = tokens
            .remove(digest)
            .map_err(storage)?
            .map(|v| codec::decode(v.value()))
            .transpose()
            .map_err(corrupt)?
            .ok_or_else(|| corrupt(format!("index names token {id}, which has no record")))?;
        let mut by_user = txn.open_multimap_table(BY_USER).map_err(storage)?;
        by_user
            .remove(info.user.as_str(), id.as_u64())
            .map_err(storage)?;
        let mut children = txn.open_multimap_table(CHILDREN).map_err(storage)?;
        if let Some(parent) = info.parent {
            children
                .remove(parent.as_u64(), id.as_u64())
                .map_err(storage)?;
        }
        children.remove_all(id.as_u64()).map_err(storage)?;
        Ok(Some(info))
    }
}

/// What a write did to tokens, for the cache once it commits.
#[derive(Default)]
struct Changes {
    /// Digests that no longer stand for a token.
    deleted: Vec<TokenDigest>,
    /// Digests whose record changed (a deadline brought down).
    changed: Vec<TokenDigest>,
}

#[cfg(test)]
mod races;
#[cfg(test)]
mod tests;

impl engine::lookup::Reads for Inner {
    fn catalog(&self) -> Arc<Catalog> {
        self.catalog.get()
    }

    async fn read(&self, digest: &TokenDigest) -> Result<engine::lookup::Found, StoreError> {
        use engine::lookup::Found;
        if let Some(info) = self.read_record(digest)? {
            return Ok(Found::Token(info));
        }
        let Some((id, retires_at, current)) = self.read_retired(digest)? else {
            return Ok(Found::Nothing);
        };
        Ok(Found::Retired {
            id,
            retires_at,
            current,
            user: None,
        })
    }

    async fn owner(&self, current: &TokenDigest) -> String {
        match self.read_record(current) {
            Ok(Some(info)) => info.user,
            _ => String::new(),
        }
    }

    async fn reuse_family(&self, id: TokenId) -> Result<Option<Vec<TokenDigest>>, StoreError> {
        if self.policy()?.on_reuse != crate::OnReuse::Revoke {
            return Ok(None);
        }
        Ok(Some(
            self.family_read(id)?.into_iter().map(|(d, _)| d).collect(),
        ))
    }
}

impl Verifier for Store {
    fn verify(&self, lookup: Lookup<'_>) -> Verification {
        Verification::Ready(self.lookup(
            lookup.digest(),
            lookup.user(),
            lookup.origin(),
            lookup.now(),
        ))
    }

    #[inline]
    fn verify_cached(&self, lookup: Lookup<'_>) -> Option<Result<Identity, AuthError>> {
        self.inner.cache.hit_record(
            lookup.digest(),
            lookup.user(),
            lookup.origin(),
            lookup.now(),
        )
    }

    /// Committed (and synced) before the answer, so a use of a quota
    /// survives a crash; only tokens with a quota pay it. Not on the
    /// calling thread: the store's writer thread commits the spends
    /// waiting for it together, one sync for all (see `spender`), and the
    /// answer is a future.
    fn spend(&self, identity: Identity, now: Timestamp) -> Verification {
        Verification::pending(self.inner.spender.spend(&self.inner, identity, now))
    }

    #[inline]
    fn prefixes(&self) -> &Prefixes {
        &self.inner.prefixes
    }

    fn flush(&self) -> Result<usize, StoreError> {
        Store::flush(self)
    }
}
