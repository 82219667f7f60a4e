//! Places in the cached backends' protocol where a test pauses a thread or
//! makes an operation fail, so that an interleaving a debugger once found
//! becomes a test that finds it every time. Hidden, behind the `failpoints`
//! feature (and in pat-core's own tests): not an API.
//!
//! Each backend instance has its own set ([`Store::failpoints`],
//! `PgStore::failpoints`), so tests running in parallel never see each
//! other's points, and a backend nobody armed pays one atomic load per point.
//! (The `fail` crate keeps one global registry behind a lock, which would
//! make every race test serial and put that lock on every lookup.)
//!
//! [`Store::failpoints`]: crate::Store::failpoints

#[cfg(any(test, feature = "failpoints"))]
pub use self::armed::{CacheStats, Failpoints};

/// A window in the protocol between lookups, writes, flushes and evictions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Point {
    /// A lookup found the record cached and has not used it yet.
    HitFound,
    /// A lookup's read of the record returned; nothing is decided yet.
    LookupRead,
    /// A lookup read a record and its miss passed the "no write since"
    /// check; the record is about to be cached.
    CacheInsert,
    /// A flush took the buffered uses and is about to write them. A failure
    /// here is a write that failed.
    FlushWrite,
    /// A flush's write committed; the cache has not been told yet. On
    /// PostgreSQL a failure here is a commit whose answer was lost (a
    /// timeout after it committed): the flush fails, its work queued again.
    FlushCommitted,
    /// A write that deleted tokens committed; the cache has not forgotten
    /// them yet.
    DeleteCommitted,
    /// A prune chose the tokens it found expired and has not looked at
    /// them again.
    PruneChose,
    /// A prune condemned the tokens still expired at its last look and has
    /// not written their deletion. A failure here is a write that failed.
    PruneDecided,
    /// A PostgreSQL engine operation holds the audit lock, its entries
    /// written, and has not committed: a replica stalled there holds up
    /// every replica's audited writes.
    AuditLocked,
}

impl Point {
    /// Every point.
    pub const ALL: [Point; 9] = [
        Point::HitFound,
        Point::LookupRead,
        Point::CacheInsert,
        Point::FlushWrite,
        Point::FlushCommitted,
        Point::DeleteCommitted,
        Point::PruneChose,
        Point::PruneDecided,
        Point::AuditLocked,
    ];
}

/// The error a failing point injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("failpoint {0:?}: injected failure")]
pub struct Injected(pub Point);

/// A backend's hold on its failpoints: armed by a test, or nothing (and
/// without the feature, no field at all).
#[derive(Default)]
pub(crate) struct Hooks {
    #[cfg(any(test, feature = "failpoints"))]
    set: std::sync::OnceLock<std::sync::Arc<Failpoints>>,
}

impl Hooks {
    /// The set, created on first use.
    #[cfg(any(test, feature = "failpoints"))]
    pub(crate) fn get(&self) -> std::sync::Arc<Failpoints> {
        self.set.get_or_init(Default::default).clone()
    }

    /// A thread reaches `point`: nothing happens unless a test armed it.
    #[inline(always)]
    pub(crate) fn at(&self, point: Point) -> Result<(), Injected> {
        #[cfg(any(test, feature = "failpoints"))]
        if let Some(f) = self.set.get() {
            return f.at(point);
        }
        let _ = point;
        Ok(())
    }
}

#[cfg(any(test, feature = "failpoints"))]
mod armed {
    use std::collections::HashMap;
    use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
    use std::time::{Duration, Instant};

    use super::{Injected, Point};

