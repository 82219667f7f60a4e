//! The CLOCK queue that bounds the cache: eviction past the capacity, and
//! the compaction that keeps the queue and the dirty list bounded too.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::entry::Entry;
use super::{Cache, lock};

impl Cache {
    /// Queues a new entry for the CLOCK hand. Slots of entries that left
    /// the map are dropped when the queue reaches twice the live entries
    /// (plus a little): each compaction follows as many inserts as it
    /// walks slots, so inserts stay O(1) amortised.
    pub(super) fn push_clock(&self, clock: &mut VecDeque<Weak<Entry>>, entry: &Arc<Entry>) {
        clock.push_back(Arc::downgrade(entry));
        self.compact_clock(clock);
    }

    pub(super) fn compact_clock(&self, clock: &mut VecDeque<Weak<Entry>>) {
        if clock.len() > self.live_bound() {
            clock.retain(|slot| slot.upgrade().is_some_and(|e| !e.is_removed()));
        }
    }

    pub(super) fn compact_dirty(&self, dirty: &mut Vec<Arc<Entry>>) {
        if dirty.len() > self.live_bound() {
            // Entries removed from the map carry nothing a flush needs:
            // their answered uses moved to the orphans when they were
            // removed, and they answer no use after (`used`).
            dirty.retain(|e| !e.is_removed());
        }
    }

    /// How long the CLOCK queue and the dirty list may grow before their
    /// slots of removed entries are dropped: twice the live entries, plus
    /// a little so that a small cache does not compact on every insert.
    pub(super) fn live_bound(&self) -> usize {
        2 * self.records.len() + 64
    }

    /// Evicts records past the capacity, CLOCK-wise: a record used since
    /// the hand last passed gets a second chance.
    pub(super) fn evict(&self, clock: &mut VecDeque<Weak<Entry>>, guard: &impl papaya::Guard) {
        while self.records.len() > self.capacity {
            let Some(slot) = clock.pop_front() else {
                return;
            };
            let Some(entry) = slot.upgrade() else {
                continue;
            };
            if entry.is_removed() {
                continue; // removed by a write or a re-read meanwhile
            }
            if entry.referenced.swap(false, Ordering::Relaxed) {
                clock.push_back(slot);
                continue;
            }
            self.remove_in(&entry, guard);
            self.evictions.add(1);
        }
    }

    /// Takes `entry` out of the map, under `clock`; its unwritten use, if
    /// any, moves to the orphans.
    pub(super) fn remove_in(&self, entry: &Arc<Entry>, guard: &impl papaya::Guard) {
        self.records
            .remove_if(&entry.digest, |_, e| Arc::ptr_eq(e, entry), guard)
            .ok();
        entry.mark_removed();
        if entry.dirty.swap(false, Ordering::SeqCst)
            && let Some(touch) = entry.touch()
        {
            lock(&self.buffer).orphan(entry.digest, touch);
        }
    }
}
