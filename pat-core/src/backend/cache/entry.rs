//! A cached record with its buffered use in atomics, and the buffered use
//! itself.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use compact_str::CompactString;

use crate::error::AuthError;
use crate::model::expiry::Expiry;
use crate::model::record::{Identity, LastAddresses, Origin, TokenInfo};
use crate::model::time::Timestamp;
use crate::model::token::TokenDigest;

/// A buffered use: what the record will hold once it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Touch {
    pub(crate) last_used_at: Timestamp,
    pub(crate) expires_at: Timestamp,
    /// The client addresses it was used from (the record's merged in).
    pub(crate) last_addresses: LastAddresses,
}

impl Touch {
    /// This buffered use merged over what the file says: the newer of each
    /// value wins.
    pub(super) fn merge(
        self,
        last_used_at: Option<Timestamp>,
        expiry: Expiry,
    ) -> (Timestamp, Expiry) {
        (
            last_used_at.map_or(self.last_used_at, |t| t.max(self.last_used_at)),
            expiry.extended_to(self.expires_at),
        )
    }

    /// Merges the buffered use into a record read from the file, never
    /// past the record's limit (a use buffered before its family's
    /// deadline was brought down).
    pub(crate) fn apply(self, info: &mut TokenInfo) {
        let (last_used_at, expiry) = self.merge(info.last_used_at, info.expiry);
        info.last_used_at = Some(last_used_at);
        info.expiry = info.limited(expiry);
        info.last_addresses = info.last_addresses.merged(&self.last_addresses);
    }

    /// The later of two buffered uses of one token.
    pub(super) fn max(self, other: Touch) -> Touch {
        Touch {
            last_used_at: self.last_used_at.max(other.last_used_at),
            expires_at: self.expires_at.max(other.expires_at),
            last_addresses: self.last_addresses.merged(&other.last_addresses),
        }
    }

    /// The later of `self` and `other`, if any.
    pub(super) fn max_opt(self, other: Option<Touch>) -> Touch {
        other.map_or(self, |o| self.max(o))
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
    #[inline]
    fn build_hasher(&self) -> DigestHash {
        DigestHash(0)
    }
}

pub(crate) struct DigestHash(u64);

// Inlined into every probe of the map (the request path): out of line, a
// digest's hash cost a call and a loop of 115 instructions.
impl Hasher for DigestHash {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // A digest hashes as its 32 bytes (a length prefix is not written for
        // arrays); anything else still gets a deterministic, if poor, hash.
        for word in crate::gate::rate::words(bytes) {
            self.0 = self.0.rotate_left(29) ^ word;
        }
    }
}

/// A cached record and its buffered use.
pub(crate) struct Entry {
    pub(super) digest: TokenDigest,
    /// The record as the file held it when it was read.
    info: TokenInfo,
    /// Its user name as identities hold it (inline up to 24 bytes).
    user: CompactString,
    /// Last use, in seconds since the epoch plus one; 0 for never.
    last_used: AtomicU64,
    /// The deadline, moved forward by uses of a sliding token.
    expires_at: AtomicU64,
    /// [`address_key`] of the client address last recorded in `seen`: a use
    /// from it within the same second records nothing.
    seen_key: AtomicU64,
    /// The client addresses of the record and of the buffered uses. Locked
    /// only by a use from another address than the last, or in a new
    /// second (never across I/O).
    seen: Mutex<LastAddresses>,
    /// Whether a use has not been written yet; set with the entry's push
    /// onto the dirty list.
    pub(super) dirty: AtomicBool,
    /// The CLOCK bit: used since the hand last passed.
    pub(super) referenced: AtomicBool,
    /// [`REMOVED`] once the entry left the map (evicted, stale, deleted or
    /// changed elsewhere): a use racing the removal then reads the record
    /// again (see `Cache::used`), and the CLOCK queue drops its slot.
    /// [`DECIDING`] while a prune looks at the token, [`CONDEMNED`] once
    /// it will delete it (see `Cache::doom`), and [`REFUSED`] once reuse
    /// detection will revoke it. One byte, so that the request path checks
    /// them all with one load.
    flags: AtomicU8,
    /// When the read of the record began, for the staleness bound.
    pub(super) read_at: Instant,
}

