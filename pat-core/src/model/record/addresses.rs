//! The client addresses a token was last used from (GitLab shows five per
//! token): kept with its buffered use, written with the next flush.

use std::fmt;
use std::net::IpAddr;

use crate::model::network::unmapped;
use crate::model::time::Timestamp;

/// How many distinct client addresses a token remembers
/// ([`TokenInfo::last_addresses`](crate::TokenInfo::last_addresses)).
pub const LAST_ADDRESSES: usize = 5;

/// A client address a token was used from, and when it last was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SeenFrom {
    /// The client's address (an IPv4-mapped IPv6 address as its IPv4
    /// address).
    pub addr: IpAddr,
    /// Its last use from there, to the second.
    pub at: Timestamp,
}

impl SeenFrom {
    /// `addr` seen at `at`.
    pub fn new(addr: IpAddr, at: Timestamp) -> SeenFrom {
        SeenFrom {
            addr: unmapped(addr),
            at,
        }
    }
}

impl fmt::Display for SeenFrom {
    /// `192.0.2.7 at 2026-12-03T08:00:00Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.addr, self.at)
    }
}

/// The last [`LAST_ADDRESSES`] distinct client addresses a token was used
/// from, the most recent first. Fixed in size and `Copy`, so that a
/// buffered use carries it without allocating.
///
/// ```
/// use pat_core::{LastAddresses, Timestamp};
/// let at = |s| Timestamp::from_unix_secs(s).unwrap();
/// let mut seen = LastAddresses::default();
/// for (addr, t) in [("192.0.2.1", 1), ("192.0.2.2", 2), ("::ffff:192.0.2.1", 3)] {
///     seen.seen(addr.parse().unwrap(), at(t));
/// }
/// let listed: Vec<String> = seen.iter().map(|s| s.to_string()).collect();
/// assert_eq!(listed, ["192.0.2.1 at 1970-01-01T00:00:03Z", "192.0.2.2 at 1970-01-01T00:00:02Z"]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LastAddresses([Option<SeenFrom>; LAST_ADDRESSES]);

impl LastAddresses {
    /// None yet.
    pub const EMPTY: LastAddresses = LastAddresses([None; LAST_ADDRESSES]);

    /// The addresses, the most recent first.
    pub fn iter(&self) -> impl Iterator<Item = SeenFrom> + '_ {
        self.0.iter().map_while(|s| *s)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether the token was never used from a known address.
    pub fn is_empty(&self) -> bool {
        self.0[0].is_none()
    }

    /// The most recent, if any.
    pub fn latest(&self) -> Option<SeenFrom> {
        self.0[0]
    }

    /// As JSON, the way every tool shows it: `[{"address": "192.0.2.7",
    /// "at": "2026-12-03T08:00:00Z"}, …]`, the most recent first.
    pub fn to_json(&self) -> serde_json::Value {
        self.iter()
            .map(|s| serde_json::json!({"address": s.addr.to_string(), "at": s.at.to_string()}))
            .collect()
    }

    /// The rule, once for every backend: a use from `addr` at `at`. An
    /// address already listed keeps its later time; a new one pushes the
    /// least recent out when all slots are taken. Returns whether anything
    /// changed.
    pub fn seen(&mut self, addr: IpAddr, at: Timestamp) -> bool {
        self.add(SeenFrom::new(addr, at))
    }

    fn add(&mut self, seen: SeenFrom) -> bool {
        let slots = &mut self.0;
        let len = slots.iter().take_while(|s| s.is_some()).count();
        // Where the slot to reuse is: the address's own, else the oldest
        // (or the first free one).
        let from = match slots[..len]
            .iter()
            .position(|s| s.is_some_and(|s| s.addr == seen.addr))
        {
            Some(i) if slots[i].is_some_and(|s| s.at >= seen.at) => return false,
            Some(i) => i,
            None if len < LAST_ADDRESSES => len,
            None => LAST_ADDRESSES - 1,
        };
        // Its place among the others, newest first (ties by address, as
        // `from_unordered` orders them).
        let to = slots[..from]
            .iter()
            .position(|s| {
                s.is_some_and(|s| s.at < seen.at || (s.at == seen.at && s.addr > seen.addr))
            })
            .unwrap_or(from);
        if to == from && from == LAST_ADDRESSES - 1 && len == LAST_ADDRESSES {
            // Replacing the oldest: only if newer than it.
            if slots[from]
                .is_some_and(|s| s.at > seen.at || (s.at == seen.at && s.addr < seen.addr))
            {
                return false;
            }
        }
        slots[to..=from].rotate_right(1);
        slots[to] = Some(seen);
        true
    }

