//! A backend's memory: the records of tokens in use and their buffered uses,
//! shared by the redb store and the PostgreSQL backend.
//!
//! The request path (a cache hit) takes no lock and allocates nothing but
//! the identity's reference count: the record map is a concurrent map whose
//! reads write no shared memory, and each cached record carries its buffered
//! use (last use, sliding deadline) in atomics, updated only when they
//! change (once a second at most, time being counted in seconds). Writing
//! buffered uses to the file clears a flag and leaves the records in place,
//! so a hot token never misses the cache.
//!
//! The cache is bounded: past its capacity, a CLOCK sweep evicts records
//! not used since the hand last passed (a record used since gets a second
//! chance). The buffered use of an evicted record moves to a small map of
//! "orphan" uses, which is also where uses go when caching is off.
//!
//! A record read from the file is cached only if no write changed the file
//! since the read began (a generation counter, bumped by every write after
//! its commit); otherwise it is read again.
//!
//! Digests the backend answered "no such token" for are remembered too (a
//! set bounded by the same capacity, cleared when full), so a client
//! repeating a revoked token costs one read, not one per request. That
//! memory needs no invalidation: a digest becomes a token's only when a
//! freshly generated secret is stored, before anyone can present it.
//!
//! A backend shared by several processes (PostgreSQL) also gives the cache a
//! staleness bound: a record read longer ago is read again, its unwritten
//! use carried over, and the backend evicts records other processes changed
//! ([`Cache::forget`]).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::AuthError;
use crate::expiry::Expiry;
use crate::record::{Identity, TokenInfo};
use crate::time::Timestamp;
use crate::token::TokenDigest;

/// A buffered use: what the record will hold once it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Touch {
    pub(crate) last_used_at: Timestamp,
    pub(crate) expires_at: Timestamp,
}

impl Touch {
    /// This buffered use merged over what the file says: the newer of each
    /// value wins.
    fn merge(self, last_used_at: Option<Timestamp>, expiry: Expiry) -> (Timestamp, Expiry) {
        (
            last_used_at.map_or(self.last_used_at, |t| t.max(self.last_used_at)),
            expiry.extended_to(self.expires_at),
        )
    }

    /// Merges the buffered use into a record read from the file.
    pub(crate) fn apply(self, info: &mut TokenInfo) {
        let (last_used_at, expiry) = self.merge(info.last_used_at, info.expiry);
        info.last_used_at = Some(last_used_at);
        info.expiry = expiry;
    }

    /// The later of two buffered uses of one token.
    fn max(self, other: Touch) -> Touch {
        Touch {
            last_used_at: self.last_used_at.max(other.last_used_at),
            expires_at: self.expires_at.max(other.expires_at),
        }
    }
}

/// A hasher for keys that are SHA-256 digests: their first eight bytes are
/// already uniformly distributed. Safe against collision floods because only
/// the store's own tokens are ever inserted (their secrets are random), and
/// a lookup of a chosen digest only probes.
#[derive(Clone, Copy, Default)]
pub(crate) struct DigestHasher;

impl BuildHasher for DigestHasher {
    type Hasher = DigestHash;
    fn build_hasher(&self) -> DigestHash {
        DigestHash(0)
    }
}

pub(crate) struct DigestHash(u64);

impl Hasher for DigestHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A digest hashes as its 32 bytes (a length prefix is not written for
        // arrays); anything else still gets a deterministic, if poor, hash.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }
}

/// A cached record and its buffered use.
pub(crate) struct Entry {
    digest: TokenDigest,
    /// The record as the file held it when it was read.
    info: TokenInfo,
    /// Last use, in seconds since the epoch plus one; 0 for never.
    last_used: AtomicU64,
    /// The deadline, moved forward by uses of a sliding token.
    expires_at: AtomicU64,
    /// Whether a use has not been written yet; set with the entry's push
    /// onto the dirty list.
    dirty: AtomicBool,
    /// The CLOCK bit: used since the hand last passed.
    referenced: AtomicBool,
    /// Set when evicted: a use racing the eviction then moves its own use
    /// to the orphans (see [`Cache::record_use`]).
    evicted: AtomicBool,
    /// When the record was read, for the staleness bound.
    read_at: Instant,
}

