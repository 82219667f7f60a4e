//! The redb token store.

mod codec;

use std::fmt;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use redb::{
    Database, DatabaseError, Durability, MultimapTableDefinition, ReadableDatabase,
    ReadableMultimapTable, ReadableTable, StorageError, TableDefinition, TableError,
    WriteTransaction,
};

use crate::admin::Admin;
use crate::error::{AuthError, BackendError, OpenError, StoreError};
use crate::record::{CreatedToken, Identity, NewToken, TokenInfo};
use crate::time::Timestamp;
use crate::token::{TokenDigest, TokenId, TokenSecret};

/// The store's on-disk format version, kept in [`META`]. Bump it for any
/// change an older build would misread.
pub const FORMAT_VERSION: u64 = 1;

const FORMAT_KEY: &str = "format_version";

/// Store-wide facts: the format version.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("pat_meta");
/// Token records, keyed by the SHA-256 digest of the token.
const TOKENS: TableDefinition<'_, [u8; 32], &[u8]> = TableDefinition::new("pat_tokens");
/// Public id -> digest.
const BY_ID: TableDefinition<'_, u64, [u8; 32]> = TableDefinition::new("pat_by_id");
/// User -> public ids.
const BY_USER: MultimapTableDefinition<'_, &str, u64> = MultimapTableDefinition::new("pat_by_user");

fn storage(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Storage(BackendError::new(e.into()))
}

fn corrupt(e: String) -> StoreError {
    StoreError::Corrupt(e)
}

/// A token store in one redb file.
///
/// Open it once per process and share it (`Arc<Store>`): redb lets one
/// process at a time hold the file. Creation and revocation are durable when
/// they return; the refresh a use records (sliding deadline, last use) is
/// committed without waiting for the disk, and made durable by the next
/// durable commit or when the store is dropped.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store at `path`, creating it (mode 0600) if it does not exist.
    ///
    /// The directory must exist. A file written by a newer format, a file
    /// that is not a token store, and a file held by another process are
    /// each a distinct [`OpenError`].
    pub fn open(path: impl AsRef<Path>) -> Result<Store, OpenError> {
        let path = path.as_ref().to_path_buf();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(OpenError::MissingDirectory(dir.to_path_buf()));
        }
        let io = |source| OpenError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let not_a_store = |detail: String| OpenError::NotAStore {
            path: path.clone(),
            detail,
        };
        let from_db = |e: DatabaseError| match e {
            DatabaseError::DatabaseAlreadyOpen => OpenError::Locked(path.clone()),
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
        let store = Store {
            db,
            path: path.clone(),
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

    /// The path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
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
                // Version 1 is the only one so far: nothing to migrate.
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
                }
                txn.commit().map_err(|e| other(&e))
            }
            Err(e) => Err(other(&e)),
        }
    }

    /// Checks a presented token and returns who it authenticates.
    ///
    /// The format and checksum are checked before the store is read; a
    /// revoked token is simply [`AuthError::Unknown`]. A successful use
    /// records `last_used_at` and moves a sliding deadline forward; that write
    /// does not wait for the disk, and if it fails the authentication still
    /// succeeds (the failure is logged).
    pub fn authenticate(&self, presented: &str, now: Timestamp) -> Result<Identity, AuthError> {
        let digest = TokenDigest::from_token(presented)?;
        let mut info = self.read_record(&digest)?.ok_or(AuthError::Unknown)?;
        if info.is_expired(now) {
            return Err(AuthError::Expired {
                expires_at: info.expiry.expires_at(),
            });
        }
        info.touch(now);
        if let Err(e) = self.record_touch(&digest, now) {
            tracing::warn!(token_id = %info.id, error = %e, "could not record token use");
        }
        Ok(info.identity())
    }

    /// Writes a use of the token at `now`, re-reading the record inside the
    /// write so that a token revoked meanwhile is never written back.
    fn record_touch(&self, digest: &TokenDigest, now: Timestamp) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::None).map_err(storage)?;
        {
            let mut tokens = txn.open_table(TOKENS).map_err(storage)?;
            let current = tokens
                .get(digest.as_bytes())
                .map_err(storage)?
                .map(|v| codec::decode(v.value()));
            if let Some(info) = current {
                let mut info = info.map_err(corrupt)?;
                info.touch(now);
                tokens
                    .insert(digest.as_bytes(), codec::encode(&info).as_slice())
                    .map_err(storage)?;
            }
        }
        txn.commit().map_err(storage)
    }

    /// Makes every recorded use durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(storage)?;
        txn.commit().map_err(storage)
    }

    fn read_record(&self, digest: &TokenDigest) -> Result<Option<TokenInfo>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let tokens = txn.open_table(TOKENS).map_err(storage)?;
        let value = tokens.get(digest.as_bytes()).map_err(storage)?;
        value
            .map(|v| codec::decode(v.value()).map_err(corrupt))
            .transpose()
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

    /// Removes the token `id` (and its index entries) inside `txn`.
    fn remove_in(txn: &WriteTransaction, id: TokenId) -> Result<Option<TokenInfo>, StoreError> {
        let mut by_id = txn.open_table(BY_ID).map_err(storage)?;
        let Some(digest) = by_id
            .remove(id.as_u64())
            .map_err(storage)?
            .map(|d| d.value())
        else {
            return Ok(None);
        };
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
        Ok(Some(info))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "could not flush recorded token uses");
        }
    }
}

