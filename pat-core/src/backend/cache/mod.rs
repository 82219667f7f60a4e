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
//! Digests the backend answered "no such token" for are remembered too (a
//! set bounded by the same capacity, cleared when full), so a client
//! repeating a revoked token costs one read, not one per request. That
//! memory needs no invalidation in one process: a digest becomes a token's
//! only when a freshly generated secret is stored, before anyone can
//! present it. Old secrets presented after their grace are remembered the
//! same way, with whose they are, for the audit log ([`Cache::replayed`]).
//!
//! A backend shared by several processes (PostgreSQL) also gives the cache a
//! staleness bound: a record (or an unknown digest) read longer ago is read
//! again, its unwritten use carried over, and the backend evicts records
//! other processes changed ([`Cache::forget`]).
//!
//! # The protocol
//!
//! These rules keep "revoked: refused on the very next request" and "a
//! token alive by its buffered deadline is never refused" under every
//! interleaving of lookups, writes, flushes and evictions. Each names the
//! code that keeps it; `failpoints` pauses threads at the windows between.
//!
//! 1. **A read is cached only if no write committed since it began.** A
//!    lookup notes the generation before it reads the file ([`Cache::hit`]
//!    returns it in [`Miss`]); every write bumps it after its commit
//!    ([`Cache::written`]). [`Cache::miss`] compares the two and inserts
//!    under the `clock` lock; [`Cache::deleted`] and [`Cache::forget`] bump
//!    the generation and remove entries under the *same* lock. So a read
//!    that began before a deletion's commit either sees the bump and reads
//!    again, or inserts before the removal and is removed by it: once a
//!    revocation returns, no entry for it exists or can be added, however
//!    the threads interleave. A request that began before the revocation
//!    returned may still be answered by the old record; it was concurrent
//!    with it.
//! 2. **Every buffered use is always somewhere a read finds it**: in its
//!    cached entry's atomics; in the orphans (an entry removed while dirty,
//!    or caching off); or, from [`Cache::take_uses`] until the flush ends,
//!    in the flush's batch, which stays readable in the buffer, and after a
//!    commit in `recent` until the next commit (for a read of the file that
//!    began before it). A failed flush puts each use back where it was
//!    ([`Cache::unflushed`]). Reads ([`Cache::overlay`], a miss's new entry)
//!    merge all of them; a cached entry that would refuse a token as
//!    expired first takes in what the buffer holds for it.
//! 3. **Every list and map is bounded**: the records by the capacity; the
//!    CLOCK queue holds one slot per insert and the dirty list one per
//!    entry that became dirty, and each is compacted to the live entries
//!    when it passes twice their number (an entry that left the map has
//!    nothing left to flush: its answered uses moved to the orphans, and
//!    it answers no use after); a failed flush puts back only entries still
//!    cached; the unknown digests by the capacity (cleared
//!    when full); pending audit entries by one per token and the capacity;
//!    the orphans by the tokens used since the last successful flush.
//!
//! 4. **A prune never deletes a token a use kept alive.** Its decision
//!    and the uses that race it are ordered by [`Cache::doom`]: a use
//!    either lands before the prune's last look (which then spares the
//!    token) or is refused as unknown, the token being deleted. Only a use
//!    whose own `now` is earlier than the prune's, with the deadline
//!    between them, can be refused that way: it raced the deadline itself.
//!
//! Locks, always taken in this order and never across I/O: `clock`, then
//! `dirty`, then `buffer`; `audit` alone; an entry's `seen` (its last client
//! addresses) last of all, held while taking no other.

mod clock;
mod entry;
mod prune;
mod replays;
#[cfg(test)]
mod tests;
mod uses;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

pub(crate) use self::entry::{DigestHasher, Touch};

use self::entry::{Entry, Used};
use self::replays::{PendingAudit, Replay};
use self::uses::Buffer;
use crate::backend::engine::lookup::Uses;
use crate::error::AuthError;
use crate::model::record::{Identity, Origin, TokenInfo};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};
use crate::testing::failpoints::{Hooks, Point};

