//! Buffered uses that no cached entry holds, and the flushes that write
//! them: which uses a flush takes, and where they are while it writes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::entry::{Entry, Touch};
use super::{Cache, lock};
use crate::model::token::TokenDigest;

/// Uses kept outside the cached entries (under one lock, `Cache::buffer`).
#[derive(Default)]
pub(super) struct Buffer {
    /// Uses of records that are not cached: evicted, read again, or caching
    /// off. Kept until a flush writes them.
    pub(super) orphans: HashMap<TokenDigest, Touch>,
    /// The uses of each flush whose write has not committed: the entries
    /// they came from are clean again, so this is where reads find them.
    flushing: Vec<(u64, Arc<HashMap<TokenDigest, Touch>>)>,
    /// The uses of the last flush that committed, until the next one does:
    /// a read of the file that began before that commit may not hold them.
    recent: Arc<HashMap<TokenDigest, Touch>>,
    next_flush: u64,
    /// Tokens a prune is deleting (see `Cache::doom`): refused until the
    /// deletion is done, or spared if it fails.
    pub(super) condemned: HashMap<TokenDigest, u32>,
    /// Tokens reuse detection refuses until the next flush revokes them.
    pub(super) refused: HashSet<TokenDigest>,
}

impl Buffer {
    /// Whether `digest` is refused before any record says so: a prune is
    /// deleting it, or reuse detection revoking it.
    pub(super) fn barred(&self, digest: &TokenDigest) -> bool {
        self.condemned.contains_key(digest) || self.refused.contains(digest)
    }
}

impl Buffer {
    /// Every use of `digest` held here.
    pub(super) fn of(&self, digest: &TokenDigest) -> Option<Touch> {
        let mut found = self.orphans.get(digest).copied();
        for (_, uses) in &self.flushing {
            if let Some(t) = uses.get(digest) {
                found = Some(t.max_opt(found));
            }
        }
        if let Some(t) = self.recent.get(digest) {
            found = Some(t.max_opt(found));
        }
        found
    }

    /// Keeps a use of a record that is not cached.
    pub(super) fn orphan(&mut self, digest: TokenDigest, touch: Touch) {
        let merged = touch.max_opt(self.orphans.get(&digest).copied());
        self.orphans.insert(digest, merged);
    }

    /// How many uses the buffer holds, counting each map once.
    #[cfg(any(test, feature = "failpoints"))]
    pub(super) fn len(&self) -> (usize, usize) {
        let flushing: usize = self.flushing.iter().map(|(_, u)| u.len()).sum();
        (self.orphans.len(), flushing + self.recent.len())
    }
}

/// The uses one flush writes.
pub(crate) struct FlushBatch {
    id: u64,
    uses: Arc<HashMap<TokenDigest, Touch>>,
    entries: Vec<Arc<Entry>>,
    orphans: HashMap<TokenDigest, Touch>,
}

impl FlushBatch {
    /// Whether there is nothing to write.
    pub(crate) fn is_empty(&self) -> bool {
        self.uses.is_empty()
    }

    /// The uses to write, in digest order: two processes writing the same
    /// rows lock them in the same order, so their flushes cannot deadlock.
    pub(crate) fn sorted(&self) -> Vec<(TokenDigest, Touch)> {
        let mut uses: Vec<_> = self.uses.iter().map(|(d, t)| (*d, *t)).collect();
        uses.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        uses
    }
}

impl Cache {
    /// What a flush writes: every buffered use, by digest. The cached
    /// entries are clean now; until [`Cache::flushed`] or
    /// [`Cache::unflushed`], reads find the batch's uses in the buffer.
    pub(crate) fn take_uses(&self) -> FlushBatch {
        let entries = std::mem::take(&mut *lock(&self.dirty));
        let mut buffer = lock(&self.buffer);
        let orphans = buffer.orphans.clone();
        let mut uses = orphans.clone();
        for e in &entries {
            e.dirty.swap(false, Ordering::SeqCst);
            if let Some(t) = e.touch() {
                uses.insert(e.digest, t.max_opt(uses.get(&e.digest).copied()));
            }
        }
        let id = buffer.next_flush;
        buffer.next_flush += 1;
        let uses = Arc::new(uses);
        if !uses.is_empty() {
            buffer.flushing.push((id, uses.clone()));
        }
        FlushBatch {
            id,
            uses,
            entries,
            orphans,
        }
    }

    /// After the batch was committed: orphan uses that did not change
    /// meanwhile are forgotten (the file has them now).
    pub(crate) fn flushed(&self, batch: FlushBatch) {
        let mut buffer = lock(&self.buffer);
        if batch.is_empty() {
            return;
        }
        // A read of the file that began before the commit must not be
        // cached without the batch's uses: it is read again.
        self.written();
        buffer.flushing.retain(|(id, _)| *id != batch.id);
        buffer.recent = batch.uses;
        for (digest, touch) in batch.orphans {
            if buffer.orphans.get(&digest) == Some(&touch) {
                buffer.orphans.remove(&digest);
            }
        }
    }

    /// After the batch failed to be written: each use goes back where a
    /// read finds it, a cached entry's to the dirty list, an entry removed
    /// meanwhile to the orphans (never to the dirty list, where it would
    /// stay through every failed flush).
    pub(crate) fn unflushed(&self, batch: FlushBatch) {
        let mut dirty = lock(&self.dirty);
        let mut buffer = lock(&self.buffer);
        for e in batch.entries {
            // Flag first, then look, as a use does: either this sees the
            // removal, or the removal (which marks the entry, then swaps
            // `dirty`) sees the flag and keeps the use in the orphans.
            let was_dirty = e.dirty.swap(true, Ordering::SeqCst);
            if e.is_removed() {
                if let Some(t) = e.touch() {
                    buffer.orphan(e.digest, t);
                }
            } else if !was_dirty {
                dirty.push(e);
            }
        }
        buffer.flushing.retain(|(id, _)| *id != batch.id);
    }

    /// How many tokens have uses not written yet.
    pub(crate) fn pending(&self) -> usize {
        let dirty = lock(&self.dirty);
        let buffer = lock(&self.buffer);
        let mut tokens: HashSet<TokenDigest> = dirty.iter().map(|e| e.digest).collect();
        tokens.extend(buffer.orphans.keys());
        for (_, uses) in &buffer.flushing {
            tokens.extend(uses.keys());
        }
        tokens.len()
    }
}