enum InitError {
    Newer(u64),
    Other(String),
}

impl Admin for Store {
    fn create(&self, new: &NewToken, now: Timestamp) -> Result<CreatedToken, StoreError> {
        self.write(|txn| {
            let mut tokens = txn.open_table(TOKENS).map_err(storage)?;
            let mut by_id = txn.open_table(BY_ID).map_err(storage)?;
            let mut by_user = txn.open_multimap_table(BY_USER).map_err(storage)?;
            // Collisions of 64-bit ids or 190-bit secrets are astronomically
            // unlikely; draw again rather than overwrite.
            let id = loop {
                let id = TokenId::generate();
                if by_id.get(id.as_u64()).map_err(storage)?.is_none() {
                    break id;
                }
            };
            let info = new.to_info(id, now)?;
            let secret = loop {
                let s = TokenSecret::generate();
                if tokens
                    .get(s.digest().as_bytes())
                    .map_err(storage)?
                    .is_none()
                {
                    break s;
                }
            };
            let digest = *secret.digest().as_bytes();
            tokens
                .insert(digest, codec::encode(&info).as_slice())
                .map_err(storage)?;
            by_id.insert(id.as_u64(), digest).map_err(storage)?;
            by_user
                .insert(info.user.as_str(), id.as_u64())
                .map_err(storage)?;
            Ok(CreatedToken { secret, info })
        })
    }

    fn list(
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
                    keep(codec::decode(record.value()).map_err(corrupt)?);
                }
            }
            None => {
                for entry in tokens.iter().map_err(storage)? {
                    let (_, v) = entry.map_err(storage)?;
                    keep(codec::decode(v.value()).map_err(corrupt)?);
                }
            }
        }
        out.sort_by_key(|i| (i.created_at, i.id));
        Ok(out)
    }

    fn get(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
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
        codec::decode(record.value()).map_err(corrupt)
    }

    fn revoke(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        self.write(|txn| Store::remove_in(txn, id)?.ok_or(StoreError::NotFound(id)))
    }

    fn revoke_user(&self, user: &str) -> Result<usize, StoreError> {
        self.write(|txn| {
            let ids: Vec<u64> = {
                let by_user = txn.open_multimap_table(BY_USER).map_err(storage)?;
                by_user
                    .get(user)
                    .map_err(storage)?
                    .map(|id| id.map(|v| v.value()).map_err(storage))
                    .collect::<Result<_, _>>()?
            };
            for &id in &ids {
                Store::remove_in(txn, TokenId::from_u64(id))?;
            }
            Ok(ids.len())
        })
    }

    fn prune(&self, now: Timestamp) -> Result<usize, StoreError> {
        self.write(|txn| {
            let expired: Vec<TokenId> = {
                let tokens = txn.open_table(TOKENS).map_err(storage)?;
                let mut expired = Vec::new();
                for entry in tokens.iter().map_err(storage)? {
                    let (_, v) = entry.map_err(storage)?;
                    let info = codec::decode(v.value()).map_err(corrupt)?;
                    if info.is_expired(now) {
                        expired.push(info.id);
                    }
                }
                expired
            };
            for &id in &expired {
                Store::remove_in(txn, id)?;
            }
            Ok(expired.len())
        })
    }
}

#[cfg(test)]
mod tests;