/// The entry left the map.
const REMOVED: u8 = 1;
/// A prune found the token expired and is looking again.
pub(super) const DECIDING: u8 = 2;
/// A prune will delete the token: uses are refused as unknown.
pub(super) const CONDEMNED: u8 = 4;
/// Reuse detection will revoke the token at the next flush: uses are
/// refused as unknown from now on.
const REFUSED: u8 = 8;

impl Entry {
    pub(super) fn new(
        digest: TokenDigest,
        info: TokenInfo,
        pending: Option<Touch>,
        read_at: Instant,
    ) -> Entry {
        let mut last_used = info.last_used_at;
        let mut expiry = info.expiry;
        let mut seen = info.last_addresses;
        if let Some(t) = pending {
            let (l, e) = t.merge(last_used, expiry);
            // Never past the family's limit, whenever the use was buffered.
            (last_used, expiry) = (Some(l), info.limited(e));
            seen = seen.merged(&t.last_addresses);
        }
        Entry {
            digest,
            last_used: AtomicU64::new(last_used.map_or(0, |t| t.as_unix_secs() + 1)),
            expires_at: AtomicU64::new(expiry.expires_at().as_unix_secs()),
            seen_key: AtomicU64::new(seen.latest().map_or(0, |s| address_key(s.addr))),
            seen: Mutex::new(seen),
            user: CompactString::new(&info.user),
            info,
            dirty: AtomicBool::new(false),
            // A new record gets the chance a used one would: it is about to
            // be used.
            referenced: AtomicBool::new(true),
            flags: AtomicU8::new(0),
            read_at,
        }
    }

    /// The buffered use as it stands, or `None` if never used.
    pub(super) fn touch(&self) -> Option<Touch> {
        let last = self.last_used.load(Ordering::Acquire);
        let expires = self.expires_at.load(Ordering::Acquire);
        (last > 0).then(|| Touch {
            last_used_at: Timestamp::from_unix_secs(last - 1).unwrap_or(Timestamp::MAX),
            expires_at: Timestamp::from_unix_secs(expires).unwrap_or(Timestamp::MAX),
            last_addresses: *super::lock(&self.seen),
        })
    }

    /// The deadline as it stands, read in the single total order of
    /// `SeqCst` operations (see `Cache::doom`).
    pub(super) fn deadline(&self) -> Timestamp {
        Timestamp::from_unix_secs(self.expires_at.load(Ordering::SeqCst)).unwrap_or(Timestamp::MAX)
    }

    /// Whether anything but an ordinary use is going on: the entry left
    /// the map, or a prune is deciding about it or condemned it. The
    /// request path's one check, `SeqCst` for the handshake with a prune.
    #[inline(always)]
    pub(super) fn unusual(&self) -> bool {
        self.flags.load(Ordering::SeqCst) != 0
    }

    /// Whether the entry left the map.
    pub(super) fn is_removed(&self) -> bool {
        self.flags.load(Ordering::SeqCst) & REMOVED != 0
    }

    /// Marks the entry as out of the map.
    pub(super) fn mark_removed(&self) {
        self.flags.fetch_or(REMOVED, Ordering::SeqCst);
    }