/// The store's memory; see the module documentation.
pub(crate) struct Cache {
    records: papaya::HashMap<TokenDigest, Arc<Entry>, DigestHasher>,
    capacity: usize,
    /// Records older than this are read again (a backend other processes
    /// write to); `None` for an exact cache.
    fresh_for: Option<Duration>,
    /// Cached entries in CLOCK order. Taken to insert, to evict, and to
    /// forget deleted or changed records (rule 1).
    clock: Mutex<VecDeque<Weak<Entry>>>,
    /// Bumped after every committed write (rule 1).
    generation: AtomicU64,
    /// Entries with uses not written yet.
    dirty: Mutex<Vec<Arc<Entry>>>,
    /// Uses no cached entry holds (rule 2).
    buffer: Mutex<Buffer>,
    /// Digests the backend answered "no such token" for (see the module
    /// documentation). Keyed with a random hasher, since clients choose
    /// these keys.
    unknown: papaya::HashMap<TokenDigest, Unknown, std::hash::RandomState>,
    /// Audit entries the request path noted, for the next flush.
    audit: Mutex<PendingAudit>,
    /// Where tests pause threads; nothing unless armed.
    pub(crate) hooks: Hooks,
    /// Records evicted to stay within the capacity.
    evictions: crate::metrics::Count,
    /// Unknown digests answered from memory.
    unknown_hits: crate::metrics::Count,
}

/// Why a use of `entry` is refused: `why`, or unknown when the token is as
/// good as gone (a prune deleting it, reuse detection revoking it), as
/// every backend answers whatever else is wrong with the request.
fn refusal(entry: &Entry, why: AuthError) -> AuthError {
    if entry.unusual() && !entry.survives_prune() {
        AuthError::Unknown
    } else {
        why
    }
}

