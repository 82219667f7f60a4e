//! The redb token store.

pub(crate) mod socket;
pub(crate) mod sys;
pub(crate) mod trust;
mod tx;

pub(crate) mod codec;
mod open;

use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use redb::{
    Database, DatabaseError, MultimapTableDefinition, ReadableDatabase, ReadableMultimapTable,
    ReadableTable, StorageError, TableDefinition, TableError, WriteTransaction,
};

use self::tx::RedbTx;
use crate::backend::DEFAULT_CACHE_CAPACITY;
use crate::backend::admin::Audited;
use crate::backend::block_on::block_on;
use crate::backend::cache::Cache;
use crate::backend::engine;
use crate::backend::options::{StoreOptions, cache_accessors, store_options};
use crate::backend::redb::socket::{AdminServer, StartError, admin_socket_path};
use crate::backend::{Lookup, Verification, Verifier};
use crate::error::{AuthError, BackendError, OpenError, StoreError};
use crate::model::audit::{AuditAction, AuditEntry};
use crate::model::policy::Policy;
use crate::model::record::{CreatedToken, Identity, NewToken, Rotation, TokenInfo};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};
use crate::testing::failpoints::Point;

/// The store's on-disk format version, kept in the file. Bump it for any
/// change an older build would misread.
pub const FORMAT_VERSION: u64 = 2;

const FORMAT_KEY: &str = "format_version";

/// Store-wide facts: the format version.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("pat_meta");
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

/// Options for opening a [`Store`].
///
/// Its cache of records is exact: every write goes through this process
/// (the CLI's through the admin socket), which updates it.
///
/// ```
/// use std::time::Duration;
/// # let dir = tempfile::tempdir()?;
/// let store = pat_core::Store::builder()
///     .flush_interval(Duration::from_millis(250))
///     .open(dir.path().join("pat.redb"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct StoreBuilder {
    options: StoreOptions,
    admin_socket: bool,
}

impl Default for StoreBuilder {
    fn default() -> StoreBuilder {
        StoreBuilder {
            options: StoreOptions::default(),
            admin_socket: true,
        }
    }
}

impl StoreBuilder {
    store_options!(StoreBuilder, Store);

    /// Whether to serve the admin socket `<db>.sock` (default: yes), so that
    /// `pat-cli` can create, list and revoke tokens while this process holds
    /// the store. Turn it off for short-lived tools, or when the service
    /// offers its own admin channel.
    pub fn admin_socket(mut self, serve: bool) -> StoreBuilder {
        self.admin_socket = serve;
        self
    }

    /// Whether to keep the records of tokens that authenticated in memory
    /// (default: yes, up to [`DEFAULT_CACHE_CAPACITY`]), so that later
    /// requests with them read no file. Off is the same as a capacity of 0.
    pub fn cache(mut self, enabled: bool) -> StoreBuilder {
        self.options.cache_capacity = if enabled { DEFAULT_CACHE_CAPACITY } else { 0 };
        self
    }

    /// Opens the store at `path`, creating it (mode 0600) if it does not exist.
    /// See [`Store::open`].
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Store, OpenError> {
        let mut inner = Inner::open(path.as_ref(), self.options.cache_capacity)?;
        inner.audit_retention = self.options.audit_retention;
        let inner = Arc::new(inner);
        let admin = if self.admin_socket {
            let socket = admin_socket_path(path.as_ref());
            let server =
                AdminServer::start(&socket, Arc::downgrade(&inner)).map_err(|e| match e {
                    StartError::Untrusted(reason) => OpenError::Untrusted {
                        path: socket,
                        reason,
                    },
                    StartError::Io(source) => OpenError::AdminSocket {
                        path: socket,
                        source,
                    },
                })?;
            Some(server)
        } else {
            None
        };
        let flusher = self
            .options
            .flush_interval
            .map(|every| Flusher::spawn(&inner, every))
            .transpose()
            .map_err(|source| OpenError::Io {
                path: path.as_ref().to_path_buf(),
                source,
            })?;
        Ok(Store {
            inner,
            flusher,
            admin,
        })
    }
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
}

struct Flusher {
    stop: mpsc::Sender<()>,
    thread: thread::JoinHandle<()>,
}