    /// Sets what a prune decided: [`DECIDING`], [`CONDEMNED`], or `0`.
    pub(super) fn set_doom(&self, doom: u8) {
        let _ = self
            .flags
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| {
                Some((f & (REMOVED | REFUSED)) | doom)
            });
    }

    /// Refuses every use from now on (reuse detection).
    pub(super) fn mark_refused(&self) {
        self.flags.fetch_or(REFUSED, Ordering::SeqCst);
    }

    /// Whether a use that just landed stands: a prune deciding about the
    /// token either saw the use (and spares it), or is seen here. Waits
    /// (microseconds, no I/O) while a prune decides.
    pub(super) fn survives_prune(&self) -> bool {
        loop {
            let flags = self.flags.load(Ordering::SeqCst);
            if flags & REFUSED != 0 {
                return false;
            }
            if flags & DECIDING == 0 {
                return flags & CONDEMNED == 0;
            }
            std::thread::yield_now();
        }
    }

    /// Takes in a use that reached memory by another way (the orphans, a
    /// flush under way): the later values win.
    pub(super) fn absorb(&self, touch: Touch) {
        self.last_used
            .fetch_max(touch.last_used_at.as_unix_secs() + 1, Ordering::AcqRel);
        let deadline = self
            .info
            .limited(self.info.expiry.extended_to(touch.expires_at))
            .expires_at();
        self.expires_at
            .fetch_max(deadline.as_unix_secs(), Ordering::AcqRel);
        let mut seen = super::lock(&self.seen);
        *seen = seen.merged(&touch.last_addresses);
    }

    /// A use at `now`, as [`TokenInfo::check_use`] rules, recorded in the
    /// atomics. The request path: inlined into its caller, which builds the
    /// identity ([`Entry::identity`]) once it answers. (Answering a small
    /// value here, not the identity, keeps a 96-byte move through a
    /// `Result` off the path: its byte-sized fields made the copy stall on
    /// store forwarding, a few nanoseconds a request.)
    #[inline(always)]
    pub(super) fn use_at(
        self: &Arc<Self>,
        user: Option<&str>,
        origin: Origin<'_>,
        now: Timestamp,
    ) -> Result<Used, AuthError> {
        // A token reuse detection is revoking records no use: refused
        // before anything moves (a plain load on x86).
        if self.flags.load(Ordering::Acquire) & REFUSED != 0 {
            return Err(AuthError::Unknown);
        }
        // SeqCst: part of the handshake with a prune (see `Cache::doom`).
        let stored = self.expires_at.load(Ordering::SeqCst);
        let current = self
            .info
            .expiry
            .extended_to(Timestamp::from_unix_secs(stored).unwrap_or(Timestamp::MAX));
        let next = self.info.check_use_with(current, user, origin, now)?;
        let mut changed = false;
        if next.as_unix_secs() > stored {
            // SeqCst, with the load of the flags after it: see `Cache::doom`.
            self.expires_at
                .fetch_max(next.as_unix_secs(), Ordering::SeqCst);
            changed = true;
        }
        let used = now.as_unix_secs() + 1;
        let mut new_second = false;
        if self.last_used.load(Ordering::Acquire) < used {
            self.last_used.fetch_max(used, Ordering::AcqRel);
            (changed, new_second) = (true, true);
        }
        // The client's address: one load and compare when it is the last
        // one seen and the second is not new.
        if let Some(addr) = origin.addr() {
            let key = address_key(addr);
            if (new_second || self.seen_key.load(Ordering::Relaxed) != key)
                && self.see(addr, key, now)
            {
                changed = true;
            }
        }
        if !self.referenced.load(Ordering::Relaxed) {
            self.referenced.store(true, Ordering::Relaxed);
        }
        // Swapped (not loaded) so that the flusher or an eviction, which swap
        // it back, either see these values or get the entry pushed again.
        let newly_dirty = changed && !self.dirty.swap(true, Ordering::SeqCst);
        Ok(Used {
            expires_at: next,
            changed,
            newly_dirty,
        })
    }

    /// Records a use from `addr` (its [`address_key`] `key`) in `seen`;
    /// whether the list changed.
    #[cold]
    #[inline(never)]
    fn see(&self, addr: IpAddr, key: u64, now: Timestamp) -> bool {
        let changed = super::lock(&self.seen).seen(addr, now);
        self.seen_key.store(key, Ordering::Relaxed);
        changed
    }

    /// The identity a use answers.
    #[inline(always)]
    pub(super) fn identity(&self, used: &Used) -> Identity {
        Identity::with_user(self.user.clone(), &self.info, used.expires_at)
    }
}

/// A client address folded into a word for [`Entry::use_at`]'s one compare
/// (never 0, which stands for none). Two addresses that fold alike only
/// delay the second one's record to the next second of use.
#[inline(always)]
fn address_key(addr: IpAddr) -> u64 {
    let bits = match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => u128::from(a) ^ (1 << 127),
        },
    };
    ((bits >> 64) as u64 ^ bits as u64) | 1 << 63
}

/// What one use of a cached entry did.
#[derive(Clone, Copy, Debug)]
pub(super) struct Used {
    /// The deadline after the use.
    pub(super) expires_at: Timestamp,
    /// Whether the use moved the entry's values.
    pub(super) changed: bool,
    /// Whether the entry just became dirty (to be put on the dirty list).
    pub(super) newly_dirty: bool,
}