/// A remembered unknown digest.
struct Unknown {
    /// When the backend said so, for the staleness bound.
    at: Instant,
    /// Set for a rotated token's old secret presented after its grace.
    replay: Option<Arc<Replay>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent between statements.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The answer of [`Cache::hit`] when the record is not cached.
pub(crate) struct Miss {
    generation: u64,
    /// When the read began: a record's staleness counts from here.
    started: Instant,
}

impl Cache {
    /// A cache of at most `capacity` records (0: uses are only buffered),
    /// each used for at most `fresh_for` after its read began (`None`: for
    /// as long as it is cached).
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
            buffer: Mutex::new(Buffer::default()),
            unknown: papaya::HashMap::new(),
            audit: Mutex::new(PendingAudit::default()),
            hooks: Hooks::default(),
            evictions: crate::metrics::Count::new(crate::metrics::CACHE_EVICTIONS),
            unknown_hits: crate::metrics::Count::new(crate::metrics::UNKNOWN_CACHE_HITS),
        }
    }

    /// Notes that the backend holds no token with `digest` (never issued,
    /// revoked or pruned): later lookups of it are answered
    /// [`AuthError::Unknown`] from memory.
    pub(crate) fn unknown(&self, digest: TokenDigest) {
        self.remember_unknown(
            digest,
            Unknown {
                at: Instant::now(),
                replay: None,
            },
        );
    }

    fn remember_unknown(&self, digest: TokenDigest, unknown: Unknown) {
        if self.capacity == 0 {
            return;
        }
        let map = self.unknown.pin();
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(digest, unknown);
    }

    /// How many digests are noted as unknown.
    pub(crate) fn unknown_len(&self) -> usize {
        self.unknown.len()
    }

    /// The request path: a use of `digest` if its record is cached, else
    /// what [`Cache::miss`] needs.
    #[inline]
    pub(crate) fn hit(
        &self,
        digest: &TokenDigest,
        user: Option<&str>,
        origin: Origin<'_>,
        now: Timestamp,
    ) -> Result<Result<Identity, AuthError>, Miss> {
        self.probe(digest, user, origin, now, true)
    }

    /// [`hit`](Cache::hit) answering from a cached record only: `None` for
    /// a digest it holds no record of, even one remembered as unknown (a
    /// lookup by a caller's digest, such as introspection's `token_digest`,
    /// remembers digests no token check vouched for). What
    /// [`Verifier::verify_cached`](crate::Verifier::verify_cached) answers.
    #[inline]
    pub(crate) fn hit_record(
        &self,
        digest: &TokenDigest,
        user: Option<&str>,
        origin: Origin<'_>,
        now: Timestamp,
    ) -> Option<Result<Identity, AuthError>> {
        self.probe(digest, user, origin, now, false).ok()
    }

    fn probe(
        &self,
        digest: &TokenDigest,
        user: Option<&str>,
        origin: Origin<'_>,
        now: Timestamp,
        unknown: bool,
    ) -> Result<Result<Identity, AuthError>, Miss> {
        let generation = self.generation.load(Ordering::Acquire);
        let guard = self.records.guard();
        match self.records.get(digest, &guard) {
            Some(entry) if !self.stale(entry.read_at) => {
                let _ = self.hooks.at(Point::HitFound);
                self.record_use(entry, user, origin, now, generation)
            }
            Some(entry) => {
                // Read again, keeping the use not written yet; under the
                // lock every removal takes (rules 2 and 4).
                let entry = entry.clone();
                {
                    let _clock = lock(&self.clock);
                    self.remove_in(&entry, &guard);
                }
                Err(Miss {
                    generation: self.generation.load(Ordering::Acquire),
                    started: Instant::now(),
                })
            }
            None if unknown => self.hit_unknown(digest, generation, now),
            None => Err(Miss {
                generation,
                started: Instant::now(),
            }),
        }
    }

    #[cold]
    fn hit_unknown(
        &self,
        digest: &TokenDigest,
        generation: u64,
        now: Timestamp,
    ) -> Result<Result<Identity, AuthError>, Miss> {
        match self.unknown.pin().get(digest) {
            Some(u) if !self.stale(u.at) => {
                if let Some(replay) = &u.replay {
                    self.note_replay(replay, now);
                }
                self.unknown_hits.add(1);
                Ok(Err(AuthError::Unknown))
            }
            _ => Err(Miss {
                generation,
                started: Instant::now(),
            }),
        }
    }

    fn stale(&self, read_at: Instant) -> bool {
        self.fresh_for
            .is_some_and(|bound| read_at.elapsed() >= bound)
    }

    /// A use of a cached entry; a [`Miss`] (with `generation`, noted
    /// before the entry was found) when the entry left the map while the
    /// use moved its values: the record is read again.
    fn record_use(
        &self,
        entry: &Arc<Entry>,
        user: Option<&str>,
        origin: Origin<'_>,
        now: Timestamp,
        generation: u64,
    ) -> Result<Result<Identity, AuthError>, Miss> {
        let used = match entry.use_at(user, origin, now) {
            Ok(used) => used,
            Err(AuthError::Expired { .. }) => match self.use_expired(entry, user, origin, now) {
                Ok(used) => used,
                Err(e) => return Ok(Err(refusal(entry, e))),
            },
            Err(e) => return Ok(Err(refusal(entry, e))),
        };
        // A use that moved nothing may still answer by values another use
        // moved and was refused for (a prune condemned the token, or the
        // entry left the map): it is judged alike. Two loads on the common
        // path; the rest is cold.
        if used.changed || entry.unusual() {
            return match self.used(entry, used.changed && used.newly_dirty) {
                Some(Ok(())) => Ok(Ok(entry.identity(&used))),
                Some(Err(e)) => Ok(Err(e)),
                None => Err(Miss {
                    generation,
                    started: Instant::now(),
                }),
            };
        }
        Ok(Ok(entry.identity(&used)))
    }

    /// What follows a use that moved the entry's values (once a second at
    /// most per token), or one of an entry a prune is deciding about or
    /// that left the map; kept out of the request path's common case.
    #[cold]
    #[inline(never)]
    fn used(&self, entry: &Arc<Entry>, newly_dirty: bool) -> Option<Result<(), AuthError>> {
        // Pushed whatever follows: the flag is set, and an entry dirty but
        // off the list would never be flushed again (a flush skips a token
        // deleted meanwhile).
        if newly_dirty {
            let mut dirty = lock(&self.dirty);
            dirty.push(entry.clone());
            self.compact_dirty(&mut dirty);
        }
        // A prune may be deleting the token: a use that moved its deadline
        // stands only if the prune saw it (rule 4).
        if !entry.survives_prune() {
            return Some(Err(AuthError::Unknown));
        }
        // Removed meanwhile (evicted, read again, deleted): an entry out of
        // the map answers nothing its successor or a prune could not see;
        // the record is read again. (Either this sees the flag, or the
        // removal, which sets it before it swaps `dirty`, sees this use and
        // keeps it in the orphans.)
        if entry.is_removed() {
            return None;
        }
        Some(Ok(()))
    }

    /// A cached entry found the token expired. Before refusing, it takes in
    /// a use it may have missed (rule 2): one that reached the orphans or a
    /// flush after the entry was built from the file.
    #[cold]
    #[inline(never)]
    fn use_expired(
        &self,
        entry: &Arc<Entry>,
        user: Option<&str>,
        origin: Origin<'_>,
        now: Timestamp,
    ) -> Result<Used, AuthError> {
        if let Some(touch) = lock(&self.buffer).of(&entry.digest) {
            entry.absorb(touch);
        }
        entry.use_at(user, origin, now)
    }

    /// A use of `digest`, whose record `info` was just read from the file
    /// after `miss`. `None` if the file changed meanwhile: read it again.
    /// With `last_try`, the use is recorded whatever happened.
    // The lookup's own inputs, passed through as they are (issue 26
    // added the client's origin); a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn miss(
        &self,
        miss: Miss,
        digest: TokenDigest,
        info: TokenInfo,
        user: Option<&str>,
        origin: Origin<'_>,
        now: Timestamp,
        last_try: bool,
    ) -> Option<Result<Identity, AuthError>> {
        if self.capacity == 0 || last_try {
            return self.use_uncached(&miss, digest, info, user, origin, now, last_try);
        }
        let entry = {
            let mut clock = lock(&self.clock);
            if self.generation.load(Ordering::Acquire) != miss.generation {
                return None;
            }
            // Rule 1's window: a deletion cannot run between the check
            // above and the insert below.
            let _ = self.hooks.at(Point::CacheInsert);
            // Every use kept outside an entry is written under `clock` or
            // moved between the buffer's maps at once (rule 2): read here,
            // none can be missed.
            let pending = {
                let buffer = lock(&self.buffer);
                if buffer.barred(&digest) {
                    return Some(Err(AuthError::Unknown));
                }
                buffer.of(&digest)
            };
            let fresh = Arc::new(Entry::new(digest, info, pending, miss.started));
            let guard = self.records.guard();
            match self.records.try_insert(digest, fresh.clone(), &guard) {
                Ok(_) => {
                    self.push_clock(&mut clock, &fresh);
                    self.evict(&mut clock, &guard);
                    fresh
                }
                // Another request cached it first: use theirs.
                Err(e) => e.current.clone(),
            }
        };
        self.record_use(&entry, user, origin, now, miss.generation)
            .ok()
    }

    /// A use recorded in the orphan map, for a record that is not cached;
    /// `None` (unless `last_try`) if the file changed since the read began.
    // The lookup's own inputs, passed through as they are (issue 26
    // added the client's origin); a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    fn use_uncached(
        &self,
        miss: &Miss,
        digest: TokenDigest,
        info: TokenInfo,
        user: Option<&str>,
        origin: Origin<'_>,
        now: Timestamp,
        last_try: bool,
    ) -> Option<Result<Identity, AuthError>> {
        // With a cache, under the lock inserts take: a new entry sees this
        // use (rule 2), and an entry cached meanwhile answers instead, its
        // uses being newer than this read. (Under `clock` it cannot leave
        // the map, and no prune is deciding about it.)
        let _clock = (self.capacity > 0).then(|| lock(&self.clock));
        if let Some(entry) = self.records.get(&digest, &self.records.guard())
            && let Ok(answered) = self.record_use(entry, user, origin, now, miss.generation)
        {
            return Some(answered);
        }
        let mut buffer = lock(&self.buffer);
        // A flush bumps the generation before it drops the orphan uses it
        // wrote, under this lock: a read that missed them sees the bump.
        if !last_try && self.generation.load(Ordering::Acquire) != miss.generation {
            return None;
        }
        if buffer.barred(&digest) {
            return Some(Err(AuthError::Unknown));
        }
        let (last_used_at, expiry) = match buffer.of(&digest) {
            Some(p) => {
                let (last, expiry) = p.merge(info.last_used_at, info.expiry);
                (Some(last), expiry)
            }
            None => (info.last_used_at, info.expiry),
        };
        let result = info
            .check_use_with(expiry, user, origin, now)
            .map(|expires_at| {
                let mut last_addresses = crate::model::record::LastAddresses::EMPTY;
                if let Some(addr) = origin.addr() {
                    last_addresses.seen(addr, now);
                }
                let touch = Touch {
                    last_used_at: last_used_at.map_or(now, |t| t.max(now)),
                    expires_at,
                    last_addresses,
                };
                buffer.orphan(digest, touch);
                Identity::new(&info, expires_at)
            });
        Some(result)
    }

    /// Forgets the cached records of `digests` (changed by a write, here or
    /// by another process; `None`: all of them, and the unknown digests),
    /// keeping their unwritten uses.
    pub(crate) fn forget(&self, digests: Option<&[TokenDigest]>) {
        // Rule 1: under the lock inserts take.
        let mut clock = lock(&self.clock);
        self.written();
        let guard = self.records.guard();
        let doomed: Vec<Arc<Entry>> = match digests {
            Some(list) => list
                .iter()
                .filter_map(|d| self.records.get(d, &guard).cloned())
                .collect(),
            None => {
                self.unknown.pin().clear();
                self.records.values(&guard).cloned().collect()
            }
        };
        for entry in &doomed {
            self.remove_in(entry, &guard);
        }
        self.compact_dirty(&mut lock(&self.dirty));
        self.compact_clock(&mut clock);
    }

    /// The buffered use of `digest`, merged into a record just read.
    pub(crate) fn overlay(&self, digest: &TokenDigest, info: &mut TokenInfo) {
        let guard = self.records.guard();
        if let Some(t) = self.records.get(digest, &guard).and_then(|e| e.touch()) {
            t.apply(info);
        }
        if let Some(t) = lock(&self.buffer).of(digest) {
            t.apply(info);
        }
    }

    /// After a committed write: records read before it must not be cached.
    pub(crate) fn written(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// After a committed deletion of `digests`: forgets them, with their
    /// buffered uses.
    pub(crate) fn deleted<'a>(&self, digests: impl IntoIterator<Item = &'a TokenDigest>) {
        let _ = self.hooks.at(Point::DeleteCommitted);
        // Rule 1: under the lock inserts take.
        let mut clock = lock(&self.clock);
        self.written();
        let guard = self.records.guard();
        {
            let mut buffer = lock(&self.buffer);
            for d in digests {
                if let Some(entry) = self.records.remove(d, &guard) {
                    entry.mark_removed();
                }
                buffer.orphans.remove(d);
                buffer.condemned.remove(d);
                buffer.refused.remove(d);
            }
        }
        self.compact_dirty(&mut lock(&self.dirty));
        self.compact_clock(&mut clock);
    }

    /// How many records are cached.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// The sizes of every map and list, for the race tests' bounds.
    #[cfg(any(test, feature = "failpoints"))]
    pub(crate) fn stats(&self) -> crate::testing::failpoints::CacheStats {
        let audit = self.audit_len();
        // Under the lock inserts take, which evict before they let go.
        let clock = lock(&self.clock);
        let records = self.records.len();
        let dirty = lock(&self.dirty).len();
        let (orphans, flushing) = lock(&self.buffer).len();
        crate::testing::failpoints::CacheStats {
            capacity: self.capacity,
            records,
            clock: clock.len(),
            dirty,
            orphans,
            flushing,
            unknown: self.unknown.len(),
            audit,
        }
    }
}

