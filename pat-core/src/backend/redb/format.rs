//! Opening the database: its tables, the format version and the upgrades
//! from older formats.

use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, StorageError, TableError};

use super::{
    BY_ID, BY_USER, CHILDREN, CURRENT_PREFIX_KEY, FORMAT_KEY, FORMAT_VERSION, Inner, META,
    PERMISSIONS, PREFIXES, RETIRED, RETIRED_BY_ID, TOKENS, codec, corrupt, open, storage,
};
use crate::backend::cache::Cache;
use crate::error::{OpenError, StoreError};
use crate::model::permission::{Catalog, SharedCatalog};
use crate::model::prefix::{Prefix, Prefixes};
use crate::model::time::Timestamp;
use crate::model::token::TokenId;

impl Inner {
    pub(super) fn open(
        path: &Path,
        cache_capacity: usize,
        prefix: Prefix,
    ) -> Result<Inner, OpenError> {
        let opened = open::open_file(path)?;
        let result = Inner::open_db(path.to_path_buf(), opened.file, cache_capacity, prefix);
        if result.is_err() && opened.created {
            // Leave nothing half-made behind: the next open would find an
            // empty file and refuse it.
            let _ = std::fs::remove_file(path);
        }
        result
    }

    /// Opens the database in `file`; a new store gets `prefix`.
    pub(super) fn open_db(
        path: PathBuf,
        file: std::fs::File,
        cache_capacity: usize,
        prefix: Prefix,
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
        let mut store = Inner {
            db,
            path: path.clone(),
            cache: Cache::new(cache_capacity, None),
            file_reads: std::sync::atomic::AtomicU64::new(0),
            audit_retention: crate::model::audit::DEFAULT_AUDIT_RETENTION,
            prefixes: Prefixes::new(prefix),
            prefix_changes: std::sync::Mutex::new(()),
            catalog: SharedCatalog::default(),
            catalog_changes: std::sync::Mutex::new(()),
            spender: Default::default(),
        };
        match store.init_format(prefix).and_then(|()| {
            let stored = store
                .stored_prefixes()
                .map_err(|e| InitError::Other(e.to_string()))?;
            // The store's own: what `prefix` said counts only for a new one.
            store.prefixes =
                Prefixes::from_stored(&stored).map_err(|e| InitError::Other(e.to_string()))?;
            let catalog = store
                .stored_catalog()
                .map_err(|e| InitError::Other(e.to_string()))?;
            store.catalog.set(catalog);
            Ok(())
        }) {
            Ok(()) => Ok(store),
            Err(InitError::Newer(found)) => Err(OpenError::NewerFormat {
                path,
                found,
                supported: FORMAT_VERSION,
            }),
            Err(InitError::Other(detail)) => Err(not_a_store(detail)),
        }
    }

    /// Creates the tables of a new store (whose tokens get `prefix`), or
    /// checks the format of an old one and upgrades it.
    pub(super) fn init_format(&self, prefix: Prefix) -> Result<(), InitError> {
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
                if found < 3 {
                    self.upgrade_to_3().map_err(|e| other(&e))?;
                }
                if found < 4 {
                    self.upgrade_to_4().map_err(|e| other(&e))?;
                }
                if found < 5 {
                    self.upgrade_to_5().map_err(|e| other(&e))?;
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
                    txn.open_table(PERMISSIONS).map_err(|e| other(&e))?;
                }
                write_first_prefix(&txn, prefix).map_err(|e| other(&e))?;
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
    pub(super) fn upgrade_to_2(&self) -> Result<(), StoreError> {
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
}

impl Inner {
    /// Format 2 to 3 (a prefix per store): the store's tokens all carry
    /// `pat`, the only prefix there was.
    pub(super) fn upgrade_to_3(&self) -> Result<(), StoreError> {
        self.write(|txn| {
            write_first_prefix(txn, Prefix::DEFAULT)?;
            let mut meta = txn.open_table(META).map_err(storage)?;
            meta.insert(FORMAT_KEY, 3).map_err(storage)?;
            Ok(())
        })
    }

    /// Format 3 to 4 (named permissions): an empty catalog. Records keep
    /// their versions; one with named permissions is written in record
    /// version 4.
    pub(super) fn upgrade_to_4(&self) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(PERMISSIONS).map_err(storage)?;
            let mut meta = txn.open_table(META).map_err(storage)?;
            meta.insert(FORMAT_KEY, 4).map_err(storage)?;
            Ok(())
        })
    }

    /// Format 4 to 5 (a token's limits and state, such as its suspension):
    /// nothing to convert, since every token from before is enabled and
    /// unlimited; a record that has any is written in record version 5,
    /// which a build of format 4 would misread, so the number moves.
    pub(super) fn upgrade_to_5(&self) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut meta = txn.open_table(META).map_err(storage)?;
            meta.insert(FORMAT_KEY, 5).map_err(storage)?;
            Ok(())
        })
    }

    /// The catalog as committed now.
    pub(super) fn stored_catalog(&self) -> Result<Catalog, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(PERMISSIONS).map_err(storage)?;
        read_catalog(&table)
    }

    /// The prefixes stored, the current one first (see
    /// [`Prefixes::all`]).
    pub(super) fn stored_prefixes(&self) -> Result<Vec<Prefix>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let meta = txn.open_table(META).map_err(storage)?;
        let prefixes = txn.open_table(PREFIXES).map_err(storage)?;
        read_prefixes(&meta, &prefixes)
    }
}

/// The catalog in `table`, checked as a whole.
pub(super) fn read_catalog(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Catalog, StoreError> {
    let mut defs = Vec::new();
    for entry in table.iter().map_err(storage)? {
        let (name, bytes) = entry.map_err(storage)?;
        defs.push(codec::decode_permission(name.value(), bytes.value()).map_err(corrupt)?);
    }
    Catalog::of(defs).map_err(|e| corrupt(format!("the catalog: {e}")))
}

/// A new store's first prefix, current.
fn write_first_prefix(txn: &redb::WriteTransaction, prefix: Prefix) -> Result<(), StoreError> {
    let mut prefixes = txn.open_table(PREFIXES).map_err(storage)?;
    prefixes.insert(0, prefix.as_str()).map_err(storage)?;
    let mut meta = txn.open_table(META).map_err(storage)?;
    meta.insert(CURRENT_PREFIX_KEY, 0).map_err(storage)?;
    Ok(())
}

/// The prefixes in `prefixes`, the current one (as `meta` names it) first.
pub(super) fn read_prefixes(
    meta: &impl ReadableTable<&'static str, u64>,
    prefixes: &impl ReadableTable<u64, &'static str>,
) -> Result<Vec<Prefix>, StoreError> {
    let current = meta
        .get(CURRENT_PREFIX_KEY)
        .map_err(storage)?
        .map(|v| v.value())
        .ok_or_else(|| corrupt("no current token prefix".into()))?;
    let mut all = Vec::new();
    for entry in prefixes.iter().map_err(storage)? {
        let (n, text) = entry.map_err(storage)?;
        let prefix =
            Prefix::new(text.value()).map_err(|e| corrupt(format!("stored token prefix: {e}")))?;
        if n.value() == current {
            all.insert(0, prefix);
        } else {
            all.push(prefix);
        }
    }
    if all
        .first()
        .is_none_or(|_| prefixes.get(current).ok().flatten().is_none())
    {
        return Err(corrupt(format!(
            "the current token prefix, number {current}, is missing"
        )));
    }
    Ok(all)
}

pub(super) enum InitError {
    Newer(u64),
    Other(String),
}
