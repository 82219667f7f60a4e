//! Rule 4 of the protocol: a prune's last look at the tokens it found
//! expired, ordered with the uses racing it, and what it condemned spared
//! unless deleted.

use super::entry::{CONDEMNED, DECIDING};
use super::{Cache, lock};
use crate::model::time::Timestamp;
use crate::model::token::TokenDigest;
use crate::testing::failpoints::Point;

/// The tokens a prune condemned ([`Cache::doom`]): spared when dropped,
/// except those deleted meanwhile, so that a prune that fails, panics or is
/// cancelled leaves nothing refused.
pub(crate) struct Condemned<'a> {
    cache: &'a Cache,
    digests: Vec<TokenDigest>,
}

impl Condemned<'_> {
    /// The digests to delete.
    pub(crate) fn digests(&self) -> &[TokenDigest] {
        &self.digests
    }
}

impl Drop for Condemned<'_> {
    fn drop(&mut self) {
        self.cache.spare(&self.digests);
    }
}

impl Cache {
    /// A prune's last look at `candidates`, tokens it found expired at
    /// `limit` (their deadlines, buffered uses included, are no later):
    /// the ones still expired are condemned, to be deleted and then passed
    /// to [`Cache::deleted`]; the others were refreshed meanwhile and are
    /// kept. Those not deleted by the time the answer is dropped (the write
    /// failed or was cancelled, or the database kept them) are spared.
    ///
    /// Rule 4: a use that lands while a prune deletes its token is either
    /// seen by the prune, which spares the token, or refused. For a cached
    /// entry, the use moves the deadline and then reads its flags, the prune
    /// sets [`DECIDING`] and then reads the deadline, all `SeqCst`: one of them
    /// sees the other. Uses of tokens not cached, and new entries, are
    /// decided under the locks held here.
    pub(crate) fn doom(&self, candidates: &[TokenDigest], limit: Timestamp) -> Condemned<'_> {
        let _ = self.hooks.at(Point::PruneChose);
        let _clock = lock(&self.clock);
        let guard = self.records.guard();
        let mut buffer = lock(&self.buffer);
        let mut condemned = Vec::new();
        for digest in candidates {
            let entry = self.records.get(digest, &guard);
            if let Some(e) = entry {
                e.set_doom(DECIDING);
            }
            let cached = entry.map(|e| e.deadline());
            let buffered = buffer.of(digest).map(|t| t.expires_at);
            let alive = cached.max(buffered).is_some_and(|d| d > limit);
            if !alive {
                *buffer.condemned.entry(*digest).or_default() += 1;
                condemned.push(*digest);
            }
            // Another prune may hold it condemned still.
            let fate = if buffer.condemned.contains_key(digest) {
                CONDEMNED
            } else {
                0
            };
            if let Some(e) = entry {
                e.set_doom(fate);
            }
        }
        Condemned {
            cache: self,
            digests: condemned,
        }
    }

    /// The prune that condemned `digests` did not delete them: they live
    /// on, unless another prune condemned them too. Deleted ones are no
    /// longer counted, and skipped.
    pub(super) fn spare(&self, digests: &[TokenDigest]) {
        let guard = self.records.guard();
        let mut buffer = lock(&self.buffer);
        for digest in digests {
            let Some(count) = buffer.condemned.get_mut(digest) else {
                continue; // deleted
            };
            *count -= 1;
            if *count == 0 {
                buffer.condemned.remove(digest);
                if let Some(e) = self.records.get(digest, &guard) {
                    e.set_doom(0);
                }
            }
        }
    }
}