/// The shared cache as the lookup rule's [`Uses`]: its protocol, as is.
impl Uses for Cache {
    type Miss = Miss;

    fn hit(
        &self,
        digest: &TokenDigest,
        user: Option<&str>,
        origin: Origin<'_>,
        now: Timestamp,
    ) -> Result<Result<Identity, AuthError>, Miss> {
        Cache::hit(self, digest, user, origin, now)
    }

    fn miss(
        &self,
        miss: Miss,
        digest: TokenDigest,
        info: TokenInfo,
        user: Option<&str>,
        origin: Origin<'_>,
        now: Timestamp,
        last_try: bool,
    ) -> Option<Result<Identity, AuthError>> {
        Cache::miss(self, miss, digest, info, user, origin, now, last_try)
    }

    fn unknown(&self, digest: TokenDigest) {
        Cache::unknown(self, digest);
    }

    fn replayed(&self, digest: TokenDigest, id: TokenId, user: &str, now: Timestamp) -> AuthError {
        Cache::replayed(self, digest, id, user, now)
    }

    fn reused(&self, root: TokenId, digests: &[TokenDigest]) {
        Cache::reused(self, root, digests);
    }

    fn overlay(&self, digest: &TokenDigest, info: &mut TokenInfo) {
        Cache::overlay(self, digest, info);
    }

    fn read_done(&self) {
        let _ = self.hooks.at(Point::LookupRead);
    }
}