    /// What a point does when a thread reaches it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Mode {
        /// The next thread to arrive waits until released.
        Pause,
        /// Every thread that arrives gets an error.
        Fail,
        /// Every thread that arrives sleeps up to this long (at random),
        /// widening the window for whatever runs beside it.
        Jitter(Duration),
    }

    #[derive(Debug, Default)]
    struct State {
        armed: HashMap<Point, Mode>,
        /// Points where a thread took the pause and waits for the release.
        held: HashMap<Point, usize>,
        /// How many times each point was reached.
        reached: HashMap<Point, u64>,
    }

    /// One backend's failpoints.
    #[derive(Debug, Default)]
    pub struct Failpoints {
        state: Mutex<State>,
        changed: Condvar,
    }

    /// The sizes of a cache's maps and lists, for tests of their bounds.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct CacheStats {
        /// The capacity the cache was built with.
        pub capacity: usize,
        /// Cached records.
        pub records: usize,
        /// Slots in the CLOCK queue.
        pub clock: usize,
        /// Entries on the dirty list.
        pub dirty: usize,
        /// Uses of records not cached.
        pub orphans: usize,
        /// Uses of flushes under way, and of the last one.
        pub flushing: usize,
        /// Remembered unknown digests.
        pub unknown: usize,
        /// Audit entries waiting for a flush.
        pub audit: usize,
    }

    impl CacheStats {
        /// Whether every map and list is within what the cache promises
        /// (rule 3 of its protocol); `Err` names the first that is not.
        /// The orphans are bounded by the tokens used since the last
        /// successful flush, which the cache cannot know: `orphans` is the
        /// caller's bound for them.
        pub fn within_bounds(&self, orphans: usize) -> Result<(), String> {
            let cap = self.capacity;
            // A removal outside the `clock` lock (a stale record read
            // again) may leave one more slot than twice the live entries.
            let live_bound = 2 * (cap + 1) + 64;
            let checks = [
                ("records", self.records, cap),
                ("clock", self.clock, live_bound),
                ("dirty", self.dirty, live_bound + 1),
                // Cleared when full, checked without a lock: threads
                // inserting at once may each add one past it.
                ("unknown", self.unknown, cap + 16),
                ("audit", self.audit, cap.max(64)),
                ("orphans", self.orphans, orphans),
            ];
            for (what, n, bound) in checks {
                if n > bound {
                    return Err(format!("{what}: {n} > {bound} in {self:?}"));
                }
            }
            Ok(())
        }
    }

    impl Failpoints {
        fn state(&self) -> MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(PoisonError::into_inner)
        }

        /// The next thread to reach `point` waits there until [`release`]
        /// (or until the point is armed otherwise).
        ///
        /// [`release`]: Failpoints::release
        pub fn pause(&self, point: Point) {
            self.state().armed.insert(point, Mode::Pause);
            self.changed.notify_all();
        }

        /// Every thread reaching `point` sleeps there for up to `most`
        /// (each a random time), until [`release`]: for stress tests, which
        /// then find narrow windows far more often.
        ///
        /// [`release`]: Failpoints::release
        pub fn jitter(&self, point: Point, most: Duration) {
            self.state().armed.insert(point, Mode::Jitter(most));
            self.changed.notify_all();
        }

        /// Every point jitters (see [`jitter`](Failpoints::jitter)).
        pub fn jitter_all(&self, most: Duration) {
            for point in Point::ALL {
                self.jitter(point, most);
            }
        }

        /// Every thread reaching `point` fails there, until [`release`];
        /// a thread paused there goes on with the failure.
        ///
        /// [`release`]: Failpoints::release
        pub fn fail(&self, point: Point) {
            let mut state = self.state();
            state.armed.insert(point, Mode::Fail);
            state.held.remove(&point);
            self.changed.notify_all();
        }

        /// Disarms `point` and lets the thread waiting there go on.
        pub fn release(&self, point: Point) {
            let mut state = self.state();
            state.armed.remove(&point);
            state.held.remove(&point);
            self.changed.notify_all();
        }

        /// Waits until a thread is paused at `point`; `false` if none arrived
        /// within `timeout`.
        pub fn wait_paused(&self, point: Point, timeout: Duration) -> bool {
            let deadline = Instant::now() + timeout;
            let mut state = self.state();
            loop {
                if state.held.get(&point).is_some_and(|&n| n > 0) {
                    return true;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                state = self
                    .changed
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }

        /// How many times `point` was reached.
        pub fn reached(&self, point: Point) -> u64 {
            self.state().reached.get(&point).copied().unwrap_or(0)
        }

        /// A thread reaches `point`.
        pub(crate) fn at(&self, point: Point) -> Result<(), Injected> {
            let mut state = self.state();
            *state.reached.entry(point).or_default() += 1;
            match state.armed.get(&point) {
                None => Ok(()),
                Some(Mode::Fail) => Err(Injected(point)),
                Some(&Mode::Jitter(most)) => {
                    drop(state);
                    let nanos = u64::try_from(most.as_nanos()).unwrap_or(u64::MAX);
                    let nap = rand::Rng::random_range(&mut rand::rng(), 0..=nanos);
                    std::thread::sleep(Duration::from_nanos(nap));
                    Ok(())
                }
                Some(Mode::Pause) => {
                    // One thread takes the pause; the others pass.
                    state.armed.remove(&point);
                    *state.held.entry(point).or_default() += 1;
                    self.changed.notify_all();
                    let wait = || {
                        while state.held.get(&point).is_some_and(|&n| n > 0) {
                            state = self
                                .changed
                                .wait(state)
                                .unwrap_or_else(PoisonError::into_inner);
                        }
                        // Released by `fail`: go on with the failure.
                        match state.armed.get(&point) {
                            Some(Mode::Fail) => Err(Injected(point)),
                            _ => Ok(()),
                        }
                    };
                    // On a runtime's worker (PostgreSQL's), the worker's other
                    // tasks move to another thread while this one waits, as
                    // they would while it awaited: the listener must go on.
                    #[cfg(feature = "postgres")]
                    if tokio::runtime::Handle::try_current().is_ok_and(|h| {
                        h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
                    }) {
                        return tokio::task::block_in_place(wait);
                    }
                    wait()
                }
            }
        }
    }
}