impl Entry {
    fn new(digest: TokenDigest, info: TokenInfo, pending: Option<Touch>) -> Entry {
        let mut last_used = info.last_used_at;
        let mut expiry = info.expiry;
        if let Some(t) = pending {
            (last_used, expiry) = {
                let (l, e) = t.merge(last_used, expiry);
                (Some(l), e)
            };
        }
        Entry {
            digest,
            last_used: AtomicU64::new(last_used.map_or(0, |t| t.as_unix_secs() + 1)),
            expires_at: AtomicU64::new(expiry.expires_at().as_unix_secs()),
            info,
            dirty: AtomicBool::new(false),
            // A new record gets the chance a used one would: it is about to
            // be used.
            referenced: AtomicBool::new(true),
            evicted: AtomicBool::new(false),
            read_at: Instant::now(),
        }
    }

    /// The buffered use as it stands, or `None` if never used.
    fn touch(&self) -> Option<Touch> {
        let last = self.last_used.load(Ordering::Acquire);
        let expires = self.expires_at.load(Ordering::Acquire);
        (last > 0).then(|| Touch {
            last_used_at: Timestamp::from_unix_secs(last - 1).unwrap_or(Timestamp::MAX),
            expires_at: Timestamp::from_unix_secs(expires).unwrap_or(Timestamp::MAX),
        })
    }

    /// A use at `now`, as [`TokenInfo::check_use`] rules, recorded in the
    /// atomics. Returns whether the values changed and whether the entry
    /// just became dirty (to be put on the dirty list).
    fn use_at(
        self: &Arc<Self>,
        user: Option<&str>,
        now: Timestamp,
    ) -> Result<(Identity, bool, bool), AuthError> {
        let stored = self.expires_at.load(Ordering::Acquire);
        let current = self
            .info
            .expiry
            .extended_to(Timestamp::from_unix_secs(stored).unwrap_or(Timestamp::MAX));
        let next = self.info.check_use_with(current, user, now)?;
        let mut changed = false;
        if next.as_unix_secs() > stored {
            self.expires_at
                .fetch_max(next.as_unix_secs(), Ordering::AcqRel);
            changed = true;
        }
        let used = now.as_unix_secs() + 1;
        if self.last_used.load(Ordering::Acquire) < used {
            self.last_used.fetch_max(used, Ordering::AcqRel);
            changed = true;
        }
        if !self.referenced.load(Ordering::Relaxed) {
            self.referenced.store(true, Ordering::Relaxed);
        }
        // Swapped (not loaded) so that the flusher or an eviction, which swap
        // it back, either see these values or get the entry pushed again.
        let newly_dirty = changed && !self.dirty.swap(true, Ordering::SeqCst);
        Ok((Identity::new(&self.info, next), changed, newly_dirty))
    }
}