    /// Both lists in one: each address at its later time, the most recent
    /// kept.
    pub fn merged(mut self, other: &LastAddresses) -> LastAddresses {
        for s in other.iter() {
            self.add(s);
        }
        self
    }

    /// A list from entries in any order (a store's column, a record's
    /// bytes): one per address at its latest time, the most recent kept.
    pub fn from_unordered(all: impl IntoIterator<Item = SeenFrom>) -> LastAddresses {
        let mut all: Vec<SeenFrom> = all
            .into_iter()
            .map(|s| SeenFrom::new(s.addr, s.at))
            .collect();
        // Newest first; among equal times, by address, so that every
        // backend lists them alike.
        all.sort_unstable_by(|a, b| b.at.cmp(&a.at).then(a.addr.cmp(&b.addr)));
        let mut out = LastAddresses::EMPTY;
        let mut n = 0;
        for s in all {
            if n == LAST_ADDRESSES {
                break;
            }
            if out.0[..n].iter().flatten().any(|o| o.addr == s.addr) {
                continue;
            }
            out.0[n] = Some(s);
            n += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Timestamp {
        Timestamp::from_unix_secs(s).unwrap()
    }

    fn addr(i: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, i])
    }

    #[test]
    fn five_distinct_newest_first() {
        let mut seen = LastAddresses::EMPTY;
        assert!(seen.is_empty());
        for i in 1..=7 {
            assert!(seen.seen(addr(i), at(u64::from(i))));
        }
        let listed: Vec<_> = seen.iter().map(|s| s.addr).collect();
        assert_eq!(listed, [7, 6, 5, 4, 3].map(addr));
        // Seen again: moves to the front, keeps one slot.
        assert!(seen.seen(addr(4), at(10)));
        assert_eq!(seen.latest(), Some(SeenFrom::new(addr(4), at(10))));
        assert_eq!(seen.len(), 5);
        // An older use of a listed address changes nothing.
        assert!(!seen.seen(addr(4), at(9)));
        // An older use of a new address than all listed: dropped.
        let before = seen;
        seen.seen(addr(99), at(0));
        assert_eq!(seen, before);
    }

    #[test]
    fn mapped_addresses_are_their_ipv4_and_merging_is_order_free() {
        let mut a = LastAddresses::EMPTY;
        a.seen("::ffff:192.0.2.1".parse().unwrap(), at(5));
        a.seen("2001:db8::1".parse().unwrap(), at(6));
        let mut b = LastAddresses::EMPTY;
        b.seen(addr(1), at(7));
        b.seen(addr(2), at(1));
        assert_eq!(a.merged(&b), b.merged(&a));
        let merged: Vec<_> = a.merged(&b).iter().collect();
        assert_eq!(
            merged,
            [
                SeenFrom::new(addr(1), at(7)),
                SeenFrom::new("2001:db8::1".parse().unwrap(), at(6)),
                SeenFrom::new(addr(2), at(1)),
            ]
        );
    }

    proptest::proptest! {
        // One use at a time, merged in any split, or all at once: the same
        // five, whatever the order the uses arrive in (a flush merges
        // buffers in no particular order).
        #[test]
        fn every_way_of_counting_agrees(
            uses in proptest::collection::vec((0u8..9, 0u64..12), 0..40),
            split in 0usize..40,
        ) {
            let seen: Vec<SeenFrom> = uses.iter().map(|&(a, t)| SeenFrom::new(addr(a), at(t))).collect();
            let mut one = LastAddresses::EMPTY;
            for s in &seen {
                one.seen(s.addr, s.at);
            }
            let split = split.min(seen.len());
            let (left, right) = seen.split_at(split);
            let halves = LastAddresses::from_unordered(left.iter().copied())
                .merged(&LastAddresses::from_unordered(right.iter().copied()));
            let all = LastAddresses::from_unordered(seen.iter().copied());
            proptest::prop_assert_eq!(one, all);
            proptest::prop_assert_eq!(halves, all);
        }
    }
}