impl Flusher {
    fn spawn(inner: &Arc<Inner>, every: Duration) -> std::io::Result<Flusher> {
        let (stop, stopped) = mpsc::channel::<()>();
        let weak = Arc::downgrade(inner);
        let thread = thread::Builder::new()
            .name("pat-store-flush".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    let Some(inner) = weak.upgrade() else { break };
                    if let Err(e) = inner.flush() {
                        tracing::warn!(error = %e, "could not write buffered token uses");
                    }
                }
            })?;
        Ok(Flusher { stop, thread })
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("background_flush", &self.flusher.is_some())
            .field("admin_socket", &self.admin.is_some())
            .finish_non_exhaustive()
    }
}

impl Store {
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
    pub fn authenticate(&self, presented: &str, now: Timestamp) -> Result<Identity, AuthError> {
        self.lookup(&TokenDigest::from_token(presented)?, None, now)
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
        self.lookup(&TokenDigest::from_token(presented)?, Some(user), now)
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
        now: Timestamp,
    ) -> Result<Identity, AuthError> {
        let cache = &self.inner.cache;
        match cache.hit(digest, user, now) {
            Ok(result) => result,
            // redb's reads never wait, so neither does this.
            Err(miss) => block_on(engine::lookup::lookup(
                &*self.inner,
                cache,
                miss,
                *digest,
                user,
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
        self.inner
            .create_many(news, now, crate::model::audit::DEFAULT_ACTOR)
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
        // Stop taking admin requests first, then write what is buffered.
        drop(self.admin.take());
        if let Some(flusher) = self.flusher.take() {
            drop(flusher.stop);
            let _ = flusher.thread.join();
        }
        if let Err(e) = self.inner.flush() {
            tracing::warn!(error = %e, "could not write buffered token uses");
        }
    }
}

impl Inner {
    fn open(path: &Path, cache_capacity: usize) -> Result<Inner, OpenError> {
        let opened = open::open_file(path)?;
        let result = Inner::open_db(path.to_path_buf(), opened.file, cache_capacity);
        if result.is_err() && opened.created {
            // Leave nothing half-made behind: the next open would find an
            // empty file and refuse it.
            let _ = std::fs::remove_file(path);
        }
        result
    }

    fn open_db(
        path: PathBuf,
        file: std::fs::File,
        cache_capacity: usize,
    ) -> Result<Inner, OpenError> {
        let io = |source| OpenError::Io {
            path: path.clone(),
            source,
        };
        let not_a_store = |detail: String| OpenError::NotAStore {
            path: path.clone(),
            detail,
        };
        let from_db = |e: DatabaseError| match e {
            DatabaseError::DatabaseAlreadyOpen => OpenError::Locked {
                path: path.clone(),
                holder: crate::backend::redb::sys::lock_holder(&path),
            },
            DatabaseError::Storage(StorageError::Io(e))
                if !matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::InvalidData) =>
            {
                io(e)
            }
            e => not_a_store(e.to_string()),
        };
        let backend = redb::backends::FileBackend::new(file).map_err(from_db)?;
        // The integrity check makes redb report a damaged file as an error
        // where a plain open could panic; a token store is small, so reading
        // it whole on open is cheap.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Database::builder()
                .set_check_integrity_on_open(true)
                .set_cache_size(64 << 20)
                .create_with_backend(backend)
        }));
        let db = match opened {
            Ok(r) => r.map_err(from_db)?,
            Err(_) => return Err(not_a_store("the storage engine could not read it".into())),
        };
        let store = Inner {
            db,
            path: path.clone(),
            cache: Cache::new(cache_capacity, None),
            file_reads: std::sync::atomic::AtomicU64::new(0),
            audit_retention: crate::model::audit::DEFAULT_AUDIT_RETENTION,
        };
        match store.init_format() {
            Ok(()) => Ok(store),
            Err(InitError::Newer(found)) => Err(OpenError::NewerFormat {
                path,
                found,
                supported: FORMAT_VERSION,
            }),
            Err(InitError::Other(detail)) => Err(not_a_store(detail)),
        }
    }

    /// Creates the tables of a new store, or checks the format of an old one.
    fn init_format(&self) -> Result<(), InitError> {
        let other = |e: &dyn fmt::Display| InitError::Other(e.to_string());
        let read = self.db.begin_read().map_err(|e| other(&e))?;
        match read.open_table(META) {
            Ok(meta) => {
                let found = meta
                    .get(FORMAT_KEY)
                    .map_err(|e| other(&e))?
                    .map(|v| v.value())
                    .ok_or_else(|| InitError::Other("no format version".into()))?;
                if found > FORMAT_VERSION {
                    return Err(InitError::Newer(found));
                }
                drop(meta);
                drop(read);
                if found < 2 {
                    self.upgrade_to_2().map_err(|e| other(&e))?;
                }
                Ok(())
            }
            Err(TableError::TableDoesNotExist(_)) => {
                if read.list_tables().map_err(|e| other(&e))?.next().is_some()
                    || read
                        .list_multimap_tables()
                        .map_err(|e| other(&e))?
                        .next()
                        .is_some()
                {
                    return Err(InitError::Other(
                        "it holds another application's tables".into(),
                    ));
                }
                drop(read);
                let txn = self.db.begin_write().map_err(|e| other(&e))?;
                {
                    let mut meta = txn.open_table(META).map_err(|e| other(&e))?;
                    meta.insert(FORMAT_KEY, FORMAT_VERSION)
                        .map_err(|e| other(&e))?;
                    txn.open_table(TOKENS).map_err(|e| other(&e))?;
                    txn.open_table(BY_ID).map_err(|e| other(&e))?;
                    txn.open_multimap_table(BY_USER).map_err(|e| other(&e))?;
                    txn.open_multimap_table(CHILDREN).map_err(|e| other(&e))?;
                    txn.open_multimap_table(RETIRED_BY_ID)
                        .map_err(|e| other(&e))?;
                }
                txn.commit().map_err(|e| other(&e))
            }
            Err(e) => Err(other(&e)),
        }
    }

    /// Format 1 to 2 (the authority rule): the index of children (empty:
    /// tokens made before had no parent) and the index of retired secrets
    /// by token, filled from the retired secrets. The old graces are
    /// brought under the rule ([`crate::backend::authority::bound_old_graces`]):
    /// at most one live old secret per token, its grace at most the
    /// default maximum from now, noted in the token's record. Records keep
    /// their versions until rewritten; older ones read as tokens without
    /// parent.
    fn upgrade_to_2(&self) -> Result<(), StoreError> {
        let now = Timestamp::now();
        self.write(|txn| {
            txn.open_multimap_table(CHILDREN).map_err(storage)?;
            let mut by_id = txn.open_multimap_table(RETIRED_BY_ID).map_err(storage)?;
            let mut graces = Vec::new();
            match txn.open_table(RETIRED) {
                Ok(mut retired) => {
                    for entry in retired.iter().map_err(storage)? {
                        let (digest, value) = entry.map_err(storage)?;
                        let (id, until) = value.value();
                        by_id.insert(id, digest.value()).map_err(storage)?;
                        let until = Timestamp::from_unix_secs(until).unwrap_or(Timestamp::MAX);
                        graces.push((digest.value(), TokenId::from_u64(id), until));
                    }
                    let bounded = crate::backend::authority::bound_old_graces(&mut graces, now);
                    for (digest, id, until) in &graces {
                        retired
                            .insert(digest, (id.as_u64(), until.as_unix_secs()))
                            .map_err(storage)?;
                    }
                    drop(retired);
                    let by_token = txn.open_table(BY_ID).map_err(storage)?;
                    let mut tokens = txn.open_table(TOKENS).map_err(storage)?;
                    for (id, until) in bounded {
                        let Some(digest) = by_token.get(id.as_u64()).map_err(storage)? else {
                            continue;
                        };
                        let digest = digest.value();
                        let Some(bytes) = tokens.get(digest).map_err(storage)? else {
                            continue;
                        };
                        let mut info = codec::decode(bytes.value()).map_err(corrupt)?;
                        drop(bytes);
                        info.previous_until = Some(until);
                        tokens
                            .insert(digest, codec::encode(&info).as_slice())
                            .map_err(storage)?;
                    }
                }
                Err(TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(storage(e)),
            }
            let mut meta = txn.open_table(META).map_err(storage)?;
            meta.insert(FORMAT_KEY, 2).map_err(storage)?;
            Ok(())
        })
    }

    /// Writes the buffered uses and the audit entries the request path
    /// noted; see [`Store::flush`].
    fn flush(&self) -> Result<usize, StoreError> {
        let events = self.cache.take_audit();
        let revocations = self.cache.take_revocations();
        let batch = self.cache.take_uses();
        if batch.is_empty() && events.is_empty() && revocations.is_empty() {
            self.cache.flushed(batch);
            return Ok(0);
        }
        let mut changes = Changes::default();
        let written = self
            .cache
            .hooks
            .at(Point::FlushWrite)
            .map_err(|e| StoreError::Storage(BackendError::new(e)))
            .and_then(|()| {
                self.write(|txn| {
                    for e in &events {
                        audit_in(txn, e)?;
                    }
                    let mut tokens = txn.open_table(TOKENS).map_err(storage)?;
                    let mut written = 0;
                    for (digest, touch) in batch.sorted() {
                        let current = tokens
                            .get(digest.as_bytes())
                            .map_err(storage)?
                            .map(|v| codec::decode(v.value()));
                        // A token revoked since its use stays revoked.
                        let Some(info) = current else { continue };
                        let mut info = info.map_err(corrupt)?;
                        touch.apply(&mut info);
                        tokens
                            .insert(digest.as_bytes(), codec::encode(&info).as_slice())
                            .map_err(storage)?;
                        written += 1;
                    }
                    drop(tokens);
                    // Reuse detection's revocations, each family audited.
                    let mut tx = RedbTx::new(self, txn, &mut changes);
                    block_on(engine::revoke_reused(
                        &mut tx,
                        &revocations,
                        Timestamp::now(),
                    ))?;
                    Ok(written)
                })
            });
        match written {
            Ok(n) => {
                let _ = self.cache.hooks.at(Point::FlushCommitted);
                self.cache.deleted(&changes.deleted);
                self.cache.flushed(batch);
                Ok(n)
            }
            Err(e) => {
                self.cache.unflushed(batch);
                self.cache.unwritten_audit(events);
                self.cache.unrevoked(revocations);
                Err(e)
            }
        }
    }

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

    /// Creates tokens in one durable transaction: all or none.
    fn create_many(
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
                .map(|new| block_on(engine::create(&mut tx, new, now, actor)))
                .collect()
        })
    }

    /// Drops audit entries older than the retention, inside `txn`.
    fn prune_audit(&self, txn: &WriteTransaction, now: Timestamp) -> Result<(), StoreError> {
        let horizon = now
            .as_unix_secs()
            .saturating_sub(self.audit_retention.as_secs());
        let mut audit = txn.open_table(AUDIT).map_err(storage)?;
        let mut old = Vec::new();
        for entry in audit.iter().map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
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

    /// Drops the retired secrets of tokens that no longer exist: they can
    /// only ever be refused now, like any unknown token.
    fn prune_retired(txn: &WriteTransaction) -> Result<(), StoreError> {
        let by_id = txn.open_table(BY_ID).map_err(storage)?;
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

enum InitError {
    Newer(u64),
    Other(String),
}

/// What a write did to tokens, for the cache once it commits.
#[derive(Default)]
struct Changes {
    /// Digests that no longer stand for a token.
    deleted: Vec<TokenDigest>,
    /// Digests whose record changed (a deadline brought down).
    changed: Vec<TokenDigest>,
}

/// The admin operations, on the shared state so that the admin socket's
/// thread can serve them too.
impl Audited for Inner {
    fn create_by(
        &self,
        new: &NewToken,
        now: Timestamp,
        actor: &str,
    ) -> Result<CreatedToken, StoreError> {
        let mut created = self.create_many(std::slice::from_ref(new), now, actor)?;
        created
            .pop()
            .ok_or_else(|| corrupt("no token created".into()))
    }

    fn list_tokens(
        &self,
        user: Option<&str>,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let tokens = txn.open_table(TOKENS).map_err(storage)?;
        let mut out = Vec::new();
        let mut keep = |info: TokenInfo| {
            if include_expired || !info.is_expired(now) {
                out.push(info);
            }
        };
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
                    keep(self.record(digest, record.value())?);
                }
            }
            None => {
                for entry in tokens.iter().map_err(storage)? {
                    let (k, v) = entry.map_err(storage)?;
                    keep(self.record(k.value(), v.value())?);
                }
            }
        }
        out.sort_by_key(|i| (i.created_at, i.id));
        Ok(out)
    }

    fn find_token(
        &self,
        digest: &TokenDigest,
        now: Timestamp,
    ) -> Result<Option<TokenInfo>, StoreError> {
        block_on(engine::lookup::find(self, &self.cache, digest, now))
    }

    fn get_token(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
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
        self.record(digest, record.value())
    }

    fn rotate_by(
        &self,
        id: TokenId,
        rotation: &Rotation,
        now: Timestamp,
        actor: &str,
    ) -> Result<CreatedToken, StoreError> {
        // The old digest is forgotten in memory like a revoked one; its
        // buffered use is merged into the record first (`record_in`), so
        // no use is lost.
        self.delete(|txn, changes| {
            let mut tx = RedbTx::new(self, txn, changes);
            block_on(engine::rotate(&mut tx, id, rotation, now, actor))
        })
    }

    fn revoke_by(&self, id: TokenId, actor: &str) -> Result<TokenInfo, StoreError> {
        self.delete(|txn, changes| {
            let mut tx = RedbTx::new(self, txn, changes);
            let gone = block_on(engine::revoke(&mut tx, id, actor, "ok", Timestamp::now()))?;
            // The root comes first.
            gone.into_iter().next().ok_or(StoreError::NotFound(id))
        })
    }

    fn descendants_of(&self, id: TokenId) -> Result<Vec<TokenInfo>, StoreError> {
        Ok(self.family_read(id)?.into_iter().map(|(_, i)| i).collect())
    }

    fn revoke_user_by(&self, user: &str, actor: &str) -> Result<usize, StoreError> {
        self.delete(|txn, changes| {
            let mut tx = RedbTx::new(self, txn, changes);
            block_on(engine::revoke_user(&mut tx, user, actor, Timestamp::now())).map(|g| g.len())
        })
    }

    fn prune_by(&self, now: Timestamp, actor: &str) -> Result<usize, StoreError> {
        // Spared when dropped, after the deletion was forgotten: whatever
        // it did not delete lives on.
        let mut condemned = None;
        self.delete(|txn, changes| {
            let expired: Vec<(TokenDigest, TokenId)> = {
                let tokens = txn.open_table(TOKENS).map_err(storage)?;
                let mut expired = Vec::new();
                for entry in tokens.iter().map_err(storage)? {
                    let (k, v) = entry.map_err(storage)?;
                    // Merged with buffered uses: a sliding token refreshed
                    // in memory is alive even if the file says otherwise.
                    let info = self.record(k.value(), v.value())?;
                    if info.is_expired(now) {
                        expired.push((TokenDigest::from_bytes(k.value()), info.id));
                    }
                }
                expired
            };
            // A last look, ordered with the uses racing it.
            let digests: Vec<TokenDigest> = expired.iter().map(|(d, _)| *d).collect();
            let doomed = condemned.insert(self.cache.doom(&digests, now));
            let expired: Vec<TokenId> = expired
                .into_iter()
                .filter(|(d, _)| doomed.digests().contains(d))
                .map(|(_, id)| id)
                .collect();
            self.cache
                .hooks
                .at(Point::PruneDecided)
                .map_err(|e| StoreError::Storage(BackendError::new(e)))?;
            for &id in &expired {
                Inner::remove_in(txn, id, &mut changes.deleted)?;
            }
            Inner::prune_retired(txn)?;
            self.prune_audit(txn, now)?;
            let entry = AuditEntry::new(
                now,
                AuditAction::Prune,
                None,
                "",
                actor,
                AuditEntry::count_outcome(expired.len()),
            );
            audit_in(txn, &entry)?;
            Ok(expired.len())
        })
    }

    fn get_policy(&self) -> Result<Policy, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let meta = txn.open_table(META).map_err(storage)?;
        Inner::read_policy(&meta)
    }

    fn set_policy_by(&self, policy: Policy, actor: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            let entry = AuditEntry::new(
                Timestamp::now(),
                AuditAction::SetPolicy,
                None,
                "",
                actor,
                policy.summary(),
            );
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

    fn read_audit(
        &self,
        since: Timestamp,
        user: Option<&str>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let audit = match txn.open_table(AUDIT) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut out = Vec::new();
        for entry in audit.iter().map_err(storage)? {
            let (_, v) = entry.map_err(storage)?;
            let e = codec::decode_audit(v.value()).map_err(corrupt)?;
            if e.matches(since, user) {
                out.push(e);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod races;
#[cfg(test)]
mod tests;

crate::backend::admin::admin_from_audited!(Store);

impl Audited for Store {
    fn create_by(
        &self,
        new: &NewToken,
        now: Timestamp,
        actor: &str,
    ) -> Result<CreatedToken, StoreError> {
        self.inner.create_by(new, now, actor)
    }
    fn rotate_by(
        &self,
        id: TokenId,
        rotation: &Rotation,
        now: Timestamp,
        actor: &str,
    ) -> Result<CreatedToken, StoreError> {
        self.inner.rotate_by(id, rotation, now, actor)
    }
    fn revoke_by(&self, id: TokenId, actor: &str) -> Result<TokenInfo, StoreError> {
        self.inner.revoke_by(id, actor)
    }
    fn descendants_of(&self, id: TokenId) -> Result<Vec<TokenInfo>, StoreError> {
        self.inner.descendants_of(id)
    }
    fn revoke_user_by(&self, user: &str, actor: &str) -> Result<usize, StoreError> {
        self.inner.revoke_user_by(user, actor)
    }
    fn prune_by(&self, now: Timestamp, actor: &str) -> Result<usize, StoreError> {
        self.inner.prune_by(now, actor)
    }
    fn set_policy_by(&self, policy: Policy, actor: &str) -> Result<(), StoreError> {
        self.inner.set_policy_by(policy, actor)
    }
    fn list_tokens(
        &self,
        user: Option<&str>,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        self.inner.list_tokens(user, include_expired, now)
    }
    fn get_token(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        self.inner.get_token(id)
    }
    fn find_token(
        &self,
        digest: &TokenDigest,
        now: Timestamp,
    ) -> Result<Option<TokenInfo>, StoreError> {
        self.inner.find_token(digest, now)
    }
    fn get_policy(&self) -> Result<Policy, StoreError> {
        self.inner.get_policy()
    }
    fn read_audit(
        &self,
        since: Timestamp,
        user: Option<&str>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner.read_audit(since, user)
    }
}

impl engine::lookup::Reads for Inner {
    async fn read(&self, digest: &TokenDigest) -> Result<engine::lookup::Found, StoreError> {
        use engine::lookup::Found;
        if let Some(info) = self.read_record(digest)? {
            return Ok(Found::Token(info));
        }
        let Some((id, retires_at, current)) = self.read_retired(digest)? else {
            return Ok(Found::Nothing);
        };
        // The token's user, for the audit log when the secret is replayed.
        let user = match current {
            Some(d) => self.read_record(&d)?.map(|i| i.user),
            None => None,
        };
        Ok(Found::Retired {
            id,
            retires_at,
            current: current.filter(|_| user.is_some()),
            user: user.unwrap_or_default(),
        })
    }

    async fn reuse_family(&self, id: TokenId) -> Result<Option<Vec<TokenDigest>>, StoreError> {
        if self.get_policy()?.on_reuse != crate::OnReuse::Revoke {
            return Ok(None);
        }
        Ok(Some(
            self.family_read(id)?.into_iter().map(|(d, _)| d).collect(),
        ))
    }
}

impl Verifier for Store {
    fn verify(&self, lookup: Lookup<'_>) -> Verification {
        Verification::Ready(self.lookup(lookup.digest(), lookup.user(), lookup.now()))
    }

    fn flush(&self) -> Result<usize, StoreError> {
        Store::flush(self)
    }
}