/// The store's memory; see the module documentation.
pub(crate) struct Cache {
    records: papaya::HashMap<TokenDigest, Arc<Entry>, DigestHasher>,
    capacity: usize,
    /// Records older than this are read again (a backend other processes
    /// write to); `None` for an exact cache.
    fresh_for: Option<Duration>,
    /// Cached digests in CLOCK order; taken for inserts and evictions only.
    clock: Mutex<VecDeque<TokenDigest>>,
    /// Bumped after every committed write (see the module documentation).
    generation: AtomicU64,
    /// Entries with uses not written yet.
    dirty: Mutex<Vec<Arc<Entry>>>,
    /// Uses not held by a cached entry: evicted ones, or caching off.
    orphans: Mutex<HashMap<TokenDigest, Touch>>,
    /// Dirty entries taken by a flush that has not committed yet.
    in_flight: std::sync::atomic::AtomicUsize,
    /// Digests the backend answered "no such token" for, so that a client
    /// repeating a revoked or mistyped token costs one read, not one per
    /// request. Never invalidated, and safely so: a digest becomes a
    /// token's only when a newly generated secret is stored, before anyone
    /// holds it. Bounded by `capacity` (cleared when full), and keyed with
    /// a random hasher, since clients choose these keys.
    unknown: papaya::HashMap<TokenDigest, (), std::hash::RandomState>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent between statements.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The answer of [`Cache::hit`] when the record is not cached.
pub(crate) struct Miss {
    generation: u64,
}

impl Cache {
    /// A cache of at most `capacity` records (0: uses are only buffered),
    /// each used for at most `fresh_for` after it was read (`None`: for as
    /// long as it is cached).
    pub(crate) fn new(capacity: usize, fresh_for: Option<Duration>) -> Cache {
        Cache {
            records: papaya::HashMap::builder()
                .hasher(DigestHasher)
                .capacity(capacity.min(1 << 16))
                .build(),
            capacity,
            fresh_for,
            clock: Mutex::new(VecDeque::new()),
            generation: AtomicU64::new(0),
            dirty: Mutex::new(Vec::new()),
            orphans: Mutex::new(HashMap::new()),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            unknown: papaya::HashMap::new(),
        }
    }

    /// Notes that the backend holds no token with `digest` (never issued,
    /// revoked or pruned): later lookups of it are answered
    /// [`AuthError::Unknown`] from memory.
    pub(crate) fn unknown(&self, digest: TokenDigest) {
        if self.capacity == 0 {
            return;
        }
        let unknown = self.unknown.pin();
        if unknown.len() >= self.capacity {
            unknown.clear();
        }
        unknown.insert(digest, ());
    }

    /// How many digests are noted as unknown.
    pub(crate) fn unknown_len(&self) -> usize {
        self.unknown.len()
    }

    /// The request path: a use of `digest` if its record is cached, else
    /// what [`Cache::miss`] needs.
    pub(crate) fn hit(
        &self,
        digest: &TokenDigest,
        user: Option<&str>,
        now: Timestamp,
    ) -> Result<Result<Identity, AuthError>, Miss> {
        let generation = self.generation.load(Ordering::Acquire);
        let guard = self.records.guard();
        match self.records.get(digest, &guard) {
            Some(entry) if !self.stale(entry) => Ok(self.record_use(entry, user, now)),
            Some(entry) => {
                // Read again, keeping the use not written yet.
                let entry = entry.clone();
                self.remove(&entry, &guard);
                Err(Miss {
                    generation: self.generation.load(Ordering::Acquire),
                })
            }
            None if self.unknown.pin().contains_key(digest) => Ok(Err(AuthError::Unknown)),
            None => Err(Miss { generation }),
        }
    }

    fn stale(&self, entry: &Entry) -> bool {
        self.fresh_for
            .is_some_and(|bound| entry.read_at.elapsed() >= bound)
    }

    fn record_use(
        &self,
        entry: &Arc<Entry>,
        user: Option<&str>,
        now: Timestamp,
    ) -> Result<Identity, AuthError> {
        let (identity, changed, newly_dirty) = entry.use_at(user, now)?;
        if newly_dirty {
            lock(&self.dirty).push(entry.clone());
        }
        // Evicted meanwhile: the eviction may have moved the entry's use to
        // the orphans before this one landed; move it again so that reads see
        // it. (Either this sees the flag, or the eviction's swap of `dirty`,
        // which comes after it sets the flag, sees this use.)
        if changed
            && entry.evicted.load(Ordering::SeqCst)
            && let Some(touch) = entry.touch()
        {
            self.orphan(entry.digest, touch);
        }
        Ok(identity)
    }

    /// A use of `digest`, whose record `info` was just read from the file
    /// after `miss`. `None` if the file changed meanwhile: read it again.
    /// With `last_try`, the use is recorded whatever happened.
    pub(crate) fn miss(
        &self,
        miss: Miss,
        digest: TokenDigest,
        info: TokenInfo,
        user: Option<&str>,
        now: Timestamp,
        last_try: bool,
    ) -> Option<Result<Identity, AuthError>> {
        if self.capacity == 0 || last_try {
            return self.use_uncached(&miss, digest, info, user, now, last_try);
        }
        let pending = lock(&self.orphans).get(&digest).copied();
        let fresh = Arc::new(Entry::new(digest, info, pending));
        let entry = {
            let mut clock = lock(&self.clock);
            if self.generation.load(Ordering::Acquire) != miss.generation {
                return None;
            }
            let guard = self.records.guard();
            match self.records.try_insert(digest, fresh.clone(), &guard) {
                Ok(_) => {
                    clock.push_back(digest);
                    self.evict(&mut clock, &guard);
                    fresh
                }
                // Another request cached it first: use theirs.
                Err(e) => e.current.clone(),
            }
        };
        Some(self.record_use(&entry, user, now))
    }

    /// A use recorded in the orphan map, for a record that is not cached;
    /// `None` (unless `last_try`) if the file changed since the read began.
    fn use_uncached(
        &self,
        miss: &Miss,
        digest: TokenDigest,
        info: TokenInfo,
        user: Option<&str>,
        now: Timestamp,
        last_try: bool,
    ) -> Option<Result<Identity, AuthError>> {
        let mut orphans = lock(&self.orphans);
        // A flush bumps the generation before it drops the orphan uses it
        // wrote, under this lock: a read that missed them sees the bump.
        if !last_try && self.generation.load(Ordering::Acquire) != miss.generation {
            return None;
        }
        Some(Self::orphan_use(&mut orphans, digest, info, user, now))
    }

    fn orphan_use(
        orphans: &mut HashMap<TokenDigest, Touch>,
        digest: TokenDigest,
        info: TokenInfo,
        user: Option<&str>,
        now: Timestamp,
    ) -> Result<Identity, AuthError> {
        let previous = orphans.get(&digest).copied();
        let (last_used_at, expiry) = match previous {
            Some(p) => {
                let (last, expiry) = p.merge(info.last_used_at, info.expiry);
                (Some(last), expiry)
            }
            None => (info.last_used_at, info.expiry),
        };
        let expires_at = info.check_use_with(expiry, user, now)?;
        let touch = Touch {
            last_used_at: last_used_at.map_or(now, |t| t.max(now)),
            expires_at,
        };
        orphans.insert(digest, touch);
        Ok(Identity::new(&info, expires_at))
    }

    /// Evicts records past the capacity, CLOCK-wise: a record used since
    /// the hand last passed gets a second chance.
    fn evict(&self, clock: &mut VecDeque<TokenDigest>, guard: &impl papaya::Guard) {
        while self.records.len() > self.capacity {
            let Some(digest) = clock.pop_front() else {
                return;
            };
            let Some(entry) = self.records.get(&digest, guard) else {
                continue; // removed by a write meanwhile
            };
            if entry.referenced.swap(false, Ordering::Relaxed) {
                clock.push_back(digest);
                continue;
            }
            let entry = entry.clone();
            self.remove(&entry, guard);
        }
    }

    /// Takes `entry` out of the map; its unwritten use, if any, moves to
    /// the orphans.
    fn remove(&self, entry: &Arc<Entry>, guard: &impl papaya::Guard) {
        self.records
            .remove_if(&entry.digest, |_, e| Arc::ptr_eq(e, entry), guard)
            .ok();
        entry.evicted.store(true, Ordering::SeqCst);
        if entry.dirty.swap(false, Ordering::SeqCst)
            && let Some(touch) = entry.touch()
        {
            self.orphan(entry.digest, touch);
        }
    }

    /// Forgets the cached records of `digests` (changed or deleted by
    /// another process; `None`: all of them), keeping their unwritten uses.
    /// Only a shared database has other processes writing.
    #[cfg(feature = "postgres")]
    pub(crate) fn forget(&self, digests: Option<&[TokenDigest]>) {
        self.written();
        let guard = self.records.guard();
        let doomed: Vec<Arc<Entry>> = match digests {
            Some(list) => list
                .iter()
                .filter_map(|d| self.records.get(d, &guard).cloned())
                .collect(),
            None => self.records.values(&guard).cloned().collect(),
        };
        for entry in &doomed {
            self.remove(entry, &guard);
        }
    }

    /// Keeps a use of a record that is not cached.
    fn orphan(&self, digest: TokenDigest, touch: Touch) {
        let mut orphans = lock(&self.orphans);
        let merged = orphans.get(&digest).map_or(touch, |t| t.max(touch));
        orphans.insert(digest, merged);
    }

    /// The buffered use of `digest`, merged into a record just read.
    pub(crate) fn overlay(&self, digest: &TokenDigest, info: &mut TokenInfo) {
        let guard = self.records.guard();
        if let Some(t) = self.records.get(digest, &guard).and_then(|e| e.touch()) {
            t.apply(info);
        }
        if let Some(t) = lock(&self.orphans).get(digest) {
            t.apply(info);
        }
    }

    /// After a committed write: records read before it must not be cached.
    pub(crate) fn written(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// After a committed deletion of `digests`: forgets them.
    pub(crate) fn deleted<'a>(&self, digests: impl IntoIterator<Item = &'a TokenDigest>) {
        self.written();
        let guard = self.records.guard();
        let mut orphans = lock(&self.orphans);
        for d in digests {
            self.records.remove(d, &guard);
            orphans.remove(d);
        }
    }

    /// What a flush writes: the buffered uses, by digest. The cached
    /// entries' flags are cleared now; if the write fails, hand the batch
    /// back with [`Cache::unflushed`].
    pub(crate) fn take_uses(&self) -> FlushBatch {
        let entries = std::mem::take(&mut *lock(&self.dirty));
        self.in_flight.fetch_add(entries.len(), Ordering::AcqRel);
        let mut uses: HashMap<TokenDigest, Touch> = lock(&self.orphans).clone();
        let orphans = uses.clone();
        for e in &entries {
            e.dirty.swap(false, Ordering::SeqCst);
            if let Some(t) = e.touch() {
                let merged = uses.get(&e.digest).map_or(t, |u| u.max(t));
                uses.insert(e.digest, merged);
            }
        }
        FlushBatch {
            uses,
            entries,
            orphans,
        }
    }

    /// After the batch was committed: orphan uses that did not change
    /// meanwhile are forgotten (the file has them now).
    pub(crate) fn flushed(&self, batch: FlushBatch) {
        let mut orphans = lock(&self.orphans);
        self.written();
        self.in_flight
            .fetch_sub(batch.entries.len(), Ordering::AcqRel);
        for (digest, touch) in batch.orphans {
            if orphans.get(&digest) == Some(&touch) {
                orphans.remove(&digest);
            }
        }
    }

    /// After the batch failed to be written: its entries are dirty again.
    pub(crate) fn unflushed(&self, batch: FlushBatch) {
        self.in_flight
            .fetch_sub(batch.entries.len(), Ordering::AcqRel);
        let mut dirty = lock(&self.dirty);
        for e in batch.entries {
            if !e.dirty.swap(true, Ordering::SeqCst) {
                dirty.push(e);
            }
        }
    }

    /// How many tokens have uses not written yet.
    pub(crate) fn pending(&self) -> usize {
        let dirty: std::collections::HashSet<TokenDigest> =
            lock(&self.dirty).iter().map(|e| e.digest).collect();
        let orphans = lock(&self.orphans);
        dirty.len()
            + self.in_flight.load(Ordering::Acquire)
            + orphans.keys().filter(|d| !dirty.contains(d)).count()
    }

    /// How many records are cached.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }
}

/// The uses one flush writes.
pub(crate) struct FlushBatch {
    /// Every buffered use, by digest.
    pub(crate) uses: HashMap<TokenDigest, Touch>,
    entries: Vec<Arc<Entry>>,
    orphans: HashMap<TokenDigest, Touch>,
}
